/* test_engine.c — the engine thread with continuous batching: a request alone gives the
 * runner's greedy tokens; requests running together each give what they give alone (also
 * when a small KV pool forces preemption); follow-ups reuse the cache; cancellation and
 * a full queue end requests cleanly; deadlines end running and queued requests; shutdown
 * ends what is left with an error and refuses more; a short prompt is not stuck behind a
 * long prefill, which still goes on. */
#include "engine/engine.h"
#include "engine/runner.h"
#include "model/model.h"
#include "tensor/types.h"
#include "test_support.h"

#include <criterion/criterion.h>
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

static ks_engine *engine(const ks_model *m, int parallel, uint64_t ram_blocks, int chunk) {
    ks_engine_params p;
    ks_engine_params_default(&p);
    p.n_threads = 2;
    p.n_ctx = 1024;
    p.n_parallel = parallel;
    p.prefill_chunk = chunk;
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

static void check_concurrent(int parallel, uint64_t ram_blocks, int chunk) {
    ks_model *m = load("models/mini-qwen3moe-f32.gguf");
    enum { R = 4 };
    int lens[R] = {90, 41, 130, 17};
    int32_t prompts[R][200], refs[R][N_GEN], got[R][64];
    for (int i = 0; i < R; i++) {
        prompt_of(prompts[i], lens[i], 10 + i);
        reference(m, prompts[i], lens[i], refs[i]);
    }
    ks_engine *e = engine(m, parallel, ram_blocks, chunk);
    ks_gen *g[R];
    for (int i = 0; i < R; i++)
        g[i] = submit(e, prompts[i], lens[i], N_GEN);
    for (int i = 0; i < R; i++) {
        int n = 0;
        ks_gen_event done = drain(g[i], got[i], &n);
        cr_assert_eq(done.reason, KS_STOP_LENGTH, "request %d ended with %d: %s", i, done.reason, done.error);
        cr_assert_eq(n, N_GEN);
        cr_assert_eq(memcmp(got[i], refs[i], sizeof refs[i]), 0, "request %d differs from alone", i);
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
    /* one slot: a is running (the context's worth of tokens takes far longer than
     * 300 ms), b waits behind it and runs out of time in the queue */
    ks_gen *a = submit_timed(e, p, 40, 1000, 300);
    ks_gen *b = submit_timed(e, p, 40, 8, 100);
    int n = 0;
    ks_gen_event done = drain(b, got, &n);
    cr_assert_eq(done.reason, KS_STOP_TIMEOUT, "waiting request ended with %d", done.reason);
    cr_assert_eq(n, 0);
    cr_assert_geq(done.timings.queued_ms, 100.0);
    cr_assert(strstr(done.error, "deadline") != NULL, "error: %s", done.error);
    done = drain(a, got, &n);
    cr_assert_eq(done.reason, KS_STOP_TIMEOUT, "running request ended with %d", done.reason);
    /* how far it got depends on the machine's speed (sanitizers, load): only that it
     * was cut short */
    cr_assert_lt(n, 1000);
    double total = done.timings.queued_ms + done.timings.prefill_ms + done.timings.decode_ms;
    cr_assert_geq(total, 300.0);
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
