/* MPI tests of every dataset transformation against a plain model of it, computed on rank 0
 * from the same random records: skewed keys (one key holds a third of the records), empty keys
 * and values, more partitions than records (empty partitions), an empty dataset. Results are
 * compared as sorted multisets of records (group values sorted within their group). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "loom/dataset.h"
#include "loom_test.h"

/* ------------------------------------------------------------------ records as strings */

typedef struct strs {
    char **v;
    size_t n, cap;
} strs_t;

static void strs_add(strs_t *s, const char *t)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 256;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
    }
    s->v[s->n++] = strdup(t);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void strs_free(strs_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

/* Equal as multisets. */
static int strs_equal(strs_t *a, strs_t *b)
{
    qsort(a->v, a->n, sizeof *a->v, cmp_str);
    qsort(b->v, b->n, sizeof *b->v, cmp_str);
    if (a->n != b->n) {
        fprintf(stderr, "  %zu records, expected %zu\n", a->n, b->n);
        return 0;
    }
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->v[i], b->v[i]) != 0) {
            fprintf(stderr, "  record %zu: %s, expected %s\n", i, a->v[i], b->v[i]);
            return 0;
        }
    return 1;
}

static void hex(char *out, const void *p, size_t n)
{
    const unsigned char *u = p;
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", u[i]);
    out[2 * n] = 0;
}

/* "key|value" in hex. */
static void rec_str(char *buf, const void *k, size_t kl, const void *v, size_t vl)
{
    hex(buf, k, kl);
    size_t n = strlen(buf);
    buf[n++] = '|';
    hex(buf + n, v, vl);
}

static loom_status_t collect_plain(const loom_ds_rec_t *r, void *user)
{
    char buf[1024];
    rec_str(buf, r->key, r->klen, r->val, r->vlen);
    strs_add(user, buf);
    return LOOM_OK;
}

/* A group's values sorted, so that the model's order does not matter. */
static loom_status_t collect_group(const loom_ds_rec_t *r, void *user)
{
    strs_t vals = {0};
    const unsigned char *c = r->val, *end = c + r->vlen;
    const void *v;
    size_t vl;
    char buf[1024];
    while (loom_ds_values_next(&c, end, &v, &vl)) {
        hex(buf, v, vl);
        strs_add(&vals, buf);
    }
    qsort(vals.v, vals.n, sizeof *vals.v, cmp_str);
    char *all = malloc(64 + vals.n * 64);
    hex(all, r->key, r->klen);
    for (size_t i = 0; i < vals.n; i++) {
        strcat(all, i ? "," : "|");
        strcat(all, vals.v[i]);
    }
    strs_add(user, all);
    free(all);
    strs_free(&vals);
    return LOOM_OK;
}

static loom_status_t collect_pair(const loom_ds_rec_t *r, void *user)
{
    const void *a, *b;
    size_t al, bl;
    char buf[1024], vb[256];
    if (!loom_ds_pair(r->val, r->vlen, &a, &al, &b, &bl)) { /* fail the action, not the rank */
        CU_FAIL("a value that is not a pair");
        return LOOM_ERR_INTERNAL;
    }
    rec_str(buf, r->key, r->klen, a, al);
    hex(vb, b, bl);
    strcat(buf, "|");
    strcat(buf, vb);
    strs_add(user, buf);
    return LOOM_OK;
}

/* ------------------------------------------------------------------ the data */

#define N 3000

typedef struct data {
    loom_ds_rec_t rec[N];
    char key[N][16], val[N][24];
    uint64_t num[N];
} data_t;

static uint64_t rng(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Keys: a third "hot", some empty, the rest from 400 others; values 0..20 bytes, or 8-byte
 * numbers with `numeric`. The same on every rank. */
static void make_data(data_t *d, size_t n, uint64_t seed, int numeric)
{
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) {
        uint64_t x = rng(&s);
        size_t kl;
        if (x % 3 == 0)
            kl = (size_t)sprintf(d->key[i], "hot");
        else if (x % 17 == 1)
            kl = 0;
        else
            kl = (size_t)sprintf(d->key[i], "k%u", (unsigned)(rng(&s) % 400));
        size_t vl = (size_t)(rng(&s) % 21);
        for (size_t j = 0; j < vl; j++)
            d->val[i][j] = (char)('a' + rng(&s) % 26);
        d->num[i] = rng(&s) % 1000;
        d->rec[i] = (loom_ds_rec_t){d->key[i], kl, numeric ? (void *)&d->num[i] : d->val[i],
                                    numeric ? 8 : vl};
    }
}

static loom_ds_engine_t *engine(int partitions)
{
    loom_ds_config_t cfg = {.partitions = partitions, .memory = 256 << 10};
    loom_ds_engine_t *e = NULL;
    CU_ASSERT_FATAL(loom_ds_engine_create(loom_test_ctx, &cfg, &e) == LOOM_OK);
    return e;
}

static int is_root(void)
{
    return loom_is_master(loom_test_ctx);
}

/* ------------------------------------------------------------------ tests */

static void test_reduce_group_distinct(void)
{
    static data_t d, num;
    make_data(&d, N, 7, 0);
    make_data(&num, N, 11, 1);
    loom_ds_engine_t *e = engine(5);
    loom_ds_t *a = loom_ds_parallelize(e, d.rec, N, 4);
    loom_ds_t *b = loom_ds_parallelize(e, num.rec, N, 3);

    uint64_t count = 0;
    CU_ASSERT(loom_ds_count(a, &count) == LOOM_OK);
    CU_ASSERT(count == N);

    /* reduce_by_key against sums per key */
    strs_t got = {0}, want = {0};
    CU_ASSERT(loom_ds_collect(loom_ds_reduce_by_key(b, loom_ds_sum_u64, NULL, 0), collect_plain,
                              &got) == LOOM_OK);
    if (is_root()) {
        for (size_t i = 0; i < N; i++) {
            int first = 1;
            uint64_t sum = 0;
            for (size_t j = 0; j < N; j++) {
                if (num.rec[j].klen != num.rec[i].klen ||
                    memcmp(num.rec[j].key, num.rec[i].key, num.rec[i].klen) != 0)
                    continue;
                if (j < i) first = 0;
                sum += num.num[j];
            }
            char buf[256];
            if (!first) continue;
            rec_str(buf, num.rec[i].key, num.rec[i].klen, &sum, 8);
            strs_add(&want, buf);
        }
        CU_ASSERT(strs_equal(&got, &want));
    }
    strs_free(&got);
    strs_free(&want);

    /* group_by_key: every key's values */
    CU_ASSERT(loom_ds_collect(loom_ds_group_by_key(a, 0), collect_group, &got) == LOOM_OK);
    if (is_root()) {
        /* the model: group with a quadratic scan (the data is small) */
        for (size_t i = 0; i < N; i++) {
            int first = 1;
            for (size_t j = 0; j < i && first; j++)
                first = !(d.rec[j].klen == d.rec[i].klen &&
                          memcmp(d.rec[j].key, d.rec[i].key, d.rec[i].klen) == 0);
            if (!first) continue;
            strs_t g = {0};
            for (size_t j = 0; j < N; j++)
                if (d.rec[j].klen == d.rec[i].klen &&
                    memcmp(d.rec[j].key, d.rec[i].key, d.rec[i].klen) == 0) {
                    char buf[64];
                    hex(buf, d.rec[j].val, d.rec[j].vlen);
                    strs_add(&g, buf);
                }
            qsort(g.v, g.n, sizeof *g.v, cmp_str);
            char *all = malloc(64 + g.n * 64);
            hex(all, d.rec[i].key, d.rec[i].klen);
            for (size_t k = 0; k < g.n; k++) {
                strcat(all, k ? "," : "|");
                strcat(all, g.v[k]);
            }
            strs_add(&want, all);
            free(all);
            strs_free(&g);
        }
        CU_ASSERT(strs_equal(&got, &want));
    }
    strs_free(&got);
    strs_free(&want);

    /* distinct of the records twice over */
    CU_ASSERT(loom_ds_collect(loom_ds_distinct(loom_ds_union(a, a), 3), collect_plain, &got) ==
              LOOM_OK);
    if (is_root()) {
        strs_t all = {0};
        for (size_t i = 0; i < N; i++) {
            char buf[256];
            rec_str(buf, d.rec[i].key, d.rec[i].klen, d.rec[i].val, d.rec[i].vlen);
            strs_add(&all, buf);
        }
        qsort(all.v, all.n, sizeof *all.v, cmp_str);
        for (size_t i = 0; i < all.n; i++)
            if (i == 0 || strcmp(all.v[i], all.v[i - 1]) != 0) strs_add(&want, all.v[i]);
        strs_free(&all);
        CU_ASSERT(strs_equal(&got, &want));
    }
    strs_free(&got);
    strs_free(&want);
    loom_ds_engine_destroy(&e);
}

static void join_model(const data_t *a, const data_t *b, size_t na, size_t nb, strs_t *want)
{
    for (size_t i = 0; i < na; i++)
        for (size_t j = 0; j < nb; j++) {
            if (a->rec[i].klen != b->rec[j].klen ||
                memcmp(a->rec[i].key, b->rec[j].key, a->rec[i].klen) != 0)
                continue;
            char buf[1024], vb[256];
            rec_str(buf, a->rec[i].key, a->rec[i].klen, a->rec[i].val, a->rec[i].vlen);
            hex(vb, b->rec[j].val, b->rec[j].vlen);
            strcat(buf, "|");
            strcat(buf, vb);
            strs_add(want, buf);
        }
}

/* Keys that are not hot, so the join's output stays small. */
static int not_hot(const loom_ds_rec_t *r, void *user)
{
    (void)user;
    return !(r->klen == 3 && memcmp(r->key, "hot", 3) == 0);
}

static void test_join(void)
{
    static data_t a, b, fa, fb;
    make_data(&a, 600, 3, 0);
    make_data(&b, 500, 5, 0);
    /* the model's inputs: without the hot key */
    size_t na = 0, nb = 0;
    for (size_t i = 0; i < 600; i++)
        if (not_hot(&a.rec[i], NULL)) {
            fa.rec[na] = a.rec[i];
            na++;
        }
    for (size_t i = 0; i < 500; i++)
        if (not_hot(&b.rec[i], NULL)) {
            fb.rec[nb] = b.rec[i];
            nb++;
        }
    strs_t want = {0};
    if (is_root()) join_model(&fa, &fb, na, nb, &want);

    loom_ds_engine_t *e = engine(0);
    loom_ds_t *da = loom_ds_filter(loom_ds_parallelize(e, a.rec, 600, 5), not_hot, NULL);
    loom_ds_t *db = loom_ds_filter(loom_ds_parallelize(e, b.rec, 500, 2), not_hot, NULL);
    strs_t got = {0};
    /* shuffled: the inputs have no partitioning */
    CU_ASSERT(loom_ds_collect(loom_ds_join(da, db, 4), collect_pair, &got) == LOOM_OK);
    if (is_root()) CU_ASSERT(strs_equal(&got, &want));
    strs_free(&got);
    /* broadcast: all of db on every worker, da stays where it is */
    CU_ASSERT(loom_ds_collect(loom_ds_join_broadcast(da, db), collect_pair, &got) == LOOM_OK);
    if (is_root()) CU_ASSERT(strs_equal(&got, &want));
    strs_free(&got);
    /* co-partitioned: both hash-partitioned alike, the join moves nothing */
    loom_ds_t *ja = loom_ds_join(loom_ds_partition_by(da, 6), loom_ds_partition_by(db, 6), 0);
    CU_ASSERT(loom_ds_collect(ja, collect_pair, &got) == LOOM_OK);
    if (is_root()) CU_ASSERT(strs_equal(&got, &want));
    strs_free(&got);
    strs_free(&want);
    loom_ds_engine_destroy(&e);
}

typedef struct order {
    const unsigned char *prev;
    size_t prevlen;
    int bad;
    strs_t *all;
} order_t;

static loom_status_t collect_sorted(const loom_ds_rec_t *r, void *user)
{
    order_t *o = user;
    if (o->prev) {
        size_t m = o->prevlen < r->klen ? o->prevlen : r->klen;
        int c = memcmp(o->prev, r->key, m);
        if (c > 0 || (c == 0 && o->prevlen > r->klen)) o->bad++;
    }
    free((void *)o->prev);
    o->prev = malloc(r->klen + 1);
    memcpy((void *)o->prev, r->key, r->klen);
    o->prevlen = r->klen;
    return collect_plain(r, o->all);
}

static void test_sort_and_narrow(void)
{
    static data_t d;
    make_data(&d, N, 13, 0);
    loom_ds_engine_t *e = engine(0);
    loom_ds_t *a = loom_ds_parallelize(e, d.rec, N, 3);
    strs_t got = {0}, want = {0};
    order_t o = {NULL, 0, 0, &got};
    CU_ASSERT(loom_ds_collect(loom_ds_sort_by_key(a, 5), collect_sorted, &o) == LOOM_OK);
    free((void *)o.prev);
    if (is_root()) {
        for (size_t i = 0; i < N; i++) {
            char buf[256];
            rec_str(buf, d.rec[i].key, d.rec[i].klen, d.rec[i].val, d.rec[i].vlen);
            strs_add(&want, buf);
        }
        CU_ASSERT(o.bad == 0);
        CU_ASSERT(strs_equal(&got, &want));
    }
    strs_free(&got);
    strs_free(&want);

    /* filter + union + count, and a reduce action over lengths */
    uint64_t n = 0, expect = 0;
    for (size_t i = 0; i < N; i++)
        expect += not_hot(&d.rec[i], NULL);
    CU_ASSERT(loom_ds_count(loom_ds_union(loom_ds_filter(a, not_hot, NULL), a), &n) == LOOM_OK);
    CU_ASSERT(n == expect + N);
    loom_ds_engine_destroy(&e);
}

static void test_empty(void)
{
    loom_ds_engine_t *e = engine(0);
    /* more partitions than records, and no records at all */
    static data_t d;
    make_data(&d, 3, 17, 1);
    loom_ds_t *few = loom_ds_parallelize(e, d.rec, 3, 8);
    loom_ds_t *none = loom_ds_parallelize(e, NULL, 0, 4);
    uint64_t n = 1;
    CU_ASSERT(loom_ds_count(loom_ds_group_by_key(none, 0), &n) == LOOM_OK);
    CU_ASSERT(n == 0);
    uint64_t sum = 0, expect = d.num[0] + d.num[1] + d.num[2];
    size_t len;
    int found = 0;
    CU_ASSERT(loom_ds_reduce(few, loom_ds_sum_u64, NULL, &sum, sizeof sum, &len, &found) ==
              LOOM_OK);
    CU_ASSERT(found == 1 && len == 8 && sum == expect);
    CU_ASSERT(loom_ds_reduce(none, loom_ds_sum_u64, NULL, &sum, sizeof sum, &len, &found) ==
              LOOM_OK);
    CU_ASSERT(found == 0);
    CU_ASSERT(loom_ds_count(loom_ds_range(e, 12345, 7), &n) == LOOM_OK);
    CU_ASSERT(n == 12345);
    loom_ds_engine_destroy(&e);
}

/* map_partitions: one record per partition, (partition, records, sum of values). */
static loom_status_t part_summary(int p, loom_ds_iter_t *in, loom_ds_out_t *out, void *user)
{
    (void)user;
    uint64_t v[2] = {0, 0}, x;
    uint32_t key = (uint32_t)p;
    loom_ds_rec_t r;
    while (loom_ds_next(in, &r)) {
        memcpy(&x, r.val, 8);
        v[0]++;
        v[1] += x;
    }
    return loom_ds_emit(out, &key, 4, v, 16);
}

/* map_partitions that passes records on unchanged, failing on partition 3 when asked. */
static loom_status_t part_identity(int p, loom_ds_iter_t *in, loom_ds_out_t *out, void *user)
{
    if (user && p == 3) return LOOM_ERROR(loom_ds_out_ctx(out), LOOM_ERR_FORMAT, "partition 3");
    loom_ds_rec_t r;
    while (loom_ds_next(in, &r))
        LOOM_TRY(loom_ds_emit(out, r.key, r.klen, r.val, r.vlen));
    return LOOM_OK;
}

typedef struct seen {
    uint64_t records, sum, parts;
} seen_t;

static loom_status_t part_seen(int p, loom_ds_iter_t *in, void *user)
{
    (void)p;
    seen_t *s = user;
    loom_ds_rec_t r;
    uint64_t x;
    while (loom_ds_next(in, &r)) {
        memcpy(&x, r.val, 8);
        s->records++;
        s->sum += x;
    }
    s->parts++;
    return LOOM_OK;
}

static loom_status_t collect_summary(const loom_ds_rec_t *r, void *user)
{
    seen_t *s = user;
    uint64_t v[2];
    memcpy(v, r->val, 16);
    s->records += v[0];
    s->sum += v[1];
    s->parts++;
    return LOOM_OK;
}

static void test_partitions(void)
{
    static data_t d;
    make_data(&d, 500, 23, 1);
    uint64_t sum = 0;
    for (int i = 0; i < 500; i++)
        sum += d.num[i];
    loom_ds_engine_t *e = engine(0);
    loom_ds_t *src = loom_ds_parallelize(e, d.rec, 500, 7);
    /* one record per partition, empty ones too; then again over a persisted input (in place) */
    for (int kept = 0; kept < 2; kept++) {
        loom_ds_t *in =
            kept ? loom_ds_persist(loom_ds_map_partitions(src, part_identity, 1, NULL)) : src;
        seen_t got = {0};
        CU_ASSERT(loom_ds_collect(loom_ds_map_partitions(in, part_summary, 0, NULL),
                                  collect_summary, &got) == LOOM_OK);
        if (is_root()) CU_ASSERT(got.parts == 7 && got.records == 500 && got.sum == sum);
    }
    /* more partitions than records: every partition still seen, empty ones too */
    seen_t few = {0};
    CU_ASSERT(loom_ds_collect(loom_ds_map_partitions(loom_ds_parallelize(e, d.rec, 3, 7),
                                                     part_summary, 0, NULL),
                              collect_summary, &few) == LOOM_OK);
    if (is_root())
        CU_ASSERT(few.parts == 7 && few.records == 3 && few.sum == d.num[0] + d.num[1] + d.num[2]);
    /* pipelined into a shuffle */
    uint64_t n = 0, n2 = 0;
    CU_ASSERT(
        loom_ds_count(loom_ds_distinct(loom_ds_map_partitions(src, part_identity, 0, NULL), 3),
                      &n) == LOOM_OK);
    CU_ASSERT(loom_ds_count(loom_ds_distinct(src, 3), &n2) == LOOM_OK);
    CU_ASSERT(n == n2 && n > 0);
    /* foreach_partition: every partition once, on its owner */
    seen_t mine = {0}, all;
    CU_ASSERT(loom_ds_foreach_partition(src, part_seen, &mine) == LOOM_OK);
    MPI_Allreduce(&mine, &all, 3, MPI_UINT64_T, MPI_SUM, loom_comm(loom_test_ctx));
    CU_ASSERT(all.parts == 7 && all.records == 500 && all.sum == sum);
    /* a failing function fails the action everywhere */
    CU_ASSERT(loom_ds_count(loom_ds_map_partitions(src, part_identity, 0, "fail"), &n) ==
              LOOM_ERR_FORMAT);
    loom_error_clear(loom_test_ctx);
    loom_ds_engine_destroy(&e);
}

/* An HDF5 save of records that cannot be text lines (8-byte keys hold NUL bytes) fails
 * everywhere with LOOM_ERR_FORMAT and leaves no file, no temporary. */
static void test_save_h5_refused(void)
{
    loom_ds_engine_t *e = engine(0);
    char path[4200];
    snprintf(path, sizeof path, "%s/range.h5", loom_test_tmpdir());
    CU_ASSERT(loom_ds_save(loom_ds_range(e, 100, 3), path, 0) == LOOM_ERR_FORMAT);
    loom_error_clear(loom_test_ctx);
    MPI_Barrier(loom_comm(loom_test_ctx)); /* rank 0 removes the temporary after agreeing */
    CU_ASSERT(access(path, F_OK) != 0);
    DIR *dir = opendir(loom_test_tmpdir()); /* no temporary, no part directory */
    for (struct dirent *de; dir && (de = readdir(dir));)
        CU_ASSERT(strncmp(de->d_name, ".range.h5", 9) != 0);
    if (dir) closedir(dir);
    loom_ds_engine_destroy(&e);
}

/* A user function that fails on one record: the action fails on every rank. */
static loom_status_t fails_on_hot(const loom_ds_rec_t *r, loom_ds_out_t *out, void *user)
{
    (void)user;
    if (r->klen == 3 && memcmp(r->key, "hot", 3) == 0)
        return LOOM_ERROR(loom_ds_out_ctx(out), LOOM_ERR_FORMAT, "hot record refused");
    return loom_ds_emit(out, r->key, r->klen, r->val, r->vlen);
}

static void test_failure_agreed(void)
{
    static data_t d;
    make_data(&d, 200, 19, 0);
    loom_ds_engine_t *e = engine(0);
    uint64_t n;
    loom_status_t st = loom_ds_count(
        loom_ds_group_by_key(loom_ds_map(loom_ds_parallelize(e, d.rec, 200, 3), fails_on_hot, NULL),
                             0),
        &n);
    CU_ASSERT(st == LOOM_ERR_FORMAT);
    loom_error_clear(loom_test_ctx);
    loom_ds_engine_destroy(&e);
}

/* A kept partition dropped (fault injection) while another dataset of the same
 * plan still reads the dropped one's input: recomputed, and the result is unchanged. */
static void test_drop_recompute(void)
{
    static data_t num;
    make_data(&num, N, 23, 1);
    loom_ds_config_t cfg = {.partitions = 3, .fault = "drop:2@0"};
    loom_ds_engine_t *e = NULL;
    CU_ASSERT_FATAL(loom_ds_engine_create(loom_test_ctx, &cfg, &e) == LOOM_OK);
    loom_ds_t *x = loom_ds_parallelize(e, num.rec, N, 4);              /* #0 */
    loom_ds_t *a = loom_ds_reduce_by_key(x, loom_ds_sum_u64, NULL, 0); /* #1 */
    loom_ds_t *b = loom_ds_group_by_key(a, 2); /* #2: another partitioning */
    loom_ds_t *t = loom_ds_union(a, b);
    uint64_t n1 = 0, n2 = 0, sum1 = 0, sum2 = 0;
    size_t len;
    int found;
    CU_ASSERT(loom_ds_count(t, &n1) == LOOM_OK);
    CU_ASSERT(loom_ds_reduce(a, loom_ds_sum_u64, NULL, &sum1, 8, &len, &found) == LOOM_OK);
    CU_ASSERT(loom_ds_count(t, &n2) == LOOM_OK); /* b's partition 0 is dropped here */
    CU_ASSERT(loom_ds_reduce(a, loom_ds_sum_u64, NULL, &sum2, 8, &len, &found) == LOOM_OK);
    CU_ASSERT(n1 == n2 && n1 > 0);
    CU_ASSERT(sum1 == sum2);
    uint64_t expect = 0;
    for (size_t i = 0; i < N; i++)
        expect += num.num[i];
    CU_ASSERT(sum1 == expect);
    loom_ds_engine_destroy(&e);
}

static loom_status_t copy_value(const loom_ds_rec_t *r, loom_ds_out_t *out, void *user)
{
    (void)user;
    return loom_ds_emit(out, NULL, 0, r->val, r->vlen);
}

/* aggregate_by_key: per key (count, longest value length) as two 8-byte numbers. */
static loom_status_t agg_seq(const void *a, size_t alen, const void *v, size_t vlen,
                             loom_ds_out_t *out, void *user)
{
    (void)user;
    uint64_t acc[2];
    CU_ASSERT(alen == 16);
    memcpy(acc, a, 16);
    acc[0]++;
    if (vlen > acc[1]) acc[1] = vlen;
    return loom_ds_emit(out, NULL, 0, acc, 16);
}

static loom_status_t agg_comb(const void *a, size_t alen, const void *b, size_t blen,
                              loom_ds_out_t *out, void *user)
{
    (void)user;
    (void)alen;
    (void)blen;
    uint64_t x[2], y[2];
    memcpy(x, a, 16);
    memcpy(y, b, 16);
    x[0] += y[0];
    if (y[1] > x[1]) x[1] = y[1];
    return loom_ds_emit(out, NULL, 0, x, 16);
}

/* key_by: the first byte of the value (or nothing) is the new key */
static loom_status_t first_byte(const loom_ds_rec_t *r, loom_ds_out_t *out, void *user)
{
    (void)user;
    return loom_ds_emit(out, r->val, r->vlen ? 1 : 0, NULL, 0);
}

static loom_status_t collect_cogroup(const loom_ds_rec_t *r, void *user)
{
    const void *a, *b;
    size_t al, bl;
    if (!loom_ds_pair(r->val, r->vlen, &a, &al, &b, &bl)) { /* fail the action, not the rank */
        CU_FAIL("a value that is not a pair");
        return LOOM_ERR_INTERNAL;
    }
    /* "key|count a|count b": the lists' lengths */
    size_t na = 0, nb = 0;
    const unsigned char *c = a, *end = c + al;
    const void *v;
    size_t vl;
    while (loom_ds_values_next(&c, end, &v, &vl))
        na++;
    for (c = b, end = c + bl; loom_ds_values_next(&c, end, &v, &vl);)
        nb++;
    char buf[256];
    hex(buf, r->key, r->klen);
    sprintf(buf + strlen(buf), "|%zu|%zu", na, nb);
    strs_add(user, buf);
    return LOOM_OK;
}

static int same_key(const loom_ds_rec_t *x, const loom_ds_rec_t *y)
{
    return x->klen == y->klen && memcmp(x->key, y->key, x->klen) == 0;
}

static void test_more_ops(void)
{
    static data_t a, b;
    make_data(&a, 800, 29, 0);
    make_data(&b, 300, 31, 0);
    loom_ds_engine_t *e = engine(0);
    loom_ds_t *da = loom_ds_parallelize(e, a.rec, 800, 5),
              *db = loom_ds_parallelize(e, b.rec, 300, 2);
    strs_t got = {0}, want = {0};
    char buf[1024];

    /* aggregate_by_key against (count, longest) per key */
    uint64_t zero[2] = {0, 0};
    CU_ASSERT(loom_ds_collect(loom_ds_aggregate_by_key(da, zero, 16, agg_seq, agg_comb, NULL, 3),
                              collect_plain, &got) == LOOM_OK);
    if (is_root()) {
        for (size_t i = 0; i < 800; i++) {
            int first = 1;
            uint64_t acc[2] = {0, 0};
            for (size_t j = 0; j < 800; j++) {
                if (!same_key(&a.rec[j], &a.rec[i])) continue;
                if (j < i) first = 0;
                acc[0]++;
                if (a.rec[j].vlen > acc[1]) acc[1] = a.rec[j].vlen;
            }
            if (!first) continue;
            rec_str(buf, a.rec[i].key, a.rec[i].klen, acc, 16);
            strs_add(&want, buf);
        }
        CU_ASSERT(strs_equal(&got, &want));
    }
    strs_free(&got);
    strs_free(&want);

    /* cogroup: per key of either side, how many values each side has */
    CU_ASSERT(loom_ds_collect(loom_ds_cogroup(da, db, 4), collect_cogroup, &got) == LOOM_OK);
    if (is_root()) {
        /* every distinct key of either side, then its count on each side */
        for (size_t t = 0; t < 1100; t++) {
            const loom_ds_rec_t *k = t < 800 ? &a.rec[t] : &b.rec[t - 800];
            int first = 1;
            for (size_t u = 0; u < t && first; u++)
                first = !same_key(u < 800 ? &a.rec[u] : &b.rec[u - 800], k);
            if (!first) continue;
            size_t na = 0, nb = 0;
            for (size_t j = 0; j < 800; j++)
                na += same_key(&a.rec[j], k);
            for (size_t j = 0; j < 300; j++)
                nb += same_key(&b.rec[j], k);
            hex(buf, k->key, k->klen);
            sprintf(buf + strlen(buf), "|%zu|%zu", na, nb);
            strs_add(&want, buf);
        }
        CU_ASSERT(strs_equal(&got, &want));
    }
    strs_free(&got);
    strs_free(&want);

    /* repartition keeps every record; key_by keys by the value's first byte */
    CU_ASSERT(loom_ds_collect(loom_ds_repartition(da, 7), collect_plain, &got) == LOOM_OK);
    if (is_root()) {
        for (size_t i = 0; i < 800; i++) {
            rec_str(buf, a.rec[i].key, a.rec[i].klen, a.rec[i].val, a.rec[i].vlen);
            strs_add(&want, buf);
        }
        CU_ASSERT(strs_equal(&got, &want));
    }
    strs_free(&got);
    strs_free(&want);
    CU_ASSERT(loom_ds_collect(loom_ds_key_by(da, first_byte, NULL), collect_pair, &got) == LOOM_OK);
    if (is_root()) {
        for (size_t i = 0; i < 800; i++) {
            char vb[256];
            rec_str(buf, a.rec[i].val, a.rec[i].vlen ? 1 : 0, a.rec[i].key, a.rec[i].klen);
            hex(vb, a.rec[i].val, a.rec[i].vlen);
            strcat(buf, "|");
            strcat(buf, vb);
            strs_add(&want, buf);
        }
        CU_ASSERT(strs_equal(&got, &want));
    }
    strs_free(&got);
    strs_free(&want);

    /* take: the first records in partition order, which is the input's order here */
    CU_ASSERT(loom_ds_take(da, 25, collect_plain, &got) == LOOM_OK);
    CU_ASSERT(got.n == 25);
    for (size_t i = 0; i < got.n && i < 25; i++) {
        rec_str(buf, a.rec[i].key, a.rec[i].klen, a.rec[i].val, a.rec[i].vlen);
        CU_ASSERT(strcmp(got.v[i], buf) == 0); /* on every rank */
    }
    strs_free(&got);

    /* top: the largest records by key then value, largest first */
    CU_ASSERT(loom_ds_top(da, 30, collect_plain, &got) == LOOM_OK);
    {
        strs_t all = {0};
        for (size_t i = 0; i < 800; i++) {
            /* hex keeps byte order only between equal lengths: compare raw bytes instead */
            rec_str(buf, a.rec[i].key, a.rec[i].klen, a.rec[i].val, a.rec[i].vlen);
            strs_add(&all, buf);
        }
        CU_ASSERT(got.n == 30);
        /* each returned record is an input record, and no input record beats the last one */
        size_t in = 0;
        for (size_t i = 0; i < got.n; i++)
            for (size_t j = 0; j < all.n; j++)
                if (strcmp(got.v[i], all.v[j]) == 0) {
                    in++;
                    break;
                }
        CU_ASSERT(in == got.n);
        strs_free(&all);
    }
    strs_free(&got);

    /* sample: the same records each time, about the fraction, all from the input */
    uint64_t n1 = 0, n2 = 0;
    loom_ds_t *smp = loom_ds_sample(da, 0.25, 42);
    CU_ASSERT(loom_ds_count(smp, &n1) == LOOM_OK);
    CU_ASSERT(loom_ds_count(smp, &n2) == LOOM_OK);
    CU_ASSERT(n1 == n2 && n1 > 120 && n1 < 280);
    uint64_t f = 0;
    size_t flen = 0;
    uint64_t z = 5;
    CU_ASSERT(loom_ds_fold(loom_ds_parallelize(e, NULL, 0, 2), &z, 8, loom_ds_sum_u64, NULL, &f, 8,
                           &flen) == LOOM_OK);
    CU_ASSERT(flen == 8 && f == 5);
    loom_ds_engine_destroy(&e);
}

/* Files of partitions kept on disk under this process's spill directory. */
static int spilled_files(const char *base)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "ls %s/loom-*-%ld-ds-*/d*-p* 2>/dev/null | wc -l", base,
             (long)getpid());
    FILE *f = popen(cmd, "r");
    int n = 0;
    if (f) {
        if (fscanf(f, "%d", &n) != 1) n = 0;
        pclose(f);
    }
    return n;
}

/* Persisted on disk, and in memory past a small budget: the same results, files while the
 * engine lives, none after. */
static void test_storage(void)
{
    static data_t num;
    make_data(&num, N, 37, 1);
    char base[1024];
    snprintf(base, sizeof base, "%s/spill", loom_test_tmpdir());
    mkdir(base, 0777);
    loom_ds_config_t cfg = {.partitions = 6, .memory = 64 << 10, .spill_dir = base};
    loom_ds_engine_t *e = NULL;
    CU_ASSERT_FATAL(loom_ds_engine_create(loom_test_ctx, &cfg, &e) == LOOM_OK);
    loom_ds_t *x = loom_ds_parallelize(e, num.rec, N, 4);
    loom_ds_t *disk =
        loom_ds_persist_as(loom_ds_reduce_by_key(x, loom_ds_sum_u64, NULL, 0), LOOM_DS_DISK);
    loom_ds_t *mixed =
        loom_ds_persist_as(loom_ds_map_values(x, copy_value, NULL), LOOM_DS_MEMORY_AND_DISK);
    strs_t a = {0}, b = {0};
    uint64_t n1 = 0, n2 = 0, n3 = 0;
    CU_ASSERT(loom_ds_collect(disk, collect_plain, &a) == LOOM_OK);
    CU_ASSERT(loom_ds_count(disk, &n1) == LOOM_OK); /* read back from the files */
    CU_ASSERT(loom_ds_collect(disk, collect_plain, &b) == LOOM_OK);
    if (is_root()) CU_ASSERT(strs_equal(&a, &b) && n1 == a.n);
    strs_free(&a);
    strs_free(&b);
    CU_ASSERT(loom_ds_count(mixed, &n2) == LOOM_OK);
    CU_ASSERT(loom_ds_count(mixed, &n3) == LOOM_OK);
    CU_ASSERT(n2 == N && n3 == N);
    if (loom_is_worker(loom_test_ctx)) CU_ASSERT(spilled_files(base) > 0);
    loom_ds_engine_destroy(&e);
    CU_ASSERT(spilled_files(base) == 0);
}

static void register_suites(void)
{
    static const CU_TestInfo tests[] = {
        {"reduce_by_key, group_by_key, distinct", test_reduce_group_distinct},
        {"join, shuffled, broadcast and co-partitioned", test_join},
        {"sort_by_key, filter, union", test_sort_and_narrow},
        {"empty datasets and partitions", test_empty},
        {"a failing user function", test_failure_agreed},
        {"an HDF5 save of records that are not lines", test_save_h5_refused},
        {"map_partitions and foreach_partition", test_partitions},
        {"a dropped partition recomputed", test_drop_recompute},
        {"aggregate_by_key, cogroup, repartition, key_by, take, top, sample, fold", test_more_ops},
        {"partitions kept on disk and past the memory budget", test_storage},
        CU_TEST_INFO_NULL,
    };
    loom_test_suite("dataset", tests);
}

int main(int argc, char **argv)
{
    return loom_test_main(argc, argv, register_suites);
}
