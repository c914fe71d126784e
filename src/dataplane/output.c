/* Atomic output: write under a temporary name beside the target, rename into
 * place only when every rank succeeded, remove the temporary otherwise. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "loom/graph.h"

struct loom_output {
    MPI_Comm comm;
    int is_dir;
    char *final;
    char *tmp;
};

static int remove_entry(const char *p, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)type;
    (void)ftw;
    return remove(p);
}

/* Remove a file or a directory tree; a missing path is not an error. */
static void remove_tree(const char *path)
{
    struct stat sb;
    if (lstat(path, &sb) != 0) return;
    if (S_ISDIR(sb.st_mode))
        nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    else
        unlink(path);
}

static uint64_t random_bits(void)
{
    uint64_t r = 0;
    int fd = open("/dev/urandom", O_RDONLY);
    if (fd >= 0) {
        if (read(fd, &r, sizeof r) != (ssize_t)sizeof r) r = 0;
        close(fd);
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return r ^ ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 40);
}

/* Split `path` into its directory ("." when none) and last component. */
static loom_status_t split_path(loom_ctx_t *ctx, const char *path, char **dir, char **base)
{
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        n--;
    size_t slash = n;
    while (slash > 0 && path[slash - 1] != '/')
        slash--;
    *dir = slash == 0 ? strdup(".") : strndup(path, slash > 1 ? slash - 1 : 1);
    *base = strndup(path + slash, n - slash);
    if (!*dir || !*base) {
        free(*dir);
        free(*base);
        return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory for output path %s", path);
    }
    return LOOM_OK;
}

static loom_status_t make_temp(loom_ctx_t *ctx, const char *path, int is_dir, char **tmp)
{
    char *dir = NULL, *base = NULL;
    LOOM_TRY(split_path(ctx, path, &dir, &base));
    loom_status_t st = LOOM_OK;
    struct stat sb;
    if (!*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0 || strcmp(base, "/") == 0) {
        st = LOOM_ERROR(ctx, LOOM_ERR_USAGE, "%s: not a valid output path", path);
    } else if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: output directory %s does not exist", path, dir);
    } else if (access(dir, W_OK | X_OK) != 0) {
        st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot write in directory %s: %s", path, dir,
                        strerror(errno));
    } else if (stat(path, &sb) == 0 && !is_dir && S_ISDIR(sb.st_mode)) {
        st =
            LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: is a directory; cannot replace it with a file", path);
    } else if (stat(path, &sb) == 0 && is_dir && !S_ISDIR(sb.st_mode)) {
        st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: exists and is not a directory", path);
    }
    size_t cap = strlen(dir) + strlen(base) + 40;
    char *name = st == LOOM_OK ? malloc(cap) : NULL;
    if (st == LOOM_OK && !name) st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    for (int tries = 0; st == LOOM_OK; tries++) {
        snprintf(name, cap, "%s/.%s.tmp-%016llx", dir, base, (unsigned long long)random_bits());
        int rc;
        if (is_dir) {
            rc = mkdir(name, 0777);
        } else {
            int fd = open(name, O_CREAT | O_EXCL | O_WRONLY, 0666);
            rc = fd < 0 ? -1 : 0;
            if (fd >= 0) close(fd);
        }
        if (rc == 0) break;
        if (errno != EEXIST || tries >= 16)
            st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot create temporary %s: %s", path, name,
                            strerror(errno));
    }
    free(dir);
    free(base);
    if (st != LOOM_OK) {
        free(name);
        return st;
    }
    *tmp = name;
    return LOOM_OK;
}

loom_status_t loom_output_begin(loom_ctx_t *ctx, MPI_Comm comm, const char *path, int is_dir,
                                loom_output_t **out)
{
    *out = NULL;
    int rank = 0;
    MPI_Comm_rank(comm, &rank);
    char *tmp = NULL;
    loom_status_t st = LOOM_OK;
    if (!path || !*path) st = LOOM_ERROR(ctx, LOOM_ERR_USAGE, "no output path given");
    if (rank == 0 && st == LOOM_OK) st = make_temp(ctx, path, is_dir, &tmp);
    loom_output_t *o = calloc(1, sizeof *o);
    if (!o) st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    st = loom_agree(ctx, comm, st);
    if (st != LOOM_OK) {
        if (tmp) remove_tree(tmp);
        free(tmp);
        free(o);
        return st;
    }
    unsigned long long len = rank == 0 ? strlen(tmp) : 0;
    MPI_Bcast(&len, 1, MPI_UNSIGNED_LONG_LONG, 0, comm);
    if (rank != 0) tmp = calloc(len + 1, 1);
    o->final = strdup(path);
    if (!tmp || !o->final) st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    st = loom_agree(ctx, comm, st);
    if (st == LOOM_OK) MPI_Bcast(tmp, (int)len + 1, MPI_CHAR, 0, comm);
    o->comm = comm;
    o->is_dir = is_dir;
    o->tmp = tmp;
    if (st != LOOM_OK) {
        if (rank == 0 && tmp) remove_tree(tmp);
        free(o->final);
        free(tmp);
        free(o);
        return st;
    }
    *out = o;
    return LOOM_OK;
}

const char *loom_output_path(const loom_output_t *out)
{
    return out ? out->tmp : NULL;
}

/* Rank 0: move the finished temporary over the final path. */
static loom_status_t commit(loom_ctx_t *ctx, loom_output_t *o)
{
    struct stat sb;
    char *trash = NULL;
    if (o->is_dir && stat(o->final, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        /* rename() will not replace a non-empty directory: move the old one aside. */
        size_t cap = strlen(o->final) + 40;
        trash = malloc(cap);
        if (!trash) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
        snprintf(trash, cap, "%s.old-%016llx", o->final, (unsigned long long)random_bits());
        if (rename(o->final, trash) != 0) {
            loom_status_t st =
                LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot replace: %s", o->final, strerror(errno));
            free(trash);
            return st;
        }
    }
    loom_status_t st = LOOM_OK;
    if (rename(o->tmp, o->final) != 0) {
        st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot rename %s into place: %s", o->final, o->tmp,
                        strerror(errno));
        if (trash) rename(trash, o->final);
    } else if (trash) {
        remove_tree(trash);
    }
    free(trash);
    return st;
}

loom_status_t loom_output_end(loom_ctx_t *ctx, loom_output_t **out, loom_status_t st)
{
    loom_output_t *o = out ? *out : NULL;
    if (!o) return st;
    int rank = 0;
    MPI_Comm_rank(o->comm, &rank);
    st = loom_agree(ctx, o->comm, st);
    loom_status_t fin = LOOM_OK;
    if (rank == 0) {
        if (st == LOOM_OK) fin = commit(ctx, o);
        if (st != LOOM_OK || fin != LOOM_OK) remove_tree(o->tmp);
    }
    if (st == LOOM_OK) st = loom_agree(ctx, o->comm, fin);
    free(o->tmp);
    free(o->final);
    free(o);
    *out = NULL;
    return st;
}
