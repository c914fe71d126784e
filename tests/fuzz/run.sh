#!/usr/bin/env bash
# Build the libFuzzer targets (text parsers, checkpoint checks) in build/fuzz (clang) and run
# each for SECONDS (default 10) from the seed corpus in tests/fuzz/corpus.
#   tests/fuzz/run.sh [SECONDS] [TARGET...]      targets: edgelist mtx checkpoint
# New inputs go to build/fuzz/corpus-TARGET; a crash leaves crash-* there and
# fails. Turn a crash into a regular test (tests/unit/test_io_parsers.c) and
# add its input to tests/fuzz/corpus/TARGET. Environment: CC (default clang),
# FUZZ_SEED (default 1), FUZZ_JOBS (parallel fuzzing processes, default 1).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
seconds=${1:-10}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(edgelist mtx checkpoint)
build=$root/build/fuzz

CC=${CC:-clang} cmake -S "$root" -B "$build" -DLOOM_FUZZ=ON -DLOOM_TESTS=OFF \
    -DLOOM_NATIVE=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" --target "${targets[@]/#/fuzz_}" -j"$(nproc)" >/dev/null

jobs=()
if [ "${FUZZ_JOBS:-1}" -gt 1 ]; then
    jobs=(-jobs="$FUZZ_JOBS" -workers="$FUZZ_JOBS")
fi
status=0
for t in "${targets[@]}"; do
    mkdir -p "$build/corpus-$t" "$build/crashes-$t"
    dict=(-dict="$here/text.dict")
    [ "$t" = checkpoint ] && dict=()
    echo "fuzz $t: ${seconds}s"
    if ! (cd "$build/crashes-$t" &&
        "$build/tests/fuzz/fuzz_$t" -seed="${FUZZ_SEED:-1}" -max_total_time="$seconds" \
            -max_len=4096 "${dict[@]}" "${jobs[@]}" -print_final_stats=1 \
            "$build/corpus-$t" "$here/corpus/$t"); then
        echo "fuzz $t: FAILED; the input is in $build/crashes-$t" >&2
        status=1
    fi
done
exit $status
