/* criterion.h (shim) — the part of Criterion's API our C tests use, for builds where
 * Criterion itself cannot run: under ThreadSanitizer, Criterion aborts at start ("Could
 * not initialize inheritable arena"): its process-isolation library maps a shared arena
 * at fixed addresses inside the ranges TSan reserves for its shadow memory.
 *
 * The tsan preset puts this directory ahead of the system's on the include path of the
 * test executables (KS_CRITERION_SHIM in tests/CMakeLists.txt), so the same test files
 * build unchanged. Differences from Criterion, all fine for a sanitizer run:
 *   - tests run one after another in this process (no fork per test); a failed
 *     assertion ends its test with longjmp (from the main thread; from any other thread
 *     it aborts the process) and the run continues with the next test;
 *   - command-line options (--jobs, --ascii, ...) are accepted and ignored;
 *   - the last line has Criterion's shape:
 *     "[====] Synthesis: Tested: N | Passing: N | Failing: N | Crashing: 0".
 *
 * Test registration uses __attribute__((constructor)) (gcc and clang): test-only code,
 * kept out of src/. Include this header from one translation unit per executable: it
 * defines main(). */
#ifndef KS_CRITERION_SHIM_H
#define KS_CRITERION_SHIM_H

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct ks_shim_test {
    const char *suite, *name;
    void (*fn)(void);
    struct ks_shim_test *next;
} ks_shim_test;

static ks_shim_test *ks_shim_head, **ks_shim_tail = &ks_shim_head;
static jmp_buf ks_shim_jmp;
static pthread_t ks_shim_main_thread;

static inline void ks_shim_register(ks_shim_test *t) {
    *ks_shim_tail = t;
    ks_shim_tail = &t->next;
}

/* Test(suite, name) { body }: Criterion's extra options (.timeout, .init) are ignored. */
#define Test(suite, name, ...)                                                            \
    static void suite##_##name(void);                                                     \
    static ks_shim_test suite##_##name##_entry = {#suite, #name, suite##_##name, NULL};   \
    __attribute__((constructor)) static void suite##_##name##_register(void) {            \
        ks_shim_register(&suite##_##name##_entry);                                        \
    }                                                                                     \
    static void suite##_##name(void)

/* ---- failures -------------------------------------------------------------------------- */

static inline void ks_shim_fail(const char *file, int line, const char *what, const char *sides, const char *fmt,
                                ...) {
    fprintf(stderr, "[----] %s:%d: Assertion failed: %s%s\n", file, line, what, sides);
    if (fmt && *fmt) {
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "[----]   ");
        vfprintf(stderr, fmt, ap);
        fprintf(stderr, "\n");
        va_end(ap);
    }
    fflush(stderr);
    if (!pthread_equal(pthread_self(), ks_shim_main_thread))
        abort();
    longjmp(ks_shim_jmp, 1);
}

/* Values of both sides for the message: integers and floating point; other types are
 * compared but not shown. */
static inline void ks_shim_ll(char *b, size_t n, long long v) { snprintf(b, n, "%lld", v); }
static inline void ks_shim_ull(char *b, size_t n, unsigned long long v) { snprintf(b, n, "%llu", v); }
static inline void ks_shim_dbl(char *b, size_t n, double v) { snprintf(b, n, "%.17g", v); }
static inline void ks_shim_other(char *b, size_t n, ...) { snprintf(b, n, "?"); }

#define KS_SHIM_FMT(b, x)                                                                          \
    _Generic((x), _Bool: ks_shim_ll, char: ks_shim_ll, signed char: ks_shim_ll, short: ks_shim_ll, \
             int: ks_shim_ll, long: ks_shim_ll, long long: ks_shim_ll, unsigned char: ks_shim_ull,  \
             unsigned short: ks_shim_ull, unsigned int: ks_shim_ull, unsigned long: ks_shim_ull,   \
             unsigned long long: ks_shim_ull, float: ks_shim_dbl, double: ks_shim_dbl,             \
             default: ks_shim_other)(b, sizeof b, (x))

#define KS_SHIM_CMP(a, op, b, ...)                                                                 \
    do {                                                                                           \
        if (!((a)op(b))) {                                                                         \
            char ks_shim_va_[64], ks_shim_vb_[64], ks_shim_sides_[160];                            \
            KS_SHIM_FMT(ks_shim_va_, (a));                                                         \
            KS_SHIM_FMT(ks_shim_vb_, (b));                                                         \
            snprintf(ks_shim_sides_, sizeof ks_shim_sides_, " (%s vs %s)", ks_shim_va_, ks_shim_vb_); \
            ks_shim_fail(__FILE__, __LINE__, #a " " #op " " #b, ks_shim_sides_, "" __VA_ARGS__);  \
        }                                                                                          \
    } while (0)

#define cr_assert(cond, ...)                                                          \
    do {                                                                              \
        if (!(cond))                                                                  \
            ks_shim_fail(__FILE__, __LINE__, #cond, "", "" __VA_ARGS__);             \
    } while (0)
#define cr_assert_not(cond, ...) cr_assert(!(cond), __VA_ARGS__)
#define cr_assert_null(p, ...) cr_assert((p) == NULL, __VA_ARGS__)
#define cr_assert_not_null(p, ...) cr_assert((p) != NULL, __VA_ARGS__)
#define cr_assert_eq(a, b, ...) KS_SHIM_CMP(a, ==, b, __VA_ARGS__)
#define cr_assert_neq(a, b, ...) KS_SHIM_CMP(a, !=, b, __VA_ARGS__)
#define cr_assert_lt(a, b, ...) KS_SHIM_CMP(a, <, b, __VA_ARGS__)
#define cr_assert_leq(a, b, ...) KS_SHIM_CMP(a, <=, b, __VA_ARGS__)
#define cr_assert_gt(a, b, ...) KS_SHIM_CMP(a, >, b, __VA_ARGS__)
#define cr_assert_geq(a, b, ...) KS_SHIM_CMP(a, >=, b, __VA_ARGS__)
#define cr_assert_arr_eq(a, b, size, ...) cr_assert(memcmp((a), (b), (size)) == 0, __VA_ARGS__)
#define cr_assert_str_eq(a, b, ...)                                                                \
    do {                                                                                           \
        const char *ks_shim_sa_ = (a), *ks_shim_sb_ = (b);                                         \
        if (strcmp(ks_shim_sa_, ks_shim_sb_) != 0) {                                               \
            char ks_shim_sides_[600];                                                              \
            snprintf(ks_shim_sides_, sizeof ks_shim_sides_, " (\"%.280s\" vs \"%.280s\")", ks_shim_sa_, \
                     ks_shim_sb_);                                                                 \
            ks_shim_fail(__FILE__, __LINE__, #a " == " #b, ks_shim_sides_, "" __VA_ARGS__);       \
        }                                                                                          \
    } while (0)

#define cr_log_info(...)                  \
    do {                                  \
        fprintf(stderr, "[----] ");       \
        fprintf(stderr, __VA_ARGS__);     \
        fprintf(stderr, "\n");            \
    } while (0)
#define cr_log_warn cr_log_info

/* ---- the runner ------------------------------------------------------------------------- */

/* Runs one test; false if an assertion failed. No local is written between setjmp and
 * longjmp. */
static bool ks_shim_run(const ks_shim_test *t) {
    if (setjmp(ks_shim_jmp) != 0)
        return false;
    t->fn();
    return true;
}

int main(int argc, char **argv) {
    (void)argc;
    (void)argv;
    ks_shim_main_thread = pthread_self();
    int tested = 0, failed = 0;
    for (const ks_shim_test *t = ks_shim_head; t; t = t->next) {
        bool ok = ks_shim_run(t);
        tested++;
        failed += !ok;
        fprintf(stderr, "[%s] %s::%s\n", ok ? "PASS" : "FAIL", t->suite, t->name);
    }
    fprintf(stderr, "[====] Synthesis: Tested: %d | Passing: %d | Failing: %d | Crashing: 0\n", tested,
            tested - failed, failed);
    return failed ? 1 : 0;
}

#endif
