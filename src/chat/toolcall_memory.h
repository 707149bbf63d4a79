/* toolcall_memory.h — the exact text the model sampled for each recent tool call.
 *
 * Owns: a map from call id to the call's sampled text ("<tool_call>" through
 * "</tool_call>", as ks_toolcall.raw), with the tool name and arguments it was parsed
 * into; bounded in bytes, least recently used out first; counters for /metrics.
 * Does not own: parsing (toolcall_parser.h), rendering (the chat formats ask for the
 * text through chat.h's ks_toolcall_text_fn), where ids come from.
 *
 * Why: a client sends every earlier tool call back as JSON (Anthropic tool_use.input,
 * OpenAI function.arguments) serialised its own way: other key order, spacing, escapes,
 * 1.0 written as 1. A prompt rendered from that JSON differs from what the model sampled
 * from the first tool call on, so the cached KV stops matching there and the rest of a
 * long agent conversation is computed again on every turn. Rendering the sampled bytes
 * keeps the prompt a byte-exact extension of the cached one.
 *
 * But only if the client sent back the call the model made: lookup compares the client's
 * arguments with the sampled ones and gives nothing unless they mean the same (a client
 * that edited a call gets the canonical rendering of its edit). Same meaning: objects as
 * sets of keys, arrays in order, strings byte for byte, numbers by value (1, 1.0 and 1e0
 * are equal: JavaScript clients write 1.0 back as 1; an integer and a real are equal when
 * the real is exactly that integer), true, false and null as themselves.
 *
 * Budget: an entry is charged KS_TOOLCALL_MEMORY_ENTRY_BYTES plus the bytes of its id,
 * name, arguments and raw text. Storing evicts least recently used entries until the new
 * one fits; an entry larger than the whole budget is not stored. A successful lookup
 * makes its entry the most recent.
 *
 * Threads: one instance is shared by all HTTP threads. Every function but create and
 * destroy may be called concurrently; a mutex guards the map and is held only for hashing,
 * list updates and copies, never while JSON is parsed or compared. */
#ifndef KS_TOOLCALL_MEMORY_H
#define KS_TOOLCALL_MEMORY_H

#include "core/status.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Fixed cost charged per entry: its header (links, lengths, hash) and the hash slot it
 * takes, rounded up to what malloc spends on them. */
#define KS_TOOLCALL_MEMORY_ENTRY_BYTES 128

typedef struct ks_toolcall_memory ks_toolcall_memory;

typedef struct ks_toolcall_memory_stats {
    size_t n_entries;
    size_t bytes;         /* charged, <= budget_bytes */
    size_t budget_bytes;
    uint64_t hits;        /* lookups that gave the sampled text */
    uint64_t misses;      /* unknown ids */
    uint64_t mismatches;  /* known ids whose name or arguments differed */
    uint64_t evictions;
} ks_toolcall_memory_stats;

/* budget_bytes 0 is a memory that stores nothing. *out is owned by the caller. */
ks_status ks_toolcall_memory_create(ks_toolcall_memory **out, size_t budget_bytes);
void ks_toolcall_memory_destroy(ks_toolcall_memory *m); /* NULL is fine */

/* Stores a copy of one call: id and name NUL-terminated, args the JSON text of its
 * arguments object (args_len bytes), raw the sampled text (raw_len bytes). A call with
 * the same id is replaced. KS_ERR_FULL if the entry alone exceeds the budget (nothing is
 * evicted then); KS_ERR_INVALID for an empty id or missing text; KS_ERR_NOMEM. */
ks_status ks_toolcall_memory_put(ks_toolcall_memory *m, const char *id, const char *name,
                                 const char *args, size_t args_len, const char *raw,
                                 size_t raw_len);

/* The sampled text of call `id` if it was stored, is still there, was a call of tool
 * `name`, and its arguments mean the same as `args` (the client's; NULL reads as {}).
 * Otherwise NULL: render the call from the client's JSON. The text is a copy, *len
 * bytes plus a NUL, owned by the caller (free()), so it stays valid whatever other
 * threads store or evict meanwhile. */
char *ks_toolcall_memory_lookup(ks_toolcall_memory *m, const char *id, const char *name,
                                const json_t *args, size_t *len);

void ks_toolcall_memory_get_stats(ks_toolcall_memory *m, ks_toolcall_memory_stats *out);

#endif
