/* The service: every worker runs one event loop over its clients' sockets (RESP2) and the
 * store's MPI messages; it coordinates the requests its clients send (reads itself, writes
 * through the key's first healthy home), answers its peers' replica requests, hands hints
 * back, and runs anti-entropy. Rank 0 (with P >= 2) only starts and stops the service and
 * notes deaths. Messages between workers are framed records batched per destination and sent
 * once per loop turn. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "kernels/hash.h"
#include "kv/kv_internal.h"
#include "kv/serve_internal.h"

/* ------------------------------------------------------------------ small helpers */

double kv_srv_now(void)
{
    return loom_wtime();
}

static int rank_of(const kv_srv_t *s, int holder)
{
    return s->kv->holder_rank[holder];
}

int kv_srv_holder_of_slot(const kv_srv_t *s, uint32_t slot)
{
    for (int i = 0; i < s->nh; i++)
        if (s->kv->ring.slot[i] == slot) return i;
    return -1;
}

static int blocked(const kv_srv_t *s, int rank)
{
    return s->partitioned && s->group[rank] != s->group[s->kv->rank];
}

int kv_srv_usable(const kv_srv_t *s, int holder)
{
    if (holder == s->kv->me) return 1;
    return s->peer[rank_of(s, holder)].state == PEER_UP;
}

static void mark_up(kv_srv_t *s, int rank)
{
    kv_peer_t *p = &s->peer[rank];
    if (p->state == PEER_DOWN) {
        p->state = PEER_UP;
        /* hand-off batches sent while it was away were lost or wait behind its backlog:
         * they are sent again at once (a hint goes only when its home acknowledges it) */
        int holder = s->kv->size == 1 ? 0 : rank - 1;
        for (size_t i = 0; i < s->nhand; i++)
            if (s->hand[i].holder == holder) s->hand[i].deadline = 0;
        s->next_deadlines = s->next_handoff = 0;
    }
    p->heard = kv_srv_now();
}

void kv_srv_mark_down(kv_srv_t *s, int holder)
{
    if (holder == s->kv->me) return;
    kv_peer_t *p = &s->peer[rank_of(s, holder)];
    if (p->state == PEER_UP) {
        p->state = PEER_DOWN;
        p->next_probe = kv_srv_now() + 0.5;
    }
}

/* ------------------------------------------------------------------ messages */

/* Start a frame of `type` for rank `dest`: its length is patched by kv_msg_end. Returns the
 * buffer to append the body to, or NULL when out of memory. */
loom_buf_t *kv_msg_begin(kv_srv_t *s, int dest, int type, uint64_t id, size_t body_max)
{
    loom_buf_t *b = &s->peer[dest].out;
    if (loom_buf_reserve(s->ctx, b, 4 + 1 + 10 + body_max) != LOOM_OK) return NULL;
    s->frame_at = b->len;
    unsigned char *p = b->data + b->len + 4;
    *p++ = (unsigned char)type;
    p = loom_put_varint(p, id);
    b->len = (size_t)(p - b->data);
    return b;
}

void kv_msg_end(kv_srv_t *s, int dest)
{
    loom_buf_t *b = &s->peer[dest].out;
    uint32_t len = (uint32_t)(b->len - s->frame_at);
    memcpy(b->data + s->frame_at, &len, 4);
    s->work = 1;
}

unsigned char *kv_put_bytes(unsigned char *p, const void *data, size_t len)
{
    p = loom_put_varint(p, len);
    if (len) memcpy(p, data, len);
    return p + len;
}

/* A key and its versions as a message body: varint klen, key, versions. */
loom_status_t kv_msg_put_entry(kv_srv_t *s, loom_buf_t *b, const void *key, size_t klen,
                               const kv_sibs_t *sibs)
{
    LOOM_TRY(loom_buf_reserve(s->ctx, b, 10 + klen + kv_sibs_encoded_max(sibs)));
    unsigned char *p = kv_put_bytes(b->data + b->len, key, klen);
    p = kv_sibs_encode(sibs, p);
    b->len = (size_t)(p - b->data);
    return LOOM_OK;
}

static void note_dead(kv_srv_t *s)
{
    int dead[64];
    int n = loom_comm_dead_ranks(s->ctx, s->kv->comm, dead, 64);
    for (int i = 0; i < n; i++) {
        kv_peer_t *p = &s->peer[dead[i]];
        if (p->state == PEER_DEAD) continue;
        p->state = PEER_DEAD;
        s->deaths++;
        if (s->kv->rank == 0)
            fprintf(stderr,
                    "loom: kv: worker %d (rank %d) died; its keys live on in their other "
                    "replicas\n",
                    s->kv->size == 1 ? 1 : dead[i], loom_start_rank(s->ctx, dead[i]));
    }
}

static loom_status_t flush_sends(kv_srv_t *s)
{
    for (int r = 0; r < s->kv->size; r++) {
        kv_peer_t *p = &s->peer[r];
        if (!p->out.len) continue;
        if (p->state == PEER_DEAD || r == s->kv->rank ||
            (!p->out_ctrl && p->inflight >= KV_INFLIGHT_MAX)) {
            if (p->state != PEER_DEAD && r != s->kv->rank) s->dropped++;
            p->out.len = 0;
            continue;
        }
        if (s->npend == s->cappend) {
            size_t cap = s->cappend ? 2 * s->cappend : 64;
            kv_pend_t *g = realloc(s->pend, cap * sizeof *g);
            if (g) s->pend = g;
            MPI_Request *q = realloc(s->preq, cap * sizeof *q);
            if (q) s->preq = q;
            int *ix = realloc(s->pidx, cap * sizeof *ix);
            if (ix) s->pidx = ix;
            if (!g || !q || !ix) return LOOM_ERROR(s->ctx, LOOM_ERR_NOMEM, "out of memory");
            s->cappend = cap;
        }
        kv_pend_t *q = &s->pend[s->npend];
        q->buf = p->out.data;
        q->dest = r;
        int tag = p->out_ctrl ? KV_TAG_CTRL : KV_TAG_DATA;
        int e =
            MPI_Isend(q->buf, (int)p->out.len, MPI_BYTE, r, tag, s->kv->comm, &s->preq[s->npend]);
        p->out = (loom_buf_t){0};
        if (e != MPI_SUCCESS) {
            free(q->buf);
            if (loom_mpi_is_failure(e)) {
                note_dead(s);
                continue;
            }
            return loom_error_mpi(s->ctx, e, "MPI_Isend", __FILE__, __LINE__);
        }
        p->inflight++;
        s->npend++;
    }
    if (!s->npend) return LOOM_OK;
    /* completed sends give their buffers back (one progress call for all of them) */
    int outcount = 0;
    int e = MPI_Testsome((int)s->npend, s->preq, &outcount, s->pidx, MPI_STATUSES_IGNORE);
    if (e != MPI_SUCCESS) {
        /* some send failed (MPI_ERR_IN_STATUS, or a failure class): test them one by one;
         * sends to the dead complete in error and are let go, anything else is an error */
        note_dead(s);
        outcount = 0;
        for (size_t i = 0; i < s->npend; i++) {
            int done = 0, te = MPI_Test(&s->preq[i], &done, MPI_STATUS_IGNORE);
            int dead = s->peer[s->pend[i].dest].state == PEER_DEAD;
            if (te != MPI_SUCCESS && !loom_mpi_is_failure(te) && !dead)
                return loom_error_mpi(s->ctx, te, "MPI_Test", __FILE__, __LINE__);
            if (te != MPI_SUCCESS) {
                note_dead(s);
                done = 1;
            }
            if (!done && dead) {
                /* a send to the dead that MPI still holds: let it go, keep its buffer */
                MPI_Request_free(&s->preq[i]);
                s->pend[i].buf = malloc(1); /* freed below in its place */
                done = 1;
            }
            if (done) s->pidx[outcount++] = (int)i;
        }
    }
    if (outcount == MPI_UNDEFINED || outcount <= 0) return LOOM_OK;
    for (int k = 0; k < outcount; k++) {
        size_t i = (size_t)s->pidx[k];
        free(s->pend[i].buf);
        s->pend[i].buf = NULL;
        s->peer[s->pend[i].dest].inflight--;
    }
    size_t keep = 0;
    for (size_t i = 0; i < s->npend; i++) {
        if (!s->pend[i].buf) continue;
        s->pend[keep] = s->pend[i];
        s->preq[keep++] = s->preq[i];
    }
    s->npend = keep;
    return LOOM_OK;
}

/* Drop what is batched for ranks a drill cuts off (as if the network lost it). */
static void drop_blocked(kv_srv_t *s)
{
    if (!s->partitioned) return;
    for (int r = 0; r < s->kv->size; r++)
        if (blocked(s, r) && !s->peer[r].out_ctrl) s->peer[r].out.len = 0;
}

/* Control messages (start, stop, drills) go unbatched and are never dropped by a drill. */
loom_status_t kv_ctrl_send(kv_srv_t *s, int dest, int type, uint64_t id, const void *body,
                           size_t len)
{
    if (dest == s->kv->rank || s->peer[dest].state == PEER_DEAD) return LOOM_OK;
    /* flush what is batched first so that order holds, then send this one alone; what is
     * batched may acknowledge writes, so the log records go first, as at the end of a turn */
    if (s->kv->me >= 0)
        LOOM_TRY(s->kv->h.fsync == LOOM_KV_FSYNC_ALWAYS ? kv_holder_sync(&s->kv->h)
                                                        : kv_holder_flush(&s->kv->h));
    drop_blocked(s);
    LOOM_TRY(flush_sends(s));
    s->peer[dest].out_ctrl = 1;
    loom_buf_t *b = kv_msg_begin(s, dest, type, id, len);
    if (!b) return LOOM_ERROR(s->ctx, LOOM_ERR_NOMEM, "out of memory");
    if (len) memcpy(b->data + b->len, body, len);
    b->len += len;
    kv_msg_end(s, dest);
    loom_status_t st = flush_sends(s);
    s->peer[dest].out_ctrl = 0;
    return st;
}

static loom_status_t handle_frames(kv_srv_t *s, int src, int ctrl, const unsigned char *p,
                                   const unsigned char *end)
{
    while (end - p >= 5) {
        uint32_t len;
        memcpy(&len, p, 4);
        if (len < 6 || len > (size_t)(end - p)) break;
        const unsigned char *q = p + 5, *fend = p + len;
        uint64_t id;
        int type = p[4];
        if (!(q = loom_get_varint(q, fend, &id))) break;
        LOOM_TRY(ctrl ? kv_srv_ctrl(s, src, type, id, q, fend)
                      : kv_srv_data(s, src, type, id, q, fend));
        p += len;
    }
    return LOOM_OK;
}

/* Receive what has arrived (a bounded number of messages per turn). */
static loom_status_t progress_mpi(kv_srv_t *s)
{
    for (int k = 0; k < 256; k++) {
        int flag = 0;
        MPI_Status stt;
        int e = MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, s->kv->comm, &flag, &stt);
        if (e != MPI_SUCCESS) {
            if (!loom_mpi_is_failure(e))
                return loom_error_mpi(s->ctx, e, "MPI_Iprobe", __FILE__, __LINE__);
            note_dead(s);
            continue;
        }
        if (!flag) return LOOM_OK;
        int count = 0;
        MPI_Get_count(&stt, MPI_BYTE, &count);
        unsigned char *buf = malloc(count ? (size_t)count : 1);
        if (!buf)
            return LOOM_ERROR(s->ctx, LOOM_ERR_NOMEM, "out of memory receiving %d bytes", count);
        e = MPI_Recv(buf, count, MPI_BYTE, stt.MPI_SOURCE, stt.MPI_TAG, s->kv->comm,
                     MPI_STATUS_IGNORE);
        if (e != MPI_SUCCESS) {
            free(buf);
            if (!loom_mpi_is_failure(e))
                return loom_error_mpi(s->ctx, e, "MPI_Recv", __FILE__, __LINE__);
            note_dead(s);
            continue;
        }
        s->work = 1;
        int ctrl = stt.MPI_TAG == KV_TAG_CTRL;
        loom_status_t st = LOOM_OK;
        if (ctrl || !blocked(s, stt.MPI_SOURCE)) {
            if (!ctrl) mark_up(s, stt.MPI_SOURCE);
            st = handle_frames(s, stt.MPI_SOURCE, ctrl, buf, buf + count);
        }
        free(buf);
        LOOM_TRY(st);
    }
    return LOOM_OK;
}

/* ------------------------------------------------------------------ timers */

static loom_status_t probe_down(kv_srv_t *s, double now)
{
    for (int h = 0; h < s->nh; h++) {
        int r = rank_of(s, h);
        kv_peer_t *p = &s->peer[r];
        if (h == s->kv->me || p->state != PEER_DOWN || now < p->next_probe) continue;
        p->next_probe = now + 0.5;
        if (!kv_msg_begin(s, r, M_PING, 0, 0))
            return LOOM_ERROR(s->ctx, LOOM_ERR_NOMEM, "out of memory");
        kv_msg_end(s, r);
    }
    return LOOM_OK;
}

static loom_status_t timers(kv_srv_t *s)
{
    double now = kv_srv_now();
    if (now >= s->next_deadlines) {
        s->next_deadlines = now + 0.005;
        LOOM_TRY(kv_srv_deadlines(s, now));
    }
    LOOM_TRY(probe_down(s, now));
    if (now >= s->next_handoff) {
        s->next_handoff = now + 0.2;
        LOOM_TRY(kv_srv_handoff(s, now));
    }
    if (s->o.anti_entropy_ms > 0 && now >= s->next_ae) {
        s->next_ae = now + s->o.anti_entropy_ms / 1000.0;
        LOOM_TRY(kv_srv_anti_entropy(s));
    }
    kv_holder_t *h = &s->kv->h;
    if (h->fsync == LOOM_KV_FSYNC_EVERYSEC && h->dirty && now - h->synced_at >= 1.0)
        LOOM_TRY(kv_holder_sync_later(h));
    if (now >= s->next_compact) {
        s->next_compact = now + 5.0;
        LOOM_TRY(kv_holder_compact(h, 0));
    }
    return LOOM_OK;
}

/* ------------------------------------------------------------------ starting and stopping */

static loom_status_t listen_on(kv_srv_t *s, char *why, size_t whylen)
{
    int port = s->o.port + s->kv->me;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, s->o.bind, &a.sin_addr) != 1) {
        snprintf(why, whylen, "--bind %s: not an IPv4 address", s->o.bind);
        return LOOM_ERR_USAGE;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
        bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 512)) {
        snprintf(why, whylen, "%s:%d: %s%s", s->o.bind, port, strerror(errno),
                 errno == EADDRINUSE ? " (another service has it; choose another --port)" : "");
        if (fd >= 0) close(fd);
        return LOOM_ERR_IO;
    }
    s->lfd = fd;
    return LOOM_OK;
}

static void print_ready(kv_srv_t *s, const int *ports, const long long *pids)
{
    FILE *out = s->o.out;
    for (int w = 0; w < s->nh; w++)
        fprintf(out, "kv: worker %d rank %d pid %lld listening on %s:%d\n", w + 1,
                loom_start_rank(s->ctx, rank_of(s, w)), pids[w], s->o.bind, ports[w]);
    fprintf(out, "kv: ready: %d holder%s, N=%d R=%d W=%d, store %s\n", s->nh, s->nh == 1 ? "" : "s",
            s->kv->ring.n, s->kv->r, s->kv->w, s->kv->dir);
    fflush(out);
}

/* Start-up: every worker binds its gateway and reports; rank 0 prints the addresses or the
 * first failure. Collective; the status is agreed. */
static loom_status_t start(kv_srv_t *s)
{
    loom_kv_t *kv = s->kv;
    char why[512] = "";
    int code = LOOM_OK;
    if (kv->me >= 0) code = listen_on(s, why, sizeof why);
    struct {
        int code, port;
        long long pid;
        char why[512];
    } mine = {code, s->o.port + kv->me, (long long)getpid(), ""}, *all = NULL;
    snprintf(mine.why, sizeof mine.why, "%s", why);
    if (kv->rank == 0) all = calloc((size_t)kv->size, sizeof *all);
    loom_status_t st = LOOM_OK;
    LOOM_MPI_KEEP(s->ctx, st,
                  MPI_Gather(&mine, (int)sizeof mine, MPI_BYTE, all, (int)sizeof mine, MPI_BYTE, 0,
                             kv->comm));
    if (st == LOOM_OK && kv->rank == 0) {
        int *ports = malloc((size_t)s->nh * sizeof *ports);
        long long *pids = malloc((size_t)s->nh * sizeof *pids);
        for (int w = 0; ports && pids && w < s->nh; w++) {
            int r = rank_of(s, w);
            if (all[r].code != LOOM_OK && st == LOOM_OK)
                st = LOOM_ERROR(s->ctx, (loom_status_t)all[r].code, "kv serve: worker %d: %s",
                                w + 1, all[r].why);
            ports[w] = all[r].port;
            pids[w] = all[r].pid;
        }
        if (!ports || !pids) st = LOOM_ERROR(s->ctx, LOOM_ERR_NOMEM, "out of memory");
        if (st == LOOM_OK)
            st = loom_agree(s->ctx, kv->comm, st);
        else
            (void)loom_agree(s->ctx, kv->comm, st);
        /* "ready" only once every worker has left the collectives and says so: a client
         * may stop one (SIGSTOP) as soon as it reads it */
        for (int r = 1; st == LOOM_OK && r < kv->size; r++) {
            int one = 0;
            MPI_Request req;
            LOOM_MPI_KEEP(s->ctx, st, MPI_Irecv(&one, 1, MPI_INT, r, KV_TAG_START, kv->comm, &req));
            if (st == LOOM_OK) st = loom_wait(s->ctx, &req, MPI_STATUS_IGNORE);
        }
        if (st == LOOM_OK) print_ready(s, ports, pids);
        free(ports);
        free(pids);
        free(all);
        return st;
    }
    free(all);
    st = loom_agree(s->ctx, kv->comm, st);
    if (st == LOOM_OK && kv->rank != 0) {
        int one = 1;
        LOOM_MPI_KEEP(s->ctx, st, MPI_Send(&one, 1, MPI_INT, 0, KV_TAG_START, kv->comm));
    }
    return st;
}

/* Ask for the service to stop: rank 0 orders it, a worker asks rank 0. */
loom_status_t kv_srv_request_stop(kv_srv_t *s)
{
    if (s->stop_asked) return LOOM_OK;
    s->stop_asked = 1;
    if (s->kv->rank == 0) return kv_srv_begin_stop(s);
    return kv_ctrl_send(s, 0, C_STOPREQ, 0, NULL, 0);
}

loom_status_t kv_srv_begin_stop(kv_srv_t *s)
{
    if (s->stopping) return LOOM_OK;
    s->stopping = 1;
    s->stop_at = kv_srv_now();
    if (s->kv->rank == 0) {
        for (int r = 1; r < s->kv->size; r++)
            LOOM_TRY(kv_ctrl_send(s, r, C_STOP, 0, NULL, 0));
    }
    if (s->kv->me >= 0) {
        kv_srv_close_clients(s);
        LOOM_TRY(kv_holder_sync(&s->kv->h));
        if (s->kv->rank != 0) LOOM_TRY(kv_ctrl_send(s, 0, C_STOPPED, 0, NULL, 0));
    }
    s->stopped_seen++; /* this rank */
    return LOOM_OK;
}

/* Rank 0: every live rank has synced and said so (or is dead). */
static int all_stopped(kv_srv_t *s)
{
    int live = 0;
    for (int r = 0; r < s->kv->size; r++)
        live += s->peer[r].state != PEER_DEAD;
    return s->stopped_seen >= live;
}

static void wait_idle(kv_srv_t *s)
{
    /* nothing to do: wait for a socket or a short while (MPI has no descriptor to wait on) */
    int busy = s->work || kv_srv_now() - s->last_work < 0.002;
    if (busy) {
        kv_srv_poll(s, 0);
        if (!s->work) sched_yield();
    } else {
        kv_srv_poll(s, s->kv->me >= 0 ? 1 : 10);
    }
}

loom_status_t loom_kv_serve(loom_kv_t *kv, const loom_kv_serve_opts_t *opts)
{
    loom_ctx_t *ctx = kv->ctx;
    kv_srv_t *s = calloc(1, sizeof *s);
    if (!s) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    s->kv = kv;
    s->ctx = ctx;
    s->nh = kv->ring.nholders;
    s->lfd = -1;
    s->o = opts ? *opts : (loom_kv_serve_opts_t){0};
    if (!s->o.bind) s->o.bind = "127.0.0.1";
    if (!s->o.port) s->o.port = 6390;
    if (!s->o.timeout_ms) s->o.timeout_ms = 500;
    if (!s->o.anti_entropy_ms) s->o.anti_entropy_ms = 2000;
    if (!s->o.out) s->o.out = stdout;
    s->peer = calloc((size_t)kv->size, sizeof *s->peer);
    s->group = calloc((size_t)kv->size, sizeof *s->group);
    loom_status_t st = LOOM_OK;
    if (!s->peer || !s->group)
        st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    else if (s->o.port < 1 || s->o.port + s->nh - 1 > 65535)
        st = LOOM_ERROR(ctx, LOOM_ERR_USAGE, "--port %d: the workers need ports %d..%d (1..65535)",
                        s->o.port, s->o.port, s->o.port + s->nh - 1);
    else if (s->o.timeout_ms < 1)
        st = LOOM_ERROR(ctx, LOOM_ERR_USAGE, "--timeout-ms %d: must be positive", s->o.timeout_ms);
    st = loom_agree(ctx, kv->comm, st);
    if (st == LOOM_OK) st = start(s);
    int was_armed = loom_stop_armed(ctx);
    if (!was_armed) loom_stop_arm(ctx, 1);
    double now = kv_srv_now();
    s->next_handoff = now + 0.2;
    s->next_ae = now + s->o.anti_entropy_ms / 1000.0 * (1.0 + 0.1 * (kv->me + 1));
    s->next_compact = now + 5.0;
    s->last_work = now;
    while (st == LOOM_OK) {
        s->work = 0;
        if (!s->stopping && (loom_stop_signal(ctx) || loom_launcher_gone(ctx)))
            st = kv_srv_request_stop(s);
        if (st != LOOM_OK) break;
        if (kv->me >= 0 && !s->stopping) st = kv_srv_clients(s);
        if (st == LOOM_OK) st = progress_mpi(s);
        if (st == LOOM_OK && kv->me >= 0 && !s->stopping) st = timers(s);
        /* what this turn changed is written (and with --fsync always synced: a group commit)
         * before any acknowledgement leaves */
        if (st == LOOM_OK && kv->me >= 0)
            st = kv->h.fsync == LOOM_KV_FSYNC_ALWAYS ? kv_holder_sync(&kv->h)
                                                     : kv_holder_flush(&kv->h);
        drop_blocked(s);
        if (st == LOOM_OK) st = flush_sends(s);
        if (st == LOOM_OK && kv->me >= 0) kv_srv_flush_clients(s);
        if (st != LOOM_OK) break;
        if (s->stopping) {
            if (kv->rank == 0 && all_stopped(s)) {
                for (int r = 1; r < kv->size; r++)
                    st = kv_ctrl_send(s, r, C_FINAL, 0, NULL, 0);
                break;
            }
            if (kv->rank != 0 && s->final) break;
            if (kv_srv_now() - s->stop_at > 30) break; /* a rank that never answers */
        }
        if (s->work) s->last_work = kv_srv_now();
        wait_idle(s);
    }
    if (st != LOOM_OK && kv->rank != 0 && !s->stopping) {
        /* this worker cannot go on: the whole service stops (best effort) */
        kv_ctrl_send(s, 0, C_STOPREQ, 0, NULL, 0);
        kv_ctrl_send(s, 0, C_STOPPED, 0, NULL, 0);
    }
    /* give outstanding sends a moment (store messages that still arrive are not handled),
     * then cancel what nobody will receive */
    s->stopping = 1;
    double until = kv_srv_now() + 1.0;
    while (s->npend && kv_srv_now() < until) {
        progress_mpi(s);
        flush_sends(s);
    }
    for (size_t i = 0; i < s->npend; i++) {
        int done = 0;
        if (s->preq[i] != MPI_REQUEST_NULL) {
            MPI_Cancel(&s->preq[i]);
            MPI_Test(&s->preq[i], &done, MPI_STATUS_IGNORE);
            if (!done) MPI_Request_free(&s->preq[i]);
        }
        /* a send that may still read its buffer keeps it (the process ends soon) */
        if (done || s->preq[i] == MPI_REQUEST_NULL) free(s->pend[i].buf);
    }
    s->npend = 0;
    if (!was_armed) loom_stop_arm(ctx, 0);
    if (kv->me >= 0 && st == LOOM_OK) st = kv_holder_sync(&kv->h);
    if (loom_ft_enabled(ctx)) {
        /* every rank takes part, whatever its status: workers that died during the service
         * are dropped and the job goes on (to its summary) over the survivors, as every
         * engine does after a recovery */
        int failed = s->deaths || loom_members_failed(ctx);
        int ok = st == LOOM_OK && !failed;
        loom_status_t ast = loom_members_agree(ctx, &ok);
        if (ast == LOOM_OK && !ok && failed) {
            loom_recovery_t rec;
            ast = loom_members_recover(ctx, &rec);
            loom_recovery_free(&rec);
            if (ast == LOOM_OK) loom_members_resumed(ctx);
        }
        if (st == LOOM_OK) st = ast;
    }
    if (kv->rank == 0 && st == LOOM_OK && s->o.out) {
        fprintf(s->o.out, "kv: stopped%s\n",
                s->deaths ? " (with workers lost; their keys are on their other replicas)" : "");
        fflush(s->o.out);
    }
    kv_srv_free(s);
    return st;
}
