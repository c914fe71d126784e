/* Pregel checkpoints: the state at the start of a superstep in one HDF5 file, written atomically.
 */
#include "pregel/pregel_internal.h"

#include <dirent.h>
#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* File layout (all datasets 1-D, indexed by global vertex id where per vertex):
 *   /values     uint8  [n * value_size]
 *   /halted     uint8  [n]
 *   /msg_count  uint64 [n]        pending messages per vertex
 *   /msg_data   uint8  [M * msg_size] in vertex order
 *   /aggs       double [naggs]    (absent when naggs == 0)
 *   attributes superstep, num_vertices, value_size, msg_size, naggs on the root.
 * Vertex-indexed data lets a restart use any number of ranks. */

#define CKPT_FMT "ckpt-%lld.h5"

typedef struct h5io {
    loom_ctx_t *ctx;
    hid_t file, dxpl;
    loom_status_t st;
    const char *path;
} h5io_t;

static void h5_fail(h5io_t *h, const char *what)
{
    if (h->st == LOOM_OK)
        h->st = LOOM_ERROR(h->ctx, LOOM_ERR_IO, "%s: checkpoint: cannot %s", h->path, what);
}

/* Collective: create (or open, when reading) a 1-D dataset of `total`
 * elements and write/read this rank's `count` elements at `offset`. */
static void h5_slice(h5io_t *h, int write, const char *name, hid_t type, uint64_t total,
                     uint64_t offset, uint64_t count, void *buf)
{
    if (h->st != LOOM_OK) return;
    hsize_t dims = total, off = offset, cnt = count, one = 1;
    hid_t fs = -1, ms = -1, ds = -1;
    if (write) {
        fs = H5Screate_simple(1, &dims, NULL);
        ds = fs < 0 ? -1
                    : H5Dcreate2(h->file, name, type, fs, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    } else {
        ds = H5Dopen2(h->file, name, H5P_DEFAULT);
        fs = ds < 0 ? -1 : H5Dget_space(ds);
        hsize_t have = 0;
        if (fs >= 0) H5Sget_simple_extent_dims(fs, &have, NULL);
        if (ds >= 0 && have != dims) {
            h5_fail(h, "read a dataset of the expected size");
            goto out;
        }
    }
    if (ds < 0 || fs < 0) {
        h5_fail(h, write ? "create a dataset" : "open a dataset");
        goto out;
    }
    if (total == 0) goto out;
    if (count) {
        ms = H5Screate_simple(1, &cnt, NULL);
        H5Sselect_hyperslab(fs, H5S_SELECT_SET, &off, NULL, &cnt, NULL);
    } else {
        ms = H5Screate_simple(1, &one, NULL);
        H5Sselect_none(ms);
        H5Sselect_none(fs);
    }
    herr_t e =
        write ? H5Dwrite(ds, type, ms, fs, h->dxpl, buf) : H5Dread(ds, type, ms, fs, h->dxpl, buf);
    if (e < 0) h5_fail(h, write ? "write a dataset" : "read a dataset");
out:
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    if (ds >= 0) H5Dclose(ds);
}

static void h5_attr(h5io_t *h, int write, const char *name, int64_t *v)
{
    if (h->st != LOOM_OK) return;
    hid_t a = -1, sp = -1;
    if (write) {
        sp = H5Screate(H5S_SCALAR);
        a = H5Acreate2(h->file, name, H5T_NATIVE_INT64, sp, H5P_DEFAULT, H5P_DEFAULT);
        if (a < 0 || H5Awrite(a, H5T_NATIVE_INT64, v) < 0) h5_fail(h, "write an attribute");
    } else {
        a = H5Aopen(h->file, name, H5P_DEFAULT);
        if (a < 0 || H5Aread(a, H5T_NATIVE_INT64, v) < 0) h5_fail(h, "read an attribute");
    }
    if (a >= 0) H5Aclose(a);
    if (sp >= 0) H5Sclose(sp);
}

static loom_status_t h5_open(h5io_t *h, MPI_Comm comm, int create)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    h->file = -1;
    h->dxpl = -1;
    if (fapl >= 0 && H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL) >= 0) {
        H5E_BEGIN_TRY
        {
            h->file = create ? H5Fcreate(h->path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl)
                             : H5Fopen(h->path, H5F_ACC_RDONLY, fapl);
        }
        H5E_END_TRY;
    }
    if (fapl >= 0) H5Pclose(fapl);
    h->dxpl = H5Pcreate(H5P_DATASET_XFER);
    if (h->dxpl >= 0) H5Pset_dxpl_mpio(h->dxpl, H5FD_MPIO_COLLECTIVE);
    if (h->file < 0 || h->dxpl < 0) h5_fail(h, create ? "create the file" : "open the file");
    return h->st;
}

static void h5_close(h5io_t *h)
{
    if (h->dxpl >= 0) H5Pclose(h->dxpl);
    if (h->file >= 0 && H5Fclose(h->file) < 0) h5_fail(h, "close the file");
    h->file = h->dxpl = -1;
}

static loom_status_t mkdir_p(loom_ctx_t *ctx, const char *dir)
{
    char *p = strdup(dir);
    if (!p) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = '\0';
        mkdir(p, 0777);
        *s = '/';
    }
    int ok = mkdir(p, 0777) == 0 || errno == EEXIST;
    free(p);
    struct stat sb;
    if (!ok || stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot create the checkpoint directory", dir);
    return LOOM_OK;
}

/* Newest complete checkpoint in dir (-1 when none). Temporaries never match. */
static long long newest(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    long long best = -1;
    struct dirent *de;
    while ((de = readdir(d))) {
        long long s;
        int used = 0;
        if (sscanf(de->d_name, "ckpt-%lld.h5%n", &s, &used) == 1 && de->d_name[used] == '\0' &&
            s > best)
            best = s;
    }
    closedir(d);
    return best;
}

/* Remove the checkpoints older than the newest one before `latest`: two
 * complete ones stay, whether they were written periodically or on a signal
 * (whose superstep need not be a multiple of --checkpoint-every). */
static void prune(const char *dir, long long latest)
{
    DIR *d = opendir(dir);
    if (!d) return;
    long long prev = -1;
    struct dirent *de;
    while ((de = readdir(d))) {
        long long s;
        int used = 0;
        if (sscanf(de->d_name, "ckpt-%lld.h5%n", &s, &used) == 1 && de->d_name[used] == '\0' &&
            s < latest && s > prev)
            prev = s;
    }
    rewinddir(d);
    while ((de = readdir(d))) {
        long long s;
        int used = 0;
        if (sscanf(de->d_name, "ckpt-%lld.h5%n", &s, &used) == 1 && de->d_name[used] == '\0' &&
            s < prev) {
            char old[4096];
            snprintf(old, sizeof old, "%s/%s", dir, de->d_name);
            unlink(old);
        }
    }
    closedir(d);
}

loom_status_t loom_pregel_checkpoint_write(loom_pregel_t *pg)
{
    loom_ctx_t *ctx = pg->ctx;
    loom_status_t st = LOOM_OK;
    char path[4096], tmp[4096];
    snprintf(path, sizeof path, "%s/" CKPT_FMT, pg->ckpt_dir, (long long)pg->superstep);
    snprintf(tmp, sizeof tmp, "%s/.tmp-" CKPT_FMT, pg->ckpt_dir, (long long)pg->superstep);
    if (pg->rank == 0) st = mkdir_p(ctx, pg->ckpt_dir);
    st = loom_agree(ctx, pg->comm, st);
    if (st != LOOM_OK) return st;

    /* Pending messages as per-vertex counts plus the messages in vertex order. */
    uint64_t *cnt = calloc(pg->nloc ? pg->nloc : 1, sizeof *cnt);
    uint8_t *data = NULL, *own = NULL;
    uint64_t m = 0;
    if (!cnt) st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory writing a checkpoint");
    if (st == LOOM_OK && pg->prog.combiner != LOOM_COMBINE_NONE) {
        for (uint64_t i = 0; i < pg->nloc; i++)
            m += cnt[i] = pg->has[i];
        own = malloc(m ? m * pg->msz : 1);
        if (!own) st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory writing a checkpoint");
        for (uint64_t i = 0, k = 0; own && i < pg->nloc; i++)
            if (pg->has[i]) memcpy(own + k++ * pg->msz, pg->inbox + i * pg->msz, pg->msz);
        data = own;
    } else if (st == LOOM_OK) {
        for (uint64_t i = 0; i < pg->nloc; i++)
            cnt[i] = pg->moff[i + 1] - pg->moff[i];
        m = pg->moff[pg->nloc];
        data = pg->mdata;
    }
    st = loom_agree(ctx, pg->comm, st);
    uint64_t moff = 0, mtot = 0;
    if (st == LOOM_OK) {
        MPI_Exscan(&m, &moff, 1, MPI_UINT64_T, MPI_SUM, pg->comm);
        if (pg->rank == 0) moff = 0;
        MPI_Allreduce(&m, &mtot, 1, MPI_UINT64_T, MPI_SUM, pg->comm);
    }
    h5io_t h = {.ctx = ctx, .path = tmp, .st = LOOM_OK, .file = -1, .dxpl = -1};
    if (st == LOOM_OK) st = loom_agree(ctx, pg->comm, h5_open(&h, pg->comm, 1));
    if (st == LOOM_OK) {
        int64_t a[5] = {pg->superstep, (int64_t)pg->n, (int64_t)pg->vsz, (int64_t)pg->msz,
                        pg->prog.naggs};
        const char *names[5] = {"superstep", "num_vertices", "value_size", "msg_size", "naggs"};
        for (int i = 0; i < 5; i++)
            h5_attr(&h, 1, names[i], &a[i]);
        h5_slice(&h, 1, "values", H5T_NATIVE_UINT8, pg->n * pg->vsz, pg->lo * pg->vsz,
                 pg->nloc * pg->vsz, pg->values);
        h5_slice(&h, 1, "halted", H5T_NATIVE_UINT8, pg->n, pg->lo, pg->nloc, pg->halted);
        h5_slice(&h, 1, "msg_count", H5T_NATIVE_UINT64, pg->n, pg->lo, pg->nloc, cnt);
        h5_slice(&h, 1, "msg_data", H5T_NATIVE_UINT8, mtot * pg->msz, moff * pg->msz, m * pg->msz,
                 data);
        if (pg->prog.naggs)
            h5_slice(&h, 1, "aggs", H5T_NATIVE_DOUBLE, (uint64_t)pg->prog.naggs, 0,
                     pg->rank == 0 ? (uint64_t)pg->prog.naggs : 0, pg->aggs);
        h5_close(&h);
        st = loom_agree(ctx, pg->comm, h.st);
    }
    free(cnt);
    free(own);
    /* Only a complete file gets the name a restart looks for; the previous
     * checkpoint is kept until this one is in place. */
    if (pg->rank == 0) {
        if (st == LOOM_OK && rename(tmp, path) != 0)
            st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot rename the checkpoint into place", path);
        if (st != LOOM_OK) unlink(tmp);
        if (st == LOOM_OK) prune(pg->ckpt_dir, pg->superstep);
    }
    return loom_agree(ctx, pg->comm, st);
}

loom_status_t loom_pregel_checkpoint_read(loom_pregel_t *pg, const char *dir)
{
    loom_ctx_t *ctx = pg->ctx;
    long long s = pg->rank == 0 ? newest(dir) : -1;
    MPI_Bcast(&s, 1, MPI_LONG_LONG, 0, pg->comm);
    if (s < 0) {
        loom_status_t st =
            pg->rank == 0
                ? LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: no complete checkpoint to restart from", dir)
                : LOOM_ERR_IO;
        return loom_agree(ctx, pg->comm, st);
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/" CKPT_FMT, dir, s);
    h5io_t h = {.ctx = ctx, .path = path, .st = LOOM_OK, .file = -1, .dxpl = -1};
    loom_status_t st = loom_agree(ctx, pg->comm, h5_open(&h, pg->comm, 0));
    if (st != LOOM_OK) return st;
    int64_t a[5] = {0};
    const char *names[5] = {"superstep", "num_vertices", "value_size", "msg_size", "naggs"};
    for (int i = 0; i < 5; i++)
        h5_attr(&h, 0, names[i], &a[i]);
    if (h.st == LOOM_OK && (a[1] != (int64_t)pg->n || a[2] != (int64_t)pg->vsz ||
                            a[3] != (int64_t)pg->msz || a[4] != pg->prog.naggs))
        h.st = LOOM_ERROR(ctx, LOOM_ERR_FORMAT,
                          "%s: checkpoint of another run (%lld vertices, value %lld bytes, "
                          "message %lld bytes, %lld aggregators)",
                          path, (long long)a[1], (long long)a[2], (long long)a[3], (long long)a[4]);
    st = loom_agree(ctx, pg->comm, h.st);
    uint64_t *cnt = NULL;
    uint8_t *data = NULL, *recs = NULL;
    if (st == LOOM_OK) {
        cnt = calloc(pg->nloc ? pg->nloc : 1, sizeof *cnt);
        if (!cnt) h.st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory reading a checkpoint");
        st = loom_agree(ctx, pg->comm, h.st);
    }
    uint64_t m = 0, moff = 0, mtot = 0;
    if (st == LOOM_OK) {
        h5_slice(&h, 0, "values", H5T_NATIVE_UINT8, pg->n * pg->vsz, pg->lo * pg->vsz,
                 pg->nloc * pg->vsz, pg->values);
        h5_slice(&h, 0, "halted", H5T_NATIVE_UINT8, pg->n, pg->lo, pg->nloc, pg->halted);
        h5_slice(&h, 0, "msg_count", H5T_NATIVE_UINT64, pg->n, pg->lo, pg->nloc, cnt);
        if (pg->prog.naggs) {
            /* Every rank reads all aggregators. */
            uint64_t na = (uint64_t)pg->prog.naggs;
            h5_slice(&h, 0, "aggs", H5T_NATIVE_DOUBLE, na, 0, na, pg->aggs);
        }
        for (uint64_t i = 0; i < pg->nloc; i++)
            m += cnt[i];
        MPI_Exscan(&m, &moff, 1, MPI_UINT64_T, MPI_SUM, pg->comm);
        if (pg->rank == 0) moff = 0;
        MPI_Allreduce(&m, &mtot, 1, MPI_UINT64_T, MPI_SUM, pg->comm);
        data = malloc(m ? m * pg->msz : 1);
        recs = malloc(m ? m * pg->rsz : 1);
        if (!data || !recs)
            h.st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory reading a checkpoint");
        st = loom_agree(ctx, pg->comm, h.st);
    }
    if (st == LOOM_OK) {
        h5_slice(&h, 0, "msg_data", H5T_NATIVE_UINT8, mtot * pg->msz, moff * pg->msz, m * pg->msz,
                 data);
        st = h.st;
        for (uint64_t i = 0, k = 0; st == LOOM_OK && i < pg->nloc; i++)
            for (uint64_t j = 0; j < cnt[i]; j++, k++) {
                uint64_t dst = pg->lo + i;
                memcpy(recs + k * pg->rsz, &dst, 8);
                memcpy(recs + k * pg->rsz + 8, data + k * pg->msz, pg->msz);
            }
        if (st == LOOM_OK) st = loom_pregel_deliver(pg, recs, (size_t)m, 0);
    }
    h5_close(&h);
    if (st == LOOM_OK) st = h.st;
    free(cnt);
    free(data);
    free(recs);
    st = loom_agree(ctx, pg->comm, st);
    if (st == LOOM_OK) {
        pg->superstep = a[0];
        loom_log(ctx, LOOM_LOG_INFO, "restarting from %s (superstep %lld)", path, (long long)s);
    }
    return st;
}
