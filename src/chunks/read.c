/* Store files as engine input: line-aligned splits, one per chunk, that a holder of the chunk
 * reads from its own disk. A line that runs past its chunk's end is finished with bytes of the
 * next chunk that the holders sent to the master when the file was opened. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chunks/chunks_internal.h"

#define BLK LOOM_CHUNKS_BLOCK
#define NO_NEWLINE UINT64_MAX

typedef struct split {
    uint64_t off, len;               /* the split's bytes in the file */
    uint64_t id, version, chunk_len; /* its chunk */
    uint64_t skip;                   /* bytes at the chunk's start that finish the previous line */
    uint64_t head_off, head_len;     /* bytes of the next chunk that finish its last line */
    int32_t nholders, pad;
    int32_t holders[CH_MAX_REPL]; /* start ranks of the workers with a good replica */
} split_t;

struct loom_chunks_lines {
    uint64_t n, size;
    split_t *s;
    unsigned char *heads;
    uint64_t heads_len;
    int shared; /* every worker sees every holder's directory */
    int nnames;
    char (*names)[CH_NAME_MAX]; /* [start rank] -> holder name ("" for none) */
};

/* What a chunk's reader reports: its first line's length and its last byte. */
typedef struct edge {
    uint64_t chunk, head_len; /* NO_NEWLINE when no '\n' within the limit */
    uint64_t last;            /* the last byte, or 256 for an empty chunk */
} edge_t;

/* Read the first line of a chunk (up to `limit` bytes) and its last byte, checked. */
static loom_status_t read_edges(loom_chunks_t *fs, uint64_t id, uint64_t len, uint64_t limit,
                                int last, edge_t *e, loom_buf_t *head)
{
    ch_crcs_t c;
    int ok, fd = -1, bad = 0;
    char why[200] = "its CRC file is missing or damaged";
    LOOM_TRY(ch_crcs_load(fs, id, &c, &ok));
    if (ok && c.len >= len) fd = ch_open_data(fs, id);
    unsigned char *buf = malloc(BLK);
    loom_status_t st = buf ? LOOM_OK : LOOM_ERROR(fs->ctx, LOOM_ERR_NOMEM, "out of memory");
    if (st == LOOM_OK && fd < 0) bad = 1;
    e->head_len = NO_NEWLINE;
    for (uint64_t off = 0; st == LOOM_OK && !bad && off < len && off < limit + 1; off += BLK) {
        uint64_t n = len - off < BLK ? len - off : BLK;
        st = ch_read_checked(fs, fd, &c, id, off, n, buf, &bad, why, sizeof why);
        if (st != LOOM_OK || bad) break;
        unsigned char *nl = memchr(buf, '\n', n);
        uint64_t take = nl ? (uint64_t)(nl - buf) + 1 : n;
        if (off + take > limit + 1) break; /* longer than a record may be */
        st = loom_buf_append(fs->ctx, head, buf, take);
        if (nl) {
            e->head_len = off + take;
            break;
        }
    }
    /* the file's last line may have no newline: the end of the file ends it */
    if (st == LOOM_OK && !bad && last && e->head_len == NO_NEWLINE && head->len == len)
        e->head_len = len;
    if (st == LOOM_OK && !bad && len) {
        uint64_t lb = (len - 1) / BLK * BLK;
        st = ch_read_checked(fs, fd, &c, id, lb, len - lb, buf, &bad, why, sizeof why);
        e->last = buf[len - 1 - lb];
    } else {
        e->last = 256;
    }
    if (st == LOOM_OK && bad)
        st = LOOM_ERROR(fs->ctx, LOOM_ERR_IO,
                        "chunk %016" PRIx64 ": the replica on %s cannot be read (%s); loom fs get "
                        "or rebalance repairs it",
                        id, ch_holder_name(fs, loom_worker_index(fs->ctx)), why);
    free(buf);
    if (fd >= 0) close(fd);
    ch_crcs_free(&c);
    return st;
}

static int holder_dir(const loom_chunks_t *fs, const char *name, char *buf, size_t len)
{
    return snprintf(buf, len, "%s/holders/%s", fs->root, name) < (int)len;
}

/* Master: the splits from the edges the readers sent. */
static loom_status_t make_splits(loom_chunks_t *fs, const ch_entry_t *f, const loom_buf_t *all,
                                 size_t max_record, loom_chunks_lines_t *lf)
{
    loom_ctx_t *ctx = fs->ctx;
    uint64_t n = f->nchunks;
    edge_t *e = calloc(n ? n : 1, sizeof *e);
    uint64_t *hoff = calloc(n ? n : 1, sizeof *hoff);
    lf->s = calloc(n ? n : 1, sizeof *lf->s);
    lf->heads = malloc(all->len ? all->len : 1);
    if (!e || !hoff || !lf->s || !lf->heads) {
        free(e);
        free(hoff);
        return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    }
    /* the reports: an edge, then its head bytes (none when no newline was found) */
    for (size_t at = 0; at + sizeof(edge_t) <= all->len;) {
        edge_t x;
        memcpy(&x, all->data + at, sizeof x);
        at += sizeof x;
        uint64_t hl = x.head_len == NO_NEWLINE ? 0 : x.head_len;
        e[x.chunk] = x;
        hoff[x.chunk] = lf->heads_len;
        memcpy(lf->heads + lf->heads_len, all->data + at, hl);
        lf->heads_len += hl;
        at += hl;
    }
    loom_status_t st = LOOM_OK;
    uint64_t start = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t skip = 0;
        if (i > 0 && e[i - 1].last != '\n') {
            if (e[i].head_len == NO_NEWLINE) {
                st = LOOM_ERROR(ctx, LOOM_ERR_FORMAT,
                                "store:%s: a line runs through chunk %" PRIu64 " of %" PRIu64
                                " bytes; lines are read from the store only when shorter than a "
                                "chunk and than --max-record (%zu bytes)",
                                f->path, i, f->chunk_size, max_record);
                break;
            }
            skip = e[i].head_len;
        }
        lf->s[i].skip = skip;
        lf->s[i].off = start + skip;
        lf->s[i].id = f->chunks[i].id;
        lf->s[i].version = f->chunks[i].version;
        lf->s[i].chunk_len = f->chunks[i].len;
        if (i > 0) {
            split_t *p = &lf->s[i - 1];
            p->head_off = hoff[i];
            p->head_len = skip;
            p->len = p->chunk_len - p->skip + skip;
        }
        start += f->chunks[i].len;
    }
    if (n) lf->s[n - 1].len = lf->s[n - 1].chunk_len - lf->s[n - 1].skip;
    for (uint64_t i = 0; st == LOOM_OK && i < n; i++) {
        size_t a, b;
        ch_reps_of(fs, lf->s[i].id, &a, &b);
        for (size_t r = a; r < b && lf->s[i].nholders < CH_MAX_REPL; r++)
            if (ch_rep_good(&fs->reps[r], &f->chunks[i]))
                lf->s[i].holders[lf->s[i].nholders++] =
                    loom_start_rank(ctx, loom_worker_rank(ctx, fs->reps[r].holder));
        if (!lf->s[i].nholders)
            st =
                LOOM_ERROR(ctx, LOOM_ERR_IO,
                           "store:%s: chunk %" PRIu64 " has no good replica on the holders present",
                           f->path, i);
    }
    lf->n = n;
    lf->size = f->size;
    free(e);
    free(hoff);
    return st;
}

loom_status_t loom_chunks_lines_open(loom_chunks_t *fs, const char *path, size_t max_record,
                                     loom_chunks_lines_t **out)
{
    loom_ctx_t *ctx = fs->ctx;
    MPI_Comm comm = loom_comm(ctx);
    *out = NULL;
    loom_chunks_lines_t *lf = calloc(1, sizeof *lf);
    if (!lf) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    if (!max_record) max_record = 64u << 20;
    /* which holder reads each chunk's edges: [chunk, id, len, reader, last] */
    loom_buf_t plan = {0}, mine = {0}, all = {0};
    ch_entry_t *f = NULL;
    loom_status_t st = LOOM_OK;
    if (loom_is_master(ctx)) {
        st = ch_path_check(ctx, path);
        f = st == LOOM_OK ? ch_meta_find(&fs->meta, path) : NULL;
        if (st == LOOM_OK && (!f || f->is_dir))
            st = LOOM_ERROR(ctx, LOOM_ERR_USAGE, "store:%s: %s", path,
                            f ? "a directory, not a file" : "no such file in the store");
        uint64_t *load = calloc((size_t)fs->nholders + 1, sizeof *load);
        for (uint64_t i = 0; st == LOOM_OK && load && i < f->nchunks; i++) {
            size_t a, b;
            int best = -1;
            ch_reps_of(fs, f->chunks[i].id, &a, &b);
            for (size_t r = a; r < b; r++)
                if (ch_rep_good(&fs->reps[r], &f->chunks[i]) &&
                    (best < 0 || load[fs->reps[r].holder] < load[best]))
                    best = fs->reps[r].holder;
            if (best < 0) {
                st = LOOM_ERROR(ctx, LOOM_ERR_IO,
                                "store:%s: chunk %" PRIu64 " has no good replica on the holders "
                                "present (loom fs fsck names the missing ones)",
                                path, i);
                break;
            }
            load[best]++;
            uint64_t row[5] = {i, f->chunks[i].id, f->chunks[i].len, (uint64_t)best,
                               i + 1 == f->nchunks};
            st = loom_buf_append(ctx, &plan, row, sizeof row);
        }
        if (!load && st == LOOM_OK) st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
        free(load);
    }
    st = loom_agree(ctx, comm, st);
    if (st == LOOM_OK) st = ch_bcast_buf(fs, &plan);
    int me = loom_worker_index(ctx);
    for (size_t at = 0; st == LOOM_OK && at + 40 <= plan.len; at += 40) {
        uint64_t row[5];
        memcpy(row, plan.data + at, sizeof row);
        if ((int)row[3] != me) continue;
        edge_t e = {row[0], 0, 0};
        loom_buf_t head = {0};
        st = read_edges(fs, row[1], row[2], max_record, (int)row[4], &e, &head);
        if (st == LOOM_OK) st = loom_buf_append(ctx, &mine, &e, sizeof e);
        if (st == LOOM_OK && e.head_len != NO_NEWLINE)
            st = loom_buf_append(ctx, &mine, head.data, head.len);
        loom_buf_free(&head);
    }
    st = ch_sync(fs, st);
    if (st == LOOM_OK) st = ch_gather(fs, mine.data, mine.len, &all, NULL);
    if (st == LOOM_OK && loom_is_master(ctx)) st = make_splits(fs, f, &all, max_record, lf);
    st = loom_agree(ctx, comm, st);
    /* everyone gets the splits, the head bytes and the holders' names */
    uint64_t hdr[3] = {lf->n, lf->size, lf->heads_len};
    if (st == LOOM_OK) LOOM_MPI(ctx, MPI_Bcast(hdr, 3, MPI_UINT64_T, 0, comm));
    if (st == LOOM_OK && !loom_is_master(ctx)) {
        lf->n = hdr[0];
        lf->size = hdr[1];
        lf->heads_len = hdr[2];
        lf->s = calloc(lf->n ? lf->n : 1, sizeof *lf->s);
        lf->heads = malloc(lf->heads_len ? lf->heads_len : 1);
        if (!lf->s || !lf->heads) st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    }
    st = loom_agree(ctx, comm, st);
    if (st == LOOM_OK && lf->n)
        LOOM_MPI(ctx, MPI_Bcast(lf->s, (int)(lf->n * sizeof *lf->s), MPI_BYTE, 0, comm));
    if (st == LOOM_OK && lf->heads_len)
        LOOM_MPI(ctx, MPI_Bcast(lf->heads, (int)lf->heads_len, MPI_BYTE, 0, comm));
    if (st == LOOM_OK) {
        /* holders are named by their rank at start, which may exceed the ranks left */
        lf->nnames = 1;
        for (int w = 0; w < fs->nholders; w++)
            if (ch_holder_start(fs, w) + 1 > lf->nnames) lf->nnames = ch_holder_start(fs, w) + 1;
        lf->names = calloc((size_t)lf->nnames, sizeof *lf->names);
        if (!lf->names) st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
        for (int w = 0; st == LOOM_OK && w < fs->nholders; w++) {
            int sr = loom_start_rank(ctx, loom_worker_rank(ctx, w));
            if (sr >= 0 && sr < lf->nnames) memcpy(lf->names[sr], fs->holders[w].name, CH_NAME_MAX);
        }
        /* a shared root: every worker sees every holder's directory */
        int shared = 1;
        for (int w = 0; st == LOOM_OK && loom_is_worker(ctx) && w < fs->nholders; w++) {
            char dir[4200];
            struct stat sb;
            holder_dir(fs, fs->holders[w].name, dir, sizeof dir);
            if (stat(dir, &sb) != 0) shared = 0;
        }
        if (st == LOOM_OK)
            LOOM_MPI(ctx, MPI_Allreduce(&shared, &lf->shared, 1, MPI_INT, MPI_LAND, comm));
    }
    loom_buf_free(&plan);
    loom_buf_free(&mine);
    loom_buf_free(&all);
    if (st != LOOM_OK) {
        loom_chunks_lines_close(&lf);
        return st;
    }
    *out = lf;
    return LOOM_OK;
}

void loom_chunks_lines_close(loom_chunks_lines_t **plf)
{
    if (!plf || !*plf) return;
    free((*plf)->s);
    free((*plf)->heads);
    free((*plf)->names);
    free(*plf);
    *plf = NULL;
}

uint64_t loom_chunks_lines_count(const loom_chunks_lines_t *lf)
{
    return lf->n;
}

uint64_t loom_chunks_lines_size(const loom_chunks_lines_t *lf)
{
    return lf->size;
}

void loom_chunks_lines_range(const loom_chunks_lines_t *lf, uint64_t i, uint64_t *off,
                             uint64_t *len)
{
    *off = lf->s[i].off;
    *len = lf->s[i].len;
}

uint64_t loom_chunks_lines_find(const loom_chunks_lines_t *lf, uint64_t off)
{
    uint64_t lo = 0, hi = lf->n;
    while (hi - lo > 1) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (lf->s[mid].off <= off)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

int loom_chunks_lines_local(const loom_chunks_lines_t *lf, uint64_t i, int start_rank)
{
    for (int h = 0; h < lf->s[i].nholders; h++)
        if (lf->s[i].holders[h] == start_rank) return 1;
    return 0;
}

int loom_chunks_lines_remote_ok(const loom_chunks_lines_t *lf)
{
    return lf->shared;
}

/* Read the split from the replica in `dir`; *bad (no error) when it fails its check. */
static loom_status_t read_from(loom_chunks_t *fs, const char *dir, const split_t *s, char *buf,
                               int *bad, char *why, size_t whylen)
{
    ch_crcs_t c;
    int ok, fd = -1;
    *bad = 1;
    snprintf(why, whylen, "its CRC file is missing, damaged or of another version");
    LOOM_TRY(ch_crcs_load_in(fs, dir, s->id, &c, &ok));
    if (ok && c.version == s->version && c.len >= s->chunk_len) fd = ch_open_data_in(dir, s->id);
    if (fd < 0) {
        ch_crcs_free(&c);
        return LOOM_OK;
    }
    /* the first and last blocks go through a small buffer (the split starts inside the first;
     * the last may be followed by bytes the replica holds past the chunk's length); the blocks
     * between are read and checked in place */
    unsigned char *tmp = malloc(BLK);
    loom_status_t st = tmp ? LOOM_OK : LOOM_ERROR(fs->ctx, LOOM_ERR_NOMEM, "out of memory");
    *bad = 0;
    uint64_t end = s->chunk_len;
    if (s->skip < end) {
        uint64_t b0 = s->skip / BLK, bl = (end - 1) / BLK;
        for (uint64_t b = b0; st == LOOM_OK && !*bad && b <= bl;
             b = b == b0 && bl > b0 + 1 ? bl : b + 1) {
            uint64_t lo = b * BLK, hi = lo + BLK < end ? lo + BLK : end;
            st = ch_read_checked(fs, fd, &c, s->id, lo, hi - lo, tmp, bad, why, whylen);
            uint64_t from = lo > s->skip ? lo : s->skip;
            if (st == LOOM_OK && !*bad)
                memcpy(buf + (from - s->skip), tmp + (from - lo), hi - from);
            if (st == LOOM_OK && !*bad && b == b0 && bl > b0 + 1)
                st = ch_read_checked(fs, fd, &c, s->id, (b0 + 1) * BLK, (bl - b0 - 1) * BLK,
                                     (unsigned char *)buf + ((b0 + 1) * BLK - s->skip), bad, why,
                                     whylen);
        }
    }
    free(tmp);
    close(fd);
    ch_crcs_free(&c);
    return st;
}

loom_status_t loom_chunks_lines_read(loom_chunks_t *fs, const loom_chunks_lines_t *lf, uint64_t i,
                                     char *buf, int *local)
{
    loom_ctx_t *ctx = fs->ctx;
    const split_t *s = &lf->s[i];
    int me = loom_start_rank(ctx, loom_rank(ctx));
    char why[200], dir[4200];
    *local = 0;
    /* this rank's replica first, then (a shared root) the other holders' */
    for (int pass = 0; pass < 2; pass++)
        for (int h = 0; h < s->nholders; h++) {
            int sr = s->holders[h], mine = sr == me;
            if (pass == 0 ? !mine : mine || !lf->shared) continue;
            if (sr < 0 || sr >= lf->nnames || !lf->names[sr][0]) continue;
            holder_dir(fs, lf->names[sr], dir, sizeof dir);
            int bad;
            LOOM_TRY(read_from(fs, dir, s, buf, &bad, why, sizeof why));
            if (!bad) {
                memcpy(buf + (s->chunk_len - s->skip), lf->heads + s->head_off, s->head_len);
                *local = mine;
                return LOOM_OK;
            }
            fprintf(stderr,
                    "loom: warning: chunk store: the replica of chunk %016" PRIx64 " on %s "
                    "cannot be read (%s); trying another (loom fs get or rebalance repairs it)\n",
                    s->id, lf->names[sr], why);
        }
    return LOOM_ERROR(ctx, LOOM_ERR_IO,
                      "chunk %016" PRIx64 ": no replica that this rank (%d) can read: %s", s->id,
                      loom_rank(ctx),
                      lf->shared ? "every replica failed its check"
                                 : "it holds none, and the store root is not shared");
}
