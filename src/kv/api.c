/* The batched C API: collective puts and gets that travel through the data plane's exchange,
 * aggregated per destination. A put goes to each key's first home (its coordinator), which
 * makes the version and sends it on to the other homes; a get asks R homes and reconciles. */
#include <stdlib.h>
#include <string.h>

#include "kv/kv_internal.h"

/* Records bucketed by destination rank, drained into an exchange a round at a time. */
typedef struct buckets {
    int n;
    loom_buf_t *b;
    size_t *off;
} buckets_t;

static loom_status_t buckets_init(loom_ctx_t *ctx, buckets_t *k, int n)
{
    k->n = n;
    k->b = calloc((size_t)n, sizeof *k->b);
    k->off = calloc((size_t)n, sizeof *k->off);
    if (!k->b || !k->off) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    return LOOM_OK;
}

static void buckets_free(buckets_t *k)
{
    for (int i = 0; k->b && i < k->n; i++)
        loom_buf_free(&k->b[i]);
    free(k->b);
    free(k->off);
    memset(k, 0, sizeof *k);
}

static size_t record_len(const unsigned char *p, const unsigned char *end)
{
    uint64_t kl, vl;
    const unsigned char *q = loom_get_varint(p, end, &kl);
    if (q) q = loom_get_varint(q, end, &vl);
    return q ? (size_t)(q - p) + (size_t)kl + (size_t)vl : 0;
}

/* Walk the records of a segment: fn(user, key, klen, val, vlen). */
typedef loom_status_t (*record_fn)(void *user, int src, const unsigned char *k, size_t kl,
                                   const unsigned char *v, size_t vl);

static loom_status_t each_record(loom_ctx_t *ctx, int src, const unsigned char *p, size_t bytes,
                                 record_fn fn, void *user)
{
    const unsigned char *end = p + bytes;
    while (p < end) {
        uint64_t kl, vl;
        if (!(p = loom_get_varint(p, end, &kl)) || !(p = loom_get_varint(p, end, &vl)) ||
            kl + vl > (uint64_t)(end - p))
            return LOOM_ERROR(ctx, LOOM_ERR_INTERNAL, "kv: a malformed exchange segment");
        LOOM_TRY(fn(user, src, p, (size_t)kl, p + kl, (size_t)vl));
        p += kl + vl;
    }
    return LOOM_OK;
}

typedef struct batch {
    loom_kv_t *kv;
    buckets_t *in;         /* what this exchange sends */
    buckets_t out;         /* what the second exchange sends */
    loom_kv_values_t *res; /* gets: the results */
    kv_sibs_t *got;        /* gets: versions per key */
    record_fn fn;
} batch_t;

static loom_status_t pack_buckets(loom_exchange_t *x, void *user, int *more)
{
    buckets_t *k = ((batch_t *)user)->in;
    size_t room = loom_exchange_room(x);
    for (int d = 0; d < k->n; d++) {
        loom_buf_t *b = &k->b[d];
        while (k->off[d] < b->len) {
            size_t rl = record_len(b->data + k->off[d], b->data + b->len);
            size_t pend = loom_exchange_pending(x, d);
            if (pend && pend + rl > room) {
                *more = 1;
                break;
            }
            LOOM_TRY(loom_exchange_put(x, d, b->data + k->off[d], rl));
            k->off[d] += rl;
        }
    }
    return LOOM_OK;
}

static loom_status_t unpack_records(loom_exchange_t *x, void *user, int src,
                                    const unsigned char *data, size_t bytes)
{
    batch_t *bt = user;
    (void)x;
    return each_record(bt->kv->ctx, src, data, bytes, bt->fn, bt);
}

static loom_status_t run_exchange(loom_kv_t *kv, buckets_t *in, batch_t *bt, record_fn fn)
{
    loom_exchange_opts_t o = {.among = LOOM_AMONG_JOB, .elem = 1};
    loom_exchange_t *x = NULL;
    LOOM_TRY(loom_exchange_create(kv->ctx, &o, &x));
    bt->fn = fn;
    bt->in = in;
    loom_status_t st = loom_exchange_run(x, pack_buckets, unpack_records, bt);
    loom_exchange_destroy(&x);
    return st;
}

static loom_status_t check_keys(loom_kv_t *kv, size_t n, const size_t *klens, const size_t *vlens)
{
    for (size_t i = 0; i < n; i++)
        if (!klens[i] || klens[i] > kv->max_value || (vlens && vlens[i] > kv->max_value))
            return LOOM_ERROR(kv->ctx, LOOM_ERR_USAGE,
                              "kv: key %zu of the batch: %s (keys 1..%zu bytes, values up to %zu)",
                              i, !klens[i] ? "empty key" : "too large", kv->max_value,
                              kv->max_value);
    return LOOM_OK;
}

/* ------------------------------------------------------------------ puts */

/* At a coordinator: make the version, keep it, and send it to the key's other homes. */
static loom_status_t coordinate_one(void *user, int src, const unsigned char *k, size_t kl,
                                    const unsigned char *v, size_t vl)
{
    batch_t *bt = user;
    loom_kv_t *kv = bt->kv;
    (void)src;
    if (vl < 1 || kv->me < 0) return LOOM_ERROR(kv->ctx, LOOM_ERR_INTERNAL, "kv: misrouted put");
    uint64_t hash = loom_key_hash(k, kl);
    kv_entry_t *e = kv_table_find(&kv->h.main, hash, KV_NO_TARGET, k, kl);
    uint64_t floor = e ? kv_sibs_max_counter(&e->sibs, kv->my_slot) : 0;
    kv_version_t ver = {
        .dot = {kv->my_slot, kv_next_counter_above(kv, floor)}, .ts = kv_now_us(), .dead = v[0]};
    if (e && kv_sibs_context(&e->sibs, &ver.ctx)) goto nomem;
    ver.len = (uint32_t)(vl - 1);
    if (ver.len && !(ver.val = malloc(ver.len))) goto nomem;
    if (ver.len) memcpy(ver.val, v + 1, ver.len);
    kv_sibs_t one = {1, &ver};
    loom_status_t st = kv_holder_merge(&kv->h, KV_NO_TARGET, hash, k, kl, &one, NULL, &e);
    kv_version_free(&ver);
    if (st != LOOM_OK || !e) return st;
    /* the other homes get the coordinator's whole state of the key */
    const uint16_t *ord = kv_ring_order(&kv->ring, hash);
    unsigned char *enc = malloc(kv_sibs_encoded_max(&e->sibs));
    if (!enc) return LOOM_ERROR(kv->ctx, LOOM_ERR_NOMEM, "out of memory");
    size_t el = (size_t)(kv_sibs_encode(&e->sibs, enc) - enc);
    for (int i = 1; st == LOOM_OK && i < kv->ring.n; i++)
        st = loom_buf_put_record(kv->ctx, &bt->out.b[kv->holder_rank[ord[i]]], k, kl, enc, el);
    free(enc);
    return st;
nomem:
    kv_clock_free(&ver.ctx);
    return LOOM_ERROR(kv->ctx, LOOM_ERR_NOMEM, "out of memory");
}

static loom_status_t replicate_one(void *user, int src, const unsigned char *k, size_t kl,
                                   const unsigned char *v, size_t vl)
{
    batch_t *bt = user;
    loom_kv_t *kv = bt->kv;
    (void)src;
    kv_sibs_t in;
    const unsigned char *p = v;
    int r = kv_sibs_decode(&p, v + vl, SIZE_MAX, &in);
    if (r)
        return LOOM_ERROR(kv->ctx, r == -2 ? LOOM_ERR_NOMEM : LOOM_ERR_INTERNAL,
                          "kv: a replica record that does not decode");
    loom_status_t st =
        kv_holder_merge(&kv->h, KV_NO_TARGET, loom_key_hash(k, kl), k, kl, &in, NULL, NULL);
    kv_sibs_free(&in);
    return st;
}

static loom_status_t write_batch(loom_kv_t *kv, size_t n, const void *const *keys,
                                 const size_t *klens, const void *const *vals, const size_t *vlens,
                                 int del)
{
    loom_ctx_t *ctx = kv->ctx;
    buckets_t first = {0};
    batch_t bt = {.kv = kv};
    loom_status_t st = !del && n && (!vals || !vlens)
                           ? LOOM_ERROR(ctx, LOOM_ERR_USAGE, "kv: a put batch without values")
                           : check_keys(kv, n, klens, vlens);
    if (st == LOOM_OK) st = buckets_init(ctx, &first, kv->size);
    if (st == LOOM_OK) st = buckets_init(ctx, &bt.out, kv->size);
    unsigned char *tmp = NULL;
    size_t tcap = 0;
    for (size_t i = 0; st == LOOM_OK && i < n; i++) {
        size_t vl = vals ? vlens[i] : 0;
        if (vl + 1 > tcap) {
            unsigned char *g = realloc(tmp, vl + 1);
            if (!g) {
                st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
                break;
            }
            tmp = g;
            tcap = vl + 1;
        }
        tmp[0] = vals == NULL; /* a deletion */
        if (vl) memcpy(tmp + 1, vals[i], vl);
        const uint16_t *ord = kv_ring_order(&kv->ring, loom_key_hash(keys[i], klens[i]));
        st = loom_buf_put_record(ctx, &first.b[kv->holder_rank[ord[0]]], keys[i], klens[i], tmp,
                                 vl + 1);
    }
    free(tmp);
    st = loom_agree(ctx, loom_comm(ctx), st);
    if (st == LOOM_OK) st = run_exchange(kv, &first, &bt, coordinate_one);
    buckets_free(&first);
    if (st == LOOM_OK) {
        buckets_t second = bt.out;
        bt.out = (buckets_t){0};
        st = run_exchange(kv, &second, &bt, replicate_one);
        buckets_free(&second);
    }
    buckets_free(&bt.out);
    if (st == LOOM_OK && kv->me >= 0)
        st = kv->h.fsync == LOOM_KV_FSYNC_ALWAYS ? kv_holder_sync(&kv->h) : kv_holder_flush(&kv->h);
    return loom_agree(ctx, loom_comm(ctx), st);
}

loom_status_t loom_kv_put_batch(loom_kv_t *kv, size_t n, const void *const *keys,
                                const size_t *klens, const void *const *vals, const size_t *vlens)
{
    return write_batch(kv, n, keys, klens, vals, vlens, 0);
}

loom_status_t loom_kv_del_batch(loom_kv_t *kv, size_t n, const void *const *keys,
                                const size_t *klens)
{
    return write_batch(kv, n, keys, klens, NULL, NULL, 1);
}

/* ------------------------------------------------------------------ gets */

/* At a home: the versions of the key (record value: the asker's index, 8 bytes). */
static loom_status_t answer_one(void *user, int src, const unsigned char *k, size_t kl,
                                const unsigned char *v, size_t vl)
{
    batch_t *bt = user;
    loom_kv_t *kv = bt->kv;
    if (vl != 8 || kv->me < 0) return LOOM_ERROR(kv->ctx, LOOM_ERR_INTERNAL, "kv: misrouted get");
    kv_entry_t *e = kv_table_find(&kv->h.main, loom_key_hash(k, kl), KV_NO_TARGET, k, kl);
    kv_sibs_t none = {0};
    const kv_sibs_t *s = e ? &e->sibs : &none;
    unsigned char *enc = malloc(kv_sibs_encoded_max(s));
    if (!enc) return LOOM_ERROR(kv->ctx, LOOM_ERR_NOMEM, "out of memory");
    size_t el = (size_t)(kv_sibs_encode(s, enc) - enc);
    loom_status_t st = loom_buf_put_record(kv->ctx, &bt->out.b[src], v, 8, enc, el);
    free(enc);
    return st;
}

static loom_status_t gather_one(void *user, int src, const unsigned char *k, size_t kl,
                                const unsigned char *v, size_t vl)
{
    batch_t *bt = user;
    (void)src;
    uint64_t i;
    if (kl != 8) return LOOM_ERROR(bt->kv->ctx, LOOM_ERR_INTERNAL, "kv: a malformed answer");
    memcpy(&i, k, 8);
    kv_sibs_t in;
    const unsigned char *p = v;
    int r = kv_sibs_decode(&p, v + vl, SIZE_MAX, &in);
    if (r || i >= bt->res->n)
        return LOOM_ERROR(bt->kv->ctx, r == -2 ? LOOM_ERR_NOMEM : LOOM_ERR_INTERNAL,
                          "kv: an answer that does not decode");
    r = kv_sibs_merge(&bt->got[i], &in);
    kv_sibs_free(&in);
    return r < 0 ? LOOM_ERROR(bt->kv->ctx, LOOM_ERR_NOMEM, "out of memory") : LOOM_OK;
}

static loom_status_t fill_results(loom_kv_t *kv, batch_t *bt)
{
    loom_kv_values_t *o = bt->res;
    uint64_t total = 0;
    for (size_t i = 0; i < o->n; i++) {
        const kv_version_t *v = kv_sibs_latest(&bt->got[i]);
        o->found[i] = v != NULL;
        o->siblings[i] = kv_sibs_live(&bt->got[i]);
        o->off[i] = total;
        o->len[i] = v ? v->len : 0;
        total += o->len[i];
    }
    o->data = malloc(total ? total : 1);
    if (!o->data) return LOOM_ERROR(kv->ctx, LOOM_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < o->n; i++) {
        const kv_version_t *v = kv_sibs_latest(&bt->got[i]);
        if (v && v->len) memcpy(o->data + o->off[i], v->val, v->len);
    }
    return LOOM_OK;
}

loom_status_t loom_kv_get_batch(loom_kv_t *kv, size_t n, const void *const *keys,
                                const size_t *klens, int r, loom_kv_values_t *out)
{
    loom_ctx_t *ctx = kv->ctx;
    memset(out, 0, sizeof *out);
    out->n = n;
    if (r <= 0) r = kv->r;
    if (r > kv->ring.n) r = kv->ring.n;
    buckets_t first = {0};
    batch_t bt = {.kv = kv, .res = out};
    loom_status_t st = check_keys(kv, n, klens, NULL);
    out->found = calloc(n ? n : 1, 1);
    out->siblings = calloc(n ? n : 1, sizeof *out->siblings);
    out->off = calloc(n ? n : 1, sizeof *out->off);
    out->len = calloc(n ? n : 1, sizeof *out->len);
    bt.got = calloc(n ? n : 1, sizeof *bt.got);
    if (st == LOOM_OK && (!out->found || !out->siblings || !out->off || !out->len || !bt.got))
        st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    if (st == LOOM_OK) st = buckets_init(ctx, &first, kv->size);
    if (st == LOOM_OK) st = buckets_init(ctx, &bt.out, kv->size);
    for (size_t i = 0; st == LOOM_OK && i < n; i++) {
        const uint16_t *ord = kv_ring_order(&kv->ring, loom_key_hash(keys[i], klens[i]));
        uint64_t idx = i;
        for (int k = 0; st == LOOM_OK && k < r; k++)
            st = loom_buf_put_record(ctx, &first.b[kv->holder_rank[ord[k]]], keys[i], klens[i],
                                     &idx, 8);
    }
    st = loom_agree(ctx, loom_comm(ctx), st);
    if (st == LOOM_OK) st = run_exchange(kv, &first, &bt, answer_one);
    buckets_free(&first);
    if (st == LOOM_OK) {
        buckets_t second = bt.out;
        bt.out = (buckets_t){0};
        st = run_exchange(kv, &second, &bt, gather_one);
        buckets_free(&second);
    }
    buckets_free(&bt.out);
    if (st == LOOM_OK) st = fill_results(kv, &bt);
    for (size_t i = 0; bt.got && i < n; i++)
        kv_sibs_free(&bt.got[i]);
    free(bt.got);
    st = loom_agree(ctx, loom_comm(ctx), st);
    if (st != LOOM_OK) loom_kv_values_free(out);
    return st;
}

void loom_kv_values_free(loom_kv_values_t *v)
{
    if (!v) return;
    free(v->found);
    free(v->siblings);
    free(v->off);
    free(v->len);
    free(v->data);
    memset(v, 0, sizeof *v);
}
