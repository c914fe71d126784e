#!/bin/bash
# Wordcount benchmark: `loom wordcount` at 3 ranks (master + 2 workers) over >= 1 GB of real
# text (the Linux 6.1 source from Debian's linux-source-6.1), in memory and with a budget of
# 1/10 of the input (spilling), against a plain single-threaded C word count (wc_baseline.c,
# the COST baseline) and raw MPI_Alltoallv bandwidth (alltoallv_bw.c) in the same run; and
# `loom sort` over the same corpus, whose shuffle carries every input byte (no combiner).
#
#   scripts/bench/wordcount.sh [REPS]           (default 3)
#
# Env: LOOM (the loom binary; default build/loom), WORK (scratch; default /tmp/loom-bench-wc),
# CORPUS_MB (default 1100), NP (default 3), SPLIT (map task size, default 32M).
# The corpus: scripts/bench/wc_corpus.sh linux ($WORK/corpus). Reports MB/s (input bytes /
# wall time of the whole command, start-up included, and of the map phase), phase times,
# shuffle bytes and rate, peak RSS per rank, median and min-max over REPS, and checks that
# Loom's distinct-word and total counts equal the baseline's.
set -euo pipefail
REPS=${1:-3}
NP=${NP:-3}
SPLIT=${SPLIT:-32M}
CORPUS_MB=${CORPUS_MB:-1100}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
LOOM=${LOOM:-$ROOT/build/loom}
WORK=${WORK:-/tmp/loom-bench-wc}
mkdir -p "$WORK"
. "$HERE/../one-node.sh"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
[ -x "$LOOM" ] || { echo "wordcount.sh: no loom binary at $LOOM (set LOOM)" >&2; exit 2; }

# ---------------------------------------------------------------- corpus
WORK=$WORK CORPUS_MB=$CORPUS_MB "$HERE/wc_corpus.sh" linux > /dev/null
FILES=("$WORK"/corpus/text-*.txt)
BYTES=$(cat "${FILES[@]}" | wc -c)
BUDGET=$((BYTES / 10))

# ---------------------------------------------------------------- helpers
BASE=$WORK/wc_baseline
A2A=$WORK/alltoallv_bw
[ -x "$BASE" ] && [ "$BASE" -nt "$HERE/wc_baseline.c" ] || gcc -O2 -march=native -o "$BASE" "$HERE/wc_baseline.c"
[ -x "$A2A" ] && [ "$A2A" -nt "$HERE/alltoallv_bw.c" ] || mpicc -O2 -o "$A2A" "$HERE/alltoallv_bw.c"

stats() { # values on stdin -> "median min-max"
    sort -g | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2;
        printf "%.2f  %.2f-%.2f", m, a[1], a[NR]}'
}
field() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }

echo "# Wordcount benchmark, $(date -u +%Y-%m-%dT%H:%MZ)"
echo "# machine: $(hostname), $(nproc --all) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(free -g | awk '/Mem:/{print $2}') GiB"
echo "# topology: $(lstopo-no-graphics --of console --no-io 2>/dev/null | grep -E 'Package|L3|Core' | head -4 | tr -s ' ' | tr '\n' ';')"
echo "# loom: $("$LOOM" --version 2>/dev/null | head -1), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo ?)"
echo "# compiler: $(gcc --version | head -1); loom -O3 -march=native, baseline -O2 -march=native"
echo "# corpus: ${#FILES[@]} files, $BYTES bytes (linux-source-6.1 text files), split $SPLIT"
echo "# ranks $NP (master + $((NP - 1)) workers), OMP_NUM_THREADS=$OMP_NUM_THREADS, repetitions $REPS"
echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------------- runs
declare -a b_s l_s l_job l_map s_s s_map a2a o_s t_s x_sh x_ex
for rep in $(seq "$REPS"); do
    "$BASE" "${FILES[@]}" > "$WORK/base.json"
    b_s+=("$(field "$WORK/base.json" "d['seconds']")")

    rm -rf "$WORK/out"
    t0=$(date +%s.%N)
    mpiexec -n "$NP" "$LOOM" wordcount "${FILES[@]}" --out "$WORK/out" --split-size "$SPLIT" \
        --json > "$WORK/loom.json" 2> "$WORK/loom.err"
    t1=$(date +%s.%N)
    l_s+=("$(echo "$t1 - $t0" | bc)")
    l_map+=("$(field "$WORK/loom.json" "d['phases']['map']['max_s']")")
    l_job+=("$(field "$WORK/loom.json" "d['phases']['total']['max_s']")")

    rm -rf "$WORK/out" "$WORK/spill"
    mkdir -p "$WORK/spill"
    t0=$(date +%s.%N)
    mpiexec -n "$NP" "$LOOM" wordcount "${FILES[@]}" --out "$WORK/out" --split-size "$SPLIT" \
        --memory "$BUDGET" --spill-dir "$WORK/spill" --json > "$WORK/spill.json" 2> "$WORK/spill.err"
    t1=$(date +%s.%N)
    s_s+=("$(echo "$t1 - $t0" | bc)")
    s_map+=("$(field "$WORK/spill.json" "d['phases']['map']['max_s']")")

    # one rank (master = the only worker): Loom's cost per core against the baseline
    rm -rf "$WORK/out"
    t0=$(date +%s.%N)
    mpiexec -n 1 "$LOOM" wordcount "${FILES[@]}" --out "$WORK/out" --split-size "$SPLIT" \
        --quiet > /dev/null 2>&1
    t1=$(date +%s.%N)
    o_s+=("$(echo "$t1 - $t0" | bc)")

    # one rank with 2 OpenMP threads (the hybrid layout: one rank per node)
    rm -rf "$WORK/out"
    t0=$(date +%s.%N)
    mpiexec -n 1 --bind-to none "$LOOM" wordcount "${FILES[@]}" --out "$WORK/out" \
        --split-size "$SPLIT" --threads 2 --quiet > /dev/null 2>&1
    t1=$(date +%s.%N)
    t_s+=("$(echo "$t1 - $t0" | bc)")

    mpiexec -n "$NP" "$A2A" $((16 << 20)) 10 > "$WORK/a2a.json"
    a2a+=("$(field "$WORK/a2a.json" "d['GBps_per_rank_median']")")

    # the shuffle without a combiner: loom sort moves every input byte
    rm -rf "$WORK/sorted"
    mpiexec -n "$NP" "$LOOM" sort "${FILES[@]}" --out "$WORK/sorted" --memory 16G --json \
        > "$WORK/sort.json" 2> "$WORK/sort.err"
    x_sh+=("$(field "$WORK/sort.json" "d['phases']['shuffle']['max_s']")")
    x_ex+=("$(field "$WORK/sort.json" "d['phases']['shuffle_exchange']['max_s']")")
    rm -rf "$WORK/sorted"
done

# The last runs' counts must agree with the baseline's.
distinct=$(field "$WORK/base.json" "d['distinct']")
total=$(field "$WORK/base.json" "d['words']")
lout=$(field "$WORK/loom.json" "d['output_records']")
lpairs=$(field "$WORK/loom.json" "d['map_pairs']")
check="ok"
[ "$distinct" = "$lout" ] && [ "$total" = "$lpairs" ] || check="MISMATCH (baseline $distinct/$total, loom $lout/$lpairs)"

mbps() { awk -v b="$BYTES" '{printf "%.1f\n", b / 1e6 / $1}'; }
echo
printf "%-40s %-22s %s\n" "run" "seconds median min-max" "MB/s (median)"
med() { printf "%s\n" "$@" | stats | cut -d' ' -f1; }
row() { printf "%-40s %-22s %s\n" "$1" "$(printf "%s\n" "${@:2}" | stats)" "$(med "${@:2}" | mbps)"; }
row "wc_baseline (1 thread)" "${b_s[@]}"
row "loom wordcount, whole command" "${l_s[@]}"
row "loom wordcount, job (MPI_Init..end)" "${l_job[@]}"
row "loom wordcount, map phase" "${l_map[@]}"
row "loom wordcount --memory $((BUDGET >> 20))M, whole" "${s_s[@]}"
row "loom wordcount --memory $((BUDGET >> 20))M, map" "${s_map[@]}"
row "loom wordcount, 1 rank, whole command" "${o_s[@]}"
row "loom wordcount, 1 rank x 2 threads, whole" "${t_s[@]}"
echo
echo "speed-up of $((NP - 1)) workers over one thread (whole command, medians): $(awk -v a="$(med "${b_s[@]}")" -v b="$(med "${l_s[@]}")" 'BEGIN{printf "%.2f", a/b}')"
echo "speed-up of $((NP - 1)) workers over one thread (job time, medians): $(awk -v a="$(med "${b_s[@]}")" -v b="$(med "${l_job[@]}")" 'BEGIN{printf "%.2f", a/b}')"
echo "spilling run / in-memory run (whole command, medians): $(awk -v a="$(med "${s_s[@]}")" -v b="$(med "${l_s[@]}")" 'BEGIN{printf "%.2f", a/b}')"
echo "counts (distinct words, words) against the baseline: $check"
echo
echo "## last in-memory run (phases: max over ranks, s)"
python3 - "$WORK/loom.json" "$WORK/spill.json" "$(med "${a2a[@]}")" <<'EOF'
import json, sys
for name, path in (("in memory", sys.argv[1]), ("spilling", sys.argv[2])):
    d = json.load(open(path))
    ph = d["phases"]
    print("%-10s " % name + "  ".join("%s %.2f" % (k, v["max_s"]) for k, v in ph.items()))
    sh = ph.get("shuffle", {}).get("max_s", 0)
    gb = d["shuffle_bytes"] / 1e9
    nw = max(1, d["ranks"] - 1)
    print("%-10s shuffle %.1f MB in %.3f s = %.3f GB/s per worker; raw Alltoallv %s GB/s per rank" %
          ("", gb * 1e3, sh, gb / nw / sh if sh else 0, sys.argv[3]))
    print("%-10s spill runs %d, spill bytes %d; peak RSS per rank (MiB): %s" %
          ("", d["spill_runs"], d["spill_bytes"], " ".join("%.0f" % (r / 2**20) for r in d["peak_rss_bytes"])))
EOF
echo "raw MPI_Alltoallv (16 MiB per destination) GB/s per rank, median min-max: $(printf "%s\n" "${a2a[@]}" | stats)"
echo
echo "## shuffle without a combiner: loom sort over the same corpus, --memory 16G (last run's phases)"
python3 - "$WORK/sort.json" "$(med "${a2a[@]}")" "$(printf "%s\n" "${x_ex[@]}" | stats)" "$(printf "%s\n" "${x_sh[@]}" | stats)" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
ph = d["phases"]
print("phases (max over ranks, s): " + "  ".join("%s %.2f" % (k, v["max_s"]) for k, v in ph.items()))
L = max(1, d["ranks"] - 1)
leave = d["shuffle_bytes"] * (L - 1) / L / L if L > 1 else d["shuffle_bytes"]  # bytes each worker sends to others
raw = float(sys.argv[2])
ex_med = float(sys.argv[3].split()[0]); sh_med = float(sys.argv[4].split()[0])
print("shuffle bytes %.1f MB in all; %.1f MB leave each worker for the other workers" % (d["shuffle_bytes"] / 1e6, leave / 1e6))
print("exchange rounds (Alltoall + Alltoallv), s median min-max: %s -> %.2f GB/s per worker = %.0f%% of raw %.2f GB/s"
      % (sys.argv[3], leave / ex_med / 1e9, 100 * leave / ex_med / 1e9 / raw, raw))
print("whole shuffle (pack + exchange + unpack), s median min-max: %s -> %.2f GB/s per worker = %.0f%% of raw"
      % (sys.argv[4], leave / sh_med / 1e9, 100 * leave / sh_med / 1e9 / raw))
print("peak RSS per rank (MiB): %s" % " ".join("%.0f" % (r / 2**20) for r in d["peak_rss_bytes"]))
EOF
echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
