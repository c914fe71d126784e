/* The consistent-hashing ring: tokens per holder (virtual nodes, weighted), and for every
 * arc between tokens the holders in ring order from it, so that a key's homes and stand-ins
 * are one binary search away. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/hash.h"
#include "kv/kv_internal.h"

typedef struct tok {
    uint64_t pos;
    uint16_t owner;
} tok_t;

static int tok_cmp(const void *a, const void *b)
{
    const tok_t *x = a, *y = b;
    if (x->pos != y->pos) return x->pos < y->pos ? -1 : 1;
    return (int)x->owner - (int)y->owner;
}

int kv_ring_build(kv_ring_t *r, int nholders, const uint32_t *slots, const double *weights,
                  int vnodes, int n)
{
    memset(r, 0, sizeof *r);
    if (nholders < 1 || nholders > 65535 || vnodes < 1) return -1;
    double mean = 0;
    for (int i = 0; i < nholders; i++)
        mean += weights ? weights[i] : 1.0;
    mean /= nholders;
    uint32_t *count = malloc((size_t)nholders * sizeof *count);
    if (!count) return -1;
    uint64_t total = 0;
    for (int i = 0; i < nholders; i++) {
        double w = weights ? weights[i] : 1.0;
        double c = floor((double)vnodes * w / mean + 0.5);
        count[i] = c < 1 ? 1 : c > 1e6 ? 1000000u : (uint32_t)c;
        total += count[i];
    }
    tok_t *t = malloc(total * sizeof *t);
    r->slot = malloc((size_t)nholders * sizeof *r->slot);
    if (!t || !r->slot) goto nomem;
    memcpy(r->slot, slots, (size_t)nholders * sizeof *slots);
    uint64_t k = 0;
    for (int i = 0; i < nholders; i++)
        for (uint32_t j = 0; j < count[i]; j++) {
            uint64_t seed[2] = {slots[i], j};
            t[k++] = (tok_t){loom_hash_bytes(seed, sizeof seed, 0x6b765f72696e67ULL), (uint16_t)i};
        }
    qsort(t, total, sizeof *t, tok_cmp);
    r->ntok = (uint32_t)total;
    r->nholders = nholders;
    r->n = n < nholders ? n : nholders;
    r->pos = malloc(total * sizeof *r->pos);
    r->owner = malloc(total * sizeof *r->owner);
    r->wlen = nholders < r->n + 32 ? nholders : r->n + 32;
    r->walk = malloc(total * (size_t)r->wlen * sizeof *r->walk);
    unsigned char *seen = calloc((size_t)nholders, 1);
    if (!r->pos || !r->owner || !r->walk || !seen) {
        free(seen);
        goto nomem;
    }
    for (uint32_t i = 0; i < total; i++) {
        r->pos[i] = t[i].pos;
        r->owner[i] = t[i].owner;
    }
    for (uint32_t i = 0; i < total; i++) {
        uint16_t *w = r->walk + (size_t)i * (size_t)r->wlen;
        int got = 0;
        memset(seen, 0, (size_t)nholders);
        for (uint32_t s = 0; s < total && got < r->wlen; s++) {
            uint16_t o = t[(i + s) % total].owner;
            if (!seen[o]) {
                seen[o] = 1;
                w[got++] = o;
            }
        }
    }
    free(seen);
    free(t);
    free(count);
    return 0;
nomem:
    free(t);
    free(count);
    kv_ring_free(r);
    return -1;
}

void kv_ring_free(kv_ring_t *r)
{
    free(r->slot);
    free(r->pos);
    free(r->owner);
    free(r->walk);
    memset(r, 0, sizeof *r);
}

const uint16_t *kv_ring_order(const kv_ring_t *r, uint64_t h)
{
    /* the first token at or after h, wrapping */
    uint32_t lo = 0, hi = r->ntok;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (r->pos[mid] < h)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == r->ntok) lo = 0;
    return r->walk + (size_t)lo * (size_t)r->wlen;
}

int kv_ring_is_home(const kv_ring_t *r, uint64_t h, int holder)
{
    const uint16_t *o = kv_ring_order(r, h);
    for (int i = 0; i < r->n; i++)
        if (o[i] == holder) return 1;
    return 0;
}
