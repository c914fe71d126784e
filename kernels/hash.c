/* Hashing of byte strings: 8 bytes per step, multiply-rotate mixing, bijective finish. */
#include <string.h>

#include "kernels/hash.h"

static inline uint64_t rotl64(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

uint64_t loom_hash_bytes(const void *data, size_t len, uint64_t seed)
{
    const unsigned char *p = data;
    const uint64_t k1 = 0x9e3779b97f4a7c15ULL, k2 = 0xbf58476d1ce4e5b9ULL;
    uint64_t h = seed ^ (len * k1);
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = rotl64(h ^ (w * k2), 31) * k1;
        p += 8;
        len -= 8;
    }
    /* Tail: load the remaining 0..7 bytes into one word; the length is already
     * in h, so "a" and "a\0" differ. */
    uint64_t t = 0;
    for (size_t i = 0; i < len; i++)
        t |= (uint64_t)p[i] << (8 * i);
    h = rotl64(h ^ (t * k2), 27) * k1;
    return loom_hash_mix64(h);
}
