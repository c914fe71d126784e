/* Test harness: one Loom context per process, CUnit, failures reduced over ranks. */
#include "loom_test.h"

#include <CUnit/Basic.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>

loom_ctx_t *loom_test_ctx;

const char *loom_test_tmpdir(void)
{
    const char *t = getenv("LOOM_TMP");
    return (t && *t) ? t : "/tmp";
}

uint64_t loom_test_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void loom_test_rmtree(const char *dir)
{
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

void loom_test_suite(const char *name, const CU_TestInfo *tests)
{
    CU_pSuite s = CU_add_suite(name, NULL, NULL);
    for (const CU_TestInfo *t = tests; s && t->pName; t++)
        CU_add_test(s, t->pName, t->pTestFunc);
}

int loom_test_main(int argc, char **argv, void (*register_suites)(void))
{
    if (loom_ctx_create(&argc, &argv, &loom_test_ctx) != LOOM_OK) {
        fprintf(stderr, "test: cannot create the Loom context: %s\n",
                loom_test_ctx ? loom_error_message(loom_test_ctx) : "out of memory");
        return 2;
    }
    int rank = loom_rank(loom_test_ctx);
    if (rank != 0 && !freopen("/dev/null", "w", stdout)) return 2;
    unsigned failures = 1;
    if (CU_initialize_registry() == CUE_SUCCESS) {
        register_suites();
        CU_basic_set_mode(CU_BRM_VERBOSE);
        CU_basic_run_tests();
        failures = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
        if (failures) fprintf(stderr, "[r%d] %u failures\n", rank, failures);
        CU_cleanup_registry();
    }
    unsigned worst = failures;
    MPI_Allreduce(&failures, &worst, 1, MPI_UNSIGNED, MPI_MAX, loom_comm(loom_test_ctx));
    loom_ctx_destroy(&loom_test_ctx);
    return worst ? 1 : 0;
}
