/* Internal: CRC32C checksums of byte ranges (block and spill file integrity). */
#ifndef LOOM_KERNELS_CRC32C_H
#define LOOM_KERNELS_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* CRC32C (Castagnoli; reflected polynomial 0x82F63B78, initial and final XOR ~0), as iSCSI,
 * ext4 and SCTP use it. `crc` is the result of the previous call over the data before
 * (0 to start), so loom_crc32c(loom_crc32c(0, a, n), b, m) == loom_crc32c(0, ab, n + m).
 * Uses the CPU's crc32 instruction (SSE 4.2) where the CPU has one. Pure; thread-safe. */
uint32_t loom_crc32c(uint32_t crc, const void *data, size_t len);

/* The same with a table (slicing-by-8), for CPUs without the instruction and for tests. */
uint32_t loom_crc32c_sw(uint32_t crc, const void *data, size_t len);

/* 1 when loom_crc32c uses the crc32 instruction. */
int loom_crc32c_hw(void);

#endif
