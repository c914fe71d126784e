/* The map phase: rank 0 hands tasks out dynamically, handles lost workers and backup tasks; workers
 * map. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <omp.h>

#include "mr/mr_internal.h"

enum { TAG_REQ = 7301, TAG_CTRL = 7302 };
/* worker -> master */
enum { W_READY = 1, W_DONE, W_ABORTED, W_FAILED };
/* master -> worker */
enum { M_TASK = 1, M_END, M_CANCEL };
#define MSG_LEN 8

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

/* What one rank maps with: the task's stage, one more per extra OpenMP thread
 * when the job's map is thread-safe, and the input buffer. */
typedef struct mapper {
    mr_store_t stage;
    mr_store_t *xs;
    int nx;
    loom_buf_t in;
} mapper_t;

static loom_status_t mapper_init(mr_engine_t *eng, mapper_t *mp)
{
    memset(mp, 0, sizeof *mp);
    int threads = loom_threads(eng->ctx);
    int nx = eng->job->map_thread_safe && threads > 1 ? threads - 1 : 0;
    size_t budget = eng->budget / 4 / (size_t)(nx + 1);
    mr_store_init(&mp->stage, eng, budget);
    if (nx) {
        LOOM_ALLOC(eng->ctx, mp->xs, nx, "map stages");
        for (int i = 0; i < nx; i++)
            mr_store_init(&mp->xs[i], eng, budget);
        mp->nx = nx;
    }
    return LOOM_OK;
}

static void mapper_free(mapper_t *mp)
{
    for (int i = 0; i < mp->nx; i++)
        mr_store_free(&mp->xs[i]);
    free(mp->xs);
    mr_store_free(&mp->stage);
    loom_buf_free(&mp->in);
}

/* The start of the line holding byte `at` or the next one: pieces of a task
 * for threads begin just after a '\n'. */
static size_t piece_start(const char *d, size_t len, size_t at)
{
    if (at == 0) return 0;
    const char *nl = memchr(d + at - 1, '\n', len - (at - 1));
    return nl ? (size_t)(nl - d) + 1 : len;
}

/* Run task t into mp->stage (emptied first), on several threads when allowed:
 * each maps a line-aligned piece into its own stage, merged afterwards. */
static loom_status_t run_task(mr_engine_t *eng, mapper_t *mp, int64_t t, int64_t *records,
                              int64_t *pairs)
{
    mr_store_discard(&mp->stage);
    const mr_task_t *tk = &eng->tasks[t];
    if (mp->nx == 0 && eng->job->map_blocks && mr_input_kind(eng->files[tk->file]) == MR_IN_TEXT) {
        loom_mr_emit_t em = {.kind = MR_EMIT_MAP, .eng = eng, .store = &mp->stage};
        loom_status_t st = mr_map_text_blocks(eng, t, &em, &mp->in, records);
        *pairs = em.count;
        return st;
    }
    LOOM_TRY(mr_read_task(eng, t, &mp->in));
    const char *d = (const char *)mp->in.data;
    int nt = mp->nx + 1;
    /* element inputs (HDF5, gen:) map on one thread: their offsets count elements */
    if (nt == 1 || tk->len < ((size_t)1 << 18) || mr_input_elements(eng->files[tk->file])) {
        loom_mr_emit_t em = {.kind = MR_EMIT_MAP, .eng = eng, .store = &mp->stage};
        loom_status_t st = mr_map_records(eng, t, d, mp->in.len, tk->off, tk->line0, &em, records);
        *pairs = em.count;
        return st;
    }
    size_t cut[65];
    uint64_t line[64];
    if (nt > 64) nt = 64;
    for (int i = 0; i <= nt; i++)
        cut[i] = piece_start(d, tk->len, tk->len * (size_t)i / (size_t)nt);
    line[0] = tk->line0;
    for (int i = 1; i < nt; i++) {
        uint64_t nl = 0;
        if (tk->line0)
            for (const char *p = d + cut[i - 1], *e = d + cut[i];
                 (p = memchr(p, '\n', (size_t)(e - p))); p++)
                nl++;
        line[i] = tk->line0 ? line[i - 1] + nl : 0;
    }
    loom_status_t st = LOOM_OK;
    int64_t recs = 0, prs = 0;
#pragma omp parallel num_threads(nt) reduction(+ : recs, prs)
    {
        /* pieces, not threads, own the stages: fewer threads than asked still cover all */
        for (int i = omp_get_thread_num(); i < nt; i += omp_get_num_threads()) {
            mr_store_t *s = i == 0 ? &mp->stage : &mp->xs[i - 1];
            if (i > 0) mr_store_discard(s);
            loom_mr_emit_t em = {.kind = MR_EMIT_MAP, .eng = eng, .store = s};
            int64_t r = 0;
            loom_status_t ts = mr_map_records(eng, t, d + cut[i], cut[i + 1] - cut[i],
                                              tk->off + cut[i], line[i], &em, &r);
            recs += r;
            prs += em.count;
            if (ts != LOOM_OK) {
#pragma omp critical(loom_mr_map_status)
                if (st == LOOM_OK) st = ts;
            }
        }
    }
    for (int i = 0; i < mp->nx && st == LOOM_OK; i++)
        st = mr_store_merge(&mp->stage, &mp->xs[i]);
    for (int i = 0; i < mp->nx; i++)
        mr_store_discard(&mp->xs[i]);
    *records = recs;
    *pairs = prs;
    return st;
}

static void progress(mr_engine_t *eng, int64_t done, double t0, int final)
{
    double el = loom_wtime() - t0;
    double bytes = eng->ntasks ? (double)eng->total_bytes * (double)done / (double)eng->ntasks : 0;
    loom_log(eng->ctx, LOOM_LOG_INFO, "%s: map %lld/%lld tasks, %.1f MB in %.1f s, %.1f MB/s%s",
             eng->job->name ? eng->job->name : "mr", (long long)done, (long long)eng->ntasks,
             bytes / 1e6, el, el > 0 ? bytes / 1e6 / el : 0.0, final ? " (done)" : "");
}

/* ------------------------------------------------------------------ one rank: master is the worker
 */

static loom_status_t map_local(mr_engine_t *eng, mr_store_t *acc)
{
    loom_ctx_t *ctx = eng->ctx;
    mapper_t mp;
    LOOM_TRY(mapper_init(eng, &mp));
    loom_status_t st = LOOM_OK;
    double t0 = loom_wtime(), last = t0;
    loom_fault_point(ctx, &eng->fault, LOOM_PHASE_MAP, 0);
    for (int64_t t = 0; t < eng->ntasks && st == LOOM_OK; t++) {
        if (eng->ts[t].state == 2) continue;
        int64_t recs = 0, pairs = 0;
        st = run_task(eng, &mp, t, &recs, &pairs);
        if (st == LOOM_OK && eng->fault.kind == LOOM_FAULT_SLOW) sleep_s(eng->fault.seconds);
        if (st == LOOM_OK) st = mr_store_merge(acc, &mp.stage);
        if (st == LOOM_OK) {
            eng->ts[t].state = 2;
            eng->ts[t].done_by = 0;
        }
        loom_fault_point(ctx, &eng->fault, LOOM_PHASE_MAP, ++eng->map_done);
        eng->counts.input_records += recs;
        eng->counts.map_pairs += pairs;
        if (loom_wtime() - last >= 1.0) {
            progress(eng, t + 1, t0, 0);
            last = loom_wtime();
        }
    }
    if (st == LOOM_OK) progress(eng, eng->ntasks, t0, 1);
    mapper_free(&mp);
    return st;
}

/* ------------------------------------------------------------------ worker */

static loom_status_t send_req(mr_engine_t *eng, int64_t kind, int64_t task, int64_t recs,
                              int64_t pairs)
{
    int64_t msg[MSG_LEN] = {kind, task, recs, pairs, 0, 0, 0, 0};
    LOOM_MPI(eng->ctx, MPI_Send(msg, MSG_LEN, MPI_INT64_T, 0, TAG_REQ, loom_comm(eng->ctx)));
    return LOOM_OK;
}

static loom_status_t recv_ctrl(mr_engine_t *eng, int64_t *msg)
{
    MPI_Request req;
    LOOM_MPI(eng->ctx,
             MPI_Irecv(msg, MSG_LEN, MPI_INT64_T, 0, TAG_CTRL, loom_comm(eng->ctx), &req));
    return loom_wait(eng->ctx, &req, MPI_STATUS_IGNORE);
}

/* Wait for END, ignoring stale cancels (the master's last word to this rank). */
static loom_status_t wait_end(mr_engine_t *eng)
{
    int64_t msg[MSG_LEN];
    do
        LOOM_TRY(recv_ctrl(eng, msg));
    while (msg[0] != M_END);
    return LOOM_OK;
}

/* The slow-worker fault: sleep, but give up as soon as the master cancels task t. */
static loom_status_t slow_sleep(mr_engine_t *eng, int64_t t, int *cancelled)
{
    double until = loom_wtime() + eng->fault.seconds;
    *cancelled = 0;
    while (loom_wtime() < until) {
        int flag;
        MPI_Status s;
        LOOM_MPI(eng->ctx, MPI_Iprobe(0, TAG_CTRL, loom_comm(eng->ctx), &flag, &s));
        if (flag) {
            int64_t msg[MSG_LEN];
            LOOM_MPI(eng->ctx, MPI_Recv(msg, MSG_LEN, MPI_INT64_T, 0, TAG_CTRL, loom_comm(eng->ctx),
                                        MPI_STATUS_IGNORE));
            if (msg[0] == M_CANCEL && msg[2] == t) {
                *cancelled = 1;
                return LOOM_OK;
            }
            continue;
        }
        sleep_s(0.01);
    }
    return LOOM_OK;
}

static loom_status_t map_worker(mr_engine_t *eng, mr_store_t *acc)
{
    loom_ctx_t *ctx = eng->ctx;
    mapper_t mp;
    LOOM_TRY(mapper_init(eng, &mp));
    mr_store_t *stage = &mp.stage;
    loom_status_t st = LOOM_OK;
    int64_t recs = 0, pairs = 0;
    int64_t pending_recs = 0, pending_pairs = 0, staged = -1;
    int slow =
        loom_fault_here(ctx, &eng->fault, LOOM_PHASE_MAP) && eng->fault.kind == LOOM_FAULT_SLOW;
    loom_fault_point(ctx, &eng->fault, LOOM_PHASE_MAP, 0);
    LOOM_TRY_GOTO(st, send_req(eng, W_READY, -1, 0, 0), out);
    for (;;) {
        int64_t msg[MSG_LEN];
        LOOM_TRY_GOTO(st, recv_ctrl(eng, msg), out);
        if (msg[0] == M_CANCEL) continue; /* crossed our DONE: the reply says discard */
        if (msg[1] == 1) {
            LOOM_TRY_GOTO(st, mr_store_merge(acc, stage), out);
            eng->committed[eng->ncommitted++] = staged;
            eng->counts.input_records += pending_recs;
            eng->counts.map_pairs += pending_pairs;
        } else if (msg[1] == 0) {
            mr_store_discard(stage);
        }
        pending_recs = pending_pairs = 0;
        if (msg[0] == M_END) break;
        int64_t t = msg[2];
        st = run_task(eng, &mp, t, &recs, &pairs);
        if (st != LOOM_OK) {
            /* our message travels to rank 0 through loom_agree after the phase */
            mr_store_discard(stage);
            loom_status_t s2 = send_req(eng, W_FAILED, t, 0, 0);
            if (s2 == LOOM_OK) s2 = wait_end(eng);
            goto out;
        }
        if (slow) {
            int cancelled;
            LOOM_TRY_GOTO(st, slow_sleep(eng, t, &cancelled), out);
            if (cancelled) {
                mr_store_discard(stage);
                LOOM_TRY_GOTO(st, send_req(eng, W_ABORTED, t, 0, 0), out);
                continue;
            }
        }
        /* kill:R@map:N dies here, its N-th task mapped but not reported */
        loom_fault_point(ctx, &eng->fault, LOOM_PHASE_MAP, ++eng->map_done);
        staged = t;
        pending_recs = recs;
        pending_pairs = pairs;
        LOOM_TRY_GOTO(st, send_req(eng, W_DONE, t, recs, pairs), out);
    }
out:
    mapper_free(&mp);
    return st;
}

/* ------------------------------------------------------------------ master */

typedef struct mworker {
    int alive, parked, ended;
    int pending_commit; /* -1: nothing to say; 0/1 for the worker's last DONE */
} mworker_t;

typedef struct master {
    mr_engine_t *eng;
    mr_taskstate_t *t;
    mworker_t *w;
    int64_t *requeue;
    int64_t nrequeue, cursor, ndone;
    int live;
    int failed;
    double sum_task_s;
    int64_t ntimed;
} master_t;

static void lose_worker(master_t *m, int rank);
static loom_status_t assign_all(master_t *m);

/* A control message to a worker. A worker found dead here (ULFM) is lost:
 * that is handled, not an error. */
static loom_status_t send_ctrl(master_t *m, int rank, int64_t kind, int64_t task)
{
    mr_engine_t *eng = m->eng;
    if (!m->w[rank].alive) return LOOM_OK;
    int64_t msg[MSG_LEN] = {kind, -1, task, 0, 0, 0, 0, 0};
    if (kind != M_CANCEL) {
        msg[1] = m->w[rank].pending_commit;
        m->w[rank].pending_commit = -1;
    }
    if (kind == M_TASK) {
        const mr_task_t *tk = &eng->tasks[task];
        msg[3] = tk->file;
        msg[4] = (int64_t)tk->off;
        msg[5] = (int64_t)tk->len;
    }
    int e = MPI_Send(msg, MSG_LEN, MPI_INT64_T, rank, TAG_CTRL, loom_comm(eng->ctx));
    if (e != MPI_SUCCESS && loom_mpi_is_failure(e)) {
        loom_members_note_failure(eng->ctx);
        lose_worker(m, rank);
        return LOOM_OK;
    }
    if (e != MPI_SUCCESS) return loom_error_mpi(eng->ctx, e, "MPI_Send", __FILE__, __LINE__);
    if (kind == M_END) m->w[rank].ended = 1;
    return LOOM_OK;
}

static void add_copy(master_t *m, int64_t t, int rank, int backup)
{
    mr_taskstate_t *tk = &m->t[t];
    tk->copy_rank[tk->ncopies] = rank;
    tk->copy_backup[tk->ncopies] = backup;
    tk->ncopies++;
    if (tk->state == 0) {
        tk->state = 1;
        tk->start = loom_wtime();
    }
}

/* Remove rank's copy of t; returns whether it was a backup. */
static int drop_copy(master_t *m, int64_t t, int rank)
{
    mr_taskstate_t *tk = &m->t[t];
    int backup = 0;
    for (int i = 0; i < tk->ncopies; i++)
        if (tk->copy_rank[i] == rank) {
            backup = tk->copy_backup[i];
            tk->copy_rank[i] = tk->copy_rank[tk->ncopies - 1];
            tk->copy_backup[i] = tk->copy_backup[tk->ncopies - 1];
            tk->ncopies--;
            break;
        }
    if (tk->state == 1 && tk->ncopies == 0) {
        tk->state = 0;
        m->requeue[m->nrequeue++] = t;
    }
    return backup;
}

static int64_t next_idle(master_t *m)
{
    while (m->nrequeue > 0) {
        int64_t t = m->requeue[--m->nrequeue];
        if (m->t[t].state == 0) return t;
    }
    while (m->cursor < m->eng->ntasks) {
        int64_t t = m->cursor++;
        if (m->t[t].state == 0) return t;
    }
    return -1;
}

/* The next idle task for `rank`: with store inputs, one whose chunk it keeps if there is
 * one (as the MapReduce paper schedules near the data), else one it can read from
 * elsewhere; -1 when none is left that it can run. */
static int64_t next_idle_for(master_t *m, int rank)
{
    mr_engine_t *eng = m->eng;
    if (!eng->nlines) return next_idle(m);
    while (m->cursor < eng->ntasks && m->t[m->cursor].state != 0)
        m->cursor++;
    for (int pass = 0; pass < 2; pass++) {
        for (int64_t i = m->nrequeue - 1; i >= 0; i--) {
            int64_t t = m->requeue[i];
            if (m->t[t].state != 0) continue;
            if (pass == 0 ? !mr_task_local(eng, t, rank) : !mr_task_runnable(eng, t, rank))
                continue;
            m->requeue[i] = m->requeue[--m->nrequeue];
            return t;
        }
        for (int64_t t = m->cursor; t < eng->ntasks; t++) {
            if (m->t[t].state != 0) continue;
            if (pass == 0 ? mr_task_local(eng, t, rank) : mr_task_runnable(eng, t, rank)) return t;
        }
    }
    return -1;
}

/* A running task worth a backup copy on `rank`: near the end (nothing idle), running
 * alone for well over the typical task time. The longest-running one wins. */
static int64_t backup_candidate(master_t *m, int rank)
{
    double now = loom_wtime();
    double mean = m->ntimed ? m->sum_task_s / (double)m->ntimed : 0.0;
    double threshold = 3.0 * mean > 1.0 ? 3.0 * mean : 1.0;
    int64_t best = -1;
    double best_el = 0;
    for (int64_t t = 0; t < m->eng->ntasks; t++) {
        mr_taskstate_t *tk = &m->t[t];
        if (tk->state != 1 || tk->ncopies != 1 || tk->copy_rank[0] == rank) continue;
        if (!mr_task_runnable(m->eng, t, rank)) continue;
        double el = now - tk->start;
        if (el >= threshold && el > best_el) {
            best = t;
            best_el = el;
        }
    }
    return best;
}

/* Nothing runs and no live worker can run a task that is left. */
static int stuck(const master_t *m)
{
    mr_engine_t *eng = m->eng;
    for (int64_t t = 0; t < eng->ntasks; t++)
        if (m->t[t].state == 1) return 0;
    for (int64_t t = 0; t < eng->ntasks; t++)
        for (int r = 1; m->t[t].state == 0 && r < loom_size(eng->ctx); r++)
            if (m->w[r].alive && mr_task_runnable(eng, t, r)) return 0;
    return m->ndone < eng->ntasks;
}

static loom_status_t try_assign(master_t *m, int rank)
{
    mworker_t *w = &m->w[rank];
    if (!w->parked || !w->alive) return LOOM_OK;
    if (m->failed || m->ndone == m->eng->ntasks) {
        w->parked = 0;
        return send_ctrl(m, rank, M_END, -1);
    }
    int64_t t = next_idle_for(m, rank);
    int backup = 0;
    if (t < 0) {
        t = backup_candidate(m, rank);
        backup = 1;
    }
    if (t < 0 && m->eng->nlines && stuck(m)) {
        /* store inputs on node-local disks: no live worker holds what is left */
        m->failed = 1;
        LOOM_ERROR(m->eng->ctx, LOOM_ERR_IO,
                   "%s: no live worker holds a replica of the chunks left to map, and the store "
                   "root is not shared; rerun with those holders (loom fs fsck names them)",
                   m->eng->job->name ? m->eng->job->name : "mr");
        return assign_all(m);
    }
    if (t < 0) return LOOM_OK; /* stays parked until something changes */
    w->parked = 0;
    add_copy(m, t, rank, backup);
    if (backup) m->eng->backups_run++;
    return send_ctrl(m, rank, M_TASK, t);
}

static loom_status_t assign_all(master_t *m)
{
    for (int r = 1; r < loom_size(m->eng->ctx); r++)
        LOOM_TRY(try_assign(m, r));
    return LOOM_OK;
}

/* A worker died: its map output is gone with it, so every task it did or was
 * doing runs again on the others, as in the MapReduce paper. */
static void lose_worker(master_t *m, int rank)
{
    mr_engine_t *eng = m->eng;
    loom_ctx_t *ctx = eng->ctx;
    if (!m->w[rank].alive) return;
    m->w[rank].alive = 0;
    m->w[rank].ended = 1;
    m->live--; /* eng->lost_workers counts it when the survivors recover (mr_run.c) */
    int start = loom_start_rank(ctx, rank);
    int64_t again = 0;
    for (int64_t t = 0; t < eng->ntasks; t++) {
        mr_taskstate_t *tk = &m->t[t];
        if (tk->state == 2 && tk->done_by == start) {
            tk->state = 0;
            m->ndone--;
            m->requeue[m->nrequeue++] = t;
            again++;
        } else if (tk->state == 1) {
            for (int i = 0; i < tk->ncopies; i++)
                if (tk->copy_rank[i] == rank) {
                    drop_copy(m, t, rank);
                    if (tk->state == 0) again++;
                    break;
                }
        }
    }
    eng->reexecuted += again;
    loom_log(ctx, LOOM_LOG_WARN,
             "%s: worker rank %d (%s) died in the map phase; re-executing its %lld map task%s",
             eng->job->name ? eng->job->name : "mr", start, loom_host_of(ctx, start),
             (long long)again, again == 1 ? "" : "s");
    if (m->live == 0 && !m->failed) {
        m->failed = 1;
        LOOM_ERROR(ctx, LOOM_ERR_LOST, "every worker died; no rank is left to run the map tasks");
    }
}

loom_status_t mr_map_reconcile(mr_engine_t *eng, int64_t *again)
{
    loom_ctx_t *ctx = eng->ctx;
    MPI_Comm comm = loom_comm(ctx);
    int size = loom_size(ctx), rank = loom_rank(ctx);
    *again = 0;
    int mine = loom_is_worker(ctx) && size > 1 ? (int)eng->ncommitted : 0;
    int *counts = NULL, *displs = NULL;
    int64_t *all = NULL;
    loom_status_t st = LOOM_OK;
    if (rank == 0) {
        counts = calloc((size_t)size, sizeof *counts);
        displs = calloc((size_t)size, sizeof *displs);
        if (!counts || !displs) st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    }
    st = loom_agree(ctx, comm, st);
    if (st == LOOM_OK)
        LOOM_MPI_KEEP(ctx, st, MPI_Gather(&mine, 1, MPI_INT, counts, 1, MPI_INT, 0, comm));
    int64_t total = 0;
    if (st == LOOM_OK && rank == 0) {
        for (int r = 0; r < size; r++) {
            displs[r] = (int)total;
            total += counts[r];
        }
        all = malloc((size_t)(total ? total : 1) * sizeof *all);
        if (!all) st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    }
    st = loom_agree(ctx, comm, st);
    if (st == LOOM_OK)
        LOOM_MPI_KEEP(ctx, st,
                      MPI_Gatherv(eng->committed, mine, MPI_INT64_T, all, counts, displs,
                                  MPI_INT64_T, 0, comm));
    if (st == LOOM_OK && rank == 0) {
        int64_t before = 0;
        for (int64_t t = 0; t < eng->ntasks; t++) {
            before += eng->ts[t].state == 2;
            eng->ts[t].state = 0;
            eng->ts[t].ncopies = 0;
        }
        int64_t after = 0;
        for (int r = 1; r < size; r++)
            for (int i = 0; i < counts[r]; i++) {
                int64_t t = all[displs[r] + i];
                if (t < 0 || t >= eng->ntasks || eng->ts[t].state == 2) continue;
                eng->ts[t].state = 2;
                eng->ts[t].done_by = loom_start_rank(ctx, r);
                after++;
            }
        *again = before > after ? before - after : 0;
        eng->reexecuted += *again;
    }
    free(counts);
    free(displs);
    free(all);
    return st;
}

static loom_status_t handle(master_t *m, int rank, const int64_t *msg)
{
    mr_engine_t *eng = m->eng;
    mworker_t *w = &m->w[rank];
    int64_t t = msg[1];
    if (!w->alive) return LOOM_OK; /* a message sent just before it died */
    switch (msg[0]) {
    case W_READY:
        w->parked = 1;
        return try_assign(m, rank);
    case W_DONE: {
        mr_taskstate_t *tk = &m->t[t];
        double el = loom_wtime() - tk->start;
        int backup = drop_copy(m, t, rank);
        if (tk->state != 2) {
            tk->state = 2;
            tk->done_by = loom_start_rank(eng->ctx, rank);
            m->ndone++;
            m->sum_task_s += el;
            m->ntimed++;
            w->pending_commit = 1;
            if (backup) eng->backups_won++;
            for (int i = 0; i < tk->ncopies; i++)
                LOOM_TRY(send_ctrl(m, tk->copy_rank[i], M_CANCEL, t));
        } else {
            w->pending_commit = 0;
        }
        w->parked = 1;
        if (m->ndone == eng->ntasks) return assign_all(m);
        return try_assign(m, rank);
    }
    case W_ABORTED:
        drop_copy(m, t, rank);
        w->parked = 1;
        return try_assign(m, rank);
    case W_FAILED:
        drop_copy(m, t, rank);
        m->failed = 1;
        w->pending_commit = 0;
        LOOM_TRY(send_ctrl(m, rank, M_END, -1));
        return assign_all(m);
    }
    return LOOM_ERROR(eng->ctx, LOOM_ERR_INTERNAL, "unknown message %lld from rank %d",
                      (long long)msg[0], rank);
}

static int all_ended(const master_t *m, int size)
{
    for (int r = 1; r < size; r++)
        if (!m->w[r].ended) return 0;
    return 1;
}

/* Workers MPI reports dead (ULFM): lose each. */
static void find_dead(master_t *m)
{
    loom_ctx_t *ctx = m->eng->ctx;
    int size = loom_size(ctx);
    int *dead = malloc((size_t)size * sizeof *dead);
    if (!dead) return;
    int n = loom_members_dead_ranks(ctx, dead, size);
    for (int i = 0; i < n; i++)
        if (dead[i] > 0 && dead[i] < size) lose_worker(m, dead[i]);
    free(dead);
}

static loom_status_t map_master(mr_engine_t *eng)
{
    loom_ctx_t *ctx = eng->ctx;
    int size = loom_size(ctx);
    master_t m = {.eng = eng, .t = eng->ts, .live = size - 1};
    loom_status_t st = LOOM_OK;
    m.w = calloc((size_t)size, sizeof *m.w);
    /* every task can be requeued once per loss, and losses are bounded by ranks */
    m.requeue = malloc((size_t)(eng->ntasks + 1) * (size_t)(size + 1) * sizeof *m.requeue);
    if (!m.w || !m.requeue) {
        st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory: task table");
        goto out;
    }
    for (int r = 1; r < size; r++)
        m.w[r] = (mworker_t){.alive = 1, .pending_commit = -1};
    for (int64_t t = 0; t < eng->ntasks; t++) {
        eng->ts[t].ncopies = 0;
        if (eng->ts[t].state == 1) eng->ts[t].state = 0;
        if (eng->ts[t].state == 2) m.ndone++;
    }
    double t0 = loom_wtime(), last = t0, last_shown = t0;
    /* the master's map:N is the moment N tasks are done */
    loom_fault_point(ctx, &eng->fault, LOOM_PHASE_MAP, m.ndone);
    while (!all_ended(&m, size)) {
        int64_t msg[MSG_LEN];
        MPI_Request req;
        MPI_Status s;
        LOOM_MPI(ctx, MPI_Irecv(msg, MSG_LEN, MPI_INT64_T, MPI_ANY_SOURCE, TAG_REQ, loom_comm(ctx),
                                &req));
        /* Poll with backoff (never spin): wake every 100 ms to consider backups. */
        int flag = 0, dead = 0;
        long ns = 1000;
        for (;;) {
            int e = MPI_Test(&req, &flag, &s);
            if (e != MPI_SUCCESS) {
                if (!loom_mpi_is_failure(e))
                    return loom_error_mpi(ctx, e, "MPI_Test", __FILE__, __LINE__);
                dead = 1;
                flag = 0;
                break;
            }
            if (flag) break;
            double now = loom_wtime();
            if (now - last >= 0.1) break;
            struct timespec ts = {0, ns};
            nanosleep(&ts, NULL);
            if (ns < 1000000) ns *= 2;
        }
        if (!flag) {
            /* a receive from any source is still pending after a failure:
             * take it back and post it again once the dead are handled */
            int e = MPI_SUCCESS, cancelled = 1;
            /* a receive that completed in error is freed already */
            if (req != MPI_REQUEST_NULL) {
                e = MPI_Cancel(&req);
                if (e == MPI_SUCCESS) e = MPI_Wait(&req, &s);
                if (e == MPI_SUCCESS) e = MPI_Test_cancelled(&s, &cancelled);
            }
            /* a receive that fails now only repeats what find_dead handles */
            if (e != MPI_SUCCESS && !loom_mpi_is_failure(e))
                return loom_error_mpi(ctx, e, "MPI_Wait (cancelled receive)", __FILE__, __LINE__);
            flag = e == MPI_SUCCESS && !cancelled && !dead;
        }
        if (dead) find_dead(&m);
        /* a revoked communicator fails every receive: recover (members_sync) */
        if (dead && loom_members_revoked(ctx)) {
            loom_members_note_failure(ctx);
            st = LOOM_ERROR(ctx, LOOM_ERR_LOST, "a rank died during the map phase");
            break;
        }
        if (loom_launcher_gone(ctx)) {
            st = LOOM_ERROR(ctx, LOOM_ERR_LOST,
                            "the launcher is gone (mpirun or the node's daemon died)");
            break;
        }
        if (flag) {
            int64_t before = m.ndone;
            loom_status_t hs = handle(&m, s.MPI_SOURCE, msg);
            if (m.ndone != before) loom_fault_point(ctx, &eng->fault, LOOM_PHASE_MAP, m.ndone);
            if (hs != LOOM_OK && st == LOOM_OK) st = hs;
            if (hs != LOOM_OK && !m.failed) {
                m.failed = 1;
                assign_all(&m);
            }
        }
        if (m.failed && st == LOOM_OK && loom_error_code(ctx) != LOOM_OK) st = loom_error_code(ctx);
        if (loom_wtime() - last >= 0.1 || dead) {
            assign_all(&m);
            last = loom_wtime();
        }
        if (loom_wtime() - last_shown >= 1.0) {
            progress(eng, m.ndone, t0, 0);
            last_shown = loom_wtime();
        }
    }
    if (!m.failed) progress(eng, m.ndone, t0, 1);
out:
    free(m.w);
    free(m.requeue);
    return st;
}

loom_status_t mr_map_phase(mr_engine_t *eng, mr_store_t *acc)
{
    loom_ctx_t *ctx = eng->ctx;
    if (loom_size(ctx) == 1) return map_local(eng, acc);
    if (loom_is_master(ctx)) return map_master(eng);
    return map_worker(eng, acc);
}
