"""Disposal of records that are otherwise append-only.

The consent ledger refuses UPDATE and DELETE (its triggers), so that no one rewrites a
withdrawal as a grant. Two things must still remove its rows: an erasure (a subject's rows,
every table) and retention (rows past their period, outside a legal hold). Such a
transaction holds a row in `ledger_disposal` while it deletes; the trigger lets deletes
through only then, and the row is gone again before the transaction commits, so no other
connection ever sees the permit. Every disposal is recorded in the audit log by its caller.
"""

import contextlib
import sqlite3
from collections.abc import Iterator

from ..errors import StoreError


@contextlib.contextmanager
def ledger_disposal(db: sqlite3.Connection, reason: str) -> Iterator[None]:
    """Within the caller's open write transaction: deletes from the ledger are allowed."""
    if not db.in_transaction:
        raise StoreError("ledger_disposal needs the caller's write transaction")
    db.execute("INSERT INTO ledger_disposal (reason) VALUES (?)", (reason,))
    try:
        yield
    finally:
        db.execute("DELETE FROM ledger_disposal")
