/* Edge batches: growable parallel arrays of (src, dst[, weight]). */
#include <stdlib.h>
#include <string.h>

#include "loom/graph.h"

static int grow(void **p, size_t cap, size_t elem)
{
    void *q = realloc(*p, cap * elem);
    if (!q) return -1;
    *p = q;
    return 0;
}

loom_status_t loom_edges_reserve(loom_ctx_t *ctx, loom_edges_t *e, size_t cap, int weighted)
{
    if (cap == 0) cap = 1;
    if (cap > SIZE_MAX / (3 * sizeof(uint64_t)))
        return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "edge batch of %zu edges is too large", cap);
    if (cap > e->capacity) {
        if (grow((void **)&e->src, cap, sizeof *e->src) ||
            grow((void **)&e->dst, cap, sizeof *e->dst) ||
            (e->weight && grow((void **)&e->weight, cap, sizeof *e->weight)))
            return LOOM_ERROR(ctx, LOOM_ERR_NOMEM,
                              "out of memory growing an edge batch to %zu edges", cap);
        e->capacity = cap;
    }
    if (weighted && !e->weight) {
        e->weight = malloc(e->capacity * sizeof *e->weight);
        if (!e->weight)
            return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory for %zu edge weights",
                              e->capacity);
        /* Edges pushed before the batch became weighted weigh 1. */
        for (size_t i = 0; i < e->count; i++)
            e->weight[i] = 1.0;
    }
    return LOOM_OK;
}

loom_status_t loom_edges_push(loom_ctx_t *ctx, loom_edges_t *e, uint64_t src, uint64_t dst,
                              double weight)
{
    if (e->count == e->capacity)
        LOOM_TRY(loom_edges_reserve(ctx, e, e->capacity ? 2 * e->capacity : 1024, 0));
    e->src[e->count] = src;
    e->dst[e->count] = dst;
    if (e->weight) e->weight[e->count] = weight;
    e->count++;
    return LOOM_OK;
}

void loom_edges_free(loom_edges_t *e)
{
    if (!e) return;
    free(e->src);
    free(e->dst);
    free(e->weight);
    memset(e, 0, sizeof *e);
}
