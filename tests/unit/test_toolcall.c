/* test_toolcall.c — the streaming tool-call parsers (Hermes JSON and Qwen3-Coder XML) and
 * the tool-call memory.
 *
 * Every output here goes through check(): fed whole, byte by byte, cut at every single
 * position, at every pair of positions (short outputs) and at random places, it must give
 * the same events in normal form (tests/fuzz/toolcall_check.h), and the harness checks
 * the contract on each run: text and calls account for every byte, ARGS pieces
 * concatenate to the final arguments, ids are well formed and unique. */
#include "../fuzz/toolcall_check.h"
#include "chat/toolcall_memory.h"
#include "chat/toolcall_parser.h"
#include "sample/rng.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ----------------------------------------------------------------------------- */

static const char k_tools_json[] =
    "["
    " {\"name\": \"read_file\", \"description\": \"Read a file\", \"input_schema\": {\"type\": "
    "\"object\", \"properties\": {\"path\": {\"type\": \"string\"}, \"limit\": {\"type\": "
    "\"integer\"}}, \"required\": [\"path\"]}},"
    " {\"name\": \"calc\", \"parameters\": {\"type\": \"object\", \"properties\": {"
    "  \"x\": {\"type\": \"number\"}, \"flag\": {\"type\": \"boolean\"},"
    "  \"opts\": {\"type\": \"object\"}, \"items\": {\"type\": \"array\", \"items\": {}},"
    "  \"n\": {\"type\": [\"null\", \"integer\"]},"
    "  \"m\": {\"anyOf\": [{\"type\": \"null\"}, {\"type\": \"number\"}]},"
    "  \"s\": {\"type\": \"string\"}, \"u\": {\"description\": \"untyped\"}}}},"
    " {\"type\": \"function\", \"function\": {\"name\": \"bash\", \"parameters\": {\"type\": "
    "\"object\", \"properties\": {\"command\": {\"type\": \"string\"}}}}},"
    " {\"description\": \"no name: skipped\"}"
    "]";

/* A new reference to the tools (parsed once per test process). */
static json_t *tools(void) {
    static json_t *parsed;
    if (!parsed) {
        json_error_t jerr;
        parsed = json_loads(k_tools_json, 0, &jerr);
        cr_assert_not_null(parsed, "tools json: %s", jerr.text);
    }
    return json_incref(parsed);
}

/* The normal form of one run (caller frees); fails the test on a contract violation. */
static char *run_cuts(ks_toolcall_format fmt, const char *out, size_t n, const size_t *cuts,
                      size_t n_cuts) {
    json_t *t = tools();
    tc_log log;
    const ks_status s = tc_check_run(&log, fmt, t, 42, out, n, cuts, n_cuts);
    json_decref(t);
    cr_assert_eq(s, KS_OK, "parser status %s", ks_status_str(s));
    cr_assert_eq(log.err[0], '\0', "contract: %s\nevents:\n%s", log.err, log.out.s);
    char *res = strdup(log.out.s);
    tc_log_free(&log);
    return res;
}

/* Runs every split of interest and returns the common normal form (caller frees). */
static char *check_n(ks_toolcall_format fmt, const char *out, size_t n) {
    char *whole = run_cuts(fmt, out, n, NULL, 0);
    size_t *cuts = calloc(n + 1, sizeof *cuts);
    for (size_t i = 0; i + 1 < n; i++)
        cuts[i] = i + 1;
    char *bytewise = run_cuts(fmt, out, n, cuts, n ? n - 1 : 0);
    cr_assert_str_eq(bytewise, whole, "byte by byte differs from whole for:\n%.*s", (int)n, out);
    free(bytewise);
    for (size_t i = 1; i < n; i++) {
        char *one = run_cuts(fmt, out, n, &i, 1);
        cr_assert_str_eq(one, whole, "cut at %zu differs for:\n%.*s", i, (int)n, out);
        free(one);
    }
    if (n <= 100) {
        for (size_t i = 1; i < n; i++) {
            for (size_t j = i + 1; j < n; j++) {
                const size_t two[2] = {i, j};
                char *r = run_cuts(fmt, out, n, two, 2);
                cr_assert_str_eq(r, whole, "cuts at %zu, %zu differ for:\n%.*s", i, j, (int)n, out);
                free(r);
            }
        }
    }
    ks_rng rng;
    ks_rng_seed(&rng, n);
    for (int round = 0; round < 50; round++) {
        const size_t k = tc_check_random_cuts(&rng, n, 2 + (size_t)round % 7, cuts);
        char *r = run_cuts(fmt, out, n, cuts, k);
        cr_assert_str_eq(r, whole, "random cuts (round %d) differ for:\n%.*s", round, (int)n, out);
        free(r);
    }
    free(cuts);
    return whole;
}

static char *check(ks_toolcall_format fmt, const char *out) {
    return check_n(fmt, out, strlen(out));
}

/* Lines joined with '\n', NULL-terminated list. */
static char *lines(const char *const *l) {
    tc_str b = {0};
    tc_str_add(&b, "", 0);
    for (; *l; l++) {
        tc_str_addf(&b, *l);
        tc_str_addf(&b, "\n");
    }
    return b.s;
}

static void expect(ks_toolcall_format fmt, const char *out, const char *const *want_lines) {
    char *got = check(fmt, out);
    char *want = lines(want_lines);
    cr_assert_str_eq(got, want, "events for:\n%s", out);
    free(got);
    free(want);
}

/* Output that must stay text, exactly, with no call started. */
static void expect_text(ks_toolcall_format fmt, const char *out) {
    tc_str want = {0};
    tc_str_addf(&want, "T \"");
    tc_str_quote(&want, out, strlen(out));
    tc_str_addf(&want, "\"\n");
    char *got = check(fmt, out);
    cr_assert_str_eq(got, want.s, "should be text:\n%s", out);
    free(got);
    free(want.s);
}

/* The only complete call of an output (checked as above); caller frees the strings. */
typedef struct one_call {
    char *name, *args, *raw;
} one_call;

static void first_call_sink(void *user, const ks_toolcall_event *ev) {
    one_call *c = user;
    if (ev->type == KS_TOOLCALL_END && !c->name) {
        c->name = strdup(ev->call->name);
        c->args = strndup(ev->call->args, ev->call->args_len);
        c->raw = strndup(ev->call->raw, ev->call->raw_len);
    }
}

static one_call only_call(ks_toolcall_format fmt, const char *out) {
    free(check(fmt, out));
    one_call c = {0};
    json_t *t = tools();
    ks_toolcall_parser *p = NULL;
    cr_assert_eq(ks_toolcall_parser_create(&p, fmt, t, 7, first_call_sink, &c, NULL), KS_OK);
    json_decref(t);
    cr_assert_eq(ks_toolcall_parser_feed(p, out, strlen(out)), KS_OK);
    cr_assert_eq(ks_toolcall_parser_finish(p), KS_OK);
    cr_assert_eq(ks_toolcall_parser_n_calls(p), 1, "calls in:\n%s", out);
    ks_toolcall_parser_destroy(p);
    cr_assert_not_null(c.name, "no call in:\n%s", out);
    return c;
}

static void free_call(one_call *c) {
    free(c->name);
    free(c->args);
    free(c->raw);
}

/* ---- Hermes (Qwen3) ------------------------------------------------------------------------ */

#define H KS_TOOLCALL_HERMES
#define X KS_TOOLCALL_QWEN3_CODER

Test(toolcall, test_toolcall_hermes_single_call_with_text_before) {
    expect(H,
           "I'll read it.\n\n<tool_call>\n{\"name\": \"read_file\", \"arguments\": {\"path\": "
           "\"a.c\"}}\n</tool_call>",
           (const char *[]){"T \"I'll read it.\\n\\n\"", "S #0 read_file",
                            "A #0 {\"path\": \"a.c\"}", "E #0 read_file {\"path\": \"a.c\"}", NULL});
}

Test(toolcall, test_toolcall_hermes_parallel_calls_text_between_and_after) {
    expect(H,
           "<tool_call>\n{\"name\": \"read_file\", \"arguments\": {\"path\": \"a.c\", \"limit\": "
           "5}}\n</tool_call>\n<tool_call>\n{\"name\": \"bash\", \"arguments\": {\"command\": "
           "\"ls -l\"}}\n</tool_call>\nDone.",
           (const char *[]){"S #0 read_file", "A #0 {\"path\": \"a.c\", \"limit\": 5}",
                            "E #0 read_file {\"path\": \"a.c\", \"limit\": 5}", "T \"\\n\"",
                            "S #1 bash", "A #1 {\"command\": \"ls -l\"}",
                            "E #1 bash {\"command\": \"ls -l\"}", "T \"\\nDone.\"", NULL});
}

Test(toolcall, test_toolcall_hermes_arguments_as_sampled) {
    /* Nested values, odd spacing, escapes and numbers pass through untouched. */
    one_call c = only_call(
        H, "<tool_call>{ \"arguments\" :{\"opts\":{\"a\":[1, 2.5e-3,{\"b\":null}],\"t\":true},"
           "\"s\":\"q\\\"\\u00e9\\n\u00e9\"} ,\"name\":\"calc\",\"id\": 7}</tool_call>");
    cr_assert_str_eq(c.name, "calc");
    cr_assert_str_eq(c.args, "{\"opts\":{\"a\":[1, 2.5e-3,{\"b\":null}],\"t\":true},"
                             "\"s\":\"q\\\"\\u00e9\\n\u00e9\"}");
    free_call(&c);
}

Test(toolcall, test_toolcall_hermes_arguments_before_name_follow_the_start) {
    expect(H, "<tool_call>\n{\"arguments\": {\"command\": \"pwd\"}, \"name\": \"bash\"}\n</tool_call>",
           (const char *[]){"S #0 bash", "A #0 {\"command\": \"pwd\"}",
                            "E #0 bash {\"command\": \"pwd\"}", NULL});
}

Test(toolcall, test_toolcall_hermes_escaped_name_is_decoded) {
    one_call c = only_call(H, "<tool_call>{\"name\": \"b\\u0061sh\", \"arguments\": {}}</tool_call>");
    cr_assert_str_eq(c.name, "bash");
    cr_assert_str_eq(c.args, "{}");
    free_call(&c);
}

Test(toolcall, test_toolcall_hermes_raw_is_the_sampled_block) {
    const char *out = "x <tool_call>\n{\"name\": \"bash\", \"arguments\": {\"command\": \"ls\"}}\n"
                      "</tool_call> y";
    one_call c = only_call(H, out);
    cr_assert_str_eq(c.raw, "<tool_call>\n{\"name\": \"bash\", \"arguments\": {\"command\": "
                            "\"ls\"}}\n</tool_call>");
    free_call(&c);
}

Test(toolcall, test_toolcall_hermes_malformed_before_start_stays_text) {
    static const char *const outs[] = {
        /* unknown tool */
        "<tool_call>\n{\"name\": \"nope\", \"arguments\": {}}\n</tool_call>",
        /* not JSON */
        "<tool_call>\nread_file(path='a')\n</tool_call>",
        "Use the <tool_call> tag to call tools.",
        "<tool_call>\n{'name': 'bash'}\n</tool_call>",
        /* name not a string */
        "<tool_call>\n{\"name\": 5, \"arguments\": {}}\n</tool_call>",
        /* nothing after the tag, partial tags */
        "<tool_call>",
        "<tool_call>\n",
        "before <tool_ca",
        "<<<tool_call",
        "a < b <tool_callx> c",
        "</tool_call>",
        /* no tools in the Hermes body at all */
        "<tool_call>\n{}\n</tool_call>",
        "<tool_call>\n{\"arguments\": {}}\n</tool_call>",
    };
    for (size_t i = 0; i < KS_ARRAY_LEN(outs); i++)
        expect_text(H, outs[i]);
}

Test(toolcall, test_toolcall_hermes_broken_after_start_aborts_then_text) {
    /* bad JSON inside the arguments */
    expect(H, "<tool_call>\n{\"name\": \"read_file\", \"arguments\": {\"path\": a.c}}\n</tool_call>",
           (const char *[]){"S #0 read_file", "A #0 {\"path\": ", "X #0",
                            "T \"<tool_call>\\n{\"name\": \"read_file\", \"arguments\": {\"path\": "
                            "a.c}}\\n</tool_call>\"",
                            NULL});
    /* the output ends inside the call (max_tokens) */
    expect(H, "Sure. <tool_call>\n{\"name\": \"bash\", \"arguments\": {\"command\": \"ma",
           (const char *[]){"T \"Sure. \"", "S #0 bash", "A #0 {\"command\": \"ma", "X #0",
                            "T \"<tool_call>\\n{\"name\": \"bash\", \"arguments\": {\"command\": "
                            "\"ma\"",
                            NULL});
    /* the object is complete but the closing tag never comes */
    expect(H, "<tool_call>\n{\"name\": \"bash\", \"arguments\": {}}\n</tool_cal",
           (const char *[]){"S #0 bash", "A #0 {}", "X #0",
                            "T \"<tool_call>\\n{\"name\": \"bash\", \"arguments\": {}}\\n</tool_cal\"",
                            NULL});
    /* arguments missing, or not an object, or said twice */
    expect(H, "<tool_call>{\"name\": \"bash\"}</tool_call>",
           (const char *[]){"S #0 bash", "X #0", "T \"<tool_call>{\"name\": \"bash\"}</tool_call>\"",
                            NULL});
    expect(H, "<tool_call>{\"name\": \"bash\", \"arguments\": \"{}\"}</tool_call>",
           (const char *[]){"S #0 bash", "X #0",
                            "T \"<tool_call>{\"name\": \"bash\", \"arguments\": \"{}\"}</tool_call>\"",
                            NULL});
    expect(H, "<tool_call>{\"name\": \"bash\", \"arguments\": {}, \"arguments\": {}}</tool_call>",
           (const char *[]){"S #0 bash", "A #0 {}", "X #0",
                            "T \"<tool_call>{\"name\": \"bash\", \"arguments\": {}, \"arguments\": "
                            "{}}</tool_call>\"",
                            NULL});
    /* text between the object and the closing tag */
    expect(H, "<tool_call>{\"name\": \"bash\", \"arguments\": {}} oops</tool_call>",
           (const char *[]){"S #0 bash", "A #0 {}", "X #0",
                            "T \"<tool_call>{\"name\": \"bash\", \"arguments\": {}} oops</tool_call>\"",
                            NULL});
}

Test(toolcall, test_toolcall_hermes_jansson_limits_abort_at_the_end) {
    /* Grammatical JSON that jansson will not read: duplicate keys, an integer beyond
     * int64, U+0000. */
    static const char *const args[] = {
        "{\"command\": \"a\", \"command\": \"b\"}",
        "{\"command\": 123456789012345678901234567890}",
        "{\"command\": \"\\u0000\"}",
    };
    for (size_t i = 0; i < KS_ARRAY_LEN(args); i++) {
        char out[256], a_line[128], t_line[300];
        snprintf(out, sizeof out, "<tool_call>{\"name\": \"bash\", \"arguments\": %s}</tool_call>",
                 args[i]);
        snprintf(a_line, sizeof a_line, "A #0 %s", args[i]);
        snprintf(t_line, sizeof t_line, "T \"%s\"", out);
        expect(H, out, (const char *[]){"S #0 bash", a_line, "X #0", t_line, NULL});
    }
}

Test(toolcall, test_toolcall_hermes_nested_open_tag_resumes_at_the_inner_one) {
    expect(H, "<tool_call>\n<tool_call>\n{\"name\": \"bash\", \"arguments\": {}}\n</tool_call>",
           (const char *[]){"T \"<tool_call>\\n\"", "S #0 bash", "A #0 {}", "E #0 bash {}", NULL});
    /* broken JSON then a fresh call: parsing resumes at the '<' that broke it */
    expect(H,
           "<tool_call>{\"name\": \"bash\", \"arguments\": {\"command\": <tool_call>{\"name\": "
           "\"bash\", \"arguments\": {}}</tool_call>",
           (const char *[]){"S #0 bash", "A #0 {\"command\": ", "X #0",
                            "T \"<tool_call>{\"name\": \"bash\", \"arguments\": {\"command\": \"",
                            "S #1 bash", "A #1 {}", "E #1 bash {}", NULL});
}

Test(toolcall, test_toolcall_hermes_tag_inside_a_string_is_content) {
    one_call c = only_call(H, "<tool_call>{\"name\": \"bash\", \"arguments\": {\"command\": "
                              "\"echo '</tool_call><tool_call>'\"}}</tool_call>");
    cr_assert_str_eq(c.args, "{\"command\": \"echo '</tool_call><tool_call>'\"}");
    free_call(&c);
}

Test(toolcall, test_toolcall_hermes_json_grammar_edges) {
    static const char *const bad[] = {
        "{\"command\": 01}", "{\"command\": 1.}", "{\"command\": -}", "{\"command\": 1e}",
        "{\"command\": tru}", "{\"command\": \"\\x\"}", "{\"command\": \"\\u12g4\"}",
        "{\"command\": [1,]}", "{\"command\": {\"a\" 1}}", "{\"command\": \"a\nb\"}",
        "{\"command\": \"\xc3\x28\"}", "{\"command\": \"\xed\xa0\x80\"}", "{\"command\": 1,}",
        "{\"command\": [}", "{\"command\": ]}", "{\"command\": \"\xf4\x90\x80\x80\"}",
    };
    for (size_t i = 0; i < KS_ARRAY_LEN(bad); i++) {
        char out[128];
        snprintf(out, sizeof out, "<tool_call>{\"name\": \"bash\", \"arguments\": %s}</tool_call>",
                 bad[i]);
        char *got = check(H, out);
        cr_assert(strstr(got, "X #0\n") && !strstr(got, "E #0"), "should abort: %s\n%s", out, got);
        free(got);
    }
    static const char *const good[] = {
        "{\"command\": -0.5E+10}", "{\"command\": [[], {}, [{}], \"\", 0, -1, 1e5, false, null]}",
        "{\"command\": \"\\/\\b\\f\\r\\t\\ud83d\\ude00 \xf0\x9f\x98\x80\"}", "{ }",
    };
    for (size_t i = 0; i < KS_ARRAY_LEN(good); i++) {
        char out[160];
        snprintf(out, sizeof out, "<tool_call>{\"name\": \"bash\", \"arguments\": %s}</tool_call>",
                 good[i]);
        one_call c = only_call(H, out);
        cr_assert_str_eq(c.args, good[i]);
        free_call(&c);
    }
}

/* A call whose arguments hold `levels` nested arrays. */
static char *nested_call(int levels) {
    tc_str b = {0};
    tc_str_addf(&b, "<tool_call>{\"name\": \"bash\", \"arguments\": {\"a\": ");
    for (int i = 0; i < levels; i++)
        tc_str_addf(&b, "[");
    for (int i = 0; i < levels; i++)
        tc_str_addf(&b, "]");
    tc_str_addf(&b, "}}</tool_call>");
    return b.s;
}

Test(toolcall, test_toolcall_hermes_nesting_limit) {
    /* The call object and the arguments object take two levels. */
    char *ok = nested_call(KS_TOOLCALL_JSON_MAX_DEPTH - 2);
    one_call c = only_call(H, ok);
    free_call(&c);
    free(ok);
    char *too_deep = nested_call(KS_TOOLCALL_JSON_MAX_DEPTH - 1);
    char *got = check(H, too_deep);
    cr_assert(strstr(got, "X #0\n") && !strstr(got, "E #0"), "%s", got);
    free(got);
    free(too_deep);
}

/* ---- Qwen3-Coder XML ----------------------------------------------------------------------- */

Test(toolcall, test_toolcall_xml_single_call_with_text_before) {
    expect(X,
           "Let me look.\n<tool_call>\n<function=read_file>\n<parameter=path>\nsrc/main.c\n"
           "</parameter>\n<parameter=limit>\n20\n</parameter>\n</function>\n</tool_call>",
           (const char *[]){"T \"Let me look.\\n\"", "S #0 read_file",
                            "A #0 {\"path\": \"src/main.c\", \"limit\": 20}",
                            "E #0 read_file {\"path\": \"src/main.c\", \"limit\": 20}", NULL});
}

Test(toolcall, test_toolcall_xml_parallel_calls_text_between_and_after) {
    expect(X,
           "<tool_call>\n<function=bash>\n<parameter=command>\nls\n</parameter>\n</function>\n"
           "</tool_call>\n<tool_call>\n<function=read_file>\n<parameter=path>\na.c\n</parameter>\n"
           "</function>\n</tool_call>\nthat's all",
           (const char *[]){"S #0 bash", "A #0 {\"command\": \"ls\"}", "E #0 bash {\"command\": \"ls\"}",
                            "T \"\\n\"", "S #1 read_file", "A #1 {\"path\": \"a.c\"}",
                            "E #1 read_file {\"path\": \"a.c\"}", "T \"\\nthat's all\"", NULL});
}

Test(toolcall, test_toolcall_xml_no_parameters_and_compact_spacing) {
    expect(X, "<tool_call><function=bash></function></tool_call>",
           (const char *[]){"S #0 bash", "A #0 {}", "E #0 bash {}", NULL});
    one_call c = only_call(X, "<tool_call>  <function=bash> \r\n <parameter=command>echo hi"
                              "</parameter>\t</function>\n\n</tool_call>");
    cr_assert_str_eq(c.args, "{\"command\": \"echo hi\"}");
    free_call(&c);
}

/* The arguments of a one-parameter calc call. */
static char *calc_args(const char *key, const char *value) {
    char out[1024];
    snprintf(out, sizeof out,
             "<tool_call>\n<function=calc>\n<parameter=%s>\n%s\n</parameter>\n</function>\n"
             "</tool_call>",
             key, value);
    one_call c = only_call(X, out);
    free(c.name);
    free(c.raw);
    return c.args;
}

static void expect_value(const char *key, const char *value, const char *want_json) {
    char *args = calc_args(key, value);
    char want[1024];
    snprintf(want, sizeof want, "{\"%s\": %s}", key, want_json);
    cr_assert_str_eq(args, want, "parameter %s = [%s]", key, value);
    free(args);
}

Test(toolcall, test_toolcall_xml_schema_typing) {
    /* string and untyped: the value byte for byte, as a JSON string */
    expect_value("s", "hello world", "\"hello world\"");
    expect_value("s", "42", "\"42\"");
    expect_value("s", "null", "\"null\"");
    expect_value("s", "true", "\"true\"");
    expect_value("u", "{\"a\": 1}", "\"{\\\"a\\\": 1}\"");
    expect_value("unknown_key", "7", "\"7\"");
    /* integer */
    expect_value("n", "5", "5");
    expect_value("n", "-12", "-12");
    expect_value("n", "  8 ", "8");
    expect_value("n", "2.5", "\"2.5\"");
    expect_value("n", "1e3", "\"1e3\"");
    expect_value("n", "12345678901234567890", "\"12345678901234567890\"");
    expect_value("n", "five", "\"five\"");
    expect_value("n", "", "\"\"");
    expect_value("n", "NULL", "null");
    /* number */
    expect_value("x", "3.25", "3.25");
    expect_value("x", "-1e-3", "-1e-3");
    expect_value("x", "7", "7");
    expect_value("m", "0.5", "0.5");
    expect_value("x", "NaN", "\"NaN\"");
    expect_value("x", ".5", "\".5\"");
    expect_value("x", "1e999", "\"1e999\"");
    /* boolean */
    expect_value("flag", "true", "true");
    expect_value("flag", "False", "false");
    expect_value("flag", " TRUE\n", "true");
    expect_value("flag", "yes", "\"yes\"");
    expect_value("flag", "null", "null");
    /* object and array: JSON of that kind, as written */
    expect_value("opts", "{\"a\": [1, 2], \"b\": {}}", "{\"a\": [1, 2], \"b\": {}}");
    expect_value("opts", "{\n  \"k\": \"v\"\n}", "{\n  \"k\": \"v\"\n}");
    expect_value("opts", "[1]", "\"[1]\"");
    expect_value("opts", "{\"a\": 1, \"a\": 2}", "\"{\\\"a\\\": 1, \\\"a\\\": 2}\"");
    expect_value("opts", "{'a': 1}", "\"{'a': 1}\"");
    expect_value("opts", "{bad", "\"{bad\"");
    expect_value("items", "[1, \"two\", null]", "[1, \"two\", null]");
    expect_value("items", "{}", "\"{}\"");
    expect_value("items", "[1,", "\"[1,\"");
}

Test(toolcall, test_toolcall_xml_string_values_exact) {
    /* Only the one leading and one trailing newline of the format are removed. */
    expect_value("s", "\nindented\n", "\"\\nindented\\n\"");
    expect_value("s", "", "\"\"");
    expect_value("s", "line1\nline2", "\"line1\\nline2\"");
    expect_value("s", "q\"b\\t\tc\x01", "\"q\\\"b\\\\t\\tc\\u0001\"");
    expect_value("s", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
    /* Tags that are not this value's closing tag are content. */
    expect_value("s", "a </para b </parameter", "\"a </para b </parameter\"");
    expect_value("s", "<parameter=x>\ny\n</function>", "\"<parameter=x>\\ny\\n</function>\"");
    expect_value("s", "echo '<tool_call>'", "\"echo '<tool_call>'\"");
    expect_value("s", "<<</</parameter", "\"<<</</parameter\"");
    /* Newlines right before a false closing tag stay. */
    expect_value("s", "a\n</parameterX", "\"a\\n</parameterX\"");
    expect_value("s", "a\n\n", "\"a\\n\\n\"");
    /* No newline at all around the value */
    one_call c = only_call(X, "<tool_call><function=calc><parameter=s>v</parameter></function>"
                              "</tool_call>");
    cr_assert_str_eq(c.args, "{\"s\": \"v\"}");
    free_call(&c);
    /* An empty value given as a single newline */
    c = only_call(X, "<tool_call><function=calc><parameter=s>\n</parameter></function></tool_call>");
    cr_assert_str_eq(c.args, "{\"s\": \"\"}");
    free_call(&c);
}

Test(toolcall, test_toolcall_xml_keys_escaped_and_ordered) {
    one_call c = only_call(X, "<tool_call>\n<function=calc>\n<parameter=x>\n1\n</parameter>\n"
                              "<parameter=we\"ird>\nv\n</parameter>\n<parameter=s>\nt\n</parameter>\n"
                              "</function>\n</tool_call>");
    cr_assert_str_eq(c.args, "{\"x\": 1, \"we\\\"ird\": \"v\", \"s\": \"t\"}");
    free_call(&c);
}

Test(toolcall, test_toolcall_xml_malformed_before_start_stays_text) {
    static const char *const outs[] = {
        "<tool_call>\n<function=nope>\n<parameter=a>\nb\n</parameter>\n</function>\n</tool_call>",
        "<tool_call>\n<function=Bash>\n</function>\n</tool_call>",
        "<tool_call>\n<function=bash\n>\n</function>\n</tool_call>",
        "<tool_call>\n<func=bash>\n</function>\n</tool_call>",
        "<tool_call>\nbash\n</tool_call>",
        "<tool_call>\n{\"name\": \"bash\", \"arguments\": {}}\n</tool_call>",
        "<tool_call>\n<function=",
        "<tool_call>\n<function=bash",
        "<tool_call>",
        "text <tool_call",
        "I will call <tool_call> now",
    };
    for (size_t i = 0; i < KS_ARRAY_LEN(outs); i++)
        expect_text(X, outs[i]);
}

Test(toolcall, test_toolcall_xml_broken_after_start_aborts_then_text) {
    static const char *const outs[] = {
        /* output ends inside the call: at each stage */
        "<tool_call>\n<function=bash>",
        "<tool_call>\n<function=bash>\n<parameter=command>\nls -",
        "<tool_call>\n<function=bash>\n<parameter=command>\nls\n</parameter>\n</function>\n",
        "<tool_call>\n<function=bash>\n<parameter=command>\nls\n</parameter>\n</function>\n</tool_c",
        "<tool_call>\n<function=bash>\n<parameter=command>\nls\n</parame",
        /* missing </function>, missing </parameter> before the next tag */
        "<tool_call>\n<function=bash>\n<parameter=command>\nls\n</parameter>\n</tool_call>",
        /* text between tags */
        "<tool_call>\n<function=bash>\noops\n<parameter=command>\nls\n</parameter>\n</function>\n"
        "</tool_call>",
        "<tool_call>\n<function=bash>\n</function>\ntrailing</tool_call>",
        /* the same parameter twice */
        "<tool_call>\n<function=bash>\n<parameter=command>\na\n</parameter>\n<parameter=command>\nb\n"
        "</parameter>\n</function>\n</tool_call>",
        /* invalid UTF-8 in a value or a key; a key over two lines */
        "<tool_call>\n<function=bash>\n<parameter=command>\n\xff\n</parameter>\n</function>\n"
        "</tool_call>",
        "<tool_call>\n<function=bash>\n<parameter=command>\n\xc3\n</parameter>\n</function>\n"
        "</tool_call>",
        "<tool_call>\n<function=bash>\n<parameter=com\xc3>\nx\n</parameter>\n</function>\n"
        "</tool_call>",
        "<tool_call>\n<function=bash>\n<parameter=com\nmand>\nx\n</parameter>\n</function>\n"
        "</tool_call>",
        /* U+0000 in a value: jansson will not read the arguments (length given below) */
        "<tool_call>\n<function=bash>\n<parameter=command>\na\0b\n</parameter>\n</function>\n"
        "</tool_call>",
    };
    static const char with_nul[] = "<tool_call>\n<function=bash>\n<parameter=command>\na\0b\n"
                                   "</parameter>\n</function>\n</tool_call>";
    for (size_t i = 0; i < KS_ARRAY_LEN(outs); i++) {
        const size_t n = i + 1 == KS_ARRAY_LEN(outs) ? sizeof with_nul - 1 : strlen(outs[i]);
        char *got = check_n(X, outs[i], n);
        tc_str want = {0};
        tc_str_addf(&want, "X #0\nT \"");
        tc_str_quote(&want, outs[i], n);
        tc_str_addf(&want, "\"\n");
        cr_assert(strncmp(got, "S #0 bash\n", 10) == 0, "case %zu: %s", i, got);
        cr_assert(strlen(got) >= want.len && strcmp(got + strlen(got) - want.len, want.s) == 0,
                  "case %zu should abort and become text:\n%s", i, got);
        free(want.s);
        free(got);
    }
}

Test(toolcall, test_toolcall_xml_nested_open_tag_resumes_at_the_inner_one) {
    expect(X,
           "<tool_call>\n<tool_call>\n<function=bash>\n<parameter=command>\npwd\n</parameter>\n"
           "</function>\n</tool_call>",
           (const char *[]){"T \"<tool_call>\\n\"", "S #0 bash", "A #0 {\"command\": \"pwd\"}",
                            "E #0 bash {\"command\": \"pwd\"}", NULL});
    /* An unknown function's tag is text again, and a call inside it counts. */
    expect(X, "<tool_call><function=<tool_call><function=bash></function></tool_call>",
           (const char *[]){"T \"<tool_call><function=\"", "S #0 bash", "A #0 {}", "E #0 bash {}",
                            NULL});
}

Test(toolcall, test_toolcall_xml_call_inside_an_unclosed_call_stays_text) {
    /* An example call inside a value of a call cut off by max_tokens is not run. */
    const char *out = "<tool_call>\n<function=bash>\n<parameter=command>\ncat <<EOF\n<tool_call>\n"
                      "<function=bash>\n</function>\n</tool_call>\nEOF";
    char *got = check(X, out);
    cr_assert(strstr(got, "E #") == NULL && strstr(got, "X #0\n"), "%s", got);
    free(got);
}

/* ---- both formats ---------------------------------------------------------------------------- */

Test(toolcall, test_toolcall_no_tools_everything_is_text) {
    const char *out = "<tool_call>\n{\"name\": \"bash\", \"arguments\": {}}\n</tool_call>";
    tc_log log;
    cr_assert_eq(tc_check_run(&log, H, NULL, 1, out, strlen(out), NULL, 0), KS_OK);
    cr_assert_eq(log.err[0], '\0', "%s", log.err);
    cr_assert_eq(log.n_ids, 0);
    cr_assert_eq(log.fed.len, strlen(out));
    tc_log_free(&log);
}

/* Collects what each feed emitted, as the normal form of that feed alone. */
static void per_feed_sink(void *user, const ks_toolcall_event *ev) {
    tc_str *b = user;
    static const char *const k_names[] = {"T", "S", "A", "E", "X"};
    tc_str_addf(b, k_names[ev->type]);
    tc_str_addf(b, "[");
    if (ev->data)
        tc_str_quote(b, ev->data, ev->len);
    tc_str_addf(b, "]");
}

Test(toolcall, test_toolcall_text_is_held_back_only_for_a_partial_tag) {
    static const struct {
        const char *feed, *emitted;
    } steps[] = {
        {"Hello <", "T[Hello ]"},
        {"tool", ""},           /* "<tool" may still become "<tool_call>" */
        {"box> ", "T[<toolbox> ]"},
        {"a<b", "T[a<b]"},      /* "<b" cannot start the tag */
        {"<", ""},
        {"<", "T[<]"},          /* the first '<' is text once a second one comes */
        {"tool_call>", ""},     /* a call: held until it is known */
        {"\n<function=bash>", "S[]A[{]"},
        {"\n<parameter=command>\nl", "A[\"command\": \"l]"},
        {"s\n", "A[s]"},        /* the newline may be the format's: held */
        {"</param", ""},
        {"eter>\n</function>\n</tool_call>", "A[\"}]E[]"},
        {"bye", "T[bye]"},
    };
    tc_str got = {0};
    json_t *t = tools();
    ks_toolcall_parser *p = NULL;
    cr_assert_eq(ks_toolcall_parser_create(&p, X, t, 5, per_feed_sink, &got, NULL), KS_OK);
    json_decref(t);
    for (size_t i = 0; i < KS_ARRAY_LEN(steps); i++) {
        got.len = 0;
        tc_str_add(&got, "", 0);
        cr_assert_eq(ks_toolcall_parser_feed(p, steps[i].feed, strlen(steps[i].feed)), KS_OK);
        cr_assert_str_eq(got.s, steps[i].emitted, "after feeding [%s]", steps[i].feed);
    }
    got.len = 0;
    tc_str_add(&got, "", 0);
    cr_assert_eq(ks_toolcall_parser_finish(p), KS_OK);
    cr_assert_str_eq(got.s, "");
    ks_toolcall_parser_destroy(p);
    free(got.s);
}

Test(toolcall, test_toolcall_ids_are_seeded_base62_and_distinct) {
    const char *out = "<tool_call><function=bash></function></tool_call>"
                      "<tool_call><function=bash></function></tool_call>";
    char first[2][KS_TOOLCALL_ID_BYTES + 1];
    for (int run = 0; run < 3; run++) {
        json_t *t = tools();
        ks_toolcall_parser *p = NULL;
        cr_assert_eq(ks_toolcall_parser_create(&p, X, t, run < 2 ? 99 : 100, NULL, NULL, NULL), KS_OK);
        json_decref(t);
        cr_assert_eq(ks_toolcall_parser_feed(p, out, strlen(out)), KS_OK);
        cr_assert_eq(ks_toolcall_parser_finish(p), KS_OK);
        cr_assert_eq(ks_toolcall_parser_n_calls(p), 2);
        const char *a = ks_toolcall_parser_call(p, 0)->id, *b = ks_toolcall_parser_call(p, 1)->id;
        cr_assert_eq(strlen(a), KS_TOOLCALL_ID_BYTES);
        cr_assert(strncmp(a, "toolu_", 6) == 0, "%s", a);
        cr_assert_str_neq(a, b);
        if (run == 0) {
            snprintf(first[0], sizeof first[0], "%s", a);
            snprintf(first[1], sizeof first[1], "%s", b);
        } else if (run == 1) {
            cr_assert_str_eq(a, first[0], "same seed, same ids");
            cr_assert_str_eq(b, first[1]);
        } else {
            cr_assert_str_neq(a, first[0], "other seed, other ids");
        }
        cr_assert_null(ks_toolcall_parser_call(p, 2));
        ks_toolcall_parser_destroy(p);
    }
}

Test(toolcall, test_toolcall_api_errors_and_finish) {
    ks_err err;
    ks_err_clear(&err);
    ks_toolcall_parser *p = NULL;
    json_t *obj = json_object();
    cr_assert_eq(ks_toolcall_parser_create(&p, H, obj, 0, NULL, NULL, &err), KS_ERR_INVALID);
    cr_assert(strstr(err.msg, "array"), "%s", err.msg);
    cr_assert_null(p);
    json_decref(obj);
    ks_err_clear(&err);
    cr_assert_eq(ks_toolcall_parser_create(&p, (ks_toolcall_format)7, NULL, 0, NULL, NULL, &err),
                 KS_ERR_INVALID);
    cr_assert_eq(ks_toolcall_parser_create(&p, X, NULL, 0, NULL, NULL, NULL), KS_OK);
    cr_assert_eq(ks_toolcall_parser_feed(p, "abc", 3), KS_OK);
    cr_assert_eq(ks_toolcall_parser_feed(p, NULL, 0), KS_OK);
    cr_assert_eq(ks_toolcall_parser_finish(p), KS_OK);
    cr_assert_eq(ks_toolcall_parser_finish(p), KS_OK, "finish twice is fine");
    cr_assert_eq(ks_toolcall_parser_feed(p, "x", 1), KS_ERR_INVALID, "no feeding after finish");
    ks_toolcall_parser_destroy(p);
    ks_toolcall_parser_destroy(NULL);
}

Test(toolcall, test_toolcall_corpus_every_split_both_formats) {
    /* A mixed corpus, run under both formats: each output is well formed in one format
     * and text (or broken calls) in the other; both must be split-independent. */
    static const char *const corpus[] = {
        "plain text with < and > and <tool and </tool_call> but no call",
        "<tool_call>\n{\"name\": \"calc\", \"arguments\": {\"x\": 1.5, \"opts\": {\"k\": [true]}}}\n"
        "</tool_call>",
        "A\n<tool_call>\n<function=calc>\n<parameter=x>\n2\n</parameter>\n<parameter=opts>\n{\"a\": "
        "[1]}\n</parameter>\n<parameter=s>\nmulti\nline\n</parameter>\n</function>\n</tool_call>\nB",
        "<tool_call><tool_call><tool_call>\n<function=bash>\n</function>\n</tool_call></tool_call>",
        "<tool_call>\n{\"name\": \"bash\", \"arguments\": {\"command\": \"x\"}}\n</tool_call>"
        "<tool_call>\n{\"name\": \"nope\", \"arguments\": {}}\n</tool_call>"
        "<tool_call>\n{\"name\": \"bash\", \"arguments\": {}}\n</tool_call>",
        "<tool_call>\n<function=bash>\n<parameter=command>\n</parameter></parameter>\n</function>\n"
        "</tool_call>",
        "\xe4\xbd\xa0\xe5\xa5\xbd <tool_call>\n<function=bash>\n<parameter=command>\necho "
        "\xe4\xbd\xa0\xe5\xa5\xbd\n</parameter>\n</function>\n</tool_call>",
    };
    for (size_t i = 0; i < KS_ARRAY_LEN(corpus); i++) {
        free(check(H, corpus[i]));
        free(check(X, corpus[i]));
    }
}

/* ---- tool-call memory ---------------------------------------------------------------------- */

static json_t *js(const char *text) {
    json_error_t jerr;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &jerr);
    cr_assert_not_null(j, "%s: %s", text, jerr.text);
    return j;
}

static ks_toolcall_memory *memory(size_t budget) {
    ks_toolcall_memory *m = NULL;
    cr_assert_eq(ks_toolcall_memory_create(&m, budget), KS_OK);
    return m;
}

static void put(ks_toolcall_memory *m, const char *id, const char *name, const char *args,
                const char *raw) {
    cr_assert_eq(ks_toolcall_memory_put(m, id, name, args, strlen(args), raw, strlen(raw)), KS_OK,
                 "put %s", id);
}

/* Looks up and compares with want (NULL: expect a miss). */
static void expect_lookup(ks_toolcall_memory *m, const char *id, const char *name,
                          const char *args_json, const char *want) {
    json_t *args = args_json ? js(args_json) : NULL;
    size_t len = 0;
    char *got = ks_toolcall_memory_lookup(m, id, name, args, &len);
    json_decref(args);
    if (!want) {
        cr_assert_null(got, "%s %s %s: expected no text, got %s", id, name, args_json, got);
        return;
    }
    cr_assert_not_null(got, "%s %s %s: expected the sampled text", id, name, args_json);
    cr_assert_eq(len, strlen(want));
    cr_assert_str_eq(got, want);
    free(got);
}

Test(toolcall, test_toolcall_memory_returns_sampled_text_for_equal_arguments) {
    ks_toolcall_memory *m = memory(1 << 20);
    const char *raw = "<tool_call>\n<function=calc>\n<parameter=x>\n1.0\n</parameter>\n"
                      "<parameter=opts>\n{\"b\": [1, 2], \"a\": \"\\u00e9\"}\n</parameter>\n"
                      "</function>\n</tool_call>";
    put(m, "toolu_A", "calc", "{\"x\": 1.0, \"opts\": {\"b\": [1, 2], \"a\": \"\\u00e9\"}}", raw);
    /* re-serialised: other order, spacing, escapes, 1.0 as 1 */
    expect_lookup(m, "toolu_A", "calc", "{\"opts\":{\"a\":\"\xc3\xa9\",\"b\":[1,2.0]},\"x\":1}", raw);
    expect_lookup(m, "toolu_A", "calc", "{\"x\": 1e0, \"opts\": {\"a\": \"\xc3\xa9\", \"b\": [1e0, 2]}}",
                  raw);
    /* changed: a value, a key, an element, the array order, the name, a missing key */
    expect_lookup(m, "toolu_A", "calc", "{\"x\": 1.5, \"opts\": {\"a\": \"\xc3\xa9\", \"b\": [1, 2]}}", NULL);
    expect_lookup(m, "toolu_A", "calc", "{\"y\": 1, \"opts\": {\"a\": \"\xc3\xa9\", \"b\": [1, 2]}}", NULL);
    expect_lookup(m, "toolu_A", "calc", "{\"x\": 1, \"opts\": {\"a\": \"\xc3\xa9\", \"b\": [2, 1]}}", NULL);
    expect_lookup(m, "toolu_A", "calc", "{\"x\": 1, \"opts\": {\"a\": \"e\", \"b\": [1, 2]}}", NULL);
    expect_lookup(m, "toolu_A", "calc", "{\"x\": 1, \"opts\": {\"a\": \"\xc3\xa9\", \"b\": [1, 2, 3]}}", NULL);
    expect_lookup(m, "toolu_A", "calc", "{\"x\": 1}", NULL);
    expect_lookup(m, "toolu_A", "calc", "{\"x\": \"1\", \"opts\": {\"a\": \"\xc3\xa9\", \"b\": [1, 2]}}",
                  NULL);
    expect_lookup(m, "toolu_A", "bash", "{\"x\": 1, \"opts\": {\"a\": \"\xc3\xa9\", \"b\": [1, 2]}}", NULL);
    expect_lookup(m, "toolu_B", "calc", "{}", NULL);
    /* booleans and null keep their identity; NULL arguments read as {} */
    put(m, "toolu_C", "calc", "{\"flag\": true, \"n\": null}", "RAW-C");
    expect_lookup(m, "toolu_C", "calc", "{\"n\": null, \"flag\": true}", "RAW-C");
    expect_lookup(m, "toolu_C", "calc", "{\"n\": false, \"flag\": true}", NULL);
    expect_lookup(m, "toolu_C", "calc", "{\"n\": null, \"flag\": 1}", NULL);
    put(m, "toolu_D", "bash", "{}", "RAW-D");
    expect_lookup(m, "toolu_D", "bash", NULL, "RAW-D");
    expect_lookup(m, "toolu_C", "calc", NULL, NULL);
    /* big integers compare exactly */
    put(m, "toolu_E", "calc", "{\"n\": 9007199254740993}", "RAW-E");
    expect_lookup(m, "toolu_E", "calc", "{\"n\": 9007199254740993}", "RAW-E");
    expect_lookup(m, "toolu_E", "calc", "{\"n\": 9007199254740992.0}", NULL);
    ks_toolcall_memory_stats st;
    ks_toolcall_memory_get_stats(m, &st);
    cr_assert_eq(st.n_entries, 4);
    cr_assert_eq(st.hits, 5);
    cr_assert_eq(st.misses, 1);
    cr_assert_eq(st.mismatches, 12);
    ks_toolcall_memory_destroy(m);
}

Test(toolcall, test_toolcall_memory_bound_and_lru) {
    /* Entries of equal charge; the budget holds exactly three. */
    const size_t charge = KS_TOOLCALL_MEMORY_ENTRY_BYTES + strlen("id_0") + strlen("bash") +
                          strlen("{}") + strlen("raw_0") + 4;
    ks_toolcall_memory *m = memory(3 * charge);
    put(m, "id_0", "bash", "{}", "raw_0");
    put(m, "id_1", "bash", "{}", "raw_1");
    put(m, "id_2", "bash", "{}", "raw_2");
    ks_toolcall_memory_stats st;
    ks_toolcall_memory_get_stats(m, &st);
    cr_assert_eq(st.bytes, 3 * charge);
    cr_assert_eq(st.budget_bytes, 3 * charge);
    expect_lookup(m, "id_0", "bash", "{}", "raw_0"); /* id_0 becomes the most recent */
    put(m, "id_3", "bash", "{}", "raw_3");           /* evicts id_1, the least recent */
    expect_lookup(m, "id_1", "bash", "{}", NULL);
    expect_lookup(m, "id_0", "bash", "{}", "raw_0");
    expect_lookup(m, "id_2", "bash", "{}", "raw_2");
    expect_lookup(m, "id_3", "bash", "{}", "raw_3");
    put(m, "id_4", "bash", "{}", "raw_4"); /* evicts id_0 */
    expect_lookup(m, "id_0", "bash", "{}", NULL);
    ks_toolcall_memory_get_stats(m, &st);
    cr_assert_eq(st.n_entries, 3);
    cr_assert_eq(st.evictions, 2);
    cr_assert_leq(st.bytes, st.budget_bytes);
    /* replacing an id does not evict others */
    put(m, "id_4", "bash", "{}", "raw_X");
    expect_lookup(m, "id_4", "bash", "{}", "raw_X");
    ks_toolcall_memory_get_stats(m, &st);
    cr_assert_eq(st.n_entries, 3);
    cr_assert_eq(st.evictions, 2);
    /* one entry bigger than the budget is refused and evicts nothing */
    char big[1024];
    memset(big, 'r', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    cr_assert_eq(ks_toolcall_memory_put(m, "id_big", "bash", "{}", 2, big, strlen(big)), KS_ERR_FULL);
    ks_toolcall_memory_get_stats(m, &st);
    cr_assert_eq(st.n_entries, 3);
    /* a larger entry evicts as many as it needs */
    put(m, "id_5", "bash", "{}", "raw_5raw_5");
    ks_toolcall_memory_get_stats(m, &st);
    cr_assert_leq(st.bytes, st.budget_bytes);
    expect_lookup(m, "id_5", "bash", "{}", "raw_5raw_5");
    /* bad arguments */
    cr_assert_eq(ks_toolcall_memory_put(m, "", "bash", "{}", 2, "r", 1), KS_ERR_INVALID);
    cr_assert_eq(ks_toolcall_memory_put(m, NULL, "bash", "{}", 2, "r", 1), KS_ERR_INVALID);
    ks_toolcall_memory_destroy(m);
    /* a zero budget stores nothing */
    m = memory(0);
    cr_assert_eq(ks_toolcall_memory_put(m, "a", "b", "{}", 2, "r", 1), KS_ERR_FULL);
    expect_lookup(m, "a", "b", "{}", NULL);
    ks_toolcall_memory_destroy(m);
    ks_toolcall_memory_destroy(NULL);
}

Test(toolcall, test_toolcall_memory_many_entries_rehash) {
    ks_toolcall_memory *m = memory(64 << 20);
    char id[32], raw[48];
    for (int i = 0; i < 5000; i++) {
        snprintf(id, sizeof id, "toolu_%d", i);
        snprintf(raw, sizeof raw, "<tool_call>%d</tool_call>", i);
        put(m, id, "bash", "{\"i\": 1}", raw);
    }
    for (int i = 0; i < 5000; i += 7) {
        snprintf(id, sizeof id, "toolu_%d", i);
        snprintf(raw, sizeof raw, "<tool_call>%d</tool_call>", i);
        expect_lookup(m, id, "bash", "{\"i\": 1.0}", raw);
    }
    ks_toolcall_memory_destroy(m);
}

Test(toolcall, test_toolcall_memory_from_parsed_calls) {
    /* The path the server takes: parse, remember each call, look it up when the client
     * sends it back re-serialised. */
    const char *out = "<tool_call>\n<function=calc>\n<parameter=x>\n2.50\n</parameter>\n"
                      "<parameter=s>\ntab\there\n</parameter>\n</function>\n</tool_call>";
    json_t *t = tools();
    ks_toolcall_parser *p = NULL;
    cr_assert_eq(ks_toolcall_parser_create(&p, X, t, 3, NULL, NULL, NULL), KS_OK);
    json_decref(t);
    cr_assert_eq(ks_toolcall_parser_feed(p, out, strlen(out)), KS_OK);
    cr_assert_eq(ks_toolcall_parser_finish(p), KS_OK);
    const ks_toolcall *c = ks_toolcall_parser_call(p, 0);
    ks_toolcall_memory *m = memory(1 << 16);
    cr_assert_eq(ks_toolcall_memory_put(m, c->id, c->name, c->args, c->args_len, c->raw, c->raw_len),
                 KS_OK);
    expect_lookup(m, c->id, "calc", "{\"s\":\"tab\\there\",\"x\":2.5}", out);
    expect_lookup(m, c->id, "calc", "{\"s\":\"tab here\",\"x\":2.5}", NULL);
    ks_toolcall_memory_destroy(m);
    ks_toolcall_parser_destroy(p);
}

typedef struct hammer_arg {
    ks_toolcall_memory *m;
    int thread;
    int errors;
} hammer_arg;

/* Each thread stores its own ids and looks up the one it stored last, which other
 * threads' stores may have evicted meanwhile. */
static void *hammer(void *user) {
    hammer_arg *a = user;
    char id[32], raw[64], args_text[32];
    json_t *args = json_pack("{s:i}", "k", a->thread);
    snprintf(args_text, sizeof args_text, "{\"k\": %d}", a->thread);
    for (int i = 0; i < 4000; i++) {
        snprintf(id, sizeof id, "t%d_%d", a->thread, i % 300);
        snprintf(raw, sizeof raw, "<tool_call>%d %d</tool_call>", a->thread, i % 300);
        if (ks_toolcall_memory_put(a->m, id, "bash", args_text, strlen(args_text), raw,
                                   strlen(raw)) != KS_OK)
            a->errors++;
        size_t len = 0;
        char *got = ks_toolcall_memory_lookup(a->m, id, "bash", args, &len);
        if (got && (len != strlen(raw) || strcmp(got, raw) != 0))
            a->errors++; /* a hit must be the text stored for that id */
        free(got);
        got = ks_toolcall_memory_lookup(a->m, id, "cat", args, &len);
        if (got)
            a->errors++; /* another tool's name never matches */
    }
    json_decref(args);
    return NULL;
}

Test(toolcall, test_toolcall_memory_shared_by_threads) {
    /* A budget that forces evictions all the time. */
    ks_toolcall_memory *m = memory(40 * (KS_TOOLCALL_MEMORY_ENTRY_BYTES + 64));
    pthread_t th[4];
    hammer_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (hammer_arg){m, i, 0};
        pthread_create(&th[i], NULL, hammer, &args[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(args[i].errors, 0, "thread %d", i);
    }
    ks_toolcall_memory_stats st;
    ks_toolcall_memory_get_stats(m, &st);
    cr_assert_leq(st.bytes, st.budget_bytes);
    cr_assert_gt(st.evictions, 0);
    cr_assert_gt(st.hits, 0);
    ks_toolcall_memory_destroy(m);
}
