/* stop_matcher.c — one Knuth-Morris-Pratt automaton per stop string (see stop_matcher.h).
 *
 * Each string keeps `state`: the length of the longest suffix of the text fed so far that
 * is a prefix of the string. A byte advances every state by the usual KMP step; a state
 * reaching the string's length is a match ending at this byte, and the largest state
 * below that is exactly how many trailing bytes could still grow into a match. That is
 * all the text the matcher needs to remember, so it keeps none of it. */
#include "sample/stop_matcher.h"

#include <stdlib.h>
#include <string.h>

typedef struct stop_string {
    const uint8_t *text; /* points into the matcher's pool */
    uint32_t len;        /* bytes, 1..KS_STOP_MAX_BYTES */
    uint32_t *fail;      /* (len) fail[q]: longest proper border of text[0, q + 1) */
    uint32_t state;      /* bytes of text matched at the end of the input */
} stop_string;

struct ks_stop_matcher {
    size_t n_stops;
    stop_string stops[KS_STOP_MAX_STRINGS];
    void *pool;        /* one block: the fail tables, then the strings' bytes */
    uint64_t n_fed;    /* bytes consumed */
    int32_t which;     /* matched string, -1 while none */
    uint64_t match_pos;
};

/* The classic prefix function: fail[q] is the length of the longest proper prefix of
 * text[0, q + 1) that is also a suffix of it. */
static void build_fail(stop_string *st) {
    st->fail[0] = 0;
    uint32_t k = 0;
    for (uint32_t q = 1; q < st->len; q++) {
        while (k > 0 && st->text[q] != st->text[k])
            k = st->fail[k - 1];
        if (st->text[q] == st->text[k])
            k++;
        st->fail[q] = k;
    }
}

ks_status ks_stop_matcher_create(ks_stop_matcher **out, const char *const *stops, size_t n_stops,
                                 ks_err *err) {
    if (n_stops > KS_STOP_MAX_STRINGS)
        return KS_ERRF(err, KS_ERR_INVALID, "stop: at most %d stop strings, got %zu",
                       KS_STOP_MAX_STRINGS, n_stops);
    size_t total = 0; /* bytes of all strings */
    for (size_t i = 0; i < n_stops; i++) {
        const size_t len = stops[i] ? strlen(stops[i]) : 0;
        if (len == 0 || len > KS_STOP_MAX_BYTES)
            return KS_ERRF(err, KS_ERR_INVALID, "stop: string %zu must be 1..%d bytes, got %zu",
                           i, KS_STOP_MAX_BYTES, len);
        total += len;
    }

    ks_stop_matcher *m = calloc(1, sizeof *m);
    if (!m)
        goto fail;
    /* Fail tables first so that they are aligned; the bytes follow. */
    m->pool = malloc(total * sizeof(uint32_t) + total + 1);
    if (!m->pool)
        goto fail;
    uint32_t *fail_at = m->pool;
    uint8_t *text_at = (uint8_t *)(fail_at + total);
    for (size_t i = 0; i < n_stops; i++) {
        stop_string *st = &m->stops[i];
        st->len = (uint32_t)strlen(stops[i]);
        memcpy(text_at, stops[i], st->len);
        st->text = text_at;
        st->fail = fail_at;
        text_at += st->len;
        fail_at += st->len;
        build_fail(st);
    }
    m->n_stops = n_stops;
    ks_stop_matcher_reset(m);
    *out = m;
    return KS_OK;

fail:
    ks_stop_matcher_destroy(m);
    return KS_ERRF(err, KS_ERR_NOMEM, "stop: out of memory for %zu stop strings", n_stops);
}

void ks_stop_matcher_destroy(ks_stop_matcher *m) {
    if (!m)
        return;
    free(m->pool);
    free(m);
}

void ks_stop_matcher_reset(ks_stop_matcher *m) {
    for (size_t i = 0; i < m->n_stops; i++)
        m->stops[i].state = 0;
    m->n_fed = 0;
    m->which = -1;
    m->match_pos = 0;
}

/* One byte through every automaton; returns the index of the longest string completed
 * by it, or -1. States of strings that complete are left at their length (the matcher
 * stops consuming after a match). */
static int32_t step(ks_stop_matcher *m, uint8_t b) {
    int32_t done = -1;
    for (size_t i = 0; i < m->n_stops; i++) {
        stop_string *st = &m->stops[i];
        uint32_t q = st->state;
        while (q > 0 && st->text[q] != b)
            q = st->fail[q - 1];
        if (st->text[q] == b)
            q++;
        st->state = q;
        if (q == st->len && (done < 0 || st->len > m->stops[done].len))
            done = (int32_t)i;
    }
    return done;
}

void ks_stop_matcher_feed(ks_stop_matcher *m, const void *bytes, size_t n, ks_stop_result *out) {
    const uint8_t *p = bytes;
    for (size_t j = 0; j < n && m->which < 0; j++) {
        const int32_t done = step(m, p[j]);
        m->n_fed++;
        if (done >= 0) {
            m->which = done;
            m->match_pos = m->n_fed - m->stops[done].len;
        }
    }

    out->n_fed = m->n_fed;
    out->which = m->which;
    out->matched = m->which >= 0;
    if (out->matched) {
        out->match_pos = m->match_pos;
        out->safe_end = m->match_pos;
        out->n_held = 0;
        return;
    }
    uint32_t held = 0;
    for (size_t i = 0; i < m->n_stops; i++)
        if (m->stops[i].state > held)
            held = m->stops[i].state;
    out->match_pos = 0;
    out->safe_end = m->n_fed - held;
    out->n_held = held;
}
