/* strbuf.h — a growable byte string for building responses and log lines. Aborts on OOM
 * (bookkeeping-sized; bodies sized by clients are bounded before they get here). */
#ifndef KS_STRBUF_H
#define KS_STRBUF_H

#include "core/ks_core.h"

#include <stddef.h>

typedef struct ks_strbuf {
    char *data; /* NUL-terminated */
    size_t len, cap;
} ks_strbuf;

void ks_strbuf_init(ks_strbuf *b);
void ks_strbuf_free(ks_strbuf *b);
void ks_strbuf_clear(ks_strbuf *b);
void ks_strbuf_append(ks_strbuf *b, const void *data, size_t len);
void ks_strbuf_puts(ks_strbuf *b, const char *s);
void ks_strbuf_printf(ks_strbuf *b, const char *fmt, ...) KS_PRINTF(2, 3);
/* Drops the first n bytes. */
void ks_strbuf_consume(ks_strbuf *b, size_t n);

#endif
