"""SQL of the rights requests table (rights/requests.py holds the rules). Writes run inside
the caller's write transaction (`SQLiteStore._writing()`), with the audit entry they need."""

import sqlite3
from dataclasses import dataclass

COLUMNS = (
    "id",
    "kind",
    "subject_ref",
    "channel",
    "status",
    "jurisdiction",
    "received",
    "due",
    "closed",
    "ground",
)


@dataclass(frozen=True, slots=True)
class RequestRow:
    id: str
    kind: str
    subject_ref: str
    channel: str
    status: str
    jurisdiction: str
    received: float
    due: float
    closed: float | None
    ground: str | None


_SELECT = f"SELECT {', '.join(COLUMNS)} FROM rights_requests"
_OPEN = "status IN ('received', 'verified')"  # not answered yet


def insert(db: sqlite3.Connection, row: RequestRow) -> None:
    db.execute(
        f"INSERT INTO rights_requests ({', '.join(COLUMNS)}) "
        f"VALUES ({', '.join('?' * len(COLUMNS))})",
        tuple(getattr(row, c) for c in COLUMNS),
    )


def set_status(
    db: sqlite3.Connection,
    ref: str,
    status: str,
    closed: float | None = None,
    ground: str | None = None,
) -> bool:
    """Move an open request on; False when there is no such open request."""
    cur = db.execute(
        f"UPDATE rights_requests SET status=?, closed=?, ground=? WHERE id=? AND {_OPEN}",
        (status, closed, ground, ref),
    )
    return cur.rowcount == 1


def get(db: sqlite3.Connection, ref: str) -> RequestRow | None:
    row = db.execute(f"{_SELECT} WHERE id=?", (ref,)).fetchone()
    return None if row is None else RequestRow(*row)


def open_requests(db: sqlite3.Connection) -> list[RequestRow]:
    """Requests not yet answered, the most urgent first."""
    return [RequestRow(*r) for r in db.execute(f"{_SELECT} WHERE {_OPEN} ORDER BY due, received")]


def of_subject(db: sqlite3.Connection, subject_ref: str) -> list[RequestRow]:
    return [
        RequestRow(*r)
        for r in db.execute(f"{_SELECT} WHERE subject_ref=? ORDER BY received", (subject_ref,))
    ]
