#!/bin/bash
# PageRank before and after a change, alternated in one run: two builds of Loom at 1 rank x 2
# threads and at 3 ranks (master + 2 workers x 1 thread) on kron-22 undirected and directed.
#
#   scripts/bench/pagerank_ab.sh OLD_LOOM NEW_LOOM [REPS]      (default 4)
#
# Graphs: $WORK/kron22-{undirected,directed}.h5 (default /tmp/loom-bench-pr, made by
# scripts/bench/pagerank.py). In each repetition and graph the order is old 1x2, new 1x2,
# old 3 ranks, new 3 ranks. Prints one line per run (rep, graph, system, seconds per
# iteration of the superstep loop), then per graph the median and min-max of each system and
# the median and min-max of the per-repetition ratios (3 ranks / 1 rank, new / old).
set -euo pipefail
OLD=${1:?usage: pagerank_ab.sh OLD_LOOM NEW_LOOM [REPS]}
NEW=${2:?usage: pagerank_ab.sh OLD_LOOM NEW_LOOM [REPS]}
REPS=${3:-4}
WORK=${WORK:-/tmp/loom-bench-pr}
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../one-node.sh"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
echo "# PageRank A/B, $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg); old $OLD, new $NEW"
spi() { python3 -c "import json,sys;print(json.load(sys.stdin)['seconds_per_iteration'])"; }
for rep in $(seq 1 "$REPS"); do
    for g in undirected directed; do
        G=$WORK/kron22-$g.h5
        [ -f "$G" ] || { echo "pagerank_ab.sh: no $G (run scripts/bench/pagerank.py once)" >&2; exit 2; }
        for sys in old1 new1 old3 new3; do
            b=$OLD
            [[ $sys == new* ]] && b=$NEW
            if [[ $sys == *1 ]]; then
                s=$(OMP_NUM_THREADS=2 mpiexec -n 1 --bind-to none "$b" pagerank "$G" --iters 20 --json 2>/dev/null | spi)
            else
                s=$(OMP_NUM_THREADS=1 mpiexec -n 3 --bind-to none "$b" pagerank "$G" --iters 20 \
                    --json --threads 1 2>/dev/null | spi)
            fi
            echo "$rep $g $sys $s" | tee -a "$out"
        done
    done
done
echo "# end $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$out" <<'PY'
import collections, statistics, sys
runs = collections.defaultdict(list)
rep = collections.defaultdict(dict)
for line in open(sys.argv[1]):
    r, g, s, v = line.split()
    runs[(g, s)].append(float(v))
    rep[(g, r)][s] = float(v)
for g in ("undirected", "directed"):
    for s in ("old1", "new1", "old3", "new3"):
        x = sorted(runs[(g, s)])
        print("%-10s %s  %.4f (%.4f-%.4f)" % (g, s, statistics.median(x), x[0], x[-1]))
    for a, b in (("old3", "old1"), ("new3", "new1"), ("new3", "old3"), ("new1", "old1")):
        q = [v[a] / v[b] for (gg, _), v in rep.items() if gg == g]
        print("%-10s %s/%s  %.3f (%.3f-%.3f)" % (g, a, b, statistics.median(q), min(q), max(q)))
PY
