/* Logging and progress on stderr: rank 0 speaks, every rank only with --verbose. */
#include <stdarg.h>
#include <stdio.h>

#include "runtime/ctx_internal.h"

int loom_log_enabled(const loom_ctx_t *ctx, loom_level_t level)
{
    switch (level) {
    case LOOM_LOG_ERROR:
    case LOOM_LOG_WARN:
        return 1;
    case LOOM_LOG_INFO:
        return !ctx->quiet;
    case LOOM_LOG_VERBOSE:
        return ctx->verbose;
    }
    return 0;
}

int loom_json_enabled(const loom_ctx_t *ctx)
{
    return ctx->json;
}

void loom_log(const loom_ctx_t *ctx, loom_level_t level, const char *fmt, ...)
{
    if (ctx->rank != 0 || !loom_log_enabled(ctx, level)) return;
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    const char *prefix = level == LOOM_LOG_ERROR  ? "loom: error: "
                         : level == LOOM_LOG_WARN ? "loom: warning: "
                                                  : "";
    /* One fputs per line keeps lines whole when ranks share a terminal. */
    fprintf(stderr, "%s%s\n", prefix, line);
}

void loom_log_all(const loom_ctx_t *ctx, const char *fmt, ...)
{
    if (!ctx->verbose) return;
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "[r%d] %s\n", ctx->rank, line);
}

void loom_error_report(const loom_ctx_t *ctx)
{
    if (ctx->rank != 0 || ctx->err_code == LOOM_OK) return;
    fprintf(stderr, "loom: error: %s\n",
            ctx->err_msg[0] ? ctx->err_msg : loom_status_name(ctx->err_code));
    if (ctx->verbose && ctx->err_where[0])
        fprintf(stderr, "loom: (%s, detected at %s)\n", loom_status_name(ctx->err_code),
                ctx->err_where);
}
