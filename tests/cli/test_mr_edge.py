#!/usr/bin/env python3
"""MapReduce jobs on bad and awkward input, at LOOM_NP ranks: every refusal is one
clear message, a non-zero exit and no output directory; the documented rules
(empty files, long lines, skewed keys under a tiny budget) give exact results."""
import collections, glob, json, os, shlex, shutil, subprocess, sys

LOOM = os.environ.get("LOOM", "loom")
LAUNCH = shlex.split(os.environ.get("LOOM_MPIEXEC", ""))
NP = int(os.environ.get("LOOM_NP", "1"))
TMP = os.environ.get("LOOM_TMP", "/tmp")


def run(args):
    return subprocess.run(LAUNCH + [LOOM] + args + ["--quiet"], capture_output=True, timeout=300)


def refused(name, args, out, needle):
    p = run(args + ["--out", out])
    err = p.stderr.decode(errors="replace")
    if p.returncode == 0 or needle not in err:
        sys.exit("FAIL %s: rc=%d, expected %r in:\n%s" % (name, p.returncode, needle, err))
    if err.count("error:") != 1:
        sys.exit("FAIL %s: expected one error line:\n%s" % (name, err))
    if os.path.exists(out) or glob.glob(out + ".tmp*") or glob.glob(out + "*tmp*"):
        sys.exit("FAIL %s: output or temporary left behind" % name)
    print("ok", name)


def ok(name, args):
    p = run(args)
    if p.returncode != 0:
        sys.exit("FAIL %s:\n%s" % (name, p.stderr.decode(errors="replace")))
    return p


def parts(out):
    assert os.path.exists(os.path.join(out, "_SUCCESS"))
    return b"".join(open(p, "rb").read() for p in sorted(glob.glob(os.path.join(out, "part-*"))))


def main():
    w = os.path.join(TMP, "mr_edge")
    shutil.rmtree(w, ignore_errors=True)
    os.makedirs(w)
    out = os.path.join(w, "out")
    empty_dir = os.path.join(w, "emptydir")
    os.makedirs(os.path.join(empty_dir, "sub"))
    open(os.path.join(empty_dir, ".hidden"), "w").write("not data\n")
    binary = os.path.join(w, "binary.dat")
    open(binary, "wb").write(b"text\n\0\1\2 binary\n")
    longf = os.path.join(w, "long.txt")
    open(longf, "wb").write(b"a " * 150000 + b"\nshort line\n")
    empty = os.path.join(w, "empty.txt")
    open(empty, "wb").close()
    dangling = os.path.join(w, "dangling")
    os.symlink(os.path.join(w, "nowhere"), dangling)

    refused("missing file", ["wordcount", os.path.join(w, "missing.txt")], out, "missing.txt")
    refused("dangling link", ["wordcount", dangling], out, "dangling")
    refused("directory with no files", ["wordcount", empty_dir], out, "no input files")
    refused("glob matching nothing", ["wordcount", os.path.join(w, "*.none")], out, "no file matches")
    refused("binary data", ["wordcount", binary], out, "binary data")
    refused("line over --max-record", ["wordcount", longf, "--max-record", "64K"], out, "longer than --max-record")
    refused("line over --max-record across tasks",
            ["sort", longf, "--max-record", "64K", "--split-size", "4K"], out, "longer than --max-record")
    refused("bad regex", ["grep", "a(b", longf], out, "bad regular expression")
    refused("bad fault spec", ["wordcount", longf, "--inject-fault", "explode"], out, "inject-fault")
    refused("no inputs", ["wordcount"], out, "input")

    # Empty input is not an error: every part file exists and is empty.
    o = os.path.join(w, "empty_out")
    ok("empty input", ["wordcount", empty, "--out", o, "--reducers", "3"])
    assert parts(o) == b"" and len(glob.glob(o + "/part-*")) == 3
    print("ok empty input")

    # A line longer than any buffer but within --max-record is one record.
    o = os.path.join(w, "long_out")
    ok("long line", ["wordcount", longf, "--out", o, "--split-size", "4K", "--memory", "64K"])
    got = dict(l.split(b"\t") for l in parts(o).split(b"\n")[:-1])
    assert got == {b"a": b"150000", b"short": b"1", b"line": b"1"}, got
    print("ok long line")

    # Word count reads a task a piece (1 MiB) at a time: lines of 1.5 and 2.5 MiB
    # span pieces and tasks (3 MiB), words are cut nowhere, and a line over
    # --max-record is refused with where it starts.
    big = os.path.join(w, "big.txt")
    rng = __import__("random").Random(11)
    vocab = [b"w%d" % i for i in range(5000)] + [b"longwordofmorethansixteenbytes%d" % i for i in range(50)]
    lines = []
    for n in [10, 200000, 3, 350000, 1, 40, 120000] + [rng.randrange(1, 30) for _ in range(20000)]:
        lines.append(b" ".join(rng.choice(vocab) for _ in range(n)))
    open(big, "wb").write(b"\n".join(lines) + b"\n")
    want = collections.Counter(big_word for l in lines for big_word in l.split())
    for split in ["3M", "700K"]:
        o = os.path.join(w, "big_out_" + split)
        ok("lines over a piece, split " + split, ["wordcount", big, "--out", o, "--split-size", split])
        got = {k.decode(): int(v) for k, v in (l.split(b"\t") for l in parts(o).split(b"\n")[:-1])}
        assert got == {k.decode(): v for k, v in want.items()}, "word counts differ"
        print("ok lines over a piece, split", split)
    longest = max(range(len(lines)), key=lambda i: len(lines[i]))
    at = sum(len(l) + 1 for l in lines[:longest])
    refused("line over --max-record in a piece", ["wordcount", big, "--max-record", "2M"], out,
            "big.txt: the line at byte %d is longer than --max-record" % at)

    # Skew: one line/word carries most of the data; a 64K budget spills and the
    # reduce streams the values, giving exact results.
    skew = os.path.join(w, "skew.txt")
    lines = [b"same line"] * 60000 + [b"line %d" % i for i in range(3000)]
    open(skew, "wb").write(b"\n".join(lines) + b"\n")
    o = os.path.join(w, "skew_sort")
    p = ok("skewed sort", ["sort", skew, "--out", o, "--memory", "64K", "--split-size", "16K",
                           "--reducers", "3", "--spill-dir", w, "--json"])
    assert json.loads(p.stdout)["spill_runs"] > 0
    assert parts(o) == b"".join(l + b"\n" for l in sorted(lines))
    print("ok skewed sort")
    o = os.path.join(w, "skew_inv")
    ok("skewed invindex", ["invindex", skew, "--out", o, "--memory", "64K", "--split-size", "16K",
                           "--spill-dir", w])
    got = dict(l.split(b"\t") for l in parts(o).split(b"\n")[:-1])
    assert got[b"line"] == b",".join(b"%s:%d" % (skew.encode(), i) for i in range(1, 63001))
    assert got[b"same"].count(b",") == 59999
    print("ok skewed invindex")
    assert not [f for f in os.listdir(w) if f.startswith("loom-mr-")], "spill files left behind"

    # An existing output directory is replaced only by a complete result.
    o = os.path.join(w, "again")
    ok("first", ["wordcount", skew, "--out", o])
    p = run(["wordcount", binary, "--out", o])
    assert p.returncode != 0 and os.path.exists(os.path.join(o, "_SUCCESS"))
    print("ok failed rerun keeps the old output")


if __name__ == "__main__":
    main()
