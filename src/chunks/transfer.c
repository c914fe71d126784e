/* Moving chunk data between workers: a plan's byte ranges stream from their sources along
 * chains of holders in pieces, one hop per round of the data plane's exchange, so that a
 * chunk's replicas fill in a pipeline and no link carries a piece twice. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chunks/chunks_internal.h"

#define HDR 16 /* a piece on the wire: u32 task, u32 length, u64 offset in the task, data */

void ch_plan_free(ch_plan_t *p)
{
    free(p->c);
    free(p->t);
    p->c = NULL;
    p->t = NULL;
    p->nc = p->nt = 0;
}

loom_status_t ch_plan_bcast(loom_chunks_t *fs, ch_plan_t *p)
{
    loom_ctx_t *ctx = fs->ctx;
    uint64_t n[2] = {p->nc, p->nt};
    MPI_Comm comm = loom_comm(ctx);
    LOOM_MPI(ctx, MPI_Bcast(n, 2, MPI_UINT64_T, 0, comm));
    if (!loom_is_master(ctx)) {
        p->nc = n[0];
        p->nt = n[1];
        p->c = calloc(p->nc ? p->nc : 1, sizeof *p->c);
        p->t = calloc(p->nt ? p->nt : 1, sizeof *p->t);
        if (!p->c || !p->t) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory for a plan");
    }
    if (p->nc) LOOM_MPI(ctx, MPI_Bcast(p->c, (int)(p->nc * sizeof *p->c), MPI_BYTE, 0, comm));
    if (p->nt) LOOM_MPI(ctx, MPI_Bcast(p->t, (int)(p->nt * sizeof *p->t), MPI_BYTE, 0, comm));
    LOOM_MPI(ctx, MPI_Bcast(p->local, (int)sizeof p->local, MPI_CHAR, 0, comm));
    return LOOM_OK;
}

typedef struct xfer {
    loom_chunks_t *fs;
    const ch_plan_t *p;
    int me;
    uint64_t *sent;       /* [task] bytes the source has read and sent */
    int local_fd;         /* CH_SRC_LOCAL */
    int *rep_fd;          /* [task] CH_SRC_REPLICA, opened on first use */
    ch_crcs_t *rep_crc;   /* [task] */
    ch_writer_t *w;       /* [commit] this holder's replica, fd -1 until written */
    loom_buf_t fwd, next; /* pieces to forward: u32 dest + piece */
    unsigned char *piece;
    loom_buf_t bad; /* ids of replicas found corrupt while read as sources */
} xfer_t;

static int chain_pos(const ch_task_t *t, int w)
{
    for (int i = 0; i < t->nchain; i++)
        if (t->chain[i] == w) return i;
    return -1;
}

static int is_holder(const ch_commit_t *c, int w)
{
    for (int i = 0; i < c->nholders; i++)
        if (c->holders[i] == w) return 1;
    return 0;
}

static loom_status_t write_piece(xfer_t *x, const ch_task_t *t, uint64_t off, const void *data,
                                 size_t n)
{
    ch_writer_t *w = &x->w[t->commit];
    if (t->chain[0] != x->me)
        loom_fault_point(x->fs->ctx, &x->fs->fault, LOOM_PHASE_TRANSFER, x->fs->transfer_pieces++);
    if (w->fd < 0) {
        const ch_commit_t *c = &x->p->c[t->commit];
        LOOM_TRY(ch_writer_open(x->fs, w, c->id, c->fresh));
    }
    return ch_writer_write(x->fs, w, t->off + off, data, n);
}

/* Read the next piece of task ti from its source into x->piece; *n its length. */
static loom_status_t read_piece(xfer_t *x, size_t ti, size_t *n)
{
    const ch_task_t *t = &x->p->t[ti];
    loom_chunks_t *fs = x->fs;
    uint64_t at = x->sent[ti];
    loom_fault_point(fs->ctx, &fs->fault, LOOM_PHASE_TRANSFER, fs->transfer_pieces++);
    *n = t->len - at < CH_PIECE ? (size_t)(t->len - at) : CH_PIECE;
    if (t->src_kind == CH_SRC_MEM) {
        memcpy(x->piece, x->p->mem + t->src_off + at, *n);
        return LOOM_OK;
    }
    if (t->src_kind == CH_SRC_LOCAL) {
        if (x->local_fd < 0) {
            x->local_fd = open(x->p->local, O_RDONLY | O_CLOEXEC);
            if (x->local_fd < 0)
                return LOOM_ERROR(fs->ctx, LOOM_ERR_IO, "%s: %s (on rank %d, %s)", x->p->local,
                                  strerror(errno), loom_rank(fs->ctx), loom_hostname(fs->ctx));
        }
        size_t got = 0;
        while (got < *n) {
            ssize_t r =
                pread(x->local_fd, x->piece + got, *n - got, (off_t)(t->src_off + at + got));
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0)
                return LOOM_ERROR(fs->ctx, LOOM_ERR_IO, "%s: %s at byte %" PRIu64, x->p->local,
                                  r < 0 ? strerror(errno) : "ends early (changed while copied?)",
                                  t->src_off + at + got);
            got += (size_t)r;
        }
        return LOOM_OK;
    }
    const ch_commit_t *c = &x->p->c[t->commit];
    if (x->rep_fd[ti] < 0) {
        int ok;
        LOOM_TRY(ch_crcs_load(fs, c->id, &x->rep_crc[ti], &ok));
        x->rep_fd[ti] = ok ? ch_open_data(fs, c->id) : -1;
        if (x->rep_fd[ti] < 0) {
            ch_crcs_free(&x->rep_crc[ti]);
            LOOM_TRY(loom_buf_append(fs->ctx, &x->bad, &c->id, sizeof c->id));
            return LOOM_ERROR(fs->ctx, LOOM_ERR_IO,
                              "chunk %016" PRIx64 ": the replica on %s is gone or damaged", c->id,
                              ch_holder_name(fs, x->me));
        }
    }
    int bad;
    char why[160];
    LOOM_TRY(ch_read_checked(fs, x->rep_fd[ti], &x->rep_crc[ti], c->id, t->off + at, *n, x->piece,
                             &bad, why, sizeof why));
    if (bad) {
        LOOM_TRY(loom_buf_append(fs->ctx, &x->bad, &c->id, sizeof c->id));
        return LOOM_ERROR(fs->ctx, LOOM_ERR_IO,
                          "chunk %016" PRIx64 ": the replica on %s is corrupt: %s", c->id,
                          ch_holder_name(fs, x->me), why);
    }
    return LOOM_OK;
}

static loom_status_t put_piece(loom_exchange_t *ex, int dest, uint32_t task, uint64_t off,
                               const void *data, uint32_t n)
{
    unsigned char h[HDR];
    memcpy(h, &task, 4);
    memcpy(h + 4, &n, 4);
    memcpy(h + 8, &off, 8);
    LOOM_TRY(loom_exchange_put(ex, dest, h, HDR));
    return loom_exchange_put(ex, dest, data, n);
}

static loom_status_t pack(loom_exchange_t *ex, void *user, int *more)
{
    xfer_t *x = user;
    const ch_plan_t *p = x->p;
    /* what arrived last round moves on this round */
    loom_buf_t tmp = x->fwd;
    x->fwd = x->next;
    x->next = tmp;
    x->next.len = 0;
    *more = 0;
    size_t room = loom_exchange_room(ex);
    int size = loom_exchange_size(ex);
    for (int d = 0; d < size; d++) {
        for (size_t at = 0; at < x->fwd.len;) {
            uint32_t dest, task, n;
            uint64_t off;
            memcpy(&dest, x->fwd.data + at, 4);
            memcpy(&task, x->fwd.data + at + 4, 4);
            memcpy(&n, x->fwd.data + at + 8, 4);
            memcpy(&off, x->fwd.data + at + 12, 8);
            if ((int)dest == d) {
                LOOM_TRY(put_piece(ex, d, task, off, x->fwd.data + at + 20, n));
                if (chain_pos(&p->t[task], d) < p->t[task].nchain - 1) *more = 1;
            }
            at += 20 + n;
        }
        /* new pieces from the sources this rank reads, within the destination's room */
        for (size_t ti = 0; ti < p->nt; ti++) {
            const ch_task_t *t = &p->t[ti];
            if (t->chain[0] != x->me || x->sent[ti] == t->len) continue;
            int to_self = t->nchain == 1;
            if (to_self ? d != x->me : t->chain[1] != d) continue;
            uint64_t before = x->sent[ti];
            while (x->sent[ti] < t->len && (to_self || loom_exchange_pending(ex, d) < room)) {
                size_t n;
                LOOM_TRY(read_piece(x, ti, &n));
                if (is_holder(&p->c[t->commit], x->me))
                    LOOM_TRY(write_piece(x, t, x->sent[ti], x->piece, n));
                if (!to_self)
                    LOOM_TRY(put_piece(ex, d, (uint32_t)ti, x->sent[ti], x->piece, (uint32_t)n));
                x->sent[ti] += n;
                if (to_self && x->sent[ti] < t->len) {
                    *more = 1;
                    break; /* one piece per round: a round stays short */
                }
            }
            if (x->sent[ti] < t->len) *more = 1;
            /* the next member forwards next round what it gets now */
            if (!to_self && t->nchain > 2 && x->sent[ti] > before) *more = 1;
        }
    }
    return LOOM_OK;
}

static loom_status_t unpack(loom_exchange_t *ex, void *user, int src, const unsigned char *data,
                            size_t bytes)
{
    xfer_t *x = user;
    const ch_plan_t *p = x->p;
    for (size_t at = 0; at + HDR <= bytes;) {
        uint32_t task, n;
        uint64_t off;
        memcpy(&task, data + at, 4);
        memcpy(&n, data + at + 4, 4);
        memcpy(&off, data + at + 8, 8);
        if (task >= p->nt || at + HDR + n > bytes)
            return LOOM_ERROR(x->fs->ctx, LOOM_ERR_INTERNAL, "chunk transfer: a garbled piece");
        const ch_task_t *t = &p->t[task];
        int pos = chain_pos(t, x->me);
        if (pos <= 0)
            return LOOM_ERROR(x->fs->ctx, LOOM_ERR_INTERNAL,
                              "chunk transfer: a piece off its chain");
        LOOM_TRY(write_piece(x, t, off, data + at + HDR, n));
        if (pos < t->nchain - 1) {
            uint32_t dest = (uint32_t)t->chain[pos + 1];
            LOOM_TRY(loom_buf_append(x->fs->ctx, &x->next, &dest, 4));
            LOOM_TRY(loom_buf_append(x->fs->ctx, &x->next, data + at, HDR + n));
        }
        at += HDR + n;
    }
    return LOOM_OK;
}

/* The workers' part: the exchange, then every replica written here is committed. */
static loom_status_t run_workers(loom_chunks_t *fs, const ch_plan_t *p, xfer_t *x)
{
    loom_ctx_t *ctx = fs->ctx;
    x->fs = fs;
    x->p = p;
    x->me = loom_worker_index(ctx);
    x->local_fd = -1;
    x->sent = calloc(p->nt ? p->nt : 1, sizeof *x->sent);
    x->rep_fd = malloc((p->nt ? p->nt : 1) * sizeof *x->rep_fd);
    x->rep_crc = calloc(p->nt ? p->nt : 1, sizeof *x->rep_crc);
    x->w = calloc(p->nc ? p->nc : 1, sizeof *x->w);
    x->piece = malloc(CH_PIECE);
    if (!x->sent || !x->rep_fd || !x->rep_crc || !x->w || !x->piece)
        return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory for a chunk transfer");
    for (size_t i = 0; i < p->nt; i++)
        x->rep_fd[i] = -1;
    for (size_t i = 0; i < p->nc; i++)
        x->w[i].fd = -1;
    loom_exchange_opts_t eo = {.among = LOOM_AMONG_WORKERS,
                               .elem = 1,
                               .budget = 64u << 20,
                               .max_room = 4 * CH_PIECE + 4 * HDR,
                               .timer = NULL};
    loom_exchange_t *ex = NULL;
    LOOM_TRY(loom_exchange_create(ctx, &eo, &ex));
    loom_status_t st = loom_exchange_run(ex, pack, unpack, x);
    loom_exchange_destroy(&ex);
    for (size_t i = 0; st == LOOM_OK && i < p->nc; i++) {
        const ch_commit_t *c = &p->c[i];
        if (!is_holder(c, x->me)) continue;
        if (x->w[i].fd < 0 && c->fresh) st = ch_writer_open(fs, &x->w[i], c->id, 1);
        if (st == LOOM_OK && x->w[i].fd < 0) st = ch_writer_open(fs, &x->w[i], c->id, 0);
        if (st == LOOM_OK) st = ch_writer_commit(fs, &x->w[i], c->version, c->len);
    }
    if (st == LOOM_OK && p->nc) st = ch_sync_dir(fs);
    return st;
}

static void xfer_free(loom_chunks_t *fs, xfer_t *x, const ch_plan_t *p)
{
    if (x->w)
        for (size_t i = 0; i < p->nc; i++)
            ch_writer_abort(fs, &x->w[i]);
    if (x->rep_fd)
        for (size_t i = 0; i < p->nt; i++)
            if (x->rep_fd[i] >= 0) close(x->rep_fd[i]);
    if (x->rep_crc)
        for (size_t i = 0; i < p->nt; i++)
            ch_crcs_free(&x->rep_crc[i]);
    if (x->local_fd >= 0) close(x->local_fd);
    free(x->sent);
    free(x->rep_fd);
    free(x->rep_crc);
    free(x->w);
    free(x->piece);
    loom_buf_free(&x->fwd);
    loom_buf_free(&x->next);
    loom_buf_free(&x->bad);
}

loom_status_t ch_transfer(loom_chunks_t *fs, const ch_plan_t *p, loom_buf_t *bad)
{
    loom_ctx_t *ctx = fs->ctx;
    xfer_t x = {0};
    x.local_fd = -1;
    loom_status_t st = LOOM_OK;
    if (loom_is_worker(ctx)) st = run_workers(fs, p, &x);
    /* the replicas a source found damaged reach the master (also when the transfer failed) */
    loom_status_t gst = LOOM_OK;
    if (st != LOOM_ERR_LOST) {
        loom_buf_t all = {0};
        gst = ch_gather(fs, x.bad.data, x.bad.len, &all, NULL);
        if (gst == LOOM_OK && loom_is_master(ctx) && bad) {
            /* pairs (holder, id): the gather does not say whose, so each id is tagged by
             * the master from the replica table (the holder that was the task's source) */
            for (size_t at = 0; at + 8 <= all.len; at += 8) {
                uint64_t id;
                memcpy(&id, all.data + at, 8);
                for (size_t ti = 0; ti < p->nt; ti++)
                    if (p->c[p->t[ti].commit].id == id && p->t[ti].src_kind == CH_SRC_REPLICA) {
                        uint64_t pair[2] = {(uint64_t)ch_holder_start(fs, p->t[ti].chain[0]), id};
                        if (gst == LOOM_OK) gst = loom_buf_append(ctx, bad, pair, sizeof pair);
                        break;
                    }
            }
        }
        loom_buf_free(&all);
    }
    xfer_free(fs, &x, p);
    if (st == LOOM_OK) st = gst;
    st = ch_sync(fs, st);
    /* the master's table of replicas follows what was committed */
    if (st == LOOM_OK) st = ch_reps_note(fs, p);
    return st;
}
