/* `loom pagerank-mr GRAPH`: PageRank as one MapReduce job per iteration (the cost of iterating). */
#define _POSIX_C_SOURCE 200809L /* getline, with -std=c11 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "loom/loom.h"
#include "loom/mr.h"

/* The same definition, options and results as `loom pagerank` (networkx's
 * PageRank: scores start at 1/N; x' = (1-d)/N + d * (sum of in-neighbours'
 * x/outdeg + dangling mass / N); --dangling ignore drops the mass), computed
 * the Hadoop way: the graph and scores live in text files
 * "vertex<TAB>score<TAB>n1,n2,..." that each iteration's job reads and rewrites.
 * Map sends every vertex's share to its out-neighbours (key: id, then 0) and
 * passes its adjacency on (key: id, then 1); both keys of a vertex go to the
 * same partition and reduce meets them in that order. Sums are in a different
 * order than the Pregel job's, so scores agree to rounding (~1e-15), not bits. */
static const loom_option_t options[] = {
    LOOM_GRAPH_OPTION_ROWS,
    {"damping", LOOM_OPT_DOUBLE, "0.85", "damping factor", NULL, 1, 0, 1},
    {"iters", LOOM_OPT_INT, "0", "run exactly N iterations (0: until --tol)", NULL, 1, 0, 1e9},
    {"tol", LOOM_OPT_DOUBLE, "1e-4", "stop when the L1 change of an iteration is below T", NULL, 1,
     0, 1e300},
    {"max-iters", LOOM_OPT_INT, "100", "at most N iterations with --tol", NULL, 1, 1, 1e9},
    {"dangling", LOOM_OPT_CHOICE, "redistribute",
     "rank of vertices without out-arcs: redistribute (networkx) or ignore (GAP)",
     "redistribute|ignore", 0, 0, 0},
    {"out", LOOM_OPT_STRING, NULL, "write scores: .h5 dataset /pagerank, else vertex<TAB>score",
     NULL, 0, 0, 0},
    {"top", LOOM_OPT_INT, "0", "print the K highest-ranked vertices", NULL, 1, 0, 1e6},
    {"reducers", LOOM_OPT_INT, "0", "reduce partitions (0 = number of workers)", NULL, 1, 0, 1e6},
    {"split-size", LOOM_OPT_SIZE, "0", "bytes per map task (0 = min(32M, memory/4))", NULL, 0, 0,
     0},
    {"memory", LOOM_OPT_SIZE, "1G",
     "buffer budget per rank (at least 64K); sorted runs spill past it", NULL, 1, 65536, 1.8e19},
    {"spill-dir", LOOM_OPT_STRING, NULL,
     "directory for spill files and the per-iteration state (default $TMPDIR, /tmp)", NULL, 0, 0,
     0},
    {"inject-fault", LOOM_OPT_STRING, NULL,
     "lose-worker:W@map:N or slow-worker:W:SECONDS, in every iteration", NULL, 0, 0, 0},
    {NULL, LOOM_OPT_END, NULL, NULL, NULL, 0, 0, 0},
};

typedef struct prmr {
    double d, inv_n, dang; /* dang: dangling mass of the scores being read */
    int redistribute;
    /* per rank, per iteration (reduce side) */
    uint64_t pend_v;
    int have_pend;
    double pend_sum;
    double residual, next_dang, score_sum;
    char *line;
    size_t cap;
} prmr_t;

static void put_be64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

static uint64_t get_be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Both keys of a vertex (id + 0, id + 1) go to the partition of the id. */
static int vertex_partition(const void *key, size_t klen, int nparts, void *user)
{
    uint64_t v = klen >= 8 ? get_be64(key) : 0;
    v *= 0x9e3779b97f4a7c15ULL;
    return (int)((v >> 32) * (uint64_t)nparts >> 32);
}

/* Parse "v<TAB>score<TAB>adj" (adj: comma-separated ids, may be empty). */
static loom_status_t parse_state(loom_ctx_t *ctx, prmr_t *p, const char *data, size_t len,
                                 uint64_t *v, double *x, const char **adj, size_t *adjlen)
{
    if (len + 1 > p->cap) {
        size_t cap = len + 1 > 2 * p->cap ? len + 1 : 2 * p->cap;
        char *l = realloc(p->line, cap);
        if (!l) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
        p->line = l;
        p->cap = cap;
    }
    memcpy(p->line, data, len);
    p->line[len] = 0;
    char *e1, *e2;
    *v = strtoull(p->line, &e1, 10);
    if (*e1 != '\t') return LOOM_ERROR(ctx, LOOM_ERR_INTERNAL, "pagerank-mr: bad state line");
    *x = strtod(e1 + 1, &e2);
    if (*e2 != '\t') return LOOM_ERROR(ctx, LOOM_ERR_INTERNAL, "pagerank-mr: bad state line");
    *adj = data + (e2 + 1 - p->line);
    *adjlen = len - (size_t)(e2 + 1 - p->line);
    return LOOM_OK;
}

static loom_status_t map(loom_ctx_t *ctx, const loom_mr_record_t *rec, loom_mr_emit_t *out,
                         void *user)
{
    prmr_t *p = user;
    uint64_t v = 0;
    double x = 0;
    const char *adj = NULL;
    size_t adjlen = 0;
    if (rec->len == 0) return LOOM_OK;
    LOOM_TRY(parse_state(ctx, p, rec->data, rec->len, &v, &x, &adj, &adjlen));
    uint64_t deg = 0;
    for (size_t i = 0; i < adjlen; i++)
        deg += adj[i] == ',';
    if (adjlen) deg++;
    unsigned char key[9];
    if (deg) {
        double share = x / (double)deg;
        key[8] = 0;
        const char *s = p->line + (adj - rec->data), *end = s + adjlen;
        while (s < end) {
            char *e;
            put_be64(key, strtoull(s, &e, 10));
            LOOM_TRY(loom_mr_emit_double(out, key, sizeof key, share));
            s = e + 1;
        }
    }
    /* the structure: old score, then the adjacency text */
    put_be64(key, v);
    key[8] = 1;
    size_t vl = sizeof x + adjlen;
    unsigned char *val = malloc(vl);
    if (!val) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    memcpy(val, &x, sizeof x);
    memcpy(val + sizeof x, adj, adjlen);
    loom_status_t st = loom_mr_emit(out, key, sizeof key, val, vl);
    free(val);
    return st;
}

static loom_status_t combine(loom_ctx_t *ctx, const void *key, size_t klen, const void *a,
                             size_t alen, const void *b, size_t blen, loom_mr_emit_t *out,
                             void *user)
{
    /* only contribution keys ever repeat; structure keys are unique */
    return loom_mr_combine_sum_double(ctx, key, klen, a, alen, b, blen, out, user);
}

static loom_status_t reduce(loom_ctx_t *ctx, const void *key, size_t klen, loom_mr_values_t *vals,
                            loom_mr_emit_t *out, void *user)
{
    prmr_t *p = user;
    const unsigned char *k = key;
    uint64_t v = get_be64(k);
    const void *val;
    size_t vl;
    if (k[8] == 0) {
        double s = 0;
        while (loom_mr_values_next(vals, &val, &vl))
            s += loom_mr_double(val, vl);
        p->pend_v = v;
        p->pend_sum = s;
        p->have_pend = 1;
        return LOOM_OK;
    }
    if (!loom_mr_values_next(vals, &val, &vl) || vl < sizeof(double))
        return LOOM_ERROR(ctx, LOOM_ERR_INTERNAL, "pagerank-mr: vertex without structure");
    double old;
    memcpy(&old, val, sizeof old);
    double sum = (p->have_pend && p->pend_v == v) ? p->pend_sum : 0.0;
    p->have_pend = 0;
    double dang = p->redistribute ? p->dang : 0.0;
    double nx = (1.0 - p->d) * p->inv_n + p->d * (sum + dang * p->inv_n);
    p->residual += fabs(nx - old);
    p->score_sum += nx;
    if (vl == sizeof(double)) p->next_dang += nx;
    char head[64];
    int hn = snprintf(head, sizeof head, "%llu\t%.17g\t", (unsigned long long)v, nx);
    LOOM_TRY(loom_mr_write(out, head, (size_t)hn));
    LOOM_TRY(loom_mr_write(out, (const char *)val + sizeof(double), vl - sizeof(double)));
    return loom_mr_write(out, "\n", 1);
}

/* Every rank writes its vertices' lines with score 1/N into dir/part-rRRRRR. */
static loom_status_t write_initial(loom_ctx_t *ctx, const loom_graph_t *g, const char *dir,
                                   prmr_t *p)
{
    MPI_Comm comm = loom_comm(ctx);
    loom_status_t st = LOOM_OK;
    if (loom_is_master(ctx) && mkdir(dir, 0777) != 0)
        st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot create the state directory", dir);
    LOOM_TRY(loom_agree(ctx, comm, st));
    char path[4400];
    snprintf(path, sizeof path, "%s/part-r%05d", dir, loom_rank(ctx));
    double dang = 0;
    FILE *f = fopen(path, "w");
    if (!f) st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot create", path);
    for (uint64_t i = 0; f && i < loom_graph_local_vertices(g); i++) {
        fprintf(f, "%llu\t%.17g\t", (unsigned long long)(g->lo + i), p->inv_n);
        for (uint64_t k = g->out_off[i]; k < g->out_off[i + 1]; k++)
            fprintf(f, k == g->out_off[i] ? "%llu" : ",%llu", (unsigned long long)g->out_dst[k]);
        fputc('\n', f);
        if (g->out_off[i + 1] == g->out_off[i]) dang += p->inv_n;
    }
    if (f && (ferror(f) | fclose(f))) st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot write", path);
    LOOM_TRY(loom_agree(ctx, comm, st));
    LOOM_MPI(ctx, MPI_Allreduce(&dang, &p->dang, 1, MPI_DOUBLE, MPI_SUM, comm));
    return LOOM_OK;
}

/* Remove an iteration's directory once the next one exists: only the files
 * Loom wrote there (the MapReduce output: part files and _SUCCESS). */
static void remove_dir(const char *dir)
{
    char path[4400];
    for (int r = 0; r < 1 << 20; r++) {
        snprintf(path, sizeof path, "%s/part-r%05d", dir, r);
        if (unlink(path) != 0) break;
    }
    for (int r = 0; r < 1 << 20; r++) {
        snprintf(path, sizeof path, "%s/part-%05d", dir, r);
        if (unlink(path) != 0) break;
    }
    snprintf(path, sizeof path, "%s/_SUCCESS", dir);
    unlink(path);
    rmdir(dir);
}

/* Each rank reads every part file and keeps the scores of its own vertices. */
static loom_status_t read_scores(loom_ctx_t *ctx, const loom_graph_t *g, const char *dir,
                                 int nparts, double *x)
{
    loom_status_t st = LOOM_OK;
    char path[4400];
    char *line = NULL;
    size_t cap = 0;
    for (int p = 0; p < nparts && st == LOOM_OK && loom_graph_local_vertices(g); p++) {
        snprintf(path, sizeof path, "%s/part-%05d", dir, p);
        FILE *f = fopen(path, "r");
        if (!f) {
            st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot open", path);
            break;
        }
        while (getline(&line, &cap, f) > 0) {
            char *e;
            uint64_t v = strtoull(line, &e, 10);
            if (v >= g->lo && v < g->hi) x[v - g->lo] = strtod(e + 1, NULL);
        }
        fclose(f);
    }
    free(line);
    return loom_agree(ctx, loom_comm(ctx), st);
}

static int cmp_top(const void *a, const void *b)
{
    const double *x = a, *y = b;
    if (x[0] != y[0]) return x[0] > y[0] ? -1 : 1;
    return x[1] < y[1] ? -1 : x[1] > y[1];
}

/* Rank 0 reads the final state and prints the K best, as `loom pagerank --top`. */
static loom_status_t print_top(loom_ctx_t *ctx, const char *dir, int nparts, uint64_t n, size_t k)
{
    if (!loom_is_master(ctx)) return LOOM_OK;
    double *all = malloc((n ? n : 1) * 2 * sizeof *all);
    if (!all) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory for --top");
    size_t m = 0;
    char path[4400], *line = NULL;
    size_t cap = 0;
    for (int p = 0; p < nparts; p++) {
        snprintf(path, sizeof path, "%s/part-%05d", dir, p);
        FILE *f = fopen(path, "r");
        while (f && getline(&line, &cap, f) > 0 && m < n) {
            char *e;
            uint64_t v = strtoull(line, &e, 10);
            all[2 * m] = strtod(e + 1, NULL);
            all[2 * m + 1] = (double)v;
            m++;
        }
        if (f) fclose(f);
    }
    qsort(all, m, 2 * sizeof *all, cmp_top);
    for (size_t i = 0; i < m && i < k; i++)
        printf("%zu\t%llu\t%.10g\n", i + 1, (unsigned long long)all[2 * i + 1], all[2 * i]);
    fflush(stdout);
    free(line);
    free(all);
    return LOOM_OK;
}

static loom_status_t run(loom_ctx_t *ctx, const loom_opts_t *opts)
{
    const char *spec = loom_opts_arg(opts, 0);
    if (!spec || loom_opts_nargs(opts) != 1)
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                          "pagerank-mr needs one graph (a file or a spec like kron:16)");
    MPI_Comm comm = loom_comm(ctx);
    const char *out = loom_opt_string(opts, "out");
    if (out) LOOM_TRY(loom_output_check(ctx, comm, out, 0, &spec, 1));
    loom_graph_t *g = NULL;
    LOOM_TRY(loom_graph_load(ctx, spec, opts, 0, &g));
    prmr_t p = {
        .d = loom_opt_double(opts, "damping"),
        .inv_n = g->num_vertices ? 1.0 / (double)g->num_vertices : 0.0,
        .redistribute = strcmp(loom_opt_string(opts, "dangling"), "ignore") != 0,
    };
    int64_t iters = loom_opt_int(opts, "iters"), max_iters = loom_opt_int(opts, "max-iters");
    double tol = loom_opt_double(opts, "tol");
    const char *sd = loom_opt_string(opts, "spill-dir");
    if (!sd || !*sd) sd = getenv("TMPDIR");
    if (!sd || !*sd) sd = "/tmp";
    /* the iterations' state lives in one scratch directory of the job's,
     * removed at the end, on a signal, or by a later job if this one dies */
    loom_scratch_t *scratch = NULL;
    loom_status_t st = loom_scratch_begin(ctx, comm, sd, "prmr", &scratch);
    if (st != LOOM_OK) {
        loom_graph_destroy(&g);
        return st;
    }
    char cur[4200], next[4200];
    snprintf(cur, sizeof cur, "%s/iter-0", loom_scratch_path(scratch));
    loom_timer_start(ctx, "setup");
    st = write_initial(ctx, g, cur, &p);
    loom_timer_stop(ctx, "setup");
    loom_mr_job_t job = {.name = "pagerank-mr",
                         .map = map,
                         .combine = combine,
                         .reduce = reduce,
                         .partition = vertex_partition,
                         .user = &p,
                         .reducers = (int)loom_opt_int(opts, "reducers"),
                         .split_size = loom_opt_size(opts, "split-size"),
                         .memory = loom_opt_size(opts, "memory"),
                         .spill_dir = sd,
                         .fault = loom_opt_string(opts, "inject-fault")};
    /* the state's partition count stays as it started, even if a worker dies */
    int nparts = job.reducers > 0 ? job.reducers : loom_num_workers(ctx);
    job.reducers = nparts;
    int64_t done = 0;
    double residual = 0, sum = 0, t0 = loom_wtime();
    int64_t shuffled = 0;
    while (st == LOOM_OK) {
        const char *in[1] = {cur};
        snprintf(next, sizeof next, "%s/iter-%lld", loom_scratch_path(scratch),
                 (long long)done + 1);
        job.inputs = in;
        job.ninputs = 1;
        job.output = next;
        p.residual = p.next_dang = p.score_sum = 0;
        p.have_pend = 0;
        loom_mr_result_t res;
        loom_timer_start(ctx, "iterations");
        st = loom_mr_run(ctx, &job, &res);
        loom_timer_stop(ctx, "iterations");
        if (st != LOOM_OK) break;
        shuffled += res.shuffle_bytes;
        double loc[3] = {p.residual, p.next_dang, p.score_sum}, glob[3];
        /* the job's communicator after loom_mr_run, which may have shrunk it */
        LOOM_MPI(ctx, MPI_Allreduce(loc, glob, 3, MPI_DOUBLE, MPI_SUM, loom_comm(ctx)));
        residual = glob[0];
        p.dang = glob[1];
        sum = glob[2];
        done++;
        if (loom_is_master(ctx)) remove_dir(cur);
        LOOM_MPI(ctx, MPI_Barrier(loom_comm(ctx)));
        memcpy(cur, next, sizeof cur);
        loom_log(ctx, LOOM_LOG_INFO, "pagerank-mr: iteration %lld, residual %.3g", (long long)done,
                 residual);
        if (iters > 0 ? done >= iters : (residual < tol || done >= max_iters)) break;
    }
    double secs = loom_wtime() - t0;
    if (st == LOOM_OK) {
        loom_summary_int(ctx, "iterations", done);
        loom_summary_double(ctx, "residual", residual);
        loom_summary_double(ctx, "score_sum", sum);
        loom_summary_string(ctx, "dangling", p.redistribute ? "redistribute" : "ignore");
        loom_summary_int(ctx, "shuffle_bytes", shuffled);
        if (done > 0) {
            loom_summary_double(ctx, "seconds_per_iteration", secs / (double)done);
            loom_summary_double(ctx, "arcs_per_second",
                                (double)g->num_arcs * (double)done / (secs > 0 ? secs : 1e-9));
        }
        loom_log(ctx, LOOM_LOG_INFO,
                 "pagerank-mr: %lld iterations, residual %.3g, sum %.12g, %.3f s", (long long)done,
                 residual, sum, secs);
    }
    /* a worker died and the job shrank: the vertex ranges to write are the survivors' */
    if (st == LOOM_OK && out && g->nparts != loom_size(ctx)) st = loom_graph_rebuild(ctx, g);
    if (st == LOOM_OK && out) {
        double *x = calloc(loom_graph_local_vertices(g) + 1, sizeof *x);
        st = x ? LOOM_OK : LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
        st = loom_agree(ctx, loom_comm(ctx), st);
        if (st == LOOM_OK) st = read_scores(ctx, g, cur, nparts, x);
        loom_timer_start(ctx, "write");
        if (st == LOOM_OK) st = loom_write_vertex_values(ctx, g, out, "pagerank", x);
        loom_timer_stop(ctx, "write");
        free(x);
    }
    int64_t k = loom_opt_int(opts, "top");
    if (st == LOOM_OK && k > 0) st = print_top(ctx, cur, nparts, g->num_vertices, (size_t)k);
    loom_status_t es = loom_scratch_end(ctx, &scratch);
    if (st == LOOM_OK) st = es;
    free(p.line);
    loom_graph_destroy(&g);
    return st;
}

const loom_job_t loom_job_pagerank_mr = {
    .name = "pagerank-mr",
    .summary = "PageRank as one MapReduce job per iteration (same results as pagerank)",
    .usage = "loom pagerank-mr GRAPH [options]   (GRAPH: a file, or kron:S / urand:S)",
    .options = options,
    .run = run,
};
