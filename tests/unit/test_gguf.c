/* test_gguf.c — the GGUF reader and writer: round trips of every value type (nested
 * arrays included), tensor directory and alignment, typed getters, the malformed corpus,
 * and every shared fixture model. */
#include "gguf/gguf.h"
#include "gguf/gguf_writer.h"
#include "tensor/types.h"
#include "test_support.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *tmpdir;
static void setup(void) { tmpdir = ks_test_mkdtemp(); }
static void teardown(void) {
    ks_test_rmtree(tmpdir);
    free(tmpdir);
}

static const char *tmp_path(const char *name) {
    static char buf[1024];
    snprintf(buf, sizeof buf, "%s/%s", tmpdir, name);
    return buf;
}

static ks_gguf *open_ok(const char *path) {
    ks_err err;
    ks_err_clear(&err);
    ks_gguf *g = NULL;
    ks_status s = ks_gguf_open(&g, path, &err);
    cr_assert_eq(s, KS_OK, "open %s: %s", path, err.msg);
    return g;
}

TestSuite(gguf, .init = setup, .fini = teardown);

Test(gguf, test_gguf_roundtrip_every_value_type) {
    ks_gguf_writer *w = ks_gguf_writer_create();
    ks_gguf_writer_set_u8(w, "v.u8", 200);
    ks_gguf_writer_set_i8(w, "v.i8", -100);
    ks_gguf_writer_set_u16(w, "v.u16", 60000);
    ks_gguf_writer_set_i16(w, "v.i16", -30000);
    ks_gguf_writer_set_u32(w, "v.u32", 4000000000u);
    ks_gguf_writer_set_i32(w, "v.i32", -2000000000);
    ks_gguf_writer_set_u64(w, "v.u64", 1ull << 60);
    ks_gguf_writer_set_i64(w, "v.i64", -(1ll << 60));
    ks_gguf_writer_set_f32(w, "v.f32", 0.1f);
    ks_gguf_writer_set_f64(w, "v.f64", 0.1);
    ks_gguf_writer_set_bool(w, "v.bool", true);
    ks_gguf_writer_set_str(w, "v.str", "hello, 世界");
    int32_t ints[5] = {1, -2, 3, -4, 5};
    ks_gguf_writer_set_arr(w, "v.arr_i32", KS_GGUF_INT32, ints, 5);
    const char *strs[3] = {"a", "", "ccc"};
    ks_gguf_writer_set_arr_str(w, "v.arr_str", strs, 3);
    ks_gguf_writer_set_u32(w, "v.replaced", 1);
    ks_gguf_writer_set_u32(w, "v.replaced", 2);
    cr_assert_eq(ks_gguf_writer_write(w, tmp_path("a.gguf"), NULL), KS_OK);
    ks_gguf_writer_destroy(w);

    ks_gguf *g = open_ok(tmp_path("a.gguf"));
    cr_assert_eq(ks_gguf_version(g), 3);
    cr_assert_eq(ks_gguf_n_kv(g), 15);
    uint64_t u = 0;
    int64_t i = 0;
    float f = 0;
    bool b = false;
    ks_gguf_str s;
    cr_assert_eq(ks_gguf_get_u64(g, "v.u8", &u, NULL), KS_OK);
    cr_assert_eq(u, 200);
    cr_assert_eq(ks_gguf_get_i64(g, "v.i8", &i, NULL), KS_OK);
    cr_assert_eq(i, -100);
    cr_assert_eq(ks_gguf_get_u64(g, "v.u16", &u, NULL), KS_OK);
    cr_assert_eq(u, 60000);
    cr_assert_eq(ks_gguf_get_i64(g, "v.i16", &i, NULL), KS_OK);
    cr_assert_eq(i, -30000);
    uint32_t u32 = 0;
    cr_assert_eq(ks_gguf_get_u32(g, "v.u32", &u32, NULL), KS_OK);
    cr_assert_eq(u32, 4000000000u);
    cr_assert_eq(ks_gguf_get_i64(g, "v.i32", &i, NULL), KS_OK);
    cr_assert_eq(i, -2000000000);
    cr_assert_eq(ks_gguf_get_u64(g, "v.u64", &u, NULL), KS_OK);
    cr_assert_eq(u, 1ull << 60);
    cr_assert_eq(ks_gguf_get_i64(g, "v.i64", &i, NULL), KS_OK);
    cr_assert_eq(i, -(1ll << 60));
    cr_assert_eq(ks_gguf_get_f32(g, "v.f32", &f, NULL), KS_OK);
    cr_assert_eq(f, 0.1f);
    cr_assert_eq(ks_gguf_find(g, "v.f64")->value.v.f64, 0.1);
    cr_assert_eq(ks_gguf_get_bool(g, "v.bool", &b, NULL), KS_OK);
    cr_assert(b);
    cr_assert_eq(ks_gguf_get_str(g, "v.str", &s, NULL), KS_OK);
    cr_assert(ks_gguf_str_eq(s, "hello, 世界"));
    const ks_gguf_value *arr = NULL;
    cr_assert_eq(ks_gguf_get_arr(g, "v.arr_i32", KS_GGUF_INT32, &arr, NULL), KS_OK);
    cr_assert_eq(arr->v.arr.n, 5);
    for (int k = 0; k < 5; k++)
        cr_assert_eq(ks_gguf_arr_get_i64(arr, (uint64_t)k), ints[k]);
    cr_assert_eq(ks_gguf_get_arr(g, "v.arr_str", KS_GGUF_STRING, &arr, NULL), KS_OK);
    cr_assert_eq(arr->v.arr.n, 3);
    for (int k = 0; k < 3; k++)
        cr_assert(ks_gguf_str_eq(arr->v.arr.items[k].v.str, strs[k]));
    cr_assert_eq(ks_gguf_get_u32(g, "v.replaced", &u32, NULL), KS_OK);
    cr_assert_eq(u32, 2);
    ks_gguf_close(g);
}

Test(gguf, test_gguf_getters_explain_missing_and_mistyped_keys) {
    ks_gguf_writer *w = ks_gguf_writer_create();
    ks_gguf_writer_set_str(w, "general.architecture", "qwen3");
    ks_gguf_writer_set_i32(w, "neg", -5);
    ks_gguf_writer_set_u64(w, "big", 1ull << 40);
    cr_assert_eq(ks_gguf_writer_write(w, tmp_path("b.gguf"), NULL), KS_OK);
    ks_gguf_writer_destroy(w);
    ks_gguf *g = open_ok(tmp_path("b.gguf"));
    ks_err err;
    ks_err_clear(&err);
    uint32_t u = 77;
    cr_assert_eq(ks_gguf_get_u32(g, "qwen3.block_count", &u, &err), KS_ERR_INVALID);
    cr_assert(strstr(err.msg, "missing metadata key 'qwen3.block_count'"), "%s", err.msg);
    cr_assert_eq(u, 77, "out-parameter untouched on failure");
    ks_err_clear(&err);
    cr_assert_eq(ks_gguf_get_u32(g, "general.architecture", &u, &err), KS_ERR_INVALID);
    cr_assert(strstr(err.msg, "is string"), "%s", err.msg);
    ks_err_clear(&err);
    cr_assert_eq(ks_gguf_get_u32(g, "neg", &u, &err), KS_ERR_INVALID);
    ks_err_clear(&err);
    cr_assert_eq(ks_gguf_get_u32(g, "big", &u, &err), KS_ERR_INVALID);
    cr_assert(strstr(err.msg, "does not fit"), "%s", err.msg);
    ks_gguf_close(g);
}

Test(gguf, test_gguf_nested_arrays_copy_through_writer) {
    /* The corpus' all-value-types seed holds an array of arrays; copying every value of
     * it through the writer must reproduce the same metadata. */
    ks_gguf *src = open_ok(KS_SOURCE_DIR "/tests/fuzz/corpus/gguf/ok-all-value-types.gguf");
    ks_gguf_writer *w = ks_gguf_writer_create();
    for (uint64_t i = 0; i < ks_gguf_n_kv(src); i++) {
        const ks_gguf_kv *kv = ks_gguf_kv_at(src, i);
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)kv->key.len, kv->key.ptr);
        ks_gguf_writer_set_value(w, key, &kv->value);
    }
    cr_assert_eq(ks_gguf_writer_write(w, tmp_path("c.gguf"), NULL), KS_OK);
    ks_gguf_writer_destroy(w);
    ks_gguf *g = open_ok(tmp_path("c.gguf"));
    cr_assert_eq(ks_gguf_n_kv(g), ks_gguf_n_kv(src));
    const ks_gguf_value *aa = NULL;
    cr_assert_eq(ks_gguf_get_arr(g, "t.arr_arr", KS_GGUF_ARRAY, &aa, NULL), KS_OK);
    cr_assert_eq(aa->v.arr.n, 2);
    cr_assert_eq(aa->v.arr.items[0].v.arr.elem_type, KS_GGUF_UINT8);
    cr_assert_eq(ks_gguf_arr_get_i64(&aa->v.arr.items[0], 1), 2);
    cr_assert(ks_gguf_str_eq(aa->v.arr.items[1].v.arr.items[0].v.str, "x"));
    ks_gguf_close(g);
    ks_gguf_close(src);
}

Test(gguf, test_gguf_tensors_are_aligned_views) {
    float a[64];
    for (int i = 0; i < 64; i++)
        a[i] = (float)i;
    uint8_t q[34 * 2];
    memset(q, 7, sizeof q);
    ks_gguf_writer *w = ks_gguf_writer_create();
    ks_gguf_writer_set_alignment(w, 64);
    int64_t ne_a[2] = {16, 4}, ne_q[2] = {32, 2};
    ks_gguf_writer_add_tensor(w, "a", KS_TYPE_F32, 2, ne_a, a);
    ks_gguf_writer_add_tensor(w, "q", KS_TYPE_Q8_0, 2, ne_q, q);
    cr_assert_eq(ks_gguf_writer_write(w, tmp_path("t.gguf"), NULL), KS_OK);
    ks_gguf_writer_destroy(w);
    ks_gguf *g = open_ok(tmp_path("t.gguf"));
    cr_assert_eq(ks_gguf_alignment(g), 64);
    cr_assert_eq(ks_gguf_n_tensors(g), 2);
    const ks_gguf_tensor *ta = ks_gguf_find_tensor(g, "a");
    const ks_gguf_tensor *tq = ks_gguf_find_tensor(g, "q");
    cr_assert(ta && tq);
    cr_assert_eq(ta->size, sizeof a);
    cr_assert_eq(tq->size, sizeof q);
    cr_assert_eq(ta->ne[0], 16);
    cr_assert_eq(ta->ne[1], 4);
    cr_assert_eq(ta->ne[2], 1);
    cr_assert_eq(tq->offset % 64, 0);
    cr_assert_eq(((uintptr_t)ta->data - (uintptr_t)ks_gguf_tensor_at(g, 0)->data) % 64, 0);
    cr_assert_eq(memcmp(ta->data, a, sizeof a), 0);
    cr_assert_eq(memcmp(tq->data, q, sizeof q), 0);
    cr_assert_null(ks_gguf_find_tensor(g, "missing"));
    ks_gguf_close(g);
}

Test(gguf, test_gguf_streaming_writer_checks_order_and_sizes) {
    ks_gguf_writer *w = ks_gguf_writer_create();
    int64_t ne[1] = {32};
    ks_gguf_writer_add_tensor(w, "x", KS_TYPE_F32, 1, ne, NULL);
    ks_gguf_writer_add_tensor(w, "y", KS_TYPE_F16, 1, ne, NULL);
    cr_assert_eq(ks_gguf_writer_begin(w, tmp_path("s.gguf"), NULL), KS_OK);
    float x[32] = {0};
    uint16_t y[32] = {0};
    ks_err err;
    ks_err_clear(&err);
    cr_assert_eq(ks_gguf_writer_write_tensor(w, 1, y, sizeof y, &err), KS_ERR_INVALID);
    ks_err_clear(&err);
    cr_assert_eq(ks_gguf_writer_write_tensor(w, 0, x, 12, &err), KS_ERR_INVALID);
    cr_assert_eq(ks_gguf_writer_write_tensor(w, 0, x, sizeof x, NULL), KS_OK);
    ks_err_clear(&err);
    cr_assert_eq(ks_gguf_writer_finish(w, &err), KS_ERR_INVALID, "finish before all tensors");
    ks_gguf_writer_destroy(w);
    FILE *f = fopen(tmp_path("s.gguf"), "rb");
    cr_assert_null(f, "no file appears unless the write completed");
    cr_assert_null(fopen(tmp_path("s.gguf.tmp"), "rb"), "the temporary file is removed");
}

Test(gguf, test_gguf_malformed_corpus_is_rejected_with_field_and_offset) {
    const char *dir = KS_SOURCE_DIR "/tests/fuzz/corpus/gguf";
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    int n_bad = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "bad-", 4) != 0)
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        ks_err err;
        ks_err_clear(&err);
        ks_gguf *g = NULL;
        ks_status s = ks_gguf_open(&g, path, &err);
        cr_expect_eq(s, KS_ERR_CORRUPT, "%s: status %d", e->d_name, s);
        cr_expect_null(g, "%s: out-parameter written on failure", e->d_name);
        cr_expect(strstr(err.msg, e->d_name) != NULL, "%s: message names the file: %s", e->d_name, err.msg);
        cr_expect(strstr(err.msg, "at offset ") != NULL, "%s: message names the offset: %s", e->d_name, err.msg);
        n_bad++;
    }
    closedir(d);
    cr_assert_gt(n_bad, 30);
}

Test(gguf, test_gguf_valid_corpus_seeds_open) {
    const char *dir = KS_SOURCE_DIR "/tests/fuzz/corpus/gguf";
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    int n_ok = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "ok-", 3) != 0)
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        ks_gguf_close(open_ok(path));
        n_ok++;
    }
    closedir(d);
    cr_assert_geq(n_ok, 5);
}

Test(gguf, test_gguf_truncation_at_every_byte_fails_cleanly) {
    /* Every prefix of a valid file either opens (never: data is required) or fails as
     * corrupt with a message. */
    size_t n = 0;
    uint8_t *buf = ks_test_read_file(KS_SOURCE_DIR "/tests/fuzz/corpus/gguf/ok-all-value-types.gguf", &n);
    cr_assert_not_null(buf);
    for (size_t len = 0; len < n; len++) {
        uint8_t *copy = malloc(len ? len : 1);
        memcpy(copy, buf, len);
        ks_err err;
        ks_err_clear(&err);
        ks_gguf *g = NULL;
        ks_status s = ks_gguf_open_memory(&g, copy, len, "prefix", &err);
        cr_assert_eq(s, KS_ERR_CORRUPT, "prefix of %zu bytes: status %d", len, s);
        cr_assert(err.msg[0]);
        free(copy);
    }
    free(buf);
}

Test(gguf, test_gguf_reads_every_fixture_model) {
    const char *names[] = {"f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q4_k_m",
                           "q5_k_m", "q6_k"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char rel[128];
        snprintf(rel, sizeof rel, "models/mini-qwen3-%s.gguf", names[i]);
        ks_gguf *g = open_ok(ks_test_fixture(rel));
        ks_gguf_str arch;
        cr_assert_eq(ks_gguf_get_str(g, "general.architecture", &arch, NULL), KS_OK);
        cr_assert(ks_gguf_str_eq(arch, "qwen3"));
        const ks_gguf_tensor *t = ks_gguf_find_tensor(g, "blk.2.ffn_down.weight");
        cr_assert_not_null(t, "%s", rel);
        cr_assert_eq(t->ne[0], 768);
        cr_assert_eq(t->ne[1], 256);
        const ks_gguf_value *tokens = NULL;
        cr_assert_eq(ks_gguf_get_arr(g, "tokenizer.ggml.tokens", KS_GGUF_STRING, &tokens, NULL), KS_OK);
        cr_assert_eq(tokens->v.arr.n, 4122);
        cr_assert(ks_gguf_str_eq(tokens->v.arr.items[4097].v.str, "<|im_start|>"));
        ks_gguf_close(g);
    }
}
