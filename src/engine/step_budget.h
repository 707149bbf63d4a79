/* step_budget.h — how many prompt tokens the engine's next step may carry, from the time
 * the engine's own recent steps took.
 *
 * Every running sequence waits for the whole of a step, and so does a request that
 * arrives during one; a step's time grows with its prompt tokens, the more so the deeper
 * they are into their prompt (each attends to every position before it): 512 tokens a
 * few thousand positions into a prompt take as long as dozens of decode steps. The
 * budget sizes a step that carries prompt tokens to last about K decode steps (the
 * target; K = --step-budget), so that streams keep about 1/K of their speed beside a
 * long prefill and a newcomer waits about K decode steps for the step in progress, early
 * in a 20K-token prompt or late. The chunk (--prefill-chunk tokens) bounds it above; below,
 * a step gives a prompt at least
 *
 *   KS_STEP_MIN_TOKENS        beside decode tokens (which share the step's fixed costs)
 *   KS_STEP_MIN_ALONE_TOKENS  otherwise, so that the prompt computes near its full speed
 *
 * Two quantities are measured as the engine runs, each an exponentially weighted mean:
 *
 *   decode_ms    a step without prompt tokens (the decode tokens of the running
 *                sequences): the unit of the target
 *   ms_per_work  a step's time beyond decode_ms (when it has decode tokens) per unit of
 *                its prompt work
 *
 * where the work of n prompt tokens after `depth` positions of their sequence is
 *
 *   work = n * token_macs + KS_STEP_ATTN_WEIGHT * pos_macs * (n * depth + n (n + 1) / 2)
 *
 * (token_macs: one token's matmuls; pos_macs: attention over one earlier position; both
 * from the model's shapes), so a token deep into a long prompt weighs more than one of a
 * short follow-up planned in the same step. The next step's tokens are the most whose
 * predicted time
 *
 *   [decode_ms if decode tokens ride along] + ms_per_work * work
 *
 * stays within the target. The model is crude on purpose: each step's measured time
 * corrects ms_per_work, and the tokens it allows converge to steps of the target's length
 * (a step that ran long raises the estimate, the next one carries fewer tokens). A step
 * with fewer than KS_STEP_MIN_TOKENS prompt tokens (a cached prompt's last few) is
 * mostly fixed costs and teaches nothing.
 *
 * Until a decode step has been measured there is no target and a step takes the chunk.
 * Beside decode tokens, a prompt whose cost is not known yet gets KS_STEP_MIN_TOKENS
 * (a cheap first measurement), and the engine leaves the prompt tokens out of a step
 * when decode_ms is missing or stale (ks_step_budget_wants_decode_step): a prompt
 * computed beside streams would otherwise leave no step to measure them by.
 *
 * Pure bookkeeping: no clock, no threads; the engine feeds it measured (or, in tests,
 * injected) step times. */
#ifndef KS_STEP_BUDGET_H
#define KS_STEP_BUDGET_H

#include "model/model.h"

#include <stdbool.h>

/* Default K: a step with prompt tokens lasts about this many decode steps. Streams keep
 * a quarter of their speed beside a long prefill, which keeps most of its own; and a
 * cached follow-up's new turn (~100 tokens: ~5-10 decode steps' time on a CPU) waits for
 * the step in progress less than its own prefill takes. */
#define KS_STEP_BUDGET_DEFAULT 4

/* Fewest prompt tokens a step gives a prompt that has that many left, beside decode
 * tokens: the attention kernel reads each block of K/V once per group of 8 query tokens,
 * so deep into a long prompt (where attention is most of a token's cost) fewer tokens
 * would read the K/V as often for less work. */
#define KS_STEP_MIN_TOKENS 8

/* The same with nothing decoding: a step costs about ten prompt tokens' time beyond its
 * tokens (what of the pass over the weights their arithmetic does not hide, the threads'
 * start and join; Qwen3-0.6B Q8_0, 2 threads: 72 ms + 6.6 ms a token 300 positions in,
 * 250 ms + 30 ms a token 4,096 in), and steps of 64 tokens compute within 5% of the
 * speed of 512-token ones there (7.8 against 7.4 ms a token, 33 against ~32). */
#define KS_STEP_MIN_ALONE_TOKENS 64

/* An attention multiply-add (f16 K/V widened in the tile kernels, a running softmax)
 * takes about as long as this many int8 matmul ones: on AVX-512 VNNI a prompt token 4,096
 * positions in costs 4.4x one 300 positions in, where the multiply-adds alone say 1.9x. */
#define KS_STEP_ATTN_WEIGHT 5.0

/* Steps with prompt tokens after which a step beside decode tokens leaves them out, to
 * measure a decode step again: a prompt computed beside streams gives up one step in
 * this many (~1.5% of its progress), and the unit follows a change of load or of the
 * streams within a few hundred decode steps. */
#define KS_STEP_DECODE_REFRESH 64

typedef struct ks_step_budget {
    int chunk;            /* most prompt tokens per step */
    int k;                /* target: k decode steps; 0: none (the chunk every step) */
    double token_macs;    /* multiply-adds of one token's matmuls */
    double pos_macs;      /* multiply-adds of attending to one position, all layers */
    double decode_ms;     /* mean step without prompt tokens; 0: none measured yet */
    double ms_per_work;   /* mean time per unit of prompt work; 0: none measured yet */
    int since_decode;     /* steps with prompt tokens since the last without */
} ks_step_budget;

/* The shape of a finished step, and the time it took. */
typedef struct ks_step_shape {
    int n_decode;         /* decode tokens (one per decoding sequence) */
    int n_prompt;         /* prompt tokens */
    double prompt_work;   /* their work (ks_step_budget_work summed over sequences) */
    double ms;            /* wall time */
} ks_step_shape;

void ks_step_budget_init(ks_step_budget *b, const ks_hparams *hp, int chunk, int k);

/* Work of n prompt tokens following depth positions of their sequence. */
double ks_step_budget_work(const ks_step_budget *b, int depth, int n);

/* The time a step with prompt tokens should not exceed (ms), or INFINITY when there is
 * none (k == 0, or nothing measured yet). */
double ks_step_budget_target_ms(const ks_step_budget *b);

/* Predicted time of a step with `work` of prompt tokens, with or without decode tokens;
 * 0 when nothing is measured yet. */
double ks_step_budget_predict_ms(const ks_step_budget *b, double work, bool with_decode);

/* Most of a prompt's next tokens (at most max_tokens, which follow depth positions) that
 * keep the step within its target, with planned_work of other prompts already in it.
 * When nothing is planned yet, never fewer than the floor (KS_STEP_MIN_TOKENS with decode
 * tokens, else KS_STEP_MIN_ALONE_TOKENS) or max_tokens if fewer. */
int ks_step_budget_fit(const ks_step_budget *b, double planned_work, bool with_decode, int depth, int max_tokens);

/* Whether a step with decode tokens should leave prompt tokens out, to measure
 * decode_ms: none measured yet, or KS_STEP_DECODE_REFRESH steps since the last. */
bool ks_step_budget_wants_decode_step(const ks_step_budget *b);

/* Learns from a finished step. */
void ks_step_budget_observe(ks_step_budget *b, const ks_step_shape *s);

#endif
