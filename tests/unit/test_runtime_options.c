/* Unit tests of the options table: types, defaults, environment, bad input. */
#include <stdlib.h>
#include <string.h>

#include "loom_test.h"

static const loom_option_t table[] = {
    {"scale", LOOM_OPT_INT, "10", "scale", NULL, 1, 1, 40},
    {"damping", LOOM_OPT_DOUBLE, "0.85", "damping", NULL, 1, 0, 1},
    {"memory", LOOM_OPT_SIZE, "64M", "budget", NULL, 0, 0, 0},
    {"out", LOOM_OPT_STRING, NULL, "output", NULL, 0, 0, 0},
    {"dangling", LOOM_OPT_CHOICE, "redistribute", "rule", "redistribute|ignore", 0, 0, 0},
    {"undirected", LOOM_OPT_FLAG, NULL, "sym", NULL, 0, 0, 0},
    {"checkpoint-every", LOOM_OPT_INT, "0", "k", NULL, 0, 0, 0},
    {NULL, LOOM_OPT_END, NULL, NULL, NULL, 0, 0, 0},
};

/* Parse a NULL-terminated list of words (the first is the command). */
static loom_status_t parse(loom_opts_t **o, const char **words)
{
    char *argv[32];
    int argc = 0;
    for (; words[argc]; argc++)
        argv[argc] = (char *)words[argc];
    argv[argc] = NULL;
    loom_error_clear(loom_test_ctx);
    return loom_opts_parse(loom_test_ctx, table, argc, argv, o);
}

static void test_defaults_and_values(void)
{
    loom_opts_t *o = NULL;
    const char *w[] = {"job",      "g.el", "--scale",      "12",    "--damping=0.5",
                       "--memory", "2G",   "--undirected", "extra", NULL};
    CU_ASSERT_EQUAL_FATAL(parse(&o, w), LOOM_OK);
    CU_ASSERT_EQUAL(loom_opt_int(o, "scale"), 12);
    CU_ASSERT_DOUBLE_EQUAL(loom_opt_double(o, "damping"), 0.5, 1e-15);
    CU_ASSERT_EQUAL(loom_opt_size(o, "memory"), (size_t)2 << 30);
    CU_ASSERT_TRUE(loom_opt_flag(o, "undirected"));
    CU_ASSERT_TRUE(loom_opt_is_set(o, "scale"));
    CU_ASSERT_FALSE(loom_opt_is_set(o, "dangling"));
    CU_ASSERT_STRING_EQUAL(loom_opt_string(o, "dangling"), "redistribute");
    CU_ASSERT_PTR_NULL(loom_opt_string(o, "out"));
    CU_ASSERT_EQUAL(loom_opts_nargs(o), 2);
    CU_ASSERT_STRING_EQUAL(loom_opts_arg(o, 0), "g.el");
    CU_ASSERT_STRING_EQUAL(loom_opts_arg(o, 1), "extra");
    CU_ASSERT_PTR_NULL(loom_opts_arg(o, 2));
    loom_opts_destroy(&o);
    CU_ASSERT_PTR_NULL(o);
}

static void test_environment(void)
{
    loom_opts_t *o = NULL;
    setenv("LOOM_CHECKPOINT_EVERY", "7", 1);
    setenv("LOOM_SCALE", "30", 1);
    const char *w[] = {"job", "--scale", "11", NULL};
    CU_ASSERT_EQUAL_FATAL(parse(&o, w), LOOM_OK);
    CU_ASSERT_EQUAL(loom_opt_int(o, "checkpoint-every"), 7);
    CU_ASSERT_EQUAL(loom_opt_int(o, "scale"), 11); /* the command line wins */
    loom_opts_destroy(&o);
    setenv("LOOM_CHECKPOINT_EVERY", "seven", 1);
    const char *w2[] = {"job", NULL};
    CU_ASSERT_EQUAL(parse(&o, w2), LOOM_ERR_USAGE);
    CU_ASSERT_PTR_NOT_NULL(strstr(loom_error_message(loom_test_ctx), "LOOM_CHECKPOINT_EVERY"));
    unsetenv("LOOM_CHECKPOINT_EVERY");
    unsetenv("LOOM_SCALE");
}

static void expect_usage(const char **w, const char *needle)
{
    loom_opts_t *o = NULL;
    CU_ASSERT_EQUAL(parse(&o, w), LOOM_ERR_USAGE);
    CU_ASSERT_PTR_NULL(o);
    const char *msg = loom_error_message(loom_test_ctx);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, needle));
    if (!strstr(msg, needle)) fprintf(stderr, "message '%s' lacks '%s'\n", msg, needle);
}

static void test_bad_input(void)
{
    const char *unknown[] = {"job", "--frobnicate", NULL};
    expect_usage(unknown, "unknown option '--frobnicate'");
    const char *notint[] = {"job", "--scale", "abc", NULL};
    expect_usage(notint, "'abc' is not a whole number");
    const char *partial[] = {"job", "--scale", "12x", NULL};
    expect_usage(partial, "not a whole number");
    const char *range[] = {"job", "--scale", "99", NULL};
    expect_usage(range, "out of range");
    const char *notnum[] = {"job", "--damping", "high", NULL};
    expect_usage(notnum, "not a number");
    const char *size[] = {"job", "--memory", "12Q", NULL};
    expect_usage(size, "not a size");
    const char *choice[] = {"job", "--dangling", "spread", NULL};
    expect_usage(choice, "not one of redistribute|ignore");
    const char *missing[] = {"job", "--out", NULL};
    expect_usage(missing, "needs a value");
    const char *bind[] = {"job", "--bind", "socket", NULL};
    expect_usage(bind, "--bind");
}

static void test_sizes(void)
{
    size_t z = 0;
    CU_ASSERT_EQUAL(loom_parse_size("4096", &z), 0);
    CU_ASSERT_EQUAL(z, 4096u);
    CU_ASSERT_EQUAL(loom_parse_size("1.5K", &z), 0);
    CU_ASSERT_EQUAL(z, 1536u);
    CU_ASSERT_EQUAL(loom_parse_size("3g", &z), 0);
    CU_ASSERT_EQUAL(z, (size_t)3 << 30);
    CU_ASSERT_EQUAL(loom_parse_size("64MB", &z), 0);
    CU_ASSERT_EQUAL(z, (size_t)64 << 20);
    CU_ASSERT_NOT_EQUAL(loom_parse_size("", &z), 0);
    CU_ASSERT_NOT_EQUAL(loom_parse_size("-1M", &z), 0);
    CU_ASSERT_NOT_EQUAL(loom_parse_size("M", &z), 0);
}

static void test_errors(void)
{
    loom_error_clear(loom_test_ctx);
    CU_ASSERT_EQUAL(LOOM_ERROR(loom_test_ctx, LOOM_ERR_FORMAT, "%s:%d: first", "a.el", 3),
                    LOOM_ERR_FORMAT);
    LOOM_ERROR(loom_test_ctx, LOOM_ERR_IO, "second");
    /* The first error is the root cause and must survive. */
    CU_ASSERT_STRING_EQUAL(loom_error_message(loom_test_ctx), "a.el:3: first");
    CU_ASSERT_EQUAL(loom_error_code(loom_test_ctx), LOOM_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(loom_error_where(loom_test_ctx), "test_runtime_options.c"));
    loom_error_clear(loom_test_ctx);
    CU_ASSERT_EQUAL(loom_error_code(loom_test_ctx), LOOM_OK);
    CU_ASSERT_STRING_EQUAL(loom_status_name(LOOM_ERR_USAGE), "usage error");
}

static void test_timers(void)
{
    loom_timer_start(loom_test_ctx, "phase-a");
    double t0 = loom_wtime();
    while (loom_wtime() - t0 < 0.01) {
    }
    loom_timer_stop(loom_test_ctx, "phase-a");
    double t = loom_timer_get(loom_test_ctx, "phase-a");
    CU_ASSERT(t >= 0.0099 && t < 1.0);
    CU_ASSERT_EQUAL(loom_timer_get(loom_test_ctx, "never"), 0.0);
    CU_ASSERT(loom_peak_rss() > 0);
}

static void register_suites(void)
{
    static const CU_TestInfo tests[] = {
        {"defaults and values", test_defaults_and_values},
        {"environment overrides", test_environment},
        {"bad input", test_bad_input},
        {"sizes", test_sizes},
        {"errors", test_errors},
        {"timers", test_timers},
        {NULL, NULL},
    };
    loom_test_suite("runtime options", tests);
}

int main(int argc, char **argv)
{
    return loom_test_main(argc, argv, register_suites);
}
