#!/usr/bin/python3
"""The key/value store's gateway against Debian's redis-server, its batched C API against a
single-process hash table, and its throughput while a holder dies or stops.

    /usr/bin/python3 scripts/bench/kv.py [--rounds 5] [--requests 100000] [--clients 50]
        [--keys 1000000] [--loom build/release/loom] [--json FILE]
    /usr/bin/python3 scripts/bench/kv.py --failure stop [--seconds 10]
    . build/venv-ulfm/bin/activate
    /usr/bin/python3 scripts/bench/kv.py --failure kill [--loom build/ulfm/loom] [--seconds 10]

Default run (needs redis-server and redis-tools: apt-get install redis-server redis-tools):
every system is started once, on loopback, then every round runs `redis-benchmark -t set,get
-n REQUESTS -c CLIENTS --csv` against each, not pipelined and with -P 16, in this order
(systems alternate within the run; never compare figures of different runs):

  redis           redis-server --save '' --appendonly no (one process, nothing on disk)
  redis-aof       redis-server --appendonly yes --appendfsync everysec (its log, synced
                  each second: what Loom's default does)
  loom-np3        mpirun -np 3 loom kv serve (master + 2 holders: N=2 copies, R=W=2)
  loom-np4        mpirun -np 4 loom kv serve (master + 3 holders: N=3, R=W=2)

against worker 1's gateway. Each figure is requests per second and p50/p99 latency; the
report gives median and min-max over the rounds. Then scripts/bench/kv_batch.c (compiled
here with mpicc against the build) runs at 3 and 4 ranks, --rounds times alternating:
loom_kv_put_batch / loom_kv_get_batch of KEYS keys against one process inserting into and
looking up a plain hash table.

--failure: redis-benchmark -t set with 50 clients runs for --seconds against worker 1 of a
4-holder service (5 ranks, N=3, W=2, --timeout-ms 300) while worker 3 is killed with SIGKILL
at 3 s (`kill`: the ULFM build, Open MPI 5's mpirun --with-ft ulfm, where a dead rank is
survived), or worker 4 is stopped with SIGSTOP at 3 s and continued at 6 s (`stop`: the
Release build; under ULFM its failure detector would declare a stopped rank dead). The
report is the requests per second redis-benchmark shows every 250 ms, before, during and
after, and for `stop` how long the hints took to reach their home after SIGCONT.
"""
import argparse, csv, io, json, os, random, shutil, signal, socket, statistics, subprocess
import sys, tempfile, threading, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(HERE))
from one_node import one_node_env  # noqa: E402


def free_base(n):
    """A base port with n free ports after it."""
    while True:
        base = random.randrange(20000, 50000)
        ok = True
        for p in range(base, base + n):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
                    break
        if ok:
            return base


def ping(port, deadline=60):
    end = time.time() + deadline
    while time.time() < end:
        r = subprocess.run(["redis-cli", "-p", str(port), "PING"], capture_output=True, text=True)
        if r.stdout.strip() == "PONG":
            return
        time.sleep(0.2)
    sys.exit("no PONG from port %d" % port)


class Service:
    def __init__(self, name, cmd, port, env=None):
        self.name, self.port = name, port
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  env=env, start_new_session=True)
        self.pids = {}
        if "kv" in cmd:
            for line in self.p.stdout:
                if line.startswith("kv: worker"):
                    f = line.split()
                    self.pids[int(f[2])] = int(f[6])
                if line.startswith("kv: ready"):
                    break
            else:
                sys.exit("%s did not start" % name)
        ping(port)

    def stop(self):
        try:
            subprocess.run(["redis-cli", "-p", str(self.port), "SHUTDOWN", "NOSAVE"
                            if "redis" in self.name else "SHUTDOWN"], capture_output=True,
                           timeout=30)
        except subprocess.TimeoutExpired:
            pass
        try:
            self.p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.p.pid, signal.SIGKILL)


def loom_service(name, loom, np, store, extra=(), env=None, mpirun="mpirun"):
    port = free_base(np)
    cmd = [mpirun, "-np", str(np), "--oversubscribe"]
    if env and env.get("LOOM_BENCH_FT"):
        cmd[1:1] = ["--with-ft", "ulfm"]
    cmd += [loom, "kv", "serve", "--store", store, "--port", str(port)] + list(extra)
    return Service(name, cmd, port, env)


def bench(port, requests, clients, pipeline):
    cmd = ["redis-benchmark", "-p", str(port), "-t", "set,get", "-n", str(requests), "-c",
           str(clients), "-P", str(pipeline), "--csv"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    out = {}
    for row in csv.DictReader(io.StringIO(r.stdout)):
        out[row["test"]] = {"rps": float(row["rps"]), "p50": float(row["p50_latency_ms"]),
                            "p99": float(row["p99_latency_ms"])}
    if set(out) != {"SET", "GET"}:
        sys.exit("redis-benchmark: %s\n%s" % (" ".join(cmd), r.stdout + r.stderr))
    return out


def spread(xs):
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}


def build_kv_batch(work):
    exe = os.path.join(work, "kv_batch")
    build = os.path.join(ROOT, "build", "release")
    cmd = ["mpicc", "-O2", "-I", os.path.join(ROOT, "include"), "-I",
           os.path.join(build, "include"), os.path.join(HERE, "kv_batch.c"), "-L", build,
           "-lloom", "-Wl,-rpath," + build, "-o", exe]
    subprocess.run(cmd, check=True)
    return exe, cmd


def run_kv_batch(exe, np, store, keys, env):
    shutil.rmtree(store, ignore_errors=True)
    r = subprocess.run(["mpirun", "-np", str(np), "--oversubscribe", exe, store, str(keys), "32",
                        "65536"], capture_output=True, text=True, env=env, timeout=600)
    vals = {}
    for line in r.stdout.splitlines():
        f = line.split()
        for i in range(len(f) - 1):
            try:
                vals[f[i]] = float(f[i + 1])
            except ValueError:
                pass
    if r.returncode or vals.get("wrong", 1) != 0:
        sys.exit("kv_batch failed:\n" + r.stdout + r.stderr)
    return vals


def throughput(a):
    if not shutil.which("redis-server") or not shutil.which("redis-benchmark"):
        sys.exit("needs redis-server and redis-benchmark: apt-get install redis-server redis-tools")
    env = one_node_env(OMP_NUM_THREADS="1")
    work = tempfile.mkdtemp(prefix="loom-bench-kv-")
    systems = []
    try:
        for name, extra in (("redis", ["--save", "", "--appendonly", "no"]),
                            ("redis-aof", ["--save", "", "--appendonly", "yes",
                                           "--appendfsync", "everysec"])):
            port = free_base(1)
            d = os.path.join(work, name)
            os.makedirs(d)
            systems.append(Service(name, ["redis-server", "--port", str(port), "--bind",
                                          "127.0.0.1", "--dir", d] + extra, port))
        for np in (3, 4):
            systems.append(loom_service("loom-np%d" % np, a.loom, np,
                                        os.path.join(work, "store-np%d" % np), env=env))
        res = {}
        for r in range(a.rounds):
            for s in systems:
                for pipe in (1, 16):
                    got = bench(s.port, a.requests, a.clients, pipe)
                    for t, v in got.items():
                        for k, x in v.items():
                            res.setdefault((s.name, pipe, t, k), []).append(x)
            print("round %d done" % (r + 1), file=sys.stderr)
    finally:
        for s in systems:
            s.stop()
    exe, cmd = build_kv_batch(work)
    batch = {}
    for r in range(a.rounds):
        for np in (3, 4):
            v = run_kv_batch(exe, np, os.path.join(work, "batch-store"), a.keys, env)
            for k in ("store_put_keys_per_s", "store_get_keys_per_s", "table_put_keys_per_s",
                      "table_get_keys_per_s"):
                batch.setdefault((np, k), []).append(v[k])
    shutil.rmtree(work, ignore_errors=True)
    report = {"gateway": {"%s P=%d %s %s" % k: spread(v) for k, v in res.items()},
              "batch": {"np%d %s" % k: spread(v) for k, v in batch.items()},
              "requests": a.requests, "clients": a.clients, "rounds": a.rounds,
              "keys": a.keys, "kv_batch_build": " ".join(cmd)}
    print("%-10s %-3s %-4s %28s %24s %24s" % ("system", "P", "op", "requests/s median (min-max)",
                                              "p50 ms", "p99 ms"))
    for (name, pipe, t, k), v in sorted(res.items()):
        if k != "rps":
            continue
        s, p50, p99 = spread(v), spread(res[(name, pipe, t, "p50")]), spread(res[(name, pipe, t, "p99")])
        print("%-10s %-3d %-4s %10.0f (%.0f-%.0f) %10.3f (%.3f-%.3f) %10.3f (%.3f-%.3f)"
              % (name, pipe, t, s["median"], s["min"], s["max"], p50["median"], p50["min"],
                 p50["max"], p99["median"], p99["min"], p99["max"]))
    for (np, k), v in sorted(batch.items()):
        s = spread(v)
        print("batch np%d %-22s %12.0f (%.0f-%.0f)" % (np, k, s["median"], s["min"], s["max"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=1)


# ------------------------------------------------------------------ throughput through a failure

def series(port, seconds, events):
    """redis-benchmark -t set for `seconds`, its 250 ms progress lines as (t, rps); events:
    (at_seconds, fn) run on the way."""
    p = subprocess.Popen(["redis-benchmark", "-p", str(port), "-t", "set", "-n", "100000000",
                          "-c", "50", "-r", "100000"], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
    t0 = time.time()
    out = []
    os.set_blocking(p.stdout.fileno(), False)
    buf = b""
    pending = sorted(events, key=lambda e: e[0])
    while time.time() - t0 < seconds:
        while pending and time.time() - t0 >= pending[0][0]:
            pending.pop(0)[1]()
        time.sleep(0.05)
        try:
            chunk = p.stdout.read()
        except BlockingIOError:
            chunk = None
        if chunk:
            buf += chunk
            parts = buf.replace(b"\r", b"\n").split(b"\n")
            buf = parts.pop()
            for line in parts:
                line = line.decode(errors="replace")
                if "rps=" in line:
                    try:
                        out.append((round(time.time() - t0, 2),
                                    float(line.split("rps=")[1].split()[0])))
                    except ValueError:
                        pass
    p.send_signal(signal.SIGINT)
    p.wait(timeout=10)
    return out


def hints(ports):
    total = 0
    for port in ports:
        r = subprocess.run(["redis-cli", "-p", str(port), "INFO", "loom"], capture_output=True,
                           text=True, timeout=10)
        for line in r.stdout.splitlines():
            if line.startswith("loom_hints:"):
                total += int(line.split(":")[1])
    return total


def phase_stats(pts, lo, hi):
    xs = [r for t, r in pts if lo <= t < hi and r > 0]
    return spread(xs) if xs else None


def failure(a):
    env = one_node_env(OMP_NUM_THREADS="1", LOOM_BENCH_FT="1" if a.failure == "kill" else "")
    work = tempfile.mkdtemp(prefix="loom-bench-kvfail-")
    svc = loom_service(a.failure, a.loom, 5, os.path.join(work, "store"), env=env,
                       extra=["--timeout-ms", "300"])
    try:
        if a.failure == "kill":
            pts = series(svc.port, a.seconds,
                         [(3.0, lambda: os.kill(svc.pids[3], signal.SIGKILL))])
            report = {"series": pts, "before": phase_stats(pts, 1, 3),
                      "first_second_after": phase_stats(pts, 3, 4),
                      "after": phase_stats(pts, 4, a.seconds)}
        else:
            ports = [svc.port + i for i in range(3)]
            cont = {}

            def watch():
                """From SIGCONT on, until every stand-in's hints are home (under the load)."""
                while hints(ports) and time.time() - cont["t"] < 60:
                    time.sleep(0.05)
                cont["drained"] = time.time() - cont["t"]

            def resume():
                os.kill(svc.pids[4], signal.SIGCONT)
                cont["t"] = time.time()
                cont["thread"] = threading.Thread(target=watch)
                cont["thread"].start()
            pts = series(svc.port, a.seconds,
                         [(3.0, lambda: os.kill(svc.pids[4], signal.SIGSTOP)), (6.0, resume)])
            cont["thread"].join()
            report = {"series": pts, "before": phase_stats(pts, 1, 3),
                      "stopped": phase_stats(pts, 3, 6), "after": phase_stats(pts, 6, a.seconds),
                      "hints_left": hints(ports),
                      "hints_drained_s_after_continue": round(cont["drained"], 2)}
    finally:
        svc.stop()
        shutil.rmtree(work, ignore_errors=True)
    r = dict(report)
    r.pop("series")
    print(a.failure, json.dumps(r))
    print("series", " ".join("%.2f:%d" % (t, x) for t, x in report["series"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--requests", type=int, default=100000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--keys", type=int, default=1000000)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--failure", choices=("kill", "stop"))
    ap.add_argument("--loom", default=None)
    ap.add_argument("--json")
    a = ap.parse_args()
    if not a.loom:
        a.loom = os.path.join(ROOT, "build", "ulfm" if a.failure == "kill" else "release", "loom")
    failure(a) if a.failure else throughput(a)


if __name__ == "__main__":
    main()
