/* test_threadpool.c — every share of every op runs exactly once, on its own worker or (a
 * late worker's) on the caller, ops are ordered, and the range split covers [0, n)
 * without overlap, whichever phase of its wait (polling, yielding, asleep) a thread is
 * in when the next op or the last share arrives; spans hand each step to one thread. */
#include "core/threadpool.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
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

static void sleep_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

/* Gaps between ops that end each phase of a worker's wait: none (polling), tens of µs
 * (yielding), hundreds of µs (asleep on the condition variable). */
Test(threadpool, test_threadpool_wakes_workers_from_every_wait_phase) {
    static const long gaps_us[] = {0, 0, 30, 0, 300, 5, 60, 1000};
    ks_threadpool *p = ks_threadpool_create(3);
    counts c = {.n_items = 100};
    int n_ops = 400;
    for (int op = 0; op < n_ops; op++) {
        sleep_us(gaps_us[op % 8]);
        ks_threadpool_run(p, count_op, &c);
    }
    for (int i = 0; i < 3; i++)
        cr_assert_eq(atomic_load(&c.calls[i]), n_ops, "thread %d ran %d of %d ops", i,
                     atomic_load(&c.calls[i]), n_ops);
    cr_assert_eq(atomic_load(&c.sum), (long)n_ops * (99L * 100L / 2));
    ks_threadpool_destroy(p);
}

/* One share far longer than the others: the submitter (thread 0) or a worker is late,
 * the rest wait past the polling phase. */
static void late_op(void *ctx, int ith, int nth) {
    counts *c = ctx;
    if (ith == c->n_items % nth)
        sleep_us(500);
    atomic_fetch_add(&c->calls[ith], 1);
}

Test(threadpool, test_threadpool_waits_for_a_late_share) {
    ks_threadpool *p = ks_threadpool_create(3);
    counts c = {0};
    for (int op = 0; op < 30; op++) {
        c.n_items = op; /* the late thread: op % 3 */
        ks_threadpool_run(p, late_op, &c);
        for (int i = 0; i < 3; i++)
            cr_assert_eq(atomic_load(&c.calls[i]), op + 1, "op %d: thread %d", op, i);
    }
    ks_threadpool_destroy(p);
}

/* The threads that ran each share of one op. */
typedef struct who {
    pthread_t ran[4];
} who;

static void who_op(void *ctx, int ith, int nth) {
    (void)nth;
    ((who *)ctx)->ran[ith] = pthread_self();
}

/* After an idle millisecond the workers are asleep and take tens of µs to wake: the
 * caller takes the shares they have not taken yet. A share runs on its own worker or on
 * the caller, never on another worker. */
Test(threadpool, test_threadpool_caller_takes_late_shares) {
    ks_threadpool *p = ks_threadpool_create(4);
    pthread_t self = pthread_self(), owner[4];
    bool owned[4] = {false};
    int by_caller = 0, n_ops = 50;
    for (int op = 0; op < n_ops; op++) {
        sleep_us(1000);
        who w;
        ks_threadpool_run(p, who_op, &w);
        cr_assert(pthread_equal(w.ran[0], self), "op %d: share 0 ran off the caller", op);
        for (int i = 1; i < 4; i++) {
            if (pthread_equal(w.ran[i], self)) {
                by_caller++;
                continue;
            }
            cr_assert(!owned[i] || pthread_equal(w.ran[i], owner[i]), "op %d: share %d ran on another worker", op, i);
            for (int j = 1; j < 4; j++)
                cr_assert(j == i || !owned[j] || !pthread_equal(w.ran[i], owner[j]),
                          "op %d: share %d ran on worker %d", op, i, j);
            owner[i] = w.ran[i];
            owned[i] = true;
        }
    }
    cr_log_info("%d of %d workers' shares ran on the caller", by_caller, 3 * n_ops);
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

/* Spans: each thread takes its own share's steps from the front, then the others' from
 * the back; one share's owner is slow to start. */
#define SPAN_STEPS 200
typedef struct span_op {
    ks_span spans[3];
    atomic_int taken[3][SPAN_STEPS]; /* times each step was taken */
    atomic_int by_other;             /* steps taken by a thread not their share's */
    int slow;                        /* the share whose owner starts late */
} span_op;

static void span_worker(void *ctx, int ith, int nth) {
    span_op *op = ctx;
    if (ith == op->slow)
        sleep_us(2000);
    for (int o = 0; o < nth; o++) {
        const int s = (ith + o) % nth;
        uint32_t step, last = 0;
        bool first = true;
        while (ks_span_take(&op->spans[s], o > 0, &step)) {
            cr_assert_lt(step, SPAN_STEPS);
            /* an owner's steps come in order, a taker's from the back in reverse */
            cr_assert(first || (o == 0 ? step > last : step < last), "share %d: step %u after %u", s, step, last);
            first = false;
            last = step;
            atomic_fetch_add(&op->taken[s][step], 1);
            if (o > 0)
                atomic_fetch_add(&op->by_other, 1);
            sleep_us(5);
        }
    }
}

Test(threadpool, test_span_steps_taken_once_and_taken_over_from_a_slow_share) {
    ks_threadpool *p = ks_threadpool_create(3);
    for (int slow = 0; slow < 3; slow++) {
        span_op *op = calloc(1, sizeof *op);
        op->slow = slow;
        for (int s = 0; s < 3; s++)
            ks_span_reset(&op->spans[s], SPAN_STEPS);
        ks_threadpool_run(p, span_worker, op);
        for (int s = 0; s < 3; s++)
            for (int i = 0; i < SPAN_STEPS; i++)
                cr_assert_eq(atomic_load(&op->taken[s][i]), 1, "slow %d: share %d step %d", slow, s, i);
        cr_assert_gt(atomic_load(&op->by_other), 0, "slow %d: no step was taken over", slow);
        free(op);
    }
    ks_threadpool_destroy(p);
}

Test(threadpool, test_span_of_no_steps_gives_none) {
    ks_span s;
    uint32_t step;
    ks_span_reset(&s, 0);
    cr_assert(!ks_span_take(&s, false, &step));
    cr_assert(!ks_span_take(&s, true, &step));
    ks_span_reset(&s, 2);
    cr_assert(ks_span_take(&s, true, &step) && step == 1);
    cr_assert(ks_span_take(&s, false, &step) && step == 0);
    cr_assert(!ks_span_take(&s, false, &step));
}
