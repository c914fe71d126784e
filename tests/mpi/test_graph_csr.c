/* The distributed CSR against a naive serial build from the gathered edge list, at any P. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/gen.h"
#include "io/io_internal.h"
#include "loom_test.h"

typedef struct arc {
    uint64_t key, nbr;
    double w;
} arc_t;

static int arc_cmp(const void *a, const void *b)
{
    const arc_t *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    if (x->nbr != y->nbr) return x->nbr < y->nbr ? -1 : 1;
    if (x->w != y->w) return x->w < y->w ? -1 : 1;
    return 0;
}

/* Every rank's share of the source, gathered on every rank. */
static void gather_all(loom_edge_source_t *src, loom_edges_t *all)
{
    loom_ctx_t *ctx = loom_test_ctx;
    MPI_Comm comm = loom_comm(ctx);
    int P = loom_size(ctx), weighted = loom_source_weighted(src);
    loom_edges_t mine, b;
    memset(&mine, 0, sizeof mine);
    memset(&b, 0, sizeof b);
    CU_ASSERT_EQUAL(loom_edges_reserve(ctx, &mine, 16, weighted), LOOM_OK);
    CU_ASSERT_EQUAL(loom_source_rewind(ctx, src), LOOM_OK);
    for (;;) {
        CU_ASSERT_EQUAL(loom_source_next(ctx, src, &b, 1000), LOOM_OK);
        if (!b.count) break;
        for (size_t i = 0; i < b.count; i++)
            loom_edges_push(ctx, &mine, b.src[i], b.dst[i], weighted ? b.weight[i] : 1.0);
    }
    loom_edges_free(&b);
    int cnt = (int)mine.count, *counts = calloc((size_t)P, sizeof(int)),
        *displs = calloc((size_t)P, sizeof(int));
    MPI_Allgather(&cnt, 1, MPI_INT, counts, 1, MPI_INT, comm);
    size_t total = 0;
    for (int r = 0; r < P; r++) {
        displs[r] = (int)total;
        total += (size_t)counts[r];
    }
    memset(all, 0, sizeof *all);
    loom_edges_reserve(ctx, all, total + 1, weighted);
    MPI_Allgatherv(mine.src, cnt, MPI_UINT64_T, all->src, counts, displs, MPI_UINT64_T, comm);
    MPI_Allgatherv(mine.dst, cnt, MPI_UINT64_T, all->dst, counts, displs, MPI_UINT64_T, comm);
    if (weighted)
        MPI_Allgatherv(mine.weight, cnt, MPI_DOUBLE, all->weight, counts, displs, MPI_DOUBLE, comm);
    all->count = total;
    free(counts);
    free(displs);
    loom_edges_free(&mine);
}

/* Sorted, filtered reference arcs with per-key offsets (n + 1). */
static arc_t *reference(arc_t *arcs, size_t na, uint64_t n, const loom_build_opts_t *o,
                        uint64_t **offp)
{
    qsort(arcs, na, sizeof *arcs, arc_cmp);
    size_t k = 0;
    for (size_t i = 0; i < na; i++) {
        if (o->drop_self_loops && arcs[i].key == arcs[i].nbr) continue;
        if (o->drop_duplicates && k > 0 && arcs[k - 1].key == arcs[i].key &&
            arcs[k - 1].nbr == arcs[i].nbr)
            continue;
        arcs[k++] = arcs[i];
    }
    uint64_t *off = calloc(n + 1, sizeof *off);
    for (size_t i = 0; i < k; i++)
        off[arcs[i].key + 1]++;
    for (uint64_t v = 0; v < n; v++)
        off[v + 1] += off[v];
    *offp = off;
    return arcs;
}

static int lists_equal(const loom_graph_t *g, const uint64_t *off, const uint64_t *adj,
                       const double *w, const arc_t *ref, const uint64_t *roff)
{
    int ok = 1;
    for (uint64_t v = g->lo; v < g->hi; v++) {
        uint64_t i = v - g->lo, len = off[i + 1] - off[i];
        if (len != roff[v + 1] - roff[v]) {
            ok = 0;
            continue;
        }
        for (uint64_t j = 0; j < len; j++) {
            const arc_t *a = &ref[roff[v] + j];
            if (adj[off[i] + j] != a->nbr) ok = 0;
            if (g->weighted && (!w || w[off[i] + j] != a->w)) ok = 0;
        }
    }
    return ok;
}

static void check_build(loom_edge_source_t *src, loom_build_opts_t o, const char *label)
{
    loom_ctx_t *ctx = loom_test_ctx;
    int P = loom_size(ctx), rank = loom_rank(ctx);
    loom_edges_t e;
    gather_all(src, &e);
    uint64_t n = loom_source_num_vertices(src);
    int undirected = o.undirected || !loom_source_directed(src);
    int symmetrise = undirected && !loom_source_symmetric(src);
    int want_in = !undirected && o.want_in_edges;

    arc_t *out = malloc((2 * e.count + 1) * sizeof *out), *in = malloc((e.count + 1) * sizeof *in);
    double *rawout = calloc(n + 1, sizeof *rawout), *rawin = calloc(n + 1, sizeof *rawin);
    size_t nout = 0, nin = 0;
    for (size_t i = 0; i < e.count; i++) {
        uint64_t u = e.src[i], v = e.dst[i];
        double w = e.weight ? e.weight[i] : 0;
        out[nout++] = (arc_t){u, v, w};
        rawout[u]++;
        if (symmetrise) {
            out[nout++] = (arc_t){v, u, w};
            rawout[v]++;
        }
        if (!undirected) rawin[v]++;
        if (want_in) in[nin++] = (arc_t){v, u, w};
    }
    if (undirected) memcpy(rawin, rawout, n * sizeof *rawin);
    uint64_t *roff = NULL, *rinoff = NULL;
    reference(out, nout, n, &o, &roff);
    reference(in, nin, n, &o, &rinoff);

    loom_graph_t *g = NULL;
    loom_status_t st = loom_graph_build(ctx, src, &o, &g);
    CU_ASSERT_EQUAL(st, LOOM_OK);
    if (st != LOOM_OK || !g) {
        fprintf(stderr, "[r%d] %s: build failed: %s\n", rank, label, loom_error_message(ctx));
        goto done;
    }
    int ok = 1;
    ok &= g->num_vertices == n && g->nparts == P && g->directed == !undirected;
    ok &= g->weighted == loom_source_weighted(src);
    ok &= g->part[0] == 0 && g->part[P] == n;
    for (int r = 0; r < P; r++)
        ok &= g->part[r] <= g->part[r + 1];
    ok &= g->lo == g->part[rank] && g->hi == g->part[rank + 1];
    if (P >= 2) ok &= g->part[1] == 0; /* the master owns nothing */
    for (uint64_t v = 0; v < n; v++) {
        int r = loom_graph_owner(g, v);
        ok &= r >= 0 && r < P && g->part[r] <= v && v < g->part[r + 1];
    }
    ok &= loom_graph_owner(g, n) == -1;
    ok &= g->num_arcs == roff[n];
    ok &= g->out_off[0] == 0 && loom_graph_local_arcs(g) == g->out_off[g->hi - g->lo];
    if (!ok) fprintf(stderr, "[r%d] %s: header or partition mismatch\n", rank, label);
    CU_ASSERT(ok);
    int lists = lists_equal(g, g->out_off, g->out_dst, g->out_w, out, roff);
    if (!lists) fprintf(stderr, "[r%d] %s: out-lists differ\n", rank, label);
    CU_ASSERT(lists);
    if (undirected) {
        CU_ASSERT(g->in_off == g->out_off && g->in_src == g->out_dst && g->in_w == g->out_w);
    } else if (want_in) {
        CU_ASSERT_PTR_NOT_NULL(g->in_off);
        lists = g->in_off && lists_equal(g, g->in_off, g->in_src, g->in_w, in, rinoff);
        if (!lists) fprintf(stderr, "[r%d] %s: in-lists differ\n", rank, label);
        CU_ASSERT(lists);
    } else {
        CU_ASSERT(g->in_off == NULL && g->in_src == NULL);
    }
    if (o.vertex_weight > 0) {
        /* Balance on the pass-1 counts: no worker exceeds the mean by more
         * than one vertex's cost. */
        int workers = P == 1 ? 1 : P - 1;
        double total = 0, maxv = 0, maxpart = 0;
        for (int r = 0; r < P; r++) {
            double c = 0;
            for (uint64_t v = g->part[r]; v < g->part[r + 1]; v++) {
                double cv = rawout[v] + rawin[v] + o.vertex_weight;
                c += cv;
                if (cv > maxv) maxv = cv;
            }
            total += c;
            if (c > maxpart) maxpart = c;
        }
        CU_ASSERT(maxpart <= total / workers + maxv + 1e-6);
    }
    loom_graph_destroy(&g);
    CU_ASSERT_PTR_NULL(g);
done:
    free(out);
    free(in);
    free(roff);
    free(rinoff);
    free(rawout);
    free(rawin);
    loom_edges_free(&e);
}

/* A small weighted graph with self-loops, duplicates and ties in weight,
 * spread over all ranks (the master too: readers may give it edges). */
static loom_edge_source_t *small_source(int directed, int symmetric)
{
    loom_ctx_t *ctx = loom_test_ctx;
    int P = loom_size(ctx), rank = loom_rank(ctx);
    loom_read_result_t r;
    memset(&r, 0, sizeof r);
    r.num_vertices = 40;
    r.directed = directed;
    r.symmetric = symmetric;
    r.weighted = 1;
    loom_edges_reserve(ctx, &r.edges, 16, 1);
    uint64_t x = 12345;
    for (int i = 0; i < 500; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        uint64_t u = (x >> 33) % 40, v = (x >> 45) % 40;
        if (i % 7 == 0) v = (x >> 20) % 5; /* crowd a few vertices: duplicates */
        if (i % 23 == 0) v = u;            /* self-loops */
        double w = (double)((x >> 13) % 16) / 4;
        if (i % P != rank) continue;
        loom_edges_push(ctx, &r.edges, u, v, w);
        if (symmetric && u != v) loom_edges_push(ctx, &r.edges, v, u, w);
    }
    loom_edge_source_t *src = NULL;
    CU_ASSERT_EQUAL(loom_source_from_memory(ctx, &r, &src), LOOM_OK);
    return src;
}

static void run_options(loom_edge_source_t *src, const char *name)
{
    static const loom_build_opts_t variants[] = {
        {0, 0, 0, 0, 0}, {0, 0, 0, 1, 0}, {1, 0, 0, 0, 0},   {0, 1, 0, 1, 3.0},
        {0, 0, 1, 1, 0}, {0, 1, 1, 1, 0}, {1, 1, 1, 0, 0.5}, {1, 0, 1, 0, 2.0},
    };
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
        char label[128];
        snprintf(label, sizeof label, "%s variant %zu", name, i);
        check_build(src, variants[i], label);
    }
}

static void test_small_weighted(void)
{
    loom_edge_source_t *src = small_source(1, 0);
    run_options(src, "small directed");
    loom_source_destroy(&src);
    src = small_source(0, 0);
    run_options(src, "small undirected");
    loom_source_destroy(&src);
    src = small_source(0, 1);
    run_options(src, "small symmetric");
    loom_source_destroy(&src);
}

static void test_kron10(void)
{
    loom_edge_source_t *src = NULL;
    CU_ASSERT_EQUAL_FATAL(loom_source_open(loom_test_ctx, "kron:10", LOOM_FMT_AUTO, &src), LOOM_OK);
    run_options(src, "kron:10");
    loom_source_destroy(&src);
    CU_ASSERT_EQUAL_FATAL(loom_source_open(loom_test_ctx, "urand:9:4:3", LOOM_FMT_AUTO, &src),
                          LOOM_OK);
    loom_build_opts_t o = {1, 1, 1, 0, 1.0};
    check_build(src, o, "urand:9");
    loom_source_destroy(&src);
}

/* Batches above the builder's threading thresholds (with OMP_NUM_THREADS=2),
 * so the atomic paths of counting and scattering run too. */
static void test_kron13_threaded(void)
{
    loom_edge_source_t *src = NULL;
    CU_ASSERT_EQUAL_FATAL(loom_source_open(loom_test_ctx, "kron:13:16:5", LOOM_FMT_AUTO, &src),
                          LOOM_OK);
    loom_build_opts_t directed = {0, 0, 0, 1, 2.0}, undirected = {1, 1, 1, 0, 0};
    check_build(src, directed, "kron:13 directed");
    check_build(src, undirected, "kron:13 undirected");
    loom_source_destroy(&src);
}

static void test_id_out_of_range(void)
{
    loom_ctx_t *ctx = loom_test_ctx;
    loom_read_result_t r;
    memset(&r, 0, sizeof r);
    r.num_vertices = 10;
    r.directed = 1;
    loom_edges_push(ctx, &r.edges, 1, 2, 0);
    if (loom_rank(ctx) == loom_size(ctx) - 1) loom_edges_push(ctx, &r.edges, 3, 12, 0);
    loom_edge_source_t *src = NULL;
    CU_ASSERT_EQUAL_FATAL(loom_source_from_memory(ctx, &r, &src), LOOM_OK);
    loom_graph_t *g = (loom_graph_t *)&g;
    loom_build_opts_t o = {0, 0, 0, 1, 0};
    loom_error_clear(ctx);
    CU_ASSERT_EQUAL(loom_graph_build(ctx, src, &o, &g), LOOM_ERR_FORMAT);
    CU_ASSERT_PTR_NULL(g);
    CU_ASSERT_PTR_NOT_NULL(
        strstr(loom_error_message(ctx), "vertex id 12 out of range (graph has 10 vertices)"));
    loom_error_clear(ctx);
    loom_source_destroy(&src);
    loom_graph_destroy(NULL);
    loom_graph_destroy(&g);
}

static void test_empty_graph(void)
{
    loom_ctx_t *ctx = loom_test_ctx;
    loom_read_result_t r;
    memset(&r, 0, sizeof r);
    r.num_vertices = 5;
    r.directed = 1;
    loom_edge_source_t *src = NULL;
    CU_ASSERT_EQUAL_FATAL(loom_source_from_memory(ctx, &r, &src), LOOM_OK);
    loom_build_opts_t o = {0, 0, 0, 1, 0};
    check_build(src, o, "no edges");
    loom_source_destroy(&src);
}

static void register_suites(void)
{
    static const CU_TestInfo tests[] = {{"small weighted graphs", test_small_weighted},
                                        {"kron:10 and urand:9", test_kron10},
                                        {"kron:13 threaded", test_kron13_threaded},
                                        {"vertex id out of range", test_id_out_of_range},
                                        {"graph without edges", test_empty_graph},
                                        {NULL, NULL}};
    loom_test_suite("io_csr", tests);
}

int main(int argc, char **argv)
{
    return loom_test_main(argc, argv, register_suites);
}
