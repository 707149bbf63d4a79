/* kv_key.h — the content address of a full KV block.
 *
 *   key_0 = H(seed,  tokens of block 0)      seed = H(fingerprint, KV type, B)
 *   key_i = H(key_{i-1}, tokens of block i)  H = XXH3-128
 *
 * Equal keys mean equal token prefixes under the same model, KV type and block size, so
 * a key names the K/V bytes of its block wherever they live (RAM, disk). */
#ifndef KS_KV_KEY_H
#define KS_KV_KEY_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

typedef struct ks_kv_key {
    uint8_t b[16];
} ks_kv_key;

static inline bool ks_kv_key_eq(const ks_kv_key *a, const ks_kv_key *b) {
    return memcmp(a->b, b->b, 16) == 0;
}

static inline bool ks_kv_key_is_zero(const ks_kv_key *a) {
    static const uint8_t zero[16];
    return memcmp(a->b, zero, 16) == 0;
}

/* 32 lowercase hex digits + NUL. */
static inline void ks_kv_key_hex(const ks_kv_key *k, char out[33]) {
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        out[2 * i] = digits[k->b[i] >> 4];
        out[2 * i + 1] = digits[k->b[i] & 15];
    }
    out[32] = '\0';
}

#endif
