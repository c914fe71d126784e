/* The halo exchange: each rank receives exactly the owned values it named once. */
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
    MPI_Request req;      /* the round in flight (MPI_REQUEST_NULL when none) */
    int inflight;         /* a round was started and not finished */
    int saved_s, saved_r; /* this rank's own counts, zeroed while a round is in flight */
};

void loom_halo_destroy(loom_halo_t **hp)
{
    if (!hp || !*hp) return;
    loom_halo_t *h = *hp;
    if (h->type != MPI_DATATYPE_NULL) MPI_Type_free(&h->type);
    free(h->send);
    free(h->scnt);
    free(h->sbuf);
    free(h);
    *hp = NULL;
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

loom_status_t loom_halo_create(loom_ctx_t *ctx, MPI_Comm comm, const uint64_t *bounds,
                               const uint64_t *need, size_t nneed, size_t elem, loom_halo_t **hp)
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
        h->req = MPI_REQUEST_NULL;
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
    if (st != LOOM_OK) {
        loom_halo_destroy(&h);
        return st;
    }
    *hp = h;
    return LOOM_OK;
}

/* Pack the send buffer, this rank's own share straight into `out`, and
 * exchange the rest: the own share is left out of MPI_Alltoallv (its counts
 * zeroed for the call) so it is copied once, not twice. CONV turns a local
 * value into a sent one. */
#define HALO_PACK(TL, TS, CONV)                                                                    \
    do {                                                                                           \
        const TL *src_ = local;                                                                    \
        TS *snd_ = (TS *)(void *)h->sbuf, *own_ = (TS *)out + h->rdis[h->rank];                    \
        const size_t o0_ = (size_t)h->sdis[h->rank], o1_ = o0_ + (size_t)h->scnt[h->rank];         \
        _Pragma("omp parallel for schedule(static) if (n > ((size_t)1 << 16))") for (size_t i = 0; \
                                                                                     i < n; i++)   \
        {                                                                                          \
            TL x_ = src_[send[i]];                                                                 \
            if (i >= o0_ && i < o1_)                                                               \
                own_[i - o0_] = CONV(x_);                                                          \
            else                                                                                   \
                snd_[i] = CONV(x_);                                                                \
        }                                                                                          \
    } while (0)

#define HALO_SAME(x) (x)
#define HALO_TO_F32(x) ((float)(x))

/* Start the round: MPI_Ialltoallv of everything but the own share (its
 * counts zeroed until the round completes: the arrays must not change while
 * the collective is in flight). */
static loom_status_t halo_send(loom_halo_t *h, void *out)
{
    int me = h->rank;
    h->saved_s = h->scnt[me];
    h->saved_r = h->rcnt[me];
    h->scnt[me] = h->rcnt[me] = 0;
    int e = MPI_Ialltoallv(h->sbuf, h->scnt, h->sdis, h->type, out, h->rcnt, h->rdis, h->type,
                           h->comm, &h->req);
    if (e != MPI_SUCCESS) {
        h->scnt[me] = h->saved_s;
        h->rcnt[me] = h->saved_r;
        h->req = MPI_REQUEST_NULL;
        return loom_error_mpi(h->ctx, e, "MPI_Ialltoallv", __FILE__, __LINE__);
    }
    h->inflight = 1;
    return LOOM_OK;
}

int loom_halo_test(loom_halo_t *h)
{
    int done = 1;
    if (h->req != MPI_REQUEST_NULL) MPI_Test(&h->req, &done, MPI_STATUS_IGNORE);
    return done; /* an error shows in loom_halo_finish */
}

loom_status_t loom_halo_finish(loom_halo_t *h)
{
    if (!h->inflight) return LOOM_OK;
    int e = MPI_Wait(&h->req, MPI_STATUS_IGNORE); /* returns at once when a test completed it */
    h->inflight = 0;
    h->scnt[h->rank] = h->saved_s;
    h->rcnt[h->rank] = h->saved_r;
    if (e != MPI_SUCCESS) return loom_error_mpi(h->ctx, e, "MPI_Wait", __FILE__, __LINE__);
    return LOOM_OK;
}

void loom_halo_own(const loom_halo_t *h, size_t *first, size_t *count)
{
    *first = (size_t)h->rdis[h->rank];
    *count = (size_t)(h->inflight ? h->saved_r : h->rcnt[h->rank]);
}

loom_status_t loom_halo_exchange(loom_halo_t *h, const void *local, void *out)
{
    LOOM_TRY(loom_halo_start(h, local, out));
    return loom_halo_finish(h);
}

loom_status_t loom_halo_exchange_f32(loom_halo_t *h, const double *local, float *out)
{
    LOOM_TRY(loom_halo_start_f32(h, local, out));
    return loom_halo_finish(h);
}

loom_status_t loom_halo_start(loom_halo_t *h, const void *local, void *out)
{
    const size_t n = h->nsend, elem = h->elem;
    const uint32_t *send = h->send;
    if (elem == 8) {
        HALO_PACK(uint64_t, uint64_t, HALO_SAME);
    } else if (elem == 4) {
        HALO_PACK(uint32_t, uint32_t, HALO_SAME);
    } else {
        const unsigned char *src = local;
        unsigned char *own = (unsigned char *)out + (size_t)h->rdis[h->rank] * elem;
        const size_t o0 = (size_t)h->sdis[h->rank], o1 = o0 + (size_t)h->scnt[h->rank];
#pragma omp parallel for schedule(static) if (n > ((size_t)1 << 16))
        for (size_t i = 0; i < n; i++)
            memcpy(i >= o0 && i < o1 ? own + (i - o0) * elem : h->sbuf + i * elem,
                   src + (size_t)send[i] * elem, elem);
    }
    return halo_send(h, out);
}

loom_status_t loom_halo_start_f32(loom_halo_t *h, const double *local, float *out)
{
    if (h->elem != sizeof(float))
        return LOOM_ERROR(h->ctx, LOOM_ERR_INTERNAL,
                          "halo: a float exchange over %zu-byte elements", h->elem);
    const size_t n = h->nsend;
    const uint32_t *send = h->send;
    HALO_PACK(double, float, HALO_TO_F32);
    return halo_send(h, out);
}
