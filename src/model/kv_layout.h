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
 * Q8_0 and F16 keys are held in panels (k_panels) where the kernel table scores them so
 * (kernels.h: attn_scores_q8p, attn_scores_f16p; F16 not where the table has F16 tiles,
 * which read keys in rows) and blocks are whole panels: the K rows of 16 positions (slots
 * 16i .. 16i + 15) are then one run of panels per KV head (tensor/attn_kv.h: kv_q8_panel,
 * kv_f16_panel_put), head after head, in the same bytes.
 *
 * With keys in panels the V rows of a block are held head by head (v_heads): KV head h's
 * values of slots 0 .. B-1 are one run of B * head_bytes, the runs head after head, in the
 * same bytes. A head's values for a block are then 16 KiB in a row (Qwen3's 128 halves
 * over 64 slots), which the value sums read from L1 again and again, instead of 256
 * bytes every row_bytes, where with 8 KV heads (2 KiB rows) 64 slots' lines fall into 2
 * of L1's 64 sets (bench_attention --shape qwen3-0.6b on a Zen 4 VM, 2 threads,
 * alternated: prefill of 512 at 8,192 6.70-6.87 -> 6.00-6.02 s; decode at 16,384 67-70
 * -> 62.5-66 ms).
 *
 * The layout's id (kv_type, flagged KS_KV_K_PANELS and KS_KV_V_HEADS) is what the disk
 * tier and the cache's block keys are told, so blocks written in one layout are never
 * read in another.
 *
 * A sequence's block table maps its block index (pos / block_tokens) to a pool block;
 * positions within a block are pos % block_tokens. The model writes and reads through
 * this layout only; kv/ owns allocation, sharing and eviction of the blocks. */
#ifndef KS_KV_LAYOUT_H
#define KS_KV_LAYOUT_H

#include "core/status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ks_kv_layout {
    uint32_t kv_type;      /* ks_type: F32, F16 or Q8_0 */
    int block_tokens;      /* B: tokens per block */
    int n_layer;
    int64_t row_elems;     /* n_head_kv * head_dim */
    size_t row_bytes;      /* bytes of one row in kv_type */
    size_t block_bytes;    /* 2 * n_layer * block_tokens * row_bytes */
    bool k_panels;         /* Q8_0 or F16 keys in panels of 16 positions (see above) */
    bool v_heads;          /* V rows of a block head by head (see above) */
    int head_dim;          /* elements of one KV head */
    size_t head_bytes;     /* row_bytes / n_head_kv */
} ks_kv_layout;

/* ks_kv_layout_id(): kv_type | KS_KV_K_PANELS for keys in panels | KS_KV_V_HEADS for
 * values head by head */
#define KS_KV_K_PANELS 0x10000u
#define KS_KV_V_HEADS 0x20000u
static inline uint32_t ks_kv_layout_id(const ks_kv_layout *l) {
    return l->kv_type | (l->k_panels ? KS_KV_K_PANELS : 0) | (l->v_heads ? KS_KV_V_HEADS : 0);
}

/* Fills a layout; fails (naming the reason) for unsupported KV types or shapes. */
ks_status ks_kv_layout_init(ks_kv_layout *l, uint32_t kv_type, int block_tokens, int n_layer,
                            int n_head_kv, int head_dim, ks_err *err);

static inline uint8_t *ks_kv_k_row(const ks_kv_layout *l, uint8_t *pool, int32_t block, int il,
                                   int slot) {
    return pool + (size_t)block * l->block_bytes +
           ((size_t)il * 2 * (size_t)l->block_tokens + (size_t)slot) * l->row_bytes;
}

/* Where KV head h's keys of slot `slot` start among a block's K rows of layer il: in the
 * row (head_bytes apart), or its 16-slot group's panels (16 * head_bytes apart). */
static inline uint8_t *ks_kv_k_head(const ks_kv_layout *l, uint8_t *pool, int32_t block, int il, int slot, int h) {
    if (l->k_panels)
        return ks_kv_k_row(l, pool, block, il, slot & ~15) + (size_t)h * 16 * l->head_bytes;
    return ks_kv_k_row(l, pool, block, il, slot) + (size_t)h * l->head_bytes;
}

/* Where KV head h's values of slot `slot` start among a block's V rows of layer il: in
 * the slot's row (ks_kv_v_ld() = row_elems elements from one slot to the next), or the
 * head's run (v_heads: head_dim elements apart). */
static inline uint8_t *ks_kv_v_head(const ks_kv_layout *l, uint8_t *pool, int32_t block, int il, int slot, int h) {
    uint8_t *v0 = pool + (size_t)block * l->block_bytes +
                  ((size_t)il * 2 * (size_t)l->block_tokens + (size_t)l->block_tokens) * l->row_bytes;
    if (l->v_heads)
        return v0 + ((size_t)h * (size_t)l->block_tokens + (size_t)slot) * l->head_bytes;
    return v0 + (size_t)slot * l->row_bytes + (size_t)h * l->head_bytes;
}

/* Elements from one slot's values of a KV head to the next slot's. */
static inline int64_t ks_kv_v_ld(const ks_kv_layout *l) { return l->v_heads ? l->head_dim : l->row_elems; }

#endif
