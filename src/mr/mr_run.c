/* Running a MapReduce job: plan, map, shuffle over the live workers in Alltoallv rounds, reduce,
 * output. */
#include <errno.h>
#include <limits.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/hash.h"
#include "loom/graph.h"
#include "mr/mr_internal.h"

uint32_t mr_partition_of(mr_engine_t *eng, const void *key, size_t klen, uint64_t h)
{
    if (eng->job->range_partition) {
        /* the number of bounds <= key: equal keys always land together */
        size_t lo = 0, hi = eng->nbounds;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (loom_sort_cmp_bytes(eng->bound_key[mid], eng->bound_len[mid], key, klen) <= 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        return (uint32_t)lo;
    }
    if (eng->job->partition) {
        int p = eng->job->partition(key, klen, eng->nparts, eng->job->user);
        if (p < 0 || p >= eng->nparts) p = (int)((unsigned)p % (unsigned)eng->nparts);
        return (uint32_t)p;
    }
    return (uint32_t)(((h >> 32) * (uint64_t)eng->nparts) >> 32);
}

/* ------------------------------------------------------------------ shuffle */

/* What one worker holds of one reduce partition from one source: a file part
 * (written when memory ran short) followed by a memory part. */
typedef struct recvrun {
    mr_buf_t mem;
    char *path;
    uint64_t fbytes;
} recvrun_t;

typedef struct dest {
    uint32_t next_part; /* next partition this destination owns */
    int open, done, have_pend;
    size_t ri; /* with no spilled runs: next ref of next_part (open) */
    mr_reader_t *rd;
    mr_reader_t **prd;
    int nrd;
    mr_merge_t m;
    mr_buf_t k, v;
} dest_t;

typedef struct shuffle {
    mr_engine_t *eng;
    MPI_Comm comm;
    int L, me;
    mr_store_t *acc;
    loom_kvref_t *refs;
    size_t nrefs, *part_start;
    dest_t *d;
    recvrun_t *runs; /* [local partition j][source s] */
    int nlocal;
    size_t chunk, recv_mem, recv_budget;
} shuffle_t;

static void dest_close(dest_t *d)
{
    mr_merge_free(&d->m);
    for (int i = 0; i < d->nrd; i++)
        mr_reader_close(&d->rd[i]);
    free(d->rd);
    free(d->prd);
    d->rd = NULL;
    d->prd = NULL;
    d->nrd = 0;
    d->open = 0;
}

/* Start a segment [u32 part][u64 len] for partition p at the end of b. */
static loom_status_t segment_open(loom_ctx_t *ctx, mr_buf_t *b, uint32_t p, size_t *seg)
{
    unsigned char hdr[12] = {0};
    memcpy(hdr, &p, 4);
    *seg = b->len;
    return mr_buf_append(ctx, b, hdr, 12);
}

static void segment_close(mr_buf_t *b, size_t seg)
{
    uint64_t seglen = b->len - seg - 12;
    memcpy(b->data + seg + 4, &seglen, 8);
}

/* One destination's share of a round is one MPI message (int count): only a
 * single record over 2 GiB can pass that, rounds being at most 8 MiB. */
static loom_status_t fits_message(loom_ctx_t *ctx, size_t n)
{
    if (n > INT_MAX)
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                          "a shuffle record of %zu bytes is too large for one message", n);
    return LOOM_OK;
}

/* fill() when nothing was spilled: the sorted refs are each partition's
 * records (keys already unique where a combiner ran), copied straight out. */
static loom_status_t fill_refs(shuffle_t *sh, int di, mr_buf_t *b)
{
    loom_ctx_t *ctx = sh->eng->ctx;
    dest_t *d = &sh->d[di];
    size_t base = b->len;
    while (!d->done) {
        uint32_t p = d->next_part;
        if (p >= (uint32_t)sh->eng->nparts) {
            d->done = 1;
            break;
        }
        if (!d->open) {
            d->ri = sh->part_start[p];
            d->open = 1;
        }
        size_t end = sh->part_start[p + 1], seg;
        if (d->ri < end) {
            const loom_kvref_t *r = &sh->refs[d->ri];
            if (b->len > base && b->len - base + 32 + r->klen + r->vlen > sh->chunk) break;
            LOOM_TRY(segment_open(ctx, b, p, &seg));
            for (; d->ri < end; d->ri++) {
                /* sorted refs point all over the arena: fetch keys ahead */
                if (d->ri + 8 < end) __builtin_prefetch(sh->refs[d->ri + 8].key);
                r = &sh->refs[d->ri];
                if (b->len - base + 20 + r->klen + r->vlen > sh->chunk && b->len > seg + 12) break;
                LOOM_TRY(mr_buf_put_record(ctx, b, r->key, r->klen, r->val, r->vlen));
            }
            segment_close(b, seg);
            if (d->ri < end) break;
        }
        d->open = 0;
        d->next_part += (uint32_t)sh->L;
    }
    return fits_message(ctx, b->len - base);
}

/* Append to b the next records for destination di, at most `chunk` bytes
 * (unless one record is larger), as segments [u32 part][u64 len][records]. */
static loom_status_t fill(shuffle_t *sh, int di, mr_buf_t *b)
{
    mr_engine_t *eng = sh->eng;
    loom_ctx_t *ctx = eng->ctx;
    dest_t *d = &sh->d[di];
    if (sh->acc->nruns == 0) return fill_refs(sh, di, b);
    size_t base = b->len;
    size_t seg = SIZE_MAX;
    uint32_t seg_part = UINT32_MAX;
    while (!d->done) {
        if (!d->open) {
            if (d->next_part >= (uint32_t)eng->nparts) {
                d->done = 1;
                break;
            }
            LOOM_TRY(mr_store_part_readers(sh->acc, sh->refs, sh->part_start, d->next_part, &d->rd,
                                           &d->nrd));
            LOOM_ALLOC(ctx, d->prd, d->nrd, "merge");
            for (int i = 0; i < d->nrd; i++)
                d->prd[i] = &d->rd[i];
            LOOM_TRY(mr_merge_init(ctx, &d->m, d->prd, d->nrd, eng->job->sort_values));
            d->open = 1;
        }
        if (!d->have_pend) {
            int have;
            LOOM_TRY(mr_merge_next_combined(eng, &d->m, &d->k, &d->v, &have));
            if (!have) {
                dest_close(d);
                d->next_part += (uint32_t)sh->L;
                continue;
            }
            d->have_pend = 1;
        }
        size_t need = 20 + d->k.len + d->v.len;
        if (b->len > base && b->len - base + need + 12 > sh->chunk) break;
        if (seg_part != d->next_part) {
            seg_part = d->next_part;
            LOOM_TRY(segment_open(ctx, b, seg_part, &seg));
        }
        LOOM_TRY(mr_buf_put_record(ctx, b, d->k.data, d->k.len, d->v.data, d->v.len));
        segment_close(b, seg);
        d->have_pend = 0;
    }
    return fits_message(ctx, b->len - base);
}

static loom_status_t flush_runs(shuffle_t *sh)
{
    loom_ctx_t *ctx = sh->eng->ctx;
    for (int i = 0; i < sh->nlocal * sh->L; i++) {
        recvrun_t *r = &sh->runs[i];
        if (!r->mem.len) continue;
        if (!r->path && !(r->path = mr_spill_path(sh->eng, "recv")))
            return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
        FILE *f = fopen(r->path, "ab");
        if (!f)
            return LOOM_ERROR(ctx, LOOM_ERR_IO,
                              "%s: cannot create spill file: %s (see --spill-dir)", r->path,
                              strerror(errno));
        size_t n = fwrite(r->mem.data, 1, r->mem.len, f);
        int bad = n != r->mem.len;
        if (fclose(f) != 0) bad = 1;
        if (bad) return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot write spill file", r->path);
        r->fbytes += r->mem.len;
        sh->eng->counts.spill_bytes += (int64_t)r->mem.len;
        sh->eng->counts.spill_runs++;
        r->mem.len = 0;
    }
    sh->recv_mem = 0;
    return LOOM_OK;
}

static loom_status_t absorb(shuffle_t *sh, int src, const unsigned char *p, size_t len)
{
    loom_ctx_t *ctx = sh->eng->ctx;
    const unsigned char *e = p + len;
    while (p < e) {
        uint32_t part;
        uint64_t sl;
        if ((size_t)(e - p) < 12) return LOOM_ERROR(ctx, LOOM_ERR_INTERNAL, "bad shuffle segment");
        memcpy(&part, p, 4);
        memcpy(&sl, p + 4, 8);
        p += 12;
        int j = (int)(part / (uint32_t)sh->L);
        if (part % (uint32_t)sh->L != (uint32_t)sh->me || j >= sh->nlocal || sl > (uint64_t)(e - p))
            return LOOM_ERROR(ctx, LOOM_ERR_INTERNAL, "bad shuffle segment for partition %u", part);
        recvrun_t *r = &sh->runs[j * sh->L + src];
        LOOM_TRY(mr_buf_append(ctx, &r->mem, p, sl));
        sh->recv_mem += sl;
        p += sl;
    }
    if (sh->recv_mem > sh->recv_budget) LOOM_TRY(flush_runs(sh));
    return LOOM_OK;
}

static loom_status_t shuffle_rounds(shuffle_t *sh)
{
    mr_engine_t *eng = sh->eng;
    loom_ctx_t *ctx = eng->ctx;
    int L = sh->L;
    loom_status_t st = LOOM_OK;
    mr_buf_t sendall = {0}, recvall = {0};
    int *sc = calloc((size_t)L * 4, sizeof *sc);
    if (!sc) st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory: shuffle");
    int *sd = sc + L, *rc = sc + 2 * L, *rd = sc + 3 * L;
    for (;;) {
        int more = 0;
        sendall.len = 0;
        loom_timer_start(ctx, "shuffle_pack");
        for (int d = 0; d < L && st == LOOM_OK; d++) {
            size_t at = sendall.len;
            st = fill(sh, d, &sendall);
            if (st == LOOM_OK && sendall.len > INT_MAX)
                st = LOOM_ERROR(ctx, LOOM_ERR_USAGE, "shuffle round larger than 2 GiB");
            sd[d] = (int)at;
            sc[d] = (int)(sendall.len - at);
            if (!sh->d[d].done) more = 1;
        }
        loom_timer_stop(ctx, "shuffle_pack");
        st = loom_agree(ctx, sh->comm, st);
        if (st != LOOM_OK) break;
        loom_timer_start(ctx, "shuffle_exchange");
        if (MPI_Alltoall(sc, 1, MPI_INT, rc, 1, MPI_INT, sh->comm) != MPI_SUCCESS) {
            st = LOOM_ERROR(ctx, LOOM_ERR_MPI, "MPI_Alltoall failed in the shuffle");
            break;
        }
        size_t total = 0;
        for (int s = 0; s < L; s++) {
            rd[s] = (int)total;
            total += (size_t)rc[s];
        }
        if (total > INT_MAX)
            st = LOOM_ERROR(ctx, LOOM_ERR_USAGE, "shuffle round larger than 2 GiB");
        if (st == LOOM_OK) {
            recvall.len = 0;
            st = mr_buf_reserve(ctx, &recvall, total + 1);
        }
        st = loom_agree(ctx, sh->comm, st);
        if (st != LOOM_OK) break;
        int rc_mpi =
            MPI_Alltoallv(sendall.data, sc, sd, MPI_BYTE, recvall.data, rc, rd, MPI_BYTE, sh->comm);
        loom_timer_stop(ctx, "shuffle_exchange");
        if (rc_mpi != MPI_SUCCESS) {
            st = loom_error_mpi(ctx, rc_mpi, "MPI_Alltoallv", __FILE__, __LINE__);
            break;
        }
        eng->counts.shuffle_bytes += (int64_t)sendall.len;
        loom_timer_start(ctx, "shuffle_unpack");
        for (int s = 0; s < L && st == LOOM_OK; s++)
            st = absorb(sh, s, recvall.data + rd[s], (size_t)rc[s]);
        loom_timer_stop(ctx, "shuffle_unpack");
        st = loom_agree(ctx, sh->comm, st);
        if (st != LOOM_OK) break;
        int any = 0;
        if (MPI_Allreduce(&more, &any, 1, MPI_INT, MPI_MAX, sh->comm) != MPI_SUCCESS) {
            st = LOOM_ERROR(ctx, LOOM_ERR_MPI, "MPI_Allreduce failed in the shuffle");
            break;
        }
        if (!any) break;
    }
    free(sc);
    mr_buf_free(&sendall);
    mr_buf_free(&recvall);
    return st;
}

/* ------------------------------------------------------------------ reduce */

struct loom_mr_values {
    mr_engine_t *eng;
    mr_merge_t *m;
    const unsigned char *key;
    size_t klen;
    int need_pop;
    loom_status_t st;
};

int loom_mr_values_next(loom_mr_values_t *it, const void **val, size_t *len)
{
    if (it->st != LOOM_OK) return 0;
    if (it->need_pop) {
        it->need_pop = 0;
        it->st = mr_merge_pop(it->eng->ctx, it->m);
        if (it->st != LOOM_OK) return 0;
    }
    mr_reader_t *t = mr_merge_top(it->m);
    if (!t || t->klen != it->klen || (it->klen && memcmp(t->key, it->key, it->klen) != 0)) return 0;
    *val = t->val;
    *len = t->vlen;
    it->need_pop = 1;
    return 1;
}

static loom_status_t reduce_partition(shuffle_t *sh, int j, const char *dir)
{
    mr_engine_t *eng = sh->eng;
    loom_ctx_t *ctx = eng->ctx;
    int L = sh->L;
    uint32_t p = (uint32_t)(sh->me + j * L);
    loom_status_t st = LOOM_OK;
    size_t plen = strlen(dir) + 32;
    char *path = malloc(plen);
    mr_reader_t *rd = calloc((size_t)L * 2, sizeof *rd);
    mr_reader_t **prd = calloc((size_t)L * 2, sizeof *prd);
    mr_buf_t kb = {0};
    mr_merge_t m = {0};
    FILE *f = NULL;
    int n = 0;
    if (!path || !rd || !prd) {
        st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory: reduce");
        goto out;
    }
    snprintf(path, plen, "%s/part-%05u", dir, p);
    f = fopen(path, "wb");
    if (!f) {
        st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
        goto out;
    }
    setvbuf(f, NULL, _IOFBF, 1 << 20);
    for (int s = 0; s < L && st == LOOM_OK; s++) {
        recvrun_t *r = &sh->runs[j * L + s];
        if (r->fbytes) {
            st = mr_reader_file(ctx, &rd[n], r->path, 0, r->fbytes);
            n++;
            if (st == LOOM_OK) st = mr_reader_next(ctx, &rd[n - 1]);
        }
        if (st == LOOM_OK && r->mem.len) {
            mr_reader_mem(&rd[n], r->mem.data, r->mem.len);
            st = mr_reader_next(ctx, &rd[n++]);
        }
    }
    for (int i = 0; i < n; i++)
        prd[i] = &rd[i];
    if (st == LOOM_OK) st = mr_merge_init(ctx, &m, prd, n, eng->job->sort_values);
    loom_mr_emit_t em = {.kind = MR_EMIT_REDUCE, .eng = eng, .out = f, .out_path = path};
    mr_reader_t *t;
    while (st == LOOM_OK && (t = mr_merge_top(&m))) {
        kb.len = 0;
        st = mr_buf_append(ctx, &kb, t->key, t->klen);
        if (st != LOOM_OK) break;
        loom_mr_values_t it = {.eng = eng, .m = &m, .key = kb.data, .klen = kb.len};
        if (eng->job->reduce) {
            st = eng->job->reduce(ctx, kb.data, kb.len, &it, &em, eng->job->user);
        } else {
            const void *v;
            size_t vl;
            while (st == LOOM_OK && loom_mr_values_next(&it, &v, &vl))
                st = loom_mr_emit(&em, kb.data, kb.len, v, vl);
        }
        const void *v;
        size_t vl;
        while (st == LOOM_OK && loom_mr_values_next(&it, &v, &vl)) {
        }
        if (st == LOOM_OK) st = it.st;
        if (st == LOOM_OK && it.need_pop) st = mr_merge_pop(ctx, &m);
    }
    eng->counts.output_records += em.count;
out:
    if (f) {
        int bad = ferror(f);
        if (fclose(f) != 0) bad = 1;
        if (bad && st == LOOM_OK)
            st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    }
    mr_merge_free(&m);
    for (int i = 0; i < n; i++)
        mr_reader_close(&rd[i]);
    free(rd);
    free(prd);
    free(path);
    mr_buf_free(&kb);
    return st;
}

static void shuffle_free(shuffle_t *sh)
{
    for (int d = 0; sh->d && d < sh->L; d++) {
        dest_close(&sh->d[d]);
        mr_buf_free(&sh->d[d].k);
        mr_buf_free(&sh->d[d].v);
    }
    free(sh->d);
    for (int i = 0; sh->runs && i < sh->nlocal * sh->L; i++) {
        mr_buf_free(&sh->runs[i].mem);
        if (sh->runs[i].path) unlink(sh->runs[i].path);
        free(sh->runs[i].path);
    }
    free(sh->runs);
    free(sh->refs);
    free(sh->part_start);
}

/* Collective over `live` (the live workers): shuffle acc to the partition
 * owners, then reduce every local partition into dir/part-NNNNN. */
static loom_status_t shuffle_reduce(mr_engine_t *eng, MPI_Comm live, mr_store_t *acc,
                                    const char *dir)
{
    loom_ctx_t *ctx = eng->ctx;
    shuffle_t sh = {.eng = eng, .comm = live, .acc = acc};
    loom_status_t st = LOOM_OK;
    MPI_Comm_size(live, &sh.L);
    MPI_Comm_rank(live, &sh.me);
    sh.nlocal = eng->nparts > sh.me ? (eng->nparts - sh.me + sh.L - 1) / sh.L : 0;
    sh.chunk = eng->budget / 8 / (size_t)sh.L;
    if (sh.chunk < 65536) sh.chunk = 65536;
    if (sh.chunk > (8u << 20)) sh.chunk = 8u << 20;
    sh.recv_budget = eng->budget / 8;
    sh.d = calloc((size_t)sh.L, sizeof *sh.d);
    sh.runs = calloc((size_t)(sh.nlocal ? sh.nlocal : 1) * (size_t)sh.L, sizeof *sh.runs);
    sh.part_start = calloc((size_t)eng->nparts + 1, sizeof *sh.part_start);
    if (!sh.d || !sh.runs || !sh.part_start)
        st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory: shuffle");
    for (int d = 0; sh.d && d < sh.L; d++)
        sh.d[d].next_part = (uint32_t)d;
    loom_timer_start(ctx, "sort");
    if (st == LOOM_OK) st = mr_store_sorted(acc, &sh.refs, &sh.nrefs, sh.part_start);
    loom_timer_stop(ctx, "sort");
    /* the slowest worker's sort shows in "sort"; the shuffle starts together */
    st = loom_agree(ctx, live, st);
    loom_timer_start(ctx, "shuffle");
    if (st == LOOM_OK) st = shuffle_rounds(&sh);
    loom_timer_stop(ctx, "shuffle");
    /* the sorted refs point into acc; both can go before reducing */
    free(sh.refs);
    sh.refs = NULL;
    for (int d = 0; d < sh.L && sh.d; d++)
        dest_close(&sh.d[d]);
    if (st == LOOM_OK) mr_store_free(acc);
    loom_timer_start(ctx, "reduce");
    for (int j = 0; j < sh.nlocal && st == LOOM_OK; j++)
        st = reduce_partition(&sh, j, dir);
    loom_timer_stop(ctx, "reduce");
    shuffle_free(&sh);
    return st;
}

/* ------------------------------------------------------------------ the job */

static loom_status_t parse_fault(mr_engine_t *eng, const char *spec)
{
    loom_ctx_t *ctx = eng->ctx;
    eng->lose_rank = eng->slow_rank = -1;
    if (!spec || !*spec) return LOOM_OK;
    int w, n, used = 0;
    double s;
    int size = loom_size(ctx);
    if (sscanf(spec, "lose-worker:%d@map:%d%n", &w, &n, &used) == 2 && spec[used] == 0) {
        if (n < 0)
            return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "--inject-fault %s: N must be >= 0", spec);
        eng->lose_rank = w;
        eng->lose_after = n;
    } else if (sscanf(spec, "slow-worker:%d:%lf%n", &w, &s, &used) == 2 && spec[used] == 0) {
        if (!(s >= 0 && s < 1e6))
            return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "--inject-fault %s: bad SECONDS", spec);
        eng->slow_rank = w;
        eng->slow_seconds = s;
    } else {
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                          "--inject-fault %s: expected lose-worker:W@map:N or "
                          "slow-worker:W:SECONDS",
                          spec);
    }
    int first = size == 1 ? 0 : 1;
    if (w < first || w >= size)
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                          "--inject-fault %s: W must be a worker's rank (%d..%d at %d ranks)", spec,
                          first, size - 1, size);
    return LOOM_OK;
}

static loom_status_t engine_init(mr_engine_t *eng, loom_ctx_t *ctx, const loom_mr_job_t *job)
{
    memset(eng, 0, sizeof *eng);
    eng->ctx = ctx;
    eng->job = job;
    LOOM_TRY(parse_fault(eng, job->fault));
    if (!job->map) return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "MapReduce job without a map function");
    if (!job->output || !*job->output)
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "%s: no output directory (--out DIR)",
                          job->name ? job->name : "job");
    if (job->sort_values && job->combine)
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "sort_values and a combiner do not go together");
    eng->nparts = job->reducers > 0 ? job->reducers : loom_num_workers(ctx);
    if (eng->nparts < 1) eng->nparts = 1;
    eng->budget = job->memory ? job->memory : ((size_t)1 << 30);
    if (eng->budget < 65536)
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "--memory %zu: at least 64K is needed", eng->budget);
    eng->split_size = job->split_size;
    if (!eng->split_size) {
        eng->split_size = eng->budget / 4;
        if (eng->split_size > (32u << 20)) eng->split_size = 32u << 20;
    }
    if (eng->split_size < 1) eng->split_size = 1;
    eng->max_record = job->max_record ? job->max_record : (64u << 20);
    const char *sd = job->spill_dir;
    if (!sd || !*sd) sd = getenv("TMPDIR");
    if (!sd || !*sd) sd = "/tmp";
    if (strlen(sd) >= sizeof eng->spill_dir - 1)
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "--spill-dir: path too long");
    strcpy(eng->spill_dir, sd);
    if (access(sd, W_OK | X_OK) != 0)
        return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: spill directory is not writable: %s", sd,
                          strerror(errno));
    return LOOM_OK;
}

static loom_status_t write_success(loom_ctx_t *ctx, const char *dir)
{
    size_t n = strlen(dir) + 16;
    char *p = malloc(n);
    if (!p) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    snprintf(p, n, "%s/_SUCCESS", dir);
    FILE *f = fopen(p, "wb");
    loom_status_t st = LOOM_OK;
    if (!f || fclose(f) != 0)
        st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot create: %s", p, strerror(errno));
    free(p);
    return st;
}

/* Sum the per-rank counts and take the master's fault counters. */
static loom_status_t gather_result(mr_engine_t *eng, loom_mr_result_t *res)
{
    loom_ctx_t *ctx = eng->ctx;
    int64_t v[12] = {eng->counts.input_records,
                     eng->counts.map_pairs,
                     eng->counts.shuffle_bytes,
                     eng->counts.output_records,
                     eng->counts.spill_runs,
                     eng->counts.spill_bytes,
                     eng->reexecuted,
                     eng->lost_workers,
                     eng->backups_run,
                     eng->backups_won,
                     0,
                     0};
    int64_t g[12];
    LOOM_MPI(ctx, MPI_Allreduce(v, g, 12, MPI_INT64_T, MPI_SUM, loom_comm(ctx)));
    memset(res, 0, sizeof *res);
    res->map_tasks = eng->ntasks;
    res->input_files = eng->nfiles;
    res->input_bytes = (int64_t)eng->total_bytes;
    res->input_records = g[0];
    res->map_pairs = g[1];
    res->shuffle_bytes = g[2];
    res->output_records = g[3];
    res->spill_runs = g[4];
    res->spill_bytes = g[5];
    res->reexecuted_tasks = g[6];
    res->lost_workers = g[7];
    res->backups_run = g[8];
    res->backups_won = g[9];
    return LOOM_OK;
}

loom_status_t loom_mr_run(loom_ctx_t *ctx, const loom_mr_job_t *job, loom_mr_result_t *result)
{
    MPI_Comm comm = loom_comm(ctx);
    int size = loom_size(ctx), rank = loom_rank(ctx);
    mr_engine_t eng;
    loom_output_t *out = NULL;
    mr_store_t acc;
    MPI_Comm live = MPI_COMM_NULL;
    int *alive = NULL;
    int acc_init = 0;
    char *partdir = NULL;
    loom_status_t st = engine_init(&eng, ctx, job);
    st = loom_agree(ctx, comm, st);
    if (st != LOOM_OK) return st;

    loom_timer_start(ctx, "plan");
    st = mr_plan(&eng);
    if (st == LOOM_OK && job->range_partition) st = mr_sample_bounds(&eng);
    loom_timer_stop(ctx, "plan");
    if (st != LOOM_OK) goto done;
    int h5out = mr_output_is_h5(job->output);
    LOOM_TRY_GOTO(st, loom_output_begin(ctx, comm, job->output, !h5out, &out), done);
    if (h5out) {
        /* part files go to a directory beside the temporary file, then into it */
        size_t n = strlen(loom_output_path(out)) + 8;
        partdir = malloc(n);
        if (partdir) snprintf(partdir, n, "%s.parts", loom_output_path(out));
        if (!partdir)
            st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
        else if (rank == 0 && mkdir(partdir, 0777) != 0)
            st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot create: %s", partdir, strerror(errno));
        st = loom_agree(ctx, comm, st);
        if (st != LOOM_OK) goto finish;
    }
    const char *dir = h5out ? partdir : loom_output_path(out);

    alive = calloc((size_t)size, sizeof *alive);
    if (!alive) st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    mr_store_init(&acc, &eng, eng.budget / 2);
    acc_init = 1;
    loom_timer_start(ctx, "map");
    if (st == LOOM_OK) st = mr_map_phase(&eng, &acc, alive);
    loom_timer_stop(ctx, "map");
    st = loom_agree(ctx, comm, st);
    if (st != LOOM_OK) goto finish;

    if (MPI_Bcast(alive, size, MPI_INT, 0, comm) != MPI_SUCCESS) {
        st = LOOM_ERROR(ctx, LOOM_ERR_MPI, "MPI_Bcast of the live workers failed");
        goto finish;
    }
    /* The reduce side runs over the workers still alive: a lost one drops out here. */
    if (MPI_Comm_split(comm, alive[rank] ? 0 : MPI_UNDEFINED, rank, &live) != MPI_SUCCESS) {
        st = LOOM_ERROR(ctx, LOOM_ERR_MPI, "MPI_Comm_split of the live workers failed");
        goto finish;
    }
    if (live != MPI_COMM_NULL) {
        st = shuffle_reduce(&eng, live, &acc, dir);
    } else {
        /* every rank names the same phases */
        static const char *const phases[] = {
            "sort", "shuffle", "shuffle_pack", "shuffle_exchange", "shuffle_unpack", "reduce"};
        for (size_t i = 0; i < sizeof phases / sizeof *phases; i++) {
            loom_timer_start(ctx, phases[i]);
            loom_timer_stop(ctx, phases[i]);
        }
    }
    st = loom_agree(ctx, comm, st);
    if (st == LOOM_OK && rank == 0)
        st = h5out ? mr_h5_from_parts(&eng, partdir, loom_output_path(out))
                   : write_success(ctx, loom_output_path(out));
finish:
    if (partdir && rank == 0) mr_parts_remove(partdir, eng.nparts);
    free(partdir);
    if (acc_init) mr_store_free(&acc);
    st = loom_output_end(ctx, &out, st);
done:
    if (live != MPI_COMM_NULL) MPI_Comm_free(&live);
    free(alive);
    if (st == LOOM_OK) {
        loom_mr_result_t r;
        st = gather_result(&eng, &r);
        if (result) *result = r;
    }
    mr_plan_free(&eng);
    return st;
}
