/* kv_layout.c — validation of a paged KV layout, and where its Q8_0 or F16 keys go (see kv_layout.h). */
#include "model/kv_layout.h"

#include "tensor/kernels.h"
#include "tensor/types.h"

ks_status ks_kv_layout_init(ks_kv_layout *l, uint32_t kv_type, int block_tokens, int n_layer,
                            int n_head_kv, int head_dim, ks_err *err) {
    if (kv_type != KS_TYPE_F32 && kv_type != KS_TYPE_F16 && kv_type != KS_TYPE_Q8_0)
        return KS_ERRF(err, KS_ERR_UNSUPPORTED, "KV cache type %s is not supported (f32, f16, q8_0 are)",
                       ks_type_name(kv_type));
    if (block_tokens < 1 || block_tokens > 4096)
        return KS_ERRF(err, KS_ERR_INVALID, "KV block size %d is not in 1..4096 tokens", block_tokens);
    int64_t row = (int64_t)n_head_kv * head_dim;
    bool ok = false;
    size_t row_bytes = ks_type_row_size((ks_type)kv_type, row, &ok);
    if (!ok)
        return KS_ERRF(err, KS_ERR_UNSUPPORTED, "KV rows of %lld elements cannot be stored as %s",
                       (long long)row, ks_type_name(kv_type));
    l->kv_type = kv_type;
    l->block_tokens = block_tokens;
    l->n_layer = n_layer;
    l->row_elems = row;
    l->row_bytes = row_bytes;
    l->block_bytes = 2 * (size_t)n_layer * (size_t)block_tokens * row_bytes;
    const ks_kernels *k = ks_kernels_get();
    const bool q8p = kv_type == KS_TYPE_Q8_0 && head_dim % 32 == 0 && head_dim <= KS_ATTN_TILE_DIM && k->attn_scores_q8p;
    /* a table with F16 tiles (prefill) reads its keys in rows */
    const bool f16p = kv_type == KS_TYPE_F16 && k->attn_scores_f16p && !k->attn_tile_f16.block;
    l->k_panels = block_tokens % 16 == 0 && (q8p || f16p);
    l->v_heads = l->k_panels;
    l->head_dim = head_dim;
    l->head_bytes = row_bytes / (size_t)n_head_kv;
    return KS_OK;
}
