#!/bin/bash
# PageRank benchmark: Loom (1 rank x 2 threads, and master + 2 workers x 1 thread) against
# SuiteSparse:GraphBLAS in the same run, on undirected and directed kron graphs.
#
#   scripts/bench/pagerank.sh [SCALE] [REPS]      (defaults: 22 and 3)
#
# Env: LOOM (the loom binary; default build/loom), WORK (scratch; default /tmp/loom-bench-pr),
# ITERS (default 20), THREADS (default 2). Graphs are generated once with `loom convert`
# (duplicates and self-loops dropped, as gapbs and GraphBLAS need) into $WORK as HDF5, so
# every system reads the same CSR. Reports seconds per iteration (kernel only: the
# superstep loop for Loom, the iteration loop for GraphBLAS), median and min-max over
# REPS, Loom's arcs/s and peak memory per rank, and what shaped the result.
set -euo pipefail
SCALE=${1:-22}
REPS=${2:-3}
ITERS=${ITERS:-20}
THREADS=${THREADS:-2}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
LOOM=${LOOM:-$ROOT/build/loom}
WORK=${WORK:-/tmp/loom-bench-pr}
mkdir -p "$WORK"
. "$HERE/../one-node.sh"
[ -x "$LOOM" ] || { echo "pagerank.sh: no loom binary at $LOOM (set LOOM)" >&2; exit 2; }

GB=$WORK/gb_pagerank
if [ ! -x "$GB" ] || [ "$HERE/gb_pagerank.c" -nt "$GB" ]; then
    mpicc -O3 -march=native -fopenmp "$HERE/gb_pagerank.c" -I/usr/include/hdf5/openmpi \
        -lhdf5_openmpi -lgraphblas -o "$GB"
fi

echo "# PageRank benchmark, $(date -u +%Y-%m-%dT%H:%MZ)"
echo "# machine: $(hostname), $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(free -g | awk '/Mem:/{print $2}') GiB"
echo "# topology: $(lstopo-no-graphics --of console --no-io 2>/dev/null | grep -E 'Package|L3|Core' | head -4 | tr -s ' ' | tr '\n' ';')"
echo "# loom: $("$LOOM" --version 2>/dev/null), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo ?)"
echo "# compiler: $(mpicc --version | head -1); flags -O3 -march=native -fopenmp"
echo "# GraphBLAS: $(dpkg-query -W -f='${Version}' libgraphblas-dev 2>/dev/null || echo ?)"
echo "# iterations $ITERS, repetitions $REPS, load average $(cut -d' ' -f1-3 /proc/loadavg)"

stats() { # values on stdin -> "median min-max"
    sort -g | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2;
        printf "%.4f  %.4f-%.4f", m, a[1], a[NR]}'
}
json_field() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

for kind in undirected directed; do
    g=$WORK/kron$SCALE-$kind.h5
    if [ ! -f "$g" ]; then
        flag=""
        [ $kind = undirected ] && flag=--undirected
        "$LOOM" convert kron:$SCALE $flag --drop-duplicates --drop-self-loops --out "$g" --quiet
    fi
    echo
    echo "## kron:$SCALE $kind ($g)"
    printf "%-34s %s\n" "system" "s/iteration median  min-max   (last repetition: arcs/s, peak RSS per rank)"
    declare -A res=()
    extra1="" extra3=""
    for rep in $(seq "$REPS"); do
        j=$(OMP_NUM_THREADS=$THREADS mpiexec -n 1 --bind-to none "$LOOM" pagerank "$g" \
            --iters "$ITERS" --json --quiet)
        res[l1]+="$(echo "$j" | json_field "d['seconds_per_iteration']") "
        extra1=$(echo "$j" | json_field "'%.3g arcs/s, %s MiB' % (d['arcs_per_second'], \
            [round(x/2**20) for x in d['peak_rss_bytes']])")
        j=$(mpiexec -n 3 --oversubscribe --bind-to none -x OMP_NUM_THREADS=1 "$LOOM" pagerank \
            "$g" --iters "$ITERS" --threads 1 --json --quiet)
        res[l3]+="$(echo "$j" | json_field "d['seconds_per_iteration']") "
        extra3=$(echo "$j" | json_field "'%.3g arcs/s, %s MiB' % (d['arcs_per_second'], \
            [round(x/2**20) for x in d['peak_rss_bytes']])")
        o=$(OMP_NUM_THREADS=$THREADS "$GB" "$g" "$ITERS")
        res[gb]+="$(echo "$o" | sed -n 's/.*seconds_per_iteration=\([0-9.]*\).*/\1/p') "
    done
    printf "%-34s %s   (%s)\n" "loom 1 rank x $THREADS threads" \
        "$(echo ${res[l1]} | tr ' ' '\n' | stats)" "$extra1"
    printf "%-34s %s   (%s)\n" "loom 3 ranks (master + 2 x 1 thr)" \
        "$(echo ${res[l3]} | tr ' ' '\n' | stats)" "$extra3"
    printf "%-34s %s\n" "GraphBLAS $THREADS threads (FP64)" "$(echo ${res[gb]} | tr ' ' '\n' | stats)"
    unset res
done
echo
echo "# load average at the end $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine inflates wall times)"
