/* The batched C API of Loom's key/value store against a single-process hash table: what
 * distribution (replication, the exchange, the logs) costs per key.
 *
 *   mpicc -O2 -I include -I build/release/include scripts/bench/kv_batch.c \
 *         -L build/release -lloom -Wl,-rpath,$PWD/build/release -o kv_batch
 *   mpirun -np 3 ./kv_batch STORE_DIR KEYS [VALUE_BYTES] [BATCH]
 *
 * Every rank puts KEYS / P keys ("key:%012d", values of VALUE_BYTES bytes) in calls of BATCH
 * keys each (loom_kv_put_batch, collective), then gets them all back (loom_kv_get_batch,
 * R = the default 2 of N = 3 copies) and checks every value; rank 0 then inserts the same
 * KEYS keys into a plain open-addressing hash table (one process, one thread, values copied
 * as the store copies them) and looks them up. Prints one line per phase: seconds and keys
 * per second. */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loom/kv.h"
#include "loom/loom.h"

static void make_key(char *buf, long long i)
{
    snprintf(buf, 24, "key:%012lld", i);
}

static void make_val(unsigned char *v, size_t n, long long i)
{
    for (size_t k = 0; k < n; k++)
        v[k] = (unsigned char)('a' + (i + (long long)k) % 26);
}

/* ------------------------------------------------------------------ the baseline table */

typedef struct slot {
    uint64_t h;
    char *key;
    unsigned char *val;
    size_t vlen;
} slot_t;

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h ^ (h >> 29);
}

static double baseline(long long keys, size_t vbytes, double *get_s)
{
    size_t cap = 1;
    while (cap < (size_t)keys * 2)
        cap <<= 1;
    slot_t *t = calloc(cap, sizeof *t);
    unsigned char *v = malloc(vbytes);
    char k[24];
    double t0 = MPI_Wtime();
    for (long long i = 0; i < keys; i++) {
        make_key(k, i);
        make_val(v, vbytes, i);
        uint64_t h = hash_str(k);
        size_t j = h & (cap - 1);
        while (t[j].key && (t[j].h != h || strcmp(t[j].key, k)))
            j = (j + 1) & (cap - 1);
        if (!t[j].key) {
            t[j].h = h;
            t[j].key = strdup(k);
        }
        free(t[j].val);
        t[j].val = malloc(vbytes);
        memcpy(t[j].val, v, vbytes);
        t[j].vlen = vbytes;
    }
    double put_s = MPI_Wtime() - t0;
    t0 = MPI_Wtime();
    size_t found = 0;
    for (long long i = 0; i < keys; i++) {
        make_key(k, i);
        uint64_t h = hash_str(k);
        size_t j = h & (cap - 1);
        while (t[j].key && (t[j].h != h || strcmp(t[j].key, k)))
            j = (j + 1) & (cap - 1);
        found += t[j].key && t[j].val[0] == (unsigned char)('a' + i % 26);
    }
    *get_s = MPI_Wtime() - t0;
    if (found != (size_t)keys) fprintf(stderr, "baseline: %zu of %lld found\n", found, keys);
    for (size_t j = 0; j < cap; j++) {
        free(t[j].key);
        free(t[j].val);
    }
    free(t);
    free(v);
    return put_s;
}

/* ------------------------------------------------------------------ the store */

int main(int argc, char **argv)
{
    loom_ctx_t *ctx = NULL;
    if (loom_ctx_create(&argc, &argv, &ctx) != LOOM_OK) return 1;
    if (argc < 3) {
        if (loom_is_master(ctx))
            fprintf(stderr, "usage: kv_batch STORE_DIR KEYS [VALUE_BYTES] [BATCH]\n");
        loom_ctx_destroy(&ctx);
        return 2;
    }
    long long keys = atoll(argv[2]);
    size_t vbytes = argc > 3 ? (size_t)atoll(argv[3]) : 32;
    long long batch = argc > 4 ? atoll(argv[4]) : 65536;
    int rank = loom_rank(ctx), size = loom_size(ctx);
    long long lo = keys * rank / size, hi = keys * (rank + 1) / size, mine = hi - lo;
    loom_kv_t *kv = NULL;
    loom_status_t st = loom_kv_open(ctx, argv[1], NULL, &kv);
    if (st != LOOM_OK) {
        loom_error_report(ctx);
        loom_ctx_destroy(&ctx);
        return 1;
    }
    char *kbuf = malloc((size_t)(batch ? batch : 1) * 24);
    unsigned char *vbuf = malloc((size_t)(batch ? batch : 1) * vbytes);
    const void **kp = malloc((size_t)(batch ? batch : 1) * sizeof *kp);
    const void **vp = malloc((size_t)(batch ? batch : 1) * sizeof *vp);
    size_t *kl = malloc((size_t)(batch ? batch : 1) * sizeof *kl);
    size_t *vl = malloc((size_t)(batch ? batch : 1) * sizeof *vl);
    long long rounds = 0, bad = 0;
    for (long long at = 0; at < mine || at == 0; at += batch)
        rounds++;
    MPI_Allreduce(MPI_IN_PLACE, &rounds, 1, MPI_LONG_LONG, MPI_MAX, MPI_COMM_WORLD);
    double t_put = 0, t_get = 0;
    for (int phase = 0; phase < 2 && st == LOOM_OK; phase++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        for (long long r = 0; r < rounds && st == LOOM_OK; r++) {
            long long from = lo + r * batch,
                      n = from < hi ? (hi - from < batch ? hi - from : batch) : 0;
            for (long long i = 0; i < n; i++) {
                make_key(kbuf + i * 24, from + i);
                kp[i] = kbuf + i * 24;
                kl[i] = strlen(kbuf + i * 24);
                if (!phase) {
                    make_val(vbuf + i * (long long)vbytes, vbytes, from + i);
                    vp[i] = vbuf + i * (long long)vbytes;
                    vl[i] = vbytes;
                }
            }
            if (!phase) {
                st = loom_kv_put_batch(kv, (size_t)n, kp, kl, vp, vl);
            } else {
                loom_kv_values_t out;
                st = loom_kv_get_batch(kv, (size_t)n, kp, kl, 0, &out);
                for (long long i = 0; st == LOOM_OK && i < n; i++) {
                    make_val(vbuf, vbytes, from + i);
                    bad += !out.found[i] || out.len[i] != vbytes ||
                           memcmp(out.data + out.off[i], vbuf, vbytes);
                }
                if (st == LOOM_OK) loom_kv_values_free(&out);
            }
        }
        MPI_Barrier(MPI_COMM_WORLD);
        *(phase ? &t_get : &t_put) = MPI_Wtime() - t0;
    }
    MPI_Allreduce(MPI_IN_PLACE, &bad, 1, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
    if (st != LOOM_OK) loom_error_report(ctx);
    loom_status_t cst = loom_kv_close(&kv);
    if (rank == 0 && st == LOOM_OK) {
        double bget, bput = baseline(keys, vbytes, &bget);
        printf("kv_batch ranks %d keys %lld value_bytes %zu batch %lld wrong %lld\n", size, keys,
               vbytes, batch, bad);
        printf("store_put_s %.3f store_put_keys_per_s %.0f\n", t_put, keys / t_put);
        printf("store_get_s %.3f store_get_keys_per_s %.0f\n", t_get, keys / t_get);
        printf("table_put_s %.3f table_put_keys_per_s %.0f\n", bput, keys / bput);
        printf("table_get_s %.3f table_get_keys_per_s %.0f\n", bget, keys / bget);
    }
    free(kbuf);
    free(vbuf);
    free(kp);
    free(vp);
    free(kl);
    free(vl);
    loom_ctx_destroy(&ctx);
    return st != LOOM_OK || cst != LOOM_OK || bad ? 1 : 0;
}
