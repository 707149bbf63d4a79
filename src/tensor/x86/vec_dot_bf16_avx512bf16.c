/* vec_dot_bf16_avx512bf16.c — the BF16 x BF16 dot product on AVX-512 BF16 (vdpbf16ps), the
 * one kernel of the AVX-512 table that needs that extension. Compiled with it (by its
 * file-name suffix, CMakeLists.txt) and registered only where the CPU has it (kernels.c):
 * AVX-512 CPUs without it (Ice Lake, Cascade Lake) keep the AVX2 table's BF16 dot.
 *
 * Owns: vec_dot_bf16_bf16_avx512bf16, ks_vec_dot_avx512bf16_register().
 *
 * vdpbf16ps multiplies pairs of bf16 exactly and adds them into float lanes. It reads bf16
 * subnormals as zero and flushes subnormal results, which only values below 2^-126
 * (1.2e-38) could notice: no trained weight or activation. */
#include "tensor/x86/kernels_x86.h"
#include "tensor/x86/simd_x86.h"

/* 32 bf16 from element i as vdpbf16ps's operand. */
static inline __m512bh load32_bf16(const ks_bf16 *p, int64_t i) {
    return (__m512bh)_mm512_loadu_si512(p + i);
}

/* Two accumulators over the first n - n % 64 elements, each summed across its lanes and
 * the two added in double; the tail one element at a time in double. */
static float vec_dot_bf16_bf16_avx512bf16(const void *w, const void *a, int64_t n) {
    const ks_bf16 *x = w, *y = a;
    __m512 c0 = _mm512_setzero_ps(), c1 = _mm512_setzero_ps();
    const int64_t np = n - n % 64;
    for (int64_t i = 0; i < np; i += 64) {
        c0 = _mm512_dpbf16_ps(c0, load32_bf16(x, i), load32_bf16(y, i));
        c1 = _mm512_dpbf16_ps(c1, load32_bf16(x, i + 32), load32_bf16(y, i + 32));
    }
    double sum = (double)ks_x86_hsum512(c0) + (double)ks_x86_hsum512(c1);
    for (int64_t i = np; i < n; i++)
        sum += (double)(ks_bf16_to_fp32(x[i]) * ks_bf16_to_fp32(y[i]));
    return (float)sum;
}

void ks_vec_dot_avx512bf16_register(ks_kernels *k) { k->vec_dot[KS_TYPE_BF16] = vec_dot_bf16_bf16_avx512bf16; }
