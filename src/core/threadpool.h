/* threadpool.h — one persistent pool of compute threads, woken per operation.
 *
 * ks_threadpool_run(pool, fn, ctx) calls fn(ctx, ith, nth) once for every share ith in
 * [0, nth) and returns when all have returned: the fork-join step of every op in a
 * forward pass. Share 0 runs on the caller, share i on worker i; a worker that has not
 * started its share well after the caller finished its own (preempted, or waking up)
 * leaves it to the caller. So fn may keep per-share scratch indexed by ith, but must not
 * rely on which OS thread runs a share. Workers spin briefly on a generation counter
 * before sleeping, so back-to-back ops wake them in well under a microsecond.
 *
 * Single-submitter: only one thread (the engine thread) calls run() on a pool.
 *
 * Shares: ks_split_range splits n items evenly; a ks_span lets threads that finish early
 * take over the rest of a slower thread's share. */
#ifndef KS_THREADPOOL_H
#define KS_THREADPOOL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* Destructive interference size: 64-byte lines, fetched in adjacent pairs by Intel's
 * spatial prefetcher; 128-byte lines on Apple cores. */
#define KS_CACHE_LINE_BYTES 128

typedef struct ks_threadpool ks_threadpool;

typedef void (*ks_parallel_fn)(void *ctx, int ith, int nth);

/* n_threads total, including the caller; <= 0 means the number of physical cores. */
ks_threadpool *ks_threadpool_create(int n_threads);
void ks_threadpool_destroy(ks_threadpool *pool);
int ks_threadpool_n_threads(const ks_threadpool *pool);
void ks_threadpool_run(ks_threadpool *pool, ks_parallel_fn fn, void *ctx);

/* [r0, r1) share of n items for thread ith of nth (contiguous, balanced). */
static inline void ks_split_range(long n, int ith, int nth, long *r0, long *r1) {
    long per = n / nth, extra = n % nth;
    *r0 = ith * per + (ith < extra ? ith : extra);
    *r1 = *r0 + per + (ith < extra ? 1 : 0);
}

/* A thread's share of an op, in steps: its owner takes them from the front, and a thread
 * done with its own share takes what is left from the back, so that an op ends when its
 * work does rather than when its slowest share does, while each owner still walks its share
 * in order. The front (low 32 bits) and back (high 32) share one atomic word; each span
 * has its own line. Set before ks_threadpool_run, whose start orders it before any take. */
typedef struct ks_span {
    _Alignas(KS_CACHE_LINE_BYTES) _Atomic uint64_t front_back;
} ks_span;

static inline void ks_span_reset(ks_span *s, uint32_t steps) {
    atomic_store_explicit(&s->front_back, (uint64_t)steps << 32, memory_order_relaxed);
}

/* Takes the span's next step from the front (back: false) or its last from the back;
 * false when none is left. */
static inline bool ks_span_take(ks_span *s, bool back, uint32_t *step) {
    uint64_t v = atomic_load_explicit(&s->front_back, memory_order_relaxed);
    for (;;) {
        const uint32_t front = (uint32_t)v, end = (uint32_t)(v >> 32);
        if (front >= end)
            return false;
        const uint64_t next = back ? v - ((uint64_t)1 << 32) : v + 1;
        if (atomic_compare_exchange_weak_explicit(&s->front_back, &v, next, memory_order_relaxed,
                                                  memory_order_relaxed)) {
            *step = back ? end - 1 : front;
            return true;
        }
    }
}

#endif
