#!/usr/bin/python3
"""The two-level exchange over pretend nodes: what crosses nodes, and what the extra level costs.

Usage:
  /usr/bin/python3 scripts/bench/two_level.py [--np 5] [--node-ranks 2] [--reps 3]
      [--build DIR] [--wc-corpus linux|short|none] [--graph /tmp/loom-bench-pr/kron18.h5]
      [--iters 10]

On one machine the pretend nodes (--node-ranks K: K consecutive ranks per node) all talk
through shared memory, so this measures two things only: the bytes and nonempty messages
that would cross nodes (exact, from Loom's own counters), and the wall-time cost of the
second level (the relay's copy and combine, one more round of collectives). Each repetition
runs flat (--two-level off) and two-level (--two-level on) back to back, alternating which
goes first, for:
  wordcount on a corpus of scripts/bench/wc_corpus.sh (MapReduce shuffle, sum combiner);
  pagerank --exchange sparse on --graph (Pregel messages, sum combiner).
Prints median (min-max) of the whole command's wall seconds and the counters.
"""

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(HERE, ".."))
from one_node import one_node_env  # noqa: E402


def stats(xs):
    return "%.3f (%.3f-%.3f)" % (statistics.median(xs), min(xs), max(xs))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--np", type=int, default=5)
    ap.add_argument("--node-ranks", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--build", default=os.path.join(ROOT, "build", "release"))
    ap.add_argument("--wc-corpus", default="linux", choices=["linux", "short", "none"])
    ap.add_argument("--graph", default="/tmp/loom-bench-pr/kron18.h5")
    ap.add_argument("--iters", type=int, default=10)
    a = ap.parse_args()
    loom = os.path.join(a.build, "loom")
    env = one_node_env()
    launch = ["mpirun", "-np", str(a.np), "--oversubscribe"]
    jobs = []
    if a.wc_corpus != "none":
        d = subprocess.run([os.path.join(HERE, "wc_corpus.sh"), a.wc_corpus], env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
        files = sorted(glob.glob(os.path.join(d, "*.txt")))
        out = "/tmp/loom-bench-two-level-wc"
        jobs.append(("wordcount (%s)" % a.wc_corpus, ["wordcount"] + files +
                     ["--out", out, "--overwrite"], "shuffle_"))
    if a.graph:
        jobs.append(("pagerank --exchange sparse (%s)" % os.path.basename(a.graph),
                     ["pagerank", a.graph, "--exchange", "sparse", "--iters", str(a.iters)],
                     "exchange_"))
    res = {}
    for rep in range(a.reps):
        for name, args, pre in jobs:
            modes = ["off", "on"] if rep % 2 == 0 else ["on", "off"]
            for mode in modes:
                cmd = launch + [loom] + args + ["--node-ranks", str(a.node_ranks),
                                                "--two-level", mode, "--json", "--quiet"]
                t = time.time()
                p = subprocess.run(cmd, env=env, capture_output=True, text=True)
                el = time.time() - t
                if p.returncode != 0:
                    sys.exit("failed: %s\n%s" % (" ".join(cmd), p.stderr[-2000:]))
                s = json.loads(p.stdout)
                r = res.setdefault((name, mode), {"wall": [], "bytes": [], "msgs": [],
                                                  "all": [], "pre": pre})
                r["wall"].append(el)
                r["bytes"].append(s[pre + "offnode_bytes"])
                r["msgs"].append(s[pre + "offnode_messages"])
                r["all"].append(s.get("shuffle_bytes", 0))
                r["nodes"] = s[pre + "nodes"]
                print("rep %d %s %s: %.3f s, %d B across nodes in %d messages" % (
                    rep, name, mode, el, r["bytes"][-1], r["msgs"][-1]), file=sys.stderr)
    print("\n%d ranks, pretend nodes of %d ranks, %d repetitions, alternated\n" % (
        a.np, a.node_ranks, a.reps))
    print("| job | levels | nodes | wall s, median (min-max) | MB across nodes | messages across"
          " nodes |")
    print("|---|---|---|---|---|---|")
    for name, _, _ in jobs:
        for mode in ("off", "on"):
            r = res[(name, mode)]
            print("| %s | %s | %d | %s | %.1f (%.1f-%.1f) | %d |" % (
                name, "2" if mode == "on" else "1", r["nodes"], stats(r["wall"]),
                statistics.median(r["bytes"]) / 1e6, min(r["bytes"]) / 1e6,
                max(r["bytes"]) / 1e6, statistics.median(r["msgs"])))
        off, on = res[(name, "off")], res[(name, "on")]
        print("| %s | ratio 2/1 | | %.2f | %.2f | %.2f |" % (
            name, statistics.median(on["wall"]) / statistics.median(off["wall"]),
            statistics.median(on["bytes"]) / max(1, statistics.median(off["bytes"])),
            statistics.median(on["msgs"]) / max(1, statistics.median(off["msgs"]))))


if __name__ == "__main__":
    main()
