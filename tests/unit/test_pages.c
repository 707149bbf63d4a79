/* test_pages.c — huge-page-capable regions are aligned and zeroed; a file range loaded in
 * place of its mapping reads the file's bytes through the same pointers; a load that
 * cannot start leaves the mapping as it was. */
#include "platform/file_map.h"
#include "platform/pages.h"

#include "test_support.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Not a multiple of any page size, longer than two huge pages: partial pages at both ends
 * and whole huge pages inside. */
#define TEST_FILE_BYTES ((size_t)(5 << 20) + 4321)

/* Long enough to be read by several threads (parts of at least 32 MiB). */
#define TEST_BIG_FILE_BYTES ((size_t)(100 << 20) + 4321)

static uint8_t pattern(size_t i) { return (uint8_t)(i * 2654435761u >> 13); }

/* A temporary file of `bytes` pattern bytes, mapped. */
typedef struct mapped_file {
    char *dir;
    char path[4096];
    ks_file_map map;
    const uint8_t *base; /* map.data as mapped */
    size_t size;         /* bytes */
    ks_err err;
} mapped_file;

static void mapped_file_open(mapped_file *f, size_t bytes) {
    f->dir = ks_test_mkdtemp();
    snprintf(f->path, sizeof f->path, "%s/data.bin", f->dir);
    uint8_t *buf = malloc(bytes);
    for (size_t i = 0; i < bytes; i++)
        buf[i] = pattern(i);
    cr_assert_eq(ks_test_write_file(f->path, buf, bytes), 0);
    free(buf);
    ks_err_clear(&f->err);
    cr_assert_eq(ks_file_map_open(&f->map, f->path, &f->err), KS_OK, "%s", f->err.msg);
    cr_assert_eq(f->map.size, bytes);
    f->base = f->map.data;
    f->size = f->map.size;
}

static void mapped_file_close(mapped_file *f) {
    ks_file_map_close(&f->map);
    ks_test_rmtree(f->dir);
    free(f->dir);
}

static void assert_pattern(const uint8_t *p, size_t from, size_t to) {
    for (size_t i = from; i < to; i++)
        if (p[i] != pattern(i))
            cr_assert_fail("byte %zu is %u, the file has %u", i, p[i], pattern(i));
}

Test(pages, test_pages_alloc_is_aligned_and_zeroed) {
    size_t bytes = 3 * KS_HUGE_PAGE_BYTES + 12345;
    uint8_t *p = ks_pages_alloc(bytes);
    cr_assert_not_null(p);
    cr_assert_eq((uintptr_t)p % KS_HUGE_PAGE_BYTES, 0, "%p is not 2 MiB-aligned", (void *)p);
    for (size_t i = 0; i < bytes; i += 4096)
        cr_assert_eq(p[i], 0, "byte %zu", i);
    memset(p, 0xab, bytes);
    cr_assert_eq(p[bytes - 1], 0xab);
    if (ks_pages_thp_enabled())
        cr_log_info("%lld bytes in huge pages", (long long)ks_pages_huge_bytes(p, bytes));
    ks_pages_free(p, bytes);
    cr_assert_null(ks_pages_alloc(0));
}

/* Loads file bytes [from, size) in place and checks every byte through the old pointers. */
static void load_and_check(size_t bytes, size_t from) {
    mapped_file f;
    mapped_file_open(&f, bytes);
    cr_assert_eq(ks_pages_load_file((void *)(f.base + from), f.size - from, f.path, from, &f.err),
                 KS_OK, "%s", f.err.msg);
    cr_assert_eq(f.map.data, f.base);
    assert_pattern(f.base, 0, f.size);
    /* the bytes past the end of the file in its last page read as zero, as mapped */
    size_t page = 4096, tail = (f.size + page - 1) / page * page;
    for (size_t i = f.size; i < tail; i++)
        cr_assert_eq(f.base[i], 0, "byte %zu past the end", i);
    int64_t huge = ks_pages_huge_bytes(f.base, f.size);
    cr_assert_geq(huge, 0, "smaps does not report the loaded range");
    cr_log_info("%lld of %zu bytes in huge pages", (long long)huge, f.size);
    mapped_file_close(&f);
}

/* An unaligned range, as a GGUF data section is: from byte 1000 to the end. */
Test(pages, test_pages_load_file_keeps_pointers_and_bytes) { load_and_check(TEST_FILE_BYTES, 1000); }

Test(pages, test_pages_load_file_in_parallel_parts) { load_and_check(TEST_BIG_FILE_BYTES, 5000); }

Test(pages, test_pages_load_file_that_cannot_start_leaves_mapping) {
    mapped_file f;
    mapped_file_open(&f, TEST_FILE_BYTES);
    char missing[4200];
    snprintf(missing, sizeof missing, "%s/missing.bin", f.dir);
    cr_assert_eq(ks_pages_load_file((void *)f.base, f.size, missing, 0, &f.err), KS_ERR_IO);
    cr_assert(strstr(f.err.msg, "missing.bin"), "%s", f.err.msg);
    assert_pattern(f.base, 0, f.size);

    /* a file shorter than the range (replaced since it was mapped) */
    char shorter[4200];
    snprintf(shorter, sizeof shorter, "%s/shorter.bin", f.dir);
    cr_assert_eq(ks_test_write_file(shorter, f.base, f.size / 2), 0);
    ks_err_clear(&f.err);
    cr_assert_eq(ks_pages_load_file((void *)f.base, f.size, shorter, 0, &f.err), KS_ERR_IO);
    cr_assert(strstr(f.err.msg, "shorter"), "%s", f.err.msg);
    assert_pattern(f.base, 0, f.size);
    mapped_file_close(&f);
}
