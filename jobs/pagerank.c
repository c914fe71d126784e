/* `loom pagerank GRAPH`: PageRank as a Pregel vertex program (networkx's definition by default). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loom/loom.h"
#include "loom/pregel.h"

/* The graph is taken as given: a duplicate edge is a parallel arc and carries
 * rank in proportion (a multigraph, like networkx.MultiDiGraph), a self-loop
 * keeps rank at its vertex; --drop-duplicates / --drop-self-loops change that.
 * Edge weights are ignored. */
static const loom_option_t options[] = {
    LOOM_GRAPH_OPTION_ROWS,
    {"damping", LOOM_OPT_DOUBLE, "0.85", "damping factor", NULL, 1, 0, 1},
    {"iters", LOOM_OPT_INT, "0", "run exactly N iterations (0: until --tol)", NULL, 1, 0, 1e9},
    {"tol", LOOM_OPT_DOUBLE, "1e-4", "stop when the L1 change of an iteration is below T", NULL, 1,
     0, 1e300},
    {"max-iters", LOOM_OPT_INT, "100", "at most N iterations with --tol", NULL, 1, 1, 1e9},
    {"dangling", LOOM_OPT_CHOICE, "redistribute",
     "rank of vertices without out-arcs: redistribute (networkx) or ignore (GAP)",
     "redistribute|ignore", 0, 0, 0},
    {"out", LOOM_OPT_STRING, NULL, "write scores: .h5 dataset /pagerank, else vertex<TAB>score",
     NULL, 0, 0, 0},
    {"top", LOOM_OPT_INT, "0", "print the N highest-ranked vertices (rank, vertex, score)", NULL, 1,
     0, 1e6},
    LOOM_PREGEL_OPTIONS,
    {NULL, LOOM_OPT_END, NULL, NULL, NULL, 0, 0, 0},
};

enum { AGG_DANGLING = 0, AGG_RESIDUAL = 1 };

typedef struct pr {
    double d, inv_n, tol;
    int redistribute;
    int64_t iters, max_iters;
    /* Written by the master compute only (rank 0, one thread). */
    int64_t done;
    double residual;
} pr_t;

static void pr_init(loom_vertex_t *v, void *user)
{
    *(double *)v->value = ((const pr_t *)user)->inv_n;
}

/* Superstep s > 0 finishes iteration s from the contributions sent in s - 1;
 * every superstep then sends each vertex's share along its out-arcs. A block
 * of vertices per call: the loop below is the whole per-vertex cost. */
static void pr_block(loom_vertex_block_t *b, void *user)
{
    const pr_t *p = user;
    double *x = b->values, *out = b->out;
    const double *sum = b->msgs;
    const uint8_t *has = b->has;
    const uint64_t *off = b->out_off;
    uint8_t *sent = b->sent;
    const size_t n = b->count;
    /* the update, as (1 - d)/n + d (sum + dangling/n), in branch-free loops
     * the compiler vectorises (the sums may be reassociated: simd reductions) */
    const double base = (1.0 - p->d) * p->inv_n, d = p->d;
    const double dang_in = (p->redistribute ? b->aggregated[AGG_DANGLING] : 0.0) * p->inv_n;
    double residual = 0.0, dangling = 0.0;
    if (b->superstep > 0) {
#pragma omp simd reduction(+ : residual)
        for (size_t i = 0; i < n; i++) {
            double nx = base + d * ((has[i] ? sum[i] : 0.0) + dang_in);
            residual += fabs(nx - x[i]);
            x[i] = nx;
        }
    }
#pragma omp simd reduction(+ : dangling)
    for (size_t i = 0; i < n; i++) {
        double deg = (double)(off[i + 1] - off[i]);
        out[i] = x[i] / (deg > 0 ? deg : 1.0);
        sent[i] = deg > 0;
        dangling += deg > 0 ? 0.0 : x[i];
    }
    b->aggs[AGG_RESIDUAL] += residual;
    b->aggs[AGG_DANGLING] += dangling;
}

static int pr_master(const loom_pregel_step_t *s, double *aggs, void *user)
{
    pr_t *p = user;
    if (s->superstep == 0) return 0;
    p->done = s->superstep;
    p->residual = aggs[AGG_RESIDUAL];
    if (p->iters > 0) return s->superstep >= p->iters;
    return aggs[AGG_RESIDUAL] < p->tol || s->superstep >= p->max_iters;
}

/* ---------------------------------------------------------------- top K */

typedef struct scored {
    double score;
    uint64_t id;
} scored_t;

/* Higher score first; equal scores by smaller id. */
static int better(const scored_t *a, const scored_t *b)
{
    return a->score > b->score || (a->score == b->score && a->id < b->id);
}

static int cmp_scored(const void *a, const void *b)
{
    return better(a, b) ? -1 : better(b, a) ? 1 : 0;
}

/* Keep the k best of this rank's values in a min-heap (worst at the root). */
static size_t local_top(const double *x, uint64_t lo, uint64_t n, size_t k, scored_t *heap)
{
    size_t len = 0;
    for (uint64_t i = 0; i < n; i++) {
        scored_t s = {x[i], lo + i};
        size_t j;
        if (len < k) {
            j = len++;
            while (j > 0 && better(&heap[(j - 1) / 2], &s)) {
                heap[j] = heap[(j - 1) / 2];
                j = (j - 1) / 2;
            }
            heap[j] = s;
        } else if (k > 0 && better(&s, &heap[0])) {
            j = 0;
            for (;;) {
                size_t c = 2 * j + 1;
                if (c >= len) break;
                if (c + 1 < len && better(&heap[c], &heap[c + 1])) c++;
                if (!better(&s, &heap[c])) break;
                heap[j] = heap[c];
                j = c;
            }
            heap[j] = s;
        }
    }
    return len;
}

static loom_status_t print_top(loom_ctx_t *ctx, const loom_graph_t *g, const double *x, size_t k)
{
    int size = loom_size(ctx);
    scored_t *mine = calloc(k ? k : 1, sizeof *mine), *all = NULL;
    int *cnt = calloc((size_t)size * 2, sizeof *cnt);
    loom_status_t st = LOOM_OK;
    if (!mine || !cnt) st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory for --top");
    st = loom_agree(ctx, loom_comm(ctx), st);
    if (st != LOOM_OK) goto out;
    int len = (int)local_top(x, g->lo, loom_graph_local_vertices(g), k, mine) * (int)sizeof *mine;
    LOOM_MPI_GOTO(ctx, st, MPI_Gather(&len, 1, MPI_INT, cnt, 1, MPI_INT, 0, loom_comm(ctx)), out);
    int total = 0;
    if (loom_is_master(ctx)) {
        for (int r = 0; r < size; r++) {
            cnt[size + r] = total;
            total += cnt[r];
        }
        all = malloc(total ? (size_t)total : 1);
        if (!all) st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory for --top");
    }
    st = loom_agree(ctx, loom_comm(ctx), st);
    if (st != LOOM_OK) goto out;
    LOOM_MPI_GOTO(
        ctx, st,
        MPI_Gatherv(mine, len, MPI_BYTE, all, cnt, cnt + size, MPI_BYTE, 0, loom_comm(ctx)), out);
    if (loom_is_master(ctx)) {
        size_t n = (size_t)total / sizeof *all;
        qsort(all, n, sizeof *all, cmp_scored);
        for (size_t i = 0; i < n && i < k; i++)
            printf("%zu\t%llu\t%.10g\n", i + 1, (unsigned long long)all[i].id, all[i].score);
        fflush(stdout);
    }
out:
    free(mine);
    free(all);
    free(cnt);
    return st;
}

/* ---------------------------------------------------------------- the command */

static loom_status_t run(loom_ctx_t *ctx, const loom_opts_t *opts)
{
    const char *spec = loom_opts_arg(opts, 0);
    if (!spec || loom_opts_nargs(opts) != 1)
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                          "pagerank needs one graph (a file or a spec like kron:16)");
    LOOM_TRY(loom_pregel_check_options(ctx, opts, spec));
    loom_graph_t *g = NULL;
    LOOM_TRY(loom_graph_load(ctx, spec, opts, LOOM_LOAD_IN_EDGES, &g));

    pr_t p = {
        .d = loom_opt_double(opts, "damping"),
        .inv_n = g->num_vertices ? 1.0 / (double)g->num_vertices : 0.0,
        .tol = loom_opt_double(opts, "tol"),
        .redistribute = strcmp(loom_opt_string(opts, "dangling"), "ignore") != 0,
        .iters = loom_opt_int(opts, "iters"),
        .max_iters = loom_opt_int(opts, "max-iters"),
    };
    /* what shapes the scores (not when to stop: a restart may run longer) */
    char params[128];
    snprintf(params, sizeof params, "damping=%.17g dangling=%s", p.d,
             p.redistribute ? "redistribute" : "ignore");
    loom_pregel_program_t prog = {
        .name = "pagerank",
        .value_size = sizeof(double),
        .msg_size = sizeof(double),
        .combiner = LOOM_COMBINE_SUM_F64,
        .naggs = 2,
        .aggs = {LOOM_AGG_SUM, LOOM_AGG_SUM},
        .agg_names = {"dangling", "residual"},
        .init = pr_init,
        .compute_block = pr_block,
        .master = pr_master,
        .user = &p,
        .params = params,
    };
    loom_pregel_t *pg = NULL;
    loom_status_t st = loom_pregel_create(ctx, g, &prog, &pg);
    if (st == LOOM_OK) st = loom_agree(ctx, loom_comm(ctx), loom_pregel_configure(pg, opts));
    /* the exchange's set-up is timed apart ("pregel-setup"): seconds per
     * iteration are the supersteps' alone, as other systems report theirs */
    if (st == LOOM_OK) st = loom_pregel_prepare(pg);
    double t0 = loom_wtime();
    if (st == LOOM_OK) {
        loom_timer_start(ctx, "pagerank");
        st = loom_pregel_run(pg);
        loom_timer_stop(ctx, "pagerank");
    }
    double secs = loom_wtime() - t0;
    const double *x = st == LOOM_OK ? loom_pregel_values(pg) : NULL;
    double loc = 0.0, sum = 0.0;
    if (st == LOOM_OK) {
        for (uint64_t i = 0; i < loom_graph_local_vertices(g); i++)
            loc += x[i];
        LOOM_MPI_KEEP(ctx, st, MPI_Reduce(&loc, &sum, 1, MPI_DOUBLE, MPI_SUM, 0, loom_comm(ctx)));
        LOOM_MPI_KEEP(ctx, st, MPI_Bcast(&p.done, 1, MPI_INT64_T, 0, loom_comm(ctx)));
    }
    if (st == LOOM_OK) {
        loom_summary_int(ctx, "iterations", p.done);
        loom_summary_double(ctx, "residual", p.residual);
        loom_summary_double(ctx, "score_sum", sum);
        loom_summary_string(ctx, "dangling", p.redistribute ? "redistribute" : "ignore");
        if (p.done > 0) {
            /* Superstep 0 only sends; the N iterations are N sweeps. */
            loom_summary_double(ctx, "seconds_per_iteration", secs / (double)p.done);
            loom_summary_double(ctx, "arcs_per_second",
                                (double)g->num_arcs * (double)p.done / (secs > 0 ? secs : 1e-9));
        }
        loom_log(ctx, LOOM_LOG_INFO, "pagerank: %lld iterations, residual %.3g, sum %.12g, %.3f s",
                 (long long)p.done, p.residual, sum, secs);
    }
    const char *out = loom_opt_string(opts, "out");
    if (st == LOOM_OK && out) {
        loom_timer_start(ctx, "write");
        st = loom_write_vertex_values(ctx, g, out, "pagerank", x);
        loom_timer_stop(ctx, "write");
    }
    int64_t k = loom_opt_int(opts, "top");
    if (st == LOOM_OK && k > 0) st = print_top(ctx, g, x, (size_t)k);
    loom_pregel_destroy(&pg);
    loom_graph_destroy(&g);
    return st;
}

const loom_job_t loom_job_pagerank = {
    .name = "pagerank",
    .summary = "PageRank scores (Pregel vertex program)",
    .usage = "loom pagerank GRAPH [options]   (GRAPH: a file, or kron:S / urand:S)",
    .options = options,
    .run = run,
};
