/* Loom's atomic output: files and directories written under a temporary name beside the final
 * path, renamed into place only when every rank succeeded, never replacing what Loom did not
 * write. */
#ifndef LOOM_OUTPUT_H
#define LOOM_OUTPUT_H

#include "loom/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct loom_output loom_output_t;

/* Flags of an output. */
#define LOOM_OUTPUT_DIR 1u /* a directory of part files; `_SUCCESS` is written in it last */
#define LOOM_OUTPUT_OVERWRITE                                                                      \
    2u /* may replace an earlier Loom output directory (one that holds                             \
          `_SUCCESS`); without it an existing directory is refused */

/* Collective over `comm`; rank 0 checks and all agree. Succeeds when `path`
 * may be written: its directory exists and is writable; nothing is there, or
 * (file output) a regular file, or (LOOM_OUTPUT_DIR with LOOM_OUTPUT_OVERWRITE)
 * an earlier Loom output directory. Refused with LOOM_ERR_USAGE, naming the
 * path and why: a device, FIFO, socket or symbolic link (only regular files
 * are ever replaced); a directory where a file goes, or a file where a
 * directory goes; an existing directory without LOOM_OUTPUT_OVERWRITE, or one
 * that is not a Loom output; a path that is one of `inputs` (files or
 * directories the job reads), lies inside one, or contains one (replacing it
 * would delete the input). Jobs call it before any work, so that a bad --out
 * costs nothing. `inputs` may be NULL; entries that are not paths (generator
 * specs like kron:20) are ignored. */
loom_status_t loom_output_check(loom_ctx_t *ctx, MPI_Comm comm, const char *path, unsigned flags,
                                const char *const *inputs, int ninputs);

/* Collective over `comm`: loom_output_check (without inputs), then rank 0
 * removes temporaries that jobs on this host left in the target's directory
 * when they died (saying so), creates the temporary `.<name>.loom-tmp.<host>.
 * <pid>.<random>` beside the target (a directory when LOOM_OUTPUT_DIR),
 * registers it to be removed if the process ends on a signal, and every rank
 * learns its name. Fails with LOOM_ERR_USAGE or LOOM_ERR_IO. */
loom_status_t loom_output_begin(loom_ctx_t *ctx, MPI_Comm comm, const char *path, unsigned flags,
                                loom_output_t **out);
/* The temporary path to write to (the same on every rank). Borrowed. */
const char *loom_output_path(const loom_output_t *out);
/* Collective: agree on `st`; on success rank 0 writes `_SUCCESS` into a
 * directory output and renames the temporary into place (replacing a regular
 * file, or an earlier output directory when allowed), otherwise it removes the
 * temporary. Returns the agreed status. Frees *out and sets it to NULL. */
loom_status_t loom_output_end(loom_ctx_t *ctx, loom_output_t **out, loom_status_t st);

/* ------------------------------------------------------------------ HDF5 outputs of lines
 *
 * An output named *.h5 or *.hdf5 is one HDF5 file holding two 1-D variable-length string
 * datasets of equal length, /keys and /values: the lines the job would have written as
 * part files, in partition order, each split at its first TAB (LOOM_LINES_KV), or all key
 * (LOOM_LINES_KEY: values are "") or all value (LOOM_LINES_VALUE: keys are ""). Strings end
 * at a NUL byte; h5py reads them as bytes objects. The part files go to a directory
 * beside the output's temporary (begun without LOOM_OUTPUT_DIR), then rank 0 writes the
 * temporary file from them, which loom_output_end renames into place. */

typedef enum loom_lines { LOOM_LINES_KV, LOOM_LINES_KEY, LOOM_LINES_VALUE } loom_lines_t;
typedef struct loom_output_parts loom_output_parts_t;

/* 1 when `path` names an HDF5 output (*.h5, *.hdf5). */
int loom_output_is_h5(const char *path);
/* Collective over `comm`: rank 0 creates `<temporary>.parts` (registered for removal on a
 * signal) and every rank learns its name. Fails with LOOM_ERR_IO or LOOM_ERR_NOMEM;
 * *parts is then still to be passed to loom_output_parts_end. */
loom_status_t loom_output_parts_begin(loom_ctx_t *ctx, MPI_Comm comm, const loom_output_t *out,
                                      loom_output_parts_t **parts);
/* Where part file p goes: `<dir>/part-%05d`. Borrowed. */
const char *loom_output_parts_dir(const loom_output_parts_t *parts);
/* Collective: agree on `st`; on success rank 0 reads part-00000 .. part-<nparts - 1> (a
 * missing one is empty) into the output's temporary as above. The part directory is
 * removed either way. Returns the agreed status (LOOM_ERR_IO naming the file on a write
 * failure); call loom_output_end with it. Frees *parts and sets it to NULL. Call it on every
 * rank after loom_output_parts_begin, also when that failed (*parts may then be NULL). */
loom_status_t loom_output_parts_end(loom_ctx_t *ctx, MPI_Comm comm, const loom_output_t *out,
                                    loom_output_parts_t **parts, int nparts, loom_lines_t mode,
                                    loom_status_t st);

/* ------------------------------------------------------------------ scratch directories */

/* A job's directory for intermediate files that every rank reads and writes
 * (on a file system they share), e.g. the state between the MapReduce jobs of
 * an iterative command. */
typedef struct loom_scratch loom_scratch_t;

/* Collective over `comm`: rank 0 creates `<base>/loom-<host>-<pid>-<tag>-<n>`
 * (base NULL: $TMPDIR, else /tmp), registers it so that a signal that ends
 * the process removes it, and every rank learns its path. A later MapReduce
 * job with the same spill directory on this host removes one whose job is
 * gone. Fails with LOOM_ERR_IO naming the directory. */
loom_status_t loom_scratch_begin(loom_ctx_t *ctx, MPI_Comm comm, const char *base, const char *tag,
                                 loom_scratch_t **s);
const char *loom_scratch_path(const loom_scratch_t *s);
/* Collective: once every rank is done with it, rank 0 removes the directory
 * and all in it (also when the barrier fails: its error is returned).
 * Accepts NULL and *s == NULL; sets *s to NULL. */
loom_status_t loom_scratch_end(loom_ctx_t *ctx, loom_scratch_t **s);

#ifdef __cplusplus
}
#endif
#endif
