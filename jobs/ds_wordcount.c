/* `loom ds-wordcount INPUT... --out DIR`: word count written on datasets, as a Spark user would. */
#include <stdio.h>
#include <stdlib.h>

#include "loom/loom.h"

/* Every word of a line, with the count 1 (the word-count rule: maximal runs of
 * ASCII letters and digits, lowercased). */
static loom_status_t words(const loom_ds_rec_t *line, loom_ds_out_t *out, void *user)
{
    static const uint64_t one = 1;
    (void)user;
    return loom_ds_emit_words(out, line->key, line->klen, &one, sizeof one);
}

/* (word, count) as text, "word<TAB>count" once saved. */
static loom_status_t as_text(const loom_ds_rec_t *r, loom_ds_out_t *out, void *user)
{
    char num[24];
    (void)user;
    int n = snprintf(num, sizeof num, "%llu", (unsigned long long)loom_ds_u64(r->val, r->vlen));
    return loom_ds_emit(out, r->key, r->klen, num, (size_t)n);
}

static const loom_option_t options[] = {
    {"out", LOOM_OPT_STRING, NULL, "output directory (part files, _SUCCESS) or FILE.h5", NULL, 0, 0,
     0},
    {"overwrite", LOOM_OPT_FLAG, NULL, "replace an earlier Loom output at --out", NULL, 0, 0, 0},
    LOOM_DS_OPTION_ROWS,
    {NULL, LOOM_OPT_END, NULL, NULL, NULL, 0, 0, 0},
};

static loom_status_t run(loom_ctx_t *ctx, const loom_opts_t *opts)
{
    const char *out = loom_opt_string(opts, "out");
    if (!out) return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "ds-wordcount: --out DIR is required");
    int n = loom_opts_nargs(opts);
    const char **inputs = malloc((size_t)(n > 0 ? n : 1) * sizeof *inputs);
    if (!inputs) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++)
        inputs[i] = loom_opts_arg(opts, i);
    loom_ds_engine_t *e;
    loom_status_t st = loom_ds_engine_from_opts(ctx, opts, NULL, &e);
    if (st == LOOM_OK) {
        loom_ds_t *lines = loom_ds_text(e, inputs, n);
        loom_ds_t *counts =
            loom_ds_reduce_by_key(loom_ds_flat_map(lines, words, NULL), loom_ds_sum_u64, NULL, 0);
        st =
            loom_ds_save(loom_ds_map(counts, as_text, NULL), out, loom_opt_flag(opts, "overwrite"));
        loom_ds_engine_destroy(&e);
    }
    free(inputs);
    return st;
}

const loom_job_t loom_job_ds_wordcount = {
    .name = "ds-wordcount",
    .summary = "count words with datasets (text -> flat_map -> reduce_by_key -> save)",
    .usage = "loom ds-wordcount INPUT... --out DIR [options]   (INPUT: file, dir, glob)",
    .options = options,
    .run = run,
};
