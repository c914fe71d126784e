/* Internal: the checks a restart makes on what a checkpoint claims, as pure functions (no
 * MPI, no HDF5), so that they can be tested and fuzzed on their own. */
#ifndef LOOM_PREGEL_CKPT_CHECK_H
#define LOOM_PREGEL_CKPT_CHECK_H

#include <stdint.h>

#define LOOM_CKPT_MAX_SUPERSTEP ((int64_t)1 << 50)
#define LOOM_CKPT_MAX_PARTS (1 << 24)

/* NULL when the manifest's parts [lo[k], hi[k]) tile [0, n) in order with nparts
 * in range, else why not. */
const char *loom_ckpt_check_parts(const uint64_t *lo, const uint64_t *hi, int64_t nparts,
                                  int64_t n);

/* NULL when a superstep and a part count are in range for n vertices. */
const char *loom_ckpt_check_ranges(int64_t superstep, int64_t nparts, int64_t n);

/* The pending-message counts of a part's vertices [0, len), `from` the first
 * vertex this rank reads: *first gets the messages before it, *mine those from
 * it on. NULL when every count is at most 1 for a combined program, and the
 * sums stay within the part's `msgs` without overflowing; else why not. */
const char *loom_ckpt_sum_counts(const uint64_t *counts, uint64_t len, uint64_t from, uint64_t msgs,
                                 int combined, uint64_t *first, uint64_t *mine);

/* NULL when `count` elements of `size` bytes fit 64 bits (*bytes gets the product). */
const char *loom_ckpt_bytes(uint64_t count, uint64_t size, uint64_t *bytes);

#endif
