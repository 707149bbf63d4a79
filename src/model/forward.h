/* forward.h — the forward pass over a batch of (sequence, position, token) entries and
 * the paged KV cache.
 *
 * A batch may mix sequences and mix prefill (many tokens of one sequence) with decode
 * (one token of each of several sequences). Every token's K and V are written into its
 * sequence's block at (pos / B, pos % B) before attention runs, so a token attends to
 * every earlier position of its sequence: those cached from earlier batches and those
 * earlier in this batch. Logits are computed only for the tokens that ask for them.
 *
 * Scratch is sized at create() for max_tokens per batch and n_ctx positions; run()
 * allocates nothing. */
#ifndef KS_FORWARD_H
#define KS_FORWARD_H

#include "core/status.h"
#include "core/threadpool.h"
#include "model/kv_layout.h"
#include "model/model.h"

#include <stdint.h>

/* One sequence's view of the KV pool: block_table[i] holds positions [i*B, (i+1)*B). */
typedef struct ks_seq_view {
    const int32_t *block_table;
    int n_blocks;
} ks_seq_view;

typedef struct ks_batch {
    int n_tokens;
    const int32_t *tokens;       /* (n_tokens) token ids */
    const int32_t *pos;          /* (n_tokens) position within its sequence */
    const int32_t *seq;          /* (n_tokens) index into seqs */
    const uint8_t *want_logits;  /* (n_tokens) nonzero: write this token's logits */
    const ks_seq_view *seqs;
    int n_seqs;
} ks_batch;

typedef struct ks_forward ks_forward;

/* kv_pool: base of n_pool_blocks blocks laid out as kv describes (borrowed). */
ks_status ks_forward_create(ks_forward **out, const ks_model *m, const ks_kv_layout *kv,
                            uint8_t *kv_pool, int32_t n_pool_blocks, int max_tokens, int n_ctx,
                            ks_threadpool *tp, ks_err *err);
void ks_forward_destroy(ks_forward *f);

/* Runs the batch. logits: (n_out, n_vocab) floats, one row per token with want_logits,
 * in batch order. Invalid batches (token ids, positions, block tables) fail with
 * KS_ERR_INVALID before anything is written. */
ks_status ks_forward_run(ks_forward *f, const ks_batch *b, float *logits, ks_err *err);

#endif
