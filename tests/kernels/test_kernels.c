/* test_kernels.c — every ISA kernel set against the scalar reference. An ISA the CPU (or
 * the build) lacks is reported as skipped, never passed. */
#include "tensor/kernels.h"
#include "test_support.h"

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
    if (ks_kernels_for_isa("avx512"))
        cr_assert_str_eq(sel->isa, getenv("KS_KERNELS") ? getenv("KS_KERNELS") : "avx512");
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
