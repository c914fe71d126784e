/* Loom: data-intensive computing on MPI ranks. Include this for the whole API. */
#ifndef LOOM_LOOM_H
#define LOOM_LOOM_H

#include "loom/version.h"
#include "loom/status.h"
#include "loom/runtime.h"
#include "loom/output.h"
#include "loom/graph.h"
#include "loom/job.h"
#include "loom/pregel.h"
#include "loom/mr.h"
#include "loom/dataset.h"
#include "loom/chunks.h"

#endif
