/* Graph writers: format dispatch, and the parallel text writers (edge list and
 * Matrix Market) that put each rank's lines at exclusive-scan offsets. */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataplane/dataplane.h"
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

/* ------------------------------------------------------------------ Loom HDF5 CSR */

static int write_attr(hid_t loc, const char *name, hid_t ftype, hid_t mtype, const void *v)
{
    hid_t sid = H5Screate(H5S_SCALAR);
    hid_t aid = sid >= 0 ? H5Acreate2(loc, name, ftype, sid, H5P_DEFAULT, H5P_DEFAULT) : -1;
    int rc = (aid < 0 || H5Awrite(aid, mtype, v) < 0) ? -1 : 0;
    if (aid >= 0) H5Aclose(aid);
    if (sid >= 0) H5Sclose(sid);
    return rc;
}

/* Global offsets of this rank's vertices, written in rounds through a bounded buffer. */
static loom_status_t write_offsets(loom_ctx_t *ctx, MPI_Comm comm, const char *path, hid_t gid,
                                   const loom_graph_t *g, uint64_t base, int last)
{
    uint64_t nv = g->hi - g->lo, count = nv + (last ? 1 : 0);
    uint64_t *buf = malloc((size_t)(count ? count : 1) * sizeof *buf);
    loom_status_t st = LOOM_OK;
    if (!buf) {
        st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "%s: out of memory for offsets", path);
        count = 0;
    }
    uint64_t o0 = g->out_off ? g->out_off[0] : 0;
    for (uint64_t i = 0; i < count; i++)
        buf[i] = base + (g->out_off ? g->out_off[i] - o0 : 0);
    loom_status_t ws =
        loom_h5_write_column(ctx, comm, path, gid, "offsets", H5T_STD_U64LE, H5T_NATIVE_UINT64,
                             g->num_vertices + 1, g->lo, count, buf, sizeof *buf);
    free(buf);
    return st != LOOM_OK ? st : ws;
}

static loom_status_t write_h5(loom_ctx_t *ctx, const loom_graph_t *g, const char *path)
{
    MPI_Comm comm = loom_comm(ctx);
    int rank = loom_rank(ctx), size = loom_size(ctx);
    loom_output_t *out = NULL;
    LOOM_TRY(loom_output_begin(ctx, comm, path, 0, &out));
    loom_h5_quiet_t q;
    loom_h5_quiet_begin(&q);
    loom_status_t st = LOOM_OK;
    uint64_t arcs = loom_graph_local_arcs(g), base = 0;
    LOOM_MPI_KEEP(ctx, st, MPI_Exscan(&arcs, &base, 1, MPI_UINT64_T, MPI_SUM, comm));
    if (rank == 0) base = 0;
    const char *tmp = loom_output_path(out);
    hid_t fid = loom_h5_create_parallel(comm, tmp), gid = -1;
    if (fid >= 0) gid = H5Gcreate2(fid, "/graph", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (gid < 0 && st == LOOM_OK)
        st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot create the HDF5 file", path);
    st = loom_agree(ctx, comm, st);
    if (st == LOOM_OK) {
        uint64_t n = g->num_vertices, m = g->num_arcs;
        int32_t directed = g->directed ? 1 : 0;
        if (write_attr(gid, "num_vertices", H5T_STD_U64LE, H5T_NATIVE_UINT64, &n) < 0 ||
            write_attr(gid, "num_edges", H5T_STD_U64LE, H5T_NATIVE_UINT64, &m) < 0 ||
            write_attr(gid, "directed", H5T_STD_I32LE, H5T_NATIVE_INT32, &directed) < 0)
            st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot write the /graph attributes", path);
        loom_status_t ws = write_offsets(ctx, comm, path, gid, g, base, rank == size - 1);
        if (st == LOOM_OK) st = ws;
        ws = loom_h5_write_column(ctx, comm, path, gid, "targets", H5T_STD_U64LE, H5T_NATIVE_UINT64,
                                  m, base, arcs, g->out_dst, sizeof(uint64_t));
        if (st == LOOM_OK) st = ws;
        if (g->weighted) {
            ws = loom_h5_write_column(ctx, comm, path, gid, "weights", H5T_IEEE_F64LE,
                                      H5T_NATIVE_DOUBLE, m, base, arcs, g->out_w, sizeof(double));
            if (st == LOOM_OK) st = ws;
        }
    }
    if (gid >= 0) H5Gclose(gid);
    if (fid >= 0 && H5Fclose(fid) < 0 && st == LOOM_OK)
        st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: closing the HDF5 file failed", path);
    loom_h5_quiet_end(&q);
    return loom_output_end(ctx, &out, st);
}

/* ------------------------------------------------------------------ any format */

loom_status_t loom_graph_write(loom_ctx_t *ctx, const loom_graph_t *g, const char *path,
                               loom_format_t fmt)
{
    if (fmt == LOOM_FMT_AUTO) fmt = loom_format_from_path(path);
    /* Every rank sees the same path and format, so they fail alike without agreeing. */
    switch (fmt) {
    case LOOM_FMT_HDF5:
        return write_h5(ctx, g, path);
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
