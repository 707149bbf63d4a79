/* test_elementwise.c — the row-wise kernels (RMSNorm, SwiGLU) of every kernel set against
 * the scalar reference, on lengths that leave vector tails and on inputs from the tiny to
 * the saturating (SwiGLU's exp under- and overflows for |g| > 88). */
#include "tensor/kernels.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

static const char *const isas[] = {"avx2", "avx512", "amx", "neon"};
static const int lengths[] = {1, 7, 16, 33, 128, 1024, 3077};

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static float frand(void) { /* uniform in [-1, 1) */
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng_state >> 40) / (double)(1ull << 24)) * 2.0f - 1.0f;
}

static double rel(float got, float want) {
    return fabs((double)got - want) / fmax(fabs((double)want), 1e-30);
}

Test(elementwise, test_rmsnorm_matches_ref) {
    enum { N = 3077 };
    static float x[N], w[N], yr[N], yi[N];
    const ks_kernels *ref = ks_kernels_ref();
    for (size_t s = 0; s < sizeof isas / sizeof isas[0]; s++) {
        const ks_kernels *k = ks_kernels_for_isa(isas[s]);
        if (!k) {
            cr_log_info("%s kernels not available on this CPU/build: skipped", isas[s]);
            continue;
        }
        for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
            int n = lengths[li];
            for (int i = 0; i < n; i++) {
                x[i] = frand() * (i % 13 == 0 ? 50.0f : 1.0f);
                w[i] = 1.0f + 0.5f * frand();
            }
            for (int with_w = 0; with_w < 2; with_w++) {
                ref->rmsnorm_f32(x, with_w ? w : NULL, yr, n, 1e-6f);
                k->rmsnorm_f32(x, with_w ? w : NULL, yi, n, 1e-6f);
                double worst = 0;
                for (int i = 0; i < n; i++)
                    worst = fmax(worst, rel(yi[i], yr[i]));
                cr_expect_leq(worst, 1e-6, "%s rmsnorm n=%d w=%d: rel error %.3g", isas[s], n, with_w, worst);
            }
            /* in place */
            ref->rmsnorm_f32(x, w, yr, n, 1e-6f);
            k->rmsnorm_f32(x, w, x, n, 1e-6f);
            for (int i = 0; i < n; i++)
                cr_expect_leq(rel(x[i], yr[i]), 1e-6, "%s rmsnorm in place n=%d at %d", isas[s], n, i);
        }
    }
}

Test(elementwise, test_swiglu_matches_ref_including_saturation) {
    enum { N = 3077 };
    static float g[N], u[N], yr[N], yi[N];
    static const float extremes[] = {0.0f, -0.0f, 1e-30f, -1e-30f, 88.0f, -88.0f, 89.0f, -89.0f,
                                     100.0f, -100.0f, 1e4f, -1e4f, 20.0f, -20.0f};
    const ks_kernels *ref = ks_kernels_ref();
    for (size_t s = 0; s < sizeof isas / sizeof isas[0]; s++) {
        const ks_kernels *k = ks_kernels_for_isa(isas[s]);
        if (!k)
            continue;
        for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
            int n = lengths[li];
            for (int i = 0; i < n; i++) {
                g[i] = i < (int)(sizeof extremes / sizeof extremes[0]) ? extremes[i] : frand() * 12.0f;
                u[i] = frand() * 3.0f;
            }
            ref->swiglu_f32(g, u, yr, n);
            k->swiglu_f32(g, u, yi, n);
            for (int i = 0; i < n; i++) {
                /* relative to the output, or absolute where silu underflows to ~0 */
                double err = fabs((double)yi[i] - yr[i]) / fmax(fabs((double)yr[i]), 1e-20);
                cr_expect_leq(err, 2e-6, "%s swiglu n=%d g=%g u=%g: got %g want %g", isas[s], n, g[i], u[i],
                              yi[i], yr[i]);
            }
        }
    }
}
