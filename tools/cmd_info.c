#include "commands.h"
#include <stdio.h>
int ks_cmd_info(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "not yet\n"); return 1; }
