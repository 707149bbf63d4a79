/* cpu.h — what the CPU and the OS let us run, detected once at start-up.
 *
 * x86-64: CPUID feature bits checked together with XGETBV (the OS must save the YMM/ZMM
 * state, or AVX code faults). aarch64: hwcaps. Compiled without ISA flags. */
#ifndef KS_CPU_H
#define KS_CPU_H

#include <stdbool.h>

typedef struct ks_cpu_features {
    char vendor[13];                        /* x86-64 CPUID vendor, e.g. "AuthenticAMD" */
    bool intel;                             /* vendor "GenuineIntel" */
    bool avx2, fma, f16c;                   /* x86-64 "AVX2 tier" */
    bool avx512f, avx512bw, avx512vl, avx512dq;
    bool avx512vnni, avx512bf16;            /* Zen 4, Sapphire Rapids and later */
    bool avx512fp16;                        /* half-precision arithmetic: Intel cores
                                               from Golden Cove (Sapphire Rapids) on */
    bool avxvnni;                           /* VEX-encoded VNNI (Alder Lake) */
    bool amx_int8;                          /* AMX tiles + INT8, OS saves the tile state
                                               (Sapphire Rapids and later); a process
                                               must still ask Linux for the tile data */
    bool amx_bf16;                          /* AMX tiles + BF16, likewise */
    bool neon, dotprod, i8mm;               /* aarch64 */
    int n_physical_cores;                   /* best effort; >= 1 */
    int n_logical_cpus;
} ks_cpu_features;

/* Detected once, cached; safe to call from any thread after the first call returned. */
const ks_cpu_features *ks_cpu_detect(void);

/* Short human summary, e.g. "x86-64 AuthenticAMD AVX2 FMA F16C AVX512(F,BW,VL,VNNI,BF16)". */
void ks_cpu_describe(const ks_cpu_features *f, char *buf, int buf_len);

#endif
