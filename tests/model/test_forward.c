/* test_forward.c — properties of the forward pass over the paged KV cache:
 *   batched prefill == token-by-token decode;
 *   two sequences in one batch == each run alone;
 *   the runner's batched decode of 2-4 sequences == each decoded alone, bit for bit;
 *   a sequence reading prefix blocks shared with another == one owning copies;
 *   bad batches and bad models fail with clear errors. */
#include "core/cpu.h"
#include "engine/runner.h"
#include "gguf/gguf_writer.h"
#include "kv/kv_pool.h"
#include "model/forward.h"
#include "model/model.h"
#include "tensor/types.h"
#include "test_support.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_TOK 45 /* crosses a block boundary at B = 16 more than twice */
#define B 16

static const int32_t prompt[N_TOK] = {785, 3974, 293, 651, 77, 282, 78, 87, 502, 1510, 82, 916, 279, 1187, 89,
                                      88, 294, 538, 13, 472, 485, 374, 264, 2613, 393, 88, 339, 263, 729, 510,
                                      750, 912, 2877, 11, 293, 982, 262, 470, 264, 488, 4097, 4098, 10, 100, 7};

typedef struct fixture {
    ks_model *m;
    ks_threadpool *tp;
    ks_kv_pool *pool;
    ks_forward *f;
} fixture;

static void open_fixture(fixture *fx, const char *model, uint32_t kv_type, int n_blocks) {
    ks_err err;
    ks_err_clear(&err);
    cr_assert_eq(ks_model_load(&fx->m, ks_test_fixture(model), &err), KS_OK, "%s", err.msg);
    fx->tp = ks_threadpool_create(2);
    ks_kv_layout l;
    cr_assert_eq(ks_kv_layout_init(&l, kv_type, B, fx->m->hp.n_layer, fx->m->hp.n_head_kv, fx->m->hp.head_dim, &err),
                 KS_OK, "%s", err.msg);
    cr_assert_eq(ks_kv_pool_create(&fx->pool, &l, n_blocks, &err), KS_OK, "%s", err.msg);
    cr_assert_eq(ks_forward_create(&fx->f, fx->m, &l, ks_kv_pool_base(fx->pool), n_blocks, 64, n_blocks * B, fx->tp,
                                   &err),
                 KS_OK, "%s", err.msg);
}

static void close_fixture(fixture *fx) {
    ks_forward_destroy(fx->f);
    ks_kv_pool_destroy(fx->pool);
    ks_threadpool_destroy(fx->tp);
    ks_model_close(fx->m);
}

/* Runs tokens [from, to) of one sequence in one batch; logits of every token into out. */
static void run_seq(fixture *fx, const int32_t *table, int n_blocks, int from, int to, float *out) {
    int32_t pos[64], seq[64];
    uint8_t want[64];
    for (int i = from; i < to; i++) {
        pos[i - from] = i;
        seq[i - from] = 0;
        want[i - from] = 1;
    }
    ks_seq_view sv = {table, n_blocks};
    ks_batch b = {to - from, prompt + from, pos, seq, want, &sv, 1};
    ks_err err;
    ks_err_clear(&err);
    cr_assert_eq(ks_forward_run(fx->f, &b, out, &err), KS_OK, "%s", err.msg);
}

static double max_rel_diff(const float *a, const float *b, size_t n) {
    double d = 0, mag = 0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        mag = fmax(mag, fabs((double)b[i]));
    }
    return d / (mag + 1e-30);
}

static void check_prefill_equals_decode(const char *model, uint32_t kv_type, double tol) {
    fixture fx;
    open_fixture(&fx, model, kv_type, 8);
    int V = fx.m->hp.n_vocab;
    int32_t table[4] = {0, 1, 2, 3};
    float *batched = malloc((size_t)N_TOK * V * sizeof(float));
    float *single = malloc((size_t)N_TOK * V * sizeof(float));
    run_seq(&fx, table, 3, 0, N_TOK, batched);
    int32_t table2[4] = {4, 5, 6, 7}; /* fresh blocks: nothing left over from the batch */
    for (int i = 0; i < N_TOK; i++)
        run_seq(&fx, table2, 3, i, i + 1, single + (size_t)i * V);
    double d = max_rel_diff(single, batched, (size_t)N_TOK * V);
    cr_assert_leq(d, tol, "%s kv %s: prefill vs decode max rel diff %g", model, ks_type_name(kv_type), d);
    free(batched);
    free(single);
    close_fixture(&fx);
}

/* These tests compare batches with token-by-token runs bit for bit (up to 1e-5), which
 * holds where a batch's matmul dots each row as vec_dot does. The AMX GEMM adds in
 * another order, and on quantized mini models a last-bit difference can flip an
 * activation's 8-bit rounding and grow from there: on AMX CPUs these tests use the
 * AVX-512 set (the GEMM has its own test, test_gemm, and the logits test runs it). */
static void exact_batch_kernels(void) {
    if (!getenv("KS_KERNELS") && ks_cpu_detect()->amx_int8)
        setenv("KS_KERNELS", "avx512", 1);
}
TestSuite(forward, .init = exact_batch_kernels);

Test(forward, test_forward_batched_prefill_equals_token_by_token) {
    check_prefill_equals_decode("models/mini-qwen3-f32.gguf", KS_TYPE_F32, 1e-5);
    check_prefill_equals_decode("models/mini-qwen3-q4_k_m.gguf", KS_TYPE_F16, 1e-5);
    check_prefill_equals_decode("models/mini-qwen3moe-q8_0.gguf", KS_TYPE_Q8_0, 1e-5);
    /* decode runs a token's experts in one batch of matmuls (ffn_moe_one); Q4_K_M mixes
     * weight types (Q6_K down and v), whose inputs are converted apart */
    check_prefill_equals_decode("models/mini-qwen3moe-q4_k_m.gguf", KS_TYPE_F16, 1e-5);
}

Test(forward, test_forward_two_sequences_in_one_batch_equal_each_alone) {
    fixture fx;
    open_fixture(&fx, "models/mini-qwen3moe-f32.gguf", KS_TYPE_F32, 12);
    int V = fx.m->hp.n_vocab;
    int na = 30, nb = 20;
    int32_t ta[2] = {0, 1}, tb[2] = {2, 3};
    float *alone_a = malloc((size_t)na * V * sizeof(float));
    float *alone_b = malloc((size_t)nb * V * sizeof(float));
    run_seq(&fx, ta, 2, 0, na, alone_a);
    /* sequence b = the prompt shifted by 7 tokens, run alone */
    int32_t pos[64], seq[64];
    uint8_t want[64];
    int32_t toks[64];
    for (int i = 0; i < nb; i++) {
        toks[i] = prompt[7 + i];
        pos[i] = i;
        seq[i] = 0;
        want[i] = 1;
    }
    ks_seq_view svb = {tb, 2};
    ks_batch b1 = {nb, toks, pos, seq, want, &svb, 1};
    cr_assert_eq(ks_forward_run(fx.f, &b1, alone_b, NULL), KS_OK);

    /* Both in one batch, interleaved, into fresh blocks. */
    int32_t ta2[2] = {4, 5}, tb2[2] = {6, 7};
    ks_seq_view both[2] = {{ta2, 2}, {tb2, 2}};
    int n = 0, ia = 0, ib = 0;
    int32_t order[64];
    while (ia < na || ib < nb) {
        if (ia < na) {
            toks[n] = prompt[ia];
            pos[n] = ia;
            seq[n] = 0;
            order[n++] = ia++;
        }
        if (ib < nb && (ia % 3 == 0 || ia >= na)) {
            toks[n] = prompt[7 + ib];
            pos[n] = ib;
            seq[n] = 1;
            order[n++] = ib++;
        }
    }
    for (int i = 0; i < n; i++)
        want[i] = 1;
    float *mixed = malloc((size_t)n * V * sizeof(float));
    ks_batch b2 = {n, toks, pos, seq, want, both, 2};
    ks_err err;
    ks_err_clear(&err);
    cr_assert_eq(ks_forward_run(fx.f, &b2, mixed, &err), KS_OK, "%s", err.msg);
    for (int i = 0; i < n; i++) {
        const float *ref = seq[i] == 0 ? alone_a + (size_t)order[i] * V : alone_b + (size_t)order[i] * V;
        double d = max_rel_diff(mixed + (size_t)i * V, ref, (size_t)V);
        cr_assert_leq(d, 1e-5, "batch index %d (seq %d pos %d): rel diff %g", i, seq[i], pos[i], d);
    }
    free(mixed);
    free(alone_a);
    free(alone_b);
    close_fixture(&fx);
}

Test(forward, test_forward_shared_prefix_blocks_equal_owned_copies) {
    fixture fx;
    open_fixture(&fx, "models/mini-qwen3-q8_0.gguf", KS_TYPE_F16, 10);
    int V = fx.m->hp.n_vocab;
    /* Sequence A computes the first 32 tokens (2 full blocks) and 13 more. */
    int32_t ta[3] = {0, 1, 2};
    float *a = malloc((size_t)N_TOK * V * sizeof(float));
    run_seq(&fx, ta, 3, 0, N_TOK, a);
    /* Sequence S shares A's two full blocks and computes only its tail into its own block. */
    int32_t ts[3] = {0, 1, 3};
    float *s = malloc((size_t)N_TOK * V * sizeof(float));
    run_seq(&fx, ts, 3, 2 * B, N_TOK, s + (size_t)2 * B * V);
    /* Sequence C owns copies: computes everything in its own blocks. */
    int32_t tc[3] = {4, 5, 6};
    float *c = malloc((size_t)N_TOK * V * sizeof(float));
    run_seq(&fx, tc, 3, 0, N_TOK, c);
    for (int i = 2 * B; i < N_TOK; i++) {
        double d = max_rel_diff(s + (size_t)i * V, c + (size_t)i * V, (size_t)V);
        cr_assert_leq(d, 1e-6, "pos %d: shared-prefix vs owned rel diff %g", i, d);
    }
    free(a);
    free(s);
    free(c);
    close_fixture(&fx);
}

Test(forward, test_forward_rejects_bad_batches) {
    fixture fx;
    open_fixture(&fx, "models/mini-qwen3-f32.gguf", KS_TYPE_F32, 2);
    int32_t table[2] = {0, 1};
    ks_seq_view sv = {table, 2};
    int32_t tok[2] = {5, 99999}, pos[2] = {0, 1}, seq[2] = {0, 0};
    uint8_t want[2] = {1, 1};
    ks_batch b = {2, tok, pos, seq, want, &sv, 1};
    ks_err err;
    ks_err_clear(&err);
    cr_assert_eq(ks_forward_run(fx.f, &b, NULL, &err), KS_ERR_INVALID);
    cr_assert(strstr(err.msg, "99999"), "%s", err.msg);
    tok[1] = 6;
    pos[1] = 2 * B; /* past the sequence's blocks and the context */
    ks_err_clear(&err);
    cr_assert_eq(ks_forward_run(fx.f, &b, NULL, &err), KS_ERR_INVALID);
    pos[1] = 1;
    int32_t bad_table[2] = {0, 7};
    ks_seq_view bad = {bad_table, 2};
    b.seqs = &bad;
    ks_err_clear(&err);
    cr_assert_eq(ks_forward_run(fx.f, &b, NULL, &err), KS_ERR_INVALID);
    cr_assert(strstr(err.msg, "pool block 7"), "%s", err.msg);
    close_fixture(&fx);
}

Test(forward, test_runner_rejects_empty_and_oversized_prompts) {
    ks_model *m = NULL;
    ks_err err;
    ks_err_clear(&err);
    cr_assert_eq(ks_model_load(&m, ks_test_fixture("models/mini-qwen3-f32.gguf"), &err), KS_OK);
    ks_runner_params p;
    ks_runner_params_default(&p);
    p.n_ctx = 40;
    p.n_threads = 1;
    ks_runner *r = NULL;
    cr_assert_eq(ks_runner_create(&r, m, &p, &err), KS_OK, "%s", err.msg);
    cr_assert_eq(ks_runner_eval(r, prompt, 0, false, NULL, &err), KS_ERR_INVALID);
    ks_err_clear(&err);
    cr_assert_eq(ks_runner_eval(r, prompt, 41, false, NULL, &err), KS_ERR_INVALID);
    cr_assert(strstr(err.msg, "context"), "%s", err.msg);
    cr_assert_eq(ks_runner_n_past(r), 0, "nothing appended on failure");
    ks_runner_destroy(r);
    ks_model_close(m);
}

/* The runner's batched decode (one token of each of S sequences per step, as the engine
 * steps) gives each sequence the logits it gets decoding alone, bit for bit, for a Q8_0
 * model in rows (with S = 3 and 4 its matmuls take the 4-row kernels, packed where the set
 * has them) and in panels where the kernels repack it (one panel kernel for any S). */
static void check_runner_decode_equals_alone(const char *model, int n_seqs, bool rows) {
    enum { PROMPT = 12, STEPS = 5 };
    ks_model *m = NULL;
    ks_err err;
    ks_err_clear(&err);
    setenv("KS_PANELS", rows ? "0" : "1", 1);
    cr_assert_eq(ks_model_load(&m, ks_test_fixture(model), &err), KS_OK, "%s", err.msg);
    unsetenv("KS_PANELS");
    cr_assert(!rows || !m->layers[0].wq.panels, "KS_PANELS=0 left the weights in rows");
    if (!rows && !m->layers[0].wq.panels)
        cr_log_info("the weights stay in rows here (no panel kernels, or the file stays mapped)");
    const int V = m->hp.n_vocab;
    ks_runner_params p;
    ks_runner_params_default(&p);
    p.n_ctx = 64;
    p.n_threads = 2;
    p.n_seqs = n_seqs;
    ks_runner *batched = NULL, *alone = NULL;
    cr_assert_eq(ks_runner_create(&batched, m, &p, &err), KS_OK, "%s", err.msg);
    p.n_seqs = 1;
    cr_assert_eq(ks_runner_create(&alone, m, &p, &err), KS_OK, "%s", err.msg);
    float *got = malloc((size_t)n_seqs * V * sizeof *got), *want = malloc((size_t)V * sizeof *want);
    cr_assert(got && want);
    for (int j = 0; j < n_seqs; j++) { /* sequence j: the prompt from token 3j, PROMPT long */
        ks_runner_select(batched, j);
        cr_assert_eq(ks_runner_start(batched, prompt + 3 * j, PROMPT, NULL, NULL, &err), KS_OK, "%s", err.msg);
    }
    for (int step = 0; step < STEPS; step++) {
        int32_t toks[4];
        for (int j = 0; j < n_seqs; j++)
            toks[j] = prompt[3 * j + PROMPT + step];
        cr_assert_eq(ks_runner_decode(batched, toks, got, &err), KS_OK, "%s", err.msg);
    }
    for (int j = 0; j < n_seqs; j++) {
        ks_runner_select(batched, j);
        cr_assert_eq(ks_runner_n_past(batched), PROMPT + STEPS);
    }
    /* a token outside the vocabulary in any sequence: an error, nothing appended to any */
    int32_t bad[4] = {1, 2, 3, 4};
    bad[n_seqs - 1] = V;
    cr_assert_eq(ks_runner_decode(batched, bad, got, &err), KS_ERR_INVALID);
    cr_assert(strstr(err.msg, "vocabulary"), "%s", err.msg);
    for (int j = 0; j < n_seqs; j++) {
        ks_runner_select(batched, j);
        cr_assert_eq(ks_runner_n_past(batched), PROMPT + STEPS, "sequence %d grew on a failed step", j);
    }
    /* the last step's logits of each sequence, decoded alone */
    for (int j = 0; j < n_seqs; j++) {
        cr_assert_eq(ks_runner_start(alone, prompt + 3 * j, PROMPT, NULL, NULL, &err), KS_OK, "%s", err.msg);
        for (int step = 0; step < STEPS; step++)
            cr_assert_eq(ks_runner_eval(alone, prompt + 3 * j + PROMPT + step, 1, false, want, &err), KS_OK);
        cr_assert_eq(memcmp(got + (size_t)j * V, want, (size_t)V * sizeof *want), 0,
                     "%d sequences: sequence %d's logits differ from its own (max rel diff %g)", n_seqs, j,
                     max_rel_diff(got + (size_t)j * V, want, (size_t)V));
    }
    free(got);
    free(want);
    ks_runner_destroy(batched);
    ks_runner_destroy(alone);
    ks_model_close(m);
}

Test(forward, test_runner_batched_decode_equals_each_sequence_alone) {
    /* the MoE model's decode steps run their experts as one batch of matmuls (ffn_moe_few),
     * one sequence's as several's, over Q4_K and Q6_K weights */
    static const char *const models[] = {"models/mini-qwen3-q8_0.gguf", "models/mini-qwen3moe-q4_k_m.gguf"};
    for (size_t mi = 0; mi < sizeof models / sizeof models[0]; mi++)
        for (int rows = 0; rows < 2; rows++)
            for (int n_seqs = 2; n_seqs <= 4; n_seqs++)
                check_runner_decode_equals_alone(models[mi], n_seqs, rows);
}

Test(forward, test_model_load_names_unsupported_arch_and_bad_tensor) {
    char *dir = ks_test_mkdtemp();
    char path[1024];
    snprintf(path, sizeof path, "%s/llama.gguf", dir);
    ks_gguf_writer *w = ks_gguf_writer_create();
    ks_gguf_writer_set_str(w, "general.architecture", "mamba");
    cr_assert_eq(ks_gguf_writer_write(w, path, NULL), KS_OK);
    ks_gguf_writer_destroy(w);
    ks_model *m = NULL;
    ks_err err;
    ks_err_clear(&err);
    cr_assert_eq(ks_model_load(&m, path, &err), KS_ERR_UNSUPPORTED);
    cr_assert(strstr(err.msg, "unsupported architecture 'mamba'") && strstr(err.msg, "qwen3"), "%s", err.msg);

    /* A qwen3 file whose attn_q has the wrong shape. Copy a fixture's metadata and
     * tensors, shrinking one tensor's declared shape. */
    ks_gguf *src = NULL;
    cr_assert_eq(ks_gguf_open(&src, ks_test_fixture("models/mini-qwen3-f32.gguf"), NULL), KS_OK);
    w = ks_gguf_writer_create();
    for (uint64_t i = 0; i < ks_gguf_n_kv(src); i++) {
        const ks_gguf_kv *kv = ks_gguf_kv_at(src, i);
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)kv->key.len, kv->key.ptr);
        ks_gguf_writer_set_value(w, key, &kv->value);
    }
    for (uint64_t i = 0; i < ks_gguf_n_tensors(src); i++) {
        const ks_gguf_tensor *t = ks_gguf_tensor_at(src, i);
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        int64_t ne[4] = {t->ne[0], t->ne[1], t->ne[2], t->ne[3]};
        if (!strcmp(name, "blk.1.attn_q.weight"))
            ne[1] /= 2;
        ks_gguf_writer_add_tensor(w, name, t->type, t->n_dims, ne, t->data);
    }
    snprintf(path, sizeof path, "%s/bad-shape.gguf", dir);
    cr_assert_eq(ks_gguf_writer_write(w, path, NULL), KS_OK);
    ks_gguf_writer_destroy(w);
    ks_gguf_close(src);
    ks_err_clear(&err);
    cr_assert_eq(ks_model_load(&m, path, &err), KS_ERR_INVALID);
    cr_assert(strstr(err.msg, "blk.1.attn_q.weight") && strstr(err.msg, "expected [256, 512]"), "%s", err.msg);
    ks_test_rmtree(dir);
    free(dir);
}
