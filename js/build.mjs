// Minifies src/veil.js into the file the Python package ships and serves.
// Usage: node build.mjs [outfile]   (default: ../sdk/veil/static/veil.js)
//
// The banner records a hash of the source, so a test can tell a stale build from a
// fresh one without node; the build itself is deterministic, so a test with esbuild
// installed also rebuilds into a temporary file and compares bytes.
//
// Beside the outfile it writes outfile.gz and outfile.br, the same bytes precompressed at
// maximum quality, so the server picks one per request's Accept-Encoding and never
// compresses on the request path.
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { brotliCompressSync, constants, gzipSync } from "node:zlib";
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

const built = readFileSync(outfile);
// zlib's gzip header carries no name and mtime 0: the same input gives the same bytes.
writeFileSync(`${outfile}.gz`, gzipSync(built, { level: 9 }));
writeFileSync(
  `${outfile}.br`,
  brotliCompressSync(built, {
    params: {
      [constants.BROTLI_PARAM_MODE]: constants.BROTLI_MODE_TEXT,
      [constants.BROTLI_PARAM_QUALITY]: constants.BROTLI_MAX_QUALITY,
      [constants.BROTLI_PARAM_SIZE_HINT]: built.length,
    },
  }),
);
