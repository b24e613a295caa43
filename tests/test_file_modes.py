"""veil's files are the owner's alone (issue 7, item 14): data files 0600 and the directories
veil makes 0700, whatever the umask; real files, a real running veil in a child process whose
umask is set before it starts."""

import json
import logging
import os
import sqlite3
import stat
import subprocess
import sys

import pytest
from servers import ROOT

from veil.config import from_dict
from veil.store.keys import load_master_key
from veil.store.sqlite import SQLiteStore

CHILD = r"""
import asyncio, json, os, sqlite3, stat, sys, time
from pathlib import Path

os.umask(int(sys.argv[1], 8))
base = Path(sys.argv[2])

from veil import Veil
from veil.config import from_dict

config = from_dict({"store": {"url": "sqlite:///fresh/store/veil.db"},
                    "keys": {"path": "fresh/keys/keys.db"},  # and the development master.key
                    "capture": {"flush_interval": 0.05}}, base=base)
scope = {"type": "http", "method": "GET", "path": "/", "headers": [
    (b"host", b"shop.example"), (b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64; rv:121.0) "
                                                b"Gecko/20100101 Firefox/121.0")],
    "client": ("198.51.100.7", 50123)}


async def main():
    veil = Veil(config)
    await veil.start()
    veil.capture_request(scope)
    await veil.flush()  # a committed write: veil.db-wal and -shm exist while the store is open
    keys = sqlite3.connect(config.keys.path, isolation_level=None)
    keys.execute("BEGIN IMMEDIATE")  # a write in flight: keys.db-journal exists until its end
    keys.execute("INSERT INTO meta VALUES ('probe', x'00')")
    modes = {str(p.relative_to(base)): [stat.S_IMODE(p.stat().st_mode), p.is_dir()]
             for p in base.rglob("*")}
    keys.execute("ROLLBACK")
    keys.close()
    await veil.stop()
    print(json.dumps(modes))


asyncio.run(main())
"""


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_every_file_and_directory_veil_creates_is_the_owners_alone(tmp_path, umask):
    env = {k: v for k, v in os.environ.items() if k not in ("VEIL_MASTER_KEY", "VEIL_CONFIG")}
    result = subprocess.run(
        [sys.executable, "-c", CHILD, oct(umask), str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    modes = {
        name: (mode, is_dir)
        for name, (mode, is_dir) in json.loads(result.stdout.splitlines()[-1]).items()
    }
    files = {name for name, (_, is_dir) in modes.items() if not is_dir}
    assert {
        "fresh/store/veil.db",
        "fresh/store/veil.db-wal",
        "fresh/store/veil.db-shm",
        "fresh/keys/keys.db",
        "fresh/keys/keys.db-journal",
        "fresh/keys/master.key",
    } <= files
    loose = {
        name: oct(mode)
        for name, (mode, is_dir) in modes.items()
        if mode != (0o700 if is_dir else 0o600)
    }
    assert loose == {}, f"umask {umask:03o}: {loose}"


async def test_an_existing_directory_is_named_not_changed_and_old_files_are_tightened(
    tmp_path, make_config, caplog
):
    shared = tmp_path / "shared"  # the operator's: it may hold other services' files
    shared.mkdir()
    os.chmod(shared, 0o755)
    db = shared / "veil.db"  # as an older veil left them, readable by everyone
    sqlite3.connect(db).close()
    (shared / "veil.db-wal").write_bytes(b"")
    for name in ("veil.db", "veil.db-wal"):
        os.chmod(shared / name, 0o644)

    store = SQLiteStore(db)
    with caplog.at_level(logging.WARNING, logger="veil.files"):
        await store.open(make_config().policy)
    await store.close()

    assert stat.S_IMODE(shared.stat().st_mode) == 0o755  # not veil's to change ...
    assert any(
        str(shared) in r.getMessage() and "chmod 700" in r.getMessage() for r in caplog.records
    )  # ... but named, with the fix
    assert {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in shared.iterdir()} == {
        "veil.db": "0o600"
    } | ({"veil.db-wal": "0o600"} if (shared / "veil.db-wal").exists() else {})


def test_a_master_key_file_others_can_read_is_named(tmp_path, monkeypatch, caplog):
    monkeypatch.delenv("VEIL_MASTER_KEY")
    key = tmp_path / "master.key"
    key.write_text("a" * 64 + "\n")
    os.chmod(key, 0o644)
    config = from_dict(
        {"keys": {"path": "keys.db", "master_key_file": "master.key"}}, base=tmp_path
    )
    with caplog.at_level(logging.WARNING, logger="veil.files"):
        load_master_key(config.keys)
    assert any(
        "keys.master_key_file" in r.getMessage() and str(key) in r.getMessage()
        for r in caplog.records
    )
