/* Keeping the chunk store whole: re-replicating what lost replicas, deleting stale, damaged
 * and orphaned replicas, evening out the holders, and checking every replica (fsck). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "chunks/chunks_internal.h"

/* ------------------------------------------------------------------ placement */

int ch_place(loom_chunks_t *fs, uint64_t len, int k, const char *exclude, uint64_t *planned,
             int32_t *out)
{
    int got = 0;
    while (got < k) {
        int best = -1;
        for (int w = 0; w < fs->nholders; w++) {
            if (exclude && exclude[w]) continue;
            int taken = 0;
            for (int i = 0; i < got; i++)
                taken |= out[i] == w;
            if (taken) continue;
            const ch_holder_t *h = &fs->holders[w];
            if (h->free < planned[w] || h->free - planned[w] < len) continue;
            if (best < 0 || h->used + planned[w] < fs->holders[best].used + planned[best]) best = w;
        }
        if (best < 0) break;
        out[got++] = best;
        planned[best] += len;
    }
    return got;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The sorted ids every file refers to. */
static loom_status_t referenced(loom_chunks_t *fs, uint64_t **ids, size_t *n)
{
    ch_meta_t *m = &fs->meta;
    size_t total = 0;
    for (size_t i = 0; i < m->n; i++)
        total += m->e[i].nchunks;
    uint64_t *a = malloc((total ? total : 1) * sizeof *a);
    if (!a) return LOOM_ERROR(fs->ctx, LOOM_ERR_NOMEM, "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < m->n; i++)
        for (uint64_t c = 0; c < m->e[i].nchunks; c++)
            a[k++] = m->e[i].chunks[c].id;
    qsort(a, k, sizeof *a, cmp_u64);
    *ids = a;
    *n = k;
    return LOOM_OK;
}

static int is_referenced(const uint64_t *ids, size_t n, uint64_t id)
{
    return bsearch(&id, ids, n, sizeof *ids, cmp_u64) != NULL;
}

static loom_status_t add_pair(loom_chunks_t *fs, loom_buf_t *b, int holder, uint64_t id)
{
    uint64_t pair[2] = {(uint64_t)holder, id};
    return loom_buf_append(fs->ctx, b, pair, sizeof pair);
}

static loom_status_t plan_grow(loom_chunks_t *fs, ch_plan_t *p)
{
    ch_commit_t *c = realloc(p->c, (p->nc + 1) * sizeof *c);
    if (c) p->c = c;
    ch_task_t *t = realloc(p->t, (p->nt + 1) * sizeof *t);
    if (t) p->t = t;
    if (!c || !t) return LOOM_ERROR(fs->ctx, LOOM_ERR_NOMEM, "out of memory for a plan");
    memset(&p->c[p->nc], 0, sizeof *p->c);
    memset(&p->t[p->nt], 0, sizeof *p->t);
    return LOOM_OK;
}

/* Copy chunk c from holder src to `targets` (one chain). */
static loom_status_t plan_copy(loom_chunks_t *fs, ch_plan_t *p, const ch_chunk_t *c, int src,
                               const int32_t *targets, int nt)
{
    LOOM_TRY(plan_grow(fs, p));
    ch_commit_t *cm = &p->c[p->nc];
    cm->id = c->id;
    cm->version = c->version;
    cm->len = c->len;
    cm->fresh = 1;
    cm->nholders = nt;
    memcpy(cm->holders, targets, (size_t)nt * sizeof *targets);
    ch_task_t *t = &p->t[p->nt];
    t->commit = (int32_t)p->nc;
    t->src_kind = CH_SRC_REPLICA;
    t->off = 0;
    t->len = c->len;
    t->nchain = nt + 1;
    t->chain[0] = src;
    memcpy(t->chain + 1, targets, (size_t)nt * sizeof *targets);
    p->nc++;
    p->nt++;
    return LOOM_OK;
}

/* Master: what healing takes. `known_bad` holds (holder, id) pairs found corrupt by reading. */
static loom_status_t plan_heal(loom_chunks_t *fs, const loom_buf_t *known_bad, ch_plan_t *p,
                               loom_buf_t *del, int64_t *lost)
{
    ch_meta_t *m = &fs->meta;
    uint64_t *ids;
    size_t nids;
    *lost = 0;
    LOOM_TRY(referenced(fs, &ids, &nids));
    uint64_t *planned = calloc((size_t)fs->nholders, sizeof *planned);
    char *has = calloc((size_t)fs->nholders, 1);
    loom_status_t st =
        planned && has ? LOOM_OK : LOOM_ERROR(fs->ctx, LOOM_ERR_NOMEM, "out of memory");
    /* replicas found corrupt by a read count as damaged */
    for (size_t at = 0; st == LOOM_OK && known_bad && at + 16 <= known_bad->len; at += 16) {
        uint64_t pair[2];
        memcpy(pair, known_bad->data + at, 16);
        size_t a, b;
        ch_reps_of(fs, pair[1], &a, &b);
        for (size_t i = a; i < b; i++)
            if ((uint64_t)ch_holder_start(fs, fs->reps[i].holder) == pair[0])
                fs->reps[i].state = CH_REP_CORRUPT;
    }
    for (size_t i = 0; st == LOOM_OK && i < fs->nreps; i++)
        if (!is_referenced(ids, nids, fs->reps[i].id))
            st = add_pair(fs, del, fs->reps[i].holder, fs->reps[i].id);
    for (size_t e = 0; st == LOOM_OK && e < m->n; e++) {
        const ch_entry_t *f = &m->e[e];
        int want = f->repl < fs->nholders ? f->repl : fs->nholders;
        for (uint64_t ci = 0; st == LOOM_OK && ci < f->nchunks; ci++) {
            const ch_chunk_t *c = &f->chunks[ci];
            size_t a, b;
            ch_reps_of(fs, c->id, &a, &b);
            memset(has, 0, (size_t)fs->nholders);
            int good = 0, src = -1;
            for (size_t i = a; i < b; i++) {
                const ch_rep_t *r = &fs->reps[i];
                if (!ch_rep_good(r, c)) continue;
                good++;
                has[r->holder] = 1;
                /* sources rotate, so that healing reads from every holder */
                if (src < 0 || (c->id + (uint64_t)r->holder) % 3 == 0) src = r->holder;
            }
            if (good == 0) {
                /* the damaged copies are all there is: kept for whoever can salvage them */
                (*lost)++;
                continue;
            }
            for (size_t i = a; st == LOOM_OK && i < b; i++)
                if (!ch_rep_good(&fs->reps[i], c))
                    st = add_pair(fs, del, fs->reps[i].holder, c->id);
            if (good >= want) continue;
            int32_t targets[CH_MAX_REPL];
            int nt = ch_place(fs, c->len, want - good, has, planned, targets);
            if (nt > 0) st = plan_copy(fs, p, c, src, targets, nt);
        }
    }
    free(ids);
    free(planned);
    free(has);
    return st;
}

/* Run a master's plan and deletions; `bad` collects replicas found corrupt on the way. */
static loom_status_t execute(loom_chunks_t *fs, ch_plan_t *p, loom_buf_t *del, loom_buf_t *bad)
{
    loom_ctx_t *ctx = fs->ctx;
    uint64_t counts[2] = {del->len / 16, p->nt};
    LOOM_MPI(ctx, MPI_Bcast(counts, 2, MPI_UINT64_T, 0, loom_comm(ctx)));
    if (counts[0]) LOOM_TRY(ch_delete(fs, (const uint64_t *)del->data, del->len / 16));
    if (!counts[1]) return LOOM_OK;
    LOOM_TRY(ch_plan_bcast(fs, p));
    loom_status_t st = ch_transfer(fs, p, bad);
    if (st == LOOM_OK && loom_is_master(ctx))
        for (size_t i = 0; i < p->nc; i++) {
            fs->healed_chunks++;
            fs->healed_bytes += (int64_t)(p->c[i].len * (uint64_t)p->c[i].nholders);
        }
    return st;
}

/* One round of healing; *again when a source turned out corrupt (try once more). */
static loom_status_t heal_round(loom_chunks_t *fs, loom_buf_t *bad, int *again)
{
    loom_ctx_t *ctx = fs->ctx;
    ch_plan_t p = {0};
    loom_buf_t del = {0};
    int64_t lost = 0;
    *again = 0;
    loom_status_t st = LOOM_OK;
    if (loom_is_master(ctx)) st = plan_heal(fs, bad, &p, &del, &lost);
    st = loom_agree(ctx, loom_comm(ctx), st);
    size_t known = bad->len;
    if (st == LOOM_OK) st = execute(fs, &p, &del, bad);
    int more = bad->len > known;
    if (loom_is_master(ctx) && st != LOOM_OK && more) {
        loom_log(ctx, LOOM_LOG_WARN, "chunk store: %s; healing again from another replica",
                 loom_error_message(ctx));
        loom_error_clear(ctx);
        st = LOOM_OK;
    }
    LOOM_MPI(ctx, MPI_Bcast(&more, 1, MPI_INT, 0, loom_comm(ctx)));
    if (more) {
        loom_error_clear(ctx);
        st = LOOM_OK;
    }
    *again = more;
    if (loom_is_master(ctx) && lost && st == LOOM_OK && !more)
        loom_log(ctx, LOOM_LOG_WARN,
                 "chunk store: %" PRId64 " chunk%s ha%s no good replica on the holders present "
                 "(see loom fs fsck); the files that hold them cannot be read until those "
                 "holders return",
                 lost, lost == 1 ? "" : "s", lost == 1 ? "s" : "ve");
    ch_plan_free(&p);
    loom_buf_free(&del);
    return st;
}

loom_status_t ch_heal_with(loom_chunks_t *fs, loom_buf_t *bad, int verify)
{
    loom_status_t st = LOOM_OK;
    for (int attempt = 0; attempt < 4; attempt++) {
        int again = 0;
        st = ch_inventory(fs, verify && attempt == 0);
        if (st == LOOM_OK) st = heal_round(fs, bad, &again);
        if (st == LOOM_ERR_LOST && ch_recover(fs, st) == LOOM_OK) continue;
        if (st != LOOM_OK || !again) break;
    }
    if (st == LOOM_OK) st = ch_inventory(fs, 0);
    return st;
}

loom_status_t loom_chunks_heal(loom_chunks_t *fs)
{
    loom_buf_t bad = {0};
    loom_status_t st = ch_heal_with(fs, &bad, 0);
    loom_buf_free(&bad);
    return st;
}

/* ------------------------------------------------------------------ rebalance */

static loom_status_t plan_balance(loom_chunks_t *fs, ch_plan_t *p, loom_buf_t *del)
{
    ch_meta_t *m = &fs->meta;
    int H = fs->nholders;
    uint64_t *used = calloc((size_t)H, sizeof *used), maxlen = 0;
    if (!used) return LOOM_ERROR(fs->ctx, LOOM_ERR_NOMEM, "out of memory");
    /* a file's chunk and its replicas, by holder, as the plan changes them */
    for (size_t e = 0; e < m->n; e++)
        for (uint64_t ci = 0; ci < m->e[e].nchunks; ci++) {
            const ch_chunk_t *c = &m->e[e].chunks[ci];
            size_t a, b;
            ch_reps_of(fs, c->id, &a, &b);
            for (size_t i = a; i < b; i++)
                if (ch_rep_good(&fs->reps[i], c)) used[fs->reps[i].holder] += c->len;
            if (c->len > maxlen) maxlen = c->len;
        }
    loom_status_t st = LOOM_OK;
    char *moved = calloc(fs->nreps ? fs->nreps : 1, 1);
    if (!moved) st = LOOM_ERROR(fs->ctx, LOOM_ERR_NOMEM, "out of memory");
    for (int iter = 0; st == LOOM_OK && iter < (int)fs->nreps; iter++) {
        int hi = 0, lo = 0;
        for (int w = 1; w < H; w++) {
            if (used[w] > used[hi]) hi = w;
            if (used[w] < used[lo]) lo = w;
        }
        if (hi == lo || used[hi] - used[lo] <= maxlen) break;
        /* the largest chunk on `hi` that `lo` lacks and that narrows the gap */
        size_t pick = SIZE_MAX;
        const ch_chunk_t *pc = NULL;
        for (size_t e = 0; e < m->n; e++)
            for (uint64_t ci = 0; ci < m->e[e].nchunks; ci++) {
                const ch_chunk_t *c = &m->e[e].chunks[ci];
                size_t a, b, on_hi = SIZE_MAX;
                int on_lo = 0;
                ch_reps_of(fs, c->id, &a, &b);
                for (size_t i = a; i < b; i++) {
                    if (fs->reps[i].holder == hi && ch_rep_good(&fs->reps[i], c) && !moved[i])
                        on_hi = i;
                    if (fs->reps[i].holder == lo) on_lo = 1;
                }
                if (on_hi == SIZE_MAX || on_lo || c->len > (used[hi] - used[lo]) / 2 + 1) continue;
                int planned = 0; /* a chunk moves once per plan: the table is not updated */
                for (size_t k = 0; k < p->nc && !planned; k++)
                    planned = p->c[k].id == c->id;
                if (planned) continue;
                if (!pc || c->len > pc->len) pc = c, pick = on_hi;
            }
        if (!pc) break;
        int32_t target = lo;
        uint64_t free_lo = fs->holders[lo].free;
        if (free_lo < pc->len) break;
        fs->holders[lo].free -= pc->len;
        st = plan_copy(fs, p, pc, hi, &target, 1);
        if (st == LOOM_OK) st = add_pair(fs, del, hi, pc->id);
        moved[pick] = 1;
        used[hi] -= pc->len;
        used[lo] += pc->len;
    }
    free(moved);
    free(used);
    return st;
}

static loom_status_t rebalance_once(loom_chunks_t *fs)
{
    loom_ctx_t *ctx = fs->ctx;
    /* every replica is read and checked first: what fails is replaced before moves */
    loom_buf_t none0 = {0};
    loom_status_t hs = ch_heal_with(fs, &none0, 1);
    loom_buf_free(&none0);
    LOOM_TRY(hs);
    ch_plan_t p = {0};
    loom_buf_t del = {0}, bad = {0}, none = {0};
    loom_status_t st = LOOM_OK;
    if (loom_is_master(ctx)) st = plan_balance(fs, &p, &del);
    st = loom_agree(ctx, loom_comm(ctx), st);
    /* copies first; the moved replicas are deleted only once every copy committed */
    if (st == LOOM_OK) st = execute(fs, &p, &none, &bad);
    if (st == LOOM_OK) {
        uint64_t n = del.len / 16;
        LOOM_MPI(ctx, MPI_Bcast(&n, 1, MPI_UINT64_T, 0, loom_comm(ctx)));
        if (n) st = ch_delete(fs, (const uint64_t *)del.data, n);
        if (loom_is_master(ctx) && n)
            loom_log(ctx, LOOM_LOG_INFO, "chunk store: moved %" PRIu64 " replica%s", n,
                     n == 1 ? "" : "s");
    }
    ch_plan_free(&p);
    loom_buf_free(&del);
    loom_buf_free(&bad);
    if (st == LOOM_OK) st = loom_chunks_heal(fs);
    return st;
}

/* ------------------------------------------------------------------ fsck */

static const char *state_word(int s)
{
    return s == CH_REP_NOHEADER  ? "damaged (its CRC file is missing or fails its own check)"
           : s == CH_REP_SHORT   ? "truncated"
           : s == CH_REP_CORRUPT ? "corrupt"
                                 : "ok";
}

loom_status_t loom_chunks_fsck(loom_chunks_t *fs, FILE *out, int64_t *problems)
{
    loom_ctx_t *ctx = fs->ctx;
    *problems = 0;
    LOOM_TRY(ch_inventory(fs, 1));
    loom_status_t st = LOOM_OK;
    int64_t np = 0;
    if (loom_is_master(ctx)) {
        ch_meta_t *m = &fs->meta;
        uint64_t *ids = NULL;
        size_t nids = 0;
        st = referenced(fs, &ids, &nids);
        uint64_t files = 0, chunks = 0, bytes = 0;
        for (size_t e = 0; st == LOOM_OK && e < m->n; e++) {
            const ch_entry_t *f = &m->e[e];
            if (f->is_dir) continue;
            files++;
            bytes += f->size;
            int want = f->repl < fs->nholders ? f->repl : fs->nholders;
            for (uint64_t ci = 0; ci < f->nchunks; ci++) {
                const ch_chunk_t *c = &f->chunks[ci];
                size_t a, b;
                int good = 0;
                chunks++;
                ch_reps_of(fs, c->id, &a, &b);
                for (size_t i = a; i < b; i++) {
                    const ch_rep_t *r = &fs->reps[i];
                    if (ch_rep_good(r, c)) {
                        good++;
                        continue;
                    }
                    np++;
                    if (r->state == CH_REP_OK)
                        fprintf(out,
                                "stale: %s chunk %" PRIu64 " (id %016" PRIx64
                                ") on %s: version %" PRIu64 " of %" PRIu64
                                " bytes, the file has version %" PRIu64 " of %" PRIu64 "\n",
                                f->path, ci, c->id, ch_holder_name(fs, r->holder), r->version,
                                r->len, c->version, c->len);
                    else
                        fprintf(out, "%s: %s chunk %" PRIu64 " (id %016" PRIx64 ") on %s%s\n",
                                r->state == CH_REP_CORRUPT ? "corrupt"
                                : r->state == CH_REP_SHORT ? "truncated"
                                                           : "damaged",
                                f->path, ci, c->id, ch_holder_name(fs, r->holder),
                                r->state == CH_REP_CORRUPT ? ": a block fails its CRC32C"
                                : r->state == CH_REP_SHORT ? ": data shorter than committed"
                                                           : ": no valid CRC file");
                }
                if (good == 0) {
                    np++;
                    fprintf(out,
                            "lost: %s chunk %" PRIu64 " (id %016" PRIx64
                            "): no good replica on the "
                            "holders present\n",
                            f->path, ci, c->id);
                } else if (good < want) {
                    np++;
                    fprintf(out,
                            "under-replicated: %s chunk %" PRIu64 " (id %016" PRIx64 "): %d of %d "
                            "replicas\n",
                            f->path, ci, c->id, good, want);
                }
            }
        }
        for (size_t i = 0; st == LOOM_OK && i < fs->nreps; i++)
            if (!is_referenced(ids, nids, fs->reps[i].id)) {
                np++;
                fprintf(out, "orphaned: chunk %016" PRIx64 " on %s (no file refers to it; %s)\n",
                        fs->reps[i].id, ch_holder_name(fs, fs->reps[i].holder),
                        state_word(fs->reps[i].state));
            }
        free(ids);
        if (st == LOOM_OK) {
            fprintf(out,
                    "fsck: %" PRIu64 " files, %" PRIu64 " chunks, %d holders, %" PRIu64 " bytes: ",
                    files, chunks, fs->nholders, bytes);
            if (np)
                fprintf(out, "%" PRId64 " problem%s\n", np, np == 1 ? "" : "s");
            else
                fprintf(out, "healthy\n");
            fflush(out);
        }
    }
    st = loom_agree(ctx, loom_comm(ctx), st);
    LOOM_MPI(ctx, MPI_Bcast(&np, 1, MPI_INT64_T, 0, loom_comm(ctx)));
    *problems = np;
    return st;
}

loom_status_t loom_chunks_rebalance(loom_chunks_t *fs)
{
    /* after a death (ULFM) the survivors start over: heal, then balance what is left */
    for (int t = 0;; t++) {
        loom_status_t st = rebalance_once(fs);
        if (st != LOOM_ERR_LOST || t == 3) return st;
        LOOM_TRY(ch_recover(fs, st));
    }
}
