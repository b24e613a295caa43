"""The shipped snippet: within its size budget and built from the current source."""

import gzip
import hashlib
import shutil
import subprocess
from pathlib import Path

from browser_support import ROOT, SNIPPET, require

JS = ROOT / "js"
SOURCE = JS / "src" / "veil.js"
ESBUILD = JS / "node_modules" / ".bin" / "esbuild"
BUDGET = 1000  # bytes, gzip -9; the goal is 800
REBUILD = "rebuild it: cd js && npm ci && npm run build"


def test_gzipped_size_within_budget():
    # mtime=0 and no file name: the same bytes as `gzip -9 -n`.
    size = len(gzip.compress(SNIPPET.read_bytes(), compresslevel=9, mtime=0))
    assert size <= BUDGET, f"veil.js is {size} B gzipped, budget {BUDGET} B"


def test_built_file_names_the_current_source():
    sha = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]
    header = SNIPPET.read_text().splitlines()[0]
    assert header == f"/*! veil.js src-sha256:{sha} */", f"stale build; {REBUILD}"


def test_build_reproduces_the_shipped_file(tmp_path: Path):
    require(
        ESBUILD.exists() and shutil.which("node") is not None,
        "esbuild not installed: cd js && npm ci",
    )
    out = tmp_path / "veil.js"
    subprocess.run(["node", "build.mjs", str(out)], cwd=JS, check=True)
    assert out.read_bytes() == SNIPPET.read_bytes(), f"shipped veil.js differs; {REBUILD}"
