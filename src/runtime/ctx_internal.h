/* The process context's layout, shared by the runtime's files only. */
#ifndef LOOM_CTX_INTERNAL_H
#define LOOM_CTX_INTERNAL_H

#include <hwloc.h>

#include "loom/runtime.h"

#define LOOM_MSG_MAX 1024
#define LOOM_WHERE_MAX 256

typedef struct loom_timer {
    char *name;
    double total, started;
    int running;
} loom_timer_t;

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
    hwloc_topology_t topo;
    int have_topo;

    loom_status_t err_code;
    char err_msg[LOOM_MSG_MAX];
    char err_where[LOOM_WHERE_MAX];

    loom_timer_t *timers;
    int ntimers, cap_timers;
    loom_field_t *fields;
    int nfields, cap_fields;
};

/* Apply the runtime options (verbosity, threads, binding). */
loom_status_t loom_ctx_configure(loom_ctx_t *ctx, const loom_opts_t *opts);

/* Pick the default thread count and bind threads as `mode` ("auto", "core",
 * "none") asks; `requested` > 0 forces the thread count. Collective. */
loom_status_t loom_bind_apply(loom_ctx_t *ctx, const char *mode, int requested);

#endif
