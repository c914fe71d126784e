#!/usr/bin/env python3
"""ds-pagerank against PySpark's own PageRank program, at 1, 2, 3 and 4 ranks.

The program is examples/src/main/python/pagerank.py as pip's pyspark ships it, run unchanged
by that pyspark's spark-submit (local[2]) on the same edge list: distinct links grouped by
source and cached, links.join(ranks), contributions, reduceByKey(add), rank * 0.85 + 0.15,
printed as "URL has rank: R.". Loom's ds-pagerank (Spark's convention, its default) must
give every vertex Spark names, and no other, within 1e-9 relative. Run when CMake was given
LOOM_SPARK_PYTHON (scripts/spark/setup.sh's venv python; scripts/test does it)."""
import glob, os, re, shlex, subprocess, sys

LOOM = os.environ["LOOM"]
MPIEXEC = shlex.split(os.environ["LOOM_MPIEXEC"])  # "mpiexec -n": the rank count follows
PY = os.environ["LOOM_SPARK_PYTHON"]
TMP = os.environ.get("LOOM_TMP", "/tmp")
ITERS = 12


def fail(msg):
    sys.exit("FAIL " + msg)


def spark_example():
    """spark-submit and pagerank.py of the pyspark installed beside PY."""
    where = subprocess.run([PY, "-c", "import os, pyspark; print(os.path.dirname(pyspark.__file__))"],
                           capture_output=True, text=True, check=True).stdout.strip()
    prog = os.path.join(where, "examples", "src", "main", "python", "pagerank.py")
    submit = os.path.join(os.path.dirname(PY), "spark-submit")
    for f in (prog, submit):
        if not os.path.exists(f):
            fail("%s: missing from the pyspark install" % f)
    return submit, prog


def run_spark(submit, prog, edges):
    env = dict(os.environ, PYSPARK_PYTHON=PY, PYSPARK_DRIVER_PYTHON=PY, SPARK_LOCAL_IP="127.0.0.1")
    p = subprocess.run([submit, "--master", "local[2]", "--conf", "spark.ui.enabled=false", prog,
                        edges, str(ITERS)], capture_output=True, text=True, env=env, timeout=600)
    if p.returncode != 0:
        fail("spark-submit pagerank.py exited %d:\n%s" % (p.returncode, p.stderr[-3000:]))
    ranks = {}
    for line in p.stdout.splitlines():
        m = re.fullmatch(r"(\S+) has rank: (\S+)\.", line)
        if m:
            ranks[int(m.group(1))] = float(m.group(2))
    if not ranks:
        fail("no ranks in Spark's output:\n" + p.stdout[-2000:])
    return ranks


def run_loom(np, graph, out):
    cmd = MPIEXEC + [str(np), LOOM, "ds-pagerank", graph, "--iters", str(ITERS), "--out", out,
                     "--overwrite"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        fail("%s exited %d:\n%s" % (" ".join(cmd), p.returncode, p.stderr))
    got = {}
    for part in sorted(glob.glob(os.path.join(out, "part-*"))):
        for line in open(part):
            k, v = line.rstrip("\n").split("\t")
            got[int(k)] = float(v)
    return got


def main():
    graph = os.path.join(TMP, "g.el")
    subprocess.run([LOOM, "generate", "kron", "--scale", "9", "--edge-factor", "8", "--seed", "11",
                    "--out", graph], check=True, capture_output=True)
    # Spark's example reads every line as "URL neighbour": the arcs only, no comments.
    plain = os.path.join(TMP, "g.txt")
    with open(graph) as f, open(plain, "w") as o:
        for line in f:
            if line.strip() and not line.startswith(("#", "%")):
                o.write(" ".join(line.split()[:2]) + "\n")
    submit, prog = spark_example()
    ref = run_spark(submit, prog, plain)
    print("ok Spark's pagerank.py: %d vertices" % len(ref))
    for np in (1, 2, 3, 4):
        got = run_loom(np, graph, os.path.join(TMP, "pr"))
        if set(got) != set(ref):
            fail("ds-pagerank at %d ranks: vertices differ from Spark's (%d vs %d), e.g. %r"
                 % (np, len(got), len(ref), sorted(set(got) ^ set(ref))[:5]))
        worst = max(abs(got[k] - ref[k]) / abs(ref[k]) for k in ref)
        if worst > 1e-9:
            fail("ds-pagerank at %d ranks: worst relative difference %.3g" % (np, worst))
        print("ok ds-pagerank at %d rank(s) = Spark's pagerank.py, worst relative difference %.2g"
              % (np, worst))


main()
