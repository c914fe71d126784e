#!/usr/bin/python3
"""The dataset engine against Loom's own engines on the same input, alternating in one run:
ds-pagerank (Spark's example on datasets) against `loom pagerank` (Pregel), and ds-wordcount
against `loom wordcount` (MapReduce). The figure to drive down is the engine's overhead:
ds time / Pregel (or MapReduce) time.

Usage: /usr/bin/python3 scripts/bench/datasets.py [--loom build/release/loom] [--reps 3]
       [--graphs kron:16,kron:18] [--iters 10] [--np 1,3] [--corpus FILES_OR_DIR]

PageRank: per iteration, ds-pagerank's seconds_per_iteration (its loop and the final save,
where Spark's convention runs every iteration, divided by the iterations; the links are
built and kept before) against Pregel's seconds_per_iteration; both end to end (the whole command). Pregel runs the
networkx convention, ds-pagerank Spark's: the per-iteration work is the same (every arc
carries one contribution). Word count: end-to-end seconds of the whole command. Prints
median and min-max over --reps; machine facts first.
"""
import argparse, json, os, platform, statistics, subprocess, sys, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from one_node import one_node_env  # noqa: E402

ENV = one_node_env()


def launch(np_, loom):
    return ([] if np_ == 1 else ["mpirun", "-np", str(np_), "--oversubscribe"]) + [loom]


def timed(cmd):
    t = time.time()
    p = subprocess.run(cmd, capture_output=True, env=ENV, timeout=3600)
    wall = time.time() - t
    if p.returncode != 0:
        raise SystemExit("FAIL %s\n%s" % (" ".join(cmd), p.stderr.decode()[-2000:]))
    return wall, json.loads(p.stdout.decode().strip().splitlines()[-1])


def fmt(xs):
    return "%.3f (%.3f-%.3f)" % (statistics.median(xs), min(xs), max(xs))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--loom", default="build/release/loom")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--graphs", default="kron:16,kron:18")
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--np", default="1,3")
    ap.add_argument("--corpus", nargs="*", default=[])
    ap.add_argument("--out", default="/tmp/loom-bench-ds")
    a = ap.parse_args()
    print("machine:", platform.node(), os.cpu_count(), "cores;", platform.platform())
    print("loom:", subprocess.run([a.loom, "--version"], capture_output=True).stdout.decode().strip())
    for np_ in [int(x) for x in a.np.split(",")]:
        for g in a.graphs.split(","):
            r = {"ds_iter": [], "pr_iter": [], "ds_wall": [], "pr_wall": []}
            for _ in range(a.reps):  # alternating
                wall, s = timed(launch(np_, a.loom) + ["ds-pagerank", g, "--iters", str(a.iters),
                                                       "--out", a.out, "--overwrite", "--json"])
                # the loop and the save, divided by the iterations (the links are built before)
                r["ds_iter"].append(s["seconds_per_iteration"])
                r["ds_wall"].append(wall)
                wall, s = timed(launch(np_, a.loom) + ["pagerank", g, "--iters", str(a.iters), "--json"])
                r["pr_iter"].append(s["seconds_per_iteration"])
                r["pr_wall"].append(wall)
            ratio = [x / y for x, y in zip(r["ds_iter"], r["pr_iter"])]
            print("pagerank %s np=%d iters=%d: ds-pagerank s/iter %s, Pregel s/iter %s, ratio %s; "
                  "end to end ds %s s, Pregel %s s" % (g, np_, a.iters, fmt(r["ds_iter"]),
                  fmt(r["pr_iter"]), fmt(ratio), fmt(r["ds_wall"]), fmt(r["pr_wall"])))
        if a.corpus:
            d, m = [], []
            for _ in range(a.reps):
                wall, _s = timed(launch(np_, a.loom) + ["ds-wordcount"] + a.corpus +
                                 ["--out", a.out, "--overwrite", "--json"])
                d.append(wall)
                wall, _s = timed(launch(np_, a.loom) + ["wordcount"] + a.corpus +
                                 ["--out", a.out, "--overwrite", "--json"])
                m.append(wall)
            print("wordcount np=%d: ds-wordcount %s s, MapReduce %s s, ratio %s" % (
                np_, fmt(d), fmt(m), fmt([x / y for x, y in zip(d, m)])))


if __name__ == "__main__":
    main()
