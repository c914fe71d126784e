/* Edge sources: generator specs and files opened as replayable streams of edge batches. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "io/gen.h"
#include "io/io_internal.h"

struct loom_edge_source {
    int is_gen;
    char *name; /* path or spec, for messages */
    uint64_t num_vertices;
    int directed, symmetric, weighted;
    /* generator: this rank's edge indices [lo, hi), next one at cur */
    loom_gen_t gen;
    uint64_t lo, hi, cur;
    /* memory: this rank's edges, next one at pos */
    loom_edges_t edges;
    size_t pos;
    char origin[64];           /* how num_vertices was found, for messages */
    char negative_weight[320]; /* this rank's first negative weight, "" when none */
};

static loom_status_t set_name(loom_ctx_t *ctx, loom_edge_source_t *s, const char *name)
{
    free(s->name);
    s->name = strdup(name);
    if (!s->name) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    return LOOM_OK;
}

loom_status_t loom_source_generator(loom_ctx_t *ctx, const loom_gen_params_t *p,
                                    loom_edge_source_t **src)
{
    *src = NULL;
    loom_gen_t g;
    LOOM_TRY(loom_gen_init(ctx, p, &g));
    loom_edge_source_t *s = calloc(1, sizeof *s);
    if (!s) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory for an edge source");
    s->is_gen = 1;
    s->gen = g;
    s->num_vertices = g.mask + 1;
    s->directed = 1;
    /* Only workers hold data: with P >= 2 the master's share is empty. */
    loom_gen_share(g.num_edges, loom_worker_index(ctx), loom_num_workers(ctx), &s->lo, &s->hi);
    s->cur = s->lo;
    char name[96];
    snprintf(name, sizeof name, "%s:%d:%d:%llu", p->kind == LOOM_GEN_KRON ? "kron" : "urand",
             p->scale, p->edge_factor, (unsigned long long)p->seed);
    snprintf(s->origin, sizeof s->origin, "2^%d by the scale", p->scale);
    loom_status_t st = set_name(ctx, s, name);
    if (st != LOOM_OK) {
        loom_source_destroy(&s);
        return st;
    }
    *src = s;
    return LOOM_OK;
}

loom_status_t loom_source_from_memory(loom_ctx_t *ctx, loom_read_result_t *r,
                                      loom_edge_source_t **src)
{
    *src = NULL;
    loom_edge_source_t *s = calloc(1, sizeof *s);
    if (!s) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory for an edge source");
    s->num_vertices = r->num_vertices;
    s->directed = r->directed;
    s->symmetric = r->symmetric;
    s->weighted = r->weighted;
    snprintf(s->origin, sizeof s->origin, "%s",
             r->vertex_count_origin[0] ? r->vertex_count_origin : "as read");
    snprintf(s->negative_weight, sizeof s->negative_weight, "%s", r->negative_weight);
    loom_status_t st = set_name(ctx, s, "edges in memory");
    if (st != LOOM_OK) {
        free(s);
        return st;
    }
    s->edges = r->edges;
    memset(&r->edges, 0, sizeof r->edges);
    *src = s;
    return LOOM_OK;
}

int loom_format_parse(const char *name, loom_format_t *fmt)
{
    static const struct {
        const char *name;
        loom_format_t fmt;
    } names[] = {{"auto", LOOM_FMT_AUTO},   {"edgelist", LOOM_FMT_EDGELIST},
                 {"el", LOOM_FMT_EDGELIST}, {"mtx", LOOM_FMT_MTX},
                 {"h5", LOOM_FMT_HDF5},     {"hdf5", LOOM_FMT_HDF5}};
    if (!name) {
        *fmt = LOOM_FMT_AUTO;
        return 0;
    }
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcasecmp(name, names[i].name)) {
            *fmt = names[i].fmt;
            return 0;
        }
    return -1;
}

loom_format_t loom_format_from_path(const char *path)
{
    static const struct {
        const char *ext;
        loom_format_t fmt;
    } exts[] = {{".el", LOOM_FMT_EDGELIST},   {".txt", LOOM_FMT_EDGELIST},
                {".tsv", LOOM_FMT_EDGELIST},  {".edges", LOOM_FMT_EDGELIST},
                {".snap", LOOM_FMT_EDGELIST}, {".mtx", LOOM_FMT_MTX},
                {".h5", LOOM_FMT_HDF5},       {".hdf5", LOOM_FMT_HDF5}};
    if (!path) return LOOM_FMT_AUTO;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    if (!dot || dot == base) return LOOM_FMT_AUTO;
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++)
        if (!strcasecmp(dot, exts[i].ext)) return exts[i].fmt;
    return LOOM_FMT_AUTO;
}

static loom_status_t open_file(loom_ctx_t *ctx, const char *path, loom_format_t fmt,
                               loom_edge_source_t **src)
{
    LOOM_TRY(loom_check_input_file(ctx, path));
    if (fmt == LOOM_FMT_AUTO) fmt = loom_format_from_path(path);
    if (fmt == LOOM_FMT_AUTO) /* Every rank sees the same path, so every rank fails here alike. */
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                          "%s: cannot tell the graph format from the file name (known "
                          "extensions: .el .txt .tsv .edges .snap .mtx .h5 .hdf5); give "
                          "--format edgelist|mtx|h5",
                          path);
    loom_read_result_t r;
    memset(&r, 0, sizeof r);
    loom_status_t st;
    loom_timer_start(ctx, "read");
    switch (fmt) {
    case LOOM_FMT_EDGELIST:
        st = loom_read_edgelist(ctx, path, &r);
        break;
    case LOOM_FMT_MTX:
        st = loom_read_mtx(ctx, path, &r);
        break;
    case LOOM_FMT_HDF5:
        st = loom_read_h5(ctx, path, &r);
        break;
    default:
        st = LOOM_ERROR(ctx, LOOM_ERR_USAGE, "unknown graph format %d", (int)fmt);
        break;
    }
    loom_timer_stop(ctx, "read");
    if (st == LOOM_OK) st = loom_source_from_memory(ctx, &r, src);
    if (st == LOOM_OK) st = set_name(ctx, *src, path);
    loom_edges_free(&r.edges);
    return st;
}

loom_status_t loom_source_open(loom_ctx_t *ctx, const char *path_or_spec, loom_format_t fmt,
                               loom_edge_source_t **src)
{
    *src = NULL;
    loom_status_t st = LOOM_OK;
    if (!path_or_spec || !*path_or_spec) {
        st = LOOM_ERROR(ctx, LOOM_ERR_USAGE, "no graph given (a file or a spec like kron:20)");
    } else {
        int is_spec = 0;
        loom_gen_params_t p;
        st = loom_gen_parse_spec(ctx, path_or_spec, &is_spec, &p);
        if (st == LOOM_OK && is_spec)
            st = loom_source_generator(ctx, &p, src);
        else if (st == LOOM_OK)
            st = open_file(ctx, path_or_spec, fmt, src);
    }
    st = loom_agree(ctx, loom_comm(ctx), st);
    if (st != LOOM_OK) loom_source_destroy(src);
    return st;
}

uint64_t loom_source_num_vertices(const loom_edge_source_t *src)
{
    return src->num_vertices;
}
int loom_source_directed(const loom_edge_source_t *src)
{
    return src->directed;
}
int loom_source_symmetric(const loom_edge_source_t *src)
{
    return src->symmetric;
}
int loom_source_weighted(const loom_edge_source_t *src)
{
    return src->weighted;
}
uint64_t loom_source_local_count(const loom_edge_source_t *src)
{
    return src->is_gen ? src->hi - src->lo : (uint64_t)src->edges.count;
}
int loom_source_is_generator(const loom_edge_source_t *src)
{
    return src->is_gen;
}
const char *loom_source_name(const loom_edge_source_t *src)
{
    return src->name ? src->name : "graph";
}
const char *loom_source_vertex_count_origin(const loom_edge_source_t *src)
{
    return src->origin;
}
const char *loom_source_negative_weight(const loom_edge_source_t *src)
{
    return src->negative_weight[0] ? src->negative_weight : NULL;
}

loom_status_t loom_source_rewind(loom_ctx_t *ctx, loom_edge_source_t *src)
{
    src->cur = src->lo;
    src->pos = 0;
    return LOOM_OK;
}

loom_status_t loom_source_next(loom_ctx_t *ctx, loom_edge_source_t *src, loom_edges_t *batch,
                               size_t max)
{
    batch->count = 0;
    uint64_t left = src->is_gen ? src->hi - src->cur : (uint64_t)(src->edges.count - src->pos);
    size_t take = left < (uint64_t)max ? (size_t)left : max;
    if (take == 0) return LOOM_OK;
    LOOM_TRY(loom_edges_reserve(ctx, batch, take, src->weighted));
    if (!src->weighted && batch->weight) {
        free(batch->weight);
        batch->weight = NULL;
    }
    if (src->is_gen) {
        loom_gen_fill(&src->gen, src->cur, take, batch->src, batch->dst, loom_threads(ctx));
        src->cur += take;
    } else {
        const loom_edges_t *e = &src->edges;
        memcpy(batch->src, e->src + src->pos, take * sizeof *e->src);
        memcpy(batch->dst, e->dst + src->pos, take * sizeof *e->dst);
        if (src->weighted) {
            if (e->weight)
                memcpy(batch->weight, e->weight + src->pos, take * sizeof *e->weight);
            else
                for (size_t i = 0; i < take; i++)
                    batch->weight[i] = 1.0;
        }
        src->pos += take;
    }
    batch->count = take;
    return LOOM_OK;
}

void loom_source_destroy(loom_edge_source_t **src)
{
    if (!src || !*src) return;
    loom_edges_free(&(*src)->edges);
    free((*src)->name);
    free(*src);
    *src = NULL;
}
