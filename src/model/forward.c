/* forward.c — the Qwen3 / Qwen3-MoE forward pass over a batch and the paged KV cache.
 *
 * Qwen3 layer over a batch of T tokens:
 *   h = rmsnorm(x) * attn_norm                          (T, n_embd)
 *   q = rope(qnorm(Wq h)); k = rope(knorm(Wk h)); v = Wv h
 *   K/V rows of every token -> its sequence's KV block
 *   x += Wo attn(q, paged K/V)                          (T, n_embd)
 *   h = rmsnorm(x) * ffn_norm
 *   x += Wdown(silu(Wgate h) * Wup h)                   dense, or
 *   x += sum_{e in topk(softmax(Wr h))} w_e Wdown_e(silu(Wgate_e h) * Wup_e h)   MoE
 * then logits = Wout(rmsnorm(x) * output_norm) for the tokens that want them.
 *
 * Divisions: scratch, elementwise ops (norm, rope, silu), matmul (weights read once per
 * batch: each thread dequantizes a row and dots it with all T inputs), MoE routing and
 * expert FFNs, the layer loop, run(). Attention and the KV writes are attention.c's. */
#include "model/forward.h"

#include "model/attention.h"

#include "tensor/kernels.h"
#include "tensor/types.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- scratch -------------------------------------------------------------------------- */

/* Most tokens whose MoE FFN runs as one batch of matmuls (ffn_moe_few): decode steps of
 * up to four sequences, where an expert meets at most a few tokens. */
#define MOE_FEW_TOKENS 4

struct ks_forward {
    const ks_model *m;
    ks_kv_layout kv;
    uint8_t *kv_pool;
    int32_t n_pool_blocks;
    int max_tokens, n_ctx;
    ks_threadpool *tp;
    const ks_kernels *k;
    int nth;

    float *x;        /* (T, n_embd) residual stream */
    float *h;        /* (T, n_embd) normed input of a sub-layer */
    float *q;        /* (T, n_head * head_dim) */
    float *kc;       /* (T, n_head_kv * head_dim) this batch's keys */
    float *vc;       /* (T, n_head_kv * head_dim) this batch's values */
    float *attn;     /* (T, n_head * head_dim) attention output */
    float *g, *u;    /* (T, ff) gate and up activations (ff = max(n_ff, n_ff_exp)); a few
                      * tokens' rows of each of their experts */
    float *ffn_out;  /* (T, n_embd) */
    /* MoE */
    float *router;   /* (T, n_expert) */
    int32_t *sel;    /* (T, n_expert_used) selected experts */
    float *sel_w;    /* (T, n_expert_used) their weights */
    int32_t *rows;   /* (T) tokens routed to the current expert; (few T x K) to each expert */
    float *rows_w;   /* (T) their weights */
    float *xe;       /* (T, n_embd) gathered inputs of one expert (of each, for a few tokens) */
    float *ye;       /* (T, n_embd) one expert's outputs (each's, for a few tokens) */
    /* output */
    int32_t *out_rows; /* (T) batch indices of tokens wanting logits */
    float *xo;         /* (T, n_embd) their normed final states */
    uint8_t *xq;       /* (T, max_row) activations converted to a weight's dot type */
    uint8_t *xq4;      /* groups of 4 rows of xq packed for a vec_dot_4_packed kernel */
    uint8_t *xqp;      /* (T) each row of xq's pack_act bytes for a panel GEMV */
    void *gemm_act;    /* activations in a GEMM kernel's layout (NULL: no GEMM kernels) */
    void **gemm_scratch; /* (nth) per-thread GEMM scratch */
    struct share_plan *shares; /* (nth) the threads' shares of a GEMV dispatch */
    float *rope_cs;      /* (nth, head_dim) per-thread cos | sin of one position's angles */
    struct {             /* what xq / gemm_act hold now */
        const float *x;
        int n_in, T;
        uint32_t act_type;
        const ks_gemm_kernel *gemm;
        const ks_dot4_packed *dot4p;
        const ks_panel_kernels *panel;
    } converted;

    ks_attention *attn_op;
    float rope_theta_scale; /* base^(-2/head_dim) */
};

static size_t share_plan_bytes(void);

static int round_up(int v, int m) { return (v + m - 1) / m * m; }

static float *falloc(size_t n, bool *ok) {
    float *p = malloc((n ? n : 1) * sizeof(float));
    if (!p)
        *ok = false;
    return p;
}

void ks_forward_destroy(ks_forward *f) {
    if (!f)
        return;
    float *bufs[] = {f->x, f->h, f->q, f->kc, f->vc, f->attn, f->g, f->u, f->ffn_out, f->router,
                     f->sel_w, f->rows_w, f->xe, f->ye, f->xo};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        free(bufs[i]);
    free(f->sel);
    free(f->rows);
    free(f->out_rows);
    free(f->xq);
    free(f->xq4);
    free(f->xqp);
    free(f->gemm_act);
    free(f->rope_cs);
    if (f->gemm_scratch)
        for (int i = 0; i < f->nth; i++)
            free(f->gemm_scratch[i]);
    free(f->gemm_scratch);
    free(f->shares);
    ks_attention_destroy(f->attn_op);
    free(f);
}

ks_status ks_forward_create(ks_forward **out, const ks_model *m, const ks_kv_layout *kv,
                            uint8_t *kv_pool, int32_t n_pool_blocks, int max_tokens, int n_ctx,
                            ks_threadpool *tp, ks_err *err) {
    const ks_hparams *hp = &m->hp;
    if (max_tokens < 1 || n_ctx < 1)
        return KS_ERRF(err, KS_ERR_INVALID, "batch size %d and context %d must be positive", max_tokens, n_ctx);
    if (kv->n_layer != hp->n_layer || kv->row_elems != (int64_t)hp->n_head_kv * hp->head_dim)
        return KS_ERRF(err, KS_ERR_INVALID, "KV layout does not match the model");
    ks_forward *f = calloc(1, sizeof *f);
    if (!f)
        return KS_ERRF(err, KS_ERR_NOMEM, "out of memory for the forward pass");
    f->m = m;
    f->kv = *kv;
    f->kv_pool = kv_pool;
    f->n_pool_blocks = n_pool_blocks;
    f->max_tokens = max_tokens;
    f->n_ctx = n_ctx;
    f->tp = tp;
    f->k = ks_kernels_get();
    f->nth = ks_threadpool_n_threads(tp);

    size_t T = (size_t)max_tokens;
    size_t q_dim = (size_t)hp->n_head * hp->head_dim, kv_dim = (size_t)hp->n_head_kv * hp->head_dim;
    size_t ff = (size_t)KS_MAX(hp->n_ff, hp->n_ff_exp);
    size_t n_exp = (size_t)KS_MAX(hp->n_expert, 1), n_used = (size_t)KS_MAX(hp->n_expert_used, 1);
    bool ok = true;
    f->x = falloc(T * hp->n_embd, &ok);
    f->h = falloc(T * hp->n_embd, &ok);
    f->q = falloc(T * q_dim, &ok);
    f->kc = falloc(T * kv_dim, &ok);
    f->vc = falloc(T * kv_dim, &ok);
    f->attn = falloc(T * q_dim, &ok);
    /* g, u, xe, ye, rows, xq and xqp also hold a few tokens' n_expert_used rows each
     * (ffn_moe_few) */
    size_t Tm = KS_MAX(T, n_used * MOE_FEW_TOKENS);
    f->g = falloc(Tm * ff, &ok);
    f->u = falloc(Tm * ff, &ok);
    f->ffn_out = falloc(T * hp->n_embd, &ok);
    f->router = falloc(T * n_exp, &ok);
    f->sel_w = falloc(T * n_used, &ok);
    f->rows_w = falloc(Tm, &ok);
    f->xe = falloc(Tm * hp->n_embd, &ok);
    f->ye = falloc(Tm * hp->n_embd, &ok);
    f->xo = falloc(T * hp->n_embd, &ok);
    f->sel = malloc(T * n_used * sizeof *f->sel);
    f->rows = malloc(Tm * sizeof *f->rows);
    f->out_rows = malloc(T * sizeof *f->out_rows);
    f->rope_cs = falloc((size_t)f->nth * hp->head_dim, &ok);
    f->shares = aligned_alloc(KS_CACHE_LINE_BYTES, (size_t)f->nth * share_plan_bytes());
    ok = ok && f->sel && f->rows && f->out_rows && f->shares;
    /* the widest row a thread dequantizes: a weight row (n_embd, q_dim or ff elements) */
    size_t max_row = KS_MAX(KS_MAX((size_t)hp->n_embd, q_dim), KS_MAX(ff, kv_dim));
    /* converted activations take at most 4 bytes an element (F32); KS_VEC_DOT_ROWS - 1
     * rows more for a last group of tokens short of a 4-row dot product's (matmul_row_tokens:
     * spare rows whatever they hold, as their results are dropped) */
    f->xq = calloc((Tm + KS_VEC_DOT_ROWS - 1) * max_row, sizeof(float));
    ok = ok && f->xq;
    /* packed groups of 4 rows: the largest any weight type's packing needs, 64-aligned */
    size_t packed = 0;
    for (int ty = 0; ty < KS_TYPE_COUNT; ty++)
        if (f->k->vec_dot_4_packed[ty].run)
            packed = KS_MAX(packed, f->k->vec_dot_4_packed[ty].bytes((int64_t)max_row));
    packed = (packed + 63) & ~(size_t)63;
    if (packed) {
        f->xq4 = aligned_alloc(64, (T + KS_VEC_DOT_ROWS - 1) / KS_VEC_DOT_ROWS * packed);
        ok = ok && f->xq4;
    }
    /* each token's bytes for a panel GEMV: the largest any weight type needs */
    size_t panel_act = 0;
    for (int ty = 0; ty < KS_TYPE_COUNT; ty++)
        if (f->k->panel[ty].gemv)
            panel_act = KS_MAX(panel_act, f->k->panel[ty].act_bytes((int64_t)max_row));
    if (panel_act) {
        f->xqp = malloc(Tm * panel_act);
        ok = ok && f->xqp;
    }
    /* GEMM kernels' activation buffer and scratch: the largest any weight type needs, in
     * rows or in panels */
    size_t gemm_act = 0, gemm_scratch = 0;
    for (int ty = 0; ty < KS_TYPE_COUNT; ty++)
        for (int in_panels = 0; in_panels < 2; in_panels++) {
            const ks_gemm_kernel *g = in_panels ? &f->k->panel[ty].gemm : &f->k->gemm[ty];
            if (g->run) {
                gemm_act = KS_MAX(gemm_act, g->act_bytes(max_tokens, (int64_t)max_row));
                gemm_scratch = KS_MAX(gemm_scratch, g->scratch_bytes((int64_t)max_row));
            }
        }
    if (ok && gemm_act) {
        f->gemm_act = aligned_alloc(64, (gemm_act + 63) / 64 * 64);
        f->gemm_scratch = calloc((size_t)f->nth, sizeof *f->gemm_scratch);
        ok = f->gemm_act && f->gemm_scratch;
        for (int i = 0; ok && i < f->nth; i++)
            ok = (f->gemm_scratch[i] = malloc(gemm_scratch)) != NULL;
    }
    if (!ok) {
        ks_forward_destroy(f);
        return KS_ERRF(err, KS_ERR_NOMEM, "out of memory for forward scratch (%d tokens)", max_tokens);
    }
    ks_status s = ks_attention_create(&f->attn_op, hp, kv, n_ctx, f->nth, err);
    if (s) {
        ks_forward_destroy(f);
        return s;
    }
    f->rope_theta_scale = powf(hp->rope_theta, -2.0f / (float)hp->head_dim);
    *out = f;
    return KS_OK;
}

/* ---- elementwise ops, split across threads ------------------------------------------------ */

/* cos and sin of the NeoX rotation angles of one position: element i pairs with
 * i + d/2 at angle pos * base^(-2i/d). The angles are formed as llama.cpp forms them (a
 * float running product of theta_scale = base^(-2/d)), so that long positions rotate by
 * exactly the same angles as in the models' reference implementation. */
static void rope_angles(int pos, int half, float theta_scale, float *c, float *s) {
    float theta = (float)pos;
    for (int i = 0; i < half; i++) {
        c[i] = cosf(theta);
        s[i] = sinf(theta);
        theta *= theta_scale;
    }
}

static void rope_rotate(float *v, int half, const float *c, const float *s) {
    for (int i = 0; i < half; i++) {
        float a = v[i], b = v[i + half];
        v[i] = a * c[i] - b * s[i];
        v[i + half] = a * s[i] + b * c[i];
    }
}

typedef struct rows_task {
    ks_forward *f;
    const ks_batch *b;
    const ks_layer *l;
    const float *x, *w; /* norm: T rows of n, the norm weight */
    float *y;
    int n, T;
    float *g;           /* swiglu: g = silu(g) * u over n_elems */
    const float *u;
    size_t n_elems;
} rows_task;

static void norm_worker(void *arg, int ith, int nth) {
    rows_task *rt = arg;
    long t0, t1;
    ks_split_range(rt->T, ith, nth, &t0, &t1);
    for (long t = t0; t < t1; t++)
        rt->f->k->rmsnorm_f32(rt->x + (size_t)t * rt->n, rt->w, rt->y + (size_t)t * rt->n, rt->n,
                              rt->f->m->hp.rms_eps);
}

/* y (T, n) = rmsnorm(x) * w, row by row. */
static void norm_rows(ks_forward *f, const float *x, const float *w, float *y, int n, int T) {
    rows_task rt = {.f = f, .x = x, .w = w, .y = y, .n = n, .T = T};
    if (T > 1)
        ks_threadpool_run(f->tp, norm_worker, &rt);
    else
        norm_worker(&rt, 0, 1);
}

/* Per token: QK-norm and RoPE on every query and key head (angles formed once a token). */
static void qk_worker(void *arg, int ith, int nth) {
    rows_task *rt = arg;
    ks_forward *f = rt->f;
    const ks_hparams *hp = &f->m->hp;
    int hd = hp->head_dim, half = hd / 2;
    float *c = f->rope_cs + (size_t)ith * hd, *s = c + half;
    long t0, t1;
    ks_split_range(rt->b->n_tokens, ith, nth, &t0, &t1);
    for (long t = t0; t < t1; t++) {
        rope_angles(rt->b->pos[t], half, f->rope_theta_scale, c, s);
        for (int h = 0; h < hp->n_head + hp->n_head_kv; h++) {
            bool is_q = h < hp->n_head;
            float *v = is_q ? f->q + ((size_t)t * hp->n_head + h) * hd
                            : f->kc + ((size_t)t * hp->n_head_kv + (h - hp->n_head)) * hd;
            if (hp->qk_norm)
                f->k->rmsnorm_f32(v, is_q ? rt->l->q_norm.data : rt->l->k_norm.data, v, hd, hp->rms_eps);
            rope_rotate(v, half, c, s);
        }
    }
}

static void swiglu_worker(void *arg, int ith, int nth) {
    rows_task *rt = arg;
    long c0, c1; /* in chunks of 64 elements */
    ks_split_range((long)((rt->n_elems + 63) / 64), ith, nth, &c0, &c1);
    size_t i0 = (size_t)c0 * 64, i1 = KS_MIN((size_t)c1 * 64, rt->n_elems);
    if (i0 < i1)
        rt->f->k->swiglu_f32(rt->g + i0, rt->u + i0, rt->g + i0, (int64_t)(i1 - i0));
}

/* g = silu(g) * u over n elements. */
static void swiglu(ks_forward *f, float *g, const float *u, size_t n) {
    rows_task rt = {.f = f, .g = g, .u = u, .n_elems = n};
    if (n >= 4096)
        ks_threadpool_run(f->tp, swiglu_worker, &rt);
    else
        swiglu_worker(&rt, 0, 1);
}

/* ---- matmul ------------------------------------------------------------------------------- */

/* y (T, n_out) = x (T, n_in) . W^T for rows [row0, row0 + n_out) of W (row0 selects an
 * expert's slice of a 3-D weight); y rows have stride ldy.
 *
 * The activations are first converted to the weight type's dot type (Q8_0, Q8_1, Q8_K,
 * F16, BF16 or F32), exactly as llama.cpp does, the tokens split across the threads.
 * Then each thread takes a contiguous range of weight rows, so the weights are read once
 * per batch: with a tile GEMM for the type (AMX) when the batch has enough tokens to
 * fill its tiles, else dotting each row with all T converted inputs, four at a time (over
 * the inputs packed once more, for the kernel, where the table has a packed 4-row one). */

/* Fewest tokens for which a GEMM kernel beats four-token dot products. */
#define GEMM_MIN_TOKENS 5
/* Fewest tokens a 4-row dot product takes, over spare rows for the rest: where one pass
 * over the weight row costs less than a 1-row pass for each (decode steps, 2 threads:
 * Qwen3-0.6B Q8_0, 3 sequences 91 -> 75 ms a step). Two tokens go through the two-row
 * kernel, both at once (matmul_rows_2w: 2 sequences of Qwen3-0.6B Q8_0 59 -> 67 t/s, of
 * Q4_K_M 78 -> 99, against the packed 4-row kernel with two rows spare). The results are
 * the same, bit for bit. */
#define DOT4_MIN_TOKENS 3
#define DOT4_PACKED_MIN_TOKENS 3

typedef struct matmul_task {
    ks_forward *f;
    const ks_weight *w;
    int64_t row0;
    int n_in, n_out, T;
    const float *x;            /* (T, n_in) inputs */
    uint32_t act_type;         /* the weight type's dot type */
    size_t act_row_bytes;
    const ks_gemm_kernel *gemm; /* NULL: vec_dot */
    const ks_dot4_packed *dot4p; /* vec_dot_4 over packed rows (xq4), or NULL */
    size_t packed_bytes;        /* of one packed group */
    const ks_panel_kernels *panel; /* GEMV over the weight's panels (with xqp), or NULL */
    size_t panel_act_bytes;     /* xqp bytes a token */
    const uint8_t *xq;          /* the converted inputs (f->xq, or a row of it) */
    const uint8_t *xqp;         /* their pack_act bytes for a panel GEMV (f->xqp, or a row of it) */
    float *y;
    int ldy;
} matmul_task;

static void quantize_worker(void *arg, int ith, int nth) {
    matmul_task *mt = arg;
    ks_forward *f = mt->f;
    int rows = mt->gemm ? round_up(mt->T, KS_GEMM_ROWS) : mt->T;
    long t0, t1;
    ks_split_range(rows, ith, nth, &t0, &t1);
    for (long t = t0; t < t1; t++) {
        uint8_t *xq = f->xq + (size_t)t * mt->act_row_bytes;
        if (t < mt->T) {
            f->k->quantize_act[mt->act_type](mt->x + (size_t)t * mt->n_in, xq, mt->n_in);
            if (mt->panel)
                mt->panel->pack_act(xq, mt->n_in, f->xqp + (size_t)t * mt->panel_act_bytes);
        }
        if (mt->gemm)
            mt->gemm->pack_act(t < mt->T ? xq : NULL, (int)t, mt->T, mt->n_in, f->gemm_act);
    }
}

/* Groups of 4 converted rows into xq4 for the packed 4-row kernel, a last group of at
 * least DOT4_PACKED_MIN_TOKENS too (missing rows pack as zeros); split across the threads by
 * group. */
static void pack4_worker(void *arg, int ith, int nth) {
    matmul_task *mt = arg;
    int groups = (mt->T + KS_VEC_DOT_ROWS - DOT4_PACKED_MIN_TOKENS) / KS_VEC_DOT_ROWS;
    long g0, g1;
    ks_split_range(groups, ith, nth, &g0, &g1);
    for (long g = g0; g < g1; g++) {
        const void *rows[KS_VEC_DOT_ROWS];
        for (int j = 0; j < KS_VEC_DOT_ROWS; j++) {
            int t = (int)g * KS_VEC_DOT_ROWS + j;
            rows[j] = t < mt->T ? mt->f->xq + (size_t)t * mt->act_row_bytes : NULL;
        }
        mt->dot4p->pack(rows, mt->n_in, mt->f->xq4 + (size_t)g * mt->packed_bytes);
    }
}

/* Dot products visit a thread's rows alternately from ROW_STREAMS equal parts of its
 * range: two streams of weights read at distant places keep more of the memory's banks
 * busy than one stream, which a dot product reads too slowly to do alone (decode, 2
 * threads: Qwen3-0.6B Q8_0 +12%, Q4_K_M +11%, the 30B-A3B shape's Q4_K_M +7% and Q8_0
 * +16%; three parts measured no better). Visit i reads row stream_row(r0, per, i), per
 * rows a part. */
#define ROW_STREAMS 2
static inline long stream_row(long r0, long per, long i) {
    return r0 + (i % ROW_STREAMS) * per + i / ROW_STREAMS;
}

/* How far ahead a kernel asks for the weights it reads next (kernels.h: pf of vec_dot_2w
 * and the packed vec_dot_4): the row of each stream this many bytes on, so that a request
 * is made about a memory latency before the row is needed (decode, 2 threads: Qwen3-0.6B
 * Q8_0, rows of 1088 bytes, 1 or 2 rows ahead alike, 4 slower; the 30B-A3B shape's Q8_0,
 * 2176 bytes, 1 row better than 2; its Q4_K_M, 1152 bytes, 2 rows better than 1). */
#define PREFETCH_AHEAD_BYTES 2048
static inline long rows_ahead(size_t row_bytes) {
    return KS_MAX(1, (long)((PREFETCH_AHEAD_BYTES + row_bytes - 1) / row_bytes));
}

/* The rows [r0, r1) of a thread's share with a two-row kernel, for tokens that meet every
 * row two at a time (each call takes one row of each of the ROW_STREAMS (2) parts and up
 * to two tokens), asking for the rows rows_ahead() further on in each part as it goes. */
_Static_assert(ROW_STREAMS == 2, "matmul_rows_2w pairs a row of each of two streams");
static void matmul_rows_2w(const matmul_task *mt, ks_vec_dot_2w_fn dot2, const uint8_t *w, long r0, long r1,
                           long per) {
    const size_t rb = mt->w->row_bytes;
    const uint8_t *xq = mt->xq;
    const long ahead = rows_ahead(rb);
    for (long i = 0; i < per; i++) {
        const long ra = r0 + i, rbw = r0 + per + i;
        const long na = ra + ahead, nbw = rbw + ahead;
        /* the first tokens' call asks for the next rows; the others' find them asked for */
        const void *const pf[2] = {na < r0 + per ? w + (size_t)na * rb : NULL, nbw < r1 ? w + (size_t)nbw * rb : NULL};
        for (int t = 0; t < mt->T; t += 2) {
            const uint8_t *a = xq + (size_t)t * mt->act_row_bytes;
            const int nt = KS_MIN(2, mt->T - t);
            if (rbw < r1) {
                float out[4];
                dot2(w + (size_t)ra * rb, w + (size_t)rbw * rb, a, mt->act_row_bytes, nt, mt->n_in, out,
                     t == 0 ? pf : NULL);
                for (int j = 0; j < nt; j++) {
                    mt->y[(size_t)(t + j) * mt->ldy + ra] = out[j];
                    mt->y[(size_t)(t + j) * mt->ldy + rbw] = out[nt + j];
                }
            } else {
                for (int j = 0; j < nt; j++)
                    mt->y[(size_t)(t + j) * mt->ldy + ra] =
                        mt->f->k->vec_dot[mt->w->type](w + (size_t)ra * rb, a + (size_t)j * mt->act_row_bytes, mt->n_in);
            }
        }
    }
}

/* Panels [p0, p1) with the panel GEMV, up to four tokens a call: the range in two
 * halves, read side by side as two streams (as matmul_rows_2w reads rows), a panel of each
 * per call, each stream's next panel given for the kernel to ask for ahead. Of those
 * panel_visits() calls (visits), this runs [i0, i1). */
static long panel_visits(long p0, long p1) { return (p1 - p0 + 1) / 2; }

static void matmul_panels(const matmul_task *mt, const uint8_t *w, long p0, long p1, long i0, long i1) {
    const size_t pb = KS_PANEL_ROWS * mt->w->row_bytes;
    const long per = panel_visits(p0, p1);
    for (long i = i0; i < i1; i++) {
        const long pa = p0 + i, pbk = p0 + per + i;
        const void *panels[2] = {w + (size_t)pa * pb, pbk < p1 ? w + (size_t)pbk * pb : NULL};
        const void *next[2] = {i + 1 < per ? w + (size_t)(pa + 1) * pb : NULL,
                               pbk + 1 < p1 ? w + (size_t)(pbk + 1) * pb : NULL};
        for (int t = 0; t < mt->T; t += KS_VEC_DOT_ROWS) {
            float *y = mt->y + (size_t)t * mt->ldy;
            float *const ys[2] = {y + (size_t)pa * KS_PANEL_ROWS, y + (size_t)pbk * KS_PANEL_ROWS};
            /* the first tokens' call asks for what comes next; the others find it asked for */
            const int nt = KS_MIN(KS_VEC_DOT_ROWS, mt->T - t);
            const void *const *ask = t > 0 ? NULL : next;
            mt->panel->gemv(panels, ask, mt->xq + (size_t)t * mt->act_row_bytes, mt->act_row_bytes,
                            mt->xqp + (size_t)t * mt->panel_act_bytes, mt->panel_act_bytes,
                            nt, mt->n_in, ys, (size_t)mt->ldy);
        }
    }
}

/* Rows [r0, r1) of the task's weight with the dot-product kernels (no GEMM). */
static void matmul_rows(const matmul_task *mt, const uint8_t *w, long r0, long r1);

/* The rows a share of a task is counted in: panels of 16, or single rows. */
static long matmul_unit_rows(const matmul_task *mt) { return mt->panel ? KS_PANEL_ROWS : 1; }

/* A share of a task with a GEMM kernel: a range of its tiles of rows. */
static void matmul_gemm_worker(void *arg, int ith, int nth) {
    matmul_task *mt = arg;
    long u0, u1;
    const uint8_t *w = (const uint8_t *)mt->w->data + (size_t)mt->row0 * mt->w->row_bytes;
    ks_split_range((mt->n_out + KS_GEMM_ROWS - 1) / KS_GEMM_ROWS, ith, nth, &u0, &u1);
    int64_t r0 = (int64_t)u0 * KS_GEMM_ROWS, r1 = KS_MIN((int64_t)u1 * KS_GEMM_ROWS, (int64_t)mt->n_out);
    if (r0 < r1)
        mt->gemm->run(w, mt->w->row_bytes, r0, r1, mt->f->gemm_act, mt->T, mt->n_in, mt->y, (size_t)mt->ldy,
                      mt->f->gemm_scratch[ith]);
}

/* Prefill over rows: the rows in tiles of about ROW_TILE_BYTES of weights, each tile met
 * by every group of four tokens in turn, so that a tile is read from memory once and
 * then from the core's L2 while the tokens' converted rows stream past it (row after row
 * against all the tokens read the whole batch of activations, 557 KB for 512 tokens of
 * Qwen3-0.6B's 1024 inputs in Q8_0, from the shared cache for every row: Qwen3-0.6B
 * Q4_K_M pp512 on a Zen 3 VM, AVX2, 78 -> 88 t/s). The results are the same bits: each
 * row and token is one dot product whatever the order. */
#define ROW_TILE_BYTES (64 * 1024)
#define ROW_TILE_MIN_TOKENS 16

/* Tokens [t, t1) of row r (t a multiple of 4), four to a call where the table has a
 * 4-row kernel (a last three over a spare row: xq and xq4 have them past any batch), the
 * rest one at a time; the first call asks for the row pf as it goes (NULL: none). */
static void matmul_row_tokens(const matmul_task *mt, const uint8_t *wr, long r, int t, int t1, const void *pf) {
    ks_vec_dot_fn dot = mt->f->k->vec_dot[mt->w->type];
    ks_vec_dot_4_fn dot4 = mt->f->k->vec_dot_4[mt->w->type];
    const size_t ab = mt->act_row_bytes;
    float out[KS_VEC_DOT_ROWS];
    if (mt->dot4p) {
        for (; t + DOT4_PACKED_MIN_TOKENS <= t1; t += KS_VEC_DOT_ROWS) {
            mt->dot4p->run(wr, mt->f->xq4 + (size_t)(t / KS_VEC_DOT_ROWS) * mt->packed_bytes, mt->n_in, out, pf);
            pf = NULL;
            for (int j = 0; j < KS_VEC_DOT_ROWS && t + j < t1; j++)
                mt->y[(size_t)(t + j) * mt->ldy + r] = out[j];
        }
        t = KS_MIN(t, t1);
    } else if (dot4) {
        for (; t + DOT4_MIN_TOKENS <= t1; t += KS_VEC_DOT_ROWS) {
            dot4(wr, mt->xq + (size_t)t * ab, ab, mt->n_in, out, pf);
            pf = NULL;
            for (int j = 0; j < KS_VEC_DOT_ROWS && t + j < t1; j++)
                mt->y[(size_t)(t + j) * mt->ldy + r] = out[j];
        }
        t = KS_MIN(t, t1);
    }
    for (; t < t1; t++)
        mt->y[(size_t)t * mt->ldy + r] = dot(wr, mt->xq + (size_t)t * ab, mt->n_in);
}

static void matmul_rows_tiled(const matmul_task *mt, const uint8_t *w, long r0, long r1) {
    const size_t rb = mt->w->row_bytes;
    const long tile = KS_MAX(1, (long)(ROW_TILE_BYTES / rb));
    for (long ra = r0; ra < r1; ra += tile) {
        const long re = KS_MIN(r1, ra + tile);
        for (int t = 0, t1; t < mt->T; t = t1) {
            /* groups of four tokens, the last taking those left over */
            t1 = mt->T - t < 2 * KS_VEC_DOT_ROWS ? mt->T : t + KS_VEC_DOT_ROWS;
            for (long r = ra; r < re; r++)
                matmul_row_tokens(mt, w + (size_t)r * rb, r, t, t1, NULL);
        }
    }
}

static void matmul_rows(const matmul_task *mt, const uint8_t *w, long r0, long r1) {
    if (mt->T >= ROW_TILE_MIN_TOKENS && (mt->dot4p || mt->f->k->vec_dot_4[mt->w->type])) {
        matmul_rows_tiled(mt, w, r0, r1);
        return;
    }
    ks_vec_dot_fn dot = mt->f->k->vec_dot[mt->w->type];
    ks_vec_dot_4_fn dot4 = mt->f->k->vec_dot_4[mt->w->type];
    const uint8_t *xq = mt->xq;
    const size_t rb = mt->w->row_bytes;
    /* the rows go alternately from the ROW_STREAMS parts of the thread's range */
    const long per = (r1 - r0 + ROW_STREAMS - 1) / ROW_STREAMS, visits = ROW_STREAMS * per;
    /* One or two tokens take two rows per call: the rows of 32-element
     * blocks wait on one chain of FMAs, a block after another (two chains side by side:
     * Q8_0 1.5-2x in L2); and the kernel asks for the next rows as it goes (decode, 2
     * threads, against whole rows asked for before each call: Qwen3-0.6B Q8_0 +10%, the
     * 30B-A3B shape's Q8_0 +19%, its Q4_K_M +15%) */
    ks_vec_dot_2w_fn dot2 = mt->f->k->vec_dot_2w[mt->w->type];
    if (dot2 && !mt->dot4p && (!dot4 || mt->T < DOT4_MIN_TOKENS)) {
        matmul_rows_2w(mt, dot2, w, r0, r1, per);
        return;
    }
    for (long i = 0; i < visits; i++) {
        const long r = stream_row(r0, per, i);
        if (r >= r1)
            continue; /* the last part is short */
        const uint8_t *wr = w + (size_t)r * rb;
        /* the 4-row kernels ask for the row of this stream rows_ahead() on as they go (as
         * matmul_rows_2w; 4 sequences of Qwen3-0.6B Q8_0: +8%) */
        const long vn = i + ROW_STREAMS * rows_ahead(rb);
        const long rn = vn < visits ? stream_row(r0, per, vn) : r1;
        const void *pf = rn < r1 ? w + (size_t)rn * rb : NULL;
        if (mt->dot4p || (dot4 && mt->T >= DOT4_MIN_TOKENS)) {
            /* four tokens per pass over the row: the row is decoded once for all four
             * (packed once for the kernel where the table has a packed one) */
            matmul_row_tokens(mt, wr, r, 0, mt->T, pf);
            continue;
        } else {
            /* one token at a time (a table without two-row kernels): a row visited soon is
             * asked for while this one is computed, the next visit's, or for rows under 1
             * KiB the one after (decode, 2 threads: Q8_0 +9%, Q4_K_M 2x) */
            const long ahead = rb < 1024 ? 2 : 1;
            const long rv = i + ahead < visits ? stream_row(r0, per, i + ahead) : r1;
            if (rv < r1)
                for (size_t o = 0; o < rb; o += 64)
                    __builtin_prefetch(w + (size_t)rv * rb + o, 0, 3);
        }
        for (int t = 0; t < mt->T; t++)
            mt->y[(size_t)t * mt->ldy + r] = dot(wr, xq + (size_t)t * mt->act_row_bytes, mt->n_in);
    }
}

/* The task of y (T, n_out) = x (T, n_in) . W^T over rows [row0, row0 + n_out) of W, its
 * kernels chosen (gemv_only: no GEMM and no packed 4-row kernel, as for one token), its
 * inputs to be converted into f->xq (and f->xqp). */
static matmul_task matmul_plan(ks_forward *f, const ks_weight *w, int64_t row0, const float *x, int n_in, float *y,
                               int n_out, int ldy, int T, bool gemv_only) {
    uint32_t act = ks_type_traits_of(w->type)->dot_type;
    const ks_gemm_kernel *gemm = w->panels ? &f->k->panel[w->type].gemm : &f->k->gemm[w->type];
    const ks_dot4_packed *dot4p = &f->k->vec_dot_4_packed[w->type];
    matmul_task mt = {
        .f = f, .w = w, .row0 = row0, .n_in = n_in, .n_out = n_out, .T = T, .x = x,
        .act_type = act, .act_row_bytes = ks_type_row_size((ks_type)act, n_in, NULL),
        .gemm = !gemv_only && gemm->run && T >= GEMM_MIN_TOKENS && n_out >= KS_GEMM_ROWS && f->gemm_act ? gemm : NULL,
        .xq = f->xq, .xqp = f->xqp, .y = y, .ldy = ldy,
    };
    if (w->panels && !mt.gemm) {
        mt.panel = &f->k->panel[w->type];
        mt.panel_act_bytes = mt.panel->act_bytes(n_in);
    } else if (!gemv_only && !mt.gemm && dot4p->run && f->xq4 && T >= DOT4_PACKED_MIN_TOKENS) {
        mt.dot4p = dot4p;
        mt.packed_bytes = (dot4p->bytes(n_in) + 63) & ~(size_t)63;
    }
    return mt;
}

/* True if b reads its inputs converted as a's are (the same dot type and kernel layout). */
static bool same_conversion(const matmul_task *a, const matmul_task *b) {
    return a->n_in == b->n_in && a->T == b->T && a->act_type == b->act_type && a->gemm == b->gemm &&
           a->dot4p == b->dot4p && a->panel == b->panel;
}

/* Converts the task's inputs into f->xq (f->xqp, f->xq4, f->gemm_act) unless they hold
 * them already (same_input: x is what the previous conversion read). */
static void matmul_convert(ks_forward *f, matmul_task *mt, bool same_input) {
    bool reuse = same_input && f->converted.x == mt->x && f->converted.n_in == mt->n_in && f->converted.T == mt->T &&
                 f->converted.act_type == mt->act_type && f->converted.gemm == mt->gemm &&
                 f->converted.dot4p == mt->dot4p && f->converted.panel == mt->panel;
    if (reuse)
        return;
    if (mt->T > 1)
        ks_threadpool_run(f->tp, quantize_worker, mt);
    else
        quantize_worker(mt, 0, 1);
    f->converted.x = mt->x;
    f->converted.n_in = mt->n_in;
    f->converted.T = mt->T;
    f->converted.act_type = mt->act_type;
    f->converted.gemm = mt->gemm;
    f->converted.dot4p = mt->dot4p;
    f->converted.panel = mt->panel;
    if (mt->dot4p) {
        if (mt->T > 2 * KS_VEC_DOT_ROWS)
            ks_threadpool_run(f->tp, pack4_worker, mt);
        else
            pack4_worker(mt, 0, 1);
    }
}

/* same_input: x holds what the previous matmul call converted (wk and wv after wq, up
 * after gate): its conversion is reused when it was made for the same dot type and
 * kernel layout. */
static void matmul_run_batch(ks_forward *f, const matmul_task *jobs, int n);

static void matmul_ex(ks_forward *f, const ks_weight *w, int64_t row0, const float *x, int n_in,
                      float *y, int n_out, int ldy, int T, bool same_input) {
    matmul_task mt = matmul_plan(f, w, row0, x, n_in, y, n_out, ldy, T, false);
    matmul_convert(f, &mt, same_input);
    if (mt.gemm)
        ks_threadpool_run(f->tp, matmul_gemm_worker, &mt);
    else
        matmul_run_batch(f, &mt, 1);
}

static void matmul(ks_forward *f, const ks_weight *w, int64_t row0, const float *x, int n_in, float *y,
                   int n_out, int ldy, int T) {
    matmul_ex(f, w, row0, x, n_in, y, n_out, ldy, T, false);
}

/* Matmuls without GEMM kernels (matmul_plan's gemv_only, or plans that took none) run in
 * one dispatch: their weight bytes are split evenly across the threads, each thread
 * taking the units (rows or panels) that start in its share, job after job. Between small
 * matmuls (a MoE layer's experts: 0.9 MiB each in the 30B-A3B shape's Q4_K) both threads
 * keep reading instead of meeting at the pool after each.
 *
 * A share is walked in visits (a panel GEMV call over a panel of each of its two streams;
 * a job's rows in the share at once), counted in up to SHARE_STEPS steps of a ks_span: a
 * thread done with its own share takes steps from the back of another's. The threads'
 * reads seldom end together (one gets less of the memory for a while, or the submitter
 * starts first), and the thread that ended first waited; the owner's two streams and its
 * asking ahead are as before (decode, 2 threads, each token's time against the next's with
 * the even split, 384 pairs a run, several runs: the 30B-A3B shape's Q8_0 +1.9-2.4%, Q4_K_M
 * +0.8-3.9%, Qwen3-0.6B Q8_0 +0.4-2.7%, Q4_K_M on par). */
#define MATMUL_BATCH_MAX 64
#define SHARE_STEPS 64

/* A job's units [u0, u1) in a share, `visits` of them. */
typedef struct share_part {
    const matmul_task *mt;
    long u0, u1, visits;
} share_part;

/* One thread's share of a dispatch, planned by the submitter: its parts (n, job after
 * job), walked in steps of `per` visits taken from the span. The span, which the threads
 * write, has its own line; the rest is read only. */
typedef struct share_plan {
    ks_span span;
    int n;
    long visits, per;
    share_part part[MATMUL_BATCH_MAX];
} share_plan;

static size_t share_plan_bytes(void) { return sizeof(share_plan); }

/* Plans share ith: of each job, the units whose first byte lies in the share (the jobs'
 * total bytes counted one after the other). */
static void plan_share(const matmul_task *jobs, int n_jobs, size_t total, int ith, int nth, share_plan *sp) {
    /* at most a few GiB of weights times a few threads: no overflow */
    const size_t b0 = total * (size_t)ith / (size_t)nth, b1 = total * (size_t)(ith + 1) / (size_t)nth;
    size_t start = 0; /* of the job's bytes in the whole */
    sp->n = 0;
    sp->visits = 0;
    for (int j = 0; j < n_jobs && start < b1; j++) {
        const matmul_task *mt = &jobs[j];
        const size_t ub = (size_t)matmul_unit_rows(mt) * mt->w->row_bytes;
        const long units = mt->n_out / matmul_unit_rows(mt);
        const long u0 = b0 <= start ? 0 : (long)KS_MIN((size_t)units, (b0 - start + ub - 1) / ub);
        const long u1 = (long)KS_MIN((size_t)units, (b1 - start + ub - 1) / ub);
        if (u0 < u1) {
            sp->part[sp->n] = (share_part){mt, u0, u1, mt->panel ? panel_visits(u0, u1) : 1};
            sp->visits += sp->part[sp->n++].visits;
        }
        start += (size_t)units * ub;
    }
    /* up to SHARE_STEPS steps, the last maybe shorter */
    sp->per = KS_MAX(1, (sp->visits + SHARE_STEPS - 1) / SHARE_STEPS);
    ks_span_reset(&sp->span, (uint32_t)((sp->visits + sp->per - 1) / sp->per));
}

/* Visits [i0, i1) of a share's parts. */
static void run_visits(const share_part *part, int n, long i0, long i1) {
    long base = 0; /* visits of the parts before part p */
    for (int p = 0; p < n && base < i1; base += part[p++].visits) {
        const long a = KS_MAX(i0, base) - base, e = KS_MIN(i1, base + part[p].visits) - base;
        if (a >= e)
            continue;
        const matmul_task *mt = part[p].mt;
        const uint8_t *w = (const uint8_t *)mt->w->data + (size_t)mt->row0 * mt->w->row_bytes;
        if (mt->panel)
            matmul_panels(mt, w, part[p].u0, part[p].u1, a, e);
        else
            matmul_rows(mt, w, part[p].u0, part[p].u1);
    }
}

static void matmul_batch_worker(void *arg, int ith, int nth) {
    share_plan *shares = arg;
    /* its own share from the front, then the others' from the back */
    for (int o = 0; o < nth; o++) {
        share_plan *sp = &shares[(ith + o) % nth];
        uint32_t step;
        while (ks_span_take(&sp->span, o > 0, &step))
            run_visits(sp->part, sp->n, (long)step * sp->per, KS_MIN(sp->visits, (long)(step + 1) * sp->per));
    }
}

static void matmul_run_batch(ks_forward *f, const matmul_task *jobs, int n) {
    size_t total = 0;
    for (int j = 0; j < n; j++)
        total += (size_t)jobs[j].n_out * jobs[j].w->row_bytes;
    for (int s = 0; s < f->nth; s++)
        plan_share(jobs, n, total, s, f->nth, &f->shares[s]);
    ks_threadpool_run(f->tp, matmul_batch_worker, f->shares);
}

/* y_j = x . W_j^T for the n weights of one input x (T rows): q, k and v; gate and up.
 * One conversion of x and one dispatch where the weights take their inputs converted
 * alike and no GEMM (prefill batches go one matmul at a time as before). */
static void matmul_same_input(ks_forward *f, const ks_weight *const *w, const float *x, int n_in, float *const *y,
                              const int *n_out, int T, int n) {
    matmul_task jobs[4];
    bool batch = n <= 4;
    for (int j = 0; j < n && batch; j++) {
        jobs[j] = matmul_plan(f, w[j], 0, x, n_in, y[j], n_out[j], n_out[j], T, false);
        batch = !jobs[j].gemm && same_conversion(&jobs[0], &jobs[j]);
    }
    if (!batch) {
        for (int j = 0; j < n; j++)
            matmul_ex(f, w[j], 0, x, n_in, y[j], n_out[j], n_out[j], T, j > 0);
        return;
    }
    matmul_convert(f, &jobs[0], false);
    matmul_run_batch(f, jobs, n);
}

/* ---- feed-forward ------------------------------------------------------------------------- */

/* Dense SwiGLU FFN: ffn_out = Wdown(silu(Wgate h) * Wup h) for T rows of h. */
static void ffn_dense(ks_forward *f, const ks_layer *l, const float *h, float *out, int T) {
    const ks_hparams *hp = &f->m->hp;
    const ks_weight *w[2] = {&l->ffn_gate, &l->ffn_up};
    float *const y[2] = {f->g, f->u};
    const int n_out[2] = {hp->n_ff, hp->n_ff};
    matmul_same_input(f, w, h, hp->n_embd, y, n_out, T, 2);
    swiglu(f, f->g, f->u, (size_t)T * hp->n_ff);
    matmul(f, &l->ffn_down, 0, f->g, hp->n_ff, out, hp->n_embd, hp->n_embd, T);
}

/* MoE routing: softmax router over all experts, top-k, optional renormalisation; the
 * experts of token t in f->sel[t * K ..], their weights in f->sel_w. */
static void moe_route(ks_forward *f, const ks_layer *l, const float *h, int T) {
    const ks_hparams *hp = &f->m->hp;
    int E = hp->n_expert, K = hp->n_expert_used, D = hp->n_embd;
    matmul(f, &l->gate_inp, 0, h, D, f->router, E, E, T);
    for (int t = 0; t < T; t++) {
        float *r = f->router + (size_t)t * E;
        float mx = -INFINITY;
        for (int e = 0; e < E; e++)
            mx = r[e] > mx ? r[e] : mx;
        double sum = 0;
        for (int e = 0; e < E; e++) {
            r[e] = expf(r[e] - mx);
            sum += r[e];
        }
        for (int e = 0; e < E; e++)
            r[e] = (float)(r[e] / sum);
        /* top-k by probability; ties to the lower expert id */
        int32_t *sel = f->sel + (size_t)t * K;
        float *sw = f->sel_w + (size_t)t * K;
        double wsum = 0;
        for (int k = 0; k < K; k++) {
            int best = -1;
            for (int e = 0; e < E; e++) {
                bool taken = false;
                for (int j = 0; j < k; j++)
                    taken = taken || sel[j] == e;
                if (!taken && (best < 0 || r[e] > r[best]))
                    best = e;
            }
            sel[k] = best;
            sw[k] = r[best];
            wsum += r[best];
        }
        if (hp->moe_norm_topk)
            for (int k = 0; k < K; k++)
                sw[k] = (float)(sw[k] / wsum);
    }
}

/* A few tokens' routed experts in three dispatches (decode): the gate and up products of
 * all the experts chosen in one (over one conversion of the inputs: h itself for one
 * token, else each expert's tokens gathered), SwiGLU over their rows, the down products in
 * one; then the weighted sums. One expert at a time this was 3 dispatches and a
 * conversion each, the threads meeting after every 0.9 MiB in the 30B-A3B shape. The sums
 * add the experts in id order with the same kernels as ffn_moe's path for batches: the
 * same result. Returns false (nothing written) where gate and up do not share a
 * conversion or the batch would not fit. */
static bool ffn_moe_few(ks_forward *f, const ks_layer *l, const float *h, float *out, int T) {
    const ks_hparams *hp = &f->m->hp;
    const int E = hp->n_expert, K = hp->n_expert_used, D = hp->n_embd, F = hp->n_ff_exp;
    if (T > MOE_FEW_TOKENS || 2 * T * K > MATMUL_BATCH_MAX)
        return false;
    /* the experts chosen, in id order; expert i's rows (token, weight) at [base[i], base[i + 1]) */
    int32_t ex[MATMUL_BATCH_MAX / 2];
    int base[MATMUL_BATCH_MAX / 2 + 1];
    int ne = 0, n = 0;
    for (int e = 0; e < E; e++) {
        const int n0 = n;
        for (int t = 0; t < T; t++)
            for (int k = 0; k < K; k++)
                if (f->sel[(size_t)t * K + k] == e) {
                    f->rows[n] = t;
                    f->rows_w[n++] = f->sel_w[(size_t)t * K + k];
                }
        if (n > n0) {
            ex[ne] = e;
            base[ne++] = n0;
        }
    }
    base[ne] = n;
    /* the inputs: one token's h serves every expert; several are gathered per expert */
    const float *x = h;
    if (T > 1) {
        for (int r = 0; r < n; r++)
            memcpy(f->xe + (size_t)r * D, h + (size_t)f->rows[r] * D, (size_t)D * sizeof(float));
        x = f->xe;
    }
    const int xrows = T > 1 ? n : 1;
    matmul_task in = matmul_plan(f, &l->gate_exps, 0, x, D, NULL, F, F, xrows, true);
    const matmul_task in_up = matmul_plan(f, &l->up_exps, 0, x, D, NULL, F, F, xrows, true);
    if (!same_conversion(&in, &in_up))
        return false;
    matmul_convert(f, &in, false);
    matmul_task jobs[MATMUL_BATCH_MAX];
    for (int i = 0; i < ne; i++) {
        const int r0 = T > 1 ? base[i] : 0, nt = base[i + 1] - base[i];
        for (int j = 0; j < 2; j++) {
            matmul_task *mt = &jobs[2 * i + j];
            *mt = matmul_plan(f, j ? &l->up_exps : &l->gate_exps, (int64_t)ex[i] * F, x + (size_t)r0 * D, D,
                              (j ? f->u : f->g) + (size_t)base[i] * F, F, F, nt, true);
            mt->xq = f->xq + (size_t)r0 * in.act_row_bytes;
            mt->xqp = in.panel ? f->xqp + (size_t)r0 * in.panel_act_bytes : NULL;
        }
    }
    matmul_run_batch(f, jobs, 2 * ne);
    swiglu(f, f->g, f->u, (size_t)n * F);
    /* the rows of g converted for the down weights at once */
    matmul_task g_rows = matmul_plan(f, &l->down_exps, 0, f->g, F, NULL, D, D, n, true);
    matmul_convert(f, &g_rows, false);
    for (int i = 0; i < ne; i++) {
        jobs[i] = matmul_plan(f, &l->down_exps, (int64_t)ex[i] * D, f->g + (size_t)base[i] * F, F,
                              f->ye + (size_t)base[i] * D, D, D, base[i + 1] - base[i], true);
        jobs[i].xq = f->xq + (size_t)base[i] * g_rows.act_row_bytes;
        jobs[i].xqp = g_rows.panel ? f->xqp + (size_t)base[i] * g_rows.panel_act_bytes : NULL;
    }
    matmul_run_batch(f, jobs, ne);
    memset(out, 0, (size_t)T * D * sizeof(float));
    for (int r = 0; r < n; r++) {
        float *o = out + (size_t)f->rows[r] * D;
        const float *y = f->ye + (size_t)r * D;
        for (int i = 0; i < D; i++)
            o[i] += f->rows_w[r] * y[i];
    }
    return true;
}

/* MoE FFN: each expert runs once over the tokens routed to it (its weights are read once
 * per batch); a few tokens take ffn_moe_few. */
static void ffn_moe(ks_forward *f, const ks_layer *l, const float *h, float *out, int T) {
    const ks_hparams *hp = &f->m->hp;
    int E = hp->n_expert, K = hp->n_expert_used, D = hp->n_embd, F = hp->n_ff_exp;
    moe_route(f, l, h, T);
    if (ffn_moe_few(f, l, h, out, T))
        return;
    memset(out, 0, (size_t)T * D * sizeof(float));
    for (int e = 0; e < E; e++) {
        int n = 0;
        for (int t = 0; t < T; t++)
            for (int k = 0; k < K; k++)
                if (f->sel[(size_t)t * K + k] == e) {
                    f->rows[n] = t;
                    f->rows_w[n] = f->sel_w[(size_t)t * K + k];
                    memcpy(f->xe + (size_t)n * D, h + (size_t)t * D, (size_t)D * sizeof(float));
                    n++;
                }
        if (n == 0)
            continue;
        matmul(f, &l->gate_exps, (int64_t)e * F, f->xe, D, f->g, F, F, n);
        matmul_ex(f, &l->up_exps, (int64_t)e * F, f->xe, D, f->u, F, F, n, true);
        swiglu(f, f->g, f->u, (size_t)n * F);
        matmul(f, &l->down_exps, (int64_t)e * D, f->g, F, f->ye, D, D, n);
        for (int j = 0; j < n; j++) {
            float *o = out + (size_t)f->rows[j] * D;
            const float *y = f->ye + (size_t)j * D;
            for (int i = 0; i < D; i++)
                o[i] += f->rows_w[j] * y[i];
        }
    }
}

/* ---- the pass ------------------------------------------------------------------------------- */

static ks_status validate(const ks_forward *f, const ks_batch *b, ks_err *err) {
    const ks_hparams *hp = &f->m->hp;
    if (b->n_tokens < 1 || b->n_tokens > f->max_tokens)
        return KS_ERRF(err, KS_ERR_INVALID, "batch of %d tokens (must be 1..%d)", b->n_tokens, f->max_tokens);
    for (int s = 0; s < b->n_seqs; s++)
        for (int i = 0; i < b->seqs[s].n_blocks; i++)
            if (b->seqs[s].block_table[i] < 0 || b->seqs[s].block_table[i] >= f->n_pool_blocks)
                return KS_ERRF(err, KS_ERR_INVALID, "sequence %d block %d maps to pool block %d (pool has %d)",
                               s, i, b->seqs[s].block_table[i], f->n_pool_blocks);
    for (int t = 0; t < b->n_tokens; t++) {
        if (b->tokens[t] < 0 || b->tokens[t] >= hp->n_vocab)
            return KS_ERRF(err, KS_ERR_INVALID, "token id %d at batch index %d is outside the vocabulary (0..%d)",
                           b->tokens[t], t, hp->n_vocab - 1);
        if (b->seq[t] < 0 || b->seq[t] >= b->n_seqs)
            return KS_ERRF(err, KS_ERR_INVALID, "batch index %d names sequence %d of %d", t, b->seq[t], b->n_seqs);
        if (b->pos[t] < 0 || b->pos[t] >= f->n_ctx)
            return KS_ERRF(err, KS_ERR_INVALID, "position %d is outside the context (0..%d)", b->pos[t], f->n_ctx - 1);
        if (b->pos[t] / f->kv.block_tokens >= b->seqs[b->seq[t]].n_blocks)
            return KS_ERRF(err, KS_ERR_INVALID, "position %d of sequence %d has no KV block", b->pos[t], b->seq[t]);
    }
    return KS_OK;
}

static void embed(ks_forward *f, const ks_batch *b) {
    const ks_model *m = f->m;
    const ks_weight *e = &m->tok_embd;
    for (int t = 0; t < b->n_tokens; t++) {
        float *x = f->x + (size_t)t * m->hp.n_embd;
        size_t row = (size_t)b->tokens[t];
        if (e->panels)
            f->k->panel[e->type].row_to_float((const uint8_t *)e->data + (row - row % KS_PANEL_ROWS) * e->row_bytes,
                                              (int)(row % KS_PANEL_ROWS), m->hp.n_embd, x);
        else
            ks_type_traits_of(e->type)->to_float((const uint8_t *)e->data + row * e->row_bytes, x, m->hp.n_embd);
    }
}

static void layer(ks_forward *f, const ks_batch *b, int il) {
    const ks_hparams *hp = &f->m->hp;
    const ks_layer *l = &f->m->layers[il];
    int T = b->n_tokens, D = hp->n_embd, hd = hp->head_dim;
    int q_dim = hp->n_head * hd, kv_dim = hp->n_head_kv * hd;

    norm_rows(f, f->x, l->attn_norm.data, f->h, D, T);
    const ks_weight *qkv_w[3] = {&l->wq, &l->wk, &l->wv};
    float *const qkv_y[3] = {f->q, f->kc, f->vc};
    const int qkv_n[3] = {q_dim, kv_dim, kv_dim};
    matmul_same_input(f, qkv_w, f->h, D, qkv_y, qkv_n, T, 3);
    rows_task qk = {.f = f, .b = b, .l = l};
    if (T > 1)
        ks_threadpool_run(f->tp, qk_worker, &qk);
    else
        qk_worker(&qk, 0, 1);
    ks_attention_store_kv(f->attn_op, f->kv_pool, b, il, f->kc, f->vc);
    ks_attention_run(f->attn_op, f->tp, f->kv_pool, b, il, f->q, f->attn);
    matmul(f, &l->wo, 0, f->attn, q_dim, f->ffn_out, D, D, T);
    for (size_t i = 0; i < (size_t)T * D; i++)
        f->x[i] += f->ffn_out[i];

    norm_rows(f, f->x, l->ffn_norm.data, f->h, D, T);
    if (hp->n_expert > 0)
        ffn_moe(f, l, f->h, f->ffn_out, T);
    else
        ffn_dense(f, l, f->h, f->ffn_out, T);
    for (size_t i = 0; i < (size_t)T * D; i++)
        f->x[i] += f->ffn_out[i];
}

ks_status ks_forward_run(ks_forward *f, const ks_batch *b, float *logits, ks_err *err) {
    ks_status s = validate(f, b, err);
    if (s)
        return s;
    const ks_hparams *hp = &f->m->hp;
    int D = hp->n_embd;
    embed(f, b);
    for (int il = 0; il < hp->n_layer; il++)
        layer(f, b, il);
    int n_out = 0;
    for (int t = 0; t < b->n_tokens; t++)
        if (b->want_logits[t]) {
            f->k->rmsnorm_f32(f->x + (size_t)t * D, f->m->output_norm.data, f->xo + (size_t)n_out * D, D,
                              hp->rms_eps);
            f->out_rows[n_out++] = t;
        }
    if (n_out > 0)
        matmul(f, &f->m->output, 0, f->xo, D, logits, hp->n_vocab, hp->n_vocab, n_out);
    return KS_OK;
}
