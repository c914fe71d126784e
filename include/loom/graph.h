/* Loom graphs: edge sources (generators and readers), the distributed CSR,
 * graph writers and atomic output files. */
#ifndef LOOM_GRAPH_H
#define LOOM_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "loom/output.h"
#include "loom/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest vertex id Loom accepts: ids are 64-bit unsigned, below 2^63. */
#define LOOM_MAX_VERTEX_ID ((uint64_t)INT64_MAX - 1)

/* ------------------------------------------------------------------ edge batches */

/* A set of edges held by one rank: parallel arrays of `count` entries. */
typedef struct loom_edges {
    size_t count, capacity;
    uint64_t *src, *dst;
    double *weight; /* NULL when unweighted */
} loom_edges_t;

/* Grow capacity to at least `cap` (keeping contents); `weighted` allocates the
 * weight array too. */
loom_status_t loom_edges_reserve(loom_ctx_t *ctx, loom_edges_t *e, size_t cap, int weighted);
/* Append one edge, growing geometrically. */
loom_status_t loom_edges_push(loom_ctx_t *ctx, loom_edges_t *e, uint64_t src, uint64_t dst,
                              double weight);
/* Free the arrays and zero the struct (the struct itself is the caller's). */
void loom_edges_free(loom_edges_t *e);

/* ------------------------------------------------------------------ edge sources */

/* An edge source yields the graph's edges in batches, split across the ranks of
 * the job communicator (each rank yields its share; the union over ranks is the
 * graph). It can be rewound and read again, which lets the CSR builder count
 * degrees in one pass and place edges in a second without holding the whole
 * edge list twice. Generators regenerate on each pass; readers read the file
 * once into memory and replay it. */
typedef struct loom_edge_source loom_edge_source_t;

typedef enum loom_gen_kind { LOOM_GEN_KRON = 1, LOOM_GEN_URAND = 2 } loom_gen_kind_t;

typedef struct loom_gen_params {
    loom_gen_kind_t kind;
    int scale;       /* n = 2^scale vertices, 1..40 */
    int edge_factor; /* m = edge_factor * n generated edges, >= 1 (16 when a spec omits it) */
    uint64_t seed;   /* any value (1 when a spec omits it) */
} loom_gen_params_t;

/* Generator source: Graph500 Kronecker (A=0.57, B=0.19, C=0.19, vertices
 * relabelled by a seeded bijection) or uniform random. Edge k of the m edges is a
 * pure function of (seed, k), so the graph is identical for any number of
 * ranks; only workers hold edges: worker w of W yields a contiguous, even slice
 * of the indices (the master's share is empty when P >= 2). Fails with
 * LOOM_ERR_USAGE when scale is outside 1..40, edge_factor < 1 or m > 2^62. Not
 * collective. */
loom_status_t loom_source_generator(loom_ctx_t *ctx, const loom_gen_params_t *p,
                                    loom_edge_source_t **src);

typedef enum loom_format {
    LOOM_FMT_AUTO = 0, /* from the extension */
    LOOM_FMT_EDGELIST, /* .el .txt .tsv .edges: "src dst [weight]" lines, # or % comments */
    LOOM_FMT_MTX,      /* .mtx: Matrix Market coordinate, 1-based */
    LOOM_FMT_HDF5,     /* .h5 .hdf5: Loom's HDF5 CSR (docs/FORMATS.md) */
} loom_format_t;

/* Parse "edgelist", "el", "mtx", "h5", "hdf5" (or NULL/"auto"). Returns 0 on success. */
int loom_format_parse(const char *name, loom_format_t *fmt);
/* The format a path's extension implies, LOOM_FMT_AUTO when unknown. */
loom_format_t loom_format_from_path(const char *path);

/* Open a graph named by a path or a generator spec ("kron:20", "urand:18",
 * "kron:20:16:7" = scale 20, edge factor 16, seed 7; a spec's scale is 1..40
 * and its edge factor 1..1024, as `loom generate`'s options; a bad spec or a
 * path whose extension names no format while fmt is AUTO is LOOM_ERR_USAGE).
 * Text files are read in parallel (each rank a byte range aligned to line
 * starts); HDF5 with collective MPI-IO. Every bad input (missing file, directory, empty file,
 * malformed line, negative or too large id, inconsistent Matrix Market header,
 * truncated or foreign HDF5, missing dataset) fails with a message naming the
 * file, line and cause. Collective over the job communicator; agrees on failure. */
loom_status_t loom_source_open(loom_ctx_t *ctx, const char *path_or_spec, loom_format_t fmt,
                               loom_edge_source_t **src);

/* What a source knows before any pass: the global vertex count, whether it is
 * directed (a Loom HDF5 file or Matrix Market "symmetric" may say it is not),
 * whether its edges are already symmetric (both directions present), and
 * whether it has weights. */
uint64_t loom_source_num_vertices(const loom_edge_source_t *src);
int loom_source_directed(const loom_edge_source_t *src);
int loom_source_symmetric(const loom_edge_source_t *src);
int loom_source_weighted(const loom_edge_source_t *src);

/* Rewind to the start of this rank's share. */
loom_status_t loom_source_rewind(loom_ctx_t *ctx, loom_edge_source_t *src);
/* Fill `batch` (cleared first) with up to `max` of this rank's next edges;
 * batch->count == 0 means this rank's share is exhausted. Not collective. */
loom_status_t loom_source_next(loom_ctx_t *ctx, loom_edge_source_t *src, loom_edges_t *batch,
                               size_t max);
void loom_source_destroy(loom_edge_source_t **src);

/* ------------------------------------------------------------------ distributed CSR */

typedef struct loom_build_opts {
    int undirected; /* symmetrise: every edge u-v gives arcs u->v and v->u */
    int drop_self_loops;
    int drop_duplicates;  /* keep one arc per (u, v); weighted: the smallest weight */
    int want_in_edges;    /* build the in-CSR for directed graphs */
    double vertex_weight; /* partition cost of a vertex in arcs (default 0 = auto: the
                           * average out + in degree, so vertices and arcs weigh half each) */
} loom_build_opts_t;

/* A graph partitioned into contiguous vertex ranges balanced by arcs plus a
 * vertex term. Rank r owns vertices [part[r], part[r+1]). With P >= 2 ranks the
 * master (rank 0) owns none. Adjacency lists are sorted by neighbour id.
 * Fields are read-only for users. */
typedef struct loom_graph {
    uint64_t num_vertices; /* global n */
    uint64_t num_arcs;     /* global arcs in the out-CSR (undirected: 2 per edge) */
    int directed;          /* 0: arcs are symmetric and in_* alias out_* */
    int weighted;
    int nparts;        /* size of the job communicator */
    uint64_t *part;    /* nparts + 1 range bounds */
    uint64_t lo, hi;   /* this rank's range */
    uint64_t *out_off; /* (hi - lo) + 1 offsets into out_dst */
    uint64_t *out_dst; /* global ids of out-neighbours */
    double *out_w;     /* NULL when unweighted */
    uint64_t *in_off;  /* NULL unless built; == out_off when undirected */
    uint64_t *in_src;
    double *in_w;
    struct loom_graph_origin *origin; /* private: how loom_graph_load built it */
} loom_graph_t;

/* Build the distributed CSR from a source: count degrees (pass 1), choose the
 * edge-balanced partition, then move every arc to its owner with MPI_Alltoallv
 * in bounded rounds (pass 2), sort adjacency lists and apply the options.
 * Vertex ids at or above the source's vertex count fail with LOOM_ERR_FORMAT.
 * Collective over the job communicator; agrees on failure. */
loom_status_t loom_graph_build(loom_ctx_t *ctx, loom_edge_source_t *src,
                               const loom_build_opts_t *opts, loom_graph_t **graph);
void loom_graph_destroy(loom_graph_t **graph);

/* The partition rule of loom_graph_build, for tools that model partitions
 * without building them: `workers` contiguous ranges of [0, n) balanced by
 * cost(v) = outd[v] + ind[v] + vw, where vw = vertex_weight, or the mean
 * out + in degree when vertex_weight <= 0 (ind may be NULL: then outd counts
 * twice, as for an undirected graph). Writes workers + 1 bounds; returns vw.
 * Not collective; thread-safe. */
double loom_graph_partition_ranges(const uint64_t *outd, const uint64_t *ind, uint64_t n,
                                   int workers, double vertex_weight, uint64_t *bounds);

/* The rank that owns vertex v (binary search over part). Thread-safe. */
int loom_graph_owner(const loom_graph_t *g, uint64_t v);
static inline uint64_t loom_graph_local_vertices(const loom_graph_t *g)
{
    return g->hi - g->lo;
}
static inline uint64_t loom_graph_local_arcs(const loom_graph_t *g)
{
    return g->out_off ? g->out_off[g->hi - g->lo] : 0;
}

/* ------------------------------------------------------------------ graph jobs' common options */

/* Option rows every graph-reading command shares; put them in the command's
 * table (e.g. `static const loom_option_t opts[] = { LOOM_GRAPH_OPTION_ROWS, ...,
 * {0} };`) and hand the parsed options to loom_graph_load. */
#define LOOM_GRAPH_OPTION_ROWS                                                                     \
    {"format",                                                                                     \
     LOOM_OPT_CHOICE,                                                                              \
     "auto",                                                                                       \
     "input format (auto: from the file extension)",                                               \
     "auto|edgelist|el|mtx|h5|hdf5",                                                               \
     0,                                                                                            \
     0,                                                                                            \
     0},                                                                                           \
        {"undirected",                                                                             \
         LOOM_OPT_FLAG,                                                                            \
         NULL,                                                                                     \
         "treat edges as undirected (add both directions)",                                        \
         NULL,                                                                                     \
         0,                                                                                        \
         0,                                                                                        \
         0},                                                                                       \
        {"drop-self-loops", LOOM_OPT_FLAG, NULL, "drop arcs v->v", NULL, 0, 0, 0},                 \
        {"drop-duplicates",                                                                        \
         LOOM_OPT_FLAG,                                                                            \
         NULL,                                                                                     \
         "keep one arc per (u, v) (smallest weight)",                                              \
         NULL,                                                                                     \
         0,                                                                                        \
         0,                                                                                        \
         0},                                                                                       \
    {                                                                                              \
        "vertex-weight", LOOM_OPT_DOUBLE, "0",                                                     \
            "partition cost of a vertex in arcs (0: automatic)", NULL, 1, 0, 1e12                  \
    }

/* Option rows of the commands that write a graph (--out, --out-format). */
#define LOOM_GRAPH_OUTPUT_ROWS                                                                     \
    {"out", LOOM_OPT_STRING,                                                                       \
     NULL,  "output file: .h5 (Loom HDF5 CSR), .el/.txt (edge list), .mtx",                        \
     NULL,  0,                                                                                     \
     0,     0},                                                                                    \
    {                                                                                              \
        "out-format", LOOM_OPT_CHOICE, "auto", "output format (auto: from the extension)",         \
            "auto|edgelist|el|mtx|h5|hdf5", 0, 0, 0                                                \
    }

/* The format to write `path` in: `choice` names one, or with "auto" (or NULL)
 * the path's extension decides. Fails with LOOM_ERR_USAGE naming the file when
 * neither does. Not collective. */
loom_status_t loom_output_format(loom_ctx_t *ctx, const char *path, const char *choice,
                                 loom_format_t *fmt);

/* What a command may require of the graph whatever the options say. */
#define LOOM_LOAD_IN_EDGES 1   /* also build the in-CSR of a directed graph */
#define LOOM_LOAD_UNDIRECTED 2 /* symmetrise (e.g. weakly connected components) */
#define LOOM_LOAD_SIMPLE 4     /* drop self-loops and duplicate arcs */
/* Refuse negative weights (shortest paths): LOOM_ERR_FORMAT naming the file
 * and, for text input, the line of the first one (for HDF5, its element of
 * /graph/weights). */
#define LOOM_LOAD_NONNEGATIVE 8

/* Open `spec` (a path or generator spec) and build its distributed CSR with
 * the options of LOOM_GRAPH_OPTION_ROWS plus what `flags` (LOOM_LOAD_*)
 * requires. Records the "read"/"build" phases and the graph's size in the
 * summary. Collective; agrees on failure. */
loom_status_t loom_graph_load(loom_ctx_t *ctx, const char *spec, const loom_opts_t *opts, int flags,
                              loom_graph_t **graph);

/* Build `g` again, in place, over the job's members as they are now (after a
 * recovery shrank the job, say): the same source, format and options, a new
 * partition. Only for graphs made by loom_graph_load (LOOM_ERR_USAGE
 * otherwise). Collective; agrees on failure, leaving g as it was. */
loom_status_t loom_graph_rebuild(loom_ctx_t *ctx, loom_graph_t *g);

/* ------------------------------------------------------------------ writers */

/* Write the graph as Loom HDF5 CSR (parallel, collective MPI-IO) or as an edge
 * list (a first line "# loom-graph vertices=N arcs=M", then "src dst" or "src
 * dst weight" per line, in vertex order; the reader takes N as the vertex count,
 * so isolated vertices survive). The file is written under a temporary name
 * and renamed when complete. Collective. */
loom_status_t loom_graph_write(loom_ctx_t *ctx, const loom_graph_t *g, const char *path,
                               loom_format_t fmt);

/* Write one value per owned vertex: `.h5` gives a float64 dataset `/<name>` of
 * num_vertices entries indexed by vertex id; any other extension gives
 * "vertex<TAB>value" lines in vertex order (%.17g; infinity as "inf"). Atomic.
 * Collective. */
loom_status_t loom_write_vertex_values(loom_ctx_t *ctx, const loom_graph_t *g, const char *path,
                                       const char *name, const double *local_values);

#ifdef __cplusplus
}
#endif
#endif
