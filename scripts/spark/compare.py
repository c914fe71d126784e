#!/usr/bin/python3
"""Spark local[2] against Loom at 3 ranks (master + 2 workers) on the same edge list: PageRank, optionally word count.

Usage: /usr/bin/python3 scripts/spark/compare.py [--scales 18,20] [--reps 3]
       [--loom-iters 20] [--spark-iters 10] [--apis df,rdd] [--corpus DIR]
       [--loom PATH] [--out-dir bench-out/spark]

For each scale S: `loom generate kron --scale S --undirected --out kronS.el` (both
directions of every edge, so the file is the undirected graph for everyone),
then per repetition:
  - `mpiexec -n 3 loom pagerank kronS.el --iters N --json` (1 thread per rank:
    two workers on the two cores, the master sleeping in MPI);
  - scripts/spark/pagerank_{df,rdd}.py kronS.el --master local[2] --json.
Same semantics everywhere (normalised, damping 0.85, dangling mass
redistributed, fixed iterations; scripts/spark/check.py verifies agreement).
Spark runs fewer iterations by default (its per-iteration time is what is
compared; its first iteration is kept in the median like Loom's).
Reported per system: seconds per iteration (median of the per-run medians, and
min-max over runs), end-to-end wall time of the whole command (JVM or MPI start,
load, iterations, output), peak memory (Loom: sum over ranks; Spark: sum of the
high-water marks of the driver JVM and Python processes), and the ratios.
With --corpus, word count on that directory: `loom wordcount` at 3 ranks against
scripts/spark/wordcount.py (df and rdd), end-to-end seconds and MB/s.
One JSON line per run goes to OUT_DIR/records.jsonl; tables are printed.
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from sparkcommon import find_loom, mpi_env  # noqa: E402


def log(msg):
    print(f"compare: {msg}", file=sys.stderr, flush=True)


def timed(cmd):
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=mpi_env())
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"compare: failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1]), wall


def context(loom):
    def out(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True).stdout.strip()
        except OSError:
            return ""
    return {"host": platform.node(), "cpus": os.cpu_count(),
            "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                         if l.startswith("model name")), ""),
            "loom_version": out([loom, "--version"]).splitlines()[0] if loom else "",
            "commit": out(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]),
            "dirty": bool(out(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"])),
            "java": out(["java", "-version"]) or subprocess.run(
                ["java", "-version"], capture_output=True, text=True).stderr.splitlines()[0]}


def spread(xs):
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs),
            "cv": statistics.pstdev(xs) / statistics.mean(xs) if len(xs) > 1 else 0.0,
            "n": len(xs)}


def print_pagerank(rows, args):
    print("\nPageRank, Spark local[2] vs Loom 3 ranks (master + 2 workers x 1 thread); "
          f"{args.reps} runs each, median (min-max)\n")
    print("| graph | system | s/iteration | end-to-end s | peak memory | "
          "÷ Loom Pregel per iteration | ÷ Loom Pregel end-to-end |")
    print("|---|---|---|---|---|---|---|")
    for graph, res in rows:
        lp, lw, _ = res["loom"]
        for name, (p, w, m) in res.items():
            ratio_p = p["median"] / lp["median"] if name != "loom" else 1.0
            ratio_w = w["median"] / lw["median"] if name != "loom" else 1.0
            print(f"| {graph} | {name} | {p['median']:.4g} ({p['min']:.4g}-{p['max']:.4g}) | "
                  f"{w['median']:.3g} ({w['min']:.3g}-{w['max']:.3g}) | {m / 2**20:.0f} MiB | "
                  f"{ratio_p:.1f}x | {ratio_w:.1f}x |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scales", default="18,20")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--loom-iters", type=int, default=20)
    ap.add_argument("--spark-iters", type=int, default=10)
    ap.add_argument("--apis", default="df,rdd")
    ap.add_argument("--corpus")
    ap.add_argument("--loom")
    ap.add_argument("--driver-memory", default="12g")
    ap.add_argument("--out-dir", default=os.path.join(ROOT, "bench-out", "spark"))
    args = ap.parse_args()

    loom = find_loom(args.loom) or sys.exit("compare: no loom binary (pass --loom)")
    spark_py = subprocess.run([os.path.join(HERE, "setup.sh")], capture_output=True, text=True,
                              check=True).stdout.strip()
    os.makedirs(args.out_dir, exist_ok=True)
    ctx = context(loom)
    records = open(os.path.join(args.out_dir, "records.jsonl"), "a")
    rows = []

    def keep(rec):
        rec.update(ctx)
        records.write(json.dumps(rec, sort_keys=True) + "\n")
        records.flush()

    for scale in [int(s) for s in args.scales.split(",") if s]:
        el = os.path.join(args.out_dir, f"kron{scale}-undirected.el")
        if not os.path.exists(el):
            subprocess.run([loom, "generate", "kron", "--scale", str(scale), "--undirected",
                            "--quiet", "--out", el], check=True, env=mpi_env())
        graph = f"kron:{scale} undirected ({os.path.basename(el)})"
        res = {}
        # Loom at 3 ranks
        per, wall, mem = [], [], []
        for rep in range(args.reps):
            s, w = timed(["mpiexec", "-n", "3", "--bind-to", "none", loom, "pagerank", el,
                          "--iters", str(args.loom_iters), "--threads", "1", "--json", "--quiet"])
            per.append(s["seconds_per_iteration"])
            wall.append(w)
            mem.append(s.get("peak_rss_total_bytes", 0))
            keep({"system": "loom", "job": "pagerank", "graph": graph, "ranks": 3, "threads": 1,
                  "launch": "mpiexec -n 3 --bind-to none, OMP_NUM_THREADS=1",
                  "iterations": args.loom_iters, "repetition": rep + 1, "wall_s": w,
                  "summary": s})
            log(f"loom {graph} rep {rep + 1}: {s['seconds_per_iteration']:.4f} s/iter, {w:.2f} s")
        res["loom"] = (spread(per), spread(wall), max(mem))
        # Loom's datasets: Spark's own program shape (links.join(ranks), reduce_by_key) on
        # Loom's dataset engine, networkx's convention (parallel arcs counted once)
        per, wall, mem = [], [], []
        for rep in range(args.reps):
            out = os.path.join(args.out_dir, "ds-ranks")
            s, w = timed(["mpiexec", "-n", "3", "--bind-to", "none", loom, "ds-pagerank", el,
                          "--iters", str(args.spark_iters), "--convention", "networkx",
                          "--threads", "1", "--out", out, "--overwrite", "--json", "--quiet"])
            per.append(s["seconds_per_iteration"])
            wall.append(w)
            mem.append(s.get("peak_rss_total_bytes", 0))
            keep({"system": "loom-datasets", "job": "ds-pagerank", "graph": graph, "ranks": 3,
                  "threads": 1, "iterations": args.spark_iters, "repetition": rep + 1,
                  "wall_s": w, "summary": s})
            log(f"loom-datasets {graph} rep {rep + 1}: {per[-1]:.4f} s/iter, {w:.2f} s")
        res["loom-datasets"] = (spread(per), spread(wall), max(mem))
        for api in args.apis.split(","):
            per, wall, mem = [], [], []
            for rep in range(args.reps):
                s, w = timed([spark_py, os.path.join(HERE, f"pagerank_{api}.py"), el, "--iters",
                              str(args.spark_iters), "--master", "local[2]", "--driver-memory",
                              args.driver_memory, "--json"])
                per.append(s["per_iteration_s"]["median"])
                wall.append(w)
                mem.append(s["peak_rss_bytes"])
                keep({"system": f"spark-{api}", "job": "pagerank", "graph": graph,
                      "iterations": args.spark_iters, "repetition": rep + 1, "wall_s": w,
                      "summary": s})
                log(f"spark-{api} {graph} rep {rep + 1}: {per[-1]:.3f} s/iter, {w:.1f} s")
            res[f"spark-{api}"] = (spread(per), spread(wall), max(mem))
        rows.append((graph, res))

    if rows:
        print_pagerank(rows, args)

    if args.corpus:
        wc = {}
        size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(args.corpus)
                   for f in fs)
        for name, mk in [("loom", lambda o: ["mpiexec", "-n", "3", "--bind-to", "none", loom,
                                             "wordcount",
                                             args.corpus, "--out", o, "--json", "--quiet"])] + \
                [(f"spark-{a}", (lambda a: lambda o: [spark_py, os.path.join(HERE, "wordcount.py"),
                                                      args.corpus, "--out", o, "--api", a,
                                                      "--driver-memory", args.driver_memory,
                                                      "--json"])(a))
                 for a in args.apis.split(",")]:
            walls, mem = [], []
            for rep in range(args.reps):
                out = os.path.join(args.out_dir, f"wc-{name}")
                shutil.rmtree(out, ignore_errors=True)
                s, w = timed(mk(out))
                walls.append(w)
                m = s.get("peak_rss_total_bytes", s.get("peak_rss_bytes", 0))
                mem.append(m if isinstance(m, (int, float)) else 0)
                keep({"system": name, "job": "wordcount", "corpus": args.corpus,
                      "input_bytes": size, "repetition": rep + 1, "wall_s": w, "summary": s})
                log(f"{name} wordcount rep {rep + 1}: {w:.2f} s")
            wc[name] = (spread(walls), max(mem))
        print(f"\nWord count over {args.corpus} ({size / 1e6:.0f} MB), end to end, "
              f"{args.reps} runs\n")
        print("| system | seconds | MB/s | peak memory | Spark/Loom |")
        print("|---|---|---|---|---|")
        lw = wc["loom"][0]["median"]
        for name, (w, m) in wc.items():
            print(f"| {name} | {w['median']:.3g} ({w['min']:.3g}-{w['max']:.3g}) | "
                  f"{size / 1e6 / w['median']:.1f} | {m / 2**20:.0f} MiB | "
                  f"{w['median'] / lw:.1f}x |")
    print(f"\nrecords: {os.path.join(args.out_dir, 'records.jsonl')}; context: {json.dumps(ctx)}")


if __name__ == "__main__":
    main()
