/* Loom Pregel: bulk-synchronous vertex programs over a partitioned loom_graph_t. */
#ifndef LOOM_PREGEL_H
#define LOOM_PREGEL_H

#include <stddef.h>
#include <stdint.h>

#include "loom/graph.h"
#include "loom/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How messages to one vertex are combined. The built-in combiners work on
 * 8-byte messages (double or uint64_t) and run in tight kernel loops; they are
 * what lets the engine switch to a dense exchange (every rank publishes the
 * value its vertices send to all out-neighbours, owners pull it over their
 * in-edges). LOOM_COMBINE_USER calls the program's `combine` for every pair. */
typedef enum loom_pregel_combiner {
    LOOM_COMBINE_NONE = 0, /* compute sees every message */
    LOOM_COMBINE_SUM_F64,
    LOOM_COMBINE_MIN_F64,
    LOOM_COMBINE_MAX_F64,
    LOOM_COMBINE_SUM_U64,
    LOOM_COMBINE_MIN_U64,
    LOOM_COMBINE_MAX_U64,
    LOOM_COMBINE_USER,
} loom_pregel_combiner_t;

/* Aggregators are doubles reduced over all vertices of a superstep with
 * MPI_Allreduce; the result is visible to every vertex in the next superstep
 * and to the master compute right after the superstep. */
typedef enum loom_agg_op { LOOM_AGG_SUM = 1, LOOM_AGG_MIN, LOOM_AGG_MAX } loom_agg_op_t;

#define LOOM_PREGEL_MAX_AGGS 16

/* The vertex a compute call works on. The engine fills it; the program reads it
 * through the functions below and must not keep it past the call. */
typedef struct loom_vertex {
    uint64_t id;         /* global vertex id */
    uint64_t local;      /* index among this rank's vertices */
    void *value;         /* value_size bytes, owned by the engine */
    int64_t superstep;   /* 0 for the first compute */
    uint64_t out_degree; /* number of out-arcs */
    struct loom_pregel *pg;
    int tid; /* OpenMP thread running this call */
} loom_vertex_t;

/* What the master compute sees after a superstep (all counts global). */
typedef struct loom_pregel_step {
    int64_t superstep;
    uint64_t active;   /* vertices that have not voted to halt */
    uint64_t messages; /* messages sent during the superstep (before combining) */
    double seconds;    /* wall time of the superstep so far */
} loom_pregel_step_t;

/* A vertex program. Every callback may run on several OpenMP threads at once
 * (different vertices); `user` is shared, so callbacks must only read it. */
/* A block of consecutive local vertices for compute_block: the array form of
 * compute, one call for up to 256 vertices instead of one call each. */
typedef struct loom_vertex_block {
    int64_t superstep;
    uint64_t first_id; /* global id of the block's first vertex */
    size_t count;      /* vertices in the block */
    void *values;      /* their values, value_size bytes each */
    const void *msgs;  /* their combined messages, msg_size bytes each; msgs[i] is
                          meaningful only where has[i] (no message arrived otherwise) */
    const uint8_t *has;
    const uint64_t *out_off;  /* vertex i's out-degree is out_off[i + 1] - out_off[i] */
    void *out;                /* count slots of msg_size bytes: to send along every out-arc
                                 of vertex i (send_all), write out[i] and set sent[i] = 1 */
    uint8_t *sent;            /* zeroed by the engine before the call */
    const double *aggregated; /* aggregators of the previous superstep */
    double *aggs;             /* this thread's partials: fold each vertex's contribution with the
                                 aggregator's op, in vertex order (as loom_vertex_aggregate does) */
} loom_vertex_block_t;

typedef struct loom_pregel_program {
    const char *name;
    size_t value_size; /* bytes of a vertex value (> 0) */
    size_t msg_size;   /* bytes of a message (8 for the built-in combiners) */
    loom_pregel_combiner_t combiner;
    /* LOOM_COMBINE_USER: fold `msg` into `acc` (both msg_size bytes). */
    void (*combine)(void *acc, const void *msg, void *user);
    int naggs; /* 0..LOOM_PREGEL_MAX_AGGS */
    loom_agg_op_t aggs[LOOM_PREGEL_MAX_AGGS];
    const char *agg_names[LOOM_PREGEL_MAX_AGGS]; /* for progress lines; NULL hides one */
    /* Set the initial value (the engine zeroes it first). Optional. */
    void (*init)(loom_vertex_t *v, void *user);
    /* One superstep of one active vertex. `msgs` holds `nmsgs` messages
     * (at most one with a combiner), borrowed for the call. */
    void (*compute)(loom_vertex_t *v, const void *msgs, size_t nmsgs, void *user);
    /* Optional, instead of compute: the same superstep for a block of vertices.
     * Only with a built-in or user combiner (one message per vertex), and for
     * programs whose vertices never vote to halt (PageRank-like). Blocks go to
     * threads by a static schedule, so results are reproducible as with compute.
     * Called concurrently on disjoint blocks. */
    void (*compute_block)(loom_vertex_block_t *b, void *user);
    /* Optional, runs on rank 0 only after each superstep's reduction: may read
     * and overwrite `aggs` (what vertices see next) and returns nonzero to end
     * the run after this superstep (its pending messages are dropped). */
    int (*master)(const loom_pregel_step_t *step, double *aggs, void *user);
    void *user;
    /* The parameters that shape the vertex values, as text ("damping=0.85
     * dangling=ignore"): a checkpoint records it with `name`, and a restart
     * refuses a checkpoint whose program or parameters differ. NULL: none. */
    const char *params;
} loom_pregel_program_t;

/* ---------------------------------------------------------------- in compute
 * These are thread-safe for the vertex being computed. */

/* Out-degree and out-edges (global ids, sorted; weights NULL when unweighted). */
static inline uint64_t loom_vertex_out_degree(const loom_vertex_t *v)
{
    return v->out_degree;
}
uint64_t loom_vertex_out_edges(const loom_vertex_t *v, const uint64_t **dst, const double **w);
uint64_t loom_vertex_num_vertices(const loom_vertex_t *v);
/* Send `msg` (msg_size bytes, copied) to vertex `dst` for the next superstep. */
void loom_vertex_send(loom_vertex_t *v, uint64_t dst, const void *msg);
/* Send the same `msg` to every out-neighbour. At most once per compute call;
 * with a built-in combiner this is the engine's fast path. */
void loom_vertex_send_all(loom_vertex_t *v, const void *msg);
/* Stop computing until a message arrives. */
void loom_vertex_vote_halt(loom_vertex_t *v);
/* Contribute to aggregator `i` for this superstep. */
void loom_vertex_aggregate(loom_vertex_t *v, int i, double x);
/* The value aggregator `i` had after the previous superstep (the op's identity
 * at superstep 0). */
double loom_vertex_aggregated(const loom_vertex_t *v, int i);

/* ---------------------------------------------------------------- the engine */

typedef struct loom_pregel loom_pregel_t;

/* Option rows the engine reads in loom_pregel_configure; put
 * LOOM_PREGEL_OPTIONS in a job's options table (before its END row). */
// clang-format off
#define LOOM_PREGEL_OPTIONS \
    {"max-supersteps", LOOM_OPT_INT, "1000000", "stop after this many supersteps", NULL, 1, 1, \
     1e12}, \
    {"checkpoint-every", LOOM_OPT_INT, "0", \
     "write a checkpoint every K supersteps (0: only on a signal)", NULL, 1, 0, 1e12}, \
    {"checkpoint-dir", LOOM_OPT_STRING, NULL, \
     "directory for checkpoints; SIGUSR1 or SIGTERM then checkpoints and stops (exit 75)", \
     NULL, 0, 0, 0}, \
    {"restart", LOOM_OPT_STRING, NULL, "resume from the newest checkpoint in DIR", NULL, 0, 0, 0}, \
    {"inject-fault", LOOM_OPT_STRING, NULL, \
     "abort-worker:W@superstep:N makes worker W (mod workers) abort in superstep N (testing)", \
     NULL, 0, 0, 0}, \
    {"exchange", LOOM_OPT_CHOICE, "auto", "message exchange: auto, dense or sparse", \
     "auto|dense|sparse", 0, 0, 0}, \
    {"pull", LOOM_OPT_CHOICE, "auto", \
     "dense kernel: blocked (partition-centric bins; sums), gather (over in-edges); auto: blocked " \
     "for sums once 8 bytes per vertex outgrow a quarter of the L3", "auto|blocked|gather", 0, 0, \
     0}, \
    {"pull-values", LOOM_OPT_CHOICE, "double", \
     "values in the blocked kernel's bins: float halves their bytes (sums stay double)", \
     "double|float", 0, 0, 0}, \
    {"pull-order", LOOM_OPT_CHOICE, "degree", \
     "publish slots of the gather kernel: degree (hubs together) or natural", \
     "degree|natural", 0, 0, 0}
// clang-format on

/* Create an engine for `prog` over `g` (which must outlive the engine; in-edges
 * are used for the dense exchange when the graph has them). Allocates values
 * and calls `init` on every local vertex. Collective over the job
 * communicator; agrees on failure. The program struct is copied. */
loom_status_t loom_pregel_create(loom_ctx_t *ctx, const loom_graph_t *g,
                                 const loom_pregel_program_t *prog, loom_pregel_t **pg);

/* Check, before any work, what the options name outside the engine: that
 * --checkpoint-dir can be created and written, that --restart names a
 * readable directory holding a complete checkpoint, that --inject-fault
 * parses, and (when the command has --out) that the output may be written
 * (loom_output_check, with `input` the graph the job reads; may be NULL).
 * Collective; agrees on failure (LOOM_ERR_USAGE or LOOM_ERR_IO). */
loom_status_t loom_pregel_check_options(loom_ctx_t *ctx, const loom_opts_t *opts,
                                        const char *input);

/* Read LOOM_PREGEL_OPTIONS from `opts` (checkpoints, restart, fault injection,
 * superstep limit, exchange mode). Validates them; fails with LOOM_ERR_USAGE.
 * Not collective (every rank parses the same options). */
loom_status_t loom_pregel_configure(loom_pregel_t *pg, const loom_opts_t *opts);

/* Limit the number of supersteps (default 1000000). */
void loom_pregel_set_max_supersteps(loom_pregel_t *pg, int64_t n);

/* Build what the dense exchange needs (the blocked kernel's bins, or the
 * gather kernel's 32-bit index in degree order) now instead of at the start of
 * loom_pregel_run, e.g. to time it apart from the supersteps (phase timer
 * "pregel-setup"). Does nothing when already built (also after a recovery,
 * which rebuilds it in the run). Collective over the job communicator;
 * agrees on failure (LOOM_ERR_NOMEM). */
loom_status_t loom_pregel_prepare(loom_pregel_t *pg);

/* Run supersteps until every vertex voted to halt and no message is pending,
 * the master compute stops, or the superstep limit is reached. Prints one
 * progress line per superstep on rank 0 (unless --quiet), records the phase
 * timers "pregel-compute" and "pregel-exchange" and the summary fields "supersteps" and
 * "messages". Collective over the job communicator; agrees on failure.
 *
 * With a checkpoint directory configured, the run installs handlers for
 * SIGUSR1 and SIGTERM (restoring the previous ones before it returns) that
 * only note the signal. The note travels in the superstep's reduction, so one
 * signalled rank is enough and all ranks stop at the same superstep: unless
 * the run ends at that superstep anyway, it writes a checkpoint exactly as
 * the periodic ones (atomically) and returns LOOM_ERR_INTERRUPTED with
 * "checkpointed at superstep N on signal SIGUSR1; resume with --restart DIR".
 * A signal that arrives before the run starts (while loading the graph) has
 * its usual effect. Not for concurrent runs in one process (signals are
 * per process). */
loom_status_t loom_pregel_run(loom_pregel_t *pg);

/* This rank's vertex values (loom_graph_local_vertices(g) of value_size
 * bytes, in vertex order). Borrowed; valid until destroy. */
void *loom_pregel_values(loom_pregel_t *pg);
/* Supersteps run so far (counting those before a restart). */
int64_t loom_pregel_supersteps(const loom_pregel_t *pg);
/* The aggregated value of aggregator i after the last superstep. */
double loom_pregel_aggregated(const loom_pregel_t *pg, int i);

/* Free the engine. Accepts NULL and *pg == NULL; sets *pg to NULL. Not collective. */
void loom_pregel_destroy(loom_pregel_t **pg);

#ifdef __cplusplus
}
#endif
#endif
