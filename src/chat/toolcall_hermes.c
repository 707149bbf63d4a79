/* toolcall_hermes.c — the body of a Hermes tool call (Qwen2.5, Qwen3):
 *
 *   <tool_call>  {"name": "NAME", "arguments": {...}}  </tool_call>
 *               ^ H_OBJECT: the JSON checker reads  ^ H_CLOSE: whitespace, closing tag
 *
 * The checker reports where each top-level member's key and value begin and end. The
 * value of "name" is decoded when it closes and must name a tool (START); the bytes of
 * the "arguments" object are the arguments text, streamed as they pass the checker. When
 * "arguments" comes before "name" its bytes wait and follow the START. */
#include "chat/toolcall_internal.h"

#include <string.h>

enum { H_OBJECT, H_CLOSE };

void ks_tc_hermes_begin(ks_toolcall_parser *p) {
    tc_hermes *h = &p->hermes;
    ks_toolcall_json_init(&h->json);
    h->state = H_OBJECT;
    h->member = TC_MEMBER_OTHER;
    h->key_start = h->value_start = 0;
    h->in_args = h->have_name = h->have_args = false;
}

/* Keys are compared as written: an escaped spelling of "name" is some other member. */
static tc_member member_of(const char *key, size_t len) {
    if (len == 6 && memcmp(key, "\"name\"", 6) == 0)
        return TC_MEMBER_NAME;
    if (len == 11 && memcmp(key, "\"arguments\"", 11) == 0)
        return TC_MEMBER_ARGS;
    return TC_MEMBER_OTHER;
}

/* The "name" string just closed at raw offset end - 1: the tool it names, or NULL. */
static const tc_tool *named_tool(ks_toolcall_parser *p, size_t end) {
    const tc_hermes *h = &p->hermes;
    json_error_t jerr;
    json_t *s = json_loadb(p->raw.data + h->value_start, end - h->value_start, JSON_DECODE_ANY,
                           &jerr);
    const tc_tool *tool =
        json_is_string(s) ? ks_tc_find_tool(p, json_string_value(s), json_string_length(s)) : NULL;
    json_decref(s);
    return tool;
}

static void close_step(ks_toolcall_parser *p, uint8_t c) {
    static const char *const k_close[] = {TC_CLOSE_TAG};
    if (p->tag_len == 0 && ks_tc_is_ws(c))
        return;
    const int r = ks_tc_tag_step(p, c, k_close, 1);
    if (r == -2)
        ks_tc_call_fail_here(p);
    else if (r == 0)
        ks_tc_call_end(p);
}

void ks_tc_hermes_step(ks_toolcall_parser *p, uint8_t c) {
    tc_hermes *h = &p->hermes;
    if (h->state == H_CLOSE) {
        close_step(p, c);
        return;
    }
    const size_t off = p->raw.len - 1; /* of c */
    unsigned ev = 0;
    const ks_toolcall_json_status st = ks_toolcall_json_step(&h->json, c, &ev);
    if (st == KS_TOOLCALL_JSON_ERROR) {
        ks_tc_call_fail_here(p);
        return;
    }
    if (ev & KS_TOOLCALL_JSON_VALUE_ENDED)
        h->member = TC_MEMBER_OTHER; /* a number: "name" and "arguments" failed at its start */
    if (ev & KS_TOOLCALL_JSON_KEY_BEGIN)
        h->key_start = off;
    if (ev & KS_TOOLCALL_JSON_KEY_END) {
        h->member = member_of(p->raw.data + h->key_start, off + 1 - h->key_start);
        if ((h->member == TC_MEMBER_NAME && h->have_name) ||
            (h->member == TC_MEMBER_ARGS && h->have_args)) {
            ks_tc_call_fail_here(p); /* said twice: which one is meant? */
            return;
        }
    }
    if (ev & KS_TOOLCALL_JSON_VALUE_BEGIN) {
        h->value_start = off;
        if ((h->member == TC_MEMBER_NAME && c != '"') || (h->member == TC_MEMBER_ARGS && c != '{')) {
            ks_tc_call_fail_here(p);
            return;
        }
        h->in_args = h->member == TC_MEMBER_ARGS;
    }
    if (h->in_args)
        ks_tc_put(p, &p->args, &c, 1);
    if (ev & KS_TOOLCALL_JSON_VALUE_END) {
        if (h->member == TC_MEMBER_NAME) {
            const tc_tool *tool = named_tool(p, off + 1);
            if (!tool) {
                ks_tc_call_fail_here(p);
                return;
            }
            h->have_name = true;
            ks_tc_call_start(p, tool);
        } else if (h->member == TC_MEMBER_ARGS) {
            h->in_args = false;
            h->have_args = true;
        }
        h->member = TC_MEMBER_OTHER;
    }
    if (st == KS_TOOLCALL_JSON_DONE) {
        if (!h->have_name || !h->have_args)
            ks_tc_call_fail_here(p);
        else
            h->state = H_CLOSE;
    }
}
