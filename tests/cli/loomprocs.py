"""The processes of a running `loom` job, found through /proc, and launcher prefixes for
another rank count (shared by the CLI tests that signal or kill ranks or change the size)."""
import glob
import os
import re


def descends(pid, ancestor):
    """Is process `pid` a descendant of `ancestor` (through /proc's parent links)?"""
    for _ in range(6):
        try:
            stat_ = open("/proc/%d/stat" % pid).read()
        except OSError:
            return False
        pid = int(stat_.rsplit(")", 1)[1].split()[1])
        if pid == ancestor:
            return True
        if pid <= 1:
            return False
    return False


def loom_ranks(pid, loom):
    """pid -> start rank (OMPI_COMM_WORLD_RANK, None when unset) of every process running the
    binary `loom` that `pid` launched."""
    found = {}
    exe = os.path.realpath(loom)
    for proc in glob.glob("/proc/[0-9]*"):
        try:
            q = int(proc[6:])
            if os.readlink(proc + "/exe") != exe or not descends(q, pid):
                continue
            env = open(proc + "/environ", "rb").read().split(b"\0")
        except (OSError, ValueError):
            continue
        found[q] = None
        for e in env:
            if e.startswith(b"OMPI_COMM_WORLD_RANK="):
                found[q] = int(e.split(b"=")[1])
    return found


def with_ranks(launch, np, n):
    """The launcher prefix `launch` (for np ranks) rewritten for n ranks; None when its rank
    count option is not one this knows (-n, -np, --np, --n, -c, with or without '=')."""
    if n == np:
        return launch
    out = list(launch)
    for i, a in enumerate(out):
        if a in ("-n", "-np", "--np", "--n", "-c") and i + 1 < len(out) and out[i + 1].isdigit():
            out[i + 1] = str(n)
            return out
        m = re.fullmatch(r"(--?n|--?np|-c)=(\d+)", a)
        if m:
            out[i] = "%s=%d" % (m.group(1), n)
            return out
    return None
