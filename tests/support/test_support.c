/* test_support.c — see test_support.h. */
#include "test_support.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *ks_test_fixture(const char *rel) {
    static char slots[8][1024];
    static int next;
    char *p = slots[next++ & 7];
    snprintf(p, 1024, "%s/%s", KS_FIXTURES_DIR, rel);
    return p;
}

char *ks_test_mkdtemp(void) {
    const char *tmp = getenv("TMPDIR");
    char buf[1024];
    snprintf(buf, sizeof buf, "%s/kvserve-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(buf))
        return NULL;
    return strdup(buf);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void ks_test_rmtree(const char *path) {
    if (path)
        nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

uint8_t *ks_test_read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf && size)
        *size = (size_t)n;
    return buf;
}

int ks_test_write_file(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    int ok = fwrite(data, 1, size, f) == size;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

const char *ks_test_kvserve_bin(void) { return KS_BINARY_DIR "/kvserve"; }
