#!/usr/bin/env python3
"""`loom fs`, the chunk store, end to end at LOOM_NP ranks, against its spec.

Every byte that comes back out of the store (get, cat) is compared with the file that went in
by SHA-256 (hashlib); record append is checked with collections.Counter against the records
written (each exactly once, whole, never split across a chunk boundary); the master's log is
parsed by the documented layout (u32 length, u32 CRC32C of the payload, payload) with a
CRC32C written here. Cases:

 - round trips of 0, 1, 65535, 65536, 65537, 3*64K-1, 3*64K+5 and 1 MiB+17 bytes in 64K
   chunks (put into a directory by its basename, parents created, get, cat of all of them at
   once, get --force over an existing file), stat (chunk count, lengths, holders = the
   holder directories on disk, replicas min(3, holders)), ls with sizes and sorted names,
   the store named by the environment (LOOM_STORE);
 - concurrent record append of two files of records to one path;
 - drills, each followed by a get identical to the original and a clean fsck: a replica
   with a flipped byte and, in the same drill, another chunk's replica truncated to half
   (fsck names them, get reports "corrupt" and serves the good replicas), a holder's directory removed, the master's log
   torn in its last record ("torn", the record dropped, the put redone), a file larger than
   one holder's --holder-capacity (spread over holders; one larger than all of them
   refused), a holder killed during put and get (--inject-fault kill:2@transfer:1: survived
   with ULFM; without, the put fails and changes no metadata), the store read by a job
   with one rank fewer (a holder absent);
 - bad input: one "loom: error:" line naming the path, exit 2 for usage errors, and the
   store (log bytes, replica files) and local files untouched;
 - rebalance onto a holder that joined (NP >= 4).
Launches are the cost (~0.2 s each): 34 at one and two ranks, 47 at three, 52 at four."""
import collections, hashlib, os, random, re, shlex, shutil, signal, string, subprocess, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from crc32c_ref import crc32c  # noqa: E402
from loomprocs import with_ranks  # noqa: E402

LOOM = os.environ.get("LOOM", "loom")
LAUNCH = shlex.split(os.environ.get("LOOM_MPIEXEC", ""))
NP = int(os.environ.get("LOOM_NP", "1"))
FT = os.environ.get("LOOM_FT") == "1"  # ULFM: a dead worker is survived
TMP = os.environ.get("LOOM_TMP", "/tmp")
HOLDERS = max(1, NP - 1)  # ranks 1..P-1, or rank 0 alone at one rank
K64 = 64 * 1024
CS = ["--chunk-size", "64K"]
# mpirun's grace between SIGTERM and SIGKILL for the runs that kill a rank (as test_faults.py)
FAULT_ENV = dict(os.environ, OMPI_MCA_odls_base_sigkill_timeout="2")
LAUNCH_TIMEOUT = 180
FSCK = re.compile(r"^fsck: (\d+) files?, (\d+) chunks?, (\d+) holders?, (\d+) bytes?: "
                  r"(healthy|(\d+) problems?)$")
CHUNK = re.compile(r"^chunk (\d+) id ([0-9a-fA-F]{16}) version (\d+) length (\d+) holders ?(\S*)$")
APPENDED = re.compile(rb"appended (\d+) records \((\d+) bytes\) to (\S+)")
launches = 0


# ------------------------------------------------------------------ running `loom fs`

def show(args):
    return " ".join(shlex.quote(a) if a.isprintable() else repr(a) for a in args)


def die(msg, p=None):
    if p is not None:
        msg += "\n  command: %s\n  exit %s\n  stderr: %s" % (show(p.cmd), p.rc, p.err[-3000:])
        if p.out and len(p.out) < 3000:
            msg += "\n  stdout: %s" % p.out.decode(errors="replace")
    sys.exit("FAIL: " + msg)


class Run:
    def __init__(self, cmd, rc, out, err):
        self.cmd, self.rc, self.out, self.err = cmd, rc, out, err

    def lines(self):
        return [l for l in self.out.decode(errors="replace").splitlines() if l.strip()]


def launcher(n):
    """The launcher prefix for n ranks instead of NP (None when it cannot be rewritten)."""
    return with_ranks(LAUNCH, NP, n)


def fs(args, store, expect=0, np=None, env=None):
    """Run `loom fs ARGS --store STORE` (store None: no --store) at np ranks (default NP).
    expect: 0 (must succeed), an exit code, "fail" (anything but 0) or None (no check)."""
    global launches
    pre = launcher(np if np is not None else NP)
    if pre is None:
        die("cannot rewrite the launcher %r for %d ranks" % (LAUNCH, np))
    args = ["fs"] + list(args) + (["--store", store] if store is not None else [])
    cmd = pre + [LOOM] + args
    launches += 1
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                         start_new_session=True)
    try:
        out, err = p.communicate(timeout=LAUNCH_TIMEOUT)
    except subprocess.TimeoutExpired:
        out, err = b"", b""
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, None)):
            try:
                os.killpg(p.pid, sig)  # mpirun and the ranks it started (their own session)
            except ProcessLookupError:
                pass
            try:
                out, err = p.communicate(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        die("hung (killed after %d s)" % LAUNCH_TIMEOUT,
            Run(["loom"] + args, p.returncode, out or b"", (err or b"").decode(errors="replace")))
    r = Run(["loom"] + args + (["  [%d ranks]" % np] if np not in (None, NP) else []),
            p.returncode, out, err.decode(errors="replace"))
    if expect == "fail":
        if r.rc == 0:
            die("exit 0, expected a failure", r)
    elif expect is not None and r.rc != expect:
        die("exit %s, expected %d" % (r.rc, expect), r)
    return r


# ------------------------------------------------------------------ references and the disk

def sha(b):
    return hashlib.sha256(b).hexdigest()


def same(what, got, want):
    if sha(got) != sha(want):
        at = next((i for i, (x, y) in enumerate(zip(got, want)) if x != y), min(len(got), len(want)))
        die("%s: %d bytes, want %d (sha256 differs; first difference at byte %d)"
            % (what, len(got), len(want), at))


def read(path):
    with open(path, "rb") as f:
        return f.read()


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return path


def holder_dirs(store):
    """slot -> holder directory (DIR/holders/<host>-<slot>)."""
    d = os.path.join(store, "holders")
    found = {}
    for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        host, _, slot = name.rpartition("-")
        if not host or not slot.isdigit():
            die("%s: a holder directory not named <host>-<slot>: %r" % (d, name))
        if int(slot) in found:
            die("%s: two holder directories for slot %s: %s" % (d, slot, sorted(os.listdir(d))))
        found[int(slot)] = os.path.join(d, name)
    return found


def chunk_files(holder):
    return sorted(f for f in os.listdir(holder) if f.endswith(".chunk")) if os.path.isdir(holder) else []


def store_state(store):
    """What bad input must not change: the log's bytes and the replica files (name, size)."""
    log = os.path.join(store, "master", "log")
    files = set()
    for root, _, names in os.walk(os.path.join(store, "holders")):
        for n in names:
            p = os.path.join(root, n)
            files.add((os.path.relpath(p, store), os.path.getsize(p)))
    return (read(log) if os.path.exists(log) else None), frozenset(files)


def tree_state(path):
    """A small local file or directory, contents included."""
    if os.path.isfile(path):
        return read(path)
    got = {}
    for root, _, names in os.walk(path):
        for n in names:
            p = os.path.join(root, n)
            got[os.path.relpath(p, path)] = read(p)
    return got


def log_records(store):
    """The master's log, by the documented layout: [(offset, payload length)], CRCs checked."""
    path = os.path.join(store, "master", "log")
    if not os.path.isfile(path):
        die("%s: no operation log" % path)
    data, at, recs = read(path), 0, []
    while at < len(data):
        if at + 8 > len(data):
            die("%s: %d bytes left at offset %d, less than a record header" % (path, len(data) - at, at))
        n = int.from_bytes(data[at:at + 4], "little")
        crc = int.from_bytes(data[at + 4:at + 8], "little")
        payload = data[at + 8:at + 8 + n]
        if len(payload) != n:
            die("%s: the record at offset %d says %d bytes, %d are left" % (path, at, n, len(payload)))
        if crc32c(payload) != crc:
            die("%s: the record at offset %d: CRC32C %08x, the header says %08x"
                % (path, at, crc32c(payload), crc))
        recs.append((at, n))
        at += 8 + n
    return recs


# ------------------------------------------------------------------ commands and their output

def stat(store, path, np=None):
    p = fs(["stat", path], store, np=np)
    info, chunks = {}, []
    for line in p.lines():
        m = CHUNK.match(line)
        if m:
            chunks.append({"index": int(m.group(1)), "id": m.group(2), "version": int(m.group(3)),
                           "length": int(m.group(4)),
                           "holders": [h for h in m.group(5).split(",") if h]})
        elif line.startswith("chunk "):
            die("stat %s: a chunk line not as the spec says: %r" % (path, line), p)
        else:
            key, _, value = line.partition(" ")
            info[key] = value
    for key in ("path", "size", "chunk_size", "replication", "chunks"):
        if key not in info:
            die("stat %s: no %r line" % (path, key), p)
    try:
        for key in ("size", "chunk_size", "replication", "chunks"):
            info[key] = int(info[key])
    except ValueError:
        die("stat %s: %s is not a number" % (path, key), p)
    idx = [c["index"] for c in chunks]
    if idx and idx != list(range(idx[0], idx[0] + len(idx))) or idx and idx[0] not in (0, 1):
        die("stat %s: chunk indexes %s" % (path, idx), p)
    if info["chunks"] != len(chunks):
        die("stat %s: 'chunks %d' but %d chunk lines" % (path, info["chunks"], len(chunks)), p)
    info["chunk_list"] = chunks
    info["run"] = p
    return info


def check_stat(st, path, size, holders=HOLDERS, store=None, put=True):
    """A file's stat against what was written: its size, 64K chunks (a put fills each but the
    last; an append's are whole records, each <= 64K), replicas on min(3, holders) distinct
    holders, each one a <id>.chunk in the holder's directory."""
    p, chunks = st["run"], st["chunk_list"]
    if st["path"] != path or st["size"] != size or st["chunk_size"] != K64:
        die("stat %s: path %s size %d chunk_size %d, want %s %d %d"
            % (path, st["path"], st["size"], st["chunk_size"], path, size, K64), p)
    if st["replication"] not in (3, min(3, holders)):
        die("stat %s: replication %d, want 3 (or %d, capped)" % (path, st["replication"],
                                                               min(3, holders)), p)
    lengths = [c["length"] for c in chunks]
    if put:
        n = -(-size // K64)
        want = [K64] * (n - 1) + [size - K64 * (n - 1)] if n else []
        if lengths != want:
            die("stat %s: chunk lengths %s, want %s" % (path, lengths, want), p)
    elif sum(lengths) != size or any(not 0 < l <= K64 for l in lengths):
        die("stat %s: chunk lengths %s for %d bytes in 64K chunks" % (path, lengths, size), p)
    if len({c["id"] for c in chunks}) != len(chunks):
        die("stat %s: a chunk id twice" % path, p)
    dirs = holder_dirs(store)
    names = {os.path.basename(d): s for s, d in dirs.items()}
    for c in chunks:
        hs = c["holders"]
        if len(hs) != min(3, holders) or len(set(hs)) != len(hs):
            die("stat %s: chunk %d on holders %s, want %d distinct" % (path, c["index"], hs,
                                                                       min(3, holders)), p)
        for h in hs:
            if h not in names or not 1 <= names[h] <= holders:
                die("stat %s: holder %r is not one of the holder directories %s"
                    % (path, h, sorted(names)), p)
            f = os.path.join(dirs[names[h]], c["id"] + ".chunk")
            if not os.path.isfile(f):
                die("stat %s: chunk %d: no replica file %s" % (path, c["index"], f), p)
            if put and os.path.getsize(f) != c["length"]:
                die("stat %s: %s has %d bytes, the chunk %d" % (path, f, os.path.getsize(f),
                                                                 c["length"]), p)


def ls(store, path, env=None):
    """name -> (kind, size) of `ls PATH`, checking the line format and the order."""
    args = ["ls", path]
    p = fs(args, store, env=env)
    got, order = {}, []
    for line in p.lines():
        m = re.match(r"^([df]) (\d+) (.+)$", line)
        if not m:
            die("ls %s: a line not '[df] SIZE PATH': %r" % (path, line), p)
        entry = m.group(3)
        if entry.startswith("/"):  # the child's path (or its name alone)
            if not entry.startswith(path.rstrip("/") + "/"):
                die("ls %s: an entry outside it: %r" % (path, entry), p)
            entry = entry[len(path.rstrip("/")) + 1:]
        got[entry] = (m.group(1), int(m.group(2)))
        order.append(entry)
    if order != sorted(order, key=lambda s: s.encode()):
        die("ls %s: not sorted by name: %s" % (path, order), p)
    return got, p


def fsck(store, healthy, holders=HOLDERS, np=None, files=None):
    """fsck: exit 0 and a last line "...: healthy" with no problem lines, or exit 1 and
    "...: N problems" after N problem lines. Returns the problem lines."""
    p = fs(["fsck"], store, expect=None, np=np)
    lines = p.lines()
    m = FSCK.match(lines[-1]) if lines else None
    if not m:
        die("fsck: the last line of stdout is not 'fsck: F files, C chunks, H holders, B bytes: ...'", p)
    problems = lines[:-1]
    if int(m.group(3)) != holders:
        die("fsck: %s holders, want %d" % (m.group(3), holders), p)
    if files is not None and int(m.group(1)) != files:
        die("fsck: %s files, want %d" % (m.group(1), files), p)
    if healthy:
        if p.rc != 0 or m.group(5) != "healthy" or problems:
            die("fsck: not healthy (exit %s)" % p.rc, p)
    elif p.rc != 1 or m.group(5) == "healthy" or int(m.group(6)) != len(problems) or not problems:
        die("fsck: want exit 1 and one line per problem (exit %s, %d lines before the last)"
            % (p.rc, len(problems)), p)
    return problems, m.group(0)


def get(store, path, local, want, what, force=False, np=None, env=None, expect_in_err=None,
        extra=()):
    """get PATH LOCAL: the bytes are the original's, and nothing else appeared beside LOCAL."""
    d = os.path.dirname(local)
    before = set(os.listdir(d))
    p = fs(["get", path, local] + (["--force"] if force else []) + list(extra), store, np=np,
           env=env)
    same("%s: get %s" % (what, path), read(local), want)
    left = set(os.listdir(d)) - before - {os.path.basename(local)}
    if left:
        die("%s: get %s left %s beside its output" % (what, path, sorted(left)), p)
    if expect_in_err and expect_in_err not in p.err:
        die("%s: get %s: no %r on stderr" % (what, path, expect_in_err), p)
    return p


# ------------------------------------------------------------------ the cases

def round_trips(w, store, rnd):
    """Case 1 (and the holder killed during a put)."""
    data = os.path.join(w, "data")
    os.makedirs(data)
    sizes = [0, 1, 65535, 65536, 65537, 3 * K64 - 1, 3 * K64 + 5, (1 << 20) + 17]
    # size -> (the put's PATH argument, the file's path in the store)
    where = {0: ("/rt/0.bin", "/rt/0.bin"), 65537: ("/t/a", "/t/a"), 3 * K64 + 5: ("/d/x", "/d/x"),
             (1 << 20) + 17: ("/big/deep/file.bin", "/big/deep/file.bin")}
    files = collections.OrderedDict()
    for n in sizes:
        arg, path = where.get(n, ("/rt", "/rt/%d.bin" % n))  # an existing directory: by basename
        local = write(os.path.join(data, "%d.bin" % n), rnd.randbytes(n))
        killed = FT and NP >= 3 and n == sizes[-1]
        extra = ["--inject-fault", "kill:2@transfer:1"] if killed else []
        p = fs(["put", local, arg] + CS + extra, store, env=FAULT_ENV if killed else None)
        if killed:
            if "injected fault" not in p.err:
                die("put with kill:2@transfer:1: rank 2 did not die (no 'injected fault')", p)
            print("ok put %s (%d bytes) with rank 2 killed during the transfer (ULFM)" % (path, n))
        files[path] = read(local)
    print("ok put of %d files (%s bytes) in 64K chunks" % (len(files), ", ".join(map(str, sizes))))

    if not FT and NP >= 3:
        before = store_state(store)[0]
        local = write(os.path.join(data, "faulted.bin"), rnd.randbytes(5 * K64 + 9))
        p = fs(["put", local, "/rt"] + CS + ["--inject-fault", "kill:2@transfer:1"], store,
               expect="fail", env=FAULT_ENV)
        if store_state(store)[0] != before:
            die("a put whose rank 2 died (no ULFM) changed the master's log", p)
        print("ok put with rank 2 killed, without ULFM: exit %d, the log unchanged" % p.rc)

    # ls through LOOM_STORE (no --store): the files of /rt with their sizes, sorted
    got, p = ls(None, "/rt", env=dict(os.environ, LOOM_STORE=store))
    want = {path[4:]: ("f", len(b)) for path, b in files.items() if path.startswith("/rt/")}
    if got != want:
        die("ls /rt: %s, want %s" % (sorted(got.items()), sorted(want.items())), p)
    print("ok ls /rt (store from LOOM_STORE): %d files with their sizes, sorted" % len(got))
    if not FT and NP >= 3:
        fs(["rebalance"], store)
        print("ok rebalance after the failed put")

    out = os.path.join(w, "out")
    os.makedirs(out)
    old = write(os.path.join(out, "0.bin"), b"an older file, replaced by get --force\n")
    get(store, "/rt/0.bin", old, files["/rt/0.bin"], "round trip", force=True)
    get(store, "/big/deep/file.bin", os.path.join(out, "big.bin"), files["/big/deep/file.bin"],
        "round trip")
    print("ok get: 0 bytes (--force over an existing file), %d bytes in %d chunks"
          % ((1 << 20) + 17, -(-((1 << 20) + 17) // K64)))

    st = stat(store, "/d/x")
    check_stat(st, "/d/x", 3 * K64 + 5, store=store)
    print("ok stat /d/x: 4 chunks, lengths %s, %d holders each"
          % ([c["length"] for c in st["chunk_list"]], min(3, HOLDERS)))
    return files, st


def record_append(w, store, rnd, files):
    """Case 2: two files of records appended to /ap/log; then one cat of everything."""
    letters = string.ascii_letters
    recs = []
    for name, prefix, n in (("app1.txt", "rec", 3000), ("app2.txt", "two", 2500)):
        mine = [("%s-%06d-%s\n" % (prefix, i, "".join(rnd.choices(letters, k=rnd.randint(0, 200)))))
                .encode() for i in range(n)]
        local = write(os.path.join(w, "data", name),
                      b"".join(mine)[:-1] if prefix == "two" else b"".join(mine))  # no last "\n"
        p = fs(["append", "/ap/log", local] + CS, store)
        m = APPENDED.search(p.out)
        body = sum(map(len, mine))
        if not m or int(m.group(1)) != n or m.group(3) != b"/ap/log" or \
                int(m.group(2)) not in (body, os.path.getsize(local)):
            die("append: stdout does not say 'appended %d records (%d bytes) to /ap/log'" % (n, body), p)
        recs += mine
    total = sum(map(len, recs))

    p = fs(["cat"] + list(files) + ["/ap/log"], store)
    head = b"".join(files.values())
    same("cat of the %d round-trip files" % len(files), p.out[:len(head)], head)
    log = p.out[len(head):]
    if not log.endswith(b"\n"):
        die("cat /ap/log: a partial last line %r" % log[-80:])
    lines = [l + b"\n" for l in log.split(b"\n")[:-1]]
    got, want = collections.Counter(lines), collections.Counter(recs)
    if got != want or len(log) != total:
        missing, extra = want - got, got - want
        die("cat /ap/log: %d bytes in %d lines, want %d in %d; %d records missing (e.g. %r), "
            "%d lines extra (e.g. %r)" % (len(log), len(lines), total, len(recs),
                                         sum(missing.values()), list(missing)[:2],
                                         sum(extra.values()), list(extra)[:2]))
    print("ok cat of %d files in one run: each identical" % len(files))
    st = stat(store, "/ap/log")
    check_stat(st, "/ap/log", total, store=store, put=False)
    ends, at = [], 0
    for c in st["chunk_list"]:
        at += c["length"]
        if log[at - 1:at] != b"\n":
            die("append: chunk %d ends at byte %d inside a record" % (c["index"], at), st["run"])
        ends.append(at)
    if len(ends) < 2:
        die("append: %d bytes of records in %d chunk(s), want several" % (total, len(ends)), st["run"])
    print("ok append of %d + %d records from %d ranks: each once, whole, in %d chunks "
          "that end at record ends" % (3000, 2500, NP, len(ends)))
    return total


def torn_log(w, store, rnd):
    """Drill e: the master's log cut in the middle of its last record (put /t/b)."""
    b = rnd.randbytes(3 * K64 + 3392)
    local = write(os.path.join(w, "data", "b"), b)
    fs(["put", local, "/t/b"] + CS, store)
    recs = log_records(store)
    if not recs:
        die("the master's log is empty after put /t/b: no last record to tear")
    log = os.path.join(store, "master", "log")
    os.truncate(log, os.path.getsize(log) - 5)
    got, p = ls(store, "/t")
    if got != {"a": ("f", 65537)}:
        die("ls /t after the log lost the last 5 bytes of its last record (put /t/b): %s, want "
            "/t/a alone" % sorted(got.items()), p)
    if "torn" not in p.err:
        die("ls /t after the log lost the last 5 bytes of its last record: no line saying 'torn' "
            "on stderr", p)
    print("ok a torn last record of the log: reported ('torn'), dropped: /t/b is gone, /t/a is not")
    fs(["put", local, "/t/b"] + CS, store)
    print("ok put /t/b again after the torn record")
    return b


def bad_input(w, store, files):
    """Case 4: one error message naming the path; the store and local files untouched."""
    bad = os.path.join(w, "bad")
    os.makedirs(bad)
    existing = write(os.path.join(bad, "existing.txt"), b"keep me\n")
    local = os.path.join(w, "data", "1.bin")
    notfile = write(os.path.join(w, "notastore.txt"), b"not a store\n")
    notdir = os.path.join(w, "notastore")
    os.makedirs(notdir)
    write(os.path.join(notdir, "notes.txt"), b"mine\n")
    s = ["--store", store]
    cases = [  # (what, args, exit code or None for "not 0", needles, watched local paths)
        ("get of a missing path", ["get", "/nope/missing", os.path.join(bad, "m.out")] + s, None,
         ["/nope/missing"], [bad]),
        ("put of a missing local file", ["put", os.path.join(w, "data", "no-such-file"), "/rt/new"]
         + s, None, ["no-such-file"], []),
        ("put to an existing path", ["put", local, "/rt/1.bin"] + s, 2, ["/rt/1.bin", "exists"], []),
        ("a relative path", ["put", local, "relative.txt"] + s, 2, ["relative.txt"], []),
        ("an empty component", ["get", "/a//b", os.path.join(bad, "ab.out")] + s, 2, ["/a//b"],
         [bad]),
        ("a '..' component", ["mkdir", "/a/../b"] + s, 2, ["/a/../b"], []),
        ("a control byte", ["ls", "/a/\x01b"] + s, 2, [re.compile(r"/a/.{1,8}b")], []),
        ("mv onto an existing path", ["mv", "/rt/1.bin", "/rt/0.bin"] + s, 2, ["/rt/0.bin"], []),
        ("rm of a non-empty directory", ["rm", "/rt"] + s, None, ["/rt"], []),
        ("cat of a directory", ["cat", "/rt"] + s, None, ["/rt"], []),
        ("a store root that is a file", ["ls", "/", "--store", notfile], 2,
         [notfile, "not a Loom store"], [notfile]),
        ("a store root with other files", ["put", local, "/x", "--store", notdir], 2,
         [notdir, "not a Loom store"], [notdir]),
        ("get over an existing local file", ["get", "/rt/1.bin", existing] + s, None, ["existing.txt"],
         [bad]),
    ]
    for what, args, code, needles, watched in cases:
        before, local_before = store_state(store), [tree_state(x) for x in watched]
        p = fs(args, None, expect=None)
        if p.rc == 0 or (code is not None and p.rc != code):
            die("%s: exit %s, want %s" % (what, p.rc, code if code is not None else "not 0"), p)
        if p.err.count("loom: error:") != 1:
            die("%s: %d 'loom: error:' messages, want one" % (what, p.err.count("loom: error:")), p)
        line = next(l for l in p.err.splitlines() if "loom: error:" in l)
        for n in needles:
            if not (n.search(line) if hasattr(n, "search") else n in line):
                die("%s: the message does not name %r" % (what, getattr(n, "pattern", n)), p)
        if store_state(store) != before:
            die("%s: the store changed (its log or its replica files)" % what, p)
        if [tree_state(x) for x in watched] != local_before:
            die("%s: changed or left files in %s" % (what, watched), p)
        print("ok refused, exit %d: %s: %s" % (p.rc, what, line.strip()[:150]))


def damage_targets(store, st):
    """The replica files to damage: chunk 0's on the first holder stat lists for it (the one a
    reader is likeliest to try first), chunk 1's on the last listed; (None, None) when
    they are not on disk."""
    by_name = {os.path.basename(d): d for d in holder_dirs(store).values()}
    c0, c1 = st["chunk_list"][0], st["chunk_list"][1]
    if c0["holders"][0] not in by_name or c1["holders"][-1] not in by_name:
        return None, None
    flip = os.path.join(by_name[c0["holders"][0]], c0["id"] + ".chunk")
    cut = os.path.join(by_name[c1["holders"][-1]], c1["id"] + ".chunk")
    if not (os.path.isfile(flip) and os.path.isfile(cut)):
        return None, None
    return flip, cut


def drills(w, store, files, st_x, b):
    """Drills a, c, d, g (ULFM) and b on the main store, each healed by a get."""
    out = os.path.join(w, "out")
    x = files["/d/x"]
    if NP < 3:
        print("skipped: replica and holder drills need two holders (NP >= 3)")
    else:
        # c and d at once: chunk 0's replica on its first listed holder gets a flipped byte,
        # chunk 1's replica on its last listed holder loses half its bytes
        flip, cut = damage_targets(store, st_x)
        if flip is None:  # replicas moved since the first stat (a rebalance): stat again
            st_x = stat(store, "/d/x")
            check_stat(st_x, "/d/x", len(x), store=store)
            flip, cut = damage_targets(store, st_x)
            if flip is None:
                die("stat /d/x lists replicas that are not on disk", st_x["run"])
        with open(flip, "r+b") as f:
            f.seek(1000)
            byte = f.read(1)
            f.seek(1000)
            f.write(bytes([byte[0] ^ 0xFF]))
        os.truncate(cut, os.path.getsize(cut) // 2)
        problems, _ = fsck(store, healthy=False)
        if not any("corrupt" in l for l in problems) or len(problems) < 2:
            die("fsck after a flipped byte and a truncated replica: want a line saying 'corrupt' "
                "and one for the truncated replica, got %s" % problems)
        get(store, "/d/x", os.path.join(out, "x1"), x, "a flipped byte and a truncated replica",
            expect_in_err="corrupt")
        fsck(store, healthy=True)
        print("ok a flipped byte in one replica, another replica truncated: fsck names them (%s), "
              "get is identical and says 'corrupt', fsck is clean after" % "; ".join(problems)[:200])

        # a: the holder directory of slot 1 removed
        shutil.rmtree(holder_dirs(store)[1])
        problems, _ = fsck(store, healthy=False)
        get(store, "/d/x", os.path.join(out, "x2"), x, "slot 1's holder directory removed")
        fsck(store, healthy=True)
        if 1 not in holder_dirs(store) or not chunk_files(holder_dirs(store)[1]):
            die("after the get that healed the loss of slot 1's directory, slot 1 holds no replica")
        print("ok slot 1's holder directory removed: fsck exit 1 (%d problems), get heals and "
              "is identical, fsck clean" % len(problems))

        if FT:
            big = "/big/deep/file.bin"
            p = get(store, big, os.path.join(out, "big2.bin"), files[big], "get with rank 2 killed "
                    "(ULFM)", env=FAULT_ENV, extra=["--inject-fault", "kill:2@transfer:1"])
            fsck(store, healthy=True)
            print("ok get of %d chunks with rank 2 killed (ULFM; %s): identical, fsck clean"
                  % (-(-len(files[big]) // K64),
                     "it died" if "injected fault" in p.err else "it had no transfer to die in"))

    # b: a job with one rank fewer (slot NP-1 absent); also the get after the torn log
    less = launcher(NP - 1) if NP >= 3 else None
    if less is None:
        get(store, "/t/b", os.path.join(out, "b"), b, "put again after the torn log")
        print("ok get /t/b after the torn log: identical%s" %
              ("" if NP < 3 else " (skipped: cannot rewrite the launcher for NP-1 ranks)"))
        return
    get(store, "/t/b", os.path.join(out, "b"), b, "after the torn log, at %d ranks" % (NP - 1),
        np=NP - 1)
    fsck(store, healthy=True, np=NP - 1, holders=max(1, NP - 2))
    print("ok %d ranks (holder %d absent): get /t/b (put again after the torn log) identical, "
          "fsck clean" % (NP - 1, NP - 1))


def capacity(w, rnd):
    """Drill f: --holder-capacity 256K, one replica: 384K spread over the holders; a file
    three times all holders' capacity refused."""
    if NP < 3:
        print("skipped: a file larger than one holder needs two holders (NP >= 3)")
        return
    store = os.path.join(w, "store-cap")
    opts = ["--replication", "1", "--holder-capacity", "256K"] + CS
    ok = rnd.randbytes(384 * 1024)
    fs(["put", write(os.path.join(w, "data", "ok384"), ok), "/f/ok"] + opts, store)
    used = {s: sum(os.path.getsize(os.path.join(d, f)) for f in chunk_files(d))
            for s, d in holder_dirs(store).items()}
    if sum(used.values()) != len(ok) or max(used.values()) > 256 * 1024:
        die("put of 384K with --holder-capacity 256K, one replica: replica bytes per holder %s" % used)
    big = 3 * 256 * 1024 * HOLDERS
    p = fs(["put", write(os.path.join(w, "data", "big"), rnd.randbytes(big)), "/f/big"] + opts,
           store, expect="fail")
    if p.err.count("loom: error:") != 1:
        die("put of %d bytes beyond every holder's capacity: want one 'loom: error:'" % big, p)
    msg = next(l for l in p.err.splitlines() if "loom: error:" in l).strip()
    got, q = ls(store, "/f")
    if got != {"ok": ("f", len(ok))}:
        die("ls /f after the refused put: %s, want ok alone" % sorted(got.items()), q)
    get(store, "/f/ok", os.path.join(w, "out", "ok384"), ok, "--holder-capacity")
    print("ok --holder-capacity 256K: 384K spread over holders %s, identical; %d bytes refused "
          "(exit %d: %s), not listed" % (used, big, p.rc, msg[:120]))


def rebalance(w, rnd):
    """Case 5: files with one replica written by NP-1 ranks, rebalanced onto NP-1 holders."""
    less = launcher(NP - 1)
    if NP < 4 or less is None:
        print("skipped: rebalance onto a new holder needs NP >= 4")
        return
    store = os.path.join(w, "store-rebalance")
    want = collections.OrderedDict()
    for path, n in (("/r/1", 5 * K64 + 3), ("/r/2", 2 * K64 + 100)):
        want[path] = rnd.randbytes(n)
        fs(["put", write(os.path.join(w, "data", path[1:].replace("/", "-")), want[path]), path,
            "--replication", "1"] + CS, store, np=NP - 1)
    if chunk_files(holder_dirs(store).get(NP - 1, "")):
        die("files written by %d ranks have a replica on holder %d" % (NP - 1, NP - 1))
    fs(["rebalance"], store)
    dirs = holder_dirs(store)
    counts = {s: len(chunk_files(dirs.get(s, ""))) for s in range(1, NP)}
    chunks = sum(-(-len(b) // K64) for b in want.values())
    if min(counts.values()) < 1 or sum(counts.values()) != chunks or set(dirs) - set(counts):
        die("rebalance: .chunk files per holder %s, want each >= 1 and %d in all" % (counts, chunks))
    p = fs(["cat"] + list(want), store)
    same("cat after rebalance", p.out, b"".join(want.values()))
    fsck(store, healthy=True, files=len(want))
    print("ok rebalance onto holder %d: replicas per holder %s, cat identical, fsck clean"
          % (NP - 1, counts))


def other_master(w, rnd):
    """A master of another store (as when rank 0 of a node-local store runs where the store's
    master directory is not): the holders refuse it, and their replicas stay."""
    store = os.path.join(w, "store-id")
    data = rnd.randbytes(2 * K64 + 7)
    fs(["put", write(os.path.join(w, "data", "id.bin"), data), "/id.bin"] + CS, store)
    marker = os.path.join(store, "LOOM_STORE")
    text = open(marker).read()
    before = {d: sorted(os.listdir(d)) for d in holder_dirs(store).values()}
    open(marker, "w").write(re.sub(r"id [0-9a-f]+", "id 0123456789abcdef", text))
    p = fs(["get", "/id.bin", os.path.join(w, "out", "id.bin")], store, expect=2)
    msgs = [l for l in p.err.splitlines() if l.startswith("loom: error:")]
    if len(msgs) != 1 or "belongs to another store" not in msgs[0]:
        die("a holder of another store: messages %r" % msgs)
    after = {d: sorted(os.listdir(d)) for d in holder_dirs(store).values()}
    if after != before:
        die("a refused master changed the holders' files")
    open(marker, "w").write(text)
    get(store, "/id.bin", os.path.join(w, "out", "id2.bin"), data, "the store's own master")
    print("ok a master of another store refused by the holders (%s), nothing removed" % msgs[0])


def stale_holder(w, rnd):
    """A holder away during an append keeps the chunk's older version: stale when it returns
    (fsck says so), removed and copied again by the next command; the file as appended."""
    less = launcher(NP - 1)
    if NP < 3 or less is None:
        print("skipped: a holder away during an append needs NP >= 3")
        return
    store = os.path.join(w, "store-stale")
    first = b"".join(b"one-%05d\n" % i for i in range(300))
    second = b"".join(b"two-%05d\n" % i for i in range(200))
    fs(["append", "/s/log", write(os.path.join(w, "data", "s1"), first)] + CS, store)
    fs(["append", "/s/log", write(os.path.join(w, "data", "s2"), second)] + CS, store, np=NP - 1)
    problems, _ = fsck(store, healthy=False)
    if not any(l.startswith("stale:") for l in problems):
        die("a holder away during an append: fsck lines %r lack 'stale:'" % problems)
    p = fs(["cat", "/s/log"], store)
    got = collections.Counter(p.out.splitlines())
    if got != collections.Counter((first + second).splitlines()):
        die("cat after an append with a holder away: records differ")
    fsck(store, healthy=True)
    print("ok a holder away during an append: stale (%s), healed, records each once"
          % problems[0][:80])


def append_killed(w):
    """ULFM: a worker killed during `append` of a local file: the survivors split the file
    again among themselves, and every record lands exactly once."""
    if not FT or NP < 3:
        print("skipped: an append with a worker killed needs ULFM and NP >= 3")
        return
    store = os.path.join(w, "store-append-kill")
    lines = b"".join(b"k-%06d-%s\n" % (i, b"x" * (i % 97)) for i in range(4000))
    local = write(os.path.join(w, "data", "kill-append"), lines)
    p = fs(["append", "/k/log", local, "--inject-fault", "kill:2@transfer:1"] + CS, store,
           env=FAULT_ENV)
    if "injected fault" not in p.err:
        die("append with kill:2@transfer:1: rank 2 did not die (no 'injected fault')", p)
    got = collections.Counter(fs(["cat", "/k/log"], store).out.splitlines())
    if got != collections.Counter(lines.splitlines()):
        die("append with rank 2 killed: %d records, %d distinct, want each of %d once"
            % (sum(got.values()), len(got), len(lines.splitlines())))
    fsck(store, healthy=True)
    print("ok append with rank 2 killed (ULFM): each of %d records once, fsck clean"
          % len(lines.splitlines()))


def main():
    w = os.path.join(TMP, "fs_np%d" % NP)
    shutil.rmtree(w, ignore_errors=True)
    os.makedirs(w)
    rnd = random.Random(20240917)
    store = os.path.join(w, "store")  # missing: the first command makes it a store
    files, st_x = round_trips(w, store, rnd)
    if not os.path.isfile(os.path.join(store, "LOOM_STORE")):
        die("%s: no LOOM_STORE marker after the first command" % store)
    record_append(w, store, rnd, files)
    b = torn_log(w, store, rnd)
    # 8 round-trip files, /ap/log, /t/b: healthy (the first /t/b's chunks were orphans,
    # removed by the healing of the second put; the killed put's by the commands after it)
    _, line = fsck(store, healthy=True, files=len(files) + 2)
    print("ok fsck after round trips, append, torn log:", line)
    bad_input(w, store, files)
    drills(w, store, files, st_x, b)
    capacity(w, rnd)
    rebalance(w, rnd)
    other_master(w, rnd)
    stale_holder(w, rnd)
    append_killed(w)
    print("ok %d launches of loom fs at %d ranks%s" % (launches, NP, " (ULFM)" if FT else ""))
    shutil.rmtree(w, ignore_errors=True)


if __name__ == "__main__":
    main()
