#!/bin/bash
# Two builds of Loom side by side in one run, alternating, on the benchmarks a refactor must
# not slow down: word count and `loom sort` over the wordcount corpus (master + 2 workers),
# and PageRank on kron graphs (1 rank x 2 threads, and master + 2 workers).
#
#   scripts/bench/before_after.sh OLD_LOOM NEW_LOOM [REPS] [SCALE]   (defaults 5, 22)
#
# Env: WORK (default /tmp/loom-bench-ba), WC_WORK (the corpus of wordcount.sh; default
# /tmp/loom-bench-wc, built by scripts/bench/wordcount.sh when missing), ITERS (20).
# Every measurement alternates OLD and NEW, REPS times each; reported per case: the median
# and min-max of each, and NEW/OLD of the medians. Word count and sort: wall time of the
# whole command (start-up included) and the job's map/sort/shuffle/reduce phases.
# PageRank: seconds per iteration (the superstep loop).
set -euo pipefail
OLD=${1:?usage: before_after.sh OLD_LOOM NEW_LOOM [REPS] [SCALE]}
NEW=${2:?usage: before_after.sh OLD_LOOM NEW_LOOM [REPS] [SCALE]}
REPS=${3:-5}
SCALE=${4:-22}
ITERS=${ITERS:-20}
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${WORK:-/tmp/loom-bench-ba}
WC_WORK=${WC_WORK:-/tmp/loom-bench-wc}
mkdir -p "$WORK"
. "$HERE/../one-node.sh"

if [ ! -f "$WC_WORK/corpus/.done" ]; then
    # wordcount.sh builds the corpus (the Linux source, concatenated) on its first run
    LOOM=$NEW WORK=$WC_WORK "$HERE/wordcount.sh" 1 >/dev/null
fi
corpus=$WC_WORK/corpus

echo "# before/after, $(date -u +%Y-%m-%dT%H:%MZ), $(hostname), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# old: $OLD ($("$OLD" --version))"
echo "# new: $NEW ($("$NEW" --version))"
echo "# corpus $(du -sm "$corpus" | cut -f1) MB; kron:$SCALE; $REPS alternating repetitions"

stats() { # values on stdin -> "median min-max"
    sort -g | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2;
        printf "%.4f %.4f-%.4f", m, a[1], a[NR]}'
}
field() { python3 -c "import json,sys; d=json.loads(sys.stdin.read().strip().splitlines()[-1]); print($1)"; }

# one MapReduce run: prints "wall total map shuffle reduce"
mr_run() {
    local loom=$1 job=$2 out=$WORK/out-$RANDOM$RANDOM
    local t0 t1 js
    t0=$(date +%s.%N)
    js=$(OMP_NUM_THREADS=1 mpirun -np 3 "$loom" "$job" "$corpus" --out "$out" --json --quiet)
    t1=$(date +%s.%N)
    rm -rf "$out"
    echo "$(echo "$t1 - $t0" | bc) $(echo "$js" | field 'd["phases"]["total"]["max_s"], d["phases"]["map"]["max_s"], d["phases"]["shuffle"]["max_s"], d["phases"]["reduce"]["max_s"]' | tr -d '(),')"
}

pr_run() { # loom graph launcher... -> seconds per iteration
    local loom=$1 g=$2
    shift 2
    "$@" "$loom" pagerank "$g" --iters "$ITERS" --json --quiet | field 'd["seconds_per_iteration"]'
}

report() { # name file-old file-new column
    local name=$1 o=$2 n=$3 c=$4 mo mn
    mo=$(cut -d' ' -f"$c" "$o" | stats)
    mn=$(cut -d' ' -f"$c" "$n" | stats)
    printf "%-34s old %-24s new %-24s new/old %.3f\n" "$name" "$mo" "$mn" \
        "$(echo "${mn%% *} / ${mo%% *}" | bc -l)"
}

for job in wordcount sort; do
    : >"$WORK/$job-old" && : >"$WORK/$job-new"
    for ((r = 0; r < REPS; r++)); do
        mr_run "$OLD" "$job" >>"$WORK/$job-old"
        mr_run "$NEW" "$job" >>"$WORK/$job-new"
    done
    report "$job: whole command s" "$WORK/$job-old" "$WORK/$job-new" 1
    report "$job: job time s" "$WORK/$job-old" "$WORK/$job-new" 2
    report "$job: map s" "$WORK/$job-old" "$WORK/$job-new" 3
    report "$job: shuffle s" "$WORK/$job-old" "$WORK/$job-new" 4
    report "$job: reduce s" "$WORK/$job-old" "$WORK/$job-new" 5
done

for kind in undirected directed; do
    g=$WORK/kron$SCALE-$kind.h5
    if [ ! -f "$g" ]; then
        flag=""
        [ $kind = undirected ] && flag=--undirected
        OMP_NUM_THREADS=1 mpirun -np 3 "$NEW" convert "kron:$SCALE" $flag --drop-self-loops \
            --drop-duplicates --out "$g" --quiet
    fi
    for layout in 1x2 3x1; do
        : >"$WORK/pr-old" && : >"$WORK/pr-new"
        for ((r = 0; r < REPS; r++)); do
            if [ $layout = 1x2 ]; then
                launch=(env OMP_NUM_THREADS=2 mpirun -np 1 --bind-to none)
            else
                launch=(env OMP_NUM_THREADS=1 mpirun -np 3)
            fi
            pr_run "$OLD" "$g" "${launch[@]}" >>"$WORK/pr-old"
            pr_run "$NEW" "$g" "${launch[@]}" >>"$WORK/pr-new"
        done
        report "pagerank kron:$SCALE $kind $layout s/iter" "$WORK/pr-old" "$WORK/pr-new" 1
    done
done
