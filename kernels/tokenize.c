/* Word tokenising: maximal runs of ASCII letters and digits, lowercased, by table lookup. */
#include "kernels/tokenize.h"

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
