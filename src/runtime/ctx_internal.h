/* The process context's layout, shared by the runtime's files only. */
#ifndef LOOM_CTX_INTERNAL_H
#define LOOM_CTX_INTERNAL_H

#include <hwloc.h>
#include <sys/types.h>
#include <unistd.h>

#include "loom/runtime.h"

#define LOOM_MSG_MAX 1024
#define LOOM_WHERE_MAX 256

typedef struct loom_timer {
    char *name;
    double total, started;
    int running;
} loom_timer_t;

#define LOOM_HOST_MAX 64

/* Where a rank ran: gathered at start, so that a death can be reported by
 * host and pid after the rank is gone. */
typedef struct loom_peer {
    char host[LOOM_HOST_MAX];
    int64_t pid;
} loom_peer_t;

typedef enum { LOOM_FIELD_INT, LOOM_FIELD_DOUBLE, LOOM_FIELD_STRING } loom_field_type_t;

typedef struct loom_field {
    char *key;
    loom_field_type_t type;
    int64_t i;
    double d;
    char *s;
} loom_field_t;

struct loom_ctx {
    MPI_Comm comm, wcomm;
    int rank, size, owns_mpi;
    int threads;
    int verbose, quiet, json;
    int node_ranks; /* --node-ranks: 0 real nodes, K pretend nodes of K ranks */
    int two_level;  /* --two-level: 1 on, 0 off, -1 auto */
    hwloc_topology_t topo;
    int have_topo;

    loom_status_t err_code;
    char err_msg[LOOM_MSG_MAX];
    char err_where[LOOM_WHERE_MAX];

    loom_timer_t *timers;
    int ntimers, cap_timers;
    loom_field_t *fields;
    int nfields, cap_fields;

    /* Membership (members.c). Ranks are renumbered by a recovery; a rank's
     * number at start is its stable name in messages. */
    int ft;             /* ULFM built in and enabled by the launcher */
    pid_t launcher_pid; /* this process's parent at start (mpirun, prted, slurmstepd) */
    int start_size;     /* ranks when the job started */
    int *start_rank;    /* [current rank] -> rank at start */
    loom_peer_t *peers; /* [rank at start] */
    int lost;           /* ranks lost so far */
    int failing;        /* a failure was seen and not yet recovered from */
    int exit_status;    /* what the process will exit with (loom_set_exit_status) */
    double failure_at;  /* wall clock (epoch s) of the first detected failure, 0 if none */
    double recovery_s;  /* time spent recovering */
};

/* Gather the peer table and find out whether ULFM is on. Collective. */
loom_status_t loom_members_init(loom_ctx_t *ctx);
void loom_members_free(loom_ctx_t *ctx);
/* Revoke the job's communicators (ULFM), so that every survivor's pending and
 * future operations on them fail instead of waiting. Idempotent; no-op
 * without ULFM. Not collective. */
void loom_members_revoke(loom_ctx_t *ctx);
/* "worker rank 2 (pid 4242 on node7) died" for the failures MPI knows of, or
 * "a rank of the job died" when it names none yet. */
void loom_members_describe_failed(loom_ctx_t *ctx, char *buf, size_t len);
/* Does MPI report a failed process in the job's communicator (ULFM; 0 without)? */
int loom_members_failure_known(loom_ctx_t *ctx);
/* Note a failure MPI reported, revoke the job's communicators, and return
 * LOOM_ERR_LOST naming the dead ("... died (MPI reported it during CALL)"). */
loom_status_t loom_members_lost(loom_ctx_t *ctx, const char *call);
/* Wall-clock seconds since the epoch. */
double loom_epoch(void);

/* Apply the runtime options (verbosity, threads, binding). */
loom_status_t loom_ctx_configure(loom_ctx_t *ctx, const loom_opts_t *opts);

/* Pick the default thread count and bind threads as `mode` ("auto", "core",
 * "none") asks; `requested` > 0 forces the thread count. Collective. */
loom_status_t loom_bind_apply(loom_ctx_t *ctx, const char *mode, int requested);

#endif
