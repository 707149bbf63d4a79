/* test_panel.c — the panel layout's kernels (kernels.h, ks_panel_kernels) of every kernel
 * set that has them, against the scalar reference (tensor/ref/panel_ref.c) and vec_dot.
 *
 *   repack: the same bytes as the reference's; a panel row back to floats: the row's
 *           own values, exactly;
 *   gemv:   the reference's results bit for bit for 1-4 tokens a call (so a token's
 *           results do not depend on the others in the call), and vec_dot's over the
 *           rows up to the order of float additions;
 *   gemm:   the gemv's results for every token count (Q8_0: bit for bit; others up to
 *           the order of float additions), over a range of panels starting
 *           mid-matrix, writing nothing outside it.
 * Weights random, quantized by the type's codec; activations by the set's quantize_act. */
#include "tensor/kernels.h"
#include "tensor/quants.h"
#include "tensor/ref/kernels_ref.h"
#include "tensor/types.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const isas[] = {"avx2", "avx512", "amx"};

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static float frand(void) { /* uniform in [-1, 1) */
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng_state >> 40) / (double)(1ull << 24)) * 2.0f - 1.0f;
}

#define N_ROWS 64
#define MAX_T 40

typedef struct fixture {
    int n;
    size_t rb, ab, pkb;
    uint8_t *rows, *panels, *xq, *pk;
    float *x, *x2;
} fixture;

static fixture make(const ks_kernels *k, ks_type wt, int n, int T) {
    fixture f = {.n = n};
    ks_type at = (ks_type)ks_type_traits_of(wt)->dot_type;
    f.rb = ks_type_row_size(wt, n, NULL);
    f.ab = ks_type_row_size(at, n, NULL);
    f.pkb = k->panel[wt].act_bytes(n);
    f.rows = malloc(f.rb * N_ROWS);
    f.panels = malloc(f.rb * N_ROWS);
    f.xq = malloc(f.ab * (size_t)T);
    f.pk = malloc(f.pkb * (size_t)T);
    f.x = malloc(sizeof(float) * (size_t)n);
    f.x2 = malloc(sizeof(float) * (size_t)n);
    cr_assert(f.rows && f.panels && f.xq && f.pk && f.x && f.x2);
    for (int r = 0; r < N_ROWS; r++) {
        float scale = 0.1f + (float)(r % 7);
        for (int i = 0; i < n; i++)
            f.x[i] = frand() * scale;
        ks_type_traits_of(wt)->from_float(f.x, f.rows + (size_t)r * f.rb, n);
    }
    for (int t = 0; t < T; t++) {
        for (int i = 0; i < n; i++)
            f.x[i] = frand() * (t % 3 == 0 ? 4.0f : 0.5f);
        k->quantize_act[at](f.x, f.xq + (size_t)t * f.ab, n);
        k->panel[wt].pack_act(f.xq + (size_t)t * f.ab, n, f.pk + (size_t)t * f.pkb);
    }
    return f;
}

static void release(fixture *f) {
    free(f->rows);
    free(f->panels);
    free(f->xq);
    free(f->pk);
    free(f->x);
    free(f->x2);
}

/* sum_i |w_i a_i| of row r and token t, dequantized */
static double abs_dot(ks_type wt, const fixture *f, int r, int t) {
    ks_type at = (ks_type)ks_type_traits_of(wt)->dot_type;
    ks_type_traits_of(wt)->to_float(f->rows + (size_t)r * f->rb, f->x, f->n);
    ks_type_traits_of(at)->to_float(f->xq + (size_t)t * f->ab, f->x2, f->n);
    double s = 0;
    for (int i = 0; i < f->n; i++)
        s += fabs((double)f->x[i] * f->x2[i]);
    return s > 0 ? s : 1;
}

static void check_set(const ks_kernels *k, const char *isa, ks_type wt, int n) {
    ks_panel_kernels ref;
    cr_assert(ks_panel_ref(wt, &ref), "%s has panel kernels for a type the reference has none for", isa);
    const ks_panel_kernels *p = &k->panel[wt];
    fixture f = make(k, wt, n, MAX_T);
    const char *tn = ks_type_traits_of(wt)->name;
    uint8_t *scratch = malloc(KS_PANEL_ROWS * f.rb), *want = malloc(f.rb * N_ROWS);
    cr_assert(scratch && want);

    /* repack: the reference's bytes; rows back exactly */
    memcpy(f.panels, f.rows, f.rb * N_ROWS);
    memcpy(want, f.rows, f.rb * N_ROWS);
    for (int p0 = 0; p0 < N_ROWS; p0 += KS_PANEL_ROWS) {
        p->repack(f.panels + (size_t)p0 * f.rb, f.rb, n, scratch);
        ref.repack(want + (size_t)p0 * f.rb, f.rb, n, scratch);
    }
    cr_assert(!memcmp(f.panels, want, f.rb * N_ROWS), "%s %s n=%d: repack differs from the reference", isa, tn, n);
    for (int r = 0; r < N_ROWS; r++) {
        p->row_to_float(f.panels + (size_t)(r / KS_PANEL_ROWS * KS_PANEL_ROWS) * f.rb, r % KS_PANEL_ROWS, n, f.x);
        ks_type_traits_of(wt)->to_float(f.rows + (size_t)r * f.rb, f.x2, n);
        cr_assert(!memcmp(f.x, f.x2, sizeof(float) * (size_t)n), "%s %s n=%d: panel row %d differs", isa, tn, n, r);
    }

    /* gemv: the reference bit for bit, 1..4 tokens a call, one panel or two side by side;
     * vec_dot up to rounding */
    float y[2][KS_VEC_DOT_ROWS * KS_PANEL_ROWS], yr[2][KS_VEC_DOT_ROWS * KS_PANEL_ROWS];
    float *const ys[2] = {y[0], y[1]}, *const yrs[2] = {yr[0], yr[1]};
    const int n_panels = N_ROWS / KS_PANEL_ROWS;
    double worst = 0;
    for (int pa = 0; pa < n_panels; pa++) {
        /* a second panel, or none (pa = n_panels - 1) */
        int pbk = pa + 2 < n_panels ? pa + 2 : -1;
        const void *panels[2] = {f.panels + (size_t)pa * KS_PANEL_ROWS * f.rb,
                                 pbk >= 0 ? f.panels + (size_t)pbk * KS_PANEL_ROWS * f.rb : NULL};
        /* hints at other panels change nothing, nor does asking ahead or not */
        const void *next[2] = {f.panels, pbk >= 0 ? f.panels + KS_PANEL_ROWS * f.rb : NULL};
        for (int nt = 1; nt <= KS_VEC_DOT_ROWS; nt++)
            for (int t0 = 0; t0 + nt <= 9; t0 += nt) {
                const uint8_t *a = f.xq + (size_t)t0 * f.ab, *pk = f.pk + (size_t)t0 * f.pkb;
                p->gemv(panels, t0 / nt % 2 ? NULL : next, a, f.ab, pk, f.pkb, nt, n, ys, KS_PANEL_ROWS);
                ref.gemv(panels, NULL, a, f.ab, pk, f.pkb, nt, n, yrs, KS_PANEL_ROWS);
                for (int j = 0; j < (pbk >= 0 ? 2 : 1); j++) {
                    cr_assert(!memcmp(y[j], yr[j], sizeof(float) * (size_t)nt * KS_PANEL_ROWS),
                              "%s %s n=%d panels %d, %d: gemv of %d tokens differs from the reference", isa, tn, n,
                              pa, pbk, nt);
                    int p0 = (j ? pbk : pa) * KS_PANEL_ROWS;
                    for (int t = 0; t < nt; t++)
                        for (int i = 0; i < KS_PANEL_ROWS; i++) {
                            float v = k->vec_dot[wt](f.rows + (size_t)(p0 + i) * f.rb, a + (size_t)t * f.ab, n);
                            double e = fabs((double)y[j][t * KS_PANEL_ROWS + i] - v) / abs_dot(wt, &f, p0 + i, t0 + t);
                            worst = e > worst ? e : worst;
                        }
                }
            }
    }
    cr_expect_leq(worst, 1e-5, "%s %s n=%d: gemv against vec_dot, relative error %.3g", isa, tn, n, worst);

    /* gemm: the gemv's bits, rows [16, 48) of 64, every token count */
    const ks_gemm_kernel *g = &p->gemm;
    if (g->run) {
        static const int tokens[] = {1, 5, 16, 17, MAX_T};
        void *act = aligned_alloc(64, (g->act_bytes(MAX_T, n) + 63) / 64 * 64), *gs = malloc(g->scratch_bytes(n));
        float *ym = malloc(sizeof(float) * MAX_T * N_ROWS);
        cr_assert(act && gs && ym);
        for (size_t c = 0; c < sizeof tokens / sizeof tokens[0]; c++) {
            int T = tokens[c];
            for (int t = 0; t < (T + KS_GEMM_ROWS - 1) / KS_GEMM_ROWS * KS_GEMM_ROWS; t++)
                g->pack_act(t < T ? f.xq + (size_t)t * f.ab : NULL, t, T, n, act);
            for (size_t i = 0; i < (size_t)T * N_ROWS; i++)
                ym[i] = 12345.0f;
            g->run(f.panels, f.rb, 16, 48, act, T, n, ym, N_ROWS, gs);
            for (int t = 0; t < T; t++)
                for (int r = 0; r < N_ROWS; r++) {
                    float got = ym[(size_t)t * N_ROWS + r];
                    if (r < 16 || r >= 48) {
                        cr_assert_eq(got, 12345.0f, "%s %s n=%d T=%d: output (%d, %d) outside the range written",
                                     isa, tn, n, T, t, r);
                        continue;
                    }
                    const void *one[2] = {f.panels + (size_t)(r / KS_PANEL_ROWS * KS_PANEL_ROWS) * f.rb, NULL};
                    ref.gemv(one, NULL, f.xq + (size_t)t * f.ab, f.ab, f.pk + (size_t)t * f.pkb, f.pkb, 1, n, yrs,
                             KS_PANEL_ROWS);
                    float ref_y = yr[0][r % KS_PANEL_ROWS];
                    if (wt == KS_TYPE_Q8_0) /* its tiles take the GEMV's float steps */
                        cr_assert(got == ref_y, "%s %s n=%d T=%d: gemm (%d, %d) = %.9g, gemv %.9g", isa, tn, n, T, t,
                                  r, got, ref_y);
                    else
                        cr_assert_leq(fabs((double)got - ref_y) / abs_dot(wt, &f, r, t), 1e-5,
                                      "%s %s n=%d T=%d: gemm (%d, %d) = %.9g, gemv %.9g", isa, tn, n, T, t, r, got,
                                      ref_y);
                }
        }
        free(act);
        free(gs);
        free(ym);
    }
    free(scratch);
    free(want);
    release(&f);
}

Test(panel, test_panel_kernels_match_reference_and_vec_dot) {
    static const int lengths[] = {32, 96, 256, 1024, 1056, 1280};
    int tested = 0;
    for (size_t s = 0; s < sizeof isas / sizeof isas[0]; s++) {
        const ks_kernels *k = ks_kernels_for_isa(isas[s]);
        if (!k) {
            cr_log_info("%s kernels not available on this CPU/build: skipped", isas[s]);
            continue;
        }
        for (int wt = 0; wt < KS_TYPE_COUNT; wt++) {
            if (!k->panel[wt].gemv)
                continue;
            for (size_t b = 0; b < sizeof lengths / sizeof lengths[0]; b++) {
                if (lengths[b] % (int)ks_type_traits_of((ks_type)wt)->block_size)
                    continue;
                check_set(k, isas[s], (ks_type)wt, lengths[b]);
                tested++;
            }
        }
    }
    cr_log_info("%d panel cases", tested);
}

/* The references against vec_dot's reference, on any CPU. */
Test(panel, test_panel_reference_matches_vec_dot) {
    const ks_kernels *ref = ks_kernels_ref();
    int tested = 0;
    for (int wt = 0; wt < KS_TYPE_COUNT; wt++) {
        ks_panel_kernels p;
        if (!ks_panel_ref((uint32_t)wt, &p))
            continue;
        ks_kernels k = *ref;
        k.panel[wt] = p;
        int bs = (int)ks_type_traits_of((ks_type)wt)->block_size;
        for (int n = bs; n <= 1280; n += 4 * bs) {
            fixture f = make(&k, (ks_type)wt, n, 4);
            uint8_t *scratch = malloc(KS_PANEL_ROWS * f.rb);
            cr_assert(scratch);
            memcpy(f.panels, f.rows, f.rb * N_ROWS);
            p.repack(f.panels, f.rb, n, scratch);
            float y[4 * KS_PANEL_ROWS];
            const void *panels[2] = {f.panels, NULL};
            float *const ys[2] = {y, NULL};
            p.gemv(panels, NULL, f.xq, f.ab, f.pk, f.pkb, 4, n, ys, KS_PANEL_ROWS);
            for (int t = 0; t < 4; t++)
                for (int i = 0; i < KS_PANEL_ROWS; i++) {
                    float v = ref->vec_dot[wt](f.rows + (size_t)i * f.rb, f.xq + (size_t)t * f.ab, n);
                    double e = fabs((double)y[t * KS_PANEL_ROWS + i] - v) / abs_dot((ks_type)wt, &f, i, t);
                    cr_expect_leq(e, 1e-5, "%s n=%d row %d token %d: %.9g against vec_dot %.9g",
                                  ks_type_traits_of((ks_type)wt)->name, n, i, t, y[t * KS_PANEL_ROWS + i], v);
                }
            free(scratch);
            release(&f);
            tested++;
        }
    }
    cr_assert_geq(tested, 1);
}
