/* Store roots, shared by the chunk store and the key/value store: a directory marked as a
 * store with a random id, locked by one job at a time, and one directory per holder that
 * records the store it belongs to. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dataplane/dataplane.h"

/* "<prefix>id <16 hex digits>\n" (or just the id when prefix is NULL) written aside, synced
 * and renamed over `path`: a crash leaves the old file or the new one. */
static loom_status_t write_atomic(loom_ctx_t *ctx, const char *path, const char *tmp,
                                  const char *prefix, uint64_t id)
{
    FILE *f = fopen(tmp, "w");
    if (!f) return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: %s", tmp, strerror(errno));
    int ok = (prefix ? fprintf(f, "%sid %016" PRIx64 "\n", prefix, id)
                     : fprintf(f, "%016" PRIx64 "\n", id)) > 0 &&
             fflush(f) == 0 && fsync(fileno(f)) == 0;
    int e = errno;
    if (fclose(f) != 0 && ok) {
        ok = 0;
        e = errno;
    }
    if (!ok || rename(tmp, path) != 0) {
        if (ok) e = errno;
        unlink(tmp);
        return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: %s", path, strerror(e));
    }
    return LOOM_OK;
}

static loom_status_t write_marker(loom_ctx_t *ctx, const char *root, const char *marker,
                                  const char *format, uint64_t *id)
{
    char path[4200], tmp[4200];
    snprintf(path, sizeof path, "%s/%s", root, marker);
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp", root, marker);
    do {
        if (getrandom(id, sizeof *id, 0) != (ssize_t)sizeof *id)
            return LOOM_ERROR(ctx, LOOM_ERR_IO, "getrandom: %s", strerror(errno));
    } while (!*id);
    return write_atomic(ctx, path, tmp, format, *id);
}

loom_status_t loom_store_root_check(loom_ctx_t *ctx, const char *root, const char *marker,
                                    const char *format, const char *kind, uint64_t *id)
{
    struct stat sb;
    if (stat(root, &sb) != 0) {
        if (errno != ENOENT) return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: %s", root, strerror(errno));
        if (mkdir(root, 0755) != 0)
            return LOOM_ERROR(ctx, LOOM_ERR_IO, "--store %s: cannot create it: %s", root,
                              strerror(errno));
        return write_marker(ctx, root, marker, format, id);
    }
    if (!S_ISDIR(sb.st_mode))
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "--store %s: not a Loom %s (not a directory)", root,
                          kind);
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", root, marker);
    FILE *f = fopen(path, "r");
    if (f) {
        char line[64] = "", idline[64] = "";
        int ok = fgets(line, sizeof line, f) && !strcmp(line, format) &&
                 fgets(idline, sizeof idline, f) && sscanf(idline, "id %" SCNx64, id) == 1;
        fclose(f);
        if (!ok)
            return LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                              "--store %s: %s is not a Loom %s marker of a version this Loom reads",
                              root, marker, kind);
        return LOOM_OK;
    }
    int empty = 1;
    DIR *d = opendir(root);
    if (!d) return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: %s", root, strerror(errno));
    struct dirent *de;
    char tmpname[256];
    snprintf(tmpname, sizeof tmpname, ".%s.tmp", marker); /* a marker a crash left unfinished */
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && strcmp(de->d_name, tmpname)) {
            empty = 0;
            break;
        }
    closedir(d);
    if (!empty)
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                          "--store %s: not a Loom %s (a directory with files but no %s; a missing "
                          "or empty directory becomes a store)",
                          root, kind, marker);
    return write_marker(ctx, root, marker, format, id);
}

loom_status_t loom_store_lock(loom_ctx_t *ctx, const char *dir, int *fd_out)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/LOCK", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char who[256] = "";
        ssize_t r = pread(fd, who, sizeof who - 1, 0);
        who[r > 0 ? r : 0] = '\0';
        who[strcspn(who, "\n")] = '\0';
        close(fd);
        return LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                          "the store %s is in use by another job (%s); one job at a time", dir,
                          *who ? who : "unknown");
    }
    char who[256];
    int len =
        snprintf(who, sizeof who, "pid %lld on %s\n", (long long)getpid(), loom_hostname(ctx));
    if (ftruncate(fd, 0) == 0 && pwrite(fd, who, (size_t)len, 0) < 0) {
        /* the lock itself holds; the note is for messages only */
    }
    *fd_out = fd;
    return LOOM_OK;
}

void loom_store_holder_name(const loom_ctx_t *ctx, char *buf, size_t len)
{
    int slot = loom_size(ctx) == 1 ? 1 : loom_start_rank(ctx, loom_rank(ctx));
    snprintf(buf, len, "%s-%d", loom_hostname(ctx), slot);
}

loom_status_t loom_store_holder_dir(loom_ctx_t *ctx, const char *root, uint64_t id, char **out)
{
    char name[96], path[4200];
    *out = NULL;
    loom_store_holder_name(ctx, name, sizeof name);
    if (mkdir(root, 0755) != 0 && errno != EEXIST)
        return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: %s (on %s)", root, strerror(errno),
                          loom_hostname(ctx));
    snprintf(path, sizeof path, "%s/holders", root);
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: %s", path, strerror(errno));
    snprintf(path, sizeof path, "%s/holders/%s", root, name);
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: %s", path, strerror(errno));
    char *dir = strdup(path);
    if (!dir) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    /* the directory belongs to this store, or becomes this store's */
    snprintf(path, sizeof path, "%s/STORE_ID", dir);
    FILE *f = fopen(path, "r");
    uint64_t got = 0;
    if (f) {
        int ok = fscanf(f, "%" SCNx64, &got) == 1;
        fclose(f);
        if (!ok || got != id) {
            loom_status_t st = LOOM_ERROR(
                ctx, LOOM_ERR_USAGE,
                "%s belongs to another store (id %016" PRIx64 "; the store at %s on rank 0 is "
                "%016" PRIx64 "): with a node-local store root, rank 0 must run where the "
                "store's root directory is",
                dir, got, root, id);
            free(dir);
            return st;
        }
        *out = dir;
        return LOOM_OK;
    }
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s/.STORE_ID.tmp", dir);
    loom_status_t st = write_atomic(ctx, path, tmp, NULL, id);
    if (st != LOOM_OK) {
        free(dir);
        return st;
    }
    *out = dir;
    return LOOM_OK;
}
