/* `loom generate kron|urand --scale S --out FILE`: a synthetic graph, written to a file. */
#include <string.h>

#include "loom/loom.h"

static const loom_option_t options[] = {
    {"scale", LOOM_OPT_INT, NULL, "2^scale vertices (required)", NULL, 1, 1, 40},
    {"edge-factor", LOOM_OPT_INT, "16", "edges per vertex", NULL, 1, 1, 1024},
    {"seed", LOOM_OPT_INT, "1", "random seed", NULL, 1, 0, 9.2e18},
    {"undirected", LOOM_OPT_FLAG, NULL, "symmetrise: store both directions of every edge", NULL, 0,
     0, 0},
    {"drop-self-loops", LOOM_OPT_FLAG, NULL, "drop arcs v->v", NULL, 0, 0, 0},
    {"drop-duplicates", LOOM_OPT_FLAG, NULL, "keep one arc per (u, v)", NULL, 0, 0, 0},
    LOOM_GRAPH_OUTPUT_ROWS,
    {NULL, LOOM_OPT_END, NULL, NULL, NULL, 0, 0, 0},
};

static loom_status_t run(loom_ctx_t *ctx, const loom_opts_t *opts)
{
    const char *kind = loom_opts_arg(opts, 0), *out = loom_opt_string(opts, "out");
    loom_gen_params_t p = {.scale = (int)loom_opt_int(opts, "scale"),
                           .edge_factor = (int)loom_opt_int(opts, "edge-factor"),
                           .seed = (uint64_t)loom_opt_int(opts, "seed")};
    if (!kind || loom_opts_nargs(opts) != 1)
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "generate needs one generator: kron or urand");
    if (!strcmp(kind, "kron"))
        p.kind = LOOM_GEN_KRON;
    else if (!strcmp(kind, "urand"))
        p.kind = LOOM_GEN_URAND;
    else
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "unknown generator '%s' (kron or urand)", kind);
    if (!loom_opt_is_set(opts, "scale"))
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "generate needs --scale");
    if (!out) return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "generate needs --out FILE");
    loom_format_t fmt;
    LOOM_TRY(loom_output_format(ctx, out, loom_opt_string(opts, "out-format"), &fmt));
    LOOM_TRY(loom_output_check(ctx, loom_comm(ctx), out, 0, NULL, 0));

    loom_edge_source_t *src = NULL;
    LOOM_TRY(loom_source_generator(ctx, &p, &src));
    loom_build_opts_t b = {.undirected = loom_opt_flag(opts, "undirected"),
                           .drop_self_loops = loom_opt_flag(opts, "drop-self-loops"),
                           .drop_duplicates = loom_opt_flag(opts, "drop-duplicates")};
    loom_graph_t *g = NULL;
    loom_timer_start(ctx, "build");
    loom_status_t st = loom_graph_build(ctx, src, &b, &g);
    loom_timer_stop(ctx, "build");
    loom_source_destroy(&src);
    if (st == LOOM_OK) {
        loom_timer_start(ctx, "write");
        st = loom_graph_write(ctx, g, out, fmt);
        loom_timer_stop(ctx, "write");
    }
    if (st == LOOM_OK) {
        loom_summary_int(ctx, "vertices", (int64_t)g->num_vertices);
        loom_summary_int(ctx, "arcs", (int64_t)g->num_arcs);
        loom_summary_string(ctx, "out", out);
        loom_log(ctx, LOOM_LOG_INFO, "wrote %s: %llu vertices, %llu arcs", out,
                 (unsigned long long)g->num_vertices, (unsigned long long)g->num_arcs);
    }
    loom_graph_destroy(&g);
    return st;
}

const loom_job_t loom_job_generate = {
    .name = "generate",
    .summary = "generate a Kronecker (Graph500) or uniform random graph into a file",
    .usage =
        "loom generate kron|urand --scale S [--edge-factor K] [--seed N] [--undirected] --out FILE",
    .options = options,
    .run = run,
};
