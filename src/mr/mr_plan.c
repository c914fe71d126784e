/* MapReduce planning: cut record-aligned map tasks, sample range
 * bounds. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/memory.h"
#include "kernels/sort.h"
#include "io/inputs.h"
#include "mr/mr_internal.h"

/* Element inputs (HDF5 datasets, generators) are kept as given: planned later. */
static int mr_input_verbatim(const char *spec)
{
    return mr_input_kind(spec) != MR_IN_TEXT;
}

/* The end of the task starting at `start` with nominal end `nominal`: just past
 * the first '\n' at or after nominal - 1 (so the task owns whole lines). */
static loom_status_t align_end(mr_engine_t *eng, const char *path, int fd, uint64_t size,
                               uint64_t nominal, uint64_t *end)
{
    char buf[65536];
    uint64_t pos = nominal - 1;
    while (pos < size) {
        ssize_t n = pread(fd, buf, sizeof buf, (off_t)pos);
        if (n <= 0)
            return LOOM_ERROR(eng->ctx, LOOM_ERR_IO, "%s: cannot read: %s", path,
                              n < 0 ? strerror(errno) : "file shrank");
        const char *nl = memchr(buf, '\n', (size_t)n);
        if (nl) {
            *end = pos + (uint64_t)(nl - buf) + 1;
            return LOOM_OK;
        }
        pos += (uint64_t)n;
        if (pos - nominal > eng->max_record)
            return LOOM_ERROR(eng->ctx, LOOM_ERR_FORMAT,
                              "%s: a line near byte %llu is longer than --max-record (%zu bytes)",
                              path, (unsigned long long)nominal, eng->max_record);
    }
    *end = size;
    return LOOM_OK;
}

static loom_status_t add_task(mr_engine_t *eng, size_t *cap, uint32_t file, uint64_t off,
                              uint64_t len)
{
    if ((size_t)eng->ntasks == *cap) {
        size_t c = *cap ? *cap * 2 : 64;
        mr_task_t *t = realloc(eng->tasks, c * sizeof *t);
        if (!t) return LOOM_ERROR(eng->ctx, LOOM_ERR_NOMEM, "out of memory: task list");
        eng->tasks = t;
        *cap = c;
    }
    eng->tasks[eng->ntasks++] = (mr_task_t){.file = file, .off = off, .len = len, .line0 = 0};
    return LOOM_OK;
}

/* First line number of every task of `file` (tasks of a file are consecutive). */
static loom_status_t count_lines(mr_engine_t *eng, uint32_t file, int64_t first, int64_t last)
{
    const char *path = eng->files[file];
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return LOOM_ERROR(eng->ctx, LOOM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t bsz = 1 << 20;
    char *buf = malloc(bsz);
    loom_status_t st = buf ? LOOM_OK : LOOM_ERROR(eng->ctx, LOOM_ERR_NOMEM, "out of memory");
    uint64_t line = 1;
    for (int64_t t = first; t < last && st == LOOM_OK; t++) {
        mr_task_t *tk = &eng->tasks[t];
        tk->line0 = line;
        for (uint64_t pos = tk->off; pos < tk->off + tk->len;) {
            size_t want = (size_t)(tk->off + tk->len - pos < bsz ? tk->off + tk->len - pos : bsz);
            ssize_t n = pread(fd, buf, want, (off_t)pos);
            if (n <= 0) {
                st = LOOM_ERROR(eng->ctx, LOOM_ERR_IO, "%s: cannot read", path);
                break;
            }
            for (const char *p = buf, *e = buf + n; (p = memchr(p, '\n', (size_t)(e - p))); p++)
                line++;
            pos += (uint64_t)n;
        }
    }
    free(buf);
    close(fd);
    return st;
}

/* Refuse, before building it, a task table the master cannot hold: an element
 * input of n records in tasks of `per` adds ceil(n / per) tasks, and the
 * master keeps each task's plan entry, its state and a requeue slot per rank. */
static loom_status_t check_task_table(mr_engine_t *eng, const char *path, uint64_t n, uint64_t per)
{
    if (n > MR_MAX_ELEMENTS)
        return LOOM_ERROR(eng->ctx, LOOM_ERR_FORMAT,
                          "%s: %llu elements are too many (at most 2^60 = %llu)", path,
                          (unsigned long long)n, (unsigned long long)MR_MAX_ELEMENTS);
    uint64_t tasks = (uint64_t)eng->ntasks + n / per + (n % per != 0);
    uint64_t per_task = sizeof(mr_task_t) + 64 + 8 * ((uint64_t)loom_size(eng->ctx) + 1);
    uint64_t bytes = loom_mem_mul(tasks, per_task);
    if (loom_mem_fits(bytes)) return LOOM_OK;
    char nb[32], hb[32];
    return LOOM_ERROR(eng->ctx, LOOM_ERR_NOMEM,
                      "%s: %llu records in map tasks of %llu (--split-size / 8) make %llu tasks, "
                      "whose table needs %s, more than this machine's memory (%s); give a larger "
                      "--split-size",
                      path, (unsigned long long)n, (unsigned long long)per,
                      (unsigned long long)tasks, loom_mem_human(bytes, nb, sizeof nb),
                      loom_mem_human(loom_mem_total(), hb, sizeof hb));
}

static loom_status_t plan_master(mr_engine_t *eng)
{
    loom_ctx_t *ctx = eng->ctx;
    loom_strlist_t files = {0};
    loom_status_t st = LOOM_OK;
    if (eng->job->ninputs <= 0 || !eng->job->inputs)
        st = LOOM_ERROR(ctx, LOOM_ERR_USAGE, "%s: no input given",
                        eng->job->name ? eng->job->name : "job");
    else
        st =
            loom_inputs_expand(ctx, eng->job->inputs, eng->job->ninputs, mr_input_verbatim, &files);
    if (st != LOOM_OK) {
        loom_strlist_free(&files);
        return st;
    }
    eng->files = files.v;
    eng->nfiles = (uint32_t)files.n;
    LOOM_ALLOC(ctx, eng->file_size, eng->nfiles, "file sizes");
    size_t cap = 0;
    for (uint32_t f = 0; f < eng->nfiles; f++) {
        const char *path = eng->files[f];
        loom_chunks_lines_t *lf = mr_chunks_lines(eng, path);
        if (lf) {
            /* a store file: one task per split (the lines that start in a chunk) */
            if (eng->job->line_numbers)
                return LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                                  "%s: line numbers are not available for store inputs", path);
            eng->file_size[f] = loom_chunks_lines_size(lf);
            eng->total_bytes += eng->file_size[f];
            for (uint64_t i = 0; i < loom_chunks_lines_count(lf); i++) {
                uint64_t off, len;
                loom_chunks_lines_range(lf, i, &off, &len);
                if (len) LOOM_TRY(add_task(eng, &cap, f, off, len));
            }
            continue;
        }
        if (mr_input_elements(path)) {
            /* element ranges of about split_size bytes at 8 bytes an element */
            uint64_t n, per = eng->split_size / 8 ? eng->split_size / 8 : 1;
            LOOM_TRY(mr_input_count(ctx, path, &n));
            LOOM_TRY(check_task_table(eng, path, n, per));
            eng->file_size[f] = n * 8;
            eng->total_bytes += n * 8;
            for (uint64_t s = 0; s < n; s += per) {
                LOOM_TRY(add_task(eng, &cap, f, s, n - s < per ? n - s : per));
                if (eng->job->line_numbers) eng->tasks[eng->ntasks - 1].line0 = s + 1;
            }
            continue;
        }
        int fd = open(path, O_RDONLY);
        struct stat sb;
        if (fd < 0 || fstat(fd, &sb) != 0) {
            if (fd >= 0) close(fd);
            return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        }
        uint64_t size = (uint64_t)sb.st_size, start = 0;
        int64_t first = eng->ntasks;
        eng->file_size[f] = size;
        eng->total_bytes += size;
        while (start < size && st == LOOM_OK) {
            uint64_t end = size;
            if (size - start > eng->split_size)
                st = align_end(eng, path, fd, size, start + eng->split_size, &end);
            if (st == LOOM_OK) st = add_task(eng, &cap, f, start, end - start);
            start = end;
        }
        close(fd);
        LOOM_TRY(st);
        if (eng->job->line_numbers) LOOM_TRY(count_lines(eng, f, first, eng->ntasks));
    }
    return LOOM_OK;
}

/* Rank 0 packs the plan; everyone else unpacks it. */
static loom_status_t bcast_plan(mr_engine_t *eng)
{
    loom_ctx_t *ctx = eng->ctx;
    MPI_Comm comm = loom_comm(ctx);
    loom_buf_t b = {0};
    loom_status_t st = LOOM_OK;
    uint64_t hdr[2] = {eng->nfiles, (uint64_t)eng->ntasks};
    if (loom_is_master(ctx)) {
        for (uint32_t f = 0; f < eng->nfiles && st == LOOM_OK; f++) {
            st = loom_buf_append(ctx, &b, eng->files[f], strlen(eng->files[f]) + 1);
            if (st == LOOM_OK) st = loom_buf_append(ctx, &b, &eng->file_size[f], 8);
        }
        if (st == LOOM_OK)
            st = loom_buf_append(ctx, &b, eng->tasks, (size_t)eng->ntasks * sizeof(mr_task_t));
    }
    st = loom_agree(ctx, comm, st);
    if (st != LOOM_OK) {
        loom_buf_free(&b);
        return st;
    }
    uint64_t len = b.len;
    uint64_t msg[3] = {hdr[0], hdr[1], len};
    LOOM_MPI(ctx, MPI_Bcast(msg, 3, MPI_UINT64_T, 0, comm));
    if (!loom_is_master(ctx)) {
        st = loom_buf_reserve(ctx, &b, msg[2]);
        b.len = msg[2];
    }
    st = loom_agree(ctx, comm, st);
    if (st != LOOM_OK) {
        loom_buf_free(&b);
        return st;
    }
    for (uint64_t off = 0; off < msg[2];) {
        int n = (int)(msg[2] - off > (1u << 30) ? (1u << 30) : msg[2] - off);
        LOOM_MPI(ctx, MPI_Bcast(b.data + off, n, MPI_BYTE, 0, comm));
        off += (uint64_t)n;
    }
    if (!loom_is_master(ctx)) {
        eng->nfiles = (uint32_t)msg[0];
        eng->ntasks = (int64_t)msg[1];
        eng->files = calloc(eng->nfiles ? eng->nfiles : 1, sizeof *eng->files);
        eng->file_size = calloc(eng->nfiles ? eng->nfiles : 1, sizeof *eng->file_size);
        eng->tasks = malloc((size_t)(eng->ntasks ? eng->ntasks : 1) * sizeof *eng->tasks);
        if (!eng->files || !eng->file_size || !eng->tasks)
            st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory: plan");
        const unsigned char *p = b.data;
        for (uint32_t f = 0; f < eng->nfiles && st == LOOM_OK; f++) {
            eng->files[f] = strdup((const char *)p);
            p += strlen((const char *)p) + 1;
            memcpy(&eng->file_size[f], p, 8);
            p += 8;
            eng->total_bytes += eng->file_size[f];
        }
        if (st == LOOM_OK) memcpy(eng->tasks, p, (size_t)eng->ntasks * sizeof(mr_task_t));
    }
    loom_buf_free(&b);
    return loom_agree(ctx, comm, st);
}

loom_status_t mr_plan(mr_engine_t *eng)
{
    loom_status_t st = LOOM_OK;
    if (loom_is_master(eng->ctx)) st = plan_master(eng);
    st = loom_agree(eng->ctx, loom_comm(eng->ctx), st);
    if (st != LOOM_OK) return st;
    return bcast_plan(eng);
}

void mr_plan_free(mr_engine_t *eng)
{
    for (uint32_t f = 0; eng->files && f < eng->nfiles; f++)
        free(eng->files[f]);
    free(eng->files);
    free(eng->file_size);
    free(eng->tasks);
    loom_ranges_free(&eng->ranges);
    eng->files = NULL;
    eng->tasks = NULL;
}

/* ------------------------------------------------------------------ running a map task */

/* Fill b up to `piece` bytes, or up to its capacity when it already holds
 * that much (a long line), or to the task's end, from fd at file offset `at`. */
static loom_status_t read_more(mr_engine_t *eng, const char *path, int fd, uint64_t at,
                               uint64_t left, size_t piece, loom_buf_t *b)
{
    size_t room = b->len < piece && b->cap > piece ? piece : b->cap;
    size_t want = room - b->len < left ? room - b->len : (size_t)left;
    for (size_t got = 0; got < want;) {
        ssize_t n = pread(fd, b->data + b->len, want - got, (off_t)(at + got));
        if (n <= 0)
            return LOOM_ERROR(eng->ctx, LOOM_ERR_IO, "%s: cannot read: %s", path,
                              n < 0 ? strerror(errno) : "file shrank while the job ran");
        got += (size_t)n;
        b->len += (size_t)n;
    }
    return LOOM_OK;
}

loom_status_t mr_read_task(mr_engine_t *eng, int64_t t, loom_buf_t *inbuf)
{
    loom_ctx_t *ctx = eng->ctx;
    const mr_task_t *tk = &eng->tasks[t];
    const char *path = eng->files[tk->file];
    if (mr_input_kind(path) == MR_IN_STORE) return mr_chunks_read(eng, t, inbuf);
    if (mr_input_elements(path)) return mr_input_read(ctx, path, tk->off, tk->len, inbuf);
    inbuf->len = 0;
    LOOM_TRY(loom_buf_reserve(ctx, inbuf, tk->len + 1));
    int fd = open(path, O_RDONLY);
    if (fd < 0) return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    loom_status_t st = read_more(eng, path, fd, tk->off, tk->len, inbuf->cap, inbuf);
    close(fd);
    return st;
}

static loom_status_t long_line(mr_engine_t *eng, const char *path, uint64_t line, uint64_t at)
{
    if (line)
        return LOOM_ERROR(eng->ctx, LOOM_ERR_FORMAT,
                          "%s:%llu: line longer than --max-record (%zu bytes)", path,
                          (unsigned long long)line, eng->max_record);
    return LOOM_ERROR(eng->ctx, LOOM_ERR_FORMAT,
                      "%s: the line at byte %llu is longer than --max-record (%zu bytes)", path,
                      (unsigned long long)at, eng->max_record);
}

/* Count the lines of a text block and check their lengths (block maps). */
static loom_status_t check_lines(mr_engine_t *eng, const char *path, const char *data, size_t len,
                                 uint64_t off, uint64_t line0, int64_t *records)
{
    const char *p = data, *end = data + len;
    int64_t n = 0;
    if (len <= eng->max_record) {
        /* no line can be too long: only count them (a vectorised loop) */
        for (size_t i = 0; i < len; i++)
            n += data[i] == '\n';
        *records = n + (len && data[len - 1] != '\n');
        return LOOM_OK;
    }
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        if ((size_t)(e - p) > eng->max_record)
            return long_line(eng, path, line0 ? line0 + (uint64_t)n : 0,
                             off + (uint64_t)(p - data));
        n++;
        p = e + 1;
    }
    *records = n;
    return LOOM_OK;
}

loom_status_t mr_map_records(mr_engine_t *eng, int64_t t, const char *data, size_t len,
                             uint64_t off, uint64_t line0, loom_mr_emit_t *em, int64_t *records)
{
    loom_ctx_t *ctx = eng->ctx;
    const mr_task_t *tk = &eng->tasks[t];
    const char *path = eng->files[tk->file];
    const char *p = data, *end = p + len;
    loom_mr_record_t rec = {.file_index = tk->file, .line = line0};
    int64_t n = 0;
    int elems = mr_input_elements(path); /* offset is the element index */
    if (eng->job->map_blocks && !elems) {
        LOOM_TRY(check_lines(eng, path, data, len, off, line0, records));
        if (!len) return LOOM_OK;
        rec.data = data;
        rec.len = len;
        rec.offset = off;
        return eng->job->map(ctx, &rec, em, eng->job->user);
    }
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        rec.data = p;
        rec.len = (size_t)(e - p);
        rec.offset = off + (elems ? (uint64_t)n : (uint64_t)(p - data));
        if (rec.len > eng->max_record) return long_line(eng, path, rec.line, rec.offset);
        LOOM_TRY(eng->job->map(ctx, &rec, em, eng->job->user));
        n++;
        if (rec.line) rec.line++;
        p = e + 1;
    }
    *records = n;
    return LOOM_OK;
}

loom_status_t mr_map_text_blocks(mr_engine_t *eng, int64_t t, loom_mr_emit_t *em, loom_buf_t *inbuf,
                                 int64_t *records)
{
    enum { PIECE = 1 << 20 };
    const mr_task_t *tk = &eng->tasks[t];
    const char *path = eng->files[tk->file];
    inbuf->len = 0;
    if (inbuf->cap < PIECE) LOOM_TRY(loom_buf_reserve(eng->ctx, inbuf, PIECE));
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return LOOM_ERROR(eng->ctx, LOOM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    loom_status_t st = LOOM_OK;
    uint64_t pos = 0, line = tk->line0; /* bytes of the task read; the next line's number */
    *records = 0;
    while (st == LOOM_OK && (pos < tk->len || inbuf->len)) {
        size_t had = inbuf->len;
        st = read_more(eng, path, fd, tk->off + pos, tk->len - pos, PIECE, inbuf);
        if (st != LOOM_OK) break;
        pos += inbuf->len - had;
        uint64_t at = tk->off + pos - inbuf->len; /* the file offset of inbuf->data[0] */
        size_t cut = inbuf->len;
        if (pos < tk->len) {
            const char *nl = memrchr(inbuf->data, '\n', inbuf->len);
            if (!nl) {
                /* a line longer than the buffer: longer than allowed, or grow */
                if (inbuf->len > eng->max_record) {
                    st = long_line(eng, path, line, at);
                    break;
                }
                st = loom_buf_reserve(eng->ctx, inbuf, inbuf->cap);
                continue;
            }
            cut = (size_t)(nl - (const char *)inbuf->data) + 1;
        }
        int64_t r = 0;
        st = mr_map_records(eng, t, (const char *)inbuf->data, cut, at, line, em, &r);
        *records += r;
        if (line) line += (uint64_t)r;
        memmove(inbuf->data, inbuf->data + cut, inbuf->len - cut);
        inbuf->len -= cut;
    }
    close(fd);
    return st;
}

loom_status_t mr_map_task(mr_engine_t *eng, int64_t t, loom_mr_emit_t *em, loom_buf_t *inbuf,
                          int64_t *records)
{
    LOOM_TRY(mr_read_task(eng, t, inbuf));
    const mr_task_t *tk = &eng->tasks[t];
    return mr_map_records(eng, t, (const char *)inbuf->data, inbuf->len, tk->off, tk->line0, em,
                          records);
}

/* ------------------------------------------------------------------ range bounds */

static loom_status_t sample_master(mr_engine_t *eng, loom_ranges_t *out)
{
    loom_ctx_t *ctx = eng->ctx;
    loom_buf_t keys = {0}, in = {0};
    loom_status_t st = LOOM_OK;
    int64_t want = eng->ntasks < 64 ? eng->ntasks : 64;
    loom_mr_emit_t em = {.kind = MR_EMIT_SAMPLE, .eng = eng, .sample = &keys};
    /* Sample at most 1 MiB of records from each of up to 64 evenly spaced tasks. */
    eng->sampling = 1;
    for (int64_t i = 0; i < want && st == LOOM_OK; i++) {
        int64_t t = i * eng->ntasks / want;
        mr_task_t saved = eng->tasks[t];
        if (mr_input_elements(eng->files[saved.file])) {
            if (eng->tasks[t].len > 65536) eng->tasks[t].len = 65536;
        } else if (mr_input_kind(eng->files[saved.file]) == MR_IN_STORE) {
            /* read as a split, then cut to whole lines in its first MiB */
            if (eng->tasks[t].len > (1u << 20)) eng->tasks[t].len = 1u << 20;
        } else if (eng->tasks[t].len > (1u << 20)) {
            /* shorten to whole lines within the first MiB, or skip */
            int fd = open(eng->files[saved.file], O_RDONLY);
            if (fd < 0) continue;
            char *b = malloc(1u << 20);
            ssize_t n = b ? pread(fd, b, 1u << 20, (off_t)saved.off) : -1;
            close(fd);
            char *nl = n > 0 ? memrchr(b, '\n', (size_t)n) : NULL;
            uint64_t cut = nl ? (uint64_t)(nl - b) + 1 : 0;
            free(b);
            if (!cut) continue;
            eng->tasks[t].len = cut;
        }
        int64_t recs;
        em.sample_max = 20000;
        em.count = 0;
        st = mr_map_task(eng, t, &em, &in, &recs);
        eng->tasks[t] = saved;
    }
    eng->sampling = 0;
    loom_buf_free(&in);
    /* Cut nparts - 1 bounds at even ranks of the sorted sample. */
    if (st == LOOM_OK) st = loom_ranges_from_sample(ctx, &keys, (uint32_t)eng->nparts, out);
    loom_buf_free(&keys);
    return st;
}

loom_status_t mr_sample_bounds(mr_engine_t *eng)
{
    loom_ctx_t *ctx = eng->ctx;
    MPI_Comm comm = loom_comm(ctx);
    loom_status_t st = LOOM_OK;
    if (loom_is_master(ctx)) st = sample_master(eng, &eng->ranges);
    st = loom_agree(ctx, comm, st);
    if (st != LOOM_OK) return st;
    /* With fewer samples than partitions the last partitions stay empty. */
    return loom_ranges_bcast(ctx, comm, 0, &eng->ranges);
}
