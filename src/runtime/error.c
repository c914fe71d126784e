/* Error recording, MPI error text and collective agreement on failure. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/ctx_internal.h"

static const char *const status_names[LOOM_STATUS_COUNT] = {
    [LOOM_OK] = "ok",
    [LOOM_ERR_USAGE] = "usage error",
    [LOOM_ERR_IO] = "I/O error",
    [LOOM_ERR_FORMAT] = "format error",
    [LOOM_ERR_NOMEM] = "out of memory",
    [LOOM_ERR_MPI] = "MPI error",
    [LOOM_ERR_FAULT] = "fault",
    [LOOM_ERR_INTERNAL] = "internal error",
    [LOOM_ERR_INTERRUPTED] = "interrupted",
    [LOOM_ERR_LOST] = "rank lost",
};

const char *loom_status_name(loom_status_t st)
{
    if ((int)st < 0 || st >= LOOM_STATUS_COUNT) return "unknown status";
    return status_names[st];
}

static void record(loom_ctx_t *ctx, loom_status_t code, const char *srcfile, int srcline,
                   const char *fmt, va_list ap)
{
#pragma omp critical(loom_error)
    {
        if (ctx->err_code == LOOM_OK) {
            ctx->err_code = code;
            vsnprintf(ctx->err_msg, sizeof ctx->err_msg, fmt, ap);
            snprintf(ctx->err_where, sizeof ctx->err_where, "%s:%d", srcfile, srcline);
        }
    }
}

loom_status_t loom_error_at(loom_ctx_t *ctx, loom_status_t code, const char *srcfile, int srcline,
                            const char *fmt, ...)
{
    if (!ctx) return code;
    va_list ap;
    va_start(ap, fmt);
    record(ctx, code, srcfile, srcline, fmt, ap);
    va_end(ap);
    return code;
}

loom_status_t loom_error_mpi(loom_ctx_t *ctx, int mpierr, const char *call, const char *srcfile,
                             int srcline)
{
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(mpierr, text, &len) != MPI_SUCCESS)
        snprintf(text, sizeof text, "code %d", mpierr);
    if (ctx && loom_mpi_is_failure(mpierr)) {
        loom_members_note_failure(ctx);
        loom_members_revoke(ctx);
        char who[256];
        loom_members_describe_failed(ctx, who, sizeof who);
        return loom_error_at(ctx, LOOM_ERR_LOST, srcfile, srcline, "%s (MPI: %s in %s)", who, text,
                             call);
    }
    return loom_error_at(ctx, LOOM_ERR_MPI, srcfile, srcline, "MPI call failed: %s (%s)", text,
                         call);
}

const char *loom_error_message(const loom_ctx_t *ctx)
{
    return ctx ? ctx->err_msg : "";
}
const char *loom_error_where(const loom_ctx_t *ctx)
{
    return ctx ? ctx->err_where : "";
}
loom_status_t loom_error_code(const loom_ctx_t *ctx)
{
    return ctx ? ctx->err_code : LOOM_OK;
}

void loom_error_clear(loom_ctx_t *ctx)
{
    ctx->err_code = LOOM_OK;
    ctx->err_msg[0] = ctx->err_where[0] = '\0';
}

loom_status_t loom_agree(loom_ctx_t *ctx, MPI_Comm comm, loom_status_t st)
{
    int rank, size;
    if (comm == MPI_COMM_NULL) return st;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    int mine = st != LOOM_OK ? rank : size, first = size;
    int e = MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm);
    if (e != MPI_SUCCESS)
        return loom_error_mpi(ctx, e, "MPI_Allreduce (agree)", __FILE__, __LINE__);
    if (first == size) return LOOM_OK;

    /* Every rank takes the first failure's code and message, so whichever rank
     * prints, it prints the root cause. */
    struct {
        int code;
        char msg[LOOM_MSG_MAX];
        char where[LOOM_WHERE_MAX];
    } buf;
    memset(&buf, 0, sizeof buf);
    if (rank == first) {
        buf.code = st;
        if (ctx->err_code != LOOM_OK) {
            memcpy(buf.msg, ctx->err_msg, sizeof buf.msg);
            memcpy(buf.where, ctx->err_where, sizeof buf.where);
        } else {
            snprintf(buf.msg, sizeof buf.msg, "%s on rank %d", loom_status_name(st), rank);
        }
    }
    e = MPI_Bcast(&buf, (int)sizeof buf, MPI_BYTE, first, comm);
    if (e != MPI_SUCCESS) return loom_error_mpi(ctx, e, "MPI_Bcast (agree)", __FILE__, __LINE__);
    ctx->err_code = (loom_status_t)buf.code;
    memcpy(ctx->err_msg, buf.msg, sizeof buf.msg);
    memcpy(ctx->err_where, buf.where, sizeof buf.where);
    return (loom_status_t)buf.code;
}
