/* pretok.h — pre-tokenizers of byte-level BPE vocabularies: the split of text into
 * words before BPE merges run inside each word.
 *
 * Two kinds, named by the GGUF key tokenizer.ggml.pre:
 *
 *   qwen2      (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}
 *              | ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 *   llama-bpe  the same with \p{N}{1,3} (also named llama3, llama-v3)
 *
 * with the first alternative that matches winning at each position, as in a
 * backtracking regex engine, and with \s, \p{L} and \p{N} as unicode.h defines them
 * (llama.cpp's classes). Words are byte ranges of the text; bad UTF-8 bytes count as
 * "other" characters (llama.cpp splits U+FFFD there). Two implementations:
 *
 *   pretok.c        hand-written, one pass over the text: what the tokenizer uses
 *   pretok_regex.c  the patterns above through PCRE2's JIT: the readable reference the
 *                   tests compare against (valid UTF-8 only)
 *
 * pretok.c's header says why the hand-written one is the one in use. */
#ifndef KS_TOKENIZER_PRETOK_H
#define KS_TOKENIZER_PRETOK_H

#include "core/status.h"

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    KS_PRETOK_QWEN2 = 0,
    KS_PRETOK_LLAMA3 = 1,
} ks_pretok_kind;

/* The kind for a tokenizer.ggml.pre name; false if we do not know it. */
bool ks_pretok_kind_from_name(const char *name, size_t len, ks_pretok_kind *out);
const char *ks_pretok_kind_name(ks_pretok_kind kind);

/* End of the word that starts at byte pos of s[0..n) (pos < n); always > pos. Words
 * never look past n: a text is split fragment by fragment between special tokens.
 * Needs ks_unicode_init(). */
size_t ks_pretok_next(ks_pretok_kind kind, const char *s, size_t n, size_t pos);
/* The ends of up to cap words from pos on, into ends; returns how many (0 at n). The
 * same as calling ks_pretok_next() in a loop, without a call per word. */
size_t ks_pretok_split(ks_pretok_kind kind, const char *s, size_t n, size_t pos, size_t *ends, size_t cap);

/* ---- the PCRE2 reference ------------------------------------------------------------------- */

typedef struct ks_pretok_regex ks_pretok_regex;

/* Receives each word [start, end) in order; returns false to stop. */
typedef bool (*ks_pretok_emit_fn)(void *ctx, size_t start, size_t end);

ks_status ks_pretok_regex_create(ks_pretok_regex **out, ks_pretok_kind kind, ks_err *err);
void ks_pretok_regex_destroy(ks_pretok_regex *r);
/* The pattern, as compiled (UTF-8). */
const char *ks_pretok_regex_pattern(const ks_pretok_regex *r);
/* Splits s[0..n) into words. KS_ERR_INVALID if s is not valid UTF-8. Safe to call from
 * several threads at once. */
ks_status ks_pretok_regex_split(const ks_pretok_regex *r, const char *s, size_t n, ks_pretok_emit_fn emit,
                                void *ctx);

#endif
