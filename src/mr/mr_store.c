/* Pair stores (combining hash table or append list), sorted spill runs, readers and k-way merge. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/hash.h"
#include "mr/mr_internal.h"

/* ------------------------------------------------------------------ stores */

void mr_store_init(mr_store_t *st, mr_engine_t *eng, size_t budget)
{
    memset(st, 0, sizeof *st);
    st->eng = eng;
    st->budget = budget;
    st->use_table = eng->job->combine != NULL;
    st->sum_u64 = eng->job->combine == loom_mr_combine_sum_u64;
}

size_t mr_store_mem(const mr_store_t *st)
{
    return st->entcap * sizeof(mr_entry_t) + st->nslots * sizeof(uint64_t) + st->acap +
           st->cnt_slots * sizeof(mr_count_t);
}

static void store_clear_table(mr_store_t *st)
{
    st->nent = 0;
    st->alen = 0;
    if (st->slots) memset(st->slots, 0, st->nslots * sizeof *st->slots);
    if (st->ncnt) memset(st->cnt, 0, st->cnt_slots * sizeof *st->cnt);
    st->ncnt = 0;
}

/* ------------------------------------------------------------------ count table */

enum { CNT_MIN_SLOTS = 1024 };

int mr_store_count_new(mr_store_t *st, uint64_t hash, uint64_t kw0, uint64_t kw1, uint32_t klen,
                       uint64_t v)
{
    if ((st->ncnt + 1) * 2 > st->cnt_slots) {
        if (!st->cnt_max) {
            /* the largest power of two within 1/32 of the budget (see drain_counts) */
            size_t n = CNT_MIN_SLOTS;
            while (n * 2 * sizeof(mr_count_t) <= st->budget / 32)
                n *= 2;
            st->cnt_max = n * sizeof(mr_count_t) <= st->budget / 32 ? n : 1; /* 1: never */
        }
        size_t n = st->cnt_slots ? st->cnt_slots * 2 : CNT_MIN_SLOTS;
        if (n > st->cnt_max) return 0;
        mr_count_t *c = calloc(n, sizeof *c);
        if (!c) return 0; /* the store's own table takes the key */
        for (size_t i = 0; i < st->cnt_slots; i++) {
            const mr_count_t *o = &st->cnt[i];
            if (!o->len) continue;
            size_t j = loom_hash_short(o->k0, o->k1, o->len, LOOM_KEY_HASH_SEED) & (n - 1);
            while (c[j].len)
                j = (j + 1) & (n - 1);
            c[j] = *o;
        }
        free(st->cnt);
        st->cnt = c;
        st->cnt_slots = n;
    }
    size_t mask = st->cnt_slots - 1, j = hash & mask;
    while (st->cnt[j].len)
        j = (j + 1) & mask;
    st->cnt[j] = (mr_count_t){.k0 = kw0, .k1 = kw1, .count = v, .len = klen};
    st->ncnt++;
    return 1;
}

/* Move src's count table into dst's table. dst == src: its adds do not spill
 * (a spill would drain again from inside this loop), so the table may pass
 * the budget by the count table's keys: at most budget / 2048 of them (1/32
 * of the budget in 32-byte slots at half load), about 300 bytes each by
 * maybe_spill's measure, some 15% of the budget. Another dst may spill, which
 * never touches src. Each key leaves the count table before it is added. */
static loom_status_t drain_counts(mr_store_t *dst, mr_store_t *src)
{
    dst->draining = dst == src;
    for (size_t i = 0; i < src->cnt_slots && src->ncnt; i++) {
        mr_count_t c = src->cnt[i];
        if (!c.len) continue;
        src->cnt[i] = (mr_count_t){0};
        src->ncnt--;
        unsigned char key[16];
        memcpy(key, &c.k0, 8);
        memcpy(key + 8, &c.k1, 8);
        uint64_t h = loom_hash_short(c.k0, c.k1, c.len, LOOM_KEY_HASH_SEED);
        loom_status_t st = mr_store_add(dst, mr_part(src->eng, key, c.len, h), h, key, c.len,
                                        &c.count, sizeof c.count);
        if (st != LOOM_OK) {
            dst->draining = 0;
            return st;
        }
    }
    dst->draining = 0;
    return LOOM_OK;
}

void mr_store_discard(mr_store_t *st)
{
    store_clear_table(st);
    for (int i = 0; i < st->nruns; i++)
        loom_run_free(&st->runs[i]);
    st->nruns = 0;
}

void mr_store_free(mr_store_t *st)
{
    mr_store_discard(st);
    free(st->ent);
    free(st->slots);
    free(st->arena);
    free(st->runs);
    free(st->cnt);
    loom_buf_free(&st->scratch);
    memset(st, 0, sizeof *st);
}

static loom_status_t arena_put(mr_store_t *st, const void *data, size_t len, size_t *off)
{
    loom_ctx_t *ctx = st->eng->ctx;
    if (st->acap - st->alen < len) {
        size_t cap = st->acap ? st->acap : 65536;
        while (cap - st->alen < len)
            cap *= 2;
        unsigned char *a = realloc(st->arena, cap);
        if (!a)
            return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory: pair arena of %zu bytes", cap);
        st->arena = a;
        st->acap = cap;
    }
    *off = st->alen;
    if (len) memcpy(st->arena + st->alen, data, len);
    st->alen += len;
    return LOOM_OK;
}

static loom_status_t grow_slots(mr_store_t *st)
{
    size_t n = st->nslots ? st->nslots * 2 : 1024;
    uint64_t *s = calloc(n, sizeof *s);
    if (!s)
        return LOOM_ERROR(st->eng->ctx, LOOM_ERR_NOMEM, "out of memory: hash table of %zu slots",
                          n);
    for (size_t i = 0; i < st->nent; i++) {
        size_t j = st->ent[i].hash & (n - 1);
        while (s[j])
            j = (j + 1) & (n - 1);
        s[j] = st->ent[i].hash >> 32 << 32 | (uint64_t)(i + 1); /* keep the tag */
    }
    free(st->slots);
    st->slots = s;
    st->nslots = n;
    return LOOM_OK;
}

static loom_status_t new_entry(mr_store_t *st, uint32_t part, uint64_t hash, const void *k,
                               size_t klen, const void *v, size_t vlen, size_t *index)
{
    if (st->nent == st->entcap) {
        size_t cap = st->entcap ? st->entcap * 2 : 1024;
        mr_entry_t *e = realloc(st->ent, cap * sizeof *e);
        if (!e)
            return LOOM_ERROR(st->eng->ctx, LOOM_ERR_NOMEM, "out of memory: %zu pair entries", cap);
        st->ent = e;
        st->entcap = cap;
    }
    if (klen > UINT32_MAX || vlen > UINT32_MAX)
        return LOOM_ERROR(st->eng->ctx, LOOM_ERR_USAGE, "a key or value of 4 GiB or more");
    mr_entry_t *e = &st->ent[st->nent];
    e->hash = hash;
    e->part = part;
    e->klen = (uint32_t)klen;
    e->vlen = (uint32_t)vlen;
    /* zero-padded: mr_store_fold_u64 compares it as two words */
    memset(e->ikey, 0, sizeof e->ikey);
    if (klen) memcpy(e->ikey, k, klen < sizeof e->ikey ? klen : sizeof e->ikey);
    LOOM_TRY(arena_put(st, k, klen, &e->koff));
    if (vlen <= sizeof e->ival) {
        e->vcap = 0;
        e->voff = 0;
        if (vlen) memcpy(&e->ival, v, vlen);
    } else {
        e->vcap = (uint32_t)vlen;
        LOOM_TRY(arena_put(st, v, vlen, &e->voff));
    }
    *index = st->nent++;
    return LOOM_OK;
}

loom_status_t mr_combine_into(mr_engine_t *eng, const void *k, size_t klen, loom_buf_t *a,
                              const void *b, size_t blen)
{
    loom_buf_t out = {0};
    loom_mr_emit_t em = {.kind = MR_EMIT_COMBINE, .eng = eng, .value = &out};
    loom_status_t st =
        eng->job->combine(eng->ctx, k, klen, a->data, a->len, b, blen, &em, eng->job->user);
    if (st == LOOM_OK && !em.value_set)
        st = LOOM_ERROR(eng->ctx, LOOM_ERR_USAGE, "%s: the combiner set no value",
                        eng->job->name ? eng->job->name : "job");
    if (st != LOOM_OK) {
        loom_buf_free(&out);
        return st;
    }
    a->len = 0;
    st = loom_buf_append(eng->ctx, a, out.data, out.len);
    loom_buf_free(&out);
    return st;
}

static inline unsigned char *entry_value(mr_store_t *st, mr_entry_t *e)
{
    return e->vcap ? st->arena + e->voff : (unsigned char *)&e->ival;
}

/* Fold value v into entry e with the combiner (the hot path of wordcount:
 * the result usually fits in place). */
static loom_status_t combine_entry(mr_store_t *st, mr_entry_t *e, const void *v, size_t vlen)
{
    mr_engine_t *eng = st->eng;
    loom_mr_emit_t em = {.kind = MR_EMIT_COMBINE, .eng = eng, .value = &st->scratch};
    st->scratch.len = 0;
    LOOM_TRY(eng->job->combine(eng->ctx, st->arena + e->koff, e->klen, entry_value(st, e), e->vlen,
                               v, vlen, &em, eng->job->user));
    if (!em.value_set)
        return LOOM_ERROR(eng->ctx, LOOM_ERR_USAGE, "%s: the combiner set no value",
                          eng->job->name ? eng->job->name : "job");
    size_t n = st->scratch.len;
    if (n > UINT32_MAX) return LOOM_ERROR(eng->ctx, LOOM_ERR_USAGE, "a value of 4 GiB or more");
    if (e->vcap == 0 && n <= sizeof e->ival) {
        if (n) memcpy(&e->ival, st->scratch.data, n);
    } else if (e->vcap && n <= e->vcap) {
        if (n) memcpy(st->arena + e->voff, st->scratch.data, n);
    } else {
        /* The old value's bytes stay in the arena until the next spill. */
        LOOM_TRY(arena_put(st, st->scratch.data, n, &e->voff));
        e->vcap = (uint32_t)n;
    }
    e->vlen = (uint32_t)n;
    return LOOM_OK;
}

/* Spill on the table's used bytes, not capacity: with doubling growth,
 * capacity stays within twice the use. Sorting the pairs (to spill them, or
 * to shuffle them) takes a ref and sort scratch per pair on top, and the count
 * table holds its whole capacity; the store spills before all that would pass
 * its budget. */
static loom_status_t maybe_spill(mr_store_t *st)
{
    size_t used = st->nent * sizeof(mr_entry_t) + st->nent * 2 * sizeof(uint64_t) + st->alen;
    size_t sorting = st->nent * (sizeof(loom_kvref_t) + LOOM_SORT_SCRATCH_PER_REF);
    size_t counts = st->cnt_slots * sizeof(mr_count_t);
    if (used * 2 + sorting + counts <= st->budget || st->nent == 0 || st->draining) return LOOM_OK;
    return mr_store_spill(st);
}

/* Short keys dominate (words): compare them without a libc call. */
static inline int same_key(const unsigned char *a, const unsigned char *b, size_t n)
{
    if (n <= 16) {
        for (size_t i = 0; i < n; i++)
            if (a[i] != b[i]) return 0;
        return 1;
    }
    return memcmp(a, b, n) == 0;
}

loom_status_t mr_store_add(mr_store_t *st, uint32_t part, uint64_t hash, const void *k, size_t klen,
                           const void *v, size_t vlen)
{
    size_t idx;
    if (!st->use_table) {
        LOOM_TRY(new_entry(st, part, hash, k, klen, v, vlen, &idx));
        return maybe_spill(st);
    }
    if ((st->nent + 1) * 2 > st->nslots) LOOM_TRY(grow_slots(st));
    size_t mask = st->nslots - 1, j = hash & mask;
    uint64_t tag = hash >> 32 << 32;
    for (;;) {
        uint64_t s = st->slots[j];
        if (!s) break;
        if ((s & 0xffffffff00000000ULL) == tag) {
            mr_entry_t *e = &st->ent[(s & 0xffffffffu) - 1];
            /* equal keys have equal partitions: the partitioner is a function of the key */
            if (e->klen == klen &&
                (klen <= sizeof e->ikey ? same_key(e->ikey, k, klen)
                                        : same_key(st->arena + e->koff, k, klen))) {
                /* the common combiner, folded in place without a call */
                if (st->sum_u64 && e->vcap == 0 && e->vlen == 8 && vlen == 8) {
                    uint64_t b;
                    memcpy(&b, v, 8);
                    e->ival += b;
                    return LOOM_OK;
                }
                return combine_entry(st, e, v, vlen);
            }
        }
        j = (j + 1) & mask;
    }
    if (st->nent >= UINT32_MAX - 1) LOOM_TRY(mr_store_spill(st));
    LOOM_TRY(new_entry(st, part, hash, k, klen, v, vlen, &idx));
    if (st->nent == 1) {
        /* a spill may just have emptied the table: find the slot again */
        j = hash & mask;
        while (st->slots[j])
            j = (j + 1) & mask;
    }
    st->slots[j] = tag | (uint64_t)(idx + 1);
    return maybe_spill(st);
}

static loom_status_t add_run(mr_store_t *st, loom_run_t run);
static loom_status_t compact_runs(mr_store_t *st);

loom_status_t mr_store_merge(mr_store_t *dst, mr_store_t *src)
{
    /* dst's own count table, if any, stays: readers drain it */
    LOOM_TRY(drain_counts(dst, src));
    for (size_t i = 0; i < src->nent; i++) {
        mr_entry_t *e = &src->ent[i];
        LOOM_TRY(mr_store_add(dst, e->part, e->hash, src->arena + e->koff, e->klen,
                              entry_value(src, e), e->vlen));
    }
    store_clear_table(src);
    for (int i = 0; i < src->nruns; i++) {
        LOOM_TRY(add_run(dst, src->runs[i]));
        /* dst owns it now: a failure on a later run must not free it twice */
        src->runs[i] = (loom_run_t){0};
    }
    src->nruns = 0;
    return compact_runs(dst);
}

loom_status_t mr_store_sorted(mr_store_t *st, loom_kvref_t **refs, size_t *nrefs,
                              size_t *part_start)
{
    loom_ctx_t *ctx = st->eng->ctx;
    int np = st->eng->nparts;
    loom_kvref_t *r;
    size_t *fill;
    LOOM_TRY(drain_counts(st, st));
    LOOM_ALLOC(ctx, r, st->nent, "sorting pairs");
    fill = calloc((size_t)np + 1, sizeof *fill);
    if (!fill) {
        free(r);
        return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory: sorting pairs");
    }
    /* Distribute by partition, then sort the partitions in parallel. */
    for (size_t i = 0; i < st->nent; i++)
        fill[st->ent[i].part + 1]++;
    for (int p = 0; p < np; p++)
        fill[p + 1] += fill[p];
    memcpy(part_start, fill, ((size_t)np + 1) * sizeof *fill);
    for (size_t i = 0; i < st->nent; i++) {
        mr_entry_t *e = &st->ent[i];
        loom_kvref_t *x = &r[fill[e->part]++];
        x->part = e->part;
        x->key = st->arena + e->koff;
        x->klen = e->klen;
        x->val = entry_value(st, e);
        x->vlen = e->vlen;
        x->prefix = loom_sort_prefix(x->key, e->klen);
    }
    free(fill);
    int by_value = st->eng->job->sort_values;
#pragma omp parallel for schedule(dynamic, 1)
    for (int p = 0; p < np; p++)
        loom_sort_kvrefs(r + part_start[p], part_start[p + 1] - part_start[p], by_value);
    *refs = r;
    *nrefs = st->nent;
    return LOOM_OK;
}

static loom_status_t add_run(mr_store_t *st, loom_run_t run)
{
    if (st->nruns == st->runcap) {
        int cap = st->runcap ? st->runcap * 2 : 8;
        loom_run_t *r = realloc(st->runs, (size_t)cap * sizeof *r);
        if (!r) return LOOM_ERROR(st->eng->ctx, LOOM_ERR_NOMEM, "out of memory: run list");
        st->runs = r;
        st->runcap = cap;
    }
    st->runs[st->nruns++] = run;
    return LOOM_OK;
}

/* Merge every run (and the sorted in-memory pairs, if any) into one new run
 * file, folding equal keys with the combiner; used to spill and to keep the
 * number of open files bounded. */
static loom_status_t write_merged_run(mr_store_t *st, const loom_kvref_t *refs,
                                      const size_t *part_start, int with_runs)
{
    mr_engine_t *eng = st->eng;
    loom_ctx_t *ctx = eng->ctx;
    int np = eng->nparts;
    loom_run_writer_t w;
    loom_run_t run = {0};
    loom_buf_t kb = {0}, vb = {0};
    loom_status_t s = loom_run_create(ctx, eng->spill_dir, "run", np, &w);
    if (s != LOOM_OK) return s;
    for (int p = 0; p < np && s == LOOM_OK; p++) {
        loom_run_section(&w, p);
        if (!with_runs) {
            for (size_t i = part_start[p]; i < part_start[p + 1] && s == LOOM_OK; i++)
                s = loom_run_put(&w, refs[i].key, refs[i].klen, refs[i].val, refs[i].vlen);
            continue;
        }
        loom_reader_t *rd = NULL;
        int n = 0;
        loom_merge_t m = {0};
        s = mr_store_part_readers(st, refs, part_start, (uint32_t)p, &rd, &n);
        if (s == LOOM_OK) {
            loom_reader_t **pr = malloc((size_t)(n ? n : 1) * sizeof *pr);
            if (!pr) s = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory: merge");
            for (int i = 0; pr && i < n; i++)
                pr[i] = &rd[i];
            if (s == LOOM_OK) s = loom_merge_init(ctx, &m, pr, n, eng->job->sort_values);
            int have = 1;
            while (s == LOOM_OK) {
                s = mr_merge_next_combined(eng, &m, &kb, &vb, &have);
                if (s != LOOM_OK || !have) break;
                s = loom_run_put(&w, kb.data, kb.len, vb.data, vb.len);
            }
            loom_merge_free(&m);
            free(pr);
        }
        for (int i = 0; i < n; i++)
            loom_reader_close(&rd[i]);
        free(rd);
    }
    uint64_t bytes = w.bytes;
    if (s == LOOM_OK)
        s = loom_run_finish(&w, &run);
    else
        loom_run_abort(&w);
    if (s == LOOM_OK) {
        /* map threads may spill at the same time */
        __atomic_fetch_add(&eng->counts.spill_runs, 1, __ATOMIC_RELAXED);
        __atomic_fetch_add(&eng->counts.spill_bytes, (int64_t)bytes, __ATOMIC_RELAXED);
        if (with_runs) {
            for (int i = 0; i < st->nruns; i++)
                loom_run_free(&st->runs[i]);
            st->nruns = 0;
        }
        s = add_run(st, run);
        if (s != LOOM_OK) loom_run_free(&run);
    }
    loom_buf_free(&kb);
    loom_buf_free(&vb);
    return s;
}

/* More runs than this are merged into one, so a merge never opens too many files. */
#define MR_MAX_RUNS 16

/* Past MR_MAX_RUNS runs, merge them all into one. */
static loom_status_t compact_runs(mr_store_t *st)
{
    if (st->nruns <= MR_MAX_RUNS) return LOOM_OK;
    size_t *ps = calloc((size_t)st->eng->nparts + 1, sizeof *ps);
    if (!ps) return LOOM_ERROR(st->eng->ctx, LOOM_ERR_NOMEM, "out of memory: spill");
    loom_status_t s = write_merged_run(st, NULL, ps, 1);
    free(ps);
    return s;
}

loom_status_t mr_store_spill(mr_store_t *st)
{
    loom_kvref_t *refs = NULL;
    size_t n = 0;
    size_t *ps = malloc(((size_t)st->eng->nparts + 1) * sizeof *ps);
    if (!ps) return LOOM_ERROR(st->eng->ctx, LOOM_ERR_NOMEM, "out of memory: spill");
    loom_status_t s = mr_store_sorted(st, &refs, &n, ps);
    if (s == LOOM_OK) s = write_merged_run(st, refs, ps, 0);
    free(refs);
    if (s == LOOM_OK) store_clear_table(st);
    free(ps);
    if (s == LOOM_OK) s = compact_runs(st);
    return s;
}

loom_status_t mr_store_part_readers(mr_store_t *st, const loom_kvref_t *refs,
                                    const size_t *part_start, uint32_t p, loom_reader_t **rdp,
                                    int *n)
{
    loom_ctx_t *ctx = st->eng->ctx;
    loom_reader_t *rd = calloc((size_t)st->nruns + 1, sizeof *rd);
    if (!rd) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory: readers");
    int k = 0;
    loom_status_t s = LOOM_OK;
    if (refs && part_start[p + 1] > part_start[p]) {
        loom_reader_refs(&rd[k], refs + part_start[p], part_start[p + 1] - part_start[p]);
        s = loom_reader_next(ctx, &rd[k++]);
    }
    for (int i = 0; i < st->nruns && s == LOOM_OK; i++) {
        const loom_run_t *r = &st->runs[i];
        if (r->off[p + 1] == r->off[p]) continue;
        s = loom_reader_file(ctx, &rd[k], r->path, r->off[p], r->off[p + 1] - r->off[p]);
        k++;
        if (s == LOOM_OK) s = loom_reader_next(ctx, &rd[k - 1]);
    }
    if (s != LOOM_OK) {
        for (int i = 0; i < k; i++)
            loom_reader_close(&rd[i]);
        free(rd);
        return s;
    }
    *rdp = rd;
    *n = k;
    return LOOM_OK;
}

/* ------------------------------------------------------------------ merging with the combiner */

loom_status_t mr_merge_next_combined(mr_engine_t *eng, loom_merge_t *m, loom_buf_t *kb,
                                     loom_buf_t *vb, int *have)
{
    loom_ctx_t *ctx = eng->ctx;
    loom_reader_t *t = loom_merge_top(m);
    *have = 0;
    if (!t) return LOOM_OK;
    kb->len = vb->len = 0;
    LOOM_TRY(loom_buf_append(ctx, kb, t->key, t->klen));
    LOOM_TRY(loom_buf_append(ctx, vb, t->val, t->vlen));
    LOOM_TRY(loom_merge_pop(ctx, m));
    if (eng->job->combine) {
        while ((t = loom_merge_top(m)) && t->klen == kb->len &&
               (kb->len == 0 || memcmp(t->key, kb->data, kb->len) == 0)) {
            LOOM_TRY(mr_combine_into(eng, kb->data, kb->len, vb, t->val, t->vlen));
            LOOM_TRY(loom_merge_pop(ctx, m));
        }
    }
    *have = 1;
    return LOOM_OK;
}
