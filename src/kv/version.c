/* Versions of a key: dotted version vectors, reconciliation into siblings, their encoding. */
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "kernels/hash.h"
#include "kv/kv_internal.h"

uint64_t kv_now_us(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
}

uint64_t kv_next_counter(loom_kv_t *kv)
{
    uint64_t now = kv_now_us();
    kv->last_counter = now > kv->last_counter ? now : kv->last_counter + 1;
    return kv->last_counter;
}

uint64_t kv_next_counter_above(loom_kv_t *kv, uint64_t floor)
{
    uint64_t c = kv_next_counter(kv);
    if (c <= floor) c = kv->last_counter = floor + 1;
    return c;
}

uint64_t kv_sibs_max_counter(const kv_sibs_t *s, uint32_t slot)
{
    uint64_t m = 0;
    for (uint32_t i = 0; i < s->n; i++) {
        const kv_version_t *v = &s->v[i];
        if (v->dot.node == slot && v->dot.counter > m) m = v->dot.counter;
        uint64_t c = kv_clock_get(&v->ctx, slot);
        if (c > m) m = c;
    }
    return m;
}

/* ------------------------------------------------------------------ clocks */

static int find_node(const kv_clock_t *c, uint32_t node)
{
    int lo = 0, hi = (int)c->n;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (c->e[mid].node < node)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

uint64_t kv_clock_get(const kv_clock_t *c, uint32_t node)
{
    int i = find_node(c, node);
    return i < (int)c->n && c->e[i].node == node ? c->e[i].counter : 0;
}

int kv_clock_raise(kv_clock_t *c, kv_dot_t d)
{
    int i = find_node(c, d.node);
    if (i < (int)c->n && c->e[i].node == d.node) {
        if (c->e[i].counter < d.counter) c->e[i].counter = d.counter;
        return 0;
    }
    kv_dot_t *e = realloc(c->e, (c->n + 1) * sizeof *e);
    if (!e) return -1;
    memmove(e + i + 1, e + i, (c->n - (uint32_t)i) * sizeof *e);
    e[i] = d;
    c->e = e;
    c->n++;
    return 0;
}

int kv_clock_join(kv_clock_t *into, const kv_clock_t *c)
{
    for (uint32_t i = 0; i < c->n; i++)
        if (kv_clock_raise(into, c->e[i])) return -1;
    return 0;
}

void kv_clock_free(kv_clock_t *c)
{
    free(c->e);
    c->e = NULL;
    c->n = 0;
}

size_t kv_clock_format(const kv_clock_t *c, char *buf, size_t cap)
{
    size_t at = 0;
    if (!cap) return 0;
    buf[0] = '\0';
    for (uint32_t i = 0; i < c->n; i++) {
        char one[48];
        int k = snprintf(one, sizeof one, "%s%u:%llu", i ? "," : "", (unsigned)c->e[i].node,
                         (unsigned long long)c->e[i].counter);
        if (k < 0 || at + (size_t)k + 1 > cap) break;
        memcpy(buf + at, one, (size_t)k + 1);
        at += (size_t)k;
    }
    return at;
}

static int parse_u64(const char **p, const char *end, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    if (s == end || *s < '0' || *s > '9') return -1;
    for (; s < end && *s >= '0' && *s <= '9'; s++) {
        uint64_t d = (uint64_t)(*s - '0');
        if (v > (UINT64_MAX - d) / 10) return -1;
        v = v * 10 + d;
    }
    *p = s;
    *out = v;
    return 0;
}

int kv_clock_parse(const char *s, size_t len, kv_clock_t *out)
{
    const char *p = s, *end = s + len;
    out->n = 0;
    out->e = NULL;
    while (p < end) {
        uint64_t node, counter;
        if (parse_u64(&p, end, &node) || node > UINT32_MAX || p == end || *p++ != ':' ||
            parse_u64(&p, end, &counter) || counter == 0 || (p < end && *p++ != ',') ||
            (p == end && p[-1] == ','))
            goto bad;
        if (kv_clock_raise(out, (kv_dot_t){(uint32_t)node, counter})) {
            kv_clock_free(out);
            return -2;
        }
    }
    return 0;
bad:
    kv_clock_free(out);
    return -1;
}

/* ------------------------------------------------------------------ versions */

int kv_version_covers(const kv_version_t *w, kv_dot_t d)
{
    if (w->dot.node == d.node && w->dot.counter == d.counter) return 1;
    return kv_clock_get(&w->ctx, d.node) >= d.counter;
}

void kv_version_free(kv_version_t *v)
{
    kv_clock_free(&v->ctx);
    free(v->val);
    v->val = NULL;
}

int kv_version_copy(kv_version_t *dst, const kv_version_t *src)
{
    *dst = *src;
    dst->ctx.e = NULL;
    dst->val = NULL;
    if (src->ctx.n) {
        dst->ctx.e = malloc(src->ctx.n * sizeof *dst->ctx.e);
        if (!dst->ctx.e) return -1;
        memcpy(dst->ctx.e, src->ctx.e, src->ctx.n * sizeof *dst->ctx.e);
    }
    if (src->len) {
        dst->val = malloc(src->len);
        if (!dst->val) {
            kv_clock_free(&dst->ctx);
            return -1;
        }
        memcpy(dst->val, src->val, src->len);
    }
    return 0;
}

/* ------------------------------------------------------------------ siblings */

static int same_dot(kv_dot_t a, kv_dot_t b)
{
    return a.node == b.node && a.counter == b.counter;
}

static int clock_equal(const kv_clock_t *a, const kv_clock_t *b)
{
    if (a->n != b->n) return 0;
    for (uint32_t i = 0; i < a->n; i++) /* field by field: kv_dot_t has padding */
        if (a->e[i].node != b->e[i].node || a->e[i].counter != b->e[i].counter) return 0;
    return 1;
}

/* Drop the versions of s that version `keep` (an index) supersedes. */
static void drop_covered(kv_sibs_t *s, uint32_t keep)
{
    const kv_version_t k = s->v[keep]; /* a shallow copy: the array moves under it */
    uint32_t out = 0;
    for (uint32_t i = 0; i < s->n; i++) {
        if (i != keep && kv_version_covers(&k, s->v[i].dot))
            kv_version_free(&s->v[i]);
        else
            s->v[out++] = s->v[i];
    }
    s->n = out;
}

int kv_sibs_merge(kv_sibs_t *s, const kv_sibs_t *in)
{
    int changed = 0;
    for (uint32_t j = 0; j < in->n; j++) {
        const kv_version_t *w = &in->v[j];
        /* the same write (one dot) reached here with another context (it was coordinated
         * twice, e.g. after a forward timed out): it supersedes what either context covers */
        uint32_t same = s->n;
        for (uint32_t i = 0; i < s->n && same == s->n; i++)
            if (same_dot(s->v[i].dot, w->dot)) same = i;
        if (same < s->n) {
            kv_clock_t joined = {0};
            if (kv_clock_join(&joined, &s->v[same].ctx) || kv_clock_join(&joined, &w->ctx)) {
                kv_clock_free(&joined);
                return -1;
            }
            if (clock_equal(&joined, &s->v[same].ctx)) {
                kv_clock_free(&joined);
                continue;
            }
            kv_clock_free(&s->v[same].ctx);
            s->v[same].ctx = joined;
            drop_covered(s, same);
            changed = 1;
            continue;
        }
        int known = 0;
        for (uint32_t i = 0; i < s->n && !known; i++)
            known = kv_version_covers(&s->v[i], w->dot);
        if (known) continue;
        kv_version_t copy;
        if (kv_version_copy(&copy, w)) return -1;
        kv_version_t *grown = realloc(s->v, (s->n + 1) * sizeof *grown);
        if (!grown) {
            kv_version_free(&copy);
            return -1;
        }
        s->v = grown;
        s->v[s->n++] = copy;
        drop_covered(s, s->n - 1);
        changed = 1;
    }
    return changed;
}

int kv_sibs_context(const kv_sibs_t *s, kv_clock_t *out)
{
    for (uint32_t i = 0; i < s->n; i++)
        if (kv_clock_join(out, &s->v[i].ctx) || kv_clock_raise(out, s->v[i].dot)) return -1;
    return 0;
}

const kv_version_t *kv_sibs_latest(const kv_sibs_t *s)
{
    const kv_version_t *best = NULL;
    for (uint32_t i = 0; i < s->n; i++) {
        const kv_version_t *v = &s->v[i];
        if (v->dead) continue;
        if (!best || v->ts > best->ts ||
            (v->ts == best->ts &&
             (v->dot.node > best->dot.node ||
              (v->dot.node == best->dot.node && v->dot.counter > best->dot.counter))))
            best = v;
    }
    return best;
}

uint32_t kv_sibs_live(const kv_sibs_t *s)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < s->n; i++)
        n += !s->v[i].dead;
    return n;
}

int kv_sibs_copy(kv_sibs_t *dst, const kv_sibs_t *src)
{
    dst->n = 0;
    dst->v = src->n ? calloc(src->n, sizeof *dst->v) : NULL;
    if (src->n && !dst->v) return -1;
    for (uint32_t i = 0; i < src->n; i++) {
        if (kv_version_copy(&dst->v[i], &src->v[i])) {
            kv_sibs_free(dst);
            return -1;
        }
        dst->n++;
    }
    return 0;
}

void kv_sibs_free(kv_sibs_t *s)
{
    for (uint32_t i = 0; i < s->n; i++)
        kv_version_free(&s->v[i]);
    free(s->v);
    s->v = NULL;
    s->n = 0;
}

uint64_t kv_sibs_digest(const kv_sibs_t *s)
{
    uint64_t d = 0;
    for (uint32_t i = 0; i < s->n; i++)
        d += loom_hash_mix64(((uint64_t)s->v[i].dot.node << 40) ^ s->v[i].dot.counter ^
                             (uint64_t)s->v[i].dead * LOOM_HASH_K2);
    return loom_hash_mix64(d + s->n);
}

/* Encoding: varint n, then per version: varint node, varint counter, varint ts, u8 dead,
 * varint entries, (varint node, varint counter) each, varint len, the bytes. */
size_t kv_sibs_encoded_max(const kv_sibs_t *s)
{
    size_t n = 10;
    for (uint32_t i = 0; i < s->n; i++)
        n += 10 * 5 + 1 + 20 * (size_t)s->v[i].ctx.n + s->v[i].len;
    return n;
}

unsigned char *kv_sibs_encode(const kv_sibs_t *s, unsigned char *p)
{
    p = loom_put_varint(p, s->n);
    for (uint32_t i = 0; i < s->n; i++) {
        const kv_version_t *v = &s->v[i];
        p = loom_put_varint(p, v->dot.node);
        p = loom_put_varint(p, v->dot.counter);
        p = loom_put_varint(p, v->ts);
        *p++ = (unsigned char)(v->dead != 0);
        p = loom_put_varint(p, v->ctx.n);
        for (uint32_t j = 0; j < v->ctx.n; j++) {
            p = loom_put_varint(p, v->ctx.e[j].node);
            p = loom_put_varint(p, v->ctx.e[j].counter);
        }
        p = loom_put_varint(p, v->len);
        if (v->len) memcpy(p, v->val, v->len);
        p += v->len;
    }
    return p;
}

int kv_sibs_decode(const unsigned char **pp, const unsigned char *end, size_t max_value,
                   kv_sibs_t *s)
{
    const unsigned char *p = *pp;
    uint64_t n, x;
    s->n = 0;
    s->v = NULL;
    if (!(p = loom_get_varint(p, end, &n)) || n > (uint64_t)(end - p)) return -1;
    if (n && !(s->v = calloc(n, sizeof *s->v))) return -2;
    for (uint64_t i = 0; i < n; i++) {
        kv_version_t *v = &s->v[i];
        uint64_t node, counter, ts, ne, len;
        if (!(p = loom_get_varint(p, end, &node)) || node > UINT32_MAX ||
            !(p = loom_get_varint(p, end, &counter)) || !(p = loom_get_varint(p, end, &ts)) ||
            p == end || *p > 1)
            goto bad;
        v->dot = (kv_dot_t){(uint32_t)node, counter};
        v->ts = ts;
        v->dead = *p++;
        if (!(p = loom_get_varint(p, end, &ne)) || ne > (uint64_t)(end - p) / 2) goto bad;
        s->n++; /* from here v is freed with the rest */
        if (ne && !(v->ctx.e = malloc(ne * sizeof *v->ctx.e))) goto nomem;
        for (uint64_t j = 0; j < ne; j++) {
            if (!(p = loom_get_varint(p, end, &x)) || x > UINT32_MAX) goto bad;
            v->ctx.e[j].node = (uint32_t)x;
            if (!(p = loom_get_varint(p, end, &x)) || !x) goto bad;
            v->ctx.e[j].counter = x;
            if (j && v->ctx.e[j].node <= v->ctx.e[j - 1].node) goto bad;
            v->ctx.n++;
        }
        if (!(p = loom_get_varint(p, end, &len)) || len > (uint64_t)(end - p) || len > max_value ||
            len > UINT32_MAX || (v->dead && len))
            goto bad;
        v->len = (uint32_t)len;
        if (len) {
            if (!(v->val = malloc(len))) goto nomem;
            memcpy(v->val, p, len);
            p += len;
        }
    }
    *pp = p;
    return 0;
bad:
    kv_sibs_free(s);
    return -1;
nomem:
    kv_sibs_free(s);
    return -2;
}
