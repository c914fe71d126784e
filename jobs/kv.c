/* `loom kv serve|get|put|del`: the key/value store's service, and a client of it for scripts. */
#define _GNU_SOURCE /* getaddrinfo */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "loom/kv.h"
#include "loom/loom.h"

static const loom_option_t options[] = {
    {"store", LOOM_OPT_STRING, NULL,
     "serve: the store root (a missing or empty directory becomes one)", NULL, 0, 0, 0},
    {"port", LOOM_OPT_INT, "6390", "serve: worker i listens on PORT + i - 1", NULL, 1, 1, 65535},
    {"listen", LOOM_OPT_STRING, "127.0.0.1",
     "serve: the gateways' IPv4 address (anything but loopback is an explicit choice)", NULL, 0, 0,
     0},
    {"replicas", LOOM_OPT_INT, "3", "serve: replicas per key, N (capped by the holders)", NULL, 1,
     1, LOOM_KV_MAX_REPLICAS},
    {"r", LOOM_OPT_INT, "2", "read quorum (serve: the default; get: this request's)", NULL, 1, 1,
     LOOM_KV_MAX_REPLICAS},
    {"w", LOOM_OPT_INT, "2", "write quorum (serve: the default; put/del: this request's)", NULL, 1,
     1, LOOM_KV_MAX_REPLICAS},
    {"vnodes", LOOM_OPT_INT, "64", "serve: ring tokens per unit of weight", NULL, 1, 1, 4096},
    {"weights", LOOM_OPT_STRING, NULL,
     "serve: relative capacity of each worker, e.g. 1,1,2 (default: equal)", NULL, 0, 0, 0},
    {"timeout-ms", LOOM_OPT_INT, "500", "serve: a replica silent this long is taken as down", NULL,
     1, 1, 600000},
    {"fsync", LOOM_OPT_CHOICE, "everysec",
     "serve: sync each holder's log before every acknowledgement (always), each second, or never",
     "always|everysec|no", 0, 0, 0},
    {"max-value", LOOM_OPT_SIZE, "16M", "serve: largest key or value", NULL, 1, 1,
     512.0 * 1024 * 1024},
    {"anti-entropy-ms", LOOM_OPT_INT, "2000", "serve: period of Merkle-tree exchanges (0: none)",
     NULL, 1, 0, 86400000},
    {"connect", LOOM_OPT_STRING, "127.0.0.1:6390", "get/put/del: the service's HOST:PORT", NULL, 0,
     0, 0},
    {NULL, LOOM_OPT_END, NULL, NULL, NULL, 0, 0, 0},
};

/* ------------------------------------------------------------------ serve */

static loom_status_t parse_weights(loom_ctx_t *ctx, const char *text, double **out)
{
    int n = loom_num_workers(ctx);
    double *w = calloc((size_t)n, sizeof *w);
    if (!w) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    const char *p = text;
    int i = 0;
    while (*p && i < n) {
        char *end;
        errno = 0;
        w[i++] = strtod(p, &end);
        if (end == p || errno || (*end && *end != ',')) break;
        p = *end ? end + 1 : end;
    }
    if (i != n || *p) {
        free(w);
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                          "--weights %s: give one positive number per worker (%d), comma-separated",
                          text, n);
    }
    *out = w;
    return LOOM_OK;
}

static loom_status_t serve(loom_ctx_t *ctx, const loom_opts_t *opts)
{
    const char *fs = loom_opt_string(opts, "fsync");
    loom_kv_opts_t o = {
        .replicas = (int)loom_opt_int(opts, "replicas"),
        .r = (int)loom_opt_int(opts, "r"),
        .w = (int)loom_opt_int(opts, "w"),
        .vnodes = (int)loom_opt_int(opts, "vnodes"),
        .fsync = !strcmp(fs, "always") ? LOOM_KV_FSYNC_ALWAYS
                 : !strcmp(fs, "no")   ? LOOM_KV_FSYNC_NO
                                       : LOOM_KV_FSYNC_EVERYSEC,
        .max_value = loom_opt_size(opts, "max-value"),
    };
    double *weights = NULL;
    loom_status_t st = LOOM_OK;
    if (o.r > o.replicas || o.w > o.replicas)
        st = LOOM_ERROR(ctx, LOOM_ERR_USAGE, "--r %d --w %d: quorums cannot exceed --replicas %d",
                        o.r, o.w, o.replicas);
    if (st == LOOM_OK && loom_opt_string(opts, "weights"))
        st = parse_weights(ctx, loom_opt_string(opts, "weights"), &weights);
    o.weights = weights;
    loom_kv_t *kv = NULL;
    if (st == LOOM_OK) st = loom_kv_open(ctx, loom_opt_string(opts, "store"), &o, &kv);
    free(weights);
    if (st != LOOM_OK) return st;
    int ae = (int)loom_opt_int(opts, "anti-entropy-ms");
    loom_kv_serve_opts_t so = {
        .bind = loom_opt_string(opts, "listen"),
        .port = (int)loom_opt_int(opts, "port"),
        .timeout_ms = (int)loom_opt_int(opts, "timeout-ms"),
        .anti_entropy_ms = ae ? ae : -1,
    };
    st = loom_kv_serve(kv, &so);
    loom_summary_int(ctx, "local_keys", (int64_t)loom_kv_local_keys(kv));
    loom_status_t cst = loom_kv_close(&kv);
    return st != LOOM_OK ? st : cst;
}

/* ------------------------------------------------------------------ a RESP client */

static int connect_to(const char *hostport, char *why, size_t whylen)
{
    char host[256];
    const char *colon = strrchr(hostport, ':');
    if (!colon || colon == hostport || (size_t)(colon - hostport) >= sizeof host || !colon[1]) {
        snprintf(why, whylen, "--connect %s: expected HOST:PORT", hostport);
        return -2;
    }
    memcpy(host, hostport, (size_t)(colon - hostport));
    host[colon - hostport] = '\0';
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int e = getaddrinfo(host, colon + 1, &hints, &res);
    if (e) {
        snprintf(why, whylen, "--connect %s: %s", hostport, gai_strerror(e));
        return -2;
    }
    int fd = -1;
    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen)) {
            snprintf(why, whylen, "cannot connect to %s: %s (is `loom kv serve` running?)",
                     hostport, strerror(errno));
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd >= 0) {
        struct timeval tv = {60, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
    return fd;
}

static int send_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len) {
        ssize_t k = send(fd, p, len, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        p += k;
        len -= (size_t)k;
    }
    return 0;
}

/* Read one reply: '+'/'-' lines into *line, '$' bulk into *data (len -1 for nil). */
typedef struct reply {
    char type;
    char line[1024];
    char *data;
    long long len;
} reply_t;

static int read_byte(int fd, char *c)
{
    for (;;) {
        ssize_t k = recv(fd, c, 1, 0);
        if (k == 1) return 0;
        if (k < 0 && errno == EINTR) continue;
        return -1;
    }
}

static int read_reply(int fd, reply_t *r)
{
    size_t n = 0;
    char c;
    memset(r, 0, sizeof *r);
    if (read_byte(fd, &r->type)) return -1;
    while (!read_byte(fd, &c)) {
        if (c == '\n') break;
        if (c != '\r' && n + 1 < sizeof r->line) r->line[n++] = c;
    }
    r->line[n] = '\0';
    if (r->type != '$') return 0;
    r->len = atoll(r->line);
    if (r->len < 0) return 0;
    r->data = malloc((size_t)r->len + 2);
    if (!r->data) return -1;
    size_t got = 0;
    while (got < (size_t)r->len + 2) {
        ssize_t k = recv(fd, r->data + got, (size_t)r->len + 2 - got, 0);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        got += (size_t)k;
    }
    return 0;
}

static loom_status_t read_stdin(loom_ctx_t *ctx, char **out, size_t *len)
{
    size_t cap = 65536, n = 0;
    char *b = malloc(cap);
    if (!b) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    for (;;) {
        if (n == cap) {
            char *g = realloc(b, cap *= 2);
            if (!g) {
                free(b);
                return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory reading stdin");
            }
            b = g;
        }
        size_t k = fread(b + n, 1, cap - n, stdin);
        n += k;
        if (k == 0) break;
    }
    if (ferror(stdin)) {
        free(b);
        return LOOM_ERROR(ctx, LOOM_ERR_IO, "stdin: read error");
    }
    *out = b;
    *len = n;
    return LOOM_OK;
}

static loom_status_t client(loom_ctx_t *ctx, const loom_opts_t *opts, const char *cmd)
{
    const char *key = loom_opts_arg(opts, 1), *hostport = loom_opt_string(opts, "connect");
    char *stdin_val = NULL;
    const char *val = loom_opts_arg(opts, 2);
    size_t vlen = val ? strlen(val) : 0;
    if (!strcmp(cmd, "put") && !strcmp(val, "-")) LOOM_TRY(read_stdin(ctx, &stdin_val, &vlen));
    if (stdin_val) val = stdin_val;
    char why[512] = "";
    int fd = connect_to(hostport, why, sizeof why);
    if (fd < 0) {
        free(stdin_val);
        return LOOM_ERROR(ctx, fd == -2 ? LOOM_ERR_USAGE : LOOM_ERR_IO, "kv %s: %s", cmd, why);
    }
    /* LOOM.GET k R r | LOOM.PUT k v W w | LOOM.DEL k W w */
    char q[16];
    const char *name = !strcmp(cmd, "get")   ? "LOOM.GET"
                       : !strcmp(cmd, "put") ? "LOOM.PUT"
                                             : "LOOM.DEL";
    snprintf(q, sizeof q, "%d", (int)loom_opt_int(opts, !strcmp(cmd, "get") ? "r" : "w"));
    const char *args[5] = {name, key, NULL, NULL, NULL};
    size_t lens[5] = {strlen(name), strlen(key), 0, 0, 0};
    int argc = 2;
    if (!strcmp(cmd, "put")) {
        args[argc] = val;
        lens[argc++] = vlen;
    }
    if (loom_opt_is_set(opts, !strcmp(cmd, "get") ? "r" : "w")) {
        /* otherwise the service's default quorum */
        args[argc] = !strcmp(cmd, "get") ? "R" : "W";
        lens[argc] = 1;
        argc++;
        args[argc] = q;
        lens[argc++] = strlen(q);
    }
    char head[64];
    int ok = snprintf(head, sizeof head, "*%d\r\n", argc) > 0 && !send_all(fd, head, strlen(head));
    for (int i = 0; ok && i < argc; i++) {
        snprintf(head, sizeof head, "$%zu\r\n", lens[i]);
        ok = !send_all(fd, head, strlen(head)) && !send_all(fd, args[i], lens[i]) &&
             !send_all(fd, "\r\n", 2);
    }
    free(stdin_val);
    reply_t r;
    loom_status_t st = LOOM_OK;
    if (!ok || read_reply(fd, &r)) {
        st = LOOM_ERROR(ctx, LOOM_ERR_IO, "kv %s: the service at %s closed the connection", cmd,
                        hostport);
    } else if (r.type == '-') {
        st = LOOM_ERROR(ctx, LOOM_ERR_IO, "kv %s %s: %s", cmd, key, r.line);
    } else if (!strcmp(cmd, "get")) {
        /* [context, [value...]] with the values newest first: print the first (what a
         * plain GET returns) */
        reply_t ctxr = {0}, vals = {0};
        long long nvals = -1;
        if (r.type == '*' && !read_reply(fd, &ctxr) && ctxr.type == '$' && !read_reply(fd, &vals) &&
            vals.type == '*')
            nvals = atoll(vals.line);
        free(ctxr.data);
        for (long long i = 0; i < nvals; i++) {
            reply_t v;
            if (read_reply(fd, &v)) {
                nvals = -1;
                break;
            }
            if (i == 0 && v.type == '$' && v.len >= 0) {
                fwrite(v.data, 1, (size_t)v.len, stdout);
                fputc('\n', stdout);
                fflush(stdout);
            }
            free(v.data);
        }
        if (nvals < 0)
            st =
                LOOM_ERROR(ctx, LOOM_ERR_IO, "kv get %s: an answer this client does not read", key);
        else if (nvals == 0)
            st = LOOM_ERROR(ctx, LOOM_ERR_IO, "kv get %s: no such key", key);
    }
    free(r.data);
    close(fd);
    return st;
}

/* ------------------------------------------------------------------ the command */

static loom_status_t run(loom_ctx_t *ctx, const loom_opts_t *opts)
{
    const char *cmd = loom_opts_arg(opts, 0);
    int nargs = loom_opts_nargs(opts) - 1;
    if (!cmd) return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "kv: no command (serve, get, put, del)");
    if (!strcmp(cmd, "serve")) {
        if (nargs) return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "kv serve: no arguments expected");
        return serve(ctx, opts);
    }
    int want = !strcmp(cmd, "put") ? 2 : (!strcmp(cmd, "get") || !strcmp(cmd, "del")) ? 1 : -1;
    if (want < 0)
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                          "kv: unknown command '%s' (commands: serve, get, put, del)", cmd);
    if (nargs != want)
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                          "kv %s: wrong number of arguments (see loom kv --help)", cmd);
    loom_status_t st = loom_is_master(ctx) ? client(ctx, opts, cmd) : LOOM_OK;
    return loom_agree(ctx, loom_comm(ctx), st);
}

const loom_job_t loom_job_kv = {
    .name = "kv",
    .summary = "the key/value store (Dynamo): serve it over the Redis protocol; get, put, del",
    .usage = "loom kv serve --store DIR [--port P] [options]   (under mpirun: P-1 holders)\n"
             "  loom kv get KEY | put KEY VALUE|- | del KEY   [--connect HOST:PORT]",
    .options = options,
    .run = run,
};
