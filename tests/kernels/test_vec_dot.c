/* test_vec_dot.c — the weight x activation dot products and activation quantizers of the
 * kernel tables.
 *
 * For every weight type kvserve computes with, on random rows of several lengths:
 *   - vec_dot(w, quantize_act(x)) equals the double-precision dot of the dequantized
 *     rows, to float rounding (1e-5 of sum |w_i a_i|);
 *   - it is within the activation quantization error of the exact dot with x;
 *   - every ISA table agrees with ref (an ISA the CPU lacks is reported as skipped), on
 *     every row length up to 32768 and on random bytes and extreme codes and scales as
 *     well as model-like data; its activation quantizers produce ref's bytes;
 *   - against llama.cpp's own CPU library (the node-llama-cpp package's build, loaded at
 *     run time, as tests/peer does): the ref dot products are bit-identical to its
 *     portable C ones, the activation quantizers to its x86 (AVX2) ones, and the x86
 *     tables' dot products to its AVX2 and Zen 4 builds' ones;
 *   - vec_dot_4 equals vec_dot on each of its rows, bit for bit, and so does a table's
 *     4-row kernel over packed rows (vec_dot_4_packed), with a row missing too;
 *   - vec_dot_2w equals vec_dot on each of its two weight rows, bit for bit. */
#include "tensor/kernels.h"
#include "tensor/quants.h"
#include "tensor/ref/quants_ref.h"
#include "tensor/ref/vec_dot_ref.h"
#include "tensor/types.h"

#include "core/cpu.h"

#include <criterion/criterion.h>
#include <dlfcn.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The longest row tested: longer than any model's n_embd or n_ff. */
#define MAX_N 32768
/* Bytes of the largest row: MAX_N f32 elements. */
#define MAX_ROW_BYTES (MAX_N * 4)

static const ks_type weight_types[] = {
    KS_TYPE_F32,  KS_TYPE_F16,  KS_TYPE_BF16, KS_TYPE_Q4_0, KS_TYPE_Q4_1,   KS_TYPE_Q5_0,
    KS_TYPE_Q5_1, KS_TYPE_Q8_0, KS_TYPE_Q4_K, KS_TYPE_Q5_K, KS_TYPE_Q6_K,   KS_TYPE_Q2_K,
    KS_TYPE_Q3_K, KS_TYPE_IQ4_NL, KS_TYPE_IQ4_XS,
};
#define N_WEIGHT_TYPES (int)(sizeof weight_types / sizeof weight_types[0])

static const char *const isas[] = {"avx2", "avx512", "neon"};

/* One (weight type, row length) combination. Lengths per block size: one block, a few,
 * and a model-sized row; float lengths that are not multiples of 8 or 32 exercise the
 * tails of SIMD kernels. */
typedef struct dot_case {
    ks_type t;
    int n;
} dot_case;

static int all_cases(dot_case *out) {
    static const int floats[] = {1, 7, 64, 1000, 2048, MAX_N, 0};
    static const int small[] = {32, 96, 512, 2048, MAX_N, 0};
    static const int k[] = {256, 768, 2048, MAX_N, 0};
    int count = 0;
    for (int it = 0; it < N_WEIGHT_TYPES; it++) {
        const int64_t block = ks_type_traits_of(weight_types[it])->block_size;
        const int *len = block == 1 ? floats : block == 32 ? small : k;
        for (; *len; len++)
            out[count++] = (dot_case){weight_types[it], *len};
    }
    return count;
}
#define MAX_CASES (N_WEIGHT_TYPES * 6)

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
    dot_case cases[MAX_CASES];
    const int n_cases = all_cases(cases);
    rng_state = 0x9e3779b97f4a7c15ull;
    for (int ic = 0; ic < n_cases; ic++) {
        const ks_type t = cases[ic].t;
        const int n = cases[ic].n;
        const ks_type_traits *tw = ks_type_traits_of(t);
        cr_assert_not_null(ref->vec_dot[t], "no ref vec_dot for %s", tw->name);
        cr_assert_not_null(ref->quantize_act[tw->dot_type], "no ref quantize_act for %s",
                           ks_type_name(tw->dot_type));
        make_case(&cd, ref, t, n);
        double mag;
        const double want = dequantized_dot(&cd, t, n, &mag);
        const double got = ref->vec_dot[t](cd.w, cd.a, n);
        cr_assert(fabs(got - want) <= 1e-5 * mag + 1e-30,
                  "%s n=%d: vec_dot %.9g vs dequantized %.9g (diff %.3g, budget %.3g)", tw->name,
                  n, got, want, fabs(got - want), 1e-5 * mag);
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
    dot_case cases[MAX_CASES];
    const int n_cases = all_cases(cases);
    rng_state = 0x2545f4914f6cdd1dull;
    for (int ic = 0; ic < n_cases; ic++) {
        const ks_type t = cases[ic].t;
        const int n = cases[ic].n;
        const ks_type at = ks_type_traits_of(t)->dot_type;
        make_case(&cd, ref, t, n);
        /* exact = sum wd * x; the kernel's error against it is the activations'
         * quantization error, weighted by the weights: for offset types the offset m
         * meets the block's carried sum s (itself fp16-rounded), the rest meets the
         * elements. */
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
                  "%s n=%d: vec_dot %.9g vs exact %.9g (diff %.3g, budget %.3g)",
                  ks_type_name(t), n, got, exact, fabs(got - exact), budget);
    }
}

static const ks_kernels *isa_or_skip(const char *isa) {
    const ks_kernels *k = ks_kernels_for_isa(isa);
    if (!k)
        cr_log_info("%s kernels not available on this CPU/build: skipped", isa);
    return k;
}

/* Where the activation quantizer departs from the file quantizer: with |x|max = 127 the
 * scale is exactly 1, so every x below is its own code before rounding. Ties go to even
 * (llama.cpp's x86 activation path), not away from zero (its reference quantizer). */
Test(vec_dot, test_vec_dot_q8_activations_round_ties_to_even) {
    static const float x[32] = {127.0f, 2.5f, 1.5f, 0.5f, -0.5f, -1.5f, -2.5f, 3.5f};
    static const int8_t act[8] = {127, 2, 2, 0, 0, -2, -2, 4};
    static const int8_t file[8] = {127, 3, 2, 1, -1, -2, -3, 4};
    const ks_kernels *ref = ks_kernels_ref();
    ks_block_q8_0 a0, f0;
    ks_block_q8_1 a1;
    ref->quantize_act[KS_TYPE_Q8_0](x, &a0, 32);
    ref->quantize_act[KS_TYPE_Q8_1](x, &a1, 32);
    ks_quantize_row_q8_0_ref(x, &f0, 32);
    int sum = 0;
    for (int i = 0; i < 8; i++) {
        cr_assert_eq(a0.qs[i], act[i], "q8_0 act [%d] %g: %d, want %d", i, (double)x[i],
                     a0.qs[i], act[i]);
        cr_assert_eq(a1.qs[i], act[i], "q8_1 act [%d] %g: %d, want %d", i, (double)x[i],
                     a1.qs[i], act[i]);
        cr_assert_eq(f0.qs[i], file[i], "q8_0 file [%d] %g: %d, want %d", i, (double)x[i],
                     f0.qs[i], file[i]);
        sum += act[i];
    }
    cr_assert_eq(a0.d, ks_fp32_to_fp16(1.0f));
    cr_assert_eq(a1.d, ks_fp32_to_fp16(1.0f));
    cr_assert_eq(a1.s, ks_fp32_to_fp16((float)sum), "s 0x%04x, want fp16(%d)", a1.s, sum);

    /* On ordinary data the two quantizers differ by at most one code. */
    static float xr[MAX_N];
    static ks_block_q8_0 ar[MAX_N / 32], fr[MAX_N / 32];
    rng_state = 0x1234567887654321ull;
    fill_row(xr, MAX_N, 1.0f);
    ref->quantize_act[KS_TYPE_Q8_0](xr, ar, MAX_N);
    ks_quantize_row_q8_0_ref(xr, fr, MAX_N);
    for (int b = 0; b < MAX_N / 32; b++) {
        cr_assert_eq(ar[b].d, fr[b].d, "block %d: d 0x%04x vs 0x%04x", b, ar[b].d, fr[b].d);
        for (int i = 0; i < 32; i++)
            cr_assert(abs(ar[b].qs[i] - fr[b].qs[i]) <= 1, "block %d [%d]: %d vs %d", b, i,
                      ar[b].qs[i], fr[b].qs[i]);
    }
}

/* The float, Q8_K and copy activations are the file conversions (which round as
 * llama.cpp's x86 conversions do). */
Test(vec_dot, test_vec_dot_other_activations_are_the_file_conversions) {
    const ks_kernels *ref = ks_kernels_ref();
    cr_assert_eq(ref->quantize_act[KS_TYPE_F32], ks_quantize_row_f32_ref);
    cr_assert_eq(ref->quantize_act[KS_TYPE_F16], ks_quantize_row_f16_ref);
    cr_assert_eq(ref->quantize_act[KS_TYPE_BF16], ks_quantize_row_bf16_ref);
    cr_assert_eq(ref->quantize_act[KS_TYPE_Q8_K], ks_quantize_row_q8_k_ref);
    cr_assert_null(ref->quantize_act[KS_TYPE_Q4_K]);
}

/* ---- parity with llama.cpp's CPU library -------------------------------------------- */

#define PEER_DIR KS_SOURCE_DIR "/tests/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/"

typedef void (*peer_dot_fn)(int n, float *s, size_t bs, const void *x, size_t bx, const void *y,
                            size_t by, int nrc);
typedef void (*peer_quant_fn)(const float *x, void *y, int64_t n);

/* Its dot product for weight type t; the quantized ones have a portable C twin with the
 * suffix _generic, the float ones are portable C in the baseline x64 build. */
static const char *peer_dot_name(ks_type t) {
    switch (t) {
    case KS_TYPE_F32: return "ggml_vec_dot_f32";
    case KS_TYPE_F16: return "ggml_vec_dot_f16";
    case KS_TYPE_BF16: return "ggml_vec_dot_bf16";
    case KS_TYPE_Q4_0: return "ggml_vec_dot_q4_0_q8_0";
    case KS_TYPE_Q4_1: return "ggml_vec_dot_q4_1_q8_1";
    case KS_TYPE_Q5_0: return "ggml_vec_dot_q5_0_q8_0";
    case KS_TYPE_Q5_1: return "ggml_vec_dot_q5_1_q8_1";
    case KS_TYPE_Q8_0: return "ggml_vec_dot_q8_0_q8_0";
    case KS_TYPE_Q4_K: return "ggml_vec_dot_q4_K_q8_K";
    case KS_TYPE_Q5_K: return "ggml_vec_dot_q5_K_q8_K";
    case KS_TYPE_Q6_K: return "ggml_vec_dot_q6_K_q8_K";
    case KS_TYPE_Q2_K: return "ggml_vec_dot_q2_K_q8_K";
    case KS_TYPE_Q3_K: return "ggml_vec_dot_q3_K_q8_K";
    case KS_TYPE_IQ4_NL: return "ggml_vec_dot_iq4_nl_q8_0";
    case KS_TYPE_IQ4_XS: return "ggml_vec_dot_iq4_xs_q8_K";
    default: return NULL;
    }
}

/* libggml-cpu-<variant>.so, initialised; NULL (reported as skipped) if absent or if its
 * own check (ggml_backend_score) says this CPU cannot run it. */
static void *peer_open(const char *variant) {
    char path[1024];
    snprintf(path, sizeof path, "%slibggml-cpu-%s.so", PEER_DIR, variant);
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        cr_log_info("llama.cpp CPU library %s not loadable (%s): skipped", variant, dlerror());
        return NULL;
    }
    int (*score)(void) = (int (*)(void))dlsym(lib, "ggml_backend_score");
    if (score && score() == 0) {
        cr_log_info("llama.cpp CPU library %s does not run on this CPU: skipped", variant);
        dlclose(lib);
        return NULL;
    }
    void (*init)(void) = (void (*)(void))dlsym(lib, "ggml_cpu_init");
    cr_assert_not_null(init, "%s: no ggml_cpu_init", variant);
    init();
    return lib;
}

static void *peer_sym(void *lib, const char *name) {
    void *p = dlsym(lib, name);
    cr_assert_not_null(p, "llama.cpp library lacks %s", name);
    return p;
}

/* The baseline x64 build has no FMA, so its portable C kernels round after every multiply
 * and add, as ours do: the results must be equal to the bit. */
Test(vec_dot, test_vec_dot_ref_bit_identical_to_llama_cpp_portable_kernels) {
    void *lib = peer_open("x64");
    if (!lib)
        return;
    const ks_kernels *ref = ks_kernels_ref();
    char name[96];
    rng_state = 0x6a09e667f3bcc908ull;
    dot_case cases[MAX_CASES];
    const int n_cases = all_cases(cases);
    for (int ic = 0; ic < n_cases; ic++) {
        const ks_type t = cases[ic].t;
        const int n = cases[ic].n;
        const ks_type_traits *tw = ks_type_traits_of(t);
        snprintf(name, sizeof name, "%s%s", peer_dot_name(t), tw->is_quantized ? "_generic" : "");
        peer_dot_fn dot = (peer_dot_fn)peer_sym(lib, name);
        for (int rep = 0; rep < 4; rep++) {
            make_case(&cd, ref, t, n);
            float want = 0.0f;
            dot(n, &want, 0, cd.w, 0, cd.a, 0, 1);
            const float got = ref->vec_dot[t](cd.w, cd.a, n);
            cr_assert_eq(memcmp(&got, &want, sizeof got), 0,
                         "%s n=%d: ref %.9g vs llama.cpp %s %.9g", tw->name, n, (double)got, name,
                         (double)want);
        }
    }
    dlclose(lib);
}

/* A row with ties: blocks whose |x|max is 127 (scale exactly 1) holding halves, then
 * ordinary data. */
static void fill_ties(float *x, int n) {
    fill_row(x, n, 1.0f);
    for (int i = 0; i < 256 && i < n; i++)
        x[i] = i % 32 == 0 ? 127.0f : (float)((i % 17) - 8) + 0.5f;
}

/* llama.cpp's x86 build quantizes activations with its AVX2 code (the same in every AVX
 * variant); ours must produce the same bytes. Run only where the CPU has AVX2. */
Test(vec_dot, test_vec_dot_activations_bit_identical_to_llama_cpp_x86) {
    const ks_cpu_features *f = ks_cpu_detect();
    if (!(f->avx2 && f->fma && f->f16c)) {
        cr_log_info("CPU lacks AVX2: llama.cpp x86 activation parity skipped");
        return;
    }
    void *lib = peer_open("haswell");
    if (!lib)
        return;
    static const struct {
        ks_type at;
        const char *quant;
    } acts[] = {
        {KS_TYPE_Q8_0, "quantize_row_q8_0"},       {KS_TYPE_Q8_1, "quantize_row_q8_1"},
        {KS_TYPE_Q8_K, "quantize_row_q8_K"},       {KS_TYPE_F16, "ggml_cpu_fp32_to_fp16"},
        {KS_TYPE_BF16, "ggml_cpu_fp32_to_bf16"},
    };
    const ks_kernels *ref = ks_kernels_ref();
    static uint8_t mine[MAX_ROW_BYTES], theirs[MAX_ROW_BYTES];
    rng_state = 0xbb67ae8584caa73bull;
    for (size_t ia = 0; ia < sizeof acts / sizeof acts[0]; ia++) {
        peer_quant_fn quant = (peer_quant_fn)peer_sym(lib, acts[ia].quant);
        for (int rep = 0; rep < 8; rep++) {
            if (rep == 0)
                fill_ties(cd.x, MAX_N);
            else
                fill_row(cd.x, MAX_N, rep % 2 ? 1.0f : 37.0f);
            bool ok;
            const size_t bytes = ks_type_row_size(acts[ia].at, MAX_N, &ok);
            cr_assert(ok);
            memset(mine, 0, bytes);
            memset(theirs, 0, bytes);
            ref->quantize_act[acts[ia].at](cd.x, mine, MAX_N);
            quant(cd.x, theirs, MAX_N);
            cr_assert_eq(memcmp(mine, theirs, bytes), 0, "%s row %d differs from llama.cpp %s",
                         ks_type_name(acts[ia].at), rep, acts[ia].quant);
        }
    }

    /* Its AVX2 dot products sum in another order: equal to float rounding. */
    for (int it = 0; it < N_WEIGHT_TYPES; it++) {
        const ks_type t = weight_types[it];
        peer_dot_fn dot = (peer_dot_fn)peer_sym(lib, peer_dot_name(t));
        make_case(&cd, ref, t, MAX_N);
        double mag;
        (void)dequantized_dot(&cd, t, MAX_N, &mag);
        float want = 0.0f;
        dot(MAX_N, &want, 0, cd.w, 0, cd.a, 0, 1);
        const float got = ref->vec_dot[t](cd.w, cd.a, MAX_N);
        cr_assert(fabs((double)got - want) <= 1e-6 * mag, "%s: ref %.9g vs llama.cpp AVX2 %.9g",
                  ks_type_name(t), (double)got, (double)want);
    }
    dlclose(lib);
}

/* ---- every ISA table against ref ---------------------------------------------------- *
 *
 * Each ISA kernel runs over every row length from one block (or element) up past its
 * unrolled loops, lengths on both sides of the vector widths, and model-sized rows up to
 * MAX_N, on five kinds of data: */
typedef enum {
    DATA_MODEL,    /* weights quantized from model-like floats, activations quantized */
    DATA_RANDOM,   /* every weight byte random (with sane scales), random codes */
    DATA_HIGH,     /* every code at its largest, scales at the largest fp16 magnitude */
    DATA_LOW,      /* every code at its smallest (Q4_0 -8, Q8_0 -128, Q6_K -32, ...) */
    DATA_EXTREMES, /* every code at its smallest or largest, at random */
    DATA_KINDS
} data_kind;

static const char *const data_names[DATA_KINDS] = {"model", "random", "high", "low", "extremes"};

/* Row lengths (elements) for a block size; returns the count. */
static int isa_lengths(int64_t block, int *len) {
    static const int floats[] = {127, 128, 129, 255, 256, 257, 1000, 1023, 4096, 4099, 16383};
    static const int blocks[] = {63, 64, 65, 127, 128, 255};
    int c = 0;
    if (block == 1) {
        for (int i = 1; i <= 72; i++)
            len[c++] = i;
        for (size_t i = 0; i < sizeof floats / sizeof floats[0]; i++)
            len[c++] = floats[i];
    } else {
        for (int i = 1; i <= (block == 32 ? 40 : 20); i++)
            len[c++] = i * (int)block;
        for (size_t i = 0; i < sizeof blocks / sizeof blocks[0]; i++)
            if (blocks[i] * block < MAX_N)
                len[c++] = blocks[i] * (int)block;
    }
    len[c++] = MAX_N;
    return c;
}
#define MAX_LENGTHS 100

static uint8_t rand_byte(void) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint8_t)(rng_state >> 56);
}

static void put_fp16(uint8_t *p, float v) {
    const ks_fp16 h = ks_fp32_to_fp16(v);
    memcpy(p, &h, sizeof h);
}

/* A scale of random sign: moderate for DATA_RANDOM, else the largest magnitude `big`. */
static float scale_for(data_kind kind, float big) {
    const float mag = kind == DATA_RANDOM ? 0.001f + 0.05f * (frand() + 1.0f) : big;
    return frand() < 0.0f ? -mag : mag;
}

/* A float-row element for the adversarial kinds: random bits over a wide but safe
 * range (products and sums of MAX_N of them stay finite in float), or the largest
 * magnitude. BF16 stays normal: vdpbf16ps reads bf16 subnormals as zero. */
static float float_element(ks_type t, data_kind kind) {
    const float sign = frand() < 0.0f ? -1.0f : 1.0f;
    const float big = t == KS_TYPE_F16 ? 65504.0f : 0x1.fep55f;
    switch (kind) {
    case DATA_HIGH: return big;
    case DATA_LOW: return -big;
    case DATA_EXTREMES: return sign * big;
    default: break;
    }
    if (t == KS_TYPE_F16) { /* any finite half, subnormals included */
        uint16_t h;
        do
            h = (uint16_t)(rand_byte() | rand_byte() << 8);
        while ((h & 0x7c00) == 0x7c00);
        return ks_fp16_to_fp32(h);
    }
    const int e = (int)(rand_byte() % 112) - 56; /* 2^-56 .. 2^55 */
    return sign * ldexpf(1.0f + (frand() + 1.0f) / 2.0f, e);
}

/* One weight-code byte of type t: random, or all codes at an extreme. Q8_0's codes are
 * whole signed bytes; the others pack unsigned codes in bits, for which 0x00 / 0xff
 * are the smallest / largest and 0x0f / 0xf0 mix them. */
static uint8_t code_byte(ks_type t, data_kind kind) {
    static const uint8_t mixed[4] = {0x00, 0xff, 0x0f, 0xf0};
    const bool q8 = t == KS_TYPE_Q8_0;
    switch (kind) {
    case DATA_HIGH: return q8 ? 0x7f : 0xff;
    case DATA_LOW: return q8 ? 0x80 : 0x00;
    case DATA_EXTREMES: return q8 ? (rand_byte() & 1 ? 0x7f : 0x80) : mixed[rand_byte() & 3];
    default: return rand_byte();
    }
}

/* An adversarial weight row of type t: code bytes from code_byte(), then every block's
 * scales set (fp16 ones to +-65504 except for DATA_RANDOM; Q4_K/Q5_K 6-bit scales and
 * mins all 63, Q6_K int8 scales at -128 / 127, random bytes for DATA_RANDOM). */
static void raw_weights(ks_type t, data_kind kind, uint8_t *w, int n) {
    const ks_type_traits *tr = ks_type_traits_of(t);
    if (!tr->is_quantized) {
        for (int i = 0; i < n; i++) {
            const float v = float_element(t, kind);
            if (t == KS_TYPE_F32)
                memcpy(w + 4 * i, &v, 4);
            else if (t == KS_TYPE_F16)
                put_fp16(w + 2 * i, v);
            else {
                const ks_bf16 b = ks_fp32_to_bf16(v);
                memcpy(w + 2 * i, &b, 2);
            }
        }
        return;
    }
    const int64_t nb = n / tr->block_size;
    for (size_t i = 0; i < (size_t)nb * tr->type_size; i++)
        w[i] = code_byte(t, kind);
    for (int64_t b = 0; b < nb; b++) {
        uint8_t *p = w + (size_t)b * tr->type_size;
        switch (t) {
        case KS_TYPE_Q4_1:
        case KS_TYPE_Q5_1:
            put_fp16(p + 2, scale_for(kind, 65504.0f)); /* m */
            put_fp16(p, scale_for(kind, 65504.0f));
            break;
        case KS_TYPE_Q4_K:
        case KS_TYPE_Q5_K:
            put_fp16(p, scale_for(kind, 65504.0f));     /* d */
            put_fp16(p + 2, scale_for(kind, 65504.0f)); /* dmin */
            for (int i = 0; i < KS_K_SCALE_BYTES; i++)
                p[4 + i] = kind == DATA_RANDOM ? rand_byte() : 0xff;
            break;
        case KS_TYPE_Q2_K: /* 4-bit scales and mins are code bytes; d, dmin follow the codes */
            put_fp16(p + offsetof(ks_block_q2_k, d), scale_for(kind, 65504.0f));
            put_fp16(p + offsetof(ks_block_q2_k, dmin), scale_for(kind, 65504.0f));
            break;
        case KS_TYPE_Q3_K: /* 6-bit scales are code bytes too (0x00: -32, 0xff: 31) */
            put_fp16(p + offsetof(ks_block_q3_k, d), scale_for(kind, 65504.0f));
            break;
        case KS_TYPE_Q6_K: {
            ks_block_q6_k *q = (ks_block_q6_k *)p;
            for (int i = 0; i < KS_QK_K / 16; i++) {
                const int ext = kind == DATA_HIGH          ? 127
                                : kind == DATA_LOW         ? -128
                                : kind == DATA_EXTREMES    ? (rand_byte() & 1 ? 127 : -128)
                                                           : (int8_t)rand_byte();
                q->scales[i] = (int8_t)ext;
            }
            const ks_fp16 d = ks_fp32_to_fp16(scale_for(kind, 65504.0f));
            memcpy(&q->d, &d, 2);
            break;
        }
        default: /* Q4_0, Q5_0, Q8_0, IQ4_NL, IQ4_XS: d leads (IQ4_XS's 6-bit scales are
                  * code bytes) */
            put_fp16(p, scale_for(kind, 65504.0f));
            break;
        }
    }
}

/* One activation code: random in -127..127 (the quantizers' range), or +-127. */
static int act_code(data_kind kind) {
    switch (kind) {
    case DATA_HIGH: return 127;
    case DATA_LOW: return -127;
    case DATA_EXTREMES: return rand_byte() & 1 ? 127 : -127;
    default: return (int)(rand_byte() % 255) - 127;
    }
}

/* An adversarial activation row of type at, consistent where the format carries sums
 * (Q8_1's s, Q8_K's bsums). */
static void raw_activations(ks_type at, data_kind kind, uint8_t *a, int n) {
    if (at == KS_TYPE_Q8_K) {
        ks_block_q8_k *b = (ks_block_q8_k *)a;
        for (int ib = 0; ib < n / KS_QK_K; ib++) {
            b[ib].d = scale_for(kind, 1e6f);
            for (int k = 0; k < KS_QK_K / 16; k++) {
                int sum = 0;
                for (int e = 16 * k; e < 16 * k + 16; e++)
                    sum += b[ib].qs[e] = (int8_t)act_code(kind);
                b[ib].bsums[k] = (int16_t)sum;
            }
        }
    } else if (at == KS_TYPE_Q8_0 || at == KS_TYPE_Q8_1) {
        const size_t bs = ks_type_traits_of(at)->type_size;
        const size_t qs = at == KS_TYPE_Q8_0 ? 2 : 4;
        for (int ib = 0; ib < n / 32; ib++) {
            uint8_t *p = a + (size_t)ib * bs;
            /* Q8_1's s = d * sum(codes) must stay finite in fp16: |d| <= 65504 / (32 * 127) */
            put_fp16(p, scale_for(kind, at == KS_TYPE_Q8_1 ? 16.0f : 65504.0f));
            int sum = 0;
            for (int i = 0; i < 32; i++) {
                const int8_t c = (int8_t)act_code(kind);
                memcpy(p + qs + i, &c, 1);
                sum += c;
            }
            if (at == KS_TYPE_Q8_1) {
                ks_fp16 d;
                memcpy(&d, p, 2);
                put_fp16(p + 2, ks_fp16_to_fp32(d) * (float)sum);
            }
        }
    } else {
        raw_weights(at, kind, a, n); /* float types: the same element generator */
    }
}

/* The scale of the terms a kernel adds, independent of its order: sum_i of
 * (|scale part| + |offset part|) of weight i times |activation i|, where the parts are
 * the row decoded with the offsets (Q4_1/Q5_1 m, Q4_K/Q5_K dmin) zeroed and with the
 * scales (d) zeroed. A row whose terms cancel is then not held to the tiny result. */
static double term_magnitude(const case_data *c, ks_type t, int n) {
    const ks_type_traits *tw = ks_type_traits_of(t);
    static uint8_t part[MAX_ROW_BYTES];
    static float p1[MAX_N], p2[MAX_N];
    const bool offset = t == KS_TYPE_Q4_1 || t == KS_TYPE_Q5_1 || t == KS_TYPE_Q4_K ||
                        t == KS_TYPE_Q5_K || t == KS_TYPE_Q2_K;
    /* where d and m / dmin sit: leading, but for Q2_K, whose follow its codes */
    const size_t d_at = t == KS_TYPE_Q2_K ? offsetof(ks_block_q2_k, d) : 0;
    const size_t m_at = t == KS_TYPE_Q2_K ? offsetof(ks_block_q2_k, dmin) : 2;
    bool ok;
    const size_t bytes = ks_type_row_size(t, n, &ok);
    memcpy(part, c->w, bytes);
    for (size_t b = 0; offset && b < bytes; b += tw->type_size)
        memset(part + b + m_at, 0, 2);
    tw->to_float(part, p1, n);
    memcpy(part, c->w, bytes);
    for (size_t b = 0; offset && b < bytes; b += tw->type_size)
        memset(part + b + d_at, 0, 2);
    if (offset)
        tw->to_float(part, p2, n);
    double mag = 0.0;
    for (int i = 0; i < n; i++)
        mag += (fabs((double)p1[i]) + (offset ? fabs((double)p2[i]) : 0.0)) *
               fabs((double)c->ad[i]);
    return mag;
}

/* Allowed |isa - ref| / term magnitude, for n elements of type t. Both sum the same
 * exact block products in float, in different orders (ref's float types in double). On
 * data whose terms have mixed signs (model-like, random, extremes) rounding errors
 * largely cancel: 1e-6. Where all terms are equal and of one sign (DATA_HIGH, DATA_LOW)
 * every addition rounds the same way, and the bound is the one for recursive summation:
 * unit roundoff 2^-24 times the terms added into one accumulator, by ref (T = n / block
 * size terms into one accumulator or lane; none for the float types) and by the ISA
 * kernel (T / 8: it keeps at least 8 float lanes). */
static double isa_budget(ks_type t, int n, data_kind kind) {
    if (kind != DATA_HIGH && kind != DATA_LOW)
        return 1e-6;
    const ks_type_traits *tw = ks_type_traits_of(t);
    const double terms = (double)n / (double)tw->block_size;
    return 0x1p-24 * ((tw->is_quantized ? terms : 0.0) + terms / 8.0 + 16.0);
}

/* Every ISA table has every entry (NULL ones fall back to ref at build time), and each
 * dot product is within its budget of ref's on every length and kind of data. */
Test(vec_dot, test_vec_dot_every_isa_kernel_matches_ref) {
    const ks_kernels *ref = ks_kernels_ref();
    static int len[MAX_LENGTHS];
    for (size_t j = 0; j < sizeof isas / sizeof isas[0]; j++) {
        const ks_kernels *k = isa_or_skip(isas[j]);
        if (!k)
            continue;
        rng_state = 0x853c49e6748fea9bull;
        for (int it = 0; it < N_WEIGHT_TYPES; it++) {
            const ks_type t = weight_types[it];
            const ks_type_traits *tw = ks_type_traits_of(t);
            const ks_type at = tw->dot_type;
            cr_assert_not_null(k->vec_dot[t], "%s: no vec_dot for %s", isas[j], tw->name);
            cr_assert_not_null(k->quantize_act[at], "%s: no quantize_act for %s", isas[j],
                               ks_type_name(at));
            const int n_len = isa_lengths(tw->block_size, len);
            double worst = 0.0;
            for (int il = 0; il < n_len; il++) {
                const int n = len[il];
                for (int kind = 0; kind < DATA_KINDS; kind++) {
                    if (kind == DATA_MODEL) {
                        make_case(&cd, ref, t, n);
                    } else {
                        raw_weights(t, (data_kind)kind, cd.w, n);
                        raw_activations(at, (data_kind)kind, cd.a, n);
                        ks_type_traits_of(at)->to_float(cd.a, cd.ad, n);
                    }
                    const double mag = term_magnitude(&cd, t, n);
                    const float want = ref->vec_dot[t](cd.w, cd.a, n);
                    const float got = k->vec_dot[t](cd.w, cd.a, n);
                    if (k->vec_dot[t] == ref->vec_dot[t])
                        cr_assert_eq(memcmp(&got, &want, sizeof got), 0);
                    const double err = fabs((double)got - want) / (mag + 1e-30);
                    const double budget = isa_budget(t, n, (data_kind)kind);
                    cr_assert(isfinite(want) && err <= budget,
                              "%s %s n=%d %s data: %.9g vs ref %.9g (error %.3g of the terms' "
                              "magnitude, budget %.3g)",
                              isas[j], tw->name, n, data_names[kind], (double)got, (double)want,
                              err, budget);
                    if (budget == 1e-6)
                        worst = fmax(worst, err);
                }
            }
            cr_log_info("%s %s: %d lengths x %d kinds of data; worst error on mixed-sign data "
                        "%.3g of the terms' magnitude",
                        isas[j], tw->name, n_len, DATA_KINDS, worst);
        }
    }
}

/* Float rows that stress an activation quantizer, block by block: ties at scale 1,
 * all-zero blocks, equal and opposite extremes (Q8_K keeps the first), NaN (also in a
 * block's last lanes, where a max that let it through could not drop it again) and inf,
 * subnormals, the largest floats, and ordinary data at several scales. */
static void fill_hard_activations(float *x, int n) {
    fill_row(x, n, 1.0f);
    for (int b = 0; b * 32 < n; b++) {
        float *v = x + 32 * b;
        switch (b % 12) {
        case 0: fill_ties(v, 32); break;
        case 1: memset(v, 0, 32 * sizeof *v); break;
        case 2: v[3] = -40.0f; v[9] = 40.0f; break;
        case 3: v[5] = 40.0f; v[30] = -40.0f; break;
        case 4: v[7] = NAN; break;
        case 5: v[11] = INFINITY; break;
        case 6: v[0] = -INFINITY; v[1] = NAN; break;
        case 7: for (int i = 0; i < 32; i++) v[i] = ldexpf(frand(), -135); break;
        case 8: for (int i = 0; i < 32; i++) v[i] = 3.4e38f * frand(); break;
        case 9: for (int i = 0; i < 32; i++) v[i] *= 1e-20f; break;
        case 10: v[30] = NAN; break;
        case 11: v[31] = NAN; break; /* block 23: the last element of a Q8_K block */
        }
    }
}

/* An ISA activation quantizer must produce ref's bytes, or its dot products would drift
 * from llama.cpp's: every length, model-like and hard rows. */
Test(vec_dot, test_vec_dot_every_isa_activation_quantizer_matches_ref_bytes) {
    static const ks_type acts[] = {KS_TYPE_Q8_0, KS_TYPE_Q8_1, KS_TYPE_Q8_K};
    const ks_kernels *ref = ks_kernels_ref();
    static uint8_t mine[MAX_ROW_BYTES], want[MAX_ROW_BYTES];
    static int len[MAX_LENGTHS];
    for (size_t j = 0; j < sizeof isas / sizeof isas[0]; j++) {
        const ks_kernels *k = isa_or_skip(isas[j]);
        if (!k)
            continue;
        rng_state = 0x3c6ef372fe94f82bull;
        for (size_t ia = 0; ia < sizeof acts / sizeof acts[0]; ia++) {
            const ks_type at = acts[ia];
            const int n_len = isa_lengths(ks_type_traits_of(at)->block_size, len);
            for (int il = 0; il < n_len; il++) {
                const int n = len[il];
                bool ok;
                const size_t bytes = ks_type_row_size(at, n, &ok);
                for (int rep = 0; rep < 3; rep++) {
                    if (rep == 0)
                        fill_hard_activations(cd.x, n);
                    else
                        fill_row(cd.x, n, rep == 1 ? 1.0f : 1e-3f);
                    memset(mine, 0xa5, bytes);
                    memset(want, 0x5a, bytes);
                    ref->quantize_act[at](cd.x, want, n);
                    k->quantize_act[at](cd.x, mine, n);
                    for (size_t i = 0; i < bytes; i++)
                        cr_assert_eq(mine[i], want[i],
                                     "%s quantize_act %s n=%d row %d: byte %zu is 0x%02x, ref "
                                     "0x%02x",
                                     isas[j], ks_type_name(at), n, rep, i, mine[i], want[i]);
                }
            }
        }
    }
}

/* ---- every ISA kernel against llama.cpp's x86 build --------------------------------- */

/* Each x86 table takes its float steps as one llama.cpp build does (simd_x86.h, "Float
 * order"): the AVX2 kernels as its AVX2 ("haswell") library, the AVX-512 ones as the
 * Zen 4 library that made the logit fixtures, or, on AVX-512 CPUs without BF16, as its
 * Ice Lake library (the same kernels but BF16's, which there is the AVX2 table's and
 * is held to the haswell library above). Then every dot product must equal that
 * library's bit for bit, on every length and kind of data. (The activation quantizers
 * equal ref's bytes, which equal llama.cpp's: the tests above.) */
Test(vec_dot, test_vec_dot_isa_bit_identical_to_llama_cpp_x86) {
    static const struct {
        const char *isa, *variant;
        bool bf16; /* the library's BF16 dot is the table's */
    } peers[] = {{"avx2", "haswell", true}, {"avx512", "zen4", true}, {"avx512", "icelake", false}};
    static int len[MAX_LENGTHS];
    bool done_avx512 = false;
    for (size_t j = 0; j < sizeof peers / sizeof peers[0]; j++) {
        const bool avx512 = strcmp(peers[j].isa, "avx512") == 0;
        if (avx512 && done_avx512)
            continue;
        const ks_kernels *k = isa_or_skip(peers[j].isa);
        void *lib = k ? peer_open(peers[j].variant) : NULL;
        if (!lib)
            continue;
        done_avx512 |= avx512;
        rng_state = 0x510e527fade682d1ull;
        for (int it = 0; it < N_WEIGHT_TYPES; it++) {
            const ks_type t = weight_types[it];
            const ks_type_traits *tw = ks_type_traits_of(t);
            if (t == KS_TYPE_BF16 && !peers[j].bf16)
                continue;
            peer_dot_fn dot = (peer_dot_fn)peer_sym(lib, peer_dot_name(t));
            const int n_len = isa_lengths(tw->block_size, len);
            for (int il = 0; il < n_len; il++) {
                const int n = len[il];
                for (int kind = 0; kind < DATA_KINDS; kind++) {
                    if (kind == DATA_MODEL) {
                        make_case(&cd, k, t, n);
                    } else {
                        raw_weights(t, (data_kind)kind, cd.w, n);
                        raw_activations(tw->dot_type, (data_kind)kind, cd.a, n);
                    }
                    float want = 0.0f;
                    dot(n, &want, 0, cd.w, 0, cd.a, 0, 1);
                    const float got = k->vec_dot[t](cd.w, cd.a, n);
                    cr_assert_eq(memcmp(&got, &want, sizeof got), 0,
                                 "%s %s n=%d %s data: %.9g vs llama.cpp %s %.9g", peers[j].isa,
                                 tw->name, n, data_names[kind], (double)got, peers[j].variant,
                                 (double)want);
                }
            }
        }
        dlclose(lib);
    }
}

/* ---- vec_dot_4 ---------------------------------------------------------------------- */

/* vec_dot_4 is vec_dot over KS_VEC_DOT_ROWS activation rows: each s[j] must equal the
 * same table's vec_dot on row j bit for bit (otherwise a batched prefill would drift
 * from token-by-token decode), for every length and kind of data, rows at a stride that
 * is not a multiple of any vector width. ref has none (4 x vec_dot is the
 * specification); the x86 tables have one for every quantized type. */
Test(vec_dot, test_vec_dot_4_equals_vec_dot_per_row) {
    const ks_kernels *ref = ks_kernels_ref();
    for (int it = 0; it < N_WEIGHT_TYPES; it++)
        cr_assert_null(ref->vec_dot_4[weight_types[it]]);
    static uint8_t rows[KS_VEC_DOT_ROWS * (MAX_ROW_BYTES + 64)];
    static _Alignas(64) uint8_t packed[KS_VEC_DOT_ROWS * (MAX_ROW_BYTES + 64)];
    static int len[MAX_LENGTHS];
    for (size_t j = 0; j < sizeof isas / sizeof isas[0]; j++) {
        const ks_kernels *k = isa_or_skip(isas[j]);
        if (!k)
            continue;
        rng_state = 0x9b05688c2b3e6c1full;
        for (int it = 0; it < N_WEIGHT_TYPES; it++) {
            const ks_type t = weight_types[it];
            const ks_type_traits *tw = ks_type_traits_of(t);
            if (!k->vec_dot_4[t]) {
                cr_assert(!tw->is_quantized || strcmp(isas[j], "neon") == 0,
                          "%s: no vec_dot_4 for %s", isas[j], tw->name);
                continue;
            }
            const int n_len = isa_lengths(tw->block_size, len);
            for (int il = 0; il < n_len; il++) {
                const int n = len[il];
                bool ok;
                /* not a multiple of a vector width; Q8_K's float scale keeps 4-byte
                 * alignment */
                const size_t stride = ks_type_row_size(tw->dot_type, n, &ok) + 36;
                for (int kind = 0; kind < DATA_KINDS; kind++) {
                    if (kind == DATA_MODEL)
                        make_case(&cd, k, t, n);
                    else
                        raw_weights(t, (data_kind)kind, cd.w, n);
                    for (int r = 0; r < KS_VEC_DOT_ROWS; r++) {
                        if (kind == DATA_MODEL) {
                            fill_row(cd.x, n, 1.0f);
                            k->quantize_act[tw->dot_type](cd.x, rows + r * stride, n);
                        } else {
                            raw_activations(tw->dot_type, (data_kind)kind, rows + r * stride, n);
                        }
                    }
                    float s[KS_VEC_DOT_ROWS], sp[KS_VEC_DOT_ROWS], sq[KS_VEC_DOT_ROWS];
                    k->vec_dot_4[t](cd.w, rows, stride, n, s, NULL);
                    /* a row to ask the cache for changes nothing */
                    k->vec_dot_4[t](cd.w, rows, stride, n, sq, cd.w);
                    cr_assert_eq(memcmp(sq, s, sizeof s), 0, "%s %s n=%d %s data: vec_dot_4 with a prefetch row differs",
                                 isas[j], tw->name, n, data_names[kind]);
                    const ks_dot4_packed *pk = &k->vec_dot_4_packed[t];
                    /* the packed kernel on all four rows, then on three and a missing one */
                    for (int missing = 0; pk->run && missing < 2; missing++) {
                        const void *rp[KS_VEC_DOT_ROWS];
                        for (int r = 0; r < KS_VEC_DOT_ROWS; r++)
                            rp[r] = missing && r == KS_VEC_DOT_ROWS - 1 ? NULL : rows + r * stride;
                        cr_assert_leq(pk->bytes(n), sizeof packed);
                        pk->pack(rp, n, packed);
                        /* with a row to ask the cache for (missing == 0) and without */
                        pk->run(cd.w, packed, n, sp, missing ? NULL : cd.w);
                        for (int r = 0; r < KS_VEC_DOT_ROWS - missing; r++)
                            cr_assert_eq(memcmp(&sp[r], &s[r], sizeof s[r]), 0,
                                         "%s %s n=%d %s data, row %d of %d: packed %.9g, vec_dot_4 %.9g",
                                         isas[j], tw->name, n, data_names[kind], r, KS_VEC_DOT_ROWS - missing,
                                         (double)sp[r], (double)s[r]);
                    }
                    for (int r = 0; r < KS_VEC_DOT_ROWS; r++) {
                        const float want = k->vec_dot[t](cd.w, rows + r * stride, n);
                        cr_assert_eq(memcmp(&s[r], &want, sizeof want), 0,
                                     "%s %s n=%d %s data, row %d: vec_dot_4 %.9g, vec_dot %.9g",
                                     isas[j], tw->name, n, data_names[kind], r, (double)s[r],
                                     (double)want);
                    }
                }
            }
        }
    }
}

/* ---- vec_dot_2w ---------------------------------------------------------------------- */

/* vec_dot_2w is vec_dot of two weight rows with one activation row: each s[i] must equal
 * vec_dot(w[i], a) bit for bit, for every length (tails of blocks past a multiple of 8
 * among them) and kind of data, the two rows of different data, against one activation
 * row or two, whatever rows it is given to ask the cache for. */
Test(vec_dot, test_vec_dot_2w_equals_vec_dot_per_row) {
    const ks_kernels *ref = ks_kernels_ref();
    for (int it = 0; it < N_WEIGHT_TYPES; it++)
        cr_assert_null(ref->vec_dot_2w[weight_types[it]]);
    /* two activation rows, act_stride bytes apart */
    enum { act_stride = MAX_ROW_BYTES + 64 };
    static uint8_t w0[MAX_ROW_BYTES], act[2 * act_stride];
    static int len[MAX_LENGTHS];
    int tested = 0;
    for (size_t j = 0; j < sizeof isas / sizeof isas[0]; j++) {
        const ks_kernels *k = isa_or_skip(isas[j]);
        if (!k)
            continue;
        rng_state = 0x5be0cd19137e2179ull;
        for (int it = 0; it < N_WEIGHT_TYPES; it++) {
            const ks_type t = weight_types[it];
            const ks_type_traits *tw = ks_type_traits_of(t);
            if (!k->vec_dot_2w[t])
                continue;
            tested++;
            const int n_len = isa_lengths(tw->block_size, len);
            for (int il = 0; il < n_len; il++) {
                const int n = len[il];
                bool ok;
                const size_t row_bytes = ks_type_row_size(t, n, &ok);
                for (int kind = 0; kind < DATA_KINDS; kind++) {
                    if (kind == DATA_MODEL) {
                        make_case(&cd, k, t, n);
                        memcpy(w0, cd.w, row_bytes);
                        make_case(&cd, k, t, n);
                        fill_row(cd.x, n, 1.0f);
                        k->quantize_act[tw->dot_type](cd.x, act, n);
                    } else {
                        raw_weights(t, (data_kind)kind, w0, n);
                        raw_weights(t, (data_kind)kind, cd.w, n);
                        raw_activations(tw->dot_type, (data_kind)kind, act, n);
                    }
                    const void *w[2] = {w0, cd.w};
                    /* without rows to ask the cache for, with both, with one; one activation
                     * row, then two (the second the first's bytes reversed in block order,
                     * so that the two differ) */
                    const void *const pf[3][2] = {{NULL, NULL}, {cd.w, w0}, {NULL, w0}};
                    const size_t act_bytes = ks_type_row_size(tw->dot_type, n, &ok);
                    const size_t ab = ks_type_traits_of(tw->dot_type)->type_size, nab = act_bytes / ab;
                    for (size_t b = 0; b < nab; b++)
                        memcpy(act + act_stride + b * ab, act + (nab - 1 - b) * ab, ab);
                    for (int nt = 1; nt <= 2; nt++)
                        for (int ip = 0; ip < 3; ip++) {
                            float s[4];
                            k->vec_dot_2w[t](w0, cd.w, act, act_stride, nt, n, s, ip ? pf[ip] : NULL);
                            for (int i = 0; i < 2; i++)
                                for (int r = 0; r < nt; r++) {
                                    const float want = k->vec_dot[t](w[i], act + (size_t)r * act_stride, n);
                                    cr_assert_eq(memcmp(&s[i * nt + r], &want, sizeof want), 0,
                                                 "%s %s n=%d %s data, weight row %d, activation row %d of %d, "
                                                 "prefetch %d: vec_dot_2w %.9g, vec_dot %.9g",
                                                 isas[j], tw->name, n, data_names[kind], i, r, nt, ip,
                                                 (double)s[i * nt + r], (double)want);
                                }
                        }
                }
            }
        }
    }
    cr_log_info("vec_dot_2w: %d kernels checked", tested);
}
