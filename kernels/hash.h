/* Internal: fast 64-bit hashing of byte strings (MapReduce keys, partitioners). */
#ifndef LOOM_KERNELS_HASH_H
#define LOOM_KERNELS_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

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

static inline uint64_t loom_hash_rotl64(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

/* The same function inline, for hot loops that hash short keys. */
static inline uint64_t loom_hash_inline(const void *data, size_t len, uint64_t seed)
{
    const unsigned char *p = data;
    const uint64_t k1 = 0x9e3779b97f4a7c15ULL, k2 = 0xbf58476d1ce4e5b9ULL;
    uint64_t h = seed ^ (len * k1);
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = loom_hash_rotl64(h ^ (w * k2), 31) * k1;
        p += 8;
        len -= 8;
    }
    /* Tail: load the remaining 0..7 bytes into one word; the length is already
     * in h, so "a" and "a\0" differ. */
    uint64_t t = 0;
    for (size_t i = 0; i < len; i++)
        t |= (uint64_t)p[i] << (8 * i);
    h = loom_hash_rotl64(h ^ (t * k2), 27) * k1;
    return loom_hash_mix64(h);
}

/* loom_hash_inline's value, for keys followed by at least 8 readable bytes
 * (the tokeniser's padded blocks): the tail is one masked load, not a loop. */
static inline uint64_t loom_hash_padded(const void *data, size_t len, uint64_t seed)
{
    const unsigned char *p = data;
    const uint64_t k1 = 0x9e3779b97f4a7c15ULL, k2 = 0xbf58476d1ce4e5b9ULL;
    uint64_t h = seed ^ (len * k1);
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = loom_hash_rotl64(h ^ (w * k2), 31) * k1;
        p += 8;
        len -= 8;
    }
    uint64_t t; /* the tail's bytes in little-endian order, as loom_hash_inline builds it */
    memcpy(&t, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    t = __builtin_bswap64(t);
#endif
    t &= len ? ~0ULL >> (64 - 8 * len) : 0;
    h = loom_hash_rotl64(h ^ (t * k2), 27) * k1;
    return loom_hash_mix64(h);
}

#endif
