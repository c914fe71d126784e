/* Loom's chunk store (the Google File System's design on worker ranks): files split into
 * fixed-size chunks that the workers hold on their disks under a store root, replicated and
 * checksummed (a CRC32C per 64 KiB block), with the master keeping the namespace as an
 * operation log. The data outlives the job; a later job with holders missing or replicas
 * damaged repairs the store from the replicas left. Layout and promises: docs/CHUNKS.md. */
#ifndef LOOM_CHUNKS_H
#define LOOM_CHUNKS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "loom/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct loom_chunks loom_chunks_t;

#define LOOM_CHUNKS_BLOCK 65536u             /* bytes per CRC32C block */
#define LOOM_CHUNKS_DEFAULT_SIZE (64u << 20) /* default chunk size */
#define LOOM_CHUNKS_DEFAULT_REPLICATION 3

typedef struct loom_chunks_opts {
    size_t chunk_size;         /* of files created through this handle (0: 64 MiB); a multiple of
                                  LOOM_CHUNKS_BLOCK */
    int replication;           /* replicas of files created through this handle (0: 3), capped by
                                  the holders present */
    uint64_t holder_capacity;  /* bytes a holder may keep in the store (0: the disk's free space) */
    int heal;                  /* repair the store when it is opened (loom_chunks_heal) */
    uint64_t checkpoint_bytes; /* fold the operation log into a checkpoint at close once it
                                  holds more than this (0: 4 MiB) */
    const char *fault;         /* --inject-fault spec (phase "transfer": pieces moved) or NULL */
} loom_chunks_opts_t;

/* Open the store at `root` (node-local or shared). A missing or empty directory becomes a
 * store. The holders are the workers (ranks 1..P-1, rank 0 alone at one rank), named
 * "<host>-<slot>" with slot the rank at start (1 at one rank), each keeping its replicas in
 * <root>/holders/<name>. The master takes the store's lock (one job at a time), replays the
 * checkpoint and the operation log (a torn last record is reported and dropped) and learns
 * from every holder what it keeps. With opts->heal the store is then repaired. Collective over
 * the job. Errors: LOOM_ERR_USAGE (not a store, a bad option, the store in use by another
 * job), LOOM_ERR_IO, LOOM_ERR_FORMAT (a damaged log or checkpoint: names the file and offset),
 * LOOM_ERR_MPI, LOOM_ERR_LOST. On failure *fs is NULL. */
loom_status_t loom_chunks_open(loom_ctx_t *ctx, const char *root, const loom_chunks_opts_t *opts,
                               loom_chunks_t **fs);
/* Fold a long operation log into a new checkpoint, release the lock and free the handle.
 * Accepts NULL and *fs == NULL; sets *fs to NULL. Collective. */
loom_status_t loom_chunks_close(loom_chunks_t **fs);

/* Paths in the store are absolute ("/data/part-1"): components non-empty, not "." or "..",
 * without bytes below 0x20, at most 255 bytes each and 1024 in all; anything else fails with
 * LOOM_ERR_USAGE naming the path. Every operation below is collective over the job, agrees on
 * its status, and changes no metadata when it fails. */

/* Copy the local file `local` (readable by every worker at that path) into the store as
 * `path`, or as `path`/<basename> when `path` is a directory. Parents are created. Each chunk
 * is streamed in pieces from its first holder along its chain of replicas; the file exists
 * once every replica is written and the master has logged it. LOOM_ERR_USAGE when the target
 * exists, LOOM_ERR_IO when `local` cannot be read or the holders have no room. */
loom_status_t loom_chunks_put(loom_chunks_t *fs, const char *local, const char *path);
/* Copy `path` out to the local file `local` (written atomically by the holders that read the
 * chunks; `overwrite` allows replacing a regular file). A replica whose data fails its CRC32C
 * is reported, the chunk is read from another replica, and the bad one replaced. */
loom_status_t loom_chunks_get(loom_chunks_t *fs, const char *path, const char *local,
                              int overwrite);
/* Write the bytes of `path` to `out` on rank 0, in order (checked as get does). */
loom_status_t loom_chunks_cat(loom_chunks_t *fs, const char *path, FILE *out);

/* Record append: every rank passes its own `n` records, record i being lens[i] bytes of
 * `data` (concatenated). Each record lands whole in one chunk at an offset the store chooses,
 * also when every rank appends at once; offsets[i] (may be NULL) receives record i's offset in
 * the file. The file is created when missing. LOOM_ERR_USAGE for a record longer than a
 * quarter of the chunk size. */
loom_status_t loom_chunks_append(loom_chunks_t *fs, const char *path, const void *data,
                                 const size_t *lens, size_t n, uint64_t *offsets);

/* Record append of the lines of the local text file `local` (each with its newline; a last
 * line without one gets one): the file is split among the workers at line boundaries and
 * every worker appends its lines at once. *records and *bytes (may be NULL) receive the
 * totals on every rank. Errors as loom_chunks_append, and LOOM_ERR_IO for `local`. */
loom_status_t loom_chunks_append_lines(loom_chunks_t *fs, const char *path, const char *local,
                                       uint64_t *records, uint64_t *bytes);

loom_status_t loom_chunks_mkdir(loom_chunks_t *fs, const char *path); /* with parents */
/* Remove a file or an empty directory (any directory when `recursive`); the replicas go too. */
loom_status_t loom_chunks_remove(loom_chunks_t *fs, const char *path, int recursive);
/* Rename a file or directory; `dst` must not exist and its parent must be a directory. */
loom_status_t loom_chunks_rename(loom_chunks_t *fs, const char *src, const char *dst);

/* What a path is, the same on every rank. */
typedef struct loom_chunks_info {
    int is_dir;
    uint64_t size, chunk_size, nchunks;
    int replication;
} loom_chunks_info_t;
/* LOOM_ERR_USAGE when `path` does not exist. */
loom_status_t loom_chunks_stat(loom_chunks_t *fs, const char *path, loom_chunks_info_t *info);

/* Rank 0 prints, on `out`: ls (a directory's children, or a file itself, one per line
 * "d|f SIZE PATH"); describe (a file's chunks with their versions, lengths and the holders
 * present that keep a good copy). */
loom_status_t loom_chunks_ls(loom_chunks_t *fs, const char *path, FILE *out);
loom_status_t loom_chunks_describe(loom_chunks_t *fs, const char *path, FILE *out);

/* Check every replica (each holder reads and verifies its own) against the metadata and print
 * one line per problem on rank 0's `out`: lost, under-replicated, corrupt, truncated, stale and
 * orphaned replicas, then a summary line. *problems (every rank) is their number. Changes
 * nothing. */
loom_status_t loom_chunks_fsck(loom_chunks_t *fs, FILE *out, int64_t *problems);
/* Repair: copy under-replicated chunks from a good replica to other holders, up to
 * min(replication, holders present), and delete stale, damaged and orphaned replicas. */
loom_status_t loom_chunks_heal(loom_chunks_t *fs);
/* Heal, then move replicas from the fullest holders to the emptiest until their bytes are
 * within one chunk of each other. */
loom_status_t loom_chunks_rebalance(loom_chunks_t *fs);

/* ------------------------------------------------------------------ store files as engine input
 *
 * Engines read a store file as lines in splits, one per chunk: split i holds the lines that
 * start in chunk i, and a line that runs into the next chunk is finished with bytes the
 * holders sent to every rank when the file was opened. A split is read by a worker that
 * holds its chunk (from its own disk), or, when every worker sees every holder's directory
 * (a shared store root), by any worker. */
typedef struct loom_chunks_lines loom_chunks_lines_t;

/* Collective over the job. LOOM_ERR_USAGE when `path` is not a file of the store,
 * LOOM_ERR_FORMAT for a line longer than a chunk (or than max_record; 0: 64 MiB),
 * LOOM_ERR_IO for a chunk without a good replica on the holders present. */
loom_status_t loom_chunks_lines_open(loom_chunks_t *fs, const char *path, size_t max_record,
                                     loom_chunks_lines_t **lf);
void loom_chunks_lines_close(loom_chunks_lines_t **lf);
/* Splits, and the file's size. Local. */
uint64_t loom_chunks_lines_count(const loom_chunks_lines_t *lf);
uint64_t loom_chunks_lines_size(const loom_chunks_lines_t *lf);
/* Split i's bytes in the file: [*off, *off + *len), whole lines. */
void loom_chunks_lines_range(const loom_chunks_lines_t *lf, uint64_t i, uint64_t *off,
                             uint64_t *len);
/* The split whose range holds file offset `off`. */
uint64_t loom_chunks_lines_find(const loom_chunks_lines_t *lf, uint64_t off);
/* Whether the rank that started as `start_rank` holds split i's chunk. */
int loom_chunks_lines_local(const loom_chunks_lines_t *lf, uint64_t i, int start_rank);
/* Whether any worker can read any split (a shared store root). */
int loom_chunks_lines_remote_ok(const loom_chunks_lines_t *lf);
/* Read split i into buf (its length in bytes), checking every block: from this rank's
 * replica when it holds one (*local = 1), else from another holder's directory when the
 * root is shared; a replica that fails is reported and another one read. Not collective;
 * LOOM_ERR_IO when no replica can be read. */
loom_status_t loom_chunks_lines_read(loom_chunks_t *fs, const loom_chunks_lines_t *lf, uint64_t i,
                                     char *buf, int *local);

#ifdef __cplusplus
}
#endif
#endif
