/* libFuzzer target of the checks a Pregel restart makes on a checkpoint's
 * manifest and parts (src/pregel/ckpt_check.c): the input is read as the
 * numbers a damaged or hostile checkpoint could claim. Whatever the checks
 * accept must be safe to act on: the parts tile [0, n) and the message sums
 * stay within the part, so the reader never indexes past what it allocated. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pregel/ckpt_check.h"

static uint64_t take(const uint8_t **p, size_t *left)
{
    uint64_t v = 0;
    size_t k = *left < 8 ? *left : 8;
    memcpy(&v, *p, k);
    *p += k;
    *left -= k;
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *p = data;
    size_t left = size;
    int64_t superstep = (int64_t)take(&p, &left);
    /* small counts keep the arrays small; the range check still sees big ones */
    int64_t n = (int64_t)take(&p, &left);
    int64_t nparts = (int64_t)take(&p, &left);
    if (loom_ckpt_check_ranges(superstep, nparts, n) == NULL) {
        if (superstep < 0 || nparts < 0 || nparts > LOOM_CKPT_MAX_PARTS || n < 0) abort();
        if (nparts > 64) return 0;
        uint64_t lo[64], hi[64];
        for (int64_t k = 0; k < nparts; k++) {
            lo[k] = take(&p, &left);
            hi[k] = take(&p, &left);
        }
        if (loom_ckpt_check_parts(lo, hi, nparts, n) == NULL) {
            uint64_t covered = 0;
            for (int64_t k = 0; k < nparts; k++) {
                if (hi[k] <= lo[k] || hi[k] > (uint64_t)n || (k > 0 && lo[k] != hi[k - 1])) abort();
                covered += hi[k] - lo[k];
            }
            if (covered != (uint64_t)n) abort();
        }
    }
    /* a part's message counts */
    uint64_t msgs = take(&p, &left), from = take(&p, &left) % 80;
    int combined = (int)(take(&p, &left) & 1);
    uint64_t counts[64];
    uint64_t len = 0;
    while (len < 64 && left > 0)
        counts[len++] = take(&p, &left);
    uint64_t first, mine;
    if (loom_ckpt_sum_counts(counts, len, from, msgs, combined, &first, &mine) == NULL) {
        if (from > len || first > msgs || mine > msgs - first) abort();
        uint64_t a = 0, b = 0;
        for (uint64_t i = 0; i < len; i++) {
            if (combined && counts[i] > 1) abort();
            if (i < from)
                a += counts[i];
            else
                b += counts[i];
        }
        if (a != first || b != mine) abort();
    }
    uint64_t bytes;
    if (loom_ckpt_bytes(msgs, len + 1, &bytes) == NULL && msgs && bytes / msgs != len + 1) abort();
    return 0;
}
