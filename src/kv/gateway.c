/* The gateway: a worker's clients over TCP, speaking RESP2. Requests are parsed as they
 * arrive (pipelined or not), each gets a reply slot in order, and the slots are written back
 * as the reads and writes they started finish. A malformed request closes its connection;
 * nothing a client sends ends the service (but SHUTDOWN). */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "kv/serve_internal.h"
#include "loom/version.h"

#define MAX_PENDING_SLOTS 100000
#define READ_PER_TURN (1u << 20)
#define MAX_KEYS_PER_COMMAND 100000     /* MGET, MSET, DEL, EXISTS */
#define MAX_QUERY_BYTES (1024ull << 20) /* a client's unparsed input, as Redis's 1 GiB */
#define PARSE_PER_TURN (64u << 20)      /* request bytes taken from all clients per turn */

/* ------------------------------------------------------------------ connections and slots */

static void slot_free(kv_slot_t *sl)
{
    if (!sl) return;
    for (int i = 0; i < sl->n; i++)
        loom_buf_free(&sl->part[i]);
    free(sl->part);
    free(sl->err);
    free(sl);
}

static void conn_close(kv_conn_t *c)
{
    if (c->dead) return;
    c->dead = 1;
    close(c->fd);
    c->fd = -1;
    loom_buf_free(&c->in);
    loom_buf_free(&c->out);
    for (size_t i = 0; i < c->scount; i++)
        slot_free(c->slot[(c->shead + i) % c->scap]);
    free(c->slot);
    c->slot = NULL;
    c->scount = c->scap = 0;
}

void kv_conn_release(kv_srv_t *s, kv_conn_t *c)
{
    (void)s;
    c->refs--;
}

void kv_srv_close_clients(kv_srv_t *s)
{
    for (size_t i = 0; i < s->nconns; i++)
        conn_close(s->conns[i]);
    if (s->lfd >= 0) close(s->lfd);
    s->lfd = -1;
}

/* Forget connections that are closed and that no operation refers to any more. */
static void sweep(kv_srv_t *s)
{
    size_t keep = 0;
    for (size_t i = 0; i < s->nconns; i++) {
        kv_conn_t *c = s->conns[i];
        if (c->dead && c->refs == 0)
            free(c);
        else
            s->conns[keep++] = c;
    }
    s->nconns = keep;
}

kv_slot_t *kv_slot_at(kv_conn_t *c, uint64_t seq)
{
    if (c->dead || seq < c->seq0 || seq - c->seq0 >= c->scount) return NULL;
    return c->slot[(c->shead + (seq - c->seq0)) % c->scap];
}

/* A new reply slot at the end of c's queue: `n` parts pending. Its sequence number in *seq. */
static kv_slot_t *slot_new(kv_srv_t *s, kv_conn_t *c, int kind, int n, uint64_t *seq)
{
    if (c->scount == c->scap) {
        size_t cap = c->scap ? 2 * c->scap : 16;
        kv_slot_t **g = malloc(cap * sizeof *g);
        if (!g) return NULL;
        for (size_t i = 0; i < c->scount; i++)
            g[i] = c->slot[(c->shead + i) % c->scap];
        free(c->slot);
        c->slot = g;
        c->shead = 0;
        c->scap = cap;
    }
    kv_slot_t *sl = calloc(1, sizeof *sl);
    if (!sl) return NULL;
    sl->kind = kind;
    sl->pending = n;
    sl->n = kind == RS_ARRAY ? n : kind == RS_SINGLE ? 1 : 0;
    if (sl->n && !(sl->part = calloc((size_t)sl->n, sizeof *sl->part))) {
        free(sl);
        return NULL;
    }
    c->slot[(c->shead + c->scount) % c->scap] = sl;
    *seq = c->seq0 + c->scount;
    c->scount++;
    (void)s;
    return sl;
}

void kv_slot_done(kv_srv_t *s, kv_conn_t *c, uint64_t seq, int part, const void *reply, size_t len,
                  long long add, const char *err)
{
    kv_slot_t *sl = c ? kv_slot_at(c, seq) : NULL;
    if (!sl) return;
    s->work = 1;
    if (sl->kind == RS_SINGLE || sl->kind == RS_ARRAY) {
        loom_buf_t *b = &sl->part[sl->kind == RS_SINGLE ? 0 : part];
        if (err) {
            loom_buf_append(s->ctx, b, "-", 1);
            loom_buf_append(s->ctx, b, err, strlen(err));
            loom_buf_append(s->ctx, b, "\r\n", 2);
        } else {
            loom_buf_append(s->ctx, b, reply, len);
        }
    } else {
        sl->sum += add;
        if (err && !sl->err) sl->err = strdup(err);
    }
    sl->pending--;
}

/* A reply that is complete at once. */
static void reply_now(kv_srv_t *s, kv_conn_t *c, const void *data, size_t len)
{
    uint64_t seq;
    if (!slot_new(s, c, RS_SINGLE, 1, &seq)) {
        conn_close(c);
        return;
    }
    kv_slot_done(s, c, seq, 0, data, len, 0, NULL);
}

static void reply_str(kv_srv_t *s, kv_conn_t *c, const char *text)
{
    reply_now(s, c, text, strlen(text));
}

static void reply_err(kv_srv_t *s, kv_conn_t *c, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void reply_err(kv_srv_t *s, kv_conn_t *c, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    for (char *p = line; *p; p++)
        if (*p == '\r' || *p == '\n') *p = ' ';
    uint64_t seq;
    if (!slot_new(s, c, RS_SINGLE, 1, &seq)) {
        conn_close(c);
        return;
    }
    kv_slot_done(s, c, seq, 0, NULL, 0, 0, line);
}

static void reply_bulk(kv_srv_t *s, kv_conn_t *c, const void *data, size_t len)
{
    loom_buf_t b = {0};
    char head[32];
    int k = snprintf(head, sizeof head, "$%zu\r\n", len);
    loom_buf_append(s->ctx, &b, head, (size_t)k);
    loom_buf_append(s->ctx, &b, data, len);
    loom_buf_append(s->ctx, &b, "\r\n", 2);
    reply_now(s, c, b.data, b.len);
    loom_buf_free(&b);
}

/* Move finished slots, in order, into the output buffer. */
static void drain_slots(kv_srv_t *s, kv_conn_t *c)
{
    while (c->scount && !c->dead) {
        kv_slot_t *sl = c->slot[c->shead];
        if (sl->pending > 0) break;
        char line[64];
        int k;
        switch (sl->kind) {
        case RS_SINGLE:
            loom_buf_append(s->ctx, &c->out, sl->part[0].data, sl->part[0].len);
            break;
        case RS_ARRAY:
            k = snprintf(line, sizeof line, "*%d\r\n", sl->n);
            loom_buf_append(s->ctx, &c->out, line, (size_t)k);
            for (int i = 0; i < sl->n; i++)
                loom_buf_append(s->ctx, &c->out, sl->part[i].data, sl->part[i].len);
            break;
        default:
            if (sl->err) {
                loom_buf_append(s->ctx, &c->out, "-", 1);
                loom_buf_append(s->ctx, &c->out, sl->err, strlen(sl->err));
                loom_buf_append(s->ctx, &c->out, "\r\n", 2);
            } else if (sl->kind == RS_SUM) {
                k = snprintf(line, sizeof line, ":%lld\r\n", sl->sum);
                loom_buf_append(s->ctx, &c->out, line, (size_t)k);
            } else {
                loom_buf_append(s->ctx, &c->out, "+OK\r\n", 5);
            }
        }
        if (sl->close_after) c->closing = 1;
        slot_free(sl);
        c->shead = (c->shead + 1) % c->scap;
        c->scount--;
        c->seq0++;
    }
}

void kv_srv_flush_clients(kv_srv_t *s)
{
    for (size_t i = 0; i < s->nconns; i++) {
        kv_conn_t *c = s->conns[i];
        if (c->dead) continue;
        drain_slots(s, c);
        while (c->out_off < c->out.len) {
            ssize_t k = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
            if (k < 0 && errno == EINTR) continue;
            if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
            if (k <= 0) {
                conn_close(c);
                break;
            }
            c->out_off += (size_t)k;
        }
        if (c->dead) continue;
        if (c->out_off == c->out.len) {
            c->out.len = c->out_off = 0;
            if (c->out.cap > (1u << 20)) loom_buf_free(&c->out);
            if (c->closing && !c->scount) conn_close(c);
        }
    }
    sweep(s);
}

/* ------------------------------------------------------------------ commands */

static int is(const kv_req_t *rq, int i, const char *word)
{
    size_t n = strlen(word);
    return rq->argl[i] == n && !strncasecmp((const char *)rq->argv[i], word, n);
}

static void lower_name(const kv_req_t *rq, char *out, size_t cap)
{
    size_t n = rq->argl[0] < cap - 1 ? rq->argl[0] : cap - 1;
    for (size_t i = 0; i < n; i++) {
        char ch = (char)rq->argv[0][i];
        out[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : (ch >= 32 && ch < 127 ? ch : '?'));
    }
    out[n] = '\0';
}

static void arity(kv_srv_t *s, kv_conn_t *c, const kv_req_t *rq)
{
    char name[64];
    lower_name(rq, name, sizeof name);
    reply_err(s, c, "ERR wrong number of arguments for '%s' command", name);
}

/* Keys and values must fit --max-value: 1 when one does not (the error is replied). */
static int too_large(kv_srv_t *s, kv_conn_t *c, const kv_req_t *rq, int from, int to)
{
    for (int i = from; i < to; i++)
        if (rq->argl[i] > s->kv->max_value) {
            reply_err(s, c, "ERR value too large (%zu bytes, limit %zu)", rq->argl[i],
                      s->kv->max_value);
            return 1;
        }
    return 0;
}

/* An integer argument in [lo, hi]; -1 when it is not one. */
static int int_arg(const kv_req_t *rq, int i, int lo, int hi)
{
    char buf[16];
    if (rq->argl[i] == 0 || rq->argl[i] >= sizeof buf) return -1;
    memcpy(buf, rq->argv[i], rq->argl[i]);
    buf[rq->argl[i]] = '\0';
    char *end;
    long v = strtol(buf, &end, 10);
    return *end || v < lo || v > hi ? -1 : (int)v;
}

static void info_text(kv_srv_t *s, loom_buf_t *b, const kv_req_t *rq)
{
    kv_holder_t *h = &s->kv->h;
    int down = 0, live_conns = 0;
    for (int i = 0; i < s->nh; i++)
        down += i != s->kv->me && s->peer[s->kv->holder_rank[i]].state != PEER_UP;
    for (size_t i = 0; i < s->nconns; i++)
        live_conns += !s->conns[i]->dead;
    char part[64] = "none";
    if (s->partitioned) snprintf(part, sizeof part, "%d", s->group[s->kv->rank]);
    char text[4096];
    int all = rq->argc < 2 || is(rq, 1, "all") || is(rq, 1, "everything") || is(rq, 1, "default");
    int k = 0;
    if (all || is(rq, 1, "server"))
        k += snprintf(text + k, sizeof text - (size_t)k,
                      "# Server\r\nredis_version:7.0.0\r\nloom_version:%s\r\nredis_mode:cluster-"
                      "loom\r\nprocess_id:%lld\r\ntcp_port:%d\r\n\r\n",
                      LOOM_VERSION_STRING, (long long)getpid(), s->o.port + s->kv->me);
    if (all || is(rq, 1, "clients"))
        k += snprintf(text + k, sizeof text - (size_t)k,
                      "# Clients\r\nconnected_clients:%d\r\n\r\n", live_conns);
    if (all || is(rq, 1, "keyspace"))
        k += snprintf(text + k, sizeof text - (size_t)k,
                      "# Keyspace\r\ndb0:keys=%zu,expires=0,avg_ttl=0\r\n\r\n", h->main.count);
    if (all || is(rq, 1, "loom"))
        k += snprintf(text + k, sizeof text - (size_t)k,
                      "# Loom\r\nloom_worker:%d\r\nloom_rank:%d\r\nloom_pid:%lld\r\n"
                      "loom_holders:%d\r\nloom_holders_down:%d\r\nloom_replicas:%d\r\n"
                      "loom_r:%d\r\nloom_w:%d\r\nloom_keys:%zu\r\nloom_hints:%zu\r\n"
                      "loom_hints_delivered:%" PRIu64 "\r\nloom_read_repairs:%" PRIu64 "\r\n"
                      "loom_ae_rounds:%" PRIu64 "\r\nloom_ae_repairs:%" PRIu64 "\r\n"
                      "loom_log_bytes:%" PRIu64 "\r\nloom_requests:%" PRIu64 "\r\n"
                      "loom_noquorum:%" PRIu64 "\r\nloom_dropped:%" PRIu64
                      "\r\nloom_partition:%s\r\n",
                      s->kv->me + 1, loom_start_rank(s->ctx, s->kv->rank), (long long)getpid(),
                      s->nh, down, s->kv->ring.n, s->kv->r, s->kv->w, h->main.count, h->hints.count,
                      h->hints_delivered, h->read_repairs, h->ae_rounds, h->ae_repairs,
                      h->log_bytes, s->requests, s->noquorum, s->dropped, part);
    char head[32];
    int hl = snprintf(head, sizeof head, "$%d\r\n", k);
    loom_buf_append(s->ctx, b, head, (size_t)hl);
    loom_buf_append(s->ctx, b, text, (size_t)k);
    loom_buf_append(s->ctx, b, "\r\n", 2);
}

/* LOOM.PUT key value [CONTEXT c] [W w] / LOOM.DEL key [CONTEXT c] [W w] */
static loom_status_t loom_write(kv_srv_t *s, kv_conn_t *c, const kv_req_t *rq, int del)
{
    int first = del ? 2 : 3;
    if (rq->argc < first || (rq->argc - first) % 2) {
        arity(s, c, rq);
        return LOOM_OK;
    }
    if (too_large(s, c, rq, 1, first)) return LOOM_OK;
    kv_clock_t cctx = {0};
    int has_ctx = 0, w = 0;
    for (int i = first; i < rq->argc; i += 2) {
        if (is(rq, i, "context")) {
            kv_clock_free(&cctx);
            int r = kv_clock_parse((const char *)rq->argv[i + 1], rq->argl[i + 1], &cctx);
            if (r == -2) return LOOM_ERROR(s->ctx, LOOM_ERR_NOMEM, "out of memory");
            if (r) {
                reply_err(s, c, "ERR malformed context (as LOOM.GET returns it: slot:counter,...)");
                return LOOM_OK;
            }
            has_ctx = 1;
        } else if (is(rq, i, "w")) {
            if ((w = int_arg(rq, i + 1, 1, s->kv->ring.n)) < 0) {
                kv_clock_free(&cctx);
                reply_err(s, c, "ERR W must be 1..%d", s->kv->ring.n);
                return LOOM_OK;
            }
        } else {
            kv_clock_free(&cctx);
            reply_err(s, c, "ERR syntax error (options: CONTEXT ctx, W w)");
            return LOOM_OK;
        }
    }
    uint64_t seq;
    if (!slot_new(s, c, RS_SINGLE, 1, &seq))
        return LOOM_ERROR(s->ctx, LOOM_ERR_NOMEM, "out of memory");
    loom_status_t st = kv_srv_put(s, c, seq, 0, rq->argv[1], rq->argl[1], del ? NULL : rq->argv[2],
                                  del ? 0 : rq->argl[2], del, G_PLAIN, has_ctx ? &cctx : NULL, w);
    kv_clock_free(&cctx);
    return st;
}

static void loom_local(kv_srv_t *s, kv_conn_t *c, const kv_req_t *rq)
{
    if (rq->argc != 2) {
        arity(s, c, rq);
        return;
    }
    kv_entry_t *e = kv_table_find(&s->kv->h.main, loom_key_hash(rq->argv[1], rq->argl[1]),
                                  KV_NO_TARGET, rq->argv[1], rq->argl[1]);
    kv_sibs_t none = {0};
    loom_buf_t b = {0};
    kv_reply_value(&b, s->ctx, G_LOCAL, e ? &e->sibs : &none);
    reply_now(s, c, b.data, b.len);
    loom_buf_free(&b);
}

/* LOOM.DRILL PARTITION 1,2 3,4 | LOOM.DRILL HEAL */
static loom_status_t loom_drill(kv_srv_t *s, kv_conn_t *c, const kv_req_t *rq)
{
    int size = s->kv->size;
    int *group = calloc((size_t)size, sizeof *group);
    if (!group) return LOOM_ERROR(s->ctx, LOOM_ERR_NOMEM, "out of memory");
    const char *bad = NULL;
    if (rq->argc == 2 && is(rq, 1, "heal")) {
        /* every group 0 */
    } else if (rq->argc >= 4 && is(rq, 1, "partition")) {
        for (int g = 2; g < rq->argc && !bad; g++) {
            const char *p = (const char *)rq->argv[g], *end = p + rq->argl[g];
            while (p < end && !bad) {
                int v = 0, digits = 0;
                while (p < end && *p >= '0' && *p <= '9' && digits < 9) {
                    v = v * 10 + (*p++ - '0');
                    digits++;
                }
                int r = -1;
                for (int k = 0; k < size; k++)
                    if (loom_start_rank(s->ctx, k) == v) r = k;
                if (!digits || r < 0 || group[r] || (p < end && *p != ','))
                    bad = "ranks must be start ranks of this job, each in one group";
                else
                    group[r] = g - 1;
                if (p < end) p++;
            }
        }
        for (int r = 0; r < size && !bad; r++)
            if (!group[r]) group[r] = 1; /* unnamed ranks join the first group */
    } else {
        bad = "usage: LOOM.DRILL PARTITION ranks ranks [...] | LOOM.DRILL HEAL";
    }
    loom_status_t st = LOOM_OK;
    if (bad) {
        reply_err(s, c, "ERR %s", bad);
    } else {
        uint64_t seq;
        if (!slot_new(s, c, RS_SINGLE, 1, &seq))
            st = LOOM_ERROR(s->ctx, LOOM_ERR_NOMEM, "out of memory");
        else
            st = kv_srv_drill(s, c, seq, group);
    }
    free(group);
    return st;
}

static loom_status_t dispatch(kv_srv_t *s, kv_conn_t *c, const kv_req_t *rq)
{
    int n = rq->argc;
    uint64_t seq;
    if (n == 0) return LOOM_OK;
    if (is(rq, 0, "get") || is(rq, 0, "set")) {
        int set = is(rq, 0, "set");
        if (n != (set ? 3 : 2)) {
            if (set && n > 3)
                reply_err(s, c, "ERR syntax error (SET options are not supported)");
            else
                arity(s, c, rq);
            return LOOM_OK;
        }
        if (too_large(s, c, rq, 1, n)) return LOOM_OK;
        if (!slot_new(s, c, RS_SINGLE, 1, &seq))
            return LOOM_ERROR(s->ctx, LOOM_ERR_NOMEM, "out of memory");
        if (!set) return kv_srv_get(s, c, seq, 0, G_PLAIN, rq->argv[1], rq->argl[1], 0);
        return kv_srv_put(s, c, seq, 0, rq->argv[1], rq->argl[1], rq->argv[2], rq->argl[2], 0,
                          G_PLAIN, NULL, 0);
    }
    if ((is(rq, 0, "mget") || is(rq, 0, "exists") || is(rq, 0, "del") || is(rq, 0, "mset")) &&
        n - 1 > MAX_KEYS_PER_COMMAND) {
        reply_err(s, c, "ERR too many keys in one command (at most %d)", MAX_KEYS_PER_COMMAND);
        return LOOM_OK;
    }
    if (is(rq, 0, "mget") || is(rq, 0, "exists") || is(rq, 0, "del")) {
        if (n < 2) {
            arity(s, c, rq);
            return LOOM_OK;
        }
        if (too_large(s, c, rq, 1, n)) return LOOM_OK;
        int mget = is(rq, 0, "mget"), del = is(rq, 0, "del");
        if (!slot_new(s, c, mget ? RS_ARRAY : RS_SUM, n - 1, &seq))
            return LOOM_ERROR(s->ctx, LOOM_ERR_NOMEM, "out of memory");
        for (int i = 1; i < n; i++) {
            if (del)
                LOOM_TRY(kv_srv_put(s, c, seq, i - 1, rq->argv[i], rq->argl[i], NULL, 0, 1,
                                    G_EXISTS, NULL, 0));
            else
                LOOM_TRY(kv_srv_get(s, c, seq, i - 1, mget ? G_PLAIN : G_EXISTS, rq->argv[i],
                                    rq->argl[i], 0));
        }
        return LOOM_OK;
    }
    if (is(rq, 0, "mset")) {
        if (n < 3 || n % 2 == 0) {
            arity(s, c, rq);
            return LOOM_OK;
        }
        if (too_large(s, c, rq, 1, n)) return LOOM_OK;
        if (!slot_new(s, c, RS_OK, (n - 1) / 2, &seq))
            return LOOM_ERROR(s->ctx, LOOM_ERR_NOMEM, "out of memory");
        for (int i = 1; i < n; i += 2)
            LOOM_TRY(kv_srv_put(s, c, seq, 0, rq->argv[i], rq->argl[i], rq->argv[i + 1],
                                rq->argl[i + 1], 0, G_PLAIN, NULL, 0));
        return LOOM_OK;
    }
    if (is(rq, 0, "ping")) {
        if (n == 1)
            reply_str(s, c, "+PONG\r\n");
        else if (n == 2)
            reply_bulk(s, c, rq->argv[1], rq->argl[1]);
        else
            arity(s, c, rq);
        return LOOM_OK;
    }
    if (is(rq, 0, "echo")) {
        if (n == 2)
            reply_bulk(s, c, rq->argv[1], rq->argl[1]);
        else
            arity(s, c, rq);
        return LOOM_OK;
    }
    if (is(rq, 0, "info")) {
        loom_buf_t b = {0};
        info_text(s, &b, rq);
        reply_now(s, c, b.data, b.len);
        loom_buf_free(&b);
        return LOOM_OK;
    }
    if (is(rq, 0, "dbsize")) {
        char line[32];
        snprintf(line, sizeof line, ":%zu\r\n", s->kv->h.main.count);
        reply_str(s, c, line);
        return LOOM_OK;
    }
    if (is(rq, 0, "command")) {
        reply_str(s, c, "*0\r\n");
        return LOOM_OK;
    }
    if (is(rq, 0, "config")) {
        /* CONFIG GET name...: each name with an empty value (Loom is configured by its
         * options, not at run time); redis-benchmark asks for "save" and "appendonly" */
        if (n < 3 || !is(rq, 1, "get")) {
            reply_err(s, c, "ERR CONFIG: only CONFIG GET is answered (with empty values)");
            return LOOM_OK;
        }
        loom_buf_t b = {0};
        char head[32];
        int k = snprintf(head, sizeof head, "*%d\r\n", 2 * (n - 2));
        loom_buf_append(s->ctx, &b, head, (size_t)k);
        for (int i = 2; i < n; i++) {
            k = snprintf(head, sizeof head, "$%zu\r\n", rq->argl[i]);
            loom_buf_append(s->ctx, &b, head, (size_t)k);
            loom_buf_append(s->ctx, &b, rq->argv[i], rq->argl[i]);
            loom_buf_append(s->ctx, &b, "\r\n$0\r\n\r\n", 8);
        }
        reply_now(s, c, b.data, b.len);
        loom_buf_free(&b);
        return LOOM_OK;
    }
    if (is(rq, 0, "select")) {
        if (n == 2 && rq->argl[1] == 1 && rq->argv[1][0] == '0')
            reply_str(s, c, "+OK\r\n");
        else
            reply_err(s, c, "ERR DB index is out of range (one database: 0)");
        return LOOM_OK;
    }
    if (is(rq, 0, "quit")) {
        reply_str(s, c, "+OK\r\n");
        c->closing = 1;
        return LOOM_OK;
    }
    if (is(rq, 0, "shutdown")) {
        c->closing = 1;
        return kv_srv_request_stop(s);
    }
    if (is(rq, 0, "loom.get")) {
        int r = 0;
        if (n != 2 && !(n == 4 && is(rq, 2, "r"))) {
            arity(s, c, rq);
            return LOOM_OK;
        }
        if (n == 4 && (r = int_arg(rq, 3, 1, s->kv->ring.n)) < 0) {
            reply_err(s, c, "ERR R must be 1..%d", s->kv->ring.n);
            return LOOM_OK;
        }
        if (too_large(s, c, rq, 1, 2)) return LOOM_OK;
        if (!slot_new(s, c, RS_SINGLE, 1, &seq))
            return LOOM_ERROR(s->ctx, LOOM_ERR_NOMEM, "out of memory");
        return kv_srv_get(s, c, seq, 0, G_SIBS, rq->argv[1], rq->argl[1], r);
    }
    if (is(rq, 0, "loom.put")) return loom_write(s, c, rq, 0);
    if (is(rq, 0, "loom.del")) return loom_write(s, c, rq, 1);
    if (is(rq, 0, "loom.local")) {
        loom_local(s, c, rq);
        return LOOM_OK;
    }
    if (is(rq, 0, "loom.drill")) return loom_drill(s, c, rq);
    char name[64];
    lower_name(rq, name, sizeof name);
    reply_err(s, c, "ERR unknown command '%s'", name);
    return LOOM_OK;
}

/* ------------------------------------------------------------------ sockets */

static loom_status_t accept_all(kv_srv_t *s)
{
    for (;;) {
        int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            /* out of descriptors (or memory): stop taking clients for a while rather than
             * spin on a listener that stays readable */
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                s->accept_after = kv_srv_now() + 0.1;
            return LOOM_OK; /* EAGAIN, or a client gone before we took it */
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (s->nconns == s->capconns) {
            size_t cap = s->capconns ? 2 * s->capconns : 64;
            kv_conn_t **g = realloc(s->conns, cap * sizeof *g);
            if (!g) {
                close(fd);
                return LOOM_ERROR(s->ctx, LOOM_ERR_NOMEM, "out of memory");
            }
            s->conns = g;
            s->capconns = cap;
        }
        kv_conn_t *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            return LOOM_ERROR(s->ctx, LOOM_ERR_NOMEM, "out of memory");
        }
        c->fd = fd;
        c->id = ++s->next_conn;
        c->rev = POLLIN; /* read at once: a client usually sends right after connecting */
        s->conns[s->nconns++] = c;
        s->work = 1;
    }
}

static loom_status_t read_conn(kv_srv_t *s, kv_conn_t *c, size_t *budget)
{
    size_t got = 0;
    while ((c->rev & (POLLIN | POLLHUP | POLLERR)) && got < READ_PER_TURN) {
        LOOM_TRY(loom_buf_reserve(s->ctx, &c->in, 65536));
        ssize_t k = recv(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len, MSG_DONTWAIT);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (k <= 0) {
            /* the client is gone (or reset): its pending replies go nowhere */
            conn_close(c);
            return LOOM_OK;
        }
        c->in.len += (size_t)k;
        got += (size_t)k;
        s->work = 1;
    }
    size_t limit = s->kv->max_value * 2 > s->kv->max_value + (16u << 20)
                       ? s->kv->max_value * 2
                       : s->kv->max_value + (16u << 20);
    if (c->in.len - c->in_off > MAX_QUERY_BYTES) {
        reply_err(s, c, "ERR Protocol error: more than 1 GiB of request unparsed");
        c->closing = 1;
        c->in_off = c->in.len;
    }
    c->stalled = 0;
    while (!c->dead && !c->closing && c->in_off < c->in.len) {
        if (c->scount >= MAX_PENDING_SLOTS || *budget == 0) {
            c->stalled = 1; /* parsed again next turn, new bytes or not */
            break;
        }
        const char *err = NULL;
        long n = kv_resp_parse(c->in.data + c->in_off, c->in.len - c->in_off, limit, &s->req, &err);
        if (n == 0) break;
        if (n == -2) return LOOM_ERROR(s->ctx, LOOM_ERR_NOMEM, "out of memory");
        if (n < 0) {
            reply_err(s, c, "ERR Protocol error: %s", err);
            c->closing = 1;
            break;
        }
        c->in_off += (size_t)n;
        *budget = (size_t)n >= *budget ? 0 : *budget - (size_t)n;
        LOOM_TRY(dispatch(s, c, &s->req));
    }
    if (c->dead) return LOOM_OK;
    if (c->in_off == c->in.len) {
        c->in.len = c->in_off = 0;
        if (c->in.cap > (4u << 20)) loom_buf_free(&c->in);
    } else if (c->in_off > 0) {
        memmove(c->in.data, c->in.data + c->in_off, c->in.len - c->in_off);
        c->in.len -= c->in_off;
        c->in_off = 0;
    }
    return LOOM_OK;
}

void kv_srv_poll(kv_srv_t *s, int timeout_ms)
{
    size_t need = s->nconns + 1;
    if (need > s->cappfd) {
        struct pollfd *g = realloc(s->pfd, need * 2 * sizeof *g);
        if (!g) return;
        s->pfd = g;
        s->cappfd = need * 2;
    }
    nfds_t n = 0;
    int listening = s->lfd >= 0 && kv_srv_now() >= s->accept_after;
    if (listening) s->pfd[n++] = (struct pollfd){s->lfd, POLLIN, 0};
    for (size_t i = 0; i < s->nconns; i++) {
        kv_conn_t *c = s->conns[i];
        if (c->dead) continue;
        short ev = (short)((c->closing || c->scount >= MAX_PENDING_SLOTS ? 0 : POLLIN) |
                           (c->out_off < c->out.len ? POLLOUT : 0));
        s->pfd[n++] = (struct pollfd){c->fd, ev, 0};
    }
    if (n == 0) {
        if (timeout_ms > 0) {
            struct timespec ts = {0, (long)timeout_ms * 1000000L};
            nanosleep(&ts, NULL);
        }
        return;
    }
    s->lrev = 0;
    for (size_t i = 0; i < s->nconns; i++)
        s->conns[i]->rev = 0;
    if (poll(s->pfd, n, timeout_ms) <= 0) return;
    nfds_t k = 0;
    if (listening) s->lrev = s->pfd[k++].revents;
    for (size_t i = 0; i < s->nconns && k < n; i++) {
        kv_conn_t *c = s->conns[i];
        if (c->dead) continue;
        c->rev = s->pfd[k++].revents;
    }
}

loom_status_t kv_srv_clients(kv_srv_t *s)
{
    /* what the last poll found ready, and requests left unparsed while a client had too
     * many replies pending */
    if (s->lfd >= 0 && (s->lrev & POLLIN) && kv_srv_now() >= s->accept_after)
        LOOM_TRY(accept_all(s));
    size_t budget = PARSE_PER_TURN;
    for (size_t i = 0; i < s->nconns; i++) {
        kv_conn_t *c = s->conns[i];
        if (!c->dead && !c->closing && c->scount < MAX_PENDING_SLOTS &&
            ((c->rev & (POLLIN | POLLHUP | POLLERR)) || c->stalled))
            LOOM_TRY(read_conn(s, c, &budget));
        if (!c->dead) c->rev = 0;
    }
    return LOOM_OK;
}
