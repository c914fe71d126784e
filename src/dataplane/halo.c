/* The halo exchange: each rank receives exactly the owned values it named once; ranks of
 * one node write into each other's receive buffers, in a POSIX shared-memory segment. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "dataplane/dataplane.h"

struct loom_halo {
    loom_ctx_t *ctx;
    MPI_Comm comm;
    int size, rank;
    size_t elem;
    uint32_t *send; /* local offsets to send, destination by destination */
    size_t nsend, nrecv;
    int *scnt, *sdis, *rcnt, *rdis; /* in elements */
    unsigned char *sbuf;
    MPI_Datatype type;
    /* the receive buffer: in the node's segment, or private */
    unsigned char *buf;
    /* shared: the node's segment, where each rank of comm on this node wants
     * this rank's values (NULL: not on the node), and the counts for
     * MPI_Alltoallv with the node's ranks left out */
    loom_nodemem_t *mem;
    size_t nrecv_shared;
    unsigned char **to;
    int *scnt_off, *rcnt_off;
    int off_node; /* some rank of comm needs MPI_Alltoallv in shared rounds */
};

void loom_halo_destroy(loom_halo_t **hp)
{
    if (!hp || !*hp) return;
    loom_halo_t *h = *hp;
    if (h->type != MPI_DATATYPE_NULL) MPI_Type_free(&h->type);
    if (h->mem)
        loom_nodemem_destroy(&h->mem);
    else
        free(h->buf);
    free(h->to);
    free(h->scnt_off);
    free(h->send);
    free(h->scnt);
    free(h->sbuf);
    free(h);
    *hp = NULL;
}

void *loom_halo_buffer(loom_halo_t *h)
{
    return h->buf;
}

size_t loom_halo_received_shared(const loom_halo_t *h)
{
    return h->nrecv_shared;
}

size_t loom_halo_sent(const loom_halo_t *h)
{
    return h->nsend;
}

size_t loom_halo_received(const loom_halo_t *h)
{
    return h->nrecv;
}

/* Counts per owner of the (ascending) needed ids; 0 or a usage error. */
static loom_status_t count_owners(loom_ctx_t *ctx, const uint64_t *bounds, int size,
                                  const uint64_t *need, size_t nneed, int *cnt)
{
    int r = 0;
    size_t run = 0;
    for (size_t i = 0; i < nneed; i++) {
        if (i > 0 && need[i] <= need[i - 1])
            return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "halo: needed ids are not ascending");
        if (need[i] < bounds[0] || need[i] >= bounds[size])
            return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "halo: id %llu is outside every range",
                              (unsigned long long)need[i]);
        while (need[i] >= bounds[r + 1]) {
            cnt[r++] = (int)run;
            run = 0;
        }
        if (++run > INT_MAX)
            return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "halo: more than %d ids from one rank", INT_MAX);
    }
    for (; r < size; r++) {
        cnt[r] = (int)run;
        run = 0;
    }
    return LOOM_OK;
}

/* The receive buffers of the node's ranks in one shared segment; where every
 * rank of the node wants this rank's values; the counts that leave the node's
 * ranks to MPI. Or a private buffer when asked (LOOM_HALO_PRIVATE), or when the
 * node holds this rank alone or has no shared memory. Collective over comm; the caller agrees on
 * the result. */
static loom_status_t shared_init(loom_halo_t *h, unsigned flags)
{
    loom_ctx_t *ctx = h->ctx;
    int P = h->size;
    int *peer_rdis = malloc((size_t)P * sizeof *peer_rdis);
    h->to = calloc((size_t)P, sizeof *h->to);
    h->scnt_off = malloc((size_t)P * 2 * sizeof *h->scnt_off);
    loom_status_t st = LOOM_OK;
    if (!peer_rdis || !h->to || !h->scnt_off)
        st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory for a halo exchange");
    /* no rank enters the collectives below alone */
    st = loom_agree(ctx, h->comm, st);
    if (st == LOOM_OK && !(flags & LOOM_HALO_PRIVATE))
        st = loom_nodemem_create(ctx, h->comm, h->nrecv * h->elem, &h->mem);
    if (st != LOOM_OK) goto out;
    h->rcnt_off = h->scnt_off + P;
    /* where each rank of the node wants this rank's values, by its rdis */
    LOOM_MPI_GOTO(ctx, st, MPI_Alltoall(h->rdis, 1, MPI_INT, peer_rdis, 1, MPI_INT, h->comm), out);
    int mpi = !h->mem; /* this rank's rounds need MPI_Alltoallv */
    for (int r = 0; r < P; r++) {
        unsigned char *at = h->mem ? loom_nodemem_of(h->mem, r) : NULL;
        h->to[r] = at ? at + (size_t)peer_rdis[r] * h->elem : NULL;
        h->scnt_off[r] = at ? 0 : h->scnt[r];
        h->rcnt_off[r] = at ? 0 : h->rcnt[r];
        mpi |= !at && r != h->rank && (h->scnt[r] || h->rcnt[r]);
        if (at) h->nrecv_shared += (size_t)h->rcnt[r];
    }
    /* MPI_Alltoallv is collective over comm: skipped only if no rank needs it */
    LOOM_MPI_GOTO(ctx, st, MPI_Allreduce(&mpi, &h->off_node, 1, MPI_INT, MPI_MAX, h->comm), out);
    h->scnt_off[h->rank] = h->rcnt_off[h->rank] = 0; /* its own share is copied in place */
    if (h->mem) {
        h->buf = loom_nodemem_mine(h->mem);
    } else {
        h->buf = malloc(h->nrecv ? h->nrecv * h->elem : 1);
        if (!h->buf) st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory for mirrored values");
    }
out:
    free(peer_rdis);
    return st;
}

loom_status_t loom_halo_create(loom_ctx_t *ctx, MPI_Comm comm, const uint64_t *bounds,
                               const uint64_t *need, size_t nneed, size_t elem, unsigned flags,
                               loom_halo_t **hp)
{
    *hp = NULL;
    int size = 1, rank = 0;
    MPI_Comm_size(comm, &size);
    MPI_Comm_rank(comm, &rank);
    loom_halo_t *h = calloc(1, sizeof *h);
    uint64_t *ids = NULL;
    loom_status_t st = LOOM_OK;
    if (h) {
        h->ctx = ctx;
        h->comm = comm;
        h->size = size;
        h->rank = rank;
        h->elem = elem;
        h->type = MPI_DATATYPE_NULL;
        h->scnt = calloc((size_t)size * 4, sizeof *h->scnt);
    }
    if (!h || !h->scnt) st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory for a halo exchange");
    if (st == LOOM_OK && bounds[rank + 1] - bounds[rank] > UINT32_MAX)
        st = LOOM_ERROR(ctx, LOOM_ERR_USAGE, "halo: a range of 2^32 ids or more");
    if (st == LOOM_OK) {
        h->sdis = h->scnt + size;
        h->rcnt = h->sdis + size;
        h->rdis = h->rcnt + size;
        /* what this rank needs from r is what r sends it: receive counts first */
        st = count_owners(ctx, bounds, size, need, nneed, h->rcnt);
    }
    st = loom_agree(ctx, comm, st);
    if (st == LOOM_OK)
        LOOM_MPI_KEEP(ctx, st, MPI_Alltoall(h->rcnt, 1, MPI_INT, h->scnt, 1, MPI_INT, comm));
    if (st == LOOM_OK) {
        size_t s = 0, r = 0;
        for (int i = 0; i < size; i++) {
            h->sdis[i] = (int)s;
            h->rdis[i] = (int)r;
            s += (size_t)h->scnt[i];
            r += (size_t)h->rcnt[i];
            if (s > INT_MAX || r > INT_MAX)
                st =
                    LOOM_ERROR(ctx, LOOM_ERR_USAGE, "halo: more than %d ids in one round", INT_MAX);
        }
        h->nsend = s;
        h->nrecv = r;
        ids = malloc((s ? s : 1) * sizeof *ids);
        h->send = malloc((s ? s : 1) * sizeof *h->send);
        h->sbuf = malloc((s ? s : 1) * elem);
        if (st == LOOM_OK && (!ids || !h->send || !h->sbuf))
            st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory for a halo exchange");
    }
    st = loom_agree(ctx, comm, st);
    if (st == LOOM_OK)
        LOOM_MPI_KEEP(ctx, st,
                      MPI_Alltoallv(need, h->rcnt, h->rdis, MPI_UINT64_T, ids, h->scnt, h->sdis,
                                    MPI_UINT64_T, comm));
    if (st == LOOM_OK) {
        for (size_t i = 0; i < h->nsend && st == LOOM_OK; i++) {
            if (ids[i] < bounds[rank] || ids[i] >= bounds[rank + 1])
                st = LOOM_ERROR(ctx, LOOM_ERR_INTERNAL, "halo: asked for id %llu, not owned here",
                                (unsigned long long)ids[i]);
            else
                h->send[i] = (uint32_t)(ids[i] - bounds[rank]);
        }
        if (st == LOOM_OK) {
            int e = MPI_Type_contiguous((int)elem, MPI_BYTE, &h->type);
            if (e == MPI_SUCCESS) e = MPI_Type_commit(&h->type);
            if (e != MPI_SUCCESS)
                st = loom_error_mpi(ctx, e, "MPI_Type_commit", __FILE__, __LINE__);
        }
    }
    free(ids);
    st = loom_agree(ctx, comm, st);
    if (st == LOOM_OK) st = loom_agree(ctx, comm, shared_init(h, flags));
    if (st != LOOM_OK) {
        loom_halo_destroy(&h);
        return st;
    }
    *hp = h;
    return LOOM_OK;
}

/* Pack each destination's values: into its buffer when it is on this node and
 * the exchange goes into the halo's buffer (to[d]), this rank's own share
 * straight into `out`, the rest into the send buffer. CONV turns a local value
 * into a sent one. */
#define HALO_PACK(TL, TS, CONV)                                                                    \
    do {                                                                                           \
        const TL *src_ = local;                                                                    \
        _Pragma("omp parallel if (h->nsend > ((size_t)1 << 16))") for (int d_ = 0; d_ < h->size;   \
                                                                       d_++)                       \
        {                                                                                          \
            const size_t a_ = (size_t)h->sdis[d_];                                                 \
            const size_t c_ = (size_t)h->scnt[d_];                                                 \
            TS *to_ = shared && h->to[d_] ? (TS *)(void *)h->to[d_]                                \
                      : d_ == h->rank     ? (TS *)out + h->rdis[h->rank]                           \
                                          : (TS *)(void *)h->sbuf + a_;                                \
            const uint32_t *s_ = h->send + a_;                                                     \
            _Pragma("omp for schedule(static) nowait") for (size_t i_ = 0; i_ < c_; i_++)          \
                to_[i_] = CONV(src_[s_[i_]]);                                                      \
        }                                                                                          \
    } while (0)

#define HALO_SAME(x) (x)
#define HALO_TO_F32(x) ((float)(x))

/* Shared rounds begin when every rank of the node has stopped reading its
 * buffer (it has entered this round) and end when every write is done. */
static loom_status_t node_barrier(loom_halo_t *h)
{
    return loom_nodemem_barrier(h->mem);
}

static loom_status_t halo_send(loom_halo_t *h, void *out, int shared)
{
    if (shared && !h->off_node) return node_barrier(h);
    int me = h->rank, sc = h->scnt[me], rc = h->rcnt[me];
    int *scnt = shared ? h->scnt_off : h->scnt, *rcnt = shared ? h->rcnt_off : h->rcnt;
    h->scnt[me] = h->rcnt[me] = 0;
    int e = MPI_Alltoallv(h->sbuf, scnt, h->sdis, h->type, out, rcnt, h->rdis, h->type, h->comm);
    h->scnt[me] = sc;
    h->rcnt[me] = rc;
    if (e != MPI_SUCCESS) {
        /* the node's ranks must not wait for this one at the closing barrier */
        if (shared) loom_nodemem_revoke(h->mem);
        return loom_error_mpi(h->ctx, e, "MPI_Alltoallv", __FILE__, __LINE__);
    }
    return shared ? node_barrier(h) : LOOM_OK;
}

loom_status_t loom_halo_exchange(loom_halo_t *h, const void *local, void *out)
{
    const size_t elem = h->elem;
    const int shared = h->mem && out == h->buf;
    if (shared) LOOM_TRY(node_barrier(h));
    if (elem == 8) {
        HALO_PACK(uint64_t, uint64_t, HALO_SAME);
    } else if (elem == 4) {
        HALO_PACK(uint32_t, uint32_t, HALO_SAME);
    } else {
        const unsigned char *src = local;
        for (int d = 0; d < h->size; d++) {
            const size_t a = (size_t)h->sdis[d];
            const size_t c = (size_t)h->scnt[d];
            unsigned char *to = shared && h->to[d] ? h->to[d]
                                : d == h->rank ? (unsigned char *)out + (size_t)h->rdis[d] * elem
                                               : h->sbuf + a * elem;
            for (size_t i = 0; i < c; i++)
                memcpy(to + i * elem, src + (size_t)h->send[a + i] * elem, elem);
        }
    }
    return halo_send(h, out, shared);
}

loom_status_t loom_halo_exchange_f32(loom_halo_t *h, const double *local, float *out)
{
    if (h->elem != sizeof(float))
        return LOOM_ERROR(h->ctx, LOOM_ERR_INTERNAL,
                          "halo: a float exchange over %zu-byte elements", h->elem);
    const int shared = h->mem && (void *)out == h->buf;
    if (shared) LOOM_TRY(node_barrier(h));
    HALO_PACK(double, float, HALO_TO_F32);
    return halo_send(h, out, shared);
}
