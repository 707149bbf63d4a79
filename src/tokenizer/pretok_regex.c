/* pretok_regex.c — the pre-tokenizer patterns of pretok.h through PCRE2 (JIT when the
 * platform has it): the reference that pretok.c is tested against, and the baseline
 * its speed is measured against.
 *
 * \s is spelled out as the White_Space set, because PCRE2's \s (even with PCRE2_UCP)
 * leaves out U+0085, which llama.cpp counts as space. \p{L} and \p{N} are PCRE2's own
 * tables, whose Unicode version may be older than unicode_data.c's: tests that compare
 * the two draw only code points on whose class both agree. */
#include "tokenizer/pretok.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <stdlib.h>

struct ks_pretok_regex {
    pcre2_code *code;
    const char *pattern;
};

#define WS "\\t\\n\\x0B\\f\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"
#define PATTERN(digits)                                                                                           \
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}" digits      \
    "| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n]*|[" WS "]*[\\r\\n]+|[" WS "]+(?![^" WS "])|[" WS "]+"

static const char *const patterns[] = {
    [KS_PRETOK_QWEN2] = PATTERN(""),
    [KS_PRETOK_LLAMA3] = PATTERN("{1,3}"),
};

ks_status ks_pretok_regex_create(ks_pretok_regex **out, ks_pretok_kind kind, ks_err *err) {
    if ((unsigned)kind >= sizeof patterns / sizeof patterns[0])
        return KS_ERRF(err, KS_ERR_INVALID, "unknown pre-tokenizer kind %d", (int)kind);
    ks_pretok_regex *r = calloc(1, sizeof *r);
    if (!r)
        return KS_ERRF(err, KS_ERR_NOMEM, "out of memory");
    r->pattern = patterns[kind];
    int code = 0;
    PCRE2_SIZE where = 0;
    r->code = pcre2_compile((PCRE2_SPTR)r->pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &code, &where, NULL);
    if (!r->code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        free(r);
        return KS_ERRF(err, KS_ERR_INTERNAL, "pre-tokenizer pattern, offset %zu: %s", (size_t)where, (char *)msg);
    }
    /* Without JIT (some platforms) the interpreter gives the same matches, slower. */
    (void)pcre2_jit_compile(r->code, PCRE2_JIT_COMPLETE);
    *out = r;
    return KS_OK;
}

void ks_pretok_regex_destroy(ks_pretok_regex *r) {
    if (!r)
        return;
    pcre2_code_free(r->code);
    free(r);
}

const char *ks_pretok_regex_pattern(const ks_pretok_regex *r) { return r->pattern; }

ks_status ks_pretok_regex_split(const ks_pretok_regex *r, const char *s, size_t n, ks_pretok_emit_fn emit,
                                void *ctx) {
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(r->code, NULL);
    if (!md)
        return KS_ERR_NOMEM;
    ks_status st = KS_OK;
    size_t pos = 0;
    uint32_t opts = 0; /* the first match checks the whole subject's UTF-8 */
    while (pos < n) {
        int rc = pcre2_match(r->code, (PCRE2_SPTR)s, n, pos, opts, md, NULL);
        opts = PCRE2_NO_UTF_CHECK;
        if (rc == PCRE2_ERROR_NOMATCH) {
            emit(ctx, pos, n); /* cannot happen: every character matches an alternative */
            break;
        }
        if (rc < 0) {
            st = rc <= PCRE2_ERROR_UTF8_ERR1 && rc >= PCRE2_ERROR_UTF8_ERR21 ? KS_ERR_INVALID : KS_ERR_INTERNAL;
            break;
        }
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        if (ov[0] > pos && !emit(ctx, pos, ov[0]))
            break;
        if (ov[1] == ov[0]) { /* no alternative matches empty; guard anyway */
            st = KS_ERR_INTERNAL;
            break;
        }
        if (!emit(ctx, ov[0], ov[1]))
            break;
        pos = ov[1];
    }
    pcre2_match_data_free(md);
    return st;
}
