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
 * allocation failure leaves *ctx NULL). A process started without a launcher (an MPI
 * singleton) of Open MPI gets the ob1 PML unless OMPI_MCA_pml is set: it needs no
 * network transport, and probing them doubles its start-up. Collective over
 * MPI_COMM_WORLD. */
loom_status_t loom_ctx_create(int *argc, char ***argv, loom_ctx_t **ctx);

/* The status the process will exit with, told before loom_ctx_destroy. With
 * ULFM on and MPI initialised by Loom: after a recovery from a dead worker,
 * MPI_Finalize is given 5 s and the process then ends with this status (Open
 * MPI 5 can hang finalising); when the status is not 0, or a failure was seen
 * and not recovered from, loom_ctx_destroy ends the process with it (never 0)
 * without finalising, since finalising could wait for the dead. */
void loom_set_exit_status(loom_ctx_t *ctx, int status);

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
/* Bytes of the last-level data cache above this machine's first core, as
 * hwloc reports it (what kernels size blocks by); 0 when unknown. Not
 * collective; the same on ranks of one machine. */
size_t loom_llc_bytes(const loom_ctx_t *ctx);
/* How ranks group into nodes for the data plane's two-level exchange
 * (--node-ranks): 0 for the machines MPI reports (MPI_Comm_split_type with
 * MPI_COMM_TYPE_SHARED), K > 0 for pretend nodes of K consecutive ranks (by
 * rank at start), which lets one machine test what a cluster does. Local. */
int loom_node_ranks(const loom_ctx_t *ctx);
/* --two-level: 1 on, 0 off, -1 auto (on when the ranks span several nodes and
 * some node holds more than one). Local. */
int loom_two_level(const loom_ctx_t *ctx);
/* Set both, as --node-ranks and --two-level do (for programs and tests that
 * parse no options). Exchanges created afterwards use them; every rank must
 * set the same. Local. */
void loom_set_nodes(loom_ctx_t *ctx, int node_ranks, int two_level);
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
 * between polls (backing off to 0.5 ms). The master uses it so it can share a
 * core with a worker. Returns LOOM_ERR_MPI on failure, LOOM_ERR_LOST when a
 * rank died (with ULFM: a failure this rank learns of while it waits revokes
 * the job's communicators, so that no survivor waits for the dead rank). */
loom_status_t loom_wait(loom_ctx_t *ctx, MPI_Request *req, MPI_Status *status);
/* Wait for a request on a rank with nothing else to do: MPI_Wait, or with
 * ULFM on, MPI_Test polled without sleeping and watched for failures as in
 * loom_wait. Errors as loom_wait. */
loom_status_t loom_wait_hot(loom_ctx_t *ctx, MPI_Request *req, MPI_Status *status);

/* Wall-clock seconds (MPI_Wtime). */
double loom_wtime(void);

/* Peak resident set size of this process in bytes (getrusage). */
size_t loom_peak_rss(void);

/* ------------------------------------------------------------------ membership and failures
 *
 * The job's members are the ranks alive now. With an MPI that has ULFM and a
 * launch that enables it (Open MPI 5: `mpirun --with-ft ulfm`), the death of a
 * worker reaches every survivor as LOOM_ERR_LOST (loom_error_mpi revokes the
 * job's communicators, so nobody waits for the dead), and an engine can go on:
 * the survivors agree that a failure happened (loom_members_agree), shrink the
 * job to themselves (loom_members_recover) and redo the lost work. Without
 * ULFM a dead rank ends the job: the launcher stops the others, and the
 * `loom` command's signal handlers name the dead rank and remove temporaries. */

/* Whether this job can survive the death of a worker (ULFM built in and
 * enabled at launch). Local. */
int loom_ft_enabled(const loom_ctx_t *ctx);
/* Whether the job's communicator was revoked (a survivor saw a failure): every
 * operation on it fails until the survivors recover. 0 without ULFM. Local. */
int loom_members_revoked(const loom_ctx_t *ctx);
/* Revoke a communicator derived from the job's (ULFM, with failures on):
 * every pending and later operation on it fails at every member, so none
 * waits for a rank that has left it. What a data-plane object does with its
 * own communicators when it fails. No-op without ULFM. Not collective. */
void loom_comm_revoke(loom_ctx_t *ctx, MPI_Comm comm);
/* Whether the process that launched this rank is gone (its parent changed:
 * mpirun or the node's daemon died and nobody will end or answer this rank).
 * Always 0 for a job of one process. Local. */
int loom_launcher_gone(const loom_ctx_t *ctx);

/* The MPI library and flavour in one line, for --version:
 * "Open MPI v5.0.11; ULFM: yes, enabled (workers may die)". ctx may be NULL. */
void loom_mpi_describe(const loom_ctx_t *ctx, char *buf, size_t len);

/* A rank's number when the job started (ranks are renumbered by a recovery;
 * messages name ranks by this number), and the host a start rank ran on. */
int loom_start_rank(const loom_ctx_t *ctx, int rank);
const char *loom_host_of(const loom_ctx_t *ctx, int start_rank);

/* True once this process saw a rank failure that was not recovered from. */
int loom_members_failed(const loom_ctx_t *ctx);
/* Note a failure the caller handled itself (a master that found a dead
 * worker through its own receive), so that loom_members_failed says so. */
void loom_members_note_failure(loom_ctx_t *ctx);
/* Is this MPI error code a process failure or a revoked communicator? */
int loom_mpi_is_failure(int mpierr);
/* Acknowledge the failures MPI knows of on the job communicator and write
 * the ranks (current numbering) of the dead into ranks[0..max); returns how
 * many. Local; 0 without ULFM. Notes the failure when there is one. */
int loom_members_dead_ranks(loom_ctx_t *ctx, int *ranks, int max);
/* The same for another communicator of the job (ranks in comm's numbering). */
int loom_comm_dead_ranks(loom_ctx_t *ctx, MPI_Comm comm, int *ranks, int max);

/* Fault-tolerant agreement over the job communicator: every survivor passes
 * *ok and gets back the logical AND over the survivors, the same on all of
 * them even while ranks die (MPIX_Comm_agree; MPI_Allreduce without ULFM). A
 * rank that saw a failure should pass 0. Collective over the survivors;
 * returns LOOM_OK unless the plain reduction fails. */
loom_status_t loom_members_agree(loom_ctx_t *ctx, int *ok);

/* What a recovery changed. Ranks before the recovery are "old". */
typedef struct loom_recovery {
    int nlost;     /* ranks lost */
    int *lost;     /* their start ranks */
    int old_size;  /* ranks before */
    int *old_rank; /* [rank now] -> old rank */
    int *new_rank; /* [old rank] -> rank now, -1 for the dead */
} loom_recovery_t;

/* Collective over the survivors, after loom_members_agree gave 0: shrink the
 * job to the ranks alive (MPIX_Comm_shrink; again if one dies meanwhile),
 * renumber them in the same order (the master stays rank 0, workers are
 * 1..P'-1), rebuild the workers communicator, clear the recorded error, warn
 * on rank 0 for each lost rank (start rank, pid, host) and count them in the
 * summary ("lost_ranks", "failure_detected_at"). Free *rec with
 * loom_recovery_free. Fails with LOOM_ERR_LOST when the master died or no
 * worker is left (the job cannot go on; the message says what can be resumed
 * and the new rank 0 reports it), LOOM_ERR_USAGE without ULFM. */
loom_status_t loom_members_recover(loom_ctx_t *ctx, loom_recovery_t *rec);
void loom_recovery_free(loom_recovery_t *rec);

/* The engine is running again after a recovery: records "recovery_s", the
 * time from the failure's detection on this rank until now. */
void loom_members_resumed(loom_ctx_t *ctx);

/* ------------------------------------------------------------------ fault injection
 *
 * One grammar for every engine (--inject-fault SPEC):
 *   kill:RANK@PHASE:N   rank RANK (its number at start; 0 is the master) kills
 *                       itself with SIGKILL at point N of PHASE: map (after
 *                       mapping N tasks, before reporting the N-th), shuffle
 *                       (after N of its exchange rounds), reduce (after
 *                       writing N reduce partitions), superstep (at the start
 *                       of superstep N), stage (datasets: at the start of
 *                       the N-th stage the rank runs, a shuffle or the
 *                       keeping of a persisted dataset), transfer (chunk
 *                       store: after N pieces, of up to 1 MiB, of chunk data
 *                       this rank read or received); N = 0 is the start of the phase
 *   slow:RANK:SECONDS   every map task on RANK takes SECONDS longer
 * Older spellings stay: lose-worker:RANK@map:N, slow-worker:RANK:SECONDS, and
 * abort-worker:W@superstep:N (W a worker index, taken modulo the workers).
 * The death is real: the same recovery runs as for `kill -9` from outside. */
enum {
    LOOM_PHASE_MAP = 1,
    LOOM_PHASE_SHUFFLE,
    LOOM_PHASE_REDUCE,
    LOOM_PHASE_SUPERSTEP,
    LOOM_PHASE_STAGE,   /* datasets: at the start of this rank's N-th stage */
    LOOM_PHASE_TRANSFER /* chunk store: after N pieces of chunk data read or received here */
};
enum { LOOM_FAULT_NONE = 0, LOOM_FAULT_KILL, LOOM_FAULT_SLOW };

typedef struct loom_fault {
    int kind, rank, phase;
    int64_t n;
    double seconds;
} loom_fault_t;

/* Parse `spec` (NULL or "" for none) allowing the phases in the bit set
 * `phases` (1u << LOOM_PHASE_MAP | ...). LOOM_ERR_USAGE naming the spec when
 * it is malformed, names a phase the command has not, or a rank outside the
 * job. Not collective (every rank parses the same spec). */
loom_status_t loom_fault_parse(loom_ctx_t *ctx, const char *spec, unsigned phases, loom_fault_t *f);
/* Is this process the fault's rank, in `phase`? */
int loom_fault_here(const loom_ctx_t *ctx, const loom_fault_t *f, int phase);
/* At point n of `phase`: if the fault is a kill meant for this rank here,
 * print "loom: injected fault: rank R (pid P on H) kills itself in PHASE N at
 * <epoch seconds>" on stderr and die of SIGKILL. */
void loom_fault_point(loom_ctx_t *ctx, const loom_fault_t *f, int phase, int64_t n);

/* ------------------------------------------------------------------ signals and temporaries
 *
 * The `loom` command installs handlers for SIGTERM, SIGINT and SIGPIPE (library
 * users may), and with ULFM on for crashes (SIGSEGV, SIGBUS, SIGFPE, SIGILL,
 * SIGABRT: a message and backtrace, the temporaries removed, exit 128 + signal,
 * because Open MPI 5's launcher in ULFM mode does not count deaths by signal in
 * its exit status). A process that gets one removes the temporaries registered below and
 * dies of the signal; the lowest live rank on the host says why on stderr
 * (naming a rank on this host that died: Open MPI 4's launcher sends SIGTERM
 * to every survivor when a rank dies) and adds the resume hint. While a stop
 * is armed (a run that can checkpoint), SIGTERM, SIGINT and SIGUSR1 only note
 * the signal and the engine stops at its next safe point, unless a rank on
 * this host died (the job is broken: the process ends at once). Signal state
 * is per process: one context per process. */

/* Install the handlers (once; later calls do nothing). Collective over the
 * context's communicator: the ranks of a host share a small table in POSIX
 * shared memory (unlinked at once) where a rank ending on a signal notes it, so
 * that the rank that really died is the one named. */
loom_status_t loom_signals_install(loom_ctx_t *ctx);
/* Put back the handlers that were there before. */
void loom_signals_restore(void);

/* Arm (1) or disarm (0) the stop request; disarming drops a noted signal.
 * Without installed handlers this does nothing. */
void loom_stop_arm(loom_ctx_t *ctx, int on);
int loom_stop_armed(const loom_ctx_t *ctx);
/* The signal noted while armed (SIGUSR1, SIGTERM, SIGINT), 0 when none.
 * Async-signal state read once per safe point; engines agree on it. */
int loom_stop_signal(const loom_ctx_t *ctx);

/* Register a temporary file or directory tree that this process removes if it
 * ends on a signal; returns a handle for loom_temp_forget (-1 when the table
 * of 64 is full: the path is then left for the next run's sweep). Call
 * loom_temp_forget once the path is renamed into place or removed. Not
 * thread-safe. */
int loom_temp_register(loom_ctx_t *ctx, const char *path, int is_dir);
void loom_temp_forget(loom_ctx_t *ctx, int handle);

/* What the message of an early end says can be resumed, e.g. "resume with
 * --restart ck (checkpoint of superstep 12)". Copied; the default says that
 * nothing was written. */
void loom_set_resume_hint(loom_ctx_t *ctx, const char *hint);
const char *loom_resume_hint(const loom_ctx_t *ctx);

/* Whether process `pid` of host `host` is alive: 1 alive, 0 gone, -1 cannot
 * tell (another host). For sweeping temporaries of jobs that are gone. */
int loom_pid_alive_here(const loom_ctx_t *ctx, const char *host, long long pid);
/* This host's name as the peer table has it. */
const char *loom_hostname(const loom_ctx_t *ctx);

/* ------------------------------------------------------------------ options */

typedef enum loom_opt_type {
    LOOM_OPT_END = 0, /* terminates a table */
    LOOM_OPT_FLAG,    /* no argument; true when given */
    LOOM_OPT_INT,     /* int64 */
    LOOM_OPT_DOUBLE,
    LOOM_OPT_STRING,
    LOOM_OPT_SIZE,   /* bytes; accepts K, M, G, T suffixes (powers of 1024) */
    LOOM_OPT_CHOICE, /* one of `choices`, e.g. "core|none" */
} loom_opt_type_t;

/* One row of an options table. A table is an array ended by a row whose type is
 * LOOM_OPT_END. The same table drives getopt_long, --help (with defaults) and
 * environment overrides: option "checkpoint-every" is read from
 * LOOM_CHECKPOINT_EVERY when not on the command line. */
typedef struct loom_option {
    const char *name; /* long name without dashes */
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
const char *loom_opt_string(const loom_opts_t *o,
                            const char *name); /* NULL when unset, no default */
int loom_opts_nargs(const loom_opts_t *o);
const char *loom_opts_arg(const loom_opts_t *o, int i);

/* Parse a size with an optional K/M/G/T suffix ("64M"). Returns 0 on success. */
int loom_parse_size(const char *text, size_t *out);

/* ------------------------------------------------------------------ logging */

typedef enum loom_level {
    LOOM_LOG_ERROR = 0,
    LOOM_LOG_WARN,
    LOOM_LOG_INFO,    /* progress and results; silenced by --quiet */
    LOOM_LOG_VERBOSE, /* shown with --verbose */
} loom_level_t;

/* Print on stderr from rank 0 only, when `level` is enabled. Not collective. */
void loom_log(const loom_ctx_t *ctx, loom_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Print on stderr from every rank, prefixed "[rN] ", when --verbose. */
void loom_log_all(const loom_ctx_t *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

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
