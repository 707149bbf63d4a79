/* threadpool.c — persistent fork-join pool (see threadpool.h).
 *
 * Protocol: the submitter publishes (fn, ctx), increments `generation` and, if some
 * worker sleeps, broadcasts. Worker i takes share i of the new generation (a
 * compare-and-swap on its `claimed` generation), runs it, then increments `done`. The
 * submitter runs share 0 and waits until every other share is done. A share its worker
 * has not taken KS_POOL_YIELD_NS after the submitter finished its own is late (the
 * worker is preempted, or still waking up): the submitter takes and runs it itself, so
 * an op never waits a whole time slice for a thread that has not started.
 *
 * Waiting, on both sides, is timed in nanoseconds, not in polls: a pause instruction
 * takes ~10 ns on one x86 core and ~40 ns (~140 cycles) on another, so a poll count
 * tuned on one machine spins ten times longer or shorter on the next.
 *
 *   worker, for the next op     spin KS_POOL_SPIN_NS, yielding after KS_POOL_YIELD_NS,
 *                               then sleep on the condition variable
 *   submitter, for the workers  spin; after KS_POOL_YIELD_NS take the shares not taken
 *                               yet, then yield between polls (never sleeps)
 *
 * Yielding matters when the machine has more runnable threads than cores: a thread that
 * waits on a preempted partner gives its core back instead of spinning out its time
 * slice, so the partner (or whoever preempted it) runs sooner. On an idle machine
 * sched_yield() returns at once and costs one system call per poll.
 *
 * Memory layout: what the submitter writes per op (generation, fn, ctx), what workers
 * write per op (done), each worker's claim and the cold sleeping/shutdown state sit on
 * separate cache lines, so finishing workers do not invalidate the line the others are
 * polling. */
#include "core/threadpool.h"

#include "core/cpu.h"
#include "core/ks_core.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ volatile("yield")
#else
#define cpu_relax() ((void)0)
#endif

/* A worker polls this long for the next op before sleeping: longer than the gap between
 * consecutive ops of a forward pass (the submitter's serial work: norms, activation
 * quantization, a few µs) and than the gap between decode steps (sampling, scheduling),
 * short enough not to burn a core for long when the engine goes idle. */
#define KS_POOL_SPIN_NS 200000

/* Either side polls without yielding this long: past it, the thread it waits for has
 * most likely been preempted (no op's share is that uneven on a quiet machine). */
#define KS_POOL_YIELD_NS 20000

/* Polls between clock reads: a read costs ~20-50 ns, a poll ~10-40 ns. */
#define KS_POOL_POLLS_PER_CLOCK 64

typedef struct worker {
    /* the last generation whose share `ith` was taken, by this worker or the submitter:
     * generation - 1 until someone takes the current one */
    _Alignas(KS_CACHE_LINE_BYTES) atomic_uint claimed;
    ks_threadpool *pool;
    int ith;
    pthread_t thread;
} worker;

struct ks_threadpool {
    /* written by the submitter once per op, read by every worker */
    _Alignas(KS_CACHE_LINE_BYTES) atomic_uint generation;
    ks_parallel_fn fn;
    void *ctx;
    int nth;
    /* written by each worker once per op, read by the submitter */
    _Alignas(KS_CACHE_LINE_BYTES) atomic_int done;
    /* cold: sleeping, shutdown, the threads */
    _Alignas(KS_CACHE_LINE_BYTES) atomic_int sleepers;
    atomic_bool stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    worker *workers;
};

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The state of one wait: the caller polls its condition and calls spin_once() between
 * polls, which pauses (or yields, past KS_POOL_YIELD_NS) and returns the time waited so
 * far, read from the clock once every KS_POOL_POLLS_PER_CLOCK polls. */
typedef struct spin {
    int64_t start_ns;
    int64_t elapsed_ns;
    int polls;
} spin;

static void spin_start(spin *s) {
    s->start_ns = 0;
    s->elapsed_ns = 0;
    s->polls = 0;
}

static int64_t spin_once(spin *s) {
    if (++s->polls % KS_POOL_POLLS_PER_CLOCK == 0) {
        int64_t t = now_ns();
        if (s->start_ns == 0)
            s->start_ns = t;
        s->elapsed_ns = t - s->start_ns;
    }
    if (s->elapsed_ns >= KS_POOL_YIELD_NS)
        sched_yield();
    else
        cpu_relax();
    return s->elapsed_ns;
}

static bool stopping(ks_threadpool *p) { return atomic_load_explicit(&p->stop, memory_order_acquire); }

/* Waits for a generation other than `seen` (or shutdown); returns it. */
static unsigned wait_for_op(ks_threadpool *p, unsigned seen) {
    unsigned gen;
    spin s;
    spin_start(&s);
    while ((gen = atomic_load_explicit(&p->generation, memory_order_acquire)) == seen && !stopping(p)) {
        if (spin_once(&s) < KS_POOL_SPIN_NS)
            continue;
        /* Sleep. sleepers is raised before generation is read again under the lock, and
         * the submitter raises generation before it reads sleepers (both seq_cst), so one
         * of the two sees the other: no wake-up is lost. */
        pthread_mutex_lock(&p->mu);
        atomic_fetch_add(&p->sleepers, 1);
        while (atomic_load(&p->generation) == seen && !stopping(p))
            pthread_cond_wait(&p->cv, &p->mu);
        atomic_fetch_sub(&p->sleepers, 1);
        pthread_mutex_unlock(&p->mu);
        spin_start(&s);
    }
    return gen;
}

/* Takes share w->ith of generation `gen` for the calling thread; false if it was taken. */
static bool claim(worker *w, unsigned gen) {
    unsigned prev = gen - 1;
    /* the plain load first: polling a taken share does not pull its line exclusive */
    return atomic_load_explicit(&w->claimed, memory_order_relaxed) == prev &&
           atomic_compare_exchange_strong_explicit(&w->claimed, &prev, gen, memory_order_acq_rel,
                                                   memory_order_relaxed);
}

static void *worker_main(void *arg) {
    worker *w = arg;
    ks_threadpool *p = w->pool;
    unsigned seen = 0;
    for (;;) {
        seen = wait_for_op(p, seen);
        if (stopping(p))
            return NULL;
        if (!claim(w, seen))
            continue; /* late: the submitter ran it */
        p->fn(p->ctx, w->ith, p->nth);
        atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
    }
}

ks_threadpool *ks_threadpool_create(int n_threads) {
    if (n_threads <= 0)
        n_threads = ks_cpu_detect()->n_physical_cores;
    if (n_threads < 1)
        n_threads = 1;
    /* the struct's alignment is its lines'; its size is a multiple of it */
    ks_threadpool *p = aligned_alloc(KS_CACHE_LINE_BYTES, sizeof *p);
    KS_ASSERT(p);
    memset(p, 0, sizeof *p);
    p->nth = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->workers = aligned_alloc(KS_CACHE_LINE_BYTES, (size_t)n_threads * sizeof *p->workers);
    KS_ASSERT(p->workers);
    memset(p->workers, 0, (size_t)n_threads * sizeof *p->workers);
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
    /* seq_cst: ordered before the sleepers load */
    unsigned gen = atomic_fetch_add(&p->generation, 1) + 1;
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    fn(ctx, 0, p->nth);
    int mine = 0; /* workers' shares run here */
    spin s;
    spin_start(&s);
    while (atomic_load_explicit(&p->done, memory_order_acquire) != p->nth - 1 - mine) {
        if (spin_once(&s) < KS_POOL_YIELD_NS)
            continue;
        for (int i = 1; i < p->nth; i++)
            if (claim(&p->workers[i], gen)) {
                fn(ctx, i, p->nth);
                mine++;
            }
    }
}
