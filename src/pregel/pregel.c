/* The Pregel engine: BSP supersteps of a vertex program, with dense or sparse exchange. */
#include "pregel/pregel_internal.h"

#include <limits.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "dataplane/dataplane.h"
#include "kernels/pagerank_pull.h"
#include "kernels/pull_blocked.h"

#define LOOM_PREGEL_CHUNK 256

/* ---------------------------------------------------------------- helpers */

static inline int owner_rank(const loom_graph_t *g, uint64_t v)
{
    return loom_vertex_owner(g->part, g->nparts, v);
}

static double agg_identity(loom_agg_op_t op)
{
    return op == LOOM_AGG_MIN ? INFINITY : op == LOOM_AGG_MAX ? -INFINITY : 0.0;
}

static double agg_fold(loom_agg_op_t op, double a, double x)
{
    if (op == LOOM_AGG_MIN) return x < a ? x : a;
    if (op == LOOM_AGG_MAX) return x > a ? x : a;
    return a + x;
}

static loom_status_t sparse_combine(loom_exchange_t *x, void *user, int dest, int nseg,
                                    const unsigned char *const *seg, const size_t *len, int last,
                                    loom_buf_t *out);

static int builtin(loom_pregel_combiner_t c)
{
    return c >= LOOM_COMBINE_SUM_F64 && c <= LOOM_COMBINE_MAX_U64;
}

static void combine_into(const loom_pregel_program_t *p, void *acc, const void *msg)
{
    double a, x;
    uint64_t ua, ux;
    switch (p->combiner) {
    case LOOM_COMBINE_SUM_F64:
    case LOOM_COMBINE_MIN_F64:
    case LOOM_COMBINE_MAX_F64:
        memcpy(&a, acc, 8);
        memcpy(&x, msg, 8);
        a = p->combiner == LOOM_COMBINE_SUM_F64   ? a + x
            : p->combiner == LOOM_COMBINE_MIN_F64 ? (x < a ? x : a)
                                                  : (x > a ? x : a);
        memcpy(acc, &a, 8);
        break;
    case LOOM_COMBINE_SUM_U64:
    case LOOM_COMBINE_MIN_U64:
    case LOOM_COMBINE_MAX_U64:
        memcpy(&ua, acc, 8);
        memcpy(&ux, msg, 8);
        ua = p->combiner == LOOM_COMBINE_SUM_U64   ? ua + ux
             : p->combiner == LOOM_COMBINE_MIN_U64 ? (ux < ua ? ux : ua)
                                                   : (ux > ua ? ux : ua);
        memcpy(acc, &ua, 8);
        break;
    case LOOM_COMBINE_USER:
        p->combine(acc, msg, p->user);
        break;
    default:
        break;
    }
}

static void set_identity(loom_pregel_t *pg)
{
    double d = 0.0;
    uint64_t u = 0;
    switch (pg->prog.combiner) {
    case LOOM_COMBINE_MIN_F64:
        d = INFINITY;
        break;
    case LOOM_COMBINE_MAX_F64:
        d = -INFINITY;
        break;
    case LOOM_COMBINE_MIN_U64:
        u = UINT64_MAX;
        break;
    default:
        break;
    }
    if (pg->prog.combiner >= LOOM_COMBINE_SUM_F64 && pg->prog.combiner <= LOOM_COMBINE_MAX_F64)
        memcpy(pg->identity, &d, 8);
    else
        memcpy(pg->identity, &u, 8);
}

static int msgbuf_push(loom_msgbuf_t *b, uint64_t dst, const void *msg, size_t msz, size_t rsz)
{
    if (b->len + rsz > b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 4096;
        while (cap < b->len + rsz)
            cap *= 2;
        uint8_t *d = realloc(b->data, cap);
        if (!d) {
            b->failed = 1;
            return -1;
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, &dst, 8);
    memcpy(b->data + b->len + 8, msg, msz);
    b->len += rsz;
    return 0;
}

/* The gpub/pubflag slot of local vertex i: its position after the degree
 * reordering of this rank's range, or its global id without one. */
static inline uint64_t pub_slot(const loom_pregel_t *pg, uint64_t i)
{
    return pg->slot ? pg->lo + pg->slot[i] : pg->lo + i;
}

/* ---------------------------------------------------------------- vertex API */

uint64_t loom_vertex_out_edges(const loom_vertex_t *v, const uint64_t **dst, const double **w)
{
    const loom_graph_t *g = v->pg->g;
    uint64_t b = g->out_off[v->local];
    if (dst) *dst = g->out_dst + b;
    if (w) *w = g->out_w ? g->out_w + b : NULL;
    return g->out_off[v->local + 1] - b;
}

uint64_t loom_vertex_num_vertices(const loom_vertex_t *v)
{
    return v->pg->n;
}

void loom_vertex_send(loom_vertex_t *v, uint64_t dst, const void *msg)
{
    loom_pregel_t *pg = v->pg;
    int w = owner_rank(pg->g, dst) - pg->wbase;
    if (w < 0) w = 0; /* the master owns nothing; cannot happen for valid ids */
    loom_msgbuf_t *b = &pg->tbuf[(size_t)v->tid * pg->nworkers + w];
    if (msgbuf_push(b, dst, msg, pg->msz, pg->rsz) == 0) pg->tstat[v->tid].sparse++;
}

void loom_vertex_send_all(loom_vertex_t *v, const void *msg)
{
    loom_pregel_t *pg = v->pg;
    if (pg->publish) {
        memcpy(pg->gpub + pub_slot(pg, v->local) * pg->msz, msg, pg->msz);
        if (!pg->sent[v->local]) {
            pg->sent[v->local] = 1;
            pg->tstat[v->tid].npub++;
            pg->tstat[v->tid].pub_arcs += v->out_degree;
        }
        return;
    }
    const uint64_t *dst;
    uint64_t d = loom_vertex_out_edges(v, &dst, NULL);
    for (uint64_t e = 0; e < d; e++)
        loom_vertex_send(v, dst[e], msg);
}

void loom_vertex_vote_halt(loom_vertex_t *v)
{
    v->pg->halted[v->local] = 1;
}

void loom_vertex_aggregate(loom_vertex_t *v, int i, double x)
{
    loom_pregel_t *pg = v->pg;
    if (i < 0 || i >= pg->prog.naggs) return;
    double *a = &pg->tstat[v->tid].aggs[i];
    *a = agg_fold(pg->prog.aggs[i], *a, x);
}

double loom_vertex_aggregated(const loom_vertex_t *v, int i)
{
    if (i < 0 || i >= v->pg->prog.naggs) return 0.0;
    return v->pg->aggs[i];
}

/* ---------------------------------------------------------------- create / destroy */

static loom_status_t alloc_zero(loom_ctx_t *ctx, void **p, size_t bytes, const char *what)
{
    *p = calloc(bytes ? bytes : 1, 1);
    if (!*p)
        return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory allocating %zu bytes for %s", bytes,
                          what);
    return LOOM_OK;
}

/* Zeroed memory on 2 MiB transparent huge pages where the kernel allows
 * them: the dense pull gathers at random from gpub, and with 4 KiB pages
 * most of those gathers would also miss the TLB. */
static loom_status_t alloc_huge(loom_ctx_t *ctx, void **p, size_t bytes, const char *what)
{
    const size_t huge = (size_t)2 << 20;
    size_t len = bytes < huge ? (bytes ? bytes : 1) : (bytes + huge - 1) / huge * huge;
    if (bytes < huge) return alloc_zero(ctx, p, bytes, what);
    if (posix_memalign(p, huge, len) != 0)
        return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory allocating %zu bytes for %s", bytes,
                          what);
    madvise(*p, len, MADV_HUGEPAGE); /* advice only: failure just means small pages */
    memset(*p, 0, len);
    return LOOM_OK;
}

static loom_status_t check_program(loom_ctx_t *ctx, const loom_pregel_program_t *p)
{
    if ((!p->compute && !p->compute_block) || p->value_size == 0 || p->msg_size == 0)
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                          "pregel: a program needs compute, value_size and msg_size");
    if (p->compute_block && p->combiner == LOOM_COMBINE_NONE)
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "pregel: compute_block needs a combiner");
    if (builtin(p->combiner) && p->msg_size != 8)
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                          "pregel: built-in combiners need 8-byte messages (got %zu)", p->msg_size);
    if (p->combiner == LOOM_COMBINE_USER && !p->combine)
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "pregel: LOOM_COMBINE_USER needs combine");
    if (p->naggs < 0 || p->naggs > LOOM_PREGEL_MAX_AGGS)
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "pregel: %d aggregators (at most %d)", p->naggs,
                          LOOM_PREGEL_MAX_AGGS);
    for (int i = 0; i < p->naggs; i++)
        if (p->aggs[i] < LOOM_AGG_SUM || p->aggs[i] > LOOM_AGG_MAX)
            return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "pregel: aggregator %d has no valid op", i);
    return LOOM_OK;
}

/* The sparse exchange over the workers. Collective over them once every
 * rank's local state is in place (with a combiner it finds the nodes), so it
 * comes after the agreement on create_local. */
static loom_status_t create_exchange(loom_pregel_t *pg)
{
    if (!pg->is_worker) return LOOM_OK;
    /* combined messages may be combined again per node before they leave it */
    loom_exchange_opts_t xo = {.among = LOOM_AMONG_WORKERS,
                               .elem = pg->rsz,
                               .combine =
                                   pg->prog.combiner != LOOM_COMBINE_NONE ? sparse_combine : NULL};
    return loom_exchange_create(pg->ctx, &xo, &pg->xchg);
}

static loom_status_t create_local(loom_pregel_t *pg)
{
    loom_ctx_t *ctx = pg->ctx;
    const loom_graph_t *g = pg->g;
    LOOM_TRY(alloc_zero(ctx, (void **)&pg->values, pg->nloc * pg->vsz, "vertex values"));
    LOOM_TRY(alloc_zero(ctx, (void **)&pg->halted, pg->nloc, "halt flags"));
    LOOM_TRY(alloc_zero(ctx, (void **)&pg->tstat, (size_t)pg->nthreads * sizeof *pg->tstat,
                        "thread counters"));
    LOOM_TRY(alloc_zero(ctx, (void **)&pg->tbuf,
                        (size_t)pg->nthreads * pg->nworkers * sizeof *pg->tbuf, "send buffers"));
    if (pg->prog.compute_block) {
        LOOM_TRY(alloc_zero(ctx, (void **)&pg->bout,
                            (size_t)pg->nthreads * LOOM_PREGEL_CHUNK * pg->msz, "block messages"));
        LOOM_TRY(alloc_zero(ctx, (void **)&pg->bsent, (size_t)pg->nthreads * LOOM_PREGEL_CHUNK,
                            "block flags"));
    }
    if (pg->prog.combiner != LOOM_COMBINE_NONE) {
        LOOM_TRY(alloc_zero(ctx, (void **)&pg->inbox, pg->nloc * pg->msz, "inbox"));
        LOOM_TRY(alloc_zero(ctx, (void **)&pg->has, pg->nloc, "inbox flags"));
    } else {
        LOOM_TRY(alloc_zero(ctx, (void **)&pg->moff, (pg->nloc + 1) * sizeof *pg->moff,
                            "message offsets"));
    }
    if (!pg->is_worker) return LOOM_OK;
    if (pg->publish) {
        LOOM_TRY(alloc_huge(ctx, (void **)&pg->gpub, pg->n * pg->msz, "published messages"));
        LOOM_TRY(alloc_zero(ctx, (void **)&pg->pubflag, pg->n, "published flags"));
        LOOM_TRY(alloc_zero(ctx, (void **)&pg->sent, pg->nloc, "sent flags"));
    }
    if (pg->dense_ok) {
        /* the kernel's own structures come in prepare_pull, once the options are known */
        pg->in_off = g->in_off;
        pg->in_idx = g->in_src;
    }
    return LOOM_OK;
}

static void init_values(loom_pregel_t *pg)
{
    if (!pg->prog.init) return;
#pragma omp parallel num_threads(pg->nthreads)
    {
        loom_vertex_t v = {.pg = pg, .tid = omp_get_thread_num(), .superstep = 0};
#pragma omp for schedule(static)
        for (uint64_t i = 0; i < pg->nloc; i++) {
            v.local = i;
            v.id = pg->lo + i;
            v.value = pg->values + i * pg->vsz;
            v.out_degree = pg->g->out_off[i + 1] - pg->g->out_off[i];
            pg->prog.init(&v, pg->prog.user);
        }
    }
}

/* Take the job's members and this rank's part of the graph as they are now
 * (again after a recovery). Dense exchange needs in-edges on every worker:
 * decided once for all. Collective. */
static loom_status_t bind_members(loom_pregel_t *pg)
{
    loom_ctx_t *ctx = pg->ctx;
    const loom_graph_t *g = pg->g;
    /* (the all-gather's counts and displacements are ints: n below 2^31) */
    int dense_ok = pg->prog.combiner != LOOM_COMBINE_NONE && g->num_vertices <= INT32_MAX &&
                   (!loom_is_worker(ctx) || (g->in_off && (g->in_src || g->hi == g->lo)));
    LOOM_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, &dense_ok, 1, MPI_INT, MPI_MIN, loom_comm(ctx)));
    pg->comm = loom_comm(ctx);
    pg->wcomm = loom_worker_comm(ctx);
    pg->rank = loom_rank(ctx);
    pg->size = loom_size(ctx);
    pg->is_worker = loom_is_worker(ctx);
    pg->nworkers = loom_num_workers(ctx);
    pg->wbase = pg->size > 1 ? 1 : 0;
    pg->n = g->num_vertices;
    pg->lo = g->lo;
    pg->nloc = g->hi - g->lo;
    pg->dense_ok = dense_ok;
    if (pg->size > 1 && pg->nloc > 0 && !pg->is_worker)
        return LOOM_ERROR(ctx, LOOM_ERR_INTERNAL, "pregel: the master owns vertices");
    return LOOM_OK;
}

static void free_local(loom_pregel_t *pg)
{
    free(pg->values);
    free(pg->halted);
    free(pg->inbox);
    free(pg->has);
    free(pg->moff);
    free(pg->mdata);
    free(pg->gpub);
    free(pg->pubflag);
    free(pg->sent);
    free(pg->in_idx_own);
    free(pg->slot);
    loom_bpull_free(&pg->bpull); /* before the bins it may point into */
    loom_bpush_free(&pg->push);
    loom_nodemem_destroy(&pg->bins);
    loom_halo_destroy(&pg->halo); /* and with it the mirrors */
    free(pg->has_in);
    pg->mirror = NULL;
    pg->has_in = NULL;
    if (pg->tbuf)
        for (size_t i = 0; i < (size_t)pg->nthreads * pg->nworkers; i++)
            free(pg->tbuf[i].data);
    free(pg->tbuf);
    free(pg->tstat);
    free(pg->bout);
    free(pg->bsent);
    loom_exchange_destroy(&pg->xchg);
    pg->values = pg->halted = pg->inbox = pg->has = pg->mdata = pg->gpub = pg->pubflag = NULL;
    pg->sent = pg->bout = pg->bsent = NULL;
    pg->moff = NULL;
    pg->in_idx_own = pg->slot = NULL;
    pg->in_idx = NULL;
    pg->in_idx32 = 0;
    pg->tbuf = NULL;
    pg->tstat = NULL;
    pg->pull_ready = 0;
}

loom_status_t loom_pregel_create(loom_ctx_t *ctx, const loom_graph_t *g,
                                 const loom_pregel_program_t *prog, loom_pregel_t **out)
{
    *out = NULL;
    loom_status_t st = check_program(ctx, prog);
    loom_pregel_t *pg = NULL;
    if (st == LOOM_OK) {
        pg = calloc(1, sizeof *pg);
        if (!pg) st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory for the Pregel engine");
    }
    if (pg) {
        pg->ctx = ctx;
        pg->g = g;
        pg->prog = *prog;
        pg->vsz = prog->value_size;
        pg->msz = prog->msg_size;
        pg->rsz = (8 + pg->msz + 7) / 8 * 8;
        pg->nthreads = omp_get_max_threads();
        pg->max_supersteps = 1000000;
        pg->fault.rank = -1;
        pg->last_ckpt = -1;
        pg->reorder = 1;
        pg->publish = prog->combiner != LOOM_COMBINE_NONE;
        for (int i = 0; i < prog->naggs; i++)
            pg->aggs[i] = agg_identity(prog->aggs[i]);
        set_identity(pg);
    }
    /* every rank takes part in the member binding's reduction */
    loom_status_t bs = pg ? bind_members(pg) : LOOM_OK;
    if (!pg) {
        int dummy = 0;
        LOOM_MPI_KEEP(ctx, bs,
                      MPI_Allreduce(MPI_IN_PLACE, &dummy, 1, MPI_INT, MPI_MIN, loom_comm(ctx)));
    }
    if (st == LOOM_OK) st = bs;
    if (st == LOOM_OK) st = create_local(pg);
    st = loom_agree(ctx, loom_comm(ctx), st);
    if (st == LOOM_OK) st = loom_agree(ctx, loom_comm(ctx), create_exchange(pg));
    if (st != LOOM_OK) {
        loom_pregel_destroy(&pg);
        return st;
    }
    init_values(pg);
    *out = pg;
    return LOOM_OK;
}

void loom_pregel_destroy(loom_pregel_t **pgp)
{
    if (!pgp || !*pgp) return;
    loom_pregel_t *pg = *pgp;
    free_local(pg);
    free(pg->ckpt_dir);
    free(pg->restart_dir);
    free(pg);
    *pgp = NULL;
}

void *loom_pregel_values(loom_pregel_t *pg)
{
    return pg->values;
}
int64_t loom_pregel_supersteps(const loom_pregel_t *pg)
{
    return pg->superstep;
}
double loom_pregel_aggregated(const loom_pregel_t *pg, int i)
{
    return (i >= 0 && i < pg->prog.naggs) ? pg->aggs[i] : 0.0;
}
void loom_pregel_set_max_supersteps(loom_pregel_t *pg, int64_t n)
{
    pg->max_supersteps = n;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

loom_status_t loom_pregel_configure(loom_pregel_t *pg, const loom_opts_t *o)
{
    loom_ctx_t *ctx = pg->ctx;
    pg->max_supersteps = loom_opt_int(o, "max-supersteps");
    pg->ckpt_every = loom_opt_int(o, "checkpoint-every");
    free(pg->ckpt_dir);
    free(pg->restart_dir);
    pg->ckpt_dir = dup_or_null(loom_opt_string(o, "checkpoint-dir"));
    pg->restart_dir = dup_or_null(loom_opt_string(o, "restart"));
    if (pg->ckpt_every > 0 && !pg->ckpt_dir)
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "--checkpoint-every needs --checkpoint-dir");
    /* A directory without --checkpoint-every: checkpoints only on a signal. */
    const char *ex = loom_opt_string(o, "exchange");
    pg->exchange_mode = !ex || !strcmp(ex, "auto") ? LOOM_EXCHANGE_AUTO
                        : !strcmp(ex, "dense")     ? LOOM_EXCHANGE_DENSE
                                                   : LOOM_EXCHANGE_SPARSE;
    const char *po = loom_opt_string(o, "pull-order");
    pg->reorder = !po || strcmp(po, "natural") != 0;
    const char *pk = loom_opt_string(o, "pull");
    pg->pull_kind = !pk || !strcmp(pk, "auto") ? LOOM_PULL_KIND_AUTO
                    : !strcmp(pk, "blocked")   ? LOOM_PULL_KIND_BLOCKED
                                               : LOOM_PULL_KIND_GATHER;
    const char *pv = loom_opt_string(o, "pull-values");
    pg->pull_single = pv && !strcmp(pv, "float");
    if (pg->pull_kind == LOOM_PULL_KIND_BLOCKED && pg->prog.combiner != LOOM_COMBINE_SUM_F64)
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                          "--pull blocked sums doubles; this program's messages are combined "
                          "otherwise (use --pull gather)");
    if (pg->pull_single &&
        (pg->pull_kind == LOOM_PULL_KIND_GATHER || pg->prog.combiner != LOOM_COMBINE_SUM_F64))
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "--pull-values float needs the blocked kernel");
    LOOM_TRY(loom_fault_parse(ctx, loom_opt_string(o, "inject-fault"), 1u << LOOM_PHASE_SUPERSTEP,
                              &pg->fault));
    char hint[4200];
    if (pg->ckpt_dir)
        snprintf(hint, sizeof hint, "no checkpoint was written yet (they go to %s)", pg->ckpt_dir);
    else if (pg->restart_dir)
        snprintf(hint, sizeof hint, "resume with --restart %s, as this run did", pg->restart_dir);
    else
        snprintf(hint, sizeof hint,
                 "nothing was written; run it again (--checkpoint-dir DIR "
                 "--checkpoint-every K make a long run resumable)");
    loom_set_resume_hint(ctx, hint);
    return LOOM_OK;
}

loom_status_t loom_pregel_check_options(loom_ctx_t *ctx, const loom_opts_t *o, const char *input)
{
    loom_status_t st = LOOM_OK;
    const char *ck = loom_opt_string(o, "checkpoint-dir"), *rs = loom_opt_string(o, "restart");
    loom_fault_t f;
    st = loom_fault_parse(ctx, loom_opt_string(o, "inject-fault"), 1u << LOOM_PHASE_SUPERSTEP, &f);
    if (st == LOOM_OK && loom_opt_int(o, "checkpoint-every") > 0 && !ck)
        st = LOOM_ERROR(ctx, LOOM_ERR_USAGE, "--checkpoint-every needs --checkpoint-dir");
    if (st == LOOM_OK && loom_is_master(ctx)) {
        if (ck) st = loom_pregel_checkpoint_dir_check(ctx, ck);
        if (st == LOOM_OK && rs) st = loom_pregel_restart_check(ctx, rs);
    }
    st = loom_agree(ctx, loom_comm(ctx), st);
    const char *out = loom_opt_string(o, "out");
    if (st == LOOM_OK && out)
        st = loom_output_check(ctx, loom_comm(ctx), out, 0, &input, input ? 1 : 0);
    return st;
}

/* ---------------------------------------------------------------- compute */

/* Run compute on every active local vertex; publish identities for those that
 * did not send_all so that a dense pull sees a neutral element. */
/* compute_phase for a program with compute_block: blocks of LOOM_PREGEL_CHUNK
 * vertices, handed to threads as compute's vertices are (chunk k to thread
 * k mod threads), then their send_all messages published. */
static void compute_blocks(loom_pregel_t *pg)
{
    const loom_pregel_program_t *p = &pg->prog;
    const uint64_t *out_off = pg->g->out_off;
    const size_t msz = pg->msz;
    const uint64_t nblocks = (pg->nloc + LOOM_PREGEL_CHUNK - 1) / LOOM_PREGEL_CHUNK;
#pragma omp parallel num_threads(pg->nthreads)
    {
        int tid = omp_get_thread_num();
        loom_tstat_t *ts = &pg->tstat[tid];
        uint8_t *out = pg->bout + (size_t)tid * LOOM_PREGEL_CHUNK * msz;
        uint8_t *sent = pg->bsent + (size_t)tid * LOOM_PREGEL_CHUNK;
        loom_vertex_t v = {.pg = pg, .tid = tid, .superstep = pg->superstep};
        uint64_t active = 0, npub = 0, pub_arcs = 0;
#pragma omp for schedule(static, 1)
        for (uint64_t k = 0; k < nblocks; k++) {
            uint64_t a = k * LOOM_PREGEL_CHUNK;
            size_t n =
                pg->nloc - a < LOOM_PREGEL_CHUNK ? (size_t)(pg->nloc - a) : LOOM_PREGEL_CHUNK;
            memset(sent, 0, n);
            loom_vertex_block_t b = {.superstep = pg->superstep,
                                     .first_id = pg->lo + a,
                                     .count = n,
                                     .values = pg->values + a * pg->vsz,
                                     .msgs = pg->inbox + a * msz,
                                     .has = pg->has + a,
                                     .out_off = out_off + a,
                                     .out = out,
                                     .sent = sent,
                                     .aggregated = pg->aggs,
                                     .aggs = ts->aggs};
            p->compute_block(&b, p->user);
            active += n;
            if (pg->publish && msz == 8) {
                /* the common case (built-in combiners): one 8-byte store per vertex, in
                 * loops without a call or a reload (pg's fields could alias the stores) */
                uint64_t ident;
                uint64_t *restrict gp = (uint64_t *)(void *)pg->gpub + pg->lo;
                const uint64_t *restrict o = (const uint64_t *)(void *)out;
                const uint8_t *restrict sn = sent;
                const uint64_t *restrict oo = out_off + a;
                const uint32_t *slot = pg->slot;
                memcpy(&ident, pg->identity, 8);
                memcpy(pg->sent + a, sn, n);
                if (slot) {
                    for (size_t i = 0; i < n; i++)
                        gp[slot[a + i]] = sn[i] ? o[i] : ident;
                } else {
                    for (size_t i = 0; i < n; i++)
                        gp[a + i] = sn[i] ? o[i] : ident;
                }
                uint64_t np = 0, pa = 0;
                for (size_t i = 0; i < n; i++) {
                    np += sn[i];
                    pa += sn[i] ? oo[i + 1] - oo[i] : 0;
                }
                npub += np;
                pub_arcs += pa;
                continue;
            }
            for (size_t i = 0; i < n; i++) {
                uint64_t li = a + i;
                if (pg->publish) {
                    pg->sent[li] = sent[i];
                    memcpy(pg->gpub + pub_slot(pg, li) * msz,
                           sent[i] ? out + i * msz : pg->identity, msz);
                    if (sent[i]) {
                        npub++;
                        pub_arcs += out_off[li + 1] - out_off[li];
                    }
                } else if (sent[i]) {
                    v.local = li;
                    v.id = pg->lo + li;
                    v.value = pg->values + li * pg->vsz;
                    v.out_degree = out_off[li + 1] - out_off[li];
                    loom_vertex_send_all(&v, out + i * msz);
                }
            }
        }
        ts->active = active;
        ts->npub += npub;
        ts->pub_arcs += pub_arcs;
    }
}

static void compute_phase(loom_pregel_t *pg)
{
    const loom_pregel_program_t *p = &pg->prog;
    for (int t = 0; t < pg->nthreads; t++) {
        loom_tstat_t *ts = &pg->tstat[t];
        ts->active = ts->npub = ts->pub_arcs = ts->sparse = 0;
        for (int i = 0; i < p->naggs; i++)
            ts->aggs[i] = agg_identity(p->aggs[i]);
        for (int w = 0; w < pg->nworkers; w++)
            pg->tbuf[(size_t)t * pg->nworkers + w].len = 0;
    }
    if (p->compute_block) {
        compute_blocks(pg);
        return;
    }
    const int combined = p->combiner != LOOM_COMBINE_NONE;
    const uint64_t *out_off = pg->g->out_off;
    /* A static schedule: each thread folds the same vertices into its
     * aggregator partials every run, so results are reproducible (and a
     * restart matches an uninterrupted run bit for bit). */
#pragma omp parallel num_threads(pg->nthreads)
    {
        int tid = omp_get_thread_num();
        loom_vertex_t v = {.pg = pg, .tid = tid, .superstep = pg->superstep};
        uint64_t active = 0;
#pragma omp for schedule(static, LOOM_PREGEL_CHUNK)
        for (uint64_t i = 0; i < pg->nloc; i++) {
            const void *msgs = NULL;
            size_t nm = 0;
            if (combined) {
                if (pg->has[i]) {
                    msgs = pg->inbox + i * pg->msz;
                    nm = 1;
                }
            } else {
                nm = pg->moff[i + 1] - pg->moff[i];
                msgs = pg->mdata ? pg->mdata + pg->moff[i] * pg->msz : NULL;
            }
            if (pg->publish) pg->sent[i] = 0;
            if (pg->halted[i] && nm == 0) {
                if (pg->publish)
                    memcpy(pg->gpub + pub_slot(pg, i) * pg->msz, pg->identity, pg->msz);
                continue;
            }
            pg->halted[i] = 0;
            v.local = i;
            v.id = pg->lo + i;
            v.value = pg->values + i * pg->vsz;
            v.out_degree = out_off[i + 1] - out_off[i];
            p->compute(&v, msgs, nm, p->user);
            if (pg->publish && !pg->sent[i])
                memcpy(pg->gpub + pub_slot(pg, i) * pg->msz, pg->identity, pg->msz);
            if (!pg->halted[i]) active++;
        }
        pg->tstat[tid].active = active;
    }
}

/* ---------------------------------------------------------------- exchange */

static int cmp_rec(const void *a, const void *b)
{
    uint64_t x, y;
    memcpy(&x, a, 8);
    memcpy(&y, b, 8);
    return x < y ? -1 : x > y;
}

/* Sort one destination's records by vertex and fold equal ones with the
 * combiner: the sender-side combining of Pregel. Returns the new count. */
static size_t combine_records(loom_pregel_t *pg, uint8_t *recs, size_t n)
{
    if (n < 2) return n;
    qsort(recs, n, pg->rsz, cmp_rec);
    size_t out = 0;
    for (size_t i = 1; i < n; i++) {
        uint8_t *a = recs + out * pg->rsz, *b = recs + i * pg->rsz;
        if (memcmp(a, b, 8) == 0) {
            combine_into(&pg->prog, a + 8, b + 8);
        } else {
            out++;
            if (out != i) memcpy(recs + out * pg->rsz, b, pg->rsz);
        }
    }
    return out + 1;
}

/* Expand the published send_all messages of this rank into records (used when
 * the superstep goes sparse). */
static void expand_published(loom_pregel_t *pg)
{
    const loom_graph_t *g = pg->g;
#pragma omp parallel num_threads(pg->nthreads)
    {
        loom_vertex_t v = {.pg = pg, .tid = omp_get_thread_num()};
#pragma omp for schedule(static, LOOM_PREGEL_CHUNK)
        for (uint64_t i = 0; i < pg->nloc; i++) {
            if (!pg->sent[i]) continue;
            v.local = i;
            const uint8_t *msg = pg->gpub + pub_slot(pg, i) * pg->msz;
            for (uint64_t e = g->out_off[i]; e < g->out_off[i + 1]; e++)
                loom_vertex_send(&v, g->out_dst[e], msg);
        }
    }
}

loom_status_t loom_pregel_deliver(loom_pregel_t *pg, const uint8_t *recs, size_t nrecs, int merge)
{
    loom_ctx_t *ctx = pg->ctx;
    if (pg->prog.combiner != LOOM_COMBINE_NONE) {
        if (!merge) memset(pg->has, 0, pg->nloc);
        for (size_t r = 0; r < nrecs; r++) {
            uint64_t dst;
            memcpy(&dst, recs + r * pg->rsz, 8);
            uint64_t i = dst - pg->lo;
            if (dst < pg->lo || i >= pg->nloc)
                return LOOM_ERROR(ctx, LOOM_ERR_INTERNAL,
                                  "pregel: message for vertex %llu "
                                  "reached the wrong rank",
                                  (unsigned long long)dst);
            uint8_t *acc = pg->inbox + i * pg->msz;
            if (pg->has[i]) {
                combine_into(&pg->prog, acc, recs + r * pg->rsz + 8);
            } else {
                memcpy(acc, recs + r * pg->rsz + 8, pg->msz);
                pg->has[i] = 1;
            }
        }
        return LOOM_OK;
    }
    memset(pg->moff, 0, (pg->nloc + 1) * sizeof *pg->moff);
    for (size_t r = 0; r < nrecs; r++) {
        uint64_t dst;
        memcpy(&dst, recs + r * pg->rsz, 8);
        if (dst < pg->lo || dst - pg->lo >= pg->nloc)
            return LOOM_ERROR(ctx, LOOM_ERR_INTERNAL,
                              "pregel: message for vertex %llu reached the wrong rank",
                              (unsigned long long)dst);
        pg->moff[dst - pg->lo + 1]++;
    }
    for (uint64_t i = 0; i < pg->nloc; i++)
        pg->moff[i + 1] += pg->moff[i];
    free(pg->mdata);
    pg->mdata = NULL;
    if (nrecs) {
        pg->mdata = malloc(nrecs * pg->msz);
        if (!pg->mdata)
            return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory for %zu messages", nrecs);
        /* A stable placement keeps each vertex's messages in arrival order. */
        uint64_t *fill = malloc((pg->nloc ? pg->nloc : 1) * sizeof *fill);
        if (!fill) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory for message placement");
        memcpy(fill, pg->moff, pg->nloc * sizeof *fill);
        for (size_t r = 0; r < nrecs; r++) {
            uint64_t dst;
            memcpy(&dst, recs + r * pg->rsz, 8);
            memcpy(pg->mdata + fill[dst - pg->lo]++ * pg->msz, recs + r * pg->rsz + 8, pg->msz);
        }
        free(fill);
    }
    return LOOM_OK;
}

/* The sparse exchange's state: each destination's records (gathered from the
 * thread buffers and combined) and how far they were sent. */
typedef struct sparse {
    loom_pregel_t *pg;
    loom_status_t failed; /* gathering failed here: the first pack says so */
    uint8_t *sbuf;
    size_t *start, *len, *sent; /* per destination worker, bytes */
    loom_buf_t all;             /* without a combiner: every record received */
    loom_buf_t merge;           /* two levels, at a relay: heap and positions */
} sparse_t;

static loom_status_t sparse_pack(loom_exchange_t *x, void *user, int *more)
{
    sparse_t *sp = user;
    size_t room = loom_exchange_room(x);
    *more = 0;
    if (sp->failed != LOOM_OK) return sp->failed;
    for (int w = 0; w < sp->pg->nworkers; w++) {
        size_t n = sp->len[w] - sp->sent[w];
        if (n > room) {
            n = room;
            *more = 1;
        }
        if (n) LOOM_TRY(loom_exchange_put(x, w, sp->sbuf + sp->start[w] + sp->sent[w], n));
        sp->sent[w] += n;
    }
    return LOOM_OK;
}

static loom_status_t sparse_unpack(loom_exchange_t *x, void *user, int src,
                                   const unsigned char *data, size_t bytes)
{
    sparse_t *sp = user;
    loom_pregel_t *pg = sp->pg;
    (void)x;
    (void)src;
    /* a combiner folds each round into the inbox; otherwise the messages are
     * placed per vertex once all have arrived */
    if (pg->prog.combiner != LOOM_COMBINE_NONE)
        return loom_pregel_deliver(pg, data, bytes / pg->rsz, 1);
    return loom_buf_append(pg->ctx, &sp->all, data, bytes);
}

/* Two-level exchange, at a relay: the node's records for one destination,
 * folded per vertex as the sender folds its own. Each member's segment is a
 * piece of its sorted, folded records, so a c-way merge through a heap of
 * the members' heads does it in one pass. */
typedef struct relay_merge {
    const unsigned char *const *seg;
    const size_t *pos;
} relay_merge_t;

static int relay_less(const void *arg, int a, int b)
{
    const relay_merge_t *rm = arg;
    uint64_t x, y;
    memcpy(&x, rm->seg[a] + rm->pos[a], 8);
    memcpy(&y, rm->seg[b] + rm->pos[b], 8);
    return x < y || (x == y && a < b);
}

static loom_status_t sparse_combine(loom_exchange_t *x, void *user, int dest, int nseg,
                                    const unsigned char *const *seg, const size_t *len, int last,
                                    loom_buf_t *out)
{
    sparse_t *sp = user;
    loom_pregel_t *pg = sp->pg;
    size_t rsz = pg->rsz, total = 0;
    (void)x;
    (void)dest;
    (void)last;
    for (int m = 0; m < nseg; m++)
        total += len[m];
    LOOM_TRY(loom_buf_reserve(pg->ctx, out, total));
    size_t need = (size_t)nseg * (sizeof(size_t) + sizeof(int));
    sp->merge.len = 0;
    LOOM_TRY(loom_buf_reserve(pg->ctx, &sp->merge, need));
    size_t *pos = (size_t *)(void *)sp->merge.data;
    int *heap = (int *)(void *)(pos + nseg);
    memset(pos, 0, (size_t)nseg * sizeof *pos);
    relay_merge_t rm = {seg, pos};
    int hn = 0;
    for (int m = 0; m < nseg; m++)
        if (len[m]) heap[hn++] = m;
    for (int i = hn / 2 - 1; i >= 0; i--)
        loom_heap_down(heap, hn, i, relay_less, &rm);
    uint8_t *o = out->data + out->len;
    size_t n = 0;
    uint64_t prev = 0;
    while (hn > 0) {
        int m = heap[0];
        const uint8_t *r = seg[m] + pos[m];
        uint64_t v;
        memcpy(&v, r, 8);
        if (n && v == prev) {
            combine_into(&pg->prog, o + (n - 1) * rsz + 8, r + 8);
        } else {
            memcpy(o + n * rsz, r, rsz);
            prev = v;
            n++;
        }
        pos[m] += rsz;
        if (pos[m] >= len[m]) heap[0] = heap[--hn];
        loom_heap_down(heap, hn, 0, relay_less, &rm);
    }
    out->len += n * rsz;
    return LOOM_OK;
}

/* Gather the thread buffers per destination, combine, and exchange over the
 * workers on the data plane; `merge` keeps what a dense pull delivered. */
static loom_status_t sparse_exchange(loom_pregel_t *pg, int merge)
{
    loom_ctx_t *ctx = pg->ctx;
    int nw = pg->nworkers;
    loom_status_t st = LOOM_OK;
    size_t total = 0;
    sparse_t sp = {.pg = pg};
    sp.start = calloc((size_t)nw * 3, sizeof *sp.start);
    if (!sp.start) st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory for exchange counts");
    if (sp.start) {
        sp.len = sp.start + nw;
        sp.sent = sp.start + 2 * nw;
    }
    for (size_t i = 0; st == LOOM_OK && i < (size_t)pg->nthreads * nw; i++) {
        if (pg->tbuf[i].failed)
            st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory buffering messages");
        total += pg->tbuf[i].len;
    }
    if (st == LOOM_OK && !(sp.sbuf = malloc(total ? total : 1)))
        st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory for %zu bytes of messages", total);
    size_t pos = 0;
    for (int w = 0; st == LOOM_OK && w < nw; w++) {
        size_t start = pos;
        for (int t = 0; t < pg->nthreads; t++) {
            loom_msgbuf_t *b = &pg->tbuf[(size_t)t * nw + w];
            if (b->len) memcpy(sp.sbuf + pos, b->data, b->len);
            pos += b->len;
        }
        size_t n = (pos - start) / pg->rsz;
        if (pg->prog.combiner != LOOM_COMBINE_NONE) n = combine_records(pg, sp.sbuf + start, n);
        sp.start[w] = start;
        sp.len[w] = n * pg->rsz;
        pos = start + n * pg->rsz;
    }
    if (st == LOOM_OK && pg->prog.combiner != LOOM_COMBINE_NONE && !merge)
        memset(pg->has, 0, pg->nloc);
    /* a failure so far travels in the exchange's own vote */
    sp.failed = st;
    st = loom_exchange_run(pg->xchg, sparse_pack, sparse_unpack, &sp);
    if (st == LOOM_OK && pg->prog.combiner == LOOM_COMBINE_NONE)
        st = loom_pregel_deliver(pg, sp.all.data, sp.all.len / pg->rsz, 0);
    loom_buf_free(&sp.all);
    loom_buf_free(&sp.merge);
    free(sp.start);
    free(sp.sbuf);
    return st;
}

static loom_pull_op_t pull_op(loom_pregel_combiner_t c)
{
    switch (c) {
    case LOOM_COMBINE_MIN_F64:
    case LOOM_COMBINE_MIN_U64:
        return LOOM_PULL_MIN;
    case LOOM_COMBINE_MAX_F64:
    case LOOM_COMBINE_MAX_U64:
        return LOOM_PULL_MAX;
    default:
        return LOOM_PULL_SUM;
    }
}

/* The blocked kernel over shared bins: once every worker of the node is done
 * reading its bins (the last superstep's gather), each writes its own values
 * into every bin of the node and the mirrors from other nodes into its own;
 * once all are written, each gathers its own. */
static loom_status_t shared_bins_sum(loom_pregel_t *pg, const double *mine)
{
    LOOM_TRY(loom_nodemem_barrier(pg->bins));
    loom_status_t st = pg->pull_single ? loom_halo_exchange_f32(pg->halo, mine, pg->mirror)
                                       : loom_halo_exchange(pg->halo, mine, pg->mirror);
    if (st != LOOM_OK) {
        loom_nodemem_revoke(pg->bins); /* the node's ranks must not wait for this one */
        return st;
    }
    loom_bpush_run(pg->push, mine, loom_nodemem_base(pg->bins));
    if (pg->pull_single)
        loom_bpull_scatter_f32(pg->bpull, pg->mirror);
    else
        loom_bpull_scatter(pg->bpull, pg->mirror);
    LOOM_TRY(loom_nodemem_barrier(pg->bins));
    loom_bpull_gather(pg->bpull, (double *)(void *)pg->inbox);
    memcpy(pg->has, pg->has_in, pg->nloc); /* every arc carried a value */
    return LOOM_OK;
}

/* Every worker publishes its slice of gpub (and of pubflag unless every
 * vertex published); owners then pull over their in-edges. */
static loom_status_t dense_exchange(loom_pregel_t *pg, int all_published)
{
    loom_ctx_t *ctx = pg->ctx;
    const loom_graph_t *g = pg->g;
    const loom_pregel_program_t *p = &pg->prog;
    if (pg->halo && all_published) {
        /* mirrors: only the values this rank's in-arcs read */
        const double *mine = (const double *)(void *)pg->gpub + pg->lo;
        if (pg->push) return shared_bins_sum(pg, mine);
        if (pg->pull_single) {
            LOOM_TRY(loom_halo_exchange_f32(pg->halo, mine, pg->mirror));
            loom_bpull_sum_f32(pg->bpull, pg->mirror, (double *)(void *)pg->inbox);
        } else {
            LOOM_TRY(loom_halo_exchange(pg->halo, mine, pg->mirror));
            loom_bpull_sum(pg->bpull, pg->mirror, (double *)(void *)pg->inbox);
        }
        memcpy(pg->has, pg->has_in, pg->nloc); /* every arc carried a value */
        return LOOM_OK;
    }
    /* Flags in slot order are only needed when some vertex stayed silent
     * (or a user combiner must know who spoke). */
    int flags = !all_published || !builtin(p->combiner);
    if (flags) {
#pragma omp parallel for schedule(static) num_threads(pg->nthreads)
        for (uint64_t i = 0; i < pg->nloc; i++)
            pg->pubflag[pub_slot(pg, i)] = pg->sent[i];
    }
    if (pg->nworkers > 1) {
        int nw = pg->nworkers;
        int *cnt = malloc((size_t)nw * 2 * sizeof *cnt);
        if (!cnt) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory for exchange counts");
        int *dis = cnt + nw;
        MPI_Datatype mt = MPI_DATATYPE_NULL;
        int e = MPI_Type_contiguous((int)pg->msz, MPI_BYTE, &mt);
        if (e == MPI_SUCCESS) e = MPI_Type_commit(&mt);
        if (e != MPI_SUCCESS) {
            free(cnt);
            return loom_error_mpi(ctx, e, "MPI_Type_commit", __FILE__, __LINE__);
        }
        for (int w = 0; w < nw; w++) {
            uint64_t a = g->part[w + pg->wbase], b = g->part[w + pg->wbase + 1];
            cnt[w] = (int)(b - a);
            dis[w] = (int)a; /* dense_ok holds n below 2^31 */
        }
        e = MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, pg->gpub, cnt, dis, mt, pg->wcomm);
        if (e == MPI_SUCCESS && flags)
            e = MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, pg->pubflag, cnt, dis, MPI_BYTE,
                               pg->wcomm);
        MPI_Type_free(&mt);
        free(cnt);
        if (e != MPI_SUCCESS) return loom_error_mpi(ctx, e, "MPI_Allgatherv", __FILE__, __LINE__);
    }
    if (pg->bpull && !pg->halo && all_published) {
        loom_bpull_sum(pg->bpull, (const double *)(void *)pg->gpub, (double *)(void *)pg->inbox);
        memcpy(pg->has, pg->has_in, pg->nloc); /* every arc carried a value */
        return LOOM_OK;
    }
    if (builtin(p->combiner)) {
        loom_pull_type_t t = p->combiner <= LOOM_COMBINE_MAX_F64 ? LOOM_PULL_F64 : LOOM_PULL_U64;
        loom_pull_combine(pull_op(p->combiner), t, pg->nloc, pg->in_off, pg->in_idx, pg->in_idx32,
                          pg->gpub, pg->inbox);
        if (all_published) {
            memcpy(pg->has, pg->has_in, pg->nloc); /* every arc carried a value */
        } else {
            loom_pull_any(pg->nloc, pg->in_off, pg->in_idx, pg->in_idx32, pg->pubflag, pg->has);
        }
        return LOOM_OK;
    }
    /* A user combiner: the same pull, one call per arc. */
#pragma omp parallel for schedule(dynamic, LOOM_PREGEL_CHUNK) num_threads(pg->nthreads)
    for (uint64_t i = 0; i < pg->nloc; i++) {
        uint8_t *acc = pg->inbox + i * pg->msz;
        int any = 0;
        for (uint64_t e = pg->in_off[i]; e < pg->in_off[i + 1]; e++) {
            uint64_t u = pg->in_idx32 ? ((const uint32_t *)pg->in_idx)[e]
                                      : ((const uint64_t *)pg->in_idx)[e];
            if (!pg->pubflag[u]) continue;
            if (any)
                p->combine(acc, pg->gpub + u * pg->msz, p->user);
            else
                memcpy(acc, pg->gpub + u * pg->msz, pg->msz);
            any = 1;
        }
        pg->has[i] = (uint8_t)any;
    }
    return LOOM_OK;
}

/* Give every rank's vertices publish slots with the high out-degree ones
 * first within the rank's range, and rewrite the 32-bit in-edge index to
 * slots. Power-law graphs then gather mostly from the first cache-sized
 * stretches of gpub instead of from all of it. Collective over the workers. */
static loom_status_t order_slots(loom_pregel_t *pg)
{
    loom_ctx_t *ctx = pg->ctx;
    const loom_graph_t *g = pg->g;
    enum { KEYS = 1 << 16 };
    uint64_t *cnt = calloc(KEYS + 1, sizeof *cnt);
    uint32_t *gmap = malloc(pg->n ? pg->n * sizeof *gmap : 1);
    int *rc = malloc((size_t)pg->nworkers * 2 * sizeof *rc);
    pg->slot = malloc(pg->nloc ? pg->nloc * sizeof *pg->slot : 1);
    loom_status_t st = LOOM_OK;
    if (!cnt || !gmap || !rc || !pg->slot)
        st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory ordering publish slots");
    st = loom_agree(ctx, pg->wcomm, st);
    if (st == LOOM_OK) {
        /* Three classes by out-degree, each kept in vertex order: the top
         * 1/64 of vertices, the next up to 1/8, the rest. Gathers then hit
         * an L2-sized and an L3-sized prefix of gpub, while the publish
         * writes stay three sequential streams rather than a scatter. */
        for (uint64_t i = 0; i < pg->nloc; i++) {
            uint64_t d = g->out_off[i + 1] - g->out_off[i];
            cnt[d < KEYS - 1 ? d : KEYS - 1]++;
        }
        uint64_t t0 = KEYS, t1 = KEYS, above = 0;
        for (int k = KEYS - 1; k >= 1; k--) {
            above += cnt[k];
            if (above <= pg->nloc / 64) t0 = (uint64_t)k;
            if (above <= pg->nloc / 8) t1 = (uint64_t)k;
        }
        uint64_t start[3] = {0, 0, 0};
        for (uint64_t i = 0; i < pg->nloc; i++) {
            uint64_t d = g->out_off[i + 1] - g->out_off[i];
            if (d >= t0)
                start[1]++;
            else if (d >= t1)
                start[2]++;
        }
        start[2] += start[1];
        for (uint64_t i = 0; i < pg->nloc; i++) {
            uint64_t d = g->out_off[i + 1] - g->out_off[i];
            int c = d >= t0 ? 0 : d >= t1 ? 1 : 2;
            pg->slot[i] = (uint32_t)start[c]++;
        }
        int *dis = rc + pg->nworkers;
        for (int w = 0; w < pg->nworkers; w++) {
            rc[w] = (int)(g->part[w + pg->wbase + 1] - g->part[w + pg->wbase]);
            dis[w] = (int)g->part[w + pg->wbase];
        }
        int e = MPI_Allgatherv(pg->slot, (int)pg->nloc, MPI_UINT32_T, gmap, rc, dis, MPI_UINT32_T,
                               pg->wcomm);
        if (e != MPI_SUCCESS) st = loom_error_mpi(ctx, e, "MPI_Allgatherv", __FILE__, __LINE__);
        for (int w = 0; st == LOOM_OK && w < pg->nworkers; w++) {
            uint64_t a = g->part[w + pg->wbase], b = g->part[w + pg->wbase + 1];
#pragma omp parallel for schedule(static) num_threads(pg->nthreads)
            for (uint64_t u = a; u < b; u++)
                gmap[u] += (uint32_t)a;
        }
        size_t m = (size_t)g->in_off[pg->nloc];
        const uint64_t *src = g->in_src;
        uint32_t *dst = pg->in_idx_own;
#pragma omp parallel for schedule(static) num_threads(pg->nthreads)
        for (size_t k = 0; k < m; k++)
            dst[k] = gmap[src[k]];
    }
    free(cnt);
    free(gmap);
    free(rc);
    if (st != LOOM_OK) {
        free(pg->slot);
        pg->slot = NULL;
    }
    return st;
}

/* The in-edges of this rank's vertices turned source-major over all n
 * sources (offsets n + 1, destinations local and ascending per source): what
 * the blocked kernel is built from when other workers own sources. */
static loom_status_t transpose_in(loom_pregel_t *pg, uint64_t **offp, uint32_t **dstp)
{
    const uint64_t *in_off = pg->in_off, *in_src = pg->g->in_src;
    const size_t m = (size_t)in_off[pg->nloc];
    uint64_t *off = calloc(pg->n + 1, sizeof *off);
    uint32_t *dst = malloc(m ? m * sizeof *dst : 1);
    if (!off || !dst) {
        free(off);
        free(dst);
        return LOOM_ERROR(pg->ctx, LOOM_ERR_NOMEM, "out of memory transposing the in-edges");
    }
    for (size_t e = 0; e < m; e++)
        off[in_src[e] + 1]++;
    for (uint64_t u = 0; u < pg->n; u++)
        off[u + 1] += off[u];
    /* rows taken in order, so every source's destinations come out ascending */
    for (uint64_t v = 0; v < pg->nloc; v++)
        for (uint64_t e = in_off[v]; e < in_off[v + 1]; e++)
            dst[off[in_src[e]]++] = (uint32_t)v;
    for (uint64_t u = pg->n; u > 0; u--)
        off[u] = off[u - 1];
    off[0] = 0;
    *offp = off;
    *dstp = dst;
    return LOOM_OK;
}

/* Shared bins (see pregel_internal.h): for each of the needed sources
 * (ascending ids, indexed as the bins' sources) owned by a worker of this
 * node, send its owner where its values go in this worker's bins; build this
 * worker's push from what the others send; keep in the bins' own scatter, and
 * in `need`, only the sources from other nodes. Where the node's workers share
 * no memory, or their bins are too large for 32-bit positions, nothing
 * changes there. *anyp: some node shares bins. Collective over the workers;
 * agreed. */
static loom_status_t share_bins(loom_pregel_t *pg, uint64_t *need, size_t *nneed, int *anyp)
{
    loom_ctx_t *ctx = pg->ctx;
    const int W = pg->nworkers;
    const size_t vb = pg->pull_single ? sizeof(float) : sizeof(double);
    const uint64_t *bounds = pg->g->part + pg->wbase;
    const size_t n = *nneed;
    /* per worker: items (pairs of uint32: local source, count) and positions,
     * sent and received, and their displacements */
    int *cnt = calloc((size_t)W * 8, sizeof *cnt);
    uint8_t *keep = malloc(n ? n : 1);
    uint32_t *items = NULL, *pos = NULL, *ritems = NULL, *rpos = NULL, *ppos = NULL;
    uint64_t *poff = NULL, *at = NULL;
    loom_status_t st =
        cnt && keep ? LOOM_OK : LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory sharing bins");
    st = loom_agree(ctx, pg->wcomm, st);
    if (st == LOOM_OK)
        st = loom_nodemem_create(ctx, pg->wcomm, loom_bpull_vals_bytes(pg->bpull), &pg->bins);
    st = loom_agree(ctx, pg->wcomm, st);
    if (st != LOOM_OK) goto out;
    int *icnt = cnt, *pcnt = cnt + W, *ircnt = cnt + 2 * W, *prcnt = cnt + 3 * W;
    int *idis = cnt + 4 * W, *pdis = cnt + 5 * W, *iris = cnt + 6 * W, *pris = cnt + 7 * W;
    uint64_t ni = 0, np = 0, nri = 0, nrp = 0;
    /* Which sources the node's owners write, and how much goes to and comes
     * from each. A node whose segment or lists outgrow 32-bit positions or
     * MPI's int counts counts again without bins; when some node does, every
     * worker takes the second pass (the counts' MPI_Alltoall is over all). */
    for (int pass = 0; pass < 2; pass++) {
        ni = np = nri = nrp = 0;
        memset(cnt, 0, (size_t)W * 2 * sizeof *cnt);
        for (size_t k = 0, o = 0; k < n; k++) {
            while (need[k] >= bounds[o + 1])
                o++;
            keep[k] = !pg->bins || !loom_nodemem_of(pg->bins, (int)o);
            if (keep[k]) continue;
            const uint32_t *p;
            uint64_t c = loom_bpull_pairs(pg->bpull, k, &p);
            ni += 2, np += c;
            icnt[o] = (int)(icnt[o] + 2ull < INT_MAX ? icnt[o] + 2ull : INT_MAX);
            pcnt[o] = (int)(pcnt[o] + c < INT_MAX ? pcnt[o] + c : INT_MAX);
        }
        LOOM_MPI_GOTO(ctx, st, MPI_Alltoall(icnt, 1, MPI_INT, ircnt, 1, MPI_INT, pg->wcomm), out);
        LOOM_MPI_GOTO(ctx, st, MPI_Alltoall(pcnt, 1, MPI_INT, prcnt, 1, MPI_INT, pg->wcomm), out);
        for (int r = 0; r < W; r++) {
            nri += (uint64_t)ircnt[r];
            nrp += (uint64_t)prcnt[r];
        }
        if (pass == 1) break;
        int ok = !pg->bins || (loom_nodemem_bytes(pg->bins) / vb <= UINT32_MAX && ni < INT_MAX &&
                               np < INT_MAX && nri < INT_MAX && nrp < INT_MAX);
        if (pg->bins)
            LOOM_MPI_GOTO(
                ctx, st,
                MPI_Allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_MIN, loom_nodemem_comm(pg->bins)),
                out);
        if (!ok) loom_nodemem_destroy(&pg->bins); /* on the whole node alike */
        int again = !ok;
        LOOM_MPI_GOTO(ctx, st, MPI_Allreduce(MPI_IN_PLACE, &again, 1, MPI_INT, MPI_MAX, pg->wcomm),
                      out);
        if (!again) break;
    }
    int any = pg->bins != NULL;
    LOOM_MPI_GOTO(ctx, st, MPI_Allreduce(MPI_IN_PLACE, &any, 1, MPI_INT, MPI_MAX, pg->wcomm), out);
    *anyp = any;
    if (!any) goto out;
    for (int r = 0; r < W; r++) {
        idis[r] = r ? idis[r - 1] + icnt[r - 1] : 0;
        pdis[r] = r ? pdis[r - 1] + pcnt[r - 1] : 0;
        iris[r] = r ? iris[r - 1] + ircnt[r - 1] : 0;
        pris[r] = r ? pris[r - 1] + prcnt[r - 1] : 0;
    }
    items = malloc((ni ? ni : 1) * sizeof *items);
    pos = malloc((np ? np : 1) * sizeof *pos);
    ritems = malloc((nri ? nri : 1) * sizeof *ritems);
    rpos = malloc((nrp ? nrp : 1) * sizeof *rpos);
    poff = calloc(pg->nloc + 1, sizeof *poff);
    at = malloc((pg->nloc ? pg->nloc : 1) * sizeof *at);
    ppos = malloc((nrp ? nrp : 1) * sizeof *ppos);
    if (!items || !pos || !ritems || !rpos || !poff || !at || !ppos)
        st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory sharing bins");
    st = loom_agree(ctx, pg->wcomm, st);
    if (st != LOOM_OK) goto out;
    /* this worker's bins begin at element `mine` of the node's segment */
    const uint64_t mine = pg->bins ? (uint64_t)((unsigned char *)loom_nodemem_mine(pg->bins) -
                                                (unsigned char *)loom_nodemem_base(pg->bins)) /
                                         vb
                                   : 0;
    for (size_t k = 0, o = 0; k < n; k++) {
        while (need[k] >= bounds[o + 1])
            o++;
        if (keep[k]) continue;
        const uint32_t *p;
        uint64_t c = loom_bpull_pairs(pg->bpull, k, &p);
        items[idis[o]++] = (uint32_t)(need[k] - bounds[o]);
        items[idis[o]++] = (uint32_t)c;
        for (uint64_t i = 0; i < c; i++)
            pos[pdis[o]++] = (uint32_t)(mine + p[i]);
    }
    for (int r = 0; r < W; r++) { /* the cursors ran to the next one's start */
        idis[r] -= icnt[r];
        pdis[r] -= pcnt[r];
    }
    LOOM_MPI_GOTO(ctx, st,
                  MPI_Alltoallv(items, icnt, idis, MPI_UINT32_T, ritems, ircnt, iris, MPI_UINT32_T,
                                pg->wcomm),
                  out);
    LOOM_MPI_GOTO(
        ctx, st,
        MPI_Alltoallv(pos, pcnt, pdis, MPI_UINT32_T, rpos, prcnt, pris, MPI_UINT32_T, pg->wcomm),
        out);
    /* this worker's push: its sources' positions in every bin of the node */
    for (uint64_t i = 0; i < nri && st == LOOM_OK; i += 2) {
        if (ritems[i] >= pg->nloc)
            st = LOOM_ERROR(ctx, LOOM_ERR_INTERNAL, "shared bins: source %u not owned here",
                            ritems[i]);
        else
            poff[ritems[i] + 1] += ritems[i + 1];
    }
    for (uint64_t u = 0; u < pg->nloc; u++) {
        poff[u + 1] += poff[u];
        at[u] = poff[u];
    }
    if (st == LOOM_OK && poff[pg->nloc] != nrp)
        st = LOOM_ERROR(ctx, LOOM_ERR_INTERNAL, "shared bins: positions do not add up");
    /* the positions arrive in the order of the items, sender by sender */
    for (uint64_t i = 0, r = 0; i < nri && st == LOOM_OK; i += 2) {
        memcpy(ppos + at[ritems[i]], rpos + r, (size_t)ritems[i + 1] * sizeof *ppos);
        at[ritems[i]] += ritems[i + 1];
        r += ritems[i + 1];
    }
    if (st == LOOM_OK && pg->bins) {
        pg->push = loom_bpush_new(pg->nloc, poff, ppos, pg->pull_single, pg->nthreads);
        poff = NULL, ppos = NULL; /* taken */
        if (!pg->push || loom_bpull_keep(pg->bpull, keep) != 0)
            st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory sharing bins");
        else
            loom_bpull_use_vals(pg->bpull, loom_nodemem_mine(pg->bins));
    }
    if (st == LOOM_OK) {
        size_t j = 0;
        for (size_t k = 0; k < n; k++)
            if (keep[k]) need[j++] = need[k];
        *nneed = j;
    }
out:
    free(cnt);
    free(keep);
    free(items);
    free(pos);
    free(ritems);
    free(rpos);
    free(poff);
    free(ppos);
    free(at);
    return loom_agree(ctx, pg->wcomm, st);
}

/* The blocked kernel's bins over all n sources (gpub in vertex order). */
static loom_status_t build_blocked(loom_pregel_t *pg)
{
    const loom_graph_t *g = pg->g;
    size_t bytes = 0;
    if (pg->nworkers == 1) {
        /* this worker holds every source: its out-arcs are the source-major form */
        pg->bpull = loom_bpull_build(pg->nloc, pg->nloc, g->out_off, g->out_dst, 0, pg->lo,
                                     LOOM_BPULL_SHIFT, pg->pull_single, pg->nthreads, &bytes);
    } else {
        /* Mirrors: the sources with arcs into this rank, renumbered densely in
         * ascending order, are what the halo brings and the bins read. */
        uint64_t *off = NULL, *need = NULL;
        uint32_t *dst = NULL;
        /* with float bins the mirrors travel as floats too: half the bytes */
        const size_t vbytes = pg->pull_single ? sizeof(float) : sizeof(double);
        loom_status_t st = transpose_in(pg, &off, &dst);
        size_t nneed = 0;
        for (uint64_t u = 0; st == LOOM_OK && u < pg->n; u++)
            nneed += off[u + 1] > off[u];
        if (st == LOOM_OK) need = malloc((nneed ? nneed : 1) * sizeof *need);
        if (st == LOOM_OK && !need) {
            st = LOOM_ERROR(pg->ctx, LOOM_ERR_NOMEM, "out of memory listing mirrors");
        } else if (st == LOOM_OK) {
            size_t k = 0;
            for (uint64_t u = 0; u < pg->n; u++)
                if (off[u + 1] > off[u]) {
                    need[k] = u;
                    off[++k] = off[u + 1]; /* compact in place: k <= u */
                }
        }
        if (st == LOOM_OK) {
            pg->bpull = loom_bpull_build(nneed, pg->nloc, off, dst, 1, 0, LOOM_BPULL_SHIFT,
                                         pg->pull_single, pg->nthreads, &bytes);
            if (!pg->bpull)
                st = LOOM_ERROR(pg->ctx, LOOM_ERR_NOMEM, "out of memory building the blocked pull");
        }
        free(off);
        free(dst);
        int any = 0;
        st = loom_agree(pg->ctx, pg->wcomm, st);
        if (st == LOOM_OK) st = share_bins(pg, need, &nneed, &any);
        /* with shared bins on some node the mirrors are private everywhere: the
         * node's values no longer travel as mirrors, and every rank of a round
         * must pass the same kind of buffer */
        if (st == LOOM_OK)
            st = loom_halo_create(pg->ctx, pg->wcomm, pg->g->part + pg->wbase, need, nneed, vbytes,
                                  any ? LOOM_HALO_PRIVATE : 0, &pg->halo);
        free(need);
        if (st != LOOM_OK) return st;
        pg->mirror = loom_halo_buffer(pg->halo);
    }
    if (!pg->bpull)
        return LOOM_ERROR(pg->ctx, LOOM_ERR_NOMEM, "out of memory building the blocked pull");
    uint64_t arcs = 0, pairs = 0;
    double moved = 0;
    loom_bpull_stats(pg->bpull, &arcs, &pairs, &moved);
    char mirrors[256] = "";
    int len = 0;
    if (pg->push) {
        uint64_t pushed = 0;
        double pmoved = 0;
        loom_bpush_stats(pg->push, &pushed, &pmoved);
        moved += pmoved;
        len = snprintf(mirrors, sizeof mirrors,
                       "; shared bins: this worker's values into %llu pairs of its node's bins",
                       (unsigned long long)pushed);
    }
    if (pg->halo)
        snprintf(mirrors + len, sizeof mirrors - (size_t)len,
                 "; mirrors: %zu values in (%zu through shared memory), %zu out per superstep",
                 loom_halo_received(pg->halo), loom_halo_received_shared(pg->halo),
                 loom_halo_sent(pg->halo));
    loom_log(pg->ctx, LOOM_LOG_VERBOSE,
             "pregel: blocked pull: %llu arcs in %llu pairs (%.2f arcs/pair), %.0f MiB, "
             "%.1f MB streamed per superstep%s",
             (unsigned long long)arcs, (unsigned long long)pairs,
             pairs ? (double)arcs / (double)pairs : 0.0, (double)bytes / 1048576.0, moved / 1e6,
             mirrors);
    return LOOM_OK;
}

static loom_status_t prepare_pull(loom_pregel_t *pg)
{
    pg->pull_ready = 1;
    if (!pg->is_worker || !pg->dense_ok) return LOOM_OK;
    /* what a dense pull delivers when every vertex published: a message to
     * each vertex with in-arcs */
    LOOM_TRY(alloc_zero(pg->ctx, (void **)&pg->has_in, pg->nloc, "in-arc flags"));
    for (uint64_t i = 0; i < pg->nloc; i++)
        pg->has_in[i] = pg->in_off[i + 1] > pg->in_off[i];
    if (pg->use_blocked) return build_blocked(pg);
    if (pg->n > UINT32_MAX) return LOOM_OK; /* the pull reads g->in_src */
    /* Half the index bytes per arc: the sweep streams the index once per
     * superstep, so this is a direct saving in memory traffic. */
    size_t m = (size_t)pg->g->in_off[pg->nloc];
    LOOM_TRY(alloc_huge(pg->ctx, (void **)&pg->in_idx_own, m * sizeof(uint32_t),
                        "32-bit in-edge index"));
    pg->in_idx = pg->in_idx_own;
    pg->in_idx32 = 1;
    if (pg->reorder) return order_slots(pg);
    loom_pull_narrow(m, pg->g->in_src, pg->in_idx_own);
    return LOOM_OK;
}

/* The blocked kernel where it applies (sums) and pays: with --pull auto,
 * once the values the gather kernel would read at random (8 bytes for each
 * of n vertices) outgrow a quarter of the last-level cache. Below that the
 * gathers hit the cache and the bins' extra streams cost more than they save
 * (measured: urand:16 to urand:20); --pull-values float asks for it. The
 * bins address values with 32 bits: at most 2^32 arcs per worker. Every rank
 * must choose the same: a MIN over all. */
static loom_status_t choose_kernel(loom_pregel_t *pg)
{
    double llc = (double)loom_llc_bytes(pg->ctx);
    if (llc <= 0) llc = 32.0 * 1048576.0;
    int blocked = pg->dense_ok && pg->prog.combiner == LOOM_COMBINE_SUM_F64 &&
                  (pg->pull_kind == LOOM_PULL_KIND_BLOCKED || pg->pull_single ||
                   (pg->pull_kind == LOOM_PULL_KIND_AUTO && (double)pg->n * 8.0 > llc / 4.0)) &&
                  (!pg->is_worker || pg->g->in_off[pg->nloc] <= UINT32_MAX);
    LOOM_MPI(pg->ctx, MPI_Allreduce(MPI_IN_PLACE, &blocked, 1, MPI_INT, MPI_MIN, pg->comm));
    pg->use_blocked = blocked;
    return LOOM_OK;
}

loom_status_t loom_pregel_prepare(loom_pregel_t *pg)
{
    if (pg->pull_ready) return LOOM_OK;
    loom_timer_start(pg->ctx, "pregel-setup");
    loom_status_t st = choose_kernel(pg);
    if (st == LOOM_OK) st = loom_agree(pg->ctx, pg->comm, prepare_pull(pg));
    loom_timer_stop(pg->ctx, "pregel-setup");
    return st;
}

/* ---------------------------------------------------------------- the superstep loop */

enum {
    ST_ACTIVE = 0,
    ST_NPUB,
    ST_PUBARCS,
    ST_SPARSE,
    ST_FAILED,
    ST_SIGUSR1,
    ST_SIGTERM,
    ST_SIGINT,
    ST_FIXED
};

/* ---------------------------------------------------------------- stop on a signal */

/* With a checkpoint directory, SIGUSR1, SIGTERM and SIGINT only note a stop
 * request (the runtime's handlers), so that a preempted job saves its state
 * instead of dying; the `loom` command arms this from the start. Without
 * one there is nothing to save, and the signals keep their usual meaning. */
static void arm_signals(loom_pregel_t *pg)
{
    if (!pg->ckpt_dir || loom_stop_armed(pg->ctx)) return;
    loom_stop_arm(pg->ctx, 1);
    pg->sig_armed = 1;
}

static void disarm_signals(loom_pregel_t *pg)
{
    if (!pg->sig_armed) return;
    loom_stop_arm(pg->ctx, 0);
    pg->sig_armed = 0;
}

/* Reduce the superstep's counters and aggregators over all ranks. The master
 * has nothing to add and waits without spinning. */
static loom_status_t reduce_step(loom_pregel_t *pg, int failed, double *sums)
{
    loom_ctx_t *ctx = pg->ctx;
    const loom_pregel_program_t *p = &pg->prog;
    double loc[ST_FIXED + LOOM_PREGEL_MAX_AGGS] = {0};
    double mins[2 * LOOM_PREGEL_MAX_AGGS], gmins[2 * LOOM_PREGEL_MAX_AGGS];
    int nmin = 0;
    for (int i = 0; i < p->naggs; i++) {
        double a = agg_identity(p->aggs[i]);
        for (int t = 0; t < pg->nthreads && pg->is_worker; t++)
            a = agg_fold(p->aggs[i], a, pg->tstat[t].aggs[i]);
        if (p->aggs[i] == LOOM_AGG_SUM)
            loc[ST_FIXED + i] = a;
        else
            mins[nmin++] = p->aggs[i] == LOOM_AGG_MIN ? a : -a;
    }
    for (int t = 0; t < pg->nthreads && pg->is_worker; t++) {
        loc[ST_ACTIVE] += (double)pg->tstat[t].active;
        loc[ST_NPUB] += (double)pg->tstat[t].npub;
        loc[ST_PUBARCS] += (double)pg->tstat[t].pub_arcs;
        loc[ST_SPARSE] += (double)pg->tstat[t].sparse;
    }
    loc[ST_FAILED] = failed;
    /* Read once: the same value goes to every rank through the reduction, so
     * all of them stop at this superstep even if only one was signalled. */
    int sig = pg->ckpt_dir ? loom_stop_signal(pg->ctx) : 0;
    loc[ST_SIGUSR1] = sig == SIGUSR1;
    loc[ST_SIGTERM] = sig == SIGTERM;
    loc[ST_SIGINT] = sig == SIGINT;
    int nsum = ST_FIXED + p->naggs;
    MPI_Request req[2];
    int nreq = 0;
    int e = MPI_Iallreduce(loc, sums, nsum, MPI_DOUBLE, MPI_SUM, pg->comm, &req[nreq++]);
    if (e == MPI_SUCCESS && nmin)
        e = MPI_Iallreduce(mins, gmins, nmin, MPI_DOUBLE, MPI_MIN, pg->comm, &req[nreq++]);
    if (e != MPI_SUCCESS) return loom_error_mpi(ctx, e, "MPI_Iallreduce", __FILE__, __LINE__);
    for (int r = 0; r < nreq; r++) {
        if (pg->is_worker)
            LOOM_TRY(loom_wait_hot(ctx, &req[r], NULL));
        else
            LOOM_TRY(loom_wait(ctx, &req[r], NULL));
    }
    nmin = 0;
    for (int i = 0; i < p->naggs; i++) {
        if (p->aggs[i] == LOOM_AGG_SUM) continue;
        double m = gmins[nmin++];
        sums[ST_FIXED + i] = p->aggs[i] == LOOM_AGG_MIN ? m : -m;
    }
    return LOOM_OK;
}

/* Rank 0 runs the master compute; everyone learns its decision and the
 * aggregators it may have changed. */
static loom_status_t master_step(loom_pregel_t *pg, const loom_pregel_step_t *step, int *stop)
{
    double ctl[1 + LOOM_PREGEL_MAX_AGGS];
    int n = 1 + pg->prog.naggs;
    if (pg->rank == 0) {
        ctl[0] = pg->prog.master(step, pg->aggs, pg->prog.user) ? 1.0 : 0.0;
        memcpy(ctl + 1, pg->aggs, (size_t)pg->prog.naggs * sizeof(double));
    }
    if (pg->size > 1) {
        MPI_Request req;
        int e = MPI_Ibcast(ctl, n, MPI_DOUBLE, 0, pg->comm, &req);
        if (e != MPI_SUCCESS) return loom_error_mpi(pg->ctx, e, "MPI_Ibcast", __FILE__, __LINE__);
        if (pg->rank == 0)
            LOOM_TRY(loom_wait(pg->ctx, &req, NULL));
        else
            LOOM_TRY(loom_wait_hot(pg->ctx, &req, NULL));
    }
    *stop = ctl[0] != 0.0;
    memcpy(pg->aggs, ctl + 1, (size_t)pg->prog.naggs * sizeof(double));
    return LOOM_OK;
}

static void progress(loom_pregel_t *pg, const loom_pregel_step_t *step, const char *mode)
{
    if (!loom_log_enabled(pg->ctx, LOOM_LOG_INFO)) return;
    char extra[256] = "";
    size_t len = 0;
    for (int i = 0; i < pg->prog.naggs && len < sizeof extra - 40; i++) {
        if (!pg->prog.agg_names[i]) continue;
        len += (size_t)snprintf(extra + len, sizeof extra - len, ", %s %.6g", pg->prog.agg_names[i],
                                pg->aggs[i]);
    }
    loom_log(pg->ctx, LOOM_LOG_INFO, "superstep %lld: active %llu, messages %llu (%s)%s, %.3f s",
             (long long)step->superstep, (unsigned long long)step->active,
             (unsigned long long)step->messages, mode, extra, step->seconds);
}

static void maybe_fault(loom_pregel_t *pg)
{
    loom_fault_point(pg->ctx, &pg->fault, LOOM_PHASE_SUPERSTEP, pg->superstep);
}

/* What the sparse exchange sent between nodes, when it knew the nodes (a
 * combiner). Collective. */
static loom_status_t report_offnode(loom_pregel_t *pg)
{
    loom_ctx_t *ctx = pg->ctx;
    int64_t sum[2] = {0, 0}, max[2] = {0, 0};
    if (pg->xchg) {
        uint64_t b, m;
        loom_exchange_offnode(pg->xchg, &b, &m);
        sum[0] = (int64_t)b;
        sum[1] = (int64_t)m;
        max[0] = loom_exchange_nodes(pg->xchg);
        max[1] = loom_exchange_levels(pg->xchg);
    }
    LOOM_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, sum, 2, MPI_INT64_T, MPI_SUM, pg->comm));
    LOOM_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, max, 2, MPI_INT64_T, MPI_MAX, pg->comm));
    if (max[0] == 0) return LOOM_OK;
    loom_summary_int(ctx, "exchange_nodes", max[0]);
    loom_summary_int(ctx, "exchange_levels", max[1]);
    loom_summary_int(ctx, "exchange_offnode_bytes", sum[0]);
    loom_summary_int(ctx, "exchange_offnode_messages", sum[1]);
    return LOOM_OK;
}

static loom_status_t run_supersteps(loom_pregel_t *pg)
{
    loom_ctx_t *ctx = pg->ctx;
    loom_status_t st = LOOM_OK;
    st = loom_pregel_prepare(pg);
    if (st != LOOM_OK) return st;
    if (pg->restart_dir) {
        st = loom_pregel_checkpoint_read(pg, pg->restart_dir);
        if (st != LOOM_OK) return st;
    }
    if (pg->recovering) {
        loom_members_resumed(ctx);
        pg->recovering = 0;
    }
    /* A worker whose exchange failed reports it in the next reduction rather
     * than in a blocking agreement of its own, so the master never spins. */
    loom_status_t pending = LOOM_OK;
    for (;;) {
        double t0 = loom_wtime();
        maybe_fault(pg);
        loom_timer_start(ctx, "pregel-compute");
        if (pg->is_worker && pending == LOOM_OK) compute_phase(pg);
        int failed = pending != LOOM_OK;
        for (size_t i = 0; pg->is_worker && i < (size_t)pg->nthreads * pg->nworkers; i++)
            if (pg->tbuf[i].failed && !failed) {
                failed = 1;
                pending = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory buffering messages");
            }
        double sums[ST_FIXED + LOOM_PREGEL_MAX_AGGS];
        st = reduce_step(pg, failed, sums);
        loom_timer_stop(ctx, "pregel-compute");
        if (st != LOOM_OK) return loom_agree(ctx, pg->comm, st);
        if (sums[ST_FAILED] != 0) return loom_agree(ctx, pg->comm, pending);
        for (int i = 0; i < pg->prog.naggs; i++)
            pg->aggs[i] = sums[ST_FIXED + i];

        loom_pregel_step_t step = {
            .superstep = pg->superstep,
            .active = (uint64_t)sums[ST_ACTIVE],
            .messages = (uint64_t)(sums[ST_PUBARCS] + sums[ST_SPARSE]),
        };
        pg->total_messages += step.messages;
        int stop = step.active == 0 && step.messages == 0;
        if (pg->prog.master) {
            step.seconds = loom_wtime() - t0;
            int mstop = 0;
            LOOM_TRY(master_step(pg, &step, &mstop));
            stop = stop || mstop;
        }
        if (pg->superstep + 1 >= pg->max_supersteps) stop = 1;

        /* Every rank takes the same branches: the conditions are global. */
        int dense = 0;
        if (pg->publish && sums[ST_NPUB] > 0) {
            if (pg->exchange_mode == LOOM_EXCHANGE_DENSE)
                dense = pg->dense_ok;
            else if (pg->exchange_mode == LOOM_EXCHANGE_AUTO)
                dense = pg->dense_ok && sums[ST_PUBARCS] > (double)pg->g->num_arcs / 20.0;
        }
        const char *mode = dense ? "dense" : "sparse";
        loom_timer_start(ctx, "pregel-exchange");
        if (!stop && pg->is_worker) {
            if (dense)
                /* Every arc carries a message when the publishers cover all arcs:
                 * silent vertices without out-arcs do not matter. */
                pending = dense_exchange(pg, sums[ST_PUBARCS] >= (double)pg->g->num_arcs);
            else if (pg->publish && sums[ST_NPUB] > 0)
                expand_published(pg);
            if (!dense || sums[ST_SPARSE] > 0) {
                loom_status_t s2 = sparse_exchange(pg, dense);
                if (pending == LOOM_OK) pending = s2;
            }
        }
        loom_timer_stop(ctx, "pregel-exchange");
        step.seconds = loom_wtime() - t0;
        progress(pg, &step, stop ? "final" : mode);
        pg->superstep++;
        /* A run that ends here anyway has lost nothing: finish it. */
        if (stop) break;
        const char *signame = sums[ST_SIGUSR1] > 0   ? "SIGUSR1"
                              : sums[ST_SIGTERM] > 0 ? "SIGTERM"
                              : sums[ST_SIGINT] > 0  ? "SIGINT"
                                                     : NULL;
        if (signame || (pg->ckpt_every > 0 && pg->superstep % pg->ckpt_every == 0)) {
            loom_timer_start(ctx, "pregel-checkpoint");
            st = loom_agree(ctx, pg->comm, pending);
            if (st == LOOM_OK) st = loom_pregel_checkpoint_write(pg);
            loom_timer_stop(ctx, "pregel-checkpoint");
            if (st != LOOM_OK) return st;
        }
        if (signame) {
            loom_summary_int(ctx, "supersteps", pg->superstep);
            loom_summary_int(ctx, "messages", (int64_t)pg->total_messages);
            return LOOM_ERROR(
                ctx, LOOM_ERR_INTERRUPTED,
                "checkpointed at superstep %lld on signal %s; resume with --restart %s",
                (long long)pg->superstep, signame, pg->ckpt_dir);
        }
    }
    st = loom_agree(ctx, pg->comm, pending);
    if (st != LOOM_OK) return st;
    loom_summary_int(ctx, "supersteps", pg->superstep);
    loom_summary_int(ctx, "messages", (int64_t)pg->total_messages);
    return report_offnode(pg);
}

/* After a worker died (ULFM): shrink to the survivors, build the graph again
 * over them, rebuild this engine's state, and roll back to the newest
 * checkpoint (or to the start when there is none). Collective. */
static loom_status_t recover(loom_pregel_t *pg)
{
    loom_ctx_t *ctx = pg->ctx;
    loom_recovery_t rec;
    loom_status_t st = loom_members_recover(ctx, &rec);
    loom_recovery_free(&rec);
    if (st != LOOM_OK) return st;
    loom_timer_start(ctx, "pregel-recovery");
    st = loom_graph_rebuild(ctx, (loom_graph_t *)pg->g);
    if (st == LOOM_OK) {
        free_local(pg);
        st = bind_members(pg);
        if (st == LOOM_OK) st = create_local(pg);
        st = loom_agree(ctx, loom_comm(ctx), st);
        if (st == LOOM_OK) st = loom_agree(ctx, loom_comm(ctx), create_exchange(pg));
    }
    if (st == LOOM_OK) {
        init_values(pg);
        pg->superstep = 0;
        for (int i = 0; i < pg->prog.naggs; i++)
            pg->aggs[i] = agg_identity(pg->prog.aggs[i]);
        if (pg->last_ckpt >= 0 && pg->ckpt_dir) {
            free(pg->restart_dir);
            pg->restart_dir = strdup(pg->ckpt_dir);
            if (!pg->restart_dir) st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
        }
        loom_log(ctx, LOOM_LOG_WARN, "pregel: rolling back to %s",
                 pg->restart_dir ? "the newest checkpoint" : "superstep 0 (no checkpoint)");
        pg->recovering = 1;
        pg->recoveries++;
    }
    loom_timer_stop(ctx, "pregel-recovery");
    return st;
}

loom_status_t loom_pregel_run(loom_pregel_t *pg)
{
    loom_ctx_t *ctx = pg->ctx;
    arm_signals(pg);
    loom_status_t st;
    for (;;) {
        st = run_supersteps(pg);
        if (!loom_ft_enabled(ctx)) break;
        /* all survivors decide together whether the run is over */
        int ok = !loom_members_failed(ctx);
        loom_status_t as = loom_members_agree(ctx, &ok);
        if (as != LOOM_OK) {
            st = as;
            break;
        }
        if (ok) break;
        st = recover(pg);
        if (st != LOOM_OK) break;
    }
    if (pg->recoveries) loom_summary_int(ctx, "pregel_recoveries", pg->recoveries);
    disarm_signals(pg);
    return st;
}
