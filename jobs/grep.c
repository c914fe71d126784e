/* `loom grep REGEX INPUT... --out DIR`: lines matching a POSIX extended regex, as "file:line:text".
 */
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "loom/loom.h"
#include "loom/mr.h"

/* The key (file index, line) big-endian sorts like the input; with range
 * partitions the part files concatenate to `grep -E -n -H REGEX FILES...`
 * over the expanded inputs. The regex runs in the C locale; a line is cut at
 * its first NUL byte (regexec takes C strings). */
typedef struct grep_state {
    regex_t re;
    char *line;
    size_t cap;
} grep_state_t;

static void put_be(unsigned char *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

static loom_status_t map(loom_ctx_t *ctx, const loom_mr_record_t *rec, loom_mr_emit_t *out,
                         void *user)
{
    grep_state_t *g = user;
    if (rec->len + 1 > g->cap) {
        size_t cap = rec->len + 1 > 2 * g->cap ? rec->len + 1 : 2 * g->cap;
        char *l = realloc(g->line, cap);
        if (!l) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory: a %zu-byte line", rec->len);
        g->line = l;
        g->cap = cap;
    }
    memcpy(g->line, rec->data, rec->len);
    g->line[rec->len] = 0;
    if (regexec(&g->re, g->line, 0, NULL, 0) != 0) return LOOM_OK;
    const char *path = loom_mr_input_path(out, rec->file_index);
    char head[64];
    int hn = snprintf(head, sizeof head, ":%llu:", (unsigned long long)rec->line);
    size_t pl = strlen(path), vl = pl + (size_t)hn + rec->len;
    char *v = malloc(vl ? vl : 1);
    if (!v) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    memcpy(v, path, pl);
    memcpy(v + pl, head, (size_t)hn);
    memcpy(v + pl + (size_t)hn, rec->data, rec->len);
    unsigned char key[12];
    put_be(key, rec->file_index, 4);
    put_be(key + 4, rec->line, 8);
    loom_status_t st = loom_mr_emit(out, key, sizeof key, v, vl);
    free(v);
    return st;
}

static const loom_option_t options[] = {
    LOOM_MR_OPTION_ROWS,
    {"ignore-case", LOOM_OPT_FLAG, NULL, "match without regard to case (REG_ICASE)", NULL, 0, 0, 0},
    {NULL, LOOM_OPT_END, NULL, NULL, NULL, 0, 0, 0},
};

static loom_status_t run(loom_ctx_t *ctx, const loom_opts_t *opts)
{
    const char *pattern = loom_opts_arg(opts, 0);
    if (!pattern || loom_opts_nargs(opts) < 2)
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "grep needs a REGEX and at least one INPUT");
    grep_state_t g = {0};
    int flags = REG_EXTENDED | REG_NOSUB | (loom_opt_flag(opts, "ignore-case") ? REG_ICASE : 0);
    int rc = regcomp(&g.re, pattern, flags);
    if (rc != 0) {
        char msg[256];
        regerror(rc, &g.re, msg, sizeof msg);
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "grep: bad regular expression '%s': %s", pattern,
                          msg);
    }
    loom_mr_job_t job = {.name = "grep",
                         .map = map,
                         .user = &g,
                         .range_partition = 1,
                         .line_numbers = 1,
                         .output_mode = LOOM_MR_OUT_VALUE};
    loom_status_t st = loom_mr_run_command(ctx, opts, 1, &job);
    free(g.line);
    regfree(&g.re);
    return st;
}

const loom_job_t loom_job_grep = {
    .name = "grep",
    .summary = "lines matching a POSIX extended regex, as file:line:text, in input order",
    .usage = "loom grep REGEX INPUT... --out DIR|FILE.h5 [options]   (INPUT: file, dir, glob, "
             "FILE.h5:/DATASET, gen:N)",
    .options = options,
    .run = run,
};
