/* toolcall_xml.c — the body of a Qwen3-Coder tool call:
 *
 *   <tool_call>\n<function=NAME>\n<parameter=KEY>\nVALUE\n</parameter>\n</function>\n</tool_call>
 *              ^X_OPEN  ^X_NAME  ^X_BETWEEN ^X_KEY ^X_VALUE            ^X_BETWEEN  ^X_CLOSE
 *
 * The arguments text is built as the tags arrive: "{" at the function's '>', then per
 * parameter `"KEY": ` at its '>' and the value, "}" at "</function>". A string value
 * streams as escaped JSON while it is read; only a '\n' and a partial "</parameter>" at
 * its end are held back, since they are dropped if the closing tag follows. A typed value
 * waits for its closing tag, then is written as its JSON text, or as a string if it does
 * not read as its type (see toolcall_parser.h). */
#include "chat/toolcall_internal.h"

#include <string.h>

enum { X_OPEN, X_NAME, X_BETWEEN, X_KEY, X_VALUE, X_CLOSE };

static const char k_param_close[] = "</parameter>";
#define PARAM_CLOSE_BYTES (sizeof k_param_close - 1)

void ks_tc_xml_begin(ks_toolcall_parser *p) {
    tc_xml *x = &p->xml;
    x->state = X_OPEN;
    x->capture = 0;
    x->n_params = 0;
    x->keys.len = 0;
    x->value.len = 0;
}

/* Whitespace, then the tag: see ks_tc_tag_step. Fails the call on a mismatch. */
static int expect_tag(ks_toolcall_parser *p, uint8_t c, const char *const *cands, int n) {
    if (p->tag_len == 0 && ks_tc_is_ws(c))
        return -1;
    const int r = ks_tc_tag_step(p, c, cands, n);
    if (r == -2)
        ks_tc_call_fail_here(p);
    return r;
}

/* A name or key being captured after "=": false if c cannot be part of it. */
static bool capture_ok(const ks_toolcall_parser *p, uint8_t c, size_t max_bytes) {
    return c != '\n' && p->raw.len - p->xml.capture <= max_bytes;
}

static bool ascii_ieq(const char *s, size_t n, const char *word) {
    if (n != strlen(word))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != word[i])
            return false;
    }
    return true;
}

/* ---- parameters ----------------------------------------------------------------------- */

static tc_kind kind_of_key(const tc_tool *tool, const char *key, size_t len) {
    for (size_t i = 0; i < tool->n_props; i++)
        if (tool->props[i].key_len == len && memcmp(tool->props[i].key, key, len) == 0)
            return tool->props[i].kind;
    return TC_STRING; /* not in the schema: the string as sampled */
}

/* keys holds each key of this call as a uint32 length and its bytes. */
static bool seen_key(const tc_xml *x, const char *key, size_t len) {
    for (size_t at = 0; at < x->keys.len;) {
        uint32_t n;
        memcpy(&n, x->keys.data + at, sizeof n);
        at += sizeof n;
        if (n == len && memcmp(x->keys.data + at, key, len) == 0)
            return true;
        at += n;
    }
    return false;
}

/* The '>' of <parameter=KEY>: checks the key and writes `"KEY": ` (and a string's '"'). */
static void key_done(ks_toolcall_parser *p) {
    tc_xml *x = &p->xml;
    const char *key = p->raw.data + x->capture;
    const size_t len = p->raw.len - 1 - x->capture;
    ks_toolcall_utf8 u = {0, 0x80, 0xBF};
    bool ok = !seen_key(x, key, len);
    for (size_t i = 0; ok && i < len; i++)
        ok = ks_toolcall_utf8_step(&u, (uint8_t)key[i]);
    if (!ok || u.left) {
        ks_tc_call_fail_here(p);
        return;
    }
    const uint32_t n = (uint32_t)len;
    ks_tc_put(p, &x->keys, &n, sizeof n);
    ks_tc_put(p, &x->keys, key, len);
    x->kind = kind_of_key(p->tool, key, len);
    ks_tc_tag_clear(p);
    if (x->n_params)
        ks_tc_puts(p, &p->args, ", ");
    ks_tc_put_json_string(p, &p->args, key, len, true);
    ks_tc_puts(p, &p->args, x->kind == TC_STRING ? ": \"" : ": ");
    x->state = X_VALUE;
    x->value_started = x->nl_held = false;
    x->close_len = 0;
    x->utf8 = (ks_toolcall_utf8){0, 0x80, 0xBF};
    x->value.len = 0;
}

/* Bytes of the value proper: escaped into the arguments (strings) or kept (typed). */
static void value_bytes(ks_toolcall_parser *p, const char *s, size_t n) {
    if (p->xml.kind == TC_STRING)
        ks_tc_put_json_string(p, &p->args, s, n, false);
    else
        ks_tc_put(p, &p->xml.value, s, n);
}

/* What was held back turned out to be part of the value. */
static void release_held(ks_toolcall_parser *p) {
    tc_xml *x = &p->xml;
    if (x->nl_held)
        value_bytes(p, "\n", 1);
    value_bytes(p, k_param_close, x->close_len);
    x->nl_held = false;
    x->close_len = 0;
}

/* A typed value as its JSON text, or else the JSON string of the value. */
static void typed_value(ks_toolcall_parser *p) {
    const tc_xml *x = &p->xml;
    const char *v = x->value.len ? x->value.data : "";
    size_t n = x->value.len;
    const char *t = v; /* trimmed */
    size_t tn = n;
    while (tn && ks_tc_is_ws((uint8_t)t[0]))
        t++, tn--;
    while (tn && ks_tc_is_ws((uint8_t)t[tn - 1]))
        tn--;
    if (ascii_ieq(t, tn, "null")) {
        ks_tc_puts(p, &p->args, "null");
        return;
    }
    if (x->kind == TC_BOOLEAN) {
        if (ascii_ieq(t, tn, "true") || ascii_ieq(t, tn, "false")) {
            ks_tc_puts(p, &p->args, ascii_ieq(t, tn, "true") ? "true" : "false");
            return;
        }
    } else {
        json_error_t jerr;
        json_t *j = json_loadb(t, tn, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
        const bool ok = (x->kind == TC_INTEGER && json_is_integer(j)) ||
                        (x->kind == TC_NUMBER && json_is_number(j)) ||
                        (x->kind == TC_OBJECT && json_is_object(j)) ||
                        (x->kind == TC_ARRAY && json_is_array(j));
        json_decref(j);
        if (ok) {
            ks_tc_put(p, &p->args, t, tn);
            return;
        }
    }
    ks_tc_put_json_string(p, &p->args, v, n, true);
}

static void value_step(ks_toolcall_parser *p, uint8_t c) {
    tc_xml *x = &p->xml;
    if (!ks_toolcall_utf8_step(&x->utf8, c)) {
        ks_tc_call_fail_here(p);
        return;
    }
    if (!x->value_started) {
        x->value_started = true;
        if (c == '\n')
            return; /* the newline the format puts after the tag */
    }
    if (c == (uint8_t)k_param_close[x->close_len]) {
        if (++x->close_len < PARAM_CLOSE_BYTES)
            return;
        /* Complete: a held '\n' is the one the format puts before the tag. */
        if (x->kind == TC_STRING)
            ks_tc_puts(p, &p->args, "\"");
        else
            typed_value(p);
        x->n_params++;
        x->state = X_BETWEEN;
        return;
    }
    release_held(p);
    if (c == '<') /* "</parameter>" has no other '<': a new match starts here */
        x->close_len = 1;
    else if (c == '\n')
        x->nl_held = true;
    else
        value_bytes(p, (const char *)&c, 1);
}

/* ---- the call ------------------------------------------------------------------------- */

void ks_tc_xml_step(ks_toolcall_parser *p, uint8_t c) {
    static const char *const k_function[] = {"<function="};
    static const char *const k_between[] = {"<parameter=", "</function>"};
    static const char *const k_close[] = {TC_CLOSE_TAG};
    tc_xml *x = &p->xml;
    switch (x->state) {
    case X_OPEN:
        if (expect_tag(p, c, k_function, 1) == 0) {
            x->capture = p->raw.len;
            x->state = X_NAME;
        }
        return;
    case X_NAME:
        if (c == '>') {
            const tc_tool *tool = ks_tc_find_tool(p, p->raw.data + x->capture,
                                                  p->raw.len - 1 - x->capture);
            if (!tool) {
                ks_tc_call_fail_here(p); /* parsing resumes at "<function=" */
                return;
            }
            ks_tc_tag_clear(p);
            ks_tc_call_start(p, tool);
            ks_tc_puts(p, &p->args, "{");
            x->state = X_BETWEEN;
        } else if (!capture_ok(p, c, KS_TOOLCALL_NAME_MAX_BYTES)) {
            ks_tc_call_fail_here(p);
        }
        return;
    case X_BETWEEN:
        switch (expect_tag(p, c, k_between, 2)) {
        case 0:
            x->capture = p->raw.len;
            x->state = X_KEY;
            break;
        case 1:
            ks_tc_tag_clear(p);
            ks_tc_puts(p, &p->args, "}");
            x->state = X_CLOSE;
            break;
        default:
            break;
        }
        return;
    case X_KEY:
        if (c == '>')
            key_done(p);
        else if (!capture_ok(p, c, KS_TOOLCALL_KEY_MAX_BYTES))
            ks_tc_call_fail_here(p);
        return;
    case X_VALUE:
        value_step(p, c);
        return;
    default: /* X_CLOSE */
        if (expect_tag(p, c, k_close, 1) == 0)
            ks_tc_call_end(p);
        return;
    }
}
