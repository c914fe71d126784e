/* Outputs named *.h5 / *.hdf5: part files written beside the temporary, then one HDF5 file
 * of their lines as /keys and /values string datasets (the MapReduce and dataset engines). */
#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dataplane/dataplane.h"
#include "loom/output.h"

int loom_output_is_h5(const char *path)
{
    size_t n = path ? strlen(path) : 0;
    return (n > 3 && strcmp(path + n - 3, ".h5") == 0) ||
           (n > 5 && strcmp(path + n - 5, ".hdf5") == 0);
}

struct loom_output_parts {
    char *dir;
    int handle; /* loom_temp_register's, rank 0 */
};

loom_status_t loom_output_parts_begin(loom_ctx_t *ctx, MPI_Comm comm, const loom_output_t *out,
                                      loom_output_parts_t **parts)
{
    loom_status_t st = LOOM_OK;
    loom_output_parts_t *p = calloc(1, sizeof *p);
    size_t n = strlen(loom_output_path(out)) + 8;
    if (p) p->dir = malloc(n);
    if (!p || !p->dir) {
        st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    } else {
        snprintf(p->dir, n, "%s.parts", loom_output_path(out));
        p->handle = -1;
        if (loom_rank(ctx) == 0) {
            p->handle = loom_temp_register(ctx, p->dir, 1); /* before it exists */
            if (mkdir(p->dir, 0777) != 0)
                st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot create: %s", p->dir, strerror(errno));
        }
    }
    *parts = p;
    return loom_agree(ctx, comm, st);
}

const char *loom_output_parts_dir(const loom_output_parts_t *parts)
{
    return parts && parts->dir ? parts->dir : "";
}

/* Write `n` strings as a 1-D variable-length string dataset. */
static loom_status_t write_strings(loom_ctx_t *ctx, hid_t fid, const char *path, const char *name,
                                   char **s, size_t n)
{
    hsize_t dim = n;
    hid_t t = H5Tcopy(H5T_C_S1);
    hid_t sp = H5Screate_simple(1, &dim, NULL);
    hid_t d = -1;
    loom_status_t st = LOOM_OK;
    if (t < 0 || H5Tset_size(t, H5T_VARIABLE) < 0 || sp < 0 ||
        (d = H5Dcreate2(fid, name, t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0 ||
        (n && H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, s) < 0))
        st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot write dataset %s", path, name);
    if (d >= 0) H5Dclose(d);
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    return st;
}

/* Rank 0: the part files' lines, in partition order, into the HDF5 file h5path. */
static loom_status_t h5_from_parts(loom_ctx_t *ctx, const char *dir, int nparts, const char *h5path,
                                   loom_lines_t mode)
{
    loom_buf_t all = {0};
    loom_status_t st = LOOM_OK;
    size_t plen = strlen(dir) + 32;
    char *p = malloc(plen);
    if (!p) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    for (int i = 0; i < nparts && st == LOOM_OK; i++) {
        snprintf(p, plen, "%s/part-%05d", dir, i);
        FILE *f = fopen(p, "rb");
        if (!f) continue; /* a partition nobody wrote (empty) */
        char buf[1 << 16];
        size_t n;
        while (st == LOOM_OK && (n = fread(buf, 1, sizeof buf, f)) > 0)
            st = loom_buf_append(ctx, &all, buf, n);
        if (st == LOOM_OK && ferror(f))
            st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot read: %s", p, strerror(errno));
        fclose(f);
    }
    free(p);
    size_t lines = 0;
    for (size_t i = 0; i < all.len; i++)
        lines += all.data[i] == '\n';
    if (all.len && all.data[all.len - 1] != '\n') lines++;
    char **keys = calloc(lines + 1, sizeof *keys), **vals = calloc(lines + 1, sizeof *vals);
    if (st == LOOM_OK && (!keys || !vals || loom_buf_reserve(ctx, &all, 1) != LOOM_OK))
        st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory: HDF5 output");
    size_t n = 0;
    if (st == LOOM_OK) {
        all.data[all.len] = 0;
        static char empty[] = "";
        for (char *s = (char *)all.data, *e = s + all.len; s < e; n++) {
            char *nl = memchr(s, '\n', (size_t)(e - s));
            if (nl) *nl = 0;
            char *tab = mode == LOOM_LINES_KV ? strchr(s, '\t') : NULL;
            if (tab) *tab = 0;
            keys[n] = mode == LOOM_LINES_VALUE ? empty : s;
            vals[n] = mode == LOOM_LINES_VALUE ? s : tab ? tab + 1 : empty;
            s = nl ? nl + 1 : e;
        }
    }
    if (st == LOOM_OK) {
        H5E_auto2_t func;
        void *data;
        H5Eget_auto2(H5E_DEFAULT, &func, &data);
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
        hid_t fid = H5Fcreate(h5path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
        if (fid < 0) st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot create HDF5 file", h5path);
        if (st == LOOM_OK) st = write_strings(ctx, fid, h5path, "keys", keys, n);
        if (st == LOOM_OK) st = write_strings(ctx, fid, h5path, "values", vals, n);
        if (fid >= 0 && H5Fclose(fid) < 0 && st == LOOM_OK)
            st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot close HDF5 file", h5path);
        H5Eset_auto2(H5E_DEFAULT, func, data);
    }
    free(keys);
    free(vals);
    loom_buf_free(&all);
    return st;
}

loom_status_t loom_output_parts_end(loom_ctx_t *ctx, MPI_Comm comm, const loom_output_t *out,
                                    loom_output_parts_t **parts, int nparts, loom_lines_t mode,
                                    loom_status_t st)
{
    loom_output_parts_t *p = *parts;
    *parts = NULL;
    st = loom_agree(ctx, comm, st); /* every rank, also one whose begin failed (p NULL) */
    if (p && loom_rank(ctx) == 0 && p->dir) {
        if (st == LOOM_OK) st = h5_from_parts(ctx, p->dir, nparts, loom_output_path(out), mode);
        loom_remove_tree(p->dir);
        if (p->handle >= 0) loom_temp_forget(ctx, p->handle);
    }
    if (p) free(p->dir);
    free(p);
    return loom_agree(ctx, comm, st);
}
