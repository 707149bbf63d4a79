/* ks_core.h — the one place for compiler-specific macros and always-on assertions.
 *
 * Owns: KS_LIKELY/KS_UNLIKELY, KS_UNUSED, KS_ALWAYS_INLINE, KS_ASSERT (always on, for invariants whose
 * violation would corrupt state), KS_ARRAY_LEN, KS_MIN/KS_MAX.
 * Does not own: error reporting for untrusted input (see status.h). */
#ifndef KS_CORE_H
#define KS_CORE_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__) || defined(__clang__)
#define KS_LIKELY(x) __builtin_expect(!!(x), 1)
#define KS_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define KS_UNUSED __attribute__((unused))
#define KS_PRINTF(fmt_idx, arg_idx) __attribute__((format(printf, fmt_idx, arg_idx)))
#define KS_NORETURN __attribute__((noreturn))
/* For kernel helpers written once over constant shape arguments (tile rows, vector
 * counts): each call site must get its own copy with those constants folded in, so that
 * the accumulator arrays live in registers, whatever the inliner's size estimate says. */
#define KS_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define KS_LIKELY(x) (x)
#define KS_UNLIKELY(x) (x)
#define KS_UNUSED
#define KS_PRINTF(fmt_idx, arg_idx)
#define KS_NORETURN
#define KS_ALWAYS_INLINE inline
#endif

#define KS_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define KS_MIN(a, b) ((a) < (b) ? (a) : (b))
#define KS_MAX(a, b) ((a) > (b) ? (a) : (b))

KS_NORETURN void ks_assert_fail(const char *expr, const char *file, int line);

/* Always on, also in release builds. Only for invariants of our own state; untrusted
 * bytes never reach it. */
#define KS_ASSERT(e) ((void)(KS_LIKELY(e) ? 0 : (ks_assert_fail(#e, __FILE__, __LINE__), 0)))

/* Bookkeeping allocations that may abort on OOM (small, not sized by clients). */
void *ks_xmalloc(size_t n);
void *ks_xcalloc(size_t n, size_t size);
void *ks_xrealloc(void *p, size_t n);
char *ks_xstrdup(const char *s);

#endif
