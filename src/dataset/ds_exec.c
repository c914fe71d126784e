/* Running datasets: pipelined narrow steps, shuffle stages over the data plane, the plan walk
 * that runs missing stages in order, lost-partition recovery and the release of shuffle output
 * that no later stage reads. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dataset/ds_internal.h"
#include "kernels/sort.h"

#include <omp.h>

/* ------------------------------------------------------------------ placement */

int ds_slot_walk(const loom_ds_t *d, int p)
{
    while (d->kind >= DS_MAP && d->kind <= DS_UNION) {
        if (d->kind == DS_UNION) {
            if (p >= d->in[0]->nparts) {
                p -= d->in[0]->nparts;
                d = d->in[1];
            } else {
                d = d->in[0];
            }
        } else {
            d = d->in[0];
        }
    }
    return d->place ? d->place[p] : p % d->e->slots;
}

static int is_wide(const loom_ds_t *d)
{
    return d->kind >= DS_REDUCE;
}

/* A materialisation point: its partitions are kept once computed. */
static int is_point(const loom_ds_t *d)
{
    return is_wide(d) || d->persist || d->kind == DS_STORED;
}

/* ------------------------------------------------------------------ sinks */

typedef struct buf_sink {
    ds_sink_t base;
    loom_ctx_t *ctx;
    loom_buf_t *buf;
} buf_sink_t;

static loom_status_t buf_put(ds_sink_t *s, const loom_ds_rec_t *r)
{
    buf_sink_t *b = (buf_sink_t *)s;
    return loom_buf_put_record(b->ctx, b->buf, r->key, r->klen, r->val, r->vlen);
}

loom_status_t ds_buf_each(loom_ctx_t *ctx, const loom_buf_t *b, ds_sink_t *sink)
{
    const unsigned char *p = b->data, *end = b->data + b->len;
    loom_ds_rec_t r;
    int k;
    while ((k = ds_next_record(&p, end, &r)) > 0)
        LOOM_TRY(sink->put(sink, &r));
    if (k < 0) return LOOM_ERROR(ctx, LOOM_ERR_INTERNAL, "a kept partition is corrupt");
    return LOOM_OK;
}

typedef struct step_sink {
    ds_sink_t base;
    loom_ds_t *d;
    ds_sink_t *next;
    loom_buf_t pair; /* key_by's values */
    uint64_t rng;    /* sample's generator */
} step_sink_t;

static loom_status_t map_put(ds_sink_t *s, const loom_ds_rec_t *r)
{
    step_sink_t *m = (step_sink_t *)s;
    loom_ds_out_t out = {.ctx = m->d->e->ctx,
                         .e = m->d->e,
                         .next = m->next,
                         .in = r,
                         .keep_key = m->d->kind == DS_MAP_VALUES,
                         .key_by = m->d->kind == DS_KEY_BY ? &m->pair : NULL};
    return m->d->map(r, &out, m->d->user);
}

/* Bernoulli sampling with a generator seeded per partition (xorshift64*). */
static loom_status_t bernoulli_put(ds_sink_t *s, const loom_ds_rec_t *r)
{
    step_sink_t *m = (step_sink_t *)s;
    m->rng ^= m->rng >> 12;
    m->rng ^= m->rng << 25;
    m->rng ^= m->rng >> 27;
    double u = (double)((m->rng * 0x2545F4914F6CDD1DULL) >> 11) / 9007199254740992.0;
    if (u >= m->d->fraction) return LOOM_OK;
    return m->next->put(m->next, r);
}

static loom_status_t filter_put(ds_sink_t *s, const loom_ds_rec_t *r)
{
    step_sink_t *m = (step_sink_t *)s;
    if (!m->d->pred(r, m->d->user)) return LOOM_OK;
    return m->next->put(m->next, r);
}

/* ------------------------------------------------------------------ whole partitions */

int loom_ds_next(loom_ds_iter_t *it, loom_ds_rec_t *rec)
{
    if (it->bad) return 0;
    int k = ds_next_record(&it->p, it->end, rec);
    if (k < 0) it->bad = 1;
    return k > 0;
}

loom_status_t ds_part_iter(loom_ds_t *d, int p, loom_buf_t *copy, loom_ds_iter_t *it)
{
    const loom_buf_t *b = copy;
    if (d->have && d->have[p] && !(d->ondisk && d->ondisk[p])) {
        b = &d->part[p];
    } else {
        buf_sink_t bs = {{buf_put}, d->e->ctx, copy};
        LOOM_TRY(ds_pull(d, p, &bs.base));
    }
    *it = (loom_ds_iter_t){b->data, b->data + b->len, 0};
    return LOOM_OK;
}

static loom_status_t map_partition(loom_ds_t *d, int p, ds_sink_t *sink)
{
    loom_ctx_t *ctx = d->e->ctx;
    loom_buf_t copy = {0};
    loom_ds_iter_t it;
    loom_status_t st = ds_part_iter(d->in[0], p, &copy, &it);
    loom_ds_out_t out = {.ctx = ctx, .e = d->e, .next = sink};
    if (st == LOOM_OK) st = d->part_fn(p, &it, &out, d->user);
    if (st == LOOM_OK && it.bad) st = LOOM_ERROR(ctx, LOOM_ERR_INTERNAL, "a partition is corrupt");
    loom_buf_free(&copy);
    return st;
}

/* ------------------------------------------------------------------ joins inside a partition */

/* Records of one side with a chained hash index on their keys. */
typedef struct join_index {
    loom_buf_t recs;
    size_t n, cap, mask;
    size_t *off;
    uint64_t *hash;
    size_t *next, *head; /* head: mask + 1 buckets, entries + 1 (0: none) */
} join_index_t;

static void join_index_free(join_index_t *x)
{
    loom_buf_free(&x->recs);
    free(x->off);
    free(x->hash);
    free(x->next);
    free(x->head);
    memset(x, 0, sizeof *x);
}

/* Index the records in x->recs. */
static loom_status_t join_index_build(loom_ctx_t *ctx, join_index_t *x)
{
    size_t n = 0;
    const unsigned char *p = x->recs.data, *end = p + x->recs.len;
    loom_ds_rec_t r;
    while (ds_next_record(&p, end, &r) > 0)
        n++;
    size_t buckets = 16;
    while (buckets < 2 * n)
        buckets *= 2;
    x->n = n;
    x->mask = buckets - 1;
    x->off = malloc((n ? n : 1) * sizeof *x->off);
    x->hash = malloc((n ? n : 1) * sizeof *x->hash);
    x->next = malloc((n ? n : 1) * sizeof *x->next);
    x->head = calloc(buckets, sizeof *x->head);
    if (!x->off || !x->hash || !x->next || !x->head)
        return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory: a join index of %zu records", n);
    p = x->recs.data;
    for (size_t i = 0; i < n; i++) {
        x->off[i] = (size_t)(p - x->recs.data);
        ds_next_record(&p, end, &r);
        uint64_t h = loom_key_hash(r.key, r.klen);
        x->hash[i] = h;
        x->next[i] = x->head[h & x->mask];
        x->head[h & x->mask] = i + 1;
    }
    return LOOM_OK;
}

typedef struct probe_sink {
    ds_sink_t base;
    loom_ctx_t *ctx;
    join_index_t *x;
    int built_is_a; /* the index holds side a: pair(indexed, probe), else pair(probe, indexed) */
    ds_sink_t *next;
    loom_buf_t pair;
} probe_sink_t;

static loom_status_t emit_pair(probe_sink_t *s, const void *key, size_t klen, const void *a,
                               size_t alen, const void *b, size_t blen)
{
    s->pair.len = 0;
    LOOM_TRY(loom_buf_reserve(s->ctx, &s->pair, alen + blen + 10));
    unsigned char *q = loom_put_varint(s->pair.data, alen);
    memcpy(q, a, alen);
    memcpy(q + alen, b, blen);
    loom_ds_rec_t r = {key, klen, s->pair.data, (size_t)(q - s->pair.data) + alen + blen};
    return s->next->put(s->next, &r);
}

static loom_status_t probe_put(ds_sink_t *s, const loom_ds_rec_t *r)
{
    probe_sink_t *ps = (probe_sink_t *)s;
    join_index_t *x = ps->x;
    uint64_t h = loom_key_hash(r->key, r->klen);
    for (size_t i = x->head[h & x->mask]; i; i = x->next[i - 1]) {
        if (x->hash[i - 1] != h) continue;
        const unsigned char *p = x->recs.data + x->off[i - 1];
        loom_ds_rec_t m = {0};
        ds_next_record(&p, x->recs.data + x->recs.len, &m);
        if (m.klen != r->klen || memcmp(m.key, r->key, r->klen) != 0) continue;
        if (ps->built_is_a)
            LOOM_TRY(emit_pair(ps, r->key, r->klen, m.val, m.vlen, r->val, r->vlen));
        else
            LOOM_TRY(emit_pair(ps, r->key, r->klen, r->val, r->vlen, m.val, m.vlen));
    }
    return LOOM_OK;
}

/* Join partition p of co-partitioned inputs: index b's records, stream a's. */
static loom_status_t join_local(loom_ds_t *d, int p, ds_sink_t *sink)
{
    loom_ctx_t *ctx = d->e->ctx;
    join_index_t x = {0};
    buf_sink_t bs = {{buf_put}, ctx, &x.recs};
    loom_status_t st = ds_pull(d->in[1], p, &bs.base);
    if (st == LOOM_OK) st = join_index_build(ctx, &x);
    probe_sink_t ps = {{probe_put}, ctx, &x, 0, sink, {0}};
    if (st == LOOM_OK) st = ds_pull(d->in[0], p, &ps.base);
    loom_buf_free(&ps.pair);
    join_index_free(&x);
    return st;
}

void ds_bindex_free(void *x)
{
    if (!x) return;
    join_index_free(x);
    free(x);
}

/* A broadcast join's partition p: the other input's partition p probes the small side,
 * which every worker holds whole. */
static loom_status_t join_broadcast(loom_ds_t *d, int p, ds_sink_t *sink)
{
    loom_ctx_t *ctx = d->e->ctx;
    if (!d->bindex)
        return LOOM_ERROR(ctx, LOOM_ERR_INTERNAL, "broadcast join #%d: the small side is missing",
                          d->id);
    probe_sink_t ps = {{probe_put}, ctx, d->bindex, 0, sink, {0}};
    loom_status_t st = ds_pull(d->in[0], p, &ps.base);
    loom_buf_free(&ps.pair);
    return st;
}

/* Every worker gets every record of d's small side (MPI_Allgatherv among the
 * workers) and indexes it. Workers only; agrees on failure. */
static loom_status_t broadcast_side(loom_ds_t *d)
{
    loom_ctx_t *ctx = d->e->ctx;
    MPI_Comm wc = loom_worker_comm(ctx);
    loom_ds_t *b = d->in[1];
    loom_buf_t mine = {0};
    buf_sink_t bs = {{buf_put}, ctx, &mine};
    loom_status_t st = LOOM_OK;
    for (int p = 0; p < b->nparts && st == LOOM_OK; p++)
        if (ds_mine(b, p)) st = ds_pull(b, p, &bs.base);
    int W = d->e->workers, len = (int)mine.len;
    if (st == LOOM_OK && mine.len > INT32_MAX)
        st = LOOM_ERROR(ctx, LOOM_ERR_USAGE, "broadcast join: the small side is not small");
    int *lens = calloc((size_t)W, sizeof *lens), *displ = calloc((size_t)W, sizeof *displ);
    join_index_t *x = calloc(1, sizeof *x);
    if (st == LOOM_OK && (!lens || !displ || !x))
        st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    st = loom_agree(ctx, wc, st);
    if (st == LOOM_OK)
        LOOM_MPI_KEEP(ctx, st, MPI_Allgather(&len, 1, MPI_INT, lens, 1, MPI_INT, wc));
    uint64_t total = 0;
    for (int w = 0; st == LOOM_OK && w < W; w++) {
        displ[w] = (int)total;
        total += (uint64_t)lens[w];
    }
    if (st == LOOM_OK && total > INT32_MAX)
        st = LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                        "broadcast join: the small side has %llu bytes, more than one "
                        "collective moves (2 GiB); use loom_ds_join",
                        (unsigned long long)total);
    if (st == LOOM_OK) st = loom_buf_reserve(ctx, &x->recs, (size_t)total + 1);
    st = loom_agree(ctx, wc, st);
    if (st == LOOM_OK)
        LOOM_MPI_KEEP(
            ctx, st,
            MPI_Allgatherv(mine.data, len, MPI_BYTE, x->recs.data, lens, displ, MPI_BYTE, wc));
    if (st == LOOM_OK) {
        x->recs.len = (size_t)total;
        st = join_index_build(ctx, x);
    }
    st = loom_agree(ctx, wc, st);
    if (st == LOOM_OK) {
        ds_bindex_free(d->bindex);
        d->bindex = x;
        x = NULL;
    }
    ds_bindex_free(x);
    free(lens);
    free(displ);
    loom_buf_free(&mine);
    return st;
}

/* ------------------------------------------------------------------ pulling a partition */

loom_status_t ds_pull(loom_ds_t *d, int p, ds_sink_t *sink)
{
    loom_ctx_t *ctx = d->e->ctx;
    if (d->have && d->have[p])
        return d->ondisk[p] ? ds_disk_pull(d, p, sink) : ds_buf_each(ctx, &d->part[p], sink);
    switch (d->kind) {
    case DS_TEXT:
        return ds_text_pull(d, p, sink);
    case DS_CKPT:
        LOOM_TRY(ds_ckpt_load(d, p));
        return ds_buf_each(ctx, &d->part[p], sink);
    case DS_H5:
        return ds_h5_pull(d, p, sink);
    case DS_RANGE: {
        uint64_t lo, hi;
        ds_part_range(d->range_n, p, d->nparts, &lo, &hi);
        for (uint64_t i = lo; i < hi; i++) {
            loom_ds_rec_t r = {&i, 8, "", 0};
            LOOM_TRY(sink->put(sink, &r));
        }
        return LOOM_OK;
    }
    case DS_MAP:
    case DS_MAP_VALUES:
    case DS_KEY_BY: {
        step_sink_t s = {{map_put}, d, sink, {0}, 0};
        loom_status_t st = ds_pull(d->in[0], p, &s.base);
        loom_buf_free(&s.pair);
        return st;
    }
    case DS_MAP_PART:
        return map_partition(d, p, sink);
    case DS_SAMPLE: {
        step_sink_t s = {{bernoulli_put}, d, sink, {0}, 0};
        s.rng = loom_hash_mix64(d->seed ^ (0x9e3779b97f4a7c15ULL * (uint64_t)(p + 1))) | 1;
        return ds_pull(d->in[0], p, &s.base);
    }
    case DS_FILTER: {
        step_sink_t s = {{filter_put}, d, sink, {0}, 0};
        return ds_pull(d->in[0], p, &s.base);
    }
    case DS_UNION:
        if (p < d->in[0]->nparts) return ds_pull(d->in[0], p, sink);
        return ds_pull(d->in[1], p - d->in[0]->nparts, sink);
    case DS_JOIN_LOCAL:
        return join_local(d, p, sink);
    case DS_BJOIN:
        return join_broadcast(d, p, sink);
    case DS_STORED:
        return LOOM_ERROR(ctx, LOOM_ERR_FAULT,
                          "partition %d of dataset #%d (%s) is lost and its source cannot be "
                          "read again",
                          p, d->id, d->name);
    default:
        return LOOM_ERROR(ctx, LOOM_ERR_INTERNAL, "partition %d of dataset #%d (%s) is not kept", p,
                          d->id, d->name);
    }
}

/* ------------------------------------------------------------------ shuffle stages */

typedef struct stage {
    loom_ds_engine_t *e;
    loom_ds_t *d;
    const unsigned char *only; /* recompute only these partitions (NULL: all) */
    loom_buf_t *out;           /* per destination worker (the lanes' buffers, joined) */
    size_t *sent;              /* bytes of out[w] already packed */
    loom_buf_t *recv;          /* per partition: what the shuffle brought it */
    struct lane *lanes;        /* one per thread routing records */
    int nlanes;
    /* Bounded memory: a round routes input partitions until the lanes hold `limit` bytes,
     * then exchanges them; received records past `limit` go to per-partition spill files,
     * read back one partition at a time when the partition is finished. */
    size_t limit;
    size_t recv_bytes;      /* received records held in recv */
    unsigned char *spilled; /* [q]: the first part of recv[q] is in its spill file */
    int64_t id;             /* the stage's number on this rank: names its spill files */
    int *item, nitems;      /* the input partitions to route: (input, partition) pairs */
    unsigned char *done;    /* [j]: item j routed */
} stage_t;

/* What one thread routes into: buffers per destination worker and a map-side table. */
typedef struct lane {
    loom_buf_t *out;
    ds_table_t combine; /* map-side combining (reduce_by_key, aggregate_by_key) */
    int side;           /* which input (joins, cogroup) */
    uint64_t rr;        /* repartition: the next partition, round robin */
} lane_t;

typedef struct route_sink {
    ds_sink_t base;
    stage_t *s;
    lane_t *l;
} route_sink_t;

static int dest_part(const loom_ds_t *d, uint64_t h, const loom_ds_rec_t *r)
{
    if (d->partitioning == DS_PART_RANGE) return (int)loom_ranges_part(&d->ranges, r->key, r->klen);
    return (int)loom_part_of_hash(h, (uint32_t)d->nparts);
}

/* Append a record, with a one-byte side tag before the value for a join. */
static loom_status_t put_tagged(loom_ctx_t *ctx, loom_buf_t *b, const loom_ds_rec_t *r, int side)
{
    if (side < 0) return loom_buf_put_record(ctx, b, r->key, r->klen, r->val, r->vlen);
    LOOM_TRY(loom_buf_reserve(ctx, b, r->klen + r->vlen + 1 + LOOM_RECORD_OVERHEAD));
    unsigned char *q = b->data + b->len;
    q = loom_put_varint(q, r->klen);
    q = loom_put_varint(q, r->vlen + 1);
    memcpy(q, r->key, r->klen);
    q += r->klen;
    *q++ = (unsigned char)side;
    memcpy(q, r->val, r->vlen);
    b->len = (size_t)(q + r->vlen - b->data);
    return LOOM_OK;
}

static void recv_path(const stage_t *s, int q, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/s%lld-q%05d", s->e->spill.path, (long long)s->id, q);
}

/* Received records past the limit: every partition's buffer appended to its spill file. */
static loom_status_t recv_spill(stage_t *s)
{
    loom_ctx_t *ctx = s->e->ctx;
    LOOM_TRY(ds_spill_ready(s->e));
    char path[4200];
    for (int q = 0; q < s->d->nparts; q++) {
        if (!s->recv[q].len) continue;
        recv_path(s, q, path, sizeof path);
        s->spilled[q] = 1; /* before writing: a partial file is removed with the stage */
        LOOM_TRY(ds_file_append(ctx, path, &s->recv[q]));
        s->e->shuffle_spilled += (int64_t)s->recv[q].len;
        loom_buf_free(&s->recv[q]);
    }
    s->recv_bytes = 0;
    return LOOM_OK;
}

/* A record for partition q, which this rank owns, with a one-byte side tag before the value
 * for a join or cogroup (side >= 0). Bucketed only: the tables, sorts and joins run per
 * partition afterwards, on threads. Called by one thread at a time. */
static loom_status_t receive(stage_t *s, int q, const loom_ds_rec_t *r, int side)
{
    s->e->shuffle_records++;
    size_t before = s->recv[q].len;
    LOOM_TRY(put_tagged(s->e->ctx, &s->recv[q], r, side));
    s->recv_bytes += s->recv[q].len - before;
    return s->recv_bytes > s->limit ? recv_spill(s) : LOOM_OK;
}

/* Partition q's received records in recv[q] again: its spill file, then what stayed. */
static loom_status_t recv_unspill(stage_t *s, int q)
{
    if (!s->spilled[q]) return LOOM_OK;
    loom_ctx_t *ctx = s->e->ctx;
    char path[4200];
    recv_path(s, q, path, sizeof path);
    loom_buf_t all = {0};
    loom_status_t st = ds_file_read(ctx, path, &all);
    if (st == LOOM_OK && s->recv[q].len)
        st = loom_buf_append(ctx, &all, s->recv[q].data, s->recv[q].len);
    unlink(path);
    s->spilled[q] = 0;
    loom_buf_free(&s->recv[q]);
    if (st != LOOM_OK) {
        loom_buf_free(&all);
        return st;
    }
    s->recv[q] = all;
    return LOOM_OK;
}

/* A repartitioned record carries its partition before its value (4 bytes). */
static loom_status_t put_routed(loom_ctx_t *ctx, loom_buf_t *b, const loom_ds_rec_t *r, uint32_t q)
{
    LOOM_TRY(loom_buf_reserve(ctx, b, r->klen + r->vlen + 4 + LOOM_RECORD_OVERHEAD));
    unsigned char *p = loom_put_varint(b->data + b->len, r->klen);
    p = loom_put_varint(p, r->vlen + 4);
    memcpy(p, r->key, r->klen);
    p += r->klen;
    memcpy(p, &q, 4);
    memcpy(p + 4, r->val, r->vlen);
    b->len = (size_t)(p + 4 + r->vlen - b->data);
    return LOOM_OK;
}

static int two_sided(const loom_ds_t *d)
{
    return d->kind == DS_JOIN || d->kind == DS_COGROUP;
}

static loom_status_t route_put(ds_sink_t *sk, const loom_ds_rec_t *r)
{
    stage_t *s = ((route_sink_t *)sk)->s;
    lane_t *l = ((route_sink_t *)sk)->l;
    loom_ds_t *d = s->d;
    loom_ctx_t *ctx = s->e->ctx;
    uint64_t h = loom_key_hash(r->key, r->klen);
    /* with one lane, records for partitions owned here skip the exchange; with
     * several, they go through it too (the receiving side is not shared) */
    int here = s->nlanes == 1 ? s->e->slot : -1;
    if (d->kind == DS_REDUCE || d->kind == DS_AGG) here = -1; /* combined first, even if local */
    if (d->kind == DS_REPART) {
        int q = (int)(l->rr++ % (uint64_t)d->nparts);
        if (s->only && !s->only[q]) return LOOM_OK;
        if (ds_owner(d, q) == here) return receive(s, q, r, -1);
        return put_routed(ctx, &l->out[ds_owner(d, q)], r, (uint32_t)q);
    }
    int q = dest_part(d, h, r);
    if (s->only && !s->only[q]) return LOOM_OK;
    if (d->kind == DS_AGG) /* values become accumulators first, wherever they go */
        return ds_table_seq(ctx, &l->combine, h, r->key, r->klen, r->val, r->vlen, d->seq, d->user,
                            &d->zero);
    if (ds_owner(d, q) == here) /* stays here: straight to its partition */
        return receive(s, q, r, two_sided(d) ? l->side : -1);
    if (d->kind == DS_REDUCE)
        return ds_table_add(ctx, &l->combine, h, r->key, r->klen, r->val, r->vlen, d->comb,
                            d->user);
    return put_tagged(ctx, &l->out[ds_owner(d, q)], r, two_sided(d) ? l->side : -1);
}

/* After map-side combining: the combined records to their owners. */
typedef struct flush_sink {
    ds_sink_t base;
    stage_t *s;
    lane_t *l;
} flush_sink_t;

static loom_status_t flush_put(ds_sink_t *sk, const loom_ds_rec_t *r)
{
    stage_t *s = ((flush_sink_t *)sk)->s;
    int q = dest_part(s->d, loom_key_hash(r->key, r->klen), r);
    return loom_buf_put_record(s->e->ctx, &((flush_sink_t *)sk)->l->out[ds_owner(s->d, q)], r->key,
                               r->klen, r->val, r->vlen);
}

static loom_status_t stage_pack(loom_exchange_t *x, void *user, int *more)
{
    stage_t *s = user;
    int W = loom_exchange_size(x);
    *more = 0;
    for (int w = 0; w < W; w++) {
        loom_buf_t *b = &s->out[w];
        size_t room = loom_exchange_room(x), at = s->sent[w];
        const unsigned char *p = b->data + at, *end = b->data + b->len;
        size_t take = 0;
        loom_ds_rec_t r;
        const unsigned char *q = p;
        while (q < end) {
            const unsigned char *next = q;
            if (ds_next_record(&next, end, &r) <= 0) break;
            size_t len = (size_t)(next - q);
            if (take + len > room && take > 0) break;
            take += len;
            q = next;
        }
        if (take) LOOM_TRY(loom_exchange_put(x, w, p, take));
        s->sent[w] = at + take;
        if (s->sent[w] < b->len) *more = 1;
    }
    return LOOM_OK;
}

static loom_status_t stage_unpack(loom_exchange_t *x, void *user, int src,
                                  const unsigned char *data, size_t bytes)
{
    (void)x;
    (void)src;
    stage_t *s = user;
    loom_ds_t *d = s->d;
    const unsigned char *p = data, *end = data + bytes;
    loom_ds_rec_t r;
    int k;
    while ((k = ds_next_record(&p, end, &r)) > 0) {
        if (d->kind == DS_REPART) {
            uint32_t q;
            if (r.vlen < 4 || (memcpy(&q, r.val, 4), q >= (uint32_t)d->nparts)) {
                k = -1;
                break;
            }
            r.val = (const unsigned char *)r.val + 4;
            r.vlen -= 4;
            LOOM_TRY(receive(s, (int)q, &r, -1));
            continue;
        }
        LOOM_TRY(receive(s, dest_part(d, loom_key_hash(r.key, r.klen), &r), &r, -1));
    }
    if (k < 0) return LOOM_ERROR(s->e->ctx, LOOM_ERR_INTERNAL, "a shuffled segment is corrupt");
    return LOOM_OK;
}

/* Append varint(len) bytes to a list. */
static loom_status_t list_add(loom_ctx_t *ctx, loom_buf_t *l, const void *v, size_t len)
{
    LOOM_TRY(loom_buf_reserve(ctx, l, len + 10));
    unsigned char *q = loom_put_varint(l->data + l->len, len);
    memcpy(q, v, len);
    l->len = (size_t)(q - l->data) + len;
    return LOOM_OK;
}

/* Sorted, side-tagged references: one record per key, pair(a's list, b's list). */
static loom_status_t emit_cogroups(loom_ctx_t *ctx, const loom_kvref_t *refs, size_t n,
                                   loom_buf_t *dst)
{
    loom_buf_t side[2] = {{0}, {0}}, val = {0};
    loom_status_t st = LOOM_OK;
    for (size_t i = 0; i < n && st == LOOM_OK;) {
        size_t j = i;
        side[0].len = side[1].len = 0;
        while (j < n && st == LOOM_OK &&
               loom_sort_cmp_bytes(refs[j].key, refs[j].klen, refs[i].key, refs[i].klen) == 0) {
            st = list_add(ctx, &side[refs[j].val[0] ? 1 : 0], refs[j].val + 1, refs[j].vlen - 1);
            j++;
        }
        val.len = 0;
        if (st == LOOM_OK) st = loom_buf_reserve(ctx, &val, side[0].len + side[1].len + 10);
        if (st == LOOM_OK) {
            unsigned char *q = loom_put_varint(val.data, side[0].len);
            if (side[0].len) memcpy(q, side[0].data, side[0].len);
            if (side[1].len) memcpy(q + side[0].len, side[1].data, side[1].len);
            val.len = (size_t)(q - val.data) + side[0].len + side[1].len;
            st = loom_buf_put_record(ctx, dst, refs[i].key, refs[i].klen, val.data, val.len);
        }
        i = j;
    }
    loom_buf_free(&side[0]);
    loom_buf_free(&side[1]);
    loom_buf_free(&val);
    return st;
}

loom_status_t ds_sorted_refs(loom_ctx_t *ctx, const loom_buf_t *b, int by_value,
                             loom_kvref_t **refs, size_t *n)
{
    size_t count = 0;
    const unsigned char *p = b->data, *end = b->data + b->len;
    loom_ds_rec_t r;
    while (ds_next_record(&p, end, &r) > 0)
        count++;
    *refs = malloc((count ? count : 1) * sizeof **refs);
    *n = count;
    if (!*refs) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory: sorting %zu records", count);
    p = b->data;
    for (size_t i = 0; i < count; i++) {
        ds_next_record(&p, end, &r);
        (*refs)[i] =
            (loom_kvref_t){loom_sort_prefix(r.key, r.klen), r.key, r.val, r.klen, r.vlen, 0};
    }
    loom_sort_kvrefs(*refs, count, by_value);
    return LOOM_OK;
}

/* Group partition q's records by key: sort references, then one record per key. */
static loom_status_t finish_group(stage_t *s, int q, loom_buf_t *dst)
{
    loom_ctx_t *ctx = s->e->ctx;
    loom_kvref_t *refs;
    size_t n;
    LOOM_TRY(ds_sorted_refs(ctx, &s->recv[q], 0, &refs, &n));
    loom_status_t st = LOOM_OK;
    if (s->d->kind == DS_COGROUP) {
        st = emit_cogroups(ctx, refs, n, dst);
    } else if (s->d->kind == DS_SORT) {
        for (size_t i = 0; i < n && st == LOOM_OK; i++)
            st =
                loom_buf_put_record(ctx, dst, refs[i].key, refs[i].klen, refs[i].val, refs[i].vlen);
    } else {
        loom_buf_t vals = {0};
        for (size_t i = 0; i < n && st == LOOM_OK;) {
            size_t j = i;
            vals.len = 0;
            while (j < n && st == LOOM_OK &&
                   loom_sort_cmp_bytes(refs[j].key, refs[j].klen, refs[i].key, refs[i].klen) == 0) {
                st = loom_buf_reserve(ctx, &vals, refs[j].vlen + 10);
                if (st == LOOM_OK) {
                    unsigned char *v = loom_put_varint(vals.data + vals.len, refs[j].vlen);
                    memcpy(v, refs[j].val, refs[j].vlen);
                    vals.len = (size_t)(v - vals.data) + refs[j].vlen;
                }
                j++;
            }
            if (st == LOOM_OK)
                st = loom_buf_put_record(ctx, dst, refs[i].key, refs[i].klen, vals.data, vals.len);
            i = j;
        }
        loom_buf_free(&vals);
    }
    free(refs);
    return st;
}

/* Join partition q of a shuffled join: records carry their side in the value's first byte. */
static loom_status_t finish_join(stage_t *s, int q, loom_buf_t *dst)
{
    loom_ctx_t *ctx = s->e->ctx;
    join_index_t x = {0};
    loom_buf_t a = {0};
    loom_status_t st = LOOM_OK;
    const unsigned char *p = s->recv[q].data, *end = p + s->recv[q].len;
    loom_ds_rec_t r;
    while (st == LOOM_OK && ds_next_record(&p, end, &r) > 0) {
        const unsigned char *v = r.val;
        st = loom_buf_put_record(ctx, v[0] ? &x.recs : &a, r.key, r.klen, v + 1, r.vlen - 1);
    }
    if (st == LOOM_OK) st = join_index_build(ctx, &x);
    buf_sink_t out = {{buf_put}, ctx, dst};
    probe_sink_t ps = {{probe_put}, ctx, &x, 0, &out.base, {0}};
    if (st == LOOM_OK) st = ds_buf_each(ctx, &a, &ps.base);
    loom_buf_free(&ps.pair);
    loom_buf_free(&a);
    join_index_free(&x);
    return st;
}

/* The sampled ranges of a sort: keys of every record this worker holds of
 * the input (at most 64 per partition), cut on worker 0, broadcast. */
typedef struct sample_sink {
    ds_sink_t base;
    loom_ctx_t *ctx;
    loom_buf_t *buf;
    uint64_t seen;
    uint64_t keep;
} sample_sink_t;

static loom_status_t sample_put(ds_sink_t *sk, const loom_ds_rec_t *r)
{
    sample_sink_t *s = (sample_sink_t *)sk;
    s->seen++;
    /* a deterministic thinning: every record until `keep`, then one in seen/keep */
    if (s->seen > s->keep && loom_hash_mix64(s->seen) % (s->seen / s->keep + 1) != 0)
        return LOOM_OK;
    return loom_buf_put_record(s->ctx, s->buf, r->key, r->klen, "", 0);
}

static loom_status_t sort_ranges(stage_t *s)
{
    loom_ds_t *d = s->d, *in = d->in[0];
    loom_ctx_t *ctx = s->e->ctx;
    MPI_Comm wc = loom_worker_comm(ctx);
    loom_buf_t mine = {0}, all = {0};
    sample_sink_t ss = {{sample_put}, ctx, &mine, 0, 64 * (uint64_t)d->nparts};
    loom_status_t st = LOOM_OK;
    for (int p = 0; p < in->nparts && st == LOOM_OK; p++)
        if (ds_mine(in, p)) st = ds_pull(in, p, &ss.base);
    st = loom_agree(ctx, wc, st);
    int W = s->e->workers, len = (int)mine.len;
    int *lens = calloc((size_t)W, sizeof *lens), *displ = calloc((size_t)W, sizeof *displ);
    if (st == LOOM_OK && mine.len > INT32_MAX / 2)
        st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "sort: sample too large");
    if (st == LOOM_OK && (!lens || !displ))
        st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory: sort sample");
    st = loom_agree(ctx, wc, st);
    if (st == LOOM_OK)
        LOOM_MPI_KEEP(ctx, st, MPI_Gather(&len, 1, MPI_INT, lens, 1, MPI_INT, 0, wc));
    if (st == LOOM_OK && s->e->slot == 0) {
        size_t total = 0;
        for (int w = 0; w < W; w++) {
            displ[w] = (int)total;
            total += (size_t)lens[w];
        }
        if (total > INT32_MAX)
            st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "sort: the key sample (%zu bytes) is too large",
                            total);
        if (st == LOOM_OK) st = loom_buf_reserve(ctx, &all, total + 1);
        if (st == LOOM_OK) all.len = total;
    }
    st = loom_agree(ctx, wc, st);
    if (st == LOOM_OK)
        LOOM_MPI_KEEP(
            ctx, st, MPI_Gatherv(mine.data, len, MPI_BYTE, all.data, lens, displ, MPI_BYTE, 0, wc));
    if (st == LOOM_OK && s->e->slot == 0)
        st = loom_ranges_from_sample(ctx, &all, (uint32_t)d->nparts, &d->ranges);
    st = loom_agree(ctx, wc, st);
    if (st == LOOM_OK) st = loom_ranges_bcast(ctx, wc, 0, &d->ranges);
    if (st == LOOM_OK) d->ranged = 1;
    free(lens);
    free(displ);
    loom_buf_free(&mine);
    loom_buf_free(&all);
    return st;
}

static void stage_free(stage_t *s)
{
    for (int w = 0; s->out && w < s->e->workers; w++)
        loom_buf_free(&s->out[w]);
    free(s->out);
    free(s->sent);
    for (int t = 0; s->lanes && t < s->nlanes; t++) {
        for (int w = 0; s->lanes[t].out && w < s->e->workers; w++)
            loom_buf_free(&s->lanes[t].out[w]);
        free(s->lanes[t].out);
        ds_table_free(&s->lanes[t].combine);
    }
    free(s->lanes);
    for (int q = 0; s->recv && q < s->d->nparts; q++) {
        if (s->spilled && s->spilled[q]) { /* a stage that failed */
            char path[4200];
            recv_path(s, q, path, sizeof path);
            unlink(path);
        }
        loom_buf_free(&s->recv[q]);
    }
    free(s->recv);
    free(s->spilled);
    free(s->item);
    free(s->done);
}

/* Partition q of the stage's output from what the shuffle brought it. Thread-safe across q. */
static loom_status_t finish_partition(stage_t *s, int q)
{
    loom_ds_t *d = s->d;
    loom_ctx_t *ctx = s->e->ctx;
    loom_buf_t *dst = &d->part[q];
    dst->len = 0;
    buf_sink_t bs = {{buf_put}, ctx, dst};
    LOOM_TRY(recv_unspill(s, q));
    loom_status_t st = LOOM_OK;
    const unsigned char *p = s->recv[q].data, *end = p + s->recv[q].len;
    loom_ds_rec_t r;
    switch (d->kind) {
    case DS_REDUCE:
    case DS_AGG: {
        ds_table_t t = {0};
        while (st == LOOM_OK && ds_next_record(&p, end, &r) > 0)
            st = ds_table_add(ctx, &t, loom_key_hash(r.key, r.klen), r.key, r.klen, r.val, r.vlen,
                              d->comb, d->user);
        if (st == LOOM_OK) st = ds_table_each(ctx, &t, &bs.base);
        ds_table_free(&t);
        break;
    }
    case DS_DISTINCT: { /* the whole record is the table's key */
        ds_table_t t = {0};
        loom_buf_t whole = {0};
        while (st == LOOM_OK && ds_next_record(&p, end, &r) > 0) {
            whole.len = 0;
            int added;
            st = loom_buf_put_record(ctx, &whole, r.key, r.klen, r.val, r.vlen);
            if (st == LOOM_OK)
                st = ds_table_insert(ctx, &t, loom_key_hash(whole.data, whole.len), whole.data,
                                     whole.len, "", 0, &added);
            if (st == LOOM_OK && added) st = loom_buf_append(ctx, dst, whole.data, whole.len);
        }
        loom_buf_free(&whole);
        ds_table_free(&t);
        break;
    }
    case DS_PARTITION:
    case DS_REPART:
        loom_buf_free(dst);
        *dst = s->recv[q];
        memset(&s->recv[q], 0, sizeof s->recv[q]);
        break;
    case DS_GROUP:
    case DS_SORT:
    case DS_COGROUP:
        st = finish_group(s, q, dst);
        break;
    case DS_JOIN:
        st = finish_join(s, q, dst);
        break;
    default:
        st = LOOM_ERROR(ctx, LOOM_ERR_INTERNAL, "dataset #%d is not a shuffle", d->id);
    }
    loom_buf_free(&s->recv[q]);
    if (st == LOOM_OK) {
        d->have[q] = 1;
        st = ds_keep_store(d, q);
    }
    return st;
}

/* The input partitions this worker owns, as (input, partition) items, and a lane per
 * thread (at most one per item). */
static loom_status_t route_setup(stage_t *s)
{
    loom_ds_t *d = s->d;
    loom_ctx_t *ctx = s->e->ctx;
    int W = s->e->workers, n = 0;
    for (int i = 0; i < d->nin; i++)
        for (int p = 0; p < d->in[i]->nparts; p++)
            n += ds_mine(d->in[i], p);
    s->item = malloc((size_t)(n ? n : 1) * 2 * sizeof *s->item);
    s->done = calloc((size_t)(n ? n : 1), 1);
    if (!s->item || !s->done) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory: a stage");
    for (int i = 0; i < d->nin; i++)
        for (int p = 0; p < d->in[i]->nparts; p++)
            if (ds_mine(d->in[i], p)) {
                s->item[2 * s->nitems] = i;
                s->item[2 * s->nitems + 1] = p;
                s->nitems++;
            }
    int T = loom_threads(ctx);
    s->nlanes = T < 1 ? 1 : T > n ? (n ? n : 1) : T;
    s->lanes = calloc((size_t)s->nlanes, sizeof *s->lanes);
    if (!s->lanes) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    for (int t = 0; t < s->nlanes; t++)
        if (!(s->lanes[t].out = calloc((size_t)W, sizeof *s->lanes[t].out)))
            return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    return LOOM_OK;
}

/* Bytes a lane holds: its buffers and its map-side table. */
static size_t lane_bytes(const lane_t *l, int W)
{
    size_t b = l->combine.arena.len + l->combine.cap * sizeof *l->combine.slot;
    for (int w = 0; w < W; w++)
        b += l->out[w].len;
    return b;
}

/* One round of the stage's narrow steps, pipelined into the routing sinks: input
 * partitions not yet routed, spread over the worker's threads (a lane each), until the
 * lanes hold the stage's limit (a partition is routed whole, so a round takes at least
 * one); then each lane's map-side table flushed and the lanes' buffers joined per
 * destination. User functions may run on several threads at once. */
static loom_status_t route_round(stage_t *s)
{
    loom_ds_t *d = s->d;
    loom_ctx_t *ctx = s->e->ctx;
    int W = s->e->workers, n = s->nitems, failed = 0;
    size_t held = 0;
#pragma omp parallel for num_threads(s->nlanes) schedule(dynamic, 1) if (s->nlanes > 1)
    for (int j = 0; j < n; j++) {
        int stop;
        size_t now;
#pragma omp atomic read
        stop = failed;
#pragma omp atomic read
        now = held;
        if (stop || s->done[j] || now >= s->limit) continue; /* past the limit: next round */
        int t = s->nlanes > 1 ? omp_get_thread_num() : 0;
        lane_t *l = &s->lanes[t];
        loom_ds_t *in = d->in[s->item[2 * j]];
        int p = s->item[2 * j + 1];
        l->side = s->item[2 * j];
        l->rr = loom_hash_mix64((uint64_t)p + 1) % (uint64_t)d->nparts; /* repartition */
        route_sink_t rs = {{route_put}, s, l};
        size_t before = lane_bytes(l, W);
        s->done[j] = 1;
        if (ds_pull(in, p, &rs.base) != LOOM_OK) { /* the message is in ctx */
#pragma omp atomic write
            failed = 1;
        }
        size_t grew = lane_bytes(l, W) - before;
#pragma omp atomic update
        held += grew;
    }
    if (failed) return loom_error_code(ctx) != LOOM_OK ? loom_error_code(ctx) : LOOM_ERR_INTERNAL;
    if (d->kind == DS_REDUCE || d->kind == DS_AGG) {
#pragma omp parallel for num_threads(s->nlanes) schedule(static, 1) if (s->nlanes > 1)
        for (int t = 0; t < s->nlanes; t++) {
            flush_sink_t fs = {{flush_put}, s, &s->lanes[t]};
            if (ds_table_each(ctx, &s->lanes[t].combine, &fs.base) != LOOM_OK) {
#pragma omp atomic write
                failed = 1;
            }
            ds_table_free(&s->lanes[t].combine);
        }
        if (failed) return loom_error_code(ctx);
    }
    /* the lanes' buffers, joined per destination */
    for (int w = 0; w < W; w++) {
        if (s->nlanes == 1) {
            s->out[w] = s->lanes[0].out[w];
            memset(&s->lanes[0].out[w], 0, sizeof s->out[w]);
            continue;
        }
        for (int t = 0; t < s->nlanes; t++) {
            loom_buf_t *b = &s->lanes[t].out[w];
            if (b->len) LOOM_TRY(loom_buf_append(ctx, &s->out[w], b->data, b->len));
            loom_buf_free(b);
        }
    }
    return LOOM_OK;
}

/* Run the shuffle stage that makes d (only the partitions in `only`, when
 * given). Workers only; collective over them; agrees on failure. */
static loom_status_t run_stage(loom_ds_t *d, const unsigned char *only)
{
    loom_ds_engine_t *e = d->e;
    loom_ctx_t *ctx = e->ctx;
    MPI_Comm wc = loom_worker_comm(ctx);
    int W = e->workers;
    stage_t s = {.e = e, .d = d, .only = only, .id = e->stages_begun};
    s.limit = e->cfg.memory / 4 > 4096 ? e->cfg.memory / 4 : 4096;
    loom_status_t st = ds_keep_alloc(d);
    s.out = calloc((size_t)W, sizeof *s.out);
    s.sent = calloc((size_t)W, sizeof *s.sent);
    s.recv = calloc((size_t)d->nparts, sizeof *s.recv);
    s.spilled = calloc((size_t)d->nparts, 1);
    if (st == LOOM_OK && (!s.out || !s.sent || !s.recv || !s.spilled))
        st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory: a stage of %d partitions", d->nparts);
    st = loom_agree(ctx, wc, st);
    loom_fault_point(ctx, &e->kill, LOOM_PHASE_STAGE, e->stages_begun++); /* a real death */
    if (st == LOOM_OK && d->kind == DS_SORT && !d->ranged) st = sort_ranges(&s);
    if (st != LOOM_OK) {
        stage_free(&s);
        return st;
    }
    loom_timer_start(ctx, "stages");
    st = route_setup(&s);
    st = loom_agree(ctx, wc, st);
    /* rounds until every worker has routed all its input partitions */
    for (int more = st == LOOM_OK; more;) {
        st = route_round(&s);
        st = loom_agree(ctx, wc, st);
        loom_exchange_t *x = NULL;
        /* a quarter each: routed records, received records, the exchange's room, kept output */
        loom_exchange_opts_t xo = {
            .among = LOOM_AMONG_WORKERS, .elem = 1, .budget = s.limit, .timer = "shuffle"};
        if (st == LOOM_OK) st = loom_exchange_create(ctx, &xo, &x);
        st = loom_agree(ctx, wc, st);
        if (st == LOOM_OK) st = loom_exchange_run(x, stage_pack, stage_unpack, &s);
        if (x) e->shuffle_bytes += (int64_t)loom_exchange_bytes_sent(x);
        loom_exchange_destroy(&x);
        for (int w = 0; w < W; w++) {
            loom_buf_free(&s.out[w]);
            s.sent[w] = 0;
        }
        e->shuffle_rounds++;
        int left = 0;
        for (int j = 0; j < s.nitems; j++)
            left |= !s.done[j];
        if (st == LOOM_OK)
            LOOM_MPI_KEEP(ctx, st, MPI_Allreduce(MPI_IN_PLACE, &left, 1, MPI_INT, MPI_MAX, wc));
        more = st == LOOM_OK && left;
    }
    /* what the shuffle brought becomes the kept partitions: one partition per thread */
    int failed = st != LOOM_OK;
#pragma omp parallel for schedule(dynamic, 1) if (loom_threads(ctx) > 1)
    for (int q = 0; q < d->nparts; q++) {
        int stop;
#pragma omp atomic read
        stop = failed;
        if (stop || !ds_mine(d, q) || (only && !only[q])) continue;
        if (finish_partition(&s, q) != LOOM_OK) {
#pragma omp atomic write
            failed = 1;
        }
    }
    if (failed && st == LOOM_OK)
        st = loom_error_code(ctx) ? loom_error_code(ctx) : LOOM_ERR_INTERNAL;
    loom_timer_stop(ctx, "stages");
    stage_free(&s);
    e->stages++;
    return loom_agree(ctx, wc, st);
}

/* Keep the partitions of a persisted narrow dataset that this rank owns (all,
 * or those in `only`). Local. */
static loom_status_t keep_narrow(loom_ds_t *d, const unsigned char *only)
{
    loom_fault_point(d->e->ctx, &d->e->kill, LOOM_PHASE_STAGE, d->e->stages_begun++);
    LOOM_TRY(ds_keep_alloc(d));
    for (int p = 0; p < d->nparts; p++) {
        if (!ds_mine(d, p) || (only && !only[p]) || d->have[p]) continue;
        loom_buf_t b = {0};
        buf_sink_t bs = {{buf_put}, d->e->ctx, &b};
        loom_status_t st = ds_pull(d, p, &bs.base);
        if (st != LOOM_OK) {
            loom_buf_free(&b);
            return st;
        }
        d->part[p] = b;
        d->have[p] = 1;
        LOOM_TRY(ds_keep_store(d, p));
    }
    return LOOM_OK;
}

/* ------------------------------------------------------------------ the plan walk */

/* Call fn on every materialisation point a stage making `d` reads (through
 * narrow steps that are not kept). */
static void stage_inputs(loom_ds_t *d, void (*fn)(loom_ds_t *q, void *arg), void *arg)
{
    for (int i = 0; i < d->nin; i++) {
        loom_ds_t *in = d->in[i];
        if (in->kept || is_point(in))
            fn(in, arg);
        else
            stage_inputs(in, fn, arg);
    }
}

/* Fault injection (drop:DATASET@P): the first time a plan meets the dataset
 * kept, its owner drops partition P. Every rank knows the spec and walks the
 * same plan, so all mark the partition lost without a message; the plan's
 * readers are then counted as for a dataset still to be made. */
static void fault_drop(loom_ds_t *d)
{
    loom_ds_engine_t *e = d->e;
    if (e->fault_done || d->id != e->fault_node || !d->kept || e->fault_part >= d->nparts) return;
    e->fault_done = 1;
    int p = e->fault_part;
    if (d->have && d->have[p]) {
        ds_part_free(d, p);
        e->dropped++;
        loom_log_all(e->ctx, "fault injection: rank %d drops partition %d of dataset #%d (%s)",
                     loom_rank(e->ctx), p, d->id, d->name);
    }
    d->lost[p] = 1; /* allocated with the partitions: d is kept */
    d->nlost = 1;
}

static void count_read(loom_ds_t *q, void *arg);

/* Count, for every point the plan of d runs or reads, how many stages read it. */
static void plan_reads(loom_ds_t *d)
{
    d->touched = d->e->action;
    if (d->planned == d->e->action) return;
    fault_drop(d);
    d->planned = d->e->action;
    d->stage_reads = 0;
    if (d->kept && !d->nlost) return;
    stage_inputs(d, count_read, NULL);
}

static void count_read(loom_ds_t *q, void *arg)
{
    (void)arg;
    plan_reads(q);
    q->stage_reads++;
}

static void release_read(loom_ds_t *q, void *arg)
{
    (void)arg;
    if (--q->stage_reads <= 0 && !q->persist && q->kind != DS_STORED && q->kept) ds_drop(q);
}

/* Run what is missing under d, inputs first. Workers run the stages; the
 * master (dry) only follows, so that its view of what is kept (--explain)
 * stays the workers'. */
static loom_status_t run_plan(loom_ds_t *d, int dry)
{
    if (d->kept && !d->nlost && d->id == d->e->fault_node && !d->e->fault_done &&
        d->kind != DS_STORED) {
        /* dropped in the middle of the action: its stage's inputs get read once more */
        fault_drop(d);
        if (d->nlost) stage_inputs(d, count_read, NULL);
    }
    if (d->kept && !d->nlost) return LOOM_OK;
    for (int i = 0; i < d->nin; i++)
        LOOM_TRY(run_plan(d->in[i], dry));
    if (d->kind == DS_BJOIN && !d->bindex && !dry) LOOM_TRY(broadcast_side(d));
    if (!is_point(d)) return LOOM_OK;
    const unsigned char *only = d->nlost ? d->lost : NULL;
    if (d->kind == DS_STORED) return LOOM_OK; /* a lost stored partition fails when read */
    loom_ctx_t *ctx = d->e->ctx;
    if (dry)
        LOOM_TRY(ds_keep_alloc(d));
    else if (is_wide(d))
        LOOM_TRY(run_stage(d, only));
    else
        LOOM_TRY(loom_agree(ctx, loom_worker_comm(ctx), keep_narrow(d, only)));
    for (int p = 0; only && p < d->nparts; p++)
        d->e->recomputed += only[p] && ds_mine(d, p);
    if (only) memset(d->lost, 0, (size_t)d->nparts);
    d->kept = 1;
    d->nlost = 0;
    stage_inputs(d, release_read, NULL);
    return LOOM_OK;
}

loom_status_t ds_prepare(loom_ds_t *d)
{
    loom_ds_engine_t *e = d->e;
    plan_reads(d);
    /* sources made when called that lost partitions with a worker: first, all ranks together */
    loom_status_t st = ds_stored_reload(e);
    if (st != LOOM_OK) return st;
    return run_plan(d, e->slot < 0);
}

void ds_action_done(loom_ds_t *d)
{
    loom_ds_engine_t *e = d->e;
    /* shuffle output this action's plan did not touch is not needed by what
     * the program does now: drop it (it is recomputed if asked for again) */
    for (int i = 0; i < e->n; i++) {
        loom_ds_t *q = e->all[i];
        if (q->kept && !q->persist && q->kind != DS_STORED && q->touched != e->action) ds_drop(q);
    }
}
