/* Internal: sorting references to key/value pairs by (partition, key[, value]) in byte order. */
#ifndef LOOM_KERNELS_SORT_H
#define LOOM_KERNELS_SORT_H

#include <stddef.h>
#include <stdint.h>

/* A reference to a pair held elsewhere. `prefix` caches the key's first 8
 * bytes big-endian (zero-padded) so most comparisons touch no key memory. */
typedef struct loom_kvref {
    uint64_t prefix;
    const unsigned char *key, *val;
    size_t klen, vlen;
    uint32_t part;
} loom_kvref_t;

/* Scratch bytes loom_sort_kvrefs allocates per ref while it sorts, on top of
 * the refs themselves (memory budgets count it). */
#define LOOM_SORT_SCRATCH_PER_REF (2 * 16 + sizeof(loom_kvref_t))

/* The prefix of a key as stored in loom_kvref_t. */
uint64_t loom_sort_prefix(const void *key, size_t klen);

/* Byte-order comparison of two strings (memcmp, then the shorter first), as
 * `LC_ALL=C sort` orders lines. */
int loom_sort_cmp_bytes(const void *a, size_t alen, const void *b, size_t blen);

/* Sort refs by partition, then key, then (when `by_value`) value, all in byte
 * order. Not stable. Refs of one partition take an MSD radix sort on 8-byte
 * key chunks (LOOM_SORT_SCRATCH_PER_REF bytes of scratch per ref; a comparison
 * sort when that cannot be allocated). Thread-safe on disjoint arrays. */
void loom_sort_kvrefs(loom_kvref_t *refs, size_t n, int by_value);

#endif
