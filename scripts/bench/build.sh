#!/bin/bash
# Foundation benchmark: Kronecker generation + distributed CSR build (out- and in-CSR, as
# the graph jobs use), per phase, at 1 rank x 2 threads and at 3 ranks (master + 2
# workers x 1 thread), with peak memory per rank and bytes per arc summed over ranks.
#
#   scripts/bench/build.sh [SCALE] [REPS]      (defaults: 22 and 5)
#
# Env: LOOM (default build/loom). Times come from `loom info kron:SCALE --json`, whose
# phases are generate/degrees/partition/exchange/sort inside "build"; "stats" (the info
# itself) is not counted. Prints median and min-max over REPS after one warm-up run.
set -euo pipefail
SCALE=${1:-22}
REPS=${2:-5}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
LOOM=${LOOM:-$ROOT/build/loom}
. "$HERE/../one-node.sh"
[ -x "$LOOM" ] || { echo "build.sh: no loom binary at $LOOM (set LOOM)" >&2; exit 2; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "# CSR build benchmark, $(date -u +%Y-%m-%dT%H:%MZ), kron:$SCALE, $REPS repetitions after a warm-up"
echo "# machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(free -g | awk '/Mem:/{print $2}') GiB"
echo "# loom: $("$LOOM" --version), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo ?)"
echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

run() { # name ranks threads
    local name=$1 np=$2 t=$3
    for rep in $(seq 0 "$REPS"); do
        OMP_NUM_THREADS=$t mpiexec -n "$np" --oversubscribe --bind-to none "$LOOM" info \
            "kron:$SCALE" --json --quiet > "$out/$name.$rep.json"
    done
}
run "1x2" 1 2
run "3x1" 3 1

python3 - "$out" "$REPS" <<'PY'
import json, statistics, sys, glob, os
out, reps = sys.argv[1], int(sys.argv[2])
phases = ["generate", "degrees", "partition", "exchange", "sort", "build"]
def fmt(v): return f"{statistics.median(v):.2f} ({min(v):.2f}-{max(v):.2f})"
print("| configuration | " + " | ".join(phases) + " | peak memory per rank (MiB) | bytes/arc (sum) |")
print("|---" * (len(phases) + 3) + "|")
for name in ["1x2", "3x1"]:
    recs = [json.load(open(os.path.join(out, f"{name}.{r}.json"))) for r in range(1, reps + 1)]
    cells = [fmt([r["phases"].get(p, {"max_s": 0})["max_s"] for r in recs]) for p in phases]
    last = recs[-1]
    per_rank = " / ".join(f"{b / 2**20:.0f}" for b in last["peak_rss_bytes"])
    bpa = statistics.median(r["peak_rss_total_bytes"] / r["arcs"] for r in recs)
    label = {"1x2": "1 rank x 2 threads", "3x1": "3 ranks (master + 2 workers x 1 thread)"}[name]
    print(f"| {label} | " + " | ".join(cells) + f" | {per_rank} | {bpa:.1f} |")
print(f"\nvertices {last['vertices']}, arcs {last['arcs']}; seconds are the max over ranks, median (min-max) of {reps} runs")
PY
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
