/* Unit tests of the partition-centric sums (kernels/pull_blocked.c) against a plain loop over
 * the arcs: random multigraphs (parallel arcs, empty sources and destinations, destinations
 * outside the range, which are skipped), every partition size from one destination to the
 * largest, 1-3 threads, 64- and 32-bit ids. Each destination's sum takes its arcs in ascending
 * source order in both, so the results must be equal bit for bit; with float values the
 * reference adds the values rounded to float. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/pull_blocked.h"
#include "loom_test.h"

static uint64_t rng = 0x70756c6c626c6b21ULL;
static uint64_t next_rand(void)
{
    return loom_test_rand(&rng);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

typedef struct graph {
    uint64_t nsrc, ndst, base, m;
    uint64_t *off, *dst;
    uint32_t *dst32;
    double *src;
} graph_t;

/* nsrc sources, destinations in [0, base + ndst + 3): some below base and
 * above the range, hubs (every 17th source has many arcs), repeats. */
static void make_graph(graph_t *g, uint64_t nsrc, uint64_t ndst, uint64_t base)
{
    g->nsrc = nsrc;
    g->ndst = ndst;
    g->base = base;
    g->off = calloc(nsrc + 1, sizeof *g->off);
    for (uint64_t u = 0; u < nsrc; u++) {
        uint64_t d = next_rand() % 4 == 0 ? 0 : next_rand() % 6;
        if (u % 17 == 3) d += next_rand() % (ndst < 3000 ? ndst + 8 : 3000);
        g->off[u + 1] = g->off[u] + d;
    }
    g->m = g->off[nsrc];
    g->dst = malloc((g->m + 1) * sizeof *g->dst);
    g->dst32 = malloc((g->m + 1) * sizeof *g->dst32);
    g->src = malloc((nsrc + 1) * sizeof *g->src);
    const uint64_t span = base + ndst + 3;
    for (uint64_t u = 0; u < nsrc; u++) {
        for (uint64_t e = g->off[u]; e < g->off[u + 1]; e++)
            g->dst[e] = next_rand() % span;
        qsort(g->dst + g->off[u], g->off[u + 1] - g->off[u], sizeof *g->dst, cmp_u64);
        g->src[u] = (double)(next_rand() >> 11) * 0x1p-53 * (u % 5 == 0 ? 1e-3 : 1.0);
    }
    for (uint64_t e = 0; e < g->m; e++)
        g->dst32[e] = (uint32_t)g->dst[e];
}

static void free_graph(graph_t *g)
{
    free(g->off);
    free(g->dst);
    free(g->dst32);
    free(g->src);
}

static void reference(const graph_t *g, int single, double *want)
{
    memset(want, 0, (g->ndst ? g->ndst : 1) * sizeof *want);
    for (uint64_t u = 0; u < g->nsrc; u++)
        for (uint64_t e = g->off[u]; e < g->off[u + 1]; e++) {
            uint64_t d = g->dst[e];
            if (d < g->base || d - g->base >= g->ndst) continue;
            want[d - g->base] += single ? (double)(float)g->src[u] : g->src[u];
        }
}

static int check_one(const graph_t *g, int shift, int single, int threads, int dst32)
{
    double *want = malloc((g->ndst + 1) * sizeof *want);
    double *got = malloc((g->ndst + 1) * sizeof *got);
    reference(g, single, want);
    loom_bpull_t *b =
        loom_bpull_build(g->nsrc, g->ndst, g->off, dst32 ? (const void *)g->dst32 : g->dst, dst32,
                         g->base, shift, single, threads, NULL);
    int bad = 0;
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    for (int round = 0; round < 2; round++) { /* a second sum must not see the first */
        for (uint64_t v = 0; v < g->ndst; v++)
            got[v] = -1.0;
        if (round == 1 && single) {
            /* float sources (mirrors sent as floats) give what float bins hold */
            float *f = malloc((g->nsrc + 1) * sizeof *f);
            for (uint64_t u = 0; u < g->nsrc; u++)
                f[u] = (float)g->src[u];
            loom_bpull_sum_f32(b, f, got);
            free(f);
        } else {
            loom_bpull_sum(b, g->src, got);
        }
        for (uint64_t v = 0; v < g->ndst; v++)
            if (memcmp(&got[v], &want[v], sizeof got[v]) != 0) {
                if (bad++ < 3)
                    printf(
                        "\n  nsrc %llu ndst %llu shift %d single %d threads %d: v %llu got %.17g "
                        "want %.17g",
                        (unsigned long long)g->nsrc, (unsigned long long)g->ndst, shift, single,
                        threads, (unsigned long long)v, got[v], want[v]);
            }
    }
    uint64_t arcs = 0, pairs = 0, in_range = 0;
    double bytes = 0;
    loom_bpull_stats(b, &arcs, &pairs, &bytes);
    for (uint64_t e = 0; e < g->m; e++)
        in_range += g->dst[e] >= g->base && g->dst[e] - g->base < g->ndst;
    CU_ASSERT_EQUAL(arcs, in_range);
    CU_ASSERT(pairs <= arcs);
    CU_ASSERT(bytes >= 2.0 * (double)arcs);
    loom_bpull_free(&b);
    CU_ASSERT_PTR_NULL(b);
    free(want);
    free(got);
    return bad;
}

/* The same sums with the scatter split between writers, as shared bins do:
 * the values moved into the caller's memory, every third source written by
 * a push (its positions read off the kernel), the rest kept in the kernel's
 * own scatter, renumbered. */
static int check_split(const graph_t *g, int shift, int single, int threads)
{
    double *want = malloc((g->ndst + 1) * sizeof *want);
    double *got = malloc((g->ndst + 1) * sizeof *got);
    reference(g, single, want);
    loom_bpull_t *b = loom_bpull_build(g->nsrc, g->ndst, g->off, g->dst, 0, g->base, shift, single,
                                       threads, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    uint8_t *keep = malloc(g->nsrc + 1);
    uint64_t *poff = calloc(g->nsrc + 1, sizeof *poff), nk = 0, np = 0;
    for (uint64_t u = 0; u < g->nsrc; u++) {
        const uint32_t *pos;
        keep[u] = u % 3 != 1;
        poff[u + 1] = poff[u] + (keep[u] ? 0 : loom_bpull_pairs(b, u, &pos));
    }
    uint32_t *ppos = malloc((poff[g->nsrc] + 1) * sizeof *ppos);
    double *kept = malloc((g->nsrc + 1) * sizeof *kept);
    for (uint64_t u = 0; u < g->nsrc; u++) {
        const uint32_t *pos;
        uint64_t c = loom_bpull_pairs(b, u, &pos);
        if (keep[u])
            kept[nk++] = g->src[u];
        else
            memcpy(ppos + poff[u], pos, c * sizeof *pos), np += c;
    }
    CU_ASSERT_EQUAL(np, poff[g->nsrc]);
    loom_bpush_t *push = loom_bpush_new(g->nsrc, poff, ppos, single, threads);
    CU_ASSERT_PTR_NOT_NULL_FATAL(push);
    CU_ASSERT_EQUAL_FATAL(loom_bpull_keep(b, keep), 0);
    void *vals = malloc(loom_bpull_vals_bytes(b) + 8);
    loom_bpull_use_vals(b, vals);
    int bad = 0;
    for (int round = 0; round < 2; round++) {
        for (uint64_t v = 0; v < g->ndst; v++)
            got[v] = -1.0;
        loom_bpush_run(push, g->src, vals); /* the push reads every source; writes its own */
        loom_bpull_scatter(b, kept);
        loom_bpull_gather(b, got);
        for (uint64_t v = 0; v < g->ndst; v++)
            if (memcmp(&got[v], &want[v], sizeof got[v]) != 0 && bad++ < 3)
                printf("\n  split: nsrc %llu ndst %llu shift %d single %d threads %d: v %llu got "
                       "%.17g want %.17g",
                       (unsigned long long)g->nsrc, (unsigned long long)g->ndst, shift, single,
                       threads, (unsigned long long)v, got[v], want[v]);
    }
    loom_bpush_free(&push);
    CU_ASSERT_PTR_NULL(push);
    loom_bpull_free(&b);
    free(vals); /* the caller's, not freed by the kernel */
    free(keep);
    free(kept);
    free(want);
    free(got);
    return bad;
}

static void test_random(void)
{
    static const uint64_t sizes[][3] = {
        /* nsrc, ndst, base */
        {1, 1, 0},       {5, 1, 0},          {40, 7, 3},        {300, 300, 0}, {1000, 129, 50},
        {2000, 5000, 0}, {5000, 2000, 1000}, {70000, 70000, 0}, {0, 10, 0},    {10, 0, 0},
    };
    static const int shifts[] = {0, 1, 3, 7, 12, 15};
    int bad = 0;
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        graph_t g;
        make_graph(&g, sizes[s][0], sizes[s][1], sizes[s][2]);
        for (size_t k = 0; k < sizeof shifts / sizeof *shifts; k++) {
            if (g.ndst > 0 && ((g.ndst - 1) >> shifts[k]) >= 65536) continue;
            if (g.ndst > 10000 && shifts[k] < 12) continue; /* time: the large case is for 2^15 */
            for (int threads = 1; threads <= 2; threads++)  /* 3 in the hub test */
                for (int single = 0; single <= 1; single++) {
                    bad += check_one(&g, shifts[k], single, threads, (threads + single) % 2);
                    bad += check_split(&g, shifts[k], single, threads);
                }
        }
        free_graph(&g);
    }
    CU_ASSERT_EQUAL(bad, 0);
}

/* Everything in one partition's bin from one hub, and a destination with
 * thousands of parallel arcs: the pair marks and the run splitting. */
static void test_hub_and_repeats(void)
{
    graph_t g = {.nsrc = 3, .ndst = 40000, .base = 0};
    g.off = calloc(4, sizeof *g.off);
    g.off[1] = 40000;        /* source 0 -> every destination */
    g.off[2] = 40000 + 5000; /* source 1 -> destination 7, 5000 times */
    g.off[3] = g.off[2];     /* source 2: no arcs */
    g.m = g.off[3];
    g.dst = malloc(g.m * sizeof *g.dst);
    g.dst32 = malloc(g.m * sizeof *g.dst32);
    g.src = malloc(3 * sizeof *g.src);
    for (uint64_t e = 0; e < 40000; e++)
        g.dst[e] = e;
    for (uint64_t e = 40000; e < g.m; e++)
        g.dst[e] = 7;
    for (uint64_t e = 0; e < g.m; e++)
        g.dst32[e] = (uint32_t)g.dst[e];
    g.src[0] = 0.25;
    g.src[1] = 1.0 / 3.0;
    g.src[2] = 99.0;
    int bad = 0;
    for (int shift = 0; shift <= 15; shift += 5)
        for (int threads = 1; threads <= 3; threads++)
            bad += check_one(&g, shift, 0, threads, 0) + check_one(&g, shift, 1, threads, 1);
    CU_ASSERT_EQUAL(bad, 0);
    free_graph(&g);
}

static void test_bad_args(void)
{
    uint64_t off[2] = {0, 0};
    uint64_t dst[1] = {0};
    CU_ASSERT_PTR_NULL(loom_bpull_build(1, 4, off, dst, 0, 0, 16, 0, 1, NULL));
    CU_ASSERT_PTR_NULL(loom_bpull_build(1, 4, off, dst, 0, 0, -1, 0, 1, NULL));
    /* more than 65536 partitions */
    CU_ASSERT_PTR_NULL(loom_bpull_build(1, 65537, off, dst, 0, 0, 0, 0, 1, NULL));
    loom_bpull_free(NULL);
}

static void register_suites(void)
{
    static const CU_TestInfo pull[] = {
        {"random multigraphs: bit-equal to a loop over arcs", test_random},
        {"a hub and repeated arcs", test_hub_and_repeats},
        {"bad arguments", test_bad_args},
        {NULL, NULL},
    };
    loom_test_suite("partition-centric sums", pull);
}

int main(int argc, char **argv)
{
    return loom_test_main(argc, argv, register_suites);
}
