/* strbuf.c — see strbuf.h. */
#include "core/strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ks_strbuf_init(ks_strbuf *b) {
    b->data = NULL;
    b->len = b->cap = 0;
}

void ks_strbuf_free(ks_strbuf *b) {
    free(b->data);
    ks_strbuf_init(b);
}

void ks_strbuf_clear(ks_strbuf *b) {
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

static void reserve(ks_strbuf *b, size_t extra) {
    if (b->len + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    b->data = ks_xrealloc(b->data, cap);
    b->cap = cap;
}

void ks_strbuf_append(ks_strbuf *b, const void *data, size_t len) {
    reserve(b, len);
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void ks_strbuf_puts(ks_strbuf *b, const char *s) { ks_strbuf_append(b, s, strlen(s)); }

void ks_strbuf_printf(ks_strbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n > 0) {
        reserve(b, (size_t)n);
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
        b->len += (size_t)n;
    }
    va_end(ap2);
}

void ks_strbuf_consume(ks_strbuf *b, size_t n) {
    if (n >= b->len) {
        ks_strbuf_clear(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}
