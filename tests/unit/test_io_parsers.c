/* Unit tests of the text parsers: edge lists, Matrix Market, line-aligned splits. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/io_internal.h"
#include "io/textsplit.h"
#include "loom_test.h"

static char path_buf[4096];

/* Write `text` (len bytes) to LOOM_TMP/name and return the path (static buffer). */
static const char *put_file(const char *name, const char *text, size_t len)
{
    snprintf(path_buf, sizeof path_buf, "%s/%s", loom_test_tmpdir(), name);
    FILE *f = fopen(path_buf, "wb");
    CU_ASSERT_FATAL(f != NULL);
    CU_ASSERT_FATAL(fwrite(text, 1, len, f) == len);
    fclose(f);
    return path_buf;
}

#define PUT(name, lit) put_file((name), (lit), sizeof(lit) - 1)

/* Expect a read to fail with `code` and a message containing `needle`. */
static void expect_fail(loom_status_t st, loom_status_t code, const char *needle)
{
    const char *msg = loom_error_message(loom_test_ctx);
    CU_ASSERT_EQUAL(st, code);
    if (!strstr(msg, needle)) {
        fprintf(stderr, "\n  message '%s' lacks '%s'\n", msg, needle);
        CU_FAIL("message does not name the cause");
    }
    loom_error_clear(loom_test_ctx);
}

static void test_edgelist_basic(void)
{
    /* Comments of both kinds, blank lines, tabs, CRLF, no final newline. */
    const char *p = PUT("basic.el", "# SNAP header\n%% other comment\n\n0 1\r\n  1\t2  \n"
                                    "\r\n   # indented comment\n2 0\n5 5");
    loom_read_result_t r;
    CU_ASSERT_EQUAL_FATAL(loom_read_edgelist(loom_test_ctx, p, &r), LOOM_OK);
    CU_ASSERT_EQUAL(r.edges.count, 4);
    CU_ASSERT_EQUAL(r.num_vertices, 6);
    CU_ASSERT_EQUAL(r.directed, 1);
    CU_ASSERT_EQUAL(r.symmetric, 0);
    CU_ASSERT_EQUAL(r.weighted, 0);
    CU_ASSERT_PTR_NULL(r.edges.weight);
    uint64_t es[4] = {0, 1, 2, 5}, ed[4] = {1, 2, 0, 5};
    for (int i = 0; i < 4 && (size_t)i < r.edges.count; i++) {
        CU_ASSERT_EQUAL(r.edges.src[i], es[i]);
        CU_ASSERT_EQUAL(r.edges.dst[i], ed[i]);
    }
    loom_edges_free(&r.edges);
}

static void test_edgelist_weights_and_huge_ids(void)
{
    const char *p = PUT("w.el", "9223372036854775806 0 1.5\n0 9223372036854775805 -2e3\n"
                                "1 2 1e308\n");
    loom_read_result_t r;
    CU_ASSERT_EQUAL_FATAL(loom_read_edgelist(loom_test_ctx, p, &r), LOOM_OK);
    CU_ASSERT_EQUAL(r.edges.count, 3);
    CU_ASSERT_EQUAL(r.weighted, 1);
    CU_ASSERT_EQUAL(r.num_vertices, (uint64_t)INT64_MAX);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r.edges.weight);
    CU_ASSERT_EQUAL(r.edges.src[0], LOOM_MAX_VERTEX_ID);
    CU_ASSERT_EQUAL(r.edges.dst[1], LOOM_MAX_VERTEX_ID - 1);
    CU_ASSERT_DOUBLE_EQUAL(r.edges.weight[0], 1.5, 0);
    CU_ASSERT_DOUBLE_EQUAL(r.edges.weight[1], -2000.0, 0);
    CU_ASSERT(r.edges.weight[2] >= 1e308);
    /* The first negative weight is noted for the commands that refuse them. */
    CU_ASSERT_PTR_NOT_NULL(strstr(r.negative_weight, "w.el:2: negative weight -2000"));
    CU_ASSERT_STRING_EQUAL(r.vertex_count_origin, "max id + 1");
    loom_edges_free(&r.edges);
}

static void test_edgelist_errors(void)
{
    loom_read_result_t r;
    loom_ctx_t *c = loom_test_ctx;
    expect_fail(loom_read_edgelist(c, PUT("e1.el", "0 1\n\n-1 2\n"), &r), LOOM_ERR_FORMAT,
                "e1.el:3: negative source vertex id -1");
    expect_fail(loom_read_edgelist(c, PUT("e2.el", "0 9223372036854775807\n"), &r), LOOM_ERR_FORMAT,
                "e2.el:1: destination vertex id 9223372036854775807 is out of range");
    expect_fail(loom_read_edgelist(c, PUT("e3.el", "0 99999999999999999999999\n"), &r),
                LOOM_ERR_FORMAT, "e3.el:1: destination vertex id");
    expect_fail(loom_read_edgelist(c, PUT("e4.el", "# x\r\n0 1\r\nab 1\r\n"), &r), LOOM_ERR_FORMAT,
                "e4.el:3: malformed line: source vertex id 'ab' is not a number");
    expect_fail(loom_read_edgelist(c, PUT("e5.el", "0 1\n7\n"), &r), LOOM_ERR_FORMAT,
                "e5.el:2: malformed line: missing destination");
    expect_fail(loom_read_edgelist(c, PUT("e6.el", "0 1 2 3\n"), &r), LOOM_ERR_FORMAT,
                "e6.el:1: malformed line: 4 columns");
    expect_fail(loom_read_edgelist(c, PUT("e7.el", "0 1\n1 2\n2 3 0.5\n"), &r), LOOM_ERR_FORMAT,
                "e7.el:3: malformed line: 3 columns, but line 1 has 2");
    expect_fail(loom_read_edgelist(c, PUT("e8.el", "0 1 x\n"), &r), LOOM_ERR_FORMAT,
                "e8.el:1: malformed weight 'x'");
    expect_fail(loom_read_edgelist(c, PUT("e9.el", "# only a comment\n\n"), &r), LOOM_ERR_FORMAT,
                "e9.el: no edges");
    expect_fail(loom_read_edgelist(c, PUT("e10.el", "0 1\n1 2.5\n"), &r), LOOM_ERR_FORMAT,
                "e10.el:2: malformed line: destination vertex id '2.5' is not a number");
    /* Weights must be finite numbers, in every format. */
    expect_fail(loom_read_edgelist(c, PUT("e11.el", "0 1 1\n1 2 nan\n"), &r), LOOM_ERR_FORMAT,
                "e11.el:2: weight 'nan' is not a finite number");
    expect_fail(loom_read_edgelist(c, PUT("e12.el", "0 1 -inf\n"), &r), LOOM_ERR_FORMAT,
                "e12.el:1: weight '-inf' is not a finite number");
    expect_fail(loom_read_edgelist(c, PUT("e13.el", "0 1 1e999\n"), &r), LOOM_ERR_FORMAT,
                "e13.el:1: weight '1e999' is not a finite number");
    expect_fail(loom_read_edgelist(c, PUT("empty.el", ""), &r), LOOM_ERR_IO,
                "empty.el: file is empty");
    char missing[4200];
    snprintf(missing, sizeof missing, "%s/no-such.el", loom_test_tmpdir());
    expect_fail(loom_read_edgelist(c, missing, &r), LOOM_ERR_IO, "no-such.el: no such file");
    expect_fail(loom_read_edgelist(c, loom_test_tmpdir(), &r), LOOM_ERR_IO, "is a directory");
}

/* A byte-order mark is skipped; a vertex count declared in the leading
 * comments (Loom's own header, or SNAP's) keeps isolated top vertices. */
static void test_edgelist_header(void)
{
    loom_read_result_t r;
    loom_ctx_t *c = loom_test_ctx;
    CU_ASSERT_EQUAL_FATAL(loom_read_edgelist(c,
                                             PUT("bom.el", "\xEF\xBB\xBF"
                                                           "0 1\n1 2\n"),
                                             &r),
                          LOOM_OK);
    CU_ASSERT_EQUAL(r.edges.count, 2);
    CU_ASSERT_EQUAL(r.num_vertices, 3);
    loom_edges_free(&r.edges);

    CU_ASSERT_EQUAL_FATAL(
        loom_read_edgelist(c, PUT("h1.el", "# loom-graph vertices=10 arcs=2\n0 1\n1 2\n"), &r),
        LOOM_OK);
    CU_ASSERT_EQUAL(r.num_vertices, 10);
    CU_ASSERT_STRING_EQUAL(r.vertex_count_origin, "declared on line 1");
    loom_edges_free(&r.edges);

    const char *snap = "# Directed graph: x.txt\n# Nodes: 7 Edges: 2\n# FromNodeId\tToNodeId\n"
                       "0\t1\n1\t2\n";
    CU_ASSERT_EQUAL_FATAL(loom_read_edgelist(c, put_file("h2.el", snap, strlen(snap)), &r),
                          LOOM_OK);
    CU_ASSERT_EQUAL(r.num_vertices, 7);
    loom_edges_free(&r.edges);

    /* SNAP counts the ids in use, which may be sparse: a lower bound only. */
    CU_ASSERT_EQUAL_FATAL(loom_read_edgelist(c, PUT("h3.el", "# Nodes: 2 Edges: 1\n0 5\n"), &r),
                          LOOM_OK);
    CU_ASSERT_EQUAL(r.num_vertices, 6);
    loom_edges_free(&r.edges);

    /* A byte-order mark before the header, and a declaration after the first edge is a comment. */
    CU_ASSERT_EQUAL_FATAL(loom_read_edgelist(c,
                                             PUT("h4.el", "\xEF\xBB\xBF# loom-graph vertices=4\n"
                                                          "0 1\n# loom-graph vertices=9\n"),
                                             &r),
                          LOOM_OK);
    CU_ASSERT_EQUAL(r.num_vertices, 4);
    loom_edges_free(&r.edges);

    expect_fail(loom_read_edgelist(c, PUT("h5.el", "# loom-graph vertices=3\n0 1\n\n2 3\n"), &r),
                LOOM_ERR_FORMAT,
                "h5.el:4: vertex id 3 is not below the vertex count 3 declared on line 1");
    expect_fail(loom_read_edgelist(c, PUT("h6.el", "# loom-graph vertices=x\n0 1\n"), &r),
                LOOM_ERR_FORMAT, "h6.el:1: malformed loom-graph header");
    expect_fail(loom_read_edgelist(c, PUT("h7.el", "#\n# Nodes: 18446744073709551615\n0 1\n"), &r),
                LOOM_ERR_FORMAT, "h7.el:2: malformed header: 'Nodes:'");
    expect_fail(loom_read_edgelist(c,
                                   PUT("h8.el", "# loom-graph vertices=9223372036854775808\n"
                                                "0 1\n"),
                                   &r),
                LOOM_ERR_FORMAT, "h8.el:1: malformed loom-graph header");
    /* Without the mark, the same bytes are not a number. */
    expect_fail(loom_read_edgelist(c,
                                   PUT("h9.el", "0 1\n\xEF\xBB\xBF"
                                                "1 2\n"),
                                   &r),
                LOOM_ERR_FORMAT, "h9.el:2: malformed line: source vertex id");
}

static void test_mtx_ok(void)
{
    loom_read_result_t r;
    const char *p = PUT("a.mtx", "%%MatrixMarket matrix coordinate real symmetric\r\n% comment\r\n"
                                 "\r\n4 3 3\r\n1 1 0.5\r\n3 2 -1\r\n4 3 2e1");
    CU_ASSERT_EQUAL_FATAL(loom_read_mtx(loom_test_ctx, p, &r), LOOM_OK);
    CU_ASSERT_EQUAL(r.num_vertices, 4); /* max(rows, cols) */
    CU_ASSERT_EQUAL(r.directed, 0);
    CU_ASSERT_EQUAL(r.symmetric, 0);
    CU_ASSERT_EQUAL(r.weighted, 1);
    CU_ASSERT_EQUAL_FATAL(r.edges.count, 3);
    CU_ASSERT_EQUAL(r.edges.src[1], 2);
    CU_ASSERT_EQUAL(r.edges.dst[1], 1);
    CU_ASSERT_DOUBLE_EQUAL(r.edges.weight[2], 20.0, 0);
    loom_edges_free(&r.edges);

    p = PUT("b.mtx", "%%MatrixMarket matrix coordinate pattern general\n5 5 2\n1 5\n5 1\n");
    CU_ASSERT_EQUAL_FATAL(loom_read_mtx(loom_test_ctx, p, &r), LOOM_OK);
    CU_ASSERT_EQUAL(r.num_vertices, 5);
    CU_ASSERT_EQUAL(r.directed, 1);
    CU_ASSERT_EQUAL(r.weighted, 0);
    CU_ASSERT_EQUAL_FATAL(r.edges.count, 2);
    CU_ASSERT_EQUAL(r.edges.src[0], 0);
    CU_ASSERT_EQUAL(r.edges.dst[0], 4);
    loom_edges_free(&r.edges);

    p = PUT("c.mtx", "%%MatrixMarket matrix coordinate integer general\n2 2 1\n2 1 7\n");
    CU_ASSERT_EQUAL_FATAL(loom_read_mtx(loom_test_ctx, p, &r), LOOM_OK);
    CU_ASSERT_EQUAL(r.weighted, 1);
    CU_ASSERT_DOUBLE_EQUAL(r.edges.weight[0], 7.0, 0);
    CU_ASSERT_STRING_EQUAL(r.negative_weight, "");
    loom_edges_free(&r.edges);

    /* A byte-order mark before the banner is skipped; negative values are noted. */
    p = PUT("bom.mtx", "\xEF\xBB\xBF%%MatrixMarket matrix coordinate integer general\n"
                       "3 3 2\n2 1 -7\n3 1 -2\n");
    CU_ASSERT_EQUAL_FATAL(loom_read_mtx(loom_test_ctx, p, &r), LOOM_OK);
    CU_ASSERT_EQUAL(r.edges.count, 2);
    CU_ASSERT_DOUBLE_EQUAL(r.edges.weight[0], -7.0, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.negative_weight, "bom.mtx:3: negative weight -7"));
    loom_edges_free(&r.edges);
}

static void test_mtx_errors(void)
{
    loom_read_result_t r;
    loom_ctx_t *c = loom_test_ctx;
    expect_fail(loom_read_mtx(c, PUT("m1.mtx", "1 2\n"), &r), LOOM_ERR_FORMAT,
                "m1.mtx:1: not a Matrix Market file");
    expect_fail(
        loom_read_mtx(c, PUT("m2.mtx", "%%MatrixMarket matrix array real general\n2 2\n"), &r),
        LOOM_ERR_FORMAT, "m2.mtx:1: unsupported Matrix Market format 'array'");
    expect_fail(
        loom_read_mtx(c, PUT("m3.mtx", "%%MatrixMarket matrix coordinate complex general\n"), &r),
        LOOM_ERR_FORMAT, "m3.mtx:1: unsupported Matrix Market field 'complex'");
    expect_fail(
        loom_read_mtx(c, PUT("m4.mtx", "%%MatrixMarket matrix coordinate real hermitian\n"), &r),
        LOOM_ERR_FORMAT, "m4.mtx:1: unsupported Matrix Market symmetry 'hermitian'");
    expect_fail(loom_read_mtx(c, PUT("m5.mtx", "%%MatrixMarket matrix coordinate real\n"), &r),
                LOOM_ERR_FORMAT, "m5.mtx:1: malformed Matrix Market header");
    expect_fail(
        loom_read_mtx(c, PUT("m6.mtx", "%%MatrixMarket matrix coordinate real general\n%x\n"), &r),
        LOOM_ERR_FORMAT, "m6.mtx:2: Matrix Market file ends before its size line");
    expect_fail(
        loom_read_mtx(c, PUT("m7.mtx", "%%MatrixMarket matrix coordinate real general\n3 3\n"), &r),
        LOOM_ERR_FORMAT, "m7.mtx:2: malformed Matrix Market size line");
    expect_fail(loom_read_mtx(c,
                              PUT("m8.mtx", "%%MatrixMarket matrix coordinate pattern general\n"
                                            "3 3 3\n1 2\n2 3\n"),
                              &r),
                LOOM_ERR_FORMAT, "m8.mtx: the size line declares 3 entries but the file has 2");
    expect_fail(loom_read_mtx(c,
                              PUT("m9.mtx", "%%MatrixMarket matrix coordinate pattern general\n"
                                            "3 2 2\n1 2\n1 3\n"),
                              &r),
                LOOM_ERR_FORMAT, "m9.mtx:4: entry (1, 3) is outside the declared size 3 x 2");
    expect_fail(loom_read_mtx(c,
                              PUT("m10.mtx", "%%MatrixMarket matrix coordinate pattern general\n"
                                             "3 3 1\n0 2\n"),
                              &r),
                LOOM_ERR_FORMAT, "m10.mtx:3: entry (0, 2) is outside");
    expect_fail(loom_read_mtx(c,
                              PUT("m11.mtx", "%%MatrixMarket matrix coordinate integer general\n"
                                             "3 3 1\n1 2\n"),
                              &r),
                LOOM_ERR_FORMAT, "m11.mtx:3: missing value column (the header says 'integer')");
    expect_fail(loom_read_mtx(c,
                              PUT("m12.mtx", "%%MatrixMarket matrix coordinate pattern general\n"
                                             "3 3 1\n1 2 3\n"),
                              &r),
                LOOM_ERR_FORMAT, "m12.mtx:3: malformed entry: 3 columns, expected 2");
    expect_fail(loom_read_mtx(c,
                              PUT("m13.mtx", "%%MatrixMarket matrix coordinate integer general\n"
                                             "3 3 2\n1 2 3\n2 3 1.5\n"),
                              &r),
                LOOM_ERR_FORMAT, "m13.mtx:4: value '1.5' is not an integer");
    expect_fail(loom_read_mtx(c,
                              PUT("m14.mtx", "%%MatrixMarket matrix coordinate integer general\n"
                                             "3 3 1\n1 2 1e3\n"),
                              &r),
                LOOM_ERR_FORMAT, "m14.mtx:3: value '1e3' is not an integer");
    expect_fail(loom_read_mtx(c,
                              PUT("m15.mtx", "%%MatrixMarket matrix coordinate real general\n"
                                             "3 3 1\n1 2 nan\n"),
                              &r),
                LOOM_ERR_FORMAT, "m15.mtx:3: value 'nan' is not a finite number");
    expect_fail(loom_read_mtx(c,
                              PUT("m16.mtx", "%%MatrixMarket matrix coordinate real general\n"
                                             "18446744073709551615 3 1\n1 2 1\n"),
                              &r),
                LOOM_ERR_FORMAT,
                "m16.mtx:2: malformed Matrix Market size line: "
                "'18446744073709551615' is too large");
}

static void test_numbers(void)
{
    uint64_t v = 0;
    CU_ASSERT_EQUAL(loom_text_parse_u64("0", 1, 10, &v), LOOM_NUM_OK);
    CU_ASSERT_EQUAL(v, 0);
    CU_ASSERT_EQUAL(loom_text_parse_u64("18446744073709551615", 20, UINT64_MAX, &v), LOOM_NUM_OK);
    CU_ASSERT_EQUAL(v, UINT64_MAX);
    CU_ASSERT_EQUAL(loom_text_parse_u64("18446744073709551616", 20, UINT64_MAX, &v),
                    LOOM_NUM_TOO_LARGE);
    CU_ASSERT_EQUAL(loom_text_parse_u64("11", 2, 10, &v), LOOM_NUM_TOO_LARGE);
    CU_ASSERT_EQUAL(loom_text_parse_u64("-5", 2, 10, &v), LOOM_NUM_NEGATIVE);
    CU_ASSERT_EQUAL(loom_text_parse_u64("-", 1, 10, &v), LOOM_NUM_NOT_A_NUMBER);
    CU_ASSERT_EQUAL(loom_text_parse_u64("1e3", 3, 10000, &v), LOOM_NUM_NOT_A_NUMBER);
    CU_ASSERT_EQUAL(loom_text_parse_u64("", 0, 10, &v), LOOM_NUM_NOT_A_NUMBER);
    double d = 0;
    CU_ASSERT_EQUAL(loom_text_parse_double("nan", 3, &d), LOOM_NUM_NOT_FINITE);
    CU_ASSERT_EQUAL(loom_text_parse_double("inf", 3, &d), LOOM_NUM_NOT_FINITE);
    CU_ASSERT_EQUAL(loom_text_parse_double("1.5x", 4, &d), LOOM_NUM_NOT_A_NUMBER);
    CU_ASSERT_EQUAL(loom_text_parse_double("-1.5e2", 6, &d), LOOM_NUM_OK);
    CU_ASSERT_DOUBLE_EQUAL(d, -150.0, 0);
    CU_ASSERT(loom_text_is_integer("-12", 3));
    CU_ASSERT(loom_text_is_integer("+0", 2));
    CU_ASSERT(!loom_text_is_integer("1.5", 3));
    CU_ASSERT(!loom_text_is_integer("1e3", 3));
    CU_ASSERT(!loom_text_is_integer("-", 1));
    CU_ASSERT_EQUAL(loom_text_bom_length("\xEF\xBB\xBF"
                                         "0 1",
                                         6),
                    3);
    CU_ASSERT_EQUAL(loom_text_bom_length("\xEF\xBB", 2), 0);
    char buf[32];
    *loom_text_put_u64(buf, 9223372036854775806ULL) = '\0';
    CU_ASSERT_STRING_EQUAL(buf, "9223372036854775806");
    *loom_text_put_u64(buf, 0) = '\0';
    CU_ASSERT_STRING_EQUAL(buf, "0");
}

/* Any number of parts tiles the file exactly, each part starting at a line start. */
static void test_split_tiles(void)
{
    static const char text[] = "a\nbb\n\nccc\r\nd\n\n\neeeeeeeeee\nf";
    const char *p = PUT("split.txt", text);
    size_t n = sizeof text - 1;
    for (int nparts = 1; nparts <= 40; nparts += 3) {
        char *cat = calloc(n + 1, 1);
        size_t at = 0;
        uint64_t prev_end = 0;
        for (int k = 0; k < nparts; k++) {
            loom_text_chunk_t ch;
            CU_ASSERT_EQUAL_FATAL(loom_text_read_split(loom_test_ctx, MPI_COMM_SELF, p, 0,
                                                       LOOM_TEXT_TO_END, 1, k, nparts, &ch),
                                  LOOM_OK);
            CU_ASSERT_EQUAL(ch.begin, prev_end);
            CU_ASSERT(ch.begin == 0 || text[ch.begin - 1] == '\n');
            CU_ASSERT_FATAL(at + ch.len <= n);
            if (ch.len) memcpy(cat + at, ch.data, ch.len);
            at += ch.len;
            prev_end = ch.end;
            loom_text_chunk_free(&ch);
        }
        CU_ASSERT_EQUAL(at, n);
        CU_ASSERT(memcmp(cat, text, n) == 0);
        free(cat);
    }
    /* Lines from a cursor: CR stripped, the last line without '\n' kept. */
    loom_text_chunk_t ch;
    CU_ASSERT_EQUAL_FATAL(
        loom_text_read_split(loom_test_ctx, MPI_COMM_SELF, p, 0, LOOM_TEXT_TO_END, 1, 0, 1, &ch),
        LOOM_OK);
    loom_text_cursor_t cur;
    loom_text_cursor_init(&cur, &ch);
    const char *line;
    size_t len;
    int count = 0;
    while (loom_text_next_line(&cur, &line, &len)) {
        count++;
        if (cur.line == 4) CU_ASSERT(len == 3 && memcmp(line, "ccc", 3) == 0);
        if (cur.line == 9) CU_ASSERT(len == 1 && line[0] == 'f');
    }
    CU_ASSERT_EQUAL(count, 9);
    loom_text_chunk_free(&ch);
}

static void register_suites(void)
{
    static const CU_TestInfo edgelist[] = {
        {"basic", test_edgelist_basic},
        {"weights and ids near 2^63", test_edgelist_weights_and_huge_ids},
        {"errors name file, line and cause", test_edgelist_errors},
        {"byte-order mark and vertex count header", test_edgelist_header},
        {NULL, NULL},
    };
    static const CU_TestInfo mtx[] = {
        {"valid files", test_mtx_ok},
        {"errors", test_mtx_errors},
        {NULL, NULL},
    };
    static const CU_TestInfo text[] = {
        {"numbers", test_numbers},
        {"splits tile the file", test_split_tiles},
        {NULL, NULL},
    };
    loom_test_suite("edge lists", edgelist);
    loom_test_suite("matrix market", mtx);
    loom_test_suite("text helpers", text);
}

int main(int argc, char **argv)
{
    return loom_test_main(argc, argv, register_suites);
}
