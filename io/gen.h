/* Internal: the counter-based graph generators and what the CSR builder asks of a source. */
#ifndef LOOM_IO_GEN_H
#define LOOM_IO_GEN_H

#include <stddef.h>
#include <stdint.h>

#include "loom/graph.h"

/* Graph500 initiator probabilities; D = 1 - A - B - C. */
#define LOOM_KRON_A 0.57
#define LOOM_KRON_B 0.19
#define LOOM_KRON_C 0.19

#define LOOM_GEN_MAX_SCALE 40
/* A spec's edge factor has the bound of `loom generate --edge-factor`: a few
 * characters of spec must not ask for hours of work. */
#define LOOM_GEN_MAX_EDGE_FACTOR 1024
#define LOOM_GEN_DEFAULT_EDGE_FACTOR 16
#define LOOM_GEN_DEFAULT_SEED 1

/* Precomputed per-generator constants, so that edge k costs only its own
 * mixing. Fill with loom_gen_init; read-only afterwards (thread-safe). */
typedef struct loom_gen {
    loom_gen_params_t p;
    uint64_t num_edges; /* m = edge_factor << scale */
    uint64_t mask;      /* 2^scale - 1 */
    uint64_t key;       /* the seed, mixed */
    uint64_t mul[3], add[3];
    int shift;     /* xorshift of the relabelling, within `scale` bits */
    uint32_t t[3]; /* quadrant thresholds on 32-bit random draws */
} loom_gen_t;

/* The splitmix64 finaliser: a bijection on 64-bit words that scrambles well. */
static inline uint64_t loom_gen_mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

/* Check p (scale 1..40, edge factor >= 1, m below 2^62) and fill g. Fails with
 * LOOM_ERR_USAGE naming the bad value ("scale 45 out of range (1..40)"). */
loom_status_t loom_gen_init(loom_ctx_t *ctx, const loom_gen_params_t *p, loom_gen_t *g);

/* Parse "kron:S[:EF[:SEED]]" or "urand:S[:EF[:SEED]]" and validate it: S in
 * 1..40 and EF in 1..1024 (the bounds of `loom generate`'s options), SEED any
 * 64-bit unsigned value.
 * Returns 1 in *is_spec when `text` starts with a generator name (then a
 * malformed rest is LOOM_ERR_USAGE), 0 when it is not a spec at all. */
loom_status_t loom_gen_parse_spec(loom_ctx_t *ctx, const char *text, int *is_spec,
                                  loom_gen_params_t *p);

/* Edge k (0 <= k < m) before relabelling (Kronecker) and the relabelling
 * bijection on [0, 2^scale). loom_gen_edge = both; pure functions. */
void loom_gen_edge_raw(const loom_gen_t *g, uint64_t k, uint64_t *u, uint64_t *v);
uint64_t loom_gen_relabel(const loom_gen_t *g, uint64_t x);
void loom_gen_edge(const loom_gen_t *g, uint64_t k, uint64_t *u, uint64_t *v);

/* Edges k0 .. k0+count-1 into src/dst, using `threads` OpenMP threads. */
void loom_gen_fill(const loom_gen_t *g, uint64_t k0, size_t count, uint64_t *src, uint64_t *dst,
                   int threads);

/* Edges [lo, hi) of m that worker w of `workers` generates (an even split). */
void loom_gen_share(uint64_t m, int w, int workers, uint64_t *lo, uint64_t *hi);

/* Source facts the CSR builder needs beyond graph.h: how many edges this rank's
 * share holds (for agreeing on the number of exchange rounds), whether its
 * batches are generated (timed as "generate") or replayed (timed as "read"),
 * and a name for messages (the path or spec). */
uint64_t loom_source_local_count(const loom_edge_source_t *src);
int loom_source_is_generator(const loom_edge_source_t *src);
const char *loom_source_name(const loom_edge_source_t *src);
/* How the vertex count was found ("max id + 1", "declared on line 3",
 * "2^20 by the scale"), for messages. */
const char *loom_source_vertex_count_origin(const loom_edge_source_t *src);
/* This rank's first negative weight as "WHERE: negative weight W" (WHERE is
 * file:line for text, the dataset element for HDF5), or NULL when none. */
const char *loom_source_negative_weight(const loom_edge_source_t *src);

#endif
