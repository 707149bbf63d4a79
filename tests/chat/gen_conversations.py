#!/usr/bin/env python3
"""gen_conversations.py — the chat rendering corpus: request bodies and the prompts the
models' official Jinja templates make of them.

    gen_conversations.py OUTDIR [--templates DIR]

Writes into OUTDIR, for every conversation NAME:

    NAME.json              the request body (Anthropic Messages or OpenAI Chat Completions)
    NAME.qwen3.txt         Jinja2 rendering of Qwen-Qwen3-0.6B.jinja
    NAME.qwen3-coder.txt   Jinja2 rendering of Qwen3-Coder.jinja
    manifest.tsv           NAME <tab> api <tab> tags   (one line per conversation)

Templates are rendered as Hugging Face's apply_chat_template renders them: a sandboxed
environment with trim_blocks and lstrip_blocks, a raise_exception global, and a tojson
filter that is json.dumps(ensure_ascii=False) with default separators and no key sorting.

A request body becomes the template's `messages` / `tools` by the mapping kvserve
documents in src/server/request_anthropic.c and request_openai.c (text blocks joined by
"\\n", tool results as role "tool" messages, Claude Code's billing line dropped from
system text, tools in OpenAI's {"type": "function", "function": {...}} shape). That
mapping is written here independently, from the documentation, not from the C code.

The corpus is hand-written cases for each feature plus seeded random conversations;
the same seed always gives the same files.
"""
import json
import os
import random
import sys

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

SEP = "\n"  # how several text blocks of one message are joined
BILLING = "x-anthropic-billing-header:"

# --------------------------------------------------------------------------------------
# Jinja environment as apply_chat_template sets it up


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


def make_env():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    return env


def render(template, conv):
    """conv: dict(messages, tools, add_generation_prompt, continue_final, kwargs)."""
    kwargs = dict(conv["kwargs"])
    gen = conv["add_generation_prompt"] and not conv["continue_final"]
    out = template.render(messages=conv["messages"], tools=conv["tools"] or None,
                          documents=None, add_generation_prompt=gen, **kwargs)
    if conv["continue_final"]:
        # apply_chat_template(continue_final_message=True): cut after the final text
        final = conv["messages"][-1]["content"].strip()
        if final:
            at = out.rindex(final)
            out = out[:at + len(final)]
        else:
            end = "<|im_end|>\n"
            if out.endswith(end):
                out = out[:-len(end)]
    return out

# --------------------------------------------------------------------------------------
# request bodies -> template inputs (the documented mapping)


def strip_billing(text):
    lines, i = [], 0
    while i < len(text):  # split after each "\n" only (not Python's other line breaks)
        j = text.find("\n", i)
        j = len(text) if j < 0 else j + 1
        lines.append(text[i:j])
        i = j
    kept = [l for l in lines if not l.startswith(BILLING)]
    return "".join(kept), len(kept) != len(lines)


def text_of(content, system=False):
    """String or text blocks -> list of part strings."""
    if content is None:
        return []
    if isinstance(content, str):
        blocks = [{"type": "text", "text": content}]
    else:
        blocks = content
    parts = []
    for b in blocks:
        assert b["type"] == "text", b
        t = b["text"]
        if system:
            t, removed = strip_billing(t)
            if removed and t == "":
                continue
        parts.append(t)
    return parts


def openai_tool(name, description, parameters):
    fn = {"name": name}
    if description is not None:
        fn["description"] = description
    if parameters is not None:
        fn["parameters"] = parameters
    return {"type": "function", "function": fn}


def from_anthropic(body):
    msgs = []
    if body.get("system") is not None:
        parts = text_of(body["system"], system=True)
        if any(p != "" for p in parts):
            msgs.append({"role": "system", "content": SEP.join(parts)})
    last_assistant = False
    for m in body["messages"]:
        role, content = m["role"], m["content"]
        last_assistant = role == "assistant"
        if role == "system":
            msgs.append({"role": "system", "content": SEP.join(text_of(content, system=True))})
        elif role == "user":
            if isinstance(content, str) or not content:
                msgs.append({"role": "user", "content": SEP.join(text_of(content))})
                continue
            prev_text = False
            for b in content:
                if b["type"] == "text":
                    if prev_text:
                        msgs[-1]["content"] += SEP + b["text"]
                    else:
                        msgs.append({"role": "user", "content": b["text"]})
                    prev_text = True
                elif b["type"] == "tool_result":
                    msgs.append({"role": "tool", "tool_call_id": b["tool_use_id"],
                                 "content": SEP.join(text_of(b.get("content")))})
                    prev_text = False
                else:
                    raise ValueError(b["type"])
        elif role == "assistant":
            msg = {"role": "assistant"}
            parts, thinking, calls = [], None, []
            blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
            for b in blocks:
                if b["type"] == "text":
                    parts.append(b["text"])
                elif b["type"] == "thinking":
                    thinking = b["thinking"] if thinking is None else thinking + SEP + b["thinking"]
                elif b["type"] == "tool_use":
                    calls.append({"id": b.get("id", ""), "type": "function",
                                  "function": {"name": b["name"], "arguments": b.get("input", {})}})
                elif b["type"] != "redacted_thinking":
                    raise ValueError(b["type"])
            msg["content"] = SEP.join(parts)
            if thinking is not None:
                msg["reasoning_content"] = thinking
            if calls:
                msg["tool_calls"] = calls
            msgs.append(msg)
    tools = [openai_tool(t["name"], t.get("description"), t.get("input_schema"))
             for t in body.get("tools", []) if not t.get("defer_loading")]
    kwargs = {}
    th = body.get("thinking")
    if th:
        kwargs["enable_thinking"] = th["type"] != "disabled"
    return {"messages": msgs, "tools": tools, "kwargs": kwargs,
            "add_generation_prompt": not last_assistant, "continue_final": last_assistant}


def from_openai(body):
    msgs = []
    for m in body["messages"]:
        role = {"developer": "system"}.get(m["role"], m["role"])
        content = m.get("content")
        parts = []
        if isinstance(content, str):
            parts = [content]
        elif content:
            for b in content:
                parts.append(b["text"] if b["type"] == "text" else b["refusal"])
        msg = {"role": role, "content": SEP.join(parts)}
        if role == "assistant":
            reasoning = m.get("reasoning_content", m.get("reasoning"))
            if reasoning is not None:
                msg["reasoning_content"] = reasoning
            calls = []
            for c in m.get("tool_calls") or []:
                args = c["function"].get("arguments")
                if isinstance(args, str):
                    args = json.loads(args) if args.strip() else {}
                calls.append({"id": c.get("id", ""), "type": "function",
                              "function": {"name": c["function"]["name"], "arguments": args or {}}})
            if calls:
                msg["tool_calls"] = calls
        if role == "tool":
            msg["tool_call_id"] = m.get("tool_call_id", "")
        msgs.append(msg)
    tools = [openai_tool(t["function"]["name"], t["function"].get("description"),
                         t["function"].get("parameters")) for t in body.get("tools", [])]
    kwargs = {}
    ctk = body.get("chat_template_kwargs") or {}
    if "enable_thinking" in ctk:
        kwargs["enable_thinking"] = bool(ctk["enable_thinking"])
    cont = bool(body.get("continue_final_message", False))
    return {"messages": msgs, "tools": tools, "kwargs": kwargs,
            "add_generation_prompt": body.get("add_generation_prompt", True) and not cont,
            "continue_final": cont}

# --------------------------------------------------------------------------------------
# building blocks for cases

TOOL_BASH = {
    "name": "Bash",
    "description": "Executes a given bash command in a persistent shell session with optional timeout.\n\nUsage notes:\n  - The command argument is required.\n",
    "input_schema": {
        "type": "object",
        "properties": {
            "command": {"type": "string", "description": "The command to execute"},
            "timeout": {"type": "number", "description": "Optional timeout in milliseconds (max 600000)"},
            "description": {"type": "string",
                            "description": " Clear, concise description of what this command does in 5-10 words. "},
            "run_in_background": {"type": "boolean", "description": "Set to true to run this command in the background."},
        },
        "required": ["command"],
        "additionalProperties": False,
        "$schema": "http://json-schema.org/draft-07/schema#",
    },
}
TOOL_READ = {
    "name": "Read",
    "description": "Reads a file from the local filesystem.",
    "input_schema": {
        "type": "object",
        "properties": {
            "file_path": {"type": "string", "description": "The absolute path to the file to read"},
            "offset": {"type": "integer", "description": "The line number to start reading from", "minimum": 0},
            "limit": {"type": "integer", "description": "The number of lines to read", "exclusiveMinimum": 0},
        },
        "required": ["file_path"],
        "additionalProperties": False,
    },
}
TOOL_EDIT = {
    "name": "Edit",
    "description": "Performs exact string replacements in files. \u201cold_string\u201d must be unique.",
    "input_schema": {
        "type": "object",
        "properties": {
            "file_path": {"type": "string", "description": "The absolute path to the file to modify"},
            "old_string": {"type": "string", "description": "The text to replace"},
            "new_string": {"type": "string", "description": "The text to replace it with"},
            "replace_all": {"default": False, "type": "boolean", "description": "Replace all occurrences"},
        },
        "required": ["file_path", "old_string", "new_string"],
        "additionalProperties": False,
    },
}
TOOL_TODO = {
    "name": "TodoWrite",
    "description": "Use this tool to create and manage a structured task list.",
    "input_schema": {
        "type": "object",
        "properties": {
            "todos": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "content": {"type": "string", "minLength": 1},
                        "status": {"type": "string", "enum": ["pending", "in_progress", "completed"]},
                        "id": {"type": "string"},
                    },
                    "required": ["content", "status", "id"],
                },
                "description": "The updated todo list",
            }
        },
        "required": ["todos"],
    },
}
TOOL_ODD = {
    "name": "weather_lookup",
    "description": "\u3000 Look up weather.\u00a0\n",
    "input_schema": {
        "type": "object",
        "properties": {
            "city": {"type": ["string", "null"], "description": 42},
            "units": {"enum": ["c", "f"], "default": None},
            "days": {"type": "integer", "maximum": 14, "minimum": 1.5},
            "name": {"type": "string", "description": "a property called name"},
            "it's": {"type": "string", "title": "quote's \"test\""},
        },
        "required": ["city"],
        "x-extra": {"nested": [1, 2.0, "three"]},
    },
}
TOOL_MIN = {"name": "noop", "input_schema": {"type": "object"}}
TOOL_NOSCHEMA = {"name": "ping", "description": "  "}

UNICODE = [
    "héllo wörld", "日本語のテキスト", "emoji 🎉🚀 and ZWJ 👩‍💻 flags 🇫🇷", "Ελληνικά и кириллица",
    "עברית ومرحبا", "zero\u200bwidth", "line\u2028sep", "tab\there", "quote \" and \\ backslash",
    "ctrl \x01\x1f bell\x07", "crlf\r\nline", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 non-BMP", "e\u0301 combining", "<tag> & </tag>",
    "'single' \"double\"", "\u00a0nbsp\u00a0", "del\x7fchar",
]


def anth_tool(t, **extra):
    d = dict(t)
    d.update(extra)
    return d


def tu(id_, name, inp):
    return {"type": "tool_use", "id": id_, "name": name, "input": inp}


def tr(id_, content, **extra):
    d = {"type": "tool_result", "tool_use_id": id_}
    if content is not None:
        d["content"] = content
    d.update(extra)
    return d


def txt(t, **extra):
    d = {"type": "text", "text": t}
    d.update(extra)
    return d


def user(c):
    return {"role": "user", "content": c}


def asst(c):
    return {"role": "assistant", "content": c}


def anthropic(messages, system=None, tools=None, **extra):
    body = {"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": messages}
    if system is not None:
        body["system"] = system
    if tools is not None:
        body["tools"] = tools
    body.update(extra)
    return body


def oai_call(id_, name, args):
    return {"id": id_, "type": "function",
            "function": {"name": name, "arguments": args if isinstance(args, str) else json.dumps(args)}}


def oai_tool(t):
    fn = {"name": t["name"]}
    if "description" in t:
        fn["description"] = t["description"]
    if "input_schema" in t:
        fn["parameters"] = t["input_schema"]
    return {"type": "function", "function": fn}


def openai(messages, tools=None, **extra):
    body = {"model": "qwen3", "messages": messages}
    if tools is not None:
        body["tools"] = tools
    body.update(extra)
    return body

# --------------------------------------------------------------------------------------
# hand-written cases


def hand_cases():
    C = []

    def add(name, body, tags=""):
        C.append((name, body, tags))

    add("a_single_user", anthropic([user("Hello!")]), "loop")
    add("a_system_string", anthropic([user("What is 2+2?")], system="You are terse."), "loop")
    add("a_system_blocks", anthropic([user("hi")], system=[txt("You are Claude Code."), txt("Be brief.", cache_control={"type": "ephemeral"})]), "loop")
    add("a_billing_header", anthropic([user("hi")], system=[
        txt("x-anthropic-billing-header: cc_version=2.1.37.a1b; cc_entrypoint=cli; cch=36ee5;"),
        txt("You are Claude Code, Anthropic's official CLI for Claude."),
        txt("Long system prompt\nwith lines.", cache_control={"type": "ephemeral"})]), "loop")
    add("a_billing_inline", anthropic([user("hi")], system="x-anthropic-billing-header: cc_version=1; cch=0aaa9;\nYou are helpful."), "loop")
    add("a_billing_only", anthropic([user("hi")], system="x-anthropic-billing-header: cc_version=1; cch=0aaa9;"), "loop")
    add("a_empty_system", anthropic([user("hi")], system=""), "loop")
    add("a_multi_turn", anthropic([user("Name a color."), asst("Blue."), user("Another?"), asst([txt("Green.")]), user("Thanks")], system="Be nice."))
    add("a_string_vs_blocks", anthropic([user([txt("same text")]), asst([txt("ok")]), user("same text")]))
    add("a_multi_text_blocks", anthropic([user([txt("<system-reminder>\nContext.\n</system-reminder>"), txt("Do the thing.", cache_control={"type": "ephemeral"})])]), "loop")
    add("a_empty_contents", anthropic([user(""), asst(""), user([]), asst([]), user([txt("")])]))
    add("a_tools_one_call", anthropic([
        user("List files."),
        asst([txt("I'll list them."), tu("toolu_01", "Bash", {"command": "ls -la", "description": "List files"})]),
        user([tr("toolu_01", "total 0\ndrwxr-xr-x  2 u u 40 .")]),
    ], system="You are an agent.", tools=[TOOL_BASH, TOOL_READ]), "loop")
    add("a_parallel_calls", anthropic([
        user("Read both files."),
        asst([tu("toolu_a", "Read", {"file_path": "/a.txt"}), tu("toolu_b", "Read", {"file_path": "/b.txt", "offset": 10, "limit": 5}),
              tu("toolu_c", "Bash", {"command": "wc -l /a.txt /b.txt"})]),
        user([tr("toolu_a", "A contents"), tr("toolu_b", [txt("B line 1"), txt("B line 2")]), tr("toolu_c", "3 total")]),
        asst("Both read."),
        user("Good."),
    ], tools=[TOOL_READ, TOOL_BASH]), "")
    add("a_result_blocks_and_text", anthropic([
        user("Go."),
        asst([tu("toolu_1", "Bash", {"command": "make"})]),
        user([tr("toolu_1", [txt("build ok")], cache_control={"type": "ephemeral"}), txt("<system-reminder>todo list empty</system-reminder>"), txt("Now test.")]),
    ], tools=[TOOL_BASH]), "")
    add("a_result_error", anthropic([
        user("Run it."),
        asst([tu("toolu_e", "Bash", {"command": "false"})]),
        user([tr("toolu_e", "Error: exit code 1", is_error=True)]),
    ], tools=[TOOL_BASH]), "loop")
    add("a_result_empty", anthropic([
        user("Touch."),
        asst([tu("toolu_t", "Bash", {"command": "touch x"})]),
        user([tr("toolu_t", None), tr("toolu_t2", ""), tr("toolu_t3", [])]),
    ], tools=[TOOL_BASH]), "loop")
    add("a_mid_system", anthropic([
        user("Hi."), asst("Hello."),
        {"role": "system", "content": "The user switched to plan mode."},
        user("Plan it."),
    ], system="Base system."))
    add("a_mid_system_no_top", anthropic([
        {"role": "system", "content": [txt("x-anthropic-billing-header: cc=1;\nFirst system.")]}, user("Hi."),
        {"role": "system", "content": "Second system."}, user("Again.")], tools=[TOOL_MIN]))
    add("a_unicode", anthropic([user(" / ".join(UNICODE)), asst(UNICODE[2]), user(UNICODE[0])], system=UNICODE[1]))
    add("a_unicode_args", anthropic([
        user("Edit."),
        asst([tu("toolu_u", "Edit", {"file_path": "/tmp/ü.txt", "old_string": "\t\"quoted\" \\ \x01 \u2028 日本", "new_string": "🎉\n"})]),
        user([tr("toolu_u", "ok ✓")]),
    ], tools=[TOOL_EDIT]), "loop")
    add("a_thinking_current", anthropic([
        user("Think then answer."),
        asst([{"type": "thinking", "thinking": "Let me reason.\nStep 1.", "signature": "sig=="},
              tu("toolu_th", "Bash", {"command": "date"})]),
        user([tr("toolu_th", "Mon Jan 1")]),
    ], tools=[TOOL_BASH], thinking={"type": "enabled", "budget_tokens": 2048}), "loop")
    add("a_thinking_past", anthropic([
        user("Q1"),
        asst([{"type": "thinking", "thinking": "old reasoning", "signature": "x"}, txt("A1")]),
        user("Q2"),
        asst([{"type": "thinking", "thinking": "\nnewer reasoning\n", "signature": "y"}, {"type": "redacted_thinking", "data": "abc"}, txt("A2")]),
        user("Q3"),
    ], thinking={"type": "enabled", "budget_tokens": 1024}))
    add("a_thinking_multi_blocks", anthropic([
        user("Q"),
        asst([{"type": "thinking", "thinking": "part one", "signature": "x"}, {"type": "thinking", "thinking": "part two", "signature": "y"},
              txt("\nanswer with leading newline"), tu("toolu_m", "Read", {"file_path": "/x"})]),
        user([tr("toolu_m", "x")]),
    ], tools=[TOOL_READ]), "loop")
    add("a_thinking_disabled", anthropic([user("No thinking please.")], thinking={"type": "disabled"}), "")
    add("a_inline_think", anthropic([
        user("Q1"), asst("<think>\nhidden\n</think>\n\nVisible answer."), user("Q2"),
        asst("<think>x</think>y</think>\nz"), user("Q3")]))
    add("a_inline_think_current", anthropic([
        user("Q1"), asst([txt("<think>\nreason\n</think>\n\n"), tu("toolu_i", "Bash", {"command": "pwd"})]),
        user([tr("toolu_i", "/home")])], tools=[TOOL_BASH]), "loop")
    add("a_prefill", anthropic([user("Say hi in JSON."), asst("{\"greeting\":")]))
    add("a_prefill_tools", anthropic([user("Start."), asst("Sure, I will")], tools=[TOOL_BASH]))
    add("a_defer_loading", anthropic([user("hi")], tools=[TOOL_BASH, anth_tool(TOOL_READ, defer_loading=True), anth_tool(TOOL_EDIT, cache_control={"type": "ephemeral"})]), "loop")
    add("a_odd_schema", anthropic([
        user("Weather?"),
        asst([tu("toolu_w", "weather_lookup", {"city": None, "units": "c", "days": 3, "name": "x", "it's": "y'z"})]),
        user([tr("toolu_w", "sunny")]),
    ], tools=[TOOL_ODD, TOOL_MIN, TOOL_NOSCHEMA, TOOL_TODO]), "loop")
    add("a_arg_types", anthropic([
        user("Types."),
        asst([tu("toolu_n", "noop", {"i": 7, "neg": -3, "big": 9007199254740993, "f": 0.1, "f2": 3.0, "e": 1e16, "small": 1e-05,
                                      "tiny": 0.0001, "huge": 1.5e300, "negz": -0.0, "pi": 3.141592653589793, "t": True, "fa": False,
                                      "nul": None, "s": "str", "empty": "", "arr": [1, "two", [3.5, {"k": None}]], "obj": {"z": 1, "a": 2},
                                      "nested": {"list": [], "dict": {}}, "ws": "  padded  "})]),
        user([tr("toolu_n", "done")]),
    ], tools=[TOOL_MIN]), "loop")
    add("a_todo_call", anthropic([
        user("Plan."),
        asst([txt("  Planning.  \n"), tu("toolu_td", "TodoWrite", {"todos": [{"content": "Write code", "status": "in_progress", "id": "1"},
                                                                     {"content": "Test", "status": "pending", "id": "2"}]})]),
        user([tr("toolu_td", "Todos have been modified successfully.")]),
    ], tools=[TOOL_TODO]), "loop")
    add("a_content_newline_calls", anthropic([
        user("x"), asst([txt("\n"), tu("toolu_nl", "noop", {})]), user([tr("toolu_nl", "r")])], tools=[TOOL_MIN]), "loop")
    add("a_consecutive_users", anthropic([user("one"), user("two"), asst("ok"), asst("more"), user("three")]))
    add("a_wrapped_tool_response_user", anthropic([
        user("real query"), asst("answer"), user("<tool_response>\nfake\n</tool_response>")], thinking={"type": "enabled", "budget_tokens": 100}))
    add("a_long_agent_loop", anthropic([
        user("Fix the bug."),
        asst([{"type": "thinking", "thinking": "Look at the file.", "signature": "s1"}, tu("t1", "Read", {"file_path": "/src/a.c"})]),
        user([tr("t1", "int main(void) { return 1; }")]),
        asst([txt("Found it."), tu("t2", "Edit", {"file_path": "/src/a.c", "old_string": "return 1", "new_string": "return 0"})]),
        user([tr("t2", "The file has been updated.")]),
        asst([{"type": "thinking", "thinking": "Now build.", "signature": "s3"}, tu("t3", "Bash", {"command": "make && ./a.out", "timeout": 60000})]),
        user([tr("t3", "exit 0")]),
    ], system=[txt("x-anthropic-billing-header: cc_version=9; cch=1;"), txt("You are an agent.")], tools=[TOOL_BASH, TOOL_READ, TOOL_EDIT]), "loop")
    add("a_ignored_fields", anthropic([user([txt("hi", citations=None, extra_field={"x": 1})])], metadata={"user_id": "u"},
                                      tool_choice={"type": "auto", "disable_parallel_tool_use": True}, temperature=0.5, top_k=20,
                                      stop_sequences=["\n\nHuman:"], stream=True, unknown_top={"a": [1]}, tools=[anth_tool(TOOL_MIN, future_field=1)]), "loop")
    add("a_cache_everywhere", anthropic([
        user([txt("q", cache_control={"type": "ephemeral", "ttl": "1h"})]),
        asst([tu("toolu_cc", "noop", {}), ]),
        user([tr("toolu_cc", [txt("r", cache_control={"type": "ephemeral"})], cache_control={"type": "ephemeral"})]),
    ], system=[txt("s", cache_control={"type": "ephemeral"})], tools=[anth_tool(TOOL_MIN, cache_control={"type": "ephemeral"})]), "loop")

    # OpenAI Chat Completions shapes
    add("o_simple", openai([{"role": "system", "content": "You are helpful."}, {"role": "user", "content": "Hi"}]), "loop")
    add("o_developer", openai([{"role": "developer", "content": [{"type": "text", "text": "Dev rules."}]}, {"role": "user", "content": "Hi"}]), "loop")
    add("o_parts", openai([{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                           {"role": "assistant", "content": [{"type": "text", "text": "c"}, {"type": "refusal", "refusal": "no"}]},
                           {"role": "user", "content": "d"}]))
    add("o_tool_calls", openai([
        {"role": "user", "content": "Weather in Paris and Tokyo?"},
        {"role": "assistant", "content": None, "tool_calls": [
            oai_call("call_1", "weather_lookup", {"city": "Paris", "days": 2}),
            oai_call("call_2", "weather_lookup", "{\"city\":\"Tokyo\",\"units\":\"c\"}")]},
        {"role": "tool", "tool_call_id": "call_1", "content": "Paris: 18C"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "Tokyo: 25C"}]},
    ], tools=[oai_tool(TOOL_ODD), oai_tool(TOOL_MIN)], tool_choice="auto", parallel_tool_calls=True), "loop")
    add("o_reasoning", openai([
        {"role": "user", "content": "Q"},
        {"role": "assistant", "content": "", "reasoning_content": "thinking hard", "tool_calls": [oai_call("c1", "noop", "")]},
        {"role": "tool", "tool_call_id": "c1", "content": ""},
    ], tools=[oai_tool(TOOL_MIN)]), "loop")
    add("o_thinking_off", openai([{"role": "user", "content": "Q"}], chat_template_kwargs={"enable_thinking": False}))
    add("o_thinking_on", openai([{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}, {"role": "user", "content": "Q2"}],
                                chat_template_kwargs={"enable_thinking": True}))
    add("o_tool_first", openai([{"role": "tool", "tool_call_id": "x", "content": "orphan"}, {"role": "user", "content": "hi"}]))
    add("o_system_tool_first", openai([{"role": "system", "content": "S"}, {"role": "tool", "tool_call_id": "x", "content": "orphan"},
                                       {"role": "tool", "tool_call_id": "y", "content": "orphan2"}], tools=[oai_tool(TOOL_MIN)]))
    add("o_continue_final", openai([{"role": "user", "content": "Count"}, {"role": "assistant", "content": "1, 2,"}],
                                   continue_final_message=True, add_generation_prompt=False))
    add("o_no_gen_prompt", openai([{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}], add_generation_prompt=False))
    add("o_tool_no_desc_params", openai([{"role": "user", "content": "x"}],
                                        tools=[{"type": "function", "function": {"name": "bare"}},
                                               {"type": "function", "function": {"name": "strict_one", "description": "d", "strict": True,
                                                                                 "parameters": {"type": "object", "properties": {}}}}]), "loop")
    add("o_null_content", openai([{"role": "user", "content": None}, {"role": "assistant", "content": None}, {"role": "user", "content": "x"}],
                                 max_completion_tokens=10, stop="END", stream_options={"include_usage": True}, n=1))
    return C

# --------------------------------------------------------------------------------------
# seeded random conversations


def rand_text(rng):
    pieces = ["Fix the failing test.", "ok", "", "  spaced  ", "multi\nline\ntext", "<b>html</b>", "path/to/file.c:42",
              "SELECT * FROM t;", "{\"json\": true}", "\n\nleading newlines", "trailing newline\n"] + UNICODE
    return " ".join(rng.choice(pieces) for _ in range(rng.randint(1, 3)))


def rand_value(rng, depth=0):
    k = rng.randint(0, 9 if depth < 2 else 6)
    if k == 0:
        return rng.randint(-10**6, 10**6)
    if k == 1:
        return rng.choice([0.5, -2.25, 1e-7, 123456.789, 2.0, 1e21, 0.1 + 0.2])
    if k == 2:
        return rng.choice([True, False, None])
    if k in (3, 4, 5, 6):
        return rand_text(rng)
    if k in (7, 8):
        return [rand_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(["a", "zeta", "path", "ü", "n-1", "x y"]) + str(i): rand_value(rng, depth + 1) for i in range(rng.randint(0, 3))}


TOOLS = [TOOL_BASH, TOOL_READ, TOOL_EDIT, TOOL_TODO, TOOL_ODD, TOOL_MIN]


def rand_args(rng, tool):
    props = tool.get("input_schema", {}).get("properties", {})
    args = {}
    for name in props:
        if rng.random() < 0.7:
            args[name] = rand_value(rng)
    if rng.random() < 0.2:
        args["extra"] = rand_value(rng)
    return args


def rand_conversation(rng, api, idx):
    tools = rng.sample(TOOLS, rng.randint(0, 3))
    thinking = rng.choice([None, None, "enabled", "disabled"])
    msgs, n_queries = [], rng.randint(1, 3)
    call_no = 0
    for q in range(n_queries):
        msgs.append(("user", rand_text(rng)))
        for _ in range(rng.randint(0, 3) if tools else 0):
            calls = []
            for _ in range(rng.randint(1, 3)):
                t = rng.choice(tools)
                call_no += 1
                calls.append((f"call_{idx}_{call_no}", t["name"], rand_args(rng, t)))
            think = rand_text(rng) if rng.random() < 0.4 else None
            msgs.append(("assistant_calls", rng.choice(["", rand_text(rng)]), think, calls))
            msgs.append(("results", [(c[0], rand_text(rng), rng.random() < 0.3) for c in calls]))
        if q + 1 < n_queries or rng.random() < 0.3:
            think = rand_text(rng) if rng.random() < 0.4 else None
            msgs.append(("assistant", rand_text(rng), think))
    if msgs[-1][0] == "assistant":
        msgs.append(("user", rand_text(rng)))
    system = rand_text(rng) if rng.random() < 0.7 else None

    if api == "anthropic":
        out = []
        for m in msgs:
            if m[0] == "user":
                out.append(user(m[1] if rng.random() < 0.5 else [txt(m[1])]))
            elif m[0] == "assistant":
                blocks = ([{"type": "thinking", "thinking": m[2], "signature": "s"}] if m[2] is not None else []) + [txt(m[1])]
                out.append(asst(blocks))
            elif m[0] == "assistant_calls":
                blocks = ([{"type": "thinking", "thinking": m[2], "signature": "s"}] if m[2] is not None else [])
                blocks += [txt(m[1])] if m[1] else []
                blocks += [tu(c[0], c[1], c[2]) for c in m[3]]
                out.append(asst(blocks))
            else:
                blocks = []
                for cid, res, err in m[1]:
                    content = res if rng.random() < 0.5 else [txt(p) for p in res.split(" ", 1)]
                    blocks.append(tr(cid, content, **({"is_error": True} if err else {})))
                if rng.random() < 0.2:
                    blocks.append(txt("<system-reminder>note</system-reminder>"))
                out.append(user(blocks))
        extra = {"thinking": {"type": thinking, "budget_tokens": 1000}} if thinking else {}
        return anthropic(out, system=system, tools=tools or None, **extra)

    out = [{"role": "system", "content": system}] if system is not None else []
    for m in msgs:
        if m[0] == "user":
            out.append({"role": "user", "content": m[1]})
        elif m[0] == "assistant":
            d = {"role": "assistant", "content": m[1]}
            if m[2] is not None:
                d["reasoning_content"] = m[2]
            out.append(d)
        elif m[0] == "assistant_calls":
            d = {"role": "assistant", "content": m[1] or None, "tool_calls": [oai_call(*c) for c in m[3]]}
            if m[2] is not None:
                d["reasoning_content"] = m[2]
            out.append(d)
        else:
            for cid, res, _ in m[1]:
                out.append({"role": "tool", "tool_call_id": cid, "content": res})
    extra = {"chat_template_kwargs": {"enable_thinking": thinking != "disabled"}} if thinking else {}
    return openai(out, tools=[oai_tool(t) for t in tools] or None, **extra)

# --------------------------------------------------------------------------------------


def main():
    args = sys.argv[1:]
    if not args or args[0] in ("-h", "--help"):
        print(__doc__)
        return 2
    outdir = args[0]
    here = os.path.dirname(os.path.abspath(__file__))
    tdir = os.path.join(here, "..", "..", "..", "shared", "fixtures", "templates")
    if "--templates" in args:
        tdir = args[args.index("--templates") + 1]
    env = make_env()
    templates = {
        "qwen3": env.from_string(open(os.path.join(tdir, "Qwen-Qwen3-0.6B.jinja"), encoding="utf-8").read()),
        "qwen3-coder": env.from_string(open(os.path.join(tdir, "Qwen3-Coder.jinja"), encoding="utf-8").read()),
    }
    cases = [(n, b, t) for n, b, t in hand_cases()]
    rng = random.Random(20240611)
    for i in range(40):
        api = "anthropic" if i % 2 == 0 else "openai"
        cases.append((f"r{i:02d}_{api[0]}", rand_conversation(rng, api, i), ""))

    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, "manifest.tsv"), "w", encoding="utf-8") as man:
        for name, body, tags in cases:
            api = "openai" if name.startswith("o_") or name.endswith("_o") else "anthropic"
            conv = from_openai(body) if api == "openai" else from_anthropic(body)
            with open(os.path.join(outdir, name + ".json"), "w", encoding="utf-8") as f:
                json.dump(body, f, ensure_ascii=False, indent=1)
            for fam, tmpl in templates.items():
                text = render(tmpl, conv)
                with open(os.path.join(outdir, f"{name}.{fam}.txt"), "w", encoding="utf-8", newline="") as f:
                    f.write(text)
            man.write(f"{name}\t{api}\t{tags}\n")
    print(f"{len(cases)} conversations written to {outdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
