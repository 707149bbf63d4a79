/* sampler.c — the sampler chain (order and semantics in sampler.h).
 *
 * Candidates live in one scratch array of n_vocab entries; every stage works on its live
 * prefix [0, n) and shrinks n. A stage that needs order sorts only what it must: top-k
 * selects its k best with a heap, top-p buckets by logit and sorts one bucket, min-p is a
 * plain threshold. Nothing here allocates after create.
 *
 * Divisions, in data-flow order:
 *   ranking and heaps     the one order every stage uses; heap select and heap sort
 *   params                defaults and validation
 *   lifecycle             create, destroy, accept, reset
 *   chain stages          load, penalties, greedy, top-k, top-p, min-p
 *   softmax and draw      weights at the temperature, one uniform draw
 *   log-probabilities     log_softmax of the unmodified logits and its top N
 *   entry points          sample, candidates */
#include "sample/sampler.h"

#include "sample/rng.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>

typedef struct cand {
    int32_t id;
    float logit; /* after penalties, before temperature */
    float p;     /* scratch for top-p's weights, then the draw's weight or probability */
} cand;

struct ks_sampler {
    ks_sampler_params params;
    int32_t n_vocab;
    ks_rng rng;
    cand *cands;         /* (n_vocab) scratch, rebuilt by every sample */
    int32_t *counts;     /* (n_vocab) occurrences of each token in the window */
    int32_t *window;     /* (repeat_last_n) ring of the most recently accepted tokens */
    int32_t window_len;  /* valid slots: [0, window_len) */
    int32_t window_head; /* slot the next accepted token goes to */
};

/* ---- ranking and heaps ------------------------------------------------------------------ */

/* The one candidate order: higher logit first, equal logits by lower id. Logits are
 * sanitized (no NaN) before they get here, so this is a total order and every stage's
 * result is independent of how the array happened to be permuted. */
static bool ranks_before(float logit_a, int32_t id_a, float logit_b, int32_t id_b) {
    return logit_a > logit_b || (logit_a == logit_b && id_a < id_b);
}

static bool better(const cand *a, const cand *b) {
    return ranks_before(a->logit, a->id, b->logit, b->id);
}

static void swap_cand(cand *a, cand *b) {
    cand t = *a;
    *a = *b;
    *b = t;
}

/* Heap over h[0, n) with the *worst* candidate at the root, so that the root is the one
 * to evict when a better candidate comes along. */
static void sift_down(cand *h, int32_t n, int32_t i) {
    for (;;) {
        int32_t worst = i;
        int32_t l = 2 * i + 1, r = l + 1;
        if (l < n && better(&h[worst], &h[l]))
            worst = l;
        if (r < n && better(&h[worst], &h[r]))
            worst = r;
        if (worst == i)
            return;
        swap_cand(&h[i], &h[worst]);
        i = worst;
    }
}

/* Moves the k best of a[0, n) to a[0, k), sorted best first (0 < k <= n): a heap of the
 * k best so far, then heap sort of it. O(n log k), in place, no recursion. */
static void select_best(cand *a, int32_t n, int32_t k) {
    for (int32_t i = k / 2 - 1; i >= 0; i--)
        sift_down(a, k, i);
    for (int32_t i = k; i < n; i++) {
        if (better(&a[i], &a[0])) {
            swap_cand(&a[0], &a[i]);
            sift_down(a, k, 0);
        }
    }
    for (int32_t end = k - 1; end > 0; end--) {
        swap_cand(&a[0], &a[end]); /* the worst left goes to the back */
        sift_down(a, end, 0);
    }
}

/* ---- params ------------------------------------------------------------------------------ */

ks_sampler_params ks_sampler_params_default(void) {
    ks_sampler_params p = {
        .temperature = 0.8f,
        .top_k = 40,
        .top_p = 0.95f,
        .min_p = 0.05f,
        .repeat_penalty = 1.0f,
        .repeat_last_n = 64,
        .presence_penalty = 0.0f,
        .frequency_penalty = 0.0f,
        .seed = 0,
        .n_top_logprobs = 0,
    };
    return p;
}

/* Written so that NaN fails every range check. */
static bool is_finite_f(float x) { return x >= -FLT_MAX && x <= FLT_MAX; }

ks_status ks_sampler_params_validate(const ks_sampler_params *p, ks_err *err) {
    if (!p)
        return KS_ERRF(err, KS_ERR_INVALID, "sampler: no parameters given");
    if (!(p->temperature >= 0.0f && p->temperature <= FLT_MAX))
        return KS_ERRF(err, KS_ERR_INVALID, "temperature must be finite and >= 0, got %g",
                       (double)p->temperature);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return KS_ERRF(err, KS_ERR_INVALID, "top_p must be in (0, 1], got %g", (double)p->top_p);
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f))
        return KS_ERRF(err, KS_ERR_INVALID, "min_p must be in [0, 1], got %g", (double)p->min_p);
    if (!(p->repeat_penalty > 0.0f && p->repeat_penalty <= FLT_MAX))
        return KS_ERRF(err, KS_ERR_INVALID, "repeat_penalty must be finite and > 0, got %g",
                       (double)p->repeat_penalty);
    if (p->repeat_last_n < 0 || p->repeat_last_n > KS_SAMPLER_MAX_LAST_N)
        return KS_ERRF(err, KS_ERR_INVALID, "repeat_last_n must be in [0, %d], got %d",
                       KS_SAMPLER_MAX_LAST_N, (int)p->repeat_last_n);
    if (!is_finite_f(p->presence_penalty))
        return KS_ERRF(err, KS_ERR_INVALID, "presence_penalty must be finite, got %g",
                       (double)p->presence_penalty);
    if (!is_finite_f(p->frequency_penalty))
        return KS_ERRF(err, KS_ERR_INVALID, "frequency_penalty must be finite, got %g",
                       (double)p->frequency_penalty);
    if (p->n_top_logprobs < 0 || p->n_top_logprobs > KS_SAMPLER_MAX_TOP_LOGPROBS)
        return KS_ERRF(err, KS_ERR_INVALID, "top logprobs must be in [0, %d], got %d",
                       KS_SAMPLER_MAX_TOP_LOGPROBS, (int)p->n_top_logprobs);
    return KS_OK;
}

/* ---- lifecycle ------------------------------------------------------------------------- */

ks_status ks_sampler_create(ks_sampler **out, int32_t n_vocab, const ks_sampler_params *params,
                            ks_err *err) {
    if (n_vocab <= 0 || (size_t)n_vocab > SIZE_MAX / sizeof(cand))
        return KS_ERRF(err, KS_ERR_INVALID, "sampler: bad vocabulary size %d", (int)n_vocab);
    ks_status st = ks_sampler_params_validate(params, err);
    if (st != KS_OK)
        return st;

    ks_sampler *s = calloc(1, sizeof *s);
    if (!s)
        goto fail;
    s->params = *params;
    s->n_vocab = n_vocab;
    s->cands = malloc((size_t)n_vocab * sizeof *s->cands);
    s->counts = calloc((size_t)n_vocab, sizeof *s->counts);
    s->window = malloc((size_t)KS_MAX(params->repeat_last_n, 1) * sizeof *s->window);
    if (!s->cands || !s->counts || !s->window)
        goto fail;
    ks_rng_seed(&s->rng, params->seed);
    *out = s;
    return KS_OK;

fail:
    ks_sampler_destroy(s);
    return KS_ERRF(err, KS_ERR_NOMEM, "sampler: out of memory for a %d-token vocabulary",
                   (int)n_vocab);
}

void ks_sampler_destroy(ks_sampler *s) {
    if (!s)
        return;
    free(s->cands);
    free(s->counts);
    free(s->window);
    free(s);
}

ks_status ks_sampler_accept(ks_sampler *s, int32_t token) {
    if (token < 0 || token >= s->n_vocab)
        return KS_ERR_INVALID;
    const int32_t cap = s->params.repeat_last_n;
    if (cap == 0)
        return KS_OK;
    if (s->window_len == cap)
        s->counts[s->window[s->window_head]]--; /* the oldest token leaves the window */
    else
        s->window_len++;
    s->window[s->window_head] = token;
    s->counts[token]++;
    s->window_head = s->window_head + 1 == cap ? 0 : s->window_head + 1;
    return KS_OK;
}

void ks_sampler_reset(ks_sampler *s) {
    for (int32_t j = 0; j < s->window_len; j++)
        s->counts[s->window[j]] = 0; /* only windowed tokens have counts */
    s->window_len = 0;
    s->window_head = 0;
    ks_rng_seed(&s->rng, s->params.seed);
}

/* ---- chain stages ---------------------------------------------------------------------- */

/* NaN (a broken forward pass) can never be chosen; +inf becomes the largest finite
 * float so that the softmax's `logit - max` stays a number. */
static float sanitize(float x) {
    if (x <= FLT_MAX)
        return x; /* finite or -inf */
    return x > 0.0f ? FLT_MAX : -INFINITY;
}

/* Copies logits (n_vocab) into the candidates in id order; returns the largest. */
static float load(ks_sampler *s, const float *logits) {
    float mx = -INFINITY;
    for (int32_t i = 0; i < s->n_vocab; i++) {
        const float x = sanitize(logits[i]);
        s->cands[i].id = i;
        s->cands[i].logit = x;
        if (x > mx)
            mx = x;
    }
    return mx;
}

/* Repetition, frequency and presence penalties for every distinct token in the window,
 * as llama.cpp applies them:
 *   logit = logit <= 0 ? logit * repeat_penalty : logit / repeat_penalty
 *   logit -= count * frequency_penalty + presence_penalty
 * Runs right after load, while cands[t] is token t. Each distinct token is penalized
 * once: its count is negated when done and restored by the second pass. */
static void apply_penalties(ks_sampler *s) {
    const ks_sampler_params *p = &s->params;
    if (s->window_len == 0 ||
        (p->repeat_penalty == 1.0f && p->frequency_penalty == 0.0f && p->presence_penalty == 0.0f))
        return;
    for (int32_t j = 0; j < s->window_len; j++) {
        const int32_t t = s->window[j];
        const int32_t count = s->counts[t];
        if (count <= 0)
            continue;
        float *l = &s->cands[t].logit;
        if (*l <= 0.0f)
            *l *= p->repeat_penalty;
        else
            *l /= p->repeat_penalty;
        *l -= (float)count * p->frequency_penalty + p->presence_penalty;
        s->counts[t] = -count;
    }
    for (int32_t j = 0; j < s->window_len; j++) {
        const int32_t t = s->window[j];
        if (s->counts[t] < 0)
            s->counts[t] = -s->counts[t];
    }
}

static float max_logit(const cand *c, int32_t n) {
    float mx = -INFINITY;
    for (int32_t i = 0; i < n; i++)
        if (c[i].logit > mx)
            mx = c[i].logit;
    return mx;
}

/* Index of the best candidate in c[0, n) (in id order, so strict > keeps the lowest id
 * among equals). */
static int32_t argmax(const cand *c, int32_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (c[i].logit > c[best].logit)
            best = i;
    return best;
}

/* Top-p over unsorted candidates buckets them by distance below the best logit, 1/8 nat
 * a bucket, instead of sorting: buckets wholly above the one where the cumulative mass
 * crosses top_p are in the nucleus whatever their order, so only that one bucket is
 * sorted (a few hundred tokens of a 150K vocabulary even for a flat distribution, where
 * a full sort costs ~20 ms a token). The last bucket takes everything 32 nats or more
 * below the best (weight < e^-32 ~ 1e-14 each). Bucketing is monotone in the logit, so
 * the result is exactly the sorted walk's. */
#define TOP_P_BUCKETS_PER_NAT 8
#define TOP_P_BUCKETS 256

static int32_t top_p_bucket(float logit, float mx) {
    const float d = (mx - logit) * TOP_P_BUCKETS_PER_NAT; /* >= 0; +inf for -inf logits */
    return d < TOP_P_BUCKETS - 1 ? (int32_t)d : TOP_P_BUCKETS - 1;
}

/* Moves the candidates of c[0, n) whose bucket is below `below` to the front, keeping
 * none of their order; returns how many. */
static int32_t partition_buckets(cand *c, int32_t n, float mx, int32_t below) {
    int32_t m = 0;
    for (int32_t i = 0; i < n; i++)
        if (top_p_bucket(c[i].logit, mx) < below)
            swap_cand(&c[i], &c[m++]);
    return m;
}

/* Keeps the smallest best-first prefix of c[0, n) whose probability (softmax at
 * temperature 1 over c[0, n)) reaches top_p. Sorted input stays sorted; unsorted input
 * comes back unsorted (the nucleus, then the boundary bucket's part of it in order). */
static int32_t top_p_stage(const ks_sampler *s, int32_t n, bool sorted) {
    cand *c = s->cands;
    double cum = 0.0;
    if (sorted) {
        const float mx = c[0].logit;
        double z = 0.0;
        for (int32_t i = 0; i < n; i++)
            z += c[i].p = expf(c[i].logit - mx);
        const double need = (double)s->params.top_p * z;
        for (int32_t i = 0; i < n; i++) {
            cum += c[i].p;
            if (cum >= need)
                return i + 1;
        }
        return n; /* not reached: cum ends at z, and need <= z */
    }

    const float mx = max_logit(c, n);
    double mass[TOP_P_BUCKETS] = {0};
    double z = 0.0;
    for (int32_t i = 0; i < n; i++) {
        c[i].p = expf(c[i].logit - mx);
        z += c[i].p;
        mass[top_p_bucket(c[i].logit, mx)] += c[i].p;
    }
    const double need = (double)s->params.top_p * z;
    int32_t b = 0; /* the bucket where the cumulative mass reaches need */
    while (b < TOP_P_BUCKETS - 1 && cum + mass[b] < need)
        cum += mass[b++];
    const int32_t above = partition_buckets(c, n, mx, b);
    const int32_t in_b = partition_buckets(c + above, n - above, mx, b + 1);
    select_best(c + above, in_b, in_b);
    for (int32_t i = above; i < above + in_b; i++) {
        cum += c[i].p;
        if (cum >= need)
            return i + 1;
    }
    return above + in_b;
}

/* Keeps candidates with p >= min_p * p_max, i.e. logit >= max + log(min_p). The best
 * candidate always stays. */
static int32_t min_p_stage(const ks_sampler *s, int32_t n, bool sorted) {
    cand *c = s->cands;
    const float mx = sorted ? c[0].logit : max_logit(c, n);
    const float floor_logit = mx + logf(s->params.min_p);
    if (sorted) {
        int32_t i = 1;
        while (i < n && c[i].logit >= floor_logit)
            i++;
        return i;
    }
    int32_t m = 0;
    for (int32_t i = 0; i < n; i++)
        if (c[i].logit >= floor_logit)
            c[m++] = c[i];
    return m;
}

/* Everything before the draw: leaves the survivors in cands[0, n) and returns n, or 0
 * when no logit is finite. With temperature 0 the one survivor is the argmax. */
static int32_t run_chain(ks_sampler *s, const float *logits) {
    const ks_sampler_params *p = &s->params;
    cand *c = s->cands;
    if (load(s, logits) == -INFINITY)
        return 0;
    apply_penalties(s);

    if (p->temperature == 0.0f) {
        const int32_t best = argmax(c, s->n_vocab);
        if (c[best].logit == -INFINITY)
            return 0;
        swap_cand(&c[0], &c[best]);
        return 1;
    }

    int32_t n = s->n_vocab;
    bool sorted = false;
    if (p->top_k > 0 && p->top_k < n) {
        select_best(c, n, p->top_k);
        n = p->top_k;
        sorted = true;
    }
    if (p->top_p < 1.0f && n > 1)
        n = top_p_stage(s, n, sorted);
    if (p->min_p > 0.0f && n > 1)
        n = min_p_stage(s, n, sorted);
    return n;
}

/* ---- softmax and draw ------------------------------------------------------------------ */

/* Sets c[i].p = exp((logit_i - max) / temperature) over c[0, n) and returns their sum
 * (>= 1: the best candidate weighs 1), or 0 when no logit is finite (penalties can push
 * a huge negative logit to -inf). */
static double weigh(cand *c, int32_t n, float temperature) {
    const float mx = max_logit(c, n);
    if (mx == -INFINITY)
        return 0.0;
    double sum = 0.0;
    for (int32_t i = 0; i < n; i++) {
        c[i].p = expf((c[i].logit - mx) / temperature);
        sum += c[i].p;
    }
    return sum;
}

/* One uniform draw over the weights of c[0, n). Exactly one RNG step per call. */
static int32_t draw(ks_sampler *s, int32_t n) {
    cand *c = s->cands;
    const double sum = weigh(c, n, s->params.temperature);
    if (sum == 0.0)
        return -1;
    const double target = ks_rng_uniform(&s->rng) * sum;
    double cum = 0.0;
    int32_t last = -1;
    for (int32_t i = 0; i < n; i++) {
        if (c[i].p > 0.0f) {
            cum += c[i].p;
            last = i;
            if (target < cum)
                return c[i].id;
        }
    }
    return c[last].id; /* target within rounding of sum */
}

/* ---- log-probabilities ------------------------------------------------------------------- */

/* log_softmax over all of the caller's logits, untouched by the chain; the chosen
 * token's value and the n_top best, ranked like candidates. */
static void fill_logprobs(const ks_sampler *s, const float *logits, int32_t chosen,
                          ks_token_logprobs *lp) {
    const int32_t n_vocab = s->n_vocab;
    const int32_t n_top = KS_MIN(s->params.n_top_logprobs, n_vocab);
    lp->chosen.token = chosen;
    lp->chosen.logprob = -INFINITY;
    lp->n_top = 0;
    if (chosen < 0)
        return; /* no finite logit: nothing to normalize */

    /* One pass for the maximum and the top n_top (by insertion into lp->top, logits
     * first, logprobs at the end); ids arrive in increasing order and only a strictly
     * better entry moves ahead, so equal logits stay in id order. A second pass for the
     * normalizer. */
    ks_token_logprob *top = lp->top;
    int32_t filled = 0;
    float mx = -INFINITY;
    for (int32_t i = 0; i < n_vocab; i++) {
        const float x = sanitize(logits[i]);
        if (x > mx)
            mx = x;
        if (n_top == 0 ||
            (filled == n_top && !ranks_before(x, i, top[n_top - 1].logprob, top[n_top - 1].token)))
            continue;
        int32_t pos = filled < n_top ? filled++ : n_top - 1;
        while (pos > 0 && ranks_before(x, i, top[pos - 1].logprob, top[pos - 1].token)) {
            top[pos] = top[pos - 1];
            pos--;
        }
        top[pos].token = i;
        top[pos].logprob = x;
    }
    double z = 0.0;
    for (int32_t i = 0; i < n_vocab; i++)
        z += expf(sanitize(logits[i]) - mx);
    const double lse = (double)mx + log(z);
    lp->chosen.logprob = (float)((double)sanitize(logits[chosen]) - lse);
    for (int32_t j = 0; j < filled; j++)
        top[j].logprob = (float)((double)top[j].logprob - lse);
    lp->n_top = filled;
}

/* ---- entry points ------------------------------------------------------------------------ */

int32_t ks_sampler_sample(ks_sampler *s, const float *logits, ks_token_logprobs *lp) {
    const int32_t n = run_chain(s, logits);
    int32_t token = -1;
    if (n > 0)
        token = s->params.temperature == 0.0f ? s->cands[0].id : draw(s, n);
    if (lp)
        fill_logprobs(s, logits, token, lp);
    return token;
}

int32_t ks_sampler_candidates(ks_sampler *s, const float *logits, ks_token_prob *out, int32_t cap) {
    const int32_t n = run_chain(s, logits);
    if (n == 0)
        return 0;
    cand *c = s->cands;
    if (s->params.temperature == 0.0f) {
        c[0].p = 1.0f;
    } else {
        const double sum = weigh(c, n, s->params.temperature);
        if (sum == 0.0)
            return 0;
        for (int32_t i = 0; i < n; i++)
            c[i].p = (float)(c[i].p / sum);
    }
    const int32_t k = KS_MIN(KS_MAX(cap, 0), n);
    if (k > 0)
        select_best(c, n, k);
    for (int32_t i = 0; i < k; i++) {
        out[i].token = c[i].id;
        out[i].logit = c[i].logit;
        out[i].p = c[i].p;
    }
    return n;
}
