/* pretok.c — the hand-written pre-tokenizer: the patterns of pretok.h as one pass over
 * the text, alternative by alternative, in the regex's order.
 *
 * Why not the regex: pretok_regex.c runs the same patterns through PCRE2's JIT and gives
 * the same words, but splits the 150 KB agent prompt of bench/tokenize.mjs at about
 * 113 MB/s where this file does about 420 MB/s (1.35 ms against 0.36 ms on the project's
 * Zen 4 machines), and the split is the largest part of what a tokenization costs once
 * the per-call word cache holds the words' ids (whole tokenizer: ~2.3 ms with PCRE2,
 * ~1.0 ms with this file). The patterns are simple enough that each alternative is a
 * few lines below; the tests run both on random text of every class and require the
 * same words.
 *
 * Each alternative, with what it matches (L letter, N number, S space, O other):
 *
 *   1  '[sS] '[tT] '[mM] '[dD] '[rR][eE] '[vV][eE] '[lL][lL]   contractions
 *   2  [^\r\n L N]? L+                       a word, with one leading non-letter
 *   3  N, or N{1,3} for llama-bpe            digits
 *   4  ' '? O+ [\r\n]*                        punctuation, with one leading space
 *   5  S* [\r\n]+                             whitespace up to its last line break
 *   6  S+ (?!\S)                              whitespace but the last one before a
 *                                            non-space (which starts the next word)
 *   7  S+                                     whitespace at the end */
#include "tokenizer/pretok.h"

#include "tokenizer/unicode.h"

#include <string.h>

#define CLS_NONE 4 /* past the end of the fragment */

typedef struct ch {
    uint32_t cp;
    uint8_t cls; /* ks_unicode_class or CLS_NONE */
    uint8_t len; /* bytes; 0 past the end */
} ch;

static inline ch peek(const unsigned char *s, size_t n, size_t pos) {
    ch c;
    if (pos >= n) {
        c.cp = 0xffffffffu;
        c.cls = CLS_NONE;
        c.len = 0;
    } else if (s[pos] < 0x80) {
        c.cp = s[pos];
        c.cls = (uint8_t)ks_unicode_class_of(s[pos]);
        c.len = 1;
    } else {
        int bad;
        c.len = (uint8_t)ks_utf8_decode(s + pos, n - pos, &c.cp, &bad);
        c.cls = bad ? (uint8_t)KS_UC_OTHER : (uint8_t)ks_unicode_class_of(c.cp);
    }
    return c;
}

/* ASCII lower case. Only İ and K (Kelvin) lower-case to ASCII from outside it, to i and
 * k, which no contraction uses, so llama.cpp's full lower-casing gives the same. */
static inline uint32_t lower(uint32_t cp) { return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp; }

static inline bool is_rn(uint32_t cp) { return cp == '\r' || cp == '\n'; }

static inline size_t next_word(ks_pretok_kind kind, const unsigned char *s, size_t n, size_t pos) {
    const ch c0 = peek(s, n, pos);

    /* 1: contractions */
    if (c0.cp == '\'') {
        const ch c1 = peek(s, n, pos + 1);
        const uint32_t l1 = lower(c1.cp);
        if (l1 == 's' || l1 == 't' || l1 == 'm' || l1 == 'd')
            return pos + 1 + c1.len;
        if (c1.len) {
            const ch c2 = peek(s, n, pos + 1 + c1.len);
            const uint32_t l2 = lower(c2.cp);
            if ((l1 == 'r' && l2 == 'e') || (l1 == 'v' && l2 == 'e') || (l1 == 'l' && l2 == 'l'))
                return pos + 1 + c1.len + c2.len;
        }
    }

    /* 2: a word with at most one leading character that is not \r, \n, a letter or a
     * number (a letter there is simply the word's first letter) */
    if (!is_rn(c0.cp) && c0.cls != KS_UC_NUMBER) {
        size_t p = pos + c0.len;
        ch c = peek(s, n, p);
        if (c0.cls == KS_UC_LETTER || c.cls == KS_UC_LETTER) {
            while (c.cls == KS_UC_LETTER) {
                p += c.len;
                c = peek(s, n, p);
            }
            return p;
        }
    }

    /* 3: one digit (qwen2) or up to three (llama-bpe) */
    if (c0.cls == KS_UC_NUMBER) {
        const int max_digits = kind == KS_PRETOK_LLAMA3 ? 3 : 1;
        size_t p = pos + c0.len;
        for (int k = 1; k < max_digits; k++) {
            const ch c = peek(s, n, p);
            if (c.cls != KS_UC_NUMBER)
                break;
            p += c.len;
        }
        return p;
    }

    /* 4: a run of other characters, with one leading space and trailing line breaks */
    {
        const ch c1 = c0.cp == ' ' ? peek(s, n, pos + 1) : c0;
        if (c1.cls == KS_UC_OTHER) {
            size_t p = pos + (c0.cp == ' ');
            ch c = c1;
            while (c.cls == KS_UC_OTHER) {
                p += c.len;
                c = peek(s, n, p);
            }
            while (p < n && (s[p] == '\r' || s[p] == '\n'))
                p++;
            return p;
        }
    }

    /* 5-7: whitespace */
    size_t p = pos, last_start = pos, after_rn = 0;
    int count = 0;
    for (ch c = c0; c.cls == KS_UC_SPACE; c = peek(s, n, p)) {
        last_start = p;
        p += c.len;
        count++;
        if (is_rn(c.cp))
            after_rn = p;
    }
    if (after_rn)
        return after_rn;
    if (count > 1 && p < n)
        return last_start;
    if (count > 0)
        return p;
    /* Every character is a letter, number, space or other, so one of the above matched;
     * this is only a guard against looping forever. */
    return pos + (c0.len ? c0.len : 1);
}

size_t ks_pretok_next(ks_pretok_kind kind, const char *s, size_t n, size_t pos) {
    return next_word(kind, (const unsigned char *)s, n, pos);
}

size_t ks_pretok_split(ks_pretok_kind kind, const char *text, size_t n, size_t pos, size_t *ends, size_t cap) {
    const unsigned char *s = (const unsigned char *)text;
    size_t k = 0;
    while (k < cap && pos < n)
        ends[k++] = pos = next_word(kind, s, n, pos);
    return k;
}

static const struct {
    const char *name;
    ks_pretok_kind kind;
} known_names[] = {
    {"qwen2", KS_PRETOK_QWEN2},      {"deepseek-r1-qwen", KS_PRETOK_QWEN2},
    {"llama-bpe", KS_PRETOK_LLAMA3}, {"llama3", KS_PRETOK_LLAMA3},
    {"llama-v3", KS_PRETOK_LLAMA3},
};

bool ks_pretok_kind_from_name(const char *name, size_t len, ks_pretok_kind *out) {
    for (size_t i = 0; i < sizeof known_names / sizeof known_names[0]; i++)
        if (strlen(known_names[i].name) == len && !memcmp(known_names[i].name, name, len)) {
            *out = known_names[i].kind;
            return true;
        }
    return false;
}

const char *ks_pretok_kind_name(ks_pretok_kind kind) { return kind == KS_PRETOK_LLAMA3 ? "llama-bpe" : "qwen2"; }
