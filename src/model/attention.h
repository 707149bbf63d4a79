/* attention.h — causal attention of a batch's queries over the paged KV pool, and the
 * write of the batch's own K/V rows into it.
 *
 * Queries q are (T, n_head * head_dim) floats, RoPE already applied; token t attends to
 * positions 0..pos[t] of its sequence (cached ones and those of this batch, which
 * ks_attention_store_kv() wrote first). Grouped-query: query head h reads KV head
 * h / (n_head / n_head_kv). Output is (T, n_head * head_dim) floats. */
#ifndef KS_ATTENTION_H
#define KS_ATTENTION_H

#include "core/status.h"
#include "core/threadpool.h"
#include "model/forward.h"
#include "model/kv_layout.h"
#include "model/model.h"

typedef struct ks_attention ks_attention;

/* Scratch for nth threads, the size of the pool later given to ks_attention_run(); none
 * of it grows with n_ctx, the longest context. */
ks_status ks_attention_create(ks_attention **out, const ks_hparams *hp, const ks_kv_layout *kv,
                              int n_ctx, int nth, ks_err *err);
void ks_attention_destroy(ks_attention *a);

/* Converts k and v rows ((T, n_head_kv * head_dim) floats) of layer il to the KV type
 * and writes them at each token's (block, slot). */
void ks_attention_store_kv(ks_attention *a, uint8_t *kv_pool, const ks_batch *b, int il,
                           const float *k, const float *v);

/* out = softmax(q K^T / sqrt(head_dim)) V per token and head, over layer il, on the
 * threads of tp (streaming form: see attention.c). Allocates nothing once the largest
 * batch has been seen. */
void ks_attention_run(ks_attention *a, ks_threadpool *tp, uint8_t *kv_pool, const ks_batch *b,
                      int il, const float *q, float *out);

/* How the last run shared prefixes: the walks over blocks several sequences' decode
 * tokens share (their count), and *blocks the sum of their lengths in blocks. */
int ks_attention_shared_walks(const ks_attention *a, int *blocks);

#endif
