/* fuzz_toolcall.c — libFuzzer target for the streaming tool-call parsers.
 *
 * Input: one flags byte (bit 0: 0 Hermes, 1 Qwen3-Coder; the other bits seed the random
 * cuts), then the model output, any bytes. The output is parsed whole, byte by byte and
 * cut at random places; abort() unless:
 *   - no run breaks the parser's contract (tests/fuzz/toolcall_check.h: text and calls
 *     account for every byte, ARGS pieces concatenate to the arguments, which jansson
 *     reads, ids well formed, events in order);
 *   - all runs give the same events in normal form.
 * The tools (typed schema properties included) are fixed, so that well-formed calls are
 * reachable; tests/fuzz/toolcall.dict holds the tags and names.
 *
 *   ./build-fuzz/tests/fuzz/fuzz_toolcall tests/fuzz/corpus/toolcall \
 *       -dict=tests/fuzz/toolcall.dict -max_total_time=60 */
#include "toolcall_check.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char k_tools[] =
    "[{\"name\": \"bash\", \"input_schema\": {\"properties\": {\"command\": {\"type\": \"string\"},"
    " \"timeout\": {\"type\": \"integer\"}}}},"
    " {\"name\": \"calc\", \"parameters\": {\"properties\": {\"x\": {\"type\": \"number\"},"
    " \"flag\": {\"type\": \"boolean\"}, \"opts\": {\"type\": \"object\"},"
    " \"items\": {\"type\": \"array\"}}}},"
    " {\"type\": \"function\", \"function\": {\"name\": \"f\"}}]";

static json_t *tools;

static void die(const char *what, const tc_log *log, const char *detail) {
    fprintf(stderr, "fuzz_toolcall: %s: %s\nevents:\n%s\n", what, detail, log->out.s);
    abort();
}

/* One run; aborts on a contract violation. The caller frees the log. */
static void run(tc_log *log, ks_toolcall_format fmt, const char *out, size_t n,
                const size_t *cuts, size_t n_cuts) {
    const ks_status s = tc_check_run(log, fmt, tools, 1, out, n, cuts, n_cuts);
    if (s != KS_OK)
        die("parser failed", log, ks_status_str(s));
    if (log->err[0])
        die("contract broken", log, log->err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0)
        return 0;
    if (!tools) {
        json_error_t jerr;
        tools = json_loads(k_tools, 0, &jerr);
        if (!tools)
            abort();
    }
    const ks_toolcall_format fmt = (data[0] & 1) ? KS_TOOLCALL_QWEN3_CODER : KS_TOOLCALL_HERMES;
    /* A copy, so that reads past the output are caught exactly at its end. */
    const size_t n = size - 1;
    char *out = malloc(n ? n : 1);
    size_t *cuts = malloc((n ? n : 1) * sizeof *cuts);
    if (!out || !cuts)
        abort();
    memcpy(out, data + 1, n);

    tc_log whole, bytes, random;
    run(&whole, fmt, out, n, NULL, 0);
    for (size_t i = 0; i + 1 < n; i++)
        cuts[i] = i + 1;
    run(&bytes, fmt, out, n, cuts, n ? n - 1 : 0);
    if (strcmp(whole.out.s, bytes.out.s) != 0)
        die("byte by byte differs from whole", &bytes, whole.out.s);
    ks_rng rng;
    ks_rng_seed(&rng, data[0] >> 1);
    const size_t k = tc_check_random_cuts(&rng, n, 2 + (data[0] >> 1) % 13, cuts);
    run(&random, fmt, out, n, cuts, k);
    if (strcmp(whole.out.s, random.out.s) != 0)
        die("random cuts differ from whole", &random, whole.out.s);

    tc_log_free(&whole);
    tc_log_free(&bytes);
    tc_log_free(&random);
    free(cuts);
    free(out);
    return 0;
}
