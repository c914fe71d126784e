/* Partition-centric sums over arcs: bins written by sources, walked by partitions. */
#include "kernels/pull_blocked.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

struct loom_bpull {
    uint64_t nsrc, ndst, arcs, pairs;
    uint32_t nparts;
    int shift, nthreads, single; /* partitions of 2^shift destinations */
    uint64_t *sb;                /* nthreads + 1: each thread's sources in the scatter */
    uint64_t *poff;              /* nsrc + 1: pairs of source u are [poff[u], poff[u + 1]) */
    uint32_t *ppos;              /* per pair (source order): where its value goes in the bins */
    uint64_t *pbase;             /* nparts + 1: bin q holds values [pbase[q], pbase[q + 1]) */
    uint64_t *abase;             /* nparts + 1: and offsets [abase[q], abase[q + 1]) */
    uint16_t *ids; /* per arc, bin order: offset in its partition | 0x8000 on a pair's first */
    void *vals;    /* pairs values, float when single else double */
    size_t bytes;  /* memory held */
};

/* Large arrays on 2 MiB pages where the kernel allows: they are streamed,
 * and the bins are written through many cursors at once. */
static void *alloc_big(size_t bytes, size_t *total)
{
    const size_t huge = (size_t)2 << 20;
    void *p = NULL;
    if (bytes == 0) bytes = 1;
    *total += bytes;
    if (bytes < huge) return malloc(bytes);
    if (posix_memalign(&p, huge, (bytes + huge - 1) / huge * huge) != 0) return NULL;
    madvise(p, (bytes + huge - 1) / huge * huge, MADV_HUGEPAGE); /* advice only */
    return p;
}

static inline uint64_t dst_at(const void *dst, int dst32, uint64_t e)
{
    return dst32 ? ((const uint32_t *)dst)[e] : ((const uint64_t *)dst)[e];
}

void loom_bpull_free(loom_bpull_t **bp)
{
    if (!bp || !*bp) return;
    loom_bpull_t *b = *bp;
    free(b->sb);
    free(b->poff);
    free(b->ppos);
    free(b->pbase);
    free(b->abase);
    free(b->ids);
    free(b->vals);
    free(b);
    *bp = NULL;
}

/* Walk thread t's sources, calling PAIR(u, q, first arc, end arc) for every
 * run of arcs of source u into partition q. */
#define BPULL_RUNS(b, t, off, dst, dst32, base, PAIR)                                              \
    for (uint64_t u = (b)->sb[t]; u < (b)->sb[(t) + 1]; u++) {                                     \
        uint64_t e = (off)[u], e1 = (off)[u + 1];                                                  \
        while (e < e1) {                                                                           \
            uint64_t d = dst_at(dst, dst32, e);                                                    \
            if (d < (base) || d - (base) >= (b)->ndst) {                                           \
                e++;                                                                               \
                continue;                                                                          \
            }                                                                                      \
            uint32_t q = (uint32_t)((d - (base)) >> (b)->shift);                                   \
            uint64_t r = e + 1;                                                                    \
            while (r < e1) {                                                                       \
                uint64_t d2 = dst_at(dst, dst32, r);                                               \
                if (d2 < (base) || d2 - (base) >= (b)->ndst || (d2 - (base)) >> (b)->shift != q)   \
                    break;                                                                         \
                r++;                                                                               \
            }                                                                                      \
            PAIR(u, q, e, r);                                                                      \
            e = r;                                                                                 \
        }                                                                                          \
    }

loom_bpull_t *loom_bpull_build(uint64_t nsrc, uint64_t ndst, const uint64_t *off, const void *dst,
                               int dst32, uint64_t base, int shift, int single, int nthreads,
                               size_t *bytes)
{
    if (shift < 0 || shift > LOOM_BPULL_SHIFT || (ndst > 0 && ((ndst - 1) >> shift) >= 65536))
        return NULL;
    loom_bpull_t *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    const int T = nthreads > 0 ? nthreads : 1;
    const uint64_t P = (uint64_t)1 << shift;
    const uint32_t np = (uint32_t)((ndst + P - 1) / P);
    b->shift = shift;
    b->nsrc = nsrc;
    b->ndst = ndst;
    b->nparts = np;
    b->nthreads = T;
    b->single = single;
    size_t held = sizeof *b;
    b->sb = alloc_big((size_t)(T + 1) * sizeof *b->sb, &held);
    b->poff = alloc_big((nsrc + 1) * sizeof *b->poff, &held);
    b->pbase = alloc_big((np + 1) * sizeof *b->pbase, &held);
    b->abase = alloc_big((np + 1) * sizeof *b->abase, &held);
    /* pairs and arcs per (thread, partition), then where each starts in the bins */
    uint64_t *pcnt = calloc((size_t)T * (np + 1), sizeof *pcnt);
    uint64_t *acnt = calloc((size_t)T * (np + 1), sizeof *acnt);
    if (!b->sb || !b->poff || !b->pbase || !b->abase || !pcnt || !acnt) goto fail;

    /* Sources split into T ranges of about equal arcs. */
    const uint64_t m = off[nsrc] - off[0];
    b->sb[0] = 0;
    for (int t = 1; t < T; t++) {
        uint64_t want = off[0] + m / (uint64_t)T * (uint64_t)t, lo = b->sb[t - 1], hi = nsrc;
        while (lo < hi) {
            uint64_t mid = lo + (hi - lo) / 2;
            if (off[mid] < want)
                lo = mid + 1;
            else
                hi = mid;
        }
        b->sb[t] = lo;
    }
    b->sb[T] = nsrc;

    /* Pass 1: pairs per source, pairs and arcs per (thread, partition). */
    b->poff[0] = 0;
#pragma omp parallel num_threads(T)
    for (int t = omp_get_thread_num(); t < T; t += omp_get_num_threads()) {
        uint64_t *pc = pcnt + (size_t)t * np, *ac = acnt + (size_t)t * np;
        for (uint64_t u = b->sb[t]; u < b->sb[t + 1]; u++)
            b->poff[u + 1] = 0;
#define COUNT(u, q, e, r)                                                                          \
    do {                                                                                           \
        b->poff[(u) + 1]++;                                                                        \
        pc[q]++;                                                                                   \
        ac[q] += (r) - (e);                                                                        \
    } while (0)
        BPULL_RUNS(b, t, off, dst, dst32, base, COUNT)
#undef COUNT
    }
    for (uint64_t u = 0; u < nsrc; u++)
        b->poff[u + 1] += b->poff[u];
    /* Bins are partition-major; within a bin, thread 0's sources first. */
    uint64_t p = 0, a = 0;
    for (uint32_t q = 0; q < np; q++) {
        b->pbase[q] = p;
        b->abase[q] = a;
        for (int t = 0; t < T; t++) {
            uint64_t c = pcnt[(size_t)t * np + q], ca = acnt[(size_t)t * np + q];
            pcnt[(size_t)t * np + q] = p;
            acnt[(size_t)t * np + q] = a;
            p += c;
            a += ca;
        }
    }
    b->pbase[np] = p;
    b->abase[np] = a;
    b->pairs = p;
    b->arcs = a;
    if (p > UINT32_MAX) goto fail; /* positions are 32-bit; the caller checks arcs */
    b->ppos = alloc_big(p * sizeof *b->ppos, &held);
    b->ids = alloc_big(a * sizeof *b->ids, &held);
    b->vals = alloc_big(p * (single ? sizeof(float) : sizeof(double)), &held);
    if (!b->ppos || !b->ids || !b->vals) goto fail;

        /* Pass 2: each pair's position in the bins (source order) and each arc's offset (bin
         * order). */
#pragma omp parallel num_threads(T)
    for (int t = omp_get_thread_num(); t < T; t += omp_get_num_threads()) {
        uint64_t *pc = pcnt + (size_t)t * np, *ac = acnt + (size_t)t * np;
#define PLACE(u, q, e, r)                                                                          \
    do {                                                                                           \
        b->ppos[pp++] = (uint32_t)pc[q]++;                                                         \
        uint16_t flag = 0x8000;                                                                    \
        for (uint64_t k = (e); k < (r); k++) {                                                     \
            uint64_t d = dst_at(dst, dst32, k) - base;                                             \
            b->ids[ac[q]++] = (uint16_t)(flag | (d & (P - 1)));                                    \
            flag = 0;                                                                              \
        }                                                                                          \
    } while (0)
        uint64_t pp = b->poff[b->sb[t]];
        BPULL_RUNS(b, t, off, dst, dst32, base, PLACE)
#undef PLACE
    }
    free(pcnt);
    free(acnt);
    b->bytes = held;
    if (bytes) *bytes = held;
    return b;
fail:
    free(pcnt);
    free(acnt);
    loom_bpull_free(&b);
    return NULL;
}

#define BPULL_GATHER(VT)                                                                           \
    do {                                                                                           \
        const VT *vals = (const VT *)b->vals;                                                      \
        const uint64_t P = (uint64_t)1 << b->shift;                                                \
        _Pragma("omp for schedule(dynamic, 1)") for (uint32_t q = 0; q < b->nparts; q++)           \
        {                                                                                          \
            double *o = out + (uint64_t)q * P;                                                     \
            uint64_t len = b->ndst - (uint64_t)q * P;                                              \
            if (len > P) len = P;                                                                  \
            memset(o, 0, len * sizeof *o);                                                         \
            const uint16_t *id = b->ids + b->abase[q];                                             \
            const uint64_t na = b->abase[q + 1] - b->abase[q];                                     \
            uint64_t k = b->pbase[q];                                                              \
            for (uint64_t e = 0; e < na; e++) {                                                    \
                uint32_t x = id[e];                                                                \
                k += x >> 15;                                                                      \
                o[x & (P - 1)] += (double)vals[k - 1];                                             \
            }                                                                                      \
        }                                                                                          \
    } while (0)

#define BPULL_SCATTER(VT)                                                                          \
    do {                                                                                           \
        VT *restrict vals = (VT *)b->vals;                                                         \
        const uint32_t *restrict pos = b->ppos;                                                    \
        const uint64_t *restrict poff = b->poff;                                                   \
        for (int t = omp_get_thread_num(); t < T; t += omp_get_num_threads()) {                    \
            const uint64_t u1 = b->sb[t + 1];                                                      \
            uint64_t p = poff[b->sb[t]];                                                           \
            for (uint64_t u = b->sb[t]; u < u1; u++) {                                             \
                const uint64_t p1 = poff[u + 1];                                                   \
                if (p == p1) continue;                                                             \
                const VT x = (VT)src[u];                                                           \
                for (; p < p1; p++)                                                                \
                    vals[pos[p]] = x;                                                              \
            }                                                                                      \
        }                                                                                          \
    } while (0)

/* One superstep: the scatter, then (after a barrier) the gather. `src` may
 * hold doubles or floats. */
#define BPULL_SUM(b, src, out)                                                                     \
    do {                                                                                           \
        const int T = (b)->nthreads;                                                               \
        /* (small bins: one thread does every region; no team to wake) */                          \
        _Pragma("omp parallel num_threads(T) if ((b)->arcs + (b)->nsrc > ((uint64_t)1 << 16))")    \
        {                                                                                          \
            if ((b)->single) {                                                                     \
                BPULL_SCATTER(float);                                                              \
            } else {                                                                               \
                BPULL_SCATTER(double);                                                             \
            }                                                                                      \
            _Pragma("omp barrier");                                                                \
            if ((b)->single)                                                                       \
                BPULL_GATHER(float);                                                               \
            else                                                                                   \
                BPULL_GATHER(double);                                                              \
        }                                                                                          \
    } while (0)

void loom_bpull_sum(loom_bpull_t *b, const double *src, double *out)
{
    BPULL_SUM(b, src, out);
}

void loom_bpull_sum_f32(loom_bpull_t *b, const float *src, double *out)
{
    BPULL_SUM(b, src, out);
}

void loom_bpull_stats(const loom_bpull_t *b, uint64_t *arcs, uint64_t *pairs, double *bytes)
{
    const double vb = b->single ? 4.0 : 8.0;
    if (arcs) *arcs = b->arcs;
    if (pairs) *pairs = b->pairs;
    /* ids; per pair its position, the value written and read; per source its
     * value and pair offset; per destination its sum written */
    if (bytes)
        *bytes = 2.0 * (double)b->arcs + (4.0 + 2.0 * vb) * (double)b->pairs +
                 16.0 * (double)b->nsrc + 8.0 * (double)b->ndst;
}
