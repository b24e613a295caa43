"""The consent ledger's disposal permit (store/disposal.py), attacked: it exists only inside
the disposing transaction, is gone after a failed disposal too, and cannot be taken outside one.
"""

import sqlite3

import pytest

from veil.errors import StoreError
from veil.store.disposal import ledger_disposal
from veil.store.sqlite import SQLiteStore


@pytest.fixture
async def store(tmp_path):
    s = SQLiteStore(tmp_path / "events.db")
    await s.open()
    await s.append_consents(
        [
            {
                "ts": 1.0,
                "subject": "a" * 32,
                "scope": "browsing_history",
                "action": "grant",
                "method": "api",
                "explicit": True,
                "gpc": False,
                "policy_version": "v1",
                "jurisdiction": "XX",
            }
        ]
    )
    yield s
    await s.close()


def ledger_rows(store: SQLiteStore) -> int:
    return store.db.execute("SELECT count(*) FROM consent_ledger").fetchone()[0]


async def test_no_permit_outside_a_write_transaction(store):
    with pytest.raises(StoreError, match="write transaction"), ledger_disposal(store.db, "x"):
        pass
    assert store.db.execute("SELECT count(*) FROM ledger_disposal").fetchone() == (0,)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        store.db.execute("DELETE FROM consent_ledger")
    assert ledger_rows(store) == 1


async def test_a_failed_disposal_leaves_no_permit_behind(store):
    async with store._writing() as db:
        with pytest.raises(ZeroDivisionError), ledger_disposal(db, "erasure"):
            raise ZeroDivisionError
        # same transaction, after the failed body: the trigger refuses again
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute("DELETE FROM consent_ledger")
    assert ledger_rows(store) == 1


async def test_the_permit_is_gone_at_commit_for_every_connection(store):
    async with store._writing() as db:
        with ledger_disposal(db, "retention"):
            db.execute("DELETE FROM consent_ledger")
    assert ledger_rows(store) == 0
    other = sqlite3.connect(store.path)
    try:
        assert other.execute("SELECT count(*) FROM ledger_disposal").fetchone() == (0,)
    finally:
        other.close()
