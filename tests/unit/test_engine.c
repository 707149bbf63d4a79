/* test_engine.c — the engine thread with continuous batching: a request alone gives the
 * runner's greedy tokens; requests running together each give what they give alone (also
 * when a small KV pool forces preemption); prompts sent at once that begin alike compute
 * their common blocks once; follow-ups reuse the cache; cancellation and
 * a full queue end requests cleanly; deadlines end running and queued requests; shutdown
 * ends what is left with an error and refuses more; a short prompt is not stuck behind a
 * long prefill, which still goes on. The step budget, fed a simulated machine's step
 * times: no target until it has measured both kinds of step, then steps that converge to
 * K decode steps with deep prompt tokens weighing more; in the engine (step times
 * injected, so every decision is deterministic), a decoding stream keeps getting a token
 * every short step while a long prompt is computed, and a follow-up that arrives during a
 * long prefill goes whole in the next step. */
#include "engine/engine.h"
#include "engine/runner.h"
#include "model/model.h"
#include "tensor/types.h"
#include "test_support.h"

#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define B 16
#define N_GEN 12

static ks_model *load(const char *rel) {
    ks_model *m = NULL;
    ks_err err;
    ks_err_clear(&err);
    cr_assert_eq(ks_model_load(&m, ks_test_fixture(rel), &err), KS_OK, "%s", err.msg);
    return m;
}

static void prompt_of(int32_t *t, int n, int salt) {
    for (int i = 0; i < n; i++)
        t[i] = (int32_t)((i * 7919 + salt * 104729) % 4000 + 10);
}

/* Greedy reference through the single-sequence runner. */
static void reference(const ks_model *m, const int32_t *prompt, int n, int32_t *out) {
    ks_runner_params p;
    ks_runner_params_default(&p);
    p.n_threads = 2;
    p.n_ctx = 1024;
    p.kv.kv_type = KS_TYPE_F32;
    p.kv.block_tokens = B;
    ks_runner *r = NULL;
    cr_assert_eq(ks_runner_create(&r, m, &p, NULL), KS_OK);
    int V = m->hp.n_vocab;
    float *logits = malloc((size_t)V * sizeof(float));
    cr_assert_eq(ks_runner_start(r, prompt, n, logits, NULL, NULL), KS_OK);
    for (int g = 0; g < N_GEN; g++) {
        int best = 0;
        for (int i = 1; i < V; i++)
            if (logits[i] > logits[best])
                best = i;
        out[g] = best;
        cr_assert_eq(ks_runner_eval(r, &out[g], 1, false, logits, NULL), KS_OK);
    }
    free(logits);
    ks_runner_destroy(r);
}

typedef struct fake_clock fake_clock;
static double fake_step_ms(void *ctx, const ks_step_shape *s);

/* clock: NULL, or the simulated step times; step_budget as ks_engine_params has it. */
static ks_engine *engine_timed(const ks_model *m, int parallel, uint64_t ram_blocks, int chunk, int step_budget,
                               fake_clock *clock) {
    ks_engine_params p;
    ks_engine_params_default(&p);
    p.n_threads = 2;
    p.n_ctx = 1024;
    p.n_parallel = parallel;
    p.prefill_chunk = chunk;
    p.step_budget = step_budget;
    if (clock) {
        p.step_ms = fake_step_ms;
        p.step_ms_ctx = clock;
    }
    p.max_queue = 8;
    p.kv.kv_type = KS_TYPE_F32;
    p.kv.block_tokens = B;
    ks_kv_layout l;
    ks_kv_layout_init(&l, KS_TYPE_F32, B, m->hp.n_layer, m->hp.n_head_kv, m->hp.head_dim, NULL);
    p.kv.ram_bytes = ram_blocks * l.block_bytes;
    ks_engine *e = NULL;
    ks_err err;
    ks_err_clear(&err);
    cr_assert_eq(ks_engine_create(&e, m, &p, &err), KS_OK, "%s", err.msg);
    return e;
}

static ks_engine *engine(const ks_model *m, int parallel, uint64_t ram_blocks, int chunk) {
    return engine_timed(m, parallel, ram_blocks, chunk, 0, NULL);
}

static ks_gen *submit_timed(ks_engine *e, const int32_t *prompt, int n, int max_tokens, int64_t timeout_ms) {
    ks_gen_request req;
    memset(&req, 0, sizeof req);
    req.prompt = prompt;
    req.n_prompt = n;
    req.max_tokens = max_tokens;
    req.sampling = ks_sampler_params_default();
    req.sampling.temperature = 0;
    req.ignore_eog = true;
    req.timeout_ms = timeout_ms;
    ks_gen *g = NULL;
    ks_err err;
    ks_err_clear(&err);
    cr_assert_eq(ks_engine_submit(e, &req, &g, &err), KS_OK, "%s", err.msg);
    return g;
}

static ks_gen *submit(ks_engine *e, const int32_t *prompt, int n, int max_tokens) {
    return submit_timed(e, prompt, n, max_tokens, 0);
}

/* Collects a request's tokens until DONE; returns the DONE event. */
static ks_gen_event drain(ks_gen *g, int32_t *tokens, int *n) {
    ks_gen_event ev;
    *n = 0;
    for (;;) {
        cr_assert_eq(ks_gen_next(g, &ev, 60000), 1, "no event within a minute");
        if (ev.type == KS_GEN_EV_TOKEN)
            tokens[(*n)++] = ev.token;
        if (ev.type == KS_GEN_EV_DONE)
            return ev;
    }
}

Test(engine, test_engine_single_request_matches_runner) {
    ks_model *m = load("models/mini-qwen3-f32.gguf");
    int32_t p[70], ref[N_GEN], got[64];
    prompt_of(p, 70, 1);
    reference(m, p, 70, ref);
    ks_engine *e = engine(m, 4, 64, 32);
    ks_gen *g = submit(e, p, 70, N_GEN);
    int n = 0;
    ks_gen_event done = drain(g, got, &n);
    cr_assert_eq(done.reason, KS_STOP_LENGTH);
    cr_assert_eq(n, N_GEN);
    cr_assert_eq(memcmp(got, ref, sizeof ref), 0, "engine tokens differ from the runner's");
    cr_assert_eq(done.usage.prompt_tokens, 70);
    cr_assert_eq(done.usage.computed_tokens, 70);
    ks_gen_release(g);
    /* the follow-up reuses the prompt's 4 full blocks */
    g = submit(e, p, 70, 2);
    done = drain(g, got, &n);
    cr_assert_eq(done.usage.cached_ram_tokens, 64, "got %d", done.usage.cached_ram_tokens);
    cr_assert_eq(done.usage.computed_tokens, 6);
    ks_gen_release(g);
    ks_engine_destroy(e);
    ks_model_close(m);
}

/* Drains request i, which must end at N_GEN tokens, those it gives alone (ref). */
static ks_gen_event drain_as_alone(ks_gen *g, int i, const int32_t *ref) {
    int32_t got[64];
    int n = 0;
    ks_gen_event done = drain(g, got, &n);
    cr_assert_eq(done.reason, KS_STOP_LENGTH, "request %d ended with %d: %s", i, done.reason, done.error);
    cr_assert_eq(n, N_GEN);
    cr_assert_eq(memcmp(got, ref, N_GEN * sizeof *ref), 0, "request %d differs from alone", i);
    return done;
}

static void check_concurrent(int parallel, uint64_t ram_blocks, int chunk) {
    ks_model *m = load("models/mini-qwen3moe-f32.gguf");
    enum { R = 4 };
    int lens[R] = {90, 41, 130, 17};
    int32_t prompts[R][200], refs[R][N_GEN];
    for (int i = 0; i < R; i++) {
        prompt_of(prompts[i], lens[i], 10 + i);
        reference(m, prompts[i], lens[i], refs[i]);
    }
    ks_engine *e = engine(m, parallel, ram_blocks, chunk);
    ks_gen *g[R];
    for (int i = 0; i < R; i++)
        g[i] = submit(e, prompts[i], lens[i], N_GEN);
    for (int i = 0; i < R; i++) {
        drain_as_alone(g[i], i, refs[i]);
        ks_gen_release(g[i]);
    }
    ks_engine_stats st;
    ks_engine_stats_get(e, &st);
    cr_log_info("parallel %d, %llu KV blocks: %llu steps, %llu preemptions", parallel,
                (unsigned long long)ram_blocks, (unsigned long long)st.steps, (unsigned long long)st.preemptions);
    ks_engine_destroy(e);
    ks_model_close(m);
}

Test(engine, test_engine_concurrent_requests_equal_each_alone) { check_concurrent(4, 128, 32); }

Test(engine, test_engine_small_pool_preempts_and_still_matches) { check_concurrent(4, 14, 16); }

/* Three prompts sent at once that begin with the same 6 blocks (as subagents with one
 * system prompt): the first computes them, the others take them from the cache as they
 * are published instead of computing them too, and every request still gives its own
 * tokens. */
Test(engine, test_engine_prompts_sharing_a_prefix_compute_it_once) {
    ks_model *m = load("models/mini-qwen3-f32.gguf");
    enum { R = 3, PREFIX = 6 * B };
    const int lens[R] = {PREFIX + 50, PREFIX + 20, PREFIX + 37}; /* the first, longest, is not the
                                                                    * one the planner would pick */
    int32_t prompts[R][200], refs[R][N_GEN];
    for (int i = 0; i < R; i++) {
        prompt_of(prompts[i], lens[i], 20 + i);
        prompt_of(prompts[i], PREFIX, 7); /* the shared beginning */
        reference(m, prompts[i], lens[i], refs[i]);
    }
    /* prefill chunks of one block: the first prompt's prefix takes six steps */
    ks_engine *e = engine(m, 4, 128, B);
    ks_gen *g[R];
    for (int i = 0; i < R; i++)
        g[i] = submit(e, prompts[i], lens[i], N_GEN);
    int computed = 0;
    for (int i = 0; i < R; i++) {
        ks_gen_event done = drain_as_alone(g[i], i, refs[i]);
        cr_assert_eq(done.usage.prompt_tokens, lens[i]);
        cr_assert_eq(done.usage.cached_ram_tokens, i == 0 ? 0 : PREFIX, "request %d: %d cached", i,
                     done.usage.cached_ram_tokens);
        cr_assert_eq(done.usage.computed_tokens, i == 0 ? lens[i] : lens[i] - PREFIX);
        computed += done.usage.computed_tokens;
        ks_gen_release(g[i]);
    }
    ks_engine_stats st;
    ks_engine_stats_get(e, &st);
    cr_assert_eq(st.computed_tokens, (uint64_t)computed, "the engine counts %llu computed, the requests %d",
                 (unsigned long long)st.computed_tokens, computed);
    ks_engine_destroy(e);
    ks_model_close(m);
}

Test(engine, test_engine_cancel_ends_request) {
    ks_model *m = load("models/mini-qwen3-f32.gguf");
    int32_t p[40], got[512];
    prompt_of(p, 40, 3);
    ks_engine *e = engine(m, 2, 64, 32);
    ks_gen *g = submit(e, p, 40, 500);
    ks_gen_event ev;
    cr_assert_eq(ks_gen_next(g, &ev, 60000), 1);
    ks_gen_cancel(g);
    int n = 0;
    ks_gen_event done = drain(g, got, &n);
    cr_assert_eq(done.reason, KS_STOP_CANCELLED);
    cr_assert_lt(n, 500);
    ks_gen_release(g);
    ks_engine_destroy(e);
    ks_model_close(m);
}

Test(engine, test_engine_rejects_when_queue_full_and_bad_prompts) {
    ks_model *m = load("models/mini-qwen3-f32.gguf");
    int32_t p[40];
    prompt_of(p, 40, 4);
    ks_engine *e = engine(m, 1, 64, 32);
    ks_gen *g[16];
    int accepted = 0, rejected = 0;
    ks_gen_request req;
    memset(&req, 0, sizeof req);
    req.prompt = p;
    req.n_prompt = 40;
    req.max_tokens = 200;
    req.sampling = ks_sampler_params_default();
    req.ignore_eog = true;
    for (int i = 0; i < 16; i++) {
        ks_err err;
        ks_err_clear(&err);
        ks_status s = ks_engine_submit(e, &req, &g[accepted], &err);
        if (s == KS_OK)
            accepted++;
        else {
            cr_assert_eq(s, KS_ERR_FULL, "%s", err.msg);
            rejected++;
        }
    }
    cr_assert_gt(rejected, 0, "a queue of 8 must refuse some of 16 requests");
    for (int i = 0; i < accepted; i++)
        ks_gen_release(g[i]); /* cancels */
    int32_t bad[2] = {1, 999999};
    req.prompt = bad;
    req.n_prompt = 2;
    ks_gen *x = NULL;
    cr_assert_eq(ks_engine_submit(e, &req, &x, NULL), KS_ERR_INVALID);
    req.n_prompt = 0;
    cr_assert_eq(ks_engine_submit(e, &req, &x, NULL), KS_ERR_INVALID);
    ks_engine_destroy(e);
    ks_model_close(m);
}

Test(engine, test_engine_deadline_ends_running_and_waiting_requests) {
    ks_model *m = load("models/mini-qwen3-f32.gguf");
    int32_t p[40], got[1024];
    prompt_of(p, 40, 5);
    ks_engine *e = engine(m, 1, 64, 32);
    /* one slot: a is running (the context's worth of tokens, ~980, takes far longer
     * than 100 ms: ~300 on a quiet Zen 4 core, where a deadline of 300 ms let it fill the
     * context first), b waits behind it and runs out of time in the queue */
    ks_gen *a = submit_timed(e, p, 40, 1000, 100);
    ks_gen *b = submit_timed(e, p, 40, 8, 30);
    int n = 0;
    ks_gen_event done = drain(b, got, &n);
    cr_assert_eq(done.reason, KS_STOP_TIMEOUT, "waiting request ended with %d", done.reason);
    cr_assert_eq(n, 0);
    cr_assert_geq(done.timings.queued_ms, 30.0);
    cr_assert(strstr(done.error, "deadline") != NULL, "error: %s", done.error);
    done = drain(a, got, &n);
    cr_assert_eq(done.reason, KS_STOP_TIMEOUT, "running request ended with %d", done.reason);
    /* how far it got depends on the machine's speed (sanitizers, load): only that it
     * was cut short */
    cr_assert_lt(n, 1000);
    double total = done.timings.queued_ms + done.timings.prefill_ms + done.timings.decode_ms;
    cr_assert_geq(total, 100.0);
    ks_gen_release(a);
    ks_gen_release(b);
    ks_engine_stats st;
    ks_engine_stats_get(e, &st);
    cr_assert_eq(st.requests_timed_out, 2);
    cr_assert_eq(st.running, 0);
    cr_assert_eq(st.waiting, 0);
    /* no deadline: unaffected */
    ks_gen *c = submit_timed(e, p, 40, 4, 0);
    done = drain(c, got, &n);
    cr_assert_eq(done.reason, KS_STOP_LENGTH);
    ks_gen_release(c);
    ks_engine_destroy(e);
    ks_model_close(m);
}

Test(engine, test_engine_shutdown_ends_requests_with_error_and_refuses_more) {
    ks_model *m = load("models/mini-qwen3-f32.gguf");
    int32_t p[40], got[1024];
    prompt_of(p, 40, 6);
    ks_engine *e = engine(m, 1, 64, 32);
    ks_gen *a = submit(e, p, 40, 1000);
    ks_gen *b = submit(e, p, 40, 1000);
    ks_gen_event ev;
    cr_assert_eq(ks_gen_next(a, &ev, 60000), 1);
    ks_engine_shutdown(e);
    int n = 0;
    ks_gen_event done = drain(a, got, &n);
    cr_assert_eq(done.reason, KS_STOP_ERROR);
    cr_assert_str_eq(done.error, "the server is shutting down");
    done = drain(b, got, &n);
    cr_assert_eq(done.reason, KS_STOP_ERROR, "the queued one too");
    ks_gen *c = NULL;
    ks_gen_request req;
    memset(&req, 0, sizeof req);
    req.prompt = p;
    req.n_prompt = 40;
    req.max_tokens = 4;
    req.sampling = ks_sampler_params_default();
    cr_assert_eq(ks_engine_submit(e, &req, &c, NULL), KS_ERR_FULL);
    ks_gen_release(a);
    ks_gen_release(b);
    ks_engine_destroy(e);
    ks_model_close(m);
}

/* A prompt of n_short tokens submitted just after one of 900, chunks of 64: its first
 * token comes long before the long prompt is done, and the long one still finishes. */
static void check_short_behind_long(int n_short) {
    ks_model *m = load("models/mini-qwen3-f32.gguf");
    static int32_t long_p[900], short_p[200], got[256];
    prompt_of(long_p, 900, 7);
    prompt_of(short_p, n_short, 8);
    ks_engine *e = engine(m, 2, 128, 64);
    ks_gen *a = submit(e, long_p, 900, 1);
    ks_gen *b = submit(e, short_p, n_short, 200);
    ks_gen_event ev;
    do
        cr_assert_eq(ks_gen_next(b, &ev, 60000), 1);
    while (ev.type != KS_GEN_EV_TOKEN);
    ks_gen_progress pa;
    ks_gen_progress_get(a, &pa);
    cr_assert_lt(pa.n_done, 900 / 2, "a %d-token prompt's first token came after %d of the long one's 900 tokens",
                 n_short, pa.n_done);
    /* the long one is not starved by the short one's decoding */
    int n = 0;
    ks_gen_event done = drain(a, got, &n);
    cr_assert_eq(done.reason, KS_STOP_LENGTH);
    ks_gen_release(b);
    ks_gen_release(a);
    ks_engine_destroy(e);
    ks_model_close(m);
}

Test(engine, test_engine_short_prompt_not_stuck_behind_long_prefill) {
    check_short_behind_long(40);  /* fits in one chunk */
    check_short_behind_long(150); /* takes three, still fewer left than the long one */
}

/* ---- the step budget ------------------------------------------------------------------ */

/* Qwen3-0.6B's shapes. */
static ks_hparams qwen3_06b_shapes(void) {
    ks_hparams hp = {.n_layer = 28, .n_embd = 1024, .n_head = 16, .n_head_kv = 8, .head_dim = 128, .n_ff = 3072};
    return hp;
}

/* A machine the budget knows nothing of: a step costs fixed_ms, plus a pass over the
 * weights for decode tokens, plus ms_per_token per prompt token at depth 0 (more deeper,
 * as the budget's own work weighs them); share_hidden of the prompt time overlaps that
 * pass (arithmetic under memory traffic), so steps are not additive. */
typedef struct sim_machine {
    double fixed_ms, pass_ms, ms_per_token, share_hidden;
} sim_machine;

static double sim_ms(const sim_machine *mc, const ks_step_budget *b, const ks_step_shape *s) {
    double prompt = mc->ms_per_token / b->token_macs * s->prompt_work;
    double hidden = mc->share_hidden * prompt, pass = s->n_decode > 0 ? mc->pass_ms : 0;
    return mc->fixed_ms + KS_MAX(pass, hidden) + (prompt - hidden);
}

static void observe(ks_step_budget *b, const sim_machine *mc, int n_decode, int depth, int n_prompt,
                    ks_step_shape *out) {
    ks_step_shape s = {n_decode, n_prompt, ks_step_budget_work(b, depth, n_prompt), 0};
    s.ms = sim_ms(mc, b, &s);
    ks_step_budget_observe(b, &s);
    if (out)
        *out = s;
}

Test(engine, test_engine_step_budget_no_target_until_measured) {
    ks_hparams hp = qwen3_06b_shapes();
    sim_machine mc = {2, 50, 5, 0};
    ks_step_budget b;
    ks_step_budget_init(&b, &hp, 512, 4);
    cr_assert(isinf(ks_step_budget_target_ms(&b)));
    cr_assert(ks_step_budget_wants_decode_step(&b), "a decode step to measure first");
    cr_assert_eq(ks_step_budget_fit(&b, 0, false, 0, 600), 600, "no target: the caller's chunk");
    observe(&b, &mc, 2, 0, 0, NULL); /* a decode step alone: still no prompt rate */
    cr_assert(isinf(ks_step_budget_target_ms(&b)));
    cr_assert_not(ks_step_budget_wants_decode_step(&b));
    cr_assert_eq(ks_step_budget_fit(&b, 0, true, 0, 512), KS_STEP_MIN_TOKENS, "beside streams: measured cheaply");
    observe(&b, &mc, 0, 0, 512, NULL);
    double target = ks_step_budget_target_ms(&b);
    cr_assert_lt(fabs(target - 4 * 52.0), 1e-9, "target %g ms, want 4 decode steps of 52 ms", target);
    int n = ks_step_budget_fit(&b, 0, true, 0, 512);
    cr_assert(n > KS_STEP_MIN_TOKENS && n < 512, "a step with decode tokens takes %d of 512 prompt tokens", n);
    cr_assert_gt(ks_step_budget_fit(&b, 0, false, 0, 512), n, "more with nothing decoding");
    /* the unit is measured again after KS_STEP_DECODE_REFRESH steps with prompt tokens */
    for (int i = 0; i < KS_STEP_DECODE_REFRESH; i++)
        observe(&b, &mc, 1, 0, n, NULL);
    cr_assert(ks_step_budget_wants_decode_step(&b));
    observe(&b, &mc, 1, 0, 0, NULL);
    cr_assert_not(ks_step_budget_wants_decode_step(&b));
    /* k = 0: never a target */
    ks_step_budget_init(&b, &hp, 512, 0);
    observe(&b, &mc, 2, 0, 0, NULL);
    observe(&b, &mc, 0, 0, 512, NULL);
    cr_assert(isinf(ks_step_budget_target_ms(&b)));
    cr_assert_not(ks_step_budget_wants_decode_step(&b));
    cr_assert_eq(ks_step_budget_fit(&b, 0, true, 0, 512), 512);
}

/* A long prompt computed beside decode tokens, then alone, on a machine whose steps are
 * not additive (half the prompt time hides under the pass over the weights): the measured
 * step times correct the model until the steps last their target, however deep. */
static void check_convergence(bool with_decode, double ms_per_token) {
    ks_hparams hp = qwen3_06b_shapes();
    sim_machine mc = {3, 60, ms_per_token, 0.5};
    ks_step_budget b;
    ks_step_budget_init(&b, &hp, 512, 4);
    observe(&b, &mc, 1, 0, 0, NULL);
    observe(&b, &mc, with_decode, 0, 512, NULL); /* the first chunk, before there was a target */
    int depth = 512, steps = 0;
    while (depth < 4000 && steps < 2000) {
        for (int d = 0; d < 2; d++) /* decode steps in between keep decode_ms current */
            observe(&b, &mc, 1, 0, 0, NULL);
        double target = ks_step_budget_target_ms(&b);
        int n = ks_step_budget_fit(&b, 0, with_decode, depth, 512);
        ks_step_shape s;
        observe(&b, &mc, with_decode, depth, n, &s);
        if (++steps > 8)
            cr_assert_lt(fabs(s.ms - target) / target, 0.15,
                         "step %d at depth %d: %d tokens took %.1f ms, target %.1f ms", steps, depth, n, s.ms, target);
        cr_assert_gt(n, with_decode ? KS_STEP_MIN_TOKENS : KS_STEP_MIN_ALONE_TOKENS, "the floor is not what holds");
        cr_assert_lt(n, 512);
        depth += n;
    }
    cr_assert_geq(depth, 4000, "the prompt got to %d tokens in %d steps", depth, steps);
}

Test(engine, test_engine_step_budget_steps_converge_to_target) {
    check_convergence(true, 1.5);
    check_convergence(false, 0.5);
}

Test(engine, test_engine_step_budget_deep_tokens_weigh_more) {
    ks_hparams hp = qwen3_06b_shapes();
    sim_machine mc = {0, 40, 1, 0};
    ks_step_budget b;
    ks_step_budget_init(&b, &hp, 512, 8);
    observe(&b, &mc, 1, 0, 0, NULL);
    observe(&b, &mc, 0, 0, 100, NULL);
    /* beside a 40-ms decode step, 280 ms of 1-ms tokens at the start, less their attention
     * among themselves; 2,000 positions in, a token also attends to 0.52x its matmuls'
     * worth of multiply-adds, weighed 5x: ~3x fewer */
    double target = ks_step_budget_target_ms(&b);
    int shallow = ks_step_budget_fit(&b, 0, true, 0, 512);
    int deep = ks_step_budget_fit(&b, 0, true, 2000, 512);
    double t = ks_step_budget_predict_ms(&b, ks_step_budget_work(&b, 0, shallow), true);
    cr_assert(t <= target && t > 0.99 * target, "%d tokens at the start: %.1f ms, target %.1f", shallow, t, target);
    cr_assert(3.0 * deep < shallow && 3.4 * deep > shallow, "%d tokens 2,000 positions in, %d at the start", deep,
              shallow);
    /* work already planned counts */
    double planned = ks_step_budget_work(&b, 0, 100);
    int more = ks_step_budget_fit(&b, planned, true, 0, 512);
    cr_assert(ks_step_budget_predict_ms(&b, planned + ks_step_budget_work(&b, 0, more), true) <= target &&
                  ks_step_budget_predict_ms(&b, planned + ks_step_budget_work(&b, 0, more + 1), true) > target &&
                  more < shallow - 80,
              "%d tokens of another prompt after 100 of one", more);
    cr_assert_eq(ks_step_budget_fit(&b, ks_step_budget_work(&b, 0, 512), true, 0, 512), 0);
    /* the floors hold for a first prompt; a shorter prompt is not padded */
    cr_assert_eq(ks_step_budget_fit(&b, 0, true, 1000000, 512), KS_STEP_MIN_TOKENS);
    cr_assert_eq(ks_step_budget_fit(&b, 0, false, 1000000, 512), KS_STEP_MIN_ALONE_TOKENS);
    cr_assert_eq(ks_step_budget_fit(&b, 0, false, 1000000, 5), 5);
}

/* ---- the step budget in the engine ------------------------------------------------------- */

/* Step times for the engine, from each step's shape: fixed_ms, plus decode_ms with decode
 * tokens, plus 0.5 ms per prompt token at depth 0 (more deeper, as the budget weighs them).
 * Records every step; can hold the engine thread inside the hold_at-th step with prompt
 * tokens and no decode tokens (counted once armed) until released, so that a request can
 * be submitted at a known point of a prefill. */
struct fake_clock {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    double fixed_ms, decode_ms, ms_per_work;
    ks_step_shape steps[2048];
    int n_steps;
    bool armed, held, released;
    int hold_at, n_prompt_steps, held_step;
};

static void fake_clock_init(fake_clock *c, const ks_model *m) {
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    ks_step_budget b;
    ks_step_budget_init(&b, &m->hp, 1, 1);
    c->fixed_ms = 2;
    c->decode_ms = 10;
    c->ms_per_work = 0.5 / b.token_macs;
    c->held_step = -1;
}

static void fake_clock_deinit(fake_clock *c) {
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
}

static double fake_step_ms(void *ctx, const ks_step_shape *s) {
    fake_clock *c = ctx;
    double ms = c->fixed_ms + (s->n_decode > 0 ? c->decode_ms : 0) + c->ms_per_work * s->prompt_work;
    pthread_mutex_lock(&c->mu);
    if (c->n_steps < (int)KS_ARRAY_LEN(c->steps)) {
        c->steps[c->n_steps] = *s;
        c->steps[c->n_steps].ms = ms;
    }
    int index = c->n_steps++;
    if (c->armed && s->n_prompt > 0 && s->n_decode == 0 && ++c->n_prompt_steps == c->hold_at) {
        c->held = true;
        c->held_step = index;
        pthread_cond_broadcast(&c->cv);
        while (!c->released)
            pthread_cond_wait(&c->cv, &c->mu);
    }
    pthread_mutex_unlock(&c->mu);
    return ms;
}

/* A stream decodes while a 900-token prompt is computed: with a budget of 4 decode steps
 * (12 ms each), every step that carries both lasts about 48 ms instead of a 256-token
 * chunk's 140 ms or more, and the stream gets a token in each. */
static void check_decode_beside_long_prompt(int step_budget) {
    ks_model *m = load("models/mini-qwen3-f32.gguf");
    static int32_t a_p[40], b_p[900], got[512];
    prompt_of(a_p, 40, 21);
    prompt_of(b_p, 900, 22);
    static fake_clock c;
    fake_clock_init(&c, m);
    ks_engine *e = engine_timed(m, 2, 128, 256, step_budget, &c);
    ks_gen *a = submit(e, a_p, 40, 600);
    ks_gen_event ev;
    do
        cr_assert_eq(ks_gen_next(a, &ev, 60000), 1);
    while (ev.type != KS_GEN_EV_TOKEN);
    ks_gen *b = submit(e, b_p, 900, 1);
    int n = 0;
    ks_gen_event done = drain(b, got, &n);
    cr_assert_eq(done.reason, KS_STOP_LENGTH);
    ks_gen_release(a); /* cancels the stream */
    ks_gen_release(b);
    ks_engine_destroy(e); /* joins the engine thread: c is this thread's now */
    int mixed = 0, largest = 0;
    double longest = 0;
    for (int i = 0; i < KS_MIN(c.n_steps, (int)KS_ARRAY_LEN(c.steps)); i++) {
        const ks_step_shape *s = &c.steps[i];
        if (s->n_decode == 0 || s->n_prompt == 0)
            continue;
        if (++mixed > 2 && s->ms > longest) /* the first two teach the budget its rate */
            longest = s->ms;
        largest = KS_MAX(largest, s->n_prompt);
    }
    cr_log_info("step budget %d: %d steps with decode and prompt tokens, at most %d prompt tokens, %.1f ms", step_budget,
                mixed, largest, longest);
    if (step_budget < 0) {
        cr_assert_eq(largest, 256, "without a budget, a chunk rides with the decode token");
    } else {
        cr_assert_geq(mixed, 900 / 48, "the prompt went on in %d steps beside the stream", mixed);
        cr_assert_leq(longest, 4 * 12.0 * 1.1, "a step with the stream's token took %.1f ms", longest);
        cr_assert_lt(largest, 64);
    }
    fake_clock_deinit(&c);
    ks_model_close(m);
}

Test(engine, test_engine_step_budget_keeps_stream_going_beside_long_prompt) {
    check_decode_beside_long_prompt(4);
    check_decode_beside_long_prompt(-1);
}

/* A 900-token prompt runs alone (budget 16 decode steps, chunk 256, prompt tokens
 * cost_scale times the clock's usual); a follow-up of n_follow tokens is submitted while
 * the engine is held inside its 6th step. Returns that step's index in c->steps. */
static int follow_up_during_long_prefill(fake_clock *c, int n_follow, double cost_scale) {
    ks_model *m = load("models/mini-qwen3-f32.gguf");
    static int32_t w_p[40], l_p[900], f_p[256], got[512];
    prompt_of(w_p, 40, 31);
    prompt_of(l_p, 900, 32);
    prompt_of(f_p, n_follow, 33);
    fake_clock_init(c, m);
    c->ms_per_work *= cost_scale;
    ks_engine *e = engine_timed(m, 2, 128, 256, 16, c);
    /* a first request measures both kinds of step */
    ks_gen *w = submit(e, w_p, 40, 4);
    int n = 0;
    cr_assert_eq(drain(w, got, &n).reason, KS_STOP_LENGTH);
    ks_gen_release(w);
    pthread_mutex_lock(&c->mu);
    c->armed = true;
    c->hold_at = 6;
    pthread_mutex_unlock(&c->mu);
    ks_gen *l = submit(e, l_p, 900, 1);
    pthread_mutex_lock(&c->mu);
    while (!c->held)
        pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
    ks_gen *f = submit(e, f_p, n_follow, 1); /* queued before the held step ends */
    pthread_mutex_lock(&c->mu);
    c->released = true;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    cr_assert_eq(drain(f, got, &n).reason, KS_STOP_LENGTH);
    cr_assert_eq(drain(l, got, &n).reason, KS_STOP_LENGTH);
    ks_gen_release(f);
    ks_gen_release(l);
    ks_engine_destroy(e); /* joins the engine thread: c is this thread's now */
    ks_model_close(m);
    int h = c->held_step;
    cr_assert(h >= 0 && h + 2 < c->n_steps, "held at step %d of %d", h, c->n_steps);
    return h;
}

/* A long prompt alone goes in steps of about K decode steps (fewer tokens as it gets
 * deeper), not in whole chunks: a follow-up that arrives during it waits one such step,
 * then goes whole in the next. */
Test(engine, test_engine_step_budget_follow_up_waits_one_step_of_long_prefill) {
    static fake_clock c;
    int h = follow_up_during_long_prefill(&c, 40, 1.0);
    cr_assert_eq(c.steps[h + 1].n_prompt, 40, "the follow-up's step: %d prompt tokens", c.steps[h + 1].n_prompt);
    cr_assert_eq(c.steps[h + 1].n_decode, 0);
    /* the long prompt's steps (a chunk while that is within the target, then time-bound),
     * but for its remainder, the last step */
    double target = 16 * 12.0;
    int first = -1, last = -1, n_long = 0;
    for (int i = h - 3; i + 1 < c.n_steps; i++) {
        const ks_step_shape *s = &c.steps[i];
        if (i == h + 1)
            continue;
        cr_assert(s->ms < 1.1 * target && (s->n_prompt == 256 || s->ms > 0.8 * target),
                  "step %d: %d tokens, %.1f ms, target %.0f ms", i, s->n_prompt, s->ms, target);
        if (first < 0)
            first = s->n_prompt;
        last = s->n_prompt;
        n_long++;
    }
    cr_log_info("long prompt alone: %d steps from the one before the follow-up, %d tokens then, %d in the last but one",
                n_long, first, last);
    cr_assert_lt(last, 0.7 * first, "deeper tokens weigh more");
    fake_clock_deinit(&c);
}

/* A follow-up longer than the budget allows but within the chunk goes whole all the same
 * when nothing decodes: cut, its steps would alternate with the long prompt's. */
Test(engine, test_engine_step_budget_short_prompt_goes_whole_beside_long_prefill) {
    static fake_clock c;
    int h = follow_up_during_long_prefill(&c, 200, 4.0);
    cr_assert_eq(c.steps[h + 1].n_prompt, 200, "the follow-up's step: %d prompt tokens", c.steps[h + 1].n_prompt);
    cr_assert_gt(c.steps[h + 1].ms, 16 * 12.0 * 1.5, "over the budget: %.1f ms", c.steps[h + 1].ms);
    cr_assert_lt(c.steps[h + 2].n_prompt, 200, "then the long prompt, to its budget");
    fake_clock_deinit(&c);
}
