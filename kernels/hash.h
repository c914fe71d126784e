/* Internal: fast 64-bit hashing of byte strings (MapReduce keys, partitioners). */
#ifndef LOOM_KERNELS_HASH_H
#define LOOM_KERNELS_HASH_H

#include <stddef.h>
#include <stdint.h>

/* A 64-bit hash of data[0, len) with good avalanche in every bit, so that both
 * its low bits (table slots) and its high bits (partitions) are usable.
 * Deterministic across ranks and runs. Thread-safe. */
uint64_t loom_hash_bytes(const void *data, size_t len, uint64_t seed);

/* Final mixer of a 64-bit value (bijective). */
static inline uint64_t loom_hash_mix64(uint64_t x)
{
    x ^= x >> 32;
    x *= 0xd6e8feb86659fd93ULL;
    x ^= x >> 32;
    x *= 0xd6e8feb86659fd93ULL;
    x ^= x >> 32;
    return x;
}

#endif
