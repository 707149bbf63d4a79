/* detok.h — the incremental detokenizer: token ids in, one at a time, text out, never
 * half a character and never a byte lost.
 *
 * Byte-level BPE tokens are byte strings: a character of 2-4 bytes is often split over
 * two or three tokens (emoji, CJK). A stream that printed each token's bytes as they
 * came would cut characters in half. The rule here:
 *
 *   After each token, everything is emitted except the longest tail that is a proper
 *   prefix of a well-formed UTF-8 character (a lead byte C2..F4 with fewer continuation
 *   bytes than it needs, each in its allowed range: E0 A0.., ED ..9F, F0 90.., F4 ..8F).
 *   At most 3 bytes are ever held. Bytes that are not UTF-8 (a stray continuation byte,
 *   C0, C1, F5..FF, a lead byte whose next byte does not fit) are emitted as they are
 *   as soon as they are seen, or as soon as the byte after a held prefix shows it
 *   cannot complete. ks_detok_flush() emits whatever is held (the stream ended inside
 *   a character).
 *
 * So the concatenation of all outputs is exactly the concatenation of the tokens'
 * bytes, and every output ends on a character boundary of the well-formed parts.
 *
 * Control tokens give no text unless `special` was set (as ks_vocab_decode()); a held
 * prefix stays held across them. */
#ifndef KS_TOKENIZER_DETOK_H
#define KS_TOKENIZER_DETOK_H

#include "core/status.h"
#include "tokenizer/vocab.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ks_detok {
    const ks_vocab *vocab; /* borrowed */
    bool special;
    uint8_t n_held;
    unsigned char held[4];
    char *buf; /* output: held bytes + one token's bytes */
    size_t cap;
} ks_detok;

/* Caller storage; vocab must outlive it. KS_ERR_NOMEM. */
ks_status ks_detok_init(ks_detok *d, const ks_vocab *vocab, bool special);
void ks_detok_deinit(ks_detok *d);

/* Adds token id. *text (valid until the next call on d) and *len receive the text that
 * is now complete; *len may be 0. An id outside the vocabulary adds nothing. */
void ks_detok_push(ks_detok *d, int32_t id, const char **text, size_t *len);
/* Adds raw bytes (a piece decoded elsewhere). KS_ERR_NOMEM. */
ks_status ks_detok_push_bytes(ks_detok *d, const void *bytes, size_t n, const char **text, size_t *len);
/* The held bytes, if any, and a fresh start. */
void ks_detok_flush(ks_detok *d, const char **text, size_t *len);
/* Bytes held back now (0..3). */
size_t ks_detok_held(const ks_detok *d);

#endif
