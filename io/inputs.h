/* Internal: expanding a job's text inputs (files, directories, glob patterns) to files. */
#ifndef LOOM_IO_INPUTS_H
#define LOOM_IO_INPUTS_H

#include <stddef.h>

#include "loom/runtime.h"

/* A growable list of strings (each one the list's own copy). */
typedef struct loom_strlist {
    char **v;
    size_t n, cap;
} loom_strlist_t;

loom_status_t loom_strlist_add(loom_ctx_t *ctx, loom_strlist_t *l, const char *s);
void loom_strlist_free(loom_strlist_t *l);

/* Append the files that `inputs` name to `files`, in order: a directory gives
 * every regular file below it, recursively, in byte order of the path (names
 * starting with '.' or '_' skipped, so an earlier job's output directory can
 * be read back; symbolic links followed, one pointing nowhere skipped with a
 * warning, a loop refused); a pattern with * ? [ gives its matches; an input
 * for which `verbatim` (may be NULL) returns 1 is appended as given. Every
 * file is checked: it opens, and its first 64 KiB hold no NUL byte (binary
 * files are refused with LOOM_ERR_FORMAT naming them). Errors name the path.
 * Local (rank 0 runs it and broadcasts the list). */
loom_status_t loom_inputs_expand(loom_ctx_t *ctx, const char *const *inputs, int n,
                                 int (*verbatim)(const char *spec), loom_strlist_t *files);

#endif
