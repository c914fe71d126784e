/* libFuzzer target: the edge-list parser (header scan, then the lines), as
 * the reader runs it on one rank's chunk, with its contracts checked. */
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

/* Parse data[from, len) as one chunk whose first line is number `line`. */
static void parse_piece(const char *data, size_t from, size_t len, uint64_t line,
                        const loom_el_header_t *h)
{
    loom_text_chunk_t ch = {.data = (char *)data + from, .len = len - from, .first_line = line};
    loom_parsed_edges_t p;
    loom_parsed_edges_init(&p);
    loom_parse_err_t err = {0};
    loom_status_t st = loom_el_parse("fuzz.el", &ch, h, &p, &err);
    CHECK(st == err.code);
    CHECK(st == LOOM_OK || (err.msg[0] && strncmp(err.msg, "fuzz.el:", 8) == 0) ||
          st == LOOM_ERR_NOMEM);
    uint64_t limit = h->line && h->strict ? h->num_vertices : LOOM_MAX_VERTEX_ID + 1;
    CHECK(p.count <= loom_text_count_lines(ch.data, ch.len) + 1);
    for (size_t i = 0; i < p.count; i++) {
        CHECK(p.src[i] < limit && p.dst[i] < limit);
        CHECK(p.src[i] <= p.max_id && p.dst[i] <= p.max_id);
        if (p.w) CHECK(isfinite(p.w[i]));
    }
    CHECK(p.neg_line == LOOM_NO_LINE || p.neg_weight < 0);
    loom_parsed_edges_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *bytes, size_t size)
{
    /* Chunks end in a NUL, as the reader's do. */
    char *data = malloc(size + 1);
    if (!data) return 0;
    memcpy(data, bytes, size);
    data[size] = '\0';
    loom_el_header_t h;
    loom_parse_err_t err = {0};
    if (loom_el_scan_header("fuzz.el", data, size, &h, &err) == LOOM_OK) {
        CHECK(h.skip <= size);
        CHECK(!h.line || h.num_vertices <= LOOM_MAX_VERTEX_ID + 1);
        parse_piece(data, (size_t)h.skip, size, 1, &h);
        /* The lines after the first on their own, as a later rank or thread gets them. */
        const char *nl = memchr(data + h.skip, '\n', size - (size_t)h.skip);
        if (nl) parse_piece(data, (size_t)(nl - data) + 1, size, 2, &h);
    } else {
        CHECK(err.code == LOOM_ERR_FORMAT && strncmp(err.msg, "fuzz.el:", 8) == 0);
    }
    free(data);
    return 0;
}
