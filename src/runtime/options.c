/* The options table: one table drives getopt_long, --help and LOOM_* overrides. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/ctx_internal.h"

const loom_option_t loom_runtime_options[] = {
    {"threads", LOOM_OPT_INT, "0",
     "OpenMP threads per rank (0: OMP_NUM_THREADS, else the rank's cores)", NULL, 1, 0, 4096},
    {"bind", LOOM_OPT_CHOICE, "auto",
     "thread binding: auto (core unless OMP_PLACES is set), core, none", "auto|core|none", 0, 0, 0},
    {"node-ranks", LOOM_OPT_INT, "0",
     "ranks per node for the two-level exchange: 0 the machines MPI reports (shared memory), "
     "K pretend nodes of K consecutive ranks",
     NULL, 1, 0, 1 << 20},
    {"two-level", LOOM_OPT_CHOICE, "auto",
     "combine shuffles and messages per node before they cross nodes: auto (when the ranks span "
     "several nodes and some node holds more than one), on, off",
     "auto|on|off", 0, 0, 0},
    {"quiet", LOOM_OPT_FLAG, NULL, "no progress or summary on stderr", NULL, 0, 0, 0},
    {"verbose", LOOM_OPT_FLAG, NULL, "more detail; every rank reports its binding", NULL, 0, 0, 0},
    {"json", LOOM_OPT_FLAG, NULL, "print a JSON summary on stdout", NULL, 0, 0, 0},
    {"help", LOOM_OPT_FLAG, NULL, "show this help", NULL, 0, 0, 0},
    {"version", LOOM_OPT_FLAG, NULL, "show the version", NULL, 0, 0, 0},
    {NULL, LOOM_OPT_END, NULL, NULL, NULL, 0, 0, 0},
};

typedef struct opt_value {
    const loom_option_t *def;
    const char *text; /* the value as given (argv, environment or default) */
    int is_set;
    int64_t i;
    double d;
    size_t z;
} opt_value_t;

struct loom_opts {
    opt_value_t *v;
    int n;
    char **args;
    int nargs;
    char **env_copies; /* environment values are copied: getenv's memory may change */
    int nenv;
};

int loom_parse_size(const char *text, size_t *out)
{
    if (!text || !*text) return -1;
    errno = 0;
    char *end;
    double x = strtod(text, &end);
    if (errno || end == text || x < 0 || !isfinite(x)) return -1;
    double mult = 1;
    switch (toupper((unsigned char)*end)) {
    case 'K':
        mult = 1024.0;
        end++;
        break;
    case 'M':
        mult = 1024.0 * 1024;
        end++;
        break;
    case 'G':
        mult = 1024.0 * 1024 * 1024;
        end++;
        break;
    case 'T':
        mult = 1024.0 * 1024 * 1024 * 1024;
        end++;
        break;
    default:
        break;
    }
    if (*end == 'B' || *end == 'b') end++;
    if (*end != '\0') return -1;
    double bytes = x * mult;
    if (bytes > 1.8e19) return -1;
    *out = (size_t)bytes;
    return 0;
}

/* Turn the text of one option into its typed value; a message on failure. */
static loom_status_t convert(loom_ctx_t *ctx, opt_value_t *o, const char *source)
{
    const loom_option_t *d = o->def;
    const char *t = o->text;
    char *end;
    double num = 0;
    switch (d->type) {
    case LOOM_OPT_FLAG:
        o->i = 1;
        if (t && (!strcmp(t, "0") || !strcmp(t, "false") || !strcmp(t, "no"))) o->i = 0;
        return LOOM_OK;
    case LOOM_OPT_INT:
        errno = 0;
        o->i = strtoll(t, &end, 10);
        if (errno || end == t || *end != '\0')
            return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "--%s: '%s'%s is not a whole number", d->name, t,
                              source);
        num = (double)o->i;
        break;
    case LOOM_OPT_DOUBLE:
        errno = 0;
        o->d = strtod(t, &end);
        if (errno || end == t || *end != '\0' || !isfinite(o->d))
            return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "--%s: '%s'%s is not a number", d->name, t,
                              source);
        num = o->d;
        break;
    case LOOM_OPT_SIZE:
        if (loom_parse_size(t, &o->z) != 0)
            return LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                              "--%s: '%s'%s is not a size (a number with optional K, M, G or T)",
                              d->name, t, source);
        num = (double)o->z;
        break;
    case LOOM_OPT_CHOICE: {
        size_t len = strlen(t);
        for (const char *c = d->choices; c && *c;) {
            const char *bar = strchr(c, '|');
            size_t clen = bar ? (size_t)(bar - c) : strlen(c);
            if (clen == len && !strncmp(c, t, len)) return LOOM_OK;
            c = bar ? bar + 1 : NULL;
        }
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "--%s: '%s'%s is not one of %s", d->name, t, source,
                          d->choices);
    }
    case LOOM_OPT_STRING:
    case LOOM_OPT_END:
        return LOOM_OK;
    }
    if (d->min_max_set && (num < d->min || num > d->max))
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "--%s: %s%s is out of range (%g..%g)", d->name, t,
                          source, d->min, d->max);
    return LOOM_OK;
}

static int count_rows(const loom_option_t *t)
{
    int n = 0;
    while (t && t[n].type != LOOM_OPT_END)
        n++;
    return n;
}

static opt_value_t *find(const loom_opts_t *o, const char *name)
{
    for (int i = 0; i < o->n; i++)
        if (!strcmp(o->v[i].def->name, name)) return &o->v[i];
    return NULL;
}

void loom_opts_destroy(loom_opts_t **po)
{
    if (!po || !*po) return;
    loom_opts_t *o = *po;
    for (int i = 0; i < o->nenv; i++)
        free(o->env_copies[i]);
    free(o->env_copies);
    free(o->v);
    free(o->args);
    free(o);
    *po = NULL;
}

static loom_status_t parse_argv(loom_ctx_t *ctx, loom_opts_t *o, int argc, char **argv)
{
    struct option *longopts = calloc((size_t)o->n + 1, sizeof *longopts);
    if (!longopts) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory parsing options");
    for (int i = 0; i < o->n; i++) {
        longopts[i].name = o->v[i].def->name;
        longopts[i].has_arg = o->v[i].def->type == LOOM_OPT_FLAG ? no_argument : required_argument;
        longopts[i].val = 1000 + i;
    }
    loom_status_t st = LOOM_OK;
    opterr = 0;
    optind = 0; /* GNU: re-initialise, so a process may parse twice */
    /* "+" stops at the first positional argument only if POSIXLY_CORRECT;
     * "-" would return positionals in order; we let getopt permute them. */
    for (;;) {
        int idx = -1;
        int c = getopt_long(argc, argv, ":h", longopts, &idx);
        if (c == -1) break;
        if (c == 'h') {
            find(o, "help")->is_set = 1;
            find(o, "help")->i = 1;
            continue;
        }
        if (c == '?') {
            /* An unknown short option leaves optind on its element while the
             * element has more characters ("-xyz"), past it after its last. */
            const char *bad = argv[optind - 1];
            size_t pl = strlen(bad);
            int ended_here = bad[0] == '-' && bad[1] != '-' && pl >= 2 && bad[pl - 1] == optopt;
            if (optopt && !ended_here && optind < argc) bad = argv[optind];
            st = LOOM_ERROR(ctx, LOOM_ERR_USAGE, "unknown option '%s' (see 'loom %s --help')", bad,
                            argv[0]);
            break;
        }
        if (c == ':') {
            st = LOOM_ERROR(ctx, LOOM_ERR_USAGE, "option '%s' needs a value", argv[optind - 1]);
            break;
        }
        opt_value_t *v = &o->v[c - 1000];
        v->text = optarg;
        v->is_set = 1;
        if ((st = convert(ctx, v, "")) != LOOM_OK) break;
    }
    free(longopts);
    if (st != LOOM_OK) return st;
    o->nargs = argc - optind;
    o->args = calloc((size_t)(o->nargs > 0 ? o->nargs : 1), sizeof *o->args);
    if (!o->args) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory parsing options");
    for (int i = 0; i < o->nargs; i++)
        o->args[i] = argv[optind + i];
    return LOOM_OK;
}

/* Options not on the command line come from LOOM_<NAME> or the default. */
static loom_status_t fill_unset(loom_ctx_t *ctx, loom_opts_t *o)
{
    for (int i = 0; i < o->n; i++) {
        opt_value_t *v = &o->v[i];
        if (v->is_set) continue;
        char envname[128] = "LOOM_";
        size_t k = 5;
        for (const char *p = v->def->name; *p && k + 1 < sizeof envname; p++)
            envname[k++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
        envname[k] = '\0';
        const char *env = getenv(envname);
        if (env && *env && strcmp(v->def->name, "help") && strcmp(v->def->name, "version")) {
            char *copy = strdup(env);
            if (!copy) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory parsing options");
            o->env_copies[o->nenv++] = copy;
            v->text = copy;
            v->is_set = 1;
            char source[160];
            snprintf(source, sizeof source, " (from %s)", envname);
            LOOM_TRY(convert(ctx, v, source));
        } else if (v->def->def) {
            v->text = v->def->def;
            LOOM_TRY(convert(ctx, v, " (default)"));
        } else if (v->def->type == LOOM_OPT_FLAG) {
            v->i = 0;
        }
    }
    return LOOM_OK;
}

loom_status_t loom_opts_parse(loom_ctx_t *ctx, const loom_option_t *table, int argc, char **argv,
                              loom_opts_t **out)
{
    *out = NULL;
    loom_opts_t *o = calloc(1, sizeof *o);
    if (!o) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory parsing options");
    int nr = count_rows(loom_runtime_options), nt = count_rows(table);
    o->n = nr + nt;
    o->v = calloc((size_t)o->n, sizeof *o->v);
    o->env_copies = calloc((size_t)o->n, sizeof *o->env_copies);
    if (!o->v || !o->env_copies) {
        loom_opts_destroy(&o);
        return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory parsing options");
    }
    for (int i = 0; i < nr; i++)
        o->v[i].def = &loom_runtime_options[i];
    for (int i = 0; i < nt; i++)
        o->v[nr + i].def = &table[i];

    loom_status_t st = parse_argv(ctx, o, argc, argv);
    if (st == LOOM_OK) st = fill_unset(ctx, o);
    if (st == LOOM_OK) st = loom_ctx_configure(ctx, o);
    if (st != LOOM_OK) {
        loom_opts_destroy(&o);
        return st;
    }
    *out = o;
    return LOOM_OK;
}

static void help_rows(FILE *out, const loom_option_t *t)
{
    for (; t && t->type != LOOM_OPT_END; t++) {
        char left[96];
        const char *meta = "";
        switch (t->type) {
        case LOOM_OPT_INT:
            meta = " N";
            break;
        case LOOM_OPT_DOUBLE:
            meta = " X";
            break;
        case LOOM_OPT_SIZE:
            meta = " SIZE";
            break;
        case LOOM_OPT_STRING:
            meta = " TEXT";
            break;
        case LOOM_OPT_CHOICE:
            meta = " WHICH";
            break;
        default:
            break;
        }
        snprintf(left, sizeof left, "  --%s%s", t->name, meta);
        fprintf(out, "%-28s %s", left, t->help ? t->help : "");
        if (t->def && t->type != LOOM_OPT_FLAG) fprintf(out, " [default: %s]", t->def);
        fputc('\n', out);
    }
}

void loom_opts_help(const loom_ctx_t *ctx, FILE *out, const char *usage, const loom_option_t *table)
{
    if (ctx && ctx->rank != 0) return;
    fprintf(out, "usage: %s\n", usage);
    if (table && table->type != LOOM_OPT_END) {
        fprintf(out, "\noptions:\n");
        help_rows(out, table);
    }
    fprintf(out, "\ncommon options (each also read from LOOM_<NAME>, e.g. LOOM_THREADS):\n");
    help_rows(out, loom_runtime_options);
}

int loom_opt_is_set(const loom_opts_t *o, const char *name)
{
    opt_value_t *v = find(o, name);
    return v ? v->is_set : 0;
}
int loom_opt_flag(const loom_opts_t *o, const char *name)
{
    opt_value_t *v = find(o, name);
    return v ? (int)v->i : 0;
}
int64_t loom_opt_int(const loom_opts_t *o, const char *name)
{
    opt_value_t *v = find(o, name);
    return v ? v->i : 0;
}
double loom_opt_double(const loom_opts_t *o, const char *name)
{
    opt_value_t *v = find(o, name);
    return v ? v->d : 0.0;
}
size_t loom_opt_size(const loom_opts_t *o, const char *name)
{
    opt_value_t *v = find(o, name);
    return v ? v->z : 0;
}
const char *loom_opt_string(const loom_opts_t *o, const char *name)
{
    opt_value_t *v = find(o, name);
    return v ? v->text : NULL;
}
int loom_opts_nargs(const loom_opts_t *o)
{
    return o->nargs;
}
const char *loom_opts_arg(const loom_opts_t *o, int i)
{
    return (i >= 0 && i < o->nargs) ? o->args[i] : NULL;
}
