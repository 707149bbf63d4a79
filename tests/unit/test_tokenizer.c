/* test_tokenizer.c — the tokenizer against references nobody here wrote (llama.cpp's and
 * Hugging Face's ids for the real Qwen2/Qwen3 vocabularies, the fixture prompts of the
 * mini models), the hand-written pre-tokenizer against its PCRE2 reference on random
 * text of every character class, round trips decode(encode(x)) == x on random bytes,
 * special-token partition rules on a small vocabulary written here, and the incremental
 * detokenizer on every split of its input. */
#include "gguf/gguf.h"
#include "gguf/gguf_writer.h"
#include "sample/rng.h"
#include "tokenizer/detok.h"
#include "tokenizer/pretok.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

#include "test_support.h"

#include <criterion/criterion.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <jansson.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ----------------------------------------------------------------------------- */

typedef struct loaded {
    ks_gguf *g;
    ks_tokenizer *t;
} loaded;

static loaded load_path(const char *path) {
    loaded l = {0};
    ks_err err;
    ks_err_clear(&err);
    cr_assert_eq(ks_gguf_open(&l.g, path, &err), KS_OK, "%s", err.msg);
    cr_assert_eq(ks_tokenizer_create(&l.t, l.g, &err), KS_OK, "%s", err.msg);
    return l;
}

static loaded load(const char *fixture) { return load_path(ks_test_fixture(fixture)); }

static void unload(loaded *l) {
    ks_tokenizer_destroy(l->t);
    ks_gguf_close(l->g);
}

static size_t tokenize(const ks_tokenizer *t, const char *s, size_t len, unsigned flags, int32_t **ids) {
    size_t n = 0;
    ks_status st = ks_tokenize_alloc(t, s, len, flags, ids, &n);
    cr_assert_eq(st, KS_OK, "tokenize: %s", ks_status_str(st));
    return n;
}

static void print_ids(char *buf, size_t cap, const int32_t *ids, size_t n) {
    size_t k = 0;
    buf[0] = 0;
    for (size_t i = 0; i < n && k + 16 < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%d", i ? " " : "", (int)ids[i]);
}

/* ids equal to the JSON array want, or a failure printing both sides. */
static void expect_ids(const int32_t *got, size_t n, const json_t *want, const char *what) {
    char a[4096], b[4096];
    int32_t *w = malloc((json_array_size(want) + 1) * sizeof *w);
    for (size_t i = 0; i < json_array_size(want); i++)
        w[i] = (int32_t)json_integer_value(json_array_get(want, i));
    bool same = n == json_array_size(want) && (n == 0 || !memcmp(got, w, n * sizeof *w));
    if (!same) {
        print_ids(a, sizeof a, got, n);
        print_ids(b, sizeof b, w, json_array_size(want));
    }
    free(w);
    cr_expect(same, "%s\n  got:  %s\n  want: %s", what, same ? "" : a, same ? "" : b);
}

/* decode(ids) with special text, into a malloc'd buffer. */
static char *detokenize(const ks_vocab *v, const int32_t *ids, size_t n, size_t *len) {
    size_t cap = 64, k = 0;
    char *out = malloc(cap);
    for (size_t i = 0; i < n; i++) {
        size_t m = ks_vocab_decode(v, ids[i], true, NULL, 0);
        while (k + m > cap)
            out = realloc(out, cap *= 2);
        ks_vocab_decode(v, ids[i], true, out + k, m);
        k += m;
    }
    *len = k;
    return out;
}

static size_t put_utf8(char *s, uint32_t cp) {
    if (cp < 0x80) {
        s[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        s[0] = (char)(0xc0 | (cp >> 6));
        s[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        s[0] = (char)(0xe0 | (cp >> 12));
        s[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        s[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    s[0] = (char)(0xf0 | (cp >> 18));
    s[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    s[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    s[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

static uint32_t below(ks_rng *r, uint32_t n) { return (uint32_t)(ks_rng_next_u64(r) % n); }

/* Random text of the kinds agents send: ASCII words, digits, punctuation, whitespace
 * runs, contractions, Latin-1, Cyrillic, CJK, emoji with ZWJ, combining marks, special
 * token texts, and (when invalid) bytes that are not UTF-8. Returns its length. */
static size_t random_text(ks_rng *r, char *s, size_t max, bool invalid) {
    static const char *const bits[] = {"<|im_start|>", "<|im_end|>", "<think>", "</think>", "<tool_call>",
                                       "'s", "'LL", "'re", "  ", "\t", "\r\n", "\n\n", "    ", "```", "{\"a\": 1}",
                                       "<|endoftext|>", "<|fim_prefix|>", "< |im_end| >", "x++", "->"};
    static const uint32_t ranges[][2] = {
        {'a', 'z'},       {'A', 'Z'},         {'0', '9'},       {0x21, 0x2f},     {0xa0, 0xff},
        {0x400, 0x4ff},   {0x300, 0x36f},     {0x4e00, 0x4f00}, {0x3040, 0x30ff}, {0xac00, 0xac40},
        {0x1f300, 0x1f64f}, {0x2000, 0x206f}, {0x660, 0x669},   {0xff10, 0xff5a}, {0x1d400, 0x1d4ff},
        {0x85, 0x85},     {0x3000, 0x3000},   {0x200d, 0x200d}, {0xfe0f, 0xfe0f}, {0x10000, 0x10ffff},
    };
    size_t n = 0;
    while (n + 16 < max) {
        uint32_t what = below(r, 20);
        if (what < 3) {
            const char *b = bits[below(r, KS_ARRAY_LEN(bits))];
            memcpy(s + n, b, strlen(b));
            n += strlen(b);
        } else if (what < 5) {
            uint32_t k = 1 + below(r, 6);
            for (uint32_t i = 0; i < k; i++)
                s[n++] = " \t\n\r\v\f"[below(r, i % 2 ? 6 : 1)];
        } else if (invalid && what == 5) {
            s[n++] = (char)(0x80 + below(r, 0x80)); /* a lone high byte: often not UTF-8 */
        } else {
            const uint32_t *rg = ranges[below(r, KS_ARRAY_LEN(ranges))];
            uint32_t cp = rg[0] + below(r, rg[1] - rg[0] + 1);
            if (cp >= 0xd800 && cp < 0xe000)
                cp = 'x';
            n += put_utf8(s + n, cp);
        }
    }
    return n;
}

/* ---- references -------------------------------------------------------------------------- */

/* The "cases" array of a llama.cpp fixture. (The file's "map" object has keys with NUL
 * bytes, which jansson does not take, so only the array is parsed.) */
static json_t *load_cases(const char *json_fixture) {
    size_t len = 0;
    char *text = (char *)ks_test_read_file(ks_test_fixture(json_fixture), &len);
    cr_assert_not_null(text, "%s", json_fixture);
    const char *key = memmem(text, len, "\n \"cases\":", 10);
    cr_assert_not_null(key, "%s: no cases", json_fixture);
    const char *start = memchr(key, '[', len - (size_t)(key - text));
    json_error_t jerr;
    json_t *cases = json_loadb(start, len - (size_t)(start - text), JSON_DISABLE_EOF_CHECK | JSON_ALLOW_NUL, &jerr);
    cr_assert_not_null(cases, "%s: %s", json_fixture, jerr.text);
    free(text);
    return cases;
}

/* Each case has llama.cpp's ids with special tokens parsed ("ids", how llama-server
 * tokenizes a rendered chat prompt) and not ("ids_parse_special_false", how user content
 * should be tokenized). Note what the second shows: control tokens (<|im_start|>) become
 * plain text, but user-defined ones (<think>, <tool_call>) are still single tokens. */
static void check_llamacpp_json(const char *json_fixture, const char *vocab_fixture) {
    json_t *root = load_cases(json_fixture);
    loaded l = load(vocab_fixture);
    cr_expect_eq(ks_tokenizer_n_merges_skipped(l.t), 0, "%s: every merge is usable", vocab_fixture);
    json_t *cases = root;
    cr_assert(json_array_size(cases) >= 32);
    for (size_t i = 0; i < json_array_size(cases); i++) {
        json_t *c = json_array_get(cases, i);
        const char *text = json_string_value(json_object_get(c, "text"));
        size_t len = json_string_length(json_object_get(c, "text"));
        char what[128];
        for (int special = 0; special < 2; special++) {
            int32_t *ids = NULL;
            size_t n = tokenize(l.t, text, len, (special ? KS_TOKENIZE_SPECIAL : 0u) | KS_TOKENIZE_ADD_SPECIAL, &ids);
            snprintf(what, sizeof what, "%s case %zu (%.40s) %s", json_fixture, i, text,
                     special ? "ids" : "ids_parse_special_false");
            expect_ids(ids, n, json_object_get(c, special ? "ids" : "ids_parse_special_false"), what);
            free(ids);
        }
    }
    unload(&l);
    json_decref(root);
}

Test(tokenizer, test_tokenizer_llamacpp_qwen3) { check_llamacpp_json("tokenizer/llamacpp-qwen3.json", "tokenizer/vocab-qwen3.gguf"); }

Test(tokenizer, test_tokenizer_llamacpp_qwen2) { check_llamacpp_json("tokenizer/llamacpp-qwen2.json", "tokenizer/vocab-qwen2.gguf"); }

Test(tokenizer, test_tokenizer_hf_qwen2) {
    size_t in_len = 0, out_len = 0;
    char *in = (char *)ks_test_read_file(ks_test_fixture("tokenizer/hf-qwen2.inp"), &in_len);
    char *out = (char *)ks_test_read_file(ks_test_fixture("tokenizer/hf-qwen2.out"), &out_len);
    cr_assert(in && out);
    loaded l = load("tokenizer/vocab-qwen2.gguf");
    static const char sep[] = "\n__ggml_vocab_test__\n";
    const char *p = in, *end = in + in_len, *o = out, *oend = out + out_len;
    int cases = 0;
    while (p < end) {
        const char *s = memmem(p, (size_t)(end - p), sep, sizeof sep - 1);
        size_t len = s ? (size_t)(s - p) : (size_t)(end - p);
        const char *eol = memchr(o, '\n', (size_t)(oend - o));
        cr_assert_not_null(eol, "hf-qwen2.out has fewer lines than cases");
        json_t *want = json_array();
        for (const char *q = o; q < eol;) {
            char *next;
            long v = strtol(q, &next, 10);
            if (next == q)
                break;
            json_array_append_new(want, json_integer(v));
            q = next;
        }
        int32_t *ids = NULL;
        size_t n = tokenize(l.t, p, len, 0, &ids);
        char what[96];
        snprintf(what, sizeof what, "hf-qwen2 case %d (%.30s)", cases, p);
        expect_ids(ids, n, want, what);
        free(ids);
        json_decref(want);
        cases++;
        o = eol + 1;
        p = s ? s + sizeof sep - 1 : end;
    }
    cr_expect_eq(cases, 46, "hf-qwen2.inp holds 46 strings, read %d", cases);
    unload(&l);
    free(in);
    free(out);
}

Test(tokenizer, test_tokenizer_fixture_prompts) {
    loaded l = load("models/mini-qwen3-f32.gguf");
    const char *const prompts[] = {"reference/prompt-p40.json", "reference/prompt-p300.json"};
    for (size_t k = 0; k < KS_ARRAY_LEN(prompts); k++) {
        json_error_t jerr;
        json_t *root = json_load_file(ks_test_fixture(prompts[k]), 0, &jerr);
        cr_assert_not_null(root, "%s: %s", prompts[k], jerr.text);
        json_t *text = json_object_get(root, "text");
        int32_t *ids = NULL;
        size_t n = tokenize(l.t, json_string_value(text), json_string_length(text),
                            KS_TOKENIZE_SPECIAL | KS_TOKENIZE_ADD_SPECIAL, &ids);
        expect_ids(ids, n, json_object_get(root, "tokens"), prompts[k]);
        /* and the ids decode back to the text */
        size_t len = 0;
        char *back = detokenize(ks_tokenizer_vocab(l.t), ids, n, &len);
        cr_expect(len == json_string_length(text) && !memcmp(back, json_string_value(text), len), "%s: round trip",
                  prompts[k]);
        free(back);
        free(ids);
        json_decref(root);
    }
    unload(&l);
}

/* ---- round trips ------------------------------------------------------------------------- */

Test(tokenizer, test_tokenizer_round_trip_random) {
    loaded l = load("tokenizer/vocab-qwen3.gguf");
    ks_rng r;
    ks_rng_seed(&r, 7);
    char *text = malloc(4096);
    for (int it = 0; it < 400; it++) {
        size_t len = random_text(&r, text, 64 + below(&r, 4000), it % 2);
        for (unsigned flags = 0; flags < 2; flags++) {
            int32_t *ids = NULL;
            size_t n = tokenize(l.t, text, len, flags, &ids), back_len = 0;
            char *back = detokenize(ks_tokenizer_vocab(l.t), ids, n, &back_len);
            cr_assert(back_len == len && !memcmp(back, text, len), "iteration %d flags %u: %zu bytes back for %zu", it,
                      flags, back_len, len);
            free(back);
            free(ids);
        }
    }
    /* every byte value alone and in pairs, and a long run of one character */
    for (int a = 0; a < 256; a++)
        for (int b = 0; b < 256; b += 17) {
            char s[2] = {(char)a, (char)b};
            int32_t *ids = NULL;
            size_t n = tokenize(l.t, s, 2, 0, &ids), back_len = 0;
            char *back = detokenize(ks_tokenizer_vocab(l.t), ids, n, &back_len);
            cr_assert(back_len == 2 && !memcmp(back, s, 2), "bytes %02x %02x", a, b);
            free(back);
            free(ids);
        }
    memset(text, 'a', 4000);
    int32_t *ids = NULL;
    size_t n = tokenize(l.t, text, 4000, 0, &ids), back_len = 0;
    char *back = detokenize(ks_tokenizer_vocab(l.t), ids, n, &back_len);
    cr_expect(back_len == 4000 && !memcmp(back, text, 4000) && n < 1000, "4000 x 'a': %zu tokens", n);
    free(back);
    free(ids);
    free(text);
    unload(&l);
}

Test(tokenizer, test_tokenizer_empty_and_errors) {
    loaded l = load("tokenizer/vocab-qwen3.gguf");
    size_t n = 99;
    int32_t out[4];
    cr_expect_eq(ks_tokenize(l.t, "", 0, KS_TOKENIZE_ADD_SPECIAL, out, 4, &n), KS_OK);
    cr_expect_eq(n, 0);
    cr_expect_eq(ks_tokenize(l.t, NULL, 3, 0, out, 4, &n), KS_ERR_INVALID);
    /* too small a buffer: the count, the first ids, and KS_ERR_FULL */
    const char *s = "Hello, world! How are you today?";
    cr_expect_eq(ks_tokenize(l.t, s, strlen(s), 0, out, 4, &n), KS_ERR_FULL);
    cr_expect_eq(n, 9);
    cr_expect(out[0] == 9707 && out[1] == 11 && out[2] == 1879 && out[3] == 0, "first ids %d %d %d %d", out[0], out[1],
              out[2], out[3]);
    unload(&l);
}

/* User content never gets control tokens, but user-defined ones match in any text, as in
 * llama.cpp (and Hugging Face tokenizers, whose added tokens they are). */
Test(tokenizer, test_tokenizer_user_defined_always_match) {
    loaded l = load("tokenizer/vocab-qwen3.gguf");
    int32_t *ids = NULL;
    size_t n = tokenize(l.t, "<think>", 7, 0, &ids);
    cr_expect(n == 1 && ids[0] == 151667, "<think> as user text: %zu tokens, first %d", n, ids[0]);
    free(ids);
    n = tokenize(l.t, "<|im_start|>", 12, 0, &ids);
    cr_expect(n > 1, "<|im_start|> as user text is text: %zu tokens", n);
    free(ids);
    n = tokenize(l.t, "<|im_start|>", 12, KS_TOKENIZE_SPECIAL, &ids);
    cr_expect(n == 1 && ids[0] == 151644, "<|im_start|> as markup: %zu tokens, first %d", n, ids[0]);
    free(ids);
    unload(&l);
}

/* ---- vocabularies written here ----------------------------------------------------------- */

/* Copies src's metadata to dst with tokenizer.ggml.pre = pre and, if add_bos >= 0,
 * tokenizer.ggml.add_bos_token = add_bos. */
static void write_variant(const char *src, const char *dst, const char *pre, int add_bos) {
    ks_err err;
    ks_err_clear(&err);
    ks_gguf *g = NULL;
    cr_assert_eq(ks_gguf_open(&g, src, &err), KS_OK, "%s", err.msg);
    ks_gguf_writer *w = ks_gguf_writer_create();
    for (uint64_t i = 0; i < ks_gguf_n_kv(g); i++) {
        const ks_gguf_kv *kv = ks_gguf_kv_at(g, i);
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)kv->key.len, kv->key.ptr);
        ks_gguf_writer_set_value(w, key, &kv->value);
    }
    if (pre)
        ks_gguf_writer_set_str(w, "tokenizer.ggml.pre", pre);
    if (add_bos >= 0)
        ks_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", add_bos);
    cr_assert_eq(ks_gguf_writer_write(w, dst, &err), KS_OK, "%s", err.msg);
    ks_gguf_writer_destroy(w);
    ks_gguf_close(g);
}

Test(tokenizer, test_tokenizer_llama_bpe) {
    char *dir = ks_test_mkdtemp();
    char path[1024];
    snprintf(path, sizeof path, "%s/llama-bpe.gguf", dir);
    write_variant(ks_test_fixture("tokenizer/vocab-qwen3.gguf"), path, "llama-bpe", -1);
    loaded l = load_path(path);
    cr_expect_eq(ks_tokenizer_pretok(l.t), KS_PRETOK_LLAMA3);
    /* the GGUF says add_bos_token = false, which overrides llama-bpe's default */
    cr_expect(!ks_tokenizer_add_bos(l.t));
    /* digits go in threes: "12345" -> "123" "45" (qwen2: one by one) */
    cr_expect_eq(ks_pretok_next(KS_PRETOK_LLAMA3, "12345", 5, 0), 3);
    cr_expect_eq(ks_pretok_next(KS_PRETOK_LLAMA3, "12345", 5, 3), 5);
    cr_expect_eq(ks_pretok_next(KS_PRETOK_QWEN2, "12345", 5, 0), 1);
    unload(&l);
    int32_t *ids = NULL;
    size_t n;

    write_variant(ks_test_fixture("tokenizer/vocab-qwen3.gguf"), path, "llama3", 1);
    l = load_path(path);
    n = tokenize(l.t, "Hello", 5, KS_TOKENIZE_ADD_SPECIAL, &ids);
    cr_expect(n == 2 && ids[0] == 151643 && ids[1] == 9707, "bos first: %zu tokens, %d", n, ids[0]);
    free(ids);
    n = tokenize(l.t, "Hello", 5, 0, &ids);
    cr_expect(n == 1 && ids[0] == 9707, "no bos without KS_TOKENIZE_ADD_SPECIAL");
    free(ids);
    unload(&l);

    ks_err err;
    ks_err_clear(&err);
    write_variant(ks_test_fixture("tokenizer/vocab-qwen3.gguf"), path, "no-such-pre", -1);
    ks_gguf *g = NULL;
    ks_tokenizer *t = NULL;
    cr_assert_eq(ks_gguf_open(&g, path, &err), KS_OK);
    cr_expect_eq(ks_tokenizer_create(&t, g, &err), KS_ERR_UNSUPPORTED);
    cr_expect(strstr(err.msg, "no-such-pre") != NULL, "message names the pre-tokenizer: %s", err.msg);
    ks_gguf_close(g);
    ks_test_rmtree(dir);
    free(dir);
}

/* A vocabulary small enough to reason about: the 256 byte tokens, merges "a b" -> "ab"
 * and "ab c" -> "abc", user-defined "abcd", control "xab", "<s>" and "[<s>]". */
#define TINY_N (256 + 6)
static loaded tiny_vocab(char *dir) {
    const char *names[TINY_N];
    char storage[TINY_N][16];
    int32_t types[TINY_N];
    for (int b = 0; b < 256; b++) {
        size_t k = put_utf8(storage[b], ks_byte_to_cp((uint8_t)b));
        storage[b][k] = 0;
        names[b] = storage[b];
        types[b] = KS_TOKEN_NORMAL;
    }
    const char *extra[] = {"ab", "abc", "abcd", "xab", "<s>", "[<s>]"};
    const int32_t extra_type[] = {KS_TOKEN_NORMAL, KS_TOKEN_NORMAL, KS_TOKEN_USER_DEFINED, KS_TOKEN_CONTROL,
                                  KS_TOKEN_CONTROL, KS_TOKEN_CONTROL};
    for (int i = 0; i < 6; i++) {
        names[256 + i] = extra[i];
        types[256 + i] = extra_type[i];
    }
    const char *merges[] = {"a b", "ab c"};
    ks_gguf_writer *w = ks_gguf_writer_create();
    ks_gguf_writer_set_str(w, "general.architecture", "qwen3");
    ks_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
    ks_gguf_writer_set_str(w, "tokenizer.ggml.pre", "qwen2");
    ks_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", names, TINY_N);
    ks_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", KS_GGUF_INT32, types, TINY_N);
    ks_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", merges, 2);
    ks_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 260);
    ks_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 260);
    ks_gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", true);
    char path[1024];
    snprintf(path, sizeof path, "%s/tiny.gguf", dir);
    ks_err err;
    ks_err_clear(&err);
    cr_assert_eq(ks_gguf_writer_write(w, path, &err), KS_OK, "%s", err.msg);
    ks_gguf_writer_destroy(w);
    return load_path(path);
}

static void expect_tokens(const ks_tokenizer *t, const char *text, unsigned flags, const int32_t *want, size_t n_want) {
    int32_t *ids = NULL;
    size_t n = tokenize(t, text, strlen(text), flags, &ids);
    char a[256], b[256];
    print_ids(a, sizeof a, ids, n);
    print_ids(b, sizeof b, want, n_want);
    cr_expect(n == n_want && !memcmp(ids, want, n * sizeof *ids), "'%s' flags %u\n  got:  %s\n  want: %s", text, flags,
              a, b);
    free(ids);
}

Test(tokenizer, test_tokenizer_special_partition) {
    char *dir = ks_test_mkdtemp();
    loaded l = tiny_vocab(dir);
    const int32_t x = 'x', a = 'a', c = 'c', d = 'd'; /* byte tokens: id = byte */
    /* BPE: "abc" merges fully */
    expect_tokens(l.t, "abc", 0, (int32_t[]){257}, 1);
    /* longest special first: "abcd" (user-defined, 4 bytes) wins over "xab" (3) even
     * though "xab" starts further left */
    expect_tokens(l.t, "xabcd", KS_TOKENIZE_SPECIAL, (int32_t[]){x, 258}, 2);
    /* without special parsing the control token "xab" is text; "abcd" still matches */
    expect_tokens(l.t, "xabx", 0, (int32_t[]){x, 256, x}, 3);
    expect_tokens(l.t, "xabx", KS_TOKENIZE_SPECIAL, (int32_t[]){259, x}, 2);
    expect_tokens(l.t, "abcdabcd", 0, (int32_t[]){258, 258}, 2);
    /* eos added when asked for (add_eos_token = true) */
    expect_tokens(l.t, "ab", KS_TOKENIZE_ADD_SPECIAL, (int32_t[]){256, 260}, 2);
    expect_tokens(l.t, "<s>a", KS_TOKENIZE_SPECIAL, (int32_t[]){260, a}, 2);
    expect_tokens(l.t, "cd", 0, (int32_t[]){c, d}, 2);
    unload(&l);
    ks_test_rmtree(dir);
    free(dir);
}

/* ---- control tokens kept out of client text ----------------------------------------------- */

static size_t tokenize_masked(const ks_tokenizer *t, const char *s, size_t len, unsigned flags, const ks_span *spans,
                              size_t n_spans, int32_t **ids, size_t **starts) {
    size_t n = 0;
    ks_status st = ks_tokenize_masked(t, s, len, flags, spans, n_spans, ids, starts, &n);
    cr_assert_eq(st, KS_OK, "tokenize_masked: %s", ks_status_str(st));
    return n;
}

static void expect_masked(const ks_tokenizer *t, const char *text, const ks_span *spans, size_t n_spans,
                          const int32_t *want, size_t n_want) {
    int32_t *ids = NULL;
    size_t n = tokenize_masked(t, text, strlen(text), KS_TOKENIZE_SPECIAL, spans, n_spans, &ids, NULL);
    char a[256], b[256];
    print_ids(a, sizeof a, ids, n);
    print_ids(b, sizeof b, want, n_want);
    cr_expect(n == n_want && !memcmp(ids, want, n * sizeof *ids), "'%s' with %zu spans\n  got:  %s\n  want: %s", text,
              n_spans, a, b);
    free(ids);
}

/* Every boundary a span can have around a control token, on the small vocabulary. */
Test(tokenizer, test_tokenizer_masked_boundaries) {
    char *dir = ks_test_mkdtemp();
    loaded l = tiny_vocab(dir);
    const int32_t x = 'x', c = 'c', d = 'd', lt = '<', gt = '>', s = 's', lb = '[', rb = ']';
    const int32_t ab = 256, abcd = 258, xab = 259, eos = 260, sq = 261;
    /* no spans, or spans that do not touch "xab": the control token */
    expect_masked(l.t, "xabx", NULL, 0, (int32_t[]){xab, x}, 2);
    expect_masked(l.t, "xabx", (ks_span[]){{3, 4}}, 1, (int32_t[]){xab, x}, 2);
    expect_masked(l.t, "axabx", (ks_span[]){{0, 1}, {4, 5}}, 2, (int32_t[]){'a', xab, x}, 3);
    /* empty spans forbid nothing, even inside the token */
    expect_masked(l.t, "xabx", (ks_span[]){{0, 0}, {1, 1}, {3, 3}}, 3, (int32_t[]){xab, x}, 2);
    /* any byte of the token in a span: text (the span's start, middle or end; wholly) */
    expect_masked(l.t, "xabx", (ks_span[]){{0, 1}}, 1, (int32_t[]){x, ab, x}, 3);
    expect_masked(l.t, "xabx", (ks_span[]){{1, 2}}, 1, (int32_t[]){x, ab, x}, 3);
    expect_masked(l.t, "xabx", (ks_span[]){{2, 3}}, 1, (int32_t[]){x, ab, x}, 3);
    expect_masked(l.t, "xabx", (ks_span[]){{0, 4}}, 1, (int32_t[]){x, ab, x}, 3);
    /* a token built across markup and client text is text ("<" markup, "s>" client) */
    expect_masked(l.t, "<s>", (ks_span[]){{1, 3}}, 1, (int32_t[]){lt, s, gt}, 3);
    /* one forbidden occurrence, one allowed: each decided on its own */
    expect_masked(l.t, "xabxab", (ks_span[]){{0, 2}}, 1, (int32_t[]){x, ab, xab}, 3);
    expect_masked(l.t, "xabxab", (ks_span[]){{3, 6}}, 1, (int32_t[]){xab, x, ab}, 3);
    /* a forbidden control token hides nothing: the shorter control token inside it is
     * matched where it is outside the spans */
    expect_masked(l.t, "[<s>]", (ks_span[]){{0, 1}}, 1, (int32_t[]){lb, eos, rb}, 3);
    expect_masked(l.t, "[<s>]", (ks_span[]){{1, 2}}, 1, (int32_t[]){lb, lt, s, gt, rb}, 5);
    expect_masked(l.t, "[<s>]", (ks_span[]){{5, 5}}, 1, (int32_t[]){sq}, 1);
    /* user-defined tokens match in spans and across their edges, as without spans */
    expect_masked(l.t, "abcd", (ks_span[]){{0, 4}}, 1, (int32_t[]){abcd}, 1);
    expect_masked(l.t, "xabcd", (ks_span[]){{2, 3}}, 1, (int32_t[]){x, abcd}, 2);
    /* text around a kept token and text in spans are the same fragments as before */
    expect_masked(l.t, "cdxabcd", (ks_span[]){{0, 2}, {5, 7}}, 2, (int32_t[]){c, d, x, abcd}, 4);
    /* without KS_TOKENIZE_SPECIAL spans change nothing */
    int32_t *ids = NULL;
    size_t n = tokenize_masked(l.t, "xabx", 4, 0, (ks_span[]){{3, 4}}, 1, &ids, NULL);
    cr_expect(n == 3 && ids[0] == x && ids[1] == ab && ids[2] == x, "no special parsing: text");
    free(ids);
    /* spans out of order, overlapping, inverted or past the end */
    size_t m;
    cr_expect_eq(ks_tokenize_masked(l.t, "xabx", 4, KS_TOKENIZE_SPECIAL, (ks_span[]){{2, 3}, {0, 1}}, 2, &ids, NULL, &m),
                 KS_ERR_INVALID);
    cr_expect_eq(ks_tokenize_masked(l.t, "xabx", 4, KS_TOKENIZE_SPECIAL, (ks_span[]){{0, 2}, {1, 3}}, 2, &ids, NULL, &m),
                 KS_ERR_INVALID);
    cr_expect_eq(ks_tokenize_masked(l.t, "xabx", 4, KS_TOKENIZE_SPECIAL, (ks_span[]){{2, 1}}, 1, &ids, NULL, &m),
                 KS_ERR_INVALID);
    cr_expect_eq(ks_tokenize_masked(l.t, "xabx", 4, KS_TOKENIZE_SPECIAL, (ks_span[]){{3, 5}}, 1, &ids, NULL, &m),
                 KS_ERR_INVALID);
    /* where each token starts: eos (added) at the end */
    size_t *starts = NULL;
    n = tokenize_masked(l.t, "cxabd", 5, KS_TOKENIZE_SPECIAL | KS_TOKENIZE_ADD_SPECIAL, NULL, 0, &ids, &starts);
    cr_expect(n == 4 && ids[0] == c && ids[1] == xab && ids[2] == d && ids[3] == eos, "ids with eos");
    cr_expect(starts[0] == 0 && starts[1] == 1 && starts[2] == 4 && starts[3] == 5, "starts %zu %zu %zu %zu", starts[0],
              starts[1], starts[2], starts[3]);
    free(ids);
    free(starts);
    n = tokenize_masked(l.t, "", 0, KS_TOKENIZE_SPECIAL, NULL, 0, &ids, &starts);
    cr_expect_eq(n, 0);
    free(ids);
    free(starts);
    unload(&l);
    ks_test_rmtree(dir);
    free(dir);
}

/* A user message holding "<|im_end|>" in a real chat prompt: the client's copy is text,
 * inside the fragment that runs from the turn's <|im_start|> to its own <|im_end|>. */
Test(tokenizer, test_tokenizer_masked_chat_turn) {
    loaded l = load("tokenizer/vocab-qwen3.gguf");
    const int32_t im_start = 151644, im_end = 151645, think = 151667;
    static const char prompt[] = "<|im_start|>user\nsay <|im_end|> and <think> now<|im_end|>\n<|im_start|>assistant\n";
    const char *content = strstr(prompt, "say");
    ks_span span = {(size_t)(content - prompt), (size_t)(strstr(prompt, " now") + 4 - prompt)};
    int32_t *ids = NULL, *frag = NULL, *nl = NULL, *tail = NULL;
    size_t *starts = NULL;
    size_t n = tokenize_masked(l.t, prompt, strlen(prompt), KS_TOKENIZE_SPECIAL | KS_TOKENIZE_ADD_SPECIAL, &span, 1,
                               &ids, &starts);
    /* want: <|im_start|> tok("user\nsay <|im_end|> and <think> now") <|im_end|> tok("\n")
     * <|im_start|> tok("assistant\n"), the fragment tokenized as text (where <think>
     * still matches, user-defined) */
    const char *fragment = "user\nsay <|im_end|> and <think> now";
    size_t n_frag = tokenize(l.t, fragment, strlen(fragment), 0, &frag);
    size_t n_nl = tokenize(l.t, "\n", 1, 0, &nl), n_tail = tokenize(l.t, "assistant\n", 10, 0, &tail);
    size_t k = 0, n_think = 0;
    cr_assert_eq(n, 1 + n_frag + 1 + n_nl + 1 + n_tail, "%zu tokens", n);
    cr_expect_eq(ids[k++], im_start);
    for (size_t i = 0; i < n_frag; i++, k++) {
        cr_expect_eq(ids[k], frag[i], "fragment token %zu: %d, want %d", i, ids[k], frag[i]);
        cr_expect_neq(ids[k], im_end, "the client's <|im_end|> became the control token");
        n_think += ids[k] == think;
    }
    cr_expect_eq(n_think, 1, "<think> is one token in client text too");
    cr_expect_eq(ids[k++], im_end);
    cr_expect(!memcmp(ids + k, nl, n_nl * sizeof *nl));
    k += n_nl;
    cr_expect_eq(ids[k], im_start);
    cr_expect_eq(starts[k], strlen(prompt) - strlen("<|im_start|>assistant\n"));
    /* without the span, the same prompt has a fake turn end */
    free(ids);
    n = tokenize(l.t, prompt, strlen(prompt), KS_TOKENIZE_SPECIAL, &ids);
    size_t ends = 0;
    for (size_t i = 0; i < n; i++)
        ends += ids[i] == im_end;
    cr_expect_eq(ends, 2, "unmasked: %zu <|im_end|> tokens", ends);
    free(ids);
    free(starts);
    free(frag);
    free(nl);
    free(tail);
    unload(&l);
}

/* The special tokens of a vocabulary in llama.cpp's matching order, for the reference. */
typedef struct ref_special {
    const char *text;
    size_t len;
    int32_t id;
    bool control;
} ref_special;

static int cmp_ref_special(const void *a, const void *b) {
    const ref_special *x = a, *y = b;
    if (x->len != y->len)
        return x->len > y->len ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static size_t ref_specials(const ks_vocab *v, ref_special **out) {
    size_t n = 0;
    *out = malloc((size_t)ks_vocab_n_tokens(v) * sizeof **out);
    for (int32_t id = 0; id < ks_vocab_n_tokens(v); id++) {
        ks_token_type ty = ks_vocab_type(v, id);
        ks_gguf_str s = ks_vocab_text(v, id);
        if ((ty == KS_TOKEN_CONTROL || ty == KS_TOKEN_USER_DEFINED || ty == KS_TOKEN_UNKNOWN) && s.len > 0)
            (*out)[n++] = (ref_special){s.ptr, (size_t)s.len, id, ty != KS_TOKEN_USER_DEFINED};
    }
    qsort(*out, n, sizeof **out, cmp_ref_special);
    return n;
}

static bool overlaps_span(const ks_span *spans, size_t n, size_t a, size_t b) {
    for (size_t i = 0; i < n; i++)
        if (spans[i].start < spans[i].end && spans[i].start < b && a < spans[i].end)
            return true;
    return false;
}

typedef struct ref_frag {
    size_t start, end;
    int32_t id; /* -1: raw text */
} ref_frag;

/* llama.cpp's partition written the way llama.cpp writes it (tokenizer_st_partition:
 * for each special token in order, split every raw fragment at its leftmost
 * occurrences), with a control token's occurrence that overlaps a span skipped; then
 * each raw fragment tokenized on its own as plain text. Returns the ids (malloc'd). */
static size_t ref_tokenize(const ks_tokenizer *t, const ref_special *sp, size_t n_sp, const char *text, size_t len,
                           const ks_span *spans, size_t n_spans, int32_t **out) {
    size_t cap = len + 2, n = 1;
    ref_frag *frags = malloc(cap * sizeof *frags), *next = malloc(cap * sizeof *next);
    frags[0] = (ref_frag){0, len, -1};
    for (size_t k = 0; k < n_sp; k++) {
        size_t m = 0;
        for (size_t f = 0; f < n; f++) {
            if (frags[f].id >= 0) {
                next[m++] = frags[f];
                continue;
            }
            size_t off = frags[f].start, end = frags[f].end;
            for (size_t at = off; at + sp[k].len <= end; at++) {
                if (memcmp(text + at, sp[k].text, sp[k].len) ||
                    (sp[k].control && overlaps_span(spans, n_spans, at, at + sp[k].len)))
                    continue;
                if (at > off)
                    next[m++] = (ref_frag){off, at, -1};
                next[m++] = (ref_frag){at, at + sp[k].len, sp[k].id};
                off = at + sp[k].len;
                at = off - 1;
            }
            if (off < end)
                next[m++] = (ref_frag){off, end, -1};
        }
        ref_frag *tmp = frags;
        frags = next;
        next = tmp;
        n = m;
    }
    int32_t *ids = malloc((len + 1) * sizeof *ids);
    size_t n_ids = 0;
    for (size_t f = 0; f < n; f++) {
        if (frags[f].id >= 0) {
            ids[n_ids++] = frags[f].id;
            continue;
        }
        int32_t *part = NULL;
        size_t k = tokenize(t, text + frags[f].start, frags[f].end - frags[f].start, 0, &part);
        memcpy(ids + n_ids, part, k * sizeof *part);
        n_ids += k;
        free(part);
    }
    free(frags);
    free(next);
    *out = ids;
    return n_ids;
}

/* Span edges where they matter: on and next to the edges of special token texts. */
static size_t random_spans(ks_rng *r, const char *text, size_t len, ks_span *spans, size_t max) {
    size_t cuts[16], n_cuts = 2 * (below(r, (uint32_t)max) + 1);
    for (size_t i = 0; i < n_cuts; i++) {
        size_t at = below(r, (uint32_t)len + 1);
        if (below(r, 3)) { /* near a '<' or a '>' */
            const char *p = memchr(text + at, below(r, 2) ? '<' : '>', len - at);
            if (p)
                at = (size_t)(p - text) + below(r, 3);
        }
        cuts[i] = KS_MIN(at, len);
    }
    for (size_t i = 1; i < n_cuts; i++) /* insertion sort: a handful of cuts */
        for (size_t j = i; j > 0 && cuts[j - 1] > cuts[j]; j--) {
            size_t tmp = cuts[j];
            cuts[j] = cuts[j - 1];
            cuts[j - 1] = tmp;
        }
    for (size_t i = 0; i < n_cuts / 2; i++)
        spans[i] = (ks_span){cuts[2 * i], cuts[2 * i + 1]};
    return n_cuts / 2;
}

/* Random text full of special token texts and random spans around them: the masked
 * tokenizer equals the reference partition; with no control token's text touching a
 * span it equals plain tokenization; and each token spells the bytes from its start to
 * the next one's. */
Test(tokenizer, test_tokenizer_masked_matches_reference) {
    loaded l = load("tokenizer/vocab-qwen3.gguf");
    const ks_vocab *v = ks_tokenizer_vocab(l.t);
    ref_special *sp = NULL;
    size_t n_sp = ref_specials(v, &sp);
    ks_rng r;
    ks_rng_seed(&r, 11);
    char *text = malloc(1024);
    size_t same = 0, differ = 0;
    for (int it = 0; it < 1500; it++) {
        size_t len = random_text(&r, text, 32 + below(&r, 990), it % 3 == 0);
        ks_span spans[8];
        size_t n_spans = random_spans(&r, text, len, spans, 8);
        int32_t *ids = NULL, *want = NULL, *plain = NULL;
        size_t *starts = NULL;
        size_t n = tokenize_masked(l.t, text, len, KS_TOKENIZE_SPECIAL, spans, n_spans, &ids, &starts);
        size_t n_want = ref_tokenize(l.t, sp, n_sp, text, len, spans, n_spans, &want);
        char a[4096], b[4096];
        if (n != n_want || memcmp(ids, want, n * sizeof *ids)) {
            print_ids(a, sizeof a, ids, n);
            print_ids(b, sizeof b, want, n_want);
            cr_assert_fail("iteration %d: masked tokenization differs from the reference\n  got:  %s\n  want: %s", it,
                           a, b);
        }
        /* does any control token's text touch a span? */
        bool touched = false;
        for (size_t k = 0; k < n_sp && !touched; k++)
            for (const char *p = text; sp[k].control && !touched && (p = memmem(p, len - (size_t)(p - text), sp[k].text,
                                                                                 sp[k].len));
                 p++)
                touched = overlaps_span(spans, n_spans, (size_t)(p - text), (size_t)(p - text) + sp[k].len);
        size_t n_plain = tokenize(l.t, text, len, KS_TOKENIZE_SPECIAL, &plain);
        bool equal = n_plain == n && !memcmp(plain, ids, n * sizeof *ids);
        cr_assert(touched || equal, "iteration %d: no control text in a span, yet not plain tokenization", it);
        same += !touched;
        differ += touched && !equal;
        for (size_t i = 0; i < n; i++) {
            char piece[64];
            size_t end = i + 1 < n ? starts[i + 1] : len, m = ks_vocab_decode(v, ids[i], true, piece, sizeof piece);
            cr_assert(end >= starts[i] && m == end - starts[i] && !memcmp(piece, text + starts[i], m),
                      "iteration %d: token %zu (%d) does not spell bytes %zu..%zu", it, i, ids[i], starts[i], end);
        }
        free(ids);
        free(want);
        free(plain);
        free(starts);
    }
    fprintf(stderr, "masked tokenizer: %zu texts with no control text in a span (plain ids), %zu where a span "
                    "turned control text into text\n", same, differ);
    cr_expect_gt(same, 100);
    cr_expect_gt(differ, 100);
    free(text);
    free(sp);
    unload(&l);
}

/* ---- the pre-tokenizer against its PCRE2 reference --------------------------------------- */

typedef struct spans {
    size_t n, ends[8192];
} spans;

static bool collect(void *ctx, size_t start, size_t end) {
    spans *s = ctx;
    (void)start;
    if (s->n < KS_ARRAY_LEN(s->ends))
        s->ends[s->n++] = end;
    return true;
}

/* Does PCRE2 put cp in the same class as unicode_data.c? */
static bool pcre2_agrees(pcre2_code *letter, pcre2_code *number, pcre2_match_data *md, uint32_t cp) {
    char s[4];
    size_t n = put_utf8(s, cp);
    bool l = pcre2_match(letter, (PCRE2_SPTR)s, n, 0, 0, md, NULL) >= 0;
    bool d = pcre2_match(number, (PCRE2_SPTR)s, n, 0, 0, md, NULL) >= 0;
    ks_unicode_class c = ks_unicode_class_of(cp);
    return l == (c == KS_UC_LETTER) && d == (c == KS_UC_NUMBER);
}

Test(tokenizer, test_tokenizer_pretok_matches_regex) {
    ks_unicode_init();
    int e;
    PCRE2_SIZE off;
    pcre2_code *letter = pcre2_compile((PCRE2_SPTR) "^\\p{L}$", PCRE2_ZERO_TERMINATED, PCRE2_UTF, &e, &off, NULL);
    pcre2_code *number = pcre2_compile((PCRE2_SPTR) "^\\p{N}$", PCRE2_ZERO_TERMINATED, PCRE2_UTF, &e, &off, NULL);
    pcre2_match_data *md = pcre2_match_data_create(4, NULL);
    ks_rng r;
    ks_rng_seed(&r, 11);
    char *text = malloc(4096);
    spans *a = malloc(sizeof *a), *b = malloc(sizeof *b);
    for (int kind = 0; kind < 2; kind++) {
        ks_pretok_regex *re = NULL;
        ks_err err;
        ks_err_clear(&err);
        cr_assert_eq(ks_pretok_regex_create(&re, (ks_pretok_kind)kind, &err), KS_OK, "%s", err.msg);
        for (int it = 0; it < 300; it++) {
            size_t len = random_text(&r, text, 32 + below(&r, 2000), false);
            /* drop characters whose class PCRE2's older tables see differently */
            size_t k = 0;
            for (size_t i = 0; i < len;) {
                size_t cl = ks_utf8_char_len((const unsigned char *)text + i, len - i);
                uint32_t cp;
                int bad;
                ks_utf8_decode((const unsigned char *)text + i, len - i, &cp, &bad);
                if (pcre2_agrees(letter, number, md, cp))
                    memmove(text + k, text + i, cl), k += cl;
                i += cl;
            }
            len = k;
            a->n = b->n = 0;
            for (size_t pos = 0; pos < len;) {
                pos = ks_pretok_next((ks_pretok_kind)kind, text, len, pos);
                collect(a, 0, pos);
            }
            cr_assert_eq(ks_pretok_regex_split(re, text, len, collect, b), KS_OK);
            size_t i = 0;
            while (i < a->n && i < b->n && a->ends[i] == b->ends[i])
                i++;
            cr_assert(i == a->n && i == b->n, "%s, iteration %d: word %zu ends at %zu here, %zu in the regex; near '%.20s'",
                      ks_pretok_kind_name((ks_pretok_kind)kind), it, i, i < a->n ? a->ends[i] : 0,
                      i < b->n ? b->ends[i] : 0, text + (i ? a->ends[i - 1] : 0));
        }
        ks_pretok_regex_destroy(re);
    }
    free(a);
    free(b);
    free(text);
    pcre2_match_data_free(md);
    pcre2_code_free(letter);
    pcre2_code_free(number);
}

Test(tokenizer, test_tokenizer_regex_same_ids) {
    loaded l = load("tokenizer/vocab-qwen3.gguf");
    ks_tokenizer *t = l.t;
    ks_rng r;
    ks_rng_seed(&r, 3);
    char *text = malloc(4096);
    for (int it = 0; it < 100; it++) {
        size_t len = random_text(&r, text, 64 + below(&r, 4000), false);
        int32_t *x = NULL, *y = NULL;
        size_t nx = tokenize(t, text, len, KS_TOKENIZE_SPECIAL, &x);
        ks_tokenizer_use_cache(t, it % 2);
        cr_assert_eq(ks_tokenizer_use_regex(t, true, NULL), KS_OK);
        size_t ny = tokenize(t, text, len, KS_TOKENIZE_SPECIAL, &y);
        ks_tokenizer_use_regex(t, false, NULL);
        ks_tokenizer_use_cache(t, true);
        cr_assert(nx == ny && !memcmp(x, y, nx * sizeof *x), "iteration %d: %zu vs %zu ids", it, nx, ny);
        free(x);
        free(y);
    }
    /* the regex path refuses what is not UTF-8 */
    cr_assert_eq(ks_tokenizer_use_regex(t, true, NULL), KS_OK);
    size_t n;
    int32_t out[8];
    cr_expect_eq(ks_tokenize(t, "a\xff", 2, 0, out, 8, &n), KS_ERR_INVALID);
    free(text);
    unload(&l);
}

/* Classes the tokenizer relies on, spot-checked against llama.cpp's. */
Test(tokenizer, test_tokenizer_unicode_classes) {
    ks_unicode_init();
    cr_expect_eq(ks_unicode_class_of('a'), KS_UC_LETTER);
    cr_expect_eq(ks_unicode_class_of('7'), KS_UC_NUMBER);
    cr_expect_eq(ks_unicode_class_of(0x85), KS_UC_SPACE);    /* NEL: White_Space, category Cc */
    cr_expect_eq(ks_unicode_class_of(0xa0), KS_UC_SPACE);
    cr_expect_eq(ks_unicode_class_of(0x200b), KS_UC_OTHER);  /* zero width space is Cf */
    cr_expect_eq(ks_unicode_class_of(0x1c), KS_UC_OTHER);    /* not White_Space */
    cr_expect_eq(ks_unicode_class_of(0xb2), KS_UC_NUMBER);   /* superscript two, No */
    cr_expect_eq(ks_unicode_class_of(0x4e00), KS_UC_LETTER);
    cr_expect_eq(ks_unicode_class_of(0x2ebf0), KS_UC_LETTER); /* CJK Ext. I, Unicode 15.1 */
    cr_expect_eq(ks_unicode_class_of(0x300), KS_UC_OTHER);   /* combining mark */
    cr_expect_eq(ks_unicode_class_of(0x110000), KS_UC_OTHER);
    uint32_t cp;
    int bad;
    cr_expect_eq(ks_utf8_decode((const unsigned char *)"\xc0\x80", 2, &cp, &bad), 2); /* overlong, as llama.cpp */
    cr_expect(cp == 0 && !bad);
    cr_expect_eq(ks_utf8_decode((const unsigned char *)"\xe2\x82", 2, &cp, &bad), 1);
    cr_expect(bad);
    cr_expect_eq(ks_utf8_char_len((const unsigned char *)"\xc0\x80", 2), 0);
    cr_expect_eq(ks_utf8_char_len((const unsigned char *)"\xed\xa0\x80", 3), 0);
    cr_expect_eq(ks_utf8_char_len((const unsigned char *)"\xf4\x8f\xbf\xbf", 4), 4);
}

/* ---- concurrency ------------------------------------------------------------------------- */

typedef struct job {
    const ks_tokenizer *t;
    const char *text;
    size_t len, n;
    int32_t *ids;
} job;

static void *tokenize_job(void *arg) {
    job *j = arg;
    for (int i = 0; i < 20; i++) {
        free(j->ids);
        j->ids = NULL;
        if (ks_tokenize_alloc(j->t, j->text, j->len, KS_TOKENIZE_SPECIAL, &j->ids, &j->n))
            return NULL;
    }
    return arg;
}

Test(tokenizer, test_tokenizer_threads) {
    loaded l = load("tokenizer/vocab-qwen3.gguf");
    ks_rng r;
    ks_rng_seed(&r, 5);
    char *text = malloc(8192);
    size_t len = random_text(&r, text, 8192, true);
    job jobs[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        jobs[i] = (job){l.t, text, len, 0, NULL};
        pthread_create(&th[i], NULL, tokenize_job, &jobs[i]);
    }
    for (int i = 0; i < 3; i++) {
        void *res;
        pthread_join(th[i], &res);
        cr_expect_not_null(res);
    }
    for (int i = 1; i < 3; i++)
        cr_expect(jobs[i].n == jobs[0].n && !memcmp(jobs[i].ids, jobs[0].ids, jobs[0].n * sizeof(int32_t)));
    for (int i = 0; i < 3; i++)
        free(jobs[i].ids);
    free(text);
    unload(&l);
}

/* ---- the incremental detokenizer --------------------------------------------------------- */

/* Checks one way of feeding s: the outputs concatenate to s, at most 3 bytes are held,
 * and each output ends where a well-formed character of s ends (or inside bytes that
 * are not UTF-8). */
static void check_feed(ks_detok *d, const unsigned char *s, size_t n, const size_t *cuts, size_t n_cuts,
                       const uint8_t *boundary) {
    unsigned char out[64];
    size_t got = 0, from = 0;
    for (size_t k = 0; k <= n_cuts; k++) {
        size_t to = k < n_cuts ? cuts[k] : n;
        const char *text;
        size_t len;
        cr_assert_eq(ks_detok_push_bytes(d, s + from, to - from, &text, &len), KS_OK);
        cr_assert(got + len <= sizeof out);
        memcpy(out + got, text, len);
        got += len;
        cr_assert(ks_detok_held(d) <= 3 && got + ks_detok_held(d) == to, "held %zu after %zu of %zu bytes",
                  ks_detok_held(d), to, n);
        cr_assert(boundary[got], "output ends inside a character at byte %zu", got);
        from = to;
    }
    const char *text;
    size_t len;
    ks_detok_flush(d, &text, &len);
    memcpy(out + got, text, len);
    got += len;
    cr_assert(got == n && !memcmp(out, s, n), "outputs do not add up to the input");
}

Test(tokenizer, test_tokenizer_detok_every_split) {
    static const char *const cases[] = {
        "a\xc3\xa9z",                   /* é */
        "\xe4\xbd\xa0\xe5\xa5\xbd",     /* 你好 */
        "\xf0\x9f\xa6\x99!\xf0\x9f\x9a\x80", /* 🦙!🚀 */
        "x\xe2\x82y",                   /* E2 82 cut short by y */
        "\x80\x80\xbf",                 /* stray continuation bytes */
        "\xc0\xaf\xc1\xbf",             /* overlong forms */
        "\xed\xa0\x80",                 /* a surrogate */
        "\xf4\x90\x80\x80",             /* past U+10FFFF */
        "\xf0\x9f\xa6",                 /* ends inside a character */
        "\xff\xfe\xf5" "ab",
        "\xe0\x9f\x80",                 /* E0 then a second byte below A0 */
        "\xe2\x82\xac\xe2\x82\xac",     /* €€ */
    };
    ks_detok d;
    memset(&d, 0, sizeof d);
    loaded l = load("tokenizer/vocab-qwen3.gguf");
    cr_assert_eq(ks_detok_init(&d, ks_tokenizer_vocab(l.t), false), KS_OK);
    for (size_t c = 0; c < KS_ARRAY_LEN(cases); c++) {
        const unsigned char *s = (const unsigned char *)cases[c];
        size_t n = strlen(cases[c]);
        /* where an output may end: after a well-formed character, or after any byte
         * that is not part of one */
        uint8_t boundary[32] = {1};
        for (size_t i = 0; i < n;) {
            size_t cl = ks_utf8_char_len(s + i, n - i);
            i += cl ? cl : 1;
            boundary[i] = 1;
        }
        /* every split into up to three parts, empty parts included */
        for (size_t i = 0; i <= n; i++)
            for (size_t j = i; j <= n; j++) {
                size_t cuts[2] = {i, j};
                check_feed(&d, s, n, cuts, 2, boundary);
            }
        /* one byte at a time */
        size_t cuts[32];
        for (size_t i = 0; i < n; i++)
            cuts[i] = i + 1;
        check_feed(&d, s, n, cuts, n, boundary);
    }
    ks_detok_deinit(&d);
    unload(&l);
}

Test(tokenizer, test_tokenizer_detok_tokens) {
    loaded l = load("tokenizer/vocab-qwen3.gguf");
    const char *text = "Emoji 😶‍🌫️ and 👨‍👩‍👧‍👦 flags 🇺🇸, CJK 我想在apple工作, <|im_end|> end";
    int32_t *ids = NULL;
    size_t n = tokenize(l.t, text, strlen(text), KS_TOKENIZE_SPECIAL, &ids);
    for (int special = 0; special < 2; special++) {
        ks_detok d;
        cr_assert_eq(ks_detok_init(&d, ks_tokenizer_vocab(l.t), special), KS_OK);
        char out[512];
        size_t got = 0;
        for (size_t i = 0; i < n; i++) {
            const char *piece;
            size_t len;
            ks_detok_push(&d, ids[i], &piece, &len);
            for (size_t k = 0; k < len;) { /* every output is whole UTF-8 */
                size_t cl = ks_utf8_char_len((const unsigned char *)piece + k, len - k);
                cr_assert(cl > 0, "token %zu: output is not whole UTF-8", i);
                k += cl;
            }
            memcpy(out + got, piece, len);
            got += len;
        }
        const char *rest;
        size_t len;
        ks_detok_flush(&d, &rest, &len);
        cr_expect_eq(len, 0);
        out[got] = 0;
        const char *want = special ? text : "Emoji 😶‍🌫️ and 👨‍👩‍👧‍👦 flags 🇺🇸, CJK 我想在apple工作,  end";
        cr_expect_str_eq(out, want);
        ks_detok_deinit(&d);
    }
    free(ids);
    unload(&l);
}
