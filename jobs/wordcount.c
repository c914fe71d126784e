/* `loom wordcount INPUT... --out DIR`: occurrences of every word, as "word<TAB>count" lines. */
#include <stdlib.h>

#include "loom/loom.h"
#include "loom/mr.h"

/* Tokenisation (loom_mr_next_word's rule): a word is a maximal run of ASCII
 * letters and digits, lowercased; every other byte separates words. */
static loom_status_t map(loom_ctx_t *ctx, const loom_mr_record_t *rec, loom_mr_emit_t *out,
                         void *user)
{
    static const uint64_t one = 1;
    return loom_mr_emit_words(out, rec->data, rec->len, &one, sizeof one);
}

static loom_status_t reduce(loom_ctx_t *ctx, const void *key, size_t klen, loom_mr_values_t *vals,
                            loom_mr_emit_t *out, void *user)
{
    uint64_t sum = 0;
    const void *v;
    size_t vl;
    while (loom_mr_values_next(vals, &v, &vl))
        sum += loom_mr_u64(v, vl);
    return loom_mr_emit_u64(out, key, klen, sum);
}

static const loom_option_t options[] = {
    LOOM_MR_OPTION_ROWS,
    {NULL, LOOM_OPT_END, NULL, NULL, NULL, 0, 0, 0},
};

static loom_status_t run(loom_ctx_t *ctx, const loom_opts_t *opts)
{
    loom_mr_job_t job = {.name = "wordcount",
                         .map = map,
                         .map_thread_safe = 1,
                         .map_blocks = 1,
                         .combine = loom_mr_combine_sum_u64,
                         .reduce = reduce,
                         .output_mode = LOOM_MR_OUT_KV};
    return loom_mr_run_command(ctx, opts, 0, &job);
}

const loom_job_t loom_job_wordcount = {
    .name = "wordcount",
    .summary = "count words (maximal runs of ASCII letters/digits, lowercased) with MapReduce",
    .usage = "loom wordcount INPUT... --out DIR|FILE.h5 [options]   (INPUT: file, dir, glob, "
             "FILE.h5:/DATASET, gen:N)",
    .options = options,
    .run = run,
};
