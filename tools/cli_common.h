/* cli_common.h — option parsing helpers shared by the kvserve commands. */
#ifndef KS_CLI_COMMON_H
#define KS_CLI_COMMON_H

#include <stdbool.h>
#include <stdint.h>

/* Parses "1,2,3" (also spaces/newlines as separators) into a malloc'd array; returns
 * the count, or -1 with a message on stderr for anything that is not an integer. */
int ks_cli_parse_tokens(const char *text, int32_t **out);
/* Reads a whole file ("-" = stdin) into a malloc'd NUL-terminated string, or NULL. */
char *ks_cli_read_text(const char *path);
/* Strict integer / float option values: print "kvserve CMD: bad value for OPT" and
 * return false on garbage. */
bool ks_cli_int(const char *cmd, const char *opt, const char *val, long min, long max, long *out);
bool ks_cli_float(const char *cmd, const char *opt, const char *val, double *out);
/* "f32" | "f16" | "q8_0" -> type id, or -1. */
int ks_cli_kv_type(const char *name);

#endif
