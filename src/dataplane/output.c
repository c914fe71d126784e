/* Atomic output: write under a temporary name beside the target, rename into place only when
 * every rank succeeded, remove the temporary otherwise; replace only what Loom wrote. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dataplane/dataplane.h"

#define SUCCESS_MARK "_SUCCESS"

struct loom_output {
    MPI_Comm comm;
    int job_comm; /* comm was the job's: a recovery may have replaced it since */
    unsigned flags;
    char *final;
    char *tmp;
    int temp; /* loom_temp_register handle (rank 0) */
};

int loom_remove_tree(const char *path)
{
    struct stat sb;
    if (lstat(path, &sb) != 0) return 0;
    if (!S_ISDIR(sb.st_mode)) return unlink(path) == 0;
    DIR *d = opendir(path);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d))) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
            size_t n = strlen(path) + strlen(de->d_name) + 2;
            char *c = malloc(n);
            if (!c) continue;
            snprintf(c, n, "%s/%s", path, de->d_name);
            loom_remove_tree(c);
            free(c);
        }
        closedir(d);
    }
    return rmdir(path) == 0;
}

static uint64_t random_bits(void)
{
    uint64_t r = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
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

static const char *kind_of(mode_t m)
{
    return S_ISDIR(m)    ? "a directory"
           : S_ISLNK(m)  ? "a symbolic link"
           : S_ISCHR(m)  ? "a character device"
           : S_ISBLK(m)  ? "a block device"
           : S_ISFIFO(m) ? "a FIFO"
           : S_ISSOCK(m) ? "a socket"
                         : "not a regular file";
}

/* The canonical form of `path`, which need not exist yet: its directory
 * resolved, its last component appended. NULL when the directory cannot be
 * resolved. Caller frees. */
static char *canonical(const char *path)
{
    char *r = realpath(path, NULL);
    if (r) return r;
    char *dir = NULL, *base = NULL;
    if (split_path(NULL, path, &dir, &base) != LOOM_OK) return NULL;
    char *rd = realpath(dir, NULL);
    char *out = NULL;
    if (rd) {
        size_t n = strlen(rd) + strlen(base) + 2;
        out = malloc(n);
        if (out) snprintf(out, n, "%s%s%s", rd, strcmp(rd, "/") ? "/" : "", base);
    }
    free(rd);
    free(dir);
    free(base);
    return out;
}

/* Is `a` equal to `b` or an ancestor of it (both canonical)? */
static int covers(const char *a, const char *b)
{
    size_t n = strlen(a);
    if (strncmp(a, b, n) != 0) return 0;
    return b[n] == '\0' || b[n] == '/' || (n == 1 && a[0] == '/');
}

static loom_status_t check_inputs(loom_ctx_t *ctx, const char *path, const char *const *inputs,
                                  int ninputs)
{
    if (!inputs || ninputs <= 0) return LOOM_OK;
    char *out = canonical(path);
    if (!out) return LOOM_OK; /* the directory check reports it */
    loom_status_t st = LOOM_OK;
    for (int i = 0; i < ninputs && st == LOOM_OK; i++) {
        if (!inputs[i]) continue;
        struct stat sb;
        /* generator specs and globs are not paths; HDF5 inputs FILE:/DS name FILE */
        char *file = strdup(inputs[i]);
        if (!file) break;
        char *ds = strstr(file, ":/");
        if (ds && stat(file, &sb) != 0) *ds = '\0';
        char *in = stat(file, &sb) == 0 ? realpath(file, NULL) : NULL;
        if (in) {
            if (!strcmp(in, out))
                st = LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                                "--out %s is the input %s: Loom never replaces its input", path,
                                inputs[i]);
            else if (covers(out, in))
                st = LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                                "--out %s contains the input %s: replacing it would delete the "
                                "input",
                                path, inputs[i]);
            else if (covers(in, out))
                st = LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                                "--out %s is inside the input directory %s: write it elsewhere",
                                path, inputs[i]);
        }
        free(in);
        free(file);
    }
    free(out);
    return st;
}

/* Rank 0's verdict on writing `path` (see loom_output_check). */
static loom_status_t check_target(loom_ctx_t *ctx, const char *path, unsigned flags)
{
    int is_dir = (flags & LOOM_OUTPUT_DIR) != 0;
    char *dir = NULL, *base = NULL;
    LOOM_TRY(split_path(ctx, path, &dir, &base));
    loom_status_t st = LOOM_OK;
    struct stat sb;
    if (!*base || !strcmp(base, ".") || !strcmp(base, "..") || !strcmp(base, "/")) {
        st = LOOM_ERROR(ctx, LOOM_ERR_USAGE, "%s: not a valid output path", path);
    } else if (strlen(path) > PATH_MAX - 64) {
        st = LOOM_ERROR(ctx, LOOM_ERR_USAGE, "%s: output path too long", path);
    } else if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: output directory %s does not exist", path, dir);
    } else if (access(dir, W_OK | X_OK) != 0) {
        st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot write in directory %s: %s", path, dir,
                        strerror(errno));
    } else if (lstat(path, &sb) == 0) {
        if (!is_dir && !S_ISREG(sb.st_mode)) {
            st = LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                            "%s: exists and is %s; Loom replaces only regular files", path,
                            kind_of(sb.st_mode));
        } else if (is_dir && !S_ISDIR(sb.st_mode)) {
            st = LOOM_ERROR(ctx, LOOM_ERR_USAGE, "%s: exists and is %s, not an output directory",
                            path, S_ISREG(sb.st_mode) ? "a file" : kind_of(sb.st_mode));
        } else if (is_dir) {
            size_t n = strlen(path) + sizeof SUCCESS_MARK + 2;
            char *mark = malloc(n);
            if (!mark) {
                st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
            } else {
                snprintf(mark, n, "%s/%s", path, SUCCESS_MARK);
                struct stat ms;
                int loom_output = lstat(mark, &ms) == 0 && S_ISREG(ms.st_mode);
                if (!loom_output)
                    st = LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                                    "%s: exists and is not a Loom output (no %s in it); Loom "
                                    "never deletes data it did not write: choose another --out",
                                    path, SUCCESS_MARK);
                else if (!(flags & LOOM_OUTPUT_OVERWRITE))
                    st = LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                                    "%s: exists (an earlier output); give --overwrite to replace "
                                    "it, or choose another --out",
                                    path);
                free(mark);
            }
        }
    }
    free(dir);
    free(base);
    return st;
}

loom_status_t loom_output_check(loom_ctx_t *ctx, MPI_Comm comm, const char *path, unsigned flags,
                                const char *const *inputs, int ninputs)
{
    int rank = 0;
    LOOM_MPI(ctx, MPI_Comm_rank(comm, &rank));
    loom_status_t st = LOOM_OK;
    if (!path || !*path) st = LOOM_ERROR(ctx, LOOM_ERR_USAGE, "no output path given");
    /* an output that is an input is told as such, before anything else */
    if (rank == 0 && st == LOOM_OK) st = check_inputs(ctx, path, inputs, ninputs);
    if (rank == 0 && st == LOOM_OK) st = check_target(ctx, path, flags);
    return loom_agree(ctx, comm, st);
}

/* ------------------------------------------------------------------ temporaries */

/* Remove `.<name>.loom-tmp.<host>.<pid>.<hex>` (and `loom-old`) entries in
 * dir whose process is gone: what a job killed mid-write left. Rank 0. */
static void sweep(loom_ctx_t *ctx, const char *dir)
{
    const char *host = loom_hostname(ctx);
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *s = de->d_name;
        if (s[0] != '.') continue;
        const char *m = strstr(s, ".loom-tmp.");
        if (!m) m = strstr(s, ".loom-old.");
        if (!m) continue;
        const char *h = m + 10;
        size_t hl = strlen(host);
        if (strncmp(h, host, hl) != 0 || h[hl] != '.') continue;
        char *end = NULL;
        long long pid = strtoll(h + hl + 1, &end, 10);
        if (!end || *end != '.' || pid == (long long)getpid()) continue;
        if (loom_pid_alive_here(ctx, host, pid) != 0) continue;
        size_t n = strlen(dir) + strlen(s) + 2;
        char *p = malloc(n);
        if (!p) continue;
        snprintf(p, n, "%s/%s", dir, s);
        loom_remove_tree(p);
        loom_log(ctx, LOOM_LOG_WARN, "removed %s, left by a Loom job (pid %lld) that is gone", p,
                 pid);
        free(p);
    }
    closedir(d);
}

/* Create the temporary beside `path`, registered for removal on a signal before it
 * exists (so that no signal can leave it); *handle is the registration. */
static loom_status_t make_temp(loom_ctx_t *ctx, const char *path, unsigned flags, char **tmp,
                               int *handle)
{
    char *dir = NULL, *base = NULL;
    LOOM_TRY(split_path(ctx, path, &dir, &base));
    sweep(ctx, dir);
    const char *host = loom_hostname(ctx);
    size_t cap = strlen(dir) + strlen(base) + strlen(host) + 64;
    char *name = malloc(cap);
    loom_status_t st = name ? LOOM_OK : LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    for (int tries = 0; st == LOOM_OK; tries++) {
        snprintf(name, cap, "%s/.%s.loom-tmp.%s.%ld.%016llx", dir, base, host, (long)getpid(),
                 (unsigned long long)random_bits());
        *handle = loom_temp_register(ctx, name, (flags & LOOM_OUTPUT_DIR) != 0);
        int rc;
        if (flags & LOOM_OUTPUT_DIR) {
            rc = mkdir(name, 0777);
        } else {
            int fd = open(name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0666);
            rc = fd < 0 ? -1 : 0;
            if (fd >= 0) close(fd);
        }
        if (rc == 0) break;
        int err = errno;
        loom_temp_forget(ctx, *handle);
        *handle = -1;
        if (err != EEXIST || tries >= 16)
            st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot create temporary %s: %s", path, name,
                            strerror(err));
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

loom_status_t loom_output_begin(loom_ctx_t *ctx, MPI_Comm comm, const char *path, unsigned flags,
                                loom_output_t **out)
{
    *out = NULL;
    int rank = 0;
    LOOM_MPI(ctx, MPI_Comm_rank(comm, &rank));
    LOOM_TRY(loom_output_check(ctx, comm, path, flags, NULL, 0));
    char *tmp = NULL;
    int handle = -1;
    loom_status_t st = LOOM_OK;
    if (rank == 0) st = make_temp(ctx, path, flags, &tmp, &handle);
    loom_output_t *o = calloc(1, sizeof *o);
    if (!o) st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    st = loom_agree(ctx, comm, st);
    unsigned long long len = rank == 0 && tmp ? strlen(tmp) : 0;
    if (st == LOOM_OK) LOOM_MPI_KEEP(ctx, st, MPI_Bcast(&len, 1, MPI_UNSIGNED_LONG_LONG, 0, comm));
    if (st == LOOM_OK) {
        if (rank != 0) tmp = calloc(len + 1, 1);
        o->final = strdup(path);
        if (!tmp || !o->final) st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
        st = loom_agree(ctx, comm, st);
    }
    if (st == LOOM_OK) LOOM_MPI_KEEP(ctx, st, MPI_Bcast(tmp, (int)len + 1, MPI_CHAR, 0, comm));
    if (st != LOOM_OK) {
        if (rank == 0 && tmp) loom_remove_tree(tmp);
        loom_temp_forget(ctx, handle);
        free(tmp);
        if (o) free(o->final);
        free(o);
        return st;
    }
    o->comm = comm;
    o->job_comm = comm == loom_comm(ctx);
    o->flags = flags;
    o->tmp = tmp;
    o->temp = handle;
    *out = o;
    return LOOM_OK;
}

const char *loom_output_path(const loom_output_t *out)
{
    return out ? out->tmp : NULL;
}

static loom_status_t write_mark(loom_ctx_t *ctx, const char *dir)
{
    size_t n = strlen(dir) + sizeof SUCCESS_MARK + 2;
    char *p = malloc(n);
    if (!p) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    snprintf(p, n, "%s/%s", dir, SUCCESS_MARK);
    FILE *f = fopen(p, "wb");
    loom_status_t st = LOOM_OK;
    if (!f || fclose(f) != 0)
        st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot create: %s", p, strerror(errno));
    free(p);
    return st;
}

/* Rank 0: move the finished temporary over the final path. The target is
 * checked again: something may have appeared there while the job ran. */
static loom_status_t commit(loom_ctx_t *ctx, loom_output_t *o)
{
    int is_dir = (o->flags & LOOM_OUTPUT_DIR) != 0;
    LOOM_TRY(check_target(ctx, o->final, o->flags));
    if (is_dir) LOOM_TRY(write_mark(ctx, o->tmp));
    struct stat sb;
    char *trash = NULL;
    if (is_dir && lstat(o->final, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        /* rename() will not replace a non-empty directory: move the old one aside. */
        size_t cap = strlen(o->tmp) + 16;
        trash = malloc(cap);
        if (!trash) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
        snprintf(trash, cap, "%s", o->tmp);
        char *m = strstr(trash, ".loom-tmp.");
        if (m) memcpy(m, ".loom-old.", 10);
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
        loom_remove_tree(trash);
    }
    free(trash);
    return st;
}

loom_status_t loom_output_end(loom_ctx_t *ctx, loom_output_t **out, loom_status_t st)
{
    loom_output_t *o = out ? *out : NULL;
    if (!o) return st;
    if (o->job_comm) o->comm = loom_comm(ctx);
    int rank = 0;
    MPI_Comm_rank(o->comm, &rank);
    st = loom_agree(ctx, o->comm, st);
    loom_status_t fin = LOOM_OK;
    if (rank == 0) {
        if (st == LOOM_OK) fin = commit(ctx, o);
        if (st != LOOM_OK || fin != LOOM_OK) loom_remove_tree(o->tmp);
        loom_temp_forget(ctx, o->temp);
    }
    if (st == LOOM_OK) st = loom_agree(ctx, o->comm, fin);
    free(o->tmp);
    free(o->final);
    free(o);
    *out = NULL;
    return st;
}

loom_status_t loom_checkpoint_dir_check(loom_ctx_t *ctx, const char *dir)
{
    char *p = strdup(dir);
    if (!p) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = '\0';
        mkdir(p, 0777);
        *s = '/';
    }
    int made = mkdir(p, 0777) == 0 || errno == EEXIST;
    free(p);
    struct stat sb;
    if (!made || stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return LOOM_ERROR(ctx, LOOM_ERR_IO, "--checkpoint-dir %s: cannot create the directory",
                          dir);
    if (access(dir, W_OK | X_OK) != 0)
        return LOOM_ERROR(ctx, LOOM_ERR_IO, "--checkpoint-dir %s: cannot write there: %s", dir,
                          strerror(errno));
    return LOOM_OK;
}
