/* libFuzzer target: the Matrix Market parser (banner, comments, size line,
 * then the entries), as the reader runs it, with its contracts checked. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/parse.h"
#include "loom/graph.h"

/* A broken contract is a crash, so that libFuzzer keeps the input. */
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) abort();                                                                      \
    } while (0)

static void check_err(loom_status_t st, const loom_parse_err_t *err)
{
    CHECK(st == err->code);
    CHECK(st == LOOM_OK || st == LOOM_ERR_NOMEM || strncmp(err->msg, "fuzz.mtx:", 9) == 0);
}

/* The header as read_mtx.c reads it, line by line; returns 1 with h filled
 * when a size line was found. */
static int parse_header(const char *data, size_t size, loom_mtx_header_t *h)
{
    loom_text_chunk_t all = {.data = (char *)data, .len = size, .first_line = 1};
    loom_text_cursor_t cur;
    loom_text_cursor_init(&cur, &all);
    const char *line;
    size_t len;
    while (loom_text_next_line(&cur, &line, &len)) {
        loom_parse_err_t err = {0};
        loom_status_t st;
        if (cur.line == 1) {
            st = loom_mtx_parse_banner("fuzz.mtx", line, len, h, &err);
            check_err(st, &err);
            if (st != LOOM_OK) return 0;
            continue;
        }
        if (loom_mtx_header_skip(line, len)) continue;
        st = loom_mtx_parse_size("fuzz.mtx", cur.line, line, len, h, &err);
        check_err(st, &err);
        if (st != LOOM_OK) return 0;
        CHECK(h->rows <= LOOM_MAX_VERTEX_ID + 1 && h->cols <= LOOM_MAX_VERTEX_ID + 1);
        h->data_begin = cur.pos;
        h->data_line = cur.line + 1;
        return 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *bytes, size_t size)
{
    char *data = malloc(size + 1);
    if (!data) return 0;
    memcpy(data, bytes, size);
    data[size] = '\0';
    loom_mtx_header_t h;
    memset(&h, 0, sizeof h);
    if (parse_header(data, size, &h)) {
        loom_text_chunk_t ch = {.data = data + h.data_begin,
                                .len = size - (size_t)h.data_begin,
                                .first_line = h.data_line};
        loom_parsed_edges_t p;
        loom_parsed_edges_init(&p);
        loom_parse_err_t err = {0};
        check_err(loom_mtx_parse("fuzz.mtx", &h, &ch, &p, &err), &err);
        for (size_t i = 0; i < p.count; i++) {
            CHECK(p.src[i] < h.rows && p.dst[i] < h.cols);
            if (p.w)
                CHECK(isfinite(p.w[i]) && (h.field != LOOM_MTX_INTEGER || p.w[i] == floor(p.w[i])));
        }
        CHECK(h.field != LOOM_MTX_PATTERN || !p.w);
        loom_parsed_edges_free(&p);
    }
    free(data);
    return 0;
}
