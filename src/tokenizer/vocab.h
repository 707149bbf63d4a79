/* vocab.h — a model's vocabulary from GGUF metadata: token texts, token types, special
 * ids, and the decoding of a token to the bytes it stands for.
 *
 * Byte-level BPE vocabularies (tokenizer.ggml.model = "gpt2") store each byte as a
 * printable code point (GPT-2's byte-to-unicode table: the 188 printable Latin-1 bytes
 * map to themselves, the other 68 to U+0100..U+0143 in byte order); decoding maps them
 * back. Control tokens (<|im_end|>) decode to nothing unless special text is asked for;
 * user-defined tokens (<think>) decode to their text.
 *
 * Does not own: encoding text to tokens (tokenizer.h). */
#ifndef KS_VOCAB_H
#define KS_VOCAB_H

#include "core/status.h"
#include "gguf/gguf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    KS_TOKEN_NORMAL = 1,
    KS_TOKEN_UNKNOWN = 2,
    KS_TOKEN_CONTROL = 3,
    KS_TOKEN_USER_DEFINED = 4,
    KS_TOKEN_UNUSED = 5,
    KS_TOKEN_BYTE = 6,
} ks_token_type;

typedef struct ks_vocab ks_vocab;

/* Reads tokenizer.ggml.* from g (which must outlive the vocab: texts point into it). */
ks_status ks_vocab_load(ks_vocab **out, const ks_gguf *g, ks_err *err);
void ks_vocab_destroy(ks_vocab *v);

int32_t ks_vocab_n_tokens(const ks_vocab *v);
int32_t ks_vocab_eos(const ks_vocab *v);   /* -1 if none */
int32_t ks_vocab_bos(const ks_vocab *v);   /* -1 if none */
ks_token_type ks_vocab_type(const ks_vocab *v, int32_t id);
/* End of generation: eos, and the control tokens that end a turn (<|im_end|>,
 * <|endoftext|>, <|eot_id|>, ...). */
bool ks_vocab_is_eog(const ks_vocab *v, int32_t id);

/* The bytes token id stands for, written to buf (up to cap bytes); returns the full
 * length (which may exceed cap: then the output is truncated). Control tokens give 0
 * bytes unless special is true. */
size_t ks_vocab_decode(const ks_vocab *v, int32_t id, bool special, char *buf, size_t cap);

/* The token's text as stored in the file (byte-level form for normal tokens); points
 * into the GGUF. */
ks_gguf_str ks_vocab_text(const ks_vocab *v, int32_t id);
/* tokenizer.ggml.model is "gpt2": texts are in GPT-2's byte-to-unicode form. */
bool ks_vocab_is_byte_level(const ks_vocab *v);
/* Longest ks_vocab_decode() result over all tokens (special text included), bytes. */
size_t ks_vocab_max_piece(const ks_vocab *v);

/* GPT-2's byte-to-unicode table: the code point that stands for byte b, and the byte a
 * code point stands for (-1 if it stands for none). */
uint32_t ks_byte_to_cp(uint8_t b);
int ks_cp_to_byte(uint32_t cp);

#endif
