/* PageRank with SuiteSparse:GraphBLAS on a Loom HDF5 graph: the peer in scripts/bench/pagerank.py.
 *
 * Same definition as `loom pagerank --iters N` (float64, damping d, dangling
 * mass spread uniformly, init 1/n), so the per-iteration time compares like
 * with like. Prints one line: "gb_pagerank n=.. arcs=.. iters=.. threads=..
 * seconds_per_iteration=.. sum=.. max=..". Built by the bench script, not by CMake:
 *   mpicc -O3 -march=native -fopenmp gb_pagerank.c -I/usr/include/hdf5/openmpi \
 *         -lhdf5_openmpi -lgraphblas -o gb_pagerank
 * Usage: gb_pagerank GRAPH.h5 [iters=20] [damping=0.85] */
#include <GraphBLAS.h>
#include <hdf5.h>
#include <mpi.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK(call)                                                                                \
    do {                                                                                           \
        GrB_Info info_ = (call);                                                                   \
        if (info_ != GrB_SUCCESS) {                                                                \
            fprintf(stderr, "gb_pagerank: %s failed (%d) at line %d\n", #call, (int)info_,         \
                    __LINE__);                                                                     \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static uint64_t *read_u64(hid_t f, const char *name, hsize_t *len)
{
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    if (d < 0) {
        fprintf(stderr, "gb_pagerank: missing %s\n", name);
        exit(1);
    }
    hid_t s = H5Dget_space(d);
    H5Sget_simple_extent_dims(s, len, NULL);
    uint64_t *buf = malloc((*len ? *len : 1) * sizeof *buf);
    if (!buf || H5Dread(d, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        fprintf(stderr, "gb_pagerank: cannot read %s\n", name);
        exit(1);
    }
    H5Sclose(s);
    H5Dclose(d);
    return buf;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: gb_pagerank GRAPH.h5 [iters] [damping]\n");
        return 2;
    }
    MPI_Init(&argc, &argv); /* the parallel HDF5 build expects it */
    int iters = argc > 2 ? atoi(argv[2]) : 20;
    double damp = argc > 3 ? atof(argv[3]) : 0.85;

    hid_t f = H5Fopen(argv[1], H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        fprintf(stderr, "gb_pagerank: cannot open %s\n", argv[1]);
        return 1;
    }
    hsize_t n1 = 0, m = 0;
    uint64_t *off = read_u64(f, "/graph/offsets", &n1);
    uint64_t *dst = read_u64(f, "/graph/targets", &m);
    H5Fclose(f);
    GrB_Index n = n1 - 1;

    CHECK(GrB_init(GrB_NONBLOCKING));
    /* Out-degree reciprocals and the dangling indicator, from the offsets. */
    double *dinv = malloc(n * sizeof *dinv), *dang = malloc(n * sizeof *dang);
    for (GrB_Index v = 0; v < n; v++) {
        uint64_t d = off[v + 1] - off[v];
        dinv[v] = d ? 1.0 / (double)d : 0.0;
        dang[v] = d ? 0.0 : 1.0;
    }
    /* A(u, v) = 1 for each arc u->v; import takes ownership of the arrays. */
    GrB_Matrix A, AT;
    bool *one = malloc(sizeof *one);
    *one = true;
    CHECK(GxB_Matrix_import_CSR(&A, GrB_BOOL, n, n, &off, &dst, (void **)&one,
                                (n + 1) * sizeof(uint64_t), m * sizeof(uint64_t), sizeof(bool),
                                true, false, NULL));
    CHECK(GrB_Matrix_new(&AT, GrB_BOOL, n, n));
    CHECK(GrB_transpose(AT, NULL, NULL, A, NULL)); /* pull form: row v lists in-neighbours */
    GrB_Matrix_free(&A);

    GrB_Vector r, t, w, vdinv, vdang;
    CHECK(GrB_Vector_new(&r, GrB_FP64, n));
    CHECK(GrB_Vector_new(&t, GrB_FP64, n));
    CHECK(GrB_Vector_new(&w, GrB_FP64, n));
    CHECK(GrB_Vector_new(&vdinv, GrB_FP64, n));
    CHECK(GrB_Vector_new(&vdang, GrB_FP64, n));
    CHECK(GxB_Vector_pack_Full(vdinv, (void **)&dinv, n * sizeof(double), false, NULL));
    CHECK(GxB_Vector_pack_Full(vdang, (void **)&dang, n * sizeof(double), false, NULL));
    CHECK(GrB_Vector_assign_FP64(r, NULL, NULL, 1.0 / (double)n, GrB_ALL, n, NULL));
    CHECK(GrB_Vector_wait(r, GrB_MATERIALIZE));

    double t0 = omp_get_wtime();
    for (int it = 0; it < iters; it++) {
        double dsum = 0;
        CHECK(GrB_eWiseMult(t, NULL, NULL, GrB_TIMES_FP64, r, vdang, NULL));
        CHECK(GrB_Vector_reduce_FP64(&dsum, NULL, GrB_PLUS_MONOID_FP64, t, NULL));
        CHECK(GrB_eWiseMult(t, NULL, NULL, GrB_TIMES_FP64, r, vdinv, NULL));
        CHECK(GrB_mxv(w, NULL, NULL, GxB_PLUS_SECOND_FP64, AT, t, NULL));
        double base = (1.0 - damp) / (double)n + damp * dsum / (double)n;
        CHECK(GrB_Vector_assign_FP64(r, NULL, NULL, base, GrB_ALL, n, NULL));
        CHECK(GrB_Vector_apply_BinaryOp2nd_FP64(r, NULL, GrB_PLUS_FP64, GrB_TIMES_FP64, w, damp,
                                                NULL));
        CHECK(GrB_Vector_wait(r, GrB_MATERIALIZE));
    }
    double secs = omp_get_wtime() - t0;
    double sum = 0, top = 0;
    CHECK(GrB_Vector_reduce_FP64(&sum, NULL, GrB_PLUS_MONOID_FP64, r, NULL));
    CHECK(GrB_Vector_reduce_FP64(&top, NULL, GrB_MAX_MONOID_FP64, r, NULL));
    int nthreads = 0;
    GxB_Global_Option_get(GxB_NTHREADS, &nthreads);
    printf("gb_pagerank n=%llu arcs=%llu iters=%d threads=%d seconds_per_iteration=%.6f sum=%.12f "
           "max=%.10g\n",
           (unsigned long long)n, (unsigned long long)m, iters, nthreads,
           iters ? secs / iters : 0.0, sum, top);
    GrB_Matrix_free(&AT);
    GrB_Vector_free(&r);
    GrB_Vector_free(&t);
    GrB_Vector_free(&w);
    GrB_Vector_free(&vdinv);
    GrB_Vector_free(&vdang);
    GrB_finalize();
    MPI_Finalize();
    return 0;
}
