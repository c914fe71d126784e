/* The Pregel engine on every rank: exchanges, combiners and checkpoints agree with a serial
 * reference. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loom/pregel.h"
#include "loom_test.h"

static const loom_option_t table[] = {
    LOOM_PREGEL_OPTIONS,
    {NULL, LOOM_OPT_END, NULL, NULL, NULL, 0, 0, 0},
};

static loom_graph_t *G;
static uint64_t *all_src, *all_dst, M; /* every arc, on every rank */

static loom_opts_t *parse(const char *a1, const char *a2, const char *a3, const char *a4)
{
    char *argv[6] = {"test", (char *)a1, (char *)a2, (char *)a3, (char *)a4, NULL};
    int argc = 1;
    while (argc < 5 && argv[argc])
        argc++;
    loom_opts_t *o = NULL;
    CU_ASSERT_FATAL(loom_opts_parse(loom_test_ctx, table, argc, argv, &o) == LOOM_OK);
    return o;
}

/* Allgather one double per vertex into `out` (n entries). */
static void gather_values(const double *loc, double *out)
{
    int size = loom_size(loom_test_ctx);
    int *cnt = malloc(2 * (size_t)size * sizeof *cnt), *dis = cnt + size;
    for (int r = 0; r < size; r++) {
        cnt[r] = (int)(G->part[r + 1] - G->part[r]);
        dis[r] = (int)G->part[r];
    }
    MPI_Allgatherv(loc, (int)(G->hi - G->lo), MPI_DOUBLE, out, cnt, dis, MPI_DOUBLE,
                   loom_comm(loom_test_ctx));
    free(cnt);
}

static void setup_graph(void)
{
    loom_ctx_t *ctx = loom_test_ctx;
    loom_edge_source_t *src = NULL;
    CU_ASSERT_FATAL(loom_source_open(ctx, "kron:9:8:3", LOOM_FMT_AUTO, &src) == LOOM_OK);
    loom_build_opts_t b = {.want_in_edges = 1};
    CU_ASSERT_FATAL(loom_graph_build(ctx, src, &b, &G) == LOOM_OK);
    loom_source_destroy(&src);
    /* Every rank gets the whole arc list for the serial references. */
    int size = loom_size(ctx);
    uint64_t mine = loom_graph_local_arcs(G);
    uint64_t *counts = malloc((size_t)size * sizeof *counts);
    MPI_Allgather(&mine, 1, MPI_UINT64_T, counts, 1, MPI_UINT64_T, loom_comm(ctx));
    int *cnt = malloc(2 * (size_t)size * sizeof *cnt), *dis = cnt + size;
    M = 0;
    for (int r = 0; r < size; r++) {
        cnt[r] = (int)counts[r];
        dis[r] = (int)M;
        M += counts[r];
    }
    uint64_t *ls = malloc((mine ? mine : 1) * sizeof *ls);
    for (uint64_t i = 0; i < G->hi - G->lo; i++)
        for (uint64_t e = G->out_off[i]; e < G->out_off[i + 1]; e++)
            ls[e] = G->lo + i;
    all_src = malloc(M * sizeof *all_src);
    all_dst = malloc(M * sizeof *all_dst);
    MPI_Allgatherv(ls, (int)mine, MPI_UINT64_T, all_src, cnt, dis, MPI_UINT64_T, loom_comm(ctx));
    MPI_Allgatherv(G->out_dst, (int)mine, MPI_UINT64_T, all_dst, cnt, dis, MPI_UINT64_T,
                   loom_comm(ctx));
    free(ls);
    free(cnt);
    free(counts);
}

/* ---------------------------------------------------------------- PageRank */

static void pr_init(loom_vertex_t *v, void *u)
{
    *(double *)v->value = 1.0 / (double)loom_vertex_num_vertices(v);
}

static void pr_compute(loom_vertex_t *v, const void *msgs, size_t nm, void *u)
{
    double *x = v->value, n = (double)loom_vertex_num_vertices(v);
    if (v->superstep > 0) {
        double s = 0;
        if (nm) memcpy(&s, msgs, 8);
        *x = 0.15 / n + 0.85 * (s + loom_vertex_aggregated(v, 0) / n);
    }
    uint64_t d = loom_vertex_out_degree(v);
    if (d) {
        double c = *x / (double)d;
        loom_vertex_send_all(v, &c);
    } else {
        loom_vertex_aggregate(v, 0, *x);
    }
}

static const loom_pregel_program_t pr_prog = {.name = "pr",
                                              .value_size = 8,
                                              .msg_size = 8,
                                              .combiner = LOOM_COMBINE_SUM_F64,
                                              .naggs = 1,
                                              .aggs = {LOOM_AGG_SUM},
                                              .init = pr_init,
                                              .compute = pr_compute};

/* The same program through compute_block: one call per block of vertices. */
static void pr_block(loom_vertex_block_t *b, void *u)
{
    double *x = b->values, *out = b->out, n = (double)G->num_vertices;
    const double *m = b->msgs;
    for (size_t i = 0; i < b->count; i++) {
        if (b->superstep > 0)
            x[i] = 0.15 / n + 0.85 * ((b->has[i] ? m[i] : 0) + b->aggregated[0] / n);
        uint64_t d = b->out_off[i + 1] - b->out_off[i];
        if (d) {
            out[i] = x[i] / (double)d;
            b->sent[i] = 1;
        } else {
            b->aggs[0] += x[i];
        }
    }
}

/* pr_prog with compute_block in place of compute. */
static loom_pregel_program_t block_prog(void)
{
    loom_pregel_program_t p = pr_prog;
    p.name = "pr-block";
    p.compute = NULL;
    p.compute_block = pr_block;
    return p;
}

static double *run_prog(const loom_pregel_program_t *prog, loom_opts_t *o)
{
    loom_pregel_t *pg = NULL;
    CU_ASSERT_FATAL(loom_pregel_create(loom_test_ctx, G, prog, &pg) == LOOM_OK);
    CU_ASSERT_FATAL(loom_pregel_configure(pg, o) == LOOM_OK);
    loom_status_t st = loom_pregel_run(pg);
    if (st != LOOM_OK) fprintf(stderr, "run failed: %s\n", loom_error_message(loom_test_ctx));
    CU_ASSERT_FATAL(st == LOOM_OK);
    double *all = malloc(G->num_vertices * sizeof *all);
    gather_values(loom_pregel_values(pg), all);
    loom_pregel_destroy(&pg);
    return all;
}

/* compute_block without a combiner has no single message per vertex: refused. */
static void test_block_needs_combiner(void)
{
    loom_pregel_program_t p = block_prog();
    p.combiner = LOOM_COMBINE_NONE;
    loom_pregel_t *pg = NULL;
    CU_ASSERT_EQUAL(loom_pregel_create(loom_test_ctx, G, &p, &pg), LOOM_ERR_USAGE);
    CU_ASSERT_PTR_NULL(pg);
    loom_error_clear(loom_test_ctx);
}

static double *run_pr(loom_opts_t *o)
{
    return run_prog(&pr_prog, o);
}

static void test_pagerank_exchanges(void)
{
    uint64_t n = G->num_vertices;
    /* 15 supersteps = 14 iterations. */
    loom_opts_t *od = parse("--max-supersteps", "15", "--exchange", "dense");
    loom_opts_t *os = parse("--max-supersteps", "15", "--exchange", "sparse");
    loom_opts_t *on = parse("--max-supersteps", "15", "--pull-order", "natural");
    double *xd = run_pr(od), *xs = run_pr(os), *xn = run_pr(on);
    const loom_pregel_program_t bp = block_prog();
    double *bd = run_prog(&bp, od), *bs = run_prog(&bp, os);
    double *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
    uint64_t *deg = calloc(n, sizeof *deg);
    for (uint64_t e = 0; e < M; e++)
        deg[all_src[e]]++;
    for (uint64_t v = 0; v < n; v++)
        x[v] = 1.0 / (double)n;
    for (int it = 0; it < 14; it++) {
        double dang = 0;
        for (uint64_t v = 0; v < n; v++) {
            y[v] = 0;
            if (!deg[v]) dang += x[v];
        }
        for (uint64_t e = 0; e < M; e++)
            y[all_dst[e]] += x[all_src[e]] / (double)deg[all_src[e]];
        for (uint64_t v = 0; v < n; v++)
            x[v] = 0.15 / (double)n + 0.85 * (y[v] + dang / (double)n);
    }
    double worst = 0;
    for (uint64_t v = 0; v < n; v++) {
        worst = fmax(worst, fabs(xd[v] - x[v]));
        worst = fmax(worst, fabs(xs[v] - x[v]));
        worst = fmax(worst, fabs(xn[v] - x[v]));
        worst = fmax(worst, fabs(bd[v] - x[v]));
        worst = fmax(worst, fabs(bs[v] - x[v]));
        /* the block form folds exactly as the per-vertex one */
        CU_ASSERT_EQUAL(bd[v], xd[v]);
    }
    CU_ASSERT(worst < 1e-12);
    free(x), free(y), free(deg), free(xd), free(xs), free(xn), free(bd), free(bs);
    loom_opts_destroy(&od), loom_opts_destroy(&os), loom_opts_destroy(&on);
}

/* ---------------------------------------------------------------- reachability labels */

static void lab_init(loom_vertex_t *v, void *u)
{
    *(double *)v->value = (double)v->id;
}

static void lab_compute(loom_vertex_t *v, const void *msgs, size_t nm, void *u)
{
    double *l = v->value;
    int ch = v->superstep == 0;
    for (size_t i = 0; i < nm; i++) {
        double m;
        memcpy(&m, (const char *)msgs + 8 * i, 8);
        if (m < *l) *l = m, ch = 1;
    }
    if (ch) loom_vertex_send_all(v, l);
    loom_vertex_vote_halt(v);
}

static void test_labels(void)
{
    uint64_t n = G->num_vertices;
    double *ref = malloc(n * sizeof *ref), *all = malloc(n * sizeof *all);
    for (uint64_t v = 0; v < n; v++)
        ref[v] = (double)v;
    for (int ch = 1; ch;) {
        ch = 0;
        for (uint64_t e = 0; e < M; e++)
            if (ref[all_src[e]] < ref[all_dst[e]]) ref[all_dst[e]] = ref[all_src[e]], ch = 1;
    }
    const loom_pregel_combiner_t combs[] = {LOOM_COMBINE_MIN_F64, LOOM_COMBINE_NONE};
    for (int c = 0; c < 2; c++) {
        loom_pregel_program_t p = {.name = "lab",
                                   .value_size = 8,
                                   .msg_size = 8,
                                   .combiner = combs[c],
                                   .init = lab_init,
                                   .compute = lab_compute};
        loom_pregel_t *pg = NULL;
        CU_ASSERT_FATAL(loom_pregel_create(loom_test_ctx, G, &p, &pg) == LOOM_OK);
        CU_ASSERT_FATAL(loom_pregel_run(pg) == LOOM_OK);
        gather_values(loom_pregel_values(pg), all);
        int bad = 0;
        for (uint64_t v = 0; v < n; v++)
            bad += all[v] != ref[v];
        CU_ASSERT_EQUAL(bad, 0);
        loom_pregel_destroy(&pg);
    }
    free(ref);
    free(all);
}

/* ---------------------------------------------------------------- checkpoints */

static void test_checkpoint_restart(void)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/pregel-ckpt", loom_test_tmpdir());
    loom_opts_t *ref = parse("--max-supersteps", "12", NULL, NULL);
    double *x = run_pr(ref);
    /* Run 7 supersteps writing checkpoints every 3 (at 3 and 6), then resume
     * from the newest (6) and run to 12. */
    char *argv[] = {"test", "--max-supersteps", "7", "--checkpoint-every",
                    "3",    "--checkpoint-dir", dir};
    loom_opts_t *first = NULL;
    CU_ASSERT_FATAL(loom_opts_parse(loom_test_ctx, table, 7, argv, &first) == LOOM_OK);
    free(run_pr(first));
    loom_opts_t *again = parse("--max-supersteps", "12", "--restart", dir);
    loom_pregel_t *pg = NULL;
    CU_ASSERT_FATAL(loom_pregel_create(loom_test_ctx, G, &pr_prog, &pg) == LOOM_OK);
    CU_ASSERT_FATAL(loom_pregel_configure(pg, again) == LOOM_OK);
    CU_ASSERT_FATAL(loom_pregel_run(pg) == LOOM_OK);
    CU_ASSERT_EQUAL(loom_pregel_supersteps(pg), 12);
    double *y = malloc(G->num_vertices * sizeof *y);
    gather_values(loom_pregel_values(pg), y);
    double worst = 0;
    for (uint64_t v = 0; v < G->num_vertices; v++)
        worst = fmax(worst, fabs(x[v] - y[v]));
    if (worst != 0.0) {
        int bad = 0;
        for (uint64_t v = 0; v < G->num_vertices; v++)
            bad += x[v] != y[v];
        fprintf(stderr, "[r%d] restart differs: %d vertices, worst %g\n", loom_rank(loom_test_ctx),
                bad, worst);
    }
    CU_ASSERT(worst == 0.0);
    loom_pregel_destroy(&pg);
    free(x), free(y);
    loom_opts_destroy(&ref), loom_opts_destroy(&first), loom_opts_destroy(&again);
}

static void test_teardown(void)
{
    loom_graph_destroy(&G);
    free(all_src);
    free(all_dst);
}

static void register_suites(void)
{
    static const CU_TestInfo tests[] = {
        {"setup", setup_graph},
        {"pagerank_dense_sparse_natural", test_pagerank_exchanges},
        {"labels_combined_and_raw", test_labels},
        {"block_needs_combiner", test_block_needs_combiner},
        {"checkpoint_restart", test_checkpoint_restart},
        {"teardown", test_teardown},
        {NULL, NULL},
    };
    loom_test_suite("pregel_engine_mpi", tests);
}

int main(int argc, char **argv)
{
    return loom_test_main(argc, argv, register_suites);
}
