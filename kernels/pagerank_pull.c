/* Pull sweeps over in-edges: the hot loop of PageRank and of dense Pregel supersteps. */
#include "kernels/pagerank_pull.h"

#include <math.h>

/* Rows are handed out in chunks because power-law degrees make a static split
 * by rows badly unbalanced; each row is reduced by one thread in index order,
 * which keeps results independent of the thread count. */
#define LOOM_PULL_CHUNK 512

#define LOOM_PULL_LOOP(T, IT, INIT, STEP)                                                          \
    do {                                                                                           \
        const IT *ix_ = (const IT *)idx;                                                           \
        const T *s_ = (const T *)src;                                                              \
        T *o_ = (T *)out;                                                                          \
        _Pragma("omp parallel for schedule(dynamic, LOOM_PULL_CHUNK)") for (uint64_t v = 0; v < n; \
                                                                            v++)                   \
        {                                                                                          \
            T acc = (INIT);                                                                        \
            const uint64_t e1 = off[v + 1];                                                        \
            for (uint64_t e = off[v]; e < e1; e++) {                                               \
                T x = s_[ix_[e]];                                                                  \
                STEP;                                                                              \
            }                                                                                      \
            o_[v] = acc;                                                                           \
        }                                                                                          \
    } while (0)

#define LOOM_PULL_BOTH(T, INIT, STEP)                                                              \
    do {                                                                                           \
        if (idx32)                                                                                 \
            LOOM_PULL_LOOP(T, uint32_t, INIT, STEP);                                               \
        else                                                                                       \
            LOOM_PULL_LOOP(T, uint64_t, INIT, STEP);                                               \
    } while (0)

void loom_pull_combine(loom_pull_op_t op, loom_pull_type_t type, uint64_t n, const uint64_t *off,
                       const void *idx, int idx32, const void *src, void *out)
{
    if (type == LOOM_PULL_F64) {
        switch (op) {
        case LOOM_PULL_SUM:
            LOOM_PULL_BOTH(double, 0.0, acc += x);
            break;
        case LOOM_PULL_MIN:
            LOOM_PULL_BOTH(double, INFINITY, acc = x < acc ? x : acc);
            break;
        case LOOM_PULL_MAX:
            LOOM_PULL_BOTH(double, -INFINITY, acc = x > acc ? x : acc);
            break;
        }
    } else {
        switch (op) {
        case LOOM_PULL_SUM:
            LOOM_PULL_BOTH(uint64_t, 0, acc += x);
            break;
        case LOOM_PULL_MIN:
            LOOM_PULL_BOTH(uint64_t, UINT64_MAX, acc = x < acc ? x : acc);
            break;
        case LOOM_PULL_MAX:
            LOOM_PULL_BOTH(uint64_t, 0, acc = x > acc ? x : acc);
            break;
        }
    }
}

void loom_pull_any(uint64_t n, const uint64_t *off, const void *idx, int idx32,
                   const uint8_t *flags, uint8_t *has)
{
    const void *src = flags;
    void *out = has;
    LOOM_PULL_BOTH(uint8_t, 0, acc |= x);
}

void loom_pull_narrow(size_t m, const uint64_t *in, uint32_t *out)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < m; i++)
        out[i] = (uint32_t)in[i];
}
