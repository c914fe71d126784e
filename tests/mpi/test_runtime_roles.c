/* MPI tests of the runtime: roles, communicators and agreement on failure. */
#include <string.h>

#include "loom_test.h"

static void test_roles(void)
{
    loom_ctx_t *ctx = loom_test_ctx;
    int p = loom_size(ctx), r = loom_rank(ctx);
    CU_ASSERT_EQUAL(loom_is_master(ctx), r == 0);
    if (p == 1) {
        CU_ASSERT_TRUE(loom_is_worker(ctx));
        CU_ASSERT_EQUAL(loom_num_workers(ctx), 1);
        CU_ASSERT_EQUAL(loom_worker_index(ctx), 0);
    } else {
        CU_ASSERT_EQUAL(loom_is_worker(ctx), r > 0);
        CU_ASSERT_EQUAL(loom_num_workers(ctx), p - 1);
        CU_ASSERT_EQUAL(loom_worker_index(ctx), r - 1);
        CU_ASSERT_EQUAL(loom_worker_rank(ctx, p - 2), p - 1);
    }
    MPI_Comm w = loom_worker_comm(ctx);
    CU_ASSERT_EQUAL(w == MPI_COMM_NULL, !loom_is_worker(ctx));
    if (w != MPI_COMM_NULL) {
        int wsize = 0, wrank = -1;
        MPI_Comm_size(w, &wsize);
        MPI_Comm_rank(w, &wrank);
        CU_ASSERT_EQUAL(wsize, loom_num_workers(ctx));
        CU_ASSERT_EQUAL(wrank, loom_worker_index(ctx));
    }
    CU_ASSERT(loom_threads(ctx) >= 1);
}

static void test_agree(void)
{
    loom_ctx_t *ctx = loom_test_ctx;
    int p = loom_size(ctx), r = loom_rank(ctx);
    loom_error_clear(ctx);
    CU_ASSERT_EQUAL(loom_agree(ctx, loom_comm(ctx), LOOM_OK), LOOM_OK);

    /* The last rank and (when different) rank 1 fail: every rank must learn
     * the lowest failing rank's status and message. */
    loom_status_t st = LOOM_OK;
    int first_bad = p > 1 ? 1 : 0;
    if (r == p - 1) st = LOOM_ERROR(ctx, LOOM_ERR_IO, "late.txt: failure on rank %d", r);
    if (r == first_bad) {
        loom_error_clear(ctx);
        st = LOOM_ERROR(ctx, LOOM_ERR_FORMAT, "graph.el:7: failure on rank %d", r);
    }
    loom_status_t agreed = loom_agree(ctx, loom_comm(ctx), st);
    CU_ASSERT_EQUAL(agreed, LOOM_ERR_FORMAT);
    char want[64];
    snprintf(want, sizeof want, "graph.el:7: failure on rank %d", first_bad);
    CU_ASSERT_STRING_EQUAL(loom_error_message(ctx), want);
    loom_error_clear(ctx);
}

static void test_wait(void)
{
    loom_ctx_t *ctx = loom_test_ctx;
    MPI_Request req;
    int x = loom_rank(ctx) + 1, sum = 0;
    MPI_Iallreduce(&x, &sum, 1, MPI_INT, MPI_SUM, loom_comm(ctx), &req);
    CU_ASSERT_EQUAL(loom_wait(ctx, &req, NULL), LOOM_OK);
    int p = loom_size(ctx);
    CU_ASSERT_EQUAL(sum, p * (p + 1) / 2);
}

static void test_summary(void)
{
    loom_ctx_t *ctx = loom_test_ctx;
    /* Phases known to some ranks only must not break the collective. */
    loom_timer_start(ctx, loom_rank(ctx) % 2 ? "odd-only" : "even-only");
    loom_timer_stop(ctx, loom_rank(ctx) % 2 ? "odd-only" : "even-only");
    loom_summary_int(ctx, "answer", 42);
    CU_ASSERT_EQUAL(loom_summary_print(ctx, "test", LOOM_OK), LOOM_OK);
}

static void register_suites(void)
{
    static const CU_TestInfo tests[] = {
        {"roles", test_roles},     {"agree", test_agree}, {"wait", test_wait},
        {"summary", test_summary}, {NULL, NULL},
    };
    loom_test_suite("runtime roles", tests);
}

int main(int argc, char **argv)
{
    return loom_test_main(argc, argv, register_suites);
}
