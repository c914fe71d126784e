/* Unit tests of a key/value holder's replica and log (src/kv/holder.c), in the test's scratch
 * directory: what is merged comes back after a reopen (values and sibling sets); hints survive
 * and their drops too; a log cut anywhere inside its last record reopens without that record
 * (a "torn" line on stderr) and with every earlier one; a damaged record followed by whole ones
 * refuses to open (LOOM_ERR_FORMAT) and leaves the file as it was; compaction keeps the content
 * and shrinks the log; a file that is not a key/value log is refused. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kv/kv_internal.h"
#include "loom_test.h"

#define MAXV ((size_t)1 << 20)

/* ------------------------------------------------------------------ helpers */

static uint64_t rng = 0x686f6c6465727473ULL;
static uint64_t next_rand(void)
{
    return loom_test_rand(&rng);
}
static uint64_t rand_below(uint64_t n)
{
    return n ? next_rand() % n : 0;
}

/* A fresh (missing) holder directory for case `name`; its log's path in log (may be NULL). */
static const char *fresh_dir(const char *name, char *log, size_t cap)
{
    static char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/kv_holder_%s", loom_test_tmpdir(), name);
    loom_test_rmtree(dir);
    if (log && (size_t)snprintf(log, cap, "%s/kv.log", dir) >= cap) log[0] = '\0';
    return dir;
}

static unsigned char *slurp(const char *path, size_t *n)
{
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(size > 0 ? (size_t)size : 1);
    if (buf && size > 0 && fread(buf, 1, (size_t)size, f) != (size_t)size) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) *n = (size_t)size;
    return buf;
}

static void spit(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_EQUAL(fwrite(data, 1, n, f), n);
    CU_ASSERT_EQUAL(fclose(f), 0);
}

static long file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

static loom_status_t hopen(const char *dir, size_t max_value, kv_holder_t *h)
{
    loom_status_t st = kv_holder_open(loom_test_ctx, dir, LOOM_KV_FSYNC_NO, max_value, h);
    if (st != LOOM_OK) loom_error_clear(loom_test_ctx);
    return st;
}

static int open_ok(const char *dir, kv_holder_t *h)
{
    loom_status_t st = kv_holder_open(loom_test_ctx, dir, LOOM_KV_FSYNC_NO, MAXV, h);
    CU_ASSERT_EQUAL(st, LOOM_OK);
    if (st != LOOM_OK) {
        fprintf(stderr, "  open %s: %s\n", dir, loom_error_message(loom_test_ctx));
        loom_error_clear(loom_test_ctx);
    }
    return st == LOOM_OK;
}

/* stderr into a file while a call runs, to read what it printed. */
typedef struct capture {
    int saved;
    char path[PATH_MAX];
} capture_t;

static void capture_start(capture_t *c)
{
    snprintf(c->path, sizeof c->path, "%s/kv_holder_stderr.txt", loom_test_tmpdir());
    fflush(stderr);
    c->saved = dup(2);
    int fd = open(c->path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CU_ASSERT_FATAL(fd >= 0 && c->saved >= 0);
    dup2(fd, 2);
    close(fd);
}

/* What was printed (malloc'd, NUL-terminated). */
static char *capture_end(capture_t *c)
{
    fflush(stderr);
    dup2(c->saved, 2);
    close(c->saved);
    size_t n;
    unsigned char *b = slurp(c->path, &n);
    char *s = malloc(n + 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    if (b) memcpy(s, b, n);
    s[b ? n : 0] = '\0';
    free(b);
    unlink(c->path);
    return s;
}

/* A one-version set: dot (node, counter) written over ctx (NULL: none), value from the dot
 * (vlen bytes), or a tombstone. */
static kv_sibs_t one_version(uint32_t node, uint64_t counter, const kv_clock_t *ctx, size_t vlen,
                             int dead)
{
    kv_sibs_t s = {1, calloc(1, sizeof(kv_version_t))};
    CU_ASSERT_PTR_NOT_NULL_FATAL(s.v);
    kv_version_t *v = s.v;
    v->dot = (kv_dot_t){node, counter};
    v->ts = counter * 3 + node;
    v->dead = dead;
    if (ctx) CU_ASSERT_EQUAL(kv_clock_join(&v->ctx, ctx), 0);
    if (!dead && vlen) {
        v->len = (uint32_t)vlen;
        v->val = malloc(vlen);
        CU_ASSERT_PTR_NOT_NULL_FATAL(v->val);
        for (size_t i = 0; i < vlen; i++)
            v->val[i] = (unsigned char)(counter * 7 + node * 13 + i * 31);
    }
    return s;
}

static loom_status_t merge(kv_holder_t *h, uint32_t target, const char *key, const kv_sibs_t *in,
                           int *changed)
{
    kv_entry_t *e = NULL;
    loom_status_t st = kv_holder_merge(h, target, loom_key_hash(key, strlen(key)), key, strlen(key),
                                       in, changed, &e);
    CU_ASSERT_EQUAL(st, LOOM_OK);
    if (st == LOOM_OK) {
        /* an empty merge into a key the holder does not have leaves no entry */
        if (in->n) CU_ASSERT_PTR_NOT_NULL(e);
        if (e) CU_ASSERT_EQUAL(e->digest, kv_sibs_digest(&e->sibs));
    } else {
        fprintf(stderr, "  merge %s: %s\n", key, loom_error_message(loom_test_ctx));
        loom_error_clear(loom_test_ctx);
    }
    return st;
}

/* Overwrite `key` in the main table with a version that supersedes what it holds. */
static void overwrite(kv_holder_t *h, const char *key, uint32_t node, uint64_t counter, size_t vlen,
                      int dead)
{
    kv_entry_t *e =
        kv_table_find(&h->main, loom_key_hash(key, strlen(key)), KV_NO_TARGET, key, strlen(key));
    kv_clock_t ctx = {0};
    if (e) CU_ASSERT_EQUAL(kv_sibs_context(&e->sibs, &ctx), 0);
    kv_sibs_t s = one_version(node, counter, &ctx, vlen, dead);
    int changed = 0;
    merge(h, KV_NO_TARGET, key, &s, &changed);
    CU_ASSERT_EQUAL(changed, 1);
    kv_sibs_free(&s);
    kv_clock_free(&ctx);
}

static kv_entry_t *find(const kv_holder_t *h, uint32_t target, const char *key)
{
    const kv_table_t *t = target == KV_NO_TARGET ? &h->main : &h->hints;
    return kv_table_find(t, loom_key_hash(key, strlen(key)), target, key, strlen(key));
}

static int clock_eq(const kv_clock_t *a, const kv_clock_t *b)
{
    if (a->n != b->n) return 0;
    for (uint32_t i = 0; i < a->n; i++)
        if (a->e[i].node != b->e[i].node || a->e[i].counter != b->e[i].counter) return 0;
    return 1;
}

static int version_eq(const kv_version_t *v, const kv_version_t *w)
{
    return v->dot.node == w->dot.node && v->dot.counter == w->dot.counter &&
           clock_eq(&v->ctx, &w->ctx) && v->ts == w->ts && !v->dead == !w->dead &&
           v->len == w->len && (!v->len || !memcmp(v->val, w->val, v->len));
}

/* The same versions (in any order). */
static int sibs_eq(const kv_sibs_t *a, const kv_sibs_t *b)
{
    if (a->n != b->n) return 0;
    for (uint32_t i = 0; i < a->n; i++) {
        int found = 0;
        for (uint32_t j = 0; j < b->n && !found; j++)
            found = version_eq(&a->v[i], &b->v[j]);
        if (!found) return 0;
    }
    return 1;
}

/* A deep copy of a holder's tables, to compare with after a reopen. */
typedef struct snap_entry {
    uint32_t target;
    char key[64];
    kv_sibs_t sibs;
} snap_entry_t;

typedef struct snap {
    size_t n, main, hints;
    snap_entry_t *e;
} snap_t;

static void snap_take(const kv_holder_t *h, snap_t *s)
{
    s->main = h->main.count;
    s->hints = h->hints.count;
    s->n = 0;
    s->e = calloc(s->main + s->hints + 1, sizeof *s->e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s->e);
    const kv_table_t *t[2] = {&h->main, &h->hints};
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < t[k]->cap; i++) {
            const kv_entry_t *e = t[k]->slot[i];
            if (!e) continue;
            snap_entry_t *d = &s->e[s->n++];
            d->target = e->target;
            CU_ASSERT_FATAL(e->klen < sizeof d->key);
            memcpy(d->key, e->key, e->klen);
            CU_ASSERT_EQUAL(kv_sibs_copy(&d->sibs, &e->sibs), 0);
        }
    CU_ASSERT_EQUAL(s->n, s->main + s->hints);
}

/* The holder holds exactly the snapshot; failures named. */
static int snap_same(const kv_holder_t *h, const snap_t *s)
{
    int ok = 1;
    if (h->main.count != s->main || h->hints.count != s->hints) {
        fprintf(stderr, "  %zu keys and %zu hints, expected %zu and %zu\n", h->main.count,
                h->hints.count, s->main, s->hints);
        ok = 0;
    }
    for (size_t i = 0; i < s->n; i++) {
        const kv_entry_t *e = find(h, s->e[i].target, s->e[i].key);
        if (!e || !sibs_eq(&e->sibs, &s->e[i].sibs)) {
            if (ok)
                fprintf(stderr, "  key %s (target %u): %s\n", s->e[i].key, (unsigned)s->e[i].target,
                        e ? "other versions" : "missing");
            ok = 0;
        }
    }
    return ok;
}

static void snap_free(snap_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        kv_sibs_free(&s->e[i].sibs);
    free(s->e);
    memset(s, 0, sizeof *s);
}

/* ------------------------------------------------------------------ reopen */

static void test_reopen(void)
{
    char log[PATH_MAX];
    const char *dir = fresh_dir("reopen", log, sizeof log);
    kv_holder_t h;
    if (!open_ok(dir, &h)) return;
    CU_ASSERT_EQUAL(h.main.count, 0);
    CU_ASSERT_EQUAL(file_size(log), 8);
    uint64_t ctr = 1;
    char key[64];
    /* 1500 keys (the table grows past its first size): plain values, overwrites, siblings
     * (two writes over the same context), tombstones, empty and large values */
    for (int i = 0; i < 1500; i++) {
        snprintf(key, sizeof key, "key-%d", i);
        size_t vlen = i % 100 == 0 ? 20000 + rand_below(5000) : rand_below(40);
        overwrite(&h, key, 1 + (uint32_t)rand_below(3), ctr++, vlen, 0);
        switch (i % 5) {
        case 1:
            overwrite(&h, key, 2, ctr++, rand_below(40), 0);
            break;
        case 2: { /* a concurrent write: siblings */
            kv_sibs_t s = one_version(3, ctr++, NULL, 10, 0);
            int changed = 0;
            merge(&h, KV_NO_TARGET, key, &s, &changed);
            CU_ASSERT_EQUAL(changed, 1);
            kv_sibs_free(&s);
            CU_ASSERT_EQUAL(find(&h, KV_NO_TARGET, key)->sibs.n, 2);
            break;
        }
        case 3:
            overwrite(&h, key, 1, ctr++, 0, 1); /* deleted */
            break;
        default:
            break;
        }
    }
    CU_ASSERT_EQUAL(h.main.count, 1500);
    /* merging what is there changes nothing and writes nothing */
    uint64_t bytes = h.log_bytes;
    kv_entry_t *e = find(&h, KV_NO_TARGET, "key-7");
    kv_sibs_t same;
    CU_ASSERT_EQUAL_FATAL(kv_sibs_copy(&same, &e->sibs), 0);
    int changed = 1;
    merge(&h, KV_NO_TARGET, "key-7", &same, &changed);
    CU_ASSERT_EQUAL(changed, 0);
    CU_ASSERT_EQUAL(h.log_bytes, bytes);
    kv_sibs_free(&same);
    CU_ASSERT_EQUAL(kv_holder_sync(&h), LOOM_OK);
    CU_ASSERT_EQUAL((long)h.log_bytes, file_size(log));
    CU_ASSERT(h.live_bytes <= h.log_bytes);
    uint64_t live = h.live_bytes;
    snap_t s;
    snap_take(&h, &s);
    kv_holder_close(&h);

    if (open_ok(dir, &h)) {
        CU_ASSERT(snap_same(&h, &s));
        CU_ASSERT_EQUAL(h.torn_bytes, 0);
        CU_ASSERT_EQUAL(h.live_bytes, live);
        CU_ASSERT_EQUAL((long)h.log_bytes, file_size(log));
        kv_holder_close(&h);
    }
    /* twice: the reopen itself changed nothing */
    if (open_ok(dir, &h)) {
        CU_ASSERT(snap_same(&h, &s));
        kv_holder_close(&h);
    }
    snap_free(&s);
}

/* A merge that changes nothing (no versions, into a key not held) leaves the replica as the
 * log will give it back: no key in memory that a reopen would not find. */
static void test_empty_merge(void)
{
    char log[PATH_MAX];
    const char *dir = fresh_dir("empty", log, sizeof log);
    kv_holder_t h;
    if (!open_ok(dir, &h)) return;
    overwrite(&h, "present", 1, 1, 5, 0);
    kv_sibs_t none = {0};
    int changed = 1;
    merge(&h, KV_NO_TARGET, "absent", &none, &changed);
    CU_ASSERT_EQUAL(changed, 0);
    size_t in_memory = h.main.count;
    kv_holder_close(&h);
    if (open_ok(dir, &h)) {
        CU_ASSERT_EQUAL(h.main.count, in_memory);
        if (h.main.count != in_memory)
            fprintf(stderr, "  %zu keys in memory before close, %zu after reopen\n", in_memory,
                    h.main.count);
        kv_holder_close(&h);
    }
}

/* ------------------------------------------------------------------ hints */

static void test_hints(void)
{
    char log[PATH_MAX];
    const char *dir = fresh_dir("hints", log, sizeof log);
    kv_holder_t h;
    if (!open_ok(dir, &h)) return;
    kv_sibs_t a = one_version(1, 10, NULL, 7, 0), b = one_version(2, 11, NULL, 9, 0);
    kv_sibs_t c = one_version(3, 12, NULL, 0, 1);
    int changed = 0;
    merge(&h, KV_NO_TARGET, "a", &a, &changed); /* the same key kept for itself */
    merge(&h, 2, "a", &b, &changed);            /* and for holder 2 */
    CU_ASSERT_EQUAL(changed, 1);
    merge(&h, 5, "a", &c, &changed); /* and for holder 5 */
    merge(&h, 5, "b", &a, &changed);
    merge(&h, 7, "c", &b, &changed);
    CU_ASSERT_EQUAL(h.main.count, 1);
    CU_ASSERT_EQUAL(h.hints.count, 4);
    snap_t s;
    snap_take(&h, &s);
    kv_holder_close(&h);
    if (!open_ok(dir, &h)) {
        snap_free(&s);
        return;
    }
    CU_ASSERT(snap_same(&h, &s));
    CU_ASSERT_PTR_NOT_NULL(find(&h, 2, "a"));
    CU_ASSERT_PTR_NULL(find(&h, 3, "a"));
    CU_ASSERT_PTR_NULL(find(&h, KV_NO_TARGET, "b"));
    /* drop two hints; the others stay */
    uint64_t live = h.live_bytes;
    CU_ASSERT_EQUAL(kv_holder_drop_hint(&h, find(&h, 2, "a")), LOOM_OK);
    CU_ASSERT_EQUAL(kv_holder_drop_hint(&h, find(&h, 7, "c")), LOOM_OK);
    CU_ASSERT(h.live_bytes < live);
    CU_ASSERT_EQUAL(h.hints.count, 2);
    CU_ASSERT_PTR_NULL(find(&h, 2, "a"));
    CU_ASSERT_PTR_NOT_NULL(find(&h, KV_NO_TARGET, "a"));
    CU_ASSERT_PTR_NOT_NULL(find(&h, 5, "a"));
    snap_free(&s);
    snap_take(&h, &s);
    live = h.live_bytes;
    kv_holder_close(&h);
    if (open_ok(dir, &h)) {
        CU_ASSERT(snap_same(&h, &s));
        CU_ASSERT_PTR_NULL(find(&h, 2, "a"));
        CU_ASSERT_PTR_NULL(find(&h, 7, "c"));
        CU_ASSERT_EQUAL(h.live_bytes, live);
        /* a hint for the same home again after its drop: back, and kept */
        merge(&h, 2, "a", &b, &changed);
        CU_ASSERT_EQUAL(changed, 1);
        snap_free(&s);
        snap_take(&h, &s);
        kv_holder_close(&h);
        if (open_ok(dir, &h)) {
            CU_ASSERT(snap_same(&h, &s));
            CU_ASSERT_PTR_NOT_NULL(find(&h, 2, "a"));
            /* compaction keeps the hints and forgets the dropped ones */
            CU_ASSERT_EQUAL(kv_holder_drop_hint(&h, find(&h, 5, "b")), LOOM_OK);
            snap_free(&s);
            snap_take(&h, &s);
            CU_ASSERT_EQUAL(kv_holder_compact(&h, 1), LOOM_OK);
            CU_ASSERT(snap_same(&h, &s));
            kv_holder_close(&h);
            if (open_ok(dir, &h)) {
                CU_ASSERT(snap_same(&h, &s));
                CU_ASSERT_PTR_NULL(find(&h, 5, "b"));
                kv_holder_close(&h);
            }
        }
    }
    snap_free(&s);
    kv_sibs_free(&a);
    kv_sibs_free(&b);
    kv_sibs_free(&c);
}

/* ------------------------------------------------------------------ damage */

/* Ten keys, then the last record: an overwrite of key-3 (or a new key). Offsets of the
 * records in rec[] (rec[k] = start of record k, rec[nrec] = the end). */
static int build_log(const char *dir, int last_is_new, uint64_t *rec, int *nrec, snap_t *before,
                     snap_t *after)
{
    kv_holder_t h;
    if (!open_ok(dir, &h)) return 0;
    int n = 0;
    char key[32];
    for (int i = 0; i < 10; i++) {
        rec[n++] = h.log_bytes;
        snprintf(key, sizeof key, "key-%d", i);
        overwrite(&h, key, 1, 100 + (uint64_t)i, 10 + (size_t)i * 3, 0);
    }
    snap_take(&h, before);
    rec[n++] = h.log_bytes;
    if (last_is_new)
        overwrite(&h, "key-new", 2, 500, 40, 0);
    else
        overwrite(&h, "key-3", 2, 500, 40, 0);
    rec[n] = h.log_bytes;
    *nrec = n;
    snap_take(&h, after);
    kv_holder_close(&h);
    return 1;
}

static void test_torn_tail(void)
{
    char log[PATH_MAX];
    for (int last_is_new = 0; last_is_new < 2; last_is_new++) {
        const char *dir = fresh_dir("torn", log, sizeof log);
        uint64_t rec[16];
        int nrec;
        snap_t before, after;
        if (!build_log(dir, last_is_new, rec, &nrec, &before, &after)) return;
        size_t size;
        unsigned char *whole = slurp(log, &size);
        CU_ASSERT_PTR_NOT_NULL_FATAL(whole);
        CU_ASSERT_EQUAL(size, rec[nrec]);
        size_t last = rec[nrec - 1];
        unsigned bad = 0, cuts = 0, no_message = 0;
        for (size_t cut = last + 1; cut < size; cut++) {
            spit(log, whole, cut);
            kv_holder_t h;
            capture_t cap;
            capture_start(&cap);
            loom_status_t st = hopen(dir, MAXV, &h);
            char *said = capture_end(&cap);
            cuts++;
            if (st != LOOM_OK) {
                if (!bad++) fprintf(stderr, "\n  cut at %zu of %zu: status %d\n", cut, size, st);
                free(said);
                continue;
            }
            no_message += strstr(said, "torn") == NULL;
            free(said);
            if (!snap_same(&h, &before) || h.torn_bytes != cut - last || h.log_bytes != last ||
                file_size(log) != (long)last) {
                if (!bad++)
                    fprintf(stderr, "\n  cut at %zu: torn %llu, log %llu, file %ld (want %zu)\n",
                            cut, (unsigned long long)h.torn_bytes, (unsigned long long)h.log_bytes,
                            file_size(log), last);
            }
            kv_holder_close(&h);
        }
        CU_ASSERT(cuts > 20);
        CU_ASSERT_EQUAL(bad, 0);
        CU_ASSERT_EQUAL(no_message, 0);

        /* the cut log takes new records after its last whole one */
        spit(log, whole, size - 1);
        kv_holder_t h;
        capture_t cap;
        capture_start(&cap);
        loom_status_t st = hopen(dir, MAXV, &h);
        free(capture_end(&cap));
        CU_ASSERT_EQUAL_FATAL(st, LOOM_OK);
        overwrite(&h, "key-later", 3, 900, 12, 0);
        snap_t later;
        snap_take(&h, &later);
        kv_holder_close(&h);
        capture_start(&cap);
        st = hopen(dir, MAXV, &h);
        char *said = capture_end(&cap);
        CU_ASSERT_EQUAL(st, LOOM_OK);
        if (st == LOOM_OK) {
            CU_ASSERT(snap_same(&h, &later));
            CU_ASSERT_EQUAL(h.torn_bytes, 0);
            CU_ASSERT_PTR_NULL(strstr(said, "torn"));
            kv_holder_close(&h);
        }
        free(said);
        snap_free(&later);

        /* the whole log is fine */
        spit(log, whole, size);
        if (open_ok(dir, &h)) {
            CU_ASSERT(snap_same(&h, &after));
            kv_holder_close(&h);
        }
        free(whole);
        snap_free(&before);
        snap_free(&after);
    }
}

static void test_damaged_middle(void)
{
    char log[PATH_MAX];
    const char *dir = fresh_dir("damaged", log, sizeof log);
    uint64_t rec[16];
    int nrec;
    snap_t before, after;
    if (!build_log(dir, 0, rec, &nrec, &before, &after)) return;
    size_t size;
    unsigned char *whole = slurp(log, &size);
    CU_ASSERT_PTR_NOT_NULL_FATAL(whole);
    unsigned char *flipped = malloc(size);
    CU_ASSERT_PTR_NOT_NULL_FATAL(flipped);
    unsigned bad = 0, tried = 0;
    /* every byte of a record in the middle (record 5), and of the first */
    for (int which = 0; which < 2; which++) {
        size_t from = rec[which ? 5 : 0], to = rec[which ? 6 : 1];
        for (size_t at = from; at < to; at++)
            for (int pat = 0; pat < 2; pat++) {
                memcpy(flipped, whole, size);
                flipped[at] ^= pat ? 0xff : 0x01;
                spit(log, flipped, size);
                kv_holder_t h;
                loom_status_t st = kv_holder_open(loom_test_ctx, dir, LOOM_KV_FSYNC_NO, MAXV, &h);
                const char *msg = loom_error_message(loom_test_ctx);
                tried++;
                int msg_ok = st == LOOM_ERR_FORMAT && strstr(msg, "offset") && strstr(msg, log);
                if (st != LOOM_ERR_FORMAT || !msg_ok) {
                    if (!bad++)
                        fprintf(stderr, "\n  byte %zu ^ %#x: status %d (%s), expected %d\n", at,
                                pat ? 0xff : 1, st, msg, LOOM_ERR_FORMAT);
                }
                if (st == LOOM_OK) kv_holder_close(&h);
                loom_error_clear(loom_test_ctx);
                size_t got;
                unsigned char *now = slurp(log, &got);
                if (!now || got != size || memcmp(now, flipped, size)) {
                    if (!bad++) fprintf(stderr, "\n  byte %zu: the file was changed\n", at);
                }
                free(now);
            }
    }
    CU_ASSERT(tried > 40);
    CU_ASSERT_EQUAL(bad, 0);
    /* put back, it opens */
    spit(log, whole, size);
    kv_holder_t h;
    if (open_ok(dir, &h)) {
        CU_ASSERT(snap_same(&h, &after));
        kv_holder_close(&h);
    }
    free(flipped);
    free(whole);
    snap_free(&before);
    snap_free(&after);
}

static void test_bad_header(void)
{
    char log[PATH_MAX];
    const char *dir = fresh_dir("header", log, sizeof log);
    CU_ASSERT_EQUAL_FATAL(mkdir(dir, 0755), 0);
    static const struct {
        const char *data;
        size_t len;
    } files[] = {
        {"LOOMKV2\n", 8},
        {"LOOMKV1\r", 8},
        {"loomkv1\n", 8},
        {"NOTALOG!\x05\x00\x00\x00\x00\x00\x00\x00hello", 21},
        {"LOOMKV", 6},
        {"L", 1},
        {"loom key/value store 1\nid 0123456789abcdef\n", 43},
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        spit(log, files[i].data, files[i].len);
        kv_holder_t h;
        loom_status_t st = kv_holder_open(loom_test_ctx, dir, LOOM_KV_FSYNC_NO, MAXV, &h);
        CU_ASSERT_NOT_EQUAL(st, LOOM_OK);
        CU_ASSERT_EQUAL(st, LOOM_ERR_FORMAT);
        if (st == LOOM_OK) kv_holder_close(&h);
        loom_error_clear(loom_test_ctx);
        size_t got;
        unsigned char *now = slurp(log, &got);
        CU_ASSERT(now && got == files[i].len && !memcmp(now, files[i].data, got));
        free(now);
    }
    /* an empty file is a new log */
    spit(log, "", 0);
    kv_holder_t h;
    if (open_ok(dir, &h)) {
        CU_ASSERT_EQUAL(h.main.count, 0);
        kv_holder_close(&h);
        size_t got;
        unsigned char *now = slurp(log, &got);
        CU_ASSERT(now && got == 8 && !memcmp(now, "LOOMKV1\n", 8));
        free(now);
    }
}

/* A value stored under a larger max_value is still there when the holder is opened with a
 * smaller one (the limit is on what is accepted, and a shrunk limit must not cut the log). */
static void test_smaller_max_value(void)
{
    char log[PATH_MAX];
    const char *dir = fresh_dir("maxvalue", log, sizeof log);
    kv_holder_t h;
    if (!open_ok(dir, &h)) return;
    overwrite(&h, "small", 1, 1, 10, 0);
    overwrite(&h, "big", 1, 2, 5000, 0); /* the last record */
    snap_t s;
    snap_take(&h, &s);
    kv_holder_close(&h);
    size_t size;
    unsigned char *whole = slurp(log, &size);
    CU_ASSERT_PTR_NOT_NULL_FATAL(whole);
    capture_t cap;
    capture_start(&cap);
    loom_status_t st = hopen(dir, 1000, &h);
    char *said = capture_end(&cap);
    if (st == LOOM_OK) {
        int same = snap_same(&h, &s);
        CU_ASSERT(same);
        if (!same)
            fprintf(stderr, "  reopened with max_value 1000: %s; stderr: %s", "the value is gone",
                    said);
        kv_holder_close(&h);
    }
    /* either kept or refused, but the log is not cut */
    size_t got;
    unsigned char *now = slurp(log, &got);
    CU_ASSERT(now && got == size && !memcmp(now, whole, size));
    if (!now || got != size) fprintf(stderr, "  the log went from %zu to %zu bytes\n", size, got);
    free(now);
    free(said);
    free(whole);
    snap_free(&s);
}

/* ------------------------------------------------------------------ compaction */

static void test_compact(void)
{
    char log[PATH_MAX];
    const char *dir = fresh_dir("compact", log, sizeof log);
    kv_holder_t h;
    if (!open_ok(dir, &h)) return;
    uint64_t ctr = 1;
    char key[32];
    for (int round = 0; round < 60; round++)
        for (int i = 0; i < 20; i++) {
            snprintf(key, sizeof key, "key-%d", i);
            overwrite(&h, key, 1 + (uint32_t)(i % 3), ctr++, 100 + (size_t)round,
                      round == 59 && i % 4 == 0);
        }
    kv_sibs_t x = one_version(9, ctr++, NULL, 33, 0);
    int changed;
    merge(&h, 4, "hinted", &x, &changed);
    kv_sibs_free(&x);
    /* records are gathered, then written by a flush */
    uint64_t bytes = h.log_bytes, live = h.live_bytes;
    CU_ASSERT(file_size(log) < (long)bytes);
    CU_ASSERT_EQUAL(kv_holder_flush(&h), LOOM_OK);
    CU_ASSERT_EQUAL(file_size(log), (long)bytes);
    CU_ASSERT_EQUAL(kv_holder_flush(&h), LOOM_OK); /* nothing more to write */
    CU_ASSERT_EQUAL(file_size(log), (long)bytes);
    /* a small log is not compacted unless forced */
    CU_ASSERT_EQUAL(kv_holder_compact(&h, 0), LOOM_OK);
    CU_ASSERT_EQUAL(h.log_bytes, bytes);
    CU_ASSERT_EQUAL(file_size(log), (long)bytes);
    snap_t s;
    snap_take(&h, &s);
    CU_ASSERT_EQUAL(kv_holder_compact(&h, 1), LOOM_OK);
    CU_ASSERT(snap_same(&h, &s));
    CU_ASSERT(h.log_bytes < bytes / 20);
    CU_ASSERT_EQUAL(h.log_bytes, live); /* live_bytes: what the rewritten log takes */
    CU_ASSERT_EQUAL(h.live_bytes, h.log_bytes);
    CU_ASSERT_EQUAL(file_size(log), (long)h.log_bytes);
    printf("\n  compaction: %llu -> %llu bytes", (unsigned long long)bytes,
           (unsigned long long)h.log_bytes);
    /* the compacted log takes new records */
    overwrite(&h, "key-1", 2, ctr++, 7, 0);
    snap_free(&s);
    snap_take(&h, &s);
    CU_ASSERT_EQUAL(kv_holder_sync(&h), LOOM_OK);
    kv_holder_close(&h);
    if (open_ok(dir, &h)) {
        CU_ASSERT(snap_same(&h, &s));
        kv_holder_close(&h);
    }
    snap_free(&s);
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.new", log);
    CU_ASSERT_EQUAL(file_size(tmp), -1); /* no temporary left */
}

/* A log past KV_COMPACT_MIN_BYTES and KV_COMPACT_RATIO times its live size is rewritten when
 * opened. */
static void test_compact_on_open(void)
{
    char log[PATH_MAX];
    const char *dir = fresh_dir("compact_open", log, sizeof log);
    kv_holder_t h;
    if (!open_ok(dir, &h)) return;
    uint64_t ctr = 1;
    char key[32];
    int rounds = (int)(KV_COMPACT_MIN_BYTES / (10 * 32768)) + 8;
    for (int round = 0; round < rounds; round++)
        for (int i = 0; i < 10; i++) {
            snprintf(key, sizeof key, "k%d", i);
            overwrite(&h, key, 1, ctr++, 32768, 0);
        }
    CU_ASSERT(h.log_bytes > KV_COMPACT_MIN_BYTES);
    snap_t s;
    snap_take(&h, &s);
    kv_holder_close(&h);
    long before = file_size(log);
    if (open_ok(dir, &h)) {
        CU_ASSERT(snap_same(&h, &s));
        CU_ASSERT(h.log_bytes < (uint64_t)before / 10);
        kv_holder_close(&h);
    }
    CU_ASSERT(file_size(log) < before / 10);
    if (open_ok(dir, &h)) {
        CU_ASSERT(snap_same(&h, &s));
        kv_holder_close(&h);
    }
    snap_free(&s);
    loom_test_rmtree(dir); /* its log gone from the scratch directory */
}

static void register_suites(void)
{
    static const CU_TestInfo replica[] = {
        {"merged keys back after reopen", test_reopen},
        {"a merge of nothing leaves no key", test_empty_merge},
        {"hints and their drops survive reopen", test_hints},
        {NULL, NULL},
    };
    static const CU_TestInfo damage[] = {
        {"cut inside the last record", test_torn_tail},
        {"damaged middle record: LOOM_ERR_FORMAT", test_damaged_middle},
        {"not a key/value log", test_bad_header},
        {"reopened with a smaller max_value", test_smaller_max_value},
        {NULL, NULL},
    };
    static const CU_TestInfo compact[] = {
        {"forced compaction", test_compact},
        {"compaction when opened", test_compact_on_open},
        {NULL, NULL},
    };
    loom_test_suite("kv holder replica", replica);
    loom_test_suite("kv holder damage", damage);
    loom_test_suite("kv holder compaction", compact);
}

int main(int argc, char **argv)
{
    return loom_test_main(argc, argv, register_suites);
}
