/* test_chat_request.c — the Anthropic and OpenAI request parsers: Claude Code-shaped
 * bodies into the conversation model, Claude Code's billing line dropped, equivalent
 * content shapes rendering identically, unsupported content refused with the field
 * named, unknown fields ignored, and telling the two APIs apart. */
#include "chat/chat_format.h"
#include "server/request_anthropic.h"
#include "server/request_common.h"
#include "server/request_openai.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ------------------------------------------------------------------------------- */

static json_t *body_of(const char *text) {
    json_error_t jerr;
    json_t *body = json_loads(text, 0, &jerr);
    cr_assert_not_null(body, "test body: %s at %d: %s", jerr.text, jerr.position, text);
    return body;
}

static ks_status parse_api(ks_api api, const char *text, ks_chat_request **out, ks_err *err) {
    json_t *body = body_of(text);
    ks_err_clear(err);
    ks_status st = api == KS_API_OPENAI ? ks_request_openai_parse(body, out, err)
                                        : ks_request_anthropic_parse(body, out, err);
    json_decref(body);
    return st;
}

static ks_chat_request *parse_ok(ks_api api, const char *text) {
    ks_err err;
    ks_chat_request *req = NULL;
    ks_status st = parse_api(api, text, &req, &err);
    cr_assert_eq(st, KS_OK, "parse: %s\n%s", err.msg, text);
    return req;
}

/* The parse must fail with KS_ERR_INVALID and a message holding every given piece. */
static void expect_error(ks_api api, const char *text, const char *piece1, const char *piece2) {
    ks_err err;
    ks_chat_request *req = NULL;
    ks_status st = parse_api(api, text, &req, &err);
    cr_assert_eq(st, KS_ERR_INVALID, "expected an error for %s", text);
    cr_assert_null(req);
    cr_expect(strstr(err.msg, piece1) != NULL, "message \"%s\" lacks \"%s\"", err.msg, piece1);
    if (piece2)
        cr_expect(strstr(err.msg, piece2) != NULL, "message \"%s\" lacks \"%s\"", err.msg, piece2);
}

static char *prompt_of(ks_api api, const char *text, ks_chat_format f) {
    ks_chat_request *req = parse_ok(api, text);
    ks_err err;
    ks_err_clear(&err);
    char *out = NULL;
    size_t len;
    cr_assert_eq(ks_chat_render(f, req, NULL, &out, &len, &err), KS_OK, "render: %s", err.msg);
    ks_chat_request_destroy(req);
    return out;
}

static void expect_same_prompt(ks_api api, const char *a, const char *b) {
    static const ks_chat_format fams[] = {KS_CHAT_FORMAT_QWEN3, KS_CHAT_FORMAT_QWEN3_CODER};
    for (size_t i = 0; i < KS_ARRAY_LEN(fams); i++) {
        char *pa = prompt_of(api, a, fams[i]), *pb = prompt_of(api, b, fams[i]);
        cr_expect_str_eq(pa, pb, "[%s] these bodies should render the same:\n%s\n%s",
                         ks_chat_format_name(fams[i]), a, b);
        free(pa);
        free(pb);
    }
}

static bool part_is(const ks_chat_message *m, size_t i, const char *text) {
    return i < m->n_parts && m->parts[i].len == strlen(text) && !memcmp(m->parts[i].text, text, m->parts[i].len);
}

/* ---- Claude Code ----------------------------------------------------------------------------- */

static const char claude_code_body[] =
    "{\"model\":\"claude-sonnet-4-5-20250929\",\"max_tokens\":32000,\"stream\":true,\"temperature\":1,"
    "\"metadata\":{\"user_id\":\"user_abc_account__session_123\"},"
    "\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":31999},"
    "\"system\":[{\"type\":\"text\",\"text\":\"x-anthropic-billing-header: cc_version=2.1.37.a1b; cc_entrypoint=cli; cch=36ee5;\"},"
    "{\"type\":\"text\",\"text\":\"You are Claude Code, Anthropic's official CLI for Claude.\",\"cache_control\":{\"type\":\"ephemeral\"}},"
    "{\"type\":\"text\",\"text\":\"You are an interactive CLI tool.\",\"cache_control\":{\"type\":\"ephemeral\"}}],"
    "\"tools\":[{\"name\":\"Bash\",\"description\":\"Run a command\",\"input_schema\":{\"type\":\"object\","
    "\"properties\":{\"command\":{\"type\":\"string\"}},\"required\":[\"command\"],\"additionalProperties\":false,"
    "\"$schema\":\"http://json-schema.org/draft-07/schema#\"}},"
    "{\"name\":\"WebFetch\",\"description\":\"Fetch\",\"input_schema\":{\"type\":\"object\"},\"defer_loading\":true},"
    "{\"name\":\"Read\",\"description\":\"Read a file\",\"input_schema\":{\"type\":\"object\",\"properties\":{\"file_path\":{\"type\":\"string\"}}},"
    "\"cache_control\":{\"type\":\"ephemeral\"}}],"
    "\"messages\":["
    "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"<system-reminder>\\nAs you answer...\\n</system-reminder>\"},"
    "{\"type\":\"text\",\"text\":\"fix the build\",\"cache_control\":{\"type\":\"ephemeral\"}}]},"
    "{\"role\":\"assistant\",\"content\":[{\"type\":\"thinking\",\"thinking\":\"Check the makefile.\",\"signature\":\"EqQB...\"},"
    "{\"type\":\"text\",\"text\":\"Let me look.\"},"
    "{\"type\":\"tool_use\",\"id\":\"toolu_01A\",\"name\":\"Bash\",\"input\":{\"command\":\"make\"}}]},"
    "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_01A\",\"is_error\":true,"
    "\"content\":[{\"type\":\"text\",\"text\":\"make: *** No rule\"}],\"cache_control\":{\"type\":\"ephemeral\"}},"
    "{\"type\":\"text\",\"text\":\"<system-reminder>todo</system-reminder>\"}]}]}";

Test(chat_request, test_chat_request_claude_code_body) {
    ks_chat_request *req = parse_ok(KS_API_ANTHROPIC, claude_code_body);
    cr_assert_eq(req->n_messages, 5, "system, user, assistant, tool, user: got %zu", req->n_messages);

    const ks_chat_message *sys = &req->messages[0];
    cr_assert_eq(sys->role, KS_CHAT_SYSTEM);
    cr_assert_eq(sys->n_parts, 2, "billing block dropped: %zu parts", sys->n_parts);
    cr_assert(part_is(sys, 0, "You are Claude Code, Anthropic's official CLI for Claude."));
    cr_assert(sys->cache_breakpoint && sys->parts[1].cache_breakpoint);

    const ks_chat_message *u = &req->messages[1];
    cr_assert_eq(u->role, KS_CHAT_USER);
    cr_assert_eq(u->n_parts, 2);
    cr_assert(part_is(u, 1, "fix the build") && u->parts[1].cache_breakpoint && !u->parts[0].cache_breakpoint);

    const ks_chat_message *a = &req->messages[2];
    cr_assert_eq(a->role, KS_CHAT_ASSISTANT);
    cr_assert_str_eq(a->thinking, "Check the makefile.");
    cr_assert(part_is(a, 0, "Let me look."));
    cr_assert_eq(a->n_tool_calls, 1);
    cr_assert_str_eq(a->tool_calls[0].id, "toolu_01A");
    cr_assert_str_eq(a->tool_calls[0].name, "Bash");
    cr_assert_str_eq(json_string_value(json_object_get(a->tool_calls[0].arguments, "command")), "make");

    const ks_chat_message *t = &req->messages[3];
    cr_assert_eq(t->role, KS_CHAT_TOOL);
    cr_assert_str_eq(t->tool_call_id, "toolu_01A");
    cr_assert(t->is_error && t->cache_breakpoint);
    cr_assert(part_is(t, 0, "make: *** No rule"));
    cr_assert_eq(req->messages[4].role, KS_CHAT_USER);

    cr_assert_eq(req->n_tools, 2, "defer_loading tool left out: %zu tools", req->n_tools);
    cr_assert_str_eq(req->tools[0].name, "Bash");
    cr_assert_str_eq(req->tools[1].name, "Read");
    cr_assert(!req->tools[0].cache_breakpoint && req->tools[1].cache_breakpoint);
    cr_assert_str_eq(json_string_value(json_object_get(req->tools[0].parameters, "type")), "object");

    cr_assert_str_eq(req->model, "claude-sonnet-4-5-20250929");
    cr_assert_eq(req->max_tokens, 32000);
    cr_assert(req->stream && req->has_temperature && req->temperature == 1.0);
    cr_assert_eq(req->thinking, KS_THINKING_ON);
    cr_assert_eq(req->thinking_budget_tokens, 31999);
    cr_assert(req->add_generation_prompt && !req->continue_final);
    ks_chat_request_destroy(req);
}

Test(chat_request, test_chat_request_billing_header_dropped) {
    const char *with = "{\"system\":[{\"type\":\"text\",\"text\":\"x-anthropic-billing-header: cc_version=2.1.37.a1b; cch=36ee5;\"},"
                       "{\"type\":\"text\",\"text\":\"You are Claude Code.\"}],\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    const char *other = "{\"system\":[{\"type\":\"text\",\"text\":\"x-anthropic-billing-header: cc_version=2.1.38.f00; cch=0aaa9;\"},"
                        "{\"type\":\"text\",\"text\":\"You are Claude Code.\"}],\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    const char *inline_ = "{\"system\":\"x-anthropic-billing-header: cc_version=1; cch=1;\\nYou are Claude Code.\","
                          "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    const char *without = "{\"system\":\"You are Claude Code.\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    expect_same_prompt(KS_API_ANTHROPIC, with, other);
    expect_same_prompt(KS_API_ANTHROPIC, with, without);
    expect_same_prompt(KS_API_ANTHROPIC, inline_, without);
    /* a system prompt of nothing but the header is no system prompt */
    expect_same_prompt(KS_API_ANTHROPIC,
                       "{\"system\":\"x-anthropic-billing-header: cch=2;\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
                       "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
    /* only whole lines that start with it go; the text elsewhere stays */
    char *p = prompt_of(KS_API_ANTHROPIC, "{\"system\":\"keep x-anthropic-billing-header: here\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
                        KS_CHAT_FORMAT_QWEN3);
    cr_assert(strstr(p, "keep x-anthropic-billing-header: here") != NULL, "%s", p);
    free(p);
}

Test(chat_request, test_chat_request_string_and_block_content_render_alike) {
    expect_same_prompt(KS_API_ANTHROPIC, "{\"messages\":[{\"role\":\"user\",\"content\":\"text\"}]}",
                       "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"text\"}]}]}");
    expect_same_prompt(KS_API_ANTHROPIC, "{\"system\":\"s\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":\"b\"},{\"role\":\"user\",\"content\":\"c\"}]}",
                       "{\"system\":[{\"type\":\"text\",\"text\":\"s\"}],\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"}]},"
                       "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"b\"}]},{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"c\"}]}]}");
    const char *calls = "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"t1\",\"name\":\"f\",\"input\":{}}]}";
    char a[1024], b[1024];
    snprintf(a, sizeof a, "{\"messages\":[{\"role\":\"user\",\"content\":\"q\"},%s,{\"role\":\"user\",\"content\":"
             "[{\"type\":\"tool_result\",\"tool_use_id\":\"t1\",\"content\":\"out\"}]}]}", calls);
    snprintf(b, sizeof b, "{\"messages\":[{\"role\":\"user\",\"content\":\"q\"},%s,{\"role\":\"user\",\"content\":"
             "[{\"type\":\"tool_result\",\"tool_use_id\":\"t1\",\"content\":[{\"type\":\"text\",\"text\":\"out\"}]}]}]}", calls);
    expect_same_prompt(KS_API_ANTHROPIC, a, b);
    expect_same_prompt(KS_API_OPENAI, "{\"messages\":[{\"role\":\"user\",\"content\":\"text\"}]}",
                       "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"text\"}]}]}");
    /* the same conversation through either API */
    expect_same_prompt(KS_API_ANTHROPIC, "{\"system\":\"s\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"}]}",
                       "{\"system\":\"s\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"}]}");
    char *pa = prompt_of(KS_API_ANTHROPIC, a, KS_CHAT_FORMAT_QWEN3);
    char *po = prompt_of(KS_API_OPENAI, "{\"messages\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"content\":null,"
                         "\"tool_calls\":[{\"id\":\"t1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},"
                         "{\"role\":\"tool\",\"tool_call_id\":\"t1\",\"content\":\"out\"}]}", KS_CHAT_FORMAT_QWEN3);
    cr_assert_str_eq(pa, po);
    free(pa);
    free(po);
}

Test(chat_request, test_chat_request_unsupported_content_names_the_field) {
    const char *img = "{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":\"image/png\",\"data\":\"iVBOR\"}}";
    char body[1024];
    snprintf(body, sizeof body, "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":\"b\"},"
             "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"see\"},%s]}]}", img);
    expect_error(KS_API_ANTHROPIC, body, "messages[2].content[1]", "image content is not supported");
    snprintf(body, sizeof body, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"x\","
             "\"content\":[{\"type\":\"text\",\"text\":\"t\"},%s]}]}]}", img);
    expect_error(KS_API_ANTHROPIC, body, "messages[0].content[0].content[1]", "image");
    expect_error(KS_API_ANTHROPIC, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"document\",\"source\":{}}]}]}",
                 "messages[0].content[0]", "document");
    expect_error(KS_API_OPENAI, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"x\"},"
                 "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:\"}}]}]}", "messages[0].content[1]", "image_url");
    expect_error(KS_API_ANTHROPIC, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":\"web_search_20250305\",\"name\":\"web_search\"}]}",
                 "tools[0]", "web_search_20250305");
}

Test(chat_request, test_chat_request_malformed_fields_are_named) {
    expect_error(KS_API_ANTHROPIC, "{\"max_tokens\":5}", "messages", "required");
    expect_error(KS_API_ANTHROPIC, "{\"messages\":[]}", "at least one message", NULL);
    expect_error(KS_API_ANTHROPIC, "{\"messages\":[{\"role\":\"robot\",\"content\":\"x\"}]}", "messages[0].role", "robot");
    expect_error(KS_API_ANTHROPIC, "{\"messages\":[{\"role\":\"user\"}]}", "messages[0].content", "required");
    expect_error(KS_API_ANTHROPIC, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"assistant\",\"content\":"
                 "[{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"f\",\"input\":\"nope\"}]}]}", "messages[1].content[0].input", "object");
    expect_error(KS_API_ANTHROPIC, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\"}]}]}", "messages[0].content[0].text", "required");
    expect_error(KS_API_ANTHROPIC, "{\"messages\":[{\"role\":\"user\",\"content\":42}]}", "messages[0].content", "string or an array");
    expect_error(KS_API_ANTHROPIC, "{\"max_tokens\":\"many\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "max_tokens", "integer");
    expect_error(KS_API_ANTHROPIC, "{\"stop_sequences\":[\"a\",3],\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "stop_sequences[1]", "string");
    expect_error(KS_API_ANTHROPIC, "{\"tool_choice\":{\"type\":\"tool\"},\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "tool_choice.name", "required");
    expect_error(KS_API_ANTHROPIC, "{\"thinking\":{\"type\":\"maybe\"},\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "thinking", "maybe");
    expect_error(KS_API_OPENAI, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"assistant\",\"tool_calls\":"
                 "[{\"id\":\"c\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{bad\"}}]}]}",
                 "messages[1].tool_calls[0].function.arguments", "not valid JSON");
    expect_error(KS_API_OPENAI, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"assistant\",\"tool_calls\":"
                 "[{\"id\":\"c\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"[1]\"}}]}]}",
                 "messages[1].tool_calls[0].function.arguments", "object");
    expect_error(KS_API_OPENAI, "{\"messages\":[{\"role\":\"function\",\"content\":\"x\"}]}", "messages[0].role", "function");
    expect_error(KS_API_OPENAI, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tool_choice\":\"sometimes\"}", "tool_choice", "sometimes");
    expect_error(KS_API_OPENAI, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":\"function\",\"function\":{}}]}",
                 "tools[0].function.name", "required");
    expect_error(KS_API_OPENAI, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":\"hot\"}", "temperature", "number");
    expect_error(KS_API_OPENAI, "[1,2]", "JSON object", NULL);
}

Test(chat_request, test_chat_request_unknown_fields_ignored) {
    expect_same_prompt(KS_API_ANTHROPIC,
                       "{\"future\":{\"x\":1},\"container\":null,\"service_tier\":\"auto\",\"system\":[{\"type\":\"text\",\"text\":\"s\",\"citations\":null,\"new\":1}],"
                       "\"tools\":[{\"name\":\"f\",\"input_schema\":{\"type\":\"object\"},\"strict\":true,\"input_examples\":[]}],"
                       "\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"q\",\"whatever\":[1,2]}],\"id\":\"m1\"},"
                       "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"f\",\"input\":{},\"caller\":{}}]},"
                       "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"t\",\"content\":\"r\",\"extra\":true}]}]}",
                       "{\"system\":\"s\",\"tools\":[{\"name\":\"f\",\"input_schema\":{\"type\":\"object\"}}],"
                       "\"messages\":[{\"role\":\"user\",\"content\":\"q\"},"
                       "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"f\",\"input\":{}}]},"
                       "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"t\",\"content\":\"r\"}]}]}");
    expect_same_prompt(KS_API_OPENAI,
                       "{\"user\":\"u\",\"logit_bias\":{},\"messages\":[{\"role\":\"user\",\"content\":\"q\",\"name\":\"bob\"}],"
                       "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"strict\":true,\"parameters\":{\"type\":\"object\"}}}]}",
                       "{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],"
                       "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"object\"}}}]}");
}

Test(chat_request, test_chat_request_openai_fields) {
    ks_chat_request *req = parse_ok(KS_API_OPENAI,
        "{\"model\":\"qwen\",\"max_completion_tokens\":77,\"temperature\":0.2,\"top_p\":0.9,\"top_k\":20,\"min_p\":0.05,\"seed\":-1,"
        "\"presence_penalty\":0.5,\"frequency_penalty\":0.25,\"stop\":\"END\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
        "\"tool_choice\":\"required\",\"parallel_tool_calls\":false,\"chat_template_kwargs\":{\"enable_thinking\":false},"
        "\"messages\":[{\"role\":\"developer\",\"content\":\"d\"},{\"role\":\"user\",\"content\":\"q\"},"
        "{\"role\":\"assistant\",\"content\":null,\"reasoning_content\":\"r\",\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\","
        "\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"z\\\": 1, \\\"a\\\": [2]}\"}},{\"id\":\"c2\",\"type\":\"function\",\"function\":{\"name\":\"g\",\"arguments\":\"\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"out\"}]}");
    cr_assert_eq(req->n_messages, 4);
    cr_assert_eq(req->messages[0].role, KS_CHAT_SYSTEM);
    const ks_chat_message *a = &req->messages[2];
    cr_assert_eq(a->n_parts, 0);
    cr_assert_str_eq(a->thinking, "r");
    cr_assert_eq(a->n_tool_calls, 2);
    const char *first = json_object_iter_key(json_object_iter(a->tool_calls[0].arguments));
    cr_assert_str_eq(first, "z", "argument keys keep their order");
    cr_assert_eq(json_object_size(a->tool_calls[1].arguments), 0);
    cr_assert_str_eq(req->messages[3].tool_call_id, "c1");
    cr_assert_eq(req->max_tokens, 77);
    cr_assert(req->has_top_k && req->top_k == 20 && req->has_min_p && req->has_seed && req->seed == UINT64_MAX);
    cr_assert(req->has_presence_penalty && req->has_frequency_penalty);
    cr_assert_eq(req->n_stop, 1);
    cr_assert_str_eq(req->stop[0], "END");
    cr_assert(req->stream && req->stream_usage);
    cr_assert_eq(req->tool_choice, KS_TOOL_CHOICE_ANY);
    cr_assert(!req->parallel_tool_calls);
    cr_assert_eq(req->thinking, KS_THINKING_OFF);
    ks_chat_request_destroy(req);
}

Test(chat_request, test_chat_request_anthropic_choice_and_prefill) {
    ks_chat_request *req = parse_ok(KS_API_ANTHROPIC,
        "{\"tool_choice\":{\"type\":\"tool\",\"name\":\"Bash\",\"disable_parallel_tool_use\":true},\"top_k\":5,"
        "\"stop_sequences\":[\"a\",\"b\"],\"thinking\":{\"type\":\"disabled\"},"
        "\"messages\":[{\"role\":\"user\",\"content\":\"Say hi\"},{\"role\":\"assistant\",\"content\":\"Hi,\"}]}");
    cr_assert_eq(req->tool_choice, KS_TOOL_CHOICE_TOOL);
    cr_assert_str_eq(req->tool_choice_name, "Bash");
    cr_assert(!req->parallel_tool_calls);
    cr_assert_eq(req->n_stop, 2);
    cr_assert_eq(req->thinking, KS_THINKING_OFF);
    cr_assert(req->continue_final && !req->add_generation_prompt);
    char *out = NULL;
    size_t len;
    cr_assert_eq(ks_chat_render(KS_CHAT_FORMAT_QWEN3_CODER, req, NULL, &out, &len, NULL), KS_OK);
    cr_assert_str_eq(out, "<|im_start|>user\nSay hi<|im_end|>\n<|im_start|>assistant\nHi,");
    free(out);
    ks_chat_request_destroy(req);
}

Test(chat_request, test_chat_request_detects_api) {
    json_t *b = body_of(claude_code_body);
    cr_assert_eq(ks_request_detect_api(b), KS_API_ANTHROPIC);
    json_decref(b);
    b = body_of("{\"messages\":[{\"role\":\"system\",\"content\":\"s\"},{\"role\":\"user\",\"content\":\"q\"},"
                "{\"role\":\"assistant\",\"tool_calls\":[]},{\"role\":\"tool\",\"tool_call_id\":\"x\",\"content\":\"r\"}]}");
    cr_assert_eq(ks_request_detect_api(b), KS_API_OPENAI);
    json_decref(b);
    b = body_of("{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],"
                "\"max_completion_tokens\":5}");
    cr_assert_eq(ks_request_detect_api(b), KS_API_OPENAI);
    json_decref(b);
    /* plain turns plus a field only OpenAI servers take */
    b = body_of("{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],\"chat_template_kwargs\":{\"enable_thinking\":false}}");
    cr_assert_eq(ks_request_detect_api(b), KS_API_OPENAI);
    json_decref(b);
    b = body_of("{\"messages\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"content\":["
                "{\"type\":\"refusal\",\"refusal\":\"no\"}]}]}");
    cr_assert_eq(ks_request_detect_api(b), KS_API_OPENAI);
    json_decref(b);
    b = body_of("{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}");
    cr_assert_eq(ks_request_detect_api(b), KS_API_ANTHROPIC);
    json_decref(b);
}

/* ---- hostile bodies ------------------------------------------------------------------------ */

/* Every slot (object member or array element) of a JSON tree, for mutation. */
typedef struct slot {
    json_t *parent;
    const char *key; /* object member, or NULL for an array element */
    size_t index;
} slot;

static void collect_slots(json_t *v, slot *slots, size_t *n, size_t cap) {
    if (json_is_object(v)) {
        const char *key;
        json_t *child;
        json_object_foreach(v, key, child) {
            if (*n < cap)
                slots[(*n)++] = (slot){v, key, 0};
            collect_slots(child, slots, n, cap);
        }
    } else if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (*n < cap)
                slots[(*n)++] = (slot){v, NULL, i};
            collect_slots(json_array_get(v, i), slots, n, cap);
        }
    }
}

/* A value of a random JSON type, including the shapes the parsers look for. */
static json_t *random_value(uint64_t *rng) {
    *rng = *rng * 6364136223846793005ULL + 1442695040888963407ULL; /* Knuth's MMIX LCG */
    switch ((*rng >> 33) % 10) {
    case 0: return json_null();
    case 1: return json_integer((json_int_t)(*rng >> 40) - (1 << 22));
    case 2: return json_real(-1.5e300);
    case 3: return json_string("");
    case 4: return json_string("x-anthropic-billing-header: \n<tool_call>");
    case 5: return json_true();
    case 6: return json_array();
    case 7: return json_object();
    case 8: return json_pack("[{s:s, s:s}]", "type", "text", "text", "t");
    default: return json_pack("{s:s, s:s, s:{}}", "type", "tool_use", "name", "f", "input");
    }
}

/* Thousands of bodies, each a Claude Code or OpenAI body with one slot replaced or
 * deleted: every parse ends in KS_OK or KS_ERR_INVALID with a message, and every parsed
 * request renders or is refused cleanly, in both families (the sanitizer build checks
 * the memory side). */
Test(chat_request, test_chat_request_survives_mutated_bodies) {
    static const char *const seeds[] = {
        claude_code_body,
        "{\"messages\":[{\"role\":\"system\",\"content\":\"s\"},{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"q\"}]},"
        "{\"role\":\"assistant\",\"content\":null,\"reasoning_content\":\"r\",\"tool_calls\":[{\"id\":\"c\",\"type\":\"function\","
        "\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\":1}\"}}]},{\"role\":\"tool\",\"tool_call_id\":\"c\",\"content\":\"o\"}],"
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"}}}}}],"
        "\"stop\":[\"x\"],\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"f\"}}}",
    };
    uint64_t rng = 42;
    size_t parsed = 0, refused = 0;
    for (int it = 0; it < 3000; it++) {
        ks_api api = (ks_api)(it % 2 ? KS_API_OPENAI : KS_API_ANTHROPIC);
        json_t *body = body_of(seeds[(it / 2) % 2]);
        slot slots[512];
        size_t n = 0;
        collect_slots(body, slots, &n, KS_ARRAY_LEN(slots));
        for (int m = 0; m < 1 + it % 3; m++) { /* one to three mutations */
            rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
            slot s = slots[(rng >> 33) % n];
            bool del = (rng >> 20) % 4 == 0;
            if (s.key) {
                if (del)
                    json_object_del(s.parent, s.key);
                else
                    json_object_set_new(s.parent, s.key, random_value(&rng));
            } else if (s.index < json_array_size(s.parent)) {
                if (del)
                    json_array_remove(s.parent, s.index);
                else
                    json_array_set_new(s.parent, s.index, random_value(&rng));
            }
            n = 0; /* the tree changed: slots point into freed values */
            collect_slots(body, slots, &n, KS_ARRAY_LEN(slots));
            if (n == 0)
                break;
        }
        ks_err err;
        ks_err_clear(&err);
        ks_chat_request *req = NULL;
        ks_status st = api == KS_API_OPENAI ? ks_request_openai_parse(body, &req, &err)
                                            : ks_request_anthropic_parse(body, &req, &err);
        cr_assert(st == KS_OK || (st == KS_ERR_INVALID && err.msg[0]), "status %d (%s)", st, err.msg);
        if (st == KS_OK) {
            parsed++;
            static const ks_chat_format fams[] = {KS_CHAT_FORMAT_QWEN3, KS_CHAT_FORMAT_QWEN3_CODER, KS_CHAT_FORMAT_CHATML};
            for (size_t f = 0; f < KS_ARRAY_LEN(fams); f++) {
                char *out = NULL;
                size_t len;
                ks_err_clear(&err);
                st = ks_chat_render(fams[f], req, NULL, &out, &len, &err);
                cr_assert(st == KS_OK || ((st == KS_ERR_INVALID || st == KS_ERR_UNSUPPORTED) && err.msg[0]),
                          "render status %d (%s)", st, err.msg);
                cr_assert(st != KS_OK || strlen(out) <= len);
                free(out);
            }
        } else {
            refused++;
        }
        ks_chat_request_destroy(req);
        json_decref(body);
    }
    cr_assert_gt(parsed, 300, "mutations should often leave a valid body (%zu parsed)", parsed);
    cr_assert_gt(refused, 300, "and often break one (%zu refused)", refused);
}
