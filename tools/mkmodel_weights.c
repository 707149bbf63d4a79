/* mkmodel_weights.c — fills a synthetic model's tensors with seeded random values and
 * streams them to the GGUF writer.
 *
 * Owns: the seeding of tensors and rows, the row generator, the split of a tensor's rows
 * over the compute threads, and the progress report. Random bits come from ks_rng
 * (sample/rng.h), threads from the compute pool (core/threadpool.h).
 * Does not own: the tensor plan (mkmodel_arch.c), the codecs (the traits table's
 * from_float, tensor/ref/), the file format (gguf/gguf_writer.c).
 *
 * Reproducibility: every row has its own generator, seeded from (seed, tensor name,
 * row index), so the bytes of a tensor do not depend on how rows are split between
 * threads, on the thread count, or on the other tensors in the file. The normal draw is
 * integer arithmetic up to one final multiply, so it is the same on every machine.
 *
 * Memory: one tensor's converted bytes at a time (the writer takes a tensor in one
 * piece) plus a small float scratch per thread; never the whole model. The largest
 * tensor of the presets, Qwen3-Coder-30B-A3B's token_embd or output (151,936 x 2,048),
 * is 1.2 GiB in F32 and 243 MiB as the Q6_K output of a q4_k_m file.
 *
 * Per tensor, on the compute thread pool (core/threadpool.h):
 *
 *   rows [0, n_rows) cut in chunks of ~CHUNK_ELEMS elements
 *   thread k: take next chunk -> generate rows (f32 scratch) -> convert into out[rows]
 *   caller:   is thread 0, reports progress; after the join hands out[] to the writer */
#include "mkmodel.h"

#include "core/threadpool.h"
#include "sample/rng.h"
#include "tensor/fp16.h"
#include "tensor/types.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Elements generated and converted per work item: 256 KiB of f32 scratch, small enough
 * to stay in L2 between generation and quantization, big enough to amortise the
 * hand-out. */
#define CHUNK_ELEMS (64 * 1024)
/* Seconds before the first progress report: quick writes print none. */
#define PROGRESS_DELAY_S 1.0
/* Seconds between progress reports on a terminal and on a log (pipe, file). */
#define PROGRESS_TTY_S 0.25
#define PROGRESS_LOG_S 5.0

/* ---- random numbers ------------------------------------------------------------------- */

/* Approximately standard normal from one 64-bit draw: the sum of its four 16-bit
 * quarters (Irwin-Hall with n = 4: bell-shaped, bounded to +-3.46 sigma, which also keeps
 * quantization scales free of outliers), centred and scaled to unit variance. */
#define IH4_MEAN 131070                  /* 4 * 65535 / 2 */
#define IH4_INV_STD 2.6428997921303e-05f /* 1 / sqrt(4 * (65536^2 - 1) / 12) */

static float normal_from_bits(uint64_t x) {
    int32_t sum = (int32_t)(x & 0xffff) + (int32_t)((x >> 16) & 0xffff) +
                  (int32_t)((x >> 32) & 0xffff) + (int32_t)(x >> 48);
    return (float)(sum - IH4_MEAN) * IH4_INV_STD;
}

/* FNV-1a of a tensor name: gives every tensor its own stream under one seed. */
static uint64_t name_hash(const char *s) {
    uint64_t h = 0xcbf29ce484222325u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 0x100000001b3u;
    return h;
}

/* The seed of a tensor's rows: a draw from (seed, name), so that neighbouring seeds or
 * names give unrelated tensors. */
static uint64_t tensor_seed(uint64_t seed, const char *name) {
    ks_rng r;
    ks_rng_seed(&r, seed ^ name_hash(name));
    return ks_rng_next_u64(&r);
}

/* y[0..ne0) = row `row` of tensor t. Rows use seeds tensor_seed + row: ks_rng_seed
 * spreads consecutive seeds to unrelated streams. */
static void generate_row(float *y, const ks_mkmodel_tensor *t, uint64_t seed, int64_t row) {
    ks_rng r;
    ks_rng_seed(&r, seed + (uint64_t)row);
    const float std = row >= t->quiet_row ? t->quiet_std : t->std;
    for (int64_t i = 0; i < t->ne[0]; i++)
        y[i] = t->mean + std * normal_from_bits(ks_rng_next_u64(&r));
}

/* ---- conversion ----------------------------------------------------------------------- */

typedef void (*convert_fn)(const float *x, void *y, int64_t n);

static void convert_f32(const float *x, void *y, int64_t n) { memcpy(y, x, (size_t)n * sizeof *x); }

static void convert_f16(const float *x, void *y, int64_t n) {
    ks_fp16 *h = y;
    for (int64_t i = 0; i < n; i++)
        h[i] = ks_fp32_to_fp16(x[i]);
}

static void convert_bf16(const float *x, void *y, int64_t n) {
    ks_bf16 *b = y;
    for (int64_t i = 0; i < n; i++)
        b[i] = ks_fp32_to_bf16(x[i]);
}

/* The traits table's quantizer, or for the float types a local conversion (they need
 * no codec library); NULL if kvserve cannot write this type. */
static convert_fn converter(uint32_t type) {
    const ks_type_traits *tr = ks_type_traits_of(type);
    if (tr && tr->from_float)
        return tr->from_float;
    switch (type) {
    case KS_TYPE_F32: return convert_f32;
    case KS_TYPE_F16: return convert_f16;
    case KS_TYPE_BF16: return convert_bf16;
    default: return NULL;
    }
}

/* ---- progress ------------------------------------------------------------------------- */

typedef struct progress {
    bool on, tty;
    bool printed;                /* a report went out: the final one follows */
    double t0, last;             /* seconds, monotonic */
    int64_t total;               /* parameters in the model */
    atomic_llong done;           /* parameters written or being converted, all threads */
} progress;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void progress_report(progress *p, const char *tensor, bool final) {
    if (!p->on || (final && !p->printed))
        return;
    double t = now_s();
    if (!final && (t - p->t0 < PROGRESS_DELAY_S || t - p->last < (p->tty ? PROGRESS_TTY_S : PROGRESS_LOG_S)))
        return;
    p->last = t;
    p->printed = true;
    int64_t done = atomic_load(&p->done);
    double frac = p->total ? (double)done / (double)p->total : 1.0;
    double eta = frac > 0 ? (t - p->t0) * (1.0 - frac) / frac : 0.0;
    fprintf(stderr, "%smkmodel: %3.0f%%  %.0f of %.0f M params  %.1f s  eta %.0f s  %-32s%s",
            p->tty ? "\r" : "", 100.0 * frac, (double)done * 1e-6, (double)p->total * 1e-6,
            t - p->t0, eta, final ? "done" : tensor, p->tty && !final ? "" : "\n");
    fflush(stderr);
}

/* ---- one tensor, in parallel ------------------------------------------------------------ */

typedef struct job {
    const ks_mkmodel_tensor *t;
    convert_fn convert;
    uint64_t seed;           /* this tensor's stream */
    int64_t n_rows;          /* ne[1] * ne[2] * ne[3] */
    int64_t rows_per_chunk;
    size_t row_bytes;        /* bytes of one converted row */
    uint8_t *out;            /* (n_rows, row_bytes) */
    atomic_llong next_chunk;
    atomic_bool failed;      /* a worker could not allocate its scratch */
    progress *prog;
} job;

/* One pool thread's part of a tensor: takes chunks until none is left (dynamic, so a
 * slow thread does less). Thread 0, the caller, also reports progress. */
static void run_chunks(void *ctx, int ith, int nth) {
    (void)nth;
    job *j = ctx;
    const int64_t ne0 = j->t->ne[0];
    float *x = malloc((size_t)(j->rows_per_chunk * ne0) * sizeof *x); /* (rows_per_chunk, ne0) */
    if (!x) {
        atomic_store(&j->failed, true);
        return;
    }
    for (;;) {
        int64_t r0 = atomic_fetch_add(&j->next_chunk, 1) * j->rows_per_chunk;
        if (r0 >= j->n_rows)
            break;
        int64_t r1 = KS_MIN(r0 + j->rows_per_chunk, j->n_rows);
        for (int64_t r = r0; r < r1; r++)
            generate_row(x + (r - r0) * ne0, j->t, j->seed, r);
        j->convert(x, j->out + (size_t)r0 * j->row_bytes, (r1 - r0) * ne0);
        atomic_fetch_add(&j->prog->done, (long long)((r1 - r0) * ne0));
        if (ith == 0)
            progress_report(j->prog, j->t->name, false);
    }
    free(x);
}


/* ---- the file ------------------------------------------------------------------------- */

static int64_t n_elements(const ks_mkmodel_tensor *t) { return t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]; }

ks_status ks_mkmodel_write(ks_gguf_writer *w, const char *path, const ks_mkmodel_tensor *t,
                           size_t n, const ks_mkmodel_write_opts *opts, ks_err *err) {
    KS_ASSERT(opts->n_threads >= 1);
    size_t max_bytes = 0;
    progress prog = {.total = 0};
    for (size_t i = 0; i < n; i++) {
        bool ok;
        size_t bytes = ks_type_row_size(t[i].type, t[i].ne[0], &ok) *
                       (size_t)(t[i].ne[1] * t[i].ne[2] * t[i].ne[3]);
        if (!ok)
            return KS_ERRF(err, KS_ERR_INVALID, "%s: row of %lld elements does not fit type %s",
                           t[i].name, (long long)t[i].ne[0], ks_type_name(t[i].type));
        if (!converter(t[i].type))
            return KS_ERRF(err, KS_ERR_UNSUPPORTED, "%s: no quantizer for type %s in this build",
                           t[i].name, ks_type_name(t[i].type));
        max_bytes = KS_MAX(max_bytes, bytes);
        prog.total += n_elements(&t[i]);
        ks_gguf_writer_add_tensor(w, t[i].name, t[i].type, t[i].n_dims, t[i].ne, NULL);
    }

    uint8_t *buf = malloc(max_bytes ? max_bytes : 1); /* one tensor's bytes */
    if (!buf)
        return KS_ERRF(err, KS_ERR_NOMEM, "cannot allocate %zu bytes for one tensor", max_bytes);
    ks_status s = ks_gguf_writer_begin(w, path, err);
    ks_threadpool *pool = ks_threadpool_create(opts->n_threads);

    prog.on = opts->progress;
    prog.tty = isatty(fileno(stderr));
    prog.t0 = now_s();
    prog.last = prog.t0 - PROGRESS_LOG_S; /* the first report may go out at PROGRESS_DELAY_S */
    atomic_init(&prog.done, 0);

    for (size_t i = 0; i < n && !s; i++) {
        job j = {
            .t = &t[i],
            .convert = converter(t[i].type),
            .seed = tensor_seed(opts->seed, t[i].name),
            .n_rows = t[i].ne[1] * t[i].ne[2] * t[i].ne[3],
            .rows_per_chunk = KS_MAX(1, CHUNK_ELEMS / t[i].ne[0]),
            .row_bytes = ks_type_row_size(t[i].type, t[i].ne[0], NULL),
            .out = buf,
            .prog = &prog,
        };
        atomic_init(&j.next_chunk, 0);
        atomic_init(&j.failed, false);
        ks_threadpool_run(pool, run_chunks, &j);
        if (atomic_load(&j.failed))
            s = KS_ERRF(err, KS_ERR_NOMEM, "out of memory generating %s", t[i].name);
        if (!s)
            s = ks_gguf_writer_write_tensor(w, (int)i, buf, (uint64_t)j.row_bytes * (uint64_t)j.n_rows, err);
    }
    ks_threadpool_destroy(pool);
    if (!s)
        s = ks_gguf_writer_finish(w, err);
    if (!s)
        progress_report(&prog, "", true);
    free(buf);
    return s;
}
