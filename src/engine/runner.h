/* runner.h — one sequence on one model, evaluated synchronously: the engine in its
 * simplest form, for the CLI (`kvserve run`, `kvserve logits`), tests and benchmarks.
 *
 * It owns a thread pool, a KV pool sized for n_ctx tokens, the forward scratch and the
 * sequence's block table; tokens are fed in chunks of at most n_batch. */
#ifndef KS_RUNNER_H
#define KS_RUNNER_H

#include "core/status.h"
#include "model/model.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct ks_runner_params {
    int n_threads;      /* <= 0: physical cores */
    int n_ctx;          /* context length in tokens; <= 0: min(model's, 4096) */
    int n_batch;        /* most tokens per forward call; <= 0: 512 */
    uint32_t kv_type;   /* KS_TYPE_F16 (default), KS_TYPE_F32 or KS_TYPE_Q8_0 */
    int block_tokens;   /* KV block size B; <= 0: 32 */
} ks_runner_params;

void ks_runner_params_default(ks_runner_params *p);

typedef struct ks_runner ks_runner;

ks_status ks_runner_create(ks_runner **out, const ks_model *m, const ks_runner_params *p, ks_err *err);
void ks_runner_destroy(ks_runner *r);

/* Appends n tokens to the sequence. out: (n, n_vocab) logits when all_logits, else
 * (n_vocab) logits of the last token; may be NULL. Fails with KS_ERR_INVALID (nothing
 * appended) for ids outside the vocabulary or a sequence that would outgrow n_ctx. */
ks_status ks_runner_eval(ks_runner *r, const int32_t *tokens, int n, bool all_logits, float *out,
                         ks_err *err);

int ks_runner_n_past(const ks_runner *r);
int ks_runner_n_ctx(const ks_runner *r);
int ks_runner_n_threads(const ks_runner *r);
/* Forgets the sequence (its blocks return to the pool). */
void ks_runner_reset(ks_runner *r);

#endif
