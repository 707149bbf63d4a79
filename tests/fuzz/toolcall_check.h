/* toolcall_check.h — the tool-call parser's test harness, shared by test_toolcall.c and
 * fuzz_toolcall.c: runs the parser over an output cut at given places and records its
 * events in a normal form that does not depend on the cuts, checking the parser's
 * contract on the way.
 *
 * Normal form, one line per event, adjacent TEXT pieces joined and adjacent ARGS pieces
 * of one call joined, call ids replaced by their order of appearance (#0, #1, ...):
 *
 *   T "text"            S #0 name           A #0 {"json": "piece"}
 *   E #0 name {args}    X #0                (END, ABORT)
 *
 * Bytes outside printable ASCII are written as \n, \t or \xHH; '\\' and '"' as they are
 * (lines are for comparing runs and reading; the exact bytes are checked apart).
 *
 * Contract checked (first violation recorded in log.err):
 *   - TEXT and ARGS are never empty; ARGS, END and ABORT belong to the started call;
 *   - ids are KS_TOOLCALL_ID_PREFIX + KS_TOOLCALL_ID_CHARS base62 characters, unique;
 *   - the ARGS pieces of a call concatenate to its END args, which jansson reads as the
 *     object in call->input; raw runs from "<tool_call>" to "</tool_call>";
 *   - TEXT and the raw text of complete calls, in order, are exactly the bytes fed.
 * Header-only (static inline) so that both programs compile it without extra sources. */
#ifndef KS_TOOLCALL_CHECK_H
#define KS_TOOLCALL_CHECK_H

#include "chat/toolcall_parser.h"
#include "sample/rng.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TC_CHECK_MAX_IDS 4096 /* calls one output may start; more is recorded as an error */

typedef struct tc_str {
    char *s;
    size_t len, cap;
} tc_str;

typedef struct tc_log {
    tc_str out;        /* the normal form */
    tc_str pending;    /* TEXT or ARGS bytes not yet written to out */
    int pending_type;  /* -1: none */
    tc_str fed;        /* TEXT and raw of complete calls, to compare with the input */
    tc_str args;       /* ARGS of the call in progress */
    char (*ids)[KS_TOOLCALL_ID_BYTES + 1];
    size_t n_ids;
    size_t n_ends;
    long current;      /* ordinal of the started call, -1 if none */
    char err[256];
} tc_log;

static inline void tc_str_add(tc_str *b, const void *p, size_t n) {
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->s = realloc(b->s, b->cap);
        if (!b->s)
            abort();
    }
    memcpy(b->s + b->len, p, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static inline void tc_str_addf(tc_str *b, const char *s) {
    tc_str_add(b, s, strlen(s));
}

/* Printable form of arbitrary bytes. */
static inline void tc_str_quote(tc_str *b, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '\n')
            tc_str_addf(b, "\\n");
        else if (c == '\t')
            tc_str_addf(b, "\\t");
        else if (c < 0x20 || c >= 0x7f) {
            snprintf(esc, sizeof esc, "\\x%02x", c);
            tc_str_addf(b, esc);
        } else
            tc_str_add(b, &c, 1);
    }
}

static inline void tc_log_fail(tc_log *log, const char *what) {
    if (!log->err[0])
        snprintf(log->err, sizeof log->err, "%s", what);
}

static inline void tc_log_init(tc_log *log) {
    memset(log, 0, sizeof *log);
    log->pending_type = -1;
    log->current = -1;
    log->ids = calloc(TC_CHECK_MAX_IDS, sizeof *log->ids);
    if (!log->ids)
        abort();
    tc_str_add(&log->out, "", 0);
}

static inline void tc_log_free(tc_log *log) {
    free(log->out.s);
    free(log->pending.s);
    free(log->fed.s);
    free(log->args.s);
    free(log->ids);
}

static inline void tc_log_ordinal(tc_str *b, long ord) {
    char num[32];
    snprintf(num, sizeof num, "#%ld", ord);
    tc_str_addf(b, num);
}

static inline void tc_log_flush(tc_log *log) {
    if (log->pending_type == KS_TOOLCALL_TEXT) {
        tc_str_addf(&log->out, "T \"");
        tc_str_quote(&log->out, log->pending.s, log->pending.len);
        tc_str_addf(&log->out, "\"\n");
    } else if (log->pending_type == KS_TOOLCALL_ARGS) {
        tc_str_addf(&log->out, "A ");
        tc_log_ordinal(&log->out, log->current);
        tc_str_addf(&log->out, " ");
        tc_str_quote(&log->out, log->pending.s, log->pending.len);
        tc_str_addf(&log->out, "\n");
    }
    log->pending.len = 0;
    log->pending_type = -1;
}

static inline int tc_log_base62(char c) {
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static inline void tc_log_start(tc_log *log, const ks_toolcall_event *ev) {
    const size_t prefix = sizeof KS_TOOLCALL_ID_PREFIX - 1;
    if (log->current >= 0)
        tc_log_fail(log, "START inside a call");
    if (strlen(ev->id) != KS_TOOLCALL_ID_BYTES || memcmp(ev->id, KS_TOOLCALL_ID_PREFIX, prefix))
        tc_log_fail(log, "id: bad prefix or length");
    for (size_t i = prefix; i < strlen(ev->id); i++)
        if (!tc_log_base62(ev->id[i]))
            tc_log_fail(log, "id: not base62");
    for (size_t i = 0; i < log->n_ids; i++)
        if (strcmp(log->ids[i], ev->id) == 0)
            tc_log_fail(log, "id: used twice");
    if (log->n_ids == TC_CHECK_MAX_IDS) {
        tc_log_fail(log, "too many calls for the harness");
        return;
    }
    snprintf(log->ids[log->n_ids], sizeof log->ids[0], "%s", ev->id);
    log->current = (long)log->n_ids++;
    log->args.len = 0;
    tc_str_addf(&log->out, "S ");
    tc_log_ordinal(&log->out, log->current);
    tc_str_addf(&log->out, " ");
    tc_str_addf(&log->out, ev->name);
    tc_str_addf(&log->out, "\n");
}

static inline void tc_log_end(tc_log *log, const ks_toolcall_event *ev) {
    const ks_toolcall *c = ev->call;
    const size_t open = strlen("<tool_call>"), close = strlen("</tool_call>");
    if (!c || strcmp(c->id, ev->id) || strcmp(c->name, ev->name))
        tc_log_fail(log, "END: call record differs from the event");
    else if (c->args_len != log->args.len || (c->args_len && memcmp(c->args, log->args.s, c->args_len)))
        tc_log_fail(log, "END: ARGS pieces do not concatenate to the arguments");
    else if (!json_is_object(c->input) || strlen(c->args) != c->args_len)
        tc_log_fail(log, "END: input is not an object");
    else if (c->raw_len < open + close || memcmp(c->raw, "<tool_call>", open) ||
             memcmp(c->raw + c->raw_len - close, "</tool_call>", close))
        tc_log_fail(log, "END: raw is not a tool_call block");
    if (!c)
        return;
    json_error_t jerr;
    json_t *again = json_loadb(c->args, c->args_len, 0, &jerr);
    if (!json_equal(again, c->input))
        tc_log_fail(log, "END: args text does not read as input");
    json_decref(again);
    tc_str_add(&log->fed, c->raw, c->raw_len);
    tc_str_addf(&log->out, "E ");
    tc_log_ordinal(&log->out, log->current);
    tc_str_addf(&log->out, " ");
    tc_str_addf(&log->out, c->name);
    tc_str_addf(&log->out, " ");
    tc_str_quote(&log->out, c->args, c->args_len);
    tc_str_addf(&log->out, "\n");
}

static inline void tc_log_sink(void *user, const ks_toolcall_event *ev) {
    tc_log *log = user;
    const bool joins = (ev->type == KS_TOOLCALL_TEXT || ev->type == KS_TOOLCALL_ARGS) &&
                       (int)ev->type == log->pending_type;
    if (!joins)
        tc_log_flush(log);
    if (ev->type != KS_TOOLCALL_TEXT && ev->type != KS_TOOLCALL_START &&
        (log->current < 0 || strcmp(ev->id, log->ids[log->current]) != 0)) {
        tc_log_fail(log, "call event outside its call");
        return;
    }
    switch (ev->type) {
    case KS_TOOLCALL_TEXT:
    case KS_TOOLCALL_ARGS:
        if (ev->len == 0 || !ev->data)
            tc_log_fail(log, "empty TEXT or ARGS");
        if (ev->type == KS_TOOLCALL_TEXT && log->current >= 0)
            tc_log_fail(log, "TEXT inside a call");
        tc_str_add(ev->type == KS_TOOLCALL_TEXT ? &log->fed : &log->args, ev->data, ev->len);
        tc_str_add(&log->pending, ev->data, ev->len);
        log->pending_type = (int)ev->type;
        break;
    case KS_TOOLCALL_START:
        tc_log_start(log, ev);
        break;
    case KS_TOOLCALL_END:
        tc_log_end(log, ev);
        log->n_ends++;
        log->current = -1;
        break;
    case KS_TOOLCALL_ABORT:
        tc_str_addf(&log->out, "X ");
        tc_log_ordinal(&log->out, log->current);
        tc_str_addf(&log->out, "\n");
        log->current = -1;
        break;
    default:
        tc_log_fail(log, "unknown event type");
    }
}

/* Runs the parser over out[0, n) cut at cuts[0..n_cuts) (ascending offsets), then
 * finishes and checks the accounting. The caller frees the log. Returns the parser's
 * first error status. */
static inline ks_status tc_check_run(tc_log *log, ks_toolcall_format fmt, const json_t *tools,
                                     uint64_t id_seed, const char *out, size_t n,
                                     const size_t *cuts, size_t n_cuts) {
    tc_log_init(log);
    ks_toolcall_parser *p = NULL;
    ks_err err;
    ks_err_clear(&err);
    ks_status s = ks_toolcall_parser_create(&p, fmt, tools, id_seed, tc_log_sink, log, &err);
    if (s != KS_OK)
        return s;
    size_t at = 0;
    for (size_t i = 0; i <= n_cuts && s == KS_OK; i++) {
        const size_t to = i < n_cuts ? cuts[i] : n;
        s = ks_toolcall_parser_feed(p, out + at, to - at);
        at = to;
    }
    if (s == KS_OK)
        s = ks_toolcall_parser_finish(p);
    tc_log_flush(log);
    if (log->current >= 0)
        tc_log_fail(log, "a call neither ended nor aborted");
    if (log->fed.len != n || (n && memcmp(log->fed.s, out, n)))
        tc_log_fail(log, "text and calls do not account for the bytes fed");
    if (ks_toolcall_parser_n_calls(p) != log->n_ends)
        tc_log_fail(log, "calls recorded differ from END events");
    ks_toolcall_parser_destroy(p);
    return s;
}

/* Random ascending cuts into n bytes: about one in `every` positions. */
static inline size_t tc_check_random_cuts(ks_rng *rng, size_t n, size_t every, size_t *cuts) {
    size_t k = 0;
    for (size_t i = 1; i < n; i++)
        if (ks_rng_next_u64(rng) % every == 0)
            cuts[k++] = i;
    return k;
}

#endif
