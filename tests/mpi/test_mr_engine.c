/* MapReduce engine through the library API at every rank count: exact sums, custom partitioner,
 * faults. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loom/mr.h"
#include "loom_test.h"

enum { NUMBERS = 20000, GROUPS = 97 };

/* Record "n" -> key "gNN" (n mod 97), value n. */
static loom_status_t map(loom_ctx_t *ctx, const loom_mr_record_t *rec, loom_mr_emit_t *out,
                         void *user)
{
    char buf[32];
    size_t n = rec->len < 31 ? rec->len : 31;
    memcpy(buf, rec->data, n);
    buf[n] = 0;
    uint64_t v = strtoull(buf, NULL, 10);
    char key[8];
    int kl = snprintf(key, sizeof key, "g%02d", (int)(v % GROUPS));
    return loom_mr_emit_u64(out, key, (size_t)kl, v);
}

static loom_status_t reduce(loom_ctx_t *ctx, const void *key, size_t klen, loom_mr_values_t *vals,
                            loom_mr_emit_t *out, void *user)
{
    uint64_t s = 0;
    const void *v;
    size_t vl;
    while (loom_mr_values_next(vals, &v, &vl))
        s += loom_mr_u64(v, vl);
    return loom_mr_emit_u64(out, key, klen, s);
}

/* Everything to the last partition: the others must still exist, empty. */
static int last_partition(const void *key, size_t klen, int nparts, void *user)
{
    return nparts - 1;
}

static char input[4096];

static void make_input(void)
{
    snprintf(input, sizeof input, "%s/mr_numbers.txt", loom_test_tmpdir());
    if (loom_is_master(loom_test_ctx)) {
        FILE *f = fopen(input, "w");
        for (int i = 0; i < NUMBERS; i++)
            fprintf(f, "%d\n", i);
        fclose(f);
    }
    MPI_Barrier(loom_comm(loom_test_ctx));
}

/* Rank 0 reads every part file back and checks each group's sum. */
static void check_output(const char *dir, int nparts)
{
    if (!loom_is_master(loom_test_ctx)) return;
    uint64_t got[GROUPS] = {0};
    int seen = 0;
    for (int p = 0; p < nparts; p++) {
        char path[4400], line[128];
        snprintf(path, sizeof path, "%s/part-%05d", dir, p);
        FILE *f = fopen(path, "r");
        CU_ASSERT_PTR_NOT_NULL_FATAL(f);
        while (fgets(line, sizeof line, f)) {
            int g;
            unsigned long long s;
            CU_ASSERT_EQUAL(sscanf(line, "g%d\t%llu", &g, &s), 2);
            if (g >= 0 && g < GROUPS) got[g] = s, seen++;
        }
        fclose(f);
    }
    CU_ASSERT_EQUAL(seen, GROUPS);
    for (int g = 0; g < GROUPS; g++) {
        uint64_t want = 0;
        for (uint64_t n = (uint64_t)g; n < NUMBERS; n += GROUPS)
            want += n;
        CU_ASSERT_EQUAL(got[g], want);
    }
    char ok[4400];
    snprintf(ok, sizeof ok, "%s/_SUCCESS", dir);
    FILE *f = fopen(ok, "r");
    CU_ASSERT_PTR_NOT_NULL(f);
    if (f) fclose(f);
}

static void run_job(const char *name, loom_mr_job_t *job, loom_mr_result_t *res)
{
    static const char *inputs[1];
    char out[4200];
    make_input();
    inputs[0] = input;
    snprintf(out, sizeof out, "%s/mr_%s", loom_test_tmpdir(), name);
    job->name = name;
    job->inputs = inputs;
    job->ninputs = 1;
    job->output = out;
    job->map = map;
    job->reduce = reduce;
    job->split_size = 4096;
    job->spill_dir = loom_test_tmpdir();
    job->overwrite = 1; /* the same test directory on every run */
    loom_status_t st = loom_mr_run(loom_test_ctx, job, res);
    CU_ASSERT_EQUAL_FATAL(st, LOOM_OK);
    CU_ASSERT_EQUAL(res->input_records, NUMBERS);
    check_output(out, job->reducers ? job->reducers : loom_num_workers(loom_test_ctx));
}

static void test_combined(void)
{
    loom_mr_job_t job = {.combine = loom_mr_combine_sum_u64, .reducers = 5};
    loom_mr_result_t res;
    run_job("combined", &job, &res);
    CU_ASSERT_EQUAL(res.map_pairs, NUMBERS);
    CU_ASSERT(res.output_records == GROUPS);
}

static void test_uncombined_spilling(void)
{
    loom_mr_job_t job = {.memory = 65536, .reducers = 3};
    loom_mr_result_t res;
    run_job("spilling", &job, &res);
    CU_ASSERT(res.spill_runs > 0);
}

static void test_partitioner(void)
{
    loom_mr_job_t job = {
        .combine = loom_mr_combine_sum_u64, .partition = last_partition, .reducers = 4};
    loom_mr_result_t res;
    run_job("partitioner", &job, &res);
}

static void test_bad_partition_count(void)
{
    /* Usage errors come back on every rank, with no collective left hanging. */
    loom_mr_job_t job = {.name = "bad", .map = map, .output = "/nonexistent/dir/out"};
    static const char *in[] = {"/nonexistent/input"};
    job.inputs = in;
    job.ninputs = 1;
    loom_status_t st = loom_mr_run(loom_test_ctx, &job, NULL);
    CU_ASSERT_NOT_EQUAL(st, LOOM_OK);
    if (loom_is_master(loom_test_ctx))
        CU_ASSERT_PTR_NOT_NULL(strstr(loom_error_message(loom_test_ctx), "/nonexistent/input"));
    loom_error_clear(loom_test_ctx);
}

static void register_suites(void)
{
    static const CU_TestInfo tests[] = {
        {"combined sums at any rank count", test_combined},
        {"uncombined pairs under a 64K budget", test_uncombined_spilling},
        {"custom partitioner leaves empty parts", test_partitioner},
        {"a missing input fails on every rank", test_bad_partition_count},
        {NULL, NULL},
    };
    loom_test_suite("mr_engine", tests);
}

int main(int argc, char **argv)
{
    return loom_test_main(argc, argv, register_suites);
}
