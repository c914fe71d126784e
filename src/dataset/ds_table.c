/* Record tables: open addressing on the key's 64-bit hash, records in one arena. Combining
 * (reduce_by_key, on both sides of the shuffle) and distinct records use them. */
#include <stdlib.h>
#include <string.h>

#include "dataset/ds_internal.h"

static loom_status_t grow(loom_ctx_t *ctx, ds_table_t *t)
{
    size_t cap = t->cap ? 2 * t->cap : 1024;
    ds_slot_t *slot = calloc(cap, sizeof *slot);
    if (!slot)
        return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory: a table of %zu records", cap / 2);
    for (size_t i = 0; i < t->cap; i++) {
        if (!t->slot[i].at) continue;
        size_t j = t->slot[i].hash & (cap - 1);
        while (slot[j].at)
            j = (j + 1) & (cap - 1);
        slot[j] = t->slot[i];
    }
    free(t->slot);
    t->slot = slot;
    t->cap = cap;
    return LOOM_OK;
}

/* Table records are [u32 klen][u32 vlen][key][value]: decoding one is two loads. */
static inline void entry(const ds_table_t *t, uint64_t slot, loom_ds_rec_t *r)
{
    const unsigned char *p = t->arena.data + slot - 1;
    uint32_t kl, vl;
    memcpy(&kl, p, 4);
    memcpy(&vl, p + 4, 4);
    r->key = p + 8;
    r->klen = kl;
    r->val = p + 8 + kl;
    r->vlen = vl;
}

void ds_table_rec(const ds_table_t *t, size_t i, loom_ds_rec_t *r)
{
    entry(t, t->slot[i].at, r);
}

/* The slot of the key, or the empty slot where it goes. */
static size_t find(const ds_table_t *t, uint64_t h, const void *key, size_t klen, int *found)
{
    size_t j = h & (t->cap - 1);
    for (;; j = (j + 1) & (t->cap - 1)) {
        const ds_slot_t *sl = &t->slot[j];
        if (!sl->at) {
            *found = 0;
            return j;
        }
        if (sl->hash != h) continue;
        loom_ds_rec_t r;
        entry(t, sl->at, &r);
        if (r.klen == klen && (klen == 8 ? memcmp(r.key, key, 8) : memcmp(r.key, key, klen)) == 0) {
            *found = 1;
            return j;
        }
    }
}

static loom_status_t place(loom_ctx_t *ctx, ds_table_t *t, size_t j, uint64_t h, const void *key,
                           size_t klen, const void *val, size_t vlen)
{
    if (klen > UINT32_MAX || vlen > UINT32_MAX)
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                          "a record of %zu + %zu bytes is too large to combine", klen, vlen);
    size_t at = t->arena.len;
    LOOM_TRY(loom_buf_reserve(ctx, &t->arena, 8 + klen + vlen));
    uint32_t kl = (uint32_t)klen, vl = (uint32_t)vlen;
    unsigned char *p = t->arena.data + at;
    memcpy(p, &kl, 4);
    memcpy(p + 4, &vl, 4);
    if (klen) memcpy(p + 8, key, klen);
    if (vlen) memcpy(p + 8 + klen, val, vlen);
    t->arena.len = at + 8 + klen + vlen;
    t->slot[j].at = at + 1;
    t->slot[j].hash = h;
    return LOOM_OK;
}

static loom_status_t reserve(loom_ctx_t *ctx, ds_table_t *t)
{
    if (2 * (t->n + 1) > t->cap) return grow(ctx, t);
    return LOOM_OK;
}

loom_status_t ds_table_add(loom_ctx_t *ctx, ds_table_t *t, uint64_t h, const void *key, size_t klen,
                           const void *val, size_t vlen, loom_ds_combine_fn fn, void *user)
{
    LOOM_TRY(reserve(ctx, t));
    int found;
    size_t j = find(t, h, key, klen, &found);
    if (!found) {
        t->n++;
        return place(ctx, t, j, h, key, klen, val, vlen);
    }
    loom_ds_rec_t old;
    entry(t, t->slot[j].at, &old);
    unsigned char *ov = (unsigned char *)old.val;
    if ((fn == loom_ds_sum_u64 || fn == loom_ds_sum_f64) && old.vlen == 8 && vlen == 8) {
        if (fn == loom_ds_sum_u64) {
            uint64_t a, b;
            memcpy(&a, ov, 8);
            memcpy(&b, val, 8);
            a += b;
            memcpy(ov, &a, 8);
        } else {
            double a, b;
            memcpy(&a, ov, 8);
            memcpy(&b, val, 8);
            a += b;
            memcpy(ov, &a, 8);
        }
        return LOOM_OK;
    }
    if (fn == loom_ds_sum_f64v && old.vlen == vlen && vlen % 8 == 0) {
        for (size_t i = 0; i < vlen; i += 8) {
            double a, b;
            memcpy(&a, ov + i, 8);
            memcpy(&b, (const unsigned char *)val + i, 8);
            a += b;
            memcpy(ov + i, &a, 8);
        }
        return LOOM_OK;
    }
    loom_buf_t cap = {0};
    loom_ds_out_t out = {.ctx = ctx, .capture = &cap};
    loom_status_t st = fn(old.val, old.vlen, val, vlen, &out, user);
    if (st == LOOM_OK && cap.len == old.vlen) {
        if (cap.len) memcpy(ov, cap.data, cap.len);
    } else if (st == LOOM_OK) {
        /* the combined value has another length: append it (the old record stays unused) */
        st = place(ctx, t, j, h, key, klen, cap.data, cap.len);
    }
    loom_buf_free(&cap);
    return st;
}

loom_status_t ds_table_seq(loom_ctx_t *ctx, ds_table_t *t, uint64_t h, const void *key, size_t klen,
                           const void *val, size_t vlen, loom_ds_combine_fn seq, void *user,
                           const loom_buf_t *zero)
{
    int found = 0;
    if (t->cap) find(t, h, key, klen, &found);
    if (found) return ds_table_add(ctx, t, h, key, klen, val, vlen, seq, user);
    loom_buf_t acc = {0};
    loom_ds_out_t out = {.ctx = ctx, .capture = &acc};
    loom_status_t st =
        seq(zero->data ? zero->data : (const unsigned char *)"", zero->len, val, vlen, &out, user);
    int added;
    if (st == LOOM_OK)
        st = ds_table_insert(ctx, t, h, key, klen, acc.data ? acc.data : (unsigned char *)"",
                             acc.len, &added);
    loom_buf_free(&acc);
    return st;
}

loom_status_t ds_table_insert(loom_ctx_t *ctx, ds_table_t *t, uint64_t h, const void *key,
                              size_t klen, const void *val, size_t vlen, int *added)
{
    LOOM_TRY(reserve(ctx, t));
    int found;
    size_t j = find(t, h, key, klen, &found);
    *added = !found;
    if (found) return LOOM_OK;
    t->n++;
    return place(ctx, t, j, h, key, klen, val, vlen);
}

loom_status_t ds_table_each(loom_ctx_t *ctx, const ds_table_t *t, ds_sink_t *sink)
{
    (void)ctx;
    for (size_t i = 0; i < t->cap; i++) {
        if (!t->slot[i].at) continue;
        loom_ds_rec_t r;
        entry(t, t->slot[i].at, &r);
        LOOM_TRY(sink->put(sink, &r));
    }
    return LOOM_OK;
}

size_t ds_table_bytes(const ds_table_t *t)
{
    return t->arena.cap + t->cap * sizeof(ds_slot_t);
}

void ds_table_free(ds_table_t *t)
{
    free(t->slot);
    loom_buf_free(&t->arena);
    memset(t, 0, sizeof *t);
}
