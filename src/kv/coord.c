/* Coordinating requests (Dynamo's coordinator): a read asks the first N healthy holders and
 * answers at R, then repairs stale replicas; a write goes to the key's first healthy home,
 * which makes the version and waits for W; a silent holder is taken as down and replaced by
 * the next healthy one on the ring, which keeps a hint for it. Also the replica side of
 * every message, hinted handoff, and the control messages. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kv/serve_internal.h"

#define IDX_BITS 20
#define IDX_MASK ((1u << IDX_BITS) - 1)

/* ------------------------------------------------------------------ operations */

static kv_op_t *op_new(kv_srv_t *s, int kind)
{
    size_t idx;
    if (s->nfree)
        idx = s->free_idx[--s->nfree];
    else {
        if (s->capops >= IDX_MASK) return NULL;
        size_t cap = s->capops ? 2 * s->capops : 256;
        kv_op_t **g = realloc(s->ops, cap * sizeof *g);
        uint32_t *f = g ? realloc(s->free_idx, cap * sizeof *f) : NULL;
        if (g) s->ops = g;
        if (!f) return NULL;
        s->free_idx = f;
        for (size_t i = s->capops; i < cap; i++)
            s->ops[i] = NULL;
        for (size_t i = cap; i > s->capops + 1; i--)
            s->free_idx[s->nfree++] = (uint32_t)(i - 1);
        idx = s->capops;
        s->capops = cap;
    }
    kv_op_t *op = calloc(1, sizeof *op);
    if (!op) {
        s->free_idx[s->nfree++] = (uint32_t)idx;
        return NULL;
    }
    op->id = (++s->serial << IDX_BITS) | idx;
    op->kind = kind;
    op->from_rank = -1;
    op->deadline = kv_srv_now() + s->o.timeout_ms / 1000.0;
    s->ops[idx] = op;
    s->nops++;
    return op;
}

static kv_op_t *op_find(kv_srv_t *s, uint64_t id)
{
    size_t idx = id & IDX_MASK;
    if (idx >= s->capops || !s->ops[idx] || s->ops[idx]->id != id) return NULL;
    return s->ops[idx];
}

static void op_free(kv_srv_t *s, kv_op_t *op)
{
    size_t idx = op->id & IDX_MASK;
    s->ops[idx] = NULL;
    s->free_idx[s->nfree++] = (uint32_t)idx;
    s->nops--;
    if (op->c) kv_conn_release(s, op->c);
    free(op->key);
    kv_sibs_free(&op->sibs);
    loom_buf_free(&op->fwd);
    free(op);
}

static loom_status_t nomem(kv_srv_t *s)
{
    return LOOM_ERROR(s->ctx, LOOM_ERR_NOMEM, "out of memory");
}

static int set_key(kv_op_t *op, const void *key, size_t klen)
{
    op->key = malloc(klen ? klen : 1);
    if (!op->key) return -1;
    memcpy(op->key, key, klen);
    op->klen = klen;
    op->hash = loom_key_hash(key, klen);
    return 0;
}

static int holder_of_rank(const kv_srv_t *s, int rank)
{
    return s->kv->size == 1 ? 0 : rank - 1;
}

static int rank_of(const kv_srv_t *s, int holder)
{
    return s->kv->holder_rank[holder];
}

/* ------------------------------------------------------------------ replies to clients */

static char scratch_line[256];

static void reply_bulk(loom_buf_t *b, loom_ctx_t *ctx, const void *data, size_t len)
{
    char head[32];
    int k = snprintf(head, sizeof head, "$%zu\r\n", len);
    loom_buf_append(ctx, b, head, (size_t)k);
    loom_buf_append(ctx, b, data, len);
    loom_buf_append(ctx, b, "\r\n", 2);
}

static int newer_first(const void *a, const void *b)
{
    const kv_version_t *x = *(const kv_version_t *const *)a, *y = *(const kv_version_t *const *)b;
    if (x->ts != y->ts) return x->ts > y->ts ? -1 : 1;
    if (x->dot.node != y->dot.node) return x->dot.node > y->dot.node ? -1 : 1;
    return x->dot.counter > y->dot.counter ? -1 : x->dot.counter < y->dot.counter;
}

/* LOOM.GET's answer: [context, [value...]], the values newest first (the first is what a
 * plain GET returns) */
static void reply_sibs(loom_buf_t *b, loom_ctx_t *ctx, const kv_sibs_t *sibs)
{
    kv_clock_t c = {0};
    size_t tl = 0, cap = 0;
    char *text = NULL;
    if (kv_sibs_context(sibs, &c) == 0) {
        cap = 32 * (size_t)c.n + 1; /* "slot:counter," is at most 31 characters */
        if ((text = malloc(cap))) tl = kv_clock_format(&c, text, cap);
    }
    kv_clock_free(&c);
    char head[32];
    loom_buf_append(ctx, b, "*2\r\n", 4);
    reply_bulk(b, ctx, text ? text : "", tl);
    free(text);
    int k = snprintf(head, sizeof head, "*%u\r\n", kv_sibs_live(sibs));
    loom_buf_append(ctx, b, head, (size_t)k);
    const kv_version_t **live = malloc((sibs->n ? sibs->n : 1) * sizeof *live);
    uint32_t nl = 0;
    for (uint32_t i = 0; live && i < sibs->n; i++)
        if (!sibs->v[i].dead) live[nl++] = &sibs->v[i];
    if (live) qsort(live, nl, sizeof *live, newer_first);
    for (uint32_t i = 0; i < nl; i++)
        reply_bulk(b, ctx, live[i]->val, live[i]->len);
    free(live);
}

void kv_reply_value(loom_buf_t *b, loom_ctx_t *ctx, int mode, const kv_sibs_t *sibs)
{
    if (mode == G_SIBS || mode == G_LOCAL) {
        reply_sibs(b, ctx, sibs);
        return;
    }
    const kv_version_t *v = kv_sibs_latest(sibs);
    if (v)
        reply_bulk(b, ctx, v->val, v->len);
    else
        loom_buf_append(ctx, b, "$-1\r\n", 5);
}

static void answer_get(kv_srv_t *s, kv_op_t *op, int ok)
{
    op->answered = 1;
    if (!op->c) return;
    if (!ok) {
        snprintf(scratch_line, sizeof scratch_line, "NOQUORUM need R=%d replies, got %d", op->need,
                 op->replies);
        kv_slot_done(s, op->c, op->seq, op->part, NULL, 0, 0, scratch_line);
        return;
    }
    if (op->mode == G_EXISTS) {
        kv_slot_done(s, op->c, op->seq, op->part, NULL, 0, kv_sibs_live(&op->sibs) > 0, NULL);
        return;
    }
    loom_buf_t b = {0};
    kv_reply_value(&b, s->ctx, op->mode, &op->sibs);
    kv_slot_done(s, op->c, op->seq, op->part, b.data, b.len, 0, NULL);
    loom_buf_free(&b);
}

/* A write's outcome to its client (mode G_EXISTS: DEL's count) */
static void answer_write_client(kv_srv_t *s, kv_conn_t *c, uint64_t seq, int part, int mode, int ok,
                                int need, int acks, int existed)
{
    if (!ok) {
        snprintf(scratch_line, sizeof scratch_line, "NOQUORUM need W=%d acknowledgements, got %d",
                 need, acks);
        kv_slot_done(s, c, seq, part, NULL, 0, 0, scratch_line);
    } else if (mode == G_EXISTS)
        kv_slot_done(s, c, seq, part, NULL, 0, existed, NULL);
    else
        kv_slot_done(s, c, seq, part, "+OK\r\n", 5, 0, NULL);
}

static loom_status_t answer_put(kv_srv_t *s, kv_op_t *op, int ok)
{
    op->answered = 1;
    if (op->c) {
        answer_write_client(s, op->c, op->seq, op->part, op->mode, ok, op->need, op->acks,
                            op->existed);
        return LOOM_OK;
    }
    if (op->from_rank < 0) return LOOM_OK;
    loom_buf_t *b = kv_msg_begin(s, op->from_rank, M_FWD_REP, op->from_id, 16);
    if (!b) return nomem(s);
    unsigned char *p = b->data + b->len;
    *p++ = (unsigned char)!ok;
    p = loom_put_varint(p, (uint64_t)op->acks);
    *p++ = (unsigned char)op->existed;
    b->len = (size_t)(p - b->data);
    kv_msg_end(s, op->from_rank);
    return LOOM_OK;
}

/* ------------------------------------------------------------------ targets */

static int used_holder(const kv_op_t *op, int h)
{
    for (int i = 0; i < op->nt; i++)
        if (op->t[i].holder == h) return 1;
    return 0;
}

static int pick_standin(const kv_srv_t *s, const kv_op_t *op, const uint16_t *ord)
{
    for (int j = s->kv->ring.n; j < s->kv->ring.wlen; j++)
        if (kv_srv_usable(s, ord[j]) && !used_holder(op, ord[j])) return ord[j];
    return -1;
}

static void add_target(kv_op_t *op, int holder, uint32_t hint)
{
    if (op->nt >= 2 * LOOM_KV_MAX_REPLICAS) return;
    op->t[op->nt++] = (kv_target_t){holder, hint, TS_WAIT, 0, 0};
}

static void plan_targets(kv_srv_t *s, kv_op_t *op)
{
    const uint16_t *ord = kv_ring_order(&s->kv->ring, op->hash);
    for (int i = 0; i < s->kv->ring.n; i++) {
        if (kv_srv_usable(s, ord[i])) {
            add_target(op, ord[i], KV_NO_TARGET);
            continue;
        }
        int sh = pick_standin(s, op, ord);
        if (sh >= 0) add_target(op, sh, s->kv->ring.slot[ord[i]]);
    }
}

/* What this holder has of a key: its replica, or the hints it keeps for `hint`'s home. */
static kv_entry_t *local_entry(kv_srv_t *s, uint32_t hint, uint64_t hash, const void *key,
                               size_t klen)
{
    kv_holder_t *h = &s->kv->h;
    return kv_table_find(hint == KV_NO_TARGET ? &h->main : &h->hints, hash, hint, key, klen);
}

static loom_status_t op_check(kv_srv_t *s, kv_op_t *op);

static loom_status_t send_target(kv_srv_t *s, kv_op_t *op, int i)
{
    kv_target_t *t = &op->t[i];
    if (t->holder == s->kv->me) {
        if (op->kind == OP_PUT) {
            LOOM_TRY(kv_holder_merge(&s->kv->h, t->hint, op->hash, op->key, op->klen, &op->sibs,
                                     NULL, NULL));
            op->acks++;
        } else {
            kv_entry_t *e = local_entry(s, t->hint, op->hash, op->key, op->klen);
            if (e && kv_sibs_merge(&op->sibs, &e->sibs) < 0) return nomem(s);
            t->found = e != NULL;
            t->digest = e ? e->digest : kv_sibs_digest(&(kv_sibs_t){0});
            op->replies++;
        }
        t->state = TS_DONE;
        return LOOM_OK;
    }
    int dest = rank_of(s, t->holder);
    size_t body = 10 + 10 + op->klen + (op->kind == OP_PUT ? kv_sibs_encoded_max(&op->sibs) : 0);
    loom_buf_t *b = kv_msg_begin(s, dest, op->kind == OP_PUT ? M_PUT : M_GET, op->id, body);
    if (!b) return nomem(s);
    unsigned char *p = b->data + b->len;
    p = loom_put_varint(p, t->hint == KV_NO_TARGET ? 0 : (uint64_t)t->hint + 1);
    p = kv_put_bytes(p, op->key, op->klen);
    if (op->kind == OP_PUT) p = kv_sibs_encode(&op->sibs, p);
    b->len = (size_t)(p - b->data);
    kv_msg_end(s, dest);
    return LOOM_OK;
}

/* Read repair: every home that answered with other versions than the merged ones gets them. */
static loom_status_t read_repair(kv_srv_t *s, kv_op_t *op)
{
    if (!op->sibs.n) return LOOM_OK;
    uint64_t want = kv_sibs_digest(&op->sibs);
    for (int i = 0; i < op->nt; i++) {
        kv_target_t *t = &op->t[i];
        if (t->state != TS_DONE || t->digest == want) continue;
        if (t->holder == s->kv->me) {
            LOOM_TRY(kv_holder_merge(&s->kv->h, t->hint, op->hash, op->key, op->klen, &op->sibs,
                                     NULL, NULL));
            continue;
        }
        if (t->hint != KV_NO_TARGET) continue;
        int dest = rank_of(s, t->holder);
        loom_buf_t *b = kv_msg_begin(s, dest, M_REPAIR, 0, 0);
        if (!b) return nomem(s);
        LOOM_TRY(kv_msg_put_entry(s, b, op->key, op->klen, &op->sibs));
        kv_msg_end(s, dest);
    }
    return LOOM_OK;
}

static loom_status_t op_check(kv_srv_t *s, kv_op_t *op)
{
    int waiting = 0;
    for (int i = 0; i < op->nt; i++)
        waiting += op->t[i].state == TS_WAIT;
    if (op->kind == OP_PUT) {
        if (!op->answered && op->acks >= op->need) {
            LOOM_TRY(answer_put(s, op, 1));
            op_free(s, op);
        } else if (!op->answered && !waiting && op->retried) {
            s->noquorum++;
            LOOM_TRY(answer_put(s, op, 0));
            op_free(s, op);
        }
        return LOOM_OK;
    }
    if (!op->answered && op->replies >= op->need) answer_get(s, op, 1);
    if (!waiting && (op->answered || op->retried)) {
        if (!op->answered) {
            s->noquorum++;
            answer_get(s, op, 0);
        }
        LOOM_TRY(read_repair(s, op));
        op_free(s, op);
    }
    return LOOM_OK;
}

static loom_status_t launch(kv_srv_t *s, kv_op_t *op)
{
    plan_targets(s, op);
    for (int i = 0; i < op->nt; i++)
        LOOM_TRY(send_target(s, op, i));
    if (op->nt < op->need) op->retried = 1; /* no stand-in left: fail at once if short */
    return op_check(s, op);
}

/* Replace the targets that did not answer in time by stand-ins (once). */
static loom_status_t retarget(kv_srv_t *s, kv_op_t *op, double now)
{
    const uint16_t *ord = kv_ring_order(&s->kv->ring, op->hash);
    int nt = op->nt, added = 0;
    for (int i = 0; i < nt; i++) {
        kv_target_t *t = &op->t[i];
        if (t->state != TS_WAIT) continue;
        t->state = TS_FAILED;
        kv_srv_mark_down(s, t->holder);
        if (op->retried) continue;
        int sh = pick_standin(s, op, ord);
        if (sh < 0) continue;
        uint32_t hint = t->hint != KV_NO_TARGET ? t->hint : s->kv->ring.slot[t->holder];
        add_target(op, sh, hint);
        LOOM_TRY(send_target(s, op, op->nt - 1));
        added++;
    }
    op->retried = 1;
    op->deadline = now + s->o.timeout_ms / 1000.0;
    (void)added;
    return op_check(s, op);
}

/* ------------------------------------------------------------------ starting requests */

/* No room for the request (the table of operations full, or memory): it is refused, the
 * service goes on. */
static loom_status_t refuse(kv_srv_t *s, kv_op_t *op, kv_conn_t *c, uint64_t seq, int part)
{
    if (op) op_free(s, op);
    kv_slot_done(s, c, seq, part, NULL, 0, 0,
                 "ERR out of memory or too many requests in flight; try again");
    return LOOM_OK;
}

loom_status_t kv_srv_get(kv_srv_t *s, kv_conn_t *c, uint64_t seq, int part, int mode,
                         const void *key, size_t klen, int r)
{
    kv_op_t *op = op_new(s, OP_GET);
    if (!op || set_key(op, key, klen)) return refuse(s, op, c, seq, part);
    op->c = c;
    c->refs++;
    op->seq = seq;
    op->part = part;
    op->mode = mode;
    op->need = r > 0 ? r : s->kv->r;
    s->requests++;
    return launch(s, op);
}

/* Make the write's version here (this rank coordinates it) and send it to the targets. */
/* Make the write's version here (this rank coordinates it: the dot is this rank's) and send
 * the key's whole state with it to the targets. Dots of a slot come only from that slot's
 * coordinator, and every replica gets the coordinator's state, so a context that covers one
 * of its dots comes from a state that held it (dotted version vectors' condition). */
static loom_status_t coordinate(kv_srv_t *s, kv_op_t *op, const void *val, size_t vlen,
                                const kv_clock_t *cctx)
{
    kv_entry_t *e = s->kv->me >= 0
                        ? kv_table_find(&s->kv->h.main, op->hash, KV_NO_TARGET, op->key, op->klen)
                        : NULL;
    uint32_t me = s->kv->my_slot;
    kv_version_t v = {0};
    int bad = 0;
    if (cctx)
        bad = kv_clock_join(&v.ctx, cctx);
    else if (e)
        bad = kv_sibs_context(&e->sibs, &v.ctx);
    op->existed = e && kv_sibs_live(&e->sibs) > 0;
    /* above every counter of this slot that the key or the context shows (a context from a
     * client, a clock that went back since those were issued) */
    uint64_t floor = kv_clock_get(&v.ctx, me), held = e ? kv_sibs_max_counter(&e->sibs, me) : 0;
    v.dot = (kv_dot_t){me, kv_next_counter_above(s->kv, held > floor ? held : floor)};
    v.ts = op->ts ? op->ts : kv_now_us();
    v.dead = op->del;
    v.len = (uint32_t)(op->del ? 0 : vlen);
    if (v.len && !(v.val = malloc(v.len))) bad = 1;
    if (v.len && v.val) memcpy(v.val, val, v.len);
    kv_sibs_t one = {1, &v};
    if (!bad && e) bad = kv_sibs_copy(&op->sibs, &e->sibs);
    if (!bad) bad = kv_sibs_merge(&op->sibs, &one) < 0;
    kv_version_free(&v);
    if (bad) return nomem(s);
    return launch(s, op);
}

static int first_usable_home(const kv_srv_t *s, uint64_t hash, int skip)
{
    const uint16_t *ord = kv_ring_order(&s->kv->ring, hash);
    for (int i = 0; i < s->kv->ring.n; i++)
        if (ord[i] != skip && kv_srv_usable(s, ord[i])) return ord[i];
    return -1;
}

/* The M_FWD body: flags (1 delete, 2 context), w, ts (u64: the gateway's clock when it
 * sends, µs), [context], key, value. */
static loom_status_t fwd_body(kv_srv_t *s, kv_op_t *op, const void *val, size_t vlen,
                              const kv_clock_t *cctx)
{
    size_t max = 2 + 30 + 10 + (cctx ? 20 * (size_t)cctx->n : 0) + 20 + op->klen + vlen;
    LOOM_TRY(loom_buf_reserve(s->ctx, &op->fwd, max));
    unsigned char *p = op->fwd.data;
    *p++ = (unsigned char)(op->del | (cctx ? 2 : 0));
    *p++ = (unsigned char)op->need;
    memcpy(p, &op->ts, 8); /* fixed width: send_fwd refreshes it */
    p += 8;
    if (cctx) {
        p = loom_put_varint(p, cctx->n);
        for (uint32_t i = 0; i < cctx->n; i++) {
            p = loom_put_varint(p, cctx->e[i].node);
            p = loom_put_varint(p, cctx->e[i].counter);
        }
    }
    p = kv_put_bytes(p, op->key, op->klen);
    p = kv_put_bytes(p, val, vlen);
    op->fwd.len = (size_t)(p - op->fwd.data);
    return LOOM_OK;
}

static loom_status_t send_fwd(kv_srv_t *s, kv_op_t *op)
{
    int dest = rank_of(s, op->coord);
    op->ts = kv_now_us(); /* a resent forward is not stale */
    memcpy(op->fwd.data + 2, &op->ts, 8);
    loom_buf_t *b = kv_msg_begin(s, dest, M_FWD, op->id, op->fwd.len);
    if (!b) return nomem(s);
    memcpy(b->data + b->len, op->fwd.data, op->fwd.len);
    b->len += op->fwd.len;
    kv_msg_end(s, dest);
    /* a coordinator takes a forward up to half a timeout old, and may wait out one timeout
     * for its targets and another for their stand-ins */
    op->deadline = kv_srv_now() + 3.0 * s->o.timeout_ms / 1000.0;
    return LOOM_OK;
}

loom_status_t kv_srv_put(kv_srv_t *s, kv_conn_t *c, uint64_t seq, int part, const void *key,
                         size_t klen, const void *val, size_t vlen, int del, int mode,
                         const kv_clock_t *cctx, int w)
{
    uint64_t hash = loom_key_hash(key, klen);
    int coord = first_usable_home(s, hash, -1);
    int here = coord < 0 || coord == s->kv->me;
    kv_op_t *op = op_new(s, here ? OP_PUT : OP_FWD);
    if (!op || set_key(op, key, klen)) return refuse(s, op, c, seq, part);
    op->c = c;
    if (c) c->refs++;
    op->seq = seq;
    op->part = part;
    op->mode = mode;
    op->del = del;
    op->need = w > 0 ? w : s->kv->w;
    op->ts = kv_now_us();
    s->requests++;
    if (here) return coordinate(s, op, val, vlen, cctx);
    op->coord = coord;
    LOOM_TRY(fwd_body(s, op, val, vlen, cctx));
    return send_fwd(s, op);
}

/* Decode an M_FWD body and coordinate it here, for `from` (rank, op id) or for a local op
 * (a forward that timed out and came back). */
static loom_status_t coordinate_fwd(kv_srv_t *s, kv_op_t *op, const unsigned char *p,
                                    const unsigned char *end, int stale_check, int *malformed)
{
    uint64_t n, x, klen, vlen;
    kv_clock_t cctx = {0};
    *malformed = 1;
    if (end - p < 2) return LOOM_OK;
    int flags = *p++;
    op->del = flags & 1;
    op->need = *p++;
    if (op->need < 1) op->need = 1;
    if (end - p < 8) return LOOM_OK;
    memcpy(&op->ts, p, 8);
    p += 8;
    /* a forward older than half a timeout is dropped, as if lost: its gateway gives up at
     * three timeouts and sends it to another coordinator, and this one may take two more
     * (its targets, then their stand-ins); so one write is never made twice */
    uint64_t now = kv_now_us();
    if (stale_check && now > op->ts && now - op->ts > (uint64_t)s->o.timeout_ms * 500u)
        return LOOM_OK;
    if (flags & 2) {
        if (!(p = loom_get_varint(p, end, &n))) return LOOM_OK;
        for (uint64_t i = 0; i < n; i++) {
            uint64_t cn;
            if (!(p = loom_get_varint(p, end, &cn)) || !(p = loom_get_varint(p, end, &x)) ||
                kv_clock_raise(&cctx, (kv_dot_t){(uint32_t)cn, x})) {
                kv_clock_free(&cctx);
                return LOOM_OK;
            }
        }
    }
    if (!(p = loom_get_varint(p, end, &klen)) || klen > (uint64_t)(end - p)) goto out;
    const unsigned char *key = p;
    p += klen;
    if (!(p = loom_get_varint(p, end, &vlen)) || vlen > (uint64_t)(end - p)) goto out;
    if (!op->key && set_key(op, key, klen)) {
        kv_clock_free(&cctx);
        return nomem(s);
    }
    *malformed = 0;
    loom_status_t st = coordinate(s, op, p, vlen, (flags & 2) ? &cctx : NULL);
    kv_clock_free(&cctx);
    return st;
out:
    kv_clock_free(&cctx);
    return LOOM_OK;
}

static void handoff_free(kv_handoff_t *h)
{
    for (size_t k = 0; k < h->n; k++)
        free(h->key[k]);
    free(h->key);
    free(h->hash);
    free(h->digest);
    free(h->klen);
}

/* ------------------------------------------------------------------ deadlines */

static loom_status_t fwd_timeout(kv_srv_t *s, kv_op_t *op)
{
    kv_srv_mark_down(s, op->coord);
    if (op->retried) {
        answer_write_client(s, op->c, op->seq, op->part, op->mode, 0, op->need, 0, 0);
        op_free(s, op);
        return LOOM_OK;
    }
    op->retried = 1;
    int coord = first_usable_home(s, op->hash, op->coord);
    if (coord >= 0 && coord != s->kv->me) {
        op->coord = coord;
        return send_fwd(s, op);
    }
    /* no home answers: coordinate here (a sloppy quorum of stand-ins) */
    op->kind = OP_PUT;
    op->retried = 0;
    op->deadline = kv_srv_now() + s->o.timeout_ms / 1000.0;
    loom_buf_t body = op->fwd;
    op->fwd = (loom_buf_t){0};
    int malformed;
    loom_status_t st = coordinate_fwd(s, op, body.data, body.data + body.len, 0, &malformed);
    loom_buf_free(&body);
    return st;
}

loom_status_t kv_srv_deadlines(kv_srv_t *s, double now)
{
    for (size_t i = 0; i < s->capops; i++) {
        kv_op_t *op = s->ops[i];
        if (!op || now < op->deadline) continue;
        if (op->kind == OP_FWD)
            LOOM_TRY(fwd_timeout(s, op));
        else if (op->kind == OP_DRILL) {
            kv_slot_done(s, op->c, op->seq, 0, "+OK\r\n", 5, 0, NULL);
            op_free(s, op);
        } else
            LOOM_TRY(retarget(s, op, now));
    }
    /* hand-off batches that were never acknowledged are sent again later */
    for (size_t i = 0; i < s->nhand;) {
        kv_handoff_t *h = &s->hand[i];
        if (now < h->deadline) {
            i++;
            continue;
        }
        handoff_free(h);
        s->hand[i] = s->hand[--s->nhand];
    }
    return LOOM_OK;
}

/* ------------------------------------------------------------------ hinted handoff */

static int handoff_busy(const kv_srv_t *s, int holder)
{
    for (size_t i = 0; i < s->nhand; i++)
        if (s->hand[i].holder == holder) return 1;
    return 0;
}

loom_status_t kv_srv_handoff(kv_srv_t *s, double now)
{
    kv_table_t *t = &s->kv->h.hints;
    if (!t->count) return LOOM_OK;
    for (int hd = 0; hd < s->nh; hd++) {
        if (hd == s->kv->me || !kv_srv_usable(s, hd) || handoff_busy(s, hd)) continue;
        uint32_t slot = s->kv->ring.slot[hd];
        kv_handoff_t h = {.holder = hd, .deadline = now + 4.0 * s->o.timeout_ms / 1000.0 + 0.5};
        size_t cap = 0, bytes = 0;
        int dest = rank_of(s, hd);
        loom_buf_t *b = NULL;
        size_t count_at = 0;
        for (size_t i = 0; i < t->cap && bytes < (1u << 20); i++) {
            kv_entry_t *e = t->slot[i];
            if (!e || e->target != slot) continue;
            if (!b) {
                h.id = ++s->serial;
                if (!(b = kv_msg_begin(s, dest, M_HANDOFF, h.id, 10))) return nomem(s);
                count_at = b->len;
                b->len += 4; /* the count, patched below */
            }
            if (h.n == cap) {
                cap = cap ? 2 * cap : 64;
                void *a = realloc(h.hash, cap * sizeof *h.hash), *d, *k, *l;
                if (a) h.hash = a;
                d = realloc(h.digest, cap * sizeof *h.digest);
                if (d) h.digest = d;
                k = realloc(h.key, cap * sizeof *h.key);
                if (k) h.key = k;
                l = realloc(h.klen, cap * sizeof *h.klen);
                if (l) h.klen = l;
                if (!a || !d || !k || !l) return nomem(s);
            }
            h.hash[h.n] = e->hash;
            h.digest[h.n] = e->digest;
            h.klen[h.n] = e->klen;
            if (!(h.key[h.n] = malloc(e->klen ? e->klen : 1))) return nomem(s);
            memcpy(h.key[h.n], e->key, e->klen);
            h.n++;
            size_t before = b->len;
            LOOM_TRY(kv_msg_put_entry(s, b, e->key, e->klen, &e->sibs));
            bytes += b->len - before;
        }
        if (!b) continue;
        uint32_t n32 = (uint32_t)h.n;
        memcpy(b->data + count_at, &n32, 4);
        kv_msg_end(s, dest);
        kv_handoff_t *g = realloc(s->hand, (s->nhand + 1) * sizeof *g);
        if (!g) return nomem(s);
        s->hand = g;
        s->hand[s->nhand++] = h;
    }
    return LOOM_OK;
}

static loom_status_t handoff_acked(kv_srv_t *s, uint64_t id)
{
    for (size_t i = 0; i < s->nhand; i++) {
        kv_handoff_t *h = &s->hand[i];
        if (h->id != id) continue;
        uint32_t slot = s->kv->ring.slot[h->holder];
        for (size_t k = 0; k < h->n; k++) {
            kv_entry_t *e = kv_table_find(&s->kv->h.hints, h->hash[k], slot, h->key[k], h->klen[k]);
            /* a hint that changed since it was sent goes again */
            if (e && e->digest == h->digest[k]) {
                LOOM_TRY(kv_holder_drop_hint(&s->kv->h, e));
                s->kv->h.hints_delivered++;
            }
        }
        handoff_free(h);
        s->hand[i] = s->hand[--s->nhand];
        return LOOM_OK;
    }
    return LOOM_OK;
}

/* ------------------------------------------------------------------ messages from peers */

static kv_target_t *target_of(kv_srv_t *s, kv_op_t *op, int src)
{
    int h = holder_of_rank(s, src);
    for (int i = 0; i < op->nt; i++)
        if (op->t[i].holder == h && op->t[i].state == TS_WAIT) return &op->t[i];
    return NULL;
}

/* Parse "key, versions" and merge it into this holder (replica or hints). */
static loom_status_t merge_body(kv_srv_t *s, const unsigned char **pp, const unsigned char *end,
                                uint32_t target, int *changed)
{
    uint64_t klen;
    const unsigned char *p = *pp;
    *changed = 0;
    if (!(p = loom_get_varint(p, end, &klen)) || klen > (uint64_t)(end - p)) return LOOM_ERR_FORMAT;
    const unsigned char *key = p;
    p += klen;
    kv_sibs_t in;
    int r = kv_sibs_decode(&p, end, SIZE_MAX, &in);
    if (r == -2) return nomem(s);
    if (r) return LOOM_ERR_FORMAT;
    loom_status_t st =
        kv_holder_merge(&s->kv->h, target, loom_key_hash(key, klen), key, klen, &in, changed, NULL);
    kv_sibs_free(&in);
    *pp = p;
    return st;
}

static loom_status_t on_put(kv_srv_t *s, int src, uint64_t id, const unsigned char *p,
                            const unsigned char *end)
{
    uint64_t hint1;
    int changed;
    if (!(p = loom_get_varint(p, end, &hint1)) || hint1 > KV_NO_TARGET) return LOOM_OK;
    loom_status_t st =
        merge_body(s, &p, end, hint1 ? (uint32_t)(hint1 - 1) : KV_NO_TARGET, &changed);
    if (st == LOOM_ERR_FORMAT) return LOOM_OK;
    LOOM_TRY(st);
    if (!kv_msg_begin(s, src, M_PUT_ACK, id, 0)) return nomem(s);
    kv_msg_end(s, src);
    return LOOM_OK;
}

static loom_status_t on_get(kv_srv_t *s, int src, uint64_t id, const unsigned char *p,
                            const unsigned char *end)
{
    uint64_t hint1, klen;
    if (!(p = loom_get_varint(p, end, &hint1)) || hint1 > KV_NO_TARGET ||
        !(p = loom_get_varint(p, end, &klen)) || klen > (uint64_t)(end - p))
        return LOOM_OK;
    kv_entry_t *e = local_entry(s, hint1 ? (uint32_t)(hint1 - 1) : KV_NO_TARGET,
                                loom_key_hash(p, klen), p, klen);
    kv_sibs_t none = {0};
    const kv_sibs_t *sibs = e ? &e->sibs : &none;
    loom_buf_t *b = kv_msg_begin(s, src, M_GET_REP, id, 1 + kv_sibs_encoded_max(sibs));
    if (!b) return nomem(s);
    unsigned char *q = b->data + b->len;
    *q++ = (unsigned char)(e != NULL);
    q = kv_sibs_encode(sibs, q);
    b->len = (size_t)(q - b->data);
    kv_msg_end(s, src);
    return LOOM_OK;
}

static loom_status_t on_get_rep(kv_srv_t *s, int src, kv_op_t *op, const unsigned char *p,
                                const unsigned char *end)
{
    kv_target_t *t = target_of(s, op, src);
    if (!t || p == end) return LOOM_OK;
    int found = *p++;
    kv_sibs_t in;
    int r = kv_sibs_decode(&p, end, SIZE_MAX, &in);
    if (r == -2) return nomem(s);
    if (r) return LOOM_OK;
    t->state = TS_DONE;
    t->found = found;
    t->digest = kv_sibs_digest(&in);
    r = kv_sibs_merge(&op->sibs, &in);
    kv_sibs_free(&in);
    if (r < 0) return nomem(s);
    op->replies++;
    return op_check(s, op);
}

static loom_status_t on_fwd(kv_srv_t *s, int src, uint64_t id, const unsigned char *p,
                            const unsigned char *end)
{
    kv_op_t *op = op_new(s, OP_PUT);
    if (!op) return nomem(s);
    op->from_rank = src;
    op->from_id = id;
    s->requests++;
    int malformed;
    loom_status_t st = coordinate_fwd(s, op, p, end, 1, &malformed);
    if (st == LOOM_OK && malformed) op_free(s, op); /* dropped */
    return st;
}

static loom_status_t on_fwd_rep(kv_srv_t *s, kv_op_t *op, const unsigned char *p,
                                const unsigned char *end)
{
    uint64_t acks;
    if (op->kind != OP_FWD || end - p < 2) return LOOM_OK;
    int failed = *p++;
    if (!(p = loom_get_varint(p, end, &acks)) || p == end) return LOOM_OK;
    int existed = *p;
    if (failed) s->noquorum++;
    answer_write_client(s, op->c, op->seq, op->part, op->mode, !failed, op->need, (int)acks,
                        existed);
    op_free(s, op);
    return LOOM_OK;
}

static loom_status_t on_handoff(kv_srv_t *s, int src, uint64_t id, const unsigned char *p,
                                const unsigned char *end)
{
    uint32_t n;
    if (end - p < 4) return LOOM_OK;
    memcpy(&n, p, 4);
    p += 4;
    for (uint32_t i = 0; i < n; i++) {
        int changed;
        loom_status_t st = merge_body(s, &p, end, KV_NO_TARGET, &changed);
        if (st == LOOM_ERR_FORMAT) return LOOM_OK;
        LOOM_TRY(st);
    }
    if (!kv_msg_begin(s, src, M_HANDOFF_ACK, id, 0)) return nomem(s);
    kv_msg_end(s, src);
    return LOOM_OK;
}

loom_status_t kv_srv_data(kv_srv_t *s, int src, int type, uint64_t id, const unsigned char *p,
                          const unsigned char *end)
{
    if (s->kv->me < 0 || s->stopping) return LOOM_OK;
    kv_op_t *op = NULL;
    int changed;
    switch (type) {
    case M_PUT:
        return on_put(s, src, id, p, end);
    case M_GET:
        return on_get(s, src, id, p, end);
    case M_FWD:
        return on_fwd(s, src, id, p, end);
    case M_HANDOFF:
        return on_handoff(s, src, id, p, end);
    case M_HANDOFF_ACK:
        return handoff_acked(s, id);
    case M_AE_TREE:
        return kv_srv_ae_tree(s, src, id, p, end);
    case M_AE_DIFF:
        return kv_srv_ae_diff(s, src, id, p, end, 0);
    case M_AE_PUSH:
        return kv_srv_ae_diff(s, src, id, p, end, 1);
    case M_PING:
        if (!kv_msg_begin(s, src, M_PONG, id, 0)) return nomem(s);
        kv_msg_end(s, src);
        return LOOM_OK;
    case M_PONG:
        return LOOM_OK;
    case M_REPAIR: {
        loom_status_t st = merge_body(s, &p, end, KV_NO_TARGET, &changed);
        if (st == LOOM_ERR_FORMAT) return LOOM_OK;
        if (changed) s->kv->h.read_repairs++;
        return st;
    }
    default:
        break;
    }
    if (!(op = op_find(s, id))) return LOOM_OK; /* answered already, or given up on */
    if (type == M_PUT_ACK && op->kind == OP_PUT) {
        kv_target_t *t = target_of(s, op, src);
        if (!t) return LOOM_OK;
        t->state = TS_DONE;
        op->acks++;
        return op_check(s, op);
    }
    if (type == M_GET_REP && op->kind == OP_GET) return on_get_rep(s, src, op, p, end);
    if (type == M_FWD_REP) return on_fwd_rep(s, op, p, end);
    return LOOM_OK;
}

/* ------------------------------------------------------------------ control */

static void apply_drill(kv_srv_t *s, const int *group)
{
    s->partitioned = 0;
    for (int r = 0; r < s->kv->size; r++) {
        s->group[r] = group[r];
        if (group[r]) s->partitioned = 1;
    }
    if (!s->partitioned && s->kv->rank == 0)
        fprintf(stderr, "loom: kv: drill: partition healed\n");
    else if (s->kv->rank == 0)
        fprintf(stderr, "loom: kv: drill: partition in place\n");
}

loom_status_t kv_srv_drill(kv_srv_t *s, kv_conn_t *c, uint64_t seq, const int *group)
{
    kv_op_t *op = op_new(s, OP_DRILL);
    if (!op) return nomem(s);
    op->c = c;
    c->refs++;
    op->seq = seq;
    op->deadline = kv_srv_now() + 5.0;
    unsigned char *body = malloc((size_t)s->kv->size * 5 + 1), *p = body;
    if (!body) return nomem(s);
    for (int r = 0; r < s->kv->size; r++)
        p = loom_put_varint(p, (uint64_t)group[r]);
    for (int r = 0; r < s->kv->size; r++) {
        if (r == s->kv->rank || s->peer[r].state == PEER_DEAD) continue;
        op->need++;
        loom_status_t st = kv_ctrl_send(s, r, C_DRILL, op->id, body, (size_t)(p - body));
        if (st != LOOM_OK) {
            free(body);
            return st;
        }
    }
    free(body);
    apply_drill(s, group);
    if (!op->need) {
        kv_slot_done(s, c, seq, 0, "+OK\r\n", 5, 0, NULL);
        op_free(s, op);
    }
    return LOOM_OK;
}

loom_status_t kv_srv_ctrl(kv_srv_t *s, int src, int type, uint64_t id, const unsigned char *p,
                          const unsigned char *end)
{
    switch (type) {
    case C_STOPREQ:
        return s->kv->rank == 0 ? kv_srv_begin_stop(s) : LOOM_OK;
    case C_STOP:
        return kv_srv_begin_stop(s);
    case C_STOPPED:
        s->stopped_seen++;
        return LOOM_OK;
    case C_FINAL:
        s->final = 1;
        return LOOM_OK;
    case C_DRILL: {
        int *group = calloc((size_t)s->kv->size, sizeof *group);
        if (!group) return nomem(s);
        for (int r = 0; r < s->kv->size; r++) {
            uint64_t g = 0;
            if (!(p = loom_get_varint(p, end, &g))) break;
            group[r] = (int)g;
        }
        apply_drill(s, group);
        free(group);
        return kv_ctrl_send(s, src, C_DRILL_ACK, id, NULL, 0);
    }
    case C_DRILL_ACK: {
        kv_op_t *op = op_find(s, id);
        if (op && op->kind == OP_DRILL && ++op->acks >= op->need) {
            kv_slot_done(s, op->c, op->seq, 0, "+OK\r\n", 5, 0, NULL);
            op_free(s, op);
        }
        return LOOM_OK;
    }
    default:
        return LOOM_OK;
    }
}

void kv_srv_free(kv_srv_t *s)
{
    for (size_t i = 0; i < s->capops; i++)
        if (s->ops[i]) op_free(s, s->ops[i]);
    free(s->ops);
    free(s->free_idx);
    for (size_t i = 0; i < s->nhand; i++)
        handoff_free(&s->hand[i]);
    free(s->hand);
    kv_srv_close_clients(s);
    for (size_t i = 0; i < s->nconns; i++)
        free(s->conns[i]);
    free(s->conns);
    free(s->pfd);
    kv_req_free(&s->req);
    if (s->lfd >= 0) close(s->lfd);
    for (int r = 0; s->peer && r < s->kv->size; r++)
        loom_buf_free(&s->peer[r].out);
    free(s->peer);
    free(s->group);
    free(s->pend);
    free(s->preq);
    free(s->pidx);
    free(s);
}
