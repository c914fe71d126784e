/* The record exchange: all-to-all in bounded, memory-budgeted rounds over the live members. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "dataplane/dataplane.h"

#define ROOM_CAP ((size_t)8 << 20) /* larger rounds first-touch more pages than they save */
#define ROOM_FLOOR ((size_t)64 << 10)
#define DEFAULT_BUDGET ((size_t)64 << 20)

struct loom_exchange {
    loom_ctx_t *ctx;
    MPI_Comm comm;
    int size, rank;
    int polite; /* this rank holds no data and may share a core: wait without spinning */
    size_t elem, room;
    MPI_Datatype type;
    loom_buf_t send, recv;
    size_t *sbytes; /* this round, per destination */
    int cur;        /* the destination appended last (segments are laid out in order) */
    int *scount, *sdispl, *rcount, *rdispl;
    uint64_t sent, rounds;
    char tpack[64], texch[64], tunpack[64];
};

loom_status_t loom_exchange_create(loom_ctx_t *ctx, const loom_exchange_opts_t *o,
                                   loom_exchange_t **out)
{
    *out = NULL;
    MPI_Comm comm = o->among == LOOM_AMONG_WORKERS ? loom_worker_comm(ctx) : loom_comm(ctx);
    if (comm == MPI_COMM_NULL)
        return LOOM_ERROR(ctx, LOOM_ERR_INTERNAL, "exchange: this rank is not a member");
    loom_exchange_t *x = calloc(1, sizeof *x);
    if (!x) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory for an exchange");
    x->ctx = ctx;
    x->comm = comm;
    x->type = MPI_DATATYPE_NULL;
    loom_status_t st = LOOM_OK;
    LOOM_MPI_GOTO(ctx, st, MPI_Comm_size(comm, &x->size), fail);
    LOOM_MPI_GOTO(ctx, st, MPI_Comm_rank(comm, &x->rank), fail);
    x->polite = o->among == LOOM_AMONG_JOB && loom_size(ctx) > 1 && loom_is_master(ctx);
    x->elem = o->elem ? o->elem : 1;
    size_t budget = o->budget ? o->budget : DEFAULT_BUDGET;
    size_t cap = o->max_room ? o->max_room : ROOM_CAP;
    size_t room = budget / 2 / (size_t)x->size;
    if (room > cap) room = cap;
    if (room < ROOM_FLOOR) room = ROOM_FLOOR;
    /* displacements are ints counted in elements */
    size_t limit = (size_t)INT_MAX / (size_t)x->size * x->elem;
    if (room > limit) room = limit;
    room -= room % x->elem;
    if (room < x->elem) room = x->elem;
    x->room = room;
    x->cur = 0;
    x->sbytes = calloc((size_t)x->size, sizeof *x->sbytes);
    int *c = calloc((size_t)x->size * 4, sizeof *c);
    if (!x->sbytes || !c) {
        free(c);
        st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory for exchange counts");
        goto fail;
    }
    x->scount = c;
    x->sdispl = c + x->size;
    x->rcount = c + 2 * x->size;
    x->rdispl = c + 3 * x->size;
    if (x->elem == 1) {
        x->type = MPI_BYTE;
    } else {
        if (x->elem > INT_MAX) {
            st = LOOM_ERROR(ctx, LOOM_ERR_USAGE, "exchange: elements of %zu bytes", x->elem);
            goto fail;
        }
        LOOM_MPI_GOTO(ctx, st, MPI_Type_contiguous((int)x->elem, MPI_BYTE, &x->type), fail);
        LOOM_MPI_GOTO(ctx, st, MPI_Type_commit(&x->type), fail);
    }
    if (o->timer) {
        snprintf(x->tpack, sizeof x->tpack, "%s_pack", o->timer);
        snprintf(x->texch, sizeof x->texch, "%s_exchange", o->timer);
        snprintf(x->tunpack, sizeof x->tunpack, "%s_unpack", o->timer);
    }
    *out = x;
    return LOOM_OK;
fail:
    loom_exchange_destroy(&x);
    return st;
}

void loom_exchange_destroy(loom_exchange_t **px)
{
    if (!px || !*px) return;
    loom_exchange_t *x = *px;
    if (x->type != MPI_DATATYPE_NULL && x->type != MPI_BYTE) MPI_Type_free(&x->type);
    loom_buf_free(&x->send);
    loom_buf_free(&x->recv);
    free(x->sbytes);
    free(x->scount);
    free(x);
    *px = NULL;
}

int loom_exchange_size(const loom_exchange_t *x)
{
    return x->size;
}
int loom_exchange_rank(const loom_exchange_t *x)
{
    return x->rank;
}
MPI_Comm loom_exchange_comm(const loom_exchange_t *x)
{
    return x->comm;
}
size_t loom_exchange_room(const loom_exchange_t *x)
{
    return x->room;
}
size_t loom_exchange_pending(const loom_exchange_t *x, int dest)
{
    return dest >= 0 && dest < x->size ? x->sbytes[dest] : 0;
}
uint64_t loom_exchange_bytes_sent(const loom_exchange_t *x)
{
    return x->sent;
}
uint64_t loom_exchange_rounds(const loom_exchange_t *x)
{
    return x->rounds;
}

loom_status_t loom_exchange_put(loom_exchange_t *x, int dest, const void *data, size_t bytes)
{
    if (dest < x->cur || dest >= x->size)
        return LOOM_ERROR(x->ctx, LOOM_ERR_INTERNAL,
                          "exchange: destination %d after %d (segments go in rank order)", dest,
                          x->cur);
    LOOM_TRY(loom_buf_append(x->ctx, &x->send, data, bytes));
    x->cur = dest;
    x->sbytes[dest] += bytes;
    return LOOM_OK;
}

loom_status_t loom_exchange_put_record(loom_exchange_t *x, int dest, const void *k, size_t klen,
                                       const void *v, size_t vlen)
{
    if (dest < x->cur || dest >= x->size)
        return LOOM_ERROR(x->ctx, LOOM_ERR_INTERNAL,
                          "exchange: destination %d after %d (segments go in rank order)", dest,
                          x->cur);
    size_t before = x->send.len;
    LOOM_TRY(loom_buf_put_record(x->ctx, &x->send, k, klen, v, vlen));
    x->cur = dest;
    x->sbytes[dest] += x->send.len - before;
    return LOOM_OK;
}

size_t loom_exchange_mark(const loom_exchange_t *x)
{
    return x->send.len;
}

void loom_exchange_patch(loom_exchange_t *x, size_t at, const void *data, size_t bytes)
{
    if (at <= x->send.len && bytes <= x->send.len - at) memcpy(x->send.data + at, data, bytes);
}

loom_status_t loom_exchange_claim(loom_exchange_t *x, const size_t *bytes, unsigned char **base,
                                  size_t *displ)
{
    if (x->send.len)
        return LOOM_ERROR(x->ctx, LOOM_ERR_INTERNAL, "exchange: claim after put in one round");
    size_t total = 0;
    for (int d = 0; d < x->size; d++) {
        displ[d] = total;
        x->sbytes[d] = bytes[d];
        total += bytes[d];
    }
    LOOM_TRY(loom_buf_reserve(x->ctx, &x->send, total));
    x->send.len = total;
    x->cur = x->size - 1;
    *base = x->send.data;
    return LOOM_OK;
}

/* Wait for a nonblocking collective: politely (sleeping between polls) on a
 * rank with nothing to send, plainly elsewhere. */
static loom_status_t wait_req(loom_exchange_t *x, MPI_Request *req)
{
    if (x->polite) return loom_wait(x->ctx, req, MPI_STATUS_IGNORE);
    return loom_wait_hot(x->ctx, req, MPI_STATUS_IGNORE);
}

/* Counts for MPI (elements; this rank's own segment never goes through MPI). */
static loom_status_t set_counts(loom_exchange_t *x)
{
    size_t pos = 0;
    for (int d = 0; d < x->size; d++) {
        size_t b = x->sbytes[d];
        if (b % x->elem)
            return LOOM_ERROR(x->ctx, LOOM_ERR_INTERNAL,
                              "exchange: %zu bytes for rank %d are not whole elements of %zu", b, d,
                              x->elem);
        if (b / x->elem > INT_MAX || pos / x->elem > INT_MAX)
            return LOOM_ERROR(x->ctx, LOOM_ERR_USAGE,
                              "exchange: a round of %zu bytes to rank %d is too large for MPI "
                              "(one record over 2 GiB?)",
                              b, d);
        x->sdispl[d] = (int)(pos / x->elem);
        x->scount[d] = d == x->rank ? 0 : (int)(b / x->elem);
        pos += b;
    }
    return LOOM_OK;
}

/* loom_agree, with the master's wait polite: a vote first, the agreement
 * with its message only when some rank failed. */
static loom_status_t agree(loom_exchange_t *x, loom_status_t st)
{
    int failed = st != LOOM_OK, any = 1;
    MPI_Request req;
    int e = MPI_Iallreduce(&failed, &any, 1, MPI_INT, MPI_MAX, x->comm, &req);
    if (e != MPI_SUCCESS)
        return loom_error_mpi(x->ctx, e, "MPI_Iallreduce (exchange)", __FILE__, __LINE__);
    LOOM_TRY(wait_req(x, &req));
    return any ? loom_agree(x->ctx, x->comm, st) : LOOM_OK;
}

static void timer(loom_exchange_t *x, const char *name, int start)
{
    if (!name[0]) return;
    if (start)
        loom_timer_start(x->ctx, name);
    else
        loom_timer_stop(x->ctx, name);
}

loom_status_t loom_exchange_run(loom_exchange_t *x, loom_exchange_pack_fn pack,
                                loom_exchange_unpack_fn unpack, void *user)
{
    loom_ctx_t *ctx = x->ctx;
    loom_status_t st = LOOM_OK;
    for (;;) {
        x->send.len = 0;
        x->cur = 0;
        memset(x->sbytes, 0, (size_t)x->size * sizeof *x->sbytes);
        int more = 0;
        timer(x, x->tpack, 1);
        if (st == LOOM_OK) st = pack(x, user, &more);
        if (st == LOOM_OK) st = set_counts(x);
        if (st != LOOM_OK) {
            memset(x->scount, 0, (size_t)x->size * sizeof *x->scount);
            more = 0;
        }
        timer(x, x->tpack, 0);

        /* Counts first (a failed rank sends none), so that every rank can
         * size its receive buffer before the vote. */
        timer(x, x->texch, 1);
        MPI_Request req;
        int e = MPI_Ialltoall(x->scount, 1, MPI_INT, x->rcount, 1, MPI_INT, x->comm, &req);
        if (e != MPI_SUCCESS) {
            st = loom_error_mpi(ctx, e, "MPI_Ialltoall (exchange counts)", __FILE__, __LINE__);
            timer(x, x->texch, 0);
            return st;
        }
        loom_status_t ws = wait_req(x, &req);
        if (ws != LOOM_OK) {
            timer(x, x->texch, 0);
            return ws;
        }
        size_t total = 0;
        for (int s = 0; s < x->size; s++) {
            if (total > INT_MAX && st == LOOM_OK)
                st = LOOM_ERROR(ctx, LOOM_ERR_USAGE, "exchange: a round too large for MPI");
            x->rdispl[s] = total > INT_MAX ? 0 : (int)total;
            total += (size_t)x->rcount[s];
        }
        if (st == LOOM_OK) {
            x->recv.len = 0;
            st = loom_buf_reserve(ctx, &x->recv, total * x->elem + 1);
        }

        /* One vote: did anyone fail (pack, counts, memory; or unpack in the
         * round before), and has anyone more to send? */
        int loc[2] = {st != LOOM_OK, more}, any[2] = {0, 0};
        e = MPI_Iallreduce(loc, any, 2, MPI_INT, MPI_MAX, x->comm, &req);
        if (e != MPI_SUCCESS) {
            st = loom_error_mpi(ctx, e, "MPI_Iallreduce (exchange vote)", __FILE__, __LINE__);
            timer(x, x->texch, 0);
            return st;
        }
        ws = wait_req(x, &req);
        if (ws != LOOM_OK) {
            timer(x, x->texch, 0);
            return ws;
        }
        if (any[0]) {
            timer(x, x->texch, 0);
            return loom_agree(ctx, x->comm, st);
        }
        e = MPI_Alltoallv(x->send.data, x->scount, x->sdispl, x->type, x->recv.data, x->rcount,
                          x->rdispl, x->type, x->comm);
        timer(x, x->texch, 0);
        if (e != MPI_SUCCESS)
            return loom_error_mpi(ctx, e, "MPI_Alltoallv (exchange)", __FILE__, __LINE__);
        x->sent += x->send.len;
        x->rounds++;

        /* Sources in rank order; this rank's own segment from the send buffer. */
        timer(x, x->tunpack, 1);
        for (int s = 0; s < x->size && st == LOOM_OK; s++) {
            const unsigned char *d;
            size_t n;
            if (s == x->rank) {
                d = x->send.data + (size_t)x->sdispl[s] * x->elem;
                n = x->sbytes[s];
            } else {
                d = x->recv.data + (size_t)x->rdispl[s] * x->elem;
                n = (size_t)x->rcount[s] * x->elem;
            }
            if (n) st = unpack(x, user, s, d, n);
        }
        timer(x, x->tunpack, 0);
        /* A failed unpack is told in the next round's vote, or below. */
        if (!any[1]) break;
    }
    return agree(x, st);
}
