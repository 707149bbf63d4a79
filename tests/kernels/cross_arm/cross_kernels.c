/* cross_kernels.c — the aarch64 kernel tables against ref, as a plain program: built by
 * the aarch64 cross compiler, statically, and run under qemu-user (make test-arm; the
 * build is CMakeLists.txt beside this file). No Criterion, no libraries but libc: only
 * src/core/{status,log,cpu}.c and src/tensor/ are compiled in.
 *
 *   cross_kernels --dotprod=yes|no
 *
 * The flag says whether the CPU it runs on (qemu's -cpu model) has the dot-product
 * extension. Cases, each reported as passed or failed:
 *
 *   dispatch   ks_cpu_detect() agrees with the flag, and the "neon" table holds the SDOT
 *              kernels exactly when the CPU has DotProd (a CPU without it would fault
 *              on them; the run without DotProd also shows that no kernel it does
 *              register executes SDOT, or the process would die of SIGILL);
 *   entries    every entry of a NEON table that is not ref's own: row conversions bit
 *              for bit; dot_f32 within 1e-6 of the sum of |x y|; every vec_dot within
 *              the budget of tests/kernels/test_vec_dot.c (1e-6 of the terms'
 *              magnitude, the recursive-summation bound on one-signed data) over the
 *              same row lengths and kinds of data; every vec_dot_4 equal to vec_dot on
 *              each of its rows, bit for bit; activation quantizers byte for byte.
 *
 * Tables: the selected "neon" table, and on a DotProd CPU also the widening-multiply
 * one that a CPU without DotProd gets (built here by ks_kernels_register_neon()), so one
 * run covers both sets of integer kernels. Ends with "N passed, N failed"; exit status
 * 1 on any failure. */
#include "core/cpu.h"
#include "tensor/arm/kernels_arm.h"
#include "tensor/attn_kv.h"
#include "tensor/kernels.h"
#include "tensor/quants.h"
#include "tensor/ref/kernels_ref.h"
#include "tensor/types.h"

#include <math.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The longest row, as test_vec_dot.c: longer than any model's n_embd or n_ff. */
#define MAX_N 32768
#define MAX_ROW_BYTES (MAX_N * 4) /* MAX_N f32 elements */
#define MAX_LENGTHS 100

static int n_passed, n_failed;

/* ---- reporting ------------------------------------------------------------------------ */

/* One case: its name and, on failure, the first message. */
typedef struct test_case {
    char name[96];
    bool failed;
} test_case;

static void begin(test_case *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->name, sizeof c->name, fmt, ap);
    va_end(ap);
    c->failed = false;
}

/* Records a failed check (only the first of a case is printed); returns ok. */
static bool check(test_case *c, bool ok, const char *fmt, ...) {
    if (ok || c->failed)
        return ok;
    c->failed = true;
    va_list ap;
    va_start(ap, fmt);
    printf("FAIL %s: ", c->name);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    return ok;
}

static void end(const test_case *c, const char *detail) {
    if (c->failed) {
        n_failed++;
        return;
    }
    n_passed++;
    printf("ok   %s%s%s\n", c->name, detail ? ": " : "", detail ? detail : "");
}

/* ---- data ----------------------------------------------------------------------------- */

static uint64_t rng_state;
static uint32_t rand_u32(void) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng_state >> 32);
}
static float frand(void) { return (float)(rand_u32() >> 8) / 8388608.0f - 1.0f; } /* [-1, 1) */
static uint8_t rand_byte(void) { return (uint8_t)(rand_u32() >> 24); }

/* Model-like floats: roughly normal, a scale that drifts per 32, a few outliers 8x. */
static void fill_model(float *x, int n, float scale) {
    float s = scale;
    for (int i = 0; i < n; i++) {
        if (i % 32 == 0)
            s = scale * (1.0f + 0.75f * frand());
        x[i] = s * (frand() + frand() + frand());
        if (rand_u32() % 97 == 0)
            x[i] *= 8.0f;
    }
}

/* The kinds of rows a vec_dot meets (test_vec_dot.c's): */
typedef enum {
    DATA_MODEL,    /* weights quantized from model-like floats, activations quantized */
    DATA_RANDOM,   /* random code bytes and elements, moderate random scales */
    DATA_HIGH,     /* every code at its largest, scales at the largest magnitude */
    DATA_LOW,      /* every code at its smallest */
    DATA_EXTREMES, /* every code at its smallest or largest, at random */
    DATA_KINDS
} data_kind;

static const char *const kind_names[DATA_KINDS] = {"model", "random", "high", "low", "extremes"};

static void put_fp16(uint8_t *p, float v) {
    const ks_fp16 h = ks_fp32_to_fp16(v);
    memcpy(p, &h, 2);
}

/* A scale of random sign: moderate for DATA_RANDOM, else of magnitude big. */
static float scale_of(data_kind kind, float big) {
    const float mag = kind == DATA_RANDOM ? 0.001f + 0.05f * (frand() + 1.0f) : big;
    return rand_u32() & 1 ? -mag : mag;
}

/* A float, half or bf16 element: the largest magnitude (whose products and sums over
 * MAX_N stay finite) for the one-code kinds; random exponents (F32, BF16: normal, as
 * test_vec_dot.c's), any finite half (F16). */
static float float_element(ks_type t, data_kind kind) {
    const float big = t == KS_TYPE_F16 ? 65504.0f : 0x1.fep55f;
    const float sign = rand_u32() & 1 ? -1.0f : 1.0f;
    if (kind == DATA_HIGH || kind == DATA_LOW)
        return kind == DATA_HIGH ? big : -big;
    if (kind == DATA_EXTREMES)
        return sign * big;
    if (t == KS_TYPE_F16) {
        ks_fp16 h;
        do
            h = (ks_fp16)rand_u32();
        while ((h & 0x7c00) == 0x7c00);
        return ks_fp16_to_fp32(h);
    }
    return sign * ldexpf(1.0f + (frand() + 1.0f) / 2.0f, (int)(rand_byte() % 112) - 56);
}

/* A row of n elements of a float type (F32, F16, BF16), as bytes. */
static void float_row(ks_type t, data_kind kind, uint8_t *p, int n) {
    for (int i = 0; i < n; i++) {
        const float v = float_element(t, kind);
        if (t == KS_TYPE_F32) {
            memcpy(p + 4 * i, &v, 4);
        } else if (t == KS_TYPE_F16) {
            put_fp16(p + 2 * i, v);
        } else {
            const ks_bf16 b = ks_fp32_to_bf16(v);
            memcpy(p + 2 * i, &b, 2);
        }
    }
}

/* A byte of packed codes: 0x00 / 0xff hold the smallest / largest codes of the
 * unsigned-code types, 0x80 / 0x7f those of Q8_0's signed bytes. */
static uint8_t code_byte(ks_type t, data_kind kind) {
    static const uint8_t mixed[4] = {0x00, 0xff, 0x0f, 0xf0};
    const bool q8 = t == KS_TYPE_Q8_0;
    switch (kind) {
    case DATA_HIGH: return q8 ? 0x7f : 0xff;
    case DATA_LOW: return q8 ? 0x80 : 0x00;
    case DATA_EXTREMES: return q8 ? (rand_byte() & 1 ? 0x7f : 0x80) : mixed[rand_byte() & 3];
    default: return rand_byte();
    }
}

/* An adversarial weight row: code bytes everywhere, then each block's scales (fp16
 * scales +-65504 but for DATA_RANDOM; Q4_K/Q5_K 6-bit scales and mins all 63; Q6_K's
 * int8 scales at the kind's extreme). */
static void raw_weights(ks_type t, data_kind kind, uint8_t *w, int n) {
    const ks_type_traits *tr = ks_type_traits_of(t);
    if (!tr->is_quantized) {
        float_row(t, kind, w, n);
        return;
    }
    const int64_t nb = n / tr->block_size;
    for (size_t i = 0; i < (size_t)nb * tr->type_size; i++)
        w[i] = code_byte(t, kind);
    for (int64_t b = 0; b < nb; b++) {
        uint8_t *p = w + (size_t)b * tr->type_size;
        if (t == KS_TYPE_Q6_K) {
            ks_block_q6_k *q = (ks_block_q6_k *)p;
            for (int i = 0; i < KS_QK_K / 16; i++)
                q->scales[i] = kind == DATA_RANDOM ? (int8_t)rand_byte()
                               : kind == DATA_HIGH ? 127
                               : kind == DATA_LOW  ? -128
                                                   : (rand_byte() & 1 ? 127 : -128);
            put_fp16((uint8_t *)&q->d, scale_of(kind, 65504.0f));
            continue;
        }
        if (t == KS_TYPE_Q2_K) { /* scales and mins are code bytes; d, dmin follow */
            put_fp16(p + offsetof(ks_block_q2_k, d), scale_of(kind, 65504.0f));
            put_fp16(p + offsetof(ks_block_q2_k, dmin), scale_of(kind, 65504.0f));
            continue;
        }
        if (t == KS_TYPE_Q3_K) { /* 6-bit scales are code bytes too */
            put_fp16(p + offsetof(ks_block_q3_k, d), scale_of(kind, 65504.0f));
            continue;
        }
        put_fp16(p, scale_of(kind, 65504.0f)); /* d leads the other types */
        if (t == KS_TYPE_Q4_1 || t == KS_TYPE_Q5_1)
            put_fp16(p + 2, scale_of(kind, 65504.0f)); /* m */
        if (t == KS_TYPE_Q4_K || t == KS_TYPE_Q5_K) {
            put_fp16(p + 2, scale_of(kind, 65504.0f)); /* dmin */
            for (int i = 0; i < KS_K_SCALE_BYTES; i++)
                p[4 + i] = kind == DATA_RANDOM ? rand_byte() : 0xff;
        }
    }
}

/* An activation code: random in -127..127 (the quantizers' range), or +-127. */
static int8_t act_code(data_kind kind) {
    switch (kind) {
    case DATA_HIGH: return 127;
    case DATA_LOW: return -127;
    case DATA_EXTREMES: return rand_byte() & 1 ? 127 : -127;
    default: return (int8_t)((int)(rand_u32() % 255) - 127);
    }
}

/* An adversarial activation row of type at (Q8_0, Q8_1, Q8_K or a float type), Q8_K's
 * bsums and Q8_1's s consistent with the codes. */
static void raw_activations(ks_type at, data_kind kind, uint8_t *a, int n) {
    if (at == KS_TYPE_Q8_K) {
        ks_block_q8_k *b = (ks_block_q8_k *)a;
        for (int ib = 0; ib < n / KS_QK_K; ib++) {
            b[ib].d = scale_of(kind, 1e6f);
            for (int k = 0; k < KS_QK_K / 16; k++) {
                int sum = 0;
                for (int e = 16 * k; e < 16 * k + 16; e++)
                    sum += b[ib].qs[e] = act_code(kind);
                b[ib].bsums[k] = (int16_t)sum;
            }
        }
    } else if (at == KS_TYPE_Q8_0) {
        ks_block_q8_0 *b = (ks_block_q8_0 *)a;
        for (int ib = 0; ib < n / KS_QK8_0; ib++) {
            put_fp16((uint8_t *)&b[ib].d, scale_of(kind, 65504.0f));
            for (int i = 0; i < KS_QK8_0; i++)
                b[ib].qs[i] = act_code(kind);
        }
    } else if (at == KS_TYPE_Q8_1) {
        ks_block_q8_1 *b = (ks_block_q8_1 *)a;
        for (int ib = 0; ib < n / KS_QK8_1; ib++) {
            /* s = d * sum(codes) must stay finite in fp16: |d| <= 65504 / (32 * 127) */
            const float d = ks_fp16_to_fp32(ks_fp32_to_fp16(scale_of(kind, 16.0f)));
            int sum = 0;
            for (int i = 0; i < KS_QK8_1; i++)
                sum += b[ib].qs[i] = act_code(kind);
            put_fp16((uint8_t *)&b[ib].d, d);
            put_fp16((uint8_t *)&b[ib].s, d * (float)sum);
        }
    } else {
        float_row(at, kind, a, n);
    }
}

/* Row lengths for a block size (test_vec_dot.c's): every count up to past the unrolled
 * loops, both sides of the vector widths, model-sized rows. Returns the count. */
static int row_lengths(int64_t block, int *len) {
    static const int floats[] = {127, 128, 129, 255, 256, 257, 1000, 1023, 4096, 4099, 16383};
    static const int blocks[] = {63, 64, 65, 127, 128, 255};
    int c = 0;
    if (block == 1) {
        for (int i = 1; i <= 72; i++)
            len[c++] = i;
        for (size_t i = 0; i < sizeof floats / sizeof floats[0]; i++)
            len[c++] = floats[i];
    } else {
        for (int i = 1; i <= (block == 32 ? 40 : 20); i++)
            len[c++] = i * (int)block;
        for (size_t i = 0; i < sizeof blocks / sizeof blocks[0]; i++)
            if (blocks[i] * block < MAX_N)
                len[c++] = blocks[i] * (int)block;
    }
    len[c++] = MAX_N;
    return c;
}

/* ---- vec_dot -------------------------------------------------------------------------- */

static float xf[MAX_N], ad[MAX_N], p1[MAX_N], p2[MAX_N];
static uint8_t wbuf[MAX_ROW_BYTES], abuf[MAX_ROW_BYTES], part[MAX_ROW_BYTES];

/* The scale of the terms a dot product adds, whatever its order: sum_i of (|scale part|
 * + |offset part|) of weight i times |activation i|, the parts being the row decoded with
 * the K-quants' dmin zeroed and with d zeroed. */
static double term_magnitude(ks_type t, int n) {
    const ks_type_traits *tw = ks_type_traits_of(t);
    const bool offset = t == KS_TYPE_Q4_K || t == KS_TYPE_Q5_K || t == KS_TYPE_Q2_K;
    /* d and dmin lead, but for Q2_K, whose follow its codes */
    const size_t d_at = t == KS_TYPE_Q2_K ? offsetof(ks_block_q2_k, d) : 0;
    const size_t m_at = t == KS_TYPE_Q2_K ? offsetof(ks_block_q2_k, dmin) : 2;
    bool ok;
    const size_t bytes = ks_type_row_size(t, n, &ok);
    memcpy(part, wbuf, bytes);
    for (size_t b = 0; offset && b < bytes; b += tw->type_size)
        memset(part + b + m_at, 0, 2);
    tw->to_float(part, p1, n);
    if (offset) {
        memcpy(part, wbuf, bytes);
        for (size_t b = 0; b < bytes; b += tw->type_size)
            memset(part + b + d_at, 0, 2);
        tw->to_float(part, p2, n);
    }
    double mag = 0.0;
    for (int i = 0; i < n; i++)
        mag += (fabs((double)p1[i]) + (offset ? fabs((double)p2[i]) : 0.0)) * fabs((double)ad[i]);
    return mag;
}

/* Allowed |kernel - ref| / term magnitude: 1e-6 where rounding errors of mixed-sign
 * terms cancel; on one-signed equal terms (DATA_HIGH, DATA_LOW) the recursive-summation
 * bound, unit roundoff times the terms one accumulator adds in ref (n / block; none for
 * the float types, summed in double) and in the kernel (at most n / block / 8), plus 16. */
static double budget_of(ks_type t, int n, data_kind kind) {
    if (kind != DATA_HIGH && kind != DATA_LOW)
        return 1e-6;
    const ks_type_traits *tw = ks_type_traits_of(t);
    const double terms = (double)n / (double)tw->block_size;
    return 0x1p-24 * ((tw->is_quantized ? terms : 0.0) + terms / 8.0 + 16.0);
}

static void test_vec_dot(const char *table, const ks_kernels *k, const ks_kernels *ref,
                         ks_type t) {
    const ks_type_traits *tw = ks_type_traits_of(t);
    const ks_type at = tw->dot_type;
    static int len[MAX_LENGTHS];
    test_case c;
    begin(&c, "%s vec_dot %s", table, tw->name);
    rng_state = 0x853c49e6748fea9bull + (uint64_t)t;
    const int n_len = row_lengths(tw->block_size, len);
    double worst = 0.0;
    for (int il = 0; il < n_len && !c.failed; il++) {
        const int n = len[il];
        for (int kind = 0; kind < DATA_KINDS; kind++) {
            if (kind == DATA_MODEL) {
                fill_model(xf, n, 0.02f);
                tw->from_float(xf, wbuf, n);
                fill_model(xf, n, 1.0f);
                ref->quantize_act[at](xf, abuf, n);
            } else {
                raw_weights(t, (data_kind)kind, wbuf, n);
                raw_activations(at, (data_kind)kind, abuf, n);
            }
            ks_type_traits_of(at)->to_float(abuf, ad, n);
            const double mag = term_magnitude(t, n);
            const float want = ref->vec_dot[t](wbuf, abuf, n);
            const float got = k->vec_dot[t](wbuf, abuf, n);
            const double err = fabs((double)got - want) / (mag + 1e-30);
            const double budget = budget_of(t, n, (data_kind)kind);
            check(&c, isfinite(want) && err <= budget,
                  "n=%d %s data: %.9g vs ref %.9g (error %.3g of the terms' magnitude, "
                  "budget %.3g)",
                  n, kind_names[kind], (double)got, (double)want, err, budget);
            if (budget == 1e-6)
                worst = fmax(worst, err);
        }
    }
    char detail[96];
    snprintf(detail, sizeof detail, "%d lengths x %d kinds, worst mixed-sign error %.2g", n_len,
             DATA_KINDS, worst);
    end(&c, detail);
}

/* vec_dot_4 is vec_dot over KS_VEC_DOT_ROWS activation rows: each result must equal
 * vec_dot's on its row bit for bit (test_vec_dot.c's check), on every length and kind
 * of data, the rows a stride apart that is no multiple of a vector's width. */
static void test_vec_dot_4(const char *table, const ks_kernels *k, ks_type t) {
    const ks_type_traits *tw = ks_type_traits_of(t);
    const ks_type at = tw->dot_type;
    static int len[MAX_LENGTHS];
    static uint8_t rows[KS_VEC_DOT_ROWS * (MAX_ROW_BYTES + 64)];
    test_case c;
    begin(&c, "%s vec_dot_4 %s", table, tw->name);
    rng_state = 0x9b05688c2b3e6c1full + (uint64_t)t;
    const int n_len = row_lengths(tw->block_size, len);
    for (int il = 0; il < n_len && !c.failed; il++) {
        const int n = len[il];
        bool ok;
        const size_t stride = ks_type_row_size(at, n, &ok) + 36;
        for (int kind = 0; kind < DATA_KINDS; kind++) {
            if (kind == DATA_MODEL) {
                fill_model(xf, n, 0.02f);
                tw->from_float(xf, wbuf, n);
            } else {
                raw_weights(t, (data_kind)kind, wbuf, n);
            }
            for (int r = 0; r < KS_VEC_DOT_ROWS; r++) {
                if (kind == DATA_MODEL) {
                    fill_model(xf, n, 1.0f);
                    k->quantize_act[at](xf, rows + r * stride, n);
                } else {
                    raw_activations(at, (data_kind)kind, rows + r * stride, n);
                }
            }
            float s[KS_VEC_DOT_ROWS];
            k->vec_dot_4[t](wbuf, rows, stride, n, s, wbuf); /* with a row to prefetch: a hint */
            for (int r = 0; r < KS_VEC_DOT_ROWS; r++) {
                const float want = k->vec_dot[t](wbuf, rows + r * stride, n);
                check(&c, memcmp(&s[r], &want, sizeof want) == 0, "n=%d %s data, row %d: vec_dot_4 %.9g, vec_dot %.9g",
                      n, kind_names[kind], r, (double)s[r], (double)want);
            }
        }
    }
    char detail[64];
    snprintf(detail, sizeof detail, "%d lengths x %d kinds, bit for bit", n_len, DATA_KINDS);
    end(&c, detail);
}

/* ---- activation quantizers ------------------------------------------------------------ */

/* Rows that stress a quantizer block by block: ties at scale 1, zero blocks, equal and
 * opposite extremes (Q8_K keeps the first), NaN (also in a block's last lanes) and inf,
 * subnormals, the largest floats, tiny values. */
static void fill_hard(float *x, int n) {
    fill_model(x, n, 1.0f);
    for (int b = 0; b * 32 < n; b++) {
        float *v = x + 32 * b;
        switch (b % 13) {
        case 0:
            v[0] = 127.0f;
            for (int i = 1; i < 32; i++)
                v[i] = (float)((i % 17) - 8) + 0.5f;
            break;
        case 1: memset(v, 0, 32 * sizeof *v); break;
        case 2: v[3] = -40.0f; v[9] = 40.0f; break;
        case 3: v[5] = 40.0f; v[30] = -40.0f; break;
        case 4: v[7] = NAN; break;
        case 5: v[11] = INFINITY; break;
        case 6: v[0] = -INFINITY; v[1] = NAN; break;
        case 7: for (int i = 0; i < 32; i++) v[i] = ldexpf(frand(), -135); break;
        case 8: for (int i = 0; i < 32; i++) v[i] = 3.4e38f * frand(); break;
        case 9: for (int i = 0; i < 32; i++) v[i] *= 1e-20f; break;
        case 10: v[30] = NAN; break;
        case 11: v[31] = NAN; break;
        case 12: v[31] = -1e4f; break; /* a block's extreme in its last element */
        }
    }
}

static void test_quantize_act(const char *table, const ks_kernels *k, const ks_kernels *ref,
                              ks_type at) {
    static uint8_t mine[MAX_ROW_BYTES], want[MAX_ROW_BYTES];
    static int len[MAX_LENGTHS];
    test_case c;
    begin(&c, "%s quantize_act %s", table, ks_type_name(at));
    rng_state = 0x3c6ef372fe94f82bull + (uint64_t)at;
    const int n_len = row_lengths(ks_type_traits_of(at)->block_size, len);
    for (int il = 0; il < n_len && !c.failed; il++) {
        const int n = len[il];
        bool ok;
        const size_t bytes = ks_type_row_size(at, n, &ok);
        for (int rep = 0; rep < 3; rep++) {
            if (rep == 0)
                fill_hard(xf, n);
            else
                fill_model(xf, n, rep == 1 ? 1.0f : 1e-3f);
            memset(mine, 0xa5, bytes);
            memset(want, 0x5a, bytes);
            ref->quantize_act[at](xf, want, n);
            k->quantize_act[at](xf, mine, n);
            size_t i = 0;
            while (i < bytes && mine[i] == want[i])
                i++;
            check(&c, i == bytes, "n=%d row %d: byte %zu is 0x%02x, ref 0x%02x", n, rep, i,
                  i < bytes ? mine[i] : 0, i < bytes ? want[i] : 0);
        }
    }
    end(&c, NULL);
}

/* ---- row conversions and dot_f32 ------------------------------------------------------ */

static void test_fp16_to_fp32(const char *table, const ks_kernels *k, const ks_kernels *ref) {
    enum { N = 1037 }; /* not a multiple of any vector width */
    static ks_fp16 h[N];
    static float yr[N], yk[N];
    test_case c;
    begin(&c, "%s fp16_to_fp32_row", table);
    rng_state = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < N; i++) /* every half but NaNs (FCVTL quiets a signalling one) */
        do
            h[i] = (ks_fp16)rand_u32();
        while ((h[i] & 0x7c00) == 0x7c00 && (h[i] & 0x3ff) != 0);
    for (int n = 0; n <= N; n += n < 40 ? 1 : 333) {
        ref->fp16_to_fp32_row(h, yr, n);
        k->fp16_to_fp32_row(h, yk, n);
        check(&c, memcmp(yr, yk, (size_t)n * sizeof *yr) == 0, "n=%d differs from ref", n);
    }
    end(&c, NULL);
}

static void test_dot_f32(const char *table, const ks_kernels *k, const ks_kernels *ref) {
    enum { N = 4099 };
    static float x[N], y[N];
    test_case c;
    begin(&c, "%s dot_f32", table);
    rng_state = 0x2545f4914f6cdd1dull;
    double abs_sum = 0.0;
    for (int i = 0; i < N; i++) {
        x[i] = frand();
        y[i] = frand();
        abs_sum += fabs((double)x[i] * y[i]);
    }
    for (int n = 0; n <= N; n += n < 40 ? 1 : 509) {
        const float r = ref->dot_f32(x, y, n), v = k->dot_f32(x, y, n);
        check(&c, fabs((double)v - r) <= 1e-6 * abs_sum + 1e-7, "n=%d: %.9g vs ref %.9g", n,
              (double)v, (double)r);
    }
    end(&c, NULL);
}

/* ---- streaming attention --------------------------------------------------------------- */

/* The attention entries against ref, as tests/kernels/test_kernels.c holds the x86 ones:
 * scores and value accumulation over F32 and F16 rows within 1e-6 of the terms'
 * magnitude, each score equal bit for bit to the same score computed alone; over Q8_0
 * rows the F32 kernels' results on their values, bit for bit; the softmax
 * step within a few ulp of expf (weights below the smallest normal float may be 0). */
#define ATT_ROWS 19
#define ATT_LD 131
static void test_attn(const char *table, const ks_kernels *k, const ks_kernels *ref) {
    static float q[ATT_ROWS * ATT_LD], kv[ATT_ROWS * ATT_LD], wide[ATT_ROWS * ATT_LD];
    static float sr[ATT_ROWS * ATT_ROWS], sk[ATT_ROWS * ATT_ROWS], ar[ATT_ROWS * ATT_LD],
        ak[ATT_ROWS * ATT_LD];
    static ks_fp16 half[ATT_ROWS * ATT_LD];
    static const int ns[] = {1, 7, 64, 128, 131};
    static const int shapes[][2] = {{1, 1}, {2, 19}, {5, 17}, {16, 16}, {19, 19}};
    test_case c;
    begin(&c, "%s attention tiles (f32, f16, q8_0 rows), softmax step", table);
    rng_state = 0x452821e638d01377ull;
    for (int i = 0; i < ATT_ROWS * ATT_LD; i++) {
        q[i] = frand();
        kv[i] = frand();
        half[i] = ks_fp32_to_fp16(kv[i]);
    }
    for (int h = 0; h < 2; h++) {
        const ks_type t = h ? KS_TYPE_F16 : KS_TYPE_F32;
        const void *rows = h ? (const void *)half : (const void *)kv;
        for (int i = 0; i < ATT_ROWS * ATT_LD; i++)
            wide[i] = h ? ks_fp16_to_fp32(half[i]) : kv[i];
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
            for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
                const int n = ns[ni], nq = shapes[si][0], nk = shapes[si][1];
                ref->attn_scores[t](q, ATT_LD, nq, rows, ATT_LD, nk, n, 0.25f, sr, ATT_ROWS, NULL);
                k->attn_scores[t](q, ATT_LD, nq, rows, ATT_LD, nk, n, 0.25f, sk, ATT_ROWS, rows);
                for (int i = 0; i < ATT_ROWS * ATT_LD; i++)
                    ar[i] = ak[i] = q[i];
                ref->attn_accum[t](ar, ATT_LD, nq, sr, ATT_ROWS, rows, ATT_LD, nk, n, NULL);
                k->attn_accum[t](ak, ATT_LD, nq, sr, ATT_ROWS, rows, ATT_LD, nk, n, rows);
                for (int r = 0; r < nq; r++) {
                    for (int j = 0; j < nk; j++) {
                        double mag = 0;
                        for (int i = 0; i < n; i++)
                            mag += fabs(0.25 * q[r * ATT_LD + i] * wide[j * ATT_LD + i]);
                        const float v = sk[r * ATT_ROWS + j], want = sr[r * ATT_ROWS + j];
                        check(&c, fabs((double)v - want) <= 1e-6 * mag + 1e-30,
                              "%s scores n=%d %dx%d [%d][%d]: %g vs ref %g", ks_type_name(t), n, nq,
                              nk, r, j, (double)v, (double)want);
                        float one;
                        k->attn_scores[t](q + r * ATT_LD, ATT_LD, 1,
                                          (const char *)rows + (size_t)j * ATT_LD * (h ? 2 : 4),
                                          ATT_LD, 1, n, 0.25f, &one, 1, NULL);
                        check(&c, memcmp(&one, &v, sizeof v) == 0,
                              "%s scores n=%d %dx%d [%d][%d]: %a in the tile, %a alone",
                              ks_type_name(t), n, nq, nk, r, j, (double)v, (double)one);
                    }
                    for (int i = 0; i < ATT_LD; i++) {
                        const int at = r * ATT_LD + i;
                        double mag = fabs((double)q[at]);
                        for (int j = 0; i < n && j < nk; j++)
                            mag += fabs((double)sr[r * ATT_ROWS + j] * wide[j * ATT_LD + i]);
                        check(&c, i < n ? fabs((double)ak[at] - ar[at]) <= 1e-6 * mag : ak[at] == q[at],
                              "%s accum n=%d %dx%d [%d][%d]: %g vs ref %g", ks_type_name(t), n, nq,
                              nk, r, i, (double)ak[at], (double)ar[at]);
                    }
                }
            }
    }
    /* Q8_0 rows (160 elements apart, n whole blocks): the F32 kernels' results on the
     * rows' values, bit for bit, and within the budget of ref */
    static uint8_t q8[ATT_ROWS * 160 / 32 * 34];
    for (int r = 0; r < ATT_ROWS; r++) {
        float row[160] = {0};
        memcpy(row, kv + r * ATT_LD, 128 * sizeof(float));
        ks_type_traits_of(KS_TYPE_Q8_0)->from_float(row, q8 + r * 170, 160);
        ks_type_traits_of(KS_TYPE_Q8_0)->to_float(q8 + r * 170, row, 160);
        memcpy(wide + r * ATT_LD, row, 128 * sizeof(float));
    }
    for (int n = 32; n <= 128; n += 32)
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            const int nq = shapes[si][0], nk = shapes[si][1];
            static float sf[ATT_ROWS * ATT_ROWS], af[ATT_ROWS * ATT_LD];
            ref->attn_scores[KS_TYPE_Q8_0](q, ATT_LD, nq, q8, 160, nk, n, 0.25f, sr, ATT_ROWS, NULL);
            k->attn_scores[KS_TYPE_Q8_0](q, ATT_LD, nq, q8, 160, nk, n, 0.25f, sk, ATT_ROWS, q8);
            k->attn_scores[KS_TYPE_F32](q, ATT_LD, nq, wide, ATT_LD, nk, n, 0.25f, sf, ATT_ROWS, NULL);
            for (int i = 0; i < ATT_ROWS * ATT_LD; i++)
                ak[i] = af[i] = q[i];
            k->attn_accum[KS_TYPE_Q8_0](ak, ATT_LD, nq, sr, ATT_ROWS, q8, 160, nk, n, q8);
            k->attn_accum[KS_TYPE_F32](af, ATT_LD, nq, sr, ATT_ROWS, wide, ATT_LD, nk, n, NULL);
            for (int r = 0; r < nq; r++) {
                check(&c, memcmp(sk + r * ATT_ROWS, sf + r * ATT_ROWS, (size_t)nk * sizeof(float)) == 0,
                      "q8_0 scores n=%d %dx%d row %d: not the F32 scores of its values", n, nq, nk, r);
                check(&c, memcmp(ak + r * ATT_LD, af + r * ATT_LD, (size_t)n * sizeof(float)) == 0,
                      "q8_0 accum n=%d %dx%d row %d: not the F32 sums of its values", n, nq, nk, r);
                for (int j = 0; j < nk; j++) {
                    double mag = 0;
                    for (int i = 0; i < n; i++)
                        mag += fabs(0.25 * q[r * ATT_LD + i] * wide[j * ATT_LD + i]);
                    check(&c, fabs((double)sk[r * ATT_ROWS + j] - sr[r * ATT_ROWS + j]) <= 1e-6 * mag + 1e-30,
                          "q8_0 scores n=%d %dx%d [%d][%d]: %g vs ref %g", n, nq, nk, r, j,
                          (double)sk[r * ATT_ROWS + j], (double)sr[r * ATT_ROWS + j]);
                }
            }
        }
    for (int n = 1; n <= 70; n++) {
        /* ATT_ROWS rows of n scores (row stride ATT_LD) seeing all, some, one or none */
        int lim[ATT_ROWS];
        float mr[ATT_ROWS], mk[ATT_ROWS], lr[ATT_ROWS], lk[ATT_ROWS], cr[ATT_ROWS], ck[ATT_ROWS];
        for (int r = 0; r < ATT_ROWS; r++) {
            for (int i = 0; i < n; i++)
                q[r * ATT_LD + i] = frand() * 64.0f - 56.0f; /* weights from 1 down past the smallest float */
            if (n > 2)
                q[r * ATT_LD + n / 2] = -INFINITY;
            lim[r] = 100 + (r % 4 == 0 ? n : r % 4 == 1 ? 0 : (r * 7) % (n + 1));
            mr[r] = mk[r] = r % 2 ? -3.0f : -INFINITY;
            lr[r] = lk[r] = 0.5f;
        }
        memcpy(ar, q, sizeof ar);
        memcpy(ak, q, sizeof ak);
        ref->softmax_rows_f32(ar, ATT_LD, ATT_ROWS, n, lim, 100, mr, lr, cr);
        k->softmax_rows_f32(ak, ATT_LD, ATT_ROWS, n, lim, 100, mk, lk, ck);
        for (int r = 0; r < ATT_ROWS; r++) {
            check(&c, mr[r] == mk[r], "softmax n=%d row %d: max %g vs ref %g", n, r, (double)mk[r], (double)mr[r]);
            check(&c, fabs((double)lk[r] - lr[r]) <= 1e-6 * lr[r] && fabs((double)ck[r] - cr[r]) <= 1e-6 * cr[r] + 1.2e-38,
                  "softmax n=%d row %d: l %g corr %g vs ref %g %g", n, r, (double)lk[r], (double)ck[r], (double)lr[r],
                  (double)cr[r]);
            for (int i = 0; i < n; i++)
                check(&c, fabs((double)ak[r * ATT_LD + i] - ar[r * ATT_LD + i]) <= 1e-6 * ar[r * ATT_LD + i] + 1.2e-38,
                      "softmax n=%d y[%d][%d] %a vs ref %a", n, r, i, (double)ak[r * ATT_LD + i],
                      (double)ar[r * ATT_LD + i]);
        }
    }
    end(&c, NULL);
}

/* scale times the reference Q8_0 dot product of rows q and k of n elements; *mag: the
 * sum of its scaled terms' magnitudes (the scale of its float rounding) */
static float q8_0_score(const ks_kernels *ref, const uint8_t *q, const uint8_t *k, int n, float scale, double *mag) {
    *mag = 0;
    for (int b = 0; b < n / 32; b++) {
        const ks_block_q8_0 *qb = (const ks_block_q8_0 *)q + b, *kb = (const ks_block_q8_0 *)k + b;
        for (int i = 0; i < 32; i++)
            *mag += fabs((double)scale * ks_fp16_to_fp32(qb->d) * qb->qs[i] * ks_fp16_to_fp32(kb->d) * kb->qs[i]);
    }
    return scale * ref->vec_dot[KS_TYPE_Q8_0](k, q, n);
}

/* attn_scores_q8p (SDOT tables): Q8_0 keys in panels, as a pool holds them, against Q8_0
 * queries; each score within float rounding of scale times the reference Q8_0 dot product,
 * the same bits alone (a panel of its own) as in its tile, nothing stored past nk. */
static void test_attn_q8p(const char *table, const ks_kernels *k, const ks_kernels *ref) {
    enum { NQ = 9, NK = 19, LD = 160, NB = LD / 32, ROW = NB * 34, PANELS = (NK + 15) / 16 };
    static uint8_t q8[NQ * ROW], k8[NK * ROW], kp[PANELS * 16 * ROW], one_panel[16 * ROW];
    static kv_q8_query qp[NQ * NB];
    static float x[LD], s[NQ * (NK + 8)];
    static const int shapes[][2] = {{1, 1}, {1, 19}, {2, 17}, {3, 5}, {4, 16}, {5, 9}, {9, 19}};
    const int ld_s = NK + 8;
    test_case c;
    begin(&c, "%s attn_scores_q8p: the Q8_0 dot products, keys in panels", table);
    for (int r = 0; r < NQ + NK; r++) {
        for (int i = 0; i < LD; i++)
            x[i] = frand() * (r % 3 == 0 ? 30.0f : 1.0f);
        if (r < NQ) {
            ref->quantize_act[KS_TYPE_Q8_0](x, q8 + r * ROW, LD);
            kv_q8_query_prep((const ks_block_q8_0 *)(q8 + r * ROW), NB, qp + r * NB);
        } else {
            ks_type_traits_of(KS_TYPE_Q8_0)->from_float(x, k8 + (r - NQ) * ROW, LD);
        }
    }
    for (int n = 32; n <= LD; n += 32) {
        memset(kp, 0x7c, sizeof kp);
        for (int j = 0; j < NK; j++)
            kv_q8_panel_put((kv_q8_panel *)(kp + j / 16 * 16 * ROW), j % 16, (const ks_block_q8_0 *)(k8 + j * ROW),
                            n / 32);
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            const int nq = shapes[si][0], nk = shapes[si][1];
            memset(s, 0xff, sizeof s);
            k->attn_scores_q8p(qp, LD, nq, kp, LD, nk, n, 0.25f, s, ld_s, kp);
            for (int r = 0; r < nq; r++) {
                for (int j = nk; j < ld_s; j++)
                    check(&c, isnan(s[r * ld_s + j]), "n=%d %dx%d: [%d][%d] stored past nk", n, nq, nk, r, j);
                for (int j = 0; j < nk; j++) {
                    const uint8_t *qr = q8 + r * ROW, *kr = k8 + j * ROW;
                    double mag;
                    const float want = q8_0_score(ref, qr, kr, n, 0.25f, &mag), v = s[r * ld_s + j];
                    check(&c, fabs((double)v - want) <= 1e-6 * mag + 1e-30, "n=%d %dx%d [%d][%d]: %g vs %g", n, nq,
                          nk, r, j, (double)v, (double)want);
                    kv_q8_panel_put((kv_q8_panel *)one_panel, 0, (const ks_block_q8_0 *)kr, n / 32);
                    float one;
                    k->attn_scores_q8p(qp + r * NB, LD, 1, one_panel, LD, 1, n, 0.25f, &one, 1, NULL);
                    check(&c, memcmp(&one, &v, sizeof v) == 0, "n=%d %dx%d [%d][%d]: %a in the tile, %a alone", n,
                          nq, nk, r, j, (double)v, (double)one);
                }
            }
        }
    }
    end(&c, NULL);
}

/* ---- tables --------------------------------------------------------------------------- */

static const ks_type weight_types[] = {
    KS_TYPE_F32,  KS_TYPE_F16,  KS_TYPE_BF16, KS_TYPE_Q4_0, KS_TYPE_Q4_1, KS_TYPE_Q5_0,
    KS_TYPE_Q5_1, KS_TYPE_Q8_0, KS_TYPE_Q4_K, KS_TYPE_Q5_K, KS_TYPE_Q6_K, KS_TYPE_Q2_K,
    KS_TYPE_Q3_K, KS_TYPE_IQ4_NL, KS_TYPE_IQ4_XS,
};
static const ks_type act_types[] = {KS_TYPE_Q8_0, KS_TYPE_Q8_1, KS_TYPE_Q8_K};

/* The integer weight types whose kernels come in a widening-multiply and an SDOT form. */
static const ks_type dotprod_types[] = {KS_TYPE_Q8_0, KS_TYPE_Q4_0, KS_TYPE_Q4_K, KS_TYPE_Q5_K,
                                        KS_TYPE_Q6_K, KS_TYPE_Q2_K, KS_TYPE_Q3_K, KS_TYPE_IQ4_NL,
                                        KS_TYPE_IQ4_XS};

/* Every entry of table k that is not ref's own (those are ref), against ref. Entries
 * that are the same as in table `skip` (already tested) are not run again. */
static void test_table(const char *name, const ks_kernels *k, const ks_kernels *ref,
                       const ks_kernels *skip) {
#define NEW(field) (k->field != ref->field && (!skip || k->field != skip->field))
    if (NEW(fp16_to_fp32_row))
        test_fp16_to_fp32(name, k, ref);
    if (NEW(dot_f32))
        test_dot_f32(name, k, ref);
    if (NEW(attn_scores[KS_TYPE_F32]))
        test_attn(name, k, ref);
    if (k->attn_scores_q8p && NEW(attn_scores_q8p))
        test_attn_q8p(name, k, ref);
    for (size_t i = 0; i < sizeof weight_types / sizeof weight_types[0]; i++)
        if (NEW(vec_dot[weight_types[i]]))
            test_vec_dot(name, k, ref, weight_types[i]);
    for (size_t i = 0; i < sizeof act_types / sizeof act_types[0]; i++)
        if (NEW(quantize_act[act_types[i]]))
            test_quantize_act(name, k, ref, act_types[i]);
#undef NEW
    /* conversions the table leaves to ref must be ref's (NEON would need a test) */
    test_case c;
    begin(&c, "%s: entries without a NEON kernel are ref's", name);
    check(&c, k->fp32_to_fp16_row == ref->fp32_to_fp16_row, "fp32_to_fp16_row");
    check(&c, k->bf16_to_fp32_row == ref->bf16_to_fp32_row, "bf16_to_fp32_row");
    end(&c, NULL);
    for (size_t i = 0; i < sizeof weight_types / sizeof weight_types[0]; i++)
        if (k->vec_dot_4[weight_types[i]])
            test_vec_dot_4(name, k, weight_types[i]);
}

int main(int argc, char **argv) {
    int want_dotprod = -1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dotprod=yes"))
            want_dotprod = 1;
        else if (!strcmp(argv[i], "--dotprod=no"))
            want_dotprod = 0;
    }
    if (want_dotprod < 0) {
        fprintf(stderr, "usage: %s --dotprod=yes|no\n", argv[0]);
        return 2;
    }
    const ks_cpu_features *f = ks_cpu_detect();
    char cpu[160];
    ks_cpu_describe(f, cpu, sizeof cpu);
    printf("cpu: %s\n", cpu);

    const ks_kernels *ref = ks_kernels_ref();
    const ks_kernels *neon = ks_kernels_for_isa("neon");
    /* the table a CPU without DotProd gets */
    static ks_kernels plain;
    ks_kernels_ref_fill(&plain);
    ks_kernels_register_neon(&plain);

    test_case c;
    begin(&c, "dispatch: DotProd %s, neon table %s", want_dotprod ? "present" : "absent",
          want_dotprod ? "with SDOT kernels" : "without SDOT kernels");
    check(&c, (int)f->dotprod == want_dotprod, "ks_cpu_detect()->dotprod is %d", f->dotprod);
    check(&c, neon != NULL, "no neon table");
    if (!getenv("KS_KERNELS"))
        check(&c, neon == ks_kernels_get(), "neon is not the selected table");
    for (size_t i = 0; neon && i < sizeof dotprod_types / sizeof dotprod_types[0]; i++) {
        const ks_type t = dotprod_types[i];
        const bool sdot = neon->vec_dot[t] != plain.vec_dot[t];
        check(&c, sdot == (bool)want_dotprod, "%s: SDOT kernel %s", ks_type_name(t),
              sdot ? "registered" : "missing");
        check(&c, plain.vec_dot[t] != ref->vec_dot[t], "%s: no NEON kernel", ks_type_name(t));
    }
    check(&c, neon && (neon->attn_scores_q8p != NULL) == (bool)want_dotprod && !plain.attn_scores_q8p,
          "attn_scores_q8p (SDOT) %s", neon && neon->attn_scores_q8p ? "registered" : "missing");
    end(&c, NULL);

    if (neon) {
        test_table("neon", neon, ref, NULL);
        if (f->dotprod)
            test_table("neon without dotprod", &plain, ref, neon);
    }
    printf("%d passed, %d failed\n", n_passed, n_failed);
    return n_failed ? 1 : 0;
}
