/* The pure Matrix Market parser: banner, size line and coordinate entries. */
#include <string.h>
#include <strings.h>

#include "io/parse.h"
#include "loom/graph.h"

static const char *const field_names[] = {"pattern", "integer", "real"};

static int tok_is(const char *tok, size_t len, const char *word)
{
    return strlen(word) == len && strncasecmp(tok, word, len) == 0;
}

loom_status_t loom_mtx_parse_banner(const char *path, const char *line, size_t len,
                                    loom_mtx_header_t *h, loom_parse_err_t *err)
{
    const char *t[6];
    size_t tl[6];
    char q[64];
    size_t bom = loom_text_bom_length(line, len);
    int n = loom_text_tokens(line + bom, len - bom, t, tl, 6);
    if (n < 1 || !tok_is(t[0], tl[0], "%%MatrixMarket"))
        return loom_parse_fail(err, LOOM_ERR_FORMAT,
                               "%s:1: not a Matrix Market file (the first line must start with "
                               "'%%%%MatrixMarket')",
                               path);
    if (n != 5)
        return loom_parse_fail(err, LOOM_ERR_FORMAT,
                               "%s:1: malformed Matrix Market header: expected '%%%%MatrixMarket "
                               "matrix coordinate pattern|integer|real general|symmetric'",
                               path);
    if (!tok_is(t[1], tl[1], "matrix"))
        return loom_parse_fail(err, LOOM_ERR_FORMAT,
                               "%s:1: unsupported Matrix Market object '%s' (only 'matrix')", path,
                               loom_text_quote(t[1], tl[1], q, sizeof q));
    if (!tok_is(t[2], tl[2], "coordinate"))
        return loom_parse_fail(err, LOOM_ERR_FORMAT,
                               "%s:1: unsupported Matrix Market format '%s' (only 'coordinate'; "
                               "dense 'array' files are not graphs)",
                               path, loom_text_quote(t[2], tl[2], q, sizeof q));
    if (tok_is(t[3], tl[3], "pattern"))
        h->field = LOOM_MTX_PATTERN;
    else if (tok_is(t[3], tl[3], "integer"))
        h->field = LOOM_MTX_INTEGER;
    else if (tok_is(t[3], tl[3], "real"))
        h->field = LOOM_MTX_REAL;
    else
        return loom_parse_fail(
            err, LOOM_ERR_FORMAT,
            "%s:1: unsupported Matrix Market field '%s' (pattern, integer or real)", path,
            loom_text_quote(t[3], tl[3], q, sizeof q));
    if (tok_is(t[4], tl[4], "general"))
        h->symmetric = 0;
    else if (tok_is(t[4], tl[4], "symmetric"))
        h->symmetric = 1;
    else
        return loom_parse_fail(
            err, LOOM_ERR_FORMAT,
            "%s:1: unsupported Matrix Market symmetry '%s' (general or symmetric)", path,
            loom_text_quote(t[4], tl[4], q, sizeof q));
    return LOOM_OK;
}

int loom_mtx_header_skip(const char *line, size_t len)
{
    const char *t[1];
    size_t tl[1];
    return loom_text_tokens(line, len, t, tl, 1) == 0 || t[0][0] == '%';
}

loom_status_t loom_mtx_parse_size(const char *path, uint64_t ln, const char *line, size_t len,
                                  loom_mtx_header_t *h, loom_parse_err_t *err)
{
    const char *t[3];
    size_t tl[3];
    uint64_t v[3];
    int n = loom_text_tokens(line, len, t, tl, 3);
    if (n != 3)
        return loom_parse_fail(err, LOOM_ERR_FORMAT,
                               "%s:%llu: malformed Matrix Market size line: expected 'rows cols "
                               "entries', found %d fields",
                               path, (unsigned long long)ln, n);
    for (int i = 0; i < 3; i++) {
        loom_num_status_t ns = loom_text_parse_u64(t[i], tl[i], LOOM_MAX_VERTEX_ID + 1, &v[i]);
        if (ns != LOOM_NUM_OK) {
            char q[64];
            return loom_parse_fail(
                err, LOOM_ERR_FORMAT, "%s:%llu: malformed Matrix Market size line: '%s' is %s",
                path, (unsigned long long)ln, loom_text_quote(t[i], tl[i], q, sizeof q),
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

static loom_status_t bad_index(const char *path, uint64_t ln, const loom_mtx_header_t *h,
                               const char *ti, size_t li, const char *tj, size_t lj,
                               loom_parse_err_t *err)
{
    char qi[64], qj[64];
    return loom_parse_fail(err, LOOM_ERR_FORMAT,
                           "%s:%llu: entry (%s, %s) is outside the declared size %llu x %llu "
                           "(indices run from 1)",
                           path, (unsigned long long)ln, loom_text_quote(ti, li, qi, sizeof qi),
                           loom_text_quote(tj, lj, qj, sizeof qj), (unsigned long long)h->rows,
                           (unsigned long long)h->cols);
}

loom_status_t loom_mtx_parse(const char *path, const loom_mtx_header_t *h,
                             const loom_text_chunk_t *chunk, loom_parsed_edges_t *out,
                             loom_parse_err_t *err)
{
    loom_text_cursor_t cur;
    loom_text_cursor_init(&cur, chunk);
    const char *line;
    size_t len;
    int field = h->field <= LOOM_MTX_REAL ? (int)h->field : LOOM_MTX_REAL;
    int want = field == LOOM_MTX_PATTERN ? 2 : 3;
    while (loom_text_next_line(&cur, &line, &len)) {
        const char *t[3];
        size_t tl[3];
        int n = loom_text_tokens(line, len, t, tl, 3);
        if (n == 0 || t[0][0] == '%') continue;
        unsigned long long ln = (unsigned long long)cur.line;
        if (n == 2 && want == 3)
            return loom_parse_fail(err, LOOM_ERR_FORMAT,
                                   "%s:%llu: missing value column (the header says '%s')", path, ln,
                                   field_names[field]);
        if (n != want)
            return loom_parse_fail(
                err, LOOM_ERR_FORMAT,
                "%s:%llu: malformed entry: %d columns, expected %d for a '%s' matrix", path, ln, n,
                want, field_names[field]);
        uint64_t i = 0, j = 0;
        double w = 1.0;
        loom_num_status_t si = loom_text_parse_u64(t[0], tl[0], h->rows, &i);
        loom_num_status_t sj = loom_text_parse_u64(t[1], tl[1], h->cols, &j);
        if (si == LOOM_NUM_NOT_A_NUMBER || sj == LOOM_NUM_NOT_A_NUMBER) {
            char q[64];
            int k = si == LOOM_NUM_NOT_A_NUMBER ? 0 : 1;
            return loom_parse_fail(err, LOOM_ERR_FORMAT,
                                   "%s:%llu: malformed entry: '%s' is not an index", path, ln,
                                   loom_text_quote(t[k], tl[k], q, sizeof q));
        }
        if (si != LOOM_NUM_OK || sj != LOOM_NUM_OK || i == 0 || j == 0)
            return bad_index(path, cur.line, h, t[0], tl[0], t[1], tl[1], err);
        if (want == 3) {
            if (field == LOOM_MTX_INTEGER && !loom_text_is_integer(t[2], tl[2])) {
                char q[64];
                return loom_parse_fail(
                    err, LOOM_ERR_FORMAT,
                    "%s:%llu: value '%s' is not an integer (the header says 'integer')", path, ln,
                    loom_text_quote(t[2], tl[2], q, sizeof q));
            }
            LOOM_TRY(loom_parse_weight(path, cur.line, t[2], tl[2], "value", out, &w, err));
        }
        LOOM_TRY(loom_parsed_edges_push(path, out, i - 1, j - 1, want == 3, w, err));
    }
    return LOOM_OK;
}
