/* Running a MapReduce job: plan, map, shuffle over the live workers on the data plane's
 * exchange, reduce, output; and, where ULFM lets workers die, the recovery loop. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mr/mr_internal.h"

uint32_t mr_partition_of(mr_engine_t *eng, const void *key, size_t klen, uint64_t h)
{
    if (eng->job->range_partition) return loom_ranges_part(&eng->ranges, key, klen);
    if (eng->job->partition) {
        int p = eng->job->partition(key, klen, eng->nparts, eng->job->user);
        if (p < 0 || p >= eng->nparts) p = (int)((unsigned)p % (unsigned)eng->nparts);
        return (uint32_t)p;
    }
    return loom_part_of_hash(h, (uint32_t)eng->nparts);
}

/* ------------------------------------------------------------------ what a worker received */

/* One source's records of one reduce partition, in key order: a file part
 * (written when memory ran short) followed by a memory part. */
typedef struct stream {
    loom_buf_t mem;
    char *path;
    uint64_t fbytes;
} stream_t;

/* A partition's streams, one per source of the shuffle that filled it. */
typedef struct pstreams {
    int n;
    stream_t *s;
} pstreams_t;

typedef struct recvside {
    pstreams_t *ps; /* [nparts]; only the owner's are filled */
    size_t mem, budget;
    int epoch; /* names spill files apart across shuffles */
} recvside_t;

static void streams_clear(pstreams_t *p)
{
    for (int i = 0; i < p->n; i++) {
        loom_buf_free(&p->s[i].mem);
        if (p->s[i].path) unlink(p->s[i].path);
        free(p->s[i].path);
    }
    free(p->s);
    p->s = NULL;
    p->n = 0;
}

static void recvside_free(recvside_t *rs, int nparts)
{
    for (int p = 0; rs->ps && p < nparts; p++)
        streams_clear(&rs->ps[p]);
    free(rs->ps);
    rs->ps = NULL;
}

/* Write every memory part to its stream's file: what the shuffle does when
 * the received data passes its budget. */
static loom_status_t flush_streams(mr_engine_t *eng, recvside_t *rs)
{
    loom_ctx_t *ctx = eng->ctx;
    for (int p = 0; p < eng->nparts; p++) {
        pstreams_t *ps = &rs->ps[p];
        for (int i = 0; i < ps->n; i++) {
            stream_t *r = &ps->s[i];
            if (!r->mem.len) continue;
            if (!r->path) {
                size_t n = strlen(eng->spill_dir) + 64;
                r->path = malloc(n);
                if (!r->path) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
                snprintf(r->path, n, "%s/recv-%d-p%d-s%d", eng->spill_dir, rs->epoch, p, i);
            }
            FILE *f = fopen(r->path, "ab");
            if (!f)
                return LOOM_ERROR(ctx, LOOM_ERR_IO,
                                  "%s: cannot create spill file: %s (see --spill-dir)", r->path,
                                  strerror(errno));
            size_t w = fwrite(r->mem.data, 1, r->mem.len, f);
            int bad = w != r->mem.len;
            if (fclose(f) != 0) bad = 1;
            if (bad) return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot write spill file", r->path);
            r->fbytes += r->mem.len;
            eng->counts.spill_bytes += (int64_t)r->mem.len;
            eng->counts.spill_runs++;
            r->mem.len = 0;
        }
    }
    rs->mem = 0;
    return LOOM_OK;
}

/* ------------------------------------------------------------------ shuffle */

typedef struct dest {
    int *parts; /* the partitions this destination owns that are shipped now */
    int nparts, pi;
    int open, done, have_pend;
    size_t ri; /* with no spilled runs: next ref of the open partition */
    loom_reader_t *rd;
    loom_reader_t **prd;
    int nrd;
    loom_merge_t m;
    loom_buf_t k, v;
} dest_t;

typedef struct shuffle {
    mr_engine_t *eng;
    mr_store_t *acc;
    recvside_t *rs;
    int L, me;
    loom_kvref_t *refs;
    size_t nrefs, *part_start;
    dest_t *d;
    int64_t rounds;
    uint8_t *told;       /* [L] two levels only: "sent all" was told to d's relay */
    mr_relay_t **relay;  /* [L] as a relay: per destination */
    size_t held;         /* as a relay: bytes held back over all destinations */
    int *slot;           /* [L] two levels: the stream each source's records go to now */
    const uint8_t *redo; /* the partitions this shuffle ships */
} shuffle_t;

static void dest_close(dest_t *d)
{
    loom_merge_free(&d->m);
    for (int i = 0; i < d->nrd; i++)
        loom_reader_close(&d->rd[i]);
    free(d->rd);
    free(d->prd);
    d->rd = NULL;
    d->prd = NULL;
    d->nrd = 0;
    d->open = 0;
}

/* Start a segment [u32 part][u64 len] for partition p. */
static loom_status_t segment_open(loom_exchange_t *x, int d, uint32_t p, size_t *seg)
{
    unsigned char hdr[12] = {0};
    memcpy(hdr, &p, 4);
    *seg = loom_exchange_mark(x);
    return loom_exchange_put(x, d, hdr, 12);
}

static void segment_close(loom_exchange_t *x, size_t seg)
{
    uint64_t seglen = loom_exchange_mark(x) - seg - 12;
    loom_exchange_patch(x, seg + 4, &seglen, 8);
}

/* fill() when nothing was spilled: the sorted refs are each partition's
 * records (keys already unique where a combiner ran), copied straight out. */
static loom_status_t fill_refs(shuffle_t *sh, loom_exchange_t *x, int di)
{
    dest_t *d = &sh->d[di];
    size_t room = loom_exchange_room(x), base = loom_exchange_mark(x);
    while (!d->done) {
        if (d->pi >= d->nparts) {
            d->done = 1;
            break;
        }
        uint32_t p = (uint32_t)d->parts[d->pi];
        if (!d->open) {
            d->ri = sh->part_start[p];
            d->open = 1;
        }
        size_t end = sh->part_start[p + 1], seg;
        if (d->ri < end) {
            const loom_kvref_t *r = &sh->refs[d->ri];
            size_t used = loom_exchange_mark(x) - base;
            if (used > 0 && used + 32 + r->klen + r->vlen > room) break;
            LOOM_TRY(segment_open(x, di, p, &seg));
            for (; d->ri < end; d->ri++) {
                /* sorted refs point all over the arena: fetch keys ahead */
                if (d->ri + 8 < end) __builtin_prefetch(sh->refs[d->ri + 8].key);
                r = &sh->refs[d->ri];
                size_t at = loom_exchange_mark(x);
                if (at - base + 20 + r->klen + r->vlen > room && at > seg + 12) break;
                LOOM_TRY(loom_exchange_put_record(x, di, r->key, r->klen, r->val, r->vlen));
            }
            segment_close(x, seg);
            if (d->ri < end) break;
        }
        d->open = 0;
        d->pi++;
    }
    return LOOM_OK;
}

/* Append the next records for destination di, at most a round's room (one
 * record larger than that travels alone), as segments [u32 part][u64 len][records]. */
static loom_status_t fill(shuffle_t *sh, loom_exchange_t *x, int di)
{
    mr_engine_t *eng = sh->eng;
    loom_ctx_t *ctx = eng->ctx;
    dest_t *d = &sh->d[di];
    if (sh->acc->nruns == 0) return fill_refs(sh, x, di);
    size_t room = loom_exchange_room(x), base = loom_exchange_mark(x);
    size_t seg = SIZE_MAX;
    int seg_part = -1;
    while (!d->done) {
        if (!d->open) {
            if (d->pi >= d->nparts) {
                d->done = 1;
                break;
            }
            uint32_t p = (uint32_t)d->parts[d->pi];
            LOOM_TRY(mr_store_part_readers(sh->acc, sh->refs, sh->part_start, p, &d->rd, &d->nrd));
            LOOM_ALLOC(ctx, d->prd, d->nrd, "merge");
            for (int i = 0; i < d->nrd; i++)
                d->prd[i] = &d->rd[i];
            LOOM_TRY(loom_merge_init(ctx, &d->m, d->prd, d->nrd, eng->job->sort_values));
            d->open = 1;
        }
        if (!d->have_pend) {
            int have;
            LOOM_TRY(mr_merge_next_combined(eng, &d->m, &d->k, &d->v, &have));
            if (!have) {
                dest_close(d);
                d->pi++;
                continue;
            }
            d->have_pend = 1;
        }
        size_t used = loom_exchange_mark(x) - base;
        if (used > 0 && used + 32 + d->k.len + d->v.len > room) break;
        if (seg_part != d->parts[d->pi]) {
            if (seg != SIZE_MAX) segment_close(x, seg);
            seg_part = d->parts[d->pi];
            LOOM_TRY(segment_open(x, di, (uint32_t)seg_part, &seg));
        }
        LOOM_TRY(loom_exchange_put_record(x, di, d->k.data, d->k.len, d->v.data, d->v.len));
        d->have_pend = 0;
    }
    if (seg != SIZE_MAX) segment_close(x, seg);
    return LOOM_OK;
}

static loom_status_t pack(loom_exchange_t *x, void *user, int *more)
{
    shuffle_t *sh = user;
    loom_fault_point(sh->eng->ctx, &sh->eng->fault, LOOM_PHASE_SHUFFLE, sh->rounds++);
    *more = 0;
    for (int d = 0; d < sh->L; d++) {
        LOOM_TRY(fill(sh, x, d));
        if (!sh->d[d].done) *more = 1;
        if (sh->told && sh->d[d].done && !sh->told[d]) {
            /* the relay may stop waiting for this rank's keys of d */
            size_t seg;
            LOOM_TRY(segment_open(x, d, MR_SEG_ALL_SENT, &seg));
            sh->told[d] = 1;
        }
    }
    return LOOM_OK;
}

static loom_status_t combine(loom_exchange_t *x, void *user, int dest, int nseg,
                             const unsigned char *const *seg, const size_t *len, int last,
                             loom_buf_t *out)
{
    shuffle_t *sh = user;
    (void)x;
    /* hold back at most what the receiving side keeps in memory before it spills */
    return mr_relay_combine(sh->eng, sh->relay, dest, nseg, seg, len, last, &sh->held,
                            sh->rs->budget, out);
}

/* Two levels: relay src starts a new sorted run; its later records go to a
 * new stream of every partition this shuffle ships here. */
static loom_status_t new_run(shuffle_t *sh, int src)
{
    mr_engine_t *eng = sh->eng;
    for (int p = 0; p < eng->nparts; p++) {
        pstreams_t *ps = &sh->rs->ps[p];
        if (!sh->redo[p] || eng->owner[p] != sh->me) continue;
        stream_t *s = realloc(ps->s, (size_t)(ps->n + 1) * sizeof *s);
        if (!s) return LOOM_ERROR(eng->ctx, LOOM_ERR_NOMEM, "out of memory: shuffle streams");
        memset(&s[ps->n], 0, sizeof *s);
        ps->s = s;
        sh->slot[src] = ps->n++;
    }
    return LOOM_OK;
}

static loom_status_t unpack(loom_exchange_t *x, void *user, int src, const unsigned char *p,
                            size_t len)
{
    shuffle_t *sh = user;
    mr_engine_t *eng = sh->eng;
    loom_ctx_t *ctx = eng->ctx;
    const unsigned char *e = p + len;
    (void)x;
    while (p < e) {
        uint32_t part = 0;
        uint64_t sl = 0;
        LOOM_TRY(mr_segment_next(ctx, &p, e, &part, &sl));
        if (part == MR_SEG_RUN_BREAK && sh->slot) {
            LOOM_TRY(new_run(sh, src));
            continue;
        }
        if (part >= (uint32_t)eng->nparts || eng->owner[part] != sh->me)
            return LOOM_ERROR(ctx, LOOM_ERR_INTERNAL, "bad shuffle segment for partition %u", part);
        pstreams_t *ps = &sh->rs->ps[part];
        if (ps->n < sh->L || !sh->redo[part])
            return LOOM_ERROR(ctx, LOOM_ERR_INTERNAL, "partition %u is not being received", part);
        LOOM_TRY(loom_buf_append(ctx, &ps->s[sh->slot ? sh->slot[src] : src].mem, p, sl));
        sh->rs->mem += sl;
        p += sl;
    }
    if (sh->rs->mem > sh->rs->budget) LOOM_TRY(flush_streams(eng, sh->rs));
    return LOOM_OK;
}

static void shuffle_free(shuffle_t *sh)
{
    for (int d = 0; sh->d && d < sh->L; d++) {
        dest_close(&sh->d[d]);
        loom_buf_free(&sh->d[d].k);
        loom_buf_free(&sh->d[d].v);
        free(sh->d[d].parts);
    }
    free(sh->d);
    free(sh->refs);
    free(sh->part_start);
    free(sh->told);
    free(sh->slot);
    mr_relay_free(sh->relay, sh->L);
}

/* Collective over the live workers: ship the records of the partitions marked
 * in `redo` from acc to their owners; what an owner held of them before is
 * dropped first. */
static loom_status_t shuffle(mr_engine_t *eng, mr_store_t *acc, recvside_t *rs, const uint8_t *redo)
{
    loom_ctx_t *ctx = eng->ctx;
    MPI_Comm wc = loom_worker_comm(ctx);
    shuffle_t sh = {.eng = eng, .acc = acc, .rs = rs, .redo = redo};
    loom_status_t st = LOOM_OK;
    MPI_Comm_size(wc, &sh.L);
    MPI_Comm_rank(wc, &sh.me);
    rs->epoch++;
    rs->budget = eng->budget / 8;
    for (int p = 0; p < eng->nparts && st == LOOM_OK; p++) {
        if (!redo[p]) continue;
        streams_clear(&rs->ps[p]);
        if (eng->owner[p] != sh.me) continue;
        rs->ps[p].s = calloc((size_t)sh.L, sizeof *rs->ps[p].s);
        if (!rs->ps[p].s) st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory: shuffle");
        rs->ps[p].n = sh.L;
    }
    rs->mem = 0;
    for (int p = 0; p < eng->nparts; p++)
        for (int i = 0; i < rs->ps[p].n; i++)
            rs->mem += rs->ps[p].s[i].mem.len;
    sh.d = calloc((size_t)sh.L, sizeof *sh.d);
    sh.part_start = calloc((size_t)eng->nparts + 1, sizeof *sh.part_start);
    if (!sh.d || !sh.part_start) st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory: shuffle");
    for (int d = 0; st == LOOM_OK && d < sh.L; d++) {
        sh.d[d].parts = malloc((size_t)eng->nparts * sizeof *sh.d[d].parts);
        if (!sh.d[d].parts) st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory: shuffle");
    }
    for (int p = 0; st == LOOM_OK && p < eng->nparts; p++)
        if (redo[p]) {
            dest_t *d = &sh.d[eng->owner[p]];
            d->parts[d->nparts++] = p;
        }
    loom_timer_start(ctx, "sort");
    if (st == LOOM_OK) st = mr_store_sorted(acc, &sh.refs, &sh.nrefs, sh.part_start);
    loom_timer_stop(ctx, "sort");
    /* the slowest worker's sort shows in "sort"; the shuffle starts together */
    st = loom_agree(ctx, wc, st);
    loom_exchange_t *x = NULL;
    /* with a combiner, a node's workers may combine before their keys leave the node */
    loom_exchange_opts_t xo = {.among = LOOM_AMONG_WORKERS,
                               .elem = 1,
                               .budget = eng->budget / 4,
                               .timer = "shuffle",
                               .combine = eng->job->combine ? combine : NULL};
    loom_timer_start(ctx, "shuffle");
    if (st == LOOM_OK) st = loom_exchange_create(ctx, &xo, &x);
    if (st == LOOM_OK && loom_exchange_levels(x) == 2) {
        sh.told = calloc((size_t)sh.L, 1);
        sh.relay = calloc((size_t)sh.L, sizeof *sh.relay);
        sh.slot = malloc((size_t)sh.L * sizeof *sh.slot);
        if (!sh.told || !sh.relay || !sh.slot)
            st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory: shuffle");
        for (int i = 0; sh.slot && i < sh.L; i++)
            sh.slot[i] = i;
    }
    st = loom_agree(ctx, wc, st);
    if (st == LOOM_OK) st = loom_exchange_run(x, pack, unpack, &sh);
    loom_timer_stop(ctx, "shuffle");
    if (x) {
        uint64_t ob, om;
        loom_exchange_offnode(x, &ob, &om);
        eng->counts.shuffle_bytes += (int64_t)loom_exchange_bytes_sent(x);
        eng->counts.offnode_bytes += (int64_t)ob;
        eng->counts.offnode_messages += (int64_t)om;
        if (loom_exchange_nodes(x) > eng->nodes) eng->nodes = loom_exchange_nodes(x);
        if (loom_exchange_levels(x) > eng->levels) eng->levels = loom_exchange_levels(x);
        eng->shuffle_rounds += (int64_t)loom_exchange_rounds(x);
    }
    loom_exchange_destroy(&x);
    shuffle_free(&sh);
    return st;
}

/* ------------------------------------------------------------------ reduce */

struct loom_mr_values {
    mr_engine_t *eng;
    loom_merge_t *m;
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
        it->st = loom_merge_pop(it->eng->ctx, it->m);
        if (it->st != LOOM_OK) return 0;
    }
    loom_reader_t *t = loom_merge_top(it->m);
    if (!t || t->klen != it->klen || (it->klen && memcmp(t->key, it->key, it->klen) != 0)) return 0;
    *val = t->val;
    *len = t->vlen;
    it->need_pop = 1;
    return 1;
}

static loom_status_t reduce_partition(mr_engine_t *eng, recvside_t *rs, int p, const char *dir)
{
    loom_ctx_t *ctx = eng->ctx;
    pstreams_t *ps = &rs->ps[p];
    loom_status_t st = LOOM_OK;
    size_t plen = strlen(dir) + 32;
    char *path = malloc(plen);
    loom_reader_t *rd = calloc((size_t)ps->n * 2 + 1, sizeof *rd);
    loom_reader_t **prd = calloc((size_t)ps->n * 2 + 1, sizeof *prd);
    loom_buf_t kb = {0};
    loom_merge_t m = {0};
    FILE *f = NULL;
    int n = 0;
    if (!path || !rd || !prd) {
        st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory: reduce");
        goto out;
    }
    snprintf(path, plen, "%s/part-%05d", dir, p);
    f = fopen(path, "wb");
    if (!f) {
        st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
        goto out;
    }
    setvbuf(f, NULL, _IOFBF, 1 << 20);
    for (int s = 0; s < ps->n && st == LOOM_OK; s++) {
        stream_t *r = &ps->s[s];
        if (r->fbytes) {
            st = loom_reader_file(ctx, &rd[n], r->path, 0, r->fbytes);
            n++;
            if (st == LOOM_OK) st = loom_reader_next(ctx, &rd[n - 1]);
        }
        if (st == LOOM_OK && r->mem.len) {
            loom_reader_mem(&rd[n], r->mem.data, r->mem.len);
            st = loom_reader_next(ctx, &rd[n++]);
        }
    }
    for (int i = 0; i < n; i++)
        prd[i] = &rd[i];
    if (st == LOOM_OK) st = loom_merge_init(ctx, &m, prd, n, eng->job->sort_values);
    loom_mr_emit_t em = {.kind = MR_EMIT_REDUCE, .eng = eng, .out = f, .out_path = path};
    loom_reader_t *t;
    while (st == LOOM_OK && (t = loom_merge_top(&m))) {
        kb.len = 0;
        st = loom_buf_append(ctx, &kb, t->key, t->klen);
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
        if (st == LOOM_OK && it.need_pop) st = loom_merge_pop(ctx, &m);
    }
    eng->counts.output_records += em.count;
out:
    if (f) {
        int bad = ferror(f);
        if (fclose(f) != 0) bad = 1;
        if (bad && st == LOOM_OK)
            st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    }
    loom_merge_free(&m);
    for (int i = 0; i < n; i++)
        loom_reader_close(&rd[i]);
    free(rd);
    free(prd);
    free(path);
    loom_buf_free(&kb);
    return st;
}

/* Reduce the partitions this worker owns that have no part file yet; each
 * one's received data is dropped once its file is written. */
static loom_status_t reduce_owned(mr_engine_t *eng, recvside_t *rs, const char *dir)
{
    int me = loom_worker_index(eng->ctx);
    int64_t done = 0;
    loom_fault_point(eng->ctx, &eng->fault, LOOM_PHASE_REDUCE, 0);
    for (int p = 0; p < eng->nparts; p++) {
        if (eng->owner[p] != me || eng->reduced[p]) continue;
        LOOM_TRY(reduce_partition(eng, rs, p, dir));
        eng->reduced[p] = 1;
        streams_clear(&rs->ps[p]);
        loom_fault_point(eng->ctx, &eng->fault, LOOM_PHASE_REDUCE, ++done);
    }
    return LOOM_OK;
}

/* ------------------------------------------------------------------ membership */

/* The end of a phase on every rank: the master (which waits for the workers
 * through the shuffle and reduce) waits without spinning; the message of the
 * first failure reaches everyone. */
static loom_status_t phase_end(mr_engine_t *eng, loom_status_t st)
{
    loom_ctx_t *ctx = eng->ctx;
    int failed = st != LOOM_OK, any = 1;
    MPI_Request req;
    int e = MPI_Iallreduce(&failed, &any, 1, MPI_INT, MPI_MAX, loom_comm(ctx), &req);
    if (e != MPI_SUCCESS) return loom_error_mpi(ctx, e, "MPI_Iallreduce", __FILE__, __LINE__);
    LOOM_TRY(loom_wait(ctx, &req, MPI_STATUS_IGNORE));
    return any ? loom_agree(ctx, loom_comm(ctx), st) : LOOM_OK;
}

/* After a phase, where ranks may die (ULFM): do all survivors agree that
 * nobody died? If not, shrink to the survivors and repair the plan: the dead
 * workers' map tasks become idle (their output died with them), their reduce
 * partitions go to the survivors, and `pending` (the partitions a shuffle was
 * shipping when the death came) stay incomplete unless every survivor had
 * finished that shuffle. *again tells the caller to go back to the map phase. */
static loom_status_t members_sync(mr_engine_t *eng, const uint8_t *pending, int shuffled,
                                  int *again)
{
    loom_ctx_t *ctx = eng->ctx;
    *again = 0;
    if (!loom_ft_enabled(ctx)) return LOOM_OK;
    int ok = !loom_members_failed(ctx);
    LOOM_TRY(loom_members_agree(ctx, &ok));
    if (ok) return LOOM_OK;
    int old_workers = loom_num_workers(ctx), old_size = loom_size(ctx);
    loom_recovery_t rec;
    loom_status_t st = loom_members_recover(ctx, &rec);
    if (st != LOOM_OK) {
        loom_recovery_free(&rec);
        return st;
    }
    /* every survivor finished the interrupted shuffle: its data is whole */
    int whole = shuffled;
    int e = MPI_Allreduce(MPI_IN_PLACE, &whole, 1, MPI_INT, MPI_LAND, loom_comm(ctx));
    if (e != MPI_SUCCESS) st = loom_error_mpi(ctx, e, "MPI_Allreduce", __FILE__, __LINE__);
    int L = loom_num_workers(ctx), next = 0;
    for (int p = 0; st == LOOM_OK && p < eng->nparts; p++) {
        int o = eng->owner[p];
        int old_rank = old_size == 1 ? 0 : o + 1;
        int now = o >= 0 && o < old_workers ? rec.new_rank[old_rank] : -1;
        if (pending && pending[p] && whole) eng->complete[p] = 1;
        if (now < 0) {
            /* the owner died with the partition's data and part file */
            eng->owner[p] = next++ % L;
            eng->complete[p] = 0;
            eng->reduced[p] = 0;
        } else {
            eng->owner[p] = L == 1 && loom_size(ctx) == 1 ? 0 : now - 1;
        }
    }
    int64_t n = 0;
    if (st == LOOM_OK) st = mr_map_reconcile(eng, &n);
    if (st == LOOM_OK && loom_is_master(ctx)) {
        eng->lost_workers += rec.nlost;
        if (n > 0)
            loom_log(ctx, LOOM_LOG_WARN, "%s: re-executing %lld map task%s of the dead",
                     eng->job->name ? eng->job->name : "mr", (long long)n, n == 1 ? "" : "s");
    }
    loom_recovery_free(&rec);
    /* the dead ranks' spill directories on this host go now */
    if (st == LOOM_OK) st = loom_spill_sweep(ctx, eng->spill_base);
    *again = 1;
    return st;
}

/* ------------------------------------------------------------------ the job */

static loom_status_t engine_init(mr_engine_t *eng, loom_ctx_t *ctx, const loom_mr_job_t *job)
{
    memset(eng, 0, sizeof *eng);
    eng->ctx = ctx;
    eng->job = job;
    eng->spill.temp = -1;
    LOOM_TRY(loom_fault_parse(
        ctx, job->fault, 1u << LOOM_PHASE_MAP | 1u << LOOM_PHASE_SHUFFLE | 1u << LOOM_PHASE_REDUCE,
        &eng->fault));
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
    eng->owner = malloc((size_t)eng->nparts * sizeof *eng->owner);
    eng->complete = calloc((size_t)eng->nparts, 1);
    eng->reduced = calloc((size_t)eng->nparts, 1);
    if (!eng->owner || !eng->complete || !eng->reduced)
        return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory: partitions");
    int L = loom_num_workers(ctx);
    for (int p = 0; p < eng->nparts; p++)
        eng->owner[p] = p % L;
    const char *sd = job->spill_dir;
    if (!sd || !*sd) sd = getenv("TMPDIR");
    if (!sd || !*sd) sd = "/tmp";
    if (strlen(sd) >= sizeof eng->spill_dir - 128)
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "--spill-dir: path too long");
    snprintf(eng->spill_base, sizeof eng->spill_base, "%s", sd);
    if (access(sd, W_OK | X_OK) != 0)
        return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: spill directory is not writable: %s", sd,
                          strerror(errno));
    if (loom_is_worker(ctx)) {
        LOOM_TRY(loom_spill_dir_create(ctx, sd, "mr", &eng->spill));
        snprintf(eng->spill_dir, sizeof eng->spill_dir, "%s", eng->spill.path);
    }
    return LOOM_OK;
}

static void engine_free(mr_engine_t *eng)
{
    loom_spill_dir_remove(eng->ctx, &eng->spill);
    free(eng->owner);
    free(eng->complete);
    free(eng->reduced);
    free(eng->ts);
    free(eng->committed);
    mr_plan_free(eng);
    mr_chunks_close(eng);
}

/* Sum the per-rank counts and take the master's fault counters. */
static loom_status_t gather_result(mr_engine_t *eng, loom_mr_result_t *res)
{
    loom_ctx_t *ctx = eng->ctx;
    int64_t v[14] = {eng->counts.input_records, eng->counts.map_pairs,
                     eng->counts.shuffle_bytes, eng->counts.output_records,
                     eng->counts.spill_runs,    eng->counts.spill_bytes,
                     eng->reexecuted,           eng->lost_workers,
                     eng->backups_run,          eng->backups_won,
                     eng->local_reads,          eng->remote_reads,
                     eng->counts.offnode_bytes, eng->counts.offnode_messages};
    int64_t g[14], nl[3] = {eng->nodes, eng->levels, eng->shuffle_rounds};
    LOOM_MPI(ctx, MPI_Allreduce(v, g, 14, MPI_INT64_T, MPI_SUM, loom_comm(ctx)));
    LOOM_MPI(ctx, MPI_Allreduce(MPI_IN_PLACE, nl, 3, MPI_INT64_T, MPI_MAX, loom_comm(ctx)));
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
    res->store_local_reads = g[10];
    res->store_remote_reads = g[11];
    res->shuffle_offnode_bytes = g[12];
    res->shuffle_offnode_messages = g[13];
    res->shuffle_nodes = nl[0];
    res->shuffle_levels = nl[1];
    res->shuffle_rounds = nl[2];
    return LOOM_OK;
}

/* The output may not be, hold or sit inside what the job reads. */
static loom_status_t check_output(mr_engine_t *eng, unsigned flags)
{
    const loom_mr_job_t *job = eng->job;
    int n = job->ninputs + (int)eng->nfiles;
    const char **in = malloc((size_t)(n ? n : 1) * sizeof *in);
    if (!in) return LOOM_ERROR(eng->ctx, LOOM_ERR_NOMEM, "out of memory");
    for (int i = 0; i < job->ninputs; i++)
        in[i] = job->inputs[i];
    for (uint32_t f = 0; f < eng->nfiles; f++)
        in[job->ninputs + (int)f] = eng->files[f];
    loom_status_t st = loom_output_check(eng->ctx, loom_comm(eng->ctx), job->output, flags, in, n);
    free(in);
    return st;
}

/* Map, shuffle and reduce into `dir`, going round again after each recovery. */
static loom_status_t run_phases(mr_engine_t *eng, mr_store_t *acc, recvside_t *rs, const char *dir)
{
    loom_ctx_t *ctx = eng->ctx;
    int ft = loom_ft_enabled(ctx);
    uint8_t *redo = malloc((size_t)eng->nparts);
    if (!redo) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    loom_status_t st = LOOM_OK, ss = LOOM_OK;
    for (int attempt = 0;; attempt++) {
        int again = 0;
        loom_timer_start(ctx, "map");
        st = mr_map_phase(eng, acc);
        loom_timer_stop(ctx, "map");
        LOOM_TRY_GOTO(ss, members_sync(eng, NULL, 0, &again), out);
        if (again) continue;
        st = phase_end(eng, st);
        if (st != LOOM_OK) break;
        if (attempt) loom_members_resumed(ctx);

        int any = 0;
        for (int p = 0; p < eng->nparts; p++)
            any |= redo[p] = !eng->complete[p];
        int shuffled = 1;
        if (any && loom_is_worker(ctx)) {
            st = shuffle(eng, acc, rs, redo);
            shuffled = st == LOOM_OK;
            /* without recovery the map output is not needed again */
            if (st == LOOM_OK && !ft) mr_store_free(acc);
        }
        LOOM_TRY_GOTO(ss, members_sync(eng, redo, shuffled, &again), out);
        if (again) continue;
        st = phase_end(eng, st);
        if (st != LOOM_OK) break;
        for (int p = 0; p < eng->nparts; p++)
            if (redo[p]) eng->complete[p] = 1;

        loom_timer_start(ctx, "reduce");
        if (loom_is_worker(ctx)) st = reduce_owned(eng, rs, dir);
        loom_timer_stop(ctx, "reduce");
        LOOM_TRY_GOTO(ss, members_sync(eng, NULL, 0, &again), out);
        if (again) continue;
        st = phase_end(eng, st);
        break;
    }
out:
    free(redo);
    return ss != LOOM_OK ? ss : st;
}

loom_status_t loom_mr_run(loom_ctx_t *ctx, const loom_mr_job_t *job, loom_mr_result_t *result)
{
    MPI_Comm comm = loom_comm(ctx);
    mr_engine_t eng;
    loom_output_t *out = NULL;
    mr_store_t acc;
    recvside_t rs = {0};
    int acc_init = 0;
    loom_output_parts_t *parts = NULL;
    loom_status_t st = engine_init(&eng, ctx, job);
    st = loom_agree(ctx, comm, st);
    if (st != LOOM_OK) goto done;
    st = loom_spill_sweep(ctx, eng.spill_base);
    if (st != LOOM_OK) goto done;

    loom_timer_start(ctx, "plan");
    st = mr_chunks_open(&eng);
    if (st == LOOM_OK) st = mr_plan(&eng);
    if (st == LOOM_OK && job->range_partition) st = mr_sample_bounds(&eng);
    loom_timer_stop(ctx, "plan");
    if (st != LOOM_OK) goto done;
    int h5out = loom_output_is_h5(job->output);
    unsigned flags = (h5out ? 0 : LOOM_OUTPUT_DIR) | (job->overwrite ? LOOM_OUTPUT_OVERWRITE : 0);
    LOOM_TRY_GOTO(st, check_output(&eng, flags), done);
    LOOM_TRY_GOTO(st, loom_output_begin(ctx, comm, job->output, flags, &out), done);
    /* HDF5: part files go to a directory beside the temporary file, then into it */
    if (h5out && (st = loom_output_parts_begin(ctx, comm, out, &parts)) != LOOM_OK) goto finish;
    const char *dir = h5out ? loom_output_parts_dir(parts) : loom_output_path(out);

    eng.ts = calloc((size_t)(eng.ntasks ? eng.ntasks : 1), sizeof *eng.ts);
    eng.committed = malloc((size_t)(eng.ntasks ? eng.ntasks : 1) * sizeof *eng.committed);
    rs.ps = calloc((size_t)eng.nparts, sizeof *rs.ps);
    if (!eng.ts || !eng.committed || !rs.ps) st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    st = loom_agree(ctx, comm, st);
    if (st != LOOM_OK) goto finish;
    mr_store_init(&acc, &eng, eng.budget / 2);
    acc_init = 1;
    st = run_phases(&eng, &acc, &rs, dir);
    comm = loom_comm(ctx); /* a recovery replaces it */
finish:
    if (h5out) {
        static const loom_lines_t lines[] = {[LOOM_MR_OUT_KV] = LOOM_LINES_KV,
                                             [LOOM_MR_OUT_KEY] = LOOM_LINES_KEY,
                                             [LOOM_MR_OUT_VALUE] = LOOM_LINES_VALUE};
        st = loom_output_parts_end(ctx, loom_comm(ctx), out, &parts, eng.nparts,
                                   lines[job->output_mode], st);
    }
    if (acc_init) mr_store_free(&acc);
    recvside_free(&rs, eng.nparts);
    st = loom_output_end(ctx, &out, st);
done:
    if (st == LOOM_OK) {
        loom_mr_result_t r;
        st = gather_result(&eng, &r);
        if (result) *result = r;
    }
    engine_free(&eng);
    return st;
}
