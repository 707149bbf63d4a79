/* kv_pool.h — the paged KV block pool: one big allocation of fixed-size blocks (layout in
 * model/kv_layout.h), a free list and a refcount per block.
 *
 * A block is referenced by every sequence whose block table holds it (shared prefixes
 * hold the same block); it returns to the free list when the last reference goes.
 * Owned by the engine thread: no locks. */
#ifndef KS_KV_POOL_H
#define KS_KV_POOL_H

#include "core/status.h"
#include "model/kv_layout.h"

#include <stdint.h>

typedef struct ks_kv_pool ks_kv_pool;

/* Allocates n_blocks blocks (fails with KS_ERR_NOMEM, never aborts, if it cannot). */
ks_status ks_kv_pool_create(ks_kv_pool **out, const ks_kv_layout *layout, int32_t n_blocks,
                            ks_err *err);
void ks_kv_pool_destroy(ks_kv_pool *p);

uint8_t *ks_kv_pool_base(const ks_kv_pool *p);
const ks_kv_layout *ks_kv_pool_layout(const ks_kv_pool *p);
int32_t ks_kv_pool_n_blocks(const ks_kv_pool *p);
int32_t ks_kv_pool_n_free(const ks_kv_pool *p);

/* A free block with refcount 1, or -1 when none is free. */
int32_t ks_kv_pool_alloc(ks_kv_pool *p);
void ks_kv_pool_ref(ks_kv_pool *p, int32_t block);
/* Drops a reference; the block is free again when none remain. */
void ks_kv_pool_unref(ks_kv_pool *p, int32_t block);
int32_t ks_kv_pool_refcount(const ks_kv_pool *p, int32_t block);

#endif
