/* attention.c — causal attention over the paged KV pool (see attention.h).
 *
 * One work item is one (token, query head): scores against every visible position,
 * softmax, weighted sum of the values. K/V heads are converted to floats a position at
 * a time into per-thread scratch. */
#include "model/attention.h"

#include "tensor/kernels.h"
#include "tensor/types.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct thread_scratch {
    float *row;      /* (head_dim) one K/V head slice as floats */
    float *scores;   /* (n_ctx) attention scores of one query head */
    float *acc;      /* (head_dim) attention output accumulator */
} thread_scratch;

struct ks_attention {
    ks_hparams hp;
    ks_kv_layout kv;
    const ks_kernels *k;
    int nth;
    thread_scratch *ts;
};

void ks_attention_destroy(ks_attention *a) {
    if (!a)
        return;
    if (a->ts)
        for (int i = 0; i < a->nth; i++) {
            free(a->ts[i].row);
            free(a->ts[i].scores);
            free(a->ts[i].acc);
        }
    free(a->ts);
    free(a);
}

ks_status ks_attention_create(ks_attention **out, const ks_hparams *hp, const ks_kv_layout *kv,
                              int n_ctx, int nth, ks_err *err) {
    ks_attention *a = calloc(1, sizeof *a);
    if (!a)
        return KS_ERRF(err, KS_ERR_NOMEM, "out of memory for attention scratch");
    a->hp = *hp;
    a->kv = *kv;
    a->k = ks_kernels_get();
    a->nth = nth;
    a->ts = calloc((size_t)nth, sizeof *a->ts);
    bool ok = a->ts != NULL;
    for (int i = 0; ok && i < nth; i++) {
        a->ts[i].row = malloc((size_t)hp->head_dim * sizeof(float));
        a->ts[i].scores = malloc((size_t)n_ctx * sizeof(float));
        a->ts[i].acc = malloc((size_t)hp->head_dim * sizeof(float));
        ok = a->ts[i].row && a->ts[i].scores && a->ts[i].acc;
    }
    if (!ok) {
        ks_attention_destroy(a);
        return KS_ERRF(err, KS_ERR_NOMEM, "out of memory for attention scratch (%d positions)", n_ctx);
    }
    *out = a;
    return KS_OK;
}

typedef struct attn_task {
    ks_attention *a;
    uint8_t *kv_pool;
    const ks_batch *b;
    int il;
    const float *q;
    float *out;
} attn_task;

/* Dequantizes head kvh of a K or V row into out (head_dim floats). head_dim is a
 * multiple of every KV type's block size, so a head is whole blocks. */
static const float *kv_head(const ks_kernels *k, const ks_kv_layout *kv, const uint8_t *row, int kvh,
                            int head_dim, float *out) {
    size_t off = ks_type_row_size((ks_type)kv->kv_type, (int64_t)kvh * head_dim, NULL);
    if (kv->kv_type == KS_TYPE_F32)
        return (const float *)(row + off);
    if (kv->kv_type == KS_TYPE_F16)
        k->fp16_to_fp32_row((const ks_fp16 *)(row + off), out, head_dim);
    else
        ks_type_traits_of(kv->kv_type)->to_float(row + off, out, head_dim);
    return out;
}

static void attn_worker(void *arg, int ith, int nth) {
    attn_task *at = arg;
    ks_attention *a = at->a;
    const ks_hparams *hp = &a->hp;
    const ks_kv_layout *kv = &a->kv;
    int hd = hp->head_dim, gqa = hp->n_head / hp->n_head_kv, B = kv->block_tokens;
    float scale = 1.0f / sqrtf((float)hd);
    thread_scratch *ts = &a->ts[ith];
    long j0, j1;
    ks_split_range((long)at->b->n_tokens * hp->n_head, ith, nth, &j0, &j1);
    for (long j = j0; j < j1; j++) {
        int t = (int)(j / hp->n_head), h = (int)(j % hp->n_head), kvh = h / gqa;
        const ks_seq_view *sv = &at->b->seqs[at->b->seq[t]];
        int n_pos = at->b->pos[t] + 1;
        const float *qh = at->q + ((size_t)t * hp->n_head + h) * hd;
        /* scores[p] = q . k_p * scale, then softmax */
        float mx = -INFINITY;
        for (int p = 0; p < n_pos; p++) {
            const uint8_t *krow = ks_kv_k_row(kv, at->kv_pool, sv->block_table[p / B], at->il, p % B);
            const float *kh = kv_head(a->k, kv, krow, kvh, hd, ts->row);
            float s = a->k->dot_f32(qh, kh, hd) * scale;
            ts->scores[p] = s;
            mx = s > mx ? s : mx;
        }
        double sum = 0;
        for (int p = 0; p < n_pos; p++) {
            ts->scores[p] = expf(ts->scores[p] - mx);
            sum += ts->scores[p];
        }
        float inv = (float)(1.0 / sum);
        memset(ts->acc, 0, (size_t)hd * sizeof(float));
        for (int p = 0; p < n_pos; p++) {
            const uint8_t *vrow = ks_kv_v_row(kv, at->kv_pool, sv->block_table[p / B], at->il, p % B);
            const float *vh = kv_head(a->k, kv, vrow, kvh, hd, ts->row);
            float wgt = ts->scores[p] * inv;
            for (int i = 0; i < hd; i++)
                ts->acc[i] += wgt * vh[i];
        }
        memcpy(at->out + ((size_t)t * hp->n_head + h) * hd, ts->acc, (size_t)hd * sizeof(float));
    }
}

void ks_attention_run(ks_attention *a, ks_threadpool *tp, uint8_t *kv_pool, const ks_batch *b,
                      int il, const float *q, float *out) {
    attn_task at = {a, kv_pool, b, il, q, out};
    ks_threadpool_run(tp, attn_worker, &at);
}

void ks_attention_store_kv(ks_attention *a, uint8_t *kv_pool, const ks_batch *b, int il,
                           const float *k, const float *v) {
    const ks_kv_layout *kv = &a->kv;
    const ks_type_traits *tr = ks_type_traits_of(kv->kv_type);
    int B = kv->block_tokens;
    for (int t = 0; t < b->n_tokens; t++) {
        const ks_seq_view *sv = &b->seqs[b->seq[t]];
        int p = b->pos[t];
        int32_t blk = sv->block_table[p / B];
        tr->from_float(k + (size_t)t * kv->row_elems, ks_kv_k_row(kv, kv_pool, blk, il, p % B), kv->row_elems);
        tr->from_float(v + (size_t)t * kv->row_elems, ks_kv_v_row(kv, kv_pool, blk, il, p % B), kv->row_elems);
    }
}
