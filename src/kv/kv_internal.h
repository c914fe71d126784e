/* Internal to src/kv: versions and their clocks, a holder's replica (table + log), the ring,
 * the Redis protocol's parser, and the handle both the service and the batched API use. */
#ifndef LOOM_KV_INTERNAL_H
#define LOOM_KV_INTERNAL_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "dataplane/dataplane.h"
#include "loom/kv.h"

/* ------------------------------------------------------------------ versions
 * A version is a dot (the coordinator's slot and a counter that only grows there) and the
 * context it was written over (a clock: (slot, counter) entries sorted by slot). Version v is
 * superseded by w when w's context covers v's dot, or w is v (same dot): dotted version
 * vectors, so two writes over the same context stay apart even through one coordinator. */

typedef struct kv_dot {
    uint32_t node;
    uint64_t counter;
} kv_dot_t;

typedef struct kv_clock {
    uint32_t n;
    kv_dot_t *e;
} kv_clock_t;

typedef struct kv_version {
    kv_dot_t dot;
    kv_clock_t ctx;
    uint64_t ts; /* the coordinator's wall clock (µs): a plain GET returns the latest */
    int dead;    /* a deletion (tombstone) */
    uint32_t len;
    unsigned char *val;
} kv_version_t;

/* The versions of one key that no other supersedes. */
typedef struct kv_sibs {
    uint32_t n;
    kv_version_t *v;
} kv_sibs_t;

uint64_t kv_clock_get(const kv_clock_t *c, uint32_t node);
/* Raise entry d.node to at least d.counter. -1 when out of memory. */
int kv_clock_raise(kv_clock_t *c, kv_dot_t d);
/* Pointwise maximum into `into`. -1 when out of memory. */
int kv_clock_join(kv_clock_t *into, const kv_clock_t *c);
void kv_clock_free(kv_clock_t *c);
/* "slot:counter,slot:counter" (empty for an empty clock) into buf; the length written
 * (the text is cut at cap - 1 and NUL-terminated). */
size_t kv_clock_format(const kv_clock_t *c, char *buf, size_t cap);
/* Parse kv_clock_format's text (any order; repeated slots take the maximum). 0, -1 when
 * malformed, -2 when out of memory. */
int kv_clock_parse(const char *s, size_t len, kv_clock_t *out);

int kv_version_covers(const kv_version_t *w, kv_dot_t d);
void kv_version_free(kv_version_t *v);
int kv_version_copy(kv_version_t *dst, const kv_version_t *src);

/* Merge `in` into s (Dynamo's reconciliation): 1 when s changed, 0 when not, -1 when out of
 * memory (s is left valid). */
int kv_sibs_merge(kv_sibs_t *s, const kv_sibs_t *in);
/* The join of every version's context and dot: what a client hands back to supersede them. */
int kv_sibs_context(const kv_sibs_t *s, kv_clock_t *out);
/* The highest counter of `slot` in the versions' dots and contexts. */
uint64_t kv_sibs_max_counter(const kv_sibs_t *s, uint32_t slot);
/* The live version written last (highest ts, then dot), or NULL. */
const kv_version_t *kv_sibs_latest(const kv_sibs_t *s);
uint32_t kv_sibs_live(const kv_sibs_t *s);
int kv_sibs_copy(kv_sibs_t *dst, const kv_sibs_t *src);
void kv_sibs_free(kv_sibs_t *s);
/* A digest of the set of dots (order-independent): equal sets of versions, equal digests. */
uint64_t kv_sibs_digest(const kv_sibs_t *s);
size_t kv_sibs_encoded_max(const kv_sibs_t *s);
unsigned char *kv_sibs_encode(const kv_sibs_t *s, unsigned char *p);
/* Decode (values copied). 0, -1 malformed (or a value over max_value), -2 out of memory. */
int kv_sibs_decode(const unsigned char **p, const unsigned char *end, size_t max_value,
                   kv_sibs_t *s);

/* ------------------------------------------------------------------ a holder's replica */

#define KV_NO_TARGET UINT32_MAX

typedef struct kv_entry {
    uint64_t hash;   /* loom_key_hash of the key: its place on the ring */
    uint64_t digest; /* kv_sibs_digest(&sibs) */
    uint32_t target; /* hints: the home (slot) this is kept for; KV_NO_TARGET otherwise */
    uint32_t klen;
    uint32_t rec_bytes; /* its record's size in a rewritten log */
    unsigned char *key;
    kv_sibs_t sibs;
} kv_entry_t;

typedef struct kv_table {
    kv_entry_t **slot;
    size_t cap, count;
} kv_table_t;

kv_entry_t *kv_table_find(const kv_table_t *t, uint64_t hash, uint32_t target, const void *key,
                          size_t klen);
/* Find or add (with no versions). NULL when out of memory. */
kv_entry_t *kv_table_add(kv_table_t *t, uint64_t hash, uint32_t target, const void *key,
                         size_t klen);
void kv_table_remove(kv_table_t *t, kv_entry_t *e);
void kv_table_free(kv_table_t *t);

typedef struct kv_holder {
    loom_ctx_t *ctx;
    char dir[PATH_MAX];
    char log_path[PATH_MAX];
    int fd;
    int fsync;
    uint64_t log_bytes;  /* size of the log */
    uint64_t live_bytes; /* what a rewritten log would take */
    int dirty;           /* written since the last sync */
    double synced_at;
    kv_table_t main, hints;
    uint64_t hints_delivered, read_repairs, ae_rounds, ae_repairs, torn_bytes;
    loom_buf_t rec;       /* scratch for one record */
    loom_buf_t pending;   /* records not yet written */
    struct kv_syncer *bg; /* the thread of kv_holder_sync_later (NULL until needed) */
} kv_holder_t;

/* Open the holder's directory (created when missing) and replay its log. A damaged tail
 * (no whole record after the damage) is reported on stderr and cut; damage followed by whole
 * records is LOOM_ERR_FORMAT naming the file and offset. Local. */
loom_status_t kv_holder_open(loom_ctx_t *ctx, const char *dir, int fsync, size_t max_value,
                             kv_holder_t *h);
void kv_holder_close(kv_holder_t *h);
/* Merge versions into this holder's replica of a key (target KV_NO_TARGET) or into its hints
 * for home `target`, logging the result when it changed. *changed (may be NULL) says whether
 * it did; *out (may be NULL) is the entry. */
loom_status_t kv_holder_merge(kv_holder_t *h, uint32_t target, uint64_t hash, const void *key,
                              size_t klen, const kv_sibs_t *in, int *changed, kv_entry_t **out);
/* Drop a hint once its home has it (logged). */
loom_status_t kv_holder_drop_hint(kv_holder_t *h, kv_entry_t *e);
/* Write the records gathered so far (the page cache then has them: a process that dies
 * after this loses nothing). Called before any acknowledgement leaves. */
loom_status_t kv_holder_flush(kv_holder_t *h);
/* Flush, and have a thread fdatasync the log (unless one is syncing already): the caller
 * goes on at once. Errors of an earlier background sync are returned here. */
loom_status_t kv_holder_sync_later(kv_holder_t *h);
/* Flush, then fdatasync the log when it was written since the last sync (after any
 * background sync has finished). */
loom_status_t kv_holder_sync(kv_holder_t *h);
/* Rewrite the log without superseded records when it is past KV_COMPACT_RATIO times its live
 * size and KV_COMPACT_MIN_BYTES (or always, with force). Atomic (a new file renamed over the
 * old). The holder waits for it: rare and large, rather than often. */
#define KV_COMPACT_MIN_BYTES (64ull << 20)
#define KV_COMPACT_RATIO 3
loom_status_t kv_holder_compact(kv_holder_t *h, int force);

/* ------------------------------------------------------------------ the ring */

typedef struct kv_ring {
    int nholders, n; /* holders; replicas per key (N, capped by holders) */
    int wlen;        /* holders listed per token: min(nholders, n + 32) */
    uint32_t *slot;  /* holder i's slot (its rank at start) */
    uint32_t ntok;   /* tokens, sorted by position */
    uint64_t *pos;
    uint16_t *owner; /* holder of each token */
    uint16_t *walk;  /* per token: wlen distinct holders in ring order from it */
} kv_ring_t;

/* Tokens for holder i: round(vnodes * weights[i] / mean weight), at least 1, at positions
 * hashed from (slot, token number): the same on every rank and run. */
int kv_ring_build(kv_ring_t *r, int nholders, const uint32_t *slots, const double *weights,
                  int vnodes, int n);
void kv_ring_free(kv_ring_t *r);
/* Distinct holders in ring order clockwise from hash h (wlen entries): the first n are the
 * key's homes, the rest its stand-ins in order. */
const uint16_t *kv_ring_order(const kv_ring_t *r, uint64_t h);
int kv_ring_is_home(const kv_ring_t *r, uint64_t h, int holder);

/* ------------------------------------------------------------------ RESP2 requests */

#define KV_RESP_MAX_ARGS (1024 * 1024)
#define KV_RESP_MAX_INLINE (64 * 1024)

typedef struct kv_req {
    int argc, cap;
    const unsigned char **argv; /* into the parsed buffer */
    size_t *argl;
} kv_req_t;

/* Parse one request at buf[0, len) (a multibulk array of bulk strings, or an inline line).
 * Returns the bytes it took (> 0), 0 when more bytes are needed, -1 on a protocol error
 * (*err set to a static description: the connection must be closed), -2 out of memory. */
long kv_resp_parse(const unsigned char *buf, size_t len, size_t max_bulk, kv_req_t *req,
                   const char **err);
void kv_req_free(kv_req_t *req);

/* ------------------------------------------------------------------ the handle */

struct loom_kv {
    loom_ctx_t *ctx;
    MPI_Comm comm; /* a duplicate of the job's communicator, errors returned */
    int rank, size;
    int me; /* this rank's holder index, -1 on a pure master */
    uint32_t my_slot;
    kv_ring_t ring;
    int *holder_rank; /* holder i's rank in comm */
    int r, w;
    size_t max_value;
    int lock_fd; /* the master's lock on <dir>/LOCK */
    char dir[PATH_MAX];
    kv_holder_t h;         /* this rank's replica (a worker's) */
    uint64_t last_counter; /* the last dot counter this rank issued */
};

/* The next dot counter of this rank: above every earlier one, near the wall clock in µs. */
uint64_t kv_next_counter(loom_kv_t *kv);
/* The same, and above `floor` (a counter of this rank's slot already seen). */
uint64_t kv_next_counter_above(loom_kv_t *kv, uint64_t floor);
uint64_t kv_now_us(void);

#endif
