/* attn_ref.c — scalar reference kernels of streaming attention (model/attention.c): the
 * score tile, the online-softmax step, the value accumulation, and the Q8_0 row to floats
 * that turns a quantized KV block into rows the tiles read.
 *
 * Owns: the kernels' specification, as the kernel table states it (kernels.h).
 * Does not own: the walk over the paged KV pool, causality, the merge of partial states
 * (model/attention.c).
 *
 * Plain loops: each score is one dot product in element order with float products summed
 * in double; exp is the C library's expf; halves are widened one at a time. The ISA versions reorder sums and use their own
 * exp; tests/kernels/test_kernels.c holds them to budgets against these. */
#include "tensor/ref/kernels_ref.h"

#include "tensor/quants.h"

#include <math.h>

/* Element i of a K/V row of floats (h 0) or halves (h 1). */
static float kv_elem(int h, const void *row, int64_t i) {
    return h ? ks_fp16_to_fp32(((const ks_fp16 *)row)[i]) : ((const float *)row)[i];
}

static const void *kv_row(int h, const void *base, int64_t idx) {
    return (const char *)base + idx * (h ? 2 : 4);
}

static void scores(int h, const float *q, int64_t ld_q, int nq, const void *k, int64_t ld_k,
                   int nk, int64_t n, float scale, float *s, int64_t ld_s) {
    for (int r = 0; r < nq; r++)
        for (int j = 0; j < nk; j++) {
            const float *qr = q + r * ld_q;
            const void *kj = kv_row(h, k, j * ld_k);
            double d = 0;
            for (int64_t i = 0; i < n; i++)
                d += (double)(qr[i] * kv_elem(h, kj, i));
            s[r * ld_s + j] = scale * (float)d;
        }
}

static void attn_scores_f32_ref(const float *q, int64_t ld_q, int nq, const void *k, int64_t ld_k,
                                int nk, int64_t n, float scale, float *s, int64_t ld_s, const void *pf) {
    (void)pf;
    scores(0, q, ld_q, nq, k, ld_k, nk, n, scale, s, ld_s);
}

static void attn_scores_f16_ref(const float *q, int64_t ld_q, int nq, const void *k, int64_t ld_k,
                                int nk, int64_t n, float scale, float *s, int64_t ld_s, const void *pf) {
    (void)pf;
    scores(1, q, ld_q, nq, k, ld_k, nk, n, scale, s, ld_s);
}

static void softmax_rows_f32_ref(float *s, int64_t ld_s, int nr, int64_t n, const int *lim, int64_t lo, float *m,
                                 float *l, float *corr) {
    for (int r = 0; r < nr; r++) {
        float *x = s + r * ld_s;
        const int64_t nv = lim[r] - lo < 0 ? 0 : lim[r] - lo < n ? lim[r] - lo : n;
        float mx = m[r];
        for (int64_t j = 0; j < nv; j++)
            mx = x[j] > mx ? x[j] : mx;
        double sum = 0;
        for (int64_t j = 0; j < n; j++) {
            x[j] = j < nv ? expf(x[j] - mx) : 0.0f;
            sum += x[j];
        }
        corr[r] = mx == m[r] ? 1.0f : expf(m[r] - mx);
        l[r] = l[r] * corr[r] + (float)sum;
        m[r] = mx;
    }
}

static void accum(int h, float *acc, int64_t ld_acc, int nq, const float *p, int64_t ld_p,
                  const void *v, int64_t ld_v, int nk, int64_t n) {
    for (int r = 0; r < nq; r++)
        for (int j = 0; j < nk; j++) {
            const float w = p[r * ld_p + j];
            const void *vj = kv_row(h, v, j * ld_v);
            for (int64_t i = 0; i < n; i++)
                acc[r * ld_acc + i] += w * kv_elem(h, vj, i);
        }
}

static void attn_accum_f32_ref(float *acc, int64_t ld_acc, int nq, const float *p, int64_t ld_p,
                               const void *v, int64_t ld_v, int nk, int64_t n, const void *pf) {
    (void)pf;
    accum(0, acc, ld_acc, nq, p, ld_p, v, ld_v, nk, n);
}

static void attn_accum_f16_ref(float *acc, int64_t ld_acc, int nq, const float *p, int64_t ld_p,
                               const void *v, int64_t ld_v, int nk, int64_t n, const void *pf) {
    (void)pf;
    accum(1, acc, ld_acc, nq, p, ld_p, v, ld_v, nk, n);
}

static void q8_0_to_fp32_row_ref(const void *x, float *y, int64_t n) {
    const ks_block_q8_0 *b = x;
    for (int64_t ib = 0; ib < n / KS_QK8_0; ib++) {
        const float d = ks_fp16_to_fp32(b[ib].d);
        for (int i = 0; i < KS_QK8_0; i++)
            y[ib * KS_QK8_0 + i] = (float)b[ib].qs[i] * d;
    }
}

void ks_attn_ref_fill(ks_kernels *k) {
    k->attn_scores[KS_TYPE_F32] = attn_scores_f32_ref;
    k->attn_scores[KS_TYPE_F16] = attn_scores_f16_ref;
    k->softmax_rows_f32 = softmax_rows_f32_ref;
    k->attn_accum[KS_TYPE_F32] = attn_accum_f32_ref;
    k->attn_accum[KS_TYPE_F16] = attn_accum_f16_ref;
    k->q8_0_to_fp32_row = q8_0_to_fp32_row_ref;
}
