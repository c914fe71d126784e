/* How much memory this node offers: physical pages, lowered by a cgroup limit. */
#include "runtime/memory.h"

#include <stdio.h>
#include <unistd.h>

/* A cgroup limit file holds a byte count, or "max" (v2) / a huge number (v1)
 * when there is none. */
static uint64_t cgroup_limit(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    unsigned long long v = 0;
    int got = fscanf(f, "%llu", &v);
    fclose(f);
    return got == 1 ? (uint64_t)v : 0;
}

uint64_t loom_mem_total(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
    uint64_t total = pages > 0 && psize > 0 ? loom_mem_mul((uint64_t)pages, (uint64_t)psize) : 0;
    static const char *const limits[] = {"/sys/fs/cgroup/memory.max",
                                         "/sys/fs/cgroup/memory/memory.limit_in_bytes"};
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        uint64_t lim = cgroup_limit(limits[i]);
        if (lim && (!total || lim < total)) total = lim;
    }
    return total;
}

uint64_t loom_mem_mul(uint64_t a, uint64_t b)
{
    if (a && b > UINT64_MAX / a) return UINT64_MAX;
    return a * b;
}

uint64_t loom_mem_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

int loom_mem_fits(uint64_t bytes)
{
    if (bytes == UINT64_MAX || bytes > (uint64_t)SIZE_MAX / 2) return 0;
    uint64_t total = loom_mem_total();
    return !total || bytes <= total;
}

const char *loom_mem_human(uint64_t bytes, char *buf, size_t cap)
{
    static const char *const units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    if (bytes == UINT64_MAX) {
        snprintf(buf, cap, "over 16 EiB");
        return buf;
    }
    double x = (double)bytes;
    int u = 0;
    while (x >= 1024 && u < 6) {
        x /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, cap, "%llu bytes", (unsigned long long)bytes);
    else
        snprintf(buf, cap, x < 10 ? "%.1f %s" : "%.0f %s", x, units[u]);
    return buf;
}
