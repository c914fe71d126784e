#!/bin/bash
# Pregel checkpoints: a run killed by an injected worker fault, or stopped by
# SIGUSR1/SIGTERM (checkpoint on signal), and restarted gives the same result
# as an uninterrupted run.
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
    if [ "${LOOM_FT:-0}" = 1 ] && [ "$NP" -ge 3 ]; then
        # With ULFM the dead worker is survived: the run rolls back and completes.
        [ $rc -eq 0 ] || die "$job: the run did not survive the dead worker: $(tail -3 "$T/$job-fault.log")"
        same "$T/$job-ref.txt" "$T/$job-never.txt" || die "$job: survived run differs from the reference"
    else
        # Open MPI 5's launcher with ULFM on returns 0 when no rank is left at all (one
        # rank): what counts is that nothing was written.
        [ $rc -ne 0 ] || [ "${LOOM_FT:-0}" = 1 ] || die "$job: the injected fault did not stop the run"
        [ ! -e "$T/$job-never.txt" ] || die "$job: a failed run left its output"
        ls "$d" | grep -q '^ckpt-6' && die "$job: checkpoint past the fault"
        ls "$d" | grep -q '^ckpt-4$' || die "$job: no checkpoint 4 in $(ls "$d")"
    fi

    $MPX "$LOOM" $job "${args[@]}" --restart "$d" --out "$T/$job-restart.txt" \
        2>"$T/$job-restart.log" || die "$job: restart failed: $(tail -3 "$T/$job-restart.log")"
    grep -q "restarting from" "$T/$job-restart.log" || die "$job: restart did not say so"
    same "$T/$job-ref.txt" "$T/$job-restart.txt" || die "$job: restart differs from the reference"

    $OTHER "$LOOM" $job "${args[@]}" --quiet --restart "$d" --out "$T/$job-other.txt" ||
        die "$job: restart at another rank count failed"
    same "$T/$job-ref.txt" "$T/$job-other.txt" || die "$job: restart at another rank count differs"
done

# Checkpoint on a signal, with --checkpoint-dir alone (no periodic ones):
# SIGUSR1 to the launcher (mpiexec forwards it to every rank), then SIGTERM to
# one rank only (the last one, a worker: the others learn of it in the
# superstep's reduction). Either way the run checkpoints at a superstep, exits
# 75 naming it, writes no result, and --restart finishes with the reference scores.
sargs=(kron:16 --iters 300)
$MPX "$LOOM" pagerank "${sargs[@]}" --quiet --out "$T/sig-ref.txt" || die "signal: reference run"
for how in usr1-launcher term-rank; do
    d=$T/sig-$how
    log=$T/sig-$how.log
    $MPX "$LOOM" pagerank "${sargs[@]}" --checkpoint-dir "$d" --out "$T/sig-$how-never.txt" \
        >"$log" 2>&1 &
    pid=$!
    # The handlers are in place on every rank once superstep 0 has been reduced.
    for ((i = 0; i < 600; i++)); do
        grep -q '^superstep 3:' "$log" && break
        kill -0 $pid 2>/dev/null || break
        sleep 0.1
    done
    target=$pid
    sig=USR1
    if [ $how = term-rank ]; then
        sig=TERM
        # mpiexec forks the ranks itself; the newest child is the last rank.
        [ -n "$MPX" ] && target=$(pgrep -n -P $pid)
    fi
    if [ -n "$target" ]; then kill -$sig $target; else die "signal: no rank to signal"; fi
    wait $pid
    rc=$?
    [ $rc -eq 75 ] || die "signal $how: exit $rc, want 75: $(grep -v '^superstep' "$log" | tail -3)"
    msg=$(grep -o 'checkpointed at superstep [0-9]* on signal SIG[A-Z0-9]*; resume with --restart .*' "$log")
    echo "$msg" | grep -q "on signal SIG$sig; resume with --restart $d\$" ||
        die "signal $how: message '$msg'"
    n=$(echo "$msg" | sed -n 's/^checkpointed at superstep \([0-9]*\) .*/\1/p')
    [ "$(ls "$d")" = "ckpt-$n" ] || die "signal $how: checkpoints '$(ls "$d")', want ckpt-$n"
    [ ! -e "$T/sig-$how-never.txt" ] || die "signal $how: an interrupted run wrote its output"
    $MPX "$LOOM" pagerank "${sargs[@]}" --quiet --restart "$d" --out "$T/sig-$how-restart.txt" ||
        die "signal $how: restart failed"
    same "$T/sig-ref.txt" "$T/sig-$how-restart.txt" || die "signal $how: restart differs"
    echo "signal $how: checkpointed at superstep $n, restart agrees"
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
