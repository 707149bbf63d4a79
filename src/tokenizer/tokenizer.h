/* tokenizer.h — text to token ids for byte-level BPE vocabularies (tokenizer.ggml.model
 * "gpt2"), from the GGUF metadata alone, giving llama.cpp's ids.
 *
 *   text
 *    -> special tokens: split out the texts of control / user-defined tokens
 *       (control ones only when the caller allows it)
 *    -> pre-tokenizer on each piece between them: words (pretok.h)
 *    -> BPE inside each word: adjacent symbols merge, lowest merge rank first
 *       (tokenizer.ggml.merges, rank = position), leftmost first among equal ranks
 *    -> [bos] ids [eos] as the vocabulary asks, when the caller allows it
 *
 * Special tokens as llama.cpp finds them: every control, user-defined or unknown token
 * is a candidate; longer texts are matched first (equal lengths: lower id first), each
 * at its leftmost occurrences in what earlier ones left. Without KS_TOKENIZE_SPECIAL,
 * control and unknown tokens are plain text, but user-defined ones (Qwen3's <think>,
 * <tool_call>) still match, as in llama.cpp and Hugging Face tokenizers: user content
 * that spells "<think>" gets the <think> token either way.
 *
 * A chat prompt mixes the template's markup with client text. ks_tokenize_masked()
 * matches control tokens only where every byte of their text is outside the client's
 * spans, so that a user message or a tool result spelling "<|im_end|>" stays text while
 * the template's own "<|im_end|>" is the token. Nothing else changes: user-defined tokens
 * match everywhere, and the text between kept special tokens is one fragment for the
 * pre-tokenizer, spans or not (as llama.cpp splits a prompt). With no control token's
 * text overlapping a span, the ids are those of ks_tokenize() with the same flags.
 *
 * Bytes that are not UTF-8 are kept (each is spelled by its byte token), so
 * ks_vocab_decode() of the ids gives back the input exactly, for any input. llama.cpp
 * puts U+FFFD in place of each such byte instead; for valid UTF-8 the ids are the same.
 *
 * Thread safety: a tokenizer is read-only after create; any number of threads may call
 * ks_tokenize() on one tokenizer at once (each call has its own scratch memory).
 *
 * Does not own: the decoding of ids (vocab.h, detok.h). */
#ifndef KS_TOKENIZER_H
#define KS_TOKENIZER_H

#include "core/status.h"
#include "gguf/gguf.h"
#include "tokenizer/pretok.h"
#include "tokenizer/span.h"
#include "tokenizer/vocab.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ks_tokenizer ks_tokenizer;

/* Flags of ks_tokenize(). */
enum {
    KS_TOKENIZE_SPECIAL = 1u << 0,     /* match control tokens' texts (chat markup) */
    KS_TOKENIZE_ADD_SPECIAL = 1u << 1, /* add bos / eos when the vocabulary asks for them */
};

/* Builds the tokenizer of a GGUF's vocabulary. g must outlive the tokenizer (token
 * texts point into it). KS_ERR_UNSUPPORTED for a tokenizer model or pre-tokenizer we do
 * not implement (the message names it); KS_ERR_INVALID for a broken vocabulary. */
ks_status ks_tokenizer_create(ks_tokenizer **out, const ks_gguf *g, ks_err *err);
void ks_tokenizer_destroy(ks_tokenizer *t);

/* The vocabulary the tokenizer built (owned by it). */
const ks_vocab *ks_tokenizer_vocab(const ks_tokenizer *t);
ks_pretok_kind ks_tokenizer_pretok(const ks_tokenizer *t);
bool ks_tokenizer_add_bos(const ks_tokenizer *t);
bool ks_tokenizer_add_eos(const ks_tokenizer *t);
/* Merges that could not be used because a part or the result is not a token (0 for a
 * well-formed vocabulary; such merges would change llama.cpp's ids only in corner cases). */
int32_t ks_tokenizer_n_merges_skipped(const ks_tokenizer *t);

/* Tokenizes text[0..len). Writes min(n, cap) ids to out and the full count to *n;
 * returns KS_ERR_FULL when cap < n (call again with a larger buffer), KS_ERR_NOMEM. */
ks_status ks_tokenize(const ks_tokenizer *t, const char *text, size_t len, unsigned flags, int32_t *out,
                      size_t cap, size_t *n);
/* Same, into a malloc'd array the caller frees. */
ks_status ks_tokenize_alloc(const ks_tokenizer *t, const char *text, size_t len, unsigned flags, int32_t **out,
                            size_t *n);

/* ks_tokenize_alloc() with control tokens kept out of the spans no_special[0..n_spans)
 * (sorted by start, disjoint, inside the text; KS_ERR_INVALID otherwise): with
 * KS_TOKENIZE_SPECIAL, a control token is matched only where none of its bytes lies in
 * a span. starts may be NULL; otherwise it receives a malloc'd array of *n byte offsets,
 * where each token's bytes begin in the text (an added bos: 0, an added eos: len); the
 * caller frees it. Token i covers [starts[i], starts[i + 1]). */
ks_status ks_tokenize_masked(const ks_tokenizer *t, const char *text, size_t len, unsigned flags,
                             const ks_span *no_special, size_t n_spans, int32_t **out, size_t **starts,
                             size_t *n);

/* Runs the pre-tokenizer through PCRE2 (pretok_regex.c) instead of the hand-written
 * one: same ids, for tests and benchmarks. Only for valid UTF-8 text (ks_tokenize()
 * fails with KS_ERR_INVALID otherwise). Not thread-safe with concurrent ks_tokenize(). */
ks_status ks_tokenizer_use_regex(ks_tokenizer *t, bool on, ks_err *err);
/* Turns the per-call cache of word tokenizations off or on (on by default), for
 * benchmarks. Same rule as above. */
void ks_tokenizer_use_cache(ks_tokenizer *t, bool on);

#endif
