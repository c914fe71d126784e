/* `loom convert INPUT --out FILE`: read a graph in one format, write it in another. */
#include "loom/loom.h"

static const loom_option_t options[] = {
    LOOM_GRAPH_OPTION_ROWS,
    LOOM_GRAPH_OUTPUT_ROWS,
    {NULL, LOOM_OPT_END, NULL, NULL, NULL, 0, 0, 0},
};

static loom_status_t run(loom_ctx_t *ctx, const loom_opts_t *opts)
{
    const char *in = loom_opts_arg(opts, 0), *out = loom_opt_string(opts, "out");
    if (!in || loom_opts_nargs(opts) != 1)
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "convert needs one input graph");
    if (!out) return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "convert needs --out FILE");
    loom_format_t fmt;
    LOOM_TRY(loom_output_format(ctx, out, loom_opt_string(opts, "out-format"), &fmt));
    LOOM_TRY(loom_output_check(ctx, loom_comm(ctx), out, 0, &in, 1));
    loom_graph_t *g = NULL;
    LOOM_TRY(loom_graph_load(ctx, in, opts, 0, &g));
    loom_timer_start(ctx, "write");
    loom_status_t st = loom_graph_write(ctx, g, out, fmt);
    loom_timer_stop(ctx, "write");
    if (st == LOOM_OK)
        loom_log(ctx, LOOM_LOG_INFO, "wrote %s: %llu vertices, %llu arcs", out,
                 (unsigned long long)g->num_vertices, (unsigned long long)g->num_arcs);
    loom_graph_destroy(&g);
    return st;
}

const loom_job_t loom_job_convert = {
    .name = "convert",
    .summary = "convert a graph between edge list, Matrix Market and Loom HDF5",
    .usage = "loom convert INPUT --out FILE [--format F] [--out-format F]",
    .options = options,
    .run = run,
};
