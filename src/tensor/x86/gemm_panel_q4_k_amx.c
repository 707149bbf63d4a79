/* gemm_panel_q4_k_amx.c — prefill over Q4_K weights repacked in 16-row panels (kernels.h,
 * ks_panel_kernels), on AMX-INT8 tiles.
 *
 * Owns: the Q4_K panel GEMM (its activation layout, panel decoding, tile loop) and
 * ks_gemm_panel_q4_k_amx_register().
 *
 * Each panel is decoded once per call into scratch: its code chunks into B tiles (sub-block
 * j's tile: row g holds the 16 rows' codes 32 j + 4 g .. + 3, the low nibbles of chunk g
 * for g < 4, the high nibbles of chunk g - 4 after), its rows' scales and min pairs into
 * 16-lane vectors (d sc_j as floats, the min pairs as int16 pairs), dmin into floats.
 * Then per tile of 16 tokens (the A tiles: a sub-block's 32 activation codes of each)
 * TDPBSUD gives sub-block j's exact sums C[t][r], and each token's row of C, 16 lanes over
 * the weight rows, is added in as float(C) * (d sc_j * da), as the row GEMM does
 * (gemm_amx.c): the vpmulld by the scales that the GEMV takes per sub-block would keep one
 * port busy twice as long (pp512 of Qwen3-0.6B Q4_K_M 6-11% behind the row GEMM that way).
 * The mins term per super-block is the GEMV's, exact by vpdpwssd, then one FMA. Results
 * match the GEMV's up to the order of float additions. The product of sub-block k + 1 is
 * issued before the float work of sub-block k.
 *
 * Layout of the packed activations (T16 = T rounded up to 16, nsb super-blocks; pad tokens
 * zero):
 *   codes  [T16 / 16][nsb * 8][16][32] int8
 *   da     [T16 / 16][nsb][16] float
 *   sp     [T16 / 16][nsb][4][16] int32: sub-block sums S_2i | S_2i+1 << 16 (int16 each)
 *
 * Compiled with AVX-512 and -mamx-tile -mamx-int8; registered with the "amx" table. */
#include "tensor/x86/kernels_x86.h"

#include "tensor/quants.h"
#include "tensor/x86/amx.h"

#include <immintrin.h>
#include <string.h>

#define TILE 16 /* tokens, and weight rows, per tile */
#define SB 32   /* codes per sub-block */
#define SB_BYTES (TILE * sizeof(ks_block_q4_k))
#define SCALES_AT (2 * TILE * sizeof(ks_fp16))
#define CODES_AT (SCALES_AT + TILE * KS_K_SCALE_BYTES)

#define TA0 0
#define TA1 1
#define TB0 2
#define TB1 3
#define TC0 4
#define TC1 5

static const ks_tile_config tile_cfg = {
    .palette_id = 1,
    .colsb = {[TA0] = SB, [TA1] = SB, [TB0] = 64, [TB1] = 64, [TC0] = 64, [TC1] = 64},
    .rows = {[TA0] = TILE, [TA1] = TILE, [TB0] = SB / 4, [TB1] = SB / 4, [TC0] = TILE, [TC1] = TILE},
};

static size_t n_tiles(int T) { return (size_t)(T + TILE - 1) / TILE; }

typedef struct act_layout {
    size_t nsb, tiles;
    int8_t *codes;
    float *da;
    int32_t *sp;
} act_layout;

static act_layout act_at(void *act, int T, int64_t n) {
    act_layout l = {(size_t)(n / KS_QK_K), n_tiles(T), act, NULL, NULL};
    l.da = (float *)(l.codes + l.tiles * l.nsb * 8 * TILE * SB);
    l.sp = (int32_t *)(l.da + l.tiles * l.nsb * TILE);
    return l;
}

static size_t act_bytes(int T, int64_t n) {
    return n_tiles(T) * (size_t)(n / KS_QK_K) * TILE * (8 * SB + sizeof(float) + 4 * sizeof(int32_t));
}

static void pack_act(const void *row, int t, int T, int64_t n, void *act) {
    act_layout l = act_at(act, T, n);
    const ks_block_q8_k *a = row;
    size_t tile = (size_t)t / TILE, m = (size_t)t % TILE;
    for (size_t b = 0; b < l.nsb; b++) {
        for (size_t j = 0; j < 8; j++) {
            int8_t *dst = l.codes + ((tile * l.nsb + b) * 8 + j) * TILE * SB + m * SB;
            if (a)
                memcpy(dst, a[b].qs + j * SB, SB);
            else
                memset(dst, 0, SB);
        }
        l.da[(tile * l.nsb + b) * TILE + m] = a ? a[b].d : 0.0f;
        for (size_t i = 0; i < 4; i++) {
            uint32_t v = 0;
            if (a) {
                int16_t s0 = (int16_t)(a[b].bsums[4 * i] + a[b].bsums[4 * i + 1]);
                int16_t s1 = (int16_t)(a[b].bsums[4 * i + 2] + a[b].bsums[4 * i + 3]);
                v = (uint32_t)(uint16_t)s0 | (uint32_t)(uint16_t)s1 << 16;
            }
            l.sp[((tile * l.nsb + b) * 4 + i) * TILE + m] = (int32_t)v;
        }
    }
}

/* One panel decoded: B tiles [nsb * 8][8][64], scales [nsb][8][16] and min pairs
 * [nsb][4][16] int32, d and dmin [nsb][16] float; then the C buffers and the per-token
 * float state. */
typedef struct scratch_layout {
    uint8_t *b;
    float *dsc;    /* [nsb][8][16]: d * sc_j per row */
    int32_t *mp;
    float *dmw;
    int32_t *cbuf; /* 2 x [16][16] */
    float *acc, *accm; /* [16][16] each */
} scratch_layout;

static scratch_layout scratch_at(void *scratch, int64_t n) {
    size_t nsb = (size_t)(n / KS_QK_K);
    scratch_layout s;
    s.b = (uint8_t *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    s.dsc = (float *)(s.b + nsb * 8 * 8 * 64);
    s.mp = (int32_t *)(s.dsc + nsb * 8 * TILE);
    s.dmw = (float *)(s.mp + nsb * 4 * TILE);
    s.cbuf = (int32_t *)(s.dmw + nsb * TILE);
    s.acc = (float *)(s.cbuf + 2 * TILE * TILE);
    s.accm = s.acc + TILE * TILE;
    return s;
}

static size_t scratch_bytes(int64_t n) {
    size_t nsb = (size_t)(n / KS_QK_K);
    return 64 + nsb * (8 * 8 * 64 + (8 + 4) * TILE * sizeof(int32_t) + 2 * TILE * sizeof(float)) +
           2 * TILE * TILE * sizeof(int32_t) + 2 * TILE * TILE * sizeof(float);
}

/* vpshufb controls: byte k of each dword, zero-extended; bytes 2i, 2i + 1 as two int16 */
static inline __m512i byte_of_dword(int k) {
    const int c = (int)(0x80808000u | (unsigned)k);
    return _mm512_setr_epi32(c, c + 4, c + 8, c + 12, c, c + 4, c + 8, c + 12, c, c + 4, c + 8, c + 12, c, c + 4,
                             c + 8, c + 12);
}
static inline __m512i words_of_dword(int i) {
    const int c = (int)(0x80008000u | (unsigned)(2 * i) | (unsigned)(2 * i + 1) << 16);
    return _mm512_setr_epi32(c, c + 0x40004, c + 0x80008, c + 0xc000c, c, c + 0x40004, c + 0x80008, c + 0xc000c, c,
                             c + 0x40004, c + 0x80008, c + 0xc000c, c, c + 0x40004, c + 0x80008, c + 0xc000c);
}

static void decode_panel(const uint8_t *panel, size_t nsb, const scratch_layout *s) {
    const __m512i low4 = _mm512_set1_epi8(0x0f), m6 = _mm512_set1_epi8(0x3f), hi2 = _mm512_set1_epi8(0x30);
    for (size_t b = 0; b < nsb; b++) {
        const uint8_t *blk = panel + b * SB_BYTES;
        const __m512i u0 = _mm512_loadu_si512(blk + SCALES_AT), u1 = _mm512_loadu_si512(blk + SCALES_AT + 64),
                      u2 = _mm512_loadu_si512(blk + SCALES_AT + 128);
        const __m512i sc_lo = _mm512_and_si512(u0, m6), mn_lo = _mm512_and_si512(u1, m6);
        const __m512i sc_hi =
            _mm512_or_si512(_mm512_and_si512(u2, low4), _mm512_and_si512(_mm512_srli_epi32(u0, 2), hi2));
        const __m512i mn_hi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(u2, 4), low4),
                                              _mm512_and_si512(_mm512_srli_epi32(u1, 2), hi2));
        const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)blk));
        for (int j = 0; j < 8; j++)
            _mm512_store_ps(s->dsc + (b * 8 + (size_t)j) * TILE,
                            _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_shuffle_epi8(j < 4 ? sc_lo : sc_hi,
                                                                                    byte_of_dword(j % 4)))));
        for (int i = 0; i < 4; i++)
            _mm512_store_si512(s->mp + (b * 4 + (size_t)i) * TILE,
                               _mm512_shuffle_epi8(i < 2 ? mn_lo : mn_hi, words_of_dword(i % 2)));
        _mm512_store_ps(s->dmw + b * TILE,
                        _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(blk + TILE * sizeof(ks_fp16)))));
        for (int c = 0; c < 32; c++) { /* chunk (j, h) = (c / 4, c % 4): B tile j, rows h, h + 4 */
            const __m512i q = _mm512_loadu_si512(blk + CODES_AT + (size_t)c * 64);
            uint8_t *bt = s->b + (b * 8 + (size_t)(c / 4)) * 8 * 64;
            _mm512_store_si512(bt + (size_t)(c % 4) * 64, _mm512_and_si512(q, low4));
            _mm512_store_si512(bt + (size_t)(c % 4 + 4) * 64, _mm512_and_si512(_mm512_srli_epi16(q, 4), low4));
        }
    }
}

#define TILE_PRODUCT(TA, TB, TC, k)                                               \
    do {                                                                          \
        _tile_loadd(TA, codes + (size_t)(k) * TILE * SB, SB);                     \
        _tile_loadd(TB, s->b + (size_t)(k) * 8 * 64, 64);                         \
        _tile_zero(TC);                                                           \
        _tile_dpbsud(TC, TA, TB);                                                 \
    } while (0)

/* acc[t] += float(C[t]) * (d sc_j * da[t]) for the 16 tokens */
static inline void add_scaled(__m512 acc[TILE], const int32_t *c, __m512 dsc, const float *da) {
#pragma GCC unroll 16
    for (int t = 0; t < TILE; t++)
        acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512(c + t * TILE)),
                                 _mm512_mul_ps(dsc, _mm512_set1_ps(da[t])), acc[t]);
}

/* The end of super-block b for the 16 tokens: the mins term, exact, then one FMA. */
static inline void end_super_block(const scratch_layout *s, size_t b, const float *da, const int32_t *sp) {
    const __m512i *mp = (const __m512i *)(s->mp + b * 4 * TILE);
    const __m512 dmw = _mm512_load_ps(s->dmw + b * TILE);
    for (int t = 0; t < TILE; t++) {
        __m512i m0 = _mm512_dpwssd_epi32(_mm512_setzero_si512(), mp[0], _mm512_set1_epi32(sp[0 * TILE + t]));
        __m512i m1 = _mm512_dpwssd_epi32(_mm512_setzero_si512(), mp[1], _mm512_set1_epi32(sp[1 * TILE + t]));
        m0 = _mm512_dpwssd_epi32(m0, mp[2], _mm512_set1_epi32(sp[2 * TILE + t]));
        m1 = _mm512_dpwssd_epi32(m1, mp[3], _mm512_set1_epi32(sp[3 * TILE + t]));
        float *accm = s->accm + (size_t)t * TILE;
        _mm512_store_ps(accm, _mm512_fmadd_ps(_mm512_mul_ps(dmw, _mm512_set1_ps(da[t])),
                                              _mm512_cvtepi32_ps(_mm512_add_epi32(m0, m1)), _mm512_load_ps(accm)));
    }
}

/* The decoded panel x one tile of 16 tokens: s->acc - s->accm per token. */
static void tile_product(const scratch_layout *s, size_t nsb, const int8_t *codes, const float *da, const int32_t *sp) {
    const size_t nk = nsb * 8;
    __m512 acc[TILE];
    for (int t = 0; t < TILE; t++) {
        acc[t] = _mm512_setzero_ps();
        _mm512_store_ps(s->accm + (size_t)t * TILE, _mm512_setzero_ps());
    }
    int32_t *buf0 = s->cbuf, *buf1 = s->cbuf + TILE * TILE;
    TILE_PRODUCT(TA0, TB0, TC0, 0);
    TILE_PRODUCT(TA1, TB1, TC1, 1);
    _tile_stored(TC0, buf0, TILE * 4);
    for (size_t k = 0; k < nk; k += 2) { /* nk is a multiple of 8 */
        /* here: sub-block k is in buf0, k + 1 in C1 */
        if (k + 2 < nk)
            TILE_PRODUCT(TA0, TB0, TC0, k + 2);
        _tile_stored(TC1, buf1, TILE * 4);
        add_scaled(acc, buf0, _mm512_load_ps(s->dsc + k * TILE), da + (k / 8) * TILE);
        if (k + 3 < nk)
            TILE_PRODUCT(TA1, TB1, TC1, k + 3);
        if (k + 2 < nk)
            _tile_stored(TC0, buf0, TILE * 4);
        add_scaled(acc, buf1, _mm512_load_ps(s->dsc + (k + 1) * TILE), da + (k / 8) * TILE);
        if ((k + 2) % 8 == 0) {
            size_t b = k / 8;
            end_super_block(s, b, da + b * TILE, sp + b * 4 * TILE);
        }
    }
    for (int t = 0; t < TILE; t++)
        _mm512_store_ps(s->acc + (size_t)t * TILE, acc[t]);
}

static void run(const void *w, size_t w_row_bytes, int64_t r0, int64_t r1, const void *act, int T, int64_t n,
                float *y, size_t ldy, void *scratch) {
    act_layout l = act_at((void *)act, T, n);
    scratch_layout s = scratch_at(scratch, n);
    ks_tile_load_config(&tile_cfg);
    for (int64_t p0 = r0; p0 < r1; p0 += TILE) {
        decode_panel((const uint8_t *)w + (size_t)p0 * w_row_bytes, l.nsb, &s);
        for (size_t tt = 0; tt < l.tiles; tt++) {
            tile_product(&s, l.nsb, l.codes + tt * l.nsb * 8 * TILE * SB, l.da + tt * l.nsb * TILE,
                         l.sp + tt * l.nsb * 4 * TILE);
            int mt = (int)((size_t)T - tt * TILE < TILE ? (size_t)T - tt * TILE : TILE);
            for (int m = 0; m < mt; m++)
                _mm512_storeu_ps(y + (tt * TILE + (size_t)m) * ldy + p0,
                                 _mm512_sub_ps(_mm512_load_ps(s.acc + (size_t)m * TILE),
                                               _mm512_load_ps(s.accm + (size_t)m * TILE)));
        }
    }
    _tile_release();
}

void ks_gemm_panel_q4_k_amx_register(ks_kernels *k) {
    k->panel[KS_TYPE_Q4_K].gemm = (ks_gemm_kernel){
        .act_bytes = act_bytes,
        .pack_act = pack_act,
        .scratch_bytes = scratch_bytes,
        .run = run,
    };
}
