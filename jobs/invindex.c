/* `loom invindex INPUT... --out DIR`: every word with the sorted list of its file:line places. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loom/loom.h"
#include "loom/mr.h"

/* Words follow wordcount's rule (maximal runs of ASCII letters/digits,
 * lowercased). Output lines are "word<TAB>file:line,file:line,...", places in
 * input order (files in the order the inputs expand to, then line number),
 * each place once even when the word repeats on the line. Values are
 * (file index, line) big-endian so the engine's value sort gives that order
 * and reduce streams them: a word on most lines needs no memory for its list. */
static void put_be(unsigned char *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

static uint64_t get_be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

static loom_status_t map(loom_ctx_t *ctx, const loom_mr_record_t *rec, loom_mr_emit_t *out,
                         void *user)
{
    unsigned char place[12];
    put_be(place, rec->file_index, 4);
    put_be(place + 4, rec->line, 8);
    return loom_mr_emit_words(out, rec->data, rec->len, place, sizeof place);
}

static loom_status_t reduce(loom_ctx_t *ctx, const void *key, size_t klen, loom_mr_values_t *vals,
                            loom_mr_emit_t *out, void *user)
{
    LOOM_TRY(loom_mr_write(out, key, klen));
    unsigned char last[12];
    int first = 1;
    const void *v;
    size_t vl;
    while (loom_mr_values_next(vals, &v, &vl)) {
        if (vl != sizeof last) continue;
        if (!first && memcmp(last, v, sizeof last) == 0) continue;
        memcpy(last, v, sizeof last);
        const char *path = loom_mr_input_path(out, (uint32_t)get_be(last, 4));
        char num[32];
        int nn = snprintf(num, sizeof num, ":%llu", (unsigned long long)get_be(last + 4, 8));
        LOOM_TRY(loom_mr_write(out, first ? "\t" : ",", 1));
        LOOM_TRY(loom_mr_write(out, path ? path : "?", path ? strlen(path) : 1));
        LOOM_TRY(loom_mr_write(out, num, (size_t)nn));
        first = 0;
    }
    return loom_mr_write(out, "\n", 1);
}

static const loom_option_t options[] = {
    LOOM_MR_OPTION_ROWS,
    {NULL, LOOM_OPT_END, NULL, NULL, NULL, 0, 0, 0},
};

static loom_status_t run(loom_ctx_t *ctx, const loom_opts_t *opts)
{
    loom_mr_job_t job = {.name = "invindex",
                         .map = map,
                         .map_thread_safe = 1,
                         .reduce = reduce,
                         .sort_values = 1,
                         .line_numbers = 1};
    return loom_mr_run_command(ctx, opts, 0, &job);
}

const loom_job_t loom_job_invindex = {
    .name = "invindex",
    .summary = "inverted index: each word with its sorted file:line places",
    .usage = "loom invindex INPUT... --out DIR|FILE.h5 [options]   (INPUT: file, dir, glob, "
             "FILE.h5:/DATASET, gen:N)",
    .options = options,
    .run = run,
};
