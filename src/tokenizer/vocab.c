/* vocab.c — see vocab.h. */
#include "tokenizer/vocab.h"

#include <stdlib.h>
#include <string.h>

/* Control tokens that end a generation in the families we serve. */
static const char *const eog_names[] = {"<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end_of_text|>",
                                        "<|eom_id|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>"};

struct ks_vocab {
    int32_t n;
    const ks_gguf_value *tokens;  /* STRING items */
    uint8_t *types;               /* (n) ks_token_type */
    uint8_t *eog;                 /* (n) */
    int32_t eos, bos;
    bool byte_level;
    size_t max_piece;             /* bytes */
};

/* GPT-2's table: the 188 printable Latin-1 bytes stand for themselves; the other 68
 * (0x00-0x20, 0x7F-0xA0, 0xAD), in byte order, for U+0100..U+0143. */
static bool printable_byte(unsigned b) { return (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae; }

uint32_t ks_byte_to_cp(uint8_t b) {
    if (printable_byte(b))
        return b;
    if (b <= 0x20)
        return 0x100u + b;
    if (b <= 0xa0)
        return 0x100u + 33 + (b - 0x7fu);
    return 0x100u + 67; /* 0xAD */
}

int ks_cp_to_byte(uint32_t cp) {
    if (cp < 0x100)
        return printable_byte(cp) ? (int)cp : -1;
    if (cp >= 0x100 + 68)
        return -1;
    unsigned k = cp - 0x100;
    return k < 33 ? (int)k : k < 67 ? (int)(0x7f + k - 33) : 0xad;
}

static int32_t opt_id(const ks_gguf *g, const char *key, int32_t n) {
    uint32_t id;
    if (!ks_gguf_find(g, key) || ks_gguf_get_u32(g, key, &id, NULL) || id >= (uint32_t)n)
        return -1;
    return (int32_t)id;
}

ks_status ks_vocab_load(ks_vocab **out, const ks_gguf *g, ks_err *err) {
    const ks_gguf_value *tokens = NULL;
    ks_status s = ks_gguf_get_arr(g, "tokenizer.ggml.tokens", KS_GGUF_STRING, &tokens, err);
    if (s)
        return s;
    if (tokens->v.arr.n == 0 || tokens->v.arr.n > INT32_MAX)
        return KS_ERRF(err, KS_ERR_INVALID, "%s: tokenizer.ggml.tokens has %llu entries", ks_gguf_path(g),
                       (unsigned long long)tokens->v.arr.n);
    ks_vocab *v = calloc(1, sizeof *v);
    if (!v)
        return KS_ERRF(err, KS_ERR_NOMEM, "out of memory");
    v->n = (int32_t)tokens->v.arr.n;
    v->tokens = tokens;
    v->types = malloc((size_t)v->n);
    v->eog = calloc((size_t)v->n, 1);
    if (!v->types || !v->eog) {
        ks_vocab_destroy(v);
        return KS_ERRF(err, KS_ERR_NOMEM, "out of memory");
    }
    memset(v->types, KS_TOKEN_NORMAL, (size_t)v->n);
    const ks_gguf_value *types = NULL;
    if (ks_gguf_find(g, "tokenizer.ggml.token_type")) {
        if ((s = ks_gguf_get_arr(g, "tokenizer.ggml.token_type", KS_GGUF_TYPE_COUNT, &types, err)) ||
            types->v.arr.n != tokens->v.arr.n || !types->v.arr.raw) {
            ks_vocab_destroy(v);
            return s ? s : KS_ERRF(err, KS_ERR_INVALID, "%s: tokenizer.ggml.token_type does not match the tokens",
                                   ks_gguf_path(g));
        }
        for (int32_t i = 0; i < v->n; i++) {
            int64_t t = ks_gguf_arr_get_i64(types, (uint64_t)i);
            v->types[i] = (uint8_t)(t >= KS_TOKEN_NORMAL && t <= KS_TOKEN_BYTE ? t : KS_TOKEN_NORMAL);
        }
    }
    ks_gguf_str model = {"", 0};
    if (ks_gguf_find(g, "tokenizer.ggml.model"))
        ks_gguf_get_str(g, "tokenizer.ggml.model", &model, NULL);
    v->byte_level = ks_gguf_str_eq(model, "gpt2");
    v->eos = opt_id(g, "tokenizer.ggml.eos_token_id", v->n);
    v->bos = opt_id(g, "tokenizer.ggml.bos_token_id", v->n);
    if (v->eos >= 0)
        v->eog[v->eos] = 1;
    for (int32_t i = 0; i < v->n; i++) {
        if (v->types[i] != KS_TOKEN_CONTROL && v->types[i] != KS_TOKEN_USER_DEFINED)
            continue;
        for (size_t k = 0; k < sizeof eog_names / sizeof eog_names[0]; k++)
            if (ks_gguf_str_eq(tokens->v.arr.items[i].v.str, eog_names[k]))
                v->eog[i] = 1;
    }
    char scratch[1];
    for (int32_t i = 0; i < v->n; i++) {
        size_t len = ks_vocab_decode(v, i, true, scratch, 0);
        if (len > v->max_piece)
            v->max_piece = len;
    }
    *out = v;
    return KS_OK;
}

void ks_vocab_destroy(ks_vocab *v) {
    if (!v)
        return;
    free(v->types);
    free(v->eog);
    free(v);
}

int32_t ks_vocab_n_tokens(const ks_vocab *v) { return v->n; }
int32_t ks_vocab_eos(const ks_vocab *v) { return v->eos; }
int32_t ks_vocab_bos(const ks_vocab *v) { return v->bos; }

ks_token_type ks_vocab_type(const ks_vocab *v, int32_t id) {
    return id >= 0 && id < v->n ? (ks_token_type)v->types[id] : KS_TOKEN_UNKNOWN;
}

bool ks_vocab_is_eog(const ks_vocab *v, int32_t id) { return id >= 0 && id < v->n && v->eog[id]; }

/* Decodes one UTF-8 code point at s (len bytes left); returns its length, 0 if invalid. */
static int utf8_next(const unsigned char *s, size_t len, uint32_t *cp) {
    if (s[0] < 0x80) { *cp = s[0]; return 1; }
    if ((s[0] & 0xe0) == 0xc0 && len >= 2 && (s[1] & 0xc0) == 0x80) {
        *cp = ((uint32_t)(s[0] & 0x1f) << 6) | (s[1] & 0x3f);
        return 2;
    }
    if ((s[0] & 0xf0) == 0xe0 && len >= 3 && (s[1] & 0xc0) == 0x80 && (s[2] & 0xc0) == 0x80) {
        *cp = ((uint32_t)(s[0] & 0x0f) << 12) | ((uint32_t)(s[1] & 0x3f) << 6) | (s[2] & 0x3f);
        return 3;
    }
    if ((s[0] & 0xf8) == 0xf0 && len >= 4 && (s[1] & 0xc0) == 0x80 && (s[2] & 0xc0) == 0x80 &&
        (s[3] & 0xc0) == 0x80) {
        *cp = ((uint32_t)(s[0] & 0x07) << 18) | ((uint32_t)(s[1] & 0x3f) << 12) |
              ((uint32_t)(s[2] & 0x3f) << 6) | (s[3] & 0x3f);
        return 4;
    }
    return 0;
}

size_t ks_vocab_decode(const ks_vocab *v, int32_t id, bool special, char *buf, size_t cap) {
    if (id < 0 || id >= v->n)
        return 0;
    ks_token_type t = (ks_token_type)v->types[id];
    if (t == KS_TOKEN_CONTROL && !special)
        return 0;
    ks_gguf_str s = v->tokens->v.arr.items[id].v.str;
    size_t n = 0;
    if (!v->byte_level || t == KS_TOKEN_CONTROL || t == KS_TOKEN_USER_DEFINED) {
        for (uint64_t i = 0; i < s.len; i++, n++)
            if (n < cap)
                buf[n] = s.ptr[i];
        return n;
    }
    const unsigned char *p = (const unsigned char *)s.ptr;
    size_t left = (size_t)s.len;
    while (left > 0) {
        uint32_t cp = 0;
        int k = utf8_next(p, left, &cp);
        int byte = k > 0 ? ks_cp_to_byte(cp) : -1;
        if (byte < 0) {
            /* Not a byte-level code point: copy the raw bytes through. */
            k = k > 0 ? k : 1;
            for (int i = 0; i < k; i++, n++)
                if (n < cap)
                    buf[n] = (char)p[i];
        } else {
            if (n < cap)
                buf[n] = (char)byte;
            n++;
        }
        p += k;
        left -= (size_t)k;
    }
    return n;
}

ks_gguf_str ks_vocab_text(const ks_vocab *v, int32_t id) {
    ks_gguf_str none = {"", 0};
    return id >= 0 && id < v->n ? v->tokens->v.arr.items[id].v.str : none;
}

bool ks_vocab_is_byte_level(const ks_vocab *v) { return v->byte_level; }

size_t ks_vocab_max_piece(const ks_vocab *v) { return v->max_piece; }
