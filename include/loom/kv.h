/* Loom's key/value store (Amazon's Dynamo on worker ranks): consistent hashing with virtual
 * nodes, N replicas with R/W quorums, dotted vector clocks and siblings, a sloppy quorum with
 * hinted handoff, read repair, Merkle-tree anti-entropy and an append-only log per holder.
 * Two ways in: a long-running service whose workers speak the Redis protocol (loom_kv_serve,
 * `loom kv serve`), and collective batched puts and gets for an MPI program that keeps the
 * store inside its own job. Layout, protocol and promises: docs/KV.md. */
#ifndef LOOM_KV_H
#define LOOM_KV_H

#include <stddef.h>
#include <stdint.h>

#include "loom/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct loom_kv loom_kv_t;

#define LOOM_KV_MAX_REPLICAS 16

enum { LOOM_KV_FSYNC_EVERYSEC = 0, LOOM_KV_FSYNC_ALWAYS, LOOM_KV_FSYNC_NO };

typedef struct loom_kv_opts {
    int replicas;          /* N, replicas per key (0: 3), capped by the holders present */
    int r, w;              /* default read and write quorums (0: 2), capped by N */
    int vnodes;            /* ring tokens per unit of weight (0: 64) */
    const double *weights; /* relative capacity of worker i (loom_worker_index order; NULL:
                              all equal); a worker's share of the ring follows it */
    int fsync;             /* LOOM_KV_FSYNC_*: when a holder's log is synced */
    size_t max_value;      /* largest key or value accepted (0: 16 MiB) */
} loom_kv_opts_t;

/* Open the store at `dir` (a missing or empty directory becomes one). The holders are the
 * workers (ranks 1..P-1; rank 0 alone at one rank), named "<host>-<slot>" (slot: the rank at
 * start), each replaying its log <dir>/holders/<name>/kv.log (a torn last record is reported
 * on stderr and cut). The master takes the store's lock: one job at a time. Collective.
 * Errors (agreed on every rank): LOOM_ERR_USAGE (not a key/value store, bad options, the store
 * in use, a holder of another store), LOOM_ERR_IO, LOOM_ERR_FORMAT (a damaged log record
 * followed by whole ones: names file and offset), LOOM_ERR_NOMEM, LOOM_ERR_MPI. On failure
 * *kv is NULL. */
loom_status_t loom_kv_open(loom_ctx_t *ctx, const char *dir, const loom_kv_opts_t *opts,
                           loom_kv_t **kv);
/* Sync every holder's log, release the lock and free the handle. Accepts NULL and *kv == NULL;
 * sets *kv to NULL. Collective. */
loom_status_t loom_kv_close(loom_kv_t **kv);

/* Batched operations. Collective: every rank passes its own batch (n may be 0). Key i is
 * klens[i] bytes at keys[i] (1 .. max_value bytes), value i vlens[i] bytes at vals[i]. Each
 * key's write goes to its first home (its coordinator), which makes the new version from
 * what it holds (the put replaces it, as a Redis SET does) and sends it to the other homes;
 * the records travel aggregated per destination through the data plane's exchange. A put
 * returns once every home holds the version (W = N, since the call is collective); with
 * fsync ALWAYS it is also synced. A key written twice in one call takes the last value.
 * Errors (agreed): LOOM_ERR_USAGE (empty or oversized key or value), LOOM_ERR_IO,
 * LOOM_ERR_NOMEM, LOOM_ERR_MPI, LOOM_ERR_LOST. */
loom_status_t loom_kv_put_batch(loom_kv_t *kv, size_t n, const void *const *keys,
                                const size_t *klens, const void *const *vals, const size_t *vlens);
/* Delete keys (a tombstone version, as loom_kv_put_batch writes a value). Collective. */
loom_status_t loom_kv_del_batch(loom_kv_t *kv, size_t n, const void *const *keys,
                                const size_t *klens);

/* The results of loom_kv_get_batch: for key i, found[i] (0: absent or deleted), siblings[i]
 * (the live concurrent versions reconciled from R replicas) and the value written last among
 * them: len[i] bytes at data + off[i]. */
typedef struct loom_kv_values {
    size_t n;
    unsigned char *found;
    uint32_t *siblings;
    uint64_t *off, *len;
    unsigned char *data;
} loom_kv_values_t;

/* Read keys from R homes each (r <= 0: the store's default) and reconcile their versions.
 * Collective; out is filled in this rank's key order and freed with loom_kv_values_free. */
loom_status_t loom_kv_get_batch(loom_kv_t *kv, size_t n, const void *const *keys,
                                const size_t *klens, int r, loom_kv_values_t *out);
void loom_kv_values_free(loom_kv_values_t *v);

/* Keys in this rank's replica (0 on a pure master). Local. */
uint64_t loom_kv_local_keys(const loom_kv_t *kv);

typedef struct loom_kv_serve_opts {
    const char *bind;    /* the gateways' address (NULL: 127.0.0.1) */
    int port;            /* worker i (1-based) listens on port + i - 1 (0: 6390) */
    int timeout_ms;      /* a replica silent this long is taken as down (0: 500) */
    int anti_entropy_ms; /* Merkle exchange period (0: 2000; < 0: never) */
    FILE *out;           /* where rank 0 prints the addresses and "ready" (NULL: stdout) */
} loom_kv_serve_opts_t;

/* Serve the store: every worker opens a gateway that speaks RESP2 (the Redis protocol) and
 * coordinates the requests that reach it; rank 0 prints "kv: worker W rank R pid PID
 * listening on HOST:PORT" per worker and then "kv: ready: ..." once all listen. Returns when
 * the service is stopped (SIGTERM or SIGINT on any rank, or a client's SHUTDOWN), with every
 * acknowledged write in the holders' synced logs. With ULFM a worker's death is survived:
 * its keys stay available from their other replicas. Collective. Errors (agreed, before
 * "ready"): LOOM_ERR_USAGE (bad options), LOOM_ERR_IO (an address in use or not bindable);
 * later: LOOM_ERR_IO (a log that cannot be written), LOOM_ERR_MPI. */
loom_status_t loom_kv_serve(loom_kv_t *kv, const loom_kv_serve_opts_t *opts);

#ifdef __cplusplus
}
#endif

#endif
