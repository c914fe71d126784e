/* Internal text-file helpers: byte ranges aligned to line starts with global
 * line numbers (parallel readers), and ordered parallel text output (writers). */
#ifndef LOOM_IO_TEXTSPLIT_H
#define LOOM_IO_TEXTSPLIT_H

#include <stddef.h>
#include <stdint.h>

#include "io/textparse.h"
#include "loom/runtime.h"

/* The smallest line start at or after `nominal` within [lo, hi): `lo` itself
 * is a line start by definition, otherwise a position is a line start when the
 * byte before it is '\n'. Returns `hi` when no line starts in the range.
 * Reads with pread on `fd`; not collective, thread-safe. */
loom_status_t loom_text_align(loom_ctx_t *ctx, const char *path, int fd, uint64_t lo, uint64_t hi,
                              uint64_t nominal, uint64_t *aligned);

/* Read bytes [begin, end) of `fd` into a new NUL-terminated buffer (*data is
 * the caller's to free; NULL when end == begin). Not collective. */
loom_status_t loom_text_read_range(loom_ctx_t *ctx, const char *path, int fd, uint64_t begin,
                                   uint64_t end, char **data);

/* Pass as `hi` to mean "the end of the file". */
#define LOOM_TEXT_TO_END UINT64_MAX

/* Collective over `comm`: split the file's bytes [lo, hi) into `nparts`
 * line-aligned ranges and read range `part` on this rank (part < 0: this rank
 * reads nothing and takes part in the collectives only). The parts must be
 * numbered in the order of their ranks in `comm`, so that an exclusive scan of
 * newline counts gives each range's first line; `lo_line` is the line number of
 * the line starting at `lo` (1 for the start of the file). Agrees on failure
 * over `comm`. The chunk is the caller's; free it with loom_text_chunk_free. */
loom_status_t loom_text_read_split(loom_ctx_t *ctx, MPI_Comm comm, const char *path, uint64_t lo,
                                   uint64_t hi, uint64_t lo_line, int part, int nparts,
                                   loom_text_chunk_t *chunk);
void loom_text_chunk_free(loom_text_chunk_t *chunk);

/* Ordered parallel text output. `fill` appends the next piece of this rank's
 * text to buf (at most `cap` bytes, setting *len) and sets *done when this
 * rank has nothing more; it must always make progress when it has a line that
 * fits (cap is at least LOOM_TEXT_MIN_CAP). */
#define LOOM_TEXT_MIN_CAP 4096
typedef loom_status_t (*loom_text_fill_fn)(loom_ctx_t *ctx, void *arg, char *buf, size_t cap,
                                           size_t *len, int *done);

/* Restart `fill` from the beginning of this rank's text. */
typedef loom_status_t (*loom_text_rewind_fn)(loom_ctx_t *ctx, void *arg);

/* Collective over `comm`: create/truncate `path` and write each rank's text in
 * rank order (rank 0's text first). A first pass runs `fill` to measure each
 * rank's size (an exclusive scan gives its offset), then `rewind` and a second
 * pass write it in rounds with MPI_File_write_at_all; a text that fits one
 * buffer is formatted once. `fill` must give the same text both times. Memory
 * per rank is one round's buffer (8 MiB). Agrees on failure over `comm`. */
loom_status_t loom_text_write_ordered(loom_ctx_t *ctx, MPI_Comm comm, const char *path,
                                      loom_text_fill_fn fill, loom_text_rewind_fn rewind,
                                      void *arg);

#endif
