/* The chunk store's metadata on the master: the namespace and each file's chunks, kept as an
 * operation log (one checksummed record per change, synced before it is applied) folded now and
 * then into a checkpoint, and replayed when a job opens the store. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "chunks/chunks_internal.h"

enum { R_MKDIR = 1, R_FILE, R_REMOVE, R_RENAME, R_RESERVE, R_CKPT, R_END };

#define REC_MAX (1u << 30)

/* ------------------------------------------------------------------ paths */

loom_status_t ch_path_check(loom_ctx_t *ctx, const char *path)
{
    size_t len = strlen(path);
    if (path[0] != '/')
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "'%s': store paths are absolute (start with /)",
                          path);
    if (len > CH_PATH_MAX)
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "'%.64s...': longer than %d bytes", path,
                          CH_PATH_MAX);
    if (len == 1) return LOOM_OK;
    const char *p = path + 1;
    for (;;) {
        const char *end = strchr(p, '/');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == 0)
            return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "'%s': empty path component%s", path,
                              end ? "" : " (a trailing /)");
        if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "'%s': '.' and '..' are not store names", path);
        if (n > 255)
            return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "'%s': a component longer than 255 bytes", path);
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
                return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "'%s': control character (byte 0x%02x)",
                                  path, (unsigned char)p[i]);
        if (!end) break;
        p = end + 1;
    }
    return LOOM_OK;
}

void ch_path_parent(const char *path, char *buf, size_t len)
{
    const char *slash = strrchr(path, '/');
    size_t n = slash && slash != path ? (size_t)(slash - path) : 1;
    if (n >= len) n = len - 1;
    memcpy(buf, path, n);
    buf[n] = '\0';
}

/* ------------------------------------------------------------------ the namespace */

static size_t lower_bound(const ch_meta_t *m, const char *path)
{
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(m->e[mid].path, path) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

ch_entry_t *ch_meta_find(ch_meta_t *m, const char *path)
{
    size_t i = lower_bound(m, path);
    return i < m->n && !strcmp(m->e[i].path, path) ? &m->e[i] : NULL;
}

int ch_meta_is_dir(ch_meta_t *m, const char *path)
{
    if (!strcmp(path, "/")) return 1;
    ch_entry_t *e = ch_meta_find(m, path);
    return e && e->is_dir;
}

/* Entries below `dir` sort together only when compared as "dir/" prefixes: "/a/b" and
 * "/a-x" sort around each other, so the range is scanned from the prefix's lower bound. */
void ch_meta_below(ch_meta_t *m, const char *dir, size_t *first, size_t *last)
{
    char prefix[CH_PATH_MAX + 2];
    size_t dl = strcmp(dir, "/") ? strlen(dir) : 0;
    memcpy(prefix, dir, dl);
    prefix[dl] = '/';
    prefix[dl + 1] = '\0';
    size_t i = lower_bound(m, prefix), j = i;
    while (j < m->n && !strncmp(m->e[j].path, prefix, dl + 1))
        j++;
    *first = i;
    *last = j;
}

static void entry_free(ch_entry_t *e)
{
    free(e->path);
    free(e->chunks);
    memset(e, 0, sizeof *e);
}

/* Insert or replace (taking over e's allocations). */
static loom_status_t put_entry(loom_ctx_t *ctx, ch_meta_t *m, ch_entry_t *e)
{
    size_t i = lower_bound(m, e->path);
    if (i < m->n && !strcmp(m->e[i].path, e->path)) {
        entry_free(&m->e[i]);
        m->e[i] = *e;
        return LOOM_OK;
    }
    if (m->n == m->cap) {
        size_t cap = m->cap ? 2 * m->cap : 64;
        ch_entry_t *ne = realloc(m->e, cap * sizeof *ne);
        if (!ne) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory for the store's namespace");
        m->e = ne;
        m->cap = cap;
    }
    memmove(&m->e[i + 1], &m->e[i], (m->n - i) * sizeof *m->e);
    m->e[i] = *e;
    m->n++;
    return LOOM_OK;
}

static void remove_range(ch_meta_t *m, size_t first, size_t last)
{
    for (size_t i = first; i < last; i++)
        entry_free(&m->e[i]);
    memmove(&m->e[first], &m->e[last], (m->n - last) * sizeof *m->e);
    m->n -= last - first;
}

/* ------------------------------------------------------------------ records
 * A record is u32 length, u32 CRC32C of the payload, payload: u8 type, u64 sequence number,
 * then the type's fields (integers little endian, strings as u32 length + bytes). */

typedef struct rd {
    const unsigned char *p, *end;
    int bad;
} rd_t;

static uint64_t get_u(rd_t *r, int bytes)
{
    if (r->end - r->p < bytes) {
        r->bad = 1;
        return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v |= (uint64_t)r->p[i] << (8 * i);
    r->p += bytes;
    return v;
}

static char *get_str(rd_t *r)
{
    uint64_t n = get_u(r, 4);
    if (r->bad || n > CH_PATH_MAX || (uint64_t)(r->end - r->p) < n) {
        r->bad = 1;
        return NULL;
    }
    char *s = malloc(n + 1);
    if (!s) {
        r->bad = 1;
        return NULL;
    }
    memcpy(s, r->p, n);
    s[n] = '\0';
    r->p += n;
    return s;
}

static loom_status_t put_u(loom_ctx_t *ctx, loom_buf_t *b, uint64_t v, int bytes)
{
    unsigned char t[8];
    for (int i = 0; i < bytes; i++)
        t[i] = (unsigned char)(v >> (8 * i));
    return loom_buf_append(ctx, b, t, (size_t)bytes);
}

static loom_status_t put_str(loom_ctx_t *ctx, loom_buf_t *b, const char *s)
{
    size_t n = strlen(s);
    LOOM_TRY(put_u(ctx, b, n, 4));
    return loom_buf_append(ctx, b, s, n);
}

static uint64_t d2u(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}
static double u2d(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

/* Begin a record in b: room for its frame, then type and sequence number. */
static loom_status_t rec_begin(loom_ctx_t *ctx, loom_buf_t *b, int type, uint64_t seq)
{
    b->len = 0;
    LOOM_TRY(loom_buf_reserve(ctx, b, 8));
    b->len = 8;
    LOOM_TRY(put_u(ctx, b, (uint64_t)type, 1));
    return put_u(ctx, b, seq, 8);
}

static void rec_seal(loom_buf_t *b)
{
    uint32_t n = (uint32_t)(b->len - 8), crc = loom_crc32c(0, b->data + 8, n);
    for (int i = 0; i < 4; i++)
        b->data[i] = (unsigned char)(n >> (8 * i));
    for (int i = 0; i < 4; i++)
        b->data[4 + i] = (unsigned char)(crc >> (8 * i));
}

static loom_status_t rec_file(loom_ctx_t *ctx, loom_buf_t *b, const ch_entry_t *f)
{
    LOOM_TRY(put_str(ctx, b, f->path));
    LOOM_TRY(put_u(ctx, b, f->chunk_size, 8));
    LOOM_TRY(put_u(ctx, b, (uint64_t)f->repl, 4));
    LOOM_TRY(put_u(ctx, b, d2u(f->mtime), 8));
    LOOM_TRY(put_u(ctx, b, f->nchunks, 8));
    for (uint64_t i = 0; i < f->nchunks; i++) {
        LOOM_TRY(put_u(ctx, b, f->chunks[i].id, 8));
        LOOM_TRY(put_u(ctx, b, f->chunks[i].version, 8));
        LOOM_TRY(put_u(ctx, b, f->chunks[i].len, 8));
    }
    return LOOM_OK;
}

static loom_status_t write_all(loom_ctx_t *ctx, int fd, const void *data, size_t n,
                               const char *path)
{
    const unsigned char *p = data;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: write: %s", path, strerror(errno));
        p += w;
        n -= (size_t)w;
    }
    return LOOM_OK;
}

/* ------------------------------------------------------------------ applying records */

static loom_status_t apply_mkdirs(loom_ctx_t *ctx, ch_meta_t *m, const char *path, double mtime)
{
    char buf[CH_PATH_MAX + 1];
    size_t len = strlen(path);
    for (size_t i = 2; i <= len; i++) {
        if (i < len && path[i] != '/') continue;
        memcpy(buf, path, i);
        buf[i] = '\0';
        ch_entry_t *e = ch_meta_find(m, buf);
        if (e) continue;
        ch_entry_t d = {.path = strdup(buf), .is_dir = 1, .mtime = mtime};
        if (!d.path) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory for the namespace");
        LOOM_TRY(put_entry(ctx, m, &d));
    }
    return LOOM_OK;
}

static void apply_remove(ch_meta_t *m, const char *path)
{
    size_t first, last;
    ch_meta_below(m, path, &first, &last);
    remove_range(m, first, last);
    size_t i = lower_bound(m, path);
    if (i < m->n && !strcmp(m->e[i].path, path)) remove_range(m, i, i + 1);
}

static loom_status_t apply_rename(loom_ctx_t *ctx, ch_meta_t *m, const char *src, const char *dst)
{
    size_t first, last, sl = strlen(src), dl = strlen(dst);
    ch_meta_below(m, src, &first, &last);
    size_t n = last - first + 1;
    ch_entry_t *moved = malloc(n * sizeof *moved);
    if (!moved) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory renaming %s", src);
    size_t k = 0, i = lower_bound(m, src);
    if (i < m->n && !strcmp(m->e[i].path, src)) {
        moved[k++] = m->e[i];
        memmove(&m->e[i], &m->e[i + 1], (m->n - i - 1) * sizeof *m->e);
        m->n--;
        ch_meta_below(m, src, &first, &last);
    }
    for (size_t j = first; j < last; j++)
        moved[k++] = m->e[j];
    memmove(&m->e[first], &m->e[last], (m->n - last) * sizeof *m->e);
    m->n -= last - first;
    loom_status_t st = LOOM_OK;
    for (size_t j = 0; j < k; j++) {
        size_t tail = strlen(moved[j].path) - sl;
        char *np = malloc(dl + tail + 1);
        if (!np && st == LOOM_OK)
            st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory renaming %s", src);
        if (np) {
            memcpy(np, dst, dl);
            memcpy(np + dl, moved[j].path + sl, tail + 1);
            free(moved[j].path);
            moved[j].path = np;
        }
        if (st == LOOM_OK)
            st = put_entry(ctx, m, &moved[j]);
        else
            entry_free(&moved[j]);
    }
    free(moved);
    return st;
}

/* Apply one record's payload. *bad when it does not parse. */
static loom_status_t apply(loom_ctx_t *ctx, ch_meta_t *m, const unsigned char *p, size_t n,
                           int *type_out, int *bad)
{
    rd_t r = {p, p + n, 0};
    int type = (int)get_u(&r, 1);
    uint64_t seq = get_u(&r, 8);
    *type_out = type;
    loom_status_t st = LOOM_OK;
    switch (type) {
    case R_MKDIR: {
        char *path = get_str(&r);
        double mtime = u2d(get_u(&r, 8));
        if (!r.bad) st = apply_mkdirs(ctx, m, path, mtime);
        free(path);
        break;
    }
    case R_FILE: {
        ch_entry_t f = {0};
        f.path = get_str(&r);
        f.chunk_size = get_u(&r, 8);
        f.repl = (int)get_u(&r, 4);
        f.mtime = u2d(get_u(&r, 8));
        f.nchunks = get_u(&r, 8);
        if (!r.bad && f.nchunks > (uint64_t)(r.end - r.p) / 24) r.bad = 1;
        if (!r.bad) {
            f.chunks = malloc((f.nchunks ? f.nchunks : 1) * sizeof *f.chunks);
            if (!f.chunks) r.bad = 1;
        }
        for (uint64_t i = 0; !r.bad && i < f.nchunks; i++) {
            f.chunks[i].id = get_u(&r, 8);
            f.chunks[i].version = get_u(&r, 8);
            f.chunks[i].len = get_u(&r, 8);
            f.size += f.chunks[i].len;
            if (f.chunks[i].id >= m->next_id) m->next_id = f.chunks[i].id + 1;
        }
        if (!r.bad) {
            char parent[CH_PATH_MAX + 1];
            ch_path_parent(f.path, parent, sizeof parent);
            st = apply_mkdirs(ctx, m, parent, f.mtime);
            if (st == LOOM_OK) st = put_entry(ctx, m, &f);
        } else {
            entry_free(&f);
        }
        break;
    }
    case R_REMOVE: {
        char *path = get_str(&r);
        if (!r.bad) apply_remove(m, path);
        free(path);
        break;
    }
    case R_RENAME: {
        char *src = get_str(&r), *dst = get_str(&r);
        if (!r.bad) st = apply_rename(ctx, m, src, dst);
        free(src);
        free(dst);
        break;
    }
    case R_RESERVE:
    case R_CKPT: {
        uint64_t next = get_u(&r, 8);
        if (!r.bad && next > m->next_id) m->next_id = next;
        break;
    }
    case R_END:
        break;
    default:
        r.bad = 1;
    }
    if (!r.bad && r.p != r.end) r.bad = 1;
    *bad = r.bad;
    if (!r.bad) m->seq = seq;
    return st;
}

/* Read a whole file; *data NULL with *n 0 when it does not exist. */
static loom_status_t slurp(loom_ctx_t *ctx, const char *path, unsigned char **data, size_t *n)
{
    *data = NULL;
    *n = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        if (errno == ENOENT) return LOOM_OK;
        return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: %s", path, strerror(errno));
    }
    struct stat sb;
    loom_status_t st = LOOM_OK;
    if (fstat(fd, &sb) != 0) st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: %s", path, strerror(errno));
    unsigned char *buf = st == LOOM_OK ? malloc((size_t)sb.st_size + 1) : NULL;
    if (st == LOOM_OK && !buf)
        st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory reading %s", path);
    size_t got = 0;
    while (st == LOOM_OK && got < (size_t)sb.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)sb.st_size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: read: %s", path, strerror(errno));
        got += r > 0 ? (size_t)r : 0;
    }
    close(fd);
    if (st != LOOM_OK) {
        free(buf);
        return st;
    }
    *data = buf;
    *n = got;
    return LOOM_OK;
}

/* Is there a whole record with a good CRC at p? */
static int record_at(const unsigned char *data, size_t n, size_t p)
{
    if (n - p < 8) return 0;
    uint32_t len = 0, crc = 0;
    for (int i = 0; i < 4; i++)
        len |= (uint32_t)data[p + i] << (8 * i);
    for (int i = 0; i < 4; i++)
        crc |= (uint32_t)data[p + 4 + i] << (8 * i);
    return len >= 9 && len <= REC_MAX && len <= n - p - 8 &&
           loom_crc32c(0, data + p + 8, len) == crc;
}

/* Replay a file of records. A checkpoint must be whole (it is written under another name and
 * renamed); the log may end in a torn record, which is reported and cut off. A damaged record
 * with good ones after it is not a torn end: the log is refused. */
static loom_status_t replay(loom_ctx_t *ctx, ch_meta_t *m, const char *path, int is_log,
                            uint64_t *good_end)
{
    unsigned char *data;
    size_t n;
    LOOM_TRY(slurp(ctx, path, &data, &n));
    size_t off = 0;
    loom_status_t st = LOOM_OK;
    int saw_end = 0, first = 1;
    while (st == LOOM_OK && off < n) {
        const char *why = NULL;
        uint32_t len = 0, crc = 0;
        if (n - off < 8) {
            why = "a record header cut short";
        } else {
            for (int i = 0; i < 4; i++)
                len |= (uint32_t)data[off + i] << (8 * i);
            for (int i = 0; i < 4; i++)
                crc |= (uint32_t)data[off + 4 + i] << (8 * i);
            if (len > REC_MAX || len < 9)
                why = "an impossible record length";
            else if (len > n - off - 8)
                why = "a record cut short";
            else if (loom_crc32c(0, data + off + 8, len) != crc)
                why = "a record failing its CRC32C";
        }
        int type = 0, bad = 0;
        uint64_t seq = 0;
        for (int i = 0; !why && i < 8; i++)
            seq |= (uint64_t)data[off + 9 + i] << (8 * i);
        if (!why && is_log && seq <= m->ckpt_seq) {
            off += 8 + len; /* already in the checkpoint */
            continue;
        }
        if (!why) {
            st = apply(ctx, m, data + off + 8, len, &type, &bad);
            if (bad) why = "a record that does not parse";
            if (!is_log && first && type != R_CKPT) why = "no checkpoint header";
        }
        if (st != LOOM_OK) break;
        if (why) {
            /* torn: a write cut short, so no whole record follows the damage */
            int torn = is_log;
            for (size_t q = off + 1; torn && q + 8 < n; q++)
                if (record_at(data, n, q)) torn = 0;
            if (torn) {
                loom_log(ctx, LOOM_LOG_WARN,
                         "chunk store: the operation log %s ends in a torn record at offset %zu "
                         "(%zu bytes: %s); it is dropped, the operation it held did not happen",
                         path, off, n - off, why);
                break;
            }
            st = LOOM_ERROR(ctx, LOOM_ERR_FORMAT,
                            "%s: offset %zu: %s; the store's metadata is damaged (not a torn end: "
                            "%zu bytes follow)",
                            path, off, why, n - off);
            break;
        }
        if (type == R_END) saw_end = 1;
        first = 0;
        off += 8 + len;
    }
    free(data);
    if (st == LOOM_OK && !is_log && n && !saw_end)
        st = LOOM_ERROR(ctx, LOOM_ERR_FORMAT, "%s: the checkpoint has no end record", path);
    *good_end = off;
    return st;
}

/* ------------------------------------------------------------------ open, log, checkpoint */

loom_status_t ch_meta_open(loom_ctx_t *ctx, const char *root, ch_meta_t *m)
{
    memset(m, 0, sizeof *m);
    m->log_fd = m->lock_fd = -1;
    m->next_id = 1;
    size_t dl = strlen(root) + 8;
    m->dir = malloc(dl);
    if (!m->dir) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    snprintf(m->dir, dl, "%s/master", root);
    if (mkdir(m->dir, 0755) != 0 && errno != EEXIST)
        return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: %s", m->dir, strerror(errno));
    LOOM_TRY(loom_store_lock(ctx, m->dir, &m->lock_fd));
    char path[4200];
    uint64_t end;
    snprintf(path, sizeof path, "%s/checkpoint", m->dir);
    LOOM_TRY(replay(ctx, m, path, 0, &end));
    m->ckpt_seq = m->seq;
    snprintf(path, sizeof path, "%s/log", m->dir);
    LOOM_TRY(replay(ctx, m, path, 1, &end));
    m->log_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (m->log_fd < 0) return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(m->log_fd, &sb) == 0 && (uint64_t)sb.st_size > end) {
        /* the torn bytes are kept aside (log.torn) before the log is cut */
        char torn[4200];
        snprintf(torn, sizeof torn, "%s/log.torn", m->dir);
        size_t tn = (size_t)sb.st_size - end;
        unsigned char *tb = malloc(tn);
        int tfd = tb ? open(torn, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : -1;
        if (tfd >= 0 && pread(m->log_fd, tb, tn, (off_t)end) == (ssize_t)tn) {
            if (write(tfd, tb, tn) != (ssize_t)tn) {
                /* best effort: the cut goes ahead */
            }
        }
        if (tfd >= 0) close(tfd);
        free(tb);
        if (ftruncate(m->log_fd, (off_t)end) != 0 || fdatasync(m->log_fd) != 0)
            return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cutting the torn record: %s", path,
                              strerror(errno));
    }
    if (lseek(m->log_fd, (off_t)end, SEEK_SET) < 0)
        return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: %s", path, strerror(errno));
    m->log_bytes = end;
    return LOOM_OK;
}

/* Write a sealed record to the log and sync it; then apply it. */
static loom_status_t log_and_apply(loom_ctx_t *ctx, ch_meta_t *m, loom_buf_t *b)
{
    rec_seal(b);
    char path[4200];
    snprintf(path, sizeof path, "%s/log", m->dir);
    loom_status_t st = write_all(ctx, m->log_fd, b->data, b->len, path);
    if (st == LOOM_OK && fdatasync(m->log_fd) != 0)
        st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: fdatasync: %s", path, strerror(errno));
    if (st != LOOM_OK) {
        /* nothing half-written stays behind to be replayed */
        if (ftruncate(m->log_fd, (off_t)m->log_bytes) == 0)
            lseek(m->log_fd, (off_t)m->log_bytes, SEEK_SET);
        loom_buf_free(b);
        return st;
    }
    m->log_bytes += b->len;
    m->log_records++;
    int type, bad;
    st = apply(ctx, m, b->data + 8, b->len - 8, &type, &bad);
    if (st == LOOM_OK && bad)
        st = LOOM_ERROR(ctx, LOOM_ERR_INTERNAL, "chunk store: a record it wrote does not parse");
    loom_buf_free(b);
    return st;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

loom_status_t ch_meta_mkdirs(loom_ctx_t *ctx, ch_meta_t *m, const char *path)
{
    loom_buf_t b = {0};
    loom_status_t st = rec_begin(ctx, &b, R_MKDIR, m->seq + 1);
    if (st == LOOM_OK) st = put_str(ctx, &b, path);
    if (st == LOOM_OK) st = put_u(ctx, &b, d2u(now()), 8);
    if (st != LOOM_OK) {
        loom_buf_free(&b);
        return st;
    }
    return log_and_apply(ctx, m, &b);
}

loom_status_t ch_meta_put_file(loom_ctx_t *ctx, ch_meta_t *m, const ch_entry_t *f)
{
    loom_buf_t b = {0};
    ch_entry_t g = *f;
    g.mtime = now();
    loom_status_t st = rec_begin(ctx, &b, R_FILE, m->seq + 1);
    if (st == LOOM_OK) st = rec_file(ctx, &b, &g);
    if (st != LOOM_OK) {
        loom_buf_free(&b);
        return st;
    }
    return log_and_apply(ctx, m, &b);
}

loom_status_t ch_meta_remove(loom_ctx_t *ctx, ch_meta_t *m, const char *path)
{
    loom_buf_t b = {0};
    loom_status_t st = rec_begin(ctx, &b, R_REMOVE, m->seq + 1);
    if (st == LOOM_OK) st = put_str(ctx, &b, path);
    if (st != LOOM_OK) {
        loom_buf_free(&b);
        return st;
    }
    return log_and_apply(ctx, m, &b);
}

loom_status_t ch_meta_rename(loom_ctx_t *ctx, ch_meta_t *m, const char *src, const char *dst)
{
    loom_buf_t b = {0};
    loom_status_t st = rec_begin(ctx, &b, R_RENAME, m->seq + 1);
    if (st == LOOM_OK) st = put_str(ctx, &b, src);
    if (st == LOOM_OK) st = put_str(ctx, &b, dst);
    if (st != LOOM_OK) {
        loom_buf_free(&b);
        return st;
    }
    return log_and_apply(ctx, m, &b);
}

/* Chunk ids are random 63-bit numbers, as GFS's chunk handles are unique: a put or append
 * that dies before its commit leaves replicas nobody refers to, and no later chunk can take
 * their id, without a log record before the data moves. */
loom_status_t ch_meta_new_ids(loom_ctx_t *ctx, ch_meta_t *m, uint64_t n, uint64_t *ids)
{
    for (uint64_t i = 0; i < n; i++) {
        for (;;) {
            uint64_t id = 0;
            if (getrandom(&id, sizeof id, 0) != (ssize_t)sizeof id)
                return LOOM_ERROR(ctx, LOOM_ERR_IO, "getrandom: %s", strerror(errno));
            id &= (UINT64_C(1) << 63) - 1;
            int taken = id == 0;
            for (uint64_t j = 0; j < i && !taken; j++)
                taken = ids[j] == id;
            for (size_t e = 0; e < m->n && !taken; e++)
                for (uint64_t c = 0; c < m->e[e].nchunks && !taken; c++)
                    taken = m->e[e].chunks[c].id == id;
            if (!taken) {
                ids[i] = id;
                break;
            }
        }
    }
    return LOOM_OK;
}

/* Append a sealed record to b's tail buffer `out`. */
static loom_status_t ckpt_add(loom_ctx_t *ctx, loom_buf_t *out, loom_buf_t *rec)
{
    rec_seal(rec);
    return loom_buf_append(ctx, out, rec->data, rec->len);
}

loom_status_t ch_meta_checkpoint(loom_ctx_t *ctx, ch_meta_t *m, uint64_t min_bytes)
{
    if (m->log_fd < 0 || m->log_bytes <= min_bytes) return LOOM_OK;
    loom_buf_t out = {0}, rec = {0};
    loom_status_t st = rec_begin(ctx, &rec, R_CKPT, m->seq);
    if (st == LOOM_OK) st = put_u(ctx, &rec, m->next_id, 8);
    if (st == LOOM_OK) st = ckpt_add(ctx, &out, &rec);
    for (size_t i = 0; st == LOOM_OK && i < m->n; i++) {
        const ch_entry_t *e = &m->e[i];
        st = rec_begin(ctx, &rec, e->is_dir ? R_MKDIR : R_FILE, m->seq);
        if (st == LOOM_OK && e->is_dir) {
            st = put_str(ctx, &rec, e->path);
            if (st == LOOM_OK) st = put_u(ctx, &rec, d2u(e->mtime), 8);
        } else if (st == LOOM_OK) {
            st = rec_file(ctx, &rec, e);
        }
        if (st == LOOM_OK) st = ckpt_add(ctx, &out, &rec);
    }
    if (st == LOOM_OK) st = rec_begin(ctx, &rec, R_END, m->seq);
    if (st == LOOM_OK) st = ckpt_add(ctx, &out, &rec);
    loom_buf_free(&rec);
    char tmp[4200], path[4200], log[4200];
    snprintf(tmp, sizeof tmp, "%s/checkpoint.tmp", m->dir);
    snprintf(path, sizeof path, "%s/checkpoint", m->dir);
    snprintf(log, sizeof log, "%s/log", m->dir);
    int fd = st == LOOM_OK ? open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : -1;
    if (st == LOOM_OK && fd < 0) st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: %s", tmp, strerror(errno));
    if (st == LOOM_OK) st = write_all(ctx, fd, out.data, out.len, tmp);
    if (st == LOOM_OK && fsync(fd) != 0)
        st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: fsync: %s", tmp, strerror(errno));
    if (fd >= 0) close(fd);
    loom_buf_free(&out);
    /* the checkpoint takes over, then the log starts again empty; a crash between the two
     * leaves records the checkpoint holds, which replay skips by sequence number */
    if (st == LOOM_OK && rename(tmp, path) != 0)
        st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: %s", path, strerror(errno));
    if (st != LOOM_OK) {
        unlink(tmp);
        return st;
    }
    /* the new checkpoint's name is durable before the log it replaces is emptied */
    int dfd = open(m->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int synced = dfd >= 0 && fsync(dfd) == 0;
    if (dfd >= 0) close(dfd);
    if (!synced) return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: fsync: %s", m->dir, strerror(errno));
    if (ftruncate(m->log_fd, 0) != 0 || fdatasync(m->log_fd) != 0 || lseek(m->log_fd, 0, SEEK_SET))
        return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: %s", log, strerror(errno));
    m->log_bytes = 0;
    m->log_records = 0;
    m->ckpt_seq = m->seq;
    return LOOM_OK;
}

void ch_meta_close(ch_meta_t *m)
{
    for (size_t i = 0; i < m->n; i++)
        entry_free(&m->e[i]);
    free(m->e);
    free(m->dir);
    if (m->log_fd >= 0) close(m->log_fd);
    if (m->lock_fd >= 0) close(m->lock_fd);
    memset(m, 0, sizeof *m);
    m->log_fd = m->lock_fd = -1;
}
