/* Anti-entropy with Merkle trees (Dynamo, after Cassandra's exchange of whole trees): a
 * holder sends a peer the tree of the keys both are homes of, 4096 leaves by key hash; the
 * peer compares top down, answers with the leaves that differ and its keys in them, and the
 * first sends its own keys in those leaves back. Both merge what they get. */
#include <stdlib.h>
#include <string.h>

#include "kernels/hash.h"
#include "kv/serve_internal.h"

#define LEAF_BITS 12
#define LEAVES (1u << LEAF_BITS)
#define NODES (2 * LEAVES - 1)
#define DIFF_BYTES_MAX (32u << 20) /* entries per answer; the next round takes the rest */

static unsigned leaf_of(uint64_t hash)
{
    return (unsigned)(hash >> (64 - LEAF_BITS));
}

static int shared(const kv_srv_t *s, const kv_entry_t *e, int peer)
{
    return kv_ring_is_home(&s->kv->ring, e->hash, s->kv->me) &&
           kv_ring_is_home(&s->kv->ring, e->hash, peer);
}

/* tree[0] is the root; node i has children 2i+1 and 2i+2; leaves at LEAVES-1 .. NODES-1. */
static void build_tree(const kv_srv_t *s, int peer, uint64_t *tree)
{
    memset(tree, 0, NODES * sizeof *tree);
    const kv_table_t *t = &s->kv->h.main;
    for (size_t i = 0; i < t->cap; i++) {
        const kv_entry_t *e = t->slot[i];
        if (e && shared(s, e, peer))
            tree[LEAVES - 1 + leaf_of(e->hash)] ^=
                loom_hash_mix64(e->digest ^ (e->hash * LOOM_HASH_K1));
    }
    for (size_t i = LEAVES - 1; i-- > 0;)
        tree[i] = loom_hash_mix64(tree[2 * i + 1] * LOOM_HASH_K2 + tree[2 * i + 2] + 1);
}

static int holder_of_rank(const kv_srv_t *s, int rank)
{
    return s->kv->size == 1 ? 0 : rank - 1;
}

loom_status_t kv_srv_anti_entropy(kv_srv_t *s)
{
    if (s->nh < 2) return LOOM_OK;
    for (int k = 0; k < s->nh; k++) {
        int peer = (s->ae_next + k) % s->nh;
        if (peer == s->kv->me || !kv_srv_usable(s, peer)) continue;
        s->ae_next = peer + 1;
        int dest = s->kv->holder_rank[peer];
        uint64_t *tree = malloc(NODES * sizeof *tree);
        loom_buf_t *b = tree ? kv_msg_begin(s, dest, M_AE_TREE, ++s->serial, NODES * 8) : NULL;
        if (!b) {
            free(tree);
            return LOOM_ERROR(s->ctx, LOOM_ERR_NOMEM, "out of memory");
        }
        build_tree(s, peer, tree);
        memcpy(b->data + b->len, tree, NODES * 8);
        b->len += NODES * 8;
        free(tree);
        kv_msg_end(s, dest);
        return LOOM_OK;
    }
    return LOOM_OK;
}

static int by_leaf(const void *a, const void *b)
{
    uint64_t x = (*(const kv_entry_t *const *)a)->hash, y = (*(const kv_entry_t *const *)b)->hash;
    return x < y ? -1 : x > y;
}

/* Append this holder's shared entries in the marked leaves: count (u32, patched), entries,
 * leaf by leaf in leaf order and only whole leaves, up to DIFF_BYTES_MAX: leaves past it are
 * unmarked (in `mark`), so the next round finds the ones sent equal and goes on. */
static loom_status_t put_entries(kv_srv_t *s, loom_buf_t *b, int peer, unsigned char *mark)
{
    const kv_table_t *t = &s->kv->h.main;
    size_t n = 0;
    kv_entry_t **list = malloc((t->count ? t->count : 1) * sizeof *list);
    if (!list) return LOOM_ERROR(s->ctx, LOOM_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < t->cap; i++) {
        kv_entry_t *e = t->slot[i];
        if (e && mark[leaf_of(e->hash)] && shared(s, e, peer)) list[n++] = e;
    }
    qsort(list, n, sizeof *list, by_leaf);
    loom_status_t st = loom_buf_reserve(s->ctx, b, 4);
    size_t count_at = b->len, start;
    uint32_t count = 0;
    if (st == LOOM_OK) b->len += 4;
    start = b->len;
    unsigned full_from = LEAVES;
    for (size_t i = 0; st == LOOM_OK && i < n; i++) {
        unsigned leaf = leaf_of(list[i]->hash);
        if (leaf >= full_from) break;
        if (b->len - start >= DIFF_BYTES_MAX && (i == 0 || leaf != leaf_of(list[i - 1]->hash))) {
            full_from = leaf; /* this leaf and those after it wait for the next round */
            break;
        }
        st = kv_msg_put_entry(s, b, list[i]->key, list[i]->klen, &list[i]->sibs);
        count++;
    }
    for (unsigned l = full_from; l < LEAVES; l++)
        mark[l] = 0;
    if (st == LOOM_OK) memcpy(b->data + count_at, &count, 4);
    free(list);
    return st;
}

/* Leaves: count (varint), then each leaf number (varint). */
static loom_status_t put_leaves(kv_srv_t *s, loom_buf_t *b, const unsigned char *mark)
{
    LOOM_TRY(loom_buf_reserve(s->ctx, b, 10 + 3 * LEAVES));
    unsigned n = 0;
    for (unsigned l = 0; l < LEAVES; l++)
        n += mark[l];
    unsigned char *p = loom_put_varint(b->data + b->len, n);
    for (unsigned l = 0; l < LEAVES; l++)
        if (mark[l]) p = loom_put_varint(p, l);
    b->len = (size_t)(p - b->data);
    return LOOM_OK;
}

loom_status_t kv_srv_ae_tree(kv_srv_t *s, int src, uint64_t id, const unsigned char *p,
                             const unsigned char *end)
{
    if ((size_t)(end - p) != NODES * 8) return LOOM_OK;
    int peer = holder_of_rank(s, src);
    uint64_t *mine = malloc(NODES * sizeof *mine), *theirs = malloc(NODES * sizeof *theirs);
    unsigned char *mark = calloc(LEAVES, 1);
    size_t *stack = malloc(NODES * sizeof *stack);
    loom_status_t st = LOOM_OK;
    if (!mine || !theirs || !mark || !stack) {
        st = LOOM_ERROR(s->ctx, LOOM_ERR_NOMEM, "out of memory");
        goto out;
    }
    memcpy(theirs, p, NODES * 8);
    build_tree(s, peer, mine);
    /* top down: only subtrees whose hashes differ are opened */
    size_t top = 0;
    stack[top++] = 0;
    while (top) {
        size_t i = stack[--top];
        if (mine[i] == theirs[i]) continue;
        if (i >= LEAVES - 1)
            mark[i - (LEAVES - 1)] = 1;
        else {
            stack[top++] = 2 * i + 1;
            stack[top++] = 2 * i + 2;
        }
    }
    loom_buf_t *b = kv_msg_begin(s, src, M_AE_DIFF, id, 0);
    if (!b) {
        st = LOOM_ERROR(s->ctx, LOOM_ERR_NOMEM, "out of memory");
        goto out;
    }
    /* the entries first (they may leave leaves for the next round), then which leaves */
    loom_buf_t ent = {0};
    st = put_entries(s, &ent, peer, mark);
    if (st == LOOM_OK) st = put_leaves(s, b, mark);
    if (st == LOOM_OK) st = loom_buf_append(s->ctx, b, ent.data, ent.len);
    loom_buf_free(&ent);
    if (st == LOOM_OK) kv_msg_end(s, src);
out:
    free(mine);
    free(theirs);
    free(mark);
    free(stack);
    return st;
}

loom_status_t kv_srv_ae_diff(kv_srv_t *s, int src, uint64_t id, const unsigned char *p,
                             const unsigned char *end, int push)
{
    uint64_t n, l;
    unsigned char *mark = calloc(LEAVES, 1);
    if (!mark) return LOOM_ERROR(s->ctx, LOOM_ERR_NOMEM, "out of memory");
    loom_status_t st = LOOM_OK;
    if (!(p = loom_get_varint(p, end, &n))) goto out;
    for (uint64_t i = 0; i < n; i++) {
        if (!(p = loom_get_varint(p, end, &l)) || l >= LEAVES) goto out;
        mark[l] = 1;
    }
    uint32_t count;
    if (end - p < 4) goto out;
    memcpy(&count, p, 4);
    p += 4;
    kv_holder_t *h = &s->kv->h;
    for (uint32_t i = 0; i < count; i++) {
        uint64_t klen;
        if (!(p = loom_get_varint(p, end, &klen)) || klen > (uint64_t)(end - p)) goto out;
        const unsigned char *key = p;
        p += klen;
        kv_sibs_t in;
        int r = kv_sibs_decode(&p, end, SIZE_MAX, &in);
        if (r == -2) {
            st = LOOM_ERROR(s->ctx, LOOM_ERR_NOMEM, "out of memory");
            goto out;
        }
        if (r) goto out;
        int changed = 0;
        st = kv_holder_merge(h, KV_NO_TARGET, loom_key_hash(key, klen), key, klen, &in, &changed,
                             NULL);
        kv_sibs_free(&in);
        if (st != LOOM_OK) goto out;
        h->ae_repairs += (uint64_t)changed;
    }
    if (!push) {
        h->ae_rounds++;
        if (n) {
            loom_buf_t *b = kv_msg_begin(s, src, M_AE_PUSH, id, 0);
            if (!b) {
                st = LOOM_ERROR(s->ctx, LOOM_ERR_NOMEM, "out of memory");
                goto out;
            }
            loom_buf_t ent = {0};
            st = put_entries(s, &ent, holder_of_rank(s, src), mark);
            if (st == LOOM_OK) st = put_leaves(s, b, mark);
            if (st == LOOM_OK) st = loom_buf_append(s->ctx, b, ent.data, ent.len);
            loom_buf_free(&ent);
            if (st == LOOM_OK) kv_msg_end(s, src);
        }
    }
out:
    free(mark);
    return st;
}
