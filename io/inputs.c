/* Text inputs: files, directories and glob patterns expanded to the list of files a job
 * reads, with the checks every engine applies (the MapReduce and dataset engines share it). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/inputs.h"

/* How much of each file is checked for NUL bytes (the binary rule). */
#define LOOM_BINARY_PROBE 65536

loom_status_t loom_strlist_add(loom_ctx_t *ctx, loom_strlist_t *l, const char *s)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        char **v = realloc(l->v, cap * sizeof *v);
        if (!v) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory: input list");
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n] = strdup(s);
    if (!l->v[l->n]) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory: input list");
    l->n++;
    return LOOM_OK;
}

void loom_strlist_free(loom_strlist_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static loom_status_t check_file(loom_ctx_t *ctx, const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char *buf = malloc(LOOM_BINARY_PROBE);
    if (!buf) {
        close(fd);
        return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    }
    ssize_t n = pread(fd, buf, LOOM_BINARY_PROBE, 0);
    int err = errno;
    close(fd);
    loom_status_t st = LOOM_OK;
    if (n < 0)
        st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot read: %s", path, strerror(err));
    else {
        const char *z = memchr(buf, 0, (size_t)n);
        if (z)
            st = LOOM_ERROR(ctx, LOOM_ERR_FORMAT,
                            "%s: binary data (a NUL byte at offset %lld); inputs must be text",
                            path, (long long)(z - buf));
    }
    free(buf);
    return st;
}

/* The directories above the one being expanded, so that a symbolic link back
 * to one of them is reported once, at the link, instead of as a path repeated
 * down to the kernel's limit of 40 links. */
typedef struct ancestor {
    dev_t dev;
    ino_t ino;
    const char *path;
    const struct ancestor *up;
} ancestor_t;

static loom_status_t expand_path(loom_ctx_t *ctx, const char *path, int top, const ancestor_t *up,
                                 loom_strlist_t *out);

static loom_status_t expand_dir(loom_ctx_t *ctx, const char *dir, const ancestor_t *self,
                                loom_strlist_t *out)
{
    DIR *d = opendir(dir);
    if (!d)
        return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot open directory: %s", dir, strerror(errno));
    loom_strlist_t names = {0};
    loom_status_t st = LOOM_OK;
    struct dirent *e;
    while (st == LOOM_OK && (e = readdir(d)))
        if (e->d_name[0] != '.' && e->d_name[0] != '_')
            st = loom_strlist_add(ctx, &names, e->d_name);
    closedir(d);
    if (names.n) qsort(names.v, names.n, sizeof *names.v, cmp_str);
    for (size_t i = 0; i < names.n && st == LOOM_OK; i++) {
        size_t n = strlen(dir) + strlen(names.v[i]) + 2;
        char *p = malloc(n);
        if (!p) {
            st = LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
            break;
        }
        snprintf(p, n, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", names.v[i]);
        st = expand_path(ctx, p, 0, self, out);
        free(p);
    }
    loom_strlist_free(&names);
    return st;
}

/* stat() failed on `path` with `err`. Inside a directory, a symbolic link to
 * nothing is skipped with a warning, as find(1) does; anything else fails. */
static loom_status_t stat_failed(loom_ctx_t *ctx, const char *path, int top, int err)
{
    struct stat lsb;
    int is_link = lstat(path, &lsb) == 0 && S_ISLNK(lsb.st_mode);
    if (!top && is_link && err == ENOENT) {
        loom_log(ctx, LOOM_LOG_WARN, "%s: skipping a dangling symbolic link", path);
        return LOOM_OK;
    }
    if (is_link && err == ELOOP)
        return LOOM_ERROR(ctx, LOOM_ERR_IO,
                          "%s: symbolic link loop (following its links never reaches a file)",
                          path);
    return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: %s", path, strerror(err));
}

static loom_status_t expand_path(loom_ctx_t *ctx, const char *path, int top, const ancestor_t *up,
                                 loom_strlist_t *out)
{
    struct stat sb;
    if (stat(path, &sb) != 0) return stat_failed(ctx, path, top, errno);
    if (S_ISDIR(sb.st_mode)) {
        for (const ancestor_t *a = up; a; a = a->up)
            if (a->dev == sb.st_dev && a->ino == sb.st_ino)
                return LOOM_ERROR(ctx, LOOM_ERR_IO,
                                  "%s: symbolic link loop: it leads back to the directory %s", path,
                                  a->path);
        ancestor_t self = {sb.st_dev, sb.st_ino, path, up};
        size_t before = out->n;
        LOOM_TRY(expand_dir(ctx, path, &self, out));
        if (top && out->n == before)
            return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: directory contains no input files", path);
        return LOOM_OK;
    }
    if (!S_ISREG(sb.st_mode)) {
        if (!top) return LOOM_OK; /* sockets, fifos inside a directory: not data */
        return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: not a regular file or directory", path);
    }
    LOOM_TRY(check_file(ctx, path));
    return loom_strlist_add(ctx, out, path);
}

loom_status_t loom_inputs_expand(loom_ctx_t *ctx, const char *const *inputs, int n,
                                 int (*verbatim)(const char *spec), loom_strlist_t *files)
{
    for (int i = 0; i < n; i++) {
        const char *in = inputs[i];
        if (strpbrk(in, "*?[")) {
            glob_t g;
            int rc = glob(in, 0, NULL, &g);
            if (rc == GLOB_NOMATCH) return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: no file matches", in);
            if (rc != 0) return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: cannot expand pattern", in);
            loom_status_t st = LOOM_OK;
            for (size_t k = 0; k < g.gl_pathc && st == LOOM_OK; k++)
                st = expand_path(ctx, g.gl_pathv[k], 1, NULL, files);
            globfree(&g);
            LOOM_TRY(st);
        } else if (verbatim && verbatim(in)) {
            LOOM_TRY(loom_strlist_add(ctx, files, in));
        } else {
            LOOM_TRY(expand_path(ctx, in, 1, NULL, files));
        }
    }
    return LOOM_OK;
}
