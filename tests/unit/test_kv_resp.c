/* Unit tests of the Redis protocol's request parser (src/kv/resp.c): multibulk requests whole,
 * a byte at a time and pipelined, inline commands, empty and binary-safe requests, every
 * protocol error, and random garbage (never a crash, never a read past the buffer: each input
 * is parsed from a malloc'd copy of its exact length, so that ASan sees an overrun). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv/kv_internal.h"
#include "loom_test.h"

#define MAXB ((size_t)1 << 20) /* max_bulk of most cases */

static uint64_t rng = 0x7265737070617273ULL;
static uint64_t next_rand(void)
{
    return loom_test_rand(&rng);
}
static uint64_t rand_below(uint64_t n)
{
    return n ? next_rand() % n : 0;
}

/* Text for a message: CR, LF, NUL and other control bytes escaped, at most 60 bytes. */
static const char *shown(const void *data, size_t len)
{
    static char out[300];
    const unsigned char *p = data;
    size_t o = 0;
    for (size_t i = 0; i < len && i < 60; i++) {
        if (p[i] == '\r')
            o += (size_t)snprintf(out + o, sizeof out - o, "\\r");
        else if (p[i] == '\n')
            o += (size_t)snprintf(out + o, sizeof out - o, "\\n");
        else if (p[i] < 32 || p[i] > 126)
            o += (size_t)snprintf(out + o, sizeof out - o, "\\x%02x", p[i]);
        else
            out[o++] = (char)p[i];
    }
    out[o] = 0;
    return out;
}

/* Parse from an exact-length heap copy; *copy keeps it (argv points into it). */
static long parse_copy(const void *data, size_t len, size_t max_bulk, kv_req_t *req,
                       const char **err, unsigned char **copy)
{
    *copy = malloc(len ? len : 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(*copy);
    if (len) memcpy(*copy, data, len);
    *err = NULL;
    return kv_resp_parse(*copy, len, max_bulk, req, err);
}

/* The request's arguments are `want` (n of them; lengths from strlen unless lens given). */
static int args_are(const kv_req_t *req, int n, const char *const *want, const size_t *lens)
{
    if (req->argc != n) {
        fprintf(stderr, "  argc %d, expected %d\n", req->argc, n);
        return 0;
    }
    for (int i = 0; i < n; i++) {
        size_t l = lens ? lens[i] : strlen(want[i]);
        if (req->argl[i] != l || memcmp(req->argv[i], want[i], l)) {
            fprintf(stderr, "  argument %d: \"%.*s\", expected \"%.*s\"\n", i, (int)req->argl[i],
                    (const char *)req->argv[i], (int)l, want[i]);
            return 0;
        }
    }
    return 1;
}

/* A whole request: every proper prefix needs more; the whole takes exactly its length; the
 * arguments are `want`. */
static void expect_request(const char *text, size_t len, int n, const char *const *want,
                           const size_t *lens)
{
    kv_req_t req = {0};
    const char *err;
    unsigned char *copy;
    long r = parse_copy(text, len, MAXB, &req, &err, &copy);
    CU_ASSERT_EQUAL(r, (long)len);
    if (r != (long)len)
        fprintf(stderr, "  \"%s\": %ld (%s), expected %zu\n", shown(text, len), r, err ? err : "-",
                len);
    else
        CU_ASSERT(args_are(&req, n, want, lens));
    free(copy);
    for (size_t k = 0; k < len; k++) {
        long rk = parse_copy(text, k, MAXB, &req, &err, &copy);
        CU_ASSERT_EQUAL(rk, 0);
        if (rk != 0) fprintf(stderr, "  \"%s\" cut at %zu: %ld\n", shown(text, len), k, rk);
        free(copy);
    }
    kv_req_free(&req);
}

#define REQ(text, ...)                                                                             \
    expect_request(text, sizeof(text) - 1,                                                         \
                   (int)(sizeof((const char *[]){__VA_ARGS__}) / sizeof(const char *)),            \
                   (const char *[]){__VA_ARGS__}, NULL)

static void test_multibulk(void)
{
    REQ("*1\r\n$4\r\nPING\r\n", "PING");
    REQ("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", "GET", "k");
    REQ("*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n", "SET", "key", "value");
    REQ("*3\r\n$3\r\nset\r\n$0\r\n\r\n$0\r\n\r\n", "set", "", "");
    REQ("*1\r\n$10\r\n0123456789\r\n", "0123456789");
}

static void test_binary_safe(void)
{
    static const char text[] = "*3\r\n$3\r\nSET\r\n$4\r\na\r\nb\r\n$7\r\n\0\r\n*1\r\n\r\n";
    const char *want[] = {"SET", "a\r\nb", "\0\r\n*1\r\n"};
    const size_t lens[] = {3, 4, 7};
    expect_request(text, sizeof text - 1, 3, want, lens);
    /* every byte value */
    unsigned char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    char buf[400];
    int h = snprintf(buf, sizeof buf, "*2\r\n$3\r\nGET\r\n$256\r\n");
    memcpy(buf + h, all, 256);
    memcpy(buf + h + 256, "\r\n", 2);
    const char *w2[] = {"GET", (const char *)all};
    const size_t l2[] = {3, 256};
    expect_request(buf, (size_t)h + 258, 2, w2, l2);
}

static void test_inline(void)
{
    REQ("PING\r\n", "PING");
    REQ("PING\n", "PING");
    REQ("SET a b\n", "SET", "a", "b");
    REQ("SET a b\r\n", "SET", "a", "b");
    REQ("  SET   a \t b  \r\n", "SET", "a", "b");
    REQ("GET k\r\n", "GET", "k");
    /* an empty line: no arguments, its bytes taken */
    kv_req_t req = {0};
    const char *err;
    unsigned char *copy;
    CU_ASSERT_EQUAL(parse_copy("\r\n", 2, MAXB, &req, &err, &copy), 2);
    CU_ASSERT_EQUAL(req.argc, 0);
    free(copy);
    CU_ASSERT_EQUAL(parse_copy("   \n", 4, MAXB, &req, &err, &copy), 4);
    CU_ASSERT_EQUAL(req.argc, 0);
    free(copy);
    /* only the first line: the rest is the next request */
    CU_ASSERT_EQUAL(parse_copy("ECHO hi\r\nPING\r\n", 15, MAXB, &req, &err, &copy), 9);
    CU_ASSERT(args_are(&req, 2, (const char *[]){"ECHO", "hi"}, NULL));
    free(copy);
    /* a long inline line under the limit, whole */
    size_t n = KV_RESP_MAX_INLINE - 10;
    char *line = malloc(n + 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(line);
    memset(line, 'x', n);
    memcpy(line, "ECHO ", 5);
    line[n] = '\r';
    line[n + 1] = '\n';
    CU_ASSERT_EQUAL(parse_copy(line, n + 2, MAXB, &req, &err, &copy), (long)(n + 2));
    CU_ASSERT_EQUAL(req.argc, 2);
    if (req.argc == 2) CU_ASSERT_EQUAL(req.argl[1], n - 5);
    free(copy);
    /* and a prefix of it without its newline: more needed */
    CU_ASSERT_EQUAL(parse_copy(line, n, MAXB, &req, &err, &copy), 0);
    free(copy);
    free(line);
    kv_req_free(&req);
}

static void test_empty_multibulk(void)
{
    kv_req_t req = {0};
    const char *err;
    unsigned char *copy;
    CU_ASSERT_EQUAL(parse_copy("*0\r\n", 4, MAXB, &req, &err, &copy), 4);
    CU_ASSERT_EQUAL(req.argc, 0);
    free(copy);
    /* "*0\r\n" then a request: the empty one is taken alone */
    CU_ASSERT_EQUAL(parse_copy("*0\r\n*1\r\n$4\r\nPING\r\n", 18, MAXB, &req, &err, &copy), 4);
    CU_ASSERT_EQUAL(req.argc, 0);
    free(copy);
    for (size_t k = 0; k < 4; k++) {
        CU_ASSERT_EQUAL(parse_copy("*0\r\n", k, MAXB, &req, &err, &copy), 0);
        free(copy);
    }
    kv_req_free(&req);
}

/* Several requests in one buffer, and the same stream fed a byte at a time (as a connection's
 * reads might deliver it): the same requests, in order. */
static void test_pipelined_and_bytewise(void)
{
    static const char stream[] = "*2\r\n$3\r\nGET\r\n$1\r\na\r\n"
                                 "PING\r\n"
                                 "*0\r\n"
                                 "*3\r\n$3\r\nSET\r\n$2\r\nk\n\r\n$0\r\n\r\n"
                                 "SET x  y\n"
                                 "*1\r\n$4\r\nQUIT\r\n";
    const size_t len = sizeof stream - 1;
    const char *w[6][3] = {{"GET", "a"},       {"PING"},          {NULL},
                           {"SET", "k\n", ""}, {"SET", "x", "y"}, {"QUIT"}};
    const int wn[6] = {2, 1, 0, 3, 3, 1};

    /* all at once */
    kv_req_t req = {0};
    const char *err;
    unsigned char *copy = malloc(len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(copy);
    memcpy(copy, stream, len);
    size_t at = 0;
    for (int i = 0; i < 6; i++) {
        err = NULL;
        long r = kv_resp_parse(copy + at, len - at, MAXB, &req, &err);
        CU_ASSERT(r > 0);
        if (r <= 0) break;
        CU_ASSERT(args_are(&req, wn[i], w[i], NULL));
        at += (size_t)r;
    }
    CU_ASSERT_EQUAL(at, len);
    free(copy);

    /* a byte at a time into a growing buffer; parse after every byte */
    unsigned char *buf = malloc(len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    size_t have = 0, start = 0;
    int got = 0, bad = 0;
    for (size_t i = 0; i < len; i++) {
        buf[have++] = (unsigned char)stream[i];
        for (;;) {
            unsigned char *part = malloc(have - start ? have - start : 1);
            CU_ASSERT_PTR_NOT_NULL_FATAL(part);
            memcpy(part, buf + start, have - start);
            err = NULL;
            long r = kv_resp_parse(part, have - start, MAXB, &req, &err);
            if (r > 0) {
                if (got >= 6 || !args_are(&req, wn[got], w[got], NULL)) bad++;
                /* only once its last byte is in */
                if (i + 1 != start + (size_t)r && have != start + (size_t)r) bad++;
                got++;
                start += (size_t)r;
            } else if (r < 0) {
                fprintf(stderr, "  byte %zu: %ld (%s)\n", i, r, err ? err : "-");
                bad++;
            }
            free(part);
            if (r <= 0 || start == have) break;
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(got, 6);
    CU_ASSERT_EQUAL(start, len);
    free(buf);
    kv_req_free(&req);
}

/* A protocol error: -1 with *err set, from the whole input and from any longer one. */
static void expect_error(const char *text, size_t len, size_t max_bulk)
{
    kv_req_t req = {0};
    const char *err;
    unsigned char *copy;
    long r = parse_copy(text, len, max_bulk, &req, &err, &copy);
    CU_ASSERT_EQUAL(r, -1);
    CU_ASSERT_PTR_NOT_NULL(err);
    if (r != -1 || !err)
        fprintf(stderr, "  \"%s\": %ld (%s), expected a protocol error\n", shown(text, len), r,
                err ? err : "no message");
    free(copy);
    kv_req_free(&req);
}

#define ERR(text) expect_error(text, sizeof(text) - 1, MAXB)

static void test_errors(void)
{
    /* bad multibulk length */
    ERR("*x\r\n");
    ERR("*1x\r\n");
    ERR("*\r\n");
    ERR("*-\r\n");
    ERR("*1\rx");
    ERR("* 1\r\n");
    ERR("*+1\r\n");
    /* a count over KV_RESP_MAX_ARGS */
    char buf[128];
    int n = snprintf(buf, sizeof buf, "*%d\r\n", KV_RESP_MAX_ARGS + 1);
    expect_error(buf, (size_t)n, MAXB);
    ERR("*99999999999\r\n");
    /* no '$' */
    ERR("*1\r\n:4\r\nPING\r\n");
    ERR("*1\r\n4\r\nPING\r\n");
    ERR("*2\r\n$3\r\nGET\r\n+k\r\n");
    /* negative or non-numeric bulk length */
    ERR("*1\r\n$-1\r\n");
    ERR("*1\r\n$-4\r\nPING\r\n");
    ERR("*1\r\n$x\r\nPING\r\n");
    ERR("*1\r\n$4x\r\nPING\r\n");
    ERR("*1\r\n$\r\nPING\r\n");
    ERR("*1\r\n$ 4\r\nPING\r\n");
    /* bulk over max_bulk */
    expect_error("*1\r\n$5\r\nhello\r\n", 15, 4);
    expect_error("*1\r\n$5\r\n", 8, 4); /* refused before the bytes arrive */
    n = snprintf(buf, sizeof buf, "*1\r\n$%zu\r\n", MAXB + 1);
    expect_error(buf, (size_t)n, MAXB);
    /* no CRLF after the bulk */
    ERR("*1\r\n$4\r\nPINGxx");
    ERR("*1\r\n$4\r\nPING\n\r");
    ERR("*1\r\n$4\r\nPING\rx");
    ERR("*2\r\n$3\r\nGET\r\n$1\r\nkey\r\n");
    ERR("*1\r\n$3\r\nPING\r\n");
    /* a length line without its LF */
    ERR("*1\rx\n");
    ERR("*1\r\n$4\rx");
    /* an inline request longer than KV_RESP_MAX_INLINE without its newline */
    size_t big = KV_RESP_MAX_INLINE + 1;
    char *line = malloc(big);
    CU_ASSERT_PTR_NOT_NULL_FATAL(line);
    memset(line, 'a', big);
    expect_error(line, big, MAXB);
    free(line);
    /* a length line that never ends */
    char longnum[64];
    memset(longnum, '1', sizeof longnum);
    longnum[0] = '*';
    expect_error(longnum, sizeof longnum, MAXB);
}

/* Lengths that do not fit a 64-bit integer are not lengths (they must not wrap around to a
 * small number). */
static void test_length_overflow(void)
{
    ERR("*18446744073709551617\r\n$4\r\nPING\r\n");  /* 2^64 + 1 */
    ERR("*99999999999999999999\r\n");                /* 20 digits */
    ERR("*1\r\n$18446744073709551619\r\nabc\r\n");   /* 2^64 + 3 */
    ERR("*1\r\n$36893488147419103236\r\nPING\r\n");  /* 2^65 + 4 */
    ERR("*1\r\n$-18446744073709551612\r\nPING\r\n"); /* -(2^64 - 4) */
    ERR("*2\r\n$3\r\nGET\r\n$18446744073709551617\r\nk\r\n");
}

static void test_max_bulk_edge(void)
{
    kv_req_t req = {0};
    const char *err;
    unsigned char *copy;
    /* exactly max_bulk is fine */
    CU_ASSERT_EQUAL(parse_copy("*1\r\n$5\r\nhello\r\n", 15, 5, &req, &err, &copy), 15);
    CU_ASSERT(args_are(&req, 1, (const char *[]){"hello"}, NULL));
    free(copy);
    CU_ASSERT_EQUAL(parse_copy("*1\r\n$0\r\n\r\n", 10, 0, &req, &err, &copy), 10);
    free(copy);
    kv_req_free(&req);
}

/* Random bytes, and random streams of protocol tokens: a result in {-2, -1, 0, 1..len}, a
 * message with every -1, and arguments inside the buffer. */
static void test_garbage(void)
{
    static const char *tok[] = {
        "*",    "$", "\r\n", "\r",     "\n",     "-",   "0",  "1",          "3",
        "12",   "x", " ",    "*1\r\n", "$3\r\n", "abc", "\0", "9999999999", "*2\r\n$3\r\nGET\r\n",
        "PING", "\t"};
    kv_req_t req = {0};
    unsigned bad = 0;
    for (int trial = 0; trial < 20000; trial++) {
        unsigned char src[512];
        size_t len = 0;
        if (trial % 2) {
            len = rand_below(sizeof src);
            for (size_t i = 0; i < len; i++)
                src[i] = rand_below(4) ? (unsigned char)next_rand()
                                       : (unsigned char)"*$\r\n-0123"[rand_below(9)];
        } else {
            /* no two numbers run together: lengths past 64 bits have their own test */
            for (int k = (int)rand_below(30); k > 0; k--) {
                const char *t = tok[rand_below(sizeof tok / sizeof tok[0])];
                if (len && src[len - 1] >= '0' && src[len - 1] <= '9' && *t >= '0' && *t <= '9')
                    t = "\r\n";
                size_t tl = *t ? strlen(t) : 1;
                if (len + tl > sizeof src) break;
                memcpy(src + len, t, tl);
                len += tl;
            }
        }
        size_t at = 0;
        while (at <= len) {
            unsigned char *copy;
            const char *err;
            size_t maxb = rand_below(3) ? 16 : SIZE_MAX / 4;
            long r = parse_copy(src + at, len - at, maxb, &req, &err, &copy);
            if (r < -2 || r > (long)(len - at)) bad++;
            if (r == -1 && !err) bad++;
            if (r > 0) {
                for (int i = 0; i < req.argc; i++)
                    if (req.argv[i] < copy || req.argv[i] + req.argl[i] > copy + r) bad++;
                at += (size_t)r;
            }
            free(copy);
            if (r <= 0) break;
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
    kv_req_free(&req);
}

static void register_suites(void)
{
    static const CU_TestInfo reqs[] = {
        {"multibulk, whole and every prefix", test_multibulk},
        {"binary-safe bulk strings", test_binary_safe},
        {"inline commands", test_inline},
        {"empty multibulk", test_empty_multibulk},
        {"pipelined, and a byte at a time", test_pipelined_and_bytewise},
        {"bulk of exactly max_bulk", test_max_bulk_edge},
        {NULL, NULL},
    };
    static const CU_TestInfo errs[] = {
        {"every protocol error", test_errors},
        {"random garbage", test_garbage},
        {"lengths past 64 bits", test_length_overflow},
        {NULL, NULL},
    };
    loom_test_suite("kv resp requests", reqs);
    loom_test_suite("kv resp errors", errs);
}

int main(int argc, char **argv)
{
    return loom_test_main(argc, argv, register_suites);
}
