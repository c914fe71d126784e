/* CRC32C: the crc32 instruction in three interleaved streams, else slicing-by-8 tables. */
#include "kernels/crc32c.h"

#include <pthread.h>
#include <string.h>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

/* Both paths work on the CRC register: the checksum without its initial and final XOR.
 * The register is linear in the data, which is what lets streams be combined. */
#define CRC32C_POLY 0x82F63B78u

static uint32_t crc32c_table[8][256];
static pthread_once_t crc32c_once = PTHREAD_ONCE_INIT;

#if defined(__x86_64__)
/* The crc32 instruction has a latency of three cycles and a throughput of one, so three
 * independent streams keep it busy. Each stream runs over a lane of LONG (or SHORT) bytes;
 * the register of the first is then moved past the next lane with a "zeros" operator
 * (a table lookup per register byte) and the next lane's register XORed in. */
enum { CRC32C_LONG = 8192, CRC32C_SHORT = 256 };

static uint32_t crc32c_shift_long[4][256], crc32c_shift_short[4][256];
static int crc32c_have_hw;

/* The register after `len` zero bytes, a byte at a time (for building the operators). */
static uint32_t crc32c_zeros_slow(uint32_t reg, size_t len)
{
    while (len--)
        reg = (reg >> 8) ^ crc32c_table[0][reg & 0xff];
    return reg;
}

/* The operator "append `len` zero bytes" as four byte-indexed tables: by linearity, the
 * image of a register is the XOR of the images of its set bits. */
static void crc32c_shift_init(uint32_t shift[4][256], size_t len)
{
    uint32_t basis[32];
    for (int i = 0; i < 32; i++)
        basis[i] = crc32c_zeros_slow(1u << i, len);
    for (int k = 0; k < 4; k++) {
        for (int b = 0; b < 256; b++) {
            uint32_t v = 0;
            for (int j = 0; j < 8; j++)
                if ((b >> j) & 1) v ^= basis[8 * k + j];
            shift[k][b] = v;
        }
    }
}

static inline uint32_t crc32c_shift(uint32_t shift[4][256], uint32_t reg)
{
    return shift[0][reg & 0xff] ^ shift[1][(reg >> 8) & 0xff] ^ shift[2][(reg >> 16) & 0xff] ^
           shift[3][reg >> 24];
}
#endif

static void crc32c_init(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (CRC32C_POLY & (0u - (c & 1)));
        crc32c_table[0][n] = c;
    }
    for (int n = 0; n < 256; n++)
        for (int k = 1; k < 8; k++) {
            uint32_t c = crc32c_table[k - 1][n];
            crc32c_table[k][n] = (c >> 8) ^ crc32c_table[0][c & 0xff];
        }
#if defined(__x86_64__)
    __builtin_cpu_init();
    crc32c_have_hw = __builtin_cpu_supports("sse4.2") != 0;
    if (crc32c_have_hw) {
        crc32c_shift_init(crc32c_shift_long, CRC32C_LONG);
        crc32c_shift_init(crc32c_shift_short, CRC32C_SHORT);
    }
#endif
}

static inline uint64_t crc32c_load64(const unsigned char *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap64(w);
#endif
    return w;
}

static uint32_t crc32c_sw_reg(uint32_t reg, const unsigned char *p, size_t len)
{
    uint32_t(*t)[256] = crc32c_table;
    for (; len >= 8; len -= 8, p += 8) {
        uint64_t w = crc32c_load64(p) ^ reg;
        reg = t[7][w & 0xff] ^ t[6][(w >> 8) & 0xff] ^ t[5][(w >> 16) & 0xff] ^
              t[4][(w >> 24) & 0xff] ^ t[3][(w >> 32) & 0xff] ^ t[2][(w >> 40) & 0xff] ^
              t[1][(w >> 48) & 0xff] ^ t[0][w >> 56];
    }
    while (len--)
        reg = (reg >> 8) ^ t[0][(reg ^ *p++) & 0xff];
    return reg;
}

#if defined(__x86_64__)
/* Whole blocks of three lanes of `lane` bytes; *p and *len are advanced past them. */
__attribute__((target("sse4.2"))) static uint64_t crc32c_hw_lanes(uint64_t c0,
                                                                  const unsigned char **p,
                                                                  size_t *len, size_t lane,
                                                                  uint32_t shift[4][256])
{
    const unsigned char *q = *p;
    size_t n = *len;
    for (; n >= 3 * lane; n -= 3 * lane) {
        uint64_t c1 = 0, c2 = 0;
        const unsigned char *end = q + lane;
        do {
            c0 = _mm_crc32_u64(c0, crc32c_load64(q));
            c1 = _mm_crc32_u64(c1, crc32c_load64(q + lane));
            c2 = _mm_crc32_u64(c2, crc32c_load64(q + 2 * lane));
            q += 8;
        } while (q < end);
        c0 = crc32c_shift(shift, (uint32_t)c0) ^ (uint32_t)c1;
        c0 = crc32c_shift(shift, (uint32_t)c0) ^ (uint32_t)c2;
        q += 2 * lane;
    }
    *p = q;
    *len = n;
    return c0;
}

__attribute__((target("sse4.2"))) static uint32_t crc32c_hw_reg(uint32_t reg,
                                                                const unsigned char *p, size_t len)
{
    for (; len && ((uintptr_t)p & 7); len--)
        reg = _mm_crc32_u8(reg, *p++);
    uint64_t c = reg;
    c = crc32c_hw_lanes(c, &p, &len, CRC32C_LONG, crc32c_shift_long);
    c = crc32c_hw_lanes(c, &p, &len, CRC32C_SHORT, crc32c_shift_short);
    for (; len >= 8; len -= 8, p += 8)
        c = _mm_crc32_u64(c, crc32c_load64(p));
    reg = (uint32_t)c;
    while (len--)
        reg = _mm_crc32_u8(reg, *p++);
    return reg;
}
#endif

uint32_t loom_crc32c_sw(uint32_t crc, const void *data, size_t len)
{
    pthread_once(&crc32c_once, crc32c_init);
    return ~crc32c_sw_reg(~crc, data, len);
}

uint32_t loom_crc32c(uint32_t crc, const void *data, size_t len)
{
    pthread_once(&crc32c_once, crc32c_init);
#if defined(__x86_64__)
    if (crc32c_have_hw) return ~crc32c_hw_reg(~crc, data, len);
#endif
    return ~crc32c_sw_reg(~crc, data, len);
}

int loom_crc32c_hw(void)
{
#if defined(__x86_64__)
    pthread_once(&crc32c_once, crc32c_init);
    return crc32c_have_hw;
#else
    return 0;
#endif
}
