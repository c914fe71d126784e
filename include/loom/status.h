/* Loom status codes and error propagation: every fallible call returns one. */
#ifndef LOOM_STATUS_H
#define LOOM_STATUS_H

#include <mpi.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct loom_ctx loom_ctx_t;

/* One status enum for the whole library. LOOM_OK is zero; every other value is
 * a kind of failure whose detail (input file, line, cause) is recorded in the
 * context by LOOM_ERROR at the place the failure was found. */
typedef enum loom_status {
    LOOM_OK = 0,
    LOOM_ERR_USAGE,    /* bad option, argument or API use */
    LOOM_ERR_IO,       /* a file cannot be opened, read or written */
    LOOM_ERR_FORMAT,   /* input is malformed (names file, line and cause) */
    LOOM_ERR_NOMEM,    /* an allocation failed */
    LOOM_ERR_MPI,      /* an MPI call failed */
    LOOM_ERR_FAULT,    /* an injected fault or a lost worker */
    LOOM_ERR_INTERNAL, /* a broken invariant: a bug in Loom */
    /* Not a failure of the work: the run stopped on request (SIGUSR1 or
     * SIGTERM, e.g. Slurm's preemption warning) after saving a complete
     * checkpoint, and can be resumed from it. The `loom` command exits with
     * 75 (EX_TEMPFAIL) so a batch script can tell it from a real error. */
    LOOM_ERR_INTERRUPTED,
    /* A rank of the job died (process failure reported by an MPI with ULFM).
     * Engines that can recover (loom_members_recover) catch it; anywhere else
     * it ends the job, with the dead rank's host named in the message. */
    LOOM_ERR_LOST,
    LOOM_STATUS_COUNT
} loom_status_t;

/* A short fixed name for a status ("usage error", "I/O error", ...). Thread-safe. */
const char *loom_status_name(loom_status_t st);

/* Record a failure of kind `code` in ctx with a printf-style message, and return
 * `code`. The message should carry what a user needs: "graph.el:12: negative
 * vertex id". The source location (srcfile:srcline) is kept for --verbose.
 * The first error recorded wins until loom_error_clear; later ones are ignored,
 * so the root cause survives the unwinding. Not collective. Thread-safe. */
loom_status_t loom_error_at(loom_ctx_t *ctx, loom_status_t code, const char *srcfile, int srcline,
                            const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Record a failed MPI call: the message is MPI_Error_string of `mpierr` plus
 * the call's text. Returns LOOM_ERR_MPI, or LOOM_ERR_LOST when the error says
 * that a rank died or that a peer revoked the communicator (ULFM): the job's
 * communicators are then revoked too, so that no survivor waits forever in a
 * collective the dead rank will never enter. */
loom_status_t loom_error_mpi(loom_ctx_t *ctx, int mpierr, const char *call, const char *srcfile,
                             int srcline);

/* The recorded message ("" when none) and its source location. Borrowed. */
const char *loom_error_message(const loom_ctx_t *ctx);
const char *loom_error_where(const loom_ctx_t *ctx);
loom_status_t loom_error_code(const loom_ctx_t *ctx);

/* Forget the recorded error (for callers that handle a failure themselves). */
void loom_error_clear(loom_ctx_t *ctx);

/* Collective over `comm`: every rank passes its local status; every rank gets
 * back the status of the lowest-numbered rank that failed (LOOM_OK when none did),
 * and that rank's message is copied into every rank's context, so rank 0 can
 * print it. Call it before any collective that a failed rank would skip, so that
 * no rank waits forever for a peer that already gave up. */
loom_status_t loom_agree(loom_ctx_t *ctx, MPI_Comm comm, loom_status_t st);

#define LOOM_ERROR(ctx, code, ...) loom_error_at((ctx), (code), __FILE__, __LINE__, __VA_ARGS__)

/* Propagate a failure to the caller unchanged. */
#define LOOM_TRY(expr)                                                                             \
    do {                                                                                           \
        loom_status_t loom_try_st_ = (expr);                                                       \
        if (loom_try_st_ != LOOM_OK) return loom_try_st_;                                          \
    } while (0)

/* Jump to a cleanup label on failure, keeping the status in `st`. */
#define LOOM_TRY_GOTO(st, expr, label)                                                             \
    do {                                                                                           \
        (st) = (expr);                                                                             \
        if ((st) != LOOM_OK) goto label;                                                           \
    } while (0)

/* Wrap an MPI call: on failure record it (loom_error_mpi) and return its status. */
#define LOOM_MPI(ctx, call)                                                                        \
    do {                                                                                           \
        int loom_mpi_e_ = (call);                                                                  \
        if (loom_mpi_e_ != MPI_SUCCESS)                                                            \
            return loom_error_mpi((ctx), loom_mpi_e_, #call, __FILE__, __LINE__);                  \
    } while (0)

/* The same, keeping the status in `st` and jumping to a cleanup label. */
#define LOOM_MPI_GOTO(ctx, st, call, label)                                                        \
    do {                                                                                           \
        int loom_mpi_e_ = (call);                                                                  \
        if (loom_mpi_e_ != MPI_SUCCESS) {                                                          \
            (st) = loom_error_mpi((ctx), loom_mpi_e_, #call, __FILE__, __LINE__);                  \
            goto label;                                                                            \
        }                                                                                          \
    } while (0)

/* The same for a sequence of steps that keep going on failure (each later one
 * checks `st`): record the failure in `st` unless it already holds one. */
#define LOOM_MPI_KEEP(ctx, st, call)                                                               \
    do {                                                                                           \
        int loom_mpi_e_ = (call);                                                                  \
        if (loom_mpi_e_ != MPI_SUCCESS && (st) == LOOM_OK)                                         \
            (st) = loom_error_mpi((ctx), loom_mpi_e_, #call, __FILE__, __LINE__);                  \
    } while (0)

/* Allocation that records LOOM_ERR_NOMEM with the purpose in the message. */
#define LOOM_ALLOC(ctx, ptr, nelem, what)                                                          \
    do {                                                                                           \
        size_t loom_n_ = (size_t)(nelem);                                                          \
        (ptr) = malloc((loom_n_ ? loom_n_ : 1) * sizeof *(ptr));                                   \
        if (!(ptr))                                                                                \
            return LOOM_ERROR((ctx), LOOM_ERR_NOMEM, "out of memory allocating %zu bytes for %s",  \
                              loom_n_ * sizeof *(ptr), (what));                                    \
    } while (0)

#ifdef __cplusplus
}
#endif
#endif
