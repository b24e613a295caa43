"""Which keystore key seals a subject's records: `subject_keys`, in the event store.

The key's id is random (`subject-key-<hex>`), so the keystore names no one; the mapping lives
here, beside the rows it serves, and goes with them at erasure. A subject erased and back
again has no mapping, so their new records seal under a new key. Keys named
`subject-<pseudonym>` (before this table) are still read for the records sealed under them.
"""

import sqlite3

from ..errors import StoreError
from .base import LocalStore
from .sqlite import SQLiteStore


def sqlite_of(store: LocalStore) -> SQLiteStore:
    """The SQLite store behind a LocalStore: the rights' SQL runs on its connection and in
    its write transactions (the one local store there is)."""
    if not isinstance(store, SQLiteStore):
        raise StoreError(f"subject rights need the SQLite store, not {type(store).__name__}")
    return store


def legacy_key_id(subject: str) -> str:
    """The id the subject's key had before subject_keys: it names the pseudonym."""
    return f"subject-{subject}"


def key_of(db: sqlite3.Connection, subject: str) -> str | None:
    row = db.execute("SELECT key_id FROM subject_keys WHERE subject = ?", (subject,)).fetchone()
    return None if row is None else str(row[0])


def claim(db: sqlite3.Connection, subject: str, key_id: str, now: float) -> str:
    """Map `subject` to `key_id` unless another writer mapped them first, in the caller's
    transaction; the key id that holds."""
    db.execute(
        "INSERT INTO subject_keys (subject, key_id, created) VALUES (?, ?, ?) "
        "ON CONFLICT (subject) DO NOTHING",
        (subject, key_id, now),
    )
    found = key_of(db, subject)
    assert found is not None  # inserted, or there already
    return found
