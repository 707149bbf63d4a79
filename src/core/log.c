/* log.c — leveled logging. Each call formats its whole line first, then writes it with a
 * single locked fputs so lines from different threads never interleave. */
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>

static ks_log_level g_level = KS_LOG_INFO;
static FILE *g_file;

void ks_log_set_level(ks_log_level level) { g_level = level; }
ks_log_level ks_log_get_level(void) { return g_level; }
void ks_log_set_file(FILE *f) { g_file = f; }

void ks_log(ks_log_level level, const char *fmt, ...) {
    if (level < g_level)
        return;
    static const char *const tags[] = {"debug", "info", "warn", "error"};
    char line[2048];
    int n = snprintf(line, sizeof line, "kvserve %s: ", tags[level]);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    FILE *f = g_file ? g_file : stderr;
    flockfile(f);
    fputs(line, f);
    fputc('\n', f);
    fflush(f);
    funlockfile(f);
}
