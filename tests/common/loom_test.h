/* Test harness: one Loom context per process, CUnit, failures reduced over ranks. */
#ifndef LOOM_TEST_H
#define LOOM_TEST_H

#include <CUnit/CUnit.h>
#include <stdint.h>

#include "loom/loom.h"

/* The context of the running test program (created by loom_test_main). */
extern loom_ctx_t *loom_test_ctx;

/* Create the context, silence stdout on ranks other than 0, let
 * `register_suites` add CUnit suites, run them all, and return 0 only when no
 * rank saw a failure (the failure count is reduced with MPI_Allreduce(MAX)). */
int loom_test_main(int argc, char **argv, void (*register_suites)(void));

/* A scratch directory private to this test (LOOM_TMP, else /tmp). */
const char *loom_test_tmpdir(void);

/* Add a suite with the given tests; `tests` ends with {NULL, NULL}. */
void loom_test_suite(const char *name, const CU_TestInfo *tests);
/* splitmix64: the next of a reproducible sequence of 64-bit numbers kept in *state. */
uint64_t loom_test_rand(uint64_t *state);
/* Remove a directory tree the test made (nothing outside `dir`; symlinks not followed). */
void loom_test_rmtree(const char *dir);

#endif
