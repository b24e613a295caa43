"""The CLI keeps the config it was given, turns absurd durations into one clear line, and says
its version."""

import asyncio
import importlib.metadata
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from veil.config import load
from veil.policy import DEFAULT_POLICY
from veil.starter import render_policy
from veil.store import SQLiteStore
from veil_collector.cli import main


@pytest.fixture
def elsewhere(tmp_path, monkeypatch) -> Path:
    """The working directory: no veil.toml here, so the defaults would use ./veil-data."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


def config_at(directory: Path, extra: str = "") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "veil.toml"
    path.write_text(
        '[store]\nurl = "sqlite:///data/veil.db"\n[keys]\npath = "data/keys.db"\n' + extra
    )
    return path


def make_store(config: Path) -> None:
    async def create() -> None:
        store = SQLiteStore(load(config).store.path)
        await store.open(DEFAULT_POLICY)
        await store.write([], Counter(), "2026-11-25")
        await store.close()

    asyncio.run(create())


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_config_before_the_command_is_the_one_used(tmp_path, elsewhere, capsys):
    a = config_at(tmp_path / "a")
    make_store(a)
    assert not (tmp_path / "a" / "data" / "keys.db").exists()
    code, out, err = run(capsys, "--config", str(a), "retention")
    assert code == 0, err
    assert "rows deleted" in out
    # retention opened a.toml's keystore (made it, on first use), and nothing in the cwd
    assert (tmp_path / "a" / "data" / "keys.db").exists()
    assert list(elsewhere.iterdir()) == []


def test_config_after_the_command_wins_over_the_one_before(tmp_path, elsewhere, capsys):
    a, b = config_at(tmp_path / "a"), config_at(tmp_path / "b")
    code, _, err = run(capsys, "--config", str(a), "keys", "rotate", "--config", str(b))
    assert code == 0, err
    assert (tmp_path / "b" / "data" / "keys.db").exists()
    assert not (tmp_path / "a" / "data").exists() and list(elsewhere.iterdir()) == []
    code, out, _ = run(capsys, "--config", str(a), "policy", "check")
    assert (
        code == 0
        and out.strip().endswith(
            f"policy {DEFAULT_POLICY.version} effective {DEFAULT_POLICY.effective}, purposes: "
            f"{', '.join(DEFAULT_POLICY.purposes)}"
        )
        and str(a) in out
    )


@pytest.mark.parametrize("since", ["99999999999d", "999999999w", "9" * 5000 + "h"])
def test_a_huge_since_is_one_clear_line(tmp_path, elsewhere, capsys, since):
    a = config_at(tmp_path / "a")
    make_store(a)
    code, out, err = run(capsys, "--config", str(a), "query", "--by", "os", "--since", since)
    assert code == 1 and out == ""
    assert len(err.splitlines()) == 1, err
    assert err.startswith("veil: --since must be at most 36525d (100 years), got ")


def test_a_huge_retention_in_the_policy_names_the_key(tmp_path, elsewhere, capsys):
    policy = render_policy(DEFAULT_POLICY).replace(
        'retention = "30d"', 'retention = "99999999999d"', 1
    )
    a = config_at(tmp_path / "a", policy)
    code, _, err = run(capsys, "policy", "check", "--config", str(a))
    assert code == 1 and "Traceback" not in err
    assert "retention: must be at most 36525d (100 years), got '99999999999d'" in err


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"veil {importlib.metadata.version('veil')}"


def test_the_parser_offers_what_the_commands_take():
    """The parser names notice formats and refusal grounds without loading their modules."""
    from veil.notice import FORMATS
    from veil.rights.requests import GROUNDS
    from veil_collector.cli import NOTICE_FORMATS, REFUSAL_GROUNDS

    assert NOTICE_FORMATS == FORMATS
    assert tuple(GROUNDS) == REFUSAL_GROUNDS


def test_query_loads_neither_the_http_side_nor_geoip_nor_the_agent_parser(tmp_path):
    """`veil query` runs in a fresh interpreter without starlette, uvicorn, httpx, maxminddb
    or ua-parser: they cost it most of its start-up (docs/benchmarks.md §8)."""
    config = config_at(tmp_path)
    make_store(config)
    heavy = ("starlette", "uvicorn", "httpx", "maxminddb", "ua_parser", "aiohttp", "yaml")
    script = (
        "import sys\n"
        "from veil_collector.cli import main\n"
        f"assert main(['query', '--by', 'browser', '--config', {str(config)!r}]) == 0\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({heavy!r})))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "(no rows)" in done.stdout
    assert done.stdout.splitlines()[-1] == "[]"
