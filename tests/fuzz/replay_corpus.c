/* replay_corpus.c — replays every file of a corpus directory through a fuzz target's
 * LLVMFuzzerTestOneInput, as an ordinary test: a target that finds a failure aborts, so
 * a bad input fails the test with its file name printed just before. (The GGUF corpus'
 * naming contract, ok-* opens and bad-* is rejected, is checked by test_gguf.c.)
 * Usage: REPLAY DIR. Prints "N passed, N failed". */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, len = 0;
    unsigned char *buf = malloc(cap);
    while (buf) {
        len += fread(buf + len, 1, cap - len, f);
        if (len < cap)
            break;
        unsigned char *more = realloc(buf, cap * 2);
        if (!more) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = more;
        cap *= 2;
    }
    fclose(f);
    *n = len;
    return buf;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
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
            printf("FAIL %s: unreadable\n", e->d_name);
            failed++;
            continue;
        }
        printf("run  %s (%zu bytes)\n", e->d_name, n);
        fflush(stdout);
        LLVMFuzzerTestOneInput(buf, n);
        passed++;
        free(buf);
    }
    closedir(d);
    printf("%d passed, %d failed\n", passed, failed);
    return failed || passed == 0 ? 1 : 0;
}
