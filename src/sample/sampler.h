/* sampler.h — one position's logits in, one token out.
 *
 * Owns: the sampler chain with llama.cpp's default order and semantics, its window of
 * recent tokens for the penalties, its RNG state, and the log-probabilities reported
 * with each token.
 * Does not own: logits (borrowed for one call), seeds (the engine picks one per request
 * when the client sends none), stop strings (stop_matcher.h), grammars.
 *
 * The chain, in order (each stage sees what the one before left):
 *
 *   logits (n_vocab)            copied; NaN -> -inf, +inf -> FLT_MAX
 *   -> penalties                for tokens in the last repeat_last_n accepted tokens
 *   -> top-k                    keep the k highest logits
 *   -> top-p                    keep the smallest best-first prefix of mass >= top_p
 *   -> min-p                    keep tokens with p >= min_p * p_max
 *   -> temperature              logits / temperature
 *   -> draw from the softmax    one uniform draw from the sampler's RNG
 *
 * temperature == 0 is greedy: penalties, then the argmax (ties go to the lowest id); the
 * truncation stages are skipped because none of them can remove the argmax.
 *
 * Ranking, wherever candidates are ordered: higher logit first, equal logits by lower
 * token id. Sampling is therefore a pure function of (params, accepted tokens, logits,
 * number of earlier draws).
 *
 * Threads: a sampler belongs to one sequence and is used by one thread at a time. The
 * per-token calls (accept, sample, candidates) allocate nothing: all scratch is sized
 * for n_vocab at create. */
#ifndef KS_SAMPLER_H
#define KS_SAMPLER_H

#include "core/status.h"

#include <stdbool.h>
#include <stdint.h>

/* OpenAI's ceiling for top_logprobs; llama.cpp's n_probs is not capped but clients ask
 * for a handful. */
#define KS_SAMPLER_MAX_TOP_LOGPROBS 20
/* The largest penalty window: past any context length we run (the window's ring buffer
 * is 4 bytes a token). */
#define KS_SAMPLER_MAX_LAST_N (1 << 20)

typedef struct ks_sampler_params {
    /* 0: greedy. > 0: logits are divided by it after truncation. Must be finite. */
    float temperature;
    /* Keep the top_k best tokens; <= 0 (or >= n_vocab) turns it off (vLLM's -1 works). */
    int32_t top_k;
    /* Nucleus: in (0, 1]; 1 turns it off. The mass is taken at temperature 1 over what
     * top-k kept, as in llama.cpp. */
    float top_p;
    /* In [0, 1]; 0 turns it off. Scale-free, so temperature does not matter to it. */
    float min_p;
    /* llama.cpp's repetition penalty, > 0; 1 turns it off. A windowed token's logit is
     * divided by it when positive and multiplied by it when <= 0. */
    float repeat_penalty;
    /* How many of the most recently accepted tokens all three penalties look at, in
     * [0, KS_SAMPLER_MAX_LAST_N]; 0 turns the penalties off. llama.cpp's -1 ("the context
     * size") is for the caller to resolve. */
    int32_t repeat_last_n;
    /* OpenAI semantics, finite: logit -= frequency_penalty * count + presence_penalty,
     * for each token seen count > 0 times in the window (OpenAI counts over the whole
     * generated text; here, as in llama.cpp, over the window). */
    float presence_penalty;
    float frequency_penalty;
    /* Seeds the RNG at create and at every reset. */
    uint64_t seed;
    /* How many alternatives ks_sampler_sample reports in its ks_token_logprobs, in
     * [0, KS_SAMPLER_MAX_TOP_LOGPROBS]. */
    int32_t n_top_logprobs;
} ks_sampler_params;

/* llama.cpp server's defaults: temperature 0.8, top_k 40, top_p 0.95, min_p 0.05,
 * repeat_penalty 1 (off), repeat_last_n 64, presence and frequency 0, seed 0,
 * no logprob alternatives. */
ks_sampler_params ks_sampler_params_default(void);

/* KS_OK, or KS_ERR_INVALID with a message naming the first bad field. For API adapters
 * that want to refuse a request before it reaches the engine; create calls it too. */
ks_status ks_sampler_params_validate(const ks_sampler_params *params, ks_err *err);

/* One token and its log-probability. */
typedef struct ks_token_logprob {
    int32_t token;
    float logprob; /* natural log */
} ks_token_logprob;

/* Log-probabilities of the *unmodified* logits: log_softmax over the whole vocabulary
 * of the logits given to ks_sampler_sample, before penalties, truncation and
 * temperature (what vLLM reports by default and llama.cpp's server reports as
 * "probs"). The chosen token's entry is therefore independent of the sampling
 * parameters; -inf for a token whose logit was -inf or NaN. */
typedef struct ks_token_logprobs {
    ks_token_logprob chosen;
    int32_t n_top; /* params.n_top_logprobs, or n_vocab if smaller */
    ks_token_logprob top[KS_SAMPLER_MAX_TOP_LOGPROBS]; /* best first (ranking above) */
} ks_token_logprobs;

/* A candidate left at the end of the chain: its logit after penalties (before
 * temperature) and the probability the draw gives it. */
typedef struct ks_token_prob {
    int32_t token;
    float logit;
    float p;
} ks_token_prob;

typedef struct ks_sampler ks_sampler;

/* Allocates scratch for n_vocab candidates (12 bytes each), a per-token count (4 bytes
 * each) and the penalty window. *out is written only on success; the sampler is owned by
 * the caller until ks_sampler_destroy. KS_ERR_INVALID for bad parameters, KS_ERR_NOMEM
 * when the scratch cannot be had. */
ks_status ks_sampler_create(ks_sampler **out, int32_t n_vocab, const ks_sampler_params *params,
                            ks_err *err);
void ks_sampler_destroy(ks_sampler *s); /* NULL is fine */

/* Appends a token to the penalty window (dropping the oldest past repeat_last_n). The
 * sampler never accepts on its own: the caller accepts each token it keeps, and the
 * prompt's tokens too if the penalties should see them (llama.cpp's server does).
 * KS_ERR_INVALID, and no change, for a token outside [0, n_vocab). */
ks_status ks_sampler_accept(ks_sampler *s, int32_t token);

/* Empties the penalty window and re-seeds the RNG with params.seed: a reset sampler
 * replays exactly what a fresh one would. */
void ks_sampler_reset(ks_sampler *s);

/* Runs the chain over logits (n_vocab floats, borrowed for the call) and returns the
 * chosen token. When lp is not NULL it also fills the chosen token's log-probability and
 * the n_top best alternatives (see ks_token_logprobs; this costs one more pass over the
 * vocabulary). Returns -1 when no token has a finite logit (a broken forward pass; the
 * caller fails the request). */
int32_t ks_sampler_sample(ks_sampler *s, const float *logits, ks_token_logprobs *lp);

/* The distribution ks_sampler_sample would draw from, without drawing (the RNG is not
 * touched): writes the best min(cap, survivors) candidates, best first, to out and
 * returns how many survived the chain in all (0 when no logit is finite). With
 * temperature 0 the one survivor is the argmax with p = 1. For clients that ask for
 * post-sampling probabilities, and for tests. */
int32_t ks_sampler_candidates(ks_sampler *s, const float *logits, ks_token_prob *out, int32_t cap);

#endif
