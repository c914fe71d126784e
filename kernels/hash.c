/* Hashing of byte strings: 8 bytes per step, multiply-rotate mixing, bijective finish. */
#include "kernels/hash.h"

uint64_t loom_hash_bytes(const void *data, size_t len, uint64_t seed)
{
    return loom_hash_inline(data, len, seed);
}
