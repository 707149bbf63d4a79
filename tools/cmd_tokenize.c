/* cmd_tokenize.c — `kvserve tokenize -m MODEL [options] < text`: the ids of a text.
 *
 * Output: the ids on one line, separated by spaces; --json: one object with each id
 * and its piece (the text it stands for; a piece that is not whole UTF-8, such as half
 * an emoji, is given with U+FFFD in place of the bad bytes plus its exact bytes in
 * hex); --jsonl: each input line is a JSON string and each output line its ids.
 * --bench N tokenizes N times and prints timings as one JSON object on stderr.
 *
 * MODEL may be any GGUF with a vocabulary (a vocabulary-only file works). */
#include "commands.h"

#include "cli_common.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(FILE *f) {
    fprintf(f, "usage: kvserve tokenize -m MODEL [options] < text\n"
               "  -p TEXT             tokenize TEXT instead of standard input\n"
               "  -f FILE             tokenize FILE instead of standard input\n"
               "  --special           match control tokens (<|im_start|>, ...) in the text\n"
               "  --no-add-special    do not add the bos/eos tokens the vocabulary asks for\n"
               "  --json              ids with their pieces, as JSON\n"
               "  --jsonl             each input line is a JSON string; one line of ids per line\n"
               "  --bench N           tokenize N times; timings as JSON on stderr\n"
               "  --regex             pre-tokenize with the PCRE2 reference (valid UTF-8 only)\n"
               "  --no-cache          no per-call cache of word tokenizations\n");
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Reads a whole stream (any bytes, NULs included). */
static char *read_all(FILE *f, size_t *n) {
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        len += fread(buf + len, 1, cap - len, f);
        if (len < cap)
            break;
        char *p = realloc(buf, cap * 2);
        if (!p) {
            free(buf);
            return NULL;
        }
        buf = p;
        cap *= 2;
    }
    *n = len;
    return buf;
}

static void print_ids(const int32_t *ids, size_t n) {
    for (size_t i = 0; i < n; i++)
        printf(i ? " %d" : "%d", (int)ids[i]);
    putchar('\n');
}

/* A piece as a JSON object: id, piece (U+FFFD for bad bytes), and bytes in hex when the
 * piece is not whole UTF-8. */
static json_t *piece_json(const ks_vocab *v, int32_t id, char *buf, size_t cap) {
    size_t n = ks_vocab_decode(v, id, true, buf, cap);
    n = n < cap ? n : cap;
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(id));
    json_t *s = json_stringn(buf, n);
    if (s) {
        json_object_set_new(o, "piece", s);
        return o;
    }
    char *clean = malloc(n * 3 + 1), *hex = malloc(n * 2 + 1);
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        size_t len = ks_utf8_char_len((const unsigned char *)buf + i, n - i);
        if (len) {
            memcpy(clean + k, buf + i, len);
            k += len;
            i += len;
        } else {
            memcpy(clean + k, "\xef\xbf\xbd", 3);
            k += 3;
            i++;
        }
    }
    for (size_t i = 0; i < n; i++)
        snprintf(hex + 2 * i, 3, "%02x", (unsigned char)buf[i]);
    json_object_set_new(o, "piece", json_stringn(clean, k));
    json_object_set_new(o, "bytes", json_string(hex));
    free(clean);
    free(hex);
    return o;
}

static int run_jsonl(const ks_tokenizer *t, unsigned flags, const char *text, size_t len) {
    size_t pos = 0;
    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len;
        json_error_t jerr;
        json_t *j = json_loadb(text + pos, end - pos, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
        if (!j || !json_is_string(j)) {
            fprintf(stderr, "kvserve tokenize: --jsonl: a line is not a JSON string (%s)\n", j ? "" : jerr.text);
            json_decref(j);
            return 1;
        }
        int32_t *ids = NULL;
        size_t n = 0;
        ks_status s = ks_tokenize_alloc(t, json_string_value(j), json_string_length(j), flags, &ids, &n);
        json_decref(j);
        if (s) {
            fprintf(stderr, "kvserve tokenize: %s\n", ks_status_str(s));
            return 1;
        }
        print_ids(ids, n);
        free(ids);
        pos = end + 1;
    }
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int ks_cmd_tokenize(int argc, char **argv) {
    const char *model_path = NULL, *prompt = NULL, *file = NULL;
    bool json = false, jsonl = false, regex = false, cache = true;
    unsigned flags = KS_TOKENIZE_ADD_SPECIAL;
    long bench = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && v) {
            model_path = v;
            i++;
        } else if ((!strcmp(a, "-p") || !strcmp(a, "--prompt")) && v) {
            prompt = v;
            i++;
        } else if (!strcmp(a, "-f") && v) {
            file = v;
            i++;
        } else if (!strcmp(a, "--bench")) {
            if (!ks_cli_int("tokenize", a, v, 1, 1000000, &bench))
                return 2;
            i++;
        } else if (!strcmp(a, "--special"))
            flags |= KS_TOKENIZE_SPECIAL;
        else if (!strcmp(a, "--no-add-special"))
            flags &= ~(unsigned)KS_TOKENIZE_ADD_SPECIAL;
        else if (!strcmp(a, "--json"))
            json = true;
        else if (!strcmp(a, "--jsonl"))
            jsonl = true;
        else if (!strcmp(a, "--regex"))
            regex = true;
        else if (!strcmp(a, "--no-cache"))
            cache = false;
        else {
            fprintf(stderr, "kvserve tokenize: unknown option or missing value '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!model_path) {
        usage(stderr);
        return 2;
    }
    size_t len = 0;
    char *text = NULL;
    if (prompt) {
        len = strlen(prompt);
        text = malloc(len + 1);
        if (text)
            memcpy(text, prompt, len + 1);
    } else {
        FILE *f = file ? fopen(file, "rb") : stdin;
        if (!f) {
            perror(file);
            return 1;
        }
        text = read_all(f, &len);
        if (file)
            fclose(f);
    }
    if (!text) {
        fprintf(stderr, "kvserve tokenize: cannot read the text\n");
        return 1;
    }

    int rc = 1;
    ks_err err;
    ks_err_clear(&err);
    ks_gguf *g = NULL;
    ks_tokenizer *t = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    double *times = NULL;
    double t0 = now_ms();
    if (ks_gguf_open(&g, model_path, &err) || ks_tokenizer_create(&t, g, &err))
        goto fail;
    double load_ms = now_ms() - t0;
    if (regex && ks_tokenizer_use_regex(t, true, &err))
        goto fail;
    ks_tokenizer_use_cache(t, cache);
    if (jsonl) {
        rc = run_jsonl(t, flags, text, len);
        goto done;
    }
    times = malloc((size_t)(bench > 0 ? bench : 1) * sizeof *times);
    if (!times) {
        KS_ERRF(&err, KS_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (long r = 0; r < (bench > 0 ? bench : 1); r++) {
        free(ids);
        ids = NULL;
        double a = now_ms();
        ks_status s = ks_tokenize_alloc(t, text, len, flags, &ids, &n);
        times[r] = now_ms() - a;
        if (s) {
            KS_ERRF(&err, s, "tokenizing: %s%s", ks_status_str(s),
                    s == KS_ERR_INVALID && regex ? " (--regex needs valid UTF-8)" : "");
            goto fail;
        }
    }
    if (json) {
        const ks_vocab *v = ks_tokenizer_vocab(t);
        size_t cap = ks_vocab_max_piece(v) + 1;
        char *buf = malloc(cap);
        json_t *arr = json_array();
        for (size_t i = 0; i < n && buf; i++)
            json_array_append_new(arr, piece_json(v, ids[i], buf, cap));
        free(buf);
        json_t *o = json_object();
        json_object_set_new(o, "n_tokens", json_integer((json_int_t)n));
        json_object_set_new(o, "tokens", arr);
        json_dumpf(o, stdout, JSON_COMPACT | JSON_ENSURE_ASCII);
        putchar('\n');
        json_decref(o);
    } else {
        print_ids(ids, n);
    }
    if (bench > 0) {
        double sum = 0;
        for (long r = 0; r < bench; r++)
            sum += times[r];
        qsort(times, (size_t)bench, sizeof *times, cmp_double);
        double mean = sum / (double)bench, best = times[0], median = times[bench / 2];
        fprintf(stderr,
                "{\"bytes\":%zu,\"tokens\":%zu,\"runs\":%ld,\"load_ms\":%.3f,\"best_ms\":%.4f,\"median_ms\":%.4f,"
                "\"mean_ms\":%.4f,\"mb_s\":%.2f,\"best_mb_s\":%.2f,\"pretok\":\"%s\",\"cache\":%s}\n",
                len, n, bench, load_ms, best, median, mean, (double)len / 1e3 / median, (double)len / 1e3 / best,
                regex ? "pcre2" : "hand-written", cache ? "true" : "false");
    }
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "kvserve: %s\n", err.msg);
done:
    free(times);
    free(ids);
    free(text);
    ks_tokenizer_destroy(t);
    ks_gguf_close(g);
    return rc;
}
