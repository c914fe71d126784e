#!/usr/bin/python3
"""`loom wordcount` reading its input from the chunk store (store:/PATH) against reading the
same bytes from a plain file.

    /usr/bin/python3 scripts/bench/store_wordcount.py [--rounds 5] [--np 3] [--replication 2]
        [--corpus /tmp/loom-bench-wc/corpus] [--dir /tmp/loom-bench-storewc]
        [--loom build/release/loom] [--chunk-size 64M] [--drop-caches auto|always|never]
        [--json FILE]

The corpus is the text-*.txt files of --corpus (scripts/bench/wordcount.sh makes them: 1.1 GB
of the Linux source). When there are none, about 1 GiB of text is made there from
/usr/share/common-licenses/* and /usr/share/doc/*/copyright, repeated, in 128 MiB files.
The files are concatenated, in name order, into ONE file, --dir/corpus.txt (kept while its
size is the corpus's), so both systems read the same bytes of one file. That file is put
once, untimed, into a fresh store (--dir/store, `loom fs put` at --np ranks, --chunk-size,
--replication). Every round then runs, in this order (the systems alternate within one run;
never compare figures of different runs):

  plain file     `mpirun -n NP loom wordcount DIR/corpus.txt --out DIR/out-plain --json --quiet`
                 (map tasks of the default split size, 32 MiB)
  store R=<r>    `mpirun -n NP loom wordcount store:/corpus.txt --store DIR/store
                  --out DIR/out-store --json --quiet` (a map task per chunk, handed to a
                 worker that keeps the chunk when there is one)

Each output is removed before its run (untimed). In the first round the two outputs are
checked to hold the same lines (every part file's lines, sorted). After the rounds the store
is removed, a fresh one is put with --replication 1 (DIR/store-r1, untimed) and the store
system runs once more against it: with one holder per chunk the local fraction shows how
often the scheduler found a task whose chunk the asking worker keeps (its output is checked
against the plain file's too).

Loom runs as `mpirun -n NP --oversubscribe` with scripts/one-node.env's settings
(scripts/one_node.py) and OMP_NUM_THREADS=1 unless the caller set it (as wordcount.sh): with
--np 3, master + 2 workers × 1 thread, which are also the store's 2 holders.

Page cache, as scripts/bench/chunks.py: the script syncs before every timed step. With
--drop-caches auto it tries to write 3 to /proc/sys/vm/drop_caches; if that works every
timed step starts with a dropped cache and then runs `mpirun ... loom --version` once
untimed, so both systems read their input (the file, or the store's chunk files) from the
disk with the programs cached. --drop-caches always stops when the cache cannot be dropped;
with never (or when auto cannot drop) the file and every chunk file are read once before the
rounds and both systems find their input in the page cache.

Prints the machine, the commit, the exact commands and, per system, the median and min–max
of the whole command's seconds, the job's own total, plan and map phases (max over ranks,
--json), MB/s of the input (MB = 10^6 bytes) per whole command, the map tasks and, for the
store, store_local_fraction, as a markdown table; --json FILE also writes every repetition.
"""
import argparse, glob, hashlib, json, os, shutil, statistics, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ left in scripts/bench by the import
sys.path.insert(0, HERE)
import chunks  # noqa: E402  (its helpers: run, remove, drop_caches, spread, machine, ...)
from chunks import ROOT, BLOCK, ENV_FILE, parse_size, run, remove, drop_caches, spread  # noqa: E402

ENV = dict(chunks.ENV)
ENV.setdefault("OMP_NUM_THREADS", "1")
MB = 1e6
GB = 1e9
TEXT_SOURCES = ["/usr/share/common-licenses/*", "/usr/share/doc/*/copyright"]


def make_corpus(corpus, want=1 << 30, part=128 << 20):
    """text-NN.txt files of about `want` bytes in `corpus`, from the licence texts, repeated."""
    texts = []
    for pattern in TEXT_SOURCES:
        for p in sorted(glob.glob(pattern)):
            if not os.path.isfile(p):
                continue
            try:
                data = open(p, "rb").read()
            except OSError:
                continue
            if not data or b"\0" in data:
                continue
            texts.append(data if data.endswith(b"\n") else data + b"\n")
    if not texts:
        raise SystemExit("no text under %s to make a corpus from; pass --corpus"
                         % " ".join(TEXT_SOURCES))
    one = b"".join(texts)
    tmp = corpus.rstrip("/") + ".tmp"
    remove(tmp)
    os.makedirs(tmp)
    total, n, t = 0, 0, time.perf_counter()
    while total < want:
        with open(os.path.join(tmp, "text-%02d.txt" % n), "wb") as f:
            size = 0
            while size < part and total < want:
                f.write(one)
                size += len(one)
                total += len(one)
        n += 1
    os.makedirs(os.path.dirname(os.path.abspath(corpus)), exist_ok=True)
    if os.path.isdir(corpus):  # present but without text-*.txt
        for p in os.listdir(tmp):
            os.replace(os.path.join(tmp, p), os.path.join(corpus, p))
        os.rmdir(tmp)
    else:
        os.replace(tmp, corpus)
    return "made here: %d texts (%d bytes) of %s repeated into %d files, %.1f s" % (
        len(texts), len(one), " and ".join(TEXT_SOURCES), n, time.perf_counter() - t)


def concatenate(files, path, size):
    if os.path.isfile(path) and os.path.getsize(path) == size:
        return "kept (%d bytes)" % size
    t = time.perf_counter()
    with open(path + ".tmp", "wb") as out:
        for p in files:
            with open(p, "rb") as f:
                shutil.copyfileobj(f, out, BLOCK)
        out.flush()
        os.fsync(out.fileno())
    os.replace(path + ".tmp", path)
    return "made (cat of the %d files, %.1f s)" % (len(files), time.perf_counter() - t)


def read_through(paths):
    for p in paths:
        with open(p, "rb") as f:
            while f.read(BLOCK):
                pass


def chunk_files(store):
    return sorted(glob.glob(os.path.join(store, "holders", "*", "*.chunk")))


def per_holder(store):
    """{holder directory name: number of chunk replicas}."""
    out = {}
    for d in sorted(glob.glob(os.path.join(store, "holders", "*"))):
        if os.path.isdir(d):
            out[os.path.basename(d)] = len(glob.glob(os.path.join(d, "*.chunk")))
    return out


def output_digest(out):
    """(lines, sha256 of the sorted lines of every part file): equal digests = same lines."""
    lines = []
    for p in sorted(glob.glob(os.path.join(out, "part-*"))):
        with open(p, "rb") as f:
            lines.extend(f.read().splitlines())
    if not lines:
        raise SystemExit("FAIL: %s has no part files or no lines" % out)
    lines.sort()
    h = hashlib.sha256()
    for l in lines:
        h.update(l)
        h.update(b"\n")
    return len(lines), h.hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", default="/tmp/loom-bench-wc/corpus",
                    help="directory of text-*.txt files (made when it has none)")
    ap.add_argument("--dir", default="/tmp/loom-bench-storewc",
                    help="work dir: the one input file, the stores, the outputs (one disk)")
    ap.add_argument("--np", type=int, default=3, help="ranks (master + NP-1 workers/holders)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--replication", type=int, default=2, help="replicas of the main store")
    ap.add_argument("--chunk-size", default="64M")
    ap.add_argument("--loom", default=os.path.join(ROOT, "build", "release", "loom"))
    ap.add_argument("--drop-caches", choices=("auto", "always", "never"), default="auto")
    ap.add_argument("--json", metavar="FILE", help="also write every repetition here")
    a = ap.parse_args()
    if a.np < 2:
        raise SystemExit("--np must be >= 2 (master + workers)")
    if a.rounds < 1 or a.replication < 1:
        raise SystemExit("--rounds and --replication must be >= 1")
    holders = a.np - 1
    repl = min(a.replication, holders)
    loom = os.path.abspath(a.loom)
    work = os.path.abspath(a.dir)
    corpus = os.path.abspath(a.corpus)
    if not os.access(loom, os.X_OK):
        raise SystemExit("no Loom binary at %s (build it: cmake --preset release && "
                         "cmake --build build/release)" % loom)
    os.makedirs(work, exist_ok=True)

    files = sorted(glob.glob(os.path.join(corpus, "text-*.txt")))
    corpus_note = "kept"
    if not files:
        corpus_note = make_corpus(corpus)
        files = sorted(glob.glob(os.path.join(corpus, "text-*.txt")))
    size = sum(os.path.getsize(p) for p in files)
    data = os.path.join(work, "corpus.txt")
    store = os.path.join(work, "store")
    store1 = os.path.join(work, "store-r1")
    out_a = os.path.join(work, "out-plain")
    out_b = os.path.join(work, "out-store")
    # at most at once: the file, a store of R copies and the outputs (small: distinct words)
    need = size * (1 + repl) * 1.1
    free = shutil.disk_usage(work).free + (os.path.getsize(data) if os.path.isfile(data) else 0)
    if free < need:
        raise SystemExit("%s: %.1f GB free, the benchmark needs about %.1f GB"
                         % (work, free / GB, need / GB))

    ctx = chunks.machine(work)
    ctx["loom"] = (chunks.sh([loom, "--version"]).splitlines() or [""])[0]
    ctx["load_start"] = chunks.loadavg()
    for p in (store, store1, out_a, out_b):  # leftovers of an interrupted run
        remove(p)
    input_note = concatenate(files, data, size)

    mpirun = ["mpirun", "-n", str(a.np), "--oversubscribe"]

    def put_cmd(st, r):
        return mpirun + [loom, "fs", "put", data, "/corpus.txt", "--store", st,
                         "--replication", str(r), "--chunk-size", a.chunk_size, "--quiet", "--json"]

    def put(st, r):
        """An untimed put into a fresh store: its seconds and replicas per holder."""
        remove(st)
        os.sync()
        secs, _ = run(put_cmd(st, r), env=ENV)
        os.sync()
        return secs, per_holder(st)

    cmds = {
        "plain": mpirun + [loom, "wordcount", data, "--out", out_a, "--json", "--quiet"],
        "store": mpirun + [loom, "wordcount", "store:/corpus.txt", "--store", store,
                           "--out", out_b, "--json", "--quiet"],
        "store1": mpirun + [loom, "wordcount", "store:/corpus.txt", "--store", store1,
                            "--out", out_b, "--json", "--quiet"],
    }
    outs = {"plain": out_a, "store": out_b, "store1": out_b}
    warm = mpirun + [loom, "--version"]
    label = {"plain": "plain file",
             "store": "store, R=%d" % repl,
             "store1": "store, R=1 (one run)"}

    put_secs, put_holders = put(store, a.replication)
    nchunks = len(chunk_files(store)) // repl
    cold = a.drop_caches != "never" and drop_caches()
    if a.drop_caches == "always" and not cold:
        raise SystemExit("--drop-caches always: /proc/sys/vm/drop_caches is not writable here")
    if not cold:  # both inputs once into the page cache: the file and every chunk replica
        read_through([data] + chunk_files(store))

    keys = ("plain", "store", "store1")
    wall = {k: [] for k in keys}
    summ = {k: [] for k in keys}

    def step(key):
        remove(outs[key])
        if cold:
            drop_caches()
            subprocess.run(warm, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        else:
            os.sync()
        secs, stdout = run(cmds[key], env=ENV)
        s = json.loads(stdout.strip().splitlines()[-1])
        if s.get("input_bytes") != size:
            raise SystemExit("FAIL: %s read %s bytes, the file has %d"
                             % (label[key], s.get("input_bytes"), size))
        wall[key].append(secs)
        summ[key].append(s)

    digests = {}
    for r in range(a.rounds):
        print("round %d/%d (load %s)" % (r + 1, a.rounds, chunks.loadavg()), file=sys.stderr,
              flush=True)
        step("plain")
        if r == 0:
            digests["plain"] = output_digest(out_a)
        step("store")
        if r == 0:
            digests["store"] = output_digest(out_b)
            if digests["store"] != digests["plain"]:
                raise SystemExit("FAIL: the outputs differ: plain %s lines %s, store %s lines %s"
                                 % (digests["plain"] + digests["store"]))
    remove(store)
    print("replication 1 (load %s)" % chunks.loadavg(), file=sys.stderr, flush=True)
    put1_secs, put1_holders = put(store1, 1)
    if not cold:
        read_through(chunk_files(store1))
    step("store1")
    digests["store1"] = output_digest(out_b)
    if digests["store1"] != digests["plain"]:
        raise SystemExit("FAIL: the R=1 store's output differs from the plain file's")
    ctx["load_end"] = chunks.loadavg()
    for p in (store1, out_a, out_b):
        remove(p)

    # ------------------------------------------------------------------ report
    def col(key, f):
        return [f(s) for s in summ[key]]

    def phase(name):
        return lambda s: s["phases"].get(name, {}).get("max_s", float("nan"))

    print("## loom wordcount: store:/PATH against a plain file\n")
    print("- machine: %s, %d CPUs (%s), %.1f GiB memory, kernel %s; %s; %s" % (
        ctx["host"], ctx["cpus"], ctx["cpu"], ctx["memory_gib"], ctx["kernel"], ctx["mpi"],
        ctx["loom"]))
    print("- disk of %s:\n\n```\n%s\n```\n" % (work, ctx["df"]))
    print("- commit %s%s; load average %s at start, %s at end" % (
        ctx["commit"], " (dirty: uncommitted changes)" if ctx["dirty"] else "",
        ctx["load_start"], ctx["load_end"]))
    print("- corpus: %d files %s/text-*.txt, %d bytes (%.3f GB), %s" % (
        len(files), corpus, size, size / GB, corpus_note))
    print("- input: ONE file %s, their concatenation in name order, %s" % (data, input_note))
    print("- store: `loom fs put` (untimed) into a fresh store, chunk size %s: %d chunks, "
          "R=%d, replicas per holder %s, %.1f s; the R=1 store: %s, %.1f s" % (
              a.chunk_size, nchunks, repl,
              ", ".join("%s %d" % kv for kv in put_holders.items()), put_secs,
              ", ".join("%s %d" % kv for kv in put1_holders.items()), put1_secs))
    print("- outputs: the same lines (sorted part files) in round 1 and for the R=1 run: "
          "%d lines, sha256 %s" % (digests["plain"][0], digests["plain"][1][:16]))
    print("- page cache: %s" % (
        "dropped (sync; echo 3 > /proc/sys/vm/drop_caches) before every timed step, then "
        "`mpirun ... loom --version` once untimed: both systems read their input (the file, "
        "or the store's chunk files) from the disk, with the programs cached" if cold else
        "not dropped (%s): the file and every chunk file were read once before the rounds "
        "and are in the page cache for both systems alike; every timed step starts after a "
        "sync" % ("--drop-caches never" if a.drop_caches == "never" else
                  "/proc/sys/vm/drop_caches not writable")))
    print("- %d rounds; in each, plain file then store (alternating); median (min–max); "
          "MB = 10^6 bytes; the R=1 store: one run after the rounds" % a.rounds)
    print("- `mpirun -n %d --oversubscribe` = master + %d workers (the store's holders), "
          "environment %s + OMP_NUM_THREADS: %s" % (
              a.np, holders, os.path.relpath(ENV_FILE, ROOT),
              " ".join("%s=%s" % (k, ENV[k]) for k in sorted(ENV)
                       if k.startswith("OMPI_") or k == "OMP_NUM_THREADS")))
    print("\nCommands (seconds = the whole command, MPI start-up included; in-job, plan and "
          "map = the phases' max_s over the ranks from --json):\n")
    print("```")
    print("%-8s %s" % ("put:", " ".join(put_cmd(store, a.replication))))
    print("%-8s %s" % ("put R=1:", " ".join(put_cmd(store1, 1))))
    for k in keys:
        print("%-8s %s" % (k + ":", " ".join(cmds[k])))
    print("```\n")
    print("| system | seconds | in-job s | plan s | map s | MB/s (whole command) | map tasks "
          "| local fraction |")
    print("|---|---|---|---|---|---|---|---|")
    for k in keys:
        ts = wall[k]
        tasks = sorted(set(col(k, lambda s: s.get("map_tasks"))))
        frac = col(k, lambda s: s.get("store_local_fraction"))
        print("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            label[k], spread(ts), spread(col(k, phase("total"))), spread(col(k, phase("plan"))),
            spread(col(k, phase("map"))), spread([size / t / MB for t in ts]),
            "/".join(str(t) for t in tasks),
            "—" if k == "plain" else "%s (local %d, remote %d)" % (
                spread(frac), statistics.median(col(k, lambda s: s["store_local_reads"])),
                statistics.median(col(k, lambda s: s["store_remote_reads"])))))
    med = lambda k, f=None: statistics.median(wall[k] if f is None else col(k, f))  # noqa: E731
    print("\nstore R=%d against the plain file, ratios of medians: whole command %.2f×, in-job "
          "%.2f×, plan %.2f×, map %.2f×." % (
              repl, med("store") / med("plain"), med("store", phase("total")) /
              med("plain", phase("total")), med("store", phase("plan")) /
              max(med("plain", phase("plan")), 1e-9),
              med("store", phase("map")) / med("plain", phase("map"))))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"context": ctx, "size": size, "rounds": a.rounds, "cold_cache": cold,
                       "np": a.np, "replication": repl, "chunk_size": a.chunk_size,
                       "commands": cmds, "put_seconds": {"store": put_secs, "store1": put1_secs},
                       "replicas_per_holder": {"store": put_holders, "store1": put1_holders},
                       "seconds": wall, "summaries": summ}, f, indent=1)
        print("\nevery repetition: %s" % a.json)


if __name__ == "__main__":
    main()
