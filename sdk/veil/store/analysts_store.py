"""The `analysts` table (analytics/analysts.py says what an analyst is): rows in, rows out,
each call inside the caller's transaction. Only a token's SHA-256 is ever stored."""

import json
import sqlite3
from collections.abc import Sequence
from typing import cast

COLUMNS = ("name", "token_hash", "purposes", "uses", "created", "revoked")
Row = tuple[str, bytes, tuple[str, ...], tuple[str, ...], float, float | None]


def _row(raw: Sequence[object]) -> Row:
    name, digest, purposes, uses, created, revoked = raw
    return (
        str(name),
        cast(bytes, digest),  # BLOB NOT NULL, length 32
        tuple(json.loads(str(purposes))),
        tuple(json.loads(str(uses))),
        float(created),  # type: ignore[arg-type]  # REAL NOT NULL
        None if revoked is None else float(revoked),  # type: ignore[arg-type]
    )


def insert(
    db: sqlite3.Connection,
    name: str,
    token_hash: bytes,
    purposes: Sequence[str],
    uses: Sequence[str],
    now: float,
) -> bool:
    """False when an analyst of that name exists (revoked ones too: names are not reused)."""
    return (
        db.execute(
            "INSERT INTO analysts (name, token_hash, purposes, uses, created) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
            (name, token_hash, json.dumps(list(purposes)), json.dumps(list(uses)), now),
        ).rowcount
        == 1
    )


def by_hash(db: sqlite3.Connection, token_hash: bytes) -> Row | None:
    raw = db.execute(
        f"SELECT {', '.join(COLUMNS)} FROM analysts WHERE token_hash = ?", (token_hash,)
    ).fetchone()
    return None if raw is None else _row(raw)


def every(db: sqlite3.Connection) -> list[Row]:
    return [_row(r) for r in db.execute(f"SELECT {', '.join(COLUMNS)} FROM analysts ORDER BY name")]


def revoke(db: sqlite3.Connection, name: str, now: float) -> bool:
    """False when there is no such analyst, or they were revoked already."""
    return (
        db.execute(
            "UPDATE analysts SET revoked = ? WHERE name = ? AND revoked IS NULL", (now, name)
        ).rowcount
        == 1
    )
