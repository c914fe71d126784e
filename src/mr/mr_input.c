/* MapReduce inputs that are not text files: 1-D HDF5 datasets (FILE.h5:/dataset, read by
 * io/elements.c) and gen:N, handed to map as one decimal text record per element. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/elements.h"
#include "mr/mr_internal.h"

int mr_input_kind(const char *spec)
{
    if (strncmp(spec, "gen:", 4) == 0) return MR_IN_GEN;
    if (strncmp(spec, "store:", 6) == 0) return MR_IN_STORE;
    return loom_h5_elements_spec(spec) ? MR_IN_H5 : MR_IN_TEXT;
}

int mr_input_elements(const char *spec)
{
    int k = mr_input_kind(spec);
    return k == MR_IN_H5 || k == MR_IN_GEN;
}

loom_status_t mr_input_count(loom_ctx_t *ctx, const char *spec, uint64_t *n)
{
    if (mr_input_kind(spec) == MR_IN_GEN) {
        const char *s = spec + 4;
        if (!*s || strspn(s, "0123456789") != strlen(s))
            return LOOM_ERROR(ctx, LOOM_ERR_USAGE, "%s: expected gen:N with N a record count",
                              spec);
        errno = 0;
        unsigned long long v = strtoull(s, NULL, 10);
        if (errno || v > MR_MAX_ELEMENTS)
            return LOOM_ERROR(ctx, LOOM_ERR_USAGE,
                              "%s: %s is out of range (at most 2^60 = %llu records)", spec, s,
                              (unsigned long long)MR_MAX_ELEMENTS);
        *n = v;
        return LOOM_OK;
    }
    loom_elem_kind_t kind;
    return loom_h5_elements_info(ctx, spec, n, &kind);
}

loom_status_t mr_input_read(loom_ctx_t *ctx, const char *spec, uint64_t first, uint64_t count,
                            loom_buf_t *out)
{
    out->len = 0;
    /* 24 bytes hold any int64, uint64 or %.17g double and its '\n' */
    LOOM_TRY(loom_buf_reserve(ctx, out, count * 25 + 1));
    char *p = (char *)out->data;
    if (mr_input_kind(spec) == MR_IN_GEN) {
        for (uint64_t i = first; i < first + count; i++)
            p += sprintf(p, "%" PRIu64 "\n", i);
        out->len = (size_t)(p - (char *)out->data);
        return LOOM_OK;
    }
    uint64_t *v = malloc((count ? count : 1) * 8);
    if (!v) return LOOM_ERROR(ctx, LOOM_ERR_NOMEM, "out of memory");
    loom_elem_kind_t kind;
    loom_status_t st = loom_h5_elements_read(ctx, spec, first, count, v, &kind);
    for (uint64_t i = 0; st == LOOM_OK && i < count; i++) {
        p += loom_elem_format(p, v[i], kind);
        *p++ = '\n';
    }
    out->len = (size_t)(p - (char *)out->data);
    free(v);
    return st;
}
