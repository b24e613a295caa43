import asyncio
import base64
from collections import Counter

import pytest

from veil.config import load
from veil.policy import DEFAULT_POLICY
from veil.store import SQLiteStore
from veil.store.keys import KeyStore
from veil_collector.cli import main


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "veil.toml"
    path.write_text('[store]\nurl = "sqlite:///data/veil.db"\n[keys]\npath = "data/keys.db"\n')
    return path


def make_store(config_file, drops: Counter | None = None) -> None:
    async def create():
        s = SQLiteStore(load(config_file).store.path)
        await s.open(DEFAULT_POLICY)
        await s.write([], drops or Counter(), "2026-11-25")
        await s.close()

    asyncio.run(create())


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_init_writes_a_file_that_checks_and_refuses_to_overwrite(tmp_path, capsys):
    target = tmp_path / "veil.toml"
    assert run(capsys, "init", str(target))[0] == 0
    code, out, _ = run(capsys, "policy", "check", str(target))
    assert code == 0 and "OK — policy 1.0" in out
    assert "warning: policy.dpo.contact is empty" in out
    code, _, err = run(capsys, "init", str(target))
    assert code == 1 and "exists" in err


def test_policy_check_reports_a_broken_mmdb_as_a_warning(tmp_path, capsys):
    (tmp_path / "geo.mmdb").write_bytes(b"garbage")
    cfg = tmp_path / "veil.toml"
    cfg.write_text('[geoip]\npath = "geo.mmdb"\n')
    code, out, _ = run(capsys, "policy", "check", "--config", str(cfg))
    assert code == 0
    assert "geoip.path:" in out and "cannot be read as a MaxMind database" in out


def test_keys_list_shows_ids_and_times_never_key_bytes(config_file, capsys, master_key):
    code, out, _ = run(capsys, "keys", "rotate", "--config", str(config_file))
    assert code == 0 and "destroyed 0 expired key(s)" in out
    ks = KeyStore.open(load(config_file).keys)
    keys = [ks.key_by_id(k.id) for k in ks.list()]
    ks.close()
    code, out, _ = run(capsys, "keys", "list", "--config", str(config_file))
    assert code == 0
    assert out.count("visitor-") == 1 and out.count("seal-") == 1
    for key in keys:
        for encoding in (
            key.hex(),
            base64.b64encode(key).decode(),
            base64.urlsafe_b64encode(key).decode().rstrip("="),
        ):
            assert encoding not in out
    assert master_key not in out


def test_generate_master_prints_a_usable_key(capsys):
    code, out, _ = run(capsys, "keys", "generate-master")
    assert code == 0
    assert len(base64.urlsafe_b64decode(out.strip() + "==")) == 32


def test_query_errors_are_one_clear_line(config_file, capsys):
    code, _, err = run(capsys, "query", "--by", "browser", "--config", str(config_file))
    assert code == 1 and "nothing has been collected yet" in err
    make_store(config_file)
    code, _, err = run(capsys, "query", "--by", "ip", "--config", str(config_file))
    assert code == 1 and "--by takes one or more of" in err
    code, _, err = run(
        capsys, "query", "--by", "os", "--purpose", "marketing", "--config", str(config_file)
    )
    assert code == 1 and "unknown purpose 'marketing'" in err
    code, _, err = run(
        capsys, "query", "--by", "os", "--since", "yesterday", "--config", str(config_file)
    )
    assert code == 1 and "--since must be a duration" in err
    code, out, _ = run(capsys, "query", "--by", "os", "--config", str(config_file))
    assert code == 0 and "(no rows)" in out


def test_drops_lists_counted_reasons(config_file, capsys):
    code, _, err = run(capsys, "drops", "--config", str(config_file))
    assert code == 1 and "nothing has been collected yet" in err
    make_store(config_file, Counter(bot=2, queue_full=3))
    code, out, _ = run(capsys, "drops", "--config", str(config_file))
    assert code == 0
    assert [line.split() for line in out.splitlines()[2:]] == [["bot", "2"], ["queue_full", "3"]]
