#!/usr/bin/env python3
"""MapReduce HDF5 and generator I/O at LOOM_NP ranks: 1-D datasets written with h5py as
input (wordcount against collections.Counter, sort against Python's sorted), gen:N, HDF5
output (--out FILE.h5) read back with h5py against the text output of the same job, and
refusals of bad datasets (missing, 2-D, not numeric) with no output left behind."""
import collections, glob, os, re, shlex, shutil, subprocess, sys

import h5py
import numpy as np

LOOM = os.environ.get("LOOM", "loom")
LAUNCH = shlex.split(os.environ.get("LOOM_MPIEXEC", ""))
TMP = os.environ.get("LOOM_TMP", "/tmp")
WORD = re.compile(rb"[A-Za-z0-9]+")  # wordcount's documented rule


def run(args, expect_ok=True):
    p = subprocess.run(LAUNCH + [LOOM] + args, capture_output=True, timeout=300)
    if expect_ok and p.returncode != 0:
        sys.exit("FAIL: %s\n%s" % (" ".join(args), p.stderr.decode(errors="replace")))
    return p


def text_lines(out):
    assert os.path.exists(os.path.join(out, "_SUCCESS")), out + ": no _SUCCESS"
    return [l for part in sorted(glob.glob(os.path.join(out, "part-*")))
            for l in open(part, "rb").read().splitlines()]


def counts(out):
    got = {}
    for l in text_lines(out):
        k, v = l.split(b"\t")
        assert k not in got, k
        got[k] = int(v)
    return got


def expect(name, got, ref):
    if got != ref:
        sys.exit("FAIL %s: %d entries vs %d expected" % (name, len(got), len(ref)))
    print("ok", name, len(got))


def main():
    work = os.path.join(TMP, "mr_hdf5")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    rng = np.random.default_rng(7)
    h5 = os.path.join(work, "in.h5")
    ints = rng.integers(0, 300, 5000).astype(np.int64)
    uints = rng.integers(0, 2**64 - 1, 700, dtype=np.uint64)
    dbls = rng.standard_normal(1500)
    with h5py.File(h5, "w") as f:
        f["ints"] = ints
        f["g/uints"] = uints
        f["dbls"] = dbls
        f["empty"] = np.zeros(0, dtype=np.int64)
        f["matrix"] = np.zeros((4, 4))
        f["names"] = np.array([b"a", b"b"])
    small = ["--split-size", "1000"]  # 125 elements per map task

    o = os.path.join(work, "ints")
    run(["wordcount", h5 + ":/ints", "--out", o] + small)
    expect("int64 wordcount", counts(o), {str(v).encode(): c for v, c in collections.Counter(ints.tolist()).items()})

    o = os.path.join(work, "uints")
    run(["wordcount", h5 + ":/g/uints", "--out", o] + small)
    expect("uint64 wordcount", counts(o), {str(v).encode(): c for v, c in collections.Counter(uints.tolist()).items()})

    o = os.path.join(work, "dbls")
    run(["wordcount", h5 + ":/dbls", "--out", o] + small)
    ref = collections.Counter(w.lower() for x in dbls.tolist() for w in WORD.findall(b"%.17g" % x))
    expect("float64 wordcount", counts(o), dict(ref))

    o = os.path.join(work, "sorted")
    run(["sort", h5 + ":/ints", "--out", o] + small)
    expect("int64 sort", text_lines(o), sorted(str(v).encode() for v in ints.tolist()))

    o = os.path.join(work, "empty")
    run(["wordcount", h5 + ":/empty", "--out", o])
    expect("empty dataset", counts(o), {})

    o = os.path.join(work, "gen")
    run(["wordcount", "gen:2345", "--out", o] + small)
    expect("gen:2345", counts(o), {str(i).encode(): 1 for i in range(2345)})

    # HDF5 output equals the text output of the same job, key for key.
    o5 = os.path.join(work, "ints.h5")
    run(["wordcount", h5 + ":/ints", "--out", o5] + small)
    with h5py.File(o5, "r") as f:
        pairs = list(zip(f["keys"][:].tolist(), f["values"][:].tolist()))
    expect("HDF5 output", sorted(k + b"\t" + v for k, v in pairs), sorted(text_lines(os.path.join(work, "ints"))))
    if [k for k, _ in pairs] != [l.split(b"\t")[0] for l in text_lines(os.path.join(work, "ints"))]:
        sys.exit("FAIL HDF5 output: not in partition order like the part files")
    o5 = os.path.join(work, "gen.h5")
    run(["wordcount", "gen:0", "--out", o5])
    with h5py.File(o5, "r") as f:
        expect("HDF5 output of nothing", (len(f["keys"]), len(f["values"])), (0, 0))

    # Refusals: one clear message naming file and dataset, non-zero exit, no output.
    for ds, why in (("/nope", "no dataset"), ("/matrix", "dimensions"), ("/names", "not numeric")):
        for out in (os.path.join(work, "bad"), os.path.join(work, "bad.h5")):
            p = run(["wordcount", h5 + ":" + ds, "--out", out], expect_ok=False)
            err = p.stderr.decode(errors="replace")
            if p.returncode == 0 or h5 not in err or ds not in err or why not in err:
                sys.exit("FAIL refusal of %s: rc %d\n%s" % (ds, p.returncode, err))
            left = [n for n in os.listdir(work) if n.startswith("bad") or n.startswith(".bad")]
            if left:
                sys.exit("FAIL refusal of %s left %r" % (ds, left))
    p = run(["wordcount", os.path.join(work, "missing.h5") + ":/x", "--out", os.path.join(work, "bad")], expect_ok=False)
    if p.returncode == 0 or b"missing.h5" not in p.stderr:
        sys.exit("FAIL missing file: rc %d %r" % (p.returncode, p.stderr))
    print("ok refusals")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
