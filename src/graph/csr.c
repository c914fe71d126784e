/* The distributed CSR build: degree pass, edge-balanced partition, exchange pass, sort. */
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "dataplane/dataplane.h"
#include "io/gen.h"
#include "io/io_internal.h"
#include "runtime/memory.h"
#include "loom/graph.h"

/* Edges per batch and per exchange round: large enough that the per-round
 * collectives cost nothing, small enough that batch plus send and receive
 * buffers (about 40 bytes per edge) stay far below the CSR itself. */
#define BATCH_EDGES ((size_t)1 << 19)
/* Memory for the exchange's send and receive buffers in pass 2. */
#define BUILD_BUDGET ((size_t)256 << 20)
/* Ids stay below 2^63, so the top bit of an arc's key marks an in-CSR arc. */
#define IN_FLAG (UINT64_C(1) << 63)
/* Elements per MPI call, below INT_MAX. */
#define MPI_CHUNK ((uint64_t)1 << 30)

typedef enum arc_mode {
    ARCS_DIRECTED,   /* u->v to owner(u), and v<-u to owner(v) when in-edges are wanted */
    ARCS_SYMMETRISE, /* u->v to owner(u) and v->u to owner(v) */
    ARCS_AS_GIVEN,   /* undirected input that already holds both directions */
} arc_mode_t;

typedef struct build {
    loom_ctx_t *ctx;
    MPI_Comm comm;
    int rank, size, threads;
    loom_edge_source_t *src;
    loom_build_opts_t o;
    const char *src_phase; /* "generate" or "read" */
    uint64_t n;
    arc_mode_t mode;
    int in_edges, weighted, words; /* words per exchanged arc: key, neighbour[, weight] */
    loom_graph_t *g;
    loom_edges_t batch;
} build_t;

/* ------------------------------------------------------------------ ownership */

static inline int part_owner(const uint64_t *part, int nparts, uint64_t v)
{
    /* empty ranges (the master's) are skipped: a later range starts at the same bound */
    return loom_vertex_owner(part, nparts, v);
}

int loom_graph_owner(const loom_graph_t *g, uint64_t v)
{
    if (!g || v >= g->num_vertices) return -1;
    return part_owner(g->part, g->nparts, v);
}

void loom_graph_destroy(loom_graph_t **graph)
{
    if (!graph || !*graph) return;
    loom_graph_t *g = *graph;
    if (g->in_off != g->out_off) free(g->in_off);
    if (g->in_src != g->out_dst) free(g->in_src);
    if (g->in_w != g->out_w) free(g->in_w);
    free(g->out_off);
    free(g->out_dst);
    free(g->out_w);
    free(g->part);
    loom_graph_origin_free(g->origin);
    free(g);
    *graph = NULL;
}

/* ------------------------------------------------------------------ helpers */

/* Wait for a nonblocking collective. The master (P >= 2) holds no edges and
 * spends the passes waiting for the workers, so it sleeps between polls
 * instead of spinning on a core that a worker may share. */
static loom_status_t wait_req(const build_t *b, MPI_Request *req)
{
    if (b->size > 1 && b->rank == 0) return loom_wait(b->ctx, req, MPI_STATUS_IGNORE);
    return loom_wait_hot(b->ctx, req, MPI_STATUS_IGNORE);
}

/* loom_agree for the places where the workers arrive long after the master:
 * a nonblocking vote first (waited on politely), the full agreement with its
 * message only when some rank failed. */
static loom_status_t agree_polite(build_t *b, loom_status_t st)
{
    int failed = st != LOOM_OK, any = 1;
    MPI_Request req;
    int e = MPI_Iallreduce(&failed, &any, 1, MPI_INT, MPI_MAX, b->comm, &req);
    if (e != MPI_SUCCESS) return loom_agree(b->ctx, b->comm, st);
    loom_status_t ws = wait_req(b, &req);
    if (ws != LOOM_OK) return ws;
    return any ? loom_agree(b->ctx, b->comm, st) : LOOM_OK;
}

static loom_status_t allreduce_u64(loom_ctx_t *ctx, MPI_Comm comm, uint64_t *a, uint64_t n)
{
    for (uint64_t off = 0; off < n; off += MPI_CHUNK) {
        uint64_t len = n - off < MPI_CHUNK ? n - off : MPI_CHUNK;
        LOOM_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, a + off, (int)len, MPI_UINT64_T, MPI_SUM, comm));
    }
    return LOOM_OK;
}

static loom_status_t next_batch(build_t *b)
{
    loom_timer_start(b->ctx, b->src_phase);
    loom_status_t st = loom_source_next(b->ctx, b->src, &b->batch, BATCH_EDGES);
    loom_timer_stop(b->ctx, b->src_phase);
    return st;
}

/* The arcs one edge contributes; returns how many (1 or 2). */
static inline int edge_arcs(const build_t *b, uint64_t u, uint64_t v, uint64_t key[2],
                            uint64_t nbr[2])
{
    key[0] = u;
    nbr[0] = v;
    if (b->mode == ARCS_SYMMETRISE) {
        key[1] = v;
        nbr[1] = u;
        return 2;
    }
    if (b->mode == ARCS_DIRECTED && b->in_edges) {
        key[1] = v | IN_FLAG;
        nbr[1] = u;
        return 2;
    }
    return 1;
}

/* ------------------------------------------------------------------ pass 1: degrees */

static loom_status_t check_ids(build_t *b, const loom_edges_t *e)
{
    uint64_t mx = 0;
    size_t cnt = e->count;
#pragma omp parallel for num_threads(b->threads) schedule(static) reduction(max : mx)
    for (size_t i = 0; i < cnt; i++) {
        uint64_t x = e->src[i] > e->dst[i] ? e->src[i] : e->dst[i];
        if (x > mx) mx = x;
    }
    if (mx < b->n) return LOOM_OK;
    for (size_t i = 0; i < cnt; i++) {
        uint64_t bad = e->src[i] >= b->n ? e->src[i] : e->dst[i];
        if (bad >= b->n)
            return LOOM_ERROR(b->ctx, LOOM_ERR_FORMAT,
                              "%s: vertex id %" PRIu64 " out of range (graph has %" PRIu64
                              " vertices)",
                              loom_source_name(b->src), bad, b->n);
    }
    return LOOM_OK;
}

/* Count out-degrees (arcs stored at each vertex) and, for directed graphs,
 * in-degrees into dense arrays of n on this rank. */
static loom_status_t count_degrees(build_t *b, uint64_t *outd, uint64_t *ind)
{
    LOOM_TRY(loom_source_rewind(b->ctx, b->src));
    for (;;) {
        LOOM_TRY(next_batch(b));
        const loom_edges_t *e = &b->batch;
        if (e->count == 0) break;
        loom_timer_start(b->ctx, "degrees");
        loom_status_t st = check_ids(b, e);
        if (st != LOOM_OK) {
            loom_timer_stop(b->ctx, "degrees");
            return st;
        }
        size_t cnt = e->count;
        const uint64_t *s = e->src, *d = e->dst;
        arc_mode_t mode = b->mode;
        if (b->threads > 1) {
#pragma omp parallel for num_threads(b->threads) schedule(static)
            for (size_t i = 0; i < cnt; i++) {
#pragma omp atomic
                outd[s[i]]++;
                if (mode == ARCS_SYMMETRISE) {
#pragma omp atomic
                    outd[d[i]]++;
                } else if (mode == ARCS_DIRECTED) {
#pragma omp atomic
                    ind[d[i]]++;
                }
            }
        } else {
            for (size_t i = 0; i < cnt; i++) {
                outd[s[i]]++;
                if (mode == ARCS_SYMMETRISE)
                    outd[d[i]]++;
                else if (mode == ARCS_DIRECTED)
                    ind[d[i]]++;
            }
        }
        loom_timer_stop(b->ctx, "degrees");
    }
    return LOOM_OK;
}

/* ------------------------------------------------------------------ partition */

/* Contiguous ranges over the workers balanced by cost(v) = out(v) + in(v) + vw.
 * Worker w's range starts at the first vertex whose cost prefix reaches
 * w/W of the total, so no range exceeds the mean by more than one vertex's
 * cost. The vertex term keeps ranges of many low-degree vertices from growing
 * without bound: their value arrays and per-vertex work scale with vertices. */
double loom_graph_partition_ranges(const uint64_t *outd, const uint64_t *ind, uint64_t n,
                                   int workers, double vertex_weight, uint64_t *bounds)
{
    return loom_vertex_ranges(outd, ind, n, workers, vertex_weight, bounds);
}

/* The job's part[] (size + 1 bounds): the master's range is empty when P >= 2. */
static double partition(const build_t *b, const uint64_t *outd, const uint64_t *ind, uint64_t *part)
{
    int workers = b->size == 1 ? 1 : b->size - 1;
    int first = b->size == 1 ? 0 : 1;
    part[0] = 0;
    return loom_graph_partition_ranges(outd, ind, b->n, workers, b->o.vertex_weight, part + first);
}

/* ------------------------------------------------------------------ pass 2: exchange */

/* The packer's state: the pass over this rank's share, and the counting
 * sort's per-thread counts and positions. */
typedef struct xpack {
    build_t *b;
    uint64_t *out_cur, *in_cur;
    int *tcounts; /* threads x ranks */
    size_t *tpos; /* threads x ranks, in arcs */
    size_t *bytes, *displ;
    uint64_t consumed, local;
    size_t batch; /* edges per round: a batch's arcs fit one destination's room */
} xpack_t;

/* Read the next batch and bucket its arcs by owner straight into the round's
 * send buffer (counting sort in per-thread slices, so the order within a
 * bucket is deterministic). */
static loom_status_t pack_round(loom_exchange_t *x, void *user, int *more)
{
    xpack_t *xp = user;
    build_t *b = xp->b;
    *more = 0;
    if (xp->consumed >= xp->local) return LOOM_OK;
    loom_timer_stop(b->ctx, "exchange");
    loom_timer_start(b->ctx, b->src_phase);
    loom_status_t st = loom_source_next(b->ctx, b->src, &b->batch, xp->batch);
    loom_timer_stop(b->ctx, b->src_phase);
    loom_timer_start(b->ctx, "exchange");
    LOOM_TRY(st);
    const loom_edges_t *e = &b->batch;
    size_t cnt = e->count;
    xp->consumed += cnt;
    *more = cnt > 0 && xp->consumed < xp->local;
    int P = b->size, W = b->words;
    int T = cnt < 65536 ? 1 : b->threads;
    const uint64_t *part = b->g->part;
    memset(xp->tcounts, 0, (size_t)b->threads * (size_t)P * sizeof *xp->tcounts);
#pragma omp parallel num_threads(T)
    {
        int t = omp_get_thread_num();
        size_t lo = cnt * (size_t)t / (size_t)T, hi = cnt * (size_t)(t + 1) / (size_t)T;
        int *c = xp->tcounts + (size_t)t * (size_t)P;
        for (size_t i = lo; i < hi; i++) {
            uint64_t key[2], nbr[2];
            int na = edge_arcs(b, e->src[i], e->dst[i], key, nbr);
            for (int a = 0; a < na; a++)
                c[part_owner(part, P, key[a] & ~IN_FLAG)]++;
        }
    }
    size_t total = 0;
    for (int r = 0; r < P; r++) {
        size_t sum = 0;
        for (int t = 0; t < T; t++) {
            xp->tpos[(size_t)t * (size_t)P + (size_t)r] = total + sum;
            sum += (size_t)xp->tcounts[(size_t)t * (size_t)P + (size_t)r];
        }
        xp->bytes[r] = sum * (size_t)W * sizeof(uint64_t);
        total += sum;
    }
    unsigned char *base = NULL;
    LOOM_TRY(loom_exchange_claim(x, xp->bytes, &base, xp->displ));
    uint64_t *send = (uint64_t *)(void *)base;
#pragma omp parallel num_threads(T)
    {
        int t = omp_get_thread_num();
        size_t lo = cnt * (size_t)t / (size_t)T, hi = cnt * (size_t)(t + 1) / (size_t)T;
        size_t *pos = xp->tpos + (size_t)t * (size_t)P;
        for (size_t i = lo; i < hi; i++) {
            uint64_t key[2], nbr[2];
            int na = edge_arcs(b, e->src[i], e->dst[i], key, nbr);
            for (int a = 0; a < na; a++) {
                int r = part_owner(part, P, key[a] & ~IN_FLAG);
                uint64_t *rec = send + pos[r]++ * (size_t)W;
                rec[0] = key[a];
                rec[1] = nbr[a];
                if (W == 3) memcpy(&rec[2], &e->weight[i], sizeof(double));
            }
        }
    }
    return LOOM_OK;
}

/* Place received arcs at their vertex's cursor. Returns nonzero when an arc
 * does not belong here or overflows its list: the source replayed differently
 * from pass 1, a bug. */
static int scatter_round(build_t *b, const uint64_t *recv, size_t nrecv, uint64_t *out_cur,
                         uint64_t *in_cur)
{
    loom_graph_t *g = b->g;
    uint64_t lo = g->lo, hi = g->hi;
    int W = b->words, bad = 0;
    int T = nrecv < 65536 ? 1 : b->threads;
#pragma omp parallel for num_threads(T) schedule(static) reduction(| : bad)
    for (size_t r = 0; r < nrecv; r++) {
        const uint64_t *rec = recv + r * (size_t)W;
        uint64_t key = rec[0], v = key & ~IN_FLAG;
        int is_in = (key & IN_FLAG) != 0;
        if (v < lo || v >= hi || (is_in && !in_cur)) {
            bad = 1;
            continue;
        }
        uint64_t i = v - lo, pos;
        uint64_t *cur = is_in ? in_cur : out_cur;
        const uint64_t *off = is_in ? g->in_off : g->out_off;
        if (T > 1) {
#pragma omp atomic capture
            pos = cur[i]++;
        } else {
            pos = cur[i]++;
        }
        if (pos >= off[i + 1]) {
            bad = 1;
            continue;
        }
        if (is_in) {
            g->in_src[pos] = rec[1];
            if (W == 3) memcpy(&g->in_w[pos], &rec[2], sizeof(double));
        } else {
            g->out_dst[pos] = rec[1];
            if (W == 3) memcpy(&g->out_w[pos], &rec[2], sizeof(double));
        }
    }
    return bad;
}

static loom_status_t unpack_round(loom_exchange_t *x, void *user, int src,
                                  const unsigned char *data, size_t bytes)
{
    xpack_t *xp = user;
    build_t *b = xp->b;
    (void)x;
    (void)src;
    size_t arcs = bytes / ((size_t)b->words * sizeof(uint64_t));
    if (scatter_round(b, (const uint64_t *)(const void *)data, arcs, xp->out_cur, xp->in_cur))
        return LOOM_ERROR(b->ctx, LOOM_ERR_INTERNAL,
                          "%s: the second pass over the edges differs from the first",
                          loom_source_name(b->src));
    return LOOM_OK;
}

/* Pass 2: every arc to its owner, in bounded rounds on the data plane's
 * exchange (arcs a rank owns itself never go through MPI). */
static loom_status_t exchange(build_t *b, uint64_t *out_cur, uint64_t *in_cur)
{
    loom_ctx_t *ctx = b->ctx;
    int P = b->size;
    xpack_t xp = {.b = b, .out_cur = out_cur, .in_cur = in_cur};
    loom_exchange_t *x = NULL;
    size_t arc_bytes = (size_t)b->words * sizeof(uint64_t);
    loom_exchange_opts_t xo = {.among = LOOM_AMONG_JOB,
                               .elem = arc_bytes,
                               .budget = BUILD_BUDGET,
                               .max_room = BATCH_EDGES * 2 * arc_bytes};
    loom_status_t st = loom_exchange_create(ctx, &xo, &x);
    xp.tcounts = calloc((size_t)b->threads * (size_t)P, sizeof *xp.tcounts);
    xp.tpos = calloc((size_t)b->threads * (size_t)P, sizeof *xp.tpos);
    xp.bytes = calloc((size_t)P * 2, sizeof *xp.bytes);
    if (st == LOOM_OK && (!xp.tcounts || !xp.tpos || !xp.bytes))
        st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory for exchange counts");
    if (st == LOOM_OK) {
        xp.displ = xp.bytes + P;
        /* a batch's arcs (two per edge at most) fit one destination's room */
        xp.batch = loom_exchange_room(x) / (2 * arc_bytes);
        if (xp.batch > BATCH_EDGES) xp.batch = BATCH_EDGES;
        if (xp.batch < 1) xp.batch = 1;
        xp.local = loom_source_local_count(b->src);
        st = loom_source_rewind(ctx, b->src);
    }
    st = agree_polite(b, st);
    loom_timer_start(ctx, "exchange");
    if (st == LOOM_OK) st = loom_exchange_run(x, pack_round, unpack_round, &xp);
    loom_timer_stop(ctx, "exchange");
    loom_exchange_destroy(&x);
    free(xp.tcounts);
    free(xp.tpos);
    free(xp.bytes);
    return st;
}

/* ------------------------------------------------------------------ sorting lists */

/* Sort arcs by (neighbour, weight): the weight tie-break makes the order
 * deterministic and puts the smallest weight first among duplicates. */
#define ARC_LT(ka, wa, kb, wb) ((ka) < (kb) || (w && (ka) == (kb) && (wa) < (wb)))

static inline void arc_swap(uint64_t *k, double *w, size_t i, size_t j)
{
    uint64_t t = k[i];
    k[i] = k[j];
    k[j] = t;
    if (w) {
        double u = w[i];
        w[i] = w[j];
        w[j] = u;
    }
}

static void arc_insertion_sort(uint64_t *k, double *w, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        uint64_t kx = k[i];
        double wx = w ? w[i] : 0;
        size_t j = i;
        while (j > 0 && ARC_LT(kx, wx, k[j - 1], w[j - 1])) {
            k[j] = k[j - 1];
            if (w) w[j] = w[j - 1];
            j--;
        }
        k[j] = kx;
        if (w) w[j] = wx;
    }
}

static void arc_sift_down(uint64_t *k, double *w, size_t root, size_t n)
{
    for (;;) {
        size_t c = 2 * root + 1;
        if (c >= n) return;
        if (c + 1 < n && ARC_LT(k[c], w[c], k[c + 1], w[c + 1])) c++;
        if (!ARC_LT(k[root], w[root], k[c], w[c])) return;
        arc_swap(k, w, root, c);
        root = c;
    }
}

static void arc_heapsort(uint64_t *k, double *w, size_t n)
{
    for (size_t i = n / 2; i-- > 0;)
        arc_sift_down(k, w, i, n);
    for (size_t end = n; end-- > 1;) {
        arc_swap(k, w, 0, end);
        arc_sift_down(k, w, 0, end);
    }
}

/* Introsort: quicksort with a median-of-three Hoare partition, heapsort past
 * the depth limit (hub lists full of duplicates must not go quadratic). */
static void arc_sort(uint64_t *k, double *w, size_t n, int depth)
{
    while (n > 24) {
        if (depth-- == 0) {
            arc_heapsort(k, w, n);
            return;
        }
        size_t mid = n / 2;
        if (ARC_LT(k[mid], w[mid], k[0], w[0])) arc_swap(k, w, 0, mid);
        if (ARC_LT(k[n - 1], w[n - 1], k[0], w[0])) arc_swap(k, w, 0, n - 1);
        if (ARC_LT(k[n - 1], w[n - 1], k[mid], w[mid])) arc_swap(k, w, mid, n - 1);
        uint64_t pk = k[mid];
        double pw = w ? w[mid] : 0;
        /* k[0] <= pivot <= k[n-1] bound both scans; the split point j lands
         * in [0, n-2], so both sides are non-empty. */
        size_t i = 0, j = n - 1;
        int first = 1;
        for (;;) {
            if (!first) i++;
            while (ARC_LT(k[i], w[i], pk, pw))
                i++;
            if (!first) j--;
            while (ARC_LT(pk, pw, k[j], w[j]))
                j--;
            first = 0;
            if (i >= j) break;
            arc_swap(k, w, i, j);
        }
        size_t left = j + 1, right = n - left;
        if (left < right) {
            arc_sort(k, w, left, depth);
            k += left;
            if (w) w += left;
            n = right;
        } else {
            arc_sort(k + left, w ? w + left : NULL, right, depth);
            n = left;
        }
    }
    arc_insertion_sort(k, w, n);
}

static int depth_limit(size_t n)
{
    int d = 0;
    while (n > 1) {
        n >>= 1;
        d++;
    }
    return 2 * d + 2;
}

/* Sort every list of one CSR, drop self-loops and duplicates when asked, and
 * close the gaps. `deg` is scratch of nloc entries. Returns the arcs kept. */
static uint64_t sort_csr(const build_t *b, uint64_t *off, uint64_t **adjp, double **wp,
                         uint64_t *deg)
{
    uint64_t nloc = b->g->hi - b->g->lo, lo = b->g->lo;
    uint64_t *adj = *adjp;
    double *wt = *wp;
    int drop_self = b->o.drop_self_loops, drop_dup = b->o.drop_duplicates;
#pragma omp parallel for num_threads(b->threads) schedule(dynamic, 1024)
    for (uint64_t i = 0; i < nloc; i++) {
        uint64_t s = off[i], e = off[i + 1];
        uint64_t *k = adj + s;
        double *w = wt ? wt + s : NULL;
        size_t len = (size_t)(e - s);
        if (len > 1) arc_sort(k, w, len, depth_limit(len));
        if (!drop_self && !drop_dup) {
            deg[i] = len;
            continue;
        }
        size_t d = 0;
        for (size_t j = 0; j < len; j++) {
            if (drop_self && k[j] == lo + i) continue;
            if (drop_dup && d > 0 && k[d - 1] == k[j]) continue;
            k[d] = k[j];
            if (w) w[d] = w[j];
            d++;
        }
        deg[i] = d;
    }
    if (!drop_self && !drop_dup) return nloc ? off[nloc] : 0;
    uint64_t pos = 0;
    for (uint64_t i = 0; i < nloc; i++) {
        uint64_t s = off[i], d = deg[i];
        if (pos != s && d) {
            memmove(adj + pos, adj + s, d * sizeof *adj);
            if (wt) memmove(wt + pos, wt + s, d * sizeof *wt);
        }
        off[i] = pos;
        pos += d;
    }
    off[nloc] = pos;
    /* Shrinking in place cannot fail in a way that loses data; keep the old
     * block if realloc declines. */
    uint64_t *na = realloc(adj, (pos ? pos : 1) * sizeof *adj);
    if (na) *adjp = na;
    if (wt) {
        double *nw = realloc(wt, (pos ? pos : 1) * sizeof *wt);
        if (nw) *wp = nw;
    }
    return pos;
}

/* ------------------------------------------------------------------ the build */

/* Offsets of this rank's range from a dense degree array, and the arc arrays. */
static loom_status_t alloc_csr(build_t *b, const uint64_t *deg, uint64_t **off, uint64_t **adj,
                               double **w, uint64_t **cur)
{
    loom_graph_t *g = b->g;
    uint64_t nloc = g->hi - g->lo;
    LOOM_ALLOC(b->ctx, *off, nloc + 1, "CSR offsets");
    LOOM_ALLOC(b->ctx, *cur, nloc ? nloc : 1, "CSR cursors");
    uint64_t sum = 0;
    for (uint64_t i = 0; i < nloc; i++) {
        (*off)[i] = sum;
        (*cur)[i] = sum;
        sum += deg[g->lo + i];
    }
    (*off)[nloc] = sum;
    /* malloc, not calloc: pages are first touched by the threads that scatter. */
    LOOM_ALLOC(b->ctx, *adj, sum ? sum : 1, "CSR adjacency");
    if (b->weighted) LOOM_ALLOC(b->ctx, *w, sum ? sum : 1, "CSR weights");
    return LOOM_OK;
}

/* Refuse, before any pass, a graph whose smallest footprint on one rank cannot
 * fit this machine: the degree arrays every rank keeps, plus a worker's even
 * share of the arcs. A source's vertex count comes from a file or a spec, so
 * it can be anything up to 2^63. Every rank reaches the same verdict. */
static loom_status_t check_memory(build_t *b, uint64_t edges)
{
    char need_s[32], have_s[32];
    const char *name = loom_source_name(b->src);
    uint64_t arrays = b->mode == ARCS_DIRECTED ? 2 : 1;
    uint64_t degrees = loom_mem_mul(loom_mem_mul(b->n, arrays), sizeof(uint64_t));
    if (!loom_mem_fits(degrees))
        return LOOM_ERROR(b->ctx, LOOM_ERR_NOMEM,
                          "%s: the vertex count %" PRIu64
                          " (%s) is too large for this machine's memory: the degree arrays need "
                          "%s on every rank (this machine has %s)",
                          name, b->n, loom_source_vertex_count_origin(b->src),
                          loom_mem_human(degrees, need_s, sizeof need_s),
                          loom_mem_human(loom_mem_total(), have_s, sizeof have_s));
    int workers = b->size > 1 ? b->size - 1 : 1;
    uint64_t arcs = b->mode == ARCS_SYMMETRISE || b->in_edges ? loom_mem_mul(edges, 2) : edges;
    uint64_t share = loom_mem_mul(arcs / (uint64_t)workers, b->weighted ? 16 : 8);
    uint64_t need = loom_mem_add(degrees, share);
    if (!loom_mem_fits(need))
        return LOOM_ERROR(b->ctx, LOOM_ERR_NOMEM,
                          "%s: %" PRIu64 " edges are too many for this machine's memory: %s "
                          "needs at least %s for its share (this machine has %s)",
                          name, edges, workers > 1 ? "each worker" : "the one worker",
                          loom_mem_human(need, need_s, sizeof need_s),
                          loom_mem_human(loom_mem_total(), have_s, sizeof have_s));
    return LOOM_OK;
}

static loom_status_t build_degrees_and_partition(build_t *b, uint64_t **out_cur, uint64_t **in_cur)
{
    loom_ctx_t *ctx = b->ctx;
    loom_graph_t *g = b->g;
    uint64_t n = b->n;
    loom_status_t st = LOOM_OK;
    /* Dense degree arrays of n on every rank: O(n) memory per rank, even on
     * the master, which is what lets pass 1 stream without sorting and the
     * partition see every vertex's cost. Fine up to a few hundred million
     * vertices per node; beyond that a reduce-scatter over vertex blocks
     * would be needed. */
    uint64_t *outd = NULL, *ind = NULL;
    if (n > SIZE_MAX / (2 * sizeof(uint64_t))) {
        st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "%s: %" PRIu64 " vertices is too many for this build",
                        loom_source_name(b->src), n);
    } else {
        outd = calloc(n ? n : 1, sizeof *outd);
        if (b->mode == ARCS_DIRECTED) ind = calloc(n ? n : 1, sizeof *ind);
        if (!outd || (b->mode == ARCS_DIRECTED && !ind))
            st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM,
                            "%s: out of memory for the degree arrays (%" PRIu64 " vertices, %s)",
                            loom_source_name(b->src), n, loom_source_vertex_count_origin(b->src));
    }
    if (st == LOOM_OK) st = count_degrees(b, outd, ind);
    st = agree_polite(b, st);
    if (st != LOOM_OK) goto out;
    loom_timer_start(ctx, "degrees");
    st = allreduce_u64(ctx, b->comm, outd, n);
    if (st == LOOM_OK && ind) st = allreduce_u64(ctx, b->comm, ind, n);
    loom_timer_stop(ctx, "degrees");
    if (st != LOOM_OK) goto out;

    loom_timer_start(ctx, "partition");
    double vw = 0;
    /* Rank 0 decides and broadcasts, so that floating-point rounding can
     * never give two ranks different ranges. */
    if (b->rank == 0) vw = partition(b, outd, ind, g->part);
    int e = MPI_Bcast(g->part, b->size + 1, MPI_UINT64_T, 0, b->comm);
    if (e == MPI_SUCCESS) e = MPI_Bcast(&vw, 1, MPI_DOUBLE, 0, b->comm);
    loom_timer_stop(ctx, "partition");
    if (e != MPI_SUCCESS) {
        st = loom_error_mpi(ctx, e, "MPI_Bcast", __FILE__, __LINE__);
        goto out;
    }
    g->lo = g->part[b->rank];
    g->hi = g->part[b->rank + 1];
    loom_log(ctx, LOOM_LOG_VERBOSE,
             "csr: %" PRIu64 " vertices over %d parts, vertex weight %.3g arcs", n, b->size, vw);
    st = alloc_csr(b, outd, &g->out_off, &g->out_dst, &g->out_w, out_cur);
    if (st == LOOM_OK && b->in_edges)
        st = alloc_csr(b, ind, &g->in_off, &g->in_src, &g->in_w, in_cur);
out:
    free(outd);
    free(ind);
    return st;
}

loom_status_t loom_graph_build(loom_ctx_t *ctx, loom_edge_source_t *src,
                               const loom_build_opts_t *opts, loom_graph_t **graph)
{
    *graph = NULL;
    build_t b;
    memset(&b, 0, sizeof b);
    b.ctx = ctx;
    b.comm = loom_comm(ctx);
    b.rank = loom_rank(ctx);
    b.size = loom_size(ctx);
    b.threads = loom_threads(ctx) > 0 ? loom_threads(ctx) : 1;
    b.src = src;
    if (opts) b.o = *opts;
    b.src_phase = loom_source_is_generator(src) ? "generate" : "read";
    b.n = loom_source_num_vertices(src);
    b.weighted = loom_source_weighted(src) != 0;
    b.words = b.weighted ? 3 : 2;
    int undirected = b.o.undirected || !loom_source_directed(src);
    b.mode = !undirected                  ? ARCS_DIRECTED
             : loom_source_symmetric(src) ? ARCS_AS_GIVEN
                                          : ARCS_SYMMETRISE;
    b.in_edges = !undirected && b.o.want_in_edges;

    uint64_t *out_cur = NULL, *in_cur = NULL;
    uint64_t local_edges = loom_source_local_count(src), edges = 0;
    LOOM_MPI(ctx, MPI_Allreduce(&local_edges, &edges, 1, MPI_UINT64_T, MPI_SUM, b.comm));
    /* ranks on other hosts may have other memory: agree before pass 1 */
    loom_status_t st = loom_agree(ctx, b.comm, check_memory(&b, edges));
    loom_graph_t *g = st == LOOM_OK ? calloc(1, sizeof *g) : NULL;
    if (g) g->part = calloc((size_t)b.size + 1, sizeof *g->part);
    if (st == LOOM_OK && (!g || !g->part))
        st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory for a graph");
    b.g = g;
    if (st == LOOM_OK) {
        g->num_vertices = b.n;
        g->directed = !undirected;
        g->weighted = b.weighted;
        g->nparts = b.size;
        st = build_degrees_and_partition(&b, &out_cur, &in_cur);
    }
    st = loom_agree(ctx, b.comm, st);
    if (st != LOOM_OK) goto out;

    st = exchange(&b, out_cur, in_cur);
    loom_edges_free(&b.batch);
    if (st != LOOM_OK) goto out;

    loom_timer_start(ctx, "sort");
    uint64_t local = sort_csr(&b, g->out_off, &g->out_dst, &g->out_w, out_cur);
    if (b.in_edges) sort_csr(&b, g->in_off, &g->in_src, &g->in_w, in_cur);
    if (undirected) {
        g->in_off = g->out_off;
        g->in_src = g->out_dst;
        g->in_w = g->out_w;
    }
    loom_timer_stop(ctx, "sort");
    {
        MPI_Request req;
        int e = MPI_Iallreduce(&local, &g->num_arcs, 1, MPI_UINT64_T, MPI_SUM, b.comm, &req);
        if (e != MPI_SUCCESS)
            st = loom_error_mpi(ctx, e, "MPI_Iallreduce", __FILE__, __LINE__);
        else
            st = wait_req(&b, &req);
    }
    st = loom_agree(ctx, b.comm, st);
out:
    loom_edges_free(&b.batch);
    free(out_cur);
    free(in_cur);
    if (st != LOOM_OK) loom_graph_destroy(&g);
    *graph = g;
    return st;
}
