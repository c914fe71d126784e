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

/* ------------------------------------------------------------------ radix sort
 * For refs of one partition: an MSD radix sort on 8-byte key chunks. Items
 * (chunk, index) are radix-sorted by the chunk at depth d (LSD over its 8
 * bytes, skipping bytes that are the same everywhere); each run of equal
 * chunks whose keys go on is sorted again at depth d + 8; a run whose keys all
 * end within the chunk differs only in length (and value). The refs are
 * permuted once at the end. */

typedef struct sort_item {
    uint64_t chunk;
    size_t idx;
} sort_item_t;

/* Key bytes [depth, depth + 8) big-endian, zero-padded. */
static uint64_t chunk_at(const unsigned char *k, size_t klen, size_t depth)
{
    if (depth >= klen) return 0;
    size_t n = klen - depth;
    if (n >= 8) {
        uint64_t w;
        memcpy(&w, k + depth, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        return w;
#else
        return __builtin_bswap64(w);
#endif
    }
    uint64_t p = 0;
    for (size_t i = 0; i < n; i++)
        p |= (uint64_t)k[depth + i] << (56 - 8 * i);
    return p;
}

static void radix_items(sort_item_t *a, sort_item_t *tmp, size_t n)
{
    static _Thread_local size_t cnt[8][256];
    memset(cnt, 0, sizeof cnt);
    for (size_t i = 0; i < n; i++)
        for (int b = 0; b < 8; b++)
            cnt[b][(a[i].chunk >> (8 * b)) & 255]++;
    sort_item_t *src = a, *dst = tmp;
    for (int b = 0; b < 8; b++) {
        size_t *c = cnt[b];
        if (c[(src[0].chunk >> (8 * b)) & 255] == n) continue; /* one byte value: no-op pass */
        size_t off = 0;
        for (int v = 0; v < 256; v++) {
            size_t k = c[v];
            c[v] = off;
            off += k;
        }
        for (size_t i = 0; i < n; i++)
            dst[c[(src[i].chunk >> (8 * b)) & 255]++] = src[i];
        sort_item_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != a) memcpy(a, src, n * sizeof *a);
}

static int cmp_full(const loom_kvref_t *a, const loom_kvref_t *b, int by_value)
{
    int c = loom_sort_cmp_bytes(a->key, a->klen, b->key, b->klen);
    if (c || !by_value) return c;
    return loom_sort_cmp_bytes(a->val, a->vlen, b->val, b->vlen);
}

static void insertion_items(const loom_kvref_t *refs, sort_item_t *a, size_t n, int by_value)
{
    for (size_t i = 1; i < n; i++) {
        sort_item_t x = a[i];
        size_t j = i;
        while (j > 0 && cmp_full(&refs[x.idx], &refs[a[j - 1].idx], by_value) < 0) {
            a[j] = a[j - 1];
            j--;
        }
        a[j] = x;
    }
}

typedef struct tie_ctx {
    const loom_kvref_t *refs;
    int by_value;
} tie_ctx_t;

static int cmp_items(const void *pa, const void *pb, void *arg)
{
    const tie_ctx_t *t = arg;
    const sort_item_t *a = pa, *b = pb;
    return cmp_full(&t->refs[a->idx], &t->refs[b->idx], t->by_value);
}

static void sort_items(const loom_kvref_t *refs, sort_item_t *a, sort_item_t *tmp, size_t n,
                       size_t depth, int by_value)
{
    if (n < 32) {
        insertion_items(refs, a, n, by_value);
        return;
    }
    /* refs and keys are read in sorted order, i.e. at random: prefetch ahead */
    for (size_t i = 0; i < n; i++) {
        if (i + 16 < n) __builtin_prefetch(&refs[a[i + 16].idx]);
        if (i + 8 < n) __builtin_prefetch(refs[a[i + 8].idx].key + depth);
        a[i].chunk = chunk_at(refs[a[i].idx].key, refs[a[i].idx].klen, depth);
    }
    radix_items(a, tmp, n);
    for (size_t s = 0, e; s < n; s = e) {
        int longer = refs[a[s].idx].klen > depth + 8;
        for (e = s + 1; e < n && a[e].chunk == a[s].chunk; e++)
            longer |= refs[a[e].idx].klen > depth + 8;
        if (e - s < 2) continue;
        if (longer) {
            sort_items(refs, a + s, tmp + s, e - s, depth + 8, by_value);
        } else if (e - s < 32) {
            insertion_items(refs, a + s, e - s, by_value);
        } else {
            /* equal up to their ends: only lengths (and values) differ */
            tie_ctx_t t = {refs, by_value};
            qsort_r(a + s, e - s, sizeof *a, cmp_items, &t);
        }
    }
}

void loom_sort_kvrefs(loom_kvref_t *refs, size_t n, int by_value)
{
    if (n < 2) return;
    int one_part = 1;
    for (size_t i = 1; i < n && one_part; i++)
        one_part = refs[i].part == refs[0].part;
    sort_item_t *a = NULL;
    loom_kvref_t *out = NULL;
    if (one_part && n >= 64) {
        a = malloc(2 * n * sizeof *a);
        out = malloc(n * sizeof *out);
    }
    if (!a || !out) {
        /* mixed partitions, few refs, or no memory for the radix sort */
        free(a);
        free(out);
        qsort_r(refs, n, sizeof *refs, cmp_refs, &by_value);
        return;
    }
    for (size_t i = 0; i < n; i++)
        a[i].idx = i;
    sort_items(refs, a, a + n, n, 0, by_value);
    /* gather in order, prefetching: the reads are random, the writes not */
    for (size_t i = 0; i < n; i++) {
        if (i + 16 < n) __builtin_prefetch(&refs[a[i + 16].idx]);
        out[i] = refs[a[i].idx];
    }
    memcpy(refs, out, n * sizeof *out);
    free(out);
    free(a);
}
