/* The dataset engine: lineage nodes, transformations, the plan printer and the options. */
#include <stdlib.h>
#include <string.h>

#include "dataset/ds_internal.h"
#include "kernels/tokenize.h"

/* ------------------------------------------------------------------ records and helpers */

loom_status_t loom_ds_emit(loom_ds_out_t *out, const void *key, size_t klen, const void *val,
                           size_t vlen)
{
    if (!key) key = ""; /* an empty key or value may come as NULL */
    if (!val) val = "";
    if (out->capture) return loom_buf_append(out->ctx, out->capture, val, vlen);
    loom_ds_rec_t r = {key, klen, val, vlen};
    if (out->key_by) { /* value = pair(key, value) of the input record */
        loom_buf_t *b = out->key_by;
        b->len = 0;
        LOOM_TRY(loom_buf_reserve(out->ctx, b, out->in->klen + out->in->vlen + 10));
        unsigned char *q = loom_put_varint(b->data, out->in->klen);
        memcpy(q, out->in->key, out->in->klen);
        memcpy(q + out->in->klen, out->in->val, out->in->vlen);
        b->len = (size_t)(q - b->data) + out->in->klen + out->in->vlen;
        r.val = b->data;
        r.vlen = b->len;
    }
    if (out->keep_key) {
        r.key = out->in->key;
        r.klen = out->in->klen;
    }
    return out->next->put(out->next, &r);
}

loom_ctx_t *loom_ds_out_ctx(const loom_ds_out_t *out)
{
    return out->ctx;
}

loom_status_t loom_ds_emit_words(loom_ds_out_t *out, const void *text, size_t len, const void *val,
                                 size_t vlen)
{
    const char *s = text;
    loom_tok_block_t b;
    size_t i = 0;
    while (i < len) {
        size_t k = loom_tok_fill(&b, s + i, len - i);
        if (k == 0) { /* a word longer than a block */
            const unsigned char *u = (const unsigned char *)s + i;
            size_t n = 0, pos = 0;
            while (i + n < len && loom_tok_is_word[u[n]])
                n++;
            char *buf = malloc(n);
            if (!buf) return LOOM_ERROR(out->ctx, LOOM_ERR_NOMEM, "out of memory: a word");
            loom_tok_next_word(s + i, n, &pos, buf);
            loom_status_t st = loom_ds_emit(out, buf, n, val, vlen);
            free(buf);
            LOOM_TRY(st);
            i += n;
            continue;
        }
        size_t at, n;
        while ((n = loom_tok_next(&b, &at)))
            LOOM_TRY(loom_ds_emit(out, b.low + at, n, val, vlen));
        i += k;
    }
    return LOOM_OK;
}

static loom_status_t bad_value(loom_ds_out_t *out, size_t alen, size_t blen)
{
    return LOOM_ERROR(out->ctx, LOOM_ERR_USAGE,
                      "a built-in sum met values of %zu and %zu bytes (it takes 8-byte numbers)",
                      alen, blen);
}

loom_status_t loom_ds_sum_u64(const void *a, size_t alen, const void *b, size_t blen,
                              loom_ds_out_t *out, void *user)
{
    (void)user;
    if (alen != 8 || blen != 8) return bad_value(out, alen, blen);
    uint64_t s = loom_ds_u64(a, 8) + loom_ds_u64(b, 8);
    return loom_ds_emit(out, NULL, 0, &s, 8);
}

loom_status_t loom_ds_sum_f64(const void *a, size_t alen, const void *b, size_t blen,
                              loom_ds_out_t *out, void *user)
{
    (void)user;
    if (alen != 8 || blen != 8) return bad_value(out, alen, blen);
    double s = loom_ds_f64(a, 8) + loom_ds_f64(b, 8);
    return loom_ds_emit(out, NULL, 0, &s, 8);
}

loom_status_t loom_ds_sum_f64v(const void *a, size_t alen, const void *b, size_t blen,
                               loom_ds_out_t *out, void *user)
{
    (void)user;
    if (alen != blen || alen % 8)
        return LOOM_ERROR(out->ctx, LOOM_ERR_USAGE,
                          "a vector sum met values of %zu and %zu bytes (vectors of doubles of one "
                          "length)",
                          alen, blen);
    loom_buf_t *c = out->capture;
    if (c) { /* the usual case: straight into the result */
        c->len = 0;
        LOOM_TRY(loom_buf_reserve(out->ctx, c, alen));
        for (size_t i = 0; i < alen; i += 8) {
            double x, y;
            memcpy(&x, (const char *)a + i, 8);
            memcpy(&y, (const char *)b + i, 8);
            x += y;
            memcpy(c->data + i, &x, 8);
        }
        c->len = alen;
        return LOOM_OK;
    }
    double *v = malloc(alen ? alen : 1);
    if (!v) return LOOM_ERROR(out->ctx, LOOM_ERR_NOMEM, "out of memory: a vector");
    for (size_t i = 0; i < alen / 8; i++) {
        double x, y;
        memcpy(&x, (const char *)a + 8 * i, 8);
        memcpy(&y, (const char *)b + 8 * i, 8);
        v[i] = x + y;
    }
    loom_status_t st = loom_ds_emit(out, NULL, 0, v, alen);
    free(v);
    return st;
}

const char *loom_ds_where(loom_ds_out_t *out)
{
    static _Thread_local char where[4200];
    loom_ds_engine_t *e = out ? out->e : NULL;
    if (!e || ds_cur_file < 0 || (size_t)ds_cur_file >= e->nfiles) return "a record";
    const char *path = e->files[ds_cur_file];
    FILE *f = fopen(path, "rb");
    uint64_t line = 1, left = ds_cur_off;
    char buf[65536];
    while (f && left > 0) {
        size_t n = fread(buf, 1, left < sizeof buf ? (size_t)left : sizeof buf, f);
        if (n == 0) break;
        for (size_t i = 0; i < n; i++)
            line += buf[i] == '\n';
        left -= n;
    }
    if (f) fclose(f);
    snprintf(where, sizeof where, "%s:%llu", path, (unsigned long long)line);
    return where;
}

uint64_t loom_ds_u64(const void *p, size_t len)
{
    uint64_t v = 0;
    if (len == 8) memcpy(&v, p, 8);
    return v;
}

double loom_ds_f64(const void *p, size_t len)
{
    double v = 0;
    if (len == 8) memcpy(&v, p, 8);
    return v;
}

int loom_ds_values_next(const unsigned char **cursor, const unsigned char *end, const void **v,
                        size_t *vlen)
{
    uint64_t n;
    if (*cursor >= end) return 0;
    const unsigned char *q = loom_get_varint(*cursor, end, &n);
    if (!q || n > (uint64_t)(end - q)) return 0;
    *v = q;
    *vlen = (size_t)n;
    *cursor = q + n;
    return 1;
}

int loom_ds_pair(const void *val, size_t vlen, const void **a, size_t *alen, const void **b,
                 size_t *blen)
{
    const unsigned char *p = val, *end = p + vlen;
    uint64_t n;
    const unsigned char *q = loom_get_varint(p, end, &n);
    if (!q || n > (uint64_t)(end - q)) return 0;
    *a = q;
    *alen = (size_t)n;
    *b = q + n;
    *blen = (size_t)(end - (q + n));
    return 1;
}

/* ------------------------------------------------------------------ the engine */

loom_status_t loom_ds_engine_create(loom_ctx_t *ctx, const loom_ds_config_t *cfg,
                                    loom_ds_engine_t **out)
{
    *out = NULL;
    loom_ds_engine_t *e = calloc(1, sizeof *e);
    loom_status_t st = e ? LOOM_OK : LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory: engine");
    if (e) {
        e->ctx = ctx;
        if (cfg) e->cfg = *cfg;
        e->workers = loom_num_workers(ctx);
        e->slot = loom_worker_index(ctx);
        if (e->cfg.partitions <= 0) e->cfg.partitions = 2 * e->workers;
        if (!e->cfg.split_size) e->cfg.split_size = (size_t)32 << 20;
        if (!e->cfg.memory) e->cfg.memory = (size_t)1 << 30;
        e->fault_node = -1;
        if (cfg && cfg->checkpoint_dir && !(e->ckpt_dir = strdup(cfg->checkpoint_dir)))
            st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
        if (cfg && cfg->restart && !(e->restart_dir = strdup(cfg->restart)))
            st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
        if (cfg && cfg->identity && !(e->identity = strdup(cfg->identity)))
            st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
        if (cfg && cfg->spill_dir && !(e->spill_base = strdup(cfg->spill_dir)))
            st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
        e->cfg.dot = NULL;
        e->cfg.fault = NULL;
        e->cfg.checkpoint_dir = e->cfg.restart = e->cfg.identity = e->cfg.spill_dir = NULL;
    }
    if (st == LOOM_OK) {
        e->slots = e->workers;
        e->slot_owner = malloc((size_t)e->slots * sizeof *e->slot_owner);
        if (!e->slot_owner) st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
        for (int i = 0; st == LOOM_OK && i < e->slots; i++)
            e->slot_owner[i] = i;
    }
    if (st == LOOM_OK && cfg && cfg->fault && strncmp(cfg->fault, "kill:", 5) == 0) {
        st = loom_fault_parse(ctx, cfg->fault, 1u << LOOM_PHASE_STAGE, &e->kill);
    } else if (st == LOOM_OK && cfg && cfg->fault) {
        if (sscanf(cfg->fault, "drop:%d@%d", &e->fault_node, &e->fault_part) != 2 ||
            e->fault_node < 0 || e->fault_part < 0)
            st = LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                            "--inject-fault %s: expected drop:DATASET@PARTITION (numbers from "
                            "--explain) or kill:RANK@stage:N",
                            cfg->fault);
    }
    if (st == LOOM_OK && e->ckpt_dir && loom_is_master(ctx))
        st = loom_checkpoint_dir_check(ctx, e->ckpt_dir);
    if (st == LOOM_OK && cfg && cfg->dot && loom_is_master(ctx)) {
        e->dot = fopen(cfg->dot, "w");
        if (!e->dot) st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot create the plan file", cfg->dot);
    }
    st = loom_agree(ctx, loom_comm(ctx), st);
    if (st != LOOM_OK) {
        loom_ds_engine_destroy(&e);
        return st;
    }
    *out = e;
    return LOOM_OK;
}

loom_ctx_t *loom_ds_engine_ctx(const loom_ds_engine_t *e)
{
    return e->ctx;
}

void loom_ds_engine_destroy(loom_ds_engine_t **ep)
{
    loom_ds_engine_t *e = ep ? *ep : NULL;
    if (!e) return;
    loom_ctx_t *ctx = e->ctx;
    /* counters summed over the workers (stages counted once) */
    int64_t c[8] = {e->shuffle_records, e->shuffle_bytes, e->dropped,        e->recomputed,
                    e->stages,          e->on_disk,       e->shuffle_rounds, e->shuffle_spilled},
            sum[8];
    if (MPI_Reduce(c, sum, 8, MPI_INT64_T, MPI_SUM, 0, loom_comm(ctx)) != MPI_SUCCESS)
        memset(sum, 0, sizeof sum);
    if (e->actions) {
        loom_summary_int(ctx, "ds_actions", e->actions);
        loom_summary_int(ctx, "ds_stages", sum[4] / (e->workers ? e->workers : 1));
        loom_summary_int(ctx, "ds_shuffle_records", sum[0]);
        loom_summary_int(ctx, "ds_shuffle_bytes", sum[1]);
        loom_summary_int(ctx, "ds_partitions_dropped", sum[2]);
        loom_summary_int(ctx, "ds_partitions_recomputed", sum[3]);
        if (e->checkpoints) loom_summary_int(ctx, "ds_checkpoints", e->checkpoints);
        if (e->recoveries) loom_summary_int(ctx, "ds_recoveries", e->recoveries);
        if (sum[5]) loom_summary_int(ctx, "ds_partitions_on_disk", sum[5]);
        /* more rounds than stages: the stages' routed records passed --memory / 4 */
        loom_summary_int(ctx, "ds_shuffle_rounds", sum[6] / (e->workers ? e->workers : 1));
        if (sum[7]) loom_summary_int(ctx, "ds_shuffle_spilled_bytes", sum[7]);
    }
    int64_t reads[2] = {e->local_reads, e->remote_reads}, rsum[2] = {0, 0};
    if (e->chunks &&
        MPI_Reduce(reads, rsum, 2, MPI_INT64_T, MPI_SUM, 0, loom_comm(ctx)) == MPI_SUCCESS &&
        rsum[0] + rsum[1]) {
        loom_summary_int(ctx, "store_local_reads", rsum[0]);
        loom_summary_int(ctx, "store_remote_reads", rsum[1]);
        loom_summary_double(ctx, "store_local_fraction",
                            (double)rsum[0] / (double)(rsum[0] + rsum[1]));
    }
    for (int i = 0; i < e->nlines; i++) {
        loom_chunks_lines_close(&e->lines[i]);
        free(e->line_specs[i]);
    }
    free(e->lines);
    free(e->line_specs);
    loom_chunks_close(&e->chunks);
    loom_spill_dir_remove(ctx, &e->spill); /* every partition kept on disk is in it */
    for (int i = 0; i < e->n; i++) {
        loom_ds_t *d = e->all[i];
        for (int p = 0; d->part && p < d->nparts; p++)
            loom_buf_free(&d->part[p]);
        free(d->ondisk);
        free(d->part);
        free(d->have);
        free(d->lost);
        loom_buf_free(&d->zero);
        free(d->splits);
        free(d->place);
        free(d->ckpt_path);
        ds_bindex_free(d->bindex);
        free(d->source);
        loom_buf_free(&d->given);
        loom_ranges_free(&d->ranges);
        free(d);
    }
    free(e->all);
    for (size_t i = 0; i < e->nfiles; i++)
        free(e->files[i]);
    free(e->files);
    free(e->slot_owner);
    free(e->spill_base);
    free(e->ckpt_dir);
    free(e->restart_dir);
    free(e->identity);
    if (e->dot) {
        fclose(e->dot);
    }
    free(e);
    *ep = NULL;
}

void ds_fail(loom_ds_engine_t *e, loom_status_t st)
{
    if (e && e->err == LOOM_OK) e->err = st;
}

loom_ds_t *ds_node(loom_ds_engine_t *e, ds_kind_t kind, const char *op, loom_ds_t *a, loom_ds_t *b,
                   int nparts)
{
    if (e->n == e->cap) {
        int cap = e->cap ? 2 * e->cap : 64;
        loom_ds_t **all = realloc(e->all, (size_t)cap * sizeof *all);
        if (!all) goto nomem;
        e->all = all;
        e->cap = cap;
    }
    loom_ds_t *d = calloc(1, sizeof *d);
    if (!d) goto nomem;
    d->e = e;
    d->id = e->n;
    d->kind = kind;
    snprintf(d->name, sizeof d->name, "%s", op);
    d->in[0] = a;
    d->in[1] = b;
    d->nin = (a != NULL) + (b != NULL);
    d->nparts = nparts > 0 ? nparts : e->cfg.partitions;
    e->all[e->n++] = d;
    return d;
nomem:
    ds_fail(e, LOOM_ERROR(e->ctx, LOOM_ERR_NOMEM, "out of memory: a dataset"));
    return NULL;
}

loom_status_t ds_keep_alloc(loom_ds_t *d)
{
    if (d->part && d->have && d->lost && d->ondisk) return LOOM_OK;
    free(d->part);
    free(d->have);
    free(d->lost);
    free(d->ondisk);
    d->part = calloc((size_t)d->nparts, sizeof *d->part);
    d->have = calloc((size_t)d->nparts, 1);
    d->lost = calloc((size_t)d->nparts, 1);
    d->ondisk = calloc((size_t)d->nparts, 1);
    if (!d->part || !d->have || !d->lost || !d->ondisk) {
        free(d->part);
        free(d->have);
        free(d->lost);
        free(d->ondisk);
        d->part = NULL;
        d->have = NULL;
        d->lost = NULL;
        d->ondisk = NULL;
    }
    if (!d->part)
        return LOOM_ERROR(d->e->ctx, LOOM_ERR_NOMEM, "out of memory: partitions of dataset %d",
                          d->id);
    return LOOM_OK;
}

void ds_drop(loom_ds_t *d)
{
    if (d->kind == DS_STORED) return;
    for (int p = 0; d->part && p < d->nparts; p++)
        ds_part_free(d, p);
    d->kept = 0;
}

/* ------------------------------------------------------------------ transformations */

#define DS_GUARD(d)                                                                                \
    do {                                                                                           \
        if (!(d)) return NULL;                                                                     \
    } while (0)

static loom_ds_t *narrow(loom_ds_t *d, ds_kind_t kind, const char *op, loom_ds_map_fn fn,
                         loom_ds_pred_fn pred, void *user)
{
    DS_GUARD(d);
    loom_ds_t *n = ds_node(d->e, kind, op, d, NULL, d->nparts);
    if (!n) return NULL;
    n->map = fn;
    n->pred = pred;
    n->user = user;
    if (kind == DS_MAP_VALUES || kind == DS_FILTER) {
        n->partitioning = d->partitioning;
    }
    if ((kind != DS_FILTER && !fn) || (kind == DS_FILTER && !pred)) {
        ds_fail(d->e, LOOM_ERROR(d->e->ctx, LOOM_ERR_USAGE, "%s without a function", op));
    }
    return n;
}

loom_ds_t *loom_ds_map(loom_ds_t *d, loom_ds_map_fn fn, void *user)
{
    return narrow(d, DS_MAP, "map", fn, NULL, user);
}

loom_ds_t *loom_ds_flat_map(loom_ds_t *d, loom_ds_map_fn fn, void *user)
{
    return narrow(d, DS_MAP, "flat_map", fn, NULL, user);
}

loom_ds_t *loom_ds_filter(loom_ds_t *d, loom_ds_pred_fn fn, void *user)
{
    return narrow(d, DS_FILTER, "filter", NULL, fn, user);
}

loom_ds_t *loom_ds_map_values(loom_ds_t *d, loom_ds_map_fn fn, void *user)
{
    return narrow(d, DS_MAP_VALUES, "map_values", fn, NULL, user);
}

loom_ds_t *loom_ds_map_partitions(loom_ds_t *d, loom_ds_part_fn fn, int keeps_keys, void *user)
{
    DS_GUARD(d);
    loom_ds_t *n = ds_node(d->e, DS_MAP_PART, "map_partitions", d, NULL, d->nparts);
    if (!n) return NULL;
    n->part_fn = fn;
    n->user = user;
    if (keeps_keys) n->partitioning = d->partitioning;
    if (!fn)
        ds_fail(d->e, LOOM_ERROR(d->e->ctx, LOOM_ERR_USAGE, "map_partitions without a function"));
    return n;
}

loom_ds_t *loom_ds_key_by(loom_ds_t *d, loom_ds_map_fn fn, void *user)
{
    return narrow(d, DS_KEY_BY, "key_by", fn, NULL, user);
}

loom_ds_t *loom_ds_sample(loom_ds_t *d, double fraction, uint64_t seed)
{
    DS_GUARD(d);
    loom_ds_t *n = ds_node(d->e, DS_SAMPLE, "sample", d, NULL, d->nparts);
    if (!n) return NULL;
    n->partitioning = d->partitioning;
    n->fraction = fraction;
    n->seed = seed;
    if (!(fraction >= 0 && fraction <= 1))
        ds_fail(d->e, LOOM_ERROR(d->e->ctx, LOOM_ERR_USAGE, "sample: fraction %g is not in [0, 1]",
                                 fraction));
    return n;
}

loom_ds_t *loom_ds_union(loom_ds_t *a, loom_ds_t *b)
{
    DS_GUARD(a);
    DS_GUARD(b);
    return ds_node(a->e, DS_UNION, "union", a, b, a->nparts + b->nparts);
}

/* Hash partitions of `parts` (0: d's own when d is hash-partitioned, else the default). */
static int hash_parts(const loom_ds_t *d, int parts)
{
    if (parts > 0) return parts;
    return d->partitioning == DS_PART_HASH ? d->nparts : d->e->cfg.partitions;
}

static loom_ds_t *wide(loom_ds_t *d, ds_kind_t kind, const char *op, int parts)
{
    DS_GUARD(d);
    loom_ds_t *n = ds_node(d->e, kind, op, d, NULL, hash_parts(d, parts));
    if (n) n->partitioning = DS_PART_HASH;
    return n;
}

loom_ds_t *loom_ds_reduce_by_key(loom_ds_t *d, loom_ds_combine_fn fn, void *user, int parts)
{
    loom_ds_t *n = wide(d, DS_REDUCE, "reduce_by_key", parts);
    if (!n) return NULL;
    n->comb = fn;
    n->user = user;
    if (!fn) {
        ds_fail(d->e, LOOM_ERROR(d->e->ctx, LOOM_ERR_USAGE, "reduce_by_key without a function"));
    }
    return n;
}

loom_ds_t *loom_ds_aggregate_by_key(loom_ds_t *d, const void *zero, size_t zlen,
                                    loom_ds_combine_fn seq, loom_ds_combine_fn comb, void *user,
                                    int parts)
{
    loom_ds_t *n = wide(d, DS_AGG, "aggregate_by_key", parts);
    if (!n) return NULL;
    n->seq = seq;
    n->comb = comb;
    n->user = user;
    if (!seq || !comb)
        ds_fail(d->e, LOOM_ERROR(d->e->ctx, LOOM_ERR_USAGE, "aggregate_by_key without functions"));
    else
        ds_fail(d->e, loom_buf_append(d->e->ctx, &n->zero, zero, zlen));
    return n;
}

loom_ds_t *loom_ds_group_by_key(loom_ds_t *d, int parts)
{
    return wide(d, DS_GROUP, "group_by_key", parts);
}

loom_ds_t *loom_ds_distinct(loom_ds_t *d, int parts)
{
    return wide(d, DS_DISTINCT, "distinct", parts);
}

loom_ds_t *loom_ds_partition_by(loom_ds_t *d, int parts)
{
    return wide(d, DS_PARTITION, "partition_by", parts);
}

loom_ds_t *loom_ds_join(loom_ds_t *a, loom_ds_t *b, int parts)
{
    DS_GUARD(a);
    DS_GUARD(b);
    int pa = hash_parts(a, parts);
    if (a->partitioning == DS_PART_HASH && b->partitioning == DS_PART_HASH &&
        a->nparts == b->nparts && pa == a->nparts) {
        loom_ds_t *n = ds_node(a->e, DS_JOIN_LOCAL, "join (co-partitioned)", a, b, a->nparts);
        if (n) n->partitioning = DS_PART_HASH;
        return n;
    }
    loom_ds_t *n = ds_node(a->e, DS_JOIN, "join", a, b, pa);
    if (n) n->partitioning = DS_PART_HASH;
    return n;
}

loom_ds_t *loom_ds_join_broadcast(loom_ds_t *a, loom_ds_t *b)
{
    DS_GUARD(a);
    DS_GUARD(b);
    loom_ds_t *n = ds_node(a->e, DS_BJOIN, "join (broadcast)", a, b, a->nparts);
    if (n) n->partitioning = a->partitioning;
    return n;
}

loom_ds_t *loom_ds_cogroup(loom_ds_t *a, loom_ds_t *b, int parts)
{
    DS_GUARD(a);
    DS_GUARD(b);
    loom_ds_t *n = ds_node(a->e, DS_COGROUP, "cogroup", a, b, hash_parts(a, parts));
    if (n) n->partitioning = DS_PART_HASH;
    return n;
}

loom_ds_t *loom_ds_repartition(loom_ds_t *d, int parts)
{
    DS_GUARD(d);
    return ds_node(d->e, DS_REPART, "repartition", d, NULL, parts);
}

loom_ds_t *loom_ds_sort_by_key(loom_ds_t *d, int parts)
{
    DS_GUARD(d);
    loom_ds_t *n = ds_node(d->e, DS_SORT, "sort_by_key", d, NULL, parts);
    if (n) n->partitioning = DS_PART_RANGE;
    return n;
}

loom_ds_t *loom_ds_persist(loom_ds_t *d)
{
    return loom_ds_persist_as(d, LOOM_DS_MEMORY);
}

loom_ds_t *loom_ds_persist_as(loom_ds_t *d, loom_ds_storage_t where)
{
    if (!d) return d;
    if (where != LOOM_DS_MEMORY && where != LOOM_DS_DISK && where != LOOM_DS_MEMORY_AND_DISK)
        ds_fail(d->e,
                LOOM_ERROR(d->e->ctx, LOOM_ERR_USAGE, "persist: unknown storage %d", (int)where));
    d->persist = 1;
    d->storage = where;
    return d;
}

void loom_ds_unpersist(loom_ds_t *d)
{
    if (!d) return;
    d->persist = 0;
    if (d->kind < DS_REDUCE) ds_drop(d);
}

loom_ds_t *loom_ds_name(loom_ds_t *d, const char *name)
{
    if (d && name) snprintf(d->name, sizeof d->name, "%s", name);
    return d;
}

int loom_ds_partitions(const loom_ds_t *d)
{
    return d ? d->nparts : 0;
}

loom_status_t ds_action_begin(loom_ds_t *d, const char *action)
{
    loom_ds_engine_t *e = d ? d->e : NULL;
    if (!e) return LOOM_ERR_NOMEM; /* only a failed allocation gives no dataset */
    loom_status_t st = loom_agree(e->ctx, loom_comm(e->ctx), e->err);
    if (st != LOOM_OK) return st;
    e->action++;
    e->actions++;
    ds_explain(d, action);
    return LOOM_OK;
}

/* ------------------------------------------------------------------ the plan, printed */

static int is_wide(const loom_ds_t *d)
{
    return d->kind >= DS_REDUCE;
}

static const char *kind_word(const loom_ds_t *d)
{
    if (d->kind < DS_MAP) return "source";
    return is_wide(d) ? "shuffle" : "narrow";
}

static void explain_node(FILE *f, const loom_ds_t *d, int depth, unsigned char *seen)
{
    if (seen[d->id]) {
        fprintf(f, "  %*s#%d %s (shown above)\n", 2 * depth, "", d->id, d->name);
        return;
    }
    seen[d->id] = 1;
    fprintf(f, "  %*s#%d %s [%d partitions%s%s%s%s]\n", 2 * depth, "", d->id, d->name, d->nparts,
            d->partitioning == DS_PART_HASH    ? ", hash"
            : d->partitioning == DS_PART_RANGE ? ", ranges"
                                               : "",
            d->persist ? ", persisted" : "", d->kept ? ", kept" : "",
            is_wide(d) ? ", stage boundary: shuffle" : "");
    if (d->kept && depth > 0) return; /* read from memory: lineage below is not run */
    for (int i = 0; i < d->nin; i++)
        explain_node(f, d->in[i], depth + 1, seen);
}

static void dot_node(FILE *f, const loom_ds_t *d, unsigned char *seen)
{
    if (seen[d->id]) return;
    seen[d->id] = 1;
    fprintf(f, "  d%d [label=\"#%d %s\\n%d partitions%s\", shape=box%s];\n", d->id, d->id, d->name,
            d->nparts, d->kept ? " (kept)" : "",
            d->persist ? ", style=filled, fillcolor=lightblue" : "");
    for (int i = 0; i < d->nin; i++) {
        fprintf(f, "  d%d -> d%d [%s];\n", d->in[i]->id, d->id,
                is_wide(d) && d->kind != DS_JOIN_LOCAL ? "style=bold, label=\"shuffle\""
                                                       : "style=solid");
        dot_node(f, d->in[i], seen);
    }
}

void ds_explain(loom_ds_t *d, const char *action)
{
    loom_ds_engine_t *e = d->e;
    if (!loom_is_master(e->ctx) || (!e->cfg.explain && !e->dot)) return;
    unsigned char *seen = calloc((size_t)e->n, 1);
    if (!seen) return;
    if (e->cfg.explain) {
        fprintf(stderr, "loom: plan of action %llu, %s of #%d %s (%s):\n",
                (unsigned long long)e->action, action, d->id, d->name, kind_word(d));
        explain_node(stderr, d, 0, seen);
        memset(seen, 0, (size_t)e->n);
    }
    if (e->dot) {
        fprintf(e->dot, "digraph action%llu {\n  label=\"%s of #%d\";\n",
                (unsigned long long)e->action, action, d->id);
        dot_node(e->dot, d, seen);
        fprintf(e->dot, "}\n");
        fflush(e->dot);
    }
    free(seen);
}

/* ------------------------------------------------------------------ options */

loom_status_t loom_ds_engine_from_opts(loom_ctx_t *ctx, const loom_opts_t *opts,
                                       const char *identity, loom_ds_engine_t **e)
{
    loom_ds_config_t cfg = {
        .partitions = (int)loom_opt_int(opts, "partitions"),
        .split_size = loom_opt_size(opts, "split-size"),
        .memory = loom_opt_size(opts, "memory"),
        .explain = loom_opt_flag(opts, "explain"),
        .dot = loom_opt_string(opts, "dot"),
        .fault = loom_opt_string(opts, "inject-fault"),
        .checkpoint_dir = loom_opt_string(opts, "checkpoint-dir"),
        .restart = loom_opt_string(opts, "restart"),
        .identity = identity,
        .spill_dir = loom_opt_string(opts, "spill-dir"),
        .store = loom_opt_string(opts, "store"),
    };
    return loom_ds_engine_create(ctx, &cfg, e);
}

/* ------------------------------------------------------------------ a worker's death (ULFM) */

/* Shrink to the survivors; the dead workers' slots go to the others, round
 * robin, and every kept partition of those slots is marked lost. */
static loom_status_t recover(loom_ds_engine_t *e)
{
    loom_ctx_t *ctx = e->ctx;
    loom_recovery_t rec;
    loom_status_t st = loom_members_recover(ctx, &rec);
    if (st != LOOM_OK) {
        loom_recovery_free(&rec);
        return st;
    }
    unsigned char *dead = calloc((size_t)e->slots, 1);
    if (!dead) {
        loom_recovery_free(&rec);
        return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    }
    int nw = loom_num_workers(ctx), k = 0;
    for (int s = 0; s < e->slots; s++) {
        /* worker index w was rank w + 1 before the shrink (a death needs a master and workers) */
        int old_rank = e->slot_owner[s] + 1;
        int now = old_rank < rec.old_size ? rec.new_rank[old_rank] : -1;
        if (now >= 1) {
            e->slot_owner[s] = now - 1;
        } else {
            dead[s] = 1;
            e->slot_owner[s] = k++ % nw;
        }
    }
    loom_recovery_free(&rec);
    e->workers = nw;
    e->slot = loom_worker_index(ctx);
    /* what the dead held is lost: recomputed (or read again) by the next plan */
    for (int i = 0; i < e->n; i++) {
        loom_ds_t *d = e->all[i];
        if (!d->have || (!d->kept && d->kind != DS_CKPT)) continue;
        for (int p = 0; p < d->nparts; p++) {
            if (!dead[ds_slot(d, p)]) continue;
            if (d->kind == DS_CKPT) continue; /* read from its file when needed */
            if (!d->lost[p]) d->nlost++;
            d->lost[p] = 1;
        }
    }
    free(dead);
    e->recoveries++;
    loom_log(ctx, LOOM_LOG_WARN,
             "datasets: going on with %d worker%s; the lost partitions are recomputed from "
             "lineage",
             nw, nw == 1 ? "" : "s");
    return LOOM_OK;
}

int ds_again(loom_ds_t *d, loom_status_t *st)
{
    if (!d) return 0;
    loom_ds_engine_t *e = d->e;
    loom_ctx_t *ctx = e->ctx;
    if (!loom_ft_enabled(ctx)) return 0;
    int ok = !loom_members_failed(ctx);
    loom_status_t as = loom_members_agree(ctx, &ok);
    if (as != LOOM_OK) {
        *st = as;
        return 0;
    }
    if (ok) return 0;
    *st = recover(e);
    if (*st != LOOM_OK) return 0;
    loom_members_resumed(ctx);
    return 1;
}
