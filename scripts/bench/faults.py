#!/usr/bin/env python3
"""What a real worker death costs, in the ULFM flavour (Open MPI 5, mpirun --with-ft ulfm).

    . build/venv-ulfm/bin/activate
    /usr/bin/python3 scripts/bench/faults.py [--loom build/ulfm/loom] [--reps 5] [--scale 20]

Three measurements, each alternating the fault-free and the faulty run in one session:

 1. detection and recovery: PageRank (kron:16, 4 ranks, checkpoint every 5) with worker 2
    killed at superstep 10, and word count (the small corpus below) with worker 2 killed in
    its 3rd map task. The dying rank prints the epoch time of its SIGKILL; the summary has
    the epoch time at which the survivors saw the failure (failure_detected_at) and the
    seconds from then until the engine ran again (recovery_s).
 2. word count over the benchmark corpus (scripts/bench/wordcount.sh builds it: the Linux
    source, ~1.1 GB) at 3 ranks, fault-free against worker 2 killed halfway through its map
    tasks; the outputs must be equal.
 3. PageRank on kron:SCALE at 3 ranks, 20 iterations, worker 2 killed at superstep 15,
    against the checkpoint interval (none: roll back to superstep 0; 10, 5, 2, 1), with the
    fault-free run at the same interval beside it; ranks must match within 1e-12.

Whole-command wall time (MPI start-up included) and the job's own time; median and min-max.
"""
import argparse, glob, json, os, re, shutil, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from one_node import one_node_env  # noqa: E402

ENV = one_node_env(OMPI_MCA_btl="self,sm", OMP_NUM_THREADS="1")
KILLED_AT = re.compile(r"kills itself in \S+ \d+ at ([0-9.]+)")


def stats(xs):
    return "%.3f (%.3f-%.3f)" % (statistics.median(xs), min(xs), max(xs))


def run(loom, np, args):
    """-> (wall seconds, summary dict, stderr); exits on failure"""
    cmd = ["mpirun", "--with-ft", "ulfm", "-np", str(np), "--oversubscribe", loom] + args + [
        "--json", "--quiet"]
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, env=ENV, timeout=900)
    wall = time.time() - t0
    err = p.stderr.replace(b"\0", b"").decode(errors="replace")
    lines = [l for l in p.stdout.decode(errors="replace").splitlines() if l.startswith("{")]
    if p.returncode != 0 or not lines:
        sys.exit("faults.py: %s failed (rc %d):\n%s" % (" ".join(cmd), p.returncode, err[-3000:]))
    return wall, json.loads(lines[-1]), err


def job_s(summary):
    return summary["phases"]["total"]["max_s"]


def detection(loom, reps, work):
    print("## 1. kill -> detection -> recovery (4 ranks)")
    small = os.path.join(work, "small")
    if not os.path.isdir(small):
        os.makedirs(small)
        docs = sorted(glob.glob("/usr/share/doc/*/copyright"))
        for i in range(8):
            with open(os.path.join(small, "part%d.txt" % i), "wb") as f:
                for d in docs[i::8]:
                    f.write(open(d, "rb").read())
    cases = [("pagerank kron:16, superstep 10",
              lambda d: ["pagerank", "kron:16", "--iters", "30", "--checkpoint-every", "5",
                         "--checkpoint-dir", d, "--out", os.path.join(d, "pr.txt"),
                         "--inject-fault", "kill:2@superstep:10"]),
              ("wordcount, map task 3",
               lambda d: ["wordcount", small, "--split-size", "64K", "--out",
                          os.path.join(d, "wc"), "--inject-fault", "kill:2@map:3"])]
    for name, args in cases:
        det, rec = [], []
        for _ in range(reps):
            d = tempfile.mkdtemp(dir=work)
            _, s, err = run(loom, 4, args(d))
            shutil.rmtree(d)
            m = KILLED_AT.search(err)
            if not m or "failure_detected_at" not in s:
                sys.exit("faults.py: %s: no kill time or no failure in the summary:\n%s" %
                         (name, err[-2000:]))
            det.append(s["failure_detected_at"] - float(m.group(1)))
            rec.append(s["recovery_s"])
        print("%-36s detection s %s   recovery s %s" % (name, stats(det), stats(rec)))


def read_counts(out):
    c = {}
    for p in glob.glob(os.path.join(out, "part-*")):
        for line in open(p, "rb"):
            w, n = line.rstrip(b"\n").rsplit(b"\t", 1)
            c[w] = int(n)
    return c


def wordcount(loom, reps, work, corpus):
    print("## 2. word count over %s (%d MB), 3 ranks, worker 2 killed halfway through its map"
          " tasks" % (corpus, sum(os.path.getsize(p) for p in glob.glob(corpus + "/*")) >> 20))
    walls = {"fault-free": [], "killed": []}
    jobs = {"fault-free": [], "killed": []}
    ref = None
    half = None
    for r in range(reps):
        for kind in ("fault-free", "killed"):
            out = os.path.join(work, "wc-" + kind)
            shutil.rmtree(out, ignore_errors=True)
            args = ["wordcount", corpus, "--out", out]
            if kind == "killed":
                args += ["--inject-fault", "kill:2@map:%d" % half]
            wall, s, _ = run(loom, 3, args)
            walls[kind].append(wall)
            jobs[kind].append(job_s(s))
            if kind == "fault-free" and half is None:
                half = max(1, s["map_tasks"] // 4)  # each of 2 workers maps ~half the tasks
                ref = read_counts(out)
            if kind == "killed":
                if s.get("lost_workers") != 1:
                    sys.exit("faults.py: wordcount: no worker lost: %s" % s)
                if r == 0 and read_counts(out) != ref:
                    sys.exit("faults.py: wordcount with a kill differs from the fault-free run")
                reexec = s["reexecuted_tasks"]
            shutil.rmtree(out)
    for kind in walls:
        print("%-12s whole command s %s   job s %s" % (kind, stats(walls[kind]), stats(jobs[kind])))
    print("killed in map task %d of its share; %d task(s) re-executed" % (half, reexec))


def read_ranks(path):
    v = {}
    for line in open(path):
        a, b = line.split()
        v[int(a)] = float(b)
    return v


def pagerank(loom, reps, work, scale):
    print("## 3. pagerank kron:%d, 3 ranks, 20 iterations, worker 2 killed at superstep 15"
          % scale)
    print("%-10s %-30s %-30s %-24s" % ("interval", "fault-free whole s", "killed whole s",
                                       "recovery s"))
    ref = None
    for every in (0, 10, 5, 2, 1):
        walls = {"fault-free": [], "killed": []}
        rec = []
        for r in range(reps):
            for kind in ("fault-free", "killed"):
                d = tempfile.mkdtemp(dir=work)
                out = os.path.join(d, "pr.txt")
                args = ["pagerank", "kron:%d" % scale, "--iters", "20", "--out", out]
                if every:
                    args += ["--checkpoint-every", str(every), "--checkpoint-dir", d]
                if kind == "killed":
                    args += ["--inject-fault", "kill:2@superstep:15"]
                wall, s, _ = run(loom, 3, args)
                walls[kind].append(wall)
                if kind == "killed":
                    rec.append(s["recovery_s"])
                if r == 0:
                    v = read_ranks(out)
                    if ref is None:
                        ref = v
                    elif len(v) != len(ref) or max(abs(v[k] - ref[k]) for k in ref) > 1e-12:
                        sys.exit("faults.py: pagerank (%s, every %d) differs from the first run"
                                 % (kind, every))
                shutil.rmtree(d)
        print("%-10s %-30s %-30s %-24s" % (every or "none", stats(walls["fault-free"]),
                                           stats(walls["killed"]), stats(rec)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loom", default=os.path.join(ROOT, "build/ulfm/loom"))
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--scale", type=int, default=20)
    ap.add_argument("--corpus", default="/tmp/loom-bench-wc/corpus")
    ap.add_argument("--work", default="/tmp/loom-bench-faults")
    ap.add_argument("--only", choices=["detection", "wordcount", "pagerank"])
    a = ap.parse_args()
    if not shutil.which("mpirun") or b"ULFM: yes" not in subprocess.run(
            [a.loom, "--version"], capture_output=True).stdout:
        sys.exit("faults.py: needs the ULFM build (%s) and its mpirun on PATH "
                 "(. build/venv-ulfm/bin/activate)" % a.loom)
    os.makedirs(a.work, exist_ok=True)
    print("# faults.py, %s, %s, %d cores, load %s" % (
        time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()), os.uname().nodename, os.cpu_count(),
        open("/proc/loadavg").read().split()[0]))
    print("# %s" % subprocess.run([a.loom, "--version"], capture_output=True,
                                  text=True).stdout.strip().replace("\n", "; "))
    if a.only in (None, "detection"):
        detection(a.loom, a.reps, a.work)
    if a.only in (None, "wordcount"):
        if not os.path.isfile(os.path.join(a.corpus, ".done")):
            sys.exit("faults.py: no corpus at %s (scripts/bench/wordcount.sh builds it)" %
                     a.corpus)
        wordcount(a.loom, a.reps, a.work, a.corpus)
    if a.only in (None, "pagerank"):
        pagerank(a.loom, a.reps, a.work, a.scale)


if __name__ == "__main__":
    main()
