/* fuzz_tokenizer.c — libFuzzer target for the tokenizer on the real Qwen3 vocabulary.
 *
 * Input: one flags byte (bit 0: match control tokens, bit 1: add bos/eos, bit 2: keep
 * control tokens out of client spans drawn from bits 3-7), then the text, any bytes.
 * Properties checked, abort() on failure:
 *   - tokenizing succeeds and every id is in the vocabulary;
 *   - the ids decode back to exactly the text (bos/eos aside: Qwen3 adds none);
 *   - the incremental detokenizer, fed the ids one at a time, gives the same bytes,
 *     holding back at most 3 at any time;
 *   - with spans: each token starts where the ones before it end, and no control
 *     token's bytes touch a span.
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

/* Up to 4 spans over [0, len), sorted and disjoint, from a seed: a small LCG (Knuth's
 * MMIX constants) picks the cut points. */
static size_t draw_spans(unsigned seed, size_t len, ks_span *spans) {
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + len;
    size_t n = 1 + seed % 4, at = 0, k = 0;
    for (size_t i = 0; i < n && at <= len; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        size_t start = at + (size_t)(x >> 33) % (len - at + 1);
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        size_t end = start + (size_t)(x >> 33) % (len - start + 1);
        spans[k++] = (ks_span){start, end};
        at = end;
    }
    return k;
}

/* The masked tokenization's own properties (see the header). */
static void check_masked(const char *text, size_t len, unsigned flags, unsigned seed) {
    ks_span spans[4];
    size_t n_spans = draw_spans(seed, len, spans), n = 0, *starts = NULL;
    int32_t *ids = NULL;
    if (ks_tokenize_masked(tok, text, len, flags, spans, n_spans, &ids, &starts, &n))
        abort();
    const ks_vocab *v = ks_tokenizer_vocab(tok);
    size_t at = 0;
    char piece[512];
    for (size_t i = 0; i < n; i++) {
        size_t m = ks_vocab_decode(v, ids[i], true, piece, sizeof piece);
        if (m > sizeof piece || starts[i] != at || at + m > len || memcmp(text + at, piece, m))
            abort(); /* tokens do not tile the text */
        if (ks_vocab_type(v, ids[i]) == KS_TOKEN_CONTROL)
            for (size_t k = 0; k < n_spans; k++)
                if (spans[k].start < spans[k].end && spans[k].start < at + m && at < spans[k].end)
                    abort(); /* a control token made of client bytes */
        at += m;
    }
    if (at != len)
        abort();
    free(ids);
    free(starts);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    load_once();
    if (size == 0)
        return 0;
    unsigned flags = (data[0] & 1 ? KS_TOKENIZE_SPECIAL : 0u) | (data[0] & 2 ? KS_TOKENIZE_ADD_SPECIAL : 0u);
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    if (data[0] & 4)
        check_masked(text, len, flags, data[0] >> 3);

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
