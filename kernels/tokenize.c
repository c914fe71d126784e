/* Word tokenising: maximal runs of ASCII letters and digits, lowercased. */
#include "kernels/tokenize.h"

#include <string.h>

#define W1(c) [c] = 1
#define LETTERS(m)                                                                                 \
    m('a'), m('b'), m('c'), m('d'), m('e'), m('f'), m('g'), m('h'), m('i'), m('j'), m('k'),        \
        m('l'), m('m'), m('n'), m('o'), m('p'), m('q'), m('r'), m('s'), m('t'), m('u'), m('v'),    \
        m('w'), m('x'), m('y'), m('z')
#define UPPER(m)                                                                                   \
    m('A'), m('B'), m('C'), m('D'), m('E'), m('F'), m('G'), m('H'), m('I'), m('J'), m('K'),        \
        m('L'), m('M'), m('N'), m('O'), m('P'), m('Q'), m('R'), m('S'), m('T'), m('U'), m('V'),    \
        m('W'), m('X'), m('Y'), m('Z')
#define DIGITS(m) m('0'), m('1'), m('2'), m('3'), m('4'), m('5'), m('6'), m('7'), m('8'), m('9')

const unsigned char loom_tok_is_word[256] = {LETTERS(W1), UPPER(W1), DIGITS(W1)};

#define LOW(c) [c] = (unsigned char)((c) + 32)
/* Nonzero only for A-Z: their lowercase. */
static const unsigned char upper_to_lower[256] = {UPPER(LOW)};

size_t loom_tok_next_word(const char *s, size_t len, size_t *pos, char *buf)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = *pos;
    while (i < len && !loom_tok_is_word[u[i]])
        i++;
    size_t n = 0;
    while (i < len && loom_tok_is_word[u[i]]) {
        unsigned char c = u[i++];
        buf[n++] = (char)(upper_to_lower[c] ? upper_to_lower[c] : c);
    }
    *pos = i;
    return n;
}

/* 64 bytes at a time: lowercase them into low[0, 64) and return their word-byte
 * mask (bit j for byte j). GCC vector extensions: the comparisons compile to
 * SIMD on every target, and the byte-to-bit gather below to a movemask where
 * the compiler finds one. */
typedef unsigned char loom_v64u8 __attribute__((vector_size(64)));

static inline uint64_t classify64(const unsigned char *in, unsigned char *low)
{
    loom_v64u8 v;
    memcpy(&v, in, sizeof v);
    loom_v64u8 up = (loom_v64u8)((loom_v64u8)(v - 'A') < 26);
    loom_v64u8 lo = (loom_v64u8)((loom_v64u8)(v - 'a') < 26);
    loom_v64u8 dg = (loom_v64u8)((loom_v64u8)(v - '0') < 10);
    loom_v64u8 w = up | lo | dg;
    v += up & 32;
    memcpy(low, &v, sizeof v);
#if defined(__AVX512BW__)
    typedef char v64c __attribute__((vector_size(64)));
    return (uint64_t)__builtin_ia32_cvtb2mask512((v64c)w);
#elif defined(__AVX2__)
    typedef char v32c __attribute__((vector_size(32)));
    v32c a, b;
    memcpy(&a, (const char *)&w, 32);
    memcpy(&b, (const char *)&w + 32, 32);
    return (uint64_t)(uint32_t)__builtin_ia32_pmovmskb256(a) |
           (uint64_t)(uint32_t)__builtin_ia32_pmovmskb256(b) << 32;
#else
    uint64_t m = 0;
    for (int j = 0; j < 64; j++)
        m |= (uint64_t)(w[j] & 1) << j;
    return m;
#endif
}

size_t loom_tok_fill(loom_tok_block_t *b, const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t k = len < LOOM_TOK_BLOCK ? len : LOOM_TOK_BLOCK;
    if (k < len && loom_tok_is_word[u[k]]) {
        /* a word runs past the block: end the block before it */
        while (k > 0 && loom_tok_is_word[u[k - 1]])
            k--;
    }
    b->n = k;
    b->pos = 0;
    size_t full = k & ~(size_t)63;
    for (size_t j = 0; j < full; j += 64)
        b->bits[j >> 6] = classify64(u + j, b->low + j);
    if (k > full) {
        /* the tail through a zero-padded copy: never read past s + len */
        unsigned char tail[64] = {0};
        memcpy(tail, u + full, k - full);
        b->bits[full >> 6] = classify64(tail, b->low + full) & (~0ULL >> (64 - (k - full)));
    }
    b->bits[(k + 63) >> 6] = 0;
    return k;
}

/* The positions base + j of the set bits j of m, into out[k, ...); returns the
 * new count. The first 16 are written whether or not there are as many (the
 * caller's slack), so a chunk with few words costs no branch per word. */
static inline size_t flatten(uint16_t *out, size_t k, uint64_t m, unsigned base)
{
    size_t cnt = (size_t)__builtin_popcountll(m);
    uint16_t *o = out + k;
    for (int i = 0; i < 16; i++) {
        /* bit 63 keeps the scan defined once m is empty (its result unused) */
        o[i] = (uint16_t)(base + (unsigned)__builtin_ctzll(m | 1ULL << 63));
        m &= m - 1;
    }
    for (size_t i = 16; i < cnt; i++) {
        o[i] = (uint16_t)(base + (unsigned)__builtin_ctzll(m));
        m &= m - 1;
    }
    return k + cnt;
}

size_t loom_tok_words(const loom_tok_block_t *b, uint16_t *start, uint16_t *end)
{
    size_t ns = 0, ne = 0;
    uint64_t carry = 0; /* the previous chunk's last byte is a word byte */
    /* through the chunk holding byte n (a 0 bit): a word ending at n ends there */
    for (size_t c = 0; c <= b->n >> 6; c++) {
        uint64_t w = b->bits[c];
        uint64_t prev = w << 1 | carry; /* bit j: byte j - 1 is a word byte */
        carry = w >> 63;
        ns = flatten(start, ns, w & ~prev, (unsigned)(c << 6));
        ne = flatten(end, ne, ~w & prev, (unsigned)(c << 6));
    }
    return ns;
}
