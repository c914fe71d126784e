/* Opening and closing a key/value store: the root (marker, lock), every worker's holder
 * directory and log, and the ring over the workers. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kv/kv_internal.h"

#define MARKER "loom key/value store 1\n"
#define DEFAULT_MAX_VALUE (16u << 20)

static loom_status_t check_opts(loom_ctx_t *ctx, const loom_kv_opts_t *o)
{
    if (o->replicas < 0 || o->replicas > LOOM_KV_MAX_REPLICAS)
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "--replicas %d: must be 1..%d", o->replicas,
                          LOOM_KV_MAX_REPLICAS);
    if (o->r < 0 || o->r > LOOM_KV_MAX_REPLICAS || o->w < 0 || o->w > LOOM_KV_MAX_REPLICAS)
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "--r %d --w %d: quorums must be 1..%d", o->r, o->w,
                          LOOM_KV_MAX_REPLICAS);
    if (o->vnodes < 0 || o->vnodes > 4096)
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "--vnodes %d: must be 1..4096", o->vnodes);
    if (o->fsync < LOOM_KV_FSYNC_EVERYSEC || o->fsync > LOOM_KV_FSYNC_NO)
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "fsync mode %d: unknown", o->fsync);
    if (o->max_value > (512u << 20))
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "--max-value %zu: at most 512M", o->max_value);
    for (int i = 0; o->weights && i < loom_num_workers(ctx); i++)
        if (!(o->weights[i] > 0) || o->weights[i] > 1e6)
            return LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                              "--weights: worker %d's weight %g must be in "
                              "(0, 1e6]",
                              i + 1, o->weights[i]);
    return LOOM_OK;
}

/* The highest counter of `slot` this holder has seen (dots and contexts): new dots of this
 * slot start above it, whatever the clock says now. */
static uint64_t highest_counter(const kv_holder_t *h, uint32_t slot)
{
    uint64_t m = 0;
    const kv_table_t *tables[2] = {&h->main, &h->hints};
    for (int t = 0; t < 2; t++)
        for (size_t i = 0; i < tables[t]->cap; i++) {
            const kv_entry_t *e = tables[t]->slot[i];
            if (e && kv_sibs_max_counter(&e->sibs, slot) > m)
                m = kv_sibs_max_counter(&e->sibs, slot);
        }
    return m;
}

static void kv_free(loom_kv_t *kv)
{
    if (!kv) return;
    kv_holder_close(&kv->h);
    kv_ring_free(&kv->ring);
    free(kv->holder_rank);
    if (kv->lock_fd >= 0) close(kv->lock_fd);
    if (kv->comm != MPI_COMM_NULL) MPI_Comm_free(&kv->comm);
    free(kv);
}

loom_status_t loom_kv_open(loom_ctx_t *ctx, const char *dir, const loom_kv_opts_t *opts,
                           loom_kv_t **out)
{
    *out = NULL;
    loom_kv_opts_t o = opts ? *opts : (loom_kv_opts_t){0};
    loom_kv_t *kv = calloc(1, sizeof *kv);
    if (!kv) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    kv->ctx = ctx;
    kv->lock_fd = -1;
    kv->comm = MPI_COMM_NULL;
    kv->h.fd = -1;
    loom_status_t st = check_opts(ctx, &o);
    if (st == LOOM_OK && (!dir || !*dir))
        st = LOOM_ERROR(ctx, LOOM_ERR_USAGE, "no store given (--store DIR or LOOM_STORE)");
    if (st == LOOM_OK && snprintf(kv->dir, sizeof kv->dir, "%s", dir) >= (int)sizeof kv->dir)
        st = LOOM_ERROR(ctx, LOOM_ERR_USAGE, "--store %s: path too long", dir);
    int nh = loom_num_workers(ctx);
    int n = o.replicas ? o.replicas : 3;
    if (n > nh) n = nh;
    kv->r = o.r ? o.r : 2;
    kv->w = o.w ? o.w : 2;
    if (kv->r > n) kv->r = n;
    if (kv->w > n) kv->w = n;
    kv->max_value = o.max_value ? o.max_value : DEFAULT_MAX_VALUE;
    kv->rank = loom_rank(ctx);
    kv->size = loom_size(ctx);
    kv->me = loom_worker_index(ctx);
    kv->my_slot = kv->size == 1 ? 1u : (uint32_t)loom_start_rank(ctx, kv->rank);
    uint64_t id = 0;
    if (st == LOOM_OK && loom_is_master(ctx)) {
        st = loom_store_root_check(ctx, dir, "LOOM_KV", MARKER, "key/value store", &id);
        if (st == LOOM_OK) st = loom_store_lock(ctx, dir, &kv->lock_fd);
    }
    st = loom_agree(ctx, loom_comm(ctx), st);
    if (st == LOOM_OK) LOOM_MPI_KEEP(ctx, st, MPI_Bcast(&id, 1, MPI_UINT64_T, 0, loom_comm(ctx)));
    if (st == LOOM_OK && loom_is_worker(ctx)) {
        char *hdir = NULL;
        st = loom_store_holder_dir(ctx, dir, id, &hdir);
        if (st == LOOM_OK) st = kv_holder_open(ctx, hdir, o.fsync, kv->max_value, &kv->h);
        free(hdir);
        if (st == LOOM_OK) kv->last_counter = highest_counter(&kv->h, kv->my_slot);
    }
    st = loom_agree(ctx, loom_comm(ctx), st);
    /* the ring: holder i is worker i, named by its slot */
    uint32_t *slots = malloc((size_t)nh * sizeof *slots);
    kv->holder_rank = malloc((size_t)nh * sizeof *kv->holder_rank);
    if (st == LOOM_OK && (!slots || !kv->holder_rank))
        st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    for (int i = 0; st == LOOM_OK && i < nh; i++) {
        kv->holder_rank[i] = loom_worker_rank(ctx, i);
        slots[i] = kv->size == 1 ? 1u : (uint32_t)loom_start_rank(ctx, kv->holder_rank[i]);
    }
    if (st == LOOM_OK &&
        kv_ring_build(&kv->ring, nh, slots, o.weights, o.vnodes ? o.vnodes : 64, n))
        st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory building the ring");
    free(slots);
    if (st == LOOM_OK) LOOM_MPI_KEEP(ctx, st, MPI_Comm_dup(loom_comm(ctx), &kv->comm));
    if (st == LOOM_OK) LOOM_MPI_KEEP(ctx, st, MPI_Comm_set_errhandler(kv->comm, MPI_ERRORS_RETURN));
    st = loom_agree(ctx, loom_comm(ctx), st);
    if (st != LOOM_OK) {
        kv_free(kv);
        return st;
    }
    *out = kv;
    return LOOM_OK;
}

loom_status_t loom_kv_close(loom_kv_t **pkv)
{
    if (!pkv || !*pkv) return LOOM_OK;
    loom_kv_t *kv = *pkv;
    loom_ctx_t *ctx = kv->ctx;
    loom_status_t st = LOOM_OK;
    if (kv->me >= 0) {
        st = kv_holder_sync(&kv->h);
        if (st == LOOM_OK) st = kv_holder_compact(&kv->h, 0);
    }
    kv_free(kv);
    *pkv = NULL;
    return loom_members_failed(ctx) ? st : loom_agree(ctx, loom_comm(ctx), st);
}

uint64_t loom_kv_local_keys(const loom_kv_t *kv)
{
    return kv->me >= 0 ? kv->h.main.count : 0;
}
