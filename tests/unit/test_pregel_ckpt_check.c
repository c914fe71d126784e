/* Unit tests of the checks a Pregel restart makes on what a checkpoint claims
 * (src/pregel/ckpt_check.c): each damaged claim is refused with its reason,
 * each sound one accepted. The whole-file cases are in test_checkpoint.py. */
#include <stdint.h>

#include "loom_test.h"
#include "pregel/ckpt_check.h"

static void test_ranges(void)
{
    CU_ASSERT_PTR_NULL(loom_ckpt_check_ranges(0, 0, 0));
    CU_ASSERT_PTR_NULL(loom_ckpt_check_ranges(7, 3, 10));
    CU_ASSERT_PTR_NULL(loom_ckpt_check_ranges(LOOM_CKPT_MAX_SUPERSTEP, 1, 1));
    CU_ASSERT_PTR_NOT_NULL(loom_ckpt_check_ranges(-1, 1, 10));
    CU_ASSERT_PTR_NOT_NULL(loom_ckpt_check_ranges(LOOM_CKPT_MAX_SUPERSTEP + 1, 1, 10));
    CU_ASSERT_PTR_NOT_NULL(loom_ckpt_check_ranges(0, 0, 10));  /* vertices, no parts */
    CU_ASSERT_PTR_NOT_NULL(loom_ckpt_check_ranges(0, 12, 10)); /* more parts than vertices */
    CU_ASSERT_PTR_NOT_NULL(loom_ckpt_check_ranges(0, -1, 10));
    CU_ASSERT_PTR_NOT_NULL(loom_ckpt_check_ranges(0, LOOM_CKPT_MAX_PARTS + 1, INT64_MAX));
    CU_ASSERT_PTR_NOT_NULL(loom_ckpt_check_ranges(0, 1, -5));
    CU_ASSERT_PTR_NULL(loom_ckpt_check_ranges(0, 1, INT64_MAX)); /* n + 1 would overflow */
}

static void test_parts(void)
{
    const uint64_t lo[] = {0, 4, 7}, hi[] = {4, 7, 10};
    CU_ASSERT_PTR_NULL(loom_ckpt_check_parts(lo, hi, 3, 10));
    CU_ASSERT_PTR_NOT_NULL(loom_ckpt_check_parts(lo, hi, 3, 11)); /* short of n */
    CU_ASSERT_PTR_NOT_NULL(loom_ckpt_check_parts(lo, hi, 3, 9));  /* past n */
    const uint64_t gap_lo[] = {0, 5}, gap_hi[] = {4, 10};
    CU_ASSERT_PTR_NOT_NULL(loom_ckpt_check_parts(gap_lo, gap_hi, 2, 10));
    const uint64_t overlap_lo[] = {0, 3}, overlap_hi[] = {4, 10};
    CU_ASSERT_PTR_NOT_NULL(loom_ckpt_check_parts(overlap_lo, overlap_hi, 2, 10));
    const uint64_t empty_lo[] = {0, 4, 4}, empty_hi[] = {4, 4, 10};
    CU_ASSERT_PTR_NOT_NULL(loom_ckpt_check_parts(empty_lo, empty_hi, 3, 10));
    /* a part that wraps around 2^64 */
    const uint64_t wrap_lo[] = {0, 4}, wrap_hi[] = {4, UINT64_MAX};
    CU_ASSERT_PTR_NOT_NULL(loom_ckpt_check_parts(wrap_lo, wrap_hi, 2, 10));
    CU_ASSERT_PTR_NULL(loom_ckpt_check_parts(NULL, NULL, 0, 0));
}

static void test_counts(void)
{
    const uint64_t c[] = {2, 0, 1, 3, 1};
    uint64_t first, mine;
    CU_ASSERT_PTR_NULL(loom_ckpt_sum_counts(c, 5, 2, 7, 0, &first, &mine));
    CU_ASSERT_EQUAL(first, 2);
    CU_ASSERT_EQUAL(mine, 5);
    CU_ASSERT_PTR_NULL(loom_ckpt_sum_counts(c, 5, 0, 7, 0, &first, &mine));
    CU_ASSERT_EQUAL(first, 0);
    CU_ASSERT_EQUAL(mine, 7);
    CU_ASSERT_PTR_NOT_NULL(loom_ckpt_sum_counts(c, 5, 2, 6, 0, &first, &mine)); /* too many */
    CU_ASSERT_PTR_NOT_NULL(loom_ckpt_sum_counts(c, 5, 2, 7, 1, &first, &mine)); /* combined */
    CU_ASSERT_PTR_NOT_NULL(loom_ckpt_sum_counts(c, 5, 6, 7, 0, &first, &mine)); /* from > len */
    /* counts whose sum wraps around 2^64 */
    const uint64_t wrap[] = {UINT64_MAX, 2};
    CU_ASSERT_PTR_NOT_NULL(loom_ckpt_sum_counts(wrap, 2, 1, UINT64_MAX, 0, &first, &mine));
    CU_ASSERT_PTR_NOT_NULL(loom_ckpt_sum_counts(wrap, 2, 0, UINT64_MAX, 0, &first, &mine));
}

static void test_bytes(void)
{
    uint64_t b;
    CU_ASSERT_PTR_NULL(loom_ckpt_bytes(1000, 24, &b));
    CU_ASSERT_EQUAL(b, 24000);
    CU_ASSERT_PTR_NOT_NULL(loom_ckpt_bytes(UINT64_MAX / 8 + 1, 8, &b));
}

static void register_suites(void)
{
    static const CU_TestInfo tests[] = {
        {"ranges", test_ranges},
        {"parts_tile", test_parts},
        {"message_counts", test_counts},
        {"byte_sizes", test_bytes},
        {NULL, NULL},
    };
    loom_test_suite("pregel_ckpt_check", tests);
}

int main(int argc, char **argv)
{
    return loom_test_main(argc, argv, register_suites);
}
