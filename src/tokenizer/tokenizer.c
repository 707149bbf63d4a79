/* tokenizer.c — see tokenizer.h. In data-flow order:
 *
 *   load            token texts back to the bytes they stand for, a hash map from those
 *                   bytes to ids; merges as a map (left id, right id) -> (rank, merged
 *                   id); special tokens in matching order, indexed by first byte
 *   special tokens  every occurrence of every candidate (control ones only where the
 *                   caller allows them), then the ones llama.cpp's longest-first
 *                   partition keeps; raw fragments between them
 *   words           the pre-tokenizer over each fragment; a per-call cache maps a short
 *                   word to the ids it gave the first time (agent prompts repeat words)
 *   BPE             one word: a symbol per byte in a linked list, candidate merges in a
 *                   binary heap ordered by (rank, position); a popped candidate whose
 *                   symbols changed since it was pushed is skipped
 *
 * BPE on ids rather than strings: a symbol is always a token (the byte tokens, then
 * merge results), so a merge is a lookup of two ids. A merge whose parts or result are
 * not tokens cannot be expressed; well-formed vocabularies (Qwen2/3: none of 151,387)
 * have none, and load counts and skips them. */
#include "tokenizer/tokenizer.h"

#include "tokenizer/unicode.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

/* A merge is one 64-bit slot, (left id << 44) | (right id << 24) | rank, so that the
 * table of 151K merges takes 2 MiB and stays in cache. Limits that follow: ids below
 * 2^20 (the largest vocabularies are near 2^18) and fewer than 2^24 merges. */
#define ID_BITS 20
#define RANK_BITS 24
#define PAIR_EMPTY UINT64_MAX /* left id 2^20 - 1 is out of range */
/* Longest word the per-call cache keeps, bytes: a word of up to 16 bytes is its own
 * key in two 64-bit words, so a lookup is a multiply and two compares. Almost all
 * words of code and prose are shorter; longer ones are tokenized each time. */
#define CACHE_MAX_WORD 16

typedef struct special {
    const char *text; /* points into the GGUF */
    uint32_t len;     /* bytes, > 0 */
    int32_t id;
    bool control; /* control or unknown: matched only with KS_TOKENIZE_SPECIAL */
} special;

struct ks_tokenizer {
    ks_vocab *vocab;
    int32_t n_vocab;
    ks_pretok_kind pre;
    ks_pretok_regex *regex; /* non-NULL: split words with PCRE2 */
    bool use_cache;
    bool add_bos, add_eos;
    bool ignore_merges; /* llama-bpe: a word that is a token is that token, without merges */
    int32_t bos, eos;
    int32_t byte_id[256];

    /* bytes each token stands for: raw[raw_off[i] .. raw_off[i] + raw_len[i]);
     * raw_len[i] < 0 when its text is not in byte-level form (a special token such as
     * "<｜end▁of▁sentence｜>"): no word can spell it. */
    char *raw;
    uint32_t *raw_off;
    int32_t *raw_len;
    int32_t *text_slots; /* open addressing over ids, -1 free */
    uint64_t text_mask;

    uint64_t *pairs; /* open addressing, PAIR_EMPTY if free */
    uint64_t pair_mask;
    unsigned pair_shift; /* 64 - log2(slots) */
    int32_t *merge_id; /* rank -> the merged token */
    int32_t n_merges, n_merges_skipped;

    special *specials; /* length descending, then id ascending: the matching order */
    uint32_t n_specials;
    uint32_t *by_first;         /* indices into specials, grouped by first byte, in order */
    uint32_t first_off[256 + 1]; /* by_first[first_off[b] .. first_off[b + 1]) start with b */
    int only_first;              /* the byte every candidate starts with, or -1 */
};

/* ---- load ----------------------------------------------------------------------------------- */

static uint64_t hash_bytes(const void *p, size_t n) { return XXH3_64bits(p, n); }

/* Slot of a merge key: the high bits of a multiplication by 2^64 / golden ratio
 * (Fibonacci hashing; the low bits of a product would ignore the key's high bits). */
static inline uint64_t hash_pair(uint64_t key, unsigned shift) { return (key * 0x9e3779b97f4a7c15ull) >> shift; }

static uint64_t pow2_at_least(uint64_t n) {
    uint64_t p = 16;
    while (p < n)
        p <<= 1;
    return p;
}

static int32_t text_lookup(const ks_tokenizer *t, const void *bytes, size_t len) {
    for (uint64_t h = hash_bytes(bytes, len) & t->text_mask;; h = (h + 1) & t->text_mask) {
        int32_t id = t->text_slots[h];
        if (id < 0)
            return -1;
        if ((size_t)t->raw_len[id] == len && !memcmp(t->raw + t->raw_off[id], bytes, len))
            return id;
    }
}

/* Later ids replace earlier ones with the same text, as in llama.cpp's map. */
static void text_insert(ks_tokenizer *t, int32_t id) {
    const char *bytes = t->raw + t->raw_off[id];
    size_t len = (size_t)t->raw_len[id];
    for (uint64_t h = hash_bytes(bytes, len) & t->text_mask;; h = (h + 1) & t->text_mask) {
        int32_t old = t->text_slots[h];
        if (old < 0 || ((size_t)t->raw_len[old] == len && !memcmp(t->raw + t->raw_off[old], bytes, len))) {
            t->text_slots[h] = id;
            return;
        }
    }
}

/* Rank of the merge of left and right, or -1. */
static inline int32_t pair_rank(const ks_tokenizer *t, int32_t left, int32_t right) {
    uint64_t key = ((uint64_t)left << ID_BITS) | (uint64_t)right;
    for (uint64_t h = hash_pair(key, t->pair_shift);; h = (h + 1) & t->pair_mask) {
        uint64_t slot = t->pairs[h];
        if (slot >> RANK_BITS == key)
            return (int32_t)(slot & ((1u << RANK_BITS) - 1));
        if (slot == PAIR_EMPTY)
            return -1;
    }
}

/* The first of duplicate merges keeps its rank, as in llama.cpp. */
static void pair_insert(ks_tokenizer *t, int32_t left, int32_t right, int32_t rank) {
    uint64_t key = ((uint64_t)left << ID_BITS) | (uint64_t)right;
    for (uint64_t h = hash_pair(key, t->pair_shift);; h = (h + 1) & t->pair_mask) {
        if (t->pairs[h] >> RANK_BITS == key)
            return;
        if (t->pairs[h] == PAIR_EMPTY) {
            t->pairs[h] = (key << RANK_BITS) | (uint64_t)rank;
            return;
        }
    }
}

/* Text in byte-level form -> the bytes it stands for, written to out (room for len
 * bytes: each character stands for one byte and takes at least one). Returns the byte
 * count, or -1 if a character stands for no byte. */
static int64_t unmap_text(const char *text, size_t len, char *out) {
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0, n = 0;
    while (i < len) {
        uint32_t cp;
        int bad;
        i += ks_utf8_decode(s + i, len - i, &cp, &bad);
        int b = bad ? -1 : ks_cp_to_byte(cp);
        if (b < 0)
            return -1;
        out[n++] = (char)b;
    }
    return (int64_t)n;
}

static ks_status load_texts(ks_tokenizer *t, ks_err *err) {
    size_t total = 0;
    for (int32_t i = 0; i < t->n_vocab; i++)
        total += (size_t)ks_vocab_text(t->vocab, i).len;
    if (total >= UINT32_MAX)
        return KS_ERRF(err, KS_ERR_UNSUPPORTED, "token texts take %zu bytes, more than we index", total);
    t->raw = malloc(total ? total : 1);
    t->raw_off = malloc((size_t)t->n_vocab * sizeof *t->raw_off);
    t->raw_len = malloc((size_t)t->n_vocab * sizeof *t->raw_len);
    t->text_mask = pow2_at_least((uint64_t)t->n_vocab * 2) - 1;
    t->text_slots = malloc((t->text_mask + 1) * sizeof *t->text_slots);
    if (!t->raw || !t->raw_off || !t->raw_len || !t->text_slots)
        return KS_ERRF(err, KS_ERR_NOMEM, "out of memory for the vocabulary index");
    memset(t->text_slots, 0xff, (t->text_mask + 1) * sizeof *t->text_slots);
    uint32_t off = 0;
    for (int32_t i = 0; i < t->n_vocab; i++) {
        ks_gguf_str s = ks_vocab_text(t->vocab, i);
        int64_t n = unmap_text(s.ptr, (size_t)s.len, t->raw + off);
        t->raw_off[i] = off;
        t->raw_len[i] = n > 0 ? (int32_t)n : -1;
        if (n > 0) {
            off += (uint32_t)n;
            text_insert(t, i);
        }
    }
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        t->byte_id[b] = text_lookup(t, &c, 1);
        if (t->byte_id[b] < 0)
            return KS_ERRF(err, KS_ERR_INVALID, "vocabulary has no token for byte 0x%02x", b);
    }
    return KS_OK;
}

static ks_status load_merges(ks_tokenizer *t, const ks_gguf *g, ks_err *err) {
    const ks_gguf_value *merges = NULL;
    ks_status s = ks_gguf_get_arr(g, "tokenizer.ggml.merges", KS_GGUF_STRING, &merges, err);
    if (s)
        return s;
    if (merges->v.arr.n >= (1u << RANK_BITS))
        return KS_ERRF(err, KS_ERR_UNSUPPORTED, "%s: %llu merges, more than we index", ks_gguf_path(g),
                       (unsigned long long)merges->v.arr.n);
    t->n_merges = (int32_t)merges->v.arr.n;
    t->pair_mask = pow2_at_least((uint64_t)t->n_merges * 2) - 1;
    t->pair_shift = 64;
    for (uint64_t m = t->pair_mask; m; m >>= 1)
        t->pair_shift--;
    t->pairs = malloc((t->pair_mask + 1) * sizeof *t->pairs);
    t->merge_id = malloc((size_t)(t->n_merges ? t->n_merges : 1) * sizeof *t->merge_id);
    size_t longest = 0;
    for (int32_t i = 0; i < t->n_merges; i++)
        longest = KS_MAX(longest, (size_t)merges->v.arr.items[i].v.str.len);
    char *buf = malloc(longest * 2 + 1);
    if (!t->pairs || !t->merge_id || !buf) {
        free(buf);
        return KS_ERRF(err, KS_ERR_NOMEM, "out of memory for the merges");
    }
    memset(t->pairs, 0xff, (t->pair_mask + 1) * sizeof *t->pairs);
    for (int32_t i = 0; i < t->n_merges; i++) {
        ks_gguf_str m = merges->v.arr.items[i].v.str;
        /* "left right", split at the first space after the first byte */
        const char *sp = m.len > 1 ? memchr(m.ptr + 1, ' ', (size_t)m.len - 1) : NULL;
        int32_t left = -1, right = -1, merged = -1;
        if (sp) {
            size_t ln = (size_t)(sp - m.ptr), rn = (size_t)m.len - ln - 1;
            int64_t lb = unmap_text(m.ptr, ln, buf);
            int64_t rb = lb > 0 ? unmap_text(sp + 1, rn, buf + lb) : -1;
            if (rb > 0) {
                left = text_lookup(t, buf, (size_t)lb);
                right = text_lookup(t, buf + lb, (size_t)rb);
                merged = text_lookup(t, buf, (size_t)(lb + rb));
            }
        }
        t->merge_id[i] = merged;
        if (left < 0 || right < 0 || merged < 0)
            t->n_merges_skipped++;
        else
            pair_insert(t, left, right, i);
    }
    free(buf);
    return KS_OK;
}

static int cmp_special(const void *a, const void *b) {
    const special *x = a, *y = b;
    if (x->len != y->len)
        return x->len > y->len ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static ks_status load_specials(ks_tokenizer *t, ks_err *err) {
    uint32_t n = 0;
    for (int32_t i = 0; i < t->n_vocab; i++) {
        ks_token_type ty = ks_vocab_type(t->vocab, i);
        if ((ty == KS_TOKEN_CONTROL || ty == KS_TOKEN_USER_DEFINED || ty == KS_TOKEN_UNKNOWN) &&
            ks_vocab_text(t->vocab, i).len > 0)
            n++;
    }
    t->specials = malloc((n ? n : 1) * sizeof *t->specials);
    t->by_first = malloc((n ? n : 1) * sizeof *t->by_first);
    if (!t->specials || !t->by_first)
        return KS_ERRF(err, KS_ERR_NOMEM, "out of memory for special tokens");
    for (int32_t i = 0; i < t->n_vocab; i++) {
        ks_token_type ty = ks_vocab_type(t->vocab, i);
        ks_gguf_str s = ks_vocab_text(t->vocab, i);
        if ((ty != KS_TOKEN_CONTROL && ty != KS_TOKEN_USER_DEFINED && ty != KS_TOKEN_UNKNOWN) || s.len == 0)
            continue;
        if (s.len >= UINT32_MAX)
            return KS_ERRF(err, KS_ERR_INVALID, "special token %d is too long", (int)i);
        t->specials[t->n_specials++] = (special){s.ptr, (uint32_t)s.len, i, ty != KS_TOKEN_USER_DEFINED};
    }
    qsort(t->specials, t->n_specials, sizeof *t->specials, cmp_special);
    /* counting sort by first byte keeps the matching order within each group */
    uint32_t count[256] = {0};
    for (uint32_t k = 0; k < t->n_specials; k++)
        count[(unsigned char)t->specials[k].text[0]]++;
    t->first_off[0] = 0;
    for (int b = 0; b < 256; b++)
        t->first_off[b + 1] = t->first_off[b] + count[b];
    uint32_t fill[256];
    memcpy(fill, t->first_off, sizeof fill);
    for (uint32_t k = 0; k < t->n_specials; k++)
        t->by_first[fill[(unsigned char)t->specials[k].text[0]]++] = k;
    t->only_first = -1;
    for (int b = 0; b < 256; b++)
        if (count[b])
            t->only_first = t->only_first == -1 ? b : -2;
    if (t->only_first < 0)
        t->only_first = -1;
    return KS_OK;
}

static bool opt_bool(const ks_gguf *g, const char *key, bool dflt) {
    bool b = dflt;
    if (ks_gguf_find(g, key) && ks_gguf_get_bool(g, key, &b, NULL))
        return dflt;
    return b;
}

ks_status ks_tokenizer_create(ks_tokenizer **out, const ks_gguf *g, ks_err *err) {
    ks_gguf_str model = {"", 0}, pre = {"", 0};
    if (ks_gguf_find(g, "tokenizer.ggml.model"))
        ks_gguf_get_str(g, "tokenizer.ggml.model", &model, NULL);
    if (!ks_gguf_str_eq(model, "gpt2"))
        return KS_ERRF(err, KS_ERR_UNSUPPORTED, "%s: tokenizer model '%.*s' is not supported (only gpt2 byte-level BPE)",
                       ks_gguf_path(g), (int)KS_MIN(model.len, 64), model.ptr);
    if (ks_gguf_find(g, "tokenizer.ggml.pre"))
        ks_gguf_get_str(g, "tokenizer.ggml.pre", &pre, NULL);
    ks_pretok_kind kind;
    if (!ks_pretok_kind_from_name(pre.ptr, (size_t)pre.len, &kind))
        return KS_ERRF(err, KS_ERR_UNSUPPORTED,
                       "%s: pre-tokenizer '%.*s' is not supported (qwen2 and llama-bpe are)", ks_gguf_path(g),
                       (int)KS_MIN(pre.len, 64), pre.ptr);
    ks_unicode_init();
    ks_tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        return KS_ERRF(err, KS_ERR_NOMEM, "out of memory");
    ks_status s = ks_vocab_load(&t->vocab, g, err);
    if (s)
        goto fail;
    t->n_vocab = ks_vocab_n_tokens(t->vocab);
    if (t->n_vocab >= (1 << ID_BITS) - 1) {
        s = KS_ERRF(err, KS_ERR_UNSUPPORTED, "%s: %d tokens, more than we index", ks_gguf_path(g), (int)t->n_vocab);
        goto fail;
    }
    t->pre = kind;
    t->use_cache = true;
    t->ignore_merges = kind == KS_PRETOK_LLAMA3;
    t->bos = ks_vocab_bos(t->vocab);
    t->eos = ks_vocab_eos(t->vocab);
    /* llama.cpp's defaults: llama-bpe vocabularies add bos; the GGUF keys override */
    t->add_bos = opt_bool(g, "tokenizer.ggml.add_bos_token", kind == KS_PRETOK_LLAMA3);
    t->add_eos = opt_bool(g, "tokenizer.ggml.add_eos_token", false);
    if ((t->add_bos && t->bos < 0) || (t->add_eos && t->eos < 0)) {
        s = KS_ERRF(err, KS_ERR_INVALID, "%s: the vocabulary asks to add a %s token but names none", ks_gguf_path(g),
                    t->add_bos && t->bos < 0 ? "bos" : "eos");
        goto fail;
    }
    if ((s = load_texts(t, err)) || (s = load_merges(t, g, err)) || (s = load_specials(t, err)))
        goto fail;
    *out = t;
    return KS_OK;
fail:
    ks_tokenizer_destroy(t);
    return s;
}

void ks_tokenizer_destroy(ks_tokenizer *t) {
    if (!t)
        return;
    ks_pretok_regex_destroy(t->regex);
    ks_vocab_destroy(t->vocab);
    free(t->raw);
    free(t->raw_off);
    free(t->raw_len);
    free(t->text_slots);
    free(t->pairs);
    free(t->merge_id);
    free(t->specials);
    free(t->by_first);
    free(t);
}

const ks_vocab *ks_tokenizer_vocab(const ks_tokenizer *t) { return t->vocab; }
ks_pretok_kind ks_tokenizer_pretok(const ks_tokenizer *t) { return t->pre; }
bool ks_tokenizer_add_bos(const ks_tokenizer *t) { return t->add_bos; }
bool ks_tokenizer_add_eos(const ks_tokenizer *t) { return t->add_eos; }
int32_t ks_tokenizer_n_merges_skipped(const ks_tokenizer *t) { return t->n_merges_skipped; }

ks_status ks_tokenizer_use_regex(ks_tokenizer *t, bool on, ks_err *err) {
    if (!on) {
        ks_pretok_regex_destroy(t->regex);
        t->regex = NULL;
        return KS_OK;
    }
    return t->regex ? KS_OK : ks_pretok_regex_create(&t->regex, t->pre, err);
}

void ks_tokenizer_use_cache(ks_tokenizer *t, bool on) { t->use_cache = on; }

/* ---- per-call state ------------------------------------------------------------------------- */

typedef struct heap_entry {
    uint64_t key;   /* (rank << 32) | left position: lowest rank, then leftmost, first */
    uint32_t right; /* position of the right symbol */
    uint32_t total; /* bytes of both symbols when pushed */
} heap_entry;

typedef struct cache_slot {
    uint64_t a, b;         /* the word's bytes (see word_key) */
    uint32_t len;          /* bytes; 0 = free */
    uint32_t ids_off, n_ids; /* its ids in the output */
} cache_slot;

typedef struct call {
    const ks_tokenizer *t;
    const unsigned char *text;
    size_t text_len;
    ks_status st; /* first failure (out of memory) */

    int32_t *ids;
    size_t n_ids, cap_ids;

    /* BPE of one word, indexed by byte position in the word */
    int32_t *sym_id, *sym_len, *sym_next, *sym_prev;
    size_t sym_cap;
    heap_entry *heap;
    size_t heap_n, heap_cap;

    cache_slot *cache;
    uint64_t cache_mask, cache_used;
} call;

/* Makes room for element n of a growable array: returns the array (moved or not), or
 * NULL with c->st set when memory runs out (the old array is still valid then). */
static void *grow(call *c, void *arr, size_t n, size_t *cap, size_t elem, size_t first_cap) {
    if (n < *cap)
        return arr;
    size_t new_cap = *cap ? *cap * 2 : first_cap;
    void *p = realloc(arr, new_cap * elem);
    if (!p) {
        c->st = KS_ERR_NOMEM;
        return NULL;
    }
    *cap = new_cap;
    return p;
}

static void push_id(call *c, int32_t id) {
    int32_t *ids = grow(c, c->ids, c->n_ids, &c->cap_ids, sizeof *ids, 256);
    if (ids) {
        c->ids = ids;
        ids[c->n_ids++] = id;
    }
}

/* Appends n ids already in the output, from position off. */
static void push_copy(call *c, size_t off, size_t n) {
    while (c->cap_ids - c->n_ids < n) {
        int32_t *ids = grow(c, c->ids, c->cap_ids, &c->cap_ids, sizeof *ids, 256);
        if (!ids)
            return;
        c->ids = ids;
    }
    memcpy(c->ids + c->n_ids, c->ids + off, n * sizeof *c->ids);
    c->n_ids += n;
}

/* ---- BPE of one word ------------------------------------------------------------------------ */

static void heap_push(call *c, heap_entry e) {
    heap_entry *heap = grow(c, c->heap, c->heap_n, &c->heap_cap, sizeof *heap, 64);
    if (!heap)
        return;
    c->heap = heap;
    size_t i = c->heap_n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (c->heap[parent].key <= e.key)
            break;
        c->heap[i] = c->heap[parent];
        i = parent;
    }
    c->heap[i] = e;
}

static heap_entry heap_pop(call *c) {
    heap_entry top = c->heap[0], last = c->heap[--c->heap_n];
    size_t i = 0, n = c->heap_n;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= n)
            break;
        if (child + 1 < n && c->heap[child + 1].key < c->heap[child].key)
            child++;
        if (last.key <= c->heap[child].key)
            break;
        c->heap[i] = c->heap[child];
        i = child;
    }
    if (n > 0)
        c->heap[i] = last;
    return top;
}

static void try_merge(call *c, int32_t left, int32_t right) {
    int32_t rank = pair_rank(c->t, c->sym_id[left], c->sym_id[right]);
    if (rank >= 0)
        heap_push(c, (heap_entry){((uint64_t)rank << 32) | (uint32_t)left, (uint32_t)right,
                                  (uint32_t)(c->sym_len[left] + c->sym_len[right])});
}

static bool reserve_symbols(call *c, size_t n) {
    if (n <= c->sym_cap)
        return true;
    size_t cap = KS_MAX(n, c->sym_cap * 2);
    int32_t *a = realloc(c->sym_id, cap * sizeof *a);
    if (a)
        c->sym_id = a;
    int32_t *b = realloc(c->sym_len, cap * sizeof *b);
    if (b)
        c->sym_len = b;
    int32_t *d = realloc(c->sym_next, cap * sizeof *d);
    if (d)
        c->sym_next = d;
    int32_t *e = realloc(c->sym_prev, cap * sizeof *e);
    if (e)
        c->sym_prev = e;
    if (!a || !b || !d || !e) {
        c->st = KS_ERR_NOMEM;
        return false;
    }
    c->sym_cap = cap;
    return true;
}

static void bpe(call *c, const unsigned char *w, size_t n) {
    const ks_tokenizer *t = c->t;
    if (n == 1) {
        push_id(c, t->byte_id[w[0]]);
        return;
    }
    if (t->ignore_merges) {
        int32_t id = text_lookup(t, w, n);
        if (id >= 0) {
            push_id(c, id);
            return;
        }
    }
    if (n > INT32_MAX || !reserve_symbols(c, n)) {
        c->st = c->st ? c->st : KS_ERR_INVALID;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        c->sym_id[i] = t->byte_id[w[i]];
        c->sym_len[i] = 1;
        c->sym_next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
        c->sym_prev[i] = (int32_t)i - 1;
    }
    c->heap_n = 0;
    for (size_t i = 0; i + 1 < n; i++)
        try_merge(c, (int32_t)i, (int32_t)i + 1);
    while (c->heap_n > 0) {
        heap_entry e = heap_pop(c);
        int32_t left = (int32_t)(uint32_t)e.key, right = (int32_t)e.right;
        /* Still the same two symbols? The left one must end where the right one starts
         * and both must have their lengths of then (a dead symbol has length 0). */
        if (c->sym_len[left] != right - left || (uint32_t)c->sym_len[right] != e.total - (uint32_t)(right - left))
            continue;
        c->sym_id[left] = c->t->merge_id[e.key >> 32];
        c->sym_len[left] = (int32_t)e.total;
        c->sym_len[right] = 0;
        int32_t next = c->sym_next[right];
        c->sym_next[left] = next;
        if (next >= 0)
            c->sym_prev[next] = left;
        if (c->sym_prev[left] >= 0)
            try_merge(c, c->sym_prev[left], left);
        if (next >= 0)
            try_merge(c, left, next);
    }
    for (int32_t i = 0; i >= 0; i = c->sym_next[i])
        push_id(c, c->sym_id[i]);
}

/* ---- words ------------------------------------------------------------------------------------ */

static inline uint64_t load_le(const unsigned char *p, size_t n) {
    uint64_t v = 0;
    memcpy(&v, p, n); /* n is 4 or 8 at the call sites: a plain load */
    return v;
}

/* Two 64-bit words that, with the length, identify a word of 1..16 bytes: overlapping
 * loads from both ends cover every byte. */
static inline void word_key(const unsigned char *w, size_t n, uint64_t *a, uint64_t *b) {
    if (n >= 8) {
        *a = load_le(w, 8);
        *b = load_le(w + n - 8, 8);
    } else if (n >= 4) {
        *a = load_le(w, 4) | (load_le(w + n - 4, 4) << 32);
        *b = 0;
    } else {
        *a = (uint64_t)w[0] | ((uint64_t)w[n / 2] << 8) | ((uint64_t)w[n - 1] << 16);
        *b = 0;
    }
}

static inline uint64_t key_hash(uint64_t a, uint64_t b, size_t n) {
    uint64_t h = (a ^ (b * 0x9e3779b97f4a7c15ull) ^ n) * 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 31);
}

/* First size: about a slot per 8 bytes of text (a word is ~4 bytes, most repeat), at
 * least 64 and at most 4096 slots (128 KiB); it doubles when half full. */
static bool cache_grow(call *c) {
    uint64_t cap = c->cache ? (c->cache_mask + 1) * 2 : KS_MIN(4096, pow2_at_least(KS_MAX(64, c->text_len / 8)));
    cache_slot *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return false;
    for (uint64_t i = 0; c->cache && i <= c->cache_mask; i++) {
        const cache_slot *s = &c->cache[i];
        if (!s->len)
            continue;
        uint64_t h = key_hash(s->a, s->b, s->len) & (cap - 1);
        while (slots[h].len)
            h = (h + 1) & (cap - 1);
        slots[h] = *s;
    }
    free(c->cache);
    c->cache = slots;
    c->cache_mask = cap - 1;
    return true;
}

static void word(call *c, const unsigned char *w, size_t n) {
    if (!c->t->use_cache || n < 2 || n > CACHE_MAX_WORD) {
        bpe(c, w, n);
        return;
    }
    if ((c->cache_used + 1) * 2 > (c->cache ? c->cache_mask + 1 : 0) && !cache_grow(c)) {
        bpe(c, w, n); /* no room for the cache: still correct, only slower */
        return;
    }
    uint64_t a, b;
    word_key(w, n, &a, &b);
    uint64_t h = key_hash(a, b, n) & c->cache_mask;
    for (;; h = (h + 1) & c->cache_mask) {
        const cache_slot *s = &c->cache[h];
        if (!s->len)
            break;
        if (s->a == a && s->b == b && s->len == n) {
            push_copy(c, s->ids_off, s->n_ids);
            return;
        }
    }
    size_t first = c->n_ids;
    bpe(c, w, n);
    if (c->st || c->n_ids > UINT32_MAX)
        return;
    c->cache[h] = (cache_slot){a, b, (uint32_t)n, (uint32_t)first, (uint32_t)(c->n_ids - first)};
    c->cache_used++;
}

typedef struct regex_ctx {
    call *c;
    const unsigned char *base; /* the fragment */
} regex_ctx;

static bool regex_word(void *ctx, size_t start, size_t end) {
    regex_ctx *r = ctx;
    word(r->c, r->base + start, end - start);
    return r->c->st == KS_OK;
}

static void fragment(call *c, size_t off, size_t len) {
    const unsigned char *s = c->text + off;
    if (c->t->regex) {
        regex_ctx r = {c, s};
        ks_status st = ks_pretok_regex_split(c->t->regex, (const char *)s, len, regex_word, &r);
        if (st && !c->st)
            c->st = st;
        return;
    }
    size_t ends[256], pos = 0, k;
    while (!c->st && (k = ks_pretok_split(c->t->pre, (const char *)s, len, pos, ends, KS_ARRAY_LEN(ends)))) {
        for (size_t i = 0; i < k; i++) {
            word(c, s + pos, ends[i] - pos);
            pos = ends[i];
        }
    }
}

/* ---- special tokens --------------------------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Where control tokens may be matched: nowhere, everywhere, or outside the spans. */
typedef struct control_mask {
    bool allowed;        /* KS_TOKENIZE_SPECIAL */
    const ks_span *no;   /* sorted, disjoint: no control token may overlap one */
    size_t n_no;
} control_mask;

/* Finds the special tokens llama.cpp's partition keeps: for each candidate in matching
 * order, its leftmost occurrences that overlap nothing kept before. That is the same as
 * taking every occurrence of every candidate, sorted by (candidate order, position),
 * and keeping each that overlaps no kept one. A control token's occurrence that the
 * mask forbids is not a candidate at all (as a control token is not one without
 * KS_TOKENIZE_SPECIAL): it neither becomes a token nor hides a shorter special token
 * inside it. Returns the kept ones as (position << 32 | candidate index), sorted by
 * position, in a malloc'd array. */
static size_t find_specials(call *c, size_t len, const control_mask *mask, uint64_t **out) {
    const ks_tokenizer *t = c->t;
    *out = NULL;
    if (!t->n_specials)
        return 0;
    uint64_t *found = NULL;
    size_t n = 0, cap = 0, next_no = 0; /* mask->no[next_no]: first span ending after pos */
    for (size_t pos = 0; pos < len; pos++) {
        if (t->only_first >= 0) { /* all candidates start with one byte (Qwen: '<') */
            const unsigned char *hit = memchr(c->text + pos, t->only_first, len - pos);
            if (!hit)
                break;
            pos = (size_t)(hit - c->text);
        }
        /* spans wholly before pos, and empty ones, forbid nothing here */
        while (next_no < mask->n_no &&
               (mask->no[next_no].end <= pos || mask->no[next_no].start == mask->no[next_no].end))
            next_no++;
        /* a control token at pos may be at most this long: it must end before the next
         * span starts */
        size_t control_room = 0;
        if (mask->allowed && next_no == mask->n_no)
            control_room = SIZE_MAX;
        else if (mask->allowed && mask->no[next_no].start > pos)
            control_room = mask->no[next_no].start - pos;
        unsigned b = c->text[pos];
        for (uint32_t k = t->first_off[b]; k < t->first_off[b + 1]; k++) {
            const special *sp = &t->specials[t->by_first[k]];
            if ((sp->control && sp->len > control_room) || sp->len > len - pos ||
                (sp->len > 1 && c->text[pos + 1] != (unsigned char)sp->text[1]) ||
                memcmp(c->text + pos, sp->text, sp->len))
                continue;
            uint64_t *more = grow(c, found, n, &cap, sizeof *more, 64);
            if (!more) {
                free(found);
                return 0;
            }
            found = more;
            found[n++] = ((uint64_t)t->by_first[k] << 32) | pos;
        }
    }
    if (!n)
        return 0;
    qsort(found, n, sizeof *found, cmp_u64);
    uint8_t *taken = calloc(len, 1);
    if (!taken) {
        free(found);
        c->st = KS_ERR_NOMEM;
        return 0;
    }
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t k = (uint32_t)(found[i] >> 32);
        size_t pos = (uint32_t)found[i], sl = t->specials[k].len;
        if (taken[pos] || taken[pos + sl - 1] || memchr(taken + pos, 1, sl))
            continue;
        memset(taken + pos, 1, sl);
        found[kept++] = ((uint64_t)pos << 32) | k;
    }
    free(taken);
    qsort(found, kept, sizeof *found, cmp_u64);
    *out = found;
    return kept;
}

/* ---- the call --------------------------------------------------------------------------------- */

/* Where each id's bytes begin: a kept special token at its position, the ids of a
 * fragment one after the other by the bytes each stands for (a fragment's ids spell
 * exactly its bytes), an added bos at 0 and an added eos at the end. */
static void fill_starts(const call *c, const uint64_t *sp, size_t n_sp, bool bos, bool eos, size_t *starts) {
    const ks_tokenizer *t = c->t;
    size_t k = 0, p = 0;
    if (bos)
        starts[k++] = 0;
    for (size_t i = 0; i <= n_sp; i++) {
        size_t at = i < n_sp ? (size_t)(sp[i] >> 32) : c->text_len;
        while (p < at) {
            KS_ASSERT(k < c->n_ids && t->raw_len[c->ids[k]] > 0);
            starts[k] = p;
            p += (size_t)t->raw_len[c->ids[k++]];
        }
        if (i < n_sp) {
            starts[k++] = at;
            p = at + t->specials[(uint32_t)sp[i]].len;
        }
    }
    if (eos)
        starts[k++] = c->text_len;
    KS_ASSERT(k == c->n_ids && p == c->text_len);
}

/* The whole call. starts: NULL, or where to put a malloc'd array of the ids' starts. */
static ks_status run(const ks_tokenizer *t, const char *text, size_t len, unsigned flags, const control_mask *mask,
                     size_t **starts, call *c) {
    memset(c, 0, sizeof *c);
    c->t = t;
    c->text = (const unsigned char *)text;
    c->text_len = len;
    if (!text && len)
        return KS_ERR_INVALID;
    if (len >= UINT32_MAX)
        return KS_ERR_INVALID; /* positions are 32-bit */
    bool bos = (flags & KS_TOKENIZE_ADD_SPECIAL) && t->add_bos, eos = (flags & KS_TOKENIZE_ADD_SPECIAL) && t->add_eos;
    if (bos)
        push_id(c, t->bos);
    uint64_t *sp = NULL;
    size_t n_sp = find_specials(c, len, mask, &sp);
    size_t pos = 0;
    for (size_t i = 0; i <= n_sp && !c->st; i++) {
        size_t at = i < n_sp ? (size_t)(sp[i] >> 32) : len;
        if (at > pos)
            fragment(c, pos, at - pos);
        if (i < n_sp) {
            const special *s = &t->specials[(uint32_t)sp[i]];
            push_id(c, s->id);
            pos = at + s->len;
        }
    }
    if (eos)
        push_id(c, t->eos);
    if (starts && !c->st) {
        *starts = malloc((c->n_ids ? c->n_ids : 1) * sizeof **starts);
        if (*starts)
            fill_starts(c, sp, n_sp, bos, eos, *starts);
        else
            c->st = KS_ERR_NOMEM;
    }
    free(sp);
    return c->st;
}

static void call_free(call *c) {
    free(c->sym_id);
    free(c->sym_len);
    free(c->sym_next);
    free(c->sym_prev);
    free(c->heap);
    free(c->cache);
}

static control_mask mask_of(unsigned flags) {
    return (control_mask){(flags & KS_TOKENIZE_SPECIAL) != 0, NULL, 0};
}

ks_status ks_tokenize(const ks_tokenizer *t, const char *text, size_t len, unsigned flags, int32_t *out, size_t cap,
                      size_t *n) {
    call c;
    control_mask mask = mask_of(flags);
    ks_status s = run(t, text, len, flags, &mask, NULL, &c);
    call_free(&c);
    if (!s) {
        if (cap && c.n_ids)
            memcpy(out, c.ids, KS_MIN(cap, c.n_ids) * sizeof *out);
        *n = c.n_ids;
        if (c.n_ids > cap)
            s = KS_ERR_FULL;
    }
    free(c.ids);
    return s;
}

/* Hands the ids of a finished call to the caller (or frees them on failure). */
static ks_status take_ids(call *c, ks_status s, int32_t **out, size_t *n) {
    call_free(c);
    if (!s && !c->ids && !(c->ids = malloc(sizeof(int32_t))))
        s = KS_ERR_NOMEM;
    if (s) {
        free(c->ids);
        return s;
    }
    *out = c->ids;
    *n = c->n_ids;
    return KS_OK;
}

ks_status ks_tokenize_alloc(const ks_tokenizer *t, const char *text, size_t len, unsigned flags, int32_t **out,
                            size_t *n) {
    call c;
    control_mask mask = mask_of(flags);
    return take_ids(&c, run(t, text, len, flags, &mask, NULL, &c), out, n);
}

ks_status ks_tokenize_masked(const ks_tokenizer *t, const char *text, size_t len, unsigned flags,
                             const ks_span *no_special, size_t n_spans, int32_t **out, size_t **starts,
                             size_t *n) {
    for (size_t i = 0; i < n_spans; i++)
        if (no_special[i].start > no_special[i].end || no_special[i].end > len ||
            (i > 0 && no_special[i].start < no_special[i - 1].end))
            return KS_ERR_INVALID;
    call c;
    control_mask mask = {(flags & KS_TOKENIZE_SPECIAL) != 0, no_special, n_spans};
    size_t *st = NULL;
    ks_status s = take_ids(&c, run(t, text, len, flags, &mask, starts ? &st : NULL, &c), out, n);
    if (s)
        free(st);
    else if (starts)
        *starts = st;
    return s;
}
