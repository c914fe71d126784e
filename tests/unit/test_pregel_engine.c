/* Unit tests of the Pregel engine on small graphs built by hand on one rank. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "loom/pregel.h"
#include "loom_test.h"

/* A directed graph with a dangling vertex (5), a self-loop (3->3), a cycle
 * and an isolated vertex (6). */
#define N 7
static const uint64_t arcs[][2] = {{0, 1}, {0, 2}, {1, 2}, {2, 0}, {3, 3},
                                   {3, 2}, {3, 5}, {4, 0}, {4, 5}, {1, 5}};
#define M (sizeof arcs / sizeof arcs[0])

typedef struct {
    loom_graph_t g;
    uint64_t part[2], out_off[N + 1], out_dst[M], in_off[N + 1], in_src[M];
    double out_w[M];
} hand_graph_t;

/* Build out- and in-CSR with sorted adjacency, as the foundation's builder
 * would for one rank. */
static void hand_graph(hand_graph_t *h, int weighted)
{
    memset(h, 0, sizeof *h);
    for (size_t e = 0; e < M; e++) {
        h->out_off[arcs[e][0] + 1]++;
        h->in_off[arcs[e][1] + 1]++;
    }
    for (int v = 0; v < N; v++) {
        h->out_off[v + 1] += h->out_off[v];
        h->in_off[v + 1] += h->in_off[v];
    }
    uint64_t fo[N], fi[N];
    memcpy(fo, h->out_off, sizeof fo);
    memcpy(fi, h->in_off, sizeof fi);
    /* Insert in (src, dst) order so both sides come out sorted. */
    for (uint64_t u = 0; u < N; u++)
        for (uint64_t v = 0; v < N; v++)
            for (size_t e = 0; e < M; e++)
                if (arcs[e][0] == u && arcs[e][1] == v) {
                    h->out_w[fo[u]] = 1.0 + (double)((u + v) % 3);
                    h->out_dst[fo[u]++] = v;
                }
    for (uint64_t v = 0; v < N; v++)
        for (uint64_t u = 0; u < N; u++)
            for (size_t e = 0; e < M; e++)
                if (arcs[e][0] == u && arcs[e][1] == v) h->in_src[fi[v]++] = u;
    h->part[0] = 0;
    h->part[1] = N;
    h->g = (loom_graph_t){.num_vertices = N,
                          .num_arcs = M,
                          .directed = 1,
                          .weighted = weighted,
                          .nparts = 1,
                          .part = h->part,
                          .lo = 0,
                          .hi = N,
                          .out_off = h->out_off,
                          .out_dst = h->out_dst,
                          .out_w = weighted ? h->out_w : NULL,
                          .in_off = h->in_off,
                          .in_src = h->in_src};
}

/* ---------------------------------------------------------------- PageRank */

typedef struct {
    double d;
    int iters;
} pr_cfg_t;

static void pr_init(loom_vertex_t *v, void *u)
{
    *(double *)v->value = 1.0 / (double)loom_vertex_num_vertices(v);
}

static void pr_compute(loom_vertex_t *v, const void *msgs, size_t nm, void *u)
{
    const pr_cfg_t *c = u;
    double *x = v->value, n = (double)loom_vertex_num_vertices(v);
    if (v->superstep > c->iters) {
        loom_vertex_vote_halt(v);
        return;
    }
    if (v->superstep > 0) {
        double sum = 0;
        if (nm) memcpy(&sum, msgs, 8);
        *x = (1 - c->d) / n + c->d * (sum + loom_vertex_aggregated(v, 0) / n);
    }
    uint64_t deg = loom_vertex_out_degree(v);
    if (deg) {
        double m = *x / (double)deg;
        loom_vertex_send_all(v, &m);
    } else {
        loom_vertex_aggregate(v, 0, *x);
    }
    if (v->superstep == c->iters) loom_vertex_vote_halt(v);
}

/* Power iteration with dangling mass spread uniformly: the reference. */
static void pr_reference(const hand_graph_t *h, double d, int iters, double *x)
{
    double y[N];
    for (int v = 0; v < N; v++)
        x[v] = 1.0 / N;
    for (int it = 0; it < iters; it++) {
        double dang = 0;
        for (int v = 0; v < N; v++) {
            y[v] = 0;
            if (h->out_off[v + 1] == h->out_off[v]) dang += x[v];
        }
        for (int u = 0; u < N; u++) {
            uint64_t deg = h->out_off[u + 1] - h->out_off[u];
            for (uint64_t e = h->out_off[u]; e < h->out_off[u + 1]; e++)
                y[h->out_dst[e]] += x[u] / (double)deg;
        }
        for (int v = 0; v < N; v++)
            x[v] = (1 - d) / N + d * (y[v] + dang / N);
    }
}

static void run_pagerank(int mode_dense)
{
    hand_graph_t h;
    hand_graph(&h, 0);
    if (!mode_dense) h.g.in_off = NULL, h.g.in_src = NULL; /* no in-edges: sparse only */
    pr_cfg_t cfg = {0.85, 30};
    loom_pregel_program_t p = {.name = "pr",
                               .value_size = 8,
                               .msg_size = 8,
                               .combiner = LOOM_COMBINE_SUM_F64,
                               .naggs = 1,
                               .aggs = {LOOM_AGG_SUM},
                               .init = pr_init,
                               .compute = pr_compute,
                               .user = &cfg};
    loom_pregel_t *pg = NULL;
    CU_ASSERT_FATAL(loom_pregel_create(loom_test_ctx, &h.g, &p, &pg) == LOOM_OK);
    CU_ASSERT(loom_pregel_run(pg) == LOOM_OK);
    double ref[N], sum = 0;
    pr_reference(&h, 0.85, 30, ref);
    const double *x = loom_pregel_values(pg);
    for (int v = 0; v < N; v++) {
        CU_ASSERT_DOUBLE_EQUAL(x[v], ref[v], 1e-14);
        sum += x[v];
    }
    CU_ASSERT_DOUBLE_EQUAL(sum, 1.0, 1e-12);
    /* Superstep 30 votes halt but still sends; those messages wake everyone
     * in 31, which halts without sending: the run ends by halting. */
    CU_ASSERT_EQUAL(loom_pregel_supersteps(pg), 32);
    loom_pregel_destroy(&pg);
    CU_ASSERT(pg == NULL);
}

static void test_pagerank_dense(void)
{
    run_pagerank(1);
}
static void test_pagerank_sparse(void)
{
    run_pagerank(0);
}

/* ---------------------------------------------------------------- min labels, halting */

static void cc_init(loom_vertex_t *v, void *u)
{
    *(uint64_t *)v->value = v->id;
}

static void cc_compute(loom_vertex_t *v, const void *msgs, size_t nm, void *u)
{
    uint64_t *lab = v->value;
    int changed = v->superstep == 0;
    for (size_t i = 0; i < nm; i++) {
        uint64_t m;
        memcpy(&m, (const uint8_t *)msgs + 8 * i, 8);
        if (m < *lab) {
            *lab = m;
            changed = 1;
        }
    }
    if (changed) loom_vertex_send_all(v, lab);
    loom_vertex_vote_halt(v);
}

static void user_min(void *acc, const void *msg, void *u)
{
    uint64_t a, m;
    memcpy(&a, acc, 8);
    memcpy(&m, msg, 8);
    if (m < a) memcpy(acc, &m, 8);
}

static void run_labels(loom_pregel_combiner_t comb)
{
    hand_graph_t h;
    hand_graph(&h, 0);
    loom_pregel_program_t p = {.name = "labels",
                               .value_size = 8,
                               .msg_size = 8,
                               .combiner = comb,
                               .combine = user_min,
                               .init = cc_init,
                               .compute = cc_compute};
    loom_pregel_t *pg = NULL;
    CU_ASSERT_FATAL(loom_pregel_create(loom_test_ctx, &h.g, &p, &pg) == LOOM_OK);
    CU_ASSERT(loom_pregel_run(pg) == LOOM_OK);
    /* Smallest id that reaches each vertex along directed arcs (incl. itself). */
    const uint64_t want[N] = {0, 0, 0, 3, 4, 0, 6};
    const uint64_t *lab = loom_pregel_values(pg);
    for (int v = 0; v < N; v++)
        CU_ASSERT_EQUAL(lab[v], want[v]);
    loom_pregel_destroy(&pg);
}

static void test_labels_builtin(void)
{
    run_labels(LOOM_COMBINE_MIN_U64);
}
static void test_labels_user(void)
{
    run_labels(LOOM_COMBINE_USER);
}
static void test_labels_none(void)
{
    run_labels(LOOM_COMBINE_NONE);
}

/* ---------------------------------------------------------------- raw messages */

/* Every vertex sends (its id, weight) along each out-arc in superstep 0; in
 * superstep 1 each vertex checks it got exactly its in-arcs. */
typedef struct {
    uint64_t id;
    double w;
} idw_t;

static void raw_compute(loom_vertex_t *v, const void *msgs, size_t nm, void *u)
{
    double *val = v->value;
    if (v->superstep == 0) {
        const uint64_t *dst;
        const double *w;
        uint64_t d = loom_vertex_out_edges(v, &dst, &w);
        for (uint64_t e = 0; e < d; e++) {
            idw_t m = {v->id, w ? w[e] : 1.0};
            loom_vertex_send(v, dst[e], &m);
        }
    } else {
        val[0] = (double)nm;
        for (size_t i = 0; i < nm; i++) {
            idw_t m;
            memcpy(&m, (const uint8_t *)msgs + i * sizeof m, sizeof m);
            val[1] += (double)m.id * m.w;
        }
    }
    loom_vertex_vote_halt(v);
}

static void test_raw_messages(void)
{
    hand_graph_t h;
    hand_graph(&h, 1);
    loom_pregel_program_t p = {
        .name = "raw", .value_size = 16, .msg_size = sizeof(idw_t), .compute = raw_compute};
    loom_pregel_t *pg = NULL;
    CU_ASSERT_FATAL(loom_pregel_create(loom_test_ctx, &h.g, &p, &pg) == LOOM_OK);
    CU_ASSERT(loom_pregel_run(pg) == LOOM_OK);
    CU_ASSERT_EQUAL(loom_pregel_supersteps(pg), 2);
    const double *val = loom_pregel_values(pg);
    for (int v = 0; v < N; v++) {
        double cnt = 0, s = 0;
        for (size_t e = 0; e < M; e++)
            if (arcs[e][1] == (uint64_t)v) {
                cnt++;
                s += (double)arcs[e][0] * (1.0 + (double)((arcs[e][0] + arcs[e][1]) % 3));
            }
        CU_ASSERT_DOUBLE_EQUAL(val[2 * v], cnt, 0);
        CU_ASSERT_DOUBLE_EQUAL(val[2 * v + 1], s, 1e-12);
    }
    loom_pregel_destroy(&pg);
}

/* ---------------------------------------------------------------- aggregators, master */

static void agg_compute(loom_vertex_t *v, const void *msgs, size_t nm, void *u)
{
    double *x = v->value;
    if (v->superstep > 0) {
        /* What the previous superstep aggregated, as every vertex sees it. */
        x[0] = loom_vertex_aggregated(v, 0);
        x[1] = loom_vertex_aggregated(v, 1);
        x[2] = loom_vertex_aggregated(v, 2);
    }
    double id = (double)v->id + (double)v->superstep;
    loom_vertex_aggregate(v, 0, id);
    loom_vertex_aggregate(v, 1, id);
    loom_vertex_aggregate(v, 2, id);
}

static int agg_master(const loom_pregel_step_t *s, double *aggs, void *u)
{
    int *calls = u;
    (*calls)++;
    return s->superstep >= 4;
}

static void test_aggregators_master(void)
{
    hand_graph_t h;
    hand_graph(&h, 0);
    int calls = 0;
    loom_pregel_program_t p = {.name = "agg",
                               .value_size = 24,
                               .msg_size = 8,
                               .naggs = 3,
                               .aggs = {LOOM_AGG_SUM, LOOM_AGG_MIN, LOOM_AGG_MAX},
                               .compute = agg_compute,
                               .master = agg_master,
                               .user = &calls};
    loom_pregel_t *pg = NULL;
    CU_ASSERT_FATAL(loom_pregel_create(loom_test_ctx, &h.g, &p, &pg) == LOOM_OK);
    CU_ASSERT(loom_pregel_run(pg) == LOOM_OK);
    CU_ASSERT_EQUAL(calls, 5);
    CU_ASSERT_EQUAL(loom_pregel_supersteps(pg), 5);
    const double *x = loom_pregel_values(pg);
    /* Superstep 4 saw superstep 3's aggregates: ids 0..6 plus 3. */
    CU_ASSERT_DOUBLE_EQUAL(x[0], 21.0 + 7 * 3, 0);
    CU_ASSERT_DOUBLE_EQUAL(x[1], 3.0, 0);
    CU_ASSERT_DOUBLE_EQUAL(x[2], 9.0, 0);
    CU_ASSERT_DOUBLE_EQUAL(loom_pregel_aggregated(pg, 0), 21.0 + 7 * 4, 0);
    loom_pregel_destroy(&pg);
}

static void test_bad_program(void)
{
    hand_graph_t h;
    hand_graph(&h, 0);
    loom_pregel_program_t p = {.name = "bad",
                               .value_size = 8,
                               .msg_size = 16,
                               .combiner = LOOM_COMBINE_SUM_F64,
                               .compute = cc_compute};
    loom_pregel_t *pg = NULL;
    CU_ASSERT(loom_pregel_create(loom_test_ctx, &h.g, &p, &pg) == LOOM_ERR_USAGE);
    CU_ASSERT(pg == NULL);
    loom_error_clear(loom_test_ctx);
}

static void register_suites(void)
{
    static const CU_TestInfo tests[] = {
        {"pagerank_dense", test_pagerank_dense},
        {"pagerank_sparse", test_pagerank_sparse},
        {"labels_builtin_min", test_labels_builtin},
        {"labels_user_combiner", test_labels_user},
        {"labels_no_combiner", test_labels_none},
        {"raw_messages", test_raw_messages},
        {"aggregators_master", test_aggregators_master},
        {"bad_program", test_bad_program},
        {NULL, NULL},
    };
    loom_test_suite("pregel_engine", tests);
}

int main(int argc, char **argv)
{
    return loom_test_main(argc, argv, register_suites);
}
