/* Word count's map kernels on one core, in memory: tokenising, tokenising + hashing, and the
 * whole map of `loom wordcount` (loom_mr_emit_words into a combining store, as a map task
 * does), over the files given, best and median of REPS passes each. Times are the thread's
 * CPU time (a rate per core that another process on the machine disturbs less).
 *
 *   mpicc -O3 -march=native -Iinclude -Ibuild/release/include -Isrc -I. \
 *       scripts/bench/wc_kernels.c -Lbuild/release -lloom -Wl,-rpath,$PWD/build/release \
 *       -o /tmp/wc_kernels
 *   /tmp/wc_kernels [--reps N] [--split BYTES] FILE...      (default 5 reps, 32 MiB split)
 *
 * Prints one JSON object per line: kernel, MB/s and Mwords/s, and for the map the store's
 * distinct words and total count (checked equal to the tokeniser's word count). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/hash.h"
#include "kernels/tokenize.h"
#include "loom/loom.h"
#include "mr/mr_internal.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static uint64_t byte_mask(size_t n)
{
    return n >= 8 ? ~0ULL : (1ULL << (8 * n)) - 1;
}

/* One pass of the tokeniser (hash = 0) or tokeniser + hash over d[0, len); returns the
 * number of words and folds a checksum into *sum. */
static uint64_t tok_pass(const char *d, size_t len, int hash, uint64_t *sum)
{
    static loom_tok_block_t b;
    static uint16_t ws[LOOM_TOK_MAXWORDS], we[LOOM_TOK_MAXWORDS];
    uint64_t words = 0, acc = 0;
    for (size_t i = 0; i < len;) {
        size_t k = loom_tok_fill(&b, d + i, len - i);
        if (!k) { /* a word longer than a block */
            while (i < len && loom_tok_is_word[(unsigned char)d[i]])
                i++;
            words++;
            continue;
        }
        size_t nw = loom_tok_words(&b, ws, we);
        words += nw;
        for (size_t j = 0; j < nw; j++) {
            size_t a = ws[j], n = (size_t)(we[j] - ws[j]);
            if (!hash) {
                acc += a ^ n;
                continue;
            }
            uint64_t w0, w1;
            memcpy(&w0, b.low + a, 8);
            memcpy(&w1, b.low + a + 8, 8);
            w0 &= byte_mask(n);
            w1 &= n > 8 ? byte_mask(n - 8) : 0;
            acc += n <= 16 ? loom_hash_short(w0, w1, n, LOOM_KEY_HASH_SEED)
                           : loom_hash_padded(b.low + a, n, LOOM_KEY_HASH_SEED);
        }
        i += k;
    }
    *sum += acc;
    return words;
}

static loom_status_t wc_map(loom_ctx_t *ctx, const loom_mr_record_t *rec, loom_mr_emit_t *out,
                            void *user)
{
    static const uint64_t one = 1;
    (void)ctx;
    (void)user;
    return loom_mr_emit_words(out, rec->data, rec->len, &one, sizeof one);
}

/* One pass of the map: each split (cut after a newline) into a fresh task stage, merged
 * into the worker's accumulating store, as a worker does. */
static loom_status_t map_pass(mr_engine_t *eng, const char *d, size_t len, size_t split,
                              size_t *distinct, uint64_t *total)
{
    mr_store_t acc, stage;
    mr_store_init(&acc, eng, (size_t)1 << 40);
    mr_store_init(&stage, eng, (size_t)1 << 40);
    loom_status_t st = LOOM_OK;
    for (size_t i = 0; i < len && st == LOOM_OK;) {
        size_t k = len - i < split ? len - i : split;
        const char *nl = i + k < len ? memchr(d + i + k, '\n', len - i - k) : NULL;
        if (nl) k = (size_t)(nl - (d + i)) + 1;
        mr_store_discard(&stage);
        loom_mr_emit_t em = {.kind = MR_EMIT_MAP, .eng = eng, .store = &stage};
        loom_mr_record_t rec = {.data = d + i, .len = k};
        st = wc_map(eng->ctx, &rec, &em, NULL);
        if (st == LOOM_OK) st = mr_store_merge(&acc, &stage);
        i += k;
    }
    *distinct = acc.nent;
    *total = 0;
    for (size_t i = 0; i < acc.nent; i++)
        *total += acc.ent[i].ival;
    mr_store_free(&stage);
    mr_store_free(&acc);
    return st;
}

static void report(const char *kernel, double *t, int reps, size_t bytes, uint64_t words)
{
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    double med = t[reps / 2];
    printf("{\"kernel\": \"%s\", \"MBps_best\": %.0f, \"MBps_median\": %.0f, "
           "\"Mwords_per_s_median\": %.1f}\n",
           kernel, (double)bytes / 1e6 / t[0], (double)bytes / 1e6 / med,
           (double)words / 1e6 / med);
}

int main(int argc, char **argv)
{
    loom_ctx_t *ctx;
    if (loom_ctx_create(&argc, &argv, &ctx) != LOOM_OK) return 1;
    int reps = 5;
    size_t split = (size_t)32 << 20, len = 0, cap = 0;
    char *d = NULL;
    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--reps") && a + 1 < argc) {
            reps = atoi(argv[++a]);
            continue;
        }
        if (!strcmp(argv[a], "--split") && a + 1 < argc) {
            split = (size_t)atoll(argv[++a]);
            continue;
        }
        FILE *f = fopen(argv[a], "rb");
        if (!f) {
            perror(argv[a]);
            return 1;
        }
        size_t n;
        do {
            if (cap - len < (1 << 20)) {
                cap = cap ? 2 * cap : (size_t)64 << 20;
                d = realloc(d, cap);
                if (!d) return 1;
            }
            n = fread(d + len, 1, cap - len, f);
            len += n;
        } while (n > 0);
        fclose(f);
    }
    if (reps < 1 || reps > 100 || !len) {
        fprintf(stderr, "usage: wc_kernels [--reps N] [--split BYTES] FILE...\n");
        return 2;
    }
    double t[100];
    uint64_t words = 0, sum = 0;
    for (int hash = 0; hash < 2; hash++) {
        for (int r = 0; r < reps; r++) {
            double t0 = now();
            words = tok_pass(d, len, hash, &sum);
            t[r] = now() - t0;
        }
        report(hash ? "tokenise+hash" : "tokenise", t, reps, len, words);
    }
    loom_mr_job_t job = {.name = "wordcount", .combine = loom_mr_combine_sum_u64};
    mr_engine_t eng = {.ctx = ctx, .job = &job, .nparts = 2};
    size_t distinct = 0;
    uint64_t total = 0;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        if (map_pass(&eng, d, len, split, &distinct, &total) != LOOM_OK) {
            fprintf(stderr, "wc_kernels: %s\n", loom_error_message(ctx));
            return 1;
        }
        t[r] = now() - t0;
    }
    report("map (emit_words into a combining store)", t, reps, len, words);
    printf("{\"bytes\": %zu, \"words\": %llu, \"distinct\": %zu, \"map_total\": %llu, "
           "\"check\": \"%s\", \"checksum\": \"%llx\"}\n",
           len, (unsigned long long)words, distinct, (unsigned long long)total,
           total == words ? "ok" : "MISMATCH", (unsigned long long)sum);
    free(d);
    loom_ctx_destroy(&ctx);
    return total == words ? 0 : 1;
}
