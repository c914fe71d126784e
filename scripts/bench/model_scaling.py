#!/usr/bin/python3
"""Scaling model of Loom's PageRank from the real partitioner, beside what this machine measures.

Usage:
  /usr/bin/python3 scripts/bench/model_scaling.py [--graph kron:22] [--directed]
      [--parts 2,4,...,1024] [--weak-base 16] [--bw-gbs 12.5] [--latency-us 2]
      [--ns-per-arc X] [--measure] [--measure-graph kron:20] [--reps 3]
      [--build DIR] [--loom PATH] [--out-dir bench-out/model]

1. Builds scripts/bench/partition_model.c against libloom (the build directory's)
   and runs it: the graph is loaded as `loom pagerank` loads it and cut into P
   worker ranges by io/csr.c's rule (the tool checks its copy of the rule against
   real builds at 2-5 ranks with --check); for every P it reports vertices and arcs
   per worker, ghosts (distinct remote destinations) and the bytes one PageRank
   superstep moves in Loom's two exchange modes:
     sparse: 16-byte (id, value) records, combined per destination at the sender,
             MPI_Alltoallv;
     dense:  MPI_Allgatherv of 8-byte published values, 8 (n - n_w) bytes in per worker;
     mirrors (what PageRank uses now): 8-byte values of exactly the remote sources with
             arcs into the worker (in: its ghosts; out: one value per (own vertex, rank it
             has arcs into), the sparse records' count for a symmetric graph), one
             MPI_Alltoallv (src/dataplane/halo.c).
2. Predicts seconds per iteration on a cluster with one rank per node:
     t(P) = c_arc * max_w arcs_w / T  +  bytes_w / B + alpha (P - 1)  +  2 alpha log2 P
   (compute, exchange, the per-superstep MPI_Allreduce), with B = --bw-gbs per
   node and alpha = --latency-us. c_arc, seconds per arc per thread, comes from a
   measured 1-rank run on this machine (--ns-per-arc overrides it).
   Strong scaling: --graph at every P. Weak scaling: kron:(base + log2 P).
3. With --measure, runs `loom pagerank --measure-graph` at 1-4 ranks x 1-2 threads
   (--reps each, median and spread), and predicts the same configurations with
   the same formula using this machine's shared-memory MPI (B = 3 GB/s per rank,
   alpha = 0.5 us, 2 cores), so model and measurement sit side by side.
Writes JSON lines, a summary JSON and PNG plots to --out-dir and prints tables.
"""

import argparse
import glob
import json
import math
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from one_node import one_node_env  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def log(msg):
    print(f"model: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- tools


def find_build(given):
    cands = [given] if given else []
    cands += [os.path.join(ROOT, d) for d in ("build/release", "build")]
    cands += sorted(glob.glob(os.path.join(ROOT, "build*")))
    for c in cands:
        if c and os.path.isfile(os.path.join(c, "libloom.so")) and \
                os.path.isfile(os.path.join(c, "include", "loom", "version.h")):
            return os.path.abspath(c)
    sys.exit("model: no build directory with libloom.so (build Loom, or pass --build)")


def build_tool(build, out_dir):
    exe = os.path.join(out_dir, "partition_model")
    src = os.path.join(HERE, "partition_model.c")
    lib = os.path.join(build, "libloom.so")
    if os.path.exists(exe) and os.path.getmtime(exe) > max(os.path.getmtime(src),
                                                           os.path.getmtime(lib)):
        return exe
    cmd = ["mpicc", "-std=c11", "-O2", "-fopenmp", "-D_GNU_SOURCE", "-Wall", "-Wextra",
           "-Wno-unused-parameter", f"-I{os.path.join(ROOT, 'include')}",
           f"-I{os.path.join(build, 'include')}", src, f"-L{build}", "-lloom",
           f"-Wl,-rpath,{build}", "-o", exe]
    log(" ".join(cmd))
    subprocess.run(cmd, check=True)
    return exe


def mpi_env(threads=None):
    env = one_node_env()
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def partition_stats(exe, graph, parts, directed, cache):
    """JSON records of partition_model for graph at the given worker counts (cached)."""
    key = f"{graph}{'' if directed else ':und'}"
    want = [p for p in parts if (key, p) not in cache]
    if want:
        cmd = [exe, graph, "--quiet", "--parts", ",".join(map(str, want))]
        if not directed:
            cmd.append("--undirected")
        log(" ".join(cmd))
        r = subprocess.run(cmd, check=True, capture_output=True, text=True, env=mpi_env(2))
        for line in r.stdout.splitlines():
            rec = json.loads(line)
            cache[(key, rec["parts"])] = rec
    return [cache[(key, p)] for p in parts]


def check_rule(exe, graph, directed, ranks):
    """The copied partition rule against the real build at 2..5 ranks."""
    for r in ranks:
        cmd = ["mpiexec", "-n", str(r), "--oversubscribe", exe, graph, "--quiet"]
        if not directed:
            cmd.append("--undirected")
        out = subprocess.run(cmd, capture_output=True, text=True, env=mpi_env(1))
        rec = json.loads(out.stdout.strip().splitlines()[-1]) if out.stdout.strip() else {}
        ok = out.returncode == 0 and rec.get("same_as_build")
        log(f"partition rule vs build at {r} ranks on {graph}: {'same' if ok else 'DIFFERENT'} "
            f"{rec.get('bounds')}")
        if not ok:
            sys.exit("model: the copied partition rule no longer matches io/csr.c")


# ---------------------------------------------------------------- model


def predict(rec, c_arc, threads, bw, alpha, cores_per_rank=None):
    """Seconds per PageRank superstep for one partition record: compute,
    sparse and dense exchange, allreduce, and the total with the cheaper
    exchange and with dense (what Loom's auto picks for PageRank: every vertex
    publishes, so published arcs exceed m/20)."""
    P = rec["parts"]
    arcs = rec["part_in_arcs"]["max"]
    eff_threads = threads if cores_per_rank is None else min(threads, cores_per_rank)
    compute = c_arc * arcs / eff_threads
    if P == 1:
        return {"compute": compute, "sparse": 0.0, "dense": 0.0, "mirrors": 0.0,
                "allreduce": 0.0, "total_dense": compute, "total_best": compute,
                "total_mirrors": compute}
    sparse_bytes = 16 * max(rec["ghosts"]["max"], rec["sparse_recv_records"]["max"])
    dense_bytes = rec["dense_recv_bytes"]["max"]
    mirror_bytes = 8 * max(rec["ghosts"]["max"], rec["sparse_recv_records"]["max"])
    sparse = sparse_bytes / bw + alpha * (P - 1)
    dense = dense_bytes / bw + alpha * (P - 1)
    mirrors = mirror_bytes / bw + alpha * (P - 1)
    allreduce = 2 * alpha * math.log2(P)
    return {"compute": compute, "sparse": sparse, "dense": dense, "mirrors": mirrors,
            "allreduce": allreduce,
            "total_dense": compute + dense + allreduce,
            "total_best": compute + min(sparse, dense) + allreduce,
            "total_mirrors": compute + mirrors + allreduce,
            "sparse_bytes": sparse_bytes, "dense_bytes": dense_bytes,
            "mirror_bytes": mirror_bytes}


# ---------------------------------------------------------------- measurement


def find_loom(given, build):
    for c in (given, os.environ.get("LOOM"), os.path.join(build, "loom")):
        if c and os.access(c, os.X_OK):
            return c
    sys.exit("model: no loom binary for --measure (pass --loom)")


def measure(loom, graph, directed, reps, iters):
    rows = []
    for ranks in (1, 2, 3, 4):
        for threads in (1, 2):
            secs, comp, exch = [], [], []
            for _ in range(reps):
                cmd = ([] if ranks == 1 else ["mpiexec", "-n", str(ranks), "--oversubscribe",
                                              "--bind-to", "none"])
                cmd += [loom, "pagerank", graph, "--iters", str(iters), "--threads",
                        str(threads), "--json", "--quiet"]
                if not directed:
                    cmd.append("--undirected")
                r = subprocess.run(cmd, capture_output=True, text=True, env=mpi_env(threads))
                if r.returncode != 0:
                    sys.exit(f"model: {' '.join(cmd)} failed: {r.stderr[-500:]}")
                s = json.loads(r.stdout.strip().splitlines()[-1])
                secs.append(s["seconds_per_iteration"])
                ph = s.get("phases", {})
                comp.append(ph.get("pregel-compute", {}).get("max_s", 0) / iters)
                exch.append(ph.get("pregel-exchange", {}).get("max_s", 0) / iters)
            row = {"ranks": ranks, "threads": threads, "workers": max(ranks - 1, 1),
                   "s_per_iter": statistics.median(secs), "min": min(secs), "max": max(secs),
                   "compute_s": statistics.median(comp), "exchange_s": statistics.median(exch),
                   "reps": reps, "all": secs}
            log(f"measured {graph} {ranks} ranks x {threads} threads: "
                f"{row['s_per_iter']:.4f} s/iter ({row['min']:.4f}-{row['max']:.4f})")
            rows.append(row)
    return rows


# ---------------------------------------------------------------- plots


def save_png(fig, path):
    """Lay out, write and close a figure; its path."""
    import matplotlib.pyplot as plt
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plots(out_dir, strong, weak, args, c_arc, side):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    P = [r["parts"] for r in strong]
    multi = [r for r in strong if r["parts"] > 1]  # exchange is zero at P = 1: off a log axis
    Pm = [r["parts"] for r in multi]
    files = []
    # 1. what each partition holds and sends
    fig, ax = plt.subplots(1, 3, figsize=(16, 4.6))
    ax[0].loglog(P, [r["part_in_arcs"]["max"] for r in strong], "o-", label="arcs, max")
    ax[0].loglog(P, [r["part_in_arcs"]["mean"] for r in strong], "--", label="arcs, mean")
    ax[0].loglog(Pm, [r["ghosts"]["max"] for r in multi], "s-", label="ghosts, max")
    ax[0].loglog(P, [r["part_vertices"]["max"] for r in strong], "^-", label="owned vertices, max")
    ax[0].set_xlabel("workers P")
    ax[0].set_ylabel("per worker")
    ax[0].set_title(f"{args.graph}: partition contents")
    ax[0].legend(fontsize=8)
    ax[1].semilogx(P, [r["part_in_arcs"]["max"] / r["part_in_arcs"]["mean"] for r in strong],
                   "o-", label="arcs max/mean")
    ax[1].semilogx(P, [r["ghosts"]["mean"] / r["part_vertices"]["mean"] for r in strong], "s-",
                   label="ghosts / owned vertices")
    ax[1].semilogx(P, [r["cut_arcs_total"] / r["arcs"] for r in strong], "^-",
                   label="fraction of arcs cut")
    ax[1].set_xlabel("workers P")
    ax[1].set_title("balance and replication")
    ax[1].legend(fontsize=8)
    ax[2].loglog(Pm, [16 * max(r["ghosts"]["max"], r["sparse_recv_records"]["max"]) for r in multi],
                 "o-", label="sparse (16 B records), max")
    ax[2].loglog(Pm, [r["dense_recv_bytes"]["max"] for r in multi], "s-",
                 label="dense (allgather), max")
    ax[2].set_xlabel("workers P")
    ax[2].set_ylabel("bytes per worker per superstep")
    ax[2].set_title("exchange volume")
    ax[2].legend(fontsize=8)
    files.append(save_png(fig, os.path.join(out_dir, "model_partition.png")))

    # 2. strong and weak scaling predictions
    fig, ax = plt.subplots(1, 2, figsize=(13, 4.8))
    pr = [r["pred"] for r in strong]
    ax[0].loglog(P, [p["compute"] for p in pr], "o-", label="compute")
    ax[0].loglog(Pm, [r["pred"]["sparse"] for r in multi], "^--", label="sparse exchange")
    ax[0].loglog(Pm, [r["pred"]["dense"] for r in multi], "s--", label="dense exchange")
    ax[0].loglog(Pm, [r["pred"]["mirrors"] for r in multi], "d--", label="mirrors")
    ax[0].loglog(P, [p["total_mirrors"] for p in pr], "k-", lw=2, label="total (mirrors, Loom's)")
    ax[0].loglog(P, [p["total_dense"] for p in pr], "k:", lw=2, label="total (dense all-gather)")
    ax[0].set_xlabel("nodes (one rank each)")
    ax[0].set_ylabel("seconds per iteration")
    ax[0].set_title(f"strong: {args.graph}, {args.threads} threads/node, "
                    f"{args.bw_gbs:g} GB/s, {args.latency_us:g} us")
    ax[0].legend(fontsize=8)
    if weak:
        Pw = [r["parts"] for r in weak]
        base = weak[0]["pred"]["total_mirrors"] if weak[0]["parts"] == 1 else None
        ax[1].semilogx(Pw, [r["pred"]["total_dense"] for r in weak], "s-", label="dense")
        ax[1].semilogx(Pw, [r["pred"]["total_mirrors"] for r in weak], "o-", label="mirrors")
        ax[1].semilogx(Pw, [r["pred"]["compute"] for r in weak], "--", label="compute alone")
        ax[1].set_xlabel("nodes P (graph kron:(base + log2 P))")
        ax[1].set_ylabel("seconds per iteration")
        ax[1].set_title(f"weak: kron:{args.weak_base}+log2 P, "
                        f"{2 ** args.weak_base * 16 * (1 if args.directed else 2) / 1e6:.1f} M arcs/node")
        if base:
            ax[1].axhline(base, color="grey", lw=0.5)
        ax[1].legend(fontsize=8)
    files.append(save_png(fig, os.path.join(out_dir, "model_scaling.png")))

    # 3. model and measurement on this machine
    if side:
        fig, ax = plt.subplots(figsize=(7.5, 4.6))
        labels = [f"{r['ranks']}x{r['threads']}" for r in side]
        x = range(len(side))
        ax.errorbar(x, [r["s_per_iter"] for r in side],
                    yerr=[[r["s_per_iter"] - r["min"] for r in side],
                          [r["max"] - r["s_per_iter"] for r in side]],
                    fmt="o", capsize=4, label="measured (median, min-max)")
        ax.plot(x, [r["model"] for r in side], "s--", label="model")
        ax.set_xticks(list(x))
        ax.set_xticklabels(labels)
        ax.set_xlabel("ranks x threads (rank 0 is the master from 2 ranks on)")
        ax.set_ylabel("seconds per iteration")
        ax.set_title(f"{args.measure_graph} on this machine: model vs measurement")
        ax.legend(fontsize=8)
        files.append(save_png(fig, os.path.join(out_dir, "model_vs_measured.png")))
    return files


# ---------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--graph", default="kron:22")
    ap.add_argument("--directed", action="store_true",
                    help="keep the generator's arcs directed (default: --undirected, as GAP)")
    ap.add_argument("--parts", default="1,2,4,8,16,32,64,128,256,512,1024")
    ap.add_argument("--weak-base", type=int, default=16,
                    help="weak scaling: kron:(base + log2 P) up to the strong graph's scale")
    ap.add_argument("--bw-gbs", type=float, default=12.5,
                    help="network bandwidth per node, GB/s (12.5: 100 Gb/s InfiniBand)")
    ap.add_argument("--latency-us", type=float, default=2.0)
    ap.add_argument("--threads", type=int, default=32, help="threads per node in the model")
    ap.add_argument("--ns-per-arc", type=float, default=0.0,
                    help="compute cost per arc per thread (0: from --measure or 3.0)")
    ap.add_argument("--check", action="store_true",
                    help="check the partition rule against real builds at 2-5 ranks")
    ap.add_argument("--measure", action="store_true")
    ap.add_argument("--measure-graph", default="kron:20")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--reuse-measured", help="take the measurements from an earlier model.json")
    ap.add_argument("--reuse-partitions",
                    help="take partition records from an earlier partitions.jsonl")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--build")
    ap.add_argument("--loom")
    ap.add_argument("--out-dir", default=os.path.join(ROOT, "bench-out", "model"))
    args = ap.parse_args()

    os.makedirs(args.out_dir, exist_ok=True)
    build = find_build(args.build)
    exe = build_tool(build, args.out_dir)
    directed = args.directed
    cache = {}
    if args.reuse_partitions:
        with open(args.reuse_partitions) as f:
            for line in f:
                rec = json.loads(line)
                rec.pop("pred", None)
                cache[(rec["graph"] + ("" if rec["directed"] else ":und"), rec["parts"])] = rec
        log(f"{len(cache)} partition records from {args.reuse_partitions}")
    if args.check:
        check_rule(exe, "kron:14", directed, (2, 3, 4, 5))

    # ---- measurement first: it calibrates the cost per arc
    side = []
    c_arc = args.ns_per_arc * 1e-9 if args.ns_per_arc > 0 else 0.0
    if args.measure:
        if args.reuse_measured:
            with open(args.reuse_measured) as f:
                rows = json.load(f)["measured"]
            log(f"measurements from {args.reuse_measured}")
        else:
            loom = find_loom(args.loom, build)
            rows = measure(loom, args.measure_graph, directed, args.reps, args.iters)
        m_recs = {r["parts"]: r for r in
                  partition_stats(exe, args.measure_graph, [1, 2, 3], directed, cache)}
        # Calibrate on one worker with one thread (2 ranks: the master and it):
        # pure compute, no exchange. The 1-rank embedded mode is not used for
        # this because it runs a different, slower path (see the report).
        one = next(r for r in rows if r["ranks"] == 2 and r["threads"] == 1)
        c_local = one["s_per_iter"] / m_recs[1]["part_in_arcs"]["max"]
        if not c_arc:
            c_arc = c_local
        cores = os.cpu_count() or 2
        for r in rows:
            rec = m_recs[r["workers"]]
            # Ranks share the machine's cores: a worker gets cores / ranks of them.
            per_rank = max(cores / (r["workers"] if r["ranks"] > 1 else 1), 1e-9)
            p = predict(rec, c_local, r["threads"], 3e9, 0.5e-6, cores_per_rank=per_rank)
            r["model"] = p["total_mirrors"]
            r["model_compute"] = p["compute"]
            r["model_exchange"] = p["mirrors"] + p["allreduce"]
            side.append(r)
    if not c_arc:
        c_arc = 3.0e-9
    log(f"compute cost {c_arc * 1e9:.2f} ns per arc per thread")

    parts = [int(p) for p in args.parts.split(",")]
    strong = partition_stats(exe, args.graph, parts, directed, cache)
    bw, alpha = args.bw_gbs * 1e9, args.latency_us * 1e-6
    for r in strong:
        r["pred"] = predict(r, c_arc, args.threads, bw, alpha)
    weak = []
    top = int(args.graph.split(":")[1]) if args.graph.startswith("kron:") else None
    if top:
        for s in range(args.weak_base, top + 1):
            P = 2 ** (s - args.weak_base)
            rec = partition_stats(exe, f"kron:{s}", [P], directed, cache)[0]
            rec["pred"] = predict(rec, c_arc, args.threads, bw, alpha)
            weak.append(rec)

    with open(os.path.join(args.out_dir, "partitions.jsonl"), "w") as f:
        for rec in cache.values():
            f.write(json.dumps(rec, sort_keys=True) + "\n")
    summary = {"graph": args.graph, "directed": directed, "bw_gbs": args.bw_gbs,
               "latency_us": args.latency_us, "threads_per_node": args.threads,
               "ns_per_arc": c_arc * 1e9, "strong": strong, "weak": weak, "measured": side}
    with open(os.path.join(args.out_dir, "model.json"), "w") as f:
        json.dump(summary, f, indent=1, sort_keys=True)
    files = plots(args.out_dir, strong, weak, args, c_arc, side)

    # ---- tables
    t1 = strong[0]["pred"]["total_mirrors"] if strong[0]["parts"] == 1 else None
    print(f"\nStrong scaling, {args.graph} ({'directed' if directed else 'undirected'}), "
          f"{args.threads} threads/node at {c_arc * 1e9:.2f} ns/arc, "
          f"{args.bw_gbs:g} GB/s, {args.latency_us:g} us\n")
    print("| P | arcs/worker max | max/mean | ghosts/worker max | cut arcs | MB/worker mirrors "
          "/ dense / sparse | compute ms | exchange ms mirrors / dense / sparse | total ms "
          "(mirrors) | total ms (dense) | speedup (mirrors) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in strong:
        p = r["pred"]
        sp = f"{t1 / p['total_mirrors']:.1f}" if t1 else ""
        print(f"| {r['parts']} | {r['part_in_arcs']['max']:.3g} | "
              f"{r['part_in_arcs']['max'] / r['part_in_arcs']['mean']:.3f} | "
              f"{r['ghosts']['max']:.3g} | {r['cut_arcs_total'] / r['arcs']:.1%} | "
              f"{p.get('mirror_bytes', 0) / 1e6:.2f} / {p.get('dense_bytes', 0) / 1e6:.2f} / "
              f"{p.get('sparse_bytes', 0) / 1e6:.2f} | {p['compute'] * 1e3:.2f} | "
              f"{p['mirrors'] * 1e3:.2f} / {p['dense'] * 1e3:.2f} / {p['sparse'] * 1e3:.2f} | "
              f"{p['total_mirrors'] * 1e3:.2f} | {p['total_dense'] * 1e3:.2f} | {sp} |")
    if weak:
        print(f"\nWeak scaling, kron:({args.weak_base} + log2 P)\n")
        print("| P | graph | arcs/worker max | ghosts/worker max | total ms (mirrors) | "
              "total ms (dense) | efficiency (mirrors) | efficiency (dense) |")
        print("|---|---|---|---|---|---|---|---|")
        w0 = weak[0]["pred"]["total_mirrors"]
        for r in weak:
            p = r["pred"]
            print(f"| {r['parts']} | {r['graph']} | {r['part_in_arcs']['max']:.3g} | "
                  f"{r['ghosts']['max']:.3g} | {p['total_mirrors'] * 1e3:.2f} | "
                  f"{p['total_dense'] * 1e3:.2f} | {w0 / p['total_mirrors']:.2f} | "
                  f"{w0 / p['total_dense']:.2f} |")
    if side:
        print(f"\nThis machine, {args.measure_graph}: measured vs model "
              f"(shared-memory MPI 3 GB/s, 0.5 us; compute calibrated at 2 ranks x 1 thread = one worker)\n")
        print("| ranks x threads | workers | measured s/iter (median, min-max) | "
              "compute / exchange measured | model s/iter | model compute / exchange |")
        print("|---|---|---|---|---|---|")
        for r in side:
            print(f"| {r['ranks']}x{r['threads']} | {r['workers']} | {r['s_per_iter']:.4f} "
                  f"({r['min']:.4f}-{r['max']:.4f}) | {r['compute_s']:.4f} / "
                  f"{r['exchange_s']:.4f} | {r['model']:.4f} | "
                  f"{r['model_compute']:.4f} / {r['model_exchange']:.4f} |")
    print("\nfiles: " + ", ".join(files + [os.path.join(args.out_dir, "model.json")]))


if __name__ == "__main__":
    main()
