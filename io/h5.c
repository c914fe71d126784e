/* Loom's HDF5 CSR graph files: validated parallel reading (collective MPI-IO,
 * each worker a slice of vertices) and parallel writing of a distributed CSR. */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/io_internal.h"
#include "runtime/memory.h"

/* Elements per collective transfer: keeps every MPI-IO request well under 2 GiB. */
#define H5_ROUND ((uint64_t)1 << 24)
/* Most arcs a file may declare, as for generators: counts and sums of them
 * (vertices plus arcs, arcs times 24 bytes in a check) stay inside 64 bits. */
#define H5_MAX_EDGES ((uint64_t)1 << 62)

/* HDF5 prints its error stack by default; Loom reports one message instead. */
void loom_h5_quiet_begin(loom_h5_quiet_t *q)
{
    H5Eget_auto2(H5E_DEFAULT, &q->func, &q->data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

void loom_h5_quiet_end(const loom_h5_quiet_t *q)
{
    H5Eset_auto2(H5E_DEFAULT, q->func, q->data);
}

static void close_id(hid_t *id, herr_t (*fn)(hid_t))
{
    if (*id >= 0) fn(*id);
    *id = -1;
}

/* ------------------------------------------------------------------ schema checks (rank 0) */

typedef struct h5_meta {
    uint64_t n, m, directed, weighted, target_bytes;
} h5_meta_t;
#define H5_META_WORDS 5

static loom_status_t read_attr(loom_ctx_t *ctx, const char *path, hid_t gid, const char *name,
                               uint64_t *v)
{
    htri_t ex = H5Aexists(gid, name);
    if (ex <= 0)
        return LOOM_ERROR(ctx, LOOM_ERR_FORMAT, "%s: missing attribute '%s' on /graph", path, name);
    hid_t aid = H5Aopen(gid, name, H5P_DEFAULT), tid = -1, sid = -1;
    loom_status_t st = LOOM_OK;
    if (aid < 0) {
        st = LOOM_ERROR(ctx, LOOM_ERR_FORMAT, "%s: cannot open attribute '%s' on /graph", path,
                        name);
        goto out;
    }
    tid = H5Aget_type(aid);
    sid = H5Aget_space(aid);
    if (tid < 0 || sid < 0 || H5Tget_class(tid) != H5T_INTEGER ||
        H5Sget_simple_extent_npoints(sid) != 1) {
        st = LOOM_ERROR(ctx, LOOM_ERR_FORMAT,
                        "%s: attribute '%s' on /graph must be a single integer", path, name);
        goto out;
    }
    if (H5Tget_sign(tid) == H5T_SGN_2) {
        int64_t s = 0;
        if (H5Aread(aid, H5T_NATIVE_INT64, &s) < 0 || s < 0) {
            st = LOOM_ERROR(ctx, LOOM_ERR_FORMAT,
                            "%s: attribute '%s' on /graph is negative or unreadable", path, name);
            goto out;
        }
        *v = (uint64_t)s;
    } else if (H5Aread(aid, H5T_NATIVE_UINT64, v) < 0) {
        st = LOOM_ERROR(ctx, LOOM_ERR_FORMAT, "%s: cannot read attribute '%s' on /graph", path,
                        name);
    }
out:
    close_id(&sid, H5Sclose);
    close_id(&tid, H5Tclose);
    close_id(&aid, H5Aclose);
    return st;
}

/* Check that /graph/<name> is a 1-D dataset of `expect` elements of the given
 * class (and, for integers, unsigned of size 4 or 8 as allowed). */
static loom_status_t check_dataset(loom_ctx_t *ctx, const char *path, hid_t gid, const char *name,
                                   H5T_class_t cls, int allow32, uint64_t expect,
                                   const char *expect_text, uint64_t *elem_bytes)
{
    if (H5Lexists(gid, name, H5P_DEFAULT) <= 0)
        return LOOM_ERROR(ctx, LOOM_ERR_FORMAT, "%s: missing dataset /graph/%s", path, name);
    loom_status_t st = LOOM_OK;
    hid_t did = H5Dopen2(gid, name, H5P_DEFAULT), tid = -1, sid = -1;
    if (did < 0) {
        st = LOOM_ERROR(ctx, LOOM_ERR_FORMAT, "%s: /graph/%s is not a dataset", path, name);
        goto out;
    }
    tid = H5Dget_type(did);
    sid = H5Dget_space(did);
    if (tid < 0 || sid < 0) {
        st = LOOM_ERROR(ctx, LOOM_ERR_FORMAT, "%s: cannot read /graph/%s (damaged file?)", path,
                        name);
        goto out;
    }
    size_t size = H5Tget_size(tid);
    int ok = H5Tget_class(tid) == cls;
    if (ok && cls == H5T_INTEGER)
        ok = H5Tget_sign(tid) == H5T_SGN_NONE && (size == 8 || (allow32 && size == 4));
    if (!ok) {
        st = LOOM_ERROR(ctx, LOOM_ERR_FORMAT, "%s: /graph/%s has the wrong type (expected %s)",
                        path, name,
                        cls == H5T_FLOAT ? "float64"
                        : allow32        ? "uint32 or uint64"
                                         : "uint64");
        goto out;
    }
    hsize_t dims[2] = {0, 0};
    int rank = H5Sget_simple_extent_ndims(sid);
    if (rank != 1 || H5Sget_simple_extent_dims(sid, dims, NULL) != 1) {
        st = LOOM_ERROR(ctx, LOOM_ERR_FORMAT, "%s: /graph/%s must be one-dimensional", path, name);
        goto out;
    }
    if ((uint64_t)dims[0] != expect) {
        st = LOOM_ERROR(ctx, LOOM_ERR_FORMAT, "%s: /graph/%s has %llu entries, expected %s = %llu",
                        path, name, (unsigned long long)dims[0], expect_text,
                        (unsigned long long)expect);
        goto out;
    }
    if (elem_bytes) *elem_bytes = size;
out:
    close_id(&sid, H5Sclose);
    close_id(&tid, H5Tclose);
    close_id(&did, H5Dclose);
    return st;
}

/* Read offsets[i] with a serial one-element selection. */
static int read_offset_at(hid_t gid, uint64_t i, uint64_t *v)
{
    hid_t did = H5Dopen2(gid, "offsets", H5P_DEFAULT);
    if (did < 0) return -1;
    hid_t fs = H5Dget_space(did);
    hsize_t start = i, one = 1;
    hid_t ms = H5Screate_simple(1, &one, NULL);
    int rc = (fs < 0 || ms < 0 ||
              H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, NULL, &one, NULL) < 0 ||
              H5Dread(did, H5T_NATIVE_UINT64, ms, fs, H5P_DEFAULT, v) < 0)
                 ? -1
                 : 0;
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    H5Dclose(did);
    return rc;
}

static loom_status_t validate_schema(loom_ctx_t *ctx, const char *path, h5_meta_t *meta)
{
    htri_t is = H5Fis_hdf5(path);
    if (is <= 0) return LOOM_ERROR(ctx, LOOM_ERR_FORMAT, "%s: not an HDF5 file", path);
    hid_t fid = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT), gid = -1;
    if (fid < 0)
        return LOOM_ERROR(ctx, LOOM_ERR_FORMAT,
                          "%s: cannot open the HDF5 file (truncated or damaged)", path);
    loom_status_t st = LOOM_OK;
    H5O_info_t info;
    if (H5Lexists(fid, "/graph", H5P_DEFAULT) <= 0) {
        st = LOOM_ERROR(ctx, LOOM_ERR_FORMAT, "%s: no group /graph (not a Loom graph file)", path);
        goto out;
    }
    if (H5Oget_info_by_name(fid, "/graph", &info, H5P_DEFAULT) < 0 || info.type != H5O_TYPE_GROUP ||
        (gid = H5Gopen2(fid, "/graph", H5P_DEFAULT)) < 0) {
        st = LOOM_ERROR(ctx, LOOM_ERR_FORMAT, "%s: /graph is not a group", path);
        goto out;
    }
    LOOM_TRY_GOTO(st, read_attr(ctx, path, gid, "num_vertices", &meta->n), out);
    LOOM_TRY_GOTO(st, read_attr(ctx, path, gid, "num_edges", &meta->m), out);
    LOOM_TRY_GOTO(st, read_attr(ctx, path, gid, "directed", &meta->directed), out);
    if (meta->n > LOOM_MAX_VERTEX_ID + 1) {
        st = LOOM_ERROR(ctx, LOOM_ERR_FORMAT, "%s: num_vertices %llu is out of range", path,
                        (unsigned long long)meta->n);
        goto out;
    }
    if (meta->m > H5_MAX_EDGES) {
        st = LOOM_ERROR(ctx, LOOM_ERR_FORMAT, "%s: num_edges %llu is out of range (at most 2^62)",
                        path, (unsigned long long)meta->m);
        goto out;
    }
    /* Building the graph keeps 8 bytes per vertex on every rank: refuse a
     * count no rank could hold before reading anything sized by it. */
    uint64_t per_rank = loom_mem_mul(meta->n, sizeof(uint64_t));
    if (!loom_mem_fits(per_rank)) {
        char nb[32], hb[32];
        st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM,
                        "%s: the vertex count %llu (num_vertices) is too large for this "
                        "machine's memory: every rank needs 8 bytes per vertex or more to build "
                        "the graph (%s; this machine has %s)",
                        path, (unsigned long long)meta->n, loom_mem_human(per_rank, nb, sizeof nb),
                        loom_mem_human(loom_mem_total(), hb, sizeof hb));
        goto out;
    }
    LOOM_TRY_GOTO(st,
                  check_dataset(ctx, path, gid, "offsets", H5T_INTEGER, 0, meta->n + 1,
                                "num_vertices + 1", NULL),
                  out);
    LOOM_TRY_GOTO(st,
                  check_dataset(ctx, path, gid, "targets", H5T_INTEGER, 1, meta->m, "num_edges",
                                &meta->target_bytes),
                  out);
    meta->weighted = H5Lexists(gid, "weights", H5P_DEFAULT) > 0;
    if (meta->weighted)
        LOOM_TRY_GOTO(
            st, check_dataset(ctx, path, gid, "weights", H5T_FLOAT, 0, meta->m, "num_edges", NULL),
            out);
    uint64_t first = 1, last = 0;
    if (read_offset_at(gid, 0, &first) < 0 || read_offset_at(gid, meta->n, &last) < 0) {
        st = LOOM_ERROR(ctx, LOOM_ERR_FORMAT, "%s: cannot read /graph/offsets (truncated file?)",
                        path);
        goto out;
    }
    if (first != 0 || last != meta->m)
        st = LOOM_ERROR(ctx, LOOM_ERR_FORMAT,
                        "%s: /graph/offsets must run from 0 to num_edges = %llu, but runs from "
                        "%llu to %llu",
                        path, (unsigned long long)meta->m, (unsigned long long)first,
                        (unsigned long long)last);
out:
    close_id(&gid, H5Gclose);
    H5Fclose(fid);
    return st;
}

/* ------------------------------------------------------------------ collective transfers */

/* Read (or write) `count` elements from `start` of a 1-D dataset, collectively
 * over `comm`, in rounds of H5_ROUND; ranks with fewer elements select none in
 * the rounds they do not need. Returns -1 when a transfer failed here, -2 when
 * agreeing on the rounds failed (recorded in ctx; *mst gets its status). */
static int slab_rounds(loom_ctx_t *ctx, MPI_Comm comm, hid_t did, hid_t memtype, hid_t dxpl,
                       uint64_t start, uint64_t count, void *buf, size_t elem, int writing,
                       loom_status_t *mst)
{
    uint64_t mine = (count + H5_ROUND - 1) / H5_ROUND, rounds = 0;
    int e = MPI_Allreduce(&mine, &rounds, 1, MPI_UINT64_T, MPI_MAX, comm);
    if (e != MPI_SUCCESS) {
        *mst = loom_error_mpi(ctx, e, "MPI_Allreduce (HDF5 rounds)", __FILE__, __LINE__);
        return -2;
    }
    hid_t fs = H5Dget_space(did);
    int rc = fs < 0 ? -1 : 0;
    for (uint64_t r = 0; r < rounds; r++) {
        uint64_t off = r * H5_ROUND;
        hsize_t n = off < count ? (hsize_t)(count - off < H5_ROUND ? count - off : H5_ROUND) : 0;
        hsize_t s = start + off, mdim = n ? n : 1;
        hid_t ms = H5Screate_simple(1, &mdim, NULL);
        if (n) {
            H5Sselect_hyperslab(fs, H5S_SELECT_SET, &s, NULL, &n, NULL);
        } else {
            H5Sselect_none(fs);
            H5Sselect_none(ms);
        }
        char *p = (char *)buf + (n ? off * elem : 0);
        herr_t e = writing ? H5Dwrite(did, memtype, ms, fs, dxpl, p)
                           : H5Dread(did, memtype, ms, fs, dxpl, p);
        if (e < 0) rc = -1;
        H5Sclose(ms);
    }
    if (fs >= 0) H5Sclose(fs);
    return rc;
}

/* ------------------------------------------------------------------ reading */

typedef struct h5_read {
    hid_t fid, gid, dxpl;
} h5_read_t;

static void h5_read_close(h5_read_t *h)
{
    close_id(&h->dxpl, H5Pclose);
    close_id(&h->gid, H5Gclose);
    close_id(&h->fid, H5Fclose);
}

static loom_status_t h5_read_open(loom_ctx_t *ctx, MPI_Comm comm, const char *path, h5_read_t *h)
{
    h->fid = h->gid = h->dxpl = -1;
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0 || H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL) < 0) {
        if (fapl >= 0) H5Pclose(fapl);
        return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot set up parallel HDF5 access", path);
    }
    h->fid = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    H5Pclose(fapl);
    if (h->fid < 0)
        return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot open the HDF5 file in parallel", path);
    h->gid = H5Gopen2(h->fid, "/graph", H5P_DEFAULT);
    h->dxpl = H5Pcreate(H5P_DATASET_XFER);
    if (h->gid < 0 || h->dxpl < 0 || H5Pset_dxpl_mpio(h->dxpl, H5FD_MPIO_COLLECTIVE) < 0)
        return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot open /graph in parallel", path);
    return LOOM_OK;
}

/* Collective read of `count` elements of /graph/<name> from `start`. */
static loom_status_t read_slab(loom_ctx_t *ctx, MPI_Comm comm, const char *path, h5_read_t *h,
                               const char *name, hid_t memtype, uint64_t start, uint64_t count,
                               void *buf, size_t elem)
{
    hid_t did = H5Dopen2(h->gid, name, H5P_DEFAULT);
    int rc = -1;
    loom_status_t mst = LOOM_OK;
    if (did >= 0) {
        rc = slab_rounds(ctx, comm, did, memtype, h->dxpl, start, count, buf, elem, 0, &mst);
        H5Dclose(did);
    } else {
        /* Stay in step with the ranks that did open it. */
        uint64_t mine = 0, rounds = 0;
        int e = MPI_Allreduce(&mine, &rounds, 1, MPI_UINT64_T, MPI_MAX, comm);
        if (e != MPI_SUCCESS) return loom_error_mpi(ctx, e, "MPI_Allreduce", __FILE__, __LINE__);
    }
    if (rc == -2) return mst;
    if (rc < 0)
        return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: reading /graph/%s failed (truncated file?)", path,
                          name);
    return LOOM_OK;
}

/* First vertex v with offsets[v] + v >= target (v in [0, n]), by binary search
 * with independent one-element reads: the cost of a vertex range is its arcs
 * plus its vertices, so slices hold similar memory even on skewed graphs. */
static int cost_boundary(hid_t did, uint64_t n, uint64_t m, uint64_t target, uint64_t *b)
{
    hid_t fs = H5Dget_space(did);
    hsize_t one = 1;
    hid_t ms = H5Screate_simple(1, &one, NULL);
    int rc = fs < 0 || ms < 0 ? -1 : 0;
    uint64_t lo = 0, hi = n;
    while (rc == 0 && lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2, off = 0;
        hsize_t start = mid;
        if (H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, NULL, &one, NULL) < 0 ||
            H5Dread(did, H5T_NATIVE_UINT64, ms, fs, H5P_DEFAULT, &off) < 0) {
            rc = -1;
            break;
        }
        /* An offset past m is damage that check_offsets reports; here it only
         * must not wrap around (m is at most 2^62 and mid below 2^63). */
        if ((off > m ? UINT64_MAX : off + mid) >= target)
            hi = mid;
        else
            lo = mid + 1;
    }
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    *b = lo;
    return rc;
}

/* This worker's slice [lo, hi) of the vertices, balanced by arcs plus vertices;
 * empty on the pure master. Local (no collective). */
static loom_status_t vertex_slice(loom_ctx_t *ctx, const char *path, h5_read_t *h,
                                  const h5_meta_t *meta, uint64_t *lo, uint64_t *hi)
{
    int w = loom_worker_index(ctx), nw = loom_num_workers(ctx);
    *lo = *hi = 0;
    if (w < 0) return LOOM_OK;
    uint64_t n = meta->n, total = meta->n + meta->m;
    uint64_t q = total / (uint64_t)nw, r = total % (uint64_t)nw;
    uint64_t t0 = q * (uint64_t)w + (r * (uint64_t)w) / (uint64_t)nw;
    uint64_t t1 = q * (uint64_t)(w + 1) + (r * (uint64_t)(w + 1)) / (uint64_t)nw;
    hid_t did = H5Dopen2(h->gid, "offsets", H5P_DEFAULT);
    int rc = did < 0 ? -1 : 0;
    if (rc == 0 && w > 0) rc = cost_boundary(did, n, meta->m, t0, lo);
    if (rc == 0) {
        if (w + 1 < nw)
            rc = cost_boundary(did, n, meta->m, t1, hi);
        else
            *hi = n;
    }
    if (did >= 0) H5Dclose(did);
    if (rc < 0)
        return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: reading /graph/offsets failed (truncated file?)",
                          path);
    /* Sound offsets give increasing costs, hence ordered bounds. */
    if (*hi < *lo) {
        uint64_t at = *hi;
        *hi = *lo;
        return LOOM_ERROR(ctx, LOOM_ERR_FORMAT,
                          "%s: /graph/offsets is not non-decreasing (near vertex %llu)", path,
                          (unsigned long long)at);
    }
    return LOOM_OK;
}

static loom_status_t check_offsets(loom_ctx_t *ctx, const char *path, const uint64_t *off,
                                   uint64_t lo, uint64_t nv, uint64_t m)
{
    for (uint64_t i = 0; i < nv; i++) {
        if (off[i + 1] < off[i] || off[i + 1] > m)
            return LOOM_ERROR(ctx, LOOM_ERR_FORMAT,
                              "%s: /graph/offsets is not non-decreasing within [0, num_edges] at "
                              "vertex %llu (%llu then %llu)",
                              path, (unsigned long long)(lo + i), (unsigned long long)off[i],
                              (unsigned long long)off[i + 1]);
    }
    return LOOM_OK;
}

static loom_status_t expand_arcs(loom_ctx_t *ctx, const char *path, const uint64_t *off,
                                 uint64_t lo, uint64_t nv, uint64_t n, loom_edges_t *e)
{
    uint64_t base = off[0];
    for (uint64_t i = 0; i < nv; i++) {
        for (uint64_t k = off[i]; k < off[i + 1]; k++) {
            uint64_t t = e->dst[k - base];
            if (t >= n)
                return LOOM_ERROR(ctx, LOOM_ERR_FORMAT,
                                  "%s: /graph/targets[%llu] = %llu is not below num_vertices = "
                                  "%llu",
                                  path, (unsigned long long)k, (unsigned long long)t,
                                  (unsigned long long)n);
            e->src[k - base] = lo + i;
        }
    }
    return LOOM_OK;
}

/* Refuse an allocation of count * elem bytes for this rank's slice [lo, hi)
 * that cannot fit this machine, before trying it: the count comes from the
 * file, and count * elem must not wrap around. */
static loom_status_t check_alloc(loom_ctx_t *ctx, const char *path, const char *what,
                                 uint64_t count, uint64_t elem, uint64_t lo, uint64_t hi)
{
    uint64_t bytes = loom_mem_mul(count, elem);
    if (loom_mem_fits(bytes)) return LOOM_OK;
    char nb[32], hb[32];
    return LOOM_ERROR(ctx, LOOM_ERR_NOMEM,
                      "%s: the %s of vertices %llu..%llu (%llu entries) need %s, more than this "
                      "machine's memory (%s)",
                      path, what, (unsigned long long)lo,
                      (unsigned long long)(hi > lo ? hi - 1 : lo), (unsigned long long)count,
                      loom_mem_human(bytes, nb, sizeof nb),
                      loom_mem_human(loom_mem_total(), hb, sizeof hb));
}

/* Weights must be finite, as in text files; the first negative one is noted
 * for the commands that refuse them. */
static loom_status_t check_weights(loom_ctx_t *ctx, const char *path, const double *w,
                                   uint64_t first, uint64_t count, loom_read_result_t *out)
{
    int noted = 0;
    for (uint64_t k = 0; k < count; k++) {
        if (!isfinite(w[k]))
            return LOOM_ERROR(ctx, LOOM_ERR_FORMAT,
                              "%s: /graph/weights[%llu] = %g is not a finite number", path,
                              (unsigned long long)(first + k), w[k]);
        if (w[k] < 0 && !noted) {
            loom_read_note_negative(out, w[k], "%s: /graph/weights[%llu]", path,
                                    (unsigned long long)(first + k));
            noted = 1;
        }
    }
    return LOOM_OK;
}

static loom_status_t read_graph_data(loom_ctx_t *ctx, MPI_Comm comm, const char *path, h5_read_t *h,
                                     const h5_meta_t *meta, loom_read_result_t *out)
{
    uint64_t lo = 0, hi = 0;
    loom_status_t st = vertex_slice(ctx, path, h, meta, &lo, &hi);
    uint64_t nv = hi - lo;
    uint64_t *off = NULL;
    if (st == LOOM_OK) st = check_alloc(ctx, path, "offsets", nv + 1, sizeof *off, lo, hi);
    if (st == LOOM_OK) off = malloc((size_t)(nv + 1) * sizeof *off);
    if (!off && st == LOOM_OK)
        st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "%s: out of memory for offsets", path);
    /* Every worker reads offsets [lo, hi] (one past its slice); the pure master
     * none. The collective selections are kept disjoint and the one shared
     * element is read independently: Open MPI 4.1's OMPIO returned zeros for
     * collective reads whose selections overlapped on several ranks. */
    int reading = st == LOOM_OK && loom_is_worker(ctx);
    uint64_t ocount = reading ? nv + 1 : 0;
    loom_status_t rs = read_slab(ctx, comm, path, h, "offsets", H5T_NATIVE_UINT64, lo,
                                 reading ? nv : 0, off, sizeof *off);
    if (st == LOOM_OK) st = rs;
    if (st == LOOM_OK && reading && read_offset_at(h->gid, hi, &off[nv]) < 0)
        st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: reading /graph/offsets failed (truncated file?)",
                        path);
    if (st == LOOM_OK && ocount) st = check_offsets(ctx, path, off, lo, nv, meta->m);
    st = loom_agree(ctx, comm, st);
    if (st != LOOM_OK) {
        free(off);
        return st;
    }
    /* check_offsets bounded every offset by num_edges, itself at most 2^62. */
    uint64_t first = ocount ? off[0] : 0, count = ocount ? off[nv] - off[0] : 0;
    loom_edges_t *e = &out->edges;
    memset(e, 0, sizeof *e);
    st = check_alloc(ctx, path, "arcs", count, meta->weighted ? 24 : 16, lo, hi);
    if (st == LOOM_OK) {
        e->src = malloc((size_t)(count ? count : 1) * sizeof *e->src);
        e->dst = malloc((size_t)(count ? count : 1) * sizeof *e->dst);
        if (meta->weighted) e->weight = malloc((size_t)(count ? count : 1) * sizeof *e->weight);
        if (!e->src || !e->dst || (meta->weighted && !e->weight))
            st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "%s: out of memory for %llu arcs", path,
                            (unsigned long long)count);
    }
    uint64_t rcount = st == LOOM_OK ? count : 0;
    rs = read_slab(ctx, comm, path, h, "targets", H5T_NATIVE_UINT64, first, rcount, e->dst,
                   sizeof *e->dst);
    if (st == LOOM_OK) st = rs;
    if (meta->weighted) {
        rs = read_slab(ctx, comm, path, h, "weights", H5T_NATIVE_DOUBLE, first, rcount, e->weight,
                       sizeof *e->weight);
        if (st == LOOM_OK) st = rs;
    }
    if (st == LOOM_OK && ocount) st = expand_arcs(ctx, path, off, lo, nv, meta->n, e);
    if (st == LOOM_OK && meta->weighted)
        st = check_weights(ctx, path, e->weight, first, count, out);
    free(off);
    e->count = e->capacity = (size_t)count;
    st = loom_agree(ctx, comm, st);
    if (st != LOOM_OK) loom_edges_free(e);
    return st;
}

loom_status_t loom_read_h5(loom_ctx_t *ctx, const char *path, loom_read_result_t *out)
{
    memset(out, 0, sizeof *out);
    MPI_Comm comm = loom_comm(ctx);
    LOOM_TRY(loom_check_input_file(ctx, path));
    loom_h5_quiet_t q;
    loom_h5_quiet_begin(&q);
    /* Rank 0 checks the whole schema serially first, so that a foreign or
     * damaged file fails the same way everywhere before any collective open. */
    h5_meta_t meta;
    memset(&meta, 0, sizeof meta);
    loom_status_t st = LOOM_OK;
    if (loom_rank(ctx) == 0) st = validate_schema(ctx, path, &meta);
    st = loom_agree(ctx, comm, st);
    if (st != LOOM_OK) {
        loom_h5_quiet_end(&q);
        return st;
    }
    int be = MPI_Bcast(&meta, H5_META_WORDS, MPI_UINT64_T, 0, comm);
    if (be != MPI_SUCCESS) {
        loom_h5_quiet_end(&q);
        return loom_error_mpi(ctx, be, "MPI_Bcast", __FILE__, __LINE__);
    }
    h5_read_t h;
    st = h5_read_open(ctx, comm, path, &h);
    st = loom_agree(ctx, comm, st);
    if (st == LOOM_OK) st = read_graph_data(ctx, comm, path, &h, &meta, out);
    h5_read_close(&h);
    loom_h5_quiet_end(&q);
    if (st != LOOM_OK) return st;
    out->num_vertices = meta.n;
    snprintf(out->vertex_count_origin, sizeof out->vertex_count_origin, "num_vertices");
    out->directed = meta.directed != 0;
    out->symmetric = meta.directed == 0;
    out->weighted = meta.weighted != 0;
    return LOOM_OK;
}

/* ------------------------------------------------------------------ writing */

/* Collective: create a 1-D dataset /<name> of `total` elements of `ftype` in
 * `loc` and write this rank's `count` elements from `start`. */
loom_status_t loom_h5_write_column(loom_ctx_t *ctx, MPI_Comm comm, const char *path, hid_t loc,
                                   const char *name, hid_t ftype, hid_t mtype, uint64_t total,
                                   uint64_t start, uint64_t count, const void *buf, size_t elem)
{
    hsize_t dim = total;
    hid_t sid = H5Screate_simple(1, &dim, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (dcpl >= 0) H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER);
    hid_t did = sid >= 0 ? H5Dcreate2(loc, name, ftype, sid, H5P_DEFAULT, dcpl, H5P_DEFAULT) : -1;
    hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
    if (dxpl >= 0) H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE);
    loom_status_t st = LOOM_OK;
    if (did < 0 || dxpl < 0)
        st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot create dataset %s", path, name);
    /* Creation is collective and fails alike everywhere, so ranks stay in step. */
    if (st == LOOM_OK) {
        loom_status_t mst = LOOM_OK;
        int rc = slab_rounds(ctx, comm, did, mtype, dxpl, start, count, (void *)buf, elem, 1, &mst);
        if (rc == -2)
            st = mst;
        else if (rc < 0)
            st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: writing dataset %s failed", path, name);
    }
    if (dxpl >= 0) H5Pclose(dxpl);
    if (did >= 0) H5Dclose(did);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (sid >= 0) H5Sclose(sid);
    return st;
}

/* Collective: create (truncate) an HDF5 file for parallel writing. */
hid_t loom_h5_create_parallel(MPI_Comm comm, const char *path)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) return -1;
    hid_t fid = -1;
    if (H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL) >= 0)
        fid = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    return fid;
}
