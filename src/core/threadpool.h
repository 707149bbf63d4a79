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
 * Single-submitter: only one thread (the engine thread) calls run() on a pool. */
#ifndef KS_THREADPOOL_H
#define KS_THREADPOOL_H

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

#endif
