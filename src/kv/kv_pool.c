/* kv_pool.c — block pool (see kv_pool.h). The pool memory comes from platform/pages.h:
 * 2 MiB-aligned and advised for huge pages (attention streams K/V rows of every block a
 * sequence holds), faulted in as blocks are first written, and a failed allocation is an
 * error, not an abort. */
#include "kv/kv_pool.h"

#include "platform/pages.h"

#include <stdlib.h>

struct ks_kv_pool {
    ks_kv_layout layout;
    int32_t n_blocks;
    uint8_t *base;
    size_t bytes;
    int32_t *refcount;  /* (n_blocks) */
    int32_t *free_list; /* (n_blocks) stack of free block ids */
    int32_t n_free;
};

ks_status ks_kv_pool_create(ks_kv_pool **out, const ks_kv_layout *layout, int32_t n_blocks,
                            ks_err *err) {
    if (n_blocks < 1)
        return KS_ERRF(err, KS_ERR_INVALID, "KV pool needs at least one block");
    ks_kv_pool *p = calloc(1, sizeof *p);
    if (!p)
        return KS_ERRF(err, KS_ERR_NOMEM, "out of memory for the KV pool");
    p->layout = *layout;
    p->n_blocks = n_blocks;
    p->bytes = (size_t)n_blocks * layout->block_bytes;
    void *mem = ks_pages_alloc(p->bytes);
    p->refcount = calloc((size_t)n_blocks, sizeof *p->refcount);
    p->free_list = malloc((size_t)n_blocks * sizeof *p->free_list);
    if (!mem || !p->refcount || !p->free_list) {
        ks_pages_free(mem, p->bytes);
        free(p->refcount);
        free(p->free_list);
        free(p);
        return KS_ERRF(err, KS_ERR_NOMEM, "cannot allocate a KV pool of %d blocks (%.1f MiB)", n_blocks,
                       (double)n_blocks * (double)layout->block_bytes / 1048576.0);
    }
    p->base = mem;
    for (int32_t i = 0; i < n_blocks; i++)
        p->free_list[i] = n_blocks - 1 - i; /* pop order 0, 1, 2, ... */
    p->n_free = n_blocks;
    *out = p;
    return KS_OK;
}

void ks_kv_pool_destroy(ks_kv_pool *p) {
    if (!p)
        return;
    ks_pages_free(p->base, p->bytes);
    free(p->refcount);
    free(p->free_list);
    free(p);
}

uint8_t *ks_kv_pool_base(const ks_kv_pool *p) { return p->base; }
const ks_kv_layout *ks_kv_pool_layout(const ks_kv_pool *p) { return &p->layout; }
int32_t ks_kv_pool_n_blocks(const ks_kv_pool *p) { return p->n_blocks; }
int32_t ks_kv_pool_n_free(const ks_kv_pool *p) { return p->n_free; }

int32_t ks_kv_pool_alloc(ks_kv_pool *p) {
    if (p->n_free == 0)
        return -1;
    int32_t b = p->free_list[--p->n_free];
    KS_ASSERT(p->refcount[b] == 0);
    p->refcount[b] = 1;
    return b;
}

void ks_kv_pool_ref(ks_kv_pool *p, int32_t block) {
    KS_ASSERT(block >= 0 && block < p->n_blocks && p->refcount[block] > 0);
    p->refcount[block]++;
}

void ks_kv_pool_unref(ks_kv_pool *p, int32_t block) {
    KS_ASSERT(block >= 0 && block < p->n_blocks && p->refcount[block] > 0);
    if (--p->refcount[block] == 0)
        p->free_list[p->n_free++] = block;
}

int32_t ks_kv_pool_refcount(const ks_kv_pool *p, int32_t block) {
    KS_ASSERT(block >= 0 && block < p->n_blocks);
    return p->refcount[block];
}
