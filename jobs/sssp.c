/* `loom sssp GRAPH --source V`: single-source shortest paths as a Pregel vertex program. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loom/loom.h"
#include "loom/pregel.h"

/* Distances follow out-arcs with the edge weights (1 when the graph has none;
 * a negative weight is refused when the graph is loaded). Parallel arcs: the
 * lightest counts. */
static const loom_option_t options[] = {
    LOOM_GRAPH_OPTION_ROWS,
    {"source", LOOM_OPT_INT, "0", "the source vertex", NULL, 1, 0, 9.2e18},
    {"out", LOOM_OPT_STRING, NULL, "write distances: .h5 dataset /sssp, else vertex<TAB>distance",
     NULL, 0, 0, 0},
    LOOM_PREGEL_OPTIONS,
    {NULL, LOOM_OPT_END, NULL, NULL, NULL, 0, 0, 0},
};

static void sssp_init(loom_vertex_t *v, void *user)
{
    *(double *)v->value = INFINITY;
}

/* Classic Pregel SSSP: a vertex that learns a shorter distance tells its
 * out-neighbours, then sleeps until a message wakes it. */
static void sssp_compute(loom_vertex_t *v, const void *msgs, size_t nmsgs, void *user)
{
    double *dist = v->value;
    int improved = 0;
    if (v->superstep == 0 && v->id == *(const uint64_t *)user) {
        *dist = 0.0;
        improved = 1;
    }
    if (nmsgs) {
        double m;
        memcpy(&m, msgs, sizeof m);
        if (m < *dist) {
            *dist = m;
            improved = 1;
        }
    }
    if (improved) {
        const uint64_t *dst;
        const double *w;
        uint64_t deg = loom_vertex_out_edges(v, &dst, &w);
        for (uint64_t e = 0; e < deg; e++) {
            double d = *dist + (w ? w[e] : 1.0);
            loom_vertex_send(v, dst[e], &d);
        }
    }
    loom_vertex_vote_halt(v);
}

static loom_status_t run(loom_ctx_t *ctx, const loom_opts_t *opts)
{
    const char *spec = loom_opts_arg(opts, 0);
    if (!spec || loom_opts_nargs(opts) != 1)
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                          "sssp needs one graph (a file or a spec like kron:16)");
    LOOM_TRY(loom_pregel_check_options(ctx, opts, spec));
    loom_graph_t *g = NULL;
    LOOM_TRY(loom_graph_load(ctx, spec, opts, LOOM_LOAD_NONNEGATIVE, &g));
    uint64_t source = (uint64_t)loom_opt_int(opts, "source");
    loom_status_t st = LOOM_OK;
    if (source >= g->num_vertices)
        st = LOOM_ERROR(ctx, LOOM_ERR_USAGE, "--source %llu: the graph has %llu vertices",
                        (unsigned long long)source, (unsigned long long)g->num_vertices);
    char params[64];
    snprintf(params, sizeof params, "source=%llu", (unsigned long long)source);
    loom_pregel_program_t prog = {
        .name = "sssp",
        .value_size = sizeof(double),
        .msg_size = sizeof(double),
        .combiner = LOOM_COMBINE_MIN_F64,
        .init = sssp_init,
        .compute = sssp_compute,
        .user = &source,
        .params = params,
    };
    loom_pregel_t *pg = NULL;
    if (st == LOOM_OK) st = loom_pregel_create(ctx, g, &prog, &pg);
    if (st == LOOM_OK) st = loom_agree(ctx, loom_comm(ctx), loom_pregel_configure(pg, opts));
    if (st == LOOM_OK) {
        loom_timer_start(ctx, "sssp");
        st = loom_pregel_run(pg);
        loom_timer_stop(ctx, "sssp");
    }
    const double *dist = st == LOOM_OK ? loom_pregel_values(pg) : NULL;
    double loc[2] = {0, 0}, glob[2] = {0, 0}; /* reached, max distance */
    double far = 0;
    if (st == LOOM_OK) {
        for (uint64_t i = 0; i < loom_graph_local_vertices(g); i++)
            if (isfinite(dist[i])) {
                loc[0] += 1;
                if (dist[i] > far) far = dist[i];
            }
        LOOM_MPI_KEEP(ctx, st, MPI_Reduce(loc, glob, 1, MPI_DOUBLE, MPI_SUM, 0, loom_comm(ctx)));
        LOOM_MPI_KEEP(ctx, st,
                      MPI_Reduce(&far, &glob[1], 1, MPI_DOUBLE, MPI_MAX, 0, loom_comm(ctx)));
    }
    if (st == LOOM_OK) {
        loom_summary_int(ctx, "source", (int64_t)source);
        loom_summary_int(ctx, "reached", (int64_t)glob[0]);
        loom_summary_double(ctx, "max_distance", glob[1]);
        loom_log(ctx, LOOM_LOG_INFO, "sssp: %.0f of %llu vertices reached, farthest at %.17g",
                 glob[0], (unsigned long long)g->num_vertices, glob[1]);
    }
    const char *out = loom_opt_string(opts, "out");
    if (st == LOOM_OK && out) {
        loom_timer_start(ctx, "write");
        st = loom_write_vertex_values(ctx, g, out, "sssp", dist);
        loom_timer_stop(ctx, "write");
    }
    loom_pregel_destroy(&pg);
    loom_graph_destroy(&g);
    return st;
}

const loom_job_t loom_job_sssp = {
    .name = "sssp",
    .summary = "single-source shortest paths (Pregel vertex program)",
    .usage = "loom sssp GRAPH --source V [options]",
    .options = options,
    .run = run,
};
