/* bench_limits_avx2.c — the AVX2 loops of bench_limits.h: a read-bandwidth loop and the
 * int8 dot-product peak of the instruction pair kvserve's AVX2 kernels multiply codes
 * with. Compiled with -mavx2; called only when the CPU and OS run AVX2. */
#include "bench_limits.h"

#include <immintrin.h>

/* Four independent 64-bit sums, 128 bytes an iteration: the adds never limit the loop,
 * the loads (memory) do. */
uint64_t ks_bench_limits_read_avx2(const void *buf, size_t bytes) {
    const __m256i *p = buf;
    __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
    for (size_t i = 0, n = bytes / 32; i + 4 <= n; i += 4) {
        s0 = _mm256_add_epi64(s0, _mm256_load_si256(p + i));
        s1 = _mm256_add_epi64(s1, _mm256_load_si256(p + i + 1));
        s2 = _mm256_add_epi64(s2, _mm256_load_si256(p + i + 2));
        s3 = _mm256_add_epi64(s3, _mm256_load_si256(p + i + 3));
    }
    __m256i s = _mm256_add_epi64(_mm256_add_epi64(s0, s1), _mm256_add_epi64(s2, s3));
    __m128i h = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    return (uint64_t)_mm_cvtsi128_si64(h) + (uint64_t)_mm_extract_epi64(h, 1);
}

/* One step multiplies 32 unsigned by 32 signed bytes and adds them into 8 int32 lanes,
 * as the AVX2 kernels do: vpmaddubsw (pairs into int16), vpmaddwd by ones (pairs into
 * int32), vpaddd. Each chain feeds its vpmaddubsw result back as the next step's
 * unsigned operand (saturated values; only the instruction count matters), so no step is
 * loop-invariant and the compiler keeps every one; eight chains hide the latency.
 * 32 multiply-adds per chain step. */
#define AVX2_CHAINS 8
#define AVX2_MACS_PER_STEP 32

uint64_t ks_bench_limits_int8_avx2(int64_t iters, const uint8_t *a, const int8_t *b,
                                   int32_t *sink) {
    const __m256i vb = _mm256_loadu_si256((const __m256i *)b);
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i x[AVX2_CHAINS], acc[AVX2_CHAINS];
    for (int c = 0; c < AVX2_CHAINS; c++) {
        x[c] = _mm256_loadu_si256((const __m256i *)(a + (c & 1) * 32));
        acc[c] = _mm256_setzero_si256();
    }
    for (int64_t i = 0; i < iters; i++)
        for (int c = 0; c < AVX2_CHAINS; c++) {
            x[c] = _mm256_maddubs_epi16(x[c], vb);
            acc[c] = _mm256_add_epi32(acc[c], _mm256_madd_epi16(x[c], ones));
        }
    __m256i s = acc[0];
    for (int c = 1; c < AVX2_CHAINS; c++)
        s = _mm256_add_epi32(s, acc[c]);
    *sink = _mm256_extract_epi32(s, 0) ^ _mm256_extract_epi32(s, 7);
    return (uint64_t)iters * AVX2_CHAINS * AVX2_MACS_PER_STEP;
}
