/* Parallel reader of SNAP-style text edge lists ("src dst [weight]" lines). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/io_internal.h"
#include "io/parse.h"
#include "io/textsplit.h"

/* Pieces smaller than this are not worth a thread of their own. */
#define PIECE_MIN_BYTES ((size_t)1 << 20)

/* Concatenate the pieces' edges into `out` (piece order is file order). */
static loom_status_t el_merge(loom_ctx_t *ctx, const char *path, loom_parsed_edges_t *pl, int np,
                              loom_parsed_edges_t *out)
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
        return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "%s: out of memory gathering %zu edges", path,
                          total);
    out->cap = cap;
    for (int k = 0; k < np; k++) {
        loom_parsed_edges_t *l = &pl[k];
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
        if (l->neg_line < out->neg_line) {
            out->neg_line = l->neg_line;
            out->neg_weight = l->neg_weight;
        }
    }
    return LOOM_OK;
}

/* Parse this rank's chunk with its OpenMP threads, each a piece cut at line
 * starts; the earliest failing piece's message is the one recorded. */
static loom_status_t el_parse_threads(loom_ctx_t *ctx, const char *path,
                                      const loom_text_chunk_t *chunk, const loom_el_header_t *h,
                                      loom_parsed_edges_t *out)
{
    size_t most = chunk->len / PIECE_MIN_BYTES;
    int np = loom_threads(ctx);
    if (np < 1) np = 1;
    if ((size_t)np > most) np = most ? (int)most : 1;
    loom_parsed_edges_t *pl = calloc((size_t)np, sizeof *pl);
    loom_parse_err_t *pe = calloc((size_t)np, sizeof *pe);
    loom_text_chunk_t *pc = calloc((size_t)np, sizeof *pc);
    size_t *cut = calloc((size_t)np + 1, sizeof *cut);
    if (!pl || !pe || !pc || !cut) {
        free(pl);
        free(pe);
        free(pc);
        free(cut);
        return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "%s: out of memory", path);
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
        loom_parsed_edges_init(&pl[k]);
    }
#pragma omp parallel for num_threads(np) schedule(static, 1)
    for (int k = 0; k < np; k++)
        loom_el_parse(path, &pc[k], h, &pl[k], &pe[k]);
    loom_status_t st = LOOM_OK;
    for (int k = 0; k < np && st == LOOM_OK; k++)
        if (pe[k].code != LOOM_OK)
            st = loom_error_at(ctx, pe[k].code, __FILE__, __LINE__, "%s", pe[k].msg);
    if (st == LOOM_OK) {
        if (np == 1) {
            *out = pl[0];
            loom_parsed_edges_init(&pl[0]);
        } else {
            st = el_merge(ctx, path, pl, np, out);
        }
    }
    for (int k = 0; k < np; k++)
        loom_parsed_edges_free(&pl[k]);
    free(pl);
    free(pe);
    free(pc);
    free(cut);
    return st;
}

/* How much of the file's start is scanned for a byte-order mark and a
 * vertex count declaration. */
#define HEADER_PROBE ((size_t)64 << 10)

/* Read the start of the file and scan it (the first worker does this). */
static loom_status_t read_header(loom_ctx_t *ctx, const char *path, loom_el_header_t *h)
{
    int fd = open(path, O_RDONLY);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        loom_status_t st =
            LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        return st;
    }
    uint64_t size = (uint64_t)sb.st_size, want = size < HEADER_PROBE ? size : HEADER_PROBE;
    char *buf = NULL;
    loom_status_t st = loom_text_read_range(ctx, path, fd, 0, want, &buf);
    close(fd);
    if (st != LOOM_OK) return st;
    size_t len = (size_t)want;
    if (want < size) {
        /* Only whole lines: a declaration cut in the middle would read short. */
        const char *nl = buf ? memrchr(buf, '\n', len) : NULL;
        len = nl ? (size_t)(nl - buf) + 1 : loom_text_bom_length(buf, len);
    }
    loom_parse_err_t err = {0};
    if (loom_el_scan_header(path, buf ? buf : "", buf ? len : 0, h, &err) != LOOM_OK)
        st = loom_error_at(ctx, err.code, __FILE__, __LINE__, "%s", err.msg);
    free(buf);
    return st;
}

/* The vertex count: the largest id plus one, or what the header declares;
 * `origin` says which, for messages. */
static uint64_t vertex_count(loom_ctx_t *ctx, const char *path, const loom_el_header_t *h,
                             uint64_t gmax, char *origin, size_t cap)
{
    uint64_t n = gmax + 1;
    snprintf(origin, cap, "max id + 1");
    if (h->line && (h->strict || h->num_vertices > n)) {
        /* Loom's own count is exact (every id was checked against it while
         * parsing); SNAP's is a lower bound here: isolated top vertices. */
        n = h->num_vertices;
        snprintf(origin, cap, "declared on line %llu", (unsigned long long)h->line);
    } else if (h->line && h->num_vertices < n) {
        /* SNAP's count is of the ids in use, which need not be 0 .. N-1. */
        loom_log(ctx, LOOM_LOG_INFO,
                 "%s:%llu: the header declares %llu nodes but ids run to %llu; the graph has "
                 "%llu vertices",
                 path, (unsigned long long)h->line, (unsigned long long)h->num_vertices,
                 (unsigned long long)gmax, (unsigned long long)n);
    }
    return n;
}

loom_status_t loom_read_edgelist(loom_ctx_t *ctx, const char *path, loom_read_result_t *out)
{
    memset(out, 0, sizeof *out);
    MPI_Comm comm = loom_comm(ctx);
    LOOM_TRY(loom_check_input_file(ctx, path));

    /* The first worker reads the start of the file; everyone learns what it declares. */
    loom_el_header_t h;
    memset(&h, 0, sizeof h);
    int root = loom_worker_rank(ctx, 0);
    loom_status_t st = LOOM_OK;
    if (loom_rank(ctx) == root) st = read_header(ctx, path, &h);
    LOOM_TRY(loom_agree(ctx, comm, st));
    LOOM_MPI(ctx, MPI_Bcast(&h, LOOM_EL_HEADER_WORDS, MPI_UINT64_T, root, comm));

    loom_text_chunk_t chunk;
    LOOM_TRY(loom_text_read_split(ctx, comm, path, h.skip, LOOM_TEXT_TO_END, 1,
                                  loom_worker_index(ctx), loom_num_workers(ctx), &chunk));
    loom_parsed_edges_t l;
    loom_parsed_edges_init(&l);
    st = el_parse_threads(ctx, path, &chunk, &h, &l);
    loom_text_chunk_free(&chunk);
    /* The lowest failing rank holds the earliest bad line of the file. */
    st = loom_agree(ctx, comm, st);
    if (st != LOOM_OK) {
        loom_parsed_edges_free(&l);
        return st;
    }

    uint64_t first[2] = {LOOM_NO_LINE, LOOM_NO_LINE}, count = l.count, total = 0, max_id = l.max_id,
             gmax = 0, n = 0;
    LOOM_MPI_KEEP(ctx, st, MPI_Allreduce(l.first_line_cols, first, 2, MPI_UINT64_T, MPI_MIN, comm));
    LOOM_MPI_KEEP(ctx, st, MPI_Allreduce(&count, &total, 1, MPI_UINT64_T, MPI_SUM, comm));
    LOOM_MPI_KEEP(ctx, st, MPI_Allreduce(&max_id, &gmax, 1, MPI_UINT64_T, MPI_MAX, comm));
    if (st != LOOM_OK) {
        loom_parsed_edges_free(&l);
        return st;
    }
    if (first[0] != LOOM_NO_LINE && first[1] != LOOM_NO_LINE) {
        /* Every rank computes the same message from the reduced line numbers. */
        int late = first[0] > first[1] ? 0 : 1; /* index of the column count seen later */
        st = LOOM_ERROR(ctx, LOOM_ERR_FORMAT,
                        "%s:%llu: malformed line: %d columns, but line %llu has %d (a weight "
                        "column must be on every line or on none)",
                        path, (unsigned long long)first[late], late + 2,
                        (unsigned long long)first[!late], !late + 2);
    } else if (total == 0) {
        st = LOOM_ERROR(ctx, LOOM_ERR_FORMAT, "%s: no edges (only comments or blank lines)", path);
    } else {
        n = vertex_count(ctx, path, &h, gmax, out->vertex_count_origin,
                         sizeof out->vertex_count_origin);
    }
    if (st != LOOM_OK) {
        loom_parsed_edges_free(&l);
        return st;
    }
    out->weighted = first[1] != LOOM_NO_LINE;
    out->edges.src = l.src;
    out->edges.dst = l.dst;
    out->edges.weight = out->weighted ? l.w : NULL;
    if (!out->edges.weight) free(l.w);
    out->edges.count = l.count;
    out->edges.capacity = l.cap;
    out->num_vertices = n;
    out->directed = 1;
    out->symmetric = 0;
    if (l.neg_line != LOOM_NO_LINE)
        loom_read_note_negative(out, l.neg_weight, "%s:%llu", path, (unsigned long long)l.neg_line);
    if (out->weighted && !out->edges.weight) {
        /* A rank that read no lines still owes its consumers a weight array. */
        out->edges.weight = calloc(1, sizeof(double));
        if (!out->edges.weight) {
            loom_edges_free(&out->edges);
            return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "%s: out of memory", path);
        }
    }
    return LOOM_OK;
}
