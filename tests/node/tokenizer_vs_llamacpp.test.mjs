// tokenizer_vs_llamacpp.test.mjs — `kvserve tokenize` gives llama.cpp's ids (node-llama-cpp,
// vocabulary only) on the real Qwen3 vocabulary, for both pre-tokenizers we implement:
// qwen2 (the file as it is) and llama-bpe (the same vocabulary with tokenizer.ggml.pre
// rewritten, which switches llama.cpp to its llama3 splitter and whole-word lookups).
// Inputs: random text of many scripts and kinds, special tokens parsed and not; and every
// Unicode code point on a vocabulary written here so that each character class splits
// differently into ids (so the classes of both sides agree everywhere).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { getLlama } from "node-llama-cpp";
import { kvserveBin, fixturesDir } from "./paths.mjs";

const qwen3 = path.join(fixturesDir, "tokenizer/vocab-qwen3.gguf");
let tmp, llamaBpe, probe, llama;
const models = new Map();

// ---- a GGUF with one string value replaced (vocabulary-only files: no tensors) --------------

function rewriteString(src, dst, key, value) {
  const b = fs.readFileSync(src);
  let o = 4 + 4; // magic, version
  const nTensors = b.readBigUInt64LE(o); o += 8;
  const nKv = Number(b.readBigUInt64LE(o)); o += 8;
  assert.equal(nTensors, 0n, "only vocabulary-only files");
  const fixed = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };
  const skip = (type) => {
    if (type === 8) { o += 8 + Number(b.readBigUInt64LE(o)); return; }
    if (type === 9) {
      const et = b.readUInt32LE(o); const n = Number(b.readBigUInt64LE(o + 4)); o += 12;
      if (et in fixed) o += n * fixed[et]; else for (let i = 0; i < n; i++) skip(et);
      return;
    }
    o += fixed[type];
  };
  const parts = [b.subarray(0, o)];
  for (let i = 0; i < nKv; i++) {
    const start = o;
    const klen = Number(b.readBigUInt64LE(o));
    const k = b.subarray(o + 8, o + 8 + klen).toString();
    o += 8 + klen;
    const type = b.readUInt32LE(o); o += 4;
    skip(type);
    if (k === key) {
      const v = Buffer.from(value);
      const rec = Buffer.alloc(8 + klen + 4 + 8 + v.length);
      rec.writeBigUInt64LE(BigInt(klen), 0);
      b.copy(rec, 8, start + 8, start + 8 + klen);
      rec.writeUInt32LE(8, 8 + klen);
      rec.writeBigUInt64LE(BigInt(v.length), 12 + klen);
      v.copy(rec, 20 + klen);
      parts.push(rec);
    } else {
      parts.push(b.subarray(start, o));
    }
  }
  let out = Buffer.concat(parts);
  out = Buffer.concat([out, Buffer.alloc((32 - (out.length % 32)) % 32)]);
  fs.writeFileSync(dst, out);
}

// ---- both sides ---------------------------------------------------------------------------

function ours(vocab, texts, special) {
  const input = texts.map((t) => JSON.stringify(t)).join("\n") + "\n";
  const args = ["tokenize", "-m", vocab, "--jsonl", "--no-add-special", ...(special ? ["--special"] : [])];
  const p = spawnSync(kvserveBin, args, { input, maxBuffer: 1 << 28, encoding: "utf8" });
  assert.equal(p.status, 0, p.stderr);
  const lines = p.stdout.split("\n");
  return texts.map((_, i) => (lines[i].length ? lines[i].split(" ").map(Number) : []));
}

async function theirs(vocab, texts, special) {
  if (!models.has(vocab))
    models.set(vocab, await llama.loadModel({ modelPath: vocab, vocabOnly: true }));
  const m = models.get(vocab);
  return texts.map((t) => Array.from(m.tokenize(t, special)));
}

async function compare(vocab, texts, special, what) {
  const a = ours(vocab, texts, special);
  const b = await theirs(vocab, texts, special);
  for (let i = 0; i < texts.length; i++) {
    if (a[i].join() === b[i].join())
      continue;
    let k = 0;
    while (k < a[i].length && a[i][k] === b[i][k]) k++;
    assert.fail(`${what} #${i}: first difference at id ${k} (ours ${a[i].slice(k, k + 5)}, ` +
      `llama.cpp ${b[i].slice(k, k + 5)}) in ${JSON.stringify(texts[i].slice(0, 120))}`);
  }
}

// ---- inputs -------------------------------------------------------------------------------

function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomTexts(seed, count) {
  const r = rng(seed);
  const pick = (a) => a[Math.floor(r() * a.length)];
  const bits = ["<|im_start|>", "<|im_end|>", "<think>", "</think>", "<tool_call>", "<|endoftext|>",
    "<|fim_prefix|>", "'s", "'T", "'re", "'VE", "'ll", "'D", "  ", "\t", "\r\n", "\n\n\n", "    ", "```",
    "{\"a\": [1, 2.5e-3]}", "x++", "->", "::", "1234567", "ß", "ﬁ", "İ", "Kelvin K", "\u00a0", "\u0085",
    "\u3000", "\u200b", "\u2028", "\ufeff", "\u0000"];
  const ranges = [[0x20, 0x7e], [0xa0, 0x24f], [0x300, 0x36f], [0x370, 0x52f], [0x590, 0x6ff], [0x900, 0x97f],
    [0xe00, 0xe7f], [0x1100, 0x11ff], [0x2000, 0x2bff], [0x3000, 0x30ff], [0x4e00, 0x9fff], [0xac00, 0xd7a3],
    [0xff00, 0xffef], [0x10000, 0x1ffff], [0x1f300, 0x1faff], [0x20000, 0x2ffff], [0xe0000, 0x10ffff]];
  const out = [];
  for (let i = 0; i < count; i++) {
    let s = "";
    const n = 1 + Math.floor(r() * 60);
    for (let k = 0; k < n; k++) {
      const w = r();
      if (w < 0.25) s += pick(bits);
      else if (w < 0.45) s += pick(["the", " cache", "Token", " naïve", "日本語", " привет", "42", " 7"]);
      else {
        const [lo, hi] = pick(ranges);
        let cp = lo + Math.floor(r() * (hi - lo + 1));
        if (cp >= 0xd800 && cp < 0xe000) cp = 0x41;
        s += String.fromCodePoint(cp);
      }
    }
    out.push(s);
  }
  return out;
}

// A vocabulary that makes pre-token boundaries visible in the ids: the 256 byte tokens,
// plus "x" and " " joined to every byte, with merges for those pairs. BPE joins "x" or a
// space with the first byte of the next character only when both are in one pre-token.
function writeProbeVocab(file, pre) {
  const byteChar = [];
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae;
    byteChar.push(String.fromCodePoint(printable ? b : 0x100 + extra++));
  }
  const tokens = [...byteChar, ...byteChar.map((c) => "x" + c), ...byteChar.map((c) => byteChar[0x20] + c)];
  const merges = [...byteChar.map((c) => "x " + c), ...byteChar.map((c) => byteChar[0x20] + " " + c)];
  const kv = [];
  const str = (s) => { const b = Buffer.from(s); const h = Buffer.alloc(8); h.writeBigUInt64LE(BigInt(b.length)); return Buffer.concat([h, b]); };
  const u32 = (v) => { const b = Buffer.alloc(4); b.writeUInt32LE(v); return b; };
  const u64 = (v) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); return b; };
  const add = (key, type, value) => kv.push(Buffer.concat([str(key), u32(type), value]));
  const strArr = (a) => Buffer.concat([u32(8), u64(a.length), ...a.map(str)]);
  add("general.architecture", 8, str("qwen3"));
  add("tokenizer.ggml.model", 8, str("gpt2"));
  add("tokenizer.ggml.pre", 8, str(pre));
  add("tokenizer.ggml.tokens", 9, strArr(tokens));
  add("tokenizer.ggml.token_type", 9, Buffer.concat([u32(5), u64(tokens.length), ...tokens.map(() => u32(1))]));
  add("tokenizer.ggml.merges", 9, strArr(merges));
  add("tokenizer.ggml.bos_token_id", 4, u32(0));
  add("tokenizer.ggml.eos_token_id", 4, u32(0));
  add("tokenizer.ggml.add_bos_token", 7, Buffer.from([0]));
  let out = Buffer.concat([Buffer.from("GGUF"), u32(3), u64(0), u64(kv.length), ...kv]);
  out = Buffer.concat([out, Buffer.alloc((32 - (out.length % 32)) % 32)]);
  fs.writeFileSync(file, out);
}

// Every code point but surrogates, in a frame where each class of it gives other ids:
// "x" c " " c "\n" splits as  letter: xc| c|\n   other: x|c| c\n   number: x|c| |c|\n
// space: x|c c\n (c standing for the code point, "|" for a pre-token boundary).
function everyCodePoint() {
  const chunks = [];
  let s = "";
  for (let cp = 0; cp < 0x110000; cp++) {
    if (cp >= 0xd800 && cp < 0xe000) continue;
    const c = String.fromCodePoint(cp);
    s += "x" + c + " " + c + "\n";
    if (s.length > 200_000) { chunks.push(s); s = ""; }
  }
  chunks.push(s);
  return chunks;
}

// ---- tests --------------------------------------------------------------------------------

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ks-tok-"));
  llamaBpe = path.join(tmp, "vocab-qwen3-llama-bpe.gguf");
  rewriteString(qwen3, llamaBpe, "tokenizer.ggml.pre", "llama-bpe");
  probe = { "qwen2": path.join(tmp, "probe-qwen2.gguf"), "llama-bpe": path.join(tmp, "probe-llama-bpe.gguf") };
  for (const [pre, file] of Object.entries(probe))
    writeProbeVocab(file, pre);
  // llama.cpp logs that a vocabulary-only file lacks hyperparameters; only that is expected
  llama = await getLlama({ gpu: false, build: "never", logLevel: "error",
    logger: (level, message) => { if (!/context_length|failed to load model/.test(message)) console.error(message); } });
});

after(async () => {
  for (const m of models.values()) await m.dispose();
  await llama?.dispose();
  fs.rmSync(tmp, { recursive: true, force: true });
});

for (const [name, vocab] of [["qwen2", () => qwen3], ["llama-bpe", () => llamaBpe]]) {
  test(`${name}: random text, special tokens parsed`, async () => {
    await compare(vocab(), randomTexts(1, 400), true, name);
  });
  test(`${name}: random text, special tokens as text`, async () => {
    await compare(vocab(), randomTexts(2, 400), false, name);
  });
  test(`${name}: every code point in a frame that shows its class`, async () => {
    await compare(probe[name], everyCodePoint(), false, `${name} probe`);
  });
}
