/* The `loom` command: pick a job from the registry, parse its options, run it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loom/loom.h"

extern const loom_job_t *const loom_jobs[];

static void print_commands(FILE *out)
{
    fprintf(out, "usage: loom COMMAND [options]   (under mpirun for several ranks)\n\ncommands:\n");
    for (const loom_job_t *const *j = loom_jobs; *j; j++)
        fprintf(out, "  %-12s %s\n", (*j)->name, (*j)->summary);
    fprintf(out,
            "\n'loom COMMAND --help' lists a command's options; 'loom --version' the version.\n");
}

static void print_version(const loom_ctx_t *ctx)
{
    char mpi[MPI_MAX_LIBRARY_VERSION_STRING + 128];
    loom_mpi_describe(ctx, mpi, sizeof mpi);
    printf("loom %s (%s)\n", LOOM_VERSION_STRING, mpi);
}

static const loom_job_t *find_job(const char *name)
{
    for (const loom_job_t *const *j = loom_jobs; *j; j++)
        if (!strcmp((*j)->name, name)) return *j;
    return NULL;
}

/* Exit codes: 0 success, 2 usage errors, 75 (EX_TEMPFAIL) a run that stopped
 * on a signal after checkpointing (resumable), 1 every other failure. */
static int exit_code(loom_status_t st)
{
    return st == LOOM_OK ? 0 : st == LOOM_ERR_USAGE ? 2 : st == LOOM_ERR_INTERRUPTED ? 75 : 1;
}

int main(int argc, char **argv)
{
    loom_ctx_t *ctx = NULL;
    loom_status_t st = loom_ctx_create(&argc, &argv, &ctx);
    if (st != LOOM_OK) {
        fprintf(stderr, "loom: error: %s\n", ctx ? loom_error_message(ctx) : "out of memory");
        return 1;
    }
    int master = loom_is_master(ctx);
    const char *cmd = argc > 1 ? argv[1] : NULL;
    if (!cmd || !strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        if (master) print_commands(cmd ? stdout : stderr);
        loom_ctx_destroy(&ctx);
        return cmd ? 0 : 2;
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        if (master) print_version(ctx);
        loom_ctx_destroy(&ctx);
        return 0;
    }
    const loom_job_t *job = find_job(cmd);
    if (!job) {
        if (master) fprintf(stderr, "loom: error: unknown command '%s' (see 'loom --help')\n", cmd);
        loom_ctx_destroy(&ctx);
        return 2;
    }

    loom_opts_t *opts = NULL;
    st = loom_opts_parse(ctx, job->options, argc - 1, argv + 1, &opts);
    st = loom_agree(ctx, loom_comm(ctx), st);
    if (st == LOOM_OK && loom_opt_flag(opts, "help")) {
        loom_opts_help(ctx, stdout, job->usage, job->options);
    } else if (st == LOOM_OK && loom_opt_flag(opts, "version")) {
        if (master) print_version(ctx);
    } else if (st == LOOM_OK) {
        /* SIGTERM/SIGINT end the job cleanly (temporaries removed, a dead
         * rank named); a command that checkpoints (--checkpoint-dir) is armed
         * from the start, so a signal during loading stops it cleanly too. */
        st = loom_signals_install(ctx);
        if (st == LOOM_OK && loom_opt_string(opts, "checkpoint-dir")) loom_stop_arm(ctx, 1);
        loom_timer_start(ctx, "total");
        st = job->run(ctx, opts);
        loom_timer_stop(ctx, "total");
        st = loom_agree(ctx, loom_comm(ctx), st);
        if (st != LOOM_OK) loom_error_report(ctx);
        if (st == LOOM_OK || loom_json_enabled(ctx)) loom_summary_print(ctx, job->name, st);
    } else {
        loom_error_report(ctx);
    }
    loom_opts_destroy(&opts);
    loom_signals_restore();
    loom_set_exit_status(ctx, exit_code(st));
    loom_ctx_destroy(&ctx);
    return exit_code(st);
}
