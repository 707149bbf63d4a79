// anthropic.test.mjs — the Anthropic Messages API of the real server, driven by the
// official @anthropic-ai/sdk: streaming and not, event order and indices, usage and
// cache fields, count_tokens, tools (teacher-forced tool calls), errors in Anthropic's
// envelope, authentication, body limits, and a client disconnecting mid-stream.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import Anthropic from "@anthropic-ai/sdk";
import { makeModel, startServer, tempDir, readSSE } from "./harness.mjs";

const KEY = "sk-test-key";
let dir, model, srv, client;

const readTool = {
  name: "Read",
  description: "Reads a file from the local filesystem.",
  input_schema: {
    type: "object",
    properties: { file_path: { type: "string" }, limit: { type: "number" } },
    required: ["file_path"],
  },
};

// Teacher-forced outputs, taken in order by the requests below that need them.
const forced = [
  "I will read it.\n<tool_call>\n<function=Read>\n<parameter=file_path>\n/tmp/a.txt\n</parameter>\n<parameter=limit>\n20\n</parameter>\n</function>\n</tool_call>",
  "<tool_call>\n<function=Read>\n<parameter=file_path>\n/etc/hosts\n</parameter>\n</function>\n</tool_call>",
  // tool_choice {type: "tool"}: the server writes "<tool_call>\n<function=Read>\n" itself
  "<parameter=file_path>\n/tmp/b.txt\n</parameter>\n</function>\n</tool_call>",
];

before(async () => {
  dir = tempDir();
  model = makeModel(dir);
  const forcedFile = path.join(dir, "forced.jsonl");
  fs.writeFileSync(forcedFile, forced.map((t) => JSON.stringify(t)).join("\n") + "\n");
  srv = await startServer(model, ["--api-key", KEY, "--kv-dir", path.join(dir, "kv"), "--max-body", "256K",
    "--test-forced-outputs", forcedFile]);
  client = new Anthropic({ baseURL: srv.url, apiKey: KEY, maxRetries: 0 });
});

after(async () => {
  const r = await srv?.stop();
  assert.equal(r.code, 0, "graceful shutdown exits 0");
  fs.rmSync(dir, { recursive: true, force: true });
});

const system = "You are a careful coding assistant. ".repeat(40); // ~280 tokens: several KV blocks

test("tool call: forced Qwen3-Coder output becomes a typed tool_use block", async () => {
  const msg = await client.messages.create({
    model: "claude-sonnet-4-5", max_tokens: 200, system, tools: [readTool],
    messages: [{ role: "user", content: "Read /tmp/a.txt please" }],
  });
  assert.equal(msg.stop_reason, "tool_use");
  assert.equal(msg.content[0].type, "text");
  assert.equal(msg.content[0].text, "I will read it.");
  const call = msg.content[1];
  assert.equal(call.type, "tool_use");
  assert.equal(call.name, "Read");
  assert.deepEqual(call.input, { file_path: "/tmp/a.txt", limit: 20 }, "number typed from the schema");
  assert.match(call.id, /^toolu_[A-Za-z0-9]{24}$/);

  // The follow-up sends the call back (re-serialised differently) with its result; the
  // prompt up to the new turn is served from the cache.
  const followUp = await client.messages.stream({
    model: "claude-sonnet-4-5", max_tokens: 200, system, tools: [readTool],
    messages: [
      { role: "user", content: "Read /tmp/a.txt please" },
      { role: "assistant", content: [{ type: "text", text: "I will read it." },
        { type: "tool_use", id: call.id, name: "Read", input: { limit: 20, file_path: "/tmp/a.txt" } }] },
      { role: "user", content: [{ type: "tool_result", tool_use_id: call.id, content: "hello from a.txt" }] },
    ],
  }).finalMessage();
  assert.equal(followUp.stop_reason, "tool_use");
  const u = followUp.usage;
  const total = u.input_tokens + u.cache_read_input_tokens + u.cache_creation_input_tokens;
  assert.ok(u.cache_read_input_tokens >= 0.8 * total - 64,
    `follow-up read ${u.cache_read_input_tokens} of ${total} prompt tokens from cache`);
  assert.deepEqual(followUp.content.at(-1).input, { file_path: "/etc/hosts" });
});

test("tool_choice tool: the reply is a call to that tool", async () => {
  const msg = await client.messages.create({
    model: "m", max_tokens: 100, tools: [readTool], tool_choice: { type: "tool", name: "Read" },
    messages: [{ role: "user", content: "Anything" }],
  });
  assert.equal(msg.stop_reason, "tool_use");
  assert.equal(msg.content.length, 1);
  assert.equal(msg.content[0].name, "Read");
  assert.deepEqual(msg.content[0].input, { file_path: "/tmp/b.txt" });
});

test("non-streaming message: shape, any model name, usage", async () => {
  const msg = await client.messages.create({
    model: "claude-opus-4-1", max_tokens: 12, system,
    messages: [{ role: "user", content: "Say hello." }],
  });
  assert.equal(msg.type, "message");
  assert.equal(msg.role, "assistant");
  assert.equal(msg.model, "claude-opus-4-1");
  assert.match(msg.id, /^msg_/);
  assert.ok(["max_tokens", "end_turn"].includes(msg.stop_reason));
  assert.ok(msg.usage.output_tokens >= 1 && msg.usage.output_tokens <= 12);
  assert.ok(msg.usage.input_tokens + msg.usage.cache_read_input_tokens + msg.usage.cache_creation_input_tokens > 280);
});

test("same prompt twice: the second reads its prefix from cache", async () => {
  const req = { model: "m", max_tokens: 4, system: "unique-1 " + system, messages: [{ role: "user", content: "Hi" }] };
  const a = await client.messages.create(req);
  const b = await client.messages.create(req);
  assert.ok(a.usage.cache_creation_input_tokens > 0, "first request fills the cache");
  assert.ok(b.usage.cache_read_input_tokens >= a.usage.cache_creation_input_tokens,
    `second reads what the first cached (${b.usage.cache_read_input_tokens} vs ${a.usage.cache_creation_input_tokens})`);
  assert.ok(b.usage.input_tokens < 64);
});

test("streaming: documented events in order, consistent indices", async () => {
  const res = await fetch(`${srv.url}/v1/messages?beta=true`, {
    method: "POST", headers: { "x-api-key": KEY, "content-type": "application/json", "anthropic-beta": "whatever-2025" },
    body: JSON.stringify({ model: "m", max_tokens: 10, stream: true, system, messages: [{ role: "user", content: "Count." }],
      metadata: { user_id: "u" }, context_management: { edits: [] }, unknown_field: 1 }),
  });
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type"), /text\/event-stream/);
  const ev = await readSSE(res);
  const names = ev.map((e) => e.event);
  assert.equal(names[0], "message_start");
  assert.equal(names[1], "ping");
  assert.equal(names.at(-1), "message_stop");
  assert.equal(names.at(-2), "message_delta");
  const start = ev[0].data.message;
  assert.equal(start.usage.output_tokens, 0);
  let open = null, nextIndex = 0;
  for (const e of ev) {
    if (e.event === "content_block_start") { assert.equal(open, null); assert.equal(e.data.index, nextIndex); open = e.data.index; }
    if (e.event === "content_block_delta") assert.equal(e.data.index, open);
    if (e.event === "content_block_stop") { assert.equal(e.data.index, open); open = null; nextIndex++; }
  }
  assert.equal(open, null);
  const delta = ev.at(-2).data;
  assert.ok(["max_tokens", "end_turn"].includes(delta.delta.stop_reason));
  assert.ok(delta.usage.output_tokens >= 1);
});

test("SDK streaming helper gets text and final usage", async () => {
  const stream = client.messages.stream({ model: "m", max_tokens: 8, messages: [{ role: "user", content: "hi" }] });
  let text = "";
  stream.on("text", (t) => { text += t; });
  const final = await stream.finalMessage();
  assert.ok(final.usage.output_tokens >= 1);
  assert.equal(final.content.filter((b) => b.type === "text").map((b) => b.text).join(""), text);
});

test("stop_sequences end the turn with stop_reason stop_sequence", async () => {
  // With greedy decoding the model's continuation is deterministic: find a stop string
  // in it, then ask again with that string.
  const req = { model: "m", max_tokens: 24, temperature: 0, messages: [{ role: "user", content: "Tell me a story" }] };
  const free = await client.messages.create(req);
  const text = free.content.map((b) => b.text ?? "").join("");
  const stop = [...text.slice(3)].slice(0, 2).join("") || null;
  if (!stop || !stop.trim()) return; // a whitespace-only continuation: nothing to stop on
  const stopped = await client.messages.create({ ...req, stop_sequences: [stop] });
  assert.equal(stopped.stop_reason, "stop_sequence");
  assert.equal(stopped.stop_sequence, stop);
  const cut = stopped.content.map((b) => b.text ?? "").join("");
  assert.ok(!cut.includes(stop) && text.startsWith(cut), `${JSON.stringify(cut)} is the text before ${JSON.stringify(stop)}`);
});

test("count_tokens is exact and costs no generation", async () => {
  const body = { model: "m", system, messages: [{ role: "user", content: "Hello there" }] };
  const c = await client.messages.countTokens(body);
  assert.ok(c.input_tokens > 280);
  const m = await client.messages.create({ ...body, max_tokens: 1 });
  const u = m.usage;
  assert.equal(u.input_tokens + u.cache_read_input_tokens + u.cache_creation_input_tokens, c.input_tokens);
  const asBlocks = await client.messages.countTokens({ ...body, messages: [{ role: "user", content: [{ type: "text", text: "Hello there" }] }] });
  assert.equal(asBlocks.input_tokens, c.input_tokens, "string and block content render the same");
});

async function raw(pathname, body, headers = {}) {
  const res = await fetch(`${srv.url}${pathname}`, {
    method: "POST", headers: { "x-api-key": KEY, "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json(), headers: res.headers };
}

test("errors use Anthropic's envelope and status codes", async () => {
  let r = await raw("/v1/messages", "{not json");
  assert.equal(r.status, 400);
  assert.deepEqual(Object.keys(r.body), ["type", "error"]);
  assert.equal(r.body.type, "error");
  assert.equal(r.body.error.type, "invalid_request_error");

  r = await raw("/v1/messages", { model: "m", messages: [{ role: "user", content: "x" }] });
  assert.equal(r.status, 400, "missing max_tokens");
  assert.match(r.body.error.message, /max_tokens/);

  r = await raw("/v1/messages", { model: "m", max_tokens: 5, messages: "nope" });
  assert.equal(r.status, 400, "wrong type");
  assert.match(r.body.error.message, /messages/);

  r = await raw("/v1/messages", { model: "m", max_tokens: 5, messages: [{ role: "user", content: [{ type: "image", source: { type: "base64", media_type: "image/png", data: "AA==" } }] }] });
  assert.equal(r.status, 400, "images are refused clearly");
  assert.match(r.body.error.message, /image/);

  r = await raw("/v1/messages", { model: "m", max_tokens: 5, messages: [{ role: "user", content: "x".repeat(300000) }] });
  assert.equal(r.status, 413);
  assert.equal(r.body.error.type, "request_too_large");

  r = await raw("/v1/nope", {});
  assert.equal(r.status, 404);

  r = await raw("/v1/messages", { model: "m", max_tokens: 5, messages: [{ role: "user", content: "x" }] }, { "x-api-key": "wrong" });
  assert.equal(r.status, 401);
  assert.equal(r.body.error.type, "authentication_error");

  await assert.rejects(new Anthropic({ baseURL: srv.url, apiKey: "bad", maxRetries: 0 }).messages.create({
    model: "m", max_tokens: 4, messages: [{ role: "user", content: "x" }],
  }), (e) => e.status === 401);

  const bearer = await fetch(`${srv.url}/v1/models`, { headers: { authorization: `Bearer ${KEY}` } });
  assert.equal(bearer.status, 200);
});

test("a client that disconnects mid-stream stops its generation", async () => {
  const before = await metrics();
  const ctl = new AbortController();
  const res = await fetch(`${srv.url}/v1/messages`, {
    method: "POST", signal: ctl.signal, headers: { "x-api-key": KEY, "content-type": "application/json" },
    body: JSON.stringify({ model: "m", max_tokens: 4000, stream: true, temperature: 1,
      messages: [{ role: "user", content: "Write forever" }] }),
  });
  const reader = res.body.getReader();
  let got = "";
  while (!got.includes("content_block_delta")) got += new TextDecoder().decode((await reader.read()).value);
  ctl.abort();
  // the engine notices at its next step: cancelled count goes up, running goes back to 0
  let m;
  for (let i = 0; i < 100; i++) {
    await new Promise((r) => setTimeout(r, 100));
    m = await metrics();
    if (m.kvserve_requests_cancelled_total > before.kvserve_requests_cancelled_total && m.kvserve_requests_running === 0) break;
  }
  assert.ok(m.kvserve_requests_cancelled_total > before.kvserve_requests_cancelled_total, "cancelled");
  assert.ok(m.kvserve_generated_tokens_total - before.kvserve_generated_tokens_total < 4000, "stopped early");
});

async function metrics() {
  const res = await fetch(`${srv.url}/metrics`, { headers: { "x-api-key": KEY } });
  assert.equal(res.status, 200);
  const out = {};
  for (const line of (await res.text()).split("\n")) {
    const m = line.match(/^([a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$/);
    if (m) out[m[1] + (m[2] ?? "")] = Number(m[3]);
  }
  return out;
}

test("/metrics reports tokens by cache tier", async () => {
  const m = await metrics();
  assert.ok(m.kvserve_prompt_tokens_total > 0);
  assert.ok(m['kvserve_cache_read_tokens_total{tier="ram"}'] > 0);
  assert.ok(m.kvserve_generated_tokens_total > 0);
  assert.ok(m.kvserve_kv_blocks > 0);
});
