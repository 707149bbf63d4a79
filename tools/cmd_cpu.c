/* cmd_cpu.c — `kvserve cpu`: CPU features, the kernel set chosen for them, and the weight
 * types that set repacks into panels at load. */
#include "commands.h"
#include "core/cpu.h"
#include "tensor/kernels.h"
#include "tensor/types.h"

#include <stdio.h>

int ks_cmd_cpu(int argc, char **argv) {
    (void)argc;
    (void)argv;
    char desc[256];
    ks_cpu_describe(ks_cpu_detect(), desc, sizeof desc);
    const ks_kernels *k = ks_kernels_get();
    printf("cpu:     %s\nkernels: %s (override with KS_KERNELS=ref|avx2|avx512|amx|neon)\n", desc, k->isa);
    printf("panels:  ");
    int n = 0;
    for (int t = 0; t < KS_TYPE_COUNT; t++)
        if (k->panel[t].gemv)
            printf("%s%s", n++ ? ", " : "", ks_type_name((uint32_t)t));
    printf("%s\n", n ? " weights repacked at load into 16-row panels (KS_PANELS=0: rows)" : "none");
    return 0;
}
