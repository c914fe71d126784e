/* MapReduce inputs that are not text files: 1-D HDF5 datasets (FILE.h5:/dataset) and gen:N. */
#include <errno.h>
#include <hdf5.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "mr/mr_internal.h"

int mr_input_kind(const char *spec)
{
    if (strncmp(spec, "gen:", 4) == 0) return MR_IN_GEN;
    const char *c = strstr(spec, ":/");
    struct stat sb;
    /* a text file whose name happens to hold ":/" stays text */
    if (c && c > spec && stat(spec, &sb) != 0) return MR_IN_H5;
    return MR_IN_TEXT;
}

/* How elements are read from a dataset: 0 int64, 1 uint64, 2 double. */
static int elem_kind(hid_t tid)
{
    H5T_class_t cl = H5Tget_class(tid);
    if (cl == H5T_FLOAT) return 2;
    if (cl == H5T_INTEGER) return H5Tget_sign(tid) == H5T_SGN_NONE ? 1 : 0;
    return -1;
}

/* Open `spec`'s file and dataset; *fid and *did are the caller's to close. */
static loom_status_t h5_open(loom_ctx_t *ctx, const char *spec, hid_t *fid, hid_t *did, uint64_t *n,
                             int *kind)
{
    const char *c = strstr(spec, ":/");
    size_t flen = (size_t)(c - spec);
    char *file = malloc(flen + 1);
    if (!file) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    memcpy(file, spec, flen);
    file[flen] = 0;
    const char *ds = c + 1;
    H5E_auto2_t func;
    void *data;
    H5Eget_auto2(H5E_DEFAULT, &func, &data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
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
                        "%s: dataset %s has %d dimensions; MapReduce input must be 1-D", file, ds,
                        nd);
        goto out;
    }
    hsize_t dim;
    H5Sget_simple_extent_dims(sp, &dim, NULL);
    *n = dim;
    *kind = tid >= 0 ? elem_kind(tid) : -1;
    if (*kind < 0)
        st = LOOM_ERROR(ctx, LOOM_ERR_FORMAT,
                        "%s: dataset %s is not numeric (integer or float elements needed)", file,
                        ds);
out:
    if (tid >= 0) H5Tclose(tid);
    if (sp >= 0) H5Sclose(sp);
    if (st != LOOM_OK) {
        if (*did >= 0) H5Dclose(*did);
        if (*fid >= 0) H5Fclose(*fid);
        *did = *fid = -1;
    }
    H5Eset_auto2(H5E_DEFAULT, func, data);
    free(file);
    return st;
}

loom_status_t mr_input_count(loom_ctx_t *ctx, const char *spec, uint64_t *n)
{
    if (mr_input_kind(spec) == MR_IN_GEN) {
        const char *s = spec + 4;
        if (!*s || strspn(s, "0123456789") != strlen(s))
            return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "%s: expected gen:N with N a record count",
                              spec);
        errno = 0;
        unsigned long long v = strtoull(s, NULL, 10);
        if (errno || v > MR_MAX_ELEMENTS)
            return LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                              "%s: %s is out of range (at most 2^60 = %llu records)", spec, s,
                              (unsigned long long)MR_MAX_ELEMENTS);
        *n = v;
        return LOOM_OK;
    }
    hid_t fid, did;
    int kind;
    LOOM_TRY(h5_open(ctx, spec, &fid, &did, n, &kind));
    H5Dclose(did);
    H5Fclose(fid);
    return LOOM_OK;
}

loom_status_t mr_input_read(loom_ctx_t *ctx, const char *spec, uint64_t first, uint64_t count,
                            loom_buf_t *out)
{
    out->len = 0;
    /* 24 bytes hold any int64, uint64 or %.17g double and its '\n' */
    LOOM_TRY(loom_buf_reserve(ctx, out, count * 25 + 1));
    char *p = (char *)out->data;
    if (mr_input_kind(spec) == MR_IN_GEN) {
        for (uint64_t i = first; i < first + count; i++)
            p += sprintf(p, "%" PRIu64 "\n", i);
        out->len = (size_t)(p - (char *)out->data);
        return LOOM_OK;
    }
    hid_t fid, did;
    int kind;
    uint64_t n;
    LOOM_TRY(h5_open(ctx, spec, &fid, &did, &n, &kind));
    loom_status_t st = LOOM_OK;
    uint64_t *v = malloc((count ? count : 1) * 8);
    hid_t fs = H5Dget_space(did);
    hsize_t cnt = count, off = first;
    hid_t ms = H5Screate_simple(1, &cnt, NULL);
    hid_t mt = kind == 2 ? H5T_NATIVE_DOUBLE : kind == 1 ? H5T_NATIVE_UINT64 : H5T_NATIVE_INT64;
    if (!v)
        st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    else if (first + count > n || fs < 0 || ms < 0 ||
             H5Sselect_hyperslab(fs, H5S_SELECT_SET, &off, NULL, &cnt, NULL) < 0 ||
             (count && H5Dread(did, mt, ms, fs, H5P_DEFAULT, v) < 0))
        st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot read elements %" PRIu64 "..%" PRIu64, spec,
                        first, first + count);
    for (uint64_t i = 0; st == LOOM_OK && i < count; i++) {
        if (kind == 0) {
            int64_t x;
            memcpy(&x, &v[i], 8);
            p += sprintf(p, "%" PRId64 "\n", x);
        } else if (kind == 1) {
            p += sprintf(p, "%" PRIu64 "\n", v[i]);
        } else {
            double d;
            memcpy(&d, &v[i], 8);
            p += sprintf(p, "%.17g\n", d);
        }
    }
    out->len = (size_t)(p - (char *)out->data);
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    H5Dclose(did);
    H5Fclose(fid);
    free(v);
    return st;
}
