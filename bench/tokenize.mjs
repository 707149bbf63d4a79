// tokenize.mjs — tokenizer throughput: kvserve against llama.cpp (node-llama-cpp) on the
// same vocabulary, over a ~150 KB prompt of the kind a coding agent sends (ChatML turns,
// JSON tool schemas, tool calls and results, source code, prose, a little CJK and
// emoji). The prompt is generated here from a fixed seed, so every run sees the same
// bytes. Checks that both produce the same ids, then prints one table.
//
//   node bench/tokenize.mjs [--runs N] [--vocab FILE] [--kvserve BIN] [--save FILE]
//
// Timing covers tokenization only: kvserve's own --bench loop (text already in memory,
// vocabulary loaded), and llama.cpp's native tokenize call (text already a JS string;
// its UTF-16 -> UTF-8 copy is included, ~0.1 ms). Both report the median of N runs.
// kvserve's per-call word cache starts empty on every run; the "no cache" row turns it
// off, the "PCRE2" row swaps the hand-written pre-tokenizer for the regex reference.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const sourceDir = path.resolve(here, "..");
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const runs = Number(opt("--runs", "30"));
const vocab = opt("--vocab", process.env.KS_FIXTURES_DIR
  ? path.join(process.env.KS_FIXTURES_DIR, "tokenizer/vocab-qwen3.gguf")
  : path.resolve(sourceDir, "../shared/fixtures/tokenizer/vocab-qwen3.gguf"));
const kvserve = opt("--kvserve", process.env.KVSERVE_BIN ?? path.join(sourceDir, "build/kvserve"));

// ---- the prompt ----------------------------------------------------------------------------

function rng(seed) { // mulberry32: small, fixed, good enough for shuffling text
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function agentPrompt(targetBytes = 150_000, seed = 42) {
  const r = rng(seed);
  const pick = (a) => a[Math.floor(r() * a.length)];
  const words = ("the a to of and in is that for it with as on be this by file function test " +
    "error value return request cache token model server client prompt context block memory " +
    "thread queue result config path buffer string number array object parse write read").split(" ");
  const idents = ["parse_header", "kv_block_get", "renderPrompt", "tokenCount", "handleRequest",
    "MAX_BLOCKS", "user_id", "cacheHit", "loadConfig", "fetchData", "onMessage", "retryCount"];
  const sentence = () => {
    const n = 6 + Math.floor(r() * 14);
    const w = Array.from({ length: n }, () => pick(words));
    w[0] = w[0][0].toUpperCase() + w[0].slice(1);
    return w.join(" ") + pick([".", ".", ".", "?", "!", ":"]);
  };
  const prose = (n) => Array.from({ length: n }, sentence).join(" ");
  const tool = (i) => ({
    type: "function",
    function: {
      name: `${pick(["read", "write", "search", "run", "list", "edit"])}_${pick(words)}_${i}`,
      description: prose(2),
      parameters: {
        type: "object",
        properties: {
          path: { type: "string", description: "Absolute path to the " + pick(words) },
          limit: { type: "integer", minimum: 1, maximum: 2000, description: prose(1) },
          pattern: { type: "string", description: "Regular expression, e.g. ^\\s*(def|class)\\s+\\w+" },
          flags: { type: "array", items: { type: "string", enum: ["-i", "-n", "--hidden"] } },
        },
        required: ["path"],
      },
    },
  });
  const cCode = () => {
    const f = pick(idents), v = pick(idents).toLowerCase();
    return `static int ${f}(const char *buf, size_t len, int32_t *out) {\n` +
      `    /* ${prose(1)} */\n    size_t ${v} = 0;\n    for (size_t i = 0; i < len; i++) {\n` +
      `        if (buf[i] == '\\n' && ${v} < ${Math.floor(r() * 4096)}) {\n` +
      `            out[${v}++] = (int32_t)i;\n        }\n    }\n    return ${v} > 0 ? 0 : -1;\n}\n`;
  };
  const pyCode = () => {
    const f = pick(idents);
    return `def ${f}(self, items: list[dict], *, limit: int = ${Math.floor(r() * 100)}) -> dict:\n` +
      `    """${sentence()}"""\n    result = {}\n    for i, item in enumerate(items[:limit]):\n` +
      `        if item.get("${pick(words)}") is None:\n            continue\n` +
      `        result[item["id"]] = f"{i}: {item['name']!r}"\n    return result\n`;
  };
  const tsCode = () => `export async function ${pick(idents)}(req: Request): Promise<Response> {\n` +
    `  const body = await req.json() as { messages: Array<{ role: string; content: string }> };\n` +
    `  if (!body.messages?.length) throw new Error("${sentence()}");\n` +
    `  return new Response(JSON.stringify({ ok: true, n: body.messages.length }), { status: 200 });\n}\n`;
  const extras = ["中文说明：这个函数用于解析请求。", "日本語のコメント：キャッシュを確認する。",
    "✅ done 🚀 deployed 👍", "Ünïcödé naïve café — “quoted” ‘text’ …", "Привет, мир!"];

  let out = "<|im_start|>system\nYou are a coding agent. " + prose(12) + "\n\n# Tools\n\n<tools>\n";
  for (let i = 0; i < 24; i++) out += JSON.stringify(tool(i)) + "\n";
  out += "</tools>\n\nFor each function call, return a json object within <tool_call></tool_call> XML tags." +
    "<|im_end|>\n";
  while (Buffer.byteLength(out) < targetBytes) {
    out += "<|im_start|>user\n" + prose(3) + " " + pick(extras) + "\n```c\n" + cCode() + "```<|im_end|>\n";
    out += "<|im_start|>assistant\n<think>\n" + prose(4) + "\n</think>\n\n" + prose(2) + "\n" +
      "<tool_call>\n" + JSON.stringify({ name: `read_${pick(words)}_${Math.floor(r() * 24)}`,
        arguments: { path: `/src/${pick(words)}/${pick(idents)}.py`, limit: Math.floor(r() * 500) } }) +
      "\n</tool_call><|im_end|>\n";
    out += "<|im_start|>user\n<tool_response>\n" + pyCode() + "\n" + tsCode() + "</tool_response><|im_end|>\n";
  }
  return out;
}

// ---- the runs -------------------------------------------------------------------------------

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

// The markup of the agent prompt; removing it gives the plain-text scenario.
const markup = /<\|im_start\|>|<\|im_end\|>|<\/?think>|<\/?tool_call>|<\/?tool_response>|<\/?tools>/g;

// kvserve: ids from stdout, timings from stderr (one JSON line per process)
function kvserveRuns(file, special) {
  const rows = [];
  let ids = null;
  for (const [name, extra] of [["kvserve", []], ["kvserve, no word cache", ["--no-cache"]],
    ["kvserve, PCRE2 pre-tokenizer", ["--regex"]]]) {
    const p = spawnSync(kvserve, ["tokenize", "-m", vocab, "-f", file, "--no-add-special",
      ...(special ? ["--special"] : []), "--bench", String(runs), ...extra], { maxBuffer: 1 << 28, encoding: "utf8" });
    if (p.status !== 0)
      throw new Error(`${kvserve} failed: ${p.stderr}`);
    const stats = JSON.parse(p.stderr.trim().split("\n").pop());
    const got = p.stdout.trim().split(/\s+/).map(Number);
    if (ids && got.join() !== ids.join())
      throw new Error(`${name}: ids differ from the default configuration`);
    ids = got;
    rows.push({ name, ms: stats.median_ms });
  }
  return { rows, ids };
}

function peerRun(model, text, special) {
  const times = [];
  for (let i = 0; i < runs; i++) {
    const t0 = process.hrtime.bigint();
    model._model.tokenize(text, special); // the native call under model.tokenize(), without Array.from
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return { ms: median(times), ids: model.tokenize(text, special) };
}

async function main() {
  const agent = agentPrompt();
  const scenarios = [
    { title: "agent prompt, chat markup parsed as special tokens", text: agent, special: true },
    { title: "the same prompt without its markup (plain code, JSON and prose)", text: agent.replace(markup, ""),
      special: false },
  ];
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ks-bench-"));
  const save = opt("--save", null);
  if (save)
    fs.writeFileSync(save, agent);

  const nlc = path.join(sourceDir, "tests/node_modules/node-llama-cpp");
  const { getLlama } = await import(path.join(nlc, "dist/index.js"));
  const peerVersion = JSON.parse(fs.readFileSync(path.join(nlc, "package.json"))).version;
  // llama.cpp logs that a vocabulary-only file has no hyperparameters; nothing else is expected
  const llama = await getLlama({ gpu: false, build: "never", logLevel: "error",
    logger: (level, message) => { if (!/context_length|failed to load model/.test(message)) console.error(message); } });
  const model = await llama.loadModel({ modelPath: vocab, vocabOnly: true });

  let allSame = true;
  console.log(`vocabulary ${path.basename(vocab)}; median of ${runs} runs; tokenization only (text in memory)`);
  for (const [i, sc] of scenarios.entries()) {
    const bytes = Buffer.byteLength(sc.text);
    const file = path.join(tmp, `prompt${i}.txt`);
    fs.writeFileSync(file, sc.text);
    const ours = kvserveRuns(file, sc.special);
    const peer = peerRun(model, sc.text, sc.special);
    const rows = [...ours.rows, { name: `llama.cpp (node-llama-cpp ${peerVersion})`, ms: peer.ms }];
    let first = -1;
    for (let k = 0; first < 0 && k < Math.max(ours.ids.length, peer.ids.length); k++)
      if (ours.ids[k] !== peer.ids[k]) first = k;
    allSame &&= first < 0;

    console.log("");
    console.log(`${sc.title}: ${bytes} bytes, ${ours.ids.length} tokens`);
    console.log("");
    console.log("| tokenizer                              |     ms |   MB/s | vs llama.cpp |");
    console.log("|----------------------------------------|-------:|-------:|-------------:|");
    for (const r of rows)
      console.log(`| ${r.name.padEnd(38)} | ${r.ms.toFixed(2).padStart(6)} | ` +
        `${(bytes / 1e3 / r.ms).toFixed(1).padStart(6)} | ${(peer.ms / r.ms).toFixed(1).padStart(11)}x |`);
    console.log("");
    console.log(first < 0 ? `ids: identical to llama.cpp's (${ours.ids.length} tokens)`
      : `ids: DIFFERENT (ours ${ours.ids.length}, llama.cpp ${peer.ids.length}, first difference at ${first})`);
  }
  await model.dispose();
  await llama.dispose();
  fs.rmSync(tmp, { recursive: true, force: true });
  process.exitCode = allSame ? 0 : 1;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1]))
  await main();
