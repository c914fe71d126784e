/* 1-D numeric HDF5 datasets (FILE:/DATASET) read by element ranges. */
#include "io/elements.h"

#include <hdf5.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/io_internal.h"

int loom_h5_elements_spec(const char *spec)
{
    const char *c = strstr(spec, ":/");
    struct stat sb;
    return c && c > spec && stat(spec, &sb) != 0;
}

static int elem_kind(hid_t tid)
{
    H5T_class_t cl = H5Tget_class(tid);
    if (cl == H5T_FLOAT) return LOOM_ELEM_F64;
    if (cl == H5T_INTEGER) return H5Tget_sign(tid) == H5T_SGN_NONE ? LOOM_ELEM_U64 : LOOM_ELEM_I64;
    return -1;
}

/* Open `spec`'s file and dataset; *fid and *did are the caller's to close. */
static loom_status_t h5_open(loom_ctx_t *ctx, const char *spec, hid_t *fid, hid_t *did, uint64_t *n,
                             loom_elem_kind_t *kind)
{
    const char *c = strstr(spec, ":/");
    size_t flen = (size_t)(c - spec);
    char *file = malloc(flen + 1);
    if (!file) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    memcpy(file, spec, flen);
    file[flen] = 0;
    const char *ds = c + 1;
    loom_h5_quiet_t q;
    loom_h5_quiet_begin(&q);
    loom_status_t st = LOOM_OK;
    hid_t sp = -1, tid = -1;
    *did = -1;
    *fid = H5Fopen(file, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (*fid < 0) {
        st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot open as HDF5 (dataset %s)", file, ds);
        goto out;
    }
    if (H5Lexists(*fid, ds, H5P_DEFAULT) <= 0 || (*did = H5Dopen2(*fid, ds, H5P_DEFAULT)) < 0) {
        st = LOOM_ERROR(ctx, LOOM_ERR_FORMAT, "%s: no dataset %s", file, ds);
        goto out;
    }
    sp = H5Dget_space(*did);
    tid = H5Dget_type(*did);
    int nd = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    if (nd != 1) {
        st = LOOM_ERROR(ctx, LOOM_ERR_FORMAT,
                        "%s: dataset %s has %d dimensions; an element input must be 1-D", file, ds,
                        nd);
        goto out;
    }
    hsize_t dim;
    H5Sget_simple_extent_dims(sp, &dim, NULL);
    *n = dim;
    int k = tid >= 0 ? elem_kind(tid) : -1;
    if (k < 0)
        st = LOOM_ERROR(ctx, LOOM_ERR_FORMAT,
                        "%s: dataset %s is not numeric (integer or float elements needed)", file,
                        ds);
    *kind = (loom_elem_kind_t)(k < 0 ? 0 : k);
out:
    if (tid >= 0) H5Tclose(tid);
    if (sp >= 0) H5Sclose(sp);
    if (st != LOOM_OK) {
        if (*did >= 0) H5Dclose(*did);
        if (*fid >= 0) H5Fclose(*fid);
        *did = *fid = -1;
    }
    loom_h5_quiet_end(&q);
    free(file);
    return st;
}

static loom_status_t elements_info(loom_ctx_t *ctx, const char *spec, uint64_t *n,
                                   loom_elem_kind_t *kind)
{
    hid_t fid, did;
    LOOM_TRY(h5_open(ctx, spec, &fid, &did, n, kind));
    H5Dclose(did);
    H5Fclose(fid);
    return LOOM_OK;
}

static loom_status_t elements_read(loom_ctx_t *ctx, const char *spec, uint64_t first,
                                   uint64_t count, uint64_t *out, loom_elem_kind_t *kind)
{
    hid_t fid, did;
    uint64_t n;
    LOOM_TRY(h5_open(ctx, spec, &fid, &did, &n, kind));
    loom_status_t st = LOOM_OK;
    hid_t fs = H5Dget_space(did);
    hsize_t cnt = count, off = first;
    hid_t ms = H5Screate_simple(1, &cnt, NULL);
    hid_t mt = *kind == LOOM_ELEM_F64   ? H5T_NATIVE_DOUBLE
               : *kind == LOOM_ELEM_U64 ? H5T_NATIVE_UINT64
                                        : H5T_NATIVE_INT64;
    if (first > n || count > n - first || fs < 0 || ms < 0 ||
        H5Sselect_hyperslab(fs, H5S_SELECT_SET, &off, NULL, &cnt, NULL) < 0 ||
        (count && H5Dread(did, mt, ms, fs, H5P_DEFAULT, out) < 0))
        st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot read elements %" PRIu64 "..%" PRIu64, spec,
                        first, first + count);
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    H5Dclose(did);
    H5Fclose(fid);
    return st;
}

/* Debian's parallel HDF5 is not built thread-safe, and the engines read sources on several
 * threads: one HDF5 call sequence at a time. */
loom_status_t loom_h5_elements_info(loom_ctx_t *ctx, const char *spec, uint64_t *n,
                                    loom_elem_kind_t *kind)
{
    loom_status_t st;
#pragma omp critical(loom_hdf5)
    st = elements_info(ctx, spec, n, kind);
    return st;
}

loom_status_t loom_h5_elements_read(loom_ctx_t *ctx, const char *spec, uint64_t first,
                                    uint64_t count, uint64_t *out, loom_elem_kind_t *kind)
{
    loom_status_t st;
#pragma omp critical(loom_hdf5)
    st = elements_read(ctx, spec, first, count, out, kind);
    return st;
}

int loom_elem_format(char *p, uint64_t v, loom_elem_kind_t kind)
{
    if (kind == LOOM_ELEM_I64) {
        int64_t x;
        memcpy(&x, &v, 8);
        return sprintf(p, "%" PRId64, x);
    }
    if (kind == LOOM_ELEM_U64) return sprintf(p, "%" PRIu64, v);
    double d;
    memcpy(&d, &v, 8);
    return sprintf(p, "%.17g", d);
}
