/* Raw MPI_Alltoallv bandwidth among the workers (ranks 1..P-1), the ceiling for the MapReduce
 * shuffle. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* usage: alltoallv_bw [BYTES_PER_DEST (default 16M)] [REPS (default 10)]
 * Prints one JSON line from the first worker: per-rank send bandwidth (bytes a
 * rank sends to the other workers per second), median and min/max over REPS. */
static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    long per = argc > 1 ? atol(argv[1]) : 16L << 20;
    int reps = argc > 2 ? atoi(argv[2]) : 10;
    MPI_Comm w;
    /* like Loom, the master (rank 0) takes no part when there are workers */
    MPI_Comm_split(MPI_COMM_WORLD, size > 1 && rank == 0 ? MPI_UNDEFINED : 0, rank, &w);
    if (w != MPI_COMM_NULL) {
        int n, me;
        MPI_Comm_size(w, &n);
        MPI_Comm_rank(w, &me);
        char *sb = malloc((size_t)per * (size_t)n), *rb = malloc((size_t)per * (size_t)n);
        int *cnt = malloc(sizeof(int) * (size_t)n), *dsp = malloc(sizeof(int) * (size_t)n);
        memset(sb, me + 1, (size_t)per * (size_t)n);
        for (int i = 0; i < n; i++)
            cnt[i] = (int)per, dsp[i] = (int)(per * i);
        double *t = malloc(sizeof(double) * (size_t)reps);
        MPI_Alltoallv(sb, cnt, dsp, MPI_BYTE, rb, cnt, dsp, MPI_BYTE, w); /* warm-up */
        for (int r = 0; r < reps; r++) {
            MPI_Barrier(w);
            double t0 = MPI_Wtime();
            MPI_Alltoallv(sb, cnt, dsp, MPI_BYTE, rb, cnt, dsp, MPI_BYTE, w);
            double dt = MPI_Wtime() - t0, mx;
            MPI_Allreduce(&dt, &mx, 1, MPI_DOUBLE, MPI_MAX, w);
            t[r] = (double)per * (n > 1 ? n - 1 : 1) / mx; /* bytes leaving each rank per second */
        }
        qsort(t, (size_t)reps, sizeof *t, cmp_d);
        if (me == 0)
            printf("{\"workers\": %d, \"bytes_per_dest\": %ld, \"reps\": %d, "
                   "\"GBps_per_rank_median\": "
                   "%.3f, \"min\": %.3f, \"max\": %.3f}\n",
                   n, per, reps, t[reps / 2] / 1e9, t[0] / 1e9, t[reps - 1] / 1e9);
        free(sb), free(rb), free(cnt), free(dsp), free(t);
        MPI_Comm_free(&w);
    }
    MPI_Finalize();
    return 0;
}
