/* Graph writers: format dispatch, and the parallel text writers (edge list and
 * Matrix Market) that put each rank's lines at exclusive-scan offsets. */
#include <stdio.h>
#include <string.h>

#include "io/io_internal.h"
#include "io/textsplit.h"

/* Longest line the writers emit: two 20-digit ids, a %.17g weight, separators. */
#define MAX_LINE 96

typedef struct arc_cursor {
    const loom_graph_t *g;
    uint64_t v;       /* local vertex index */
    uint64_t k;       /* arc index into out_dst */
    int one_based;    /* Matrix Market */
    const char *head; /* text rank 0 writes first, NULL once written */
    const char *head0;
} arc_cursor_t;

static char *put_weight(char *p, double w)
{
    *p++ = ' ';
    int n = snprintf(p, 32, "%.17g", w);
    return p + (n > 0 && n < 32 ? n : 0);
}

static loom_status_t fill_arcs(loom_ctx_t *ctx, void *arg, char *buf, size_t cap, size_t *len,
                               int *done)
{
    arc_cursor_t *c = arg;
    const loom_graph_t *g = c->g;
    char *p = buf, *end = buf + cap;
    if (c->head) {
        size_t hl = strlen(c->head);
        if (hl + MAX_LINE > cap) return LOOM_ERROR(ctx, LOOM_ERR_INTERNAL, "header too long");
        memcpy(p, c->head, hl);
        p += hl;
        c->head = NULL;
    }
    uint64_t nv = g->hi - g->lo, o0 = g->out_off ? g->out_off[0] : 0, add = c->one_based ? 1 : 0;
    while (c->v < nv && end - p >= MAX_LINE) {
        uint64_t stop = g->out_off[c->v + 1] - o0;
        if (c->k >= stop) {
            c->v++;
            continue;
        }
        p = loom_text_put_u64(p, g->lo + c->v + add);
        *p++ = ' ';
        p = loom_text_put_u64(p, g->out_dst[c->k] + add);
        if (g->weighted && g->out_w) p = put_weight(p, g->out_w[c->k]);
        *p++ = '\n';
        c->k++;
    }
    *len = (size_t)(p - buf);
    *done = c->v >= nv;
    return LOOM_OK;
}

static loom_status_t rewind_arcs(loom_ctx_t *ctx, void *arg)
{
    arc_cursor_t *c = arg;
    c->v = c->k = 0;
    c->head = c->head0;
    return LOOM_OK;
}

static loom_status_t write_text(loom_ctx_t *ctx, const loom_graph_t *g, const char *path, int mtx)
{
    MPI_Comm comm = loom_comm(ctx);
    char head[256];
    arc_cursor_t c = {.g = g, .one_based = mtx};
    if (mtx && loom_rank(ctx) == 0) {
        snprintf(head, sizeof head,
                 "%%%%MatrixMarket matrix coordinate %s general\n%% written by Loom\n%llu %llu "
                 "%llu\n",
                 g->weighted ? "real" : "pattern", (unsigned long long)g->num_vertices,
                 (unsigned long long)g->num_vertices, (unsigned long long)g->num_arcs);
        c.head = c.head0 = head;
    } else if (loom_rank(ctx) == 0) {
        /* The vertex count, so that isolated vertices at the top of the id
         * range survive a round trip (docs/FORMATS.md). */
        snprintf(head, sizeof head, "# loom-graph vertices=%llu arcs=%llu\n",
                 (unsigned long long)g->num_vertices, (unsigned long long)g->num_arcs);
        c.head = c.head0 = head;
    }
    loom_output_t *out = NULL;
    LOOM_TRY(loom_output_begin(ctx, comm, path, 0, &out));
    loom_status_t st =
        loom_text_write_ordered(ctx, comm, loom_output_path(out), fill_arcs, rewind_arcs, &c);
    return loom_output_end(ctx, &out, st);
}

loom_status_t loom_graph_write(loom_ctx_t *ctx, const loom_graph_t *g, const char *path,
                               loom_format_t fmt)
{
    if (fmt == LOOM_FMT_AUTO) fmt = loom_format_from_path(path);
    /* Every rank sees the same path and format, so they fail alike without agreeing. */
    switch (fmt) {
    case LOOM_FMT_HDF5:
        return loom_h5_write_graph(ctx, g, path);
    case LOOM_FMT_EDGELIST:
        return write_text(ctx, g, path, 0);
    case LOOM_FMT_MTX:
        return write_text(ctx, g, path, 1);
    default:
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                          "%s: cannot tell the output format from the extension (use .h5, .el, "
                          ".txt or .mtx, or give --format)",
                          path);
    }
}
