"""Before and after issue 9's rewrite, the same captured stream stores the same rows, counts
the same drops and records the same ledger (query answers, compared too while issue 9 was
built, changed on purpose with the analytics issue's threshold: see equivalence_driver).

"Before" is commit 95bfa47, the last one before the rewrite, extracted with `git archive`
(no worktree to leave behind if the test is killed; needs a clone that has the commit). The
driver (tests/equivalence_driver.py) runs once on each tree, each in its own process with
that tree's `veil` first on PYTHONPATH: the first run makes the keystore, the subjects'
cookies, the GeoIP database and the stream; the second gets a copy of that keystore, so both
derive the same pseudonyms. Rows are compared as multisets without `id`: subject rows get
random event ids and are shuffled by design.
"""

import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DRIVER = Path(__file__).resolve().parent / "equivalence_driver.py"
BEFORE = "95bfa47"
MASTER_KEY = "3c" * 32
SHOWN = 5  # differing rows shown per side


def before_tree(into: Path) -> Path:
    known = subprocess.run(
        ["git", "-C", str(ROOT), "cat-file", "-e", f"{BEFORE}^{{commit}}"], timeout=60
    )
    assert known.returncode == 0, f"needs a clone that has {BEFORE} (git fetch --unshallow)"
    archive = into / "before.tar"
    with archive.open("wb") as out:
        subprocess.run(
            ["git", "-C", str(ROOT), "archive", "--format=tar", BEFORE, "sdk", "collector"],
            stdout=out,
            check=True,
            timeout=60,
        )
    tree = into / "before"
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    archive.unlink()
    return tree


def run(tree: Path, shared: Path, data: Path, out: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k not in ("VEIL_CONFIG", "VEIL_DISABLED")}
    env["VEIL_MASTER_KEY"] = MASTER_KEY
    env["PYTHONPATH"] = os.pathsep.join([str(tree / "sdk"), str(tree / "collector")])
    done = subprocess.run(
        [sys.executable, str(DRIVER), str(shared), str(data), str(out), str(tree)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"driver failed on {tree}:\n{done.stderr[-4000:]}"
    return json.loads(out.read_text())


def same_multiset(name: str, before: list[Any], after: list[Any]) -> None:
    encoded = [[json.dumps(r, sort_keys=True) for r in rows] for rows in (before, after)]
    lost = Counter(encoded[0]) - Counter(encoded[1])
    new = Counter(encoded[1]) - Counter(encoded[0])
    assert not lost and not new, (
        f"{name}: {sum(lost.values())} row(s) only before, {sum(new.values())} only after "
        f"(of {len(before)} / {len(after)}).\nonly before:\n  "
        + "\n  ".join(sorted(lost)[:SHOWN])
        + "\nonly after:\n  "
        + "\n  ".join(sorted(new)[:SHOWN])
    )


def test_the_rewrite_stores_counts_and_answers_what_95bfa47_did(tmp_path: Path) -> None:
    shared, first, second = (tmp_path / n for n in ("shared", "before-data", "after-data"))
    for d in (shared, first, second):
        d.mkdir(mode=0o700)
    old = run(before_tree(tmp_path), shared, first, tmp_path / "before.json")
    for key_file in first.glob("keys.db*"):  # the same keys: the same pseudonyms
        shutil.copy2(key_file, second / key_file.name)
    new = run(ROOT, shared, second, tmp_path / "after.json")

    assert old["veil"] != new["veil"]  # two trees really ran
    # the stream exercised what it is meant to
    assert old["items"] > 1500 and len(old["events"]["rows"]) > old["items"]
    assert {"bot", "invalid_client", "invalid_event", "unknown_purpose"} <= set(
        old["stats"]["dropped"]
    )
    assert len(old["beside_the_view"]["sealed_endpoints"]) > 1000
    assert {"browsing_history", "layout", "security"} <= {
        json.loads(r)[old["events"]["columns"].index("purpose")] for r in old["events"]["rows"]
    }

    assert new["events"]["columns"] == old["events"]["columns"], "the events view's columns"
    same_multiset(
        "events view",
        [json.loads(r) for r in old["events"]["rows"]],
        [json.loads(r) for r in new["events"]["rows"]],
    )
    assert new["drops"]["columns"] == old["drops"]["columns"]
    same_multiset("drops table", old["drops"]["rows"], new["drops"]["rows"])
    same_multiset("consent ledger", old["ledger"]["rows"], new["ledger"]["rows"])
    for stored in ("networks", "sealed_endpoints"):
        same_multiset(stored, old["beside_the_view"][stored], new["beside_the_view"][stored])
    assert new["stats"] == old["stats"], "the writer's stored and dropped counts"
    assert new["queries"].keys() == old["queries"].keys()
    for query, answer in old["queries"].items():  # `veil drops`
        after = new["queries"][query]
        assert after == answer, f"veil {query}:\nbefore {answer}\nafter  {after}"
