/* Unit tests of the key/value store's versions (src/kv/version.c): dotted version vectors
 * (clocks raised, joined and read), their text form (format and parse, malformed contexts),
 * coverage, sibling sets as a lattice (merge idempotent, commutative and associative on random
 * causal histories, checked against a reference reconciliation), the latest live sibling, and
 * the binary encoding (round trips, every truncation, random byte flips, max_value). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv/kv_internal.h"
#include "loom_test.h"

/* ------------------------------------------------------------------ helpers */

static uint64_t rng = 0x6b7676657273696fULL;
static uint64_t next_rand(void)
{
    return loom_test_rand(&rng);
}
static uint64_t rand_below(uint64_t n)
{
    return n ? next_rand() % n : 0;
}

static kv_dot_t dot(uint32_t node, uint64_t counter)
{
    return (kv_dot_t){node, counter};
}

/* A clock from (node, counter) pairs given in any order (through kv_clock_raise). */
static kv_clock_t clock_of(int n, const uint64_t *pairs)
{
    kv_clock_t c = {0};
    for (int i = 0; i < n; i++)
        CU_ASSERT_EQUAL(kv_clock_raise(&c, dot((uint32_t)pairs[2 * i], pairs[2 * i + 1])), 0);
    return c;
}

static int clock_eq(const kv_clock_t *a, const kv_clock_t *b)
{
    if (a->n != b->n) return 0;
    for (uint32_t i = 0; i < a->n; i++)
        if (a->e[i].node != b->e[i].node || a->e[i].counter != b->e[i].counter) return 0;
    return 1;
}

/* Entries sorted by node, no repeats, no zero counter. */
static int clock_valid(const kv_clock_t *c)
{
    for (uint32_t i = 0; i < c->n; i++) {
        if (c->e[i].counter == 0) return 0;
        if (i && c->e[i].node <= c->e[i - 1].node) return 0;
    }
    return 1;
}

/* A version (its value derived from the dot, so that one write always has one value). */
static kv_version_t make_version(kv_dot_t d, const kv_clock_t *ctx, uint64_t ts, int dead)
{
    kv_version_t v = {.dot = d, .ts = ts, .dead = dead};
    if (ctx && ctx->n) {
        v.ctx.e = malloc(ctx->n * sizeof *v.ctx.e);
        CU_ASSERT_PTR_NOT_NULL_FATAL(v.ctx.e);
        memcpy(v.ctx.e, ctx->e, ctx->n * sizeof *v.ctx.e);
        v.ctx.n = ctx->n;
    }
    if (!dead) {
        v.len = (uint32_t)((d.node * 7 + d.counter) % 23);
        if (v.len) {
            v.val = malloc(v.len);
            CU_ASSERT_PTR_NOT_NULL_FATAL(v.val);
            for (uint32_t i = 0; i < v.len; i++)
                v.val[i] = (unsigned char)(d.node * 31 + d.counter * 17 + i);
        }
    }
    return v;
}

/* Merge one version (copied) into s; the merge's return value. */
static int merge_one(kv_sibs_t *s, const kv_version_t *v)
{
    kv_sibs_t one = {1, (kv_version_t *)v};
    return kv_sibs_merge(s, &one);
}

static int cmp_dot(const void *a, const void *b)
{
    const kv_version_t *x = *(const kv_version_t *const *)a, *y = *(const kv_version_t *const *)b;
    if (x->dot.node != y->dot.node) return x->dot.node < y->dot.node ? -1 : 1;
    if (x->dot.counter != y->dot.counter) return x->dot.counter < y->dot.counter ? -1 : 1;
    return 0;
}

/* Versions of s sorted by dot (pointers into s). */
static const kv_version_t **sorted(const kv_sibs_t *s)
{
    const kv_version_t **p = malloc((s->n ? s->n : 1) * sizeof *p);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    for (uint32_t i = 0; i < s->n; i++)
        p[i] = &s->v[i];
    qsort(p, s->n, sizeof *p, cmp_dot);
    return p;
}

/* The same set of (dot, context) pairs, and for each the same ts, dead flag and value. */
static int sibs_eq(const kv_sibs_t *a, const kv_sibs_t *b)
{
    if (a->n != b->n) return 0;
    const kv_version_t **x = sorted(a), **y = sorted(b);
    int eq = 1;
    for (uint32_t i = 0; i < a->n && eq; i++) {
        const kv_version_t *v = x[i], *w = y[i];
        eq = v->dot.node == w->dot.node && v->dot.counter == w->dot.counter &&
             clock_eq(&v->ctx, &w->ctx) && v->ts == w->ts && !v->dead == !w->dead &&
             v->len == w->len && (!v->len || !memcmp(v->val, w->val, v->len));
    }
    free(x);
    free(y);
    return eq;
}

/* No two versions share a dot, none covers another, every context is well formed. */
static int sibs_reduced(const kv_sibs_t *s)
{
    for (uint32_t i = 0; i < s->n; i++) {
        if (!clock_valid(&s->v[i].ctx)) return 0;
        for (uint32_t j = 0; j < s->n; j++)
            if (i != j && kv_version_covers(&s->v[j], s->v[i].dot)) return 0;
    }
    return 1;
}

static void print_sibs(const char *what, const kv_sibs_t *s)
{
    fprintf(stderr, "  %s (%u):", what, (unsigned)s->n);
    for (uint32_t i = 0; i < s->n; i++) {
        char buf[512];
        kv_clock_format(&s->v[i].ctx, buf, sizeof buf);
        fprintf(stderr, " %u:%" PRIu64 "[%s]%s", (unsigned)s->v[i].dot.node, s->v[i].dot.counter,
                buf, s->v[i].dead ? "x" : "");
    }
    fprintf(stderr, "\n");
}

/* ------------------------------------------------------------------ clocks */

static void test_clock_raise_get(void)
{
    kv_clock_t c = {0};
    CU_ASSERT_EQUAL(kv_clock_get(&c, 1), 0);
    CU_ASSERT_EQUAL(kv_clock_raise(&c, dot(5, 10)), 0);
    CU_ASSERT_EQUAL(kv_clock_raise(&c, dot(2, 7)), 0);
    CU_ASSERT_EQUAL(kv_clock_raise(&c, dot(9, 1)), 0);
    CU_ASSERT_EQUAL(kv_clock_raise(&c, dot(5, 3)), 0); /* lower: no effect */
    CU_ASSERT_EQUAL(kv_clock_raise(&c, dot(2, 8)), 0); /* higher: raised */
    CU_ASSERT_EQUAL(kv_clock_raise(&c, dot(0, 4)), 0);
    CU_ASSERT_EQUAL(kv_clock_raise(&c, dot(UINT32_MAX, UINT64_MAX)), 0);
    CU_ASSERT_EQUAL(c.n, 5);
    CU_ASSERT(clock_valid(&c));
    CU_ASSERT_EQUAL(kv_clock_get(&c, 0), 4);
    CU_ASSERT_EQUAL(kv_clock_get(&c, 2), 8);
    CU_ASSERT_EQUAL(kv_clock_get(&c, 5), 10);
    CU_ASSERT_EQUAL(kv_clock_get(&c, 9), 1);
    CU_ASSERT_EQUAL(kv_clock_get(&c, UINT32_MAX), UINT64_MAX);
    CU_ASSERT_EQUAL(kv_clock_get(&c, 3), 0);
    CU_ASSERT_EQUAL(kv_clock_get(&c, 6), 0);
    CU_ASSERT_EQUAL(kv_clock_get(&c, 10), 0);
    kv_clock_free(&c);
    CU_ASSERT_EQUAL(c.n, 0);
    CU_ASSERT_PTR_NULL(c.e);

    /* random raises against a dense reference */
    enum { NODES = 40 };
    for (int trial = 0; trial < 200; trial++) {
        uint64_t ref[NODES] = {0};
        kv_clock_t r = {0};
        int ops = (int)rand_below(60);
        for (int k = 0; k < ops; k++) {
            uint32_t node = (uint32_t)rand_below(NODES);
            uint64_t ctr = 1 + rand_below(1000);
            CU_ASSERT_EQUAL(kv_clock_raise(&r, dot(node, ctr)), 0);
            if (ctr > ref[node]) ref[node] = ctr;
        }
        CU_ASSERT(clock_valid(&r));
        uint32_t nonzero = 0;
        for (uint32_t node = 0; node < NODES; node++) {
            nonzero += ref[node] != 0;
            CU_ASSERT_EQUAL(kv_clock_get(&r, node), ref[node]);
        }
        CU_ASSERT_EQUAL(r.n, nonzero);
        kv_clock_free(&r);
    }
}

static void test_clock_join(void)
{
    enum { NODES = 30 };
    for (int trial = 0; trial < 300; trial++) {
        uint64_t ra[NODES] = {0}, rb[NODES] = {0};
        kv_clock_t a = {0}, b = {0};
        for (int k = (int)rand_below(20); k > 0; k--) {
            uint32_t node = (uint32_t)rand_below(NODES);
            uint64_t ctr = 1 + rand_below(50);
            kv_clock_raise(&a, dot(node, ctr));
            if (ctr > ra[node]) ra[node] = ctr;
        }
        for (int k = (int)rand_below(20); k > 0; k--) {
            uint32_t node = (uint32_t)rand_below(NODES);
            uint64_t ctr = 1 + rand_below(50);
            kv_clock_raise(&b, dot(node, ctr));
            if (ctr > rb[node]) rb[node] = ctr;
        }
        kv_clock_t ab = {0}, ba = {0};
        CU_ASSERT_EQUAL(kv_clock_join(&ab, &a), 0);
        CU_ASSERT_EQUAL(kv_clock_join(&ab, &b), 0);
        CU_ASSERT_EQUAL(kv_clock_join(&ba, &b), 0);
        CU_ASSERT_EQUAL(kv_clock_join(&ba, &a), 0);
        CU_ASSERT(clock_valid(&ab));
        CU_ASSERT(clock_eq(&ab, &ba));
        for (uint32_t node = 0; node < NODES; node++)
            CU_ASSERT_EQUAL(kv_clock_get(&ab, node), ra[node] > rb[node] ? ra[node] : rb[node]);
        /* joining again changes nothing; joining the empty clock changes nothing */
        kv_clock_t again = {0}, empty = {0};
        kv_clock_join(&again, &ab);
        kv_clock_join(&again, &a);
        kv_clock_join(&again, &empty);
        CU_ASSERT(clock_eq(&again, &ab));
        kv_clock_free(&a);
        kv_clock_free(&b);
        kv_clock_free(&ab);
        kv_clock_free(&ba);
        kv_clock_free(&again);
    }
}

static void expect_parse(const char *text, int want_rc, int n, const uint64_t *pairs)
{
    kv_clock_t c = {0};
    int rc = kv_clock_parse(text, strlen(text), &c);
    CU_ASSERT_EQUAL(rc, want_rc);
    if (rc != want_rc) fprintf(stderr, "  parse \"%s\": %d, expected %d\n", text, rc, want_rc);
    if (rc == 0 && want_rc == 0) {
        kv_clock_t want = clock_of(n, pairs);
        CU_ASSERT(clock_eq(&c, &want));
        CU_ASSERT(clock_valid(&c));
        if (!clock_eq(&c, &want)) fprintf(stderr, "  parse \"%s\": wrong clock\n", text);
        kv_clock_free(&want);
    }
    if (rc == 0) kv_clock_free(&c);
}

static void test_clock_parse(void)
{
    expect_parse("", 0, 0, NULL);
    expect_parse("1:2", 0, 1, (const uint64_t[]){1, 2});
    expect_parse("1:2,3:4", 0, 2, (const uint64_t[]){1, 2, 3, 4});
    /* any order; repeated slots take the maximum */
    expect_parse("3:4,1:2", 0, 2, (const uint64_t[]){1, 2, 3, 4});
    expect_parse("3:4,1:2,3:9,1:1", 0, 2, (const uint64_t[]){1, 2, 3, 9});
    expect_parse("0:1", 0, 1, (const uint64_t[]){0, 1});
    expect_parse("4294967295:18446744073709551609", 0, 1,
                 (const uint64_t[]){UINT32_MAX, UINT64_C(18446744073709551609)});

    const char *bad[] = {"1",
                         "1:",
                         ":2",
                         "1:0",
                         "1:2,",
                         "a:1",
                         "1:a",
                         ",",
                         ",1:2",
                         "1:2,,3:4",
                         "1:2;3:4",
                         "1::2",
                         "1:2:3",
                         " 1:2",
                         "1:2 ",
                         "-1:2",
                         "1:-2",
                         "1:2,3",
                         "1:2,3:",
                         "4294967296:1",
                         "1:99999999999999999999",
                         "99999999999999999999:1",
                         "1:18446744073709551616"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_parse(bad[i], -1, 0, NULL);

    /* the length bounds the text: what follows is not read */
    kv_clock_t c;
    CU_ASSERT_EQUAL(kv_clock_parse("1:2,3:4", 3, &c), 0);
    CU_ASSERT_EQUAL(c.n, 1);
    CU_ASSERT_EQUAL(kv_clock_get(&c, 1), 2);
    kv_clock_free(&c);
    CU_ASSERT_EQUAL(kv_clock_parse("1:2,3:4", 4, &c), -1);
    CU_ASSERT_EQUAL(kv_clock_parse("1:2\0003:4", 5, &c), -1);
}

/* The largest counters (a uint64 near its maximum) survive format and parse. */
static void test_clock_parse_max(void)
{
    expect_parse("1:18446744073709551615", 0, 1, (const uint64_t[]){1, UINT64_MAX});
    expect_parse("1:18446744073709551610", 0, 1,
                 (const uint64_t[]){1, UINT64_C(18446744073709551610)});
    kv_clock_t c = {0}, back = {0};
    kv_clock_raise(&c, dot(UINT32_MAX, UINT64_MAX));
    kv_clock_raise(&c, dot(7, UINT64_MAX - 1));
    char buf[128];
    size_t n = kv_clock_format(&c, buf, sizeof buf);
    CU_ASSERT_STRING_EQUAL(buf, "7:18446744073709551614,4294967295:18446744073709551615");
    int rc = kv_clock_parse(buf, n, &back);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc != 0) fprintf(stderr, "  parse of formatted \"%s\": %d\n", buf, rc);
    if (rc == 0) {
        CU_ASSERT(clock_eq(&c, &back));
        kv_clock_free(&back);
    }
    kv_clock_free(&c);
}

static void test_clock_format(void)
{
    kv_clock_t c = {0};
    char buf[256];
    memset(buf, 'x', sizeof buf);
    CU_ASSERT_EQUAL(kv_clock_format(&c, buf, sizeof buf), 0);
    CU_ASSERT_STRING_EQUAL(buf, "");
    CU_ASSERT_EQUAL(kv_clock_format(&c, buf, 0), 0);
    kv_clock_raise(&c, dot(3, 4));
    kv_clock_raise(&c, dot(1, 2));
    CU_ASSERT_EQUAL(kv_clock_format(&c, buf, sizeof buf), 7);
    CU_ASSERT_STRING_EQUAL(buf, "1:2,3:4");
    /* a cut text: NUL-terminated inside cap, a prefix of the whole one */
    for (size_t cap = 1; cap <= 8; cap++) {
        memset(buf, 'x', sizeof buf);
        size_t n = kv_clock_format(&c, buf, cap);
        CU_ASSERT(n < cap);
        CU_ASSERT_EQUAL(strlen(buf), n);
        CU_ASSERT(strncmp(buf, "1:2,3:4", n) == 0);
        CU_ASSERT_EQUAL(buf[cap], 'x'); /* nothing written past cap */
    }
    kv_clock_free(&c);

    /* random round trips */
    for (int trial = 0; trial < 500; trial++) {
        kv_clock_t r = {0}, back = {0};
        for (int k = (int)rand_below(12); k > 0; k--) {
            uint64_t ctr = 1 + (next_rand() >> (1 + rand_below(63)));
            kv_clock_raise(&r, dot((uint32_t)next_rand(), ctr));
        }
        char text[1024];
        size_t n = kv_clock_format(&r, text, sizeof text);
        CU_ASSERT_EQUAL(strlen(text), n);
        CU_ASSERT_EQUAL(kv_clock_parse(text, n, &back), 0);
        CU_ASSERT(clock_eq(&r, &back));
        kv_clock_free(&r);
        kv_clock_free(&back);
    }
}

/* ------------------------------------------------------------------ coverage */

static void test_covers(void)
{
    kv_clock_t ctx = clock_of(2, (const uint64_t[]){1, 10, 3, 5});
    kv_version_t w = make_version(dot(2, 7), &ctx, 1, 0);
    CU_ASSERT(kv_version_covers(&w, dot(2, 7)));  /* itself */
    CU_ASSERT(!kv_version_covers(&w, dot(2, 6))); /* its own node's earlier dots: not in ctx */
    CU_ASSERT(!kv_version_covers(&w, dot(2, 8)));
    CU_ASSERT(kv_version_covers(&w, dot(1, 1)));
    CU_ASSERT(kv_version_covers(&w, dot(1, 10)));
    CU_ASSERT(!kv_version_covers(&w, dot(1, 11)));
    CU_ASSERT(kv_version_covers(&w, dot(3, 5)));
    CU_ASSERT(!kv_version_covers(&w, dot(3, 6)));
    CU_ASSERT(!kv_version_covers(&w, dot(4, 1)));
    CU_ASSERT(!kv_version_covers(&w, dot(0, 1)));
    kv_version_free(&w);
    kv_clock_free(&ctx);

    kv_version_t empty = make_version(dot(1, 1), NULL, 0, 0);
    CU_ASSERT(kv_version_covers(&empty, dot(1, 1)));
    CU_ASSERT(!kv_version_covers(&empty, dot(1, 2)));
    CU_ASSERT(!kv_version_covers(&empty, dot(2, 1)));
    kv_version_free(&empty);
}

/* ------------------------------------------------------------------ merge: fixed cases */

static void test_merge_supersede(void)
{
    kv_sibs_t s = {0};
    kv_version_t a = make_version(dot(1, 100), NULL, 10, 0);
    kv_clock_t ca = clock_of(1, (const uint64_t[]){1, 100});
    kv_version_t b = make_version(dot(2, 200), &ca, 20, 0); /* written over a */
    CU_ASSERT_EQUAL(merge_one(&s, &a), 1);
    CU_ASSERT_EQUAL(s.n, 1);
    CU_ASSERT_EQUAL(merge_one(&s, &a), 0); /* the same again */
    CU_ASSERT_EQUAL(merge_one(&s, &b), 1);
    CU_ASSERT_EQUAL(s.n, 1);
    CU_ASSERT_EQUAL(s.v[0].dot.node, 2);
    CU_ASSERT_EQUAL(s.v[0].dot.counter, 200);
    /* a late copy of a is known: nothing changes */
    CU_ASSERT_EQUAL(merge_one(&s, &a), 0);
    CU_ASSERT_EQUAL(s.n, 1);
    CU_ASSERT_EQUAL(s.v[0].dot.node, 2);
    /* the same the other way round */
    kv_sibs_t t = {0};
    CU_ASSERT_EQUAL(merge_one(&t, &b), 1);
    CU_ASSERT_EQUAL(merge_one(&t, &a), 0);
    CU_ASSERT(sibs_eq(&s, &t));
    CU_ASSERT_EQUAL(kv_sibs_digest(&s), kv_sibs_digest(&t));
    kv_sibs_free(&s);
    kv_sibs_free(&t);
    kv_version_free(&a);
    kv_version_free(&b);
    kv_clock_free(&ca);
}

static void test_merge_siblings(void)
{
    /* two writes over the same context, through one coordinator and through two */
    kv_clock_t base = clock_of(1, (const uint64_t[]){3, 50});
    kv_version_t v0 = make_version(dot(3, 50), NULL, 5, 0);
    kv_version_t a = make_version(dot(1, 100), &base, 10, 0);
    kv_version_t b = make_version(dot(1, 101), &base, 11, 0);
    kv_version_t c = make_version(dot(2, 100), &base, 12, 0);
    kv_sibs_t s = {0};
    CU_ASSERT_EQUAL(merge_one(&s, &v0), 1);
    CU_ASSERT_EQUAL(merge_one(&s, &a), 1);
    CU_ASSERT_EQUAL(s.n, 1); /* v0 superseded */
    CU_ASSERT_EQUAL(merge_one(&s, &b), 1);
    CU_ASSERT_EQUAL(s.n, 2); /* a and b: siblings although one coordinator made both */
    CU_ASSERT_EQUAL(merge_one(&s, &c), 1);
    CU_ASSERT_EQUAL(s.n, 3);
    CU_ASSERT(sibs_reduced(&s));
    CU_ASSERT_EQUAL(kv_sibs_live(&s), 3);
    /* the context of all three supersedes them all */
    kv_clock_t all = {0};
    CU_ASSERT_EQUAL(kv_sibs_context(&s, &all), 0);
    CU_ASSERT_EQUAL(kv_clock_get(&all, 1), 101);
    CU_ASSERT_EQUAL(kv_clock_get(&all, 2), 100);
    CU_ASSERT_EQUAL(kv_clock_get(&all, 3), 50);
    kv_version_t d = make_version(dot(2, 101), &all, 13, 0);
    CU_ASSERT_EQUAL(merge_one(&s, &d), 1);
    CU_ASSERT_EQUAL(s.n, 1);
    CU_ASSERT_EQUAL(s.v[0].dot.counter, 101);
    CU_ASSERT_EQUAL(s.v[0].dot.node, 2);
    /* a context covering only some siblings replaces only those */
    kv_sibs_t t = {0};
    merge_one(&t, &a);
    merge_one(&t, &b);
    merge_one(&t, &c);
    kv_clock_t part = clock_of(2, (const uint64_t[]){1, 100, 3, 50}); /* covers a, not b, c */
    kv_version_t e = make_version(dot(4, 1), &part, 14, 0);
    CU_ASSERT_EQUAL(merge_one(&t, &e), 1);
    CU_ASSERT_EQUAL(t.n, 3);
    for (uint32_t i = 0; i < t.n; i++)
        CU_ASSERT(!(t.v[i].dot.node == 1 && t.v[i].dot.counter == 100));
    CU_ASSERT(sibs_reduced(&t));
    kv_sibs_free(&s);
    kv_sibs_free(&t);
    kv_clock_free(&all);
    kv_clock_free(&part);
    kv_clock_free(&base);
    kv_version_free(&v0);
    kv_version_free(&a);
    kv_version_free(&b);
    kv_version_free(&c);
    kv_version_free(&d);
    kv_version_free(&e);
}

/* One write (one dot) that arrives with two contexts: one version, the contexts joined, and
 * whatever the join covers dropped. */
static void test_merge_same_dot(void)
{
    kv_version_t x = make_version(dot(5, 10), NULL, 1, 0);
    kv_version_t y = make_version(dot(6, 20), NULL, 2, 0);
    kv_clock_t c1 = clock_of(1, (const uint64_t[]){5, 10});
    kv_clock_t c2 = clock_of(1, (const uint64_t[]){6, 20});
    kv_version_t w1 = make_version(dot(1, 100), &c1, 50, 0);
    kv_version_t w2 = make_version(dot(1, 100), &c2, 50, 0);

    for (int order = 0; order < 4; order++) {
        kv_sibs_t s = {0};
        /* x, y and the write over x: {y, w(c1)} */
        merge_one(&s, &x);
        merge_one(&s, &y);
        if (order & 1) {
            merge_one(&s, &w1);
            CU_ASSERT_EQUAL(s.n, 2);
            CU_ASSERT_EQUAL(merge_one(&s, &w2), 1);
        } else {
            merge_one(&s, &w2);
            CU_ASSERT_EQUAL(s.n, 2);
            CU_ASSERT_EQUAL(merge_one(&s, &w1), 1);
        }
        if (order & 2) CU_ASSERT_EQUAL(merge_one(&s, &x), 0); /* late: already covered */
        CU_ASSERT_EQUAL(s.n, 1);
        if (s.n == 1) {
            CU_ASSERT_EQUAL(s.v[0].dot.node, 1);
            CU_ASSERT_EQUAL(s.v[0].dot.counter, 100);
            kv_clock_t want = clock_of(2, (const uint64_t[]){5, 10, 6, 20});
            CU_ASSERT(clock_eq(&s.v[0].ctx, &want));
            kv_clock_free(&want);
            CU_ASSERT_EQUAL(s.v[0].len, w1.len);
        }
        /* the same again (either context) changes nothing */
        CU_ASSERT_EQUAL(merge_one(&s, &w1), 0);
        CU_ASSERT_EQUAL(merge_one(&s, &w2), 0);
        kv_sibs_free(&s);
    }
    /* both contexts in one incoming set, into an empty one */
    kv_version_t pair[2] = {w1, w2};
    kv_sibs_t in = {2, pair}, s = {0};
    merge_one(&s, &x);
    CU_ASSERT_EQUAL(kv_sibs_merge(&s, &in), 1);
    CU_ASSERT_EQUAL(s.n, 1);
    CU_ASSERT_EQUAL(kv_clock_get(&s.v[0].ctx, 6), 20);
    CU_ASSERT_EQUAL(kv_clock_get(&s.v[0].ctx, 5), 10);
    kv_sibs_free(&s);
    kv_clock_free(&c1);
    kv_clock_free(&c2);
    kv_version_free(&x);
    kv_version_free(&y);
    kv_version_free(&w1);
    kv_version_free(&w2);
}

/* A clock whose entries' padding bytes (kv_dot_t has 4 after the node) are `fill`, as a
 * decoder's malloc'd array may have them: equal clocks must compare equal whatever those are. */
static kv_clock_t padded_clock(int n, const uint64_t *pairs, int fill)
{
    kv_clock_t c = {(uint32_t)n, malloc((size_t)n * sizeof(kv_dot_t))};
    CU_ASSERT_PTR_NOT_NULL_FATAL(c.e);
    memset(c.e, fill, (size_t)n * sizeof(kv_dot_t));
    for (int i = 0; i < n; i++) {
        c.e[i].node = (uint32_t)pairs[2 * i];
        c.e[i].counter = pairs[2 * i + 1];
    }
    return c;
}

static void test_merge_same_dot_padding(void)
{
    static const uint64_t pairs[] = {1, 5, 2, 9, 7, 3};
    static const int fills[][2] = {{0xaa, 0x55}, {0x00, 0xff}, {0xff, 0x00}, {0x11, 0x11}};
    for (size_t f = 0; f < sizeof fills / sizeof fills[0]; f++) {
        kv_version_t a = make_version(dot(4, 40), NULL, 1, 0);
        kv_version_t b = make_version(dot(4, 40), NULL, 1, 0);
        a.ctx = padded_clock(3, pairs, fills[f][0]);
        b.ctx = padded_clock(3, pairs, fills[f][1]);
        kv_sibs_t s = {0};
        CU_ASSERT_EQUAL(merge_one(&s, &a), 1);
        /* the copy kept in s has a's padding; b is the same write with the same context */
        int rc = merge_one(&s, &b);
        CU_ASSERT_EQUAL(rc, 0);
        if (rc != 0)
            fprintf(stderr, "\n  padding %#x then %#x: merge of the same version says %d\n",
                    fills[f][0], fills[f][1], rc);
        CU_ASSERT_EQUAL(s.n, 1);
        kv_sibs_free(&s);
        kv_version_free(&a);
        kv_version_free(&b);
    }
}

static void test_merge_tombstones(void)
{
    kv_version_t a = make_version(dot(1, 1), NULL, 10, 0);
    kv_clock_t ca = clock_of(1, (const uint64_t[]){1, 1});
    kv_version_t del = make_version(dot(2, 1), &ca, 20, 1); /* deletes a */
    kv_version_t b = make_version(dot(3, 1), NULL, 30, 0);  /* concurrent with both */
    kv_sibs_t s = {0};
    merge_one(&s, &a);
    CU_ASSERT_EQUAL(merge_one(&s, &del), 1);
    CU_ASSERT_EQUAL(s.n, 1);
    CU_ASSERT(s.v[0].dead);
    CU_ASSERT_EQUAL(kv_sibs_live(&s), 0);
    CU_ASSERT_PTR_NULL(kv_sibs_latest(&s));
    CU_ASSERT_EQUAL(merge_one(&s, &a), 0); /* the deleted value does not come back */
    CU_ASSERT_EQUAL(merge_one(&s, &b), 1);
    CU_ASSERT_EQUAL(s.n, 2); /* a tombstone and a value: siblings */
    CU_ASSERT_EQUAL(kv_sibs_live(&s), 1);
    CU_ASSERT(kv_sibs_latest(&s) && kv_sibs_latest(&s)->dot.node == 3);
    /* a value written over the tombstone supersedes it */
    kv_clock_t cd = clock_of(1, (const uint64_t[]){2, 1});
    kv_version_t again = make_version(dot(1, 2), &cd, 40, 0);
    CU_ASSERT_EQUAL(merge_one(&s, &again), 1);
    CU_ASSERT_EQUAL(s.n, 2);
    CU_ASSERT_EQUAL(kv_sibs_live(&s), 2);
    for (uint32_t i = 0; i < s.n; i++)
        CU_ASSERT(!s.v[i].dead);
    /* a tombstone's digest differs from a value's at the same dot */
    kv_sibs_t t1 = {0}, t2 = {0};
    kv_version_t live = make_version(dot(9, 9), NULL, 1, 0),
                 dead = make_version(dot(9, 9), NULL, 1, 1);
    merge_one(&t1, &live);
    merge_one(&t2, &dead);
    CU_ASSERT_NOT_EQUAL(kv_sibs_digest(&t1), kv_sibs_digest(&t2));
    kv_sibs_free(&t1);
    kv_sibs_free(&t2);
    kv_version_free(&live);
    kv_version_free(&dead);
    kv_sibs_free(&s);
    kv_clock_free(&ca);
    kv_clock_free(&cd);
    kv_version_free(&a);
    kv_version_free(&del);
    kv_version_free(&b);
    kv_version_free(&again);
}

/* ------------------------------------------------------------------ merge: random histories
 * A history of writes on a few coordinators. A write's context is causally closed: the join
 * of what it read (contexts and dots) and of the contexts of every write those cover, so that
 * coverage is transitive, as it is in a real store. Each write also has a second, larger
 * context made at the same time (the same write coordinated twice); later writes that cover
 * it include both. Random sets of these versions then have one right reconciliation: per dot
 * the join of the contexts present, and the dots no other present one covers. */

enum { HMAX = 48, NODES = 4 };

typedef struct hist {
    int n;
    kv_version_t small[HMAX], big[HMAX]; /* the two contexts of write i */
} hist_t;

static void clock_close(kv_clock_t *c, const hist_t *h, int upto)
{
    for (int changed = 1; changed;) {
        changed = 0;
        for (int q = 0; q < upto; q++) {
            if (kv_clock_get(c, h->big[q].dot.node) < h->big[q].dot.counter) continue;
            const kv_clock_t *qc = &h->big[q].ctx;
            for (uint32_t i = 0; i < qc->n; i++)
                if (kv_clock_get(c, qc->e[i].node) < qc->e[i].counter) {
                    kv_clock_raise(c, qc->e[i]);
                    changed = 1;
                }
        }
    }
}

static void hist_make(hist_t *h, int n)
{
    uint64_t ctr[NODES + 1];
    for (int i = 0; i <= NODES; i++)
        ctr[i] = 1000 * (uint64_t)i + rand_below(5);
    h->n = n;
    for (int w = 0; w < n; w++) {
        uint32_t node = 1 + (uint32_t)rand_below(NODES);
        ctr[node] += 1 + rand_below(3);
        kv_clock_t ctx = {0};
        for (int q = 0; q < w; q++)
            if (rand_below(100) < 15) {
                kv_clock_join(&ctx, &h->big[q].ctx);
                kv_clock_raise(&ctx, h->big[q].dot);
            }
        clock_close(&ctx, h, w);
        kv_clock_t big = {0};
        kv_clock_join(&big, &ctx);
        if (w && rand_below(100) < 30) {
            int q = (int)rand_below((uint64_t)w);
            kv_clock_join(&big, &h->big[q].ctx);
            kv_clock_raise(&big, h->big[q].dot);
            clock_close(&big, h, w);
        }
        uint64_t ts = 1 + rand_below(40); /* coarse: equal timestamps happen */
        int dead = rand_below(100) < 15;
        h->small[w] = make_version(dot(node, ctr[node]), &ctx, ts, dead);
        h->big[w] = make_version(dot(node, ctr[node]), &big, ts, dead);
        kv_clock_free(&ctx);
        kv_clock_free(&big);
    }
}

static void hist_free(hist_t *h)
{
    for (int i = 0; i < h->n; i++) {
        kv_version_free(&h->small[i]);
        kv_version_free(&h->big[i]);
    }
}

/* A random set: k versions (either context) merged one at a time into an empty set. The
 * versions used are marked in `used` (bit 0: small, bit 1: big). */
static kv_sibs_t random_set(const hist_t *h, int k, unsigned char *used)
{
    kv_sibs_t s = {0};
    for (int i = 0; i < k; i++) {
        int w = (int)rand_below((uint64_t)h->n);
        int big = rand_below(100) < 35;
        used[w] |= (unsigned char)(1 << big);
        CU_ASSERT(merge_one(&s, big ? &h->big[w] : &h->small[w]) >= 0);
    }
    return s;
}

/* The reconciliation of the used versions, computed independently. */
static kv_sibs_t reference(const hist_t *h, const unsigned char *used)
{
    kv_version_t tmp[HMAX];
    int n = 0;
    for (int w = 0; w < h->n; w++) {
        if (!used[w]) continue;
        tmp[n] = make_version(h->small[w].dot, NULL, h->small[w].ts, h->small[w].dead);
        if (used[w] & 1) kv_clock_join(&tmp[n].ctx, &h->small[w].ctx);
        if (used[w] & 2) kv_clock_join(&tmp[n].ctx, &h->big[w].ctx);
        n++;
    }
    kv_sibs_t out = {0};
    out.v = calloc((size_t)(n ? n : 1), sizeof *out.v);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out.v);
    for (int i = 0; i < n; i++) {
        int covered = 0;
        for (int j = 0; j < n && !covered; j++)
            covered = j != i && kv_version_covers(&tmp[j], tmp[i].dot);
        if (covered)
            kv_version_free(&tmp[i]);
        else
            out.v[out.n++] = tmp[i];
    }
    return out;
}

static kv_sibs_t copy_of(const kv_sibs_t *s)
{
    kv_sibs_t c;
    CU_ASSERT_EQUAL_FATAL(kv_sibs_copy(&c, s), 0);
    return c;
}

/* merge(a, b) into a fresh copy of a; checks the return value against the change. */
static kv_sibs_t merged(const kv_sibs_t *a, const kv_sibs_t *b)
{
    kv_sibs_t r = copy_of(a);
    int rc = kv_sibs_merge(&r, b);
    CU_ASSERT(rc == 0 || rc == 1);
    CU_ASSERT_EQUAL(rc, !sibs_eq(&r, a));
    return r;
}

static int same_set(const kv_sibs_t *x, const kv_sibs_t *y)
{
    return kv_sibs_digest(x) == kv_sibs_digest(y) && sibs_eq(x, y);
}

static void test_merge_lattice(void)
{
    unsigned bad_comm = 0, bad_assoc = 0, bad_ref = 0, bad_idem = 0, bad_reduced = 0;
    for (int trial = 0; trial < 300; trial++) {
        hist_t h;
        hist_make(&h, 4 + (int)rand_below(HMAX - 4));
        unsigned char ua[HMAX] = {0}, ub[HMAX] = {0}, uc[HMAX] = {0}, uall[HMAX] = {0};
        kv_sibs_t a = random_set(&h, 1 + (int)rand_below(8), ua);
        kv_sibs_t b = random_set(&h, 1 + (int)rand_below(8), ub);
        kv_sibs_t c = random_set(&h, (int)rand_below(8), uc);
        for (int w = 0; w < HMAX; w++)
            uall[w] = ua[w] | ub[w] | uc[w];
        bad_reduced += !sibs_reduced(&a) + !sibs_reduced(&b) + !sibs_reduced(&c);

        /* idempotent: with a copy and with the set itself */
        kv_sibs_t aa = copy_of(&a);
        kv_sibs_t acopy = copy_of(&a);
        bad_idem += kv_sibs_merge(&aa, &acopy) != 0 || !same_set(&aa, &a);
        bad_idem += kv_sibs_merge(&aa, &aa) != 0 || !same_set(&aa, &a);
        kv_sibs_free(&aa);
        kv_sibs_free(&acopy);

        /* commutative */
        kv_sibs_t ab = merged(&a, &b), ba = merged(&b, &a);
        if (!same_set(&ab, &ba)) {
            if (!bad_comm++) {
                fprintf(stderr, "\n  merge not commutative:\n");
                print_sibs("a", &a), print_sibs("b", &b), print_sibs("ab", &ab);
                print_sibs("ba", &ba);
            }
        }
        /* associative */
        kv_sibs_t ab_c = merged(&ab, &c), bc = merged(&b, &c);
        kv_sibs_t a_bc = merged(&a, &bc);
        if (!same_set(&ab_c, &a_bc)) {
            if (!bad_assoc++) {
                fprintf(stderr, "\n  merge not associative:\n");
                print_sibs("a", &a), print_sibs("b", &b), print_sibs("c", &c);
                print_sibs("(ab)c", &ab_c), print_sibs("a(bc)", &a_bc);
            }
        }
        /* and the right answer */
        kv_sibs_t ref = reference(&h, uall);
        if (!same_set(&ab_c, &ref)) {
            if (!bad_ref++) {
                fprintf(stderr, "\n  merge differs from the reference:\n");
                print_sibs("(ab)c", &ab_c), print_sibs("reference", &ref);
            }
        }
        bad_reduced += !sibs_reduced(&ab_c) + !sibs_reduced(&a_bc);
        /* merging a part of the result again changes nothing */
        kv_sibs_t again = copy_of(&ab_c);
        bad_idem += kv_sibs_merge(&again, &b) != 0 || !same_set(&again, &ab_c);
        kv_sibs_free(&again);

        kv_sibs_free(&ref);
        kv_sibs_free(&a_bc);
        kv_sibs_free(&bc);
        kv_sibs_free(&ab_c);
        kv_sibs_free(&ba);
        kv_sibs_free(&ab);
        kv_sibs_free(&a);
        kv_sibs_free(&b);
        kv_sibs_free(&c);
        hist_free(&h);
    }
    CU_ASSERT_EQUAL(bad_idem, 0);
    CU_ASSERT_EQUAL(bad_comm, 0);
    CU_ASSERT_EQUAL(bad_assoc, 0);
    CU_ASSERT_EQUAL(bad_ref, 0);
    CU_ASSERT_EQUAL(bad_reduced, 0);
}

/* ------------------------------------------------------------------ latest */

static void test_latest(void)
{
    kv_sibs_t s = {0};
    CU_ASSERT_PTR_NULL(kv_sibs_latest(&s));
    CU_ASSERT_EQUAL(kv_sibs_live(&s), 0);
    kv_version_t v[6] = {
        make_version(dot(1, 5), NULL, 100, 0), make_version(dot(2, 5), NULL, 300, 0),
        make_version(dot(3, 5), NULL, 300, 0), make_version(dot(3, 4), NULL, 300, 0),
        make_version(dot(4, 1), NULL, 900, 1), /* the newest is a tombstone: skipped */
        make_version(dot(0, 9), NULL, 300, 0),
    };
    for (int i = 0; i < 6; i++)
        merge_one(&s, &v[i]);
    CU_ASSERT_EQUAL(s.n, 6);
    CU_ASSERT_EQUAL(kv_sibs_live(&s), 5);
    const kv_version_t *l = kv_sibs_latest(&s);
    CU_ASSERT_PTR_NOT_NULL_FATAL(l);
    CU_ASSERT_EQUAL(l->ts, 300);
    CU_ASSERT_EQUAL(l->dot.node, 3);
    CU_ASSERT_EQUAL(l->dot.counter, 5);
    CU_ASSERT_FALSE(l->dead);

    /* random sets: the same pick whatever the order */
    for (int trial = 0; trial < 300; trial++) {
        int n = 1 + (int)rand_below(10);
        kv_version_t w[10];
        /* one write, one payload: ts and dead follow from the dot */
        for (int i = 0; i < n; i++) {
            kv_dot_t d = dot(1 + (uint32_t)rand_below(3), 1 + rand_below(4));
            w[i] = make_version(d, NULL, (d.node * 13 + d.counter * 7) % 4,
                                (d.node + d.counter) % 4 == 0);
        }
        kv_sibs_t fwd = {0}, rev = {0};
        for (int i = 0; i < n; i++)
            merge_one(&fwd, &w[i]);
        for (int i = n - 1; i >= 0; i--)
            merge_one(&rev, &w[i]);
        /* reference over the distinct dots present */
        const kv_version_t *best = NULL;
        for (uint32_t i = 0; i < fwd.n; i++) {
            const kv_version_t *x = &fwd.v[i];
            if (x->dead) continue;
            if (!best || x->ts > best->ts ||
                (x->ts == best->ts &&
                 (x->dot.node > best->dot.node ||
                  (x->dot.node == best->dot.node && x->dot.counter > best->dot.counter))))
                best = x;
        }
        const kv_version_t *lf = kv_sibs_latest(&fwd), *lr = kv_sibs_latest(&rev);
        CU_ASSERT_EQUAL(lf, best);
        CU_ASSERT_EQUAL(!lf, !lr);
        if (lf && lr) {
            CU_ASSERT_EQUAL(lf->dot.node, lr->dot.node);
            CU_ASSERT_EQUAL(lf->dot.counter, lr->dot.counter);
        }
        kv_sibs_free(&fwd);
        kv_sibs_free(&rev);
        for (int i = 0; i < n; i++)
            kv_version_free(&w[i]);
    }
    kv_sibs_free(&s);
    for (int i = 0; i < 6; i++)
        kv_version_free(&v[i]);
}

/* ------------------------------------------------------------------ encoding */

/* A random set as it may be stored: arbitrary dots, sorted contexts, values of any bytes. */
static kv_sibs_t random_stored(size_t maxval)
{
    kv_sibs_t s = {0};
    uint32_t n = (uint32_t)rand_below(6);
    s.v = calloc(n ? n : 1, sizeof *s.v);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s.v);
    for (uint32_t i = 0; i < n; i++) {
        kv_version_t *v = &s.v[i];
        int wide = rand_below(2);
        v->dot = dot(wide ? (uint32_t)next_rand() : (uint32_t)rand_below(8),
                     wide ? next_rand() : 1 + rand_below(300));
        v->ts = wide ? next_rand() : rand_below(1000);
        v->dead = rand_below(5) == 0;
        for (int k = (int)rand_below(7); k > 0; k--)
            kv_clock_raise(&v->ctx, dot(wide ? (uint32_t)next_rand() : (uint32_t)rand_below(20),
                                        1 + (wide ? next_rand() >> 1 : rand_below(1000))));
        if (!v->dead) {
            v->len = (uint32_t)rand_below(maxval + 1);
            if (rand_below(10) == 0) v->len = (uint32_t)maxval;
            if (v->len) {
                v->val = malloc(v->len);
                CU_ASSERT_PTR_NOT_NULL_FATAL(v->val);
                for (uint32_t j = 0; j < v->len; j++)
                    v->val[j] = (unsigned char)next_rand();
            }
        }
        s.n++;
    }
    return s;
}

static unsigned char *encode(const kv_sibs_t *s, size_t *len)
{
    size_t max = kv_sibs_encoded_max(s);
    unsigned char *buf = malloc(max);
    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    unsigned char *end = kv_sibs_encode(s, buf);
    *len = (size_t)(end - buf);
    CU_ASSERT(*len <= max);
    return buf;
}

/* What a successful decode must give: a set that is well formed and encodes to itself. */
static int decoded_valid(const kv_sibs_t *s, size_t max_value)
{
    for (uint32_t i = 0; i < s->n; i++) {
        const kv_version_t *v = &s->v[i];
        if (!clock_valid(&v->ctx) || v->len > max_value || (v->dead && v->len) ||
            (v->dead != 0 && v->dead != 1) || (v->len && !v->val))
            return 0;
    }
    size_t len;
    unsigned char *buf = encode(s, &len);
    const unsigned char *p = buf;
    kv_sibs_t back;
    int ok =
        kv_sibs_decode(&p, buf + len, max_value, &back) == 0 && p == buf + len && sibs_eq(s, &back);
    if (ok) kv_sibs_free(&back);
    free(buf);
    return ok;
}

static void test_encode_roundtrip(void)
{
    for (int trial = 0; trial < 500; trial++) {
        kv_sibs_t s = random_stored(trial % 50 == 0 ? 70000 : 40);
        size_t len;
        unsigned char *buf = encode(&s, &len);
        /* with bytes after it: decode stops at the end of the set */
        unsigned char *padded = malloc(len + 3);
        CU_ASSERT_PTR_NOT_NULL_FATAL(padded);
        memcpy(padded, buf, len);
        memcpy(padded + len, "\x01\x02\x03", 3);
        for (int pad = 0; pad < 2; pad++) {
            const unsigned char *p = padded;
            kv_sibs_t back;
            int rc = kv_sibs_decode(&p, padded + len + (pad ? 3 : 0), SIZE_MAX, &back);
            CU_ASSERT_EQUAL(rc, 0);
            if (rc) continue;
            CU_ASSERT_PTR_EQUAL(p, padded + len);
            CU_ASSERT(sibs_eq(&s, &back));
            CU_ASSERT_EQUAL(kv_sibs_digest(&s), kv_sibs_digest(&back));
            kv_sibs_free(&back);
        }
        free(padded);
        free(buf);
        kv_sibs_free(&s);
    }
}

static void test_decode_truncated(void)
{
    unsigned bad = 0;
    for (int trial = 0; trial < 150; trial++) {
        kv_sibs_t s = random_stored(30);
        size_t len;
        unsigned char *buf = encode(&s, &len);
        for (size_t cut = 0; cut < len; cut++) {
            /* a copy of exactly `cut` bytes, so that ASan sees any read past it */
            unsigned char *part = malloc(cut ? cut : 1);
            CU_ASSERT_PTR_NOT_NULL_FATAL(part);
            memcpy(part, buf, cut);
            const unsigned char *p = part;
            kv_sibs_t back;
            int rc = kv_sibs_decode(&p, part + cut, SIZE_MAX, &back);
            if (rc != -1) {
                if (!bad++) fprintf(stderr, "\n  decode of %zu of %zu bytes: %d\n", cut, len, rc);
                if (rc == 0) kv_sibs_free(&back);
            }
            free(part);
        }
        free(buf);
        kv_sibs_free(&s);
    }
    CU_ASSERT_EQUAL(bad, 0);
}

static void test_decode_flips(void)
{
    unsigned invalid = 0, ok = 0, refused = 0;
    for (int trial = 0; trial < 3000; trial++) {
        kv_sibs_t s = random_stored(20);
        size_t len;
        unsigned char *buf = encode(&s, &len);
        int flips = 1 + (int)rand_below(3);
        for (int f = 0; f < flips; f++) {
            size_t at = rand_below(len);
            buf[at] ^= rand_below(2) ? (unsigned char)(1u << rand_below(8))
                                     : (unsigned char)(1 + rand_below(255));
        }
        size_t maxv = rand_below(2) ? SIZE_MAX : 16;
        unsigned char *exact = malloc(len);
        CU_ASSERT_PTR_NOT_NULL_FATAL(exact);
        memcpy(exact, buf, len);
        const unsigned char *p = exact;
        kv_sibs_t back;
        int rc = kv_sibs_decode(&p, exact + len, maxv, &back);
        if (rc == 0) {
            ok++;
            if (p < exact || p > exact + len || !decoded_valid(&back, maxv)) invalid++;
            kv_sibs_free(&back);
        } else if (rc == -1) {
            refused++;
        } else {
            invalid++;
        }
        free(exact);
        free(buf);
        kv_sibs_free(&s);
    }
    /* random bytes too */
    for (int trial = 0; trial < 3000; trial++) {
        size_t len = rand_below(64);
        unsigned char *b = malloc(len ? len : 1);
        CU_ASSERT_PTR_NOT_NULL_FATAL(b);
        for (size_t i = 0; i < len; i++)
            b[i] = (unsigned char)(rand_below(3) ? rand_below(4) : next_rand());
        const unsigned char *p = b;
        kv_sibs_t back;
        int rc = kv_sibs_decode(&p, b + len, 8, &back);
        if (rc == 0) {
            if (p > b + len || !decoded_valid(&back, 8)) invalid++;
            kv_sibs_free(&back);
        } else if (rc != -1) {
            invalid++;
        }
        free(b);
    }
    CU_ASSERT_EQUAL(invalid, 0);
    CU_ASSERT(refused > 0);
    CU_ASSERT(ok + refused > 0);
}

static void test_decode_max_value(void)
{
    kv_version_t v = make_version(dot(1, 1), NULL, 1, 0);
    free(v.val);
    v.len = 100;
    v.val = malloc(100);
    CU_ASSERT_PTR_NOT_NULL_FATAL(v.val);
    memset(v.val, 'v', 100);
    kv_sibs_t s = {1, &v};
    size_t len;
    unsigned char *buf = encode(&s, &len);
    size_t maxes[] = {0, 1, 99, 100, 101, SIZE_MAX};
    for (size_t i = 0; i < sizeof maxes / sizeof maxes[0]; i++) {
        const unsigned char *p = buf;
        kv_sibs_t back;
        int rc = kv_sibs_decode(&p, buf + len, maxes[i], &back);
        CU_ASSERT_EQUAL(rc, maxes[i] >= 100 ? 0 : -1);
        if (rc == 0) {
            CU_ASSERT(sibs_eq(&s, &back));
            kv_sibs_free(&back);
        }
    }
    free(buf);
    kv_version_free(&v);

    /* a tombstone carrying bytes is malformed; an empty value is fine at max_value 0 */
    kv_version_t t = make_version(dot(2, 2), NULL, 1, 0);
    free(t.val);
    t.val = NULL;
    t.len = 0;
    kv_sibs_t one = {1, &t};
    buf = encode(&one, &len);
    const unsigned char *p = buf;
    kv_sibs_t back;
    CU_ASSERT_EQUAL(kv_sibs_decode(&p, buf + len, 0, &back), 0);
    kv_sibs_free(&back);
    free(buf);
    t.dead = 1;
    t.len = 3;
    t.val = (unsigned char *)"abc";
    buf = encode(&one, &len);
    p = buf;
    CU_ASSERT_EQUAL(kv_sibs_decode(&p, buf + len, SIZE_MAX, &back), -1);
    free(buf);
}

static void register_suites(void)
{
    static const CU_TestInfo clocks[] = {
        {"raise and get", test_clock_raise_get},
        {"join: pointwise maximum", test_clock_join},
        {"parse: good and malformed contexts", test_clock_parse},
        {"parse: counters up to UINT64_MAX", test_clock_parse_max},
        {"format: cut and round trips", test_clock_format},
        {"coverage of a dot", test_covers},
        {NULL, NULL},
    };
    static const CU_TestInfo sibs[] = {
        {"a covering context supersedes", test_merge_supersede},
        {"same context: siblings", test_merge_siblings},
        {"one dot, two contexts: joined", test_merge_same_dot},
        {"one dot, equal contexts: no change", test_merge_same_dot_padding},
        {"tombstones", test_merge_tombstones},
        {"lattice on random histories", test_merge_lattice},
        {"latest live sibling", test_latest},
        {NULL, NULL},
    };
    static const CU_TestInfo enc[] = {
        {"round trips", test_encode_roundtrip},
        {"every truncation refused", test_decode_truncated},
        {"byte flips and garbage", test_decode_flips},
        {"max_value", test_decode_max_value},
        {NULL, NULL},
    };
    loom_test_suite("kv clocks", clocks);
    loom_test_suite("kv siblings", sibs);
    loom_test_suite("kv encoding", enc);
}

int main(int argc, char **argv)
{
    return loom_test_main(argc, argv, register_suites);
}
