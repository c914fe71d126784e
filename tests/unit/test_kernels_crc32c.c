/* Unit tests of the CRC32C kernel: published vectors, chaining, table and instruction agree. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/crc32c.h"
#include "loom_test.h"

/* The definition, a bit at a time: the reference that both kernel paths must match. */
static uint32_t crc32c_bitwise(uint32_t crc, const unsigned char *p, size_t len)
{
    crc = ~crc;
    while (len--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1)));
    }
    return ~crc;
}

/* Fixed-seed bytes (splitmix64). */
static void fill_random(unsigned char *buf, size_t len, uint64_t seed)
{
    for (size_t i = 0; i < len; i++) {
        uint64_t z = (seed += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        buf[i] = (unsigned char)((z ^ (z >> 31)) >> 56);
    }
}

/* Expect `want` from the kernel, its table path and the bitwise reference. */
static void expect_crc(const void *data, size_t len, uint32_t want)
{
    CU_ASSERT_EQUAL(loom_crc32c(0, data, len), want);
    CU_ASSERT_EQUAL(loom_crc32c_sw(0, data, len), want);
    CU_ASSERT_EQUAL(crc32c_bitwise(0, data, len), want);
}

static void test_check_value(void)
{
    expect_crc("123456789", 9, 0xE3069283u);
}

static void test_iscsi_vectors(void)
{
    /* RFC 3720, appendix B.4. */
    unsigned char buf[32];
    memset(buf, 0x00, sizeof buf);
    expect_crc(buf, sizeof buf, 0x8A9136AAu);
    memset(buf, 0xFF, sizeof buf);
    expect_crc(buf, sizeof buf, 0x62A8AB43u);
    for (int i = 0; i < 32; i++)
        buf[i] = (unsigned char)i;
    expect_crc(buf, sizeof buf, 0x46DD794Eu);
    for (int i = 0; i < 32; i++)
        buf[i] = (unsigned char)(31 - i);
    expect_crc(buf, sizeof buf, 0x113FDB5Cu);
}

static void test_empty(void)
{
    unsigned char byte = 0x5A;
    expect_crc(NULL, 0, 0);
    expect_crc(&byte, 0, 0);
    /* An empty range leaves a running value as it is. */
    CU_ASSERT_EQUAL(loom_crc32c(0x12345678u, &byte, 0), 0x12345678u);
    CU_ASSERT_EQUAL(loom_crc32c_sw(0x12345678u, &byte, 0), 0x12345678u);
}

static void test_chaining(void)
{
    unsigned char buf[200];
    fill_random(buf, sizeof buf, 1);
    uint32_t whole = crc32c_bitwise(0, buf, sizeof buf);
    CU_ASSERT_EQUAL(loom_crc32c(0, buf, sizeof buf), whole);
    for (size_t cut = 0; cut <= sizeof buf; cut++) {
        CU_ASSERT_EQUAL(loom_crc32c(loom_crc32c(0, buf, cut), buf + cut, sizeof buf - cut), whole);
        CU_ASSERT_EQUAL(loom_crc32c_sw(loom_crc32c_sw(0, buf, cut), buf + cut, sizeof buf - cut),
                        whole);
    }
}

static void test_paths_agree(void)
{
    printf("\n  crc32c: the crc32 instruction is %s\n", loom_crc32c_hw()
                                                            ? "present; loom_crc32c uses it"
                                                            : "absent; loom_crc32c uses the table");
    /* Every length and alignment the head, word and tail loops can see. */
    enum { MAXLEN = 300, MAXOFF = 16 };
    unsigned char buf[MAXLEN + MAXOFF];
    fill_random(buf, sizeof buf, 2);
    unsigned bad = 0;
    for (size_t off = 0; off < MAXOFF; off++)
        for (size_t len = 0; len <= MAXLEN; len++) {
            uint32_t sw = loom_crc32c_sw(0, buf + off, len);
            bad += loom_crc32c(0, buf + off, len) != sw;
            bad += crc32c_bitwise(0, buf + off, len) != sw;
        }
    CU_ASSERT_EQUAL(bad, 0);
}

static void test_paths_agree_large(void)
{
    /* 1 MiB, and lengths on either side of the three-lane blocks (3 x 256 and 3 x 8192
     * bytes) at an odd start, so that every lane and combine step is reached. */
    size_t n = (size_t)1 << 20;
    unsigned char *buf = malloc(n + 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    fill_random(buf, n + 1, 3);
    uint32_t want = crc32c_bitwise(0, buf, n);
    CU_ASSERT_EQUAL(loom_crc32c_sw(0, buf, n), want);
    CU_ASSERT_EQUAL(loom_crc32c(0, buf, n), want);
    CU_ASSERT_EQUAL(loom_crc32c(0, buf + 1, n), loom_crc32c_sw(0, buf + 1, n));
    const size_t lens[] = {767,   768,   769,   775,   776,   1535,  1536,  24575,
                           24576, 24577, 24583, 25344, 49152, 65535, 65536, 65537};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++)
        for (size_t off = 0; off < 9; off += 3) {
            uint32_t sw = loom_crc32c_sw(0, buf + off, lens[i]);
            CU_ASSERT_EQUAL(loom_crc32c(0, buf + off, lens[i]), sw);
            CU_ASSERT_EQUAL(crc32c_bitwise(0, buf + off, lens[i]), sw);
        }
    /* Chaining across the block sizes, from a running value that is not 0. */
    uint32_t c = loom_crc32c(0, buf, 100);
    c = loom_crc32c(c, buf + 100, 30000);
    c = loom_crc32c(c, buf + 30100, n - 30100);
    CU_ASSERT_EQUAL(c, want);
    free(buf);
}

static void register_suites(void)
{
    static const CU_TestInfo vectors[] = {
        {"check value of \"123456789\"", test_check_value},
        {"RFC 3720 B.4 vectors", test_iscsi_vectors},
        {"empty buffer", test_empty},
        {"chaining at every split", test_chaining},
        {NULL, NULL},
    };
    static const CU_TestInfo paths[] = {
        {"every length 0..300 and offset 0..15", test_paths_agree},
        {"1 MiB and block boundaries", test_paths_agree_large},
        {NULL, NULL},
    };
    loom_test_suite("crc32c vectors", vectors);
    loom_test_suite("crc32c paths", paths);
}

int main(int argc, char **argv)
{
    return loom_test_main(argc, argv, register_suites);
}
