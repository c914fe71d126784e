/* Unit tests of the key/value store's ring (src/kv/ring.c): a key's order lists distinct
 * holders, the first n of them its homes, checked against a walk of the tokens; the ring is
 * the same when rebuilt and whatever order the slots are given in; weights set a holder's
 * share; and adding a holder moves only the keys it takes (consistent hashing). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv/kv_internal.h"
#include "loom_test.h"

static uint64_t rng = 0x72696e6774657374ULL;
static uint64_t next_rand(void)
{
    return loom_test_rand(&rng);
}

/* The order of hash h by walking the tokens: from the first token at or after h (wrapping),
 * each holder the first time it is met. */
static int walk_order(const kv_ring_t *r, uint64_t h, uint16_t *out, int max)
{
    uint32_t first = 0;
    while (first < r->ntok && r->pos[first] < h)
        first++;
    if (first == r->ntok) first = 0;
    int got = 0;
    for (uint32_t s = 0; s < r->ntok && got < max; s++) {
        uint16_t o = r->owner[(first + s) % r->ntok];
        int seen = 0;
        for (int i = 0; i < got && !seen; i++)
            seen = out[i] == o;
        if (!seen) out[got++] = o;
    }
    return got;
}

static void check_ring(const kv_ring_t *r, int nholders, int n)
{
    CU_ASSERT_EQUAL(r->nholders, nholders);
    CU_ASSERT_EQUAL(r->n, n < nholders ? n : nholders);
    CU_ASSERT_EQUAL(r->wlen, nholders < r->n + 32 ? nholders : r->n + 32);
    for (uint32_t i = 1; i < r->ntok; i++)
        CU_ASSERT(r->pos[i - 1] <= r->pos[i]);
    unsigned bad = 0;
    uint16_t ref[64];
    for (int trial = 0; trial < 3000; trial++) {
        uint64_t h = trial < 2 ? (trial ? UINT64_MAX : 0) : next_rand();
        if (trial % 7 == 3) h = r->pos[next_rand() % r->ntok] + (trial % 2); /* at a token */
        const uint16_t *o = kv_ring_order(r, h);
        /* distinct holders, all valid */
        for (int i = 0; i < r->wlen; i++) {
            bad += o[i] >= nholders;
            for (int j = 0; j < i; j++)
                bad += o[i] == o[j];
        }
        int got = walk_order(r, h, ref, r->wlen);
        bad += got != r->wlen;
        for (int i = 0; i < got; i++)
            bad += o[i] != ref[i];
        /* the first n are the homes */
        for (int k = 0; k < nholders; k++) {
            int home = 0;
            for (int i = 0; i < r->n; i++)
                home |= o[i] == k;
            bad += kv_ring_is_home(r, h, k) != home;
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
}

static void test_order(void)
{
    static const struct {
        int holders, n, vnodes;
    } cases[] = {{1, 3, 64}, {2, 3, 64}, {3, 3, 64}, {4, 3, 16}, {5, 2, 64},
                 {8, 3, 1},  {40, 3, 8}, {3, 1, 5},  {50, 5, 4}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        uint32_t slots[64];
        for (int i = 0; i < cases[c].holders; i++)
            slots[i] = (uint32_t)(i + 1);
        kv_ring_t r;
        CU_ASSERT_EQUAL_FATAL(
            kv_ring_build(&r, cases[c].holders, slots, NULL, cases[c].vnodes, cases[c].n), 0);
        CU_ASSERT_EQUAL(r.ntok, (uint32_t)(cases[c].holders * cases[c].vnodes));
        check_ring(&r, cases[c].holders, cases[c].n);
        kv_ring_free(&r);
    }
    /* a holder's order wraps: past the last token comes the first */
    uint32_t slots[3] = {1, 2, 3};
    kv_ring_t r;
    CU_ASSERT_EQUAL_FATAL(kv_ring_build(&r, 3, slots, NULL, 8, 2), 0);
    if (r.pos[r.ntok - 1] < UINT64_MAX)
        CU_ASSERT_PTR_EQUAL(kv_ring_order(&r, UINT64_MAX), kv_ring_order(&r, 0));
    CU_ASSERT_EQUAL(kv_ring_order(&r, r.pos[0])[0], r.owner[0]);
    if (r.pos[1] > r.pos[0] + 1) CU_ASSERT_EQUAL(kv_ring_order(&r, r.pos[0] + 1)[0], r.owner[1]);
    kv_ring_free(&r);
}

static void test_bad_args(void)
{
    uint32_t slots[2] = {1, 2};
    kv_ring_t r;
    CU_ASSERT_NOT_EQUAL(kv_ring_build(&r, 0, slots, NULL, 64, 3), 0);
    CU_ASSERT_NOT_EQUAL(kv_ring_build(&r, 2, slots, NULL, 0, 3), 0);
    kv_ring_free(&r); /* a failed build leaves a ring that can be freed */
}

static void test_deterministic(void)
{
    uint32_t slots[5] = {1, 2, 3, 4, 7};
    double w[5] = {1, 2, 1, 0.5, 1};
    kv_ring_t a, b, c;
    CU_ASSERT_EQUAL_FATAL(kv_ring_build(&a, 5, slots, w, 32, 3), 0);
    CU_ASSERT_EQUAL_FATAL(kv_ring_build(&b, 5, slots, w, 32, 3), 0);
    CU_ASSERT_EQUAL(a.ntok, b.ntok);
    CU_ASSERT_EQUAL(a.wlen, b.wlen);
    CU_ASSERT(memcmp(a.pos, b.pos, a.ntok * sizeof *a.pos) == 0);
    CU_ASSERT(memcmp(a.owner, b.owner, a.ntok * sizeof *a.owner) == 0);
    CU_ASSERT(memcmp(a.walk, b.walk, (size_t)a.ntok * (size_t)a.wlen * sizeof *a.walk) == 0);
    /* the slots in another order: the same holders (by slot) in the same order for any key */
    uint32_t perm[5] = {4, 7, 2, 1, 3};
    double wp[5] = {0.5, 1, 2, 1, 1};
    CU_ASSERT_EQUAL_FATAL(kv_ring_build(&c, 5, perm, wp, 32, 3), 0);
    CU_ASSERT_EQUAL(c.ntok, a.ntok);
    unsigned bad = 0;
    for (int t = 0; t < 20000; t++) {
        uint64_t h = next_rand();
        const uint16_t *oa = kv_ring_order(&a, h), *oc = kv_ring_order(&c, h);
        for (int i = 0; i < a.wlen; i++)
            bad += a.slot[oa[i]] != c.slot[oc[i]];
    }
    CU_ASSERT_EQUAL(bad, 0);
    kv_ring_free(&a);
    kv_ring_free(&b);
    kv_ring_free(&c);
}

/* Weights 1, 1, 2: the third holder is the first home of about half the keys. */
static void test_weights(void)
{
    uint32_t slots[3] = {1, 2, 3};
    double w[3] = {1, 1, 2};
    kv_ring_t r;
    CU_ASSERT_EQUAL_FATAL(kv_ring_build(&r, 3, slots, w, 256, 2), 0);
    /* tokens: vnodes * weight / mean weight */
    uint32_t count[3] = {0};
    for (uint32_t i = 0; i < r.ntok; i++)
        count[r.owner[i]]++;
    CU_ASSERT_EQUAL(count[0], 192);
    CU_ASSERT_EQUAL(count[1], 192);
    CU_ASSERT_EQUAL(count[2], 384);
    enum { SAMPLES = 100000 };
    unsigned first[3] = {0}, home[3] = {0};
    for (int t = 0; t < SAMPLES; t++) {
        uint64_t h = next_rand();
        first[kv_ring_order(&r, h)[0]]++;
        for (int k = 0; k < 3; k++)
            home[k] += kv_ring_is_home(&r, h, k);
    }
    double share = (double)first[2] / SAMPLES;
    printf("\n  weights 1,1,2: first-home shares %.3f %.3f %.3f\n", (double)first[0] / SAMPLES,
           (double)first[1] / SAMPLES, share);
    CU_ASSERT(fabs(share - 0.5) < 0.08);
    CU_ASSERT(fabs((double)first[0] / SAMPLES - 0.25) < 0.06);
    CU_ASSERT(fabs((double)first[1] / SAMPLES - 0.25) < 0.06);
    /* n = 2 homes of 3: every key has exactly two */
    CU_ASSERT_EQUAL(home[0] + home[1] + home[2], 2u * SAMPLES);
    kv_ring_free(&r);

    /* at least one token, even for a tiny weight */
    double tiny[3] = {1e-6, 1, 1};
    CU_ASSERT_EQUAL_FATAL(kv_ring_build(&r, 3, slots, tiny, 4, 3), 0);
    memset(count, 0, sizeof count);
    for (uint32_t i = 0; i < r.ntok; i++)
        count[r.owner[i]]++;
    CU_ASSERT_EQUAL(count[0], 1);
    check_ring(&r, 3, 3);
    kv_ring_free(&r);
}

/* Adding a holder to H: about 1/(H+1) of the keys change first home, all of them to the new
 * holder, and a key's other homes only shift to make room for it. */
static void test_consistent(void)
{
    static const int hs[] = {1, 2, 3, 4, 7};
    for (size_t c = 0; c < sizeof hs / sizeof hs[0]; c++) {
        int H = hs[c];
        uint32_t slots[16];
        for (int i = 0; i <= H; i++)
            slots[i] = (uint32_t)(i + 1);
        kv_ring_t before, after;
        CU_ASSERT_EQUAL_FATAL(kv_ring_build(&before, H, slots, NULL, 256, 3), 0);
        CU_ASSERT_EQUAL_FATAL(kv_ring_build(&after, H + 1, slots, NULL, 256, 3), 0);
        enum { SAMPLES = 100000 };
        unsigned moved = 0, elsewhere = 0, homes_bad = 0;
        for (int t = 0; t < SAMPLES; t++) {
            uint64_t h = next_rand();
            const uint16_t *ob = kv_ring_order(&before, h), *oa = kv_ring_order(&after, h);
            uint32_t sb = before.slot[ob[0]], sa = after.slot[oa[0]];
            if (sb != sa) {
                moved++;
                elsewhere += sa != slots[H];
            }
            /* the new order is the old one with the new holder inserted somewhere */
            int j = 0;
            for (int i = 0; i < after.wlen; i++) {
                if (after.slot[oa[i]] == slots[H]) continue;
                if (j < before.wlen && after.slot[oa[i]] != before.slot[ob[j]]) homes_bad++;
                j++;
            }
        }
        double frac = (double)moved / SAMPLES, want = 1.0 / (H + 1);
        printf("\n  %d -> %d holders: %.3f of first homes moved (1/(H+1) = %.3f)", H, H + 1, frac,
               want);
        CU_ASSERT(fabs(frac - want) < 0.05 + 0.15 * want);
        CU_ASSERT_EQUAL(elsewhere, 0);
        CU_ASSERT_EQUAL(homes_bad, 0);
        kv_ring_free(&before);
        kv_ring_free(&after);
    }
    printf("\n");
}

static void register_suites(void)
{
    static const CU_TestInfo ring[] = {
        {"order: distinct holders, first n homes", test_order},
        {"bad arguments", test_bad_args},
        {"deterministic, whatever the slot order", test_deterministic},
        {"weights 1,1,2", test_weights},
        {"adding a holder moves 1/(H+1)", test_consistent},
        {NULL, NULL},
    };
    loom_test_suite("kv ring", ring);
}

int main(int argc, char **argv)
{
    return loom_test_main(argc, argv, register_suites);
}
