/* The chunk store as a whole: opening a store root, learning what every holder keeps, and
 * keeping the store whole (healing, rebalancing, checking). The master plans; the workers
 * move and delete replicas. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chunks/chunks_internal.h"

#define MARKER "loom chunk store 1\n"
#define CHECKPOINT_AFTER (4u << 20) /* log bytes folded into a checkpoint at close */

/* ------------------------------------------------------------------ collective helpers */

static loom_status_t wait_here(loom_chunks_t *fs, MPI_Request *req)
{
    /* the master waits without spinning: it may share a core with a worker */
    return loom_is_master(fs->ctx) && loom_size(fs->ctx) > 1
               ? loom_wait(fs->ctx, req, MPI_STATUS_IGNORE)
               : loom_wait_hot(fs->ctx, req, MPI_STATUS_IGNORE);
}

loom_status_t ch_sync(loom_chunks_t *fs, loom_status_t st)
{
    loom_ctx_t *ctx = fs->ctx;
    if (st == LOOM_ERR_LOST) return st;
    MPI_Request req;
    int e = MPI_Ibarrier(loom_comm(ctx), &req);
    loom_status_t w = e == MPI_SUCCESS ? wait_here(fs, &req)
                                       : loom_error_mpi(ctx, e, "MPI_Ibarrier", __FILE__, __LINE__);
    if (w == LOOM_ERR_LOST) return w;
    return loom_agree(ctx, loom_comm(ctx), st != LOOM_OK ? st : w);
}

loom_status_t ch_bcast_buf(loom_chunks_t *fs, loom_buf_t *b)
{
    loom_ctx_t *ctx = fs->ctx;
    uint64_t n = b->len;
    LOOM_MPI(ctx, MPI_Bcast(&n, 1, MPI_UINT64_T, 0, loom_comm(ctx)));
    if (!loom_is_master(ctx)) {
        b->len = 0;
        LOOM_TRY(loom_buf_reserve(ctx, b, n));
        b->len = n;
    }
    if (n) LOOM_MPI(ctx, MPI_Bcast(b->data, (int)n, MPI_BYTE, 0, loom_comm(ctx)));
    return LOOM_OK;
}

loom_status_t ch_gather(loom_chunks_t *fs, const void *mine, size_t bytes, loom_buf_t *all,
                        uint64_t *offs)
{
    loom_ctx_t *ctx = fs->ctx;
    int P = loom_size(ctx), master = loom_is_master(ctx);
    /* MPI counts are ints: a rank's part, and the whole, stay below 2 GiB */
    int big = bytes > (size_t)INT_MAX / 2;
    LOOM_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, &big, 1, MPI_INT, MPI_LOR, loom_comm(ctx)));
    if (big)
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                          "a rank has more than 1 GiB of lists for the master (e.g. an append of "
                          "over 100 M records from one rank): append in several calls");
    int n = (int)bytes, *counts = NULL, *displs = NULL;
    MPI_Request req;
    if (master) {
        counts = calloc((size_t)P, sizeof *counts);
        displs = calloc((size_t)P, sizeof *displs);
        if (!counts || !displs) {
            free(counts);
            free(displs);
            return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
        }
    }
    loom_status_t st = LOOM_OK;
    int e = MPI_Igather(&n, 1, MPI_INT, counts, 1, MPI_INT, 0, loom_comm(ctx), &req);
    st = e == MPI_SUCCESS ? wait_here(fs, &req)
                          : loom_error_mpi(ctx, e, "MPI_Igather", __FILE__, __LINE__);
    size_t total = 0;
    if (st == LOOM_OK && master) {
        for (int r = 0; r < P; r++) {
            displs[r] = (int)total;
            if (offs) offs[r] = total;
            total += (size_t)counts[r];
        }
        if (offs) offs[P] = total;
        all->len = 0;
        st = loom_buf_reserve(ctx, all, total);
        all->len = total;
    }
    if (st == LOOM_OK) {
        e = MPI_Igatherv(mine, n, MPI_BYTE, master ? all->data : NULL, counts, displs, MPI_BYTE, 0,
                         loom_comm(ctx), &req);
        st = e == MPI_SUCCESS ? wait_here(fs, &req)
                              : loom_error_mpi(ctx, e, "MPI_Igatherv", __FILE__, __LINE__);
    }
    free(counts);
    free(displs);
    return st;
}

int ch_holder_start(const loom_chunks_t *fs, int w)
{
    return loom_start_rank(fs->ctx, loom_worker_rank(fs->ctx, w));
}

const char *ch_holder_name(const loom_chunks_t *fs, int w)
{
    if (fs->holders && w >= 0 && w < fs->nholders) return fs->holders[w].name;
    return "?";
}

/* ------------------------------------------------------------------ inventory */

static int cmp_rep(const void *a, const void *b)
{
    const ch_rep_t *x = a, *y = b;
    if (x->id != y->id) return x->id < y->id ? -1 : 1;
    return (x->holder > y->holder) - (x->holder < y->holder);
}

loom_status_t ch_inventory(loom_chunks_t *fs, int verify)
{
    loom_ctx_t *ctx = fs->ctx;
    loom_buf_t mine = {0}, all = {0};
    loom_status_t st = LOOM_OK;
    if (loom_is_worker(ctx)) {
        ch_rep_t *reps = NULL;
        size_t n = 0;
        uint64_t used = 0;
        st = ch_scan(fs, verify, &reps, &n, &used);
        ch_holder_t h = {{0}, used, 0};
        loom_store_holder_name(ctx, h.name, sizeof h.name);
        h.free = ch_free_bytes(fs, used);
        if (st == LOOM_OK) st = loom_buf_append(ctx, &mine, &h, sizeof h);
        if (st == LOOM_OK) st = loom_buf_append(ctx, &mine, reps, n * sizeof *reps);
        free(reps);
    }
    st = ch_sync(fs, st); /* the master waits for the scans (fsck reads every replica) */
    int P = loom_size(ctx);
    uint64_t *offs = calloc((size_t)P + 1, sizeof *offs);
    if (!offs) st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    if (st == LOOM_OK) st = ch_gather(fs, mine.data, mine.len, &all, offs);
    loom_buf_free(&mine);
    fs->nholders = loom_num_workers(ctx);
    if (st == LOOM_OK && loom_is_master(ctx)) {
        free(fs->holders);
        free(fs->reps);
        fs->reps = NULL;
        fs->nreps = 0;
        fs->holders = calloc((size_t)fs->nholders, sizeof *fs->holders);
        size_t total = 0;
        for (int r = 0; r < P; r++)
            if (offs[r + 1] - offs[r] >= sizeof(ch_holder_t))
                total += (offs[r + 1] - offs[r] - sizeof(ch_holder_t)) / sizeof(ch_rep_t);
        fs->reps = malloc((total ? total : 1) * sizeof *fs->reps);
        if (!fs->holders || !fs->reps) st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
        for (int r = 0; st == LOOM_OK && r < P; r++) {
            if (offs[r + 1] - offs[r] < sizeof(ch_holder_t)) continue;
            int w = P == 1 ? 0 : r - 1;
            memcpy(&fs->holders[w], all.data + offs[r], sizeof(ch_holder_t));
            size_t k = (offs[r + 1] - offs[r] - sizeof(ch_holder_t)) / sizeof(ch_rep_t);
            memcpy(fs->reps + fs->nreps, all.data + offs[r] + sizeof(ch_holder_t),
                   k * sizeof(ch_rep_t));
            for (size_t i = 0; i < k; i++)
                fs->reps[fs->nreps + i].holder = w;
            fs->nreps += k;
        }
        if (st == LOOM_OK) qsort(fs->reps, fs->nreps, sizeof *fs->reps, cmp_rep);
    }
    free(offs);
    loom_buf_free(&all);
    /* every rank learns the holders' names (for messages) */
    if (!loom_is_master(ctx) && st == LOOM_OK) {
        free(fs->holders);
        fs->holders = calloc((size_t)fs->nholders, sizeof *fs->holders);
        if (!fs->holders) st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    }
    st = loom_agree(ctx, loom_comm(ctx), st);
    if (st == LOOM_OK)
        LOOM_MPI(ctx, MPI_Bcast(fs->holders, (int)(fs->nholders * sizeof *fs->holders), MPI_BYTE, 0,
                                loom_comm(ctx)));
    return st;
}

void ch_reps_of(const loom_chunks_t *fs, uint64_t id, size_t *first, size_t *last)
{
    size_t lo = 0, hi = fs->nreps;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (fs->reps[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t j = lo;
    while (j < fs->nreps && fs->reps[j].id == id)
        j++;
    *first = lo;
    *last = j;
}

int ch_rep_good(const ch_rep_t *r, const ch_chunk_t *c)
{
    /* bytes past the chunk's length are left by a write that never committed */
    return r->state == CH_REP_OK && r->version == c->version && r->len >= c->len;
}

/* The master's table after a change it made, without asking the holders again. */
static void reps_drop(loom_chunks_t *fs, uint64_t holder, uint64_t id)
{
    size_t a, b;
    ch_reps_of(fs, id, &a, &b);
    for (size_t i = a; i < b; i++)
        if ((uint64_t)fs->reps[i].holder == holder) {
            uint64_t len = fs->reps[i].data_bytes;
            ch_holder_t *h = &fs->holders[holder];
            h->used = h->used > len ? h->used - len : 0;
            h->free += len;
            memmove(&fs->reps[i], &fs->reps[i + 1], (fs->nreps - i - 1) * sizeof *fs->reps);
            fs->nreps--;
            return;
        }
}

loom_status_t ch_reps_note(loom_chunks_t *fs, const ch_plan_t *p)
{
    if (!loom_is_master(fs->ctx)) return LOOM_OK;
    size_t add = 0;
    for (size_t i = 0; i < p->nc; i++)
        add += (size_t)p->c[i].nholders;
    ch_rep_t *r = realloc(fs->reps, (fs->nreps + add + 1) * sizeof *r);
    if (!r) return LOOM_ERROR(fs->ctx, LOOM_ERR_NOMEM, "out of memory");
    fs->reps = r;
    /* the replicas replaced leave the (sorted) table first; the new ones are added after */
    for (size_t i = 0; i < p->nc; i++)
        for (int k = 0; k < p->c[i].nholders; k++)
            reps_drop(fs, (uint64_t)p->c[i].holders[k], p->c[i].id);
    for (size_t i = 0; i < p->nc; i++)
        for (int k = 0; k < p->c[i].nholders; k++) {
            const ch_commit_t *c = &p->c[i];
            fs->reps[fs->nreps++] = (ch_rep_t){.id = c->id,
                                               .version = c->version,
                                               .len = c->len,
                                               .data_bytes = c->len,
                                               .holder = c->holders[k],
                                               .state = CH_REP_OK};
            ch_holder_t *h = &fs->holders[c->holders[k]];
            h->used += c->len;
            h->free = h->free > c->len ? h->free - c->len : 0;
        }
    qsort(fs->reps, fs->nreps, sizeof *fs->reps, cmp_rep);
    return LOOM_OK;
}

/* The master's orders to holders (rows of `width` u64s, the first a worker index) reach
 * every rank in b. */
static loom_status_t bcast_orders(loom_chunks_t *fs, const uint64_t *rows, size_t n, int width,
                                  loom_buf_t *b)
{
    loom_ctx_t *ctx = fs->ctx;
    loom_status_t st = LOOM_OK;
    if (loom_is_master(ctx)) st = loom_buf_append(ctx, b, rows, n * (size_t)width * sizeof *rows);
    st = loom_agree(ctx, loom_comm(ctx), st);
    return st == LOOM_OK ? ch_bcast_buf(fs, b) : st;
}

loom_status_t ch_delete(loom_chunks_t *fs, const uint64_t *pairs, size_t npairs)
{
    loom_ctx_t *ctx = fs->ctx;
    loom_buf_t b = {0};
    loom_status_t st = bcast_orders(fs, pairs, npairs, 2, &b);
    int me = loom_worker_index(ctx);
    size_t removed = 0;
    for (size_t at = 0; st == LOOM_OK && at + 16 <= b.len; at += 16) {
        uint64_t pair[2];
        memcpy(pair, b.data + at, 16);
        if ((int)pair[0] == me) ch_remove_replica(fs, pair[1]);
        removed++;
    }
    loom_buf_free(&b);
    fs->removed_replicas += (int64_t)removed;
    if (st == LOOM_OK && loom_is_master(ctx))
        for (size_t i = 0; i < npairs; i++)
            reps_drop(fs, pairs[2 * i], pairs[2 * i + 1]);
    return st;
}

loom_status_t ch_bump(loom_chunks_t *fs, const uint64_t *triples, size_t n)
{
    loom_ctx_t *ctx = fs->ctx;
    loom_buf_t b = {0};
    loom_status_t st = bcast_orders(fs, triples, n, 3, &b);
    int me = loom_worker_index(ctx);
    for (size_t at = 0; st == LOOM_OK && at + 24 <= b.len; at += 24) {
        uint64_t t[3];
        memcpy(t, b.data + at, 24);
        if ((int)t[0] == me) st = ch_set_version(fs, t[1], t[2]);
    }
    loom_buf_free(&b);
    st = ch_sync(fs, st);
    /* the master's table follows */
    for (size_t i = 0; st == LOOM_OK && loom_is_master(ctx) && i < n; i++) {
        size_t a, z;
        ch_reps_of(fs, triples[3 * i + 1], &a, &z);
        for (size_t r = a; r < z; r++)
            if ((uint64_t)fs->reps[r].holder == triples[3 * i])
                fs->reps[r].version = triples[3 * i + 2];
    }
    return st;
}

/* ------------------------------------------------------------------ open and close */

static void chunks_free(loom_chunks_t *fs)
{
    if (!fs) return;
    ch_meta_close(&fs->meta);
    free(fs->root);
    free(fs->hdir);
    free(fs->holders);
    free(fs->reps);
    free(fs);
}

loom_status_t loom_chunks_open(loom_ctx_t *ctx, const char *root, const loom_chunks_opts_t *opts,
                               loom_chunks_t **out)
{
    *out = NULL;
    loom_chunks_t *fs = calloc(1, sizeof *fs);
    if (!fs) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    fs->ctx = ctx;
    fs->meta.log_fd = fs->meta.lock_fd = -1;
    if (opts) fs->o = *opts;
    if (!fs->o.chunk_size) fs->o.chunk_size = LOOM_CHUNKS_DEFAULT_SIZE;
    if (!fs->o.replication) fs->o.replication = LOOM_CHUNKS_DEFAULT_REPLICATION;
    loom_status_t st = LOOM_OK;
    if (!root || !*root)
        st = LOOM_ERROR(ctx, LOOM_ERR_USAGE, "no store given (--store DIR or LOOM_STORE)");
    else if (fs->o.chunk_size % LOOM_CHUNKS_BLOCK || fs->o.chunk_size > (1ull << 32))
        st = LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                        "--chunk-size %zu: must be a multiple of 64K and at most 4G",
                        fs->o.chunk_size);
    else if (fs->o.replication < 1 || fs->o.replication > CH_MAX_REPL)
        st = LOOM_ERROR(ctx, LOOM_ERR_USAGE, "--replication %d: must be 1..%d", fs->o.replication,
                        CH_MAX_REPL);
    if (st == LOOM_OK)
        st = loom_fault_parse(ctx, fs->o.fault, 1u << LOOM_PHASE_TRANSFER, &fs->fault);
    if (st == LOOM_OK && !(fs->root = strdup(root)))
        st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    if (st == LOOM_OK && loom_is_master(ctx)) {
        st = loom_store_root_check(ctx, root, "LOOM_STORE", MARKER, "store", &fs->id);
        if (st == LOOM_OK) st = ch_meta_open(ctx, root, &fs->meta);
    }
    st = loom_agree(ctx, loom_comm(ctx), st);
    if (st == LOOM_OK)
        LOOM_MPI_KEEP(ctx, st, MPI_Bcast(&fs->id, 1, MPI_UINT64_T, 0, loom_comm(ctx)));
    if (st == LOOM_OK && loom_is_worker(ctx))
        st = loom_store_holder_dir(ctx, root, fs->id, &fs->hdir);
    st = loom_agree(ctx, loom_comm(ctx), st);
    if (st == LOOM_OK) st = ch_inventory(fs, 0);
    if (st == LOOM_OK && fs->o.heal) st = loom_chunks_heal(fs);
    if (st != LOOM_OK) {
        chunks_free(fs);
        return st;
    }
    *out = fs;
    return LOOM_OK;
}

loom_status_t loom_chunks_close(loom_chunks_t **pfs)
{
    if (!pfs || !*pfs) return LOOM_OK;
    loom_chunks_t *fs = *pfs;
    loom_status_t st = LOOM_OK;
    uint64_t after = fs->o.checkpoint_bytes ? fs->o.checkpoint_bytes : CHECKPOINT_AFTER;
    loom_ctx_t *ctx = fs->ctx;
    if (loom_is_master(ctx)) st = ch_meta_checkpoint(ctx, &fs->meta, after);
    chunks_free(fs);
    *pfs = NULL;
    return loom_agree(ctx, loom_comm(ctx), st);
}

loom_status_t ch_recover(loom_chunks_t *fs, loom_status_t st)
{
    loom_ctx_t *ctx = fs->ctx;
    if (st != LOOM_ERR_LOST || !loom_ft_enabled(ctx)) return st;
    int ok = 0;
    LOOM_TRY(loom_members_agree(ctx, &ok));
    loom_recovery_t rec;
    st = loom_members_recover(ctx, &rec);
    loom_recovery_free(&rec);
    LOOM_TRY(st);
    loom_members_resumed(ctx);
    return ch_inventory(fs, 0);
}
