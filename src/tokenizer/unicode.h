/* unicode.h — what the pre-tokenizers need to know about a code point, and UTF-8
 * decoding as llama.cpp does it.
 *
 * Classes: every code point is exactly one of letter (\p{L}: Lu Ll Lt Lm Lo), number
 * (\p{N}: Nd Nl No), space (the White_Space property: \t..\r, space, U+0085, U+00A0,
 * U+1680, U+2000..U+200A, U+2028, U+2029, U+202F, U+205F, U+3000) or other. Unicode 15.1,
 * the version of llama.cpp's tables (unicode_data.c, generated). White_Space wins over
 * the general category (U+0085 is Cc, U+00A0 is Zs: both are space here).
 *
 * The table is 2 bits per code point (272 KiB), built once from the runs in
 * unicode_data.c by ks_unicode_init(), which every user calls before the first lookup
 * (thread-safe, cheap after the first call).
 *
 * Decoding: ks_utf8_decode() reads one code point the way llama.cpp's tokenizer does,
 * which is more lenient than UTF-8: a lead byte with the right number of continuation
 * bytes is accepted whatever it encodes (overlong forms, surrogates, values up to
 * 0x1FFFFF); anything else is one bad byte. The pre-tokenizers classify a bad byte as
 * llama.cpp classifies the U+FFFD it puts in its place: other. */
#ifndef KS_TOKENIZER_UNICODE_H
#define KS_TOKENIZER_UNICODE_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    KS_UC_OTHER = 0,
    KS_UC_LETTER = 1,
    KS_UC_NUMBER = 2,
    KS_UC_SPACE = 3,
} ks_unicode_class;

#define KS_UNICODE_MAX_CP 0x110000 /* one past U+10FFFF */

/* A run of code points of one class, from first to the next run's first. */
typedef struct ks_unicode_run {
    uint32_t first;
    uint8_t cls;
} ks_unicode_run;

extern const ks_unicode_run ks_unicode_runs[];
extern const size_t ks_unicode_n_runs;
/* (KS_UNICODE_MAX_CP / 4) bytes, 2 bits per code point; valid after ks_unicode_init(). */
extern uint8_t ks_unicode_table[KS_UNICODE_MAX_CP / 4];

void ks_unicode_init(void);

/* Class of a code point; past U+10FFFF: other. */
static inline ks_unicode_class ks_unicode_class_of(uint32_t cp) {
    if (cp >= KS_UNICODE_MAX_CP)
        return KS_UC_OTHER;
    return (ks_unicode_class)((ks_unicode_table[cp >> 2] >> ((cp & 3) * 2)) & 3);
}

/* Decodes one code point at s (n > 0 bytes left) as llama.cpp does (see above). Returns
 * its length in bytes; a bad byte gives length 1 and *bad = 1. */
static inline size_t ks_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp, int *bad) {
    unsigned c = s[0];
    *bad = 0;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len = (c & 0x40) == 0 ? 0 : (c & 0x20) == 0 ? 2 : (c & 0x10) == 0 ? 3 : (c & 0x08) == 0 ? 4 : 0;
    if (len == 0 || len > n)
        goto bad;
    uint32_t v = c & (0x7fu >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            goto bad;
        v = (v << 6) | (s[i] & 0x3fu);
    }
    *cp = v;
    return len;
bad:
    *cp = 0xfffd;
    *bad = 1;
    return 1;
}

/* Length of the well-formed UTF-8 character at s (RFC 3629: no overlong forms, no
 * surrogates, nothing past U+10FFFF), or 0 if the bytes there are not one. */
size_t ks_utf8_char_len(const unsigned char *s, size_t n);

#endif
