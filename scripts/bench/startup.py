#!/usr/bin/env python3
"""Start-up cost of a Loom run on one machine: the whole command, wall clock.

    scripts/bench/startup.py [--rounds 15] [--loom build/release/loom]

Alternates, round by round, the same small job (`loom info kron:8`, which starts MPI,
generates 2^8 vertices and prints) and an empty MPI program (MPI_Init, MPI_Finalize; built
here with mpicc) under these settings:
  singleton, Open MPI's PML choice   no launcher, OMPI_MCA_pml=^monitoring (Open MPI's own
                                      default list: every network transport is probed)
  singleton, Loom's default           no launcher, OMPI_MCA_pml unset: Loom picks ob1
  mpirun -np 3, Open MPI's defaults   the caller's environment, no OMPI_MCA_pml
  mpirun -np 3, scripts/one-node.env  the ob1 PML, as scripts/demo, the tests and benchmarks
Prints median and min-max per setting, and JSON with --json."""
import argparse, json, os, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from one_node import one_node_env  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--loom", default=os.path.join(ROOT, "build", "release", "loom"))
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="loom-startup-")
    empty = os.path.join(work, "empty")
    src = os.path.join(work, "empty.c")
    with open(src, "w") as f:
        f.write("#include <mpi.h>\nint main(int c, char **v) { MPI_Init(&c, &v); "
                "MPI_Finalize(); return 0; }\n")
    subprocess.run(["mpicc", "-O2", "-o", empty, src], check=True)
    base = {k: v for k, v in os.environ.items() if k != "OMPI_MCA_pml"}
    plain = dict(base, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
                 OMPI_MCA_btl_vader_single_copy_mechanism="none", OMP_NUM_THREADS="1")
    fast = one_node_env(plain)
    fast["OMPI_MCA_pml"] = "ob1"
    mpirun = ["mpirun", "-np", "3", "--oversubscribe"]
    job = [a.loom, "info", "kron:8"]
    settings = [
        ("singleton, Open MPI's PML choice", [], dict(plain, OMPI_MCA_pml="^monitoring")),
        ("singleton, Loom's default", [], plain),
        ("mpirun -np 3, Open MPI's defaults", mpirun, plain),
        ("mpirun -np 3, scripts/one-node.env", mpirun, fast),
    ]
    times = {(name, what): [] for name, _, _ in settings for what in ("loom", "empty")}
    for _ in range(a.rounds):
        for name, launch, env in settings:
            for what, cmd in (("loom", job), ("empty", [empty])):
                t0 = time.perf_counter()
                subprocess.run(launch + cmd, env=env, check=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
                times[(name, what)].append(time.perf_counter() - t0)
    rows = []
    for (name, what), ts in times.items():
        rows.append(dict(setting=name, program=what, median_s=statistics.median(ts),
                         min_s=min(ts), max_s=max(ts), runs=len(ts)))
    if a.json:
        print(json.dumps(rows, indent=1))
    else:
        for r in rows:
            print("%-38s %-6s median %.3f s  (%.3f-%.3f, %d runs)" % (
                r["setting"], r["program"], r["median_s"], r["min_s"], r["max_s"], r["runs"]))


main()
