/* The pure edge-list parser: header declarations and "src dst [weight]" lines. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/parse.h"
#include "loom/graph.h"

loom_status_t loom_parse_fail(loom_parse_err_t *e, loom_status_t code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    e->code = code;
    return code;
}

void loom_parsed_edges_init(loom_parsed_edges_t *p)
{
    memset(p, 0, sizeof *p);
    p->first_line_cols[0] = p->first_line_cols[1] = LOOM_NO_LINE;
    p->neg_line = LOOM_NO_LINE;
}

void loom_parsed_edges_free(loom_parsed_edges_t *p)
{
    free(p->src);
    free(p->dst);
    free(p->w);
    loom_parsed_edges_init(p);
}

loom_status_t loom_parsed_edges_push(const char *path, loom_parsed_edges_t *l, uint64_t s,
                                     uint64_t d, int has_w, double w, loom_parse_err_t *err)
{
    if (l->count == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 1024;
        uint64_t *ns = realloc(l->src, cap * sizeof *ns);
        if (ns) l->src = ns;
        uint64_t *nd = ns ? realloc(l->dst, cap * sizeof *nd) : NULL;
        if (nd) l->dst = nd;
        double *nw = l->w;
        if (nd && l->w) {
            nw = realloc(l->w, cap * sizeof *nw);
            if (nw) l->w = nw;
        }
        if (!ns || !nd || (!nw && l->w))
            return loom_parse_fail(err, LOOM_ERR_NOMEM, "%s: out of memory reading %zu edges", path,
                                   cap);
        l->cap = cap;
    }
    if (has_w && !l->w) {
        l->w = calloc(l->cap, sizeof *l->w);
        if (!l->w)
            return loom_parse_fail(err, LOOM_ERR_NOMEM, "%s: out of memory for edge weights", path);
    }
    l->src[l->count] = s;
    l->dst[l->count] = d;
    if (l->w) l->w[l->count] = has_w ? w : 0.0;
    l->count++;
    if (s > l->max_id) l->max_id = s;
    if (d > l->max_id) l->max_id = d;
    return LOOM_OK;
}

loom_status_t loom_parse_weight(const char *path, uint64_t ln, const char *tok, size_t len,
                                const char *what, loom_parsed_edges_t *l, double *w,
                                loom_parse_err_t *err)
{
    char q[64];
    loom_num_status_t ns = loom_text_parse_double(tok, len, w);
    if (ns == LOOM_NUM_NOT_FINITE)
        return loom_parse_fail(err, LOOM_ERR_FORMAT, "%s:%llu: %s '%s' is not a finite number",
                               path, (unsigned long long)ln, what,
                               loom_text_quote(tok, len, q, sizeof q));
    if (ns != LOOM_NUM_OK)
        return loom_parse_fail(err, LOOM_ERR_FORMAT, "%s:%llu: malformed %s '%s'", path,
                               (unsigned long long)ln, what,
                               loom_text_quote(tok, len, q, sizeof q));
    if (*w < 0 && l->neg_line == LOOM_NO_LINE) {
        l->neg_line = ln;
        l->neg_weight = *w;
    }
    return LOOM_OK;
}

/* ------------------------------------------------------------------ edge lists */

/* The text of a '#' comment after its '#' characters. */
static void comment_body(const char *line, size_t len, const char **body, size_t *blen)
{
    size_t i = 0;
    while (i < len && line[i] != '#')
        i++;
    while (i < len && line[i] == '#')
        i++;
    *body = line + i;
    *blen = len - i;
}

/* A declaration in one comment line: Loom's "loom-graph vertices=N ..." or
 * SNAP's "Nodes: N Edges: M". Returns 1 when the line declares a count. */
static int parse_declaration(const char *path, uint64_t ln, const char *line, size_t len,
                             loom_el_header_t *d, loom_parse_err_t *err)
{
    const char *body, *t[8];
    size_t blen, tl[8];
    comment_body(line, len, &body, &blen);
    int n = loom_text_tokens(body, blen, t, tl, 8);
    if (n > 8) n = 8;
    if (n >= 1 && tl[0] == 10 && !memcmp(t[0], "loom-graph", 10)) {
        for (int i = 1; i < n; i++) {
            if (tl[i] < 9 || memcmp(t[i], "vertices=", 9)) continue;
            uint64_t v = 0;
            if (loom_text_parse_u64(t[i] + 9, tl[i] - 9, LOOM_MAX_VERTEX_ID + 1, &v) != LOOM_NUM_OK)
                break;
            *d = (loom_el_header_t){.num_vertices = v, .line = ln, .strict = 1};
            return 1;
        }
        loom_parse_fail(err, LOOM_ERR_FORMAT,
                        "%s:%llu: malformed loom-graph header: expected 'vertices=N' with N at "
                        "most %llu",
                        path, (unsigned long long)ln, (unsigned long long)LOOM_MAX_VERTEX_ID + 1);
        return -1;
    }
    if (n >= 1 && tl[0] == 6 && !memcmp(t[0], "Nodes:", 6)) {
        uint64_t v = 0;
        if (n < 2 || loom_text_parse_u64(t[1], tl[1], LOOM_MAX_VERTEX_ID + 1, &v) != LOOM_NUM_OK) {
            char q[64];
            loom_parse_fail(err, LOOM_ERR_FORMAT,
                            "%s:%llu: malformed header: 'Nodes:' must be followed by a vertex "
                            "count of at most %llu, not '%s'",
                            path, (unsigned long long)ln,
                            (unsigned long long)LOOM_MAX_VERTEX_ID + 1,
                            n < 2 ? "" : loom_text_quote(t[1], tl[1], q, sizeof q));
            return -1;
        }
        *d = (loom_el_header_t){.num_vertices = v, .line = ln, .strict = 0};
        return 1;
    }
    return 0;
}

loom_status_t loom_el_scan_header(const char *path, const char *data, size_t len,
                                  loom_el_header_t *h, loom_parse_err_t *err)
{
    memset(h, 0, sizeof *h);
    h->skip = loom_text_bom_length(data, len);
    loom_text_chunk_t chunk = {
        .data = (char *)data + h->skip, .len = len - (size_t)h->skip, .first_line = 1};
    loom_text_cursor_t cur;
    loom_text_cursor_init(&cur, &chunk);
    const char *line;
    size_t ll;
    while (loom_text_next_line(&cur, &line, &ll)) {
        const char *t[1];
        size_t tl[1];
        if (loom_text_tokens(line, ll, t, tl, 1) == 0 || t[0][0] == '%') continue;
        if (t[0][0] != '#') break;
        loom_el_header_t d;
        int got = parse_declaration(path, cur.line, line, ll, &d, err);
        if (got < 0) return err->code;
        /* The first declaration counts, except that Loom's own beats SNAP's. */
        if (got && (!h->line || (d.strict && !h->strict))) {
            uint64_t skip = h->skip;
            *h = d;
            h->skip = skip;
        }
    }
    return LOOM_OK;
}

static loom_status_t bad_id(const char *path, uint64_t line, const char *what, const char *tok,
                            size_t len, loom_num_status_t ns, loom_parse_err_t *err)
{
    char q[64];
    loom_text_quote(tok, len, q, sizeof q);
    if (ns == LOOM_NUM_NEGATIVE)
        return loom_parse_fail(err, LOOM_ERR_FORMAT, "%s:%llu: negative %s vertex id %s", path,
                               (unsigned long long)line, what, q);
    if (ns == LOOM_NUM_TOO_LARGE)
        return loom_parse_fail(
            err, LOOM_ERR_FORMAT,
            "%s:%llu: %s vertex id %s is out of range (the largest allowed is %llu)", path,
            (unsigned long long)line, what, q, (unsigned long long)LOOM_MAX_VERTEX_ID);
    return loom_parse_fail(err, LOOM_ERR_FORMAT,
                           "%s:%llu: malformed line: %s vertex id '%s' is not a number", path,
                           (unsigned long long)line, what, q);
}

static loom_status_t undeclared_id(const char *path, uint64_t line, uint64_t id,
                                   const loom_el_header_t *h, loom_parse_err_t *err)
{
    return loom_parse_fail(err, LOOM_ERR_FORMAT,
                           "%s:%llu: vertex id %llu is not below the vertex count %llu declared "
                           "on line %llu",
                           path, (unsigned long long)line, (unsigned long long)id,
                           (unsigned long long)h->num_vertices, (unsigned long long)h->line);
}

loom_status_t loom_el_parse(const char *path, const loom_text_chunk_t *chunk,
                            const loom_el_header_t *h, loom_parsed_edges_t *l,
                            loom_parse_err_t *err)
{
    loom_text_cursor_t cur;
    loom_text_cursor_init(&cur, chunk);
    const char *line;
    size_t len;
    uint64_t limit = h && h->line && h->strict ? h->num_vertices : UINT64_MAX;
    while (loom_text_next_line(&cur, &line, &len)) {
        const char *tok[3];
        size_t tl[3];
        int n = loom_text_tokens(line, len, tok, tl, 3);
        if (n == 0 || tok[0][0] == '#' || tok[0][0] == '%') continue;
        unsigned long long ln = (unsigned long long)cur.line;
        if (n == 1)
            return loom_parse_fail(err, LOOM_ERR_FORMAT,
                                   "%s:%llu: malformed line: missing destination vertex id", path,
                                   ln);
        if (n > 3)
            return loom_parse_fail(
                err, LOOM_ERR_FORMAT,
                "%s:%llu: malformed line: %d columns, expected 'src dst [weight]'", path, ln, n);
        uint64_t s = 0, d = 0;
        double w = 0.0;
        loom_num_status_t ns = loom_text_parse_u64(tok[0], tl[0], LOOM_MAX_VERTEX_ID, &s);
        if (ns != LOOM_NUM_OK) return bad_id(path, cur.line, "source", tok[0], tl[0], ns, err);
        ns = loom_text_parse_u64(tok[1], tl[1], LOOM_MAX_VERTEX_ID, &d);
        if (ns != LOOM_NUM_OK) return bad_id(path, cur.line, "destination", tok[1], tl[1], ns, err);
        if (s >= limit || d >= limit)
            return undeclared_id(path, cur.line, s >= limit ? s : d, h, err);
        if (n == 3)
            LOOM_TRY(loom_parse_weight(path, cur.line, tok[2], tl[2], "weight", l, &w, err));
        if (l->first_line_cols[n - 2] == LOOM_NO_LINE) l->first_line_cols[n - 2] = cur.line;
        LOOM_TRY(loom_parsed_edges_push(path, l, s, d, n == 3, w, err));
    }
    return LOOM_OK;
}
