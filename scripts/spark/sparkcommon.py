"""Shared pieces of Loom's Spark peers: session set-up, peak-memory sampling, timing, records."""

import json
import os
import platform
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from one_node import one_node_env  # noqa: E402

# ---------------------------------------------------------------- running loom

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def find_loom(given=None):
    """The loom binary: `given`, $LOOM, then the usual build directories; None if none."""
    import glob
    cands = [given, os.environ.get("LOOM")] + [os.path.join(ROOT, p, "loom") for p in
                                               ("build/release", "build", "build-release")]
    cands += sorted(glob.glob(os.path.join(ROOT, "build*", "loom")))
    for c in cands:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    return None


def mpi_env():
    """The environment for mpiexec here: root allowed, oversubscription, one thread per rank."""
    return one_node_env(OMP_NUM_THREADS="1")


# ---------------------------------------------------------------- memory


def _descendants(pid):
    """All live descendants of pid (the JVM and PySpark's Python workers)."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in children.get(p, []):
            out.append(c)
            todo.append(c)
    return out


def _hwm_bytes(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class PeakMemory:
    """Samples the peak resident set of this process and every descendant.

    Each process's own high-water mark (VmHWM) is kept, also for workers that exit
    before the end, and the result is their sum: an upper bound of the peak of the
    whole Spark installation (driver JVM, Python driver, Python workers), which is
    what a node must have free. Sampling every 0.2 s misses nothing for VmHWM
    except processes shorter than that."""

    def __init__(self, period=0.2):
        self.period = period
        self.hwm = {}
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _sample(self):
        me = os.getpid()
        for p in [me] + _descendants(me):
            h = _hwm_bytes(p)
            if h > self.hwm.get(p, 0):
                self.hwm[p] = h

    def _run(self):
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.period)

    def start(self):
        self._t.start()
        return self

    def stop(self):
        self._sample()
        self._stop.set()
        self._t.join()
        return sum(self.hwm.values()), len(self.hwm)


# ---------------------------------------------------------------- session


def add_spark_args(ap):
    ap.add_argument("--master", default="local[2]", help="Spark master (default local[2])")
    ap.add_argument("--partitions", type=int, default=0,
                    help="partitions of the data and of every shuffle (0: 2 x cores)")
    ap.add_argument("--driver-memory", default="8g", help="JVM heap of the local driver")
    ap.add_argument("--json", action="store_true", help="print one JSON record on stdout")


def cores_of(master):
    """Cores a local master uses: local -> 1, local[N] -> N, local[*] -> all."""
    if master == "local":
        return 1
    if master.startswith("local["):
        inner = master[6:].split(",")[0].rstrip("]")
        return os.cpu_count() if inner == "*" else int(inner)
    return 0


def start_session(app, args):
    """A SparkSession tuned the way a careful user would for one node: shuffle
    partitions matched to the cores (the default 200 is for clusters), no UI,
    warnings only. Returns (spark, seconds it took)."""
    t0 = time.perf_counter()
    # the Python workers run this interpreter (the venv's, with numpy), not python3 on PATH
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    cores = cores_of(args.master) or 2
    parts = args.partitions or 2 * cores
    args.partitions = parts
    spark = (SparkSession.builder.appName(app).master(args.master)
             .config("spark.driver.memory", args.driver_memory)
             .config("spark.sql.shuffle.partitions", str(parts))
             .config("spark.default.parallelism", str(parts))
             .config("spark.ui.enabled", "false")
             .config("spark.ui.showConsoleProgress", "false")
             .config("spark.sql.adaptive.enabled", "false")
             .config("spark.driver.extraJavaOptions", "-XX:+UseParallelGC")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    return spark, time.perf_counter() - t0


# ---------------------------------------------------------------- records


def spread(xs):
    """median, min, max and coefficient of variation of a list of seconds."""
    if not xs:
        return {"median": None, "min": None, "max": None, "cv": None, "n": 0}
    m = statistics.mean(xs)
    cv = statistics.pstdev(xs) / m if len(xs) > 1 and m > 0 else 0.0
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "cv": cv,
            "n": len(xs)}


def environment(spark, args):
    import pyspark

    return {
        "spark": pyspark.__version__,
        "java": spark.sparkContext._jvm.System.getProperty("java.version"),
        "python": platform.python_version(),
        "master": args.master,
        "cores": cores_of(args.master),
        "partitions": args.partitions,
        "driver_memory": args.driver_memory,
        "host": platform.node(),
    }


def emit(record, as_json):
    if as_json:
        print(json.dumps(record, sort_keys=True), flush=True)
    else:
        for k in sorted(record):
            v = record[k]
            if isinstance(v, float):
                v = f"{v:.6g}"
            print(f"{k:22s} {v}", file=sys.stderr)


def write_scores(path, scores):
    """'vertex<TAB>score' lines in vertex order, %.17g like Loom's text output,
    written under a temporary name and renamed."""
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        for v, s in enumerate(scores):
            f.write(f"{v}\t{s:.17g}\n")
    os.replace(tmp, path)
