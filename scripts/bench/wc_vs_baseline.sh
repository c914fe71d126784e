#!/bin/bash
# Word count against the one-thread C count (wc_baseline.c), whole command, on the short-word
# and the Linux-source corpora (scripts/bench/wc_corpus.sh), baseline and Loom alternated in
# each repetition; then the map kernels on one core (wc_kernels.c: tokenise, tokenise + hash,
# the whole map into a combining store) on one file of each corpus.
#
#   scripts/bench/wc_vs_baseline.sh [REPS] [CORPUS...]      (default 5; short linux)
#
# Env: LOOM (default build/release/loom), NP (default 3: master + 2 workers), SPLIT (map task
# size, default 32M), WORK (default /tmp/loom-bench-wc), LOCK (a file: each baseline + Loom
# pair and each kernel run holds `flock LOCK`, so that other benchmarks on a shared machine
# take turns with these), KERNELS (0: skip the kernel runs, e.g. for an older build).
# Loom's time is the whole `mpiexec -n NP loom wordcount` command (MPI start-up included);
# the baseline's the whole process. Prints median and min-max of each, their ratio, Loom's
# job and map times (max over ranks), and checks that the distinct-word and word counts agree.
set -euo pipefail
REPS=${1:-5}
shift || true
CORPORA=("$@")
[ ${#CORPORA[@]} -gt 0 ] || CORPORA=(short linux)
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
LOOM=${LOOM:-$ROOT/build/release/loom}
NP=${NP:-3}
SPLIT=${SPLIT:-32M}
WORK=${WORK:-/tmp/loom-bench-wc}
export WORK
. "$HERE/../one-node.sh"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
[ -x "$LOOM" ] || { echo "wc_vs_baseline.sh: no loom binary at $LOOM (set LOOM)" >&2; exit 2; }
locked() { if [ -n "${LOCK:-}" ]; then flock "$LOCK" "$@"; else "$@"; fi; }

BASE=$WORK/wc_baseline
KERN=$WORK/wc_kernels
mkdir -p "$WORK"
[ -x "$BASE" ] && [ "$BASE" -nt "$HERE/wc_baseline.c" ] ||
    gcc -O2 -march=native -o "$BASE" "$HERE/wc_baseline.c"
BUILD=$(dirname "$LOOM")
KERNELS=${KERNELS:-1}
[ "$KERNELS" = 0 ] || mpicc -O3 -march=native -I"$ROOT/include" -I"$BUILD/include" -I"$ROOT/src" \
    -I"$ROOT" "$HERE/wc_kernels.c" -L"$BUILD" -lloom -Wl,-rpath,"$BUILD" -o "$KERN"

stats() { # values on stdin -> "median min-max"
    sort -g | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2;
        printf "%.3f  %.3f-%.3f", m, a[1], a[NR]}'
}
med() { printf "%s\n" "$@" | stats | cut -d' ' -f1; }
field() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }

echo "# wc_vs_baseline, $(date -u +%Y-%m-%dT%H:%MZ)"
echo "# machine: $(nproc --all) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(free -g | awk '/Mem:/{print $2}') GiB"
# the commit of the tree LOOM was built in (BUILD/../..), as build/release/loom is
SRC=$(cd "$(dirname "$LOOM")/../.." && pwd)
echo "# loom: $LOOM, commit $(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo ?)$(git -C "$SRC" diff --quiet 2>/dev/null || echo ' (dirty)')"
echo "# mpiexec -n $NP (master + $((NP - 1)) workers), OMP_NUM_THREADS=$OMP_NUM_THREADS, split $SPLIT, $REPS repetitions"
echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
for kind in "${CORPORA[@]}"; do
    DIR=$("$HERE/wc_corpus.sh" "$kind")
    FILES=("$DIR"/*.txt)
    BYTES=$(cat "${FILES[@]}" | wc -c)
    declare -a b_s=() l_s=() l_job=() l_map=()
    for rep in $(seq "$REPS"); do
        rm -rf "$WORK/out"
        locked bash -c '
            "$1" "${@:6}" > "$2/base.json"
            t0=$(date +%s.%N)
            mpiexec -n "$3" "$4" wordcount "${@:6}" --out "$2/out" --split-size "$5" --json \
                > "$2/loom.json" 2> "$2/loom.err"
            t1=$(date +%s.%N)
            echo "$t1 - $t0" | bc > "$2/loom.s"' _ "$BASE" "$WORK" "$NP" "$LOOM" "$SPLIT" "${FILES[@]}"
        b_s+=("$(field "$WORK/base.json" "d['seconds']")")
        l_s+=("$(cat "$WORK/loom.s")")
        l_job+=("$(field "$WORK/loom.json" "d['phases']['total']['max_s']")")
        l_map+=("$(field "$WORK/loom.json" "d['phases']['map']['max_s']")")
        distinct=$(field "$WORK/base.json" "d['distinct']")
        words=$(field "$WORK/base.json" "d['words']")
        lout=$(field "$WORK/loom.json" "d['output_records']")
        lpairs=$(field "$WORK/loom.json" "d['map_pairs']")
        [ "$distinct" = "$lout" ] && [ "$words" = "$lpairs" ] ||
            { echo "$kind: counts differ (baseline $distinct/$words, loom $lout/$lpairs)" >&2; exit 1; }
    done
    rm -rf "$WORK/out"
    echo
    echo "## $kind: ${#FILES[@]} files, $BYTES bytes, $words words, $distinct distinct (counts agree)"
    printf "%-44s %-24s %s\n" "run" "seconds: median min-max" "MB/s (median)"
    row() {
        printf "%-44s %-24s %.0f\n" "$1" "$(printf "%s\n" "${@:2}" | stats)" \
            "$(awk -v b="$BYTES" -v s="$(med "${@:2}")" 'BEGIN{print b / 1e6 / s}')"
    }
    row "wc_baseline, 1 thread, whole process" "${b_s[@]}"
    row "loom wordcount -n $NP, whole command" "${l_s[@]}"
    row "  job (MPI_Init to the end, max over ranks)" "${l_job[@]}"
    row "  map phase (max over ranks)" "${l_map[@]}"
    echo "baseline / loom, whole command (medians): $(awk -v a="$(med "${b_s[@]}")" -v b="$(med "${l_s[@]}")" 'BEGIN{printf "%.2f", a/b}')x"
    echo "map phase per worker: $(awk -v b="$BYTES" -v s="$(med "${l_map[@]}")" -v w=$((NP > 1 ? NP - 1 : 1)) 'BEGIN{printf "%.0f", b / 1e6 / s / w}') MB/s"
    [ "$KERNELS" = 0 ] && continue
    echo "kernels on one core (CPU time), ${FILES[0]}:"
    locked "$KERN" --reps 5 --split $((32 << 20)) "${FILES[0]}"
done
echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
