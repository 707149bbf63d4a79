/* toolcall_json.h — a byte-at-a-time checker for one JSON object (the Hermes call body).
 *
 * Owns: deciding, one byte at a time and without keeping the text, whether the bytes
 * fed so far can still be the start of an RFC 8259 object, where it ends, and where the
 * keys and values of its top-level members begin and end (so the Hermes parser can pick
 * out "name" and stream "arguments" while they arrive).
 * Does not own: the text (the caller keeps it if it wants it), decoding strings or
 * numbers (jansson does that on the finished spans), limits jansson has and the grammar
 * does not (integer range, duplicate keys, U+0000 and lone surrogates in escapes).
 *
 * Strict: the text must start (after whitespace) with '{'; strings must be valid UTF-8
 * without raw control characters; nesting deeper than KS_TOOLCALL_JSON_MAX_DEPTH is an
 * error. Bytes after the object's closing '}' are the caller's: feeding them is an error. */
#ifndef KS_TOOLCALL_JSON_H
#define KS_TOOLCALL_JSON_H

#include "chat/toolcall_parser.h"

#include <stdint.h>

typedef enum ks_toolcall_json_status {
    KS_TOOLCALL_JSON_MORE = 0,  /* fine so far, the object is not finished */
    KS_TOOLCALL_JSON_DONE = 1,  /* this byte closed the object */
    KS_TOOLCALL_JSON_ERROR = 2, /* this byte cannot continue a JSON object */
} ks_toolcall_json_status;

/* What a byte did to the top-level object's members (bits of *member in _step). */
enum {
    KS_TOOLCALL_JSON_KEY_BEGIN = 1u << 0,    /* this byte opens a member's key string */
    KS_TOOLCALL_JSON_KEY_END = 1u << 1,      /* this byte closes it */
    KS_TOOLCALL_JSON_VALUE_BEGIN = 1u << 2,  /* this byte is the first of a member's value */
    KS_TOOLCALL_JSON_VALUE_END = 1u << 3,    /* this byte is the last of it */
    KS_TOOLCALL_JSON_VALUE_ENDED = 1u << 4,  /* a number value ended just before this byte */
};

/* A well-formed UTF-8 checker (Unicode 15, table 3-7: no overlongs, no surrogates, at most
 * U+10FFFF), byte at a time, shared with the Qwen3-Coder value reader. */
typedef struct ks_toolcall_utf8 {
    uint8_t left; /* continuation bytes still expected */
    uint8_t lo;   /* range of the next one */
    uint8_t hi;
} ks_toolcall_utf8;

/* false if c cannot continue well-formed UTF-8 after the bytes fed before it. */
bool ks_toolcall_utf8_step(ks_toolcall_utf8 *u, uint8_t c);

typedef struct ks_toolcall_json {
    uint32_t depth;     /* open objects and arrays */
    uint8_t state;      /* what the next byte may be (see toolcall_json.c) */
    uint8_t in_key;     /* the string being read is an object key */
    uint8_t lit_pos;    /* bytes of a true/false/null literal matched */
    uint8_t hex_left;   /* hex digits of a \uXXXX escape still expected */
    ks_toolcall_utf8 utf8; /* inside strings */
    const char *lit;    /* the literal being matched */
    uint8_t stack[KS_TOOLCALL_JSON_MAX_DEPTH]; /* '{' or '[' per open container */
} ks_toolcall_json;

void ks_toolcall_json_init(ks_toolcall_json *j);

/* Feeds one byte. *member gets the KS_TOOLCALL_JSON_* bits for this byte (0 if none).
 * After ERROR or DONE the checker must be initialised again before more bytes. */
ks_toolcall_json_status ks_toolcall_json_step(ks_toolcall_json *j, uint8_t c, unsigned *member);

#endif
