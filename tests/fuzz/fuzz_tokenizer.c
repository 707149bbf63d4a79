/* fuzz_tokenizer.c — libFuzzer target for the tokenizer on the real Qwen3 vocabulary.
 *
 * Input: one flags byte (bit 0: match control tokens, bit 1: add bos/eos), then the
 * text, any bytes. Properties checked, abort() on failure:
 *   - tokenizing succeeds and every id is in the vocabulary;
 *   - the ids decode back to exactly the text (bos/eos aside: Qwen3 adds none);
 *   - the incremental detokenizer, fed the ids one at a time, gives the same bytes,
 *     holding back at most 3 at any time.
 *
 * The vocabulary is the shared fixture vocab-qwen3.gguf (KS_FIXTURES_DIR at build time,
 * or $KS_TOKENIZER_VOCAB), loaded once. */
#include "gguf/gguf.h"
#include "tokenizer/detok.h"
#include "tokenizer/tokenizer.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef KS_FIXTURES_DIR
#define KS_FIXTURES_DIR "../shared/fixtures"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ks_gguf *vocab_file;
static ks_tokenizer *tok;

static void load_once(void) {
    if (tok)
        return;
    const char *path = getenv("KS_TOKENIZER_VOCAB");
    ks_err err;
    ks_err_clear(&err);
    if (ks_gguf_open(&vocab_file, path ? path : KS_FIXTURES_DIR "/tokenizer/vocab-qwen3.gguf", &err) ||
        ks_tokenizer_create(&tok, vocab_file, &err)) {
        fprintf(stderr, "fuzz_tokenizer: %s\n", err.msg);
        abort();
    }
}

/* Appends src to a growable buffer. */
static void append(char **buf, size_t *len, size_t *cap, const char *src, size_t n) {
    if (*len + n > *cap) {
        *cap = (*len + n) * 2 + 64;
        *buf = realloc(*buf, *cap);
        if (!*buf)
            abort();
    }
    if (n)
        memcpy(*buf + *len, src, n);
    *len += n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    load_once();
    if (size == 0)
        return 0;
    unsigned flags = (data[0] & 1 ? KS_TOKENIZE_SPECIAL : 0u) | (data[0] & 2 ? KS_TOKENIZE_ADD_SPECIAL : 0u);
    const char *text = (const char *)data + 1;
    size_t len = size - 1;

    int32_t *ids = NULL;
    size_t n = 0;
    if (ks_tokenize_alloc(tok, text, len, flags, &ids, &n))
        abort();
    const ks_vocab *v = ks_tokenizer_vocab(tok);
    char *whole = NULL, *streamed = NULL;
    size_t whole_len = 0, whole_cap = 0, streamed_len = 0, streamed_cap = 0;
    ks_detok d;
    if (ks_detok_init(&d, v, true))
        abort();
    char piece[512];
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= ks_vocab_n_tokens(v))
            abort();
        size_t m = ks_vocab_decode(v, ids[i], true, piece, sizeof piece);
        if (m > sizeof piece)
            abort();
        append(&whole, &whole_len, &whole_cap, piece, m);
        const char *out;
        size_t out_len;
        ks_detok_push(&d, ids[i], &out, &out_len);
        append(&streamed, &streamed_len, &streamed_cap, out, out_len);
        if (ks_detok_held(&d) > 3 || streamed_len + ks_detok_held(&d) != whole_len)
            abort();
    }
    const char *out;
    size_t out_len;
    ks_detok_flush(&d, &out, &out_len);
    append(&streamed, &streamed_len, &streamed_cap, out, out_len);
    if (whole_len != len || (len && memcmp(whole, text, len)))
        abort(); /* decode(encode(x)) != x */
    if (streamed_len != len || (len && memcmp(streamed, text, len)))
        abort(); /* the detokenizer lost or changed bytes */
    ks_detok_deinit(&d);
    free(whole);
    free(streamed);
    free(ids);
    return 0;
}
