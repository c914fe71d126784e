/* MPI tests of the data plane on its own: the record exchange in bounded rounds (every record
 * arrives once, an oversized record travels alone, a failing callback is agreed), the
 * two-level exchange over pretend nodes (sums equal the flat exchange's, less crosses nodes,
 * a failing unpack or combine is agreed), the halo
 * exchange (each rank gets exactly the values it named, as doubles and as floats, round after
 * round; a bad list is refused on every rank), the
 * partitioners against their documented rules, sorted runs merged k ways against qsort, and
 * the sweep of spill directories left by dead processes (and nothing else). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dataplane/dataplane.h"
#include "loom_test.h"

/* ------------------------------------------------------------------ exchange */

/* Records rank r sends to rank d: key "r:d:i" (lengths vary), value VLEN bytes starting
 * with i. A destination's records take more than one round's room (at least 64 KiB). */
static int sent_count(int r, int d)
{
    return 2000 + 370 * r + 110 * d;
}

#define VLEN 40
#define BIG_LEN 100000 /* one record, from rank 0 to the last rank, larger than a round's room */

typedef struct {
    int p, me;
    int *next; /* [dest] next record index */
    int big_sent;
    int *got;            /* [src] records received */
    unsigned char *seen; /* [src][i] */
    int seen_stride;
    int bad; /* records that did not parse or repeat */
    int big_got;
    int fail_rank; /* this rank's unpack fails (or -1) */
} xstate_t;

static size_t record_size(size_t klen, size_t vlen)
{
    unsigned char tmp[LOOM_RECORD_OVERHEAD];
    size_t h = (size_t)(loom_put_varint(loom_put_varint(tmp, klen), vlen) - tmp);
    return h + klen + vlen;
}

static loom_status_t pack(loom_exchange_t *x, void *user, int *more)
{
    xstate_t *s = user;
    size_t room = loom_exchange_room(x);
    *more = 0;
    for (int d = 0; d < s->p; d++) {
        if (s->me == 0 && d == s->p - 1 && !s->big_sent && loom_exchange_pending(x, d) == 0) {
            static unsigned char big[BIG_LEN];
            memset(big, 'B', sizeof big);
            LOOM_TRY(loom_exchange_put_record(x, d, "big", 3, big, sizeof big));
            s->big_sent = 1; /* alone in its segment this round */
        }
        while (s->next[d] < sent_count(s->me, d)) {
            char k[48];
            int kl = snprintf(k, sizeof k, "%d:%d:%0*d", s->me, d, 1 + s->next[d] % 7, s->next[d]);
            unsigned char v[VLEN];
            memset(v, 'v', sizeof v);
            memcpy(v, &(uint64_t){(uint64_t)s->next[d]}, 8);
            if (loom_exchange_pending(x, d) + record_size((size_t)kl, VLEN) > room) break;
            LOOM_TRY(loom_exchange_put_record(x, d, k, (size_t)kl, v, VLEN));
            s->next[d]++;
        }
        if (s->next[d] < sent_count(s->me, d)) *more = 1;
    }
    if (s->me == 0 && !s->big_sent) *more = 1;
    return LOOM_OK;
}

static loom_status_t unpack(loom_exchange_t *x, void *user, int src, const unsigned char *data,
                            size_t bytes)
{
    xstate_t *s = user;
    if (s->me == s->fail_rank)
        return LOOM_ERROR(loom_test_ctx, LOOM_ERR_FORMAT, "unpack on rank %d refuses", s->me);
    (void)x;
    const unsigned char *p = data, *end = data + bytes;
    while (p < end) {
        uint64_t kl, vl;
        p = loom_get_varint(p, end, &kl);
        if (p) p = loom_get_varint(p, end, &vl);
        if (!p || (uint64_t)(end - p) < kl + vl) {
            s->bad++;
            return LOOM_OK;
        }
        const char *k = (const char *)p;
        if (kl == 3 && !memcmp(k, "big", 3)) {
            s->big_got += src == 0 && vl == BIG_LEN;
        } else {
            char key[64] = {0};
            memcpy(key, k, kl < 63 ? kl : 63);
            int r = -1, d = -1, i = -1;
            uint64_t v = 0;
            memcpy(&v, p + kl, vl == VLEN ? 8 : 0);
            if (sscanf(key, "%d:%d:%d", &r, &d, &i) != 3 || r != src || d != s->me || vl != VLEN ||
                (uint64_t)i != v || i < 0 || i >= sent_count(src, s->me) ||
                s->seen[(size_t)src * (size_t)s->seen_stride + (size_t)i]++)
                s->bad++;
            else
                s->got[src]++;
        }
        p += kl + vl;
    }
    return LOOM_OK;
}

static void xstate_init(xstate_t *s, int p, int me)
{
    memset(s, 0, sizeof *s);
    s->p = p;
    s->me = me;
    s->fail_rank = -1;
    s->next = calloc((size_t)p, sizeof *s->next);
    s->got = calloc((size_t)p, sizeof *s->got);
    s->seen_stride = sent_count(p, p);
    s->seen = calloc((size_t)p * (size_t)s->seen_stride, 1);
}

static void xstate_free(xstate_t *s)
{
    free(s->next);
    free(s->got);
    free(s->seen);
}

static void test_exchange_rounds(void)
{
    loom_ctx_t *ctx = loom_test_ctx;
    /* The smallest room (64 KiB per destination) forces several rounds. */
    loom_exchange_opts_t o = {.among = LOOM_AMONG_JOB, .elem = 1, .budget = 4096, .max_room = 512};
    loom_exchange_t *x = NULL;
    CU_ASSERT_EQUAL_FATAL(loom_exchange_create(ctx, &o, &x), LOOM_OK);
    CU_ASSERT_EQUAL(loom_exchange_room(x), (size_t)64 << 10);
    int p = loom_exchange_size(x), me = loom_exchange_rank(x);
    CU_ASSERT_EQUAL(p, loom_size(ctx));
    xstate_t s;
    xstate_init(&s, p, me);
    CU_ASSERT_EQUAL(loom_exchange_run(x, pack, unpack, &s), LOOM_OK);
    CU_ASSERT_EQUAL(s.bad, 0);
    for (int src = 0; src < p; src++)
        CU_ASSERT_EQUAL(s.got[src], sent_count(src, me));
    CU_ASSERT_EQUAL(s.big_got, me == p - 1 ? 1 : 0);
    /* every byte this rank put is counted once; rounds are the same everywhere */
    uint64_t want = 0;
    for (int d = 0; d < p; d++)
        for (int i = 0; i < sent_count(me, d); i++) {
            char k[48];
            int kl = snprintf(k, sizeof k, "%d:%d:%0*d", me, d, 1 + i % 7, i);
            want += record_size((size_t)kl, VLEN);
        }
    if (me == 0) want += record_size(3, BIG_LEN);
    CU_ASSERT_EQUAL(loom_exchange_bytes_sent(x), want);
    uint64_t rounds = loom_exchange_rounds(x), lo = 0, hi = 0;
    MPI_Allreduce(&rounds, &lo, 1, MPI_UINT64_T, MPI_MIN, loom_comm(ctx));
    MPI_Allreduce(&rounds, &hi, 1, MPI_UINT64_T, MPI_MAX, loom_comm(ctx));
    CU_ASSERT_EQUAL(lo, hi);
    CU_ASSERT(rounds > 1);
    xstate_free(&s);
    loom_exchange_destroy(&x);
}

static void test_exchange_failure_agreed(void)
{
    loom_ctx_t *ctx = loom_test_ctx;
    loom_exchange_opts_t o = {.among = LOOM_AMONG_JOB, .elem = 1, .budget = 4096, .max_room = 512};
    loom_exchange_t *x = NULL;
    CU_ASSERT_EQUAL_FATAL(loom_exchange_create(ctx, &o, &x), LOOM_OK);
    xstate_t s;
    xstate_init(&s, loom_exchange_size(x), loom_exchange_rank(x));
    s.fail_rank = s.p - 1;
    loom_error_clear(ctx);
    CU_ASSERT_EQUAL(loom_exchange_run(x, pack, unpack, &s), LOOM_ERR_FORMAT);
    char want[64];
    snprintf(want, sizeof want, "unpack on rank %d refuses", s.p - 1);
    CU_ASSERT_STRING_EQUAL(loom_error_message(ctx), want);
    loom_error_clear(ctx);
    xstate_free(&s);
    loom_exchange_destroy(&x);
}

/* ------------------------------------------------------------------ two-level exchange */

/* Rank r sends destination d the keys d * 100000 + j (j < TL_KEYS, skipping
 * those with (j + r) % 3 == 0), each with value r + 1 + j, as 16-byte records.
 * Ranks share most keys, so a relay has something to combine; a destination's
 * records take more than one round's room (64 KiB). */
#define TL_KEYS 9000

static int tl_sends(int r, int j)
{
    return (j + r) % 3 != 0;
}

typedef struct {
    int p, me, fail_rank, fail_combine;
    int hold;          /* the relay holds everything back until the last round */
    loom_buf_t *held;  /* [p] with hold: what a relay keeps per destination */
    int after_last;    /* combine calls for a destination after its last one */
    uint8_t *was_last; /* [p] */
    int *next;
    uint64_t *sum; /* [TL_KEYS] received for this rank's keys */
    uint64_t recs, bad;
} tlstate_t;

static loom_status_t tl_pack(loom_exchange_t *x, void *user, int *more)
{
    tlstate_t *s = user;
    size_t room = loom_exchange_room(x);
    *more = 0;
    for (int d = 0; d < s->p; d++) {
        for (; s->next[d] < TL_KEYS; s->next[d]++) {
            int j = s->next[d];
            if (!tl_sends(s->me, j)) continue;
            if (loom_exchange_pending(x, d) + 16 > room) break;
            uint64_t rec[2] = {(uint64_t)d * 100000 + (uint64_t)j, (uint64_t)(s->me + 1 + j)};
            LOOM_TRY(loom_exchange_put(x, d, rec, sizeof rec));
        }
        if (s->next[d] < TL_KEYS) *more = 1;
    }
    return LOOM_OK;
}

static int tl_cmp(const void *a, const void *b)
{
    uint64_t x, y;
    memcpy(&x, a, 8);
    memcpy(&y, b, 8);
    return x < y ? -1 : x > y;
}

/* At a relay: the node's records for one destination, summed per key. */
static loom_status_t tl_combine(loom_exchange_t *x, void *user, int dest, int nseg,
                                const unsigned char *const *seg, const size_t *len, int last,
                                loom_buf_t *out)
{
    tlstate_t *s = user;
    (void)x;
    if (s->me == s->fail_combine)
        return LOOM_ERROR(loom_test_ctx, LOOM_ERR_FORMAT, "combine on rank %d refuses", s->me);
    if (s->was_last[dest]) s->after_last++;
    s->was_last[dest] |= last != 0;
    size_t before = out->len;
    if (s->hold) {
        /* keep the node's records until the last round, then fold them all */
        for (int m = 0; m < nseg; m++)
            LOOM_TRY(loom_buf_append(loom_test_ctx, &s->held[dest], seg[m], len[m]));
        if (!last) return LOOM_OK;
        LOOM_TRY(loom_buf_append(loom_test_ctx, out, s->held[dest].data, s->held[dest].len));
        loom_buf_free(&s->held[dest]);
    } else {
        for (int m = 0; m < nseg; m++)
            LOOM_TRY(loom_buf_append(loom_test_ctx, out, seg[m], len[m]));
    }
    size_t n = (out->len - before) / 16, k = 0;
    uint64_t *r = (uint64_t *)(void *)(out->data + before);
    qsort(r, n, 16, tl_cmp);
    for (size_t i = 0; i < n; i++) {
        if (k && r[2 * (k - 1)] == r[2 * i])
            r[2 * (k - 1) + 1] += r[2 * i + 1];
        else {
            r[2 * k] = r[2 * i];
            r[2 * k + 1] = r[2 * i + 1];
            k++;
        }
    }
    out->len = before + k * 16;
    return LOOM_OK;
}

static loom_status_t tl_unpack(loom_exchange_t *x, void *user, int src, const unsigned char *data,
                               size_t bytes)
{
    tlstate_t *s = user;
    (void)x;
    (void)src;
    if (s->me == s->fail_rank)
        return LOOM_ERROR(loom_test_ctx, LOOM_ERR_FORMAT, "unpack on rank %d refuses", s->me);
    for (size_t i = 0; i + 16 <= bytes; i += 16) {
        uint64_t rec[2];
        memcpy(rec, data + i, 16);
        uint64_t j = rec[0] - (uint64_t)s->me * 100000;
        if (rec[0] < (uint64_t)s->me * 100000 || j >= TL_KEYS)
            s->bad++;
        else
            s->sum[j] += rec[1];
        s->recs++;
    }
    return LOOM_OK;
}

/* One exchange of the keys above with the given grouping; returns its
 * status and, summed over the ranks, the bytes that crossed nodes and the
 * records received. */
static loom_status_t tl_run(int node_ranks, int two_level, int fail_rank, int fail_combine,
                            int hold, uint64_t *offnode, uint64_t *recs, int *levels, int *nodes)
{
    loom_ctx_t *ctx = loom_test_ctx;
    loom_set_nodes(ctx, node_ranks, two_level);
    loom_exchange_opts_t o = {.among = LOOM_AMONG_JOB,
                              .elem = 16,
                              .budget = 4096,
                              .max_room = 512,
                              .combine = tl_combine};
    loom_exchange_t *x = NULL;
    loom_status_t st = loom_exchange_create(ctx, &o, &x);
    loom_set_nodes(ctx, 0, -1);
    CU_ASSERT_EQUAL_FATAL(st, LOOM_OK);
    tlstate_t s = {.p = loom_exchange_size(x),
                   .me = loom_exchange_rank(x),
                   .fail_rank = fail_rank,
                   .fail_combine = fail_combine,
                   .hold = hold};
    s.next = calloc((size_t)s.p, sizeof *s.next);
    s.sum = calloc(TL_KEYS, sizeof *s.sum);
    s.held = calloc((size_t)s.p, sizeof *s.held);
    s.was_last = calloc((size_t)s.p, 1);
    CU_ASSERT_FATAL(s.next && s.sum && s.held && s.was_last);
    loom_error_clear(ctx);
    st = loom_exchange_run(x, tl_pack, tl_unpack, &s);
    if (st == LOOM_OK) {
        CU_ASSERT_EQUAL(s.bad, 0);
        for (int j = 0; j < TL_KEYS; j++) {
            uint64_t want = 0;
            for (int r = 0; r < s.p; r++)
                if (tl_sends(r, j)) want += (uint64_t)(r + 1 + j);
            if (s.sum[j] != want) {
                CU_FAIL("a key's sum differs");
                break;
            }
        }
        uint64_t b, m;
        loom_exchange_offnode(x, &b, &m);
        uint64_t loc[2] = {b, s.recs}, tot[2];
        MPI_Allreduce(loc, tot, 2, MPI_UINT64_T, MPI_SUM, loom_comm(ctx));
        *offnode = tot[0];
        *recs = tot[1];
        *levels = loom_exchange_levels(x);
        *nodes = loom_exchange_nodes(x);
        CU_ASSERT(loom_exchange_rounds(x) > 1);
    }
    /* `last` comes once per destination, in the final round */
    CU_ASSERT_EQUAL(s.after_last, 0);
    for (int d = 0; d < s.p; d++)
        loom_buf_free(&s.held[d]);
    free(s.held);
    free(s.was_last);
    free(s.next);
    free(s.sum);
    loom_exchange_destroy(&x);
    return st;
}

static void test_two_level(void)
{
    int p = loom_size(loom_test_ctx);
    for (int k = 1; k <= 3; k++) {
        uint64_t off1 = 0, rec1 = 0, off2 = 0, rec2 = 0;
        int lv1 = 0, lv2 = 0, n1 = 0, n2 = 0;
        CU_ASSERT_EQUAL(tl_run(k, 0, -1, -1, 0, &off1, &rec1, &lv1, &n1), LOOM_OK);
        CU_ASSERT_EQUAL(tl_run(k, 1, -1, -1, 0, &off2, &rec2, &lv2, &n2), LOOM_OK);
        int nodes = (p + k - 1) / k;
        CU_ASSERT_EQUAL(n1, nodes);
        CU_ASSERT_EQUAL(n2, nodes);
        CU_ASSERT_EQUAL(lv1, 1);
        CU_ASSERT_EQUAL(lv2, 2);
        /* flat: every record crosses as sent */
        uint64_t want_off = 0;
        for (int r = 0; r < p; r++)
            for (int d = 0; d < p; d++)
                if (r / k != d / k)
                    for (int j = 0; j < TL_KEYS; j++)
                        want_off += tl_sends(r, j) ? 16 : 0;
        CU_ASSERT_EQUAL(off1, want_off);
        /* two levels: a node's equal keys cross once per round, so less
         * crosses where a node holds more than one rank */
        if (k > 1 && nodes > 1) {
            CU_ASSERT(off2 < off1);
            CU_ASSERT(rec2 < rec1);
        } else {
            CU_ASSERT(off2 <= off1);
        }
        /* relays that hold everything back to the last round: the same sums,
         * and a node's keys cross once in all */
        uint64_t off3 = 0, rec3 = 0;
        CU_ASSERT_EQUAL(tl_run(k, 1, -1, -1, 1, &off3, &rec3, &lv2, &n2), LOOM_OK);
        CU_ASSERT(off3 <= off2);
    }
    /* auto: flat with all ranks on one node, and with every rank on its own */
    uint64_t off = 0, rec = 0;
    int lv = 0, n = 0;
    CU_ASSERT_EQUAL(tl_run(p, -1, -1, -1, 0, &off, &rec, &lv, &n), LOOM_OK);
    CU_ASSERT_EQUAL(lv, 1);
    CU_ASSERT_EQUAL(off, 0);
    CU_ASSERT_EQUAL(tl_run(1, -1, -1, -1, 0, &off, &rec, &lv, &n), LOOM_OK);
    CU_ASSERT_EQUAL(lv, 1);
    CU_ASSERT_EQUAL(n, p);
    if (p > 2) {
        CU_ASSERT_EQUAL(tl_run(2, -1, -1, -1, 0, &off, &rec, &lv, &n), LOOM_OK);
        CU_ASSERT_EQUAL(lv, 2);
    }
}

static void test_two_level_failure_agreed(void)
{
    loom_ctx_t *ctx = loom_test_ctx;
    int p = loom_size(ctx);
    uint64_t off, rec;
    int lv, n;
    char want[64];
    /* a failing unpack on the last rank, then a failing combine on the first */
    CU_ASSERT_EQUAL(tl_run(2, 1, p - 1, -1, 0, &off, &rec, &lv, &n), LOOM_ERR_FORMAT);
    snprintf(want, sizeof want, "unpack on rank %d refuses", p - 1);
    CU_ASSERT_STRING_EQUAL(loom_error_message(ctx), want);
    CU_ASSERT_EQUAL(tl_run(2, 1, -1, 0, 0, &off, &rec, &lv, &n), LOOM_ERR_FORMAT);
    CU_ASSERT_STRING_EQUAL(loom_error_message(ctx), "combine on rank 0 refuses");
    loom_error_clear(ctx);
}

/* ------------------------------------------------------------------ halo exchange */

/* Ranges of uneven sizes (rank 0 owns none when there are several), and a value per id. */
static void halo_bounds(int p, uint64_t *b)
{
    b[0] = 0;
    for (int r = 0; r < p; r++)
        b[r + 1] = b[r] + (p > 1 && r == 0 ? 0 : 1000 + 300 * (uint64_t)r);
}

static double halo_value(uint64_t id, int round)
{
    return (double)id * 0.5 + round + 1.0 / 3.0;
}

/* One halo over pretend nodes of node_ranks ranks (0: the real node), its
 * rounds into caller's memory and into the halo's buffer (shared by the ranks
 * of a node) alternated; 8-byte and float values. */
static void halo_rounds(int node_ranks, int near_only)
{
    loom_ctx_t *ctx = loom_test_ctx;
    loom_set_nodes(ctx, node_ranks, -1);
    int p = loom_size(ctx), me = loom_rank(ctx);
    int kn = node_ranks > 0 ? node_ranks : p, n0 = me / kn * kn;
    uint64_t *b = malloc(((size_t)p + 1) * sizeof *b);
    halo_bounds(p, b);
    /* every (me + 2)-th id, its own among them, and the last id of every
     * range; or (near_only) the same from the ranges of this rank's node only,
     * except that the last rank also needs rank 1's first id: some ranks then
     * talk across nodes and others not at all */
    uint64_t *need = malloc((b[p] + 1) * sizeof *need);
    size_t nneed = 0;
    for (uint64_t id = 0; id < b[p]; id++) {
        int last = 0, owner = 0;
        for (int r = 0; r < p; r++) {
            last |= b[r + 1] > b[r] && id == b[r + 1] - 1;
            if (id >= b[r + 1]) owner = r + 1;
        }
        int near = owner >= n0 && owner < n0 + kn;
        int far_one = me == p - 1 && p > 1 && id == b[1] && b[2] > b[1];
        if (near_only ? (near && (id % (uint64_t)(me + 2) == 0 || last)) || far_one
                      : id % (uint64_t)(me + 2) == 0 || last)
            need[nneed++] = id;
    }
    uint64_t mine = b[me + 1] - b[me];
    double *local = malloc((mine + 1) * sizeof *local);
    double *out = malloc((nneed + 1) * sizeof *out);
    float *out32 = malloc((nneed + 1) * sizeof *out32);
    loom_halo_t *h = NULL, *h32 = NULL;
    CU_ASSERT_EQUAL_FATAL(loom_halo_create(ctx, loom_comm(ctx), b, need, nneed, 8, 0, &h), LOOM_OK);
    CU_ASSERT_EQUAL_FATAL(loom_halo_create(ctx, loom_comm(ctx), b, need, nneed, 4, 0, &h32),
                          LOOM_OK);
    CU_ASSERT_EQUAL(loom_halo_received(h), nneed);
    /* what comes through shared memory is what the node's ranks hold; with
     * node_ranks K, this rank's node is ranks [me / K * K, me / K * K + K) */
    size_t near = 0;
    for (size_t i = 0; i < nneed; i++) {
        int r = 0;
        while (need[i] >= b[r + 1])
            r++;
        near += r / kn == me / kn;
    }
    int alone = (p - n0 < kn ? p - n0 : kn) == 1;
    CU_ASSERT_EQUAL(loom_halo_received_shared(h), alone ? 0 : near);
    CU_ASSERT_EQUAL(loom_halo_received_shared(h32), alone ? 0 : near);
    CU_ASSERT_PTR_NOT_NULL(loom_halo_buffer(h));
    /* what this rank sends, summed over ranks, is what they receive */
    unsigned long long sums[2] = {loom_halo_sent(h), loom_halo_received(h)};
    MPI_Allreduce(MPI_IN_PLACE, sums, 2, MPI_UNSIGNED_LONG_LONG, MPI_SUM, loom_comm(ctx));
    CU_ASSERT_EQUAL(sums[0], sums[1]);
    int bad = 0;
    for (int round = 0; round < 6; round++) {
        /* odd rounds into the halo's own buffers */
        double *o = round % 2 ? loom_halo_buffer(h) : out;
        float *o32 = round % 2 ? loom_halo_buffer(h32) : out32;
        for (uint64_t i = 0; i < mine; i++)
            local[i] = halo_value(b[me] + i, round);
        if (round % 2 == 0)
            for (size_t i = 0; i < nneed; i++) {
                o[i] = -1.0;
                o32[i] = -1.0f;
            }
        CU_ASSERT_EQUAL(loom_halo_exchange(h, local, o), LOOM_OK);
        CU_ASSERT_EQUAL(loom_halo_exchange_f32(h32, local, o32), LOOM_OK);
        for (size_t i = 0; i < nneed; i++) {
            bad += o[i] != halo_value(need[i], round);
            bad += o32[i] != (float)halo_value(need[i], round);
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
    /* a float round over 8-byte elements is refused */
    loom_error_clear(ctx);
    CU_ASSERT_EQUAL(loom_halo_exchange_f32(h, local, out32), LOOM_ERR_INTERNAL);
    loom_error_clear(ctx);
    loom_halo_destroy(&h);
    loom_halo_destroy(&h32);
    CU_ASSERT_PTR_NULL(h);
    loom_halo_destroy(NULL);
    free(b);
    free(need);
    free(local);
    free(out);
    free(out32);
    loom_set_nodes(ctx, 0, -1);
}

static void test_halo(void)
{
    for (int k = 0; k <= 3; k++) {
        halo_rounds(k, 0);
        halo_rounds(k, 1);
    }
}

/* A list that is not ascending, or names an id nobody owns, on the last rank only: every
 * rank returns the usage error and no halo. */
static void test_halo_bad_list(void)
{
    loom_ctx_t *ctx = loom_test_ctx;
    int p = loom_size(ctx), me = loom_rank(ctx);
    uint64_t *b = malloc(((size_t)p + 1) * sizeof *b);
    halo_bounds(p, b);
    for (int which = 0; which < 2; which++) {
        uint64_t need[2] = {5, 3};
        if (which == 1) {
            need[0] = 1;
            need[1] = b[p]; /* one past the last id */
        }
        size_t n = me == p - 1 ? 2 : 0;
        loom_halo_t *h = NULL;
        loom_error_clear(ctx);
        CU_ASSERT_EQUAL(loom_halo_create(ctx, loom_comm(ctx), b, need, n, 8, 0, &h),
                        LOOM_ERR_USAGE);
        CU_ASSERT_PTR_NULL(h);
        if (me == p - 1)
            CU_ASSERT_PTR_NOT_NULL(strstr(loom_error_message(ctx),
                                          which == 0 ? "not ascending" : "outside every range"));
        loom_error_clear(ctx);
    }
    free(b);
}

/* ------------------------------------------------------------------ partitioners */

static void test_hash_partition(void)
{
    const uint32_t nparts = 7;
    int count[7] = {0};
    const int n = 70000;
    for (int i = 0; i < n; i++) {
        char k[16];
        int kl = snprintf(k, sizeof k, "w%d", i);
        uint32_t part = loom_part_hash(k, (size_t)kl, nparts);
        CU_ASSERT_FATAL(part < nparts);
        CU_ASSERT_EQUAL(part, loom_part_of_hash(loom_key_hash(k, (size_t)kl), nparts));
        count[part]++;
    }
    for (uint32_t q = 0; q < nparts; q++) /* within 5% of n / nparts */
        CU_ASSERT(abs(count[q] - n / (int)nparts) < n / (int)nparts / 20);
    /* the high bits decide: the extremes of the hash go to the first and last part */
    CU_ASSERT_EQUAL(loom_part_of_hash(0, nparts), 0);
    CU_ASSERT_EQUAL(loom_part_of_hash(UINT64_MAX, nparts), nparts - 1);
}

static void test_ranges(void)
{
    loom_ctx_t *ctx = loom_test_ctx;
    /* rank 0's sample: "0000".."0999" shuffled, each twice; the boundaries are the keys at
     * i * count / nparts of the sorted sample: "0250", "0500", "0750" */
    loom_ranges_t r = {0};
    loom_status_t st = LOOM_OK;
    if (loom_rank(ctx) == 0) {
        loom_buf_t sample = {0};
        for (int i = 0; i < 2000; i++) {
            char k[8];
            snprintf(k, sizeof k, "%04d", (i * 379) % 1000);
            st = loom_buf_put_record(ctx, &sample, k, 4, NULL, 0);
            if (st != LOOM_OK) break;
        }
        if (st == LOOM_OK) st = loom_ranges_from_sample(ctx, &sample, 4, &r);
        loom_buf_free(&sample);
    }
    CU_ASSERT_EQUAL_FATAL(st, LOOM_OK);
    CU_ASSERT_EQUAL_FATAL(loom_ranges_bcast(ctx, loom_comm(ctx), 0, &r), LOOM_OK);
    CU_ASSERT_EQUAL_FATAL(r.n, 3);
    CU_ASSERT_EQUAL(loom_ranges_part(&r, "0249", 4), 0);
    CU_ASSERT_EQUAL(loom_ranges_part(&r, "0250", 4), 1);
    CU_ASSERT_EQUAL(loom_ranges_part(&r, "0749", 4), 2);
    CU_ASSERT_EQUAL(loom_ranges_part(&r, "0750", 4), 3);
    CU_ASSERT_EQUAL(loom_ranges_part(&r, "", 0), 0);
    CU_ASSERT_EQUAL(loom_ranges_part(&r, "zzzz", 4), 3);
    CU_ASSERT_EQUAL(loom_ranges_part(&r, "025", 3), 0); /* a prefix sorts before */
    uint32_t prev = 0;
    for (int i = 0; i < 1000; i++) { /* keys in order land in nondecreasing parts */
        char k[8];
        snprintf(k, sizeof k, "%04d", i);
        uint32_t q = loom_ranges_part(&r, k, 4);
        CU_ASSERT(q >= prev && q < 4);
        prev = q;
    }
    loom_ranges_free(&r);
}

static void test_vertex_ranges(void)
{
    enum { N = 1000, PARTS = 5 };
    uint64_t outd[N], ind[N], bounds[PARTS + 1];
    double total = 0;
    for (int v = 0; v < N; v++) {
        outd[v] = (uint64_t)((v * 7919) % 97); /* a few heavy vertices among light ones */
        ind[v] = v % 50 == 0 ? 400 : 1;
    }
    double vw = loom_vertex_ranges(outd, ind, N, PARTS, 1.0, bounds);
    CU_ASSERT_DOUBLE_EQUAL(vw, 1.0, 0);
    CU_ASSERT_EQUAL(bounds[0], 0);
    CU_ASSERT_EQUAL(bounds[PARTS], N);
    double maxc = 0;
    for (int v = 0; v < N; v++) {
        double c = (double)(outd[v] + ind[v]) + 1.0;
        total += c;
        if (c > maxc) maxc = c;
    }
    for (int i = 0; i < PARTS; i++) {
        CU_ASSERT(bounds[i] <= bounds[i + 1]);
        double c = 0;
        for (uint64_t v = bounds[i]; v < bounds[i + 1]; v++)
            c += (double)(outd[v] + ind[v]) + 1.0;
        CU_ASSERT(c <= total / PARTS + maxc); /* balanced up to one vertex */
    }
    for (uint64_t v = 0; v < N; v++) {
        int o = loom_vertex_owner(bounds, PARTS, v);
        CU_ASSERT(bounds[o] <= v && v < bounds[o + 1]);
    }
}

/* ------------------------------------------------------------------ runs and merge */

typedef struct {
    uint64_t key, val;
} kv_t;

static int kv_cmp(const void *a, const void *b)
{
    const kv_t *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return x->val < y->val ? -1 : x->val > y->val;
}

static void be64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

static uint64_t get_be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static void test_runs_merge(void)
{
    loom_ctx_t *ctx = loom_test_ctx;
    enum { RUNS = 5, PER = 3000, PARTS = 3 };
    loom_spill_dir_t sd;
    CU_ASSERT_EQUAL_FATAL(loom_spill_dir_create(ctx, loom_test_tmpdir(), "test", &sd), LOOM_OK);
    kv_t *all = malloc(sizeof *all * RUNS * PER);
    loom_run_t runs[RUNS];
    uint64_t seed = 0x9e3779b97f4a7c15ULL * (uint64_t)(loom_rank(ctx) + 1);
    for (int r = 0; r < RUNS; r++) {
        kv_t *mine = all + r * PER;
        for (int i = 0; i < PER; i++) {
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            mine[i].key = (seed >> 33) % 5000; /* many duplicates across runs */
            mine[i].val = (uint64_t)(r * PER + i);
        }
        /* a section per key range (key % PARTS would not be ordered) */
        qsort(mine, PER, sizeof *mine, kv_cmp);
        loom_run_writer_t w;
        CU_ASSERT_EQUAL_FATAL(loom_run_create(ctx, sd.path, "run", PARTS, &w), LOOM_OK);
        for (int i = 0; i < PER; i++) {
            unsigned char k[8], v[8];
            be64(k, mine[i].key);
            be64(v, mine[i].val);
            loom_run_section(&w, (int)(mine[i].key * PARTS / 5000));
            CU_ASSERT_EQUAL_FATAL(loom_run_put(&w, k, 8, v, 8), LOOM_OK);
        }
        CU_ASSERT_EQUAL_FATAL(loom_run_finish(&w, &runs[r]), LOOM_OK);
    }
    qsort(all, RUNS * PER, sizeof *all, kv_cmp);
    size_t at = 0;
    for (int part = 0; part < PARTS; part++) {
        loom_reader_t rd[RUNS], *prd[RUNS];
        for (int r = 0; r < RUNS; r++) {
            prd[r] = &rd[r];
            CU_ASSERT_EQUAL_FATAL(loom_reader_file(ctx, &rd[r], runs[r].path, runs[r].off[part],
                                                   runs[r].off[part + 1] - runs[r].off[part]),
                                  LOOM_OK);
            CU_ASSERT_EQUAL_FATAL(loom_reader_next(ctx, &rd[r]), LOOM_OK);
        }
        loom_merge_t m;
        CU_ASSERT_EQUAL_FATAL(loom_merge_init(ctx, &m, prd, RUNS, 1), LOOM_OK);
        for (loom_reader_t *t; (t = loom_merge_top(&m));) {
            CU_ASSERT_FATAL(at < (size_t)RUNS * PER && t->klen == 8 && t->vlen == 8);
            /* merged by key then value: exactly qsort's order of all the records */
            CU_ASSERT_EQUAL(get_be64(t->key), all[at].key);
            CU_ASSERT_EQUAL(get_be64(t->val), all[at].val);
            CU_ASSERT_EQUAL((int)(all[at].key * PARTS / 5000), part);
            at++;
            CU_ASSERT_EQUAL_FATAL(loom_merge_pop(ctx, &m), LOOM_OK);
        }
        loom_merge_free(&m);
        for (int r = 0; r < RUNS; r++)
            loom_reader_close(&rd[r]);
    }
    CU_ASSERT_EQUAL(at, (size_t)RUNS * PER);
    for (int r = 0; r < RUNS; r++)
        loom_run_free(&runs[r]);
    struct stat sb;
    char *path = strdup(sd.path);
    loom_spill_dir_remove(ctx, &sd);
    CU_ASSERT_NOT_EQUAL(stat(path, &sb), 0);
    free(path);
    free(all);
}

/* ------------------------------------------------------------------ spill sweep */

static void test_spill_sweep(void)
{
    loom_ctx_t *ctx = loom_test_ctx;
    char base[512], dead[600], live[600], other[600], file[700];
    snprintf(base, sizeof base, "%s/sweep-%d", loom_test_tmpdir(), loom_rank(ctx));
    mkdir(base, 0700);
    /* a pid that is gone: a child that has exited and been reaped */
    pid_t child = fork();
    if (child == 0) _exit(0);
    CU_ASSERT_FATAL(child > 0);
    waitpid(child, NULL, 0);
    const char *host = loom_hostname(ctx);
    snprintf(dead, sizeof dead, "%s/loom-%s-%ld-mr-0", base, host, (long)child);
    snprintf(live, sizeof live, "%s/loom-%s-%ld-mr-0", base, host, (long)getppid());
    snprintf(other, sizeof other, "%s/loom-otherhost-%ld-mr-0", base, (long)child);
    const char *dirs[] = {dead, live, other};
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL_FATAL(mkdir(dirs[i], 0700), 0);
        snprintf(file, sizeof file, "%s/run-1", dirs[i]);
        FILE *f = fopen(file, "w");
        CU_ASSERT_PTR_NOT_NULL_FATAL(f);
        fputs("spill\n", f);
        fclose(f);
    }
    snprintf(file, sizeof file, "%s/users-data.txt", base); /* not Loom's: never touched */
    FILE *f = fopen(file, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fclose(f);
    CU_ASSERT_EQUAL(loom_spill_sweep(ctx, base), LOOM_OK);
    struct stat sb;
    CU_ASSERT_NOT_EQUAL(stat(dead, &sb), 0);
    CU_ASSERT_EQUAL(stat(live, &sb), 0);
    CU_ASSERT_EQUAL(stat(other, &sb), 0);
    CU_ASSERT_EQUAL(stat(file, &sb), 0);
    for (int i = 1; i < 3; i++)
        loom_remove_tree(dirs[i]);
    unlink(file);
    rmdir(base);
}

static void register_suites(void)
{
    static const CU_TestInfo tests[] = {
        {"exchange in rounds", test_exchange_rounds},
        {"exchange failure agreed", test_exchange_failure_agreed},
        {"two-level exchange: sums as flat, less between nodes", test_two_level},
        {"two-level exchange: failures agreed", test_two_level_failure_agreed},
        {"halo exchange", test_halo},
        {"halo: a bad list refused everywhere", test_halo_bad_list},
        {"hash partition", test_hash_partition},
        {"ordered ranges", test_ranges},
        {"vertex ranges", test_vertex_ranges},
        {"runs and k-way merge", test_runs_merge},
        {"spill sweep", test_spill_sweep},
        {NULL, NULL},
    };
    loom_test_suite("data plane", tests);
}

int main(int argc, char **argv)
{
    return loom_test_main(argc, argv, register_suites);
}
