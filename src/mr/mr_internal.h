/* Internal interfaces of the MapReduce engine: buffers, pair stores, spill runs, merging, plan. */
#ifndef LOOM_MR_INTERNAL_H
#define LOOM_MR_INTERNAL_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "dataplane/dataplane.h"
#include "kernels/sort.h"
#include "loom/chunks.h"
#include "loom/mr.h"

/* ------------------------------------------------------------------ engine state */

typedef struct mr_engine mr_engine_t;

enum { MR_EMIT_MAP = 1, MR_EMIT_COMBINE, MR_EMIT_REDUCE, MR_EMIT_SAMPLE };

struct loom_mr_emit {
    int kind;
    mr_engine_t *eng;
    struct mr_store *store; /* MAP: where pairs go */
    loom_buf_t *value;      /* COMBINE: the folded value */
    int value_set;
    FILE *out; /* REDUCE: the part file */
    const char *out_path;
    int64_t count;      /* pairs emitted / lines written */
    loom_buf_t *sample; /* SAMPLE: keys as records */
    int64_t sample_max;
};

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

/* A short key counted in place: the key inline, zero-padded (len 0: empty). */
typedef struct mr_count {
    uint64_t k0, k1, count;
    uint32_t len, pad;
} mr_count_t;

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
    loom_run_t *runs;
    int nruns, runcap;
    loom_buf_t scratch; /* combiner output */
    /* Counting stores (sum_u64): keys of up to 16 bytes that loom_mr_emit_words
     * counts go first into this open-addressing table, the key inline, so that
     * a word costs one load instead of a slot's and then an entry's. It grows
     * up to cnt_max slots (at most 1/32 of the budget) and then takes no
     * new keys; it is drained into the table above before anything reads the
     * store (merge, sort, spill). */
    mr_count_t *cnt;
    size_t ncnt, cnt_slots, cnt_max;
    int draining; /* the count table is moving into this store's table: no spill */
} mr_store_t;

typedef struct mr_task {
    uint32_t file;
    uint64_t off, len, line0;
} mr_task_t;

/* The master's record of one map task. */
typedef struct mr_taskstate {
    int state;        /* 0 idle, 1 running, 2 done */
    int done_by;      /* start rank of the worker holding its output */
    int ncopies;      /* running copies (a backup makes two) */
    int copy_rank[2]; /* their ranks now */
    int copy_backup[2];
    double start;
} mr_taskstate_t;

typedef struct mr_counts {
    int64_t input_records, map_pairs, shuffle_bytes, output_records;
    int64_t offnode_bytes, offnode_messages; /* the shuffle's, to other nodes */
    int64_t spill_runs, spill_bytes;
} mr_counts_t;

struct mr_engine {
    loom_ctx_t *ctx;
    const loom_mr_job_t *job;
    int nparts;
    size_t budget, split_size, max_record;
    loom_spill_dir_t spill; /* this job's private spill directory */
    char spill_dir[4096];   /* its path (runs go there) */
    char spill_base[4096];  /* --spill-dir, $TMPDIR or /tmp */
    loom_fault_t fault;     /* --inject-fault */
    /* the plan (same on every rank after broadcast) */
    char **files;
    uint32_t nfiles;
    uint64_t *file_size;
    mr_task_t *tasks;
    int64_t ntasks;
    uint64_t total_bytes;
    loom_ranges_t ranges; /* range partitioning: nparts - 1 sorted boundary keys */
    mr_counts_t counts;
    /* the master's view of the map tasks, kept across recoveries */
    mr_taskstate_t *ts;
    /* reduce partitions: owner (worker index now), whether all their data is
     * at the owner, whether the owner has written their part file; the same
     * on every rank (reduced: known to the owner) */
    int *owner;
    uint8_t *complete, *reduced;
    /* master's fault-tolerance counters */
    int64_t reexecuted, lost_workers, backups_run, backups_won;
    int64_t nodes, levels;  /* the shuffle's: nodes among the workers, exchange levels */
    int64_t shuffle_rounds; /* the exchange's rounds, over every shuffle */
    int64_t map_done;       /* map tasks this rank completed (for kill:R@map:N) */
    /* a worker: the tasks whose output it committed into its store (the
     * truth a recovery rebuilds the master's table from) */
    int64_t *committed;
    int64_t ncommitted;
    /* store:/PATH inputs: the store, each input's splits, reads of this rank */
    loom_chunks_t *chunks;
    loom_chunks_lines_t **lines;
    const char **line_specs;
    int nlines;
    int64_t local_reads, remote_reads;
    int sampling; /* the master reads samples: not map tasks' reads */
};

/* Partition of a key whose hash is `h`, by the job's partitioner. */
uint32_t mr_partition_of(mr_engine_t *eng, const void *key, size_t klen, uint64_t h);
/* The same, with the hash partitioning inline when the job sets none. */
static inline uint32_t mr_part(mr_engine_t *eng, const void *key, size_t klen, uint64_t h)
{
    return eng->job->partition || eng->job->range_partition
               ? mr_partition_of(eng, key, klen, h)
               : loom_part_of_hash(h, (uint32_t)eng->nparts);
}

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

/* Count v for a key of 1..16 bytes (two zero-padded little-endian words) that
 * is not in the store's count table: returns 1 when the table took it, 0 when
 * it takes no new keys (the caller then adds the pair to the store as usual).
 * A counting store (sum_u64) and v an 8-byte count only. */
int mr_store_count_new(mr_store_t *st, uint64_t hash, uint64_t kw0, uint64_t kw1, uint32_t klen,
                       uint64_t v);

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

/* Next record of the merge with equal keys folded by the job's combiner (when
 * it has one); key and value are copied into kb and vb. Returns 0 at the end. */
loom_status_t mr_merge_next_combined(mr_engine_t *eng, loom_merge_t *m, loom_buf_t *kb,
                                     loom_buf_t *vb, int *have);

/* Open readers over the in-memory refs of partition p and every run's section
 * for p; *rd (an array of *n readers) is the caller's to close and free. */
loom_status_t mr_store_part_readers(mr_store_t *st, const loom_kvref_t *refs,
                                    const size_t *part_start, uint32_t p, loom_reader_t **rd,
                                    int *n);

/* Fold b into a with the job's combiner; a receives the result. */
loom_status_t mr_combine_into(mr_engine_t *eng, const void *k, size_t klen, loom_buf_t *a,
                              const void *b, size_t blen);

/* ------------------------------------------------------------------ plan (mr_plan.c) */

/* Rank 0: expand the inputs, check them, cut map tasks. Others: nothing.
 * Then (collective over loom_comm) agree and broadcast the plan. */
loom_status_t mr_plan(mr_engine_t *eng);
/* Collective: rank 0 samples keys and broadcasts nparts - 1 range bounds. */
loom_status_t mr_sample_bounds(mr_engine_t *eng);
/* Read a task's bytes into inbuf (inbuf->len = the task's length). */
loom_status_t mr_read_task(mr_engine_t *eng, int64_t t, loom_buf_t *inbuf);
/* Call map on each record of data[0, len), a line-aligned piece of task t that
 * starts at byte `off` of the file with line number line0 (0: not counted). */
loom_status_t mr_map_records(mr_engine_t *eng, int64_t t, const char *data, size_t len,
                             uint64_t off, uint64_t line0, loom_mr_emit_t *em, int64_t *records);
/* A block map (job->map_blocks) over task t of a text file, read and mapped a
 * piece at a time (1 MiB, cut after a newline; grown for a longer line up to
 * --max-record), so that each piece is still in cache when it is mapped. */
loom_status_t mr_map_text_blocks(mr_engine_t *eng, int64_t t, loom_mr_emit_t *em, loom_buf_t *inbuf,
                                 int64_t *records);
/* Read a task's bytes and call map on each record, emitting into `em`. */
loom_status_t mr_map_task(mr_engine_t *eng, int64_t t, loom_mr_emit_t *em, loom_buf_t *inbuf,
                          int64_t *records);
void mr_plan_free(mr_engine_t *eng);

/* ------------------------------------------------------------------ element inputs (mr_input.c)
 * An input spec FILE:/DATASET is a 1-D numeric HDF5 dataset, gen:N a generator
 * of N records; their tasks count elements (off, len) instead of bytes. */

enum { MR_IN_TEXT = 0, MR_IN_H5, MR_IN_GEN, MR_IN_STORE };
/* Most elements one input may hold: their sizes (8 bytes an element) and
 * record numbers stay well inside 64 bits. */
#define MR_MAX_ELEMENTS ((uint64_t)1 << 60)
int mr_input_kind(const char *spec);
/* Is it an element input (HDF5 dataset, generator), whose tasks count elements? */
int mr_input_elements(const char *spec);

/* ------------------------------------------------------------------ store inputs (mr_chunks.c)
 * store:/PATH inputs: the store is opened and each file's splits learned, collectively,
 * before planning; a task is one split. */
loom_status_t mr_chunks_open(mr_engine_t *eng);
void mr_chunks_close(mr_engine_t *eng);
/* The splits of store input `spec` ("store:/PATH"), NULL when it is not one. */
loom_chunks_lines_t *mr_chunks_lines(mr_engine_t *eng, const char *spec);
/* Read task t (a split, or a prefix of one cut to whole lines) into inbuf. */
loom_status_t mr_chunks_read(mr_engine_t *eng, int64_t t, loom_buf_t *inbuf);
/* Whether the worker of rank `rank` holds task t's chunk (1 for other inputs), and whether
 * it can run t at all. */
int mr_task_local(mr_engine_t *eng, int64_t t, int rank);
int mr_task_runnable(mr_engine_t *eng, int64_t t, int rank);
/* Number of elements; refuses a missing, non-1-D or non-numeric dataset, and
 * gen:N with N not a number or above MR_MAX_ELEMENTS. */
loom_status_t mr_input_count(loom_ctx_t *ctx, const char *spec, uint64_t *n);
/* Elements [first, first + count) as text records, one per line, into out. */
loom_status_t mr_input_read(loom_ctx_t *ctx, const char *spec, uint64_t first, uint64_t count,
                            loom_buf_t *out);

/* ------------------------------------------------------------------ phases */

/* The map phase: every rank takes part in the protocol; the master hands out
 * the tasks that are idle in eng->ts, the workers map and commit their output
 * into acc. A worker that dies meanwhile (ULFM) is handled by the master: its
 * tasks, done ones included, go to the others; the phase ends when every task
 * is done by a live worker. */
loom_status_t mr_map_phase(mr_engine_t *eng, mr_store_t *acc);
/* After a recovery, collective over the survivors: the master's task table is
 * rebuilt from what the workers committed (a task is done iff a live worker
 * holds its output; every other task, the dead's and any whose commit was lost
 * in flight, is idle again). Returns on the master how many tasks were done
 * before and are idle now. */
loom_status_t mr_map_reconcile(mr_engine_t *eng, int64_t *again);

/* ------------------------------------------------------------------ shuffle relays
 * Node-level combining in the two-level exchange (mr_relay.c): at a relay,
 * fold the segments [u32 part][u64 len][records] that the node's members
 * sent destination `dest` (a segment for part UINT32_MAX: the member has
 * sent all) into segments of the same form on `out`, sorted and combined,
 * holding back what a member still sending may yet precede. relays: [L],
 * NULL until used. *held counts the bytes held back over all destinations;
 * past `cap` this destination's are sent on at once, followed by
 * MR_SEG_RUN_BREAK, so that memory stays bounded and streams stay sorted. */
typedef struct mr_relay mr_relay_t;
/* Marker segments of the two-level shuffle (partition numbers no job has):
 * from a member to its relay, "I have sent you all for this destination";
 * from a relay to a destination, "what follows starts a new sorted run". */
#define MR_SEG_ALL_SENT UINT32_MAX
#define MR_SEG_RUN_BREAK (UINT32_MAX - 1)
/* The next shuffle segment header [u32 part][u64 len] at *p (before end):
 * advances *p past it and checks that its records fit. */
static inline loom_status_t mr_segment_next(loom_ctx_t *ctx, const unsigned char **p,
                                            const unsigned char *end, uint32_t *part, uint64_t *len)
{
    if ((size_t)(end - *p) < 12) return LOOM_ERROR(ctx, LOOM_ERR_INTERNAL, "bad shuffle segment");
    memcpy(part, *p, 4);
    memcpy(len, *p + 4, 8);
    *p += 12;
    if (*len > (uint64_t)(end - *p))
        return LOOM_ERROR(ctx, LOOM_ERR_INTERNAL, "bad shuffle segment for partition %u", *part);
    return LOOM_OK;
}
loom_status_t mr_relay_combine(mr_engine_t *eng, mr_relay_t **relays, int dest, int nseg,
                               const unsigned char *const *seg, const size_t *len, int last,
                               size_t *held, size_t cap, loom_buf_t *out);
void mr_relay_free(mr_relay_t **relays, int L);

#endif
