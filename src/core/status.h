/* status.h — status codes and human-readable errors.
 *
 * Fallible functions return ks_status. Those a human must understand (load, parse,
 * persist) also fill a ks_err: the first error wins and records where it was raised.
 * Messages name the file, the field and the byte offset where that applies. */
#ifndef KS_STATUS_H
#define KS_STATUS_H

#include "core/ks_core.h"

typedef enum {
    KS_OK = 0,
    KS_AGAIN = 1,
    KS_ERR_NOMEM = -1,
    KS_ERR_IO = -2,
    KS_ERR_CORRUPT = -3,
    KS_ERR_INVALID = -4,
    KS_ERR_UNSUPPORTED = -5,
    KS_ERR_FULL = -6,
    KS_ERR_CANCELLED = -7,
    KS_ERR_INTERNAL = -8,
} ks_status;

#define KS_ERR_MSG_BYTES 512 /* long enough for a path, a field name and an offset */

typedef struct ks_err {
    ks_status code;             /* KS_OK while no error was recorded */
    const char *src_file;       /* source location that raised it (for -v logs) */
    int src_line;
    char msg[KS_ERR_MSG_BYTES]; /* one line, no trailing newline */
} ks_err;

const char *ks_status_str(ks_status s);

/* Records an error unless one is already recorded (first error wins). err may be NULL.
 * Returns code, so callers can write `return KS_ERRF(err, KS_ERR_IO, "...")`. */
ks_status ks_err_set(ks_err *err, ks_status code, const char *src_file, int src_line,
                     const char *fmt, ...) KS_PRINTF(5, 6);

#define KS_ERRF(err, code, ...) ks_err_set((err), (code), __FILE__, __LINE__, __VA_ARGS__)

static inline void ks_err_clear(ks_err *err) {
    if (err) {
        err->code = KS_OK;
        err->src_file = NULL;
        err->src_line = 0;
        err->msg[0] = '\0';
    }
}

#endif
