/* Unit tests of the MapReduce building blocks: tokeniser, hash, pair sort, stores, spills, merge.
 */
#include <stdlib.h>
#include <string.h>

#include "kernels/hash.h"
#include "kernels/sort.h"
#include "kernels/tokenize.h"
#include "loom_test.h"
#include "mr/mr_internal.h"

static uint64_t rng = 12345;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void test_tokenize(void)
{
    char text[4096], buf[4096], ref[4096];
    for (int trial = 0; trial < 200; trial++) {
        size_t len = next_rand() % sizeof text;
        for (size_t i = 0; i < len; i++)
            text[i] = (char)(next_rand() % 8 ? 'A' + next_rand() % 60 : next_rand());
        /* reference: walk byte by byte */
        size_t pos = 0, i = 0;
        for (;;) {
            while (i < len && !(((text[i] | 32) >= 'a' && (text[i] | 32) <= 'z') ||
                                (text[i] >= '0' && text[i] <= '9')))
                i++;
            size_t n = 0;
            while (i < len && (((text[i] | 32) >= 'a' && (text[i] | 32) <= 'z') ||
                               (text[i] >= '0' && text[i] <= '9'))) {
                char c = text[i++];
                ref[n++] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
            }
            size_t got = loom_tok_next_word(text, len, &pos, buf);
            CU_ASSERT_EQUAL_FATAL(got, n);
            if (!n) break;
            CU_ASSERT(memcmp(buf, ref, n) == 0);
        }
    }
}

/* The words of one filled block from loom_tok_words equal loom_tok_next's;
 * returns their number. */
static size_t check_block_words(loom_tok_block_t *b)
{
    static uint16_t ws[LOOM_TOK_MAXWORDS], we[LOOM_TOK_MAXWORDS];
    size_t nw = loom_tok_words(b, ws, we);
    CU_ASSERT_FATAL(nw <= LOOM_TOK_MAXWORDS - 16);
    size_t keep = b->pos, at, n, i = 0;
    b->pos = 0;
    while ((n = loom_tok_next(b, &at))) {
        CU_ASSERT_FATAL(i < nw);
        CU_ASSERT_EQUAL_FATAL(ws[i], at);
        CU_ASSERT_EQUAL_FATAL(we[i], at + n);
        i++;
    }
    CU_ASSERT_EQUAL_FATAL(i, nw);
    b->pos = keep;
    return nw;
}

/* The block tokeniser yields the same words as loom_tok_next_word, also across
 * block ends and for words longer than a block (fill returns 0 there). */
static void test_tokenize_blocks(void)
{
    enum { MAX = 3 * LOOM_TOK_BLOCK + 100 };
    char *text = malloc(MAX), *buf = malloc(MAX), *ref = malloc(MAX);
    loom_tok_block_t *b = malloc(sizeof *b);
    CU_ASSERT_FATAL(text && buf && ref && b);
    b->n = b->pos = 0;
    int long_seen = 0;
    for (int trial = 0; trial < 300; trial++) {
        size_t len = next_rand() % MAX;
        /* mostly short words; now and then one longer than a block */
        int long_words = trial % 3 == 0;
        for (size_t i = 0; i < len; i++) {
            int sep = long_words ? next_rand() % 3000 == 0 : next_rand() % 6 == 0;
            text[i] = sep ? (char)(next_rand() % 2 ? ' ' : 0x80 + next_rand() % 128)
                          : (char)"aZ09qQ\x7f"[next_rand() % 6];
        }
        size_t pos = 0, i = 0;
        for (;;) {
            size_t n = loom_tok_next_word(text, len, &pos, ref);
            /* the same word from the blocks */
            size_t got = 0, at = 0;
            while (!got) {
                if (b->pos == 0 && b->n == 0) {
                    if (i == len) break;
                    size_t k = loom_tok_fill(b, text + i, len - i);
                    if (k == 0) {
                        /* a word longer than a block: the scalar tokeniser takes it */
                        size_t p2 = 0;
                        got = loom_tok_next_word(text + i, len - i, &p2, buf);
                        i += p2;
                        CU_ASSERT(got > LOOM_TOK_BLOCK);
                        long_seen++;
                        break;
                    }
                    i += k;
                    check_block_words(b);
                }
                got = loom_tok_next(b, &at);
                if (got)
                    memcpy(buf, b->low + at, got);
                else
                    b->n = b->pos = 0;
            }
            CU_ASSERT_EQUAL_FATAL(got, n);
            if (!n) break;
            CU_ASSERT_FATAL(memcmp(buf, ref, n) == 0);
        }
        b->n = b->pos = 0;
    }
    CU_ASSERT(long_seen > 0);
    free(text);
    free(buf);
    free(ref);
    free(b);
}

/* loom_tok_words at the edges: words at a block's first and last byte, at
 * every 64-byte chunk boundary, the most words a block holds, one word filling
 * the block, non-ASCII bytes and CRLF line ends as separators, empty blocks. */
static void test_tokenize_words(void)
{
    enum { MAX = 2 * LOOM_TOK_BLOCK };
    char *text = malloc(MAX);
    loom_tok_block_t *b = malloc(sizeof *b);
    CU_ASSERT_FATAL(text && b);
    /* "a a a ...": LOOM_TOK_BLOCK / 2 words, the block's maximum */
    for (size_t i = 0; i < LOOM_TOK_BLOCK; i++)
        text[i] = i % 2 ? ' ' : 'a';
    CU_ASSERT_EQUAL(loom_tok_fill(b, text, LOOM_TOK_BLOCK), LOOM_TOK_BLOCK);
    CU_ASSERT_EQUAL(check_block_words(b), LOOM_TOK_BLOCK / 2);
    /* the same, odd length: the last word ends at the block's end */
    CU_ASSERT_EQUAL(loom_tok_fill(b, text, LOOM_TOK_BLOCK - 1), LOOM_TOK_BLOCK - 1);
    check_block_words(b);
    /* one word of exactly a block, and one ending at every length up to 200 */
    memset(text, 'Q', LOOM_TOK_BLOCK);
    CU_ASSERT_EQUAL(loom_tok_fill(b, text, LOOM_TOK_BLOCK), LOOM_TOK_BLOCK);
    CU_ASSERT_EQUAL(check_block_words(b), 1);
    for (size_t n = 0; n <= 200; n++) {
        CU_ASSERT_EQUAL(loom_tok_fill(b, text, n), n);
        CU_ASSERT_EQUAL(check_block_words(b), n > 0);
    }
    /* words of 1-70 bytes crossing chunk boundaries, separated by spaces,
     * CRLF, tabs and bytes >= 0x80 (UTF-8 letters are separators) */
    static const char *seps[] = {" ", "\r\n", "\t", "\xc3\xa9", "\xff", "\x80 ", "-"};
    for (int trial = 0; trial < 400; trial++) {
        size_t len = 0;
        while (len < MAX - 100) {
            size_t w = 1 + next_rand() % (trial % 4 == 0 ? 70 : 9);
            for (size_t j = 0; j < w; j++)
                text[len++] = "aZ09mQ"[next_rand() % 6];
            const char *sp = seps[next_rand() % 7];
            for (size_t j = 0; sp[j]; j++)
                text[len++] = sp[j];
        }
        len -= next_rand() % 50; /* end inside a word or a separator */
        for (size_t i = 0; i < len;) {
            size_t k = loom_tok_fill(b, text + i, len - i);
            CU_ASSERT_FATAL(k > 0);
            check_block_words(b);
            i += k;
        }
    }
    free(text);
    free(b);
}

static void test_hash(void)
{
    CU_ASSERT_EQUAL(loom_hash_bytes("word", 4, 1), loom_hash_bytes("word", 4, 1));
    CU_ASSERT_NOT_EQUAL(loom_hash_bytes("a", 1, 1), loom_hash_bytes("a\0", 2, 1));
    /* the high 32 bits pick partitions: 8 buckets of 80000 keys stay within 3% */
    int count[8] = {0};
    char k[32];
    for (int i = 0; i < 80000; i++) {
        int n = snprintf(k, sizeof k, "key%d", i);
        count[(loom_hash_bytes(k, (size_t)n, 7) >> 32) * 8 >> 32]++;
    }
    for (int b = 0; b < 8; b++)
        CU_ASSERT(count[b] > 9700 && count[b] < 10300);
    /* the padded variant (one masked load for the tail) has the same value */
    unsigned char key[48 + 8];
    for (int t = 0; t < 2000; t++) {
        size_t n = next_rand() % 48;
        for (size_t i = 0; i < sizeof key; i++)
            key[i] = (unsigned char)next_rand();
        CU_ASSERT_EQUAL(loom_hash_padded(key, n, 9), loom_hash_inline(key, n, 9));
    }
    /* the short-key variant (two words, zeroed past the length) too, 0-16 bytes */
    for (int t = 0; t < 2000; t++) {
        size_t n = (size_t)t % 17;
        uint64_t w[2] = {0, 0};
        for (size_t i = 0; i < n; i++)
            key[i] = (unsigned char)next_rand();
        memcpy(w, key, n);
        CU_ASSERT_EQUAL(loom_hash_short(w[0], w[1], n, 11), loom_hash_inline(key, n, 11));
    }
}

static int naive_less(const loom_kvref_t *a, const loom_kvref_t *b)
{
    if (a->part != b->part) return a->part < b->part;
    int c = loom_sort_cmp_bytes(a->key, a->klen, b->key, b->klen);
    return c < 0;
}

static void test_sort(void)
{
    enum { N = 3000 };
    static unsigned char keys[N][12];
    loom_kvref_t *r = malloc(N * sizeof *r);
    for (int i = 0; i < N; i++) {
        size_t kl = next_rand() % 12;
        for (size_t j = 0; j < kl; j++)
            keys[i][j] = (unsigned char)("ab\0\xff"[next_rand() % 4]);
        r[i] = (loom_kvref_t){.key = keys[i],
                              .klen = kl,
                              .part = (uint32_t)(next_rand() % 3),
                              .prefix = loom_sort_prefix(keys[i], kl)};
    }
    loom_sort_kvrefs(r, N, 0);
    for (int i = 1; i < N; i++)
        CU_ASSERT(!naive_less(&r[i], &r[i - 1]));
    free(r);
}

/* One partition (the radix sort): long keys sharing long prefixes, zero bytes,
 * duplicates, lengths 0..40; by key, and by key then value. */
static void test_sort_radix(void)
{
    enum { N = 20000, KL = 41 };
    unsigned char(*keys)[KL] = malloc(N * sizeof *keys);
    unsigned char(*vals)[4] = malloc(N * sizeof *vals);
    loom_kvref_t *r = malloc(N * sizeof *r), *copy = malloc(N * sizeof *r);
    CU_ASSERT_FATAL(keys && vals && r && copy);
    for (int i = 0; i < N; i++) {
        size_t kl = next_rand() % KL;
        size_t common = next_rand() % 2 ? kl : kl / 2; /* a long shared prefix */
        for (size_t j = 0; j < kl; j++)
            keys[i][j] = j < common && j < 30 ? (unsigned char)" \t"[j % 2]
                                              : (unsigned char)("ab\0\xff"[next_rand() % 4]);
        for (int j = 0; j < 4; j++)
            vals[i][j] = (unsigned char)(next_rand() % 3);
        r[i] = (loom_kvref_t){.key = keys[i],
                              .klen = kl,
                              .val = vals[i],
                              .vlen = next_rand() % 5,
                              .part = 7,
                              .prefix = loom_sort_prefix(keys[i], kl)};
        if (i % 10 == 0 && i) r[i] = r[i - 1 - next_rand() % (size_t)i]; /* duplicates */
    }
    memcpy(copy, r, N * sizeof *r);
    for (int by_value = 0; by_value < 2; by_value++) {
        memcpy(r, copy, N * sizeof *r);
        loom_sort_kvrefs(r, N, by_value);
        for (int i = 1; i < N; i++) {
            int c = loom_sort_cmp_bytes(r[i - 1].key, r[i - 1].klen, r[i].key, r[i].klen);
            if (c == 0 && by_value)
                c = loom_sort_cmp_bytes(r[i - 1].val, r[i - 1].vlen, r[i].val, r[i].vlen);
            CU_ASSERT_FATAL(c <= 0);
        }
        /* a permutation: every key kept (sum of lengths and of first bytes) */
        uint64_t a = 0, b = 0;
        for (int i = 0; i < N; i++) {
            a += r[i].klen * 1000003u + (r[i].klen ? r[i].key[0] : 0) + r[i].vlen;
            b += copy[i].klen * 1000003u + (copy[i].klen ? copy[i].key[0] : 0) + copy[i].vlen;
        }
        CU_ASSERT_EQUAL(a, b);
    }
    free(keys);
    free(vals);
    free(r);
    free(copy);
}

/* A combining table holds each key once, across its own growth: every key
 * added again after the table grew folds into its first entry. */
static void test_store_unique_keys(void)
{
    loom_mr_job_t job = {.name = "t", .combine = loom_mr_combine_sum_u64};
    mr_engine_t eng = {.ctx = loom_test_ctx, .job = &job, .nparts = 2};
    mr_store_t st;
    mr_store_init(&st, &eng, (size_t)1 << 30);
    enum { K = 20000 };
    char k[32];
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < K; i++) {
            uint64_t one = 1;
            int n = snprintf(k, sizeof k, "key-%d", i);
            uint64_t h = loom_hash_bytes(k, (size_t)n, 5);
            CU_ASSERT_EQUAL_FATAL(mr_store_add(&st, (uint32_t)(h & 1), h, k, (size_t)n, &one, 8),
                                  LOOM_OK);
            /* the inline fold finds a key whenever mr_store_add would */
            uint64_t w[2] = {0};
            memcpy(w, k, (size_t)n);
            if (round > 0) CU_ASSERT_FATAL(mr_store_fold_u64(&st, h, w[0], w[1], (size_t)n, 1));
        }
    CU_ASSERT_EQUAL(st.nent, K);
    uint64_t total = 0;
    for (size_t i = 0; i < st.nent; i++)
        total += st.ent[i].ival;
    CU_ASSERT_EQUAL(total, 5 * (uint64_t)K);
    mr_store_free(&st);
}

/* Every combined record of partition p of a sorted store (its pairs in refs
 * and its runs), in key order, to fn. */
static void each_combined(
    mr_engine_t *eng, mr_store_t *st, const loom_kvref_t *refs, const size_t *ps, uint32_t p,
    void (*fn)(void *arg, uint32_t p, const loom_buf_t *k, const loom_buf_t *v), void *arg)
{
    loom_reader_t *rd;
    int n;
    CU_ASSERT_EQUAL_FATAL(mr_store_part_readers(st, refs, ps, p, &rd, &n), LOOM_OK);
    loom_reader_t *prd[64];
    for (int i = 0; i < n; i++)
        prd[i] = &rd[i];
    loom_merge_t m;
    CU_ASSERT_EQUAL_FATAL(loom_merge_init(eng->ctx, &m, prd, n, 0), LOOM_OK);
    loom_buf_t kb = {0}, vb = {0};
    for (;;) {
        int have;
        CU_ASSERT_EQUAL_FATAL(mr_merge_next_combined(eng, &m, &kb, &vb, &have), LOOM_OK);
        if (!have) break;
        fn(arg, p, &kb, &vb);
    }
    loom_buf_free(&kb);
    loom_buf_free(&vb);
    loom_merge_free(&m);
    for (int i = 0; i < n; i++)
        loom_reader_close(&rd[i]);
    free(rd);
}

typedef struct spill_seen {
    uint64_t *got;
    int seen;
    loom_buf_t prev;
} spill_seen_t;

static void spill_record(void *arg, uint32_t p, const loom_buf_t *kb, const loom_buf_t *vb)
{
    spill_seen_t *s = arg;
    /* keys come out strictly increasing: equal keys were folded */
    if (s->prev.len)
        CU_ASSERT(loom_sort_cmp_bytes(s->prev.data, s->prev.len, kb->data, kb->len) < 0);
    s->prev.len = 0;
    loom_buf_append(loom_test_ctx, &s->prev, kb->data, kb->len);
    char ks[16] = {0};
    memcpy(ks, kb->data + 1, kb->len - 1 < 15 ? kb->len - 1 : 15);
    int key = atoi(ks);
    CU_ASSERT_EQUAL(key % 3, (int)p);
    s->got[key] = loom_mr_u64(vb->data, vb->len);
    s->seen++;
}

/* A store with the summing combiner under a tiny budget: spills, run
 * compaction and the merge must give every key's exact total. */
static void test_store_spill_merge(void)
{
    loom_ctx_t *ctx = loom_test_ctx;
    loom_mr_job_t job = {.name = "t", .combine = loom_mr_combine_sum_u64};
    mr_engine_t eng = {.ctx = ctx, .job = &job, .nparts = 3};
    snprintf(eng.spill_dir, sizeof eng.spill_dir, "%s", loom_test_tmpdir());
    mr_store_t st, stage;
    mr_store_init(&st, &eng, 16384);
    mr_store_init(&stage, &eng, 8192);
    enum { K = 500 };
    uint64_t want[K] = {0};
    char k[16];
    for (int i = 0; i < 20000; i++) {
        int key = (int)(next_rand() % K);
        uint64_t v = next_rand() % 5;
        want[key] += v;
        int n = snprintf(k, sizeof k, "k%d", key);
        uint64_t h = loom_hash_bytes(k, (size_t)n, 3);
        CU_ASSERT_EQUAL_FATAL(mr_store_add(&stage, (uint32_t)(key % 3), h, k, (size_t)n, &v, 8),
                              LOOM_OK);
        if (i % 100 == 99) CU_ASSERT_EQUAL_FATAL(mr_store_merge(&st, &stage), LOOM_OK);
    }
    CU_ASSERT_EQUAL_FATAL(mr_store_merge(&st, &stage), LOOM_OK);
    CU_ASSERT(eng.counts.spill_runs > 0);
    CU_ASSERT(st.nruns <= 17);
    loom_kvref_t *refs;
    size_t nrefs, ps[4];
    CU_ASSERT_EQUAL_FATAL(mr_store_sorted(&st, &refs, &nrefs, ps), LOOM_OK);
    uint64_t got[K] = {0};
    spill_seen_t seen = {.got = got};
    for (uint32_t p = 0; p < 3; p++) {
        seen.prev.len = 0;
        each_combined(&eng, &st, refs, ps, p, spill_record, &seen);
    }
    loom_buf_free(&seen.prev);
    for (int i = 0; i < K; i++)
        CU_ASSERT_EQUAL(got[i], want[i]);
    free(refs);
    mr_store_free(&st);
    mr_store_free(&stage);
}

/* The key of word i of test_count_table: short words, and every seventh one
 * longer than the count table's 16 bytes. */
static int count_word(char *k, size_t cap, int i)
{
    return i % 7 ? snprintf(k, cap, "w%d", i) : snprintf(k, cap, "longerthansixteenbytes%d", i);
}

enum { COUNT_WORDS = 4000 };

static void count_record(void *arg, uint32_t p, const loom_buf_t *kb, const loom_buf_t *vb)
{
    uint64_t *got = arg;
    /* the word's number is its trailing digits; the key is that word */
    size_t d = kb->len;
    while (d > 0 && kb->data[d - 1] >= '0' && kb->data[d - 1] <= '9')
        d--;
    char num[16] = {0}, k[64];
    memcpy(num, kb->data + d, kb->len - d < 15 ? kb->len - d : 15);
    int w = atoi(num);
    CU_ASSERT_FATAL(w >= 0 && w < COUNT_WORDS);
    int kn = count_word(k, sizeof k, w);
    CU_ASSERT((size_t)kn == kb->len && !memcmp(k, kb->data, kb->len));
    /* its partition is its hash's, as every other pair's */
    CU_ASSERT_EQUAL(loom_part_of_hash(loom_key_hash(kb->data, kb->len), 3), p);
    got[w] += loom_mr_u64(vb->data, vb->len);
}

/* Word counts through loom_mr_emit_words, as word count's map: the count table
 * grows, fills (new words then go to the store's table), drains into a spilling
 * store on merge, and every word's total is exact. */
static void test_count_table(void)
{
    loom_ctx_t *ctx = loom_test_ctx;
    loom_mr_job_t job = {.name = "t", .combine = loom_mr_combine_sum_u64};
    mr_engine_t eng = {.ctx = ctx, .job = &job, .nparts = 3};
    snprintf(eng.spill_dir, sizeof eng.spill_dir, "%s", loom_test_tmpdir());
    enum { K = COUNT_WORDS };
    static uint64_t want[K], got[K];
    memset(want, 0, sizeof want);
    memset(got, 0, sizeof got);
    /* stage budgets: a count table of at most 1024 slots (512 words), none at
     * all, and one that holds every word */
    const size_t stage_budget[] = {(size_t)1 << 20, (size_t)1 << 19, (size_t)1 << 30};
    for (int b = 0; b < 3; b++) {
        mr_store_t acc, stage;
        mr_store_init(&acc, &eng, b == 2 ? (size_t)1 << 30 : (size_t)1 << 19);
        mr_store_init(&stage, &eng, stage_budget[b]);
        char *text = malloc(1 << 20);
        CU_ASSERT_FATAL(text != NULL);
        for (int task = 0; task < 6; task++) {
            size_t len = 0;
            for (int i = 0; i < 30000; i++) {
                /* skewed: low word numbers are common */
                int w = (int)(next_rand() % (1 + next_rand() % K));
                want[w]++;
                len += (size_t)count_word(text + len, 64, w);
                text[len++] = i % 13 ? ' ' : '\n';
            }
            loom_mr_emit_t em = {.kind = MR_EMIT_MAP, .eng = &eng, .store = &stage};
            static const uint64_t one = 1;
            CU_ASSERT_EQUAL_FATAL(loom_mr_emit_words(&em, text, len, &one, sizeof one), LOOM_OK);
            CU_ASSERT_EQUAL(em.count, 30000);
            if (b == 0) CU_ASSERT(stage.ncnt > 0 && stage.ncnt <= 512);
            if (b == 1) CU_ASSERT(stage.ncnt == 0);
            CU_ASSERT_EQUAL_FATAL(mr_store_merge(&acc, &stage), LOOM_OK);
            CU_ASSERT_EQUAL(stage.ncnt, 0);
        }
        free(text);
        if (b < 2) CU_ASSERT(eng.counts.spill_runs > 0);
        loom_kvref_t *refs;
        size_t nrefs, ps[4];
        CU_ASSERT_EQUAL_FATAL(mr_store_sorted(&acc, &refs, &nrefs, ps), LOOM_OK);
        for (uint32_t p = 0; p < 3; p++)
            each_combined(&eng, &acc, refs, ps, p, count_record, got);
        free(refs);
        mr_store_free(&acc);
        mr_store_free(&stage);
        for (int i = 0; i < K; i++)
            CU_ASSERT_EQUAL(got[i], want[i]);
        memset(want, 0, sizeof want);
        memset(got, 0, sizeof got);
        eng.counts.spill_runs = 0;
    }
}

static void register_suites(void)
{
    static const CU_TestInfo tests[] = {
        {"tokenize against a byte-by-byte reference", test_tokenize},
        {"block tokeniser against the scalar one", test_tokenize_blocks},
        {"all words of a block at once, at the edges", test_tokenize_words},
        {"hash determinism and spread", test_hash},
        {"pair sort order", test_sort},
        {"radix sort of one partition, by key and by value", test_sort_radix},
        {"combining table keeps keys unique as it grows", test_store_unique_keys},
        {"store spills, compacts and merges exact totals", test_store_spill_merge},
        {"word counts through the count table, full, drained and spilled", test_count_table},
        {NULL, NULL},
    };
    loom_test_suite("mr_store", tests);
}

int main(int argc, char **argv)
{
    return loom_test_main(argc, argv, register_suites);
}
