/* toolcall_json.c — the JSON object checker and the UTF-8 checker (see toolcall_json.h).
 *
 * A pushdown automaton: `state` says what the next byte may be, `stack` which container
 * each open level is. A value that finishes hands over to value_end(), which decides
 * what may follow (a separator or closer, or nothing once the outer object closes) and
 * reports the end of a top-level member's value. Numbers have no closing byte: the byte
 * after one ends it and is then read again as what follows the number. */
#include "chat/toolcall_json.h"

enum {
    S_START,     /* before the object: whitespace, then '{' */
    S_VALUE,     /* a value (after ':' or an array's ',') */
    S_OBJ_FIRST, /* after '{': a key or '}' */
    S_OBJ_KEY,   /* after ',' in an object: a key */
    S_COLON,     /* after a key */
    S_AFTER,     /* after a value inside a container: ',' or its closer */
    S_ARR_FIRST, /* after '[': a value or ']' */
    S_STR,       /* inside a string */
    S_ESC,       /* after a backslash */
    S_HEX,       /* inside \uXXXX */
    S_LIT,       /* inside true / false / null */
    S_NUM_MINUS, /* number: after '-' */
    S_NUM_ZERO,  /* a leading 0 */
    S_NUM_INT,   /* integer digits */
    S_NUM_DOT,   /* after '.' */
    S_NUM_FRAC,  /* fraction digits */
    S_NUM_E,     /* after 'e' or 'E' */
    S_NUM_ESIGN, /* after the exponent's sign */
    S_NUM_EXP,   /* exponent digits */
    S_DONE,      /* the object has closed */
};

bool ks_toolcall_utf8_step(ks_toolcall_utf8 *u, uint8_t c) {
    if (u->left) {
        if (c < u->lo || c > u->hi)
            return false;
        u->left--;
        u->lo = 0x80;
        u->hi = 0xBF;
        return true;
    }
    if (c < 0x80)
        return true;
    /* Lead bytes and the range of the byte after each (table 3-7). */
    u->lo = 0x80;
    u->hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        u->left = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        u->left = 2;
        if (c == 0xE0)
            u->lo = 0xA0; /* no overlongs */
        else if (c == 0xED)
            u->hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        u->left = 3;
        if (c == 0xF0)
            u->lo = 0x90; /* no overlongs */
        else if (c == 0xF4)
            u->hi = 0x8F; /* nothing above U+10FFFF */
    } else {
        return false; /* continuation byte without a lead, C0, C1, F5..FF */
    }
    return true;
}

void ks_toolcall_json_init(ks_toolcall_json *j) {
    j->depth = 0;
    j->state = S_START;
    j->in_key = 0;
    j->lit_pos = 0;
    j->hex_left = 0;
    j->utf8 = (ks_toolcall_utf8){0, 0x80, 0xBF};
    j->lit = NULL;
}

static bool is_ws(uint8_t c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool is_digit(uint8_t c) {
    return c >= '0' && c <= '9';
}

static bool is_hex(uint8_t c) {
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* A value just finished; `bit` says whether its last byte is this one (VALUE_END) or the
 * one before (VALUE_ENDED, numbers). */
static ks_toolcall_json_status value_end(ks_toolcall_json *j, unsigned *member, unsigned bit) {
    if (j->depth == 0) {
        j->state = S_DONE;
        return KS_TOOLCALL_JSON_DONE;
    }
    if (j->depth == 1)
        *member |= bit;
    j->state = S_AFTER;
    return KS_TOOLCALL_JSON_MORE;
}

static bool push(ks_toolcall_json *j, uint8_t open) {
    if (j->depth == KS_TOOLCALL_JSON_MAX_DEPTH)
        return false;
    j->stack[j->depth++] = open;
    return true;
}

/* The first byte of a value (state S_VALUE or S_ARR_FIRST). */
static ks_toolcall_json_status value_begin(ks_toolcall_json *j, uint8_t c, unsigned *member) {
    if (j->depth == 1)
        *member |= KS_TOOLCALL_JSON_VALUE_BEGIN;
    switch (c) {
    case '{':
        if (!push(j, '{'))
            return KS_TOOLCALL_JSON_ERROR;
        j->state = S_OBJ_FIRST;
        return KS_TOOLCALL_JSON_MORE;
    case '[':
        if (!push(j, '['))
            return KS_TOOLCALL_JSON_ERROR;
        j->state = S_ARR_FIRST;
        return KS_TOOLCALL_JSON_MORE;
    case '"':
        j->in_key = 0;
        j->state = S_STR;
        return KS_TOOLCALL_JSON_MORE;
    case '-':
        j->state = S_NUM_MINUS;
        return KS_TOOLCALL_JSON_MORE;
    case '0':
        j->state = S_NUM_ZERO;
        return KS_TOOLCALL_JSON_MORE;
    case 't':
        j->lit = "true";
        break;
    case 'f':
        j->lit = "false";
        break;
    case 'n':
        j->lit = "null";
        break;
    default:
        if (c >= '1' && c <= '9') {
            j->state = S_NUM_INT;
            return KS_TOOLCALL_JSON_MORE;
        }
        return KS_TOOLCALL_JSON_ERROR;
    }
    j->lit_pos = 1;
    j->state = S_LIT;
    return KS_TOOLCALL_JSON_MORE;
}

/* ']' or '}' that must close the innermost container. */
static ks_toolcall_json_status close_container(ks_toolcall_json *j, uint8_t c, unsigned *member) {
    const uint8_t open = c == '}' ? '{' : '[';
    if (j->depth == 0 || j->stack[j->depth - 1] != open)
        return KS_TOOLCALL_JSON_ERROR;
    j->depth--;
    return value_end(j, member, KS_TOOLCALL_JSON_VALUE_END);
}

static ks_toolcall_json_status key_begin(ks_toolcall_json *j, unsigned *member) {
    if (j->depth == 1)
        *member |= KS_TOOLCALL_JSON_KEY_BEGIN;
    j->in_key = 1;
    j->state = S_STR;
    return KS_TOOLCALL_JSON_MORE;
}

/* What may follow a value inside a container. */
static ks_toolcall_json_status after_value(ks_toolcall_json *j, uint8_t c, unsigned *member) {
    if (is_ws(c))
        return KS_TOOLCALL_JSON_MORE;
    if (c == ',') {
        j->state = j->stack[j->depth - 1] == '{' ? S_OBJ_KEY : S_VALUE;
        return KS_TOOLCALL_JSON_MORE;
    }
    if (c == '}' || c == ']')
        return close_container(j, c, member);
    return KS_TOOLCALL_JSON_ERROR;
}

/* A byte that is not part of the number in progress, in a state where the number may
 * end: it ends, and the byte is read as what follows it. */
static ks_toolcall_json_status number_end(ks_toolcall_json *j, uint8_t c, unsigned *member) {
    /* Numbers only occur inside the object, so depth >= 1 and value_end says MORE. */
    value_end(j, member, KS_TOOLCALL_JSON_VALUE_ENDED);
    return after_value(j, c, member);
}

static ks_toolcall_json_status string_byte(ks_toolcall_json *j, uint8_t c, unsigned *member) {
    if (j->utf8.left == 0) {
        if (c == '"') {
            if (!j->in_key)
                return value_end(j, member, KS_TOOLCALL_JSON_VALUE_END);
            if (j->depth == 1)
                *member |= KS_TOOLCALL_JSON_KEY_END;
            j->state = S_COLON;
            return KS_TOOLCALL_JSON_MORE;
        }
        if (c == '\\') {
            j->state = S_ESC;
            return KS_TOOLCALL_JSON_MORE;
        }
        if (c < 0x20)
            return KS_TOOLCALL_JSON_ERROR; /* raw control characters must be escaped */
    }
    return ks_toolcall_utf8_step(&j->utf8, c) ? KS_TOOLCALL_JSON_MORE : KS_TOOLCALL_JSON_ERROR;
}

ks_toolcall_json_status ks_toolcall_json_step(ks_toolcall_json *j, uint8_t c, unsigned *member) {
    *member = 0;
    switch (j->state) {
    case S_START:
        if (is_ws(c))
            return KS_TOOLCALL_JSON_MORE;
        if (c != '{')
            return KS_TOOLCALL_JSON_ERROR;
        push(j, '{');
        j->state = S_OBJ_FIRST;
        return KS_TOOLCALL_JSON_MORE;
    case S_VALUE:
        if (is_ws(c))
            return KS_TOOLCALL_JSON_MORE;
        return value_begin(j, c, member);
    case S_ARR_FIRST:
        if (is_ws(c))
            return KS_TOOLCALL_JSON_MORE;
        if (c == ']')
            return close_container(j, c, member);
        return value_begin(j, c, member);
    case S_OBJ_FIRST:
    case S_OBJ_KEY:
        if (is_ws(c))
            return KS_TOOLCALL_JSON_MORE;
        if (c == '}' && j->state == S_OBJ_FIRST) /* an empty object */
            return close_container(j, c, member);
        return c == '"' ? key_begin(j, member) : KS_TOOLCALL_JSON_ERROR;
    case S_COLON:
        if (is_ws(c))
            return KS_TOOLCALL_JSON_MORE;
        if (c != ':')
            return KS_TOOLCALL_JSON_ERROR;
        j->state = S_VALUE;
        return KS_TOOLCALL_JSON_MORE;
    case S_AFTER:
        return after_value(j, c, member);
    case S_STR:
        return string_byte(j, c, member);
    case S_ESC:
        if (c == 'u') {
            j->hex_left = 4;
            j->state = S_HEX;
            return KS_TOOLCALL_JSON_MORE;
        }
        if (c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' || c == 'r' ||
            c == 't') {
            j->state = S_STR;
            return KS_TOOLCALL_JSON_MORE;
        }
        return KS_TOOLCALL_JSON_ERROR;
    case S_HEX:
        if (!is_hex(c))
            return KS_TOOLCALL_JSON_ERROR;
        if (--j->hex_left == 0)
            j->state = S_STR;
        return KS_TOOLCALL_JSON_MORE;
    case S_LIT:
        if (c != (uint8_t)j->lit[j->lit_pos])
            return KS_TOOLCALL_JSON_ERROR;
        if (j->lit[++j->lit_pos] == '\0')
            return value_end(j, member, KS_TOOLCALL_JSON_VALUE_END);
        return KS_TOOLCALL_JSON_MORE;
    case S_NUM_MINUS:
        if (c == '0')
            j->state = S_NUM_ZERO;
        else if (c >= '1' && c <= '9')
            j->state = S_NUM_INT;
        else
            return KS_TOOLCALL_JSON_ERROR;
        return KS_TOOLCALL_JSON_MORE;
    case S_NUM_ZERO:
    case S_NUM_INT:
        if (is_digit(c) && j->state == S_NUM_INT)
            return KS_TOOLCALL_JSON_MORE;
        if (c == '.') {
            j->state = S_NUM_DOT;
            return KS_TOOLCALL_JSON_MORE;
        }
        if (c == 'e' || c == 'E') {
            j->state = S_NUM_E;
            return KS_TOOLCALL_JSON_MORE;
        }
        return number_end(j, c, member); /* a digit after a leading 0 fails here */
    case S_NUM_DOT:
        if (!is_digit(c))
            return KS_TOOLCALL_JSON_ERROR;
        j->state = S_NUM_FRAC;
        return KS_TOOLCALL_JSON_MORE;
    case S_NUM_FRAC:
        if (is_digit(c))
            return KS_TOOLCALL_JSON_MORE;
        if (c == 'e' || c == 'E') {
            j->state = S_NUM_E;
            return KS_TOOLCALL_JSON_MORE;
        }
        return number_end(j, c, member);
    case S_NUM_E:
    case S_NUM_ESIGN:
        if (j->state == S_NUM_E && (c == '+' || c == '-')) {
            j->state = S_NUM_ESIGN;
            return KS_TOOLCALL_JSON_MORE;
        }
        if (!is_digit(c))
            return KS_TOOLCALL_JSON_ERROR;
        j->state = S_NUM_EXP;
        return KS_TOOLCALL_JSON_MORE;
    case S_NUM_EXP:
        if (is_digit(c))
            return KS_TOOLCALL_JSON_MORE;
        return number_end(j, c, member);
    default:
        return KS_TOOLCALL_JSON_ERROR; /* S_DONE: nothing may follow */
    }
}
