"""Spark's RDD programs that Loom's dataset commands mirror, for checking and timing them.

Run with the venv python from setup.sh:
    py=$(scripts/spark/setup.sh)
    $py scripts/spark/ds_programs.py pagerank graph.el --iters 10 --out ranks.txt [--json]
    $py scripts/spark/ds_programs.py pagerank-df graph.el --iters 10 --out ranks.txt [--json]
    $py scripts/spark/ds_programs.py logreg points.txt --iters 10 --out weights.txt [--json]

pagerank: the steps of Spark's examples/src/main/python/pagerank.py (lines parsed to
(src, dst), distinct, groupByKey, cached; ranks start at 1.0; each iteration
links.join(ranks).flatMap(contributions).reduceByKey(add).mapValues(0.15 + 0.85 x)).
Comment lines ('#', '%') are skipped, which the example does not need to do.

pagerank-df: the same computation with DataFrames, every step in the JVM (no Python
functions): distinct (src, dst) rows joined once with each source's out-degree,
repartitioned by source and cached; ranks start at 1.0 for every source; each iteration
joins links with ranks on src, sums rank / degree per dst and applies 0.15 + 0.85 x; the new
ranks are cut from their lineage with an eager localCheckpoint (which also times the
iteration), as Spark's users do to keep iterative plans from growing.

logreg: the RDD paper's logistic regression: points "y x1 .. xD" parsed once and cached,
w = 0, each iteration w -= points.map(gradient).reduce(add) with the gradient
(1 / (1 + exp(-y w.x)) - 1) y x, as `loom ds-logreg` computes it.

--json prints one record: total, per-iteration (median, min, max) and session seconds.
"""

import argparse
import os
import sys
import time
from operator import add

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sparkcommon  # noqa: E402


def pagerank(sc, args):
    def neighbours(line):
        f = line.split()
        return (int(f[0]), int(f[1]))

    lines = sc.textFile(args.input, args.partitions).filter(
        lambda l: l.strip() and l.lstrip()[0] not in "#%")
    links = lines.map(neighbours).distinct().groupByKey().cache()
    links.count()
    ranks = links.map(lambda kv: (kv[0], 1.0))

    def contribs(kv):
        urls, rank = kv[1]
        urls = list(urls)
        for u in urls:
            yield (u, rank / len(urls))

    times = []
    for _ in range(args.iters):
        t0 = time.perf_counter()
        ranks = links.join(ranks).flatMap(contribs).reduceByKey(add).mapValues(
            lambda r: r * 0.85 + 0.15).cache()
        ranks.count()  # each iteration timed on its own (the example runs them lazily)
        times.append(time.perf_counter() - t0)
    result = sorted(ranks.collect())
    if args.out:
        with open(args.out, "w") as f:
            for v, r in result:
                f.write(f"{v}\t{r:.17g}\n")
    return times


def pagerank_df(spark, args):
    from pyspark.sql import functions as F

    lines = spark.read.text(args.input).filter(~F.col("value").rlike(r"^\s*([#%]|$)"))
    f = F.split(F.trim(F.col("value")), r"\s+")
    edges = lines.select(f[0].cast("long").alias("src"), f[1].cast("long").alias("dst")).distinct()
    deg = edges.groupBy("src").agg(F.count(F.lit(1)).alias("deg"))
    links = edges.join(deg, "src").repartition(spark.sparkContext.defaultParallelism, "src")
    links = links.cache()
    links.count()
    ranks = deg.select("src", F.lit(1.0).alias("rank"))
    times = []
    for _ in range(args.iters):
        t0 = time.perf_counter()
        contribs = links.join(ranks, "src").select(
            F.col("dst").alias("src"), (F.col("rank") / F.col("deg")).alias("c"))
        ranks = contribs.groupBy("src").agg((F.sum("c") * 0.85 + 0.15).alias("rank"))
        ranks = ranks.localCheckpoint(eager=True)
        times.append(time.perf_counter() - t0)
    if args.out:
        with open(args.out, "w") as out:
            for row in sorted(ranks.collect()):
                out.write(f"{row['src']}\t{row['rank']:.17g}\n")
    return times


def logreg(sc, args):
    import numpy as np

    points = sc.textFile(args.input, args.partitions).filter(
        lambda l: l.strip() and l.lstrip()[0] != "#").map(
        lambda l: np.array([float(x) for x in l.split()])).cache()
    dim = len(points.first()) - 1
    w = np.zeros(dim)
    times = []
    for _ in range(args.iters):
        t0 = time.perf_counter()
        ww = w
        g = points.map(lambda p: (1 / (1 + np.exp(-p[0] * ww.dot(p[1:]))) - 1) * p[0] * p[1:]
                       ).reduce(add)
        w = w - g
        times.append(time.perf_counter() - t0)
    if args.out:
        with open(args.out, "w") as f:
            for j, x in enumerate(w):
                f.write(f"weight {j} {x:.17g}\n")
    return times


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("program", choices=["pagerank", "pagerank-df", "logreg"])
    ap.add_argument("input")
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--out")
    sparkcommon.add_spark_args(ap)
    args = ap.parse_args()
    t_start = time.perf_counter()
    spark, t_session = sparkcommon.start_session("loom-ds-" + args.program, args)
    if args.program == "pagerank-df":
        times = pagerank_df(spark, args)
    else:
        times = (pagerank if args.program == "pagerank" else logreg)(spark.sparkContext, args)
    rec = {"program": args.program, "iterations": args.iters, "session_s": t_session,
           "per_iteration_s": sparkcommon.spread(times),
           "total_s": time.perf_counter() - t_start,
           "environment": sparkcommon.environment(spark, args)}
    spark.stop()
    sparkcommon.emit(rec, args.json)


if __name__ == "__main__":
    main()
