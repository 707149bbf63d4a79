/* runner.c — single-sequence synchronous evaluation (see runner.h). */
#include "engine/runner.h"

#include "core/threadpool.h"
#include "kv/kv_pool.h"
#include "model/forward.h"
#include "tensor/types.h"

#include <stdlib.h>
#include <string.h>

#define KS_DEFAULT_CTX 4096      /* tokens, when the caller does not say */
#define KS_DEFAULT_BATCH 512     /* tokens per forward call: prefill chunk */
#define KS_DEFAULT_BLOCK 32      /* tokens per KV block (DESIGN.md) */

struct ks_runner {
    const ks_model *m;
    ks_runner_params p;
    ks_threadpool *tp;
    ks_kv_pool *pool;
    ks_forward *fwd;
    int32_t *block_table;   /* (n_ctx / B rounded up) */
    int n_blocks;           /* blocks held */
    int n_past;             /* tokens in the sequence */
    /* batch arrays, (n_batch) each */
    int32_t *pos, *seq;
    uint8_t *want;
};

void ks_runner_params_default(ks_runner_params *p) {
    p->n_threads = 0;
    p->n_ctx = 0;
    p->n_batch = 0;
    p->kv_type = KS_TYPE_F16;
    p->block_tokens = 0;
}

void ks_runner_destroy(ks_runner *r) {
    if (!r)
        return;
    ks_forward_destroy(r->fwd);
    ks_kv_pool_destroy(r->pool);
    ks_threadpool_destroy(r->tp);
    free(r->block_table);
    free(r->pos);
    free(r->seq);
    free(r->want);
    free(r);
}

ks_status ks_runner_create(ks_runner **out, const ks_model *m, const ks_runner_params *params, ks_err *err) {
    ks_runner *r = calloc(1, sizeof *r);
    if (!r)
        return KS_ERRF(err, KS_ERR_NOMEM, "out of memory");
    r->m = m;
    r->p = *params;
    if (r->p.n_ctx <= 0)
        r->p.n_ctx = KS_MIN(m->hp.n_ctx_train, KS_DEFAULT_CTX);
    if (r->p.n_batch <= 0)
        r->p.n_batch = KS_DEFAULT_BATCH;
    r->p.n_batch = KS_MIN(r->p.n_batch, r->p.n_ctx);
    if (r->p.block_tokens <= 0)
        r->p.block_tokens = KS_DEFAULT_BLOCK;
    r->tp = ks_threadpool_create(r->p.n_threads);
    r->p.n_threads = ks_threadpool_n_threads(r->tp);

    ks_kv_layout layout;
    int n_blocks = (r->p.n_ctx + r->p.block_tokens - 1) / r->p.block_tokens;
    ks_status s = ks_kv_layout_init(&layout, r->p.kv_type, r->p.block_tokens, m->hp.n_layer,
                                    m->hp.n_head_kv, m->hp.head_dim, err);
    if (!s)
        s = ks_kv_pool_create(&r->pool, &layout, n_blocks, err);
    if (!s)
        s = ks_forward_create(&r->fwd, m, &layout, ks_kv_pool_base(r->pool), n_blocks, r->p.n_batch,
                              r->p.n_ctx, r->tp, err);
    if (!s) {
        r->block_table = malloc((size_t)n_blocks * sizeof *r->block_table);
        r->pos = malloc((size_t)r->p.n_batch * sizeof *r->pos);
        r->seq = calloc((size_t)r->p.n_batch, sizeof *r->seq);
        r->want = malloc((size_t)r->p.n_batch);
        if (!r->block_table || !r->pos || !r->seq || !r->want)
            s = KS_ERRF(err, KS_ERR_NOMEM, "out of memory");
    }
    if (s) {
        ks_runner_destroy(r);
        return s;
    }
    *out = r;
    return KS_OK;
}

int ks_runner_n_past(const ks_runner *r) { return r->n_past; }
int ks_runner_n_ctx(const ks_runner *r) { return r->p.n_ctx; }
int ks_runner_n_threads(const ks_runner *r) { return r->p.n_threads; }

void ks_runner_reset(ks_runner *r) {
    for (int i = 0; i < r->n_blocks; i++)
        ks_kv_pool_unref(r->pool, r->block_table[i]);
    r->n_blocks = 0;
    r->n_past = 0;
}

ks_status ks_runner_eval(ks_runner *r, const int32_t *tokens, int n, bool all_logits, float *out,
                         ks_err *err) {
    int n_vocab = r->m->hp.n_vocab;
    if (n < 1)
        return KS_ERRF(err, KS_ERR_INVALID, "nothing to evaluate: empty token list");
    if (n > r->p.n_ctx - r->n_past)
        return KS_ERRF(err, KS_ERR_INVALID, "%d tokens do not fit the context: %d of %d already used",
                       n, r->n_past, r->p.n_ctx);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= n_vocab)
            return KS_ERRF(err, KS_ERR_INVALID, "token id %d (at %d) is outside the vocabulary (0..%d)",
                           tokens[i], i, n_vocab - 1);
    int B = r->p.block_tokens;
    while (r->n_blocks * B < r->n_past + n) {
        int32_t b = ks_kv_pool_alloc(r->pool);
        KS_ASSERT(b >= 0); /* the pool holds n_ctx tokens */
        r->block_table[r->n_blocks++] = b;
    }
    ks_seq_view sv = {r->block_table, r->n_blocks};
    for (int done = 0; done < n;) {
        int chunk = KS_MIN(r->p.n_batch, n - done);
        bool last_chunk = done + chunk == n;
        for (int i = 0; i < chunk; i++) {
            r->pos[i] = r->n_past + i;
            r->want[i] = out && (all_logits || (last_chunk && i == chunk - 1));
        }
        ks_batch b = {chunk, tokens + done, r->pos, r->seq, r->want, &sv, 1};
        float *dst = NULL;
        if (out)
            dst = all_logits ? out + (size_t)done * n_vocab : out;
        ks_status s = ks_forward_run(r->fwd, &b, dst, err);
        if (s)
            return s;
        r->n_past += chunk;
        done += chunk;
    }
    return KS_OK;
}
