/* pages.c — POSIX/Linux implementation of pages.h.
 *
 * Divisions: what the kernel offers (THP mode, available memory), aligned anonymous
 * regions, loading a file range in place of its mapping, reading back what was granted. */
#include "platform/pages.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Bytes one pread() asks for: large enough that the syscall count is noise (10 calls a
 * GB), small enough that an interrupted or failing read reports promptly. */
#define KS_PAGES_READ_CHUNK_BYTES ((size_t)64 << 20)

/* Readers of one load at most: two to four cores zero and fill fresh pages as fast as
 * memory takes the writes. */
#define KS_PAGES_LOAD_THREADS 4

/* A reader's part at least: below it a thread costs more than it saves. */
#define KS_PAGES_LOAD_PART_MIN_BYTES ((size_t)32 << 20)

/* ---- what the kernel offers ----------------------------------------------------------- */

/* The start of a small text file (sysfs, procfs) as a NUL-terminated string; false if it
 * cannot be read. */
static bool read_text(const char *path, char *buf, size_t len) {
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, len - 1, f);
    fclose(f);
    buf[n] = '\0';
    return n > 0;
}

bool ks_pages_thp_enabled(void) {
    char mode[128]; /* "always [madvise] never" */
    return read_text("/sys/kernel/mm/transparent_hugepage/enabled", mode, sizeof mode) &&
           (strstr(mode, "[always]") || strstr(mode, "[madvise]"));
}

uint64_t ks_pages_available(void) {
    char info[4096]; /* MemAvailable is the third line of /proc/meminfo */
    if (!read_text("/proc/meminfo", info, sizeof info))
        return 0;
    const char *line = strstr(info, "MemAvailable:");
    unsigned long long kib = 0;
    if (!line || sscanf(line, "MemAvailable: %llu kB", &kib) != 1)
        return 0;
    return (uint64_t)kib * 1024;
}

/* ---- aligned anonymous regions -------------------------------------------------------- */

static size_t round_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

void ks_pages_advise_huge(const void *p, size_t bytes) {
#ifdef MADV_HUGEPAGE
    if (p && bytes) {
        /* madvise wants a page-aligned start; advise the pages that hold the range */
        size_t page = (size_t)sysconf(_SC_PAGESIZE);
        uintptr_t a = (uintptr_t)p / page * page;
        madvise((void *)a, (uintptr_t)p + bytes - a, MADV_HUGEPAGE);
    }
#else
    (void)p;
    (void)bytes;
#endif
}

/* Reserves one huge page more than asked, then returns the unaligned head and the tail to
 * the OS, so the region starts on a 2 MiB boundary whatever mmap chose. */
void *ks_pages_alloc(size_t bytes) {
    if (bytes == 0)
        return NULL;
    size_t len = round_up(bytes, KS_HUGE_PAGE_BYTES);
    if (len < bytes || len + KS_HUGE_PAGE_BYTES < len)
        return NULL;
    uint8_t *raw = mmap(NULL, len + KS_HUGE_PAGE_BYTES, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED)
        return NULL;
    uint8_t *p = (uint8_t *)round_up((uintptr_t)raw, KS_HUGE_PAGE_BYTES);
    size_t head = (size_t)(p - raw), tail = KS_HUGE_PAGE_BYTES - head;
    if (head)
        munmap(raw, head);
    if (tail)
        munmap(p + len, tail);
    ks_pages_advise_huge(p, len);
    return p;
}

void ks_pages_free(void *p, size_t bytes) {
    if (p && bytes)
        munmap(p, round_up(bytes, KS_HUGE_PAGE_BYTES));
}

/* ---- a file range in place of its mapping --------------------------------------------- */

/* One reader's share of a load: [dst, dst + len) from the file at `offset`. */
typedef struct read_part {
    int fd;
    uint8_t *dst;
    size_t len;
    uint64_t offset;
    size_t done; /* bytes read before an error or the end of the file */
    int error;   /* errno of a failed read, 0 if none */
} read_part;

static void *read_part_run(void *arg) {
    read_part *r = arg;
    while (r->done < r->len) {
        ssize_t got = pread(r->fd, r->dst + r->done, KS_MIN(r->len - r->done, KS_PAGES_READ_CHUNK_BYTES),
                            (off_t)(r->offset + r->done));
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            r->error = got < 0 ? errno : 0;
            break;
        }
        r->done += (size_t)got;
    }
    return NULL;
}

/* Reads exactly `len` bytes at `offset` into dst, in parts of whole huge pages read by up
 * to KS_PAGES_LOAD_THREADS threads: filling fresh memory is bound by the kernel zeroing
 * each new page (then copying into it), one core's work per reader. A part a thread
 * cannot be started for is read by the caller. */
static ks_status read_parallel(int fd, uint8_t *dst, size_t len, uint64_t offset, const char *path,
                               ks_err *err) {
    long n_cpus = sysconf(_SC_NPROCESSORS_ONLN);
    size_t n = KS_MIN((size_t)KS_MAX(n_cpus, 1L), (size_t)KS_PAGES_LOAD_THREADS);
    n = KS_MAX((size_t)1, KS_MIN(n, len / KS_PAGES_LOAD_PART_MIN_BYTES));
    read_part parts[KS_PAGES_LOAD_THREADS];
    pthread_t threads[KS_PAGES_LOAD_THREADS];
    bool started[KS_PAGES_LOAD_THREADS] = {false};
    size_t from = 0;
    for (size_t i = 0; i < n; i++) {
        /* parts end on huge page boundaries: two readers never fault the same one */
        uintptr_t cut = round_up((uintptr_t)dst + (len / n) * (i + 1), KS_HUGE_PAGE_BYTES);
        size_t to = i + 1 == n ? len : KS_MIN(len, (size_t)(cut - (uintptr_t)dst));
        parts[i] = (read_part){fd, dst + from, to - from, offset + from, 0, 0};
        from = to;
        if (i > 0)
            started[i] = pthread_create(&threads[i], NULL, read_part_run, &parts[i]) == 0;
    }
    for (size_t i = 0; i < n; i++)
        if (!started[i])
            read_part_run(&parts[i]);
    ks_status s = KS_OK;
    for (size_t i = 0; i < n; i++) {
        if (started[i])
            pthread_join(threads[i], NULL);
        const read_part *r = &parts[i];
        if (!s && r->error)
            s = KS_ERRF(err, KS_ERR_IO, "%s: read at offset %" PRIu64 " failed: %s", path,
                        r->offset + r->done, strerror(r->error));
        else if (!s && r->done < r->len)
            s = KS_ERRF(err, KS_ERR_IO, "%s: file ends at offset %" PRIu64 " (changed while loading?)",
                        path, r->offset + r->done);
    }
    return s;
}

ks_status ks_pages_load_file(void *addr, size_t bytes, const char *path, uint64_t file_offset,
                             ks_err *err) {
    /* [start, end) whole pages inside the range; the mapping extends to the end of the
     * page holding its last byte, so the last partial page is taken whole. */
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t start = round_up((uintptr_t)addr, page), end = (uintptr_t)addr + bytes;
    if (end <= start)
        return KS_OK;
    size_t need = end - start, len = round_up(need, page);
    uint64_t offset = file_offset + (start - (uintptr_t)addr);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return KS_ERRF(err, KS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || (uint64_t)st.st_size < offset + need) {
        close(fd);
        return KS_ERRF(err, KS_ERR_IO, "%s: shorter than the %" PRIu64 " bytes mapped (changed since?)",
                       path, offset + need);
    }
#ifdef POSIX_FADV_SEQUENTIAL
    /* a file not yet in the page cache is read with the larger sequential readahead */
    posix_fadvise(fd, (off_t)offset, (off_t)len, POSIX_FADV_SEQUENTIAL);
#endif
    ks_status s = KS_OK;
    uint8_t *p = mmap((void *)start, len, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (p == MAP_FAILED) {
        s = KS_ERRF(err, KS_ERR_NOMEM, "%s: cannot allocate %zu bytes to load it into: %s", path, len,
                    strerror(errno));
    } else {
        ks_pages_advise_huge(p, len);
        /* what the file holds of the pages (at least `need` bytes); past its end the last
         * page reads as zero, in fresh memory as in the mapping */
        s = read_parallel(fd, p, (size_t)KS_MIN((uint64_t)len, (uint64_t)st.st_size - offset), offset,
                          path, err);
        if (!s && mprotect(p, len, PROT_READ) != 0)
            s = KS_ERRF(err, KS_ERR_NOMEM, "%s: cannot make the loaded bytes read-only: %s", path,
                        strerror(errno));
    }
    if (s) {
        /* the file again, so the caller's pointers read what they read before */
        void *back = mmap((void *)start, len, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, (off_t)offset);
        if (back == MAP_FAILED)
            s = KS_ERRF(err, KS_ERR_INTERNAL, "%s: cannot map the file again: %s", path, strerror(errno));
    }
    close(fd);
    return s;
}

bool ks_pages_protect(const void *addr, size_t bytes, bool writable) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t start = (uintptr_t)addr / page * page, end = round_up((uintptr_t)addr + bytes, page);
    return mprotect((void *)start, end - start, writable ? PROT_READ | PROT_WRITE : PROT_READ) == 0;
}

/* ---- what was granted ----------------------------------------------------------------- */

int64_t ks_pages_huge_bytes(const void *p, size_t bytes) {
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f)
        return -1;
    uintptr_t lo = (uintptr_t)p, hi = lo + bytes;
    bool overlaps = false, seen = false;
    int64_t total = 0;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        uintptr_t start, end;
        long long kib;
        /* a mapping's first line: "start-end perms offset dev inode path" */
        if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " ", &start, &end) == 2) {
            overlaps = start < hi && lo < end;
        } else if (overlaps && sscanf(line, "AnonHugePages: %lld kB", &kib) == 1) {
            total += kib * 1024;
            seen = true;
        }
    }
    fclose(f);
    return seen ? total : -1;
}
