/* The data plane: what every engine shares to move and keep records. Partitioners, a record
 * exchange in bounded rounds over the job's live members, sorted runs with spill files and a
 * k-way merge, and (in loom/output.h) atomic output. Engines include this; jobs never do. */
#ifndef LOOM_DATAPLANE_H
#define LOOM_DATAPLANE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "kernels/hash.h"
#include "kernels/sort.h"
#include "loom/output.h"
#include "loom/runtime.h"

/* ------------------------------------------------------------------ byte buffers
 * A growable byte buffer. Zero-initialise, then append; free with loom_buf_free. */

typedef struct loom_buf {
    unsigned char *data;
    size_t len, cap;
} loom_buf_t;

/* Make room for `extra` more bytes (geometric growth). LOOM_ERR_NOMEM on failure. */
loom_status_t loom_buf_reserve(loom_ctx_t *ctx, loom_buf_t *b, size_t extra);
loom_status_t loom_buf_append(loom_ctx_t *ctx, loom_buf_t *b, const void *data, size_t len);
void loom_buf_free(loom_buf_t *b);

/* ------------------------------------------------------------------ records
 * A record in a buffer, a run file or an exchange is varint(klen) varint(vlen)
 * key value (LEB128 varints). */

#define LOOM_RECORD_OVERHEAD 20 /* the two varints take at most this many bytes */

static inline unsigned char *loom_put_varint(unsigned char *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    *p++ = (unsigned char)v;
    return p;
}

/* Decode a varint from [p, end); NULL when truncated or overlong. */
static inline const unsigned char *loom_get_varint(const unsigned char *p, const unsigned char *end,
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

/* Append one record. */
loom_status_t loom_buf_put_record(loom_ctx_t *ctx, loom_buf_t *b, const void *k, size_t klen,
                                  const void *v, size_t vlen);

/* ------------------------------------------------------------------ partitioners */

/* Hash partitioning of byte keys. A key's hash is loom_key_hash (the kernels'
 * 64-bit hash with Loom's key seed, the same on every rank and run); its
 * partition takes the hash's high 32 bits times nparts, so any nparts splits
 * evenly and the low bits stay free for tables that index by them. Pure;
 * thread-safe. */
#define LOOM_KEY_HASH_SEED 0x4c6f6f6d4d52ULL
static inline uint64_t loom_key_hash(const void *key, size_t klen)
{
    return loom_hash_inline(key, klen, LOOM_KEY_HASH_SEED);
}
static inline uint32_t loom_part_of_hash(uint64_t h, uint32_t nparts)
{
    return (uint32_t)(((h >> 32) * (uint64_t)nparts) >> 32);
}
static inline uint32_t loom_part_hash(const void *key, size_t klen, uint32_t nparts)
{
    return loom_part_of_hash(loom_key_hash(key, klen), nparts);
}

/* Ordered ranges cut from a sample: nparts - 1 boundary keys in byte order
 * (fewer when the sample had fewer distinct keys: the last partitions stay
 * empty). A key goes to the number of boundaries <= key, so equal keys land
 * together and the partitions concatenate in key order. */
typedef struct loom_ranges {
    loom_buf_t keys; /* the boundaries as records (values empty) */
    const unsigned char **key;
    size_t *len;
    size_t n;
} loom_ranges_t;

/* Cut boundaries from `sample`, records whose keys need not be sorted or
 * distinct: after sorting, the key at each i * count / nparts. Local. */
loom_status_t loom_ranges_from_sample(loom_ctx_t *ctx, const loom_buf_t *sample, uint32_t nparts,
                                      loom_ranges_t *r);
/* Collective over `comm`: `root`'s boundaries reach every rank (r is filled
 * on all). Agrees on failure. */
loom_status_t loom_ranges_bcast(loom_ctx_t *ctx, MPI_Comm comm, int root, loom_ranges_t *r);
uint32_t loom_ranges_part(const loom_ranges_t *r, const void *key, size_t klen);
void loom_ranges_free(loom_ranges_t *r);

/* Contiguous vertex ranges: `parts` ranges of [0, n) balanced by
 * cost(v) = outd[v] + ind[v] + vw (vw = vertex_weight, or the mean out + in
 * degree when vertex_weight <= 0; ind may be NULL: outd counts twice). Writes
 * parts + 1 bounds; returns vw. Pure; thread-safe. */
double loom_vertex_ranges(const uint64_t *outd, const uint64_t *ind, uint64_t n, int parts,
                          double vertex_weight, uint64_t *bounds);
/* The range holding v: the last i with bounds[i] <= v (empty ranges, whose
 * bound equals the next one, are skipped). Binary search; thread-safe. */
static inline int loom_vertex_owner(const uint64_t *bounds, int parts, uint64_t v)
{
    int lo = 0, hi = parts;
    while (hi - lo > 1) {
        int mid = lo + (hi - lo) / 2;
        if (bounds[mid] <= v)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/* ------------------------------------------------------------------ k-way merges
 * A binary min-heap of n stream indices, ordered by less(arg, a, b): sift the
 * entry at slot i down to its place (after changing or replacing it), or
 * build the heap by sifting n/2 - 1 down to 0. */
static inline void loom_heap_down(int *heap, int n, int i, int (*less)(const void *, int, int),
                                  const void *arg)
{
    for (;;) {
        int l = 2 * i + 1, r = l + 1, s = i;
        if (l < n && less(arg, heap[l], heap[s])) s = l;
        if (r < n && less(arg, heap[r], heap[s])) s = r;
        if (s == i) return;
        int t = heap[i];
        heap[i] = heap[s];
        heap[s] = t;
        i = s;
    }
}

/* ------------------------------------------------------------------ record exchange
 *
 * An all-to-all exchange in bounded rounds over the job's live members (the
 * job communicator or the workers', as the context has them now). Each round,
 * every rank packs at most `room` bytes per destination (one record larger
 * than that may travel alone), then one vote (failures, who has more, whether
 * a segment is oversized), MPI_Alltoall of the counts and MPI_Alltoallv of
 * the data, with counts in elements of `elem` bytes so that no int overflows;
 * each source's segment is then unpacked in rank order, this rank's own
 * straight from its send buffer. Rounds go on until no rank has more. The
 * buffers stay within the budget given at creation: send and receive take at
 * most budget/2 each (plus an oversized record). A failure anywhere (a pack or
 * unpack callback, memory, MPI) is agreed, so every rank returns the same
 * status; a dead member (ULFM) returns LOOM_ERR_LOST on every survivor. */

typedef struct loom_exchange loom_exchange_t;

enum { LOOM_AMONG_JOB = 0, LOOM_AMONG_WORKERS = 1 };

/* combine (two-level exchange): at a relay, fold the segments the `nseg`
 * members of its node packed for `dest` this round (seg[m], len[m] bytes,
 * whole elements, member m's place on the node) into one segment appended
 * to `out`, in the form unpack takes. `last` is set in the exchange's last
 * round: whatever a combiner held back must go out then. Records may be
 * held back across rounds (e.g. to keep a stream sorted); unpack sees the
 * relay's rank as the source. */
typedef loom_status_t (*loom_exchange_combine_fn)(loom_exchange_t *x, void *user, int dest,
                                                  int nseg, const unsigned char *const *seg,
                                                  const size_t *len, int last, loom_buf_t *out);

typedef struct loom_exchange_opts {
    int among;         /* LOOM_AMONG_JOB or LOOM_AMONG_WORKERS */
    size_t elem;       /* bytes per element: segments are whole elements (>= 1) */
    size_t budget;     /* bytes for send + receive buffers (0: 64 MiB) */
    size_t max_room;   /* cap on bytes per destination per round (0: 8 MiB) */
    const char *timer; /* phase timer prefix: "<timer>_pack", "_exchange", "_unpack"; NULL: none */
    /* Records that combine: the exchange may then go in two levels (below).
     * NULL: flat, and loom_exchange_create is local. */
    loom_exchange_combine_fn combine;
} loom_exchange_opts_t;

/* pack: append this round's data, destination by destination in rank order,
 * with loom_exchange_put (or loom_exchange_claim); set *more when this rank
 * has more to send after this round. */
typedef loom_status_t (*loom_exchange_pack_fn)(loom_exchange_t *x, void *user, int *more);
/* unpack: the segment from `src` (whole elements), valid during the call. */
typedef loom_status_t (*loom_exchange_unpack_fn)(loom_exchange_t *x, void *user, int src,
                                                 const unsigned char *data, size_t bytes);

/* Create an exchange over the members `opts->among` names, as they are now.
 * Collective only in the sense that every member must create one to run;
 * with opts->combine, collective over the members (it finds the nodes:
 * MPI_Comm_split_type, or pretend nodes of loom_node_ranks ranks).
 *
 * Two levels: with a combiner, and --two-level on (or auto, with the
 * members on several nodes and some node holding more than one), a round
 * goes first within each node to the destination's relay, a member of the
 * sender's node (phase 1, over shared memory), which combines the node's
 * segments for that destination; relays then send one message per
 * destination on another node (phase 2, MPI_Ineighbor_alltoallv on a
 * distributed-graph communicator). A rank then sends to its node's members
 * and, across nodes, to one member of each other node (more where nodes are
 * uneven: the members whose place mod its node's size is its own) instead
 * of to every member, and records of equal keys from one node cross between
 * nodes once per round (or once in all, where the combiner holds records
 * back). Phase 1 goes through MPI_Ialltoallv on the node's communicator.
 * The relay's buffers come on top of the budget: about what a round brings
 * a destination from the node's members. */
loom_status_t loom_exchange_create(loom_ctx_t *ctx, const loom_exchange_opts_t *opts,
                                   loom_exchange_t **x);
void loom_exchange_destroy(loom_exchange_t **x);

/* Run rounds until no member has more. Collective over the members. */
loom_status_t loom_exchange_run(loom_exchange_t *x, loom_exchange_pack_fn pack,
                                loom_exchange_unpack_fn unpack, void *user);

/* In pack: the members, this rank's place among them, the bytes a
 * destination may take this round, what was put for it so far. */
int loom_exchange_size(const loom_exchange_t *x);
int loom_exchange_rank(const loom_exchange_t *x);
MPI_Comm loom_exchange_comm(const loom_exchange_t *x);
size_t loom_exchange_room(const loom_exchange_t *x);
size_t loom_exchange_pending(const loom_exchange_t *x, int dest);
/* Append bytes for `dest` (destinations in nondecreasing order within a round). */
loom_status_t loom_exchange_put(loom_exchange_t *x, int dest, const void *data, size_t bytes);
/* Append one record (varint lengths, key, value) for `dest`. */
loom_status_t loom_exchange_put_record(loom_exchange_t *x, int dest, const void *k, size_t klen,
                                       const void *v, size_t vlen);
/* Bytes in this round's send buffer so far, and a way to fill in a header
 * written before its length was known (e.g. a segment's length). */
size_t loom_exchange_mark(const loom_exchange_t *x);
void loom_exchange_patch(loom_exchange_t *x, size_t at, const void *data, size_t bytes);
/* Lay out the whole round at once: bytes[d] for every destination; returns
 * the start of the round's buffer and, in displ[d], where d's segment
 * begins. For packers that bucket a batch by destination (a counting sort). */
loom_status_t loom_exchange_claim(loom_exchange_t *x, const size_t *bytes, unsigned char **base,
                                  size_t *displ);

/* Bytes this rank sent so far (its own share included), rounds run. */
uint64_t loom_exchange_bytes_sent(const loom_exchange_t *x);
uint64_t loom_exchange_rounds(const loom_exchange_t *x);
/* 2 when the exchange runs in two levels, else 1; the nodes among its
 * members (0 when it has no combiner, so never looked); what this rank
 * sent to members on other nodes so far: bytes, and nonempty messages
 * (flat: per destination and round; two levels: phase 2's). */
int loom_exchange_levels(const loom_exchange_t *x);
int loom_exchange_nodes(const loom_exchange_t *x);
void loom_exchange_offnode(const loom_exchange_t *x, uint64_t *bytes, uint64_t *messages);

/* The ranks of `comm` on this rank's node, in comm's order: those sharing its
 * memory (MPI_Comm_split_type SHARED), or with --node-ranks K, pretend nodes
 * of K consecutive ranks counted by rank at start. Collective over comm; an
 * MPI error is returned (the caller agrees on it). */
loom_status_t loom_node_split(loom_ctx_t *ctx, MPI_Comm comm, MPI_Comm *node);

/* ------------------------------------------------------------------ node memory
 *
 * One POSIX shared-memory segment for the ranks of a node (loom_node_split's
 * node, further split to ranks that really share memory), a region of its own
 * for each: ranks write straight into each other's regions, and a node
 * barrier orders those writes against the reads. */

typedef struct loom_nodemem loom_nodemem_t;

/* Each rank brings a region of `mylen` bytes (0 allowed); regions start at
 * 2 MiB boundaries (for 2 MiB pages where the kernel gives them to shared
 * memory), and each rank's own pages, mylen rounded up to the page size, are
 * populated here. *m is NULL, on every rank of a node alike, where the node
 * holds this rank alone or no segment could be had (said at verbose): the
 * caller then does without. Collective over `comm`; agrees on failure (an MPI
 * error or LOOM_ERR_NOMEM). */
loom_status_t loom_nodemem_create(loom_ctx_t *ctx, MPI_Comm comm, size_t mylen, loom_nodemem_t **m);
/* This rank's region; the segment's start; rank r of `comm`'s region (NULL
 * when r is not on this node); the segment's length (regions are at page
 * multiples from its start). */
void *loom_nodemem_mine(loom_nodemem_t *m);
void *loom_nodemem_base(loom_nodemem_t *m);
void *loom_nodemem_of(loom_nodemem_t *m, int r);
size_t loom_nodemem_bytes(const loom_nodemem_t *m);
/* The node's ranks that share the segment, in comm's order. */
MPI_Comm loom_nodemem_comm(const loom_nodemem_t *m);
/* A barrier of the node's ranks with full memory fences: writes before it on
 * any rank are seen after it on every rank. A failure revokes the node's
 * communicator (ULFM), so that no rank of the node waits forever, and is
 * returned. */
loom_status_t loom_nodemem_barrier(loom_nodemem_t *m);
/* Revoke the node's communicator: a rank that leaves a round early calls this
 * so that its node's ranks do not wait at the next barrier. */
void loom_nodemem_revoke(loom_nodemem_t *m);
void loom_nodemem_destroy(loom_nodemem_t **m);

/* ------------------------------------------------------------------ halo exchange
 *
 * A fixed pattern repeated every round (PageRank's mirrors): each rank needs
 * the values of a fixed, ascending list of global ids, owned by the ranks of
 * `comm` in contiguous ranges [bounds[r], bounds[r + 1]), and each owner sends
 * every rank exactly the values it needs, no more. The lists travel once, at
 * creation; a round is one MPI_Alltoallv of values, received in the order of
 * the list (owners own ascending ranges, so that is rank order). */

typedef struct loom_halo loom_halo_t;

/* loom_halo_create's flags: the receive buffer in private memory on every
 * rank (no shared segment; rounds go by MPI_Alltoallv alone). */
#define LOOM_HALO_PRIVATE 1u

/* Collective over `comm` (the same flags on every rank); agrees on failure:
 * LOOM_ERR_NOMEM, LOOM_ERR_USAGE (an id outside [bounds[0], bounds[size]), an
 * unsorted list, more than INT_MAX ids to or from one rank, an owned range of
 * 2^32 ids or more). */
loom_status_t loom_halo_create(loom_ctx_t *ctx, MPI_Comm comm, const uint64_t *bounds,
                               const uint64_t *need, size_t nneed, size_t elem, unsigned flags,
                               loom_halo_t **h);
/* out[i] = the value of need[i]; `local` holds this rank's values, elem
 * bytes each, indexed by id - bounds[rank]. Packs on the calling rank's
 * OpenMP threads (call from outside a parallel region). Collective over the
 * halo's comm; an MPI error is returned (and the caller agrees on it). */
loom_status_t loom_halo_exchange(loom_halo_t *h, const void *local, void *out);
/* The same with doubles sent as floats (half the bytes): the halo was
 * created with elem 4; `local` holds doubles, `out` receives floats. */
loom_status_t loom_halo_exchange_f32(loom_halo_t *h, const double *local, float *out);
/* The halo's own receive buffer (loom_halo_received elements). Ranks of one
 * node (loom_node_split, and sharing memory) share these buffers: an exchange
 * into it has every owner on the node write its values straight into the
 * buffers of the ranks that need them, and only ranks on other nodes go
 * through MPI_Alltoallv. It is valid until the next exchange starts (which
 * waits for every rank of the node to have started it). In each round every
 * rank of the halo's comm passes this buffer as `out`, or every rank its own
 * memory. Private memory, exchanged by MPI alone, with LOOM_HALO_PRIVATE, and
 * where shared memory cannot be had (it then says so at verbose). */
void *loom_halo_buffer(loom_halo_t *h);
/* Elements this rank sends and receives per round (its own included), and of
 * those received, how many arrive through shared memory. */
size_t loom_halo_sent(const loom_halo_t *h);
size_t loom_halo_received(const loom_halo_t *h);
size_t loom_halo_received_shared(const loom_halo_t *h);
void loom_halo_destroy(loom_halo_t **h);

/* ------------------------------------------------------------------ sorted runs
 *
 * A run is a file of records in `nparts` sections, each sorted by key (then
 * value, when asked); off[p] is where section p starts, off[nparts] the size. */

typedef struct loom_run {
    char *path;
    int nparts;
    uint64_t *off;
} loom_run_t;

typedef struct loom_run_writer {
    loom_ctx_t *ctx;
    FILE *f;
    loom_run_t run;
    int section;
    uint64_t bytes;
} loom_run_writer_t;

/* A job's private spill directory, `<base>/loom-<host>-<pid>-<tag>-<seq>`:
 * every run and spill file of the job goes inside, the directory is removed
 * when the job ends (or on a signal: it is registered with loom_temp_register),
 * and its name lets a later job on this host remove it if this one died
 * (loom_spill_sweep). */
typedef struct loom_spill_dir {
    char *path;
    int temp;
} loom_spill_dir_t;

loom_status_t loom_spill_dir_create(loom_ctx_t *ctx, const char *base, const char *tag,
                                    loom_spill_dir_t *sd);
/* Remove the directory and everything in it. Accepts one never created. */
void loom_spill_dir_remove(loom_ctx_t *ctx, loom_spill_dir_t *sd);

/* Start a run file `<dir>/<tag>-<seq>` (dir: a spill directory). Sections are
 * written in order, starting with section 0. */
loom_status_t loom_run_create(loom_ctx_t *ctx, const char *dir, const char *tag, int nparts,
                              loom_run_writer_t *w);
loom_status_t loom_run_put(loom_run_writer_t *w, const void *k, size_t klen, const void *v,
                           size_t vlen);
/* Close the current section; the next records go to section `p` (>= current). */
void loom_run_section(loom_run_writer_t *w, int p);
/* Finish the file: *run takes it over. On failure the file is removed. */
loom_status_t loom_run_finish(loom_run_writer_t *w, loom_run_t *run);
void loom_run_abort(loom_run_writer_t *w);
/* Delete the file and free the struct's contents. */
void loom_run_free(loom_run_t *r);

/* Remove spill directories and files in `base` of jobs on this host that are
 * gone (`loom-<host>-<pid>-*` with a dead pid); rank 0 says how many.
 * Collective over the job communicator (each rank sweeps its own base). */
loom_status_t loom_spill_sweep(loom_ctx_t *ctx, const char *base);

/* Remove a file, or a directory and everything in it (links are removed, not
 * followed); a missing path is not an error. Returns 1 when `path` is gone
 * because of this call. Local. (The signal handlers have their own,
 * async-signal-safe copy in the runtime.) */
int loom_remove_tree(const char *path);

/* Create a checkpoint directory (and its parents) if needed and check that it
 * is a directory this process can write; errors name it as --checkpoint-dir.
 * Local (rank 0 calls it; the engines agree). */
loom_status_t loom_checkpoint_dir_check(loom_ctx_t *ctx, const char *dir);

/* ------------------------------------------------------------------ readers and merging */

enum { LOOM_RD_MEM = 1, LOOM_RD_FILE, LOOM_RD_REFS };

/* A sorted stream of records: in memory, a section of a run file, or an
 * array of references (kernels/sort.h). */
typedef struct loom_reader {
    int kind, valid;
    const unsigned char *key, *val;
    size_t klen, vlen;
    const unsigned char *p, *end; /* MEM */
    FILE *f;                      /* FILE */
    const char *path;
    uint64_t remaining;
    loom_buf_t rec;
    const loom_kvref_t *r, *rend; /* REFS */
} loom_reader_t;

void loom_reader_mem(loom_reader_t *rd, const void *data, size_t len);
void loom_reader_refs(loom_reader_t *rd, const loom_kvref_t *r, size_t n);
/* Open the section [off, off + len) of a run file. */
loom_status_t loom_reader_file(loom_ctx_t *ctx, loom_reader_t *rd, const char *path, uint64_t off,
                               uint64_t len);
/* Advance (valid = 0 at the end); the first call loads the first record. */
loom_status_t loom_reader_next(loom_ctx_t *ctx, loom_reader_t *rd);
void loom_reader_close(loom_reader_t *rd);

/* A k-way merge of sorted readers: a binary heap of reader indices. */
typedef struct loom_merge {
    loom_reader_t **rd;
    int n, hn;
    int *heap;
    int by_value;
} loom_merge_t;

/* Readers must already hold their first record (loom_reader_next once). */
loom_status_t loom_merge_init(loom_ctx_t *ctx, loom_merge_t *m, loom_reader_t **rd, int n,
                              int by_value);
static inline loom_reader_t *loom_merge_top(loom_merge_t *m)
{
    return m->hn ? m->rd[m->heap[0]] : NULL;
}
loom_status_t loom_merge_pop(loom_ctx_t *ctx, loom_merge_t *m);
void loom_merge_free(loom_merge_t *m);

/* ------------------------------------------------------------------ store roots
 * What the chunk store and the key/value store share: a root directory marked by a file
 * (`marker`, whose first line is `format`, then "id <16 hex digits>"), locked by one job at a
 * time, with one directory per holder, <root>/holders/<host>-<slot> (slot: the rank at
 * start, 1 at one rank), that records in STORE_ID the store it belongs to. */

/* On the master: a store root, or a missing or empty directory that becomes one (with a new
 * random id). LOOM_ERR_USAGE naming the root when it is neither ("not a Loom <kind>"). */
loom_status_t loom_store_root_check(loom_ctx_t *ctx, const char *root, const char *marker,
                                    const char *format, const char *kind, uint64_t *id);
/* flock <dir>/LOCK without waiting (LOOM_ERR_USAGE naming the holder when taken); *fd keeps
 * it until closed. */
loom_status_t loom_store_lock(loom_ctx_t *ctx, const char *dir, int *fd);
void loom_store_holder_name(const loom_ctx_t *ctx, char *buf, size_t len);
/* On a worker: create (or find) this rank's holder directory; *dir is malloc'd.
 * LOOM_ERR_USAGE when it belongs to another store. */
loom_status_t loom_store_holder_dir(loom_ctx_t *ctx, const char *root, uint64_t id, char **dir);

#endif
