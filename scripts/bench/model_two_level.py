#!/usr/bin/python3
"""Model of what Loom's record exchange sends between nodes, flat vs two-level, at scale.

Usage:
  /usr/bin/python3 scripts/bench/model_two_level.py [--nodes 64,128,256,512,1024]
      [--ranks-per-node 32 | 8,32,64] [--zipf-s 1.0] [--vocab 1e7]
      [--bytes-per-rank 1073741824] [--bytes-per-token 6] [--key-bytes 8]
      [--weak-base 22] [--strong-scale 30] [--edge-factor 16]
      [--bw-gbs 12.5] [--latency-us 2] [--shm-gbs 96] [--shm-latency-us 0.5]
      [--validate] [--validate-graph /tmp/loom-bench-pr/kron16.h5]
      [--validate-configs 5:2,9:4] [--scan 64:8,256:8,256:32,1024:32]
      [--wc-vocab 100000] [--wc-tokens 1200000] [--wc-reps 2] [--no-wordcount-validation]
      [--loom PATH] [--lock /tmp/loom-bench.lock]
      [--out-dir bench-out/two_level]

The exchange (src/dataplane/exchange.c) with a combiner, per round, on N nodes of c ranks
(P = N c data ranks; MapReduce and Pregel exchange over the workers):
  flat:      each rank sends every other rank its records, combined per key at the rank:
             P - c messages to other nodes; off-node records = keys of the rank whose
             destination is on another node.
  two-level: phase 1, within the node, each rank sends destination d's segment to d's relay
             (the member at d's place mod c); the relay combines the node's segments per key;
             phase 2, relays send one message per destination on another node: N - 1 per
             relay; off-node records = keys of the *node* whose destination is elsewhere.

1. Word count (MapReduce, sum combiner): Zipf(s) over V words, T tokens per rank (weak
   scaling; T = --bytes-per-rank / --bytes-per-token). The expected distinct words in m tokens
   is D(m) = sum_w 1 - (1 - p_w)^m, summed exactly over the 2^16 most frequent words and as
   an integral over the rest (the summand is smooth there: midpoint rule, Simpson in log w);
   the script checks this against exact summation at startup. Keys are hashed to the ranks,
   so a fraction (P - c)/P of them leaves the node:
     flat off-node records per rank   D(T) (P - c)/P
     two-level off-node records/node  D(c T) (P - c)/P            (/ c per rank)
   A record is varint(klen) varint(8) key u64 = key + 10 bytes, with --key-bytes the mean
   length of the *distinct* words shuffled (type-weighted, not token-weighted: 8 by default,
   above the ~5 of a token); each message carries a 12-byte segment header [u32 partition]
   [u64 length] (one partition per worker). A message is empty with probability exp(-keys it
   would carry). Rounds: a rank sends at most `room` bytes per destination per round
   (exchange.c: --memory 1G / 4 / 2 / P, within [64K, 8M]); messages are per round.
2. PageRank (Pregel, sum combiner, every vertex sends along every arc) on Graph500 Kronecker
   graphs (A, B, C, D = 0.57, 0.19, 0.19, 0.05; M = edge factor 2^S arcs; ids relabelled, so
   a vertex's rank is independent of its degree). Records are 16 bytes (u64 vertex, double),
   one per (sending rank or node, destination vertex). Vertex v with k one-bits:
     "pairs" (the tables): source u sends v an arc with probability 1 - exp(-M p_uv), p_uv
            the product of the initiator entries of the bit pairs (u_i, v_i); there are
            C(S-k, a) C(k, b) sources with a zero bits where v has 0 and b where v has 1. A
            set of ranks holding a fraction f of the vertices sends v nothing with probability
            prod_u (1 - f (1 - exp(-M p_uv))). Duplicate arcs are combined at the sender, so
            what counts is distinct sources, not arcs.
     "arcs" (the column marginal only): in-degree ~ Poisson(lambda_k), lambda_k = M 0.76^(S-k)
            0.24^k, each arc from an independent uniform rank: a fraction f sends nothing with
            probability exp(-lambda_k f). Over-counts where duplicates are common.
   With g(f) = 1 - P(nothing), summed over the C(S, k) vertices of each k:
     flat off-node records       sum_v (P - c) g(1/P)     (v's own node's c ranks excluded)
     two-level off-node records  sum_v (N - 1) g(c/P)
   Weak scaling: S = --weak-base + log2 P (2^base vertices, 16 2^base arcs per rank); strong
   scaling: S = --strong-scale. Rounds: the Pregel exchange's budget is exchange.c's default
   64M, so room = 32M/P within [64K, 8M], for the mean destination (the exchange goes on
   until the fullest is done: a lower bound).
3. Time of one exchange (alpha-beta; a node's c ranks share its NIC, B = --bw-gbs, and its
   memory for shared-memory MPI, B_shm = --shm-gbs per node; latency is paid per message on
   each rank, in parallel across ranks; per round):
     flat       alpha (P - c) + c bytes_rank / B   +  a_shm (c - 1) + c shm_rank / B_shm
     two-level  alpha (N - 1) + c bytes_rank / B   +  a_shm (c - 1) + c shm_rank / B_shm
                (phase 2)                             (phase 1, before phase 2: no overlap)
   with shm_rank what a rank sends its node's members: flat, its records for them ((c - 1)/P
   of its records); two-level, all but its own group's ((c - 1)/c). Left out: the count and
   size steps and the votes before each data step (flat: an MPI_Alltoall of P ints;
   two-level: sizes within the node, an MPI_Neighbor_alltoall of N - 1 ints), the relays'
   combining (each relay takes in as many records as a rank sends, and sorts or merges them:
   JSON relay_in_records), and the NIC's message rate (c (P - c) messages per node flat).
4. --validate: runs Loom on this machine with pretend nodes (--validate-configs RANKS:K:
   mpirun -np RANKS --node-ranks K; 5:2 puts the workers on nodes {1} {2,3} {4}, 9:4 on
   {1,2,3} {4..7} {8}), flat and two-level: `loom pagerank --exchange sparse --iters 2` on
   --validate-graph, and `loom wordcount` on a generated Zipf corpus; it compares the
   measured off-node bytes and messages with the model for those (uneven) node sizes, with
   the model's expectation from the graph's actual in-degrees and vertex ranges, and with the
   exact count from the edge list (`loom convert`; no h5py) under Loom's partition
   (loom_vertex_ranges of src/dataplane/partition.c, checked against `loom info`); and, for
   more ranks than this machine runs (--scan P:c), the exact count against the model. Every
   loom/mpirun command runs under flock --lock (the machine is shared).
Writes model.json to --out-dir and prints Markdown tables.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from one_node import one_node_env  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

KRON = (0.57, 0.19, 0.19, 0.05)  # io/gen.h: quadrants (src bit, dst bit) = 00, 01, 10, 11
PREGEL_REC = 16                  # u64 vertex id + double
SEG_HDR = 12                     # MapReduce segment header: u32 partition, u64 length
VAL_BYTES = 8                    # wordcount's u64 count
ROOM_FLOOR, ROOM_CAP = 64 << 10, 8 << 20  # exchange.c: bytes per destination per round


def log(msg):
    print(f"two-level: {msg}", file=sys.stderr, flush=True)


def lnC(n, k):
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def node_groups(sizes):
    """(size, how many nodes of that size) for a list of node sizes."""
    u, n = np.unique(np.asarray(sizes, dtype=np.int64), return_counts=True)
    return [(int(a), int(b)) for a, b in zip(u, n)]


# ---------------------------------------------------------------- Zipf vocabulary


def simpson_weights(n):
    w = np.ones(n + 1)
    w[1:-1:2], w[2:-1:2] = 4, 2
    return w / 3


class Zipf:
    """p_w = w^-s / H for w = 1..V. The first `head` words are kept one by one; the rest as
    quadrature nodes of the integral over [head + 1/2, V + 1/2] (midpoint rule: the summand
    changes by a factor (1 + 1/w)^-s between neighbours, so the error is O(w^-2) relative),
    Simpson in t = ln w with `nodes` intervals."""

    def __init__(self, V, s, head=1 << 16, nodes=4096):
        self.V, self.s = int(V), float(s)
        self.head = min(self.V, int(head))
        w = np.arange(1, self.head + 1, dtype=np.float64)
        wh = w ** -self.s
        if self.V > self.head:
            t = np.linspace(math.log(self.head + 0.5), math.log(self.V + 0.5), nodes + 1)
            x = np.exp(t)
            self.qw = simpson_weights(nodes) * (t[1] - t[0]) * x  # dw = w dt
            xt = x ** -self.s
        else:
            self.qw, xt = np.zeros(0), np.zeros(0)
        H = wh.sum() + (xt * self.qw).sum()
        self.p_head, self.p_tail = wh / H, xt / H

    @staticmethod
    def present(p, m):
        """Probability that a word of probability p occurs in m tokens: 1 - (1 - p)^m."""
        return -np.expm1(m * np.log1p(-p))

    def distinct(self, m):
        """Expected distinct words in m tokens."""
        tail = (self.present(self.p_tail, m) * self.qw).sum()
        return float(self.present(self.p_head, m).sum() + tail)

    def sample(self, rng, n):
        """n word indices (0-based) drawn from the distribution (exact head only)."""
        assert self.V == self.head
        cdf = np.cumsum(self.p_head)
        return np.minimum(np.searchsorted(cdf, rng.random(n) * cdf[-1]), self.V - 1)


def check_zipf():
    """The quadrature against exact summation: the worst relative error over a few cases."""
    worst, rows = 0.0, []
    for V, s in ((10 ** 5, 1.0), (10 ** 6, 1.0), (10 ** 6, 1.2), (2 * 10 ** 6, 0.8)):
        w = np.arange(1, V + 1, dtype=np.float64) ** -s
        p = w / w.sum()
        for head in (1024, 1 << 16):
            z = Zipf(V, s, head=head)
            for m in (1e3, 1e5, 1e7, 1e9):
                exact = float(Zipf.present(p, m).sum())
                err = abs(z.distinct(m) - exact) / exact
                worst = max(worst, err)
                rows.append({"V": V, "s": s, "head": head, "m": m, "exact": exact,
                             "rel_err": err})
    return worst, rows


# ---------------------------------------------------------------- word count


def wordcount_model(z, T, sizes, rec, alpha, bw, a_shm, bw_shm, budget=1 << 30):
    """Off-node bytes and messages of one word-count shuffle, totals over the ranks, for nodes
    of the given sizes; T tokens per rank, `rec` bytes per record. Per rank: divide by P."""
    sizes = np.asarray(sizes, dtype=np.int64)
    P = int(sizes.sum())
    dT = z.distinct(T)
    # mr_run.c: the exchange's budget is --memory / 4, half of it for sending, split over P
    room = min(max(budget // 4 // 2 // P, ROOM_FLOOR), ROOM_CAP)
    rounds = max(1, math.ceil(dT * rec / P / room))
    out = {"P": P, "N": len(sizes), "T": T, "distinct_rank": dT, "rec_bytes": rec, "room": room,
           "rounds": rounds}
    f = {"flat_bytes": 0.0, "flat_msgs": 0.0, "two_bytes": 0.0, "two_msgs": 0.0,
         "flat_shm_bytes": 0.0, "two_shm_bytes": 0.0}
    dnode = {}
    for c, cnt in node_groups(sizes):
        other = P - c
        # flat, each of the c ranks: its D(T) keys, hashed uniformly to the P ranks;
        # a message (rank -> rank) is empty with probability exp(-D/P) (Poisson)
        msgs = other * -math.expm1(-dT / P) * rounds
        f["flat_msgs"] += cnt * c * msgs
        f["flat_bytes"] += cnt * c * (dT * other / P * rec + SEG_HDR * msgs)
        f["flat_shm_bytes"] += cnt * c * dT * (c - 1) / P * rec
        # two-level, per node: D(c T) keys after the relays combined them
        dn = dnode[c] = z.distinct(c * T)
        msgs = other * -math.expm1(-dn / P) * rounds
        f["two_msgs"] += cnt * msgs
        f["two_bytes"] += cnt * (dn * other / P * rec + SEG_HDR * msgs)
        f["two_shm_bytes"] += cnt * c * dT * (c - 1) / c * rec
    out.update(f)
    out["distinct_node"] = dnode
    out["relay_in_records"] = dT  # c members x D(T)/c each, merged per key at the relay
    out.update(exchange_times(out, sizes, alpha, bw, a_shm, bw_shm, rounds))
    return out


def exchange_times(r, sizes, alpha, bw, a_shm, bw_shm, rounds=1):
    """Alpha-beta seconds of one exchange on a node of the most common size (the uniform case):
    per-message latency on each rank, the node's NIC shared by its ranks."""
    P = r["P"]
    c = max(node_groups(sizes), key=lambda g: g[1])[0]
    per = {k: r[k] / P for k in ("flat_bytes", "flat_msgs", "two_bytes", "two_msgs",
                                 "flat_shm_bytes", "two_shm_bytes")}
    shm_flat = a_shm * (c - 1) * rounds + c * per["flat_shm_bytes"] / bw_shm
    net_flat = alpha * per["flat_msgs"] + c * per["flat_bytes"] / bw
    shm_two = a_shm * (c - 1) * rounds + c * per["two_shm_bytes"] / bw_shm
    net_two = alpha * per["two_msgs"] + c * per["two_bytes"] / bw
    return {"t_flat": shm_flat + net_flat, "t_flat_net": net_flat, "t_flat_shm": shm_flat,
            "t_two": shm_two + net_two, "t_two_net": net_two, "t_two_shm": shm_two}


# ---------------------------------------------------------------- PageRank on Kronecker graphs


def kron_classes(S, M):
    """Per k = 0..S (one-bits of the target): ln C(S, k), lambda_k (mean arcs in), and the
    source classes (ln count, probability of at least one arc u -> v) for the pair model."""
    A, B, C, D = KRON
    out = []
    for k in range(S + 1):
        a = np.arange(S - k + 1)[:, None]  # source zero bits where v has a 0 bit (A; else C)
        b = np.arange(k + 1)[None, :]      # source zero bits where v has a 1 bit (B; else D)
        lcnt = np.array([[lnC(S - k, i) + lnC(k, j) for j in range(k + 1)]
                         for i in range(S - k + 1)])
        lp = (a * math.log(A) + (S - k - a) * math.log(C) + b * math.log(B)
              + (k - b) * math.log(D))
        pi = -np.expm1(-M * np.exp(lp))  # P(at least one arc u -> v), Poisson arcs
        lam = M * (A + C) ** (S - k) * (B + D) ** k
        out.append({"k": k, "ln_n": lnC(S, k), "lam": lam, "cnt": np.exp(lcnt).ravel(),
                    "pi": pi.ravel()})
    return out


def reach(cls, frac, method):
    """P(a set of ranks holding a fraction `frac` of the vertices sends a class-k vertex at
    least one message), per class."""
    if method == "arcs":
        return np.array([-math.expm1(-c["lam"] * frac) for c in cls])
    return np.array([-math.expm1(float((c["cnt"] * np.log1p(-c["pi"] * frac)).sum()))
                     for c in cls])


def pagerank_model(S, ef, sizes, method, alpha, bw, a_shm, bw_shm, cls=None, budget=64 << 20):
    """Off-node records, bytes and messages of one PageRank superstep, totals over the ranks,
    for nodes of the given sizes (vertices on each rank with probability 1/P)."""
    sizes = np.asarray(sizes, dtype=np.int64)
    P = int(sizes.sum())
    M = ef * 2.0 ** S
    cls = cls or kron_classes(S, M)
    n_k = np.exp([c["ln_n"] for c in cls])
    g_rank = reach(cls, 1.0 / P, method)
    groups = node_groups(sizes)
    g_node = {c: reach(cls, c / P, method) for c, _ in groups}
    # all (rank, vertex) pairs with a record: what every rank sends, its own node included
    recs_all = float((n_k * P * g_rank).sum())
    flat = two = 0.0
    flat_msgs = two_msgs = 0.0
    for cj, nj in groups:
        share = nj * cj / P  # the vertices on nodes of size cj
        flat += share * (P - cj) * float((n_k * g_rank).sum())
        for ci, ni in groups:
            # nodes of size ci other than v's own
            others = ni - (1 if ci == cj else 0)
            two += share * others * float((n_k * g_node[ci]).sum())
    # messages: a (sender, destination rank) pair is empty with probability exp(-records)
    per_pair = recs_all / P / P
    # exchange.c's rounds: at most `room` bytes per destination (the exchange's default
    # budget of 64M, half for sending, over P; within [64K, 8M]), for the mean destination
    room = min(max(budget // 2 // P, ROOM_FLOOR), ROOM_CAP)
    rounds = max(1, math.ceil(per_pair * PREGEL_REC / room))
    for ci, ni in groups:
        flat_msgs += ni * ci * (P - ci) * -math.expm1(-per_pair) * rounds
        to_rank = float((n_k * g_node[ci]).sum()) / P
        two_msgs += ni * (P - ci) * -math.expm1(-to_rank) * rounds
    c0 = max(groups, key=lambda g: g[1])[0]
    r = {"P": P, "N": len(sizes), "scale": S, "arcs": M, "vertices": 2.0 ** S, "method": method,
         "room": room, "rounds": rounds,
         "records_all": recs_all, "flat_records": flat, "two_records": two,
         "flat_bytes": flat * PREGEL_REC, "two_bytes": two * PREGEL_REC,
         "flat_msgs": flat_msgs, "two_msgs": two_msgs,
         "flat_shm_bytes": recs_all * (c0 - 1) / P * PREGEL_REC,
         "two_shm_bytes": recs_all * (c0 - 1) / c0 * PREGEL_REC,
         "relay_in_records": recs_all / P,  # c members x 1/c of a rank's records, sorted
         "unique_arcs": float(sum(nk * (c["cnt"] * c["pi"]).sum() for nk, c in zip(n_k, cls)))}
    r.update(exchange_times(r, sizes, alpha, bw, a_shm, bw_shm, rounds))
    return r


# ---------------------------------------------------------------- validation with Loom


class Runner:
    """loom and mpirun commands, each under flock (the machine is shared)."""

    def __init__(self, loom, lock):
        self.loom, self.lock = loom, lock

    def run(self, args, ranks=None, threads=1):
        cmd = [self.loom] + args
        if ranks:
            cmd = ["mpiexec", "-n", str(ranks), "--oversubscribe", "--bind-to", "none"] + cmd
        if self.lock:
            cmd = ["flock", self.lock] + cmd
        log(" ".join(cmd))
        t0 = time.time()
        r = subprocess.run(cmd, capture_output=True, text=True,
                           env=one_node_env(OMP_NUM_THREADS=str(threads)))
        if r.returncode != 0:
            sys.exit(f"two-level: {' '.join(cmd)} failed ({r.returncode}): {r.stderr[-800:]}")
        log(f"  {time.time() - t0:.1f} s (lock wait included)")
        return r

    def json(self, args, ranks=None):
        r = self.run(args + ["--json", "--quiet"], ranks)
        return json.loads(r.stdout.strip().splitlines()[-1])


def read_edges(runner, graph, work):
    """(n, src, dst) of a Loom graph, through `loom convert` to an edge list (no h5py)."""
    el = os.path.join(work, os.path.basename(graph) + ".el")
    if not (os.path.exists(el) and os.path.getmtime(el) > os.path.getmtime(graph)):
        runner.run(["convert", graph, "--out", el, "--quiet"])
    with open(el) as f:
        head = f.readline()
        data = np.array(f.read().split(), dtype=np.int64)
    n = int(head.split("vertices=")[1].split()[0])
    return n, data[0::2], data[1::2]


def loom_bounds(outd, ind, parts):
    """loom_vertex_ranges (src/dataplane/partition.c): contiguous ranges balanced by
    out + in + vw, vw = mean arcs per vertex; w's range starts at the first vertex whose
    cost prefix reaches w/parts of the total."""
    n = len(outd)
    cost = outd.astype(np.float64) + ind.astype(np.float64)
    vw = cost.sum() / n
    prefix = np.cumsum(cost + vw)  # prefix[v] = cost of vertices 0..v
    total = cost.sum() + vw * n
    b = [0]
    for w in range(1, parts):
        b.append(int(np.searchsorted(prefix, total * w / parts, side="left")) + 1)
    b.append(n)
    return np.array(b)


def info_bounds(runner, graph, ranks):
    """The worker ranges `loom info` prints at this many ranks."""
    r = runner.run(["info", graph], ranks=ranks)
    out = []
    for line in (r.stdout + r.stderr).splitlines():
        line = line.strip()
        if line.startswith("rank ") and "[" in line:
            lo, hi = line.split("[")[1].rstrip(")").split(",")
            if int(hi) > int(lo) or not out:
                out.append((int(lo), int(hi)))
    return out


def exact_offnode(n, src, dst, bounds, node_of_worker):
    """Off-node records of one superstep under the given worker ranges: distinct
    (rank of u, v) and (node of u, v) pairs whose v is on another node; and the nonempty
    (sender, destination rank) messages."""
    wr = np.searchsorted(bounds, np.arange(n), side="right") - 1  # worker of each vertex
    node = np.asarray(node_of_worker)[wr]
    W = len(bounds) - 1
    ru, rv = wr[src], wr[dst]
    off = node[src] != node[dst]
    flat_pairs = np.unique(dst[off] * W + ru[off])
    two_pairs = np.unique(dst[off] * W + node[src][off])
    flat_msgs = len(np.unique(ru[off] * W + rv[off]))
    two_msgs = len(np.unique(node[src][off] * W + rv[off]))
    return {"flat_records": int(len(flat_pairs)), "two_records": int(len(two_pairs)),
            "flat_msgs": flat_msgs, "two_msgs": two_msgs, "wr": wr, "node": node}


def degree_prediction(n, src, dst, bounds, node_of_worker, ex):
    """The model's expectation with the graph's actual in-degrees (distinct sources) and
    vertex placement: sources on rank r with probability (out-arcs of r) / arcs."""
    W = len(bounds) - 1
    pairs = np.unique(src * n + dst)
    d = np.bincount(pairs % n, minlength=n).astype(np.float64)  # distinct sources per v
    outr = np.bincount(ex["wr"][src], minlength=W).astype(np.float64)
    share = outr / outr.sum()
    nodes = sorted(set(node_of_worker))
    nshare = {i: share[[w for w in range(W) if node_of_worker[w] == i]].sum() for i in nodes}
    flat = two = 0.0
    for w in range(W):
        for v_node in nodes:
            mask = ex["node"] == v_node
            if node_of_worker[w] != v_node:
                flat += float((-np.expm1(d[mask] * math.log1p(-share[w]))).sum())
    for i in nodes:
        for v_node in nodes:
            if i != v_node:
                mask = ex["node"] == v_node
                two += float((-np.expm1(d[mask] * math.log1p(-nshare[i]))).sum())
    return {"flat_records": flat, "two_records": two, "distinct_arcs": int(len(pairs))}


def pretend_nodes(ranks, k):
    """Worker node sizes under --node-ranks k: pretend nodes group *job* ranks by rank / k, and
    the workers are job ranks 1..ranks-1 (rank 0 is the master)."""
    node_of_worker = [(w + 1) // k for w in range(ranks - 1)]
    return node_of_worker, [node_of_worker.count(i) for i in sorted(set(node_of_worker))]


def validate_pagerank(runner, graph, work, args, configs):
    n, src, dst = read_edges(runner, graph, work)
    outd = np.bincount(src, minlength=n)
    ind = np.bincount(dst, minlength=n)
    S = int(round(math.log2(n)))  # the file's scale; the generator's edge factor
    out = {"graph": graph, "arcs_file": int(len(src)), "self_loops": int((src == dst).sum()),
           "configs": []}
    for ranks, k in configs:
        workers = ranks - 1
        node_of_worker, sizes = pretend_nodes(ranks, k)
        meas = {}
        for tl in ("off", "on"):
            j = runner.json(["pagerank", graph, "--exchange", "sparse", "--iters", "2",
                             "--node-ranks", str(k), "--two-level", tl, "--threads", "1"], ranks)
            # run_supersteps: the last superstep (the one that stops) computes and counts its
            # messages but does not exchange them
            ex = j["supersteps"] - 1
            meas[tl] = {"json": {key: j.get(key) for key in
                                 ("supersteps", "iterations", "messages", "arcs",
                                  "exchange_nodes", "exchange_levels", "exchange_offnode_bytes",
                                  "exchange_offnode_messages")},
                        "exchanges": ex,
                        "bytes": j["exchange_offnode_bytes"] / ex,
                        "msgs": j["exchange_offnode_messages"] / ex}
        bounds = loom_bounds(outd, ind, workers)
        lb = info_bounds(runner, graph, ranks)
        same = [tuple(x) for x in zip(bounds[:-1].tolist(), bounds[1:].tolist())] == lb[-workers:]
        log(f"partition rule vs `loom info` at {ranks} ranks: {'same' if same else 'DIFFERENT'} "
            f"{bounds.tolist()} / {lb}")
        exact = exact_offnode(n, src, dst, bounds, node_of_worker)
        deg = degree_prediction(n, src, dst, bounds, node_of_worker, exact)
        models = {m: pagerank_model(S, args.edge_factor, sizes, m, 0, 1, 0, 1)
                  for m in ("pairs", "arcs")}
        rows = []
        for key, tl in (("flat", "off"), ("two", "on")):
            rows.append({"exchange": "flat" if key == "flat" else "two-level",
                         "measured_bytes": meas[tl]["bytes"], "measured_msgs": meas[tl]["msgs"],
                         "exact_bytes": exact[f"{key}_records"] * PREGEL_REC,
                         "exact_msgs": exact[f"{key}_msgs"],
                         "degrees_bytes": deg[f"{key}_records"] * PREGEL_REC,
                         "pairs_bytes": models["pairs"][f"{key}_bytes"],
                         "arcs_bytes": models["arcs"][f"{key}_bytes"],
                         "pairs_msgs": models["pairs"][f"{key}_msgs"]})
        out["distinct_arcs"] = deg["distinct_arcs"]
        out["model_unique_arcs"] = models["pairs"]["unique_arcs"]
        out["generated_arcs"] = models["pairs"]["arcs"]
        out["configs"].append({"ranks": ranks, "node_ranks": k, "node_sizes_workers": sizes,
                               "bounds": bounds.tolist(), "bounds_loom_info": lb,
                               "bounds_same": same, "measured": meas, "rows": rows})
    # More ranks than this machine can run: the exact count under Loom's partition rule (which
    # the runs above show Loom's counters to equal), where g(1/P) is far from saturated.
    out["scan"] = []
    for P, c in args.scan:
        bounds = loom_bounds(outd, ind, P)
        exact = exact_offnode(n, src, dst, bounds, [w // c for w in range(P)])
        row = {"P": P, "c": c}
        for m in ("pairs", "arcs"):
            mod = pagerank_model(S, args.edge_factor, [c] * (P // c), m, 0, 1, 0, 1)
            for key in ("flat", "two"):
                row[f"{m}_{key}_records"] = mod[f"{key}_records"]
                row[f"{m}_{key}_msgs"] = mod[f"{key}_msgs"]
        for key in ("flat", "two"):
            row[f"exact_{key}_records"] = exact[f"{key}_records"]
            row[f"exact_{key}_msgs"] = exact[f"{key}_msgs"]
        out["scan"].append(row)
    return out


def make_corpus(path, V, s, tokens, seed=7, per_line=12):
    """A Zipf corpus: word w (0-based) is a unique 4-letter base-26 code plus a
    suffix (0 to 8 letters, longer for rarer words); returns the word lengths."""
    assert V <= 26 ** 4
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    w = np.arange(V)
    code = ["".join(t) for t in zip(*(letters[(w // 26 ** i) % 26] for i in range(4)))]
    extra = np.minimum(8, (np.log2(w + 1) / 2).astype(int) + rng.integers(0, 2, V))
    words = np.array([c + "".join(rng.choice(letters, e)) for c, e in zip(code, extra)])
    z = Zipf(V, s, head=V)
    idx = z.sample(rng, tokens)
    lines = words[idx[: tokens - tokens % per_line]].reshape(-1, per_line)
    with open(path, "w") as f:
        f.write("\n".join(" ".join(line) for line in lines))
        f.write("\n")
    return z, np.array([len(x) for x in words], dtype=np.float64), len(lines) * per_line


def validate_wordcount(runner, work, args, configs):
    V, s, tokens = args.wc_vocab, args.zipf_s, args.wc_tokens
    corpus = os.path.join(work, f"zipf-{V}-{s:g}-{tokens}.txt")
    z, lens, tokens = make_corpus(corpus, V, s, tokens)
    # the record bytes of the words present in m tokens, each word with its own length
    recb = lambda m: float((Zipf.present(z.p_head, m) * (lens + 2 + VAL_BYTES)).sum())  # noqa
    out = {"corpus": corpus, "V": V, "s": s, "tokens": tokens,
           "distinct_total_model": z.distinct(tokens), "configs": []}
    for ranks, k in configs:
        _, sizes = pretend_nodes(ranks, k)
        meas = {"off": [], "on": []}
        for rep in range(args.wc_reps):
            for tl in ("off", "on"):
                j = runner.json(["wordcount", corpus, "--out", os.path.join(work, "wc-out"),
                                 "--overwrite", "--split-size", "64K", "--node-ranks", str(k),
                                 "--two-level", tl, "--threads", "1"], ranks)
                meas[tl].append({key: j.get(key) for key in
                                 ("input_records", "map_pairs", "shuffle_bytes", "shuffle_nodes",
                                  "shuffle_levels", "shuffle_offnode_bytes",
                                  "shuffle_offnode_messages", "output_records")})
        P = ranks - 1
        T = tokens / P  # map tasks are handed out dynamically: equal shares assumed
        flat = two = flat_m = two_m = 0.0
        for c, cnt in node_groups(sizes):
            # one round (the corpus is small), every message nonempty, one 12-byte header each
            flat_m += cnt * c * (P - c)
            two_m += cnt * (P - c)
            flat += cnt * c * (recb(T) * (P - c) / P + SEG_HDR * (P - c))
            two += cnt * (recb(c * T) * (P - c) / P + SEG_HDR * (P - c))
        rows = []
        for key, tl, pred, pm in (("flat", "off", flat, flat_m), ("two-level", "on", two, two_m)):
            rows.append({"exchange": key,
                         "measured_bytes": [m["shuffle_offnode_bytes"] for m in meas[tl]],
                         "measured_msgs": [m["shuffle_offnode_messages"] for m in meas[tl]],
                         "model_bytes": pred, "model_msgs": pm})
        out["distinct_total_measured"] = meas["off"][0]["output_records"]
        out["configs"].append({"ranks": ranks, "node_ranks": k, "node_sizes_workers": sizes,
                               "distinct_rank_model": z.distinct(T), "measured": meas,
                               "rows": rows})
    return out


# ---------------------------------------------------------------- tables


def rel(a, b):
    return f"{(a - b) / b:+.1%}" if b else "n/a"


def print_tables(wc, prw, prs, args):
    mb = 1e6
    for c in args.cs:
        rows = [r for r in wc if r["c"] == c]
        print(f"\n### Word count, c = {c} ranks/node: Zipf s = {args.zipf_s:g}, "
              f"V = {args.vocab:.3g}, T = {rows[0]['T']:.3g} tokens/rank, "
              f"{rows[0]['rec_bytes']:g} B/record; per rank: bytes and time of the whole "
              f"shuffle, messages per round\n")
        print("| N | P | distinct/rank | distinct/node | rounds | off-node MB/rank flat | "
              "two-level | two/flat | inter-node msgs/rank/round flat | two-level | "
              "t flat ms (net + shm) | t two-level ms (phase 2 + phase 1) | speedup |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            P, k = r["P"], r["rounds"]
            print(f"| {r['N']} | {P} | {r['distinct_rank']:.3g} | {r['distinct_node'][c]:.3g} | "
                  f"{k} | {r['flat_bytes'] / P / mb:.2f} | {r['two_bytes'] / P / mb:.3f} | "
                  f"{r['two_bytes'] / r['flat_bytes']:.4f} | {r['flat_msgs'] / P / k:.0f} | "
                  f"{r['two_msgs'] / P / k:.0f} | {r['t_flat'] * 1e3:.1f} "
                  f"({r['t_flat_net'] * 1e3:.1f} + {r['t_flat_shm'] * 1e3:.2f}) | "
                  f"{r['t_two'] * 1e3:.1f} ({r['t_two_net'] * 1e3:.1f} + "
                  f"{r['t_two_shm'] * 1e3:.1f}) | {r['t_flat'] / r['t_two']:.1f} |")
    for name, res in (("weak", prw), ("strong", prs)):
        for c in args.cs:
            rows = [r for r in res if r["c"] == c]
            if name == "weak":
                what = (f"kron:(base {args.weak_base} + log2 P): 2^{args.weak_base} vertices, "
                        f"{args.edge_factor} 2^{args.weak_base} arcs per rank")
            else:
                what = f"kron:{args.strong_scale}"
            print(f"\n### PageRank ({name}), c = {c} ranks/node: {what}; per rank: bytes and time "
                  f"of one superstep, messages per round (16 B records, pair model; `arcs`: the "
                  f"column-marginal model)\n")
            print("| N | P | graph | rounds | off-node MB/rank flat | two-level | two/flat | "
                  "two/flat (arcs) | inter-node msgs/rank/round flat | two-level | "
                  "t flat ms (net + shm) | t two-level ms (phase 2 + phase 1) | speedup |")
            print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
            for r in rows:
                P, a, k = r["P"], r["arcs_model"], r["rounds"]
                print(f"| {r['N']} | {P} | kron:{r['scale']} | {k} | "
                      f"{r['flat_bytes'] / P / mb:.2f} | "
                      f"{r['two_bytes'] / P / mb:.2f} | {r['two_bytes'] / r['flat_bytes']:.3f} | "
                      f"{a['two_bytes'] / a['flat_bytes']:.3f} | {r['flat_msgs'] / P / k:.0f} | "
                      f"{r['two_msgs'] / P / k:.0f} | {r['t_flat'] * 1e3:.1f} "
                      f"({r['t_flat_net'] * 1e3:.1f} + {r['t_flat_shm'] * 1e3:.2f}) | "
                      f"{r['t_two'] * 1e3:.1f} ({r['t_two_net'] * 1e3:.1f} + "
                      f"{r['t_two_shm'] * 1e3:.1f}) | {r['t_flat'] / r['t_two']:.2f} |")
    if len(args.cs) > 1:
        print("\n### Off-node bytes two-level / flat, by ranks per node\n")
        print("| N | " + " | ".join(f"wc c={c} | PR weak c={c} | PR strong c={c}" for c in args.cs)
              + " |")
        print("|---|" + "---|---|---|" * len(args.cs))
        for N in args.nodes:
            cells = []
            for c in args.cs:
                for res in (wc, prw, prs):
                    r = next(x for x in res if x["N"] == N and x["c"] == c)
                    cells.append(f"{r['two_bytes'] / r['flat_bytes']:.3f}")
            print(f"| {N} | " + " | ".join(cells) + " |")


def print_validation(v):
    if "pagerank" in v:
        p = v["pagerank"]
        print(f"\n### Validation: PageRank on {p['graph']}, --exchange sparse --iters 2; off-node "
              f"bytes and messages per exchange (supersteps - 1 of them), all ranks\n")
        print(f"graph: {p['arcs_file']} arcs ({p['distinct_arcs']} distinct, {p['self_loops']} "
              f"self-loops); generator: {p['generated_arcs']:.0f} arcs, for which the pair model "
              f"expects {p['model_unique_arcs']:.0f} distinct "
              f"({rel(p['model_unique_arcs'], p['distinct_arcs'])}); partition rule = `loom info`: "
              f"{all(c['bounds_same'] for c in p['configs'])}\n")
        print("| -np, --node-ranks (worker nodes) | exchange | measured B | exact (edge list) B | "
              "degrees model B | pair model B | arcs model B | measured msgs | exact msgs | "
              "model msgs |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for c in p["configs"]:
            for r in c["rows"]:
                m = r["measured_bytes"]
                print(f"| {c['ranks']}, {c['node_ranks']} {c['node_sizes_workers']} | "
                      f"{r['exchange']} | {m:.0f} | {r['exact_bytes']:.0f} "
                      f"({rel(r['exact_bytes'], m)}) | {r['degrees_bytes']:.0f} "
                      f"({rel(r['degrees_bytes'], m)}) | {r['pairs_bytes']:.0f} "
                      f"({rel(r['pairs_bytes'], m)}) | {r['arcs_bytes']:.0f} "
                      f"({rel(r['arcs_bytes'], m)}) | {r['measured_msgs']:g} | "
                      f"{r['exact_msgs']} | {r['pairs_msgs']:.1f} |")
        for c in p["configs"]:
            f, t = c["rows"]
            print(f"\ntwo/flat at -np {c['ranks']}: measured "
                  f"{t['measured_bytes'] / f['measured_bytes']:.3f}, exact "
                  f"{t['exact_bytes'] / f['exact_bytes']:.3f}, degrees "
                  f"{t['degrees_bytes'] / f['degrees_bytes']:.3f}, pair model "
                  f"{t['pairs_bytes'] / f['pairs_bytes']:.3f}, arcs model "
                  f"{t['arcs_bytes'] / f['arcs_bytes']:.3f}")
        print(f"\n### Validation at more ranks: off-node records of one superstep on {p['graph']}, "
              f"exact (edge list, Loom's partition rule, nodes of c consecutive ranks) vs model\n")
        print("| P | c | flat exact | pair model | arcs model | two-level exact | pair model | "
              "arcs model | msgs flat exact / model | two-level exact / model |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for r in p["scan"]:
            cells = []
            for key in ("flat", "two"):
                e = r[f"exact_{key}_records"]
                cells += [f"{e}", f"{r[f'pairs_{key}_records']:.0f} "
                          f"({rel(r[f'pairs_{key}_records'], e)})",
                          f"{r[f'arcs_{key}_records']:.0f} ({rel(r[f'arcs_{key}_records'], e)})"]
            cells += [f"{r[f'exact_{k}_msgs']} / {r[f'pairs_{k}_msgs']:.0f}"
                      for k in ("flat", "two")]
            print(f"| {r['P']} | {r['c']} | " + " | ".join(cells) + " |")
    if "wordcount" in v:
        w = v["wordcount"]
        print(f"\n### Validation: word count on a generated Zipf corpus (V = {w['V']}, "
              f"s = {w['s']:g}, {w['tokens']} tokens); the model gives each worker an equal share "
              f"of the tokens\n")
        print(f"distinct words: measured {w['distinct_total_measured']}, model "
              f"{w['distinct_total_model']:.0f} "
              f"({rel(w['distinct_total_model'], w['distinct_total_measured'])})\n")
        print("| -np, --node-ranks (worker nodes) | exchange | measured off-node B (runs) | "
              "model B | error (vs mean) | measured msgs | model msgs |")
        print("|---|---|---|---|---|---|---|")
        for c in w["configs"]:
            for r in c["rows"]:
                mean = sum(r["measured_bytes"]) / len(r["measured_bytes"])
                print(f"| {c['ranks']}, {c['node_ranks']} {c['node_sizes_workers']} | "
                      f"{r['exchange']} | {', '.join(str(b) for b in r['measured_bytes'])} | "
                      f"{r['model_bytes']:.0f} | {rel(r['model_bytes'], mean)} | "
                      f"{', '.join(str(b) for b in r['measured_msgs'])} | "
                      f"{r['model_msgs']:.0f} |")


# ---------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nodes", default="64,128,256,512,1024")
    ap.add_argument("--ranks-per-node", default="32", help="c, or a list: 8,32,64")
    ap.add_argument("--zipf-s", type=float, default=1.0)
    ap.add_argument("--vocab", type=float, default=1e7, help="V, distinct words")
    ap.add_argument("--bytes-per-rank", type=float, default=float(1 << 30),
                    help="text per rank (weak scaling)")
    ap.add_argument("--bytes-per-token", type=float, default=6.0,
                    help="average token with its separator")
    ap.add_argument("--key-bytes", type=float, default=8.0,
                    help="average length of the distinct words that are shuffled")
    ap.add_argument("--weak-base", type=int, default=22,
                    help="weak scaling: kron:(base + log2 P), 2^base vertices per rank")
    ap.add_argument("--strong-scale", type=int, default=30)
    ap.add_argument("--edge-factor", type=int, default=16)
    ap.add_argument("--bw-gbs", type=float, default=12.5, help="NIC bandwidth per node, GB/s")
    ap.add_argument("--latency-us", type=float, default=2.0)
    ap.add_argument("--shm-gbs", type=float, default=96.0,
                    help="shared-memory MPI bandwidth per node, GB/s, shared by its ranks "
                         "(96: the 3 GB/s per rank model_scaling.py uses, at c = 32)")
    ap.add_argument("--shm-latency-us", type=float, default=0.5)
    ap.add_argument("--validate", action="store_true")
    ap.add_argument("--validate-graph", default="/tmp/loom-bench-pr/kron16.h5")
    ap.add_argument("--validate-configs", default="5:2,9:4",
                    help="RANKS:K,... runs at -np RANKS with --node-ranks K")
    ap.add_argument("--scan", default="64:8,256:8,256:32,1024:32",
                    help="P:c,... exact off-node counts from the edge list at more ranks")
    ap.add_argument("--no-wordcount-validation", action="store_true")
    ap.add_argument("--wc-vocab", type=int, default=100000)
    ap.add_argument("--wc-tokens", type=int, default=1200000)
    ap.add_argument("--wc-reps", type=int, default=2)
    ap.add_argument("--loom", default=os.environ.get("LOOM",
                                                     os.path.join(ROOT, "build/release/loom")))
    ap.add_argument("--lock", default="/tmp/loom-bench.lock",
                    help="flock file around every loom run ('' for none)")
    ap.add_argument("--out-dir", default=os.path.join(ROOT, "bench-out", "two_level"))
    args = ap.parse_args()
    args.nodes = [int(x) for x in args.nodes.split(",")]
    args.cs = [int(x) for x in args.ranks_per_node.split(",")]
    args.scan = [tuple(int(x) for x in c.split(":")) for c in args.scan.split(",") if c]
    os.makedirs(args.out_dir, exist_ok=True)
    t0 = time.time()

    worst, zrows = check_zipf()
    log(f"distinct-words quadrature vs exact summation (V <= 2e6, 16 cases): worst relative "
        f"error {worst:.2e}")
    if worst > 1e-4:
        sys.exit("two-level: the distinct-words quadrature disagrees with exact summation")

    alpha, bw = args.latency_us * 1e-6, args.bw_gbs * 1e9
    a_shm, bw_shm = args.shm_latency_us * 1e-6, args.shm_gbs * 1e9  # per node
    z = Zipf(args.vocab, args.zipf_s)
    T = args.bytes_per_rank / args.bytes_per_token
    rec = args.key_bytes + 2 + VAL_BYTES
    wc, prw, prs = [], [], []
    strong_cls = kron_classes(args.strong_scale, args.edge_factor * 2.0 ** args.strong_scale)
    for c in args.cs:
        for N in args.nodes:
            sizes = [c] * N
            r = wordcount_model(z, T, sizes, rec, alpha, bw, a_shm, bw_shm)
            r["c"] = c
            wc.append(r)
            S = args.weak_base + int(round(math.log2(N * c)))
            weak_cls = kron_classes(S, args.edge_factor * 2.0 ** S)
            for res, scale, cls in ((prw, S, weak_cls), (prs, args.strong_scale, strong_cls)):
                r = pagerank_model(scale, args.edge_factor, sizes, "pairs", alpha, bw, a_shm,
                                   bw_shm, cls)
                r["arcs_model"] = pagerank_model(scale, args.edge_factor, sizes, "arcs", alpha,
                                                 bw, a_shm, bw_shm, cls)
                r["c"] = c
                res.append(r)
    log(f"model: {time.time() - t0:.1f} s")

    val = {}
    if args.validate:
        work = os.path.join(args.out_dir, "validate")
        os.makedirs(work, exist_ok=True)
        runner = Runner(args.loom, args.lock)
        configs = [tuple(int(x) for x in c.split(":")) for c in args.validate_configs.split(",")]
        val["pagerank"] = validate_pagerank(runner, args.validate_graph, work, args, configs)
        if not args.no_wordcount_validation:
            val["wordcount"] = validate_wordcount(runner, work, args, configs)

    summary = {"args": {k: v for k, v in vars(args).items()}, "zipf_check": zrows,
               "zipf_check_worst": worst, "wordcount": wc, "pagerank_weak": prw,
               "pagerank_strong": prs, "validation": val}
    path = os.path.join(args.out_dir, "model.json")
    with open(path, "w") as f:
        json.dump(summary, f, indent=1, sort_keys=True, default=float)

    print(f"# Two-level exchange model: alpha {args.latency_us:g} us, {args.bw_gbs:g} GB/s per "
          f"node NIC; within a node {args.shm_latency_us:g} us, {args.shm_gbs:g} GB/s per node")
    print_tables(wc, prw, prs, args)
    if val:
        print_validation(val)
    print(f"\nfiles: {path} ({time.time() - t0:.1f} s)")


if __name__ == "__main__":
    main()
