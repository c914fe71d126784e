/* Input checks: the file (once on rank 0, so that every rank fails the same
 * way) and what the reader found in it. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/io_internal.h"

static loom_status_t check_on_master(loom_ctx_t *ctx, const char *path)
{
    struct stat sb;
    if (!path || !*path) return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "no input file given");
    if (stat(path, &sb) != 0) {
        if (errno == ENOENT) return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: no such file", path);
        return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot access: %s", path, strerror(errno));
    }
    if (S_ISDIR(sb.st_mode))
        return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: is a directory, not a graph file", path);
    if (!S_ISREG(sb.st_mode)) return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: not a regular file", path);
    if (sb.st_size == 0) return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: file is empty", path);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    close(fd);
    return LOOM_OK;
}

loom_status_t loom_check_input_file(loom_ctx_t *ctx, const char *path)
{
    loom_status_t st = LOOM_OK;
    if (loom_rank(ctx) == 0) st = check_on_master(ctx, path);
    return loom_agree(ctx, loom_comm(ctx), st);
}

void loom_read_note_negative(loom_read_result_t *r, double w, const char *fmt, ...)
{
    char where[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(where, sizeof where, fmt, ap);
    va_end(ap);
    snprintf(r->negative_weight, sizeof r->negative_weight, "%s: negative weight %g", where, w);
}
