/* Where kept partitions live: memory, or files in the worker's spill directory (persisted on
 * disk, or past the memory budget), with the rank's kept bytes counted. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dataset/ds_internal.h"

static void disk_path(const loom_ds_t *d, int p, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/d%d-p%05d", d->e->spill.path, d->id, p);
}

/* The spill directory, made the first time a partition goes to disk. */
loom_status_t ds_spill_ready(loom_ds_engine_t *e)
{
    loom_status_t st = LOOM_OK;
#pragma omp critical(ds_spill)
    {
        if (!e->spill.path) {
            const char *base = e->spill_base;
            if (!base || !*base) base = getenv("TMPDIR");
            if (!base || !*base) base = "/tmp";
            st = loom_spill_dir_create(e->ctx, base, "ds", &e->spill);
        }
    }
    return st;
}

loom_status_t ds_keep_store(loom_ds_t *d, int p)
{
    loom_ds_engine_t *e = d->e;
    loom_ctx_t *ctx = e->ctx;
    /* shuffle output nobody persisted may go to disk like a persisted MEMORY_AND_DISK */
    loom_ds_storage_t where = d->persist ? d->storage : LOOM_DS_MEMORY_AND_DISK;
    int64_t bytes = (int64_t)d->part[p].cap;
    int disk = where == LOOM_DS_DISK;
    if (where == LOOM_DS_MEMORY_AND_DISK) {
        int64_t before = __atomic_fetch_add(&e->kept_bytes, bytes, __ATOMIC_RELAXED);
        if (before + bytes > (int64_t)e->cfg.memory) {
            __atomic_fetch_sub(&e->kept_bytes, bytes, __ATOMIC_RELAXED);
            disk = 1;
        } else {
            return LOOM_OK;
        }
    } else if (!disk) {
        __atomic_fetch_add(&e->kept_bytes, bytes, __ATOMIC_RELAXED);
        return LOOM_OK;
    }
    LOOM_TRY(ds_spill_ready(e));
    char path[4200];
    disk_path(d, p, path, sizeof path);
    FILE *f = fopen(path, "wb");
    if (!f) return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    int ok = fwrite(d->part[p].data ? d->part[p].data : (unsigned char *)"", 1, d->part[p].len,
                    f) == d->part[p].len;
    ok = (fclose(f) == 0) && ok;
    if (!ok) {
        unlink(path);
        return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot write: %s (spill directory full?)", path,
                          strerror(errno));
    }
    loom_buf_free(&d->part[p]);
    d->ondisk[p] = 1;
    __atomic_fetch_add(&e->on_disk, 1, __ATOMIC_RELAXED);
    return LOOM_OK;
}

loom_status_t ds_file_append(loom_ctx_t *ctx, const char *path, const loom_buf_t *b)
{
    FILE *f = fopen(path, "ab");
    if (!f) return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    int ok = !b->len || fwrite(b->data, 1, b->len, f) == b->len;
    ok = (fclose(f) == 0) && ok;
    if (!ok)
        return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot write: %s (spill directory full?)", path,
                          strerror(errno));
    return LOOM_OK;
}

loom_status_t ds_file_read(loom_ctx_t *ctx, const char *path, loom_buf_t *b)
{
    FILE *f = fopen(path, "rb");
    if (!f) return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    loom_status_t st = LOOM_OK;
    for (;;) {
        st = loom_buf_reserve(ctx, b, 1 << 20);
        if (st != LOOM_OK) break;
        size_t n = fread(b->data + b->len, 1, b->cap - b->len, f);
        b->len += n;
        if (n == 0) break;
    }
    if (st == LOOM_OK && ferror(f))
        st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
    fclose(f);
    return st;
}

loom_status_t ds_disk_pull(loom_ds_t *d, int p, ds_sink_t *sink)
{
    loom_ctx_t *ctx = d->e->ctx;
    char path[4200];
    disk_path(d, p, path, sizeof path);
    loom_buf_t b = {0};
    loom_status_t st = ds_file_read(ctx, path, &b);
    if (st == LOOM_OK) st = ds_buf_each(ctx, &b, sink);
    loom_buf_free(&b);
    return st;
}

void ds_part_free(loom_ds_t *d, int p)
{
    if (!d->have) return;
    if (d->ondisk && d->ondisk[p]) {
        char path[4200];
        disk_path(d, p, path, sizeof path);
        unlink(path);
        d->ondisk[p] = 0;
    } else if (d->part) {
        __atomic_fetch_sub(&d->e->kept_bytes, (int64_t)d->part[p].cap, __ATOMIC_RELAXED);
        loom_buf_free(&d->part[p]);
    }
    d->have[p] = 0;
}
