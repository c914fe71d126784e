/* Fault injection: real deaths (the process kills itself with SIGKILL) and slow workers, with
 * one spec grammar for every engine. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/ctx_internal.h"

static const char *const phase_names[] = {
    [LOOM_PHASE_MAP] = "map",       [LOOM_PHASE_SHUFFLE] = "shuffle",
    [LOOM_PHASE_REDUCE] = "reduce", [LOOM_PHASE_SUPERSTEP] = "superstep",
    [LOOM_PHASE_STAGE] = "stage",   [LOOM_PHASE_TRANSFER] = "transfer",
};
#define NPHASES ((int)(sizeof phase_names / sizeof *phase_names))

static int phase_of(const char *name, size_t len)
{
    for (int i = 1; i < NPHASES; i++)
        if (phase_names[i] && strlen(phase_names[i]) == len && !strncmp(name, phase_names[i], len))
            return i;
    return 0;
}

static loom_status_t bad(loom_ctx_t *ctx, const char *spec, const char *why)
{
    return LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                      "--inject-fault %s: %s (expected kill:RANK@PHASE:N or slow:RANK:SECONDS; "
                      "see loom COMMAND --help)",
                      spec, why);
}

loom_status_t loom_fault_parse(loom_ctx_t *ctx, const char *spec, unsigned phases, loom_fault_t *f)
{
    memset(f, 0, sizeof *f);
    f->rank = -1;
    if (!spec || !*spec) return LOOM_OK;
    long long r = -1, n = -1;
    double s = -1;
    int used = 0, worker_index = 0;
    char ph[32] = "";
    if (sscanf(spec, "kill:%lld@%31[a-z]:%lld%n", &r, ph, &n, &used) == 3 && !spec[used]) {
        f->kind = LOOM_FAULT_KILL;
    } else if (sscanf(spec, "lose-worker:%lld@map:%lld%n", &r, &n, &used) == 2 && !spec[used]) {
        f->kind = LOOM_FAULT_KILL; /* the MapReduce spelling; R is a rank */
        snprintf(ph, sizeof ph, "map");
    } else if (sscanf(spec, "abort-worker:%lld@superstep:%lld%n", &r, &n, &used) == 2 &&
               !spec[used]) {
        f->kind = LOOM_FAULT_KILL; /* the Pregel spelling; W is a worker index */
        snprintf(ph, sizeof ph, "superstep");
        worker_index = 1;
    } else if ((sscanf(spec, "slow:%lld:%lf%n", &r, &s, &used) == 2 ||
                sscanf(spec, "slow-worker:%lld:%lf%n", &r, &s, &used) == 2) &&
               !spec[used]) {
        f->kind = LOOM_FAULT_SLOW;
        if (!(s >= 0 && s < 1e6)) return bad(ctx, spec, "SECONDS must be in [0, 1e6)");
        f->seconds = s;
        snprintf(ph, sizeof ph, "map");
    } else {
        return bad(ctx, spec, "not a fault spec");
    }
    f->phase = phase_of(ph, strlen(ph));
    if (!f->phase || !(phases & (1u << f->phase)))
        return bad(ctx, spec, "this command has no such phase");
    if (n < 0 && f->kind == LOOM_FAULT_KILL) return bad(ctx, spec, "N must be >= 0");
    if (n > INT64_MAX / 2) return bad(ctx, spec, "N is too large");
    int size = ctx->start_size ? ctx->start_size : ctx->size;
    if (worker_index) {
        if (r < 0) return bad(ctx, spec, "W must be >= 0");
        int workers = size == 1 ? 1 : size - 1;
        r = (size == 1 ? 0 : 1) + r % workers;
    }
    if (r < 0 || r >= size) {
        char why[96];
        snprintf(why, sizeof why, "RANK must be a rank of this job (0..%d)", size - 1);
        return bad(ctx, spec, why);
    }
    if (f->kind == LOOM_FAULT_SLOW && size > 1 && r == 0)
        return bad(ctx, spec, "the master runs no tasks; slow a worker (1..P-1)");
    f->rank = (int)r;
    f->n = n;
    return LOOM_OK;
}

int loom_fault_here(const loom_ctx_t *ctx, const loom_fault_t *f, int phase)
{
    if (f->rank < 0 || f->phase != phase) return 0;
    int me = ctx->start_rank ? ctx->start_rank[ctx->rank] : ctx->rank;
    return me == f->rank;
}

void loom_fault_point(loom_ctx_t *ctx, const loom_fault_t *f, int phase, int64_t n)
{
    if (f->kind != LOOM_FAULT_KILL || !loom_fault_here(ctx, f, phase) || n != f->n) return;
    int me = ctx->start_rank ? ctx->start_rank[ctx->rank] : ctx->rank;
    fprintf(stderr,
            "loom: injected fault: rank %d (pid %ld on %s) kills itself in %s %lld at %.6f\n", me,
            (long)getpid(), loom_hostname(ctx), phase_names[phase], (long long)n, loom_epoch());
    fflush(stderr);
    /* A death like any other: no handler, no cleanup, no goodbye to MPI. */
    signal(SIGKILL, SIG_DFL);
    raise(SIGKILL);
    _exit(137);
}
