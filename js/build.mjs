// Minifies src/veil.js into the file the Python package ships and serves.
// Usage: node build.mjs [outfile]   (default: ../sdk/veil/static/veil.js)
//
// The banner records a hash of the source, so a test can tell a stale build from a
// fresh one without node; the build itself is deterministic, so a test with esbuild
// installed also rebuilds into a temporary file and compares bytes.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const here = (path) => fileURLToPath(new URL(path, import.meta.url));
const source = here("src/veil.js");
const outfile = process.argv[2] ?? here("../sdk/veil/static/veil.js");
const sha = createHash("sha256").update(readFileSync(source)).digest("hex");

await build({
  entryPoints: [source],
  outfile,
  minify: true,
  // Browsers with sendBeacon and fetch keepalive; no lowering bloat for older ones.
  target: "es2019",
  legalComments: "none",
  // 16 hex digits are plenty to detect a stale build; the full hash would cost bytes.
  banner: { js: `/*! veil.js src-sha256:${sha.slice(0, 16)} */` },
  logLevel: "warning",
});
