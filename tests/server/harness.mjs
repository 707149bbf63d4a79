// harness.mjs — starts the real kvserve binary on a free loopback port with a generated
// model, for the server tests. Models are generated once per test file into a temp dir.
import { spawn, execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { kvserveBin, fixturesDir } from "../node/paths.mjs";

export const qwen3Vocab = path.join(fixturesDir, "tokenizer/vocab-qwen3.gguf");
export const templates = {
  coder: path.join(fixturesDir, "templates/Qwen3-Coder.jinja"),
  qwen3: path.join(fixturesDir, "templates/Qwen-Qwen3-0.6B.jinja"),
};

export function tempDir(prefix = "kvserve-test-") {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** A small Qwen3-Coder-shaped model (qwen3moe, real Qwen3 vocabulary and template). */
export function makeModel(dir, { preset = "tiny-moe", template = templates.coder, name = "model.gguf", extra = [] } = {}) {
  const file = path.join(dir, name);
  execFileSync(kvserveBin, ["mkmodel", "--preset", preset, "--vocab-from", qwen3Vocab, "--template-file", template,
    "--n-ctx", "65536", "-q", "-o", file, ...extra], { stdio: ["ignore", "ignore", "inherit"] });
  return file;
}

/** Starts `kvserve serve`; resolves once it listens. Returns {url, port, proc, log(), stop()}. */
export async function startServer(model, args = [], env = {}) {
  const proc = spawn(kvserveBin, ["serve", "-m", model, "--port", "0", "-c", "32768", ...args], {
    env: { ...process.env, ...env }, stdio: ["ignore", "ignore", "pipe"],
  });
  let log = "";
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("server did not start:\n" + log)), 60000);
    proc.stderr.on("data", (d) => {
      log += d;
      const m = log.match(/listening on http:\/\/[^:]+:(\d+)/);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    proc.on("exit", (code) => { clearTimeout(timer); reject(new Error(`server exited ${code}:\n${log}`)); });
  });
  const exited = new Promise((resolve) => proc.on("exit", (code, sig) => resolve({ code, sig })));
  return {
    port, proc, url: `http://127.0.0.1:${port}`,
    log: () => log,
    async stop(signal = "SIGTERM") {
      if (proc.exitCode !== null) return { code: proc.exitCode };
      proc.kill(signal);
      return exited;
    },
  };
}

/** Reads an SSE response into [{event, data}] (data parsed as JSON when it is). */
export async function readSSE(response) {
  const text = await response.text();
  const events = [];
  for (const chunk of text.split("\n\n")) {
    if (!chunk.trim()) continue;
    let event = null, data = "";
    for (const line of chunk.split("\n")) {
      if (line.startsWith("event: ")) event = line.slice(7);
      else if (line.startsWith("data: ")) data += line.slice(6);
      else if (line.startsWith(":")) event = event ?? "comment";
    }
    let parsed = data;
    try { parsed = JSON.parse(data); } catch { /* [DONE] and comments */ }
    events.push({ event, data: parsed });
  }
  return events;
}
