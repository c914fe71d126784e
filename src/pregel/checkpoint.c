/* Pregel checkpoints: the state at the start of a superstep as a directory of per-rank HDF5
 * files plus a manifest, written atomically, checked in full before a restart uses it. */
#include "pregel/pregel_internal.h"

#include <dirent.h>
#include <errno.h>
#include <hdf5.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dataplane/dataplane.h"
#include "io/io_internal.h"
#include "pregel/ckpt_check.h"
#include "kernels/hash.h"

/* Layout (docs/FORMATS.md): DIR/ckpt-S/ is the complete checkpoint of superstep S:
 *   meta.h5      attributes format, superstep, program, params, num_vertices, num_arcs,
 *                directed, weighted, graph_checksum, value_size, msg_size, naggs, combined,
 *                nparts; datasets /aggs [naggs] (double), /part_lo, /part_hi, /part_msgs
 *                [nparts] (uint64): part k holds vertices [lo, hi) and that many messages
 *   part-K.h5    /values uint8 [(hi-lo)*value_size], /halted uint8 [hi-lo],
 *                /msg_count uint64 [hi-lo] (pending messages per vertex),
 *                /msg_data uint8 [msgs*msg_size] in vertex order; attributes lo, hi
 *   _SUCCESS     written last, before the directory is renamed into place
 * Each rank writes its own part with serial HDF5, so that no collective I/O is
 * in flight when a rank dies; vertex ranges in the manifest let a restart use
 * any number of ranks. */

#define CKPT_FORMAT 2
#define CKPT_PREFIX "ckpt-"
#define PROG_LEN 64
#define PARAMS_LEN 512

typedef struct meta {
    int64_t format, superstep, n, m, directed, weighted, vsz, msz, naggs, combined, nparts;
    uint64_t checksum;
    char program[PROG_LEN], params[PARAMS_LEN];
} meta_t;

/* ------------------------------------------------------------------ HDF5 helpers */

static int attr_write(hid_t loc, const char *name, hid_t mtype, hid_t ftype, const void *v)
{
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = sp >= 0 ? H5Acreate2(loc, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT) : -1;
    int rc = a < 0 || H5Awrite(a, mtype, v) < 0 ? -1 : 0;
    if (a >= 0) H5Aclose(a);
    if (sp >= 0) H5Sclose(sp);
    return rc;
}

static int attr_write_str(hid_t loc, const char *name, const char *v)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    size_t len = strlen(v) + 1;
    int rc = t < 0 || H5Tset_size(t, len) < 0 ? -1 : attr_write(loc, name, t, t, v);
    if (t >= 0) H5Tclose(t);
    return rc;
}

/* A scalar integer attribute, any integer width. */
static int attr_read_i64(hid_t loc, const char *name, int64_t *v)
{
    if (H5Aexists(loc, name) <= 0) return -1;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    hid_t t = a >= 0 ? H5Aget_type(a) : -1, s = a >= 0 ? H5Aget_space(a) : -1;
    int rc = a < 0 || t < 0 || s < 0 || H5Tget_class(t) != H5T_INTEGER ||
                     H5Sget_simple_extent_npoints(s) != 1 || H5Aread(a, H5T_NATIVE_INT64, v) < 0
                 ? -1
                 : 0;
    if (s >= 0) H5Sclose(s);
    if (t >= 0) H5Tclose(t);
    if (a >= 0) H5Aclose(a);
    return rc;
}

static int attr_read_u64(hid_t loc, const char *name, uint64_t *v)
{
    if (H5Aexists(loc, name) <= 0) return -1;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    hid_t t = a >= 0 ? H5Aget_type(a) : -1;
    int rc =
        a < 0 || t < 0 || H5Tget_class(t) != H5T_INTEGER || H5Aread(a, H5T_NATIVE_UINT64, v) < 0
            ? -1
            : 0;
    if (t >= 0) H5Tclose(t);
    if (a >= 0) H5Aclose(a);
    return rc;
}

static int attr_read_str(hid_t loc, const char *name, char *buf, size_t cap)
{
    if (H5Aexists(loc, name) <= 0) return -1;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    hid_t t = a >= 0 ? H5Aget_type(a) : -1;
    int rc = -1;
    if (t >= 0 && H5Tget_class(t) == H5T_STRING && !H5Tis_variable_str(t)) {
        size_t len = H5Tget_size(t);
        if (len > 0 && len <= cap) {
            memset(buf, 0, cap);
            rc = H5Aread(a, t, buf) < 0 ? -1 : 0;
            buf[cap - 1] = '\0';
        }
    }
    if (t >= 0) H5Tclose(t);
    if (a >= 0) H5Aclose(a);
    return rc;
}

/* Write a 1-D dataset of `count` elements. */
static int ds_write(hid_t loc, const char *name, hid_t mtype, hid_t ftype, uint64_t count,
                    const void *buf)
{
    hsize_t dim = count;
    hid_t sp = H5Screate_simple(1, &dim, NULL);
    hid_t d =
        sp >= 0 ? H5Dcreate2(loc, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) : -1;
    int rc = d < 0 ? -1 : 0;
    if (rc == 0 && count) rc = H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0 ? -1 : 0;
    if (d >= 0) H5Dclose(d);
    if (sp >= 0) H5Sclose(sp);
    return rc;
}

/* Open a 1-D dataset and check that it holds exactly `expect` elements of an
 * integer or float class of `elem` bytes; 0 when it does. */
static int ds_open(hid_t loc, const char *name, uint64_t expect, H5T_class_t cls, size_t elem,
                   hid_t *out)
{
    *out = -1;
    if (H5Lexists(loc, name, H5P_DEFAULT) <= 0) return -1;
    hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
    if (d < 0) return -1;
    hid_t t = H5Dget_type(d), s = H5Dget_space(d);
    hsize_t dims[2] = {0, 0};
    int ok = t >= 0 && s >= 0 && H5Tget_class(t) == cls && H5Tget_size(t) == elem &&
             H5Sget_simple_extent_ndims(s) == 1 && H5Sget_simple_extent_dims(s, dims, NULL) == 1 &&
             (uint64_t)dims[0] == expect;
    if (t >= 0) H5Tclose(t);
    if (s >= 0) H5Sclose(s);
    if (!ok) {
        H5Dclose(d);
        return -2;
    }
    *out = d;
    return 0;
}

/* Read elements [first, first + count) of an open dataset. */
static int ds_read(hid_t d, hid_t mtype, uint64_t first, uint64_t count, void *buf)
{
    if (!count) return 0;
    hid_t fs = H5Dget_space(d);
    hsize_t off = first, cnt = count;
    hid_t ms = H5Screate_simple(1, &cnt, NULL);
    int rc = fs < 0 || ms < 0 ||
                     H5Sselect_hyperslab(fs, H5S_SELECT_SET, &off, NULL, &cnt, NULL) < 0 ||
                     H5Dread(d, mtype, ms, fs, H5P_DEFAULT, buf) < 0
                 ? -1
                 : 0;
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    return rc;
}

/* ------------------------------------------------------------------ identity */

/* A checksum of the graph's structure that does not depend on how it is
 * partitioned: a wrapping sum of one mixed word per arc (source, target and
 * weight bits), so that a checkpoint of another graph with the same vertex
 * and arc counts is told apart. Collective. */
static loom_status_t graph_checksum(loom_pregel_t *pg, uint64_t *sum)
{
    if (pg->have_gsum) {
        *sum = pg->gsum;
        return LOOM_OK;
    }
    const loom_graph_t *g = pg->g;
    uint64_t local = 0;
    if (pg->is_worker) {
#pragma omp parallel for schedule(static) reduction(+ : local) num_threads(pg->nthreads)
        for (uint64_t i = 0; i < pg->nloc; i++) {
            uint64_t u = pg->lo + i;
            for (uint64_t k = g->out_off[i]; k < g->out_off[i + 1]; k++) {
                uint64_t w = 0;
                if (g->out_w) memcpy(&w, &g->out_w[k], 8);
                local +=
                    loom_hash_mix64(loom_hash_mix64(u * 0x9e3779b97f4a7c15ULL ^ g->out_dst[k]) ^ w);
            }
        }
    }
    LOOM_MPI(pg->ctx, MPI_Allreduce(&local, &pg->gsum, 1, MPI_UINT64_T, MPI_SUM, pg->comm));
    pg->have_gsum = 1;
    *sum = pg->gsum;
    return LOOM_OK;
}

static void fill_meta(loom_pregel_t *pg, meta_t *m, uint64_t checksum)
{
    memset(m, 0, sizeof *m);
    m->format = CKPT_FORMAT;
    m->superstep = pg->superstep;
    m->n = (int64_t)pg->n;
    m->m = (int64_t)pg->g->num_arcs;
    m->directed = pg->g->directed;
    m->weighted = pg->g->weighted;
    m->checksum = checksum;
    m->vsz = (int64_t)pg->vsz;
    m->msz = (int64_t)pg->msz;
    m->naggs = pg->prog.naggs;
    m->combined = pg->prog.combiner != LOOM_COMBINE_NONE;
    snprintf(m->program, sizeof m->program, "%s", pg->prog.name ? pg->prog.name : "");
    snprintf(m->params, sizeof m->params, "%s", pg->prog.params ? pg->prog.params : "");
}

/* ------------------------------------------------------------------ the directory */

/* ckpt-S names a complete checkpoint when it is a directory holding _SUCCESS. */
static int complete(const char *dir, const char *name, long long *s)
{
    int used = 0;
    if (sscanf(name, CKPT_PREFIX "%lld%n", s, &used) != 1 || name[used] != '\0' || *s < 0) return 0;
    char p[PATH_MAX];
    if (snprintf(p, sizeof p, "%s/%s/_SUCCESS", dir, name) >= (int)sizeof p) return 0;
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* Rank 0: the newest complete checkpoint in dir, -1 when there is none; a
 * directory that cannot be listed is an error of its own. */
static loom_status_t newest(loom_ctx_t *ctx, const char *dir, long long *best)
{
    *best = -1;
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return LOOM_ERROR(
            ctx, LOOM_ERR_IO,
            "%s: no complete checkpoint to restart from: the directory does not exist", dir);
    if (!S_ISDIR(sb.st_mode))
        return LOOM_ERROR(ctx, LOOM_ERR_IO,
                          "%s: not a directory (--restart wants a checkpoint "
                          "directory)",
                          dir);
    DIR *d = opendir(dir);
    if (!d)
        return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot read the checkpoint directory: %s", dir,
                          strerror(errno));
    struct dirent *de;
    while ((de = readdir(d))) {
        long long s;
        if (complete(dir, de->d_name, &s) && s > *best) *best = s;
    }
    closedir(d);
    return LOOM_OK;
}

static void remove_ckpt(const char *dir, long long s)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/" CKPT_PREFIX "%lld", dir, s);
    DIR *d = opendir(p);
    if (!d) return;
    /* only what a checkpoint holds */
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *n = de->d_name;
        int part = strncmp(n, "part-", 5) == 0 && strstr(n, ".h5");
        if (!part && strcmp(n, "meta.h5") && strcmp(n, "_SUCCESS")) continue;
        char f[PATH_MAX];
        if (snprintf(f, sizeof f, "%s/%s", p, n) < (int)sizeof f) unlink(f);
    }
    closedir(d);
    rmdir(p);
}

/* Keep the two newest complete checkpoints, whether periodic or on a signal. */
static void prune(const char *dir, long long latest)
{
    DIR *d = opendir(dir);
    if (!d) return;
    long long prev = -1, s;
    struct dirent *de;
    while ((de = readdir(d)))
        if (complete(dir, de->d_name, &s) && s < latest && s > prev) prev = s;
    rewinddir(d);
    long long *old = NULL;
    size_t n = 0, cap = 0;
    while ((de = readdir(d)))
        if (complete(dir, de->d_name, &s) && s < prev) {
            if (n == cap) {
                cap = cap ? 2 * cap : 8;
                long long *o = realloc(old, cap * sizeof *o);
                if (!o) break;
                old = o;
            }
            old[n++] = s;
        }
    closedir(d);
    for (size_t i = 0; i < n; i++)
        remove_ckpt(dir, old[i]);
    free(old);
}

loom_status_t loom_pregel_checkpoint_dir_check(loom_ctx_t *ctx, const char *dir)
{
    return loom_checkpoint_dir_check(ctx, dir);
}

loom_status_t loom_pregel_restart_check(loom_ctx_t *ctx, const char *dir)
{
    long long s;
    LOOM_TRY(newest(ctx, dir, &s));
    if (s < 0)
        return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: no complete checkpoint to restart from", dir);
    return LOOM_OK;
}

/* ------------------------------------------------------------------ writing */

/* This rank's part: its vertices' values, halt flags and pending messages. */
static loom_status_t write_part(loom_pregel_t *pg, const char *dir, int k, uint64_t *msgs)
{
    loom_ctx_t *ctx = pg->ctx;
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/part-%05d.h5", dir, k);
    uint64_t *cnt = calloc(pg->nloc ? pg->nloc : 1, sizeof *cnt);
    uint8_t *own = NULL;
    const uint8_t *data = NULL;
    uint64_t m = 0;
    if (!cnt) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory writing a checkpoint");
    if (pg->prog.combiner != LOOM_COMBINE_NONE) {
        for (uint64_t i = 0; i < pg->nloc; i++)
            m += cnt[i] = pg->has[i];
        own = malloc(m ? m * pg->msz : 1);
        if (!own) {
            free(cnt);
            return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory writing a checkpoint");
        }
        for (uint64_t i = 0, j = 0; i < pg->nloc; i++)
            if (pg->has[i]) memcpy(own + j++ * pg->msz, pg->inbox + i * pg->msz, pg->msz);
        data = own;
    } else {
        for (uint64_t i = 0; i < pg->nloc; i++)
            cnt[i] = pg->moff[i + 1] - pg->moff[i];
        m = pg->moff[pg->nloc];
        data = pg->mdata;
    }
    *msgs = m;
    loom_status_t st = LOOM_OK;
    hid_t f = H5Fcreate(path, H5F_ACC_EXCL, H5P_DEFAULT, H5P_DEFAULT);
    uint64_t lo = pg->lo, hi = pg->lo + pg->nloc;
    if (f < 0 || attr_write(f, "lo", H5T_NATIVE_UINT64, H5T_STD_U64LE, &lo) < 0 ||
        attr_write(f, "hi", H5T_NATIVE_UINT64, H5T_STD_U64LE, &hi) < 0 ||
        ds_write(f, "values", H5T_NATIVE_UINT8, H5T_STD_U8LE, pg->nloc * pg->vsz, pg->values) < 0 ||
        ds_write(f, "halted", H5T_NATIVE_UINT8, H5T_STD_U8LE, pg->nloc, pg->halted) < 0 ||
        ds_write(f, "msg_count", H5T_NATIVE_UINT64, H5T_STD_U64LE, pg->nloc, cnt) < 0 ||
        ds_write(f, "msg_data", H5T_NATIVE_UINT8, H5T_STD_U8LE, m * pg->msz, data) < 0)
        st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot write the checkpoint part", path);
    if (f >= 0 && H5Fclose(f) < 0 && st == LOOM_OK)
        st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot write the checkpoint part", path);
    free(cnt);
    free(own);
    return st;
}

static loom_status_t write_meta(loom_pregel_t *pg, const char *dir, const meta_t *m,
                                const uint64_t *lo, const uint64_t *hi, const uint64_t *msgs)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/meta.h5", dir);
    hid_t f = H5Fcreate(path, H5F_ACC_EXCL, H5P_DEFAULT, H5P_DEFAULT);
    int bad = f < 0;
    const struct {
        const char *name;
        const int64_t *v;
    } ints[] = {
        {"format", &m->format},     {"superstep", &m->superstep}, {"num_vertices", &m->n},
        {"num_arcs", &m->m},        {"directed", &m->directed},   {"weighted", &m->weighted},
        {"value_size", &m->vsz},    {"msg_size", &m->msz},        {"naggs", &m->naggs},
        {"combined", &m->combined}, {"nparts", &m->nparts}};
    for (size_t i = 0; !bad && i < sizeof ints / sizeof *ints; i++)
        bad = attr_write(f, ints[i].name, H5T_NATIVE_INT64, H5T_STD_I64LE, ints[i].v) < 0;
    if (!bad)
        bad =
            attr_write(f, "graph_checksum", H5T_NATIVE_UINT64, H5T_STD_U64LE, &m->checksum) < 0 ||
            attr_write_str(f, "program", m->program) < 0 ||
            attr_write_str(f, "params", m->params) < 0 ||
            ds_write(f, "aggs", H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, (uint64_t)m->naggs, pg->aggs) <
                0 ||
            ds_write(f, "part_lo", H5T_NATIVE_UINT64, H5T_STD_U64LE, (uint64_t)m->nparts, lo) < 0 ||
            ds_write(f, "part_hi", H5T_NATIVE_UINT64, H5T_STD_U64LE, (uint64_t)m->nparts, hi) < 0 ||
            ds_write(f, "part_msgs", H5T_NATIVE_UINT64, H5T_STD_U64LE, (uint64_t)m->nparts, msgs) <
                0;
    if (f >= 0 && H5Fclose(f) < 0) bad = 1;
    if (bad) return LOOM_ERROR(pg->ctx, LOOM_ERR_IO, "%s: cannot write the checkpoint", path);
    return LOOM_OK;
}

loom_status_t loom_pregel_checkpoint_write(loom_pregel_t *pg)
{
    loom_ctx_t *ctx = pg->ctx;
    MPI_Comm comm = pg->comm;
    int size = pg->size, rank = pg->rank;
    char final[PATH_MAX];
    snprintf(final, sizeof final, "%s/" CKPT_PREFIX "%lld", pg->ckpt_dir, (long long)pg->superstep);
    uint64_t checksum = 0;
    LOOM_TRY(graph_checksum(pg, &checksum));
    loom_status_t ds =
        pg->rank == 0 ? loom_pregel_checkpoint_dir_check(ctx, pg->ckpt_dir) : LOOM_OK;
    LOOM_TRY(loom_agree(ctx, comm, ds));
    loom_output_t *out = NULL;
    /* an earlier attempt may have left a complete checkpoint of this superstep */
    LOOM_TRY(loom_output_begin(ctx, comm, final, LOOM_OUTPUT_DIR | LOOM_OUTPUT_OVERWRITE, &out));
    loom_h5_quiet_t q;
    loom_h5_quiet_begin(&q);
    /* ranks with vertices write parts 0, 1, ... in rank order */
    int has = pg->nloc > 0, k = 0;
    loom_status_t st = LOOM_OK;
    LOOM_MPI_KEEP(ctx, st, MPI_Exscan(&has, &k, 1, MPI_INT, MPI_SUM, comm));
    if (rank == 0) k = 0;
    uint64_t mine[3] = {pg->lo, pg->lo + pg->nloc, 0};
    if (st == LOOM_OK && has) st = write_part(pg, loom_output_path(out), k, &mine[2]);
    uint64_t *all = rank == 0 ? calloc((size_t)size * 3, sizeof *all) : NULL;
    if (rank == 0 && !all) st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    LOOM_MPI_KEEP(ctx, st, MPI_Gather(mine, 3, MPI_UINT64_T, all, 3, MPI_UINT64_T, 0, comm));
    if (rank == 0 && st == LOOM_OK) {
        meta_t m;
        fill_meta(pg, &m, checksum);
        uint64_t *cols = malloc((size_t)size * 3 * sizeof *cols);
        int np = 0;
        if (!cols) st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
        for (int r = 0; cols && r < size; r++)
            if (all[3 * r + 1] > all[3 * r]) {
                cols[np] = all[3 * r];
                cols[size + np] = all[3 * r + 1];
                cols[2 * size + np] = all[3 * r + 2];
                np++;
            }
        m.nparts = np;
        if (st == LOOM_OK)
            st = write_meta(pg, loom_output_path(out), &m, cols, cols + size, cols + 2 * size);
        free(cols);
    }
    free(all);
    loom_h5_quiet_end(&q);
    st = loom_output_end(ctx, &out, st);
    if (st == LOOM_OK && rank == 0) prune(pg->ckpt_dir, (long long)pg->superstep);
    if (st == LOOM_OK) {
        char hint[PATH_MAX + 128];
        snprintf(hint, sizeof hint, "resume with --restart %s (checkpoint of superstep %lld)",
                 pg->ckpt_dir, (long long)pg->superstep);
        loom_set_resume_hint(ctx, hint);
        pg->last_ckpt = pg->superstep;
    }
    return st;
}

/* ------------------------------------------------------------------ reading */

static loom_status_t corrupt(loom_ctx_t *ctx, const char *path, const char *what)
{
    return LOOM_ERROR(ctx, LOOM_ERR_FORMAT, "%s: corrupt or foreign checkpoint: %s", path, what);
}

/* Rank 0: read and check the manifest. */
static loom_status_t read_meta(loom_pregel_t *pg, const char *dir, meta_t *m, uint64_t **parts)
{
    loom_ctx_t *ctx = pg->ctx;
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/meta.h5", dir);
    *parts = NULL;
    if (H5Fis_hdf5(path) <= 0) return corrupt(ctx, path, "not an HDF5 file");
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return corrupt(ctx, path, "cannot be opened (truncated?)");
    loom_status_t st = LOOM_OK;
    memset(m, 0, sizeof *m);
    const struct {
        const char *name;
        int64_t *v;
    } ints[] = {
        {"format", &m->format},     {"superstep", &m->superstep}, {"num_vertices", &m->n},
        {"num_arcs", &m->m},        {"directed", &m->directed},   {"weighted", &m->weighted},
        {"value_size", &m->vsz},    {"msg_size", &m->msz},        {"naggs", &m->naggs},
        {"combined", &m->combined}, {"nparts", &m->nparts}};
    for (size_t i = 0; st == LOOM_OK && i < sizeof ints / sizeof *ints; i++)
        if (attr_read_i64(f, ints[i].name, ints[i].v) < 0) {
            char why[96];
            snprintf(why, sizeof why, "attribute %s is missing or not an integer", ints[i].name);
            st = corrupt(ctx, path, why);
        }
    if (st == LOOM_OK && (attr_read_u64(f, "graph_checksum", &m->checksum) < 0 ||
                          attr_read_str(f, "program", m->program, sizeof m->program) < 0 ||
                          attr_read_str(f, "params", m->params, sizeof m->params) < 0))
        st = corrupt(ctx, path, "the program or graph identity is missing");
    if (st == LOOM_OK && m->format != CKPT_FORMAT)
        st = corrupt(ctx, path, "an unknown checkpoint format");
    if (st == LOOM_OK && (m->superstep < 0 || m->superstep > LOOM_CKPT_MAX_SUPERSTEP)) {
        char why[96];
        snprintf(why, sizeof why, "superstep %lld is out of range", (long long)m->superstep);
        st = corrupt(ctx, path, why);
    }
    /* the identity: the same program with the same parameters on the same graph */
    const loom_graph_t *g = pg->g;
    if (st == LOOM_OK && strcmp(m->program, pg->prog.name ? pg->prog.name : ""))
        st = LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                        "%s: a checkpoint of another run: another program ('%s'; this is '%s'); "
                        "refusing to restart from it",
                        dir, m->program, pg->prog.name ? pg->prog.name : "");
    if (st == LOOM_OK && strcmp(m->params, pg->prog.params ? pg->prog.params : ""))
        st = LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                        "%s: a checkpoint of another run: %s with other parameters (%s; this run: "
                        "%s); refusing to restart from it",
                        dir, m->program, m->params[0] ? m->params : "none",
                        pg->prog.params && pg->prog.params[0] ? pg->prog.params : "none");
    if (st == LOOM_OK &&
        (m->n != (int64_t)pg->n || m->m != (int64_t)g->num_arcs || m->directed != g->directed ||
         m->weighted != g->weighted || m->checksum != pg->gsum))
        st = LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                        "%s: a checkpoint of another run: another graph (%lld vertices, %lld arcs, "
                        "checksum %016llx; this graph: %llu vertices, %llu arcs, checksum "
                        "%016llx); refusing to restart from it",
                        dir, (long long)m->n, (long long)m->m, (unsigned long long)m->checksum,
                        (unsigned long long)pg->n, (unsigned long long)g->num_arcs,
                        (unsigned long long)pg->gsum);
    if (st == LOOM_OK &&
        (m->vsz != (int64_t)pg->vsz || m->msz != (int64_t)pg->msz || m->naggs != pg->prog.naggs ||
         m->combined != (pg->prog.combiner != LOOM_COMBINE_NONE)))
        st = LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                        "%s: a checkpoint of another run (value %lld bytes, message %lld bytes, "
                        "%lld aggregators)",
                        dir, (long long)m->vsz, (long long)m->msz, (long long)m->naggs);
    const char *why = st == LOOM_OK ? loom_ckpt_check_ranges(m->superstep, m->nparts, m->n) : NULL;
    if (why) st = corrupt(ctx, path, why);
    hid_t d = -1;
    if (st == LOOM_OK && m->naggs > 0) {
        if (ds_open(f, "aggs", (uint64_t)m->naggs, H5T_FLOAT, 8, &d) < 0 ||
            ds_read(d, H5T_NATIVE_DOUBLE, 0, (uint64_t)m->naggs, pg->aggs) < 0)
            st = corrupt(ctx, path, "/aggs is missing or has the wrong size");
        if (d >= 0) H5Dclose(d);
    }
    uint64_t np = st == LOOM_OK ? (uint64_t)m->nparts : 0;
    if (st == LOOM_OK) {
        *parts = malloc((np ? np : 1) * 3 * sizeof **parts);
        if (!*parts) st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory reading %s", path);
    }
    static const char *const cols[3] = {"part_lo", "part_hi", "part_msgs"};
    for (int c = 0; st == LOOM_OK && c < 3; c++) {
        if (ds_open(f, cols[c], np, H5T_INTEGER, 8, &d) < 0 ||
            ds_read(d, H5T_NATIVE_UINT64, 0, np, *parts + (size_t)c * np) < 0) {
            char why[96];
            snprintf(why, sizeof why, "/%s is missing or has the wrong size", cols[c]);
            st = corrupt(ctx, path, why);
        }
        if (d >= 0) H5Dclose(d);
        d = -1;
    }
    why = st == LOOM_OK ? loom_ckpt_check_parts(*parts, *parts + np, m->nparts, m->n) : NULL;
    if (why) st = corrupt(ctx, path, why);
    H5Fclose(f);
    if (st != LOOM_OK) {
        free(*parts);
        *parts = NULL;
    }
    return st;
}

/* Read this rank's vertices [a, b) from part k (vertices [plo, phi), pm
 * messages), appending their messages as records to *recs. */
static loom_status_t read_part(loom_pregel_t *pg, const char *dir, uint64_t k, uint64_t plo,
                               uint64_t phi, uint64_t pm, uint64_t a, uint64_t b, loom_buf_t *recs)
{
    loom_ctx_t *ctx = pg->ctx;
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/part-%05llu.h5", dir, (unsigned long long)k);
    uint64_t pn = phi - plo, vbytes, mbytes;
    const char *why = loom_ckpt_bytes(pn, (uint64_t)pg->vsz, &vbytes);
    if (!why) why = loom_ckpt_bytes(pm, (uint64_t)pg->msz, &mbytes);
    if (!why) why = loom_ckpt_bytes(pm, (uint64_t)pg->rsz, &(uint64_t){0});
    if (why) return corrupt(ctx, path, why);
    if (H5Fis_hdf5(path) <= 0) return corrupt(ctx, path, "missing, or not an HDF5 file");
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return corrupt(ctx, path, "cannot be opened (truncated?)");
    loom_status_t st = LOOM_OK;
    uint64_t flo = 0, fhi = 0;
    if (attr_read_u64(f, "lo", &flo) < 0 || attr_read_u64(f, "hi", &fhi) < 0 || flo != plo ||
        fhi != phi)
        st = corrupt(ctx, path, "its vertex range differs from the manifest's");
    hid_t dv = -1, dh = -1, dc = -1, dm = -1;
    if (st == LOOM_OK && (ds_open(f, "values", vbytes, H5T_INTEGER, 1, &dv) < 0 ||
                          ds_open(f, "halted", pn, H5T_INTEGER, 1, &dh) < 0 ||
                          ds_open(f, "msg_count", pn, H5T_INTEGER, 8, &dc) < 0 ||
                          ds_open(f, "msg_data", mbytes, H5T_INTEGER, 1, &dm) < 0))
        st = corrupt(ctx, path, "a dataset is missing or has the wrong type or size");
    uint64_t off = a - pg->lo, from = a - plo, cnt = b - a;
    if (st == LOOM_OK && (ds_read(dv, H5T_NATIVE_UINT8, from * pg->vsz, cnt * pg->vsz,
                                  pg->values + off * pg->vsz) < 0 ||
                          ds_read(dh, H5T_NATIVE_UINT8, from, cnt, pg->halted + off) < 0))
        st = corrupt(ctx, path, "cannot read the vertex values");
    /* the message counts from the part's start: where [a, b)'s messages begin */
    uint64_t *mc = NULL, first = 0, mine = 0;
    if (st == LOOM_OK) {
        mc = malloc((size_t)(b - plo) * sizeof *mc + 1);
        if (!mc) st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory reading %s", path);
    }
    if (st == LOOM_OK && ds_read(dc, H5T_NATIVE_UINT64, 0, b - plo, mc) < 0)
        st = corrupt(ctx, path, "cannot read /msg_count");
    why = st == LOOM_OK
              ? loom_ckpt_sum_counts(mc, b - plo, from, pm, pg->prog.combiner != LOOM_COMBINE_NONE,
                                     &first, &mine)
              : NULL;
    if (why) st = corrupt(ctx, path, why);
    uint8_t *data = NULL;
    if (st == LOOM_OK && mine) {
        size_t rsz = pg->rsz;
        data = malloc((size_t)(mine * pg->msz));
        if (!data || loom_buf_reserve(ctx, recs, (size_t)(mine * rsz)) != LOOM_OK)
            st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory reading %s", path);
        if (st == LOOM_OK &&
            ds_read(dm, H5T_NATIVE_UINT8, first * pg->msz, mine * pg->msz, data) < 0)
            st = corrupt(ctx, path, "cannot read /msg_data");
        for (uint64_t i = from, j = 0; st == LOOM_OK && i < b - plo; i++)
            for (uint64_t c = 0; c < mc[i]; c++, j++) {
                uint64_t dst = plo + i;
                unsigned char *r = recs->data + recs->len;
                memset(r, 0, rsz);
                memcpy(r, &dst, 8);
                memcpy(r + 8, data + j * pg->msz, pg->msz);
                recs->len += rsz;
            }
    }
    free(data);
    free(mc);
    if (dv >= 0) H5Dclose(dv);
    if (dh >= 0) H5Dclose(dh);
    if (dc >= 0) H5Dclose(dc);
    if (dm >= 0) H5Dclose(dm);
    H5Fclose(f);
    return st;
}

loom_status_t loom_pregel_checkpoint_read(loom_pregel_t *pg, const char *dir)
{
    loom_ctx_t *ctx = pg->ctx;
    MPI_Comm comm = pg->comm;
    uint64_t checksum = 0;
    LOOM_TRY(graph_checksum(pg, &checksum));
    loom_h5_quiet_t q;
    loom_h5_quiet_begin(&q);
    long long s = -1;
    meta_t m;
    memset(&m, 0, sizeof m);
    uint64_t *parts = NULL;
    char cdir[PATH_MAX];
    loom_status_t st = LOOM_OK;
    if (pg->rank == 0) {
        st = newest(ctx, dir, &s);
        if (st == LOOM_OK && s < 0)
            st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: no complete checkpoint to restart from", dir);
        if (st == LOOM_OK) {
            snprintf(cdir, sizeof cdir, "%s/" CKPT_PREFIX "%lld", dir, s);
            st = read_meta(pg, cdir, &m, &parts);
        }
        if (st == LOOM_OK && m.superstep != s)
            st = corrupt(ctx, cdir, "its superstep differs from its name");
    }
    st = loom_agree(ctx, comm, st);
    if (st == LOOM_OK) {
        LOOM_MPI_KEEP(ctx, st, MPI_Bcast(&m, (int)sizeof m, MPI_BYTE, 0, comm));
        LOOM_MPI_KEEP(ctx, st, MPI_Bcast(&s, 1, MPI_LONG_LONG, 0, comm));
        LOOM_MPI_KEEP(ctx, st, MPI_Bcast(cdir, (int)sizeof cdir, MPI_CHAR, 0, comm));
        if (pg->prog.naggs)
            LOOM_MPI_KEEP(ctx, st, MPI_Bcast(pg->aggs, pg->prog.naggs, MPI_DOUBLE, 0, comm));
    }
    uint64_t np = (uint64_t)m.nparts;
    if (st == LOOM_OK && pg->rank != 0) {
        parts = malloc((np ? np : 1) * 3 * sizeof *parts);
        if (!parts) st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory reading a checkpoint");
    }
    st = loom_agree(ctx, comm, st);
    if (st == LOOM_OK && np)
        LOOM_MPI_KEEP(ctx, st, MPI_Bcast(parts, (int)(np * 3), MPI_UINT64_T, 0, comm));
    /* every part overlapping this rank's vertices */
    loom_buf_t recs = {0};
    uint64_t lo = pg->lo, hi = pg->lo + pg->nloc;
    for (uint64_t k = 0; st == LOOM_OK && k < np && lo < hi; k++) {
        uint64_t plo = parts[k], phi = parts[np + k];
        uint64_t a = plo > lo ? plo : lo, b = phi < hi ? phi : hi;
        if (a < b) st = read_part(pg, cdir, k, plo, phi, parts[2 * np + k], a, b, &recs);
    }
    if (st == LOOM_OK) st = loom_pregel_deliver(pg, recs.data, recs.len / pg->rsz, 0);
    loom_buf_free(&recs);
    free(parts);
    loom_h5_quiet_end(&q);
    st = loom_agree(ctx, comm, st);
    if (st == LOOM_OK) {
        pg->superstep = m.superstep;
        pg->last_ckpt = m.superstep;
        loom_log(ctx, LOOM_LOG_INFO, "restarting from %s (superstep %lld)", cdir, s);
    }
    return st;
}
