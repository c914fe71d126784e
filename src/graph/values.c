/* Per-vertex results: an HDF5 float64 dataset or "vertex<TAB>value" text lines. */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "io/io_internal.h"
#include "io/textsplit.h"

static int is_h5_path(const char *path)
{
    const char *dot = strrchr(path, '.');
    return dot && (strcmp(dot, ".h5") == 0 || strcmp(dot, ".hdf5") == 0);
}

typedef struct value_cursor {
    const loom_graph_t *g;
    const double *v;
    uint64_t i;
} value_cursor_t;

static char *put_value(char *p, double x)
{
    if (isinf(x)) {
        const char *s = x > 0 ? "inf" : "-inf";
        size_t n = strlen(s);
        memcpy(p, s, n);
        return p + n;
    }
    if (isnan(x)) {
        memcpy(p, "nan", 3);
        return p + 3;
    }
    int n = snprintf(p, 32, "%.17g", x);
    return p + (n > 0 && n < 32 ? n : 0);
}

static loom_status_t fill_values(loom_ctx_t *ctx, void *arg, char *buf, size_t cap, size_t *len,
                                 int *done)
{
    value_cursor_t *c = arg;
    uint64_t nv = c->g->hi - c->g->lo;
    char *p = buf, *end = buf + cap;
    while (c->i < nv && end - p >= 64) {
        p = loom_text_put_u64(p, c->g->lo + c->i);
        *p++ = '\t';
        p = put_value(p, c->v[c->i]);
        *p++ = '\n';
        c->i++;
    }
    *len = (size_t)(p - buf);
    *done = c->i >= nv;
    return LOOM_OK;
}

static loom_status_t rewind_values(loom_ctx_t *ctx, void *arg)
{
    ((value_cursor_t *)arg)->i = 0;
    return LOOM_OK;
}

static loom_status_t write_h5(loom_ctx_t *ctx, MPI_Comm comm, const loom_graph_t *g,
                              const char *path, const char *tmp, const char *name,
                              const double *values)
{
    loom_status_t st = LOOM_OK;
    hid_t fid = loom_h5_create_parallel(comm, tmp);
    if (fid < 0) st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot create the HDF5 file", path);
    st = loom_agree(ctx, comm, st);
    if (st != LOOM_OK) return st;
    /* HDF5 would make a group path of a name with slashes; keep one flat name. */
    char dname[256];
    snprintf(dname, sizeof dname, "/%s", name && *name ? name : "values");
    for (char *p = dname + 1; *p; p++)
        if (*p == '/') *p = '_';
    st = loom_h5_write_column(ctx, comm, path, fid, dname, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE,
                              g->num_vertices, g->lo, g->hi - g->lo, values, sizeof(double));
    if (H5Fclose(fid) < 0 && st == LOOM_OK)
        st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: closing the HDF5 file failed", path);
    return st;
}

loom_status_t loom_write_vertex_values(loom_ctx_t *ctx, const loom_graph_t *g, const char *path,
                                       const char *name, const double *local_values)
{
    MPI_Comm comm = loom_comm(ctx);
    loom_output_t *out = NULL;
    LOOM_TRY(loom_output_begin(ctx, comm, path, 0, &out));
    loom_status_t st;
    if (is_h5_path(path)) {
        H5E_auto2_t func;
        void *data;
        H5Eget_auto2(H5E_DEFAULT, &func, &data);
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
        st = write_h5(ctx, comm, g, path, loom_output_path(out), name, local_values);
        H5Eset_auto2(H5E_DEFAULT, func, data);
    } else {
        value_cursor_t c = {.g = g, .v = local_values};
        st = loom_text_write_ordered(ctx, comm, loom_output_path(out), fill_values, rewind_values,
                                     &c);
    }
    return loom_output_end(ctx, &out, st);
}
