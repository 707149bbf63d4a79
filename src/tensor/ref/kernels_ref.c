/* kernels_ref.c — scalar reference kernels: plain C, obvious loops. */
#include "tensor/ref/kernels_ref.h"

static void fp16_to_fp32_row_ref(const ks_fp16 *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        y[i] = ks_fp16_to_fp32(x[i]);
}

static void fp32_to_fp16_row_ref(const float *x, ks_fp16 *y, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        y[i] = ks_fp32_to_fp16(x[i]);
}

static void bf16_to_fp32_row_ref(const ks_bf16 *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        y[i] = ks_bf16_to_fp32(x[i]);
}

/* Accumulates in double: the reference is the exact-ish answer, not a fast one. */
static float dot_f32_ref(const float *x, const float *y, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += (double)x[i] * (double)y[i];
    return (float)s;
}

void ks_kernels_ref_fill(ks_kernels *k) {
    k->fp16_to_fp32_row = fp16_to_fp32_row_ref;
    k->fp32_to_fp16_row = fp32_to_fp16_row_ref;
    k->bf16_to_fp32_row = bf16_to_fp32_row_ref;
    k->dot_f32 = dot_f32_ref;
}
