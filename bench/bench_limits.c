/* bench_limits.c — measuring the machine's roofs (see bench_limits.h): the buffer, the
 * passes, the threads, and the choice of ISA loop. Compiled without ISA flags; the loops
 * it calls are in bench_limits_avx2.c and bench_limits_avx512.c. */
#include "bench_limits.h"

#include "core/cpu.h"
#include "core/threadpool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* Timed passes per figure; the best one counts. Five is enough for the best to be a
 * pass nothing else disturbed on a quiet machine. */
#define PASSES 5
/* The int8 loops run until a pass takes at least this long (seconds): long enough that
 * the thread wake-up (microseconds) and timer do not matter, short enough that the
 * whole measurement stays under a few seconds. */
#define PEAK_PASS_S 0.05
/* Passes of a probe's reading (ks_bench_probe_*): the best of three passes over the
 * buffer (~50 ms at 30 GB/s over 512 MiB) is steady within a few percent on a quiet
 * machine and costs little beside a rep. */
#define PROBE_PASSES 3
/* Huge-page size the buffer is aligned to (x86-64 and arm64 with 4 KiB base pages). */
#define HUGE_PAGE_BYTES (2u << 20)
/* The last-level cache when the C library cannot tell (bytes). */
#define FALLBACK_LLC_BYTES (32u << 20)
/* The read loops consume 256-byte chunks (four 64-byte loads). */
#define CHUNK_BYTES 256

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

size_t ks_bench_limits_default_buffer_bytes(void) {
    long llc = -1;
#ifdef _SC_LEVEL3_CACHE_SIZE
    llc = sysconf(_SC_LEVEL3_CACHE_SIZE);
#endif
    uint64_t bytes = 4 * (llc > 0 ? (uint64_t)llc : FALLBACK_LLC_BYTES);
    bytes = KS_MAX(bytes, (uint64_t)512 << 20);
    bytes = KS_MIN(bytes, (uint64_t)4 << 30);
    long pages = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0)
        bytes = KS_MIN(bytes, (uint64_t)pages * (uint64_t)page / 4);
    return (size_t)(bytes / HUGE_PAGE_BYTES * HUGE_PAGE_BYTES);
}

/* Transparent huge pages are on for an madvise'd region ("[always]" or "[madvise]"). */
static bool thp_enabled(void) {
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (!f)
        return false;
    char line[128] = {0};
    bool on = fgets(line, sizeof line, f) &&
              (strstr(line, "[always]") || strstr(line, "[madvise]"));
    fclose(f);
    return on;
}

/* ---- the loops, chosen once --------------------------------------------------------- */

typedef uint64_t (*read_fn)(const void *buf, size_t bytes);
typedef uint64_t (*int8_fn)(int64_t iters, const uint8_t *a, const int8_t *b, int32_t *sink);

/* Portable reads: eight independent sums so the adds never limit the loop. */
static uint64_t read_scalar(const void *buf, size_t bytes) {
    const uint64_t *p = buf;
    uint64_t s[8] = {0};
    for (size_t i = 0, n = bytes / 8; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            s[j] += p[i + j];
    return s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
}

static read_fn pick_read(const char **isa) {
#if defined(KS_LIMITS_X86)
    const ks_cpu_features *f = ks_cpu_detect();
    if (f->avx512f) {
        *isa = "avx512";
        return ks_bench_limits_read_avx512;
    }
    if (f->avx2) {
        *isa = "avx2";
        return ks_bench_limits_read_avx2;
    }
#endif
    *isa = "scalar";
    return read_scalar;
}

/* The int8 instruction of the best kernel set this CPU runs. */
static int8_fn pick_int8(const char **isa) {
#if defined(KS_LIMITS_X86)
    const ks_cpu_features *f = ks_cpu_detect();
    if (f->avx512f && f->avx512bw && f->avx512vnni) {
        *isa = "avx512-vnni";
        return ks_bench_limits_int8_avx512_vnni;
    }
    if (f->avx2) {
        *isa = "avx2";
        return ks_bench_limits_int8_avx2;
    }
#endif
    *isa = NULL;
    return NULL;
}

/* ---- threads ------------------------------------------------------------------------ */

typedef struct read_job {
    read_fn fn;
    const uint8_t *buf;
    size_t chunks;             /* CHUNK_BYTES units in buf */
    uint64_t sink[64];         /* one per thread (ks_bench_limits_measure caps threads at 64) */
} read_job;

static void read_share(void *ctx, int ith, int nth) {
    read_job *j = ctx;
    long r0, r1;
    ks_split_range((long)j->chunks, ith, nth, &r0, &r1);
    j->sink[ith] = j->fn(j->buf + (size_t)r0 * CHUNK_BYTES, (size_t)(r1 - r0) * CHUNK_BYTES);
}

typedef struct int8_job {
    int8_fn fn;
    int64_t iters;
    const uint8_t *a;
    const int8_t *b;
    uint64_t macs[64];
    int32_t sink[64];
} int8_job;

static void int8_share(void *ctx, int ith, int nth) {
    (void)nth;
    int8_job *j = ctx;
    j->macs[ith] = j->fn(j->iters, j->a, j->b, &j->sink[ith]);
}

/* Best bytes/s over `passes` passes of the whole buffer. */
static double read_rate(ks_threadpool *tp, read_job *j, int passes) {
    double best = 0;
    for (int p = 0; p < passes; p++) {
        double t0 = now_s();
        ks_threadpool_run(tp, read_share, j);
        double dt = now_s() - t0;
        if (dt > 0)
            best = KS_MAX(best, (double)(j->chunks * CHUNK_BYTES) / dt);
    }
    return best;
}

/* Best multiply-adds/s over `passes` passes of iters each, iters grown first (unless
 * set) until one pass takes PEAK_PASS_S. */
static double int8_rate(ks_threadpool *tp, int8_job *j, int passes) {
    int nth = ks_threadpool_n_threads(tp);
    double dt = 0;
    for (j->iters = KS_MAX(j->iters, 1 << 12); j->iters < ((int64_t)1 << 40); j->iters *= 2) {
        double t0 = now_s();
        ks_threadpool_run(tp, int8_share, j);
        if ((dt = now_s() - t0) >= PEAK_PASS_S)
            break;
    }
    double best = 0;
    for (int p = 0; p < passes; p++) {
        double t0 = now_s();
        ks_threadpool_run(tp, int8_share, j);
        dt = now_s() - t0;
        uint64_t macs = 0;
        for (int i = 0; i < nth; i++)
            macs += j->macs[i];
        if (dt > 0)
            best = KS_MAX(best, (double)macs / dt);
    }
    return best;
}

/* A read buffer of buffer_bytes (0: the default) rounded up to huge pages, advised for
 * them and faulted in; *bytes its size, *huge whether huge pages are on for it. */
static void *read_buffer(size_t buffer_bytes, size_t *bytes, bool *huge, ks_err *err) {
    if (buffer_bytes == 0)
        buffer_bytes = ks_bench_limits_default_buffer_bytes();
    *bytes = (buffer_bytes + HUGE_PAGE_BYTES - 1) / HUGE_PAGE_BYTES * HUGE_PAGE_BYTES;
    *huge = false;
    void *buf = NULL;
    if (posix_memalign(&buf, HUGE_PAGE_BYTES, *bytes) != 0) {
        KS_ERRF(err, KS_ERR_NOMEM, "no memory for a %zu MiB read buffer", *bytes >> 20);
        return NULL;
    }
#ifdef MADV_HUGEPAGE
    *huge = madvise(buf, *bytes, MADV_HUGEPAGE) == 0 && thp_enabled();
#endif
    memset(buf, 1, *bytes); /* fault every page in (as huge pages where granted) */
    return buf;
}

/* Operands of the int8 loops: 2 KiB each covers the AMX tiles (two of 1 KiB). */
static uint8_t op_a[2048];
static int8_t op_b[2048];

static void fill_operands(void) {
    for (size_t i = 0; i < sizeof op_a; i++) {
        op_a[i] = (uint8_t)(i * 7 + 1);
        op_b[i] = (int8_t)((int)(i * 13 % 255) - 127);
    }
}

ks_status ks_bench_limits_measure(ks_bench_limits *out, int n_threads, size_t buffer_bytes,
                                  ks_err *err) {
    ks_bench_limits l;
    memset(&l, 0, sizeof l);
    l.n_threads = KS_MAX(1, KS_MIN(n_threads, 64));
    size_t bytes;
    void *buf = read_buffer(buffer_bytes, &bytes, &l.huge_pages, err);
    if (!buf)
        return err->code;
    l.read_buffer_bytes = bytes;
    fill_operands();
    const uint8_t *a = op_a;
    const int8_t *b = op_b;

    read_job rj = {.buf = buf, .chunks = bytes / CHUNK_BYTES};
    rj.fn = pick_read(&l.read_isa);
    int8_job ij = {.a = a, .b = b};
    ij.fn = pick_int8(&l.int8_isa);
#if defined(KS_LIMITS_X86)
    if (ks_bench_limits_amx_enable())
        l.amx_isa = "amx-int8";
#endif
    /* one thread, then n_threads (the same figures when n_threads is 1) */
    for (int k = 0; k < (l.n_threads > 1 ? 2 : 1); k++) {
        ks_threadpool *tp = ks_threadpool_create(k ? l.n_threads : 1);
        double *read = k ? &l.read_bps : &l.read_bps_1t;
        double *int8 = k ? &l.int8_macs : &l.int8_macs_1t;
        double *amx = k ? &l.amx_macs : &l.amx_macs_1t;
        *read = read_rate(tp, &rj, PASSES);
        ij.iters = 0;
        if (ij.fn)
            *int8 = int8_rate(tp, &ij, PASSES);
#if defined(KS_LIMITS_X86)
        if (l.amx_isa) {
            int8_job aj = {.fn = ks_bench_limits_int8_amx, .a = a, .b = b};
            *amx = int8_rate(tp, &aj, PASSES);
        }
#else
        (void)amx;
#endif
        ks_threadpool_destroy(tp);
    }
    if (l.n_threads == 1) {
        l.read_bps = l.read_bps_1t;
        l.int8_macs = l.int8_macs_1t;
        l.amx_macs = l.amx_macs_1t;
    }
    free(buf);
    *out = l;
    return KS_OK;
}

void ks_bench_limits_keep_best(ks_bench_limits *best, const ks_bench_limits *other) {
    best->read_bps_1t = KS_MAX(best->read_bps_1t, other->read_bps_1t);
    best->read_bps = KS_MAX(best->read_bps, other->read_bps);
    best->int8_macs_1t = KS_MAX(best->int8_macs_1t, other->int8_macs_1t);
    best->int8_macs = KS_MAX(best->int8_macs, other->int8_macs);
    best->amx_macs_1t = KS_MAX(best->amx_macs_1t, other->amx_macs_1t);
    best->amx_macs = KS_MAX(best->amx_macs, other->amx_macs);
}

/* ---- probes ------------------------------------------------------------------------- */

struct ks_bench_probe {
    ks_threadpool *tp;
    void *buf;
    read_job rj;
    int8_job ij, aj; /* aj.fn NULL without AMX */
};

ks_status ks_bench_probe_create(ks_bench_probe **out, int n_threads, size_t buffer_bytes, ks_err *err) {
    *out = NULL;
    ks_bench_probe *p = calloc(1, sizeof *p);
    if (!p)
        return KS_ERRF(err, KS_ERR_NOMEM, "out of memory");
    size_t bytes;
    bool huge;
    if (!(p->buf = read_buffer(buffer_bytes, &bytes, &huge, err))) {
        free(p);
        return err->code;
    }
    const char *isa;
    p->rj = (read_job){.fn = pick_read(&isa), .buf = p->buf, .chunks = bytes / CHUNK_BYTES};
    fill_operands();
    p->ij = (int8_job){.fn = pick_int8(&isa), .a = op_a, .b = op_b};
#if defined(KS_LIMITS_X86)
    if (ks_bench_limits_amx_enable())
        p->aj = (int8_job){.fn = ks_bench_limits_int8_amx, .a = op_a, .b = op_b};
#endif
    p->tp = ks_threadpool_create(KS_MAX(1, KS_MIN(n_threads, 64)));
    *out = p;
    return KS_OK;
}

void ks_bench_probe_destroy(ks_bench_probe *p) {
    if (!p)
        return;
    ks_threadpool_destroy(p->tp);
    free(p->buf);
    free(p);
}

double ks_bench_probe_read_bps(ks_bench_probe *p) { return read_rate(p->tp, &p->rj, PROBE_PASSES); }

double ks_bench_probe_int8_macs(ks_bench_probe *p, bool amx) {
    int8_job *j = amx && p->aj.fn ? &p->aj : &p->ij;
    return j->fn ? int8_rate(p->tp, j, PROBE_PASSES) : 0;
}
