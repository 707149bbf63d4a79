/* vnni_x86.h — AVX-512 VNNI products that keep their accumulator in its register, shared
 * by the kernels whose loops run many of them side by side (attn_accum_q8i_avx512.c) and
 * the int8 peak that `kvserve bench` measures (bench/bench_limits_avx512.c).
 *
 * GCC 12 gives the intrinsics (_mm512_dpbusd_epi32, _mm512_dpwssd_epi32) a result apart
 * from the accumulator, and in a loop of several chains it copied each accumulator to
 * another register and back around every product: three instructions where one does.
 * Written out with the accumulator as an in-out operand, each product is one
 * instruction. Include only from files compiled with -mavx512f -mavx512vnni. */
#ifndef KS_VNNI_X86_H
#define KS_VNNI_X86_H

#include <immintrin.h>

/* c + per int32 lane the sum of the four products of x's unsigned and y's signed bytes */
static inline __m512i ks_dpbusd512(__m512i c, __m512i x, __m512i y) {
    __asm__("vpdpbusd %[y], %[x], %[c]" : [c] "+v"(c) : [x] "v"(x), [y] "v"(y));
    return c;
}

/* c + per int32 lane the sum of the two products of x's and y's int16s */
static inline __m512i ks_dpwssd512(__m512i c, __m512i x, __m512i y) {
    __asm__("vpdpwssd %[y], %[x], %[c]" : [c] "+v"(c) : [x] "v"(x), [y] "v"(y));
    return c;
}

#endif
