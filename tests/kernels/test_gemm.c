/* test_gemm.c — every GEMM kernel of every kernel set against its own vec_dot.
 *
 * A GEMM kernel (kernels.h, ks_gemm_kernel) must give, for every token t and weight row
 * r of the range it was asked for, vec_dot(w row r, token t) up to the order of the float
 * additions, write nothing outside that range, and handle token counts that are not a
 * multiple of its tile and row ranges with a short last panel. Shapes are chosen around
 * the tile size (16) and block size; the weights are random, quantized by the type's own
 * codec; activations by the set's quantize_act. */
#include "tensor/kernels.h"
#include "tensor/types.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const isas[] = {"amx"};

static uint64_t rng_state = 0x2545f4914f6cdd1dull;
static float frand(void) { /* uniform in [-1, 1) */
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng_state >> 40) / (double)(1ull << 24)) * 2.0f - 1.0f;
}

/* sum_i |w_i a_i| of the dequantized rows (x, x2: scratch of n floats) */
static double abs_dot(ks_type wt, ks_type at, const void *w, const void *a, int n, float *x, float *x2) {
    ks_type_traits_of(wt)->to_float(w, x, n);
    ks_type_traits_of(at)->to_float(a, x2, n);
    double s = 0;
    for (int i = 0; i < n; i++)
        s += fabs((double)x[i] * x2[i]);
    return s > 0 ? s : 1;
}

/* Runs one shape: T tokens, n elements, weight rows [r0, r1) of n_rows. Returns the
 * largest |gemm - vec_dot| / (sum of |terms| bound), and checks untouched outputs. */
static double run_case(const ks_kernels *k, ks_type wt, int T, int n, int n_rows, int r0, int r1) {
    const ks_gemm_kernel *g = &k->gemm[wt];
    ks_type at = (ks_type)ks_type_traits_of(wt)->dot_type;
    size_t rb = ks_type_row_size(wt, n, NULL), ab = ks_type_row_size(at, n, NULL);
    uint8_t *w = malloc(rb * (size_t)n_rows), *xq = malloc(ab * (size_t)T);
    float *x = malloc(sizeof(float) * (size_t)n), *x2 = malloc(sizeof(float) * (size_t)n), *y = malloc(sizeof(float) * (size_t)T * n_rows);
    size_t act_bytes = (g->act_bytes(T, n) + 63) / 64 * 64;
    void *act = aligned_alloc(64, act_bytes), *scratch = malloc(g->scratch_bytes(n));
    cr_assert(w && xq && x && x2 && y && act && scratch);
    for (int r = 0; r < n_rows; r++) {
        float scale = 0.1f + (float)(r % 7);
        for (int i = 0; i < n; i++)
            x[i] = frand() * scale;
        ks_type_traits_of(wt)->from_float(x, w + (size_t)r * rb, n);
    }
    for (int t = 0; t < T; t++) {
        for (int i = 0; i < n; i++)
            x[i] = frand() * (t % 3 == 0 ? 4.0f : 0.5f);
        k->quantize_act[at](x, xq + (size_t)t * ab, n);
    }
    for (int t = 0; t < (T + KS_GEMM_ROWS - 1) / KS_GEMM_ROWS * KS_GEMM_ROWS; t++)
        g->pack_act(t < T ? xq + (size_t)t * ab : NULL, t, T, n, act);
    const float sentinel = 12345.0f;
    for (size_t i = 0; i < (size_t)T * n_rows; i++)
        y[i] = sentinel;
    g->run(w, rb, r0, r1, act, T, n, y, (size_t)n_rows, scratch);
    double worst = 0;
    for (int t = 0; t < T; t++)
        for (int r = 0; r < n_rows; r++) {
            float got = y[(size_t)t * n_rows + r];
            if (r < r0 || r >= r1) {
                cr_assert_eq(got, sentinel, "T=%d n=%d rows [%d,%d): output (%d,%d) outside the range written",
                             T, n, r0, r1, t, r);
                continue;
            }
            float want = k->vec_dot[wt](w + (size_t)r * rb, xq + (size_t)t * ab, n);
            /* float rounding is relative to the terms summed, not to their (cancelling) sum */
            double mag = abs_dot(wt, at, w + (size_t)r * rb, xq + (size_t)t * ab, n, x, x2);
            double err = fabs((double)got - (double)want) / mag;
            worst = err > worst ? err : worst;
        }
    free(w);
    free(xq);
    free(x);
    free(x2);
    free(y);
    free(act);
    free(scratch);
    return worst;
}

Test(gemm, test_gemm_matches_vec_dot_on_every_shape) {
    static const int tokens[] = {1, 5, 16, 17, 40};
    static const int lengths[] = {32, 96, 256, 1024, 1056};
    int tested = 0;
    for (size_t s = 0; s < sizeof isas / sizeof isas[0]; s++) {
        const ks_kernels *k = ks_kernels_for_isa(isas[s]);
        if (!k) {
            cr_log_info("%s kernels not available on this CPU/build: skipped", isas[s]);
            continue;
        }
        for (int wt = 0; wt < KS_TYPE_COUNT; wt++) {
            if (!k->gemm[wt].run)
                continue;
            int bs = (int)ks_type_traits_of((ks_type)wt)->block_size;
            for (size_t a = 0; a < sizeof tokens / sizeof tokens[0]; a++)
                for (size_t b = 0; b < sizeof lengths / sizeof lengths[0]; b++) {
                    int n = lengths[b];
                    if (n % bs)
                        continue;
                    /* whole panels; a range starting mid-matrix with a short last panel */
                    double e1 = run_case(k, (ks_type)wt, tokens[a], n, 48, 0, 48);
                    double e2 = run_case(k, (ks_type)wt, tokens[a], n, 64, 16, 53);
                    double e = e1 > e2 ? e1 : e2;
                    cr_expect_leq(e, 1e-5, "%s %s T=%d n=%d: relative error %.3g", isas[s],
                                  ks_type_traits_of((ks_type)wt)->name, tokens[a], n, e);
                    tested++;
                }
        }
    }
    cr_log_info("%d gemm cases", tested);
}
