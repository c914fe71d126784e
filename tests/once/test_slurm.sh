#!/usr/bin/env bash
# Bring up a private single-node Slurm, run scripts/slurm's PageRank, word count and preemption jobs, check them.
#
# Follows ../shared/PLATFORM.md: slurm-wlm and munge from apt (installed here if
# missing; SKIPPED only when that is impossible), a slurm.conf under a scratch
# directory, slurmctld + slurmd + a munged of our own (own key, socket and ports,
# so a Slurm or munged already on the machine is left alone; cred_expire=5 so a
# requeued job restarts after 5 s, not Slurm's default 120 s). Submits
# pagerank.sbatch, wordcount.sbatch and preempt_pagerank.sbatch as users do,
# sends the preemption warning with `scancel --signal=USR1 --batch` (the
# script forwards it to the ranks, which checkpoint and exit 75, and requeues),
# polls `scontrol show job`, and compares the results with networkx and
# collections.Counter. Every daemon it started is stopped on exit.
set -uo pipefail

: "${LOOM:?set by CTest: the loom binary}"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=${LOOM_SRC:-$(cd "$here/../.." && pwd)}
py=/usr/bin/python3
t_start=$(date +%s)

fail() {
    echo "test_slurm: FAIL: $*" >&2
    show_logs
    exit 1
}
skip() {
    echo "SKIPPED: $*"
    exit 0
}

# ---------------------------------------------------------------- install
need=()
for b in slurmctld slurmd sbatch scontrol scancel munged; do
    command -v "$b" >/dev/null 2>&1 || [[ -x /usr/sbin/$b ]] || need+=("$b")
done
if ((${#need[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        skip "Slurm is not installed (${need[*]} missing) and installing needs root"
    fi
    echo "test_slurm: installing slurm-wlm munge"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        -o DPkg::Lock::Timeout=120 slurm-wlm munge >/dev/null 2>&1; then
        (apt-get update >/dev/null 2>&1 &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
                -o DPkg::Lock::Timeout=120 slurm-wlm munge >/dev/null 2>&1) ||
            skip "slurm-wlm and munge could not be installed with apt-get"
    fi
fi
[[ $(id -u) -eq 0 ]] || skip "running slurmd needs root here"
export PATH=$PATH:/usr/sbin
"$py" -c 'import networkx, numpy' 2>/dev/null || fail "needs python3-networkx and python3-numpy"

# ---------------------------------------------------------------- configure
base=$(mktemp -d "${LOOM_TMP:-/tmp}/slurm.XXXXXX")
chmod 755 "$base"
mkdir -p "$base"/{state,spool,log,tmp,jobs,munge}
host=$(hostname -s)
# Private ports: another Slurm (a user's, or this test running twice) keeps its own.
port=$((20000 + (RANDOM % 2000) * 2))
nodeline=$(slurmd -C 2>/dev/null | head -1 | sed 's/RealMemory=[0-9]*/RealMemory=1000/')
[[ $nodeline == NodeName=* ]] || fail "slurmd -C printed no node line"
ncpu=$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$nodeline")

cat >"$base/slurm.conf" <<EOF
ClusterName=loomtest
SlurmctldHost=$host
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$base/munge/munge.socket,cred_expire=5
StateSaveLocation=$base/state
SlurmdSpoolDir=$base/spool
SlurmctldPidFile=$base/slurmctld.pid
SlurmdPidFile=$base/slurmd.pid
SlurmctldLogFile=$base/log/slurmctld.log
SlurmdLogFile=$base/log/slurmd.log
TmpFS=$base/tmp
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
JobAcctGatherType=jobacct_gather/none
MpiDefault=pmix
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SchedulerParameters=sched_interval=1
MinJobAge=600
$nodeline State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=30 State=UP
EOF
export SLURM_CONF=$base/slurm.conf

# ---------------------------------------------------------------- daemons
pids=()
stop_daemons() {
    local f pid
    for f in "$base/slurmd.pid" "$base/slurmctld.pid" "$base/munge/munged.pid"; do
        [[ -s $f ]] || continue
        pid=$(cat "$f")
        kill "$pid" 2>/dev/null
    done
    for f in "$base/slurmd.pid" "$base/slurmctld.pid" "$base/munge/munged.pid"; do
        [[ -s $f ]] || continue
        pid=$(cat "$f")
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null
    done
}
show_logs() {
    [[ -n ${base:-} && -d $base ]] || return
    for f in "$base"/log/*.log "$base"/jobs/*.out; do
        [[ -f $f ]] || continue
        echo "----- $f (last 25 lines)" >&2
        tail -n 25 "$f" >&2
    done
}
trap stop_daemons EXIT

# munged of our own: key, socket, pid and log in $base, run as the munge user.
dd if=/dev/urandom of="$base/munge/munge.key" bs=1024 count=1 status=none
chown -R munge:munge "$base/munge"
chmod 700 "$base/munge"
chmod 400 "$base/munge/munge.key"
runuser -u munge -- /usr/sbin/munged --key-file="$base/munge/munge.key" \
    --socket="$base/munge/munge.socket" --pid-file="$base/munge/munged.pid" \
    --log-file="$base/munge/munged.log" --seed-file="$base/munge/munged.seed" --force ||
    fail "munged did not start"
munge -S "$base/munge/munge.socket" -n | unmunge -S "$base/munge/munge.socket" >/dev/null ||
    fail "munge credential round trip failed"

slurmctld -f "$SLURM_CONF" || fail "slurmctld did not start"
slurmd -f "$SLURM_CONF" || fail "slurmd did not start"
for i in $(seq 100); do
    state=$(sinfo -h -n "$host" -o %T 2>/dev/null | head -1)
    [[ $state == idle* ]] && break
    sleep 0.2
done
[[ $state == idle* ]] || fail "node $host not idle after 20 s (state '$state')"
echo "test_slurm: Slurm up on $host ($ncpu CPUs, port $port) in $(($(date +%s) - t_start)) s"

# ---------------------------------------------------------------- jobs
# job_state ID -> state word; waits while PENDING/RUNNING/COMPLETING/REQUEUED.
job_field() { scontrol show job "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -1; }
wait_job() {
    local j=$1 limit=$2 st
    for ((i = 0; i < limit * 5; i++)); do
        st=$(job_field "$j" JobState)
        case $st in
        PENDING | RUNNING | COMPLETING | CONFIGURING | REQUEUED | REQUEUE_HOLD | REQUEUE_FED | SUSPENDED | "") sleep 0.2 ;;
        *) break ;;
        esac
    done
    echo "$st"
}

common_env="ALL,LOOM=$LOOM,OMPI_MCA_btl_vader_single_copy_mechanism=none"
graph=$base/jobs/kron10.el
"$LOOM" generate kron --scale 10 --out "$graph" --quiet || fail "loom generate"

# compare SCORES ITERS|converged: networkx's own definition (google_matrix,
# power iteration for a fixed count) or nx.pagerank run to convergence.
compare() {
    "$py" - "$graph" "$1" "$2" <<'EOF'
import sys
import warnings
warnings.simplefilter("ignore")
import networkx as nx
import numpy as np

graph, scores, iters = sys.argv[1], sys.argv[2], sys.argv[3]
arcs = [tuple(map(int, l.split()[:2])) for l in open(graph) if l.strip() and l[0] not in "#%"]
n = max(max(a) for a in arcs) + 1
g = nx.MultiDiGraph()
g.add_nodes_from(range(n))
g.add_edges_from(arcs)
if iters == "converged":
    pr = nx.pagerank(g, alpha=0.85, tol=1e-13, max_iter=10000)
    want = np.array([pr[v] for v in range(n)])
else:
    gm = np.asarray(nx.google_matrix(g, alpha=0.85, nodelist=range(n)))
    want = np.full(n, 1.0 / n)
    for _ in range(int(iters)):
        want = want @ gm
got = np.full(n, np.nan)
for l in open(scores):
    v, s = l.split()
    got[int(v)] = float(s)
err = np.max(np.abs(got - want))
print(f"max |loom - networkx| = {err:.3g} over {n} vertices")
sys.exit(0 if err <= 1e-6 else 1)
EOF
}

cd "$base/jobs" || fail "cd"

# 1. pagerank.sbatch as users submit it.
j1=$(sbatch --parsable --chdir="$base/jobs" --output="$base/jobs/pagerank-%j.out" \
    --export="$common_env,GRAPH=$graph,ITERS=30,OUT=$base/jobs/pr.txt" \
    "$src/scripts/slurm/pagerank.sbatch") || fail "sbatch pagerank.sbatch"
st=$(wait_job "$j1" 60)
[[ $st == COMPLETED ]] || fail "pagerank job $j1 ended $st (exit $(job_field "$j1" ExitCode))"
[[ -s $base/jobs/pr.txt ]] || fail "pagerank job wrote no scores"
grep -q '"status": *"ok"' "$base/jobs/loom-pagerank-$j1.json" ||
    fail "pagerank job's JSON summary lacks status ok"
compare "$base/jobs/pr.txt" 30 || fail "pagerank job's scores differ from networkx"
echo "test_slurm: pagerank.sbatch job $j1 COMPLETED, scores agree ($(($(date +%s) - t_start)) s)"

# 2. wordcount.sbatch on a small corpus, counts against collections.Counter.
mkdir -p "$base/jobs/corpus"
"$py" - "$base/jobs/corpus" <<'EOF'
import random, sys
rng = random.Random(5)
words = ["Loom", "loom", "MPI", "rank-0", "caf\u00e9", "x86_64", "the", "THE", "a1b2"]
for i in range(2):
    with open(f"{sys.argv[1]}/f{i}.txt", "w", encoding="utf-8") as f:
        for _ in range(3000):
            f.write(" ".join(rng.choice(words) for _ in range(rng.randrange(8))) + ".\n")
EOF
j0=$(sbatch --parsable --chdir="$base/jobs" --output="$base/jobs/wordcount-%j.out" \
    --export="$common_env,INPUT=$base/jobs/corpus,OUTDIR=$base/jobs/wc,EXTRA=--quiet" \
    "$src/scripts/slurm/wordcount.sbatch") || fail "sbatch wordcount.sbatch"
st=$(wait_job "$j0" 60)
[[ $st == COMPLETED ]] || fail "wordcount job $j0 ended $st (exit $(job_field "$j0" ExitCode))"
"$py" - "$base/jobs/corpus" "$base/jobs/wc" <<'EOF' || fail "wordcount job's counts differ from Counter"
import collections, glob, re, sys
want = collections.Counter()
for p in sorted(glob.glob(sys.argv[1] + "/*")):
    want.update(w.lower().decode() for w in re.findall(rb"[A-Za-z0-9]+", open(p, "rb").read()))
got = {}
for p in glob.glob(sys.argv[2] + "/part*"):
    for line in open(p):
        w, n = line.rstrip("\n").split("\t")
        got[w] = got.get(w, 0) + int(n)
print(f"{len(got)} words, {sum(got.values())} counted; Counter: {len(want)}, {sum(want.values())}")
sys.exit(0 if got == dict(want) else 1)
EOF
echo "test_slurm: wordcount.sbatch job $j0 COMPLETED, counts agree ($(($(date +%s) - t_start)) s)"

# 3. preempt_pagerank.sbatch (checkpoints only on the signal): signal it once
# its ranks are computing, expect a checkpoint at the superstep the signal
# reached them, a requeue, a restart from exactly that superstep and correct
# final scores.
ckpt=$base/jobs/ckpt
out2=
j2=$(sbatch --parsable --chdir="$base/jobs" --output="$base/jobs/preempt-%j.out" \
    --export="$common_env,GRAPH=$graph,ITERS=${LOOM_SLURM_ITERS:-8000},CKPT_DIR=$ckpt,OUT=$base/jobs/pr2.txt" \
    "$src/scripts/slurm/preempt_pagerank.sbatch") || fail "sbatch preempt_pagerank.sbatch"
out2=$base/jobs/preempt-$j2.out
# Progress lines go to the job's log: from superstep 3 on, every rank has its
# signal handlers in place.
for ((i = 0; i < 300; i++)); do
    grep -q '^superstep 3:' "$out2" 2>/dev/null && break
    [[ $(job_field "$j2" JobState) == @(PENDING|RUNNING|CONFIGURING) ]] ||
        fail "preempt job $j2 ended before computing"
    sleep 0.1
done
grep -q '^superstep 3:' "$out2" || fail "preempt job $j2 not computing after 30 s"
echo "test_slurm: preempt job $j2 is computing; sending USR1"
scancel --signal=USR1 --batch "$j2" || fail "scancel --signal=USR1 --batch $j2"
# A requeued job waits until the credentials of its first run expire (AuthInfo
# cred_expire, 120 s by default, 5 s here) before it may start again.
st=$(wait_job "$j2" 90)
restarts=$(job_field "$j2" Restarts)
[[ $st == COMPLETED ]] || fail "preempt job $j2 ended $st (restarts $restarts)"
((restarts >= 1)) || fail "preempt job $j2 completed without being requeued (Restarts=$restarts)"
grep -q 'got SIGUSR1' "$out2" || fail "preempt job did not see the signal"
at=$(sed -n 's/.*checkpointed at superstep \([0-9]*\) on signal SIGUSR1; resume with --restart.*/\1/p' "$out2" | head -1)
[[ -n $at ]] || fail "loom did not report a checkpoint on SIGUSR1"
grep -q "resuming from $ckpt/ckpt-$at\$" "$out2" || fail "requeued job did not resume from ckpt-$at"
grep -q "restarting from .*ckpt-$at (superstep $at)" "$out2" ||
    fail "loom did not restart from superstep $at"
compare "$base/jobs/pr2.txt" converged || fail "preempted job's scores differ from networkx"
echo "test_slurm: preempt_pagerank.sbatch job $j2 checkpointed at superstep $at on SIGUSR1," \
    "requeued $restarts time(s), resumed from it, scores agree"

echo "test_slurm: PASS in $(($(date +%s) - t_start)) s"
