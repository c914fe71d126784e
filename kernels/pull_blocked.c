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
    int ext_vals;  /* vals is the caller's (loom_bpull_use_vals) */
    size_t bytes;  /* memory held */
};

struct loom_bpush {
    uint64_t nsrc;
    int nthreads, single;
    uint64_t *sb;   /* nthreads + 1: each thread's sources */
    uint64_t *poff; /* nsrc + 1 */
    uint32_t *ppos; /* per pair: where its value goes */
};

/* sb[0..T] cut [0, n) into T ranges of about equal off[] weight. */
static void split_even(const uint64_t *off, uint64_t n, int T, uint64_t *sb)
{
    const uint64_t m = off[n] - off[0];
    sb[0] = 0;
    for (int t = 1; t < T; t++) {
        uint64_t want = off[0] + m / (uint64_t)T * (uint64_t)t, lo = sb[t - 1], hi = n;
        while (lo < hi) {
            uint64_t mid = lo + (hi - lo) / 2;
            if (off[mid] < want)
                lo = mid + 1;
            else
                hi = mid;
        }
        sb[t] = lo;
    }
    sb[T] = n;
}

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
    if (!b->ext_vals) free(b->vals);
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
    split_even(off, nsrc, T, b->sb);

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

/* Threads' shares of one scatter: source u's value, as VT, to vals[pos[p]]
 * for each of its pairs p in [poff[u], poff[u + 1]). */
#define BPULL_SCATTER(VT, T, sb_, poff_, pos_, src_, vals_)                                        \
    do {                                                                                           \
        VT *restrict v_ = (VT *)(vals_);                                                           \
        const uint32_t *restrict ps_ = (pos_);                                                     \
        const uint64_t *restrict po_ = (poff_);                                                    \
        const uint64_t *sbt_ = (sb_);                                                              \
        for (int t_ = omp_get_thread_num(); t_ < (T); t_ += omp_get_num_threads()) {               \
            const uint64_t u1_ = sbt_[t_ + 1];                                                     \
            uint64_t p_ = po_[sbt_[t_]];                                                           \
            for (uint64_t u_ = sbt_[t_]; u_ < u1_; u_++) {                                         \
                const uint64_t p1_ = po_[u_ + 1];                                                  \
                if (p_ == p1_) continue;                                                           \
                const VT x_ = (VT)(src_)[u_];                                                      \
                for (; p_ < p1_; p_++)                                                             \
                    v_[ps_[p_]] = x_;                                                              \
            }                                                                                      \
        }                                                                                          \
    } while (0)

#define BPULL_SCATTER_OWN(b, src)                                                                  \
    do {                                                                                           \
        if ((b)->single)                                                                           \
            BPULL_SCATTER(float, (b)->nthreads, (b)->sb, (b)->poff, (b)->ppos, src, (b)->vals);    \
        else                                                                                       \
            BPULL_SCATTER(double, (b)->nthreads, (b)->sb, (b)->poff, (b)->ppos, src, (b)->vals);   \
    } while (0)

/* One superstep: the scatter, then (after a barrier) the gather. `src` may
 * hold doubles or floats. */
#define BPULL_SUM(b, src, out)                                                                     \
    do {                                                                                           \
        const int T = (b)->nthreads;                                                               \
        /* (small bins: one thread does every region; no team to wake) */                          \
        _Pragma("omp parallel num_threads(T) if ((b)->arcs + (b)->nsrc > ((uint64_t)1 << 16))")    \
        {                                                                                          \
            BPULL_SCATTER_OWN(b, src);                                                             \
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

/* (below 2^16 pairs or arcs: one thread, no team to wake) */
void loom_bpull_scatter(loom_bpull_t *b, const double *src)
{
#pragma omp parallel num_threads(b->nthreads) if (b->poff[b->nsrc] > ((uint64_t)1 << 16))
    BPULL_SCATTER_OWN(b, src);
}

void loom_bpull_scatter_f32(loom_bpull_t *b, const float *src)
{
#pragma omp parallel num_threads(b->nthreads) if (b->poff[b->nsrc] > ((uint64_t)1 << 16))
    BPULL_SCATTER_OWN(b, src);
}

void loom_bpull_gather(loom_bpull_t *b, double *out)
{
#pragma omp parallel num_threads(b->nthreads) if (b->arcs > ((uint64_t)1 << 16))
    {
        if (b->single)
            BPULL_GATHER(float);
        else
            BPULL_GATHER(double);
    }
}

uint64_t loom_bpull_pairs(const loom_bpull_t *b, uint64_t u, const uint32_t **pos)
{
    *pos = b->ppos + b->poff[u];
    return b->poff[u + 1] - b->poff[u];
}

size_t loom_bpull_vals_bytes(const loom_bpull_t *b)
{
    return (size_t)b->pairs * (b->single ? sizeof(float) : sizeof(double));
}

void loom_bpull_use_vals(loom_bpull_t *b, void *vals)
{
    if (!b->ext_vals) {
        free(b->vals);
        b->bytes -= loom_bpull_vals_bytes(b);
    }
    b->vals = vals;
    b->ext_vals = 1;
}

int loom_bpull_keep(loom_bpull_t *b, const uint8_t *keep)
{
    uint64_t n = 0, np = 0;
    for (uint64_t u = 0; u < b->nsrc; u++)
        if (keep[u]) n++, np += b->poff[u + 1] - b->poff[u];
    size_t held = 0;
    uint64_t *poff = alloc_big((n + 1) * sizeof *poff, &held);
    uint32_t *ppos = alloc_big(np * sizeof *ppos, &held);
    if (!poff || !ppos) {
        free(poff);
        free(ppos);
        return -1;
    }
    poff[0] = 0;
    uint64_t k = 0;
    for (uint64_t u = 0; u < b->nsrc; u++) {
        if (!keep[u]) continue;
        uint64_t c = b->poff[u + 1] - b->poff[u];
        memcpy(ppos + poff[k], b->ppos + b->poff[u], c * sizeof *ppos);
        poff[k + 1] = poff[k] + c;
        k++;
    }
    b->bytes -= (b->nsrc + 1) * sizeof *b->poff + (size_t)b->poff[b->nsrc] * sizeof *b->ppos;
    b->bytes += held;
    free(b->poff);
    free(b->ppos);
    b->poff = poff;
    b->ppos = ppos;
    b->nsrc = n;
    split_even(poff, n, b->nthreads, b->sb);
    return 0;
}

loom_bpush_t *loom_bpush_new(uint64_t nsrc, uint64_t *poff, uint32_t *ppos, int single,
                             int nthreads)
{
    loom_bpush_t *p = calloc(1, sizeof *p);
    const int T = nthreads > 0 ? nthreads : 1;
    if (p) p->sb = malloc((size_t)(T + 1) * sizeof *p->sb);
    if (!p || !p->sb) {
        free(p);
        free(poff);
        free(ppos);
        return NULL;
    }
    p->nsrc = nsrc;
    p->nthreads = T;
    p->single = single;
    p->poff = poff;
    p->ppos = ppos;
    split_even(poff, nsrc, T, p->sb);
    return p;
}

void loom_bpush_run(const loom_bpush_t *p, const double *src, void *vals)
{
#pragma omp parallel num_threads(p->nthreads) if (p->poff[p->nsrc] > ((uint64_t)1 << 16))
    {
        if (p->single)
            BPULL_SCATTER(float, p->nthreads, p->sb, p->poff, p->ppos, src, vals);
        else
            BPULL_SCATTER(double, p->nthreads, p->sb, p->poff, p->ppos, src, vals);
    }
}

void loom_bpush_stats(const loom_bpush_t *p, uint64_t *pairs, double *bytes)
{
    const double vb = p->single ? 4.0 : 8.0;
    if (pairs) *pairs = p->poff[p->nsrc];
    if (bytes) *bytes = (4.0 + vb) * (double)p->poff[p->nsrc] + 16.0 * (double)p->nsrc;
}

void loom_bpush_free(loom_bpush_t **pp)
{
    if (!pp || !*pp) return;
    free((*pp)->sb);
    free((*pp)->poff);
    free((*pp)->ppos);
    free(*pp);
    *pp = NULL;
}

void loom_bpull_stats(const loom_bpull_t *b, uint64_t *arcs, uint64_t *pairs, double *bytes)
{
    const double vb = b->single ? 4.0 : 8.0;
    if (arcs) *arcs = b->arcs;
    if (pairs) *pairs = b->pairs;
    /* ids; per pair written here its position and value; per pair its value
     * read; per source its value and pair offset; per destination its sum */
    if (bytes)
        *bytes = 2.0 * (double)b->arcs + (4.0 + vb) * (double)b->poff[b->nsrc] +
                 vb * (double)b->pairs + 16.0 * (double)b->nsrc + 8.0 * (double)b->ndst;
}
