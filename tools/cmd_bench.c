/* cmd_bench.c — `kvserve bench -m MODEL [-p 512] [-n 128] [-t 2] [-d DEPTH,...] [-r 5]`:
 * prefill and decode throughput in llama-bench's terms, each rate also given as a share
 * of this machine's limit for it, measured in the same run (bench/bench_limits.h).
 *
 * Tests, for every depth D of -d (default 0 only):
 *
 *   pp<P> [@ d<D>]   P tokens in one evaluation after D tokens of context, logits of the
 *                    last only (prefill, chunked by -b as a server request is)
 *   tg<N> [@ d<D>]   N tokens evaluated one at a time after D tokens, each with its
 *                    logits (decode; nothing is sampled)
 *   tg<N> x<S> ...   with -s S > 1: S sequences, each with its own D tokens of context,
 *                    decode N tokens each in N steps of S tokens (one per sequence), as
 *                    the server's batched decode steps do; t/s counts every sequence's.
 *                    With --shared K the contexts' first K tokens are the same (one
 *                    prompt prefix, cached once: its KV blocks are shared, as those of
 *                    conversations or subagents with one system prompt are)
 *
 * Each test runs once untimed (warm-up), then -r timed reps; a rep's rate is tokens over
 * the wall time of its evaluation calls. Rows show mean ± sample stddev and the median.
 * Token ids are pseudo-random (fixed seeds, different for every rep), so no rep sees the
 * KV of another. The D tokens of context are one fixed stream, set up untimed before
 * every rep: the first rep computes them, later ones take their blocks from the KV cache
 * (ks_runner_start) and recompute only the last block.
 *
 * Roofs, per row:
 *   decode   bytes a token must read: the weights it touches (all of them for a dense
 *            model; attention, router and only the n_expert_used experts' share of the
 *            expert tensors for MoE; the LM head; one embedding row) plus the K/V rows
 *            it attends over (D + i + 1 positions for the i-th token of the test). The
 *            effective GB/s is t/s times the test's mean bytes per token; the share is
 *            that over the measured read bandwidth at -t threads. With S sequences a
 *            step reads the weights once for its S tokens: a token's share is 1/S; so
 *            are the K/V rows of a shared prefix's whole blocks.
 *   prefill  multiply-adds a token costs: every weight element it multiplies (the same
 *            weights as above, the LM head once per test), plus attention's QK and PV
 *            (2 * n_head * head_dim per layer and attended position), over the measured
 *            int8 dot-product peak at -t threads of what the kernels use (AMX tiles
 *            where the "amx" set runs prefill, else VNNI).
 *
 * The limits are measured before the model is loaded and again after the tests; each roof
 * is the best of the two (the machine's bandwidth moves with what else runs on its host):
 * the "of roof" column. A shared host moves faster than that: a probe (bench_limits.h)
 * reads the test's roof right before and right after each rep, and "of rep roof" is the
 * median over the reps of a rep's rate over the better of its two readings. (Seen on a
 * 2-vCPU VM: the int8 peak read 234 and 466 GMAC/s in alternate reps, as a neighbour took
 * half of one core, and pp512 followed it, 235 -> 360 t/s; the run's best roof put every
 * rep at 25-37%.)
 *
 * Weights are paged in before anything is timed (llama.cpp populates its mapping too).
 * --json prints one object (machine, model, rows with every rep's rate) for scripts such
 * as bench/peer.mjs. */
#include "commands.h"

#include "cli_common.h"
#include "core/cpu.h"
#include "engine/runner.h"
#include "bench_limits.h"
#include "model/model.h"
#include "tensor/kernels.h"
#include "tensor/types.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_DEPTHS 16
#define MAX_REPS 1000
/* Page stride for touching the mapping: the smallest page size of the targets. */
#define TOUCH_STRIDE_BYTES 4096

static void usage(FILE *f) {
    fprintf(f,
            "usage: kvserve bench -m MODEL [options]\n"
            "  -p N            prompt tokens of the prefill test (default 512; 0: none)\n"
            "  -n N            tokens of the decode test (default 128; 0: none)\n"
            "  -s S            sequences decoding together in the decode test (default 1)\n"
            "  --shared K      with -s: the sequences' contexts begin with the same K tokens\n"
            "  -t N            threads (default 2)\n"
            "  -d D[,D...]     run both tests after D tokens of context too (default 0)\n"
            "  -r N            timed repetitions per test (default 5)\n"
            "  -b N            prefill chunk in tokens (default 512)\n"
            "  --kv-type T     f16 (default) | f32 | q8_0\n"
            "  --seed N        seed of the token streams (default 1)\n"
            "  --no-limits     skip measuring the machine (no roof shares)\n"
            "  --bw-buffer N   MiB read by the bandwidth loop (default: 4x the LLC, >= 512)\n"
            "  --json          one JSON object instead of the table\n"
            "  --progress      a line on stderr as each test and rep starts\n");
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* splitmix64: a token stream per seed. */
static uint64_t mix(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void fill_tokens(int32_t *t, int n, uint64_t seed, int n_vocab) {
    for (int i = 0; i < n; i++)
        t[i] = (int32_t)(mix(&seed) % (uint64_t)n_vocab);
}

/* ---- what a token costs ------------------------------------------------------------- */

static uint64_t n_rows(const ks_weight *w) {
    return (uint64_t)KS_MAX(w->ne[1], 1) * (uint64_t)KS_MAX(w->ne[2], 1) * (uint64_t)KS_MAX(w->ne[3], 1);
}
static uint64_t w_bytes(const ks_weight *w) { return w->data ? w->row_bytes * n_rows(w) : 0; }
static uint64_t w_macs(const ks_weight *w) { return w->data ? (uint64_t)w->ne[0] * n_rows(w) : 0; }

typedef struct token_cost {
    uint64_t size_bytes, n_params;     /* whole model: every tensor */
    double weight_bytes;               /* weights one decode token reads, LM head included */
    double weight_macs;                /* multiply-adds of one token's matmuls, LM head excluded */
    double head_macs;                  /* the LM head, per logits row */
    double kv_bytes_per_pos;           /* K and V of one position, all layers */
    double attn_macs_per_pos;          /* QK and PV of one position, all layers */
} token_cost;

static void measure_cost(const ks_model *m, const ks_kv_layout *kv, token_cost *c) {
    const ks_hparams *hp = &m->hp;
    memset(c, 0, sizeof *c);
    for (uint64_t i = 0; i < ks_gguf_n_tensors(m->gguf); i++) {
        const ks_gguf_tensor *t = ks_gguf_tensor_at(m->gguf, i);
        c->size_bytes += t->size;
        uint64_t n = 1;
        for (uint32_t d = 0; d < t->n_dims; d++)
            n *= (uint64_t)t->ne[d];
        c->n_params += n;
    }
    double used = hp->n_expert > 0 ? (double)hp->n_expert_used / hp->n_expert : 0;
    for (int il = 0; il < hp->n_layer; il++) {
        const ks_layer *l = &m->layers[il];
        const ks_weight *full[] = {&l->attn_norm, &l->wq, &l->wk, &l->wv, &l->wo, &l->q_norm,
                                   &l->k_norm, &l->ffn_norm, &l->ffn_gate, &l->ffn_up, &l->ffn_down,
                                   &l->gate_inp};
        const ks_weight *mm[] = {&l->wq, &l->wk, &l->wv, &l->wo, &l->ffn_gate, &l->ffn_up,
                                 &l->ffn_down, &l->gate_inp};
        const ks_weight *exps[] = {&l->gate_exps, &l->up_exps, &l->down_exps};
        for (size_t k = 0; k < KS_ARRAY_LEN(full); k++)
            c->weight_bytes += (double)w_bytes(full[k]);
        for (size_t k = 0; k < KS_ARRAY_LEN(mm); k++)
            c->weight_macs += (double)w_macs(mm[k]);
        for (size_t k = 0; k < KS_ARRAY_LEN(exps); k++) {
            c->weight_bytes += used * (double)w_bytes(exps[k]);
            c->weight_macs += used * (double)w_macs(exps[k]);
        }
    }
    c->weight_bytes += (double)(w_bytes(&m->output_norm) + w_bytes(&m->output));
    if (!hp->tied_output)
        c->weight_bytes += (double)m->tok_embd.row_bytes;
    c->head_macs = (double)w_macs(&m->output);
    c->kv_bytes_per_pos = 2.0 * hp->n_layer * (double)kv->row_bytes;
    c->attn_macs_per_pos = 2.0 * hp->n_layer * hp->n_head * (double)hp->head_dim;
}

/* Sum of attended positions over tokens D+1 .. D+n: token i of a test attends D+i+1. */
static double attended(int depth, int n) { return (double)n * depth + (double)n * (n + 1) / 2; }

/* Mean bytes a decode token of tg<n> x<n_seqs> @ d<depth> reads: the weights are read
 * once per step of n_seqs tokens, and so are the K/V rows of the `shared` positions
 * (whole blocks of a prefix the sequences share). */
static double tg_bytes(const token_cost *c, int depth, int n, int n_seqs, int shared) {
    return c->weight_bytes / n_seqs +
           c->kv_bytes_per_pos * (attended(depth, n) / n - (double)shared * (n_seqs - 1) / n_seqs);
}

/* Mean multiply-adds a token of pp<n> @ d<depth> costs. */
static double pp_macs(const token_cost *c, int depth, int n) {
    return c->weight_macs + (c->head_macs + c->attn_macs_per_pos * attended(depth, n)) / n;
}

/* ---- the tests ---------------------------------------------------------------------- */

typedef struct bench {
    ks_runner *r;
    const ks_model *m;
    int n_seqs;            /* sequences of the decode test */
    int32_t *ctx_tokens;   /* (n_seqs, max depth) each sequence's context stream */
    int32_t *test_tokens;  /* (max(p, n * n_seqs)) */
    float *logits;         /* (n_seqs, n_vocab) */
    uint64_t seed;
    ks_bench_probe *probe; /* NULL: --no-limits */
    ks_err *err;
} bench;

/* Sets up depth tokens of context (untimed) in sequence j, or an empty sequence. */
static ks_status set_up(bench *b, int j, int depth, int max_depth) {
    ks_runner_select(b->r, j);
    if (depth == 0) {
        ks_runner_reset(b->r);
        return KS_OK;
    }
    return ks_runner_start(b->r, b->ctx_tokens + (size_t)j * (size_t)max_depth, depth, NULL, NULL, b->err);
}

/* The roof of a test read now: int8 peak (prefill: of AMX tiles where the kernels use
 * them, as pp_roof) or read bandwidth (decode). */
static double probe_roof(bench *b, bool prefill) {
    return prefill ? ks_bench_probe_int8_macs(b->probe, !strcmp(ks_kernels_get()->isa, "amx"))
                   : ks_bench_probe_read_bps(b->probe);
}

/* Sets up the context (one sequence for prefill, n_seqs for decode), runs the test;
 * returns seconds, or < 0. With a probe, *roof is the better of the roofs read right
 * before and right after the timed part. */
static double run_once(bench *b, bool prefill, int n, int depth, int max_depth, uint64_t rep_seed,
                       double *roof) {
    ks_status s = KS_OK;
    int n_seqs = prefill ? 1 : b->n_seqs;
    for (int j = n_seqs - 1; j >= 0 && !s; j--) /* ends with sequence 0 selected */
        s = set_up(b, j, depth, max_depth);
    if (s)
        return -1;
    fill_tokens(b->test_tokens, n * n_seqs, rep_seed, b->m->hp.n_vocab);
    const double roof0 = roof && b->probe ? probe_roof(b, prefill) : 0;
    double t0 = now_s();
    if (prefill)
        s = ks_runner_eval(b->r, b->test_tokens, n, false, b->logits, b->err);
    else if (n_seqs == 1)
        for (int i = 0; i < n && !s; i++)
            s = ks_runner_eval(b->r, b->test_tokens + i, 1, false, b->logits, b->err);
    else
        for (int i = 0; i < n && !s; i++)
            s = ks_runner_decode(b->r, b->test_tokens + (size_t)i * (size_t)n_seqs, b->logits, b->err);
    double dt = now_s() - t0;
    if (roof)
        *roof = b->probe ? KS_MAX(roof0, probe_roof(b, prefill)) : 0;
    return s ? -1 : dt;
}

typedef struct row {
    bool prefill;
    int n, depth;
    int n_seqs;            /* decode: sequences decoding together */
    int shared;            /* decode: positions of whole blocks the sequences share */
    double *ts;            /* (reps) tokens/s of each rep */
    double *roofs;         /* (reps) the roof read around each rep (run_once); 0: none */
    double mean, sd, median;
    double rep_share;      /* median over reps of ts * per_token / roofs; 0: no roofs */
    double per_token;      /* bytes (decode) or multiply-adds (prefill) per token */
} row;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median_of(const double *x, int n) {
    double *s = malloc((size_t)n * sizeof *s);
    if (!s)
        return x[0];
    memcpy(s, x, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    double m = n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
    free(s);
    return m;
}

static void stats(row *w, int reps) {
    double sum = 0, ss = 0;
    for (int i = 0; i < reps; i++)
        sum += w->ts[i];
    w->mean = sum / reps;
    for (int i = 0; i < reps; i++)
        ss += (w->ts[i] - w->mean) * (w->ts[i] - w->mean);
    w->sd = reps > 1 ? sqrt(ss / (reps - 1)) : 0;
    w->median = median_of(w->ts, reps);
    double shares[MAX_REPS];
    int n = 0;
    for (int i = 0; i < reps; i++)
        if (w->roofs[i] > 0)
            shares[n++] = w->ts[i] * w->per_token / w->roofs[i];
    w->rep_share = n == reps ? median_of(shares, n) : 0;
}

/* ---- output ------------------------------------------------------------------------- */

/* The int8 peak of the instructions kvserve's prefill runs on: AMX tiles where the
 * selected kernel set has its tile GEMMs (and the machine's AMX peak was measured), else
 * VNNI dot products. */
static double pp_roof(const ks_bench_limits *lim) {
    bool amx = lim->amx_isa && lim->amx_macs > 0 && !strcmp(ks_kernels_get()->isa, "amx");
    return amx ? lim->amx_macs : lim->int8_macs;
}

static void test_name(const row *w, char *buf, size_t len) {
    int k = snprintf(buf, len, "%s%d", w->prefill ? "pp" : "tg", w->n);
    if (w->n_seqs > 1 && k > 0 && (size_t)k < len)
        k += snprintf(buf + k, len - (size_t)k, " x%d", w->n_seqs);
    if (w->depth > 0 && k > 0 && (size_t)k < len)
        k += snprintf(buf + k, len - (size_t)k, " @ d%d", w->depth);
    if (w->shared > 0 && k > 0 && (size_t)k < len)
        snprintf(buf + k, len - (size_t)k, " sh%d", w->shared);
}

static void human_count(double x, char *buf, size_t len) {
    if (x >= 1e9)
        snprintf(buf, len, "%.2f B", x / 1e9);
    else
        snprintf(buf, len, "%.2f M", x / 1e6);
}

/* Touches every page of every tensor, so no timed run pays for faulting weights in. */
static uint64_t page_in(const ks_model *m) {
    uint64_t sum = 0;
    for (uint64_t i = 0; i < ks_gguf_n_tensors(m->gguf); i++) {
        const ks_gguf_tensor *t = ks_gguf_tensor_at(m->gguf, i);
        const volatile uint8_t *p = t->data;
        for (uint64_t o = 0; o < t->size; o += TOUCH_STRIDE_BYTES)
            sum += p[o];
    }
    return sum;
}

/* The table's columns: header, width, right-aligned. */
typedef struct column {
    const char *name;
    int width;
    bool right;
} column;

static const column columns[] = {
    {"model", 22, false}, {"size", 10, true},   {"params", 8, true},  {"threads", 7, true},
    {"test", 14, false},  {"t/s", 16, true},    {"median", 8, true},  {"work/s", 12, true},
    {"of roof", 7, true}, {"of rep roof", 11, true},
};
#define N_COLUMNS (int)KS_ARRAY_LEN(columns)

/* Characters a UTF-8 string shows (its bytes less continuation bytes). */
static int text_width(const char *s) {
    int n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

/* One row of cells in markdown, padded to the column widths. */
static void print_cells(const char *const *cells) {
    for (int i = 0; i < N_COLUMNS; i++) {
        int pad = KS_MAX(0, columns[i].width - text_width(cells[i]));
        printf("| %*s%s%*s ", columns[i].right ? pad : 0, "", cells[i], columns[i].right ? 0 : pad, "");
    }
    printf("|\n");
}

static void print_table(const char *label, const token_cost *c, int threads, const row *rows, int n_rows_,
                        const ks_bench_limits *lim, bool have_limits) {
    const char *head[N_COLUMNS];
    for (int i = 0; i < N_COLUMNS; i++)
        head[i] = columns[i].name;
    print_cells(head);
    for (int i = 0; i < N_COLUMNS; i++) {
        printf("|");
        for (int k = 0; k < columns[i].width + 2 - columns[i].right; k++)
            putchar('-');
        printf("%s", columns[i].right ? ":" : "");
    }
    printf("|\n");
    char size[32], params[32], nth[16];
    snprintf(size, sizeof size, "%.2f MiB", (double)c->size_bytes / (1 << 20));
    human_count((double)c->n_params, params, sizeof params);
    snprintf(nth, sizeof nth, "%d", threads);
    for (int i = 0; i < n_rows_; i++) {
        const row *w = &rows[i];
        char test[48], ts[48], median[32], work[32] = "", share[16] = "", rep_share[16] = "";
        test_name(w, test, sizeof test);
        snprintf(ts, sizeof ts, "%.2f ± %.2f", w->mean, w->sd);
        snprintf(median, sizeof median, "%.2f", w->median);
        double rate = w->median * w->per_token;
        double roof = have_limits ? (w->prefill ? pp_roof(lim) : lim->read_bps) : 0;
        if (w->prefill)
            snprintf(work, sizeof work, "%.1f GMAC/s", rate / 1e9);
        else
            snprintf(work, sizeof work, "%.2f GB/s", rate / 1e9);
        if (roof > 0)
            snprintf(share, sizeof share, "%.1f%%", 100 * rate / roof);
        if (w->rep_share > 0)
            snprintf(rep_share, sizeof rep_share, "%.1f%%", 100 * w->rep_share);
        const char *cells[N_COLUMNS] = {label, size, params, nth, test, ts, median, work, share, rep_share};
        print_cells(cells);
    }
}

static json_t *json_report(const char *path, const char *label, const ks_model *m, const token_cost *c,
                           const ks_bench_limits *lim, bool have_limits, const ks_runner_params *p,
                           const char *kv_type, int reps, double load_avg, const row *rows, int n_rows_) {
    char cpu[256];
    ks_cpu_describe(ks_cpu_detect(), cpu, sizeof cpu);
    json_t *machine = json_pack("{s:s, s:s, s:f}", "cpu", cpu, "kernels", ks_kernels_get()->isa, "load_average",
                                load_avg);
    if (have_limits) {
        json_object_set_new(machine, "read_buffer_bytes", json_integer((json_int_t)lim->read_buffer_bytes));
        json_object_set_new(machine, "huge_pages", json_boolean(lim->huge_pages));
        json_object_set_new(machine, "read_isa", json_string(lim->read_isa));
        json_object_set_new(machine, "read_bytes_per_s_1t", json_real(lim->read_bps_1t));
        json_object_set_new(machine, "read_bytes_per_s", json_real(lim->read_bps));
        json_object_set_new(machine, "int8_isa", lim->int8_isa ? json_string(lim->int8_isa) : json_null());
        json_object_set_new(machine, "int8_macs_per_s_1t", json_real(lim->int8_macs_1t));
        json_object_set_new(machine, "int8_macs_per_s", json_real(lim->int8_macs));
        json_object_set_new(machine, "pp_roof_macs_per_s", json_real(pp_roof(lim)));
        json_object_set_new(machine, "amx_isa", lim->amx_isa ? json_string(lim->amx_isa) : json_null());
        json_object_set_new(machine, "amx_macs_per_s_1t", json_real(lim->amx_macs_1t));
        json_object_set_new(machine, "amx_macs_per_s", json_real(lim->amx_macs));
    }
    json_t *model = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:i, s:i, s:i, s:f, s:f, s:f, s:f}", "path",
                              path, "label", label, "arch", m->hp.arch_name, "quant", m->quant_name, "size_bytes",
                              (json_int_t)c->size_bytes, "n_params", (json_int_t)c->n_params, "n_layer",
                              m->hp.n_layer, "n_vocab", m->hp.n_vocab, "n_expert_used", m->hp.n_expert_used,
                              "decode_weight_bytes",
                              c->weight_bytes, "kv_bytes_per_position", c->kv_bytes_per_pos,
                              "prefill_weight_macs", c->weight_macs, "attn_macs_per_position",
                              c->attn_macs_per_pos);
    json_t *settings = json_pack("{s:i, s:i, s:s, s:i}", "threads", p->n_threads, "batch", p->n_batch,
                                 "kv_type", kv_type, "reps", reps);
    json_t *jrows = json_array();
    for (int i = 0; i < n_rows_; i++) {
        const row *w = &rows[i];
        char test[48];
        test_name(w, test, sizeof test);
        json_t *ts = json_array(), *roofs = json_array();
        for (int k = 0; k < reps; k++) {
            json_array_append_new(ts, json_real(w->ts[k]));
            json_array_append_new(roofs, json_real(w->roofs[k]));
        }
        double rate = w->median * w->per_token;
        double roof = w->prefill ? pp_roof(lim) : lim->read_bps;
        json_t *o = json_pack("{s:s, s:s, s:i, s:i, s:o, s:f, s:f, s:f, s:f}", "test", test, "kind",
                              w->prefill ? "pp" : "tg", "n", w->n, "depth", w->depth, "ts", ts, "mean", w->mean,
                              "stddev", w->sd, "median", w->median, w->prefill ? "macs_per_token" : "bytes_per_token",
                              w->per_token);
        json_object_set_new(o, "seqs", json_integer(w->n_seqs));
        json_object_set_new(o, "shared", json_integer(w->shared));
        if (have_limits && roof > 0)
            json_object_set_new(o, "roof_share", json_real(rate / roof));
        if (w->rep_share > 0) {
            json_object_set_new(o, "rep_roofs", roofs);
            json_object_set_new(o, "rep_roof_share", json_real(w->rep_share));
        } else {
            json_decref(roofs);
        }
        json_array_append_new(jrows, o);
    }
    return json_pack("{s:o, s:o, s:o, s:o}", "machine", machine, "model", model, "settings", settings, "rows",
                     jrows);
}

/* ---- the command -------------------------------------------------------------------- */

static int parse_depths(const char *v, int *out) {
    int n = 0;
    for (const char *p = v; p && *p;) {
        char *end;
        long d = strtol(p, &end, 10);
        if (end == p || d < 0 || d > (1 << 24) || n == MAX_DEPTHS || (*end && *end != ','))
            return -1;
        out[n++] = (int)d;
        p = *end ? end + 1 : end;
    }
    return n;
}

int ks_cmd_bench(int argc, char **argv) {
    const char *model_path = NULL, *kv_name = "f16";
    long n_prompt = 512, n_gen = 128, n_seqs = 1, threads = 2, reps = 5, batch = 512, seed = 1, bw_mib = 0,
         shared = 0;
    int depths[MAX_DEPTHS] = {0}, n_depths = 1, kv_type = KS_TYPE_F16;
    bool json = false, limits = true, progress = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define INT_OPT(name, var, lo, hi) else if (!strcmp(a, name)) { if (!ks_cli_int("bench", a, v, lo, hi, &var)) return 2; i++; }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        else if (!strcmp(a, "-m") || !strcmp(a, "--model")) { model_path = v; i++; }
        else if (!strcmp(a, "--json")) json = true;
        else if (!strcmp(a, "--no-limits")) limits = false;
        else if (!strcmp(a, "--progress")) progress = true;
        else if (!strcmp(a, "-d")) {
            if (!v || (n_depths = parse_depths(v, depths)) < 1) {
                fprintf(stderr, "kvserve bench: -d needs depths such as 0,4096 (at most %d)\n", MAX_DEPTHS);
                return 2;
            }
            i++;
        }
        else if (!strcmp(a, "--kv-type")) {
            if (!v || (kv_type = ks_cli_kv_type(v)) < 0) { fprintf(stderr, "kvserve bench: --kv-type is f32, f16 or q8_0\n"); return 2; }
            kv_name = v;
            i++;
        }
        INT_OPT("-p", n_prompt, 0, 1 << 20)
        INT_OPT("-n", n_gen, 0, 1 << 20)
        INT_OPT("-s", n_seqs, 1, KS_RUNNER_MAX_SEQS)
        INT_OPT("--shared", shared, 0, 1 << 24)
        INT_OPT("-t", threads, 1, 1024)
        INT_OPT("-r", reps, 1, MAX_REPS)
        INT_OPT("-b", batch, 1, 1 << 16)
        INT_OPT("--seed", seed, 0, 0x7fffffffffffffffL)
        INT_OPT("--bw-buffer", bw_mib, 64, 1 << 20)
        else { fprintf(stderr, "kvserve bench: unknown option '%s'\n", a); usage(stderr); return 2; }
#undef INT_OPT
    }
    if (!model_path || (n_prompt == 0 && n_gen == 0)) {
        usage(stderr);
        return 2;
    }
    int max_depth = 0;
    for (int i = 0; i < n_depths; i++)
        max_depth = KS_MAX(max_depth, depths[i]);

    int rc = 1;
    ks_err err;
    ks_err_clear(&err);
    ks_model *m = NULL;
    ks_runner *r = NULL;
    row *rows = NULL;
    int n_rows_ = 0;
    bench b = {.err = &err, .seed = (uint64_t)seed};
    ks_bench_limits lim;
    memset(&lim, 0, sizeof lim);

    /* Other processes' load before we add ours: a busy machine makes every rate (and the
     * limits) low and noisy, so say so where the figures are. */
    double load[1] = {-1};
    int n_cpus = ks_cpu_detect()->n_logical_cpus;
    bool busy = getloadavg(load, 1) == 1 && load[0] >= 0.5 * n_cpus;
    if (busy)
        fprintf(stderr, "kvserve bench: warning: the machine is busy (load average %.1f on %d CPUs): "
                        "rates will be low and noisy\n", load[0], n_cpus);
    /* The machine first, with nothing else of ours running. */
    if (limits && ks_bench_limits_measure(&lim, (int)threads, (size_t)bw_mib << 20, &err))
        goto fail;
    if (ks_model_load(&m, model_path, &err))
        goto fail;
    volatile uint64_t touched = page_in(m);
    (void)touched;
    if (limits && ks_bench_probe_create(&b.probe, (int)threads, (size_t)bw_mib << 20, &err))
        goto fail;

    ks_runner_params p;
    ks_runner_params_default(&p);
    p.n_threads = (int)threads;
    p.n_batch = (int)batch;
    p.n_ctx = max_depth + (int)KS_MAX(n_prompt, n_gen) + 1;
    p.n_seqs = n_gen > 0 ? (int)n_seqs : 1;
    p.kv.kv_type = (uint32_t)kv_type;
    if (ks_runner_create(&r, m, &p, &err))
        goto fail;
    p.n_threads = ks_runner_n_threads(r);
    b.r = r;
    b.m = m;
    b.n_seqs = p.n_seqs;
    b.ctx_tokens = malloc((size_t)KS_MAX(max_depth, 1) * (size_t)b.n_seqs * sizeof *b.ctx_tokens);
    b.test_tokens = malloc((size_t)KS_MAX(n_prompt, n_gen * b.n_seqs) * sizeof *b.test_tokens);
    b.logits = malloc((size_t)m->hp.n_vocab * (size_t)b.n_seqs * sizeof *b.logits);
    rows = calloc((size_t)n_depths * 2, sizeof *rows);
    if (!b.ctx_tokens || !b.test_tokens || !b.logits || !rows) {
        KS_ERRF(&err, KS_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (int j = 0; j < b.n_seqs; j++) { /* sequence 0's stream is the one of -s 1 */
        int32_t *ctx = b.ctx_tokens + (size_t)j * (size_t)max_depth;
        fill_tokens(ctx, max_depth, (uint64_t)seed + (uint64_t)j * 7919u, m->hp.n_vocab);
        if (j > 0) /* the shared prefix: sequence 0's */
            memcpy(ctx, b.ctx_tokens, (size_t)KS_MIN(shared, max_depth) * sizeof *ctx);
    }

    token_cost cost;
    measure_cost(m, ks_kv_cache_layout(ks_runner_cache(r)), &cost);
    char label[96];
    if (cost.n_params >= 1000000000u)
        snprintf(label, sizeof label, "%s %.1fB %s", m->hp.arch_name, (double)cost.n_params / 1e9, m->quant_name);
    else
        snprintf(label, sizeof label, "%s %.0fM %s", m->hp.arch_name, (double)cost.n_params / 1e6, m->quant_name);

    if (!json) {
        char cpu[256];
        ks_cpu_describe(ks_cpu_detect(), cpu, sizeof cpu);
        printf("cpu      %s; kernels %s; %d threads; load average %.2f%s\n", cpu, ks_kernels_get()->isa,
               p.n_threads, load[0], busy ? " (busy: rates low and noisy)" : "");
        if (limits) {
            printf("machine  read bandwidth %.1f GB/s (1 thread), %.1f GB/s (%d) over %zu MiB, %s loads, "
                   "huge pages %s\n",
                   lim.read_bps_1t / 1e9, lim.read_bps / 1e9, lim.n_threads, lim.read_buffer_bytes >> 20,
                   lim.read_isa, lim.huge_pages ? "on" : "off");
            if (lim.int8_isa)
                printf("         int8 peak (%s) %.0f GMAC/s (1 thread), %.0f GMAC/s (%d)\n", lim.int8_isa,
                       lim.int8_macs_1t / 1e9, lim.int8_macs / 1e9, lim.n_threads);
            if (lim.amx_isa)
                printf("         %s peak %.0f GMAC/s (1 thread), %.0f GMAC/s (%d)%s\n", lim.amx_isa,
                       lim.amx_macs_1t / 1e9, lim.amx_macs / 1e9, lim.n_threads,
                       pp_roof(&lim) == lim.amx_macs ? "" : ": not used by these kernels");
        }
        printf("model    %s: %s, %d layers%s; a decode token reads %.1f MiB of weights + %.1f KiB of K/V "
               "per position of context\n",
               model_path, m->hp.arch_name, m->hp.n_layer, m->hp.n_expert ? " (MoE)" : "",
               cost.weight_bytes / (1 << 20), cost.kv_bytes_per_pos / 1024);
        printf("settings KV %s, prefill chunk %d, %ld reps after 1 warm-up; roof: read bandwidth (tg), "
               "int8 peak of the kernels in use (pp)\n\n",
               kv_name, p.n_batch, reps);
        fflush(stdout);
    }

    for (int di = 0; di < n_depths; di++)
        for (int kind = 0; kind < 2; kind++) {
            bool prefill = kind == 0;
            int n = (int)(prefill ? n_prompt : n_gen);
            if (n == 0)
                continue;
            row *w = &rows[n_rows_];
            w->prefill = prefill;
            w->n = n;
            w->depth = depths[di];
            w->n_seqs = prefill ? 1 : b.n_seqs;
            if (w->n_seqs > 1) { /* the shared prefix's whole blocks */
                const int bt = ks_kv_cache_layout(ks_runner_cache(r))->block_tokens;
                w->shared = (int)KS_MIN(shared, w->depth) / bt * bt;
            }
            w->per_token = prefill ? pp_macs(&cost, w->depth, n)
                                   : tg_bytes(&cost, w->depth, n, w->n_seqs, w->shared);
            if (!(w->ts = malloc((size_t)reps * sizeof *w->ts)) || !(w->roofs = calloc((size_t)reps, sizeof *w->roofs))) {
                KS_ERRF(&err, KS_ERR_NOMEM, "out of memory");
                goto fail;
            }
            n_rows_++;
            char test[48];
            test_name(w, test, sizeof test);
            if (progress)
                fprintf(stderr, "kvserve bench: %s: warm-up%s\n", test,
                        w->depth > 0 ? " (and the context, computed once)" : "");
            /* warm-up: llama-bench's (the whole prompt; one decode token) */
            if (run_once(&b, prefill, prefill ? n : 1, w->depth, max_depth, (uint64_t)seed ^ 0x5eedull, NULL) < 0)
                goto fail;
            for (int k = 0; k < reps; k++) {
                if (progress)
                    fprintf(stderr, "kvserve bench: %s: rep %d of %ld\n", test, k + 1, reps);
                double dt = run_once(&b, prefill, n, w->depth, max_depth,
                                     (uint64_t)seed * 1000003u + (uint64_t)k + 1, &w->roofs[k]);
                if (dt < 0)
                    goto fail;
                w->ts[k] = dt > 0 ? (double)n * w->n_seqs / dt : 0;
            }
            stats(w, (int)reps);
        }

    /* The machine again, after the tests: on a shared machine its bandwidth moves over
     * minutes (seen: 24-49 GB/s within an hour), and a roof taken once in a slow minute let rates pass
     * 100% of it. The shares use the best of the two. */
    ks_bench_probe_destroy(b.probe); /* its buffer, before the measurement allocates its own */
    b.probe = NULL;
    ks_bench_limits before = lim;
    if (limits) {
        ks_bench_limits after;
        if (ks_bench_limits_measure(&after, (int)threads, (size_t)bw_mib << 20, &err))
            goto fail;
        ks_bench_limits_keep_best(&lim, &after);
    }

    if (json) {
        json_t *o = json_report(model_path, label, m, &cost, &lim, limits, &p, kv_name, (int)reps, load[0], rows,
                                n_rows_);
        char *text = json_dumps(o, JSON_INDENT(1) | JSON_REAL_PRECISION(9));
        json_decref(o);
        if (!text) {
            KS_ERRF(&err, KS_ERR_NOMEM, "out of memory");
            goto fail;
        }
        printf("%s\n", text);
        free(text);
    } else {
        print_table(label, &cost, p.n_threads, rows, n_rows_, &lim, limits);
        if (limits)
            printf("\nof roof: the median rate over the run's roof, measured before and after the tests, the best of "
                   "the two: read bandwidth %.1f GB/s (before: %.1f), int8 peak %.0f GMAC/s (before: %.0f)\n"
                   "of rep roof: the median of each rep's rate over the roof read right before and after it "
                   "(the better of the two)\n",
                   lim.read_bps / 1e9, before.read_bps / 1e9, pp_roof(&lim) / 1e9, pp_roof(&before) / 1e9);
    }
    rc = 0;
fail:
    if (rc)
        fprintf(stderr, "kvserve bench: %s\n", err.msg[0] ? err.msg : "failed");
    for (int i = 0; i < n_rows_; i++) {
        free(rows[i].ts);
        free(rows[i].roofs);
    }
    free(rows);
    free(b.ctx_tokens);
    free(b.test_tokens);
    free(b.logits);
    ks_bench_probe_destroy(b.probe);
    ks_runner_destroy(r);
    ks_model_close(m);
    return rc;
}
