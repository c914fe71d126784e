#!/usr/bin/env bash
# Bad input gives one clear error naming the file and cause, a non-zero exit
# status (not a hang), and leaves no output or temporary file behind.
set -u
LOOM=${LOOM:?set LOOM to the loom binary}
MPIEXEC=${LOOM_MPIEXEC:-mpiexec -n 2 --oversubscribe}
T=${LOOM_TMP:-$(mktemp -d)}
IN=$T/in
OUT=$T/out
rm -rf "$IN" "$OUT"
mkdir -p "$IN" "$OUT"
fails=0
checks=0

# The system Python has h5py (a pyenv python on PATH may not).
PY=""
for p in /usr/bin/python3 python3; do
    if command -v "$p" >/dev/null && "$p" -c 'import h5py' 2>/dev/null; then
        PY=$p
        break
    fi
done

fail() {
    echo "FAIL: $*" >&2
    fails=$((fails + 1))
}

# expect_error NAME PATTERN FILE-IN-MESSAGE -- loom args...
# Runs the command; checks exit status, one error line on stderr that contains
# FILE-IN-MESSAGE and matches PATTERN (grep -E), and an empty output directory.
expect_error() {
    local name=$1 pattern=$2 names=$3 before=$fails
    shift 4
    checks=$((checks + 1))
    rm -rf "$OUT" && mkdir -p "$OUT"
    timeout 120 $MPIEXEC "$LOOM" "$@" >"$T/stdout" 2>"$T/stderr"
    local rc=$?
    if [ $rc -eq 0 ]; then
        fail "$name: exit status 0 for: loom $*"
    elif [ $rc -eq 124 ]; then
        fail "$name: timed out (hang) for: loom $*"
    fi
    local nerr
    nerr=$(grep -ac 'error:' "$T/stderr")
    if [ "$nerr" -ne 1 ]; then
        fail "$name: expected exactly one error line, got $nerr"
    fi
    if grep -aq 'HDF5-DIAG' "$T/stderr"; then
        fail "$name: HDF5 printed its own error stack"
    fi
    local line
    line=$(grep -a 'error:' "$T/stderr" | head -n 1)
    if ! grep -aqF -- "$names" <<<"$line"; then
        fail "$name: error does not name '$names': $line"
    fi
    if ! grep -aqE -- "$pattern" <<<"$line"; then
        fail "$name: error does not match /$pattern/: $line"
    fi
    if [ -n "$(ls -A "$OUT")" ]; then
        fail "$name: output directory not empty: $(ls -A "$OUT" | tr '\n' ' ')"
    fi
    if [ $fails -gt "$before" ]; then
        echo "--- stderr of $name:" >&2
        head -n 20 "$T/stderr" >&2
    fi
}

# expect_ok NAME PATTERN -- loom args...
# Runs the command; checks exit status 0 and that stdout and stderr together
# match PATTERN (grep -E).
expect_ok() {
    local name=$1 pattern=$2 before=$fails
    shift 3
    checks=$((checks + 1))
    timeout 120 $MPIEXEC "$LOOM" "$@" >"$T/stdout" 2>"$T/stderr"
    local rc=$?
    if [ $rc -ne 0 ]; then
        fail "$name: exit status $rc for: loom $*"
    elif ! cat "$T/stdout" "$T/stderr" | grep -aqE -- "$pattern"; then
        fail "$name: output does not match /$pattern/"
    fi
    if [ $fails -gt "$before" ]; then
        echo "--- stderr of $name:" >&2
        head -n 20 "$T/stderr" >&2
    fi
}

# Both commands that read a graph must fail the same way.
expect_input_error() {
    local name=$1 pattern=$2 file=$3
    expect_error "$name/info" "$pattern" "$file" -- info "$file"
    expect_error "$name/convert" "$pattern" "$file" -- convert "$file" --out "$OUT/out.h5"
}

# ------------------------------------------------------------------ files
mkdir -p "$IN/adir.el"
: >"$IN/empty.el"
printf '# comment\n0 1\n1 x\n' >"$IN/malformed.el"
printf '0 1\n1 2\n2 -3\n' >"$IN/negative.el"
printf '0 1\n9223372036854775808 1\n' >"$IN/toobig.el"
printf '0 1\n18446744073709551616 1\n' >"$IN/toobig2.el"
printf '0 1\n2\n' >"$IN/nodst.el"
printf '0 1 1.5 7\n' >"$IN/extra.el"
printf '0 1 1.5\n1 2 2.5\n2 0\n' >"$IN/mixedw.el"
printf '%%%%MatrixMarket matrix coordinate pattern general\n3 3 4\n1 2\n2 3\n' >"$IN/count.mtx"
printf '%%%%MatrixMarket matrix coordinate pattern general\n3 3 2\n1 2\n4 3\n' >"$IN/size.mtx"
printf '%%%%MatrixMarket matrix array real general\n2 2\n1\n2\n3\n4\n' >"$IN/array.mtx"
printf '%%%%MatrixMarket matrix coordinate real general\n3 3 2\n1 2 0.5\n2 3\n' >"$IN/noval.mtx"
printf 'this is not hdf5\n' >"$IN/text.h5"

expect_input_error missing 'no such file' "$IN/missing.el"
expect_input_error directory 'is a directory' "$IN/adir.el"
expect_input_error empty 'empty' "$IN/empty.el"
expect_input_error malformed 'malformed.el:3: .*not a number' "$IN/malformed.el"
expect_error malformed/convert-el 'malformed.el:3: ' "$IN/malformed.el" -- \
    convert "$IN/malformed.el" --out "$OUT/out.el"
expect_input_error negative 'negative.el:3: negative' "$IN/negative.el"
expect_input_error toobig 'toobig.el:2: .*out of range' "$IN/toobig.el"
expect_input_error toobig2 'toobig2.el:2: .*out of range' "$IN/toobig2.el"
expect_input_error nodst 'nodst.el:2: .*missing destination' "$IN/nodst.el"
expect_input_error extra 'extra.el:1: .*4 columns' "$IN/extra.el"
expect_input_error mixedw 'mixedw.el:3: .*weight column' "$IN/mixedw.el"
expect_input_error mtx-count 'declares 4 entries but the file has 2' "$IN/count.mtx"
expect_input_error mtx-size 'size.mtx:4: .*outside the declared size 3 x 3' "$IN/size.mtx"
expect_input_error mtx-array "array.mtx:1: .*'array'" "$IN/array.mtx"
expect_input_error mtx-noval 'noval.mtx:4: missing value column' "$IN/noval.mtx"
expect_input_error not-hdf5 'not an HDF5 file' "$IN/text.h5"

# Weights are finite numbers in every format; integer fields hold integers.
printf '0 1 1\n1 2 nan\n' >"$IN/nan.el"
printf '0 1 inf\n' >"$IN/inf.el"
printf '%%%%MatrixMarket matrix coordinate integer general\n3 3 2\n1 2 3\n2 3 1.5\n' >"$IN/int.mtx"
expect_input_error nan-weight "nan.el:2: weight 'nan' is not a finite number" "$IN/nan.el"
expect_input_error inf-weight "inf.el:1: weight 'inf' is not a finite number" "$IN/inf.el"
expect_input_error mtx-integer "int.mtx:4: value '1.5' is not an integer" "$IN/int.mtx"

# Shortest paths refuse negative weights when loading (a negative cycle would
# otherwise run a million supersteps), naming file and line; info accepts them.
printf '0 1 2\n1 2 -1\n2 0 -3\n' >"$IN/negw.el"
printf '%%%%MatrixMarket matrix coordinate real general\n3 3 2\n1 2 0.5\n2 3 -0.25\n' \
    >"$IN/negw.mtx"
expect_error sssp-negative 'negw.el:2: negative weight -1 \(shortest paths need weights >= 0\)' \
    "$IN/negw.el" -- sssp "$IN/negw.el" --out "$OUT/d.txt"
expect_error sssp-negative-mtx 'negw.mtx:4: negative weight -0.25' "$IN/negw.mtx" -- \
    sssp "$IN/negw.mtx" --undirected
expect_ok info-negative 'vertices +3' -- info "$IN/negw.el"

# A UTF-8 byte-order mark at the start is skipped, in both text formats.
printf '\xEF\xBB\xBF0 1\n1 2\n' >"$IN/bom.el"
printf '\xEF\xBB\xBF%%%%MatrixMarket matrix coordinate pattern general\n4 4 1\n1 2\n' >"$IN/bom.mtx"
expect_ok bom-edgelist 'vertices +3' -- info "$IN/bom.el"
expect_ok bom-mtx 'vertices +4' -- info "$IN/bom.mtx"

# A vertex count declared in Loom's header bounds every id.
printf '# loom-graph vertices=2 arcs=2\n0 1\n1 2\n' >"$IN/declared.el"
expect_input_error declared-count \
    'declared.el:3: vertex id 2 is not below the vertex count 2 declared on line 1' \
    "$IN/declared.el"

# HDF5 files made from a valid one written by `loom generate`.
if timeout 120 $MPIEXEC "$LOOM" generate kron --scale 8 --out "$IN/good.h5" --quiet \
    >/dev/null 2>"$T/gen.err"; then
    size=$(stat -c %s "$IN/good.h5")
    head -c $((size / 2)) "$IN/good.h5" >"$IN/trunc.h5"
    head -c 1000 "$IN/good.h5" >"$IN/trunc2.h5"
    expect_input_error truncated 'truncated' "$IN/trunc.h5"
    expect_input_error truncated2 'truncated|not an HDF5' "$IN/trunc2.h5"
    if [ -n "$PY" ]; then
        "$PY" - "$IN" <<'EOF'
import sys, h5py, numpy as np
d = sys.argv[1]
with h5py.File(d + "/foreign.h5", "w") as f:
    f["x"] = np.arange(3)
with h5py.File(d + "/good.h5", "r") as g, h5py.File(d + "/nodset.h5", "w") as f:
    grp = f.create_group("graph")
    for k, v in g["graph"].attrs.items():
        grp.attrs[k] = v
    grp["offsets"] = g["graph/offsets"][:]
with h5py.File(d + "/good.h5", "r") as g, h5py.File(d + "/badtarget.h5", "w") as f:
    grp = f.create_group("graph")
    for k, v in g["graph"].attrs.items():
        grp.attrs[k] = v
    grp["offsets"] = g["graph/offsets"][:]
    t = g["graph/targets"][:]
    t[-1] = g["graph"].attrs["num_vertices"]
    grp["targets"] = t
with h5py.File(d + "/good.h5", "r") as g, h5py.File(d + "/noattr.h5", "w") as f:
    grp = f.create_group("graph")
    grp.attrs["num_vertices"] = g["graph"].attrs["num_vertices"]
    grp["offsets"] = g["graph/offsets"][:]
    grp["targets"] = g["graph/targets"][:]
EOF
        expect_input_error foreign 'no group /graph' "$IN/foreign.h5"
        expect_input_error no-dataset 'missing dataset /graph/targets' "$IN/nodset.h5"
        expect_input_error bad-target 'targets.* is not below num_vertices' "$IN/badtarget.h5"
        expect_input_error no-attr "missing attribute 'num_edges'" "$IN/noattr.h5"
    else
        echo "note: no python3 with h5py; foreign/missing-dataset HDF5 cases skipped" >&2
    fi
else
    fail "loom generate failed: $(cat "$T/gen.err")"
fi

# ------------------------------------------------------------------ options
expect_error unknown-option 'bogus' 'bogus' -- info "$IN/good.h5" --bogus
expect_error unknown-short-cluster "unknown option '-xyz'" '-xyz' -- info kron:6 -xyz
expect_error malformed-number 'scale' 'abc' -- generate kron --scale abc --out "$OUT/g.h5"
expect_error scale-range 'scale' '99' -- generate kron --scale 99 --out "$OUT/g.h5"
expect_error no-out-dir 'does not exist' "$OUT/nodir/x.h5" -- \
    generate kron --scale 4 --out "$OUT/nodir/x.h5"

# ------------------------------------------------------------------ MapReduce inputs
mkdir -p "$IN/loopdir/sub" "$IN/dangdir" "$IN/selfdir"
echo "a b" >"$IN/loopdir/a.txt"
echo "c" >"$IN/loopdir/sub/b.txt"
ln -sfn .. "$IN/loopdir/sub/up"
echo "a b a" >"$IN/dangdir/a.txt"
ln -sfn nowhere "$IN/dangdir/broken"
echo "x" >"$IN/selfdir/x.txt"
ln -sfn self "$IN/selfdir/self"
# A link back to a directory above is one error at the link, not a path
# repeated 40 times.
expect_error symlink-loop "loopdir/sub/up: symbolic link loop: it leads back to the directory" \
    "$IN/loopdir" -- wordcount "$IN/loopdir" --out "$OUT/wc"
if [ "$(grep -a 'error:' "$T/stderr" | grep -o 'sub/up' | wc -l)" -gt 1 ]; then
    fail "symlink-loop: the message repeats the path: $(grep -a 'error:' "$T/stderr")"
fi
expect_error symlink-self 'selfdir/self: symbolic link loop' "$IN/selfdir/self" -- \
    wordcount "$IN/selfdir" --out "$OUT/wc"
# A dangling link inside an input directory is skipped with one warning, as find does.
rm -rf "$T/wc"
expect_ok symlink-dangling 'dangdir/broken: skipping a dangling symbolic link' -- \
    wordcount "$IN/dangdir" --out "$T/wc"
if [ "$(grep -ac 'warning:.*dangdir/broken' "$T/stderr")" -ne 1 ] ||
    [ "$(cat "$T"/wc/part-* | sort | tr '\n' ' ')" != "a	2 b	1 " ]; then
    fail "symlink-dangling: expected one warning and counts a=2 b=1"
fi
rm -rf "$T/wc"

# ------------------------------------------------------------------ budgets
# A budget below the documented minimum (64K) is a usage error, 0 included.
expect_error memory-zero '--memory: 0 is out of range' '--memory' -- \
    wordcount "$IN/dangdir/a.txt" --out "$OUT/wc" --memory 0
expect_error memory-small '--memory: 1K is out of range' '--memory' -- \
    pagerank-mr kron:4 --out "$OUT/pr" --memory 1K

# ------------------------------------------------------------------ nodes
expect_error node-ranks-negative '--node-ranks: -1 is out of range' '--node-ranks' -- \
    wordcount "$IN/dangdir/a.txt" --out "$OUT/wc" --node-ranks -1
expect_error two-level-choice '--two-level' '--two-level' -- \
    cc kron:4 --out "$OUT/cc.txt" --two-level maybe

echo "$checks checks, $fails failures"
[ $fails -eq 0 ]
