/* The process context: MPI start-up, roles, communicators and waiting politely. */
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <omp.h>

#include "runtime/ctx_internal.h"

/* A process started without a launcher (no mpirun, srun or PMI in its environment) is an
 * MPI singleton: it talks only to itself, yet Open MPI would probe every network
 * transport at MPI_Init (UCX, libfabric: 0.35 s here against 0.15 s with ob1, which
 * needs only the self and shared-memory paths). Choose ob1 unless the user chose a PML;
 * a launched job keeps whatever its MPI is configured to do. */
static void singleton_transports(void)
{
#ifdef OPEN_MPI
    static const char *launched[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof launched / sizeof *launched; i++)
        if (getenv(launched[i])) return;
    setenv("OMPI_MCA_pml", "ob1", 0);
#endif
}

loom_status_t loom_ctx_create(int *argc, char ***argv, loom_ctx_t **out)
{
    *out = NULL;
    loom_ctx_t *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return LOOM_ERR_NOMEM;
    ctx->comm = ctx->wcomm = MPI_COMM_NULL;
    ctx->threads = 1;
    ctx->two_level = -1;
    *out = ctx;

    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited) {
        int provided = MPI_THREAD_SINGLE;
        singleton_transports();
        int e = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
        if (e != MPI_SUCCESS) return loom_error_mpi(ctx, e, "MPI_Init_thread", __FILE__, __LINE__);
        ctx->owns_mpi = 1;
        if (provided < MPI_THREAD_FUNNELED)
            return LOOM_ERROR(ctx, LOOM_ERR_MPI,
                              "the MPI library provides thread level %d, Loom needs at least "
                              "MPI_THREAD_FUNNELED (%d)",
                              provided, MPI_THREAD_FUNNELED);
    }
    LOOM_MPI(ctx, MPI_Comm_dup(MPI_COMM_WORLD, &ctx->comm));
    /* Errors come back as codes so that Loom can agree on them and report
     * them once, instead of aborting the job from inside MPI. */
    LOOM_MPI(ctx, MPI_Comm_set_errhandler(ctx->comm, MPI_ERRORS_RETURN));
    MPI_Comm_rank(ctx->comm, &ctx->rank);
    MPI_Comm_size(ctx->comm, &ctx->size);
    int is_worker = ctx->size == 1 || ctx->rank > 0;
    LOOM_MPI(ctx, MPI_Comm_split(ctx->comm, is_worker ? 0 : MPI_UNDEFINED, ctx->rank, &ctx->wcomm));
    if (ctx->wcomm != MPI_COMM_NULL)
        LOOM_MPI(ctx, MPI_Comm_set_errhandler(ctx->wcomm, MPI_ERRORS_RETURN));

    LOOM_TRY(loom_members_init(ctx));

    if (hwloc_topology_init(&ctx->topo) == 0) {
        if (hwloc_topology_load(ctx->topo) == 0)
            ctx->have_topo = 1;
        else
            hwloc_topology_destroy(ctx->topo);
    }
    /* Until options are applied: the thread count OpenMP would use. */
    ctx->threads = omp_get_max_threads();
    return LOOM_OK;
}

/* MPI_Finalize after a failure can hang in Open MPI 5's ULFM (it drains
 * failures on MPI_COMM_WORLD; open-mpi/ompi#11404 and kin). Everything the
 * job had to do is done by then, so a watchdog ends the process with the
 * status it was going to have; with ULFM on, the launcher takes that as a
 * normal end. */
static volatile sig_atomic_t finalize_status;

static void finalize_timeout(int sig)
{
    (void)sig;
    _exit(finalize_status);
}

/* With ULFM on, a failed job's ranks leave without MPI_Finalize (see
 * loom_ctx_destroy). The launcher ends the job at the first non-zero exit, so
 * the master, which reports the error and removes the output's temporaries,
 * must be done first: with every rank alive a barrier orders this (a second
 * at most, so a rank that went another way cannot hold the others); after a
 * failure the workers give the master a second. */
static void end_after_master(loom_ctx_t *ctx)
{
    MPI_Request req = MPI_REQUEST_NULL;
    if (!ctx->failing && ctx->lost == 0 && ctx->comm != MPI_COMM_NULL &&
        MPI_Ibarrier(ctx->comm, &req) == MPI_SUCCESS) {
        double give_up = loom_wtime() + 1.0;
        int done = 0;
        while (MPI_Test(&req, &done, MPI_STATUS_IGNORE) == MPI_SUCCESS && !done &&
               loom_wtime() < give_up) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
        if (done) return;
    }
    if (ctx->rank != 0) {
        struct timespec ts = {1, 0};
        nanosleep(&ts, NULL);
    }
}

void loom_set_exit_status(loom_ctx_t *ctx, int status)
{
    if (ctx) ctx->exit_status = status;
}

void loom_ctx_destroy(loom_ctx_t **pctx)
{
    if (!pctx || !*pctx) return;
    loom_ctx_t *ctx = *pctx;
    for (int i = 0; i < ctx->ntimers; i++)
        free(ctx->timers[i].name);
    free(ctx->timers);
    for (int i = 0; i < ctx->nfields; i++) {
        free(ctx->fields[i].key);
        free(ctx->fields[i].s);
    }
    free(ctx->fields);
    if (ctx->have_topo) hwloc_topology_destroy(ctx->topo);
    loom_members_free(ctx);
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) {
        /* With ULFM on, a job that failed or saw a failure it did not recover
         * from ends here: finalising could wait for the dead, and HDF5's exit
         * hook crashes on a file whose collective close failed (a crash the
         * launcher, in ULFM mode, would not count as an error). */
        if (ctx->owns_mpi && ctx->ft && (ctx->failing || ctx->exit_status != 0)) {
            fflush(NULL);
            end_after_master(ctx);
            _exit(ctx->exit_status ? ctx->exit_status : 1);
        }
        if (ctx->wcomm != MPI_COMM_NULL) MPI_Comm_free(&ctx->wcomm);
        if (ctx->comm != MPI_COMM_NULL) MPI_Comm_free(&ctx->comm);
        if (ctx->owns_mpi) {
            /* after a recovery, finalising gets 5 s */
            if (ctx->ft && (ctx->lost > 0 || ctx->failure_at > 0)) {
                finalize_status = ctx->exit_status;
                signal(SIGALRM, finalize_timeout);
                alarm(5);
            }
            MPI_Finalize();
            alarm(0);
        }
    }
    free(ctx);
    *pctx = NULL;
}

int loom_rank(const loom_ctx_t *ctx)
{
    return ctx->rank;
}
int loom_size(const loom_ctx_t *ctx)
{
    return ctx->size;
}
int loom_is_master(const loom_ctx_t *ctx)
{
    return ctx->rank == 0;
}
int loom_is_worker(const loom_ctx_t *ctx)
{
    return ctx->size == 1 || ctx->rank > 0;
}
int loom_num_workers(const loom_ctx_t *ctx)
{
    return ctx->size == 1 ? 1 : ctx->size - 1;
}
int loom_worker_index(const loom_ctx_t *ctx)
{
    if (ctx->size == 1) return 0;
    return ctx->rank - 1;
}
int loom_worker_rank(const loom_ctx_t *ctx, int w)
{
    return ctx->size == 1 ? 0 : w + 1;
}
MPI_Comm loom_comm(const loom_ctx_t *ctx)
{
    return ctx->comm;
}
MPI_Comm loom_worker_comm(const loom_ctx_t *ctx)
{
    return ctx->wcomm;
}
int loom_threads(const loom_ctx_t *ctx)
{
    return ctx->threads;
}

double loom_wtime(void)
{
    return MPI_Wtime();
}

size_t loom_peak_rss(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (size_t)ru.ru_maxrss * 1024u; /* Linux reports kilobytes */
}

/* Poll a request, sleeping between polls when `polite`. Under ULFM, also look
 * every 20 ms for a failure this rank has been told of: a nonblocking
 * collective whose peer died does not always complete with an error (Open MPI
 * 5's libnbc can wait on a live rank that itself waits on the dead one), so a
 * survivor that knows of a failure revokes the communicators, which ends every
 * pending operation on them at every rank. */
static loom_status_t poll_request(loom_ctx_t *ctx, MPI_Request *req, MPI_Status *status, int polite)
{
    /* Back off from 2 us to 500 us between polls: quick to notice a fast
     * reply, and under 1% of a core while a long superstep runs elsewhere. */
    long sleep_ns = 2000;
    double next_check = ctx->ft ? loom_wtime() + 0.02 : 0;
    for (;;) {
        int done = 0;
        int e = MPI_Test(req, &done, status ? status : MPI_STATUS_IGNORE);
        if (e != MPI_SUCCESS) return loom_error_mpi(ctx, e, "MPI_Test", __FILE__, __LINE__);
        if (done) return LOOM_OK;
        if (ctx->ft && loom_wtime() >= next_check) {
            if (loom_members_failure_known(ctx)) return loom_members_lost(ctx, "MPI_Test");
            if (loom_launcher_gone(ctx))
                return LOOM_ERROR(ctx, LOOM_ERR_LOST,
                                  "the launcher is gone (mpirun or the node's daemon died)");
            next_check = loom_wtime() + 0.02;
        }
        if (!polite) continue;
        struct timespec ts = {0, sleep_ns};
        nanosleep(&ts, NULL);
        if (sleep_ns < 500000) sleep_ns *= 2;
    }
}

loom_status_t loom_wait(loom_ctx_t *ctx, MPI_Request *req, MPI_Status *status)
{
    return poll_request(ctx, req, status, 1);
}

loom_status_t loom_wait_hot(loom_ctx_t *ctx, MPI_Request *req, MPI_Status *status)
{
    if (ctx->ft) return poll_request(ctx, req, status, 0);
    int e = MPI_Wait(req, status ? status : MPI_STATUS_IGNORE);
    return e == MPI_SUCCESS ? LOOM_OK : loom_error_mpi(ctx, e, "MPI_Wait", __FILE__, __LINE__);
}
