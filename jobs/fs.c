/* `loom fs COMMAND ...`: the chunk store from the command line (put, get, cat, ls, stat, mkdir,
 * rm, mv, append, fsck, rebalance). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "loom/chunks.h"
#include "loom/loom.h"

static const loom_option_t options[] = {
    {"store", LOOM_OPT_STRING, NULL, "the store root (a missing or empty directory becomes one)",
     NULL, 0, 0, 0},
    {"chunk-size", LOOM_OPT_SIZE, "64M",
     "chunk size of files this command creates (multiple of 64K)", NULL, 1, 65536, 4294967296.0},
    {"replication", LOOM_OPT_INT, "3", "replicas of files this command creates (capped by holders)",
     NULL, 1, 1, 16},
    {"holder-capacity", LOOM_OPT_SIZE, "0",
     "bytes each holder may keep in the store (0: the disk's)", NULL, 0, 0, 0},
    {"force", LOOM_OPT_FLAG, NULL, "get: replace an existing local file", NULL, 0, 0, 0},
    {"recursive", LOOM_OPT_FLAG, NULL, "rm: remove a directory and everything in it", NULL, 0, 0,
     0},
    {"inject-fault", LOOM_OPT_STRING, NULL,
     "kill:RANK@transfer:N (rank RANK dies after N pieces of chunk data read or received)", NULL, 0,
     0, 0},
    {NULL, LOOM_OPT_END, NULL, NULL, NULL, 0, 0, 0},
};

/* The commands: name, positional arguments (min, max; -1 no limit), whether opening heals. */
static const struct {
    const char *name;
    int min, max, heal;
} commands[] = {
    {"put", 2, 2, 1},    {"get", 2, 2, 1},   {"cat", 1, -1, 1},      {"ls", 0, 1, 0},
    {"stat", 1, 1, 0},   {"mkdir", 1, 1, 1}, {"rm", 1, 1, 1},        {"mv", 2, 2, 1},
    {"append", 2, 2, 1}, {"fsck", 0, 1, 0},  {"rebalance", 0, 0, 1},
};

static loom_status_t dispatch(loom_ctx_t *ctx, loom_chunks_t *fs, const loom_opts_t *opts,
                              const char *cmd)
{
    const char *a = loom_opts_arg(opts, 1), *b = loom_opts_arg(opts, 2);
    FILE *out = loom_is_master(ctx) ? stdout : NULL;
    if (!strcmp(cmd, "put")) return loom_chunks_put(fs, a, b);
    if (!strcmp(cmd, "get")) return loom_chunks_get(fs, a, b, loom_opt_flag(opts, "force"));
    if (!strcmp(cmd, "cat")) {
        for (int i = 1; i < loom_opts_nargs(opts); i++)
            LOOM_TRY(loom_chunks_cat(fs, loom_opts_arg(opts, i), out));
        return LOOM_OK;
    }
    if (!strcmp(cmd, "ls")) return loom_chunks_ls(fs, a ? a : "/", out);
    if (!strcmp(cmd, "stat")) return loom_chunks_describe(fs, a, out);
    if (!strcmp(cmd, "mkdir")) return loom_chunks_mkdir(fs, a);
    if (!strcmp(cmd, "rm")) return loom_chunks_remove(fs, a, loom_opt_flag(opts, "recursive"));
    if (!strcmp(cmd, "mv")) return loom_chunks_rename(fs, a, b);
    if (!strcmp(cmd, "append")) {
        uint64_t records = 0, bytes = 0;
        LOOM_TRY(loom_chunks_append_lines(fs, a, b, &records, &bytes));
        if (loom_is_master(ctx)) {
            printf("appended %" PRIu64 " records (%" PRIu64 " bytes) to %s\n", records, bytes, a);
            fflush(stdout);
        }
        loom_summary_int(ctx, "records", (int64_t)records);
        return LOOM_OK;
    }
    if (!strcmp(cmd, "fsck")) {
        int64_t problems = 0;
        LOOM_TRY(loom_chunks_fsck(fs, out, &problems));
        loom_summary_int(ctx, "problems", problems);
        if (problems)
            return LOOM_ERROR(ctx, LOOM_ERR_FORMAT, "fsck: the store %s has %" PRId64 " problem%s",
                              loom_opt_string(opts, "store"), problems, problems == 1 ? "" : "s");
        return LOOM_OK;
    }
    return loom_chunks_rebalance(fs);
}

static loom_status_t run(loom_ctx_t *ctx, const loom_opts_t *opts)
{
    const char *cmd = loom_opts_arg(opts, 0);
    int nargs = loom_opts_nargs(opts) - 1, which = -1;
    for (size_t i = 0; cmd && i < sizeof commands / sizeof *commands; i++)
        if (!strcmp(cmd, commands[i].name)) which = (int)i;
    if (which < 0)
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                          "fs: %s%s%s (commands: put, get, cat, ls, stat, mkdir, rm, mv, append, "
                          "fsck, rebalance)",
                          cmd ? "unknown command '" : "no command", cmd ? cmd : "", cmd ? "'" : "");
    if (nargs < commands[which].min || (commands[which].max >= 0 && nargs > commands[which].max))
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                          "fs %s: wrong number of arguments (see loom fs --help)", cmd);
    loom_chunks_opts_t o = {
        .chunk_size = loom_opt_size(opts, "chunk-size"),
        .replication = (int)loom_opt_int(opts, "replication"),
        .holder_capacity = loom_opt_size(opts, "holder-capacity"),
        .heal = commands[which].heal,
        .fault = loom_opt_string(opts, "inject-fault"),
    };
    loom_chunks_t *fs = NULL;
    loom_timer_start(ctx, "open");
    loom_status_t st = loom_chunks_open(ctx, loom_opt_string(opts, "store"), &o, &fs);
    loom_timer_stop(ctx, "open");
    loom_timer_start(ctx, cmd);
    if (st == LOOM_OK) st = dispatch(ctx, fs, opts, cmd);
    loom_timer_stop(ctx, cmd);
    loom_status_t cst = loom_chunks_close(&fs);
    return st != LOOM_OK ? st : cst;
}

const loom_job_t loom_job_fs = {
    .name = "fs",
    .summary = "the chunk store: put, get, cat, ls, stat, mkdir, rm, mv, append, fsck, rebalance",
    .usage = "loom fs COMMAND ARGS --store DIR [options]\n"
             "  put LOCAL PATH | get PATH LOCAL | cat PATH... | ls [PATH] | stat PATH |\n"
             "  mkdir PATH | rm PATH | mv SRC DST | append PATH LOCAL | fsck [PATH] | rebalance",
    .options = options,
    .run = run,
};
