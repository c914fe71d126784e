#!/usr/bin/env python3
"""Files Loom writes are readable by h5py and plain text tools, and hold exactly the input's arcs."""
import collections
import os
import random
import shlex
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
MPIEXEC = shlex.split(os.environ.get("LOOM_MPIEXEC", "mpiexec -n 2 --oversubscribe"))
TMP = os.environ.get("LOOM_TMP", "/tmp")


def loom(*args):
    cmd = MPIEXEC + [LOOM] + list(args) + ["--quiet"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        sys.exit("failed: %s\n%s" % (" ".join(cmd), r.stderr))
    return r


def arcs_of_h5(path):
    with h5py.File(path, "r") as f:
        g = f["graph"]
        n = int(g.attrs["num_vertices"])
        m = int(g.attrs["num_edges"])
        off = g["offsets"][:]
        tgt = g["targets"][:]
        assert off.dtype == np.uint64, off.dtype
        assert tgt.dtype in (np.uint64, np.uint32), tgt.dtype
        assert len(off) == n + 1 and off[0] == 0 and off[-1] == m, (len(off), off[0], off[-1], m)
        assert len(tgt) == m
        assert np.all(np.diff(off.astype(np.int64)) >= 0)
        w = g["weights"][:] if "weights" in g else None
        arcs = collections.Counter()
        for v in range(n):
            for k in range(int(off[v]), int(off[v + 1])):
                arcs[(v, int(tgt[k]), None if w is None else float(w[k]))] += 1
        return n, int(g.attrs["directed"]), arcs


def main():
    rng = random.Random(42)
    n = 300
    edges = [(rng.randrange(n), rng.randrange(n), rng.randrange(1000) / 16) for _ in range(2000)]
    src = os.path.join(TMP, "in.el")
    with open(src, "w") as f:
        f.write("# test graph\n")
        for s, d, w in edges:
            f.write("%d %d %r\n" % (s, d, w))
    want = collections.Counter((s, d, w) for s, d, w in edges)
    nmax = max(max(s, d) for s, d, _ in edges) + 1

    out = os.path.join(TMP, "out.h5")
    loom("convert", src, "--out", out)
    got_n, directed, got = arcs_of_h5(out)
    assert got_n == nmax, (got_n, nmax)
    assert directed == 1
    assert got == want, "arcs differ: %d missing, %d extra" % (
        sum((want - got).values()), sum((got - want).values()))

    # Back to an edge list: the same lines as the input, in vertex order.
    back = os.path.join(TMP, "back.el")
    loom("convert", out, "--out", back)
    with open(back) as f:
        head = f.readline().split()
        lines = [tuple(l.split()) for l in f]
    # The first line declares the vertex count (and, for information, the arcs).
    assert head == ["#", "loom-graph", "vertices=%d" % nmax, "arcs=%d" % len(edges)], head
    parsed = collections.Counter((int(a), int(b), float(c)) for a, b, c in lines)
    assert parsed == want
    srcs = [int(l[0]) for l in lines]
    assert srcs == sorted(srcs), "edge list not in vertex order"

    # Undirected: both directions stored, directed = 0; graph.h counts 2 arcs per
    # edge, so a self-loop appears twice.
    und = os.path.join(TMP, "und.h5")
    loom("convert", src, "--undirected", "--out", und)
    _, directed, got = arcs_of_h5(und)
    assert directed == 0
    sym = collections.Counter()
    for (s, d, w), c in want.items():
        sym[(s, d, w)] += c
        sym[(d, s, w)] += c
    assert sum(got.values()) == sum(sym.values()), (sum(got.values()), sum(sym.values()))
    assert {(s, d) for s, d, _ in got} == {(s, d) for s, d, _ in sym}

    # A generated graph reads back in h5py with matching attributes.
    gen = os.path.join(TMP, "gen.h5")
    loom("generate", "kron", "--scale", "8", "--out", gen)
    gn, _, garcs = arcs_of_h5(gen)
    assert gn == 256 and sum(garcs.values()) > 0

    # A text bigger than one 8 MiB write round per rank: the edge list written
    # by `generate` holds the same arcs, in the same order, as the HDF5 CSR.
    big_h5, big_el = os.path.join(TMP, "g17.h5"), os.path.join(TMP, "g17.el")
    loom("generate", "kron", "--scale", "17", "--out", big_h5)
    loom("generate", "kron", "--scale", "17", "--out", big_el)
    with h5py.File(big_h5, "r") as f:
        off = f["graph/offsets"][:]
        tgt = f["graph/targets"][:]
    src = np.repeat(np.arange(len(off) - 1, dtype=np.uint64), np.diff(off).astype(np.int64))
    with open(big_el) as f:
        assert f.readline().startswith("# loom-graph vertices=131072 ")
        nums = np.array(f.read().split(), dtype=np.uint64)
    assert os.path.getsize(big_el) > 8 << 20
    assert len(nums) == 2 * len(tgt), (len(nums), len(tgt))
    assert np.array_equal(nums[0::2], src), "edge list sources differ from the CSR's"
    assert np.array_equal(nums[1::2], tgt), "edge list targets differ from the CSR's"
    os.unlink(big_h5)
    os.unlink(big_el)

    # Isolated vertices at the top of the id range survive an edge list: kron
    # scale 15 leaves vertex 32767 without arcs, so max id + 1 would be short.
    iso_el, iso_h5 = os.path.join(TMP, "k15.el"), os.path.join(TMP, "k15.h5")
    loom("generate", "kron", "--scale", "15", "--out", iso_el)
    with open(iso_el) as f:
        ids = np.array([l.split() for l in f if not l.startswith("#")], dtype=np.uint64)
    assert ids.max() + 1 < 1 << 15, "test premise: vertex 32767 should be isolated"
    loom("convert", iso_el, "--out", iso_h5)
    with h5py.File(iso_h5, "r") as f:
        assert int(f["graph"].attrs["num_vertices"]) == 1 << 15, f["graph"].attrs["num_vertices"]
        assert len(f["graph/offsets"]) == (1 << 15) + 1
    os.unlink(iso_el)
    os.unlink(iso_h5)

    # SNAP's own header declares the node count; here ids are dense, so it is
    # the vertex count (vertices 5..9 are isolated).
    snap = os.path.join(TMP, "snap.txt")
    with open(snap, "w") as f:
        f.write("# Directed graph (each unordered pair of nodes is saved once): snap.txt\n"
                "# Nodes: 10 Edges: 3\n# FromNodeId\tToNodeId\n0\t1\n1\t4\n4\t0\n")
    snap_h5 = os.path.join(TMP, "snap.h5")
    loom("convert", snap, "--format", "edgelist", "--out", snap_h5)
    got_n, _, got = arcs_of_h5(snap_h5)
    assert got_n == 10 and set(got) == {(0, 1, None), (1, 4, None), (4, 0, None)}, (got_n, got)

    leftovers = [e for e in os.listdir(TMP) if ".tmp-" in e]
    assert not leftovers, leftovers
    print("ok")


if __name__ == "__main__":
    main()
