/* MPI tests of the graph writers, vertex-value output and atomic output files. */
#include <dirent.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/io_internal.h"
#include "loom_test.h"

enum { N = 257 };

static uint64_t lcg(uint64_t *state)
{
    *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
    return *state >> 33;
}

static MPI_Comm comm(void)
{
    return loom_comm(loom_test_ctx);
}
static int rank(void)
{
    return loom_rank(loom_test_ctx);
}

static void tmp_path(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", loom_test_tmpdir(), name);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* The whole graph, known to every rank, and this rank's CSR slice of it built
 * by hand (independent of the CSR builder): with P >= 2 rank 0 owns nothing. */
typedef struct test_graph {
    uint64_t off[N + 1];
    uint64_t *dst;
    double *w;
    loom_graph_t g;
    uint64_t part[65];
} test_graph_t;

static void make_graph(test_graph_t *t, int weighted, int directed)
{
    memset(t, 0, sizeof *t);
    uint64_t seed = 2024;
    for (int v = 0; v < N; v++)
        t->off[v + 1] = t->off[v] + (v % 11 == 3 ? 0 : lcg(&seed) % 7);
    uint64_t m = t->off[N];
    t->dst = calloc(m + 1, sizeof *t->dst);
    t->w = calloc(m + 1, sizeof *t->w);
    for (int v = 0; v < N; v++) {
        for (uint64_t k = t->off[v]; k < t->off[v + 1]; k++)
            t->dst[k] = lcg(&seed) % N;
        qsort(t->dst + t->off[v], t->off[v + 1] - t->off[v], sizeof *t->dst, cmp_u64);
    }
    for (uint64_t k = 0; k < m; k++)
        t->w[k] = k % 13 == 0 ? 1.0 / 3.0 : (double)k * 0.25 - 7;
    int p = loom_size(loom_test_ctx), r = rank();
    int first = p > 1 ? 1 : 0, owners = p - first;
    t->part[0] = 0;
    for (int i = 0; i < p; i++)
        t->part[i + 1] = i < first ? 0 : (uint64_t)N * (uint64_t)(i - first + 1) / (uint64_t)owners;
    loom_graph_t *g = &t->g;
    g->num_vertices = N;
    g->num_arcs = m;
    g->directed = directed;
    g->weighted = weighted;
    g->nparts = p;
    g->part = t->part;
    g->lo = t->part[r];
    g->hi = t->part[r + 1];
    g->out_off = calloc(g->hi - g->lo + 1, sizeof *g->out_off);
    for (uint64_t v = g->lo; v <= g->hi; v++)
        g->out_off[v - g->lo] = t->off[v] - t->off[g->lo];
    g->out_dst = t->dst + t->off[g->lo];
    g->out_w = weighted ? t->w + t->off[g->lo] : NULL;
}

static void free_graph(test_graph_t *t)
{
    free(t->g.out_off);
    free(t->dst);
    free(t->w);
}

static int cmp2(const void *a, const void *b)
{
    const double *x = a, *y = b;
    if (x[0] != y[0]) return x[0] < y[0] ? -1 : 1;
    return (x[1] > y[1]) - (x[1] < y[1]);
}

/* Every arc of the read result, gathered to rank 0 and compared with the graph. */
static void expect_arcs(const test_graph_t *t, const loom_read_result_t *r, int weighted)
{
    int p = loom_size(loom_test_ctx);
    int mine = (int)r->edges.count, *counts = calloc((size_t)p, sizeof(int));
    MPI_Allgather(&mine, 1, MPI_INT, counts, 1, MPI_INT, comm());
    int total = 0;
    for (int i = 0; i < p; i++)
        total += counts[i];
    CU_ASSERT_EQUAL_FATAL((uint64_t)total, t->off[N]);
    /* Encode an arc as one sortable key plus its weight: (src * N + dst, w). */
    double *local = calloc(2 * (size_t)mine + 2, sizeof *local), *all = NULL;
    for (int i = 0; i < mine; i++) {
        local[2 * i] = (double)(r->edges.src[i] * N + r->edges.dst[i]);
        local[2 * i + 1] = r->edges.weight ? r->edges.weight[i] : 0.0;
    }
    int *rc = calloc((size_t)p, sizeof(int)), *rd = calloc((size_t)p, sizeof(int));
    for (int i = 0, at = 0; i < p; i++) {
        rc[i] = 2 * counts[i];
        rd[i] = at;
        at += rc[i];
    }
    all = calloc(2 * (size_t)total + 2, sizeof *all);
    MPI_Gatherv(local, 2 * mine, MPI_DOUBLE, all, rc, rd, MPI_DOUBLE, 0, comm());
    if (rank() == 0) {
        /* Count matches arc by arc against the multiset of the original. */
        uint64_t m = t->off[N], bad = 0;
        double *want = calloc(2 * m + 2, sizeof *want);
        for (int v = 0; v < N; v++)
            for (uint64_t k = t->off[v]; k < t->off[v + 1]; k++) {
                want[2 * k] = (double)((uint64_t)v * N + t->dst[k]);
                want[2 * k + 1] = weighted ? t->w[k] : 0.0;
            }
        /* Sort pairs by (key, weight) on both sides. */
        qsort(want, m, 2 * sizeof(double), cmp2);
        qsort(all, m, 2 * sizeof(double), cmp2);
        for (uint64_t k = 0; k < 2 * m; k++)
            bad += want[k] != all[k];
        CU_ASSERT_EQUAL(bad, 0);
        free(want);
    }
    free(local);
    free(all);
    free(rc);
    free(rd);
    free(counts);
}

/* No temporary (".NAME.tmp-...") or set-aside (".old-") entries left in LOOM_TMP. */
static void expect_no_temporaries(void)
{
    if (rank() != 0) return;
    DIR *d = opendir(loom_test_tmpdir());
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".loom-tmp.") || strstr(e->d_name, ".loom-old.")) {
            fprintf(stderr, "left behind: %s\n", e->d_name);
            CU_FAIL("temporary left behind");
        }
    closedir(d);
}

static int file_exists(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0;
}

static char *slurp(const char *p, size_t *len)
{
    FILE *f = fopen(p, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = calloc((size_t)n + 1, 1);
    *len = fread(b, 1, (size_t)n, f);
    fclose(f);
    return b;
}

/* ------------------------------------------------------------------ tests */

static void test_h5_round_trip(void)
{
    for (int variant = 0; variant < 2; variant++) {
        int weighted = variant == 0, directed = variant == 0;
        test_graph_t t;
        make_graph(&t, weighted, directed);
        char path[4096];
        tmp_path(path, sizeof path, "rt.h5");
        CU_ASSERT_EQUAL_FATAL(loom_graph_write(loom_test_ctx, &t.g, path, LOOM_FMT_AUTO), LOOM_OK);
        loom_read_result_t r;
        CU_ASSERT_EQUAL_FATAL(loom_read_h5(loom_test_ctx, path, &r), LOOM_OK);
        CU_ASSERT_EQUAL(r.num_vertices, N);
        CU_ASSERT_EQUAL(r.weighted, weighted);
        CU_ASSERT_EQUAL(r.directed, directed);
        CU_ASSERT_EQUAL(r.symmetric, !directed);
        expect_arcs(&t, &r, weighted);
        loom_edges_free(&r.edges);
        free_graph(&t);
    }
    expect_no_temporaries();
}

static void test_edgelist_round_trip(void)
{
    test_graph_t t;
    make_graph(&t, 1, 1);
    char path[4096];
    tmp_path(path, sizeof path, "rt.el");
    CU_ASSERT_EQUAL_FATAL(loom_graph_write(loom_test_ctx, &t.g, path, LOOM_FMT_AUTO), LOOM_OK);
    if (rank() == 0) {
        /* The exact text, in vertex order, formatted here with stdio. */
        size_t cap = 64 * (t.off[N] + 2), at = 0, len = 0;
        char *want = malloc(cap);
        /* First the vertex count, so that isolated top vertices survive. */
        at += (size_t)snprintf(want, cap, "# loom-graph vertices=%d arcs=%llu\n", N,
                               (unsigned long long)t.off[N]);
        for (int v = 0; v < N; v++)
            for (uint64_t k = t.off[v]; k < t.off[v + 1]; k++)
                at += (size_t)snprintf(want + at, cap - at, "%d %llu %.17g\n", v,
                                       (unsigned long long)t.dst[k], t.w[k]);
        char *got = slurp(path, &len);
        CU_ASSERT_PTR_NOT_NULL_FATAL(got);
        CU_ASSERT_EQUAL(len, at);
        CU_ASSERT(len == at && memcmp(got, want, at) == 0);
        free(got);
        free(want);
    }
    loom_read_result_t r;
    CU_ASSERT_EQUAL_FATAL(loom_read_edgelist(loom_test_ctx, path, &r), LOOM_OK);
    expect_arcs(&t, &r, 1);
    loom_edges_free(&r.edges);

    /* Matrix Market too, read back by our reader. */
    tmp_path(path, sizeof path, "rt.mtx");
    CU_ASSERT_EQUAL_FATAL(loom_graph_write(loom_test_ctx, &t.g, path, LOOM_FMT_MTX), LOOM_OK);
    CU_ASSERT_EQUAL_FATAL(loom_read_mtx(loom_test_ctx, path, &r), LOOM_OK);
    CU_ASSERT_EQUAL(r.num_vertices, N);
    expect_arcs(&t, &r, 1);
    loom_edges_free(&r.edges);
    free_graph(&t);
    expect_no_temporaries();
}

static void test_vertex_values(void)
{
    test_graph_t t;
    make_graph(&t, 0, 1);
    uint64_t nloc = t.g.hi - t.g.lo;
    double *vals = calloc(nloc + 1, sizeof *vals);
    for (uint64_t i = 0; i < nloc; i++) {
        uint64_t v = t.g.lo + i;
        vals[i] = v == 5 ? INFINITY : (double)v / 7.0;
    }
    char path[4096];
    tmp_path(path, sizeof path, "vals.tsv");
    CU_ASSERT_EQUAL_FATAL(loom_write_vertex_values(loom_test_ctx, &t.g, path, "rank", vals),
                          LOOM_OK);
    if (rank() == 0) {
        size_t cap = 64 * N, at = 0, len = 0;
        char *want = malloc(cap);
        for (int v = 0; v < N; v++) {
            if (v == 5)
                at += (size_t)snprintf(want + at, cap - at, "%d\tinf\n", v);
            else
                at += (size_t)snprintf(want + at, cap - at, "%d\t%.17g\n", v, (double)v / 7.0);
        }
        char *got = slurp(path, &len);
        CU_ASSERT_PTR_NOT_NULL_FATAL(got);
        CU_ASSERT(len == at && memcmp(got, want, at) == 0);
        free(got);
        free(want);
    }
    tmp_path(path, sizeof path, "vals.h5");
    CU_ASSERT_EQUAL_FATAL(loom_write_vertex_values(loom_test_ctx, &t.g, path, "rank", vals),
                          LOOM_OK);
    if (rank() == 0) {
        double got[N];
        hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
        CU_ASSERT_FATAL(f >= 0);
        hid_t d = H5Dopen2(f, "/rank", H5P_DEFAULT);
        CU_ASSERT_FATAL(d >= 0);
        hid_t s = H5Dget_space(d);
        CU_ASSERT_EQUAL(H5Sget_simple_extent_npoints(s), N);
        CU_ASSERT(H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, got) >= 0);
        int bad = 0;
        for (int v = 0; v < N; v++)
            bad += v == 5 ? !isinf(got[v]) : got[v] != (double)v / 7.0;
        CU_ASSERT_EQUAL(bad, 0);
        H5Sclose(s);
        H5Dclose(d);
        H5Fclose(f);
    }
    free(vals);
    free_graph(&t);
    expect_no_temporaries();
}

static void test_atomic_output(void)
{
    loom_ctx_t *c = loom_test_ctx;
    char path[4096];
    int last = loom_size(c) - 1;

    /* A failure on one rank leaves neither the final file nor the temporary. */
    tmp_path(path, sizeof path, "never.txt");
    loom_output_t *o = NULL;
    CU_ASSERT_EQUAL_FATAL(loom_output_begin(c, comm(), path, 0, &o), LOOM_OK);
    CU_ASSERT(file_exists(loom_output_path(o)));
    loom_status_t st = LOOM_OK;
    if (rank() == last) st = LOOM_ERROR(c, LOOM_ERR_FORMAT, "planted failure");
    CU_ASSERT_EQUAL(loom_output_end(c, &o, st), LOOM_ERR_FORMAT);
    CU_ASSERT_PTR_NULL(o);
    CU_ASSERT_STRING_EQUAL(loom_error_message(c), "planted failure");
    loom_error_clear(c);
    MPI_Barrier(comm());
    CU_ASSERT(!file_exists(path));
    expect_no_temporaries();

    /* Success replaces an existing file. */
    tmp_path(path, sizeof path, "replace.txt");
    if (rank() == 0) {
        FILE *f = fopen(path, "w");
        fputs("old contents\n", f);
        fclose(f);
    }
    MPI_Barrier(comm());
    CU_ASSERT_EQUAL_FATAL(loom_output_begin(c, comm(), path, 0, &o), LOOM_OK);
    if (rank() == 0) {
        FILE *f = fopen(loom_output_path(o), "w");
        fputs("new\n", f);
        fclose(f);
    }
    CU_ASSERT_EQUAL(loom_output_end(c, &o, LOOM_OK), LOOM_OK);
    if (rank() == 0) {
        size_t len = 0;
        char *got = slurp(path, &len);
        CU_ASSERT(got && strcmp(got, "new\n") == 0);
        free(got);
    }

    /* A directory of part files, twice: the second replaces the first (an
     * earlier Loom output, replaced because the caller allows it). */
    tmp_path(path, sizeof path, "parts");
    for (int round = 0; round < 2; round++) {
        CU_ASSERT_EQUAL_FATAL(
            loom_output_begin(c, comm(), path, LOOM_OUTPUT_DIR | LOOM_OUTPUT_OVERWRITE, &o),
            LOOM_OK);
        char part[4200];
        snprintf(part, sizeof part, "%s/part-%05d", loom_output_path(o), rank() + 10 * round);
        FILE *f = fopen(part, "w");
        CU_ASSERT_PTR_NOT_NULL(f);
        if (f) fclose(f);
        CU_ASSERT_EQUAL(loom_output_end(c, &o, LOOM_OK), LOOM_OK);
    }
    if (rank() == 0) {
        DIR *d = opendir(path);
        CU_ASSERT_PTR_NOT_NULL_FATAL(d);
        int n = 0, old = 0;
        struct dirent *e;
        int mark = 0;
        while ((e = readdir(d)))
            if (!strcmp(e->d_name, "_SUCCESS")) {
                mark = 1;
            } else if (e->d_name[0] != '.') {
                n++;
                old += strcmp(e->d_name, "part-00010") < 0;
            }
        closedir(d);
        CU_ASSERT_EQUAL(n, loom_size(c));
        CU_ASSERT_EQUAL(old, 0);
        CU_ASSERT(mark);
    }
    /* A failed directory output is removed with its contents. */
    tmp_path(path, sizeof path, "parts-failed");
    CU_ASSERT_EQUAL_FATAL(loom_output_begin(c, comm(), path, 1, &o), LOOM_OK);
    char part[4200];
    snprintf(part, sizeof part, "%s/part-%05d", loom_output_path(o), rank());
    FILE *f = fopen(part, "w");
    if (f) fclose(f);
    st = rank() == 0 ? LOOM_ERROR(c, LOOM_ERR_IO, "planted") : LOOM_OK;
    CU_ASSERT_EQUAL(loom_output_end(c, &o, st), LOOM_ERR_IO);
    loom_error_clear(c);
    MPI_Barrier(comm());
    CU_ASSERT(!file_exists(path));

    /* An output directory that does not exist fails on every rank with its name. */
    tmp_path(path, sizeof path, "no/such/dir/g.h5");
    test_graph_t t;
    make_graph(&t, 0, 1);
    CU_ASSERT_EQUAL(loom_graph_write(c, &t.g, path, LOOM_FMT_AUTO), LOOM_ERR_IO);
    CU_ASSERT(strstr(loom_error_message(c), "does not exist") != NULL);
    loom_error_clear(c);
    free_graph(&t);
    expect_no_temporaries();
}

static void register_suites(void)
{
    static const CU_TestInfo writers[] = {
        {"hdf5 write then read", test_h5_round_trip},
        {"edge list and matrix market write then read", test_edgelist_round_trip},
        {"vertex values as text and hdf5", test_vertex_values},
        {"atomic output", test_atomic_output},
        {NULL, NULL},
    };
    loom_test_suite("writers", writers);
}

int main(int argc, char **argv)
{
    return loom_test_main(argc, argv, register_suites);
}
