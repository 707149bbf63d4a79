/* cli_common.c — see cli_common.h. */
#include "cli_common.h"

#include "tensor/types.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ks_cli_parse_tokens(const char *text, int32_t **out) {
    size_t cap = 64, n = 0;
    int32_t *v = malloc(cap * sizeof *v);
    if (!v)
        return -1;
    const char *p = text;
    for (;;) {
        while (*p == ',' || *p == ' ' || *p == '\n' || *p == '\t' || *p == '\r' || *p == '[' || *p == ']')
            p++;
        if (!*p)
            break;
        char *end;
        errno = 0;
        long x = strtol(p, &end, 10);
        if (end == p || errno || x < INT32_MIN || x > INT32_MAX) {
            fprintf(stderr, "kvserve: '%.20s' is not a token id\n", p);
            free(v);
            return -1;
        }
        if (n == cap) {
            cap *= 2;
            int32_t *nv = realloc(v, cap * sizeof *v);
            if (!nv) {
                free(v);
                return -1;
            }
            v = nv;
        }
        v[n++] = (int32_t)x;
        p = end;
    }
    *out = v;
    return (int)n;
}

char *ks_cli_read_text(const char *path) {
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (n + 1 == cap) {
            cap *= 2;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                buf = NULL;
            }
            buf = nb;
        }
    }
    if (f != stdin)
        fclose(f);
    if (buf)
        buf[n] = '\0';
    return buf;
}

bool ks_cli_int(const char *cmd, const char *opt, const char *val, long min, long max, long *out) {
    char *end;
    errno = 0;
    long x = val ? strtol(val, &end, 10) : 0;
    if (!val || end == val || *end || errno || x < min || x > max) {
        fprintf(stderr, "kvserve %s: %s needs an integer in %ld..%ld\n", cmd, opt, min, max);
        return false;
    }
    *out = x;
    return true;
}

bool ks_cli_float(const char *cmd, const char *opt, const char *val, double *out) {
    char *end;
    errno = 0;
    double x = val ? strtod(val, &end) : 0;
    if (!val || end == val || *end || errno) {
        fprintf(stderr, "kvserve %s: %s needs a number\n", cmd, opt);
        return false;
    }
    *out = x;
    return true;
}

int ks_cli_kv_type(const char *name) {
    int t = ks_type_from_name(name);
    if (t == KS_TYPE_F32 || t == KS_TYPE_F16 || t == KS_TYPE_Q8_0)
        return t;
    return -1;
}
