#!/usr/bin/env python3
"""MapReduce and datasets reading from the chunk store (store:/PATH) at LOOM_NP ranks, against
references no one here wrote: GNU sort for `loom sort` (every line once and whole, lines that
cross chunk boundaries included), collections.Counter for `loom wordcount` and
`loom ds-wordcount`; the summary's local reads; lines longer than a chunk and missing store
paths refused with one message."""
import collections, json, os, random, re, shlex, shutil, subprocess, sys

LOOM = os.environ.get("LOOM", "loom")
LAUNCH = shlex.split(os.environ.get("LOOM_MPIEXEC", ""))
NP = int(os.environ.get("LOOM_NP", "1"))
TMP = os.environ.get("LOOM_TMP", "/tmp")
WORD = re.compile(rb"[A-Za-z0-9]+")


def run(args, expect_ok=True):
    p = subprocess.run(LAUNCH + [LOOM] + args, capture_output=True, timeout=300)
    if expect_ok and p.returncode != 0:
        sys.exit("FAIL: %s\n%s" % (" ".join(args), p.stderr.decode(errors="replace")))
    return p


def summary(p):
    return json.loads(p.stdout.decode().strip().splitlines()[-1])


def parts(out):
    assert os.path.exists(os.path.join(out, "_SUCCESS")), out + ": no _SUCCESS"
    names = sorted(n for n in os.listdir(out) if n.startswith("part-"))
    return b"".join(open(os.path.join(out, n), "rb").read() for n in names)


def make_text(path):
    """~600 KB of lines from 1 to ~3000 bytes (many cross the 64K chunk boundaries), one line
    ending exactly at a chunk boundary, and no newline at the end."""
    rnd = random.Random(13)
    words = [b"alpha", b"Beta", b"gamma", b"delta42", b"x", b"chunk", b"store", b"GFS"]
    out = bytearray()
    while len(out) < 600_000:
        if len(out) < 65536 < len(out) + 4000:
            # a line that ends at byte 65536: the next chunk starts with a whole line
            n = 65536 - len(out) - 1
            out += (b"b" * n) + b"\n"
            continue
        n = rnd.choice([1, 5, 40, 200, 1000, 3000])
        line = b" ".join(rnd.choice(words) for _ in range(max(1, n // 6)))
        out += line + b"\n"
    out += b"last line without newline"
    open(path, "wb").write(out)
    return bytes(out)


def main():
    work = os.path.join(TMP, "fs_engines_np%d" % NP)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    store = os.path.join(work, "store")
    data = make_text(os.path.join(work, "text.txt"))
    lines = data.split(b"\n")
    for repl in (1, 3):
        path = "/in/r%d.txt" % repl
        run(["fs", "put", os.path.join(work, "text.txt"), path, "--store", store, "--chunk-size",
             "64K", "--replication", str(repl), "--quiet"])
        # sort: every line once and whole, in byte order (GNU sort is the reference)
        out = os.path.join(work, "sort%d" % repl)
        p = run(["sort", "store:" + path, "--store", store, "--out", out, "--json", "--quiet"])
        ref = subprocess.run(["sort"], input=data + b"\n", capture_output=True,
                             env=dict(os.environ, LC_ALL="C")).stdout
        got = parts(out)
        if got != ref:
            sys.exit("FAIL sort store:%s: %d bytes vs GNU sort's %d" % (path, len(got), len(ref)))
        s = summary(p)
        reads = s.get("store_local_reads", 0) + s.get("store_remote_reads", 0)
        if reads < s["map_tasks"] or s["input_bytes"] != len(data):
            sys.exit("FAIL sort summary: %r" % {k: s.get(k) for k in (
                "map_tasks", "input_bytes", "store_local_reads", "store_remote_reads")})
        # with every chunk on every holder, every read is local
        if repl == 3 and NP <= 4 and s.get("store_remote_reads", 0) != 0:
            sys.exit("FAIL: %d remote reads with a replica on every holder" % s["store_remote_reads"])
        print("ok sort store:%s (replication %d): %d lines as GNU sort, %d tasks, local fraction %s"
              % (path, repl, len(lines), s["map_tasks"], s.get("store_local_fraction")))
        # word count against collections.Counter
        out = os.path.join(work, "wc%d" % repl)
        run(["wordcount", "store:" + path, "--store", store, "--out", out, "--quiet"])
        ref = collections.Counter(w.lower() for w in WORD.findall(data))
        got = {}
        for line in parts(out).splitlines():
            k, v = line.split(b"\t")
            got[k] = int(v)
        if got != dict(ref):
            sys.exit("FAIL wordcount store:%s: %d words vs %d" % (path, len(got), len(ref)))
        print("ok wordcount store:%s: %d distinct words as collections.Counter" % (path, len(got)))
    # datasets: the same words through ds-wordcount; each source partition is placed on a
    # holder of its chunk, so even at replication 1 every read is local
    out = os.path.join(work, "dswc")
    p = run(["ds-wordcount", "store:/in/r1.txt", "--store", store, "--out", out, "--json",
             "--quiet"])
    got = {}
    for line in parts(out).splitlines():
        k, v = line.split(b"\t")
        got[k] = int(v)
    if got != dict(collections.Counter(w.lower() for w in WORD.findall(data))):
        sys.exit("FAIL ds-wordcount store:/in/r1.txt: %d words" % len(got))
    s = summary(p)
    if s.get("store_remote_reads", 0) != 0 or not s.get("store_local_reads"):
        sys.exit("FAIL ds-wordcount store:/in/r1.txt: local %r, remote %r" % (
            s.get("store_local_reads"), s.get("store_remote_reads")))
    print("ok ds-wordcount store:/in/r1.txt: %d distinct words, %d local reads"
          % (len(got), s["store_local_reads"]))
    # refusals: one message, no output
    long_line = os.path.join(work, "long.txt")
    open(long_line, "wb").write(b"short\n" + b"y" * 200_000 + b"\nend\n")
    run(["fs", "put", long_line, "/in/long.txt", "--store", store, "--chunk-size", "64K", "--quiet"])
    cases = [
        ("a line longer than a chunk", ["wordcount", "store:/in/long.txt", "--store", store],
         "/in/long.txt", 1),
        ("a missing store path", ["wordcount", "store:/in/missing.txt", "--store", store],
         "/in/missing.txt", 2),
        ("store: without --store", ["wordcount", "store:/in/r1.txt"], "--store", 2),
        ("line numbers", ["grep", "alpha", "store:/in/r1.txt", "--store", store], "line numbers", 2),
    ]
    for what, args, needle, code in cases:
        out = os.path.join(work, "bad-out")
        p = run(args + ["--out", out], expect_ok=False)
        err = p.stderr.decode(errors="replace")
        msgs = [l for l in err.splitlines() if l.startswith("loom: error:")]
        if p.returncode != code or len(msgs) != 1 or needle not in msgs[0] or os.path.exists(out):
            sys.exit("FAIL %s: exit %d (expected %d), messages %r" % (what, p.returncode, code, msgs))
        print("ok refused (%s): %s" % (what, msgs[0]))


if __name__ == "__main__":
    main()
