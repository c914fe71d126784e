/* Pure text parsing for the readers: lines of a chunk, tokens and numbers. */
#include "io/textparse.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

uint64_t loom_text_count_lines(const char *data, size_t len)
{
    uint64_t n = 0;
    const char *p = data, *end = data + len;
    while (p < end && (p = memchr(p, '\n', (size_t)(end - p)))) {
        n++;
        p++;
    }
    return n;
}

void loom_text_cursor_init(loom_text_cursor_t *c, const loom_text_chunk_t *chunk)
{
    c->chunk = chunk;
    c->pos = 0;
    c->line = chunk->first_line ? chunk->first_line - 1 : 0;
}

int loom_text_next_line(loom_text_cursor_t *c, const char **line, size_t *len)
{
    const loom_text_chunk_t *ch = c->chunk;
    if (!ch->data || c->pos >= ch->len) return 0;
    const char *s = ch->data + c->pos;
    size_t left = ch->len - c->pos;
    const char *nl = memchr(s, '\n', left);
    size_t n = nl ? (size_t)(nl - s) : left;
    c->pos += nl ? n + 1 : n;
    c->line++;
    if (n > 0 && s[n - 1] == '\r') n--;
    *line = s;
    *len = n;
    return 1;
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

int loom_text_tokens(const char *line, size_t len, const char **tok, size_t *toklen, int max)
{
    int n = 0;
    size_t i = 0;
    while (i < len) {
        while (i < len && is_blank(line[i]))
            i++;
        if (i >= len) break;
        size_t start = i;
        while (i < len && !is_blank(line[i]))
            i++;
        if (n < max) {
            tok[n] = line + start;
            toklen[n] = i - start;
        }
        n++;
    }
    return n;
}

loom_num_status_t loom_text_parse_u64(const char *tok, size_t len, uint64_t max, uint64_t *v)
{
    size_t i = 0;
    int negative = 0;
    if (len > 0 && (tok[0] == '+' || tok[0] == '-')) {
        negative = tok[0] == '-';
        i = 1;
    }
    if (i >= len) return LOOM_NUM_NOT_A_NUMBER;
    uint64_t x = 0;
    int big = 0;
    for (; i < len; i++) {
        if (tok[i] < '0' || tok[i] > '9') return LOOM_NUM_NOT_A_NUMBER;
        unsigned d = (unsigned)(tok[i] - '0');
        if (x > (UINT64_MAX - d) / 10)
            big = 1;
        else
            x = x * 10 + d;
    }
    if (negative) {
        if (x == 0 && !big) {
            *v = 0; /* "-0" is zero */
            return LOOM_NUM_OK;
        }
        return LOOM_NUM_NEGATIVE;
    }
    if (big || x > max) return LOOM_NUM_TOO_LARGE;
    *v = x;
    return LOOM_NUM_OK;
}

loom_num_status_t loom_text_parse_double(const char *tok, size_t len, double *v)
{
    char buf[128];
    if (len == 0 || len >= sizeof buf) return LOOM_NUM_NOT_A_NUMBER;
    memcpy(buf, tok, len);
    buf[len] = '\0';
    char *end = NULL;
    double x = strtod(buf, &end);
    if (end != buf + len) return LOOM_NUM_NOT_A_NUMBER;
    if (!isfinite(x)) return LOOM_NUM_NOT_FINITE;
    *v = x;
    return LOOM_NUM_OK;
}

int loom_text_is_integer(const char *tok, size_t len)
{
    size_t i = len > 0 && (tok[0] == '+' || tok[0] == '-') ? 1 : 0;
    if (i >= len) return 0;
    for (; i < len; i++)
        if (tok[i] < '0' || tok[i] > '9') return 0;
    return 1;
}

size_t loom_text_bom_length(const char *data, size_t len)
{
    return len >= LOOM_TEXT_BOM_LEN && memcmp(data, LOOM_TEXT_BOM, LOOM_TEXT_BOM_LEN) == 0
               ? LOOM_TEXT_BOM_LEN
               : 0;
}

const char *loom_text_quote(const char *tok, size_t len, char *buf, size_t cap)
{
    size_t n = len < cap - 4 ? len : cap - 4;
    memcpy(buf, tok, n);
    if (n < len) memcpy(buf + n, "...", 3), n += 3;
    buf[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)buf[i] < 32) buf[i] = '?';
    return buf;
}

char *loom_text_put_u64(char *p, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}
