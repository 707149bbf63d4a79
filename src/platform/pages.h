/* pages.h — page-granular memory from the OS for the big pools (model weights, KV pool),
 * where the OS can back it with transparent huge pages.
 *
 * Why: decode streams every weight, and the K/V it attends over, once per token. On
 * 4 KiB pages that is a TLB miss every 4 KiB and the hardware prefetchers stop at each
 * page boundary; on 2 MiB pages both go away. On the Sapphire Rapids VMs kvserve is
 * measured on, one core reads ~18 GB/s from 4 KiB pages and ~30 GB/s from 2 MiB ones.
 *
 * Linux backs anonymous memory with huge pages where the region covers whole, aligned
 * 2 MiB spans and is advised MADV_HUGEPAGE (THP "enabled" set to [always] or [madvise]).
 * Read-only file mappings get them only from filesystems that cache files in 2 MiB folios
 * or with CONFIG_READ_ONLY_THP_FOR_FS, which most kernels lack; hence
 * ks_pages_load_file(), which puts anonymous memory holding the file's bytes in place of
 * part of a file mapping.
 *
 * Everything here is best effort about huge pages: where the OS has none the memory is
 * ordinary pages and works the same. Does not own: mapping files (file_map.h). */
#ifndef KS_PAGES_H
#define KS_PAGES_H

#include "core/status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KS_HUGE_PAGE_BYTES ((size_t)2 << 20) /* x86-64 and 4 KiB-granule aarch64 PMD size */

/* True when the kernel gives huge pages to madvise'd anonymous memory. */
bool ks_pages_thp_enabled(void);

/* Memory the OS could give without swapping (MemAvailable: free memory plus reclaimable
 * caches), bytes; 0 when unknown. */
uint64_t ks_pages_available(void);

/* `bytes` of zeroed anonymous read-write memory, 2 MiB-aligned and advised for huge
 * pages; pages are faulted in on first touch, so untouched memory costs nothing. NULL if
 * the OS refuses (never aborts). Free with ks_pages_free() and the same `bytes`. */
void *ks_pages_alloc(size_t bytes);
void ks_pages_free(void *p, size_t bytes);

/* Advises [p, p + bytes) (any mapping) for huge pages. Best effort. */
void ks_pages_advise_huge(const void *p, size_t bytes);

/* Puts anonymous memory holding the same bytes in place of the whole pages of
 * [addr, addr + bytes), part of a read-only private mapping of `path` whose byte `addr`
 * is the file's byte `file_offset`. The file is read with pread() in large chunks into
 * memory advised for huge pages, which is then made read-only; no second copy stays
 * mapped, so the process's resident size grows by `bytes` once. The partial pages at
 * either end stay file pages. The range stays part of the caller's mapping: pointers
 * into it stay valid and unmapping the mapping frees it.
 *
 * On failure (KS_ERR_IO, KS_ERR_NOMEM) the file is mapped there again, so the range
 * reads as before; only if that too fails is it left unmapped (KS_ERR_INTERNAL), and the
 * caller must drop the mapping without reading it. */
ks_status ks_pages_load_file(void *addr, size_t bytes, const char *path, uint64_t file_offset,
                             ks_err *err);

/* Bytes of anonymous huge pages in the mappings that overlap [p, p + bytes) (AnonHugePages
 * of /proc/self/smaps), or -1 when the OS does not say. For tests and diagnostics: it
 * reads a proc file. */
/* Makes the whole pages covering [addr, addr + bytes) writable or read-only again (a
 * private file mapping's pages become private copies where written); false on failure. */
bool ks_pages_protect(const void *addr, size_t bytes, bool writable);

int64_t ks_pages_huge_bytes(const void *p, size_t bytes);

#endif
