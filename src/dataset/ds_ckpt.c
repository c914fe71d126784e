/* Dataset checkpoints: a dataset written as one file per partition under the checkpoint
 * directory (atomically), its lineage cut; restoring one for --restart; stop requests. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dataset/ds_internal.h"

#define DS_CKPT_MAGIC "loom-dataset-checkpoint 1"

/* "<dir>/<tag>.<step>" (or ".latest" with step < 0) into a new string. */
static char *ckpt_path(const char *dir, const char *tag, int64_t step)
{
    size_t n = strlen(dir) + strlen(tag) + 32;
    char *p = malloc(n);
    if (!p) return NULL;
    if (step < 0)
        snprintf(p, n, "%s/%s.latest", dir, tag);
    else
        snprintf(p, n, "%s/%s.%lld", dir, tag, (long long)step);
    return p;
}

static int tag_ok(const char *tag)
{
    if (!tag || !*tag || strlen(tag) > 64) return 0;
    for (const char *c = tag; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '_' || *c == '-'))
            return 0;
    return 1;
}

/* Write a whole file or fail naming it. */
static loom_status_t write_file(loom_ctx_t *ctx, const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f) return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    int ok = fwrite(data, 1, len, f) == len;
    ok = (fclose(f) == 0) && ok;
    if (!ok) return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    return LOOM_OK;
}

typedef struct file_sink {
    ds_sink_t base;
    loom_ctx_t *ctx;
    loom_buf_t *keep; /* the partition, kept in memory as it is written */
} file_sink_t;

static loom_status_t keep_put(ds_sink_t *s, const loom_ds_rec_t *r)
{
    file_sink_t *f = (file_sink_t *)s;
    return loom_buf_put_record(f->ctx, f->keep, r->key, r->klen, r->val, r->vlen);
}

/* Whether `path` is a dataset checkpoint (its meta starts with the magic line). */
static int is_checkpoint(const char *path)
{
    char meta[4200], head[64] = "";
    snprintf(meta, sizeof meta, "%s/meta", path);
    FILE *f = fopen(meta, "rb");
    if (!f) return 0;
    size_t n = fread(head, 1, sizeof head - 1, f);
    fclose(f);
    head[n] = 0;
    return strncmp(head, DS_CKPT_MAGIC "\n", strlen(DS_CKPT_MAGIC) + 1) == 0;
}

/* Rank 0, after the commit: point `<tag>.latest` at step (write, rename) and
 * remove the other checkpoints of the tag. */
static loom_status_t publish(loom_ds_engine_t *e, const char *tag, int64_t step)
{
    loom_ctx_t *ctx = e->ctx;
    const char *dir = e->ckpt_dir;
    char *latest = ckpt_path(dir, tag, -1), *tmp = latest ? malloc(strlen(latest) + 8) : NULL;
    if (!tmp) {
        free(latest);
        return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    }
    sprintf(tmp, "%s.tmp", latest);
    char num[32];
    int n = snprintf(num, sizeof num, "%lld\n", (long long)step);
    loom_status_t st = write_file(ctx, tmp, num, (size_t)n);
    if (st == LOOM_OK && rename(tmp, latest) != 0)
        st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot rename: %s", tmp, strerror(errno));
    if (st != LOOM_OK) unlink(tmp);
    free(tmp);
    free(latest);
    if (st != LOOM_OK) return st;
    DIR *d = opendir(dir);
    struct dirent *de;
    size_t tl = strlen(tag);
    while (d && (de = readdir(d))) {
        const char *nm = de->d_name;
        char *end;
        if (strncmp(nm, tag, tl) != 0 || nm[tl] != '.') continue;
        long long s = strtoll(nm + tl + 1, &end, 10);
        if (end == nm + tl + 1 || *end || s == step) continue;
        char *old = ckpt_path(dir, tag, s);
        if (old && is_checkpoint(old)) loom_remove_tree(old); /* never what Loom did not write */
        free(old);
    }
    if (d) closedir(d);
    return LOOM_OK;
}

static loom_status_t checkpoint_once(loom_ds_t *d, const char *tag, int64_t step)
{
    if (!d) return LOOM_ERR_NOMEM;
    loom_ds_engine_t *e = d->e;
    loom_ctx_t *ctx = e->ctx;
    MPI_Comm comm = loom_comm(ctx);
    loom_status_t st = e->err;
    if (st == LOOM_OK && !e->ckpt_dir)
        st = LOOM_ERROR(ctx, LOOM_ERR_USAGE, "checkpoint of '%s': no checkpoint directory given",
                        tag ? tag : "");
    if (st == LOOM_OK && (!tag_ok(tag) || step < 0))
        st = LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                        "checkpoint tag '%s' step %lld: tags are 1-64 letters, digits, '_', '-'; "
                        "steps >= 0",
                        tag ? tag : "", (long long)step);
    st = loom_agree(ctx, comm, st);
    if (st != LOOM_OK) return st;
    char *path = ckpt_path(e->ckpt_dir, tag, step);
    loom_output_t *out = NULL;
    st = path ? LOOM_OK : LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    st = loom_agree(ctx, comm, st);
    if (st == LOOM_OK)
        st = loom_output_begin(ctx, comm, path, LOOM_OUTPUT_DIR | LOOM_OUTPUT_OVERWRITE, &out);
    if (st != LOOM_OK) {
        free(path);
        return st;
    }
    st = ds_action_begin(d, "checkpoint");
    if (st == LOOM_OK) st = ds_prepare(d);
    loom_timer_start(ctx, "ds_checkpoint");
    /* every owned partition: computed (or read), kept in memory, written */
    loom_buf_t *parts = calloc((size_t)d->nparts, sizeof *parts);
    if (st == LOOM_OK && !parts) st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    char file[4200];
    for (int p = 0; p < d->nparts && st == LOOM_OK; p++) {
        if (!ds_mine(d, p)) continue;
        file_sink_t fs = {{keep_put}, ctx, &parts[p]};
        st = ds_pull(d, p, &fs.base);
        snprintf(file, sizeof file, "%s/part-%05d", loom_output_path(out), p);
        if (st == LOOM_OK)
            st = write_file(ctx, file, parts[p].data ? parts[p].data : (void *)"", parts[p].len);
    }
    if (st == LOOM_OK && loom_is_master(ctx)) {
        char meta[4096];
        int n = snprintf(meta, sizeof meta,
                         "%s\ntag %s\nstep %lld\npartitions %d\nhash %d\nidentity %s\n",
                         DS_CKPT_MAGIC, tag, (long long)step, d->nparts,
                         d->partitioning == DS_PART_HASH, e->identity ? e->identity : "");
        snprintf(file, sizeof file, "%s/meta", loom_output_path(out));
        st = write_file(ctx, file, meta, (size_t)n);
    }
    st = loom_output_end(ctx, &out, st);
    if (st == LOOM_OK && loom_is_master(ctx)) st = publish(e, tag, step);
    st = loom_agree(ctx, comm, st);
    loom_timer_stop(ctx, "ds_checkpoint");
    if (st == LOOM_OK) {
        /* the lineage is cut: d is now read from memory, or from its files */
        for (int p = 0; d->part && p < d->nparts; p++)
            ds_part_free(d, p);
        st = ds_keep_alloc(d);
    }
    if (st == LOOM_OK) {
        d->kind = DS_CKPT;
        d->in[0] = d->in[1] = NULL;
        d->nin = 0;
        d->persist = 0;
        free(d->ckpt_path);
        d->ckpt_path = path;
        path = NULL;
        for (int p = 0; p < d->nparts; p++) {
            /* keep what this rank still owns now that placement is p mod W */
            d->have[p] = 0;
            if (ds_mine(d, p) && parts[p].data) {
                d->part[p] = parts[p];
                memset(&parts[p], 0, sizeof parts[p]);
                d->have[p] = 1;
                e->kept_bytes += (int64_t)d->part[p].cap;
            }
        }
        d->kept = 0; /* a source: partitions missing here are read from the files */
        e->checkpoints++;
        ds_action_done(d);
    }
    for (int p = 0; parts && p < d->nparts; p++)
        loom_buf_free(&parts[p]);
    free(parts);
    free(path);
    return st;
}

loom_status_t loom_ds_checkpoint(loom_ds_t *d, const char *tag, int64_t step)
{
    loom_status_t st;
    while (ds_again(d, (st = checkpoint_once(d, tag, step), &st)))
        ;
    return st;
}

/* Rank 0: read a small text file into buf (NUL-terminated). */
static loom_status_t read_small(loom_ctx_t *ctx, const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (!f) return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = 0;
    return LOOM_OK;
}

loom_ds_t *loom_ds_restore(loom_ds_engine_t *e, const char *tag, int64_t *step)
{
    *step = -1;
    if (!e->restart_dir) return NULL;
    loom_ctx_t *ctx = e->ctx;
    MPI_Comm comm = loom_comm(ctx);
    loom_status_t st =
        tag_ok(tag) ? LOOM_OK : LOOM_ERROR(ctx, LOOM_ERR_USAGE, "restore: bad tag '%s'", tag);
    long long info[3] = {-1, 0, 0}; /* step, partitions, hash */
    char *latest = ckpt_path(e->restart_dir, tag, -1), *dir = NULL;
    if (st == LOOM_OK && !latest) st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    if (st == LOOM_OK && loom_is_master(ctx)) {
        char buf[4096], *end;
        if (access(latest, R_OK) != 0)
            st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: no complete checkpoint of '%s' to restart from",
                            e->restart_dir, tag);
        if (st == LOOM_OK) st = read_small(ctx, latest, buf, sizeof buf);
        if (st == LOOM_OK) {
            info[0] = strtoll(buf, &end, 10);
            if (end == buf || info[0] < 0)
                st = LOOM_ERROR(ctx, LOOM_ERR_FORMAT, "%s: not a step number", latest);
        }
        if (st == LOOM_OK) dir = ckpt_path(e->restart_dir, tag, info[0]);
        char meta[4200], ok[4200];
        if (st == LOOM_OK && dir) {
            snprintf(meta, sizeof meta, "%s/_SUCCESS", dir);
            if (access(meta, F_OK) != 0)
                st = LOOM_ERROR(ctx, LOOM_ERR_FORMAT, "%s: the checkpoint is not complete", dir);
        }
        if (st == LOOM_OK && dir) {
            snprintf(meta, sizeof meta, "%s/meta", dir);
            st = read_small(ctx, meta, buf, sizeof buf);
        }
        if (st == LOOM_OK) {
            int hash = 0, parts = 0;
            long long s = -1;
            char *id = strstr(buf, "\nidentity ");
            if (strncmp(buf, DS_CKPT_MAGIC "\n", strlen(DS_CKPT_MAGIC) + 1) != 0 ||
                !strstr(buf, "\npartitions ") || !id ||
                sscanf(strstr(buf, "\nstep "), "\nstep %lld", &s) != 1 ||
                sscanf(strstr(buf, "\npartitions "), "\npartitions %d", &parts) != 1 ||
                sscanf(strstr(buf, "\nhash "), "\nhash %d", &hash) != 1 || parts < 1 ||
                parts > 1000000 || s != info[0])
                st = LOOM_ERROR(ctx, LOOM_ERR_FORMAT, "%s: not a Loom dataset checkpoint", meta);
            if (st == LOOM_OK) {
                snprintf(ok, sizeof ok, "\nidentity %s\n", e->identity ? e->identity : "");
                if (strcmp(id, ok) != 0) {
                    char *nl = strchr(id + 10, '\n');
                    if (nl) *nl = 0;
                    st = LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                                    "%s: written by '%s', not by this job ('%s')", dir, id + 10,
                                    e->identity ? e->identity : "");
                }
            }
            info[1] = parts;
            info[2] = hash;
        }
    }
    st = loom_agree(ctx, comm, st);
    if (st == LOOM_OK) LOOM_MPI_KEEP(ctx, st, MPI_Bcast(info, 3, MPI_LONG_LONG, 0, comm));
    free(dir);
    free(latest);
    if (st != LOOM_OK) { /* kept for the next action; the job goes on as if new */
        ds_fail(e, st);
        return NULL;
    }
    loom_ds_t *d = ds_node(e, DS_CKPT, "restored", NULL, NULL, (int)info[1]);
    if (!d) return NULL;
    snprintf(d->name, sizeof d->name, "%s (restored)", tag);
    d->partitioning = info[2] ? DS_PART_HASH : DS_PART_NONE;
    d->ckpt_path = ckpt_path(e->restart_dir, tag, info[0]);
    if (!d->ckpt_path || ds_keep_alloc(d) != LOOM_OK)
        ds_fail(e, LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory"));
    *step = info[0];
    return d;
}

/* Partition p of a checkpointed dataset that is not in memory: read its file and keep it. */
loom_status_t ds_ckpt_load(loom_ds_t *d, int p)
{
    loom_ctx_t *ctx = d->e->ctx;
    char file[4200];
    snprintf(file, sizeof file, "%s/part-%05d", d->ckpt_path, p);
    loom_buf_t *b = &d->part[p];
    b->len = 0;
    loom_status_t st = ds_file_read(ctx, file, b);
    /* a torn or foreign file is refused, not half read */
    const unsigned char *q = b->data, *end = b->data + b->len;
    loom_ds_rec_t r;
    int k;
    while (st == LOOM_OK && (k = ds_next_record(&q, end, &r)) > 0) {
    }
    if (st == LOOM_OK && q != end)
        st = LOOM_ERROR(ctx, LOOM_ERR_FORMAT, "%s: a torn or foreign checkpoint file", file);
    if (st == LOOM_OK) {
        d->have[p] = 1;
        __atomic_fetch_add(&d->e->kept_bytes, (int64_t)b->cap, __ATOMIC_RELAXED);
    } else {
        loom_buf_free(b);
    }
    return st;
}

int loom_ds_stop_requested(loom_ds_engine_t *e)
{
    loom_ctx_t *ctx = e->ctx;
    int sig = e->ckpt_dir ? loom_stop_signal(ctx) : 0, any = 0;
    if (MPI_Allreduce(&sig, &any, 1, MPI_INT, MPI_MAX, loom_comm(ctx)) != MPI_SUCCESS) return 0;
    e->stop_signal = any;
    return any != 0;
}

loom_status_t loom_ds_interrupted(loom_ds_engine_t *e, int64_t step)
{
    int s = e->stop_signal;
    const char *name = s == SIGUSR1 ? "SIGUSR1" : s == SIGTERM ? "SIGTERM" : "SIGINT";
    char hint[4200];
    snprintf(hint, sizeof hint, "resume with --restart %s (checkpoint of step %lld)",
             e->ckpt_dir ? e->ckpt_dir : "", (long long)step);
    loom_set_resume_hint(e->ctx, hint);
    return LOOM_ERROR(e->ctx, LOOM_ERR_INTERRUPTED,
                      "checkpointed at step %lld on signal %s; resume with --restart %s",
                      (long long)step, name, e->ckpt_dir ? e->ckpt_dir : "");
}
