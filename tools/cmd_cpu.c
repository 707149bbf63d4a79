/* cmd_cpu.c — `kvserve cpu`: CPU features and the kernel set chosen for them. */
#include "commands.h"
#include "core/cpu.h"
#include "tensor/kernels.h"

#include <stdio.h>

int ks_cmd_cpu(int argc, char **argv) {
    (void)argc;
    (void)argv;
    char desc[256];
    ks_cpu_describe(ks_cpu_detect(), desc, sizeof desc);
    printf("cpu:     %s\nkernels: %s (override with KS_KERNELS=ref|avx2|avx512|amx|neon)\n", desc,
           ks_kernels_get()->isa);
    return 0;
}
