/* Sorting pair references: cached 8-byte key prefixes, then full byte comparison. */
#include <stdlib.h>
#include <string.h>

#include "kernels/sort.h"

uint64_t loom_sort_prefix(const void *key, size_t klen)
{
    const unsigned char *k = key;
    uint64_t p = 0;
    size_t n = klen < 8 ? klen : 8;
    for (size_t i = 0; i < n; i++)
        p |= (uint64_t)k[i] << (56 - 8 * i);
    return p;
}

int loom_sort_cmp_bytes(const void *a, size_t alen, const void *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0; /* empty keys may come with NULL pointers */
    if (c) return c;
    return (alen > blen) - (alen < blen);
}

static int cmp_refs(const void *pa, const void *pb, void *arg)
{
    const loom_kvref_t *a = pa, *b = pb;
    if (a->part != b->part) return a->part < b->part ? -1 : 1;
    if (a->prefix != b->prefix) return a->prefix < b->prefix ? -1 : 1;
    int c = loom_sort_cmp_bytes(a->key, a->klen, b->key, b->klen);
    if (c || !*(const int *)arg) return c;
    return loom_sort_cmp_bytes(a->val, a->vlen, b->val, b->vlen);
}

void loom_sort_kvrefs(loom_kvref_t *refs, size_t n, int by_value)
{
    if (n > 1) qsort_r(refs, n, sizeof *refs, cmp_refs, &by_value);
}
