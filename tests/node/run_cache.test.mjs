// run_cache.test.mjs — `kvserve run --kv-dir` across processes: the first run computes a
// long prompt and leaves its blocks in the disk tier; a second process with the same
// --kv-dir takes them from disk (>= 90% of the prompt), computes only the tail and
// continues greedily exactly as the first did. A block file damaged in between is
// caught when read: the second run recomputes from that block on, says so in its
// stats, and still gives the same output.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { kvserveBin, fixturesDir } from "./paths.mjs";

const VOCAB = path.join(fixturesDir, "tokenizer/vocab-qwen3.gguf");
const B = 64; // the cache's default block size, tokens
const N_GEN = 24;

let dir, model, prompt;

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "kvserve-run-cache-"));
  model = path.join(dir, "tiny.gguf");
  execFileSync(kvserveBin, ["mkmodel", "--preset", "tiny", "--vocab-from", VOCAB, "-q", "-o", model],
    { stdio: ["ignore", "ignore", "inherit"] });
  // ~2K tokens of ChatML-wrapped text: long enough for ~70 blocks, fast on the tiny model
  const lines = [];
  for (let i = 0; i < 110; i++)
    lines.push(`Step ${i}: read src/kv/block_${i % 17}.c, check the key chain, then report line ${i * 7}.`);
  prompt = `<|im_start|>system\nYou are a careful coding agent.\n${lines.join("\n")}<|im_end|>\n` +
    "<|im_start|>user\nSummarize the steps.<|im_end|>\n<|im_start|>assistant\n";
});

after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** One `kvserve run` process (kvDir null: no --kv-dir): its output text and the
 * --stats-json object. */
function run(kvDir, { extra = [], text = prompt, env = process.env } = {}) {
  const args = ["run", "-m", model, "-p", text, "-n", String(N_GEN), "--temp", "0", "--ignore-eos", "-t", "2",
    "--stats-json", ...(kvDir ? ["--kv-dir", kvDir] : []), ...extra];
  const r = spawnSync(kvserveBin, args, { encoding: "utf8", env });
  assert.equal(r.status, 0, `kvserve run: ${r.error ?? (r.signal ? `killed by ${r.signal}` : r.stderr)}`);
  const line = r.stderr.trim().split("\n").filter((l) => l.startsWith("{")).pop();
  assert.ok(line, `no stats line in:\n${r.stderr}`);
  return { out: r.stdout, stats: JSON.parse(line) };
}

/** The model directory's block files as {key, parent, file}, from `kvserve cache ls`. */
function blockFiles(kvDir, modelDir) {
  const ls = execFileSync(kvserveBin, ["cache", "ls", "--kv-dir", kvDir], { encoding: "utf8" });
  const blocks = [];
  for (const m of ls.matchAll(/^ {2}([0-9a-f]{32}) {2}parent (\S+)/gm))
    blocks.push({ key: m[1], parent: m[2], file: path.join(modelDir, m[1].slice(0, 2), `${m[1]}.kvb`) });
  for (const b of blocks) assert.ok(fs.existsSync(b.file), `${b.file} listed but missing`);
  return blocks;
}

/** The prompt's chain of blocks, first to last. */
function chain(blocks) {
  const byParent = new Map(blocks.map((b) => [b.parent, b]));
  const keys = new Set(blocks.map((b) => b.key));
  const roots = blocks.filter((b) => !keys.has(b.parent));
  assert.equal(roots.length, 1, `one first block expected, found ${roots.length}`);
  const out = [];
  for (let b = roots[0]; b; b = byParent.get(b.key)) out.push(b);
  assert.equal(out.length, blocks.length, "the block files form one chain");
  return out;
}

test("a second process with the same --kv-dir is served from disk and continues identically", () => {
  const kv = path.join(dir, "kv");
  const first = run(kv);
  const n = first.stats.prompt_tokens;
  assert.ok(n >= 1500, `prompt of ${n} tokens`);
  assert.equal(first.stats.cached_tokens, 0);
  assert.equal(first.stats.computed_tokens, n);
  assert.equal(first.stats.new_cached_tokens, Math.floor(n / B) * B, "every full prompt block is cached");
  assert.equal(first.stats.kv_dir, path.join(kv, first.stats.fingerprint), "model directory by fingerprint");

  const second = run(kv);
  const s = second.stats;
  assert.equal(s.prompt_tokens, n);
  assert.equal(s.cached_ram_tokens, 0, "a fresh process has nothing in RAM");
  assert.ok(s.cached_disk_tokens >= 0.9 * n, `cached_disk_tokens ${s.cached_disk_tokens} of ${n}`);
  assert.equal(s.cached_tokens, s.cached_disk_tokens);
  assert.equal(s.computed_tokens, n - s.cached_disk_tokens);
  assert.ok(s.computed_tokens >= 1 && s.computed_tokens <= B, `computed ${s.computed_tokens}: the tail only`);
  assert.equal(s.new_cached_tokens, 0, "nothing new: every full prompt block was on disk");
  assert.equal(s.kv_disk_corrupt_skipped, 0);
  assert.equal(second.out, first.out, "greedy output after a disk hit equals the cold run's");
});

test("a damaged block file is recomputed, not loaded, and the output stays the same", () => {
  const kv = path.join(dir, "kv-corrupt");
  const first = run(kv);
  const n = first.stats.prompt_tokens;
  const modelDir = first.stats.kv_dir;
  const blocks = chain(blockFiles(kv, modelDir));
  // the prompt's full blocks, then the ones generation filled
  assert.ok(blocks.length >= Math.floor(n / B), `${blocks.length} block files for a ${n}-token prompt`);

  // flip one byte of the payload of the prompt's 10th block: its header stays valid, so
  // the file is indexed at open and caught by the payload checksum when read
  const k = 10;
  const buf = fs.readFileSync(blocks[k].file);
  const at = 96 + 4 * B + 100;
  buf[at] ^= 0x40;
  fs.writeFileSync(blocks[k].file, buf);

  const second = run(kv);
  const s = second.stats;
  assert.equal(s.cached_disk_tokens, k * B, "blocks before the damaged one still come from disk");
  assert.equal(s.computed_tokens, n - k * B, "the damaged block and everything after it are recomputed");
  assert.equal(s.kv_disk_corrupt_skipped, 1);
  assert.ok(s.new_cached_tokens >= B, "the recomputed block is cached again");
  assert.equal(second.out, first.out, "greedy output after recomputing equals the cold run's");

  // the recomputed block was written back: a third run takes the whole prompt again
  const third = run(kv);
  assert.ok(third.stats.cached_disk_tokens >= 0.9 * n, `third run: ${third.stats.cached_disk_tokens} of ${n}`);
  assert.equal(third.out, first.out);
});

test("without --kv-dir, run writes no block files and --kv-disk 0 turns a given --kv-dir off", () => {
  const home = path.join(dir, "home");
  fs.mkdirSync(home);
  const env = { ...process.env, HOME: home, XDG_CACHE_HOME: path.join(home, ".cache") };
  const text = "<|im_start|>user\nHello there, how are you today?<|im_end|>\n<|im_start|>assistant\n".repeat(4);
  assert.equal(run(null, { text, env }).stats.kv_dir, null);
  assert.equal(fs.existsSync(path.join(home, ".cache")), false, "nothing under the default cache root");

  const kv = path.join(dir, "kv-off");
  assert.equal(run(kv, { text, extra: ["--kv-disk", "0"] }).stats.kv_dir, null);
  assert.equal(fs.existsSync(kv), false);

  // --kv-disk alone: the default root
  const on = run(null, { text, env, extra: ["--kv-disk", "1G"] }).stats;
  assert.equal(on.kv_dir, path.join(home, ".cache", "kvserve", on.fingerprint));
  assert.ok(fs.existsSync(on.kv_dir));
});
