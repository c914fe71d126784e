/* STREAM-style triad a[i] = b[i] + s * c[i] over arrays far larger than the
 * caches, on OMP_NUM_THREADS threads: the machine's sustainable memory
 * bandwidth, to set kernel figures against (bytes counted as STREAM does:
 * 3 x 8 per element, write-allocate traffic not counted).
 *
 *   cc -O3 -march=native -fopenmp triad.c -o triad && ./triad [MiB per array] [reps]
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 512;
    int reps = argc > 2 ? atoi(argv[2]) : 10;
    size_t n = mib * 1048576 / sizeof(double);
    double *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *c = malloc(n * sizeof *c);
    if (!a || !b || !c) return 1;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        a[i] = 0.0;
        b[i] = 1.0;
        c[i] = 2.0;
    }
    double best = 0, sum = 0;
    for (int r = 0; r < reps; r++) {
        double t0 = omp_get_wtime();
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++)
            a[i] = b[i] + 3.0 * c[i];
        double gbs = 3.0 * (double)n * sizeof(double) / (omp_get_wtime() - t0) / 1e9;
        if (gbs > best) best = gbs;
        sum += gbs;
    }
    printf("triad threads=%d array_mib=%zu best_gbs=%.2f mean_gbs=%.2f check=%g\n",
           omp_get_max_threads(), mib, best, sum / reps, a[n / 2]);
    free(a);
    free(b);
    free(c);
    return 0;
}
