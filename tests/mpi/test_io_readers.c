/* MPI tests of the graph readers: same edges and the same error lines at any rank count. */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/io_internal.h"
#include "loom_test.h"

typedef struct triple {
    uint64_t s, d;
    double w;
} triple_t;

static int cmp_triple(const void *a, const void *b)
{
    const triple_t *x = a, *y = b;
    if (x->s != y->s) return x->s < y->s ? -1 : 1;
    if (x->d != y->d) return x->d < y->d ? -1 : 1;
    return (x->w > y->w) - (x->w < y->w);
}

static uint64_t lcg(uint64_t *state)
{
    *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
    return *state >> 33;
}

static void tmp_path(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", loom_test_tmpdir(), name);
}

static MPI_Comm comm(void)
{
    return loom_comm(loom_test_ctx);
}

/* Gather every rank's edges on every rank, sorted. Returns the count. */
static size_t gather_sorted(const loom_read_result_t *r, triple_t **out)
{
    int size = loom_size(loom_test_ctx);
    int mine = (int)r->edges.count;
    int *counts = calloc((size_t)size, sizeof *counts),
        *displs = calloc((size_t)size, sizeof *displs);
    MPI_Allgather(&mine, 1, MPI_INT, counts, 1, MPI_INT, comm());
    size_t total = 0;
    for (int i = 0; i < size; i++) {
        displs[i] = (int)total;
        total += (size_t)counts[i];
    }
    triple_t *local = calloc((size_t)mine + 1, sizeof *local);
    for (int i = 0; i < mine; i++) {
        local[i].s = r->edges.src[i];
        local[i].d = r->edges.dst[i];
        local[i].w = r->edges.weight ? r->edges.weight[i] : 0.0;
    }
    MPI_Datatype t;
    MPI_Type_contiguous((int)sizeof(triple_t), MPI_BYTE, &t);
    MPI_Type_commit(&t);
    triple_t *all = calloc(total + 1, sizeof *all);
    MPI_Allgatherv(local, mine, t, all, counts, displs, t, comm());
    MPI_Type_free(&t);
    qsort(all, total, sizeof *all, cmp_triple);
    free(local);
    free(counts);
    free(displs);
    *out = all;
    return total;
}

static int rank_is_worker_or_alone(void)
{
    return loom_is_worker(loom_test_ctx);
}

static void expect_same(const loom_read_result_t *r, triple_t *want, size_t n)
{
    triple_t *got = NULL;
    size_t m = gather_sorted(r, &got);
    qsort(want, n, sizeof *want, cmp_triple);
    CU_ASSERT_EQUAL_FATAL(m, n);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        if (got[i].s != want[i].s || got[i].d != want[i].d || got[i].w != want[i].w) bad++;
    CU_ASSERT_EQUAL(bad, 0);
    /* The master reads nothing when there are workers. */
    if (!rank_is_worker_or_alone()) CU_ASSERT_EQUAL(r->edges.count, 0);
    free(got);
}

static void expect_error(loom_status_t st, const char *needle)
{
    CU_ASSERT_EQUAL(st, LOOM_ERR_FORMAT);
    const char *msg = loom_error_message(loom_test_ctx);
    if (!strstr(msg, needle)) {
        fprintf(stderr, "[r%d] message '%s' lacks '%s'\n", loom_rank(loom_test_ctx), msg, needle);
        CU_FAIL("wrong message");
    }
    loom_error_clear(loom_test_ctx);
}

/* ------------------------------------------------------------------ edge lists */

#define EL_LINES 3000

static void test_edgelist_any_ranks(void)
{
    char path[4096];
    tmp_path(path, sizeof path, "rand.el");
    triple_t *want = calloc(EL_LINES + 1, sizeof *want);
    size_t n = 0;
    uint64_t seed = 12345;
    FILE *f = loom_rank(loom_test_ctx) == 0 ? fopen(path, "wb") : NULL;
    if (f) fputs("# random test graph\n% second comment style\n", f);
    for (int i = 0; i < EL_LINES; i++) {
        uint64_t s = lcg(&seed) % 1000, d = lcg(&seed) % 1000;
        double w = (double)(lcg(&seed) % 1000) / 8.0;
        if (i == 1234) s = LOOM_MAX_VERTEX_ID; /* a huge id near 2^63 */
        want[n++] = (triple_t){s, d, w};
        if (!f) continue;
        if (i % 37 == 0) fputs("# comment line\n", f);
        if (i % 53 == 0) fputs("\n  \t\n", f);
        fprintf(f, i % 5 == 0 ? "%llu\t%llu  %.17g" : "%llu %llu %.17g", (unsigned long long)s,
                (unsigned long long)d, w);
        if (i + 1 < EL_LINES) fputs(i % 2 ? "\r\n" : "\n", f); /* last line: no newline */
    }
    if (f) fclose(f);
    MPI_Barrier(comm());
    loom_read_result_t r;
    CU_ASSERT_EQUAL_FATAL(loom_read_edgelist(loom_test_ctx, path, &r), LOOM_OK);
    CU_ASSERT_EQUAL(r.num_vertices, LOOM_MAX_VERTEX_ID + 1);
    CU_ASSERT_EQUAL(r.weighted, 1);
    CU_ASSERT_EQUAL(r.directed, 1);
    expect_same(&r, want, n);
    loom_edges_free(&r.edges);
    free(want);
}

/* The reported line is the file's line, whichever rank read it. */
static void test_edgelist_error_lines(void)
{
    char path[4096];
    tmp_path(path, sizeof path, "bad.el");
    if (loom_rank(loom_test_ctx) == 0) {
        FILE *f = fopen(path, "wb");
        for (int line = 1; line <= 4000; line++) {
            if (line == 2500)
                fputs("17 -4\n", f);
            else if (line == 3900)
                fputs("oops\n", f);
            else if (line % 10 == 0)
                fputs("# note\n", f);
            else
                fprintf(f, "%d %d\n", line, line + 1);
        }
        fclose(f);
    }
    MPI_Barrier(comm());
    loom_read_result_t r;
    expect_error(loom_read_edgelist(loom_test_ctx, path, &r), "bad.el:2500: negative");

    tmp_path(path, sizeof path, "mixed.el");
    if (loom_rank(loom_test_ctx) == 0) {
        FILE *f = fopen(path, "wb");
        for (int line = 1; line <= 3000; line++)
            fprintf(f, line == 2999 ? "%d %d\n" : "%d %d 1.0\n", line, line + 1);
        fclose(f);
    }
    MPI_Barrier(comm());
    expect_error(loom_read_edgelist(loom_test_ctx, path, &r), "mixed.el:2999: malformed line: 2");
}

/* Big enough for each rank to split its range among its threads. */
static void test_edgelist_threads(void)
{
    enum { LINES = 300000, BAD1 = 140001, BAD2 = 290000 };
    char path[4096], badpath[4096];
    tmp_path(path, sizeof path, "big.el");
    tmp_path(badpath, sizeof badpath, "bigbad.el");
    if (loom_rank(loom_test_ctx) == 0) {
        FILE *f = fopen(path, "wb"), *g = fopen(badpath, "wb");
        for (int line = 1; line <= LINES; line++) {
            fprintf(f, "%d %d\n", line, line % 977);
            if (line == BAD1 || line == BAD2)
                fputs("5 5 5 5\n", g);
            else
                fprintf(g, "%d %d\n", line, line % 977);
        }
        fclose(f);
        fclose(g);
    }
    MPI_Barrier(comm());
    loom_read_result_t r;
    CU_ASSERT_EQUAL_FATAL(loom_read_edgelist(loom_test_ctx, path, &r), LOOM_OK);
    uint64_t sums[3] = {r.edges.count, 0, 0}, all[3];
    for (size_t i = 0; i < r.edges.count; i++) {
        sums[1] += r.edges.src[i];
        sums[2] += r.edges.dst[i] * (r.edges.src[i] % 7 + 1);
    }
    MPI_Allreduce(sums, all, 3, MPI_UINT64_T, MPI_SUM, comm());
    uint64_t want[3] = {LINES, 0, 0};
    for (uint64_t line = 1; line <= LINES; line++) {
        want[1] += line;
        want[2] += (line % 977) * (line % 7 + 1);
    }
    CU_ASSERT_EQUAL(all[0], want[0]);
    CU_ASSERT_EQUAL(all[1], want[1]);
    CU_ASSERT_EQUAL(all[2], want[2]);
    CU_ASSERT_EQUAL(r.num_vertices, LINES + 1);
    loom_edges_free(&r.edges);
    expect_error(loom_read_edgelist(loom_test_ctx, badpath, &r),
                 "bigbad.el:140001: malformed line: 4 columns");
}

/* ------------------------------------------------------------------ Matrix Market */

static void test_mtx_any_ranks(void)
{
    char path[4096];
    tmp_path(path, sizeof path, "sym.mtx");
    enum { NNZ = 2500, N = 700 };
    triple_t *want = calloc(NNZ, sizeof *want);
    uint64_t seed = 99;
    FILE *f = loom_rank(loom_test_ctx) == 0 ? fopen(path, "wb") : NULL;
    if (f)
        fprintf(f, "%%%%MatrixMarket matrix coordinate integer symmetric\n%% c\n%d %d %d\n", N,
                N - 5, NNZ);
    for (int i = 0; i < NNZ; i++) {
        uint64_t a = lcg(&seed) % N, b = lcg(&seed) % (N - 5);
        int v = (int)(lcg(&seed) % 100) - 50;
        want[i] = (triple_t){a, b, (double)v};
        if (f)
            fprintf(f, "%llu %llu %d\n", (unsigned long long)a + 1, (unsigned long long)b + 1, v);
    }
    if (f) fclose(f);
    MPI_Barrier(comm());
    loom_read_result_t r;
    CU_ASSERT_EQUAL_FATAL(loom_read_mtx(loom_test_ctx, path, &r), LOOM_OK);
    CU_ASSERT_EQUAL(r.num_vertices, N);
    CU_ASSERT_EQUAL(r.directed, 0);
    CU_ASSERT_EQUAL(r.symmetric, 0);
    CU_ASSERT_EQUAL(r.weighted, 1);
    expect_same(&r, want, NNZ);
    loom_edges_free(&r.edges);
    free(want);

    /* Fewer entries than declared, at any rank count. */
    tmp_path(path, sizeof path, "short.mtx");
    if (loom_rank(loom_test_ctx) == 0) {
        f = fopen(path, "wb");
        fprintf(f, "%%%%MatrixMarket matrix coordinate pattern general\n50 50 1000\n");
        for (int i = 0; i < 999; i++)
            fprintf(f, "%d %d\n", i % 50 + 1, (i * 7) % 50 + 1);
        fclose(f);
    }
    MPI_Barrier(comm());
    expect_error(loom_read_mtx(loom_test_ctx, path, &r),
                 "short.mtx: the size line declares 1000 entries but the file has 999");
}

/* ------------------------------------------------------------------ HDF5 */

/* Rank 0 writes a CSR file with plain serial HDF5, independent of Loom's writer. */
static void write_csr_serial(const char *path, uint64_t n, const uint64_t *off, const uint32_t *tgt,
                             const double *w, int directed)
{
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t g = H5Gcreate2(f, "/graph", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    uint64_t m = off[n];
    hid_t sc = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(g, "num_vertices", H5T_STD_U64LE, sc, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_UINT64, &n);
    H5Aclose(a);
    a = H5Acreate2(g, "num_edges", H5T_STD_U64LE, sc, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_UINT64, &m);
    H5Aclose(a);
    a = H5Acreate2(g, "directed", H5T_STD_U8LE, sc, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT, &directed);
    H5Aclose(a);
    H5Sclose(sc);
    hsize_t dn = n + 1, dm = m;
    hid_t s = H5Screate_simple(1, &dn, NULL);
    hid_t d = H5Dcreate2(g, "offsets", H5T_STD_U64LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, off);
    H5Dclose(d);
    H5Sclose(s);
    s = H5Screate_simple(1, &dm, NULL);
    d = H5Dcreate2(g, "targets", H5T_STD_U32LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, H5T_NATIVE_UINT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, tgt);
    H5Dclose(d);
    if (w) {
        d = H5Dcreate2(g, "weights", H5T_IEEE_F64LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, w);
        H5Dclose(d);
    }
    H5Sclose(s);
    H5Gclose(g);
    H5Fclose(f);
}

static void test_h5_any_ranks(void)
{
    enum { N = 301 };
    uint64_t *off = calloc(N + 1, sizeof *off);
    uint64_t seed = 7;
    for (int v = 0; v < N; v++)
        off[v + 1] = off[v] + (v % 17 == 0 ? 0 : lcg(&seed) % 9);
    uint64_t m = off[N];
    uint32_t *tgt = calloc(m + 1, sizeof *tgt);
    double *w = calloc(m + 1, sizeof *w);
    triple_t *want = calloc(m + 1, sizeof *want);
    for (int v = 0; v < N; v++)
        for (uint64_t k = off[v]; k < off[v + 1]; k++) {
            tgt[k] = (uint32_t)(lcg(&seed) % N);
            w[k] = (double)k / 3.0;
            want[k] = (triple_t){(uint64_t)v, tgt[k], w[k]};
        }
    char path[4096], bad[4096], cut[4096];
    tmp_path(path, sizeof path, "serial.h5");
    tmp_path(bad, sizeof bad, "nonmono.h5");
    tmp_path(cut, sizeof cut, "cut.h5");
    if (loom_rank(loom_test_ctx) == 0) {
        write_csr_serial(path, N, off, tgt, w, 0);
        uint64_t keep = off[150];
        off[150] = off[151] + 1; /* breaks monotonicity at vertex 150 */
        write_csr_serial(bad, N, off, tgt, NULL, 1);
        off[150] = keep;
        /* A copy cut in half. */
        FILE *in = fopen(path, "rb"), *out = fopen(cut, "wb");
        fseek(in, 0, SEEK_END);
        long size = ftell(in);
        fseek(in, 0, SEEK_SET);
        char *buf = malloc((size_t)size);
        CU_ASSERT(fread(buf, 1, (size_t)size, in) == (size_t)size);
        fwrite(buf, 1, (size_t)size / 2, out);
        free(buf);
        fclose(in);
        fclose(out);
    }
    MPI_Barrier(comm());
    loom_read_result_t r;
    CU_ASSERT_EQUAL_FATAL(loom_read_h5(loom_test_ctx, path, &r), LOOM_OK);
    CU_ASSERT_EQUAL(r.num_vertices, N);
    CU_ASSERT_EQUAL(r.directed, 0);
    CU_ASSERT_EQUAL(r.symmetric, 1);
    CU_ASSERT_EQUAL(r.weighted, 1);
    expect_same(&r, want, m);
    loom_edges_free(&r.edges);

    expect_error(loom_read_h5(loom_test_ctx, bad, &r),
                 "nonmono.h5: /graph/offsets is not non-decreasing");
    expect_error(loom_read_h5(loom_test_ctx, cut, &r),
                 "cut.h5: cannot open the HDF5 file (truncated");
    free(off);
    free(tgt);
    free(w);
    free(want);
}

/* One vertex holds most arcs: slices balanced by arcs leave several workers
 * empty or sharing a boundary, which must still read every arc once. */
static void test_h5_skewed(void)
{
    enum { N = 300, HUB = 3000 };
    uint64_t *off = calloc(N + 1, sizeof *off);
    for (int v = 0; v < N; v++)
        off[v + 1] = off[v] + (v == 0 ? HUB : 1);
    uint64_t m = off[N];
    uint32_t *tgt = calloc(m, sizeof *tgt);
    triple_t *want = calloc(m, sizeof *want);
    for (int v = 0; v < N; v++)
        for (uint64_t k = off[v]; k < off[v + 1]; k++) {
            tgt[k] = (uint32_t)(k % N);
            want[k] = (triple_t){(uint64_t)v, tgt[k], 0.0};
        }
    char path[4096];
    tmp_path(path, sizeof path, "skew.h5");
    if (loom_rank(loom_test_ctx) == 0) write_csr_serial(path, N, off, tgt, NULL, 1);
    MPI_Barrier(comm());
    loom_read_result_t r;
    CU_ASSERT_EQUAL_FATAL(loom_read_h5(loom_test_ctx, path, &r), LOOM_OK);
    CU_ASSERT_EQUAL(r.weighted, 0);
    expect_same(&r, want, m);
    loom_edges_free(&r.edges);
    free(off);
    free(tgt);
    free(want);
}

static void register_suites(void)
{
    static const CU_TestInfo readers[] = {
        {"edge list: same edges at any rank count", test_edgelist_any_ranks},
        {"edge list: error names the file's line", test_edgelist_error_lines},
        {"edge list: threads within a rank", test_edgelist_threads},
        {"matrix market at any rank count", test_mtx_any_ranks},
        {"hdf5 at any rank count", test_h5_any_ranks},
        {"hdf5 with one hub vertex", test_h5_skewed},
        {NULL, NULL},
    };
    loom_test_suite("readers", readers);
}

int main(int argc, char **argv)
{
    return loom_test_main(argc, argv, register_suites);
}
