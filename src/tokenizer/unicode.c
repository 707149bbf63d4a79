/* unicode.c — builds the class table from the generated runs; strict UTF-8 lengths. */
#include "tokenizer/unicode.h"

#include <pthread.h>

uint8_t ks_unicode_table[KS_UNICODE_MAX_CP / 4];

static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void build_table(void) {
    for (size_t r = 0; r < ks_unicode_n_runs; r++) {
        uint32_t end = r + 1 < ks_unicode_n_runs ? ks_unicode_runs[r + 1].first : KS_UNICODE_MAX_CP;
        uint8_t cls = ks_unicode_runs[r].cls;
        if (cls == KS_UC_OTHER)
            continue; /* the table starts zeroed */
        for (uint32_t cp = ks_unicode_runs[r].first; cp < end; cp++)
            ks_unicode_table[cp >> 2] |= (uint8_t)(cls << ((cp & 3) * 2));
    }
}

void ks_unicode_init(void) { pthread_once(&table_once, build_table); }

size_t ks_utf8_char_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    /* Unicode Table 3-7: the lead byte fixes the length and the range of the second
     * byte; later bytes are any continuation byte. */
    size_t len;
    unsigned lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0; /* no overlong forms */
        else if (c == 0xed)
            hi = 0x9f; /* no surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f; /* nothing past U+10FFFF */
    } else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return len;
}
