"""PageRank as Spark's own RDD example computes it, with Loom's semantics.

Run with the venv python from setup.sh:
    py=$(scripts/spark/setup.sh)
    $py scripts/spark/pagerank_rdd.py graph.el --iters 20 [--dangling redistribute|ignore]
        [--num-vertices N] [--out scores.txt] [--json]

Same as examples/src/main/python/pagerank.py in Spark (links grouped by source and
cached, each iteration joins links with ranks, flat-maps contributions and
reduces them by key), changed only where Loom's definition differs:
  - normalised scores: start at 1/N, teleport (1 - d)/N, not 1 and (1 - d);
  - every vertex 0..N-1 keeps a score (N = --num-vertices, or largest id + 1 as
    Loom's edge-list reader decides), also those without in- or out-arcs;
  - parallel arcs count with their multiplicity (the example's distinct() would
    drop them, Loom keeps them);
  - dangling vertices (no out-arcs): 'redistribute' spreads their score mass
    uniformly over all vertices, like networkx; 'ignore' drops it (GAP);
  - a fixed number of iterations.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sparkcommon  # noqa: E402


def parse_arc(line):
    """'src dst [weight]' -> (src, dst); None for comments and blank lines."""
    f = line.split()
    if not f or f[0][0] in "#%":
        return None
    return int(f[0]), int(f[1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("graph", help="edge list (src dst per line, # or %% comments)")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--damping", type=float, default=0.85)
    ap.add_argument("--dangling", choices=["redistribute", "ignore"], default="redistribute")
    ap.add_argument("--num-vertices", type=int, default=0,
                    help="N (default: largest vertex id + 1)")
    ap.add_argument("--out", help="write 'vertex<TAB>score' lines here")
    sparkcommon.add_spark_args(ap)
    args = ap.parse_args()

    mem = sparkcommon.PeakMemory().start()
    t_start = time.perf_counter()
    spark, t_session = sparkcommon.start_session("loom-pagerank-rdd", args)
    sc = spark.sparkContext
    d, parts = args.damping, args.partitions

    # ---- load: links (v, [out-neighbours]) for every vertex, hash-partitioned and cached
    t0 = time.perf_counter()
    arcs = sc.textFile(args.graph, parts).map(parse_arc).filter(lambda a: a is not None)
    n = args.num_vertices
    if n <= 0:
        n = arcs.map(lambda a: max(a)).max() + 1
    # Each vertex is listed once even with no out-arcs, so the dangling ones and
    # the isolated ones keep their score.
    every = sc.range(0, n, numSlices=parts).map(lambda v: (v, None))
    links = (arcs.union(every).groupByKey(parts)
             .mapValues(lambda ds: [x for x in ds if x is not None]).cache())
    m = links.map(lambda kv: len(kv[1])).sum()
    ranks = links.mapValues(lambda _: 1.0 / n)  # same partitioner as links
    t_load = time.perf_counter() - t0

    def contributions(kv):
        v, (nbrs, r) = kv
        yield v, 0.0  # keeps v in the result though nothing points at it
        if nbrs:
            share = r / len(nbrs)
            for u in nbrs:
                yield u, share

    redistribute = args.dangling == "redistribute"
    teleport = (1.0 - d) / n
    iter_s = []
    for _ in range(args.iters):
        t0 = time.perf_counter()
        joined = links.join(ranks)  # narrow: co-partitioned
        dangling = 0.0
        if redistribute:
            dangling = joined.filter(lambda kv: not kv[1][0]).map(lambda kv: kv[1][1]).sum()
        base = teleport + d * dangling / n
        new = (joined.flatMap(contributions).reduceByKey(lambda a, b: a + b, parts)
               .mapValues(lambda s, base=base: base + d * s).cache())
        new.count()  # materialise, so that each iteration is timed by itself
        if hasattr(ranks, "unpersist"):
            ranks.unpersist()
        ranks = new
        iter_s.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    got = ranks.collect()
    scores = [0.0] * n
    for v, r in got:
        scores[v] = r
    if args.out:
        sparkcommon.write_scores(args.out, scores)
    t_out = time.perf_counter() - t0
    t_total = time.perf_counter() - t_start
    env = sparkcommon.environment(spark, args)
    spark.stop()
    peak, procs = mem.stop()

    rec = {
        "system": "spark-rdd", "job": "pagerank", "graph": args.graph, "vertices": n, "arcs": m,
        "iterations": args.iters, "damping": d, "dangling": args.dangling,
        "session_s": t_session, "load_s": t_load, "iterations_s": sum(iter_s),
        "output_s": t_out, "total_s": t_total, "per_iteration_s": sparkcommon.spread(iter_s),
        "iteration_times_s": iter_s, "sum_scores": sum(scores),
        "peak_rss_bytes": peak, "processes": procs,
    }
    rec.update(env)
    sparkcommon.emit(rec, args.json)


if __name__ == "__main__":
    main()
