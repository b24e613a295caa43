import sqlite3
from collections import Counter

import pytest

from veil import QueryError, StoreError
from veil.errors import RowsRefused
from veil.store import SQLiteStore
from veil.store.schema import MIGRATIONS

from conftest import event_row as row
from conftest import rows, scalar


@pytest.fixture
async def store(make_config):
    cfg = make_config()
    s = SQLiteStore(cfg.store.path)
    await s.open(cfg.policy)
    yield s
    await s.close()


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


async def test_reopening_is_idempotent(store, make_config):
    await store.write([row()], Counter(), "2026-11-25")
    again = SQLiteStore(store.path)
    await again.open(make_config().policy)
    agg = await again.aggregate(["browser"], "connection", None, 1)
    assert agg.rows == [("Chrome", 1, 1)]
    await again.close()


async def test_a_batch_is_all_or_nothing(store):
    await store.write([row(visitor="a")], Counter(bot=1), "2026-11-25")
    with pytest.raises(RowsRefused):
        await store.write(
            [row(visitor="b"), row(purpose="marketing")], Counter(bot=5), "2026-11-25"
        )
    agg = await store.aggregate(["browser"], "connection", None, 1)
    assert agg.rows == [("Chrome", 1, 1)]  # neither row of the failed batch
    assert await store.drop_counts() == {"bot": 1}


async def test_a_retried_batch_is_stored_once(store):
    batch = [row(event_id="e1", visitor="a"), row(event_id="e2", visitor="b")]
    await store.write(batch, Counter(), "d")
    await store.write([*batch, row(event_id="e3", visitor="c")], Counter(), "d")
    assert (await store.aggregate(["browser"], "connection", None, 1)).rows == [("Chrome", 3, 3)]


async def test_purpose_must_be_declared_at_rest(store):
    with pytest.raises(RowsRefused):
        await store.write([row(purpose=None)], Counter(), "2026-11-25")
    with pytest.raises(RowsRefused, match="FOREIGN KEY"):
        await store.write([row(purpose="undeclared")], Counter(), "2026-11-25")


async def test_small_groups_are_withheld(store):
    rows = [row(visitor=f"v{i}", browser="Chrome") for i in range(5)]
    rows += [row(visitor="only-one", browser="Lynx")] * 3
    await store.write(rows, Counter(), "2026-11-25")
    agg = await store.aggregate(["browser"], "connection", None, 5)
    assert agg.rows == [("Chrome", 5, 5)]
    assert agg.suppressed_groups == 1


async def test_aggregate_is_bound_to_a_purpose_and_a_window(store):
    await store.write(
        [row(visitor=f"v{i}", ts=1000.0 + i) for i in range(4)]
        + [row(visitor="x", purpose="browsing_history")],
        Counter(),
        "d",
    )
    assert (await store.aggregate(["browser"], "connection", 1002.0, 1)).rows == [("Chrome", 2, 2)]
    assert (await store.aggregate(["browser"], "browsing_history", None, 1)).rows == [
        ("Chrome", 1, 1)
    ]
    with pytest.raises(QueryError, match="cannot group by"):
        await store.aggregate(["visitor"], "connection", None, 1)


async def test_a_store_path_with_uri_characters_can_be_queried(tmp_path, make_config):
    odd = SQLiteStore(tmp_path / "with space #and?query" / "veil.db")
    await odd.open(make_config().policy)
    await odd.write([row(visitor="a")], Counter(), "d")
    assert (await odd.aggregate(["browser"], "connection", None, 1)).rows == [("Chrome", 1, 1)]
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
