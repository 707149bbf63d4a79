/* toolcall_internal.h — the tool-call parser's state, shared by its files; not an API.
 *
 *   toolcall_parser.c   text scanning, the call being parsed (raw bytes, arguments text,
 *                       tag matching), events, ids, failure and re-reading, the tools table
 *   toolcall_hermes.c   the body of a Hermes call (a JSON object)
 *   toolcall_xml.c      the body of a Qwen3-Coder call (function and parameter tags)
 *
 * A call in progress keeps every byte from its "<tool_call>" in `raw`: if it fails, those
 * bytes become text; if it succeeds, they are the call's sampled text. */
#ifndef KS_TOOLCALL_INTERNAL_H
#define KS_TOOLCALL_INTERNAL_H

#include "chat/chat_text.h"
#include "chat/toolcall_json.h"
#include "chat/toolcall_parser.h"
#include "sample/rng.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TC_OPEN_TAG "<tool_call>"
#define TC_CLOSE_TAG "</tool_call>"
#define TC_NO_TAG SIZE_MAX /* tag_start while no tag is being matched */

/* How a Qwen3-Coder value becomes JSON (from the property's schema type). */
typedef enum tc_kind {
    TC_STRING = 0,
    TC_INTEGER,
    TC_NUMBER,
    TC_BOOLEAN,
    TC_OBJECT,
    TC_ARRAY,
} tc_kind;

typedef struct tc_prop {
    char *key;
    size_t key_len;
    tc_kind kind;
} tc_prop;

typedef struct tc_tool {
    char *name;
    size_t name_len;
    tc_prop *props;
    size_t n_props;
} tc_tool;

/* Hermes: which top-level member the JSON checker is in. */
typedef enum tc_member { TC_MEMBER_OTHER = 0, TC_MEMBER_NAME, TC_MEMBER_ARGS } tc_member;

typedef struct tc_hermes {
    ks_toolcall_json json;
    int state;           /* toolcall_hermes.c */
    tc_member member;    /* member whose key was read last */
    size_t key_start;    /* raw offset of the current key's opening quote */
    size_t value_start;  /* raw offset of the current member value's first byte */
    bool in_args;        /* bytes go to the arguments text */
    bool have_name, have_args;
} tc_hermes;

typedef struct tc_xml {
    int state;           /* toolcall_xml.c */
    size_t capture;      /* raw offset where the function name or parameter key begins */
    tc_kind kind;        /* of the value being read */
    bool value_started;  /* a first byte of the value was seen (leading newline rule) */
    bool nl_held;        /* a '\n' held back: it is dropped if "</parameter>" follows */
    uint32_t close_len;  /* bytes of "</parameter>" matched after the value */
    ks_toolcall_utf8 utf8;
    uint32_t n_params;
    ks_chat_buf keys;    /* keys seen in this call (see seen_key in toolcall_xml.c) */
    ks_chat_buf value;   /* a typed value, until it is complete */
} tc_xml;

/* A completed call: the public record and the storage behind it. */
typedef struct tc_call {
    ks_toolcall pub;
    char *strings; /* id, name, args and raw, each NUL-terminated, one allocation */
    json_t *input;
} tc_call;

struct ks_toolcall_parser {
    ks_toolcall_format format;
    tc_tool *tools;
    size_t n_tools;
    ks_rng id_rng;
    ks_toolcall_sink sink;
    void *user;
    ks_status status; /* sticky: KS_ERR_NOMEM once a buffer could not grow */
    bool finished;

    /* Buffers grow with the model's output (a call is held whole until it ends), so an
     * allocation failure fails the request through `status`, never the process. */

    /* Text: bytes not yet emitted, and how much of "<tool_call>" ends the text so far. */
    ks_chat_buf text;
    uint32_t open_len;

    /* The call in progress. */
    bool in_call;
    bool started;           /* START was emitted */
    const tc_tool *tool;    /* once the name is known */
    char id[KS_TOOLCALL_ID_BYTES + 1];
    ks_chat_buf raw;             /* bytes from "<tool_call>" on */
    ks_chat_buf args;            /* the arguments JSON text so far */
    size_t args_emitted;    /* bytes of args sent in ARGS events */
    size_t tag_start;       /* raw offset of the '<' of the tag being matched, or TC_NO_TAG */
    uint32_t tag_len;       /* bytes of that tag matched */
    tc_hermes hermes;
    tc_xml xml;

    /* Bytes to read again after a failed call (a suffix of it), before further input. */
    ks_chat_buf replay;
    size_t replay_pos;
    ks_chat_buf scratch;
    ks_chat_buf escaped; /* a streamed piece of a string value, as JSON */

    tc_call **calls; /* each allocated alone: records stay put as the array grows */
    size_t n_calls, cap_calls;
};

/* ---- toolcall_parser.c, for the format files (ks_tc_: internal to this module) ------- */

/* Appends to b; a failed allocation sets p->status. */
void ks_tc_put(ks_toolcall_parser *p, ks_chat_buf *b, const void *bytes, size_t n);
void ks_tc_puts(ks_toolcall_parser *p, ks_chat_buf *b, const char *s);
/* Appends the JSON string of [s, s+n), quotes included (quotes = false: without them, for
 * a piece of a string whose quotes are written apart). */
void ks_tc_put_json_string(ks_toolcall_parser *p, ks_chat_buf *b, const char *s, size_t n,
                           bool quotes);

bool ks_tc_is_ws(uint8_t c);
/* The tool named by those bytes, or NULL. */
const tc_tool *ks_tc_find_tool(const ks_toolcall_parser *p, const char *name, size_t len);

/* Tag matching over the current byte (already appended to raw). cands: alternatives,
 * each a literal. Returns the index of the alternative this byte completes, -1 if more
 * bytes are needed, -2 if no alternative matches (the caller fails the call at
 * p->tag_start). Leading whitespace is the caller's business. */
int ks_tc_tag_step(ks_toolcall_parser *p, uint8_t c, const char *const *cands, int n_cands);
void ks_tc_tag_clear(ks_toolcall_parser *p);

/* The name is a tool's: draws the id and emits START. */
void ks_tc_call_start(ks_toolcall_parser *p, const tc_tool *tool);
/* The closing tag was read: checks the arguments and emits END, or fails the call. */
void ks_tc_call_end(ks_toolcall_parser *p);
/* The call is malformed: ABORT if it had started; raw[0, restart) becomes text and
 * raw[restart, end) is read again. */
void ks_tc_call_fail(ks_toolcall_parser *p, size_t restart);
/* The same where the byte just read broke the call: parsing resumes at the tag being
 * matched, or at that byte outside tags. */
void ks_tc_call_fail_here(ks_toolcall_parser *p);

void ks_tc_hermes_begin(ks_toolcall_parser *p);
void ks_tc_hermes_step(ks_toolcall_parser *p, uint8_t c);
void ks_tc_xml_begin(ks_toolcall_parser *p);
void ks_tc_xml_step(ks_toolcall_parser *p, uint8_t c);

#endif
