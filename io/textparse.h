/* Internal: pure text parsing shared by the readers (lines of a chunk, tokens,
 * numbers). No MPI and no context, so the parsers can be fuzzed on their own. */
#ifndef LOOM_IO_TEXTPARSE_H
#define LOOM_IO_TEXTPARSE_H

#include <stddef.h>
#include <stdint.h>

/* A byte range of a text file held in memory. A range owns every line that
 * starts inside it, so ranges cut at the same nominal offsets tile the file
 * with no line split or repeated. */
typedef struct loom_text_chunk {
    char *data;          /* bytes [begin, end) plus a terminating NUL; NULL when empty */
    size_t len;          /* end - begin */
    uint64_t begin, end; /* aligned byte offsets in the file */
    uint64_t first_line; /* 1-based line number (in the file) of the first line in data */
} loom_text_chunk_t;

/* Number of '\n' bytes in data[0, len). Thread-safe. */
uint64_t loom_text_count_lines(const char *data, size_t len);

/* A cursor over the lines of a chunk. next_line returns 0 at the end; the line
 * excludes its '\n' and a '\r' before it (CRLF files), and is not NUL-terminated
 * (but data[len] is '\n', '\r' or NUL, never a digit). */
typedef struct loom_text_cursor {
    const loom_text_chunk_t *chunk;
    size_t pos;
    uint64_t line; /* number of the line last returned */
} loom_text_cursor_t;

void loom_text_cursor_init(loom_text_cursor_t *c, const loom_text_chunk_t *chunk);
int loom_text_next_line(loom_text_cursor_t *c, const char **line, size_t *len);

/* Tokens of a line, split on blanks (space, tab, CR, VT, FF). Returns the number
 * of tokens found, storing at most `max` of them; counts the rest. */
int loom_text_tokens(const char *line, size_t len, const char **tok, size_t *toklen, int max);

/* The UTF-8 byte-order mark some editors put at the start of a text file. */
#define LOOM_TEXT_BOM "\xEF\xBB\xBF"
#define LOOM_TEXT_BOM_LEN 3
/* LOOM_TEXT_BOM_LEN when data[0, len) starts with a byte-order mark, else 0. */
size_t loom_text_bom_length(const char *data, size_t len);

/* Result of parsing a number token. */
typedef enum loom_num_status {
    LOOM_NUM_OK = 0,
    LOOM_NUM_NOT_A_NUMBER, /* not all digits (integers) or not strtod syntax (reals) */
    LOOM_NUM_NEGATIVE,     /* "-" followed by digits */
    LOOM_NUM_TOO_LARGE,    /* above `max` */
    LOOM_NUM_NOT_FINITE,   /* a real that is NaN or infinite ("nan", "inf", "1e999") */
} loom_num_status_t;

/* Parse an unsigned decimal token (an optional '+', then digits) no larger
 * than `max`. Thread-safe. */
loom_num_status_t loom_text_parse_u64(const char *tok, size_t len, uint64_t max, uint64_t *v);
/* Parse a floating-point token (strtod syntax); NaN and infinities are refused
 * with LOOM_NUM_NOT_FINITE. Thread-safe. */
loom_num_status_t loom_text_parse_double(const char *tok, size_t len, double *v);
/* 1 when the token is a decimal integer: an optional sign, then digits only. */
int loom_text_is_integer(const char *tok, size_t len);
/* Copy a token for a message, cut to a readable length, into buf. */
const char *loom_text_quote(const char *tok, size_t len, char *buf, size_t cap);

/* Append the decimal digits of v to p and return the new end. */
char *loom_text_put_u64(char *p, uint64_t v);

#endif
