/* toolcall_parser.c — the format-independent half of the tool-call parser (see
 * toolcall_parser.h; the formats' bodies are toolcall_hermes.c and toolcall_xml.c).
 *
 * Data flow, one byte at a time:
 *
 *   feed ──> step ──> not in a call: text_step: text, or "<tool_call>" completes
 *     ^         └──> in a call: raw += byte; the format's step: tags, names, values,
 *     |                         tc_call_start / tc_call_end / tc_call_fail
 *     └── replay: after a failure, the suffix of the failed call from the point where
 *                 parsing resumes (a tag's '<' or the breaking byte) is read again
 *
 * Events are coalesced: TEXT and ARGS bytes gather in `text` and `args` and go out
 * before any other event and at the end of each feed, so a feed yields few events and
 * the events of any split differ only in where TEXT and ARGS pieces are cut.
 *
 * Divisions: buffers; events; the tools table; ids; tags; calls; feeding; API. */
#include "chat/toolcall_internal.h"

#include <stdlib.h>
#include <string.h>

static const char k_open_tag[] = TC_OPEN_TAG;
#define OPEN_TAG_BYTES (sizeof k_open_tag - 1)

/* ---- buffers ------------------------------------------------------------------------ */

void ks_tc_put(ks_toolcall_parser *p, ks_chat_buf *b, const void *bytes, size_t n) {
    if (p->status != KS_OK || n == 0)
        return;
    ks_chat_buf_append(b, bytes, n);
    if (b->failed)
        p->status = KS_ERR_NOMEM;
}

void ks_tc_puts(ks_toolcall_parser *p, ks_chat_buf *b, const char *s) {
    ks_tc_put(p, b, s, strlen(s));
}

void ks_tc_put_json_string(ks_toolcall_parser *p, ks_chat_buf *b, const char *s, size_t n,
                           bool quotes) {
    if (p->status != KS_OK)
        return;
    if (quotes) {
        ks_chat_json_string(b, s, n);
    } else {
        /* Escaping works byte by byte, so a piece's escape is its string's minus quotes. */
        p->escaped.len = 0;
        ks_chat_json_string(&p->escaped, s, n);
        if (!p->escaped.failed)
            ks_chat_buf_append(b, p->escaped.data + 1, p->escaped.len - 2);
    }
    if (b->failed || p->escaped.failed)
        p->status = KS_ERR_NOMEM;
}

bool ks_tc_is_ws(uint8_t c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* ---- events ------------------------------------------------------------------------- */

static void deliver(ks_toolcall_parser *p, const ks_toolcall_event *ev) {
    if (p->sink)
        p->sink(p->user, ev);
}

static void flush_text(ks_toolcall_parser *p) {
    if (p->text.len == 0)
        return;
    const ks_toolcall_event ev = {.type = KS_TOOLCALL_TEXT, .data = p->text.data, .len = p->text.len};
    deliver(p, &ev);
    p->text.len = 0;
}

/* Text pending can only precede the call's arguments (see tc_call_fail), so text goes
 * first. */
static void flush_args(ks_toolcall_parser *p) {
    if (!p->started || p->args.len == p->args_emitted)
        return;
    const ks_toolcall_event ev = {.type = KS_TOOLCALL_ARGS,
                                  .data = p->args.data + p->args_emitted,
                                  .len = p->args.len - p->args_emitted,
                                  .id = p->id,
                                  .name = p->tool->name};
    deliver(p, &ev);
    p->args_emitted = p->args.len;
}

static void emit_call_event(ks_toolcall_parser *p, ks_toolcall_event_type type,
                            const ks_toolcall *call) {
    flush_text(p);
    flush_args(p);
    const ks_toolcall_event ev = {.type = type, .id = p->id, .name = p->tool->name, .call = call};
    deliver(p, &ev);
}

/* ---- the tools table ----------------------------------------------------------------- */

/* The schema type that decides a property's kind: "type" as a string, or the first
 * non-"null" entry of a "type" list, or that of the first anyOf/oneOf alternative that
 * has one. NULL if none. */
static const char *schema_type(const json_t *s, int depth) {
    if (!json_is_object(s))
        return NULL;
    const json_t *t = json_object_get(s, "type");
    if (json_is_string(t) && strcmp(json_string_value(t), "null") != 0)
        return json_string_value(t);
    if (json_is_array(t)) {
        for (size_t i = 0; i < json_array_size(t); i++) {
            const json_t *e = json_array_get(t, i);
            if (json_is_string(e) && strcmp(json_string_value(e), "null") != 0)
                return json_string_value(e);
        }
    }
    if (depth > 0)
        return NULL; /* alternatives one level deep: what schemas for tools use */
    static const char *const k_alts[] = {"anyOf", "oneOf"};
    for (size_t a = 0; a < KS_ARRAY_LEN(k_alts); a++) {
        const json_t *alts = json_object_get(s, k_alts[a]);
        for (size_t i = 0; i < json_array_size(alts); i++) {
            const char *name = schema_type(json_array_get(alts, i), depth + 1);
            if (name)
                return name;
        }
    }
    return NULL;
}

static tc_kind kind_of(const json_t *schema) {
    static const struct {
        const char *type;
        tc_kind kind;
    } k_kinds[] = {{"integer", TC_INTEGER}, {"number", TC_NUMBER}, {"boolean", TC_BOOLEAN},
                   {"object", TC_OBJECT},   {"array", TC_ARRAY}};
    const char *type = schema_type(schema, 0);
    for (size_t i = 0; type && i < KS_ARRAY_LEN(k_kinds); i++)
        if (strcmp(type, k_kinds[i].type) == 0)
            return k_kinds[i].kind;
    return TC_STRING;
}

const tc_tool *ks_tc_find_tool(const ks_toolcall_parser *p, const char *name, size_t len) {
    for (size_t i = 0; i < p->n_tools; i++)
        if (p->tools[i].name_len == len && memcmp(p->tools[i].name, name, len) == 0)
            return &p->tools[i];
    return NULL;
}

static char *dup_bytes(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* One declaration into p->tools[p->n_tools]; skipped (KS_OK) if it has no name. */
static ks_status add_tool(ks_toolcall_parser *p, const json_t *decl) {
    const json_t *fn = json_object_get(decl, "function");
    if (json_is_object(fn))
        decl = fn;
    const json_t *name = json_object_get(decl, "name");
    if (!json_is_string(name))
        return KS_OK;
    const size_t name_len = json_string_length(name);
    if (ks_tc_find_tool(p, json_string_value(name), name_len))
        return KS_OK;
    const json_t *schema = json_object_get(decl, "input_schema");
    if (!schema)
        schema = json_object_get(decl, "parameters");
    const json_t *props = json_object_get(schema, "properties");

    tc_tool *t = &p->tools[p->n_tools];
    t->name = dup_bytes(json_string_value(name), name_len);
    t->name_len = name_len;
    if (!t->name)
        return KS_ERR_NOMEM;
    p->n_tools++; /* from here on destroy frees it */
    const size_t n_props = json_is_object(props) ? json_object_size(props) : 0;
    if (n_props == 0)
        return KS_OK;
    t->props = calloc(n_props, sizeof *t->props);
    if (!t->props)
        return KS_ERR_NOMEM;
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)props, key, value) {
        tc_prop *pr = &t->props[t->n_props];
        pr->key_len = strlen(key);
        pr->key = dup_bytes(key, pr->key_len);
        if (!pr->key)
            return KS_ERR_NOMEM;
        pr->kind = kind_of(value);
        t->n_props++;
    }
    return KS_OK;
}

/* ---- ids ---------------------------------------------------------------------------- */

static void draw_id(ks_toolcall_parser *p) {
    static const char k_base62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    const size_t prefix = sizeof KS_TOOLCALL_ID_PREFIX - 1;
    memcpy(p->id, KS_TOOLCALL_ID_PREFIX, prefix);
    uint64_t bits = 0;
    int n_bits = 0;
    for (size_t i = 0; i < KS_TOOLCALL_ID_CHARS;) {
        if (n_bits < 6) {
            bits = ks_rng_next_u64(&p->id_rng);
            n_bits = 64;
        }
        const unsigned v = (unsigned)(bits & 63);
        bits >>= 6;
        n_bits -= 6;
        if (v < 62) /* rejection keeps the characters uniform */
            p->id[prefix + i++] = k_base62[v];
    }
    p->id[KS_TOOLCALL_ID_BYTES] = '\0';
}

/* ---- tags --------------------------------------------------------------------------- */

int ks_tc_tag_step(ks_toolcall_parser *p, uint8_t c, const char *const *cands, int n_cands) {
    if (p->tag_len == 0)
        p->tag_start = p->raw.len - 1;
    const char *seen = p->raw.data + p->tag_start; /* tag_len bytes matched, then c */
    bool more = false;
    for (int i = 0; i < n_cands; i++) {
        const char *cand = cands[i];
        if (strlen(cand) <= p->tag_len || memcmp(cand, seen, p->tag_len) != 0 ||
            (uint8_t)cand[p->tag_len] != c)
            continue;
        if (cand[p->tag_len + 1] == '\0') {
            p->tag_len++;
            return i;
        }
        more = true;
    }
    if (!more)
        return -2;
    p->tag_len++;
    return -1;
}

void ks_tc_tag_clear(ks_toolcall_parser *p) {
    p->tag_start = TC_NO_TAG;
    p->tag_len = 0;
}

/* ---- calls -------------------------------------------------------------------------- */

/* Back to text: no call in progress. */
static void leave_call(ks_toolcall_parser *p) {
    p->in_call = false;
    p->started = false;
    p->tool = NULL;
    p->raw.len = 0;
    p->args.len = 0;
    p->args_emitted = 0;
    ks_tc_tag_clear(p);
}

/* "<tool_call>" was read. */
static void begin_call(ks_toolcall_parser *p) {
    leave_call(p);
    p->in_call = true;
    ks_tc_put(p, &p->raw, k_open_tag, OPEN_TAG_BYTES);
    if (p->format == KS_TOOLCALL_HERMES)
        ks_tc_hermes_begin(p);
    else
        ks_tc_xml_begin(p);
}

void ks_tc_call_start(ks_toolcall_parser *p, const tc_tool *tool) {
    p->tool = tool;
    draw_id(p);
    emit_call_event(p, KS_TOOLCALL_START, NULL);
    p->started = true; /* only now: arguments read before the name follow the START */
}

void ks_tc_call_fail(ks_toolcall_parser *p, size_t restart) {
    if (p->started)
        emit_call_event(p, KS_TOOLCALL_ABORT, NULL);
    ks_tc_put(p, &p->text, p->raw.data, restart);
    /* replay := raw[restart, end) ++ what was still to be replayed */
    p->scratch.len = 0;
    ks_tc_put(p, &p->scratch, p->raw.data + restart, p->raw.len - restart);
    if (p->replay_pos < p->replay.len) /* (replay.data may still be NULL otherwise) */
        ks_tc_put(p, &p->scratch, p->replay.data + p->replay_pos,
                         p->replay.len - p->replay_pos);
    const ks_chat_buf swap = p->replay;
    p->replay = p->scratch;
    p->scratch = swap;
    p->replay_pos = 0;
    leave_call(p);
}

void ks_tc_call_fail_here(ks_toolcall_parser *p) {
    ks_tc_call_fail(p, p->tag_start != TC_NO_TAG ? p->tag_start : p->raw.len - 1);
}

static tc_call *record_call(ks_toolcall_parser *p, json_t *input) {
    if (p->n_calls == p->cap_calls) {
        const size_t cap = p->cap_calls ? 2 * p->cap_calls : 4;
        tc_call **calls = realloc(p->calls, cap * sizeof *calls);
        if (!calls)
            return NULL;
        p->calls = calls;
        p->cap_calls = cap;
    }
    const size_t id_len = KS_TOOLCALL_ID_BYTES, name_len = p->tool->name_len;
    tc_call *c = calloc(1, sizeof *c);
    char *s = malloc(id_len + name_len + p->args.len + p->raw.len + 4);
    if (!c || !s) {
        free(c);
        free(s);
        return NULL;
    }
    c->strings = s;
    c->input = input;
    c->pub.id = memcpy(s, p->id, id_len + 1);
    s += id_len + 1;
    c->pub.name = memcpy(s, p->tool->name, name_len + 1);
    s += name_len + 1;
    c->pub.args = memcpy(s, p->args.data, p->args.len);
    c->pub.args_len = p->args.len;
    s[p->args.len] = '\0';
    s += p->args.len + 1;
    c->pub.raw = memcpy(s, p->raw.data, p->raw.len);
    c->pub.raw_len = p->raw.len;
    s[p->raw.len] = '\0';
    c->pub.input = input;
    p->calls[p->n_calls++] = c;
    return c;
}

void ks_tc_call_end(ks_toolcall_parser *p) {
    json_error_t jerr;
    json_t *input = p->args.len ? json_loadb(p->args.data, p->args.len, JSON_REJECT_DUPLICATES, &jerr)
                                : NULL;
    if (!json_is_object(input)) {
        /* jansson's limits beyond the grammar: integer range, U+0000, lone surrogates,
         * duplicate keys. */
        json_decref(input);
        ks_tc_call_fail(p, p->raw.len);
        return;
    }
    if (p->status != KS_OK) {
        json_decref(input);
        return;
    }
    tc_call *c = record_call(p, input);
    if (!c) {
        json_decref(input);
        p->status = KS_ERR_NOMEM;
        return;
    }
    emit_call_event(p, KS_TOOLCALL_END, &c->pub);
    leave_call(p);
}

/* ---- feeding ------------------------------------------------------------------------ */

static void text_step(ks_toolcall_parser *p, uint8_t c) {
    if (c == (uint8_t)k_open_tag[p->open_len]) {
        if (++p->open_len == OPEN_TAG_BYTES) {
            p->open_len = 0;
            begin_call(p);
        }
        return;
    }
    ks_tc_put(p, &p->text, k_open_tag, p->open_len);
    p->open_len = 0;
    if (c == '<')
        p->open_len = 1;
    else
        ks_tc_put(p, &p->text, &c, 1);
}

static void step(ks_toolcall_parser *p, uint8_t c) {
    if (!p->in_call) {
        text_step(p, c);
        return;
    }
    ks_tc_put(p, &p->raw, &c, 1);
    if (p->status != KS_OK)
        return;
    if (p->format == KS_TOOLCALL_HERMES)
        ks_tc_hermes_step(p, c);
    else
        ks_tc_xml_step(p, c);
}

static void drain_replay(ks_toolcall_parser *p) {
    while (p->replay_pos < p->replay.len && p->status == KS_OK)
        step(p, (uint8_t)p->replay.data[p->replay_pos++]);
    p->replay.len = 0;
    p->replay_pos = 0;
}

/* ---- API ---------------------------------------------------------------------------- */

ks_status ks_toolcall_parser_create(ks_toolcall_parser **out, ks_toolcall_format format,
                                    const json_t *tools, uint64_t id_seed,
                                    ks_toolcall_sink sink, void *user, ks_err *err) {
    if (format != KS_TOOLCALL_HERMES && format != KS_TOOLCALL_QWEN3_CODER)
        return KS_ERRF(err, KS_ERR_INVALID, "tool calls: unknown format %d", (int)format);
    if (tools && !json_is_array(tools))
        return KS_ERRF(err, KS_ERR_INVALID, "tool calls: tools must be an array");
    ks_toolcall_parser *p = calloc(1, sizeof *p);
    if (!p)
        return KS_ERRF(err, KS_ERR_NOMEM, "tool calls: out of memory");
    p->format = format;
    p->sink = sink;
    p->user = user;
    ks_rng_seed(&p->id_rng, id_seed);
    ks_tc_tag_clear(p);
    const size_t n = tools ? json_array_size(tools) : 0;
    if (n) {
        p->tools = calloc(n, sizeof *p->tools);
        if (!p->tools)
            goto nomem;
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *decl = json_array_get(tools, i);
        if (json_is_object(decl) && add_tool(p, decl) != KS_OK)
            goto nomem;
    }
    *out = p;
    return KS_OK;

nomem:
    ks_toolcall_parser_destroy(p);
    return KS_ERRF(err, KS_ERR_NOMEM, "tool calls: out of memory for %zu tools", n);
}

void ks_toolcall_parser_destroy(ks_toolcall_parser *p) {
    if (!p)
        return;
    for (size_t i = 0; i < p->n_tools; i++) {
        for (size_t k = 0; k < p->tools[i].n_props; k++)
            free(p->tools[i].props[k].key);
        free(p->tools[i].props);
        free(p->tools[i].name);
    }
    free(p->tools);
    for (size_t i = 0; i < p->n_calls; i++) {
        json_decref(p->calls[i]->input);
        free(p->calls[i]->strings);
        free(p->calls[i]);
    }
    free(p->calls);
    ks_chat_buf_deinit(&p->text);
    ks_chat_buf_deinit(&p->raw);
    ks_chat_buf_deinit(&p->args);
    ks_chat_buf_deinit(&p->replay);
    ks_chat_buf_deinit(&p->scratch);
    ks_chat_buf_deinit(&p->escaped);
    ks_chat_buf_deinit(&p->xml.keys);
    ks_chat_buf_deinit(&p->xml.value);
    free(p);
}

ks_status ks_toolcall_parser_feed(ks_toolcall_parser *p, const void *bytes, size_t n) {
    if (p->status != KS_OK)
        return p->status;
    if (p->finished)
        return KS_ERR_INVALID;
    const uint8_t *b = bytes;
    size_t i = 0;
    while (i < n && p->status == KS_OK) {
        if (!p->in_call && p->open_len == 0) {
            /* Plain text runs up to the next '<' in one go. */
            const uint8_t *lt = memchr(b + i, '<', n - i);
            const size_t run = lt ? (size_t)(lt - (b + i)) : n - i;
            ks_tc_put(p, &p->text, b + i, run);
            i += run;
            if (i == n)
                break;
        }
        step(p, b[i++]);
        drain_replay(p);
    }
    flush_text(p);
    flush_args(p);
    return p->status;
}

ks_status ks_toolcall_parser_finish(ks_toolcall_parser *p) {
    if (p->status != KS_OK || p->finished)
        return p->status;
    p->finished = true;
    if (p->in_call)
        ks_tc_call_fail(p, p->raw.len); /* nothing to read again: all of it is text */
    ks_tc_put(p, &p->text, k_open_tag, p->open_len);
    p->open_len = 0;
    flush_text(p);
    return p->status;
}

size_t ks_toolcall_parser_n_calls(const ks_toolcall_parser *p) {
    return p->n_calls;
}

const ks_toolcall *ks_toolcall_parser_call(const ks_toolcall_parser *p, size_t i) {
    return i < p->n_calls ? &p->calls[i]->pub : NULL;
}
