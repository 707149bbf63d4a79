/* stop_matcher.h — stop strings over streamed text.
 *
 * Owns: finding the first of a request's stop strings in generated text that arrives in
 * pieces (detokenized tokens), and telling the caller how much of the text is safe to
 * stream while a stop string may still be forming.
 * Does not own: the text (the caller keeps it; the matcher keeps only its own copies of
 * the stop strings and one automaton state per string), detokenization, tokens.
 *
 * Positions are absolute byte offsets into the text fed since create or reset, so they
 * do not depend on how the text was split: any split of the same bytes gives the same
 * answers, byte by byte included.
 *
 *   text fed:   ... already streamed | safe to stream |  held back  |
 *                                    ^ streamed       ^ safe_end    ^ n_fed
 *
 * The held-back bytes are the longest suffix of the text that is a proper prefix of some
 * stop string. safe_end never decreases and a later match never starts before it, so
 * streamed text never has to be taken back. For text that is valid UTF-8 and stop strings
 * that are too, safe_end always falls on a character boundary.
 *
 * Which match: the stop string that *completes* first in the byte stream; among strings
 * completing at the same byte, the longest (so the earliest start). The text is cut at
 * its start. After a match the matcher ignores further input until reset. */
#ifndef KS_STOP_MATCHER_H
#define KS_STOP_MATCHER_H

#include "core/status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Generous next to the APIs we serve (OpenAI allows 4 stop strings, llama.cpp and
 * Anthropic more): the cost per byte fed is one automaton step per string. */
#define KS_STOP_MAX_STRINGS 64
/* Longer than any real stop sequence; bounds the per-request copies at 64 KiB of text
 * (and 4 bytes of automaton table per text byte). */
#define KS_STOP_MAX_BYTES 1024

typedef struct ks_stop_result {
    bool matched;
    int32_t which;      /* index of the stop string that matched; -1 while none has */
    uint64_t match_pos; /* where the match starts: cut the text here (== safe_end) */
    uint64_t safe_end;  /* text [0, safe_end) can be streamed */
    uint64_t n_fed;     /* bytes consumed: all fed so far, or up to the match's end */
    size_t n_held;      /* n_fed - safe_end while not matched; 0 after a match */
} ks_stop_result;

typedef struct ks_stop_matcher ks_stop_matcher;

/* Copies n_stops NUL-terminated stop strings (each 1..KS_STOP_MAX_BYTES bytes; at most
 * KS_STOP_MAX_STRINGS of them; zero strings is a matcher that never matches). *out is
 * written only on success and owned by the caller. KS_ERR_INVALID names a bad string;
 * KS_ERR_NOMEM if the copies cannot be had. */
ks_status ks_stop_matcher_create(ks_stop_matcher **out, const char *const *stops, size_t n_stops,
                                 ks_err *err);
void ks_stop_matcher_destroy(ks_stop_matcher *m); /* NULL is fine */

/* Forgets all text fed; the stop strings stay. */
void ks_stop_matcher_reset(ks_stop_matcher *m);

/* Feeds the next n bytes of text (n may be 0) and reports the state after them in *out.
 * Allocates nothing. Once matched, further calls consume nothing and repeat the match. */
void ks_stop_matcher_feed(ks_stop_matcher *m, const void *bytes, size_t n, ks_stop_result *out);

#endif
