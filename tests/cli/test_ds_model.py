#!/usr/bin/env python3
"""Every dataset transformation against a Python model of it, on random records, at
LOOM_NP ranks: keys skewed (one key holds a third of the records), empty keys and values,
any bytes (hex in the files), inputs split into many small partitions. The helper
ds_apply (tests/cli/ds_apply.c) applies one transformation and saves the result; the
model below computes the same from the same records. Results compare as multisets
(sort_by_key: also the order across the part files)."""
import collections, glob, os, random, shlex, shutil, struct, subprocess, sys

APPLY = os.environ["LOOM_DS_APPLY"]
LAUNCH = shlex.split(os.environ.get("LOOM_MPIEXEC", ""))
NP = int(os.environ.get("LOOM_NP", "1"))
TMP = os.environ.get("LOOM_TMP", "/tmp")


def records(n, seed):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        x = rng.random()
        if x < 0.33:
            k = b"hot"
        elif x < 0.38:
            k = b""
        else:
            k = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4)))
        v = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 6)))
        out.append((k, v))
    return out


def write(path, recs):
    with open(path, "w") as f:
        for k, v in recs:
            f.write("%s\t%s\n" % (k.hex(), v.hex()))


def lst(vals):
    return ",".join(sorted(v.hex() for v in vals))


def model(op, a, b):
    """What ds_apply's output lines (key hex, text after '=') must be."""
    def kv(recs):
        return [(k.hex(), v.hex()) for k, v in recs]
    if op == "filter":
        return kv((k, v) for k, v in a if len(v) % 2 == 0)
    if op == "flat_map":
        return kv((k, bytes([c])) for k, v in a for c in v)
    if op == "map_values":
        return kv((k, v[::-1]) for k, v in a)
    if op == "key_by":
        return [(v[:1].hex(), k.hex() + "|" + v.hex()) for k, v in a]
    if op == "union":
        return kv(a + b)
    if op == "map_partitions":  # every record, in reverse order within its partition
        return kv(a)
    groups = collections.defaultdict(list)
    for k, v in a:
        groups[k].append(v)
    if op == "reduce_by_key":
        return kv((k, max(vs)) for k, vs in groups.items())
    if op == "aggregate_by_key":
        return [(k.hex(), (len(vs).to_bytes(8, "little") + sum(map(len, vs)).to_bytes(8, "little")).hex())
                for k, vs in groups.items()]
    if op == "group_by_key":
        return [(k.hex(), lst(vs)) for k, vs in groups.items()]
    if op == "distinct":
        return kv(set(a))
    if op in ("partition_by", "repartition", "sort_by_key"):
        return kv(a)
    bgroups = collections.defaultdict(list)
    for k, v in b:
        bgroups[k].append(v)
    if op == "cogroup":
        return [(k.hex(), lst(groups.get(k, [])) + "|" + lst(bgroups.get(k, [])))
                for k in set(groups) | set(bgroups)]
    if op.startswith("join"):
        return [(k.hex(), va.hex() + "|" + vb.hex()) for k in groups for va in groups[k]
                for vb in bgroups.get(k, [])]
    raise SystemExit("no model for " + op)


def result(out):
    assert os.path.exists(os.path.join(out, "_SUCCESS")), out
    lines = []
    for part in sorted(glob.glob(os.path.join(out, "part-*"))):
        for line in open(part):
            k, v = line.rstrip("\n").split("\t", 1)
            assert v.startswith("="), line
            lines.append((k, v[1:]))
    return lines


def hdf5(work):
    """loom_ds_h5 against what h5py wrote (key = index, value = the element's 8 bytes), saved
    as part files and as HDF5 (loom_ds_save, read back with h5py); bad datasets refused."""
    import h5py
    import numpy as np
    rng = np.random.default_rng(7)
    f = os.path.join(work, "in.h5")
    data = {"i64": (rng.integers(-2**62, 2**62, 3000, dtype=np.int64), "<q"),
            "f32": (rng.standard_normal(1001).astype(np.float32), "<d"),
            "u8": (rng.integers(0, 255, 17, dtype=np.uint8), "<Q"),
            "empty": (np.zeros(0, dtype=np.int32), "<q")}
    with h5py.File(f, "w") as h:
        for name, (x, _) in data.items():
            h.create_dataset("g/" + name, data=x)
        h["matrix"] = np.zeros((3, 3))
        h["names"] = np.array([b"a", b"b"])
    bad = 0
    for name, (x, fmt) in data.items():
        want = [(struct.pack("<Q", i).hex(), struct.pack(fmt, v.item()).hex())
                for i, v in enumerate(x)]
        out, outh5 = os.path.join(work, "h5-" + name), os.path.join(work, "h5-%s.h5" % name)
        for o in (out, outh5):
            p = subprocess.run(LAUNCH + [APPLY, "h5", o, "%s:/g/%s" % (f, name)], capture_output=True,
                               timeout=300)
            if p.returncode != 0:
                print("FAIL h5 %s -> %s: exit %d\n%s" % (name, o, p.returncode, p.stderr.decode()[-800:]))
                bad += 1
                continue
            if o == out:
                got = result(out)
            else:
                with h5py.File(o, "r") as h:
                    got = [(k.decode(), v.decode()[1:]) for k, v in zip(h["keys"][:], h["values"][:])]
            if got != want:
                print("FAIL h5 %s -> %s: %d records, %d expected" % (name, o, len(got), len(want)))
                bad += 1
                continue
            print("ok loom_ds_h5 %s -> %s: %d records" % (name, os.path.basename(o), len(got)))
        # through a shuffle: the source's partitions read on several threads at once
        p = subprocess.run(LAUNCH + [APPLY, "h5_repartition", out, "%s:/g/%s" % (f, name)],
                           capture_output=True, timeout=300)
        if p.returncode != 0 or sorted(result(out)) != sorted(want):
            print("FAIL h5_repartition %s: exit %d %s" % (name, p.returncode, p.stderr.decode()[-400:]))
            bad += 1
        else:
            print("ok loom_ds_h5 %s through repartition" % name)
    for spec, why in (("/matrix", "dimensions"), ("/nope", "no dataset"), ("/names", "not numeric")):
        o = os.path.join(work, "h5-bad.h5")
        p = subprocess.run(LAUNCH + [APPLY, "h5", o, f + ":" + spec], capture_output=True, timeout=300)
        err = p.stderr.decode()
        if p.returncode == 0 or why not in err or os.path.exists(o):
            print("FAIL h5 %s: exit %d, %r" % (spec, p.returncode, err[-400:]))
            bad += 1
        else:
            print("ok loom_ds_h5 %s refused: %s" % (spec, err.strip().splitlines()[-1][:120]))
    return bad


def main():
    work = os.path.join(TMP, "ds_model_np%d" % NP)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    a, b = records(1500, 1), records(400, 2)
    # b's keys: the hot key, a few of a's, and some of its own
    fa, fb = os.path.join(work, "a.txt"), os.path.join(work, "b.txt")
    write(fa, a)
    write(fb, b)
    ops = ["filter", "flat_map", "map_values", "key_by", "union", "map_partitions", "reduce_by_key",
           "aggregate_by_key", "group_by_key", "cogroup", "distinct", "partition_by",
           "repartition", "join", "join_broadcast", "join_copartitioned", "sort_by_key"]
    bad = 0
    # then the wide ones again with a 16 KiB budget: routed in rounds of 4 KiB, received
    # records spilled to files, one partition read back at a time
    wide = ["reduce_by_key", "aggregate_by_key", "group_by_key", "cogroup", "distinct",
            "partition_by", "repartition", "join", "sort_by_key"]
    for op, memory in [(op, None) for op in ops] + [(op, 16384) for op in wide]:
        env = dict(os.environ, DS_APPLY_MEMORY=str(memory)) if memory else None
        name = op + (" (--memory %d)" % memory if memory else "")
        out = os.path.join(work, op)
        # joins of the hot key would be 500 x 130 records: b without it keeps them small
        bb = [(k, v) for k, v in b if k != b"hot"] if op.startswith("join") else b
        fin = fb
        if op.startswith("join"):
            fin = os.path.join(work, "b-nohot.txt")
            write(fin, bb)
        p = subprocess.run(LAUNCH + [APPLY, op, out, fa, fin], capture_output=True, timeout=300,
                           env=env)
        if p.returncode != 0:
            print("FAIL %s: exit %d\n%s" % (name, p.returncode, p.stderr.decode()[-800:]))
            bad += 1
            continue
        got, want = result(out), model(op, a, bb)
        if sorted(got) != sorted(want):
            diff = collections.Counter(got)
            diff.subtract(collections.Counter(want))
            print("FAIL %s: %d records, %d expected; e.g. %r" % (
                name, len(got), len(want), [x for x, c in diff.items() if c][:3]))
            bad += 1
            continue
        if op == "sort_by_key":
            keys = [bytes.fromhex(k) for k, _ in got]
            if keys != sorted(keys):
                print("FAIL sort_by_key: part files do not concatenate in key order")
                bad += 1
                continue
        print("ok %s: %d records" % (name, len(got)))
    bad += hdf5(work)
    shutil.rmtree(work, ignore_errors=True)
    if bad:
        sys.exit("%d transformation(s) differ from the model" % bad)


if __name__ == "__main__":
    main()
