/* A holder's replica: its keys (and the hints it keeps for others) in memory, every change
 * appended to its log (kv.log) as a checksummed record of the key's whole state. */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernels/crc32c.h"
#include "kernels/hash.h"
#include "kv/kv_internal.h"

#define LOG_MAGIC "LOOMKV1\n"
#define LOG_HEAD 8
enum { REC_PUT = 1, REC_HINT = 2, REC_UNHINT = 3 };

/* ------------------------------------------------------------------ the table
 * Open addressing with linear probing over entry pointers; removal shifts back. */

static size_t slot_of(const kv_table_t *t, uint64_t hash, uint32_t target)
{
    return (size_t)(hash ^ ((uint64_t)target * LOOM_HASH_K1)) & (t->cap - 1);
}

kv_entry_t *kv_table_find(const kv_table_t *t, uint64_t hash, uint32_t target, const void *key,
                          size_t klen)
{
    if (!t->cap) return NULL;
    for (size_t i = slot_of(t, hash, target);; i = (i + 1) & (t->cap - 1)) {
        kv_entry_t *e = t->slot[i];
        if (!e) return NULL;
        if (e->hash == hash && e->target == target && e->klen == klen && !memcmp(e->key, key, klen))
            return e;
    }
}

static int grow(kv_table_t *t)
{
    size_t cap = t->cap ? t->cap * 2 : 1024;
    kv_entry_t **slot = calloc(cap, sizeof *slot);
    if (!slot) return -1;
    kv_table_t n = {slot, cap, t->count};
    for (size_t i = 0; i < t->cap; i++) {
        kv_entry_t *e = t->slot[i];
        if (!e) continue;
        size_t j = slot_of(&n, e->hash, e->target);
        while (slot[j])
            j = (j + 1) & (cap - 1);
        slot[j] = e;
    }
    free(t->slot);
    *t = n;
    return 0;
}

kv_entry_t *kv_table_add(kv_table_t *t, uint64_t hash, uint32_t target, const void *key,
                         size_t klen)
{
    kv_entry_t *e = kv_table_find(t, hash, target, key, klen);
    if (e) return e;
    if ((t->count + 1) * 4 > t->cap * 3 && grow(t)) return NULL;
    e = calloc(1, sizeof *e);
    if (!e || !(e->key = malloc(klen ? klen : 1))) {
        free(e);
        return NULL;
    }
    memcpy(e->key, key, klen);
    e->klen = (uint32_t)klen;
    e->hash = hash;
    e->target = target;
    e->digest = kv_sibs_digest(&e->sibs);
    size_t i = slot_of(t, hash, target);
    while (t->slot[i])
        i = (i + 1) & (t->cap - 1);
    t->slot[i] = e;
    t->count++;
    return e;
}

static void entry_free(kv_entry_t *e)
{
    kv_sibs_free(&e->sibs);
    free(e->key);
    free(e);
}

void kv_table_remove(kv_table_t *t, kv_entry_t *e)
{
    size_t i = slot_of(t, e->hash, e->target);
    while (t->slot[i] != e)
        i = (i + 1) & (t->cap - 1);
    t->slot[i] = NULL;
    /* shift back the entries of the run after the hole that may be placed before it */
    for (size_t j = (i + 1) & (t->cap - 1); t->slot[j]; j = (j + 1) & (t->cap - 1)) {
        size_t home = slot_of(t, t->slot[j]->hash, t->slot[j]->target);
        if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
            t->slot[i] = t->slot[j];
            t->slot[j] = NULL;
            i = j;
        }
    }
    t->count--;
    entry_free(e);
}

void kv_table_free(kv_table_t *t)
{
    for (size_t i = 0; i < t->cap; i++)
        if (t->slot[i]) entry_free(t->slot[i]);
    free(t->slot);
    t->slot = NULL;
    t->cap = t->count = 0;
}

/* ------------------------------------------------------------------ records */

/* Build the record of entry e (type REC_PUT, REC_HINT or REC_UNHINT) in h->rec. */
static loom_status_t build_record(kv_holder_t *h, int type, const kv_entry_t *e)
{
    size_t max = 8 + 1 + 20 + e->klen + (type == REC_UNHINT ? 0 : kv_sibs_encoded_max(&e->sibs));
    h->rec.len = 0;
    LOOM_TRY(loom_buf_reserve(h->ctx, &h->rec, max));
    unsigned char *base = h->rec.data, *p = base + 8;
    *p++ = (unsigned char)type;
    if (type != REC_PUT) p = loom_put_varint(p, e->target);
    p = loom_put_varint(p, e->klen);
    memcpy(p, e->key, e->klen);
    p += e->klen;
    if (type != REC_UNHINT) p = kv_sibs_encode(&e->sibs, p);
    uint32_t len = (uint32_t)(p - base - 8), crc = loom_crc32c(0, base + 8, len);
    memcpy(base, &len, 4);
    memcpy(base + 4, &crc, 4);
    h->rec.len = (size_t)(p - base);
    return LOOM_OK;
}

static loom_status_t write_all(kv_holder_t *h, int fd, const char *path, const void *data,
                               size_t len)
{
    const char *p = data;
    while (len) {
        ssize_t k = write(fd, p, len);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return LOOM_ERROR(h->ctx, LOOM_ERR_IO, "%s: write: %s", path, strerror(errno));
        p += k;
        len -= (size_t)k;
    }
    return LOOM_OK;
}

/* Records are gathered and written together (kv_holder_flush) before anything that depends
 * on them leaves the process: one write per loop turn or batch, not one per key. */
static loom_status_t append_record(kv_holder_t *h, int type, kv_entry_t *e)
{
    LOOM_TRY(build_record(h, type, e));
    LOOM_TRY(loom_buf_append(h->ctx, &h->pending, h->rec.data, h->rec.len));
    h->log_bytes += h->rec.len;
    h->dirty = 1;
    if (h->pending.len >= (4u << 20)) return kv_holder_flush(h);
    return LOOM_OK;
}

loom_status_t kv_holder_flush(kv_holder_t *h)
{
    if (!h->pending.len || h->fd < 0) return LOOM_OK;
    loom_status_t st = write_all(h, h->fd, h->log_path, h->pending.data, h->pending.len);
    h->pending.len = 0;
    if (h->pending.cap > (16u << 20)) loom_buf_free(&h->pending);
    return st;
}

static void account(kv_holder_t *h, kv_entry_t *e, size_t bytes)
{
    h->live_bytes -= e->rec_bytes;
    e->rec_bytes = (uint32_t)bytes;
    h->live_bytes += bytes;
}

loom_status_t kv_holder_merge(kv_holder_t *h, uint32_t target, uint64_t hash, const void *key,
                              size_t klen, const kv_sibs_t *in, int *changed, kv_entry_t **out)
{
    kv_table_t *t = target == KV_NO_TARGET ? &h->main : &h->hints;
    kv_entry_t *e = kv_table_add(t, hash, target, key, klen);
    if (!e) return LOOM_ERROR(h->ctx, LOOM_ERR_NOMEM, "out of memory adding a key");
    int c = kv_sibs_merge(&e->sibs, in);
    if (c < 0) return LOOM_ERROR(h->ctx, LOOM_ERR_NOMEM, "out of memory merging versions");
    if (changed) *changed = c;
    if (!c && !e->sibs.n) {
        /* nothing came for a key this holder did not have: no entry either */
        kv_table_remove(t, e);
        e = NULL;
    }
    if (out) *out = e;
    if (!c) return LOOM_OK;
    e->digest = kv_sibs_digest(&e->sibs);
    LOOM_TRY(append_record(h, target == KV_NO_TARGET ? REC_PUT : REC_HINT, e));
    account(h, e, h->rec.len);
    return LOOM_OK;
}

loom_status_t kv_holder_drop_hint(kv_holder_t *h, kv_entry_t *e)
{
    LOOM_TRY(append_record(h, REC_UNHINT, e));
    account(h, e, 0);
    kv_table_remove(&h->hints, e);
    return LOOM_OK;
}

/* ------------------------------------------------------------------ syncing in the background
 * With --fsync everysec the service's loop must not wait for the disk (an fdatasync of a
 * second's records can take longer than a peer's timeout): a thread syncs the log while the
 * loop goes on, as Redis's appendfsync everysec does. */

struct kv_syncer {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int fd, want, busy, quit, err;
};

static void *syncer_main(void *arg)
{
    struct kv_syncer *g = arg;
    pthread_mutex_lock(&g->mu);
    for (;;) {
        while (!g->want && !g->quit)
            pthread_cond_wait(&g->cv, &g->mu);
        if (g->quit) break;
        g->want = 0;
        g->busy = 1;
        int fd = g->fd;
        pthread_mutex_unlock(&g->mu);
        int e = fdatasync(fd) ? errno : 0;
        pthread_mutex_lock(&g->mu);
        if (e && !g->err) g->err = e;
        g->busy = 0;
        pthread_cond_broadcast(&g->cv);
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

/* Wait until the thread is idle (before the descriptor changes or closes); its error. */
static loom_status_t syncer_idle(kv_holder_t *h)
{
    struct kv_syncer *g = h->bg;
    if (!g) return LOOM_OK;
    pthread_mutex_lock(&g->mu);
    while (g->want || g->busy)
        pthread_cond_wait(&g->cv, &g->mu);
    int e = g->err;
    g->err = 0;
    pthread_mutex_unlock(&g->mu);
    if (e) return LOOM_ERROR(h->ctx, LOOM_ERR_IO, "%s: fdatasync: %s", h->log_path, strerror(e));
    return LOOM_OK;
}

loom_status_t kv_holder_sync_later(kv_holder_t *h)
{
    LOOM_TRY(kv_holder_flush(h));
    if (!h->dirty || h->fd < 0) return LOOM_OK;
    if (!h->bg) {
        struct kv_syncer *g = calloc(1, sizeof *g);
        if (!g) return LOOM_ERROR(h->ctx, LOOM_ERR_NOMEM, "out of memory");
        pthread_mutex_init(&g->mu, NULL);
        pthread_cond_init(&g->cv, NULL);
        if (pthread_create(&g->th, NULL, syncer_main, g)) {
            pthread_mutex_destroy(&g->mu);
            pthread_cond_destroy(&g->cv);
            free(g);
            return kv_holder_sync(h); /* no thread: sync here */
        }
        h->bg = g;
    }
    struct kv_syncer *g = h->bg;
    pthread_mutex_lock(&g->mu);
    int e = g->err;
    g->err = 0;
    if (!g->busy) { /* a sync under way covers less; the next second's call takes the rest */
        g->fd = h->fd;
        g->want = 1;
        pthread_cond_signal(&g->cv);
        h->dirty = 0;
        h->synced_at = loom_wtime();
    }
    pthread_mutex_unlock(&g->mu);
    if (e) return LOOM_ERROR(h->ctx, LOOM_ERR_IO, "%s: fdatasync: %s", h->log_path, strerror(e));
    return LOOM_OK;
}

static void syncer_stop(kv_holder_t *h)
{
    struct kv_syncer *g = h->bg;
    if (!g) return;
    pthread_mutex_lock(&g->mu);
    g->quit = 1;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    pthread_join(g->th, NULL);
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
    free(g);
    h->bg = NULL;
}

loom_status_t kv_holder_sync(kv_holder_t *h)
{
    LOOM_TRY(syncer_idle(h));
    LOOM_TRY(kv_holder_flush(h));
    if (!h->dirty || h->fd < 0) return LOOM_OK;
    if (fdatasync(h->fd))
        return LOOM_ERROR(h->ctx, LOOM_ERR_IO, "%s: fdatasync: %s", h->log_path, strerror(errno));
    h->dirty = 0;
    h->synced_at = loom_wtime();
    return LOOM_OK;
}

static loom_status_t sync_dir(kv_holder_t *h)
{
    int fd = open(h->dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return LOOM_ERROR(h->ctx, LOOM_ERR_IO, "%s: %s", h->dir, strerror(errno));
    int r = fsync(fd);
    close(fd);
    if (r) return LOOM_ERROR(h->ctx, LOOM_ERR_IO, "%s: fsync: %s", h->dir, strerror(errno));
    return LOOM_OK;
}

static loom_status_t write_table(kv_holder_t *h, int fd, const char *path, kv_table_t *t, int type,
                                 uint64_t *bytes)
{
    for (size_t i = 0; i < t->cap; i++) {
        kv_entry_t *e = t->slot[i];
        if (!e) continue;
        LOOM_TRY(build_record(h, type, e));
        LOOM_TRY(write_all(h, fd, path, h->rec.data, h->rec.len));
        e->rec_bytes = (uint32_t)h->rec.len;
        *bytes += h->rec.len;
    }
    return LOOM_OK;
}

loom_status_t kv_holder_compact(kv_holder_t *h, int force)
{
    if (!force && (h->log_bytes < KV_COMPACT_MIN_BYTES ||
                   h->log_bytes <= KV_COMPACT_RATIO * (h->live_bytes + LOG_HEAD)))
        return LOOM_OK;
    LOOM_TRY(kv_holder_flush(h));
    LOOM_TRY(syncer_idle(h)); /* the descriptor is about to change */
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.new", h->log_path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return LOOM_ERROR(h->ctx, LOOM_ERR_IO, "%s: %s", tmp, strerror(errno));
    uint64_t bytes = LOG_HEAD;
    loom_status_t st = write_all(h, fd, tmp, LOG_MAGIC, LOG_HEAD);
    if (st == LOOM_OK) st = write_table(h, fd, tmp, &h->main, REC_PUT, &bytes);
    if (st == LOOM_OK) st = write_table(h, fd, tmp, &h->hints, REC_HINT, &bytes);
    if (st == LOOM_OK && fdatasync(fd))
        st = LOOM_ERROR(h->ctx, LOOM_ERR_IO, "%s: fdatasync: %s", tmp, strerror(errno));
    if (st == LOOM_OK && rename(tmp, h->log_path))
        st = LOOM_ERROR(h->ctx, LOOM_ERR_IO, "%s: rename: %s", tmp, strerror(errno));
    if (st != LOOM_OK) {
        close(fd);
        unlink(tmp);
        return st;
    }
    close(h->fd);
    h->fd = fd;
    h->log_bytes = h->live_bytes = bytes;
    h->dirty = 0;
    return sync_dir(h);
}

/* ------------------------------------------------------------------ replay */

/* Whether a whole record (length in range, CRC good) starts at buf + at. */
static int whole_record(const unsigned char *buf, size_t size, size_t at, uint32_t *len_out)
{
    uint32_t len, crc;
    if (size - at < 8) return 0;
    memcpy(&len, buf + at, 4);
    memcpy(&crc, buf + at + 4, 4);
    if (len == 0 || len > size - at - 8) return 0;
    if (loom_crc32c(0, buf + at + 8, len) != crc) return 0;
    *len_out = len;
    return 1;
}

/* Apply one record's payload; -1 when it does not decode. */
static int apply(kv_holder_t *h, const unsigned char *p, const unsigned char *end, size_t max_value,
                 size_t rec_bytes)
{
    int type = *p++;
    uint64_t target = KV_NO_TARGET, klen;
    if (type < REC_PUT || type > REC_UNHINT) return -1;
    if (type != REC_PUT && (!(p = loom_get_varint(p, end, &target)) || target >= KV_NO_TARGET))
        return -1;
    if (!(p = loom_get_varint(p, end, &klen)) || klen > (uint64_t)(end - p)) return -1;
    const unsigned char *key = p;
    p += klen;
    uint64_t hash = loom_key_hash(key, klen);
    kv_table_t *t = type == REC_PUT ? &h->main : &h->hints;
    if (type == REC_UNHINT) {
        kv_entry_t *e = kv_table_find(t, hash, (uint32_t)target, key, klen);
        if (e) {
            account(h, e, 0);
            kv_table_remove(t, e);
        }
        return p == end ? 0 : -1;
    }
    kv_sibs_t s;
    /* not the clients' --max-value: what was acknowledged stays readable under any limit */
    (void)max_value;
    int r = kv_sibs_decode(&p, end, SIZE_MAX, &s);
    if (r || p != end) {
        if (!r) kv_sibs_free(&s);
        return r == -2 ? -2 : -1;
    }
    kv_entry_t *e = kv_table_add(t, hash, (uint32_t)target, key, klen);
    if (!e) {
        kv_sibs_free(&s);
        return -2;
    }
    kv_sibs_free(&e->sibs);
    e->sibs = s;
    e->digest = kv_sibs_digest(&s);
    account(h, e, rec_bytes);
    return 0;
}

static loom_status_t read_file(kv_holder_t *h, int fd, unsigned char **buf, size_t *size)
{
    struct stat sb;
    if (fstat(fd, &sb))
        return LOOM_ERROR(h->ctx, LOOM_ERR_IO, "%s: %s", h->log_path, strerror(errno));
    *size = (size_t)sb.st_size;
    *buf = malloc(*size ? *size : 1);
    if (!*buf) return LOOM_ERROR(h->ctx, LOOM_ERR_NOMEM, "out of memory reading %s", h->log_path);
    size_t got = 0;
    while (got < *size) {
        ssize_t k = pread(fd, *buf + got, *size - got, (off_t)got);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            free(*buf);
            return LOOM_ERROR(h->ctx, LOOM_ERR_IO, "%s: read: %s", h->log_path,
                              k < 0 ? strerror(errno) : "file shrank");
        }
        got += (size_t)k;
    }
    return LOOM_OK;
}

static loom_status_t replay(kv_holder_t *h, size_t max_value)
{
    unsigned char *buf = NULL;
    size_t size = 0, at = LOG_HEAD;
    LOOM_TRY(read_file(h, h->fd, &buf, &size));
    loom_status_t st = LOOM_OK;
    if (size == 0) {
        st = write_all(h, h->fd, h->log_path, LOG_MAGIC, LOG_HEAD);
        size = LOG_HEAD;
        h->dirty = 1;
    } else if (size < LOG_HEAD || memcmp(buf, LOG_MAGIC, LOG_HEAD)) {
        st = LOOM_ERROR(h->ctx, LOOM_ERR_FORMAT, "%s: not a Loom key/value log (bad header)",
                        h->log_path);
    }
    while (st == LOOM_OK && at < size) {
        uint32_t len;
        int r = whole_record(buf, size, at, &len)
                    ? apply(h, buf + at + 8, buf + at + 8 + len, max_value, (size_t)len + 8)
                    : -1;
        if (r == 0) {
            at += 8 + (size_t)len;
            continue;
        }
        if (r == -2) {
            st = LOOM_ERROR(h->ctx, LOOM_ERR_NOMEM, "out of memory replaying %s", h->log_path);
            break;
        }
        /* damage at `at`: a torn end unless a whole record follows */
        for (size_t q = at + 1; q + 8 < size; q++) {
            uint32_t l2;
            if (whole_record(buf, size, q, &l2)) {
                st = LOOM_ERROR(h->ctx, LOOM_ERR_FORMAT,
                                "%s: damaged record at offset %zu (whole records follow at "
                                "offset %zu); the log is left as it is",
                                h->log_path, at, q);
                break;
            }
        }
        if (st != LOOM_OK) break;
        fprintf(stderr, "loom: kv: %s: torn record at offset %zu: %zu bytes dropped\n", h->log_path,
                at, size - at);
        h->torn_bytes = size - at;
        if (ftruncate(h->fd, (off_t)at))
            st = LOOM_ERROR(h->ctx, LOOM_ERR_IO, "%s: ftruncate: %s", h->log_path, strerror(errno));
        h->dirty = 1;
        size = at;
    }
    free(buf);
    h->log_bytes = size;
    h->live_bytes += LOG_HEAD;
    return st;
}

loom_status_t kv_holder_open(loom_ctx_t *ctx, const char *dir, int fsync_mode, size_t max_value,
                             kv_holder_t *h)
{
    memset(h, 0, sizeof *h);
    h->ctx = ctx;
    h->fd = -1;
    h->fsync = fsync_mode;
    if (snprintf(h->dir, sizeof h->dir, "%s", dir) >= (int)sizeof h->dir ||
        snprintf(h->log_path, sizeof h->log_path, "%s/kv.log", dir) >= (int)sizeof h->log_path)
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "%s: path too long", dir);
    if (mkdir(dir, 0755) && errno != EEXIST)
        return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: %s", dir, strerror(errno));
    h->fd = open(h->log_path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (h->fd < 0) return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: %s", h->log_path, strerror(errno));
    loom_status_t st = replay(h, max_value);
    if (st == LOOM_OK) st = kv_holder_sync(h);
    if (st == LOOM_OK) st = kv_holder_compact(h, 0);
    if (st != LOOM_OK) kv_holder_close(h);
    h->synced_at = loom_wtime();
    return st;
}

void kv_holder_close(kv_holder_t *h)
{
    kv_holder_flush(h);
    syncer_idle(h);
    syncer_stop(h);
    loom_buf_free(&h->pending);
    if (h->fd >= 0) close(h->fd);
    h->fd = -1;
    kv_table_free(&h->main);
    kv_table_free(&h->hints);
    loom_buf_free(&h->rec);
}
