/* runner.c — single-sequence synchronous evaluation over the KV cache (see runner.h). */
#include "engine/runner.h"

#include "core/threadpool.h"
#include "model/forward.h"
#include "tensor/types.h"

#include <stdlib.h>
#include <string.h>

#define KS_DEFAULT_CTX 4096      /* tokens, when the caller does not say */
#define KS_DEFAULT_BATCH 512     /* tokens per forward call: prefill chunk */

struct ks_runner {
    const ks_model *m;
    ks_runner_params p;
    ks_threadpool *tp;
    ks_kv_cache *cache;
    ks_forward *fwd;
    ks_kv_seq *seqs;        /* (n_seqs) */
    int32_t **tokens;       /* (n_seqs) x (n_ctx) each sequence's tokens */
    int cur;                /* the current sequence */
    /* batch arrays, (max(n_batch, n_seqs)) each; seq_idx all 0 (one sequence's chunks) */
    int32_t *pos, *seq_idx;
    uint8_t *want;
    /* a decode step's batch, (n_seqs) each: step_seq[j] = j */
    int32_t *step_tokens, *step_seq;
    ks_seq_view *views;
};

#define CUR_SEQ(r) (&(r)->seqs[(r)->cur])

void ks_runner_params_default(ks_runner_params *p) {
    memset(p, 0, sizeof *p);
    ks_kv_cache_params_default(&p->kv);
}

void ks_runner_destroy(ks_runner *r) {
    if (!r)
        return;
    for (int j = 0; r->seqs && j < r->p.n_seqs; j++) {
        if (r->cache)
            ks_kv_cache_release(r->cache, &r->seqs[j]);
        ks_kv_seq_deinit(&r->seqs[j]);
        if (r->tokens)
            free(r->tokens[j]);
    }
    ks_forward_destroy(r->fwd);
    ks_kv_cache_destroy(r->cache);
    ks_threadpool_destroy(r->tp);
    free(r->seqs);
    free(r->tokens);
    free(r->pos);
    free(r->seq_idx);
    free(r->step_tokens);
    free(r->step_seq);
    free(r->want);
    free(r->views);
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
    if (r->p.n_seqs <= 0)
        r->p.n_seqs = 1;
    if (r->p.n_seqs > KS_RUNNER_MAX_SEQS) {
        ks_status s = KS_ERRF(err, KS_ERR_INVALID, "%d sequences: at most %d", r->p.n_seqs, KS_RUNNER_MAX_SEQS);
        free(r);
        return s;
    }
    int n_seqs = r->p.n_seqs;
    r->seqs = calloc((size_t)n_seqs, sizeof *r->seqs);
    r->tokens = calloc((size_t)n_seqs, sizeof *r->tokens);
    if (!r->seqs || !r->tokens) {
        ks_runner_destroy(r);
        return KS_ERRF(err, KS_ERR_NOMEM, "out of memory");
    }
    for (int j = 0; j < n_seqs; j++)
        ks_kv_seq_init(&r->seqs[j]);
    r->tp = ks_threadpool_create(r->p.n_threads);
    r->p.n_threads = ks_threadpool_n_threads(r->tp);

    ks_kv_cache_params kvp = r->p.kv;
    if (kvp.ram_bytes == 0) {
        /* room for each sequence's context plus a block of slack */
        ks_kv_layout l;
        ks_status s = ks_kv_layout_init(&l, kvp.kv_type, kvp.block_tokens > 0 ? kvp.block_tokens : KS_KV_DEFAULT_BLOCK_TOKENS,
                                        m->hp.n_layer, m->hp.n_head_kv, m->hp.head_dim, err);
        if (s) {
            ks_runner_destroy(r);
            return s;
        }
        uint64_t blocks = ((uint64_t)r->p.n_ctx / (uint64_t)l.block_tokens + 2) * (uint64_t)n_seqs;
        uint64_t need = (blocks < 4 ? 4 : blocks) * l.block_bytes; /* the cache's minimum is 4 */
        kvp.ram_bytes = need;
    }
    ks_status s = ks_kv_cache_create(&r->cache, m, &kvp, err);
    if (!s)
        s = ks_forward_create(&r->fwd, m, ks_kv_cache_layout(r->cache), ks_kv_cache_pool_base(r->cache),
                              ks_kv_cache_pool_blocks(r->cache), KS_MAX(r->p.n_batch, n_seqs), r->p.n_ctx,
                              r->tp, err);
    if (!s) {
        size_t n_rows = (size_t)KS_MAX(r->p.n_batch, n_seqs);
        bool ok = true;
        for (int j = 0; j < n_seqs; j++)
            ok = ok && (r->tokens[j] = malloc((size_t)r->p.n_ctx * sizeof **r->tokens));
        r->pos = malloc(n_rows * sizeof *r->pos);
        r->seq_idx = calloc(n_rows, sizeof *r->seq_idx);
        r->want = malloc(n_rows);
        r->step_tokens = malloc((size_t)n_seqs * sizeof *r->step_tokens);
        r->step_seq = malloc((size_t)n_seqs * sizeof *r->step_seq);
        r->views = malloc((size_t)n_seqs * sizeof *r->views);
        if (!ok || !r->pos || !r->seq_idx || !r->want || !r->step_tokens || !r->step_seq || !r->views)
            s = KS_ERRF(err, KS_ERR_NOMEM, "out of memory");
        for (int j = 0; !s && j < n_seqs; j++)
            r->step_seq[j] = j;
    }
    if (s) {
        ks_runner_destroy(r);
        return s;
    }
    *out = r;
    return KS_OK;
}

void ks_runner_select(ks_runner *r, int j) {
    if (j >= 0 && j < r->p.n_seqs)
        r->cur = j;
}

int ks_runner_n_past(const ks_runner *r) { return r->seqs[r->cur].n_tokens; }
int ks_runner_n_seqs(const ks_runner *r) { return r->p.n_seqs; }
int ks_runner_n_ctx(const ks_runner *r) { return r->p.n_ctx; }
int ks_runner_n_threads(const ks_runner *r) { return r->p.n_threads; }
ks_kv_cache *ks_runner_cache(ks_runner *r) { return r->cache; }

void ks_runner_reset(ks_runner *r) { ks_kv_cache_release(r->cache, CUR_SEQ(r)); }

static ks_status check_tokens(const ks_runner *r, const int32_t *tokens, int n, int n_past, ks_err *err) {
    int n_vocab = r->m->hp.n_vocab;
    if (n < 1)
        return KS_ERRF(err, KS_ERR_INVALID, "nothing to evaluate: empty token list");
    if (n > r->p.n_ctx - n_past)
        return KS_ERRF(err, KS_ERR_INVALID, "%d tokens do not fit the context: %d of %d already used",
                       n, n_past, r->p.n_ctx);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= n_vocab)
            return KS_ERRF(err, KS_ERR_INVALID, "token id %d (at %d) is outside the vocabulary (0..%d)",
                           tokens[i], i, n_vocab - 1);
    return KS_OK;
}

/* Computes tokens [from, n) of the current sequence, in chunks; logits as ks_runner_eval
 * says. */
static ks_status compute(ks_runner *r, int from, int n, bool all_logits, float *out, ks_kv_usage *usage,
                         ks_err *err) {
    int n_vocab = r->m->hp.n_vocab;
    ks_kv_seq *seq = CUR_SEQ(r);
    int32_t *tokens = r->tokens[r->cur];
    ks_status s = ks_kv_cache_reserve(r->cache, seq, n, err);
    if (s)
        return s;
    for (int done = from; done < n;) {
        int chunk = KS_MIN(r->p.n_batch, n - done);
        bool last_chunk = done + chunk == n;
        for (int i = 0; i < chunk; i++) {
            r->pos[i] = done + i;
            r->want[i] = out && (all_logits || (last_chunk && i == chunk - 1));
        }
        ks_seq_view sv = {seq->blocks, seq->n_blocks};
        ks_batch b = {chunk, tokens + done, r->pos, r->seq_idx, r->want, &sv, 1};
        float *dst = NULL;
        if (out)
            dst = all_logits ? out + (size_t)(done - from) * n_vocab : out;
        if ((s = ks_forward_run(r->fwd, &b, dst, err)))
            return s;
        done += chunk;
        ks_kv_cache_commit(r->cache, seq, tokens, done, usage);
    }
    return KS_OK;
}

ks_status ks_runner_start(ks_runner *r, const int32_t *prompt, int n, float *last_logits,
                          ks_kv_usage *usage, ks_err *err) {
    ks_kv_usage local;
    if (!usage)
        usage = &local;
    memset(usage, 0, sizeof *usage);
    ks_runner_reset(r);
    ks_status s = check_tokens(r, prompt, n, 0, err);
    if (s)
        return s;
    memcpy(r->tokens[r->cur], prompt, (size_t)n * sizeof *prompt);
    if ((s = ks_kv_cache_attach(r->cache, CUR_SEQ(r), prompt, n, usage, err)))
        return s;
    int cached = CUR_SEQ(r)->n_tokens;
    usage->computed_tokens = n - cached;
    s = compute(r, cached, n, false, last_logits, usage, err);
    if (s)
        ks_runner_reset(r);
    return s;
}

ks_status ks_runner_eval(ks_runner *r, const int32_t *tokens, int n, bool all_logits, float *out,
                         ks_err *err) {
    int n_past = CUR_SEQ(r)->n_tokens;
    ks_status s = check_tokens(r, tokens, n, n_past, err);
    if (s)
        return s;
    memcpy(r->tokens[r->cur] + n_past, tokens, (size_t)n * sizeof *tokens);
    return compute(r, n_past, n_past + n, all_logits, out, NULL, err);
}

ks_status ks_runner_decode(ks_runner *r, const int32_t *tokens, float *logits, ks_err *err) {
    int n = r->p.n_seqs;
    ks_status s = KS_OK;
    for (int j = 0; j < n && !s; j++)
        s = check_tokens(r, tokens + j, 1, r->seqs[j].n_tokens, err);
    for (int j = 0; j < n && !s; j++)
        s = ks_kv_cache_reserve(r->cache, &r->seqs[j], r->seqs[j].n_tokens + 1, err);
    if (s)
        return s;
    for (int j = 0; j < n; j++) {
        int pos = r->seqs[j].n_tokens;
        r->tokens[j][pos] = tokens[j];
        r->step_tokens[j] = tokens[j];
        r->pos[j] = pos;
        r->want[j] = logits != NULL;
        r->views[j] = (ks_seq_view){r->seqs[j].blocks, r->seqs[j].n_blocks};
    }
    ks_batch b = {n, r->step_tokens, r->pos, r->step_seq, r->want, r->views, n};
    if ((s = ks_forward_run(r->fwd, &b, logits, err)))
        return s;
    for (int j = 0; j < n; j++)
        ks_kv_cache_commit(r->cache, &r->seqs[j], r->tokens[j], r->seqs[j].n_tokens + 1, NULL);
    return KS_OK;
}
