/* test_support.h — helpers shared by the C tests: fixture paths, temp dirs, files. */
#ifndef KS_TEST_SUPPORT_H
#define KS_TEST_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

/* "<fixtures>/<rel>" in static storage rotated over 8 slots. */
const char *ks_test_fixture(const char *rel);
/* A fresh empty directory under $TMPDIR; removed by ks_test_rmtree. Returns malloc'd path. */
char *ks_test_mkdtemp(void);
void ks_test_rmtree(const char *path);
/* Whole file into a malloc'd buffer; NULL on error. */
uint8_t *ks_test_read_file(const char *path, size_t *size);
int ks_test_write_file(const char *path, const void *data, size_t size);
/* Path of the built kvserve binary. */
const char *ks_test_kvserve_bin(void);

#endif
