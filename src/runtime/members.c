/* Membership: the live ranks of the job, who ran where, and recovery from a dead worker (ULFM). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "runtime/ctx_internal.h"

#ifdef LOOM_HAVE_ULFM
#include <mpi-ext.h>
#endif

double loom_epoch(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Whether the launcher switched fault tolerance on (Open MPI 5: the MCA
 * variable mpi_ft_enable, which `mpirun --with-ft ulfm` sets). Read through
 * MPI_T; a library built without the variable has ULFM off. */
static int ft_enabled_at_launch(void)
{
#ifdef LOOM_HAVE_ULFM
    int provided = 0, idx = -1, on = 0;
    if (MPI_T_init_thread(MPI_THREAD_SINGLE, &provided) != MPI_SUCCESS) return 0;
    if (MPI_T_cvar_get_index("mpi_ft_enable", &idx) == MPI_SUCCESS) {
        MPI_T_cvar_handle h;
        int count = 0;
        /* A bool of unstated width: read into zeroed bytes and look at all. */
        unsigned char v[16] = {0};
        if (MPI_T_cvar_handle_alloc(idx, NULL, &h, &count) == MPI_SUCCESS) {
            if (count == 1 && MPI_T_cvar_read(h, v) == MPI_SUCCESS)
                for (size_t i = 0; i < sizeof v; i++)
                    on |= v[i] != 0;
            MPI_T_cvar_handle_free(&h);
        }
    }
    MPI_T_finalize();
    return on;
#else
    return 0;
#endif
}

loom_status_t loom_members_init(loom_ctx_t *ctx)
{
    ctx->ft = ft_enabled_at_launch();
    ctx->launcher_pid = getppid();
    ctx->start_size = ctx->size;
    ctx->start_rank = malloc((size_t)ctx->size * sizeof *ctx->start_rank);
    ctx->peers = calloc((size_t)ctx->size, sizeof *ctx->peers);
    if (!ctx->start_rank || !ctx->peers)
        return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory for the peer table");
    for (int r = 0; r < ctx->size; r++)
        ctx->start_rank[r] = r;
    loom_peer_t me;
    memset(&me, 0, sizeof me);
    if (gethostname(me.host, sizeof me.host - 1) != 0) snprintf(me.host, sizeof me.host, "?");
    me.pid = (int64_t)getpid();
    LOOM_MPI(ctx, MPI_Allgather(&me, (int)sizeof me, MPI_BYTE, ctx->peers, (int)sizeof me, MPI_BYTE,
                                ctx->comm));
    return LOOM_OK;
}

void loom_members_free(loom_ctx_t *ctx)
{
    free(ctx->start_rank);
    free(ctx->peers);
    ctx->start_rank = NULL;
    ctx->peers = NULL;
}

int loom_ft_enabled(const loom_ctx_t *ctx)
{
    return ctx->ft;
}

int loom_members_revoked(const loom_ctx_t *ctx)
{
#ifdef LOOM_HAVE_ULFM
    int flag = 0;
    if (ctx->ft && ctx->comm != MPI_COMM_NULL &&
        MPIX_Comm_is_revoked(ctx->comm, &flag) == MPI_SUCCESS)
        return flag;
#else
    (void)ctx;
#endif
    return 0;
}

int loom_launcher_gone(const loom_ctx_t *ctx)
{
    return ctx->start_size > 1 && getppid() != ctx->launcher_pid;
}

int loom_start_rank(const loom_ctx_t *ctx, int rank)
{
    if (!ctx->start_rank || rank < 0 || rank >= ctx->size) return -1;
    return ctx->start_rank[rank];
}

const char *loom_host_of(const loom_ctx_t *ctx, int start_rank)
{
    if (!ctx->peers || start_rank < 0 || start_rank >= ctx->start_size) return "?";
    return ctx->peers[start_rank].host;
}

int loom_members_failed(const loom_ctx_t *ctx)
{
    return ctx->failing;
}

void loom_members_note_failure(loom_ctx_t *ctx)
{
    if (ctx->failure_at == 0) ctx->failure_at = loom_epoch();
    ctx->failing = 1;
}

int loom_mpi_is_failure(int mpierr)
{
#ifdef LOOM_HAVE_ULFM
    int cls = MPI_ERR_UNKNOWN;
    if (mpierr == MPI_SUCCESS || MPI_Error_class(mpierr, &cls) != MPI_SUCCESS) return 0;
    return cls == MPIX_ERR_PROC_FAILED || cls == MPIX_ERR_PROC_FAILED_PENDING ||
           cls == MPIX_ERR_REVOKED;
#else
    (void)mpierr;
    return 0;
#endif
}

int loom_comm_dead_ranks(loom_ctx_t *ctx, MPI_Comm comm, int *ranks, int max)
{
    int n = 0;
#ifdef LOOM_HAVE_ULFM
    if (!ctx->ft) return 0;
    int acked = 0;
    int csize = 0;
    MPI_Comm_size(comm, &csize);
    MPIX_Comm_ack_failed(comm, csize, &acked);
    MPI_Group failed = MPI_GROUP_NULL, all = MPI_GROUP_NULL;
    if (MPIX_Comm_get_failed(comm, &failed) != MPI_SUCCESS) return 0;
    int nf = 0;
    MPI_Group_size(failed, &nf);
    if (nf > 0 && MPI_Comm_group(comm, &all) == MPI_SUCCESS) {
        for (int i = 0; i < nf && n < max; i++) {
            int r = -1;
            MPI_Group_translate_ranks(failed, 1, &i, all, &r);
            if (r >= 0) ranks[n++] = r;
        }
        MPI_Group_free(&all);
    }
    MPI_Group_free(&failed);
    if (n) loom_members_note_failure(ctx);
#else
    (void)ctx;
    (void)comm;
    (void)ranks;
    (void)max;
#endif
    return n;
}

int loom_members_dead_ranks(loom_ctx_t *ctx, int *ranks, int max)
{
    return loom_comm_dead_ranks(ctx, ctx->comm, ranks, max);
}

void loom_mpi_describe(const loom_ctx_t *ctx, char *buf, size_t len)
{
    char lib[MPI_MAX_LIBRARY_VERSION_STRING];
    int n = 0;
    if (MPI_Get_library_version(lib, &n) != MPI_SUCCESS) snprintf(lib, sizeof lib, "MPI");
    lib[strcspn(lib, "\n,")] = '\0';
#ifdef LOOM_HAVE_ULFM
    snprintf(buf, len, "%s; ULFM: yes, %s", lib,
             ctx && ctx->ft ? "enabled (workers may die)"
                            : "not enabled (launch with mpirun --with-ft ulfm)");
#else
    (void)ctx;
    snprintf(buf, len, "%s; ULFM: no (a dead rank ends the job)", lib);
#endif
}

/* Describe one rank by its start number: "worker rank 2 (pid 77 on node3)". */
static int describe_rank(const loom_ctx_t *ctx, int start, char *buf, size_t len)
{
    const loom_peer_t *p = start >= 0 && start < ctx->start_size ? &ctx->peers[start] : NULL;
    return snprintf(buf, len, "%s rank %d (pid %lld on %s)", start == 0 ? "the master," : "worker",
                    start, p ? (long long)p->pid : -1LL, p ? p->host : "?");
}

void loom_members_revoke(loom_ctx_t *ctx)
{
#ifdef LOOM_HAVE_ULFM
    if (!ctx->ft) return;
    int flag = 0;
    if (ctx->comm != MPI_COMM_NULL && MPIX_Comm_is_revoked(ctx->comm, &flag) == MPI_SUCCESS &&
        !flag)
        MPIX_Comm_revoke(ctx->comm);
    flag = 0;
    if (ctx->wcomm != MPI_COMM_NULL && MPIX_Comm_is_revoked(ctx->wcomm, &flag) == MPI_SUCCESS &&
        !flag)
        MPIX_Comm_revoke(ctx->wcomm);
#else
    (void)ctx;
#endif
}

void loom_comm_revoke(loom_ctx_t *ctx, MPI_Comm comm)
{
#ifdef LOOM_HAVE_ULFM
    int flag = 0;
    if (ctx->ft && comm != MPI_COMM_NULL && MPIX_Comm_is_revoked(comm, &flag) == MPI_SUCCESS &&
        !flag)
        MPIX_Comm_revoke(comm);
#else
    (void)ctx;
    (void)comm;
#endif
}

/* The start ranks of the processes of `comm` that MPI reports as failed. */
static int failed_starts(loom_ctx_t *ctx, MPI_Comm comm, int *out, int max)
{
    int n = 0;
#ifdef LOOM_HAVE_ULFM
    if (!ctx->ft || comm == MPI_COMM_NULL) return 0;
    MPI_Group failed = MPI_GROUP_NULL, all = MPI_GROUP_NULL;
    if (MPIX_Comm_get_failed(comm, &failed) != MPI_SUCCESS) return 0;
    int nf = 0;
    MPI_Group_size(failed, &nf);
    if (nf > 0 && MPI_Comm_group(comm, &all) == MPI_SUCCESS) {
        for (int i = 0; i < nf && n < max; i++) {
            int r = -1;
            MPI_Group_translate_ranks(failed, 1, &i, all, &r);
            if (r >= 0 && r < ctx->size) out[n++] = ctx->start_rank[r];
        }
        MPI_Group_free(&all);
    }
    MPI_Group_free(&failed);
#else
    (void)ctx;
    (void)comm;
    (void)out;
    (void)max;
#endif
    return n;
}

int loom_members_failure_known(loom_ctx_t *ctx)
{
    int dead[1];
    return failed_starts(ctx, ctx->comm, dead, 1) > 0;
}

loom_status_t loom_members_lost(loom_ctx_t *ctx, const char *call)
{
    loom_members_note_failure(ctx);
    loom_members_revoke(ctx);
    char who[256];
    loom_members_describe_failed(ctx, who, sizeof who);
    return LOOM_ERROR(ctx, LOOM_ERR_LOST, "%s (MPI reported it during %s)", who, call);
}

void loom_members_describe_failed(loom_ctx_t *ctx, char *buf, size_t len)
{
    int dead[8];
    int n = failed_starts(ctx, ctx->comm, dead, 8);
    if (n == 0) {
        snprintf(buf, len, "a rank of the job died");
        return;
    }
    size_t at = (size_t)describe_rank(ctx, dead[0], buf, len);
    for (int i = 1; i < n && at < len; i++) {
        at += (size_t)snprintf(buf + at, len - at, ", ");
        if (at < len) at += (size_t)describe_rank(ctx, dead[i], buf + at, len - at);
    }
    if (at < len) snprintf(buf + at, len - at, " died");
}

loom_status_t loom_members_agree(loom_ctx_t *ctx, int *ok)
{
    int flag = *ok ? 1 : 0;
#ifdef LOOM_HAVE_ULFM
    if (ctx->ft) {
        /* The agreed flag is the same on every survivor whatever the return
         * code says (it reports failures this rank had not acknowledged), so
         * decisions are taken on the flag alone. */
        int acked = 0;
        MPIX_Comm_ack_failed(ctx->comm, ctx->size, &acked);
        if (acked > 0) flag = 0;
        /* Nonblocking, so that a master waiting for its workers sleeps. A
         * process that died before contributing makes the agreement fail
         * with MPIX_ERR_PROC_FAILED at every survivor alike (unless all had
         * acknowledged it, and then they all passed 0): either way the
         * answer is the same everywhere. */
        MPI_Request req;
        int rc = MPIX_Comm_iagree(ctx->comm, &flag, &req);
        if (rc == MPI_SUCCESS) {
            long ns = 2000;
            for (;;) {
                int done = 0;
                rc = MPI_Test(&req, &done, MPI_STATUS_IGNORE);
                if (rc != MPI_SUCCESS || done) break;
                struct timespec ts = {0, ns};
                nanosleep(&ts, NULL);
                if (ns < 500000) ns *= 2;
            }
        } else {
            rc = MPIX_Comm_agree(ctx->comm, &flag);
        }
        *ok = flag != 0 && rc == MPI_SUCCESS;
        if (!*ok) loom_members_note_failure(ctx);
        return LOOM_OK;
    }
#endif
    LOOM_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, &flag, 1, MPI_INT, MPI_LAND, ctx->comm));
    *ok = flag != 0;
    return LOOM_OK;
}

void loom_recovery_free(loom_recovery_t *rec)
{
    if (!rec) return;
    free(rec->old_rank);
    free(rec->new_rank);
    free(rec->lost);
    memset(rec, 0, sizeof *rec);
}

#ifdef LOOM_HAVE_ULFM
/* Replace the job communicator by `nc` (already shrunk): renumber, keep the
 * start ranks, split the workers again. */
static loom_status_t adopt(loom_ctx_t *ctx, MPI_Comm nc, loom_recovery_t *rec)
{
    MPI_Group og = MPI_GROUP_NULL, ng = MPI_GROUP_NULL;
    int nsize = 0, nrank = 0;
    MPI_Comm_size(nc, &nsize);
    MPI_Comm_rank(nc, &nrank);
    int *ranks = malloc((size_t)(nsize + ctx->size) * sizeof *ranks);
    rec->old_rank = malloc((size_t)nsize * sizeof *rec->old_rank);
    rec->new_rank = malloc((size_t)ctx->size * sizeof *rec->new_rank);
    rec->lost = malloc((size_t)ctx->size * sizeof *rec->lost);
    int *starts = malloc((size_t)nsize * sizeof *starts);
    if (!ranks || !rec->old_rank || !rec->new_rank || !rec->lost || !starts) {
        free(ranks);
        free(starts);
        return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory rebuilding the job's members");
    }
    MPI_Comm_group(ctx->comm, &og);
    MPI_Comm_group(nc, &ng);
    for (int i = 0; i < nsize; i++)
        ranks[i] = i;
    MPI_Group_translate_ranks(ng, nsize, ranks, og, rec->old_rank);
    MPI_Group_free(&og);
    MPI_Group_free(&ng);
    rec->old_size = ctx->size;
    for (int r = 0; r < ctx->size; r++)
        rec->new_rank[r] = -1;
    for (int i = 0; i < nsize; i++) {
        rec->new_rank[rec->old_rank[i]] = i;
        starts[i] = ctx->start_rank[rec->old_rank[i]];
    }
    rec->nlost = 0;
    for (int r = 0; r < ctx->size; r++)
        if (rec->new_rank[r] < 0) rec->lost[rec->nlost++] = ctx->start_rank[r];
    free(ranks);

    /* The old communicators are revoked; freeing them is all that is left. */
    if (ctx->wcomm != MPI_COMM_NULL) MPI_Comm_free(&ctx->wcomm);
    MPI_Comm_free(&ctx->comm);
    ctx->comm = nc;
    int e = MPI_Comm_set_errhandler(nc, MPI_ERRORS_RETURN);
    if (e != MPI_SUCCESS)
        return loom_error_mpi(ctx, e, "MPI_Comm_set_errhandler", __FILE__, __LINE__);
    free(ctx->start_rank);
    ctx->start_rank = starts;
    ctx->rank = nrank;
    ctx->size = nsize;
    ctx->wcomm = MPI_COMM_NULL;
    int is_worker = nsize == 1 || nrank > 0;
    e = MPI_Comm_split(nc, is_worker ? 0 : MPI_UNDEFINED, nrank, &ctx->wcomm);
    if (e != MPI_SUCCESS) return loom_error_mpi(ctx, e, "MPI_Comm_split", __FILE__, __LINE__);
    if (ctx->wcomm != MPI_COMM_NULL) e = MPI_Comm_set_errhandler(ctx->wcomm, MPI_ERRORS_RETURN);
    if (e != MPI_SUCCESS)
        return loom_error_mpi(ctx, e, "MPI_Comm_set_errhandler", __FILE__, __LINE__);
    return LOOM_OK;
}
#endif

loom_status_t loom_members_recover(loom_ctx_t *ctx, loom_recovery_t *rec)
{
    memset(rec, 0, sizeof *rec);
#ifdef LOOM_HAVE_ULFM
    if (!ctx->ft)
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                          "recovery needs an MPI with ULFM enabled (mpirun --with-ft ulfm)");
    if (ctx->failure_at == 0) ctx->failure_at = loom_epoch();
    double t0 = loom_wtime();
    loom_members_revoke(ctx);
    /* A rank may die during the recovery itself: shrink until the workers'
     * communicator can be rebuilt on the result. */
    loom_status_t st = LOOM_ERR_LOST;
    for (int attempt = 0; attempt < 8 && st == LOOM_ERR_LOST; attempt++) {
        MPI_Comm nc = MPI_COMM_NULL;
        int e = MPIX_Comm_shrink(ctx->comm, &nc);
        if (e != MPI_SUCCESS) return loom_error_mpi(ctx, e, "MPIX_Comm_shrink", __FILE__, __LINE__);
        loom_recovery_t step;
        memset(&step, 0, sizeof step);
        loom_error_clear(ctx);
        st = adopt(ctx, nc, &step);
        if (st == LOOM_OK || st == LOOM_ERR_LOST) {
            /* compose with the earlier attempts: lost ranks accumulate */
            if (!rec->old_rank) {
                *rec = step;
            } else {
                for (int i = 0; i < step.nlost; i++)
                    rec->lost[rec->nlost++] = step.lost[i];
                for (int i = 0; i < ctx->size; i++)
                    rec->old_rank[i] = rec->old_rank[step.old_rank[i]];
                for (int r = 0; r < rec->old_size; r++)
                    rec->new_rank[r] = rec->new_rank[r] >= 0 ? step.new_rank[rec->new_rank[r]] : -1;
                loom_recovery_free(&step);
            }
        } else {
            loom_recovery_free(&step);
        }
        if (st == LOOM_ERR_LOST) loom_members_revoke(ctx);
    }
    if (st != LOOM_OK) return st;
    ctx->failing = 0;
    ctx->lost += rec->nlost;
    ctx->recovery_s += loom_wtime() - t0;
    loom_summary_int(ctx, "lost_ranks", ctx->lost);
    loom_summary_double(ctx, "failure_detected_at", ctx->failure_at);
    for (int i = 0; i < rec->nlost; i++) {
        char who[160];
        describe_rank(ctx, rec->lost[i], who, sizeof who);
        if (rec->lost[i] == 0)
            return LOOM_ERROR(ctx, LOOM_ERR_LOST,
                              "%s died; the job cannot go on without its master (as in "
                              "MapReduce, the master is not replicated): %s",
                              who, loom_resume_hint(ctx));
        loom_log(ctx, LOOM_LOG_WARN, "%s died; going on with %d worker%s", who,
                 loom_num_workers(ctx), loom_num_workers(ctx) == 1 ? "" : "s");
    }
    if (ctx->size < 2)
        return LOOM_ERROR(ctx, LOOM_ERR_LOST, "every worker died; %s", loom_resume_hint(ctx));
    return LOOM_OK;
#else
    return LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                      "this Loom was built without ULFM (cmake -DLOOM_MPI=ulfm): a dead rank "
                      "ends the job");
#endif
}

void loom_members_resumed(loom_ctx_t *ctx)
{
    if (ctx->failure_at == 0) return;
    double s = loom_epoch() - ctx->failure_at;
    loom_summary_double(ctx, "recovery_s", s);
    ctx->failure_at = 0;
}
