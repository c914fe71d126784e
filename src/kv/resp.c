/* RESP2 requests: arrays of bulk strings ("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"), as every Redis
 * client sends, and inline commands ("GET k\r\n"), as a person at a terminal types. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "kv/kv_internal.h"

static int reserve(kv_req_t *req, int n)
{
    if (n <= req->cap) return 0;
    int cap = req->cap ? req->cap : 8;
    while (cap < n)
        cap *= 2;
    const unsigned char **argv = realloc(req->argv, (size_t)cap * sizeof *argv);
    if (!argv) return -1;
    req->argv = argv;
    size_t *argl = realloc(req->argl, (size_t)cap * sizeof *argl);
    if (!argl) return -1;
    req->argl = argl;
    req->cap = cap;
    return 0;
}

/* A decimal integer from p up to "\r\n" within [p, end): 1 parsed (*next after the CRLF),
 * 0 incomplete, -1 malformed. */
static int read_int(const unsigned char *p, const unsigned char *end, long long *out,
                    const unsigned char **next)
{
    const unsigned char *cr = memchr(p, '\r', (size_t)(end - p));
    if (!cr) return (size_t)(end - p) > 32 ? -1 : 0;
    if (cr + 1 == end) return 0;
    if (cr[1] != '\n' || cr == p || cr - p > 20) return -1;
    int neg = *p == '-';
    const unsigned char *q = p + neg;
    if (q == cr) return -1;
    long long v = 0;
    for (; q < cr; q++) {
        if (*q < '0' || *q > '9') return -1;
        if (v > (LLONG_MAX - (*q - '0')) / 10) return -1; /* wider than a long long */
        v = v * 10 + (*q - '0');
    }
    *out = neg ? -v : v;
    *next = cr + 2;
    return 1;
}

static long parse_inline(const unsigned char *buf, size_t len, kv_req_t *req, const char **err)
{
    const unsigned char *nl = memchr(buf, '\n', len);
    if (!nl) {
        if (len > KV_RESP_MAX_INLINE) {
            *err = "too big inline request";
            return -1;
        }
        return 0;
    }
    const unsigned char *end = nl > buf && nl[-1] == '\r' ? nl - 1 : nl;
    req->argc = 0;
    for (const unsigned char *p = buf; p < end;) {
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        if (p == end) break;
        const unsigned char *s = p;
        while (p < end && *p != ' ' && *p != '\t')
            p++;
        if (reserve(req, req->argc + 1)) return -2;
        req->argv[req->argc] = s;
        req->argl[req->argc++] = (size_t)(p - s);
    }
    return (long)(nl + 1 - buf);
}

long kv_resp_parse(const unsigned char *buf, size_t len, size_t max_bulk, kv_req_t *req,
                   const char **err)
{
    req->argc = 0;
    if (!len) return 0;
    if (buf[0] != '*') return parse_inline(buf, len, req, err);
    const unsigned char *p = buf + 1, *end = buf + len;
    long long n;
    int r = read_int(p, end, &n, &p);
    if (r <= 0) {
        if (r < 0) *err = "invalid multibulk length";
        return r;
    }
    if (n > KV_RESP_MAX_ARGS) {
        *err = "invalid multibulk length";
        return -1;
    }
    if (n <= 0) return (long)(p - buf); /* an empty request: skipped, as Redis does */
    if (reserve(req, (int)n)) return -2;
    for (long long i = 0; i < n; i++) {
        if (p == end) return 0;
        if (*p != '$') {
            *err = "expected '$'";
            return -1;
        }
        long long l;
        r = read_int(p + 1, end, &l, &p);
        if (r <= 0) {
            if (r < 0) *err = "invalid bulk length";
            return r;
        }
        if (l < 0 || (unsigned long long)l > max_bulk) {
            *err = "invalid bulk length";
            return -1;
        }
        if ((size_t)(end - p) < (size_t)l + 2) return 0;
        if (p[l] != '\r' || p[l + 1] != '\n') {
            *err = "bulk string not followed by CRLF";
            return -1;
        }
        req->argv[i] = p;
        req->argl[i] = (size_t)l;
        p += l + 2;
    }
    req->argc = (int)n;
    return (long)(p - buf);
}

void kv_req_free(kv_req_t *req)
{
    free(req->argv);
    free(req->argl);
    memset(req, 0, sizeof *req);
}
