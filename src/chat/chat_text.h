/* chat_text.h — the output buffer of the renderers and the few pieces of Python and
 * Jinja2 string semantics that chat templates lean on, reproduced byte for byte.
 *
 * Owns: ks_chat_buf (a growable byte string with a sticky allocation failure, and the
 * marks a renderer leaves on it: which bytes came from the client, where the client's
 * cache breakpoints fall), JSON
 * serialisation as Hugging Face's `tojson` does it (json.dumps with ensure_ascii=False,
 * separators ", " and ": ", keys in insertion order), Python's str() of a JSON value
 * (what Jinja's `| string` and `~` print: True, None, 1e-05, {'k': [1, 2]}), and
 * Python's str.strip()/lstrip()/rstrip() (Jinja's `trim` strips Unicode whitespace).
 * Does not own: any template's structure (render_*.c).
 *
 * Known gap: Python's repr of a string escapes the characters Unicode calls
 * non-printable. We escape the controls, separators, format characters and private use
 * (Unicode 15's list), but not unassigned code points, which Python also escapes. Only
 * strings inside a list or object printed with `| string` (a schema `type` given as a
 * list) take that path. */
#ifndef KS_CHAT_TEXT_H
#define KS_CHAT_TEXT_H

#include "core/status.h"
#include "tokenizer/span.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct ks_chat_buf {
    char *data; /* NUL-terminated when len > 0 or after ks_chat_buf_take */
    size_t len; /* bytes */
    size_t cap;
    bool failed; /* an append (or a mark) could not allocate; the content is then incomplete */
    /* Marks, in byte offsets of data. Client text: ascending, disjoint, never empty,
     * touching ranges merged. Breakpoints: ascending, distinct. */
    ks_span *client;
    size_t n_client, cap_client;
    size_t *breaks;
    size_t n_breaks, cap_breaks;
} ks_chat_buf;

void ks_chat_buf_init(ks_chat_buf *b);
void ks_chat_buf_deinit(ks_chat_buf *b); /* frees bytes and marks */
void ks_chat_buf_append(ks_chat_buf *b, const char *s, size_t len);
void ks_chat_buf_puts(ks_chat_buf *b, const char *s);
/* Appends bytes that came from the client and marks them as client text. */
void ks_chat_buf_client(ks_chat_buf *b, const char *s, size_t len);
/* Marks [start, b->len) as client text: for a client value written by several appends
 * (its tojson, its Python str()). start must not precede an earlier mark's end. */
void ks_chat_buf_mark_client(ks_chat_buf *b, size_t start);
/* Records a cache breakpoint at byte offset at (no earlier than the last one recorded;
 * the same offset twice is recorded once). */
void ks_chat_buf_mark_break(ks_chat_buf *b, size_t at);
/* Hands the marks over (malloc'd arrays, NULL when there are none; caller frees) and
 * leaves the buffer without marks. */
void ks_chat_buf_take_marks(ks_chat_buf *b, ks_span **client, size_t *n_client, size_t **breaks, size_t *n_breaks);
/* Hands the bytes over (malloc'd, NUL-terminated, *len bytes) and resets the buffer
 * (marks not taken are freed); NULL with KS_ERR_NOMEM if any append failed. */
ks_status ks_chat_buf_take(ks_chat_buf *b, char **out, size_t *len);

/* Appends json.dumps(v, ensure_ascii=False) with default separators: the bytes HF's
 * `tojson` filter writes. */
void ks_chat_tojson(ks_chat_buf *b, const json_t *v);
/* Appends the tojson form of the string [s, s+len). */
void ks_chat_json_string(ks_chat_buf *b, const char *s, size_t len);
/* Appends Python's str(v): strings verbatim, integers, floats as repr(), true/false/null
 * as True/False/None, arrays and objects as Python reprs. */
void ks_chat_pystr(ks_chat_buf *b, const json_t *v);
/* Appends Python's repr(float). */
void ks_chat_pyfloat(ks_chat_buf *b, double d);

/* Python whitespace (str.isspace) strip of [s, s+len): returns the kept range through
 * *start / *n. chars == NULL strips Unicode whitespace, else any of the ASCII bytes in
 * chars (Python's strip('\n')). */
void ks_chat_strip(const char *s, size_t len, const char *chars, bool left, bool right,
                   size_t *start, size_t *n);

/* Byte offset of the first / last occurrence of needle in [s, s+len), or -1. */
long ks_chat_find(const char *s, size_t len, const char *needle);
long ks_chat_rfind(const char *s, size_t len, const char *needle);

#endif
