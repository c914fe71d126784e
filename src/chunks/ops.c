/* The chunk store's operations: put, get, cat, record append, and the namespace (mkdir, rm,
 * mv, stat, ls). The master checks and plans, the workers move the bytes, and a change is
 * logged only once every replica it needs is committed. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chunks/chunks_internal.h"
#include "io/textsplit.h"

#define RETRIES 3

/* After a worker's death (ULFM) the survivors shrink, copy again what the dead held (up to
 * the replication the survivors allow) and run the operation again. */
static loom_status_t survive(loom_chunks_t *fs, loom_status_t st)
{
    st = ch_recover(fs, st);
    return st == LOOM_OK ? loom_chunks_heal(fs) : st;
}

/* After LOOM_ERR_LOST: the survivors shrink and heal, and learn whether the operation's
 * record reached the log before the death (then it happened, and is not done twice). */
static loom_status_t after_death(loom_chunks_t *fs, loom_status_t st, int *committed)
{
    *committed = 0;
    st = survive(fs, st);
    if (st != LOOM_OK) return st;
    int c = loom_is_master(fs->ctx) && fs->committed;
    LOOM_MPI(fs->ctx, MPI_Bcast(&c, 1, MPI_INT, 0, loom_comm(fs->ctx)));
    *committed = c;
    return LOOM_OK;
}

static loom_status_t master_check(loom_chunks_t *fs, loom_status_t st)
{
    return loom_agree(fs->ctx, loom_comm(fs->ctx), st);
}

static loom_status_t need_file(loom_chunks_t *fs, const char *path, ch_entry_t **e)
{
    LOOM_TRY(ch_path_check(fs->ctx, path));
    *e = ch_meta_find(&fs->meta, path);
    if (!*e && strcmp(path, "/"))
        return LOOM_ERROR(fs->ctx, LOOM_ERR_USAGE, "%s: no such file in the store", path);
    if (!*e || (*e)->is_dir)
        return LOOM_ERROR(fs->ctx, LOOM_ERR_USAGE, "%s: a directory, not a file", path);
    return LOOM_OK;
}

/* A parent that exists must be a directory; a missing one is created. */
static loom_status_t parent_ok(loom_chunks_t *fs, const char *path)
{
    char parent[CH_PATH_MAX + 1], cur[CH_PATH_MAX + 1];
    ch_path_parent(path, parent, sizeof parent);
    for (size_t i = 1; parent[i - 1]; i++) {
        if (parent[i] != '/' && parent[i]) continue;
        memcpy(cur, parent, i);
        cur[i] = '\0';
        ch_entry_t *e = ch_meta_find(&fs->meta, cur);
        if (e && !e->is_dir)
            return LOOM_ERROR(fs->ctx, LOOM_ERR_USAGE, "%s: %s is a file, not a directory", path,
                              cur);
        if (!parent[i]) break;
    }
    return LOOM_OK;
}

/* ------------------------------------------------------------------ put */

static loom_status_t plan_put(loom_chunks_t *fs, const char *local, const char *path_in,
                              ch_plan_t *p, ch_entry_t *f)
{
    loom_ctx_t *ctx = fs->ctx;
    char path[CH_PATH_MAX + 300];
    LOOM_TRY(ch_path_check(ctx, path_in));
    if (ch_meta_is_dir(&fs->meta, path_in)) {
        const char *base = strrchr(local, '/') ? strrchr(local, '/') + 1 : local;
        snprintf(path, sizeof path, "%s/%s", strcmp(path_in, "/") ? path_in : "", base);
        LOOM_TRY(ch_path_check(ctx, path));
    } else {
        snprintf(path, sizeof path, "%s", path_in);
    }
    if (ch_meta_find(&fs->meta, path))
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "%s: exists in the store (rm it first)", path);
    LOOM_TRY(parent_ok(fs, path));
    struct stat sb;
    if (stat(local, &sb) != 0)
        return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: %s", local, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "%s: not a regular file", local);
    if (access(local, R_OK) != 0)
        return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: %s", local, strerror(errno));
    uint64_t size = (uint64_t)sb.st_size, cs = fs->o.chunk_size;
    uint64_t n = (size + cs - 1) / cs;
    int k = fs->o.replication < fs->nholders ? fs->o.replication : fs->nholders;
    f->path = strdup(path);
    f->chunk_size = cs;
    f->repl = fs->o.replication;
    f->nchunks = n;
    f->size = size;
    f->chunks = calloc(n ? n : 1, sizeof *f->chunks);
    p->c = calloc(n ? n : 1, sizeof *p->c);
    p->t = calloc(n ? n : 1, sizeof *p->t);
    uint64_t *planned = calloc((size_t)fs->nholders, sizeof *planned);
    loom_status_t st = LOOM_OK;
    if (!f->path || !f->chunks || !p->c || !p->t || !planned)
        st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory planning a put");
    snprintf(p->local, sizeof p->local, "%s", local);
    for (uint64_t i = 0; st == LOOM_OK && i < n; i++) {
        uint64_t len = i + 1 < n ? cs : size - i * cs;
        ch_commit_t *c = &p->c[i];
        c->version = 1;
        c->len = len;
        c->fresh = 1;
        c->nholders = ch_place(fs, len, k, NULL, planned, c->holders);
        if (c->nholders < k) {
            uint64_t room = 0;
            for (int w = 0; w < fs->nholders; w++)
                room += fs->holders[w].free > planned[w] ? fs->holders[w].free - planned[w] : 0;
            st = LOOM_ERROR(ctx, LOOM_ERR_IO,
                            "%s: no room in the store for %" PRIu64 " bytes in %d replicas "
                            "(chunk %" PRIu64 " of %" PRIu64 " found %d holders with room; %" PRIu64
                            " bytes free in all)",
                            local, size, k, i, n, c->nholders, room);
        }
        ch_task_t *t = &p->t[i];
        t->commit = (int32_t)i;
        t->src_kind = CH_SRC_LOCAL;
        t->len = len;
        t->src_off = i * cs;
        t->nchain = c->nholders;
        memcpy(t->chain, c->holders, sizeof c->holders);
    }
    free(planned);
    uint64_t *ids = st == LOOM_OK ? malloc((n ? n : 1) * sizeof *ids) : NULL;
    if (st == LOOM_OK && !ids) st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    if (st == LOOM_OK) st = ch_meta_new_ids(ctx, &fs->meta, n, ids);
    for (uint64_t i = 0; st == LOOM_OK && i < n; i++) {
        p->c[i].id = ids[i];
        f->chunks[i] = (ch_chunk_t){ids[i], 1, p->c[i].len};
    }
    free(ids);
    p->nc = p->nt = st == LOOM_OK ? n : 0;
    return st;
}

static loom_status_t put_once(loom_chunks_t *fs, const char *local, const char *path)
{
    loom_ctx_t *ctx = fs->ctx;
    ch_plan_t p = {0};
    ch_entry_t f = {0};
    loom_status_t st = LOOM_OK;
    fs->committed = 0;
    if (loom_is_master(ctx)) st = plan_put(fs, local, path, &p, &f);
    st = master_check(fs, st);
    if (st == LOOM_OK) st = ch_plan_bcast(fs, &p);
    if (st == LOOM_OK) st = ch_transfer(fs, &p, NULL);
    /* one record commits the file (its parents come with it) */
    if (st == LOOM_OK && loom_is_master(ctx)) st = ch_meta_put_file(ctx, &fs->meta, &f);
    if (st == LOOM_OK && loom_is_master(ctx)) fs->committed = 1;
    if (st != LOOM_ERR_LOST) st = master_check(fs, st);
    if (st != LOOM_OK && st != LOOM_ERR_LOST && p.nc) {
        /* replicas of a put that did not happen are orphans: removed now */
        loom_status_t keep = st;
        uint64_t *pairs = malloc(p.nc * 2 * (size_t)fs->nholders * sizeof *pairs);
        size_t k = 0;
        for (size_t i = 0; pairs && i < p.nc; i++)
            for (int w = 0; w < fs->nholders; w++)
                pairs[2 * k] = (uint64_t)w, pairs[2 * k++ + 1] = p.c[i].id;
        loom_error_clear(ctx);
        uint64_t nk = pairs ? k : 0;
        if (MPI_Bcast(&nk, 1, MPI_UINT64_T, 0, loom_comm(ctx)) == MPI_SUCCESS && nk)
            ch_delete(fs, pairs, nk);
        free(pairs);
        st = keep;
    }
    ch_plan_free(&p);
    free(f.path);
    free(f.chunks);
    return st;
}

loom_status_t loom_chunks_put(loom_chunks_t *fs, const char *local, const char *path)
{
    for (int t = 0;; t++) {
        loom_status_t st = put_once(fs, local, path);
        if (st != LOOM_ERR_LOST || t == RETRIES) return st;
        int done;
        LOOM_TRY(after_death(fs, st, &done));
        if (done) return LOOM_OK;
    }
}

/* ------------------------------------------------------------------ reading */

/* One chunk (or its tail from `off`) for a reader. */
typedef struct assign {
    uint64_t index, id, len, file_off, off;
    int32_t reader, pad;
} assign_t;

/* Replica r of chunk c is good and was not found corrupt by this operation (`bad`: pairs of
 * a holder's start rank and a chunk id). */
static int readable(const loom_chunks_t *fs, size_t r, const ch_chunk_t *c, const loom_buf_t *bad)
{
    if (!ch_rep_good(&fs->reps[r], c)) return 0;
    uint64_t start = (uint64_t)ch_holder_start(fs, fs->reps[r].holder);
    for (size_t at = 0; at + 16 <= bad->len; at += 16) {
        uint64_t pair[2];
        memcpy(pair, bad->data + at, 16);
        if (pair[0] == start && pair[1] == c->id) return 0;
    }
    return 1;
}

/* Master: a reader for every chunk not done, among the good replicas not known bad. */
static loom_status_t assign_readers(loom_chunks_t *fs, const ch_entry_t *f, const char *done,
                                    const loom_buf_t *bad, const uint64_t *from, loom_buf_t *out)
{
    uint64_t *load = calloc((size_t)fs->nholders, sizeof *load);
    if (!load) return LOOM_ERROR(fs->ctx, LOOM_ERR_NOMEM, "out of memory");
    uint64_t file_off = 0;
    loom_status_t st = LOOM_OK;
    out->len = 0;
    for (uint64_t i = 0; st == LOOM_OK && i < f->nchunks; file_off += f->chunks[i].len, i++) {
        if (done[i]) continue;
        const ch_chunk_t *c = &f->chunks[i];
        size_t a, b;
        ch_reps_of(fs, c->id, &a, &b);
        int best = -1;
        for (size_t r = a; r < b; r++) {
            if (!readable(fs, r, c, bad)) continue;
            int h = fs->reps[r].holder;
            if (best < 0 || load[h] < load[best]) best = h;
        }
        if (best < 0) {
            st = LOOM_ERROR(fs->ctx, LOOM_ERR_IO,
                            "%s: chunk %" PRIu64 " (id %016" PRIx64 ") has no good replica on the "
                            "holders present (loom fs fsck tells which are missing)",
                            f->path, i, c->id);
            break;
        }
        load[best] += c->len;
        assign_t a1 = {i, c->id, c->len, file_off, from ? from[i] : 0, best, 0};
        st = loom_buf_append(fs->ctx, out, &a1, sizeof a1);
    }
    free(load);
    return st;
}

/* A reader's part of get: its chunks, checked, written at their offsets in `fd`. Pairs
 * (holder, id) of replicas that failed go to `bad`, with the reason logged. */
static loom_status_t read_assigned(loom_chunks_t *fs, const loom_buf_t *as, int fd, loom_buf_t *bad)
{
    int me = loom_worker_index(fs->ctx);
    unsigned char *buf = malloc(CH_PIECE);
    if (!buf) return LOOM_ERROR(fs->ctx, LOOM_ERR_NOMEM, "out of memory");
    loom_status_t st = LOOM_OK;
    for (size_t at = 0; st == LOOM_OK && at + sizeof(assign_t) <= as->len; at += sizeof(assign_t)) {
        assign_t a;
        memcpy(&a, as->data + at, sizeof a);
        if (a.reader != me) continue;
        ch_crcs_t c;
        int ok, dfd = -1, isbad = 0;
        char why[200] = "its CRC file is missing or damaged";
        st = ch_crcs_load(fs, a.id, &c, &ok);
        if (st == LOOM_OK && ok) dfd = ch_open_data(fs, a.id);
        if (dfd < 0) isbad = 1;
        for (uint64_t off = 0; st == LOOM_OK && !isbad && off < a.len; off += CH_PIECE) {
            loom_fault_point(fs->ctx, &fs->fault, LOOM_PHASE_TRANSFER, fs->transfer_pieces++);
            uint64_t n = a.len - off < CH_PIECE ? a.len - off : CH_PIECE;
            st = ch_read_checked(fs, dfd, &c, a.id, off, n, buf, &isbad, why, sizeof why);
            if (st == LOOM_OK && !isbad) {
                size_t done = 0;
                while (st == LOOM_OK && done < n) {
                    ssize_t w = pwrite(fd, buf + done, n - done, (off_t)(a.file_off + off + done));
                    if (w < 0 && errno == EINTR) continue;
                    if (w <= 0)
                        st = LOOM_ERROR(fs->ctx, LOOM_ERR_IO,
                                        "writing chunk %016" PRIx64
                                        " into the output's temporary file: %s",
                                        a.id, strerror(errno));
                    done += w > 0 ? (size_t)w : 0;
                }
            }
        }
        if (dfd >= 0) close(dfd);
        ch_crcs_free(&c);
        if (st == LOOM_OK && isbad) {
            fprintf(stderr,
                    "loom: warning: chunk store: the replica of chunk %016" PRIx64 " on %s is "
                    "corrupt (%s); reading another replica and replacing this one\n",
                    a.id, ch_holder_name(fs, me), why);
            fs->corrupt_found++;
            uint64_t pair[2] = {(uint64_t)ch_holder_start(fs, me), a.id};
            st = loom_buf_append(fs->ctx, bad, pair, sizeof pair);
        }
    }
    free(buf);
    return st;
}

static loom_status_t get_once(loom_chunks_t *fs, const char *path, const char *local, int overwrite,
                              loom_buf_t *bad)
{
    loom_ctx_t *ctx = fs->ctx;
    MPI_Comm comm = loom_comm(ctx);
    ch_entry_t *f = NULL;
    char *done = NULL;
    loom_status_t st = LOOM_OK;
    if (loom_is_master(ctx)) {
        struct stat sb;
        st = need_file(fs, path, &f);
        if (st == LOOM_OK && !overwrite && lstat(local, &sb) == 0)
            st = LOOM_ERROR(ctx, LOOM_ERR_USAGE, "%s: exists (--force replaces it)", local);
        if (st == LOOM_OK && !(done = calloc(f->nchunks ? f->nchunks : 1, 1)))
            st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    }
    st = master_check(fs, st);
    loom_output_t *out = NULL;
    if (st == LOOM_OK) st = loom_output_begin(ctx, comm, local, 0, &out);
    if (st != LOOM_OK) {
        free(done);
        return st;
    }
    const char *tmp = loom_output_path(out);
    if (loom_is_master(ctx) && truncate(tmp, (off_t)f->size) != 0)
        st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: %s", tmp, strerror(errno));
    st = master_check(fs, st);
    loom_buf_t as = {0}, mine = {0}, all = {0};
    for (int pass = 0; st == LOOM_OK; pass++) {
        if (loom_is_master(ctx)) st = assign_readers(fs, f, done, bad, NULL, &as);
        st = master_check(fs, st);
        if (st == LOOM_OK) st = ch_bcast_buf(fs, &as);
        if (st != LOOM_OK || !as.len) break;
        int fd = -1;
        mine.len = 0;
        if (loom_is_worker(ctx)) {
            fd = open(tmp, O_WRONLY | O_CLOEXEC);
            if (fd < 0) st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: %s", tmp, strerror(errno));
            if (st == LOOM_OK) st = read_assigned(fs, &as, fd, &mine);
            if (fd >= 0 && st == LOOM_OK && fdatasync(fd) != 0)
                st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: %s", tmp, strerror(errno));
            if (fd >= 0) close(fd);
        }
        if (st == LOOM_ERR_LOST) break;
        loom_status_t gst = ch_gather(fs, mine.data, mine.len, &all, NULL);
        st = ch_sync(fs, st != LOOM_OK ? st : gst);
        if (st == LOOM_OK && loom_is_master(ctx)) {
            st = loom_buf_append(ctx, bad, all.data, all.len);
            for (size_t at = 0; at + sizeof(assign_t) <= as.len; at += sizeof(assign_t)) {
                assign_t a;
                memcpy(&a, as.data + at, sizeof a);
                int failed = 0;
                for (size_t b = 0; b + 16 <= all.len; b += 16) {
                    uint64_t pair[2];
                    memcpy(pair, all.data + b, 16);
                    failed |= pair[1] == a.id && pair[0] == (uint64_t)ch_holder_start(fs, a.reader);
                }
                if (!failed) done[a.index] = 1;
            }
        }
        if (pass > CH_MAX_REPL + 1 && st == LOOM_OK)
            st = LOOM_ERROR(ctx, LOOM_ERR_INTERNAL, "get: no progress reading %s", path);
    }
    loom_buf_free(&as);
    loom_buf_free(&mine);
    loom_buf_free(&all);
    free(done);
    if (st == LOOM_ERR_LOST) {
        loom_output_end(ctx, &out, st);
        return st;
    }
    return loom_output_end(ctx, &out, st);
}

/* Replicas found corrupt by a read are replaced before the operation returns. */
static loom_status_t repair_after_read(loom_chunks_t *fs, loom_status_t st, loom_buf_t *bad)
{
    uint64_t n = loom_is_master(fs->ctx) ? bad->len : 0;
    if (st != LOOM_OK) return st;
    LOOM_MPI(fs->ctx, MPI_Bcast(&n, 1, MPI_UINT64_T, 0, loom_comm(fs->ctx)));
    if (!n) return LOOM_OK;
    return ch_heal_with(fs, bad, 0);
}

loom_status_t loom_chunks_get(loom_chunks_t *fs, const char *path, const char *local, int overwrite)
{
    loom_buf_t bad = {0};
    loom_status_t st = LOOM_OK;
    for (int t = 0;; t++) {
        st = get_once(fs, path, local, overwrite, &bad);
        if (st != LOOM_ERR_LOST || t == RETRIES) break;
        loom_status_t r = survive(fs, st);
        if (r != LOOM_OK) {
            st = r;
            break;
        }
    }
    st = repair_after_read(fs, st, &bad);
    loom_buf_free(&bad);
    return st;
}

/* cat: chunk by chunk, a reader streams checked pieces to the master, which writes them in
 * order; a piece that fails its check sends the rest of the chunk to another replica. */
static loom_status_t cat_once(loom_chunks_t *fs, const char *path, FILE *outf, loom_buf_t *bad)
{
    loom_ctx_t *ctx = fs->ctx;
    MPI_Comm comm = loom_comm(ctx);
    ch_entry_t *f = NULL;
    loom_status_t st = LOOM_OK;
    if (loom_is_master(ctx)) st = need_file(fs, path, &f);
    st = master_check(fs, st);
    uint64_t nchunks = f ? f->nchunks : 0;
    if (st == LOOM_OK) LOOM_MPI(ctx, MPI_Bcast(&nchunks, 1, MPI_UINT64_T, 0, comm));
    unsigned char *buf = malloc(CH_PIECE + 8);
    if (!buf) st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    st = master_check(fs, st);
    int me = loom_worker_index(ctx);
    uint64_t from = 0; /* bytes of chunk i already written out (master) */
    for (uint64_t i = 0; st == LOOM_OK && i < nchunks;) {
        /* [id, len, from, reader] */
        uint64_t job[4] = {0};
        if (loom_is_master(ctx)) {
            const ch_chunk_t *c = &f->chunks[i];
            size_t a, b;
            int best = -1;
            ch_reps_of(fs, c->id, &a, &b);
            for (size_t r = a; r < b && best < 0; r++)
                if (readable(fs, r, c, bad)) best = fs->reps[r].holder;
            if (best < 0)
                st = LOOM_ERROR(ctx, LOOM_ERR_IO,
                                "%s: chunk %" PRIu64 " (id %016" PRIx64 ") has no good replica on "
                                "the holders present",
                                path, i, c->id);
            job[0] = c->id;
            job[1] = c->len;
            job[2] = from;
            job[3] = (uint64_t)best;
        }
        st = master_check(fs, st);
        if (st != LOOM_OK) break;
        LOOM_MPI(ctx, MPI_Bcast(job, 4, MPI_UINT64_T, 0, comm));
        int reader = (int)job[3], src = loom_worker_rank(ctx, reader);
        int failed = 0;
        if (me == reader && !loom_is_master(ctx)) {
            /* stream: each message is u64 status (0 data, 1 a bad replica, 2 an error here, the
             * message in this rank's context) + piece; the master hears of every outcome */
            ch_crcs_t c;
            int ok = 0, dfd = -1, isbad = 0;
            char why[200] = "its CRC file is missing or damaged";
            st = ch_crcs_load(fs, job[0], &c, &ok);
            if (ok) dfd = ch_open_data(fs, job[0]);
            isbad = dfd < 0;
            for (uint64_t off = job[2]; off < job[1]; off += CH_PIECE) {
                loom_fault_point(ctx, &fs->fault, LOOM_PHASE_TRANSFER, fs->transfer_pieces++);
                uint64_t n = job[1] - off < CH_PIECE ? job[1] - off : CH_PIECE;
                if (!isbad && st == LOOM_OK)
                    st = ch_read_checked(fs, dfd, &c, job[0], off, n, buf + 8, &isbad, why,
                                         sizeof why);
                uint64_t status = st != LOOM_OK ? 2 : isbad ? 1 : 0;
                memcpy(buf, &status, 8);
                int e = MPI_Send(buf, status ? 8 : (int)(n + 8), MPI_BYTE, 0, 7, comm);
                if (e != MPI_SUCCESS) {
                    if (st == LOOM_OK) st = loom_error_mpi(ctx, e, "MPI_Send", __FILE__, __LINE__);
                    break;
                }
                if (status == 2) break;
                if (isbad) {
                    fprintf(stderr,
                            "loom: warning: chunk store: the replica of chunk %016" PRIx64 " on %s "
                            "is corrupt (%s); reading another replica and replacing this one\n",
                            job[0], ch_holder_name(fs, me), why);
                    break;
                }
            }
            if (dfd >= 0) close(dfd);
            ch_crcs_free(&c);
        } else if (loom_is_master(ctx)) {
            uint64_t off = job[2];
            while (off < job[1]) {
                uint64_t n = job[1] - off < CH_PIECE ? job[1] - off : CH_PIECE;
                if (src == 0) {
                    /* one rank: the master reads its own replica */
                    ch_crcs_t c;
                    int ok, dfd = -1;
                    char why[200] = "its CRC file is missing or damaged";
                    st = ch_crcs_load(fs, job[0], &c, &ok);
                    if (ok) dfd = ch_open_data(fs, job[0]);
                    failed = dfd < 0;
                    for (; st == LOOM_OK && !failed && off < job[1]; off += n) {
                        loom_fault_point(ctx, &fs->fault, LOOM_PHASE_TRANSFER,
                                         fs->transfer_pieces++);
                        n = job[1] - off < CH_PIECE ? job[1] - off : CH_PIECE;
                        st = ch_read_checked(fs, dfd, &c, job[0], off, n, buf, &failed, why,
                                             sizeof why);
                        if (st == LOOM_OK && !failed && fwrite(buf, 1, n, outf) != n)
                            st = LOOM_ERROR(ctx, LOOM_ERR_IO, "writing to stdout: %s",
                                            strerror(errno));
                    }
                    if (failed)
                        fprintf(stderr,
                                "loom: warning: chunk store: the replica of chunk %016" PRIx64
                                " on %s is corrupt (%s); it cannot be replaced with one holder\n",
                                job[0], ch_holder_name(fs, 0), why);
                    if (dfd >= 0) close(dfd);
                    ch_crcs_free(&c);
                    break;
                }
                MPI_Request req;
                MPI_Status status;
                int e = MPI_Irecv(buf, CH_PIECE + 8, MPI_BYTE, src, 7, comm, &req);
                loom_status_t rs = e == MPI_SUCCESS
                                       ? loom_wait(ctx, &req, &status)
                                       : loom_error_mpi(ctx, e, "MPI_Irecv", __FILE__, __LINE__);
                if (rs != LOOM_OK) {
                    st = rs;
                    break;
                }
                uint64_t flag;
                memcpy(&flag, buf, 8);
                if (flag == 1) failed = 1;
                if (flag) break; /* 2: the reader's own error, agreed below */
                /* a failed write still takes the rest of the chunk, so the reader finishes */
                if (st == LOOM_OK && fwrite(buf + 8, 1, n, outf) != n)
                    st = LOOM_ERROR(ctx, LOOM_ERR_IO, "writing to stdout: %s", strerror(errno));
                off += n;
            }
            if (failed) {
                uint64_t pair[2] = {(uint64_t)ch_holder_start(fs, reader), job[0]};
                if (st == LOOM_OK) st = loom_buf_append(ctx, bad, pair, sizeof pair);
                if (src == 0 && st == LOOM_OK)
                    st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: chunk %" PRIu64 " is corrupt", path, i);
            }
            /* what is out already came from checked blocks: another replica sends the rest */
            from = failed ? off : 0;
        }
        LOOM_MPI(ctx, MPI_Bcast(&failed, 1, MPI_INT, 0, comm));
        st = ch_sync(fs, st);
        if (!failed) i++;
    }
    free(buf);
    return st;
}

loom_status_t loom_chunks_cat(loom_chunks_t *fs, const char *path, FILE *out)
{
    loom_buf_t bad = {0};
    loom_status_t st = cat_once(fs, path, out, &bad);
    if (loom_is_master(fs->ctx)) fflush(out);
    st = repair_after_read(fs, st, &bad);
    loom_buf_free(&bad);
    return st;
}

/* ------------------------------------------------------------------ record append */

static loom_status_t plan_append(loom_chunks_t *fs, const char *path, const loom_buf_t *lens,
                                 const uint64_t *offs, ch_plan_t *p, ch_entry_t *f,
                                 uint64_t *out_offsets)
{
    loom_ctx_t *ctx = fs->ctx;
    LOOM_TRY(ch_path_check(ctx, path));
    ch_entry_t *old = ch_meta_find(&fs->meta, path);
    if (old && old->is_dir) return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "%s: a directory", path);
    if (!strcmp(path, "/")) return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "/: a directory");
    if (!old) LOOM_TRY(parent_ok(fs, path));
    int P = loom_size(ctx);
    uint64_t cs = old ? old->chunk_size : fs->o.chunk_size, nrec = lens->len / 8;
    int repl = old ? old->repl : fs->o.replication;
    int k = repl < fs->nholders ? repl : fs->nholders;
    if (offs[1] > offs[0] && P > 1)
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "append: the master (rank 0) appends no records");
    /* the chunks after the append: the old ones, then new ones as records need them */
    uint64_t nold = old ? old->nchunks : 0, cap = nold + nrec + 1;
    f->chunks = calloc(cap, sizeof *f->chunks);
    p->c = calloc(cap, sizeof *p->c);
    p->t = calloc(nrec + 1, sizeof *p->t);
    uint64_t *planned = calloc((size_t)fs->nholders, sizeof *planned);
    uint64_t *dirty = calloc(cap, sizeof *dirty);
    if (!f->chunks || !p->c || !p->t || !planned || !dirty) {
        free(planned);
        free(dirty);
        return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory planning an append");
    }
    f->path = strdup(path);
    f->chunk_size = cs;
    f->repl = repl;
    f->nchunks = nold;
    if (nold) memcpy(f->chunks, old->chunks, nold * sizeof *f->chunks);
    loom_status_t st = LOOM_OK;
    /* the chunk being filled: the last one if it has room, as a commit */
    int64_t cur = -1; /* index into f->chunks */
    int64_t *commit_of = malloc(cap * sizeof *commit_of);
    if (!commit_of) st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    for (uint64_t i = 0; commit_of && i < cap; i++)
        commit_of[i] = -1;
    if (st == LOOM_OK && nold && f->chunks[nold - 1].len < cs) cur = (int64_t)nold - 1;
    uint64_t new_chunks = 0;
    for (int r = 0; st == LOOM_OK && r < P; r++) {
        uint64_t src_off = 0;
        for (uint64_t j = offs[r] / 8; st == LOOM_OK && j < offs[r + 1] / 8; j++) {
            uint64_t len;
            memcpy(&len, lens->data + 8 * j, 8);
            if (len == 0) {
                st = LOOM_ERROR(ctx, LOOM_ERR_USAGE, "append to %s: a record of 0 bytes", path);
                break;
            }
            if (len > cs / 4) {
                st = LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                                "append to %s: a record of %" PRIu64 " bytes is longer than a "
                                "quarter of the chunk size (%" PRIu64 ")",
                                path, len, cs);
                break;
            }
            if (cur < 0 || f->chunks[cur].len + len > cs) {
                cur = (int64_t)f->nchunks++;
                f->chunks[cur] = (ch_chunk_t){0, 0, 0};
                new_chunks++;
            }
            ch_chunk_t *c = &f->chunks[cur];
            if (commit_of[cur] < 0) {
                ch_commit_t *cm = &p->c[p->nc];
                commit_of[cur] = (int64_t)p->nc++;
                cm->fresh = c->version == 0;
                dirty[cur] = c->len;
                if (cm->fresh) {
                    cm->nholders = ch_place(fs, cs, k, NULL, planned, cm->holders);
                    if (cm->nholders < k)
                        st = LOOM_ERROR(ctx, LOOM_ERR_IO,
                                        "append to %s: no room in the store for a new chunk", path);
                } else {
                    size_t a, b;
                    ch_reps_of(fs, c->id, &a, &b);
                    for (size_t i = a; i < b && cm->nholders < CH_MAX_REPL; i++)
                        if (ch_rep_good(&fs->reps[i], c))
                            cm->holders[cm->nholders++] = fs->reps[i].holder;
                    if (!cm->nholders)
                        st = LOOM_ERROR(ctx, LOOM_ERR_IO,
                                        "append to %s: its last chunk has no good replica on the "
                                        "holders present",
                                        path);
                }
            }
            /* a task per run of one rank's records in one chunk */
            ch_task_t *t = p->nt ? &p->t[p->nt - 1] : NULL;
            int src = P == 1 ? 0 : r - 1;
            if (!t || t->commit != commit_of[cur] || t->chain[0] != src ||
                t->off + t->len != c->len || t->src_off + t->len != src_off) {
                t = &p->t[p->nt++];
                memset(t, 0, sizeof *t);
                t->commit = (int32_t)commit_of[cur];
                t->src_kind = CH_SRC_MEM;
                t->off = c->len;
                t->src_off = src_off;
                const ch_commit_t *cm = &p->c[t->commit];
                t->chain[0] = src;
                t->nchain = 1;
                for (int h = 0; h < cm->nholders; h++)
                    if (cm->holders[h] != src) t->chain[t->nchain++] = cm->holders[h];
            }
            t->len += len;
            out_offsets[j] = c->len; /* within the chunk, for now */
            c->len += len;
            src_off += len;
        }
    }
    uint64_t *ids = st == LOOM_OK ? malloc((new_chunks ? new_chunks : 1) * sizeof *ids) : NULL,
             next = 0;
    if (st == LOOM_OK && !ids) st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    if (st == LOOM_OK) st = ch_meta_new_ids(ctx, &fs->meta, new_chunks, ids);
    /* ids, versions and the commits' final lengths; offsets become file offsets */
    uint64_t *start = calloc(f->nchunks + 1, sizeof *start);
    if (st == LOOM_OK && !start) st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    for (uint64_t i = 0; st == LOOM_OK && i < f->nchunks; i++) {
        ch_chunk_t *c = &f->chunks[i];
        if (c->version == 0) c->id = ids[next++];
        if (commit_of[i] >= 0) {
            c->version++;
            ch_commit_t *cm = &p->c[commit_of[i]];
            cm->id = c->id;
            cm->version = c->version;
            cm->len = c->len;
        }
        start[i + 1] = start[i] + c->len;
        f->size += c->len;
    }
    /* a record's chunk: the tasks are in record order, so walk them again */
    if (st == LOOM_OK) {
        uint64_t j = 0;
        for (size_t ti = 0; ti < p->nt; ti++) {
            const ch_task_t *t = &p->t[ti];
            uint64_t ci = 0;
            while (f->chunks[ci].id != p->c[t->commit].id)
                ci++;
            for (uint64_t covered = 0; covered < t->len; j++) {
                uint64_t len;
                memcpy(&len, lens->data + 8 * j, 8);
                out_offsets[j] += start[ci];
                covered += len;
            }
        }
    }
    free(start);
    free(ids);
    free(commit_of);
    free(planned);
    free(dirty);
    return st;
}

static loom_status_t append_once(loom_chunks_t *fs, const char *path, const void *data,
                                 const size_t *lens, size_t n, uint64_t *offsets)
{
    loom_ctx_t *ctx = fs->ctx;
    int P = loom_size(ctx);
    loom_buf_t my = {0}, all = {0};
    loom_status_t st = LOOM_OK;
    fs->committed = 0;
    for (size_t i = 0; st == LOOM_OK && i < n; i++) {
        uint64_t l = lens[i];
        st = loom_buf_append(ctx, &my, &l, 8);
    }
    uint64_t *offs = calloc((size_t)P + 1, sizeof *offs);
    if (!offs && st == LOOM_OK) st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    st = loom_agree(ctx, loom_comm(ctx), st);
    if (st == LOOM_OK) st = ch_gather(fs, my.data, my.len, &all, offs);
    ch_plan_t p = {0};
    ch_entry_t f = {0};
    uint64_t *fo = NULL;
    if (st == LOOM_OK && loom_is_master(ctx)) {
        fo = calloc(all.len / 8 + 1, sizeof *fo);
        st = fo ? plan_append(fs, path, &all, offs, &p, &f, fo)
                : LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    }
    /* chunks that grow get their new version first, logged and on their holders, with
     * their old length: a version never names two contents, and a holder that misses the
     * bytes is stale */
    loom_buf_t bump = {0};
    if (st == LOOM_OK && loom_is_master(ctx)) {
        ch_entry_t *old = ch_meta_find(&fs->meta, path);
        ch_entry_t pre = old ? *old : (ch_entry_t){0};
        ch_chunk_t *pc = old ? malloc((old->nchunks ? old->nchunks : 1) * sizeof *pc) : NULL;
        if (old && !pc) st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
        for (size_t i = 0; st == LOOM_OK && i < p.nc; i++) {
            if (p.c[i].fresh) continue;
            for (uint64_t k = 0; k < old->nchunks; k++)
                if (old->chunks[k].id == p.c[i].id) {
                    if (!bump.len) memcpy(pc, old->chunks, old->nchunks * sizeof *pc);
                    pc[k].version = p.c[i].version;
                }
            for (int h = 0; st == LOOM_OK && h < p.c[i].nholders; h++) {
                uint64_t t[3] = {(uint64_t)p.c[i].holders[h], p.c[i].id, p.c[i].version};
                st = loom_buf_append(ctx, &bump, t, sizeof t);
            }
        }
        if (st == LOOM_OK && bump.len) {
            pre.chunks = pc;
            st = ch_meta_put_file(ctx, &fs->meta, &pre);
        }
        free(pc);
    }
    st = master_check(fs, st);
    uint64_t nb = bump.len / 24;
    if (st == LOOM_OK) LOOM_MPI_KEEP(ctx, st, MPI_Bcast(&nb, 1, MPI_UINT64_T, 0, loom_comm(ctx)));
    if (st == LOOM_OK && nb) st = ch_bump(fs, (const uint64_t *)bump.data, nb);
    loom_buf_free(&bump);
    if (st == LOOM_OK) st = ch_plan_bcast(fs, &p);
    p.mem = data;
    if (st == LOOM_OK) st = ch_transfer(fs, &p, NULL);
    if (st == LOOM_OK && loom_is_master(ctx)) st = ch_meta_put_file(ctx, &fs->meta, &f);
    if (st == LOOM_OK && loom_is_master(ctx)) fs->committed = 1;
    if (st != LOOM_ERR_LOST) st = master_check(fs, st);
    /* every rank learns its records' offsets */
    if (st == LOOM_OK) {
        int *counts = NULL, *displs = NULL;
        if (loom_is_master(ctx)) {
            counts = calloc((size_t)P, sizeof *counts);
            displs = calloc((size_t)P, sizeof *displs);
            for (int r = 0; counts && displs && r < P; r++) {
                counts[r] = (int)((offs[r + 1] - offs[r]) / 8);
                displs[r] = (int)(offs[r] / 8);
            }
        }
        uint64_t *mine = calloc(n ? n : 1, sizeof *mine);
        int e = MPI_Scatterv(fo, counts, displs, MPI_UINT64_T, mine, (int)n, MPI_UINT64_T, 0,
                             loom_comm(ctx));
        if (e != MPI_SUCCESS) st = loom_error_mpi(ctx, e, "MPI_Scatterv", __FILE__, __LINE__);
        if (st == LOOM_OK && offsets && mine) memcpy(offsets, mine, n * sizeof *mine);
        free(mine);
        free(counts);
        free(displs);
    }
    ch_plan_free(&p);
    free(f.path);
    free(f.chunks);
    free(fo);
    free(offs);
    loom_buf_free(&my);
    loom_buf_free(&all);
    return st;
}

loom_status_t loom_chunks_append(loom_chunks_t *fs, const char *path, const void *data,
                                 const size_t *lens, size_t n, uint64_t *offsets)
{
    loom_status_t st = append_once(fs, path, data, lens, n, offsets);
    if (st != LOOM_ERR_LOST) return st;
    int done;
    LOOM_TRY(after_death(fs, st, &done));
    if (offsets && done)
        for (size_t i = 0; i < n; i++)
            offsets[i] = UINT64_MAX; /* lost with the scatter */
    if (done) return LOOM_OK;
    /* the dead rank's records are gone with it: the caller appends again */
    return LOOM_ERROR(fs->ctx, LOOM_ERR_LOST,
                      "append to %s: a rank died before the records were committed; the file "
                      "is unchanged, append them again",
                      path);
}

/* ------------------------------------------------------------------ namespace */

loom_status_t loom_chunks_mkdir(loom_chunks_t *fs, const char *path)
{
    loom_status_t st = LOOM_OK;
    if (loom_is_master(fs->ctx)) {
        st = ch_path_check(fs->ctx, path);
        ch_entry_t *e = st == LOOM_OK ? ch_meta_find(&fs->meta, path) : NULL;
        if (e && !e->is_dir) st = LOOM_ERROR(fs->ctx, LOOM_ERR_USAGE, "%s: exists as a file", path);
        if (st == LOOM_OK) st = parent_ok(fs, path);
        if (st == LOOM_OK && !e && strcmp(path, "/")) st = ch_meta_mkdirs(fs->ctx, &fs->meta, path);
    }
    return master_check(fs, st);
}

loom_status_t loom_chunks_remove(loom_chunks_t *fs, const char *path, int recursive)
{
    loom_ctx_t *ctx = fs->ctx;
    loom_status_t st = LOOM_OK;
    loom_buf_t del = {0};
    if (loom_is_master(ctx)) {
        st = ch_path_check(ctx, path);
        ch_entry_t *e = st == LOOM_OK ? ch_meta_find(&fs->meta, path) : NULL;
        size_t first = 0, last = 0;
        if (st == LOOM_OK && !strcmp(path, "/"))
            st = LOOM_ERROR(ctx, LOOM_ERR_USAGE, "/: the root cannot be removed");
        else if (st == LOOM_OK && !e)
            st =
                LOOM_ERROR(ctx, LOOM_ERR_USAGE, "%s: no such file or directory in the store", path);
        if (st == LOOM_OK && e->is_dir) {
            ch_meta_below(&fs->meta, path, &first, &last);
            if (last > first && !recursive)
                st = LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                                "%s: a directory that is not empty (--recursive removes it all)",
                                path);
        }
        /* the replicas of everything removed go once the removal is logged */
        for (size_t i = first; st == LOOM_OK && i <= last; i++) {
            const ch_entry_t *x = i < last ? &fs->meta.e[i] : e;
            for (uint64_t c = 0; st == LOOM_OK && x && c < x->nchunks; c++) {
                size_t a, b;
                ch_reps_of(fs, x->chunks[c].id, &a, &b);
                for (size_t r = a; st == LOOM_OK && r < b; r++) {
                    uint64_t pair[2] = {(uint64_t)fs->reps[r].holder, fs->reps[r].id};
                    st = loom_buf_append(ctx, &del, pair, sizeof pair);
                }
            }
        }
        if (st == LOOM_OK) st = ch_meta_remove(ctx, &fs->meta, path);
    }
    st = master_check(fs, st);
    uint64_t n = del.len / 16;
    if (st == LOOM_OK) LOOM_MPI(ctx, MPI_Bcast(&n, 1, MPI_UINT64_T, 0, loom_comm(ctx)));
    if (st == LOOM_OK && n) st = ch_delete(fs, (const uint64_t *)del.data, n);
    loom_buf_free(&del);
    return st;
}

loom_status_t loom_chunks_rename(loom_chunks_t *fs, const char *src, const char *dst)
{
    loom_ctx_t *ctx = fs->ctx;
    loom_status_t st = LOOM_OK;
    if (loom_is_master(ctx)) {
        st = ch_path_check(ctx, src);
        if (st == LOOM_OK) st = ch_path_check(ctx, dst);
        char parent[CH_PATH_MAX + 1];
        size_t sl = strlen(src);
        if (st == LOOM_OK && (!strcmp(src, "/") || !ch_meta_find(&fs->meta, src)))
            st = LOOM_ERROR(ctx, LOOM_ERR_USAGE, "%s: no such file or directory in the store", src);
        else if (st == LOOM_OK && (!strcmp(dst, "/") || ch_meta_find(&fs->meta, dst)))
            st = LOOM_ERROR(ctx, LOOM_ERR_USAGE, "%s: exists in the store", dst);
        else if (st == LOOM_OK && !strncmp(dst, src, sl) && dst[sl] == '/')
            st = LOOM_ERROR(ctx, LOOM_ERR_USAGE, "mv %s %s: a directory cannot move into itself",
                            src, dst);
        if (st == LOOM_OK) {
            ch_path_parent(dst, parent, sizeof parent);
            if (!ch_meta_is_dir(&fs->meta, parent))
                st = LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                                "%s: its parent %s is not a directory in the store", dst, parent);
        }
        if (st == LOOM_OK) st = ch_meta_rename(ctx, &fs->meta, src, dst);
    }
    return master_check(fs, st);
}

/* Master: the entry at an existing path (NULL for "/", which is not stored). */
static loom_status_t need_entry(loom_chunks_t *fs, const char *path, ch_entry_t **e)
{
    LOOM_TRY(ch_path_check(fs->ctx, path));
    *e = ch_meta_find(&fs->meta, path);
    if (!*e && strcmp(path, "/"))
        return LOOM_ERROR(fs->ctx, LOOM_ERR_USAGE, "%s: no such file or directory in the store",
                          path);
    return LOOM_OK;
}

loom_status_t loom_chunks_stat(loom_chunks_t *fs, const char *path, loom_chunks_info_t *info)
{
    loom_ctx_t *ctx = fs->ctx;
    loom_status_t st = LOOM_OK;
    memset(info, 0, sizeof *info);
    if (loom_is_master(ctx)) {
        ch_entry_t *e = NULL;
        st = need_entry(fs, path, &e);
        info->is_dir = !e || e->is_dir;
        if (e && !e->is_dir) {
            info->size = e->size;
            info->chunk_size = e->chunk_size;
            info->nchunks = e->nchunks;
            info->replication = e->repl;
        }
    }
    st = master_check(fs, st);
    if (st == LOOM_OK)
        LOOM_MPI(ctx, MPI_Bcast(info, (int)sizeof *info, MPI_BYTE, 0, loom_comm(ctx)));
    return st;
}

loom_status_t loom_chunks_ls(loom_chunks_t *fs, const char *path, FILE *out)
{
    loom_ctx_t *ctx = fs->ctx;
    loom_status_t st = LOOM_OK;
    if (loom_is_master(ctx)) {
        ch_entry_t *e = NULL;
        st = need_entry(fs, path, &e);
        if (st == LOOM_OK && e && !e->is_dir) {
            fprintf(out, "f %" PRIu64 " %s\n", e->size, e->path);
        } else if (st == LOOM_OK) {
            size_t first, last, pl = strcmp(path, "/") ? strlen(path) : 0;
            ch_meta_below(&fs->meta, path, &first, &last);
            for (size_t i = first; i < last; i++) {
                const ch_entry_t *x = &fs->meta.e[i];
                if (strchr(x->path + pl + 1, '/')) continue; /* deeper */
                fprintf(out, "%c %" PRIu64 " %s\n", x->is_dir ? 'd' : 'f', x->is_dir ? 0 : x->size,
                        x->path);
            }
        }
        fflush(out);
    }
    return master_check(fs, st);
}

loom_status_t loom_chunks_describe(loom_chunks_t *fs, const char *path, FILE *out)
{
    loom_ctx_t *ctx = fs->ctx;
    loom_status_t st = LOOM_OK;
    if (loom_is_master(ctx)) {
        ch_entry_t *e = NULL;
        st = need_file(fs, path, &e);
        if (st == LOOM_OK) {
            fprintf(out,
                    "path %s\nsize %" PRIu64 "\nchunk_size %" PRIu64
                    "\nreplication %d\nchunks %" PRIu64 "\n",
                    e->path, e->size, e->chunk_size, e->repl, e->nchunks);
            for (uint64_t i = 0; i < e->nchunks; i++) {
                const ch_chunk_t *c = &e->chunks[i];
                fprintf(out,
                        "chunk %" PRIu64 " id %016" PRIx64 " version %" PRIu64 " length %" PRIu64
                        " holders ",
                        i, c->id, c->version, c->len);
                size_t a, b;
                int k = 0;
                ch_reps_of(fs, c->id, &a, &b);
                for (size_t r = a; r < b; r++)
                    if (ch_rep_good(&fs->reps[r], c))
                        fprintf(out, "%s%s", k++ ? "," : "",
                                ch_holder_name(fs, fs->reps[r].holder));
                fprintf(out, "%s\n", k ? "" : "-");
            }
            fflush(out);
        }
    }
    return master_check(fs, st);
}

/* This rank's share of `local`'s lines as records (a last line gets its newline). */
static loom_status_t local_records(loom_chunks_t *fs, const char *local, loom_text_chunk_t *tc,
                                   size_t **lens, size_t *n)
{
    loom_ctx_t *ctx = fs->ctx;
    int part = loom_size(ctx) == 1 ? 0 : loom_rank(ctx) - 1;
    *lens = NULL;
    *n = 0;
    LOOM_TRY(loom_text_read_split(ctx, loom_comm(ctx), local, 0, LOOM_TEXT_TO_END, 1, part,
                                  loom_num_workers(ctx), tc));
    loom_status_t st = LOOM_OK;
    if (tc->len && tc->data[tc->len - 1] != '\n') {
        char *d = realloc(tc->data, tc->len + 2);
        if (!d) st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
        if (d) {
            d[tc->len++] = '\n';
            d[tc->len] = '\0';
            tc->data = d;
        }
    }
    size_t cap = 0;
    for (size_t at = 0; st == LOOM_OK && at < tc->len;) {
        const char *nl = memchr(tc->data + at, '\n', tc->len - at);
        size_t l = (size_t)(nl - (tc->data + at)) + 1;
        if (*n == cap) {
            cap = cap ? 2 * cap : 1024;
            size_t *nl2 = realloc(*lens, cap * sizeof *nl2);
            if (!nl2) {
                st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
                break;
            }
            *lens = nl2;
        }
        (*lens)[(*n)++] = l;
        at += l;
    }
    return loom_agree(ctx, loom_comm(ctx), st);
}

loom_status_t loom_chunks_append_lines(loom_chunks_t *fs, const char *path, const char *local,
                                       uint64_t *records, uint64_t *bytes)
{
    loom_ctx_t *ctx = fs->ctx;
    loom_status_t st = LOOM_OK;
    uint64_t sum[2] = {0, 0};
    /* after a death the survivors split the file again among themselves */
    for (int t = 0;; t++) {
        loom_text_chunk_t tc = {0};
        size_t *lens = NULL, n = 0;
        st = local_records(fs, local, &tc, &lens, &n);
        uint64_t mine[2] = {n, tc.len};
        if (st == LOOM_OK) {
            int e = MPI_Allreduce(mine, sum, 2, MPI_UINT64_T, MPI_SUM, loom_comm(ctx));
            if (e != MPI_SUCCESS) st = loom_error_mpi(ctx, e, "MPI_Allreduce", __FILE__, __LINE__);
        }
        if (st == LOOM_OK) st = append_once(fs, path, tc.data, lens, n, NULL);
        free(lens);
        loom_text_chunk_free(&tc);
        if (st != LOOM_ERR_LOST || t == RETRIES) break;
        int done;
        st = after_death(fs, st, &done);
        if (st != LOOM_OK || done) break;
    }
    if (records) *records = sum[0];
    if (bytes) *bytes = sum[1];
    return st;
}
