/* Internal: the dataset engine's lineage nodes, stages and record tables. */
#ifndef LOOM_DS_INTERNAL_H
#define LOOM_DS_INTERNAL_H

#include "dataplane/dataplane.h"
#include "kernels/sort.h"
#include "loom/chunks.h"
#include "loom/dataset.h"

typedef enum ds_kind {
    /* sources */
    DS_TEXT = 1, /* line-aligned byte ranges of files */
    DS_RANGE,    /* 0 .. n-1 */
    DS_H5,       /* the elements of a 1-D numeric HDF5 dataset, read by ranges */
    DS_STORED,   /* partitions given when made (edges, parallelize): kept for good */
    DS_CKPT,     /* a checkpoint: partitions in memory or in its files */
    /* narrow */
    DS_MAP,
    DS_FILTER,
    DS_MAP_VALUES,
    DS_KEY_BY,
    DS_MAP_PART, /* map_partitions */
    DS_SAMPLE,
    DS_BJOIN, /* join with a broadcast side: placed where the other input is */
    DS_UNION,
    DS_JOIN_LOCAL, /* join of co-partitioned inputs */
    /* wide: the output of a shuffle */
    DS_REDUCE,
    DS_GROUP,
    DS_DISTINCT,
    DS_PARTITION,
    DS_JOIN,
    DS_SORT,
    DS_AGG,     /* aggregate_by_key */
    DS_COGROUP, /* both inputs, grouped per key */
    DS_REPART,  /* round robin over the partitions */
} ds_kind_t;

enum { DS_PART_NONE = 0, DS_PART_HASH, DS_PART_RANGE };

typedef struct ds_split {
    uint32_t file;
    uint64_t begin, end;
} ds_split_t;

struct loom_ds {
    loom_ds_engine_t *e;
    int id;
    ds_kind_t kind;
    char name[40];
    loom_ds_t *in[2];
    int nin;
    int nparts;
    int partitioning; /* DS_PART_* */
    loom_ds_map_fn map;
    loom_ds_pred_fn pred;
    loom_ds_part_fn part_fn; /* map_partitions */
    loom_ds_combine_fn comb;
    loom_ds_combine_fn seq; /* aggregate_by_key: folds a value into the accumulator */
    loom_buf_t zero;        /* aggregate_by_key: the accumulator's start */
    double fraction;        /* sample */
    uint64_t seed;
    void *user;
    int persist; /* kept until unpersisted */
    loom_ds_storage_t storage;
    unsigned char *ondisk; /* [p]: partition p is kept in its spill file, not in part[p] */
    /* Kept partitions (shuffle output, persisted or stored): `kept` says the
     * whole dataset is materialised (the same on every rank); have[p] whether
     * this rank holds partition p, in part[p]. */
    int kept;
    loom_buf_t *part;
    unsigned char *have;
    int64_t stage_reads; /* stages of the running action still to read it */
    uint64_t touched;    /* the last action whose plan used it */
    uint64_t planned;    /* the last action that counted its readers */
    unsigned char *lost; /* partitions found missing (the same on every rank) */
    int nlost;
    /* sources */
    uint64_t range_n;
    int dim;    /* text vectors: numbers per line (the parser's argument) */
    int h5kind; /* DS_H5: loom_ds_num_t of the elements */
    ds_split_t *splits;
    int *place; /* source partitions placed on slots (store splits: a holder's); NULL: p mod W */
    char *ckpt_path; /* DS_CKPT: the checkpoint's directory */
    char *source;    /* edges: the graph, read again for partitions lost with a worker;
                        DS_H5: FILE:/DATASET */
    void *bindex;    /* broadcast join: every record of the small side, indexed (workers) */
    int undirected;
    loom_buf_t given; /* parallelize: rank 0 keeps the records, to hand out again */
    size_t ngiven;
    /* sort */
    loom_ranges_t ranges;
    int ranged;
};

struct loom_ds_engine {
    loom_ctx_t *ctx;
    loom_ds_config_t cfg;
    char *dot_path;
    int workers, slot; /* worker count, this rank's worker index (-1: master) */
    int slots;         /* workers at the start: partition p belongs to slot p mod slots */
    int *slot_owner;   /* [slot] -> the worker index holding it now (moves when one dies) */
    loom_fault_t kill; /* --inject-fault kill:RANK@stage:N */
    int recoveries;
    int64_t stages_begun; /* shuffle stages and persisted datasets this rank began (faults) */
    loom_ds_t **all;
    int n, cap;
    loom_status_t err; /* first error of a transformation, returned by the next action */
    char **files;      /* text inputs, all text sources of the engine */
    size_t nfiles;
    uint64_t action;
    int fault_node, fault_part, fault_done;
    FILE *dot;
    long cur_file; /* the text line being processed: file index (-1: none), offset */
    uint64_t cur_off;
    char where[4200];
    char *ckpt_dir, *restart_dir, *identity;
    char *spill_base;
    loom_spill_dir_t spill; /* made when a partition first goes to disk */
    int64_t kept_bytes;     /* kept in memory on this rank (MEMORY_AND_DISK's budget) */
    int64_t on_disk;        /* partitions written to disk */
    int stop_signal;
    /* counters for the summary */
    int64_t stages, shuffle_bytes, shuffle_records, recomputed, actions, dropped, checkpoints;
    int64_t shuffle_rounds;  /* exchange rounds of the stages (more than one past --memory) */
    int64_t shuffle_spilled; /* bytes received by shuffles and written to the spill directory */
    /* store:/PATH text inputs: the store, each file's splits, this rank's reads */
    loom_chunks_t *chunks;
    loom_chunks_lines_t **lines;
    char **line_specs;
    int nlines;
    int64_t local_reads, remote_reads;
};

/* The slot of partition p of d: p mod W, or where its source placed it (a store split on a
 * holder of its chunk), except that a union's partitions stay where its inputs' are (narrow
 * steps keep their input's placement); the worker owning it now; whether this rank does. */
int ds_slot_walk(const loom_ds_t *d, int p);
static inline int ds_slot(const loom_ds_t *d, int p)
{
    if (d->kind < DS_MAP || d->kind > DS_UNION) return d->place ? d->place[p] : p % d->e->slots;
    return ds_slot_walk(d, p);
}
static inline int ds_owner(const loom_ds_t *d, int p)
{
    return d->e->slot_owner[ds_slot(d, p)];
}
static inline int ds_mine(const loom_ds_t *d, int p)
{
    return d->e->slot >= 0 && ds_owner(d, p) == d->e->slot;
}

/* ------------------------------------------------------------------ pipelines (ds_exec.c) */

/* A consumer of records. */
typedef struct ds_sink ds_sink_t;
struct ds_sink {
    loom_status_t (*put)(ds_sink_t *s, const loom_ds_rec_t *r);
};

struct loom_ds_out {
    loom_ctx_t *ctx;
    loom_ds_engine_t *e;
    ds_sink_t *next;
    const loom_ds_rec_t *in; /* map_values: the key to keep */
    int keep_key;
    loom_buf_t *key_by; /* key_by: the value becomes pair(key, value) of `in`, built here */
    /* combiner output capture */
    loom_buf_t *capture;
};

struct loom_ds_iter {
    const unsigned char *p, *end;
    int bad; /* a corrupt record was met */
};
/* Partition p of d as an iterator: over its kept buffer when it is in memory, else over a
 * copy pulled into *copy (freed by the caller). */
loom_status_t ds_part_iter(loom_ds_t *d, int p, loom_buf_t *copy, loom_ds_iter_t *it);

/* Push partition p of d through `sink`, record by record (kept partitions
 * are read; narrow steps are applied on the way). Local. */
loom_status_t ds_pull(loom_ds_t *d, int p, ds_sink_t *sink);
/* Make sure every wide step and persisted dataset under d is kept (running
 * the stages that are missing, in order). Collective. */
loom_status_t ds_prepare(loom_ds_t *d);
/* After an action on d: drop shuffle outputs the plan no longer needs. */
void ds_action_done(loom_ds_t *d);
/* Drop d's kept partitions (not for stored sources). */
void ds_drop(loom_ds_t *d);
/* A buffer's records as references sorted by key (then value, with by_value);
 * *refs is the caller's to free. Thread-safe across buffers. */
loom_status_t ds_sorted_refs(loom_ctx_t *ctx, const loom_buf_t *b, int by_value,
                             loom_kvref_t **refs, size_t *n);
/* Iterate the records of a kept buffer. */
loom_status_t ds_buf_each(loom_ctx_t *ctx, const loom_buf_t *b, ds_sink_t *sink);
loom_status_t ds_keep_alloc(loom_ds_t *d);

/* Print the plan of an action on d (--explain, --dot). Rank 0. */
void ds_explain(loom_ds_t *d, const char *action);

/* ------------------------------------------------------------------ record tables (ds_table.c)
 * A hash table of records keyed by their key bytes, for combining values
 * (reduce_by_key) and finding distinct records. */

typedef struct ds_slot {
    uint64_t hash;
    uint64_t at; /* 0: empty, else (offset in arena) + 1 */
} ds_slot_t;

typedef struct ds_table {
    ds_slot_t *slot; /* hash and place together: one cache line per probe */
    size_t cap, n;
    loom_buf_t arena; /* records */
} ds_table_t;

/* Combine `val` into the key's value (insert when new). fn: the user's
 * combiner, or loom_ds_sum_u64 / loom_ds_sum_f64 (folded in place). */
loom_status_t ds_table_add(loom_ctx_t *ctx, ds_table_t *t, uint64_t h, const void *key, size_t klen,
                           const void *val, size_t vlen, loom_ds_combine_fn fn, void *user);
/* Fold `val` into the key's accumulator with seq, which starts as `zero` (aggregate_by_key). */
loom_status_t ds_table_seq(loom_ctx_t *ctx, ds_table_t *t, uint64_t h, const void *key, size_t klen,
                           const void *val, size_t vlen, loom_ds_combine_fn seq, void *user,
                           const loom_buf_t *zero);
/* Insert when no equal key is present; *added says whether it was. */
loom_status_t ds_table_insert(loom_ctx_t *ctx, ds_table_t *t, uint64_t h, const void *key,
                              size_t klen, const void *val, size_t vlen, int *added);
/* The record in slot i (slot[i].at != 0). */
void ds_table_rec(const ds_table_t *t, size_t i, loom_ds_rec_t *r);
/* Visit every record. */
loom_status_t ds_table_each(loom_ctx_t *ctx, const ds_table_t *t, ds_sink_t *sink);
void ds_table_free(ds_table_t *t);
size_t ds_table_bytes(const ds_table_t *t);

/* Decode the record at *pp in [*pp, end) and step past it; 0 at the end, -1
 * when malformed. Short keys and values (one-byte lengths) take the fast path. */
static inline int ds_next_record(const unsigned char **pp, const unsigned char *end,
                                 loom_ds_rec_t *r)
{
    const unsigned char *p = *pp;
    if (p >= end) return 0;
    uint64_t kl, vl;
    if (end - p >= 2 && p[0] < 0x80 && p[1] < 0x80) {
        kl = p[0];
        vl = p[1];
        p += 2;
    } else {
        p = loom_get_varint(p, end, &kl);
        if (!p) return -1;
        p = loom_get_varint(p, end, &vl);
        if (!p) return -1;
    }
    if (kl > (uint64_t)(end - p) || vl > (uint64_t)(end - p) - kl) return -1;
    r->key = p;
    r->klen = (size_t)kl;
    r->val = p + kl;
    r->vlen = (size_t)vl;
    *pp = p + kl + vl;
    return 1;
}

/* ------------------------------------------------------------------ sources (ds_source.c) */

/* The text line this thread is processing (loom_ds_where): file index (-1:
 * none) and offset; per thread, since partitions are pulled on several. */
extern _Thread_local long ds_cur_file;
extern _Thread_local uint64_t ds_cur_off;

/* Push split p of a text source. */
loom_status_t ds_text_pull(loom_ds_t *d, int p, ds_sink_t *sink);
loom_status_t ds_h5_pull(loom_ds_t *d, int p, ds_sink_t *sink);
/* The elements [*lo, *hi) of partition p when n are cut into nparts contiguous ranges. */
static inline void ds_part_range(uint64_t n, int p, int nparts, uint64_t *lo, uint64_t *hi)
{
    *lo = (uint64_t)((unsigned __int128)n * (unsigned)p / (unsigned)nparts);
    *hi = (uint64_t)((unsigned __int128)n * (unsigned)(p + 1) / (unsigned)nparts);
}
/* Partition p of d was just filled in part[p]: count it, and move it to its
 * spill file when d is kept on disk (or past the memory budget). Thread-safe
 * across partitions. */
loom_status_t ds_keep_store(loom_ds_t *d, int p);
/* The engine's spill directory, made when first needed. Thread-safe. */
loom_status_t ds_spill_ready(loom_ds_engine_t *e);
/* Append b's bytes to the file `path` (made if missing); read a whole file after b's bytes. */
loom_status_t ds_file_append(loom_ctx_t *ctx, const char *path, const loom_buf_t *b);
loom_status_t ds_file_read(loom_ctx_t *ctx, const char *path, loom_buf_t *b);
/* Push partition p kept on disk through sink. */
loom_status_t ds_disk_pull(loom_ds_t *d, int p, ds_sink_t *sink);
/* Free a broadcast join's index. */
void ds_bindex_free(void *x);
/* Forget partition p (memory or file). */
void ds_part_free(loom_ds_t *d, int p);

/* Read partition p of a checkpointed dataset from its file (and keep it). */
loom_status_t ds_ckpt_load(loom_ds_t *d, int p);
/* Plan the text source (collective): expand inputs on rank 0, cut splits, broadcast. */
loom_status_t ds_text_plan(loom_ds_t *d, const char *const *inputs, int ninputs);

/* Sources made when called, with partitions lost (a dead worker): read or hand out
 * those partitions again. Collective over the job. */
loom_status_t ds_stored_reload(loom_ds_engine_t *e);
/* After an action: with ULFM, whether a rank died (agreed by the survivors); if
 * one did, shrink to the survivors, move the dead worker's partitions to the
 * others (marked lost, to be recomputed) and return 1: run the action again.
 * *st gets a recovery failure. */
int ds_again(loom_ds_t *d, loom_status_t *st);

/* ------------------------------------------------------------------ engine internals */
loom_ds_t *ds_node(loom_ds_engine_t *e, ds_kind_t kind, const char *op, loom_ds_t *a, loom_ds_t *b,
                   int nparts);
/* Keep the first error of a transformation. Returns NULL-safe d. */
void ds_fail(loom_ds_engine_t *e, loom_status_t st);
/* The status to start an action with: the kept error, agreed. */
loom_status_t ds_action_begin(loom_ds_t *d, const char *action);

#endif
