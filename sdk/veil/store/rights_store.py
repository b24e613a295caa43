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
OPEN = ("received", "verified")


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


def insert(db: sqlite3.Connection, row: RequestRow) -> None:
    db.execute(
        f"INSERT INTO rights_requests ({', '.join(COLUMNS)}) "
        f"VALUES ({', '.join('?' * len(COLUMNS))})",
        (
            row.id,
            row.kind,
            row.subject_ref,
            row.channel,
            row.status,
            row.jurisdiction,
            row.received,
            row.due,
            row.closed,
            row.ground,
        ),
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
        "UPDATE rights_requests SET status=?, closed=?, ground=? "
        "WHERE id=? AND status IN ('received', 'verified')",
        (status, closed, ground, ref),
    )
    return cur.rowcount == 1


def get(db: sqlite3.Connection, ref: str) -> RequestRow | None:
    row = db.execute(f"{_SELECT} WHERE id=?", (ref,)).fetchone()
    return None if row is None else RequestRow(*row)


def open_requests(db: sqlite3.Connection) -> list[RequestRow]:
    """Requests not yet answered, the most urgent first."""
    return [
        RequestRow(*r)
        for r in db.execute(
            f"{_SELECT} WHERE status IN ('received', 'verified') ORDER BY due, received"
        )
    ]


def of_subject(db: sqlite3.Connection, subject_ref: str) -> list[RequestRow]:
    return [
        RequestRow(*r)
        for r in db.execute(f"{_SELECT} WHERE subject_ref=? ORDER BY received", (subject_ref,))
    ]
