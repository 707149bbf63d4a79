/* think_split.c — see think_split.h.
 *
 * States:
 *   START   nothing emitted yet; held bytes are a proper prefix of "<think>"
 *   OPENED  just after "<think>": one '\n' is dropped if it comes
 *   THINK   inside the block; held bytes are '\n'* followed by a proper prefix of
 *           "</think>" (the newline before the tag is dropped with it)
 *   CLOSED  just after "</think>": leading '\n's are dropped
 *   TEXT    everything passes through */
#include "chat/think_split.h"

#include <string.h>

enum { START, OPENED, THINK, CLOSED, TEXT };

static const char open_tag[] = "<think>";
static const char close_tag[] = "</think>";
#define OPEN_LEN (sizeof open_tag - 1)
#define CLOSE_LEN (sizeof close_tag - 1)

void ks_think_split_init(ks_think_split *s) { memset(s, 0, sizeof *s); }

/* Length of the longest suffix of hold that is a proper prefix of "\n*</think>" with at
 * most one newline kept back (the one the template puts before the tag). */
static size_t close_prefix_len(const char *buf, size_t n) {
    for (size_t k = n < CLOSE_LEN + 1 ? n : CLOSE_LEN + 1; k > 0; k--) {
        const char *tail = buf + n - k;
        const char *t = tail;
        size_t m = k;
        if (*t == '\n') {
            t++;
            m--;
        }
        if (m < CLOSE_LEN && memcmp(t, close_tag, m) == 0)
            return k;
    }
    return 0;
}

static void feed_byte(ks_think_split *s, char c, ks_think_sink sink, void *user) {
    switch (s->state) {
    case START:
        s->hold[s->n_hold++] = c;
        if (memcmp(s->hold, open_tag, s->n_hold) != 0) {
            s->state = TEXT;
            sink(user, false, s->hold, s->n_hold);
            s->n_hold = 0;
        } else if (s->n_hold == OPEN_LEN) {
            s->state = OPENED;
            s->started_thinking = true;
            s->n_hold = 0;
        }
        return;
    case OPENED:
        s->state = THINK;
        if (c == '\n')
            return;
        /* fall through */
    case THINK: {
        s->hold[s->n_hold++] = c;
        /* the full close tag, possibly after one newline */
        if (s->n_hold >= CLOSE_LEN && memcmp(s->hold + s->n_hold - CLOSE_LEN, close_tag, CLOSE_LEN) == 0) {
            size_t before = s->n_hold - CLOSE_LEN;
            if (before > 0 && s->hold[before - 1] == '\n')
                before--;
            if (before > 0)
                sink(user, true, s->hold, before);
            s->n_hold = 0;
            s->state = CLOSED;
            return;
        }
        size_t keep = close_prefix_len(s->hold, s->n_hold);
        if (keep < s->n_hold) {
            sink(user, true, s->hold, s->n_hold - keep);
            memmove(s->hold, s->hold + s->n_hold - keep, keep);
            s->n_hold = keep;
        }
        return;
    }
    case CLOSED:
        if (c == '\n')
            return;
        s->state = TEXT;
        /* fall through */
    case TEXT:
        sink(user, false, &c, 1);
        return;
    }
}

void ks_think_split_feed(ks_think_split *s, const char *text, size_t n, ks_think_sink sink, void *user) {
    if (s->state == TEXT) {
        if (n)
            sink(user, false, text, n);
        return;
    }
    /* Runs of plain thinking text go out in one piece, not byte by byte. */
    size_t i = 0;
    while (i < n) {
        if (s->state == THINK && s->n_hold == 0) {
            size_t j = i;
            while (j < n && text[j] != '<' && text[j] != '\n')
                j++;
            if (j > i) {
                sink(user, true, text + i, j - i);
                i = j;
                continue;
            }
        }
        if (s->state == TEXT) {
            sink(user, false, text + i, n - i);
            return;
        }
        feed_byte(s, text[i++], sink, user);
    }
}

void ks_think_split_finish(ks_think_split *s, ks_think_sink sink, void *user) {
    if (s->n_hold > 0)
        sink(user, s->state == THINK, s->hold, s->n_hold);
    s->n_hold = 0;
}
