#!/usr/bin/env python3
"""Real deaths at LOOM_NP ranks. A worker killed with SIGKILL (by --inject-fault, which makes
the rank kill itself, and by `kill -9` from outside at a random moment):

 - with ULFM (LOOM_FT=1: Open MPI 5, mpirun --with-ft ulfm) MapReduce and Pregel jobs go on
   without it and their output is the fault-free run's (MapReduce byte for byte and checked
   against collections.Counter; CC and SSSP exactly, PageRank within 1e-12 per vertex);
 - without ULFM the job ends promptly (seconds) with one message naming the dead rank and
   host, a non-zero exit, no output and no temporaries, and says what can be resumed.
A dead master ends the job promptly in both, and so does a worker killed while a collective
HDF5 file is written (no partial output in any case). Compared with references no Loom code
wrote."""
import collections, glob, json, os, random, re, shlex, shutil, signal, socket, subprocess, sys
import time

from loomprocs import loom_ranks

LOOM = os.environ.get("LOOM", "loom")
LAUNCH = shlex.split(os.environ.get("LOOM_MPIEXEC", ""))
NP = int(os.environ.get("LOOM_NP", "1"))
TMP = os.environ.get("LOOM_TMP", "/tmp")
FT = os.environ.get("LOOM_FT") == "1"
HOST = socket.gethostname()
# Prompt means seconds: the launcher, not Loom, may take a moment to notice.
PROMPT_S = 20
# mpirun's grace between SIGTERM and SIGKILL: the survivors' handlers need it to clean up.
ENV = dict(os.environ, OMPI_MCA_odls_base_sigkill_timeout="2")
failures = []


def fail(msg):
    print("FAIL", msg)
    failures.append(msg)


def launch(args, **kw):
    return subprocess.Popen(LAUNCH + [LOOM] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=ENV, **kw)


def run(args, timeout=240):
    t0 = time.time()
    p = launch(args)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        fail("%s: hung (killed after %d s)" % (" ".join(args), timeout))
    return p.returncode, out.decode(errors="replace"), err.decode(errors="replace"), time.time() - t0


# ------------------------------------------------------------------ inputs and references

def corpus(d):
    """Three files of words drawn from a 40,000-word vocabulary (Zipf-like), with case and
    punctuation, so that tokenising matters."""
    rnd = random.Random(7)
    vocab = ["w%x%s" % (i, "xyz"[i % 3] * (i % 4)) for i in range(40000)]
    os.makedirs(d, exist_ok=True)
    for f in range(3):
        lines = []
        for _ in range(6000):
            words = [vocab[rnd.randrange(40000) if rnd.random() < 0.5 else
                           min(int(rnd.paretovariate(0.7)) - 1, 39999)]
                     for _ in range(rnd.randint(3, 14))]
            words = [w.upper() if rnd.random() < 0.1 else w for w in words]
            lines.append(" ".join(words) + rnd.choice([".", ",", "", "!"]))
        with open(os.path.join(d, "part%d.txt" % f), "w") as fh:
            fh.write("\n".join(lines) + "\n")
    return d


def counter_of(d):
    c = collections.Counter()
    for f in sorted(glob.glob(os.path.join(d, "*.txt"))):
        c.update(w.lower() for w in re.findall(rb"[A-Za-z0-9]+", open(f, "rb").read()))
    return c


def parts_of(out):
    return {os.path.basename(p): open(p, "rb").read() for p in glob.glob(os.path.join(out, "part-*"))}


def counts_of(out):
    c = collections.Counter()
    for data in parts_of(out).values():
        for line in data.splitlines():
            k, v = line.split(b"\t")
            c[k] = int(v)
    return c


def scores(path):
    return {int(v): float(s) for v, s in (l.split() for l in open(path))}


def worker_pids(pid):
    """Start rank -> pid of the ranks launched by `pid` (from their environment)."""
    return {r: q for q, r in loom_ranks(pid, LOOM).items() if r is not None}


def leftovers(d):
    return [f for f in os.listdir(d) if ".loom-tmp." in f or ".loom-old." in f]


# ------------------------------------------------------------------ MapReduce

MR = ["--split-size", "24K", "--memory", "512K", "--reducers", str(2 * max(NP - 1, 1)), "--json",
      "--quiet"]


def mr_ft(w, ref, reference_parts):
    spill = os.path.join(w, "spill")
    os.makedirs(spill, exist_ok=True)
    cases = [("map", 1, 3), ("map", NP - 1, 0), ("shuffle", NP - 1, 1), ("shuffle", 1, 0), ("reduce", 1, 1),
             ("reduce", NP - 1, 0)]
    for phase, r, n in cases:
        out = os.path.join(w, "wc-%s-%d-%d" % (phase, r, n))
        rc, so, se, el = run(["wordcount", os.path.join(w, "corpus"), "--out", out, "--spill-dir", spill,
                              "--inject-fault", "kill:%d@%s:%d" % (r, phase, n)] + MR)
        name = "wordcount, rank %d killed in %s %d" % (r, phase, n)
        if rc != 0:
            fail("%s: exit %d\n%s" % (name, rc, se[-2000:]))
            continue
        s = json.loads(so)
        if s.get("lost_ranks") != 1:
            fail("%s: summary says lost_ranks=%s" % (name, s.get("lost_ranks")))
        if parts_of(out) != reference_parts:
            fail("%s: output differs from the fault-free run" % name)
        elif counts_of(out) != ref:
            fail("%s: counts differ from collections.Counter" % name)
        elif os.listdir(spill):
            fail("%s: spill files left: %s" % (name, os.listdir(spill)))
        else:
            print("ok %s: identical output, %d task(s) re-executed, recovery %.2f s, %.1f s in all"
                  % (name, s.get("reexecuted_tasks", -1), s.get("recovery_s", -1), el))


def mr_outside_kill(w, reference_parts):
    """kill -9 a worker from outside at a random moment of a longer job."""
    big = os.path.join(w, "bigcorpus")
    if not os.path.exists(big):
        os.makedirs(big)
        for f in glob.glob(os.path.join(w, "corpus", "*.txt")):
            data = open(f).read()
            open(os.path.join(big, os.path.basename(f)), "w").write(data * 6)
    ref_out = os.path.join(w, "wc-big-ref")
    args = ["wordcount", big, "--split-size", "16K", "--memory", "256K", "--reducers", "4", "--quiet"]
    rc, _, se, el = run(args + ["--out", ref_out])
    if rc != 0:
        fail("wordcount big reference: %s" % se[-1000:])
        return
    want = parts_of(ref_out)
    rnd = random.Random(NP)
    for attempt in range(2):
        out = os.path.join(w, "wc-big-%d" % attempt)
        victim = rnd.randint(1, NP - 1)
        delay = rnd.uniform(0.3, max(0.4, 0.8 * el))
        p = launch(args + ["--out", out, "--json"])
        time.sleep(delay)
        pids = worker_pids(p.pid)
        killed = victim in pids
        if killed:
            os.kill(pids[victim], signal.SIGKILL)
        so, se = p.communicate(timeout=240)
        name = "wordcount, worker %d killed from outside after %.2f s" % (victim, delay)
        if p.returncode != 0:
            fail("%s: exit %d\n%s" % (name, p.returncode, se.decode(errors="replace")[-2000:]))
        elif parts_of(out) != want:
            fail("%s: output differs from the fault-free run" % name)
        else:
            s = json.loads(so)
            print("ok %s: identical output (lost_ranks %s)%s" % (name, s.get("lost_ranks", 0),
                                                              "" if killed else " [ended before the kill]"))


def mr_no_ft(w):
    out = os.path.join(w, "wc-dead")
    rc, so, se, el = run(["wordcount", os.path.join(w, "corpus"), "--out", out, "--inject-fault",
                          "kill:1@map:2", "--split-size", "24K", "--quiet"])
    name = "wordcount without ULFM, worker 1 killed"
    if rc == 0:
        fail("%s: exit 0" % name)
    elif el > PROMPT_S:
        fail("%s: took %.1f s to end" % (name, el))
    elif os.path.exists(out):
        fail("%s: output left behind" % name)
    elif leftovers(w):
        fail("%s: temporaries left: %s" % (name, leftovers(w)))
    elif not re.search(r"worker rank 1 \(pid \d+ on %s\) died" % re.escape(HOST), se):
        fail("%s: no message naming the rank and host:\n%s" % (name, se[-1500:]))
    else:
        print("ok %s: exit %d after %.1f s, no output, one message" % (name, rc, el))


# ------------------------------------------------------------------ Pregel

def pregel_ft(w):
    # pagerank on the blocked kernel (bins shared in memory by the workers at 3-4 ranks; small
    # graphs pick the gather kernel by default, which the outside kill below runs); cc over
    # pretend nodes of 2 ranks, its messages in the two-level exchange before and after the
    # survivors regroup
    jobs = [("pagerank", ["kron:10", "--iters", "20", "--pull", "blocked"], 1e-12),
            ("cc", ["kron:10", "--node-ranks", "2", "--two-level", "on"], 0.0),
            ("sssp", ["urand:10", "--source", "3", "--undirected"], 0.0)]
    for job, args, tol in jobs:
        ref = os.path.join(w, "%s-ref.txt" % job)
        rc, _, se, _ = run([job] + args + ["--quiet", "--out", ref])
        if rc != 0:
            fail("%s reference: %s" % (job, se[-1000:]))
            continue
        want = scores(ref)
        steps = [1, 8, 19] if job == "pagerank" else [1, 3]
        for n in steps:
            for r in sorted({1, NP - 1}):
                for ck in (True, False):
                    if not ck and (job != "pagerank" or n != 8):
                        continue
                    d = os.path.join(w, "ck-%s-%d-%d" % (job, n, r))
                    shutil.rmtree(d, ignore_errors=True)
                    out = os.path.join(w, "%s-%d-%d-%d.txt" % (job, n, r, ck))
                    extra = ["--checkpoint-every", "3", "--checkpoint-dir", d] if ck else []
                    rc, so, se, el = run([job] + args + extra + [
                        "--out", out, "--json", "--quiet", "--inject-fault",
                        "kill:%d@superstep:%d" % (r, n)])
                    name = "%s, rank %d killed at superstep %d (%s)" % (
                        job, r, n, "checkpoints every 3" if ck else "no checkpoint")
                    if rc != 0:
                        fail("%s: exit %d\n%s" % (name, rc, se[-2000:]))
                        continue
                    got = scores(out)
                    worst = max(abs(got[v] - want[v]) if got[v] != want[v] else 0.0 for v in want)
                    if got.keys() != want.keys() or worst > tol:
                        fail("%s: differs from the fault-free run by %g" % (name, worst))
                        continue
                    s = json.loads(so)
                    if s.get("lost_ranks") != 1:
                        fail("%s: summary lost_ranks=%s" % (name, s.get("lost_ranks")))
                        continue
                    print("ok %s: max difference %.3g, recovery %.2f s, %.1f s in all"
                          % (name, worst, s.get("recovery_s", -1), el))


def pregel_outside_kill(w):
    args = ["pagerank", "kron:13", "--iters", "400"]
    ref = os.path.join(w, "pr13-ref.txt")
    rc, _, se, _ = run(args + ["--quiet", "--out", ref])
    if rc != 0:
        fail("pagerank kron:13 reference: %s" % se[-1000:])
        return
    want = scores(ref)
    d = os.path.join(w, "ck-outside")
    shutil.rmtree(d, ignore_errors=True)
    out = os.path.join(w, "pr13-killed.txt")
    p = launch(args + ["--out", out, "--checkpoint-every", "50", "--checkpoint-dir", d])
    # kill once the run is well under way
    t0, killed = time.time(), False
    while time.time() - t0 < 60 and p.poll() is None and not killed:
        if os.path.isdir(d) and any(n.startswith("ckpt-") for n in os.listdir(d)):
            pids = worker_pids(p.pid)
            if NP - 1 in pids:
                os.kill(pids[NP - 1], signal.SIGKILL)
                killed = True
        time.sleep(0.02)
    so, se = p.communicate(timeout=240)
    name = "pagerank kron:13, worker %d killed from outside after a checkpoint" % (NP - 1)
    if p.returncode != 0:
        fail("%s: exit %d\n%s" % (name, p.returncode, se.decode(errors="replace")[-2000:]))
        return
    got = scores(out)
    worst = max(abs(got[v] - want[v]) for v in want)
    if worst > 1e-12:
        fail("%s: differs by %g" % (name, worst))
    else:
        print("ok %s: max difference %.3g%s" % (name, worst, "" if killed else " [ended before the kill]"))


def pregel_no_ft(w):
    d = os.path.join(w, "ck-noft")
    shutil.rmtree(d, ignore_errors=True)
    out = os.path.join(w, "pr-noft.txt")
    rc, so, se, el = run(["pagerank", "kron:10", "--iters", "30", "--checkpoint-every", "2",
                          "--checkpoint-dir", d, "--out", out, "--quiet", "--inject-fault",
                          "kill:%d@superstep:5" % (NP - 1)])
    name = "pagerank without ULFM, worker %d killed at superstep 5" % (NP - 1)
    if rc == 0:
        fail("%s: exit 0" % name)
    elif el > PROMPT_S:
        fail("%s: took %.1f s" % (name, el))
    elif os.path.exists(out) or leftovers(w):
        fail("%s: output or temporaries left" % name)
    elif not re.search(r"worker rank %d \(pid \d+ on %s\) died" % (NP - 1, re.escape(HOST)), se):
        fail("%s: no message naming the rank and host:\n%s" % (name, se[-1500:]))
    elif "resume with --restart %s (checkpoint of superstep 4)" % d not in se:
        fail("%s: the message does not say what can be resumed:\n%s" % (name, se[-1500:]))
    else:
        print("ok %s: exit %d after %.1f s, resumable from superstep 4" % (name, rc, el))


# ------------------------------------------------------------------ collective HDF5 output

def h5_complete(path, n):
    """Is `path` a whole CSR graph file of n vertices (read with h5py, not Loom)?"""
    import h5py
    with h5py.File(path, "r") as f:
        g = f["graph"]
        off = g["offsets"][:]
        return (int(g.attrs["num_vertices"]) == n and len(off) == n + 1 and int(off[0]) == 0
                and int(off[-1]) == int(g.attrs["num_edges"]) == len(g["targets"]))


def output_kill(w):
    """kill -9 a worker while a collective HDF5 file is being written. Neither MPI flavour
    survives this (Open MPI's collective MPI-IO is not fault tolerant): the job must end
    promptly, not 0, with a message, and leave either no output and no temporary, or, when
    the kill came after the commit, the whole file."""
    rnd = random.Random(100 + NP)
    w = os.path.join(w, "output-kill")
    os.makedirs(w, exist_ok=True)
    for attempt in range(3):
        out = os.path.join(w, "gen-%d.h5" % attempt)
        victim = NP - 1
        p = launch(["generate", "kron", "--scale", "17", "--out", out, "--quiet"])
        t0 = time.time()
        while time.time() - t0 < 60 and p.poll() is None and not leftovers(w):
            time.sleep(0.005)
        time.sleep(rnd.uniform(0, 0.05))
        pids = worker_pids(p.pid)
        if victim in pids:
            os.kill(pids[victim], signal.SIGKILL)
        t1 = time.time()
        try:
            _, se = p.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            p.kill()
            _, se = p.communicate()
            fail("generate, worker %d killed while writing: hung" % victim)
            continue
        se = se.decode(errors="replace")
        el = time.time() - t1
        name = "generate, worker %d killed while writing (%.2f s after launch)" % (victim, t1 - t0)
        if el > PROMPT_S:
            fail("%s: took %.1f s to end" % (name, el))
        elif os.path.exists(out):
            if not h5_complete(out, 1 << 17):
                fail("%s: a partial output (exit %d)" % (name, p.returncode))
            else:
                print("ok %s: ended after the commit, the file is whole (exit %d)"
                      % (name, p.returncode))
        elif p.returncode == 0:
            fail("%s: exit 0 without output\n%s" % (name, se[-1500:]))
        elif "loom: error:" not in se:
            fail("%s: exit %d and no message:\n%s" % (name, p.returncode, se[-1500:]))
        elif leftovers(w):
            fail("%s: temporaries left: %s" % (name, leftovers(w)))
        else:
            print("ok %s: exit %d after %.1f s, no output, no temporary" % (name, p.returncode, el))
        for f in leftovers(w):
            os.remove(os.path.join(w, f))  # what a SIGKILL left: the next job would sweep it


def master_dies(w):
    for job, args, fault in (("pagerank", ["kron:10", "--iters", "30"], "kill:0@superstep:4"),
                             ("wordcount", [os.path.join(w, "corpus"), "--split-size", "24K"],
                              "kill:0@map:0")):
        out = os.path.join(w, "master-%s" % job)
        rc, so, se, el = run([job] + args + ["--out", out, "--quiet", "--inject-fault", fault])
        name = "%s, the master killed (%s)" % (job, fault)
        if rc == 0:
            fail("%s: exit 0" % name)
        elif el > PROMPT_S:
            fail("%s: took %.1f s" % (name, el))
        elif os.path.exists(out):
            fail("%s: output left" % name)
        elif "the master, rank 0" not in se:
            fail("%s: no message naming the master:\n%s" % (name, se[-1500:]))
        else:
            print("ok %s: exit %d after %.1f s" % (name, rc, el))


def main():
    w = os.path.join(TMP, "faults")
    shutil.rmtree(w, ignore_errors=True)
    os.makedirs(w)
    if NP < 2:
        print("ok nothing to kill at one rank (the master is the only worker)")
        return
    c = corpus(os.path.join(w, "corpus"))
    ref = counter_of(c)
    if FT and NP >= 3:
        out = os.path.join(w, "wc-ref")
        rc, so, se, _ = run(["wordcount", c, "--out", out] + MR)
        if rc != 0 or counts_of(out) != ref:
            sys.exit("FAIL fault-free wordcount: %s" % se[-2000:])
        reference_parts = parts_of(out)
        mr_ft(w, ref, reference_parts)
        mr_outside_kill(w, reference_parts)
        pregel_ft(w)
        pregel_outside_kill(w)
    elif not FT:
        mr_no_ft(w)
        pregel_no_ft(w)
    master_dies(w)
    output_kill(w)
    if failures:
        sys.exit("%d failure(s)" % len(failures))


if __name__ == "__main__":
    main()
