// llamacpp_load.test.mjs — models written by `kvserve mkmodel` load unchanged in llama.cpp
// (node-llama-cpp's prebuilt build): tiny qwen3 and qwen3moe models in every type mix,
// with the built tokenizer and with the real Qwen3 vocabulary copied in. For each,
// llama.cpp tokenizes text (round trip, special tokens), evaluates a prompt and generates
// tokens from finite, non-degenerate distributions, and kvserve, on the same file, makes
// the same greedy choices (with F16 and with Q8_0 K/V caches).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { getLlama } from "node-llama-cpp";
import { kvserveBin, fixturesDir } from "./paths.mjs";

const TYPES = ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_k_m", "q5_k_m", "q3_k_m", "q2_k", "iq4_xs", "iq4_nl"];
const TEXT = "Hello world, the server reads the tokens and returns the answer.\n" +
  "int main(void) { return 0; }";
const GENERATED = 4;    // tokens generated per model
const PROMPT_TOKENS = 8; // tokens of TEXT evaluated before generating

let dir;
let llama;

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "kvserve-mkmodel-"));
  llama = await getLlama({ gpu: false, build: "never", logLevel: "error" });
});

after(async () => {
  await llama?.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
});

function mkmodel(name, args) {
  const file = path.join(dir, name);
  execFileSync(kvserveBin, ["mkmodel", "-q", "-o", file, ...args], { stdio: ["ignore", "ignore", "inherit"] });
  return file;
}

// Loads file in llama.cpp, runs fn(model, sequence), frees everything; contextOptions
// are added to the context's.
async function withModel(file, fn, contextOptions = {}) {
  const model = await llama.loadModel({ modelPath: file });
  try {
    const context = await model.createContext({ contextSize: 256, threads: 2, ...contextOptions });
    try {
      await fn(model, context.getSequence());
    } finally {
      await context.dispose();
    }
  } finally {
    await model.dispose();
  }
}

// Evaluates the first n tokens of prompt, then generates greedily; checks every
// next-token distribution. Returns the generated tokens.
async function generate(sequence, prompt, n = PROMPT_TOKENS) {
  const out = [];
  const input = prompt.slice(0, n);
  for await (const r of sequence.evaluateWithMetadata(input, { probabilities: true }, { temperature: 0 })) {
    let sum = 0, max = 0, finite = true;
    for (const p of r.probabilities.values()) {
      finite &&= Number.isFinite(p);
      sum += p;
      max = Math.max(max, p);
    }
    assert.ok(finite, "non-finite probability: NaN or inf in the logits");
    assert.ok(Math.abs(sum - 1) < 1e-3, `probabilities sum to ${sum}`);
    assert.ok(max < 0.99, `degenerate distribution: top token has p = ${max}`);
    out.push(r.token);
    if (out.length === GENERATED) break;
  }
  return out;
}

// kvserve on the same file makes llama.cpp's greedy choices: fed the prompt and the tokens
// llama.cpp generated, after each prefix the token llama.cpp chose there is kvserve's top
// token, or within MARGIN of it. Their dot products agree bit for bit, but llama.cpp's
// attention accumulates values in F16 and its batched products round otherwise; on these
// tiny random models that turned near-ties of 0.02-0.03 (logits ~5-6) in the q5_k_m and
// iq4_nl files. A wrong decoding of a type moves logits by whole units.
const MARGIN = 0.1;
function assertSameGreedy(file, prompt, generated, n = PROMPT_TOKENS, kvType = "f32", margin = MARGIN) {
  const input = [...prompt.slice(0, n), ...generated.slice(0, -1)];
  const res = execFileSync(kvserveBin, ["logits", "-m", file, "--tokens", input.join(","), "--top", "20", "--json",
    "--kv-type", kvType], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
  const top = JSON.parse(res).top;
  for (let g = 0; g < generated.length; g++) {
    const row = top[n - 1 + g];
    const chosen = row.find(([id]) => id === generated[g]);
    assert.ok(chosen && row[0][1] - chosen[1] <= margin,
      `position ${n + g}: llama.cpp chose ${generated[g]}, kvserve's logit for it ` +
      `${chosen ? chosen[1] : "(not in its top 20)"}, its top ${row[0][0]} at ${row[0][1]}`);
  }
}

for (const arch of ["qwen3", "qwen3moe"]) {
  for (const type of TYPES) {
    test(`llama.cpp loads and runs ${arch} ${type} (built tokenizer)`, async () => {
      const file = mkmodel(`${arch}-${type}.gguf`, ["--arch", arch, "--type", type, "--seed", "3"]);
      await withModel(file, async (model, sequence) => {
        // The built byte-level BPE: exact round trip, common words merged.
        const tokens = model.tokenize(TEXT);
        assert.equal(model.detokenize(tokens), TEXT);
        assert.ok(tokens.length < TEXT.length / 2, `${TEXT.length} bytes took ${tokens.length} tokens`);
        // ChatML specials are single tokens when specials are parsed, text otherwise.
        assert.equal(model.tokenize("<|im_start|>", true).length, 1);
        assert.ok(model.tokenize("<|im_start|>", false).length > 1);
        assert.equal(model.tokens.eosString, "<|im_end|>");
        const out = await generate(sequence, tokens);
        assert.equal(out.length, GENERATED);
        assertSameGreedy(file, tokens, out);
      });
    });
  }
}

// With a Q8_0 K/V cache on both sides (llama.cpp's needs its flash attention), over a
// prompt long enough for attention to weigh many positions: the same greedy choices,
// within MARGIN_Q8_KV. Both score the cached keys in Q8_0 dot products, but they round the
// queries at different points and sum in other orders; on these tiny random models that
// moved near-ties by up to 0.34 over 64-70 positions (two seeds per architecture). A wrong
// scale or code moves logits by whole units.
const MARGIN_Q8_KV = 0.5;
for (const [arch, seed] of [["qwen3", "5"], ["qwen3moe", "7"]]) {
  test(`llama.cpp and kvserve with a Q8_0 K/V cache make the same choices (${arch})`, async () => {
    const file = mkmodel(`${arch}-q8_0-kv.gguf`, ["--arch", arch, "--type", "q8_0", "--seed", seed]);
    await withModel(file, async (model, sequence) => {
      const tokens = model.tokenize(TEXT.repeat(4));
      const n = Math.min(tokens.length, 64);
      assert.ok(n >= 48, `${tokens.length} prompt tokens`);
      const out = await generate(sequence, tokens, n);
      assert.equal(out.length, GENERATED);
      assertSameGreedy(file, tokens, out, n, "q8_0", MARGIN_Q8_KV);
    }, { flashAttention: true, experimentalKvCacheKeyType: "Q8_0", experimentalKvCacheValueType: "Q8_0" });
  });
}

test("llama.cpp loads a model with the real Qwen3 vocabulary copied in", async () => {
  const vocab = path.join(fixturesDir, "tokenizer/vocab-qwen3.gguf");
  const file = mkmodel("qwen3-vocab.gguf", ["--type", "q8_0", "--vocab-from", vocab,
    "--template-file", path.join(fixturesDir, "templates/Qwen-Qwen3-0.6B.jinja")]);
  const reference = JSON.parse(fs.readFileSync(path.join(fixturesDir, "tokenizer/llamacpp-qwen3.json"), "utf8"));
  await withModel(file, async (model, sequence) => {
    // Same ids as llama.cpp gives with the vocabulary file itself.
    let checked = 0;
    for (const [text, ids] of Object.entries(reference.map)) {
      if (!text) continue;
      assert.deepEqual(Array.from(model.tokenize(text, true)), ids, JSON.stringify(text));
      checked++;
    }
    assert.ok(checked > 20);
    assert.equal(model.tokens.eos, 151645);
    const out = await generate(sequence, model.tokenize(TEXT));
    assert.equal(out.length, GENERATED);
  });
});

test("llama.cpp loads a tied-output model with a padded built vocabulary", async () => {
  // Qwen3-0.6B's head and vocabulary size at a tiny width.
  const file = mkmodel("tied.gguf", ["--preset", "qwen3-0.6b", "--type", "q4_k_m", "--n-layer", "2",
    "--n-embd", "256", "--n-head", "4", "--n-head-kv", "2", "--head-dim", "64", "--n-ff", "512"]);
  await withModel(file, async (model, sequence) => {
    assert.equal(model.fileInfo.metadata.tokenizer.ggml.tokens.length, 151936);
    const out = await generate(sequence, model.tokenize(TEXT));
    assert.equal(out.length, GENERATED);
  });
});
