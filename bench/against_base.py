"""Run one benchmark from this tree and from an earlier commit, alternately, in one run.

Each side runs the benchmark script of its own tree (this tree's when REF has none), with
its own `veil` on PYTHONPATH (a git worktree of REF is made under /tmp for the base), in
turns whose order alternates (base, new, new, base, ...) so both see the same machine state
and neither always goes first. Every table row the script prints (a name, then figures) is
collected; the report gives each row's median first figure per side and new ÷ base.

    .venv/bin/python bench/against_base.py REF middleware_overhead.py [turns] [-- args...]
    .venv/bin/python bench/against_base.py 0637979 pipeline_throughput.py 3
"""

import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROW = re.compile(r"^(\S.*?|\s+\S.*?)\s{2,}([\d,]+(?:\.\d+)?)\b")


def worktree(ref: str) -> Path:
    path = Path("/tmp") / f"veil-base-{ref}"
    if not path.exists():
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), ref],
            check=True,
            capture_output=True,
        )
    return path


def run(tree: Path, script: str, args: list[str]) -> dict[str, float]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(str(tree / d) for d in ("sdk", "collector", "bench")),
    }
    # a benchmark the base predates runs from this tree, against the base's veil
    path = tree / "bench" / script
    out = subprocess.run(
        [sys.executable, str(path if path.exists() else ROOT / "bench" / script), *args],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = {}
    for line in out.splitlines():
        if m := ROW.match(line):
            rows.setdefault(m[1].strip(), float(m[2].replace(",", "")))
    return rows


def main() -> None:
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    ref, script = argv[0], argv[1]
    turns = int(argv[2]) if len(argv) > 2 else 3
    sides = {"base": worktree(ref), "new": ROOT}
    results: dict[str, list[dict[str, float]]] = {"base": [], "new": []}
    for turn in range(turns):
        for side in ("base", "new") if turn % 2 == 0 else ("new", "base"):
            tree = sides[side]
            results[side].append(run(tree, script, extra))
            print(f"turn {turn + 1}/{turns}: {side} done", file=sys.stderr)
    names = [n for n in results["new"][0] if all(n in r for rs in results.values() for r in rs)]
    print(
        f"{script}: {turns} alternating turns per side; base = {ref}, new = working tree; "
        "medians of each row's first figure\n"
    )
    print(f"{'row':<30}{'base':>14}{'new':>14}{'new / base':>12}")
    for name in names:
        base = statistics.median(r[name] for r in results["base"])
        new = statistics.median(r[name] for r in results["new"])
        ratio = f"{new / base:>12.3f}" if base else f"{'-':>12}"
        print(f"{name:<30}{base:>14,.2f}{new:>14,.2f}{ratio}")


if __name__ == "__main__":
    main()
