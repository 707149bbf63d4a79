/* cmd_mkmodel.c — placeholder until the synthetic model generator lands. */
#include "commands.h"
#include <stdio.h>

int ks_cmd_mkmodel(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "kvserve mkmodel: not built yet\n");
    return 1;
}
