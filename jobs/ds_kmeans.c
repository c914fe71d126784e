/* `loom ds-kmeans POINTS --k K`: Lloyd's algorithm on datasets, as Spark's example writes it:
 * each point keyed by its closest centre, reduce_by_key sums points and counts, the new
 * centres are taken back to every rank. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loom/loom.h"

static const loom_option_t options[] = {
    {"k", LOOM_OPT_INT, "2",
     "clusters (the first K points are the initial centres, unless "
     "--centers)",
     NULL, 1, 1, 1e6},
    {"centers", LOOM_OPT_STRING, NULL, "file of initial centres, one per line", NULL, 0, 0, 0},
    {"iters", LOOM_OPT_INT, "10", "iterations", NULL, 1, 1, 1e6},
    LOOM_DS_OPTION_ROWS,
    {NULL, LOOM_OPT_END, NULL, NULL, NULL, 0, 0, 0},
};

typedef struct centres {
    int k, dim, have;
    double *c; /* k x dim */
} centres_t;

/* (index of the closest centre, [x1 .. xD, 1]): the lowest index wins a tie. */
static loom_status_t closest(const loom_ds_rec_t *p, loom_ds_out_t *out, void *user)
{
    const centres_t *c = user;
    int dim = c->dim;
    double small[64], *x = dim < 64 ? small : malloc((size_t)(dim + 1) * 8);
    if (!x) return LOOM_ERROR(loom_ds_out_ctx(out), LOOM_ERR_NOMEM, "out of memory: a point");
    memcpy(x, p->val, (size_t)dim * 8);
    uint64_t best = 0;
    double bestd = 0;
    for (int i = 0; i < c->k; i++) {
        double d = 0;
        for (int j = 0; j < dim; j++) {
            double t = x[j] - c->c[(size_t)i * dim + j];
            d += t * t;
        }
        if (i == 0 || d < bestd) {
            best = (uint64_t)i;
            bestd = d;
        }
    }
    x[dim] = 1;
    loom_status_t st = loom_ds_emit(out, &best, 8, x, (size_t)(dim + 1) * 8);
    if (x != small) free(x);
    return st;
}

/* take: the initial centres (in file order) */
static loom_status_t add_centre(const loom_ds_rec_t *r, void *user)
{
    centres_t *c = user;
    if (c->have < c->k) memcpy(c->c + (size_t)c->have * c->dim, r->val, (size_t)c->dim * 8);
    c->have++;
    return LOOM_OK;
}

/* take: a new centre = sum / count; a cluster without points keeps its centre */
static loom_status_t new_centre(const loom_ds_rec_t *r, void *user)
{
    centres_t *c = user;
    uint64_t i = loom_ds_u64(r->key, r->klen);
    double count;
    memcpy(&count, (const char *)r->val + (size_t)c->dim * 8, 8);
    for (int j = 0; j < c->dim && i < (uint64_t)c->k; j++) {
        double s;
        memcpy(&s, (const char *)r->val + (size_t)j * 8, 8);
        c->c[i * (uint64_t)c->dim + (uint64_t)j] = s / count;
    }
    return LOOM_OK;
}

static loom_status_t run(loom_ctx_t *ctx, const loom_opts_t *opts)
{
    int n = loom_opts_nargs(opts);
    if (n < 1) return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "ds-kmeans: give the points (files)");
    const char **in = malloc((size_t)n * sizeof *in);
    if (!in) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++)
        in[i] = loom_opts_arg(opts, i);
    centres_t c = {.k = (int)loom_opt_int(opts, "k")};
    loom_ds_engine_t *e;
    loom_status_t st = loom_ds_engine_from_opts(ctx, opts, NULL, &e);
    if (st != LOOM_OK) {
        free(in);
        return st;
    }
    loom_ds_t *points = loom_ds_persist(loom_ds_text_vectors(e, in, n, &c.dim));
    free(in);
    c.c = calloc((size_t)c.k * (size_t)(c.dim ? c.dim : 1), sizeof *c.c);
    if (!c.c) st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory: centres");
    st = loom_agree(ctx, loom_comm(ctx), st);
    const char *cf = loom_opt_string(opts, "centers");
    if (st == LOOM_OK && cf) {
        int cdim = 0;
        loom_ds_t *given = loom_ds_text_vectors(e, &cf, 1, &cdim);
        st = loom_ds_take(given, (uint64_t)c.k, add_centre, &c);
        if (st == LOOM_OK && cdim != c.dim)
            st = LOOM_ERROR(ctx, LOOM_ERR_FORMAT, "%s: centres of %d numbers, points of %d", cf,
                            cdim, c.dim);
    } else if (st == LOOM_OK) {
        st = loom_ds_take(points, (uint64_t)c.k, add_centre, &c);
    }
    if (st == LOOM_OK && c.have < c.k)
        st = LOOM_ERROR(ctx, LOOM_ERR_FORMAT, "%s: %d initial centres, --k is %d",
                        cf ? cf : "points", c.have, c.k);
    st = loom_agree(ctx, loom_comm(ctx), st);
    int64_t iters = loom_opt_int(opts, "iters");
    for (int64_t it = 0; it < iters && st == LOOM_OK; it++) {
        loom_ds_t *sums =
            loom_ds_reduce_by_key(loom_ds_map(points, closest, &c), loom_ds_sum_f64v, NULL, 0);
        st = loom_ds_take(sums, (uint64_t)c.k, new_centre, &c);
    }
    if (st == LOOM_OK && loom_is_master(ctx))
        for (int i = 0; i < c.k; i++) {
            printf("center %d", i);
            for (int j = 0; j < c.dim; j++)
                printf(" %.17g", c.c[(size_t)i * c.dim + j]);
            printf("\n");
        }
    loom_summary_int(ctx, "iterations", iters);
    loom_ds_engine_destroy(&e);
    free(c.c);
    return st;
}

const loom_job_t loom_job_ds_kmeans = {
    .name = "ds-kmeans",
    .summary = "k-means (Lloyd's algorithm) on datasets, fixed iterations",
    .usage = "loom ds-kmeans POINTS... [--k K | --centers FILE] [--iters N]   (POINTS: files of "
             "'x1 .. xD' lines)",
    .options = options,
    .run = run,
};
