/* Internal: word tokenising for text jobs (maximal runs of ASCII letters/digits). */
#ifndef LOOM_KERNELS_TOKENIZE_H
#define LOOM_KERNELS_TOKENIZE_H

#include <stddef.h>

/* 1 for [A-Za-z0-9], 0 otherwise. */
extern const unsigned char loom_tok_is_word[256];

/* Next word at or after *pos in s[0, len): copy it lowercased to buf (room for
 * len bytes), advance *pos past it and return its length; 0 at the end.
 * Thread-safe. */
size_t loom_tok_next_word(const char *s, size_t len, size_t *pos, char *buf);

#endif
