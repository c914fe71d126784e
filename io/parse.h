/* Internal: the pure parsers of the text graph formats (edge lists, Matrix
 * Market): lines in, edges or the first bad line's message out. No MPI and no
 * context: the readers run them on every rank's threads, and the fuzz targets
 * in tests/fuzz run them alone. */
#ifndef LOOM_IO_PARSE_H
#define LOOM_IO_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "io/textparse.h"
#include "loom/status.h"

/* "No line": first-line fields hold it until a line is seen. */
#define LOOM_NO_LINE UINT64_MAX

/* A parser's verdict: the failure code and its message ("file:line: cause"),
 * kept until the reader records the earliest one in its context. */
typedef struct loom_parse_err {
    loom_status_t code; /* LOOM_OK until a failure */
    char msg[512];
} loom_parse_err_t;

/* Record a failure in e and return `code`. Thread-safe (e is the caller's). */
loom_status_t loom_parse_fail(loom_parse_err_t *e, loom_status_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Edges one parser produced: growable parallel arrays. The weight array exists
 * once a weighted line is seen. */
typedef struct loom_parsed_edges {
    uint64_t *src, *dst;
    double *w;
    size_t count, cap;
    uint64_t max_id;             /* largest id seen (0 when none) */
    uint64_t first_line_cols[2]; /* first line with 2 columns, with 3 (edge lists) */
    uint64_t neg_line;           /* first line with a negative weight, or LOOM_NO_LINE */
    double neg_weight;           /* its weight */
} loom_parsed_edges_t;

void loom_parsed_edges_init(loom_parsed_edges_t *p);
void loom_parsed_edges_free(loom_parsed_edges_t *p);
/* Append an edge, growing geometrically; LOOM_ERR_NOMEM (in err, naming
 * path) when memory runs out. */
loom_status_t loom_parsed_edges_push(const char *path, loom_parsed_edges_t *p, uint64_t s,
                                     uint64_t d, int has_w, double w, loom_parse_err_t *err);
/* Parse the weight token of line ln: a finite number (NaN and infinities fail
 * with LOOM_ERR_FORMAT naming path, line and `what`); notes the first negative
 * one in p for the commands that refuse them. */
loom_status_t loom_parse_weight(const char *path, uint64_t ln, const char *tok, size_t len,
                                const char *what, loom_parsed_edges_t *p, double *w,
                                loom_parse_err_t *err);

/* ------------------------------------------------------------------ edge lists */

/* What the start of an edge list declares. All words, so it can be broadcast. */
typedef struct loom_el_header {
    uint64_t skip;         /* bytes before the first line's text: a UTF-8 byte-order mark */
    uint64_t num_vertices; /* the declared vertex count, when line > 0 */
    uint64_t line;         /* line of the declaration; 0 when there is none */
    uint64_t strict;       /* 1: Loom's "# loom-graph vertices=N" (every id must be below N);
                              0: SNAP's "# Nodes: N Edges: M" (N distinct ids: a lower bound) */
} loom_el_header_t;
#define LOOM_EL_HEADER_WORDS 4

/* Scan the comment and blank lines at the start of an edge list, data[0, len)
 * being the file's first bytes cut after a '\n' (or the whole file), for a
 * vertex count. Stops at the first line that holds an edge. A declaration
 * with a bad number fails with LOOM_ERR_FORMAT naming path and line. */
loom_status_t loom_el_scan_header(const char *path, const char *data, size_t len,
                                  loom_el_header_t *h, loom_parse_err_t *err);

/* Parse the "src dst [weight]" lines of a chunk into out, checking every id
 * against LOOM_MAX_VERTEX_ID and against a strict declared count; stops at the
 * first bad line. Thread-safe on distinct outputs. */
loom_status_t loom_el_parse(const char *path, const loom_text_chunk_t *chunk,
                            const loom_el_header_t *h, loom_parsed_edges_t *out,
                            loom_parse_err_t *err);

/* ------------------------------------------------------------------ Matrix Market */

enum { LOOM_MTX_PATTERN = 0, LOOM_MTX_INTEGER = 1, LOOM_MTX_REAL = 2 };

/* What the banner and size line say. All words, so it can be broadcast. */
typedef struct loom_mtx_header {
    uint64_t field, symmetric, rows, cols, nnz;
    uint64_t data_begin; /* byte offset of the first line after the size line */
    uint64_t data_line;  /* its line number */
} loom_mtx_header_t;
#define LOOM_MTX_HEADER_WORDS 7

/* Line 1: "%%MatrixMarket matrix coordinate FIELD SYMMETRY" (a leading UTF-8
 * byte-order mark is skipped). */
loom_status_t loom_mtx_parse_banner(const char *path, const char *line, size_t len,
                                    loom_mtx_header_t *h, loom_parse_err_t *err);
/* 1 when a header line after the banner is a comment or blank (skipped). */
int loom_mtx_header_skip(const char *line, size_t len);
/* The size line "rows cols entries" (line number ln). */
loom_status_t loom_mtx_parse_size(const char *path, uint64_t ln, const char *line, size_t len,
                                  loom_mtx_header_t *h, loom_parse_err_t *err);
/* Parse the entry lines of a chunk into out (0-based ids); stops at the first
 * bad line. */
loom_status_t loom_mtx_parse(const char *path, const loom_mtx_header_t *h,
                             const loom_text_chunk_t *chunk, loom_parsed_edges_t *out,
                             loom_parse_err_t *err);

#endif
