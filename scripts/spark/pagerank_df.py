"""PageRank with Spark DataFrames, every step in the JVM (no Python UDFs), Loom's semantics.

Run with the venv python from setup.sh:
    py=$(scripts/spark/setup.sh)
    $py scripts/spark/pagerank_df.py graph.el --iters 20 [--dangling redistribute|ignore]
        [--num-vertices N] [--out scores.txt] [--json]

The fairer opponent than the RDD example: rows never cross into Python, the
optimiser plans the joins and aggregations, and Tungsten's binary rows replace
pickled tuples. Semantics are those of pagerank_rdd.py (normalised, all vertices
0..N-1, parallel arcs counted, dangling mass redistributed uniformly or ignored,
fixed iterations). Each iteration's state is cut off from its lineage with an
eager localCheckpoint, without which the plan grows with every iteration and
planning time comes to dominate.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sparkcommon  # noqa: E402


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
    spark, t_session = sparkcommon.start_session("loom-pagerank-df", args)
    from pyspark.sql import functions as F

    d, parts = args.damping, args.partitions

    # ---- load
    t0 = time.perf_counter()
    lines = spark.read.text(args.graph).select(F.trim(F.col("value")).alias("l"))
    lines = lines.filter((F.length("l") > 0) & ~F.substring("l", 1, 1).isin("#", "%"))
    f = F.split(F.col("l"), "\\s+")
    edges = (lines.select(f.getItem(0).cast("long").alias("src"),
                          f.getItem(1).cast("long").alias("dst"))
             .repartition(parts, "src").cache())
    m = edges.count()
    n = args.num_vertices
    if n <= 0:
        n = edges.agg(F.greatest(F.max("src"), F.max("dst"))).first()[0] + 1
    degs = edges.groupBy("src").agg(F.count(F.lit(1)).alias("deg"))
    state = (spark.range(0, n, numPartitions=parts)
             .join(degs, F.col("id") == F.col("src"), "left")
             .select("id", F.coalesce(F.col("deg"), F.lit(0)).cast("long").alias("deg"),
                     F.lit(1.0 / n).alias("rank"))
             .repartition(parts, "id").localCheckpoint(eager=True))
    t_load = time.perf_counter() - t0

    redistribute = args.dangling == "redistribute"
    teleport = (1.0 - d) / n
    iter_s = []
    for _ in range(args.iters):
        t0 = time.perf_counter()
        dangling = 0.0
        if redistribute:
            dangling = state.filter("deg = 0").agg(F.sum("rank")).first()[0] or 0.0
        base = teleport + d * dangling / n
        share = state.filter("deg > 0").select(F.col("id").alias("src"),
                                               (F.col("rank") / F.col("deg")).alias("c"))
        sums = edges.join(share, "src").groupBy("dst").agg(F.sum("c").alias("s"))
        state = (state.join(sums, F.col("id") == F.col("dst"), "left")
                 .select("id", "deg",
                         (F.lit(base) + F.lit(d) * F.coalesce(F.col("s"), F.lit(0.0)))
                         .alias("rank"))
                 .localCheckpoint(eager=True))
        iter_s.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    scores = [0.0] * n
    for row in state.select("id", "rank").toLocalIterator():
        scores[row[0]] = row[1]
    if args.out:
        sparkcommon.write_scores(args.out, scores)
    t_out = time.perf_counter() - t0
    t_total = time.perf_counter() - t_start
    env = sparkcommon.environment(spark, args)
    spark.stop()
    peak, procs = mem.stop()

    rec = {
        "system": "spark-df", "job": "pagerank", "graph": args.graph, "vertices": n, "arcs": m,
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
