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

#define LOOM_HASH_K1 0x9e3779b97f4a7c15ULL
#define LOOM_HASH_K2 0xbf58476d1ce4e5b9ULL

/* The part every variant shares: the length and the whole 8-byte words of
 * data[0, len) folded into a state; *tail is left at the last 0..7 bytes. */
static inline uint64_t loom_hash_words(const void *data, size_t len, uint64_t seed,
                                       const unsigned char **tail)
{
    const unsigned char *p = data;
    uint64_t h = seed ^ (len * LOOM_HASH_K1);
    for (; len >= 8; len -= 8, p += 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = loom_hash_rotl64(h ^ (w * LOOM_HASH_K2), 31) * LOOM_HASH_K1;
    }
    *tail = p;
    return h;
}

/* Fold the tail word (the last len % 8 bytes, little-endian, zero-extended)
 * and finish; the length is already in h, so "a" and "a\0" differ. */
static inline uint64_t loom_hash_finish(uint64_t h, uint64_t t)
{
    return loom_hash_mix64(loom_hash_rotl64(h ^ (t * LOOM_HASH_K2), 27) * LOOM_HASH_K1);
}

/* The same function inline, for hot loops that hash short keys. */
static inline uint64_t loom_hash_inline(const void *data, size_t len, uint64_t seed)
{
    const unsigned char *p;
    uint64_t h = loom_hash_words(data, len, seed, &p);
    uint64_t t = 0;
    for (size_t i = 0; i < len % 8; i++)
        t |= (uint64_t)p[i] << (8 * i);
    return loom_hash_finish(h, t);
}

/* loom_hash_inline's value, for keys followed by at least 8 readable bytes
 * (the tokeniser's padded blocks): the tail is one masked load, not a loop. */
static inline uint64_t loom_hash_padded(const void *data, size_t len, uint64_t seed)
{
    const unsigned char *p;
    uint64_t h = loom_hash_words(data, len, seed, &p);
    uint64_t t;
    memcpy(&t, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    t = __builtin_bswap64(t);
#endif
    size_t rest = len % 8;
    t &= rest ? ~0ULL >> (64 - 8 * rest) : 0;
    return loom_hash_finish(h, t);
}

/* loom_hash_inline's value for a key of len <= 16 bytes, given as its first
 * two 8-byte words loaded with memcpy and zeroed past len: no loop and no
 * branch on the length, for the keys of word counts. */
static inline uint64_t loom_hash_short(uint64_t w0, uint64_t w1, size_t len, uint64_t seed)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    unsigned char k[16];
    memcpy(k, &w0, 8);
    memcpy(k + 8, &w1, 8);
    return loom_hash_inline(k, len, seed);
#else
    uint64_t h0 = seed ^ (len * LOOM_HASH_K1);
    uint64_t h1 = loom_hash_rotl64(h0 ^ (w0 * LOOM_HASH_K2), 31) * LOOM_HASH_K1;
    uint64_t h2 = loom_hash_rotl64(h1 ^ (w1 * LOOM_HASH_K2), 31) * LOOM_HASH_K1;
    /* the words loom_hash_words folds (0, 1 or 2) and the tail word after them */
    uint64_t h = len >= 16 ? h2 : len >= 8 ? h1 : h0;
    uint64_t t = len >= 16 ? 0 : len >= 8 ? w1 : w0;
    return loom_hash_finish(h, t);
#endif
}

#endif
