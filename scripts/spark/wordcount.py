"""Word count with Spark (RDD or DataFrame), tokenised exactly as `loom wordcount` does.

Run with the venv python from setup.sh:
    py=$(scripts/spark/setup.sh)
    $py scripts/spark/wordcount.py INPUT... --out DIR [--api rdd|df] [--json]

The rule (include/loom/mr.h, loom_mr_next_word): a word is a maximal run of ASCII
letters and digits [A-Za-z0-9], lowercased; every other byte separates words,
including the bytes of non-ASCII UTF-8 characters. Spark decodes text as UTF-8
(bad bytes become U+FFFD), and every non-ASCII character is a separator under
the rule, so splitting the decoded text on [^A-Za-z0-9]+ and lowercasing
afterwards gives the same words as the byte rule. Lowercasing after the split
matters: Unicode lowercasing turns a few non-ASCII characters (the Kelvin sign)
into ASCII letters.

Output: DIR/part-* files of "word<TAB>count" lines, like Loom's.
"""

import argparse
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sparkcommon  # noqa: E402

SEPARATORS = re.compile(r"[^A-Za-z0-9]+")


def words(line):
    return [w.lower() for w in SEPARATORS.split(line) if w]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("inputs", nargs="+", help="text files or directories")
    ap.add_argument("--out", required=True, help="output directory (must not exist)")
    ap.add_argument("--api", choices=["rdd", "df"], default="df",
                    help="rdd: Python lambdas as in Spark's example; df: JVM only (default)")
    sparkcommon.add_spark_args(ap)
    args = ap.parse_args()

    in_bytes = 0
    for p in args.inputs:
        if os.path.isdir(p):
            for root, _, files in os.walk(p):
                in_bytes += sum(os.path.getsize(os.path.join(root, f)) for f in files)
        else:
            in_bytes += os.path.getsize(p)

    mem = sparkcommon.PeakMemory().start()
    t_start = time.perf_counter()
    spark, t_session = sparkcommon.start_session(f"loom-wordcount-{args.api}", args)
    t0 = time.perf_counter()
    if args.api == "rdd":
        sc = spark.sparkContext
        text = sc.textFile(",".join(args.inputs), args.partitions)
        counts = (text.flatMap(words).map(lambda w: (w, 1))
                  .reduceByKey(lambda a, b: a + b, args.partitions))
        counts.map(lambda kv: f"{kv[0]}\t{kv[1]}").saveAsTextFile(args.out)
        distinct = counts.count()
        total = counts.values().sum()
    else:
        from pyspark.sql import functions as F

        text = spark.read.text(args.inputs)
        w = F.explode(F.split(F.col("value"), "[^A-Za-z0-9]+")).alias("w")
        counts = (text.select(w).filter(F.length("w") > 0)
                  .select(F.lower(F.col("w")).alias("w"))
                  .groupBy("w").agg(F.count(F.lit(1)).alias("n")).cache())
        counts.write.option("sep", "\t").option("quote", "").csv(args.out)
        distinct = counts.count()
        total = counts.agg(F.sum("n")).first()[0] or 0
    t_job = time.perf_counter() - t0
    t_total = time.perf_counter() - t_start
    env = sparkcommon.environment(spark, args)
    spark.stop()
    peak, procs = mem.stop()
    rec = {
        "system": f"spark-{args.api}", "job": "wordcount", "inputs": args.inputs,
        "input_bytes": in_bytes, "distinct_words": distinct, "words": total,
        "session_s": t_session, "job_s": t_job, "total_s": t_total,
        "mb_per_s": in_bytes / 1e6 / t_job if t_job > 0 else None,
        "peak_rss_bytes": peak, "processes": procs,
    }
    rec.update(env)
    sparkcommon.emit(rec, args.json)


if __name__ == "__main__":
    main()
