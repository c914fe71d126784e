/* Dataset actions: count, collect, reduce and save, each one plan run and one collective. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dataset/ds_internal.h"
#include "kernels/sort.h"

/* Run the plan of an action on d; every rank gets the same status. */
static loom_status_t action_prepare(loom_ds_t *d, const char *what)
{
    loom_status_t st = ds_action_begin(d, what);
    if (st != LOOM_OK) return st;
    loom_ctx_t *ctx = d->e->ctx;
    loom_timer_start(ctx, "ds_plan");
    st = ds_prepare(d);
    loom_timer_stop(ctx, "ds_plan");
    return st;
}

/* Pull every partition of d this rank owns into sink. Local. */
static loom_status_t pull_mine(loom_ds_t *d, ds_sink_t *sink)
{
    for (int p = 0; p < d->nparts; p++)
        if (ds_mine(d, p)) LOOM_TRY(ds_pull(d, p, sink));
    return LOOM_OK;
}

/* ------------------------------------------------------------------ count */

typedef struct count_sink {
    ds_sink_t base;
    uint64_t n;
} count_sink_t;

static loom_status_t count_put(ds_sink_t *s, const loom_ds_rec_t *r)
{
    (void)r;
    ((count_sink_t *)s)->n++;
    return LOOM_OK;
}

static loom_status_t count_once(loom_ds_t *d, uint64_t *n)
{
    *n = 0;
    loom_status_t st = action_prepare(d, "count");
    if (!d) return st;
    loom_ctx_t *ctx = d->e->ctx;
    count_sink_t cs = {{count_put}, 0};
    if (st == LOOM_OK) st = pull_mine(d, &cs.base);
    st = loom_agree(ctx, loom_comm(ctx), st);
    if (st == LOOM_OK)
        LOOM_MPI_KEEP(ctx, st, MPI_Allreduce(&cs.n, n, 1, MPI_UINT64_T, MPI_SUM, loom_comm(ctx)));
    if (st == LOOM_OK) ds_action_done(d);
    return st;
}

/* ------------------------------------------------------------------ foreach_partition */

static loom_status_t foreach_partition_once(loom_ds_t *d, loom_ds_part_each_fn fn, void *user)
{
    if (d && !fn) /* the same on every rank: before any work */
        return LOOM_ERROR(d->e->ctx, LOOM_ERR_USAGE, "foreach_partition without a function");
    loom_status_t st = action_prepare(d, "foreach_partition");
    if (!d) return st;
    loom_ctx_t *ctx = d->e->ctx;
    for (int p = 0; p < d->nparts && st == LOOM_OK; p++) {
        if (!ds_mine(d, p)) continue;
        loom_buf_t copy = {0};
        loom_ds_iter_t it;
        st = ds_part_iter(d, p, &copy, &it);
        if (st == LOOM_OK) st = fn(p, &it, user);
        if (st == LOOM_OK && it.bad)
            st = LOOM_ERROR(ctx, LOOM_ERR_INTERNAL, "a partition is corrupt");
        loom_buf_free(&copy);
    }
    st = loom_agree(ctx, loom_comm(ctx), st);
    if (st == LOOM_OK) ds_action_done(d);
    return st;
}

/* ------------------------------------------------------------------ collect */

typedef struct part_sink {
    ds_sink_t base;
    loom_ctx_t *ctx;
    loom_buf_t *buf;
    uint64_t n, limit; /* records kept, at most limit (0: all) */
} part_sink_t;

static loom_status_t part_put(ds_sink_t *s, const loom_ds_rec_t *r)
{
    part_sink_t *ps = (part_sink_t *)s;
    if (ps->limit && ps->n >= ps->limit) return LOOM_OK;
    ps->n++;
    return loom_buf_put_record(ps->ctx, ps->buf, r->key, r->klen, r->val, r->vlen);
}

/* This rank's partitions as [varint p][varint bytes][records] segments, at
 * most `limit` records of each (0: all). */
static loom_status_t pack_mine(loom_ds_t *d, loom_buf_t *out, uint64_t limit)
{
    loom_ctx_t *ctx = d->e->ctx;
    loom_buf_t one = {0};
    loom_status_t st = LOOM_OK;
    for (int p = 0; p < d->nparts && st == LOOM_OK; p++) {
        if (!ds_mine(d, p)) continue;
        one.len = 0;
        part_sink_t ps = {{part_put}, ctx, &one, 0, limit};
        st = ds_pull(d, p, &ps.base);
        if (st == LOOM_OK) st = loom_buf_reserve(ctx, out, 20 + one.len);
        if (st == LOOM_OK) {
            unsigned char *q = loom_put_varint(out->data + out->len, (uint64_t)p);
            q = loom_put_varint(q, one.len);
            if (one.len) memcpy(q, one.data, one.len);
            out->len = (size_t)(q - out->data) + one.len;
        }
    }
    loom_buf_free(&one);
    return st;
}

/* Gather every rank's bytes to rank 0 (which gets them concatenated in rank order). */
static loom_status_t gather_root(loom_ctx_t *ctx, const loom_buf_t *mine, loom_buf_t *all,
                                 const char *what)
{
    MPI_Comm comm = loom_comm(ctx);
    int P = loom_size(ctx), root = loom_is_master(ctx);
    uint64_t len = mine->len;
    uint64_t *lens = root ? calloc((size_t)P, sizeof *lens) : NULL;
    int *counts = root ? calloc((size_t)P, sizeof *counts) : NULL;
    int *displ = root ? calloc((size_t)P, sizeof *displ) : NULL;
    loom_status_t st = LOOM_OK;
    if (root && (!lens || !counts || !displ))
        st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory: %s", what);
    st = loom_agree(ctx, comm, st);
    if (st == LOOM_OK)
        LOOM_MPI_KEEP(ctx, st, MPI_Gather(&len, 1, MPI_UINT64_T, lens, 1, MPI_UINT64_T, 0, comm));
    if (st == LOOM_OK && root) {
        uint64_t total = 0;
        for (int r = 0; r < P; r++) {
            displ[r] = (int)total;
            counts[r] = (int)lens[r];
            total += lens[r];
        }
        if (total > INT32_MAX)
            st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM,
                            "%s: %llu bytes do not fit rank 0's gather (2 GiB at most); save "
                            "the dataset instead",
                            what, (unsigned long long)total);
        if (st == LOOM_OK) st = loom_buf_reserve(ctx, all, (size_t)total + 1);
        if (st == LOOM_OK) all->len = (size_t)total;
    }
    st = loom_agree(ctx, comm, st);
    if (st == LOOM_OK)
        LOOM_MPI_KEEP(ctx, st,
                      MPI_Gatherv(mine->data, (int)mine->len, MPI_BYTE, all ? all->data : NULL,
                                  counts, displ, MPI_BYTE, 0, comm));
    free(lens);
    free(counts);
    free(displ);
    return st;
}

/* Rank 0: the gathered segments' records in partition order, at most `limit`
 * (0: all), to fn. */
static loom_status_t each_in_order(loom_ds_t *d, const loom_buf_t *all, uint64_t limit,
                                   loom_ds_each_fn fn, void *user)
{
    loom_ctx_t *ctx = d->e->ctx;
    loom_status_t st = LOOM_OK;
    /* segments arrive in rank order: index them by partition */
    const unsigned char **seg = calloc((size_t)d->nparts, sizeof *seg);
    size_t *seglen = calloc((size_t)d->nparts, sizeof *seglen);
    if (!seg || !seglen) st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory: collect");
    const unsigned char *p = all->data, *end = all->data + all->len;
    while (st == LOOM_OK && p < end) {
        uint64_t part, len;
        p = loom_get_varint(p, end, &part);
        if (p) p = loom_get_varint(p, end, &len);
        if (!p || part >= (uint64_t)d->nparts || len > (uint64_t)(end - p)) {
            st = LOOM_ERROR(ctx, LOOM_ERR_INTERNAL, "collect: a segment is corrupt");
            break;
        }
        seg[part] = p;
        seglen[part] = (size_t)len;
        p += len;
    }
    uint64_t n = 0;
    for (int q = 0; q < d->nparts && st == LOOM_OK; q++) {
        const unsigned char *r = seg[q], *rend = seg[q] + seglen[q];
        loom_ds_rec_t rec;
        while (st == LOOM_OK && r && (!limit || n < limit) && ds_next_record(&r, rend, &rec) > 0) {
            st = fn(&rec, user);
            n++;
        }
    }
    free(seg);
    free(seglen);
    return st;
}

static loom_status_t collect_once(loom_ds_t *d, loom_ds_each_fn fn, void *user)
{
    loom_status_t st = action_prepare(d, "collect");
    if (!d) return st;
    loom_ctx_t *ctx = d->e->ctx;
    loom_buf_t mine = {0}, all = {0};
    if (st == LOOM_OK) st = pack_mine(d, &mine, 0);
    st = loom_agree(ctx, loom_comm(ctx), st);
    if (st == LOOM_OK) st = gather_root(ctx, &mine, &all, "collect");
    loom_buf_free(&mine);
    if (st == LOOM_OK && loom_is_master(ctx)) st = each_in_order(d, &all, 0, fn, user);
    loom_buf_free(&all);
    st = loom_agree(ctx, loom_comm(ctx), st);
    if (st == LOOM_OK) ds_action_done(d);
    return st;
}

/* ------------------------------------------------------------------ take */

/* Agree on st, then rank 0's records in `recs` reach every rank, where fn sees them in order. */
static loom_status_t bcast_each(loom_ds_t *d, loom_status_t st, loom_buf_t *recs,
                                loom_ds_each_fn fn, void *user)
{
    loom_ctx_t *ctx = d->e->ctx;
    MPI_Comm comm = loom_comm(ctx);
    st = loom_agree(ctx, comm, st);
    uint64_t len = recs->len;
    if (st == LOOM_OK) LOOM_MPI_KEEP(ctx, st, MPI_Bcast(&len, 1, MPI_UINT64_T, 0, comm));
    if (st == LOOM_OK && len > INT32_MAX)
        st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "%llu bytes is too much to hand every rank",
                        (unsigned long long)len);
    if (st == LOOM_OK && !loom_is_master(ctx)) st = loom_buf_reserve(ctx, recs, len + 1);
    st = loom_agree(ctx, comm, st);
    if (st == LOOM_OK && len)
        LOOM_MPI_KEEP(ctx, st, MPI_Bcast(recs->data, (int)len, MPI_BYTE, 0, comm));
    if (st == LOOM_OK) recs->len = (size_t)len;
    loom_ds_rec_t rec;
    const unsigned char *p = recs->data, *end = recs->data + recs->len;
    while (st == LOOM_OK && ds_next_record(&p, end, &rec) > 0)
        st = fn(&rec, user);
    return loom_agree(ctx, comm, st);
}

static loom_status_t take_put(const loom_ds_rec_t *r, void *user)
{
    part_sink_t *ps = user;
    return loom_buf_put_record(ps->ctx, ps->buf, r->key, r->klen, r->val, r->vlen);
}

static loom_status_t take_once(loom_ds_t *d, uint64_t n, loom_ds_each_fn fn, void *user)
{
    loom_status_t st = action_prepare(d, "take");
    if (!d) return st;
    loom_ctx_t *ctx = d->e->ctx;
    MPI_Comm comm = loom_comm(ctx);
    loom_buf_t mine = {0}, all = {0}, first = {0};
    if (st == LOOM_OK && n) st = pack_mine(d, &mine, n);
    st = loom_agree(ctx, comm, st);
    if (st == LOOM_OK) st = gather_root(ctx, &mine, &all, "take");
    loom_buf_free(&mine);
    if (st == LOOM_OK && loom_is_master(ctx) && n) {
        part_sink_t ps = {{part_put}, ctx, &first, 0, 0};
        st = each_in_order(d, &all, n, take_put, &ps);
    }
    loom_buf_free(&all);
    st = bcast_each(d, st, &first, fn, user);
    loom_buf_free(&first);
    if (st == LOOM_OK) ds_action_done(d);
    return st;
}

/* ------------------------------------------------------------------ top */

/* Sort a buffer's records by key then value; keep the last n, largest first, in *out. */
static loom_status_t largest(loom_ctx_t *ctx, const loom_buf_t *in, uint64_t n, loom_buf_t *out)
{
    loom_kvref_t *refs;
    size_t count;
    LOOM_TRY(ds_sorted_refs(ctx, in, 1, &refs, &count));
    loom_status_t st = LOOM_OK;
    for (size_t i = count; i > 0 && count - i < n && st == LOOM_OK; i--)
        st = loom_buf_put_record(ctx, out, refs[i - 1].key, refs[i - 1].klen, refs[i - 1].val,
                                 refs[i - 1].vlen);
    free(refs);
    return st;
}

static loom_status_t top_once(loom_ds_t *d, uint64_t n, loom_ds_each_fn fn, void *user)
{
    loom_status_t st = action_prepare(d, "top");
    if (!d) return st;
    loom_ctx_t *ctx = d->e->ctx;
    loom_buf_t held = {0}, mine = {0}, all = {0}, best = {0};
    part_sink_t ps = {{part_put}, ctx, &held, 0, 0};
    if (st == LOOM_OK) st = pull_mine(d, &ps.base);
    if (st == LOOM_OK) st = largest(ctx, &held, n, &mine);
    loom_buf_free(&held);
    st = loom_agree(ctx, loom_comm(ctx), st);
    if (st == LOOM_OK) st = gather_root(ctx, &mine, &all, "top");
    loom_buf_free(&mine);
    if (st == LOOM_OK && loom_is_master(ctx)) st = largest(ctx, &all, n, &best);
    loom_buf_free(&all);
    st = bcast_each(d, st, &best, fn, user);
    loom_buf_free(&best);
    if (st == LOOM_OK) ds_action_done(d);
    return st;
}

/* ------------------------------------------------------------------ reduce */

typedef struct fold_sink {
    ds_sink_t base;
    loom_ctx_t *ctx;
    loom_ds_combine_fn fn;
    void *user;
    loom_buf_t acc, tmp;
    int found;
} fold_sink_t;

static loom_status_t fold_value(fold_sink_t *f, const void *v, size_t vlen)
{
    if (!f->found) {
        f->found = 1;
        f->acc.len = 0;
        return loom_buf_append(f->ctx, &f->acc, v, vlen);
    }
    f->tmp.len = 0;
    loom_ds_out_t out = {.ctx = f->ctx, .capture = &f->tmp};
    LOOM_TRY(f->fn(f->acc.data, f->acc.len, v, vlen, &out, f->user));
    loom_buf_t t = f->acc;
    f->acc = f->tmp;
    f->tmp = t;
    return LOOM_OK;
}

static loom_status_t fold_put(ds_sink_t *s, const loom_ds_rec_t *r)
{
    return fold_value((fold_sink_t *)s, r->val, r->vlen);
}

static loom_status_t reduce_once(loom_ds_t *d, loom_ds_combine_fn fn, void *user, void *out,
                                 size_t cap, size_t *len, int *found)
{
    *len = 0;
    *found = 0;
    loom_status_t st = action_prepare(d, "reduce");
    if (!d) return st;
    loom_ctx_t *ctx = d->e->ctx;
    MPI_Comm comm = loom_comm(ctx);
    fold_sink_t f = {{fold_put}, ctx, fn, user, {0}, {0}, 0};
    loom_buf_t mine = {0}, all = {0};
    if (st == LOOM_OK) st = pull_mine(d, &f.base);
    /* this rank's fold as a record: key "1" when it has one */
    if (st == LOOM_OK && f.found)
        st = loom_buf_put_record(ctx, &mine, "1", 1, f.acc.data, f.acc.len);
    st = loom_agree(ctx, comm, st);
    if (st == LOOM_OK) st = gather_root(ctx, &mine, &all, "reduce");
    uint64_t res[2] = {0, 0}; /* found, length */
    if (st == LOOM_OK && loom_is_master(ctx)) {
        fold_sink_t g = {{fold_put}, ctx, fn, user, {0}, {0}, 0};
        st = ds_buf_each(ctx, &all, &g.base);
        if (st == LOOM_OK && g.found && g.acc.len > cap)
            st = LOOM_ERROR(ctx, LOOM_ERR_USAGE, "reduce: the result has %zu bytes, room for %zu",
                            g.acc.len, cap);
        if (st == LOOM_OK && g.found) {
            if (g.acc.len) memcpy(out, g.acc.data, g.acc.len);
            res[0] = 1;
            res[1] = g.acc.len;
        }
        loom_buf_free(&g.acc);
        loom_buf_free(&g.tmp);
    }
    st = loom_agree(ctx, comm, st);
    if (st == LOOM_OK) LOOM_MPI_KEEP(ctx, st, MPI_Bcast(res, 2, MPI_UINT64_T, 0, comm));
    if (st == LOOM_OK && res[1])
        LOOM_MPI_KEEP(ctx, st, MPI_Bcast(out, (int)res[1], MPI_BYTE, 0, comm));
    if (st == LOOM_OK) {
        *found = (int)res[0];
        *len = (size_t)res[1];
        ds_action_done(d);
    }
    loom_buf_free(&f.acc);
    loom_buf_free(&f.tmp);
    loom_buf_free(&mine);
    loom_buf_free(&all);
    return st;
}

loom_status_t loom_ds_fold(loom_ds_t *d, const void *zero, size_t zlen, loom_ds_combine_fn fn,
                           void *user, void *out, size_t cap, size_t *len)
{
    int found = 0;
    loom_status_t st = loom_ds_reduce(d, fn, user, out, cap, len, &found);
    if (st != LOOM_OK) return st;
    loom_ctx_t *ctx = d->e->ctx;
    loom_buf_t r = {0};
    loom_ds_out_t o = {.ctx = ctx, .e = d->e, .capture = &r};
    if (found)
        st = fn(zero, zlen, out, *len, &o, user);
    else
        st = loom_buf_append(ctx, &r, zero, zlen);
    if (st == LOOM_OK && r.len > cap)
        st = LOOM_ERROR(ctx, LOOM_ERR_USAGE, "fold: the result has %zu bytes, room for %zu", r.len,
                        cap);
    if (st == LOOM_OK) {
        if (r.len) memcpy(out, r.data, r.len);
        *len = r.len;
    }
    loom_buf_free(&r);
    return loom_agree(ctx, loom_comm(ctx), st);
}

/* ------------------------------------------------------------------ save */

typedef struct text_sink {
    ds_sink_t base;
    loom_ctx_t *ctx;
    FILE *f;
    const char *path;
    int lines; /* HDF5: every record must make one line */
} text_sink_t;

static loom_status_t text_put(ds_sink_t *s, const loom_ds_rec_t *r)
{
    text_sink_t *t = (text_sink_t *)s;
    if (t->lines &&
        (memchr(r->key, '\t', r->klen) || memchr(r->key, '\n', r->klen) ||
         memchr(r->key, 0, r->klen) || memchr(r->val, '\n', r->vlen) || memchr(r->val, 0, r->vlen)))
        return LOOM_ERROR(t->ctx, LOOM_ERR_FORMAT,
                          "save: a record cannot be a line of the HDF5 output (a TAB, newline or "
                          "NUL byte in its key, or a newline or NUL byte in its value); map it "
                          "to text first");
    int ok = fwrite(r->key, 1, r->klen, t->f) == r->klen;
    if (r->vlen) ok = ok && fputc('\t', t->f) != EOF && fwrite(r->val, 1, r->vlen, t->f) == r->vlen;
    ok = ok && fputc('\n', t->f) != EOF;
    if (!ok)
        return LOOM_ERROR(t->ctx, LOOM_ERR_IO, "%s: cannot write: %s", t->path, strerror(errno));
    return LOOM_OK;
}

static loom_status_t save_once(loom_ds_t *d, const char *dir, int overwrite, int h5)
{
    if (!d) return LOOM_ERR_NOMEM;
    loom_ctx_t *ctx = d->e->ctx;
    loom_output_t *out = NULL;
    loom_output_parts_t *parts = NULL;
    loom_status_t st = loom_agree(ctx, loom_comm(ctx), d->e->err);
    if (st != LOOM_OK) return st;
    /* the target is checked before any work; its temporary is made once the
     * stages have run, so that a job killed while computing leaves nothing */
    unsigned flags = (h5 ? 0u : LOOM_OUTPUT_DIR) | (overwrite ? LOOM_OUTPUT_OVERWRITE : 0u);
    st = loom_output_check(ctx, loom_comm(ctx), dir, flags, (const char *const *)d->e->files,
                           (int)d->e->nfiles);
    if (st != LOOM_OK) return st;
    st = action_prepare(d, "save");
    st = loom_agree(ctx, loom_comm(ctx), st);
    if (st != LOOM_OK) return st;
    st = loom_output_begin(ctx, loom_comm(ctx), dir, flags, &out);
    if (st != LOOM_OK) return st;
    if (h5) st = loom_output_parts_begin(ctx, loom_comm(ctx), out, &parts);
    const char *where = h5 ? loom_output_parts_dir(parts) : loom_output_path(out);
    loom_timer_start(ctx, "ds_save");
    char *path = NULL;
    for (int p = 0; p < d->nparts && st == LOOM_OK; p++) {
        if (!ds_mine(d, p)) continue;
        size_t n = strlen(where) + 32;
        free(path);
        path = malloc(n);
        if (!path) {
            st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
            break;
        }
        snprintf(path, n, "%s/part-%05d", where, p);
        FILE *f = fopen(path, "w");
        if (!f) {
            st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
            break;
        }
        text_sink_t ts = {{text_put}, ctx, f, path, h5};
        st = ds_pull(d, p, &ts.base);
        if (fclose(f) != 0 && st == LOOM_OK)
            st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    }
    free(path);
    loom_timer_stop(ctx, "ds_save");
    st = loom_output_parts_end(ctx, loom_comm(ctx), out, &parts, d->nparts, LOOM_LINES_KV, st);
    st = loom_output_end(ctx, &out, st);
    if (st == LOOM_OK) ds_action_done(d);
    return st;
}

/* ------------------------------------------------------------------ actions, run again after a
 * death With ULFM, an action that a worker's death interrupted runs again over the survivors: what
 * they keep is reused, what the dead held is recomputed. */

loom_status_t loom_ds_count(loom_ds_t *d, uint64_t *n)
{
    loom_status_t st;
    while (ds_again(d, (st = count_once(d, n), &st)))
        ;
    return st;
}

loom_status_t loom_ds_foreach_partition(loom_ds_t *d, loom_ds_part_each_fn fn, void *user)
{
    loom_status_t st;
    while (ds_again(d, (st = foreach_partition_once(d, fn, user), &st)))
        ;
    return st;
}

loom_status_t loom_ds_collect(loom_ds_t *d, loom_ds_each_fn fn, void *user)
{
    loom_status_t st;
    while (ds_again(d, (st = collect_once(d, fn, user), &st)))
        ;
    return st;
}

loom_status_t loom_ds_take(loom_ds_t *d, uint64_t n, loom_ds_each_fn fn, void *user)
{
    loom_status_t st;
    while (ds_again(d, (st = take_once(d, n, fn, user), &st)))
        ;
    return st;
}

loom_status_t loom_ds_top(loom_ds_t *d, uint64_t n, loom_ds_each_fn fn, void *user)
{
    loom_status_t st;
    while (ds_again(d, (st = top_once(d, n, fn, user), &st)))
        ;
    return st;
}

loom_status_t loom_ds_reduce(loom_ds_t *d, loom_ds_combine_fn fn, void *user, void *out, size_t cap,
                             size_t *len, int *found)
{
    loom_status_t st;
    while (ds_again(d, (st = reduce_once(d, fn, user, out, cap, len, found), &st)))
        ;
    return st;
}

loom_status_t loom_ds_save_text(loom_ds_t *d, const char *dir, int overwrite)
{
    loom_status_t st;
    while (ds_again(d, (st = save_once(d, dir, overwrite, 0), &st)))
        ;
    return st;
}

loom_status_t loom_ds_save(loom_ds_t *d, const char *path, int overwrite)
{
    loom_status_t st;
    int h5 = loom_output_is_h5(path);
    while (ds_again(d, (st = save_once(d, path, overwrite, h5), &st)))
        ;
    return st;
}
