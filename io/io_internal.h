/* Internal interfaces between the io/ files: readers hand their edges to sources. */
#ifndef LOOM_IO_INTERNAL_H
#define LOOM_IO_INTERNAL_H

#include <hdf5.h>

#include "loom/graph.h"

/* What a reader produces on each rank: its share of the edges, held in memory,
 * plus what the file says about the whole graph. */
typedef struct loom_read_result {
    loom_edges_t edges;    /* this rank's share (any split across ranks is fine) */
    uint64_t num_vertices; /* global: declared size, or max id + 1 */
    int directed;          /* 0 when the file says undirected/symmetric */
    int symmetric;         /* 1 when both directions of every edge are already present */
    int weighted;          /* edges.weight is allocated and filled */
    /* This rank's first negative weight, for the commands that refuse them
     * (shortest paths): where and what ("g.el:12: negative weight -1.5"), or
     * "" when this rank has none. */
    char negative_weight[320];
    /* How num_vertices was found, for messages ("max id + 1", "declared on line 3"). */
    char vertex_count_origin[64];
} loom_read_result_t;

/* Fill r->negative_weight with "WHERE: negative weight W" (printf-style WHERE). */
void loom_read_note_negative(loom_read_result_t *r, double w, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Readers. Each is collective over loom_comm(ctx), agrees on failure before
 * returning, and names file, line and cause in the message. */
loom_status_t loom_read_edgelist(loom_ctx_t *ctx, const char *path, loom_read_result_t *out);
loom_status_t loom_read_mtx(loom_ctx_t *ctx, const char *path, loom_read_result_t *out);
loom_status_t loom_read_h5(loom_ctx_t *ctx, const char *path, loom_read_result_t *out);

/* Wrap a read result as a replayable edge source; takes ownership of r->edges. */
loom_status_t loom_source_from_memory(loom_ctx_t *ctx, loom_read_result_t *r,
                                      loom_edge_source_t **src);

/* Free what loom_graph_load recorded about how it built a graph (load.c). */
void loom_graph_origin_free(struct loom_graph_origin *o);

/* Fail on every rank unless `path` names a readable regular, non-empty file. Collective. */
loom_status_t loom_check_input_file(loom_ctx_t *ctx, const char *path);

/* HDF5 prints its error stack by default; Loom reports one message instead.
 * Between begin and end the default error stack is silent. */
typedef struct loom_h5_quiet {
    H5E_auto2_t func;
    void *data;
} loom_h5_quiet_t;
void loom_h5_quiet_begin(loom_h5_quiet_t *q);
void loom_h5_quiet_end(const loom_h5_quiet_t *q);

/* HDF5 writing shared by the graph and vertex-value writers (io/h5.c).
 * Create a file for collective MPI-IO writes on `comm`; negative on failure. */
hid_t loom_h5_create_parallel(MPI_Comm comm, const char *path);
/* Collective: create a 1-D dataset `name` of `total` elements of `ftype` in
 * `loc` and write this rank's `count` elements (`elem` bytes each) from `start`. */
loom_status_t loom_h5_write_column(loom_ctx_t *ctx, MPI_Comm comm, const char *path, hid_t loc,
                                   const char *name, hid_t ftype, hid_t mtype, uint64_t total,
                                   uint64_t start, uint64_t count, const void *buf, size_t elem);

#endif
