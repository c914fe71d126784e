/* The checks a restart makes on a checkpoint's claims: ranges, tiling, counts, sizes. */
#include "pregel/ckpt_check.h"

#include <stddef.h>

const char *loom_ckpt_check_ranges(int64_t superstep, int64_t nparts, int64_t n)
{
    if (superstep < 0 || superstep > LOOM_CKPT_MAX_SUPERSTEP)
        return "the superstep is out of range";
    if (n < 0) return "the vertex count is negative";
    /* nparts >= 0 once the first test passes, so nparts - 1 cannot overflow (n + 1 can). */
    if (nparts < (n > 0) || nparts > LOOM_CKPT_MAX_PARTS || nparts - 1 > n)
        return "the number of parts is out of range";
    return NULL;
}

const char *loom_ckpt_check_parts(const uint64_t *lo, const uint64_t *hi, int64_t nparts, int64_t n)
{
    uint64_t at = 0;
    for (int64_t k = 0; k < nparts; k++) {
        if (lo[k] != at || hi[k] <= lo[k] || hi[k] > (uint64_t)n)
            return "the parts do not tile the vertices";
        at = hi[k];
    }
    if (at != (uint64_t)n) return "the parts do not tile the vertices";
    return NULL;
}

const char *loom_ckpt_sum_counts(const uint64_t *counts, uint64_t len, uint64_t from, uint64_t msgs,
                                 int combined, uint64_t *first, uint64_t *mine)
{
    *first = *mine = 0;
    if (from > len) return "a vertex range outside the part";
    for (uint64_t i = 0; i < len; i++) {
        uint64_t c = counts[i];
        uint64_t *sum = i < from ? first : mine;
        if ((combined && c > 1) || c > msgs || *sum > msgs - c)
            return "/msg_count does not add up to the manifest's messages";
        *sum += c;
    }
    if (*first > msgs - *mine) return "/msg_count does not add up to the manifest's messages";
    return NULL;
}

const char *loom_ckpt_bytes(uint64_t count, uint64_t size, uint64_t *bytes)
{
    if (__builtin_mul_overflow(count, size, bytes)) return "sizes overflow";
    return NULL;
}
