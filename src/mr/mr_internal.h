/* Internal interfaces of the MapReduce engine: buffers, pair stores, spill runs, merging, plan. */
#ifndef LOOM_MR_INTERNAL_H
#define LOOM_MR_INTERNAL_H

#include <stdint.h>
#include <stdio.h>

#include "kernels/sort.h"
#include "loom/mr.h"

/* ------------------------------------------------------------------ byte buffers and records
 * A record in a buffer or file is varint(klen) varint(vlen) key value. */

typedef struct mr_buf {
    unsigned char *data;
    size_t len, cap;
} mr_buf_t;

loom_status_t mr_buf_reserve(loom_ctx_t *ctx, mr_buf_t *b, size_t extra);
loom_status_t mr_buf_append(loom_ctx_t *ctx, mr_buf_t *b, const void *data, size_t len);
loom_status_t mr_buf_put_record(loom_ctx_t *ctx, mr_buf_t *b, const void *k, size_t klen,
                                const void *v, size_t vlen);
void mr_buf_free(mr_buf_t *b);

static inline unsigned char *mr_put_varint(unsigned char *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    *p++ = (unsigned char)v;
    return p;
}

/* Decode a varint from [p, end); NULL when truncated or overlong. */
static inline const unsigned char *mr_get_varint(const unsigned char *p, const unsigned char *end,
                                                 uint64_t *v)
{
    uint64_t x = 0;
    for (int shift = 0; p < end && shift < 64; shift += 7) {
        unsigned char c = *p++;
        x |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *v = x;
            return p;
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------ engine state */

typedef struct mr_engine mr_engine_t;

enum { MR_EMIT_MAP = 1, MR_EMIT_COMBINE, MR_EMIT_REDUCE, MR_EMIT_SAMPLE };

struct loom_mr_emit {
    int kind;
    mr_engine_t *eng;
    struct mr_store *store; /* MAP: where pairs go */
    mr_buf_t *value;        /* COMBINE: the folded value */
    int value_set;
    FILE *out; /* REDUCE: the part file */
    const char *out_path;
    int64_t count;    /* pairs emitted / lines written */
    mr_buf_t *sample; /* SAMPLE: keys as records */
    int64_t sample_max;
};

/* A spill run: one file holding a sorted section per partition. */
typedef struct mr_run {
    char *path;
    uint64_t *off; /* nparts + 1 section bounds */
} mr_run_t;

/* One distinct pair in a store: 64 bytes, so a probe that hits touches one line
 * for the key check (short keys are copied into ikey) and, for values of at
 * most 8 bytes (counts, sums), none more for the value (kept in ival). */
typedef struct mr_entry {
    uint64_t hash;
    size_t koff, voff; /* arena offsets; voff unused when vcap == 0 */
    uint32_t klen, vlen;
    uint32_t vcap; /* 0: the value lives in ival */
    uint32_t part;
    unsigned char ikey[16];
    uint64_t ival;
} mr_entry_t;

/* Pairs accumulated by a worker: a hash table folding equal keys with the
 * combiner (or an append-only list without one), plus spilled sorted runs.
 * A store spills itself when its memory passes its budget. */
typedef struct mr_store {
    mr_engine_t *eng;
    size_t budget;
    int use_table; /* combiner present */
    int sum_u64;   /* the combiner is loom_mr_combine_sum_u64: fold counts in place */
    mr_entry_t *ent;
    size_t nent, entcap;
    uint64_t *slots; /* (hash >> 32) << 32 | (entry index + 1); 0 = empty; power-of-two count */
    size_t nslots;
    unsigned char *arena;
    size_t alen, acap;
    mr_run_t *runs;
    int nruns, runcap;
    mr_buf_t scratch; /* combiner output */
} mr_store_t;

typedef struct mr_task {
    uint32_t file;
    uint64_t off, len, line0;
} mr_task_t;

typedef struct mr_counts {
    int64_t input_records, map_pairs, shuffle_bytes, output_records;
    int64_t spill_runs, spill_bytes;
} mr_counts_t;

struct mr_engine {
    loom_ctx_t *ctx;
    const loom_mr_job_t *job;
    int nparts;
    size_t budget, split_size, max_record;
    char spill_dir[4096];
    int spill_seq;
    /* fault injection */
    int lose_rank, lose_after; /* -1 when none */
    int slow_rank;
    double slow_seconds;
    /* the plan (same on every rank after broadcast) */
    char **files;
    uint32_t nfiles;
    uint64_t *file_size;
    mr_task_t *tasks;
    int64_t ntasks;
    uint64_t total_bytes;
    /* range partitioning: nparts - 1 sorted boundary keys */
    mr_buf_t bounds_buf;
    const unsigned char **bound_key;
    size_t *bound_len;
    size_t nbounds;
    mr_counts_t counts;
    /* master's fault-tolerance counters */
    int64_t reexecuted, lost_workers, backups_run, backups_won;
};

/* Partition of a key whose hash is `h`. */
uint32_t mr_partition_of(mr_engine_t *eng, const void *key, size_t klen, uint64_t h);

/* ------------------------------------------------------------------ stores (mr_store.c) */

void mr_store_init(mr_store_t *st, mr_engine_t *eng, size_t budget);
void mr_store_free(mr_store_t *st); /* also deletes its run files */
size_t mr_store_mem(const mr_store_t *st);
loom_status_t mr_store_add(mr_store_t *st, uint32_t part, uint64_t hash, const void *k, size_t klen,
                           const void *v, size_t vlen);
/* The hot path of counting jobs, inline: if the key is in the table with an
 * 8-byte count and the combiner sums counts, add v to it and return 1; else
 * return 0 and change nothing (the caller then calls mr_store_add). The key is
 * at most 16 bytes, given as two little-endian words zero-padded past klen. */
static inline int mr_store_fold_u64(mr_store_t *st, uint64_t hash, uint64_t kw0, uint64_t kw1,
                                    size_t klen, uint64_t v)
{
    if (!st->sum_u64 || !st->nslots || klen > 16) return 0;
    size_t mask = st->nslots - 1, j = hash & mask;
    uint64_t tag = hash >> 32 << 32;
    for (;;) {
        uint64_t s = st->slots[j];
        if (!s) return 0;
        if ((s & 0xffffffff00000000ULL) == tag) {
            mr_entry_t *e = &st->ent[(s & 0xffffffffu) - 1];
            uint64_t a0, a1;
            memcpy(&a0, e->ikey, 8);
            memcpy(&a1, e->ikey + 8, 8);
            if (e->klen == klen && a0 == kw0 && a1 == kw1) {
                if (e->vcap || e->vlen != 8) return 0;
                e->ival += v;
                return 1;
            }
        }
        j = (j + 1) & mask;
    }
}

/* Hints for batched adds: fetch the home slot of `hash` into cache, and, once
 * it is there, the entry it points to. Never fault; any table state. */
static inline void mr_store_prefetch_slot(const mr_store_t *st, uint64_t hash)
{
    if (st->nslots) __builtin_prefetch(&st->slots[hash & (st->nslots - 1)]);
}
static inline void mr_store_prefetch_entry(const mr_store_t *st, uint64_t hash)
{
    if (!st->nslots) return;
    uint64_t s = st->slots[hash & (st->nslots - 1)];
    if (s && (s & 0xffffffffu) <= st->nent) __builtin_prefetch(&st->ent[(s & 0xffffffffu) - 1]);
}
/* Move every pair and run of src into dst; src is left empty (capacity kept). */
loom_status_t mr_store_merge(mr_store_t *dst, mr_store_t *src);
/* Forget everything in st, deleting its run files. */
void mr_store_discard(mr_store_t *st);
/* Sort the in-memory pairs and write them as a run; the table is emptied. */
loom_status_t mr_store_spill(mr_store_t *st);
/* The in-memory pairs as refs sorted by (partition, key[, value]); *refs is the
 * caller's to free. part_start gets nparts + 1 bounds into refs. */
loom_status_t mr_store_sorted(mr_store_t *st, loom_kvref_t **refs, size_t *nrefs,
                              size_t *part_start);

/* ------------------------------------------------------------------ sorted streams */

enum { MR_RD_MEM = 1, MR_RD_FILE, MR_RD_REFS };

typedef struct mr_reader {
    int kind, valid;
    const unsigned char *key, *val;
    size_t klen, vlen;
    /* MEM */
    const unsigned char *p, *end;
    /* FILE */
    FILE *f;
    const char *path;
    uint64_t remaining;
    mr_buf_t rec;
    /* REFS */
    const loom_kvref_t *r, *rend;
} mr_reader_t;

void mr_reader_mem(mr_reader_t *rd, const void *data, size_t len);
void mr_reader_refs(mr_reader_t *rd, const loom_kvref_t *r, size_t n);
/* Open a section [off, off + len) of a run file. */
loom_status_t mr_reader_file(loom_ctx_t *ctx, mr_reader_t *rd, const char *path, uint64_t off,
                             uint64_t len);
/* Advance to the next record (sets valid = 0 at the end). The first call
 * after opening loads the first record. */
loom_status_t mr_reader_next(loom_ctx_t *ctx, mr_reader_t *rd);
void mr_reader_close(mr_reader_t *rd);

/* A k-way merge of sorted readers (a binary heap of reader indices). */
typedef struct mr_merge {
    mr_reader_t **rd;
    int n, hn;
    int *heap;
    int by_value;
} mr_merge_t;

/* Readers must already hold their first record (mr_reader_next called once). */
loom_status_t mr_merge_init(loom_ctx_t *ctx, mr_merge_t *m, mr_reader_t **rd, int n, int by_value);
static inline mr_reader_t *mr_merge_top(mr_merge_t *m)
{
    return m->hn ? m->rd[m->heap[0]] : NULL;
}
loom_status_t mr_merge_pop(loom_ctx_t *ctx, mr_merge_t *m);
void mr_merge_free(mr_merge_t *m);

/* Next record of the merge with equal keys folded by the job's combiner (when
 * it has one); key and value are copied into kb and vb. Returns 0 at the end. */
loom_status_t mr_merge_next_combined(mr_engine_t *eng, mr_merge_t *m, mr_buf_t *kb, mr_buf_t *vb,
                                     int *have);

/* Open readers over the in-memory refs of partition p and every run's section
 * for p; *rd (an array of *n readers) is the caller's to close and free. */
loom_status_t mr_store_part_readers(mr_store_t *st, const loom_kvref_t *refs,
                                    const size_t *part_start, uint32_t p, mr_reader_t **rd, int *n);

/* Fold b into a with the job's combiner; a receives the result. */
loom_status_t mr_combine_into(mr_engine_t *eng, const void *k, size_t klen, mr_buf_t *a,
                              const void *b, size_t blen);

/* A fresh spill file path under the spill directory (caller frees). */
char *mr_spill_path(mr_engine_t *eng, const char *what);

/* ------------------------------------------------------------------ plan (mr_plan.c) */

/* Rank 0: expand the inputs, check them, cut map tasks. Others: nothing.
 * Then (collective over loom_comm) agree and broadcast the plan. */
loom_status_t mr_plan(mr_engine_t *eng);
/* Collective: rank 0 samples keys and broadcasts nparts - 1 range bounds. */
loom_status_t mr_sample_bounds(mr_engine_t *eng);
/* Read a task's bytes into inbuf (inbuf->len = the task's length). */
loom_status_t mr_read_task(mr_engine_t *eng, int64_t t, mr_buf_t *inbuf);
/* Call map on each record of data[0, len), a line-aligned piece of task t that
 * starts at byte `off` of the file with line number line0 (0: not counted). */
loom_status_t mr_map_records(mr_engine_t *eng, int64_t t, const char *data, size_t len,
                             uint64_t off, uint64_t line0, loom_mr_emit_t *em, int64_t *records);
/* Read a task's bytes and call map on each record, emitting into `em`. */
loom_status_t mr_map_task(mr_engine_t *eng, int64_t t, loom_mr_emit_t *em, mr_buf_t *inbuf,
                          int64_t *records);
void mr_plan_free(mr_engine_t *eng);

/* ------------------------------------------------------------------ element inputs (mr_input.c)
 * An input spec FILE:/DATASET is a 1-D numeric HDF5 dataset, gen:N a generator
 * of N records; their tasks count elements (off, len) instead of bytes. */

enum { MR_IN_TEXT = 0, MR_IN_H5, MR_IN_GEN };
/* Most elements one input may hold: their sizes (8 bytes an element) and
 * record numbers stay well inside 64 bits. */
#define MR_MAX_ELEMENTS ((uint64_t)1 << 60)
int mr_input_kind(const char *spec);
/* Number of elements; refuses a missing, non-1-D or non-numeric dataset, and
 * gen:N with N not a number or above MR_MAX_ELEMENTS. */
loom_status_t mr_input_count(loom_ctx_t *ctx, const char *spec, uint64_t *n);
/* Elements [first, first + count) as text records, one per line, into out. */
loom_status_t mr_input_read(loom_ctx_t *ctx, const char *spec, uint64_t first, uint64_t count,
                            mr_buf_t *out);

/* HDF5 output (mr_h5out.c): is `path` an HDF5 output name (*.h5, *.hdf5)? */
int mr_output_is_h5(const char *path);
/* Rank 0: the text lines of dir/part-* (partition order) split at their first
 * TAB into the string datasets /keys and /values of a new file h5path. */
loom_status_t mr_h5_from_parts(mr_engine_t *eng, const char *dir, const char *h5path);
/* Delete dir/part-00000 ... and dir itself. */
void mr_parts_remove(const char *dir, int nparts);

/* ------------------------------------------------------------------ phases */

/* The map phase, collective over loom_comm in the sense that every rank takes
 * part in the protocol. Committed map output ends up in acc on the workers.
 * On rank 0, alive[r] tells which ranks are live workers afterwards (with one
 * rank, alive[0] = 1). */
loom_status_t mr_map_phase(mr_engine_t *eng, mr_store_t *acc, int *alive);

#endif
