/* kernels.c — micro-benchmark of the matrix-vector product behind decode.
 *
 *   bench_kernels [--rows N] [--cols N] [--runs N] [--type NAME] [--best]
 *
 * For every weight type and every kernel set this CPU runs (ref, avx2, avx512, neon):
 * the GB/s of weight bytes one thread streams through vec_dot, over
 *
 *   stream    a rows x cols matrix (default 4096 x 4096, larger than any L2), read once
 *             per run: the decode case, bounded by memory bandwidth once a kernel is
 *             fast enough;
 *   hot       a matrix of HOT_BYTES that stays in L2, read many times per run: the
 *             kernel's own speed, which is what a memory-bound kernel needs to spare;
 *   hot 2w    the same through vec_dot_2w (two weight rows per call, where the set has
 *             it, asking for the next two as it goes), as decode takes the rows;
 *   prefill   the hot matrix against KS_VEC_DOT_ROWS tokens, each weight row dotted
 *             with all of them by vec_dot one token at a time and by vec_dot_4 at once
 *             (where the set has it; over rows packed beforehand where the set has a
 *             packed 4-row kernel, as matmul uses it), in GB/s of weight bytes x tokens:
 *             the compute side of a batched prefill or of a decode step of 4 sequences.
 *
 * One run does what forward.c's matmul does for one token on one thread: dot every weight
 * row with the activation row (converted beforehand by the set's quantize_act). The
 * figure is the median of --runs runs after a warm-up (--best: the fastest run, for a
 * machine shared with other work, where the median of runs as long as a stream run
 * measures the neighbours). The weights are a few rows
 * quantized from random floats, tiled down the matrix (the values do not change the
 * speed); the buffer is 2 MiB aligned and advised for transparent huge pages, as model
 * mappings are. */
#include "tensor/kernels.h"
#include "core/cpu.h"
#include "tensor/types.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

/* In L2 on every x86-64 and arm64 core kvserve targets (256 KiB .. 2 MiB), with room
 * for the activation row. */
#define HOT_BYTES (256 * 1024)
/* Bytes a hot run reads in total (4 passes): ~0.1 ms, long against the clock's resolution
 * and short against a scheduler time slice, so that on a busy machine most runs go
 * uninterrupted and the median is the kernel's speed. */
#define HOT_TOTAL_BYTES (1024u * 1024)
/* Distinct quantized rows tiled down a matrix. */
#define SEED_ROWS 8
#define MAX_RUNS 101

static const ks_type bench_types[] = {
    KS_TYPE_F32,  KS_TYPE_F16,  KS_TYPE_BF16, KS_TYPE_Q8_0, KS_TYPE_Q4_0, KS_TYPE_Q4_1,
    KS_TYPE_Q5_0, KS_TYPE_Q5_1, KS_TYPE_Q4_K, KS_TYPE_Q5_K, KS_TYPE_Q6_K, KS_TYPE_Q2_K,
    KS_TYPE_Q3_K, KS_TYPE_IQ4_NL, KS_TYPE_IQ4_XS,
};
#define N_TYPES (int)(sizeof bench_types / sizeof bench_types[0])

static const char *const isa_names[] = {"ref", "avx2", "avx512", "neon"};
#define N_ISAS (int)(sizeof isa_names / sizeof isa_names[0])

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float frand(void) { /* uniform in [-1, 1) */
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng >> 40) & 0xffffff) / 8388608.0f - 1.0f;
}

/* 2 MiB aligned, advised for huge pages; NULL if out of memory. */
static void *alloc_weights(size_t bytes) {
    const size_t align = 2u << 20;
    void *p = NULL;
    if (posix_memalign(&p, align, (bytes + align - 1) / align * align) != 0)
        return NULL;
#ifdef MADV_HUGEPAGE
    madvise(p, (bytes + align - 1) / align * align, MADV_HUGEPAGE);
#endif
    return p;
}

/* rows x cols of type t: SEED_ROWS rows quantized from random floats, tiled. */
static void fill_weights(ks_type t, uint8_t *w, int64_t rows, int64_t cols, size_t row_bytes) {
    float *x = malloc((size_t)cols * sizeof *x);
    for (int64_t r = 0; r < rows; r++) {
        if (r < SEED_ROWS) {
            for (int64_t i = 0; i < cols; i++)
                x[i] = 0.02f * (frand() + frand() + frand());
            ks_type_traits_of(t)->from_float(x, w + (size_t)r * row_bytes, cols);
        } else {
            memcpy(w + (size_t)r * row_bytes, w + (size_t)(r % SEED_ROWS) * row_bytes, row_bytes);
        }
    }
    free(x);
}

typedef struct gemv {
    const ks_kernels *k;
    ks_type t;
    const uint8_t *w; /* (rows, row_bytes) weights */
    int64_t rows, cols;
    size_t row_bytes;
    const float *x;   /* (tokens, cols) activations */
    uint8_t *xq;      /* (tokens, act_bytes) activations in t's dot type */
    size_t act_bytes; /* bytes of one converted activation row */
    float *y;         /* (rows, KS_VEC_DOT_ROWS) */
    int tokens;       /* 1, or KS_VEC_DOT_ROWS */
    bool use4;        /* tokens > 1: one vec_dot_4 call per weight row */
    bool use2w;       /* one token: vec_dot_2w on pairs of weight rows */
    uint8_t *packed;  /* use4 with a packed 4-row kernel: the rows packed for it, else NULL */
    uint8_t *pk;      /* w is in panels (kernels.h, ks_panel_kernels): each token's pack_act
                       * bytes, pk_bytes apart; else NULL */
    size_t pk_bytes;
} gemv;

/* Converts the activations to t's dot type (once per measurement, outside the timing:
 * a real GEMV spreads that cost over many more rows than a hot run has). */
static void convert_activations(const gemv *g) {
    const ks_type at = ks_type_traits_of(g->t)->dot_type;
    for (int j = 0; j < g->tokens; j++)
        g->k->quantize_act[at](g->x + (size_t)j * g->cols, g->xq + (size_t)j * g->act_bytes,
                               g->cols);
    for (int j = 0; g->pk && j < g->tokens; j++)
        g->k->panel[g->t].pack_act(g->xq + (size_t)j * g->act_bytes, g->cols, g->pk + (size_t)j * g->pk_bytes);
    if (g->packed) {
        const void *rows[KS_VEC_DOT_ROWS];
        for (int j = 0; j < KS_VEC_DOT_ROWS; j++)
            rows[j] = g->xq + (size_t)j * g->act_bytes;
        g->k->vec_dot_4_packed[g->t].pack(rows, g->cols, g->packed);
    }
}

/* The weight rows times the tokens, the rows read `passes` times; seconds taken. */
static double run_gemv(const gemv *g, int passes) {
    const ks_vec_dot_fn dot = g->k->vec_dot[g->t];
    const ks_vec_dot_4_fn dot4 = g->k->vec_dot_4[g->t];
    const ks_dot4_packed *pk = &g->k->vec_dot_4_packed[g->t];
    const ks_vec_dot_2w_fn dot2 = g->k->vec_dot_2w[g->t];
    const double t0 = now_s();
    for (int p = 0; p < passes; p++) {
        /* panels: two side by side a call, as decode walks them */
        const size_t pb = KS_PANEL_ROWS * g->row_bytes;
        for (int64_t r = 0; g->pk && r < g->rows; r += 2 * KS_PANEL_ROWS) {
            const uint8_t *p0 = g->w + (size_t)r * g->row_bytes;
            const bool two = r + KS_PANEL_ROWS < g->rows, more = r + 2 * KS_PANEL_ROWS < g->rows;
            const void *panels[2] = {p0, two ? p0 + pb : NULL};
            const void *next[2] = {more ? p0 + 2 * pb : NULL, more && two ? p0 + 3 * pb : NULL};
            float *const ys[2] = {g->y, g->y + KS_PANEL_ROWS};
            g->k->panel[g->t].gemv(panels, next, g->xq, g->act_bytes, g->pk, g->pk_bytes, g->tokens, g->cols, ys,
                                   2 * KS_PANEL_ROWS);
        }
        for (int64_t r = 0; !g->pk && g->use2w && r < g->rows; r += 2) {
            const uint8_t *wr = g->w + (size_t)r * g->row_bytes;
            float s[2];
            /* the next pair asked for as the kernel goes, as decode calls it */
            const void *const pf[2] = {r + 2 < g->rows ? wr + 2 * g->row_bytes : NULL,
                                       r + 3 < g->rows ? wr + 3 * g->row_bytes : NULL};
            if (r + 1 < g->rows)
                dot2(wr, wr + g->row_bytes, g->xq, 0, 1, g->cols, s, pf);
            else
                s[0] = s[1] = dot(wr, g->xq, g->cols);
            g->y[(size_t)r * KS_VEC_DOT_ROWS] = s[0] + s[1];
        }
        for (int64_t r = 0; !g->pk && !g->use2w && r < g->rows; r++) {
            const uint8_t *wr = g->w + (size_t)r * g->row_bytes;
            float *yr = g->y + (size_t)r * KS_VEC_DOT_ROWS;
            if (g->use4 && g->packed)
                pk->run(wr, g->packed, g->cols, yr, r + 1 < g->rows ? wr + g->row_bytes : NULL);
            else if (g->use4)
                dot4(wr, g->xq, g->act_bytes, g->cols, yr, r + 1 < g->rows ? wr + g->row_bytes : NULL);
            else
                for (int j = 0; j < g->tokens; j++)
                    yr[j] = dot(wr, g->xq + (size_t)j * g->act_bytes, g->cols);
        }
    }
    return now_s() - t0;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static bool best; /* --best: report the fastest run instead of the median */

/* Median (or best) GB/s of weight bytes (times tokens) over `runs` runs after one
 * warm-up. */
static double median_gbps(const gemv *g, int passes, int runs) {
    double s[MAX_RUNS];
    convert_activations(g);
    run_gemv(g, passes);
    for (int i = 0; i < runs; i++)
        s[i] =
            (double)g->row_bytes * (double)g->rows * passes * g->tokens / run_gemv(g, passes) / 1e9;
    qsort(s, (size_t)runs, sizeof s[0], cmp_double);
    return best ? s[runs - 1] : s[runs / 2];
}

static void usage(void) {
    fprintf(stderr,
            "usage: bench_kernels [--rows N] [--cols N] [--runs N (1..%d)] [--type NAME] "
            "[--best]\n",
            MAX_RUNS);
}

int main(int argc, char **argv) {
    int64_t rows = 4096, cols = 4096;
    int runs = 31, only = -1;
    bool type_given = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--best")) {
            best = true;
            continue;
        }
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            usage();
            return 2;
        }
        if (!strcmp(argv[i], "--rows"))
            rows = atoll(v);
        else if (!strcmp(argv[i], "--cols"))
            cols = atoll(v);
        else if (!strcmp(argv[i], "--runs"))
            runs = atoi(v);
        else if (!strcmp(argv[i], "--type")) {
            only = ks_type_from_name(v);
            type_given = true;
        } else {
            usage();
            return 2;
        }
        i++;
    }
    if (rows < 1 || cols < 256 || cols % 256 || runs < 1 || runs > MAX_RUNS ||
        (type_given && only < 0)) {
        usage();
        return 2;
    }

    const ks_kernels *sets[N_ISAS];
    for (int j = 0; j < N_ISAS; j++)
        sets[j] = ks_kernels_for_isa(isa_names[j]);
    char cpu[256];
    ks_cpu_describe(ks_cpu_detect(), cpu, sizeof cpu);
    printf("bench_kernels: GEMV, 1 thread, GB/s of weight bytes (x tokens for prefill), %s of "
           "%d runs\n",
           best ? "best" : "median", runs);
    printf("cpu: %s; selected kernels: %s\n", cpu, ks_kernels_get()->isa);
    printf("stream: %lld x %lld matrix; hot: %d KiB of rows, in L2\n\n", (long long)rows,
           (long long)cols, HOT_BYTES / 1024);
    printf("%-6s %9s | stream:", "type", "MiB");
    for (int j = 0; j < N_ISAS; j++)
        if (sets[j])
            printf(" %7s", isa_names[j]);
    printf(" | hot:");
    for (int j = 0; j < N_ISAS; j++)
        if (sets[j])
            printf(" %7s", isa_names[j]);
    printf(" | hot 2w:");
    for (int j = 0; j < N_ISAS; j++)
        if (sets[j])
            printf(" %7s", isa_names[j]);
    printf(" | panels x1, x%d:", KS_VEC_DOT_ROWS);
    for (int j = 0; j < N_ISAS; j++)
        if (sets[j])
            printf(" %6s %6s", isa_names[j], "");
    printf(" | prefill x%d:", KS_VEC_DOT_ROWS);
    for (int j = 1; j < N_ISAS; j++)
        if (sets[j])
            printf(" %6s %6s", isa_names[j], "dot4");
    printf("\n");

    const int nx = KS_VEC_DOT_ROWS;
    float *x = malloc((size_t)cols * nx * sizeof *x);
    float *y = malloc((size_t)rows * nx * sizeof *y);
    uint8_t *xq = malloc((size_t)cols * nx * sizeof(float));
    uint8_t *packed = aligned_alloc(64, (size_t)cols * nx * sizeof(float));
    if (!x || !y || !xq || !packed) {
        fprintf(stderr, "bench_kernels: out of memory\n");
        return 1;
    }
    for (int64_t i = 0; i < cols * nx; i++)
        x[i] = frand() + frand() + frand();
    for (int it = 0; it < N_TYPES; it++) {
        const ks_type t = bench_types[it];
        if (only >= 0 && (int)t != only)
            continue;
        const size_t row_bytes = ks_type_row_size(t, cols, NULL);
        const size_t act_bytes = ks_type_row_size(ks_type_traits_of(t)->dot_type, cols, NULL);
        uint8_t *w = alloc_weights(row_bytes * (size_t)rows);
        if (!w) {
            fprintf(stderr, "bench_kernels: out of memory\n");
            return 1;
        }
        fill_weights(t, w, rows, cols, row_bytes);
        int64_t hot_rows = HOT_BYTES / (int64_t)row_bytes;
        if (hot_rows < 1)
            hot_rows = 1;
        if (hot_rows > rows)
            hot_rows = rows;
        const int hot_passes = (int)(HOT_TOTAL_BYTES / (row_bytes * (size_t)hot_rows)) + 1;
        printf("%-6s %9.1f |        ", ks_type_name(t),
               (double)row_bytes * (double)rows / (1 << 20));
        for (int j = 0; j < N_ISAS; j++)
            if (sets[j]) {
                const gemv g = {sets[j], t,  w,         rows, cols,  row_bytes,
                                x,       xq, act_bytes, y,    1,    false, false, NULL, NULL, 0};
                printf(" %7.2f", median_gbps(&g, 1, runs));
                fflush(stdout);
            }
        printf(" |     ");
        for (int j = 0; j < N_ISAS; j++)
            if (sets[j]) {
                const gemv g = {sets[j], t,  w,         hot_rows, cols,  row_bytes,
                                x,       xq, act_bytes, y,        1,    false, false, NULL, NULL, 0};
                printf(" %7.2f", median_gbps(&g, hot_passes, runs));
                fflush(stdout);
            }
        printf(" |        ");
        for (int j = 0; j < N_ISAS; j++)
            if (sets[j]) {
                const gemv g = {sets[j], t,  w,         hot_rows, cols,  row_bytes,
                                x,       xq, act_bytes, y,        1,    false, true, NULL, NULL, 0};
                if (sets[j]->vec_dot_2w[t])
                    printf(" %7.2f", median_gbps(&g, hot_passes, runs));
                else
                    printf(" %7s", "-");
                fflush(stdout);
            }
        /* the hot rows repacked in panels, where a set has them for t */
        printf(" |                ");
        const int64_t panel_rows = hot_rows / (2 * KS_PANEL_ROWS) * (2 * KS_PANEL_ROWS);
        for (int j = 0; j < N_ISAS; j++)
            if (sets[j]) {
                const ks_panel_kernels *pn = &sets[j]->panel[t];
                if (!pn->gemv || panel_rows == 0) {
                    printf(" %6s %6s", "-", "-");
                    continue;
                }
                uint8_t *pw = alloc_weights(row_bytes * (size_t)panel_rows), *scratch = malloc(KS_PANEL_ROWS * row_bytes);
                uint8_t *pkb = malloc(pn->act_bytes(cols) * (size_t)nx);
                if (!pw || !scratch || !pkb) {
                    fprintf(stderr, "bench_kernels: out of memory\n");
                    return 1;
                }
                memcpy(pw, w, row_bytes * (size_t)panel_rows);
                for (int64_t r = 0; r < panel_rows; r += KS_PANEL_ROWS)
                    pn->repack(pw + (size_t)r * row_bytes, row_bytes, cols, scratch);
                for (int tok = 1; tok <= nx; tok += nx - 1) {
                    gemv g = {sets[j], t, pw, panel_rows, cols, row_bytes, x, xq, act_bytes, y, tok, false, false, NULL,
                              pkb, pn->act_bytes(cols)};
                    printf(" %6.2f", median_gbps(&g, hot_passes / tok + 1, runs));
                    fflush(stdout);
                }
                free(pw);
                free(scratch);
                free(pkb);
            }
        printf(" |            ");
        for (int j = 1; j < N_ISAS; j++)
            if (sets[j]) {
                gemv g = {sets[j], t, w, hot_rows, cols, row_bytes, x, xq, act_bytes, y, nx, false, false, NULL, NULL, 0};
                const int passes = hot_passes / nx + 1;
                printf(" %6.2f", median_gbps(&g, passes, runs));
                g.use4 = sets[j]->vec_dot_4[t] != NULL;
                if (g.use4 && sets[j]->vec_dot_4_packed[t].run)
                    g.packed = packed;
                if (g.use4)
                    printf(" %6.2f", median_gbps(&g, passes, runs));
                else
                    printf(" %6s", "-");
                fflush(stdout);
            }
        printf("\n");
        free(w);
    }
    free(x);
    free(y);
    free(xq);
    free(packed);
    return 0;
}
