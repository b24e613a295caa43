"""The SQL of erasure and of a withdrawal's disposal: one subject's rows, every table.

Each statement runs in the caller's write transaction (rights/erase.py opens them and writes
the audit entry in the last). `secure_delete` is on for the store's connection, so deleted
rows are zeroed in the database file; `checkpoint` then empties the WAL, which still holds
the pages as they were before.

Which tables hold a subject's rows is read from the schema: every table with a `subject`
column (each consent-based purpose's `events_<purpose>`, records, decisions, the ledger,
provision_subjects, subject_keys, subject_limits, and any a later migration adds), plus the
reviews of the subject's decisions (found by decision id). The audit log names subjects only
by a keyed reference and is never touched.
"""

import asyncio
import sqlite3
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from . import layout
from .disposal import ledger_disposal
from .subject_keys import legacy_key_id

CHUNK = 2000  # event rows per transaction: a subject with years of history holds the lock briefly
_KEPT = ("audit_log",)  # append-only, and holds no pseudonym
_LATER = ("consent_ledger",)  # needs the disposal permit


def subject_tables(db: sqlite3.Connection) -> list[str]:
    """Every table with a `subject` column, but the audit log."""
    names = [
        r[0]
        for r in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "ORDER BY name"
        )
    ]
    return [
        n
        for n in names
        if n not in _KEPT
        and any(c[1] == "subject" for c in db.execute(f"PRAGMA table_info({layout.quote(n)})"))
    ]


def event_tables(db: sqlite3.Connection, purpose: str | None = None) -> list[str]:
    """The purpose tables with a `subject` column (of `purpose` only, if given)."""
    return [
        t.name
        for t in layout.load(db).values()
        if "subject" in t.columns and (purpose is None or t.purpose == purpose)
    ]


Held = Callable[[str, str], bool]  # (kind, purpose or scope) → a legal hold keeps it


def nothing_held(kind: str, purpose: str) -> bool:
    return False


@dataclass(frozen=True, slots=True)
class Plan:
    """What of the subject's a legal hold keeps (policy.LegalHold kinds): the event tables of
    purposes held, purposes of their records, decisions and provisions, scopes of their ledger
    rows; and so the keys that seal what is kept, and the rest of their keys, which go."""

    events: tuple[str, ...]  # event table names
    records: tuple[str, ...]
    decisions: tuple[str, ...]
    consent: tuple[str, ...]
    provisions: tuple[str, ...]
    kept_keys: tuple[str, ...]
    erased_keys: tuple[str, ...]


def _in(values: Sequence[str]) -> str:
    return f"({', '.join('?' * len(values))})"


def plan(db: sqlite3.Connection, subject: str, held: Held = nothing_held) -> Plan:
    def kept(kind: str, sql: str) -> tuple[str, ...]:
        return tuple(v for (v,) in db.execute(sql, (subject,)) if held(kind, v))

    records = kept("records", "SELECT DISTINCT purpose FROM records WHERE subject = ?")
    decisions = kept("decisions", "SELECT DISTINCT purpose FROM decisions WHERE subject = ?")
    keep_keys = {
        r[0]
        for r in db.execute(
            f"SELECT key_id FROM records WHERE subject = ? AND purpose IN {_in(records)} "
            f"UNION SELECT key_id FROM decisions WHERE subject = ? AND purpose IN {_in(decisions)} "
            "UNION SELECT r.key_id FROM reviews AS r JOIN decisions AS d ON d.id = r.decision_id "
            f"WHERE d.subject = ? AND d.purpose IN {_in(decisions)}",
            (subject, *records, subject, *decisions, subject, *decisions),
        )
    }
    every_key = {
        r[0]
        for r in db.execute(
            "SELECT key_id FROM records WHERE subject = ?1 "
            "UNION SELECT key_id FROM decisions WHERE subject = ?1 "
            "UNION SELECT r.key_id FROM reviews AS r JOIN decisions AS d "
            "ON d.id = r.decision_id WHERE d.subject = ?1 "
            "UNION SELECT key_id FROM subject_keys WHERE subject = ?1",
            (subject,),
        )
    } | {legacy_key_id(subject)}  # the key named after them before subject_keys, if any
    return Plan(
        events=tuple(
            t.name
            for t in layout.load(db).values()
            if "subject" in t.columns and held("events", t.purpose)
        ),
        records=records,
        decisions=decisions,
        consent=kept("consent", "SELECT DISTINCT scope FROM consent_ledger WHERE subject = ?"),
        provisions=kept(
            "provisions",
            "SELECT DISTINCT p.purpose FROM provisions AS p JOIN provision_subjects AS s "
            "ON s.provision_id = p.id WHERE s.subject = ?",
        ),
        kept_keys=tuple(sorted(keep_keys)),
        erased_keys=tuple(sorted(every_key - keep_keys)),
    )


def delete_chunk(db: sqlite3.Connection, table: str, subject: str) -> int:
    """Up to CHUNK of the subject's rows of an event table; how many went."""
    quoted = layout.quote(table)
    return db.execute(
        f"DELETE FROM {quoted} WHERE id IN "
        f"(SELECT id FROM {quoted} WHERE subject = ? LIMIT {CHUNK})",
        (subject,),
    ).rowcount


def delete_rest(
    db: sqlite3.Connection, subject: str, kept: Plan
) -> tuple[dict[str, int], dict[str, int], list[int]]:
    """Every other row of the subject's but what `kept` keeps: (rows deleted per table, rows
    kept per table, the ledger ids removed)."""
    # each table's extra condition: rows a legal hold keeps are not deleted
    keep: dict[str, tuple[str, Sequence[str]]] = {
        "records": (f"purpose NOT IN {_in(kept.records)}", kept.records),
        "decisions": (f"purpose NOT IN {_in(kept.decisions)}", kept.decisions),
        "subject_keys": (f"key_id NOT IN {_in(kept.kept_keys)}", kept.kept_keys),
        "provision_subjects": (
            f"provision_id NOT IN (SELECT id FROM provisions WHERE purpose IN "
            f"{_in(kept.provisions)})",
            kept.provisions,
        ),
        "consent_ledger": (f"scope NOT IN {_in(kept.consent)}", kept.consent),
    }
    counts = {
        "reviews": db.execute(
            "DELETE FROM reviews WHERE decision_id IN (SELECT id FROM decisions WHERE "
            f"subject = ? AND purpose NOT IN {_in(kept.decisions)})",
            (subject, *kept.decisions),
        ).rowcount
    }
    for table in subject_tables(db):
        if table in _LATER or table in kept.events:
            continue
        where, params = keep.get(table, ("1", ()))
        counts[table] = db.execute(
            f"DELETE FROM {layout.quote(table)} WHERE subject = ? AND {where}", (subject, *params)
        ).rowcount
    where, params = keep["consent_ledger"]
    ledger_ids = [
        r[0]
        for r in db.execute(
            f"SELECT id FROM consent_ledger WHERE subject = ? AND {where}", (subject, *params)
        )
    ]
    if ledger_ids:
        with ledger_disposal(db, "erasure"):
            db.execute(
                f"DELETE FROM consent_ledger WHERE subject = ? AND {where}", (subject, *params)
            )
    counts["consent_ledger"] = len(ledger_ids)
    left = {
        t: db.execute(
            f"SELECT COUNT(*) FROM {layout.quote(t)} WHERE subject = ?", (subject,)
        ).fetchone()[0]
        for t in subject_tables(db)
    }
    return (
        {t: n for t, n in counts.items() if n},
        {t: n for t, n in left.items() if n},
        ledger_ids,
    )


def delete_records(
    db: sqlite3.Connection, subject: str, purpose: str, fields: Collection[str] | None = None
) -> int:
    """The subject's app records under one purpose; only those holding one of `fields`, if
    given (a record's `fields` lists its field names, comma-separated)."""
    if fields is None:
        return db.execute(
            "DELETE FROM records WHERE subject = ? AND purpose = ?", (subject, purpose)
        ).rowcount
    return sum(
        db.execute(
            "DELETE FROM records WHERE subject = ? AND purpose = ? "
            "AND instr(',' || fields || ',', ?) > 0",
            (subject, purpose, f",{name},"),
        ).rowcount
        for name in fields
    )


async def checkpoint(db: sqlite3.Connection, tries: int = 40) -> bool:
    """Copy the WAL into the database and truncate it to nothing, so the pages as they were
    before the deletion survive in no file. A reader still in an older snapshot holds the WAL:
    retried for up to ~2 s; False if it never let go (the next checkpoint will do it)."""
    for _ in range(tries):
        busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if not busy:
            return True
        await asyncio.sleep(0.05)
    return False
