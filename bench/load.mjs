// load.mjs — the server under several clients at once, with the official @anthropic-ai/sdk
// (tests/node_modules): N concurrent streaming clients (N = 1, 2, 4 by default), each
// working a long conversation whose prefix is cached and sending short side requests
// between its turns, as a coding agent and its helpers do. Per concurrency: aggregate
// decode tok/s, time to first token (median, p95) and errors. Then the long-prefill
// check: while another client's prompt of --long-prefill tokens is being prefilled, the
// TTFT of a cached follow-up, against the same follow-up on an idle server. Last, from the
// server's own log of its steps (it runs with -v): per phase, how long a step that only
// decodes takes with 1, 2, 3, 4 sequences in it (the batching gain, free of prefill work
// and of the clients), and how long the steps with prompt tokens take.
//
//   make bench-load [BENCH_LOAD_ARGS="--long-prefill 8000"]
//   node bench/load.mjs [--url URL] [--model FILE] [--concurrency 1,2,4] [--rounds N]
//        [--prefix-tokens N] [--shared-system N] [--turn-tokens N] [--max-tokens N] [--long-prefill N]
//        [--followups N] [--burst N] [--threads N] [--parallel N] [--prefill-chunk N] [--step-budget K]
//        [--kv-ram SIZE] [--kvserve BIN] [--save FILE.json]
//
// Without --url the benchmark starts `kvserve serve` itself on a synthetic model of the
// real Qwen3-0.6B shape (Q8_0, real Qwen3 vocabulary, Qwen3-Coder template), generated
// once into build/bench/ (the file bench/cache.mjs uses too). With --url it drives that
// server as it is (its --parallel, --prefill-chunk and --step-budget are its own, and its
// steps are not reported).
//
// Definitions:
//   TTFT       request sent -> first content event of the stream (client clock)
//   decode     a request's output tokens after its first, from the usage it reports
//   aggregate  sum of all requests' decode tokens / the phase's wall time
//   per stream median over requests of decode tokens / (end - first token)
//   D=n        the server's steps that decode n sequences and compute no prompt token:
//              median time, and n / that time = the engine's decode tok/s at n streams
// Each client's conversation is sent once before the phases (untimed), so turns find
// their prefix cached, as an agent's do; side requests share one short system prompt.
// With --burst N, last, every client sends at once a request whose N-token system prompt
// nothing has cached yet (an agent launching its subagents): their TTFT and how many of
// the N x clients prompt tokens the server computed (once, when it computes the common
// prefix once). With --shared-system N every conversation's system prompt begins with the same N
// tokens (one agent's prompt and tool definitions, as its subagents' conversations
// share them), so the clients' prefixes share their first KV blocks.
import { spawn, execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { createRequire } from "node:module";

const here = path.dirname(fileURLToPath(import.meta.url));
const sourceDir = path.resolve(here, "..");
const fixturesDir = process.env.KS_FIXTURES_DIR ?? path.resolve(sourceDir, "../shared/fixtures");
const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(name);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : dflt;
};

const url = opt("--url", null);
const kvserve = opt("--kvserve", process.env.KVSERVE_BIN ?? path.join(sourceDir, "build/kvserve"));
const levels = opt("--concurrency", "1,2,4").split(",").map(Number);
const rounds = Number(opt("--rounds", "4"));           // per client: a turn each round, a side request every other
const prefixTokens = Number(opt("--prefix-tokens", "2000"));
const sharedSystem = Number(opt("--shared-system", "0"));
const turnTokens = Number(opt("--turn-tokens", "120"));
const maxTokens = Number(opt("--max-tokens", "48"));
const longPrefill = Number(opt("--long-prefill", "20000"));
const followups = Number(opt("--followups", "3"));
const burst = Number(opt("--burst", "0"));
const saveFile = opt("--save", null);

const require = createRequire(path.join(sourceDir, "tests/package.json"));
const { default: Anthropic } = await import(pathToFileURL(require.resolve("@anthropic-ai/sdk")).href);

// ---- text --------------------------------------------------------------------------------

function prng(seed) { // SplitMix32: every run sends the same bytes
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return ((z ^ (z >>> 16)) >>> 0) / 2 ** 32;
  };
}
const WORDS = ("the file function test error value return request cache token model server client prompt " +
  "context block memory thread queue result config path buffer string number array object parse write read " +
  "build check edit commit branch patch line column index batch step kernel").split(" ");
/** About n tokens of text: these words are one token each with their leading space. */
const words = (n, r) => Array.from({ length: n }, () => WORDS[Math.floor(r() * WORDS.length)]).join(" ");

const SIDE_SYSTEM = "You write a five-word title for the conversation you are shown. " + words(150, prng(99));

// ---- the server ---------------------------------------------------------------------------

function defaultModel() {
  const file = path.join(sourceDir, "build/bench/qwen3-0.6b-q8_0-coder.gguf");
  if (!fs.existsSync(file)) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    console.log(`generating ${path.relative(sourceDir, file)} (kvserve mkmodel --preset qwen3-0.6b --type q8_0)`);
    execFileSync(kvserve, ["mkmodel", "--preset", "qwen3-0.6b", "--type", "q8_0",
      "--vocab-from", path.join(fixturesDir, "tokenizer/vocab-qwen3.gguf"),
      "--template-file", path.join(fixturesDir, "templates/Qwen3-Coder.jinja"), "-q", "-o", file],
    { stdio: ["ignore", "ignore", "inherit"] });
  }
  return file;
}

async function startServer(work) {
  const model = opt("--model", null) ?? defaultModel();
  const args = ["serve", "-m", model, "--port", "0", "-c", String(Math.max(32768, longPrefill + 4096)),
    "--kv-dir", path.join(work, "kv"), "-v"];
  for (const [flag, name] of [["--threads", "-t"], ["--parallel", "--parallel"], ["--prefill-chunk", "--prefill-chunk"],
    ["--step-budget", "--step-budget"], ["--kv-ram", "--kv-ram"]])
    if (opt(flag, null) !== null) args.push(name, opt(flag, null));
  const logFile = path.join(work, "server.log");
  const proc = spawn(kvserve, args, { stdio: ["ignore", "ignore", "pipe"] });
  process.on("exit", () => proc.kill("SIGKILL"));
  const log = fs.createWriteStream(logFile);
  let head = "", partial = "";
  const steps = []; // {decode, prompt, ms} of every step the server logs
  const port = await new Promise((resolve, reject) => {
    proc.stderr.on("data", (d) => {
      log.write(d);
      if (head.length < 65536) head += d;
      const lines = (partial + d).split("\n");
      partial = lines.pop();
      for (const line of lines) {
        const m = line.match(/engine: step of (\d+) decode \+ (\d+) prompt tokens, ([\d.]+) ms(?: \(forward ([\d.]+))?/);
        if (m) steps.push({ decode: Number(m[1]), prompt: Number(m[2]), ms: Number(m[3]), forward: Number(m[4] ?? m[3]) });
      }
      const m = head.match(/listening on http:\/\/[^:]+:(\d+)/);
      if (m) resolve(Number(m[1]));
    });
    proc.on("exit", (code) => reject(new Error(`server exited ${code}:\n${head}`)));
  });
  const engine = head.match(/engine: .*/)?.[0] ?? "";
  return {
    url: `http://127.0.0.1:${port}`, logFile, engine, steps,
    async stop() {
      const exited = new Promise((resolve) => proc.on("exit", resolve));
      proc.kill("SIGTERM");
      await exited;
      log.end();
    },
  };
}

async function metric(base, name) {
  const text = await (await fetch(`${base}/metrics`)).text();
  return Number(text.match(new RegExp(`^${name} (\\S+)`, "m"))?.[1] ?? NaN);
}

// ---- one streamed request ----------------------------------------------------------------------

/** Streams one request; returns {ttft, out, first, end} in ms (performance.now clock) or {error}. */
async function streamed(client, body) {
  const t0 = performance.now();
  let first = null, out = 0;
  try {
    const stream = await client.messages.create({ ...body, stream: true });
    for await (const ev of stream) {
      if (first === null && (ev.type === "content_block_delta" || ev.type === "message_delta")) first = performance.now();
      if (ev.type === "message_delta") out = ev.usage.output_tokens;
    }
    const end = performance.now();
    return { ttft: first - t0, out, first, end };
  } catch (e) {
    return { error: String(e.message ?? e) };
  }
}

// ---- clients ---------------------------------------------------------------------------------

/** Client c's conversation: its own long system prompt (after the shared one, if any),
 * then turns it adds as it goes. */
function conversation(c) {
  const r = prng(1000 + c);
  const shared = sharedSystem > 0 ? words(sharedSystem, prng(7)) + "\n\n" : "";
  return { r, system: shared + `You are coding agent ${c}. ` + words(prefixTokens, r), messages: [] };
}

function turnBody(conv, userText) {
  return { model: "m", max_tokens: maxTokens, temperature: 0, system: conv.system,
    messages: [...conv.messages, { role: "user", content: userText }] };
}

async function converse(client, conv, results) {
  const text = words(turnTokens, conv.r);
  const res = await streamed(client, turnBody(conv, text));
  results.push({ kind: "turn", ...res });
  // the reply goes back into the conversation as an agent's would (its text is noise;
  // a fixed stand-in keeps the prefix the same on every run)
  conv.messages.push({ role: "user", content: text }, { role: "assistant", content: words(maxTokens, conv.r) });
}

async function side(client, c, k, results) {
  const res = await streamed(client, { model: "m", max_tokens: 16, temperature: 0, system: SIDE_SYSTEM,
    messages: [{ role: "user", content: `Conversation ${c}, request ${k}: ` + words(40, prng(c * 100 + k)) }] });
  results.push({ kind: "side", ...res });
}

const median = (xs) => quantile(xs, 0.5);
function quantile(xs, q) {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.round(q * (s.length - 1)))];
}
const fmt = (x, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : "-");

// ---- the server's steps ------------------------------------------------------------------

/** Summary of the steps logged while fn ran: decode-only steps by batch size, and the
 *  steps that computed prompt tokens; and the share of the wall time the engine was busy
 *  (/metrics: the rest it waited for requests). */
async function withSteps(srv, fn) {
  const from = srv.steps?.length ?? 0;
  const busy0 = await metric(srv.url, "kvserve_engine_busy_seconds_total"), t0 = performance.now();
  const result = await fn();
  const busy = ((await metric(srv.url, "kvserve_engine_busy_seconds_total")) - busy0) / ((performance.now() - t0) / 1e3);
  return { result, steps: srv.steps ? { ...summarizeSteps(srv.steps.slice(from)), busy } : null };
}

function summarizeSteps(steps) {
  const decode = {};
  for (const s of steps.filter((s) => s.prompt === 0)) (decode[s.decode] ??= []).push(s.ms);
  const byBatch = Object.fromEntries(Object.entries(decode).map(([n, ms]) =>
    [n, { steps: ms.length, medianMs: median(ms), tokS: Number(n) / (median(ms) / 1e3) }]));
  const pf = steps.filter((s) => s.prompt > 0), dec = steps.filter((s) => s.prompt === 0);
  const sum = (xs) => xs.reduce((a, b) => a + b, 0);
  return { byBatch, promptSteps: pf.length, outsideForward: 1 - sum(dec.map((s) => s.forward)) / sum(dec.map((s) => s.ms)), promptMedianMs: median(pf.map((s) => s.ms)),
    promptMaxMs: Math.max(...pf.map((s) => s.ms)), promptMedianTokens: median(pf.map((s) => s.prompt)) };
}

async function phase(client, n, convs) {
  const results = [];
  const t0 = performance.now();
  await Promise.all(Array.from({ length: n }, async (_, c) => {
    for (let k = 0; k < rounds; k++) {
      await converse(client, convs[c], results);
      if (k % 2 === 1) await side(client, c, k, results);
    }
  }));
  const wall = (performance.now() - t0) / 1e3;
  const ok = results.filter((x) => !x.error);
  const decode = ok.reduce((s, x) => s + Math.max(0, x.out - 1), 0);
  const perStream = ok.filter((x) => x.out > 1).map((x) => (x.out - 1) / ((x.end - x.first) / 1e3));
  return { concurrency: n, requests: results.length, errors: results.length - ok.length,
    errorSamples: results.filter((x) => x.error).slice(0, 3).map((x) => x.error),
    wall, decodeTokens: decode, aggregateTokS: decode / wall, perStreamTokS: median(perStream),
    ttftMedian: median(ok.map((x) => x.ttft)), ttftP95: quantile(ok.map((x) => x.ttft), 0.95),
    ttftTurnMedian: median(ok.filter((x) => x.kind === "turn").map((x) => x.ttft)),
    ttftSideMedian: median(ok.filter((x) => x.kind === "side").map((x) => x.ttft)) };
}

// ---- a long prefill and a cached follow-up ------------------------------------------------------

async function longPrefillCheck(client, base, conv) {
  // TTFT is all this measures: one token each, so every follow-up falls inside the prefill
  const follow = (k) => ({ ...turnBody(conv, `Follow-up ${k}: ` + words(turnTokens, prng(5000 + k))), max_tokens: 1 });
  await streamed(client, follow(-1)); // the conversation's prefix is cached (and warm)
  const idle = [];
  for (let k = 0; k < followups; k++) idle.push((await streamed(client, follow(k))).ttft);

  // another client's long prompt: nothing of it is cached
  const computed0 = await metric(base, "kvserve_computed_tokens_total");
  const chunk = Number(opt("--prefill-chunk", "512"));
  const tLong = performance.now();
  const longReq = streamed(client, { model: "m", max_tokens: 1, temperature: 0,
    system: "A fresh prompt. " + words(longPrefill, prng(4242)), messages: [{ role: "user", content: "Summarise." }] });
  let longDone = false;
  longReq.then(() => { longDone = true; });
  // wait until its prefill is under way (a chunk or so computed)
  while (!longDone && (await metric(base, "kvserve_computed_tokens_total")) - computed0 < Math.min(chunk, longPrefill / 4))
    await new Promise((r) => setTimeout(r, 50));
  const busy = [];
  let overlapped = true;
  for (let k = 0; k < followups; k++) {
    const res = await streamed(client, follow(followups + k));
    busy.push(res.ttft);
    if (longDone) overlapped = false;
  }
  const long = await longReq;
  return { longPrefillTokens: longPrefill, longPrefillSeconds: (long.first - tLong) / 1e3,
    idleTtft: idle, busyTtft: busy, idleMedian: median(idle), busyMedian: median(busy),
    ratio: median(busy) / median(idle), overlapped };
}

// ---- subagents sent at once ------------------------------------------------------------------

async function burstCheck(client, base, n) {
  const system = "A new agent prompt. " + words(burst, prng(777));
  const computed0 = await metric(base, "kvserve_computed_tokens_total");
  const res = await Promise.all(Array.from({ length: n }, (_, c) => streamed(client, { model: "m", max_tokens: 1,
    temperature: 0, system, messages: [{ role: "user", content: `Subtask ${c}: ` + words(40, prng(9000 + c)) }] })));
  const computed = (await metric(base, "kvserve_computed_tokens_total")) - computed0;
  const ok = res.filter((x) => !x.error);
  return { clients: n, errors: n - ok.length, ttftMedian: median(ok.map((x) => x.ttft)),
    ttftMax: Math.max(...ok.map((x) => x.ttft)), computedTokens: computed };
}

// ---- main -----------------------------------------------------------------------------------

function printSteps(rows, lp, whole) {
  const phases = [...rows.map((r) => [`${r.concurrency} client${r.concurrency > 1 ? "s" : ""}`, r.steps]),
    ...(lp ? [["long prefill", lp.steps]] : [])];
  const widths = [...new Set(phases.flatMap(([, s]) => Object.keys(s.byBatch).map(Number)))].sort((a, b) => a - b);
  console.log("\nserver steps: decode only, by sequences in the step: median ms (tok/s); with prompt tokens: " +
    "steps, median / max ms, median tokens; the engine's busy share of the wall time");
  console.log("phase         " + widths.map((n) => `D=${n}`.padStart(16)).join("") + "   prompt steps" +
    " ".repeat(24) + "busy");
  for (const [name, s] of phases) {
    const cells = widths.map((n) => s.byBatch[n] ? `${fmt(s.byBatch[n].medianMs, 1)} (${fmt(s.byBatch[n].tokS, 1)})` : "-");
    const pf = `${s.promptSteps}, ${fmt(s.promptMedianMs)} / ${fmt(s.promptMaxMs)} ms, ${fmt(s.promptMedianTokens)} tokens`;
    console.log(name.padEnd(14) + cells.map((c) => c.padStart(16)).join("") + `   ${pf.padEnd(36)}${fmt(100 * s.busy)}%`);
  }
  // the whole run: the engine's decode throughput at the widest batch against one sequence
  const top = widths.at(-1), one = whole.byBatch[1], wide = whole.byBatch[top];
  if (one && wide && top > 1)
    console.log(`whole run: decode-only steps of ${top} sequences give ${fmt(wide.tokS, 1)} tok/s, ` +
      `${fmt(wide.tokS / one.tokS, 2)}x one sequence's ${fmt(one.tokS, 1)} tok/s (a step of ${top} takes ` +
      `${fmt(wide.medianMs / one.medianMs, 2)}x as long as a step of one); ` +
      `${fmt(100 * whole.outsideForward, 1)}% of decode-only steps' time outside the forward pass ` +
      "(sampling, events, KV bookkeeping)");
}

async function main() {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "kvserve-bench-load-"));
  const srv = url ? { url, engine: "(external server)" } : await startServer(work);
  const client = new Anthropic({ baseURL: srv.url, apiKey: "bench", maxRetries: 0, timeout: 3600 * 1000 });
  console.log(`server ${srv.url} ${srv.engine}`);
  console.log(`${rounds} rounds per client: a turn (~${turnTokens} new tokens on a ~${prefixTokens}-token cached ` +
    `conversation${sharedSystem > 0 ? ` after a ~${sharedSystem}-token system prompt all clients share` : ""}, ` +
    `${maxTokens} tokens out) each round, a side request (~200 tokens, 16 out) every other`);
  const convs = Array.from({ length: Math.max(...levels) }, (_, c) => conversation(c));
  const tPrime = performance.now();
  for (const conv of convs) await streamed(client, turnBody(conv, "Hello."));
  console.log(`primed ${convs.length} conversations in ${fmt((performance.now() - tPrime) / 1e3, 1)} s`);

  const rows = [];
  console.log("\nclients  requests  errors  decode tok/s (aggregate)  per stream  TTFT median  TTFT p95  (turn / side median)");
  for (const n of levels) {
    const { result: r, steps } = await withSteps(srv, () => phase(client, n, convs));
    r.steps = steps;
    rows.push(r);
    console.log(`${String(n).padStart(7)}  ${String(r.requests).padStart(8)}  ${String(r.errors).padStart(6)}  ` +
      `${fmt(r.aggregateTokS, 1).padStart(24)}  ${fmt(r.perStreamTokS, 1).padStart(10)}  ` +
      `${(fmt(r.ttftMedian) + " ms").padStart(11)}  ${(fmt(r.ttftP95) + " ms").padStart(8)}  ` +
      `(${fmt(r.ttftTurnMedian)} / ${fmt(r.ttftSideMedian)} ms)`);
    for (const e of r.errorSamples) console.log(`         error: ${e}`);
  }
  const one = rows.find((r) => r.concurrency === 1), top = rows.at(-1);
  if (one && top !== one)
    console.log(`aggregate decode at ${top.concurrency} clients: ${fmt(top.aggregateTokS / one.aggregateTokS, 2)}x one client`);

  let lp = null;
  if (longPrefill > 0) {
    const { result, steps } = await withSteps(srv, () => longPrefillCheck(client, srv.url, convs[0]));
    lp = { ...result, steps };
    console.log(`\nlong prefill: ${lp.longPrefillTokens} tokens took ${fmt(lp.longPrefillSeconds, 1)} s; ` +
      `a cached follow-up's TTFT: ${fmt(lp.idleMedian)} ms idle, ${fmt(lp.busyMedian)} ms during it ` +
      `(${fmt(lp.ratio, 2)}x; each: idle ${lp.idleTtft.map((x) => fmt(x)).join(", ")}, ` +
      `busy ${lp.busyTtft.map((x) => fmt(x)).join(", ")})` +
      (lp.overlapped ? "" : " — the prefill ended before the follow-ups did: raise --long-prefill"));
  }
  let bu = null;
  if (burst > 0) {
    bu = await burstCheck(client, srv.url, Math.max(...levels));
    console.log(`\n${bu.clients} requests at once with one new ~${burst}-token system prompt: TTFT median ` +
      `${fmt(bu.ttftMedian)} ms, last ${fmt(bu.ttftMax)} ms; the server computed ${fmt(bu.computedTokens)} prompt ` +
      `tokens for them (~${bu.clients * (burst + 45)} sent)` + (bu.errors ? `, ${bu.errors} errors` : ""));
  }
  if (srv.steps) printSteps(rows, lp, summarizeSteps(srv.steps));
  if (saveFile) fs.writeFileSync(saveFile, JSON.stringify({ engine: srv.engine, rows, longPrefill: lp, burst: bu }, null, 2));
  if (srv.stop) await srv.stop();
  if (!url) fs.rmSync(work, { recursive: true, force: true });
  if (rows.some((r) => r.errors > 0) || bu?.errors) process.exitCode = 1;
}

await main();
