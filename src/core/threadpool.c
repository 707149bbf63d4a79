/* threadpool.c — persistent fork-join pool (see threadpool.h).
 *
 * Protocol: the submitter publishes (fn, ctx), increments `generation` and, if some
 * worker sleeps, broadcasts. Each worker runs its share, then increments `done`. The
 * submitter runs share 0 and spins until done == nth - 1. Workers spin on the generation
 * for KS_POOL_SPIN_ITERS polls before sleeping on the condition variable. */
#include "core/threadpool.h"

#include "core/cpu.h"
#include "core/ks_core.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ volatile("yield")
#else
#define cpu_relax() ((void)0)
#endif

/* ~50-100 µs of polling at a few ns per pause: covers the gap between consecutive ops of
 * one forward pass without burning a core while the engine is idle. */
#define KS_POOL_SPIN_ITERS 20000

typedef struct worker {
    ks_threadpool *pool;
    int ith;
    pthread_t thread;
} worker;

struct ks_threadpool {
    int nth;
    worker *workers;
    ks_parallel_fn fn;
    void *ctx;
    atomic_uint generation;
    atomic_int done;
    atomic_int sleepers;
    atomic_bool stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

static void *worker_main(void *arg) {
    worker *w = arg;
    ks_threadpool *p = w->pool;
    unsigned seen = 0;
    for (;;) {
        unsigned gen;
        int spins = 0;
        while ((gen = atomic_load_explicit(&p->generation, memory_order_acquire)) == seen &&
               !atomic_load(&p->stop)) {
            if (++spins < KS_POOL_SPIN_ITERS) {
                cpu_relax();
                continue;
            }
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->sleepers, 1);
            while (atomic_load(&p->generation) == seen && !atomic_load(&p->stop))
                pthread_cond_wait(&p->cv, &p->mu);
            atomic_fetch_sub(&p->sleepers, 1);
            pthread_mutex_unlock(&p->mu);
            spins = 0;
        }
        if (atomic_load(&p->stop))
            return NULL;
        seen = gen;
        p->fn(p->ctx, w->ith, p->nth);
        atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
    }
}

ks_threadpool *ks_threadpool_create(int n_threads) {
    if (n_threads <= 0)
        n_threads = ks_cpu_detect()->n_physical_cores;
    if (n_threads < 1)
        n_threads = 1;
    ks_threadpool *p = ks_xcalloc(1, sizeof *p);
    p->nth = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->workers = ks_xcalloc((size_t)n_threads, sizeof *p->workers);
    for (int i = 1; i < n_threads; i++) {
        p->workers[i].pool = p;
        p->workers[i].ith = i;
        if (pthread_create(&p->workers[i].thread, NULL, worker_main, &p->workers[i]) != 0) {
            /* Run with the threads we got. */
            p->nth = i;
            break;
        }
    }
    return p;
}

void ks_threadpool_destroy(ks_threadpool *p) {
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, true);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->nth; i++)
        pthread_join(p->workers[i].thread, NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->workers);
    free(p);
}

int ks_threadpool_n_threads(const ks_threadpool *p) { return p->nth; }

void ks_threadpool_run(ks_threadpool *p, ks_parallel_fn fn, void *ctx) {
    if (p->nth == 1) {
        fn(ctx, 0, 1);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->generation, 1, memory_order_release);
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    fn(ctx, 0, p->nth);
    while (atomic_load_explicit(&p->done, memory_order_acquire) != p->nth - 1)
        cpu_relax();
}
