/* test_kernels.c — every ISA kernel set against the scalar reference. An ISA the CPU (or
 * the build) lacks is reported as skipped, never passed. */
#include "tensor/attn_kv.h"
#include "tensor/kernels.h"
#include "tensor/quants.h"
#include "test_support.h"
#if defined(KS_HAVE_X86_KERNELS)
#include "tensor/x86/kernels_x86.h"
#endif

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const isas[] = {"avx2", "avx512", "neon"};

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static float frand(void) { /* uniform in [-1, 1) */
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng_state >> 40) & 0xffffff) / 8388608.0f - 1.0f;
}

static const ks_kernels *isa_or_skip(const char *isa) {
    const ks_kernels *k = ks_kernels_for_isa(isa);
    if (!k)
        cr_log_info("%s kernels not available on this CPU/build: skipped", isa);
    return k;
}

Test(kernels, test_kernels_selection_prefers_the_widest_available_isa) {
    const ks_kernels *sel = ks_kernels_get();
    cr_assert_not_null(sel);
    const char *widest = ks_kernels_for_isa("amx") ? "amx" : ks_kernels_for_isa("avx512") ? "avx512" : NULL;
    if (widest)
        cr_assert_str_eq(sel->isa, getenv("KS_KERNELS") ? getenv("KS_KERNELS") : widest);
    cr_assert_str_eq(ks_kernels_ref()->isa, "ref");
}

Test(kernels, test_kernels_fp16_rows_match_ref_bit_exactly) {
    enum { N = 1037 }; /* not a multiple of any vector width: tails are exercised */
    static float x[N], yr[N], yi[N];
    static ks_fp16 hr[N], hi[N];
    for (int i = 0; i < N; i++)
        x[i] = frand() * (i % 7 == 0 ? 70000.0f : 3.0f) * (i % 11 == 0 ? 1e-6f : 1.0f);
    const ks_kernels *ref = ks_kernels_ref();
    ref->fp32_to_fp16_row(x, hr, N);
    ref->fp16_to_fp32_row(hr, yr, N);
    for (size_t j = 0; j < sizeof isas / sizeof isas[0]; j++) {
        const ks_kernels *k = isa_or_skip(isas[j]);
        if (!k)
            continue;
        k->fp32_to_fp16_row(x, hi, N);
        k->fp16_to_fp32_row(hr, yi, N);
        for (int i = 0; i < N; i++) {
            cr_assert_eq(hi[i], hr[i], "%s fp32->fp16 [%d] %g: 0x%04x vs ref 0x%04x", isas[j], i,
                         (double)x[i], hi[i], hr[i]);
            cr_assert_eq(memcmp(&yi[i], &yr[i], 4), 0, "%s fp16->fp32 [%d]", isas[j], i);
        }
    }
}

Test(kernels, test_kernels_bf16_rows_match_ref_bit_exactly) {
    enum { N = 517 };
    static ks_bf16 h[N];
    static float yr[N], yi[N];
    for (int i = 0; i < N; i++)
        h[i] = ks_fp32_to_bf16(frand() * 100.0f);
    ks_kernels_ref()->bf16_to_fp32_row(h, yr, N);
    for (size_t j = 0; j < sizeof isas / sizeof isas[0]; j++) {
        const ks_kernels *k = isa_or_skip(isas[j]);
        if (!k)
            continue;
        k->bf16_to_fp32_row(h, yi, N);
        cr_assert_eq(memcmp(yi, yr, sizeof yr), 0, "%s bf16->fp32", isas[j]);
    }
}

Test(kernels, test_kernels_dot_f32_within_float_error_of_ref) {
    enum { N = 4099 };
    static float x[N], y[N];
    for (int i = 0; i < N; i++) {
        x[i] = frand();
        y[i] = frand();
    }
    double abs_sum = 0;
    for (int i = 0; i < N; i++)
        abs_sum += fabs((double)x[i] * y[i]);
    for (int n = 0; n <= N; n += (n < 40 ? 1 : 509)) {
        float r = ks_kernels_ref()->dot_f32(x, y, n);
        for (size_t j = 0; j < sizeof isas / sizeof isas[0]; j++) {
            const ks_kernels *k = isa_or_skip(isas[j]);
            if (!k)
                continue;
            float v = k->dot_f32(x, y, n);
            /* float accumulation error bound: a few ulps of the sum of magnitudes */
            cr_assert_leq(fabs((double)v - r), 1e-6 * abs_sum + 1e-7, "%s dot n=%d: %g vs ref %g",
                          isas[j], n, (double)v, (double)r);
        }
    }
}

/* ---- streaming attention ---------------------------------------------------------------- */

/* Query and key rows for the score tiles: up to 19 x 37 rows of up to 260 elements, with
 * strides wider than a row so that reads past a row's end would show. */
#define ATT_Q 19
#define ATT_K 37
#define ATT_LD 263

/* K/V rows of the attention tests in F32 (as given), F16 (rounded) or Q8_0 (quantized,
 * rows of ATT_LD_Q8 elements, n a multiple of 32), and the floats they stand for (rows
 * ATT_LD apart, as given). */
#define ATT_LD_Q8 288
typedef struct kv_rows {
    const void *data;
    float *as_float;
    int64_t ld;       /* elements from a row to the next */
    size_t row_bytes; /* bytes from a row to the next */
} kv_rows;

static kv_rows make_kv_rows(ks_type t, const float *x, size_t n) {
    static ks_fp16 halves[2][ATT_K * ATT_LD];
    static uint8_t q8[2][ATT_K * ATT_LD_Q8 / 32 * 34];
    static float widened[2][ATT_K * ATT_LD];
    static int slot;
    if (t == KS_TYPE_F32)
        return (kv_rows){x, (float *)x, ATT_LD, ATT_LD * sizeof(float)};
    slot ^= 1;
    if (t == KS_TYPE_Q8_0) {
        const size_t row_bytes = ATT_LD_Q8 / 32 * 34;
        for (size_t r = 0; r < n / ATT_LD; r++) {
            float row[ATT_LD_Q8] = {0};
            memcpy(row, x + r * ATT_LD, 256 * sizeof(float));
            ks_type_traits_of(KS_TYPE_Q8_0)->from_float(row, q8[slot] + r * row_bytes, ATT_LD_Q8);
            ks_type_traits_of(KS_TYPE_Q8_0)->to_float(q8[slot] + r * row_bytes, row, ATT_LD_Q8);
            memcpy(widened[slot] + r * ATT_LD, row, ATT_LD * sizeof(float));
        }
        return (kv_rows){q8[slot], widened[slot], ATT_LD_Q8, row_bytes};
    }
    for (size_t i = 0; i < n; i++) {
        halves[slot][i] = ks_fp32_to_fp16(x[i]);
        widened[slot][i] = ks_fp16_to_fp32(halves[slot][i]);
    }
    return (kv_rows){halves[slot], widened[slot], ATT_LD, ATT_LD * sizeof(ks_fp16)};
}

static const ks_type kv_types[] = {KS_TYPE_F32, KS_TYPE_F16, KS_TYPE_Q8_0};

/* Whether a test of lengths takes n for rows of type t (Q8_0: whole blocks). */
static bool kv_takes_n(ks_type t, int n) { return t != KS_TYPE_Q8_0 || (n % 32 == 0 && n <= 256); }

Test(kernels, test_kernels_attn_scores_within_float_error_of_ref_and_tile_independent) {
    static float q[ATT_Q * ATT_LD], kx[ATT_K * ATT_LD], sr[ATT_Q * ATT_K], si[ATT_Q * ATT_K];
    for (int i = 0; i < ATT_Q * ATT_LD; i++)
        q[i] = frand();
    for (int i = 0; i < ATT_K * ATT_LD; i++)
        kx[i] = frand();
    static const int ns[] = {1, 5, 16, 31, 32, 64, 100, 128, 129, 256, 260};
    static const int shapes[][2] = {{1, 1}, {1, 32}, {2, 32}, {3, 5}, {4, 4}, {8, 17}, {16, 32}, {19, 37}};
    for (size_t ti = 0; ti < sizeof kv_types / sizeof kv_types[0]; ti++) {
        const ks_type kt = kv_types[ti];
        const kv_rows k = make_kv_rows(kt, kx, ATT_K * ATT_LD);
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
            for (size_t sh = 0; sh < sizeof shapes / sizeof shapes[0] && kv_takes_n(kt, ns[ni]); sh++) {
                const int n = ns[ni], nq = shapes[sh][0], nk = shapes[sh][1];
                ks_kernels_ref()->attn_scores[kt](q, ATT_LD, nq, k.data, k.ld, nk, n, 0.125f, sr, ATT_K, NULL);
                for (size_t j = 0; j < sizeof isas / sizeof isas[0]; j++) {
                    const ks_kernels *kk = isa_or_skip(isas[j]);
                    if (!kk)
                        continue;
                    memset(si, 0xff, sizeof si); /* NaN: a score the kernel failed to write */
                    kk->attn_scores[kt](q, ATT_LD, nq, k.data, k.ld, nk, n, 0.125f, si, ATT_K, k.data); /* rows to ask for: a hint */
                    if (kt == KS_TYPE_Q8_0) { /* the F32 kernel's scores of the rows' values, bit for bit */
                        float sf[ATT_Q * ATT_K];
                        kk->attn_scores[KS_TYPE_F32](q, ATT_LD, nq, k.as_float, ATT_LD, nk, n, 0.125f, sf, ATT_K, NULL);
                        for (int r = 0; r < nq; r++)
                            cr_assert_eq(memcmp(sf + r * ATT_K, si + r * ATT_K, (size_t)nk * sizeof(float)), 0,
                                         "%s scores q8_0 n=%d %dx%d row %d: not the F32 scores of its values",
                                         isas[j], n, nq, nk, r);
                    }
                    for (int r = 0; r < nq; r++)
                        for (int c = 0; c < nk; c++) {
                            double mag = 0; /* of the scaled terms */
                            for (int i = 0; i < n; i++)
                                mag += fabs(0.125 * q[r * ATT_LD + i] * k.as_float[c * ATT_LD + i]);
                            const float v = si[r * ATT_K + c], want = sr[r * ATT_K + c];
                            cr_assert_leq(fabs((double)v - want), 1e-6 * mag + 1e-30,
                                          "%s scores %s n=%d %dx%d [%d][%d]: %g vs ref %g", isas[j],
                                          ks_type_name(kt), n, nq, nk, r, c, (double)v, (double)want);
                            /* the same score computed alone, bit for bit */
                            float one;
                            kk->attn_scores[kt](q + r * ATT_LD, ATT_LD, 1,
                                                (const char *)k.data + (size_t)c * k.row_bytes, k.ld, 1,
                                                n, 0.125f, &one, 1, NULL);
                            cr_assert_eq(memcmp(&one, &v, sizeof v), 0,
                                         "%s scores %s n=%d %dx%d [%d][%d]: %a in the tile, %a alone",
                                         isas[j], ks_type_name(kt), n, nq, nk, r, c, (double)v, (double)one);
                        }
                }
            }
    }
}

/* Q8_0 rows packed end to end in a buffer of exactly their size, a length whose last
 * tile of accumulators runs past the row (3 blocks, tiles of 64 elements): nothing past
 * the rows is read (the ASan build tells), and the sums are the F32 kernel's. */
Test(kernels, test_kernels_attn_q8_0_rows_read_nothing_past_their_end) {
    enum { N = 96, NK = 5, NQ = 4, ROW = N / 32 * 34 };
    static float x[NK * N], vf[NK * N], p[NQ * NK], a0[NQ * N], a1[NQ * N], s0[NQ * NK], s1[NQ * NK];
    uint8_t *v = malloc(NK * ROW);
    cr_assert_not_null(v);
    for (int i = 0; i < NK * N; i++)
        x[i] = frand();
    for (int i = 0; i < NQ * NK; i++)
        p[i] = 0.5f * (frand() + 1.0f);
    ks_type_traits_of(KS_TYPE_Q8_0)->from_float(x, v, NK * N);
    ks_type_traits_of(KS_TYPE_Q8_0)->to_float(v, vf, NK * N);
    for (size_t j = 0; j < sizeof isas / sizeof isas[0]; j++) {
        const ks_kernels *k = isa_or_skip(isas[j]);
        if (!k)
            continue;
        memset(a0, 0, sizeof a0);
        memset(a1, 0, sizeof a1);
        k->attn_accum[KS_TYPE_Q8_0](a0, N, NQ, p, NK, v, N, NK, N, v);
        k->attn_accum[KS_TYPE_F32](a1, N, NQ, p, NK, vf, N, NK, N, NULL);
        cr_assert_eq(memcmp(a0, a1, sizeof a0), 0, "%s accum of packed q8_0 rows", isas[j]);
        k->attn_scores[KS_TYPE_Q8_0](x, N, NQ, v, N, NK, N, 0.125f, s0, NK, v);
        k->attn_scores[KS_TYPE_F32](x, N, NQ, vf, N, NK, N, 0.125f, s1, NK, NULL);
        cr_assert_eq(memcmp(s0, s1, sizeof s0), 0, "%s scores of packed q8_0 rows", isas[j]);
    }
    free(v);
}

/* scale times the reference Q8_0 dot product of rows q and k of n elements; *mag: the
 * sum of its scaled terms' magnitudes (the scale of its float rounding) */
static float q8_0_score(const ks_kernels *ref, const uint8_t *q, const uint8_t *k, int n, float scale, double *mag) {
    *mag = 0;
    for (int b = 0; b < n / 32; b++) {
        const ks_block_q8_0 *qb = (const ks_block_q8_0 *)q + b, *kb = (const ks_block_q8_0 *)k + b;
        for (int i = 0; i < 32; i++)
            *mag += fabs((double)scale * ks_fp16_to_fp32(qb->d) * qb->qs[i] * ks_fp16_to_fp32(kb->d) * kb->qs[i]);
    }
    return scale * ref->vec_dot[KS_TYPE_Q8_0](k, q, n);
}

/* A panel kernel's row r of scores si (ld_s apart, NaN before the call): nothing stored
 * for the keys past nk (the last panel's lanes past it). */
static void assert_nothing_past_nk(const char *what, const float *si, int ld_s, int r, int nq, int nk, int n) {
    for (int c = nk; c < ld_s; c++)
        cr_assert(isnan(si[r * ld_s + c]), "%s n=%d %dx%d: [%d][%d] stored past nk", what, n, nq, nk, r, c);
}

/* attn_scores_q8p: Q8_0 keys (an outlier channel per block) in panels (attn_kv.h), as a
 * pool holds them (16 keys' panels where 16 rows would be), against Q8_0 queries of other
 * magnitudes; each score within float rounding of scale times the reference Q8_0 dot product, the same bits alone as in its tile, and nothing
 * stored for the last panel's keys past nk. */
Test(kernels, test_kernels_attn_scores_q8p_within_float_error_of_the_q8_0_dot_and_tile_independent) {
    enum { LD = 288, NB_LD = LD / 32, ROW_BYTES = NB_LD * 34, NK_PANELS = (ATT_K + 15) / 16 };
    static uint8_t q8[ATT_Q * ROW_BYTES], k8[ATT_K * ROW_BYTES], kp[NK_PANELS * 16 * ROW_BYTES];
    static kv_q8_query qp[ATT_Q * NB_LD];
    static float x[LD], si[ATT_Q * (ATT_K + 16)];
    const ks_kernels *ref = ks_kernels_ref();
    for (int r = 0; r < ATT_Q; r++) {
        for (int i = 0; i < LD; i++)
            x[i] = frand() * (r % 3 == 0 ? 40.0f : 1.0f); /* rows of other magnitudes */
        ref->quantize_act[KS_TYPE_Q8_0](x, q8 + r * ROW_BYTES, LD);
        kv_q8_query_prep((const ks_block_q8_0 *)(q8 + r * ROW_BYTES), NB_LD, qp + r * NB_LD);
    }
    for (int r = 0; r < ATT_K; r++) {
        for (int i = 0; i < LD; i++)
            x[i] = frand() * (i % 32 < 4 ? 8.0f : 1.0f); /* an outlier channel per block */
        ks_type_traits_of(KS_TYPE_Q8_0)->from_float(x, k8 + r * ROW_BYTES, LD);
    }
    static const int ns[] = {32, 64, 96, 128, 160, 256};
    static const int shapes[][2] = {{1, 1}, {1, 37}, {2, 16}, {2, 32}, {3, 5}, {4, 17}, {8, 32}, {9, 33}, {16, 32}, {19, 37}};
    const int ld_s = ATT_K + 16;
    int tested = 0;
    for (size_t j = 0; j < sizeof isas / sizeof isas[0]; j++) {
        const ks_kernels *kk = isa_or_skip(isas[j]);
        if (!kk || !kk->attn_scores_q8p)
            continue;
        tested++;
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
            const int n = ns[ni];
            memset(kp, 0x7c, sizeof kp); /* keys past ATT_K: d a large half, codes 124 */
            for (int c = 0; c < ATT_K; c++)
                kv_q8_panel_put((kv_q8_panel *)(kp + c / 16 * 16 * ROW_BYTES), c % 16,
                                (const ks_block_q8_0 *)(k8 + c * ROW_BYTES), n / 32);
            for (int c = 0; c < ATT_K; c++) { /* the panels give the rows back */
                ks_block_q8_0 back[NB_LD];
                kv_q8_panel_get((const kv_q8_panel *)(kp + c / 16 * 16 * ROW_BYTES), c % 16, back, n / 32);
                cr_assert_eq(memcmp(back, k8 + c * ROW_BYTES, (size_t)n / 32 * 34), 0, "panel key %d n=%d", c, n);
            }
            for (size_t sh = 0; sh < sizeof shapes / sizeof shapes[0]; sh++) {
                const int nq = shapes[sh][0], nk = shapes[sh][1];
                memset(si, 0xff, sizeof si); /* NaN: a score the kernel failed to write */
                kk->attn_scores_q8p(qp, LD, nq, kp, LD, nk, n, 0.125f, si, ld_s, kp); /* panels to ask for: a hint */
                for (int r = 0; r < nq; r++) {
                    assert_nothing_past_nk(isas[j], si, ld_s, r, nq, nk, n);
                    for (int c = 0; c < nk; c++) {
                        const uint8_t *qr = q8 + r * ROW_BYTES, *kr = k8 + c * ROW_BYTES;
                        double mag;
                        const float want = q8_0_score(ref, qr, kr, n, 0.125f, &mag);
                        const float v = si[r * ld_s + c];
                        cr_assert_leq(fabs((double)v - want), 1e-6 * mag + 1e-30, "%s scores q8p n=%d %dx%d [%d][%d]: %g vs %g",
                                      isas[j], n, nq, nk, r, c, (double)v, (double)want);
                        /* alone: key c as key 0 of a panel of its own */
                        static uint8_t one_panel[16 * ROW_BYTES];
                        kv_q8_panel_put((kv_q8_panel *)one_panel, 0, (const ks_block_q8_0 *)kr, n / 32);
                        float one;
                        kk->attn_scores_q8p(qp + r * NB_LD, LD, 1, one_panel, LD, 1, n, 0.125f, &one, 1, NULL);
                        cr_assert_eq(memcmp(&one, &v, sizeof v), 0, "%s scores q8p n=%d %dx%d [%d][%d]: %a in the tile, %a alone",
                                     isas[j], n, nq, nk, r, c, (double)v, (double)one);
                    }
                }
            }
        }
    }
    if (!tested)
        cr_skip_test("no table here has attn_scores_q8p");
}

/* attn_scores_f16p's specification: scale (A0 + A1), A_c the FMA chain over the
 * elements e = c (mod 2) in order. */
static float f16p_score(const float *q, const ks_fp16 *k, int64_t n, float scale) {
    float a[2] = {0.0f, 0.0f};
    for (int64_t e = 0; e < n; e++)
        a[e % 2] = fmaf(q[e], ks_fp16_to_fp32(k[e]), a[e % 2]);
    return scale * (a[0] + a[1]);
}

/* attn_scores_f16p: F16 keys in panels (attn_kv.h), as a pool holds them (16 keys'
 * panels where 16 rows would be, rows of LD elements), against float queries of other
 * magnitudes: every score its specification's bits, the same in any tile, and nothing
 * stored for the last panel's keys past nk; odd lengths take chain 0's last step. */
Test(kernels, test_kernels_attn_scores_f16p_is_its_specification_in_any_tile) {
    enum { LD = 272, NK_PANELS = (ATT_K + 15) / 16 };
    static float q[ATT_Q * LD], si[ATT_Q * (ATT_K + 32)];
    static ks_fp16 k16[ATT_K * LD], kp[NK_PANELS * 16 * LD];
    for (int r = 0; r < ATT_Q; r++)
        for (int i = 0; i < LD; i++)
            q[r * LD + i] = frand() * (r % 3 == 0 ? 40.0f : 1.0f);
    for (int i = 0; i < ATT_K * LD; i++)
        k16[i] = ks_fp32_to_fp16(frand() * (i % 32 < 2 ? 8.0f : 1.0f));
    static const int ns[] = {1, 7, 64, 128, 129, 256};
    static const int shapes[][2] = {{1, 1}, {1, 37}, {2, 16}, {2, 32}, {2, 33}, {3, 5}, {4, 17},
                                    {8, 32}, {9, 33}, {16, 32}, {19, 37}};
    const int ld_s = ATT_K + 32;
    /* the tables, and on AVX-512 both its forms (broadcasts folded or shared, which
     * kernels.c picks by the CPU's maker) whichever the table holds */
    const char *names[8];
    const ks_kernels *tables[8];
    int nt = 0;
    for (size_t j = 0; j < sizeof isas / sizeof isas[0]; j++) {
        const ks_kernels *kk = isa_or_skip(isas[j]);
        if (kk && kk->attn_scores_f16p) {
            names[nt] = isas[j];
            tables[nt++] = kk;
        }
    }
#if defined(KS_HAVE_X86_KERNELS)
    static ks_kernels folded, shared;
    if (ks_kernels_for_isa("avx512")) {
        folded = shared = *ks_kernels_for_isa("avx512");
        ks_attn_f16p_avx512_register(&folded);
        ks_attn_f16p_shared_avx512_register(&shared);
        names[nt] = "avx512 folded";
        tables[nt++] = &folded;
        names[nt] = "avx512 shared";
        tables[nt++] = &shared;
    }
#endif
    for (int j = 0; j < nt; j++) {
        const ks_kernels *kk = tables[j];
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
            const int n = ns[ni];
            for (size_t x = 0; x < sizeof kp / sizeof kp[0]; x++)
                kp[x] = 0x7bff; /* keys past ATT_K: the largest half */
            for (int c = 0; c < ATT_K; c++)
                kv_f16_panel_put(kp + c / 16 * 16 * LD, c % 16, k16 + c * LD, n);
            for (int c = 0; c < ATT_K; c++) { /* the panels give the rows back */
                ks_fp16 back[LD];
                kv_f16_panel_get(kp + c / 16 * 16 * LD, c % 16, back, n);
                cr_assert_eq(memcmp(back, k16 + c * LD, (size_t)n * sizeof(ks_fp16)), 0, "panel key %d n=%d", c, n);
            }
            for (size_t sh = 0; sh < sizeof shapes / sizeof shapes[0]; sh++) {
                const int nq = shapes[sh][0], nk = shapes[sh][1];
                memset(si, 0xff, sizeof si); /* NaN: a score the kernel failed to write */
                kk->attn_scores_f16p(q, LD, nq, kp, LD, nk, n, 0.125f, si, ld_s, kp); /* panels to ask for: a hint */
                for (int r = 0; r < nq; r++) {
                    assert_nothing_past_nk(names[j], si, ld_s, r, nq, nk, n);
                    for (int c = 0; c < nk; c++) {
                        const float want = f16p_score(q + r * LD, k16 + c * LD, n, 0.125f), v = si[r * ld_s + c];
                        cr_assert_eq(memcmp(&v, &want, sizeof v), 0, "%s scores f16p n=%d %dx%d [%d][%d]: %a vs %a",
                                     names[j], n, nq, nk, r, c, (double)v, (double)want);
                    }
                }
            }
        }
    }
    if (!nt)
        cr_skip_test("no table here has attn_scores_f16p");
}

/* attn_accum_q8i: Q8_0 value rows summed in integer products, each sum within the bound
 * its weights' rounding to int16 sets (half a step of the largest weight of the group of
 * 32 keys and block, times the codes) of the float kernel's on the rows' values; a row's
 * sums the same bits alone as in its tile, and with the keys it gives weight 0 cut off. */
Test(kernels, test_kernels_attn_accum_q8i_within_its_rounding_of_the_float_sums_and_tile_independent) {
    enum { LD = 288, ROW_BYTES = LD / 32 * 34, NQ = ATT_Q };
    static uint8_t v8[ATT_K * ROW_BYTES];
    static float x[ATT_K * LD], vf[ATT_K * LD], p[NQ * ATT_K], a0[NQ * LD], a1[NQ * LD], one[LD];
    for (int r = 0; r < ATT_K; r++) {
        for (int i = 0; i < LD; i++)
            x[r * LD + i] = frand() * (r % 5 == 0 ? 30.0f : 1.0f); /* keys of other magnitudes */
        ks_type_traits_of(KS_TYPE_Q8_0)->from_float(x + r * LD, v8 + r * ROW_BYTES, LD);
        ks_type_traits_of(KS_TYPE_Q8_0)->to_float(v8 + r * ROW_BYTES, vf + r * LD, LD);
    }
    for (int r = 0; r < NQ; r++)
        for (int j = 0; j < ATT_K; j++) /* weights spread over decades; rows 3 and 7 see 20 keys */
            p[r * ATT_K + j] = ((r == 3 || r == 7) && j >= 20) ? 0.0f : expf(-12.0f * (0.5f * frand() + 0.5f));
    static const int ns[] = {32, 64, 128, 256};
    static const int shapes[][2] = {{1, 1}, {1, 37}, {2, 16}, {2, 33}, {3, 5}, {8, 32}, {9, 37}, {19, 37}};
    const ks_kernels *ref = ks_kernels_ref();
    int tested = 0;
    for (size_t t = 0; t < sizeof isas / sizeof isas[0]; t++) {
        const ks_kernels *kk = isa_or_skip(isas[t]);
        if (!kk || !kk->attn_accum_q8i)
            continue;
        tested++;
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
            for (size_t sh = 0; sh < sizeof shapes / sizeof shapes[0]; sh++) {
                const int n = ns[ni], nq = shapes[sh][0], nk = shapes[sh][1];
                for (int i = 0; i < NQ * LD; i++)
                    a0[i] = a1[i] = 0.25f * (float)(i % 7);
                kk->attn_accum_q8i(a0, LD, nq, p, ATT_K, v8, LD, nk, n, v8); /* rows to ask for: a hint */
                ref->attn_accum[KS_TYPE_F32](a1, LD, nq, p, ATT_K, vf, LD, nk, n, NULL);
                for (int r = 0; r < nq; r++)
                    for (int i = 0; i < n; i++) {
                        double bound = 1e-6 * fabs(a1[r * LD + i]);
                        for (int g = 0; g < nk; g += 32) {
                            const int b = i / 32;
                            float wmax = 0.0f;
                            for (int j = g; j < KS_MIN(nk, g + 32); j++)
                                wmax = fmaxf(wmax, fabsf(p[r * ATT_K + j] *
                                                         ks_fp16_to_fp32(((const ks_block_q8_0 *)(v8 + j * ROW_BYTES))[b].d)));
                            for (int j = g; j < KS_MIN(nk, g + 32); j++) {
                                const int8_t c = ((const ks_block_q8_0 *)(v8 + j * ROW_BYTES))[b].qs[i % 32];
                                bound += (wmax / 65534.0 + 1e-6 * fabs(p[r * ATT_K + j] * vf[j * LD + i])) * abs(c) +
                                         1e-6 * fabs(p[r * ATT_K + j] * vf[j * LD + i]);
                            }
                        }
                        cr_assert_leq(fabs((double)a0[r * LD + i] - a1[r * LD + i]), bound,
                                      "%s q8i n=%d %dx%d [%d][%d]: %g vs %g (bound %g)", isas[t], n, nq, nk, r, i,
                                      (double)a0[r * LD + i], (double)a1[r * LD + i], bound);
                    }
                for (int r = 0; r < nq; r++) { /* alone, and cut to the keys it sees */
                    const int cut = (r == 3 || r == 7) ? KS_MIN(nk, 20) : nk;
                    for (int i = 0; i < n; i++)
                        one[i] = 0.25f * (float)((r * LD + i) % 7);
                    kk->attn_accum_q8i(one, LD, 1, p + r * ATT_K, ATT_K, v8, LD, cut, n, NULL);
                    cr_assert_eq(memcmp(one, a0 + r * LD, (size_t)n * sizeof(float)), 0,
                                 "%s q8i n=%d %dx%d row %d: alone (%d keys) differs from its tile", isas[t], n, nq, nk, r,
                                 cut);
                }
            }
    }
    if (!tested)
        cr_skip_test("no table here has attn_accum_q8i");
}

/* Rows of scores with every kind of state and end: a running max of none yet, below the
 * scores or above them all; rows that see all, some, one or none of their entries; a
 * masked (-inf) entry; scores spread to weights below the smallest float. */
enum { SM_ROWS = 37, SM_N = 70 };
static void softmax_case(int n, float *x, int *lim, float *m0, int64_t lo) {
    for (int r = 0; r < SM_ROWS; r++) {
        const int kind = r % 3;
        for (int i = 0; i < n; i++)
            x[r * SM_N + i] = frand() * (kind == 2 ? 64.0f : 8.0f) - (kind == 2 ? 56.0f : 0.0f);
        if (n > 2)
            x[r * SM_N + n / 2] = -INFINITY;
        m0[r] = kind == 0 ? -INFINITY : kind == 1 ? -3.0f : 12.0f;
        const int seen = r % 5 == 0 ? n : r % 5 == 1 ? 0 : r % 5 == 2 ? 1 : (r * 7) % (n + 1);
        lim[r] = (int)lo + seen;
    }
}

Test(kernels, test_kernels_softmax_rows_within_exp_error_of_ref_and_alone_as_in_a_batch) {
    static float x[SM_ROWS * SM_N], yr[SM_ROWS * SM_N], yi[SM_ROWS * SM_N], y1[SM_N];
    float m0[SM_ROWS], mr[SM_ROWS], lr[SM_ROWS], cr[SM_ROWS], mi[SM_ROWS], li[SM_ROWS], ci[SM_ROWS];
    int lim[SM_ROWS];
    const int64_t lo = 4096;
    for (int n = 1; n <= SM_N; n++) {
        softmax_case(n, x, lim, m0, lo);
        memcpy(yr, x, sizeof x);
        for (int r = 0; r < SM_ROWS; r++) {
            mr[r] = m0[r];
            lr[r] = 0.75f;
        }
        ks_kernels_ref()->softmax_rows_f32(yr, SM_N, SM_ROWS, n, lim, lo, mr, lr, cr);
        for (size_t j = 0; j < sizeof isas / sizeof isas[0]; j++) {
            const ks_kernels *k = isa_or_skip(isas[j]);
            if (!k)
                continue;
            memcpy(yi, x, sizeof x);
            for (int r = 0; r < SM_ROWS; r++) {
                mi[r] = m0[r];
                li[r] = 0.75f;
            }
            k->softmax_rows_f32(yi, SM_N, SM_ROWS, n, lim, lo, mi, li, ci);
            for (int r = 0; r < SM_ROWS; r++) {
                const float *yrr = yr + r * SM_N, *yir = yi + r * SM_N;
                cr_assert_eq(mi[r], mr[r], "%s softmax n=%d row %d: max %g vs ref %g", isas[j], n, r, (double)mi[r],
                             (double)mr[r]);
                cr_assert(mr[r] != m0[r] || ci[r] == 1.0f, "%s softmax n=%d row %d: max kept, corr %a", isas[j], n, r,
                          (double)ci[r]);
                cr_assert_leq(fabs((double)ci[r] - cr[r]), 1e-6 * cr[r] + 1.2e-38, "%s softmax n=%d row %d: corr %a vs %a",
                              isas[j], n, r, (double)ci[r], (double)cr[r]);
                /* a few ulp of exp, and values below the smallest normal float may be 0;
                 * what a row does not see is 0 */
                for (int i = 0; i < n; i++)
                    cr_assert_leq(fabs((double)yir[i] - yrr[i]), 1e-6 * yrr[i] + 1.2e-38,
                                  "%s softmax n=%d [%d][%d] (seen %d): %a vs ref %a", isas[j], n, r, i,
                                  lim[r] - (int)lo, (double)yir[i], (double)yrr[i]);
                cr_assert_leq(fabs((double)li[r] - lr[r]), 1e-6 * lr[r] + 1e-37, "%s softmax n=%d row %d: l %g vs %g",
                              isas[j], n, r, (double)li[r], (double)lr[r]);
                /* the row alone: the same bits */
                float m1 = m0[r], l1 = 0.75f, c1;
                memcpy(y1, x + r * SM_N, sizeof y1);
                k->softmax_rows_f32(y1, SM_N, 1, n, lim + r, lo, &m1, &l1, &c1);
                cr_assert(memcmp(y1, yir, (size_t)n * sizeof *y1) == 0 && memcmp(&l1, &li[r], sizeof l1) == 0 &&
                              memcmp(&c1, &ci[r], sizeof c1) == 0,
                          "%s softmax n=%d row %d: alone it differs from its batch", isas[j], n, r);
            }
        }
    }
}

/* The AVX-512 value sums come in two forms, the weights' broadcasts folded into the FMAs
 * (attn_avx512.c) or shared by a row's FMAs (attn_bcast_avx512.c, Intel cores before
 * Golden Cove): kernels.c puts one of them in the table by the CPU's maker and generation,
 * so each must give the table's sums
 * got (from a0) bit for bit wherever AVX-512 runs. */
static void accum_broadcast_forms_equal(const ks_kernels *k, ks_type kt, const float *got, const float *a0, int nq,
                                        const float *p, kv_rows v, int nk, int n) {
#if defined(KS_HAVE_X86_KERNELS)
    ks_kernels folded = *k, shared = *k;
    ks_attn_avx512_register(&folded);
    ks_attn_bcast_avx512_register(&shared);
    cr_assert_neq((void *)folded.attn_accum[kt], (void *)shared.attn_accum[kt]);
    const ks_kernels *forms[2] = {&folded, &shared};
    static float a[ATT_Q * ATT_LD];
    for (int f = 0; f < 2; f++) {
        memcpy(a, a0, sizeof a);
        forms[f]->attn_accum[kt](a, ATT_LD, nq, p, ATT_K, v.data, v.ld, nk, n, NULL);
        cr_assert_eq(memcmp(a, got, sizeof a), 0, "avx512 accum %s n=%d %dx%d: the %s broadcasts differ",
                     ks_type_name(kt), n, nq, nk, f ? "shared" : "folded");
    }
#else
    (void)k, (void)kt, (void)got, (void)a0, (void)nq, (void)p, (void)v, (void)nk, (void)n;
#endif
}

/* Inputs of the value sums: weights p (ATT_Q x ATT_K) in [0, 1), values vx (ATT_K x
 * ATT_LD) in [-1, 1), accumulators a0 (ATT_Q x ATT_LD) in [-4, 4). */
static void fill_accum_inputs(float *p, float *vx, float *a0) {
    for (int i = 0; i < ATT_Q * ATT_K; i++)
        p[i] = 0.5f * (frand() + 1.0f);
    for (int i = 0; i < ATT_K * ATT_LD; i++)
        vx[i] = frand();
    for (int i = 0; i < ATT_Q * ATT_LD; i++)
        a0[i] = frand() * 4.0f;
}

Test(kernels, test_kernels_attn_accum_within_float_error_of_ref_and_tile_independent) {
    static float p[ATT_Q * ATT_K], vx[ATT_K * ATT_LD], a0[ATT_Q * ATT_LD], ar[ATT_Q * ATT_LD],
        ai[ATT_Q * ATT_LD], one[ATT_LD];
    fill_accum_inputs(p, vx, a0);
    static const int ns[] = {1, 5, 16, 31, 32, 64, 100, 128, 129, 256, 260};
    static const int shapes[][2] = {{1, 1}, {1, 32}, {2, 32}, {3, 5}, {4, 4}, {5, 17}, {16, 32}, {19, 37}};
    for (size_t ti = 0; ti < sizeof kv_types / sizeof kv_types[0]; ti++) {
        const ks_type kt = kv_types[ti];
        const kv_rows v = make_kv_rows(kt, vx, ATT_K * ATT_LD);
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
            for (size_t sh = 0; sh < sizeof shapes / sizeof shapes[0] && kv_takes_n(kt, ns[ni]); sh++) {
                const int n = ns[ni], nq = shapes[sh][0], nk = shapes[sh][1];
                memcpy(ar, a0, sizeof ar);
                ks_kernels_ref()->attn_accum[kt](ar, ATT_LD, nq, p, ATT_K, v.data, v.ld, nk, n, NULL);
                for (size_t j = 0; j < sizeof isas / sizeof isas[0]; j++) {
                    const ks_kernels *k = isa_or_skip(isas[j]);
                    if (!k)
                        continue;
                    memcpy(ai, a0, sizeof ai);
                    k->attn_accum[kt](ai, ATT_LD, nq, p, ATT_K, v.data, v.ld, nk, n, v.data); /* rows to ask for: a hint */
                    if (strcmp(isas[j], "avx512") == 0)
                        accum_broadcast_forms_equal(k, kt, ai, a0, nq, p, v, nk, n);
                    if (kt == KS_TYPE_Q8_0) { /* the F32 kernel's sums of the rows' values, bit for bit */
                        static float af[ATT_Q * ATT_LD];
                        memcpy(af, a0, sizeof af);
                        k->attn_accum[KS_TYPE_F32](af, ATT_LD, nq, p, ATT_K, v.as_float, ATT_LD, nk, n, NULL);
                        cr_assert_eq(memcmp(af, ai, sizeof af), 0, "%s accum q8_0 n=%d %dx%d: not the F32 sums of its values",
                                     isas[j], n, nq, nk);
                    }
                    for (int r = 0; r < ATT_Q; r++)
                        for (int i = 0; i < ATT_LD; i++) {
                            const int at = r * ATT_LD + i;
                            if (r >= nq || i >= n) { /* outside the rows and elements: untouched */
                                cr_assert_eq(memcmp(&ai[at], &a0[at], 4), 0, "%s accum %s %dx%d n=%d wrote [%d][%d]",
                                             isas[j], ks_type_name(kt), nq, nk, n, r, i);
                                continue;
                            }
                            double mag = fabs((double)a0[at]);
                            for (int c = 0; c < nk; c++)
                                mag += fabs((double)p[r * ATT_K + c] * v.as_float[c * ATT_LD + i]);
                            cr_assert_leq(fabs((double)ai[at] - ar[at]), 1e-6 * mag,
                                          "%s accum %s n=%d %dx%d [%d][%d]: %g vs ref %g", isas[j],
                                          ks_type_name(kt), n, nq, nk, r, i, (double)ai[at], (double)ar[at]);
                        }
                    /* each row accumulated alone (a decode token's) as in the tile, bit for bit */
                    for (int r = 0; r < nq; r++) {
                        memcpy(one, a0 + r * ATT_LD, sizeof one);
                        k->attn_accum[kt](one, ATT_LD, 1, p + r * ATT_K, ATT_K, v.data, v.ld, nk, n, NULL);
                        cr_assert_eq(memcmp(one, ai + r * ATT_LD, (size_t)n * sizeof(float)), 0,
                                     "%s accum %s n=%d %dx%d row %d: alone differs from the tile", isas[j],
                                     ks_type_name(kt), n, nq, nk, r);
                    }
                }
            }
    }
}


