// Minifies src/veil.js into the file the Python package ships and serves, and bundles the
// dashboard's chart library (chartist, pinned in package.json) beside it.
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
import { dirname, join } from "node:path";
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

// The dashboard's chart (sdk/veil/static/dashboard.js imports ./chartist.js): chartist's
// line chart only, as one ES module, and its stylesheet, both minified, beside the outfile.
// Deterministic too: tests/test_dashboard_browser.py rebuilds them and compares bytes.
const chartist = JSON.parse(readFileSync(here("node_modules/chartist/package.json")));
const licence = `/*! chartist ${chartist.version} (MIT OR WTFPL), line chart only; built by js/build.mjs */`;
await build({
  stdin: { contents: 'export { LineChart } from "chartist";', resolveDir: here("."), loader: "js" },
  bundle: true,
  format: "esm",
  outfile: join(dirname(outfile), "chartist.js"),
  minify: true,
  target: "es2019",
  legalComments: "none",
  banner: { js: licence },
  logLevel: "warning",
});
await build({
  entryPoints: [here("node_modules/chartist/dist/index.css")],
  outfile: join(dirname(outfile), "chartist.css"),
  minify: true,
  legalComments: "none",
  banner: { css: licence },
  logLevel: "warning",
});
