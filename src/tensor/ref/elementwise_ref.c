/* elementwise_ref.c — scalar reference of the row-wise ops of a layer: RMSNorm and the
 * SwiGLU gate. The ISA versions (x86/elementwise_*.c) are tested against these.
 *
 *   rmsnorm_f32: y[i] = x[i] / sqrt(mean(x^2) + eps) * w[i]   (w NULL: no scale; the sum
 *                of squares in double, as llama.cpp sums it)
 *   swiglu_f32:  y[i] = silu(g[i]) * u[i],  silu(v) = v / (1 + exp(-v)) */
#include "tensor/ref/kernels_ref.h"

#include <math.h>

static void rmsnorm_f32_ref(const float *x, const float *w, float *y, int64_t n, float eps) {
    double ss = 0;
    for (int64_t i = 0; i < n; i++)
        ss += (double)x[i] * x[i];
    float scale = (float)(1.0 / sqrt(ss / (double)n + eps));
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] * scale * (w ? w[i] : 1.0f);
}

static void swiglu_f32_ref(const float *g, const float *u, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        y[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

void ks_elementwise_ref_fill(ks_kernels *k) {
    k->rmsnorm_f32 = rmsnorm_f32_ref;
    k->swiglu_f32 = swiglu_f32_ref;
}
