"""One subject's rows, every table: what an export reads (rights/export.py), and the two
writes the rights to access and correction need (a provision's subjects, a re-sealed record).

Every read is by the subject's pseudonym, through an index on `subject` (each purpose's
table, records, decisions, the ledger, provision_subjects, subject_limits; rights requests
are read by subject_ref, store/rights_store.py): another subject's row is never read.
Reads run on the loop's connection in one read transaction (`snapshot`): one state of the
store, and short (one subject's rows).
"""

import contextlib
import sqlite3
from collections.abc import Collection, Iterator

from . import layout
from .columns import ROW_COLUMNS

# What an event row holds for its subject, beyond id, ts, purpose and policy version. Left
# out: event_id (veil's de-duplication id), subject (the pseudonym itself), visitor (NULL on
# a subject's rows) and the sealed endpoint with its key id (IP and port sealed under a day's
# key for the connection purpose, not under the subject's: docs/rights.md says why).
EVENT_DATA = tuple(
    c
    for c in ROW_COLUMNS
    if c
    not in (
        "event_id",
        "ts",
        "purpose",
        "policy_version",
        "visitor",
        "seal_key",
        "sealed_endpoint",
        "subject",
    )
)
CONSENT = ("id", "ts", "scope", "action", "method", "explicit", "gpc", "policy_version",
           "jurisdiction")  # fmt: skip
RECORD = ("id", "ts", "purpose", "policy_version", "fields", "key_id", "sealed")
DECISION = ("id", "ts", "type", "purpose", "policy_version", "legal_effect", "basis",
            "evidence", "key_id", "sealed")  # fmt: skip
REVIEW = ("id", "ts", "decision_id", "status", "key_id", "sealed", "purpose", "policy_version")
PROVISION = ("id", "ts", "recipient", "country", "role", "purpose", "categories", "basis",
             "safeguard", "transfer", "policy_version", "last_to_recipient")  # fmt: skip

Rows = list[dict[str, object]]


@contextlib.contextmanager
def snapshot(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A read transaction (unless the caller holds one): the statements inside, run without
    an await between them, see one state of the database (another process may write between
    two of them otherwise)."""
    if db.in_transaction:
        yield db
        return
    db.execute("BEGIN")
    try:
        yield db
    finally:
        if db.in_transaction:
            db.execute("COMMIT")


def _dicts(cursor: sqlite3.Cursor, names: tuple[str, ...]) -> Rows:
    return [dict(zip(names, row, strict=True)) for row in cursor]


def events(db: sqlite3.Connection, subject: str) -> Rows:
    """The subject's events under every purpose (only consent-based purposes' tables have a
    `subject` column), each with `id` as in the `events` view, oldest first per purpose."""
    out: Rows = []
    for table in sorted(layout.load(db).values(), key=lambda t: t.number):
        if "subject" not in table.columns:
            continue
        values = ", ".join(layout.column_sql(table, c) for c in EVENT_DATA)
        cursor = db.execute(
            f"SELECT t.id * {layout.ID_SPAN} + {table.number}, t.ts, t.policy_version, {values} "
            f"FROM {layout.from_sql(table)} WHERE t.subject = ? ORDER BY t.ts, t.id",
            (subject,),
        )
        for row_id, ts, version, *data in cursor:
            out.append(
                {
                    "id": row_id,
                    "ts": ts,
                    "purpose": table.purpose,
                    "policy_version": version,
                    "data": dict(zip(EVENT_DATA, data, strict=True)),
                }
            )
    return out


def _of(db: sqlite3.Connection, table: str, names: tuple[str, ...], subject: str) -> Rows:
    """The subject's rows of `table` (its `names` columns), oldest first."""
    return _dicts(
        db.execute(
            f"SELECT {', '.join(names)} FROM {table} WHERE subject = ? ORDER BY ts, id",
            (subject,),
        ),
        names,
    )


def records(db: sqlite3.Connection, subject: str) -> Rows:
    return _of(db, "records", RECORD, subject)


def record(db: sqlite3.Connection, subject: str, record_id: int) -> dict[str, object] | None:
    """The subject's record `record_id`; None when there is none, or it is another's."""
    row = db.execute(
        f"SELECT {', '.join(RECORD)} FROM records WHERE id = ? AND subject = ?",
        (record_id, subject),
    ).fetchone()
    return None if row is None else dict(zip(RECORD, row, strict=True))


def decisions(db: sqlite3.Connection, subject: str) -> Rows:
    return _of(db, "decisions", DECISION, subject)


def reviews(db: sqlite3.Connection, subject: str) -> Rows:
    """Reviews of the subject's decisions, each with its decision's purpose and version."""
    return _dicts(
        db.execute(
            "SELECT r.id, r.ts, r.decision_id, r.status, r.key_id, r.sealed, d.purpose, "
            "d.policy_version FROM reviews AS r JOIN decisions AS d ON d.id = r.decision_id "
            "WHERE d.subject = ? ORDER BY r.ts, r.id",
            (subject,),
        ),
        REVIEW,
    )


def consents(db: sqlite3.Connection, subject: str) -> Rows:
    return _of(db, "consent_ledger", CONSENT, subject)


def provisions(db: sqlite3.Connection, subject: str) -> Rows:
    """Register entries whose provision carried the subject's data, each with the time of
    the last provision to its recipient (APPI Art. 29(2) may count its period from it)."""
    columns = ", ".join(f"p.{c}" for c in PROVISION[:-1])
    last = "(SELECT max(q.ts) FROM provisions AS q WHERE q.recipient = p.recipient)"
    return _dicts(
        db.execute(
            f"SELECT {columns}, {last} FROM provision_subjects AS s JOIN provisions AS p "
            "ON p.id = s.provision_id WHERE s.subject = ? ORDER BY p.ts, p.id",
            (subject,),
        ),
        PROVISION,
    )


def limits(db: sqlite3.Connection, subject: str) -> Rows:
    """The restriction, suspension and objections in force for the subject."""
    return _dicts(
        db.execute(
            "SELECT kind, purpose, since FROM subject_limits WHERE subject = ? ORDER BY since",
            (subject,),
        ),
        ("limit", "purpose", "since"),
    )


# -- writes, in the caller's open write transaction --------------------------------------------


def link_provision(db: sqlite3.Connection, provision_id: int, subjects: Collection[str]) -> None:
    """Name the subjects whose data provision `provision_id` carried."""
    db.executemany(
        "INSERT INTO provision_subjects (provision_id, subject) VALUES (?, ?) "
        "ON CONFLICT DO NOTHING",
        [(provision_id, s) for s in sorted(set(subjects))],
    )


def reseal_record(
    db: sqlite3.Connection,
    subject: str,
    record_id: int,
    was: bytes,
    key_id: str,
    sealed: bytes,
) -> bool:
    """Replace the subject's record's sealed values, if they are still `was`; False if the
    record is not theirs, is gone, or changed since read."""
    return (
        db.execute(
            "UPDATE records SET key_id = ?, sealed = ? WHERE id = ? AND subject = ? AND sealed = ?",
            (key_id, sealed, record_id, subject, was),
        ).rowcount
        == 1
    )
