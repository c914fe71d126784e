#!/bin/bash
# Pregel checkpoints: a run killed by an injected worker fault and restarted
# (at the same and at another rank count) gives the same result as an
# uninterrupted run.
set -u
: "${LOOM:?}" "${LOOM_TMP:?}"
MPX=${LOOM_MPIEXEC:-}
NP=${LOOM_NP:-1}
T=$LOOM_TMP/ckpt
rm -rf "$T" && mkdir -p "$T"
fail=0
die() { echo "FAIL: $*" >&2; fail=1; }

# Exact text equality is too strict across rank counts (aggregator sums are
# reduced in another order); 1e-12 absolute is far below any real difference.
same() {
    python3 - "$1" "$2" <<'PY'
import sys
a = [l.split("\t") for l in open(sys.argv[1])]
b = [l.split("\t") for l in open(sys.argv[2])]
ok = len(a) == len(b) and all(x[0] == y[0] and (x[1] == y[1] or abs(float(x[1]) - float(y[1])) <= 1e-12)
                               for x, y in zip(a, b))
sys.exit(0 if ok else 1)
PY
}

# Another rank count for the restart: 1 when this run uses several, else 2.
if [ "$NP" -gt 1 ]; then OTHER=""; else OTHER="${MPX/-n 1/-n 2}"; fi

for job in pagerank cc sssp; do
    case $job in
    pagerank) args=(kron:9 --iters 30) ;;
    cc) args=(kron:9) ;;
    sssp) args=(kron:9 --source 3 --undirected) ;;
    esac
    $MPX "$LOOM" $job "${args[@]}" --quiet --out "$T/$job-ref.txt" || die "$job reference run"

    d=$T/$job-ck
    $MPX "$LOOM" $job "${args[@]}" --quiet --checkpoint-every 2 --checkpoint-dir "$d" \
        --inject-fault abort-worker:0@superstep:5 --out "$T/$job-never.txt" >"$T/$job-fault.log" 2>&1
    rc=$?
    [ $rc -ne 0 ] || die "$job: the injected fault did not stop the run"
    [ ! -e "$T/$job-never.txt" ] || die "$job: a failed run left its output"
    ls "$d" | grep -q '^ckpt-4\.h5$' || die "$job: no checkpoint 4 in $(ls "$d")"
    ls "$d" | grep -q '^ckpt-6' && die "$job: checkpoint past the fault"

    $MPX "$LOOM" $job "${args[@]}" --restart "$d" --out "$T/$job-restart.txt" \
        2>"$T/$job-restart.log" || die "$job: restart failed: $(tail -3 "$T/$job-restart.log")"
    grep -q "restarting from" "$T/$job-restart.log" || die "$job: restart did not say so"
    same "$T/$job-ref.txt" "$T/$job-restart.txt" || die "$job: restart differs from the reference"

    $OTHER "$LOOM" $job "${args[@]}" --quiet --restart "$d" --out "$T/$job-other.txt" ||
        die "$job: restart at another rank count failed"
    same "$T/$job-ref.txt" "$T/$job-other.txt" || die "$job: restart at another rank count differs"
done

# Restart without a checkpoint, and a checkpoint of another graph: clear errors.
out=$($MPX "$LOOM" pagerank kron:9 --restart "$T/nothing" 2>&1)
[ $? -ne 0 ] && echo "$out" | grep -q "no complete checkpoint" || die "restart from nowhere: $out"
out=$($MPX "$LOOM" pagerank kron:8 --restart "$T/pagerank-ck" 2>&1)
[ $? -ne 0 ] && echo "$out" | grep -q "another run" || die "restart from a foreign checkpoint: $out"
out=$($MPX "$LOOM" pagerank kron:8 --inject-fault bogus 2>&1)
[ $? -eq 2 ] || die "bad --inject-fault is a usage error: $out"

[ $fail -eq 0 ] && echo ok
exit $fail
