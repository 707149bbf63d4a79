/* chat_text.c — byte buffer, HF `tojson`, Python str()/repr() of JSON values and Python
 * strip semantics (see chat_text.h for why each exists).
 *
 * Divisions: buffer; UTF-8 helpers and Python whitespace; JSON strings and numbers;
 * Python string repr; tojson and Python repr of values; searching. */
#include "chat/chat_text.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- buffer ---------------------------------------------------------------------------- */

void ks_chat_buf_init(ks_chat_buf *b) {
    memset(b, 0, sizeof *b);
}

static void drop_marks(ks_chat_buf *b) {
    free(b->client);
    free(b->breaks);
    b->client = NULL;
    b->breaks = NULL;
    b->n_client = b->cap_client = b->n_breaks = b->cap_breaks = 0;
}

void ks_chat_buf_deinit(ks_chat_buf *b) {
    if (b) {
        free(b->data);
        drop_marks(b);
        ks_chat_buf_init(b);
    }
}

void ks_chat_buf_append(ks_chat_buf *b, const char *s, size_t len) {
    if (b->failed)
        return;
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256; /* most prompts are kilobytes: start small */
        while (cap < b->len + len + 1) {
            if (cap > SIZE_MAX / 2) {
                b->failed = true;
                return;
            }
            cap *= 2;
        }
        char *p = realloc(b->data, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->data = p;
        b->cap = cap;
    }
    if (len)
        memcpy(b->data + b->len, s, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void ks_chat_buf_puts(ks_chat_buf *b, const char *s) {
    ks_chat_buf_append(b, s, strlen(s));
}

/* Makes room for element n of a mark array: returns the array (moved or not), or NULL
 * with the buffer failed (the old array still valid) when memory runs out. */
static void *mark_grow(ks_chat_buf *b, void *arr, size_t n, size_t *cap, size_t elem) {
    if (n < *cap)
        return arr;
    size_t new_cap = *cap ? *cap * 2 : 16; /* a prompt has a few client ranges per message */
    void *p = realloc(arr, new_cap * elem);
    if (!p) {
        b->failed = true;
        return NULL;
    }
    *cap = new_cap;
    return p;
}

void ks_chat_buf_mark_client(ks_chat_buf *b, size_t start) {
    if (start >= b->len || b->failed)
        return;
    if (b->n_client && start <= b->client[b->n_client - 1].end) { /* touching: one range */
        b->client[b->n_client - 1].end = b->len;
        return;
    }
    ks_span *client = mark_grow(b, b->client, b->n_client, &b->cap_client, sizeof *client);
    if (client) {
        b->client = client;
        client[b->n_client++] = (ks_span){start, b->len};
    }
}

void ks_chat_buf_client(ks_chat_buf *b, const char *s, size_t len) {
    size_t start = b->len;
    ks_chat_buf_append(b, s, len);
    ks_chat_buf_mark_client(b, start);
}

void ks_chat_buf_mark_break(ks_chat_buf *b, size_t at) {
    if (b->failed || (b->n_breaks && b->breaks[b->n_breaks - 1] >= at))
        return;
    size_t *breaks = mark_grow(b, b->breaks, b->n_breaks, &b->cap_breaks, sizeof *breaks);
    if (breaks) {
        b->breaks = breaks;
        breaks[b->n_breaks++] = at;
    }
}

void ks_chat_buf_take_marks(ks_chat_buf *b, ks_span **client, size_t *n_client, size_t **breaks, size_t *n_breaks) {
    *client = b->client;
    *n_client = b->n_client;
    *breaks = b->breaks;
    *n_breaks = b->n_breaks;
    b->client = NULL;
    b->breaks = NULL;
    drop_marks(b);
}

ks_status ks_chat_buf_take(ks_chat_buf *b, char **out, size_t *len) {
    drop_marks(b);
    if (b->failed) {
        ks_chat_buf_deinit(b);
        return KS_ERR_NOMEM;
    }
    if (!b->data) {
        b->data = malloc(1);
        if (!b->data)
            return KS_ERR_NOMEM;
        b->data[0] = '\0';
    }
    *out = b->data;
    if (len)
        *len = b->len;
    ks_chat_buf_init(b);
    return KS_OK;
}

/* ---- UTF-8 and Python whitespace ------------------------------------------------------- */

/* Decodes the code point at s[0..n) (n >= 1); *adv gets its byte length. Invalid bytes
 * decode as themselves (one byte): they are never whitespace, which is all callers ask. */
static unsigned utf8_at(const unsigned char *s, size_t n, size_t *adv) {
    unsigned c = s[0];
    size_t need = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : (c & 0xF8) == 0xF0 ? 3 : 0;
    if (c >= 0x80 && need == 0) {
        *adv = 1;
        return 0xFFFD;
    }
    if (need >= n) {
        *adv = 1;
        return 0xFFFD;
    }
    unsigned cp = need == 0 ? c : need == 1 ? (c & 0x1F) : need == 2 ? (c & 0x0F) : (c & 0x07);
    for (size_t i = 1; i <= need; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *adv = 1;
            return 0xFFFD;
        }
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    *adv = need + 1;
    return cp;
}

/* Python's str.isspace() for one code point. */
static bool py_isspace(unsigned c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

static bool strip_this(unsigned c, const char *chars) {
    if (!chars)
        return py_isspace(c);
    return c < 0x80 && c != 0 && strchr(chars, (int)c) != NULL;
}

void ks_chat_strip(const char *s, size_t len, const char *chars, bool left, bool right,
                   size_t *start, size_t *n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t a = 0, z = len, adv;
    while (left && a < z) {
        unsigned c = utf8_at(u + a, z - a, &adv);
        if (!strip_this(c, chars))
            break;
        a += adv;
    }
    while (right && z > a) {
        size_t b = z - 1;
        /* back up to the lead byte of the last code point (at most 3 continuation bytes) */
        while (b > a && z - b < 4 && (u[b] & 0xC0) == 0x80)
            b--;
        unsigned c = utf8_at(u + b, z - b, &adv);
        if (b + adv != z) /* not one well-formed code point: stop */
            break;
        if (!strip_this(c, chars))
            break;
        z = b;
    }
    *start = a;
    *n = z - a;
}

/* ---- JSON strings and numbers ---------------------------------------------------------- */

/* json.dumps(ensure_ascii=False) string: quotes, backslash and the C0 controls escaped
 * (named escapes where JSON has them, \u00xx in lowercase hex otherwise); everything
 * else, non-ASCII included, copied through. */
void ks_chat_json_string(ks_chat_buf *b, const char *s, size_t len) {
    ks_chat_buf_append(b, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char hex[8];
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        default:
            if (c < 0x20) {
                snprintf(hex, sizeof hex, "\\u%04x", c);
                esc = hex;
            }
        }
        if (!esc)
            continue;
        ks_chat_buf_append(b, s + run, i - run);
        ks_chat_buf_puts(b, esc);
        run = i + 1;
    }
    ks_chat_buf_append(b, s + run, len - run);
    ks_chat_buf_append(b, "\"", 1);
}

void ks_chat_pyfloat(ks_chat_buf *b, double d) {
    if (isnan(d)) {
        ks_chat_buf_puts(b, "NaN"); /* json.dumps' spelling; JSON input never has one */
        return;
    }
    if (isinf(d)) {
        ks_chat_buf_puts(b, d < 0 ? "-Infinity" : "Infinity");
        return;
    }
    if (d == 0) {
        ks_chat_buf_puts(b, signbit(d) ? "-0.0" : "0.0");
        return;
    }
    /* Shortest digit string that reads back as d: the fewest significant digits p for
     * which the correctly rounded %.{p-1}e round-trips (17 always does for a double). */
    char e[40];
    for (int p = 1; p <= 17; p++) {
        snprintf(e, sizeof e, "%.*e", p - 1, d);
        if (strtod(e, NULL) == d)
            break;
    }
    /* e = [-]D[.DDD]e(+|-)XX: collect the digits and the decimal exponent. */
    char digits[24];
    int nd = 0;
    const char *q = e;
    bool neg = *q == '-';
    if (neg)
        q++;
    for (; *q && *q != 'e'; q++)
        if (*q >= '0' && *q <= '9' && nd < (int)sizeof digits - 1)
            digits[nd++] = *q;
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    digits[nd] = '\0';
    int decpt = atoi(q + 1) + 1; /* value = 0.DIGITS x 10^decpt */

    /* repr() uses positional notation for 1e-4 <= |d| < 1e16, scientific otherwise. */
    char out[64];
    size_t o = 0;
    if (neg)
        out[o++] = '-';
    if (decpt > -4 && decpt <= 16) {
        if (decpt <= 0) {
            out[o++] = '0';
            out[o++] = '.';
            for (int i = 0; i < -decpt; i++)
                out[o++] = '0';
            for (int i = 0; i < nd; i++)
                out[o++] = digits[i];
        } else {
            for (int i = 0; i < decpt; i++)
                out[o++] = i < nd ? digits[i] : '0';
            out[o++] = '.';
            if (decpt >= nd)
                out[o++] = '0';
            for (int i = decpt; i < nd; i++)
                out[o++] = digits[i];
        }
        out[o] = '\0';
    } else {
        out[o++] = digits[0];
        if (nd > 1) {
            out[o++] = '.';
            for (int i = 1; i < nd; i++)
                out[o++] = digits[i];
        }
        int x = decpt - 1;
        snprintf(out + o, sizeof out - o, "e%c%02d", x < 0 ? '-' : '+', x < 0 ? -x : x);
    }
    ks_chat_buf_puts(b, out);
}

static void put_integer(ks_chat_buf *b, const json_t *v) {
    char num[32];
    snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    ks_chat_buf_puts(b, num);
}

/* ---- Python string repr ---------------------------------------------------------------- */

/* Characters Python's repr() escapes beyond ASCII (see the header for the gap). */
static bool py_unprintable(unsigned c) {
    /* controls, spaces other than ' ', format characters (Cf), surrogates, private use */
    static const unsigned ranges[][2] = {
        {0x00, 0x1F}, {0x7F, 0xA0}, {0xAD, 0xAD}, {0x600, 0x605}, {0x61C, 0x61C},
        {0x6DD, 0x6DD}, {0x70F, 0x70F}, {0x890, 0x891}, {0x8E2, 0x8E2}, {0x1680, 0x1680},
        {0x180E, 0x180E}, {0x2000, 0x200F}, {0x2028, 0x202F}, {0x205F, 0x206F},
        {0x3000, 0x3000}, {0xD800, 0xF8FF}, {0xFEFF, 0xFEFF}, {0xFFF9, 0xFFFB},
        {0x110BD, 0x110BD}, {0x110CD, 0x110CD}, {0x13430, 0x1343F}, {0x1BCA0, 0x1BCA3},
        {0x1D173, 0x1D17A}, {0xE0001, 0xE0001}, {0xE0020, 0xE007F}, {0xF0000, 0x10FFFF},
    };
    for (size_t i = 0; i < KS_ARRAY_LEN(ranges); i++)
        if (c >= ranges[i][0] && c <= ranges[i][1])
            return true;
    return false;
}

/* repr(str): single quotes unless the text has ' and no ". */
static void py_repr_string(ks_chat_buf *b, const char *s, size_t len) {
    bool sq = memchr(s, '\'', len) != NULL, dq = memchr(s, '"', len) != NULL;
    char quote = sq && !dq ? '"' : '\'';
    ks_chat_buf_append(b, &quote, 1);
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, adv;
    while (i < len) {
        unsigned c = utf8_at(u + i, len - i, &adv);
        char esc[16];
        esc[0] = '\0';
        if (c == '\\' || c == (unsigned)quote)
            snprintf(esc, sizeof esc, "\\%c", (char)c);
        else if (c == '\n')
            strcpy(esc, "\\n");
        else if (c == '\r')
            strcpy(esc, "\\r");
        else if (c == '\t')
            strcpy(esc, "\\t");
        else if (py_unprintable(c))
            snprintf(esc, sizeof esc, c < 0x100 ? "\\x%02x" : "\\u%04x", c);
        if (esc[0])
            ks_chat_buf_puts(b, esc);
        else
            ks_chat_buf_append(b, s + i, adv);
        i += adv;
    }
    ks_chat_buf_append(b, &quote, 1);
}

/* ---- tojson and Python repr ------------------------------------------------------------
 * One walk over the value, two spellings: JSON (json.dumps) and Python literals (repr).
 * Both use ", " and ": " and keep keys in insertion order (jansson iterates objects in
 * insertion order, as Python dicts do). */

typedef enum { SPELL_JSON, SPELL_PYTHON } spelling;

static void write_string(ks_chat_buf *b, const char *s, size_t len, spelling sp) {
    if (sp == SPELL_JSON)
        ks_chat_json_string(b, s, len);
    else
        py_repr_string(b, s, len);
}

static void write_value(ks_chat_buf *b, const json_t *v, spelling sp) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        ks_chat_buf_append(b, "{", 1);
        const char *key;
        json_t *val;
        bool first = true;
        json_object_foreach((json_t *)v, key, val) {
            if (!first)
                ks_chat_buf_append(b, ", ", 2);
            first = false;
            write_string(b, key, strlen(key), sp);
            ks_chat_buf_append(b, ": ", 2);
            write_value(b, val, sp);
        }
        ks_chat_buf_append(b, "}", 1);
        break;
    }
    case JSON_ARRAY:
        ks_chat_buf_append(b, "[", 1);
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i)
                ks_chat_buf_append(b, ", ", 2);
            write_value(b, json_array_get(v, i), sp);
        }
        ks_chat_buf_append(b, "]", 1);
        break;
    case JSON_STRING: write_string(b, json_string_value(v), json_string_length(v), sp); break;
    case JSON_INTEGER: put_integer(b, v); break;
    case JSON_REAL: ks_chat_pyfloat(b, json_real_value(v)); break;
    case JSON_TRUE: ks_chat_buf_puts(b, sp == SPELL_JSON ? "true" : "True"); break;
    case JSON_FALSE: ks_chat_buf_puts(b, sp == SPELL_JSON ? "false" : "False"); break;
    case JSON_NULL: ks_chat_buf_puts(b, sp == SPELL_JSON ? "null" : "None"); break;
    }
}

void ks_chat_tojson(ks_chat_buf *b, const json_t *v) {
    write_value(b, v, SPELL_JSON);
}

void ks_chat_pystr(ks_chat_buf *b, const json_t *v) {
    if (json_is_string(v)) /* str() of a string is the string itself */
        ks_chat_buf_append(b, json_string_value(v), json_string_length(v));
    else
        write_value(b, v, SPELL_PYTHON);
}

/* ---- searching ------------------------------------------------------------------------- */

long ks_chat_find(const char *s, size_t len, const char *needle) {
    size_t n = strlen(needle);
    if (n > len)
        return -1;
    for (size_t i = 0; i + n <= len; i++)
        if (!memcmp(s + i, needle, n))
            return (long)i;
    return -1;
}

long ks_chat_rfind(const char *s, size_t len, const char *needle) {
    size_t n = strlen(needle);
    if (n > len)
        return -1;
    for (size_t i = len - n + 1; i-- > 0;)
        if (!memcmp(s + i, needle, n))
            return (long)i;
    return -1;
}
