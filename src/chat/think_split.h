/* think_split.h — splits a Qwen3 model's output into reasoning and answer, as it streams.
 *
 * A reasoning model's turn may open with "<think>\n ... \n</think>\n\n" before the
 * answer. The splitter recognises the block only at the very start of the output, emits
 * its inside as thinking (without the newline after <think> and the one before </think>)
 * and the rest as text (without the newlines after </think>, as the chat template strips
 * them when it renders the turn back). Fed any split of the output it emits the same
 * bytes; it holds back only what could still be part of a tag or a stripped newline.
 *
 * Without a <think> at the start, everything is text. An unclosed block at the end is
 * thinking. */
#ifndef KS_THINK_SPLIT_H
#define KS_THINK_SPLIT_H

#include <stdbool.h>
#include <stddef.h>

typedef void (*ks_think_sink)(void *user, bool thinking, const char *text, size_t len);

typedef struct ks_think_split {
    int state;          /* see think_split.c */
    char hold[16];      /* bytes that may still be a tag or a stripped newline */
    size_t n_hold;
    bool started_thinking;
} ks_think_split;

void ks_think_split_init(ks_think_split *s);
void ks_think_split_feed(ks_think_split *s, const char *text, size_t n, ks_think_sink sink, void *user);
/* End of output: emits what is held. */
void ks_think_split_finish(ks_think_split *s, ks_think_sink sink, void *user);

#endif
