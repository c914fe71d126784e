/* Text-file helpers: line-aligned byte ranges with global line numbers, and
 * ordered parallel text output at exclusive-scan offsets. */
#include "io/textsplit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* How much of a file the aligner reads at a time looking for a newline. */
#define ALIGN_BLOCK 65536
/* Bytes each rank formats per round of ordered output. */
#define WRITE_ROUND_BYTES ((size_t)8 << 20)

static loom_status_t pread_full(loom_ctx_t *ctx, const char *path, int fd, char *buf, size_t n,
                                uint64_t off, size_t *got)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = pread(fd, buf + done, n - done, (off_t)(off + done));
        if (r < 0) {
            if (errno == EINTR) continue;
            return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: read failed at byte %llu: %s", path,
                              (unsigned long long)(off + done), strerror(errno));
        }
        if (r == 0) break;
        done += (size_t)r;
    }
    *got = done;
    return LOOM_OK;
}

loom_status_t loom_text_align(loom_ctx_t *ctx, const char *path, int fd, uint64_t lo, uint64_t hi,
                              uint64_t nominal, uint64_t *aligned)
{
    if (nominal <= lo) {
        *aligned = lo;
        return LOOM_OK;
    }
    if (nominal >= hi) {
        *aligned = hi;
        return LOOM_OK;
    }
    char buf[ALIGN_BLOCK];
    /* Position p starts a line when byte p-1 is '\n', so scan from nominal-1. */
    uint64_t pos = nominal - 1;
    while (pos < hi) {
        size_t want = (size_t)((hi - pos) < ALIGN_BLOCK ? (hi - pos) : ALIGN_BLOCK), got = 0;
        LOOM_TRY(pread_full(ctx, path, fd, buf, want, pos, &got));
        if (got == 0) break; /* the file shrank under us: treat the rest as one line */
        const char *nl = memchr(buf, '\n', got);
        if (nl) {
            uint64_t a = pos + (uint64_t)(nl - buf) + 1;
            *aligned = a < hi ? a : hi;
            return LOOM_OK;
        }
        pos += got;
    }
    *aligned = hi;
    return LOOM_OK;
}

loom_status_t loom_text_read_range(loom_ctx_t *ctx, const char *path, int fd, uint64_t begin,
                                   uint64_t end, char **data)
{
    *data = NULL;
    if (end <= begin) return LOOM_OK;
    size_t n = (size_t)(end - begin), got = 0;
    char *buf = malloc(n + 1);
    if (!buf)
        return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "%s: out of memory reading %zu bytes", path, n);
    loom_status_t st = pread_full(ctx, path, fd, buf, n, begin, &got);
    if (st == LOOM_OK && got != n)
        st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: file ended early (read %zu of %zu bytes at %llu)",
                        path, got, n, (unsigned long long)begin);
    if (st != LOOM_OK) {
        free(buf);
        return st;
    }
    buf[n] = '\0';
    *data = buf;
    return LOOM_OK;
}

/* Nominal cut k of nparts over [lo, hi), without overflowing 64 bits. */
static uint64_t nominal_cut(uint64_t lo, uint64_t hi, int k, int nparts)
{
    uint64_t span = hi - lo, q = span / (uint64_t)nparts, r = span % (uint64_t)nparts;
    return lo + q * (uint64_t)k + r * (uint64_t)k / (uint64_t)nparts;
}

static loom_status_t read_part(loom_ctx_t *ctx, const char *path, uint64_t lo, uint64_t hi,
                               int part, int nparts, loom_text_chunk_t *chunk)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (hi == LOOM_TEXT_TO_END) {
        struct stat sb;
        if (fstat(fd, &sb) != 0) {
            close(fd);
            return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
        }
        hi = (uint64_t)sb.st_size;
    }
    if (hi <= lo) {
        close(fd);
        return LOOM_OK;
    }
    uint64_t b = 0, e = 0;
    loom_status_t st =
        loom_text_align(ctx, path, fd, lo, hi, nominal_cut(lo, hi, part, nparts), &b);
    if (st == LOOM_OK)
        st = loom_text_align(ctx, path, fd, lo, hi, nominal_cut(lo, hi, part + 1, nparts), &e);
    if (st == LOOM_OK && e < b) e = b;
    if (st == LOOM_OK) st = loom_text_read_range(ctx, path, fd, b, e, &chunk->data);
    close(fd);
    if (st != LOOM_OK) return st;
    chunk->begin = b;
    chunk->end = e;
    chunk->len = (size_t)(e - b);
    return LOOM_OK;
}

loom_status_t loom_text_read_split(loom_ctx_t *ctx, MPI_Comm comm, const char *path, uint64_t lo,
                                   uint64_t hi, uint64_t lo_line, int part, int nparts,
                                   loom_text_chunk_t *chunk)
{
    memset(chunk, 0, sizeof *chunk);
    loom_status_t st = LOOM_OK;
    if (part >= 0 && part < nparts && hi > lo)
        st = read_part(ctx, path, lo, hi, part, nparts, chunk);
    uint64_t mine = st == LOOM_OK ? loom_text_count_lines(chunk->data, chunk->len) : 0;
    uint64_t before = 0;
    int rank = 0;
    MPI_Comm_rank(comm, &rank);
    int e = MPI_Exscan(&mine, &before, 1, MPI_UINT64_T, MPI_SUM, comm);
    if (e != MPI_SUCCESS && st == LOOM_OK)
        st = loom_error_mpi(ctx, e, "MPI_Exscan", __FILE__, __LINE__);
    if (rank == 0) before = 0; /* MPI leaves rank 0's result undefined */
    chunk->first_line = lo_line + before;
    st = loom_agree(ctx, comm, st);
    if (st != LOOM_OK) loom_text_chunk_free(chunk);
    return st;
}

void loom_text_chunk_free(loom_text_chunk_t *chunk)
{
    if (!chunk) return;
    free(chunk->data);
    memset(chunk, 0, sizeof *chunk);
}

/* Pass 1: this rank's text size. Fills the buffer at least once; when the
 * whole text fits in that first fill it stays in buf (*kept = 1) and need not
 * be formatted again. */
static loom_status_t measure(loom_ctx_t *ctx, char *buf, loom_text_fill_fn fill, void *arg,
                             uint64_t *total, size_t *first_len, int *kept)
{
    int done = 0, first = 1;
    *total = 0;
    *kept = 0;
    while (!done) {
        size_t len = 0;
        LOOM_TRY(fill(ctx, arg, buf, WRITE_ROUND_BYTES, &len, &done));
        if (first) *first_len = len;
        *kept = first && done;
        first = 0;
        *total += len;
    }
    return LOOM_OK;
}

static loom_status_t write_error(loom_ctx_t *ctx, const char *path, const char *what, int e)
{
    char msg[MPI_MAX_ERROR_STRING];
    int mlen = 0;
    MPI_Error_string(e, msg, &mlen);
    return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: %s: %s", path, what, msg);
}

loom_status_t loom_text_write_ordered(loom_ctx_t *ctx, MPI_Comm comm, const char *path,
                                      loom_text_fill_fn fill, loom_text_rewind_fn rewind, void *arg)
{
    loom_status_t st = LOOM_OK;
    char *buf = malloc(WRITE_ROUND_BYTES);
    if (!buf) st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "%s: out of memory for the output buffer", path);
    /* Each rank's text must be one contiguous range of the file, so its size
     * is known before anything is written: the offsets come from a scan. */
    uint64_t total = 0, base = 0;
    size_t first_len = 0;
    int kept = 0, rank = 0;
    if (st == LOOM_OK) st = measure(ctx, buf, fill, arg, &total, &first_len, &kept);
    if (st == LOOM_OK && !kept) st = rewind(ctx, arg);
    st = loom_agree(ctx, comm, st);
    if (st != LOOM_OK) {
        free(buf);
        return st;
    }
    MPI_Comm_rank(comm, &rank);
    int xe = MPI_Exscan(&total, &base, 1, MPI_UINT64_T, MPI_SUM, comm);
    if (xe != MPI_SUCCESS) {
        free(buf);
        return loom_error_mpi(ctx, xe, "MPI_Exscan", __FILE__, __LINE__);
    }
    if (rank == 0) base = 0;
    MPI_File fh;
    int e = MPI_File_open(comm, path, MPI_MODE_CREATE | MPI_MODE_WRONLY, MPI_INFO_NULL, &fh);
    if (e != MPI_SUCCESS) {
        st = write_error(ctx, path, "cannot create", e);
        free(buf);
        return loom_agree(ctx, comm, st);
    }
    e = MPI_File_set_size(fh, 0);
    if (e != MPI_SUCCESS) st = write_error(ctx, path, "cannot truncate", e);
    uint64_t written = 0;
    int done = 0;
    for (;;) {
        size_t len = 0;
        if (!done && st == LOOM_OK) {
            if (kept) {
                len = first_len;
                done = 1;
            } else {
                st = fill(ctx, arg, buf, WRITE_ROUND_BYTES, &len, &done);
            }
            if (st != LOOM_OK || written + len > total) {
                if (st == LOOM_OK)
                    st =
                        LOOM_ERROR(ctx, LOOM_ERR_INTERNAL, "%s: text changed between passes", path);
                len = 0;
            }
        }
        /* Every rank takes part in every round's collective write, with
         * nothing to write once its text is out. */
        uint64_t mine[2] = {st != LOOM_OK, !done}, all[2] = {0, 0};
        e = MPI_Allreduce(mine, all, 2, MPI_UINT64_T, MPI_SUM, comm);
        if (e != MPI_SUCCESS) {
            st = loom_error_mpi(ctx, e, "MPI_Allreduce", __FILE__, __LINE__);
            break;
        }
        if (all[0]) break;
        MPI_Status mst;
        e = MPI_File_write_at_all(fh, (MPI_Offset)(base + written), buf, (int)len, MPI_BYTE, &mst);
        if (e != MPI_SUCCESS && st == LOOM_OK) st = write_error(ctx, path, "write failed", e);
        written += len;
        if (!all[1]) break;
    }
    e = MPI_File_close(&fh);
    if (e != MPI_SUCCESS && st == LOOM_OK) st = write_error(ctx, path, "closing failed", e);
    free(buf);
    return loom_agree(ctx, comm, st);
}
