/* The chunk store's shared layout: the master's metadata, replicas as holders report them,
 * transfer plans, and the helpers the store's files share. */
#ifndef LOOM_CHUNKS_INTERNAL_H
#define LOOM_CHUNKS_INTERNAL_H

#include <stdint.h>

#include "dataplane/dataplane.h"
#include "kernels/crc32c.h"
#include "loom/chunks.h"

#define CH_MAX_REPL 16
#define CH_NAME_MAX 96
#define CH_PATH_MAX 1024
#define CH_PIECE (1u << 20) /* bytes per piece of a transfer (a multiple of the block) */
#define CH_CRC_MAGIC "LOOMCRC1"
#define CH_CRC_HEADER 32 /* magic, version, length, block size, CRC of the header and table */

/* ------------------------------------------------------------------ metadata (master) */

typedef struct ch_chunk {
    uint64_t id, version, len;
} ch_chunk_t;

/* A file or directory of the namespace. */
typedef struct ch_entry {
    char *path;
    int is_dir, repl;
    uint64_t chunk_size, size;
    double mtime;
    ch_chunk_t *chunks;
    uint64_t nchunks;
} ch_entry_t;

typedef struct ch_meta {
    ch_entry_t *e; /* sorted by path (strcmp) */
    size_t n, cap;
    uint64_t next_id;  /* chunk ids below it were handed out (never reused) */
    uint64_t seq;      /* last record applied */
    uint64_t ckpt_seq; /* last record folded into the checkpoint */
    char *dir;         /* <root>/master */
    int log_fd, lock_fd;
    uint64_t log_bytes, log_records;
} ch_meta_t;

/* Replay the checkpoint and the log of `root`/master (creating them when new) and take the
 * store's lock. Local to the master. */
loom_status_t ch_meta_open(loom_ctx_t *ctx, const char *root, ch_meta_t *m);
/* Fold the log into a new checkpoint when it holds more than `min_bytes`. */
loom_status_t ch_meta_checkpoint(loom_ctx_t *ctx, ch_meta_t *m, uint64_t min_bytes);
void ch_meta_close(ch_meta_t *m);

/* Lookups: NULL when absent ("/" is a directory that is never stored). */
ch_entry_t *ch_meta_find(ch_meta_t *m, const char *path);
/* Whether `path` is "/" or a directory in the namespace. */
int ch_meta_is_dir(ch_meta_t *m, const char *path);
/* The entries strictly below directory `dir` ("/" for all): [*first, *last). */
void ch_meta_below(ch_meta_t *m, const char *dir, size_t *first, size_t *last);

/* Logged changes: each writes one record to the log (fdatasync) and then applies it. */
loom_status_t ch_meta_mkdirs(loom_ctx_t *ctx, ch_meta_t *m, const char *path);
loom_status_t ch_meta_put_file(loom_ctx_t *ctx, ch_meta_t *m, const ch_entry_t *f);
loom_status_t ch_meta_remove(loom_ctx_t *ctx, ch_meta_t *m, const char *path);
loom_status_t ch_meta_rename(loom_ctx_t *ctx, ch_meta_t *m, const char *src, const char *dst);
/* `n` new chunk ids, distinct from each other and from every file's chunks. */
loom_status_t ch_meta_new_ids(loom_ctx_t *ctx, ch_meta_t *m, uint64_t n, uint64_t *ids);

/* Check a store path (absolute, sane components); LOOM_ERR_USAGE naming it. */
loom_status_t ch_path_check(loom_ctx_t *ctx, const char *path);
/* The parent directory of `path` into buf ("/" for a top-level name). */
void ch_path_parent(const char *path, char *buf, size_t len);

/* ------------------------------------------------------------------ replicas (holders) */

enum {
    CH_REP_OK = 0,
    CH_REP_NOHEADER, /* no readable CRC file, or one that fails its own check */
    CH_REP_SHORT,    /* the data file is shorter than the CRC file says */
    CH_REP_CORRUPT,  /* a block fails its CRC32C (found by reading) */
};

/* A replica as its holder reports it. */
typedef struct ch_rep {
    uint64_t id, version, len; /* from the CRC file */
    uint64_t data_bytes;       /* the data file's size */
    int32_t holder;            /* worker index */
    int32_t state;
    uint64_t bad_block;
} ch_rep_t;

/* What a holder reports besides its replicas. */
typedef struct ch_holder {
    char name[CH_NAME_MAX];
    uint64_t used, free;
} ch_holder_t;

/* A replica's CRC file, loaded. */
typedef struct ch_crcs {
    uint64_t version, len, nblocks;
    uint32_t *crc;
} ch_crcs_t;

/* ------------------------------------------------------------------ the handle */

struct loom_chunks {
    loom_ctx_t *ctx;
    char *root;
    char *hdir;  /* this worker's holder directory (NULL on a pure master) */
    uint64_t id; /* the store's id (LOOM_STORE), recorded in every holder directory */
    loom_chunks_opts_t o;
    loom_fault_t fault;
    int64_t transfer_pieces;
    int nholders;         /* the workers */
    ch_holder_t *holders; /* master: [worker index] */
    ch_rep_t *reps;       /* master: every replica reported, sorted by (id, holder) */
    size_t nreps;
    ch_meta_t meta; /* master */
    int committed;  /* master: the running operation's record is in the log */
    /* counts for the summary */
    int64_t healed_chunks, healed_bytes, removed_replicas, corrupt_found;
};

/* Paths of replica files: <hdir>/<16 hex id><ext>. */
void ch_rep_path(const loom_chunks_t *fs, uint64_t id, const char *ext, char *buf, size_t len);
/* List this holder's replicas (removing leftovers of interrupted writes); with `verify`,
 * read every replica and check its blocks. Local. */
loom_status_t ch_scan(loom_chunks_t *fs, int verify, ch_rep_t **reps, size_t *n, uint64_t *used);
loom_status_t ch_crcs_load(loom_chunks_t *fs, uint64_t id, ch_crcs_t *c, int *ok);
void ch_crcs_free(ch_crcs_t *c);
/* Read [off, off + n) of replica `id` (off a multiple of the block) into buf, which must hold n
 * rounded up to whole blocks; every block read is checked against `c`. *bad = 1 (no error)
 * when a block fails or the data is short, naming it in `why`. */
loom_status_t ch_read_checked(loom_chunks_t *fs, int fd, const ch_crcs_t *c, uint64_t id,
                              uint64_t off, uint64_t n, unsigned char *buf, int *bad, char *why,
                              size_t whylen);
int ch_open_data(loom_chunks_t *fs, uint64_t id);
/* The same for a replica in another holder's directory `dir` (a shared store root). */
loom_status_t ch_crcs_load_in(loom_chunks_t *fs, const char *dir, uint64_t id, ch_crcs_t *c,
                              int *ok);
int ch_open_data_in(const char *dir, uint64_t id);
/* Writing a replica: a fresh one goes to <id>.chunk.tmp and replaces any old copy at commit; an
 * existing one is written in place past its committed length. */
typedef struct ch_writer {
    uint64_t id;
    int fd, fresh;
    uint64_t dirty; /* lowest offset written */
    /* CRCs computed as the bytes arrive, while they arrive in order from offset 0 (a fresh
     * replica streamed from one source): the commit then need not read the data back */
    uint32_t *crc;
    uint64_t ncrc, crc_cap, crc_upto; /* whole blocks done; bytes covered (in order) */
    uint32_t partial;                 /* CRC of the block being filled */
    int in_order;
} ch_writer_t;
loom_status_t ch_writer_open(loom_chunks_t *fs, ch_writer_t *w, uint64_t id, int fresh);
loom_status_t ch_writer_write(loom_chunks_t *fs, ch_writer_t *w, uint64_t off, const void *data,
                              size_t n);
/* Make the written bytes the replica's `version` of `len` bytes: data synced, CRCs of the
 * changed blocks computed, the CRC file replaced (that rename is the commit). */
loom_status_t ch_writer_commit(loom_chunks_t *fs, ch_writer_t *w, uint64_t version, uint64_t len);
void ch_writer_abort(loom_chunks_t *fs, ch_writer_t *w);
void ch_remove_replica(loom_chunks_t *fs, uint64_t id);
/* Give this holder's replica of `id` a new version, its bytes unchanged (the CRC file is
 * rewritten aside and renamed). */
loom_status_t ch_set_version(loom_chunks_t *fs, uint64_t id, uint64_t version);
loom_status_t ch_sync_dir(loom_chunks_t *fs);
/* Bytes this holder may still take: the disk's free space, capped by --holder-capacity. */
uint64_t ch_free_bytes(loom_chunks_t *fs, uint64_t used);

/* ------------------------------------------------------------------ transfers (workers)
 *
 * A plan is broadcast by the master: commits (a chunk's new state on the holders that write
 * it) and tasks (a byte range streamed from a source along a chain of holders). Each round of
 * the data plane's exchange, a source sends its next pieces to the chain's second member, and
 * every member forwards what it received the round before to the next one, writing it too. */

enum { CH_SRC_LOCAL = 1, CH_SRC_REPLICA, CH_SRC_MEM };

typedef struct ch_commit {
    uint64_t id, version, len;
    int32_t fresh, nholders;
    int32_t holders[CH_MAX_REPL]; /* worker indices that write the replica */
} ch_commit_t;

typedef struct ch_task {
    int32_t commit, src_kind;
    uint64_t off, len; /* the range of the chunk written */
    uint64_t src_off;  /* where it starts in the source (local file or this rank's memory) */
    int32_t nchain;
    int32_t chain[CH_MAX_REPL + 1]; /* chain[0] the source; writers follow */
} ch_task_t;

typedef struct ch_plan {
    ch_commit_t *c;
    size_t nc;
    ch_task_t *t;
    size_t nt;
    char local[4096];         /* CH_SRC_LOCAL's file */
    const unsigned char *mem; /* CH_SRC_MEM: this rank's bytes */
} ch_plan_t;

void ch_plan_free(ch_plan_t *p);
/* Rank 0's plan reaches every rank (mem is not sent). Collective over the job. */
loom_status_t ch_plan_bcast(loom_chunks_t *fs, ch_plan_t *p);
/* Run the plan on the workers and commit the replicas; the master waits. `bad` (master)
 * collects replicas found corrupt while being read as a source. Collective over the job;
 * agrees on the status. */
loom_status_t ch_transfer(loom_chunks_t *fs, const ch_plan_t *p, loom_buf_t *bad);

/* ------------------------------------------------------------------ store (collective) */

/* Every holder reports its replicas (verified when `verify`) to the master, which rebuilds
 * fs->reps and fs->holders. */
loom_status_t ch_inventory(loom_chunks_t *fs, int verify);
/* The replicas of `id` on the master: [*first, *last) of fs->reps. */
void ch_reps_of(const loom_chunks_t *fs, uint64_t id, size_t *first, size_t *last);
/* Is replica r good for chunk c (complete, current, not damaged)? */
int ch_rep_good(const ch_rep_t *r, const ch_chunk_t *c);
/* Every rank gets the master's status (and message); the master waits without spinning
 * for the workers to get there. */
loom_status_t ch_sync(loom_chunks_t *fs, loom_status_t st);
/* Master: add the replicas a plan committed to fs->reps (and the holders' bytes). */
loom_status_t ch_reps_note(loom_chunks_t *fs, const ch_plan_t *p);
/* Master: holders to delete replica lists (holder, id) pairs; every holder removes its own. */
loom_status_t ch_delete(loom_chunks_t *fs, const uint64_t *pairs, size_t npairs);
/* Master: (holder, id, version) triples; every holder gives its replicas their new version
 * (before a mutation, as GFS does when it grants a lease: a version then never names two
 * contents). Collective; agrees on the status. */
loom_status_t ch_bump(loom_chunks_t *fs, const uint64_t *triples, size_t n);
/* Broadcast a byte buffer from the master. */
loom_status_t ch_bcast_buf(loom_chunks_t *fs, loom_buf_t *b);
/* Gather every rank's bytes on the master (all: concatenation; offs[r]..offs[r+1]). */
loom_status_t ch_gather(loom_chunks_t *fs, const void *mine, size_t bytes, loom_buf_t *all,
                        uint64_t *offs);
/* After LOOM_ERR_LOST with ULFM on: the survivors agree, shrink and learn the store again.
 * Returns LOOM_OK when the operation can be tried again. */
loom_status_t ch_recover(loom_chunks_t *fs, loom_status_t st);
/* Choose up to k holders for `len` bytes, not those marked in `exclude` (may be NULL), with
 * room after `planned` (added to), emptiest first; returns how many. Master. */
int ch_place(loom_chunks_t *fs, uint64_t len, int k, const char *exclude, uint64_t *planned,
             int32_t *out);
/* Heal, counting `bad` ((start rank of the holder, id) pairs found corrupt by reading) as
 * damaged. */
loom_status_t ch_heal_with(loom_chunks_t *fs, loom_buf_t *bad, int verify);
/* A worker index's rank at start: what names a holder across a recovery (lists of replicas
 * found corrupt keep it). */
int ch_holder_start(const loom_chunks_t *fs, int w);
/* The holder a worker index names, for messages. */
const char *ch_holder_name(const loom_chunks_t *fs, int w);

#endif
