/* `loom ds-logreg POINTS`: logistic regression by gradient descent on datasets, the program of
 * the RDD paper: the points are parsed once and persisted; every iteration is one reduce of
 * per-point gradients. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loom/loom.h"

static const loom_option_t options[] = {
    {"iters", LOOM_OPT_INT, "10", "iterations", NULL, 1, 1, 1e6},
    {"step", LOOM_OPT_DOUBLE, "1", "step: w -= step * gradient", NULL, 1, 0, 1e300},
    LOOM_DS_OPTION_ROWS,
    {NULL, LOOM_OPT_END, NULL, NULL, NULL, 0, 0, 0},
};

/* A point is [y, x1 .. xD]: the label (+1/-1) then the features. */
typedef struct model {
    int dim; /* D */
    double *w;
    uint64_t n;    /* gen: points */
    uint64_t seed; /* gen */
} model_t;

/* (1 / (1 + exp(-y w.x)) - 1) y x: the gradient of the logistic loss at one point. */
static loom_status_t gradient(const loom_ds_rec_t *p, loom_ds_out_t *out, void *user)
{
    const model_t *m = user;
    size_t n = p->vlen / 8;
    if (n != (size_t)m->dim + 1)
        return LOOM_ERROR(loom_ds_out_ctx(out), LOOM_ERR_FORMAT,
                          "%s: %zu numbers, a point is a label and %d features", loom_ds_where(out),
                          n, m->dim);
    double small[128], *x = 2 * n <= 128 ? small : malloc(2 * n * 8), *g = x + n;
    if (!x) return LOOM_ERROR(loom_ds_out_ctx(out), LOOM_ERR_NOMEM, "out of memory: a point");
    memcpy(x, p->val, n * 8); /* records are bytes: no alignment to rely on */
    double dot = 0;
    for (int j = 0; j < m->dim; j++)
        dot += m->w[j] * x[j + 1];
    double s = (1 / (1 + exp(-x[0] * dot)) - 1) * x[0];
    for (int j = 0; j < m->dim; j++)
        g[j] = s * x[j + 1];
    loom_status_t st = loom_ds_emit(out, "", 0, g, (size_t)m->dim * 8);
    if (x != small) free(x);
    return st;
}

/* gen:N:D[:SEED]: point i has label +1 or -1 (from a hash of i) and features uniform in
 * [-1, 1) shifted by 0.6 times the label, so that the classes overlap but separate. */
static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}

static loom_status_t generate(const loom_ds_rec_t *r, loom_ds_out_t *out, void *user)
{
    const model_t *m = user;
    uint64_t i = loom_ds_u64(r->key, r->klen);
    double small[64], *v = m->dim < 64 ? small : malloc((size_t)(m->dim + 1) * 8);
    if (!v) return LOOM_ERROR(loom_ds_out_ctx(out), LOOM_ERR_NOMEM, "out of memory: a point");
    v[0] = (mix(i ^ m->seed) & 1) ? 1.0 : -1.0;
    for (int j = 0; j < m->dim; j++) {
        uint64_t h = mix(m->seed + 0x9e3779b97f4a7c15ULL * (i * (uint64_t)(m->dim + 1) + j + 1));
        v[j + 1] = (double)(h >> 11) / 9007199254740992.0 * 2 - 1 + 0.6 * v[0];
    }
    loom_status_t st = loom_ds_emit(out, "", 0, v, (size_t)(m->dim + 1) * 8);
    if (v != small) free(v);
    return st;
}

static loom_status_t run(loom_ctx_t *ctx, const loom_opts_t *opts)
{
    if (loom_opts_nargs(opts) < 1)
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "ds-logreg: give the points (files or gen:N:D)");
    const char *first = loom_opts_arg(opts, 0);
    model_t m = {0};
    loom_ds_engine_t *e;
    LOOM_TRY(loom_ds_engine_from_opts(ctx, opts, NULL, &e));
    loom_ds_t *points;
    loom_status_t st = LOOM_OK;
    if (strncmp(first, "gen:", 4) == 0) {
        unsigned long long n = 0, seed = 1;
        int d = 0, k = sscanf(first, "gen:%llu:%d:%llu", &n, &d, &seed);
        if (k < 2 || n == 0 || n > (1ULL << 40) || d < 1 || d > 10000)
            st = LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                            "%s: expected gen:N:D[:SEED] with 1 <= N <= 2^40, 1 <= D <= 10000",
                            first);
        m.dim = d;
        m.n = n;
        m.seed = seed;
        points = loom_ds_map(loom_ds_range(e, n, 0), generate, &m);
    } else {
        int dim = 0;
        const char **in = malloc((size_t)loom_opts_nargs(opts) * sizeof *in);
        for (int i = 0; in && i < loom_opts_nargs(opts); i++)
            in[i] = loom_opts_arg(opts, i);
        points = in ? loom_ds_text_vectors(e, in, loom_opts_nargs(opts), &dim) : NULL;
        free(in);
        m.dim = dim - 1;
        if (dim == 1)
            st = LOOM_ERROR(ctx, LOOM_ERR_FORMAT, "%s: a point needs a label and features", first);
    }
    if (st == LOOM_OK && m.dim >= 1) {
        m.w = calloc((size_t)m.dim, sizeof *m.w); /* w starts at 0 */
        if (!m.w) st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    }
    st = loom_agree(ctx, loom_comm(ctx), st);
    loom_ds_persist(points);
    double step = loom_opt_double(opts, "step");
    int64_t iters = loom_opt_int(opts, "iters");
    double *g = st == LOOM_OK ? malloc((size_t)m.dim * sizeof *g) : NULL;
    double *secs = calloc((size_t)iters, sizeof *secs);
    for (int64_t it = 0; it < iters && st == LOOM_OK; it++) {
        double t0 = loom_wtime();
        size_t len = 0;
        int found = 0;
        st = loom_ds_reduce(loom_ds_map(points, gradient, &m), loom_ds_sum_f64v, NULL, g,
                            (size_t)m.dim * sizeof *g, &len, &found);
        double norm = 0;
        for (int j = 0; st == LOOM_OK && found && j < m.dim; j++) {
            m.w[j] -= step * g[j];
            norm += fabs(g[j]);
        }
        if (st == LOOM_OK)
            loom_log(ctx, LOOM_LOG_INFO, "iteration %lld: |gradient|_1 = %.6g", (long long)it + 1,
                     norm);
        if (secs) secs[it] = loom_wtime() - t0;
    }
    if (st == LOOM_OK && loom_is_master(ctx))
        for (int j = 0; j < m.dim; j++)
            printf("weight %d %.17g\n", j, m.w[j]);
    if (st == LOOM_OK && secs) { /* the median iteration (the first also parses the points) */
        for (int64_t i = 1; i < iters; i++)
            for (int64_t j = i; j > 0 && secs[j - 1] > secs[j]; j--) {
                double t = secs[j];
                secs[j] = secs[j - 1];
                secs[j - 1] = t;
            }
        loom_summary_double(ctx, "seconds_per_iteration", secs[iters / 2]);
    }
    free(secs);
    loom_summary_int(ctx, "iterations", iters);
    loom_summary_int(ctx, "dimensions", m.dim);
    loom_ds_engine_destroy(&e);
    free(g);
    free(m.w);
    return st;
}

const loom_job_t loom_job_ds_logreg = {
    .name = "ds-logreg",
    .summary = "logistic regression by gradient descent on datasets (the RDD paper's program)",
    .usage = "loom ds-logreg POINTS... [--iters N] [--step S]   (POINTS: files of 'y x1 .. xD' "
             "lines, or gen:N:D[:SEED])",
    .options = options,
    .run = run,
};
