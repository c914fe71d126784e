/* Loom jobs: what a `loom <command>` is, so that a job file is a table entry. */
#ifndef LOOM_JOB_H
#define LOOM_JOB_H

#include "loom/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A command of the `loom` tool. `run` is called on every rank after the
 * options are parsed; it is collective over the job communicator and returns
 * the agreed status (use loom_agree before returning a failure). The CLI prints
 * the error and the run summary. */
typedef struct loom_job {
    const char *name;             /* "pagerank" */
    const char *summary;          /* one line for `loom --help` */
    const char *usage;            /* "loom pagerank GRAPH [options]" */
    const loom_option_t *options; /* the command's own table (runtime options are added) */
    loom_status_t (*run)(loom_ctx_t *ctx, const loom_opts_t *opts);
} loom_job_t;

#ifdef __cplusplus
}
#endif
#endif
