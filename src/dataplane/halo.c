/* The halo exchange: each rank receives exactly the owned values it named once; ranks of
 * one node write into each other's receive buffers, in a POSIX shared-memory segment. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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
    /* shared: the node's ranks, the segment mapped here, where each rank of
     * comm on this node wants this rank's values (NULL: not on the node), and
     * the counts for MPI_Alltoallv with the node's ranks left out */
    MPI_Comm node;
    unsigned char *seg;
    size_t seg_len, nrecv_shared;
    unsigned char **to;
    int *scnt_off, *rcnt_off;
    int off_node; /* some rank of comm needs MPI_Alltoallv in shared rounds */
};

void loom_halo_destroy(loom_halo_t **hp)
{
    if (!hp || !*hp) return;
    loom_halo_t *h = *hp;
    if (h->type != MPI_DATATYPE_NULL) MPI_Type_free(&h->type);
    if (h->seg)
        munmap(h->seg, h->seg_len);
    else
        free(h->buf);
    if (h->node != MPI_COMM_NULL) MPI_Comm_free(&h->node);
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

/* A segment of len bytes that the node's ranks map: rank 0 of the node
 * creates it, the others open it by name (and check its size), each reserves
 * the pages of its own buffer [at, at + mylen) (so that they sit near it, and
 * a full /dev/shm is an error here, not a SIGBUS later), and it is unlinked
 * once all have it. Returns the mapping or NULL (on every rank of the node
 * alike); collective over node. */
static unsigned char *map_segment(loom_halo_t *h, size_t len, size_t at, size_t mylen, int nrank,
                                  loom_status_t *st)
{
    static unsigned serial;
    char name[96];
    int fd = -1, ok = 1, e;
    unsigned char *seg = NULL;
    if (nrank == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        snprintf(name, sizeof name, "/loom-halo-%ld-%u-%lx", (long)getpid(), serial++,
                 (unsigned long)ts.tv_nsec ^ (unsigned long)ts.tv_sec << 30);
        fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600);
        ok = fd >= 0 && ftruncate(fd, (off_t)len) == 0;
    }
    e = MPI_Bcast(name, sizeof name, MPI_CHAR, 0, h->node);
    if (e == MPI_SUCCESS) e = MPI_Bcast(&ok, 1, MPI_INT, 0, h->node);
    if (e == MPI_SUCCESS && ok && nrank != 0) {
        struct stat sb;
        fd = shm_open(name, O_RDWR, 0600);
        ok = fd >= 0 && fstat(fd, &sb) == 0 && (size_t)sb.st_size == len;
    }
    if (e == MPI_SUCCESS && ok && mylen) ok = posix_fallocate(fd, (off_t)at, (off_t)mylen) == 0;
    if (e == MPI_SUCCESS && ok) {
        seg = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (seg == MAP_FAILED) seg = NULL;
        ok = seg != NULL;
    }
    if (fd >= 0) close(fd);
    if (e == MPI_SUCCESS) e = MPI_Allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_MIN, h->node);
    if (nrank == 0 && fd >= 0) shm_unlink(name); /* every rank has it open, or gives up */
    if (e != MPI_SUCCESS) *st = loom_error_mpi(h->ctx, e, "halo segment", __FILE__, __LINE__);
    if (e != MPI_SUCCESS || !ok) {
        if (seg) munmap(seg, len);
        seg = NULL;
        if (e == MPI_SUCCESS)
            loom_log(h->ctx, LOOM_LOG_VERBOSE,
                     "halo: no shared memory of %zu bytes on this node; exchanging by MPI", len);
    }
    return seg;
}

/* The ranks that share the segment: those of this rank's node (pretend
 * nodes too) that also share its memory. Collective over comm. */
static loom_status_t node_comm(loom_halo_t *h)
{
    LOOM_TRY(loom_node_split(h->ctx, h->comm, &h->node));
    if (loom_node_ranks(h->ctx) <= 0) return LOOM_OK;
    MPI_Comm pretend = h->node;
    int e = MPI_Comm_split_type(pretend, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &h->node);
    MPI_Comm_free(&pretend);
    if (e != MPI_SUCCESS)
        return loom_error_mpi(h->ctx, e, "MPI_Comm_split_type (halo node)", __FILE__, __LINE__);
    return LOOM_OK;
}

/* The receive buffers of the node's ranks in one shared segment, each at a
 * page; where every rank of the node wants this rank's values; the counts
 * that leave the node's ranks to MPI. Or a private buffer when the node holds
 * this rank alone or has no shared memory. Collective over comm; the caller
 * agrees on the result. */
static loom_status_t shared_init(loom_halo_t *h)
{
    loom_ctx_t *ctx = h->ctx;
    int P = h->size, nsize = 1, nrank = 0;
    loom_status_t st = node_comm(h);
    long long *all = NULL;
    int *peer_rdis = NULL, *node_idx = NULL;
    if (st != LOOM_OK) return st;
    LOOM_MPI_GOTO(ctx, st, MPI_Comm_size(h->node, &nsize), out);
    LOOM_MPI_GOTO(ctx, st, MPI_Comm_rank(h->node, &nrank), out);
    all = malloc((size_t)nsize * 2 * sizeof *all);
    node_idx = malloc((size_t)P * sizeof *node_idx);
    peer_rdis = malloc((size_t)P * sizeof *peer_rdis);
    h->to = calloc((size_t)P, sizeof *h->to);
    h->scnt_off = malloc((size_t)P * 2 * sizeof *h->scnt_off);
    if (!all || !node_idx || !peer_rdis || !h->to || !h->scnt_off)
        st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory for a halo exchange");
    /* no rank enters the collectives below alone */
    st = loom_agree(ctx, h->comm, st);
    if (st != LOOM_OK) goto out;
    h->rcnt_off = h->scnt_off + P;
    long long mine[2] = {h->rank, (long long)(h->nrecv * h->elem)};
    LOOM_MPI_GOTO(ctx, st, MPI_Allgather(mine, 2, MPI_LONG_LONG, all, 2, MPI_LONG_LONG, h->node),
                  out);
    /* where each rank of the node wants this rank's values, by its rdis */
    LOOM_MPI_GOTO(ctx, st, MPI_Alltoall(h->rdis, 1, MPI_INT, peer_rdis, 1, MPI_INT, h->comm), out);
    size_t page = (size_t)sysconf(_SC_PAGESIZE), len = 0, my_at = 0, my_len = 0;
    for (int i = 0; i < nsize; i++) {
        size_t l = ((size_t)all[2 * i + 1] + page - 1) / page * page;
        if (i == nrank) my_at = len, my_len = l;
        len += l;
    }
    if (len == 0) len = page;
    if (nsize > 1) h->seg = map_segment(h, len, my_at, my_len, nrank, &st);
    if (st != LOOM_OK) goto out;
    for (int r = 0; r < P; r++)
        node_idx[r] = -1;
    size_t at = 0;
    for (int i = 0; h->seg && i < nsize; i++) {
        int r = (int)all[2 * i];
        node_idx[r] = i;
        h->to[r] = h->seg + at + (size_t)peer_rdis[r] * h->elem;
        at += ((size_t)all[2 * i + 1] + page - 1) / page * page;
    }
    int mpi = !h->seg; /* this rank's rounds need MPI_Alltoallv */
    for (int r = 0; r < P; r++) {
        int near = h->seg && node_idx[r] >= 0;
        h->scnt_off[r] = near ? 0 : h->scnt[r];
        h->rcnt_off[r] = near ? 0 : h->rcnt[r];
        mpi |= !near && r != h->rank && (h->scnt[r] || h->rcnt[r]);
        if (near) h->nrecv_shared += (size_t)h->rcnt[r];
    }
    /* MPI_Alltoallv is collective over comm: skipped only if no rank needs it */
    LOOM_MPI_GOTO(ctx, st, MPI_Allreduce(&mpi, &h->off_node, 1, MPI_INT, MPI_MAX, h->comm), out);
    h->scnt_off[h->rank] = h->rcnt_off[h->rank] = 0; /* its own share is copied in place */
    if (h->seg) {
        h->seg_len = len;
        h->buf = h->seg + my_at;
    } else {
        if (h->node != MPI_COMM_NULL) MPI_Comm_free(&h->node);
        h->buf = malloc(h->nrecv ? h->nrecv * h->elem : 1);
        if (!h->buf) st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory for mirrored values");
    }
out:
    free(all);
    free(node_idx);
    free(peer_rdis);
    return st;
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
        h->node = MPI_COMM_NULL;
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
    if (st == LOOM_OK) st = loom_agree(ctx, comm, shared_init(h));
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
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    int e = MPI_Barrier(h->node);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (e == MPI_SUCCESS) return LOOM_OK;
    loom_comm_revoke(h->ctx, h->node); /* no rank of the node waits on a barrier forever */
    return loom_error_mpi(h->ctx, e, "MPI_Barrier (halo node)", __FILE__, __LINE__);
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
        if (shared) loom_comm_revoke(h->ctx, h->node);
        return loom_error_mpi(h->ctx, e, "MPI_Alltoallv", __FILE__, __LINE__);
    }
    return shared ? node_barrier(h) : LOOM_OK;
}

loom_status_t loom_halo_exchange(loom_halo_t *h, const void *local, void *out)
{
    const size_t elem = h->elem;
    const int shared = h->seg && out == h->buf;
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
    const int shared = h->seg && (void *)out == h->buf;
    if (shared) LOOM_TRY(node_barrier(h));
    HALO_PACK(double, float, HALO_TO_F32);
    return halo_send(h, out, shared);
}
