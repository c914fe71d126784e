/* Phase timers, result fields and the run summary (human table or --json). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/ctx_internal.h"

static loom_timer_t *timer_find(loom_ctx_t *ctx, const char *name, int create)
{
    for (int i = 0; i < ctx->ntimers; i++)
        if (!strcmp(ctx->timers[i].name, name)) return &ctx->timers[i];
    if (!create) return NULL;
    if (ctx->ntimers == ctx->cap_timers) {
        int cap = ctx->cap_timers ? 2 * ctx->cap_timers : 16;
        loom_timer_t *t = realloc(ctx->timers, (size_t)cap * sizeof *t);
        if (!t) return NULL;
        ctx->timers = t;
        ctx->cap_timers = cap;
    }
    loom_timer_t *t = &ctx->timers[ctx->ntimers];
    memset(t, 0, sizeof *t);
    if (!(t->name = strdup(name))) return NULL;
    ctx->ntimers++;
    return t;
}

void loom_timer_start(loom_ctx_t *ctx, const char *name)
{
    loom_timer_t *t = timer_find(ctx, name, 1);
    if (!t) return;
    t->started = MPI_Wtime();
    t->running = 1;
}

void loom_timer_stop(loom_ctx_t *ctx, const char *name)
{
    loom_timer_t *t = timer_find(ctx, name, 0);
    if (!t || !t->running) return;
    t->total += MPI_Wtime() - t->started;
    t->running = 0;
}

double loom_timer_get(const loom_ctx_t *ctx, const char *name)
{
    for (int i = 0; i < ctx->ntimers; i++)
        if (!strcmp(ctx->timers[i].name, name)) return ctx->timers[i].total;
    return 0.0;
}

static loom_field_t *field_slot(loom_ctx_t *ctx, const char *key)
{
    for (int i = 0; i < ctx->nfields; i++)
        if (!strcmp(ctx->fields[i].key, key)) {
            free(ctx->fields[i].s);
            ctx->fields[i].s = NULL;
            return &ctx->fields[i];
        }
    if (ctx->nfields == ctx->cap_fields) {
        int cap = ctx->cap_fields ? 2 * ctx->cap_fields : 16;
        loom_field_t *f = realloc(ctx->fields, (size_t)cap * sizeof *f);
        if (!f) return NULL;
        ctx->fields = f;
        ctx->cap_fields = cap;
    }
    loom_field_t *f = &ctx->fields[ctx->nfields];
    memset(f, 0, sizeof *f);
    if (!(f->key = strdup(key))) return NULL;
    ctx->nfields++;
    return f;
}

void loom_summary_int(loom_ctx_t *ctx, const char *key, int64_t value)
{
    loom_field_t *f = field_slot(ctx, key);
    if (f) f->type = LOOM_FIELD_INT, f->i = value;
}
void loom_summary_double(loom_ctx_t *ctx, const char *key, double value)
{
    loom_field_t *f = field_slot(ctx, key);
    if (f) f->type = LOOM_FIELD_DOUBLE, f->d = value;
}
void loom_summary_string(loom_ctx_t *ctx, const char *key, const char *value)
{
    loom_field_t *f = field_slot(ctx, key);
    if (f) f->type = LOOM_FIELD_STRING, f->s = strdup(value ? value : "");
}

static void json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", out);
        else if (c < 0x20)
            fprintf(out, "\\u%04x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

/* The union of every rank's phase names, in order of first appearance by
 * rank, as NUL-separated names ending with an empty one (every rank gets it).
 * Collective; agrees on failure. */
static loom_status_t phase_union(loom_ctx_t *ctx, char **names, int *count)
{
    *names = NULL;
    *count = 0;
    size_t len = 0;
    for (int i = 0; i < ctx->ntimers; i++)
        len += strlen(ctx->timers[i].name) + 1;
    char *mine = malloc(len + 1), *all = NULL, *uni = NULL;
    int *lens = malloc((size_t)ctx->size * 2 * sizeof *lens), *displs = lens + ctx->size;
    loom_status_t st = LOOM_OK;
    if (!mine || !lens || len > INT32_MAX)
        st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory printing the summary");
    for (int i = 0, at = 0; st == LOOM_OK && i < ctx->ntimers; i++)
        at += sprintf(mine + at, "%s\n", ctx->timers[i].name);
    st = loom_agree(ctx, ctx->comm, st);
    if (st != LOOM_OK) goto out;
    int mylen = (int)len;
    LOOM_MPI_GOTO(ctx, st, MPI_Allgather(&mylen, 1, MPI_INT, lens, 1, MPI_INT, ctx->comm), out);
    long long total = 0;
    for (int r = 0; r < ctx->size; r++) {
        displs[r] = (int)total;
        total += lens[r];
    }
    all = total <= INT32_MAX ? malloc((size_t)total + 1) : NULL;
    uni = all ? calloc((size_t)total + 2, 1) : NULL;
    if (!all || !uni) st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory printing the summary");
    st = loom_agree(ctx, ctx->comm, st);
    if (st != LOOM_OK) goto out;
    LOOM_MPI_GOTO(ctx, st,
                  MPI_Allgatherv(mine, mylen, MPI_CHAR, all, lens, displs, MPI_CHAR, ctx->comm),
                  out);
    all[total] = '\0';
    for (char *s = all; *s;) {
        char *nl = strchr(s, '\n');
        *nl = '\0';
        /* Linear search: a run has a handful of phases. */
        int seen = 0;
        for (char *u = uni; *u; u += strlen(u) + 1)
            if (!strcmp(u, s)) seen = 1;
        if (!seen) {
            char *end = uni;
            while (*end)
                end += strlen(end) + 1;
            strcpy(end, s);
            end[strlen(s) + 1] = '\0';
            (*count)++;
        }
        s = nl + 1;
    }
    *names = uni;
    uni = NULL;
out:
    free(mine);
    free(lens);
    free(all);
    free(uni);
    return st;
}

loom_status_t loom_summary_print(loom_ctx_t *ctx, const char *command, loom_status_t status)
{
    int nphase = 0;
    char *names = NULL;
    LOOM_TRY(phase_union(ctx, &names, &nphase));
    double *v = calloc((size_t)nphase * 3 + 1, sizeof *v),
           *r = calloc((size_t)nphase * 3 + 1, sizeof *r);
    size_t rss = loom_peak_rss();
    unsigned long long rss64 = rss, *rss_all = calloc((size_t)ctx->size, sizeof *rss_all);
    loom_status_t st = LOOM_OK;
    if (!v || !r || !rss_all)
        st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory printing the summary");
    st = loom_agree(ctx, ctx->comm, st);
    if (st != LOOM_OK) {
        free(names), free(v), free(r), free(rss_all);
        return st;
    }
    int k = 0;
    for (char *u = names; *u; u += strlen(u) + 1, k++) {
        double t = loom_timer_get(ctx, u);
        v[k] = t;                          /* max */
        v[nphase + k] = t;                 /* sum */
        v[2 * nphase + k] = t > 0 ? 1 : 0; /* ranks that recorded time */
    }
    LOOM_MPI_KEEP(ctx, st, MPI_Reduce(v, r, nphase, MPI_DOUBLE, MPI_MAX, 0, ctx->comm));
    LOOM_MPI_KEEP(
        ctx, st, MPI_Reduce(v + nphase, r + nphase, 2 * nphase, MPI_DOUBLE, MPI_SUM, 0, ctx->comm));
    LOOM_MPI_KEEP(ctx, st,
                  MPI_Gather(&rss64, 1, MPI_UNSIGNED_LONG_LONG, rss_all, 1, MPI_UNSIGNED_LONG_LONG,
                             0, ctx->comm));
    if (st != LOOM_OK) {
        free(names), free(v), free(r), free(rss_all);
        return st;
    }

    if (ctx->rank == 0) {
        unsigned long long rss_sum = 0;
        for (int i = 0; i < ctx->size; i++)
            rss_sum += rss_all[i];
        if (ctx->json) {
            FILE *o = stdout;
            fputs("{\"command\": ", o);
            json_string(o, command);
            fputs(", \"status\": ", o);
            json_string(o, status == LOOM_OK ? "ok" : loom_status_name(status));
            if (status != LOOM_OK) {
                fputs(", \"error\": ", o);
                json_string(o, ctx->err_msg);
            }
            fprintf(o, ", \"ranks\": %d, \"workers\": %d, \"threads\": %d", ctx->size,
                    loom_num_workers(ctx), ctx->threads);
            for (int i = 0; i < ctx->nfields; i++) {
                loom_field_t *f = &ctx->fields[i];
                fputs(", ", o);
                json_string(o, f->key);
                if (f->type == LOOM_FIELD_INT)
                    fprintf(o, ": %lld", (long long)f->i);
                else if (f->type == LOOM_FIELD_DOUBLE)
                    /* epoch times (~1.8e9 s) keep their microseconds */
                    fprintf(o, fabs(f->d) >= 1e8 ? ": %.6f" : ": %.9g", f->d);
                else
                    fputs(": ", o), json_string(o, f->s ? f->s : "");
            }
            fputs(", \"phases\": {", o);
            k = 0;
            for (char *u = names; *u; u += strlen(u) + 1, k++) {
                double mean = r[2 * nphase + k] > 0 ? r[nphase + k] / r[2 * nphase + k] : 0;
                fprintf(o, "%s", k ? ", " : "");
                json_string(o, u);
                fprintf(o, ": {\"max_s\": %.6f, \"mean_s\": %.6f, \"imbalance\": %.3f}", r[k], mean,
                        mean > 0 ? r[k] / mean : 1.0);
            }
            fputs("}, \"peak_rss_bytes\": [", o);
            for (int i = 0; i < ctx->size; i++)
                fprintf(o, "%s%llu", i ? ", " : "", rss_all[i]);
            fprintf(o, "], \"peak_rss_total_bytes\": %llu}\n", rss_sum);
            fflush(o);
        } else if (!ctx->quiet) {
            if (nphase)
                fprintf(stderr, "%-16s %10s %10s %10s\n", "phase", "max s", "mean s", "imbalance");
            k = 0;
            for (char *u = names; *u; u += strlen(u) + 1, k++) {
                double mean = r[2 * nphase + k] > 0 ? r[nphase + k] / r[2 * nphase + k] : 0;
                fprintf(stderr, "%-16s %10.3f %10.3f %10.2f\n", u, r[k], mean,
                        mean > 0 ? r[k] / mean : 1.0);
            }
            fprintf(stderr, "peak memory:");
            for (int i = 0; i < ctx->size; i++)
                fprintf(stderr, " r%d %.1f MiB", i, (double)rss_all[i] / (1 << 20));
            fprintf(stderr, "; total %.1f MiB\n", (double)rss_sum / (1 << 20));
        }
    }
    free(names), free(v), free(r), free(rss_all);
    return LOOM_OK;
}
