/* MapReduce callback API: emitting, value helpers, ready-made combiners, options and reporting. */
#include <stdlib.h>
#include <string.h>

#include "kernels/hash.h"
#include "kernels/tokenize.h"
#include "mr/mr_internal.h"

static loom_status_t write_out(loom_mr_emit_t *em, const void *d, size_t n)
{
    if (n && fwrite(d, 1, n, em->out) != n)
        return LOOM_ERROR(em->eng->ctx, LOOM_ERR_IO, "%s: cannot write", em->out_path);
    return LOOM_OK;
}

/* The map side's hot path: hash once, for the partition and the table. */
static inline loom_status_t emit_map_hashed(loom_mr_emit_t *em, const void *key, size_t klen,
                                            uint64_t h, const void *val, size_t vlen)
{
    em->count++;
    return mr_store_add(em->store, mr_part(em->eng, key, klen, h), h, key, klen, val, vlen);
}

static inline loom_status_t emit_map(loom_mr_emit_t *em, const void *key, size_t klen,
                                     const void *val, size_t vlen)
{
    return emit_map_hashed(em, key, klen, loom_key_hash(key, klen), val, vlen);
}

loom_status_t loom_mr_emit(loom_mr_emit_t *em, const void *key, size_t klen, const void *val,
                           size_t vlen)
{
    mr_engine_t *eng = em->eng;
    switch (em->kind) {
    case MR_EMIT_MAP:
        return emit_map(em, key, klen, val, vlen);
    case MR_EMIT_SAMPLE:
        if (em->count >= em->sample_max) return LOOM_OK;
        em->count++;
        return loom_buf_put_record(eng->ctx, em->sample, key, klen, NULL, 0);
    case MR_EMIT_REDUCE: {
        const loom_mr_output_mode_t mode = eng->job->output_mode;
        if (mode != LOOM_MR_OUT_VALUE) LOOM_TRY(write_out(em, key, klen));
        if (mode == LOOM_MR_OUT_KV) LOOM_TRY(write_out(em, "\t", 1));
        if (mode != LOOM_MR_OUT_KEY) LOOM_TRY(write_out(em, val, vlen));
        LOOM_TRY(write_out(em, "\n", 1));
        em->count++;
        return LOOM_OK;
    }
    case MR_EMIT_COMBINE:
        return loom_mr_set_value(em, val, vlen);
    }
    return LOOM_ERROR(eng->ctx, LOOM_ERR_INTERNAL, "emit on a bad handle");
}

loom_status_t loom_mr_emit_u64(loom_mr_emit_t *em, const void *key, size_t klen, uint64_t v)
{
    if (em->kind == MR_EMIT_REDUCE) {
        char buf[24];
        int n = snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
        return loom_mr_emit(em, key, klen, buf, (size_t)n);
    }
    if (em->kind == MR_EMIT_MAP) return emit_map(em, key, klen, &v, sizeof v);
    return loom_mr_emit(em, key, klen, &v, sizeof v);
}

loom_status_t loom_mr_emit_double(loom_mr_emit_t *em, const void *key, size_t klen, double v)
{
    if (em->kind == MR_EMIT_REDUCE) {
        char buf[40];
        int n = snprintf(buf, sizeof buf, "%.17g", v);
        return loom_mr_emit(em, key, klen, buf, (size_t)n);
    }
    return loom_mr_emit(em, key, klen, &v, sizeof v);
}

loom_status_t loom_mr_set_value(loom_mr_emit_t *em, const void *val, size_t vlen)
{
    if (em->kind != MR_EMIT_COMBINE)
        return LOOM_ERROR(em->eng->ctx, LOOM_ERR_USAGE, "loom_mr_set_value outside a combiner");
    em->value->len = 0;
    LOOM_TRY(loom_buf_append(em->eng->ctx, em->value, val, vlen));
    em->value_set = 1;
    return LOOM_OK;
}

loom_status_t loom_mr_write(loom_mr_emit_t *em, const void *data, size_t len)
{
    if (em->kind != MR_EMIT_REDUCE)
        return LOOM_ERROR(em->eng->ctx, LOOM_ERR_USAGE, "loom_mr_write outside reduce");
    return write_out(em, data, len);
}

const char *loom_mr_input_path(const loom_mr_emit_t *em, uint32_t index)
{
    return index < em->eng->nfiles ? em->eng->files[index] : NULL;
}

uint64_t loom_mr_u64(const void *val, size_t len)
{
    uint64_t v = 0;
    if (len == sizeof v) memcpy(&v, val, sizeof v);
    return v;
}

double loom_mr_double(const void *val, size_t len)
{
    double v = 0;
    if (len == sizeof v) memcpy(&v, val, sizeof v);
    return v;
}

loom_status_t loom_mr_combine_sum_u64(loom_ctx_t *ctx, const void *key, size_t klen, const void *a,
                                      size_t alen, const void *b, size_t blen, loom_mr_emit_t *out,
                                      void *user)
{
    uint64_t s = loom_mr_u64(a, alen) + loom_mr_u64(b, blen);
    return loom_mr_set_value(out, &s, sizeof s);
}

loom_status_t loom_mr_combine_sum_double(loom_ctx_t *ctx, const void *key, size_t klen,
                                         const void *a, size_t alen, const void *b, size_t blen,
                                         loom_mr_emit_t *out, void *user)
{
    double s = loom_mr_double(a, alen) + loom_mr_double(b, blen);
    return loom_mr_set_value(out, &s, sizeof s);
}

size_t loom_mr_next_word(const char *s, size_t len, size_t *pos, char *buf)
{
    return loom_tok_next_word(s, len, pos, buf);
}

/* A word longer than a tokeniser block at s: emit it lowercased, return its length. */
static loom_status_t emit_long_word(loom_mr_emit_t *em, const char *s, size_t len, const void *val,
                                    size_t vlen, size_t *used)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t n = 0;
    while (n < len && loom_tok_is_word[u[n]])
        n++;
    char *buf = malloc(n);
    if (!buf) return LOOM_ERROR(em->eng->ctx, LOOM_ERR_NOMEM, "out of memory: a %zu-byte word", n);
    size_t pos = 0;
    loom_tok_next_word(s, n, &pos, buf);
    loom_status_t st = em->kind == MR_EMIT_MAP ? emit_map(em, buf, n, val, vlen)
                                               : loom_mr_emit(em, buf, n, val, vlen);
    free(buf);
    *used = n;
    return st;
}

/* The low n bytes of a little-endian word (1 <= n <= 8). */
static inline uint64_t byte_mask(uint32_t n)
{
    return n >= 8 ? ~0ULL : (1ULL << (8 * n)) - 1;
}

/* A word's hash, as loom_key_hash's, and for words of up to 16 bytes its two
 * little-endian words zero-padded past n. The tokeniser's block is padded:
 * 16 bytes load at any word. */
static inline uint64_t word_key(const unsigned char *w, uint32_t n, uint64_t *k0, uint64_t *k1)
{
    memcpy(k0, w, 8);
    memcpy(k1, w + 8, 8);
    *k0 &= byte_mask(n);
    *k1 &= n > 8 ? byte_mask(n - 8) : 0;
    return n <= 16 ? loom_hash_short(*k0, *k1, n, LOOM_KEY_HASH_SEED)
                   : loom_hash_padded(w, n, LOOM_KEY_HASH_SEED);
}

/* The words of a tokeniser block into the map store, in batches: hash a batch
 * and prefetch its slots, then add it while prefetching entries a few words
 * ahead. Rare words miss the cache in the table; batching overlaps those
 * misses instead of taking them one after another. */
static loom_status_t emit_block_words(loom_mr_emit_t *em, loom_tok_block_t *b, const void *val,
                                      size_t vlen)
{
    enum { BATCH = 32, AHEAD = 8 };
    uint16_t ws[LOOM_TOK_MAXWORDS], we[LOOM_TOK_MAXWORDS];
    uint64_t h[BATCH];
    const mr_store_t *st = em->store;
    size_t nw = loom_tok_words(b, ws, we);
    for (size_t base = 0; base < nw; base += BATCH) {
        int m = nw - base < BATCH ? (int)(nw - base) : BATCH;
        for (int i = 0; i < m; i++) {
            uint64_t k0, k1;
            h[i] =
                word_key(b->low + ws[base + i], (uint32_t)(we[base + i] - ws[base + i]), &k0, &k1);
            mr_store_prefetch_slot(st, h[i]);
        }
        for (int i = 0; i < m; i++) {
            if (i + AHEAD < m) mr_store_prefetch_entry(st, h[i + AHEAD]);
            LOOM_TRY(emit_map_hashed(em, b->low + ws[base + i],
                                     (size_t)(we[base + i] - ws[base + i]), h[i], val, vlen));
        }
    }
    return LOOM_OK;
}

/* The same for counting into a summing store (word count's map), in batches
 * through the store's count table: a word of up to 16 bytes is two masked
 * loads, a hash and, mostly, one probe of a 32-byte slot holding the key and
 * its count. Longer words, and new words once the count table is full, go to
 * the store as pairs. */
static loom_status_t count_block_words(loom_mr_emit_t *em, loom_tok_block_t *b, uint64_t one)
{
    enum { BATCH = 32 };
    uint16_t ws[LOOM_TOK_MAXWORDS], we[LOOM_TOK_MAXWORDS];
    uint64_t h[BATCH], k0[BATCH], k1[BATCH];
    uint32_t len[BATCH];
    mr_store_t *st = em->store;
    uint64_t counted = 0;
    loom_status_t rc = LOOM_OK;
    size_t nw = loom_tok_words(b, ws, we);
    for (size_t base = 0; base < nw && rc == LOOM_OK; base += BATCH) {
        int m = nw - base < BATCH ? (int)(nw - base) : BATCH;
        const mr_count_t *cnt = st->cnt;
        size_t mask = st->cnt_slots - 1;
        for (int i = 0; i < m; i++) {
            len[i] = (uint32_t)(we[base + i] - ws[base + i]);
            h[i] = word_key(b->low + ws[base + i], len[i], &k0[i], &k1[i]);
            if (cnt)
                __builtin_prefetch(&cnt[h[i] & mask]);
            else
                mr_store_prefetch_slot(st, h[i]);
        }
        for (int i = 0; i < m; i++) {
            uint32_t n = len[i];
            if (n <= 16 && st->cnt) {
                mr_count_t *c = &st->cnt[h[i] & mask];
                /* one branch per probe: the key, or an empty slot */
                while (!((c->k0 == k0[i]) & (c->k1 == k1[i]) & (c->len == n)) && c->len)
                    c = c + 1 == st->cnt + mask + 1 ? st->cnt : c + 1;
                if (c->len) {
                    c->count += one;
                    counted++;
                    continue;
                }
            }
            if (n <= 16 && mr_store_count_new(st, h[i], k0[i], k1[i], n, one)) {
                mask = st->cnt_slots - 1; /* it may have grown */
                counted++;
                continue;
            }
            if (n <= 16 && mr_store_fold_u64(st, h[i], k0[i], k1[i], n, one)) {
                counted++;
                continue;
            }
            rc = emit_map_hashed(em, b->low + ws[base + i], n, h[i], &one, sizeof one);
            if (rc != LOOM_OK) break;
        }
    }
    em->count += counted;
    return rc;
}

loom_status_t loom_mr_emit_words(loom_mr_emit_t *em, const char *s, size_t len, const void *val,
                                 size_t vlen)
{
    loom_tok_block_t b;
    size_t i = 0;
    while (i < len) {
        size_t k = loom_tok_fill(&b, s + i, len - i);
        if (k == 0) {
            LOOM_TRY(emit_long_word(em, s + i, len - i, val, vlen, &k));
            i += k;
            continue;
        }
        size_t at, n;
        if (em->kind == MR_EMIT_MAP && em->store->sum_u64 && vlen == 8) {
            uint64_t one;
            memcpy(&one, val, 8);
            LOOM_TRY(count_block_words(em, &b, one));
        } else if (em->kind == MR_EMIT_MAP) {
            LOOM_TRY(emit_block_words(em, &b, val, vlen));
        } else {
            while ((n = loom_tok_next(&b, &at)))
                LOOM_TRY(loom_mr_emit(em, b.low + at, n, val, vlen));
        }
        i += k;
    }
    return LOOM_OK;
}

loom_status_t loom_mr_job_from_opts(loom_ctx_t *ctx, const loom_opts_t *opts, int first_input,
                                    loom_mr_job_t *job)
{
    job->output = loom_opt_string(opts, "out");
    if (!job->output || !*job->output)
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "--out DIR is required");
    int n = loom_opts_nargs(opts) - first_input;
    if (n <= 0) return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "no input files given");
    const char **in = malloc((size_t)n * sizeof *in);
    if (!in) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++)
        in[i] = loom_opts_arg(opts, first_input + i);
    job->inputs = in;
    job->ninputs = n;
    job->reducers = (int)loom_opt_int(opts, "reducers");
    job->split_size = loom_opt_size(opts, "split-size");
    job->memory = loom_opt_size(opts, "memory");
    job->max_record = loom_opt_size(opts, "max-record");
    job->spill_dir = loom_opt_string(opts, "spill-dir");
    job->fault = loom_opt_string(opts, "inject-fault");
    job->overwrite = loom_opt_flag(opts, "overwrite");
    job->store = loom_opt_string(opts, "store");
    return LOOM_OK;
}

void loom_mr_report(loom_ctx_t *ctx, const loom_mr_job_t *job, const loom_mr_result_t *r)
{
    loom_summary_string(ctx, "output", job->output);
    loom_summary_int(ctx, "input_files", r->input_files);
    loom_summary_int(ctx, "input_bytes", r->input_bytes);
    loom_summary_int(ctx, "input_records", r->input_records);
    loom_summary_int(ctx, "map_tasks", r->map_tasks);
    loom_summary_int(ctx, "map_pairs", r->map_pairs);
    loom_summary_int(ctx, "shuffle_bytes", r->shuffle_bytes);
    loom_summary_int(ctx, "shuffle_rounds", r->shuffle_rounds);
    if (r->shuffle_nodes) {
        loom_summary_int(ctx, "shuffle_nodes", r->shuffle_nodes);
        loom_summary_int(ctx, "shuffle_levels", r->shuffle_levels);
        loom_summary_int(ctx, "shuffle_offnode_bytes", r->shuffle_offnode_bytes);
        loom_summary_int(ctx, "shuffle_offnode_messages", r->shuffle_offnode_messages);
    }
    loom_summary_int(ctx, "output_records", r->output_records);
    loom_summary_int(ctx, "spill_runs", r->spill_runs);
    loom_summary_int(ctx, "spill_bytes", r->spill_bytes);
    loom_summary_int(ctx, "lost_workers", r->lost_workers);
    loom_summary_int(ctx, "reexecuted_tasks", r->reexecuted_tasks);
    loom_summary_int(ctx, "backups_run", r->backups_run);
    if (r->store_local_reads + r->store_remote_reads) {
        loom_summary_int(ctx, "store_local_reads", r->store_local_reads);
        loom_summary_int(ctx, "store_remote_reads", r->store_remote_reads);
        loom_summary_double(ctx, "store_local_fraction",
                            (double)r->store_local_reads /
                                (double)(r->store_local_reads + r->store_remote_reads));
    }
    loom_summary_int(ctx, "backups_won", r->backups_won);
    double map_s = loom_timer_get(ctx, "map");
    if (map_s > 0) loom_summary_double(ctx, "map_MBps", (double)r->input_bytes / 1e6 / map_s);
}

loom_status_t loom_mr_run_command(loom_ctx_t *ctx, const loom_opts_t *opts, int first_input,
                                  loom_mr_job_t *job)
{
    loom_status_t st = loom_mr_job_from_opts(ctx, opts, first_input, job);
    loom_mr_result_t res;
    if (st == LOOM_OK) st = loom_mr_run(ctx, job, &res);
    if (st == LOOM_OK) loom_mr_report(ctx, job, &res);
    free((void *)job->inputs);
    job->inputs = NULL;
    return st;
}
