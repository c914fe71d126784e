#!/usr/bin/python3
"""Check that Spark's PageRank and word count agree with networkx, Counter and `loom` before timing.

Usage: /usr/bin/python3 scripts/spark/check.py [--loom PATH] [--scale 10] [--iters 20]
       [--np 3] [--keep DIR]

Makes two small graphs with `loom generate` (Kronecker, directed with dangling
vertices, and undirected), then for each dangling rule compares, vertex by
vertex, within --tol (default 1e-6):
  - networkx: x <- x G for the same number of iterations, G = nx.google_matrix
    (networkx's own definition: uniform teleport, dangling rows spread
    uniformly), and nx.pagerank run to convergence against Loom run 100 iterations;
  - a plain numpy reference (used for 'ignore', which networkx cannot express);
  - Spark RDD and DataFrame programs (scripts/spark/pagerank_*.py);
  - `loom pagerank` at 1 rank and at --np ranks, when the command exists.
Word count: a generated corpus (mixed case, punctuation, UTF-8, CRLF, a last
line without newline) counted by collections.Counter over the byte rule, by
Spark (df and rdd) and by `loom wordcount` when it exists; counts must be equal.
Needs Debian's python3 (networkx, numpy); Spark comes from scripts/spark/setup.sh.
Exits non-zero on any disagreement.
"""

import argparse
import collections
import glob
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import warnings

import networkx as nx
import numpy as np

# networkx 2.8 warns that google_matrix will return ndarray in 3.0; both work here.
warnings.filterwarnings("ignore", category=FutureWarning, module="networkx")
warnings.filterwarnings("ignore", category=FutureWarning)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from sparkcommon import find_loom, mpi_env  # noqa: E402
failures = []


def log(msg):
    print(f"check: {msg}", flush=True)


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, env=mpi_env(), **kw)
    if r.returncode != 0:
        sys.stderr.write(r.stdout[-3000:] + r.stderr[-3000:])
        raise RuntimeError(f"command failed ({r.returncode}): {' '.join(cmd)}")
    return r


def loom_cmd(loom, np_, args):
    if np_ <= 1:
        return [loom] + args
    return ["mpiexec", "-n", str(np_), "--oversubscribe", loom] + args


def has_command(loom, name):
    r = subprocess.run([loom, name, "--help"], capture_output=True, text=True, env=mpi_env())
    return r.returncode == 0


def read_arcs(path):
    src, dst = [], []
    with open(path) as f:
        for line in f:
            p = line.split()
            if not p or p[0][0] in "#%":
                continue
            src.append(int(p[0]))
            dst.append(int(p[1]))
    return np.array(src, dtype=np.int64), np.array(dst, dtype=np.int64)


def read_scores(path, n):
    x = np.full(n, np.nan)
    with open(path) as f:
        for line in f:
            v, s = line.split()
            x[int(v)] = float(s)
    return x


def numpy_pagerank(src, dst, n, iters, d, dangling):
    """The definition, written plainly: x'_v = (1-d)/N + d (sum_{u->v} x_u/out(u) + D/N)."""
    out = np.bincount(src, minlength=n).astype(float)
    dang = out == 0
    x = np.full(n, 1.0 / n)
    for _ in range(iters):
        share = np.where(dang, 0.0, x / np.where(dang, 1.0, out))
        acc = np.zeros(n)
        np.add.at(acc, dst, share[src])
        mass = x[dang].sum() if dangling == "redistribute" else 0.0
        x = (1.0 - d) / n + d * (acc + mass / n)
    return x


def networkx_graph(src, dst, n):
    g = nx.MultiDiGraph()  # parallel arcs count, as in Loom
    g.add_nodes_from(range(n))
    g.add_edges_from(zip(src.tolist(), dst.tolist()))
    return g


def networkx_fixed(g, n, iters, d):
    gm = np.asarray(nx.google_matrix(g, alpha=d, nodelist=range(n)))
    x = np.full(n, 1.0 / n)
    for _ in range(iters):
        x = x @ gm
    return x


def compare(name, got, want, tol):
    if got.shape != want.shape or np.isnan(got).any():
        failures.append(f"{name}: missing vertices")
        log(f"FAIL {name}: missing vertices")
        return
    err = float(np.max(np.abs(got - want)))
    ok = err <= tol
    log(f"{'ok  ' if ok else 'FAIL'} {name}: max |diff| {err:.3g} over {len(got)} vertices")
    if not ok:
        failures.append(f"{name}: max diff {err:.3g} > {tol}")


def check_pagerank(args, loom, spark_py, tmp):
    graphs = []
    for label, extra in (("directed", []), ("undirected", ["--undirected"])):
        path = os.path.join(tmp, f"kron{args.scale}-{label}.el")
        run([loom, "generate", "kron", "--scale", str(args.scale), "--quiet", "--out", path]
            + extra)
        graphs.append((label, path))
    loom_pr = has_command(loom, "pagerank")
    if not loom_pr:
        log("note: this loom has no 'pagerank' command yet; comparing Spark and networkx only")
    d, k = 0.85, args.iters
    for label, path in graphs:
        src, dst = read_arcs(path)
        n = int(max(src.max(), dst.max())) + 1
        ndang = int((np.bincount(src, minlength=n) == 0).sum())
        log(f"{label}: {path}: {n} vertices, {len(src)} arcs, {ndang} dangling")
        g = networkx_graph(src, dst, n)
        for rule in ("redistribute", "ignore"):
            ref = numpy_pagerank(src, dst, n, k, d, rule)
            tag = f"{label}/{rule}/{k} iterations"
            if rule == "redistribute":
                compare(f"numpy vs networkx google_matrix, {tag}",
                        ref, networkx_fixed(g, n, k, d), 1e-12)
            apis = ("rdd", "df") if label == "directed" else ("df",)
            for api in apis:
                out = os.path.join(tmp, f"spark-{api}-{label}-{rule}.txt")
                run([spark_py, os.path.join(HERE, f"pagerank_{api}.py"), path, "--iters", str(k),
                     "--dangling", rule, "--num-vertices", str(n), "--out", out, "--json"])
                compare(f"spark-{api} vs {'networkx' if rule == 'redistribute' else 'numpy'}, "
                        f"{tag}", read_scores(out, n), ref, args.tol)
            if not loom_pr:
                continue
            for np_ in sorted({1, args.np}):
                out = os.path.join(tmp, f"loom-np{np_}-{label}-{rule}.txt")
                run(loom_cmd(loom, np_, ["pagerank", path, "--iters", str(k), "--dangling",
                                         rule, "--out", out, "--quiet"]))
                compare(f"loom np={np_} vs reference, {tag}", read_scores(out, n), ref, args.tol)
        if loom_pr:
            conv = nx.pagerank(g, alpha=d, tol=1e-13, max_iter=10000)
            want = np.array([conv[v] for v in range(n)])
            out = os.path.join(tmp, f"loom-conv-{label}.txt")
            run(loom_cmd(loom, args.np, ["pagerank", path, "--iters", "100", "--dangling",
                                         "redistribute", "--out", out, "--quiet"]))
            compare(f"loom np={args.np} 100 iterations vs nx.pagerank converged, {label}",
                    read_scores(out, n), want, args.tol)


# ---------------------------------------------------------------- word count

WORD = re.compile(rb"[A-Za-z0-9]+")


def counter_wordcount(paths):
    c = collections.Counter()
    for p in paths:
        with open(p, "rb") as f:
            for w in WORD.findall(f.read()):
                c[w.lower().decode()] += 1
    return c


def read_counts(outdir):
    c = {}
    for p in sorted(glob.glob(os.path.join(outdir, "part*"))):
        with open(p) as f:
            for line in f:
                w, n = line.rstrip("\n").split("\t")
                if w in c:
                    raise ValueError(f"{outdir}: word {w!r} appears twice")
                c[w] = int(n)
    return c


def make_corpus(tmp):
    rng = random.Random(7)
    vocab = ["the", "The", "THE", "loom", "Spark", "MPI", "rank0", "x86_64", "e-mail",
             "caf\u00e9", "na\u00efve", "\u212aelvin", "don't", "3.14", "a", "B", "z9z"]
    paths = []
    for i in range(3):
        lines = []
        for _ in range(2000):
            ws = [rng.choice(vocab) for _ in range(rng.randrange(0, 12))]
            sep = rng.choice([" ", "  ", ", ", "; ", "\t", "!"])
            lines.append(sep.join(ws))
        body = ("\r\n" if i == 1 else "\n").join(lines)  # file 2 ends without a newline
        p = os.path.join(tmp, "corpus", f"part{i}.txt")
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w", encoding="utf-8", newline="") as f:
            f.write(body + ("" if i == 2 else "\n"))
        paths.append(p)
    return paths


def check_wordcount(args, loom, spark_py, tmp):
    paths = make_corpus(tmp)
    want = counter_wordcount(paths)
    log(f"wordcount: corpus of {sum(want.values())} words, {len(want)} distinct")
    runs = []
    for api in ("df", "rdd"):
        out = os.path.join(tmp, f"wc-spark-{api}")
        run([spark_py, os.path.join(HERE, "wordcount.py")] + paths +
            ["--out", out, "--api", api, "--json"])
        runs.append((f"spark-{api}", out))
    if loom and has_command(loom, "wordcount"):
        out = os.path.join(tmp, "wc-loom")
        run(loom_cmd(loom, args.np, ["wordcount"] + paths + ["--out", out, "--quiet"]))
        runs.append((f"loom np={args.np}", out))
    else:
        log("note: this loom has no 'wordcount' command yet")
    for name, out in runs:
        got = read_counts(out)
        if got == dict(want):
            log(f"ok   wordcount {name}: {len(got)} words equal to Counter")
        else:
            diff = sorted(set(got.items()) ^ set(want.items()))[:6]
            log(f"FAIL wordcount {name}: differs from Counter, e.g. {diff}")
            failures.append(f"wordcount {name}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--loom", help="the loom binary (default $LOOM or build*/loom)")
    ap.add_argument("--scale", type=int, default=10)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--np", type=int, default=3, help="ranks for the MPI runs of loom")
    ap.add_argument("--tol", type=float, default=1e-6)
    ap.add_argument("--keep", help="keep the files in this directory")
    ap.add_argument("--only", choices=["pagerank", "wordcount"])
    args = ap.parse_args()

    loom = find_loom(args.loom)
    if not loom:
        sys.exit("check: no loom binary (build it, or pass --loom / set LOOM)")
    spark_py = subprocess.run([os.path.join(HERE, "setup.sh")], capture_output=True, text=True,
                              check=True).stdout.strip()
    log(f"loom {loom}, spark python {spark_py}")
    tmp = args.keep or tempfile.mkdtemp(prefix="loom-spark-check-")
    os.makedirs(tmp, exist_ok=True)
    try:
        if args.only in (None, "pagerank"):
            check_pagerank(args, loom, spark_py, tmp)
        if args.only in (None, "wordcount"):
            check_wordcount(args, loom, spark_py, tmp)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        log(f"FAIL: {len(failures)} disagreement(s)")
        sys.exit(1)
    log("PASS: Spark, networkx/Counter and Loom agree")


if __name__ == "__main__":
    main()
