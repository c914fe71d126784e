/* Loom runtime: one context per process owning MPI, roles, topology, options,
 * logging, phase timers and the run summary. Every engine takes it first. */
#ifndef LOOM_RUNTIME_H
#define LOOM_RUNTIME_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <mpi.h>

#include "loom/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ context */

/* Start MPI (MPI_Init_thread asking for MPI_THREAD_FUNNELED; fails unless at least
 * that is provided), duplicate MPI_COMM_WORLD, build the workers-only
 * communicator, load the hwloc topology. When MPI is already initialised (a
 * library user's program) Loom neither re-initialises nor finalises it.
 * On failure *ctx is still a valid context holding the message (only an
 * allocation failure leaves *ctx NULL). Collective over MPI_COMM_WORLD. */
loom_status_t loom_ctx_create(int *argc, char ***argv, loom_ctx_t **ctx);

/* Free the context, finalising MPI if loom_ctx_create initialised it.
 * Accepts NULL and *ctx == NULL; sets *ctx to NULL. Collective. */
void loom_ctx_destroy(loom_ctx_t **ctx);

/* Roles. Rank 0 is the master. With one rank the master is also the only
 * worker; with P >= 2 ranks the workers are ranks 1..P-1 and the master owns no
 * data. All of these are thread-safe and local. */
int loom_rank(const loom_ctx_t *ctx);
int loom_size(const loom_ctx_t *ctx);
int loom_is_master(const loom_ctx_t *ctx);
int loom_is_worker(const loom_ctx_t *ctx);
int loom_num_workers(const loom_ctx_t *ctx);
/* This rank's index among the workers (0..num_workers-1), -1 on a pure master. */
int loom_worker_index(const loom_ctx_t *ctx);
/* The rank of worker index w. */
int loom_worker_rank(const loom_ctx_t *ctx, int w);

/* The job's communicator (a duplicate of MPI_COMM_WORLD) and the workers-only
 * communicator (MPI_COMM_NULL on a pure master; the job communicator's group
 * minus rank 0 when P >= 2, all ranks when P == 1). Borrowed. */
MPI_Comm loom_comm(const loom_ctx_t *ctx);
MPI_Comm loom_worker_comm(const loom_ctx_t *ctx);

/* Number of OpenMP threads this rank uses for hot loops (after configuration). */
int loom_threads(const loom_ctx_t *ctx);

/* Wait for a request without burning a core: poll with MPI_Test and sleep
 * between polls (backing off to 1 ms). The master uses it so it can share a
 * core with a worker. Returns LOOM_ERR_MPI on failure. */
loom_status_t loom_wait(loom_ctx_t *ctx, MPI_Request *req, MPI_Status *status);

/* Wall-clock seconds (MPI_Wtime). */
double loom_wtime(void);

/* Peak resident set size of this process in bytes (getrusage). */
size_t loom_peak_rss(void);

/* ------------------------------------------------------------------ options */

typedef enum loom_opt_type {
    LOOM_OPT_END = 0, /* terminates a table */
    LOOM_OPT_FLAG,    /* no argument; true when given */
    LOOM_OPT_INT,     /* int64 */
    LOOM_OPT_DOUBLE,
    LOOM_OPT_STRING,
    LOOM_OPT_SIZE,    /* bytes; accepts K, M, G, T suffixes (powers of 1024) */
    LOOM_OPT_CHOICE,  /* one of `choices`, e.g. "core|none" */
} loom_opt_type_t;

/* One row of an options table. A table is an array ended by a row whose type is
 * LOOM_OPT_END. The same table drives getopt_long, --help (with defaults) and
 * environment overrides: option "checkpoint-every" is read from
 * LOOM_CHECKPOINT_EVERY when not on the command line. */
typedef struct loom_option {
    const char *name;    /* long name without dashes */
    loom_opt_type_t type;
    const char *def;     /* default as text, NULL for none */
    const char *help;    /* one line */
    const char *choices; /* for LOOM_OPT_CHOICE: "a|b|c" */
    int min_max_set;     /* for INT/DOUBLE/SIZE: when nonzero, enforce [min, max] */
    double min, max;
} loom_option_t;

typedef struct loom_opts loom_opts_t;

/* The options every command accepts (--quiet, --verbose, --json, --bind,
 * --threads, --help, --version). Parsed together with each command's table. */
extern const loom_option_t loom_runtime_options[];

/* Parse argv (argv[0] is the command name, e.g. "pagerank") against the runtime
 * table plus `table` (may be NULL). Positional arguments are kept in order.
 * Applies the runtime options to ctx (verbosity, --json, thread count and
 * binding). Unknown options, missing or malformed values and out-of-range
 * numbers fail with LOOM_ERR_USAGE and a message naming the option.
 * Every rank parses the same argv, so all ranks agree; not collective. */
loom_status_t loom_opts_parse(loom_ctx_t *ctx, const loom_option_t *table, int argc, char **argv,
                              loom_opts_t **opts);
void loom_opts_destroy(loom_opts_t **opts);

/* Print usage for a command: `usage` is the synopsis line, then every option of
 * the runtime table and `table` with its default. Rank 0 only. */
void loom_opts_help(const loom_ctx_t *ctx, FILE *out, const char *usage,
                    const loom_option_t *table);

/* Accessors. Asking for an option not in the tables is a programming error and
 * returns 0 / NULL. is_set is true when given on the command line or in the
 * environment (not by default). */
int loom_opt_is_set(const loom_opts_t *o, const char *name);
int loom_opt_flag(const loom_opts_t *o, const char *name);
int64_t loom_opt_int(const loom_opts_t *o, const char *name);
double loom_opt_double(const loom_opts_t *o, const char *name);
size_t loom_opt_size(const loom_opts_t *o, const char *name);
const char *loom_opt_string(const loom_opts_t *o, const char *name); /* NULL when unset, no default */
int loom_opts_nargs(const loom_opts_t *o);
const char *loom_opts_arg(const loom_opts_t *o, int i);

/* Parse a size with an optional K/M/G/T suffix ("64M"). Returns 0 on success. */
int loom_parse_size(const char *text, size_t *out);

/* ------------------------------------------------------------------ logging */

typedef enum loom_level {
    LOOM_LOG_ERROR = 0,
    LOOM_LOG_WARN,
    LOOM_LOG_INFO,     /* progress and results; silenced by --quiet */
    LOOM_LOG_VERBOSE,  /* shown with --verbose */
} loom_level_t;

/* Print on stderr from rank 0 only, when `level` is enabled. Not collective. */
void loom_log(const loom_ctx_t *ctx, loom_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Print on stderr from every rank, prefixed "[rN] ", when --verbose. */
void loom_log_all(const loom_ctx_t *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

int loom_log_enabled(const loom_ctx_t *ctx, loom_level_t level);
/* True when --json was given: the summary goes to stdout as one JSON object and
 * the human-readable summary is left out. */
int loom_json_enabled(const loom_ctx_t *ctx);

/* Print the recorded error once on rank 0 as "loom: error: <message>" (plus the
 * source location under --verbose). Call after loom_agree. */
void loom_error_report(const loom_ctx_t *ctx);

/* ------------------------------------------------------------------ timers and summary */

/* Phase timers. start/stop accumulate wall time under `name` on this rank.
 * Every rank must use the same phase names (a rank with nothing to do simply
 * records near-zero time). Names are copied. Not thread-safe: call from the
 * rank's main thread. */
void loom_timer_start(loom_ctx_t *ctx, const char *name);
void loom_timer_stop(loom_ctx_t *ctx, const char *name);
/* Seconds accumulated so far under name on this rank (0 when unknown). */
double loom_timer_get(const loom_ctx_t *ctx, const char *name);

/* Add a result field to the run summary (rank 0's values are the ones printed;
 * call on every rank or on rank 0 only). Keys and strings are copied. */
void loom_summary_int(loom_ctx_t *ctx, const char *key, int64_t value);
void loom_summary_double(loom_ctx_t *ctx, const char *key, double value);
void loom_summary_string(loom_ctx_t *ctx, const char *key, const char *value);

/* Collective: reduce phase timers (max over ranks and imbalance = max/mean over
 * the ranks that recorded time) and peak memory per rank, then print on rank 0:
 * with --json one JSON object on stdout {"command", "ranks", "threads", fields...,
 * "phases": {name: {"max_s", "mean_s", "imbalance"}}, "peak_rss_bytes": [per rank],
 * "status"}; otherwise (unless --quiet) a short table on stderr. */
loom_status_t loom_summary_print(loom_ctx_t *ctx, const char *command, loom_status_t status);

#ifdef __cplusplus
}
#endif
#endif
