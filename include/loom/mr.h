/* Loom MapReduce: jobs over text records with map, combine, shuffle and reduce on MPI ranks. */
#ifndef LOOM_MR_H
#define LOOM_MR_H

#include <stddef.h>
#include <stdint.h>

#include "loom/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ records and callbacks
 *
 * Input. A job reads files, directories (every regular file below it, recursively, in
 * byte order of the path; names starting with '.' or '_' are skipped, so an earlier
 * job's output directory can be read back) and glob patterns. Symbolic links inside a
 * directory are followed; one that points nowhere is skipped with a warning on rank 0
 * (as find(1) does), one that leads back to a directory above it, or never reaches a
 * file, is refused with LOOM_ERR_IO naming the link. Files are read as bytes, no
 * encoding assumed; a record is a line without its '\n' (a '\r' before it stays in the
 * record); a last line without '\n' is a record; an empty file has no records. A file
 * with a NUL byte in its first 64 KiB is binary and refused with LOOM_ERR_FORMAT naming
 * it. A line longer than the job's max_record bytes is refused with LOOM_ERR_FORMAT
 * naming file and line. Refusals happen before any output is created.
 *
 * Element inputs. `FILE:/DATASET` (e.g. data.h5:/g/x; any input holding ":/" that is not
 * itself an existing path) is a 1-D numeric HDF5 dataset (any integer or float type);
 * `gen:N` generates N records (N at most 2^60, else LOOM_ERR_USAGE). Both are split into
 * map tasks of element ranges (split_size / 8 elements each; HDF5 hyperslabs read
 * independently by the worker that runs the task) and hand map one record per element:
 * data is the element as decimal text (signed or unsigned integers in full, floats with
 * "%.17g", so the bits round-trip; gen:N gives the index 0 ... N-1), offset is the
 * element index and line is index + 1 with job->line_numbers. Such records go through
 * any text map function unchanged. A missing file or dataset, a dataset that is not 1-D
 * or not integer/float is refused with one error naming file and dataset, and so is one
 * whose map tasks would not fit the master's memory (LOOM_ERR_NOMEM).
 *
 * Store inputs. `store:/PATH` is a file of the chunk store at job->store (--store DIR or
 * LOOM_STORE; include/loom/chunks.h): one map task per chunk, holding the lines that start
 * in it, and the master hands a task to a worker that keeps a replica of its chunk when one
 * asks; another worker takes it only when the store root is shared (every worker sees every
 * holder's directory). The summary counts local and remote reads. line_numbers is not
 * available for store inputs (LOOM_ERR_USAGE), and range partitioning (sampling on the
 * master) needs a shared root.
 *
 * Keys and values are byte strings with size_t lengths. Within one reduce
 * partition keys are grouped and presented in byte order (memcmp, a shorter
 * prefix first), which is the order of `LC_ALL=C sort`. */

/* One input record, borrowed for the duration of the map call. */
typedef struct loom_mr_record {
    const char *data; /* the line, not NUL-terminated */
    size_t len;
    uint32_t file_index; /* index into the job's expanded inputs (loom_mr_input_path) */
    uint64_t line;       /* 1-based line number in the file; 0 unless job->line_numbers */
    uint64_t offset;     /* byte offset of the line in the file */
} loom_mr_record_t;

/* The handle through which callbacks emit. Opaque; valid during the call. */
typedef struct loom_mr_emit loom_mr_emit_t;
/* Iterator over the values of one key in reduce. Opaque; valid during the call. */
typedef struct loom_mr_values loom_mr_values_t;

/* map: called once per record, on any worker, possibly more than once for the
 * same record when a task is re-executed (so it must have no side effects other
 * than emitting). Emits any number of key/value pairs with loom_mr_emit. */
typedef loom_status_t (*loom_mr_map_fn)(loom_ctx_t *ctx, const loom_mr_record_t *rec,
                                        loom_mr_emit_t *out, void *user);

/* combine: fold two values of the same key into one, set with
 * loom_mr_set_value exactly once. Must be associative and commutative: the
 * engine applies it in any grouping, on the map side and while merging spills. */
typedef loom_status_t (*loom_mr_combine_fn)(loom_ctx_t *ctx, const void *key, size_t klen,
                                            const void *a, size_t alen, const void *b, size_t blen,
                                            loom_mr_emit_t *out, void *user);

/* reduce: called once per distinct key of a partition, in key order. Pulls
 * values with loom_mr_values_next (it may stop early) and writes output with
 * loom_mr_emit / loom_mr_write. Values are streamed from memory or spill files,
 * never all held at once, so a key with most of the values is fine. */
typedef loom_status_t (*loom_mr_reduce_fn)(loom_ctx_t *ctx, const void *key, size_t klen,
                                           loom_mr_values_t *values, loom_mr_emit_t *out,
                                           void *user);

/* partition: reduce partition in [0, nparts) of a key. Must be a pure function. */
typedef int (*loom_mr_partition_fn)(const void *key, size_t klen, int nparts, void *user);

/* How reduce output is written by loom_mr_emit. */
typedef enum loom_mr_output_mode {
    LOOM_MR_OUT_KV = 0, /* "key<TAB>value\n" */
    LOOM_MR_OUT_KEY,    /* "key\n" (the value is ignored) */
    LOOM_MR_OUT_VALUE,  /* "value\n" (the key is ignored) */
} loom_mr_output_mode_t;

/* ------------------------------------------------------------------ the job */

typedef struct loom_mr_job {
    const char *name;          /* for progress and the summary ("wordcount") */
    const char *const *inputs; /* files, directories, glob patterns */
    int ninputs;
    const char *output; /* output directory: part-00000 ... and _SUCCESS; or a name
                           ending in .h5/.hdf5: one HDF5 file (see loom_mr_run) */

    loom_mr_map_fn map;             /* required */
    loom_mr_combine_fn combine;     /* optional */
    loom_mr_reduce_fn reduce;       /* optional: NULL emits every value under its key */
    loom_mr_partition_fn partition; /* optional: NULL is a 64-bit hash of the key */
    void *user;                     /* passed to every callback */

    int reducers;        /* R reduce partitions; 0 = number of workers */
    int range_partition; /* sample keys and cut R ordered ranges, so that the part
                            files concatenate in key order (ignores `partition`) */
    int sort_values;     /* present each key's values in byte order too (no combiner) */
    int line_numbers;    /* fill loom_mr_record_t.line (costs one extra read pass) */
    int map_thread_safe; /* map may run on several OpenMP threads of a rank at once (it keeps
                            no mutable state in `user`); each thread maps a piece of the task
                            into its own buffers */
    int map_blocks;      /* map takes blocks of whole lines of text input, not single lines:
                            record.data holds one or more lines separated by '\n', record.line
                            is the first one's number. For maps whose output does not depend
                            on where lines end (word count); saves a call per line. Line
                            counts and --max-record are still checked per line. */
    loom_mr_output_mode_t output_mode;

    size_t split_size;     /* bytes per map task; 0 = min(32 MiB, memory / 4) */
    size_t memory;         /* budget per rank for buffers, at least 64 KiB; 0 = 1 GiB */
    size_t max_record;     /* longest line accepted; 0 = 64 MiB */
    const char *spill_dir; /* NULL = $TMPDIR or /tmp */
    const char *fault;     /* --inject-fault spec or NULL (see LOOM_MR_OPTION_ROWS) */
    int overwrite;         /* an existing output that an earlier Loom job wrote (it holds
                              _SUCCESS) may be replaced; without it the job refuses to start */
    const char *store;     /* the chunk store (loom/chunks.h) of inputs spelled store:/PATH */
} loom_mr_job_t;

/* Global counts of a finished job (the same on every rank). */
typedef struct loom_mr_result {
    int64_t map_tasks, input_files;
    int64_t input_bytes, input_records;
    int64_t map_pairs;      /* pairs emitted by map (before combining) */
    int64_t shuffle_bytes;  /* bytes moved by the shuffle */
    int64_t output_records; /* lines written */
    int64_t spill_runs, spill_bytes;
    int64_t reexecuted_tasks, lost_workers, backups_run, backups_won;
    int64_t store_local_reads, store_remote_reads; /* map tasks of store:/PATH inputs */
    /* With a combiner the shuffle knows the nodes (see --node-ranks and
     * --two-level): how many, 1 or 2 levels, and the bytes and nonempty
     * messages that crossed between nodes (0 and 0 without a combiner). */
    int64_t shuffle_nodes, shuffle_levels;
    int64_t shuffle_offnode_bytes, shuffle_offnode_messages;
    int64_t shuffle_rounds; /* rounds of the shuffle's exchange (the same on every worker) */
} loom_mr_result_t;

/* Run a job. Collective over loom_comm(ctx). Rank 0 expands the inputs, checks
 * them and plans the map tasks, then hands tasks out; workers map, combine,
 * shuffle with MPI_Alltoallv over the live workers and reduce into the part
 * files of a temporary directory that is renamed to job->output only when every
 * rank succeeded (with `_SUCCESS` written last). On any failure no output
 * directory is left and every rank returns the same status, with the message on
 * rank 0. Adds the job's counts and phase timers ("plan", "map", "shuffle",
 * "reduce") to the run summary. `result` may be NULL.
 * With an output named *.h5 or *.hdf5 the part files go to a scratch directory
 * beside it and rank 0 then writes one HDF5 file (atomically, like a
 * directory) holding two 1-D variable-length string datasets of equal length,
 * /keys and /values: every output line split at its first TAB (LOOM_MR_OUT_KEY:
 * values are ""; LOOM_MR_OUT_VALUE: keys are ""), in partition order and key
 * order within a partition, i.e. the order of the part files concatenated.
 * Strings end at a NUL byte. h5py reads them as bytes objects. */
loom_status_t loom_mr_run(loom_ctx_t *ctx, const loom_mr_job_t *job, loom_mr_result_t *result);

/* ------------------------------------------------------------------ emitting */

/* Emit a pair. In map the pair is copied into the engine; in reduce it is
 * written to the part file in the job's output mode. Not thread-safe. */
loom_status_t loom_mr_emit(loom_mr_emit_t *out, const void *key, size_t klen, const void *val,
                           size_t vlen);
/* Integer and double values. In map (and combine) the value is 8 bytes in the
 * host's byte order, read back with loom_mr_u64 / loom_mr_double; in reduce it
 * is written as text (decimal, or %.17g). */
loom_status_t loom_mr_emit_u64(loom_mr_emit_t *out, const void *key, size_t klen, uint64_t v);
loom_status_t loom_mr_emit_double(loom_mr_emit_t *out, const void *key, size_t klen, double v);
/* Combine only: the folded value. */
loom_status_t loom_mr_set_value(loom_mr_emit_t *out, const void *val, size_t vlen);
/* Reduce only: append raw bytes to the part file (for outputs that are not one
 * pair per line, e.g. a long list streamed value by value). */
loom_status_t loom_mr_write(loom_mr_emit_t *out, const void *data, size_t len);
/* The path of input file `index` as expanded by the master (every rank knows
 * them). Borrowed; NULL when out of range. */
const char *loom_mr_input_path(const loom_mr_emit_t *out, uint32_t index);

/* Decode an 8-byte value (0 when len != 8). */
uint64_t loom_mr_u64(const void *val, size_t len);
double loom_mr_double(const void *val, size_t len);

/* Next value of the current key: 1 and (*val, *len) borrowed until the next
 * call, or 0 when there are no more. */
int loom_mr_values_next(loom_mr_values_t *it, const void **val, size_t *len);

/* Ready-made combiners: sums of 8-byte unsigned integers and of doubles. */
loom_status_t loom_mr_combine_sum_u64(loom_ctx_t *ctx, const void *key, size_t klen, const void *a,
                                      size_t alen, const void *b, size_t blen, loom_mr_emit_t *out,
                                      void *user);
loom_status_t loom_mr_combine_sum_double(loom_ctx_t *ctx, const void *key, size_t klen,
                                         const void *a, size_t alen, const void *b, size_t blen,
                                         loom_mr_emit_t *out, void *user);

/* ------------------------------------------------------------------ text helpers */

/* Wordcount's tokenisation rule: a word is a maximal run of ASCII letters and
 * digits [A-Za-z0-9], lowercased; every other byte (punctuation, space, bytes
 * >= 0x80 of UTF-8 text) separates words. Finds the next word at or after *pos
 * in s[0, len): returns its length and copies it lowercased to buf (which must
 * hold `len` bytes), advancing *pos past it; returns 0 when no word is left.
 * Thread-safe. */
size_t loom_mr_next_word(const char *s, size_t len, size_t *pos, char *buf);

/* Emit every word of s[0, len) (the rule above) as a key with the same value:
 * what a word-counting map does, fused with the engine's hashing so a word
 * costs one pass. Equivalent to loom_mr_next_word + loom_mr_emit in a loop.
 * Not thread-safe (like loom_mr_emit). */
loom_status_t loom_mr_emit_words(loom_mr_emit_t *out, const char *s, size_t len, const void *val,
                                 size_t vlen);

/* ------------------------------------------------------------------ command-line options */

/* The options every MapReduce command accepts, to be listed in a job's table
 * with LOOM_MR_OPTION_ROWS:
 *   --out DIR            output directory (required), or FILE.h5 for HDF5
 *   --overwrite          replace an earlier Loom output at --out
 *   --reducers R         reduce partitions (default: number of workers)
 *   --split-size SIZE    bytes per map task (K/M/G suffixes)
 *   --memory SIZE        buffer budget per rank, at least 64K (less, 0 included,
 *                        is a usage error); past it, sorted runs spill
 *   --spill-dir DIR      where spills go (default $TMPDIR or /tmp)
 *   --max-record SIZE    longest line accepted (default 64M)
 *   --inject-fault SPEC  kill:RANK@PHASE:N with PHASE map, shuffle or reduce (a
 *                        real death; see include/loom/runtime.h), or
 *                        slow:RANK:SECONDS (backup tasks near the end) */
// clang-format off
#define LOOM_MR_OPTION_ROWS \
    {"out", LOOM_OPT_STRING, NULL, "output directory (part files, _SUCCESS) or FILE.h5", NULL, \
     0, 0, 0}, \
    {"overwrite", LOOM_OPT_FLAG, NULL, "replace an earlier Loom output at --out", NULL, 0, 0, 0}, \
    {"reducers", LOOM_OPT_INT, "0", "reduce partitions (0 = number of workers)", NULL, 1, 0, 1e6}, \
    {"split-size", LOOM_OPT_SIZE, "0", "bytes per map task (0 = min(32M, memory/4))", NULL, 0, \
     0, 0}, \
    {"memory", LOOM_OPT_SIZE, "1G", "buffer budget per rank (at least 64K); sorted runs spill " \
     "past it", NULL, 1, 65536, 1.8e19}, \
    {"spill-dir", LOOM_OPT_STRING, NULL, "directory for spill files (default $TMPDIR, /tmp)", \
     NULL, 0, 0, 0}, \
    {"max-record", LOOM_OPT_SIZE, "64M", "longest input line accepted", NULL, 0, 0, 0}, \
    {"store", LOOM_OPT_STRING, NULL, "the chunk store of store:/PATH inputs", NULL, 0, 0, 0}, \
    {"inject-fault", LOOM_OPT_STRING, NULL, \
     "kill:RANK@map|shuffle|reduce:N (a real death) or slow:RANK:SECONDS (testing)", NULL, 0, \
     0, 0}
// clang-format on

/* Fill the generic fields of `job` (output, reducers, split_size, memory,
 * max_record, spill_dir, fault) from options parsed with LOOM_MR_OPTION_ROWS,
 * and the inputs from the positional arguments from index `first_input` on.
 * `job->inputs` points into `opts` (keep opts alive) or into a small array the
 * caller frees with free((void *)job->inputs). Fails with LOOM_ERR_USAGE when
 * --out or the inputs are missing. Not collective. */
loom_status_t loom_mr_job_from_opts(loom_ctx_t *ctx, const loom_opts_t *opts, int first_input,
                                    loom_mr_job_t *job);

/* Print the job's result counts on stdout (rank 0 only, not with --json) and
 * add them to the summary. Not collective. */
void loom_mr_report(loom_ctx_t *ctx, const loom_mr_job_t *job, const loom_mr_result_t *res);

/* What a `loom` command does with a job: loom_mr_job_from_opts (inputs from
 * positional argument `first_input` on), loom_mr_run, loom_mr_report, and
 * freeing the input list. `job` carries the job's own fields (map, reduce,
 * modes); its generic fields are overwritten. Collective; agrees on failure. */
loom_status_t loom_mr_run_command(loom_ctx_t *ctx, const loom_opts_t *opts, int first_input,
                                  loom_mr_job_t *job);

#ifdef __cplusplus
}
#endif
#endif
