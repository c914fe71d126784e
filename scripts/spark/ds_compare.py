#!/usr/bin/python3
"""Loom's dataset commands against Spark running the same RDD programs: first a check that
they agree, then timings alternating the systems.

Usage: /usr/bin/python3 scripts/spark/ds_compare.py [--loom build/release/loom]
       [--scales 18,20] [--points 400000] [--dim 10] [--iters 10] [--reps 3]
       [--out-dir bench-out/ds-spark] [--spark rdd,dataframe] [--no-check]

Check (small inputs): `loom ds-pagerank --convention spark` against Spark's example program
(scripts/spark/ds_programs.py pagerank) and the same with DataFrames (pagerank-df), every
vertex within 1e-9; `loom ds-logreg` against
the RDD paper's program in PySpark, every weight within 1e-9.
Timing: PageRank on kron:S undirected edge lists and logistic regression on a points file,
Loom at 3 ranks (master + 2 workers x 1 thread) and Spark local[2]; per iteration (Loom:
seconds_per_iteration of the summary, the loop and the save; Spark: each iteration forced
with a count) and the whole command, median (min-max) over --reps.
"""
import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from sparkcommon import find_loom, mpi_env  # noqa: E402


def timed(cmd):
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=mpi_env())
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"ds_compare: failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr[-2000:]}")
    return r.stdout, wall


def fmt(xs):
    return f"{statistics.median(xs):.4g} ({min(xs):.4g}-{max(xs):.4g})"


def race(reps, what, loom_cmd, spark_cmds):
    """Alternate Loom and the Spark commands ({name: cmd}); print a row per system: per
    iteration and whole command, and the ratio to Loom's per-iteration median."""
    r = {"loom": ([], [])}
    r.update({name: ([], []) for name in spark_cmds})
    for _ in range(reps):
        so, w = timed(loom_cmd)
        r["loom"][0].append(json.loads(so.strip().splitlines()[-1])["seconds_per_iteration"])
        r["loom"][1].append(w)
        for name, cmd in spark_cmds.items():
            so, w = timed(cmd)
            r[name][0].append(json.loads(so.strip().splitlines()[-1])["per_iteration_s"]["median"])
            r[name][1].append(w)
        # each round as it ends, so that a run stopped early still has its figures
        print(f"# {what}: " + ", ".join(f"{n} {v[0][-1]:.4g} s/it {v[1][-1]:.4g} s" for n, v in
                                        r.items()), file=sys.stderr, flush=True)
    for name in r:
        ratio = statistics.median(r[name][0]) / statistics.median(r["loom"][0])
        print(f"| {what} | {name} | {fmt(r[name][0])} | {fmt(r[name][1])} | {ratio:.1f}x |",
              flush=True)


def points_file(path, n, dim, seed=7):
    rng = random.Random(seed)
    with open(path, "w") as f:
        for _ in range(n):
            y = 1.0 if rng.random() < 0.5 else -1.0
            f.write(" ".join([repr(y)] + [repr(rng.gauss(0.6 * y, 1.0)) for _ in range(dim)]) + "\n")


def check(a, loom, py, prog, mpi3, out):
    """Loom and Spark agree on small inputs before anything is timed."""
    g = os.path.join(a.out_dir, "kron10.el")
    subprocess.run([loom, "generate", "kron", "--scale", "10", "--out", g, "--quiet"], check=True,
                   env=mpi_env())
    timed(mpi3 + ["ds-pagerank", g, "--iters", "10", "--out", out, "--overwrite", "--quiet"])
    got = {}
    for part in os.listdir(out):
        if part.startswith("part-"):
            got.update(l.rstrip("\n").split("\t") for l in open(os.path.join(out, part)))
    for program, name in (("pagerank", "Spark's example program (RDDs)"),
                          ("pagerank-df", "the DataFrame program")):
        timed([py, prog, program, g, "--iters", "10", "--out", out + ".spark"])
        want = dict(l.rstrip("\n").split("\t") for l in open(out + ".spark"))
        assert set(got) == set(want), (program, len(got), len(want))
        worst = max(abs(float(got[k]) - float(want[k])) / float(want[k]) for k in want)
        assert worst < 1e-9, (program, worst)
        print(f"check: ds-pagerank = {name} on {len(want)} vertices "
              f"(worst relative difference {worst:.2g})")
    pts = os.path.join(a.out_dir, "points-small.txt")
    points_file(pts, 2000, 5)
    timed([py, prog, "logreg", pts, "--iters", "10", "--out", out + ".w"])
    so, _ = timed(mpi3 + ["ds-logreg", pts, "--iters", "10", "--quiet"])
    w1 = [float(l.split()[2]) for l in open(out + ".w")]
    w2 = [float(l.split()[2]) for l in so.splitlines() if l.startswith("weight ")]
    worst = max(abs(x - y) / abs(x) for x, y in zip(w1, w2))
    assert len(w1) == len(w2) and worst < 1e-9, (w1, w2)
    print(f"check: ds-logreg = PySpark's gradient descent, {len(w1)} weights "
          f"(worst relative difference {worst:.2g})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--loom")
    ap.add_argument("--scales", default="18,20")
    ap.add_argument("--points", type=int, default=400000)
    ap.add_argument("--dim", type=int, default=10)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out-dir", default="bench-out/ds-spark")
    ap.add_argument("--spark", default="rdd,dataframe",
                    help="Spark PageRank programs to time: rdd, dataframe or both")
    ap.add_argument("--no-check", action="store_true", help="skip the agreement checks")
    a = ap.parse_args()
    loom = find_loom(a.loom) or sys.exit("ds_compare: no loom binary")
    py = subprocess.run([os.path.join(HERE, "setup.sh")], capture_output=True, text=True,
                        check=True).stdout.strip()
    prog = os.path.join(HERE, "ds_programs.py")
    os.makedirs(a.out_dir, exist_ok=True)
    mpi3 = ["mpiexec", "-n", "3", "--bind-to", "none", loom]
    out = os.path.join(a.out_dir, "out")

    # ---- check
    if not a.no_check:
        check(a, loom, py, prog, mpi3, out)

    # ---- timing
    print(f"\nLoom 3 ranks (master + 2 workers x 1 thread) vs Spark local[2]; {a.iters} "
          f"iterations; median (min-max) of {a.reps}, alternating\n")
    print("| workload | system | s/iteration | whole command, s | Spark ÷ Loom (iteration) |")
    print("|---|---|---|---|---|")
    for scale in [int(s) for s in a.scales.split(",") if s]:
        el = os.path.join(a.out_dir, f"kron{scale}-undirected.el")
        if not os.path.exists(el):
            subprocess.run([loom, "generate", "kron", "--scale", str(scale), "--undirected",
                            "--quiet", "--out", el], check=True, env=mpi_env())
        race(a.reps, f"PageRank kron:{scale} undirected",
             mpi3 + ["ds-pagerank", el, "--iters", str(a.iters), "--threads", "1", "--out", out,
                     "--overwrite", "--json", "--quiet"],
             {f"spark {s}": [py, prog, {"rdd": "pagerank", "dataframe": "pagerank-df"}[s], el,
                             "--iters", str(a.iters), "--json"] for s in a.spark.split(",")})
    if a.points <= 0:
        return
    pts = os.path.join(a.out_dir, f"points-{a.points}x{a.dim}.txt")
    if not os.path.exists(pts):
        points_file(pts, a.points, a.dim)
    race(a.reps, f"logistic regression, {a.points} points x {a.dim}",
         mpi3 + ["ds-logreg", pts, "--iters", str(a.iters), "--threads", "1", "--json"],
         {"spark rdd": [py, prog, "logreg", pts, "--iters", str(a.iters), "--json"]})


if __name__ == "__main__":
    main()
