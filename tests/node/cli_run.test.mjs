// cli_run.test.mjs — `kvserve run` and `kvserve logits` from the outside: end to end on a
// model of the real Qwen3-0.6B shape; `kvserve bench --json`'s rows and roofs; and bad
// input (ids out of range, an empty prompt, a prompt longer than the context, an
// unsupported architecture, a missing file) answered with one clear line and exit status 1.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync, execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { kvserveBin, fixturesDir } from "./paths.mjs";

let dir, q06;
const vocab = path.join(fixturesDir, "tokenizer/vocab-qwen3.gguf");
const mini = path.join(fixturesDir, "models/mini-qwen3-q8_0.gguf");

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "kvserve-run-"));
  q06 = path.join(dir, "qwen3-0.6b-q8_0.gguf");
  execFileSync(kvserveBin, ["mkmodel", "--preset", "qwen3-0.6b", "--type", "q8_0", "--vocab-from", vocab, "-q", "-o", q06]);
});

after(() => fs.rmSync(dir, { recursive: true, force: true }));

function run(args) {
  const r = spawnSync(kvserveBin, args, { encoding: "utf8", timeout: 300000 });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

test("run on the real Qwen3-0.6B shape works end to end", () => {
  const r = run(["run", "-m", q06, "-p", "The quick brown fox", "-n", "8", "--temp", "0", "--stats-json"]);
  assert.equal(r.status, 0, r.stderr);
  const stats = JSON.parse(r.stderr.trim().split("\n").at(-1));
  assert.equal(stats.prompt_tokens, 4);
  assert.equal(stats.generated_tokens, 8);
  assert.ok(stats.decode_tok_s > 0 && stats.prefill_ms > 0);
  // greedy is deterministic
  const again = run(["run", "-m", q06, "-p", "The quick brown fox", "-n", "8", "--temp", "0"]);
  assert.equal(again.stdout, r.stdout);
});

test("logits prints every position's top tokens and the last position's full logits", () => {
  const out = path.join(dir, "last.f32");
  const r = run(["logits", "-m", mini, "--tokens", "785,3974,293", "--top", "5", "--json", "--all-out", out]);
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.top.length, 3);
  assert.equal(j.top[0].length, 5);
  assert.equal(fs.statSync(out).size, j.n_vocab * 4);
});

test("bench --json gives every rep's rate with the roof read around it, and none without limits", () => {
  const r = run(["bench", "-m", mini, "-p", "16", "-n", "4", "-r", "2", "--bw-buffer", "64", "--json"]);
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.ok(j.machine.read_bytes_per_s > 0 && j.machine.int8_macs_per_s > 0);
  assert.deepEqual(j.rows.map((w) => w.test), ["pp16", "tg4"]);
  for (const w of j.rows) {
    assert.equal(w.ts.length, 2);
    assert.equal(w.rep_roofs.length, 2);
    const perToken = w.kind === "pp" ? w.macs_per_token : w.bytes_per_token;
    const shares = w.ts.map((t, k) => (t * perToken) / w.rep_roofs[k]).sort((a, b) => a - b);
    assert.ok(w.rep_roofs.every((x) => x > 0), JSON.stringify(w));
    assert.ok(Math.abs(w.rep_roof_share - (shares[0] + shares[1]) / 2) < 1e-6 * w.rep_roof_share, JSON.stringify(w));
  }
  const bare = JSON.parse(run(["bench", "-m", mini, "-p", "0", "-n", "2", "-r", "1", "--no-limits", "--json"]).stdout);
  assert.equal(bare.rows[0].rep_roofs, undefined);
  assert.equal(bare.rows[0].rep_roof_share, undefined);
});

function assertOneLineError(r, pattern) {
  assert.equal(r.status, 1, `exit status (signal ${r.signal}): ${r.stderr}`);
  const lines = r.stderr.trim().split("\n");
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], pattern);
}

test("bad input: clear one-line errors and exit status 1", () => {
  assertOneLineError(run(["run", "-m", mini, "--tokens", "1,2,999999"]), /999999.*outside the vocabulary/);
  assertOneLineError(run(["run", "-m", mini, "--tokens", ""]), /empty/);
  assertOneLineError(run(["run", "-m", mini, "-p", "word ".repeat(300), "-c", "64"]), /does not fit the context/);
  assertOneLineError(run(["logits", "-m", mini, "--tokens", "5,-3"]), /-3.*outside the vocabulary/);
  assertOneLineError(run(["run", "-m", path.join(dir, "missing.gguf"), "--tokens", "1"]), /missing\.gguf.*cannot open/);
  assertOneLineError(run(["run", "-m", vocab, "--tokens", "1"]), /vocab-qwen3\.gguf/);
  const mamba = path.join(dir, "mamba.gguf");
  // a header-only GGUF naming another architecture
  const key = Buffer.from("general.architecture"), val = Buffer.from("mamba");
  const b = Buffer.alloc(4 + 4 + 8 + 8 + 8 + key.length + 4 + 8 + val.length);
  let o = b.write("GGUF", 0); o = b.writeUInt32LE(3, o); o = b.writeBigUInt64LE(0n, o); o = b.writeBigUInt64LE(1n, o);
  o = b.writeBigUInt64LE(BigInt(key.length), o); o += key.copy(b, o); o = b.writeUInt32LE(8, o);
  o = b.writeBigUInt64LE(BigInt(val.length), o); val.copy(b, o);
  fs.writeFileSync(mamba, b);
  assertOneLineError(run(["run", "-m", mamba, "--tokens", "1"]), /unsupported architecture 'mamba'.*qwen3/);
});
