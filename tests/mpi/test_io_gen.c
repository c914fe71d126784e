/* The generators across ranks: the union of all shares equals one serial loop, at any P. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/gen.h"
#include "io/io_internal.h"
#include "loom_test.h"

typedef struct pair {
    uint64_t u, v;
} pair_t;

static int pair_cmp(const void *a, const void *b)
{
    const pair_t *x = a, *y = b;
    if (x->u != y->u) return x->u < y->u ? -1 : 1;
    if (x->v != y->v) return x->v < y->v ? -1 : 1;
    return 0;
}

/* Read this rank's whole share (in small batches, to cross batch bounds). */
static pair_t *read_share(loom_edge_source_t *src, size_t *count)
{
    loom_ctx_t *ctx = loom_test_ctx;
    loom_edges_t b;
    memset(&b, 0, sizeof b);
    size_t n = 0, cap = 1024;
    pair_t *p = malloc(cap * sizeof *p);
    CU_ASSERT_EQUAL(loom_source_rewind(ctx, src), LOOM_OK);
    for (;;) {
        CU_ASSERT_EQUAL(loom_source_next(ctx, src, &b, 777), LOOM_OK);
        if (!b.count) break;
        if (n + b.count > cap) {
            while (n + b.count > cap)
                cap *= 2;
            p = realloc(p, cap * sizeof *p);
        }
        for (size_t i = 0; i < b.count; i++)
            p[n + i] = (pair_t){b.src[i], b.dst[i]};
        n += b.count;
    }
    loom_edges_free(&b);
    *count = n;
    return p;
}

/* Gather every rank's share on rank 0 in rank order. */
static pair_t *gather(const pair_t *mine, size_t n, size_t *total)
{
    MPI_Comm comm = loom_comm(loom_test_ctx);
    int P = loom_size(loom_test_ctx), rank = loom_rank(loom_test_ctx);
    int words = (int)(2 * n);
    int *counts = calloc((size_t)P, sizeof(int)), *displs = calloc((size_t)P, sizeof(int));
    MPI_Gather(&words, 1, MPI_INT, counts, 1, MPI_INT, 0, comm);
    size_t all = 0;
    for (int r = 0; r < P; r++) {
        displs[r] = (int)all;
        all += (size_t)counts[r];
    }
    pair_t *out = rank == 0 ? malloc((all / 2 + 1) * sizeof *out) : NULL;
    MPI_Gatherv(mine, words, MPI_UINT64_T, out, counts, displs, MPI_UINT64_T, 0, comm);
    free(counts);
    free(displs);
    *total = all / 2;
    return out;
}

static void check_spec(const char *spec)
{
    loom_ctx_t *ctx = loom_test_ctx;
    loom_edge_source_t *src = NULL;
    CU_ASSERT_EQUAL_FATAL(loom_source_open(ctx, spec, LOOM_FMT_AUTO, &src), LOOM_OK);
    size_t n = 0, total = 0;
    pair_t *mine = read_share(src, &n);
    CU_ASSERT_EQUAL(n, loom_source_local_count(src));
    if (loom_size(ctx) >= 2 && loom_is_master(ctx)) CU_ASSERT_EQUAL(n, 0u);
    pair_t *all = gather(mine, n, &total);
    if (loom_rank(ctx) == 0) {
        loom_gen_params_t p;
        int is_spec = 0;
        CU_ASSERT_EQUAL_FATAL(loom_gen_parse_spec(ctx, spec, &is_spec, &p), LOOM_OK);
        loom_gen_t g;
        CU_ASSERT_EQUAL_FATAL(loom_gen_init(ctx, &p, &g), LOOM_OK);
        CU_ASSERT_EQUAL_FATAL(total, g.num_edges);
        pair_t *ref = malloc(g.num_edges * sizeof *ref);
        for (uint64_t k = 0; k < g.num_edges; k++)
            loom_gen_edge(&g, k, &ref[k].u, &ref[k].v);
        /* Workers take consecutive slices in rank order, so even the order matches. */
        CU_ASSERT(!memcmp(all, ref, total * sizeof *ref));
        qsort(all, total, sizeof *all, pair_cmp);
        qsort(ref, total, sizeof *ref, pair_cmp);
        CU_ASSERT(!memcmp(all, ref, total * sizeof *ref));
        int in_range = 1;
        for (size_t i = 0; i < total; i++)
            if (all[i].u >= loom_source_num_vertices(src) ||
                all[i].v >= loom_source_num_vertices(src))
                in_range = 0;
        CU_ASSERT(in_range);
        free(ref);
    }
    free(all);
    free(mine);
    loom_source_destroy(&src);
}

static void test_kron_any_ranks(void)
{
    check_spec("kron:9:5:42");
    check_spec("kron:1:100:3");
}

static void test_urand_any_ranks(void)
{
    check_spec("urand:8:3:7");
}

static void test_bad_specs(void)
{
    loom_ctx_t *ctx = loom_test_ctx;
    static const char *const bad[] = {"kron:45", "urand:0", "kron:12:0", "kron:a:b",
                                      "kron:3:4:5:6"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        loom_edge_source_t *src = NULL;
        loom_error_clear(ctx);
        CU_ASSERT_EQUAL(loom_source_open(ctx, bad[i], LOOM_FMT_AUTO, &src), LOOM_ERR_USAGE);
        CU_ASSERT_PTR_NULL(src);
    }
    loom_error_clear(ctx);
    loom_edge_source_t *src = NULL;
    CU_ASSERT_EQUAL(loom_source_open(ctx, "kron:45", LOOM_FMT_AUTO, &src), LOOM_ERR_USAGE);
    CU_ASSERT_PTR_NOT_NULL(strstr(loom_error_message(ctx), "scale 45 out of range (1..40)"));
    loom_error_clear(ctx);
}

static void test_unknown_extension(void)
{
    loom_ctx_t *ctx = loom_test_ctx;
    char path[4096];
    snprintf(path, sizeof path, "%s/graph_gen_test.xyz", loom_test_tmpdir());
    if (loom_rank(ctx) == 0) {
        FILE *f = fopen(path, "w");
        CU_ASSERT_PTR_NOT_NULL_FATAL(f);
        fputs("0 1\n1 2\n", f);
        fclose(f);
    }
    MPI_Barrier(loom_comm(ctx));
    loom_edge_source_t *src = NULL;
    loom_error_clear(ctx);
    CU_ASSERT_EQUAL(loom_source_open(ctx, path, LOOM_FMT_AUTO, &src), LOOM_ERR_USAGE);
    CU_ASSERT_PTR_NULL(src);
    CU_ASSERT_PTR_NOT_NULL(strstr(loom_error_message(ctx), path));
    loom_error_clear(ctx);
    MPI_Barrier(loom_comm(ctx));
    if (loom_rank(ctx) == 0) remove(path);
}

static void register_suites(void)
{
    static const CU_TestInfo tests[] = {{"kronecker identical at any P", test_kron_any_ranks},
                                        {"urand identical at any P", test_urand_any_ranks},
                                        {"bad specs rejected", test_bad_specs},
                                        {"unknown extension", test_unknown_extension},
                                        {NULL, NULL}};
    loom_test_suite("io_gen_mpi", tests);
}

int main(int argc, char **argv)
{
    return loom_test_main(argc, argv, register_suites);
}
