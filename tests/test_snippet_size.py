"""The shipped snippet: within its size budget and built from the current source, and its
precompressed copies (veil.js.gz, veil.js.br, served by Accept-Encoding) are its compression."""

import gzip
import hashlib
import shutil
import subprocess
from pathlib import Path

import brotli
import pytest

from browser_support import ROOT, SNIPPET, require

JS = ROOT / "js"
SOURCE = JS / "src" / "veil.js"
ESBUILD = JS / "node_modules" / ".bin" / "esbuild"
BUDGET = 1000  # bytes, gzip -9; the goal is 800
REBUILD = "rebuild it: cd js && npm ci && npm run build"
DECOMPRESS = {"gz": gzip.decompress, "br": brotli.decompress}


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
    for suffix, decompress in DECOMPRESS.items():
        rebuilt = out.with_name(f"veil.js.{suffix}")
        assert decompress(rebuilt.read_bytes()) == out.read_bytes(), f"build's .{suffix} is stale"


@pytest.mark.parametrize("suffix", DECOMPRESS)
def test_precompressed_copies_are_the_shipped_file(suffix: str):
    copy = SNIPPET.with_name(f"veil.js.{suffix}")
    assert copy.exists(), f"veil.js.{suffix} missing; {REBUILD}"
    assert DECOMPRESS[suffix](copy.read_bytes()) == SNIPPET.read_bytes(), (
        f"veil.js.{suffix} is not the shipped veil.js compressed; {REBUILD}"
    )
    size = copy.stat().st_size
    print(f"veil.js: {SNIPPET.stat().st_size} B; veil.js.{suffix}: {size} B")  # -s shows it
    assert size <= BUDGET, f"veil.js.{suffix} is {size} B, budget {BUDGET} B"
