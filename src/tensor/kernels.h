/* kernels.h — the compute kernel table and its run-time selection.
 *
 * One table per ISA (ref = portable scalar C, always built; avx2 = AVX2+FMA+F16C;
 * avx512 = AVX-512 F/BW/VL/DQ + VNNI (and BF16 rows with AVX-512 BF16 where present); amx = avx512 plus AMX-INT8 tile GEMMs for
 * prefill and, where the CPU has AMX-BF16, tile attention for prefill; neon).
 * ks_kernels_get() picks the best the CPU and OS support, once; KS_KERNELS=ref|avx2|avx512|amx|neon in the environment forces a
 * set (an unavailable one falls back to ref with a warning). An ISA table fills in only
 * the kernels it implements; the rest are taken from ref.
 *
 * Kernels are pure functions over their arguments: no allocation, no threads, no
 * globals, no feature branches. */
#ifndef KS_KERNELS_H
#define KS_KERNELS_H

#include "tensor/fp16.h"
#include "tensor/types.h"
#include <stddef.h>
#include <stdint.h>

/* Dot product of one weight row w (n elements of a weight type) with one activation row
 * a (n elements of that type's dot_type from the traits table, e.g. Q8_K for Q4_K). */
typedef float (*ks_vec_dot_fn)(const void *w, const void *a, int64_t n);

/* Activation rows per vec_dot_4 call. */
#define KS_VEC_DOT_ROWS 4

/* Dot products of one weight row w with KS_VEC_DOT_ROWS activation rows, row j at
 * a + j * a_stride (bytes): s[j] = vec_dot(w, a + j * a_stride, n), bit for bit, for the
 * vec_dot of the same table; asks for the weight row pf (NULL: none) a share at a time
 * as vec_dot_2w does (a hint: kernels may ignore it). */
typedef void (*ks_vec_dot_4_fn)(const void *w, const void *a, size_t a_stride, int64_t n,
                                float *s, const void *pf);

/* Dot products of two weight rows w0, w1 with nt (1 or 2) activation rows, row j at
 * a + j * a_stride (bytes): s[i * nt + j] = vec_dot(wi, row j, n), bit for bit, for the
 * vec_dot of the same table. Two rows' chains of float steps run side by side, where one
 * row's waits on its own latency (and with two activation rows, four, each weight block
 * decoded once for both).
 *
 * pf[i] (pf, or either entry, may be NULL): a row of the same type and n that the
 * caller reads next, which the kernel asks the cache for a share at a time as it walks
 * w0 and w1 (a row's worth over the call, each byte once). A hint: the results do not
 * depend on it. Spread over the arithmetic, the requests overlap it; asked for all at
 * once before the call, they fill the core's queue of misses and the arithmetic waits
 * behind them (forward.c: matmul_rows_2w). */
typedef void (*ks_vec_dot_2w_fn)(const void *w0, const void *w1, const void *a, size_t a_stride,
                                 int nt, int64_t n, float *s, const void *const pf[2]);

/* vec_dot_4 over activation rows packed for it once per matrix multiplication, where
 * the rows' own layout would cost the kernel more work per weight row than packing them
 * costs once (AVX-512: pairs of rows side by side in 512-bit vectors, for Q8_0, Q4_K,
 * Q5_K and Q6_K). pack() takes KS_VEC_DOT_ROWS rows of the dot type (a NULL row
 * packs as zeros, its result unused) into bytes(n) bytes; run(w, packed) writes s[j] =
 * vec_dot(w, row j, n) bit for bit, for the vec_dot of the same table, and asks for the
 * weight row pf (NULL: none) a share at a time as vec_dot_2w does. */
typedef struct ks_dot4_packed {
    size_t (*bytes)(int64_t n);
    void (*pack)(const void *const rows[KS_VEC_DOT_ROWS], int64_t n, void *packed);
    void (*run)(const void *w, const void *packed, int64_t n, float *s, const void *pf);
} ks_dot4_packed;

/* A matrix multiplication for prefill, where many tokens meet each weight row: tokens are
 * the rows of tiles that share each weight tile (AMX). Activations are first quantized by
 * quantize_act[dot_type] exactly as for vec_dot, then each token's row is moved into the
 * kernel's own layout by pack_act; run() computes y[t * ldy + r] = vec_dot(w row r,
 * token t) for t < T and r0 <= r < r1 up to the order of float additions. */
#define KS_GEMM_ROWS 16 /* weight rows per tile: give run() ranges in multiples of it */
typedef struct ks_gemm_kernel {
    /* bytes of the packed activations of T tokens of n elements */
    size_t (*act_bytes)(int T, int64_t n);
    /* token t's dot-type row into the packed layout (row NULL: a zero pad row for
     * T <= t < T rounded up to 16: call it for those too) */
    void (*pack_act)(const void *row, int t, int T, int64_t n, void *act);
    /* per-thread scratch run() needs for rows of n elements */
    size_t (*scratch_bytes)(int64_t n);
    void (*run)(const void *w, size_t w_row_bytes, int64_t r0, int64_t r1, const void *act,
                int T, int64_t n, float *y, size_t ldy, void *scratch);
} ks_gemm_kernel;

/* Weight matrices repacked at load into panels of KS_PANEL_ROWS rows, for CPUs whose
 * integer dot products put one output per vector lane: a panel's codes are laid out so
 * that one 512-bit load holds four consecutive codes of each of its 16 rows (the "VNNI"
 * order, which is also an AMX B tile's), so a dot product of four activation bytes
 * broadcast against it gives 16 rows' partial sums at once, without the horizontal sums
 * or per-lane float work a row-at-a-time kernel spends on each block. A panel takes as
 * many bytes as its 16 rows did and sits where they sat; the matrix's rows must be a
 * multiple of 16 (an expert's rows, in a 3-D weight), or it stays rows.
 *
 * Q8_0 panel of rows of n elements, nb = n / 32 blocks, block b at b * 544 bytes:
 *   d   [16] fp16       row r's scale of block b
 *   q   [8][16][4] u8   q[g][r][i] = row r's code 4g + i of block b, plus 128
 *
 * Each result is one chain per row and token, over the blocks in order:
 *   isum = sum_k (q - 128) a_k  (exact);  acc = fma(fp32(d) * da, float(isum), acc)
 * from acc = 0, so a row and token get the same bits from gemv whatever other tokens
 * share the call, from the tiles of gemm, and from the scalar reference. The activation
 * rows are the type's dot type (Q8_0 for Q8_0), each first given its block scales as
 * floats and its correction -128 * sum(a) per block by pack_act (act_bytes(n) bytes).
 * IQ4_NL's layout (Q8_0's, with 16 bytes of nibble pairs a row and block) and the Q2_K ..
 * Q6_K and IQ4_XS ones (super-blocks of 16 rows x 256 codes, their scales decoded for all
 * 16 rows at once) are defined in tensor/ref/panel_ref.c. */
#define KS_PANEL_ROWS 16
typedef struct ks_panel_kernels {
    /* 16 rows of n elements, row_bytes apart, into one panel in place; scratch: 16 *
     * row_bytes bytes */
    void (*repack)(void *rows, size_t row_bytes, int64_t n, void *scratch);
    /* row r (< 16) of a panel as n floats (an embedding lookup) */
    void (*row_to_float)(const void *panel, int r, int64_t n, float *y);
    size_t (*act_bytes)(int64_t n);
    void (*pack_act)(const void *row, int64_t n, void *pk);
    /* y[j][t * ldy + i] = row i of panels[j] . activation row t, i < 16, t < nt
     * (1..KS_VEC_DOT_ROWS), j < 2 (panels[1] NULL: one panel): row t at a + t * a_stride,
     * its pack_act bytes at pk + t * pk_stride. Two panels are walked side by side, as
     * two streams of the matrix. next NULL: the kernel asks the cache for nothing; else
     * it asks for each stream's bytes ahead of use (a hint), into next[j] (NULL: none),
     * what stream j reads after panels[j]. */
    void (*gemv)(const void *const panels[2], const void *const next[2], const void *a, size_t a_stride,
                 const void *pk, size_t pk_stride, int nt, int64_t n, float *const y[2], size_t ldy);
    /* prefill over panels (tiles where the table has them; run NULL: none): w is the
     * matrix, w_row_bytes the bytes a row took before repacking, r0 and r1 multiples of 16 */
    ks_gemm_kernel gemm;
} ks_panel_kernels;

/* Attention tiles (see attn_scores, attn_accum below). */
typedef void (*ks_attn_scores_fn)(const float *q, int64_t ld_q, int nq, const void *k,
                                  int64_t ld_k, int nk, int64_t n, float scale, float *s,
                                  int64_t ld_s, const void *pf);
typedef void (*ks_attn_scores_q8_fn)(const void *q, int64_t ld_q, int nq, const void *k, int64_t ld_k, int nk,
                                     int64_t n, float scale, float *s, int64_t ld_s, const void *pf);
typedef void (*ks_attn_accum_fn)(float *acc, int64_t ld_acc, int nq, const float *p,
                                 int64_t ld_p, const void *v, int64_t ld_v, int nk, int64_t n,
                                 const void *pf);

/* Streaming attention over F16 K/V with tiles (AMX-BF16), for groups of many query rows
 * (prefill): one KV head of one block of nk <= KS_ATTN_TILE_KEYS keys at a time, for nq
 * query rows (1 <= nq <= KS_ATTN_TILE_ROWS) of n elements (n a multiple of 32, at most
 * KS_ATTN_TILE_DIM). Queries are first prepared (scaled, split, laid out for the tiles)
 * by prep_q into q_bytes(nq, n) bytes; block() then does, for every row r with keys
 * [0, lim[r] - p0) of the block visible (none if that is <= 0),
 *   s_j = q_r . k_j (scale applied by prep_q);  m' = max(m[r], s_j);  P_j = e^(s_j - m')
 *   l[r] = l[r] e^(m[r] - m') + sum P_j;  acc row r = acc row r e^(m[r] - m') + sum P_j v_j
 * (the state of attn_scores / softmax_rows / attn_accum, up to rounding). Products are
 * taken in BF16 pairs, each operand split into a high and a low BF16 part (hi.hi +
 * hi.lo + lo.hi, F32 sums): about 16 significant bits, more than F16 K/V carry.
 * scratch: scratch_bytes(nq, n) bytes per thread. */
#define KS_ATTN_TILE_KEYS 32
#define KS_ATTN_TILE_ROWS 128
#define KS_ATTN_TILE_DIM 256
typedef struct ks_attn_tile_kernel {
    size_t (*q_bytes)(int nq, int64_t n);
    void (*prep_q)(const float *q, int64_t ld_q, int nq, int64_t n, float scale, void *qp);
    size_t (*scratch_bytes)(int nq, int64_t n);
    void (*block)(const void *qp, int nq, int64_t n, const ks_fp16 *k, const ks_fp16 *v, int64_t ld_kv, int nk,
                  const int *lim, int p0, float *m, float *l, float *acc, int64_t ld_acc, void *scratch);
} ks_attn_tile_kernel;

typedef struct ks_kernels {
    const char *isa;
    /* y[i] = x[i] converted, n elements */
    void (*fp16_to_fp32_row)(const ks_fp16 *x, float *y, int64_t n);
    void (*fp32_to_fp16_row)(const float *x, ks_fp16 *y, int64_t n);
    void (*bf16_to_fp32_row)(const ks_bf16 *x, float *y, int64_t n);
    /* sum_i x[i] * y[i], n elements */
    float (*dot_f32)(const float *x, const float *y, int64_t n);
    /* row-wise ops of a layer (ref/elementwise_ref.c): y = x / rms(x) * w (w NULL: no
     * scale; y may be x), and y = silu(g) * u (y may be g or u) */
    void (*rmsnorm_f32)(const float *x, const float *w, float *y, int64_t n, float eps);
    void (*swiglu_f32)(const float *g, const float *u, float *y, int64_t n);

    /* Streaming attention (model/attention.c) over rows of n = head_dim elements, row r
     * of a matrix at base + r * ld elements; queries, scores and accumulators are floats,
     * K and V rows F32, F16 or Q8_0 (the index of attn_scores / attn_accum; NULL for
     * other types; Q8_0: n and ld multiples of 32, and the results those of the F32
     * kernels on the rows' values, bit for bit). Any nq, nk >= 0 and n >= 1.
     *   attn_scores:  s[r * ld_s + j] = scale * dot(q row r, k row j) r < nq, j < nk
     *   softmax_rows: the online-softmax step of nr rows of scores at once, row r at
     *                 s + r * ld_s with n entries, entry j seen while lo + j < lim[r]:
     *                 m' = max(m[r], its seen entries); seen entries become
     *                 exp(s - m'), the others 0; corr[r] = exp(m[r] - m') (exactly 1
     *                 where m' = m[r], as for a row that sees none; 0 from -inf);
     *                 l[r] = l[r] corr[r] + the row's sum; m[r] = m'. A row that sees
     *                 entries needs a finite one or a finite m[r] (-inf entries give 0).
     *                 Each row's arithmetic is the same whatever rows share the call
     *   attn_accum:   acc row r += sum_j p[r * ld_p + j] * v row j, j in order
     * and both ask the cache, as they go, for the nk rows of n elements at pf + j * ld_k
     * (ld_v) that the caller reads next (NULL: none; a hint, the results do not depend
     * on it; see vec_dot_2w's pf) */
    ks_attn_scores_fn attn_scores[KS_TYPE_COUNT];
    /* Scores of Q8_0 keys in panels (attn_kv.h: kv_q8_panel), the layout a KV pool takes
     * for its Q8_0 keys where the table has this (model/kv_layout.h), against query rows
     * rounded to Q8_0 (quantize_act[KS_TYPE_Q8_0]), as llama.cpp scores a Q8_0 cache: k is
     * the panels of one KV head's keys 0-15, keys j .. j + 15 (j a multiple of 16) at k +
     * kv_off(KV_Q8, j * ld_k) (ld_k the pool's row stride in elements); query rows are
     * kv_q8_query blocks (kv_q8_query_prep of quantize_act's rows), row r at q + r * ld_q
     * / 32 blocks; n <= KS_ATTN_TILE_DIM, any nq and nk (the last panel's keys past nk not
     * stored). s[r * ld_s + j] = scale * vec_dot[KS_TYPE_Q8_0](k row j, q row r, n) up to
     * the order of its float steps, each score the same in any tile; pf as attn_scores.
     * NULL where a table has none (ref: the specification is the vec_dot's), and the pool
     * then holds keys in rows, scored against float queries (attn_scores). */
    ks_attn_scores_q8_fn attn_scores_q8p;
    /* Scores of F16 keys in panels (attn_kv.h: kv_f16_panel_put), the layout a KV pool
     * takes for its F16 keys where the table has this and no attn_tile_f16 (kv_layout.h),
     * against float query rows: k is the panel of one KV head's keys 0-15, keys j .. j +
     * 15 (j a multiple of 16) at k + j * ld_k halves (ld_k the pool's row stride in
     * elements); any nq, nk and n >= 1 (the last panel's keys past nk not stored). Each
     * score is exactly s[r * ld_s + j] = scale * (A0 + A1), A_c = fmaf(q[e], k[e], A_c)
     * over the elements e = c (mod 2) in order from 0: one lane's two chains of FMAs, the
     * same in any tile, so a query scores the same in a prefill tile and alone in decode;
     * pf as attn_scores. NULL where a table has none (ref: the specification above). */
    ks_attn_scores_fn attn_scores_f16p;
    void (*softmax_rows_f32)(float *s, int64_t ld_s, int nr, int64_t n, const int *lim, int64_t lo, float *m,
                             float *l, float *corr);
    ks_attn_accum_fn attn_accum[KS_TYPE_COUNT];
    /* attn_accum over Q8_0 V rows (n a multiple of 32, at most KS_ATTN_TILE_DIM) in
     * integer products: per group of 32 keys (from the call's first) and block b of a row,
     * the weights w_j = p[r][j] d_jb are rounded to int16 against their largest magnitude
     * (W = max |w_j|: q_j = round(32767 w_j / W)), summed with the codes in int32, and
     * acc += (W / 32767) times the sums. Each row's result depends on its own weights only
     * (the same in any tile); keys whose weight is 0 do not move W. NULL where a table has
     * none, and attention then takes attn_accum[KS_TYPE_Q8_0]. */
    ks_attn_accum_fn attn_accum_q8i;
    /* F16 K/V with tiles, for prefill (see ks_attn_tile_kernel); block NULL where the
     * table has none */
    ks_attn_tile_kernel attn_tile_f16;
    /* indexed by weight type; NULL where no kernel exists */
    ks_vec_dot_fn vec_dot[KS_TYPE_COUNT];
    /* indexed by weight type: vec_dot over several activation rows at once, for prefill,
     * where many tokens meet each weight row. The weight row is decoded once for all of
     * them and their float chains run side by side. NULL where a table has none (ref
     * has none: 4 x vec_dot is its specification): call vec_dot per row. Never taken
     * from another table, as it must agree with this table's vec_dot bit for bit. */
    ks_vec_dot_4_fn vec_dot_4[KS_TYPE_COUNT];
    /* indexed by weight type: vec_dot of two weight rows at once, for decode (one
     * token); NULL where a table has none */
    ks_vec_dot_2w_fn vec_dot_2w[KS_TYPE_COUNT];
    /* indexed by weight type: vec_dot_4 over packed rows (see ks_dot4_packed); run NULL
     * where the table has none, and then vec_dot_4 serves */
    ks_dot4_packed vec_dot_4_packed[KS_TYPE_COUNT];
    /* indexed by activation type (a weight type's dot_type): n floats of x into one row
     * of that type in y, rounded as vec_dot expects; NULL for non-activation types */
    void (*quantize_act[KS_TYPE_COUNT])(const float *x, void *y, int64_t n);
    /* indexed by weight type; run NULL where the table has none */
    ks_gemm_kernel gemm[KS_TYPE_COUNT];
    /* indexed by weight type: the panel layout's kernels (see ks_panel_kernels); gemv
     * NULL where the table has none, and then weights of that type stay rows */
    ks_panel_kernels panel[KS_TYPE_COUNT];
} ks_kernels;

/* The selected set (first call selects; thread-safe afterwards). */
const ks_kernels *ks_kernels_get(void);
/* The scalar reference set. */
const ks_kernels *ks_kernels_ref(void);
/* A named set completed with ref entries, or NULL if not built or the CPU lacks it. */
const ks_kernels *ks_kernels_for_isa(const char *isa);

/* Per-ISA registration: each fills the entries it implements. Only called when the CPU
 * supports the ISA. */
void ks_kernels_register_avx2(ks_kernels *k);
void ks_kernels_register_avx512(ks_kernels *k);
void ks_kernels_register_neon(ks_kernels *k);

#endif
