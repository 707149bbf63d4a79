/* attn_ref.c — scalar reference kernels of streaming attention (model/attention.c): the
 * score tile, the online-softmax step and the value accumulation, over K/V rows of F32,
 * F16 or Q8_0.
 *
 * Owns: the kernels' specification, as the kernel table states it (kernels.h).
 * Does not own: the walk over the paged KV pool, causality, the merge of partial states
 * (model/attention.c).
 *
 * Plain loops: each score is one dot product in element order with float products summed
 * in double; exp is the C library's expf; halves and Q8_0 elements are widened one at a
 * time. The ISA versions reorder sums and use their own
 * exp; tests/kernels/test_kernels.c holds them to budgets against these. */
#include "tensor/ref/kernels_ref.h"

#include "tensor/attn_kv.h"
#include "tensor/quants.h"

#include <math.h>

/* Element i of a K/V row of a kind (attn_kv.h): a float, a half, or a Q8_0 block's d * q. */
static float kv_elem(int kind, const void *row, int64_t i) {
    if (kind == KV_Q8) {
        const ks_block_q8_0 *b = kv_q8_block(row, i);
        return (float)b->qs[i % KS_QK8_0] * ks_fp16_to_fp32(b->d);
    }
    return kind == KV_F16 ? ks_fp16_to_fp32(((const ks_fp16 *)row)[i]) : ((const float *)row)[i];
}

static void scores(int kind, const float *q, int64_t ld_q, int nq, const void *k, int64_t ld_k,
                   int nk, int64_t n, float scale, float *s, int64_t ld_s) {
    for (int r = 0; r < nq; r++)
        for (int j = 0; j < nk; j++) {
            const float *qr = q + r * ld_q;
            const void *kj = kv_at(kind, k, j * ld_k);
            double d = 0;
            for (int64_t i = 0; i < n; i++)
                d += (double)(qr[i] * kv_elem(kind, kj, i));
            s[r * ld_s + j] = scale * (float)d;
        }
}

static void attn_scores_f32_ref(const float *q, int64_t ld_q, int nq, const void *k, int64_t ld_k,
                                int nk, int64_t n, float scale, float *s, int64_t ld_s, const void *pf) {
    (void)pf;
    scores(KV_F32, q, ld_q, nq, k, ld_k, nk, n, scale, s, ld_s);
}

static void attn_scores_f16_ref(const float *q, int64_t ld_q, int nq, const void *k, int64_t ld_k,
                                int nk, int64_t n, float scale, float *s, int64_t ld_s, const void *pf) {
    (void)pf;
    scores(KV_F16, q, ld_q, nq, k, ld_k, nk, n, scale, s, ld_s);
}

static void attn_scores_q8_0_ref(const float *q, int64_t ld_q, int nq, const void *k, int64_t ld_k,
                                 int nk, int64_t n, float scale, float *s, int64_t ld_s, const void *pf) {
    (void)pf;
    scores(KV_Q8, q, ld_q, nq, k, ld_k, nk, n, scale, s, ld_s);
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

static void accum(int kind, float *acc, int64_t ld_acc, int nq, const float *p, int64_t ld_p,
                  const void *v, int64_t ld_v, int nk, int64_t n) {
    for (int r = 0; r < nq; r++)
        for (int j = 0; j < nk; j++) {
            const float w = p[r * ld_p + j];
            const void *vj = kv_at(kind, v, j * ld_v);
            for (int64_t i = 0; i < n; i++)
                acc[r * ld_acc + i] += w * kv_elem(kind, vj, i);
        }
}

static void attn_accum_f32_ref(float *acc, int64_t ld_acc, int nq, const float *p, int64_t ld_p,
                               const void *v, int64_t ld_v, int nk, int64_t n, const void *pf) {
    (void)pf;
    accum(KV_F32, acc, ld_acc, nq, p, ld_p, v, ld_v, nk, n);
}

static void attn_accum_f16_ref(float *acc, int64_t ld_acc, int nq, const float *p, int64_t ld_p,
                               const void *v, int64_t ld_v, int nk, int64_t n, const void *pf) {
    (void)pf;
    accum(KV_F16, acc, ld_acc, nq, p, ld_p, v, ld_v, nk, n);
}

static void attn_accum_q8_0_ref(float *acc, int64_t ld_acc, int nq, const float *p, int64_t ld_p,
                                const void *v, int64_t ld_v, int nk, int64_t n, const void *pf) {
    (void)pf;
    accum(KV_Q8, acc, ld_acc, nq, p, ld_p, v, ld_v, nk, n);
}

void ks_attn_ref_fill(ks_kernels *k) {
    k->attn_scores[KS_TYPE_F32] = attn_scores_f32_ref;
    k->attn_scores[KS_TYPE_F16] = attn_scores_f16_ref;
    k->attn_scores[KS_TYPE_Q8_0] = attn_scores_q8_0_ref;
    k->softmax_rows_f32 = softmax_rows_f32_ref;
    k->attn_accum[KS_TYPE_F32] = attn_accum_f32_ref;
    k->attn_accum[KS_TYPE_F16] = attn_accum_f16_ref;
    k->attn_accum[KS_TYPE_Q8_0] = attn_accum_q8_0_ref;
}
