/* `loom cc GRAPH`: (weakly) connected components by minimum-label propagation on Pregel. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loom/loom.h"
#include "loom/pregel.h"

/* Directed graphs are taken as undirected (weak connectivity); each vertex
 * gets the smallest vertex id of its component. */
static const loom_option_t options[] = {
    LOOM_GRAPH_OPTION_ROWS,
    {"out", LOOM_OPT_STRING, NULL, "write labels: .h5 dataset /cc, else vertex<TAB>label", NULL, 0,
     0, 0},
    LOOM_PREGEL_OPTIONS,
    {NULL, LOOM_OPT_END, NULL, NULL, NULL, 0, 0, 0},
};

static void cc_init(loom_vertex_t *v, void *user)
{
    *(uint64_t *)v->value = v->id;
}

/* Hash-Min: adopt the smallest label heard, pass it on only when it changed. */
static void cc_compute(loom_vertex_t *v, const void *msgs, size_t nmsgs, void *user)
{
    uint64_t *label = v->value;
    int changed = v->superstep == 0;
    if (nmsgs) {
        uint64_t m;
        memcpy(&m, msgs, sizeof m);
        if (m < *label) {
            *label = m;
            changed = 1;
        }
    }
    if (changed) loom_vertex_send_all(v, label);
    loom_vertex_vote_halt(v);
}

static loom_status_t run(loom_ctx_t *ctx, const loom_opts_t *opts)
{
    const char *spec = loom_opts_arg(opts, 0);
    if (!spec || loom_opts_nargs(opts) != 1)
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                          "cc needs one graph (a file or a spec like kron:16)");
    LOOM_TRY(loom_pregel_check_options(ctx, opts, spec));
    loom_graph_t *g = NULL;
    /* Weak components need both directions; loops and duplicates change nothing. */
    LOOM_TRY(loom_graph_load(ctx, spec, opts, LOOM_LOAD_UNDIRECTED | LOOM_LOAD_SIMPLE, &g));
    loom_pregel_program_t prog = {
        .name = "cc",
        .value_size = sizeof(uint64_t),
        .msg_size = sizeof(uint64_t),
        .combiner = LOOM_COMBINE_MIN_U64,
        .init = cc_init,
        .compute = cc_compute,
    };
    loom_pregel_t *pg = NULL;
    loom_status_t st = loom_pregel_create(ctx, g, &prog, &pg);
    if (st == LOOM_OK) st = loom_agree(ctx, loom_comm(ctx), loom_pregel_configure(pg, opts));
    if (st == LOOM_OK) {
        loom_timer_start(ctx, "cc");
        st = loom_pregel_run(pg);
        loom_timer_stop(ctx, "cc");
    }
    uint64_t nloc = loom_graph_local_vertices(g);
    double *lab = NULL;
    if (st == LOOM_OK) {
        lab = malloc((nloc ? nloc : 1) * sizeof *lab);
        if (!lab) st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory for the labels");
    }
    st = loom_agree(ctx, loom_comm(ctx), st);
    uint64_t roots = 0, all = 0;
    if (st == LOOM_OK) {
        const uint64_t *l = loom_pregel_values(pg);
        for (uint64_t i = 0; i < nloc; i++) {
            lab[i] = (double)l[i]; /* exact below 2^53 */
            roots += l[i] == g->lo + i;
        }
        LOOM_MPI_KEEP(ctx, st,
                      MPI_Reduce(&roots, &all, 1, MPI_UINT64_T, MPI_SUM, 0, loom_comm(ctx)));
    }
    if (st == LOOM_OK) {
        loom_summary_int(ctx, "components", (int64_t)all);
        loom_log(ctx, LOOM_LOG_INFO, "cc: %llu components", (unsigned long long)all);
    }
    const char *out = loom_opt_string(opts, "out");
    if (st == LOOM_OK && out) {
        loom_timer_start(ctx, "write");
        st = loom_write_vertex_values(ctx, g, out, "cc", lab);
        loom_timer_stop(ctx, "write");
    }
    free(lab);
    loom_pregel_destroy(&pg);
    loom_graph_destroy(&g);
    return st;
}

const loom_job_t loom_job_cc = {
    .name = "cc",
    .summary = "connected components, weakly for directed graphs (Pregel vertex program)",
    .usage = "loom cc GRAPH [options]",
    .options = options,
    .run = run,
};
