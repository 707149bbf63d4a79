// paths.mjs — where the node tests find the built binary, the fixtures and the peer.
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
export const sourceDir = process.env.KS_SOURCE_DIR ?? path.resolve(here, "../..");
export const binaryDir = process.env.KS_BINARY_DIR ?? path.join(sourceDir, "build");
export const kvserveBin = process.env.KVSERVE_BIN ?? path.join(binaryDir, "kvserve");
export const fixturesDir = process.env.KS_FIXTURES_DIR ?? path.resolve(sourceDir, "../shared/fixtures");
export const peerGgmlBase = path.join(sourceDir,
  "tests/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/libggml-base.so");
export const peerGgufList = path.join(binaryDir, "tests/ggml_gguf_list");
