// openai.test.mjs — the OpenAI Chat Completions API of the real server, driven by the
// official `openai` client: streaming and not, chunk shapes and `data: [DONE]`,
// stream_options.include_usage, cached_tokens, tools (teacher-forced Qwen3-Coder XML and
// Hermes JSON calls, the follow-up with the tool result served from the cache), Qwen3
// reasoning as reasoning_content, /v1/models, and errors in OpenAI's envelope (bad JSON,
// missing fields, a wrong key, a full queue answered at once with 503 and retry-after).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import OpenAI from "openai";
import { makeModel, startServer, tempDir, readSSE, templates } from "./harness.mjs";

const KEY = "sk-test-key";
let dir, coder, qwen3, srv, hermes, client, hermesClient;

const readTool = {
  type: "function",
  function: {
    name: "Read",
    description: "Reads a file from the local filesystem.",
    parameters: {
      type: "object",
      properties: { file_path: { type: "string" }, limit: { type: "number" } },
      required: ["file_path"],
    },
  },
};

const weatherTool = {
  type: "function",
  function: {
    name: "get_weather",
    description: "The current weather in a city.",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
};

// Teacher-forced outputs, taken in order by the first requests of each server (the tests
// that need them run first, in file order).
const coderForced = [
  "I will read it.\n<tool_call>\n<function=Read>\n<parameter=file_path>\n/tmp/a.txt\n</parameter>\n<parameter=limit>\n20\n</parameter>\n</function>\n</tool_call>",
  "The file says hello.",
  "<tool_call>\n<function=Read>\n<parameter=file_path>\n/etc/hosts\n</parameter>\n</function>\n</tool_call>",
  "<tool_call>\n<function=Read>\n<parameter=file_path>\n/srv/data/report-2025.txt\n</parameter>\n<parameter=limit>\n400\n</parameter>\n</function>\n</tool_call>",
  "Done.",
];
const hermesForced = [
  "<think>\nreasoning\n</think>\n\nanswer",
  "<think>\nreasoning\n</think>\n\nanswer",
  '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
  '<think>\nI should look it up.\n</think>\n\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
];

function forcedFile(name, texts) {
  const file = path.join(dir, name);
  fs.writeFileSync(file, texts.map((t) => JSON.stringify(t)).join("\n") + "\n");
  return file;
}

before(async () => {
  dir = tempDir();
  coder = makeModel(dir);
  qwen3 = makeModel(dir, { template: templates.qwen3, name: "qwen3.gguf" });
  srv = await startServer(coder, ["--api-key", KEY, "--kv-dir", path.join(dir, "kv"), "--max-body", "256K",
    "--test-forced-outputs", forcedFile("coder.jsonl", coderForced)]);
  hermes = await startServer(qwen3, ["--api-key", KEY, "--kv-dir", path.join(dir, "kv-qwen3"),
    "--test-forced-outputs", forcedFile("hermes.jsonl", hermesForced)]);
  client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: KEY, maxRetries: 0 });
  hermesClient = new OpenAI({ baseURL: `${hermes.url}/v1`, apiKey: KEY, maxRetries: 0 });
});

after(async () => {
  const r = await srv?.stop();
  const h = await hermes?.stop();
  assert.equal(r.code, 0, "graceful shutdown exits 0");
  assert.equal(h.code, 0, "graceful shutdown exits 0");
  fs.rmSync(dir, { recursive: true, force: true });
});

const system = "You are a careful coding assistant. ".repeat(40); // ~280 tokens: several KV blocks

/** Reads a streamed completion into its chunks. */
async function chunks(stream) {
  const out = [];
  for await (const c of stream) out.push(c);
  return out;
}

/** Text of one delta field (content, reasoning_content) across the chunks. */
function joined(cs, field) {
  return cs.map((c) => c.choices[0]?.delta?.[field] ?? "").join("");
}

test("tool call: forced Qwen3-Coder output becomes message.tool_calls", async () => {
  const res = await client.chat.completions.create({
    model: "gpt-4o", max_tokens: 200, tools: [readTool],
    messages: [{ role: "system", content: system }, { role: "user", content: "Read /tmp/a.txt please" }],
  });
  const choice = res.choices[0];
  assert.equal(choice.finish_reason, "tool_calls");
  assert.equal(choice.message.role, "assistant");
  assert.equal(choice.message.content, "I will read it.");
  assert.equal(choice.message.tool_calls.length, 1);
  const call = choice.message.tool_calls[0];
  assert.equal(call.type, "function");
  assert.match(call.id, /^[A-Za-z0-9_-]{8,}$/, "an opaque id");
  assert.equal(call.function.name, "Read");
  assert.equal(typeof call.function.arguments, "string");
  assert.deepEqual(JSON.parse(call.function.arguments), { file_path: "/tmp/a.txt", limit: 20 },
    "number typed from the schema");

  // The follow-up sends the call back (arguments re-serialised with other key order and
  // spacing) with its result in a tool message: the prompt up to the new turn is cached.
  const args = JSON.parse(call.function.arguments);
  const followUp = await client.chat.completions.create({
    model: "gpt-4o", max_tokens: 200, tools: [readTool],
    messages: [
      { role: "system", content: system },
      { role: "user", content: "Read /tmp/a.txt please" },
      { role: "assistant", content: choice.message.content, tool_calls: [{ id: call.id, type: "function",
        function: { name: "Read", arguments: JSON.stringify({ limit: args.limit, file_path: args.file_path }, null, 1) } }] },
      { role: "tool", tool_call_id: call.id, content: "hello from a.txt" },
    ],
  });
  assert.equal(followUp.choices[0].finish_reason, "stop");
  assert.equal(followUp.choices[0].message.content, "The file says hello.");
  assert.equal(followUp.choices[0].message.tool_calls, undefined, "no tool_calls without calls");
  const u = followUp.usage;
  assert.ok(u.prompt_tokens_details.cached_tokens >= 0.8 * u.prompt_tokens - 64,
    `follow-up read ${u.prompt_tokens_details.cached_tokens} of ${u.prompt_tokens} prompt tokens from cache`);
  assert.ok(u.prompt_tokens > res.usage.prompt_tokens);
});

test("tool call streamed: one tool_calls delta, finish_reason tool_calls, SDK accumulates it", async () => {
  const stream = client.chat.completions.stream({
    model: "gpt-4o", max_tokens: 200, tools: [readTool], stream_options: { include_usage: true },
    messages: [{ role: "user", content: "Show /etc/hosts" }],
  });
  const cs = [];
  stream.on("chunk", (c) => cs.push(c));
  const final = await stream.finalChatCompletion();
  const calls = cs.flatMap((c) => c.choices[0]?.delta?.tool_calls ?? []);
  assert.equal(calls.length, 1);
  assert.equal(calls[0].index, 0);
  assert.equal(calls[0].type, "function");
  assert.match(calls[0].id, /^[A-Za-z0-9_-]{8,}$/);
  assert.equal(calls[0].function.name, "Read");
  assert.deepEqual(JSON.parse(calls[0].function.arguments), { file_path: "/etc/hosts" });
  const withFinish = cs.filter((c) => c.choices[0]?.finish_reason);
  assert.equal(withFinish.length, 1);
  assert.equal(withFinish[0].choices[0].finish_reason, "tool_calls");
  const msg = final.choices[0].message;
  assert.equal(final.choices[0].finish_reason, "tool_calls");
  assert.equal(msg.tool_calls[0].id, calls[0].id);
  assert.equal(msg.tool_calls[0].function.name, "Read");
  assert.deepEqual(JSON.parse(msg.tool_calls[0].function.arguments), { file_path: "/etc/hosts" });
  assert.ok(final.usage?.completion_tokens >= 1, "usage from the include_usage chunk");
});

test("follow-up after a bare call: the sampled call text is reused, cache covers it", async () => {
  // The call is the whole turn, so the template renders the assistant turn as exactly
  // the sampled text, provided the server recognises the call the client sends back
  // (by its id) despite the arguments being re-serialised with other key order.
  const messages = [{ role: "system", content: system + "bare-call" }, { role: "user", content: "Show the report" }];
  const first = await client.chat.completions.create({ model: "m", max_tokens: 200, tools: [readTool], messages });
  const call = first.choices[0].message.tool_calls[0];
  assert.equal(first.choices[0].message.content, null);
  const args = JSON.parse(call.function.arguments);
  assert.deepEqual(args, { file_path: "/srv/data/report-2025.txt", limit: 400 });
  const followUp = await client.chat.completions.create({ model: "m", max_tokens: 200, tools: [readTool], messages: [
    ...messages,
    { role: "assistant", content: null, tool_calls: [{ id: call.id, type: "function",
      function: { name: "Read", arguments: JSON.stringify({ limit: args.limit, file_path: args.file_path }) } }] },
    { role: "tool", tool_call_id: call.id, content: "report contents" },
  ] });
  assert.equal(followUp.choices[0].message.content, "Done.");
  // KV blocks hold 64 tokens; the last sampled token (end of turn) was never fed back.
  const computedBefore = first.usage.prompt_tokens + first.usage.completion_tokens - 1;
  const cached = followUp.usage.prompt_tokens_details.cached_tokens;
  assert.ok(cached >= Math.floor(computedBefore / 64) * 64,
    `cached ${cached}: all whole blocks of the first prompt and its ${first.usage.completion_tokens} sampled tokens (${computedBefore})`);
});

test("non-streaming completion: shape, any model name, usage", async () => {
  const res = await client.chat.completions.create({
    model: "gpt-4.1-mini", max_completion_tokens: 12,
    messages: [{ role: "developer", content: system }, { role: "user", content: "Say hello." }],
  });
  assert.equal(res.object, "chat.completion");
  assert.match(res.id, /^chatcmpl-/);
  assert.equal(res.model, "gpt-4.1-mini");
  assert.ok(Number.isInteger(res.created) && Math.abs(res.created - Date.now() / 1000) < 600);
  assert.equal(res.choices.length, 1);
  const c = res.choices[0];
  assert.equal(c.index, 0);
  assert.equal(c.logprobs, null);
  assert.equal(c.message.role, "assistant");
  assert.ok(["length", "stop"].includes(c.finish_reason));
  const u = res.usage;
  assert.ok(u.completion_tokens >= 1 && u.completion_tokens <= 12);
  assert.ok(u.prompt_tokens > 280);
  assert.equal(u.total_tokens, u.prompt_tokens + u.completion_tokens);
  assert.ok(Number.isInteger(u.prompt_tokens_details.cached_tokens));
});

test("max_tokens reached: finish_reason length with exactly that many tokens", async () => {
  const res = await client.chat.completions.create({
    model: "m", max_tokens: 5, temperature: 1, messages: [{ role: "user", content: "Write forever" }],
  });
  // a random tiny model almost never samples end-of-turn within 5 tokens
  if (res.choices[0].finish_reason === "stop") return;
  assert.equal(res.choices[0].finish_reason, "length");
  assert.equal(res.usage.completion_tokens, 5);
});

test("same long prompt twice: the second has cached_tokens", async () => {
  const req = { model: "m", max_tokens: 4, messages: [{ role: "system", content: system + "unique-oai-1" },
    { role: "user", content: "Hi" }] };
  const a = await client.chat.completions.create(req);
  const b = await client.chat.completions.create(req);
  assert.equal(a.usage.prompt_tokens, b.usage.prompt_tokens);
  assert.ok(b.usage.prompt_tokens_details.cached_tokens > 0, "second request reads from cache");
  assert.ok(b.usage.prompt_tokens_details.cached_tokens >= a.usage.prompt_tokens_details.cached_tokens);
  assert.ok(b.usage.prompt_tokens - b.usage.prompt_tokens_details.cached_tokens < 64,
    `only the tail is computed (${b.usage.prompt_tokens_details.cached_tokens} of ${b.usage.prompt_tokens} cached)`);
});

test("streaming: role chunk, content deltas, finish chunk, [DONE]", async () => {
  const cs = await chunks(await client.chat.completions.create({
    model: "m", max_tokens: 10, stream: true, messages: [{ role: "system", content: system },
      { role: "user", content: "Count." }],
  }));
  assert.ok(cs.length >= 3);
  const id = cs[0].id;
  for (const c of cs) {
    assert.equal(c.object, "chat.completion.chunk");
    assert.equal(c.id, id, "one id for the whole stream");
    assert.equal(c.model, "m");
    assert.equal(c.choices.length, 1);
    assert.equal(c.choices[0].index, 0);
    assert.equal(c.usage ?? null, null, "no usage without include_usage");
  }
  assert.equal(cs[0].choices[0].delta.role, "assistant");
  assert.equal(cs[0].choices[0].finish_reason, null);
  const last = cs.at(-1).choices[0];
  assert.ok(["length", "stop"].includes(last.finish_reason));
  assert.deepEqual(last.delta, {});
  for (const c of cs.slice(1, -1)) {
    assert.equal(c.choices[0].finish_reason, null);
    assert.equal(c.choices[0].delta.role, undefined, "role only in the first chunk");
    assert.equal(typeof c.choices[0].delta.content, "string");
    assert.ok(c.choices[0].delta.content.length > 0, "no empty content deltas");
  }

  // the wire itself: data lines only, [DONE] last
  const res = await fetch(`${srv.url}/v1/chat/completions`, {
    method: "POST", headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "m", max_tokens: 3, stream: true, messages: [{ role: "user", content: "Hi" }] }),
  });
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type"), /text\/event-stream/);
  const ev = await readSSE(res);
  assert.ok(ev.every((e) => e.event === null || e.event === "comment"), "no named SSE events");
  assert.equal(ev.at(-1).data, "[DONE]");
  assert.equal(ev.filter((e) => e.data === "[DONE]").length, 1);
});

test("stream_options.include_usage: a last chunk with empty choices and usage", async () => {
  const req = { model: "m", max_tokens: 6, messages: [{ role: "system", content: system + "unique-oai-2" },
    { role: "user", content: "Hi" }] };
  const cs = await chunks(await client.chat.completions.create({ ...req, stream: true,
    stream_options: { include_usage: true } }));
  const last = cs.at(-1);
  assert.deepEqual(last.choices, []);
  assert.equal(last.object, "chat.completion.chunk");
  assert.equal(last.id, cs[0].id);
  const u = last.usage;
  assert.ok(u.completion_tokens >= 1 && u.completion_tokens <= 6);
  assert.ok(u.prompt_tokens > 280);
  assert.equal(u.total_tokens, u.prompt_tokens + u.completion_tokens);
  for (const c of cs.slice(0, -1)) {
    assert.equal(c.choices.length, 1);
    assert.equal(c.usage ?? null, null, "usage only in the last chunk");
  }
  assert.ok(cs.at(-2).choices[0].finish_reason, "finish chunk before the usage chunk");

  // the same prompt again, streamed: its prefix comes from the cache
  const again = await chunks(await client.chat.completions.create({ ...req, stream: true,
    stream_options: { include_usage: true } }));
  assert.ok(again.at(-1).usage.prompt_tokens_details.cached_tokens > 0);
});

test("greedy decoding: streamed text equals the non-streamed text", async () => {
  const req = { model: "m", max_tokens: 16, temperature: 0, messages: [{ role: "user", content: "Tell me a story" }] };
  const whole = await client.chat.completions.create(req);
  const cs = await chunks(await client.chat.completions.create({ ...req, stream: true }));
  assert.equal(joined(cs, "content"), whole.choices[0].message.content ?? "");
  assert.equal(cs.at(-1).choices[0].finish_reason, whole.choices[0].finish_reason);
});

test("stop strings end the completion with finish_reason stop", async () => {
  const req = { model: "m", max_tokens: 24, temperature: 0, messages: [{ role: "user", content: "Tell me a story" }] };
  const free = await client.chat.completions.create(req);
  const text = free.choices[0].message.content ?? "";
  const stop = [...text.slice(3)].slice(0, 2).join("") || null;
  if (!stop || !stop.trim()) return; // a whitespace-only continuation: nothing to stop on
  const stopped = await client.chat.completions.create({ ...req, stop: [stop] });
  assert.equal(stopped.choices[0].finish_reason, "stop");
  const cut = stopped.choices[0].message.content ?? "";
  assert.ok(!cut.includes(stop) && text.startsWith(cut), `${JSON.stringify(cut)} is the text before ${JSON.stringify(stop)}`);
});

test("GET /v1/models lists the loaded model; any id is served", async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m);
  assert.equal(ids.length, 1);
  assert.equal(ids[0].id, "model");
  assert.equal(ids[0].object, "model");
  assert.equal(typeof ids[0].owned_by, "string");
  assert.ok(Number.isInteger(ids[0].created));
  const one = await client.models.retrieve("gpt-4o");
  assert.equal(one.id, "gpt-4o");
});

async function raw(pathname, body, headers = {}, url = srv.url) {
  const res = await fetch(`${url}${pathname}`, {
    method: "POST", headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json(), headers: res.headers };
}

function assertOpenAIError(r, status, type) {
  assert.equal(r.status, status);
  assert.deepEqual(Object.keys(r.body), ["error"], "OpenAI's envelope: {error: {...}}");
  assert.equal(r.body.error.type, type);
  assert.equal(typeof r.body.error.message, "string");
  assert.ok(r.body.error.message.length > 0);
  assert.ok("param" in r.body.error && "code" in r.body.error);
}

test("errors use OpenAI's envelope and status codes", async () => {
  let r = await raw("/v1/chat/completions", "{not json");
  assertOpenAIError(r, 400, "invalid_request_error");
  assert.match(r.body.error.message, /JSON/);

  r = await raw("/v1/chat/completions", { model: "m" });
  assertOpenAIError(r, 400, "invalid_request_error");
  assert.match(r.body.error.message, /messages/);

  r = await raw("/v1/chat/completions", { model: "m", messages: [] });
  assertOpenAIError(r, 400, "invalid_request_error");
  assert.match(r.body.error.message, /messages/);

  r = await raw("/v1/chat/completions", { model: "m", messages: [{ role: "robot", content: "x" }] });
  assertOpenAIError(r, 400, "invalid_request_error");
  assert.match(r.body.error.message, /messages\[0\]\.role/);

  // a message quoting client text is cut inside a UTF-8 character: still an envelope
  for (const pad of ["", "a", "aa"]) {
    r = await raw("/v1/chat/completions", { model: "m", messages: [{ role: pad + "é".repeat(300), content: "x" }] });
    assertOpenAIError(r, 400, "invalid_request_error");
    assert.match(r.body.error.message, /^messages\[0\]\.role: 'a*éé/);
  }
  r = await raw("/v1/%ff%fe", {});
  assertOpenAIError(r, 404, "not_found_error");

  r = await raw("/v1/chat/completions", { model: "m", messages: [{ role: "assistant", content: null,
    tool_calls: [{ id: "call_1", type: "function", function: { name: "Read", arguments: "{oops" } }] }] });
  assertOpenAIError(r, 400, "invalid_request_error");
  assert.match(r.body.error.message, /messages\[0\]\.tool_calls\[0\]\.function\.arguments/);

  r = await raw("/v1/chat/completions", { model: "m", messages: [{ role: "user", content: [
    { type: "image_url", image_url: { url: "data:image/png;base64,AA==" } }] }] });
  assertOpenAIError(r, 400, "invalid_request_error");
  assert.match(r.body.error.message, /image/);

  r = await raw("/v1/chat/completions", { model: "m", max_tokens: 0, messages: [{ role: "user", content: "x" }] });
  assertOpenAIError(r, 400, "invalid_request_error");
  assert.match(r.body.error.message, /max_tokens/);

  r = await raw("/v1/chat/completions", { model: "m", messages: [{ role: "user", content: "x".repeat(300000) }] });
  assert.equal(r.status, 413);
  assert.ok(r.body.error.message.length > 0);

  r = await raw("/v1/chat/completions", { model: "m", messages: [{ role: "user", content: "x" }] },
    { authorization: "Bearer wrong" });
  assertOpenAIError(r, 401, "authentication_error");


  await assert.rejects(new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: "bad", maxRetries: 0 }).chat.completions.create({
    model: "m", messages: [{ role: "user", content: "x" }],
  }), (e) => e instanceof OpenAI.AuthenticationError && e.status === 401);
  await assert.rejects(client.chat.completions.create({ model: "m", messages: "nope" }),
    (e) => e instanceof OpenAI.BadRequestError && /messages/.test(e.message));
});

test("full queue: 503 with retry-after at once, while the accepted request runs", async () => {
  const busy = await startServer(coder, ["--api-key", KEY, "--kv-dir", path.join(dir, "kv-busy"),
    "--parallel", "1", "--max-queue", "1"]);
  const ctl = new AbortController();
  const long = (content) => fetch(`${busy.url}/v1/chat/completions`, {
    method: "POST", signal: ctl.signal,
    headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "m", max_tokens: 20000, temperature: 1, stream: true,
      messages: [{ role: "user", content }] }),
  });
  try {
    // one request running (its first content chunk has arrived) ...
    const first = await long("Write forever");
    assert.equal(first.status, 200);
    const reader = first.body.getReader();
    let got = "";
    while (!got.includes('"content":"') || !/"content":"[^"]/.test(got))
      got += new TextDecoder().decode((await reader.read()).value);

    // ... then four more at once: one can wait in the queue, the others are refused
    const t0 = Date.now();
    const rest = await Promise.all([1, 2, 3, 4].map(async (i) => {
      const res = await long(`Write forever ${i}`);
      return { res, ms: Date.now() - t0 };
    }));
    const refused = rest.filter((x) => x.res.status === 503);
    const accepted = rest.filter((x) => x.res.status === 200);
    assert.equal(refused.length, 3, `statuses ${rest.map((x) => x.res.status)}`);
    assert.equal(accepted.length, 1);
    for (const x of refused) {
      assert.ok(x.ms < 3000, `refused after ${x.ms} ms`);
      assert.ok(Number(x.res.headers.get("retry-after")) > 0, "retry-after");
      const body = await x.res.json();
      assert.equal(body.error.type, "server_error");
      assert.match(body.error.message, /overloaded/);
    }

    // the SDK sees an InternalServerError carrying the header
    const sdk = new OpenAI({ baseURL: `${busy.url}/v1`, apiKey: KEY, maxRetries: 0 });
    await assert.rejects(sdk.chat.completions.create({ model: "m", max_tokens: 5,
      messages: [{ role: "user", content: "x" }] }),
    (e) => e instanceof OpenAI.InternalServerError && e.status === 503 && Number(e.headers.get("retry-after")) > 0);
  } finally {
    ctl.abort();
    const r = await busy.stop();
    assert.equal(r.code, 0, "graceful shutdown exits 0");
  }
});

// ---- the Qwen3 template: Hermes JSON tool calls and <think> reasoning ----------------------

test("Qwen3 reasoning: <think> goes to reasoning_content, the rest to content", async () => {
  const res = await hermesClient.chat.completions.create({
    model: "qwen3", max_tokens: 50, messages: [{ role: "user", content: "Think, then answer." }],
  });
  const msg = res.choices[0].message;
  assert.equal(msg.reasoning_content, "reasoning");
  assert.equal(msg.content, "answer");
  assert.equal(res.choices[0].finish_reason, "stop");

  const cs = await chunks(await hermesClient.chat.completions.create({
    model: "qwen3", max_tokens: 50, stream: true, messages: [{ role: "user", content: "Think, then answer." }],
  }));
  assert.equal(joined(cs, "reasoning_content"), "reasoning");
  assert.equal(joined(cs, "content"), "answer");
  const firstAnswer = cs.findIndex((c) => c.choices[0]?.delta?.content);
  const lastReasoning = cs.findLastIndex((c) => c.choices[0]?.delta?.reasoning_content);
  assert.ok(lastReasoning < firstAnswer, "reasoning before the answer");
  assert.equal(cs.at(-1).choices[0].finish_reason, "stop");
});

test("Qwen3 Hermes tool call parses into tool_calls", async () => {
  const req = { model: "qwen3", max_tokens: 100, tools: [weatherTool],
    messages: [{ role: "user", content: "Weather in Paris?" }] };
  const res = await hermesClient.chat.completions.create(req);
  const c = res.choices[0];
  assert.equal(c.finish_reason, "tool_calls");
  assert.equal(c.message.content, null);
  assert.equal(c.message.tool_calls.length, 1);
  const call = c.message.tool_calls[0];
  assert.equal(call.type, "function");
  assert.equal(call.function.name, "get_weather");
  assert.deepEqual(JSON.parse(call.function.arguments), { city: "Paris" });

  // reasoning, then a call, streamed
  const cs = await chunks(await hermesClient.chat.completions.create({ ...req, stream: true }));
  assert.equal(joined(cs, "reasoning_content"), "I should look it up.");
  assert.equal(joined(cs, "content"), "");
  const calls = cs.flatMap((x) => x.choices[0]?.delta?.tool_calls ?? []);
  assert.equal(calls.length, 1);
  assert.equal(calls[0].function.name, "get_weather");
  assert.deepEqual(JSON.parse(calls[0].function.arguments), { city: "Paris" });
  assert.equal(cs.at(-1).choices[0].finish_reason, "tool_calls");

  // the follow-up with the result is served from the cache
  const followUp = await hermesClient.chat.completions.create({ ...req, max_tokens: 4, messages: [
    ...req.messages,
    { role: "assistant", content: null, tool_calls: [{ id: calls[0].id, type: "function",
      function: { name: "get_weather", arguments: calls[0].function.arguments } }] },
    { role: "tool", tool_call_id: calls[0].id, content: "sunny, 21 C" },
  ] });
  const u = followUp.usage;
  assert.ok(u.prompt_tokens_details.cached_tokens > 0, `cached ${u.prompt_tokens_details.cached_tokens} of ${u.prompt_tokens}`);
});
