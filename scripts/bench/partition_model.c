/* Partition statistics for P = 2..1024 workers of one graph: arcs, ghosts and PageRank exchange
 * bytes per superstep. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include <loom/loom.h>

/* Usage (one rank):  partition_model GRAPH [graph options] [--parts 2,4,8,...]
 *        (R ranks):  mpiexec -n R partition_model GRAPH [graph options]
 *
 * GRAPH and its options are those of `loom pagerank` (LOOM_GRAPH_OPTION_ROWS),
 * loaded with loom_graph_load as the command loads them.
 *
 * At one rank the whole CSR is here, and for every P in --parts the tool cuts
 * it into P worker ranges with the partition rule of src/graph/csr.c and prints one
 * JSON line per P: vertices and arcs per worker (max, mean, min), and for one
 * PageRank superstep of Loom's Pregel engine:
 *   sparse: every worker sends one 16-byte record (destination id, combined
 *           contribution) per distinct remote destination of its out-arcs
 *           (ghosts); receive = records other workers address to it;
 *   dense:  MPI_Allgatherv of the 8-byte published values: each worker
 *           receives 8 (n - n_w) bytes and contributes its 8 n_w.
 *
 * At R >= 2 ranks it checks that the rule below gives exactly the ranges the
 * real build chose (g->part) for R - 1 workers, and exits 1 if not: the rule is
 * loom_graph_partition_ranges, the one loom_graph_build calls. */

/* Global out- and in-degree arrays on every rank (allgathered). */
static loom_status_t global_degrees(loom_ctx_t *ctx, const loom_graph_t *g, uint64_t **outd,
                                    uint64_t **ind)
{
    int P = g->nparts;
    uint64_t nloc = g->hi - g->lo, n = g->num_vertices;
    uint64_t *lo = malloc(2 * (nloc ? nloc : 1) * sizeof *lo);
    int *cnt = malloc(2 * (size_t)P * sizeof *cnt);
    *outd = malloc((n ? n : 1) * sizeof **outd);
    *ind = malloc((n ? n : 1) * sizeof **ind);
    if (!lo || !cnt || !*outd || !*ind)
        return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory for degree arrays");
    for (uint64_t i = 0; i < nloc; i++) {
        lo[i] = g->out_off[i + 1] - g->out_off[i];
        lo[nloc + i] = g->in_off ? g->in_off[i + 1] - g->in_off[i] : lo[i];
    }
    int *dis = cnt + P;
    for (int r = 0; r < P; r++) {
        cnt[r] = (int)(g->part[r + 1] - g->part[r]);
        dis[r] = (int)g->part[r];
    }
    MPI_Comm comm = loom_comm(ctx);
    LOOM_MPI(ctx, MPI_Allgatherv(lo, (int)nloc, MPI_UINT64_T, *outd, cnt, dis, MPI_UINT64_T, comm));
    LOOM_MPI(ctx, MPI_Allgatherv(lo + nloc, (int)nloc, MPI_UINT64_T, *ind, cnt, dis, MPI_UINT64_T,
                                 comm));
    free(lo);
    free(cnt);
    return LOOM_OK;
}

typedef struct stat3 {
    double max, sum, min;
} stat3_t;

static void st_add(stat3_t *s, double x, int first)
{
    if (first || x > s->max) s->max = x;
    if (first || x < s->min) s->min = x;
    s->sum += x;
}

static void put_stat(const char *name, const stat3_t *s, int W, int comma)
{
    printf("\"%s\": {\"max\": %.17g, \"mean\": %.17g, \"min\": %.17g}%s", name, s->max, s->sum / W,
           s->min, comma ? ", " : "");
}

/* Statistics of one W-way partition of the full CSR g (one rank). */
static loom_status_t model_one(loom_ctx_t *ctx, const loom_graph_t *g, const uint64_t *outd,
                               const uint64_t *ind, int W, double vweight, const char *spec)
{
    uint64_t n = g->num_vertices;
    uint64_t *part = malloc(((size_t)W + 1) * sizeof *part);
    uint32_t *owner = malloc((n ? n : 1) * sizeof *owner);
    int nt = omp_get_max_threads();
    /* Per worker: distinct remote destinations (sent records), records received,
     * cut arcs. Per thread: a stamp array so a destination counts once per worker. */
    uint64_t *sent = calloc((size_t)W, sizeof *sent);
    uint64_t *cut = calloc((size_t)W, sizeof *cut);
    uint64_t *recv = calloc((size_t)W * nt, sizeof *recv);
    uint32_t *stamp = malloc((size_t)nt * (n ? n : 1) * sizeof *stamp);
    if (!part || !owner || !sent || !cut || !recv || !stamp)
        return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory modelling %d parts", W);
    double vw = loom_graph_partition_ranges(outd, ind, n, W, vweight, part);
    for (int w = 0; w < W; w++)
        for (uint64_t v = part[w]; v < part[w + 1]; v++)
            owner[v] = (uint32_t)w;
    memset(stamp, 0xff, (size_t)nt * (n ? n : 1) * sizeof *stamp);

#pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num();
        uint32_t *mine = stamp + (size_t)t * n;
        uint64_t *rc = recv + (size_t)t * W;
#pragma omp for schedule(dynamic, 1)
        for (int w = 0; w < W; w++) {
            uint64_t s = 0, c = 0;
            for (uint64_t e = g->out_off[part[w]]; e < g->out_off[part[w + 1]]; e++) {
                uint64_t d = g->out_dst[e];
                uint32_t o = owner[d];
                if (o == (uint32_t)w) continue;
                c++;
                if (mine[d] == (uint32_t)w) continue;
                mine[d] = (uint32_t)w;
                s++;
                rc[o]++;
            }
            sent[w] = s;
            cut[w] = c;
        }
    }
    stat3_t sv = {0}, sa = {0}, si = {0}, sg = {0}, sr = {0}, sc = {0}, sd = {0};
    uint64_t cut_total = 0, ghosts_total = 0;
    for (int w = 0; w < W; w++) {
        uint64_t r = 0, nv = part[w + 1] - part[w], in_arcs = 0;
        for (int t = 0; t < nt; t++)
            r += recv[(size_t)t * W + w];
        for (uint64_t v = part[w]; v < part[w + 1]; v++)
            in_arcs += ind[v];
        st_add(&sv, (double)nv, w == 0);
        st_add(&sa, (double)(g->out_off[part[w + 1]] - g->out_off[part[w]]), w == 0);
        st_add(&si, (double)in_arcs, w == 0);
        st_add(&sg, (double)sent[w], w == 0);
        st_add(&sr, (double)r, w == 0);
        st_add(&sc, (double)cut[w], w == 0);
        st_add(&sd, 8.0 * (double)(n - nv), w == 0);
        cut_total += cut[w];
        ghosts_total += sent[w];
    }
    printf("{\"graph\": \"%s\", \"parts\": %d, \"vertices\": %" PRIu64 ", \"arcs\": %" PRIu64
           ", \"directed\": %d, \"vertex_weight\": %.17g, ",
           spec, W, n, g->num_arcs, g->directed, vw);
    put_stat("part_vertices", &sv, W, 1);
    put_stat("part_out_arcs", &sa, W, 1);
    put_stat("part_in_arcs", &si, W, 1);
    put_stat("ghosts", &sg, W, 1);
    put_stat("cut_arcs", &sc, W, 1);
    put_stat("sparse_recv_records", &sr, W, 1);
    put_stat("dense_recv_bytes", &sd, W, 1);
    printf("\"sparse_record_bytes\": 16, \"cut_arcs_total\": %" PRIu64
           ", \"ghosts_total\": %" PRIu64 ", \"dense_allgather_bytes_total\": %.17g}\n",
           cut_total, ghosts_total, 8.0 * (double)n * (W - 1));
    fflush(stdout);
    free(part);
    free(owner);
    free(sent);
    free(cut);
    free(recv);
    free(stamp);
    return LOOM_OK;
}

static const loom_option_t options[] = {
    LOOM_GRAPH_OPTION_ROWS,
    {"parts", LOOM_OPT_STRING, "2,4,8,16,32,64,128,256,512,1024", "worker counts to model", NULL, 0,
     0, 0},
    {NULL, LOOM_OPT_END, NULL, NULL, NULL, 0, 0, 0},
};

static loom_status_t run(loom_ctx_t *ctx, int argc, char **argv)
{
    loom_opts_t *opts = NULL;
    loom_graph_t *g = NULL;
    uint64_t *outd = NULL, *ind = NULL;
    loom_status_t st = loom_opts_parse(ctx, options, argc, argv, &opts);
    if (st != LOOM_OK) return st;
    const char *spec = loom_opts_arg(opts, 0);
    if (!spec) {
        st = LOOM_ERROR(ctx, LOOM_ERR_USAGE, "usage: partition_model GRAPH [--parts LIST]");
        goto out;
    }
    double t0 = loom_wtime();
    LOOM_TRY_GOTO(st, loom_graph_load(ctx, spec, opts, 1, &g), out);
    LOOM_TRY_GOTO(st, global_degrees(ctx, g, &outd, &ind), out);
    double vweight = loom_opt_double(opts, "vertex-weight");
    if (loom_size(ctx) > 1) {
        /* Check the copied rule against the build's own choice. */
        int W = loom_size(ctx) - 1;
        uint64_t *part = malloc(((size_t)W + 1) * sizeof *part);
        if (!part) {
            st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
            goto out;
        }
        loom_graph_partition_ranges(outd, ind, g->num_vertices, W, vweight, part);
        int same = 1;
        for (int w = 0; w <= W; w++)
            same &= part[w] == g->part[w + 1];
        if (loom_rank(ctx) == 0) {
            printf("{\"check\": \"partition rule\", \"graph\": \"%s\", \"ranks\": %d, \"workers\": "
                   "%d, "
                   "\"same_as_build\": %s, \"bounds\": [",
                   spec, loom_size(ctx), W, same ? "true" : "false");
            for (int w = 0; w <= W; w++)
                printf("%s%" PRIu64, w ? ", " : "", g->part[w + 1]);
            printf("]}\n");
        }
        free(part);
        if (!same)
            st = LOOM_ERROR(ctx, LOOM_ERR_INTERNAL,
                            "the partition rule differs "
                            "from src/graph/csr.c's choice");
        goto out;
    }
    fprintf(stderr,
            "partition_model: %s loaded in %.1f s (%" PRIu64 " vertices, %" PRIu64
            " arcs, %d threads)\n",
            spec, loom_wtime() - t0, g->num_vertices, g->num_arcs, omp_get_max_threads());
    const char *list = loom_opt_string(opts, "parts");
    char *copy = strdup(list ? list : "2");
    for (char *tok = strtok(copy, ","); tok && st == LOOM_OK; tok = strtok(NULL, ",")) {
        int W = atoi(tok);
        if (W < 1 || (uint64_t)W > g->num_vertices) {
            st = LOOM_ERROR(ctx, LOOM_ERR_USAGE, "--parts: bad worker count '%s'", tok);
            break;
        }
        double t1 = loom_wtime();
        st = model_one(ctx, g, outd, ind, W, vweight, spec);
        fprintf(stderr, "partition_model: %d parts in %.2f s\n", W, loom_wtime() - t1);
    }
    free(copy);
out:
    free(outd);
    free(ind);
    loom_graph_destroy(&g);
    loom_opts_destroy(&opts);
    return st;
}

int main(int argc, char **argv)
{
    loom_ctx_t *ctx = NULL;
    loom_status_t st = loom_ctx_create(&argc, &argv, &ctx);
    if (st == LOOM_OK) st = run(ctx, argc, argv);
    if (st != LOOM_OK) {
        if (ctx)
            loom_error_report(ctx);
        else
            fprintf(stderr, "partition_model: out of memory\n");
    }
    loom_ctx_destroy(&ctx);
    return st == LOOM_OK ? 0 : 1;
}
