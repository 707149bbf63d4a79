/* toolcall_parser.h — tool calls in streamed model output.
 *
 * Owns: recognising the model's tool-call blocks in its output text as that text arrives
 * in pieces, typing Qwen3-Coder parameter values from the tools' JSON schemas, call ids,
 * and the record of each complete call (id, name, arguments JSON, the exact sampled text).
 * Does not own: <think> reasoning (split off before this parser sees the text), the API
 * events built from ours (server/), detokenization, what a call's bytes look like when a
 * conversation is rendered back (chat formats, toolcall_memory.h).
 *
 * Two formats, as the models' chat templates declare them:
 *
 *   KS_TOOLCALL_HERMES (Qwen2.5, Qwen3):
 *     <tool_call>\n{"name": "NAME", "arguments": {...}}\n</tool_call>
 *   KS_TOOLCALL_QWEN3_CODER:
 *     <tool_call>\n<function=NAME>\n<parameter=KEY>\nVALUE\n</parameter>\n...</function>\n</tool_call>
 *
 * Output is a sequence of text and calls, possibly several calls, with text before,
 * between and after them. A call is well formed when:
 *   - its tool name is one of the request's tools (exact bytes);
 *   - Hermes: one JSON object (RFC 8259, nesting at most KS_TOOLCALL_JSON_MAX_DEPTH)
 *     with a string "name" and an object "arguments" (other members are ignored), only
 *     whitespace around it inside the tags;
 *   - Qwen3-Coder: <function=NAME>, then any number of <parameter=KEY>VALUE</parameter>
 *     with distinct keys, then </function>; only whitespace between those tags. A value
 *     is every byte up to the first "</parameter>", less one leading and one trailing
 *     newline (the ones the format puts around it); it must be valid UTF-8;
 *   - its arguments text parses with jansson as an object without duplicate keys.
 * Whitespace is space, tab, CR and LF.
 *
 * Qwen3-Coder values are typed by the tool's schema (properties.KEY.type; a list of types
 * or an anyOf/oneOf list counts as its first type other than "null"):
 *   string, unknown key, other types   the value as a JSON string, byte for byte
 *   integer                            JSON integer text that fits int64, as written
 *   number                             JSON number text (integer or real), as written
 *   boolean                            true / false, any letter case
 *   object / array                     JSON text of that kind (no duplicate keys), as written
 * Around a typed value whitespace is ignored, and "null" (any case) is JSON null. A typed
 * value that does not read as its type is kept: it becomes the JSON string of the value,
 * so nothing the model wrote is lost (the tool sees exactly what was sampled).
 *
 * Anything else stays text, byte for byte: an unknown tool name, broken JSON, a missing
 * or misspelt tag, a call still open when the output ends, a tag inside a tag. Parsing
 * resumes at the start of the tag in which the call broke (or at the byte that broke it,
 * outside tags), so "<tool_call>\n<tool_call>\n<function=..." is text followed by a call.
 * Nothing is dropped: the text events and the raw text of the complete calls, in order,
 * are exactly the bytes fed.
 *
 * Streaming. Every answer depends only on the bytes fed so far, never on how they were
 * split: feeding a text whole, in pieces or byte by byte gives the same events, except
 * that consecutive TEXT events (and consecutive ARGS events of one call) may be cut at
 * other places. Events:
 *
 *   TEXT    text delta, emitted as soon as it cannot be part of a call: only a possible
 *           partial "<tool_call>" is held back, and the bytes of a call in progress
 *   START   a call: id and name, as soon as the name is known and is a tool's name
 *   ARGS    next piece of the call's arguments JSON text (an input_json_delta); the
 *           pieces of one call concatenate to exactly its final arguments text
 *   END     the call is complete and well formed: ev->call holds the record
 *   ABORT   a started call turned out malformed: forget its START and ARGS; its bytes
 *           follow as TEXT (and whatever parsing resumes on)
 *
 * ABORT comes from broken JSON after the name, a malformed parameter, or the output
 * ending inside a call (max_tokens). A consumer that must never show a call that fails
 * later can hold a call's events until its END or ABORT.
 *
 * Whitespace between calls is reported as the TEXT it is (for example the "\n" between
 * "</tool_call>" and the next "<tool_call>"): whether to show whitespace-only text is the
 * API adapter's choice.
 *
 * Arguments text: Hermes arguments are the object exactly as sampled. Qwen3-Coder
 * arguments are built as {"KEY": VALUE, "KEY2": VALUE2} (separators ", " and ": ",
 * strings as the templates' tojson writes them: json.dumps with ensure_ascii=False), keys
 * in the order sampled.
 *
 * Call ids: KS_TOOLCALL_ID_PREFIX then KS_TOOLCALL_ID_CHARS base62 characters drawn from
 * an xoshiro stream seeded with the seed given at create: reproducible for a seed, and
 * as unique across requests as the seeds are. Aborted calls use up an id too.
 *
 * Threads: a parser is used by one thread at a time; parsers share nothing. */
#ifndef KS_TOOLCALL_PARSER_H
#define KS_TOOLCALL_PARSER_H

#include "core/status.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KS_TOOLCALL_ID_PREFIX "toolu_" /* Anthropic's spelling; an OpenAI adapter may prefix */
#define KS_TOOLCALL_ID_CHARS 24        /* as Anthropic's ids: 24 * log2(62) = 142 bits */
#define KS_TOOLCALL_ID_BYTES (sizeof KS_TOOLCALL_ID_PREFIX - 1 + KS_TOOLCALL_ID_CHARS)

/* Anthropic and OpenAI cap tool names at 64 characters; 256 bytes leaves room for any
 * UTF-8 spelling and bounds the text re-read after a <function=...> tag that fails. */
#define KS_TOOLCALL_NAME_MAX_BYTES 256
/* Schema property names are short identifiers; 1 KiB bounds the text re-read after a
 * <parameter=...> tag that fails. */
#define KS_TOOLCALL_KEY_MAX_BYTES 1024
/* Deeper than any real tool input; jansson's own limit (2048) is above it, so every
 * object this parser accepts jansson reads too. */
#define KS_TOOLCALL_JSON_MAX_DEPTH 256

typedef enum ks_toolcall_format {
    KS_TOOLCALL_HERMES = 0,
    KS_TOOLCALL_QWEN3_CODER = 1,
} ks_toolcall_format;

/* One complete, well-formed call. Owned by the parser; valid until its destroy. All
 * strings are NUL-terminated as well as counted. */
typedef struct ks_toolcall {
    const char *id;      /* KS_TOOLCALL_ID_BYTES characters */
    const char *name;    /* the tool's name */
    const char *args;    /* the arguments: JSON text of one object */
    size_t args_len;     /* bytes */
    const char *raw;     /* the sampled text, "<tool_call>" through "</tool_call>" */
    size_t raw_len;      /* bytes */
    const json_t *input; /* args parsed (an object), owned by the parser */
} ks_toolcall;

typedef enum ks_toolcall_event_type {
    KS_TOOLCALL_TEXT = 0,
    KS_TOOLCALL_START = 1,
    KS_TOOLCALL_ARGS = 2,
    KS_TOOLCALL_END = 3,
    KS_TOOLCALL_ABORT = 4,
} ks_toolcall_event_type;

/* Everything points into the parser and is valid only during the callback. */
typedef struct ks_toolcall_event {
    ks_toolcall_event_type type;
    const char *data;         /* TEXT: the text; ARGS: the JSON delta; else NULL */
    size_t len;               /* bytes of data (never 0 for TEXT and ARGS) */
    const char *id;           /* START, ARGS, END, ABORT: the call's id */
    const char *name;         /* START, ARGS, END, ABORT: the tool's name */
    const ks_toolcall *call;  /* END: the complete call (valid until destroy); else NULL */
} ks_toolcall_event;

typedef void (*ks_toolcall_sink)(void *user, const ks_toolcall_event *ev);

typedef struct ks_toolcall_parser ks_toolcall_parser;

/* tools: NULL (no tools: every call is text) or an array of tool declarations in any of
 * the API shapes: {"name", "input_schema"} (Anthropic), {"name", "parameters"}, or
 * {"type": "function", "function": {"name", "parameters"}} (OpenAI). Entries without a
 * string name cannot be called and are skipped; the first of two equal names wins. The
 * parser copies what it needs: tools is not referenced after create. Events go to
 * sink(user, ...) from inside feed and finish. *out is written only on success and owned
 * by the caller. KS_ERR_INVALID names what is wrong; KS_ERR_NOMEM. */
ks_status ks_toolcall_parser_create(ks_toolcall_parser **out, ks_toolcall_format format,
                                    const json_t *tools, uint64_t id_seed,
                                    ks_toolcall_sink sink, void *user, ks_err *err);
void ks_toolcall_parser_destroy(ks_toolcall_parser *p); /* NULL is fine */

/* Feeds the next n bytes of output (n may be 0) and emits the events they complete.
 * KS_ERR_NOMEM if a buffer cannot grow (the output of a call is held until the call
 * ends); KS_ERR_INVALID after finish. After an error the parser only accepts destroy. */
ks_status ks_toolcall_parser_feed(ks_toolcall_parser *p, const void *bytes, size_t n);

/* The output has ended: flushes held text, and a call still open becomes text (after an
 * ABORT if it had started). Calling it again does nothing. */
ks_status ks_toolcall_parser_finish(ks_toolcall_parser *p);

/* The complete calls so far, in output order. */
size_t ks_toolcall_parser_n_calls(const ks_toolcall_parser *p);
const ks_toolcall *ks_toolcall_parser_call(const ks_toolcall_parser *p, size_t i);

#endif
