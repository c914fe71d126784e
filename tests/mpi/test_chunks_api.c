/* MPI tests of the chunk store's API on the worker ranks: record append from every worker at
 * once (each record whole, at the offset returned, inside one chunk, nothing padded; an
 * oversized record refused), the namespace folded into a checkpoint and replayed with the log
 * after it, errors that every rank agrees on, and a holder's replicas lost and healed. Every
 * case opens a fresh store with 64 KiB chunks under the test's scratch directory. */
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "loom/chunks.h"
#include "loom_test.h"

#define CS ((size_t)65536) /* chunk size of every store here */

/* ------------------------------------------------------------------ helpers */

static int me(void)
{
    return loom_rank(loom_test_ctx);
}

static int nranks(void)
{
    return loom_size(loom_test_ctx);
}

static void barrier(void)
{
    MPI_Barrier(loom_comm(loom_test_ctx));
}

/* Whether `st` is the same on every rank. */
static int agreed(loom_status_t st)
{
    int v = (int)st, lo = 0, hi = 0;
    MPI_Allreduce(&v, &lo, 1, MPI_INT, MPI_MIN, loom_comm(loom_test_ctx));
    MPI_Allreduce(&v, &hi, 1, MPI_INT, MPI_MAX, loom_comm(loom_test_ctx));
    return lo == hi;
}

/* An expected failure: the same everywhere, then forgotten. */
static void expect_failure(loom_status_t st, loom_status_t want, const char *what)
{
    CU_ASSERT(agreed(st));
    if (want != LOOM_OK) {
        CU_ASSERT_EQUAL(st, want);
    } else {
        CU_ASSERT_NOT_EQUAL(st, LOOM_OK);
    }
    if (st == LOOM_OK || (want != LOOM_OK && st != want))
        fprintf(stderr, "[r%d] %s: status %d (%s), expected %s\n", me(), what, (int)st,
                loom_error_message(loom_test_ctx),
                want != LOOM_OK ? loom_status_name(want) : "a failure");
    loom_error_clear(loom_test_ctx);
}

/* Rank 0 empties `base` (removing what an earlier run left) and creates it. */
static void fresh_dir(const char *base)
{
    if (me() == 0) {
        loom_test_rmtree(base);
        CU_ASSERT_EQUAL(mkdir(base, 0755), 0);
    }
    barrier();
}

static void drop_dir(const char *base)
{
    barrier();
    if (me() == 0) loom_test_rmtree(base);
    barrier();
}

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= UINT64_C(0xff51afd7ed558ccd);
    x ^= x >> 33;
    x *= UINT64_C(0xc4ceb9fe1a85ec53);
    x ^= x >> 33;
    return x;
}

/* Deterministic bytes for `seed`. */
static void fill(unsigned char *p, size_t n, uint64_t seed)
{
    uint64_t s = mix(seed + 1);
    for (size_t i = 0; i < n; i++) {
        if (i % 8 == 0) s = mix(s + i);
        p[i] = (unsigned char)(s >> (8 * (i % 8)));
    }
}

/* A whole local file (malloc'd; NULL when it cannot be read). */
static unsigned char *slurp(const char *path, size_t *n)
{
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    unsigned char *buf = NULL;
    size_t cap = 0;
    for (;;) {
        if (*n == cap) {
            cap = cap ? 2 * cap : 65536;
            unsigned char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t r = fread(buf + *n, 1, cap - *n, f);
        *n += r;
        if (r == 0) break;
    }
    fclose(f);
    return buf ? buf : malloc(1);
}

/* Rank 0 writes `n` bytes of seed `seed` to `path`; every rank returns the bytes. */
static unsigned char *make_local(const char *path, size_t n, uint64_t seed)
{
    unsigned char *b = malloc(n ? n : 1);
    if (b) fill(b, n, seed);
    if (me() == 0) {
        FILE *f = fopen(path, "wb");
        CU_ASSERT_PTR_NOT_NULL(f);
        if (f) {
            CU_ASSERT_EQUAL(fwrite(b, 1, n, f), n);
            CU_ASSERT_EQUAL(fclose(f), 0);
        }
    }
    return b;
}

/* Whether local file `path` holds exactly `want`. */
static int same_bytes(const char *path, const unsigned char *want, size_t n)
{
    size_t got = 0;
    unsigned char *b = slurp(path, &got);
    int ok = b && got == n && (n == 0 || memcmp(b, want, n) == 0);
    if (!ok)
        fprintf(stderr, "[r%d] %s: %zu bytes, expected %zu (or different)\n", me(), path, got, n);
    free(b);
    return ok;
}

static off_t local_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? sb.st_size : -1;
}

static loom_status_t open_store(const char *root, uint64_t checkpoint_bytes, int replication,
                                loom_chunks_t **fs)
{
    loom_chunks_opts_t o = {
        .chunk_size = CS, .checkpoint_bytes = checkpoint_bytes, .replication = replication};
    loom_status_t st = loom_chunks_open(loom_test_ctx, root, &o, fs);
    CU_ASSERT_EQUAL(st, LOOM_OK);
    if (st != LOOM_OK)
        fprintf(stderr, "[r%d] open %s: %s\n", me(), root, loom_error_message(loom_test_ctx));
    return st;
}

/* A file's size from stat, or UINT64_MAX when stat fails (then the error is forgotten). */
static uint64_t store_size(loom_chunks_t *fs, const char *path)
{
    loom_chunks_info_t info;
    loom_status_t st = loom_chunks_stat(fs, path, &info);
    if (st != LOOM_OK) {
        loom_error_clear(loom_test_ctx);
        return UINT64_MAX;
    }
    return info.is_dir ? UINT64_MAX - 1 : info.size;
}

/* stat of `path` fails with LOOM_ERR_USAGE everywhere. */
static void expect_missing(loom_chunks_t *fs, const char *path)
{
    loom_chunks_info_t info;
    expect_failure(loom_chunks_stat(fs, path, &info), LOOM_ERR_USAGE, path);
}

/* fsck's count (rank 0 keeps its report in *text when text is not NULL). */
static int64_t fsck(loom_chunks_t *fs, char **text)
{
    size_t tl = 0;
    char *t = NULL;
    FILE *out = me() == 0 ? open_memstream(&t, &tl) : NULL;
    int64_t problems = -1;
    CU_ASSERT_EQUAL(loom_chunks_fsck(fs, out, &problems), LOOM_OK);
    if (out) fclose(out);
    if (text)
        *text = t;
    else
        free(t);
    return problems;
}

/* ------------------------------------------------------------------ record append */

#define NREC 500
#define MAXREC 3000

static size_t rec_len(int rank, int call, int i)
{
    if (i == 0) return 1;
    if (i == 1) return MAXREC;
    return 1 +
           (size_t)(mix(((uint64_t)rank << 40) ^ ((uint64_t)call << 20) ^ (uint64_t)i) % MAXREC);
}

/* Record i of `rank`'s call `call`: "r<rank>-c<call>-i<i>:" then bytes, cut to its length. */
static void rec_make(unsigned char *out, int rank, int call, int i)
{
    size_t n = rec_len(rank, call, i);
    char hdr[64];
    int h = snprintf(hdr, sizeof hdr, "r%d-c%d-i%d:", rank, call, i);
    fill(out, n, ((uint64_t)rank << 48) ^ ((uint64_t)call << 32) ^ (uint64_t)i);
    memcpy(out, hdr, (size_t)h < n ? (size_t)h : n);
}

/* A record as gathered: where it landed and whose it is. */
typedef struct placed {
    uint64_t off, len, rank, call, idx;
} placed_t;

static int cmp_placed(const void *a, const void *b)
{
    const placed_t *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

/* Every rank's records of both calls, on every rank. */
static placed_t *gather_placed(const placed_t *mine, int n, int *total)
{
    MPI_Comm comm = loom_comm(loom_test_ctx);
    int P = nranks(), words = n * 5;
    int *counts = calloc((size_t)P, sizeof *counts), *displs = calloc((size_t)P, sizeof *displs);
    MPI_Allgather(&words, 1, MPI_INT, counts, 1, MPI_INT, comm);
    int sum = 0;
    for (int r = 0; r < P; r++) {
        displs[r] = sum;
        sum += counts[r];
    }
    placed_t *all = malloc((size_t)(sum ? sum : 1) * sizeof(uint64_t));
    MPI_Allgatherv(mine, words, MPI_UINT64_T, all, counts, displs, MPI_UINT64_T, comm);
    free(counts);
    free(displs);
    *total = sum / 5;
    return all;
}

/* Rank 0: the chunk lengths loom_chunks_describe prints for `path`. */
static uint64_t *chunk_lengths(loom_chunks_t *fs, const char *path, uint64_t *n, loom_status_t *st)
{
    char *text = NULL;
    size_t tl = 0;
    FILE *out = me() == 0 ? open_memstream(&text, &tl) : NULL;
    *st = loom_chunks_describe(fs, path, out);
    *n = 0;
    if (!out) return NULL;
    fclose(out);
    uint64_t *lens = NULL, cap = 0;
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        uint64_t i, v, l;
        if (sscanf(line, "chunk %" SCNu64 " id %*s version %" SCNu64 " length %" SCNu64, &i, &v,
                   &l) == 3) {
            if (*n == cap) {
                cap = cap ? 2 * cap : 64;
                lens = realloc(lens, cap * sizeof *lens);
            }
            CU_ASSERT_EQUAL(i, *n);
            lens[(*n)++] = l;
        }
        line = nl ? nl + 1 : NULL;
    }
    free(text);
    return lens;
}

static void test_record_append(void)
{
    char base[1024], root[2048], out[2048];
    snprintf(base, sizeof base, "%s/chunks_api_append", loom_test_tmpdir());
    snprintf(root, sizeof root, "%s/store", base);
    snprintf(out, sizeof out, "%s/app.out", base);
    fresh_dir(base);
    loom_chunks_t *fs = NULL;
    if (open_store(root, 0, 0, &fs) != LOOM_OK) return; /* agreed */
    const char *path = "/logs/app";
    int P = nranks(), worker = P == 1 || me() > 0;
    int n = worker ? NREC : 0;
    placed_t mine[2 * NREC];
    int nmine = 0;
    uint64_t expect_total = 0; /* of the calls that succeeded */
    int calls_ok = 0;
    loom_status_t st = LOOM_OK;
    for (int call = 0; call < 2; call++) {
        size_t *lens = NULL, bytes = 0;
        unsigned char *data = NULL;
        uint64_t *offs = NULL;
        if (n) {
            lens = malloc((size_t)n * sizeof *lens);
            offs = malloc((size_t)n * sizeof *offs);
            for (int i = 0; i < n; i++)
                bytes += lens[i] = rec_len(me(), call, i);
            data = malloc(bytes);
            for (int i = 0, at = 0; i < n; at += (int)lens[i], i++)
                rec_make(data + at, me(), call, i);
            for (int i = 0; i < n; i++)
                offs[i] = UINT64_MAX;
        }
        st = loom_chunks_append(fs, path, data, lens, (size_t)n, offs);
        CU_ASSERT_EQUAL(st, LOOM_OK);
        CU_ASSERT(agreed(st));
        if (st != LOOM_OK) { /* agreed: the checks below go on with the calls that succeeded */
            fprintf(stderr, "[r%d] append %d: %s\n", me(), call, loom_error_message(loom_test_ctx));
            loom_error_clear(loom_test_ctx);
        } else {
            calls_ok++;
            for (int r = P == 1 ? 0 : 1; r < P; r++)
                for (int i = 0; i < NREC; i++)
                    expect_total += rec_len(r, call, i);
        }
        for (int i = 0; st == LOOM_OK && i < n; i++)
            mine[nmine++] =
                (placed_t){offs[i], lens[i], (uint64_t)me(), (uint64_t)call, (uint64_t)i};
        free(lens);
        free(offs);
        free(data);
    }

    loom_chunks_info_t info;
    st = loom_chunks_stat(fs, path, &info);
    CU_ASSERT_EQUAL(st, LOOM_OK);
    CU_ASSERT_EQUAL(info.is_dir, 0);
    CU_ASSERT_EQUAL(info.chunk_size, CS);
    CU_ASSERT_EQUAL(info.size, expect_total); /* no padding: the records fill the file */
    CU_ASSERT(info.nchunks >= (expect_total + CS - 1) / CS);
    if (info.size != expect_total)
        fprintf(stderr, "[r%d] %s: size %" PRIu64 ", the records hold %" PRIu64 "\n", me(), path,
                info.size, expect_total);

    /* every record, gathered: distinct offsets, no overlap, together the whole file */
    int ntotal = 0;
    placed_t *all = gather_placed(mine, nmine, &ntotal);
    CU_ASSERT_EQUAL((uint64_t)ntotal, (uint64_t)(P == 1 ? 1 : P - 1) * (uint64_t)calls_ok * NREC);
    qsort(all, (size_t)ntotal, sizeof *all, cmp_placed);
    uint64_t sum = 0, overlaps = 0, beyond = 0;
    for (int k = 0; k < ntotal; k++) {
        sum += all[k].len;
        if (k + 1 < ntotal && all[k].off + all[k].len > all[k + 1].off) overlaps++;
        if (all[k].off + all[k].len > info.size) beyond++;
    }
    CU_ASSERT_EQUAL(sum, expect_total);
    CU_ASSERT_EQUAL(overlaps, 0);
    CU_ASSERT_EQUAL(beyond, 0);

    /* the file read back on every rank: each record byte-identical at its offset */
    st = loom_chunks_get(fs, path, out, 0);
    CU_ASSERT_EQUAL(st, LOOM_OK);
    if (st != LOOM_OK) {
        fprintf(stderr, "[r%d] get %s: %s\n", me(), path, loom_error_message(loom_test_ctx));
        loom_error_clear(loom_test_ctx);
    }
    size_t flen = 0;
    unsigned char *file = st == LOOM_OK ? slurp(out, &flen) : NULL;
    CU_ASSERT_PTR_NOT_NULL(file);
    CU_ASSERT_EQUAL(flen, expect_total);
    unsigned char *want = malloc(MAXREC);
    int bad = 0;
    for (int k = 0; file && k < ntotal; k++) {
        rec_make(want, (int)all[k].rank, (int)all[k].call, (int)all[k].idx);
        if (all[k].len != rec_len((int)all[k].rank, (int)all[k].call, (int)all[k].idx) ||
            all[k].off + all[k].len > flen || memcmp(file + all[k].off, want, all[k].len) != 0) {
            if (bad++ < 5)
                fprintf(stderr,
                        "[r%d] record r%" PRIu64 " c%" PRIu64 " i%" PRIu64 " (%" PRIu64
                        " bytes) not found at offset %" PRIu64 "\n",
                        me(), all[k].rank, all[k].call, all[k].idx, all[k].len, all[k].off);
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
    free(want);
    free(file);

    /* no record straddles a chunk boundary (rank 0 reads the chunks' lengths) */
    uint64_t nch = 0;
    uint64_t *clen = chunk_lengths(fs, path, &nch, &st);
    CU_ASSERT_EQUAL(st, LOOM_OK);
    if (me() == 0 && st == LOOM_OK) {
        CU_ASSERT_EQUAL(nch, info.nchunks);
        uint64_t *start = calloc(nch + 1, sizeof *start);
        for (uint64_t c = 0; c < nch; c++) {
            CU_ASSERT(clen[c] <= CS);
            start[c + 1] = start[c] + clen[c];
        }
        CU_ASSERT_EQUAL(start[nch], info.size);
        int straddle = 0;
        for (int k = 0, c = 0; k < ntotal; k++) {
            while ((uint64_t)c < nch && start[c + 1] <= all[k].off)
                c++;
            if ((uint64_t)c == nch || all[k].off + all[k].len > start[c + 1]) {
                if (straddle++ < 5)
                    fprintf(stderr, "record at %" PRIu64 " (%" PRIu64 " bytes) straddles a chunk\n",
                            all[k].off, all[k].len);
            }
        }
        CU_ASSERT_EQUAL(straddle, 0);
        free(start);
    }
    free(clen);
    free(all);

    /* a record longer than a quarter chunk is refused everywhere; nothing changes. The last
     * worker alone appends it, with a record that fits after it */
    loom_chunks_info_t before, after;
    CU_ASSERT_EQUAL(loom_chunks_stat(fs, path, &before), LOOM_OK);
    {
        unsigned char *big = calloc(CS / 4 + 1 + 16, 1);
        size_t lens[2] = {CS / 4 + 1, 16};
        size_t k = worker && me() == P - 1 ? 2 : 0;
        st = loom_chunks_append(fs, path, k ? big : NULL, k ? lens : NULL, k, NULL);
        expect_failure(st, LOOM_ERR_USAGE, "append of an oversized record");
        free(big);
    }
    CU_ASSERT_EQUAL(loom_chunks_stat(fs, path, &after), LOOM_OK);
    CU_ASSERT_EQUAL(after.size, before.size);
    CU_ASSERT_EQUAL(after.nchunks, before.nchunks);
    /* ... while exactly a quarter is accepted (from the first worker alone) */
    {
        unsigned char *q = malloc(CS / 4);
        memset(q, 'q', CS / 4);
        size_t ql = CS / 4;
        uint64_t qoff = UINT64_MAX;
        int first = me() == (P == 1 ? 0 : 1);
        st = loom_chunks_append(fs, path, q, first ? &ql : NULL, first ? 1 : 0, &qoff);
        CU_ASSERT_EQUAL(st, LOOM_OK);
        if (st != LOOM_OK) {
            fprintf(stderr, "[r%d] append of a quarter chunk: %s\n", me(),
                    loom_error_message(loom_test_ctx));
            loom_error_clear(loom_test_ctx);
        }
        CU_ASSERT_EQUAL(loom_chunks_stat(fs, path, &after), LOOM_OK);
        CU_ASSERT_EQUAL(after.size, before.size + CS / 4);
        if (first && st == LOOM_OK) CU_ASSERT(qoff >= before.size && qoff < after.size);
        free(q);
    }
    CU_ASSERT_EQUAL(loom_chunks_close(&fs), LOOM_OK);
    CU_ASSERT_PTR_NULL(fs);
    drop_dir(base);
}

/* ------------------------------------------------------------------ checkpoint and replay */

static void test_checkpoint_replay(void)
{
    char base[1024], root[2048], la[2048], lb[2048], lc[2048], ld[2048], le[2048], out[2048],
        ckpt[4096], logp[4096];
    snprintf(base, sizeof base, "%s/chunks_api_ckpt", loom_test_tmpdir());
    snprintf(root, sizeof root, "%s/store", base);
    snprintf(la, sizeof la, "%s/a.bin", base);
    snprintf(lb, sizeof lb, "%s/b.bin", base);
    snprintf(lc, sizeof lc, "%s/c.bin", base);
    snprintf(ld, sizeof ld, "%s/d.bin", base);
    snprintf(le, sizeof le, "%s/e.bin", base);
    snprintf(ckpt, sizeof ckpt, "%s/master/checkpoint", root);
    snprintf(logp, sizeof logp, "%s/master/log", root);
    fresh_dir(base);
    const size_t na = 3 * CS + 1234, nb = 70000, nc = 5000, nd = 777, ne = CS + 1;
    unsigned char *a = make_local(la, na, 1), *b = make_local(lb, nb, 2),
                  *c = make_local(lc, nc, 3), *d = make_local(ld, nd, 4),
                  *e = make_local(le, ne, 5);
    barrier();

    loom_chunks_t *fs = NULL;
    if (open_store(root, 1, 0, &fs) != LOOM_OK) goto done;
    CU_ASSERT_EQUAL(loom_chunks_put(fs, la, "/dir/x/a"), LOOM_OK);
    CU_ASSERT_EQUAL(loom_chunks_put(fs, lb, "/dir/x/b"), LOOM_OK);
    CU_ASSERT_EQUAL(loom_chunks_put(fs, lc, "/dir/c"), LOOM_OK);
    CU_ASSERT_EQUAL(loom_chunks_put(fs, ld, "/keep/d"), LOOM_OK);
    CU_ASSERT_EQUAL(loom_chunks_mkdir(fs, "/new/parent"), LOOM_OK);
    CU_ASSERT_EQUAL(loom_chunks_rename(fs, "/dir", "/new/parent/moved"), LOOM_OK);
    CU_ASSERT_EQUAL(loom_chunks_remove(fs, "/new/parent/moved/x/b", 0), LOOM_OK);
    CU_ASSERT_EQUAL(store_size(fs, "/new/parent/moved/x/a"), na); /* before the fold, too */
    CU_ASSERT_EQUAL(loom_chunks_close(&fs), LOOM_OK);
    CU_ASSERT_PTR_NULL(fs);
    if (me() == 0) { /* folded: a checkpoint, and an empty log */
        CU_ASSERT(local_size(ckpt) > 0);
        CU_ASSERT_EQUAL(local_size(logp), 0);
    }
    barrier();

    /* the checkpoint replayed */
    if (open_store(root, (uint64_t)1 << 40, 0, &fs) != LOOM_OK) goto done;
    CU_ASSERT_EQUAL(store_size(fs, "/new/parent/moved/x/a"), na);
    CU_ASSERT_EQUAL(store_size(fs, "/new/parent/moved/c"), nc);
    CU_ASSERT_EQUAL(store_size(fs, "/keep/d"), nd);
    CU_ASSERT_EQUAL(store_size(fs, "/new/parent/moved/x"), UINT64_MAX - 1); /* a directory */
    expect_missing(fs, "/new/parent/moved/x/b");
    expect_missing(fs, "/dir");
    expect_missing(fs, "/dir/x/a");
    snprintf(out, sizeof out, "%s/a.out", base);
    CU_ASSERT_EQUAL(loom_chunks_get(fs, "/new/parent/moved/x/a", out, 0), LOOM_OK);
    CU_ASSERT(same_bytes(out, a, na));
    /* one more change each way, kept in the log only */
    CU_ASSERT_EQUAL(loom_chunks_rename(fs, "/new/parent/moved/c", "/c2"), LOOM_OK);
    CU_ASSERT_EQUAL(loom_chunks_put(fs, le, "/keep"), LOOM_OK); /* into the directory */
    CU_ASSERT_EQUAL(loom_chunks_remove(fs, "/keep/d", 0), LOOM_OK);
    CU_ASSERT_EQUAL(loom_chunks_close(&fs), LOOM_OK);
    if (me() == 0) { /* not folded: the log holds the changes */
        CU_ASSERT(local_size(ckpt) > 0);
        CU_ASSERT(local_size(logp) > 0);
    }
    barrier();

    /* the checkpoint and then the log replayed */
    if (open_store(root, (uint64_t)1 << 40, 0, &fs) != LOOM_OK) goto done;
    CU_ASSERT_EQUAL(store_size(fs, "/new/parent/moved/x/a"), na);
    CU_ASSERT_EQUAL(store_size(fs, "/c2"), nc);
    CU_ASSERT_EQUAL(store_size(fs, "/keep/e.bin"), ne);
    expect_missing(fs, "/new/parent/moved/c");
    expect_missing(fs, "/keep/d");
    expect_missing(fs, "/new/parent/moved/x/b");
    snprintf(out, sizeof out, "%s/c2.out", base);
    CU_ASSERT_EQUAL(loom_chunks_get(fs, "/c2", out, 0), LOOM_OK);
    CU_ASSERT(same_bytes(out, c, nc));
    snprintf(out, sizeof out, "%s/e.out", base);
    CU_ASSERT_EQUAL(loom_chunks_get(fs, "/keep/e.bin", out, 0), LOOM_OK);
    CU_ASSERT(same_bytes(out, e, ne));
    snprintf(out, sizeof out, "%s/a2.out", base);
    CU_ASSERT_EQUAL(loom_chunks_get(fs, "/new/parent/moved/x/a", out, 0), LOOM_OK);
    CU_ASSERT(same_bytes(out, a, na));
    /* the removed files' replicas went with them: nothing orphaned */
    char *text = NULL;
    int64_t problems = fsck(fs, &text);
    CU_ASSERT_EQUAL(problems, 0);
    if (me() == 0 && problems != 0 && text) fprintf(stderr, "fsck after the replays:\n%s", text);
    free(text);
    CU_ASSERT_EQUAL(loom_chunks_close(&fs), LOOM_OK);
done:
    free(a);
    free(b);
    free(c);
    free(d);
    free(e);
    drop_dir(base);
}

/* ------------------------------------------------------------------ errors agree */

static void test_errors_agree(void)
{
    char base[1024], root[2048], missing[2048], plain[2048], lp[2048];
    snprintf(base, sizeof base, "%s/chunks_api_errors", loom_test_tmpdir());
    snprintf(root, sizeof root, "%s/store", base);
    snprintf(missing, sizeof missing, "%s/no-such-file", base);
    snprintf(plain, sizeof plain, "%s/plain-file", base);
    snprintf(lp, sizeof lp, "%s/p.bin", base);
    fresh_dir(base);
    unsigned char *p = make_local(lp, 1000, 7);
    if (me() == 0) {
        FILE *f = fopen(plain, "w");
        CU_ASSERT_PTR_NOT_NULL(f);
        if (f) fclose(f);
    }
    barrier();

    /* a root that is a regular file */
    loom_chunks_t *fs = (loom_chunks_t *)&fs; /* not NULL: open must clear it */
    loom_chunks_opts_t o = {.chunk_size = CS};
    expect_failure(loom_chunks_open(loom_test_ctx, plain, &o, &fs), LOOM_ERR_USAGE,
                   "open of a regular file");
    CU_ASSERT_PTR_NULL(fs);
    fs = NULL;

    if (open_store(root, 0, 0, &fs) != LOOM_OK) goto done;
    /* a local file that is missing */
    expect_failure(loom_chunks_put(fs, missing, "/x"), LOOM_OK, "put of a missing local file");
    expect_missing(fs, "/x");
    /* rename onto an existing file, remove of the root */
    CU_ASSERT_EQUAL(loom_chunks_put(fs, lp, "/p"), LOOM_OK);
    CU_ASSERT_EQUAL(loom_chunks_put(fs, lp, "/q"), LOOM_OK);
    expect_failure(loom_chunks_rename(fs, "/p", "/q"), LOOM_ERR_USAGE, "rename onto a file");
    expect_failure(loom_chunks_remove(fs, "/", 1), LOOM_ERR_USAGE, "remove of /");
    CU_ASSERT_EQUAL(store_size(fs, "/p"), 1000);
    CU_ASSERT_EQUAL(store_size(fs, "/q"), 1000);
    CU_ASSERT_EQUAL(loom_chunks_close(&fs), LOOM_OK);
done:
    free(p);
    drop_dir(base);
}

/* ------------------------------------------------------------------ heal */

static int ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), t = strlen(tail);
    return n >= t && !strcmp(s + n - t, tail);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Rank 0: delete every replica file of the first holder (by name) that keeps one; returns the
 * files deleted. */
static int drop_one_holder(const char *root)
{
    char hdir[4096], path[8500];
    snprintf(hdir, sizeof hdir, "%s/holders", root);
    DIR *d = opendir(hdir);
    CU_ASSERT_PTR_NOT_NULL(d);
    if (!d) return 0;
    char *names[64];
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < 64)
        if (de->d_name[0] != '.') names[n++] = strdup(de->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    int deleted = 0;
    for (int i = 0; i < n && !deleted; i++) {
        snprintf(path, sizeof path, "%s/%s", hdir, names[i]);
        DIR *h = opendir(path);
        if (!h) continue;
        while ((de = readdir(h)))
            if (ends_with(de->d_name, ".chunk") || ends_with(de->d_name, ".crc")) {
                char f[8800];
                snprintf(f, sizeof f, "%s/%s", path, de->d_name);
                deleted += unlink(f) == 0;
            }
        closedir(h);
        if (deleted) fprintf(stderr, "dropped %d replica files of holder %s\n", deleted, names[i]);
    }
    for (int i = 0; i < n; i++)
        free(names[i]);
    return deleted;
}

static void test_heal_lost_replica(void)
{
    if (loom_num_workers(loom_test_ctx) < 2) return; /* one holder: nothing to heal from */
    char base[1024], root[2048], local[2048], out[2048];
    snprintf(base, sizeof base, "%s/chunks_api_heal", loom_test_tmpdir());
    snprintf(root, sizeof root, "%s/store", base);
    snprintf(local, sizeof local, "%s/three.bin", base);
    snprintf(out, sizeof out, "%s/three.out", base);
    fresh_dir(base);
    const size_t n = 3 * CS - 1000;
    unsigned char *data = make_local(local, n, 11);
    barrier();
    loom_chunks_t *fs = NULL;
    if (open_store(root, 0, 2, &fs) != LOOM_OK) goto done;
    CU_ASSERT_EQUAL(loom_chunks_put(fs, local, "/three"), LOOM_OK);
    loom_chunks_info_t info;
    CU_ASSERT_EQUAL(loom_chunks_stat(fs, "/three", &info), LOOM_OK);
    CU_ASSERT_EQUAL(info.nchunks, 3);
    CU_ASSERT_EQUAL(info.replication, 2);
    CU_ASSERT_EQUAL(fsck(fs, NULL), 0);

    barrier();
    if (me() == 0) CU_ASSERT(drop_one_holder(root) > 0);
    barrier();

    char *text = NULL;
    int64_t problems = fsck(fs, &text);
    CU_ASSERT(problems > 0);
    if (me() == 0) {
        CU_ASSERT_PTR_NOT_NULL(text);
        if (text) CU_ASSERT_PTR_NOT_NULL(strstr(text, "under-replicated"));
        if (problems <= 0 && text) fprintf(stderr, "fsck after the loss:\n%s", text);
    }
    free(text);
    loom_status_t st = loom_chunks_heal(fs);
    CU_ASSERT_EQUAL(st, LOOM_OK);
    if (st != LOOM_OK) fprintf(stderr, "[r%d] heal: %s\n", me(), loom_error_message(loom_test_ctx));
    loom_error_clear(loom_test_ctx);
    text = NULL;
    problems = fsck(fs, &text);
    CU_ASSERT_EQUAL(problems, 0);
    if (me() == 0 && problems != 0 && text) fprintf(stderr, "fsck after heal:\n%s", text);
    if (me() == 0 && text) CU_ASSERT_PTR_NOT_NULL(strstr(text, "healthy"));
    free(text);
    CU_ASSERT_EQUAL(loom_chunks_get(fs, "/three", out, 0), LOOM_OK);
    CU_ASSERT(same_bytes(out, data, n));
    CU_ASSERT_EQUAL(loom_chunks_close(&fs), LOOM_OK);
done:
    free(data);
    drop_dir(base);
}

static void register_suites(void)
{
    static const CU_TestInfo tests[] = {
        {"record append from every worker", test_record_append},
        {"checkpoint, log and replay", test_checkpoint_replay},
        {"errors agreed on every rank", test_errors_agree},
        {"a holder's replicas lost and healed", test_heal_lost_replica},
        CU_TEST_INFO_NULL,
    };
    loom_test_suite("chunks_api", tests);
}

int main(int argc, char **argv)
{
    return loom_test_main(argc, argv, register_suites);
}
