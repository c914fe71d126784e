/* Node memory: one POSIX shared-memory segment for the ranks of a node, a region per rank. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dataplane/dataplane.h"

struct loom_nodemem {
    loom_ctx_t *ctx;
    MPI_Comm node; /* the ranks that share the segment, in comm's order */
    unsigned char *seg;
    size_t len;
    size_t *at;  /* per rank of comm: its region's offset, or SIZE_MAX off the node */
    size_t mine; /* this rank's region's offset */
};

/* The ranks that share a segment: those of this rank's node (pretend nodes
 * too) that also share its memory. Collective over comm. */
static loom_status_t node_comm(loom_ctx_t *ctx, MPI_Comm comm, MPI_Comm *node)
{
    LOOM_TRY(loom_node_split(ctx, comm, node));
    if (loom_node_ranks(ctx) <= 0) return LOOM_OK;
    MPI_Comm pretend = *node;
    int e = MPI_Comm_split_type(pretend, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, node);
    MPI_Comm_free(&pretend);
    if (e != MPI_SUCCESS)
        return loom_error_mpi(ctx, e, "MPI_Comm_split_type (node memory)", __FILE__, __LINE__);
    return LOOM_OK;
}

/* Map a segment of `len` bytes on the node's ranks: its first rank creates it,
 * the others open it by name (and check its size), each populates the pages
 * of its own region [at, at + mylen) (so that they sit near it, and a full
 * /dev/shm is an error here, not a SIGBUS later), and it is unlinked once all
 * have it. Returns the mapping or NULL (on every rank of the node alike);
 * collective over node. */
static unsigned char *map_segment(loom_ctx_t *ctx, MPI_Comm node, size_t len, size_t at,
                                  size_t mylen, loom_status_t *st)
{
    static unsigned serial;
    char name[96];
    int fd = -1, ok = 1, e, nrank = 0;
    unsigned char *seg = NULL;
    MPI_Comm_rank(node, &nrank);
    if (nrank == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        snprintf(name, sizeof name, "/loom-node-%ld-%u-%lx", (long)getpid(), serial++,
                 (unsigned long)ts.tv_nsec ^ (unsigned long)ts.tv_sec << 30);
        fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600);
        ok = fd >= 0 && ftruncate(fd, (off_t)len) == 0;
    }
    e = MPI_Bcast(name, sizeof name, MPI_CHAR, 0, node);
    if (e == MPI_SUCCESS) e = MPI_Bcast(&ok, 1, MPI_INT, 0, node);
    if (e == MPI_SUCCESS && ok && nrank != 0) {
        struct stat sb;
        fd = shm_open(name, O_RDWR, 0600);
        ok = fd >= 0 && fstat(fd, &sb) == 0 && (size_t)sb.st_size == len;
    }
    if (e == MPI_SUCCESS && ok) {
        seg = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (seg == MAP_FAILED) seg = NULL;
        ok = seg != NULL;
    }
    if (seg && mylen) {
        /* 2 MiB pages where the kernel gives them to shared memory (advice
         * only); then this rank's pages, through its mapping so that the
         * advice applies, or where that is not known by reserving them */
        madvise(seg, len, MADV_HUGEPAGE);
#ifdef MADV_POPULATE_WRITE
        if (madvise(seg + at, mylen, MADV_POPULATE_WRITE) != 0)
            ok = errno == EINVAL && posix_fallocate(fd, (off_t)at, (off_t)mylen) == 0;
#else
        ok = posix_fallocate(fd, (off_t)at, (off_t)mylen) == 0;
#endif
    }
    if (fd >= 0) close(fd);
    if (e == MPI_SUCCESS) e = MPI_Allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_MIN, node);
    if (nrank == 0 && fd >= 0) shm_unlink(name); /* every rank has it open, or gives up */
    if (e != MPI_SUCCESS) *st = loom_error_mpi(ctx, e, "node memory", __FILE__, __LINE__);
    if (e != MPI_SUCCESS || !ok) {
        if (seg) munmap(seg, len);
        seg = NULL;
        if (e == MPI_SUCCESS)
            loom_log(ctx, LOOM_LOG_VERBOSE,
                     "node memory: no shared memory of %zu bytes on this node; using MPI", len);
    }
    return seg;
}

loom_status_t loom_nodemem_create(loom_ctx_t *ctx, MPI_Comm comm, size_t mylen, loom_nodemem_t **mp)
{
    *mp = NULL;
    int P = 1, rank = 0, nsize = 1, nrank = 0;
    MPI_Comm_size(comm, &P);
    MPI_Comm_rank(comm, &rank);
    loom_nodemem_t *m = calloc(1, sizeof *m);
    long long *all = NULL;
    loom_status_t st = LOOM_OK;
    if (m) {
        m->ctx = ctx;
        m->node = MPI_COMM_NULL;
        m->at = malloc((size_t)P * sizeof *m->at);
    }
    if (!m || !m->at) st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory for node memory");
    /* no rank enters the collectives below alone */
    st = loom_agree(ctx, comm, st);
    if (st == LOOM_OK) st = node_comm(ctx, comm, &m->node);
    if (st != LOOM_OK) goto out;
    LOOM_MPI_GOTO(ctx, st, MPI_Comm_size(m->node, &nsize), out);
    LOOM_MPI_GOTO(ctx, st, MPI_Comm_rank(m->node, &nrank), out);
    all = malloc((size_t)nsize * 2 * sizeof *all);
    st = loom_agree(ctx, m->node,
                    all ? LOOM_OK
                        : LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory for node memory"));
    if (st != LOOM_OK) goto out;
    long long me[2] = {rank, (long long)mylen};
    LOOM_MPI_GOTO(ctx, st, MPI_Allgather(me, 2, MPI_LONG_LONG, all, 2, MPI_LONG_LONG, m->node),
                  out);
    /* regions in node order, each on its own 2 MiB pages */
    size_t page = (size_t)2 << 20, len = 0;
    for (int r = 0; r < P; r++)
        m->at[r] = SIZE_MAX;
    for (int i = 0; i < nsize; i++) {
        m->at[all[2 * i]] = len;
        len += ((size_t)all[2 * i + 1] + page - 1) / page * page;
    }
    m->mine = m->at[rank];
    if (len == 0) len = page;
    m->len = len;
    const size_t small = (size_t)sysconf(_SC_PAGESIZE);
    if (nsize > 1)
        m->seg = map_segment(ctx, m->node, len, m->mine, (mylen + small - 1) / small * small, &st);
out:
    free(all);
    st = loom_agree(ctx, comm, st);
    if (st != LOOM_OK || !m->seg) loom_nodemem_destroy(&m);
    *mp = m;
    return st;
}

void *loom_nodemem_mine(loom_nodemem_t *m)
{
    return m->seg + m->mine;
}

void *loom_nodemem_base(loom_nodemem_t *m)
{
    return m->seg;
}

void *loom_nodemem_of(loom_nodemem_t *m, int r)
{
    return m->at[r] == SIZE_MAX ? NULL : m->seg + m->at[r];
}

size_t loom_nodemem_bytes(const loom_nodemem_t *m)
{
    return m->len;
}

MPI_Comm loom_nodemem_comm(const loom_nodemem_t *m)
{
    return m->node;
}

loom_status_t loom_nodemem_barrier(loom_nodemem_t *m)
{
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    int e = MPI_Barrier(m->node);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (e == MPI_SUCCESS) return LOOM_OK;
    loom_nodemem_revoke(m); /* no rank of the node waits on a barrier forever */
    return loom_error_mpi(m->ctx, e, "MPI_Barrier (node memory)", __FILE__, __LINE__);
}

void loom_nodemem_revoke(loom_nodemem_t *m)
{
    loom_comm_revoke(m->ctx, m->node);
}

void loom_nodemem_destroy(loom_nodemem_t **mp)
{
    if (!mp || !*mp) return;
    loom_nodemem_t *m = *mp;
    if (m->seg) munmap(m->seg, m->len);
    if (m->node != MPI_COMM_NULL) MPI_Comm_free(&m->node);
    free(m->at);
    free(m);
    *mp = NULL;
}
