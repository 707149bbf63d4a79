/* test_vec_dot.c — the weight x activation dot products and activation quantizers of the
 * kernel tables.
 *
 * For every weight type kvserve computes with, on random rows of several lengths:
 *   - vec_dot(w, quantize_act(x)) equals the double-precision dot of the dequantized
 *     rows, to float rounding (1e-5 of sum |w_i a_i|);
 *   - it is within the activation quantization error of the exact dot with x;
 *   - every ISA table agrees with ref (an ISA the CPU lacks is reported as skipped);
 *   - against llama.cpp's own CPU library (the node-llama-cpp package's build, loaded at
 *     run time, as tests/peer does): the ref dot products are bit-identical to its
 *     portable C ones, the activation quantizers to its x86 (AVX2) ones. */
#include "tensor/kernels.h"
#include "tensor/quants.h"
#include "tensor/ref/quants_ref.h"
#include "tensor/ref/vec_dot_ref.h"
#include "tensor/types.h"

#include "core/cpu.h"

#include <criterion/criterion.h>
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
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

/* One (weight type, row length) combination. Lengths per block size: one block, a few,
 * and a model-sized row; float lengths that are not multiples of 8 or 32 exercise the
 * tails of SIMD kernels. */
typedef struct dot_case {
    ks_type t;
    int n;
} dot_case;

static int all_cases(dot_case *out) {
    static const int floats[] = {1, 7, 64, 1000, MAX_N, 0};
    static const int small[] = {32, 96, 512, MAX_N, 0};
    static const int k[] = {256, 768, MAX_N, 0};
    int count = 0;
    for (int it = 0; it < N_WEIGHT_TYPES; it++) {
        const int64_t block = ks_type_traits_of(weight_types[it])->block_size;
        const int *len = block == 1 ? floats : block == 32 ? small : k;
        for (; *len; len++)
            out[count++] = (dot_case){weight_types[it], *len};
    }
    return count;
}
#define MAX_CASES (N_WEIGHT_TYPES * 5)

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

/* Every ISA table has every entry (NULL ones fall back to ref at build time); an ISA
 * kernel may sum in another order, so within float rounding of ref; its activation
 * quantizer must produce ref's bytes, or its dot products would drift from llama.cpp's. */
Test(vec_dot, test_vec_dot_every_isa_table_matches_ref) {
    const ks_kernels *ref = ks_kernels_ref();
    static uint8_t a_isa[MAX_ROW_BYTES];
    dot_case cases[MAX_CASES];
    const int n_cases = all_cases(cases);
    for (size_t j = 0; j < sizeof isas / sizeof isas[0]; j++) {
        const ks_kernels *k = isa_or_skip(isas[j]);
        if (!k)
            continue;
        rng_state = 0x853c49e6748fea9bull;
        for (int ic = 0; ic < n_cases; ic++) {
            const ks_type t = cases[ic].t;
            const int n = cases[ic].n;
            const ks_type at = ks_type_traits_of(t)->dot_type;
            cr_assert_not_null(k->vec_dot[t], "%s: no vec_dot for %s", isas[j], ks_type_name(t));
            cr_assert_not_null(k->quantize_act[at], "%s: no quantize_act for %s", isas[j],
                               ks_type_name(at));
            make_case(&cd, ref, t, n);
            bool ok;
            const size_t a_bytes = ks_type_row_size(at, n, &ok);
            cr_assert(ok);
            k->quantize_act[at](cd.x, a_isa, n);
            cr_assert_eq(memcmp(a_isa, cd.a, a_bytes), 0,
                         "%s quantize_act %s n=%d differs from ref", isas[j], ks_type_name(at), n);
            double mag;
            (void)dequantized_dot(&cd, t, n, &mag);
            const float want = ref->vec_dot[t](cd.w, cd.a, n);
            const float got = k->vec_dot[t](cd.w, cd.a, n);
            if (k->vec_dot[t] == ref->vec_dot[t])
                cr_assert_eq(memcmp(&got, &want, sizeof got), 0);
            cr_assert(fabs((double)got - want) <= 1e-5 * mag + 1e-30,
                      "%s %s n=%d: %.9g vs ref %.9g", isas[j], ks_type_name(t), n, (double)got,
                      (double)want);
        }
    }
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
    default: return NULL;
    }
}

/* libggml-cpu-<variant>.so, initialised; NULL (reported as skipped) if absent. */
static void *peer_open(const char *variant) {
    char path[1024];
    snprintf(path, sizeof path, "%slibggml-cpu-%s.so", PEER_DIR, variant);
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        cr_log_info("llama.cpp CPU library %s not loadable (%s): skipped", variant, dlerror());
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
