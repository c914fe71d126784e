/* Unit tests of the generators, spec parsing, formats, edge batches and memory sources. */
#include <stdlib.h>
#include <string.h>

#include "io/gen.h"
#include "io/io_internal.h"
#include "loom_test.h"

static void test_spec_parse(void)
{
    loom_ctx_t *ctx = loom_test_ctx;
    loom_gen_params_t p;
    int is_spec = -1;
    CU_ASSERT_EQUAL(loom_gen_parse_spec(ctx, "kron:20:16:7", &is_spec, &p), LOOM_OK);
    CU_ASSERT_EQUAL(is_spec, 1);
    CU_ASSERT_EQUAL(p.kind, LOOM_GEN_KRON);
    CU_ASSERT_EQUAL(p.scale, 20);
    CU_ASSERT_EQUAL(p.edge_factor, 16);
    CU_ASSERT_EQUAL(p.seed, 7u);
    CU_ASSERT_EQUAL(loom_gen_parse_spec(ctx, "urand:12", &is_spec, &p), LOOM_OK);
    CU_ASSERT_EQUAL(is_spec, 1);
    CU_ASSERT_EQUAL(p.kind, LOOM_GEN_URAND);
    CU_ASSERT_EQUAL(p.scale, 12);
    CU_ASSERT_EQUAL(p.edge_factor, 16);
    CU_ASSERT_EQUAL(p.seed, 1u);
    CU_ASSERT_EQUAL(loom_gen_parse_spec(ctx, "kron:3:2", &is_spec, &p), LOOM_OK);
    CU_ASSERT_EQUAL(p.edge_factor, 2);
    CU_ASSERT_EQUAL(loom_gen_parse_spec(ctx, "graph.el", &is_spec, &p), LOOM_OK);
    CU_ASSERT_EQUAL(is_spec, 0);
    CU_ASSERT_EQUAL(loom_gen_parse_spec(ctx, "kronecker.el", &is_spec, &p), LOOM_OK);
    CU_ASSERT_EQUAL(is_spec, 0);
}

static void expect_usage(const char *spec, const char *fragment)
{
    loom_ctx_t *ctx = loom_test_ctx;
    loom_gen_params_t p;
    int is_spec = 0;
    loom_error_clear(ctx);
    CU_ASSERT_EQUAL(loom_gen_parse_spec(ctx, spec, &is_spec, &p), LOOM_ERR_USAGE);
    CU_ASSERT_EQUAL(is_spec, 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(loom_error_message(ctx), fragment));
    loom_error_clear(ctx);
}

static void test_spec_errors(void)
{
    expect_usage("kron:45", "scale 45 out of range (1..40)");
    expect_usage("kron:0", "scale 0 out of range (1..40)");
    expect_usage("urand:-3", "scale -3 out of range (1..40)");
    expect_usage("kron:", "scale");
    expect_usage("kron:x", "'x' is not a number");
    expect_usage("kron:10:0", "edge factor 0 out of range");
    expect_usage("kron:10:-1", "edge factor -1 out of range");
    expect_usage("kron:10:16:-7", "seed");
    expect_usage("kron:10:16:7:1", "too many fields");
    /* Every field near and past 2^64, and the edge factor past --edge-factor's bound. */
    expect_usage("kron:40:9999999", "edge factor 9999999 out of range (1..1024)");
    expect_usage("urand:6:99999999999", "edge factor 99999999999 out of range (1..1024)");
    expect_usage("kron:6:1025", "edge factor 1025 out of range (1..1024)");
    expect_usage("kron:18446744073709551615", "scale 18446744073709551615 out of range (1..40)");
    expect_usage("kron:18446744073709551617", "scale 18446744073709551617 out of range (1..40)");
    expect_usage("kron:-9223372036854775809", "scale -9223372036854775809 out of range");
    expect_usage("kron:6:18446744073709551615", "edge factor 18446744073709551615 out of range");
    expect_usage("kron:6:4294967313", "edge factor 4294967313 out of range");
    expect_usage("kron:6:16:18446744073709551616", "seed 18446744073709551616 out of range");
    expect_usage("kron:6:16:-1", "seed '-1' is not a number");
    expect_usage("kron:6:-", "edge factor '-' is not a number");

    loom_ctx_t *ctx = loom_test_ctx;
    loom_edge_source_t *src = (loom_edge_source_t *)&src;
    loom_gen_params_t p = {LOOM_GEN_KRON, 41, 16, 1};
    CU_ASSERT_EQUAL(loom_source_generator(ctx, &p, &src), LOOM_ERR_USAGE);
    CU_ASSERT_PTR_NULL(src);
    CU_ASSERT_PTR_NOT_NULL(strstr(loom_error_message(ctx), "scale 41 out of range (1..40)"));
    loom_error_clear(ctx);
    p.scale = 10;
    p.edge_factor = 0;
    CU_ASSERT_EQUAL(loom_source_generator(ctx, &p, &src), LOOM_ERR_USAGE);
    loom_error_clear(ctx);
    p.edge_factor = 1024;
    p.seed = UINT64_MAX;
    CU_ASSERT_EQUAL(loom_source_generator(ctx, &p, &src), LOOM_OK);
    loom_source_destroy(&src);
    CU_ASSERT_EQUAL(loom_source_open(ctx, "urand:99", LOOM_FMT_AUTO, &src), LOOM_ERR_USAGE);
    CU_ASSERT_PTR_NULL(src);
    loom_error_clear(ctx);
}

static void test_relabel_bijection(void)
{
    for (int s = 1; s <= 16; s++) {
        loom_gen_params_t p = {LOOM_GEN_KRON, s, 1, (uint64_t)s * 31u};
        loom_gen_t g;
        CU_ASSERT_EQUAL_FATAL(loom_gen_init(loom_test_ctx, &p, &g), LOOM_OK);
        size_t n = (size_t)1 << s;
        unsigned char *seen = calloc(n, 1);
        int ok = 1;
        for (uint64_t x = 0; x < n; x++) {
            uint64_t y = loom_gen_relabel(&g, x);
            if (y >= n || seen[y])
                ok = 0;
            else
                seen[y] = 1;
        }
        CU_ASSERT(ok);
        free(seen);
    }
}

/* At scale 1 every edge is one Kronecker level: (0,0) with probability A,
 * (0,1) B, (1,0) C, (1,1) D. */
static void test_kron_quadrants(void)
{
    loom_gen_params_t p = {LOOM_GEN_KRON, 1, 1 << 19, 5};
    loom_gen_t g;
    CU_ASSERT_EQUAL_FATAL(loom_gen_init(loom_test_ctx, &p, &g), LOOM_OK);
    uint64_t m = g.num_edges, cnt[4] = {0, 0, 0, 0}, rel[4] = {0, 0, 0, 0};
    for (uint64_t k = 0; k < m; k++) {
        uint64_t u, v, ru, rv;
        loom_gen_edge_raw(&g, k, &u, &v);
        cnt[u * 2 + v]++;
        loom_gen_edge(&g, k, &ru, &rv);
        CU_ASSERT_TRUE(ru == loom_gen_relabel(&g, u) && rv == loom_gen_relabel(&g, v));
        rel[ru * 2 + rv]++;
    }
    double f[4];
    for (int i = 0; i < 4; i++)
        f[i] = (double)cnt[i] / (double)m;
    /* One standard deviation is below 0.0007 for 2^20 draws. */
    CU_ASSERT_DOUBLE_EQUAL(f[0], LOOM_KRON_A, 0.004);
    CU_ASSERT_DOUBLE_EQUAL(f[1], LOOM_KRON_B, 0.004);
    CU_ASSERT_DOUBLE_EQUAL(f[2], LOOM_KRON_C, 0.004);
    CU_ASSERT_DOUBLE_EQUAL(f[3], 1 - LOOM_KRON_A - LOOM_KRON_B - LOOM_KRON_C, 0.004);
    /* Relabelling permutes {0,1}: the counts move as a block. */
    uint64_t z = loom_gen_relabel(&g, 0);
    CU_ASSERT_EQUAL(rel[z * 2 + z], cnt[0]);
    CU_ASSERT_EQUAL(rel[(1 - z) * 2 + (1 - z)], cnt[3]);

    /* Every level of a deeper graph follows the same law: the source bit of
     * level l is 1 with probability C + D. */
    loom_gen_params_t q = {LOOM_GEN_KRON, 9, 1024, 11};
    CU_ASSERT_EQUAL_FATAL(loom_gen_init(loom_test_ctx, &q, &g), LOOM_OK);
    uint64_t ones[9] = {0}, vones[9] = {0};
    for (uint64_t k = 0; k < g.num_edges; k++) {
        uint64_t u, v;
        loom_gen_edge_raw(&g, k, &u, &v);
        for (int l = 0; l < 9; l++) {
            ones[l] += (u >> l) & 1;
            vones[l] += (v >> l) & 1;
        }
    }
    for (int l = 0; l < 9; l++) {
        CU_ASSERT_DOUBLE_EQUAL((double)ones[l] / (double)g.num_edges, 1 - LOOM_KRON_A - LOOM_KRON_B,
                               0.004);
        CU_ASSERT_DOUBLE_EQUAL((double)vones[l] / (double)g.num_edges,
                               1 - LOOM_KRON_A - LOOM_KRON_C, 0.004);
    }
}

static void test_urand(void)
{
    loom_gen_params_t p = {LOOM_GEN_URAND, 6, 256, 3};
    loom_gen_t g;
    CU_ASSERT_EQUAL_FATAL(loom_gen_init(loom_test_ctx, &p, &g), LOOM_OK);
    uint64_t hist[64] = {0};
    int in_range = 1;
    for (uint64_t k = 0; k < g.num_edges; k++) {
        uint64_t u, v;
        loom_gen_edge(&g, k, &u, &v);
        if (u >= 64 || v >= 64) {
            in_range = 0;
            continue;
        }
        hist[u]++;
        hist[v]++;
    }
    CU_ASSERT(in_range);
    /* 2 * 16384 endpoints over 64 vertices: 512 each, sd ~22. */
    for (int i = 0; i < 64; i++)
        CU_ASSERT(hist[i] > 400 && hist[i] < 624);
}

static void test_fill_threads(void)
{
    loom_gen_params_t p = {LOOM_GEN_KRON, 12, 8, 99};
    loom_gen_t g;
    CU_ASSERT_EQUAL_FATAL(loom_gen_init(loom_test_ctx, &p, &g), LOOM_OK);
    size_t cnt = 20000;
    uint64_t *s1 = malloc(cnt * 8), *d1 = malloc(cnt * 8), *s2 = malloc(cnt * 8),
             *d2 = malloc(cnt * 8);
    loom_gen_fill(&g, 123, cnt, s1, d1, 1);
    loom_gen_fill(&g, 123, cnt, s2, d2, 2);
    CU_ASSERT(!memcmp(s1, s2, cnt * 8) && !memcmp(d1, d2, cnt * 8));
    int same = 1;
    for (size_t i = 0; i < cnt; i++) {
        uint64_t u, v;
        loom_gen_edge(&g, 123 + i, &u, &v);
        if (u != s1[i] || v != d1[i] || u >= 4096 || v >= 4096) same = 0;
    }
    CU_ASSERT(same);
    free(s1);
    free(d1);
    free(s2);
    free(d2);
}

static void test_share(void)
{
    for (int workers = 1; workers <= 5; workers++)
        for (uint64_t m = 0; m < 23; m++) {
            uint64_t next = 0;
            for (int w = 0; w < workers; w++) {
                uint64_t lo, hi;
                loom_gen_share(m, w, workers, &lo, &hi);
                CU_ASSERT_EQUAL(lo, next);
                CU_ASSERT(hi - lo <= m / (uint64_t)workers + 1);
                next = hi;
            }
            CU_ASSERT_EQUAL(next, m);
        }
    uint64_t lo, hi;
    loom_gen_share(100, -1, 3, &lo, &hi);
    CU_ASSERT_EQUAL(hi - lo, 0u);
}

static void test_formats(void)
{
    loom_format_t f = LOOM_FMT_MTX;
    CU_ASSERT_EQUAL(loom_format_parse(NULL, &f), 0);
    CU_ASSERT_EQUAL(f, LOOM_FMT_AUTO);
    CU_ASSERT_EQUAL(loom_format_parse("edgelist", &f), 0);
    CU_ASSERT_EQUAL(f, LOOM_FMT_EDGELIST);
    CU_ASSERT_EQUAL(loom_format_parse("el", &f), 0);
    CU_ASSERT_EQUAL(f, LOOM_FMT_EDGELIST);
    CU_ASSERT_EQUAL(loom_format_parse("mtx", &f), 0);
    CU_ASSERT_EQUAL(f, LOOM_FMT_MTX);
    CU_ASSERT_EQUAL(loom_format_parse("h5", &f), 0);
    CU_ASSERT_EQUAL(f, LOOM_FMT_HDF5);
    CU_ASSERT_EQUAL(loom_format_parse("hdf5", &f), 0);
    CU_ASSERT_EQUAL(f, LOOM_FMT_HDF5);
    CU_ASSERT_EQUAL(loom_format_parse("auto", &f), 0);
    CU_ASSERT_EQUAL(f, LOOM_FMT_AUTO);
    CU_ASSERT_NOT_EQUAL(loom_format_parse("csv", &f), 0);
    CU_ASSERT_EQUAL(loom_format_from_path("a/b.el"), LOOM_FMT_EDGELIST);
    CU_ASSERT_EQUAL(loom_format_from_path("g.txt"), LOOM_FMT_EDGELIST);
    CU_ASSERT_EQUAL(loom_format_from_path("g.tsv"), LOOM_FMT_EDGELIST);
    CU_ASSERT_EQUAL(loom_format_from_path("g.edges"), LOOM_FMT_EDGELIST);
    CU_ASSERT_EQUAL(loom_format_from_path("g.snap"), LOOM_FMT_EDGELIST);
    CU_ASSERT_EQUAL(loom_format_from_path("g.MTX"), LOOM_FMT_MTX);
    CU_ASSERT_EQUAL(loom_format_from_path("g.h5"), LOOM_FMT_HDF5);
    CU_ASSERT_EQUAL(loom_format_from_path("g.hdf5"), LOOM_FMT_HDF5);
    CU_ASSERT_EQUAL(loom_format_from_path("g.csv"), LOOM_FMT_AUTO);
    CU_ASSERT_EQUAL(loom_format_from_path("dir.el/graph"), LOOM_FMT_AUTO);
    CU_ASSERT_EQUAL(loom_format_from_path(".el"), LOOM_FMT_AUTO);
}

static void test_edges(void)
{
    loom_ctx_t *ctx = loom_test_ctx;
    loom_edges_t e;
    memset(&e, 0, sizeof e);
    for (uint64_t i = 0; i < 5000; i++)
        CU_ASSERT_EQUAL(loom_edges_push(ctx, &e, i, i + 1, 0.5), LOOM_OK);
    CU_ASSERT_EQUAL(e.count, 5000u);
    CU_ASSERT_PTR_NULL(e.weight);
    CU_ASSERT_EQUAL(loom_edges_reserve(ctx, &e, 10, 1), LOOM_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e.weight);
    CU_ASSERT_EQUAL(e.weight[4999], 1.0);
    CU_ASSERT_EQUAL(loom_edges_push(ctx, &e, 7, 8, 2.5), LOOM_OK);
    CU_ASSERT_EQUAL(e.weight[5000], 2.5);
    CU_ASSERT_EQUAL(e.src[4999], 4999u);
    CU_ASSERT_EQUAL(e.dst[5000], 8u);
    loom_edges_free(&e);
    CU_ASSERT_EQUAL(e.count, 0u);
    CU_ASSERT_PTR_NULL(e.src);
    loom_edges_free(&e);
}

static void test_memory_source(void)
{
    loom_ctx_t *ctx = loom_test_ctx;
    loom_read_result_t r;
    memset(&r, 0, sizeof r);
    for (uint64_t i = 0; i < 2500; i++)
        CU_ASSERT_EQUAL(loom_edges_push(ctx, &r.edges, i % 97, (i * 7) % 97, 0), LOOM_OK);
    CU_ASSERT_EQUAL(loom_edges_reserve(ctx, &r.edges, 1, 1), LOOM_OK);
    for (size_t i = 0; i < r.edges.count; i++)
        r.edges.weight[i] = (double)i / 4;
    r.num_vertices = 97;
    r.directed = 0;
    r.symmetric = 0;
    r.weighted = 1;
    loom_edge_source_t *src = NULL;
    CU_ASSERT_EQUAL_FATAL(loom_source_from_memory(ctx, &r, &src), LOOM_OK);
    CU_ASSERT_PTR_NULL(r.edges.src);
    CU_ASSERT_EQUAL(loom_source_num_vertices(src), 97u);
    CU_ASSERT_EQUAL(loom_source_directed(src), 0);
    CU_ASSERT_EQUAL(loom_source_weighted(src), 1);
    CU_ASSERT_EQUAL(loom_source_local_count(src), 2500u);
    loom_edges_t b;
    memset(&b, 0, sizeof b);
    for (int pass = 0; pass < 2; pass++) {
        CU_ASSERT_EQUAL(loom_source_rewind(ctx, src), LOOM_OK);
        size_t seen = 0;
        int ok = 1;
        for (;;) {
            CU_ASSERT_EQUAL(loom_source_next(ctx, src, &b, 1000), LOOM_OK);
            if (b.count == 0) break;
            CU_ASSERT(b.count <= 1000);
            for (size_t i = 0; i < b.count; i++, seen++)
                if (b.src[i] != seen % 97 || b.dst[i] != (seen * 7) % 97 ||
                    b.weight[i] != (double)seen / 4)
                    ok = 0;
        }
        CU_ASSERT(ok);
        CU_ASSERT_EQUAL(seen, 2500u);
    }
    loom_edges_free(&b);
    loom_source_destroy(&src);
    CU_ASSERT_PTR_NULL(src);
    loom_source_destroy(&src);
    loom_source_destroy(NULL);
}

static void test_generator_source(void)
{
    loom_ctx_t *ctx = loom_test_ctx;
    loom_edge_source_t *src = NULL;
    CU_ASSERT_EQUAL_FATAL(loom_source_open(ctx, "kron:7:3:9", LOOM_FMT_AUTO, &src), LOOM_OK);
    CU_ASSERT_EQUAL(loom_source_num_vertices(src), 128u);
    CU_ASSERT_EQUAL(loom_source_directed(src), 1);
    CU_ASSERT_EQUAL(loom_source_weighted(src), 0);
    CU_ASSERT_EQUAL(loom_source_local_count(src), 384u);
    loom_gen_params_t p = {LOOM_GEN_KRON, 7, 3, 9};
    loom_gen_t g;
    CU_ASSERT_EQUAL_FATAL(loom_gen_init(ctx, &p, &g), LOOM_OK);
    loom_edges_t b;
    memset(&b, 0, sizeof b);
    uint64_t k = 0;
    int ok = 1;
    for (;;) {
        CU_ASSERT_EQUAL(loom_source_next(ctx, src, &b, 100), LOOM_OK);
        if (!b.count) break;
        for (size_t i = 0; i < b.count; i++, k++) {
            uint64_t u, v;
            loom_gen_edge(&g, k, &u, &v);
            if (u != b.src[i] || v != b.dst[i]) ok = 0;
        }
    }
    CU_ASSERT(ok);
    CU_ASSERT_EQUAL(k, 384u);
    loom_edges_free(&b);
    loom_source_destroy(&src);
}

static void register_suites(void)
{
    static const CU_TestInfo tests[] = {{"spec parsing", test_spec_parse},
                                        {"spec errors", test_spec_errors},
                                        {"relabel is a bijection", test_relabel_bijection},
                                        {"kronecker quadrants", test_kron_quadrants},
                                        {"uniform random", test_urand},
                                        {"fill with threads", test_fill_threads},
                                        {"worker shares", test_share},
                                        {"formats", test_formats},
                                        {"edge batches", test_edges},
                                        {"memory source", test_memory_source},
                                        {"generator source", test_generator_source},
                                        {NULL, NULL}};
    loom_test_suite("io_gen", tests);
}

int main(int argc, char **argv)
{
    return loom_test_main(argc, argv, register_suites);
}
