/* step_budget.c — prompt tokens per step from measured step times (see step_budget.h). */
#include "engine/step_budget.h"

#include "core/ks_core.h"

#include <math.h>

/* Weight of a new measurement in the running means: a quarter follows a prompt's growing
 * depth and a change of load within a few steps, and keeps one step's noise (a neighbour
 * on a shared machine) from swinging the next step's size by more than a quarter. */
#define KS_STEP_EWMA 0.25

/* A step with decode tokens that ran no longer than a decode step alone still did its
 * prompt work: count at least this share of its time for it, so that the estimate stays
 * positive and the next step's size grows back gradually. */
#define KS_STEP_MIN_PROMPT_SHARE 0.1

void ks_step_budget_init(ks_step_budget *b, const ks_hparams *hp, int chunk, int k) {
    double d = hp->n_embd, q_dim = (double)hp->n_head * hp->head_dim, kv_dim = (double)hp->n_head_kv * hp->head_dim;
    double ffn = hp->n_expert > 0 ? d * hp->n_expert + (double)hp->n_expert_used * 3.0 * d * hp->n_ff_exp
                                  : 3.0 * d * hp->n_ff;
    b->chunk = chunk;
    b->k = k > 0 ? k : 0;
    b->token_macs = hp->n_layer * (d * q_dim + 2.0 * d * kv_dim + q_dim * d + ffn);
    b->pos_macs = 2.0 * hp->n_layer * q_dim;
    b->decode_ms = 0;
    b->ms_per_work = 0;
    b->since_decode = 0;
}

double ks_step_budget_work(const ks_step_budget *b, int depth, int n) {
    double attended = (double)n * depth + (double)n * (n + 1) / 2;
    return n * b->token_macs + KS_STEP_ATTN_WEIGHT * b->pos_macs * attended;
}

bool ks_step_budget_wants_decode_step(const ks_step_budget *b) {
    return b->k > 0 && (b->decode_ms <= 0 || b->since_decode >= KS_STEP_DECODE_REFRESH);
}

double ks_step_budget_target_ms(const ks_step_budget *b) {
    if (b->k == 0 || b->decode_ms <= 0 || b->ms_per_work <= 0)
        return INFINITY;
    return b->k * b->decode_ms;
}

double ks_step_budget_predict_ms(const ks_step_budget *b, double work, bool with_decode) {
    return (with_decode ? b->decode_ms : 0) + b->ms_per_work * work;
}

/* Whether n tokens after depth, beside planned_work, keep the step within cap_ms. */
static bool fits(const ks_step_budget *b, double planned_work, bool with_decode, int depth, int n, double cap_ms) {
    return ks_step_budget_predict_ms(b, planned_work + ks_step_budget_work(b, depth, n), with_decode) <= cap_ms;
}

int ks_step_budget_fit(const ks_step_budget *b, double planned_work, bool with_decode, int depth, int max_tokens) {
    if (max_tokens <= 0)
        return 0;
    int least = with_decode ? KS_STEP_MIN_TOKENS : KS_STEP_MIN_ALONE_TOKENS;
    int lo = planned_work > 0 ? 0 : KS_MIN(max_tokens, least), hi = max_tokens;
    if (b->k > 0 && with_decode && b->decode_ms > 0 && b->ms_per_work <= 0)
        return lo; /* the first prompt tokens beside streams: a cheap measurement */
    double cap = ks_step_budget_target_ms(b);
    if (isinf(cap) || fits(b, planned_work, with_decode, depth, hi, cap))
        return hi;
    if (lo > 0 && !fits(b, planned_work, with_decode, depth, lo, cap))
        return lo;
    /* the time grows with the tokens: lo fits (or is 0), hi does not */
    while (hi - lo > 1) {
        int mid = lo + (hi - lo) / 2;
        if (fits(b, planned_work, with_decode, depth, mid, cap))
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

static double ewma(double mean, double x) { return mean > 0 ? mean + KS_STEP_EWMA * (x - mean) : x; }

void ks_step_budget_observe(ks_step_budget *b, const ks_step_shape *s) {
    if (!(s->ms > 0))
        return;
    if (s->n_prompt == 0) {
        if (s->n_decode > 0) {
            b->decode_ms = ewma(b->decode_ms, s->ms);
            b->since_decode = 0;
        }
        return;
    }
    b->since_decode++;
    if (s->n_prompt < KS_STEP_MIN_TOKENS || !(s->prompt_work > 0))
        return; /* a cached prompt's last few tokens: the step's fixed costs, mostly */
    double base = s->n_decode > 0 ? b->decode_ms : 0;
    double prompt_ms = KS_MAX(s->ms - base, s->ms * KS_STEP_MIN_PROMPT_SHARE);
    b->ms_per_work = ewma(b->ms_per_work, prompt_ms / s->prompt_work);
}
