#!/usr/bin/env bash
# Install a local Spark (pip's pyspark) into a private venv and check Java 17; prints the venv's python.
#
# Usage: py=$(scripts/spark/setup.sh) && "$py" scripts/spark/pagerank_rdd.py ...
# The venv lives under $LOOM_SPARK_HOME (default ~/.cache/loom-spark), outside the
# source tree, so a second run costs nothing. The pyspark version is pinned by
# LOOM_PYSPARK (default: any 4.x, which needs Java 17 or newer).
set -euo pipefail

home=${LOOM_SPARK_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/loom-spark}
spec=${LOOM_PYSPARK:-pyspark>=4.0,<5}
venv=$home/venv

say() { echo "spark-setup: $*" >&2; }

# Java first: without a JVM pyspark installs but every session dies at start-up
# with a long py4j trace, which is a poor way to learn that Java is missing.
if ! command -v java >/dev/null 2>&1; then
    say "no 'java' on PATH; Spark needs Java 17 (Debian: apt-get install -y openjdk-17-jre-headless)"
    exit 1
fi
jv=$(java -version 2>&1 | awk -F'"' '/version/ {print $2; exit}')
major=${jv%%.*}
if [[ $major == 1 ]]; then major=$(echo "$jv" | cut -d. -f2); fi
if ! [[ $major =~ ^[0-9]+$ ]] || ((major < 17)); then
    say "Java $jv found, Spark 4 needs Java 17 or newer"
    exit 1
fi

# Debian's python3 (networkx, numpy, matplotlib come from apt) builds the venv,
# so the same interpreter version serves both sides of the comparison.
base_py=/usr/bin/python3
[[ -x $base_py ]] || base_py=$(command -v python3)

if [[ ! -x $venv/bin/python ]] || ! "$venv/bin/python" -c 'import pyspark, numpy' >/dev/null 2>&1; then
    mkdir -p "$home"
    say "installing $spec into $venv (one time, ~400 MB)"
    "$base_py" -m venv "$venv" >&2
    # A concurrent setup (two scripts started together) would corrupt the venv;
    # flock makes the second wait for the first.
    (
        flock 9
        if ! "$venv/bin/python" -c 'import pyspark, numpy' >/dev/null 2>&1; then
            # numpy: PySpark's numeric programs (logistic regression) are written with it
            "$venv/bin/pip" install -q --disable-pip-version-check "$spec" numpy >&2
        fi
    ) 9>"$home/.install.lock"
fi
ver=$("$venv/bin/python" -c 'import pyspark; print(pyspark.__version__)')
say "pyspark $ver, Java $jv, python $venv/bin/python"
echo "$venv/bin/python"
