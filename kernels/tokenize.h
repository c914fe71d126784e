/* Internal: word tokenising for text jobs (maximal runs of ASCII letters/digits). */
#ifndef LOOM_KERNELS_TOKENIZE_H
#define LOOM_KERNELS_TOKENIZE_H

#include <stddef.h>
#include <stdint.h>

/* 1 for [A-Za-z0-9], 0 otherwise. */
extern const unsigned char loom_tok_is_word[256];

/* Next word at or after *pos in s[0, len): copy it lowercased to buf (room for
 * len bytes), advance *pos past it and return its length; 0 at the end.
 * Thread-safe. */
size_t loom_tok_next_word(const char *s, size_t len, size_t *pos, char *buf);

/* Block tokeniser, the fast path for long texts: one pass classifies and
 * lowercases up to LOOM_TOK_BLOCK bytes with vector instructions into a
 * bitmap of word bytes and a padded lowercase copy; words are then read off
 * the bitmap with bit scans, with no per-byte branch. */
#define LOOM_TOK_BLOCK 4096
/* Readable bytes past the end of any word in `low`: hashes and compares may
 * load whole 8- or 16-byte words. */
#define LOOM_TOK_PAD 64

typedef struct loom_tok_block {
    size_t n;   /* bytes in the block */
    size_t pos; /* scan position */
    uint64_t bits[LOOM_TOK_BLOCK / 64 + 1];
    unsigned char low[LOOM_TOK_BLOCK + LOOM_TOK_PAD];
} loom_tok_block_t;

/* Load the next block from s[0, len): at most LOOM_TOK_BLOCK bytes, cut so
 * that no word straddles the block's end. Returns the bytes consumed; 0 means
 * that s starts with a word longer than a block (take it with
 * loom_tok_next_word). Thread-safe (b is the caller's). */
size_t loom_tok_fill(loom_tok_block_t *b, const char *s, size_t len);

/* First bit at or after pos equal to `want` (bits past n read as 0), or n. */
static inline size_t loom_tok_scan(const uint64_t *bits, size_t pos, size_t n, int want)
{
    if (pos >= n) return n;
    size_t w = pos >> 6;
    uint64_t flip = want ? 0 : ~0ULL;
    uint64_t x = (bits[w] ^ flip) & (~0ULL << (pos & 63));
    while (!x) {
        if (++w << 6 >= n) return n;
        x = bits[w] ^ flip;
    }
    size_t at = (w << 6) + (size_t)__builtin_ctzll(x);
    return at < n ? at : n;
}

/* Most words a block holds (one every other byte), plus the slack that
 * loom_tok_words may write past its last word. */
#define LOOM_TOK_MAXWORDS (LOOM_TOK_BLOCK / 2 + 16)

/* Every word of a filled block at once: word i is b->low[start[i], end[i]).
 * Returns the number of words; start and end need LOOM_TOK_MAXWORDS entries
 * (entries past the count are scratch). Word starts and ends are bit masks of
 * the bitmap and its shift, turned into positions 16 at a time with bit scans
 * and no branch per word. Thread-safe. */
size_t loom_tok_words(const loom_tok_block_t *b, uint16_t *start, uint16_t *end);

/* Next word of the block: its start in b->low and its length; 0 at the end. */
static inline size_t loom_tok_next(loom_tok_block_t *b, size_t *start)
{
    size_t s = loom_tok_scan(b->bits, b->pos, b->n, 1);
    if (s == b->n) return 0;
    size_t e = loom_tok_scan(b->bits, s + 1, b->n, 0);
    b->pos = e;
    *start = s;
    return e - s;
}

#endif
