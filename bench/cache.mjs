// cache.mjs — what the KV cache buys an agent: time to first token (TTFT) of a replayed
// coding-agent session against the real server over HTTP, with the official
// @anthropic-ai/sdk (tests/node_modules), with the cache and without it.
//
//   make bench-cache                       (full size: ~12K-token prefix; long on 2 cores)
//   make bench-cache BENCH_CACHE_ARGS="--prefix-tokens 2000 --turn-tokens 50-130"
//   node bench/cache.mjs [--model FILE] [--prefix-tokens N] [--turn-tokens MIN-MAX]
//        [--turns N] [--conversations N] [--max-tokens N] [--threads N]
//        [--restart-turns N] [--uncached-every K] [--scenarios 1,2,3,4] [--kvserve BIN]
//        [--work DIR] [--keep] [--save FILE.json] [--dry-run]
//   node bench/cache.mjs --report FILE.json     (the tables again, from a --save file)
//
// --dry-run builds the session and prints its sizes and the RAM budgets, nothing more.
//
// The model: without --model, a synthetic model of the real Qwen3-0.6B shape (Q8_0
// weights, real Qwen3 vocabulary, Qwen3-Coder chat template) is generated once with
// `kvserve mkmodel` into build/bench/. Its weights are random, so replies are noise,
// but every shape, byte and FLOP is the real model's.
//
// The session (seeded, the same bytes on every run): a system prompt and tool schemas
// of --prefix-tokens tokens (a coding agent's instructions and, at 12K, 28 tools with JSON
// schemas, MCP tools past those), then --turns turns per conversation: each adds a user
// message of --turn-tokens tokens (file reads, grep hits, build and test logs, diffs)
// and gets a streamed reply of --max-tokens tokens at temperature 0, which goes back
// into the conversation as the assistant's turn, as an agent's would. The system
// prompt and the last message carry cache_control breakpoints, as Claude Code's do.
// Side requests (a title/summary helper: another system prompt, a few hundred tokens)
// come between conversation turns.
//
// TTFT: from sending the request to the first content event of the stream (or the
// final message_delta when the reply is empty), measured by the client. Next to it, the
// server's CPU time over the same interval (/proc/PID/stat): on a machine others are
// using, wall times of requests minutes apart see different loads, while the CPU time a
// request costs hardly moves; on a quiet machine the two ratios agree.
//
// Without the cache: a second server with the disk tier off (--kv-disk 0) and a RAM
// pool of one context, sent the very same messages with a per-request nonce as the
// system prompt's first line. Block keys chain from the first block, so no block can
// match: the server computes every prompt token, exactly the work of a server with no
// cache (each response is checked: cache_read_input_tokens must be 0). Requests to the
// two servers alternate, so both see the same machine load.
//
// Scenarios:
//   1  one conversation: per turn, TTFT with the cache and without it (measured; with
//      --uncached-every K only every K-th turn and the last are measured without it, the
//      others taken from the line below and marked ~: recomputing is most of this
//      benchmark's time)
//   2  --conversations conversations round-robin, a side request after each round;
//      RAM budget holds all of them
//   3  the same on a fresh server and cache directory whose RAM budget holds one
//      conversation: the other conversations' blocks are evicted and come back from
//      the disk tier
//   4  a fresh server process on scenario 3's directory continues every conversation
//      (--restart-turns turns each): the first follow-up is served from disk
// In 2-4, "recompute" is the TTFT without the cache at the same prompt length, from the
// least-squares line through scenario 1's measurements (it needs scenario 1).
// RAM and disk hits are the server's own accounting (the cache_read_tokens_total
// counters of /metrics, read around each request; requests never overlap).
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
const flag = (name) => argv.includes(name);

const kvserveBuilt = opt("--kvserve", process.env.KVSERVE_BIN ?? path.join(sourceDir, "build/kvserve"));
let kvserve = kvserveBuilt; // main() runs a copy, so a rebuild during the run cannot mix two builds
const prefixTokens = Number(opt("--prefix-tokens", "12000"));
const [turnMin, turnMax] = opt("--turn-tokens", "300-800").split("-").map(Number);
const nTurns = Number(opt("--turns", "10"));
const nConvs = Number(opt("--conversations", "4"));
const maxTokens = Number(opt("--max-tokens", "16"));
const threads = opt("--threads", null);
const restartTurns = Number(opt("--restart-turns", "1"));
const uncachedEvery = Number(opt("--uncached-every", "1"));
const scenarios = new Set(opt("--scenarios", "1,2,3,4").split(",").map(Number));
const keep = flag("--keep");
const KV_BLOCK_TOKENS = 64; // the server's default block size

const require = createRequire(path.join(sourceDir, "tests/package.json"));
const { default: Anthropic } = await import(pathToFileURL(require.resolve("@anthropic-ai/sdk")).href);

// ---- deterministic text --------------------------------------------------------------------

function prng(seed) { // SplitMix32: a seeded stream so every run sends the same bytes
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return ((z ^ (z >>> 16)) >>> 0) / 2 ** 32;
  };
}

function textKit(seed) {
  const r = prng(seed);
  const pick = (a) => a[Math.floor(r() * a.length)];
  const int = (lo, hi) => lo + Math.floor(r() * (hi - lo + 1));
  const subjects = ["the agent", "you", "the user", "a tool call", "the test suite", "the build", "each edit",
    "the repository", "a command", "the working tree", "every answer", "the plan"];
  const verbs = ["must check", "should prefer", "never skips", "always reads", "can run", "keeps", "reports",
    "avoids", "verifies", "explains", "quotes", "updates"];
  const objects = ["the file before editing it", "existing conventions", "the smallest change that works",
    "failing tests first", "absolute paths", "the exact error message", "secrets and credentials",
    "the user's instructions", "commands that modify state", "a short summary at the end", "unrelated files",
    "the project's style guide", "long-running processes", "the output of every command"];
  const tails = ["", " when in doubt", " unless told otherwise", " before finishing", " in every turn",
    " so the user can follow", " without asking twice"];
  const sentence = () => {
    const s = `${pick(subjects)} ${pick(verbs)} ${pick(objects)}${pick(tails)}.`;
    return s[0].toUpperCase() + s.slice(1);
  };
  const prose = (n) => Array.from({ length: n }, sentence).join(" ");
  const dirs = ["src/kv", "src/engine", "src/server", "src/model", "tests/unit", "tools", "src/tokenizer"];
  const stems = ["kv_cache", "engine", "scheduler", "api_anthropic", "forward", "runner", "kv_disk", "sampler"];
  const idents = ["alloc_block", "evict_one", "n_tokens", "seq_push", "publish_ram", "key_of", "n_published",
    "backlog_len", "pending_writes", "ram_children", "last_use", "ks_err", "usage", "prompt", "tp"];
  const file = () => `${pick(dirs)}/${pick(stems)}.${pick(["c", "c", "h", "mjs"])}`;
  const cLine = () => pick([
    `    int32_t ${pick(idents)} = ${pick(idents)}(c, &s->${pick(idents)}[i]);`,
    `    if (${pick(idents)} < 0 || ${pick(idents)} >= ${int(2, 4096)})`,
    `        return KS_ERRF(err, KS_ERR_INVALID, "${pick(objects)}: %d", ${pick(idents)});`,
    `    /* ${sentence()} */`,
    `    for (int i = 0; i < ${pick(idents)}; i++) {`,
    "    }",
    `static ks_status ${pick(idents)}_${pick(["get", "put", "scan", "flush"])}(ks_kv_cache *c, int n) {`,
    `    memcpy(c->${pick(idents)} + (size_t)b * B, tokens + (size_t)i * B, (size_t)B * sizeof *tokens);`,
    "",
  ]);
  // One tool result of about `chars` characters: what an agent reads back.
  const toolOutput = (chars) => {
    const kind = int(0, 3);
    const lines = [];
    let n = 0;
    const push = (l) => { lines.push(l); n += l.length + 1; };
    if (kind === 0) { // Read: numbered file lines
      const f = file();
      push(`Contents of ${f}:`);
      for (let i = int(1, 400); n < chars; i++) push(`${String(i).padStart(6)}\t${cLine()}`);
    } else if (kind === 1) { // Grep
      push(`$ rg -n "${pick(idents)}" src tests`);
      while (n < chars) push(`${file()}:${int(1, 900)}:${cLine()}`);
    } else if (kind === 2) { // build and test log
      push("$ cmake --build build -j2 && ctest --test-dir build --output-on-failure");
      for (let p = 1; n < chars; p++)
        push(pick([`[${String(Math.min(99, p)).padStart(3)}%] Building C object CMakeFiles/kvserve_lib.dir/${file()}.o`,
          `${int(1, 60)}/${int(60, 90)} Test #${int(1, 90)}: test_${pick(stems)}_${pick(idents)} ....   Passed    ` +
          `${(r() * 3).toFixed(2)} sec`,
          `${file()}:${int(1, 900)}:${int(1, 80)}: warning: unused variable '${pick(idents)}' [-Wunused-variable]`]));
    } else { // diff
      const f = file();
      push(`$ git diff ${f}`);
      push(`--- a/${f}\n+++ b/${f}`);
      while (n < chars) {
        push(`@@ -${int(1, 800)},7 +${int(1, 800)},8 @@`);
        for (let k = 0; k < 7 && n < chars; k++) push(pick([" ", " ", "-", "+"]) + cLine());
      }
    }
    return lines.join("\n");
  };
  return { r, pick, int, prose, sentence, toolOutput, file, idents };
}

// The agent's tools: the usual coding-agent set, then MCP-style tools as needed.
const BASE_TOOLS = [
  ["Bash", "Executes a shell command in a persistent session with an optional timeout.",
    { command: "string", timeout: "integer", description: "string", run_in_background: "boolean" }, ["command"]],
  ["Read", "Reads a file from the local filesystem. Lines are numbered starting at 1.",
    { file_path: "string", offset: "integer", limit: "integer" }, ["file_path"]],
  ["Edit", "Performs exact string replacements in files.",
    { file_path: "string", old_string: "string", new_string: "string", replace_all: "boolean" },
    ["file_path", "old_string", "new_string"]],
  ["Write", "Writes a file to the local filesystem, overwriting it.", { file_path: "string", content: "string" },
    ["file_path", "content"]],
  ["Glob", "Fast file pattern matching that works with any codebase size.", { pattern: "string", path: "string" },
    ["pattern"]],
  ["Grep", "A powerful search tool built on ripgrep.",
    { pattern: "string", path: "string", glob: "string", output_mode: ["content", "files_with_matches", "count"],
      "-i": "boolean", "-n": "boolean", "-A": "integer", "-B": "integer", head_limit: "integer", multiline: "boolean" },
    ["pattern"]],
  ["TodoWrite", "Creates and manages a structured task list for the current session.",
    { todos: "array" }, ["todos"]],
  ["WebFetch", "Fetches content from a URL and processes it with a prompt.", { url: "string", prompt: "string" },
    ["url", "prompt"]],
  ["WebSearch", "Searches the web and returns results to inform responses.",
    { query: "string", allowed_domains: "array", blocked_domains: "array" }, ["query"]],
  ["Task", "Launches a new agent to handle complex, multi-step tasks autonomously.",
    { description: "string", prompt: "string", subagent_type: "string" }, ["description", "prompt", "subagent_type"]],
  ["NotebookEdit", "Replaces the contents of a specific cell in a Jupyter notebook.",
    { notebook_path: "string", cell_id: "string", new_source: "string", cell_type: ["code", "markdown"],
      edit_mode: ["replace", "insert", "delete"] }, ["notebook_path", "new_source"]],
  ["BashOutput", "Retrieves output from a running or completed background shell.",
    { bash_id: "string", filter: "string" }, ["bash_id"]],
  ["KillShell", "Kills a running background bash shell by its ID.", { shell_id: "string" }, ["shell_id"]],
  ["ExitPlanMode", "Prompts the user to exit plan mode and start coding.", { plan: "string" }, ["plan"]],
];
const MCP_SERVICES = ["github", "linear", "sentry", "postgres", "slack", "jira", "datadog", "notion"];
const MCP_ACTIONS = ["list_issues", "get_issue", "create_comment", "search_code", "get_pull_request",
  "list_commits", "query", "describe_table", "post_message", "get_events", "update_status", "list_projects"];

function toolSchema(kit, i) {
  let name, summary, params, required;
  if (i < BASE_TOOLS.length) {
    [name, summary, params, required] = BASE_TOOLS[i];
  } else {
    const k = i - BASE_TOOLS.length;
    const svc = MCP_SERVICES[k % MCP_SERVICES.length];
    const act = MCP_ACTIONS[Math.floor(k / MCP_SERVICES.length) % MCP_ACTIONS.length];
    name = `mcp__${svc}__${act}${k >= MCP_SERVICES.length * MCP_ACTIONS.length ? `_${k}` : ""}`;
    summary = `${act.replace(/_/g, " ")} through the ${svc} MCP server.`;
    params = { [`${svc}_id`]: "string", query: "string", limit: "integer", cursor: "string",
      include_archived: "boolean" };
    required = [`${svc}_id`];
  }
  const properties = {};
  for (const [p, t] of Object.entries(params))
    properties[p] = Array.isArray(t) ? { type: "string", enum: t, description: kit.prose(1) }
      : t === "array" ? { type: "array", items: { type: "string" }, description: kit.prose(1) }
        : { type: t, description: kit.prose(kit.int(1, 2)) };
  const usage = Array.from({ length: kit.int(2, 6) }, () => `- ${kit.prose(kit.int(1, 3))}`).join("\n");
  return { name, description: `${summary}\n\nUsage:\n${usage}`,
    input_schema: { type: "object", properties, required } };
}

// ---- servers --------------------------------------------------------------------------------

const live = new Set(); // servers still running: killed if the benchmark dies
process.on("exit", () => { for (const p of live) p.kill("SIGKILL"); });
process.on("SIGINT", () => process.exit(130));
process.on("SIGTERM", () => process.exit(143));

async function startServer(model, args, logFile) {
  const proc = spawn(kvserve, ["serve", "-m", model, "--port", "0", ...(threads ? ["-t", threads] : []), ...args],
    { stdio: ["ignore", "ignore", "pipe"] });
  live.add(proc);
  proc.on("exit", () => live.delete(proc));
  const log = fs.createWriteStream(logFile, { flags: "a" });
  let head = "";
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${head}`)), 120000);
    proc.stderr.on("data", (d) => {
      log.write(d);
      if (head.length < 65536) head += d;
      const m = head.match(/listening on http:\/\/[^:]+:(\d+)/);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    proc.on("exit", (code) => { clearTimeout(timer); reject(new Error(`server exited ${code}:\n${head}`)); });
  });
  const exited = new Promise((resolve) => proc.on("exit", (code) => resolve(code)));
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    pid: proc.pid,
    client: new Anthropic({ baseURL: url, apiKey: "bench", maxRetries: 0, timeout: 24 * 3600 * 1000 }),
    async metrics() {
      const text = await (await fetch(`${url}/metrics`)).text();
      const get = (re) => Number((text.match(re) ?? [])[1] ?? NaN);
      return { ram: get(/^kvserve_cache_read_tokens_total\{tier="ram"\} (\S+)/m),
        disk: get(/^kvserve_cache_read_tokens_total\{tier="disk"\} (\S+)/m),
        computed: get(/^kvserve_computed_tokens_total (\S+)/m), prompt: get(/^kvserve_prompt_tokens_total (\S+)/m) };
    },
    async stop() { // SIGTERM: graceful, flushes the disk tier
      if (proc.exitCode === null) proc.kill("SIGTERM");
      const code = await exited;
      log.end();
      if (code !== 0) throw new Error(`server exited ${code} (log: ${logFile})`);
    },
  };
}

const MODEL_NAME = "kvserve-bench"; // any name is served by the loaded model

// One streamed request: TTFT, the reply text and the server's accounting.
// CPU time the server process has used so far, ms (all its threads: /proc/PID/stat
// utime + stime, in clock ticks of 10 ms).
function cpuMs(pid) {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

async function send(server, body) {
  const before = await server.metrics();
  const c0 = cpuMs(server.pid);
  let cpu = null;
  const t0 = performance.now();
  const stream = await server.client.messages.create({ model: MODEL_NAME, max_tokens: maxTokens, temperature: 0,
    ...body, stream: true });
  let ttft = null, text = "", usage = null;
  for await (const ev of stream) {
    if (ttft === null && (ev.type === "content_block_start" || ev.type === "content_block_delta" ||
      ev.type === "message_delta")) {
      ttft = performance.now() - t0;
      cpu = cpuMs(server.pid) - c0;
    }
    if (ev.type === "content_block_delta" && ev.delta.type === "text_delta") text += ev.delta.text;
    if (ev.type === "message_delta") usage = ev.usage;
  }
  const total = performance.now() - t0;
  const after = await server.metrics();
  return { ttft, cpu, total, text, usage, prompt: after.prompt - before.prompt, ram: after.ram - before.ram,
    disk: after.disk - before.disk, computed: after.computed - before.computed };
}

// ---- the session ----------------------------------------------------------------------------

async function countTokens(server, body) {
  const r = await server.client.messages.countTokens({ model: MODEL_NAME, ...body });
  return r.input_tokens;
}

// System prompt + tools growing to about `target` tokens (counted by the server).
async function buildPrefix(server, target) {
  const kit = textKit(1);
  const paras = [`You are a coding agent working in the user's repository. ${kit.prose(4)}`];
  const tools = [];
  const body = () => ({ system: [{ type: "text", text: paras.join("\n\n"), cache_control: { type: "ephemeral" } }],
    tools, messages: [{ role: "user", content: "." }] });
  let n = await countTokens(server, body());
  let sys = n;
  while (n < target) {
    // about a quarter instructions, the rest tool schemas, as in real agents
    if (sys < 0.25 * target || tools.length >= 400) {
      paras.push(`# ${kit.pick(["Tone", "Safety", "Editing", "Testing", "Git", "Planning", "Tools"])}\n` +
        Array.from({ length: kit.int(3, 7) }, () => `- ${kit.prose(kit.int(1, 3))}`).join("\n"));
      const m = await countTokens(server, body());
      sys += m - n;
      n = m;
    } else {
      tools.push(toolSchema(kit, tools.length));
      n = await countTokens(server, body());
    }
  }
  return { system: body().system, tools, tokens: n };
}

// The user messages of one conversation (n of them), each --turn-tokens long.
async function buildTurns(server, seed, charsPerToken, n) {
  const kit = textKit(1000 + seed);
  const tasks = ["The cache tests fail after my last change; find out why and fix it.",
    "Add a --dry-run flag to the cache clear command and document it.",
    "Requests with long prompts time out under load; profile the prefill path.",
    "Refactor the disk writer so that a full disk turns writing off instead of failing requests.",
    "Review the eviction policy and make sure breakpoint blocks are kept longest."];
  const turns = [];
  for (let t = 0; t < n; t++) {
    const want = kit.int(turnMin, turnMax);
    const head = t === 0 ? `${tasks[seed % tasks.length]} ${kit.prose(2)}\n\n` : `${kit.prose(1)}\n\n`;
    let text = head + kit.toolOutput(Math.max(40, want * charsPerToken - head.length));
    const n = await countTokens(server, { messages: [{ role: "user", content: text }] });
    if (n > want * 1.15) text = text.slice(0, Math.floor(text.length * want / n));
    turns.push(text);
  }
  return turns;
}

async function charsPerToken(server) {
  const text = textKit(7).toolOutput(6000);
  const n = await countTokens(server, { messages: [{ role: "user", content: text }] });
  const n0 = await countTokens(server, { messages: [{ role: "user", content: "." }] });
  return text.length / (n - n0);
}

function sideRequest(kit, i) {
  return {
    system: "You generate a short title (at most 8 words) for a coding conversation. Answer with the title only.",
    messages: [{ role: "user", content: `Conversation ${i}: ${kit.prose(kit.int(8, 20))}` }],
    max_tokens: 8,
  };
}

// A conversation's request for its next turn; `replies` so far come back as the
// assistant's turns. The last message carries a breakpoint, as Claude Code's does.
function conversationBody(prefix, turns, replies, t) {
  const messages = [];
  for (let k = 0; k <= t; k++) {
    if (k > 0) messages.push({ role: "assistant", content: replies[k - 1] });
    messages.push({ role: "user", content: [{ type: "text", text: turns[k],
      ...(k === t ? { cache_control: { type: "ephemeral" } } : {}) }] });
  }
  return { system: prefix.system, tools: prefix.tools, messages };
}

function salted(body, nonce) {
  const [first, ...rest] = body.system;
  return { ...body, system: [{ ...first, text: `Session ${nonce}\n${first.text}` }, ...rest] };
}

const replyText = (r) => (r.text.trim() ? r.text : "(no output)");

// ---- numbers --------------------------------------------------------------------------------

const median = (xs) => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

// Uncached TTFT at n prompt tokens: the least-squares line through scenario 1's measured
// points (a line, not point to point: one measurement under a noisy neighbour should not
// bend the baseline of the requests near it).
function recomputeModel(points) {
  const k = points.length;
  if (k === 0) return () => NaN;
  const mn = points.reduce((s, p) => s + p.n, 0) / k, mm = points.reduce((s, p) => s + p.ms, 0) / k;
  const sxx = points.reduce((s, p) => s + (p.n - mn) ** 2, 0);
  if (k === 1 || sxx === 0) return (n) => mm * n / mn;
  const slope = points.reduce((s, p) => s + (p.n - mn) * (p.ms - mm), 0) / sxx;
  return (n) => mm + slope * (n - mn);
}

const fmt = (ms) => (!Number.isFinite(ms) ? "-" : ms >= 10000 ? `${(ms / 1000).toFixed(1)} s` : `${ms.toFixed(0)} ms`);
const fx = (x) => (Number.isFinite(x) ? `${x >= 100 ? x.toFixed(0) : x.toFixed(1)}x` : "-");
const pad = (s, n) => String(s).padStart(n);

function table(head, rows) {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  console.log(`| ${head.map((h, i) => pad(h, w[i])).join(" | ")} |`);
  console.log(`|${w.map((x) => "-".repeat(x + 1) + ":").join("|")}|`);
  for (const r of rows) console.log(`| ${r.map((c, i) => pad(c, w[i])).join(" | ")} |`);
}

// ---- main -----------------------------------------------------------------------------------

function kvBytesPerToken(model, kvType) {
  const info = JSON.parse(execFileSync(kvserve, ["info", "--json", model], { encoding: "utf8",
    maxBuffer: 1 << 28 }));
  const meta = info.metadata, arch = meta["general.architecture"];
  const nLayer = meta[`${arch}.block_count`], nHeadKv = meta[`${arch}.attention.head_count_kv`];
  const headDim = meta[`${arch}.attention.key_length`] ??
    meta[`${arch}.embedding_length`] / meta[`${arch}.attention.head_count`];
  const bytes = { f32: 4, f16: 2, q8_0: 34 / 32 }[kvType];
  return { perToken: 2 * nLayer * nHeadKv * headDim * bytes, nCtxTrain: meta[`${arch}.context_length`] };
}

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

async function main() {
  const model = opt("--model", null) ?? defaultModel();
  const kvType = opt("--kv-type", "f16");
  const work = opt("--work", null) ?? fs.mkdtempSync(path.join(os.tmpdir(), "kvserve-bench-cache-"));
  fs.mkdirSync(work, { recursive: true });
  kvserve = path.join(work, "kvserve");
  fs.copyFileSync(kvserveBuilt, kvserve);
  fs.chmodSync(kvserve, 0o755);
  const { perToken, nCtxTrain } = kvBytesPerToken(model, kvType);
  const blockBytes = perToken * KV_BLOCK_TOKENS;

  const ramBytes = (tokens) => String(Math.ceil(tokens / KV_BLOCK_TOKENS + 8) * blockBytes);
  const results = { config: { model, prefixTokens, turnTokens: [turnMin, turnMax], nTurns, nConvs, maxTokens, kvType,
    threads, cpus: os.cpus().length, date: new Date().toISOString() }, requests: [] };
  const record = (scenario, conv, turn, r, extra = {}) => {
    const row = { scenario, conv, turn, ttft: r.ttft, cpu: r.cpu, total: r.total, prompt: r.prompt, ram: r.ram, disk: r.disk,
      computed: r.computed, ...extra };
    results.requests.push(row);
    return row;
  };

  // The session is built against a server of the model (its count_tokens endpoint).
  const roughCtx = Math.min(nCtxTrain, Math.ceil((prefixTokens * 1.2 + (nTurns + restartTurns) * (turnMax * 1.2 +
    maxTokens * 2 + 64) + 1024) / 1024) * 1024);
  const counter = await startServer(model, ["-c", String(roughCtx), "--kv-ram", ramBytes(1024), "--kv-disk", "0"],
    path.join(work, "server0.log"));
  const prefix = await buildPrefix(counter, prefixTokens);
  const cpt = await charsPerToken(counter);
  const convTurns = [];
  for (let c = 0; c < Math.max(1, nConvs); c++)
    convTurns.push(await buildTurns(counter, c, cpt, nTurns + restartTurns));
  const turnLens = [];
  for (const t of convTurns[0].slice(0, nTurns))
    turnLens.push(await countTokens(counter, { messages: [{ role: "user", content: t }] }));
  // The longest conversation, with replies of maxTokens short words: it sets the context
  // and the RAM budget that holds "one conversation".
  const fakeReplies = Array(nTurns + restartTurns).fill(" ok".repeat(maxTokens));
  let convMax = 0;
  for (const turns of convTurns)
    convMax = Math.max(convMax, await countTokens(counter,
      conversationBody(prefix, turns, fakeReplies, nTurns + restartTurns - 1)) + maxTokens);
  await counter.stop();
  const ctx = Math.min(nCtxTrain, Math.ceil((convMax + 256) / 256) * 256);
  const ramOne = ramBytes(convMax * 1.1);
  const ramAll = ramBytes((prefix.tokens + nConvs * (convMax - prefix.tokens) + (nTurns + 2) * 300) * 1.25);
  const common = ["-c", String(ctx), "--kv-type", kvType];
  Object.assign(results.config, { ctx, convMax, ramOne: Number(ramOne), ramAll: Number(ramAll),
    prefix: prefix.tokens, tools: prefix.tools.length });
  console.log(`model ${path.basename(model)}; KV ${kvType}, ${(perToken / 1024).toFixed(0)} KiB/token; ` +
    `${os.cpus().length} CPUs, threads ${threads ?? "default"}; work ${work}`);
  console.log(`prefix: ${prefix.tokens} tokens (system prompt + ${prefix.tools.length} tools); turns: ` +
    `${Math.min(...turnLens)}-${Math.max(...turnLens)} tokens; replies: ${maxTokens} tokens at temperature 0; ` +
    `longest conversation ${convMax} tokens`);
  console.log(`KV RAM budgets: all conversations ${(ramAll / 2 ** 20).toFixed(1)} MiB, one conversation ` +
    `${(ramOne / 2 ** 20).toFixed(1)} MiB`);
  console.log("");
  if (flag("--dry-run")) {
    if (!keep) fs.rmSync(work, { recursive: true, force: true });
    return;
  }

  // Scenario 1's servers: with the cache (RAM for everything, disk tier on) and without.
  const cached = await startServer(model, [...common, "--kv-ram", ramAll, "--kv-dir", path.join(work, "kv1")],
    path.join(work, "server1.log"));
  if (scenarios.has(1)) {
    const uncached = await startServer(model, [...common, "--kv-ram", ramOne, "--kv-disk", "0"],
      path.join(work, "server1-uncached.log"));
    const replies = [];
    for (let t = 0; t < nTurns; t++) {
      const body = conversationBody(prefix, convTurns[0], replies, t);
      const a = await send(cached, body);
      replies.push(replyText(a));
      if (t % uncachedEvery && t !== nTurns - 1) {
        record(1, 0, t + 1, a);
        continue;
      }
      const b = await send(uncached, salted(body, `${process.pid}-${t}-${Date.now()}`));
      if (b.usage.cache_read_input_tokens !== 0 || b.ram + b.disk !== 0)
        throw new Error(`the uncached server read ${b.ram + b.disk} tokens from its cache`);
      record(1, 0, t + 1, a, { uncached: b.ttft, uncachedCpu: b.cpu, uncachedPrompt: b.prompt });
      process.stderr.write(`scenario 1 turn ${t + 1}: ${fmt(a.ttft)} vs ${fmt(b.ttft)}\n`);
    }
    await uncached.stop();
  }
  await cached.stop();

  // Scenarios 2-4: conversations round-robin with side requests.
  const sideKit = textKit(99);
  let sides = 0;
  const convReplies = convTurns.map(() => []);
  const runRound = async (server, scenario, t, withSide) => {
    for (let c = 0; c < nConvs; c++) {
      const body = conversationBody(prefix, convTurns[c], convReplies[c], t);
      const r = await send(server, body);
      convReplies[c].push(replyText(r));
      record(scenario, c, t + 1, r);
      process.stderr.write(`scenario ${scenario} conversation ${c + 1} turn ${t + 1}: ${fmt(r.ttft)} ` +
        `(ram ${r.ram}, disk ${r.disk}, computed ${r.computed})\n`);
    }
    if (withSide) record(scenario, -1, t + 1, await send(server, sideRequest(sideKit, sides++)));
  };
  if (scenarios.has(2)) {
    const server = await startServer(model, [...common, "--kv-ram", ramAll, "--kv-dir", path.join(work, "kv2")],
      path.join(work, "server2.log"));
    for (let t = 0; t < nTurns; t++) await runRound(server, 2, t, true);
    await server.stop();
  }
  if (scenarios.has(3) || scenarios.has(4)) {
    for (const r of convReplies) r.length = 0;
    const dir = path.join(work, "kv3");
    const server = await startServer(model, [...common, "--kv-ram", ramOne, "--kv-dir", dir],
      path.join(work, "server3.log"));
    for (let t = 0; t < nTurns; t++) await runRound(server, 3, t, true);
    await server.stop();
    if (scenarios.has(4)) {
      const again = await startServer(model, [...common, "--kv-ram", ramOne, "--kv-dir", dir],
        path.join(work, "server4.log"));
      for (let t = nTurns; t < nTurns + restartTurns; t++) await runRound(again, 4, t, false);
      await again.stop();
    }
  }
  if (!scenarios.has(3)) results.requests = results.requests.filter((r) => r.scenario !== 3);

  const save = opt("--save", null);
  if (save) fs.writeFileSync(save, JSON.stringify(results, null, 1));
  if (!keep) fs.rmSync(work, { recursive: true, force: true });
  printReport(results);
}

// ---- the report -----------------------------------------------------------------------------

function printReport(results) {
  const { nTurns, nConvs } = results.config;
  const reqs = results.requests;
  const sum = (rs, k) => rs.reduce((a, r) => a + r[k], 0);
  const s1 = reqs.filter((r) => r.scenario === 1);
  const measured = s1.filter((r) => r.uncached !== undefined);
  const est = recomputeModel(measured.map((r) => ({ n: r.uncachedPrompt, ms: r.uncached })));
  const estCpu = recomputeModel(measured.map((r) => ({ n: r.uncachedPrompt, ms: r.uncachedCpu })));
  const base = (r) => r.uncached ?? est(r.prompt); // TTFT without the cache
  const ratio = (r) => base(r) / r.ttft;
  // the same in server CPU time: what the work costs, whatever else the machine runs
  const cpuRatio = (r) => (r.uncachedCpu ?? estCpu(r.prompt)) / r.cpu;

  if (s1.length) {
    console.log("Scenario 1: one conversation, TTFT with the cache and without it (~: from the fitted line, " +
      "--uncached-every)");
    console.log("");
    table(["turn", "prompt tok", "computed", "RAM hit", "disk hit", "TTFT cached", "TTFT uncached", "ratio",
      "CPU cached", "CPU uncached", "CPU ratio"],
    s1.map((r) => [r.turn, r.prompt, r.computed, r.ram, r.disk, fmt(r.ttft),
      r.uncached === undefined ? `~${fmt(base(r))}` : fmt(r.uncached), fx(ratio(r)), fmt(r.cpu),
      r.uncached === undefined ? `~${fmt(estCpu(r.prompt))}` : fmt(r.uncachedCpu), fx(cpuRatio(r))]));
    console.log("");
  }
  const titles = {
    2: `${nConvs} conversations round-robin + side requests, RAM holds all of them`,
    3: `${nConvs} conversations round-robin + side requests, RAM holds one: the disk tier serves the rest`,
    4: "a fresh server process on scenario 3's cache directory continues every conversation",
  };
  for (const scenario of [2, 3, 4]) {
    const rows = reqs.filter((r) => r.scenario === scenario && r.conv >= 0);
    if (!rows.length) continue;
    console.log(`Scenario ${scenario}: ${titles[scenario]}`);
    console.log("");
    const byTurn = new Map();
    for (const r of rows) byTurn.set(r.turn, [...(byTurn.get(r.turn) ?? []), r]);
    table(["turn", "requests", "prompt tok (med)", "computed", "RAM hit", "disk hit", "TTFT (med)",
      "recompute (med)", "ratio (med)", "CPU ratio (med)"],
    [...byTurn].map(([t, rs]) => [t, rs.length, Math.round(median(rs.map((r) => r.prompt))), sum(rs, "computed"),
      sum(rs, "ram"), sum(rs, "disk"), fmt(median(rs.map((r) => r.ttft))), fmt(median(rs.map(base))),
      fx(median(rs.map(ratio))), fx(median(rs.map(cpuRatio)))]));
    const side = reqs.filter((r) => r.scenario === scenario && r.conv < 0);
    if (side.length)
      console.log(`\nside requests: ${side.length}, median TTFT ${fmt(median(side.map((r) => r.ttft)))}, ` +
        `${sum(side, "ram") + sum(side, "disk")} of ${sum(side, "prompt")} prompt tokens cached`);
    console.log("");
  }

  // Follow-ups: every turn after a conversation's first (all of scenario 4's).
  const followUps = (s) => reqs.filter((r) => r.scenario === s && r.conv >= 0 && (s === 4 || r.turn > 1));
  console.log("Summary (follow-up turns; recompute = TTFT without the cache at the same prompt length)");
  console.log("");
  table(["scenario", "requests", "TTFT (med)", "recompute (med)", "ratio (med)", "ratio (worst)", "CPU ratio (med)",
    "RAM hit tok", "disk hit tok", "computed tok"],
  [1, 2, 3, 4].filter((s) => followUps(s).length).map((s) => {
    const rs = followUps(s);
    return [s, rs.length, fmt(median(rs.map((r) => r.ttft))), fmt(median(rs.map(base))), fx(median(rs.map(ratio))),
      fx(Math.min(...rs.map(ratio))), fx(median(rs.map(cpuRatio))), sum(rs, "ram"), sum(rs, "disk"),
      sum(rs, "computed")];
  }));
  console.log("");
  const target = (label, rs, want) => {
    if (!rs.length) return;
    const m = median(rs.map(ratio)), w = Math.min(...rs.map(ratio));
    if (!Number.isFinite(m)) {
      console.log(`n/a     ${label}: needs scenario 1's measurements without the cache`);
      return;
    }
    const c = median(rs.map(cpuRatio));
    console.log(`${m >= want ? "met    " : "MISSED "} ${label}: median ${fx(m)}, worst ${fx(w)} (target >= ${want}x)` +
      `; in server CPU time ${fx(c)}`);
  };
  target("follow-up TTFT vs recomputing (scenario 1)", followUps(1), 20);
  target("TTFT of requests with disk hits vs recomputing (scenarios 3, 4)",
    reqs.filter((r) => (r.scenario === 3 || r.scenario === 4) && r.conv >= 0 && r.disk > 0), 10);
  target("first follow-up after a restart vs recomputing (scenario 4, conversation 1)",
    reqs.filter((r) => r.scenario === 4 && r.turn === nTurns + 1 && r.conv === 0), 10);
}

if (opt("--report", null)) printReport(JSON.parse(fs.readFileSync(opt("--report", null), "utf8")));
else
main().catch((e) => { console.error(e); process.exit(1); });
