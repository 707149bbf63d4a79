/* bench_limits.h — this machine's limits, measured: the roofs `kvserve bench` divides its
 * rates by.
 *
 *   read bandwidth   bytes per second n threads read from a buffer several times the
 *                    size of the last-level cache (2 MiB aligned, advised for huge
 *                    pages, as model mappings and the KV pool are): decode's roof.
 *   int8 peak        multiply-adds per second of the widest int8 dot-product
 *                    instruction kvserve's kernel sets use on this CPU (AVX-512 VNNI
 *                    vpdpbusd, else AVX2 vpmaddubsw + vpmaddwd), on operands in
 *                    registers: prefill's roof.
 *   amx int8 peak    the same for AMX TDPBUSD tiles where the CPU and OS have them:
 *                    not used by kvserve's kernels, but by llama.cpp's on such CPUs,
 *                    so it says how far above the VNNI roof the peer can go.
 *
 * Each figure is the best of several timed passes (the machine's limit, not its
 * average under whatever else runs). Multi-threaded figures run one share per thread
 * of a ks_threadpool, timed from the submit to the last thread's return.
 *
 * Not a kernel: this lives beside the benchmarks, its ISA loops in bench_limits_avx2.c and
 * bench_limits_avx512.c (compiled with those flags and called only when cpu.h says the CPU
 * and OS run them). */
#ifndef KS_BENCH_LIMITS_H
#define KS_BENCH_LIMITS_H

#include "core/status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ks_bench_limits {
    int n_threads;
    size_t read_buffer_bytes;   /* bytes read per pass */
    bool huge_pages;            /* transparent huge pages on for the buffer (always/madvise) */
    const char *read_isa;       /* loads used: "avx512", "avx2", "scalar" */
    double read_bps_1t;         /* bytes/s, one thread */
    double read_bps;            /* bytes/s, n_threads */
    const char *int8_isa;       /* "avx512-vnni", "avx2", or NULL when none is measured */
    double int8_macs_1t;        /* int8 multiply-adds/s, one thread */
    double int8_macs;           /* ... n_threads */
    const char *amx_isa;        /* "amx-int8" or NULL */
    double amx_macs_1t, amx_macs;
} ks_bench_limits;

/* A read buffer "much larger than the caches": 4x the last-level cache, at least
 * 512 MiB, at most 4 GiB and a quarter of the available memory (bytes). */
size_t ks_bench_limits_default_buffer_bytes(void);

/* Measures everything above with n_threads (>= 1) threads and a read buffer of
 * buffer_bytes (0: the default). Allocates the buffer for the duration of the call. */
ks_status ks_bench_limits_measure(ks_bench_limits *out, int n_threads, size_t buffer_bytes,
                                  ks_err *err);

/* best = each of best's rates or other's, whichever is higher (two measurements of one
 * machine: a roof is the best it was seen to give). */
void ks_bench_limits_keep_best(ks_bench_limits *best, const ks_bench_limits *other);

/* ---- probes beside the tests ----------------------------------------------------------
 *
 * A shared host's bandwidth moves within seconds (seen on a 2-vCPU VM: a decode rep read
 * 46 GB/s a minute after the read loop's best was 32), so a roof measured once per run
 * is the wrong denominator for any one rep. A probe keeps the read buffer and threads of
 * the measurement above for short readings taken right before and after each rep. */
typedef struct ks_bench_probe ks_bench_probe;

/* n_threads and buffer_bytes as for ks_bench_limits_measure. */
ks_status ks_bench_probe_create(ks_bench_probe **out, int n_threads, size_t buffer_bytes, ks_err *err);
void ks_bench_probe_destroy(ks_bench_probe *p);
/* Read bandwidth now (bytes/s): the best of a few passes over the buffer. */
double ks_bench_probe_read_bps(ks_bench_probe *p);
/* The int8 peak now (multiply-adds/s) of AMX tiles (amx, where enabled) or else of the
 * widest dot-product instruction; 0 when none is measured. */
double ks_bench_probe_int8_macs(ks_bench_probe *p, bool amx);

/* ---- ISA loops (bench_limits_avx2.c, bench_limits_avx512.c): pure, one thread ------ */

/* Reads bytes (a multiple of 256) from buf (64-byte aligned); returns a value that
 * depends on every byte so the loads cannot be dropped. */
uint64_t ks_bench_limits_read_avx2(const void *buf, size_t bytes);
uint64_t ks_bench_limits_read_avx512(const void *buf, size_t bytes);
/* Runs iters iterations of independent int8 dot-product chains on operands held in
 * registers (loaded from a and b, 64 bytes each); returns the multiply-adds done and
 * stores a value depending on all of them in *sink. */
uint64_t ks_bench_limits_int8_avx2(int64_t iters, const uint8_t *a, const int8_t *b, int32_t *sink);
uint64_t ks_bench_limits_int8_avx512_vnni(int64_t iters, const uint8_t *a, const int8_t *b,
                                          int32_t *sink);
/* AMX: true once the CPU reports AMX-TILE and AMX-INT8 and the OS granted this process
 * the tile state (Linux: arch_prctl ARCH_REQ_XCOMP_PERM, process-wide). Call it first
 * from one thread, before the loop runs anywhere; later calls return the first answer. */
bool ks_bench_limits_amx_enable(void);
/* iters rounds of four 16x16x64 TDPBUSD on tiles loaded from a and b (2 KiB each: two
 * tiles of 1 KiB). Configures and releases the tiles itself. */
uint64_t ks_bench_limits_int8_amx(int64_t iters, const uint8_t *a, const int8_t *b, int32_t *sink);

#endif
