/* A program outside the Loom tree, built against the installed libloom by test_install.sh. */
#include <inttypes.h>
#include <stdio.h>

#include <loom/loom.h>

#ifdef OUTSIDE_WITH_GRAPH
/* Generate kron:8 and build the distributed CSR; rank 0 prints the vertex count. */
static loom_status_t build_kron8(loom_ctx_t *ctx)
{
    loom_edge_source_t *src = NULL;
    loom_graph_t *g = NULL;
    loom_build_opts_t opts = {0};
    loom_status_t st;

    LOOM_TRY_GOTO(st, loom_source_open(ctx, "kron:8", LOOM_FMT_AUTO, &src), out);
    LOOM_TRY_GOTO(st, loom_graph_build(ctx, src, &opts, &g), out);
    if (loom_rank(ctx) == 0)
        printf("outside: kron:8 num_vertices %" PRIu64 " num_arcs %" PRIu64 "\n", g->num_vertices,
               g->num_arcs);
out:
    loom_graph_destroy(&g);
    loom_source_destroy(&src);
    return st;
}
#endif

int main(int argc, char **argv)
{
    loom_ctx_t *ctx = NULL;
    loom_status_t st = loom_ctx_create(&argc, &argv, &ctx);
    if (st != LOOM_OK) {
        fprintf(stderr, "outside: %s\n", ctx ? loom_error_message(ctx) : "out of memory");
        loom_ctx_destroy(&ctx);
        return 1;
    }
    printf("outside: rank %d size %d workers %d version %s\n", loom_rank(ctx), loom_size(ctx),
           loom_num_workers(ctx), LOOM_VERSION_STRING);
    fflush(stdout);
#ifdef OUTSIDE_WITH_GRAPH
    st = build_kron8(ctx);
    if (st != LOOM_OK) loom_error_report(ctx);
#endif
    loom_ctx_destroy(&ctx);
    return st == LOOM_OK ? 0 : 1;
}
