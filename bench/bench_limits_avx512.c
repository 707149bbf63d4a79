/* bench_limits_avx512.c — the AVX-512 and AMX loops of bench_limits.h: a read-bandwidth
 * loop on 64-byte loads, the VNNI vpdpbusd peak (what kvserve's AVX-512 kernels multiply
 * int8 codes with) and the AMX TDPBUSD peak (what llama.cpp's AMX kernels use on CPUs
 * that have it). Compiled with -mavx512f -mavx512bw -mavx512vnni -mamx-tile -mamx-int8; each
 * function is called only when the CPU (and, for AMX, the OS) runs its instructions. */
#include "bench_limits.h"
#include "tensor/x86/amx.h"
#include "tensor/x86/vnni_x86.h"

#include <cpuid.h>
#include <immintrin.h>
#include <string.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

/* Four independent 64-bit sums, 256 bytes an iteration (see bench_limits_avx2.c). */
uint64_t ks_bench_limits_read_avx512(const void *buf, size_t bytes) {
    const __m512i *p = buf;
    __m512i s0 = _mm512_setzero_si512(), s1 = s0, s2 = s0, s3 = s0;
    for (size_t i = 0, n = bytes / 64; i + 4 <= n; i += 4) {
        s0 = _mm512_add_epi64(s0, _mm512_load_si512(p + i));
        s1 = _mm512_add_epi64(s1, _mm512_load_si512(p + i + 1));
        s2 = _mm512_add_epi64(s2, _mm512_load_si512(p + i + 2));
        s3 = _mm512_add_epi64(s3, _mm512_load_si512(p + i + 3));
    }
    __m512i s = _mm512_add_epi64(_mm512_add_epi64(s0, s1), _mm512_add_epi64(s2, s3));
    return (uint64_t)_mm512_reduce_add_epi64(s);
}

/* vpdpbusd zmm: 64 unsigned x signed byte products, summed by fours into 16 int32
 * lanes of the accumulator. The accumulator is an operand, so every step stays; twelve
 * chains cover its latency (5 cycles) at two issues per cycle. */
#define VNNI_CHAINS 12
#define VNNI_MACS_PER_STEP 64

uint64_t ks_bench_limits_int8_avx512_vnni(int64_t iters, const uint8_t *a, const int8_t *b,
                                          int32_t *sink) {
    const __m512i va = _mm512_loadu_si512(a), vb = _mm512_loadu_si512(b);
    __m512i acc[VNNI_CHAINS];
    for (int c = 0; c < VNNI_CHAINS; c++)
        acc[c] = _mm512_setzero_si512();
    for (int64_t i = 0; i < iters; i++)
        for (int c = 0; c < VNNI_CHAINS; c++)
            acc[c] = ks_dpbusd512(acc[c], va, vb); /* one instruction each (vnni_x86.h) */
    __m512i s = acc[0];
    for (int c = 1; c < VNNI_CHAINS; c++)
        s = _mm512_add_epi32(s, acc[c]);
    *sink = _mm512_reduce_add_epi32(s);
    return (uint64_t)iters * VNNI_CHAINS * VNNI_MACS_PER_STEP;
}

/* ---- AMX ------------------------------------------------------------------------------ */

/* Linux's request for the AMX tile data state (asm/prctl.h, xfeature 18). */
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

bool ks_bench_limits_amx_enable(void) {
    static int state = -1; /* -1 unknown, 0 no, 1 yes */
    if (state >= 0)
        return state == 1;
    unsigned a, b, c, d;
    state = 0;
    if (__get_cpuid_max(0, NULL) < 7)
        return false;
    __cpuid_count(7, 0, a, b, c, d);
    bool tile = (d >> 24) & 1, int8 = (d >> 25) & 1;
#if defined(__linux__)
    if (tile && int8 && syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0)
        state = 1;
#else
    (void)tile;
    (void)int8;
#endif
    return state == 1;
}

/* Tiles 0-3 accumulate C (16 x 16 int32), 4-5 hold A (16 rows of 64 u8), 6-7 hold B
 * (16 rows of 16 x 4 s8): each TDPBUSD is 16 x 16 x 64 multiply-adds, and the four of a
 * round are independent. */
#define AMX_ROWS 16
#define AMX_ROW_BYTES 64
#define AMX_MACS_PER_OP (16 * 16 * 64)

uint64_t ks_bench_limits_int8_amx(int64_t iters, const uint8_t *a, const int8_t *b, int32_t *sink) {
    ks_tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette_id = 1;
    for (int t = 0; t < 8; t++) {
        cfg.rows[t] = AMX_ROWS;
        cfg.colsb[t] = AMX_ROW_BYTES;
    }
    ks_tile_load_config(&cfg);
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    _tile_loadd(4, a, AMX_ROW_BYTES);
    _tile_loadd(5, a + AMX_ROWS * AMX_ROW_BYTES, AMX_ROW_BYTES);
    _tile_loadd(6, b, AMX_ROW_BYTES);
    _tile_loadd(7, b + AMX_ROWS * AMX_ROW_BYTES, AMX_ROW_BYTES);
    for (int64_t i = 0; i < iters; i++) {
        _tile_dpbusd(0, 4, 6);
        _tile_dpbusd(1, 4, 7);
        _tile_dpbusd(2, 5, 6);
        _tile_dpbusd(3, 5, 7);
    }
    int32_t c[AMX_ROWS * AMX_ROW_BYTES / 4];
    _tile_stored(0, c, AMX_ROW_BYTES);
    int32_t s = c[0];
    _tile_stored(3, c, AMX_ROW_BYTES);
    *sink = s ^ c[AMX_ROWS * AMX_ROW_BYTES / 4 - 1];
    _tile_release();
    return (uint64_t)iters * 4 * AMX_MACS_PER_OP;
}
