/* test_sample.c — the sampler chain against a naive reference written from the spec
 * (full sort, then each stage in llama.cpp's order), the RNG's reproducibility and
 * distribution, log-probabilities, parameter errors, and the stop matcher against a
 * brute-force search over every split of its input. */
#include "sample/rng.h"
#include "sample/sampler.h"
#include "sample/stop_matcher.h"

#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ----------------------------------------------------------------------------- */

/* Everything off, temperature 1: the draw is the softmax of the logits. */
static ks_sampler_params params_plain(void) {
    ks_sampler_params p = ks_sampler_params_default();
    p.temperature = 1.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.seed = 1234;
    return p;
}

static ks_sampler *make(int32_t n_vocab, const ks_sampler_params *p) {
    ks_err err;
    ks_err_clear(&err);
    ks_sampler *s = NULL;
    ks_status st = ks_sampler_create(&s, n_vocab, p, &err);
    cr_assert_eq(st, KS_OK, "create: %s (%s)", ks_status_str(st), err.msg);
    return s;
}

/* Logits in [-scale, scale) from a test-local stream. */
static void random_logits(ks_rng *rng, float *l, int32_t n, float scale) {
    for (int32_t i = 0; i < n; i++)
        l[i] = (float)((ks_rng_uniform(rng) * 2.0 - 1.0) * scale);
}

/* Logits whose softmax is exactly probs (up to rounding): log p. */
static void logits_from_probs(const double *probs, float *l, int32_t n) {
    for (int32_t i = 0; i < n; i++)
        l[i] = (float)log(probs[i]);
}

/* ---- the reference chain ------------------------------------------------------------------- */

typedef struct ref_cand {
    int32_t id;
    float logit;
} ref_cand;

static int ref_cmp(const void *a, const void *b) {
    const ref_cand *x = a, *y = b;
    if (x->logit != y->logit)
        return x->logit > y->logit ? -1 : 1;
    return x->id < y->id ? -1 : (x->id > y->id);
}

/* Survivors of the chain, best first, computed the obvious way: penalties from counts
 * over the last repeat_last_n of `history`, a full sort, then top-k, top-p (mass at
 * temperature 1), min-p. Returns how many survive; c must hold n_vocab entries. */
static int32_t ref_chain(const float *logits, int32_t n_vocab, const ks_sampler_params *p,
                         const int32_t *history, int32_t n_history, ref_cand *c) {
    for (int32_t i = 0; i < n_vocab; i++) {
        c[i].id = i;
        c[i].logit = logits[i];
    }
    const int32_t first = KS_MAX(0, n_history - p->repeat_last_n);
    for (int32_t t = 0; t < n_vocab && p->repeat_last_n > 0; t++) {
        int32_t count = 0;
        for (int32_t j = first; j < n_history; j++)
            count += history[j] == t;
        if (count == 0)
            continue;
        float l = c[t].logit;
        l = l <= 0.0f ? l * p->repeat_penalty : l / p->repeat_penalty;
        l -= (float)count * p->frequency_penalty + p->presence_penalty;
        c[t].logit = l;
    }
    qsort(c, (size_t)n_vocab, sizeof *c, ref_cmp);
    if (p->temperature == 0.0f)
        return 1;
    int32_t n = n_vocab;
    if (p->top_k > 0 && p->top_k < n)
        n = p->top_k;
    if (p->top_p < 1.0f && n > 1) {
        double z = 0.0, cum = 0.0;
        for (int32_t i = 0; i < n; i++)
            z += expf(c[i].logit - c[0].logit);
        for (int32_t i = 0; i < n; i++) {
            cum += expf(c[i].logit - c[0].logit);
            if (cum >= p->top_p * z) {
                n = i + 1;
                break;
            }
        }
    }
    if (p->min_p > 0.0f && n > 1) {
        const float floor_logit = c[0].logit + logf(p->min_p);
        int32_t i = 1;
        while (i < n && c[i].logit >= floor_logit)
            i++;
        n = i;
    }
    return n;
}

/* Runs the sampler's candidates() and the reference on the same input and requires the
 * same survivors, in the same order, with the same logits, and probabilities equal to
 * the reference softmax at the temperature. */
static void check_against_ref(ks_sampler *s, const float *logits, int32_t n_vocab,
                              const ks_sampler_params *p, const int32_t *history, int32_t n_history) {
    ref_cand *ref = malloc((size_t)n_vocab * sizeof *ref);
    ks_token_prob *got = malloc((size_t)n_vocab * sizeof *got);
    const int32_t n_ref = ref_chain(logits, n_vocab, p, history, n_history, ref);
    const int32_t n_got = ks_sampler_candidates(s, logits, got, n_vocab);
    cr_assert_eq(n_got, n_ref, "survivors: got %d, reference %d (top_k %d top_p %g min_p %g)",
                 n_got, n_ref, p->top_k, (double)p->top_p, (double)p->min_p);
    double z = 0.0;
    for (int32_t i = 0; i < n_ref && p->temperature > 0.0f; i++)
        z += exp(((double)ref[i].logit - ref[0].logit) / p->temperature);
    for (int32_t i = 0; i < n_ref; i++) {
        cr_assert_eq(got[i].token, ref[i].id, "rank %d: token %d, reference %d", i, got[i].token,
                     ref[i].id);
        cr_assert(got[i].logit == ref[i].logit, "token %d: logit %.9g, reference %.9g", ref[i].id,
                  (double)got[i].logit, (double)ref[i].logit);
        const double want = p->temperature > 0.0f
                                ? exp(((double)ref[i].logit - ref[0].logit) / p->temperature) / z
                                : 1.0;
        cr_assert(fabs(got[i].p - want) <= 1e-6 + 1e-5 * want, "token %d: p %.9g, reference %.9g",
                  ref[i].id, (double)got[i].p, want);
    }
    free(ref);
    free(got);
}

/* ---- greedy ------------------------------------------------------------------------------ */

Test(sample, test_sample_greedy_picks_argmax) {
    enum { N_VOCAB = 1000 };
    static float l[N_VOCAB];
    ks_sampler_params p = ks_sampler_params_default();
    p.temperature = 0.0f;
    ks_sampler *s = make(N_VOCAB, &p);
    ks_rng rng;
    ks_rng_seed(&rng, 7);
    for (int trial = 0; trial < 50; trial++) {
        random_logits(&rng, l, N_VOCAB, 10.0f);
        int32_t want = 0;
        for (int32_t i = 1; i < N_VOCAB; i++)
            if (l[i] > l[want])
                want = i;
        const int32_t got = ks_sampler_sample(s, l, NULL);
        cr_assert_eq(got, want, "trial %d: sampled %d, argmax %d", trial, got, want);
    }
    /* Ties go to the lowest id. */
    for (int32_t i = 0; i < N_VOCAB; i++)
        l[i] = (float)(i % 7);
    const int32_t got = ks_sampler_sample(s, l, NULL);
    cr_assert_eq(got, 6, "tie: sampled %d, want 6 (the lowest id with the top logit)", got);
    ks_sampler_destroy(s);
}

Test(sample, test_sample_greedy_ignores_truncation_and_skips_nonfinite) {
    float l[6] = {1.0f, NAN, 3.0f, -INFINITY, 3.0f, 2.0f};
    ks_sampler_params p = ks_sampler_params_default();
    p.temperature = 0.0f;
    p.top_k = 1;
    p.top_p = 0.1f;
    p.min_p = 0.9f;
    ks_sampler *s = make(6, &p);
    cr_assert_eq(ks_sampler_sample(s, l, NULL), 2);
    l[2] = INFINITY;
    cr_assert_eq(ks_sampler_sample(s, l, NULL), 2, "+inf is the largest logit");
    ks_sampler_destroy(s);
}

Test(sample, test_sample_no_finite_logit_returns_minus_one) {
    const float l[4] = {NAN, -INFINITY, NAN, -INFINITY};
    for (int greedy = 0; greedy < 2; greedy++) {
        ks_sampler_params p = params_plain();
        p.temperature = greedy ? 0.0f : 1.0f;
        p.n_top_logprobs = 3;
        ks_sampler *s = make(4, &p);
        ks_token_logprobs lp;
        cr_assert_eq(ks_sampler_sample(s, l, &lp), -1);
        cr_assert_eq(lp.chosen.token, -1);
        cr_assert_eq(lp.n_top, 0);
        ks_token_prob out[4];
        cr_assert_eq(ks_sampler_candidates(s, l, out, 4), 0);
        ks_sampler_destroy(s);
    }
}

Test(sample, test_sample_nan_never_drawn) {
    float l[5] = {NAN, 0.0f, NAN, 0.0f, NAN};
    ks_sampler_params p = params_plain();
    ks_sampler *s = make(5, &p);
    for (int i = 0; i < 2000; i++) {
        const int32_t t = ks_sampler_sample(s, l, NULL);
        cr_assert(t == 1 || t == 3, "drew %d, a NaN logit", t);
    }
    ks_sampler_destroy(s);
}

/* ---- the RNG and the draw ---------------------------------------------------------------- */

Test(sample, test_sample_rng_reproducible_per_seed) {
    ks_rng a, b, c;
    ks_rng_seed(&a, 42);
    ks_rng_seed(&b, 42);
    ks_rng_seed(&c, 43);
    int differ = 0;
    for (int i = 0; i < 1000; i++) {
        const uint64_t x = ks_rng_next_u64(&a), y = ks_rng_next_u64(&b), z = ks_rng_next_u64(&c);
        cr_assert_eq(x, y, "step %d: %llu != %llu", i, (unsigned long long)x, (unsigned long long)y);
        differ += x != z;
        const double u = ks_rng_uniform(&a);
        cr_assert(u >= 0.0 && u < 1.0, "uniform out of [0, 1): %.17g", u);
        ks_rng_uniform(&b);
        ks_rng_uniform(&c);
    }
    cr_assert_gt(differ, 990, "seeds 42 and 43 agree on %d of 1000 outputs", 1000 - differ);
    ks_rng zero;
    ks_rng_seed(&zero, 0);
    cr_assert(zero.s[0] | zero.s[1] | zero.s[2] | zero.s[3], "seed 0 gave the all-zero state");
}

Test(sample, test_sample_fixed_seed_reproducible) {
    enum { N_VOCAB = 500, STEPS = 300 };
    static float l[N_VOCAB];
    ks_rng rng;
    ks_rng_seed(&rng, 99);
    random_logits(&rng, l, N_VOCAB, 4.0f);
    ks_sampler_params p = ks_sampler_params_default(); /* top-k, top-p, min-p all on */
    p.seed = 2024;
    p.repeat_penalty = 1.2f;
    ks_sampler *a = make(N_VOCAB, &p);
    ks_sampler *b = make(N_VOCAB, &p);
    p.seed = 2025;
    ks_sampler *c = make(N_VOCAB, &p);
    int32_t first[STEPS];
    int differ = 0;
    for (int i = 0; i < STEPS; i++) {
        const int32_t ta = ks_sampler_sample(a, l, NULL);
        const int32_t tb = ks_sampler_sample(b, l, NULL);
        const int32_t tc = ks_sampler_sample(c, l, NULL);
        cr_assert_eq(ta, tb, "step %d: same seed drew %d and %d", i, ta, tb);
        differ += ta != tc;
        first[i] = ta;
        ks_sampler_accept(a, ta);
        ks_sampler_accept(b, tb);
        ks_sampler_accept(c, tc);
    }
    cr_assert_gt(differ, 0, "a different seed drew the same %d tokens", STEPS);
    /* reset replays from the start: empty window, re-seeded RNG */
    ks_sampler_reset(a);
    for (int i = 0; i < STEPS; i++) {
        const int32_t t = ks_sampler_sample(a, l, NULL);
        cr_assert_eq(t, first[i], "after reset, step %d: %d, first run %d", i, t, first[i]);
        ks_sampler_accept(a, t);
    }
    ks_sampler_destroy(a);
    ks_sampler_destroy(b);
    ks_sampler_destroy(c);
}

/* Draws n times and returns Pearson's chi-square of the counts against probs. */
static double chi_square(ks_sampler *s, const float *l, const double *probs, int32_t n_vocab,
                         int n) {
    long counts[16] = {0};
    cr_assert(n_vocab <= 16);
    for (int i = 0; i < n; i++) {
        const int32_t t = ks_sampler_sample(s, l, NULL);
        cr_assert(t >= 0 && t < n_vocab, "drew %d", t);
        counts[t]++;
    }
    double chi2 = 0.0;
    for (int32_t t = 0; t < n_vocab; t++) {
        if (probs[t] == 0.0) {
            cr_assert_eq(counts[t], 0, "token %d has p = 0 but was drawn %ld times", t, counts[t]);
            continue;
        }
        const double e = probs[t] * n;
        chi2 += (counts[t] - e) * (counts[t] - e) / e;
    }
    return chi2;
}

Test(sample, test_sample_frequencies_match_softmax) {
    enum { N_VOCAB = 8, DRAWS = 200000 };
    const float l[N_VOCAB] = {1.0f, 0.5f, 0.0f, -0.5f, 2.0f, -1.0f, 0.2f, 1.5f};
    /* chi-square with 7 degrees of freedom exceeds 24.32 with probability 0.001 */
    const double limit = 24.32;
    const float temps[3] = {1.0f, 0.6f, 1.7f};
    for (int k = 0; k < 3; k++) {
        ks_sampler_params p = params_plain();
        p.temperature = temps[k];
        p.seed = 77 + (uint64_t)k;
        ks_sampler *s = make(N_VOCAB, &p);
        double probs[N_VOCAB], z = 0.0;
        for (int t = 0; t < N_VOCAB; t++)
            z += probs[t] = exp(l[t] / temps[k]);
        for (int t = 0; t < N_VOCAB; t++)
            probs[t] /= z;
        const double chi2 = chi_square(s, l, probs, N_VOCAB, DRAWS);
        cr_assert_lt(chi2, limit, "temperature %g: chi-square %.2f over %d draws", (double)temps[k],
                     chi2, DRAWS);
        ks_sampler_destroy(s);
    }
}

Test(sample, test_sample_frequencies_match_truncated_distribution) {
    enum { N_VOCAB = 8, DRAWS = 100000 };
    const float l[N_VOCAB] = {1.0f, 0.5f, 0.0f, -0.5f, 2.0f, -1.0f, 0.2f, 1.5f};
    ks_sampler_params p = params_plain();
    p.top_k = 5;
    p.top_p = 0.9f;
    p.temperature = 0.7f;
    ks_sampler *s = make(N_VOCAB, &p);
    ks_token_prob cands[N_VOCAB];
    const int32_t n = ks_sampler_candidates(s, l, cands, N_VOCAB);
    /* at temperature 1 the top 5 weigh 0.423 0.257 0.156 0.094 0.070: top_p 0.9 keeps 4 */
    cr_assert_eq(n, 4, "%d survivors, want 4", n);
    double probs[N_VOCAB] = {0};
    for (int32_t i = 0; i < n; i++)
        probs[cands[i].token] = cands[i].p;
    /* 3 degrees of freedom: chi-square exceeds 16.27 with probability 0.001 */
    const double chi2 = chi_square(s, l, probs, N_VOCAB, DRAWS);
    cr_assert_lt(chi2, 16.27, "chi-square %.2f over %d draws from %d survivors", chi2, DRAWS, n);
    ks_sampler_destroy(s);
}

/* ---- truncation -------------------------------------------------------------------------- */

Test(sample, test_sample_top_k_one_equals_greedy) {
    enum { N_VOCAB = 3000 };
    static float l[N_VOCAB];
    ks_sampler_params pk = ks_sampler_params_default();
    pk.top_k = 1;
    pk.temperature = 1.3f;
    ks_sampler_params pg = ks_sampler_params_default();
    pg.temperature = 0.0f;
    ks_sampler *k1 = make(N_VOCAB, &pk);
    ks_sampler *g = make(N_VOCAB, &pg);
    ks_rng rng;
    ks_rng_seed(&rng, 5);
    for (int trial = 0; trial < 40; trial++) {
        random_logits(&rng, l, N_VOCAB, 3.0f);
        if (trial % 4 == 0) /* a tie for the top */
            l[trial * 17 % N_VOCAB] = l[trial * 31 % N_VOCAB] = 3.5f;
        const int32_t a = ks_sampler_sample(k1, l, NULL), b = ks_sampler_sample(g, l, NULL);
        cr_assert_eq(a, b, "trial %d: top_k 1 drew %d, greedy %d", trial, a, b);
    }
    ks_sampler_destroy(k1);
    ks_sampler_destroy(g);
}

Test(sample, test_sample_top_k_keeps_k_best) {
    const float l[10] = {0.1f, 0.9f, 0.5f, 0.9f, -1.0f, 0.3f, 0.7f, 0.2f, 0.5f, 0.0f};
    ks_sampler_params p = params_plain();
    p.top_k = 4;
    ks_sampler *s = make(10, &p);
    ks_token_prob out[10];
    const int32_t n = ks_sampler_candidates(s, l, out, 10);
    const int32_t want[4] = {1, 3, 6, 2}; /* 0.9 (ids 1, 3), 0.7, then the lower id of 0.5 */
    cr_assert_eq(n, 4, "%d survivors", n);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(out[i].token, want[i], "rank %d: %d, want %d", i, out[i].token, want[i]);
    ks_sampler_destroy(s);
}

/* The survivors of candidates() as a set of tokens, via their rank list. */
static void expect_survivors(ks_sampler *s, const float *l, int32_t n_vocab, const int32_t *want,
                             int32_t n_want, const char *what) {
    ks_token_prob out[16];
    cr_assert(n_vocab <= 16);
    const int32_t n = ks_sampler_candidates(s, l, out, n_vocab);
    cr_assert_eq(n, n_want, "%s: %d survivors, want %d", what, n, n_want);
    double sum = 0.0;
    for (int32_t i = 0; i < n; i++) {
        cr_assert_eq(out[i].token, want[i], "%s: rank %d is %d, want %d", what, i, out[i].token,
                     want[i]);
        sum += out[i].p;
    }
    cr_assert(fabs(sum - 1.0) < 1e-6, "%s: survivors' probabilities sum to %.9g", what, sum);
}

Test(sample, test_sample_top_p_cuts_expected_set) {
    /* p by id: 0.15 0.05 0.5 0.1 0.2 -> best first: 2 4 0 3 1, cumulative
     * 0.5 0.7 0.85 0.95 1.0 */
    const double probs[5] = {0.15, 0.05, 0.5, 0.1, 0.2};
    float l[5];
    logits_from_probs(probs, l, 5);
    const int32_t order[5] = {2, 4, 0, 3, 1};
    const struct {
        float top_p;
        int32_t n;
    } cases[] = {{0.3f, 1}, {0.49f, 1}, {0.55f, 2}, {0.69f, 2}, {0.75f, 3},
                 {0.9f, 4}, {0.97f, 5}, {1.0f, 5}};
    for (size_t k = 0; k < KS_ARRAY_LEN(cases); k++) {
        ks_sampler_params p = params_plain();
        p.top_p = cases[k].top_p;
        ks_sampler *s = make(5, &p);
        char what[64];
        snprintf(what, sizeof what, "top_p %g", (double)cases[k].top_p);
        expect_survivors(s, l, 5, order, cases[k].n, what);
        ks_sampler_destroy(s);
    }
}

Test(sample, test_sample_top_p_after_top_k_renormalizes) {
    /* top-p measures mass over what top-k kept. top_k 3 keeps 0.5 0.2 0.15, renormalized
     * to cumulative 0.588 0.824 1: top_p 0.8 keeps two. Over all five tokens the
     * cumulative is 0.5 0.7 0.85: the same top_p keeps three. */
    const double probs[5] = {0.15, 0.05, 0.5, 0.1, 0.2};
    float l[5];
    logits_from_probs(probs, l, 5);
    const int32_t order[5] = {2, 4, 0, 3, 1};
    ks_sampler_params p = params_plain();
    p.top_k = 3;
    p.top_p = 0.8f;
    ks_sampler *s = make(5, &p);
    expect_survivors(s, l, 5, order, 2, "top_k 3, top_p 0.8");
    ks_sampler_destroy(s);
    p.top_k = 0;
    s = make(5, &p);
    expect_survivors(s, l, 5, order, 3, "top_k off, top_p 0.8");
    ks_sampler_destroy(s);
}

Test(sample, test_sample_min_p_cuts_expected_set) {
    /* p by id: 0.06 0.4 0.04 0.3 0.2 -> best first 1 3 4 0 2 */
    const double probs[5] = {0.06, 0.4, 0.04, 0.3, 0.2};
    float l[5];
    logits_from_probs(probs, l, 5);
    const int32_t order[5] = {1, 3, 4, 0, 2};
    const struct {
        float min_p; /* floor = min_p * 0.4 */
        int32_t n;
    } cases[] = {{0.05f, 5}, {0.12f, 4}, {0.2f, 3}, {0.6f, 2}, {0.9f, 1}, {1.0f, 1}};
    for (size_t k = 0; k < KS_ARRAY_LEN(cases); k++) {
        for (int sorted_first = 0; sorted_first < 2; sorted_first++) {
            ks_sampler_params p = params_plain();
            p.min_p = cases[k].min_p;
            p.top_k = sorted_first ? 4 + (cases[k].n == 5) : 0; /* never cuts the expected set */
            ks_sampler *s = make(5, &p);
            char what[64];
            snprintf(what, sizeof what, "min_p %g (top_k %d)", (double)cases[k].min_p, p.top_k);
            expect_survivors(s, l, 5, order, cases[k].n, what);
            ks_sampler_destroy(s);
        }
    }
}

Test(sample, test_sample_chain_matches_reference_on_random_logits) {
    enum { N_VOCAB = 4000, HISTORY = 40 };
    static float l[N_VOCAB];
    int32_t history[HISTORY];
    ks_rng rng;
    ks_rng_seed(&rng, 11);
    const int32_t top_ks[] = {0, 1, 7, 40, 1000};
    const float top_ps[] = {1.0f, 0.95f, 0.5f, 0.05f};
    const float min_ps[] = {0.0f, 0.05f, 0.3f};
    for (size_t a = 0; a < KS_ARRAY_LEN(top_ks); a++)
        for (size_t b = 0; b < KS_ARRAY_LEN(top_ps); b++)
            for (size_t c = 0; c < KS_ARRAY_LEN(min_ps); c++) {
                ks_sampler_params p = params_plain();
                p.top_k = top_ks[a];
                p.top_p = top_ps[b];
                p.min_p = min_ps[c];
                p.temperature = (a + b + c) % 3 == 0 ? 0.5f : 1.0f;
                p.repeat_penalty = 1.3f;
                p.frequency_penalty = 0.4f;
                p.presence_penalty = 0.6f;
                p.repeat_last_n = 16;
                ks_sampler *s = make(N_VOCAB, &p);
                /* flat-ish logits make top-p need a long nucleus; steep ones a short one */
                random_logits(&rng, l, N_VOCAB, (a + c) % 2 ? 3.0f : 12.0f);
                for (int32_t j = 0; j < HISTORY; j++) {
                    /* favour high logits so penalties reorder the head */
                    history[j] = (int32_t)(ks_rng_next_u64(&rng) % 64) * (N_VOCAB / 64);
                    l[history[j]] = 10.0f + (float)j * 0.1f;
                    ks_sampler_accept(s, history[j]);
                }
                check_against_ref(s, l, N_VOCAB, &p, history, HISTORY);
                ks_sampler_destroy(s);
            }
}

Test(sample, test_sample_top_p_long_nucleus_on_flat_tail) {
    /* One token on top and 100000 tokens 17 nats below, where top-p's first logit floor
     * does not hold the nucleus: the wider floors and the full sort must take over. */
    enum { N_VOCAB = 100001 };
    static float l[N_VOCAB];
    for (int32_t i = 0; i < N_VOCAB; i++)
        l[i] = -17.0f;
    l[777] = 0.0f;
    ks_sampler_params p = params_plain();
    p.top_p = 0.9999f;
    ks_sampler *s = make(N_VOCAB, &p);
    check_against_ref(s, l, N_VOCAB, &p, NULL, 0);
    /* equal logits: the nucleus is exactly the lowest half of the ids */
    for (int32_t i = 0; i < N_VOCAB; i++)
        l[i] = i < 5000 ? 1.0f : -INFINITY;
    ks_sampler_destroy(s);
    p.top_p = 0.5f;
    s = make(N_VOCAB, &p);
    ks_token_prob out[2];
    cr_assert_eq(ks_sampler_candidates(s, l, out, 2), 2500);
    cr_assert_eq(out[0].token, 0);
    cr_assert_eq(out[1].token, 1);
    check_against_ref(s, l, N_VOCAB, &p, NULL, 0);
    ks_sampler_destroy(s);
}

/* ---- penalties --------------------------------------------------------------------------- */

Test(sample, test_sample_penalties_change_logits_exactly) {
    const float l[8] = {2.0f, -1.5f, 0.0f, 3.0f, -0.25f, 1.0f, 0.5f, -4.0f};
    ks_sampler_params p = params_plain();
    p.repeat_penalty = 1.25f;
    p.frequency_penalty = 0.3f;
    p.presence_penalty = 0.7f;
    p.repeat_last_n = 6;
    ks_sampler *s = make(8, &p);
    /* 9 accepted; the window holds the last 6: 3 3 1 2 3 7 (token 0 has left it) */
    const int32_t accepted[9] = {0, 0, 5, 3, 3, 1, 2, 3, 7};
    for (int i = 0; i < 9; i++)
        cr_assert_eq(ks_sampler_accept(s, accepted[i]), KS_OK);
    float want[8];
    memcpy(want, l, sizeof want);
    want[3] = 3.0f / 1.25f - (3.0f * 0.3f + 0.7f);    /* positive: divided, count 3 */
    want[1] = -1.5f * 1.25f - (1.0f * 0.3f + 0.7f);   /* negative: multiplied */
    want[2] = 0.0f - (1.0f * 0.3f + 0.7f);            /* zero: scaling leaves it 0 */
    want[7] = -4.0f * 1.25f - (1.0f * 0.3f + 0.7f);
    ks_token_prob out[8];
    cr_assert_eq(ks_sampler_candidates(s, l, out, 8), 8);
    for (int i = 0; i < 8; i++) {
        const int32_t t = out[i].token;
        cr_assert(out[i].logit == want[t], "token %d: logit %.9g, want %.9g", t,
                  (double)out[i].logit, (double)want[t]);
    }
    /* calling again must not penalize twice (the counts are restored) */
    cr_assert_eq(ks_sampler_candidates(s, l, out, 8), 8);
    for (int i = 0; i < 8; i++)
        cr_assert(out[i].logit == want[out[i].token], "second call changed token %d", out[i].token);
    /* reset empties the window */
    ks_sampler_reset(s);
    cr_assert_eq(ks_sampler_candidates(s, l, out, 8), 8);
    for (int i = 0; i < 8; i++)
        cr_assert(out[i].logit == l[out[i].token], "after reset token %d still penalized",
                  out[i].token);
    ks_sampler_destroy(s);
}

Test(sample, test_sample_penalties_flip_greedy_choice) {
    const float l[3] = {2.0f, 1.9f, -1.0f};
    ks_sampler_params p = params_plain();
    p.temperature = 0.0f;
    p.repeat_penalty = 1.1f; /* 2.0 / 1.1 = 1.82 < 1.9 */
    ks_sampler *s = make(3, &p);
    cr_assert_eq(ks_sampler_sample(s, l, NULL), 0);
    ks_sampler_accept(s, 0);
    cr_assert_eq(ks_sampler_sample(s, l, NULL), 1);
    ks_sampler_destroy(s);

    p.repeat_penalty = 1.0f;
    p.presence_penalty = -3.5f; /* negative presence favours seen tokens: -1 + 3.5 = 2.5 */
    s = make(3, &p);
    ks_sampler_accept(s, 2);
    cr_assert_eq(ks_sampler_sample(s, l, NULL), 2);
    ks_sampler_destroy(s);

    p.presence_penalty = 0.0f;
    p.repeat_last_n = 0; /* window off: nothing is penalized */
    p.frequency_penalty = 100.0f;
    s = make(3, &p);
    ks_sampler_accept(s, 0);
    cr_assert_eq(ks_sampler_sample(s, l, NULL), 0);
    ks_sampler_destroy(s);
}

Test(sample, test_sample_penalty_window_slides) {
    enum { N_VOCAB = 16, STEPS = 400 };
    float l[N_VOCAB];
    int32_t history[STEPS];
    ks_rng rng;
    ks_rng_seed(&rng, 3);
    ks_sampler_params p = params_plain();
    p.repeat_penalty = 1.5f;
    p.frequency_penalty = 0.1f;
    p.presence_penalty = 0.2f;
    p.repeat_last_n = 5;
    ks_sampler *s = make(N_VOCAB, &p);
    for (int32_t i = 0; i < STEPS; i++) {
        history[i] = (int32_t)(ks_rng_next_u64(&rng) % N_VOCAB);
        ks_sampler_accept(s, history[i]);
        if (i % 37 == 0) {
            random_logits(&rng, l, N_VOCAB, 2.0f);
            check_against_ref(s, l, N_VOCAB, &p, history, i + 1);
        }
    }
    ks_sampler_destroy(s);
}

/* ---- log-probabilities ------------------------------------------------------------------- */

Test(sample, test_sample_logprobs_from_unmodified_logits) {
    enum { N_VOCAB = 20 };
    float l[N_VOCAB];
    ks_rng rng;
    ks_rng_seed(&rng, 21);
    random_logits(&rng, l, N_VOCAB, 5.0f);
    l[4] = l[9]; /* a tie: 4 ranks before 9 */
    double z = 0.0;
    for (int i = 0; i < N_VOCAB; i++)
        z += exp(l[i]);
    ks_sampler_params p = ks_sampler_params_default(); /* truncation, temperature on */
    p.repeat_penalty = 2.0f;
    p.presence_penalty = 1.0f;
    p.n_top_logprobs = KS_SAMPLER_MAX_TOP_LOGPROBS; /* all 20 */
    ks_sampler *s = make(N_VOCAB, &p);
    for (int i = 0; i < N_VOCAB; i++)
        ks_sampler_accept(s, i); /* every logit is penalized for the draw */
    for (int draw = 0; draw < 50; draw++) {
        ks_token_logprobs lp;
        const int32_t t = ks_sampler_sample(s, l, &lp);
        cr_assert_eq(lp.chosen.token, t);
        const double want = l[t] - log(z);
        cr_assert(fabs(lp.chosen.logprob - want) < 1e-5, "token %d: logprob %.7g, want %.7g", t,
                  (double)lp.chosen.logprob, want);
        cr_assert_eq(lp.n_top, N_VOCAB);
        double sum = 0.0;
        for (int i = 0; i < lp.n_top; i++) {
            sum += exp(lp.top[i].logprob);
            cr_assert(fabs(lp.top[i].logprob - (l[lp.top[i].token] - log(z))) < 1e-5);
            if (i > 0) {
                cr_assert(lp.top[i - 1].logprob >= lp.top[i].logprob, "top %d out of order", i);
                if (lp.top[i - 1].logprob == lp.top[i].logprob)
                    cr_assert_lt(lp.top[i - 1].token, lp.top[i].token, "tie out of id order");
            }
        }
        cr_assert(fabs(sum - 1.0) < 1e-5, "all 20 top probabilities sum to %.9g", sum);
    }
    ks_sampler_destroy(s);
}

Test(sample, test_sample_logprobs_top_n_of_large_vocab) {
    enum { N_VOCAB = 5000, N_TOP = 7 };
    static float l[N_VOCAB];
    ks_rng rng;
    ks_rng_seed(&rng, 8);
    random_logits(&rng, l, N_VOCAB, 8.0f);
    ks_sampler_params p = ks_sampler_params_default();
    p.temperature = 0.0f;
    p.n_top_logprobs = N_TOP;
    ks_sampler *s = make(N_VOCAB, &p);
    ks_token_logprobs lp;
    const int32_t t = ks_sampler_sample(s, l, &lp);
    cr_assert_eq(lp.n_top, N_TOP);
    cr_assert_eq(lp.top[0].token, t, "greedy token %d is not the top logprob %d", t, lp.top[0].token);
    cr_assert(lp.top[0].logprob == lp.chosen.logprob);
    /* each of the 7 beats every token left out */
    for (int32_t i = 0; i < N_VOCAB; i++) {
        bool in = false;
        for (int j = 0; j < N_TOP; j++)
            in |= lp.top[j].token == i;
        if (!in)
            cr_assert_lt(l[i], l[lp.top[N_TOP - 1].token], "token %d (%.6g) left out", i,
                         (double)l[i]);
    }
    ks_sampler_destroy(s);
    /* fewer tokens than alternatives asked for */
    const float small[3] = {0.0f, 1.0f, 2.0f};
    p.n_top_logprobs = 20;
    s = make(3, &p);
    ks_sampler_sample(s, small, &lp);
    cr_assert_eq(lp.n_top, 3);
    cr_assert_eq(lp.top[0].token, 2);
    cr_assert_eq(lp.top[2].token, 0);
    ks_sampler_destroy(s);
}

/* ---- parameters -------------------------------------------------------------------------- */

static void expect_invalid(ks_sampler_params p, const char *field) {
    ks_err err;
    ks_err_clear(&err);
    ks_sampler *s = (ks_sampler *)(uintptr_t)1; /* must stay untouched */
    ks_status st = ks_sampler_create(&s, 100, &p, &err);
    cr_assert_eq(st, KS_ERR_INVALID, "%s: status %s", field, ks_status_str(st));
    cr_assert(strstr(err.msg, field), "message '%s' does not name %s", err.msg, field);
    cr_assert_eq(s, (ks_sampler *)(uintptr_t)1, "%s: out-parameter written on failure", field);
}

Test(sample, test_sample_rejects_bad_params) {
    const ks_sampler_params d = ks_sampler_params_default();
    cr_assert_eq(d.temperature, 0.8f);
    cr_assert_eq(d.top_k, 40);
    cr_assert_eq(d.top_p, 0.95f);
    cr_assert_eq(d.min_p, 0.05f);
    cr_assert_eq(d.repeat_penalty, 1.0f);
    cr_assert_eq(d.repeat_last_n, 64);
    cr_assert_eq(ks_sampler_params_validate(&d, NULL), KS_OK);
    ks_sampler_params p;
    p = d, p.temperature = -0.1f, expect_invalid(p, "temperature");
    p = d, p.temperature = NAN, expect_invalid(p, "temperature");
    p = d, p.temperature = INFINITY, expect_invalid(p, "temperature");
    p = d, p.top_p = 0.0f, expect_invalid(p, "top_p");
    p = d, p.top_p = 1.01f, expect_invalid(p, "top_p");
    p = d, p.top_p = NAN, expect_invalid(p, "top_p");
    p = d, p.min_p = -0.01f, expect_invalid(p, "min_p");
    p = d, p.min_p = 1.5f, expect_invalid(p, "min_p");
    p = d, p.repeat_penalty = 0.0f, expect_invalid(p, "repeat_penalty");
    p = d, p.repeat_penalty = NAN, expect_invalid(p, "repeat_penalty");
    p = d, p.repeat_last_n = -1, expect_invalid(p, "repeat_last_n");
    p = d, p.repeat_last_n = KS_SAMPLER_MAX_LAST_N + 1, expect_invalid(p, "repeat_last_n");
    p = d, p.presence_penalty = INFINITY, expect_invalid(p, "presence_penalty");
    p = d, p.frequency_penalty = NAN, expect_invalid(p, "frequency_penalty");
    p = d, p.n_top_logprobs = 21, expect_invalid(p, "logprobs");
    p = d, p.n_top_logprobs = -1, expect_invalid(p, "logprobs");

    ks_err err;
    ks_err_clear(&err);
    ks_sampler *s = NULL;
    cr_assert_eq(ks_sampler_create(&s, 0, &d, &err), KS_ERR_INVALID);
    cr_assert_null(s);
    s = make(10, &d);
    cr_assert_eq(ks_sampler_accept(s, 10), KS_ERR_INVALID);
    cr_assert_eq(ks_sampler_accept(s, -1), KS_ERR_INVALID);
    cr_assert_eq(ks_sampler_accept(s, 9), KS_OK);
    ks_sampler_destroy(s);
    ks_sampler_destroy(NULL);
}

/* ---- stop matcher ------------------------------------------------------------------------ */

typedef struct ref_stop {
    bool matched;
    int32_t which;
    uint64_t match_pos, n_fed;
    size_t n_held;
} ref_stop;

/* Brute force over text[0, len): the first byte at which any stop string ends (longest on
 * a tie), else the longest suffix that is a proper prefix of a stop string. */
static ref_stop ref_stop_at(const char *text, size_t len, const char *const *stops, size_t n) {
    ref_stop r = {false, -1, 0, len, 0};
    for (size_t end = 1; end <= len; end++) {
        size_t best = 0;
        for (size_t i = 0; i < n; i++) {
            const size_t sl = strlen(stops[i]);
            if (sl <= end && memcmp(text + end - sl, stops[i], sl) == 0 && sl > best) {
                best = sl;
                r.which = (int32_t)i;
            }
        }
        if (best) {
            r.matched = true;
            r.match_pos = end - best;
            r.n_fed = end;
            return r;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const size_t sl = strlen(stops[i]);
        for (size_t k = 1; k < sl && k <= len; k++)
            if (memcmp(text + len - k, stops[i], k) == 0 && k > r.n_held)
                r.n_held = k;
    }
    return r;
}

static ks_stop_matcher *make_stop(const char *const *stops, size_t n) {
    ks_err err;
    ks_err_clear(&err);
    ks_stop_matcher *m = NULL;
    ks_status st = ks_stop_matcher_create(&m, stops, n, &err);
    cr_assert_eq(st, KS_OK, "stop create: %s", err.msg);
    return m;
}

/* Feeds text in the pieces that cuts[0, n_cuts) (increasing offsets) make, checking
 * after each piece against the brute force, that safe_end never goes back, and that the
 * streamed text plus what is finally flushed is the text cut at the match. */
static void feed_split(ks_stop_matcher *m, const char *text, const size_t *cuts, size_t n_cuts,
                       const char *const *stops, size_t n_stops) {
    const size_t len = strlen(text);
    ks_stop_matcher_reset(m);
    uint64_t streamed = 0;
    ks_stop_result r = {0};
    size_t from = 0;
    for (size_t k = 0; k <= n_cuts; k++) {
        const size_t to = k < n_cuts ? cuts[k] : len;
        ks_stop_matcher_feed(m, text + from, to - from, &r);
        const ref_stop want = ref_stop_at(text, to, stops, n_stops);
        cr_assert_eq(r.matched, want.matched, "'%s' fed to %zu: matched %d, want %d", text, to,
                     r.matched, want.matched);
        cr_assert_eq(r.which, want.which, "'%s' fed to %zu: which %d, want %d", text, to, r.which,
                     want.which);
        cr_assert_eq(r.n_fed, want.n_fed, "'%s' fed to %zu: n_fed %llu, want %llu", text, to,
                     (unsigned long long)r.n_fed, (unsigned long long)want.n_fed);
        if (want.matched) {
            cr_assert_eq(r.match_pos, want.match_pos, "'%s': match at %llu, want %llu", text,
                         (unsigned long long)r.match_pos, (unsigned long long)want.match_pos);
            cr_assert_eq(r.safe_end, r.match_pos);
            cr_assert_eq(r.n_held, 0);
        } else {
            cr_assert_eq(r.n_held, want.n_held, "'%s' fed to %zu: held %zu, want %zu", text, to,
                         r.n_held, want.n_held);
            cr_assert_eq(r.safe_end, to - want.n_held);
        }
        cr_assert_geq(r.safe_end, streamed, "'%s': safe_end went back from %llu to %llu", text,
                      (unsigned long long)streamed, (unsigned long long)r.safe_end);
        streamed = r.safe_end;
        from = to;
    }
    const ref_stop fin = ref_stop_at(text, len, stops, n_stops);
    cr_assert_eq(streamed, fin.matched ? fin.match_pos : len - fin.n_held);
}

/* Every split into two and three pieces, and byte by byte. */
static void check_every_split(const char *text, const char *const *stops, size_t n_stops) {
    ks_stop_matcher *m = make_stop(stops, n_stops);
    const size_t len = strlen(text);
    size_t cuts[256];
    cr_assert(len < KS_ARRAY_LEN(cuts));
    for (size_t i = 0; i < len; i++)
        cuts[i] = i + 1;
    feed_split(m, text, cuts, len, stops, n_stops);
    feed_split(m, text, NULL, 0, stops, n_stops);
    for (size_t i = 0; i <= len; i++) {
        feed_split(m, text, (size_t[]){i}, 1, stops, n_stops);
        for (size_t j = i; j <= len; j++)
            feed_split(m, text, (size_t[]){i, j}, 2, stops, n_stops);
    }
    ks_stop_matcher_destroy(m);
}

Test(sample, test_sample_stop_single_string_every_split) {
    const char *stops[] = {"</s>"};
    check_every_split("Hello world</s> and more", stops, 1);
    check_every_split("</s>", stops, 1);
    check_every_split("no stop here <", stops, 1);
    check_every_split("<</<//s></s>", stops, 1);
}

Test(sample, test_sample_stop_holds_back_partial_match) {
    const char *stops[] = {"<|im_end|>"};
    ks_stop_matcher *m = make_stop(stops, 1);
    ks_stop_result r;
    ks_stop_matcher_feed(m, "answer <|im", 11, &r);
    cr_assert(!r.matched);
    cr_assert_eq(r.n_held, 4, "held %zu, want 4 ('<|im')", r.n_held);
    cr_assert_eq(r.safe_end, 7);
    ks_stop_matcher_feed(m, "_e", 2, &r);
    cr_assert_eq(r.n_held, 6);
    ks_stop_matcher_feed(m, "x", 1, &r); /* not a stop after all: all of it is released */
    cr_assert(!r.matched);
    cr_assert_eq(r.n_held, 0);
    cr_assert_eq(r.safe_end, 14);
    ks_stop_matcher_feed(m, "<|im_end|>tail", 14, &r);
    cr_assert(r.matched);
    cr_assert_eq(r.which, 0);
    cr_assert_eq(r.match_pos, 14);
    cr_assert_eq(r.n_fed, 24, "consumed %llu, want up to the match's end", (unsigned long long)r.n_fed);
    ks_stop_matcher_feed(m, "more", 4, &r); /* ignored after a match */
    cr_assert(r.matched);
    cr_assert_eq(r.n_fed, 24);
    ks_stop_matcher_destroy(m);
}

Test(sample, test_sample_stop_multiple_and_overlapping) {
    const char *chat[] = {"<|im_end|>", "<|endoftext|>", "\n\nUser:"};
    check_every_split("Sure.\n\nUser: hi<|im_end|>", chat, 3);
    check_every_split("x<|endoftext|><|im_end|>", chat, 3);
    check_every_split("<|im_<|end<|endoftex<|endoftext|", chat, 3);
    /* self-overlapping prefixes: KMP must fall back, not restart */
    const char *aab[] = {"aab"};
    check_every_split("aaaab", aab, 1);
    const char *abab[] = {"ababc"};
    check_every_split("abababababc!", abab, 1);
    /* one string inside another: the one that completes first wins */
    const char *nested[] = {"abcd", "bc"};
    check_every_split("xabcd", nested, 2);
    /* both complete on the same byte: the longer (earlier start) wins */
    const char *suffix[] = {"bc", "abc"};
    check_every_split("zzabc", suffix, 2);
    /* strings sharing a prefix */
    const char *shared[] = {"STOP_A", "STOP_B", "ST"};
    check_every_split("xSTOSTOP_B", shared, 3);
}

Test(sample, test_sample_stop_utf8) {
    const char *stops[] = {"世界", "é!"};
    /* 纪 (e7 ba aa) and 界 (e7 95 8c) share a first byte: a partial character is held */
    check_every_split("你好世纪，世界！", stops, 2);
    check_every_split("café!", stops, 2);
    ks_stop_matcher *m = make_stop(stops, 2);
    ks_stop_result r;
    ks_stop_matcher_feed(m, "你好世\xe7", 10, &r);
    cr_assert_eq(r.n_held, 4, "held %zu: '世' and the first byte of the next character", r.n_held);
    cr_assert_eq(r.safe_end, 6, "safe_end %llu is not the boundary after 你好",
                 (unsigned long long)r.safe_end);
    ks_stop_matcher_destroy(m);
}

Test(sample, test_sample_stop_random_texts_against_brute_force) {
    ks_rng rng;
    ks_rng_seed(&rng, 17);
    for (int trial = 0; trial < 400; trial++) {
        char stop_buf[3][6];
        const char *stops[3];
        const size_t n_stops = 1 + ks_rng_next_u64(&rng) % 3;
        for (size_t i = 0; i < n_stops; i++) {
            const size_t sl = 1 + ks_rng_next_u64(&rng) % 5;
            for (size_t k = 0; k < sl; k++)
                stop_buf[i][k] = "ab"[ks_rng_next_u64(&rng) % 2];
            stop_buf[i][sl] = '\0';
            stops[i] = stop_buf[i];
        }
        char text[41];
        const size_t len = ks_rng_next_u64(&rng) % 40;
        for (size_t k = 0; k < len; k++)
            text[k] = "abc"[ks_rng_next_u64(&rng) % 3];
        text[len] = '\0';
        ks_stop_matcher *m = make_stop(stops, n_stops);
        size_t cuts[40], n_cuts = 0;
        for (size_t k = 1; k < len; k++)
            if (ks_rng_next_u64(&rng) % 3 == 0)
                cuts[n_cuts++] = k;
        feed_split(m, text, cuts, n_cuts, stops, n_stops);
        ks_stop_matcher_destroy(m);
    }
}

Test(sample, test_sample_stop_none_and_bad_strings) {
    ks_stop_matcher *m = make_stop(NULL, 0);
    ks_stop_result r;
    ks_stop_matcher_feed(m, "anything", 8, &r);
    cr_assert(!r.matched);
    cr_assert_eq(r.safe_end, 8);
    ks_stop_matcher_destroy(m);
    ks_stop_matcher_destroy(NULL);

    ks_err err;
    ks_err_clear(&err);
    const char *empty[] = {"ok", ""};
    m = NULL;
    cr_assert_eq(ks_stop_matcher_create(&m, empty, 2, &err), KS_ERR_INVALID);
    cr_assert_null(m);
    cr_assert(strstr(err.msg, "string 1"), "message: %s", err.msg);
    static char longer[KS_STOP_MAX_BYTES + 2];
    memset(longer, 'x', KS_STOP_MAX_BYTES + 1);
    const char *too_long[] = {longer};
    cr_assert_eq(ks_stop_matcher_create(&m, too_long, 1, NULL), KS_ERR_INVALID);
    const char *many[KS_STOP_MAX_STRINGS + 1];
    for (size_t i = 0; i < KS_ARRAY_LEN(many); i++)
        many[i] = "x";
    cr_assert_eq(ks_stop_matcher_create(&m, many, KS_ARRAY_LEN(many), NULL), KS_ERR_INVALID);
    cr_assert_eq(ks_stop_matcher_create(&m, many, KS_STOP_MAX_STRINGS, NULL), KS_OK);
    ks_stop_matcher_destroy(m);
}
