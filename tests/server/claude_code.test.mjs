// claude_code.test.mjs — the real Claude Code CLI (pinned @anthropic-ai/claude-code, its
// native linux-x64 binary) headless against the real server with a generated
// Qwen3-Coder-shaped model (qwen3moe, real Qwen3 vocabulary and Qwen3-Coder template).
//
//   1. `claude -p` then `claude -p --continue`: both succeed; the second request reads at
//      least 90% of its prompt from the cache.
//   2. A tool round trip: teacher forcing makes the model emit a Read call in Qwen3-Coder
//      XML; Claude Code runs the tool and sends the result; the follow-up request is served
//      with the cache intact across the tool call.
// The model's words come from teacher forcing (--test-forced-outputs): a random-weight
// model would babble, and Claude Code would treat that as a failed turn.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { sourceDir } from "../node/paths.mjs";
import { makeModel, startServer, tempDir } from "./harness.mjs";

const claudeBin = path.join(sourceDir, "tests/node_modules/@anthropic-ai/claude-code-linux-x64/claude");
const KEY = "sk-kvserve-e2e";
let dir, home, work, srv;

const forced = [
  "Hello from kvserve.",                       // claude -p
  "Still here, continuing.",                   // claude -p --continue
  null,                                        // the Read call, filled in before()
  "The file says: kvserve round trip works.",  // after the tool result
];

before(async () => {
  dir = tempDir("kvserve-claude-");
  home = path.join(dir, "home");
  work = path.join(dir, "work");
  fs.mkdirSync(home);
  fs.mkdirSync(work);
  fs.writeFileSync(path.join(work, "hello.txt"), "kvserve round trip works\n");
  forced[2] = `I'll read the file.\n<tool_call>\n<function=Read>\n<parameter=file_path>\n${path.join(work, "hello.txt")}\n</parameter>\n</function>\n</tool_call>`;
  const forcedFile = path.join(dir, "forced.jsonl");
  fs.writeFileSync(forcedFile, forced.map((t) => JSON.stringify(t)).join("\n") + "\n");
  const model = makeModel(dir);
  srv = await startServer(model, ["--api-key", KEY, "--kv-dir", path.join(dir, "kv"), "--test-forced-outputs", forcedFile]);
});

after(async () => {
  await srv?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Runs claude headless (asynchronously: the server's log keeps flowing meanwhile). */
async function claude(args) {
  const proc = spawn(claudeBin, args, {
    cwd: work, stdio: ["ignore", "pipe", "pipe"],
    env: {
      PATH: process.env.PATH, HOME: home, ANTHROPIC_BASE_URL: srv.url, ANTHROPIC_API_KEY: KEY,
      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1", DISABLE_AUTOUPDATER: "1", CI: "1",
    },
  });
  let stdout = "", stderr = "";
  proc.stdout.on("data", (d) => { stdout += d; });
  proc.stderr.on("data", (d) => { stderr += d; });
  const timer = setTimeout(() => proc.kill("SIGKILL"), 900000);
  const status = await new Promise((resolve) => proc.on("close", resolve));
  clearTimeout(timer);
  await new Promise((r) => setTimeout(r, 200)); // let the server's last log lines arrive
  let out;
  try { out = JSON.parse(stdout); } catch { assert.fail(`claude printed no JSON (exit ${status}):\n${stdout}\n${stderr}`); }
  return { status, out, stderr };
}

/** The access log lines of /v1/messages requests so far: {prompt, cached, computed}. */
function served() {
  return [...srv.log().matchAll(/POST \/v1\/messages 200 .*?prompt=(\d+) cached_ram=(\d+) cached_disk=(\d+) computed=(\d+)/g)]
    .map((m) => ({ prompt: +m[1], cached: +m[2] + +m[3], computed: +m[4] }));
}

test("claude -p, then claude -p --continue served from the cache", async () => {
  const first = await claude(["-p", "Say hello.", "--output-format", "json"]);
  assert.equal(first.out.is_error, false, JSON.stringify(first.out).slice(0, 2000));
  assert.equal(first.out.result, forced[0]);
  const n1 = served().length;
  assert.ok(n1 >= 1);

  const second = await claude(["-p", "--continue", "And now?", "--output-format", "json"]);
  assert.equal(second.out.is_error, false, JSON.stringify(second.out).slice(0, 2000));
  assert.equal(second.out.result, forced[1]);
  const u = second.out.usage;
  const input = u.input_tokens + u.cache_read_input_tokens + u.cache_creation_input_tokens;
  assert.ok(u.cache_read_input_tokens >= 0.9 * input,
    `--continue read ${u.cache_read_input_tokens} of ${input} input tokens from cache`);
  const last = served().at(-1);
  assert.ok(last.cached >= 0.9 * last.prompt, `server: ${last.cached} of ${last.prompt} prompt tokens cached`);
});

test("a Read tool round trip keeps the cache across the tool call", async () => {
  const before = served().length;
  const r = await claude(["-p", "What does hello.txt say?", "--output-format", "json", "--allowedTools", "Read"]);
  assert.equal(r.out.is_error, false, JSON.stringify(r.out).slice(0, 2000));
  assert.equal(r.out.result, forced[3]);
  const reqs = served().slice(before);
  assert.ok(reqs.length >= 2, `two model requests (call, then result): ${JSON.stringify(reqs)}`);
  const afterTool = reqs.at(-1);
  // everything up to the tool result was cached by the request that made the call
  assert.ok(afterTool.computed <= 0.1 * afterTool.prompt + 64,
    `after the tool call: ${afterTool.computed} of ${afterTool.prompt} prompt tokens computed`);
});
