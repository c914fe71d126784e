/* MPI tests of the key/value store's batched API (include/loom/kv.h) at 1-4 ranks: every rank
 * puts its own keys (some keys written by every rank in the same call, one key twice in one
 * batch), reads keys written by the others and compares with a reference computed here;
 * overwrites from another rank and deletions; the same answers after a close and a reopen;
 * empty batches on some ranks; errors agreed on every rank; and every key held by
 * N = min(3, workers) holders. Each case opens a store under a directory that rank 0 makes
 * and broadcasts. */
#include <limits.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "loom/kv.h"
#include "loom_test.h"

/* ------------------------------------------------------------------ helpers */

static int me(void)
{
    return loom_rank(loom_test_ctx);
}

static int nranks(void)
{
    return loom_size(loom_test_ctx);
}

static MPI_Comm comm(void)
{
    return loom_comm(loom_test_ctx);
}

static void barrier(void)
{
    MPI_Barrier(comm());
}

/* Whether `st` is the same on every rank. */
static int agreed(loom_status_t st)
{
    int v = (int)st, lo = 0, hi = 0;
    MPI_Allreduce(&v, &lo, 1, MPI_INT, MPI_MIN, comm());
    MPI_Allreduce(&v, &hi, 1, MPI_INT, MPI_MAX, comm());
    return lo == hi;
}

static long sum_long(long x)
{
    long s = 0;
    MPI_Allreduce(&x, &s, 1, MPI_LONG, MPI_SUM, comm());
    return s;
}

/* A call expected to succeed on every rank. */
static int ok(loom_status_t st, const char *what)
{
    CU_ASSERT(agreed(st));
    CU_ASSERT_EQUAL(st, LOOM_OK);
    if (st != LOOM_OK) {
        fprintf(stderr, "[r%d] %s: %s (%s)\n", me(), what, loom_status_name(st),
                loom_error_message(loom_test_ctx));
        loom_error_clear(loom_test_ctx);
    }
    return st == LOOM_OK;
}

/* A call expected to fail with `want` on every rank. */
static void expect_failure(loom_status_t st, loom_status_t want, const char *what)
{
    CU_ASSERT(agreed(st));
    CU_ASSERT_EQUAL(st, want);
    if (st != want)
        fprintf(stderr, "[r%d] %s: status %d (%s), expected %s\n", me(), what, (int)st,
                loom_error_message(loom_test_ctx), loom_status_name(want));
    loom_error_clear(loom_test_ctx);
}

/* The scratch directory of this run: rank 0 makes it (mkdtemp) and tells the others. */
static char base_dir[PATH_MAX];

static const char *base(void)
{
    if (!base_dir[0]) {
        if (me() == 0) {
            snprintf(base_dir, sizeof base_dir, "%s/kv_api_XXXXXX", loom_test_tmpdir());
            if (!mkdtemp(base_dir)) {
                perror("mkdtemp");
                base_dir[0] = '\0';
            }
        }
        MPI_Bcast(base_dir, (int)sizeof base_dir, MPI_CHAR, 0, comm());
        CU_ASSERT_FATAL(base_dir[0] != '\0');
    }
    return base_dir;
}

/* A store directory for case `name` (missing: the open makes it). */
static const char *store_dir(const char *name, char *buf, size_t cap)
{
    if ((size_t)snprintf(buf, cap, "%s/%s", base(), name) >= cap) buf[0] = '\0';
    return buf;
}

static loom_kv_t *open_kv(const char *dir, size_t max_value, int fsync)
{
    loom_kv_opts_t o = {.max_value = max_value, .fsync = fsync};
    loom_kv_t *kv = NULL;
    loom_status_t st = loom_kv_open(loom_test_ctx, dir, &o, &kv);
    if (!ok(st, "open")) return NULL;
    CU_ASSERT_PTR_NOT_NULL(kv);
    return kv;
}

static int replicas(void)
{
    int w = loom_num_workers(loom_test_ctx);
    return w < 3 ? w : 3;
}

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= UINT64_C(0xff51afd7ed558ccd);
    x ^= x >> 33;
    x *= UINT64_C(0xc4ceb9fe1a85ec53);
    x ^= x >> 33;
    return x;
}

/* ------------------------------------------------------------------ keys and values
 * Key i of owner o: "k<o>:<i>", with a NUL and a byte after it for some i (keys are bytes).
 * Its value at phase ph (1: first put, 2: overwrite, 3: put again after a deletion): a length
 * from 0 to ~300 bytes (some of 20 KiB) of bytes seeded by (o, i, ph). */

#define M 120 /* keys per rank */
#define S 12  /* keys every rank writes */

typedef struct item {
    unsigned char k[32];
    size_t kl;
    unsigned char *v;
    size_t vl;
} item_t;

static size_t make_key(unsigned char *k, int o, int i)
{
    int n = snprintf((char *)k, 32, "k%d:%d", o, i);
    if (i % 7 == 3) {
        k[n++] = '\0';
        k[n++] = (unsigned char)(0x80 + i % 50);
    }
    return (size_t)n;
}

static size_t value_len(int o, int i, int ph)
{
    if (i % 40 == 17) return 20000 + (size_t)(o * 31 + ph * 7);
    return (size_t)(mix(((uint64_t)o << 40) ^ ((uint64_t)i << 8) ^ (uint64_t)ph) % 300);
}

static unsigned char *make_value(uint64_t seed, size_t n)
{
    unsigned char *v = malloc(n ? n : 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    uint64_t s = mix(seed + 1);
    for (size_t j = 0; j < n; j++) {
        if (j % 8 == 0) s = mix(s + j);
        v[j] = (unsigned char)(s >> (8 * (j % 8)));
    }
    return v;
}

static void set_item(item_t *it, int o, int i, int ph)
{
    it->kl = make_key(it->k, o, i);
    it->vl = value_len(o, i, ph);
    it->v = make_value(((uint64_t)o << 48) ^ ((uint64_t)i << 16) ^ (uint64_t)ph, it->vl);
}

/* Shared key j: every rank writes it in the same call; even j with one value from all,
 * odd j each rank its own. */
static void set_shared(item_t *it, int j, int writer)
{
    it->kl = (size_t)snprintf((char *)it->k, sizeof it->k, "shared-%d", j);
    int w = j % 2 ? writer : -1;
    it->vl = 10 + (size_t)j * 3 + (size_t)(w + 1);
    it->v = make_value(UINT64_C(0x5348) ^ ((uint64_t)j << 20) ^ (uint64_t)(w + 1), it->vl);
}

static void free_items(item_t *it, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(it[i].v);
    free(it);
}

/* The value phase of key (o, i) after step s: 0 when it is deleted.
 *   step 1: every owner puts its keys (phase 1);
 *   step 2: the next rank overwrites keys i % 3 == 0 (phase 2), the owner deletes the keys
 *           i % 5 == 1 among the others;
 *   step 3: the owner puts back the deleted keys with even i (phase 3). */
static int expected_phase(int i, int step)
{
    int ph = 1;
    if (step >= 2) {
        if (i % 3 == 0)
            ph = 2;
        else if (i % 5 == 1)
            ph = 0;
    }
    if (step >= 3 && ph == 0 && i % 2 == 0) ph = 3;
    return ph;
}

/* Run a put batch of `n` items (n may be 0: NULL arrays). */
static loom_status_t put_items(loom_kv_t *kv, const item_t *it, size_t n)
{
    const void **k = n ? malloc(n * sizeof *k) : NULL, **v = n ? malloc(n * sizeof *v) : NULL;
    size_t *kl = n ? malloc(n * sizeof *kl) : NULL, *vl = n ? malloc(n * sizeof *vl) : NULL;
    for (size_t i = 0; i < n; i++) {
        k[i] = it[i].k;
        kl[i] = it[i].kl;
        v[i] = it[i].v;
        vl[i] = it[i].vl;
    }
    loom_status_t st = loom_kv_put_batch(kv, n, k, kl, v, vl);
    free(k);
    free(v);
    free(kl);
    free(vl);
    return st;
}

static loom_status_t del_items(loom_kv_t *kv, const item_t *it, size_t n)
{
    const void **k = n ? malloc(n * sizeof *k) : NULL;
    size_t *kl = n ? malloc(n * sizeof *kl) : NULL;
    for (size_t i = 0; i < n; i++) {
        k[i] = it[i].k;
        kl[i] = it[i].kl;
    }
    loom_status_t st = loom_kv_del_batch(kv, n, k, kl);
    free(k);
    free(kl);
    return st;
}

static loom_status_t get_items(loom_kv_t *kv, const item_t *it, size_t n, int r,
                               loom_kv_values_t *out)
{
    const void **k = n ? malloc(n * sizeof *k) : NULL;
    size_t *kl = n ? malloc(n * sizeof *kl) : NULL;
    for (size_t i = 0; i < n; i++) {
        k[i] = it[i].k;
        kl[i] = it[i].kl;
    }
    loom_status_t st = loom_kv_get_batch(kv, n, k, kl, r, out);
    free(k);
    free(kl);
    return st;
}

/* ------------------------------------------------------------------ the reference check */

/* What a get of rank `me`'s read list must return after `step`. The list: every key of this
 * rank and of the next, the shared keys, and keys nobody wrote. */
typedef struct want {
    item_t key;   /* the key, and the expected value when found */
    int found;    /* 1: expected present */
    int shared_w; /* odd shared keys: any writer's value (-1: an exact value) */
} want_t;

static want_t *read_list(int step, size_t *n)
{
    int P = nranks(), r = me();
    size_t cap = 2 * M + S + 8, k = 0;
    want_t *w = calloc(cap, sizeof *w);
    CU_ASSERT_PTR_NOT_NULL_FATAL(w);
    int owners[2] = {r, (r + 1) % P};
    for (int oi = 0; oi < (P > 1 ? 2 : 1); oi++)
        for (int i = 0; i < M; i++) {
            int ph = expected_phase(i, step);
            set_item(&w[k].key, owners[oi], i, ph ? ph : 1);
            w[k].found = ph != 0;
            w[k].shared_w = -1;
            k++;
        }
    for (int j = 0; j < S; j++) {
        set_shared(&w[k].key, j, -1);
        w[k].found = 1;
        w[k].shared_w = j % 2;
        k++;
    }
    for (int i = 0; i < 8; i++) {
        w[k].key.kl = (size_t)snprintf((char *)w[k].key.k, sizeof w[k].key.k, "never-%d-%d", r, i);
        w[k].key.v = NULL;
        w[k].found = 0;
        w[k].shared_w = -1;
        k++;
    }
    *n = k;
    return w;
}

static void free_wants(want_t *w, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(w[i].key.v);
    free(w);
}

/* Whether shared key j's value is one of the writers' values. */
static int one_of_writers(int j, const unsigned char *v, size_t len)
{
    for (int wr = 0; wr < nranks(); wr++) {
        item_t it;
        set_shared(&it, j, wr);
        int same = it.vl == len && !memcmp(it.v, v, len);
        free(it.v);
        if (same) return 1;
    }
    return 0;
}

/* Get this rank's read list with quorum r and compare with the reference; the count of
 * mismatches over all ranks. The odd shared keys' values are returned (hashes) in *shared so
 * that the caller can check every rank read the same one. */
static long check_reads(loom_kv_t *kv, int step, int r, uint64_t *shared_hash)
{
    size_t n;
    want_t *w = read_list(step, &n);
    item_t *keys = calloc(n, sizeof *keys);
    CU_ASSERT_PTR_NOT_NULL_FATAL(keys);
    for (size_t i = 0; i < n; i++)
        keys[i] = w[i].key; /* shallow: the values stay with w */
    loom_kv_values_t out;
    loom_status_t st = get_items(kv, keys, n, r, &out);
    free(keys);
    long bad = 0;
    if (!ok(st, "get")) {
        free_wants(w, n);
        return sum_long(1);
    }
    CU_ASSERT_EQUAL(out.n, n);
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += out.len[i];
    uint64_t h = 0;
    for (size_t i = 0; i < n && out.n == n; i++) {
        const want_t *x = &w[i];
        int good;
        if (out.off[i] + out.len[i] > total) {
            good = 0;
        } else if (!x->found) {
            good = !out.found[i] && out.siblings[i] == 0 && out.len[i] == 0;
        } else if (x->shared_w == 1) {
            int j = atoi((const char *)x->key.k + 7);
            good = out.found[i] && out.siblings[i] == 1 &&
                   one_of_writers(j, out.data + out.off[i], out.len[i]);
            h = mix(h ^ (uint64_t)out.len[i] ^ (out.len[i] ? out.data[out.off[i]] : 0) ^
                    ((uint64_t)j << 32));
        } else {
            good = out.found[i] && out.siblings[i] == 1 && out.len[i] == x->key.vl &&
                   (!x->key.vl || !memcmp(out.data + out.off[i], x->key.v, x->key.vl));
        }
        if (!good) {
            if (bad < 5)
                fprintf(stderr,
                        "[r%d] step %d r %d: key \"%.*s\"%s: found %d siblings %u len %" PRIu64
                        ", expected found %d len %zu\n",
                        me(), step, r, (int)strlen((const char *)x->key.k), (const char *)x->key.k,
                        x->key.kl > strlen((const char *)x->key.k) ? " (binary)" : "", out.found[i],
                        (unsigned)out.siblings[i], out.len[i], x->found, x->found ? x->key.vl : 0);
            bad++;
        }
    }
    if (shared_hash) *shared_hash = h;
    loom_kv_values_free(&out);
    CU_ASSERT_PTR_NULL(out.found);
    free_wants(w, n);
    return sum_long(bad);
}

/* Every rank read the same values of the odd shared keys. */
static void check_shared_agree(uint64_t h)
{
    uint64_t lo = 0, hi = 0;
    MPI_Allreduce(&h, &lo, 1, MPI_UINT64_T, MPI_MIN, comm());
    MPI_Allreduce(&h, &hi, 1, MPI_UINT64_T, MPI_MAX, comm());
    CU_ASSERT_EQUAL(lo, hi);
}

/* Every key is held by N holders: the local counts sum to N times the distinct keys. */
static void check_local_keys(loom_kv_t *kv)
{
    uint64_t mine = loom_kv_local_keys(kv), all = 0;
    if (loom_worker_index(loom_test_ctx) < 0) CU_ASSERT_EQUAL(mine, 0);
    MPI_Allreduce(&mine, &all, 1, MPI_UINT64_T, MPI_SUM, comm());
    uint64_t distinct = (uint64_t)nranks() * M + S;
    CU_ASSERT_EQUAL(all, (uint64_t)replicas() * distinct);
    if (all != (uint64_t)replicas() * distinct && me() == 0)
        fprintf(stderr, "local keys sum to %" PRIu64 ", expected %d x %" PRIu64 "\n", all,
                replicas(), distinct);
}

/* ------------------------------------------------------------------ the steps */

static void step1_put(loom_kv_t *kv)
{
    int r = me(), P = nranks();
    /* the first call: every rank's shared keys, and the own keys of even ranks (key 0 twice:
     * first a value that the second replaces); the second call: the own keys of odd ranks,
     * empty batches elsewhere */
    size_t n = 0;
    item_t *it = calloc(M + 1 + S, sizeof *it);
    CU_ASSERT_PTR_NOT_NULL_FATAL(it);
    for (int j = 0; j < S; j++)
        set_shared(&it[n++], j, r);
    size_t own = n;
    it[n].kl = make_key(it[n].k, r, 0);
    it[n].vl = 5;
    it[n].v = make_value(999, 5);
    n++;
    for (int i = 0; i < M; i++)
        set_item(&it[n++], r, i, 1);
    if (r % 2 == 0) {
        ok(put_items(kv, it, n), "put");
        if (P > 1) ok(put_items(kv, NULL, 0), "empty put");
    } else {
        ok(put_items(kv, it, own), "put of the shared keys");
        ok(put_items(kv, it + own, n - own), "put");
    }
    free_items(it, n);
}

static void step2_overwrite_delete(loom_kv_t *kv)
{
    int r = me(), P = nranks(), prev = (r + P - 1) % P;
    item_t *put = calloc(M, sizeof *put), *del = calloc(M, sizeof *del);
    CU_ASSERT_PTR_NOT_NULL_FATAL(put);
    CU_ASSERT_PTR_NOT_NULL_FATAL(del);
    size_t np = 0, nd = 0;
    for (int i = 0; i < M; i++) {
        if (i % 3 == 0) set_item(&put[np++], prev, i, 2); /* the previous rank's keys */
        if (i % 3 != 0 && i % 5 == 1) {
            del[nd].kl = make_key(del[nd].k, r, i);
            nd++;
        }
    }
    ok(put_items(kv, put, np), "overwrite");
    ok(del_items(kv, del, nd), "delete");
    free_items(put, np);
    free_items(del, nd);
}

static void step3_put_back(loom_kv_t *kv)
{
    int r = me();
    item_t *it = calloc(M, sizeof *it);
    CU_ASSERT_PTR_NOT_NULL_FATAL(it);
    size_t n = 0;
    for (int i = 0; i < M; i++)
        if (expected_phase(i, 2) == 0 && i % 2 == 0) set_item(&it[n++], r, i, 3);
    /* only the last rank's batch is not empty for a delete of nothing */
    ok(del_items(kv, NULL, 0), "empty delete");
    ok(put_items(kv, it, n), "put back");
    free_items(it, n);
}

static void test_put_get(void)
{
    char dir[PATH_MAX];
    store_dir("putget", dir, sizeof dir);
    loom_kv_t *kv = open_kv(dir, 0, LOOM_KV_FSYNC_EVERYSEC);
    if (!kv) return;
    uint64_t h1 = 0, h2 = 0;
    step1_put(kv);
    CU_ASSERT_EQUAL(check_reads(kv, 1, 0, &h1), 0);
    check_shared_agree(h1);
    check_local_keys(kv);
    /* every quorum gives the same answers (all homes hold every version) */
    CU_ASSERT_EQUAL(check_reads(kv, 1, 1, &h2), 0);
    CU_ASSERT_EQUAL(h1, h2);
    CU_ASSERT_EQUAL(check_reads(kv, 1, 99, NULL), 0);

    step2_overwrite_delete(kv);
    CU_ASSERT_EQUAL(check_reads(kv, 2, 0, NULL), 0);
    step3_put_back(kv);
    CU_ASSERT_EQUAL(check_reads(kv, 3, 0, &h2), 0);
    CU_ASSERT_EQUAL(h1, h2); /* the shared keys were not written again */
    check_local_keys(kv);    /* deleted keys stay as tombstones */

    /* close and reopen: the same answers */
    CU_ASSERT_EQUAL(loom_kv_close(&kv), LOOM_OK);
    CU_ASSERT_PTR_NULL(kv);
    kv = open_kv(dir, 0, LOOM_KV_FSYNC_EVERYSEC);
    if (!kv) return;
    CU_ASSERT_EQUAL(check_reads(kv, 3, 0, &h2), 0);
    CU_ASSERT_EQUAL(h1, h2);
    CU_ASSERT_EQUAL(check_reads(kv, 3, 1, NULL), 0);
    check_local_keys(kv);
    CU_ASSERT_EQUAL(loom_kv_close(&kv), LOOM_OK);
    CU_ASSERT_EQUAL(loom_kv_close(&kv), LOOM_OK); /* NULL: nothing to do */
    CU_ASSERT_EQUAL(loom_kv_close(NULL), LOOM_OK);
}

/* A key written in two calls, by different ranks: the second value, one version. */
static void test_two_calls(void)
{
    char dir[PATH_MAX];
    store_dir("twocalls", dir, sizeof dir);
    loom_kv_t *kv = open_kv(dir, 0, LOOM_KV_FSYNC_ALWAYS);
    if (!kv) return;
    int P = nranks(), last = P - 1;
    item_t a = {0}, b = {0};
    a.kl = b.kl = (size_t)snprintf((char *)a.k, sizeof a.k, "twice");
    memcpy(b.k, a.k, a.kl);
    a.v = (unsigned char *)"first value";
    a.vl = strlen((char *)a.v);
    b.v = (unsigned char *)"second";
    b.vl = strlen((char *)b.v);
    ok(put_items(kv, &a, me() == 0), "first put");
    ok(put_items(kv, &b, me() == last), "second put");
    for (int r = 0; r <= 3; r++) {
        loom_kv_values_t out;
        if (!ok(get_items(kv, &a, 1, r, &out), "get")) break;
        CU_ASSERT(out.found[0]);
        CU_ASSERT_EQUAL(out.siblings[0], 1);
        CU_ASSERT(out.len[0] == b.vl && !memcmp(out.data + out.off[0], b.v, b.vl));
        loom_kv_values_free(&out);
    }
    /* an empty value is a value; deleted and written again is found again */
    item_t e = a;
    e.v = (unsigned char *)"";
    e.vl = 0;
    ok(put_items(kv, &e, me() == last), "empty value");
    loom_kv_values_t out;
    if (ok(get_items(kv, &a, 1, 0, &out), "get")) {
        CU_ASSERT(out.found[0]);
        CU_ASSERT_EQUAL(out.siblings[0], 1);
        CU_ASSERT_EQUAL(out.len[0], 0);
        loom_kv_values_free(&out);
    }
    ok(del_items(kv, &a, me() == 0), "delete");
    if (ok(get_items(kv, &a, 1, 0, &out), "get")) {
        CU_ASSERT(!out.found[0]);
        CU_ASSERT_EQUAL(out.siblings[0], 0);
        loom_kv_values_free(&out);
    }
    ok(put_items(kv, &a, me() == last), "put after delete");
    if (ok(get_items(kv, &a, 1, 0, &out), "get")) {
        CU_ASSERT(out.found[0]);
        CU_ASSERT_EQUAL(out.siblings[0], 1);
        CU_ASSERT(out.len[0] == a.vl && !memcmp(out.data + out.off[0], a.v, a.vl));
        loom_kv_values_free(&out);
    }
    /* every rank reads nothing: fine */
    if (ok(get_items(kv, NULL, 0, 0, &out), "empty get")) {
        CU_ASSERT_EQUAL(out.n, 0);
        loom_kv_values_free(&out);
    }
    CU_ASSERT_EQUAL(loom_kv_close(&kv), LOOM_OK);
}

/* Errors that one rank's batch causes fail the call on every rank, and the store goes on. */
static void test_errors(void)
{
    char dir[PATH_MAX];
    store_dir("errors", dir, sizeof dir);
    enum { MAXV = 1024 };
    loom_kv_t *kv = open_kv(dir, MAXV, LOOM_KV_FSYNC_NO);
    if (!kv) return;
    int P = nranks(), last = P - 1;
    item_t good[2] = {0};
    for (int i = 0; i < 2; i++)
        set_item(&good[i], me(), 500 + i, 1);
    ok(put_items(kv, good, 2), "put");

    item_t bad[3];
    memcpy(bad, good, sizeof bad[0] * 2);
    /* an empty key on the last rank */
    item_t empty = good[0];
    empty.kl = 0;
    bad[2] = empty;
    expect_failure(put_items(kv, bad, me() == last ? 3 : 2), LOOM_ERR_USAGE, "empty key");
    /* a value over max_value on rank 0 */
    unsigned char *big = make_value(7, MAXV + 1);
    item_t over = good[0];
    over.v = big;
    over.vl = MAXV + 1;
    bad[2] = over;
    expect_failure(put_items(kv, bad, me() == 0 ? 3 : 2), LOOM_ERR_USAGE, "value too large");
    /* a key over max_value on the last rank */
    unsigned char *bigkey = make_value(8, MAXV + 1);
    expect_failure(loom_kv_put_batch(kv, me() == last, (const void *[]){bigkey},
                                     (const size_t[]){MAXV + 1}, (const void *[]){good[0].v},
                                     (const size_t[]){good[0].vl}),
                   LOOM_ERR_USAGE, "key too large");
    /* deletes and gets check their keys too */
    expect_failure(del_items(kv, &empty, me() == 0), LOOM_ERR_USAGE, "delete of an empty key");
    loom_kv_values_t out;
    expect_failure(get_items(kv, &empty, me() == last, 0, &out), LOOM_ERR_USAGE,
                   "get of an empty key");
    CU_ASSERT_PTR_NULL(out.found);
    loom_kv_values_free(&out);
    expect_failure(loom_kv_get_batch(kv, me() == 0, (const void *[]){bigkey},
                                     (const size_t[]){MAXV + 1}, 0, &out),
                   LOOM_ERR_USAGE, "get of a key too large");
    loom_kv_values_free(&out);
    /* exactly max_value: fine */
    item_t edge = {0};
    edge.kl = (size_t)snprintf((char *)edge.k, sizeof edge.k, "edge-%d", me());
    edge.v = big;
    edge.vl = MAXV;
    ok(put_items(kv, &edge, 1), "value of max_value bytes");
    if (ok(get_items(kv, &edge, 1, 0, &out), "get")) {
        CU_ASSERT(out.found[0] && out.len[0] == MAXV && !memcmp(out.data, big, MAXV));
        loom_kv_values_free(&out);
    }
    ok(loom_kv_put_batch(kv, 1, (const void *[]){bigkey}, (const size_t[]){MAXV},
                         (const void *[]){"v"}, (const size_t[]){1}),
       "key of max_value bytes");
    /* the store still answers: the good keys are there */
    if (ok(get_items(kv, good, 2, 0, &out), "get after errors")) {
        for (int i = 0; i < 2; i++)
            CU_ASSERT(out.found[i] && out.len[i] == good[i].vl &&
                      !memcmp(out.data + out.off[i], good[i].v, good[i].vl));
        loom_kv_values_free(&out);
    }
    free(big);
    free(bigkey);
    free(good[0].v);
    free(good[1].v);
    CU_ASSERT_EQUAL(loom_kv_close(&kv), LOOM_OK);
}

/* One job at a time: a second open of a store in use is refused everywhere; and a directory
 * that is not a key/value store is refused. */
static void test_open_refused(void)
{
    char dir[PATH_MAX];
    store_dir("inuse", dir, sizeof dir);
    loom_kv_t *kv = open_kv(dir, 0, LOOM_KV_FSYNC_NO);
    if (!kv) return;
    loom_kv_t *again = NULL;
    expect_failure(loom_kv_open(loom_test_ctx, dir, NULL, &again), LOOM_ERR_USAGE,
                   "second open of a store in use");
    CU_ASSERT_PTR_NULL(again);
    CU_ASSERT_EQUAL(loom_kv_close(&kv), LOOM_OK);
    kv = open_kv(dir, 0, LOOM_KV_FSYNC_NO); /* free again */
    if (kv) CU_ASSERT_EQUAL(loom_kv_close(&kv), LOOM_OK);

    char other[PATH_MAX];
    store_dir("not_a_store", other, sizeof other);
    if (me() == 0) {
        CU_ASSERT_EQUAL(mkdir(other, 0755), 0);
        char f[PATH_MAX + 16];
        snprintf(f, sizeof f, "%s/data.txt", other);
        FILE *fp = fopen(f, "w");
        if (fp) {
            fputs("hello\n", fp);
            fclose(fp);
        }
    }
    barrier();
    expect_failure(loom_kv_open(loom_test_ctx, other, NULL, &again), LOOM_ERR_USAGE,
                   "a directory that is not a store");
    CU_ASSERT_PTR_NULL(again);
}

static void test_cleanup(void)
{
    barrier();
    if (me() == 0 && base_dir[0]) loom_test_rmtree(base_dir);
    barrier();
}

static void register_suites(void)
{
    static const CU_TestInfo tests[] = {
        {"puts and gets across ranks, reopened", test_put_get},
        {"a key written in two calls", test_two_calls},
        {"errors agreed on every rank", test_errors},
        {"open refused: in use, not a store", test_open_refused},
        {"cleanup", test_cleanup},
        CU_TEST_INFO_NULL,
    };
    loom_test_suite("kv_api", tests);
}

int main(int argc, char **argv)
{
    return loom_test_main(argc, argv, register_suites);
}
