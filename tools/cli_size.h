/* cli_size.h — byte sizes on the command line: "512M", "8G", "1.5GiB", "100000". */
#ifndef KS_CLI_SIZE_H
#define KS_CLI_SIZE_H

#include <stdbool.h>
#include <stdint.h>

/* Binary units (K = 1024). Returns false for anything else. */
bool ks_cli_size(const char *text, uint64_t *out);

#endif
