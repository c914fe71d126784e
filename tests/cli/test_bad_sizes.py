#!/usr/bin/env python3
"""Sizes near 2^64 from tiny inputs, at LOOM_NP ranks: every size field of the HDF5
graph format (num_vertices, num_edges, offsets values, dataset extents, made with h5py
as chunked datasets so the files stay small), every field of a generator spec, gen:N
and element datasets of MapReduce, and vertex counts from text files. Each must give
one error naming the input and the cause, exit non-zero without crashing or hanging,
and leave no output behind; none may allocate what the file claims."""
import os
import re
import shlex
import shutil
import subprocess
import sys

try:
    import h5py
    import numpy as np
except ImportError:
    # A pyenv python may shadow the system one that has h5py.
    if sys.executable != "/usr/bin/python3" and os.path.exists("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    print("h5py is not installed; skipping")
    sys.exit(0)

LOOM = os.environ["LOOM"]
LAUNCH = shlex.split(os.environ.get("LOOM_MPIEXEC", "mpiexec -n 2 --oversubscribe"))
TMP = os.environ.get("LOOM_TMP", "/tmp")
U64_MAX = 2**64 - 1
failures = []


def expect_error(name, pattern, names, args, out=None):
    """One 'error:' line that names `names` and matches `pattern`; no crash, hang or output."""
    try:
        p = subprocess.run(LAUNCH + [LOOM] + args, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        failures.append("%s: timed out (hang): loom %s" % (name, " ".join(args)))
        return
    errs = [l for l in p.stderr.splitlines() if "error:" in l]
    problems = []
    if p.returncode == 0:
        problems.append("exit status 0")
    if "Signal:" in p.stderr or "AddressSanitizer" in p.stderr or "HDF5-DIAG" in p.stderr:
        problems.append("crashed or printed a library's diagnostics")
    if len(errs) != 1:
        problems.append("%d error lines" % len(errs))
    elif names not in errs[0] or not re.search(pattern, errs[0]):
        problems.append("message lacks %r or /%s/: %s" % (names, pattern, errs[0]))
    if out and os.path.exists(out):
        problems.append("left output %s" % out)
    if problems:
        failures.append("%s: %s\n  loom %s\n%s" % (name, "; ".join(problems), " ".join(args),
                                                   p.stderr[-1500:]))
    else:
        print("ok", name)


def graph_file(path, n, m, offsets=None, offsets_len=None, targets=None, targets_len=None,
               weights=None, n_type=np.uint64, m_type=np.uint64):
    """A /graph group with the given attributes; datasets given as arrays, or as
    (length, {index: value}) chunked datasets that store only the chunks written."""
    with h5py.File(path, "w") as f:
        g = f.create_group("graph")
        g.attrs["num_vertices"] = n_type(n)
        g.attrs["num_edges"] = m_type(m)
        g.attrs["directed"] = np.int32(1)
        for name, data, length in (("offsets", offsets, offsets_len),
                                   ("targets", targets, targets_len)):
            if length is None:
                g[name] = np.asarray(data, dtype=np.uint64)
            else:
                d = g.create_dataset(name, shape=(length,), dtype=np.uint64, chunks=(1024,))
                for i, v in (data or {}).items():
                    d[i] = v
        if weights is not None:
            g["weights"] = np.asarray(weights, dtype=np.float64)


def graph_cases(work):
    out = os.path.join(work, "out.h5")

    def bad(name, pattern, convert=False, **kw):
        path = os.path.join(work, name + ".h5")
        graph_file(path, **kw)
        expect_error("h5/" + name + "/info", pattern, path, ["info", path])
        if convert:
            expect_error("h5/" + name + "/convert", pattern, path,
                         ["convert", path, "--out", out], out)

    # num_vertices: past the largest id, negative, and at the largest extents HDF5
    # allows (2^62) with the matching offsets: more memory than any machine has.
    bad("nv-max", r"num_vertices 18446744073709551615 is out of range",
        n=U64_MAX, m=1, offsets=[0, 1], targets=[0])
    bad("nv-2^63", r"num_vertices 9223372036854775808 is out of range",
        n=2**63, m=1, offsets=[0, 1], targets=[0])
    bad("nv-negative", r"'num_vertices' on /graph is negative",
        n=-1, m=1, offsets=[0, 1], targets=[0], n_type=np.int64)
    bad("nv-2^62", r"vertex count 4611686018427387903 \(num_vertices\) is too large for this "
        r"machine's memory", n=2**62 - 1, m=1, offsets={2**62 - 1: 1}, offsets_len=2**62,
        targets=[0])
    bad("nv-2^61", r"vertex count 2305843009213693952 \(num_vertices\) is too large", True,
        n=2**61, m=1, offsets={2**61: 1}, offsets_len=2**61 + 1, targets=[0])
    bad("nv-extent", r"/graph/offsets has 4611686018427387904 entries, expected "
        r"num_vertices \+ 1 = 4", n=3, m=1, offsets={3: 1}, offsets_len=2**62, targets=[0])
    # num_edges: the heap overflow ((nv+1)*8 and count*8 wrapped around 2^64).
    bad("ne-2^61", r"the arcs of vertices 0\.\.0 \(2305843009213693952 entries\) need over 16 "
        r"EiB, more than this machine's memory", True, n=1, m=2**61, offsets=[0, 2**61],
        targets={}, targets_len=2**61)
    bad("ne-2^62", r"the arcs of vertices \d+\.\.\d+ \(\d+ entries\) need .* more than this "
        r"machine's memory",
        n=2, m=2**62, offsets=[0, 2**61, 2**62], targets={}, targets_len=2**62)
    bad("ne-max", r"num_edges 18446744073709551615 is out of range",
        n=1, m=U64_MAX, offsets=[0, 1], targets=[0])
    bad("ne-2^62+1", r"num_edges 4611686018427387905 is out of range",
        n=1, m=2**62 + 1, offsets=[0, 1], targets=[0])
    bad("ne-extent", r"/graph/targets has 4611686018427387904 entries, expected num_edges = 2",
        n=2, m=2, offsets=[0, 1, 2], targets={}, targets_len=2**62)
    # offsets values near 2^64 (the workers' binary search must not wrap either).
    bad("off-first", r"/graph/offsets must run from 0 to num_edges = 2, but runs from "
        r"18446744073709551615 to 2", n=3, m=2, offsets=[U64_MAX, 1, 1, 2], targets=[0, 1])
    bad("off-last", r"/graph/offsets must run from 0 to num_edges = 2, but runs from 0 to "
        r"18446744073709551615", n=3, m=2, offsets=[0, 1, 1, U64_MAX], targets=[0, 1])
    bad("off-middle", r"/graph/offsets is not non-decreasing",
        n=5, m=2, offsets=[0, U64_MAX, U64_MAX - 1, 1, 2, 2], targets=[0, 1])
    bad("off-middle-huge", r"/graph/offsets is not non-decreasing",
        n=4, m=2**61, offsets=[0, 2**63, 2**61 + 5, 1, 2**61], targets={},
        targets_len=2**61)
    bad("target-max", r"/graph/targets\[1\] = 18446744073709551615 is not below num_vertices",
        n=3, m=2, offsets=[0, 1, 2, 2], targets=[0, U64_MAX])
    # Weights must be finite, as in text files.
    bad("w-nan", r"/graph/weights\[1\] = nan is not a finite number",
        n=3, m=2, offsets=[0, 1, 2, 2], targets=[1, 2], weights=[1.0, float("nan")])
    bad("w-inf", r"/graph/weights\[0\] = -inf is not a finite number",
        n=3, m=2, offsets=[0, 1, 2, 2], targets=[1, 2], weights=[float("-inf"), 1.0])
    # A negative weight is fine for info, refused by shortest paths.
    neg = os.path.join(work, "w-neg.h5")
    graph_file(neg, n=3, m=2, offsets=[0, 1, 2, 2], targets=[1, 2], weights=[1.0, -2.5])
    expect_error("h5/w-neg/sssp", r"/graph/weights\[1\]: negative weight -2.5 \(shortest "
                 r"paths need weights >= 0\)", neg, ["sssp", neg, "--out", out], out)
    r = subprocess.run(LAUNCH + [LOOM, "info", neg, "--quiet"], capture_output=True, timeout=120)
    if r.returncode != 0:
        failures.append("h5/w-neg/info: refused a negative weight: %s" % r.stderr[-500:])


def spec_cases():
    # Every field of a generator spec near and past 2^64, and past --edge-factor's bound.
    for spec, pattern in (
            ("kron:18446744073709551615", r"scale 18446744073709551615 out of range \(1\.\.40\)"),
            ("kron:18446744073709551616", r"scale 18446744073709551616 out of range"),
            ("urand:-9223372036854775808", r"scale -9223372036854775808 out of range"),
            ("urand:6:99999999999", r"edge factor 99999999999 out of range \(1\.\.1024\)"),
            ("kron:6:18446744073709551615", r"edge factor 18446744073709551615 out of range"),
            ("kron:6:4294967297", r"edge factor 4294967297 out of range"),
            ("kron:6:1025", r"edge factor 1025 out of range \(1\.\.1024\)"),
            ("kron:6:16:18446744073709551616", r"seed 18446744073709551616 out of range"),
            ("kron:6:16:-1", r"seed '-1' is not a number")):
        expect_error("spec/" + spec, pattern, spec, ["info", spec])
    # In range, but more than this machine holds: refused before generating.
    expect_error("spec/kron:40", r"vertex count 1099511627776 \(2\^40 by the scale\) is too "
                 r"large for this machine's memory", "kron:40", ["info", "kron:40"])
    expect_error("spec/urand:26:1024", r"68719476736 edges are too many for this machine's "
                 r"memory", "urand:26:1024", ["info", "urand:26:1024"])


def text_cases(work):
    out = os.path.join(work, "out.h5")
    # A vertex count (max id + 1) no machine can hold, before allocating it.
    el = os.path.join(work, "id2^40.el")
    with open(el, "w") as f:
        f.write("0 1\n1 1099511627776\n")
    expect_error("el/id-2^40", r"the vertex count 1099511627777 \(max id \+ 1\) is too large for "
                 r"this machine's memory", el, ["convert", el, "--out", out], out)
    hdr = os.path.join(work, "header2^62.el")
    with open(hdr, "w") as f:
        f.write("# loom-graph vertices=4611686018427387904\n0 1\n")
    expect_error("el/header-2^62", r"vertex count 4611686018427387904 \(declared on line 1\) is "
                 r"too large", hdr, ["info", hdr])
    hdr = os.path.join(work, "header-max.el")
    with open(hdr, "w") as f:
        f.write("# loom-graph vertices=18446744073709551615\n0 1\n")
    expect_error("el/header-max", r"header-max.el:1: malformed loom-graph header", hdr,
                 ["info", hdr])
    snap = os.path.join(work, "snap-max.el")
    with open(snap, "w") as f:
        f.write("# Nodes: 18446744073709551616 Edges: 1\n0 1\n")
    expect_error("el/snap-max", r"snap-max.el:1: malformed header: 'Nodes:'", snap, ["info", snap])
    mtx = os.path.join(work, "size2^62.mtx")
    with open(mtx, "w") as f:
        f.write("%%MatrixMarket matrix coordinate pattern general\n"
                "4611686018427387904 4611686018427387904 1\n1 1\n")
    expect_error("mtx/size-2^62", r"vertex count 4611686018427387904 \(the size line, line 2\) "
                 r"is too large", mtx, ["info", mtx])
    mtx = os.path.join(work, "size-max.mtx")
    with open(mtx, "w") as f:
        f.write("%%MatrixMarket matrix coordinate pattern general\n"
                "3 3 18446744073709551616\n1 1\n")
    expect_error("mtx/size-max", r"size-max.mtx:2: malformed Matrix Market size line: "
                 r"'18446744073709551616' is too large", mtx, ["info", mtx])


def mr_cases(work):
    out = os.path.join(work, "wc")
    # gen:N near 2^64 grew the master's task list without bound.
    for spec, pattern in (
            ("gen:18446744073709551615", r"18446744073709551615 is out of range \(at most 2\^60"),
            ("gen:18446744073709551616", r"18446744073709551616 is out of range"),
            ("gen:1152921504606846977", r"is out of range \(at most 2\^60"),
            ("gen:1152921504606846976", r"make 274877906944 tasks, whose table needs .* more "
             r"than this machine's memory")):
        expect_error("mr/" + spec, pattern, spec, ["wordcount", spec, "--out", out], out)
    # An element dataset at HDF5's largest extent.
    h5 = os.path.join(work, "elements.h5")
    with h5py.File(h5, "w") as f:
        f.create_dataset("x", shape=(2**62,), dtype=np.int64, chunks=(1024,))
    expect_error("mr/dataset-2^62", r"4611686018427387904 elements are too many", h5,
                 ["wordcount", h5 + ":/x", "--out", out], out)


def main():
    work = os.path.join(TMP, "bad_sizes")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    graph_cases(work)
    spec_cases()
    text_cases(work)
    mr_cases(work)
    leftovers = [e for e in os.listdir(work) if ".tmp-" in e]
    if leftovers:
        failures.append("temporaries left: %s" % leftovers)
    if failures:
        print("\n".join(failures), file=sys.stderr)
        sys.exit("%d failures" % len(failures))
    print("ok")


main()
