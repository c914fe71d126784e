/* Internal: 1-D numeric HDF5 datasets named FILE:/DATASET, read by element ranges. The
 * MapReduce and dataset engines both take them as inputs. */
#ifndef LOOM_IO_ELEMENTS_H
#define LOOM_IO_ELEMENTS_H

#include <stdint.h>

#include "loom/runtime.h"

/* How an element is held in its 8 bytes. */
typedef enum loom_elem_kind {
    LOOM_ELEM_I64 = 0, /* signed integers of any width, as int64_t */
    LOOM_ELEM_U64 = 1, /* unsigned integers of any width, as uint64_t */
    LOOM_ELEM_F64 = 2, /* floats of any width, as double */
} loom_elem_kind_t;

/* 1 when `spec` names a dataset: it holds ":/" after a file name and is not itself an
 * existing path (a text file whose name holds ":/" stays a text file). */
int loom_h5_elements_spec(const char *spec);

/* The element count and kind of the dataset `spec` names. A missing file or dataset, one
 * that is not 1-D, or not of integer or float elements is refused with one message
 * naming file and dataset (LOOM_ERR_IO for a file HDF5 cannot open, else
 * LOOM_ERR_FORMAT). Local: any rank may call it. */
loom_status_t loom_h5_elements_info(loom_ctx_t *ctx, const char *spec, uint64_t *n,
                                    loom_elem_kind_t *kind);

/* Elements [first, first + count) of `spec` into out[0 .. count) as 8-byte values of
 * their kind (*kind), by an independent hyperslab read. Local. Both calls are thread-safe
 * (serialised: HDF5 is not). */
loom_status_t loom_h5_elements_read(loom_ctx_t *ctx, const char *spec, uint64_t first,
                                    uint64_t count, uint64_t *out, loom_elem_kind_t *kind);

/* Write element `v` of `kind` as decimal text (integers in full, floats with "%.17g",
 * so the bits round-trip) at `p`, which has room for 24 bytes; returns the length. */
int loom_elem_format(char *p, uint64_t v, loom_elem_kind_t kind);

#endif
