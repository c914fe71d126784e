/* Parallel reader of Matrix Market coordinate files (pattern, integer, real;
 * general or symmetric). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "io/io_internal.h"
#include "io/textsplit.h"

enum { MTX_PATTERN = 0, MTX_INTEGER = 1, MTX_REAL = 2 };
static const char *const field_names[] = {"pattern", "integer", "real"};

/* What the header says; sent from the first worker to every rank as integers. */
typedef struct mtx_header {
    uint64_t field, symmetric, rows, cols, nnz;
    uint64_t data_begin; /* byte offset of the first line after the size line */
    uint64_t data_line;  /* its line number */
} mtx_header_t;
#define MTX_HEADER_WORDS 7

static int tok_is(const char *tok, size_t len, const char *word)
{
    return strlen(word) == len && strncasecmp(tok, word, len) == 0;
}

static loom_status_t parse_banner(loom_ctx_t *ctx, const char *path, const char *line, size_t len,
                                  mtx_header_t *h)
{
    const char *t[6];
    size_t tl[6];
    char q[64];
    int n = loom_text_tokens(line, len, t, tl, 6);
    if (n < 1 || !tok_is(t[0], tl[0], "%%MatrixMarket"))
        return LOOM_ERROR(ctx, LOOM_ERR_FORMAT,
                          "%s:1: not a Matrix Market file (the first line must start with "
                          "'%%%%MatrixMarket')",
                          path);
    if (n != 5)
        return LOOM_ERROR(ctx, LOOM_ERR_FORMAT,
                          "%s:1: malformed Matrix Market header: expected '%%%%MatrixMarket matrix "
                          "coordinate pattern|integer|real general|symmetric'",
                          path);
    if (!tok_is(t[1], tl[1], "matrix"))
        return LOOM_ERROR(ctx, LOOM_ERR_FORMAT,
                          "%s:1: unsupported Matrix Market object '%s' (only 'matrix')", path,
                          loom_text_quote(t[1], tl[1], q, sizeof q));
    if (!tok_is(t[2], tl[2], "coordinate"))
        return LOOM_ERROR(ctx, LOOM_ERR_FORMAT,
                          "%s:1: unsupported Matrix Market format '%s' (only 'coordinate'; dense "
                          "'array' files are not graphs)",
                          path, loom_text_quote(t[2], tl[2], q, sizeof q));
    if (tok_is(t[3], tl[3], "pattern"))
        h->field = MTX_PATTERN;
    else if (tok_is(t[3], tl[3], "integer"))
        h->field = MTX_INTEGER;
    else if (tok_is(t[3], tl[3], "real"))
        h->field = MTX_REAL;
    else
        return LOOM_ERROR(ctx, LOOM_ERR_FORMAT,
                          "%s:1: unsupported Matrix Market field '%s' (pattern, integer or real)",
                          path, loom_text_quote(t[3], tl[3], q, sizeof q));
    if (tok_is(t[4], tl[4], "general"))
        h->symmetric = 0;
    else if (tok_is(t[4], tl[4], "symmetric"))
        h->symmetric = 1;
    else
        return LOOM_ERROR(ctx, LOOM_ERR_FORMAT,
                          "%s:1: unsupported Matrix Market symmetry '%s' (general or symmetric)",
                          path, loom_text_quote(t[4], tl[4], q, sizeof q));
    return LOOM_OK;
}

static loom_status_t parse_size(loom_ctx_t *ctx, const char *path, uint64_t ln, const char *line,
                                size_t len, mtx_header_t *h)
{
    const char *t[3];
    size_t tl[3];
    uint64_t v[3];
    int n = loom_text_tokens(line, len, t, tl, 3);
    if (n != 3)
        return LOOM_ERROR(ctx, LOOM_ERR_FORMAT,
                          "%s:%llu: malformed Matrix Market size line: expected 'rows cols "
                          "entries', found %d fields",
                          path, (unsigned long long)ln, n);
    for (int i = 0; i < 3; i++) {
        loom_num_status_t ns = loom_text_parse_u64(t[i], tl[i], LOOM_MAX_VERTEX_ID + 1, &v[i]);
        if (ns != LOOM_NUM_OK) {
            char q[64];
            return LOOM_ERROR(ctx, LOOM_ERR_FORMAT,
                              "%s:%llu: malformed Matrix Market size line: '%s' is %s", path,
                              (unsigned long long)ln, loom_text_quote(t[i], tl[i], q, sizeof q),
                              ns == LOOM_NUM_TOO_LARGE  ? "too large"
                              : ns == LOOM_NUM_NEGATIVE ? "negative"
                                                        : "not a number");
        }
    }
    h->rows = v[0];
    h->cols = v[1];
    h->nnz = v[2];
    return LOOM_OK;
}

/* Read the banner, comments and size line from the start of the file. */
static loom_status_t read_header(loom_ctx_t *ctx, const char *path, mtx_header_t *h)
{
    FILE *f = fopen(path, "rb");
    if (!f) return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot open", path);
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    uint64_t ln = 0, off = 0;
    loom_status_t st = LOOM_OK;
    int have_size = 0;
    while (st == LOOM_OK && !have_size && (got = getline(&line, &cap, f)) >= 0) {
        ln++;
        off += (uint64_t)got;
        size_t len = (size_t)got;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            len--;
        if (ln == 1) {
            st = parse_banner(ctx, path, line, len, h);
            continue;
        }
        const char *t[1];
        size_t tl[1];
        if (loom_text_tokens(line, len, t, tl, 1) == 0 || t[0][0] == '%') continue;
        st = parse_size(ctx, path, ln, line, len, h);
        have_size = 1;
    }
    if (st == LOOM_OK && !have_size)
        st = LOOM_ERROR(ctx, LOOM_ERR_FORMAT,
                        "%s:%llu: Matrix Market file ends before its size line 'rows cols entries'",
                        path, (unsigned long long)ln);
    free(line);
    fclose(f);
    h->data_begin = off;
    h->data_line = ln + 1;
    return st;
}

static loom_status_t bad_index(loom_ctx_t *ctx, const char *path, uint64_t ln,
                               const mtx_header_t *h, const char *ti, size_t li, const char *tj,
                               size_t lj)
{
    char qi[64], qj[64];
    return LOOM_ERROR(ctx, LOOM_ERR_FORMAT,
                      "%s:%llu: entry (%s, %s) is outside the declared size %llu x %llu "
                      "(indices run from 1)",
                      path, (unsigned long long)ln, loom_text_quote(ti, li, qi, sizeof qi),
                      loom_text_quote(tj, lj, qj, sizeof qj), (unsigned long long)h->rows,
                      (unsigned long long)h->cols);
}

static loom_status_t mtx_parse(loom_ctx_t *ctx, const char *path, const mtx_header_t *h,
                               const loom_text_chunk_t *chunk, loom_edges_t *e)
{
    loom_text_cursor_t cur;
    loom_text_cursor_init(&cur, chunk);
    const char *line;
    size_t len;
    int want = h->field == MTX_PATTERN ? 2 : 3;
    while (loom_text_next_line(&cur, &line, &len)) {
        const char *t[3];
        size_t tl[3];
        int n = loom_text_tokens(line, len, t, tl, 3);
        if (n == 0 || t[0][0] == '%') continue;
        unsigned long long ln = (unsigned long long)cur.line;
        if (n == 2 && want == 3)
            return LOOM_ERROR(ctx, LOOM_ERR_FORMAT,
                              "%s:%llu: missing value column (the header says '%s')", path, ln,
                              field_names[h->field]);
        if (n != want)
            return LOOM_ERROR(ctx, LOOM_ERR_FORMAT,
                              "%s:%llu: malformed entry: %d columns, expected %d for a '%s' matrix",
                              path, ln, n, want, field_names[h->field]);
        uint64_t i = 0, j = 0;
        double w = 1.0;
        loom_num_status_t si = loom_text_parse_u64(t[0], tl[0], h->rows, &i);
        loom_num_status_t sj = loom_text_parse_u64(t[1], tl[1], h->cols, &j);
        if (si == LOOM_NUM_NOT_A_NUMBER || sj == LOOM_NUM_NOT_A_NUMBER) {
            char q[64];
            int k = si == LOOM_NUM_NOT_A_NUMBER ? 0 : 1;
            return LOOM_ERROR(ctx, LOOM_ERR_FORMAT,
                              "%s:%llu: malformed entry: '%s' is not an index", path, ln,
                              loom_text_quote(t[k], tl[k], q, sizeof q));
        }
        if (si != LOOM_NUM_OK || sj != LOOM_NUM_OK || i == 0 || j == 0)
            return bad_index(ctx, path, cur.line, h, t[0], tl[0], t[1], tl[1]);
        if (want == 3 && loom_text_parse_double(t[2], tl[2], &w) != 0) {
            char q[64];
            return LOOM_ERROR(ctx, LOOM_ERR_FORMAT, "%s:%llu: malformed value '%s'", path, ln,
                              loom_text_quote(t[2], tl[2], q, sizeof q));
        }
        LOOM_TRY(loom_edges_push(ctx, e, i - 1, j - 1, w));
    }
    return LOOM_OK;
}

loom_status_t loom_read_mtx(loom_ctx_t *ctx, const char *path, loom_read_result_t *out)
{
    memset(out, 0, sizeof *out);
    MPI_Comm comm = loom_comm(ctx);
    LOOM_TRY(loom_check_input_file(ctx, path));

    /* The first worker reads the header; everyone learns it. */
    mtx_header_t h;
    memset(&h, 0, sizeof h);
    int root = loom_worker_rank(ctx, 0);
    loom_status_t st = LOOM_OK;
    if (loom_rank(ctx) == root) st = read_header(ctx, path, &h);
    LOOM_TRY(loom_agree(ctx, comm, st));
    MPI_Bcast(&h, MTX_HEADER_WORDS, MPI_UINT64_T, root, comm);

    loom_text_chunk_t chunk;
    LOOM_TRY(loom_text_read_split(ctx, comm, path, h.data_begin, LOOM_TEXT_TO_END, h.data_line,
                                  loom_worker_index(ctx), loom_num_workers(ctx), &chunk));
    loom_edges_t e;
    memset(&e, 0, sizeof e);
    if (h.field != MTX_PATTERN) {
        e.weight = malloc(sizeof *e.weight);
        if (!e.weight) st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    }
    if (st == LOOM_OK) st = mtx_parse(ctx, path, &h, &chunk, &e);
    loom_text_chunk_free(&chunk);
    st = loom_agree(ctx, comm, st);
    uint64_t mine = e.count, total = 0;
    if (st == LOOM_OK) {
        MPI_Allreduce(&mine, &total, 1, MPI_UINT64_T, MPI_SUM, comm);
        if (total != h.nnz)
            st = LOOM_ERROR(ctx, LOOM_ERR_FORMAT,
                            "%s: the size line declares %llu entries but the file has %llu", path,
                            (unsigned long long)h.nnz, (unsigned long long)total);
    }
    if (st != LOOM_OK) {
        loom_edges_free(&e);
        return st;
    }
    out->edges = e;
    out->num_vertices = h.rows > h.cols ? h.rows : h.cols;
    out->directed = !h.symmetric;
    out->symmetric = 0;
    out->weighted = h.field != MTX_PATTERN;
    return LOOM_OK;
}
