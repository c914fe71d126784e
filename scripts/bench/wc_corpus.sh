#!/bin/bash
# The word-count benchmark corpora, made once under $WORK and reused; prints the corpus
# directory (its files are DIR/*.txt).
#
#   scripts/bench/wc_corpus.sh linux|short
#
# linux: every file of Debian's linux-source-6.1 tree without NUL bytes (Loom's binary
#        rule), in path order, concatenated into ~128 MiB files, CORPUS_MB in all (default
#        1100): long lines, mixed case, 843 K distinct words.
# short: Debian's /usr/share/doc/*/copyright texts, lowercased and cut into words (maximal
#        runs of ASCII letters and digits), one word per line, repeated to SHORT_MB (default
#        400) in 100 MB files: ~6 bytes per word, so the per-word costs (tokenising, hashing,
#        the table) dominate, and few distinct words (the table stays cache-sized).
# Env: WORK (default /tmp/loom-bench-wc).
set -euo pipefail
KIND=${1:?usage: wc_corpus.sh linux|short}
WORK=${WORK:-/tmp/loom-bench-wc}
mkdir -p "$WORK"
case $KIND in
linux)
    CORPUS_MB=${CORPUS_MB:-1100}
    TARBALL=/usr/src/linux-source-6.1.tar.xz
    if [ ! -f "$TARBALL" ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
            -o DPkg::Lock::Timeout=120 linux-source-6.1 >&2
    fi
    if [ ! -d "$WORK/src" ]; then
        mkdir -p "$WORK/src.tmp"
        tar -xf "$TARBALL" -C "$WORK/src.tmp"
        mv "$WORK/src.tmp" "$WORK/src"
    fi
    if [ ! -f "$WORK/corpus/.done" ]; then
        rm -rf "$WORK/corpus"
        python3 - "$WORK/src" "$WORK/corpus" $((CORPUS_MB * 1024 * 1024)) <<'PY'
import os, sys
src, dst, want = sys.argv[1], sys.argv[2], int(sys.argv[3])
os.makedirs(dst)
part = size = total = 0
out = None
for root, dirs, files in os.walk(src):
    dirs.sort()
    for name in sorted(files):
        p = os.path.join(root, name)
        if os.path.islink(p) or not os.path.isfile(p):
            continue
        data = open(p, 'rb').read()
        if b'\0' in data:
            continue
        if out is None or size >= 128 << 20:
            if out:
                out.close()
            out = open(os.path.join(dst, 'text-%02d.txt' % part), 'wb')
            part, size = part + 1, 0
        if data and not data.endswith(b'\n'):
            data += b'\n'
        out.write(data)
        size += len(data)
        total += len(data)
        if total >= want:
            break
    if total >= want:
        break
out.close()
PY
        touch "$WORK/corpus/.done"
    fi
    echo "$WORK/corpus"
    ;;
short)
    SHORT_MB=${SHORT_MB:-400}
    if [ ! -f "$WORK/short/.done" ]; then
        rm -rf "$WORK/short"
        python3 - "$WORK/short" $((SHORT_MB * 1000 * 1000)) /usr/share/doc/*/copyright <<'PY'
import os, re, sys
dst, want, srcs = sys.argv[1], int(sys.argv[2]), sorted(sys.argv[3:])
os.makedirs(dst)
text = b''.join(open(p, 'rb').read() for p in srcs if os.path.isfile(p))
words = b'\n'.join(re.findall(rb'[a-z0-9]+', text.lower())) + b'\n'
if len(words) < 2:
    sys.exit('wc_corpus.sh: no words in /usr/share/doc/*/copyright')
part = total = 0
while total < want:
    with open(os.path.join(dst, 'words-%02d.txt' % part), 'wb') as out:
        size = 0
        while size < 100 * 1000 * 1000 and total < want:
            out.write(words)
            size += len(words)
            total += len(words)
    part += 1
PY
        touch "$WORK/short/.done"
    fi
    echo "$WORK/short"
    ;;
*)
    echo "wc_corpus.sh: unknown corpus '$KIND' (linux or short)" >&2
    exit 2
    ;;
esac
