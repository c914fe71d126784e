/* `loom info GRAPH`: size, degree statistics and partition balance of a graph. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "loom/loom.h"

static const loom_option_t options[] = {
    LOOM_GRAPH_OPTION_ROWS,
    {NULL, LOOM_OPT_END, NULL, NULL, NULL, 0, 0, 0},
};

/* Per-rank counts, reduced to the master in one MPI_Reduce each. */
enum { SUM_DANGLING, SUM_ISOLATED, SUM_LOOPS, SUM_N };
enum { MAX_OUT, MAX_IN, NEG_MIN_OUT, NEG_MIN_IN, MAX_N };

static loom_status_t run(loom_ctx_t *ctx, const loom_opts_t *opts)
{
    const char *spec = loom_opts_arg(opts, 0);
    if (!spec || loom_opts_nargs(opts) != 1)
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                          "info needs one graph (a file or a spec like kron:16)");
    loom_graph_t *g = NULL;
    LOOM_TRY(loom_graph_load(ctx, spec, opts, LOOM_LOAD_IN_EDGES, &g));

    loom_timer_start(ctx, "stats");
    uint64_t nloc = loom_graph_local_vertices(g);
    uint64_t sums[SUM_N] = {0}, maxs[MAX_N] = {0};
    /* Minimum as the maximum of the negation, so one MPI_MAX does both;
     * a rank without vertices contributes the neutral value. */
    int64_t mins_neg[2] = {INT64_MIN, INT64_MIN};
    uint64_t d_out_max = 0, d_in_max = 0, loops = 0, dangling = 0, isolated = 0;
    uint64_t d_out_min = UINT64_MAX, d_in_min = UINT64_MAX;
#pragma omp parallel for reduction(+ : loops, dangling, isolated) reduction(max : d_out_max, d_in_max) \
    reduction(min : d_out_min, d_in_min) schedule(static, 4096)
    for (uint64_t i = 0; i < nloc; i++) {
        uint64_t dout = g->out_off[i + 1] - g->out_off[i];
        uint64_t din = g->in_off[i + 1] - g->in_off[i];
        for (uint64_t k = g->out_off[i]; k < g->out_off[i + 1]; k++)
            loops += g->out_dst[k] == g->lo + i;
        dangling += dout == 0;
        isolated += dout == 0 && din == 0;
        if (dout > d_out_max) d_out_max = dout;
        if (din > d_in_max) d_in_max = din;
        if (dout < d_out_min) d_out_min = dout;
        if (din < d_in_min) d_in_min = din;
    }
    sums[SUM_DANGLING] = dangling, sums[SUM_ISOLATED] = isolated, sums[SUM_LOOPS] = loops;
    maxs[MAX_OUT] = d_out_max, maxs[MAX_IN] = d_in_max;
    if (nloc) mins_neg[0] = -(int64_t)d_out_min, mins_neg[1] = -(int64_t)d_in_min;
    uint64_t gsums[SUM_N], gmaxs[MAX_N];
    int64_t gmins_neg[2];
    MPI_Comm comm = loom_comm(ctx);
    LOOM_MPI(ctx, MPI_Reduce(sums, gsums, SUM_N, MPI_UINT64_T, MPI_SUM, 0, comm));
    LOOM_MPI(ctx, MPI_Reduce(maxs, gmaxs, 2, MPI_UINT64_T, MPI_MAX, 0, comm));
    LOOM_MPI(ctx, MPI_Reduce(mins_neg, gmins_neg, 2, MPI_INT64_T, MPI_MAX, 0, comm));
    /* Partition balance over the ranks that own vertices. */
    uint64_t mine[2] = {nloc, loom_graph_local_arcs(g)};
    uint64_t *all = NULL;
    if (loom_is_master(ctx)) LOOM_ALLOC(ctx, all, 2 * (size_t)loom_size(ctx), "partition table");
    LOOM_MPI(ctx, MPI_Gather(mine, 2, MPI_UINT64_T, all, 2, MPI_UINT64_T, 0, comm));
    loom_timer_stop(ctx, "stats");

    if (loom_is_master(ctx)) {
        uint64_t n = g->num_vertices, m = g->num_arcs;
        int first = loom_size(ctx) > 1 ? 1 : 0, owners = loom_size(ctx) - first;
        uint64_t vmax = 0, amax = 0;
        for (int r = first; r < loom_size(ctx); r++) {
            if (all[2 * r] > vmax) vmax = all[2 * r];
            if (all[2 * r + 1] > amax) amax = all[2 * r + 1];
        }
        double vmean = (double)n / owners, amean = (double)m / owners;
        if (!loom_json_enabled(ctx)) {
            printf("graph        %s\n", spec);
            printf("vertices     %" PRIu64 "\n", n);
            printf("arcs         %" PRIu64 "%s\n", m,
                   g->directed ? "" : " (both directions of each edge)");
            printf("directed     %s\n", g->directed ? "yes" : "no");
            printf("weighted     %s\n", g->weighted ? "yes" : "no");
            printf("out-degree   min %" PRId64 "  mean %.2f  max %" PRIu64 "\n",
                   n ? -gmins_neg[0] : 0, n ? (double)m / n : 0.0, gmaxs[MAX_OUT]);
            printf("in-degree    min %" PRId64 "  mean %.2f  max %" PRIu64 "\n",
                   n ? -gmins_neg[1] : 0, n ? (double)m / n : 0.0, gmaxs[MAX_IN]);
            printf("dangling     %" PRIu64 " (no out-arcs)\n", gsums[SUM_DANGLING]);
            printf("isolated     %" PRIu64 " (no arcs at all)\n", gsums[SUM_ISOLATED]);
            printf("self-loops   %" PRIu64 "\n", gsums[SUM_LOOPS]);
            printf("partitions   %d rank(s), %d owning vertices%s\n", loom_size(ctx), owners,
                   first ? " (rank 0 is the master and owns none)" : "");
            for (int r = first; r < loom_size(ctx); r++)
                printf("  rank %-4d  vertices %-12" PRIu64 " arcs %-12" PRIu64 " [%" PRIu64
                       ", %" PRIu64 ")\n",
                       r, all[2 * r], all[2 * r + 1], g->part[r], g->part[r + 1]);
            printf("balance      arcs max/mean %.3f, vertices max/mean %.3f\n",
                   amean > 0 ? amax / amean : 1.0, vmean > 0 ? vmax / vmean : 1.0);
            fflush(stdout);
        }
        loom_summary_int(ctx, "dangling", (int64_t)gsums[SUM_DANGLING]);
        loom_summary_int(ctx, "isolated", (int64_t)gsums[SUM_ISOLATED]);
        loom_summary_int(ctx, "self_loops", (int64_t)gsums[SUM_LOOPS]);
        loom_summary_int(ctx, "max_out_degree", (int64_t)gmaxs[MAX_OUT]);
        loom_summary_int(ctx, "max_in_degree", (int64_t)gmaxs[MAX_IN]);
        loom_summary_double(ctx, "arc_imbalance", amean > 0 ? amax / amean : 1.0);
    }
    free(all);
    loom_graph_destroy(&g);
    return LOOM_OK;
}

const loom_job_t loom_job_info = {
    .name = "info",
    .summary = "vertices, arcs, degree statistics and partition balance of a graph",
    .usage = "loom info GRAPH [options]   (GRAPH: a file, or kron:S / urand:S)",
    .options = options,
    .run = run,
};
