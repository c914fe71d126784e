/* Internal to the service (serve.c, coord.c, gateway.c, entropy.c). */
#ifndef LOOM_KV_SERVE_INTERNAL_H
#define LOOM_KV_SERVE_INTERNAL_H

#include <poll.h>

#include "kv/kv_internal.h"

#define KV_TAG_DATA 7301
#define KV_TAG_CTRL 7302
#define KV_TAG_START 7303 /* a worker is past start-up's collectives */

/* Store messages between workers (batched) */
enum {
    M_PUT = 1,     /* hint+1, key, versions: merge (into hints for that home when hint > 0) */
    M_PUT_ACK,     /* (empty) */
    M_GET,         /* hint+1, key */
    M_GET_REP,     /* found, versions */
    M_FWD,         /* flags, w, context, key, value: coordinate this write */
    M_FWD_REP,     /* status, acks, existed */
    M_REPAIR,      /* key, versions: merge, no answer */
    M_HANDOFF,     /* count, (key, versions)...: hints for their home */
    M_HANDOFF_ACK, /* (empty) */
    M_PING,
    M_PONG,
    M_AE_TREE, /* the sender's Merkle tree of the keys both are homes of */
    M_AE_DIFF, /* leaves that differ, the answerer's entries in them */
    M_AE_PUSH, /* the initiator's entries in those leaves */
};

/* Control messages (never dropped by a drill) */
enum {
    C_STOPREQ = 1, /* worker -> rank 0: stop the service */
    C_STOP,        /* rank 0 -> all */
    C_STOPPED,     /* all -> rank 0: synced, closed */
    C_FINAL,       /* rank 0 -> all: leave */
    C_DRILL,       /* group of every rank (all 0: healed) */
    C_DRILL_ACK,
};

enum { PEER_UP = 0, PEER_DOWN, PEER_DEAD };

typedef struct kv_peer {
    int state;
    double heard, next_probe;
    loom_buf_t out; /* frames batched for this rank this turn */
    int out_ctrl;
    int inflight; /* sends to it not yet complete */
} kv_peer_t;

typedef struct kv_pend {
    unsigned char *buf;
    int dest;
} kv_pend_t;

/* Sends not yet complete to one rank past which its store messages are dropped (as a network
 * with a full queue would): a rank that stopped answering must not make every later turn
 * slower (each pending send is retried by MPI's progress engine). */
#define KV_INFLIGHT_MAX 64

/* A reply a client waits for, in request order. */
enum { RS_SINGLE, RS_ARRAY, RS_SUM, RS_OK };
typedef struct kv_slot {
    int kind, pending, n;
    loom_buf_t *part; /* RS_SINGLE: part[0]; RS_ARRAY: one per element */
    long long sum;
    char *err; /* RS_SUM/RS_OK: the first error line (without "-" and CRLF) */
    int close_after;
} kv_slot_t;

typedef struct kv_conn {
    int fd, dead, refs, closing;
    int stalled; /* requests left unparsed (too many replies pending, or the turn's budget) */
    short rev;   /* what the last poll found */
    uint64_t id;
    loom_buf_t in, out;
    size_t in_off, out_off;
    kv_slot_t **slot; /* ring of pending replies */
    size_t shead, scount, scap;
    uint64_t seq0; /* sequence number of slot[shead] */
} kv_conn_t;

/* Operations a worker coordinates */
enum { OP_GET = 1, OP_PUT, OP_FWD, OP_DRILL };
enum { G_PLAIN, G_SIBS, G_EXISTS, G_LOCAL };
enum { TS_WAIT, TS_DONE, TS_FAILED };

typedef struct kv_target {
    int holder;
    uint32_t hint; /* the home's slot this stand-in keeps it for, or KV_NO_TARGET */
    int state, found;
    uint64_t digest;
} kv_target_t;

typedef struct kv_op {
    uint64_t id;
    int kind, mode, del, need, retried, answered;
    kv_conn_t *c; /* the client (NULL for a write forwarded here) */
    uint64_t seq;
    int part;
    int from_rank; /* a forwarded write: the gateway's rank and its op id */
    uint64_t from_id;
    unsigned char *key;
    size_t klen;
    uint64_t hash;
    int nt, acks, replies;
    kv_target_t t[2 * LOOM_KV_MAX_REPLICAS];
    kv_sibs_t sibs; /* OP_PUT: the new version; OP_GET: the replies merged */
    uint64_t ts;    /* a write's time at the gateway (µs): GET returns the latest sibling */
    int existed;
    int coord;      /* OP_FWD: the holder coordinating it */
    loom_buf_t fwd; /* OP_FWD: the M_FWD body, to send again */
    double deadline;
} kv_op_t;

typedef struct kv_handoff {
    uint64_t id;
    int holder;
    double deadline;
    size_t n;
    uint64_t *hash, *digest;
    uint32_t *klen;
    unsigned char **key;
} kv_handoff_t;

typedef struct kv_srv {
    loom_kv_t *kv;
    loom_ctx_t *ctx;
    loom_kv_serve_opts_t o;
    int nh;
    kv_peer_t *peer;
    int *group, partitioned;
    kv_pend_t *pend; /* sends in flight, their requests in preq (for MPI_Testsome) */
    MPI_Request *preq;
    int *pidx;
    size_t npend, cappend;
    uint64_t dropped; /* store messages dropped for a rank with too many sends in flight */
    size_t frame_at;
    /* operations: op id = (serial << 20) | index */
    kv_op_t **ops;
    size_t nops, capops;
    uint32_t *free_idx;
    size_t nfree;
    uint64_t serial;
    /* clients */
    int lfd;
    short lrev;
    double accept_after; /* no accept before this (out of descriptors) */
    kv_conn_t **conns;
    size_t nconns, capconns;
    uint64_t next_conn;
    struct pollfd *pfd;
    size_t cappfd;
    kv_req_t req;
    /* hinted handoff batches in flight */
    kv_handoff_t *hand;
    size_t nhand;
    /* anti-entropy */
    int ae_next;
    /* timers, state */
    double next_handoff, next_ae, next_compact, next_deadlines, last_work, stop_at;
    int work, stop_asked, stopping, final, stopped_seen, deaths;
    uint64_t requests, noquorum;
} kv_srv_t;

double kv_srv_now(void);
int kv_srv_holder_of_slot(const kv_srv_t *s, uint32_t slot);
int kv_srv_usable(const kv_srv_t *s, int holder);
void kv_srv_mark_down(kv_srv_t *s, int holder);
loom_buf_t *kv_msg_begin(kv_srv_t *s, int dest, int type, uint64_t id, size_t body_max);
void kv_msg_end(kv_srv_t *s, int dest);
unsigned char *kv_put_bytes(unsigned char *p, const void *data, size_t len);
loom_status_t kv_msg_put_entry(kv_srv_t *s, loom_buf_t *b, const void *key, size_t klen,
                               const kv_sibs_t *sibs);
loom_status_t kv_ctrl_send(kv_srv_t *s, int dest, int type, uint64_t id, const void *body,
                           size_t len);
loom_status_t kv_srv_request_stop(kv_srv_t *s);
loom_status_t kv_srv_begin_stop(kv_srv_t *s);

/* coord.c */
loom_status_t kv_srv_data(kv_srv_t *s, int src, int type, uint64_t id, const unsigned char *p,
                          const unsigned char *end);
loom_status_t kv_srv_ctrl(kv_srv_t *s, int src, int type, uint64_t id, const unsigned char *p,
                          const unsigned char *end);
loom_status_t kv_srv_deadlines(kv_srv_t *s, double now);
loom_status_t kv_srv_handoff(kv_srv_t *s, double now);
/* Start a read (mode G_*) of key for a client's reply slot; r: quorum (0: default). */
loom_status_t kv_srv_get(kv_srv_t *s, kv_conn_t *c, uint64_t seq, int part, int mode,
                         const void *key, size_t klen, int r);
/* Start a write (value, or a deletion) with an optional client context and quorum; mode
 * G_PLAIN answers +OK, G_EXISTS the count of keys that had a value (DEL). */
loom_status_t kv_srv_put(kv_srv_t *s, kv_conn_t *c, uint64_t seq, int part, const void *key,
                         size_t klen, const void *val, size_t vlen, int del, int mode,
                         const kv_clock_t *ctx, int w);
void kv_reply_value(loom_buf_t *b, loom_ctx_t *ctx, int mode, const kv_sibs_t *sibs);
loom_status_t kv_srv_drill(kv_srv_t *s, kv_conn_t *c, uint64_t seq, const int *group);
void kv_srv_free(kv_srv_t *s);

/* entropy.c */
loom_status_t kv_srv_anti_entropy(kv_srv_t *s);
loom_status_t kv_srv_ae_tree(kv_srv_t *s, int src, uint64_t id, const unsigned char *p,
                             const unsigned char *end);
loom_status_t kv_srv_ae_diff(kv_srv_t *s, int src, uint64_t id, const unsigned char *p,
                             const unsigned char *end, int push);

/* gateway.c */
loom_status_t kv_srv_clients(kv_srv_t *s);
void kv_srv_flush_clients(kv_srv_t *s);
void kv_srv_close_clients(kv_srv_t *s);
void kv_srv_poll(kv_srv_t *s, int timeout_ms);
kv_slot_t *kv_slot_at(kv_conn_t *c, uint64_t seq);
/* A finished sub-request: its RESP reply bytes (RS_SINGLE/RS_ARRAY), a count (RS_SUM) or an
 * error line (any kind, NULL when none). */
void kv_slot_done(kv_srv_t *s, kv_conn_t *c, uint64_t seq, int part, const void *reply, size_t len,
                  long long add, const char *err);
void kv_conn_release(kv_srv_t *s, kv_conn_t *c);

#endif
