/* Thread count and binding with hwloc: honour OMP_NUM_THREADS, OMP_PLACES and the
 * launcher's binding; bind each OpenMP thread to one core of this rank's cpuset. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "runtime/ctx_internal.h"

/* FNV-1a over the cpuset's text, to find the ranks on this node that share it. */
static uint64_t hash_text(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* The cores (as cpusets) that intersect `set`, in topology order. */
static int cores_in(hwloc_topology_t topo, hwloc_const_cpuset_t set, hwloc_obj_t *cores, int max)
{
    int n = 0, total = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
    for (int i = 0; i < total && n < max; i++) {
        hwloc_obj_t c = hwloc_get_obj_by_type(topo, HWLOC_OBJ_CORE, i);
        if (c && hwloc_bitmap_intersects(c->cpuset, set)) cores[n++] = c;
    }
    return n;
}

loom_status_t loom_bind_apply(loom_ctx_t *ctx, const char *mode, int requested)
{
    if (!ctx->have_topo) {
        ctx->threads = requested > 0 ? requested : omp_get_max_threads();
        omp_set_num_threads(ctx->threads);
        return LOOM_OK;
    }
    hwloc_cpuset_t mine = hwloc_bitmap_alloc();
    if (!mine) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory reading the binding");
    if (hwloc_get_cpubind(ctx->topo, mine, HWLOC_CPUBIND_PROCESS) != 0)
        hwloc_bitmap_copy(mine, hwloc_topology_get_allowed_cpuset(ctx->topo));

    /* Ranks on this node that the launcher gave the same cpuset share its
     * cores: each takes its own slice instead of all piling onto the first. */
    char *text = NULL;
    hwloc_bitmap_asprintf(&text, mine);
    uint64_t h = hash_text(text ? text : "");
    free(text);
    MPI_Comm node;
    LOOM_MPI(ctx,
             MPI_Comm_split_type(ctx->comm, MPI_COMM_TYPE_SHARED, ctx->rank, MPI_INFO_NULL, &node));
    int nnode, me;
    MPI_Comm_size(node, &nnode);
    MPI_Comm_rank(node, &me);
    uint64_t *all = malloc((size_t)nnode * sizeof *all);
    if (!all) {
        MPI_Comm_free(&node);
        hwloc_bitmap_free(mine);
        return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory reading the binding");
    }
    int e = MPI_Allgather(&h, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, node);
    MPI_Comm_free(&node);
    int sharers = 0, slot = 0;
    for (int i = 0; i < nnode; i++)
        if (all[i] == h) {
            if (i < me) slot++;
            sharers++;
        }
    free(all);
    if (e != MPI_SUCCESS) {
        hwloc_bitmap_free(mine);
        return loom_error_mpi(ctx, e, "MPI_Allgather (binding)", __FILE__, __LINE__);
    }

    hwloc_obj_t cores[1024];
    int ncores = cores_in(ctx->topo, mine, cores, 1024);
    if (ncores < 1) ncores = 1;
    const char *omp_threads = getenv("OMP_NUM_THREADS");
    int threads = requested;
    if (threads <= 0 && omp_threads && *omp_threads) threads = omp_get_max_threads();
    if (threads <= 0) threads = ncores / sharers > 0 ? ncores / sharers : 1;
    ctx->threads = threads;
    omp_set_num_threads(threads);

    int bind = !strcmp(mode, "core") || (!strcmp(mode, "auto") && !getenv("OMP_PLACES"));
    if (bind && cores[0]) {
        int failures = 0;
#pragma omp parallel num_threads(threads) reduction(+ : failures)
        {
            int t = omp_get_thread_num();
            hwloc_obj_t core = cores[((size_t)slot * threads + t) % (size_t)ncores];
            if (hwloc_set_cpubind(ctx->topo, core->cpuset, HWLOC_CPUBIND_THREAD) != 0) failures++;
        }
        if (failures) loom_log_all(ctx, "could not bind %d thread(s); running unbound", failures);
    }
    if (ctx->verbose) {
        char buf[512];
        size_t off = 0;
        buf[0] = '\0';
#pragma omp parallel num_threads(threads)
        {
            hwloc_cpuset_t where = hwloc_bitmap_alloc();
            char *s = NULL;
            if (where && hwloc_get_cpubind(ctx->topo, where, HWLOC_CPUBIND_THREAD) == 0)
                hwloc_bitmap_list_asprintf(&s, where);
#pragma omp critical(loom_bind_report)
            {
                if (off < sizeof buf)
                    off += (size_t)snprintf(buf + off, sizeof buf - off, " t%d->PU{%s}",
                                            omp_get_thread_num(), s ? s : "?");
            }
            free(s);
            hwloc_bitmap_free(where);
        }
        char *cs = NULL;
        hwloc_bitmap_list_asprintf(&cs, mine);
        loom_log_all(ctx,
                     "%s; %d thread(s), bind=%s, launcher cpuset PU{%s}, %d rank(s) share it;%s",
                     ctx->rank == 0 ? (ctx->size > 1 ? "master" : "master+worker") : "worker",
                     threads, bind ? "core" : "none", cs ? cs : "?", sharers, buf);
        free(cs);
    }
    hwloc_bitmap_free(mine);
    return LOOM_OK;
}

loom_status_t loom_ctx_configure(loom_ctx_t *ctx, const loom_opts_t *opts)
{
    ctx->quiet = loom_opt_flag(opts, "quiet");
    ctx->verbose = loom_opt_flag(opts, "verbose");
    ctx->json = loom_opt_flag(opts, "json");
    if (ctx->verbose) ctx->quiet = 0;
    ctx->node_ranks = (int)loom_opt_int(opts, "node-ranks");
    const char *tl = loom_opt_string(opts, "two-level");
    ctx->two_level = !strcmp(tl, "on") ? 1 : !strcmp(tl, "off") ? 0 : -1;
    return loom_bind_apply(ctx, loom_opt_string(opts, "bind"), (int)loom_opt_int(opts, "threads"));
}

int loom_node_ranks(const loom_ctx_t *ctx)
{
    return ctx->node_ranks;
}

int loom_two_level(const loom_ctx_t *ctx)
{
    return ctx->two_level;
}

void loom_set_nodes(loom_ctx_t *ctx, int node_ranks, int two_level)
{
    ctx->node_ranks = node_ranks > 0 ? node_ranks : 0;
    ctx->two_level = two_level > 0 ? 1 : two_level == 0 ? 0 : -1;
}

size_t loom_llc_bytes(const loom_ctx_t *ctx)
{
    if (!ctx->have_topo) return 0;
    /* the largest data cache above the first core hwloc reports */
    hwloc_obj_t o = hwloc_get_obj_by_type(ctx->topo, HWLOC_OBJ_CORE, 0);
    size_t best = 0;
    for (; o; o = o->parent)
        if (hwloc_obj_type_is_dcache(o->type) && o->attr && o->attr->cache.size > best)
            best = (size_t)o->attr->cache.size;
    return best;
}
