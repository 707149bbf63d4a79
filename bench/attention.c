/* attention.c — micro-benchmark of the streaming attention (model/attention.c) alone, on
 * a real model's attention shape: Qwen3-0.6B's (16 query heads over 8 KV heads of 128, 28
 * layers; the default) or Qwen3-30B-A3B's (32 over 4, 48 layers: 8 query rows per KV head,
 * where 0.6B's decode has 2).
 *
 *   bench_attention [-t THREADS] [-d DEPTH[,DEPTH...]] [-s SEQS] [--shared N] [-p TOKENS]
 *                   [--kv f16|q8_0|f32] [-r RUNS] [--shape qwen3-0.6b|qwen3-30b-a3b]
 *
 * For each depth D, two cases over all layers in turn, as a forward pass runs them:
 *
 *   decode   SEQS sequences (default 1), each one token at position D attending to its
 *            D + 1 positions: the bytes of K/V read per second, and as a share of the
 *            read bandwidth a probe reads right before and after each run (the "of rep
 *            roof" column, the median of the runs' shares: bench_limits.h); with --shared N the sequences'
 *            first N positions (whole blocks) are one prefix, sequence 0's blocks in
 *            every table, as conversations with one cached system prompt have, and the
 *            bytes counted are those of the distinct blocks;
 *   prefill  TOKENS (default 512) consecutive tokens of one sequence at positions
 *            D .. D + TOKENS - 1: multiply-adds of Q K^T and P V per second.
 *
 * Each figure is the median of RUNS runs (default 5) after a warm-up. The KV pool holds
 * random rows, its blocks scattered as a long-running server's are; it is allocated once
 * for the deepest case, 2 MiB-aligned and advised for huge pages, as the server's is. */
#include "bench_limits.h"
#include "core/ks_core.h"
#include "core/threadpool.h"
#include "kv/kv_cache.h"
#include "model/attention.h"
#include "platform/pages.h"
#include "tensor/attn_kv.h"
#include "tensor/kernels.h"
#include "tensor/types.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct shape {
    const char *name;
    int n_head, n_head_kv, head_dim, n_layer;
} shape;
static const shape shapes[] = {{"qwen3-0.6b", 16, 8, 128, 28}, {"qwen3-30b-a3b", 32, 4, 128, 48}};
#define MAX_ROW_ELEMS 1024 /* n_head_kv * head_dim of every shape above */
#define BLOCK KS_KV_DEFAULT_BLOCK_TOKENS /* the cache's blocks */
#define MAX_RUNS 51

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float frand(void) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng >> 40) & 0xffffff) / 8388608.0f - 1.0f;
}

typedef struct bench {
    ks_hparams hp;
    ks_kv_layout kv;
    uint8_t *pool;
    size_t pool_bytes;
    int n_blocks_seq;   /* blocks per sequence */
    int n_seqs;
    int32_t *tables;    /* (n_seqs, n_blocks_seq) */
    ks_seq_view *views;
    ks_attention *attn;
    ks_threadpool *tp;
} bench;

/* Fills every block with random rows of the KV type (a few distinct rows, tiled). */
static void fill_pool(bench *b) {
    const int n = (int)b->kv.row_elems;
    float row[MAX_ROW_ELEMS];
    uint8_t seed[4][MAX_ROW_ELEMS * 4];
    for (int s = 0; s < 4; s++) {
        for (int i = 0; i < n; i++)
            row[i] = frand();
        const ks_kernels *k = ks_kernels_get();
        switch (b->kv.kv_type) {
        case KS_TYPE_F32: memcpy(seed[s], row, (size_t)n * sizeof(float)); break;
        case KS_TYPE_F16: k->fp32_to_fp16_row(row, (ks_fp16 *)seed[s], n); break;
        default: k->quantize_act[KS_TYPE_Q8_0](row, seed[s], n); break;
        }
    }
    /* keys in panels: 16 positions' K rows as the pool holds them (kv_layout.h) */
    static uint8_t panels[16 * MAX_ROW_ELEMS * 4];
    const size_t head_bytes = b->kv.head_bytes;
    const int nb = b->hp.head_dim / KS_QK8_0;
    if (b->kv.k_panels)
        for (int i = 0; i < 16; i++)
            for (int h = 0; h < b->hp.n_head_kv; h++) {
                uint8_t *panel = panels + (size_t)h * 16 * head_bytes;
                if (b->kv.kv_type == KS_TYPE_F16)
                    kv_f16_panel_put((ks_fp16 *)panel, i, (const ks_fp16 *)seed[i % 4] + (size_t)h * b->hp.head_dim,
                                     b->hp.head_dim);
                else
                    kv_q8_panel_put((kv_q8_panel *)panel, i, (const ks_block_q8_0 *)seed[i % 4] + (size_t)h * nb, nb);
            }
    const size_t n_rows = b->pool_bytes / b->kv.row_bytes, B = (size_t)b->kv.block_tokens;
    for (size_t r = 0; r < n_rows; r++) {
        const bool k_panel = b->kv.k_panels && r % (2 * B) < B; /* a K row of a block's layer */
        memcpy(b->pool + r * b->kv.row_bytes, k_panel ? panels + (r % 16) * b->kv.row_bytes : seed[r % 4],
               b->kv.row_bytes);
    }
}

/* One pass over all layers, in seconds. */
static double run_layers(bench *b, const ks_batch *batch, const float *q, float *out) {
    double t0 = now_s();
    for (int il = 0; il < b->hp.n_layer; il++)
        ks_attention_run(b->attn, b->tp, b->pool, batch, il, q, out);
    return now_s() - t0;
}

/* The median of runs passes after a warm-up, in seconds. With a probe, *share is the
 * median over the runs of bytes / time over the read bandwidth the probe read right
 * before and right after the run (the better of the two): on a shared host the bandwidth
 * moves within seconds (bench_limits.h). */
static double time_layers(bench *b, const ks_batch *batch, const float *q, float *out, int runs,
                          ks_bench_probe *probe, double bytes, double *share) {
    double t[MAX_RUNS], sh[MAX_RUNS];
    (void)run_layers(b, batch, q, out);
    for (int r = 0; r < runs; r++) {
        const double roof0 = probe ? ks_bench_probe_read_bps(probe) : 0;
        t[r] = run_layers(b, batch, q, out);
        if (probe)
            sh[r] = bytes / t[r] / KS_MAX(roof0, ks_bench_probe_read_bps(probe));
    }
    qsort(t, (size_t)runs, sizeof *t, cmp_double);
    if (probe) {
        qsort(sh, (size_t)runs, sizeof *sh, cmp_double);
        *share = sh[runs / 2];
    }
    return t[runs / 2];
}

int main(int argc, char **argv) {
    int nth = 2, n_seqs = 1, n_prompt = 512, runs = 5, n_shared = 0;
    const char *depths = "0,4096,16384", *kv_name = "f16", *shape_name = shapes[0].name;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-t") && v) nth = atoi(argv[++i]);
        else if (!strcmp(a, "-d") && v) depths = argv[++i];
        else if (!strcmp(a, "-s") && v) n_seqs = atoi(argv[++i]);
        else if (!strcmp(a, "--shared") && v) n_shared = atoi(argv[++i]);
        else if (!strcmp(a, "-p") && v) n_prompt = atoi(argv[++i]);
        else if (!strcmp(a, "-r") && v) runs = atoi(argv[++i]);
        else if (!strcmp(a, "--kv") && v) kv_name = argv[++i];
        else if (!strcmp(a, "--shape") && v) shape_name = argv[++i];
        else {
            fprintf(stderr, "usage: bench_attention [-t THREADS] [-d DEPTH,...] [-s SEQS] [--shared N] [-p TOKENS] "
                            "[--kv f16|q8_0|f32] [-r RUNS] [--shape qwen3-0.6b|qwen3-30b-a3b]\n");
            return 2;
        }
    }
    const shape *sh = NULL;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        if (!strcmp(shapes[i].name, shape_name))
            sh = &shapes[i];
    if (!sh) {
        fprintf(stderr, "bench_attention: unknown shape %s (qwen3-0.6b, qwen3-30b-a3b)\n", shape_name);
        return 2;
    }
    runs = KS_MAX(1, KS_MIN(runs, MAX_RUNS));
    n_seqs = KS_MAX(1, n_seqs);
    int kv_type = ks_type_from_name(kv_name);
    if (kv_type < 0) {
        fprintf(stderr, "bench_attention: unknown KV type %s\n", kv_name);
        return 2;
    }
    int max_depth = 0, list[32], n_depths = 0;
    for (const char *p = depths; *p && n_depths < 32;) {
        list[n_depths] = atoi(p);
        max_depth = KS_MAX(max_depth, list[n_depths]);
        n_depths++;
        p = strchr(p, ',');
        if (!p)
            break;
        p++;
    }

    bench b = {0};
    b.hp.n_head = sh->n_head;
    b.hp.n_head_kv = sh->n_head_kv;
    b.hp.head_dim = sh->head_dim;
    b.hp.n_layer = sh->n_layer;
    const int n_head = sh->n_head, head_dim = sh->head_dim, n_layer = sh->n_layer;
    ks_err err;
    if (ks_kv_layout_init(&b.kv, (uint32_t)kv_type, BLOCK, n_layer, sh->n_head_kv, head_dim, &err) != KS_OK) {
        fprintf(stderr, "bench_attention: %s\n", err.msg);
        return 1;
    }
    int max_pos = max_depth + KS_MAX(n_prompt, 1);
    b.n_blocks_seq = (max_pos + BLOCK - 1) / BLOCK;
    b.n_seqs = n_seqs;
    int n_blocks = b.n_blocks_seq * n_seqs;
    b.pool_bytes = (size_t)n_blocks * b.kv.block_bytes;
    b.pool = ks_pages_alloc(b.pool_bytes);
    b.tables = malloc((size_t)n_blocks * sizeof *b.tables);
    b.views = malloc((size_t)n_seqs * sizeof *b.views);
    if (!b.pool || !b.tables || !b.views) {
        fprintf(stderr, "bench_attention: out of memory for a %.2f GiB pool\n", (double)b.pool_bytes / (1u << 30));
        return 1;
    }
    fill_pool(&b);
    /* sequence s's block i: interleaved with the others', as sequences that grew together;
     * the shared prefix's blocks are sequence 0's */
    const int shared_blocks = KS_MAX(0, n_shared) / BLOCK;
    for (int s = 0; s < n_seqs; s++) {
        for (int i = 0; i < b.n_blocks_seq; i++)
            b.tables[s * b.n_blocks_seq + i] = i < shared_blocks ? i * n_seqs : i * n_seqs + s;
        b.views[s] = (ks_seq_view){b.tables + (size_t)s * b.n_blocks_seq, b.n_blocks_seq};
    }
    if (ks_attention_create(&b.attn, &b.hp, &b.kv, max_pos, nth, &err) != KS_OK) {
        fprintf(stderr, "bench_attention: %s\n", err.msg);
        return 1;
    }
    b.tp = ks_threadpool_create(nth);

    int max_t = KS_MAX(n_seqs, n_prompt);
    float *q = malloc((size_t)max_t * n_head * head_dim * sizeof(float));
    float *out = malloc((size_t)max_t * n_head * head_dim * sizeof(float));
    int32_t *pos = malloc((size_t)max_t * sizeof(int32_t)), *seq = malloc((size_t)max_t * sizeof(int32_t));
    for (size_t i = 0; i < (size_t)max_t * n_head * head_dim; i++)
        q[i] = frand();

    printf("attention (%s): %d query heads over %d KV heads of %d, %d layers, KV %s, %d threads; median of %d "
           "runs\n\n",
           sh->name, n_head, sh->n_head_kv, head_dim, n_layer, ks_type_name((uint32_t)kv_type), nth, runs);
    ks_bench_probe *probe = NULL;
    if (ks_bench_probe_create(&probe, nth, 0, &err) != KS_OK) {
        fprintf(stderr, "bench_attention: %s\n", err.msg);
        return 1;
    }
    printf("| case                 |   depth | ms (all layers) | K/V read GB/s |  GMAC/s | of rep roof |\n");
    printf("|----------------------|--------:|----------------:|--------------:|--------:|------------:|\n");
    for (int di = 0; di < n_depths; di++) {
        int d = list[di];
        /* decode: one token per sequence at position d */
        for (int s = 0; s < n_seqs; s++) {
            pos[s] = d;
            seq[s] = s;
        }
        ks_batch dec = {n_seqs, NULL, pos, seq, NULL, b.views, n_seqs};
        /* K and V rows read: the shared prefix's (those before every token) once */
        const double once = n_seqs > 1 ? KS_MIN(shared_blocks * BLOCK, d) : 0;
        double rows = (once + (d + 1 - once) * n_seqs) * n_layer * 2, share;
        double t = time_layers(&b, &dec, q, out, runs, probe, rows * b.kv.row_bytes, &share);
        double macs = 2.0 * (d + 1) * n_head * head_dim * n_layer * n_seqs;
        char label[48];
        if (once > 0)
            snprintf(label, sizeof label, "decode x%d, %d shared", n_seqs, (int)once);
        else
            snprintf(label, sizeof label, "decode x%d", n_seqs);
        printf("| %-20s | %7d | %15.2f | %13.2f | %7.1f | %10.1f%% |\n", label, d, t * 1e3,
               rows * b.kv.row_bytes / t / 1e9, macs / t / 1e9, 100 * share);
        if (n_prompt <= 0)
            continue;
        /* prefill: n_prompt tokens of sequence 0 from position d on */
        for (int i = 0; i < n_prompt; i++) {
            pos[i] = d + i;
            seq[i] = 0;
        }
        ks_batch pre = {n_prompt, NULL, pos, seq, NULL, b.views, 1};
        t = time_layers(&b, &pre, q, out, runs, NULL, 0, NULL);
        macs = 0;
        for (int i = 0; i < n_prompt; i++)
            macs += 2.0 * (d + i + 1) * n_head * head_dim * n_layer;
        snprintf(label, sizeof label, "prefill %d", n_prompt);
        printf("| %-20s | %7d | %15.2f | %13s | %7.1f | %11s |\n", label, d, t * 1e3, "-", macs / t / 1e9, "-");
    }
    ks_bench_probe_destroy(probe);
    free(q);
    free(out);
    free(pos);
    free(seq);
    ks_threadpool_destroy(b.tp);
    ks_attention_destroy(b.attn);
    ks_pages_free(b.pool, b.pool_bytes);
    free(b.tables);
    free(b.views);
    return 0;
}
