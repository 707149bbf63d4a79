// peer.mjs — kvserve against llama.cpp (node-llama-cpp, tests/node_modules) on the same
// GGUF files, in one run: the same thread count, prompt and generation sizes, depths and
// repetitions; one table with both rates and the ratio kvserve / llama.cpp per row.
//
//   make bench-peer [ARGS="--models qwen3-0.6b-q8_0 -d 0,4096"]
//   node bench/peer.mjs [--models all|NAME,...|FILE.gguf,...] [-p 512] [-n 128] [-t 2]
//        [-d 0[,D...]] [-r 5] [-b 512] [--rounds 1] [--cache DIR] [--kvserve BIN]
//        [--json FILE] [--kv-type f16|q8_0]
//
// Models (written by `kvserve mkmodel` into --cache, default build/bench-models/, when
// missing; random weights in the real shapes, the real Qwen3 vocabulary):
//   qwen3-0.6b-q8_0, qwen3-0.6b-q4_k_m                  Qwen3-0.6B
//   qwen3-coder-30b-a3b-4l-q4_k_m, ...-4l-q8_0           Qwen3-Coder-30B-A3B, first 4 layers
// (the 30B-shape files take a minute or two each to write.) Default: all four.
//
// Each side, per model:
//   kvserve    `kvserve bench --json` (its own process): after a warm-up run, -r timed
//              reps per test; a rep's time is the wall time of its evaluation calls.
//   llama.cpp  in this process: a context of depth + max(p, n) tokens, n_batch = n_ubatch
//              = -b, KV F16 (--kv-type q8_0: K and V Q8_0, flash attention on), flash
//              attention otherwise left at its default ("auto": on for these models on CPU), weights as llama.cpp loads them (mmap; on CPUs with AMX the
//              CPU backend repacks Q8_0/Q4 weights for its AMX kernels). The same warm-up
//              and reps. pp<P>: P tokens in one call, logits of the last; tg<N>: N calls of
//              one token, each with logits (greedy-sampled by node-llama-cpp; sampling is
//              not in the time). A rep's time is llama.cpp's own account of its decode
//              calls (llama_perf_context: prompt eval time for pp, eval time for tg), so no
//              JavaScript or N-API overhead counts against it; the wall time seen from
//              node is kept in the JSON.
//   Both       pseudo-random token ids, a new set every rep; the depth-D context is one
//              fixed stream, evaluated untimed (llama.cpp: once per depth, test tokens
//              removed from its KV after each rep; kvserve: taken from its prefix cache).
//
// The table shows medians over reps (all --rounds rounds pooled: with --rounds K the two
// sides alternate K times, so a change of machine load hits both), the ratio kvserve /
// llama.cpp (> 1: kvserve faster), and each side's share of the machine's roof as
// `kvserve bench` measured it, before and after its run of that model (the better of the
// two; the peer runs the model right after it): read bandwidth for tg (bytes a token
// reads: weights it touches plus the K/V it attends over), the int8 dot-product peak of
// kvserve's kernels for pp: AMX tiles where kvserve's "amx" kernel set runs prefill
// (llama.cpp uses them too there), else VNNI (llama.cpp may pass 100% of that where it uses AMX). "kvserve rep
// roof" is kvserve's rate over the roof read right before and after each of its reps
// (kvserve bench's "of rep roof"; the peer's reps have no such readings).
import { spawnSync, execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const sourceDir = path.resolve(here, "..");
const args = process.argv.slice(2);
const known = new Set(["--models", "-p", "-n", "-t", "-d", "-r", "-b", "--rounds", "--cache", "--kvserve",
  "--json", "--vocab", "--kv-type"]);
for (let i = 0; i < args.length; i += 2)
  if (!known.has(args[i]) || i + 1 >= args.length) {
    if (args[i] !== "-h" && args[i] !== "--help")
      console.error(`peer.mjs: bad option '${args[i]}'`);
    console.error(fs.readFileSync(fileURLToPath(import.meta.url), "utf8").split("\nimport")[0]);
    process.exit(args[i] === "-h" || args[i] === "--help" ? 0 : 2);
  }
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const int = (name, dflt) => {
  const v = Number(opt(name, String(dflt)));
  if (!Number.isInteger(v) || v < 0) {
    console.error(`peer.mjs: ${name} needs a whole number`);
    process.exit(2);
  }
  return v;
};
const P = int("-p", 512), N = int("-n", 128), T = int("-t", 2), R = int("-r", 5), B = int("-b", 512);
const rounds = Math.max(1, int("--rounds", 1));
const depths = opt("-d", "0").split(",").map(Number);
if (depths.some((d) => !Number.isInteger(d) || d < 0)) {
  console.error("peer.mjs: -d needs depths such as 0,4096");
  process.exit(2);
}
const cacheDir = path.resolve(opt("--cache", path.join(sourceDir, "build/bench-models")));
const kvserve = opt("--kvserve", process.env.KVSERVE_BIN ?? path.join(sourceDir, "build/kvserve"));
// the KV cache's type on both sides (llama.cpp: its K and V cache types, flash attention on)
const kvType = opt("--kv-type", "f16");
if (kvType !== "f16" && kvType !== "q8_0") {
  console.error("peer.mjs: --kv-type is f16 or q8_0");
  process.exit(2);
}
const vocab = opt("--vocab", process.env.KS_FIXTURES_DIR
  ? path.join(process.env.KS_FIXTURES_DIR, "tokenizer/vocab-qwen3.gguf")
  : path.resolve(sourceDir, "../shared/fixtures/tokenizer/vocab-qwen3.gguf"));

// ---- models --------------------------------------------------------------------------------

const MODELS = {
  "qwen3-0.6b-q8_0": ["--preset", "qwen3-0.6b", "--type", "q8_0"],
  "qwen3-0.6b-q4_k_m": ["--preset", "qwen3-0.6b", "--type", "q4_k_m"],
  "qwen3-coder-30b-a3b-4l-q4_k_m": ["--preset", "qwen3-coder-30b-a3b", "--n-layer", "4", "--type", "q4_k_m"],
  "qwen3-coder-30b-a3b-4l-q8_0": ["--preset", "qwen3-coder-30b-a3b", "--n-layer", "4", "--type", "q8_0"],
};

function modelFiles() {
  const sel = opt("--models", "all");
  const names = sel === "all" ? Object.keys(MODELS) : sel.split(",");
  return names.map((name) => {
    if (name.endsWith(".gguf")) {
      if (!fs.existsSync(name))
        throw new Error(`${name}: no such file`);
      return { name: path.basename(name, ".gguf"), file: path.resolve(name) };
    }
    if (!MODELS[name])
      throw new Error(`unknown model '${name}' (known: ${Object.keys(MODELS).join(", ")}, or a .gguf path)`);
    const file = path.join(cacheDir, `${name}.gguf`);
    if (!fs.existsSync(file)) {
      fs.mkdirSync(cacheDir, { recursive: true });
      const extra = fs.existsSync(vocab) ? ["--vocab-from", vocab] : [];
      console.error(`peer.mjs: writing ${file} (kvserve mkmodel ${MODELS[name].join(" ")})`);
      execFileSync(kvserve, ["mkmodel", "-o", file, "-t", String(Math.max(T, 2)), ...MODELS[name], ...extra],
        { stdio: ["ignore", "ignore", "inherit"] });
    }
    return { name, file };
  });
}

// ---- statistics ---------------------------------------------------------------------------

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

// Pseudo-random token ids (xorshift32): a fixed stream per seed.
function tokens(n, seed, nVocab) {
  let x = (seed >>> 0) || 1;
  return Array.from({ length: n }, () => {
    x = (x ^ (x << 13)) >>> 0;
    x = (x ^ (x >>> 17)) >>> 0;
    x = (x ^ (x << 5)) >>> 0;
    return x % nVocab;
  });
}

// ---- kvserve --------------------------------------------------------------------------------

function kvserveBench(file, limits) {
  const p = spawnSync(kvserve, ["bench", "-m", file, "-p", String(P), "-n", String(N), "-t", String(T),
    "-d", depths.join(","), "-r", String(R), "-b", String(B), "--kv-type", kvType, "--json",
    "--progress", ...(limits ? [] : ["--no-limits"])],
  { encoding: "utf8", maxBuffer: 1 << 26, stdio: ["ignore", "pipe", "inherit"] });
  if (p.status !== 0)
    throw new Error(`kvserve bench failed (exit status ${p.status})`);
  return JSON.parse(p.stdout);
}

// ---- llama.cpp ------------------------------------------------------------------------------

const nlc = path.join(sourceDir, "tests/node_modules/node-llama-cpp");
const { getLlama, LlamaLogLevel } = await import(path.join(nlc, "dist/index.js"));
const peerVersion = JSON.parse(fs.readFileSync(path.join(nlc, "package.json"))).version;
let logText = "";
const llama = await getLlama({ gpu: false, build: "never", maxThreads: 0, logLevel: LlamaLogLevel.debug,
  logger: (level, message) => { logText += message; } });
const peerInfo = { version: peerVersion, backend: (logText.match(/libggml-cpu-[\w-]+\.so/) ?? ["?"])[0] };

// Runs every test of one model in llama.cpp; returns rows like kvserve's (ts per rep).
async function peerBench(file, nVocab) {
  logText = "";
  llama.logLevel = LlamaLogLevel.debug; // load and context creation say what they chose
  const model = await llama.loadModel({ modelPath: file });
  const maxDepth = Math.max(...depths);
  const ctx = await model.createContext({ contextSize: maxDepth + Math.max(P, N) + 1, batchSize: B,
    threads: { ideal: T, min: T }, performanceTracking: true, failedCreationRemedy: false,
    ignoreMemorySafetyChecks: true,
    ...(kvType === "q8_0"
      ? { flashAttention: true, experimentalKvCacheKeyType: "Q8_0", experimentalKvCacheValueType: "Q8_0" } : {}) });
  const info = {
    flashAttention: /Flash Attention enabled/.test(logText) ? "on" : /Flash Attention disabled/.test(logText) ? "off"
      : String(ctx.flashAttention),
    amxRepacked: (logText.match(/amx repack tensor/g) ?? []).length,
    cpuRepacked: (logText.match(/repack: repack tensor/g) ?? []).length,
    nBatch: ctx.batchSize, threads: ctx.idealThreads,
  };
  llama.logLevel = LlamaLogLevel.info; // printTimings() prints at info
  const seq = ctx.getSequence();
  // llama.cpp's own decode times since the last call (printTimings resets them)
  const timings = async () => {
    logText = "";
    await ctx.printTimings();
    const pp = logText.match(/prompt eval time =\s*([\d.]+) ms \/\s*(\d+) tokens/);
    const tg = logText.match(/\s{2}eval time =\s*([\d.]+) ms \/\s*(\d+) runs/);
    return { ppMs: pp ? Number(pp[1]) : 0, ppN: pp ? Number(pp[2]) : 0, tgMs: tg ? Number(tg[1]) : 0,
      tgN: tg ? Number(tg[2]) : 0 };
  };
  const context = tokens(maxDepth, 1, nVocab);
  const rows = [];
  for (const depth of depths) {
    await seq.clearHistory();
    if (depth > 0) {
      console.error(`llama.cpp: ${depth} tokens of context`);
      await seq.evaluateWithoutGeneratingNewTokens(context.slice(0, depth));
    }
    for (const kind of ["pp", "tg"]) {
      const n = kind === "pp" ? P : N;
      if (n === 0)
        continue;
      // one run: back to depth tokens, then the test; seconds (llama.cpp's and node's)
      const once = async (count, seed) => {
        if (seq.nextTokenIndex > depth)
          await seq.eraseContextTokenRanges([{ start: depth, end: seq.nextTokenIndex }]);
        const t = tokens(count, seed, nVocab);
        await timings();
        const t0 = performance.now();
        if (kind === "pp")
          await seq.controlledEvaluate([...t.slice(0, -1), [t.at(-1), { generateNext: { token: true } }]]);
        else
          for (const tok of t)
            await seq.controlledEvaluate([[tok, { generateNext: { token: true } }]]);
        const wall = (performance.now() - t0) / 1e3;
        const tm = await timings();
        const [ms, got] = kind === "pp" ? [tm.ppMs, tm.ppN] : [tm.tgMs, tm.tgN];
        // llama.cpp counts a pp call as prompt eval and every 1-token call as eval
        return { s: got === count && ms > 0 ? ms / 1e3 : wall, wall, own: got === count && ms > 0 };
      };
      const test = depth > 0 ? `${kind}${n} @ d${depth}` : `${kind}${n}`;
      console.error(`llama.cpp: ${test}: warm-up`);
      await once(kind === "pp" ? n : 1, 0x5eed);
      const ts = [], wallTs = [];
      let own = true;
      for (let k = 0; k < R; k++) {
        console.error(`llama.cpp: ${test}: rep ${k + 1} of ${R}`);
        const r = await once(n, 1000003 * (depth + 1) + 7919 * k + (kind === "pp" ? 1 : 2));
        ts.push(n / r.s);
        wallTs.push(n / r.wall);
        own &&= r.own;
      }
      rows.push({ test, kind, n, depth, ts, wallTs, own });
    }
  }
  await ctx.dispose();
  await model.dispose();
  return { rows, info };
}

// ---- the run ---------------------------------------------------------------------------------

const fmtRate = (x) => (x >= 100 ? x.toFixed(1) : x.toFixed(2));
const pct = (x) => (x === undefined || !Number.isFinite(x) ? "" : `${(100 * x).toFixed(1)}%`);

function printTable(results) {
  const cols = [["model", 30, false], ["test", 15, false], ["kvserve t/s", 11, true], ["llama.cpp t/s", 13, true],
    ["ratio", 6, true], ["kvserve roof", 12, true], ["llama.cpp roof", 14, true], ["kvserve rep roof", 16, true]];
  const line = (cells) => "| " + cells.map((c, i) => cols[i][2] ? String(c).padStart(cols[i][1])
    : String(c).padEnd(cols[i][1])).join(" | ") + " |";
  console.log(line(cols.map((c) => c[0])));
  console.log("|" + cols.map(([, w, right]) => right ? "-".repeat(w + 1) + ":" : "-".repeat(w + 2)).join("|") + "|");
  for (const r of results)
    for (const row of r.rows) {
      const machine = r.machine;
      const roof = row.kind === "pp" ? (machine.pp_roof_macs_per_s ?? machine.int8_macs_per_s) : machine.read_bytes_per_s;
      const share = (ts) => roof ? ts * row.perToken / roof : undefined;
      console.log(line([r.name, row.test, fmtRate(row.ours), fmtRate(row.peer), (row.ours / row.peer).toFixed(2),
        pct(share(row.ours)), pct(share(row.peer)), pct(row.oursRepShare)]));
    }
}

async function main() {
  const models = modelFiles();
  const results = [];
  let machine = null, settings = null;
  for (const m of models) {
    console.error(`peer.mjs: ${m.name}`);
    const ours = [], peer = [];
    let kv = null, peerRun = null;
    for (let round = 0; round < rounds; round++) {
      const k = kvserveBench(m.file, true);
      machine ??= k.machine;
      settings ??= k.settings;
      kv ??= k;
      ours.push(k.rows);
      peerRun = await peerBench(m.file, k.model.n_vocab);
      peer.push(peerRun.rows);
    }
    const rows = kv.rows.map((row, i) => {
      const mine = ours.flatMap((rs) => rs[i].ts), theirs = peer.flatMap((rs) => rs[i].ts);
      const perToken = row.kind === "pp" ? row.macs_per_token : row.bytes_per_token;
      const repShares = ours.flatMap((rs) => rs[i].rep_roofs ? rs[i].ts.map((t, k) => t * perToken / rs[i].rep_roofs[k]) : []);
      const theirsWall = peer.flatMap((rs) => rs[i].wallTs);
      if (peer[0][i].test !== row.test)
        throw new Error(`row ${i}: kvserve ran ${row.test}, llama.cpp ${peer[0][i].test}`);
      return { test: row.test, kind: row.kind, n: row.n, depth: row.depth,
        perToken, oursRepShare: repShares.length ? median(repShares) : undefined,
        ours: median(mine), peer: median(theirs), peerWall: median(theirsWall),
        peerOwnTimings: peer.every((rs) => rs[i].own), kvserveTs: mine, peerTs: theirs, peerWallTs: theirsWall };
    });
    results.push({ name: m.name, file: m.file, model: kv.model, machine: kv.machine, peer: peerRun.info, rows });
  }

  const p0 = results[0].peer;
  const gbs = (x) => (x / 1e9).toFixed(1);
  console.log(`kvserve bench vs llama.cpp (node-llama-cpp ${peerInfo.version}, ${peerInfo.backend}), ` +
    `${T} threads, median of ${R * rounds} reps (${rounds} round${rounds > 1 ? "s" : ""} of ${R}), ` +
    `1-min load average ${os.loadavg()[0].toFixed(2)} at the end on ${os.cpus().length} CPUs`);
  console.log(`kvserve:   kernels ${machine.kernels}; KV ${kvType}, paged; prefill chunk ${settings.batch}`);
  console.log(`llama.cpp: flash attention ${p0.flashAttention}; n_batch = n_ubatch = ${p0.nBatch}; KV ${kvType}; mmap; ` +
    `weights repacked: ${p0.amxRepacked} tensors for AMX, ${p0.cpuRepacked} by the CPU repack; ` +
    `times from llama_perf_context (sampling and node excluded)`);
  const range = (f) => {
    const xs = results.map((r) => f(r.machine)).filter((x) => x);
    const lo = gbs(Math.min(...xs)), hi = gbs(Math.max(...xs));
    return lo === hi ? lo : `${lo}-${hi}`;
  };
  if (results.length > 1 && machine.read_bytes_per_s)
    console.log(`roofs by model (each its own kvserve run's, the better of before and after it): read bandwidth ` +
      `${range((x) => x.read_bytes_per_s)} GB/s, pp roof ${range((x) => x.pp_roof_macs_per_s ?? x.int8_macs_per_s)} ` +
      `GMAC/s; the first model's:`);
  if (machine.read_bytes_per_s)
    console.log(`roofs (kvserve bench, ${T} threads): read bandwidth ${gbs(machine.read_bytes_per_s)} GB/s ` +
      `(1 thread ${gbs(machine.read_bytes_per_s_1t)}) for tg; int8 peak ${machine.int8_isa} ` +
      `${gbs(machine.int8_macs_per_s)} GMAC/s` +
      (machine.amx_isa ? `, ${machine.amx_isa} peak ${gbs(machine.amx_macs_per_s)} GMAC/s` : "") +
      `; pp roof (both sides): ${gbs(machine.pp_roof_macs_per_s ?? machine.int8_macs_per_s)} GMAC/s`);
  console.log("");
  printTable(results);
  const worst = Math.max(...results.flatMap((r) => r.rows.map((row) => row.peer / row.peerWall - 1)));
  console.log("");
  console.log(`llama.cpp seen from node (wall time, JS and sampling included) is at most ` +
    `${(100 * worst).toFixed(1)}% slower than its own account above.`);
  if (results.some((r) => r.rows.some((row) => !row.peerOwnTimings)))
    console.log("note: some llama.cpp rows fell back to wall time (its perf counters did not match the test)");
  const save = opt("--json", null);
  if (save)
    fs.writeFileSync(save, JSON.stringify({ machine, settings, peer: peerInfo, results }, null, 1));
}

try {
  await main();
} finally {
  await llama.dispose();
}
