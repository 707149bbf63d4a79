/* fuzz_kv_block.c — libFuzzer target for KV block files (format: top of src/kv/kv_disk.c).
 * Any bytes must pass the header parser and the whole-file check cleanly or fail with
 * KS_ERR_CORRUPT and a one-line message; what passes must describe a file of exactly the
 * input's size whose token ids and payload lie inside it (ASan checks the bounds). The
 * corpus (tests/fuzz/corpus/kv_block, make_kv_block_corpus.py) replays in test_kv_disk.c. */
#include "kv/kv_disk.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_failure(ks_status s, const ks_err *err) {
    if (s != KS_ERR_CORRUPT || err->msg[0] == '\0' || strchr(err->msg, '\n'))
        abort(); /* every rejection is a corruption that explains itself on one line */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* Copy so reads past the input are caught exactly at its end. */
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    if (size)
        memcpy(copy, data, size);
    ks_err err;
    ks_err_clear(&err);
    ks_kv_block_header h;
    ks_status s = ks_kv_block_header_parse(&h, copy, size, &err);
    if (s != KS_OK) {
        check_failure(s, &err);
    } else if (h.file_bytes < KS_KV_BLOCK_HEADER_BYTES || h.block_tokens < 1 || h.n_layer < 1) {
        abort(); /* a parsed header always describes a sane geometry */
    }
    ks_err_clear(&err);
    s = ks_kv_block_check(&h, copy, size, &err);
    volatile uint64_t sink = 0;
    if (s == KS_OK) {
        if (h.file_bytes != size)
            abort();
        const uint8_t *tokens = copy + KS_KV_BLOCK_HEADER_BYTES;
        const uint8_t *payload = tokens + 4 * (size_t)h.block_tokens;
        sink += tokens[4 * (size_t)h.block_tokens - 1] + payload[0] + payload[h.payload_bytes - 1];
    } else {
        check_failure(s, &err);
    }
    (void)sink;
    free(copy);
    return 0;
}
