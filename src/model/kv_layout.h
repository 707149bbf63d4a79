/* kv_layout.h — where a token's K and V rows live inside a paged KV pool.
 *
 * The pool is an array of fixed-size blocks; a block holds the keys and values of
 * block_tokens consecutive positions of one sequence, for every layer:
 *
 *   block b:  [ layer 0: K rows (block_tokens x row_bytes) | V rows (same) ]
 *             [ layer 1: K rows | V rows ] ... [ layer n_layer-1: K | V ]
 *
 *   a row = n_head_kv * head_dim elements of kv_type (F32, F16 or Q8_0): one token's
 *   keys (or values) for all KV heads of one layer, head after head.
 *
 * A sequence's block table maps its block index (pos / block_tokens) to a pool block;
 * positions within a block are pos % block_tokens. The model writes and reads through
 * this layout only; kv/ owns allocation, sharing and eviction of the blocks. */
#ifndef KS_KV_LAYOUT_H
#define KS_KV_LAYOUT_H

#include "core/status.h"

#include <stddef.h>
#include <stdint.h>

typedef struct ks_kv_layout {
    uint32_t kv_type;      /* ks_type: F32, F16 or Q8_0 */
    int block_tokens;      /* B: tokens per block */
    int n_layer;
    int64_t row_elems;     /* n_head_kv * head_dim */
    size_t row_bytes;      /* bytes of one row in kv_type */
    size_t block_bytes;    /* 2 * n_layer * block_tokens * row_bytes */
} ks_kv_layout;

/* Fills a layout; fails (naming the reason) for unsupported KV types or shapes. */
ks_status ks_kv_layout_init(ks_kv_layout *l, uint32_t kv_type, int block_tokens, int n_layer,
                            int n_head_kv, int head_dim, ks_err *err);

static inline uint8_t *ks_kv_k_row(const ks_kv_layout *l, uint8_t *pool, int32_t block, int il,
                                   int slot) {
    return pool + (size_t)block * l->block_bytes +
           ((size_t)il * 2 * (size_t)l->block_tokens + (size_t)slot) * l->row_bytes;
}

static inline uint8_t *ks_kv_v_row(const ks_kv_layout *l, uint8_t *pool, int32_t block, int il,
                                   int slot) {
    return pool + (size_t)block * l->block_bytes +
           ((size_t)il * 2 * (size_t)l->block_tokens + (size_t)l->block_tokens + (size_t)slot) *
               l->row_bytes;
}

#endif
