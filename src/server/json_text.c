/* json_text.c — see json_text.h. */
#include "server/json_text.h"

#include "core/strbuf.h"

/* Length of the valid UTF-8 character at s (n bytes left), 0 if invalid. */
static size_t utf8_char(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) len = 2;
    else if (c == 0xe0) { len = 3; lo = 0xa0; }
    else if (c >= 0xe1 && c <= 0xec) len = 3;
    else if (c == 0xed) { len = 3; hi = 0x9f; }
    else if (c >= 0xee && c <= 0xef) len = 3;
    else if (c == 0xf0) { len = 4; lo = 0x90; }
    else if (c >= 0xf1 && c <= 0xf3) len = 4;
    else if (c == 0xf4) { len = 4; hi = 0x8f; }
    else return 0;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return len;
}

json_t *ks_json_text(const char *text, size_t len) {
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0;
    while (i < len) {
        size_t k = utf8_char(s + i, len - i);
        if (k == 0 || (k == 1 && s[i] == 0))
            break;
        i += k;
    }
    if (i == len)
        return json_stringn_nocheck(text, len);
    ks_strbuf b;
    ks_strbuf_init(&b);
    ks_strbuf_append(&b, text, i);
    while (i < len) {
        size_t k = utf8_char(s + i, len - i);
        if (k == 0) {
            ks_strbuf_append(&b, "\xef\xbf\xbd", 3);
            i++;
        } else {
            ks_strbuf_append(&b, s + i, k);
            i += k;
        }
    }
    json_t *j = json_stringn_nocheck(b.data, b.len);
    ks_strbuf_free(&b);
    return j;
}
