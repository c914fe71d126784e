/* A holder's replicas on its disk: <id>.chunk holds the data, <id>.crc its version, committed
 * length and a CRC32C per 64 KiB block. Replacing the CRC file (write aside, sync, rename) is
 * what commits a write; bytes past the committed length are left over from a write that never
 * committed and are never served. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "chunks/chunks_internal.h"

#define BLK LOOM_CHUNKS_BLOCK

void ch_rep_path(const loom_chunks_t *fs, uint64_t id, const char *ext, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%016" PRIx64 "%s", fs->hdir, id, ext);
}

static uint64_t get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}
static uint32_t get32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}
static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static int pread_full(int fd, void *buf, size_t n, uint64_t off, size_t *got)
{
    unsigned char *p = buf;
    size_t done = 0;
    while (done < n) {
        ssize_t r = pread(fd, p + done, n - done, (off_t)(off + done));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -1;
        if (r == 0) break;
        done += (size_t)r;
    }
    *got = done;
    return 0;
}

static int pwrite_full(int fd, const void *buf, size_t n, uint64_t off)
{
    const unsigned char *p = buf;
    while (n) {
        ssize_t w = pwrite(fd, p, n, (off_t)off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

/* Parse a CRC file's bytes; 0 when it is not a whole, self-consistent one. */
static int crcs_parse(const unsigned char *d, size_t n, ch_crcs_t *c)
{
    if (n < CH_CRC_HEADER || memcmp(d, CH_CRC_MAGIC, 8)) return 0;
    c->version = get64(d + 8);
    c->len = get64(d + 16);
    uint32_t blk = get32(d + 24), hcrc = get32(d + 28);
    if (blk != BLK) return 0;
    c->nblocks = (c->len + BLK - 1) / BLK;
    if (n != CH_CRC_HEADER + 4 * c->nblocks) return 0;
    uint32_t crc = loom_crc32c(0, d, 28);
    crc = loom_crc32c(crc, d + CH_CRC_HEADER, n - CH_CRC_HEADER);
    if (crc != hcrc) return 0;
    c->crc = malloc((c->nblocks ? c->nblocks : 1) * sizeof *c->crc);
    if (!c->crc) return 0;
    for (uint64_t b = 0; b < c->nblocks; b++)
        c->crc[b] = get32(d + CH_CRC_HEADER + 4 * b);
    return 1;
}

loom_status_t ch_crcs_load(loom_chunks_t *fs, uint64_t id, ch_crcs_t *c, int *ok)
{
    return ch_crcs_load_in(fs, fs->hdir, id, c, ok);
}

loom_status_t ch_crcs_load_in(loom_chunks_t *fs, const char *dir, uint64_t id, ch_crcs_t *c,
                              int *ok)
{
    memset(c, 0, sizeof *c);
    *ok = 0;
    char path[4200];
    snprintf(path, sizeof path, "%s/%016" PRIx64 ".crc", dir, id);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return LOOM_OK;
    struct stat sb;
    unsigned char *d = NULL;
    size_t got = 0;
    if (fstat(fd, &sb) == 0 && sb.st_size >= CH_CRC_HEADER && sb.st_size < (1 << 30)) {
        d = malloc((size_t)sb.st_size);
        if (!d) {
            close(fd);
            return LOOM_ERROR(fs->ctx, LOOM_ERR_NOMEM, "out of memory reading %s", path);
        }
        if (pread_full(fd, d, (size_t)sb.st_size, 0, &got) == 0) *ok = crcs_parse(d, got, c);
    }
    free(d);
    close(fd);
    return LOOM_OK;
}

void ch_crcs_free(ch_crcs_t *c)
{
    free(c->crc);
    c->crc = NULL;
}

int ch_open_data(loom_chunks_t *fs, uint64_t id)
{
    return ch_open_data_in(fs->hdir, id);
}

int ch_open_data_in(const char *dir, uint64_t id)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%016" PRIx64 ".chunk", dir, id);
    return open(path, O_RDONLY | O_CLOEXEC);
}

loom_status_t ch_read_checked(loom_chunks_t *fs, int fd, const ch_crcs_t *c, uint64_t id,
                              uint64_t off, uint64_t n, unsigned char *buf, int *bad, char *why,
                              size_t whylen)
{
    *bad = 0;
    if (off % BLK || off + n > c->len) {
        *bad = 1;
        snprintf(why, whylen, "range %" PRIu64 "+%" PRIu64 " outside its %" PRIu64 " bytes", off, n,
                 c->len);
        return LOOM_OK;
    }
    uint64_t end = off + n;
    uint64_t span = ((end + BLK - 1) / BLK) * BLK;
    if (span > c->len) span = c->len;
    size_t got;
    if (pread_full(fd, buf, span - off, off, &got) != 0)
        return LOOM_ERROR(fs->ctx, LOOM_ERR_IO, "reading chunk %016" PRIx64 " (on %s): %s", id,
                          loom_hostname(fs->ctx), strerror(errno));
    if (got < span - off) {
        *bad = 1;
        snprintf(why, whylen, "data cut short at %" PRIu64 " of %" PRIu64 " bytes", off + got,
                 c->len);
        return LOOM_OK;
    }
    for (uint64_t b = off / BLK; b * BLK < span; b++) {
        uint64_t s = b * BLK, e = s + BLK < c->len ? s + BLK : c->len;
        if (loom_crc32c(0, buf + (s - off), e - s) != c->crc[b]) {
            *bad = 1;
            snprintf(why, whylen,
                     "block %" PRIu64 " (bytes %" PRIu64 "-%" PRIu64 ") fails its CRC32C", b, s,
                     e - 1);
            return LOOM_OK;
        }
    }
    return LOOM_OK;
}

void ch_remove_replica(loom_chunks_t *fs, uint64_t id)
{
    char path[4200];
    ch_rep_path(fs, id, ".crc", path, sizeof path);
    unlink(path);
    ch_rep_path(fs, id, ".chunk", path, sizeof path);
    unlink(path);
}

loom_status_t ch_sync_dir(loom_chunks_t *fs)
{
    int fd = open(fs->hdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return LOOM_ERROR(fs->ctx, LOOM_ERR_IO, "%s: %s", fs->hdir, strerror(errno));
    int r = fsync(fd);
    close(fd);
    if (r != 0) return LOOM_ERROR(fs->ctx, LOOM_ERR_IO, "%s: fsync: %s", fs->hdir, strerror(errno));
    return LOOM_OK;
}

/* Verify a whole replica; sets r->state and r->bad_block. */
static loom_status_t verify(loom_chunks_t *fs, ch_rep_t *r, const ch_crcs_t *c, unsigned char *buf)
{
    int fd = ch_open_data(fs, r->id);
    if (fd < 0) {
        r->state = CH_REP_SHORT;
        return LOOM_OK;
    }
    loom_status_t st = LOOM_OK;
    for (uint64_t off = 0; st == LOOM_OK && off < c->len; off += CH_PIECE) {
        uint64_t n = c->len - off < CH_PIECE ? c->len - off : CH_PIECE;
        int bad;
        char why[160];
        st = ch_read_checked(fs, fd, c, r->id, off, n, buf, &bad, why, sizeof why);
        if (st == LOOM_OK && bad) {
            r->state = strstr(why, "cut short") ? CH_REP_SHORT : CH_REP_CORRUPT;
            uint64_t b;
            r->bad_block = sscanf(why, "block %" SCNu64, &b) == 1 ? b : 0;
            break;
        }
    }
    close(fd);
    return st;
}

static int parse_name(const char *name, uint64_t *id, const char **ext)
{
    if (strlen(name) < 17) return 0;
    for (int i = 0; i < 16; i++)
        if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f'))) return 0;
    *id = strtoull(name, NULL, 16);
    *ext = name + 16;
    return 1;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

loom_status_t ch_scan(loom_chunks_t *fs, int do_verify, ch_rep_t **reps, size_t *n, uint64_t *used)
{
    *reps = NULL;
    *n = 0;
    *used = 0;
    DIR *d = opendir(fs->hdir);
    if (!d) return LOOM_ERROR(fs->ctx, LOOM_ERR_IO, "%s: %s", fs->hdir, strerror(errno));
    uint64_t *ids = NULL;
    size_t nid = 0, cap = 0;
    loom_status_t st = LOOM_OK;
    struct dirent *de;
    char path[4200];
    while (st == LOOM_OK && (de = readdir(d))) {
        uint64_t id;
        const char *ext;
        if (de->d_name[0] == '.') continue;
        if (!parse_name(de->d_name, &id, &ext)) continue;
        if (!do_verify && (!strcmp(ext, ".chunk.tmp") || !strcmp(ext, ".crc.tmp"))) {
            /* left by a write that never committed (this holder's own job died); fsck
             * (verifying) changes nothing */
            snprintf(path, sizeof path, "%s/%s", fs->hdir, de->d_name);
            unlink(path);
            continue;
        }
        if (strcmp(ext, ".chunk") && strcmp(ext, ".crc")) continue;
        if (nid == cap) {
            cap = cap ? 2 * cap : 256;
            uint64_t *ni = realloc(ids, cap * sizeof *ni);
            if (!ni) {
                st = LOOM_ERROR(fs->ctx, LOOM_ERR_NOMEM, "out of memory listing %s", fs->hdir);
                break;
            }
            ids = ni;
        }
        ids[nid++] = id;
    }
    closedir(d);
    if (nid) qsort(ids, nid, sizeof *ids, cmp_u64);
    ch_rep_t *out = st == LOOM_OK ? calloc(nid ? nid : 1, sizeof *out) : NULL;
    if (st == LOOM_OK && !out) st = LOOM_ERROR(fs->ctx, LOOM_ERR_NOMEM, "out of memory");
    unsigned char *buf = do_verify && st == LOOM_OK ? malloc(CH_PIECE) : NULL;
    if (do_verify && st == LOOM_OK && !buf)
        st = LOOM_ERROR(fs->ctx, LOOM_ERR_NOMEM, "out of memory");
    size_t k = 0;
    for (size_t i = 0; st == LOOM_OK && i < nid; i++) {
        if (i && ids[i] == ids[i - 1]) continue;
        ch_rep_t *r = &out[k++];
        r->id = ids[i];
        ch_rep_path(fs, r->id, ".chunk", path, sizeof path);
        struct stat sb;
        if (stat(path, &sb) == 0) {
            r->data_bytes = (uint64_t)sb.st_size;
            *used += (uint64_t)sb.st_size;
        }
        ch_crcs_t c;
        int ok;
        st = ch_crcs_load(fs, r->id, &c, &ok);
        if (st != LOOM_OK) break;
        if (!ok) {
            r->state = CH_REP_NOHEADER;
            continue;
        }
        r->version = c.version;
        r->len = c.len;
        if (r->data_bytes < c.len)
            r->state = CH_REP_SHORT;
        else if (do_verify)
            st = verify(fs, r, &c, buf);
        ch_crcs_free(&c);
    }
    free(buf);
    free(ids);
    if (st != LOOM_OK) {
        free(out);
        return st;
    }
    *reps = out;
    *n = k;
    return LOOM_OK;
}

/* ------------------------------------------------------------------ writing */

loom_status_t ch_writer_open(loom_chunks_t *fs, ch_writer_t *w, uint64_t id, int fresh)
{
    char path[4200];
    w->id = id;
    w->fresh = fresh;
    w->dirty = UINT64_MAX;
    w->crc = NULL;
    w->ncrc = w->crc_cap = w->crc_upto = 0;
    w->partial = 0;
    w->in_order = fresh;
    ch_rep_path(fs, id, fresh ? ".chunk.tmp" : ".chunk", path, sizeof path);
    w->fd = open(path, fresh ? O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC : O_RDWR | O_CLOEXEC, 0644);
    if (w->fd < 0) return LOOM_ERROR(fs->ctx, LOOM_ERR_IO, "%s: %s", path, strerror(errno));
    return LOOM_OK;
}

loom_status_t ch_writer_write(loom_chunks_t *fs, ch_writer_t *w, uint64_t off, const void *data,
                              size_t n)
{
    if (pwrite_full(w->fd, data, n, off) != 0)
        return LOOM_ERROR(fs->ctx, LOOM_ERR_IO, "writing chunk %016" PRIx64 " on %s: %s", w->id,
                          fs->hdir, strerror(errno));
    /* the disk starts on these bytes now, not at the commit's sync: the transfer goes on
     * while they are written */
    sync_file_range(w->fd, (off64_t)off, (off64_t)n, SYNC_FILE_RANGE_WRITE);
    if (off < w->dirty) w->dirty = off;
    if (w->in_order && off != w->crc_upto) w->in_order = 0;
    for (const unsigned char *p = data; w->in_order && n;) {
        uint64_t in_block = w->crc_upto % BLK, take = BLK - in_block < n ? BLK - in_block : n;
        w->partial = loom_crc32c(in_block ? w->partial : 0, p, take);
        w->crc_upto += take;
        p += take;
        n -= take;
        if (w->crc_upto % BLK) continue;
        if (w->ncrc == w->crc_cap) {
            uint64_t cap = w->crc_cap ? 2 * w->crc_cap : 1024;
            uint32_t *c = realloc(w->crc, cap * sizeof *c);
            if (!c) {
                w->in_order = 0; /* the commit reads the data back instead */
                break;
            }
            w->crc = c;
            w->crc_cap = cap;
        }
        w->crc[w->ncrc++] = w->partial;
    }
    return LOOM_OK;
}

loom_status_t ch_writer_commit(loom_chunks_t *fs, ch_writer_t *w, uint64_t version, uint64_t len)
{
    loom_ctx_t *ctx = fs->ctx;
    char data_path[4200], crc_path[4200], tmp[4200];
    ch_rep_path(fs, w->id, w->fresh ? ".chunk.tmp" : ".chunk", data_path, sizeof data_path);
    ch_rep_path(fs, w->id, ".crc", crc_path, sizeof crc_path);
    ch_rep_path(fs, w->id, ".crc.tmp", tmp, sizeof tmp);
    if (fdatasync(w->fd) != 0)
        return LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: fdatasync: %s", data_path, strerror(errno));
    uint64_t nblocks = (len + BLK - 1) / BLK;
    size_t bytes = CH_CRC_HEADER + 4 * nblocks;
    unsigned char *out = malloc(bytes), *buf = malloc(BLK);
    if (!out || !buf) {
        free(out);
        free(buf);
        return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory committing a replica");
    }
    loom_status_t st = LOOM_OK;
    /* blocks before the first one written keep their CRCs */
    uint64_t from = 0;
    if (!w->fresh) {
        ch_crcs_t old;
        int ok;
        st = ch_crcs_load(fs, w->id, &old, &ok);
        if (st == LOOM_OK && !ok)
            st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: missing or damaged", crc_path);
        if (st == LOOM_OK) {
            uint64_t dirty = w->dirty < old.len ? w->dirty : old.len;
            from = dirty / BLK;
            for (uint64_t b = 0; b < from && b < nblocks; b++)
                put32(out + CH_CRC_HEADER + 4 * b, old.crc[b]);
        }
        ch_crcs_free(&old);
    }
    /* blocks whose CRC was computed on the way in */
    if (st == LOOM_OK && w->fresh && w->in_order && w->crc_upto == len) {
        for (uint64_t b = 0; b < w->ncrc && b < nblocks; b++)
            put32(out + CH_CRC_HEADER + 4 * b, w->crc[b]);
        if (len % BLK) put32(out + CH_CRC_HEADER + 4 * (nblocks - 1), w->partial);
        from = nblocks;
    }
    for (uint64_t b = from; st == LOOM_OK && b < nblocks; b++) {
        uint64_t s = b * BLK, n = len - s < BLK ? len - s : BLK;
        size_t got;
        if (pread_full(w->fd, buf, n, s, &got) != 0 || got != n) {
            st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: reading back %" PRIu64 " bytes at %" PRIu64,
                            data_path, n, s);
            break;
        }
        put32(out + CH_CRC_HEADER + 4 * b, loom_crc32c(0, buf, n));
    }
    free(buf);
    if (st == LOOM_OK) {
        memcpy(out, CH_CRC_MAGIC, 8);
        put64(out + 8, version);
        put64(out + 16, len);
        put32(out + 24, BLK);
        uint32_t crc = loom_crc32c(0, out, 28);
        put32(out + 28, loom_crc32c(crc, out + CH_CRC_HEADER, bytes - CH_CRC_HEADER));
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0 || pwrite_full(fd, out, bytes, 0) != 0 || fdatasync(fd) != 0)
            st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: %s", tmp, strerror(errno));
        if (fd >= 0) close(fd);
    }
    free(out);
    if (st == LOOM_OK && w->fresh) {
        /* an older copy stops being a replica before the new data takes its name */
        char final[4200];
        ch_rep_path(fs, w->id, ".chunk", final, sizeof final);
        if ((unlink(crc_path) != 0 && errno != ENOENT) || rename(data_path, final) != 0)
            st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: %s", final, strerror(errno));
    }
    if (st == LOOM_OK && rename(tmp, crc_path) != 0)
        st = LOOM_ERROR(ctx, LOOM_ERR_IO, "%s: %s", crc_path, strerror(errno));
    close(w->fd);
    w->fd = -1;
    free(w->crc);
    w->crc = NULL;
    if (st != LOOM_OK) unlink(tmp);
    return st;
}

loom_status_t ch_set_version(loom_chunks_t *fs, uint64_t id, uint64_t version)
{
    ch_crcs_t c;
    int ok;
    LOOM_TRY(ch_crcs_load(fs, id, &c, &ok));
    char path[4200], tmp[4200];
    ch_rep_path(fs, id, ".crc", path, sizeof path);
    ch_rep_path(fs, id, ".crc.tmp", tmp, sizeof tmp);
    if (!ok) {
        ch_crcs_free(&c);
        return LOOM_ERROR(fs->ctx, LOOM_ERR_IO, "%s: missing or damaged", path);
    }
    size_t bytes = CH_CRC_HEADER + 4 * c.nblocks;
    unsigned char *out = malloc(bytes);
    loom_status_t st = out ? LOOM_OK : LOOM_ERROR(fs->ctx, LOOM_ERR_NOMEM, "out of memory");
    if (st == LOOM_OK) {
        memcpy(out, CH_CRC_MAGIC, 8);
        put64(out + 8, version);
        put64(out + 16, c.len);
        put32(out + 24, BLK);
        for (uint64_t b = 0; b < c.nblocks; b++)
            put32(out + CH_CRC_HEADER + 4 * b, c.crc[b]);
        uint32_t crc = loom_crc32c(0, out, 28);
        put32(out + 28, loom_crc32c(crc, out + CH_CRC_HEADER, bytes - CH_CRC_HEADER));
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0 || pwrite_full(fd, out, bytes, 0) != 0 || fdatasync(fd) != 0)
            st = LOOM_ERROR(fs->ctx, LOOM_ERR_IO, "%s: %s", tmp, strerror(errno));
        if (fd >= 0) close(fd);
        if (st == LOOM_OK && rename(tmp, path) != 0)
            st = LOOM_ERROR(fs->ctx, LOOM_ERR_IO, "%s: %s", path, strerror(errno));
    }
    free(out);
    ch_crcs_free(&c);
    return st;
}

void ch_writer_abort(loom_chunks_t *fs, ch_writer_t *w)
{
    free(w->crc);
    w->crc = NULL;
    if (w->fd < 0) return;
    close(w->fd);
    w->fd = -1;
    if (w->fresh) {
        char path[4200];
        ch_rep_path(fs, w->id, ".chunk.tmp", path, sizeof path);
        unlink(path);
    }
}

uint64_t ch_free_bytes(loom_chunks_t *fs, uint64_t used)
{
    struct statvfs v;
    uint64_t disk = statvfs(fs->hdir, &v) == 0 ? (uint64_t)v.f_bavail * v.f_frsize : UINT64_MAX;
    if (fs->o.holder_capacity) {
        uint64_t cap = fs->o.holder_capacity > used ? fs->o.holder_capacity - used : 0;
        if (cap < disk) disk = cap;
    }
    return disk;
}
