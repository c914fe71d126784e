/* The Pregel engine's state, shared between the superstep loop and checkpoints. */
#ifndef LOOM_PREGEL_INTERNAL_H
#define LOOM_PREGEL_INTERNAL_H

#include <signal.h>
#include <stdint.h>

#include "loom/pregel.h"

/* A growable byte buffer of message records, one per (thread, destination worker). */
typedef struct loom_msgbuf {
    uint8_t *data;
    size_t len, cap; /* bytes */
    int failed;      /* an allocation failed: the superstep must fail */
} loom_msgbuf_t;

/* Per-thread counters, padded to a cache line so threads do not share one. */
typedef struct loom_tstat {
    uint64_t active, npub, pub_arcs, sparse;
    double aggs[LOOM_PREGEL_MAX_AGGS];
    char pad[32];
} loom_tstat_t;

enum { LOOM_EXCHANGE_AUTO = 0, LOOM_EXCHANGE_DENSE, LOOM_EXCHANGE_SPARSE };
enum { LOOM_PULL_KIND_AUTO = 0, LOOM_PULL_KIND_BLOCKED, LOOM_PULL_KIND_GATHER };

struct loom_pregel {
    loom_ctx_t *ctx;
    const loom_graph_t *g;
    loom_pregel_program_t prog;
    MPI_Comm comm, wcomm;
    int rank, size, is_worker, nworkers, wbase; /* wbase: job rank of worker 0 */
    uint64_t n, nloc, lo;
    size_t vsz, msz, rsz; /* value, message and record (dst + message) bytes */

    uint8_t *values; /* nloc * vsz */
    uint8_t *halted; /* nloc */

    /* Messages delivered for the current superstep. With a combiner: one
     * combined message per vertex in inbox, has[v] when there is one. Without:
     * a CSR of messages (moff, mdata). */
    uint8_t *inbox, *has;
    uint64_t *moff;
    uint8_t *mdata;

    /* send_all with a combiner publishes into gpub (n messages, this rank's
     * slice at lo) and sets pubflag (n bytes); a dense exchange allgathers
     * both and pulls over in-edges; a sparse one expands them to records. */
    int publish;  /* combiner given: send_all goes through gpub */
    int dense_ok; /* and in-edges exist: a dense exchange is possible */
    uint8_t *gpub, *pubflag;
    uint8_t *sent; /* local order: the vertex called send_all this superstep */
    const uint64_t *in_off;
    const void *in_idx; /* in-neighbour ids, uint32_t when in_idx32 */
    int in_idx32;
    uint32_t *in_idx_own;     /* the kernel-private 32-bit copy */
    uint32_t *slot;           /* local vertex -> its publish slot - lo (degree order) */
    int reorder;              /* publish in degree order (with the gather kernel) */
    int pull_kind;            /* LOOM_PULL_KIND_*: the dense pull's kernel */
    int pull_single;          /* the blocked kernel keeps values as float */
    int use_blocked;          /* chosen in loom_pregel_prepare (the same on every rank) */
    struct loom_bpull *bpull; /* the blocked kernel's bins, when use_blocked */
    /* With several workers the bins read `mirror`: the values of exactly the
     * sources with arcs into this rank, ascending, brought by `halo` each
     * superstep instead of an all-gather of all n. */
    struct loom_halo *halo;
    void *mirror; /* doubles, or floats with pull_single: the halo's buffer */
    /* Shared bins: the bins of a node's workers sit in one shared segment,
     * and each worker writes its own sources' values into all of them
     * (`push`); the halo then brings only sources owned on other nodes. */
    struct loom_nodemem *bins;
    struct loom_bpush *push;
    uint8_t *has_in;     /* the vertex has in-arcs: `has` after a pull where all published */
    int pull_ready;      /* the dense kernel's structures are built (loom_pregel_prepare) */
    uint8_t identity[8]; /* the built-in combiner's identity */

    int nthreads;
    struct loom_exchange *xchg;        /* the sparse exchange over the workers (workers only) */
    loom_msgbuf_t *tbuf;               /* nthreads * nworkers */
    loom_tstat_t *tstat;               /* nthreads */
    uint8_t *bout, *bsent;             /* compute_block: nthreads blocks of out slots, flags */
    double aggs[LOOM_PREGEL_MAX_AGGS]; /* visible this superstep */

    int64_t superstep, max_supersteps;
    uint64_t total_messages;
    int exchange_mode;

    int64_t ckpt_every;
    char *ckpt_dir, *restart_dir;
    int64_t last_ckpt; /* superstep of the newest checkpoint written or read, -1 none */
    uint64_t gsum;     /* the graph's checksum (checkpoint identity) */
    int have_gsum;
    loom_fault_t fault; /* --inject-fault */
    int recovering;     /* rebuilt after a death: resume timing at the next start */
    int64_t recoveries;

    int sig_armed; /* loom_pregel_run armed the stop request (and disarms it) */
};

/* Deliver message records (dst, message) addressed to this rank's vertices:
 * combine into inbox/has, or build the message CSR. `merge` keeps what is in
 * inbox/has already (after a dense pull). */
loom_status_t loom_pregel_deliver(loom_pregel_t *pg, const uint8_t *recs, size_t nrecs, int merge);

/* Checkpoints (checkpoint.c). Both collective over the job communicator. */
loom_status_t loom_pregel_checkpoint_write(loom_pregel_t *pg);
loom_status_t loom_pregel_checkpoint_read(loom_pregel_t *pg, const char *dir);
/* Rank 0's checks before any work: the checkpoint directory can be created
 * and written; a restart directory holds a complete checkpoint. */
loom_status_t loom_pregel_checkpoint_dir_check(loom_ctx_t *ctx, const char *dir);
loom_status_t loom_pregel_restart_check(loom_ctx_t *ctx, const char *dir);

#endif
