/* detok.c — see detok.h. */
#include "tokenizer/detok.h"

#include <stdlib.h>
#include <string.h>

#define MAX_HELD 3 /* a 4-byte character less its last byte */

ks_status ks_detok_init(ks_detok *d, const ks_vocab *vocab, bool special) {
    memset(d, 0, sizeof *d);
    d->vocab = vocab;
    d->special = special;
    d->cap = ks_vocab_max_piece(vocab) + MAX_HELD + 1;
    d->buf = malloc(d->cap);
    return d->buf ? KS_OK : KS_ERR_NOMEM;
}

void ks_detok_deinit(ks_detok *d) {
    if (!d)
        return;
    free(d->buf);
    d->buf = NULL;
    d->cap = 0;
}

size_t ks_detok_held(const ks_detok *d) { return d->n_held; }

/* Is s[0..k) a proper prefix of a well-formed UTF-8 character (s[0] a lead byte)? */
static bool proper_prefix(const unsigned char *s, size_t k) {
    unsigned c = s[0], lo = 0x80, hi = 0xbf;
    size_t need;
    if (c >= 0xc2 && c <= 0xdf)
        need = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        need = 3;
        lo = c == 0xe0 ? 0xa0 : 0x80;
        hi = c == 0xed ? 0x9f : 0xbf;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 4;
        lo = c == 0xf0 ? 0x90 : 0x80;
        hi = c == 0xf4 ? 0x8f : 0xbf;
    } else
        return false;
    if (k >= need)
        return false;
    if (k >= 2 && (s[1] < lo || s[1] > hi))
        return false;
    for (size_t i = 2; i < k; i++)
        if ((s[i] & 0xc0) != 0x80)
            return false;
    return true;
}

/* d->buf[0..total) holds the previous held bytes and the new ones: keep back the tail
 * that may still become a character, emit the rest. A lead byte is never inside an
 * earlier character, so the tail to hold starts at the last lead byte, if that is among
 * the last MAX_HELD bytes and what follows it fits. */
static void settle(ks_detok *d, size_t total, const char **text, size_t *len) {
    const unsigned char *b = (const unsigned char *)d->buf;
    size_t hold = 0;
    for (size_t k = 1; k <= MAX_HELD && k <= total; k++) {
        unsigned c = b[total - k];
        if (c < 0x80)
            break;
        if (c >= 0xc0) {
            if (proper_prefix(b + total - k, k))
                hold = k;
            break;
        }
    }
    memcpy(d->held, b + total - hold, hold);
    d->n_held = (uint8_t)hold;
    *text = d->buf;
    *len = total - hold;
}

void ks_detok_push(ks_detok *d, int32_t id, const char **text, size_t *len) {
    memcpy(d->buf, d->held, d->n_held);
    size_t n = ks_vocab_decode(d->vocab, id, d->special, d->buf + d->n_held, d->cap - d->n_held);
    if (n > d->cap - d->n_held) /* cannot happen: cap covers the longest piece */
        n = d->cap - d->n_held;
    settle(d, d->n_held + n, text, len);
}

ks_status ks_detok_push_bytes(ks_detok *d, const void *bytes, size_t n, const char **text, size_t *len) {
    if (n > d->cap - d->n_held) {
        size_t cap = n + MAX_HELD + 1;
        char *p = realloc(d->buf, cap);
        if (!p)
            return KS_ERR_NOMEM;
        d->buf = p;
        d->cap = cap;
    }
    memcpy(d->buf, d->held, d->n_held);
    if (n)
        memcpy(d->buf + d->n_held, bytes, n);
    settle(d, d->n_held + n, text, len);
    return KS_OK;
}

void ks_detok_flush(ks_detok *d, const char **text, size_t *len) {
    memcpy(d->buf, d->held, d->n_held);
    *text = d->buf;
    *len = d->n_held;
    d->n_held = 0;
}
