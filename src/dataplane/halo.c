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

static loom_status_t halo_send(loom_halo_t *h, void *out)
{
    int me = h->rank, sc = h->scnt[me], rc = h->rcnt[me];
    h->scnt[me] = h->rcnt[me] = 0;
    int e =
        MPI_Alltoallv(h->sbuf, h->scnt, h->sdis, h->type, out, h->rcnt, h->rdis, h->type, h->comm);
    h->scnt[me] = sc;
    h->rcnt[me] = rc;
    if (e != MPI_SUCCESS) return loom_error_mpi(h->ctx, e, "MPI_Alltoallv", __FILE__, __LINE__);
    return LOOM_OK;
}

loom_status_t loom_halo_exchange(loom_halo_t *h, const void *local, void *out)
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

loom_status_t loom_halo_exchange_f32(loom_halo_t *h, const double *local, float *out)
{
    if (h->elem != sizeof(float))
        return LOOM_ERROR(h->ctx, LOOM_ERR_INTERNAL,
                          "halo: a float exchange over %zu-byte elements", h->elem);
    const size_t n = h->nsend;
    const uint32_t *send = h->send;
    HALO_PACK(double, float, HALO_TO_F32);
    return halo_send(h, out);
}
