#!/usr/bin/env python3
"""The dataset commands against references no one here wrote, at LOOM_NP ranks:
ds-wordcount against collections.Counter; ds-logreg and ds-kmeans against numpy
(the same start, the same iterations, within 1e-9); ds-pagerank against Spark's own example
program (examples/src/main/python/pagerank.py, transcribed step by step onto Python
dicts: distinct links grouped by source, links.join(ranks), contributions,
reduceByKey(add), mapValues(rank * 0.85 + 0.15)) and against networkx's Google
matrix (x <- x G, the same number of iterations); a partition dropped by fault
injection and recomputed from lineage; --explain and --dot; bad input."""
import collections, glob, json, os, re, shlex, shutil, subprocess, sys

LOOM = os.environ.get("LOOM", "loom")
LAUNCH = shlex.split(os.environ.get("LOOM_MPIEXEC", ""))
NP = int(os.environ.get("LOOM_NP", "1"))
FT = os.environ.get("LOOM_FT") == "1"  # ULFM: a dead worker is survived
TMP = os.environ.get("LOOM_TMP", "/tmp")
WORD = re.compile(rb"[A-Za-z0-9]+")


def run(args, expect_ok=True):
    p = subprocess.run(LAUNCH + [LOOM] + args, capture_output=True, timeout=300)
    if expect_ok and p.returncode != 0:
        sys.exit("FAIL: %s\n%s" % (" ".join(args), p.stderr.decode(errors="replace")))
    return p


def summary(p):
    return json.loads(p.stdout.decode().strip().splitlines()[-1])


def read_kv(out, conv):
    assert os.path.exists(os.path.join(out, "_SUCCESS")), out + ": no _SUCCESS"
    got = {}
    for part in sorted(glob.glob(os.path.join(out, "part-*"))):
        for line in open(part, "rb"):
            k, v = line.rstrip(b"\n").split(b"\t")
            assert k not in got, "key %r in two part files" % k
            got[k] = conv(v)
    return got


def wordcount(work):
    files = sorted(glob.glob("/usr/share/common-licenses/*"))[:12]
    files = [f for f in files if os.path.isfile(f)]
    ref = collections.Counter()
    for f in files:
        ref.update(w.lower() for w in WORD.findall(open(f, "rb").read()))
    for extra in ([], ["--split-size", "4K", "--partitions", "5"]):
        out = os.path.join(work, "wc%d" % len(extra))
        run(["ds-wordcount"] + files + ["--out", out] + extra)
        got = read_kv(out, int)
        if got != dict(ref):
            diff = [k for k in set(got) | set(ref) if got.get(k) != ref.get(k)][:5]
            sys.exit("FAIL ds-wordcount %r: %d words vs %d; differences %r" % (extra, len(got), len(ref), diff))
        print("ok ds-wordcount", extra, len(got), "words")
    # a 64 KiB budget: the shuffle routes in rounds and spills what workers receive
    out = os.path.join(work, "wc-small")
    p = run(["ds-wordcount"] + files + ["--out", out, "--memory", "64K", "--split-size", "4K", "--json",
                                    "--quiet"])
    s = summary(p)
    if read_kv(out, int) != dict(ref):
        sys.exit("FAIL ds-wordcount --memory 64K: the counts differ from collections.Counter")
    if s["ds_shuffle_rounds"] <= s["ds_stages"] or s.get("ds_shuffle_spilled_bytes", 0) <= 0:
        sys.exit("FAIL ds-wordcount --memory 64K: %d rounds for %d stages, %d bytes spilled" % (
            s["ds_shuffle_rounds"], s["ds_stages"], s.get("ds_shuffle_spilled_bytes", 0)))
    print("ok ds-wordcount --memory 64K: %d shuffle rounds, %d bytes spilled, counts unchanged"
          % (s["ds_shuffle_rounds"], s["ds_shuffle_spilled_bytes"]))
    # one HDF5 file: /keys and /values as h5py reads them
    import h5py
    out = os.path.join(work, "wc.h5")
    run(["ds-wordcount"] + files + ["--out", out])
    with h5py.File(out, "r") as h:
        got = {k: int(v) for k, v in zip(h["keys"][:], h["values"][:])}
    if got != dict(ref) or len(h5py.File(out, "r")["keys"]) != len(ref):
        sys.exit("FAIL ds-wordcount --out wc.h5: %d words vs %d" % (len(got), len(ref)))
    print("ok ds-wordcount --out wc.h5", len(got), "words")


def edges_of(path):
    out = []
    for line in open(path):
        if line.startswith("#") or not line.strip():
            continue
        u, v = line.split()[:2]
        out.append((int(u), int(v)))
    return out


def spark_example(edges, iters):
    """Spark's pagerank.py, step by step, with dicts standing in for RDDs."""
    links = collections.defaultdict(list)                # .distinct().groupByKey()
    for u, v in sorted(set(edges)):
        links[u].append(v)
    ranks = {u: 1.0 for u in links}                       # links.map(lambda: (url, 1.0))
    for _ in range(iters):
        contribs = collections.defaultdict(float)         # links.join(ranks).flatMap(...)
        for u, urls in links.items():                     # .reduceByKey(add)
            if u in ranks:
                for v in urls:
                    contribs[v] += ranks[u] / len(urls)
        ranks = {v: s * 0.85 + 0.15 for v, s in contribs.items()}  # .mapValues(...)
    return ranks


def networkx_iterations(edges, iters, undirected=False):
    import networkx as nx
    import numpy as np
    g = nx.Graph() if undirected else nx.DiGraph()
    g.add_edges_from(edges)
    if undirected:
        g = g.to_directed()
    nodes = list(g)
    m = np.asarray(nx.google_matrix(g, alpha=0.85, nodelist=nodes))
    x = np.full(len(nodes), 1.0 / len(nodes))
    for _ in range(iters):
        x = x @ m
    return dict(zip(nodes, x))


def compare(name, got, ref):
    got = {int(k): v for k, v in got.items()}
    if set(got) != set(ref):
        sys.exit("FAIL %s: vertices differ (%d vs %d), e.g. %r" % (name, len(got), len(ref),
                 sorted(set(got) ^ set(ref))[:5]))
    worst = max(abs(got[k] - ref[k]) / max(abs(ref[k]), 1e-300) for k in ref)
    if worst > 1e-9:
        sys.exit("FAIL %s: worst relative difference %.3g" % (name, worst))
    print("ok", name, len(got), "vertices, worst relative difference %.2g" % worst)


def pagerank(work):
    g = os.path.join(work, "g.el")
    run(["generate", "kron", "--scale", "8", "--edge-factor", "8", "--seed", "3", "--out", g])
    edges = edges_of(g)
    out = os.path.join(work, "pr")
    run(["ds-pagerank", g, "--iters", "12", "--out", out])
    compare("ds-pagerank spark", read_kv(out, float), spark_example(edges, 12))
    run(["ds-pagerank", g, "--iters", "12", "--convention", "networkx", "--out", out, "--overwrite",
         "--partitions", "3"])
    compare("ds-pagerank networkx", read_kv(out, float), networkx_iterations(edges, 12))
    if NP in (1, 3):
        run(["ds-pagerank", g, "--iters", "5", "--convention", "networkx", "--undirected", "--out",
             out, "--overwrite"])
        compare("ds-pagerank networkx undirected", read_kv(out, float),
                networkx_iterations(edges, 5, undirected=True))

    # the links kept on disk, and in memory past a 64 KiB budget: the same ranks
    for where in ("disk", "memory-and-disk"):
        p = run(["ds-pagerank", g, "--iters", "12", "--out", out, "--overwrite", "--json",
                 "--persist", where, "--memory", "64K", "--spill-dir", work])
        compare("ds-pagerank, links kept in %s" % where, read_kv(out, float), spark_example(edges, 12))
        if where == "disk":  # (past the budget: this graph may fit it at many ranks)
            assert summary(p).get("ds_partitions_on_disk", 0) > 0, summary(p)
        assert not [f for f in os.listdir(work) if f.startswith("loom-")], os.listdir(work)

    # a kept partition of the persisted links (dataset #2) lost in the middle of the
    # iterations: recomputed from lineage, only it, and the result is unchanged
    p = run(["ds-pagerank", g, "--iters", "12", "--out", out, "--overwrite", "--json",
             "--inject-fault", "drop:2@1"])
    s = summary(p)
    assert s["ds_partitions_dropped"] == 1 and s["ds_partitions_recomputed"] == 1, s
    compare("ds-pagerank after a lost partition", read_kv(out, float), spark_example(edges, 12))

    # the plan, printed and as Graphviz
    dot = os.path.join(work, "plan.dot")
    p = run(["ds-pagerank", g, "--iters", "2", "--out", out, "--overwrite", "--explain", "--dot", dot])
    err = p.stderr.decode()
    assert "join (co-partitioned)" in err and "stage boundary: shuffle" in err, err
    assert "#2 links (shown above)" in err, err
    text = open(dot).read()
    assert text.startswith("digraph") and "shuffle" in text, text[:200]
    print("ok --explain, --dot")


def checkpoints(work):
    """SIGUSR1 in the middle of ds-pagerank with --checkpoint-dir: a checkpoint, exit 75, no
    output; --restart finishes with the ranks of a run that was never stopped (at this rank
    count, and at one rank: the checkpoint is read at another rank count)."""
    import signal, time
    g = os.path.join(work, "g11.el")
    run(["generate", "kron", "--scale", "11", "--seed", "5", "--out", g])
    ref = os.path.join(work, "ref")
    args = ["ds-pagerank", g, "--iters", "150"]
    run(args + ["--out", ref])
    ck, out = os.path.join(work, "ck"), os.path.join(work, "stopped")
    # a directory named like a checkpoint that Loom did not write: never removed
    mine = os.path.join(ck, "ranks.999")
    os.makedirs(mine)
    open(os.path.join(mine, "notes.txt"), "w").write("not Loom's\n")
    p = subprocess.Popen(LAUNCH + [LOOM] + args + ["--out", out, "--checkpoint-dir", ck,
                         "--checkpoint-every", "3"], stderr=subprocess.PIPE)
    err = b""
    t0 = time.time()
    while b"checkpoint of iteration" not in err and time.time() - t0 < 60:
        line = p.stderr.readline()
        if not line:
            break
        err += line
    p.send_signal(signal.SIGUSR1)
    err += p.stderr.read()
    rc = p.wait(timeout=120)
    err = err.decode(errors="replace")
    assert rc == 75, "exit %d, want 75: %s" % (rc, err[-600:])
    assert "resume with --restart" in err and not os.path.exists(out), err[-600:]
    want = read_kv(ref, float)
    for launch in (LAUNCH, []):
        p = subprocess.run(launch + [LOOM] + args + ["--out", out, "--restart", ck, "--overwrite"],
                           capture_output=True, timeout=300)
        assert p.returncode == 0, p.stderr.decode()[-600:]
        got = read_kv(out, float)
        worst = max(abs(got[k] - want[k]) / want[k] for k in want)
        assert set(got) == set(want) and worst < 1e-12, worst
    # a checkpoint of another computation is refused, naming both
    p = run(args + ["--out", out + "x", "--restart", ck, "--damping", "0.5"], expect_ok=False)
    assert p.returncode != 0 and b"not by this job" in p.stderr, p.stderr[-400:]
    assert os.path.exists(os.path.join(mine, "notes.txt")), "a foreign directory was removed"
    print("ok SIGUSR1 -> checkpoint, exit 75; --restart here and at one rank")


def deaths(work):
    """A worker killed for real (SIGKILL, --inject-fault kill:RANK@stage:N). With ULFM the
    survivors recompute what it held and the results are the references'; without, the
    job ends at once naming the dead rank, with no output."""
    g = os.path.join(work, "g.el")
    edges = edges_of(g)
    files = sorted(glob.glob("/usr/share/common-licenses/*"))[:6]
    wc_ref = collections.Counter()
    for f in files:
        wc_ref.update(w.lower() for w in WORD.findall(open(f, "rb").read()))
    out = os.path.join(work, "dead")
    for args, check in (
        (["ds-pagerank", g, "--iters", "12", "--inject-fault", "kill:2@stage:5"],
         lambda: compare("ds-pagerank, worker killed", read_kv(out, float), spark_example(edges, 12))),
        (["ds-wordcount"] + files + ["--split-size", "8K", "--inject-fault", "kill:1@stage:0"],
         lambda: read_kv(out, int) == dict(wc_ref) or sys.exit("FAIL ds-wordcount after a death"))):
        shutil.rmtree(out, ignore_errors=True)
        p = run(args + ["--out", out, "--json"], expect_ok=FT)
        if FT:
            s = summary(p)
            assert s.get("lost_ranks") == 1 and s.get("ds_recoveries") == 1, s
            check()
            print("ok %s: a worker killed, %d partitions recomputed" % (args[0], s["ds_partitions_recomputed"]))
        else:
            # (the message naming the dead rank is the runtime's, checked by test_faults.py)
            err = p.stderr.decode(errors="replace")
            left = [f for f in os.listdir(work) if ".loom-tmp." in f]
            assert p.returncode != 0 and not os.path.exists(out) and not left, (left, err[-400:])
            print("ok %s: a worker killed ends the job, no output, no temporary" % args[0])


def numeric(work):
    import numpy as np
    rng = np.random.default_rng(5)
    n, d = 400, 4
    y = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    x = rng.normal(size=(n, d)) + 0.7 * y[:, None]
    pts = os.path.join(work, "points.txt")
    with open(pts, "w") as f:
        f.write("# label, then features\n")
        for i in range(n):
            f.write(" ".join(repr(float(v)) for v in [y[i], *x[i]]) + "\n")
            if i == 200:
                f.write("\n")  # a blank line is skipped
    w = np.zeros(d)
    for _ in range(10):  # the RDD paper's loop: w -= sum((1/(1+exp(-y w.x)) - 1) y x)
        w -= ((((1 / (1 + np.exp(-y * (x @ w)))) - 1) * y)[:, None] * x).sum(0)
    p = run(["ds-logreg", pts, "--iters", "10", "--split-size", "4K"])
    got = np.array([float(l.split()[2]) for l in p.stdout.decode().splitlines() if l.startswith("weight ")])
    err = np.max(np.abs(got - w) / np.abs(w))
    assert got.shape == w.shape and err < 1e-9, (got, w)
    print("ok ds-logreg against numpy, worst relative difference %.2g" % err)

    km = os.path.join(work, "km.txt")
    c0 = np.array([[0, 0, 0], [5, 5, 0], [0, 6, 6], [9, 0, 9]], dtype=float)
    pts3 = np.vstack([rng.normal(size=(150, 3)) + c for c in c0[:3]])
    rng.shuffle(pts3)
    np.savetxt(km, pts3)
    cen = os.path.join(work, "centres.txt")
    np.savetxt(cen, c0)  # the fourth centre gets no points: it stays
    for args, start in ((["--k", "3"], pts3[:3].copy()), (["--k", "4", "--centers", cen], c0.copy())):
        c = start
        for _ in range(6):  # Lloyd: nearest centre (first on a tie), mean of its points
            a = ((pts3[:, None, :] - c[None, :, :]) ** 2).sum(2).argmin(1)
            c = np.array([pts3[a == k].mean(0) if (a == k).any() else c[k] for k in range(len(c))])
        p = run(["ds-kmeans", km, "--iters", "6", "--split-size", "4K"] + args)
        got = np.array([[float(v) for v in l.split()[2:]] for l in p.stdout.decode().splitlines()
                        if l.startswith("center ")])
        err = np.max(np.abs(got - c))
        assert got.shape == c.shape and err < 1e-9, (got, c)
        print("ok ds-kmeans %s against numpy, worst difference %.2g" % (" ".join(args), err))


def bad_input(work):
    out = os.path.join(work, "bad")
    cases = [
        (["ds-wordcount", os.path.join(work, "missing.txt"), "--out", out], "missing.txt"),
        (["ds-wordcount", "/usr/share/common-licenses/GPL-3", "--out", out, "--inject-fault", "drop:x"],
         "--inject-fault"),
        (["ds-pagerank", os.path.join(work, "missing.el"), "--out", out], "missing.el"),
        (["ds-pagerank", "kron:99", "--out", out], "kron:99"),
        (["ds-wordcount", "/usr/share/common-licenses/GPL-3"], "--out"),
    ]
    nums = os.path.join(work, "bad_numbers.txt")
    open(nums, "w").write("1 2 3\n4 5 6\n7 x 9\n")
    cases.append((["ds-kmeans", nums, "--k", "1", "--split-size", "4K"], "bad_numbers.txt:3: 'x'"))
    cols = os.path.join(work, "bad_columns.txt")
    open(cols, "w").write("1 2 3\n4 5 6\n\n7 8\n")
    cases.append((["ds-logreg", cols], "bad_columns.txt:4: 2 numbers, expected 3"))
    cases.append((["ds-logreg", "gen:0:3"], "gen:0:3"))
    cases.append((["ds-logreg", "gen:10:0"], "gen:10:0"))
    few = os.path.join(work, "three_points.txt")
    open(few, "w").write("1 2\n3 4\n5 6\n")
    cases.append((["ds-kmeans", few, "--k", "7", "--iters", "1"], "3 initial centres, --k is 7"))
    binary = os.path.join(work, "binary.dat")
    open(binary, "wb").write(b"abc\0def\n")
    cases.append((["ds-wordcount", binary, "--out", out], "binary"))
    for args, needle in cases:
        p = run(args, expect_ok=False)
        err = p.stderr.decode(errors="replace")
        if p.returncode == 0 or needle not in err:
            sys.exit("FAIL bad input %r: exit %d, stderr %r" % (args, p.returncode, err[-400:]))
        if os.path.exists(out):
            sys.exit("FAIL bad input %r left %s" % (args, out))
    print("ok bad input:", len(cases), "cases")


def main():
    work = os.path.join(TMP, "ds_jobs_np%d" % NP)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    wordcount(work)
    pagerank(work)
    if NP in (1, 3):  # a stop and two restarts: launches are the cost, two counts suffice
        checkpoints(work)
    if NP >= 3:
        deaths(work)
    numeric(work)
    bad_input(work)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
