/* test_mkmodel.c — `kvserve mkmodel`, run as the real binary and read back with the GGUF
 * reader: tensor names, shapes and types of both architectures and their type mixes,
 * metadata keys, the built and the copied tokenizer, seeded determinism (also across
 * thread counts), the scale of the generated values, and rejection of bad requests. */
#include "gguf/gguf.h"
#include "tensor/types.h"
#include "test_support.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

extern char **environ;

static char *tmpdir;
static void setup(void) { tmpdir = ks_test_mkdtemp(); }
static void teardown(void) {
    ks_test_rmtree(tmpdir);
    free(tmpdir);
}

TestSuite(mkmodel, .init = setup, .fini = teardown);

static const char *tmp_path(const char *name) {
    static char slots[4][1024];
    static int next;
    char *p = slots[next++ & 3];
    snprintf(p, 1024, "%s/%s", tmpdir, name);
    return p;
}

/* Runs `kvserve mkmodel -q ARGS...` (NULL-terminated); returns its exit status. */
static int mkmodel(const char *first, ...) {
    const char *argv[64] = {ks_test_kvserve_bin(), "mkmodel", "-q"};
    int argc = 3;
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a && argc < 63; a = va_arg(ap, const char *))
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0); /* expected errors */
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    cr_assert_eq(rc, 0, "spawn %s: %s", argv[0], strerror(rc));
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* A Q4_0 model one layer deep and 64 wide (the embedding of a real vocabulary dominates
 * its size) with the tokenizer of the GGUF at vocab; opt and val: one more option, or
 * NULL. */
static int mkmodel_with_vocab(const char *out, const char *vocab, const char *opt, const char *val) {
    return mkmodel("-o", out, "--type", "q4_0", "--n-embd", "64", "--n-head", "2", "--n-head-kv", "1",
                   "--head-dim", "32", "--n-ff", "64", "--n-layer", "1", "--vocab-from", vocab, opt,
                   val, NULL);
}

static ks_gguf *open_ok(const char *path) {
    ks_err err;
    ks_err_clear(&err);
    ks_gguf *g = NULL;
    ks_status s = ks_gguf_open(&g, path, &err);
    cr_assert_eq(s, KS_OK, "open %s: %s", path, err.msg);
    return g;
}

static uint64_t get_u64(const ks_gguf *g, const char *key) {
    uint64_t v = 0;
    ks_err err;
    ks_err_clear(&err);
    cr_assert_eq(ks_gguf_get_u64(g, key, &v, &err), KS_OK, "%s: %s", key, err.msg);
    return v;
}

static const ks_gguf_value *get_arr(const ks_gguf *g, const char *key) {
    const ks_gguf_value *v = NULL;
    cr_assert_eq(ks_gguf_get_arr(g, key, KS_GGUF_TYPE_COUNT, &v, NULL), KS_OK, "%s missing", key);
    return v;
}

static bool str_is(ks_gguf_str s, const char *c) { return ks_gguf_str_eq(s, c); }

/* Asserts tensor name exists with this type and shape (ne2 = 0: a 2-D tensor, ne1 = 0:
 * 1-D); returns it. */
static const ks_gguf_tensor *expect_tensor(const ks_gguf *g, const char *name, uint32_t type,
                                           int64_t ne0, int64_t ne1, int64_t ne2) {
    const ks_gguf_tensor *t = ks_gguf_find_tensor(g, name);
    cr_assert_not_null(t, "tensor %s missing", name);
    uint32_t n_dims = ne2 ? 3 : ne1 ? 2 : 1;
    cr_expect_eq(t->n_dims, n_dims, "%s: n_dims %u, expected %u", name, t->n_dims, n_dims);
    cr_expect_eq(t->ne[0], ne0, "%s: ne0 %lld, expected %lld", name, (long long)t->ne[0], (long long)ne0);
    if (ne1)
        cr_expect_eq(t->ne[1], ne1, "%s: ne1 %lld, expected %lld", name, (long long)t->ne[1], (long long)ne1);
    if (ne2)
        cr_expect_eq(t->ne[2], ne2, "%s: ne2 %lld, expected %lld", name, (long long)t->ne[2], (long long)ne2);
    cr_expect_eq(t->type, type, "%s: type %s, expected %s", name, ks_type_name(t->type), ks_type_name(type));
    return t;
}

/* expect_tensor() for "blk.<il>.<suffix>.weight". */
static void expect_layer_tensor(const ks_gguf *g, int il, const char *suffix, uint32_t type,
                                int64_t ne0, int64_t ne1, int64_t ne2) {
    char name[64];
    snprintf(name, sizeof name, "blk.%d.%s.weight", il, suffix);
    expect_tensor(g, name, type, ne0, ne1, ne2);
}

/* Index of token text in the vocabulary, -1 if absent. */
static int64_t token_id(const ks_gguf_value *tokens, const char *text) {
    for (uint64_t i = 0; i < tokens->v.arr.n; i++)
        if (ks_gguf_str_eq(tokens->v.arr.items[i].v.str, text))
            return (int64_t)i;
    return -1;
}

static int64_t n_tokens(const ks_gguf *g) { return (int64_t)get_arr(g, "tokenizer.ggml.tokens")->v.arr.n; }

Test(mkmodel, test_mkmodel_tiny_qwen3_layout) {
    const char *path = tmp_path("tiny.gguf");
    cr_assert_eq(mkmodel("-o", path, "--preset", "tiny", "--type", "f32", NULL), 0);
    ks_gguf *g = open_ok(path);
    ks_gguf_str arch;
    cr_assert_eq(ks_gguf_get_str(g, "general.architecture", &arch, NULL), KS_OK);
    cr_expect(str_is(arch, "qwen3"));
    cr_expect_eq(get_u64(g, "qwen3.block_count"), 2);
    cr_expect_eq(get_u64(g, "qwen3.embedding_length"), 256);
    cr_expect_eq(get_u64(g, "qwen3.feed_forward_length"), 512);
    cr_expect_eq(get_u64(g, "qwen3.attention.head_count"), 4);
    cr_expect_eq(get_u64(g, "qwen3.attention.head_count_kv"), 2);
    cr_expect_eq(get_u64(g, "qwen3.attention.key_length"), 64);
    cr_expect_eq(get_u64(g, "qwen3.attention.value_length"), 64);
    cr_expect_eq(get_u64(g, "qwen3.context_length"), 4096);
    cr_expect_eq(get_u64(g, "general.file_type"), 0);
    float eps = 0, theta = 0;
    cr_expect_eq(ks_gguf_get_f32(g, "qwen3.attention.layer_norm_rms_epsilon", &eps, NULL), KS_OK);
    cr_expect_eq(ks_gguf_get_f32(g, "qwen3.rope.freq_base", &theta, NULL), KS_OK);
    cr_expect_float_eq(eps, 1e-6f, 1e-12f);
    cr_expect_float_eq(theta, 1e6f, 1.0f);

    int64_t n_vocab = n_tokens(g);
    cr_expect_gt(n_vocab, 256 + 26, "built vocabulary has only %lld tokens", (long long)n_vocab);
    cr_expect_eq(ks_gguf_n_tensors(g), 3 + 2 * 11);
    expect_tensor(g, "token_embd.weight", KS_TYPE_F32, 256, n_vocab, 0);
    expect_tensor(g, "output.weight", KS_TYPE_F32, 256, n_vocab, 0);
    expect_tensor(g, "output_norm.weight", KS_TYPE_F32, 256, 0, 0);
    for (int il = 0; il < 2; il++) {
#define EXPECT(suffix, ...) expect_layer_tensor(g, il, suffix, KS_TYPE_F32, __VA_ARGS__)
        EXPECT("attn_norm", 256, 0, 0);
        EXPECT("attn_q", 256, 4 * 64, 0);
        EXPECT("attn_k", 256, 2 * 64, 0);
        EXPECT("attn_v", 256, 2 * 64, 0);
        EXPECT("attn_output", 4 * 64, 256, 0);
        EXPECT("attn_q_norm", 64, 0, 0);
        EXPECT("attn_k_norm", 64, 0, 0);
        EXPECT("ffn_norm", 256, 0, 0);
        EXPECT("ffn_gate", 256, 512, 0);
        EXPECT("ffn_up", 256, 512, 0);
        EXPECT("ffn_down", 512, 256, 0);
#undef EXPECT
    }
    ks_gguf_close(g);
}

Test(mkmodel, test_mkmodel_qwen3moe_q4_k_m_mix) {
    const char *path = tmp_path("moe.gguf");
    cr_assert_eq(mkmodel("-o", path, "--arch", "qwen3moe", "--type", "q4_k_m", "--n-layer", "3", NULL), 0);
    ks_gguf *g = open_ok(path);
    cr_expect_eq(get_u64(g, "qwen3moe.block_count"), 3);
    cr_expect_eq(get_u64(g, "qwen3moe.expert_count"), 16);
    cr_expect_eq(get_u64(g, "qwen3moe.expert_used_count"), 4);
    cr_expect_eq(get_u64(g, "qwen3moe.expert_feed_forward_length"), 256);
    cr_expect_eq(get_u64(g, "general.file_type"), 15);
    cr_expect_eq(get_u64(g, "general.quantization_version"), 2);
    int64_t n_vocab = n_tokens(g);
    /* llama.cpp's Q4_K_M: the LM head in Q6_K, attn_v and ffn_down in Q6_K on the layers
     * use_more_bits() picks (with 3 layers: the last), the rest Q4_K; router and norms F32. */
    expect_tensor(g, "output.weight", KS_TYPE_Q6_K, 256, n_vocab, 0);
    expect_tensor(g, "token_embd.weight", KS_TYPE_Q4_K, 256, n_vocab, 0);
    expect_tensor(g, "output_norm.weight", KS_TYPE_F32, 256, 0, 0);
    for (int il = 0; il < 3; il++) {
        uint32_t more = il == 2 ? KS_TYPE_Q6_K : KS_TYPE_Q4_K;
#define EXPECT(...) expect_layer_tensor(g, il, __VA_ARGS__)
        EXPECT("attn_q", KS_TYPE_Q4_K, 256, 256, 0);
        EXPECT("attn_k", KS_TYPE_Q4_K, 256, 128, 0);
        EXPECT("attn_v", more, 256, 128, 0);
        EXPECT("attn_output", KS_TYPE_Q4_K, 256, 256, 0);
        EXPECT("attn_q_norm", KS_TYPE_F32, 64, 0, 0);
        EXPECT("ffn_gate_inp", KS_TYPE_F32, 256, 16, 0);
        EXPECT("ffn_gate_exps", KS_TYPE_Q4_K, 256, 256, 16);
        EXPECT("ffn_up_exps", KS_TYPE_Q4_K, 256, 256, 16);
        EXPECT("ffn_down_exps", more, 256, 256, 16);
#undef EXPECT
    }
    cr_expect_null(ks_gguf_find_tensor(g, "blk.0.ffn_gate.weight"), "dense FFN in a MoE model");
    ks_gguf_close(g);
}

Test(mkmodel, test_mkmodel_q4_k_m_falls_back_on_short_rows) {
    /* n_ff_exp 96 is not a multiple of 256: ffn_down_exps rows go Q4_K -> Q5_0 and
     * Q6_K -> Q8_0, as llama.cpp's quantizer does. */
    const char *path = tmp_path("fb.gguf");
    cr_assert_eq(mkmodel("-o", path, "--arch", "qwen3moe", "--type", "q4_k_m", "--n-layer", "3",
                         "--n-ff-exp", "96", NULL), 0);
    ks_gguf *g = open_ok(path);
    expect_tensor(g, "blk.0.ffn_down_exps.weight", KS_TYPE_Q5_0, 96, 256, 16);
    expect_tensor(g, "blk.2.ffn_down_exps.weight", KS_TYPE_Q8_0, 96, 256, 16);
    expect_tensor(g, "blk.0.ffn_up_exps.weight", KS_TYPE_Q4_K, 256, 96, 16);
    ks_gguf_close(g);
}

/* The lower-bit mixes follow llama.cpp's rules (tiny MoE, 3 layers, 2 query heads a KV
 * head unless said): Q3_K_M keeps the first two attn_v in Q5_K and the rest in Q4_K,
 * attn_output in Q4_K; Q2_K keeps attn_v (fewer than 4 query heads a KV head), attn_output
 * and ffn_down in Q3_K; IQ4_XS keeps attn_v in Q5_K where 4 share a KV head, and a row of
 * 96 falls back to IQ4_NL. */
Test(mkmodel, test_mkmodel_low_bit_mixes) {
    const char *path = tmp_path("q3.gguf");
    cr_assert_eq(mkmodel("-o", path, "--arch", "qwen3moe", "--type", "q3_k_m", "--n-layer", "3", NULL), 0);
    ks_gguf *g = open_ok(path);
    cr_expect_eq(get_u64(g, "general.file_type"), 12);
    expect_tensor(g, "output.weight", KS_TYPE_Q6_K, 256, n_tokens(g), 0);
    for (int il = 0; il < 3; il++) {
        expect_layer_tensor(g, il, "attn_q", KS_TYPE_Q3_K, 256, 256, 0);
        expect_layer_tensor(g, il, "attn_v", il < 2 ? KS_TYPE_Q5_K : KS_TYPE_Q4_K, 256, 128, 0);
        expect_layer_tensor(g, il, "attn_output", KS_TYPE_Q4_K, 256, 256, 0);
        expect_layer_tensor(g, il, "ffn_down_exps", KS_TYPE_Q4_K, 256, 256, 16);
        expect_layer_tensor(g, il, "ffn_up_exps", KS_TYPE_Q3_K, 256, 256, 16);
    }
    ks_gguf_close(g);

    path = tmp_path("q2.gguf");
    cr_assert_eq(mkmodel("-o", path, "--arch", "qwen3moe", "--type", "q2_k", "--n-layer", "3", NULL), 0);
    g = open_ok(path);
    cr_expect_eq(get_u64(g, "general.file_type"), 10);
    expect_layer_tensor(g, 1, "attn_q", KS_TYPE_Q2_K, 256, 256, 0);
    expect_layer_tensor(g, 1, "attn_v", KS_TYPE_Q3_K, 256, 128, 0);
    expect_layer_tensor(g, 1, "attn_output", KS_TYPE_Q3_K, 256, 256, 0);
    expect_layer_tensor(g, 1, "ffn_down_exps", KS_TYPE_Q3_K, 256, 256, 16);
    expect_layer_tensor(g, 1, "ffn_gate_exps", KS_TYPE_Q2_K, 256, 256, 16);
    ks_gguf_close(g);

    path = tmp_path("xs.gguf");
    cr_assert_eq(mkmodel("-o", path, "--arch", "qwen3moe", "--type", "iq4_xs", "--n-layer", "3", "--n-head-kv", "1",
                         "--n-ff-exp", "96", NULL), 0);
    g = open_ok(path);
    cr_expect_eq(get_u64(g, "general.file_type"), 30);
    expect_layer_tensor(g, 0, "attn_q", KS_TYPE_IQ4_XS, 256, 256, 0);
    expect_layer_tensor(g, 0, "attn_v", KS_TYPE_Q5_K, 256, 64, 0);
    expect_layer_tensor(g, 0, "ffn_up_exps", KS_TYPE_IQ4_XS, 256, 96, 16);
    expect_layer_tensor(g, 0, "ffn_down_exps", KS_TYPE_IQ4_NL, 96, 256, 16);
    ks_gguf_close(g);
}

Test(mkmodel, test_mkmodel_tied_output_and_padded_vocab) {
    /* Qwen3-0.6B's head and vocabulary at a small width: no output.weight, 151,936 token
     * rows, the built vocabulary padded with unused tokens. */
    const char *path = tmp_path("tied.gguf");
    cr_assert_eq(mkmodel("-o", path, "--preset", "qwen3-0.6b", "--type", "q4_0", "--n-layer", "1",
                         "--n-embd", "128", "--n-head", "2", "--n-head-kv", "1", "--head-dim", "64",
                         "--n-ff", "256", NULL), 0);
    ks_gguf *g = open_ok(path);
    cr_expect_null(ks_gguf_find_tensor(g, "output.weight"));
    /* The tied head is quantized as the head: Q4_0 files keep it in Q6_K, unless rows are
     * not a multiple of 256 (here 128): then Q8_0. */
    expect_tensor(g, "token_embd.weight", KS_TYPE_Q8_0, 128, 151936, 0);
    expect_tensor(g, "blk.0.attn_q.weight", KS_TYPE_Q4_0, 128, 128, 0);
    cr_expect_eq(get_u64(g, "general.file_type"), 2);
    const ks_gguf_value *tokens = get_arr(g, "tokenizer.ggml.tokens");
    const ks_gguf_value *types = get_arr(g, "tokenizer.ggml.token_type");
    cr_assert_eq(tokens->v.arr.n, 151936);
    cr_assert_eq(types->v.arr.n, 151936);
    cr_expect(str_is(tokens->v.arr.items[151935].v.str, "[PAD151935]"));
    cr_expect_eq(ks_gguf_arr_get_i64(types, 151935), 5, "padding is not UNUSED");
    ks_gguf_close(g);
}

Test(mkmodel, test_mkmodel_built_vocab_is_byte_level_bpe) {
    const char *path = tmp_path("vocab.gguf");
    cr_assert_eq(mkmodel("-o", path, "--type", "q8_0", NULL), 0);
    ks_gguf *g = open_ok(path);
    ks_gguf_str s;
    cr_assert_eq(ks_gguf_get_str(g, "tokenizer.ggml.model", &s, NULL), KS_OK);
    cr_expect(str_is(s, "gpt2"));
    cr_assert_eq(ks_gguf_get_str(g, "tokenizer.ggml.pre", &s, NULL), KS_OK);
    cr_expect(str_is(s, "qwen2"));
    cr_assert_eq(ks_gguf_get_str(g, "tokenizer.chat_template", &s, NULL), KS_OK);
    cr_expect(s.len > 0 && memmem(s.ptr, s.len, "<|im_start|>", 12), "no ChatML template");

    const ks_gguf_value *tokens = get_arr(g, "tokenizer.ggml.tokens");
    const ks_gguf_value *types = get_arr(g, "tokenizer.ggml.token_type");
    const ks_gguf_value *merges = get_arr(g, "tokenizer.ggml.merges");
    cr_assert_eq(types->v.arr.n, tokens->v.arr.n);
    /* GPT-2's byte order: '!' (0x21) first; space is shown as U+0120, newline as U+010A. */
    cr_expect(str_is(tokens->v.arr.items[0].v.str, "!"));
    cr_expect_geq(token_id(tokens, "\xc4\xa0"), 0);
    cr_expect_lt(token_id(tokens, "\xc4\x8a"), 256);
    /* Common words of the sample text became single tokens. */
    cr_expect_geq(token_id(tokens, "\xc4\xa0the"), 256, "' the' is not one token");
    cr_expect_geq(token_id(tokens, "\xc4\xa0return"), 256, "' return' is not one token");
    /* Every merge joins two tokens into a third. */
    cr_expect_gt(merges->v.arr.n, 500, "only %llu merges", (unsigned long long)merges->v.arr.n);
    for (uint64_t i = 0; i < merges->v.arr.n; i++) {
        ks_gguf_str m = merges->v.arr.items[i].v.str;
        const char *sp = memchr(m.ptr + 1, ' ', m.len - 1);
        cr_assert_not_null(sp, "merge %llu has no space", (unsigned long long)i);
        char a[256], b[256], ab[512];
        size_t la = (size_t)(sp - m.ptr), lb = m.len - la - 1;
        cr_assert(la < sizeof a && lb < sizeof b);
        memcpy(a, m.ptr, la), a[la] = 0;
        memcpy(b, sp + 1, lb), b[lb] = 0;
        snprintf(ab, sizeof ab, "%s%s", a, b);
        cr_expect(token_id(tokens, a) >= 0 && token_id(tokens, b) >= 0 && token_id(tokens, ab) >= 0,
                  "merge %llu '%s %s' joins unknown tokens", (unsigned long long)i, a, b);
    }
    /* Qwen's special tokens with Qwen3's types; eos is <|im_end|>, bos/pad <|endoftext|>. */
    int64_t eot = token_id(tokens, "<|endoftext|>"), im_end = token_id(tokens, "<|im_end|>");
    int64_t think = token_id(tokens, "<think>");
    cr_assert(eot >= 256 && im_end >= 256 && think >= 256);
    cr_expect_eq(ks_gguf_arr_get_i64(types, (uint64_t)im_end), 3);
    cr_expect_eq(ks_gguf_arr_get_i64(types, (uint64_t)think), 4);
    cr_expect_eq(get_u64(g, "tokenizer.ggml.eos_token_id"), (uint64_t)im_end);
    cr_expect_eq(get_u64(g, "tokenizer.ggml.bos_token_id"), (uint64_t)eot);
    cr_expect_eq(token_id(tokens, "</think>"), (int64_t)tokens->v.arr.n - 1);
    ks_gguf_close(g);
}

Test(mkmodel, test_mkmodel_vocab_from_and_template_file) {
    const char *vocab = ks_test_fixture("tokenizer/vocab-qwen3.gguf");
    const char *tmpl = ks_test_fixture("templates/Qwen3-Coder.jinja");
    const char *path = tmp_path("vq.gguf");
    cr_assert_eq(mkmodel_with_vocab(path, vocab, "--template-file", tmpl), 0);
    ks_gguf *src = open_ok(vocab);
    ks_gguf *g = open_ok(path);
    /* Every tokenizer key of the source, same length; n_vocab follows it. */
    for (uint64_t i = 0; i < ks_gguf_n_kv(src); i++) {
        const ks_gguf_kv *kv = ks_gguf_kv_at(src, i);
        if (kv->key.len < 10 || memcmp(kv->key.ptr, "tokenizer.", 10))
            continue;
        char key[128];
        snprintf(key, sizeof key, "%.*s", (int)kv->key.len, kv->key.ptr);
        const ks_gguf_kv *copy = ks_gguf_find(g, key);
        cr_assert_not_null(copy, "%s not copied", key);
        cr_expect_eq(copy->value.type, kv->value.type, "%s: type", key);
        if (kv->value.type == KS_GGUF_ARRAY)
            cr_expect_eq(copy->value.v.arr.n, kv->value.v.arr.n, "%s: length", key);
    }
    cr_expect_eq(get_u64(g, "tokenizer.ggml.eos_token_id"), 151645);
    expect_tensor(g, "token_embd.weight", KS_TYPE_Q4_0, 64, 151936, 0);
    size_t tmpl_size;
    uint8_t *text = ks_test_read_file(tmpl, &tmpl_size);
    cr_assert_not_null(text);
    ks_gguf_str s;
    cr_assert_eq(ks_gguf_get_str(g, "tokenizer.chat_template", &s, NULL), KS_OK);
    cr_expect(s.len == tmpl_size && !memcmp(s.ptr, text, tmpl_size), "template not copied verbatim");
    free(text);
    ks_gguf_close(g);
    ks_gguf_close(src);
}

/* The chat template of the model at path, as a malloc'd C string. */
static char *chat_template_of(const char *path) {
    ks_gguf *g = open_ok(path);
    ks_gguf_str s;
    cr_assert_eq(ks_gguf_get_str(g, "tokenizer.chat_template", &s, NULL), KS_OK, "%s: no template", path);
    char *t = strndup(s.ptr, (size_t)s.len);
    ks_gguf_close(g);
    return t;
}

Test(mkmodel, test_mkmodel_vocab_from_keeps_or_adds_a_template) {
    /* vocab-qwen2.gguf has a template: kept. vocab-qwen3.gguf has none: ChatML added. */
    const char *a = tmp_path("q2.gguf"), *b = tmp_path("q3.gguf");
    cr_assert_eq(mkmodel_with_vocab(a, ks_test_fixture("tokenizer/vocab-qwen2.gguf"), NULL, NULL), 0);
    cr_assert_eq(mkmodel_with_vocab(b, ks_test_fixture("tokenizer/vocab-qwen3.gguf"), NULL, NULL), 0);
    char *ta = chat_template_of(a), *tb = chat_template_of(b);
    char *src = chat_template_of(ks_test_fixture("tokenizer/vocab-qwen2.gguf"));
    cr_expect_str_eq(ta, src);
    cr_expect(strstr(tb, "<|im_start|>") && strstr(tb, "add_generation_prompt"), "no ChatML template added");
    free(ta);
    free(tb);
    free(src);
}

Test(mkmodel, test_mkmodel_same_seed_same_bytes) {
    const char *a = tmp_path("a.gguf"), *b = tmp_path("b.gguf"), *c = tmp_path("c.gguf");
    cr_assert_eq(mkmodel("-o", a, "--arch", "qwen3moe", "--type", "q4_k_m", "--seed", "7", "-t", "1", NULL), 0);
    cr_assert_eq(mkmodel("-o", b, "--arch", "qwen3moe", "--type", "q4_k_m", "--seed", "7", "-t", "3", NULL), 0);
    cr_assert_eq(mkmodel("-o", c, "--arch", "qwen3moe", "--type", "q4_k_m", "--seed", "8", NULL), 0);
    size_t na, nb, nc;
    uint8_t *fa = ks_test_read_file(a, &na), *fb = ks_test_read_file(b, &nb), *fc = ks_test_read_file(c, &nc);
    cr_assert(fa && fb && fc);
    cr_expect_eq(na, nb);
    cr_expect(na == nb && !memcmp(fa, fb, na), "same seed, different bytes (1 vs 3 threads)");
    /* Another seed: same layout, other weights. */
    ks_gguf *ga = open_ok(a), *gc = open_ok(c);
    const ks_gguf_tensor *ta = ks_gguf_find_tensor(ga, "blk.1.ffn_up_exps.weight");
    const ks_gguf_tensor *tc = ks_gguf_find_tensor(gc, "blk.1.ffn_up_exps.weight");
    cr_assert(ta && tc && ta->size == tc->size);
    cr_expect(memcmp(ta->data, tc->data, ta->size) != 0, "seed 7 and 8 gave the same weights");
    ks_gguf_close(ga);
    ks_gguf_close(gc);
    free(fa);
    free(fb);
    free(fc);
}

/* Mean and standard deviation of a F32 tensor's elements; fails on a non-finite one. */
static void stats(const ks_gguf_tensor *t, double *mean, double *std) {
    const float *x = t->data;
    size_t n = t->size / sizeof *x;
    double s = 0, s2 = 0;
    for (size_t i = 0; i < n; i++) {
        cr_assert(isfinite(x[i]), "element %zu of %.*s is %f", i, (int)t->name.len, t->name.ptr, x[i]);
        s += x[i];
        s2 += (double)x[i] * x[i];
    }
    *mean = s / (double)n;
    *std = sqrt(s2 / (double)n - *mean * *mean);
}

Test(mkmodel, test_mkmodel_weight_scales) {
    const char *path = tmp_path("f32.gguf");
    cr_assert_eq(mkmodel("-o", path, "--type", "f32", NULL), 0);
    ks_gguf *g = open_ok(path);
    struct {
        const char *name;
        double mean, std; /* what the plan asks for */
    } want[] = {
        {"token_embd.weight", 0, 2.0 / 16},               /* 2 / sqrt(n_embd) */
        {"blk.0.attn_q.weight", 0, 1.0 / 16},             /* 1 / sqrt(fan_in 256) */
        {"blk.1.ffn_down.weight", 0, 1.0 / sqrt(512) / 2}, /* / sqrt(2 n_layer) */
        {"blk.0.attn_norm.weight", 1, 0.05},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        double mean, std;
        stats(ks_gguf_find_tensor(g, want[i].name), &mean, &std);
        cr_expect(fabs(mean - want[i].mean) < 0.2 * want[i].std, "%s: mean %g, expected %g",
                  want[i].name, mean, want[i].mean);
        cr_expect(fabs(std / want[i].std - 1) < 0.1, "%s: std %g, expected %g", want[i].name, std,
                  want[i].std);
    }
    ks_gguf_close(g);
}

/* Root mean square of rows [r0, r1) of a F32 matrix (the std of zero-mean rows). */
static double rows_std(const ks_gguf_tensor *t, int64_t r0, int64_t r1) {
    const float *x = (const float *)t->data + r0 * t->ne[0];
    double s2 = 0;
    for (int64_t i = 0; i < (r1 - r0) * t->ne[0]; i++)
        s2 += (double)x[i] * x[i];
    return sqrt(s2 / (double)((r1 - r0) * t->ne[0]));
}

Test(mkmodel, test_mkmodel_unused_tokens_have_quiet_head_rows) {
    /* Padding tokens get 1/16 of the LM head's scale, so that greedy decoding of a padded
     * vocabulary picks real tokens. */
    const char *path = tmp_path("pad.gguf");
    cr_assert_eq(mkmodel("-o", path, "--type", "f32", "--n-vocab", "4096", NULL), 0);
    ks_gguf *g = open_ok(path);
    int64_t n_used = token_id(get_arr(g, "tokenizer.ggml.tokens"), "</think>") + 1;
    cr_assert(n_used > 256 && n_used < 4096);
    for (int k = 0; k < 2; k++) {
        const ks_gguf_tensor *t = ks_gguf_find_tensor(g, k ? "output.weight" : "token_embd.weight");
        double live = rows_std(t, 0, n_used), quiet = rows_std(t, n_used, 4096);
        cr_expect(fabs(live / (2.0 / 16) - 1) < 0.05, "live rows: std %g", live);
        cr_expect(fabs(quiet / (2.0 / 16 / 16) - 1) < 0.05, "unused rows: std %g", quiet);
    }
    ks_gguf_close(g);
}

Test(mkmodel, test_mkmodel_quantized_weights_are_the_f32_weights) {
    /* The generator feeds the same values to every type: a Q8_0 tensor dequantizes to the
     * F32 file's tensor within Q8_0's error (half a step of max|x|/127 per block). */
    const char *f = tmp_path("f.gguf"), *q = tmp_path("q.gguf");
    cr_assert_eq(mkmodel("-o", f, "--type", "f32", NULL), 0);
    cr_assert_eq(mkmodel("-o", q, "--type", "q8_0", NULL), 0);
    ks_gguf *gf = open_ok(f), *gq = open_ok(q);
    const ks_gguf_tensor *tf = ks_gguf_find_tensor(gf, "blk.1.attn_k.weight");
    const ks_gguf_tensor *tq = ks_gguf_find_tensor(gq, "blk.1.attn_k.weight");
    cr_assert(tf && tq && tq->type == KS_TYPE_Q8_0);
    const ks_type_traits *tr = ks_type_traits_of(KS_TYPE_Q8_0);
    cr_assert_not_null(tr->to_float);
    size_t n = tf->size / sizeof(float);
    float *y = malloc(n * sizeof *y);
    tr->to_float(tq->data, y, (int64_t)n);
    const float *x = tf->data;
    double max_err = 0;
    for (size_t i = 0; i < n; i++)
        max_err = fmax(max_err, fabs((double)y[i] - x[i]));
    cr_expect_lt(max_err, 0.01 * (1.0 / 16) * 3.5, "max error %g", max_err); /* 3.5 sigma bound / 127 */
    free(y);
    ks_gguf_close(gf);
    ks_gguf_close(gq);
}

Test(mkmodel, test_mkmodel_rejects_bad_requests) {
    const char *path = tmp_path("bad.gguf");
    cr_expect_eq(mkmodel("--preset", "tiny", NULL), 2, "no -o accepted");
    cr_expect_eq(mkmodel("-o", path, "--frobnicate", NULL), 2, "unknown option accepted");
    cr_expect_eq(mkmodel("-o", path, "--type", "q3_k", NULL), 2, "unknown type accepted");
    cr_expect_eq(mkmodel("-o", path, "--preset", "nope", NULL), 2, "unknown preset accepted");
    cr_expect_eq(mkmodel("-o", path, "--n-expert", "4", NULL), 2, "experts on a dense model");
    cr_expect_eq(mkmodel("-o", path, "--n-layer", "0", NULL), 2, "zero layers accepted");
    cr_expect_eq(mkmodel("-o", path, "--n-head", "3", NULL), 1, "n_head 3 over 2 kv heads accepted");
    cr_expect_eq(mkmodel("-o", path, "--n-vocab", "100", NULL), 1, "vocab below the built one accepted");
    cr_expect_eq(mkmodel("-o", path, "--vocab-from", tmp_path("missing.gguf"), NULL), 1);
    FILE *f = fopen(path, "rb");
    cr_expect_null(f, "a failed run left %s behind", path);
    if (f)
        fclose(f);
}
