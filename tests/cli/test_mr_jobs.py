#!/usr/bin/env python3
"""loom sort, grep and invindex against GNU sort (LC_ALL=C), grep -E -n -H and a
Python inverted index, on text shipped with the system, at LOOM_NP ranks; each
also with a tiny memory budget that forces spilling."""
import glob, os, re, shlex, shutil, subprocess, sys

LOOM = os.environ.get("LOOM", "loom")
LAUNCH = shlex.split(os.environ.get("LOOM_MPIEXEC", ""))
NP = int(os.environ.get("LOOM_NP", "1"))
TMP = os.environ.get("LOOM_TMP", "/tmp")
ENV = dict(os.environ, LC_ALL="C")


def corpus():
    files = sorted(glob.glob("/usr/share/doc/*/copyright"))[:50]
    files += sorted(glob.glob("/usr/share/common-licenses/*"))[:4]
    return [f for f in files if os.path.isfile(f) and b"\0" not in open(f, "rb").read(65536)]


def run(args):
    p = subprocess.run(LAUNCH + [LOOM] + args + ["--quiet"], capture_output=True, timeout=300)
    if p.returncode != 0:
        sys.exit("FAIL: %s\n%s" % (" ".join(args), p.stderr.decode(errors="replace")))


def concat(out):
    assert os.path.exists(os.path.join(out, "_SUCCESS")), out
    return b"".join(open(p, "rb").read() for p in sorted(glob.glob(os.path.join(out, "part-*"))))


def expect(name, got, want):
    if got != want:
        gl, wl = got.split(b"\n"), want.split(b"\n")
        i = next((i for i, (a, b) in enumerate(zip(gl, wl)) if a != b), min(len(gl), len(wl)))
        sys.exit("FAIL %s: first difference at line %d: %r vs %r" %
                 (name, i + 1, gl[i] if i < len(gl) else None, wl[i] if i < len(wl) else None))
    print("ok", name, len(got), "bytes")


def sort_ref(files):
    data = b"".join(open(f, "rb").read() for f in files)
    # Files without a final newline would merge with the next one under cat.
    lines = []
    for f in files:
        lines += open(f, "rb").read().split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
    p = subprocess.run(["sort"], input=b"".join(l + b"\n" for l in lines), capture_output=True, env=ENV)
    return p.stdout


def invindex_ref(files):
    idx = {}
    for fi, f in enumerate(files):
        for ln, line in enumerate(open(f, "rb").read().split(b"\n"), 1):
            for w in re.findall(rb"[A-Za-z0-9]+", line):
                places = idx.setdefault(w.lower(), [])
                if not places or places[-1] != (fi, ln):
                    places.append((fi, ln))
    return {k: b",".join(b"%s:%d" % (files[fi].encode(), ln) for fi, ln in v) for k, v in idx.items()}


def main():
    files = corpus()
    work = os.path.join(TMP, "mr_jobs")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    spill = os.path.join(work, "spill")
    os.makedirs(spill)
    tiny = ["--memory", "64K", "--split-size", "8K", "--spill-dir", spill]

    want = sort_ref(files)
    for name, extra in (("sort", ["--reducers", "4"]), ("sort spilling", tiny + ["--reducers", "3"])):
        out = os.path.join(work, name.replace(" ", "_"))
        run(["sort"] + files + ["--out", out, "--split-size", "32K"] + extra)
        expect(name, concat(out), want)

    for regex in (r"Copyright.*[0-9]{4}", r"^(GPL|LGPL)-[23]", r"[Ww]arrant(y|ies)$"):
        want = subprocess.run(["grep", "-E", "-n", "-H", regex] + files, capture_output=True, env=ENV).stdout
        for name, extra in (("grep " + regex, ["--reducers", "3"]), ("grep spilling " + regex, tiny)):
            out = os.path.join(work, "grep")
            shutil.rmtree(out, ignore_errors=True)
            run(["grep", regex] + files + ["--out", out] + extra)
            expect(name, concat(out), want)

    ref = invindex_ref(files)
    for name, extra in (("invindex", []), ("invindex spilling", tiny)):
        out = os.path.join(work, name.replace(" ", "_"))
        run(["invindex"] + files + ["--out", out] + extra)
        got = {}
        for line in concat(out).split(b"\n")[:-1]:
            k, v = line.split(b"\t")
            assert k not in got
            got[k] = v
        if got != ref:
            bad = [k for k in set(got) | set(ref) if got.get(k) != ref.get(k)][:3]
            sys.exit("FAIL %s: %d words vs %d; e.g. %r" % (name, len(got), len(ref), bad))
        print("ok", name, len(got), "words")
    # Line numbers stay exact when 2 threads split a task between them.
    big = os.path.join(work, "all.txt")
    with open(big, "wb") as f:
        for name in files:
            f.write(open(name, "rb").read())
    out = os.path.join(work, "invindex_threads")
    run(["invindex", big, "--out", out, "--threads", "2", "--split-size", "1M"])
    got = dict(line.split(b"\t") for line in concat(out).split(b"\n")[:-1])
    assert got == invindex_ref([big]), "invindex with 2 threads differs"
    print("ok invindex with 2 threads", len(got), "words")
    assert os.listdir(spill) == [], "spill files left behind"


if __name__ == "__main__":
    main()
