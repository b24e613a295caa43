"""Subject limits in the event store (`subject_limits`; rights/limits.py says what each means).

One row per limit in force: ('restriction', ''), ('suspension', ''), ('objection', purpose).
Lifting a limit deletes its row; the audit log keeps the history.
"""

import sqlite3
from collections.abc import Collection

RESTRICTION, SUSPENSION, OBJECTION = "restriction", "suspension", "objection"
# The subjects whose rows no query, provision or decision may use: restricted or suspended.
RESTRICTED_SUBJECTS = (
    "SELECT subject FROM subject_limits WHERE kind IN ('restriction', 'suspension')"
)
MAX_PARAMS = 500


def counted_rows(columns: Collection[str]) -> tuple[str, str]:
    """For a count over a purpose table `t` with `columns`: the condition that leaves out
    restricted and suspended subjects' rows, and the one that says a row is cookieless (it
    carries no subject: its visitor and network pseudonyms count)."""
    if "subject" not in columns:
        return "1", "1"
    return f"(t.subject IS NULL OR t.subject NOT IN ({RESTRICTED_SUBJECTS}))", "t.subject IS NULL"


def impose(db: sqlite3.Connection, subject: str, kind: str, purpose: str, now: float) -> bool:
    """In the caller's transaction; False when the limit was in force already."""
    return (
        db.execute(
            "INSERT INTO subject_limits (subject, kind, purpose, since) VALUES (?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            (subject, kind, purpose, now),
        ).rowcount
        == 1
    )


def lift(db: sqlite3.Connection, subject: str, kind: str, purpose: str) -> bool:
    """In the caller's transaction; False when the limit was not in force."""
    return (
        db.execute(
            "DELETE FROM subject_limits WHERE subject = ? AND kind = ? AND purpose = ?",
            (subject, kind, purpose),
        ).rowcount
        == 1
    )


def active(db: sqlite3.Connection, subjects: Collection[str]) -> dict[str, frozenset[str]]:
    """Each limited subject's limits, as "restriction", "suspension", "objection:<purpose>";
    subjects without one are left out."""
    found: dict[str, set[str]] = {}
    wanted = list(subjects)
    for start in range(0, len(wanted), MAX_PARAMS):
        chunk = wanted[start : start + MAX_PARAMS]
        for subject, kind, purpose in db.execute(
            "SELECT subject, kind, purpose FROM subject_limits "
            f"WHERE subject IN ({', '.join('?' * len(chunk))})",
            chunk,
        ):
            found.setdefault(subject, set()).add(f"{kind}:{purpose}" if purpose else kind)
    return {s: frozenset(v) for s, v in found.items()}
