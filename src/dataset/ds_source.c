/* Dataset sources: text files cut into line-aligned splits, number ranges, graph edges and
 * rank 0's records. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dataset/ds_internal.h"
#include "io/inputs.h"
#include "io/textsplit.h"
#include "loom/graph.h"

/* ------------------------------------------------------------------ text */

/* Rank 0: expand the inputs and cut every file into splits of about split_size. */
static loom_status_t text_plan_master(loom_ds_engine_t *e, const char *const *inputs, int n,
                                      loom_strlist_t *files, loom_buf_t *splits)
{
    loom_ctx_t *ctx = e->ctx;
    if (n <= 0) return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "no input given");
    LOOM_TRY(loom_inputs_expand(ctx, inputs, n, NULL, files));
    for (size_t f = 0; f < files->n; f++) {
        const char *path = files->v[f];
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

loom_status_t ds_text_plan(loom_ds_t *d, const char *const *inputs, int ninputs)
{
    loom_ds_engine_t *e = d->e;
    loom_ctx_t *ctx = e->ctx;
    MPI_Comm comm = loom_comm(ctx);
    loom_strlist_t files = {0};
    loom_buf_t splits = {0}, names = {0};
    loom_status_t st = LOOM_OK;
    if (loom_is_master(ctx)) {
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
    int fd = open(path, O_RDONLY);
    if (fd < 0) return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char *data = NULL;
    loom_status_t st = loom_text_read_range(ctx, path, fd, s.begin, s.end, &data);
    close(fd);
    size_t len = (size_t)(s.end - s.begin), i = 0;
    while (st == LOOM_OK && i < len) {
        const char *nl = memchr(data + i, '\n', len - i);
        size_t e = nl ? (size_t)(nl - data) : len;
        loom_ds_rec_t r = {data + i, e - i, "", 0};
        st = sink->put(sink, &r);
        i = e + 1;
    }
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

/* Collective: move the records in s->out to their owners; d's partitions are kept for good. */
static loom_status_t scatter_run(scatter_t *s, loom_status_t st)
{
    loom_ds_t *d = s->d;
    loom_ctx_t *ctx = d->e->ctx;
    if (st == LOOM_OK) st = ds_keep_alloc(d);
    for (int p = 0; st == LOOM_OK && p < d->nparts; p++)
        d->have[p] = ds_mine(d, p);
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
    return st;
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

loom_ds_t *loom_ds_edges(loom_ds_engine_t *e, const char *graph, int undirected)
{
    loom_ctx_t *ctx = e->ctx;
    loom_ds_t *d = ds_node(e, DS_STORED, "edges", NULL, NULL, 0);
    if (!d) return NULL;
    d->partitioning = DS_PART_HASH;
    scatter_t s = {0};
    loom_edge_source_t *src = NULL;
    loom_edges_t batch = {0};
    loom_status_t st = scatter_init(d, &s);
    if (st == LOOM_OK) st = loom_source_open(ctx, graph, LOOM_FMT_AUTO, &src);
    if (st == LOOM_OK) {
        int both = undirected && !loom_source_symmetric(src);
        for (;;) {
            st = loom_source_next(ctx, src, &batch, 1 << 16);
            if (st != LOOM_OK || batch.count == 0) break;
            for (size_t i = 0; i < batch.count && st == LOOM_OK; i++) {
                uint64_t u = batch.src[i], v = batch.dst[i];
                st = scatter_put(ctx, &s, (int)loom_part_hash(&u, 8, (uint32_t)d->nparts), &u, 8,
                                 &v, 8);
                if (st == LOOM_OK && both)
                    st = scatter_put(ctx, &s, (int)loom_part_hash(&v, 8, (uint32_t)d->nparts), &v,
                                     8, &u, 8);
            }
            if (st != LOOM_OK) break;
        }
    }
    loom_edges_free(&batch);
    loom_source_destroy(&src);
    st = scatter_run(&s, st);
    if (st != LOOM_OK) ds_fail(e, st);
    return d;
}

loom_ds_t *loom_ds_parallelize(loom_ds_engine_t *e, const loom_ds_rec_t *records, size_t n,
                               int parts)
{
    loom_ctx_t *ctx = e->ctx;
    loom_ds_t *d = ds_node(e, DS_STORED, "parallelize", NULL, NULL, parts);
    if (!d) return NULL;
    scatter_t s = {0};
    loom_status_t st = scatter_init(d, &s);
    if (loom_is_master(ctx))
        for (size_t i = 0; i < n && st == LOOM_OK; i++)
            st = scatter_put(ctx, &s, (int)((unsigned __int128)i * (unsigned)d->nparts / n),
                             records[i].key, records[i].klen, records[i].val, records[i].vlen);
    st = scatter_run(&s, st);
    if (st != LOOM_OK) ds_fail(e, st);
    return d;
}
