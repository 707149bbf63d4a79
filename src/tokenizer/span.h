/* span.h — a byte range of a text.
 *
 * The unit in which the chat renderer reports which bytes of a prompt came from the
 * client (chat_format.h) and the tokenizer is told where control tokens must not be
 * matched (tokenizer.h). A header of its own so that neither needs the other's. */
#ifndef KS_SPAN_H
#define KS_SPAN_H

#include <stddef.h>

/* Bytes [start, end) of some text; start <= end. */
typedef struct ks_span {
    size_t start, end;
} ks_span;

#endif
