/* test_attn_tiles.c — the tile attention kernel (kernels.h, attn_tile_f16) of every set
 * that has one, against the streaming state of the reference kernels.
 *
 * A sequence of blocks of F16 keys and values is walked with both: the tile kernel (queries
 * prepared once, then block() per block) and ref's attn_scores + softmax_rows +
 * attn_accum, each row seeing keys [0, lim) of the whole sequence. The (m, l, acc) states
 * must agree after every block to a relative 2e-5 of the output (acc / l), for query row
 * counts around the tile's 16 (1, 15, 16, 17, 40, 128), head sizes 32, 64, 128 and 256,
 * blocks of 32 and of fewer keys, rows whose keys end inside, before and after a block,
 * and rows that see no key of a block or none at all yet. Rows of acc outside [0, nq) are
 * not touched. */
#include "tensor/fp16.h"
#include "tensor/kernels.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state = 0x9b05688c2b3e6c1full;
static float frand(void) { /* uniform in [-1, 1) */
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng_state >> 40) / (double)(1ull << 24)) * 2.0f - 1.0f;
}

/* One walk over n_blocks blocks of bk keys (the last may be shorter: total keys nkeys).
 * Returns the largest |out_tile - out_ref| / max(1, |out_ref|) over rows and elements. */
static double run_case(const ks_kernels *k, int nq, int n, int nkeys, int bk) {
    const ks_kernels *ref = ks_kernels_ref();
    const ks_attn_tile_kernel *tk = &k->attn_tile_f16;
    const int pad = 3; /* guard rows after acc's nq rows */
    float *q = malloc(sizeof(float) * (size_t)nq * n);
    ks_fp16 *kr = malloc(sizeof(ks_fp16) * (size_t)nkeys * n), *vr = malloc(sizeof(ks_fp16) * (size_t)nkeys * n);
    float *acc_t = calloc((size_t)(nq + pad) * n, sizeof(float)), *acc_r = calloc((size_t)nq * n, sizeof(float));
    float *m_t = malloc(sizeof(float) * (size_t)nq), *l_t = calloc((size_t)nq, sizeof(float));
    float *m_r = malloc(sizeof(float) * (size_t)nq), *l_r = calloc((size_t)nq, sizeof(float));
    float *corr_r = malloc(sizeof(float) * (size_t)nq);
    float *s = malloc(sizeof(float) * (size_t)nq * bk);
    int *lim = malloc(sizeof(int) * (size_t)nq);
    void *qp = aligned_alloc(64, (tk->q_bytes(nq, n) + 63) / 64 * 64);
    void *scratch = aligned_alloc(64, (tk->scratch_bytes(nq, n) + 63) / 64 * 64);
    cr_assert(q && kr && vr && acc_t && acc_r && m_t && l_t && m_r && l_r && corr_r && s && lim && qp && scratch);
    const float scale = 1.0f / sqrtf((float)n);
    for (int i = 0; i < nq * n; i++)
        q[i] = frand() * 3.0f;
    for (int i = 0; i < nkeys * n; i++) {
        kr[i] = ks_fp32_to_fp16(frand());
        vr[i] = ks_fp32_to_fp16(frand() * 2.0f);
    }
    for (int r = 0; r < nq; r++) {
        m_t[r] = m_r[r] = -INFINITY;
        /* every kind of end: 0 (nothing), inside the first block, inside later ones, all */
        lim[r] = r % 5 == 0 ? nkeys : r % 7 == 0 ? 0 : (r * 37 + 11) % (nkeys + 1);
    }
    for (int i = nq * n; i < (nq + pad) * n; i++)
        acc_t[i] = 12345.0f;
    tk->prep_q(q, n, nq, n, scale, qp);
    double worst = 0;
    for (int p0 = 0; p0 < nkeys; p0 += bk) {
        const int nk = nkeys - p0 < bk ? nkeys - p0 : bk;
        const ks_fp16 *kb = kr + (size_t)p0 * n, *vb = vr + (size_t)p0 * n;
        tk->block(qp, nq, n, kb, vb, n, nk, lim, p0, m_t, l_t, acc_t, n, scratch);
        /* the reference state step */
        ref->attn_scores[KS_TYPE_F16](q, n, nq, kb, n, nk, n, scale, s, bk, NULL);
        ref->softmax_rows_f32(s, bk, nq, nk, lim, p0, m_r, l_r, corr_r);
        for (int r = 0; r < nq; r++)
            for (int i = 0; i < n; i++)
                acc_r[(size_t)r * n + i] *= corr_r[r];
        ref->attn_accum[KS_TYPE_F16](acc_r, n, nq, s, bk, vb, n, nk, n, NULL);
        for (int r = 0; r < nq; r++) {
            if (l_r[r] == 0.0f) {
                cr_assert_eq(l_t[r], 0.0f, "nq %d n %d row %d: l %g where no key was seen", nq, n, r, (double)l_t[r]);
                continue;
            }
            cr_assert_float_eq(m_t[r], m_r[r], 1e-4f * (1.0f + fabsf(m_r[r])), "nq %d n %d row %d: m %g vs %g", nq, n, r,
                               (double)m_t[r], (double)m_r[r]);
            for (int i = 0; i < n; i++) {
                const double want = acc_r[(size_t)r * n + i] / l_r[r], got = acc_t[(size_t)r * n + i] / l_t[r];
                const double e = fabs(got - want) / fmax(1.0, fabs(want));
                worst = e > worst ? e : worst;
            }
        }
    }
    for (int i = nq * n; i < (nq + pad) * n; i++)
        cr_assert_eq(acc_t[i], 12345.0f, "nq %d n %d: acc written past its rows", nq, n);
    free(q);
    free(kr);
    free(vr);
    free(acc_t);
    free(acc_r);
    free(m_t);
    free(l_t);
    free(m_r);
    free(l_r);
    free(corr_r);
    free(s);
    free(lim);
    free(qp);
    free(scratch);
    return worst;
}

Test(attn_tiles, test_attn_tiles_match_the_streaming_reference) {
    static const char *const isas[] = {"amx"};
    static const int rows[] = {1, 15, 16, 17, 40, KS_ATTN_TILE_ROWS};
    static const int dims[] = {32, 64, 128, KS_ATTN_TILE_DIM};
    int tested = 0;
    for (size_t a = 0; a < sizeof isas / sizeof isas[0]; a++) {
        const ks_kernels *k = ks_kernels_for_isa(isas[a]);
        if (!k || !k->attn_tile_f16.block) {
            cr_log_info("%s attention tiles not available on this CPU/build: skipped", isas[a]);
            continue;
        }
        for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
            for (size_t j = 0; j < sizeof dims / sizeof dims[0]; j++) {
                /* blocks of 32 keys with a short last one; blocks of 13 */
                double e1 = run_case(k, rows[i], dims[j], 3 * KS_ATTN_TILE_KEYS + 9, KS_ATTN_TILE_KEYS);
                double e2 = run_case(k, rows[i], dims[j], 40, 13);
                double e = e1 > e2 ? e1 : e2;
                cr_assert_leq(e, 2e-5, "%s: %d rows of %d: output off by %g (relative)", isas[a], rows[i], dims[j], e);
                tested++;
            }
        cr_log_info("%s attention tiles: %d shapes", isas[a], tested);
    }
}
