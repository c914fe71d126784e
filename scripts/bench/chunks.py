#!/usr/bin/python3
"""`loom fs` (the chunk store) against a plain copy and an HDF5 collective write of the same
file on the same disk, and the time to heal a store after a holder is lost.

    /usr/bin/python3 scripts/bench/chunks.py [--size 2G] [--rounds 5]
        [--dir /tmp/loom-bench-chunks] [--loom build/release/loom] [--np 3]
        [--replication 2] [--chunk-size 64M] [--drop-caches auto|never] [--json FILE]

The input (--size random bytes, os.urandom in 64 MiB blocks) is made once in --dir and kept
while its size is right; the copies, the stores and the HDF5 file live in --dir too (one disk).
Every round runs every system once, in this order (the systems alternate within one run;
never compare figures of different runs):

  cp + fsync      `cp DATA COPY`, then open COPY and os.fsync it, timed together. `loom fs put`
                  fdatasyncs every replica before it commits, and get its output: this is the
                  fair baseline (the disk's limit for one copy).
  cp              `cp DATA COPY` alone (the copy may still be in the page cache, unwritten).
  put R=<r>       `loom fs put DATA /f --replication R` into a fresh store (removed before,
                  outside the timing): R × size bytes written and synced.
  get             `loom fs get /f OUT` from that store (OUT written by the holders, synced).
  heal            remove the holder directory of slot 1 (STORE/holders/<host>-1), then
                  `loom fs rebalance`: with 2 holders and R=2 every chunk lost a replica and is
                  copied again to the returning, empty holder, so the bytes healed = the size
                  (counted from the holder's directory afterwards).
  put R=1         the same put with one replica: the bytes written equal cp's.
  hdf5            scripts/bench/h5_write.c (built here with h5pcc): every one of the --np
                  ranks reads its third of DATA and writes it collectively (MPI-IO) into one
                  dataset, then H5Fflush; then the script fsyncs the file, inside the timing.

Loom and HDF5 run as `mpirun -n NP --oversubscribe` with scripts/one-node.env's settings (ob1,
root allowed): with --np 3, master + 2 holders. Their seconds are the whole command's (MPI
start-up included, as for cp the process start); "in-job" is Loom's own total phase (--json)
and h5_write's own seconds plus the script's fsync.

Page cache: the script syncs before every timed step (outside the timing) so that no step
pays for an earlier one's writes. With --drop-caches auto it tries once to write 3 to
/proc/sys/vm/drop_caches; if that works every timed step starts with a dropped cache, then
runs the step's programs once untimed (--version), so that every system reads its input from
the disk with its programs cached. Otherwise (or with never) the input is read once before the
rounds and is in the page cache for every system alike. The output says which.

Prints the machine, the commit, the exact commands and, per system, the median and min–max of
the seconds and of the throughput (GB = 10^9 bytes) as a markdown table; --json FILE also
writes every repetition.
"""
import argparse, glob, json, os, platform, shutil, statistics, subprocess, sys, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from one_node import ENV_FILE, one_node_env  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
ENV = one_node_env()
BLOCK = 64 << 20
GB = 1e9


def parse_size(text):
    """'2G', '256M', '64K', '1048576' -> bytes (binary multiples, as Loom's SIZE options)."""
    t = text.strip().upper().rstrip("B").rstrip("I")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(t[-1:], 1)
    return int(float(t[:-1] if mult > 1 else t) * mult)


def sh(cmd):
    """Output of a context query, '' when the tool is missing (context never stops a run)."""
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        return (r.stdout or r.stderr).strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def loadavg():
    return open("/proc/loadavg").read().split()[0]


def run(cmd, env=None):
    """Run cmd; its wall seconds and stdout. Any failure stops the benchmark."""
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=7200)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit("FAIL (exit %d): %s\n%s%s" % (p.returncode, " ".join(cmd),
                                                       p.stdout[-2000:], p.stderr[-2000:]))
    return wall, p.stdout


def fsync_path(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def make_input(path, size):
    if os.path.isfile(path) and os.path.getsize(path) == size:
        return "kept (%s, %d bytes)" % (path, size)
    t = time.perf_counter()
    with open(path + ".tmp", "wb") as f:
        left = size
        while left > 0:
            n = min(BLOCK, left)
            f.write(os.urandom(n))
            left -= n
        f.flush()
        os.fsync(f.fileno())
    os.replace(path + ".tmp", path)
    return "made (%s, %d bytes of os.urandom in 64 MiB blocks, %.1f s)" % (
        path, size, time.perf_counter() - t)


def drop_caches():
    """Sync, then drop the page cache; False when not allowed (a container, not root)."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def build_h5(work):
    """Compile h5_write.c into the work dir; the binary and the command used."""
    src, exe = os.path.join(HERE, "h5_write.c"), os.path.join(work, "h5_write")
    h5pcc = shutil.which("h5pcc") or shutil.which("h5pcc.openmpi")
    if h5pcc:
        cmd = [h5pcc, "-O2", "-o", exe, src]
    else:  # Debian's libhdf5-openmpi-dev without the wrapper
        cmd = ["mpicc", "-O2", "-I/usr/include/hdf5/openmpi", "-o", exe, src,
               "-L/usr/lib/x86_64-linux-gnu/hdf5/openmpi", "-lhdf5"]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=work)  # h5pcc leaves its .o
    if p.returncode != 0:
        raise SystemExit("FAIL: %s\n%s" % (" ".join(cmd), p.stderr))
    return exe, cmd


def holder_bytes(store, slot):
    d = glob.glob(os.path.join(store, "holders", "*-%d" % slot))
    if len(d) != 1:
        raise SystemExit("FAIL: expected one holder directory of slot %d in %s/holders, found %s"
                         % (slot, store, d))
    return d[0], sum(os.path.getsize(c) for c in glob.glob(os.path.join(d[0], "*.chunk")))


def spread(xs):
    return "%.3g (%.3g–%.3g)" % (statistics.median(xs), min(xs), max(xs))


def machine(work):
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")), "?")
    mem = next((int(l.split()[1]) * 1024 for l in open("/proc/meminfo")
                if l.startswith("MemTotal")), 0)
    return {"host": platform.node(), "cpus": os.cpu_count(), "cpu": cpu,
            "memory_gib": round(mem / 2**30, 1), "kernel": platform.release(),
            "df": sh(["df", "-hT", work]),
            "commit": sh(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]),
            "dirty": bool(sh(["git", "-C", ROOT, "status", "--porcelain",
                              "--untracked-files=no"])),
            "mpi": (sh(["ompi_info", "--version"]).splitlines() or [""])[0],
            "hdf5": sh(["dpkg-query", "-W", "-f=${Version}", "libhdf5-openmpi-dev"])}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="2G", help="input bytes (K/M/G suffixes: binary)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--dir", default="/tmp/loom-bench-chunks",
                    help="work dir: input, copies, stores, HDF5 file (one disk)")
    ap.add_argument("--loom", default=os.path.join(ROOT, "build", "release", "loom"))
    ap.add_argument("--np", type=int, default=3, help="ranks of Loom and HDF5 (master + NP-1 holders)")
    ap.add_argument("--replication", type=int, default=2, help="replicas of the main put")
    ap.add_argument("--chunk-size", default="64M")
    ap.add_argument("--drop-caches", choices=("auto", "never"), default="auto")
    ap.add_argument("--json", metavar="FILE", help="also write every repetition here")
    a = ap.parse_args()
    size = parse_size(a.size)
    if a.np < 2:
        raise SystemExit("--np must be >= 2 (master + holders)")
    holders = a.np - 1
    if min(a.replication, holders) < 2:
        raise SystemExit("--replication and --np - 1 must be >= 2: heal needs a replica left")
    loom = os.path.abspath(a.loom)
    work = os.path.abspath(a.dir)
    os.makedirs(work, exist_ok=True)
    if not os.access(loom, os.X_OK):
        raise SystemExit("no Loom binary at %s (build it: cmake --preset release && "
                         "cmake --build build/release)" % loom)
    # at most at once: the input, a store of R copies and get's output
    need = size * (2 + max(a.replication, 1))
    free = shutil.disk_usage(work).free + (os.path.getsize(os.path.join(work, "data"))
                                           if os.path.isfile(os.path.join(work, "data")) else 0)
    if free < need * 1.1:
        raise SystemExit("%s: %.1f GB free, the benchmark needs about %.1f GB"
                         % (work, free / GB, need * 1.1 / GB))

    ctx = machine(work)
    ctx["load_start"] = loadavg()
    data = os.path.join(work, "data")
    copy = os.path.join(work, "copy")
    out = os.path.join(work, "get.out")
    h5 = os.path.join(work, "out.h5")
    store = os.path.join(work, "store")
    store1 = os.path.join(work, "store-r1")
    for p in (copy, out, h5, store, store1):  # leftovers of an interrupted run
        remove(p)
    input_note = make_input(data, size)
    h5exe, h5build = build_h5(work)
    cold = a.drop_caches == "auto" and drop_caches()
    if not cold:  # read the input once: every system then finds it in the page cache
        with open(data, "rb") as f:
            while f.read(BLOCK):
                pass

    mpirun = ["mpirun", "-n", str(a.np), "--oversubscribe"]
    fs = lambda *args: mpirun + [loom, "fs"] + list(args) + ["--quiet", "--json"]  # noqa: E731
    cmds = {
        "cp+fsync": ["cp", data, copy],
        "cp": ["cp", data, copy],
        "put": fs("put", data, "/f", "--store", store, "--replication", str(a.replication),
                  "--chunk-size", a.chunk_size),
        "get": fs("get", "/f", out, "--store", store),
        "heal": fs("rebalance", "--store", store),
        "put1": fs("put", data, "/f", "--store", store1, "--replication", "1",
                   "--chunk-size", a.chunk_size),
        "hdf5": mpirun + [h5exe, data, h5],
    }
    written = {"cp+fsync": size, "cp": size, "put": size * min(a.replication, holders),
               "get": size, "heal": None, "put1": size, "hdf5": size}
    label = {"cp+fsync": "cp + fsync of the copy (the limit)",
             "cp": "cp, no sync",
             "put": "loom fs put, R=%d" % min(a.replication, holders),
             "get": "loom fs get (from the R=%d store)" % min(a.replication, holders),
             "put1": "loom fs put, R=1",
             "hdf5": "HDF5 collective write + fsync, %d ranks" % a.np,
             "heal": "heal: holder 1 lost, `loom fs rebalance`"}
    warm = {k: ["cp", "--version"] if k.startswith("cp") else
            mpirun + [h5exe] if k == "hdf5" else mpirun + [loom, "--version"] for k in cmds}
    wall = {k: [] for k in cmds}
    injob = {k: [] for k in cmds}
    healed = []

    def step(key, before=None):
        """One timed step: cleanup (untimed), sync and maybe drop caches, then the command."""
        if before:
            before()
        if cold:
            drop_caches()
            # the programs back into the cache (not the input): a cold mpirun and libmpi would
            # cost Loom and HDF5 a start-up that cp does not pay
            subprocess.run(warm[key], env=ENV, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        else:
            os.sync()
        if key == "cp+fsync":
            t = time.perf_counter()
            run(cmds[key])
            fsync_path(copy)
            wall[key].append(time.perf_counter() - t)
            return
        secs, stdout = run(cmds[key], env=None if key.startswith("cp") else ENV)
        if key == "hdf5":
            t = time.perf_counter()
            fsync_path(h5)
            sync = time.perf_counter() - t
            wall[key].append(secs + sync)
            own = [l for l in stdout.splitlines() if l.startswith("seconds ")]
            injob[key].append(float(own[-1].split()[1]) + sync)
        else:
            wall[key].append(secs)
        if key not in ("cp", "hdf5"):
            injob[key].append(json.loads(stdout.strip().splitlines()[-1])
                              ["phases"]["total"]["max_s"])

    for r in range(a.rounds):
        print("round %d/%d (load %s)" % (r + 1, a.rounds, loadavg()), file=sys.stderr, flush=True)
        step("cp+fsync", lambda: remove(copy))
        step("cp", lambda: remove(copy))
        remove(copy)
        step("put", lambda: remove(store))
        step("get", lambda: remove(out))
        if os.path.getsize(out) != size or (r == 0 and subprocess.run(
                ["cmp", "-s", data, out]).returncode != 0):
            raise SystemExit("FAIL: %s differs from %s" % (out, data))
        remove(out)
        step("heal", lambda: shutil.rmtree(holder_bytes(store, 1)[0]))
        healed.append(holder_bytes(store, 1)[1])
        if r == 0:  # untimed: the healed store verifies (every replica's CRC32C)
            p = subprocess.run(mpirun + [loom, "fs", "fsck", "--store", store], env=ENV,
                               capture_output=True, text=True)
            if p.returncode != 0:
                raise SystemExit("FAIL: fsck after heal:\n" + p.stdout + p.stderr)
        remove(store)
        step("put1", lambda: remove(store1))
        remove(store1)
        step("hdf5", lambda: remove(h5))
        if os.path.getsize(h5) < size:
            raise SystemExit("FAIL: %s is smaller than the input" % h5)
        remove(h5)
    ctx["load_end"] = loadavg()

    # ------------------------------------------------------------------ report
    print("## loom fs: put/get against cp and HDF5, heal\n")
    print("- machine: %s, %d CPUs (%s), %.1f GiB memory, kernel %s; %s; HDF5 %s" % (
        ctx["host"], ctx["cpus"], ctx["cpu"], ctx["memory_gib"], ctx["kernel"], ctx["mpi"],
        ctx["hdf5"] or "?"))
    print("- disk of %s:\n\n```\n%s\n```\n" % (work, ctx["df"]))
    print("- commit %s%s; load average %s at start, %s at end" % (
        ctx["commit"], " (dirty: uncommitted changes)" if ctx["dirty"] else "",
        ctx["load_start"], ctx["load_end"]))
    print("- input: %d bytes (%.3f GB), %s" % (size, size / GB, input_note))
    print("- page cache: %s" % (
        "dropped (sync; echo 3 > /proc/sys/vm/drop_caches) before every timed step, then the "
        "step's programs run once untimed (`cp --version`, `mpirun ... loom --version`, "
        "`mpirun ... h5_write`): every system reads its input (the file, or the store's "
        "replicas for get and heal) from the disk, with its programs cached" if cold else
        "not dropped (%s): the input was read once before the rounds and is in the page "
        "cache for every system alike; every timed step starts after a sync" %
        ("--drop-caches never" if a.drop_caches == "never" else
         "/proc/sys/vm/drop_caches not writable")))
    print("- %d rounds; in each, every system once in the order of the table (alternating); "
          "median (min–max); GB = 10^9 bytes" % a.rounds)
    print("- Loom and HDF5: `mpirun -n %d --oversubscribe` = master + %d holders (HDF5: every "
          "rank writes 1/%d), environment %s: %s" % (
              a.np, holders, a.np, os.path.relpath(ENV_FILE, ROOT),
              " ".join("%s=%s" % (k, ENV[k]) for k in sorted(ENV) if k.startswith("OMPI_"))))
    print("- chunk size %s; holders %d" % (a.chunk_size, holders))
    print("\nCommands (seconds = the whole command; `in-job` = Loom's total phase from --json, "
          "h5_write's own seconds + the fsync):\n")
    print("```")
    print("HDF5 build: " + " ".join(h5build))
    for k in cmds:
        extra = {"cp+fsync": "   # then os.fsync(copy), timed",
                 "hdf5": "   # then os.fsync(out.h5), timed",
                 "heal": "   # after rm -r %s/holders/<host>-1" % store}.get(k, "")
        print("%-9s %s%s" % (k + ":", " ".join(cmds[k]), extra))
    print("```\n")
    print("| system | seconds | in-job s | GB/s of the file | bytes written | GB/s written |")
    print("|---|---|---|---|---|---|")
    for k in ("cp+fsync", "cp", "put", "put1", "get", "hdf5"):
        ts = wall[k]
        rate = [size / t / GB for t in ts]
        wrate = [written[k] / t / GB for t in ts]
        print("| %s | %s | %s | %s | %.3f GB (%s) | %s |" % (
            label[k], spread(ts), spread(injob[k]) if injob[k] else "—", spread(rate),
            written[k] / GB, "%d×" % (written[k] // size) if written[k] % size == 0 else "",
            spread(wrate)))
    base = statistics.median(wall["cp+fsync"])
    print("\n| heal | seconds | in-job s | bytes healed | s/GB healed | GB/s healed |")
    print("|---|---|---|---|---|---|")
    per_gb = [t / (b / GB) for t, b in zip(wall["heal"], healed)] if all(healed) else []
    print("| %s | %s | %s | %s | %s | %s |" % (
        label["heal"], spread(wall["heal"]), spread(injob["heal"]),
        "%.3f GB%s" % (statistics.median(healed) / GB,
                       " (= the file)" if set(healed) == {size} else
                       " (min %d, max %d)" % (min(healed), max(healed))),
        spread(per_gb) if per_gb else "—",
        spread([b / t / GB for t, b in zip(wall["heal"], healed)]) if per_gb else "—"))
    print("\nRatios of medians against cp + fsync (%.3g s): put R=%d %.2f×, put R=1 %.2f×, "
          "get %.2f×, HDF5 %.2f×, heal %.2f×." % (
              base, min(a.replication, holders), statistics.median(wall["put"]) / base,
              statistics.median(wall["put1"]) / base, statistics.median(wall["get"]) / base,
              statistics.median(wall["hdf5"]) / base, statistics.median(wall["heal"]) / base))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"context": ctx, "size": size, "rounds": a.rounds, "cold_cache": cold,
                       "np": a.np, "replication": a.replication, "chunk_size": a.chunk_size,
                       "commands": cmds, "written": written, "seconds": wall, "in_job": injob,
                       "healed_bytes": healed}, f, indent=1)
        print("\nevery repetition: %s" % a.json)


if __name__ == "__main__":
    main()
