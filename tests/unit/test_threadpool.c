/* test_threadpool.c — every thread runs every op exactly once, ops are ordered, and the
 * range split covers [0, n) without overlap. */
#include "core/threadpool.h"

#include <criterion/criterion.h>
#include <stdatomic.h>
#include <time.h>

typedef struct counts {
    atomic_int calls[8];
    atomic_long sum;
    int n_items;
} counts;

static void count_op(void *ctx, int ith, int nth) {
    counts *c = ctx;
    atomic_fetch_add(&c->calls[ith], 1);
    long r0, r1;
    ks_split_range(c->n_items, ith, nth, &r0, &r1);
    for (long i = r0; i < r1; i++)
        atomic_fetch_add(&c->sum, i);
}

Test(threadpool, test_threadpool_runs_each_thread_once_per_op) {
    for (int nth = 1; nth <= 4; nth++) {
        ks_threadpool *p = ks_threadpool_create(nth);
        cr_assert_eq(ks_threadpool_n_threads(p), nth);
        counts c = {.n_items = 1001};
        for (int op = 0; op < 2000; op++)
            ks_threadpool_run(p, count_op, &c);
        for (int i = 0; i < nth; i++)
            cr_assert_eq(atomic_load(&c.calls[i]), 2000, "nth=%d thread %d", nth, i);
        cr_assert_eq(atomic_load(&c.sum), 2000L * (1000L * 1001L / 2), "nth=%d", nth);
        ks_threadpool_destroy(p);
    }
}

Test(threadpool, test_threadpool_wakes_sleeping_workers) {
    ks_threadpool *p = ks_threadpool_create(3);
    counts c = {.n_items = 10};
    for (int op = 0; op < 3; op++) {
        struct timespec ts = {0, 200 * 1000 * 1000}; /* long enough for workers to sleep */
        nanosleep(&ts, NULL);
        ks_threadpool_run(p, count_op, &c);
    }
    cr_assert_eq(atomic_load(&c.calls[2]), 3);
    ks_threadpool_destroy(p);
}

Test(threadpool, test_threadpool_split_range_partitions) {
    for (long n = 0; n < 50; n++) {
        for (int nth = 1; nth <= 7; nth++) {
            long prev = 0;
            for (int i = 0; i < nth; i++) {
                long r0, r1;
                ks_split_range(n, i, nth, &r0, &r1);
                cr_assert_eq(r0, prev);
                cr_assert_geq(r1, r0);
                cr_assert_leq(r1 - r0, n / nth + 1);
                prev = r1;
            }
            cr_assert_eq(prev, n);
        }
    }
}
