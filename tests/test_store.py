import sqlite3
from collections import Counter

import pytest

from veil import StoreError
from veil.analytics import engine
from veil.errors import RowsRefused
from veil.store import SQLiteStore
from veil.store.schema import MIGRATIONS

from conftest import event_row as row
from conftest import rows, scalar


async def test_schema_is_migrated_and_versioned(store):
    assert scalar(store.path, "PRAGMA user_version") == len(MIGRATIONS)
    assert scalar(store.path, "PRAGMA journal_mode") == "wal"
    assert {r[0] for r in rows(store.path, "SELECT key FROM purposes")} == {
        "connection",
        "browsing_history",
    }
    view_columns = [r[1] for r in rows(store.path, "PRAGMA table_info(events)")]
    for column in (
        "id",
        "ts",
        "purpose",
        "policy_version",
        "visitor",
        "site",
        "country",
        "region",
        "os",
        "os_version",
        "browser",
        "browser_version",
        "device",
        "language",
        "screen_w",
        "screen_h",
        "pixel_ratio",
    ):
        assert column in view_columns
    assert "sealed_endpoint" not in view_columns  # analysts never see sealed data


def by_browser(store: SQLiteStore, purpose: str = "connection") -> list[tuple]:
    """(browser, events, distinct visitors) as stored, through the analysts' view: what the
    store kept, before any threshold (the engine's are tested in test_thresholds.py)."""
    return rows(
        store.path,
        "SELECT browser, COUNT(*), COUNT(DISTINCT visitor) FROM events WHERE purpose = ? "
        "GROUP BY browser",
        purpose,
    )


async def test_reopening_is_idempotent(store, make_config):
    await store.write([row()], Counter(), "2026-11-25")
    again = SQLiteStore(store.path)
    await again.open(make_config().policy)
    assert by_browser(again) == [("Chrome", 1, 1)]
    await again.close()


async def test_a_batch_is_all_or_nothing(store):
    await store.write([row(visitor="a")], Counter(bot=1), "2026-11-25")
    with pytest.raises(RowsRefused):
        await store.write(
            [row(visitor="b"), row(purpose="marketing")], Counter(bot=5), "2026-11-25"
        )
    assert by_browser(store) == [("Chrome", 1, 1)]  # neither row of the failed batch
    assert await store.drop_counts() == {"bot": 1}


async def test_a_retried_batch_is_stored_once(store):
    batch = [row(event_id="e1", visitor="a"), row(event_id="e2", visitor="b")]
    await store.write(batch, Counter(), "d")
    await store.write([*batch, row(event_id="e3", visitor="c")], Counter(), "d")
    assert by_browser(store) == [("Chrome", 3, 3)]


async def test_purpose_must_be_declared_at_rest(store):
    with pytest.raises(RowsRefused):
        await store.write([row(purpose=None)], Counter(), "2026-11-25")
    with pytest.raises(RowsRefused, match="FOREIGN KEY"):
        await store.write([row(purpose="undeclared")], Counter(), "2026-11-25")


async def test_a_store_path_with_uri_characters_can_be_queried(tmp_path, make_config):
    """The engine reads off the loop through a connection of its own (store.scan), which
    opens the file by a URI: a path with URI characters must still be found."""
    cfg = make_config()
    odd = SQLiteStore(tmp_path / "with space #and?query" / "veil.db")
    await odd.open(cfg.policy)
    await odd.write([row(visitor="a", network="n1")], Counter(), "d")
    result = await engine.run(odd, cfg.policy, engine.StatsQuery("connection", by=("browser",)), 1)
    assert [(c.key, c.values) for c in result.cells] == [(("Chrome",), {"events": 1})]
    await odd.close()


async def test_newer_schema_is_refused(store):
    await store.close()
    db = sqlite3.connect(store.path)
    db.execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    db.close()
    with pytest.raises(StoreError, match="newer than this veil"):
        await SQLiteStore(store.path).open()


async def test_unopenable_store_is_a_store_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match=r"store\.url: cannot open"):
        await SQLiteStore(blocker / "veil.db").open()
