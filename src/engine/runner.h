/* runner.h — sequences on one model, evaluated synchronously: the engine in its simplest
 * form, for the CLI (`kvserve run`, `kvserve logits`), tests and benchmarks.
 *
 * It owns a thread pool, the KV cache (paged pool + prefix index + optional disk tier),
 * the forward scratch and n_seqs sequences (one unless asked), of which one is current.
 * ks_runner_start() begins the current sequence on a prompt, reusing every cached block of
 * it; ks_runner_eval() appends tokens to it; ks_runner_decode() appends one token to every
 * sequence in one batch, as the engine's decode steps do. Full blocks are published to the
 * cache as they fill, so a later prompt that shares the prefix (in this process, or in the
 * next one through the disk tier) computes only the rest. */
#ifndef KS_RUNNER_H
#define KS_RUNNER_H

#include "core/status.h"
#include "kv/kv_cache.h"
#include "model/model.h"

#include <stdbool.h>
#include <stdint.h>

#define KS_RUNNER_MAX_SEQS 64

typedef struct ks_runner_params {
    int n_threads;        /* <= 0: physical cores */
    int n_ctx;            /* context length in tokens; <= 0: min(model's, 4096) */
    int n_batch;          /* most tokens per forward call; <= 0: 512 */
    int n_seqs;           /* sequences held (1..KS_RUNNER_MAX_SEQS); <= 0: 1 */
    ks_kv_cache_params kv; /* kv.ram_bytes 0: enough for n_ctx tokens of each sequence
                             (earlier prefixes come back from the disk tier, if any) */
} ks_runner_params;

void ks_runner_params_default(ks_runner_params *p);

typedef struct ks_runner ks_runner;

ks_status ks_runner_create(ks_runner **out, const ks_model *m, const ks_runner_params *p, ks_err *err);
void ks_runner_destroy(ks_runner *r);

/* Makes sequence j (0 <= j < n_seqs) the one start, eval, reset and n_past act on (0 at
 * first). */
void ks_runner_select(ks_runner *r, int j);

/* Forgets the current sequence and starts one on prompt: cached blocks are taken, the
 * rest computed. last_logits (n_vocab) receives the last token's logits (may be NULL);
 * usage says what came from where. */
ks_status ks_runner_start(ks_runner *r, const int32_t *prompt, int n, float *last_logits,
                          ks_kv_usage *usage, ks_err *err);

/* Appends n tokens to the sequence. out: (n, n_vocab) logits when all_logits, else
 * (n_vocab) logits of the last token; may be NULL. Fails with KS_ERR_INVALID (nothing
 * appended) for ids outside the vocabulary or a sequence that would outgrow n_ctx. */
ks_status ks_runner_eval(ks_runner *r, const int32_t *tokens, int n, bool all_logits, float *out,
                         ks_err *err);

/* Appends tokens[j] to sequence j for every j < n_seqs, all in one forward batch. logits:
 * (n_seqs, n_vocab), row j sequence j's; may be NULL. Fails as ks_runner_eval does,
 * before anything is appended. */
ks_status ks_runner_decode(ks_runner *r, const int32_t *tokens, float *logits, ks_err *err);

int ks_runner_n_past(const ks_runner *r);
int ks_runner_n_seqs(const ks_runner *r);
int ks_runner_n_ctx(const ks_runner *r);
int ks_runner_n_threads(const ks_runner *r);
ks_kv_cache *ks_runner_cache(ks_runner *r);
/* Forgets the current sequence (its published blocks stay cached). */
void ks_runner_reset(ks_runner *r);

#endif
