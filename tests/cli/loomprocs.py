"""The processes of a running `loom` job, found through /proc (shared by the CLI tests that
signal or kill ranks)."""
import glob
import os


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
