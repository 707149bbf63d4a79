/* attn_tiles.h — the streaming-attention kernels (kernels.h: attn_scores and attn_accum
 * over K/V rows of F32, F16 or Q8_0, softmax_rows_f32; specification in ref/attn_ref.c)
 * written once over a float vector of ATTN_LANES lanes. x86/attn_avx2.c (8 lanes, 16
 * registers), x86/attn_avx512.c (16 lanes, 32 registers) and arm/attn_neon.c (4 lanes,
 * 32 registers) each define the vector and its operations, then include this file, which
 * defines the kernels as static functions of that file and attn_register(), which puts
 * them into a table:
 *
 *   attn_vec, attn_mask       a vector of floats; a mask of its first lanes
 *   ATTN_LANES                lanes per vector
 *   ATTN_TILE                 accumulators of a tile: 16 (AVX-512, NEON) or 8 (AVX2)
 *   ATTN_ROWS                 most query rows of a score tile: 4 or 2 (AVX2)
 *   ATTN_OWN_SCORES           defined: the file has score kernels of its own (AVX-512:
 *                             attn_scores_avx512.c), and needs neither ATTN_ROWS nor
 *                             vhsum4; attn_register() leaves attn_scores alone
 *   ATTN_ACC_ROWS             most query rows of an accumulation tile: 8 or 4 (AVX2)
 *   vmask(cnt)                the mask of lanes [0, cnt), 0 <= cnt <= ATTN_LANES
 *   vzero() vset1(x) vloadm(p, m) vloadm_or(p, m, v) vstorem(p, m, v) vkeep(m, v)
 *   vloadm_h(p, m, cnt)       vloadm of halves (m and cnt say the same lanes)
 *   vloadm_q8(p, m, cnt)      vloadm of int8s (as floats, exactly)
 *   vset1_h(d)                vset1 of a half
 *   vfma(a, b, c) vadd(a, b) vsub(a, b) vmax(a, b)
 *                             vloadm: lanes outside m read as 0 (vloadm_or: as v's),
 *                             no memory past them touched; vstorem writes the lanes of
 *                             m only; vkeep zeroes the lanes outside m
 *   vround(x) vmul(a, b) vfnma(a, b, c)      nearest integer; a b; c - a b
 *   vldexp(p, n, x)           p 2^n for the integers n of exp's range reduction of x
 *   ATTN_EXP_MIN              the input below which vldexp's results may be 0
 *   vhsum(v) vhmax(v)         sum, largest of the lanes
 *   vhsum4(a, b, c, d, scale, out)   out[0..4) = scale [sum a, sum b, sum c, sum d],
 *                             one fixed tree for each
 *
 * Scores: tiles of nr query rows x ATTN_TILE / nr key rows, one accumulator per score,
 * each vector of a row loaded once per tile. Row and key tails point at the last row
 * again and drop those results; the tail of the elements is a masked load. Every score
 * is the same sum in the same order whatever tile it falls in (its own accumulator, its
 * lanes reduced by vhsum4's tree), so a query scores the same in a prefill tile and
 * alone in decode.
 *
 * K and V rows of halves are widened to floats in registers as they are loaded, and so
 * are Q8_0 rows (each vector times its block's d, the float a row converted first would
 * hold): decode streams them from the KV pool once, with nothing written in between.
 *
 * Accumulation: tiles of nr <= ATTN_ACC_ROWS rows x ATTN_TILE / nr vectors of
 * accumulators (a lone row: half that) held in registers while the value rows stream
 * past, each value vector loaded (and widened) once per row tile: the more rows share
 * it, the fewer widenings compete with the FMAs for the same ports (8 rows measured 15%
 * faster than 4 in a prefill), and the fewer rows, the more of a value row a tile
 * takes; acc = fma(p, v, acc) per element in key order, again the same in any tile.
 *
 * exp: x = n ln2 + r with n = round(x / ln2), |r| <= ln2 / 2; e^r = 1 + r + r^2 P(r),
 * P Cephes' degree-5 fit (about 1 ulp over the range), then vldexp.
 *
 * Include only from files compiled with the ISA's flags, after the definitions above.
 * Portable C over those definitions: no intrinsics here. */
#ifndef KS_ATTN_TILES_H
#define KS_ATTN_TILES_H

#include "core/ks_core.h"
#include "tensor/attn_kv.h"
#include "tensor/fp16.h"
#include "tensor/kernels.h"

#include <stdint.h>

/* ---- rows of K and V ------------------------------------------------------------------ */

/* The rows a kernel is asked to prefetch (pf) go to L2 (prefetcht1 on x86; kv_prefetch_lines
 * too): a unit of the walk ahead, they are not needed in L1 before the kernel's own rows
 * have left it (bench_attention -d 4096 and 8192, 2 threads: 1-4% over L1). */
#define ATTN_PF_LOCALITY 2

/* ATTN_LANES elements of a K/V row of a kind (attn_kv.h) from element i on, lanes [0, cnt)
 * = mask m; a Q8_0 vector lies in one block (ATTN_LANES divides 32 and i is a multiple). */
static KS_ALWAYS_INLINE attn_vec vload_kv(int kind, const void *row, int64_t i, attn_mask m, int64_t cnt) {
    if (kind == KV_Q8) {
        if (cnt == 0) /* past the row's end (a tile's tail): not even its d read */
            return vzero();
        const ks_block_q8_0 *b = kv_q8_block(row, i);
        return vmul(vloadm_q8(b->qs + i % KS_QK8_0, m, cnt), vset1_h(b->d));
    }
    return kind == KV_F16 ? vloadm_h((const ks_fp16 *)row + i, m, cnt) : vloadm((const float *)row + i, m);
}

#ifndef ATTN_OWN_SCORES
/* ---- scores --------------------------------------------------------------------------- */

/* Elements [i, i + cnt) (lanes of m) of a score tile's rows into its accumulators, with
 * the keys' elements from ik on at kp[j] (scores_tile). */
static KS_ALWAYS_INLINE void scores_step(int kind, int nr, int nkt, const float *const *qp, const void *const *kp,
                                         int64_t i, int64_t ik, attn_mask m, int64_t cnt, attn_vec *acc) {
    if (nr == 1) { /* each key vector used once: no registers to hold it in */
        const attn_vec qv = vloadm(qp[0] + i, m);
        for (int j = 0; j < nkt; j++)
            acc[j] = vfma(qv, vload_kv(kind, kp[j], ik, m, cnt), acc[j]);
        return;
    }
    attn_vec kv[ATTN_TILE];
    for (int j = 0; j < nkt; j++)
        kv[j] = vload_kv(kind, kp[j], ik, m, cnt);
    for (int r = 0; r < nr; r++) {
        const attn_vec qv = vloadm(qp[r] + i, m);
        for (int j = 0; j < nkt; j++)
            acc[r * nkt + j] = vfma(qv, kv[j], acc[r * nkt + j]);
    }
}

/* s[r * ld_s + j] = scale * dot for r < nr_valid, j < nk_valid of a tile of nr rows x nkt
 * keys (nr * nkt = ATTN_TILE; kind, nr, nkt constants where inlined). Accumulator a holds
 * the score of row a / nkt, key a % nkt; vhsum4 reduces them four at a time. */
static KS_ALWAYS_INLINE void scores_tile(int kind, int nr, int nkt, const float *q, int64_t ld_q,
                                         int nr_valid, const void *k, int64_t ld_k,
                                         int nk_valid, int64_t n, float scale, float *s,
                                         int64_t ld_s, const void *pf) {
    const float *qp[ATTN_ROWS];
    const void *kp[ATTN_TILE];
    attn_vec acc[ATTN_TILE];
    for (int r = 0; r < nr; r++)
        qp[r] = q + (r < nr_valid ? r : nr_valid - 1) * ld_q;
    for (int j = 0; j < nkt; j++)
        kp[j] = kv_at(kind, k, (j < nk_valid ? j : nk_valid - 1) * ld_k);
    for (int a = 0; a < nr * nkt; a++)
        acc[a] = vzero();
    /* Whole vectors with a mask that is a constant (all lanes), then the tail's. With
     * every key present, the key rows are addressed from one base moving along them, at
     * multiples of their stride: an array of nkt pointers indexed by i does not fit the
     * registers (2 rows x 8 keys, one thread, in L1: 31 -> 38 GMAC/s; constant masks:
     * 8 rows 35 -> 46) */
    int64_t i = 0;
    if (nk_valid == nkt) {
        const char *kb = k;
        const int64_t ld_bytes = kv_off(kind, ld_k);
        /* Q8_0: the base stays at the rows' starts, the step's blocks found from i */
        const int64_t eb = kind == KV_Q8 ? 0 : kind == KV_F16 ? 2 : 4;
        for (; i + ATTN_LANES <= n; i += ATTN_LANES, kb += ATTN_LANES * eb) {
            if (pf && kind == KV_Q8) /* the lines of each pf row the step's elements start */
                for (int j = 0; j < nkt; j++)
                    kv_prefetch_lines((const char *)pf + j * ld_bytes, kv_off(kind, i), kv_off(kind, i + ATTN_LANES));
            else if (pf && ((i * eb) & 63) == 0) /* a line of each pf row as the step reaches it */
                for (int j = 0; j < nkt; j++)
                    __builtin_prefetch((const char *)pf + j * ld_bytes + i * eb, 0, ATTN_PF_LOCALITY);
            const void *kr[ATTN_TILE];
            for (int j = 0; j < nkt; j++)
                kr[j] = kb + j * ld_bytes;
            scores_step(kind, nr, nkt, qp, kr, i, kind == KV_Q8 ? i : 0, vmask(ATTN_LANES), ATTN_LANES, acc);
        }
    }
    for (; i + ATTN_LANES <= n; i += ATTN_LANES)
        scores_step(kind, nr, nkt, qp, kp, i, i, vmask(ATTN_LANES), ATTN_LANES, acc);
    if (i < n)
        scores_step(kind, nr, nkt, qp, kp, i, i, vmask(n - i), n - i, acc);
    if (nkt % 4 == 0 && nr_valid == nr && nk_valid == nkt) { /* four keys of a row at once, in place */
        for (int a = 0; a < nr * nkt; a += 4)
            vhsum4(acc[a], acc[a + 1], acc[a + 2], acc[a + 3], scale, s + (a / nkt) * ld_s + a % nkt);
        return;
    }
    for (int a = 0; a < nr * nkt; a += 4) {
        float out[4];
        vhsum4(acc[a], acc[a + 1], acc[a + 2], acc[a + 3], scale, out);
        for (int c = 0; c < 4; c++) {
            const int r = (a + c) / nkt, j = (a + c) % nkt;
            if (r < nr_valid && j < nk_valid)
                s[r * ld_s + j] = out[c];
        }
    }
}

/* All nk keys for nr_valid <= nr rows, kind and nr constants where inlined. */
static KS_ALWAYS_INLINE void scores_rows(int kind, int nr, const float *q, int64_t ld_q,
                                         int nr_valid, const void *k, int64_t ld_k, int nk,
                                         int64_t n, float scale, float *s, int64_t ld_s, const void *pf) {
    const int nkt = ATTN_TILE / nr;
    for (int j = 0; j < nk; j += nkt)
        scores_tile(kind, nr, nkt, q, ld_q, nr_valid, kv_at(kind, k, j * ld_k), ld_k, KS_MIN(nk - j, nkt),
                    n, scale, s + j, ld_s, pf ? kv_at(kind, pf, j * ld_k) : NULL);
}

static KS_ALWAYS_INLINE void scores(int kind, const float *q, int64_t ld_q, int nq, const void *k,
                                    int64_t ld_k, int nk, int64_t n, float scale, float *s,
                                    int64_t ld_s, const void *pf) {
    /* pf's rows are asked for by the first row tiles' pass over the keys */
    int r = 0;
    for (; r + ATTN_ROWS <= nq; r += ATTN_ROWS)
        scores_rows(kind, ATTN_ROWS, q + r * ld_q, ld_q, ATTN_ROWS, k, ld_k, nk, n, scale, s + r * ld_s,
                    ld_s, r == 0 ? pf : NULL);
    if (ATTN_ROWS > 4 && nq - r >= 4) {
        scores_rows(kind, 4, q + r * ld_q, ld_q, 4, k, ld_k, nk, n, scale, s + r * ld_s, ld_s, r == 0 ? pf : NULL);
        r += 4;
    }
    if (ATTN_ROWS > 2 && nq - r >= 2) {
        scores_rows(kind, 2, q + r * ld_q, ld_q, 2, k, ld_k, nk, n, scale, s + r * ld_s, ld_s, r == 0 ? pf : NULL);
        r += 2;
    }
    if (r < nq)
        scores_rows(kind, 1, q + r * ld_q, ld_q, 1, k, ld_k, nk, n, scale, s + r * ld_s, ld_s, r == 0 ? pf : NULL);
}

static void attn_scores_f32(const float *q, int64_t ld_q, int nq, const void *k, int64_t ld_k,
                            int nk, int64_t n, float scale, float *s, int64_t ld_s, const void *pf) {
    scores(KV_F32, q, ld_q, nq, k, ld_k, nk, n, scale, s, ld_s, pf);
}

static void attn_scores_f16(const float *q, int64_t ld_q, int nq, const void *k, int64_t ld_k,
                            int nk, int64_t n, float scale, float *s, int64_t ld_s, const void *pf) {
    scores(KV_F16, q, ld_q, nq, k, ld_k, nk, n, scale, s, ld_s, pf);
}

static void attn_scores_q8_0(const float *q, int64_t ld_q, int nq, const void *k, int64_t ld_k,
                             int nk, int64_t n, float scale, float *s, int64_t ld_s, const void *pf) {
    scores(KV_Q8, q, ld_q, nq, k, ld_k, nk, n, scale, s, ld_s, pf);
}
#endif

/* ---- softmax step ---------------------------------------------------------------------- */

/* e^x for x <= 0 and -inf; see the file comment. */
static inline attn_vec vexp(attn_vec x) {
    const attn_vec xc = vmax(x, vset1(ATTN_EXP_MIN));
    const attn_vec n = vround(vmul(xc, vset1(1.44269504088896341f)));
    /* r = x - n ln2, ln2 in two parts: n * 0.693359375 is exact for |n| < 2^15 */
    attn_vec r = vfnma(n, vset1(0.693359375f), xc);
    r = vfnma(n, vset1(-2.12194440e-4f), r);
    attn_vec p = vset1(1.9875691500e-4f);
    p = vfma(p, r, vset1(1.3981999507e-3f));
    p = vfma(p, r, vset1(8.3334519073e-3f));
    p = vfma(p, r, vset1(4.1665795894e-2f));
    p = vfma(p, r, vset1(1.6666665459e-1f));
    p = vfma(p, r, vset1(5.0000001201e-1f));
    p = vfma(p, vmul(r, r), vadd(r, vset1(1.0f)));
    return vldexp(p, n, x);
}

/* Rows of softmax_rows_f32 per stage: their maxima and corrections fit on the stack. */
#define SOFTMAX_STAGE_ROWS 32

/* Each row's step is the one a row alone would take (its maximum, then its lanes' sums
 * in element order and vhsum's tree), in stages over the rows: all maxima, all
 * corrections as vectors, all numerators. A row's chain of reductions and exps is
 * serial; side by side the rows' chains overlap: a decode block of the 30B-A3B shape (32
 * rows of 32 scores, AVX-512, one thread, in L1) ~1000 -> ~490 ns against a call per row,
 * and bench_attention --shape qwen3-30b-a3b -d 16384 -p 0, 2 threads, alternated over
 * five pairs: median 99.8 -> 97.9 ms. */
static void softmax_rows_f32(float *s, int64_t ld_s, int nr, int64_t n, const int *lim, int64_t lo, float *m,
                             float *l, float *corr) {
    for (int r0 = 0; r0 < nr; r0 += SOFTMAX_STAGE_ROWS) {
        const int nb = KS_MIN(SOFTMAX_STAGE_ROWS, nr - r0);
        int64_t nv[SOFTMAX_STAGE_ROWS];
        float mx[SOFTMAX_STAGE_ROWS], d[SOFTMAX_STAGE_ROWS];
        for (int b = 0; b < nb; b++) {
            const int r = r0 + b;
            const float *x = s + r * ld_s;
            nv[b] = KS_MAX(0, KS_MIN(n, (int64_t)lim[r] - lo));
            attn_vec v = vset1(m[r]); /* lanes past the seen entries read as v's */
            for (int64_t i = 0; i < nv[b]; i += ATTN_LANES)
                v = vmax(v, vloadm_or(x + i, vmask(KS_MIN(nv[b] - i, ATTN_LANES)), v));
            mx[b] = vhmax(v);
            d[b] = mx[b] == m[r] ? 0.0f : m[r] - mx[b]; /* exp(0) is exactly 1 */
        }
        for (int b = 0; b < nb; b += ATTN_LANES) {
            const attn_mask t = vmask(KS_MIN(nb - b, ATTN_LANES));
            vstorem(corr + r0 + b, t, vexp(vloadm(d + b, t)));
        }
        for (int b = 0; b < nb; b++) {
            const int r = r0 + b;
            float *x = s + r * ld_s;
            const attn_vec mv = vset1(mx[b]);
            attn_vec sum = vzero();
            for (int64_t i = 0; i < n; i += ATTN_LANES) {
                const attn_mask seen = vmask(KS_MAX(0, KS_MIN(nv[b] - i, ATTN_LANES)));
                const attn_vec e = i < nv[b] ? vkeep(seen, vexp(vsub(vloadm(x + i, seen), mv))) : vzero();
                vstorem(x + i, vmask(KS_MIN(n - i, ATTN_LANES)), e);
                sum = vadd(sum, e);
            }
            l[r] = l[r] * corr[r] + vhsum(sum);
            m[r] = mx[b];
        }
    }
}

/* ---- value accumulation -------------------------------------------------------------- */

#ifndef ATTN_FMA_BCAST
/* c + w[0] b */
static inline attn_vec vfma_bcast(const float *w, attn_vec b, attn_vec c) { return vfma(vset1(*w), b, c); }
#endif

/* acc rows [0, nr) += p . v over nk keys, elements [i0, i0 + nv ATTN_LANES) under the
 * masks mk of cnt[c] lanes: a tile of nr x nv accumulators (nr * nv <= ATTN_TILE; kind,
 * nr, nv constants where inlined). The loops over the tile are unrolled by demand: GCC
 * left the AVX2 build's rolled, its accumulators and value vectors on the stack
 * (bench_attention --shape qwen3-0.6b -d 64 -t 1 on a Zen 3 VM, alternated: 2.3-2.9 ->
 * 1.4-1.9 ms). */
static KS_ALWAYS_INLINE void accum_chunk(int kind, int nr, int nv, float *acc, int64_t ld_acc,
                                         const float *p, int64_t ld_p, const void *v,
                                         int64_t ld_v, int nk, int64_t i0,
                                         const attn_mask mk[ATTN_TILE],
                                         const int64_t cnt[ATTN_TILE], const void *pf) {
    attn_vec a[ATTN_TILE];
#pragma GCC unroll 16
    for (int r = 0; r < nr; r++)
#pragma GCC unroll 16
        for (int c = 0; c < nv; c++)
            a[r * nv + c] = vloadm(acc + r * ld_acc + i0 + ATTN_LANES * c, mk[c]);
    const int64_t eb = kind == KV_F16 ? 2 : 4;
    for (int j = 0; j < nk; j++) {
        const void *vj = kv_at(kind, v, j * ld_v);
        if (pf && kind == KV_Q8) /* the lines of pf's row j that start in the tile's elements */
            kv_prefetch_lines(kv_at(kind, pf, j * ld_v), kv_off(kind, i0), kv_off(kind, i0 + nv * ATTN_LANES));
        else if (pf) /* the same for rows of floats or halves, which start on a line */
            for (int64_t o = (i0 * eb + 63) & ~(int64_t)63; o < (i0 + nv * ATTN_LANES) * eb; o += 64)
                __builtin_prefetch((const char *)kv_at(kind, pf, j * ld_v) + o, 0, ATTN_PF_LOCALITY);
        attn_vec vv[ATTN_TILE];
#pragma GCC unroll 16
        for (int c = 0; c < nv; c++)
            vv[c] = vload_kv(kind, vj, i0 + ATTN_LANES * c, mk[c], cnt[c]);
#pragma GCC unroll 16
        for (int r = 0; r < nr; r++)
#pragma GCC unroll 16
            for (int c = 0; c < nv; c++)
                a[r * nv + c] = vfma_bcast(p + r * ld_p + j, vv[c], a[r * nv + c]);
    }
#pragma GCC unroll 16
    for (int r = 0; r < nr; r++)
#pragma GCC unroll 16
        for (int c = 0; c < nv; c++)
            vstorem(acc + r * ld_acc + i0 + ATTN_LANES * c, mk[c], a[r * nv + c]);
}

/* nr rows (at most ATTN_ACC_ROWS) over all n elements, in tiles of ATTN_TILE / nr vectors
 * of a row (a lone row: ATTN_TILE / 2, as a head has few more elements): a decode
 * token's rows keep ATTN_TILE chains of FMAs going side by side (AVX-512, one thread, in
 * L1: 2 rows 34 -> 42-46 GMAC/s, 8 rows 48 -> 56; 32 rows of a prefill 65 -> 75). Whole
 * tiles take masks that are constants (all lanes): computed per tile, eight of them
 * spill the mask registers (2 rows: 29 GMAC/s). */
static KS_ALWAYS_INLINE void accum_rows(int kind, int nr, float *acc, int64_t ld_acc, const float *p,
                                        int64_t ld_p, const void *v, int64_t ld_v, int nk,
                                        int64_t n, const void *pf) {
    const int nv = ATTN_TILE / KS_MAX(nr, 2);
    attn_mask mk[ATTN_TILE];
    int64_t cnt[ATTN_TILE];
    int64_t i0 = 0;
    /* whole tiles with the masks constant (all lanes), then the tail's */
    for (int c = 0; c < nv; c++) {
        cnt[c] = ATTN_LANES;
        mk[c] = vmask(ATTN_LANES);
    }
    for (; i0 + nv * ATTN_LANES <= n; i0 += nv * ATTN_LANES)
        accum_chunk(kind, nr, nv, acc, ld_acc, p, ld_p, v, ld_v, nk, i0, mk, cnt, pf);
    if (i0 < n) {
        for (int c = 0; c < nv; c++) {
            cnt[c] = KS_MAX(0, KS_MIN(ATTN_LANES, n - i0 - ATTN_LANES * c));
            mk[c] = vmask(cnt[c]);
        }
        accum_chunk(kind, nr, nv, acc, ld_acc, p, ld_p, v, ld_v, nk, i0, mk, cnt, pf);
    }
}

static KS_ALWAYS_INLINE void accum(int kind, float *acc, int64_t ld_acc, int nq, const float *p,
                                   int64_t ld_p, const void *v, int64_t ld_v, int nk, int64_t n,
                                   const void *pf) {
    int r = 0;
    for (; r + ATTN_ACC_ROWS <= nq; r += ATTN_ACC_ROWS)
        accum_rows(kind, ATTN_ACC_ROWS, acc + r * ld_acc, ld_acc, p + r * ld_p, ld_p, v, ld_v, nk, n, r == 0 ? pf : NULL);
    if (ATTN_ACC_ROWS > 4 && nq - r >= 4) {
        accum_rows(kind, 4, acc + r * ld_acc, ld_acc, p + r * ld_p, ld_p, v, ld_v, nk, n, r == 0 ? pf : NULL);
        r += 4;
    }
    if (ATTN_ACC_ROWS > 2 && nq - r >= 2) {
        accum_rows(kind, 2, acc + r * ld_acc, ld_acc, p + r * ld_p, ld_p, v, ld_v, nk, n, r == 0 ? pf : NULL);
        r += 2;
    }
    if (r < nq)
        accum_rows(kind, 1, acc + r * ld_acc, ld_acc, p + r * ld_p, ld_p, v, ld_v, nk, n, r == 0 ? pf : NULL);
}

static void attn_accum_f32(float *acc, int64_t ld_acc, int nq, const float *p, int64_t ld_p,
                           const void *v, int64_t ld_v, int nk, int64_t n, const void *pf) {
    accum(KV_F32, acc, ld_acc, nq, p, ld_p, v, ld_v, nk, n, pf);
}

static void attn_accum_f16(float *acc, int64_t ld_acc, int nq, const float *p, int64_t ld_p,
                           const void *v, int64_t ld_v, int nk, int64_t n, const void *pf) {
    accum(KV_F16, acc, ld_acc, nq, p, ld_p, v, ld_v, nk, n, pf);
}

static void attn_accum_q8_0(float *acc, int64_t ld_acc, int nq, const float *p, int64_t ld_p,
                            const void *v, int64_t ld_v, int nk, int64_t n, const void *pf) {
    accum(KV_Q8, acc, ld_acc, nq, p, ld_p, v, ld_v, nk, n, pf);
}

/* The kernels above into the table. */
static void attn_register(ks_kernels *k) {
#ifndef ATTN_OWN_SCORES
    k->attn_scores[KS_TYPE_F32] = attn_scores_f32;
    k->attn_scores[KS_TYPE_F16] = attn_scores_f16;
    k->attn_scores[KS_TYPE_Q8_0] = attn_scores_q8_0;
#endif
    k->softmax_rows_f32 = softmax_rows_f32;
    k->attn_accum[KS_TYPE_F32] = attn_accum_f32;
    k->attn_accum[KS_TYPE_F16] = attn_accum_f16;
    k->attn_accum[KS_TYPE_Q8_0] = attn_accum_q8_0;
}

#endif
