#!/usr/bin/env python3
"""loom pagerank-mr (one MapReduce job per iteration) against a plain power iteration
(networkx's definition: dangling mass spread uniformly) and
against `loom pagerank`, on a directed graph with dangling vertices and on a
generated one, at LOOM_NP ranks; also with a lost worker in every iteration."""
import os, random, shlex, subprocess, sys

LOOM = os.environ.get("LOOM", "loom")
LAUNCH = shlex.split(os.environ.get("LOOM_MPIEXEC", ""))
NP = int(os.environ.get("LOOM_NP", "1"))
TMP = os.environ.get("LOOM_TMP", "/tmp")


def run(args):
    p = subprocess.run(LAUNCH + [LOOM] + args + ["--quiet"], capture_output=True, timeout=300)
    if p.returncode != 0:
        sys.exit("FAIL: %s\n%s" % (" ".join(args), p.stderr.decode(errors="replace")))
    return p.stdout.decode()


def scores(path):
    return {int(v): float(s) for v, s in (l.split() for l in open(path))}


def close(name, a, b, tol):
    assert a.keys() == b.keys(), name
    worst = max(abs(a[k] - b[k]) for k in a)
    if worst > tol:
        sys.exit("FAIL %s: max difference %g" % (name, worst))
    print("ok", name, "max difference %.3g" % worst)


def power_iteration(n, arcs, d, iters=300):
    out = [[] for _ in range(n)]
    for u, v in arcs:
        out[u].append(v)
    x = [1.0 / n] * n
    for _ in range(iters):
        dang = sum(x[u] for u in range(n) if not out[u])
        nx_ = [(1 - d) / n + d * dang / n] * n
        for u in range(n):
            for v in out[u]:
                nx_[v] += d * x[u] / len(out[u])
        x = nx_
    return dict(enumerate(x))


def main():
    rnd = random.Random(7)
    n = 300
    edges = set()
    for _ in range(1500):
        u, v = rnd.randrange(n), rnd.randrange(n - 40)  # the last 40 get no in-arcs
        if u < n - 30:  # the last 30 have no out-arcs: dangling
            edges.add((u, v))
    el = os.path.join(TMP, "mr_pr.el")
    with open(el, "w") as f:
        f.write("# directed test graph\n")
        for u, v in sorted(edges):
            f.write("%d %d\n" % (u, v))
        f.write("%d %d\n" % (n - 1, n - 1))  # keeps vertex n-1 (a self-loop)
    ref = power_iteration(n, sorted(edges | {(n - 1, n - 1)}), 0.85)

    out = os.path.join(TMP, "mr_pr.txt")
    run(["pagerank-mr", el, "--tol", "1e-12", "--max-iters", "200", "--out", out, "--reducers", "3",
         "--split-size", "2K"])
    close("pagerank-mr vs power iteration", scores(out), ref, 1e-9)

    out2 = os.path.join(TMP, "mr_pr_pregel.txt")
    for extra in (["--iters", "5"], ["--dangling", "ignore", "--iters", "4"]):
        run(["pagerank-mr", el, "--out", out] + extra)
        run(["pagerank", el, "--out", out2] + extra)
        close("pagerank-mr vs pagerank " + " ".join(extra), scores(out), scores(out2), 1e-13)

    run(["pagerank-mr", "kron:9", "--out", out, "--top", "5"])
    run(["pagerank", "kron:9", "--out", out2])
    close("kron:9 to --tol", scores(out), scores(out2), 1e-13)

    spill = os.path.join(TMP, "prmr-spill")
    os.makedirs(spill, exist_ok=True)
    if NP >= 3 and os.environ.get("LOOM_FT") == "1":
        # a worker really dies in the first iteration's map phase (ULFM: the job goes on)
        run(["pagerank-mr", el, "--iters", "3", "--out", out, "--split-size", "1K",
             "--spill-dir", spill, "--inject-fault", "lose-worker:1@map:1"])
        run(["pagerank", el, "--iters", "3", "--out", out2])
        close("pagerank-mr with a lost worker", scores(out), scores(out2), 1e-13)
    else:
        run(["pagerank-mr", el, "--iters", "3", "--out", out, "--spill-dir", spill])
    left = os.listdir(spill)
    assert not left, "state or spill directories left behind: %r" % left


if __name__ == "__main__":
    main()
