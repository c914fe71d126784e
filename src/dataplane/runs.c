/* Sorted runs: spill files in per-partition sections, readers over memory, refs and files, a
 * k-way merge, and the sweep that removes what dead jobs left behind. */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dataplane/dataplane.h"

/* A process-wide sequence number keeps run names unique across threads. */
static unsigned run_seq;

/* ------------------------------------------------------------------ writing runs */

loom_status_t loom_spill_dir_create(loom_ctx_t *ctx, const char *base, const char *tag,
                                    loom_spill_dir_t *sd)
{
    memset(sd, 0, sizeof *sd);
    sd->temp = -1;
    size_t n = strlen(base) + strlen(tag) + strlen(loom_hostname(ctx)) + 64;
    sd->path = malloc(n);
    if (!sd->path) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory: spill directory");
    for (int tries = 0;; tries++) {
        snprintf(sd->path, n, "%s/loom-%s-%ld-%s-%u", base, loom_hostname(ctx), (long)getpid(), tag,
                 __atomic_fetch_add(&run_seq, 1, __ATOMIC_RELAXED));
        /* registered before it exists: a signal between the two would otherwise leave it */
        sd->temp = loom_temp_register(ctx, sd->path, 1);
        if (mkdir(sd->path, 0700) == 0) break;
        int err = errno;
        loom_temp_forget(ctx, sd->temp);
        sd->temp = -1;
        errno = err;
        if (errno != EEXIST || tries > 100) {
            loom_status_t st = LOOM_ERROR(
                ctx, LOOM_ERR_IO, "%s: cannot create a spill directory: %s (see --spill-dir)",
                sd->path, strerror(errno));
            free(sd->path);
            sd->path = NULL;
            return st;
        }
    }
    return LOOM_OK;
}

void loom_spill_dir_remove(loom_ctx_t *ctx, loom_spill_dir_t *sd)
{
    if (sd->path) loom_remove_tree(sd->path);
    loom_temp_forget(ctx, sd->temp);
    free(sd->path);
    memset(sd, 0, sizeof *sd);
    sd->temp = -1;
}

loom_status_t loom_run_create(loom_ctx_t *ctx, const char *dir, const char *tag, int nparts,
                              loom_run_writer_t *w)
{
    memset(w, 0, sizeof *w);
    w->ctx = ctx;
    w->run.nparts = nparts;
    size_t n = strlen(dir) + strlen(tag) + 32;
    w->run.path = malloc(n);
    w->run.off = calloc((size_t)nparts + 1, sizeof *w->run.off);
    if (!w->run.path || !w->run.off) {
        loom_run_abort(w);
        return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory: spill run");
    }
    snprintf(w->run.path, n, "%s/%s-%u", dir, tag,
             __atomic_fetch_add(&run_seq, 1, __ATOMIC_RELAXED));
    w->f = fopen(w->run.path, "wb");
    if (!w->f) {
        loom_status_t st =
            LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot create spill file: %s (see --spill-dir)",
                       w->run.path, strerror(errno));
        free(w->run.path);
        w->run.path = NULL;
        loom_run_abort(w);
        return st;
    }
    setvbuf(w->f, NULL, _IOFBF, 1 << 16);
    return LOOM_OK;
}

static loom_status_t write_bytes(loom_run_writer_t *w, const void *d, size_t n)
{
    if (n && fwrite(d, 1, n, w->f) != n)
        return LOOM_ERROR(w->ctx, LOOM_ERR_IO, "%s: cannot write spill file: %s", w->run.path,
                          strerror(errno));
    w->bytes += n;
    return LOOM_OK;
}

loom_status_t loom_run_put(loom_run_writer_t *w, const void *k, size_t klen, const void *v,
                           size_t vlen)
{
    unsigned char hdr[LOOM_RECORD_OVERHEAD];
    unsigned char *p = loom_put_varint(hdr, klen);
    p = loom_put_varint(p, vlen);
    LOOM_TRY(write_bytes(w, hdr, (size_t)(p - hdr)));
    LOOM_TRY(write_bytes(w, k, klen));
    return write_bytes(w, v, vlen);
}

void loom_run_section(loom_run_writer_t *w, int p)
{
    while (w->section < p && w->section < w->run.nparts) {
        w->section++;
        w->run.off[w->section] = w->bytes;
    }
}

loom_status_t loom_run_finish(loom_run_writer_t *w, loom_run_t *run)
{
    loom_run_section(w, w->run.nparts);
    int bad = ferror(w->f);
    if (fclose(w->f) != 0) bad = 1;
    w->f = NULL;
    if (bad) {
        loom_status_t st = LOOM_ERROR(w->ctx, LOOM_ERR_IO, "%s: cannot write spill file: %s",
                                      w->run.path, strerror(errno));
        loom_run_abort(w);
        return st;
    }
    *run = w->run;
    memset(&w->run, 0, sizeof w->run);
    return LOOM_OK;
}

void loom_run_abort(loom_run_writer_t *w)
{
    if (w->f) fclose(w->f);
    w->f = NULL;
    if (w->run.path) unlink(w->run.path);
    free(w->run.path);
    free(w->run.off);
    memset(&w->run, 0, sizeof w->run);
}

void loom_run_free(loom_run_t *r)
{
    if (r->path) unlink(r->path);
    free(r->path);
    free(r->off);
    memset(r, 0, sizeof *r);
}

loom_status_t loom_spill_sweep(loom_ctx_t *ctx, const char *dir)
{
    const char *host = loom_hostname(ctx);
    size_t hl = strlen(host);
    long long removed = 0;
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d))) {
            const char *s = de->d_name;
            if (strncmp(s, "loom-", 5) != 0 || strncmp(s + 5, host, hl) != 0 || s[5 + hl] != '-')
                continue;
            char *end = NULL;
            long long pid = strtoll(s + 6 + hl, &end, 10);
            if (!end || *end != '-' || pid == (long long)getpid()) continue;
            if (loom_pid_alive_here(ctx, host, pid) != 0) continue;
            size_t n = strlen(dir) + strlen(s) + 2;
            char *path = malloc(n);
            if (!path) continue;
            snprintf(path, n, "%s/%s", dir, s);
            if (loom_remove_tree(path)) removed++;
            free(path);
        }
        closedir(d);
    }
    long long total = removed;
    int e = MPI_Reduce(&removed, &total, 1, MPI_LONG_LONG, MPI_SUM, 0, loom_comm(ctx));
    if (e != MPI_SUCCESS) return loom_error_mpi(ctx, e, "MPI_Reduce", __FILE__, __LINE__);
    if (total > 0)
        loom_log(ctx, LOOM_LOG_WARN,
                 "removed %lld spill file(s) in %s left by processes on this host that are gone",
                 total, dir);
    return LOOM_OK;
}

/* ------------------------------------------------------------------ readers */

void loom_reader_mem(loom_reader_t *rd, const void *data, size_t len)
{
    memset(rd, 0, sizeof *rd);
    rd->kind = LOOM_RD_MEM;
    rd->p = data;
    rd->end = rd->p + len;
}

void loom_reader_refs(loom_reader_t *rd, const loom_kvref_t *r, size_t n)
{
    memset(rd, 0, sizeof *rd);
    rd->kind = LOOM_RD_REFS;
    rd->r = r;
    rd->rend = r + n;
}

loom_status_t loom_reader_file(loom_ctx_t *ctx, loom_reader_t *rd, const char *path, uint64_t off,
                               uint64_t len)
{
    memset(rd, 0, sizeof *rd);
    rd->kind = LOOM_RD_FILE;
    rd->path = path;
    rd->remaining = len;
    rd->f = fopen(path, "rb");
    if (!rd->f)
        return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot open spill file: %s", path,
                          strerror(errno));
    setvbuf(rd->f, NULL, _IOFBF, 1 << 16);
    if (fseeko(rd->f, (off_t)off, SEEK_SET) != 0)
        return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot seek: %s", path, strerror(errno));
    return LOOM_OK;
}

static loom_status_t file_varint(loom_ctx_t *ctx, loom_reader_t *rd, uint64_t *v)
{
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        int c = rd->remaining ? getc(rd->f) : EOF;
        if (c == EOF) break;
        rd->remaining--;
        x |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *v = x;
            return LOOM_OK;
        }
    }
    return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: spill file is truncated", rd->path);
}

loom_status_t loom_reader_next(loom_ctx_t *ctx, loom_reader_t *rd)
{
    rd->valid = 0;
    switch (rd->kind) {
    case LOOM_RD_MEM: {
        if (rd->p >= rd->end) return LOOM_OK;
        uint64_t kl = 0, vl = 0;
        const unsigned char *p = loom_get_varint(rd->p, rd->end, &kl);
        if (p) p = loom_get_varint(p, rd->end, &vl);
        if (!p || (uint64_t)(rd->end - p) < kl || (uint64_t)(rd->end - p) - kl < vl)
            return LOOM_ERROR(ctx, LOOM_ERR_INTERNAL, "corrupt record in a shuffle buffer");
        rd->key = p;
        rd->klen = kl;
        rd->val = p + kl;
        rd->vlen = vl;
        rd->p = p + kl + vl;
        rd->valid = 1;
        return LOOM_OK;
    }
    case LOOM_RD_REFS:
        if (rd->r >= rd->rend) return LOOM_OK;
        rd->key = rd->r->key;
        rd->klen = rd->r->klen;
        rd->val = rd->r->val;
        rd->vlen = rd->r->vlen;
        rd->r++;
        rd->valid = 1;
        return LOOM_OK;
    case LOOM_RD_FILE: {
        if (!rd->remaining) return LOOM_OK;
        uint64_t kl = 0, vl = 0;
        LOOM_TRY(file_varint(ctx, rd, &kl));
        LOOM_TRY(file_varint(ctx, rd, &vl));
        if (kl > rd->remaining || vl > rd->remaining - kl)
            return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: spill file is truncated", rd->path);
        rd->rec.len = 0;
        LOOM_TRY(loom_buf_reserve(ctx, &rd->rec, kl + vl));
        if (kl + vl && fread(rd->rec.data, 1, kl + vl, rd->f) != kl + vl)
            return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot read spill file", rd->path);
        rd->remaining -= kl + vl;
        rd->key = rd->rec.data;
        rd->klen = kl;
        rd->val = rd->rec.data + kl;
        rd->vlen = vl;
        rd->valid = 1;
        return LOOM_OK;
    }
    }
    return LOOM_OK;
}

void loom_reader_close(loom_reader_t *rd)
{
    if (rd->f) fclose(rd->f);
    rd->f = NULL;
    loom_buf_free(&rd->rec);
    rd->valid = 0;
}

/* ------------------------------------------------------------------ merge */

static int reader_less(const loom_merge_t *m, const loom_reader_t *a, const loom_reader_t *b)
{
    int c = loom_sort_cmp_bytes(a->key, a->klen, b->key, b->klen);
    if (c == 0 && m->by_value) c = loom_sort_cmp_bytes(a->val, a->vlen, b->val, b->vlen);
    return c < 0;
}

static void sift_down(loom_merge_t *m, int i)
{
    for (;;) {
        int l = 2 * i + 1, r = l + 1, s = i;
        if (l < m->hn && reader_less(m, m->rd[m->heap[l]], m->rd[m->heap[s]])) s = l;
        if (r < m->hn && reader_less(m, m->rd[m->heap[r]], m->rd[m->heap[s]])) s = r;
        if (s == i) return;
        int t = m->heap[i];
        m->heap[i] = m->heap[s];
        m->heap[s] = t;
        i = s;
    }
}

loom_status_t loom_merge_init(loom_ctx_t *ctx, loom_merge_t *m, loom_reader_t **rd, int n,
                              int by_value)
{
    memset(m, 0, sizeof *m);
    m->rd = rd;
    m->n = n;
    m->by_value = by_value;
    LOOM_ALLOC(ctx, m->heap, n, "merge heap");
    for (int i = 0; i < n; i++)
        if (rd[i]->valid) m->heap[m->hn++] = i;
    for (int i = m->hn / 2 - 1; i >= 0; i--)
        sift_down(m, i);
    return LOOM_OK;
}

loom_status_t loom_merge_pop(loom_ctx_t *ctx, loom_merge_t *m)
{
    if (!m->hn) return LOOM_OK;
    loom_reader_t *top = m->rd[m->heap[0]];
    LOOM_TRY(loom_reader_next(ctx, top));
    if (!top->valid) m->heap[0] = m->heap[--m->hn];
    if (m->hn) sift_down(m, 0);
    return LOOM_OK;
}

void loom_merge_free(loom_merge_t *m)
{
    free(m->heap);
    m->heap = NULL;
    m->hn = m->n = 0;
}

/* ------------------------------------------------------------------ shared scratch directories */

struct loom_scratch {
    MPI_Comm comm;
    int job_comm;         /* comm was the job's: a recovery may have replaced it since */
    loom_spill_dir_t dir; /* rank 0 owns it */
    char *path;
};

loom_status_t loom_scratch_begin(loom_ctx_t *ctx, MPI_Comm comm, const char *base, const char *tag,
                                 loom_scratch_t **out)
{
    *out = NULL;
    int rank = 0;
    LOOM_MPI(ctx, MPI_Comm_rank(comm, &rank));
    if (!base || !*base) base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    loom_scratch_t *s = calloc(1, sizeof *s);
    loom_status_t st = s ? LOOM_OK : LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    if (s) s->dir.temp = -1;
    if (st == LOOM_OK && rank == 0) st = loom_spill_dir_create(ctx, base, tag, &s->dir);
    st = loom_agree(ctx, comm, st);
    unsigned long long len = st == LOOM_OK && rank == 0 ? strlen(s->dir.path) : 0;
    if (st == LOOM_OK) LOOM_MPI_KEEP(ctx, st, MPI_Bcast(&len, 1, MPI_UNSIGNED_LONG_LONG, 0, comm));
    if (st == LOOM_OK) {
        s->path = rank == 0 ? strdup(s->dir.path) : calloc(len + 1, 1);
        if (!s->path) st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
        st = loom_agree(ctx, comm, st);
    }
    if (st == LOOM_OK) LOOM_MPI_KEEP(ctx, st, MPI_Bcast(s->path, (int)len + 1, MPI_CHAR, 0, comm));
    if (st != LOOM_OK) {
        if (s) {
            loom_spill_dir_remove(ctx, &s->dir);
            free(s->path);
            free(s);
        }
        return st;
    }
    s->comm = comm;
    s->job_comm = comm == loom_comm(ctx);
    *out = s;
    return LOOM_OK;
}

const char *loom_scratch_path(const loom_scratch_t *s)
{
    return s ? s->path : NULL;
}

loom_status_t loom_scratch_end(loom_ctx_t *ctx, loom_scratch_t **ps)
{
    if (!ps || !*ps) return LOOM_OK;
    loom_scratch_t *s = *ps;
    /* everyone has finished with it; if the barrier fails the job is ending
     * anyway, and the directory goes all the same */
    loom_status_t st = LOOM_OK;
    LOOM_MPI_KEEP(ctx, st, MPI_Barrier(s->job_comm ? loom_comm(ctx) : s->comm));
    loom_spill_dir_remove(ctx, &s->dir);
    free(s->path);
    free(s);
    *ps = NULL;
    return st;
}
