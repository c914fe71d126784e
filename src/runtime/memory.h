/* Internal: how much memory this node offers, so that a size taken from a file
 * or a spec is refused with a clear message before Loom allocates it, instead of
 * wrapping around, failing deep inside a library, or waking the OOM killer. */
#ifndef LOOM_RUNTIME_MEMORY_H
#define LOOM_RUNTIME_MEMORY_H

#include <stddef.h>
#include <stdint.h>

/* Physical memory of this node in bytes, or the memory cgroup's limit when that
 * is lower; 0 when neither can be read. Thread-safe. */
uint64_t loom_mem_total(void);

/* a * b, or UINT64_MAX when the product does not fit 64 bits. */
uint64_t loom_mem_mul(uint64_t a, uint64_t b);
/* a + b, or UINT64_MAX when the sum does not fit 64 bits. */
uint64_t loom_mem_add(uint64_t a, uint64_t b);

/* 1 when `bytes` can be allocated at all: it fits size_t and does not exceed
 * loom_mem_total() (when known). A check that passes is no promise that the
 * allocation succeeds; one that fails means it cannot. Thread-safe. */
int loom_mem_fits(uint64_t bytes);

/* "16 TiB", "1.5 GiB", "512 bytes" into buf (at least 24 bytes); returns buf. */
const char *loom_mem_human(uint64_t bytes, char *buf, size_t cap);

#endif
