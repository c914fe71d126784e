/* Node-level combining of the shuffle: what a relay of the two-level exchange does with the
 * segments its node's workers send one destination. */
#include <stdlib.h>
#include <string.h>

#include "mr/mr_internal.h"

/* One [u32 part][record] entry at p (bounds already checked on the way in). */
typedef struct entry {
    uint32_t part;
    const unsigned char *key, *val;
    size_t klen, vlen, size;
} entry_t;

/* Per destination: what each member of the node sent and the relay has not
 * passed on yet, as [u32 part][record] entries in (partition, key) order, and
 * how far each member has got. A member's stream of a destination is sorted
 * by (partition, key) across rounds, so anything at or below the smallest
 * "last" of the members still sending can go out sorted; the rest waits. */
struct mr_relay {
    int n;
    loom_buf_t *pend;
    size_t *head;
    loom_buf_t *lastk;
    uint32_t *lastp;
    uint8_t *seen, *done;
    loom_buf_t acc;
    entry_t *hd; /* [n] each member's head entry while releasing */
    int *heap;   /* [n] members by head, for the merge */
};

static void relay_free(mr_relay_t *r)
{
    if (!r) return;
    for (int m = 0; m < r->n; m++) {
        if (r->pend) loom_buf_free(&r->pend[m]);
        if (r->lastk) loom_buf_free(&r->lastk[m]);
    }
    free(r->pend);
    free(r->head);
    free(r->lastk);
    free(r->lastp);
    free(r->seen);
    free(r->done);
    free(r->hd);
    free(r->heap);
    loom_buf_free(&r->acc);
    free(r);
}

void mr_relay_free(mr_relay_t **relays, int L)
{
    for (int d = 0; relays && d < L; d++)
        relay_free(relays[d]);
    free(relays);
}

static loom_status_t relay_new(loom_ctx_t *ctx, int n, mr_relay_t **out)
{
    mr_relay_t *r = calloc(1, sizeof *r);
    if (r) {
        r->n = n;
        r->pend = calloc((size_t)n, sizeof *r->pend);
        r->head = calloc((size_t)n, sizeof *r->head);
        r->lastk = calloc((size_t)n, sizeof *r->lastk);
        r->lastp = calloc((size_t)n, sizeof *r->lastp);
        r->seen = calloc((size_t)n, 1);
        r->done = calloc((size_t)n, 1);
        r->hd = calloc((size_t)n, sizeof *r->hd);
        r->heap = calloc((size_t)n, sizeof *r->heap);
    }
    if (!r || !r->pend || !r->head || !r->lastk || !r->lastp || !r->seen || !r->done || !r->hd ||
        !r->heap) {
        relay_free(r);
        return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory for a shuffle relay");
    }
    *out = r;
    return LOOM_OK;
}

static void entry_at(const unsigned char *p, const unsigned char *end, entry_t *e)
{
    uint64_t kl = 0, vl = 0;
    memcpy(&e->part, p, 4);
    const unsigned char *q = loom_get_varint(p + 4, end, &kl);
    q = loom_get_varint(q, end, &vl);
    e->key = q;
    e->klen = (size_t)kl;
    e->val = q + kl;
    e->vlen = (size_t)vl;
    e->size = (size_t)(e->val + vl - p);
}

static int entry_cmp(uint32_t ap, const void *ak, size_t akl, uint32_t bp, const void *bk,
                     size_t bkl)
{
    if (ap != bp) return ap < bp ? -1 : 1;
    return loom_sort_cmp_bytes(ak, akl, bk, bkl);
}

/* Take a member's segments [u32 part][u64 len][records] into its pending
 * entries; a segment for MR_SEG_ALL_SENT says the member has sent all. */
static loom_status_t take(mr_engine_t *eng, mr_relay_t *r, int m, const unsigned char *p,
                          size_t len)
{
    loom_ctx_t *ctx = eng->ctx;
    const unsigned char *e = p + len;
    while (p < e) {
        uint32_t part = 0;
        uint64_t sl = 0;
        LOOM_TRY(mr_segment_next(ctx, &p, e, &part, &sl));
        if (part == MR_SEG_ALL_SENT) {
            r->done[m] = 1;
            continue;
        }
        const unsigned char *s = p, *se = p + sl;
        const unsigned char *lk = NULL;
        size_t lkl = 0;
        while (s < se) {
            uint64_t kl, vl;
            const unsigned char *q = loom_get_varint(s, se, &kl);
            if (q) q = loom_get_varint(q, se, &vl);
            if (!q || kl > (uint64_t)(se - q) || vl > (uint64_t)(se - q) - kl)
                return LOOM_ERROR(ctx, LOOM_ERR_INTERNAL, "bad shuffle record for partition %u",
                                  part);
            size_t rec = (size_t)(q + kl + vl - s);
            LOOM_TRY(loom_buf_reserve(ctx, &r->pend[m], 4 + rec));
            memcpy(r->pend[m].data + r->pend[m].len, &part, 4);
            memcpy(r->pend[m].data + r->pend[m].len + 4, s, rec);
            r->pend[m].len += 4 + rec;
            lk = q;
            lkl = (size_t)kl;
            s = q + kl + vl;
        }
        if (lk) {
            r->lastk[m].len = 0;
            LOOM_TRY(loom_buf_append(ctx, &r->lastk[m], lk, lkl));
            r->lastp[m] = part;
            r->seen[m] = 1;
        }
        p = se;
    }
    return LOOM_OK;
}

/* Fold value v into r->acc with the job's combiner. */
static loom_status_t fold(mr_engine_t *eng, mr_relay_t *r, const entry_t *e)
{
    if (eng->job->combine == loom_mr_combine_sum_u64 && r->acc.len == 8 && e->vlen == 8) {
        uint64_t a, b;
        memcpy(&a, r->acc.data, 8);
        memcpy(&b, e->val, 8);
        a += b;
        memcpy(r->acc.data, &a, 8);
        return LOOM_OK;
    }
    return mr_combine_into(eng, e->key, e->klen, &r->acc, e->val, e->vlen);
}

static int head_less(const void *arg, int a, int b)
{
    const entry_t *hd = arg;
    int c = entry_cmp(hd[a].part, hd[a].key, hd[a].klen, hd[b].part, hd[b].key, hd[b].klen);
    return c < 0 || (c == 0 && a < b);
}

/* Member m's head was used: step to its next entry, or drop it from the heap. */
static void advance(mr_relay_t *r, int *hn)
{
    int m = r->heap[0];
    r->head[m] += r->hd[m].size;
    if (r->head[m] < r->pend[m].len)
        entry_at(r->pend[m].data + r->head[m], r->pend[m].data + r->pend[m].len, &r->hd[m]);
    else
        r->heap[0] = r->heap[--*hn];
    loom_heap_down(r->heap, *hn, 0, head_less, r->hd);
}

/* Send on, in (partition, key) order and with equal keys folded, every
 * pending entry at or below the frontier (all of them when `all`): a merge
 * of the members' pending entries through a heap of their heads. */
static loom_status_t release(mr_engine_t *eng, mr_relay_t *r, int all, uint32_t fp,
                             const loom_buf_t *fk, loom_buf_t *out)
{
    loom_ctx_t *ctx = eng->ctx;
    size_t seg = SIZE_MAX;
    uint32_t seg_part = 0;
    int hn = 0;
    for (int m = 0; m < r->n; m++)
        if (r->head[m] < r->pend[m].len) {
            entry_at(r->pend[m].data + r->head[m], r->pend[m].data + r->pend[m].len, &r->hd[m]);
            r->heap[hn++] = m;
        }
    for (int i = hn / 2 - 1; i >= 0; i--)
        loom_heap_down(r->heap, hn, i, head_less, r->hd);
    while (hn > 0) {
        entry_t be = r->hd[r->heap[0]];
        if (!all && entry_cmp(be.part, be.key, be.klen, fp, fk->data, fk->len) > 0) break;
        /* fold the equal heads of the other members (their keys stay in place) */
        r->acc.len = 0;
        LOOM_TRY(loom_buf_append(ctx, &r->acc, be.val, be.vlen));
        advance(r, &hn);
        while (hn > 0) {
            const entry_t *e = &r->hd[r->heap[0]];
            if (entry_cmp(e->part, e->key, e->klen, be.part, be.key, be.klen) != 0) break;
            LOOM_TRY(fold(eng, r, e));
            advance(r, &hn);
        }
        if (seg == SIZE_MAX || seg_part != be.part) {
            if (seg != SIZE_MAX) {
                uint64_t sl = out->len - seg - 12;
                memcpy(out->data + seg + 4, &sl, 8);
            }
            unsigned char hdr[12] = {0};
            memcpy(hdr, &be.part, 4);
            seg = out->len;
            seg_part = be.part;
            LOOM_TRY(loom_buf_append(ctx, out, hdr, 12));
        }
        LOOM_TRY(loom_buf_put_record(ctx, out, be.key, be.klen, r->acc.data, r->acc.len));
    }
    if (seg != SIZE_MAX) {
        uint64_t sl = out->len - seg - 12;
        memcpy(out->data + seg + 4, &sl, 8);
    }
    /* keep what waits at the front of each member's buffer */
    for (int m = 0; m < r->n; m++) {
        loom_buf_t *b = &r->pend[m];
        if (r->head[m] && r->head[m] < b->len)
            memmove(b->data, b->data + r->head[m], b->len - r->head[m]);
        b->len -= r->head[m];
        r->head[m] = 0;
    }
    return LOOM_OK;
}

static size_t pending_bytes(const mr_relay_t *r)
{
    size_t n = 0;
    for (int m = 0; m < r->n; m++)
        n += r->pend[m].len - r->head[m];
    return n;
}

loom_status_t mr_relay_combine(mr_engine_t *eng, mr_relay_t **relays, int dest, int nseg,
                               const unsigned char *const *seg, const size_t *len, int last,
                               size_t *held, size_t cap, loom_buf_t *out)
{
    if (!relays[dest]) LOOM_TRY(relay_new(eng->ctx, nseg, &relays[dest]));
    mr_relay_t *r = relays[dest];
    if (r->n != nseg)
        return LOOM_ERROR(eng->ctx, LOOM_ERR_INTERNAL, "shuffle relay: %d members, then %d", r->n,
                          nseg);
    size_t before = pending_bytes(r);
    for (int m = 0; m < nseg; m++)
        if (len[m]) LOOM_TRY(take(eng, r, m, seg[m], len[m]));
    *held += pending_bytes(r) - before;
    /* the frontier: the smallest last entry among members still sending */
    int all = 1, blocked = 0, fm = -1;
    for (int m = 0; m < nseg; m++) {
        if (r->done[m]) continue;
        all = 0;
        if (!r->seen[m]) {
            blocked = 1;
            break;
        }
        if (fm < 0 || entry_cmp(r->lastp[m], r->lastk[m].data, r->lastk[m].len, r->lastp[fm],
                                r->lastk[fm].data, r->lastk[fm].len) < 0)
            fm = m;
    }
    if (last) all = 1;
    loom_status_t st = LOOM_OK;
    before = pending_bytes(r);
    if (all || !blocked)
        st = release(eng, r, all, fm >= 0 ? r->lastp[fm] : 0, fm >= 0 ? &r->lastk[fm] : NULL, out);
    /* Still over the cap: send on all this destination holds (it continues
     * the sorted run: all of it lies above what went before), then start a
     * new run, which the destination keeps as a stream of its own. */
    if (st == LOOM_OK && !all && *held - (before - pending_bytes(r)) > cap &&
        pending_bytes(r) > 0) {
        st = release(eng, r, 1, 0, NULL, out);
        unsigned char hdr[12] = {0};
        uint32_t mark = MR_SEG_RUN_BREAK;
        memcpy(hdr, &mark, 4);
        if (st == LOOM_OK) st = loom_buf_append(eng->ctx, out, hdr, 12);
    }
    *held -= before - pending_bytes(r);
    return st;
}
