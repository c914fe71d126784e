/* Parallel reader of Matrix Market coordinate files (pattern, integer, real;
 * general or symmetric). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/io_internal.h"
#include "io/parse.h"
#include "io/textsplit.h"

/* Read the banner, comments and size line from the start of the file. */
static loom_status_t read_header(loom_ctx_t *ctx, const char *path, loom_mtx_header_t *h)
{
    FILE *f = fopen(path, "rb");
    if (!f) return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot open", path);
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    uint64_t ln = 0, off = 0;
    loom_parse_err_t err = {0};
    int have_size = 0;
    while (err.code == LOOM_OK && !have_size && (got = getline(&line, &cap, f)) >= 0) {
        ln++;
        off += (uint64_t)got;
        size_t len = (size_t)got;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            len--;
        if (ln == 1) {
            loom_mtx_parse_banner(path, line, len, h, &err);
            continue;
        }
        if (loom_mtx_header_skip(line, len)) continue;
        loom_mtx_parse_size(path, ln, line, len, h, &err);
        have_size = 1;
    }
    free(line);
    fclose(f);
    h->data_begin = off;
    h->data_line = ln + 1;
    if (err.code != LOOM_OK) return loom_error_at(ctx, err.code, __FILE__, __LINE__, "%s", err.msg);
    if (!have_size)
        return LOOM_ERROR(ctx, LOOM_ERR_FORMAT,
                          "%s:%llu: Matrix Market file ends before its size line 'rows cols "
                          "entries'",
                          path, (unsigned long long)ln);
    return LOOM_OK;
}

/* Parse this rank's entries into e (a weight array of at least one entry
 * when the matrix has values, as consumers expect of a weighted graph). */
static loom_status_t parse_entries(loom_ctx_t *ctx, const char *path, const loom_mtx_header_t *h,
                                   const loom_text_chunk_t *chunk, loom_edges_t *e,
                                   loom_read_result_t *out)
{
    loom_parsed_edges_t p;
    loom_parsed_edges_init(&p);
    loom_parse_err_t err = {0};
    if (loom_mtx_parse(path, h, chunk, &p, &err) != LOOM_OK) {
        loom_parsed_edges_free(&p);
        return loom_error_at(ctx, err.code, __FILE__, __LINE__, "%s", err.msg);
    }
    if (h->field != LOOM_MTX_PATTERN && !p.w) {
        p.w = malloc(sizeof *p.w);
        if (!p.w) {
            loom_parsed_edges_free(&p);
            return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "%s: out of memory", path);
        }
    }
    if (p.neg_line != LOOM_NO_LINE)
        loom_read_note_negative(out, p.neg_weight, "%s:%llu", path, (unsigned long long)p.neg_line);
    *e = (loom_edges_t){
        .count = p.count, .capacity = p.cap, .src = p.src, .dst = p.dst, .weight = p.w};
    return LOOM_OK;
}

loom_status_t loom_read_mtx(loom_ctx_t *ctx, const char *path, loom_read_result_t *out)
{
    memset(out, 0, sizeof *out);
    MPI_Comm comm = loom_comm(ctx);
    LOOM_TRY(loom_check_input_file(ctx, path));

    /* The first worker reads the header; everyone learns it. */
    loom_mtx_header_t h;
    memset(&h, 0, sizeof h);
    int root = loom_worker_rank(ctx, 0);
    loom_status_t st = LOOM_OK;
    if (loom_rank(ctx) == root) st = read_header(ctx, path, &h);
    LOOM_TRY(loom_agree(ctx, comm, st));
    LOOM_MPI(ctx, MPI_Bcast(&h, LOOM_MTX_HEADER_WORDS, MPI_UINT64_T, root, comm));
    uint64_t n = h.rows > h.cols ? h.rows : h.cols;

    loom_text_chunk_t chunk;
    LOOM_TRY(loom_text_read_split(ctx, comm, path, h.data_begin, LOOM_TEXT_TO_END, h.data_line,
                                  loom_worker_index(ctx), loom_num_workers(ctx), &chunk));
    loom_edges_t e;
    memset(&e, 0, sizeof e);
    st = parse_entries(ctx, path, &h, &chunk, &e, out);
    loom_text_chunk_free(&chunk);
    st = loom_agree(ctx, comm, st);
    uint64_t mine = e.count, total = 0;
    if (st == LOOM_OK)
        LOOM_MPI_KEEP(ctx, st, MPI_Allreduce(&mine, &total, 1, MPI_UINT64_T, MPI_SUM, comm));
    if (st == LOOM_OK) {
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
    out->num_vertices = n;
    snprintf(out->vertex_count_origin, sizeof out->vertex_count_origin, "the size line, line %llu",
             (unsigned long long)h.data_line - 1);
    out->directed = !h.symmetric;
    out->symmetric = 0;
    out->weighted = h.field != LOOM_MTX_PATTERN;
    return LOOM_OK;
}
