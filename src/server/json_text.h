/* json_text.h — model output as JSON strings. Generated text is usually UTF-8, but a model
 * can sample byte tokens that do not form valid UTF-8; JSON strings must be valid, so
 * each invalid byte becomes U+FFFD here (the one place that happens). */
#ifndef KS_JSON_TEXT_H
#define KS_JSON_TEXT_H

#include <jansson.h>
#include <stddef.h>

/* A new JSON string of text, invalid UTF-8 bytes replaced by U+FFFD. */
json_t *ks_json_text(const char *text, size_t len);

#endif
