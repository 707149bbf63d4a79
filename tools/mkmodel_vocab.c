/* mkmodel_vocab.c — the tokenizer of a synthetic model: built here, or copied.
 *
 * Built: a byte-level BPE vocabulary in the format of GPT-2 / Qwen2 GGUFs
 * (tokenizer.ggml.model "gpt2", pre-tokenizer "qwen2"), so llama.cpp and kvserve's own
 * tokenizer run their real Qwen code paths on it:
 *
 *   ids 0..255          the 256 byte tokens, in GPT-2's byte-to-unicode order
 *   ids 256..           one token per merge learned from the sample text (mkmodel_corpus.c)
 *   next 26             Qwen's added tokens: <|endoftext|>, <|im_start|>, <|im_end|>, ...
 *                       <think>, </think> (control or user-defined, as in Qwen3)
 *   up to n_vocab       [PAD<id>] unused placeholders, so that the token count can equal
 *                       the embedding rows of a real shape (151,936 for Qwen3)
 *
 * plus eos = <|im_end|>, bos = padding = <|endoftext|> (never added), and a ChatML chat
 * template of our own.
 *
 * Byte-level BPE in brief: text is first split into pre-tokens (words with their leading
 * space, single digits, runs of punctuation, runs of whitespace; qwen2's split rules,
 * see pretoken_len()); each byte of a pre-token is shown as one printable character
 * (bytes_to_unicode: printable Latin-1 bytes stand for themselves, the rest for
 * U+0100..); merges then join adjacent symbols, most frequent pair first. A tokenizer
 * applies the merges in the order they were learned.
 *
 * Copied: every tokenizer.* key of another GGUF (a real vocabulary, e.g. Qwen3's), and
 * the ChatML template above if that file has no chat template (vocabulary-only files
 * often have none; Qwen's vocabularies have the ChatML tokens it uses).
 *
 * Does not own: tokenizing (src/tokenizer/), the sample text (mkmodel_corpus.c). */
#include "mkmodel.h"

#include "gguf/gguf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Most merges to learn: with the 256 byte tokens that makes a 4,096-entry base
 * vocabulary, as in the shared fixture models. The sample text runs out of repeated pairs
 * before that. */
#define MAX_MERGES 3840
/* A pair seen fewer times than this is noise, not a common word piece. */
#define MIN_PAIR_COUNT 2

/* llama.cpp's token types (tokenizer.ggml.token_type). */
enum { TOKEN_NORMAL = 1, TOKEN_CONTROL = 3, TOKEN_USER_DEFINED = 4, TOKEN_UNUSED = 5 };

/* Qwen3's added tokens, in their id order, and their types. */
static const struct {
    const char *text;
    int type;
} specials[] = {
    {"<|endoftext|>", TOKEN_CONTROL},      {"<|im_start|>", TOKEN_CONTROL},
    {"<|im_end|>", TOKEN_CONTROL},         {"<|object_ref_start|>", TOKEN_CONTROL},
    {"<|object_ref_end|>", TOKEN_CONTROL}, {"<|box_start|>", TOKEN_CONTROL},
    {"<|box_end|>", TOKEN_CONTROL},        {"<|quad_start|>", TOKEN_CONTROL},
    {"<|quad_end|>", TOKEN_CONTROL},       {"<|vision_start|>", TOKEN_CONTROL},
    {"<|vision_end|>", TOKEN_CONTROL},     {"<|vision_pad|>", TOKEN_CONTROL},
    {"<|image_pad|>", TOKEN_CONTROL},      {"<|video_pad|>", TOKEN_CONTROL},
    {"<tool_call>", TOKEN_USER_DEFINED},   {"</tool_call>", TOKEN_USER_DEFINED},
    {"<|fim_prefix|>", TOKEN_CONTROL},     {"<|fim_middle|>", TOKEN_CONTROL},
    {"<|fim_suffix|>", TOKEN_CONTROL},     {"<|fim_pad|>", TOKEN_CONTROL},
    {"<|repo_name|>", TOKEN_CONTROL},      {"<|file_sep|>", TOKEN_CONTROL},
    {"<tool_response>", TOKEN_USER_DEFINED}, {"</tool_response>", TOKEN_USER_DEFINED},
    {"<think>", TOKEN_USER_DEFINED},       {"</think>", TOKEN_USER_DEFINED},
};
#define SPECIAL_BOS 0 /* <|endoftext|>: index in specials[] */
#define SPECIAL_EOS 2 /* <|im_end|> */

/* ---- the chat template ------------------------------------------------------------------ */

/* Plain ChatML: each message is "<|im_start|>{role}\n{content}<|im_end|>\n", then
 * "<|im_start|>assistant\n" when a reply is wanted. The server recognises it as its
 * `chatml` format (no tools: a random-weight demo model has nothing to call them with). */
static const char chat_template[] =
    "{#- ChatML prompt format of kvserve's synthetic models -#}\n"
    "{%- for message in messages %}\n"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}\n";

const char *ks_mkmodel_chat_template(void) { return chat_template; }

/* ---- byte-level symbols ------------------------------------------------------------------ */

/* GPT-2's bytes_to_unicode order: the printable Latin-1 bytes (which stand for
 * themselves) first, then the other 68 bytes, which stand for U+0100 + their rank.
 * order[i] = byte of token i; cp[b] = code point byte b is shown as. */
static bool shown_as_itself(int b) { return (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || b >= 0xae; }

static void byte_symbols(uint8_t order[256], uint32_t cp[256]) {
    int n = 0, extra = 0;
    for (int b = 0; b < 256; b++)
        if (shown_as_itself(b)) {
            order[n++] = (uint8_t)b;
            cp[b] = (uint32_t)b;
        }
    for (int b = 0; b < 256; b++)
        if (!shown_as_itself(b)) {
            order[n++] = (uint8_t)b;
            cp[b] = 256u + (uint32_t)extra++;
        }
}

/* UTF-8 of a code point below U+0800 (all byte symbols are), NUL-terminated. */
static void utf8_small(uint32_t c, char out[3]) {
    if (c < 0x80) {
        out[0] = (char)c;
        out[1] = 0;
    } else {
        out[0] = (char)(0xc0 | (c >> 6));
        out[1] = (char)(0x80 | (c & 0x3f));
        out[2] = 0;
    }
}

/* ---- pre-tokenizer (qwen2's split rules, on ASCII; bytes >= 0x80 count as letters) ------- */

static bool is_letter(uint8_t c) { return ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || c >= 0x80; }
static bool is_digit(uint8_t c) { return c >= '0' && c <= '9'; }
static bool is_space(uint8_t c) { return c == ' ' || (c >= '\t' && c <= '\r'); }
static bool is_newline(uint8_t c) { return c == '\n' || c == '\r'; }

/* Length of the pre-token at s (n > 0 bytes left). The alternatives, first match wins:
 *   's 't 're 've 'm 'll 'd          contractions (any case)
 *   [^\r\n L N]? L+                  a word with one optional leading non-letter
 *   N                                one digit
 *   ' '? [^\s L N]+ [\r\n]*          punctuation run
 *   \s* [\r\n]+                      whitespace up to its last newline
 *   \s+ (?!\S)                       whitespace but the last char before a non-space
 *   \s+                              a single whitespace char before a non-space */
static size_t pretoken_len(const uint8_t *s, size_t n) {
    if (s[0] == '\'' && n >= 2) {
        uint8_t a = (uint8_t)(s[1] | 0x20), b = n >= 3 ? (uint8_t)(s[2] | 0x20) : 0;
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
            return 3;
        if (a == 's' || a == 't' || a == 'm' || a == 'd')
            return 2;
    }
    size_t i = !is_newline(s[0]) && !is_letter(s[0]) && !is_digit(s[0]) ? 1 : 0;
    if (i < n && is_letter(s[i])) {
        while (i < n && is_letter(s[i]))
            i++;
        return i;
    }
    if (is_digit(s[0]))
        return 1;
    size_t j = s[0] == ' ' ? 1 : 0, k = j;
    while (k < n && !is_space(s[k]) && !is_letter(s[k]) && !is_digit(s[k]))
        k++;
    if (k > j) {
        while (k < n && is_newline(s[k]))
            k++;
        return k;
    }
    size_t run = 0, after_nl = 0;
    while (run < n && is_space(s[run])) {
        if (is_newline(s[run]))
            after_nl = run + 1;
        run++;
    }
    if (after_nl)
        return after_nl;
    if (run == n || run == 1)
        return run;
    return run - 1;
}

/* ---- BPE training ----------------------------------------------------------------------- */

typedef struct word {
    int *sym;   /* token ids, (n) */
    int n;
    int64_t count; /* occurrences in the sample text */
} word;

typedef struct piece {
    const uint8_t *p;
    size_t len;
} piece;

typedef struct vocab {
    char **tok;  /* token texts (byte symbols as UTF-8), malloc'd each */
    int *type;
    size_t n, cap;
    char **merge; /* "A B", malloc'd each */
    size_t n_merges;
} vocab;

static void vocab_add(vocab *v, char *text, int type) {
    if (v->n == v->cap) {
        v->cap = v->cap ? 2 * v->cap : 1024;
        v->tok = ks_xrealloc(v->tok, v->cap * sizeof *v->tok);
        v->type = ks_xrealloc(v->type, v->cap * sizeof *v->type);
    }
    v->tok[v->n] = text;
    v->type[v->n] = type;
    v->n++;
}

static void vocab_free(vocab *v) {
    for (size_t i = 0; i < v->n; i++)
        free(v->tok[i]);
    for (size_t i = 0; i < v->n_merges; i++)
        free(v->merge[i]);
    free(v->tok);
    free(v->type);
    free(v->merge);
}

static int piece_cmp(const void *a, const void *b) {
    const piece *x = a, *y = b;
    int c = memcmp(x->p, y->p, KS_MIN(x->len, y->len));
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* Splits the corpus into pre-tokens and returns the distinct ones with their counts,
 * as sequences of byte-token ids. */
static word *corpus_words(const uint8_t byte_id[256], size_t *n_words) {
    const uint8_t *text = (const uint8_t *)ks_mkmodel_corpus();
    size_t len = strlen((const char *)text), n = 0, cap = 1024;
    piece *pieces = ks_xmalloc(cap * sizeof *pieces);
    for (size_t at = 0; at < len;) {
        size_t l = pretoken_len(text + at, len - at);
        if (n == cap)
            pieces = ks_xrealloc(pieces, (cap *= 2) * sizeof *pieces);
        pieces[n++] = (piece){text + at, l};
        at += l;
    }
    qsort(pieces, n, sizeof *pieces, piece_cmp);
    word *words = ks_xmalloc((n ? n : 1) * sizeof *words);
    size_t nw = 0;
    for (size_t i = 0; i < n; i++) {
        if (nw && piece_cmp(&pieces[i], &pieces[i - 1]) == 0) {
            words[nw - 1].count++;
            continue;
        }
        word *w = &words[nw++];
        w->n = (int)pieces[i].len;
        w->count = 1;
        w->sym = ks_xmalloc(pieces[i].len * sizeof *w->sym);
        for (size_t k = 0; k < pieces[i].len; k++)
            w->sym[k] = byte_id[pieces[i].p[k]];
    }
    free(pieces);
    *n_words = nw;
    return words;
}

/* Pair counts, an open-addressing table keyed by (left << 32 | right). */
typedef struct pair_table {
    uint64_t *key;  /* 0 = empty (pair (0,0) is stored as key | 1 << 63) */
    int64_t *count;
    size_t *used;   /* slots in use, to clear them without touching the rest */
    size_t n_used, mask;
} pair_table;

static void pairs_add(pair_table *t, int a, int b, int64_t c) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) | (1ull << 63);
    size_t h = (size_t)((key * 0x9e3779b97f4a7c15u) >> 20) & t->mask;
    while (t->key[h] && t->key[h] != key)
        h = (h + 1) & t->mask;
    if (!t->key[h]) {
        t->key[h] = key;
        t->count[h] = 0;
        t->used[t->n_used++] = h;
    }
    t->count[h] += c;
}

/* The most frequent pair (ties: smallest left id, then right id); false if none. */
static bool pairs_best(const pair_table *t, int *a, int *b, int64_t *count) {
    uint64_t best_key = 0;
    int64_t best = 0;
    for (size_t i = 0; i < t->n_used; i++) {
        size_t h = t->used[i];
        if (t->count[h] > best || (t->count[h] == best && t->key[h] < best_key)) {
            best = t->count[h];
            best_key = t->key[h];
        }
    }
    if (!best)
        return false;
    *a = (int)(uint32_t)((best_key & ~(1ull << 63)) >> 32);
    *b = (int)(uint32_t)best_key;
    *count = best;
    return true;
}

/* Replaces every (a, b) in the word by c, left to right. */
static void word_merge(word *w, int a, int b, int c) {
    int o = 0;
    for (int i = 0; i < w->n; i++) {
        if (i + 1 < w->n && w->sym[i] == a && w->sym[i + 1] == b) {
            w->sym[o++] = c;
            i++;
        } else {
            w->sym[o++] = w->sym[i];
        }
    }
    w->n = o;
}

static char *concat(const char *a, const char *sep, const char *b) {
    size_t la = strlen(a), ls = strlen(sep), lb = strlen(b);
    char *s = ks_xmalloc(la + ls + lb + 1);
    memcpy(s, a, la);
    memcpy(s + la, sep, ls);
    memcpy(s + la + ls, b, lb + 1);
    return s;
}

/* Learns merges from the corpus into v (which holds the 256 byte tokens). */
static void learn_merges(vocab *v, const uint8_t byte_id[256]) {
    size_t n_words, total = 0;
    word *words = corpus_words(byte_id, &n_words);
    for (size_t i = 0; i < n_words; i++)
        total += (size_t)words[i].n;
    size_t slots = 1024; /* at least twice the distinct pairs there can be */
    while (slots < 2 * total)
        slots *= 2;
    pair_table pt = {ks_xcalloc(slots, sizeof *pt.key), ks_xmalloc(slots * sizeof *pt.count),
                     ks_xmalloc(slots * sizeof *pt.used), 0, slots - 1};
    v->merge = ks_xmalloc(MAX_MERGES * sizeof *v->merge);

    while (v->n_merges < MAX_MERGES) {
        for (size_t i = 0; i < pt.n_used; i++)
            pt.key[pt.used[i]] = 0;
        pt.n_used = 0;
        for (size_t i = 0; i < n_words; i++)
            for (int k = 0; k + 1 < words[i].n; k++)
                pairs_add(&pt, words[i].sym[k], words[i].sym[k + 1], words[i].count);
        int a, b;
        int64_t count;
        if (!pairs_best(&pt, &a, &b, &count) || count < MIN_PAIR_COUNT)
            break;
        /* Different merge paths can spell the same text ("ab"+"c", "a"+"bc"): one token. */
        char *text = concat(v->tok[a], "", v->tok[b]);
        int c = -1;
        for (size_t i = 256; i < v->n && c < 0; i++)
            if (!strcmp(v->tok[i], text))
                c = (int)i;
        if (c < 0) {
            c = (int)v->n;
            vocab_add(v, text, TOKEN_NORMAL);
        } else {
            free(text);
        }
        v->merge[v->n_merges++] = concat(v->tok[a], " ", v->tok[b]);
        for (size_t i = 0; i < n_words; i++)
            word_merge(&words[i], a, b, c);
    }
    for (size_t i = 0; i < n_words; i++)
        free(words[i].sym);
    free(words);
    free(pt.key);
    free(pt.count);
    free(pt.used);
}

/* ---- the keys ---------------------------------------------------------------------------- */

ks_status ks_mkmodel_vocab_build(ks_gguf_writer *w, int64_t n_vocab, int64_t *n_vocab_out,
                                 int64_t *n_used_out, ks_err *err) {
    vocab v = {0};
    uint8_t order[256], byte_id[256];
    uint32_t cp[256];
    byte_symbols(order, cp);
    for (int i = 0; i < 256; i++) {
        char buf[3];
        utf8_small(cp[order[i]], buf);
        vocab_add(&v, ks_xstrdup(buf), TOKEN_NORMAL);
        byte_id[order[i]] = (uint8_t)i; /* fits: ids 0..255 */
    }
    learn_merges(&v, byte_id);
    int64_t first_special = (int64_t)v.n;
    for (size_t i = 0; i < KS_ARRAY_LEN(specials); i++)
        vocab_add(&v, ks_xstrdup(specials[i].text), specials[i].type);

    if (n_vocab && n_vocab < (int64_t)v.n) {
        ks_status s = KS_ERRF(err, KS_ERR_INVALID,
                              "n_vocab %lld is smaller than the built vocabulary (%zu tokens)",
                              (long long)n_vocab, v.n);
        vocab_free(&v);
        return s;
    }
    *n_used_out = (int64_t)v.n;
    while ((int64_t)v.n < n_vocab) {
        char buf[32];
        snprintf(buf, sizeof buf, "[PAD%zu]", v.n);
        vocab_add(&v, ks_xstrdup(buf), TOKEN_UNUSED);
    }

    ks_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
    ks_gguf_writer_set_str(w, "tokenizer.ggml.pre", "qwen2");
    ks_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v.tok, v.n);
    int32_t *types = ks_xmalloc(v.n * sizeof *types); /* (n_vocab) */
    for (size_t i = 0; i < v.n; i++)
        types[i] = v.type[i];
    ks_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", KS_GGUF_INT32, types, v.n);
    free(types);
    ks_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)v.merge, v.n_merges);
    ks_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)(first_special + SPECIAL_BOS));
    ks_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)(first_special + SPECIAL_EOS));
    ks_gguf_writer_set_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)(first_special + SPECIAL_BOS));
    ks_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", false);
    ks_gguf_writer_set_str(w, "tokenizer.chat_template", chat_template);
    *n_vocab_out = (int64_t)v.n;
    vocab_free(&v);
    return KS_OK;
}

ks_status ks_mkmodel_vocab_copy(ks_gguf_writer *w, const char *path, int64_t *n_vocab_out,
                                int64_t *n_used_out, ks_err *err) {
    static const char prefix[] = "tokenizer.";
    ks_gguf *g = NULL;
    ks_status s = ks_gguf_open(&g, path, err);
    if (s)
        return s;
    const ks_gguf_value *tokens;
    s = ks_gguf_get_arr(g, "tokenizer.ggml.tokens", KS_GGUF_STRING, &tokens, err);
    if (s)
        goto fail;
    for (uint64_t i = 0; i < ks_gguf_n_kv(g); i++) {
        const ks_gguf_kv *kv = ks_gguf_kv_at(g, i);
        if (kv->key.len < sizeof prefix - 1 || memcmp(kv->key.ptr, prefix, sizeof prefix - 1))
            continue;
        char *key = ks_xmalloc((size_t)kv->key.len + 1);
        memcpy(key, kv->key.ptr, (size_t)kv->key.len);
        key[kv->key.len] = 0;
        ks_gguf_writer_set_value(w, key, &kv->value);
        free(key);
    }
    if (!ks_gguf_find(g, "tokenizer.chat_template"))
        ks_gguf_writer_set_str(w, "tokenizer.chat_template", chat_template);
    int64_t n_used = (int64_t)tokens->v.arr.n;
    const ks_gguf_value *types;
    if (ks_gguf_get_arr(g, "tokenizer.ggml.token_type", KS_GGUF_TYPE_COUNT, &types, NULL) == KS_OK &&
        types->v.arr.n == tokens->v.arr.n && !types->v.arr.items)
        while (n_used > 0 && ks_gguf_arr_get_i64(types, (uint64_t)n_used - 1) == TOKEN_UNUSED)
            n_used--;
    *n_vocab_out = (int64_t)tokens->v.arr.n;
    *n_used_out = n_used;
fail:
    ks_gguf_close(g);
    return s;
}
