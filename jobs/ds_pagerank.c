/* `loom ds-pagerank GRAPH --out DIR`: PageRank written on datasets, as Spark's example program
 * writes it (links partitioned and persisted, links.join(ranks) -> contributions ->
 * reduce_by_key), with Spark's convention or networkx's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loom/loom.h"

static const loom_option_t options[] = {
    {"out", LOOM_OPT_STRING, NULL,
     "output directory (vertex<TAB>score lines) or FILE.h5 (/keys, /values)", NULL, 0, 0, 0},
    {"overwrite", LOOM_OPT_FLAG, NULL, "replace an earlier Loom output at --out", NULL, 0, 0, 0},
    {"iters", LOOM_OPT_INT, "10", "iterations", NULL, 1, 1, 1e6},
    {"damping", LOOM_OPT_DOUBLE, "0.85", "damping factor", NULL, 1, 0, 1},
    {"convention", LOOM_OPT_CHOICE, "spark",
     "spark: ranks start at 1, r = (1-d) + d*sum, rank of vertices without out-links is lost, "
     "vertices without in-links drop out (Spark's example); networkx: normalised, every vertex, "
     "dangling rank spread evenly",
     "spark|networkx", 0, 0, 0},
    {"undirected", LOOM_OPT_FLAG, NULL, "take every edge in both directions", NULL, 0, 0, 0},
    {"persist", LOOM_OPT_CHOICE, "memory", "where the links are kept",
     "memory|disk|memory-and-disk", 0, 0, 0},
    {"checkpoint-every", LOOM_OPT_INT, "0",
     "checkpoint the ranks every N iterations (with "
     "--checkpoint-dir; 0: only on SIGUSR1/SIGTERM)",
     NULL, 1, 0, 1e9},
    LOOM_DS_OPTION_ROWS,
    {NULL, LOOM_OPT_END, NULL, NULL, NULL, 0, 0, 0},
};

/* One iteration's constants: rank = base + d * (sum + spread). */
typedef struct step {
    double base, d, spread;
} step_t;

/* A joined record (links, rank): the rank and the out-degree (one 8-byte id per
 * value of the group; an empty value marks a vertex, not a link). */
static uint64_t links_rank(const loom_ds_rec_t *r, const unsigned char **links, size_t *llen,
                           const void **rank, size_t *rlen)
{
    const void *l, *v;
    size_t vl;
    loom_ds_pair(r->val, r->vlen, &l, llen, rank, rlen);
    *links = l;
    const unsigned char *c = *links, *end = c + *llen;
    uint64_t deg = 0;
    while (loom_ds_values_next(&c, end, &v, &vl))
        deg += vl == 8;
    return deg;
}

/* A vertex's rank, split over its out-links; networkx's convention also sends
 * the vertex 0 so that it stays. */
static loom_status_t contributions(const loom_ds_rec_t *r, loom_ds_out_t *out, void *keep_self)
{
    const unsigned char *links, *c, *end;
    const void *rank, *v;
    size_t llen, rlen, vl;
    uint64_t deg = links_rank(r, &links, &llen, &rank, &rlen);
    end = links + llen;
    if (keep_self) {
        static const double zero = 0;
        LOOM_TRY(loom_ds_emit(out, r->key, r->klen, &zero, 8));
    }
    if (!deg) return LOOM_OK;
    double share = loom_ds_f64(rank, rlen) / (double)deg;
    for (c = links; loom_ds_values_next(&c, end, &v, &vl);)
        if (vl == 8) LOOM_TRY(loom_ds_emit(out, v, 8, &share, 8));
    return LOOM_OK;
}

static loom_status_t update(const loom_ds_rec_t *r, loom_ds_out_t *out, void *user)
{
    const step_t *s = user;
    double x = s->base + s->d * (loom_ds_f64(r->val, r->vlen) + s->spread);
    return loom_ds_emit(out, NULL, 0, &x, 8);
}

static loom_status_t initial(const loom_ds_rec_t *r, loom_ds_out_t *out, void *user)
{
    (void)r;
    return loom_ds_emit(out, NULL, 0, user, 8);
}

/* The rank of a vertex without out-links (networkx's dangling mass). */
static loom_status_t dangling_rank(const loom_ds_rec_t *r, loom_ds_out_t *out, void *user)
{
    (void)user;
    const unsigned char *links;
    const void *rank;
    size_t llen, rlen;
    if (links_rank(r, &links, &llen, &rank, &rlen)) return LOOM_OK;
    return loom_ds_emit(out, r->key, r->klen, rank, rlen);
}

/* Every endpoint as a vertex record (empty value). */
static loom_status_t endpoints(const loom_ds_rec_t *r, loom_ds_out_t *out, void *user)
{
    (void)user;
    LOOM_TRY(loom_ds_emit(out, r->key, r->klen, "", 0));
    return loom_ds_emit(out, r->val, r->vlen, "", 0);
}

static loom_status_t as_text(const loom_ds_rec_t *r, loom_ds_out_t *out, void *user)
{
    char k[24], v[32];
    (void)user;
    int kn = snprintf(k, sizeof k, "%llu", (unsigned long long)loom_ds_u64(r->key, r->klen));
    int vn = snprintf(v, sizeof v, "%.17g", loom_ds_f64(r->val, r->vlen));
    return loom_ds_emit(out, k, (size_t)kn, v, (size_t)vn);
}

static double median10(double *x)
{
    for (int i = 1; i < 10; i++)
        for (int j = i; j > 0 && x[j - 1] > x[j]; j--) {
            double t = x[j];
            x[j] = x[j - 1];
            x[j - 1] = t;
        }
    return (x[4] + x[5]) / 2;
}

static loom_status_t run(loom_ctx_t *ctx, const loom_opts_t *opts)
{
    const char *out = loom_opt_string(opts, "out");
    if (loom_opts_nargs(opts) != 1)
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "ds-pagerank: give one graph (file or generator)");
    if (!out) return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "ds-pagerank: --out DIR is required");
    int64_t iters = loom_opt_int(opts, "iters");
    double d = loom_opt_double(opts, "damping");
    int nx = strcmp(loom_opt_string(opts, "convention"), "networkx") == 0;
    if (loom_opt_int(opts, "checkpoint-every") > 0 && !loom_opt_string(opts, "checkpoint-dir"))
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                          "ds-pagerank: --checkpoint-every needs --checkpoint-dir");
    step_t *steps = calloc((size_t)iters, sizeof *steps);
    if (!steps) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    /* what a checkpoint must have been written by, to be resumed */
    char identity[1024];
    snprintf(identity, sizeof identity, "ds-pagerank %s convention=%s damping=%.17g undirected=%d",
             loom_opts_arg(opts, 0), nx ? "networkx" : "spark", d,
             loom_opt_flag(opts, "undirected"));
    loom_ds_engine_t *e;
    loom_status_t st = loom_ds_engine_from_opts(ctx, opts, identity, &e);
    if (st != LOOM_OK) {
        free(steps);
        return st;
    }
    loom_ds_t *edges = loom_ds_distinct(
        loom_ds_edges(e, loom_opts_arg(opts, 0), loom_opt_flag(opts, "undirected")), 0);
    loom_ds_t *links;
    uint64_t n = 0;
    const char *where = loom_opt_string(opts, "persist");
    loom_ds_storage_t keep = !strcmp(where, "disk")              ? LOOM_DS_DISK
                             : !strcmp(where, "memory-and-disk") ? LOOM_DS_MEMORY_AND_DISK
                                                                 : LOOM_DS_MEMORY;
    double start = 1.0;
    if (nx) { /* every vertex has a group, dangling ones with only the empty marker */
        loom_ds_t *verts = loom_ds_flat_map(edges, endpoints, NULL);
        links = loom_ds_persist_as(loom_ds_group_by_key(loom_ds_union(edges, verts), 0), keep);
        st = loom_ds_count(links, &n);
        start = n ? 1.0 / (double)n : 0;
    } else {
        links = loom_ds_persist_as(loom_ds_group_by_key(edges, 0), keep);
    }
    loom_ds_name(links, "links");
    if (st == LOOM_OK && !nx) st = loom_ds_count(links, &n); /* built (and kept) before timing */
    double t0 = loom_wtime();
    int64_t first = 0, every = loom_opt_int(opts, "checkpoint-every");
    loom_ds_t *ranks = loom_ds_restore(e, "ranks", &first); /* --restart: iterations done */
    if (!ranks) {
        first = 0;
        ranks = loom_ds_name(loom_ds_map_values(links, initial, &start), "ranks");
    } else if (first > iters) {
        st = LOOM_ERROR(ctx, LOOM_ERR_USAGE, "the checkpoint has %lld iterations, --iters is %lld",
                        (long long)first, (long long)iters);
    }
    double *tick = nx ? calloc((size_t)iters, sizeof *tick) : NULL;
    for (int64_t i = first; i < iters && st == LOOM_OK; i++) {
        /* a stop request (SIGUSR1, SIGTERM) or the period: save the ranks, cutting lineage */
        int stop = i > first && loom_ds_stop_requested(e);
        if (stop || (every > 0 && i > first && i % every == 0)) {
            st = loom_ds_checkpoint(ranks, "ranks", i);
            if (st == LOOM_OK)
                loom_log(ctx, LOOM_LOG_INFO, "checkpoint of iteration %lld", (long long)i);
            if (st == LOOM_OK && stop) st = loom_ds_interrupted(e, i);
            if (st != LOOM_OK) break;
        }
        loom_ds_t *joined = loom_ds_join(links, ranks, 0);
        steps[i] = (step_t){nx ? (1 - d) / (double)n : 1 - d, d, 0};
        if (nx) { /* dangling rank, spread evenly: an action per iteration */
            double mass = 0;
            size_t len;
            int found;
            st = loom_ds_reduce(loom_ds_flat_map(joined, dangling_rank, NULL), loom_ds_sum_f64,
                                NULL, &mass, sizeof mass, &len, &found);
            steps[i].spread = mass / (double)n;
            if (tick) tick[i] = loom_wtime(); /* one iteration done in each of these actions */
        }
        loom_ds_t *sums =
            loom_ds_reduce_by_key(loom_ds_flat_map(joined, contributions, nx ? (void *)1 : NULL),
                                  loom_ds_sum_f64, NULL, 0);
        ranks = loom_ds_name(loom_ds_map_values(sums, update, &steps[i]), "ranks");
    }
    if (st == LOOM_OK)
        st = loom_ds_save(loom_ds_map(ranks, as_text, NULL), out, loom_opt_flag(opts, "overwrite"));
    /* the iterations and the save (Spark's convention runs them all in the save) */
    if (st == LOOM_OK && iters > first)
        loom_summary_double(ctx, "seconds_per_iteration",
                            (loom_wtime() - t0) / (double)(iters - first));
    /* networkx's convention runs an action per iteration: the first and the last ten
     * iterations' median times show whether an iteration's cost grows with the lineage */
    if (st == LOOM_OK && tick && iters - first >= 21) {
        double a[10], b[10];
        for (int k = 0; k < 10; k++) {
            a[k] = tick[first + 2 + k] - tick[first + 1 + k];
            b[k] = tick[iters - 10 + k] - tick[iters - 11 + k];
        }
        loom_summary_double(ctx, "iteration_s_first10", median10(a));
        loom_summary_double(ctx, "iteration_s_last10", median10(b));
    }
    free(tick);
    loom_summary_int(ctx, "iterations", iters);
    loom_summary_int(ctx, "links", (int64_t)n);
    loom_ds_engine_destroy(&e);
    free(steps);
    return st;
}

const loom_job_t loom_job_ds_pagerank = {
    .name = "ds-pagerank",
    .summary = "PageRank with datasets, as Spark's example (links.join(ranks), reduce_by_key)",
    .usage = "loom ds-pagerank GRAPH --out DIR [--iters N] [--convention spark|networkx]",
    .options = options,
    .run = run,
};
