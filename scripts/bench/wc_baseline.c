/* COST baseline for wordcount: one thread, one hash table, the same word rule (ASCII alnum runs, lowercased). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct { char *w; size_t n; unsigned long long c; } slot_t;
static slot_t *tab;
static size_t cap = 1 << 20, used;

static size_t hash(const char *s, size_t n)
{
    unsigned long long h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return (size_t)(h ^ (h >> 29));
}

static void add(const char *w, size_t n)
{
    if (2 * (used + 1) > cap) { /* grow and rehash */
        slot_t *old = tab; size_t oc = cap;
        tab = calloc(cap *= 2, sizeof *tab);
        for (size_t i = 0; i < oc; i++)
            if (old[i].w) { size_t j = hash(old[i].w, old[i].n) & (cap - 1); while (tab[j].w) j = (j + 1) & (cap - 1); tab[j] = old[i]; }
        free(old);
    }
    size_t j = hash(w, n) & (cap - 1);
    while (tab[j].w && !(tab[j].n == n && !memcmp(tab[j].w, w, n))) j = (j + 1) & (cap - 1);
    if (!tab[j].w) { tab[j].w = memcpy(malloc(n), w, n); tab[j].n = n; used++; }
    tab[j].c++;
}

int main(int argc, char **argv)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    tab = calloc(cap, sizeof *tab);
    static char buf[1 << 20], word[1 << 16];
    unsigned long long bytes = 0, total = 0;
    for (int a = 1; a < argc; a++) {
        FILE *f = fopen(argv[a], "rb");
        if (!f) { perror(argv[a]); return 1; }
        size_t n, wl = 0;
        while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
            bytes += n;
            for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)buf[i];
                int alnum = (c >= '0' && c <= '9') || ((c | 32) >= 'a' && (c | 32) <= 'z');
                if (alnum && wl < sizeof word) word[wl++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
                else if (!alnum && wl) { add(word, wl); total++; wl = 0; }
            }
        }
        if (wl) { add(word, wl); total++; }
        fclose(f);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    printf("{\"bytes\": %llu, \"words\": %llu, \"distinct\": %zu, \"seconds\": %.3f, \"MBps\": %.1f}\n",
           bytes, total, used, s, (double)bytes / 1e6 / s);
    return 0;
}
