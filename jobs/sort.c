/* `loom sort INPUT... --out DIR`: all lines in byte order; the part files concatenate in order. */
#include <stdlib.h>

#include "loom/loom.h"
#include "loom/mr.h"

static loom_status_t map(loom_ctx_t *ctx, const loom_mr_record_t *rec, loom_mr_emit_t *out,
                         void *user)
{
    return loom_mr_emit(out, rec->data, rec->len, NULL, 0);
}

static const loom_option_t options[] = {
    LOOM_MR_OPTION_ROWS,
    {NULL, LOOM_OPT_END, NULL, NULL, NULL, 0, 0, 0},
};

static loom_status_t run(loom_ctx_t *ctx, const loom_opts_t *opts)
{
    /* No reduce function: every occurrence of a line is written once (duplicates kept).
     * Sampled range partitioning (TeraSort) makes part-00000, part-00001, ... ordered. */
    loom_mr_job_t job = {.name = "sort",
                         .map = map,
                         .map_thread_safe = 1,
                         .range_partition = 1,
                         .output_mode = LOOM_MR_OUT_KEY};
    return loom_mr_run_command(ctx, opts, 0, &job);
}

const loom_job_t loom_job_sort = {
    .name = "sort",
    .summary = "sort lines in byte order (LC_ALL=C) with sampled range partitions",
    .usage = "loom sort INPUT... --out DIR|FILE.h5 [options]   (INPUT: file, dir, glob, "
             "FILE.h5:/DATASET, gen:N)",
    .options = options,
    .run = run,
};
