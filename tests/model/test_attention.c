/* test_attention.c — streaming attention over the paged KV pool (model/attention.c)
 * against a plain double-precision attention over the same stored K/V rows:
 *   prefill, decode deep enough to be cut into chunks across threads, a batch that
 *   mixes both over three sequences, and decode tokens of sequences whose tables share
 *   prefix blocks (walked once for all of them), for F32, F16 and Q8_0 KV (where the
 *   kernels score a Q8_0 cache against queries rounded to Q8_0, the reference takes the
 *   rounded queries); which
 *   sequences walk a prefix together when some share more of it than others;
 *   the same results with 1, 2 and 3 threads;
 *   K/V rows written where each token's block table says. */
#include "model/attention.h"
#include "tensor/attn_kv.h"
#include "tensor/kernels.h"
#include "tensor/types.h"
#include "test_support.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A small grouped-query shape: 2 query heads per KV head, heads of 64 (two Q8_0 blocks). */
#define N_HEAD 4
#define N_HEAD_KV 2
#define HEAD_DIM 64
#define N_LAYER 2
#define B 16
#define MAX_POS 1600 /* deep enough that a decode is cut into chunks (attention.c) */
#define MAX_SEQS 3
#define N_BLOCKS (MAX_SEQS * (MAX_POS / B))
#define Q_DIM (N_HEAD * HEAD_DIM)
#define KV_DIM (N_HEAD_KV * HEAD_DIM)

static uint64_t rng_state = 0x243f6a8885a308d3ull;
static float frand(void) { /* uniform in [-1, 1) */
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng_state >> 40) & 0xffffff) / 8388608.0f - 1.0f;
}

typedef struct fixture {
    ks_hparams hp;
    ks_kv_layout kv;
    uint8_t *pool;
    int32_t tables[MAX_SEQS][MAX_POS / B];  /* blocks scattered over the pool */
    ks_seq_view seqs[MAX_SEQS];
    int n_filled[MAX_SEQS];                 /* positions written so far */
} fixture;

static void fixture_init(fixture *fx, uint32_t kv_type) {
    memset(fx, 0, sizeof *fx);
    fx->hp.n_head = N_HEAD;
    fx->hp.n_head_kv = N_HEAD_KV;
    fx->hp.head_dim = HEAD_DIM;
    fx->hp.n_layer = N_LAYER;
    ks_err err;
    cr_assert_eq(ks_kv_layout_init(&fx->kv, kv_type, B, N_LAYER, N_HEAD_KV, HEAD_DIM, &err), KS_OK, "%s",
                 err.msg);
    fx->pool = calloc(N_BLOCKS, fx->kv.block_bytes);
    cr_assert_not_null(fx->pool);
    /* block i of sequence s is pool block (i * MAX_SEQS + s) reversed: neither contiguous
     * nor in order */
    for (int s = 0; s < MAX_SEQS; s++) {
        for (int i = 0; i < MAX_POS / B; i++)
            fx->tables[s][i] = N_BLOCKS - 1 - (i * MAX_SEQS + s);
        fx->seqs[s] = (ks_seq_view){fx->tables[s], MAX_POS / B};
    }
}

/* Writes random K/V rows (every layer) for positions [from, to) of sequence s. */
static void fill(fixture *fx, ks_attention *a, int s, int from, int to) {
    const int T = to - from;
    int32_t *pos = malloc((size_t)T * sizeof *pos), *seq = malloc((size_t)T * sizeof *seq);
    float *k = malloc((size_t)T * KV_DIM * sizeof *k), *v = malloc((size_t)T * KV_DIM * sizeof *v);
    for (int t = 0; t < T; t++) {
        pos[t] = from + t;
        seq[t] = s;
    }
    ks_batch b = {.n_tokens = T, .pos = pos, .seq = seq, .seqs = fx->seqs, .n_seqs = MAX_SEQS};
    for (int il = 0; il < N_LAYER; il++) {
        for (int i = 0; i < T * KV_DIM; i++) {
            k[i] = frand();
            v[i] = frand() * 2.0f;
        }
        ks_attention_store_kv(a, fx->pool, &b, il, k, v);
    }
    fx->n_filled[s] = KS_MAX(fx->n_filled[s], to);
    free(pos);
    free(seq);
    free(k);
    free(v);
}

/* The stored K (or V) row of sequence s, position p, layer il, as floats. */
static void stored_row(const fixture *fx, int s, int p, int il, bool v, float *out) {
    const int32_t blk = fx->tables[s][p / B];
    if (!v && fx->kv.k_panels && fx->kv.kv_type == KS_TYPE_F16) { /* each head's keys from its panel */
        for (int h = 0; h < N_HEAD_KV; h++) {
            ks_fp16 row[HEAD_DIM];
            kv_f16_panel_get((const ks_fp16 *)ks_kv_k_head(&fx->kv, fx->pool, blk, il, p % B, h), p % 16,
                             row, HEAD_DIM);
            ks_type_traits_of(KS_TYPE_F16)->to_float(row, out + h * HEAD_DIM, HEAD_DIM);
        }
        return;
    }
    if (!v && fx->kv.k_panels) { /* each head's keys from its panels */
        for (int h = 0; h < N_HEAD_KV; h++) {
            ks_block_q8_0 row[HEAD_DIM / 32];
            kv_q8_panel_get((const kv_q8_panel *)ks_kv_k_head(&fx->kv, fx->pool, blk, il, p % B, h), p % 16,
                            row, HEAD_DIM / 32);
            ks_type_traits_of(KS_TYPE_Q8_0)->to_float(row, out + h * HEAD_DIM, HEAD_DIM);
        }
        return;
    }
    if (v) { /* each head's values where the layout keeps them (in the row, or its head's run) */
        for (int h = 0; h < N_HEAD_KV; h++)
            ks_type_traits_of(fx->kv.kv_type)->to_float(ks_kv_v_head(&fx->kv, fx->pool, blk, il, p % B, h),
                                                         out + h * HEAD_DIM, HEAD_DIM);
        return;
    }
    ks_type_traits_of(fx->kv.kv_type)->to_float(ks_kv_k_row(&fx->kv, fx->pool, blk, il, p % B), out, KV_DIM);
}

/* The Q8_0 value block b of sequence s, position p, layer il, KV head kvh. */
static const ks_block_q8_0 *stored_v_block(const fixture *fx, int s, int p, int il, int kvh, int b) {
    return (const ks_block_q8_0 *)ks_kv_v_head(&fx->kv, fx->pool, fx->tables[s][p / B], il, p % B, kvh) + b;
}

/* For tables that sum Q8_0 values in integer products (attn_accum_q8i): how far element
 * i of an output may move with its weights w (n positions, their sum `sum`) rounded to
 * int16: half a step of each group's largest weight (32 keys of a block from its start,
 * as attention calls it a block at a time) times the codes, over the sum. */
static double int16_weights_error(const fixture *fx, int s, int il, int kvh, const double *w, int n, double sum,
                                  int i) {
    if (fx->kv.kv_type != KS_TYPE_Q8_0 || !ks_kernels_get()->attn_accum_q8i)
        return 0.0;
    const int b = i / 32;
    double err = 0;
    for (int b0 = 0; b0 < n; b0 += B)
        for (int g = b0; g < KS_MIN(n, b0 + B); g += 32) {
            const int end = KS_MIN(n, KS_MIN(b0 + B, g + 32));
            double wmax = 0, codes = 0;
            for (int p = g; p < end; p++) {
                const ks_block_q8_0 *blk = stored_v_block(fx, s, p, il, kvh, b);
                wmax = fmax(wmax, w[p] * fabs(ks_fp16_to_fp32(blk->d)));
                codes += abs(blk->qs[i % 32]);
            }
            err += wmax / 65534.0 * codes;
        }
    return err / sum;
}

/* out = softmax(q k / sqrt(head_dim)) v per token and head, in double; tol: the kernels'
 * rounding of the weights on top of float sums (int16_weights_error). */
static void reference(const fixture *fx, const ks_batch *b, int il, const float *q, double *out, double *tol) {
    float *ks = malloc((size_t)MAX_POS * KV_DIM * sizeof *ks), *vs = malloc((size_t)MAX_POS * KV_DIM * sizeof *vs);
    double *w = malloc(MAX_POS * sizeof *w);
    for (int t = 0; t < b->n_tokens; t++) {
        const int s = b->seq[t], n = b->pos[t] + 1;
        for (int p = 0; p < n; p++) {
            stored_row(fx, s, p, il, false, ks + (size_t)p * KV_DIM);
            stored_row(fx, s, p, il, true, vs + (size_t)p * KV_DIM);
        }
        for (int h = 0; h < N_HEAD; h++) {
            const int kvh = h / (N_HEAD / N_HEAD_KV);
            const float *qh = q + (size_t)t * Q_DIM + h * HEAD_DIM;
            double mx = -INFINITY, sum = 0;
            for (int p = 0; p < n; p++) {
                double d = 0;
                for (int i = 0; i < HEAD_DIM; i++)
                    d += (double)qh[i] * ks[(size_t)p * KV_DIM + kvh * HEAD_DIM + i];
                w[p] = d / sqrt((double)HEAD_DIM);
                mx = fmax(mx, w[p]);
            }
            for (int p = 0; p < n; p++)
                sum += (w[p] = exp(w[p] - mx));
            double *o = out + (size_t)t * Q_DIM + h * HEAD_DIM;
            for (int i = 0; i < HEAD_DIM; i++) {
                double acc = 0;
                for (int p = 0; p < n; p++)
                    acc += w[p] * vs[(size_t)p * KV_DIM + kvh * HEAD_DIM + i];
                o[i] = acc / sum;
                tol[(size_t)t * Q_DIM + h * HEAD_DIM + i] = int16_weights_error(fx, s, il, kvh, w, n, sum, i);
            }
        }
    }
    free(ks);
    free(vs);
    free(w);
}

/* The queries as the kernels score them: against Q8_0 keys in panels (attn_scores_q8p)
 * each head's query is rounded to Q8_0 first (as the table's quantize_act does), as
 * llama.cpp does; the reference then takes the same rounded values. */
static const float *queries_as_scored(const fixture *fx, const float *q, int T, float *qs) {
    const ks_kernels *k = ks_kernels_get();
    if (!fx->kv.k_panels || fx->kv.kv_type != KS_TYPE_Q8_0)
        return q;
    uint8_t blocks[HEAD_DIM / 32 * 34];
    for (int r = 0; r < T * N_HEAD; r++) {
        k->quantize_act[KS_TYPE_Q8_0](q + (size_t)r * HEAD_DIM, blocks, HEAD_DIM);
        ks_type_traits_of(KS_TYPE_Q8_0)->to_float(blocks, qs + (size_t)r * HEAD_DIM, HEAD_DIM);
    }
    return qs;
}

/* One case: tokens (seq[t], pos[t]) whose K/V rows and all before them are stored; runs
 * attention on nth threads for every layer and compares with the reference. Queries are
 * scaled up so that scores span tens of units and the running max moves. */
static void check(fixture *fx, int nth, int T, const int32_t *seq, const int32_t *pos, const char *what) {
    ks_threadpool *tp = ks_threadpool_create(nth);
    ks_attention *a;
    ks_err err;
    cr_assert_eq(ks_attention_create(&a, &fx->hp, &fx->kv, MAX_POS, nth, &err), KS_OK, "%s", err.msg);
    float *q = malloc((size_t)T * Q_DIM * sizeof *q), *out = malloc((size_t)T * Q_DIM * sizeof *out);
    float *qs = malloc((size_t)T * Q_DIM * sizeof *qs);
    double *want = malloc((size_t)T * Q_DIM * sizeof *want), *tol = malloc((size_t)T * Q_DIM * sizeof *tol);
    ks_batch b = {.n_tokens = T, .pos = pos, .seq = seq, .seqs = fx->seqs, .n_seqs = MAX_SEQS};
    for (int il = 0; il < N_LAYER; il++) {
        for (int i = 0; i < T * Q_DIM; i++)
            q[i] = frand() * 6.0f;
        memset(out, 0xff, (size_t)T * Q_DIM * sizeof *out); /* NaN: an output never written */
        ks_attention_run(a, tp, fx->pool, &b, il, q, out);
        reference(fx, &b, il, queries_as_scored(fx, q, T, qs), want, tol);
        double worst = 0;
        int at = 0;
        for (int i = 0; i < T * Q_DIM; i++) {
            const double d = fabs(out[i] - want[i]) - tol[i];
            if (!(d <= worst)) {
                worst = d;
                at = i;
            }
        }
        /* values are below 2 in magnitude: float sums over up to MAX_POS positions (beyond
         * the weights' rounding to int16, where the table takes it) */
        cr_assert_leq(worst, 2e-5, "%s (%s KV, %d threads, layer %d): token %d head %d [%d]: %g vs %g", what,
                      ks_type_name(fx->kv.kv_type), nth, il, at / Q_DIM, at % Q_DIM / HEAD_DIM, at % HEAD_DIM,
                      (double)out[at], want[at]);
    }
    free(q);
    free(qs);
    free(out);
    free(want);
    free(tol);
    ks_attention_destroy(a);
    ks_threadpool_destroy(tp);
}

/* A case over each KV type: a fixture, an attention op to fill it with, the case. */
typedef void (*case_fn)(fixture *fx, ks_attention *a);

static void for_each_kv_type(case_fn run) {
    static const uint32_t kv_types[] = {KS_TYPE_F32, KS_TYPE_F16, KS_TYPE_Q8_0};
    for (size_t ti = 0; ti < sizeof kv_types / sizeof kv_types[0]; ti++) {
        fixture fx;
        fixture_init(&fx, kv_types[ti]);
        ks_attention *a;
        cr_assert_eq(ks_attention_create(&a, &fx.hp, &fx.kv, MAX_POS, 1, NULL), KS_OK);
        run(&fx, a);
        ks_attention_destroy(a);
        free(fx.pool);
    }
}

static void prefill_case(fixture *fx, ks_attention *a) {
    /* 45 tokens from 0: groups of 8 with a short last one, blocks of 16 crossed */
    fill(fx, a, 0, 0, 45);
    int32_t seq[45], pos[45];
    for (int t = 0; t < 45; t++) {
        seq[t] = 0;
        pos[t] = t;
    }
    for (int nth = 1; nth <= 3; nth++)
        check(fx, nth, 45, seq, pos, "prefill of 45");
    /* a later chunk of the same prompt over the cached start */
    fill(fx, a, 0, 45, 300);
    for (int t = 0; t < 45; t++)
        pos[t] = 255 + t;
    check(fx, 2, 45, seq, pos, "prefill of 45 after 255");
}

Test(attention, test_attention_prefill_matches_reference) { for_each_kv_type(prefill_case); }

static void deep_decode_case(fixture *fx, ks_attention *a) {
    fill(fx, a, 1, 0, MAX_POS);
    /* the last position, and one that ends mid-block */
    const int32_t seq[1] = {1}, last[1] = {MAX_POS - 1}, mid[1] = {1000};
    for (int nth = 1; nth <= 3; nth++) {
        check(fx, nth, 1, seq, last, "decode at the last position");
        check(fx, nth, 1, seq, mid, "decode at 1000");
    }
}

Test(attention, test_attention_deep_decode_split_across_threads_matches_reference) {
    for_each_kv_type(deep_decode_case);
}

static void mixed_case(fixture *fx, ks_attention *a) {
    fill(fx, a, 0, 0, MAX_POS);
    fill(fx, a, 1, 0, 320);
    fill(fx, a, 2, 0, 6);
    /* a decode deep in seq 0 (more than its share of the work: cut into chunks with 2 and
     * 3 threads), 20 prompt tokens of seq 1, a decode at 5 in seq 2, and seq 0 again at
     * an earlier position (not cut) */
    int32_t seq[23], pos[23];
    seq[0] = 0, pos[0] = MAX_POS - 1;
    for (int t = 0; t < 20; t++)
        seq[1 + t] = 1, pos[1 + t] = 300 + t;
    seq[21] = 2, pos[21] = 5;
    seq[22] = 0, pos[22] = 640;
    for (int nth = 1; nth <= 3; nth++)
        check(fx, nth, 23, seq, pos, "mixed batch");
}

Test(attention, test_attention_mixed_batch_of_three_sequences_matches_reference) {
    for_each_kv_type(mixed_case);
}

/* Sequences 1 and 2 begin with sequence 0's blocks (a prefix cached once), 30 and 12 of
 * them, then have their own: their decode tokens walk the common prefix together. */
static void shared_prefix_case(fixture *fx, ks_attention *a) {
    for (int i = 0; i < 30; i++)
        fx->tables[1][i] = fx->tables[0][i];
    for (int i = 0; i < 12; i++)
        fx->tables[2][i] = fx->tables[0][i];
    fill(fx, a, 0, 0, 900);
    fill(fx, a, 1, 30 * B, 700);
    fill(fx, a, 2, 12 * B, 1300);
    const int32_t seq[5] = {0, 1, 2, 1, 0}, pos[5] = {899, 699, 1299, 30 * B, 12 * B + 5};
    for (int nth = 1; nth <= 3; nth++) {
        check(fx, nth, 3, seq, pos, "decode of three sequences sharing a prefix");
        check(fx, nth, 2, seq, pos, "decode of two sequences sharing a prefix");
        /* a token just past the prefix, and one of the owner's in its 13th block */
        check(fx, nth, 5, seq, pos, "decode of five tokens sharing a prefix");
    }
    /* eight tokens over sequence 1's 30 shared blocks: 16 query rows per KV head, the tile
     * kernel's (F16 KV), where there is one */
    const int32_t seq8[8] = {0, 1, 0, 1, 0, 1, 0, 1}, pos8[8] = {899, 699, 800, 600, 700, 30 * B, 500, 550};
    check(fx, 2, 8, seq8, pos8, "decode of eight tokens sharing a prefix");
}

Test(attention, test_attention_decode_of_sequences_sharing_prefix_blocks_matches_reference) {
    for_each_kv_type(shared_prefix_case);
}

/* Sequences 1 and 2 share 40 blocks, sequence 0 only the first 5 of them (a conversation
 * beside two subagents with one long system prompt): walking all three over 5 blocks
 * would save 10 block reads, the two subagents over their 40 save 40, so those two walk
 * their prefix together and sequence 0 walks alone. */
Test(attention, test_attention_shared_walks_follow_the_longest_common_prefixes) {
    fixture fx;
    fixture_init(&fx, KS_TYPE_F16);
    for (int i = 0; i < 40; i++)
        fx.tables[2][i] = fx.tables[1][i];
    for (int i = 0; i < 5; i++)
        fx.tables[1][i] = fx.tables[2][i] = fx.tables[0][i];
    ks_attention *a;
    cr_assert_eq(ks_attention_create(&a, &fx.hp, &fx.kv, MAX_POS, 2, NULL), KS_OK);
    fill(&fx, a, 0, 0, 901);
    fill(&fx, a, 1, 5 * B, 801);
    fill(&fx, a, 2, 40 * B, 701);
    const int32_t seq[3] = {0, 1, 2}, pos[3] = {900, 800, 700};
    check(&fx, 2, 3, seq, pos, "a conversation beside two subagents");
    ks_threadpool *tp = ks_threadpool_create(2);
    float *q = calloc(3 * Q_DIM, sizeof *q), *out = malloc(3 * Q_DIM * sizeof *out);
    ks_batch b = {.n_tokens = 3, .pos = pos, .seq = seq, .seqs = fx.seqs, .n_seqs = MAX_SEQS};
    ks_attention_run(a, tp, fx.pool, &b, 0, q, out);
    int blocks = 0;
    cr_assert_eq(ks_attention_shared_walks(a, &blocks), 1);
    cr_assert_eq(blocks, 40);
    free(q);
    free(out);
    ks_threadpool_destroy(tp);
    ks_attention_destroy(a);
    free(fx.pool);
}

/* F16 keys go into panels where the table scores them so (AVX-512 without F16 tiles), and
 * either way each token's K and V read back as its rows. */
Test(attention, test_attention_store_kv_writes_each_token_at_its_block_slot) {
    fixture fx;
    fixture_init(&fx, KS_TYPE_F16);
    const ks_kernels *kt = ks_kernels_get();
    cr_assert_eq(fx.kv.k_panels, kt->attn_scores_f16p != NULL && !kt->attn_tile_f16.block,
                 "F16 keys in panels where scored so");
    ks_attention *a;
    cr_assert_eq(ks_attention_create(&a, &fx.hp, &fx.kv, MAX_POS, 1, NULL), KS_OK);
    float k[3 * KV_DIM], v[3 * KV_DIM], row[KV_DIM];
    for (int i = 0; i < 3 * KV_DIM; i++) {
        k[i] = (float)(i % 97) / 8.0f;
        v[i] = -(float)(i % 89) / 4.0f;
    }
    const int32_t seq[3] = {2, 0, 2}, pos[3] = {17, 3, 18};
    ks_batch b = {.n_tokens = 3, .pos = pos, .seq = seq, .seqs = fx.seqs, .n_seqs = MAX_SEQS};
    ks_attention_store_kv(a, fx.pool, &b, 1, k, v);
    for (int t = 0; t < 3; t++) {
        stored_row(&fx, seq[t], pos[t], 1, false, row);
        for (int i = 0; i < KV_DIM; i++) /* these values are exact in F16 */
            cr_assert_eq(row[i], k[t * KV_DIM + i], "token %d K[%d]: %g vs %g", t, i, (double)row[i],
                         (double)k[t * KV_DIM + i]);
        stored_row(&fx, seq[t], pos[t], 1, true, row);
        for (int i = 0; i < KV_DIM; i++)
            cr_assert_eq(row[i], v[t * KV_DIM + i], "token %d V[%d]", t, i);
        stored_row(&fx, seq[t], pos[t], 0, false, row); /* layer 0 untouched */
        for (int i = 0; i < KV_DIM; i++)
            cr_assert_eq(row[i], 0.0f, "token %d layer 0 K[%d] written", t, i);
    }
    ks_attention_destroy(a);
    free(fx.pool);
}

/* Q8_0 keys go into panels where the table scores them so (AVX-512), and either way
 * each token's K and V read back as its rows rounded to Q8_0, its neighbours in the
 * same panel untouched. */
Test(attention, test_attention_store_kv_q8_0_writes_each_token_in_its_layout) {
    fixture fx;
    fixture_init(&fx, KS_TYPE_Q8_0);
    cr_assert_eq(fx.kv.k_panels, ks_kernels_get()->attn_scores_q8p != NULL, "keys in panels where scored so");
    ks_attention *a;
    cr_assert_eq(ks_attention_create(&a, &fx.hp, &fx.kv, MAX_POS, 1, NULL), KS_OK);
    enum { T = 4 };
    float k[T * KV_DIM], v[T * KV_DIM], row[KV_DIM], want[KV_DIM];
    for (int i = 0; i < T * KV_DIM; i++) {
        k[i] = frand() * 3.0f;
        v[i] = frand();
    }
    const int32_t seq[T] = {2, 0, 2, 2}, pos[T] = {17, 3, 18, 31}; /* 17, 18, 31: one panel */
    ks_batch b = {.n_tokens = T, .pos = pos, .seq = seq, .seqs = fx.seqs, .n_seqs = MAX_SEQS};
    ks_attention_store_kv(a, fx.pool, &b, 1, k, v);
    uint8_t blocks[KV_DIM / 32 * 34];
    for (int t = 0; t < T; t++)
        for (int kv = 0; kv < 2; kv++) {
            ks_kernels_get()->quantize_act[KS_TYPE_Q8_0]((kv ? v : k) + t * KV_DIM, blocks, KV_DIM);
            ks_type_traits_of(KS_TYPE_Q8_0)->to_float(blocks, want, KV_DIM);
            stored_row(&fx, seq[t], pos[t], 1, kv == 1, row);
            cr_assert_eq(memcmp(row, want, sizeof row), 0, "token %d %s", t, kv ? "V" : "K");
        }
    ks_attention_destroy(a);
    free(fx.pool);
}

Test(attention, test_attention_rejects_kv_heads_that_split_a_q8_0_block) {
    ks_hparams hp = {.n_head = 4, .n_head_kv = 2, .head_dim = 16, .n_layer = 1};
    ks_kv_layout kv;
    ks_err err;
    /* the row (2 heads of 16) is one Q8_0 block, a head half of one */
    cr_assert_eq(ks_kv_layout_init(&kv, KS_TYPE_Q8_0, B, 1, 2, 16, &err), KS_OK, "%s", err.msg);
    ks_attention *a = NULL;
    ks_err_clear(&err);
    cr_assert_eq(ks_attention_create(&a, &hp, &kv, 64, 1, &err), KS_ERR_UNSUPPORTED);
    cr_assert(strstr(err.msg, "16 elements") && strstr(err.msg, "q8_0"), "%s", err.msg);
    cr_assert_null(a);
}
