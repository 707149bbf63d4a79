/* status.c — status names, first-error-wins error records, and the abort paths of
 * KS_ASSERT and the bookkeeping allocators. */
#include "core/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *ks_status_str(ks_status s) {
    switch (s) {
    case KS_OK: return "ok";
    case KS_AGAIN: return "again";
    case KS_ERR_NOMEM: return "out of memory";
    case KS_ERR_IO: return "I/O error";
    case KS_ERR_CORRUPT: return "corrupt data";
    case KS_ERR_INVALID: return "invalid argument";
    case KS_ERR_UNSUPPORTED: return "unsupported";
    case KS_ERR_FULL: return "full";
    case KS_ERR_CANCELLED: return "cancelled";
    case KS_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}

ks_status ks_err_set(ks_err *err, ks_status code, const char *src_file, int src_line,
                     const char *fmt, ...) {
    if (!err || err->code != KS_OK)
        return code;
    err->code = code;
    err->src_file = src_file;
    err->src_line = src_line;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return code;
}

void ks_assert_fail(const char *expr, const char *file, int line) {
    fprintf(stderr, "kvserve: internal invariant violated: %s (%s:%d)\n", expr, file, line);
    abort();
}

static void oom(size_t n) {
    fprintf(stderr, "kvserve: out of memory allocating %zu bytes\n", n);
    abort();
}

void *ks_xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) oom(n);
    return p;
}

void *ks_xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) oom(n * size);
    return p;
}

void *ks_xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) oom(n);
    return q;
}

char *ks_xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = ks_xmalloc(n);
    memcpy(d, s, n);
    return d;
}
