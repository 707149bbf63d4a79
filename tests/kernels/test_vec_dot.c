/* test_vec_dot.c — the weight x activation dot products and activation quantizers of the
 * kernel tables.
 *
 * For every weight type kvserve computes with, on random rows of several lengths:
 *   - vec_dot(w, quantize_act(x)) equals the double-precision dot of the dequantized
 *     rows, to float rounding (1e-5 of sum |w_i a_i|);
 *   - it is within the activation quantization error of the exact dot with x;
 *   - every ISA table agrees with ref (an ISA the CPU lacks is reported as skipped). */
#include "tensor/kernels.h"
#include "tensor/quants.h"
#include "tensor/ref/quants_ref.h"
#include "tensor/ref/vec_dot_ref.h"
#include "tensor/types.h"

#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#define MAX_N 2048
/* Bytes of the largest row: MAX_N f32 elements. */
#define MAX_ROW_BYTES (MAX_N * 4)

static const ks_type weight_types[] = {
    KS_TYPE_F32,  KS_TYPE_F16,  KS_TYPE_BF16, KS_TYPE_Q4_0, KS_TYPE_Q4_1, KS_TYPE_Q5_0,
    KS_TYPE_Q5_1, KS_TYPE_Q8_0, KS_TYPE_Q4_K, KS_TYPE_Q5_K, KS_TYPE_Q6_K,
};
#define N_WEIGHT_TYPES (int)(sizeof weight_types / sizeof weight_types[0])

static const char *const isas[] = {"avx2", "avx512", "neon"};

/* Row lengths per block size: one block, a few, and a model-sized row. Lengths that are
 * not multiples of 8 or 32 exercise the float kernels' tails. */
static int lengths_for(int64_t block, int *out) {
    static const int floats[] = {1, 7, 64, 1000, MAX_N};
    static const int small[] = {32, 96, 512, MAX_N};
    static const int k[] = {256, 768, MAX_N};
    const int *src = block == 1 ? floats : block == 32 ? small : k;
    const int count = block == 1 ? 5 : block == 32 ? 4 : 3;
    memcpy(out, src, (size_t)count * sizeof *out);
    return count;
}

static uint64_t rng_state;
static float frand(void) { /* uniform in [-1, 1) */
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng_state >> 40) & 0xffffff) / 8388608.0f - 1.0f;
}
static float gauss(void) { /* roughly normal, unit variance (sum of 3 uniforms) */
    return frand() + frand() + frand();
}

/* A row that looks like model data: normal values whose scale drifts from block to
 * block, a few outliers, and (for long rows) one all-zero block of 32. */
static void fill_row(float *x, int n, float scale) {
    float s = scale;
    for (int i = 0; i < n; i++) {
        if (i % 32 == 0)
            s = scale * (0.25f + 1.5f * (frand() + 1.0f) / 2.0f);
        x[i] = s * gauss();
        if ((rng_state >> 33) % 97 == 0)
            x[i] *= 8.0f;
    }
    if (n >= 512)
        memset(x + 256, 0, 32 * sizeof *x);
}

/* Offset m of block b of a Q4_1/Q5_1 row (0 for other types): vec_dot applies it to the
 * activation block's carried sum s rather than to the decoded activations. */
static float block_offset(ks_type t, const void *w, int b) {
    if (t == KS_TYPE_Q4_1)
        return ks_fp16_to_fp32(((const ks_block_q4_1 *)w)[b].m);
    if (t == KS_TYPE_Q5_1)
        return ks_fp16_to_fp32(((const ks_block_q5_1 *)w)[b].m);
    return 0.0f;
}

typedef struct case_data {
    float x[MAX_N];                      /* activations, exact */
    float wf[MAX_N];                     /* weights before quantization */
    float wd[MAX_N], ad[MAX_N];          /* the quantized rows, decoded */
    uint8_t w[MAX_ROW_BYTES], a[MAX_ROW_BYTES];
} case_data;

/* Quantizes a random weight row of type t and a random activation row to t's dot_type
 * with table k, decodes both. */
static void make_case(case_data *c, const ks_kernels *k, ks_type t, int n) {
    const ks_type_traits *tw = ks_type_traits_of(t);
    const ks_type_traits *ta = ks_type_traits_of(tw->dot_type);
    fill_row(c->wf, n, 0.02f);
    fill_row(c->x, n, 1.0f);
    tw->from_float(c->wf, c->w, n);
    tw->to_float(c->w, c->wd, n);
    k->quantize_act[tw->dot_type](c->x, c->a, n);
    ta->to_float(c->a, c->ad, n);
}

/* The dot vec_dot must reproduce, in double, and the scale of its terms. For Q8_1
 * activations the offset term uses the block's carried s (fp16 of d * sum(q) with the
 * unrounded d), exactly as the kernel does, instead of the sum of decoded values. */
static double dequantized_dot(const case_data *c, ks_type t, int n, double *abs_sum) {
    double dot = 0.0, mag = 0.0;
    for (int i = 0; i < n; i++) {
        dot += (double)c->wd[i] * c->ad[i];
        mag += fabs((double)c->wd[i] * c->ad[i]);
    }
    if (ks_type_traits_of(t)->dot_type == KS_TYPE_Q8_1) {
        const ks_block_q8_1 *a = (const ks_block_q8_1 *)c->a;
        for (int b = 0; b < n / 32; b++) {
            double decoded_sum = 0.0;
            for (int i = 0; i < 32; i++)
                decoded_sum += c->ad[32 * b + i];
            const double m = block_offset(t, c->w, b);
            dot += m * ((double)ks_fp16_to_fp32(a[b].s) - decoded_sum);
        }
    }
    *abs_sum = mag;
    return dot;
}

static case_data cd;

Test(vec_dot, test_vec_dot_ref_equals_dequantized_dot) {
    const ks_kernels *ref = ks_kernels_ref();
    rng_state = 0x9e3779b97f4a7c15ull;
    for (int it = 0; it < N_WEIGHT_TYPES; it++) {
        const ks_type t = weight_types[it];
        const ks_type_traits *tw = ks_type_traits_of(t);
        cr_assert_not_null(ref->vec_dot[t], "no ref vec_dot for %s", tw->name);
        cr_assert_not_null(ref->quantize_act[tw->dot_type], "no ref quantize_act for %s",
                           ks_type_name(tw->dot_type));
        int lens[8];
        const int n_lens = lengths_for(tw->block_size, lens);
        for (int il = 0; il < n_lens; il++) {
            const int n = lens[il];
            make_case(&cd, ref, t, n);
            double mag;
            const double want = dequantized_dot(&cd, t, n, &mag);
            const double got = ref->vec_dot[t](cd.w, cd.a, n);
            cr_assert(fabs(got - want) <= 1e-5 * mag + 1e-30,
                      "%s n=%d: vec_dot %.9g vs dequantized %.9g (diff %.3g, budget %.3g)",
                      tw->name, n, got, want, fabs(got - want), 1e-5 * mag);
        }
    }
}

/* Per-element bound on |decoded activation - x| for the activation type, block of x
 * starting at x0 (n0 elements). Q8_0/Q8_1: half a step d = amax / 127, plus d's fp16
 * rounding (2^-11 relative) over codes up to 127: 0.5 + 127 / 2048 < 0.6 steps. Q8_K: d
 * is a float, half a step plus float rounding. F16/BF16: half an ulp. */
static double act_error_bound(ks_type at, const float *x, int i, int n) {
    if (at == KS_TYPE_F32)
        return 0.0;
    if (at == KS_TYPE_F16)
        return fabs(x[i]) * 0x1p-11;
    if (at == KS_TYPE_BF16)
        return fabs(x[i]) * 0x1p-8;
    const int block = at == KS_TYPE_Q8_K ? KS_QK_K : 32;
    const int b0 = i / block * block;
    double amax = 0.0;
    for (int j = b0; j < b0 + block && j < n; j++)
        amax = fmax(amax, fabs(x[j]));
    return (at == KS_TYPE_Q8_K ? 0.5000001 : 0.6) * amax / 127.0;
}

Test(vec_dot, test_vec_dot_ref_within_activation_error_of_exact_dot) {
    const ks_kernels *ref = ks_kernels_ref();
    rng_state = 0x2545f4914f6cdd1dull;
    for (int it = 0; it < N_WEIGHT_TYPES; it++) {
        const ks_type t = weight_types[it];
        const ks_type_traits *tw = ks_type_traits_of(t);
        const ks_type at = tw->dot_type;
        int lens[8];
        const int n_lens = lengths_for(tw->block_size, lens);
        for (int il = 0; il < n_lens; il++) {
            const int n = lens[il];
            make_case(&cd, ref, t, n);
            /* exact = sum wd * x; the kernel's error against it is the activations'
             * quantization error, weighted by the weights: for offset types the offset
             * m meets the block's carried sum s (itself fp16-rounded), the rest
             * meets the elements. */
            double exact = 0.0, mag = 0.0, budget = 0.0;
            for (int i = 0; i < n; i++) {
                exact += (double)cd.wd[i] * cd.x[i];
                mag += fabs((double)cd.wd[i] * cd.x[i]);
                const double m = block_offset(t, cd.w, i / 32);
                budget += fabs(cd.wd[i] - m) * act_error_bound(at, cd.x, i, n);
            }
            if (at == KS_TYPE_Q8_1) {
                const ks_block_q8_1 *a = (const ks_block_q8_1 *)cd.a;
                for (int b = 0; b < n / 32; b++) {
                    const double e = act_error_bound(at, cd.x, 32 * b, n);
                    budget += fabs(block_offset(t, cd.w, b)) *
                              (32 * e + 0x1p-10 * fabs(ks_fp16_to_fp32(a[b].s)));
                }
            }
            budget += 1e-5 * mag;
            const double got = ref->vec_dot[t](cd.w, cd.a, n);
            cr_assert(fabs(got - exact) <= budget,
                      "%s n=%d: vec_dot %.9g vs exact %.9g (diff %.3g, budget %.3g)", tw->name,
                      n, got, exact, fabs(got - exact), budget);
        }
    }
}

static const ks_kernels *isa_or_skip(const char *isa) {
    const ks_kernels *k = ks_kernels_for_isa(isa);
    if (!k)
        cr_log_warn("%s kernels not available on this CPU/build: skipped", isa);
    return k;
}

/* Every ISA table has every entry (NULL ones fall back to ref at build time); an ISA
 * kernel may sum in another order, so within float rounding of ref; its activation
 * quantizer must produce ref's bytes, or its dot products would drift from llama.cpp's. */
Test(vec_dot, test_vec_dot_every_isa_table_matches_ref) {
    const ks_kernels *ref = ks_kernels_ref();
    static uint8_t a_isa[MAX_ROW_BYTES];
    for (size_t j = 0; j < sizeof isas / sizeof isas[0]; j++) {
        const ks_kernels *k = isa_or_skip(isas[j]);
        if (!k)
            continue;
        rng_state = 0x853c49e6748fea9bull;
        for (int it = 0; it < N_WEIGHT_TYPES; it++) {
            const ks_type t = weight_types[it];
            const ks_type_traits *tw = ks_type_traits_of(t);
            cr_assert_not_null(k->vec_dot[t], "%s: no vec_dot for %s", isas[j], tw->name);
            cr_assert_not_null(k->quantize_act[tw->dot_type], "%s: no quantize_act for %s",
                               isas[j], ks_type_name(tw->dot_type));
            int lens[8];
            const int n_lens = lengths_for(tw->block_size, lens);
            for (int il = 0; il < n_lens; il++) {
                const int n = lens[il];
                make_case(&cd, ref, t, n);
                bool ok;
                const size_t a_bytes = ks_type_row_size(tw->dot_type, n, &ok);
                cr_assert(ok);
                k->quantize_act[tw->dot_type](cd.x, a_isa, n);
                cr_assert_eq(memcmp(a_isa, cd.a, a_bytes), 0,
                             "%s quantize_act %s n=%d differs from ref", isas[j],
                             ks_type_name(tw->dot_type), n);
                double mag;
                (void)dequantized_dot(&cd, t, n, &mag);
                const float want = ref->vec_dot[t](cd.w, cd.a, n);
                const float got = k->vec_dot[t](cd.w, cd.a, n);
                if (k->vec_dot[t] == ref->vec_dot[t])
                    cr_assert_eq(memcmp(&got, &want, sizeof got), 0);
                cr_assert(fabs((double)got - want) <= 1e-5 * mag + 1e-30,
                          "%s %s n=%d: %.9g vs ref %.9g", isas[j], tw->name, n, (double)got,
                          (double)want);
            }
        }
    }
}
