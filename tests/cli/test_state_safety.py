#!/usr/bin/env python3
"""What Loom may replace, what it may restart from, and what a kill leaves behind, at
LOOM_NP ranks (issue: no lost data, no wrong answer):

 - outputs: only a regular file, or an earlier Loom output directory with --overwrite, is
   ever replaced; devices, FIFOs, symbolic links, foreign directories and outputs that are,
   hold or sit inside an input are refused before any work, and left as they were;
 - checkpoints: one of another program, other parameters or another graph is refused, and
   so is one whose sizes or counts do not add up (tampered with h5py), with one message and
   no HDF5 error stack;
 - signals: SIGUSR1/SIGTERM to every rank of a checkpointing run, even while it is still
   loading its graph, checkpoints and exits 75; --checkpoint-dir is checked before loading;
 - kills: SIGTERM removes the job's temporaries; what SIGKILL leaves, the next job removes
   and says so."""
import glob, hashlib, os, shlex, shutil, signal, stat, subprocess, sys, time

import h5py
import numpy as np

from loomprocs import loom_ranks

LOOM = os.environ.get("LOOM", "loom")
LAUNCH = shlex.split(os.environ.get("LOOM_MPIEXEC", ""))
NP = int(os.environ.get("LOOM_NP", "1"))
TMP = os.environ.get("LOOM_TMP", "/tmp")
FT = os.environ.get("LOOM_FT") == "1"
failures = []


def fail(msg):
    print("FAIL", msg)
    failures.append(msg)


def run(args, timeout=180):
    p = subprocess.run(LAUNCH + [LOOM] + args, capture_output=True, timeout=timeout)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def refused(name, args, needle):
    """One error line holding `needle`, a non-zero exit, no HDF5 error stack."""
    rc, out, err = run(args)
    errs = [l for l in err.splitlines() if "error:" in l]
    if rc == 0:
        fail("%s: exit 0" % name)
    elif len(errs) != 1 or needle not in errs[0]:
        fail("%s: expected one error with %r, got:\n%s" % (name, needle, err[-1500:]))
    elif "HDF5-DIAG" in err:
        fail("%s: HDF5 printed its error stack" % name)
    else:
        print("ok", name)
    return err


def digest(path):
    h = hashlib.sha256()
    for f in sorted(glob.glob(os.path.join(path, "**"), recursive=True)):
        if os.path.isfile(f):
            h.update(f.encode())
            h.update(open(f, "rb").read())
    return h.hexdigest()


# ------------------------------------------------------------------ outputs

def outputs(w):
    dev = os.path.join(w, "null")
    os.mknod(dev, 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    refused("--out a character device", ["pagerank", "kron:6", "--quiet", "--out", dev],
            "is a character device")
    if not stat.S_ISCHR(os.lstat(dev).st_mode):
        fail("the device was replaced")
    fifo = os.path.join(w, "fifo")
    os.mkfifo(fifo)
    refused("--out a FIFO", ["cc", "kron:6", "--quiet", "--out", fifo], "is a FIFO")
    if not stat.S_ISFIFO(os.lstat(fifo).st_mode):
        fail("the FIFO was replaced")
    target = os.path.join(w, "target.txt")
    open(target, "w").write("keep me\n")
    link = os.path.join(w, "link.txt")
    os.symlink(target, link)
    refused("--out a symbolic link", ["pagerank", "kron:6", "--quiet", "--out", link],
            "is a symbolic link")
    if not os.path.islink(link) or open(target).read() != "keep me\n":
        fail("the link or its target changed")
    adir = os.path.join(w, "adir.h5")
    os.makedirs(adir)
    refused("--out a directory for a file", ["generate", "kron", "--scale", "5", "--out", adir],
            "is a directory")
    # MapReduce output directories
    indir = os.path.join(w, "in")
    os.makedirs(indir)
    for i in range(3):
        open(os.path.join(indir, "f%d.txt" % i), "w").write("alpha beta gamma %d\n" % i * 50)
    before = digest(indir)
    refused("wordcount --out the input directory", ["wordcount", indir, "--out", indir, "--quiet"],
            "is the input")
    refused("wordcount --out inside the input", ["wordcount", indir, "--out", indir + "/sub",
                                                  "--quiet"], "is inside the input directory")
    refused("wordcount --out holding the input", ["wordcount", indir + "/f0.txt", "--out", indir,
                                                   "--quiet", "--overwrite"], "")
    if digest(indir) != before:
        fail("the input directory changed")
    foreign = os.path.join(w, "foreign")
    os.makedirs(foreign)
    open(os.path.join(foreign, "precious"), "w").write("data Loom did not write\n")
    refused("wordcount --out a foreign directory", ["wordcount", indir, "--out", foreign, "--quiet",
                                                     "--overwrite"], "is not a Loom output")
    if open(os.path.join(foreign, "precious")).read() != "data Loom did not write\n":
        fail("the foreign directory changed")
    out = os.path.join(w, "wc")
    rc, _, err = run(["wordcount", indir, "--out", out, "--quiet"])
    if rc != 0:
        fail("wordcount: %s" % err[-500:])
    refused("wordcount --out an earlier output without --overwrite",
            ["wordcount", indir, "--out", out, "--quiet"], "give --overwrite")
    rc, _, err = run(["wordcount", indir, "--out", out, "--quiet", "--overwrite"])
    if rc != 0 or not os.path.exists(os.path.join(out, "_SUCCESS")):
        fail("wordcount --overwrite of an earlier output: %s" % err[-500:])
    else:
        print("ok wordcount --overwrite replaces an earlier output")
    el = os.path.join(w, "g.el")
    rc, _, err = run(["generate", "kron", "--scale", "6", "--out", el, "--quiet"])
    before = open(el, "rb").read()
    refused("convert --out its input", ["convert", el, "--out", el, "--quiet"], "is the input")
    if open(el, "rb").read() != before:
        fail("convert changed its input")


# ------------------------------------------------------------------ checkpoints

def ckpt_of(w, name, job, args):
    d = os.path.join(w, name)
    shutil.rmtree(d, ignore_errors=True)
    rc, _, err = run([job] + args + ["--quiet", "--checkpoint-every", "2", "--checkpoint-dir", d,
                                     "--max-supersteps", "5"])
    if rc != 0:
        fail("%s checkpointing run: %s" % (job, err[-800:]))
    newest = max(glob.glob(os.path.join(d, "ckpt-*")), key=lambda p: int(p.rsplit("-", 1)[1]))
    return d, newest


def tampered(w, src, name, change):
    d = os.path.join(w, name)
    shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(os.path.dirname(src), d)
    ck = os.path.join(d, os.path.basename(src))
    change(ck)
    return d, ck


def checkpoints(w):
    d, _ = ckpt_of(w, "ck-sssp", "sssp", ["kron:8", "--source", "1", "--undirected"])
    refused("cc restarting from an sssp checkpoint", ["cc", "kron:8", "--quiet", "--restart", d],
            "another program")
    pr, newest = ckpt_of(w, "ck-pr", "pagerank", ["kron:8:16:1"])
    refused("pagerank restarting on another graph of the same size",
            ["pagerank", "kron:8:16:2", "--quiet", "--restart", pr], "another graph")
    refused("pagerank restarting with another damping",
            ["pagerank", "kron:8:16:1", "--damping", "0.5", "--quiet", "--restart", pr],
            "other parameters")
    rc, _, err = run(["pagerank", "kron:8:16:1", "--quiet", "--restart", pr, "--iters", "10"])
    if rc != 0:
        fail("pagerank restarting from its own checkpoint: %s" % err[-800:])
    else:
        print("ok pagerank restarts from its own checkpoint")

    def set_attr(name, value):
        def change(ck):
            with h5py.File(os.path.join(ck, "meta.h5"), "r+") as f:
                f.attrs[name] = np.int64(value)
        return change

    for s in (2 ** 62, -5):
        d, ck = tampered(w, newest, "ck-step%d" % (s < 0), set_attr("superstep", s))
        os.rename(ck, os.path.join(d, "ckpt-%d" % s) if s >= 0 else ck)
        refused("a checkpoint claiming superstep %d" % s, ["pagerank", "kron:8:16:1", "--quiet",
                                                          "--restart", d],
                "out of range")

    def bump_count(ck):
        with h5py.File(os.path.join(ck, "part-00000.h5"), "r+") as f:
            c = f["msg_count"][:]
            c[0] += np.uint64(2 ** 61)
            f["msg_count"][:] = c
    d, _ = tampered(w, newest, "ck-count", bump_count)
    refused("a message count raised by 2^61", ["pagerank", "kron:8:16:1", "--quiet", "--restart",
                                              d], "does not add up")

    def shrink_values(ck):
        with h5py.File(os.path.join(ck, "part-00000.h5"), "r+") as f:
            v = f["values"][:]
            del f["values"]
            f["values"] = v[: len(v) // 2]
    d, _ = tampered(w, newest, "ck-short", shrink_values)
    refused("a part with too few values", ["pagerank", "kron:8:16:1", "--quiet", "--restart", d],
            "wrong type or size")

    def drop_data(ck):
        with h5py.File(os.path.join(ck, "part-00000.h5"), "r+") as f:
            del f["msg_data"]
    d, _ = tampered(w, newest, "ck-nodata", drop_data)
    refused("a part without /msg_data", ["pagerank", "kron:8:16:1", "--quiet", "--restart", d],
            "is missing")

    def cut_meta(ck):
        m = os.path.join(ck, "meta.h5")
        data = open(m, "rb").read()
        open(m, "wb").write(data[: len(data) // 3])
    d, _ = tampered(w, newest, "ck-cut", cut_meta)
    err = refused("a truncated manifest", ["pagerank", "kron:8:16:1", "--quiet", "--restart", d],
                  "corrupt or foreign checkpoint")
    if "out of memory" in err:
        fail("a truncated manifest is reported as out of memory")
    refused("--restart a missing directory", ["pagerank", "kron:6", "--quiet", "--restart",
                                              os.path.join(w, "nowhere")], "does not exist")
    plain = os.path.join(w, "plain-file")
    open(plain, "w").write("x")
    refused("--restart a regular file", ["pagerank", "kron:6", "--quiet", "--restart", plain],
            "not a directory")
    t0 = time.time()
    refused("--checkpoint-dir that cannot be made", ["pagerank", "kron:21", "--quiet",
                                                    "--checkpoint-dir", plain + "/ck"],
            "cannot create the directory")
    if time.time() - t0 > 30:
        fail("--checkpoint-dir was checked only after loading the graph")


# ------------------------------------------------------------------ signals and kills

def ranks_of(pid):
    """The pids of the loom ranks launched by `pid` (or `pid` itself, without a launcher)."""
    return list(loom_ranks(pid, LOOM)) or [pid]


def caught(pid, sig):
    """Has process `pid` a handler for `sig` (SigCgt in /proc/PID/status)?"""
    try:
        for line in open("/proc/%d/status" % pid):
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    except OSError:
        pass
    return False


def signal_ranks(p, sig, delay, when_caught=False):
    time.sleep(delay)
    if when_caught:
        # as soon as every rank has its handler: the job has just begun loading
        t0 = time.time()
        while time.time() - t0 < 60 and p.poll() is None:
            rs = [r for r in ranks_of(p.pid) if r != p.pid]
            if len(rs) == NP and all(caught(r, sig) for r in rs):
                break
            time.sleep(0.005)
    for r in ranks_of(p.pid):
        try:
            os.kill(r, sig)
        except ProcessLookupError:
            pass


def signals(w):
    for sig in (signal.SIGUSR1, signal.SIGTERM):
        d = os.path.join(w, "sig-%d" % sig)
        shutil.rmtree(d, ignore_errors=True)
        out = os.path.join(w, "sig-%d.txt" % sig)
        p = subprocess.Popen(LAUNCH + [LOOM, "pagerank", "kron:18", "--iters", "200", "--quiet",
                                       "--checkpoint-dir", d, "--out", out],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # early: while the graph is still being generated and built
        signal_ranks(p, sig, 0, when_caught=True)
        _, err = p.communicate(timeout=300)
        err = err.decode(errors="replace")
        name = "%s while loading" % signal.Signals(sig).name
        if p.returncode != 75:
            fail("%s: exit %d, want 75:\n%s" % (name, p.returncode, err[-800:]))
        elif not glob.glob(os.path.join(d, "ckpt-*", "_SUCCESS")) or os.path.exists(out):
            fail("%s: no checkpoint, or an output" % name)
        else:
            print("ok %s: exit 75 with a checkpoint" % name)


def kills(w):
    base = os.path.join(w, "kills")
    shutil.rmtree(base, ignore_errors=True)
    os.makedirs(base)
    spill = os.path.join(base, "spill")
    os.makedirs(spill)
    indir = os.path.join(base, "in")
    os.makedirs(indir)
    line = " ".join("w%d" % i for i in range(200)) + "\n"
    for i in range(4):
        open(os.path.join(indir, "f%d.txt" % i), "w").write(line * 4000)
    args = ["wordcount", indir, "--split-size", "64K", "--memory", "256K", "--spill-dir", spill,
            "--quiet"]
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGKILL):
        out = os.path.join(base, "out-%d" % sig)
        p = subprocess.Popen(LAUNCH + [LOOM] + args + ["--out", out], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        signal_ranks(p, sig, 0.8)
        p.communicate(timeout=120)
        left = [f for f in os.listdir(base) if ".loom-tmp." in f] + os.listdir(spill)
        name = "wordcount, every rank sent %s" % signal.Signals(sig).name
        if os.path.exists(out) and p.returncode != 0:
            fail("%s: partial output at the final name" % name)
        elif sig != signal.SIGKILL and left:
            fail("%s: temporaries left: %s" % (name, left))
        elif sig == signal.SIGKILL:
            # the next job beside them removes what the killed one left
            rc, _, err = run(args + ["--out", os.path.join(base, "after")])
            now = [f for f in os.listdir(base) if ".loom-tmp." in f] + os.listdir(spill)
            if rc != 0 or now:
                fail("%s: the next job did not clean up (rc %d, left %s)" % (name, rc, now))
            elif left and "that are gone" not in err and "that is gone" not in err:
                fail("%s: the next job did not say what it removed:\n%s" % (name, err[-800:]))
            else:
                print("ok %s: the next job removed %d leftover(s)" % (name, len(left)))
        else:
            print("ok %s: nothing left behind" % name)


def main():
    w = os.path.join(TMP, "state")
    shutil.rmtree(w, ignore_errors=True)
    os.makedirs(w)
    outputs(w)
    checkpoints(w)
    signals(w)
    kills(w)
    if failures:
        sys.exit("%d failure(s)" % len(failures))


if __name__ == "__main__":
    main()
