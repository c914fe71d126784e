/* MapReduce inputs from the chunk store (store:/PATH): the store and each file's splits are
 * opened by every rank before planning, a map task is a split, and the master prefers to
 * hand a task to a worker that keeps its chunk. */
#include <stdlib.h>
#include <string.h>

#include "mr/mr_internal.h"

loom_status_t mr_chunks_open(mr_engine_t *eng)
{
    loom_ctx_t *ctx = eng->ctx;
    const loom_mr_job_t *job = eng->job;
    int n = 0;
    for (int i = 0; i < job->ninputs; i++)
        n += mr_input_kind(job->inputs[i]) == MR_IN_STORE;
    if (!n) return LOOM_OK;
    if (!job->store || !*job->store)
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                          "store:/PATH inputs need the store's root (--store DIR or LOOM_STORE)");
    eng->lines = calloc((size_t)n, sizeof *eng->lines);
    eng->line_specs = calloc((size_t)n, sizeof *eng->line_specs);
    if (!eng->lines || !eng->line_specs) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    /* a replica lost since the last job is copied again before the job reads */
    loom_chunks_opts_t o = {.heal = 1};
    LOOM_TRY(loom_chunks_open(ctx, job->store, &o, &eng->chunks));
    for (int i = 0; i < job->ninputs; i++) {
        if (mr_input_kind(job->inputs[i]) != MR_IN_STORE) continue;
        LOOM_TRY(loom_chunks_lines_open(eng->chunks, job->inputs[i] + 6, eng->max_record,
                                        &eng->lines[eng->nlines]));
        eng->line_specs[eng->nlines++] = job->inputs[i];
    }
    return LOOM_OK;
}

void mr_chunks_close(mr_engine_t *eng)
{
    for (int i = 0; i < eng->nlines; i++)
        loom_chunks_lines_close(&eng->lines[i]);
    free(eng->lines);
    free(eng->line_specs);
    eng->lines = NULL;
    eng->line_specs = NULL;
    eng->nlines = 0;
    loom_chunks_close(&eng->chunks);
}

loom_chunks_lines_t *mr_chunks_lines(mr_engine_t *eng, const char *spec)
{
    for (int i = 0; i < eng->nlines; i++)
        if (!strcmp(eng->line_specs[i], spec)) return eng->lines[i];
    return NULL;
}

loom_status_t mr_chunks_read(mr_engine_t *eng, int64_t t, loom_buf_t *inbuf)
{
    const mr_task_t *tk = &eng->tasks[t];
    loom_chunks_lines_t *lf = mr_chunks_lines(eng, eng->files[tk->file]);
    if (!lf) return LOOM_ERROR(eng->ctx, LOOM_ERR_INTERNAL, "%s: not opened", eng->files[tk->file]);
    uint64_t i = loom_chunks_lines_find(lf, tk->off), off, len;
    loom_chunks_lines_range(lf, i, &off, &len);
    inbuf->len = 0;
    LOOM_TRY(loom_buf_reserve(eng->ctx, inbuf, len + 1));
    int local;
    LOOM_TRY(loom_chunks_lines_read(eng->chunks, lf, i, (char *)inbuf->data, &local));
    if (eng->sampling)
        ;
    else if (local)
        eng->local_reads++;
    else
        eng->remote_reads++;
    inbuf->len = len;
    if (tk->len < len) {
        /* a sample: whole lines of the first tk->len bytes */
        char *nl = tk->len ? memrchr(inbuf->data, '\n', tk->len) : NULL;
        inbuf->len = nl ? (size_t)(nl - (char *)inbuf->data) + 1 : 0;
    }
    return LOOM_OK;
}

int mr_task_local(mr_engine_t *eng, int64_t t, int rank)
{
    const mr_task_t *tk = &eng->tasks[t];
    loom_chunks_lines_t *lf = eng->nlines ? mr_chunks_lines(eng, eng->files[tk->file]) : NULL;
    if (!lf) return 1;
    return loom_chunks_lines_local(lf, loom_chunks_lines_find(lf, tk->off),
                                   loom_start_rank(eng->ctx, rank));
}

int mr_task_runnable(mr_engine_t *eng, int64_t t, int rank)
{
    const mr_task_t *tk = &eng->tasks[t];
    loom_chunks_lines_t *lf = eng->nlines ? mr_chunks_lines(eng, eng->files[tk->file]) : NULL;
    return !lf || loom_chunks_lines_remote_ok(lf) || mr_task_local(eng, t, rank);
}
