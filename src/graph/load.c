/* Open a graph from a path or generator spec and build it, as graph commands do; build it
 * again over fewer ranks after a recovery. */
#include <stdlib.h>
#include <string.h>

#include "io/gen.h"
#include "io/io_internal.h"
#include "loom/graph.h"

struct loom_graph_origin {
    char *spec;
    loom_format_t fmt;
    int flags;
    loom_build_opts_t b;
};

static loom_status_t open_and_build(loom_ctx_t *ctx, const char *spec, loom_format_t fmt,
                                    const loom_build_opts_t *b0, int flags, int flags_undirected,
                                    loom_build_opts_t *used, loom_graph_t **graph)
{
    loom_edge_source_t *src = NULL;
    loom_status_t st = loom_source_open(ctx, spec, fmt, &src); /* times itself as "read" */
    st = loom_agree(ctx, loom_comm(ctx), st);
    if (st != LOOM_OK) return st;
    const char *neg = loom_source_negative_weight(src);
    if ((flags & LOOM_LOAD_NONNEGATIVE) && neg)
        st = LOOM_ERROR(ctx, LOOM_ERR_FORMAT, "%s (shortest paths need weights >= 0)", neg);
    /* The lowest failing rank reads the earliest part of the file. */
    st = loom_agree(ctx, loom_comm(ctx), st);
    if (st != LOOM_OK) {
        loom_source_destroy(&src);
        return st;
    }
    *used = *b0;
    if (flags_undirected && !loom_source_directed(src)) used->undirected = 1;
    loom_timer_start(ctx, "build");
    st = loom_graph_build(ctx, src, used, graph);
    loom_timer_stop(ctx, "build");
    loom_source_destroy(&src);
    return st;
}

loom_status_t loom_graph_load(loom_ctx_t *ctx, const char *spec, const loom_opts_t *opts, int flags,
                              loom_graph_t **graph)
{
    *graph = NULL;
    loom_format_t fmt = LOOM_FMT_AUTO;
    const char *fname = loom_opt_string(opts, "format");
    if (fname && loom_format_parse(fname, &fmt) != 0)
        return loom_agree(ctx, loom_comm(ctx),
                          LOOM_ERROR(ctx, LOOM_ERR_USAGE, "--format: unknown format '%s'", fname));
    loom_build_opts_t b = {
        .undirected = loom_opt_flag(opts, "undirected") || (flags & LOOM_LOAD_UNDIRECTED),
        .drop_self_loops = loom_opt_flag(opts, "drop-self-loops") || (flags & LOOM_LOAD_SIMPLE),
        .drop_duplicates = loom_opt_flag(opts, "drop-duplicates") || (flags & LOOM_LOAD_SIMPLE),
        .want_in_edges = (flags & LOOM_LOAD_IN_EDGES) != 0,
        .vertex_weight = loom_opt_double(opts, "vertex-weight"),
    };
    loom_build_opts_t used;
    loom_status_t st = open_and_build(ctx, spec, fmt, &b, flags, 1, &used, graph);
    if (st == LOOM_OK) {
        struct loom_graph_origin *o = calloc(1, sizeof *o);
        if (o) o->spec = strdup(spec);
        if (o && o->spec) {
            o->fmt = fmt;
            o->flags = flags;
            o->b = used;
            (*graph)->origin = o;
        } else if (o) {
            free(o);
        }
    }
    if (st == LOOM_OK) {
        loom_summary_string(ctx, "graph", spec);
        loom_summary_int(ctx, "vertices", (int64_t)(*graph)->num_vertices);
        loom_summary_int(ctx, "arcs", (int64_t)(*graph)->num_arcs);
        loom_summary_int(ctx, "directed", (*graph)->directed);
    }
    return st;
}

loom_status_t loom_output_format(loom_ctx_t *ctx, const char *path, const char *choice,
                                 loom_format_t *fmt)
{
    *fmt = LOOM_FMT_AUTO;
    if (loom_format_parse(choice, fmt) != 0)
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "%s: cannot write format '%s'", path, choice);
    if (*fmt == LOOM_FMT_AUTO && (*fmt = loom_format_from_path(path)) == LOOM_FMT_AUTO)
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                          "%s: cannot tell the output format from the extension (use .h5, .el or "
                          ".mtx, or --out-format)",
                          path);
    return LOOM_OK;
}

void loom_graph_origin_free(struct loom_graph_origin *o)
{
    if (!o) return;
    free(o->spec);
    free(o);
}

loom_status_t loom_graph_rebuild(loom_ctx_t *ctx, loom_graph_t *g)
{
    if (!g->origin)
        return loom_agree(ctx, loom_comm(ctx),
                          LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                                     "this graph was not made by loom_graph_load: it cannot be "
                                     "built again after a worker died"));
    struct loom_graph_origin *o = g->origin;
    loom_graph_t *h = NULL;
    loom_build_opts_t used;
    LOOM_TRY(open_and_build(ctx, o->spec, o->fmt, &o->b, o->flags, 0, &used, &h));
    /* take h's arrays; keep g (the caller's pointer) and its origin */
    g->origin = NULL;
    loom_graph_t keep = *g;
    *g = *h;
    g->origin = o;
    *h = keep;
    h->origin = NULL;
    loom_graph_destroy(&h);
    return LOOM_OK;
}
