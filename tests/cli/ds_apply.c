/* Test helper: apply one dataset transformation to records read from text files and save
 * the result, so that test_ds_model.py can check it against a Python model. Records are
 * lines "KEYHEX<TAB>VALUEHEX" (any bytes, empty ones too); output lines are the same, a
 * group's or cogroup's values as sorted comma lists.
 *
 *   ds_apply OP OUT A [B]      (under mpiexec; OP names the transformation)
 *   ds_apply h5 OUT FILE:/DS   the elements of a 1-D HDF5 dataset (loom_ds_h5), unchanged
 *   ds_apply h5_repartition OUT FILE:/DS   the same through a shuffle (read on several threads)
 * An OUT ending in .h5 is saved as HDF5 (loom_ds_save). DS_APPLY_MEMORY=BYTES sets the
 * engine's memory budget (shuffles then route in rounds and spill received records). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loom/loom.h"

/* Bytes written as hex into a buffer the caller sized. */
typedef struct hexbuf {
    unsigned char *data;
    size_t len, cap;
} hexbuf_t;

static int unhex(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static loom_status_t parse(const loom_ds_rec_t *line, loom_ds_out_t *out, void *user)
{
    (void)user;
    const char *s = line->key, *tab = memchr(s, '\t', line->klen);
    if (!tab || (tab - s) % 2 || (line->klen - (size_t)(tab - s) - 1) % 2)
        return LOOM_ERROR(loom_ds_out_ctx(out), LOOM_ERR_FORMAT, "%s: not KEYHEX<TAB>VALUEHEX",
                          loom_ds_where(out));
    size_t kl = (size_t)(tab - s) / 2, vl = (line->klen - (size_t)(tab - s) - 1) / 2;
    unsigned char *b = malloc(kl + vl + 1);
    if (!b) return LOOM_ERR_NOMEM;
    for (size_t i = 0; i < kl + vl; i++) {
        const char *h = i < kl ? s + 2 * i : tab + 1 + 2 * (i - kl);
        b[i] = (unsigned char)(unhex(h[0]) * 16 + unhex(h[1]));
    }
    loom_status_t st = loom_ds_emit(out, b, kl, b + kl, vl);
    free(b);
    return st;
}

static void hex(hexbuf_t *b, const void *p, size_t n)
{
    static const char d[] = "0123456789abcdef";
    const unsigned char *u = p;
    for (size_t i = 0; i < n; i++) {
        b->data[b->len++] = (unsigned char)d[u[i] >> 4];
        b->data[b->len++] = (unsigned char)d[u[i] & 15];
    }
}

/* A list of values (group_by_key's encoding) as sorted, comma-separated hex. */
static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *list_text(const void *val, size_t vlen)
{
    const unsigned char *c = val, *end = c + vlen;
    const void *v;
    size_t vl, n = 0;
    while (loom_ds_values_next(&c, end, &v, &vl))
        n++;
    char **items = calloc(n + 1, sizeof *items), *all = malloc(2 * vlen + n + 2);
    c = val;
    for (size_t i = 0; loom_ds_values_next(&c, end, &v, &vl); i++) {
        items[i] = malloc(2 * vl + 1);
        hexbuf_t b = {(unsigned char *)items[i], 0, 2 * vl + 1};
        hex(&b, v, vl);
        items[i][b.len] = 0;
    }
    qsort(items, n, sizeof *items, cmp_str);
    all[0] = 0;
    for (size_t i = 0; i < n; i++) {
        if (i) strcat(all, ",");
        strcat(all, items[i]);
        free(items[i]);
    }
    free(items);
    return all;
}

/* Records back to text: KEYHEX, VALUEHEX; groups (mode 1) and cogroups (mode 2) as lists. */
static loom_status_t as_text(const loom_ds_rec_t *r, loom_ds_out_t *out, void *mode)
{
    long m = (long)(intptr_t)mode;
    char *text = NULL;
    if (m == 1) {
        text = list_text(r->val, r->vlen);
    } else if (m == 2) {
        const void *a, *b;
        size_t al, bl;
        loom_ds_pair(r->val, r->vlen, &a, &al, &b, &bl);
        char *ta = list_text(a, al), *tb = list_text(b, bl);
        text = malloc(strlen(ta) + strlen(tb) + 2);
        sprintf(text, "%s|%s", ta, tb);
        free(ta);
        free(tb);
    } else if (m == 3) { /* join: pair(a, b) */
        const void *a, *b;
        size_t al, bl;
        loom_ds_pair(r->val, r->vlen, &a, &al, &b, &bl);
        text = malloc(2 * (al + bl) + 2);
        hexbuf_t t = {(unsigned char *)text, 0, 0};
        hex(&t, a, al);
        text[t.len++] = '|';
        hex(&t, b, bl);
        text[t.len] = 0;
    }
    hexbuf_t k = {malloc(2 * r->klen + 2), 0, 0};
    hex(&k, r->key, r->klen);
    loom_status_t st;
    if (text) {
        /* save_text writes "key\n" for an empty value: keep a marker so that it always has one */
        size_t tl = strlen(text);
        char *v = malloc(tl + 2);
        v[0] = '=';
        memcpy(v + 1, text, tl);
        st = loom_ds_emit(out, k.data, k.len, v, tl + 1);
        free(v);
        free(text);
    } else {
        hexbuf_t v = {malloc(2 * r->vlen + 2), 1, 0};
        v.data[0] = '=';
        hex(&v, r->val, r->vlen);
        st = loom_ds_emit(out, k.data, k.len, v.data, v.len);
        free(v.data);
    }
    free(k.data);
    return st;
}

/* The model's functions, mirrored in test_ds_model.py. */
static int even_value(const loom_ds_rec_t *r, void *user)
{
    (void)user;
    return r->vlen % 2 == 0;
}

static loom_status_t bytes_of_value(const loom_ds_rec_t *r, loom_ds_out_t *out, void *user)
{
    (void)user;
    for (size_t i = 0; i < r->vlen; i++)
        LOOM_TRY(loom_ds_emit(out, r->key, r->klen, (const char *)r->val + i, 1));
    return LOOM_OK;
}

static loom_status_t reversed(const loom_ds_rec_t *r, loom_ds_out_t *out, void *user)
{
    (void)user;
    unsigned char *v = malloc(r->vlen + 1);
    for (size_t i = 0; i < r->vlen; i++)
        v[i] = ((const unsigned char *)r->val)[r->vlen - 1 - i];
    loom_status_t st = loom_ds_emit(out, NULL, 0, v, r->vlen);
    free(v);
    return st;
}

static loom_status_t first_byte(const loom_ds_rec_t *r, loom_ds_out_t *out, void *user)
{
    (void)user;
    return loom_ds_emit(out, r->val, r->vlen ? 1 : 0, NULL, 0);
}

/* map_partitions: a partition's records, last first (the whole partition is needed). */
static loom_status_t reversed_partition(int p, loom_ds_iter_t *in, loom_ds_out_t *out, void *user)
{
    (void)p;
    (void)user;
    loom_ds_rec_t r, *all = NULL;
    size_t n = 0, cap = 0;
    while (loom_ds_next(in, &r)) {
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            loom_ds_rec_t *g = realloc(all, cap * sizeof *all);
            if (!g) {
                free(all);
                return LOOM_ERR_NOMEM;
            }
            all = g;
        }
        all[n++] = r; /* borrowed until this function returns */
    }
    loom_status_t st = LOOM_OK;
    while (n-- > 0 && st == LOOM_OK)
        st = loom_ds_emit(out, all[n].key, all[n].klen, all[n].val, all[n].vlen);
    free(all);
    return st;
}

/* reduce_by_key: the larger value in byte order (a shorter prefix first) */
static loom_status_t larger(const void *a, size_t al, const void *b, size_t bl, loom_ds_out_t *out,
                            void *user)
{
    (void)user;
    size_t m = al < bl ? al : bl;
    int c = memcmp(a, b, m);
    int a_wins = c > 0 || (c == 0 && al >= bl);
    return loom_ds_emit(out, NULL, 0, a_wins ? a : b, a_wins ? al : bl);
}

/* aggregate_by_key: (count, total length) as two 8-byte numbers */
static loom_status_t agg_seq(const void *a, size_t al, const void *v, size_t vl, loom_ds_out_t *out,
                             void *user)
{
    (void)user;
    (void)al;
    uint64_t x[2];
    memcpy(x, a, 16);
    x[0]++;
    x[1] += vl;
    return loom_ds_emit(out, NULL, 0, x, 16);
}

static loom_status_t agg_comb(const void *a, size_t al, const void *b, size_t bl,
                              loom_ds_out_t *out, void *user)
{
    (void)user;
    (void)al;
    (void)bl;
    uint64_t x[2], y[2];
    memcpy(x, a, 16);
    memcpy(y, b, 16);
    x[0] += y[0];
    x[1] += y[1];
    return loom_ds_emit(out, NULL, 0, x, 16);
}

int main(int argc, char **argv)
{
    loom_ctx_t *ctx = NULL;
    loom_status_t st = loom_ctx_create(&argc, &argv, &ctx);
    if (st != LOOM_OK || argc < 4) {
        fprintf(stderr, "usage: ds_apply OP OUT A [B]\n");
        loom_ctx_destroy(&ctx);
        return 2;
    }
    const char *op = argv[1], *out = argv[2];
    const char *in_a = argv[3], *in_b = argc > 4 ? argv[4] : argv[3];
    loom_ds_config_t cfg = {.partitions = 5, .split_size = 4096};
    const char *mem = getenv("DS_APPLY_MEMORY");
    if (mem) cfg.memory = (size_t)strtoull(mem, NULL, 10);
    loom_ds_engine_t *e = NULL;
    st = loom_ds_engine_create(ctx, &cfg, &e);
    if (st == LOOM_OK) {
        int h5 = !strncmp(op, "h5", 2);
        loom_ds_t *a = h5 ? NULL : loom_ds_map(loom_ds_text(e, &in_a, 1), parse, NULL);
        loom_ds_t *b = h5 ? NULL : loom_ds_map(loom_ds_text(e, &in_b, 1), parse, NULL);
        loom_ds_t *r = NULL;
        long mode = 0;
        static const uint64_t zero[2] = {0, 0};
        if (!strcmp(op, "h5"))
            r = loom_ds_h5(e, in_a, 3, NULL);
        else if (!strcmp(op, "h5_repartition"))
            r = loom_ds_repartition(loom_ds_h5(e, in_a, 6, NULL), 4);
        else if (!strcmp(op, "filter"))
            r = loom_ds_filter(a, even_value, NULL);
        else if (!strcmp(op, "flat_map"))
            r = loom_ds_flat_map(a, bytes_of_value, NULL);
        else if (!strcmp(op, "map_values"))
            r = loom_ds_map_values(a, reversed, NULL);
        else if (!strcmp(op, "key_by"))
            r = loom_ds_key_by(a, first_byte, NULL), mode = 3;
        else if (!strcmp(op, "map_partitions"))
            r = loom_ds_map_partitions(a, reversed_partition, 0, NULL);
        else if (!strcmp(op, "union"))
            r = loom_ds_union(a, b);
        else if (!strcmp(op, "reduce_by_key"))
            r = loom_ds_reduce_by_key(a, larger, NULL, 3);
        else if (!strcmp(op, "aggregate_by_key"))
            r = loom_ds_aggregate_by_key(a, zero, 16, agg_seq, agg_comb, NULL, 4);
        else if (!strcmp(op, "group_by_key"))
            r = loom_ds_group_by_key(a, 0), mode = 1;
        else if (!strcmp(op, "cogroup"))
            r = loom_ds_cogroup(a, b, 3), mode = 2;
        else if (!strcmp(op, "distinct"))
            r = loom_ds_distinct(a, 2);
        else if (!strcmp(op, "partition_by"))
            r = loom_ds_partition_by(a, 7);
        else if (!strcmp(op, "repartition"))
            r = loom_ds_repartition(a, 3);
        else if (!strcmp(op, "join"))
            r = loom_ds_join(a, b, 4), mode = 3;
        else if (!strcmp(op, "join_broadcast"))
            r = loom_ds_join_broadcast(a, b), mode = 3;
        else if (!strcmp(op, "join_copartitioned"))
            r = loom_ds_join(loom_ds_partition_by(a, 4), loom_ds_partition_by(b, 4), 0), mode = 3;
        else if (!strcmp(op, "sort_by_key"))
            r = loom_ds_sort_by_key(a, 4);
        else
            st = LOOM_ERROR(ctx, LOOM_ERR_USAGE, "unknown operation %s", op);
        if (st == LOOM_OK)
            st = loom_ds_save(loom_ds_map(r, as_text, (void *)(intptr_t)mode), out, 1);
        loom_ds_engine_destroy(&e);
    }
    if (st != LOOM_OK) loom_error_report(ctx);
    loom_set_exit_status(ctx, st == LOOM_OK ? 0 : 1);
    loom_ctx_destroy(&ctx);
    return st == LOOM_OK ? 0 : 1;
}
