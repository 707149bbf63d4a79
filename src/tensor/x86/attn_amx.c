/* attn_amx.c — streaming attention over F16 K/V with AMX-BF16 tiles, for prefill groups
 * (the attn_tile_f16 entry of the "amx" table; contract in kernels.h).
 *
 * Per KV head and block of up to 32 keys, for nq query rows of n elements (n = 32 c):
 *
 *   scores   S^T = K Q^T  (keys x rows): A tiles are K's rows as they are (16 keys x 32
 *            elements), B tiles the queries transposed in pairs (prepared once per item
 *            by prep_q), so nothing of the block is transposed;
 *   softmax  on S^T's rows, query rows in vector lanes: the running max, the weights and
 *            their sums are lane-wise operations over the keys;
 *   values   O += P V  (rows x n): A tiles are P (rows x 32 keys, P^T transposed once, a
 *            32 x 16 matrix per row tile), B tiles V's rows interleaved in pairs of keys
 *            (the VNNI layout: row i holds keys 2i and 2i+1 element by element); the
 *            accumulators are the caller's rows, loaded into C tiles and stored back.
 *
 * Precision: BF16 keeps 8 significant bits; every operand x is split into hi = bf16(x)
 * and lo = bf16(x - hi), and a product is taken as hi.hi + hi.lo + lo.hi (F32 sums):
 * F16 keys and values (11 bits) are exact as hi + lo, the queries and weights keep ~16
 * bits, so scores and outputs match the F32 kernels to ~1e-5 relative, below what the
 * F16 cache itself rounds away.
 *
 * Tiles (palette 1, every tile 16 rows x 64 bytes):
 *   0  C  scores (16 keys x 16 rows, F32)       5  C  output (16 rows x 16 elements, F32)
 *   1  A  K hi (16 keys x 32 elements)          6  A  P hi (16 rows x 32 keys)
 *   2  A  K lo                                  7  A  P lo
 *   3  B  Q hi / V hi                           4  B  Q lo / V lo
 *
 * Scratch (per thread): K hi/lo (32 x n BF16 each), V hi/lo in pairs (16 x 2n each), the
 * scores (32 x rows F32), P hi/lo (rows x 32 BF16 each), a padded row tile of the output
 * for a last tile of fewer than 16 rows. */
#include "tensor/kernels.h"
#include "tensor/x86/amx.h"
#include "tensor/x86/kernels_x86.h"
#include "tensor/x86/transpose_avx512.h"

#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define KEYS KS_ATTN_TILE_KEYS /* 32: one K-step of a P V tile product */
#define TILE 16

static int row_tiles(int nq) { return (nq + TILE - 1) / TILE; }

/* Row tiles of the prepared queries and of the scores: an even count (a last one of zero
 * queries where needed), as the scores are taken two row tiles at a time. */
static int score_tiles(int nq) { return (row_tiles(nq) + 1) & ~1; }

/* ---- BF16 splits ---------------------------------------------------------------------- */

/* The 16 floats of a BF16 vector's half (the exact values). */
static inline __m512 bf16_lo_to_ps(__m512i v32x16) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(v32x16, 16));
}

/* x = hi + lo for 32 floats (x0: elements 0..15, x1: 16..31): the BF16 parts, 32 each. */
static inline void split32(__m512 x0, __m512 x1, __m512i *hi, __m512i *lo) {
    const __m512i h = (__m512i)_mm512_cvtne2ps_pbh(x1, x0);
    const __m512 h0 = bf16_lo_to_ps(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(h)));
    const __m512 h1 = bf16_lo_to_ps(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(h, 1)));
    *hi = h;
    *lo = (__m512i)_mm512_cvtne2ps_pbh(_mm512_sub_ps(x1, h1), _mm512_sub_ps(x0, h0));
}

/* e^x for the 16 lanes of x <= 0 (the softmax's weights): x = k ln2 + f, |f| <= ln2 / 2,
 * e^f by its Taylor polynomial to f^7 (relative error < 2e-7 on that range), times 2^k by
 * vscalefps, which underflows to 0 as the product would. */
static inline __m512 exp_ps(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-105.0f));
    const __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 f = _mm512_fnmadd_ps(k, _mm512_set1_ps(0.693359375f), x);
    f = _mm512_fnmadd_ps(k, _mm512_set1_ps(-2.12194440e-4f), f);
    static const float c[] = {1.0f / 5040, 1.0f / 720, 1.0f / 120, 1.0f / 24, 1.0f / 6, 0.5f, 1.0f, 1.0f};
    __m512 p = _mm512_set1_ps(c[0]);
    for (int i = 1; i < 8; i++)
        p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(c[i]));
    return _mm512_scalef_ps(p, k);
}

/* ---- queries ---------------------------------------------------------------------------- */

/* Prepared queries: for hi then lo, per element chunk c (32 elements) and row tile t, a
 * B tile of 16 rows (element pairs) x 16 columns (query rows) of BF16 pairs. */
static size_t q_bytes(int nq, int64_t n) {
    return 2 * (size_t)(n / 32) * (size_t)score_tiles(nq) * 1024;
}

static void prep_q(const float *q, int64_t ld_q, int nq, int64_t n, float scale, void *qp) {
    const int nc = (int)(n / 32), nt = score_tiles(nq);
    uint32_t *hi = qp, *lo = hi + (size_t)nc * nt * 256;
    memset(qp, 0, q_bytes(nq, n));
    const __m512 sc = _mm512_set1_ps(scale);
    for (int r = 0; r < nq; r++) {
        const float *qr = q + (size_t)r * ld_q;
        const int t = r / TILE, col = r % TILE;
        for (int c = 0; c < nc; c++) {
            __m512i h, l;
            split32(_mm512_mul_ps(sc, _mm512_loadu_ps(qr + 32 * c)), _mm512_mul_ps(sc, _mm512_loadu_ps(qr + 32 * c + 16)),
                    &h, &l);
            uint32_t hw[16], lw[16];
            _mm512_storeu_si512(hw, h);
            _mm512_storeu_si512(lw, l);
            uint32_t *th = hi + ((size_t)c * nt + t) * 256, *tl = lo + ((size_t)c * nt + t) * 256;
            for (int i = 0; i < 16; i++) { /* pair i of this row: tile row i, column col */
                th[i * 16 + col] = hw[i];
                tl[i * 16 + col] = lw[i];
            }
        }
    }
}

/* ---- scratch ---------------------------------------------------------------------------- */

typedef struct scratch {
    uint16_t *kh, *kl;  /* (32, n) BF16 */
    uint32_t *vh, *vl;  /* (16, n) pairs of BF16 */
    float *s;           /* (32, nt * 16) scores, keys by rows */
    uint16_t *ph, *pl;  /* (nt * 16, 32) BF16 weights */
    float *pad;         /* (16, n) a short last row tile of the output */
} scratch;

static scratch carve(void *mem, int nq, int64_t n) {
    const size_t nt = (size_t)row_tiles(nq), ns = (size_t)score_tiles(nq);
    uint8_t *p = mem;
    scratch s;
    s.kh = (uint16_t *)p; p += KEYS * (size_t)n * 2;
    s.kl = (uint16_t *)p; p += KEYS * (size_t)n * 2;
    s.vh = (uint32_t *)p; p += KEYS / 2 * (size_t)n * 4;
    s.vl = (uint32_t *)p; p += KEYS / 2 * (size_t)n * 4;
    s.s = (float *)p;     p += KEYS * ns * TILE * 4;
    s.ph = (uint16_t *)p; p += nt * TILE * KEYS * 2;
    s.pl = (uint16_t *)p; p += nt * TILE * KEYS * 2;
    s.pad = (float *)p;
    return s;
}

static size_t scratch_bytes(int nq, int64_t n) {
    const size_t nt = (size_t)row_tiles(nq), ns = (size_t)score_tiles(nq);
    return 2 * KEYS * (size_t)n * 2 + 2 * KEYS / 2 * (size_t)n * 4 + KEYS * ns * TILE * 4 + 2 * nt * TILE * KEYS * 2 +
           TILE * (size_t)n * 4 + 64;
}

/* ---- one block ------------------------------------------------------------------------ */

static void tiles_config(void) {
    ks_tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette_id = 1;
    for (int t = 0; t < 8; t++) {
        cfg.rows[t] = TILE;
        cfg.colsb[t] = 64;
    }
    ks_tile_load_config(&cfg);
}

/* 16 halves at p as floats, lanes past cnt 0. */
static inline __m512 load_h(const ks_fp16 *p, int cnt) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16((__mmask16)((1u << cnt) - 1), p));
}

/* K rows into hi/lo BF16 rows; V rows into hi/lo pairs of keys; rows past nk zero. */
static void stage_kv(const scratch *s, int64_t n, const ks_fp16 *k, const ks_fp16 *v, int64_t ld, int nk) {
    for (int j = 0; j < KEYS; j++)
        for (int64_t c = 0; c < n; c += 32) {
            __m512i h = _mm512_setzero_si512(), l = h;
            if (j < nk)
                split32(load_h(k + j * ld + c, 16), load_h(k + j * ld + c + 16, 16), &h, &l);
            _mm512_storeu_si512(s->kh + j * n + c, h);
            _mm512_storeu_si512(s->kl + j * n + c, l);
        }
    for (int i = 0; i < KEYS / 2; i++) {
        const int j0 = 2 * i, j1 = 2 * i + 1;
        for (int64_t c = 0; c < n; c += 16) {
            /* keys j0 and j1, elements c..c+15: split each, then interleave element-wise */
            const __m512 a = j0 < nk ? load_h(v + j0 * ld + c, 16) : _mm512_setzero_ps();
            const __m512 b = j1 < nk ? load_h(v + j1 * ld + c, 16) : _mm512_setzero_ps();
            __m512i h, l;
            split32(a, b, &h, &l); /* h: a's 16 BF16 then b's */
            const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23,
                                                 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
            _mm512_storeu_si512(s->vh + i * n + c, _mm512_permutexvar_epi16(idx, h));
            _mm512_storeu_si512(s->vl + i * n + c, _mm512_permutexvar_epi16(idx, l));
        }
    }
}

/* The softmax step of row tile t over the scores in s->s, its weights into P hi/lo; returns
 * the per-row factor the output rows are to be scaled by (lanes: rows). */
static __m512 softmax_tile(const scratch *s, int t, int ns, int nq, int nk, const int *lim, int p0, float *m,
                           float *l) {
    const int r0 = t * TILE, cnt = nq - r0 < TILE ? nq - r0 : TILE;
    const __mmask16 live = (__mmask16)((1u << cnt) - 1);
    const __m512i vis = _mm512_sub_epi32(_mm512_maskz_loadu_epi32(live, lim + r0), _mm512_set1_epi32(p0));
    const __m512 m_old = _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), live, m + r0);
    const float *st = s->s + r0; /* key j's scores of these rows at st + j * ns * 16 */
    const int ld = ns * TILE;
    __m512 mx = m_old;
    for (int j = 0; j < nk; j++) {
        const __mmask16 on = _mm512_mask_cmpgt_epi32_mask(live, vis, _mm512_set1_epi32(j));
        mx = _mm512_mask_max_ps(mx, on, mx, _mm512_loadu_ps(st + j * ld));
    }
    /* rows that see nothing yet keep m = -inf: their weights are 0, their factor 1 */
    const __mmask16 seen = _mm512_cmp_ps_mask(mx, _mm512_set1_ps(-INFINITY), _CMP_NEQ_OQ);
    const __m512 base = _mm512_mask_blend_ps(seen, _mm512_setzero_ps(), mx);
    __m512 w[KEYS]; /* key j's weights, lanes: rows */
    __m512 sum = _mm512_setzero_ps();
    for (int j = 0; j < KEYS; j++) {
        const __mmask16 on = j < nk ? _mm512_mask_cmpgt_epi32_mask(live & seen, vis, _mm512_set1_epi32(j)) : 0;
        const __m512 p = on ? _mm512_maskz_mov_ps(on, exp_ps(_mm512_maskz_sub_ps(on, _mm512_loadu_ps(st + j * ld), base)))
                            : _mm512_setzero_ps();
        w[j] = p;
        sum = _mm512_add_ps(sum, p);
    }
    /* the factor of the rows' old state: e^(m - m'); 0 where m was -inf (nothing seen:
     * l and the output are 0), 1 where nothing is seen still */
    const __mmask16 had = _mm512_cmp_ps_mask(m_old, _mm512_set1_ps(-INFINITY), _CMP_NEQ_OQ);
    __m512 corr = _mm512_mask_blend_ps(seen, _mm512_set1_ps(1.0f), _mm512_setzero_ps());
    corr = _mm512_mask_mov_ps(corr, seen & had, exp_ps(_mm512_sub_ps(m_old, mx)));
    _mm512_mask_storeu_ps(l + r0, live, _mm512_add_ps(_mm512_mul_ps(_mm512_mask_loadu_ps(_mm512_setzero_ps(), live, l + r0), corr), sum));
    _mm512_mask_storeu_ps(m + r0, live & seen, mx);
    /* P^T (keys x rows) into P (rows x keys), hi and lo */
    ks_transpose16_ps(w);
    ks_transpose16_ps(w + TILE);
    for (int r = 0; r < TILE; r++) {
        __m512i h, lo;
        split32(w[r], w[TILE + r], &h, &lo);
        _mm512_storeu_si512(s->ph + (size_t)(r0 + r) * KEYS, h);
        _mm512_storeu_si512(s->pl + (size_t)(r0 + r) * KEYS, lo);
    }
    return corr;
}

static void block(const void *qp, int nq, int64_t n, const ks_fp16 *k, const ks_fp16 *v, int64_t ld_kv, int nk,
                  const int *lim, int p0, float *m, float *l, float *acc, int64_t ld_acc, void *mem) {
    const int nc = (int)(n / 32), nt = row_tiles(nq);
    const scratch s = carve(mem, nq, n);
    const uint8_t *qh = qp, *ql = qh + (size_t)nc * score_tiles(nq) * 1024;
    stage_kv(&s, n, k, v, ld_kv, nk);
    tiles_config();

    /* scores: S^T = K Q^T, 16 keys x 16 rows a tile; two row tiles at a time (C tiles 0
     * and 5), so that two chains of tile products overlap */
    const int ns = score_tiles(nq);
    const size_t ld_s = (size_t)ns * TILE;
    for (int kt = 0; kt * TILE < nk; kt++) {
        const uint16_t *kh = s.kh + (size_t)kt * TILE * n, *kl = s.kl + (size_t)kt * TILE * n;
        float *srow = s.s + (size_t)kt * TILE * ld_s;
        for (int t = 0; t < ns; t += 2) {
            _tile_zero(0);
            _tile_zero(5);
            for (int c = 0; c < nc; c++) {
                _tile_loadd(1, kh + 32 * c, n * 2);
                _tile_loadd(2, kl + 32 * c, n * 2);
                _tile_loadd(3, qh + ((size_t)c * ns + t) * 1024, 64);
                _tile_loadd(4, ql + ((size_t)c * ns + t) * 1024, 64);
                _tile_loadd(6, qh + ((size_t)c * ns + t + 1) * 1024, 64);
                _tile_loadd(7, ql + ((size_t)c * ns + t + 1) * 1024, 64);
                _tile_dpbf16ps(0, 1, 3);
                _tile_dpbf16ps(5, 1, 6);
                _tile_dpbf16ps(0, 1, 4);
                _tile_dpbf16ps(5, 1, 7);
                _tile_dpbf16ps(0, 2, 3);
                _tile_dpbf16ps(5, 2, 6);
            }
            _tile_stored(0, srow + t * TILE, ld_s * 4);
            _tile_stored(5, srow + (t + 1) * TILE, ld_s * 4);
        }
    }

    for (int t = 0; t < nt; t++) {
        const int r0 = t * TILE, cnt = nq - r0 < TILE ? nq - r0 : TILE;
        const __m512 corr = softmax_tile(&s, t, ns, nq, nk, lim, p0, m, l);
        /* the output rows: scaled by their factors, then += P V in tiles */
        float *o = cnt == TILE ? acc + (size_t)r0 * ld_acc : s.pad;
        const int64_t ld_o = cnt == TILE ? ld_acc : n;
        float cf[TILE];
        _mm512_storeu_ps(cf, corr);
        for (int r = 0; r < TILE; r++) {
            float *dst = o + (size_t)r * ld_o;
            if (r >= cnt) {
                memset(dst, 0, (size_t)n * sizeof(float));
                continue;
            }
            const float *src = acc + (size_t)(r0 + r) * ld_acc;
            const __m512 f = _mm512_set1_ps(cf[r]);
            if (cf[r] != 1.0f || dst != src)
                for (int64_t e = 0; e < n; e += 16)
                    _mm512_storeu_ps(dst + e, _mm512_mul_ps(f, _mm512_loadu_ps(src + e)));
        }
        _tile_loadd(6, s.ph + (size_t)r0 * KEYS, KEYS * 2);
        _tile_loadd(7, s.pl + (size_t)r0 * KEYS, KEYS * 2);
        /* two output tiles at a time (C tiles 5 and 0, V tiles 3, 4 and 1, 2): n / 16 is
         * even as n is a multiple of 32 */
        for (int64_t e = 0; e < n; e += 2 * TILE) {
            _tile_loadd(5, o + e, ld_o * 4);
            _tile_loadd(0, o + e + TILE, ld_o * 4);
            _tile_loadd(3, s.vh + e, n * 4);
            _tile_loadd(4, s.vl + e, n * 4);
            _tile_loadd(1, s.vh + e + TILE, n * 4);
            _tile_loadd(2, s.vl + e + TILE, n * 4);
            _tile_dpbf16ps(5, 6, 3);
            _tile_dpbf16ps(0, 6, 1);
            _tile_dpbf16ps(5, 6, 4);
            _tile_dpbf16ps(0, 6, 2);
            _tile_dpbf16ps(5, 7, 3);
            _tile_dpbf16ps(0, 7, 1);
            _tile_stored(5, o + e, ld_o * 4);
            _tile_stored(0, o + e + TILE, ld_o * 4);
        }
        if (cnt < TILE)
            for (int r = 0; r < cnt; r++)
                memcpy(acc + (size_t)(r0 + r) * ld_acc, o + (size_t)r * ld_o, (size_t)n * sizeof(float));
    }
}

void ks_attn_amx_register(ks_kernels *k) {
    k->attn_tile_f16 = (ks_attn_tile_kernel){q_bytes, prep_q, scratch_bytes, block};
}
