/* Dataset sources: text files cut into line-aligned splits, number ranges, graph edges and
 * rank 0's records. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dataset/ds_internal.h"
#include "io/elements.h"
#include "io/inputs.h"
#include "io/textsplit.h"
#include "loom/graph.h"

/* ------------------------------------------------------------------ text */

_Thread_local long ds_cur_file = -1;
_Thread_local uint64_t ds_cur_off;

static int is_store(const char *spec)
{
    return strncmp(spec, "store:", 6) == 0;
}

static loom_chunks_lines_t *store_lines(loom_ds_engine_t *e, const char *spec)
{
    for (int i = 0; i < e->nlines; i++)
        if (!strcmp(e->line_specs[i], spec)) return e->lines[i];
    return NULL;
}

/* Every rank: open the store (once per engine) and the splits of each store:/PATH input. */
static loom_status_t open_store_inputs(loom_ds_engine_t *e, const char *const *inputs, int n)
{
    loom_ctx_t *ctx = e->ctx;
    int k = 0;
    for (int i = 0; i < n; i++)
        k += is_store(inputs[i]) && !store_lines(e, inputs[i]);
    if (!k) return LOOM_OK;
    if (!e->cfg.store || !*e->cfg.store)
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                          "store:/PATH inputs need the store's root (--store DIR or LOOM_STORE)");
    loom_chunks_lines_t **l = realloc(e->lines, (size_t)(e->nlines + k) * sizeof *l);
    if (l) e->lines = l;
    char **s = realloc(e->line_specs, (size_t)(e->nlines + k) * sizeof *s);
    if (s) e->line_specs = s;
    if (!l || !s) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    if (!e->chunks) {
        loom_chunks_opts_t o = {.heal = 1};
        LOOM_TRY(loom_chunks_open(ctx, e->cfg.store, &o, &e->chunks));
    }
    for (int i = 0; i < n; i++) {
        if (!is_store(inputs[i]) || store_lines(e, inputs[i])) continue;
        loom_chunks_lines_t *lf = NULL;
        LOOM_TRY(loom_chunks_lines_open(e->chunks, inputs[i] + 6, 0, &lf));
        e->line_specs[e->nlines] = strdup(inputs[i]);
        e->lines[e->nlines++] = lf;
        if (!e->line_specs[e->nlines - 1]) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    }
    return LOOM_OK;
}

/* Rank 0: expand the inputs and cut every file into splits of about split_size (a store file:
 * one split per chunk). */
static loom_status_t text_plan_master(loom_ds_engine_t *e, const char *const *inputs, int n,
                                      loom_strlist_t *files, loom_buf_t *splits)
{
    loom_ctx_t *ctx = e->ctx;
    if (n <= 0) return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "no input given");
    LOOM_TRY(loom_inputs_expand(ctx, inputs, n, is_store, files));
    for (size_t f = 0; f < files->n; f++) {
        const char *path = files->v[f];
        loom_chunks_lines_t *lf = store_lines(e, path);
        for (uint64_t i = 0; lf && i < loom_chunks_lines_count(lf); i++) {
            uint64_t off, len;
            loom_chunks_lines_range(lf, i, &off, &len);
            ds_split_t s = {(uint32_t)(e->nfiles + f), off, off + len};
            if (len) LOOM_TRY(loom_buf_append(ctx, splits, &s, sizeof s));
        }
        if (lf) continue;
        int fd = open(path, O_RDONLY);
        struct stat sb;
        if (fd < 0 || fstat(fd, &sb) != 0) {
            if (fd >= 0) close(fd);
            return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        }
        uint64_t size = (uint64_t)sb.st_size, start = 0;
        loom_status_t st = LOOM_OK;
        while (start < size && st == LOOM_OK) {
            uint64_t end = size;
            if (size - start > e->cfg.split_size)
                st = loom_text_align(ctx, path, fd, start, size, start + e->cfg.split_size, &end);
            ds_split_t s = {(uint32_t)(e->nfiles + f), start, end};
            if (st == LOOM_OK) st = loom_buf_append(ctx, splits, &s, sizeof s);
            start = end;
        }
        close(fd);
        LOOM_TRY(st);
    }
    return LOOM_OK;
}

/* Every rank alike: a store split's partition goes to the slot of a holder of its chunk (the
 * one with the fewest so far), so that its worker reads it from its own disk; other splits
 * keep p mod W. */
static loom_status_t place_store_splits(loom_ds_t *d)
{
    loom_ds_engine_t *e = d->e;
    loom_ctx_t *ctx = e->ctx;
    d->place = malloc((size_t)d->nparts * sizeof *d->place);
    int *load = calloc((size_t)e->slots, sizeof *load);
    if (!d->place || !load) {
        free(load);
        return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory: partition placement");
    }
    for (int p = 0; p < d->nparts; p++) {
        const char *path = e->files[d->splits[p].file];
        loom_chunks_lines_t *lf = is_store(path) ? store_lines(e, path) : NULL;
        int best = p % e->slots;
        if (lf) {
            uint64_t i = loom_chunks_lines_find(lf, d->splits[p].begin);
            int found = -1;
            for (int s = 0; s < e->slots; s++) {
                /* does the worker that owns slot s now hold the chunk? */
                int start = loom_start_rank(ctx, loom_worker_rank(ctx, e->slot_owner[s]));
                if (loom_chunks_lines_local(lf, i, start) && (found < 0 || load[s] < load[found]))
                    found = s;
            }
            if (found >= 0) best = found;
        }
        d->place[p] = best;
        load[best]++;
    }
    free(load);
    return LOOM_OK;
}

loom_status_t ds_text_plan(loom_ds_t *d, const char *const *inputs, int ninputs)
{
    loom_ds_engine_t *e = d->e;
    loom_ctx_t *ctx = e->ctx;
    MPI_Comm comm = loom_comm(ctx);
    loom_strlist_t files = {0};
    loom_buf_t splits = {0}, names = {0};
    loom_status_t st = loom_agree(ctx, comm, open_store_inputs(e, inputs, ninputs));
    if (st == LOOM_OK && loom_is_master(ctx)) {
        st = text_plan_master(e, inputs, ninputs, &files, &splits);
        for (size_t f = 0; f < files.n && st == LOOM_OK; f++)
            st = loom_buf_append(ctx, &names, files.v[f], strlen(files.v[f]) + 1);
    }
    st = loom_agree(ctx, comm, st);
    uint64_t len[2] = {names.len, splits.len};
    if (st == LOOM_OK) LOOM_MPI_KEEP(ctx, st, MPI_Bcast(len, 2, MPI_UINT64_T, 0, comm));
    if (st == LOOM_OK && !loom_is_master(ctx)) {
        st = loom_buf_reserve(ctx, &names, len[0] + 1);
        if (st == LOOM_OK) st = loom_buf_reserve(ctx, &splits, len[1] + 1);
        names.len = len[0];
        splits.len = len[1];
    }
    st = loom_agree(ctx, comm, st);
    if (st == LOOM_OK && (len[0] > INT32_MAX || len[1] > INT32_MAX))
        st = LOOM_ERROR(ctx, LOOM_ERR_USAGE, "too many input files or splits");
    if (st == LOOM_OK && len[0])
        LOOM_MPI_KEEP(ctx, st, MPI_Bcast(names.data, (int)len[0], MPI_BYTE, 0, comm));
    if (st == LOOM_OK && len[1])
        LOOM_MPI_KEEP(ctx, st, MPI_Bcast(splits.data, (int)len[1], MPI_BYTE, 0, comm));
    /* every rank: the names join the engine's file list, the splits become partitions */
    size_t nnames = 0;
    for (size_t i = 0; st == LOOM_OK && i < names.len; i++)
        nnames += names.data[i] == 0;
    char **all = st == LOOM_OK ? realloc(e->files, (e->nfiles + nnames + 1) * sizeof *all) : NULL;
    if (st == LOOM_OK && !all) st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory: file list");
    if (st == LOOM_OK) {
        e->files = all;
        for (size_t i = 0; i < names.len && st == LOOM_OK;) {
            char *s = strdup((const char *)names.data + i);
            if (!s)
                st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory: file list");
            else
                e->files[e->nfiles++] = s;
            i += strlen((const char *)names.data + i) + 1;
        }
    }
    size_t nsplits = splits.len / sizeof(ds_split_t);
    if (st == LOOM_OK) {
        d->nparts = nsplits ? (int)nsplits : 1;
        d->splits = calloc((size_t)d->nparts, sizeof *d->splits);
        if (!d->splits)
            st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory: splits");
        else if (nsplits)
            memcpy(d->splits, splits.data, splits.len);
        if (!nsplits) d->range_n = 1; /* one empty partition */
    }
    if (st == LOOM_OK && e->nlines && nsplits) st = place_store_splits(d);
    loom_strlist_free(&files);
    loom_buf_free(&names);
    loom_buf_free(&splits);
    return loom_agree(ctx, comm, st);
}

loom_status_t ds_text_pull(loom_ds_t *d, int p, ds_sink_t *sink)
{
    loom_ctx_t *ctx = d->e->ctx;
    if (d->range_n) return LOOM_OK; /* no input bytes at all */
    ds_split_t s = d->splits[p];
    const char *path = d->e->files[s.file];
    char *data = NULL;
    loom_status_t st = LOOM_OK;
    loom_chunks_lines_t *lf = is_store(path) ? store_lines(d->e, path) : NULL;
    if (lf) {
        /* a chunk's lines, from this rank's replica when it keeps one */
        int local = 0;
        data = malloc((size_t)(s.end - s.begin) + 1);
        if (!data) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
        st = loom_chunks_lines_read(d->e->chunks, lf, loom_chunks_lines_find(lf, s.begin), data,
                                    &local);
        int64_t *count = local ? &d->e->local_reads : &d->e->remote_reads;
#pragma omp atomic
        (*count)++;
    } else {
        int fd = open(path, O_RDONLY);
        if (fd < 0)
            return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        st = loom_text_read_range(ctx, path, fd, s.begin, s.end, &data);
        close(fd);
    }
    size_t len = (size_t)(s.end - s.begin), i = 0;
    while (st == LOOM_OK && i < len) {
        const char *nl = memchr(data + i, '\n', len - i);
        size_t e = nl ? (size_t)(nl - data) : len;
        loom_ds_rec_t r = {data + i, e - i, "", 0};
        ds_cur_file = (long)s.file;
        ds_cur_off = s.begin + i;
        st = sink->put(sink, &r);
        i = e + 1;
    }
    if (st == LOOM_OK) ds_cur_file = -1; /* kept on failure: the message may name the line */
    free(data);
    return st;
}

loom_ds_t *loom_ds_text(loom_ds_engine_t *e, const char *const *inputs, int ninputs)
{
    loom_ds_t *d = ds_node(e, DS_TEXT, "text", NULL, NULL, 1);
    loom_status_t st = LOOM_OK;
    if (d) st = ds_text_plan(d, inputs, ninputs);
    if (st != LOOM_OK) ds_fail(e, st);
    return d; /* on failure too: the next action returns the error */
}

loom_ds_t *loom_ds_range(loom_ds_engine_t *e, uint64_t n, int parts)
{
    loom_ds_t *d = ds_node(e, DS_RANGE, "range", NULL, NULL, parts);
    if (d) d->range_n = n;
    return d;
}

/* ------------------------------------------------------------------ HDF5 elements */

loom_ds_t *loom_ds_h5(loom_ds_engine_t *e, const char *spec, int parts, loom_ds_num_t *kind)
{
    if (kind) *kind = LOOM_DS_INT64;
    loom_ds_t *d = ds_node(e, DS_H5, "hdf5", NULL, NULL, parts);
    if (!d) return d;
    loom_ctx_t *ctx = e->ctx;
    uint64_t info[2] = {0, 0}; /* elements, kind */
    loom_status_t st = LOOM_OK;
    if (!(d->source = strdup(spec))) {
        st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    } else if (!loom_h5_elements_spec(spec)) {
        st = LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                        "%s: expected FILE:/DATASET, a 1-D numeric dataset of an HDF5 file", spec);
    } else if (loom_rank(ctx) == 0) {
        loom_elem_kind_t k = LOOM_ELEM_I64;
        st = loom_h5_elements_info(ctx, spec, &info[0], &k);
        info[1] = (uint64_t)k;
    }
    st = loom_agree(ctx, loom_comm(ctx), st);
    if (st == LOOM_OK)
        LOOM_MPI_GOTO(ctx, st, MPI_Bcast(info, 2, MPI_UINT64_T, 0, loom_comm(ctx)), out);
out:
    if (st != LOOM_OK) {
        ds_fail(e, st);
        return d;
    }
    d->range_n = info[0];
    d->h5kind = (int)info[1];
    if (kind) *kind = (loom_ds_num_t)info[1];
    return d;
}

loom_status_t ds_h5_pull(loom_ds_t *d, int p, ds_sink_t *sink)
{
    enum { CHUNK = 1 << 16 }; /* elements per hyperslab read */
    loom_ctx_t *ctx = d->e->ctx;
    uint64_t lo, hi;
    ds_part_range(d->range_n, p, d->nparts, &lo, &hi);
    uint64_t *v = malloc((size_t)CHUNK * sizeof *v);
    if (!v) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    loom_status_t st = LOOM_OK;
    for (uint64_t at = lo; at < hi && st == LOOM_OK;) {
        uint64_t c = hi - at < CHUNK ? hi - at : CHUNK;
        loom_elem_kind_t k;
        st = loom_h5_elements_read(ctx, d->source, at, c, v, &k);
        if (st == LOOM_OK && (int)k != d->h5kind)
            st = LOOM_ERROR(ctx, LOOM_ERR_FORMAT, "%s: the element type changed while read",
                            d->source);
        for (uint64_t i = 0; i < c && st == LOOM_OK; i++, at++) {
            loom_ds_rec_t r = {&at, 8, &v[i], 8};
            st = sink->put(sink, &r);
        }
    }
    free(v);
    return st;
}

/* ------------------------------------------------------------------ stored sources */

/* Records prefixed by their partition, to the rank that owns it. */
typedef struct scatter {
    loom_ds_t *d;
    loom_buf_t *out; /* per job rank */
    size_t *sent;
    int ranks;
} scatter_t;

static loom_status_t scatter_put(loom_ctx_t *ctx, scatter_t *s, int p, const void *k, size_t kl,
                                 const void *v, size_t vl)
{
    loom_buf_t *b = &s->out[loom_worker_rank(ctx, ds_owner(s->d, p))];
    LOOM_TRY(loom_buf_reserve(ctx, b, 10));
    b->len = (size_t)(loom_put_varint(b->data + b->len, (uint64_t)p) - b->data);
    return loom_buf_put_record(ctx, b, k, kl, v, vl);
}

static loom_status_t scatter_pack(loom_exchange_t *x, void *user, int *more)
{
    scatter_t *s = user;
    *more = 0;
    for (int r = 0; r < s->ranks; r++) {
        loom_buf_t *b = &s->out[r];
        size_t room = loom_exchange_room(x), at = s->sent[r], take = 0;
        const unsigned char *q = b->data + at, *end = b->data + b->len;
        while (q < end) {
            uint64_t part;
            const unsigned char *next = loom_get_varint(q, end, &part);
            loom_ds_rec_t rec;
            if (!next || ds_next_record(&next, end, &rec) <= 0) break;
            size_t len = (size_t)(next - q);
            if (take + len > room && take > 0) break;
            take += len;
            q = next;
        }
        if (take) LOOM_TRY(loom_exchange_put(x, r, b->data + at, take));
        s->sent[r] = at + take;
        if (s->sent[r] < b->len) *more = 1;
    }
    return LOOM_OK;
}

static loom_status_t scatter_unpack(loom_exchange_t *x, void *user, int src,
                                    const unsigned char *data, size_t bytes)
{
    (void)x;
    (void)src;
    scatter_t *s = user;
    loom_ctx_t *ctx = s->d->e->ctx;
    const unsigned char *p = data, *end = data + bytes;
    while (p < end) {
        uint64_t part;
        loom_ds_rec_t r;
        p = loom_get_varint(p, end, &part);
        if (!p || part >= (uint64_t)s->d->nparts || ds_next_record(&p, end, &r) <= 0)
            return LOOM_ERROR(ctx, LOOM_ERR_INTERNAL, "a scattered segment is corrupt");
        LOOM_TRY(loom_buf_put_record(ctx, &s->d->part[part], r.key, r.klen, r.val, r.vlen));
        s->d->have[part] = 1;
    }
    return LOOM_OK;
}

/* Collective: move the records in s->out to their owners; d's partitions (all,
 * or those in `only`) are kept for good. */
static loom_status_t scatter_run(scatter_t *s, loom_status_t st, const unsigned char *only)
{
    loom_ds_t *d = s->d;
    loom_ctx_t *ctx = d->e->ctx;
    if (st == LOOM_OK) st = ds_keep_alloc(d);
    for (int p = 0; st == LOOM_OK && p < d->nparts; p++)
        if (!only || only[p]) d->have[p] = ds_mine(d, p);
    st = loom_agree(ctx, loom_comm(ctx), st);
    loom_exchange_t *x = NULL;
    loom_exchange_opts_t xo = {.among = LOOM_AMONG_JOB, .elem = 1, .budget = d->e->cfg.memory};
    if (st == LOOM_OK) st = loom_exchange_create(ctx, &xo, &x);
    st = loom_agree(ctx, loom_comm(ctx), st);
    if (st == LOOM_OK) st = loom_exchange_run(x, scatter_pack, scatter_unpack, s);
    loom_exchange_destroy(&x);
    for (int r = 0; s->out && r < s->ranks; r++)
        loom_buf_free(&s->out[r]);
    free(s->out);
    free(s->sent);
    if (st == LOOM_OK) d->kept = 1;
    for (int p = 0; st == LOOM_OK && p < d->nparts; p++)
        if ((!only || only[p]) && d->have[p]) d->e->kept_bytes += (int64_t)d->part[p].cap;
    return loom_agree(ctx, loom_comm(ctx), st);
}

static loom_status_t scatter_init(loom_ds_t *d, scatter_t *s)
{
    loom_ctx_t *ctx = d->e->ctx;
    s->d = d;
    s->ranks = loom_size(ctx);
    s->out = calloc((size_t)s->ranks, sizeof *s->out);
    s->sent = calloc((size_t)s->ranks, sizeof *s->sent);
    if (!s->out || !s->sent) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory: scatter");
    return LOOM_OK;
}

/* Read the graph and scatter its edges (those of the partitions in `only`, or all). */
static loom_status_t edges_read(loom_ds_t *d, const unsigned char *only)
{
    loom_ctx_t *ctx = d->e->ctx;
    scatter_t s = {0};
    loom_edge_source_t *src = NULL;
    loom_edges_t batch = {0};
    loom_status_t st = scatter_init(d, &s);
    if (st == LOOM_OK) st = loom_source_open(ctx, d->source, LOOM_FMT_AUTO, &src);
    if (st == LOOM_OK) {
        int both = d->undirected && !loom_source_symmetric(src);
        uint32_t np = (uint32_t)d->nparts;
        for (;;) {
            st = loom_source_next(ctx, src, &batch, 1 << 16);
            if (st != LOOM_OK || batch.count == 0) break;
            for (size_t i = 0; i < batch.count && st == LOOM_OK; i++) {
                uint64_t u = batch.src[i], v = batch.dst[i];
                int pu = (int)loom_part_hash(&u, 8, np), pv = (int)loom_part_hash(&v, 8, np);
                if (!only || only[pu]) st = scatter_put(ctx, &s, pu, &u, 8, &v, 8);
                if (st == LOOM_OK && both && (!only || only[pv]))
                    st = scatter_put(ctx, &s, pv, &v, 8, &u, 8);
            }
            if (st != LOOM_OK) break;
        }
    }
    loom_edges_free(&batch);
    loom_source_destroy(&src);
    return scatter_run(&s, st, only);
}

loom_ds_t *loom_ds_edges(loom_ds_engine_t *e, const char *graph, int undirected)
{
    loom_ds_t *d = ds_node(e, DS_STORED, "edges", NULL, NULL, 0);
    if (!d) return NULL;
    d->partitioning = DS_PART_HASH;
    d->undirected = undirected;
    d->source = strdup(graph);
    loom_status_t st = d->source ? LOOM_OK : LOOM_ERROR(e->ctx, LOOM_ERR_NOMEM, "out of memory");
    st = loom_agree(e->ctx, loom_comm(e->ctx), st);
    if (st == LOOM_OK) st = edges_read(d, NULL);
    if (st != LOOM_OK) ds_fail(e, st);
    return d;
}

/* Rank 0: hand out its records again (those of the partitions in `only`, or all). */
static loom_status_t given_scatter(loom_ds_t *d, const unsigned char *only)
{
    loom_ctx_t *ctx = d->e->ctx;
    scatter_t s = {0};
    loom_status_t st = scatter_init(d, &s);
    if (loom_is_master(ctx)) {
        const unsigned char *p = d->given.data, *end = p + d->given.len;
        loom_ds_rec_t r;
        for (size_t i = 0; st == LOOM_OK && ds_next_record(&p, end, &r) > 0; i++) {
            int q = (int)((unsigned __int128)i * (unsigned)d->nparts / d->ngiven);
            if (!only || only[q]) st = scatter_put(ctx, &s, q, r.key, r.klen, r.val, r.vlen);
        }
    }
    return scatter_run(&s, st, only);
}

loom_ds_t *loom_ds_parallelize(loom_ds_engine_t *e, const loom_ds_rec_t *records, size_t n,
                               int parts)
{
    loom_ctx_t *ctx = e->ctx;
    loom_ds_t *d = ds_node(e, DS_STORED, "parallelize", NULL, NULL, parts);
    if (!d) return NULL;
    loom_status_t st = LOOM_OK;
    if (loom_is_master(ctx)) { /* kept, as Spark's driver keeps them, to hand out again */
        d->ngiven = n;
        for (size_t i = 0; i < n && st == LOOM_OK; i++)
            st = loom_buf_put_record(ctx, &d->given, records[i].key, records[i].klen,
                                     records[i].val, records[i].vlen);
    }
    st = loom_agree(ctx, loom_comm(ctx), st);
    if (st == LOOM_OK) st = given_scatter(d, NULL);
    if (st != LOOM_OK) ds_fail(e, st);
    return d;
}

loom_status_t ds_stored_reload(loom_ds_engine_t *e)
{
    loom_status_t st = LOOM_OK;
    for (int i = 0; i < e->n && st == LOOM_OK; i++) {
        loom_ds_t *d = e->all[i];
        if (d->kind != DS_STORED || !d->nlost) continue;
        loom_log(e->ctx, LOOM_LOG_INFO, "dataset #%d (%s): %s %d lost partition%s", d->id, d->name,
                 d->source ? "reading again" : "handing out again", d->nlost,
                 d->nlost == 1 ? "" : "s");
        for (int p = 0; p < d->nparts; p++)
            if (d->lost[p]) ds_part_free(d, p);
        st = d->source ? edges_read(d, d->lost) : given_scatter(d, d->lost);
        if (st == LOOM_OK) {
            for (int p = 0; p < d->nparts; p++)
                e->recomputed += d->lost[p] && ds_mine(d, p);
            memset(d->lost, 0, (size_t)d->nparts);
            d->nlost = 0;
        }
    }
    return st;
}

/* ------------------------------------------------------------------ vectors of numbers */

static int skip_line(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r'))
        i++;
    return i == n || s[i] == '#';
}

/* Parse the numbers of a line into `out` (at most max); returns how many there were,
 * or -1 (with *bad at the offending token) when one is not a finite number. */
static long parse_numbers(const char *s, size_t n, double *out, long max, const char **bad,
                          size_t *badlen)
{
    long k = 0;
    size_t i = 0;
    while (i < n) {
        while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r'))
            i++;
        if (i == n) break;
        size_t j = i;
        while (j < n && s[j] != ' ' && s[j] != '\t' && s[j] != '\r')
            j++;
        double v = 0;
        if (loom_text_parse_double(s + i, j - i, &v) != LOOM_NUM_OK) {
            *bad = s + i;
            *badlen = j - i;
            return -1;
        }
        if (k < max) out[k] = v;
        k++;
        i = j;
    }
    return k;
}

static loom_status_t parse_vector(const loom_ds_rec_t *in, loom_ds_out_t *out, void *user)
{
    long dim = *(const int *)user;
    if (skip_line(in->key, in->klen)) return LOOM_OK;
    double *v = malloc((size_t)dim * sizeof *v);
    if (!v) return LOOM_ERROR(loom_ds_out_ctx(out), LOOM_ERR_NOMEM, "out of memory: a vector");
    const char *bad = NULL;
    size_t badlen = 0;
    long k = parse_numbers(in->key, in->klen, v, dim, &bad, &badlen);
    loom_status_t st = LOOM_OK;
    char q[80];
    if (k < 0)
        st = LOOM_ERROR(loom_ds_out_ctx(out), LOOM_ERR_FORMAT, "%s: '%s' is not a finite number",
                        loom_ds_where(out), loom_text_quote(bad, badlen, q, sizeof q));
    else if (k != dim)
        st = LOOM_ERROR(loom_ds_out_ctx(out), LOOM_ERR_FORMAT,
                        "%s: %ld numbers, expected %ld (as on the first line)", loom_ds_where(out),
                        k, dim);
    if (st == LOOM_OK) st = loom_ds_emit(out, "", 0, v, (size_t)dim * sizeof *v);
    free(v);
    return st;
}

/* The first line that is not blank or a comment: its count of numbers. */
typedef struct first_line {
    long n;
    int bad;
} first_line_t;

static loom_status_t count_first(const loom_ds_rec_t *r, void *user)
{
    first_line_t *f = user;
    const char *bad;
    size_t bl;
    double dummy;
    f->n = parse_numbers(r->key, r->klen, &dummy, 0, &bad, &bl);
    return LOOM_OK;
}

static int not_blank(const loom_ds_rec_t *r, void *user)
{
    (void)user;
    return !skip_line(r->key, r->klen);
}

loom_ds_t *loom_ds_text_vectors(loom_ds_engine_t *e, const char *const *inputs, int ninputs,
                                int *dim)
{
    *dim = 0;
    loom_ds_t *lines = loom_ds_text(e, inputs, ninputs);
    first_line_t f = {0, 0};
    loom_status_t st = loom_ds_take(loom_ds_filter(lines, not_blank, NULL), 1, count_first, &f);
    if (st == LOOM_OK && f.n <= 0)
        st = LOOM_ERROR(e->ctx, LOOM_ERR_FORMAT, "%s: %s", ninputs > 0 ? inputs[0] : "input",
                        f.n < 0 ? "the first line holds a token that is not a finite number"
                                : "no line of numbers");
    if (st == LOOM_OK && f.n > 1000000)
        st = LOOM_ERROR(e->ctx, LOOM_ERR_FORMAT, "%s: %ld numbers on a line; at most 1000000",
                        inputs[0], f.n);
    st = loom_agree(e->ctx, loom_comm(e->ctx), st);
    if (st != LOOM_OK)
        ds_fail(e, st);
    else
        *dim = (int)f.n;
    loom_ds_t *v = loom_ds_map(lines, parse_vector, NULL);
    if (v) {
        v->dim = (int)f.n;
        v->user = &v->dim;
    }
    return loom_ds_name(v, "vectors");
}
