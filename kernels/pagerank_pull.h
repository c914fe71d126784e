/* Pull kernels: combine a gathered per-vertex array over CSR in-edges (the
 * PageRank sweep and the Pregel engine's dense exchange). Internal to Loom. */
#ifndef LOOM_KERNELS_PAGERANK_PULL_H
#define LOOM_KERNELS_PAGERANK_PULL_H

#include <stddef.h>
#include <stdint.h>

typedef enum loom_pull_op { LOOM_PULL_SUM = 0, LOOM_PULL_MIN, LOOM_PULL_MAX } loom_pull_op_t;
typedef enum loom_pull_type { LOOM_PULL_F64 = 0, LOOM_PULL_U64 } loom_pull_type_t;

/* For every row v < n: out[v] = op over e in [off[v], off[v+1]) of src[idx[e]],
 * the op's identity for an empty row (sum 0, min +inf / UINT64_MAX, max -inf / 0).
 * `idx` holds uint32_t entries when idx32, else uint64_t. src and out hold
 * 8-byte elements of `type`. Rows are summed in index order, so the result
 * does not depend on the thread count. Runs on the calling rank's OpenMP
 * threads; call from outside a parallel region. */
void loom_pull_combine(loom_pull_op_t op, loom_pull_type_t type, uint64_t n, const uint64_t *off,
                       const void *idx, int idx32, const void *src, void *out);

/* has[v] = 1 when any flags[idx[e]] of row v is nonzero, else 0. Same
 * threading as loom_pull_combine. */
void loom_pull_any(uint64_t n, const uint64_t *off, const void *idx, int idx32,
                   const uint8_t *flags, uint8_t *has);

/* Copy a 64-bit index array into 32 bits (all entries must be < 2^32). */
void loom_pull_narrow(size_t m, const uint64_t *in, uint32_t *out);

#endif
