/* Partition-centric sums over arcs (PCPM: Lakhotia et al., USENIX ATC 2018):
 * the PageRank sweep with streams in place of random gathers. Internal to Loom.
 *
 * Destinations are cut into partitions of 2^shift consecutive vertices
 * (LOOM_BPULL_SHIFT: a partition's sums, in doubles, fit in a core's L2). Each superstep:
 *   scatter: every source writes its value once per partition its arcs reach
 *            (a "pair"), into that partition's bin, sources in ascending order;
 *   gather:  each partition walks its bin with a static list of 16-bit
 *            destination offsets (one per arc, the top bit marking the first
 *            arc of the next pair) and adds into its slice of the output.
 * What streams from memory per superstep: 2 bytes per arc, 4 + 2 x value bytes
 * per pair, the source values once; the only random accesses stay in L2.
 *
 * Every destination's sum is taken over its arcs in ascending source order:
 * the same sequence of additions as a pull over a CSR whose rows are sorted by
 * source, so with double values the result is bit-identical to that pull and
 * independent of the thread count. */
#ifndef LOOM_KERNELS_PULL_BLOCKED_H
#define LOOM_KERNELS_PULL_BLOCKED_H

#include <stddef.h>
#include <stdint.h>

#define LOOM_BPULL_SHIFT 15 /* the largest: offsets take 15 bits, the pair mark the 16th */

typedef struct loom_bpull loom_bpull_t;

/* Build the bins for `ndst` destinations from a source-major CSR of `nsrc`
 * sources: source u's arcs are dst[e] for e in [off[u], off[u + 1]), sorted
 * ascending, as ids d with base <= d < base + ndst (uint32_t entries when
 * dst32, else uint64_t); arcs to other ids are skipped. Partitions hold
 * 2^shift destinations (0 <= shift <= LOOM_BPULL_SHIFT; at most 65536
 * partitions, so ndst <= 2^31 with the largest). `single` keeps values
 * in bins as float (sums still in double). The scatter and gather run on
 * `nthreads` OpenMP threads, fixed here. At most 2^32 arcs (values are
 * addressed with 32 bits). Returns NULL when out of memory or above that;
 * `bytes` (may be NULL) receives the memory it holds. Call from outside a
 * parallel region. */
loom_bpull_t *loom_bpull_build(uint64_t nsrc, uint64_t ndst, const uint64_t *off, const void *dst,
                               int dst32, uint64_t base, int shift, int single, int nthreads,
                               size_t *bytes);

/* out[v] = sum of src[u] over the arcs u -> base + v, for every v < ndst
 * (0.0 for a destination without arcs). src holds nsrc doubles. */
void loom_bpull_sum(loom_bpull_t *b, const double *src, double *out);
/* The same with nsrc float source values (bins built single or not). */
void loom_bpull_sum_f32(loom_bpull_t *b, const float *src, double *out);

/* The same in two steps, for bins that other writers fill too (see
 * loom_bpush_t): the scatter of this kernel's sources, then the gather, once
 * every writer of the bins is done. */
void loom_bpull_scatter(loom_bpull_t *b, const double *src);
void loom_bpull_scatter_f32(loom_bpull_t *b, const float *src);
void loom_bpull_gather(loom_bpull_t *b, double *out);

/* Source u's pairs: their count, and in *pos where their values go, as
 * element indices into the bins' values (sources in ascending order within
 * each bin, so a value's place depends on the sources only). */
uint64_t loom_bpull_pairs(const loom_bpull_t *b, uint64_t u, const uint32_t **pos);
/* The bins' values: their size, and a move into the caller's memory (at
 * least that size, aligned for a double; kept until loom_bpull_free, which
 * does not free it). */
size_t loom_bpull_vals_bytes(const loom_bpull_t *b);
void loom_bpull_use_vals(loom_bpull_t *b, void *vals);
/* Keep in this kernel's scatter only the sources u with keep[u] != 0 (of the
 * nsrc it was built with), renumbered densely in order: `src` then holds
 * only theirs. The others' pairs must be written by a loom_bpush_t. Returns
 * 0, or -1 when out of memory (the kernel is unchanged). */
int loom_bpull_keep(loom_bpull_t *b, const uint8_t *keep);

/* Arcs, pairs and the bytes one loom_bpull_sum moves from and to memory at
 * least (streams only; the L2-resident sums excluded). */
void loom_bpull_stats(const loom_bpull_t *b, uint64_t *arcs, uint64_t *pairs, double *bytes);

void loom_bpull_free(loom_bpull_t **b);

/* A scatter into bins built elsewhere: source u (of nsrc) writes its value to
 * vals[ppos[p]] for p in [poff[u], poff[u + 1]), on `nthreads` threads. With
 * the bins of several kernels side by side in one memory (a node's shared
 * segment), the owner of a source writes it into every kernel's bins at once.
 * Takes poff (nsrc + 1, poff[0] = 0) and ppos, both malloc'd, also on failure
 * (NULL: out of memory). */
typedef struct loom_bpush loom_bpush_t;
loom_bpush_t *loom_bpush_new(uint64_t nsrc, uint64_t *poff, uint32_t *ppos, int single,
                             int nthreads);
/* vals: floats when single, else doubles. Call from outside a parallel region. */
void loom_bpush_run(const loom_bpush_t *p, const double *src, void *vals);
/* Pairs written, and the bytes one run moves (positions, values, sources). */
void loom_bpush_stats(const loom_bpush_t *p, uint64_t *pairs, double *bytes);
void loom_bpush_free(loom_bpush_t **p);

#endif
