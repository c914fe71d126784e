#!/usr/bin/python3
"""Loom benchmark suite: one entry point that runs the benchmarks and one that reports them.

  /usr/bin/python3 scripts/bench/suite.py run [--reps N] [--scales 16,18]
        [--only pagerank,wordcount,mr,graphblas,spark] [--out bench-out/suite.jsonl]
        [--loom build/loom] [--iters 20] [--warmup 1] [--shared]
  /usr/bin/python3 scripts/bench/suite.py report [--in bench-out/suite.jsonl]
        [--doc docs/PERFORMANCE.md] [--plots bench-out]

`run` appends ONE JSON line per (system x workload x dataset x configuration) to --out,
holding the raw per-repetition values, their median, min, max and coefficient of
variation, and everything that shaped them: commit and dirty flag, compiler and flags
(the build's CMakeCache.txt), Open MPI, HDF5 and GraphBLAS versions, ranks, threads,
the binding each rank reported (`--verbose`), the launch line, an hwloc topology
summary, graph statistics, and the load average before and after (the machine may be
shared: records taken with load > cores are marked "under load").

Workloads (--only):
  pagerank   `loom pagerank` on kron:S and urand:S (converted once to HDF5 with duplicates
             and self-loops dropped), 1 rank x 2 threads and 3 ranks (master + 2 x 1);
             metric seconds per iteration (superstep loop), throughput arcs/s.
  graphblas  scripts/bench/gb_pagerank.c (compiled as pagerank.py does) on the same files.
  wordcount  `loom wordcount` on the corpus; `mr` adds `loom sort` and `loom grep`.
             The corpus is $CORPUS (a directory), else text built from /usr/share/doc
             (gzip'd files decompressed) and /usr/share/common-licenses, CORPUS_MB (64) MB.
             Metric wall seconds of the whole command; throughput MB/s.
  spark      scripts/spark/pagerank_df.py local[2] on the same graphs as an edge list,
             when scripts/spark/setup.sh's venv exists (never installs it); skipped
             cleanly otherwise.

`report` keeps the latest record per key, writes markdown tables between the
`<!-- suite:begin -->` and `<!-- suite:end -->` markers of docs/PERFORMANCE.md, and PNG
plots into --plots: suite_pagerank_seconds.png (seconds per iteration by system, with
min-max bars), suite_throughput.png (throughput by ranks x threads), suite_spread.png
(every repetition relative to its median, as boxes).
"""

import argparse
import datetime
import glob
import gzip
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from one_node import one_node_env  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BEGIN, END = "<!-- suite:begin -->", "<!-- suite:end -->"


def log(msg):
    print(f"suite: {msg}", file=sys.stderr, flush=True)


def sh(cmd):
    """Output of a context query, '' if the tool is missing: context must never stop a run."""
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        return (r.stdout or r.stderr).strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def mpi_env(threads):
    return one_node_env(OMP_NUM_THREADS=str(threads))


def loadavg():
    return [float(x) for x in open("/proc/loadavg").read().split()[:3]]


def spread(xs):
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs),
            "cv": statistics.pstdev(xs) / statistics.mean(xs) if len(xs) > 1 and
            statistics.mean(xs) else 0.0}


# ------------------------------------------------------------------ context


def cmake_cache(loom):
    path = os.path.join(os.path.dirname(os.path.abspath(loom)), "CMakeCache.txt")
    keys = ("CMAKE_C_COMPILER", "CMAKE_BUILD_TYPE", "CMAKE_C_FLAGS", "CMAKE_C_FLAGS_RELEASE",
            "LOOM_NATIVE", "LOOM_SANITIZE", "LOOM_WERROR")
    out = {"cmake_cache": path if os.path.exists(path) else None}
    if os.path.exists(path):
        for line in open(path, errors="replace"):
            m = re.match(r"^([A-Za-z_]+):[A-Z]+=(.*)$", line.strip())
            if m and m.group(1) in keys:
                out[m.group(1)] = m.group(2)
    cc = out.get("CMAKE_C_COMPILER") or "cc"
    out["compiler_version"] = sh([cc, "--version"]).splitlines()[0] if sh([cc, "--version"]) else ""
    bt = (out.get("CMAKE_BUILD_TYPE") or "").upper()
    out["effective_flags"] = " ".join(x for x in (out.get("CMAKE_C_FLAGS", ""),
                                                  out.get(f"CMAKE_C_FLAGS_{bt}", "") if bt else "",
                                                  "-march=native" if out.get("LOOM_NATIVE") == "ON"
                                                  else "") if x)
    return out


def dpkg_version(pkg):
    return sh(["dpkg-query", "-W", "-f=${Version}", pkg]) or None


def topology():
    """One line: packages, NUMA nodes, cores, PUs, caches (from lstopo-no-graphics)."""
    txt = sh(["lstopo-no-graphics", "--of", "console", "--no-io"])
    if not txt:
        return None
    counts = {k: len(set(re.findall(rf"\b{k} L#(\d+)", txt)))
              for k in ("Package", "NUMANode", "Core", "PU")}
    caches = sorted({f"{k} {size}" for k, size in re.findall(r"\b(L\d[di]?) L#\d+ \((\w+)\)", txt)})
    mem = re.search(r"Machine \(([^)]*)\)", txt)
    return ", ".join(f"{v} {k}" for k, v in counts.items()) + "; caches: " + \
        ", ".join(caches) + (f"; memory {mem.group(1)}" if mem else "")


def context(loom):
    ctx = {"host": platform.node(), "cpus": os.cpu_count(),
           "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                        if l.startswith("model name")), ""),
           "kernel": platform.release(),
           "commit": sh(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]),
           "dirty": bool(sh(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"])),
           "loom": os.path.abspath(loom),
           "loom_version": (sh([loom, "--version"]).splitlines() or [""])[0],
           "mpi_version": (sh(["ompi_info", "--version"]).splitlines() or [""])[0]
           or dpkg_version("libopenmpi-dev"),
           "hdf5_version": dpkg_version("libhdf5-openmpi-dev"),
           "graphblas_version": dpkg_version("libgraphblas-dev"),
           "topology": topology(),
           "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)}
    ctx["build"] = cmake_cache(loom)
    return ctx


# ------------------------------------------------------------------ running


class Suite:
    def __init__(self, args):
        self.args = args
        self.loom = args.loom
        self.work = os.path.join(os.path.dirname(os.path.abspath(args.out)), "suite-work")
        os.makedirs(self.work, exist_ok=True)
        self.ctx = context(self.loom)
        self.outf = open(args.out, "a")
        self.n = 0

    def run_cmd(self, cmd, threads):
        t0 = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True, env=mpi_env(threads))
        wall = time.perf_counter() - t0
        if r.returncode != 0:
            raise RuntimeError(f"failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr[-1500:]}")
        return r.stdout, r.stderr, wall

    def emit(self, rec, values, throughput=None):
        rec.update(self.ctx)
        rec["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        rec["repetitions"] = len(values)
        rec["warmup"] = self.args.warmup
        rec["values"] = values
        rec.update(spread(values))
        if throughput:
            rec["throughput_values"] = throughput
            rec["throughput_median"] = statistics.median(throughput)
        la = rec.get("load_before", [0])[0], rec.get("load_after", [0])[0]
        rec["shared_machine"] = self.args.shared
        rec["under_load"] = self.args.shared or max(la) > 0.5 * (os.cpu_count() or 1)
        self.outf.write(json.dumps(rec, sort_keys=True) + "\n")
        self.outf.flush()
        self.n += 1
        log(f"{rec['system']} {rec['workload']} {rec['dataset']} {rec['config']}: "
            f"median {rec['median']:.4g} {rec['unit']} ({rec['min']:.4g}-{rec['max']:.4g}, "
            f"cv {rec['cv']:.1%}), load {la[0]:.2f}->{la[1]:.2f}")

    def repeat(self, fn):
        """Warm-up runs (discarded), then --reps measured runs; returns the list of results."""
        for _ in range(self.args.warmup):
            fn()
        return [fn() for _ in range(self.args.reps)]

    # -------------------------------------------------------------- graphs

    def graph(self, gen, scale):
        path = os.path.join(self.work, f"{gen}{scale}.h5")
        if not os.path.exists(path):
            log(f"converting {gen}:{scale} -> {path}")
            self.run_cmd([self.loom, "convert", f"{gen}:{scale}", "--drop-duplicates",
                          "--drop-self-loops", "--out", path + ".tmp.h5", "--quiet"], 2)
            os.rename(path + ".tmp.h5", path)
        return path

    LAYOUTS = [  # label, ranks, threads
        ("1 rank x 2 threads", 1, 2),
        ("3 ranks (master + 2 x 1 thread)", 3, 1),
    ]

    def pagerank(self, gen, scale):
        g = self.graph(gen, scale)
        for label, np_, t in self.LAYOUTS:
            cmd = ["mpiexec", "-n", str(np_), "--bind-to", "none", self.loom, "pagerank", g,
                   "--iters", str(self.args.iters), "--threads", str(t), "--json", "--verbose"]
            rec = {"system": "loom", "workload": "pagerank", "dataset": f"{gen}:{scale}",
                   "graph_file": g, "config": label, "ranks": np_, "threads": t,
                   "workers": max(1, np_ - 1), "launch": " ".join(cmd),
                   "env": {"OMP_NUM_THREADS": t}, "iterations": self.args.iters,
                   "unit": "s/iteration", "throughput_unit": "arcs/s",
                   "load_before": loadavg()}
            runs = self.repeat(lambda: self.run_cmd(cmd, t))
            rec["load_after"] = loadavg()
            sums = [json.loads(o.strip().splitlines()[-1]) for o, _, _ in runs]
            last_err = runs[-1][1]
            rec["binding"] = [l.strip() for l in last_err.splitlines() if re.match(r"^\[r\d+\]", l)]
            rec["vertices"], rec["arcs"] = sums[-1]["vertices"], sums[-1]["arcs"]
            rec["peak_rss_bytes"] = sums[-1].get("peak_rss_bytes")
            rec["wall_s_values"] = [w for _, _, w in runs]
            self.emit(rec, [s["seconds_per_iteration"] for s in sums],
                      [s["arcs_per_second"] for s in sums])

    def graphblas(self, gen, scale):
        g = self.graph(gen, scale)
        exe = os.path.join(self.work, "gb_pagerank")
        src = os.path.join(HERE, "gb_pagerank.c")
        flags = ["-O3", "-march=native", "-fopenmp"]
        if not os.path.exists(exe) or os.path.getmtime(src) > os.path.getmtime(exe):
            if not os.path.exists("/usr/include/suitesparse/GraphBLAS.h") and \
                    not os.path.exists("/usr/include/GraphBLAS.h"):
                log("graphblas: libgraphblas-dev not installed, skipped")
                return
            subprocess.run(["mpicc"] + flags + [src, "-I/usr/include/hdf5/openmpi",
                                                "-I/usr/include/suitesparse", "-lhdf5_openmpi",
                                                "-lgraphblas", "-o", exe], check=True)
        t = 2
        cmd = [exe, g, str(self.args.iters)]
        rec = {"system": "graphblas", "workload": "pagerank", "dataset": f"{gen}:{scale}",
               "graph_file": g, "config": "1 process x 2 threads", "ranks": 1, "threads": t,
               "workers": 1, "launch": " ".join(cmd), "env": {"OMP_NUM_THREADS": t},
               "binding": ["none (OpenMP default)"], "iterations": self.args.iters,
               "compiler_flags": " ".join(flags), "unit": "s/iteration",
               "throughput_unit": "arcs/s", "load_before": loadavg()}
        runs = self.repeat(lambda: self.run_cmd(cmd, t))
        rec["load_after"] = loadavg()
        vals, arcs = [], 0
        for o, _, _ in runs:
            kv = dict(re.findall(r"(\w+)=([0-9.eE+-]+)", o))
            vals.append(float(kv["seconds_per_iteration"]))
            rec["vertices"], arcs = int(kv["n"]), int(kv["arcs"])
        rec["arcs"] = arcs
        self.emit(rec, vals, [arcs / v for v in vals])

    def spark(self, gen, scale):
        venv = os.path.join(os.environ.get("LOOM_SPARK_HOME",
                                           os.path.expanduser("~/.cache/loom-spark")),
                            "venv", "bin", "python")
        if not os.access(venv, os.X_OK) or \
                subprocess.run([venv, "-c", "import pyspark"], capture_output=True).returncode:
            log(f"spark: no pyspark venv at {venv} (run scripts/spark/setup.sh), skipped")
            return
        g = self.graph(gen, scale)
        el = g[:-3] + ".el"
        if not os.path.exists(el):
            self.run_cmd([self.loom, "convert", g, "--out", el, "--quiet"], 2)
        iters = min(self.args.iters, 5)
        cmd = [venv, os.path.join(ROOT, "scripts/spark/pagerank_df.py"), el, "--iters",
               str(iters), "--master", "local[2]", "--json"]
        rec = {"system": "spark-df", "workload": "pagerank", "dataset": f"{gen}:{scale}",
               "graph_file": el, "config": "local[2]", "ranks": 1, "threads": 2, "workers": 1,
               "launch": " ".join(cmd), "binding": ["none (JVM)"], "iterations": iters,
               "java": sh(["java", "-version"]).splitlines()[0] if sh(["java", "-version"])
               else None, "unit": "s/iteration", "throughput_unit": "arcs/s",
               "load_before": loadavg()}
        runs = self.repeat(lambda: self.run_cmd(cmd, 2))
        rec["load_after"] = loadavg()
        sums = [json.loads(o.strip().splitlines()[-1]) for o, _, _ in runs]
        vals = [s["per_iteration_s"]["median"] for s in sums]
        info = json.loads(self.run_cmd([self.loom, "info", g, "--json", "--quiet"], 2)[0]
                          .strip().splitlines()[-1])
        rec["vertices"], rec["arcs"] = info["vertices"], info["arcs"]
        rec["wall_s_values"] = [w for _, _, w in runs]
        self.emit(rec, vals, [rec["arcs"] / v for v in vals])

    # -------------------------------------------------------------- MapReduce

    def corpus(self):
        if os.environ.get("CORPUS"):
            d = os.environ["CORPUS"]
            return d, sorted(p for p in glob.glob(os.path.join(d, "**"), recursive=True)
                             if os.path.isfile(p)), "$CORPUS"
        want = int(os.environ.get("CORPUS_MB", "64")) << 20
        d = os.path.join(self.work, f"corpus-{want >> 20}M")
        if not os.path.exists(os.path.join(d, ".done")):
            log(f"building a {want >> 20} MB corpus from /usr/share/doc and common-licenses")
            shutil.rmtree(d, ignore_errors=True)
            os.makedirs(d)
            texts = []
            for top in ("/usr/share/common-licenses", "/usr/share/doc"):
                for r, dirs, files in os.walk(top):
                    dirs.sort()
                    for f in sorted(files):
                        p = os.path.join(r, f)
                        if os.path.islink(p) or not os.path.isfile(p):
                            continue
                        try:
                            data = gzip.open(p).read() if f.endswith(".gz") else open(p, "rb").read()
                        except (OSError, EOFError):
                            continue
                        if b"\0" in data or not data:
                            continue  # Loom's binary-file rule
                        texts.append(data if data.endswith(b"\n") else data + b"\n")
            if not texts:
                sys.exit("suite: no text found for the corpus (set CORPUS)")
            total, part, out = 0, 0, None
            while total < want:  # the installed docs may be smaller: repeat them
                for t in texts:
                    if out is None or out.tell() >= 16 << 20:
                        if out:
                            out.close()
                        out = open(os.path.join(d, f"text-{part:02d}.txt"), "wb")
                        part += 1
                    out.write(t)
                    total += len(t)
                    if total >= want:
                        break
            out.close()
            open(os.path.join(d, ".done"), "w").close()
        return d, sorted(glob.glob(os.path.join(d, "text-*.txt"))), \
            "/usr/share/doc + /usr/share/common-licenses text"

    def mr(self, job):
        d, files, origin = self.corpus()
        size = sum(os.path.getsize(f) for f in files)
        extra = {"grep": ["license"]}.get(job, [])
        outdir = os.path.join(self.work, f"out-{job}")
        for label, np_, t in self.LAYOUTS:
            cmd = ["mpiexec", "-n", str(np_), "--bind-to", "none", self.loom, job] + extra + \
                files + ["--out", outdir, "--threads", str(t), "--json", "--verbose"]

            def once():
                shutil.rmtree(outdir, ignore_errors=True)
                return self.run_cmd(cmd, t)
            rec = {"system": "loom", "workload": job, "dataset": f"corpus {size >> 20} MiB",
                   "corpus": d, "corpus_origin": origin, "input_bytes": size,
                   "input_files": len(files), "config": label, "ranks": np_, "threads": t,
                   "workers": max(1, np_ - 1),
                   "launch": " ".join(cmd[:cmd.index(files[0])]) + f" <{len(files)} files> " +
                   " ".join(cmd[cmd.index(files[-1]) + 1:]),
                   "env": {"OMP_NUM_THREADS": t}, "unit": "s (whole command)",
                   "throughput_unit": "MB/s", "load_before": loadavg()}
            runs = self.repeat(once)
            rec["load_after"] = loadavg()
            sums = [json.loads(o.strip().splitlines()[-1]) for o, _, _ in runs]
            rec["binding"] = [l.strip() for l in runs[-1][1].splitlines()
                              if re.match(r"^\[r\d+\]", l)]
            rec["map_s_values"] = [s.get("phases", {}).get("map", {}).get("max_s") for s in sums]
            rec["peak_rss_bytes"] = sums[-1].get("peak_rss_bytes")
            rec["output_records"] = sums[-1].get("output_records")
            walls = [w for _, _, w in runs]
            self.emit(rec, walls, [size / 1e6 / w for w in walls])
        shutil.rmtree(outdir, ignore_errors=True)


def cmd_run(args):
    if not os.access(args.loom, os.X_OK):
        sys.exit(f"suite: no loom binary at {args.loom} (pass --loom)")
    only = set(args.only.split(","))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    s = Suite(args)
    log(f"commit {s.ctx['commit']}{' (dirty)' if s.ctx['dirty'] else ''}, load {loadavg()}")
    scales = [int(x) for x in args.scales.split(",") if x]
    failures = []

    def guard(name, fn, *a):
        try:
            fn(*a)
        except (RuntimeError, subprocess.CalledProcessError, KeyError, ValueError) as e:
            failures.append(f"{name} {a}: {e}")
            log(f"FAILED {name} {a}: {e}")
    for scale in scales:
        for gen in ("kron", "urand"):
            if "pagerank" in only:
                guard("pagerank", s.pagerank, gen, scale)
            if "graphblas" in only:
                guard("graphblas", s.graphblas, gen, scale)
            if "spark" in only:
                guard("spark", s.spark, gen, scale)
    for job in ("wordcount", "sort", "grep"):
        if job in only or ("mr" in only):
            guard(job, s.mr, job)
    log(f"{s.n} records appended to {args.out}; load {loadavg()}")
    if failures:
        sys.exit("suite: some runs failed:\n" + "\n".join(failures))


# ------------------------------------------------------------------ report


def latest(records):
    keep = {}
    for r in records:
        keep[(r["system"], r["workload"], r["dataset"], r["config"])] = r
    return list(keep.values())


def fmt(v):
    return f"{v:.3g}"


def cell(r, scale=1.0):
    return f"{fmt(r['median'] * scale)} ({fmt(r['min'] * scale)}–{fmt(r['max'] * scale)}), " \
        f"cv {r['cv']:.0%}"


def save_png(fig, path):
    """Lay out, write and close a figure; its path."""
    import matplotlib.pyplot as plt
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plots(recs, outdir):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    made = []
    pr = [r for r in recs if r["workload"] == "pagerank"]
    if pr:
        datasets = sorted({r["dataset"] for r in pr}, key=lambda d: (int(d.split(":")[1]), d))
        systems = sorted({(r["system"], r["config"]) for r in pr})
        fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(datasets) + 3), 4.5))
        w = 0.8 / len(systems)
        for i, (sy, cf) in enumerate(systems):
            xs, ys, lo, hi = [], [], [], []
            for j, d in enumerate(datasets):
                r = next((r for r in pr if r["dataset"] == d and r["system"] == sy and
                          r["config"] == cf), None)
                if r:
                    xs.append(j + i * w)
                    ys.append(1e3 * r["median"])
                    lo.append(1e3 * (r["median"] - r["min"]))
                    hi.append(1e3 * (r["max"] - r["median"]))
            ax.bar(xs, ys, w, yerr=[lo, hi], capsize=3, label=f"{sy}, {cf}")
        ax.set_xticks([j + 0.4 - w / 2 for j in range(len(datasets))])
        ax.set_xticklabels(datasets)
        meds = [r["median"] for r in pr]
        if max(meds) > 30 * min(meds):  # scales far apart: log, else the small ones vanish
            ax.set_yscale("log")
        ax.set_ylabel("milliseconds per iteration (median; bars min–max)")
        ax.set_title("PageRank: seconds per iteration by system")
        ax.legend(fontsize=8)
        made.append(save_png(fig, os.path.join(outdir, "suite_pagerank_seconds.png")))
    loom = [r for r in recs if r["system"] == "loom"]
    if loom:
        groups = sorted({(r["workload"], r["dataset"]) for r in loom})
        layouts = sorted({f"{r['ranks']}r x {r['threads']}t" for r in loom})
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
        for ax, unit in zip(axes, ("arcs/s", "MB/s")):
            gs = [g for g in groups if any(r["throughput_unit"] == unit for r in loom
                                           if (r["workload"], r["dataset"]) == g)]
            w = 0.8 / max(1, len(layouts))
            for i, lay in enumerate(layouts):
                xs, ys, lo, hi = [], [], [], []
                for j, g in enumerate(gs):
                    r = next((r for r in loom if (r["workload"], r["dataset"]) == g and
                              f"{r['ranks']}r x {r['threads']}t" == lay), None)
                    if r and r.get("throughput_values"):
                        t = r["throughput_values"]
                        xs.append(j + i * w)
                        ys.append(statistics.median(t))
                        lo.append(statistics.median(t) - min(t))
                        hi.append(max(t) - statistics.median(t))
                if xs:
                    ax.bar(xs, ys, w, yerr=[lo, hi], capsize=3, label=lay)
            ax.set_xticks([j + 0.4 - w / 2 for j in range(len(gs))])
            ax.set_xticklabels([f"{a}\n{b}" for a, b in gs], fontsize=8)
            ax.set_ylabel(f"{unit} (median; bars min–max)")
            ax.set_title(f"Loom throughput by ranks x threads ({unit})")
            ax.legend(fontsize=8)
        made.append(save_png(fig, os.path.join(outdir, "suite_throughput.png")))
    if recs:
        srt = sorted(recs, key=lambda r: (r["workload"], r["dataset"], r["system"], r["config"]))
        fig, ax = plt.subplots(figsize=(8, max(4, 0.32 * len(srt) + 1)))
        data = [np.array(r["values"]) / r["median"] for r in srt]
        ax.boxplot(data, vert=False, whis=(0, 100))
        ax.set_yticks(range(1, len(srt) + 1))
        ax.set_yticklabels([f"{r['workload']} {r['dataset']} {r['system']} {r['config']}"
                            for r in srt], fontsize=7)
        ax.axvline(1.0, color="grey", lw=0.8)
        ax.set_xlabel("repetition / median (whiskers: min and max)")
        ax.set_title("Spread across repetitions")
        made.append(save_png(fig, os.path.join(outdir, "suite_spread.png")))
    return made


def cmd_report(args):
    recs = latest([json.loads(l) for l in open(args.inp) if l.strip()])
    if not recs:
        sys.exit(f"suite: no records in {args.inp}")
    os.makedirs(args.plots, exist_ok=True)
    made = plots(recs, args.plots)
    c = recs[-1]
    b = c.get("build", {})
    loads = [x for r in recs for x in (r["load_before"][0], r["load_after"][0])]
    lines = [
        f"Generated by `scripts/bench/suite.py report` from `{os.path.relpath(args.inp, ROOT)}`"
        f" ({len(recs)} records, latest per system × workload × dataset × configuration). "
        "Each figure is the median (min–max) over the repetitions, with the coefficient of "
        "variation (cv); the raw values are in the records.",
        "",
        f"- Taken {min(r['date'] for r in recs)} – {max(r['date'] for r in recs)} on {c['host']}:"
        f" {c['cpus']} × {c['cpu']}, {c.get('mem_gib')} GiB; topology {c.get('topology')}.",
        "- Commits (the `commit` column says which record comes from which): " +
        ", ".join(f"`{k}`{' (dirty tree)' if d else ''}" for k, d in
                  sorted({(r['commit'], r['dirty']) for r in recs})) +
        f"; {b.get('compiler_version')},"
        f" `{b.get('effective_flags')}` ({b.get('CMAKE_BUILD_TYPE')}); {c.get('mpi_version')};"
        f" HDF5 {c.get('hdf5_version')}; GraphBLAS {c.get('graphblas_version')}.",
        f"- Load average (1 min) during the runs: {min(loads):.2f}–{max(loads):.2f} on "
        f"{c['cpus']} cores."
        + (" **Taken under load** (load above half the cores, or run with --shared: other work shared the machine): absolute times are "
           "inflated and noisy; compare within a run only." if any(r["under_load"] for r in recs)
           else ""),
        "- Launch: `mpiexec --bind-to none`, Loom binds threads itself (`--bind auto`); the "
        "binding each rank reported is in the record's `binding`.",
        "",
    ]
    pr = sorted([r for r in recs if r["workload"] == "pagerank"],
                key=lambda r: (int(r["dataset"].split(":")[1]), r["dataset"], r["system"],
                               r["config"]))
    if pr:
        it = sorted({r["iterations"] for r in pr})
        lines += ["### PageRank", "",
                  f"`suite.py run --only pagerank,graphblas[,spark]`: graphs `loom convert GEN:S "
                  f"--drop-duplicates --drop-self-loops` (directed), {'/'.join(map(str, it))} "
                  "iterations; milliseconds per iteration of the kernel loop (Loom: the superstep "
                  "loop; GraphBLAS: its iteration loop; Spark: median iteration of its run).", "",
                  "| graph | vertices | arcs | system | ranks × threads | ms/iteration | arcs/s "
                  "(median) | reps | load | commit |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in pr:
            lines.append(f"| {r['dataset']} | {r['vertices']:,} | {r['arcs']:,} | {r['system']} | "
                         f"{r['config']} | {cell(r, 1e3)} | {r.get('throughput_median', 0):.3g} | "
                         f"{r['repetitions']} | {r['load_before'][0]:.1f}→{r['load_after'][0]:.1f} | "
                         f"{r['commit']} |")
        lines.append("")
    mr = sorted([r for r in recs if r["workload"] != "pagerank"],
                key=lambda r: (r["workload"], r["dataset"], r["config"]))
    if mr:
        r0 = mr[0]
        lines += ["### MapReduce", "",
                  f"`suite.py run --only wordcount` (or `mr` for wordcount, sort, grep `license`): "
                  f"corpus {r0['input_bytes']:,} bytes in {r0['input_files']} files "
                  f"({r0['corpus_origin']}); wall seconds of the whole command (MPI start-up "
                  "included).", "",
                  "| job | ranks × threads | seconds | MB/s (median) | map phase s (median) | reps "
                  "| load | commit |", "|---|---|---|---|---|---|---|---|"]
        for r in mr:
            ms = [x for x in r.get("map_s_values", []) if x is not None]
            lines.append(f"| {r['workload']} | {r['config']} | {cell(r)} | "
                         f"{r.get('throughput_median', 0):.3g} | "
                         f"{statistics.median(ms) if ms else float('nan'):.3g} | "
                         f"{r['repetitions']} | "
                         f"{r['load_before'][0]:.1f}→{r['load_after'][0]:.1f} | {r['commit']} |")
        lines.append("")
    lines += ["Plots (not committed; regenerate with `suite.py report`): " +
              ", ".join(f"`{os.path.relpath(p, ROOT)}`" for p in made) + "."]
    body = "\n".join(lines)
    doc = open(args.doc).read()
    if BEGIN in doc and END in doc:
        head, rest = doc.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        doc = head + BEGIN + "\n" + body + "\n" + END + tail
    else:
        doc = doc.rstrip("\n") + "\n\n## Benchmark suite (generated)\n\n" + BEGIN + "\n" + body + \
            "\n" + END + "\n"
    open(args.doc, "w").write(doc)
    log(f"wrote {len(recs)} records into {args.doc}; plots {made}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--reps", type=int, default=5)
    r.add_argument("--warmup", type=int, default=1)
    r.add_argument("--scales", default="16,18")
    r.add_argument("--iters", type=int, default=20)
    r.add_argument("--shared", action="store_true",
                   help="mark the records as taken on a machine other work shares")
    r.add_argument("--only", default="pagerank,wordcount,mr,graphblas,spark")
    r.add_argument("--out", default=os.path.join(ROOT, "bench-out", "suite.jsonl"))
    r.add_argument("--loom", default=os.environ.get("LOOM", os.path.join(ROOT, "build", "loom")))
    p = sub.add_parser("report")
    p.add_argument("--in", dest="inp", default=os.path.join(ROOT, "bench-out", "suite.jsonl"))
    p.add_argument("--doc", default=os.path.join(ROOT, "docs", "PERFORMANCE.md"))
    p.add_argument("--plots", default=os.path.join(ROOT, "bench-out"))
    a = ap.parse_args()
    cmd_run(a) if a.cmd == "run" else cmd_report(a)


if __name__ == "__main__":
    main()
