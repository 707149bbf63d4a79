// memory.test.mjs — the server's peak resident memory (VmHWM) stays within the model
// file's size plus its KV budget (--kv-ram) plus 10%, on models of the real Qwen3-0.6B
// shape (dense, Q8_0) and Qwen3-Coder-30B-A3B shape cut to 4 layers (MoE, Q8_0), each
// with the real vocabulary, driven through the Anthropic SDK until the KV pool has been
// filled (and blocks evicted from it to the disk tier), then with four sequences
// decoding together. The peak covers loading (the weights read into memory and repacked
// in place), prefill chunks, MoE expert grouping, attention over the pool, and the
// tokenizer, HTTP and engine state.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import Anthropic from "@anthropic-ai/sdk";
import { makeModel, startServer, tempDir, templates } from "./harness.mjs";

const MiB = (b) => `${(b / (1 << 20)).toFixed(1)} MiB`;
const dirs = [];

after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

/** Deterministic words, different for every seed: prompts that share no prefix. */
function text(words, seed) {
  const vocab = ("function return const value error file path read write test build cache server client " +
    "request stream token prompt model block queue batch thread memory index update delete").split(" ");
  let s = seed * 2654435761 >>> 0;
  const out = [];
  for (let i = 0; i < words; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    out.push(vocab[s % vocab.length]);
  }
  return out.join(" ");
}

function status(pid) {
  const st = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (k) => Number(st.match(new RegExp(`${k}:\\s+(\\d+) kB`))[1]) * 1024;
  return { hwm: kb("VmHWM"), rss: kb("VmRSS") };
}

async function metrics(url) {
  const out = {};
  for (const line of (await (await fetch(`${url}/metrics`)).text()).split("\n"))
    if (line && !line.startsWith("#")) {
      const [k, v] = line.split(" ");
      out[k] = Number(v);
    }
  return out;
}

async function withinBudget({ preset, template, type, kvRamMiB, ctx, promptWords }) {
  const dir = tempDir("kvserve-memory-");
  dirs.push(dir);
  const model = makeModel(dir, { preset, template, extra: ["--type", type] });
  const fileBytes = fs.statSync(model).size;
  const kvBytes = kvRamMiB * (1 << 20);
  const srv = await startServer(model, ["-c", String(ctx), "--parallel", "4", "--kv-ram", `${kvRamMiB}M`,
    "--kv-dir", path.join(dir, "kv"), "--kv-disk", "1G"]);
  try {
    const client = new Anthropic({ baseURL: srv.url, apiKey: "k", maxRetries: 0 });
    const ask = (seed, words, maxTokens) => client.messages.create({
      model: "m", max_tokens: maxTokens, messages: [{ role: "user", content: text(words, seed) }],
    });
    // distinct long prompts until every block has been used (and the oldest evicted)
    let m = await metrics(srv.url), seed = 1;
    const pool = m.kvserve_kv_blocks;
    let used = 0;
    while (used < pool * 1.5) {
      const r = await ask(seed++, promptWords, 4);
      assert.ok(r.usage.output_tokens >= 1);
      used += Math.ceil((r.usage.cache_creation_input_tokens + r.usage.output_tokens) / 32);
    }
    // four sequences decoding together
    const rs = await Promise.all([0, 1, 2, 3].map((k) => ask(100 + k, promptWords / 4, 48)));
    for (const r of rs) assert.ok(r.usage.output_tokens >= 1);
    m = await metrics(srv.url);
    const { hwm, rss } = status(srv.proc.pid);
    const budget = 1.1 * (fileBytes + kvBytes);
    console.log(`# ${preset} ${type}: peak RSS ${MiB(hwm)} (now ${MiB(rss)}) of ${MiB(budget)} ` +
      `= 1.1 x (file ${MiB(fileBytes)} + KV ${MiB(kvBytes)}); ${pool} blocks, ${m.kvserve_kv_blocks_free} free`);
    assert.ok(hwm <= budget, `peak RSS ${MiB(hwm)} > ${MiB(budget)}`);
  } finally {
    const r = await srv.stop();
    assert.equal(r.code, 0, "graceful shutdown exits 0");
  }
}

test("Qwen3-0.6B shape, Q8_0: peak memory within file + KV budget + 10%", { timeout: 10 * 60 * 1000 }, () =>
  withinBudget({ preset: "qwen3-0.6b", template: templates.qwen3, type: "q8_0", kvRamMiB: 512, ctx: 4096,
    promptWords: 1500 }));

test("Qwen3-Coder-30B-A3B shape (4 layers), Q8_0: peak memory within file + KV budget + 10%",
  { timeout: 10 * 60 * 1000 }, () =>
    withinBudget({ preset: "qwen3-coder-30b-a3b-4l", template: templates.coder, type: "q8_0", kvRamMiB: 32,
      ctx: 2048, promptWords: 1200 }));

test("a KV budget below the context: the context is lowered to it, a longer prompt is refused at once, " +
  "a sequence that fills it stops at max_tokens", { timeout: 2 * 60 * 1000 }, async () => {
  const dir = tempDir("kvserve-memory-");
  dirs.push(dir);
  // the tiny shape: 2 layers x 2 KV heads of 64, 64 KiB a block of 64 tokens; 1 MiB holds 1024 tokens
  const model = makeModel(dir, { preset: "tiny", extra: ["--type", "q8_0"] });
  const srv = await startServer(model, ["--kv-ram", "1M", "--kv-dir", path.join(dir, "kv")]);
  try {
    assert.match(srv.log(), /context 32768 tokens > the 1024 the KV cache in RAM holds: context lowered to 1024/);
    const client = new Anthropic({ baseURL: srv.url, apiKey: "k", maxRetries: 0 });
    const t0 = Date.now();
    await assert.rejects(client.messages.create({ model: "m", max_tokens: 8,
      messages: [{ role: "user", content: text(1500, 1) }] }), (e) => {
      assert.equal(e.status, 400);
      assert.equal(e.error?.error?.type, "invalid_request_error");
      assert.match(e.error?.error?.message, /prompt is too long: \d+ tokens > 1023 maximum/);
      return true;
    });
    assert.ok(Date.now() - t0 < 5000, "refused before any prompt token is computed");
    const r = await client.messages.create({ model: "m", max_tokens: 2000,
      messages: [{ role: "user", content: text(700, 2) }] });
    assert.equal(r.stop_reason, "max_tokens");
    assert.equal(r.usage.input_tokens + r.usage.cache_creation_input_tokens + r.usage.cache_read_input_tokens +
      r.usage.output_tokens, 1024, "the sequence filled the pool's 1024 tokens");
  } finally {
    const r = await srv.stop();
    assert.equal(r.code, 0, "graceful shutdown exits 0");
  }
});
