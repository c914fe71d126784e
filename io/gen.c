/* Graph500 Kronecker and uniform random generators: edge k is a pure function of (seed, k). */
#include "io/gen.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

/* Random word i of a generator is mix(key + i * GOLDEN): splitmix64 with random
 * access, so any rank can produce any edge without generating the ones before it. */
#define GOLDEN 0x9e3779b97f4a7c15ULL

static uint32_t threshold(double p)
{
    double t = p * 4294967296.0;
    return t >= 4294967295.0 ? UINT32_MAX : (uint32_t)t;
}

loom_status_t loom_gen_init(loom_ctx_t *ctx, const loom_gen_params_t *p, loom_gen_t *g)
{
    if (p->kind != LOOM_GEN_KRON && p->kind != LOOM_GEN_URAND)
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "unknown generator kind %d", (int)p->kind);
    if (p->scale < 1 || p->scale > LOOM_GEN_MAX_SCALE)
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "scale %d out of range (1..%d)", p->scale,
                          LOOM_GEN_MAX_SCALE);
    if (p->edge_factor < 1)
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "edge factor %d out of range (must be >= 1)",
                          p->edge_factor);
    /* Edge indices, shares and the round arithmetic stay well inside 64 bits. */
    if ((uint64_t)p->edge_factor > (UINT64_C(1) << (62 - p->scale)))
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                          "edge factor %d too large for scale %d (at most 2^62 edges)",
                          p->edge_factor, p->scale);
    memset(g, 0, sizeof *g);
    g->p = *p;
    g->num_edges = (uint64_t)p->edge_factor << p->scale;
    g->mask = (UINT64_C(1) << p->scale) - 1;
    g->key = loom_gen_mix(p->seed ^ 0x6c6f6f6d67656e31ULL);
    for (int i = 0; i < 3; i++) {
        g->mul[i] = loom_gen_mix(g->key + (uint64_t)(i + 1) * 0xd1b54a32d192ed03ULL) | 1u;
        g->add[i] = loom_gen_mix(g->key ^ (uint64_t)(i + 1) * 0xaef17502108ef2d9ULL);
    }
    g->shift = p->scale >= 2 ? (p->scale + 1) / 2 : 1;
    g->t[0] = threshold(LOOM_KRON_A);
    g->t[1] = threshold(LOOM_KRON_A + LOOM_KRON_B);
    g->t[2] = threshold(LOOM_KRON_A + LOOM_KRON_B + LOOM_KRON_C);
    return LOOM_OK;
}

/* One ':'-separated field of a spec: digits (after a '-' when allow_sign).
 * Returns 0, -1 when it is not a number, -2 when it does not fit 64 bits. */
static int field_number(const char *s, size_t len, int allow_sign, long long *sv,
                        unsigned long long *uv)
{
    char buf[32];
    if (len == 0) return -1;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (i == 0 && allow_sign && s[i] == '-' && len > 1)))
            return -1;
    if (len >= sizeof buf) return -2;
    memcpy(buf, s, len);
    buf[len] = '\0';
    errno = 0;
    if (sv)
        *sv = strtoll(buf, NULL, 10);
    else
        *uv = strtoull(buf, NULL, 10);
    return errno ? -2 : 0;
}

loom_status_t loom_gen_parse_spec(loom_ctx_t *ctx, const char *text, int *is_spec,
                                  loom_gen_params_t *p)
{
    *is_spec = 0;
    memset(p, 0, sizeof *p);
    const char *rest;
    if (!strncmp(text, "kron:", 5)) {
        p->kind = LOOM_GEN_KRON;
        rest = text + 5;
    } else if (!strncmp(text, "urand:", 6)) {
        p->kind = LOOM_GEN_URAND;
        rest = text + 6;
    } else {
        return LOOM_OK;
    }
    *is_spec = 1;
    p->edge_factor = LOOM_GEN_DEFAULT_EDGE_FACTOR;
    p->seed = LOOM_GEN_DEFAULT_SEED;
    static const char *const what[3] = {"scale", "edge factor", "seed"};
    static const long long lo[2] = {1, 1}, hi[2] = {LOOM_GEN_MAX_SCALE, LOOM_GEN_MAX_EDGE_FACTOR};
    int nf = 0;
    while (1) {
        const char *colon = strchr(rest, ':');
        size_t len = colon ? (size_t)(colon - rest) : strlen(rest);
        if (nf == 3)
            return LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                              "bad generator spec '%s': too many fields (kind:SCALE[:EF[:SEED]])",
                              text);
        long long sv = 0;
        unsigned long long uv = 0;
        int bad =
            nf < 2 ? field_number(rest, len, 1, &sv, NULL) : field_number(rest, len, 0, NULL, &uv);
        if (bad == -1)
            return LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                              "bad generator spec '%s': %s '%.*s' is not a number "
                              "(kind:SCALE[:EF[:SEED]])",
                              text, what[nf], (int)len, rest);
        /* The text as given, so that 99999999999 is not reported as a clamped value. */
        if (nf < 2 && (bad == -2 || sv < lo[nf] || sv > hi[nf]))
            return LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                              "bad generator spec '%s': %s %.*s out of range (%lld..%lld)", text,
                              what[nf], (int)len, rest, lo[nf], hi[nf]);
        if (bad == -2)
            return LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                              "bad generator spec '%s': seed %.*s out of range (0..%llu)", text,
                              (int)len, rest, (unsigned long long)UINT64_MAX);
        if (nf == 0)
            p->scale = (int)sv;
        else if (nf == 1)
            p->edge_factor = (int)sv;
        else
            p->seed = uv;
        nf++;
        if (!colon) break;
        rest = colon + 1;
    }
    loom_gen_t g;
    return loom_gen_init(ctx, p, &g);
}

uint64_t loom_gen_relabel(const loom_gen_t *g, uint64_t x)
{
    /* Odd multiply-add mod 2^S moves low bits up; the xorshift moves high bits
     * down. Both are bijections on S-bit words, so the composition is too. */
    for (int i = 0; i < 3; i++) {
        x = (x * g->mul[i] + g->add[i]) & g->mask;
        x ^= x >> g->shift;
    }
    return x;
}

static inline void kron_raw(const loom_gen_t *g, uint64_t k, uint64_t *u, uint64_t *v)
{
    int scale = g->p.scale;
    uint64_t words = (uint64_t)(scale + 1) / 2;
    uint64_t state = g->key + k * words * GOLDEN;
    uint64_t uu = 0, vv = 0;
    /* Each 64-bit word decides two levels from its two 32-bit halves. The
     * quadrant is A (0,0) below t0, B (0,1) below t1, C (1,0) below t2, else D. */
    for (int l = 0; l < scale; l += 2) {
        uint64_t r = loom_gen_mix(state);
        state += GOLDEN;
        uint32_t r0 = (uint32_t)r, r1 = (uint32_t)(r >> 32);
        uint64_t ub = r0 >= g->t[1];
        uint64_t vb = (uint64_t)(r0 >= g->t[0]) ^ ub ^ (uint64_t)(r0 >= g->t[2]);
        uu |= ub << l;
        vv |= vb << l;
        if (l + 1 < scale) {
            ub = r1 >= g->t[1];
            vb = (uint64_t)(r1 >= g->t[0]) ^ ub ^ (uint64_t)(r1 >= g->t[2]);
            uu |= ub << (l + 1);
            vv |= vb << (l + 1);
        }
    }
    *u = uu;
    *v = vv;
}

void loom_gen_edge_raw(const loom_gen_t *g, uint64_t k, uint64_t *u, uint64_t *v)
{
    if (g->p.kind == LOOM_GEN_KRON) {
        kron_raw(g, k, u, v);
    } else {
        *u = loom_gen_mix(g->key + 2 * k * GOLDEN) & g->mask;
        *v = loom_gen_mix(g->key + (2 * k + 1) * GOLDEN) & g->mask;
    }
}

void loom_gen_edge(const loom_gen_t *g, uint64_t k, uint64_t *u, uint64_t *v)
{
    loom_gen_edge_raw(g, k, u, v);
    if (g->p.kind == LOOM_GEN_KRON) {
        *u = loom_gen_relabel(g, *u);
        *v = loom_gen_relabel(g, *v);
    }
}

/* Edges k0 .. k0+cnt-1 (cnt <= FILL_BLOCK), one level pair at a time across the
 * block, so that the compiler can run the mixing of many edges in SIMD lanes. */
#define FILL_BLOCK 16
static void fill_block(const loom_gen_t *g, uint64_t k0, size_t cnt, uint64_t *restrict src,
                       uint64_t *restrict dst)
{
    uint64_t uu[FILL_BLOCK], vv[FILL_BLOCK];
    const uint64_t key = g->key, mask = g->mask;
    if (g->p.kind == LOOM_GEN_URAND) {
        for (size_t j = 0; j < cnt; j++) {
            uint64_t k = k0 + j;
            src[j] = loom_gen_mix(key + 2 * k * GOLDEN) & mask;
            dst[j] = loom_gen_mix(key + (2 * k + 1) * GOLDEN) & mask;
        }
        return;
    }
    const uint64_t words = (uint64_t)(g->p.scale + 1) / 2;
    const uint64_t t0 = g->t[0], t1 = g->t[1], t2 = g->t[2];
    for (size_t j = 0; j < FILL_BLOCK; j++)
        uu[j] = vv[j] = 0;
    for (uint64_t w = 0; w < words; w++) {
        for (size_t j = 0; j < FILL_BLOCK; j++) {
            uint64_t r = loom_gen_mix(key + ((k0 + j) * words + w) * GOLDEN);
            uint64_t r0 = r & 0xffffffffu, r1 = r >> 32;
            uint64_t ub0 = r0 >= t1, ub1 = r1 >= t1;
            uint64_t vb0 = (uint64_t)(r0 >= t0) ^ ub0 ^ (uint64_t)(r0 >= t2);
            uint64_t vb1 = (uint64_t)(r1 >= t0) ^ ub1 ^ (uint64_t)(r1 >= t2);
            /* With an odd scale the last word's upper level lands on bit
             * `scale`, which the mask below drops. */
            uu[j] |= (ub0 | ub1 << 1) << (2 * w);
            vv[j] |= (vb0 | vb1 << 1) << (2 * w);
        }
    }
    for (int i = 0; i < 3; i++) {
        const uint64_t mul = g->mul[i], add = g->add[i];
        const int sh = g->shift;
        for (size_t j = 0; j < FILL_BLOCK; j++) {
            uint64_t x = ((uu[j] & mask) * mul + add) & mask;
            uint64_t y = ((vv[j] & mask) * mul + add) & mask;
            uu[j] = x ^ (x >> sh);
            vv[j] = y ^ (y >> sh);
        }
    }
    for (size_t j = 0; j < cnt; j++) {
        src[j] = uu[j] & mask;
        dst[j] = vv[j] & mask;
    }
}

void loom_gen_fill(const loom_gen_t *g, uint64_t k0, size_t count, uint64_t *src, uint64_t *dst,
                   int threads)
{
    if (threads < 1) threads = 1;
    if (count < 4096) threads = 1;
    size_t blocks = (count + FILL_BLOCK - 1) / FILL_BLOCK;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (size_t b = 0; b < blocks; b++) {
        size_t off = b * FILL_BLOCK, cnt = count - off < FILL_BLOCK ? count - off : FILL_BLOCK;
        fill_block(g, k0 + off, cnt, src + off, dst + off);
    }
}

void loom_gen_share(uint64_t m, int w, int workers, uint64_t *lo, uint64_t *hi)
{
    if (w < 0 || workers < 1) {
        *lo = *hi = 0;
        return;
    }
    uint64_t q = m / (uint64_t)workers, r = m % (uint64_t)workers;
    uint64_t uw = (uint64_t)w;
    *lo = q * uw + (uw < r ? uw : r);
    *hi = *lo + q + (uw < r ? 1 : 0);
}
