/* log.h — leveled logging to stderr (or a log file). Thread-safe: one line per call. */
#ifndef KS_LOG_H
#define KS_LOG_H

#include "core/ks_core.h"
#include <stdio.h>

typedef enum { KS_LOG_DEBUG = 0, KS_LOG_INFO = 1, KS_LOG_WARN = 2, KS_LOG_ERROR = 3 } ks_log_level;

void ks_log_set_level(ks_log_level level);
ks_log_level ks_log_get_level(void);
/* Redirects logs to f (not closed by the logger); NULL restores stderr. */
void ks_log_set_file(FILE *f);
void ks_log(ks_log_level level, const char *fmt, ...) KS_PRINTF(2, 3);

#define KS_LOGD(...) ks_log(KS_LOG_DEBUG, __VA_ARGS__)
#define KS_LOGI(...) ks_log(KS_LOG_INFO, __VA_ARGS__)
#define KS_LOGW(...) ks_log(KS_LOG_WARN, __VA_ARGS__)
#define KS_LOGE(...) ks_log(KS_LOG_ERROR, __VA_ARGS__)

#endif
