/* quants_k_ref.c — reference codecs for the 256-element K-quant super-blocks: Q2_K,
 * Q3_K, Q4_K, Q5_K, Q6_K (weights) and Q8_K (activations).
 *
 * Does not own: the 32-element types (quants_ref.c), the block layouts and the
 * scale/min unpacking (quants.h).
 *
 * A K-quant stores each sub-block's scale (and min) in 6 or 8 bits against one fp16
 * scale per super-block, so quantizing is two-level:
 *
 *   1. per sub-block, search the scale (and min) that minimise a weighted squared
 *      error, with the codes they imply;
 *   2. quantize those sub-block scales against the super-block's largest, store them,
 *      and round every element again against the scale it will actually be decoded
 *      with (the stored one, not the searched one).
 *
 * The searches are the ones llama.cpp uses when quantizing without an importance
 * matrix, so that kvserve's files are as good as llama-quantize's:
 *
 *   Q4_K, Q5_K  x ~ s * L - m, L in 0..nmax (15, 31), per 32 elements:
 *               search_scale_min(), weights w = rms(sub-block) + |x|.
 *   Q2_K        x ~ s * L - m, L in 0..3, per 16 elements: search_scale_min(), w = |x|.
 *   Q6_K, Q3_K  x ~ s * (L - z), L in 0..2z-1 (z 32, 4), per 16 elements:
 *               search_scale_symmetric(), weights w = x^2.
 *   Q8_K        |x|max -> 127, no search (activations are quantized on every step).
 *
 * Divisions: rounding and the two searches; the shared Q4_K/Q5_K super-block;
 * Q4_K; Q5_K; Q6_K; Q2_K and Q3_K; Q8_K. */
#include "tensor/ref/quants_ref.h"

#include "tensor/fp16.h"
#include "tensor/quants.h"

#include <math.h>
#include <string.h>

/* A sub-block whose largest magnitude is below this is all zeros: no scale to search,
 * and 1/max would overflow. */
#define ZERO_GROUP_EPS 1e-15f

/* Round to nearest, ties to even, for |v| < 2^22, without a library call: in
 * [2^23, 2^24) a float's unit in the last place is exactly 1, so adding 1.5 * 2^23 makes
 * the FPU round v to an integer (ties to even, the default mode) and leaves 2^22 + v in
 * the low 23 bits. Every caller's argument is a code of at most a few thousand; for
 * garbage input (inf, NaN) the result is garbage but defined, and callers clamp it. */
static inline int nearest(float v) {
    const float shifted = v + 12582912.0f; /* 1.5 * 2^23 */
    uint32_t bits;
    memcpy(&bits, &shifted, sizeof bits);
    return (int)(bits & 0x007fffff) - 0x00400000;
}

static inline int clamp_int(int v, int lo, int hi) {
    return v < lo ? lo : v > hi ? hi : v;
}

/* ---- the searches ----------------------------------------------------------------- */

/* Scale and min of one sub-block of n (<= 32) elements under the model
 *
 *     x[i] ~ scale * L[i] + min,   L[i] in 0..nmax,  min <= 0
 *
 * minimising E = sum w[i] (scale L[i] + min - x[i])^2.
 *
 * With the codes fixed, (scale, min) is a weighted linear regression of x on L, solved
 * by its 2x2 normal equations
 *
 *     [ Sw  Sl  ] [min  ]   [ Sx  ]       Sw = sum w,    Sl  = sum w L,
 *     [ Sl  Sll ] [scale] = [ Sxl ]       Sx = sum w x,  Sll = sum w L^2,  Sxl = sum w x L
 *
 *     D = Sw Sll - Sl^2,  scale = (Sw Sxl - Sx Sl) / D,  min = (Sll Sx - Sl Sxl) / D.
 *
 * With (scale, min) fixed, the best codes are the rounded (x - min) / scale. Neither
 * step alone finds the joint optimum, so the search starts from the plain range
 * mapping (min = min(x, 0), scale = range / nmax), then tries nstep + 1 step sizes
 * around it,
 *
 *     1/scale_k = (nmax + rmin + k * rdelta) / (max - min),   k = 0 .. nstep,
 *
 * rounding the codes for each, fitting (scale, min) to those codes, and keeping the
 * fit of least E. A positive min cannot be stored (the format subtracts it), so such a
 * fit is refit with min = 0: scale = Sxl / Sll. The offset used to round candidate k
 * is the best min found before it, so the candidates follow the improving fit.
 *
 * Writes the best codes to L and *neg_min = -min (>= 0, what the decoder subtracts);
 * returns scale (0 for a constant sub-block, whose codes are all 0). */
static float search_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *L,
                              float *neg_min, float rmin, float rdelta, int nstep) {
    float lo = x[0], hi = x[0];
    float sum_w = w[0], sum_x = w[0] * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < lo)
            lo = x[i];
        if (x[i] > hi)
            hi = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (lo > 0)
        lo = 0;
    if (hi == lo) {
        memset(L, 0, (size_t)n);
        *neg_min = -lo;
        return 0.0f;
    }

    /* The plain range mapping, as the first fit to beat. */
    float min = lo;
    float iscale = (float)nmax / (hi - min);
    float scale = 1.0f / iscale;
    float best_err = 0.0f;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)clamp_int(nearest(iscale * (x[i] - min)), 0, nmax);
        const float diff = scale * L[i] + min - x[i];
        best_err += w[i] * (diff * diff);
    }

    uint8_t cand[32];
    for (int k = 0; k <= nstep; k++) {
        iscale = (rmin + rdelta * (float)k + (float)nmax) / (hi - min);
        float sl = 0.0f, sll = 0.0f, sxl = 0.0f;
        for (int i = 0; i < n; i++) {
            const int l = clamp_int(nearest(iscale * (x[i] - min)), 0, nmax);
            cand[i] = (uint8_t)l;
            sl += w[i] * (float)l;
            sll += w[i] * (float)l * (float)l;
            sxl += w[i] * (float)l * x[i];
        }
        const float det = sum_w * sll - sl * sl;
        if (!(det > 0))
            continue; /* all codes equal: the regression is singular */
        float s = (sum_w * sxl - sum_x * sl) / det;
        float m = (sll * sum_x - sl * sxl) / det;
        if (m > 0) {
            m = 0;
            s = sxl / sll;
        }
        float err = 0.0f;
        for (int i = 0; i < n; i++) {
            const float diff = s * cand[i] + m - x[i];
            err += w[i] * (diff * diff);
        }
        if (err < best_err) {
            memcpy(L, cand, (size_t)n);
            best_err = err;
            scale = s;
            min = m;
        }
    }
    *neg_min = -min;
    return scale;
}

/* Codes l = round(iscale * x) in -nmax .. nmax-1, stored as l + nmax. */
static void symmetric_codes(int n, int nmax, const float *x, float iscale, int8_t *L) {
    for (int i = 0; i < n; i++)
        L[i] = (int8_t)(clamp_int(nearest(iscale * x[i]), -nmax, nmax - 1) + nmax);
}

/* Sxl = sum w x l and Sll = sum w l^2 of those codes, w = x^2. */
static void symmetric_sums(int n, int nmax, const float *x, float iscale, float *sxl_out,
                           float *sll_out) {
    float sxl = 0.0f, sll = 0.0f;
    for (int i = 0; i < n; i++) {
        const int l = clamp_int(nearest(iscale * x[i]), -nmax, nmax - 1);
        const float w = x[i] * x[i];
        sxl += w * x[i] * (float)l;
        sll += w * (float)l * (float)l;
    }
    *sxl_out = sxl;
    *sll_out = sll;
}

/* Scale of one sub-block of n elements under the symmetric model
 *
 *     x[i] ~ scale * l[i],   l[i] in -nmax .. nmax-1,   stored as L[i] = l[i] + nmax,
 *
 * weighting the squared error of element i by w[i] = x[i]^2 (large weights matter
 * most to a dot product). For fixed codes the best scale is Sxl / Sll (Sxl = sum w x l,
 * Sll = sum w l^2), and the error it leaves is
 *
 *     sum w x^2 - Sxl^2 / Sll,
 *
 * so the search maximises Sxl^2 / Sll. Candidates: the element of largest magnitude,
 * with its sign, mapped to -nmax (as in Q4_0, the spare negative level goes to it),
 * and then to -(nmax + t/10) for t = -9 .. 9 (t != 0), each with its codes rounded.
 *
 * Writes the best codes to L; returns the scale (its sign opposite to the extreme
 * element's: the codes of positive elements are negative), 0 for an all-zero group. */
static float search_scale_symmetric(int n, int nmax, const float *x, int8_t *L) {
    float amax = 0.0f, ext = 0.0f;
    for (int i = 0; i < n; i++) {
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            ext = x[i];
        }
    }
    if (amax < ZERO_GROUP_EPS) {
        memset(L, nmax, (size_t)n); /* the code of 0 */
        return 0.0f;
    }

    /* The plain mapping is taken as it is ... */
    float iscale = (float)-nmax / ext;
    float sxl, sll;
    symmetric_sums(n, nmax, x, iscale, &sxl, &sll);
    symmetric_codes(n, nmax, x, iscale, L);
    float scale = sll != 0.0f ? sxl / sll : 0.0f;
    float best = scale * sxl; /* = Sxl^2 / Sll */

    /* ... and a nearby step size replaces it only if it strictly improves
     * Sxl^2 / Sll (compared without dividing). */
    for (int t = -9; t <= 9; t++) {
        if (t == 0)
            continue;
        iscale = -((float)nmax + 0.1f * (float)t) / ext;
        symmetric_sums(n, nmax, x, iscale, &sxl, &sll);
        if (sll > 0 && sxl * sxl > best * sll) {
            symmetric_codes(n, nmax, x, iscale, L);
            scale = sxl / sll;
            best = scale * sxl;
        }
    }
    return scale;
}

/* ---- Q4_K and Q5_K: the shared super-block ------------------------------------------ */

/* Parameters of search_scale_min() per type: finer codes need a narrower sweep. */
typedef struct scale_min_search {
    int nmax;     /* largest code: 15 (4 bits), 31 (5 bits) */
    float rmin;   /* first step-size offset, in codes */
    float rdelta; /* offset increment, in codes */
    int nstep;    /* offsets tried: nstep + 1 */
} scale_min_search;

static const scale_min_search q4_k_search = {15, -1.0f, 0.1f, 20};
static const scale_min_search q5_k_search = {31, -0.5f, 0.1f, 15};

#define N_SUB 8   /* sub-blocks of 32 in a Q4_K/Q5_K super-block */
#define SUB 32    /* elements per sub-block */
#define SCALE6 63 /* largest 6-bit sub-block scale or min */

/* Packs 6-bit scales sc[0..7] and mins mn[0..7] into 12 bytes (diagram in quants.h). */
static void pack_k_scales(const uint8_t *sc, const uint8_t *mn, uint8_t *scales) {
    for (int j = 0; j < 4; j++) {
        scales[j] = (uint8_t)(sc[j] | (sc[j + 4] >> 4) << 6);
        scales[j + 4] = (uint8_t)(mn[j] | (mn[j + 4] >> 4) << 6);
        scales[j + 8] = (uint8_t)((sc[j + 4] & 0x0f) | (mn[j + 4] & 0x0f) << 4);
    }
}

/* Quantizes one super-block to codes L[0..255] (0..nmax) with packed 6-bit scales
 * and mins and their two fp16 super-block factors:
 *
 *   1. per sub-block: weights w = rms(sub-block) + |x| (every element counts, large
 *      ones more), then search_scale_min() -> scale s_j >= 0 and min m_j >= 0;
 *   2. s_j ~ d * sc_j and m_j ~ dmin * mn_j with sc_j, mn_j in 0..63:
 *      d = max s / 63, dmin = max m / 63 (so the largest maps to 63);
 *   3. every element re-rounded with the stored d * sc_j and dmin * mn_j. A sub-block
 *      whose stored scale is 0 keeps its searched codes: they decode to -dmin mn_j
 *      whatever they are. */
static void quantize_scale_min_superblock(const float *x, const scale_min_search *p, uint8_t *L,
                                          ks_fp16 *d_out, ks_fp16 *dmin_out, uint8_t *scales) {
    float sub_scale[N_SUB], sub_min[N_SUB], w[SUB];
    float max_scale = 0.0f, max_min = 0.0f;
    for (int j = 0; j < N_SUB; j++) {
        const float *xs = x + SUB * j;
        float sum_x2 = 0.0f;
        for (int i = 0; i < SUB; i++)
            sum_x2 += xs[i] * xs[i];
        const float rms = sqrtf(sum_x2 / SUB);
        for (int i = 0; i < SUB; i++)
            w[i] = rms + fabsf(xs[i]);
        sub_scale[j] = search_scale_min(SUB, p->nmax, xs, w, L + SUB * j, &sub_min[j], p->rmin,
                                        p->rdelta, p->nstep);
        if (sub_scale[j] > max_scale)
            max_scale = sub_scale[j];
        if (sub_min[j] > max_min)
            max_min = sub_min[j];
    }

    const float inv_scale = max_scale > 0 ? SCALE6 / max_scale : 0.0f;
    const float inv_min = max_min > 0 ? SCALE6 / max_min : 0.0f;
    uint8_t sc[N_SUB], mn[N_SUB];
    for (int j = 0; j < N_SUB; j++) {
        sc[j] = (uint8_t)clamp_int(nearest(inv_scale * sub_scale[j]), 0, SCALE6);
        mn[j] = (uint8_t)clamp_int(nearest(inv_min * sub_min[j]), 0, SCALE6);
    }
    pack_k_scales(sc, mn, scales);
    *d_out = ks_fp32_to_fp16(max_scale / SCALE6);
    *dmin_out = ks_fp32_to_fp16(max_min / SCALE6);

    const float d = ks_fp16_to_fp32(*d_out), dmin = ks_fp16_to_fp32(*dmin_out);
    for (int j = 0; j < N_SUB; j++) {
        const float dl = d * sc[j];
        if (dl == 0.0f)
            continue;
        const float ml = dmin * mn[j];
        for (int i = 0; i < SUB; i++)
            L[SUB * j + i] = (uint8_t)clamp_int(nearest((x[SUB * j + i] + ml) / dl), 0, p->nmax);
    }
}

/* y = d * sc_j * q - dmin * mn_j over a super-block of codes q[0..255]. */
static void decode_scale_min_superblock(ks_fp16 d16, ks_fp16 dmin16, const uint8_t *scales,
                                        const uint8_t *q, float *y) {
    const float d = ks_fp16_to_fp32(d16), dmin = ks_fp16_to_fp32(dmin16);
    for (int j = 0; j < N_SUB; j++) {
        uint8_t sc, mn;
        ks_k_scale_min(j, scales, &sc, &mn);
        const float dl = d * sc, ml = dmin * mn;
        for (int i = 0; i < SUB; i++)
            y[SUB * j + i] = dl * q[SUB * j + i] - ml;
    }
}

/* Low 4 bits of the codes: qs[32g + l] = q[64g + l] | q[64g + 32 + l] << 4. */
static void pack_k_nibbles(const uint8_t *q, uint8_t *qs) {
    for (int g = 0; g < KS_QK_K / 64; g++)
        for (int l = 0; l < 32; l++)
            qs[32 * g + l] = (uint8_t)((q[64 * g + l] & 0x0f) | (q[64 * g + 32 + l] & 0x0f) << 4);
}

static void unpack_k_nibbles(const uint8_t *qs, uint8_t *q) {
    for (int g = 0; g < KS_QK_K / 64; g++)
        for (int l = 0; l < 32; l++) {
            q[64 * g + l] = qs[32 * g + l] & 0x0f;
            q[64 * g + 32 + l] = qs[32 * g + l] >> 4;
        }
}

/* ---- Q4_K --------------------------------------------------------------------------- */

void ks_dequantize_row_q4_k_ref(const void *x, float *y, int64_t n) {
    const ks_block_q4_k *b = x;
    uint8_t q[KS_QK_K];
    for (int64_t ib = 0; ib < n / KS_QK_K; ib++, y += KS_QK_K) {
        unpack_k_nibbles(b[ib].qs, q);
        decode_scale_min_superblock(b[ib].d, b[ib].dmin, b[ib].scales, q, y);
    }
}

void ks_quantize_row_q4_k_ref(const float *x, void *y, int64_t n) {
    ks_block_q4_k *b = y;
    uint8_t L[KS_QK_K];
    for (int64_t ib = 0; ib < n / KS_QK_K; ib++, x += KS_QK_K) {
        quantize_scale_min_superblock(x, &q4_k_search, L, &b[ib].d, &b[ib].dmin, b[ib].scales);
        pack_k_nibbles(L, b[ib].qs);
    }
}

/* ---- Q5_K --------------------------------------------------------------------------- */

void ks_dequantize_row_q5_k_ref(const void *x, float *y, int64_t n) {
    const ks_block_q5_k *b = x;
    uint8_t q[KS_QK_K];
    for (int64_t ib = 0; ib < n / KS_QK_K; ib++, y += KS_QK_K) {
        unpack_k_nibbles(b[ib].qs, q);
        /* bit j of qh[l] is bit 4 of element l of sub-block j */
        for (int j = 0; j < N_SUB; j++)
            for (int l = 0; l < SUB; l++)
                q[SUB * j + l] |= (uint8_t)(((b[ib].qh[l] >> j) & 1) << 4);
        decode_scale_min_superblock(b[ib].d, b[ib].dmin, b[ib].scales, q, y);
    }
}

void ks_quantize_row_q5_k_ref(const float *x, void *y, int64_t n) {
    ks_block_q5_k *b = y;
    uint8_t L[KS_QK_K];
    for (int64_t ib = 0; ib < n / KS_QK_K; ib++, x += KS_QK_K) {
        quantize_scale_min_superblock(x, &q5_k_search, L, &b[ib].d, &b[ib].dmin, b[ib].scales);
        pack_k_nibbles(L, b[ib].qs);
        memset(b[ib].qh, 0, sizeof b[ib].qh);
        for (int j = 0; j < N_SUB; j++)
            for (int l = 0; l < SUB; l++)
                b[ib].qh[l] |= (uint8_t)(((L[SUB * j + l] >> 4) & 1) << j);
    }
}

/* ---- Q6_K --------------------------------------------------------------------------- */

#define Q6_SUB 16    /* elements per Q6_K sub-block */
#define Q6_ZERO 32   /* code of 0: codes 0..63 stand for -32..31 */
#define SCALE8 128.f /* the largest sub-block scale maps to -128 (int8) */

/* Code e (0..255) of a Q6_K block (layout in quants.h). */
static void unpack_q6_k(const ks_block_q6_k *b, uint8_t *q) {
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
        uint8_t *qo = q + 128 * h;
        for (int l = 0; l < 32; l++) {
            qo[l] = (uint8_t)((ql[l] & 0x0f) | ((qh[l] >> 0) & 3) << 4);
            qo[l + 32] = (uint8_t)((ql[l + 32] & 0x0f) | ((qh[l] >> 2) & 3) << 4);
            qo[l + 64] = (uint8_t)((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4);
            qo[l + 96] = (uint8_t)((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4);
        }
    }
}

static void pack_q6_k(const int8_t *L, ks_block_q6_k *b) {
    for (int h = 0; h < 2; h++) {
        uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
        const int8_t *qi = L + 128 * h;
        for (int l = 0; l < 32; l++) {
            ql[l] = (uint8_t)((qi[l] & 0x0f) | (qi[l + 64] & 0x0f) << 4);
            ql[l + 32] = (uint8_t)((qi[l + 32] & 0x0f) | (qi[l + 96] & 0x0f) << 4);
            qh[l] = (uint8_t)((qi[l] >> 4) | (qi[l + 32] >> 4) << 2 | (qi[l + 64] >> 4) << 4 |
                              (qi[l + 96] >> 4) << 6);
        }
    }
}

void ks_dequantize_row_q6_k_ref(const void *x, float *y, int64_t n) {
    const ks_block_q6_k *b = x;
    uint8_t q[KS_QK_K];
    for (int64_t ib = 0; ib < n / KS_QK_K; ib++, y += KS_QK_K) {
        const float d = ks_fp16_to_fp32(b[ib].d);
        unpack_q6_k(&b[ib], q);
        for (int e = 0; e < KS_QK_K; e++)
            y[e] = d * b[ib].scales[e / Q6_SUB] * (float)(q[e] - Q6_ZERO);
    }
}

/* Per super-block:
 *   1. search_scale_symmetric() per sub-block of 16 (codes -32..31);
 *   2. the sub-block scales as int8 against the one of largest magnitude, mapped to
 *      -128: d = s_ext / -128, sc_j = round(s_j / d), clamped to 127 above (a scale of
 *      the opposite sign and equal size would round to +128);
 *   3. every element re-rounded with the stored d * sc_j. */
void ks_quantize_row_q6_k_ref(const float *x, void *y, int64_t n) {
    ks_block_q6_k *b = y;
    int8_t L[KS_QK_K];
    float sub_scale[KS_QK_K / Q6_SUB];
    for (int64_t ib = 0; ib < n / KS_QK_K; ib++, x += KS_QK_K) {
        float max_abs = 0.0f, ext = 0.0f;
        for (int j = 0; j < KS_QK_K / Q6_SUB; j++) {
            sub_scale[j] = search_scale_symmetric(Q6_SUB, Q6_ZERO, x + Q6_SUB * j, L + Q6_SUB * j);
            if (fabsf(sub_scale[j]) > max_abs) {
                max_abs = fabsf(sub_scale[j]);
                ext = sub_scale[j];
            }
        }
        if (max_abs < ZERO_GROUP_EPS) {
            memset(&b[ib], 0, sizeof b[ib]); /* d = 0: every element decodes to 0 */
            continue;
        }

        const float iscale = -SCALE8 / ext;
        b[ib].d = ks_fp32_to_fp16(1.0f / iscale);
        for (int j = 0; j < KS_QK_K / Q6_SUB; j++)
            b[ib].scales[j] = (int8_t)clamp_int(nearest(iscale * sub_scale[j]), -128, 127);

        const float d = ks_fp16_to_fp32(b[ib].d);
        for (int j = 0; j < KS_QK_K / Q6_SUB; j++) {
            const float dl = d * b[ib].scales[j];
            if (dl == 0.0f)
                continue; /* decodes to 0 whatever the codes */
            for (int i = 0; i < Q6_SUB; i++) {
                const int l = nearest(x[Q6_SUB * j + i] / dl);
                L[Q6_SUB * j + i] = (int8_t)(clamp_int(l, -Q6_ZERO, Q6_ZERO - 1) + Q6_ZERO);
            }
        }
        pack_q6_k(L, &b[ib]);
    }
}

/* ---- Q2_K and Q3_K ------------------------------------------------------------------- */

#define LOW_SUB 16 /* elements per Q2_K/Q3_K sub-block */

/* Code e's byte and bit shift in Q2_K/Q3_K's qs (quants.h): halves of 128, each four
 * 2-bit planes of 32. */
static inline int low2_byte(int e) { return 32 * (e / 128) + e % 32; }
static inline int low2_shift(int e) { return 2 * ((e % 128) / 32); }

void ks_dequantize_row_q2_k_ref(const void *x, float *y, int64_t n) {
    const ks_block_q2_k *b = x;
    for (int64_t ib = 0; ib < n / KS_QK_K; ib++, y += KS_QK_K) {
        const float d = ks_fp16_to_fp32(b[ib].d), dmin = ks_fp16_to_fp32(b[ib].dmin);
        for (int e = 0; e < KS_QK_K; e++) {
            const uint8_t sm = b[ib].scales[e / LOW_SUB];
            const int q = (b[ib].qs[low2_byte(e)] >> low2_shift(e)) & 3;
            y[e] = d * (float)(sm & 0x0f) * (float)q - dmin * (float)(sm >> 4);
        }
    }
}

/* Per super-block, as Q4_K with 4-bit sub-block factors:
 *   1. search_scale_min() per sub-block of 16 (codes 0..3, weights |x|) -> s_j, m_j;
 *   2. d = max s / 15, dmin = max m / 15, sc_j = round(s_j / d), mn_j = round(m_j / dmin);
 *   3. every element re-rounded with the stored d sc_j and dmin mn_j. */
void ks_quantize_row_q2_k_ref(const float *x, void *y, int64_t n) {
    ks_block_q2_k *b = y;
    uint8_t L[KS_QK_K];
    float w[LOW_SUB], s[KS_QK_K / LOW_SUB], m[KS_QK_K / LOW_SUB];
    for (int64_t ib = 0; ib < n / KS_QK_K; ib++, x += KS_QK_K) {
        float max_s = 0.0f, max_m = 0.0f;
        for (int j = 0; j < KS_QK_K / LOW_SUB; j++) {
            for (int i = 0; i < LOW_SUB; i++)
                w[i] = fabsf(x[LOW_SUB * j + i]);
            s[j] = search_scale_min(LOW_SUB, 3, x + LOW_SUB * j, w, L + LOW_SUB * j, &m[j], -0.5f, 0.1f, 15);
            max_s = s[j] > max_s ? s[j] : max_s;
            max_m = m[j] > max_m ? m[j] : max_m;
        }
        const float is = max_s > 0 ? 15.0f / max_s : 0.0f, im = max_m > 0 ? 15.0f / max_m : 0.0f;
        for (int j = 0; j < KS_QK_K / LOW_SUB; j++)
            b[ib].scales[j] =
                (uint8_t)(clamp_int(nearest(is * s[j]), 0, 15) | clamp_int(nearest(im * m[j]), 0, 15) << 4);
        b[ib].d = ks_fp32_to_fp16(max_s / 15.0f);
        b[ib].dmin = ks_fp32_to_fp16(max_m / 15.0f);
        const float d = ks_fp16_to_fp32(b[ib].d), dmin = ks_fp16_to_fp32(b[ib].dmin);
        for (int j = 0; j < KS_QK_K / LOW_SUB; j++) {
            const float dl = d * (float)(b[ib].scales[j] & 0x0f), ml = dmin * (float)(b[ib].scales[j] >> 4);
            if (dl == 0.0f)
                continue; /* decodes to -ml whatever the codes */
            for (int i = 0; i < LOW_SUB; i++)
                L[LOW_SUB * j + i] = (uint8_t)clamp_int(nearest((x[LOW_SUB * j + i] + ml) / dl), 0, 3);
        }
        memset(b[ib].qs, 0, sizeof b[ib].qs);
        for (int e = 0; e < KS_QK_K; e++)
            b[ib].qs[low2_byte(e)] |= (uint8_t)(L[e] << low2_shift(e));
    }
}

void ks_dequantize_row_q3_k_ref(const void *x, float *y, int64_t n) {
    const ks_block_q3_k *b = x;
    for (int64_t ib = 0; ib < n / KS_QK_K; ib++, y += KS_QK_K) {
        const float d = ks_fp16_to_fp32(b[ib].d);
        for (int e = 0; e < KS_QK_K; e++) {
            const int low = (b[ib].qs[low2_byte(e)] >> low2_shift(e)) & 3;
            const int q = low | ((b[ib].hmask[e % 32] >> (e / 32)) & 1) << 2;
            y[e] = d * (float)(ks_q3_k_scale(b[ib].scales, e / LOW_SUB) - 32) * (float)(q - 4);
        }
    }
}

/* Per super-block, as Q6_K with 6-bit signed sub-block scales:
 *   1. search_scale_symmetric() per sub-block of 16 (codes -4..3);
 *   2. the scale of largest magnitude maps to -32: d = s_ext / -32, sc_j = round(s_j / d)
 *      in -32..31, stored as sc_j + 32 (ks_q3_k_scale() unpacks);
 *   3. every element re-rounded with the stored d sc_j. */
void ks_quantize_row_q3_k_ref(const float *x, void *y, int64_t n) {
    ks_block_q3_k *b = y;
    int8_t L[KS_QK_K];
    float sub_scale[KS_QK_K / LOW_SUB];
    for (int64_t ib = 0; ib < n / KS_QK_K; ib++, x += KS_QK_K) {
        float max_abs = 0.0f, ext = 0.0f;
        for (int j = 0; j < KS_QK_K / LOW_SUB; j++) {
            sub_scale[j] = search_scale_symmetric(LOW_SUB, 4, x + LOW_SUB * j, L + LOW_SUB * j);
            if (fabsf(sub_scale[j]) > max_abs) {
                max_abs = fabsf(sub_scale[j]);
                ext = sub_scale[j];
            }
        }
        memset(&b[ib], 0, sizeof b[ib]);
        if (max_abs < ZERO_GROUP_EPS)
            continue; /* d = 0: every element decodes to 0 */
        const float iscale = -32.0f / ext;
        int sc[KS_QK_K / LOW_SUB];
        for (int j = 0; j < KS_QK_K / LOW_SUB; j++) {
            sc[j] = clamp_int(nearest(iscale * sub_scale[j]), -32, 31);
            const int v = sc[j] + 32;
            b[ib].scales[j % 8] |= (uint8_t)((v & 0x0f) << (4 * (j / 8)));
            b[ib].scales[8 + j % 4] |= (uint8_t)((v >> 4) << (2 * (j / 4)));
        }
        b[ib].d = ks_fp32_to_fp16(1.0f / iscale);
        const float d = ks_fp16_to_fp32(b[ib].d);
        for (int j = 0; j < KS_QK_K / LOW_SUB; j++) {
            const float dl = d * (float)sc[j];
            if (dl == 0.0f)
                continue; /* decodes to 0 whatever the codes */
            for (int i = 0; i < LOW_SUB; i++)
                L[LOW_SUB * j + i] = (int8_t)(clamp_int(nearest(x[LOW_SUB * j + i] / dl), -4, 3) + 4);
        }
        for (int e = 0; e < KS_QK_K; e++) {
            b[ib].qs[low2_byte(e)] |= (uint8_t)((L[e] & 3) << low2_shift(e));
            b[ib].hmask[e % 32] |= (uint8_t)((L[e] >> 2) << (e / 32));
        }
    }
}

/* ---- Q8_K --------------------------------------------------------------------------- */

void ks_dequantize_row_q8_k_ref(const void *x, float *y, int64_t n) {
    const ks_block_q8_k *b = x;
    for (int64_t ib = 0; ib < n / KS_QK_K; ib++, y += KS_QK_K)
        for (int e = 0; e < KS_QK_K; e++)
            y[e] = b[ib].d * b[ib].qs[e];
}

/* The element of largest magnitude maps to -127 (so -128 is never produced and an
 * int8 negation of a code cannot overflow); its opposite number would map to +127. */
void ks_quantize_row_q8_k_ref(const float *x, void *y, int64_t n) {
    ks_block_q8_k *b = y;
    for (int64_t ib = 0; ib < n / KS_QK_K; ib++, x += KS_QK_K) {
        float amax = 0.0f, ext = 0.0f;
        for (int e = 0; e < KS_QK_K; e++) {
            if (fabsf(x[e]) > amax) {
                amax = fabsf(x[e]);
                ext = x[e];
            }
        }
        if (amax == 0.0f) {
            memset(&b[ib], 0, sizeof b[ib]);
            continue;
        }
        const float iscale = -127.f / ext;
        for (int e = 0; e < KS_QK_K; e++)
            b[ib].qs[e] = (int8_t)clamp_int(nearest(iscale * x[e]), -128, 127);
        for (int k = 0; k < KS_QK_K / 16; k++) {
            int sum = 0;
            for (int e = 0; e < 16; e++)
                sum += b[ib].qs[16 * k + e];
            b[ib].bsums[k] = (int16_t)sum;
        }
        b[ib].d = 1.0f / iscale;
    }
}
