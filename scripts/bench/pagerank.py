#!/usr/bin/env python3
"""PageRank seconds per iteration: Loom's kernels against SuiteSparse:GraphBLAS (and gapbs, when
a build of it is given) on the same arcs, the systems alternated within every repetition.

    scripts/bench/pagerank.py [--scale 22] [--reps 5] [--iters 20] [--graphs undirected,directed]
                              [--systems LIST] [--gapbs DIR]

Graphs: `loom convert kron:S [--undirected] --drop-duplicates --drop-self-loops` into
$WORK (default /tmp/loom-bench-pr) as HDF5, read by every system. Systems (default: all that
are available):
  loom            1 rank x 2 threads, the default kernel (blocked: partition-centric bins)
  loom-float      the same with --pull-values float (bin values in single precision)
  loom-gather     the same with --pull gather (the pull over in-edges, degree-ordered slots)
  loom3           3 ranks: master + 2 workers x 1 thread (mirrors through the halo exchange)
  loom3-float     the same with --pull-values float
  graphblas       scripts/bench/gb_pagerank.c (GrB_mxv, PLUS_SECOND, FP64), 2 threads
  gapbs           gapbs's pr_spmv, 2 threads, 20 iterations (tolerance 0), when --gapbs DIR
                  names a directory holding its pr_spmv and converter binaries (not built here)
Loom's figure is its superstep loop (set-up timed apart as pregel-setup); GraphBLAS's its
iteration loop; gapbs's its trial time / iterations. Prints per system the median and min-max
of seconds per iteration, the median of its ratio to GraphBLAS within the same repetition, and
for Loom the set-up, bytes streamed per superstep (against the triad bandwidth measured in the
same run by scripts/bench/triad.c) and peak memory.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def sh(cmd, env=None, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, env=env, **kw)


def one_node_env():
    env = dict(os.environ)
    with open(os.path.join(ROOT, "scripts", "one-node.env")) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                k, v = line.split("=", 1)
                env[k.strip()] = v.strip().strip('"')
    return env


def stats(xs):
    xs = sorted(xs)
    return statistics.median(xs), xs[0], xs[-1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--scale", type=int, default=22)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--graphs", default="undirected,directed")
    ap.add_argument("--systems", default="loom,loom-float,loom-gather,loom3,loom3-float,graphblas,gapbs")
    ap.add_argument("--gapbs", default=os.environ.get("GAPBS"))
    ap.add_argument("--loom", default=os.environ.get("LOOM", os.path.join(ROOT, "build/release/loom")))
    ap.add_argument("--work", default=os.environ.get("WORK", "/tmp/loom-bench-pr"))
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    env = one_node_env()
    T = str(a.threads)
    systems = a.systems.split(",")
    if not a.gapbs or not os.path.exists(os.path.join(a.gapbs, "pr_spmv")):
        systems = [s for s in systems if s != "gapbs"]

    gb = os.path.join(a.work, "gb_pagerank")
    src = os.path.join(HERE, "gb_pagerank.c")
    if "graphblas" in systems and (not os.path.exists(gb) or os.path.getmtime(src) > os.path.getmtime(gb)):
        sh(["mpicc", "-O3", "-march=native", "-fopenmp", src, "-I/usr/include/hdf5/openmpi",
            "-lhdf5_openmpi", "-lgraphblas", "-o", gb], env=env)
    triad = os.path.join(a.work, "triad")
    sh(["cc", "-O3", "-march=native", "-fopenmp", os.path.join(HERE, "triad.c"), "-o", triad])

    def commit():
        try:
            c = sh(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]).stdout.strip()
            dirty = sh(["git", "-C", ROOT, "status", "--porcelain", "-uno"]).stdout.strip()
            return c + (" (dirty tree)" if dirty else "")
        except subprocess.CalledProcessError:
            return "?"

    cpu = re.search(r"Model name:\s*(.*)", sh(["lscpu"]).stdout)
    print("# PageRank benchmark, %s" % time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()))
    print("# machine: %d cores, %s; loom %s; iterations %d, repetitions %d; systems %s"
          % (os.cpu_count(), cpu.group(1) if cpu else "?", commit(), a.iters, a.reps, ",".join(systems)))
    print("# load average at start: %s" % open("/proc/loadavg").read().split()[:3])

    def loom_run(g, ranks, extra):
        e = dict(env, OMP_NUM_THREADS=T if ranks == 1 else "1")
        cmd = ["mpiexec", "-n", str(ranks), "--bind-to", "none", a.loom, "pagerank", g,
               "--iters", str(a.iters), "--json", "--verbose"] + (["--threads", "1"] if ranks > 1 else []) + extra
        p = sh(cmd, env=e)
        d = json.loads(p.stdout)
        m = re.search(r"([0-9.]+) MB streamed per superstep", p.stderr)
        return {"s": d["seconds_per_iteration"], "setup": d["phases"]["pregel-setup"]["max_s"],
                "mb": float(m.group(1)) if m else None,
                "rss": [round(x / 2**20) for x in d["peak_rss_bytes"]]}

    runners = {
        "loom": lambda g, sg: loom_run(g, 1, []),
        "loom-float": lambda g, sg: loom_run(g, 1, ["--pull-values", "float"]),
        "loom-gather": lambda g, sg: loom_run(g, 1, ["--pull", "gather"]),
        "loom3": lambda g, sg: loom_run(g, 3, []),
        "loom3-float": lambda g, sg: loom_run(g, 3, ["--pull-values", "float"]),
    }

    def graphblas(g, sg):
        out = sh([gb, g, str(a.iters)], env=dict(env, OMP_NUM_THREADS=T)).stdout
        return {"s": float(re.search(r"seconds_per_iteration=([0-9.e-]+)", out).group(1))}

    def gapbs(g, sg):
        out = sh([os.path.join(a.gapbs, "pr_spmv"), "-f", sg, "-i", str(a.iters), "-t", "0", "-n", "1"],
                 env=dict(env, OMP_NUM_THREADS=T)).stdout
        return {"s": float(re.search(r"Average Time:\s*([0-9.]+)", out).group(1)) / a.iters}

    runners["graphblas"] = graphblas
    runners["gapbs"] = gapbs

    for kind in a.graphs.split(","):
        g = os.path.join(a.work, "kron%d-%s.h5" % (a.scale, kind))
        if not os.path.exists(g):
            sh([a.loom, "convert", "kron:%d" % a.scale] + (["--undirected"] if kind == "undirected" else [])
               + ["--drop-duplicates", "--drop-self-loops", "--out", g, "--quiet"], env=env)
        sg = g[:-3] + ".sg"
        if "gapbs" in systems and not os.path.exists(sg):
            el = g[:-3] + ".el"
            sh([a.loom, "convert", g, "--out", el, "--quiet"], env=env)
            sh(["sed", "-i", "1d", el])  # Loom's header line
            sh([os.path.join(a.gapbs, "converter"), "-f", el, "-b", sg])
            os.remove(el)
        res = {s: [] for s in systems}
        tri = []
        for rep in range(a.reps):
            tri.append(float(re.search(r"best_gbs=([0-9.]+)", sh([triad, "512", "5"], env=dict(env, OMP_NUM_THREADS=T)).stdout).group(1)))
            for s in systems:
                res[s].append(runners[s](g, sg))
        print("\n## kron:%d %s (%s); triad %s threads: %.1f GB/s (median of %d)"
              % (a.scale, kind, g, T, statistics.median(tri), len(tri)))
        print("%-13s %-28s %-22s %s" % ("system", "s/iteration median (min-max)", "vs GraphBLAS (same rep)",
                                        "set-up s, MB/superstep (GB/s), peak MiB"))
        for s in systems:
            m, lo, hi = stats([r["s"] for r in res[s]])
            ratio = ""
            if "graphblas" in res:
                rs = [r["s"] / b["s"] for r, b in zip(res[s], res["graphblas"])]
                rm, rlo, rhi = stats(rs)
                ratio = "%.3f (%.3f-%.3f)" % (rm, rlo, rhi)
            extra = ""
            if "setup" in res[s][0]:
                su = statistics.median([r["setup"] for r in res[s]])
                mb = res[s][-1]["mb"]
                extra = "%.2f, %s, %s" % (su, "%.0f (%.1f)" % (mb, mb / 1e3 / m) if mb else "-", res[s][-1]["rss"])
            print("%-13s %.4f (%.4f-%.4f)       %-22s %s" % (s, m, lo, hi, ratio, extra), flush=True)
    print("\n# load average at end: %s" % open("/proc/loadavg").read().split()[:3])


if __name__ == "__main__":
    sys.exit(main())
