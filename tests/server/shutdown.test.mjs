// shutdown.test.mjs — how the server ends requests it does not finish, driven by the
// official SDKs against the real binary:
//   - SIGTERM: new connections are refused at once, a stream in flight completes within
//     the grace period, exit status 0;
//   - a grace period too short: the stream in flight ends with an `error` event
//     ("the server is shutting down"), exit status 0;
//   - a second signal exits at once (status 1) and leaves a disk tier the next start
//     reads without complaint;
//   - after a restart the disk tier serves the prompt the last run cached;
//   - --request-timeout: a request past its deadline ends with timeout_error (Anthropic:
//     stream error event or HTTP 504; OpenAI: the same type), others are unaffected.
// Outputs are teacher-forced (--test-forced-outputs) so each request's length, and so
// its duration, is known.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import { makeModel, startServer, tempDir } from "./harness.mjs";

let dir, model;

before(() => {
  dir = tempDir("kvserve-shutdown-");
  model = makeModel(dir);
});

after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A forced output of about n tokens (" word" is one token in the Qwen3 vocabulary). */
const words = (n) => "word" + " word".repeat(n - 1);

/** Starts a server whose requests take the given forced outputs in turn. */
async function serve(name, forced, args = []) {
  const file = path.join(dir, `${name}.jsonl`);
  fs.writeFileSync(file, forced.map((t) => JSON.stringify(t)).join("\n") + "\n");
  const srv = await startServer(model, ["--test-forced-outputs", file, "--kv-dir", path.join(dir, "kv"), ...args]);
  const exited = new Promise((resolve) => {
    if (srv.proc.exitCode !== null) resolve({ code: srv.proc.exitCode, signal: srv.proc.signalCode });
    else srv.proc.on("exit", (code, signal) => resolve({ code, signal }));
  });
  return { ...srv, exited, anthropic: new Anthropic({ baseURL: srv.url, apiKey: "k", maxRetries: 0 }),
    openai: new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: "k", maxRetries: 0 }) };
}

/** "connected" or the connection error's code (ECONNREFUSED, ...). */
function tryConnect(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1");
    s.setTimeout(2000, () => { s.destroy(); resolve("timeout"); });
    s.on("connect", () => { s.destroy(); resolve("connected"); });
    s.on("error", (e) => resolve(e.code));
  });
}

async function metrics(url) {
  const text = await (await fetch(`${url}/metrics`)).text();
  const out = {};
  for (const line of text.split("\n")) {
    const m = line.match(/^([a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$/);
    if (m) out[m[1] + (m[2] ?? "")] = Number(m[3]);
  }
  return out;
}

/** Starts an Anthropic stream and resolves once its first text has arrived. */
async function streamStarted(client, extra = {}) {
  const stream = client.messages.stream({ model: "m", max_tokens: 8000,
    messages: [{ role: "user", content: "Tell me a long story" }], ...extra });
  let text = "";
  const first = new Promise((resolve, reject) => {
    stream.on("text", (t) => { text += t; resolve(); });
    stream.on("error", reject);
  });
  stream.finalMessage().catch(() => {}); // the outcome is checked by the caller
  await first;
  return { stream, text: () => text };
}

const system = "You are a careful coding assistant who reads files before editing them. ".repeat(40);

test("SIGTERM: new connections are refused, the stream in flight completes, exit 0", async () => {
  const srv = await serve("graceful", [words(120)], ["--shutdown-grace", "120"]);
  const { stream } = await streamStarted(srv.anthropic);
  const t0 = Date.now();
  srv.proc.kill("SIGTERM");
  // Until the server has taken the signal, connections are accepted; one that is in the
  // listener's queue when the server stops listening is reset (ECONNRESET): neither is
  // served, and the next attempt must find no listener at all.
  let refused = "connected";
  while ((refused === "connected" || refused === "ECONNRESET") && Date.now() - t0 < 5000) {
    refused = await tryConnect(srv.port);
    if (refused !== "ECONNREFUSED") await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(refused, "ECONNREFUSED", "a new connection during the grace period");
  const msg = await stream.finalMessage();
  assert.equal(msg.stop_reason, "end_turn");
  assert.equal(msg.content[0].text, words(120), "the whole forced output");
  assert.equal(msg.usage.output_tokens, 120);
  const { code } = await srv.exited;
  assert.equal(code, 0, srv.log());
  assert.match(srv.log(), /stopped; KV disk tier flushed/);
});

test("a grace period too short: the stream in flight ends with an error event, exit 0", async () => {
  const srv = await serve("short-grace", [words(5000)], ["--shutdown-grace", "1"]);
  const { stream, text } = await streamStarted(srv.anthropic);
  const t0 = Date.now();
  srv.proc.kill("SIGTERM");
  await assert.rejects(stream.finalMessage(), (e) => {
    assert.ok(e instanceof Anthropic.APIError, `an API error, got ${e}`);
    assert.equal(e.type, "api_error");
    assert.match(e.apiMessage, /shutting down/);
    return true;
  });
  assert.ok(text().length > 0, "text streamed before the error");
  const { code } = await srv.exited;
  assert.equal(code, 0, srv.log());
  const took = Date.now() - t0;
  assert.ok(took >= 900 && took < 10000, `exited ${took} ms after SIGTERM with a 1 s grace`);
});

test("OpenAI stream cut by shutdown: an error chunk, not a silent stop", async () => {
  const srv = await serve("short-grace-openai", [words(5000)], ["--shutdown-grace", "0"]);
  const stream = await srv.openai.chat.completions.create({ model: "m", stream: true, max_tokens: 8000,
    messages: [{ role: "user", content: "Tell me a long story" }] });
  let text = "";
  await assert.rejects(async () => {
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? "";
      if (text.length > 0 && srv.proc.signalCode === null && !srv.proc.killed) srv.proc.kill("SIGTERM");
    }
  }, (e) => {
    assert.match(String(e.message ?? e), /shutting down/);
    return true;
  });
  assert.equal((await srv.exited).code, 0, srv.log());
});

test("a second signal exits at once; the disk tier stays readable", async () => {
  // first run: cache a long prompt, then stop gracefully so its blocks are on disk
  let srv = await serve("second-a", [words(5), words(5000)], ["--shutdown-grace", "60"]);
  await srv.anthropic.messages.create({ model: "m", max_tokens: 50, system,
    messages: [{ role: "user", content: "Hello" }] });
  // its blocks reach the disk tier in the background: wait for the files
  for (let k = 0; k < 100 && !((await metrics(srv.url)).kvserve_kv_disk_files > 0); k++)
    await new Promise((r) => setTimeout(r, 50));
  const { stream } = await streamStarted(srv.anthropic, { system });
  const t0 = Date.now();
  srv.proc.kill("SIGTERM");
  await new Promise((r) => setTimeout(r, 300));
  srv.proc.kill("SIGTERM");
  const { code } = await srv.exited;
  assert.ok(Date.now() - t0 < 5000, "exited at the second signal, not after the grace period");
  assert.equal(code, 1, srv.log());
  assert.match(srv.log(), /second signal, exiting now/);
  await assert.rejects(stream.finalMessage());

  // the next start reads the same directory: nothing corrupt, the prompt's blocks are there
  srv = await serve("second-b", [words(5)]);
  const msg = await srv.anthropic.messages.create({ model: "m", max_tokens: 50, system,
    messages: [{ role: "user", content: "Hello" }] });
  assert.ok(msg.usage.cache_read_input_tokens > 0, `read ${msg.usage.cache_read_input_tokens} tokens from the cache`);
  const m = await metrics(srv.url);
  assert.equal(m.kvserve_kv_disk_corrupt_total, 0);
  srv.proc.kill("SIGTERM");
  assert.equal((await srv.exited).code, 0);
});

test("after a graceful restart the disk tier serves the prompt the last run cached", async () => {
  const kv = ["--kv-dir", path.join(dir, "kv-restart")];
  const sys2 = "You review pull requests line by line and explain every concern. ".repeat(40);
  let srv = await serve("restart-a", [words(5)], kv);
  const first = await srv.anthropic.messages.create({ model: "m", max_tokens: 50, system: sys2,
    messages: [{ role: "user", content: "Review this" }] });
  assert.equal(first.usage.cache_read_input_tokens, 0, "a fresh directory");
  srv.proc.kill("SIGTERM");
  assert.equal((await srv.exited).code, 0);

  srv = await serve("restart-b", [words(5)], kv);
  const again = await srv.anthropic.messages.create({ model: "m", max_tokens: 50, system: sys2,
    messages: [{ role: "user", content: "Review this" }] });
  const prompt = again.usage.input_tokens + again.usage.cache_read_input_tokens + again.usage.cache_creation_input_tokens;
  assert.ok(again.usage.cache_read_input_tokens >= prompt - 64,
    `read ${again.usage.cache_read_input_tokens} of ${prompt} prompt tokens from the cache`);
  const m = await metrics(srv.url);
  assert.ok(m['kvserve_cache_read_tokens_total{tier="disk"}'] >= prompt - 64, "from the disk tier");
  srv.proc.kill("SIGTERM");
  assert.equal((await srv.exited).code, 0);
});

test("--request-timeout: requests past their deadline end with timeout_error in both APIs", async () => {
  const long = words(20000);
  const srv = await serve("timeout", [long, long, long, long], ["--request-timeout", "2"]);
  const t0 = Date.now();
  // Anthropic, streamed: an error event after some text
  const { stream, text } = await streamStarted(srv.anthropic);
  await assert.rejects(stream.finalMessage(), (e) => {
    assert.ok(e instanceof Anthropic.APIError, `an API error, got ${e}`);
    assert.equal(e.type, "timeout_error");
    assert.match(e.apiMessage, /2 s deadline/);
    return true;
  });
  assert.ok(text().length > 0);
  const took = Date.now() - t0;
  assert.ok(took >= 1900 && took < 10000, `ended ${took} ms after it was sent`);
  // Anthropic, not streamed: 504 timeout_error
  await assert.rejects(srv.anthropic.messages.create({ model: "m", max_tokens: 8000,
    messages: [{ role: "user", content: "Tell me a long story" }] }), (e) => {
    assert.equal(e.status, 504);
    assert.equal(e.type, "timeout_error");
    return true;
  });
  // OpenAI, not streamed: 504 with the same type
  await assert.rejects(srv.openai.chat.completions.create({ model: "m", max_tokens: 8000,
    messages: [{ role: "user", content: "Tell me a long story" }] }), (e) => {
    assert.equal(e.status, 504);
    assert.equal(e.error?.type ?? e.type, "timeout_error");
    return true;
  });
  // OpenAI, streamed: an error chunk
  const ostream = await srv.openai.chat.completions.create({ model: "m", stream: true, max_tokens: 8000,
    messages: [{ role: "user", content: "Tell me a long story" }] });
  await assert.rejects(async () => { for await (const chunk of ostream) void chunk; },
    (e) => { assert.match(String(e.message ?? e), /deadline/); return true; });
  // a short request (forced outputs are used up: sampled) finishes normally
  const ok = await srv.anthropic.messages.create({ model: "m", max_tokens: 5,
    messages: [{ role: "user", content: "Hi" }] });
  assert.ok(["end_turn", "max_tokens"].includes(ok.stop_reason));
  const m = await metrics(srv.url);
  assert.equal(m.kvserve_requests_timed_out_total, 4);
  assert.equal(m.kvserve_requests_running, 0);
  srv.proc.kill("SIGTERM");
  assert.equal((await srv.exited).code, 0);
});
