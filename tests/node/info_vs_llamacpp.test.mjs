// info_vs_llamacpp.test.mjs — `kvserve info --json` reports, for every shared fixture
// GGUF, the same header, tensor count, names, types, shapes, offsets and sizes as
// llama.cpp's own GGUF reader (libggml-base, loaded by tests/peer/ggml_gguf_list).
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { kvserveBin, fixturesDir, peerGgmlBase, peerGgufList } from "./paths.mjs";

const files = ["models", "tokenizer"].flatMap((dir) =>
  fs.readdirSync(path.join(fixturesDir, dir))
    .filter((f) => f.endsWith(".gguf"))
    .map((f) => path.join(fixturesDir, dir, f)));

function ours(file) {
  return JSON.parse(execFileSync(kvserveBin, ["info", "--json", file], { maxBuffer: 1 << 26 }));
}

function peers(file) {
  return JSON.parse(execFileSync(peerGgufList, [peerGgmlBase, file], { maxBuffer: 1 << 26 }));
}

test("fixture list is not empty", () => assert.ok(files.length >= 15, `found ${files.length}`));

for (const file of files) {
  test(`info matches llama.cpp: ${path.basename(file)}`, () => {
    const a = ours(file);
    const b = peers(file);
    assert.equal(b.ok, true, "peer rejected a fixture");
    assert.equal(a.version, b.version);
    assert.equal(a.alignment, b.alignment);
    assert.equal(a.data_offset, b.data_offset);
    assert.equal(Object.keys(a.metadata).length, b.n_kv);
    assert.equal(a.tensors.length, b.tensors.length);
    for (let i = 0; i < a.tensors.length; i++) {
      const x = a.tensors[i], y = b.tensors[i];
      const shape = [...x.shape, 1, 1, 1].slice(0, 4);
      assert.deepEqual({ name: x.name, type: x.type_id, shape, offset: x.offset, bytes: x.bytes },
                       { name: y.name, type: y.type_id, shape: y.shape, offset: y.offset, bytes: y.bytes },
                       `tensor #${i}`);
    }
  });
}
