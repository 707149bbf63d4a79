/* replay_main.c — replays a fuzz corpus through the fuzz target as an ordinary test, and
 * checks the corpus' naming contract: ok-* files open, bad-* files are rejected as
 * corrupt with a one-line message. Usage: fuzz_replay DIR. Prints "N passed, N failed". */
#include "gguf/gguf.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(len > 0 ? (size_t)len : 1);
    if (buf && len > 0 && fread(buf, 1, (size_t)len, f) != (size_t)len) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *n = len > 0 ? (size_t)len : 0;
    return buf;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_replay CORPUS_DIR\n");
        return 2;
    }
    DIR *d = opendir(argv[1]);
    if (!d) {
        perror(argv[1]);
        return 2;
    }
    int passed = 0, failed = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", argv[1], e->d_name);
        size_t n = 0;
        unsigned char *buf = slurp(path, &n);
        if (!buf) {
            fprintf(stderr, "FAIL %s: unreadable\n", e->d_name);
            failed++;
            continue;
        }
        LLVMFuzzerTestOneInput(buf, n);
        ks_err err;
        ks_err_clear(&err);
        ks_gguf *g = NULL;
        ks_status s = ks_gguf_open(&g, path, &err);
        int ok = 1;
        if (!strncmp(e->d_name, "ok-", 3))
            ok = s == KS_OK;
        else if (!strncmp(e->d_name, "bad-", 4))
            ok = s == KS_ERR_CORRUPT && err.msg[0] && !strchr(err.msg, '\n');
        if (ok) {
            passed++;
            printf("ok   %-44s %s\n", e->d_name, s ? err.msg : "opens");
        } else {
            failed++;
            printf("FAIL %-44s status %d: %s\n", e->d_name, (int)s, err.msg);
        }
        ks_gguf_close(g);
        free(buf);
    }
    closedir(d);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
