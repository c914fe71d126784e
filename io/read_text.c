/* Parallel reader of SNAP-style text edge lists ("src dst [weight]" lines). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/io_internal.h"
#include "io/textsplit.h"

#define NO_LINE UINT64_MAX

/* Growable arrays this rank fills; the weight array exists once a weighted
 * line is seen (earlier unweighted lines then fail the column check anyway). */
typedef struct el_local {
    uint64_t *src, *dst;
    double *w;
    size_t count, cap;
    uint64_t max_id;
    uint64_t first_line_cols[2]; /* first line with 2 columns, with 3 columns */
    /* Threads parse pieces side by side, so a failure is kept here and only the
     * earliest piece's is recorded in the context. */
    loom_status_t code;
    char msg[512];
} el_local_t;

__attribute__((format(printf, 3, 4))) static loom_status_t
el_fail(el_local_t *l, loom_status_t code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->msg, sizeof l->msg, fmt, ap);
    va_end(ap);
    l->code = code;
    return code;
}

static loom_status_t el_push(el_local_t *l, uint64_t s, uint64_t d, int has_w, double w)
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
            return el_fail(l, LOOM_ERR_NOMEM, "out of memory reading %zu edges", cap);
        l->cap = cap;
    }
    if (has_w && !l->w) {
        l->w = calloc(l->cap, sizeof *l->w);
        if (!l->w) return el_fail(l, LOOM_ERR_NOMEM, "out of memory for edge weights");
    }
    l->src[l->count] = s;
    l->dst[l->count] = d;
    if (l->w) l->w[l->count] = has_w ? w : 0.0;
    l->count++;
    if (s > l->max_id) l->max_id = s;
    if (d > l->max_id) l->max_id = d;
    return LOOM_OK;
}

static loom_status_t bad_id(el_local_t *l, const char *path, uint64_t line, const char *what,
                            const char *tok, size_t len, loom_num_status_t ns)
{
    char q[64];
    loom_text_quote(tok, len, q, sizeof q);
    if (ns == LOOM_NUM_NEGATIVE)
        return el_fail(l, LOOM_ERR_FORMAT, "%s:%llu: negative %s vertex id %s", path,
                       (unsigned long long)line, what, q);
    if (ns == LOOM_NUM_TOO_LARGE)
        return el_fail(l, LOOM_ERR_FORMAT,
                       "%s:%llu: %s vertex id %s is out of range (the largest allowed is %llu)",
                       path, (unsigned long long)line, what, q,
                       (unsigned long long)LOOM_MAX_VERTEX_ID);
    return el_fail(l, LOOM_ERR_FORMAT, "%s:%llu: malformed line: %s vertex id '%s' is not a number",
                   path, (unsigned long long)line, what, q);
}

/* Parse this rank's lines; stops at the first bad one. */
static loom_status_t el_parse(const char *path, const loom_text_chunk_t *chunk, el_local_t *l)
{
    loom_text_cursor_t cur;
    loom_text_cursor_init(&cur, chunk);
    const char *line;
    size_t len;
    while (loom_text_next_line(&cur, &line, &len)) {
        const char *tok[3];
        size_t tl[3];
        int n = loom_text_tokens(line, len, tok, tl, 3);
        if (n == 0 || tok[0][0] == '#' || tok[0][0] == '%') continue;
        unsigned long long ln = (unsigned long long)cur.line;
        if (n == 1)
            return el_fail(l, LOOM_ERR_FORMAT,
                           "%s:%llu: malformed line: missing destination vertex id", path, ln);
        if (n > 3)
            return el_fail(l, LOOM_ERR_FORMAT,
                           "%s:%llu: malformed line: %d columns, expected 'src dst [weight]'", path,
                           ln, n);
        uint64_t s = 0, d = 0;
        double w = 0.0;
        loom_num_status_t ns = loom_text_parse_u64(tok[0], tl[0], LOOM_MAX_VERTEX_ID, &s);
        if (ns != LOOM_NUM_OK) return bad_id(l, path, cur.line, "source", tok[0], tl[0], ns);
        ns = loom_text_parse_u64(tok[1], tl[1], LOOM_MAX_VERTEX_ID, &d);
        if (ns != LOOM_NUM_OK) return bad_id(l, path, cur.line, "destination", tok[1], tl[1], ns);
        if (n == 3 && loom_text_parse_double(tok[2], tl[2], &w) != 0) {
            char q[64];
            return el_fail(l, LOOM_ERR_FORMAT, "%s:%llu: malformed weight '%s'", path, ln,
                           loom_text_quote(tok[2], tl[2], q, sizeof q));
        }
        if (l->first_line_cols[n - 2] == NO_LINE) l->first_line_cols[n - 2] = cur.line;
        LOOM_TRY(el_push(l, s, d, n == 3, w));
    }
    return LOOM_OK;
}

static void el_free(el_local_t *l)
{
    free(l->src);
    free(l->dst);
    free(l->w);
    memset(l, 0, sizeof *l);
}

/* Pieces smaller than this are not worth a thread of their own. */
#define PIECE_MIN_BYTES ((size_t)1 << 20)

/* Concatenate the pieces' edges into `out` (piece order is file order). */
static loom_status_t el_merge(loom_ctx_t *ctx, el_local_t *pl, int np, el_local_t *out)
{
    size_t total = 0;
    int any_w = 0;
    for (int k = 0; k < np; k++) {
        total += pl[k].count;
        any_w |= pl[k].w != NULL;
    }
    size_t cap = total ? total : 1;
    out->src = malloc(cap * sizeof *out->src);
    out->dst = malloc(cap * sizeof *out->dst);
    out->w = any_w ? calloc(cap, sizeof *out->w) : NULL;
    if (!out->src || !out->dst || (any_w && !out->w))
        return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory gathering %zu edges", total);
    out->cap = cap;
    for (int k = 0; k < np; k++) {
        el_local_t *l = &pl[k];
        if (l->count) {
            memcpy(out->src + out->count, l->src, l->count * sizeof *l->src);
            memcpy(out->dst + out->count, l->dst, l->count * sizeof *l->dst);
            if (l->w) memcpy(out->w + out->count, l->w, l->count * sizeof *l->w);
        }
        out->count += l->count;
        if (l->max_id > out->max_id) out->max_id = l->max_id;
        for (int c = 0; c < 2; c++)
            if (l->first_line_cols[c] < out->first_line_cols[c])
                out->first_line_cols[c] = l->first_line_cols[c];
    }
    return LOOM_OK;
}

/* Parse this rank's chunk with its OpenMP threads, each a piece cut at line
 * starts; the earliest failing piece's message is the one recorded. */
static loom_status_t el_parse_threads(loom_ctx_t *ctx, const char *path,
                                      const loom_text_chunk_t *chunk, el_local_t *out)
{
    size_t most = chunk->len / PIECE_MIN_BYTES;
    int np = loom_threads(ctx);
    if (np < 1) np = 1;
    if ((size_t)np > most) np = most ? (int)most : 1;
    el_local_t *pl = calloc((size_t)np, sizeof *pl);
    loom_text_chunk_t *pc = calloc((size_t)np, sizeof *pc);
    size_t *cut = calloc((size_t)np + 1, sizeof *cut);
    if (!pl || !pc || !cut) {
        free(pl);
        free(pc);
        free(cut);
        return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    }
    cut[np] = chunk->len;
    for (int k = 1; k < np; k++) {
        size_t nominal = chunk->len / (size_t)np * (size_t)k;
        const char *nl = memchr(chunk->data + nominal - 1, '\n', chunk->len - nominal + 1);
        cut[k] = nl ? (size_t)(nl - chunk->data) + 1 : chunk->len;
        if (cut[k] < cut[k - 1]) cut[k] = cut[k - 1];
    }
    uint64_t line = chunk->first_line;
    for (int k = 0; k < np; k++) {
        pc[k].data = chunk->data + cut[k];
        pc[k].len = cut[k + 1] - cut[k];
        pc[k].begin = chunk->begin + cut[k];
        pc[k].end = chunk->begin + cut[k + 1];
        pc[k].first_line = line;
        line += loom_text_count_lines(pc[k].data, pc[k].len);
        pl[k].first_line_cols[0] = pl[k].first_line_cols[1] = NO_LINE;
    }
#pragma omp parallel for num_threads(np) schedule(static, 1)
    for (int k = 0; k < np; k++)
        el_parse(path, &pc[k], &pl[k]);
    loom_status_t st = LOOM_OK;
    for (int k = 0; k < np && st == LOOM_OK; k++)
        if (pl[k].code != LOOM_OK)
            st = loom_error_at(ctx, pl[k].code, __FILE__, __LINE__, "%s", pl[k].msg);
    if (st == LOOM_OK) {
        if (np == 1) {
            *out = pl[0];
            memset(&pl[0], 0, sizeof pl[0]);
        } else {
            st = el_merge(ctx, pl, np, out);
        }
    }
    for (int k = 0; k < np; k++)
        el_free(&pl[k]);
    free(pl);
    free(pc);
    free(cut);
    return st;
}

loom_status_t loom_read_edgelist(loom_ctx_t *ctx, const char *path, loom_read_result_t *out)
{
    memset(out, 0, sizeof *out);
    MPI_Comm comm = loom_comm(ctx);
    LOOM_TRY(loom_check_input_file(ctx, path));

    loom_text_chunk_t chunk;
    LOOM_TRY(loom_text_read_split(ctx, comm, path, 0, LOOM_TEXT_TO_END, 1, loom_worker_index(ctx),
                                  loom_num_workers(ctx), &chunk));
    el_local_t l = {.first_line_cols = {NO_LINE, NO_LINE}};
    loom_status_t st = el_parse_threads(ctx, path, &chunk, &l);
    loom_text_chunk_free(&chunk);
    /* The lowest failing rank holds the earliest bad line of the file. */
    st = loom_agree(ctx, comm, st);
    if (st != LOOM_OK) {
        el_free(&l);
        return st;
    }

    uint64_t first[2], count = l.count, total = 0, max_id = l.max_id, gmax = 0;
    MPI_Allreduce(l.first_line_cols, first, 2, MPI_UINT64_T, MPI_MIN, comm);
    MPI_Allreduce(&count, &total, 1, MPI_UINT64_T, MPI_SUM, comm);
    MPI_Allreduce(&max_id, &gmax, 1, MPI_UINT64_T, MPI_MAX, comm);
    if (first[0] != NO_LINE && first[1] != NO_LINE) {
        /* Every rank computes the same message from the reduced line numbers. */
        int late = first[0] > first[1] ? 0 : 1; /* index of the column count seen later */
        st = LOOM_ERROR(ctx, LOOM_ERR_FORMAT,
                        "%s:%llu: malformed line: %d columns, but line %llu has %d (a weight "
                        "column must be on every line or on none)",
                        path, (unsigned long long)first[late], late + 2,
                        (unsigned long long)first[!late], !late + 2);
    } else if (total == 0) {
        st = LOOM_ERROR(ctx, LOOM_ERR_FORMAT, "%s: no edges (only comments or blank lines)", path);
    }
    if (st != LOOM_OK) {
        el_free(&l);
        return st;
    }
    out->edges.src = l.src;
    out->edges.dst = l.dst;
    out->edges.weight = first[1] != NO_LINE ? l.w : NULL;
    if (!out->edges.weight) free(l.w);
    out->edges.count = l.count;
    out->edges.capacity = l.cap;
    out->num_vertices = gmax + 1;
    out->directed = 1;
    out->symmetric = 0;
    out->weighted = first[1] != NO_LINE;
    if (out->weighted && !out->edges.weight) {
        /* A rank that read no lines still owes its consumers a weight array. */
        out->edges.weight = calloc(1, sizeof(double));
        if (!out->edges.weight) {
            loom_edges_free(&out->edges);
            return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
        }
    }
    return LOOM_OK;
}
