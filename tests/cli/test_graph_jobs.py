#!/usr/bin/env python3
"""loom pagerank / sssp / cc end to end against networkx, at LOOM_NP ranks.

Loom's rules, mirrored in the networkx graphs built here:
- pagerank takes the graph as given: a duplicate edge is a parallel arc (networkx
  MultiDiGraph), a self-loop is an arc v->v; --drop-duplicates gives a DiGraph.
  Weights are ignored (networkx weight=None).
- sssp follows out-arcs with the edge weights (1 when none); the lightest of
  parallel arcs counts, as in networkx's Dijkstra on a MultiDiGraph.
- cc is weak connectivity; the label is the smallest vertex id of the component.
"""
import json
import math
import os
import random
import shlex
import subprocess
import sys

import networkx as nx

LOOM = os.environ["LOOM"]
MPIEXEC = shlex.split(os.environ.get("LOOM_MPIEXEC", ""))
TMP = os.environ.get("LOOM_TMP", "/tmp")
NP = os.environ.get("LOOM_NP", "1")
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, file=sys.stderr)


def loom(args, ranks=True, expect=0):
    cmd = (MPIEXEC if ranks else []) + [LOOM] + args
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if p.returncode != expect:
        print("command:", " ".join(cmd), "\nexit", p.returncode, "\n", p.stderr[-3000:],
              file=sys.stderr)
        raise SystemExit(1)
    return p


def read_values(path):
    vals = {}
    with open(path) as f:
        for line in f:
            v, x = line.split("\t")
            vals[int(v)] = float(x)  # float("inf") parses "inf"
    return vals


def make_graph(n, m, seed, weighted):
    """A skewed random directed multigraph: about a third of the vertices have
    no out-arcs (dangling), some are isolated, with duplicates and self-loops."""
    rnd = random.Random(seed)
    sources = [v for v in range(n) if v % 3 != 0]
    isolated = set(range(5, n, 97))
    edges = []
    while len(edges) < m:
        u = rnd.choice(sources)
        v = int(n * rnd.random() ** 2)  # skew in-degrees towards small ids
        if u in isolated or v in isolated:
            continue
        w = round(rnd.uniform(0.5, 10.0), 3)
        edges.append((u, v, w))
        r = rnd.random()
        if r < 0.05:
            edges.append((u, v, round(rnd.uniform(0.5, 10.0), 3)))  # duplicate arc
        elif r < 0.07:
            edges.append((u, u, w))  # self-loop
    edges.append((1, n - 1, 1.0))  # fixes the vertex count at n
    path = os.path.join(TMP, "g%d%s.el" % (seed, "w" if weighted else ""))
    with open(path, "w") as f:
        f.write("# test graph: %d vertices\n" % n)
        for u, v, w in edges:
            f.write("%d %d %s\n" % (u, v, w) if weighted else "%d %d\n" % (u, v))
    return path, edges


def multidigraph(n, edges, weighted=False):
    g = nx.MultiDiGraph()
    g.add_nodes_from(range(n))
    for u, v, w in edges:
        if weighted:
            g.add_edge(u, v, weight=w)
        else:
            g.add_edge(u, v)
    return g


def max_diff(a, b, n):
    return max(abs(a[v] - b[v]) for v in range(n))


N, M = 3000, 15000
path, edges = make_graph(N, M, 7, False)
G = multidigraph(N, edges)

# --------------------------------------------------------------- pagerank
out = os.path.join(TMP, "pr.txt")
p = loom(["pagerank", path, "--tol", "1e-13", "--max-iters", "1000", "--out", out])
pr = read_values(out)
ref = nx.pagerank(G, alpha=0.85, tol=1e-12, max_iter=1000, weight=None)
check(len(pr) == N, "pagerank writes one line per vertex")
check(max_diff(pr, ref, N) <= 1e-6, "pagerank vs networkx (multigraph): %g" % max_diff(pr, ref, N))
check(abs(sum(pr.values()) - 1.0) < 1e-9, "pagerank scores sum to 1")
check("superstep" in p.stderr and "residual" in p.stderr, "pagerank shows progress")

# The same run on one rank gives the same scores.
out1 = os.path.join(TMP, "pr1.txt")
loom(["pagerank", path, "--tol", "1e-13", "--max-iters", "1000", "--out", out1, "--quiet"],
     ranks=False)
pr1 = read_values(out1)
check(max_diff(pr, pr1, N) <= 1e-12, "pagerank equal at 1 and %s ranks" % NP)

# Sparse exchange gives the same result as the dense one.
outs = os.path.join(TMP, "prs.txt")
loom(["pagerank", path, "--iters", "30", "--exchange", "sparse", "--out", outs, "--quiet"])
outd = os.path.join(TMP, "prd.txt")
loom(["pagerank", path, "--iters", "30", "--exchange", "dense", "--out", outd, "--quiet"])
check(max_diff(read_values(outs), read_values(outd), N) <= 1e-13, "sparse and dense exchange agree")

# Pretend nodes of 2 ranks with the two-level exchange: relays combine each node's messages
# before they cross nodes; the scores are networkx's all the same.
outn = os.path.join(TMP, "prn.txt")
p = loom(["pagerank", path, "--tol", "1e-13", "--max-iters", "1000", "--exchange", "sparse",
          "--node-ranks", "2", "--two-level", "on", "--json", "--out", outn, "--quiet"])
s2 = json.loads(p.stdout)
workers = range(1, int(NP)) if int(NP) > 1 else [0]
check(s2["exchange_levels"] == 2 and s2["exchange_nodes"] == len({r // 2 for r in workers}),
      "pagerank over pretend nodes: %r" % s2)
check(max_diff(read_values(outn), ref, N) <= 1e-6,
      "pagerank, two-level exchange over pretend nodes, vs networkx: %g"
      % max_diff(read_values(outn), ref, N))

# The dense exchange's two kernels (blocked: partition-centric bins, chosen for sums on graphs
# larger than a quarter of the L3; gather over in-edges) add the same values in the same
# order: equal bit for bit. Float values in the blocked kernel's bins (sums in double) stay
# within the tolerance against networkx.
outg = os.path.join(TMP, "prg.txt")
loom(["pagerank", path, "--iters", "30", "--pull", "gather", "--out", outg, "--quiet"])
outbl = os.path.join(TMP, "prbl.txt")
loom(["pagerank", path, "--iters", "30", "--pull", "blocked", "--out", outbl, "--quiet"])
check(max_diff(read_values(outg), read_values(outbl), N) == 0.0,
      "blocked and gather kernels agree")
outf = os.path.join(TMP, "prf.txt")
loom(["pagerank", path, "--tol", "1e-10", "--max-iters", "1000", "--pull-values", "float",
      "--out", outf, "--quiet"])
check(max_diff(read_values(outf), ref, N) <= 1e-6,
      "pagerank --pull-values float vs networkx: %g" % max_diff(read_values(outf), ref, N))

# More vertices than one partition of the blocked kernel (2^15) holds, so that its bins span
# several partitions (at 1-2 ranks) and, at 3-4 ranks, each worker's mirrors.
NB, MB = 40000, 120000
rnd = random.Random(11)
big_edges = [(rnd.randrange(NB), int(NB * rnd.random() ** 2)) for _ in range(MB)]
big = os.path.join(TMP, "big.el")
with open(big, "w") as f:
    f.write("".join("%d %d\n" % e for e in big_edges + [(0, NB - 1)]))
B = nx.MultiDiGraph()
B.add_nodes_from(range(NB))
B.add_edges_from(big_edges + [(0, NB - 1)])
refb = nx.pagerank(B, alpha=0.85, tol=1e-12, max_iter=1000, weight=None)
# Over pretend nodes of 2 ranks the mirrors of a node's workers are written in shared
# memory and the rest travel by MPI (at 4 ranks: workers {1} and {2, 3}).
for extra in (["--pull", "blocked"], ["--pull-values", "float"],
              ["--pull", "blocked", "--node-ranks", "2"]):
    outb = os.path.join(TMP, "prb.txt")
    loom(["pagerank", big, "--tol", "1e-10", "--max-iters", "1000", "--out", outb, "--quiet"]
         + extra)
    check(max_diff(read_values(outb), refb, NB) <= 1e-6,
          "pagerank %s on %d vertices vs networkx: %g"
          % (" ".join(extra), NB, max_diff(read_values(outb), refb, NB)))

# Duplicates dropped: a simple digraph.
outdd = os.path.join(TMP, "prdd.h5")
loom(["pagerank", path, "--tol", "1e-13", "--max-iters", "1000", "--drop-duplicates",
      "--out", outdd, "--quiet"])
D = nx.DiGraph()
D.add_nodes_from(range(N))
D.add_edges_from((u, v) for u, v, _ in edges)
refd = nx.pagerank(D, alpha=0.85, tol=1e-12, max_iter=1000, weight=None)
try:
    import h5py

    with h5py.File(outdd, "r") as f:
        prd = list(f["pagerank"][:])
    check(len(prd) == N and max_diff(prd, refd, N) <= 1e-6,
          "pagerank --drop-duplicates (.h5) vs networkx DiGraph")
except ImportError:
    print("h5py missing: .h5 output not checked", file=sys.stderr)

# Undirected, no self-loops: networkx MultiGraph.
outu = os.path.join(TMP, "pru.txt")
loom(["pagerank", path, "--undirected", "--drop-self-loops", "--tol", "1e-13", "--max-iters",
      "1000", "--out", outu, "--quiet"])
U = nx.MultiGraph()
U.add_nodes_from(range(N))
U.add_edges_from((u, v) for u, v, _ in edges if u != v)
refu = nx.pagerank(U, alpha=0.85, tol=1e-12, max_iter=1000, weight=None)
check(max_diff(read_values(outu), refu, N) <= 1e-6, "pagerank --undirected vs networkx")

# --dangling ignore (GAP's definition), 20 fixed iterations, by plain power iteration.
outi = os.path.join(TMP, "pri.txt")
loom(["pagerank", path, "--dangling", "ignore", "--iters", "20", "--out", outi, "--quiet"])
outdeg = [0] * N
for u, v, _ in edges:
    outdeg[u] += 1
x = [1.0 / N] * N
for _ in range(20):
    y = [0.0] * N
    for u, v, _ in edges:
        y[v] += x[u] / outdeg[u]
    x = [0.15 / N + 0.85 * y[v] for v in range(N)]
check(max_diff(read_values(outi), x, N) <= 1e-12, "pagerank --dangling ignore")

# --top K
p = loom(["pagerank", path, "--tol", "1e-13", "--max-iters", "1000", "--top", "5", "--quiet"])
top = [int(line.split("\t")[1]) for line in p.stdout.strip().splitlines()]
want = sorted(range(N), key=lambda v: (-ref[v], v))[:5]
check(top == want, "pagerank --top 5: %s vs %s" % (top, want))

# --------------------------------------------------------------- sssp
wpath, wedges = make_graph(N, M, 11, True)
W = multidigraph(N, wedges, weighted=True)
for src in (1, 4):
    outw = os.path.join(TMP, "sssp%d.txt" % src)
    loom(["sssp", wpath, "--source", str(src), "--out", outw, "--quiet"])
    got = read_values(outw)
    dist = nx.single_source_dijkstra_path_length(W, src, weight="weight")
    bad = [v for v in range(N)
           if (v in dist and abs(got[v] - dist[v]) > 1e-9 * max(1.0, dist[v]))
           or (v not in dist and not math.isinf(got[v]))]
    check(not bad, "sssp weighted from %d: %d vertices differ, e.g. %s" % (src, len(bad), bad[:3]))
# Unweighted: hop counts.
outh = os.path.join(TMP, "ssspu.txt")
loom(["sssp", path, "--source", "2", "--out", outh, "--quiet"])
got = read_values(outh)
hops = nx.single_source_shortest_path_length(G, 2)
check(all((got[v] == hops[v]) if v in hops else math.isinf(got[v]) for v in range(N)),
      "sssp unweighted")
outh2 = os.path.join(TMP, "ssspn.txt")
loom(["sssp", path, "--source", "2", "--node-ranks", "2", "--two-level", "on", "--out", outh2,
      "--quiet"])
got = read_values(outh2)
check(all((got[v] == hops[v]) if v in hops else math.isinf(got[v]) for v in range(N)),
      "sssp unweighted, two-level exchange over pretend nodes")
p = loom(["sssp", path, "--source", str(N)], expect=2)
check("--source" in p.stderr, "sssp names a bad --source")

# --------------------------------------------------------------- cc
outc = os.path.join(TMP, "cc.txt")
loom(["cc", path, "--out", outc, "--quiet"])
lab = read_values(outc)
want = {}
for comp in nx.weakly_connected_components(G):
    m = min(comp)
    for v in comp:
        want[v] = m
check(all(lab[v] == want[v] for v in range(N)), "cc vs weakly_connected_components")
loom(["cc", path, "--node-ranks", "1", "--two-level", "on", "--out", outc, "--quiet"])
lab = read_values(outc)
check(all(lab[v] == want[v] for v in range(N)),
      "cc, two-level exchange with one pretend node per rank, vs networkx")

p = loom(["pagerank", path, "--dangling", "sideways"], expect=2)
check("dangling" in p.stderr, "bad --dangling is a usage error")
p = loom(["pagerank", path, "--pull", "gather", "--pull-values", "float"], expect=2)
check("--pull-values float" in p.stderr, "float values need the blocked kernel")
p = loom(["sssp", path, "--source", "1", "--pull", "blocked"], expect=2)
check("--pull blocked" in p.stderr, "the blocked kernel only sums")

if failures:
    print("%d failure(s)" % len(failures), file=sys.stderr)
    sys.exit(1)
print("ok")
