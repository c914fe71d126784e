/* Loom datasets: partitioned, immutable, lazily computed collections of records with lineage,
 * in the manner of Spark's resilient distributed datasets, on MPI ranks. */
#ifndef LOOM_DATASET_H
#define LOOM_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "loom/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ the model
 *
 * A program on datasets runs on every rank (SPMD): each rank builds the same
 * lineage by calling the same functions in the same order, and every action is
 * collective over the job communicator. The datasets themselves live on the
 * workers: partition p of a dataset with P partitions belongs to worker slot
 * p mod W (W workers; the master owns none when there are two ranks or more),
 * so two datasets with the same number of partitions have each partition on
 * the same worker and a join of co-partitioned datasets moves nothing.
 *
 * A record is a key and a value, both byte strings (either may be empty; a
 * "plain" record such as a line of text is a key with an empty value). Numbers
 * travel as their 8 bytes in the machine's order (loom_ds_u64 / loom_ds_f64
 * read them back).
 *
 * Transformations only record lineage. An action plans stages: narrow steps
 * (map, filter, flat_map, map_values, union, a join of co-partitioned inputs)
 * run pipelined, record by record, inside one stage; a wide step (reduce_by_key,
 * group_by_key, distinct, join of inputs partitioned differently, partition_by,
 * sort_by_key) ends a stage with a shuffle over the data plane's record
 * exchange (MPI_Alltoallv among the workers). A shuffle's output is kept on the
 * workers that own it while later steps need it, as Spark keeps shuffle files;
 * persisted datasets keep their partitions until unpersisted. A partition that
 * is gone (dropped by fault injection) is recomputed from its lineage: only that
 * partition, and the summary counts it.
 *
 * Errors. Functions that make a dataset never fail on their own: they return a
 * handle, and a problem (a bad argument, memory) is kept in the engine and
 * returned by the next action, so a program reads as a chain of calls. Actions
 * return the status agreed over the job: the same on every rank, the message
 * on rank 0. User functions return LOOM_OK or an error they recorded with
 * LOOM_ERROR; an error ends the action everywhere. They may run on any worker,
 * more than once for the same record (recomputation), so they must not have
 * side effects other than emitting. */

typedef struct loom_ds_engine loom_ds_engine_t;
typedef struct loom_ds loom_ds_t;

/* One record, borrowed for the duration of a call. */
typedef struct loom_ds_rec {
    const void *key;
    size_t klen;
    const void *val;
    size_t vlen;
} loom_ds_rec_t;

/* Where a user function emits its records. Opaque; valid during the call. */
typedef struct loom_ds_out loom_ds_out_t;
loom_status_t loom_ds_emit(loom_ds_out_t *out, const void *key, size_t klen, const void *val,
                           size_t vlen);
/* The context of the running action (for LOOM_ERROR in user functions). */
loom_ctx_t *loom_ds_out_ctx(const loom_ds_out_t *out);

/* Emit every word of text[0, len) as a key with the value `val` (the
 * word-count rule: a word is a maximal run of ASCII letters and digits,
 * lowercased). */
loom_status_t loom_ds_emit_words(loom_ds_out_t *out, const void *text, size_t len, const void *val,
                                 size_t vlen);

/* map and flat_map: emit any number of records per input record (map is the
 * same call; the name says that one record per input is meant). */
typedef loom_status_t (*loom_ds_map_fn)(const loom_ds_rec_t *in, loom_ds_out_t *out, void *user);
/* filter: keep the record when it returns non-zero. */
typedef int (*loom_ds_pred_fn)(const loom_ds_rec_t *in, void *user);
/* combine two values of one key into one, emitted with loom_ds_emit (the key
 * argument of loom_ds_emit is ignored). Must be associative and commutative:
 * it runs before the shuffle (map-side combining) and after it, in any order. */
typedef loom_status_t (*loom_ds_combine_fn)(const void *a, size_t alen, const void *b, size_t blen,
                                            loom_ds_out_t *out, void *user);

/* Built-in combiners over 8-byte values, run without a call per record. */
loom_status_t loom_ds_sum_u64(const void *a, size_t alen, const void *b, size_t blen,
                              loom_ds_out_t *out, void *user);
loom_status_t loom_ds_sum_f64(const void *a, size_t alen, const void *b, size_t blen,
                              loom_ds_out_t *out, void *user);
/* Element-wise sum of two vectors of doubles of the same length (k-means
 * sums, gradients); folded in place. Vectors of different lengths are an error. */
loom_status_t loom_ds_sum_f64v(const void *a, size_t alen, const void *b, size_t blen,
                               loom_ds_out_t *out, void *user);

/* "FILE:LINE" of the text record being processed (a text source's line,
 * passed through narrow steps), for messages about bad input; "a record"
 * otherwise. The line number is counted only when asked (an error path).
 * Valid until the next call. */
const char *loom_ds_where(loom_ds_out_t *out);

/* Read an 8-byte number (0 when len is not 8). */
uint64_t loom_ds_u64(const void *p, size_t len);
double loom_ds_f64(const void *p, size_t len);

/* ------------------------------------------------------------------ the engine */

typedef struct loom_ds_config {
    int partitions;             /* partitions of shuffles and sources (0: 2 per worker) */
    size_t split_size;          /* bytes of text per source partition (0: 32 MiB) */
    size_t memory;              /* budget per rank for shuffle buffers (0: 1 GiB) */
    int explain;                /* print each action's lineage and stages on rank 0 (stderr) */
    const char *dot;            /* write each action's plan as Graphviz to this file */
    const char *fault;          /* "drop:DATASET_ID@P" drops a kept partition once (testing) */
    const char *checkpoint_dir; /* where loom_ds_checkpoint writes (the `loom` command then
                                   turns SIGUSR1/SIGTERM/SIGINT into stop requests) */
    const char *restart;        /* where loom_ds_restore reads */
    const char *identity;       /* what the job computes ("ds-pagerank g.el damping=0.85"):
                                   recorded in checkpoints, checked on restore */
    const char *spill_dir;      /* base of the spill directory (NULL: $TMPDIR, /tmp) */
    const char *store;          /* the chunk store (loom/chunks.h) of text inputs spelled
                                   store:/PATH: a source partition per chunk */
} loom_ds_config_t;

/* Make an engine. Collective over the job communicator. Adds its counters to
 * the run summary when destroyed. */
loom_status_t loom_ds_engine_create(loom_ctx_t *ctx, const loom_ds_config_t *cfg,
                                    loom_ds_engine_t **e);
/* Free the engine and every dataset made with it. Collective. */
void loom_ds_engine_destroy(loom_ds_engine_t **e);
loom_ctx_t *loom_ds_engine_ctx(const loom_ds_engine_t *e);

/* ------------------------------------------------------------------ sources */

/* Lines of text files (files, directories, glob patterns as MapReduce reads
 * them: docs/FORMATS.md): a record is one line without its '\n', as the key.
 * The inputs are expanded and checked by the first action that needs them;
 * partitions are line-aligned byte ranges of about split_size. */
loom_ds_t *loom_ds_text(loom_ds_engine_t *e, const char *const *inputs, int ninputs);
/* Vectors of numbers from text files (inputs as loom_ds_text): one record per
 * line of blank-separated numbers (strtod syntax), value = the numbers as
 * doubles, key empty; blank lines and lines starting with '#' are skipped.
 * Every line must have as many numbers as the first one (*dim, the same on
 * every rank); a line that does not, or a token that is not a finite number,
 * fails the action that reads it with "FILE:LINE: cause". Collective (reads
 * the first line to learn the dimension). */
loom_ds_t *loom_ds_text_vectors(loom_ds_engine_t *e, const char *const *inputs, int ninputs,
                                int *dim);
/* The numbers 0 .. n-1 as 8-byte keys with empty values, in `parts`
 * contiguous ranges (0: the engine's default). */
loom_ds_t *loom_ds_range(loom_ds_engine_t *e, uint64_t n, int parts);
/* The edges of a graph (a file or generator spec, as `loom pagerank` reads
 * them): key = source vertex, value = destination vertex, both 8-byte
 * numbers, hash-partitioned by source (so that group_by_key on it moves
 * nothing). Read when made (collective over the job): a read error is
 * returned by the next action. With `undirected`, both directions of every edge. */
loom_ds_t *loom_ds_edges(loom_ds_engine_t *e, const char *graph, int undirected);
/* How the 8-byte values of loom_ds_h5 hold the elements. */
typedef enum loom_ds_num {
    LOOM_DS_INT64 = 0,  /* signed integers of any width, as int64_t */
    LOOM_DS_UINT64 = 1, /* unsigned integers of any width, as uint64_t */
    LOOM_DS_DOUBLE = 2, /* floats of any width, as double */
} loom_ds_num_t;
/* The elements of a 1-D numeric HDF5 dataset, `spec` = FILE:/DATASET (e.g. x.h5:/g/x):
 * key = the element's index, value = the element, both 8 bytes (*kind, may be NULL, says
 * how the value holds it), in `parts` contiguous index ranges (0: the engine's default),
 * each read by its owner with independent hyperslab reads when an action needs it (and
 * again for a partition lost with its worker). Collective: rank 0 checks the dataset when
 * made; a missing file or dataset, one that is not 1-D, or not of integers or floats
 * fails the next action with one message naming file and dataset. */
loom_ds_t *loom_ds_h5(loom_ds_engine_t *e, const char *spec, int parts, loom_ds_num_t *kind);
/* Rank 0's records (records[i] of n; other ranks' arguments are ignored),
 * spread over `parts` partitions in order. Collective. */
loom_ds_t *loom_ds_parallelize(loom_ds_engine_t *e, const loom_ds_rec_t *records, size_t n,
                               int parts);

/* ------------------------------------------------------------------ transformations
 * None runs anything; each returns a new dataset (or carries an error to the next action). */

loom_ds_t *loom_ds_map(loom_ds_t *d, loom_ds_map_fn fn, void *user);
loom_ds_t *loom_ds_flat_map(loom_ds_t *d, loom_ds_map_fn fn, void *user);
loom_ds_t *loom_ds_filter(loom_ds_t *d, loom_ds_pred_fn fn, void *user);
/* fn sees each record and emits values: the key stays, so the partitioning does. */
loom_ds_t *loom_ds_map_values(loom_ds_t *d, loom_ds_map_fn fn, void *user);
/* The partitions of a, then those of b. */
loom_ds_t *loom_ds_union(loom_ds_t *a, loom_ds_t *b);

/* Spark's keyBy: fn emits the new key (loom_ds_emit's value is ignored); the
 * value becomes the whole input record as pair(key, value) (loom_ds_pair). */
loom_ds_t *loom_ds_key_by(loom_ds_t *d, loom_ds_map_fn fn, void *user);

/* A partition's records, one after another (map_partitions, foreach_partition). */
typedef struct loom_ds_iter loom_ds_iter_t;
/* The next record into *rec (borrowed until the partition's function returns): 1, or 0 at
 * the end of the partition. */
int loom_ds_next(loom_ds_iter_t *it, loom_ds_rec_t *rec);
/* Called once per partition (its number, its records) on the worker that owns it; emits
 * any number of records with loom_ds_emit. */
typedef loom_status_t (*loom_ds_part_fn)(int partition, loom_ds_iter_t *in, loom_ds_out_t *out,
                                         void *user);
/* Spark's mapPartitions: fn sees a whole partition, for work set up once per partition
 * (a buffer, a model, a partial aggregate). The partition's records are held in memory
 * while fn runs (read in place when the input is a partition kept in memory). With
 * `keeps_keys` (fn emits only keys it was given, in the same partition) d's partitioning
 * is kept, so later joins on it do not shuffle. Narrow: pipelined in the stage. */
loom_ds_t *loom_ds_map_partitions(loom_ds_t *d, loom_ds_part_fn fn, int keeps_keys, void *user);
/* A sample of about fraction of the records (Bernoulli, without replacement),
 * the same records every time the partition is computed (a generator seeded
 * by seed and the partition). */
loom_ds_t *loom_ds_sample(loom_ds_t *d, double fraction, uint64_t seed);
/* Values of each key combined into one (map-side first), into `parts`
 * hash partitions (0: the engine's default, or d's own partitioning when d is
 * hash-partitioned already, in which case nothing moves). */
loom_ds_t *loom_ds_reduce_by_key(loom_ds_t *d, loom_ds_combine_fn fn, void *user, int parts);
/* Spark's aggregateByKey: each key's values folded into an accumulator that
 * starts as `zero` with seq(acc, value) (before the shuffle, per worker), the
 * accumulators then merged with comb(acc, acc). Both emit the new accumulator
 * with loom_ds_emit (key ignored). */
loom_ds_t *loom_ds_aggregate_by_key(loom_ds_t *d, const void *zero, size_t zlen,
                                    loom_ds_combine_fn seq, loom_ds_combine_fn comb, void *user,
                                    int parts);
/* One record per key whose value is the list of its values, each as
 * varint(length) bytes (read with loom_ds_values_next), in no set order. */
loom_ds_t *loom_ds_group_by_key(loom_ds_t *d, int parts);
/* Each distinct (key, value) record once. */
loom_ds_t *loom_ds_distinct(loom_ds_t *d, int parts);
/* Hash-partitioned by key into `parts` partitions; kept as the dataset's
 * partitioning, so later wide steps on the same key with the same count move
 * nothing. */
loom_ds_t *loom_ds_partition_by(loom_ds_t *d, int parts);
/* Inner join on the key: one record (k, pair(va, vb)) per matching pair of
 * values (read with loom_ds_pair). Co-partitioned inputs (hash, same count)
 * join where they lie; otherwise both are shuffled to `parts` partitions. */
loom_ds_t *loom_ds_join(loom_ds_t *a, loom_ds_t *b, int parts);
/* The same inner join with b broadcast: every worker receives all of b
 * (MPI_Allgatherv among the workers, at most 2 GiB) and a's partitions probe it
 * where they are, so a, the big side, does not move. */
loom_ds_t *loom_ds_join_broadcast(loom_ds_t *a, loom_ds_t *b);
/* One record per key of either input: value pair(list of a's values, list of
 * b's values), each list as group_by_key's (loom_ds_pair, then
 * loom_ds_values_next on each side). */
loom_ds_t *loom_ds_cogroup(loom_ds_t *a, loom_ds_t *b, int parts);
/* The records spread evenly over `parts` partitions (round robin from each
 * input partition), whatever their keys; no partitioning is kept. */
loom_ds_t *loom_ds_repartition(loom_ds_t *d, int parts);
/* Sorted by key (byte order, a shorter prefix first) over `parts` ranges cut
 * from a sample, so the partitions concatenate in order. */
loom_ds_t *loom_ds_sort_by_key(loom_ds_t *d, int parts);

/* Where persisted partitions are kept: in memory; in files of the worker's
 * spill directory (--spill-dir, else $TMPDIR or /tmp; removed when the engine
 * ends or the job dies of a signal), read back each time they are used; or in
 * memory while the rank's kept partitions fit the --memory budget, on disk past it. */
typedef enum loom_ds_storage {
    LOOM_DS_MEMORY = 0,
    LOOM_DS_DISK,
    LOOM_DS_MEMORY_AND_DISK
} loom_ds_storage_t;

/* Keep the partitions once computed (in memory), until unpersisted. */
loom_ds_t *loom_ds_persist(loom_ds_t *d);
loom_ds_t *loom_ds_persist_as(loom_ds_t *d, loom_ds_storage_t where);
void loom_ds_unpersist(loom_ds_t *d);

/* Next value of a group (group_by_key); 0 at the end. *cursor starts at the
 * record's value. */
int loom_ds_values_next(const unsigned char **cursor, const unsigned char *end, const void **v,
                        size_t *vlen);
/* Split a joined value into its two sides; 0 when it is not one. */
int loom_ds_pair(const void *val, size_t vlen, const void **a, size_t *alen, const void **b,
                 size_t *blen);

/* A short name for --explain ("links"); returns d. */
loom_ds_t *loom_ds_name(loom_ds_t *d, const char *name);
int loom_ds_partitions(const loom_ds_t *d);

/* ------------------------------------------------------------------ actions
 * Collective over the job communicator; every rank gets the same status. */

loom_status_t loom_ds_count(loom_ds_t *d, uint64_t *n);
/* Every record, in partition order, to rank 0 (other ranks get none):
 * `fn` is called once per record on rank 0. */
typedef loom_status_t (*loom_ds_each_fn)(const loom_ds_rec_t *rec, void *user);
loom_status_t loom_ds_collect(loom_ds_t *d, loom_ds_each_fn fn, void *user);
/* An action: fn once per partition, on the worker that owns it, one partition at a time
 * on each worker (side effects: writing a partition somewhere, feeding a service). A
 * failing fn fails the action everywhere. After a worker's death (ULFM) the action runs
 * again, so fn may see a partition more than once, as in Spark. */
typedef loom_status_t (*loom_ds_part_each_fn)(int partition, loom_ds_iter_t *in, void *user);
loom_status_t loom_ds_foreach_partition(loom_ds_t *d, loom_ds_part_each_fn fn, void *user);
/* Fold every value with `fn` (associative, commutative); the result goes to
 * every rank, in `out` (cap bytes; *len its length; LOOM_ERR_USAGE when it
 * does not fit). *found = 0 for an empty dataset. */
loom_status_t loom_ds_reduce(loom_ds_t *d, loom_ds_combine_fn fn, void *user, void *out, size_t cap,
                             size_t *len, int *found);
/* The first n records in partition order, delivered to `fn` on every rank
 * (the same records in the same order). For small results (k-means centres,
 * a first line): they travel through rank 0. */
loom_status_t loom_ds_take(loom_ds_t *d, uint64_t n, loom_ds_each_fn fn, void *user);
/* The n largest records (by key in byte order, then value), largest first,
 * delivered to `fn` on every rank. */
loom_status_t loom_ds_top(loom_ds_t *d, uint64_t n, loom_ds_each_fn fn, void *user);
/* reduce starting from `zero` (zlen bytes): the result is zero for an empty
 * dataset. */
loom_status_t loom_ds_fold(loom_ds_t *d, const void *zero, size_t zlen, loom_ds_combine_fn fn,
                           void *user, void *out, size_t cap, size_t *len);
/* Text part files in the directory `dir` (atomically: temporary name, rename,
 * _SUCCESS), one per partition, "key<TAB>value\n" per record ("key\n" when
 * the value is empty); key and value are written as bytes, so map them to text
 * first. `overwrite` may replace an earlier Loom output. */
loom_status_t loom_ds_save_text(loom_ds_t *d, const char *dir, int overwrite);
/* loom_ds_save_text, or for a `path` ending in .h5 or .hdf5 one HDF5 file (atomically, like
 * a directory) holding the same lines as two 1-D variable-length string datasets of equal
 * length, /keys and /values, in partition order (include/loom/output.h). A key holding a
 * TAB, newline or NUL byte, or a value holding a newline or NUL byte, cannot be such a
 * line and fails the action (LOOM_ERR_FORMAT, no output). */
loom_status_t loom_ds_save(loom_ds_t *d, const char *path, int overwrite);

/* ------------------------------------------------------------------ checkpoints
 *
 * A checkpoint is a directory `<checkpoint_dir>/<tag>.<step>` holding one file per
 * partition (the records as the data plane stores them), `meta` (tag, step,
 * partitions, the job's identity) and `_SUCCESS`, written atomically (temporary
 * name, rename); `<tag>.latest` then names the step, and the older checkpoint of
 * the tag is removed. A preempted batch job loses only the work since its last
 * checkpoint. */

/* An action: compute d, write it as state `tag` at `step`, and cut its
 * lineage: d then reads its kept partitions, and a lost one from the files,
 * so an iterative job's plan stops growing. Needs a checkpoint_dir (else
 * LOOM_ERR_USAGE). */
loom_status_t loom_ds_checkpoint(loom_ds_t *d, const char *tag, int64_t step);
/* With a restart directory: the newest complete checkpoint of `tag` as a
 * dataset (its partitions read from the files as needed) and, in *step, the
 * step it was written at. Without a restart directory: NULL and *step = -1.
 * Collective; a missing, torn or foreign checkpoint (another identity) gives
 * NULL too, with the error kept for the next action, as for any source. */
loom_ds_t *loom_ds_restore(loom_ds_engine_t *e, const char *tag, int64_t *step);
/* Collective: 1 when SIGUSR1, SIGTERM or SIGINT reached any rank of a job with
 * a checkpoint directory (the signals then only ask for a stop). The job then
 * checkpoints its state and returns loom_ds_interrupted. */
int loom_ds_stop_requested(loom_ds_engine_t *e);
/* LOOM_ERR_INTERRUPTED with "checkpointed at step N on signal S; resume with
 * --restart DIR" (the `loom` command exits 75). */
loom_status_t loom_ds_interrupted(loom_ds_engine_t *e, int64_t step);

/* ------------------------------------------------------------------ command-line options */
// clang-format off
#define LOOM_DS_OPTION_ROWS \
    {"partitions", LOOM_OPT_INT, "0", "partitions of sources and shuffles (0 = 2 per worker)", \
     NULL, 1, 0, 1e6}, \
    {"split-size", LOOM_OPT_SIZE, "32M", "bytes of text per source partition", NULL, 1, 4096, \
     1.8e19}, \
    {"memory", LOOM_OPT_SIZE, "1G", "budget per rank: a shuffle routes in rounds of a quarter " \
     "of it and spills received records past another quarter; kept partitions past it (shuffle " \
     "output, memory-and-disk datasets) go to disk", NULL, \
     1, 65536, 1.8e19}, \
    {"explain", LOOM_OPT_FLAG, NULL, "print each action's lineage and stages (stderr)", NULL, 0, \
     0, 0}, \
    {"dot", LOOM_OPT_STRING, NULL, "write each action's plan as Graphviz to FILE", NULL, 0, 0, 0}, \
    {"inject-fault", LOOM_OPT_STRING, NULL, "drop:DATASET@PARTITION (lose a kept partition " \
     "once) or kill:RANK@stage:N (a real death; testing)", NULL, 0, 0, 0}, \
    {"checkpoint-dir", LOOM_OPT_STRING, NULL, "write checkpoints here; SIGUSR1/SIGTERM then " \
     "checkpoint and exit 75", NULL, 0, 0, 0}, \
    {"restart", LOOM_OPT_STRING, NULL, "resume from the newest checkpoint in DIR", NULL, 0, 0, 0}, \
    {"spill-dir", LOOM_OPT_STRING, NULL, "where partitions kept on disk go (default $TMPDIR, " \
     "/tmp)", NULL, 0, 0, 0}, \
    {"store", LOOM_OPT_STRING, NULL, "the chunk store of store:/PATH inputs", NULL, 0, 0, 0}
// clang-format on

/* An engine configured from options parsed with LOOM_DS_OPTION_ROWS, with the
 * job's identity for checkpoints (may be NULL). Collective. */
loom_status_t loom_ds_engine_from_opts(loom_ctx_t *ctx, const loom_opts_t *opts,
                                       const char *identity, loom_ds_engine_t **e);

#ifdef __cplusplus
}
#endif
#endif
