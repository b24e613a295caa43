"""Retention: expired rows are gone from every file, recent ones stay; the CLI tools."""

import json
import time
from collections import Counter

from veil.retention import enforce
from veil.store import SQLiteStore
from veil.store.columns import ROW_COLUMNS
from veil.store.keys import KeyStore
from veil_collector.cli import main

DAY = 86400.0


def row(ts: float, site: str, purpose: str = "connection") -> tuple:
    values = dict.fromkeys(ROW_COLUMNS)
    values.update(
        event_id=site,
        ts=ts,
        purpose=purpose,
        policy_version="1.0",
        source="request",
        site=site,
        visitor="v",
    )
    return tuple(values[c] for c in ROW_COLUMNS)


async def test_expired_rows_are_disposed_of_unrecoverably(make_config, data_dir):
    cfg = make_config()
    store = SQLiteStore(cfg.store.path)
    await store.open(cfg.policy)
    now = time.time()
    await store.write(
        [
            row(now - 31 * DAY, "expired-connection.example"),
            row(now - 29 * DAY, "kept-connection.example"),
            row(now - 31 * DAY, "kept-history.example", "browsing_history"),
            row(now - 91 * DAY, "expired-history.example", "browsing_history"),
        ],
        Counter(),
        "2026-11-25",
    )
    keystore = KeyStore.open(cfg.keys)
    done = await enforce(store, keystore, cfg.policy, now=now)
    keystore.close()
    assert done["connection"] == 1 and done["browsing_history"] == 1
    sites = {r["site"] for r in await store.select("SELECT site FROM event_rows")}
    assert sites == {"kept-connection.example", "kept-history.example"}
    await store.close()
    for path in data_dir.iterdir():  # db, WAL, SHM: the deleted rows are nowhere
        blob = path.read_bytes()
        assert b"expired-connection" not in blob and b"expired-history" not in blob, path.name


def test_retention_and_provisions_commands(tmp_path, capsys):
    config = tmp_path / "veil.toml"
    config.write_text('[store]\nurl = "sqlite:///data/veil.db"\n[keys]\npath = "data/keys.db"\n')
    assert main(["retention", "--config", str(config)]) == 1  # no store yet: a clear error
    assert "nothing has been collected yet" in capsys.readouterr().err

    import asyncio

    from veil.config import load

    async def seed():
        s = SQLiteStore(load(config).store.path)
        await s.open(load(config).policy)
        await s.add_provision(
            ts=1_764_000_000.0,
            recipient="CloudCo",
            country="US",
            role="processor",
            purpose="connection",
            categories="user.device",
            subjects=3,
            records=9,
            basis="consent",
            safeguard="scc",
            transfer="EU→US under scc",
        )
        await s.close()

    asyncio.run(seed())
    assert main(["retention", "--config", str(config)]) == 0
    assert "connection" in capsys.readouterr().out
    assert main(["provisions", "export", "--format", "json", "--config", str(config)]) == 0
    [entry] = json.loads(capsys.readouterr().out)
    assert (entry["recipient"], entry["subjects"], entry["basis"], entry["date"]) == (
        "CloudCo",
        3,
        "consent",
        "2025-11-24 16:00:00",
    )
    assert main(["provisions", "export", "--config", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("id,date,recipient") and "EU→US under scc" in lines[1]
