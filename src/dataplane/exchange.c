/* The record exchange: all-to-all in bounded, memory-budgeted rounds over the live members,
 * flat or in two levels (within each node, then between nodes along lanes). */
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

    /* Nodes, known when the exchange may combine (opts->combine). */
    loom_exchange_combine_fn combine;
    int levels;         /* 1: flat, 2: through a relay on this node */
    int *node_of;       /* [size] the node of each member (its lowest rank) */
    int nnodes;         /* nodes among the members */
    uint64_t off_bytes; /* bytes this rank sent to other nodes */
    uint64_t off_msgs;  /* nonempty messages this rank sent to other nodes */
    /* Two levels: this node's communicator and the lanes between relays. */
    MPI_Comm node, lanes;
    int nsize, nrank;   /* members of this node, this rank's place among them */
    int *grp_off;       /* [nsize + 1] into grp_dest: the destinations each node member relays */
    int *grp_dest;      /* [size], ascending within each member's group */
    int ngrp;           /* destinations this rank relays (its group; this rank among them) */
    int nin, *in_src;   /* relays on other nodes that send here, ascending */
    int nout, *out_dst; /* the group less this rank, ascending: lanes' destinations */
    uint64_t *hs, *hr;  /* per-destination bytes: to relays [size], from members [nsize * ngrp] */
    int *c1s, *d1s, *c1r, *d1r; /* phase 1 over the node, bytes per member */
    int *hsc, *hsd, *hrc, *hrd; /* phase 1's sizes: counts per member */
    int *c2s, *d2s, *c2r, *d2r; /* phase 2 over the lanes, bytes per neighbour */
    size_t *gout;               /* [ngrp] combined bytes per destination of the group */
    size_t *gpos;               /* [nsize] reading position per member in phase 1's data */
    const unsigned char **seg;  /* [nsize] */
    size_t *slen;               /* [nsize] */
    loom_buf_t send1, recv1, send2, recv2;
};

static loom_status_t nodes_init(loom_exchange_t *x);

loom_status_t loom_exchange_create(loom_ctx_t *ctx, const loom_exchange_opts_t *o,
                                   loom_exchange_t **out)
{
    *out = NULL;
    MPI_Comm comm = o->among == LOOM_AMONG_WORKERS ? loom_worker_comm(ctx) : loom_comm(ctx);
    if (comm == MPI_COMM_NULL)
        return LOOM_ERROR(ctx, LOOM_ERR_INTERNAL, "exchange: this rank is not a member");
    int nodes_tried = 0;
    loom_exchange_t *x = calloc(1, sizeof *x);
    if (!x) {
        loom_status_t st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory for an exchange");
        return o->combine ? loom_agree(ctx, comm, st) : st;
    }
    x->ctx = ctx;
    x->node = x->lanes = MPI_COMM_NULL;
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
    x->levels = 1;
    if (o->combine) {
        x->combine = o->combine;
        nodes_tried = 1;
        st = nodes_init(x);
        if (st != LOOM_OK) goto fail;
    }
    if (o->timer) {
        snprintf(x->tpack, sizeof x->tpack, "%s_pack", o->timer);
        snprintf(x->texch, sizeof x->texch, "%s_exchange", o->timer);
        snprintf(x->tunpack, sizeof x->tunpack, "%s_unpack", o->timer);
    }
    *out = x;
    return LOOM_OK;
fail:
    /* the other members wait in nodes_init's first agreement: join it */
    if (o->combine && !nodes_tried) st = loom_agree(ctx, comm, st);
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
    if (x->node != MPI_COMM_NULL) MPI_Comm_free(&x->node);
    if (x->lanes != MPI_COMM_NULL) MPI_Comm_free(&x->lanes);
    free(x->node_of);
    free(x->grp_off);
    free(x->grp_dest);
    free(x->in_src);
    free(x->out_dst);
    free(x->hs);
    free(x->hr);
    free(x->c1s);
    free(x->gout);
    free(x->gpos);
    free(x->seg);
    free(x->slen);
    loom_buf_free(&x->send1);
    loom_buf_free(&x->recv1);
    loom_buf_free(&x->send2);
    loom_buf_free(&x->recv2);
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
int loom_exchange_levels(const loom_exchange_t *x)
{
    return x->levels;
}
int loom_exchange_nodes(const loom_exchange_t *x)
{
    return x->nnodes;
}
void loom_exchange_offnode(const loom_exchange_t *x, uint64_t *bytes, uint64_t *messages)
{
    *bytes = x->off_bytes;
    *messages = x->off_msgs;
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

/* ------------------------------------------------------------------ nodes and two levels */

loom_status_t loom_node_split(loom_ctx_t *ctx, MPI_Comm comm, MPI_Comm *node)
{
    int k = loom_node_ranks(ctx), rank = 0, e;
    MPI_Comm_rank(comm, &rank);
    if (k > 0) {
        /* pretend nodes: K consecutive ranks by rank at start, so that a
         * survivor stays on its node after a recovery */
        int start = loom_start_rank(ctx, loom_rank(ctx));
        e = MPI_Comm_split(comm, (start < 0 ? loom_rank(ctx) : start) / k, rank, node);
    } else {
        e = MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, node);
    }
    if (e != MPI_SUCCESS)
        return loom_error_mpi(ctx, e,
                              k > 0 ? "MPI_Comm_split (nodes)" : "MPI_Comm_split_type (nodes)",
                              __FILE__, __LINE__);
    return LOOM_OK;
}

/* Which node each member is on; for two levels, also this node's communicator,
 * the destinations each member relays and the lanes between relays. A
 * destination (node j, place l) is relayed on node i by the member at place
 * l mod (members of i), so every relay talks to one member per other node
 * (more where nodes are uneven), and each member receives from one relay per
 * node. Collective over the members. */
static loom_status_t nodes_init(loom_exchange_t *x)
{
    loom_ctx_t *ctx = x->ctx;
    int P = x->size;
    int *all = malloc((size_t)P * 3 * sizeof *all);
    x->node_of = malloc((size_t)P * sizeof *x->node_of);
    loom_status_t st = LOOM_OK;
    if (!all || !x->node_of) st = LOOM_ERROR(x->ctx, LOOM_ERR_NOMEM, "out of memory for node maps");
    st = loom_agree(ctx, x->comm, st);
    if (st != LOOM_OK) goto out;
    st = loom_node_split(ctx, x->comm, &x->node);
    if (st != LOOM_OK) goto out;
    LOOM_MPI_GOTO(ctx, st, MPI_Comm_size(x->node, &x->nsize), out);
    LOOM_MPI_GOTO(ctx, st, MPI_Comm_rank(x->node, &x->nrank), out);
    int mine[3] = {x->rank, x->nrank, x->nsize};
    LOOM_MPI_GOTO(ctx, st, MPI_Allreduce(MPI_IN_PLACE, &mine[0], 1, MPI_INT, MPI_MIN, x->node),
                  out);
    LOOM_MPI_GOTO(ctx, st, MPI_Allgather(mine, 3, MPI_INT, all, 3, MPI_INT, x->comm), out);
    x->nnodes = 0;
    for (int r = 0; r < P; r++) {
        x->node_of[r] = all[3 * r];
        if (all[3 * r + 1] == 0) x->nnodes++;
    }
    int tl = loom_two_level(ctx);
    x->levels = tl == 1 || (tl < 0 && x->nnodes > 1 && x->nnodes < P) ? 2 : 1;
    if (x->levels == 1) {
        MPI_Comm_free(&x->node);
        goto out;
    }

    int c = x->nsize, me = x->rank, mynode = x->node_of[me];
    x->grp_off = calloc((size_t)c + 1, sizeof *x->grp_off);
    x->grp_dest = malloc((size_t)P * sizeof *x->grp_dest);
    x->in_src = malloc((size_t)P * sizeof *x->in_src);
    x->out_dst = malloc((size_t)P * sizeof *x->out_dst);
    x->hs = malloc((size_t)P * sizeof *x->hs);
    x->c1s = malloc((size_t)(8 * c + 4 * P) * sizeof *x->c1s);
    x->gpos = malloc((size_t)c * sizeof *x->gpos);
    x->seg = malloc((size_t)c * sizeof *x->seg);
    x->slen = malloc((size_t)c * sizeof *x->slen);
    if (!x->grp_off || !x->grp_dest || !x->in_src || !x->out_dst || !x->hs || !x->c1s || !x->gpos ||
        !x->seg || !x->slen)
        st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory for the two-level exchange");
    if (st == LOOM_OK) {
        int *ib = x->c1s;
        x->d1s = ib + c;
        x->c1r = ib + 2 * c;
        x->d1r = ib + 3 * c;
        x->hsc = ib + 4 * c;
        x->hsd = ib + 5 * c;
        x->hrc = ib + 6 * c;
        x->hrd = ib + 7 * c;
        x->c2s = ib + 8 * c;
        x->d2s = x->c2s + P;
        x->c2r = x->c2s + 2 * P;
        x->d2r = x->c2s + 3 * P;
        /* groups: destinations by the place of their relay on this node */
        for (int d = 0; d < P; d++)
            x->grp_off[all[3 * d + 1] % c + 1]++;
        for (int m = 0; m < c; m++)
            x->grp_off[m + 1] += x->grp_off[m];
        int *fill = x->c1s; /* scratch until the first round */
        memcpy(fill, x->grp_off, (size_t)c * sizeof *fill);
        for (int d = 0; d < P; d++)
            x->grp_dest[fill[all[3 * d + 1] % c]++] = d;
        x->ngrp = x->grp_off[x->nrank + 1] - x->grp_off[x->nrank];
        for (int m = 0; m < c; m++) {
            x->hsc[m] = x->grp_off[m + 1] - x->grp_off[m];
            x->hsd[m] = x->grp_off[m];
            x->hrc[m] = x->ngrp;
            x->hrd[m] = m * x->ngrp;
        }
        x->nout = x->nin = 0;
        const int *g = x->grp_dest + x->grp_off[x->nrank];
        for (int j = 0; j < x->ngrp; j++)
            if (g[j] != me) x->out_dst[x->nout++] = g[j];
        /* relay r = (node i, place a) sends here when this place mod |i| is a */
        for (int r = 0; r < P; r++)
            if (x->node_of[r] != mynode && all[3 * r + 1] == x->nrank % all[3 * r + 2])
                x->in_src[x->nin++] = r;
        x->hr = malloc(((size_t)c * (size_t)x->ngrp + 1) * sizeof *x->hr);
        x->gout = malloc(((size_t)x->ngrp + 1) * sizeof *x->gout);
        if (!x->hr || !x->gout)
            st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory for the two-level exchange");
    }
    st = loom_agree(ctx, x->comm, st);
    if (st != LOOM_OK) goto out;
    /* equal weights, given as arrays (MPI_UNWEIGHTED trips gcc's bounds checks) */
    for (int i = 0; i < P; i++)
        x->c2s[i] = x->c2r[i] = 1;
    LOOM_MPI_GOTO(ctx, st,
                  MPI_Dist_graph_create_adjacent(x->comm, x->nin, x->in_src, x->c2r, x->nout,
                                                 x->out_dst, x->c2s, MPI_INFO_NULL, 0, &x->lanes),
                  out);
out:
    free(all);
    return st;
}

/* Add up a round's bytes for the members of other nodes (flat exchange). */
static void count_offnode(loom_exchange_t *x)
{
    if (!x->node_of) return;
    int mine = x->node_of[x->rank];
    for (int d = 0; d < x->size; d++)
        if (x->node_of[d] != mine && x->sbytes[d]) {
            x->off_bytes += x->sbytes[d];
            x->off_msgs++;
        }
}

/* A collective of the exchange failed: stop the timer and revoke the two
 * levels' own communicators (ULFM; none when flat), so that no member stays
 * in one of them waiting for a rank that left; the job's are revoked by the
 * runtime. */
static loom_status_t two_level_failed(loom_exchange_t *x, loom_status_t st)
{
    timer(x, x->texch, 0);
    loom_comm_revoke(x->ctx, x->node);
    loom_comm_revoke(x->ctx, x->lanes);
    return st;
}

static loom_status_t mpi_fail(loom_exchange_t *x, int e, const char *call)
{
    return two_level_failed(x, loom_error_mpi(x->ctx, e, call, __FILE__, __LINE__));
}

/* Start a nonblocking collective and wait for it (politely on a rank with
 * nothing to send); the exchange timer stops on failure. */
#define XWAIT(x, call, name)                                                                       \
    do {                                                                                           \
        MPI_Request req_;                                                                          \
        int e_ = (call(req_));                                                                     \
        if (e_ != MPI_SUCCESS) return mpi_fail((x), e_, (name));                                   \
        loom_status_t w_ = wait_req((x), &req_);                                                   \
        if (w_ != LOOM_OK) return two_level_failed((x), w_);                                       \
    } while (0)

/* A vote of every member: did anyone fail, and (two ints) has anyone more. */
static loom_status_t vote(loom_exchange_t *x, int *loc, int *any, int n)
{
#define VOTE_CALL(r) MPI_Iallreduce(loc, any, n, MPI_INT, MPI_MAX, x->comm, &r)
    XWAIT(x, VOTE_CALL, "MPI_Iallreduce (exchange vote)");
#undef VOTE_CALL
    return LOOM_OK;
}

/* Sum bytes into an MPI count and displacement, or say the round is too large. */
static loom_status_t to_int(loom_exchange_t *x, size_t bytes, size_t at, int *count, int *displ)
{
    if (bytes > INT_MAX || at > INT_MAX)
        return LOOM_ERROR(x->ctx, LOOM_ERR_USAGE,
                          "exchange: a round of %zu bytes is too large for MPI (one record over "
                          "2 GiB?)",
                          at + bytes);
    *count = (int)bytes;
    *displ = (int)at;
    return LOOM_OK;
}

/* The two-level exchange. Each round: pack as in the flat exchange; within
 * the node, every member sends each destination's segment to that
 * destination's relay (phase 1: MPI_Ialltoallv over the node's shared
 * memory); each relay combines the node's segments for each destination of
 * its group into one; then relays send them along the lanes (phase 2:
 * MPI_Ineighbor_alltoallv), one message per destination on another node.
 * Each member unpacks what its relays sent, in rank order of the relays.
 * Failures are voted on before each data movement, as in the flat exchange. */
static loom_status_t run_two_level(loom_exchange_t *x, loom_exchange_pack_fn pack,
                                   loom_exchange_unpack_fn unpack, void *user)
{
    loom_ctx_t *ctx = x->ctx;
    loom_status_t st = LOOM_OK;
    int c = x->nsize, G = x->ngrp, P = x->size;
    const int *grp = x->grp_dest + x->grp_off[x->nrank];
    for (;;) {
        x->send.len = 0;
        x->cur = 0;
        memset(x->sbytes, 0, (size_t)P * sizeof *x->sbytes);
        int more = 0;
        timer(x, x->tpack, 1);
        if (st == LOOM_OK) st = pack(x, user, &more);
        if (st == LOOM_OK) st = set_counts(x);
        if (st != LOOM_OK) {
            memset(x->sbytes, 0, (size_t)P * sizeof *x->sbytes);
            more = 0;
        }
        for (int j = 0; j < P; j++)
            x->hs[j] = x->sbytes[x->grp_dest[j]];
        timer(x, x->tpack, 0);

        /* phase 1's sizes: each member tells each relay its bytes per destination */
        timer(x, x->texch, 1);
#define HCALL(r)                                                                                   \
    MPI_Ialltoallv(x->hs, x->hsc, x->hsd, MPI_UINT64_T, x->hr, x->hrc, x->hrd, MPI_UINT64_T,       \
                   x->node, &r)
        XWAIT(x, HCALL, "MPI_Ialltoallv (exchange sizes within the node)");
#undef HCALL
        size_t at = 0;
        for (int m = 0; m < c; m++) {
            size_t b = 0;
            for (int j = 0; j < G; j++)
                b += x->hr[(size_t)m * G + j];
            if (st == LOOM_OK) st = to_int(x, b, at, &x->c1r[m], &x->d1r[m]);
            at += b;
        }
        if (st == LOOM_OK) {
            x->recv1.len = 0;
            st = loom_buf_reserve(ctx, &x->recv1, at + 1);
        }
        size_t sat = 0;
        for (int m = 0; m < c && st == LOOM_OK; m++) {
            size_t b = 0;
            for (int j = x->grp_off[m]; j < x->grp_off[m + 1]; j++)
                b += x->hs[j];
            st = to_int(x, b, sat, &x->c1s[m], &x->d1s[m]);
            sat += b;
        }
        if (st == LOOM_OK) {
            x->send1.len = 0;
            st = loom_buf_reserve(ctx, &x->send1, sat + 1);
        }
        if (st == LOOM_OK) {
            /* the round's segments in the relays' order */
            unsigned char *o = x->send1.data;
            for (int j = 0; j < P; j++) {
                int d = x->grp_dest[j];
                if (x->sbytes[d])
                    memcpy(o, x->send.data + (size_t)x->sdispl[d] * x->elem, x->sbytes[d]);
                o += x->sbytes[d];
            }
        }
        if (st != LOOM_OK) memset(x->c1s, 0, (size_t)c * sizeof *x->c1s);
        int loc[2] = {st != LOOM_OK, more}, any[2] = {0, 0};
        LOOM_TRY(vote(x, loc, any, 2));
        if (any[0]) {
            timer(x, x->texch, 0);
            return loom_agree(ctx, x->comm, st);
        }
        int last = !any[1];
#define P1CALL(r)                                                                                  \
    MPI_Ialltoallv(x->send1.data, x->c1s, x->d1s, MPI_BYTE, x->recv1.data, x->c1r, x->d1r,         \
                   MPI_BYTE, x->node, &r)
        XWAIT(x, P1CALL, "MPI_Ialltoallv (exchange within the node)");
#undef P1CALL

        /* each destination of the group, combined from the node's segments */
        x->send2.len = 0;
        for (int m = 0; m < c; m++)
            x->gpos[m] = (size_t)x->d1r[m];
        for (int j = 0; j < G; j++) {
            for (int m = 0; m < c; m++) {
                x->slen[m] = x->hr[(size_t)m * G + j];
                x->seg[m] = x->recv1.data + x->gpos[m];
                x->gpos[m] += x->slen[m];
            }
            size_t before = x->send2.len;
            if (st == LOOM_OK)
                st = x->combine(x, user, grp[j], c, x->seg, x->slen, last, &x->send2);
            if (st == LOOM_OK && (x->send2.len - before) % x->elem)
                st = LOOM_ERROR(ctx, LOOM_ERR_INTERNAL,
                                "exchange: the combiner left a part element for rank %d", grp[j]);
            x->gout[j] = st == LOOM_OK ? x->send2.len - before : 0;
        }

        /* phase 2: along the lanes, sizes then data */
        size_t self_at = 0, self_len = 0, pos = 0;
        for (int j = 0, o = 0; j < G; j++) {
            if (grp[j] == x->rank) {
                self_at = pos;
                self_len = x->gout[j];
            } else {
                if (st == LOOM_OK) st = to_int(x, x->gout[j], pos, &x->c2s[o], &x->d2s[o]);
                o++;
            }
            pos += x->gout[j];
        }
        if (st != LOOM_OK) {
            memset(x->c2s, 0, (size_t)x->nout * sizeof *x->c2s);
            self_len = 0;
        }
#define C2CALL(r) MPI_Ineighbor_alltoall(x->c2s, 1, MPI_INT, x->c2r, 1, MPI_INT, x->lanes, &r)
        XWAIT(x, C2CALL, "MPI_Ineighbor_alltoall (exchange sizes between nodes)");
#undef C2CALL
        at = 0;
        for (int i = 0; i < x->nin; i++) {
            x->d2r[i] = at > INT_MAX ? 0 : (int)at;
            at += (size_t)x->c2r[i];
        }
        if (st == LOOM_OK && at > INT_MAX)
            st = LOOM_ERROR(ctx, LOOM_ERR_USAGE, "exchange: a round too large for MPI");
        if (st == LOOM_OK) {
            x->recv2.len = 0;
            st = loom_buf_reserve(ctx, &x->recv2, at + 1);
        }
        int loc2 = st != LOOM_OK, any2 = 0;
        LOOM_TRY(vote(x, &loc2, &any2, 1));
        if (any2) {
            timer(x, x->texch, 0);
            return loom_agree(ctx, x->comm, st);
        }
#define P2CALL(r)                                                                                  \
    MPI_Ineighbor_alltoallv(x->send2.data, x->c2s, x->d2s, MPI_BYTE, x->recv2.data, x->c2r,        \
                            x->d2r, MPI_BYTE, x->lanes, &r)
        XWAIT(x, P2CALL, "MPI_Ineighbor_alltoallv (exchange between nodes)");
#undef P2CALL
        timer(x, x->texch, 0);
        x->sent += x->send.len;
        x->rounds++;
        for (int o = 0; o < x->nout; o++)
            if (x->c2s[o]) {
                x->off_bytes += (uint64_t)x->c2s[o];
                x->off_msgs++;
            }

        /* the relays' segments in rank order, this rank's own from send2 */
        timer(x, x->tunpack, 1);
        for (int i = 0, self = 0; st == LOOM_OK && (i < x->nin || !self);) {
            if (!self && (i == x->nin || x->rank < x->in_src[i])) {
                if (self_len) st = unpack(x, user, x->rank, x->send2.data + self_at, self_len);
                self = 1;
            } else {
                if (x->c2r[i])
                    st =
                        unpack(x, user, x->in_src[i], x->recv2.data + x->d2r[i], (size_t)x->c2r[i]);
                i++;
            }
        }
        timer(x, x->tunpack, 0);
        if (last) break;
    }
    return agree(x, st);
}

loom_status_t loom_exchange_run(loom_exchange_t *x, loom_exchange_pack_fn pack,
                                loom_exchange_unpack_fn unpack, void *user)
{
    if (x->levels == 2) return run_two_level(x, pack, unpack, user);
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
#define CCALL(r) MPI_Ialltoall(x->scount, 1, MPI_INT, x->rcount, 1, MPI_INT, x->comm, &r)
        XWAIT(x, CCALL, "MPI_Ialltoall (exchange counts)");
#undef CCALL
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
        LOOM_TRY(vote(x, loc, any, 2));
        if (any[0]) {
            timer(x, x->texch, 0);
            return loom_agree(ctx, x->comm, st);
        }
        int e = MPI_Alltoallv(x->send.data, x->scount, x->sdispl, x->type, x->recv.data, x->rcount,
                              x->rdispl, x->type, x->comm);
        timer(x, x->texch, 0);
        if (e != MPI_SUCCESS)
            return loom_error_mpi(ctx, e, "MPI_Alltoallv (exchange)", __FILE__, __LINE__);
        x->sent += x->send.len;
        x->rounds++;
        count_offnode(x);

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
