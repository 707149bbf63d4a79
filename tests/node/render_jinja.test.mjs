// render_jinja.test.mjs — `kvserve render` end to end: the chat format is picked from the
// model file's own template, every corpus conversation (tests/chat/gen_conversations.py,
// rendered by Jinja2 from the real templates) comes out byte-identical, and the token ids
// `--tokens` prints for the prompt are the ids llama.cpp gives the Jinja2 text with the
// real Qwen3 vocabulary.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { getLlama } from "node-llama-cpp";
import { kvserveBin, fixturesDir, sourceDir } from "./paths.mjs";

// The fixture models carry the real templates: dense Qwen3 and Qwen3-Coder (MoE).
const FAMILIES = [
  { name: "qwen3", model: "models/mini-qwen3-f32.gguf" },
  { name: "qwen3-coder", model: "models/mini-qwen3moe-f32.gguf" },
];
const VOCAB = path.join(fixturesDir, "tokenizer/vocab-qwen3.gguf");

let dir;
let cases;

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "kvserve-render-"));
  execFileSync("python3", [path.join(sourceDir, "tests/chat/gen_conversations.py"), dir,
    "--templates", path.join(fixturesDir, "templates")], { stdio: ["ignore", "ignore", "inherit"] });
  cases = fs.readFileSync(path.join(dir, "manifest.tsv"), "utf8").trim().split("\n")
    .map((line) => { const [name, api] = line.split("\t"); return { name, api }; });
});

after(() => fs.rmSync(dir, { recursive: true, force: true }));

function render(args, file) {
  const r = spawnSync(kvserveBin, ["render", ...args, file], { encoding: "buffer" });
  assert.equal(r.status, 0, `kvserve render ${args.join(" ")} ${file}: ` +
    (r.error ?? (r.signal ? `killed by ${r.signal}` : r.stderr)));
  return r.stdout;
}

for (const fam of FAMILIES) {
  test(`kvserve render -m ${path.basename(fam.model)} matches Jinja2 (${fam.name})`, () => {
    assert.ok(cases.length >= 50, `corpus has ${cases.length} conversations`);
    const model = path.join(fixturesDir, fam.model);
    const bad = [];
    for (const c of cases) {
      // the API is told from the body's shape
      const got = render(["-m", model], path.join(dir, `${c.name}.json`));
      const want = fs.readFileSync(path.join(dir, `${c.name}.${fam.name}.txt`));
      if (!got.equals(want)) bad.push(c.name);
    }
    assert.deepEqual(bad, [], `${bad.length} of ${cases.length} conversations differ`);
  });
}

test("kvserve render --tokens gives llama.cpp's ids for the Jinja2 prompt (real Qwen3 vocabulary)", async () => {
  const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" });
  const model = await llama.loadModel({ modelPath: VOCAB, vocabOnly: true });
  try {
    let checked = 0;
    for (const c of cases) {
      for (const fam of FAMILIES) {
        const out = render(["-m", VOCAB, "--chat-template", fam.name, "--api", c.api, "--tokens"],
          path.join(dir, `${c.name}.json`)).toString("utf8");
        const at = out.lastIndexOf("\n# ");
        assert.ok(at >= 0, `no token line in the output for ${c.name}`);
        const [, count, ids] = out.slice(at).match(/^\n# (\d+) tokens\n([\d ]*)\n$/);
        const ours = ids.split(" ").filter(Boolean).map(Number);
        assert.equal(ours.length, Number(count));
        const text = fs.readFileSync(path.join(dir, `${c.name}.${fam.name}.txt`), "utf8");
        assert.deepEqual(ours, Array.from(model.tokenize(text, true)), `${c.name} [${fam.name}]`);
        checked++;
      }
    }
    assert.equal(checked, cases.length * FAMILIES.length);
  } finally {
    await model.dispose();
    await llama.dispose();
  }
});

test("kvserve render refuses what it cannot render, naming the field", () => {
  const body = path.join(dir, "image.json");
  fs.writeFileSync(body, JSON.stringify({ messages: [{ role: "user", content: [
    { type: "text", text: "look" }, { type: "image", source: { type: "base64", media_type: "image/png", data: "" } }] }] }));
  const r = spawnSync(kvserveBin, ["render", "--chat-template", "qwen3", body], { encoding: "utf8" });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /messages\[0\]\.content\[1\]: image content is not supported/);
  const t = spawnSync(kvserveBin, ["render", "--chat-template", "mistral", body], { encoding: "utf8" });
  assert.equal(t.status, 1);
  assert.match(t.stderr, /supported: qwen3, qwen3-coder, chatml/);
});
