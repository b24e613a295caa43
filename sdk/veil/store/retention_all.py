"""Retention of veil's own records: the consent ledger, decisions and their reviews, the
provision register and per-subject keys, and each run's disposal record in the audit log.

Events and app records go first, off the loop in chunks (sqlite.py `dispose`, offloop.py);
these records are fewer (one row per consent change, decision or provision), so they go in
one write transaction, in a worker thread, together with the run's "disposal" audit entry: the
entry exists exactly when the rows are gone. The consent ledger's rows are deleted under
`ledger_disposal` (its trigger refuses any other delete), and the entry lists their ids in
`ledger_ids` so `veil audit verify` knows they left lawfully.

A per-subject key nothing is sealed under any more is released (its subject_keys mapping goes:
a returning subject gets a fresh key), and erased from the keystore, row and all
(`KeyStore.erase`), at a run at least KEY_GRACE later if still unused (`_settle_keys`). Keys
made in the last KEY_GRACE seconds are left alone (their first record may not be stored yet).
Legacy keys (`subject-<pseudonym>`) are erased at once; the audit entry names them by
subject_ref, never by their id.
"""

import asyncio
import dataclasses
import datetime as dt
import re
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import cast

import aiosqlite

from . import audit, layout, offloop
from .disposal import ledger_disposal
from .keys import KeyStore
from .sqlite import MAX_PARAMS, SQLiteStore

KEY_GRACE = 86400.0
SUBJECT_KEY = re.compile(r"subject-key-[0-9a-f]{32}")  # pseudonymise.subject_key's ids
LEGACY_KEY = re.compile(r"subject-[0-9a-f]{32}")  # before subject_keys: the pseudonym's

Held = Callable[[str, str | None], bool]  # (kind, purpose or consent scope) → kept by a hold


@dataclasses.dataclass(frozen=True, slots=True)
class RecordRules:
    """When each kind of record is due (retention.py works them out from the policy)."""

    consent: float  # a ledger row superseded (or subjectless) before this is due
    decisions: float  # a decision whose latest review (or itself) is older is due
    provisions: Callable[[str, float, float], bool]  # (recipient, ts, last ts to it) → due
    provisions_before: float  # no register entry at or after this is due
    requests: float  # a rights request answered (done or refused) before this is due
    held: Held


def _chunks(ids: list[str] | list[int]) -> Iterable[list[str] | list[int]]:
    for start in range(0, len(ids), MAX_PARAMS):
        yield ids[start : start + MAX_PARAMS]


def _delete(db: sqlite3.Connection, table: str, column: str, ids: list[str] | list[int]) -> int:
    n = 0
    for chunk in _chunks(ids):
        marks = ", ".join("?" * len(chunk))
        n += db.execute(f"DELETE FROM {table} WHERE {column} IN ({marks})", chunk).rowcount
    return n


def _ledger_due(db: sqlite3.Connection, cutoff: float) -> list[tuple[int, str]]:
    """(id, scope) of ledger rows no longer in force for `cutoff`'s proof period: superseded
    by a later row of the same subject and scope before it, or a subjectless refusal older
    than it. A subject's latest row is their choice in force (a refusal must stick) and stays."""
    return db.execute(
        "SELECT id, scope FROM consent_ledger c WHERE (c.subject IS NULL AND c.ts < ?) "
        "OR EXISTS (SELECT 1 FROM consent_ledger n WHERE n.subject = c.subject "
        "AND n.scope = c.scope AND n.ts < ? AND (n.ts > c.ts OR (n.ts = c.ts AND n.id > c.id)))",
        (cutoff, cutoff),
    ).fetchall()


def _decisions_due(db: sqlite3.Connection, cutoff: float) -> list[tuple[str, str, str]]:
    """(id, purpose, key id) of decisions older than `cutoff` with no review since."""
    return db.execute(
        "SELECT id, purpose, key_id FROM decisions d WHERE ts < ? AND NOT EXISTS "
        "(SELECT 1 FROM reviews r WHERE r.decision_id = d.id AND r.ts >= ?)",
        (cutoff, cutoff),
    ).fetchall()


def _provisions_due(
    db: sqlite3.Connection, due: Callable[[str, float, float], bool], before: float
) -> list[tuple[int, str]]:
    """(id, purpose) of register entries past their APPI period (decided by `due`), among
    those older than `before`."""
    rows = db.execute(
        "SELECT id, purpose, recipient, ts, "
        "(SELECT max(ts) FROM provisions q WHERE q.recipient = p.recipient) FROM provisions p "
        "WHERE ts < ?",
        (before,),
    ).fetchall()
    return [(i, purpose) for i, purpose, recipient, ts, last in rows if due(recipient, ts, last)]


def _still_sealing(db: sqlite3.Connection, key_id: str, freed: set[str]) -> bool:
    """Some row is sealed under the key, found by index through the key's subject (its
    mapping, or the pseudonym in a legacy id). An unmapped key was checked by the scan
    before (no one seals under a key no subject maps to), unless this run deleted a row
    under it: then by a scan of its own (rare: a key released, then used in that instant)."""
    row = db.execute("SELECT subject FROM subject_keys WHERE key_id = ?", (key_id,)).fetchone()
    subject = row[0] if row else (key_id[8:] if LEGACY_KEY.fullmatch(key_id) else None)
    if subject is None and key_id not in freed:
        return False
    by = "key_id = ?" if subject is None else "subject = ? AND key_id = ?"
    one = (key_id,) if subject is None else (subject, key_id)
    return bool(
        db.execute(
            f"SELECT EXISTS (SELECT 1 FROM records WHERE {by}) "
            f"OR EXISTS (SELECT 1 FROM decisions WHERE {by}) "
            "OR EXISTS (SELECT 1 FROM reviews WHERE key_id = ?)",
            (*one, *one, key_id),
        ).fetchone()[0]
    )


def _settle_keys(
    db: sqlite3.Connection, live: list[str], sealing: set[str], freed: set[str], now: float
) -> tuple[list[str], list[str]]:
    """(keys to erase now, keys released now), in the caller's transaction.

    A key nothing is sealed under is released first: its subject_keys mapping goes (the
    subject's next record gets a fresh key) and it waits KEY_GRACE in
    subject_keys_released. Only then, still unused, is it erased: a record sealed under it
    in the instant before its release (the sealing read the mapping, then waited for the
    write lock) is stored by then, and keeps it. A legacy key seals nothing new: it goes at
    once."""
    unused = [
        k for k in live if (k not in sealing or k in freed) and not _still_sealing(db, k, freed)
    ]
    legacy = [k for k in unused if LEGACY_KEY.fullmatch(k)]
    released = dict(db.execute("SELECT key_id, released FROM subject_keys_released").fetchall())
    mapped = [k for k in unused if not LEGACY_KEY.fullmatch(k)]
    due = [k for k in mapped if k in released and released[k] <= now - KEY_GRACE]
    new = [k for k in mapped if k not in released]
    _delete(db, "subject_keys", "key_id", new)
    db.executemany("INSERT INTO subject_keys_released VALUES (?, ?)", [(k, now) for k in new])
    # released keys erased now, gone some other way (an erasure) or in use again: forgotten
    settled = [k for k in released if k in due or k not in unused]
    _delete(db, "subject_keys_released", "key_id", settled)
    return legacy + due, new


class _RefKey:
    """The keystore as `audit.subject_ref` reads it, its one key read once on the loop: the
    worker thread then touches no keystore connection, and a first run may name 200,000
    legacy keys."""

    def __init__(self, keystore: KeyStore) -> None:
        self.key = keystore.named_key(audit.SUBJECT_REF_KEY)

    def named_key(self, key_id: str, create: bool = True) -> bytes | None:
        return self.key


def _key_names(refs: KeyStore, key_ids: list[str]) -> list[str]:
    """How the audit log names keys: a legacy id holds the pseudonym, so by subject_ref."""
    return [
        f"subject:{audit.subject_ref(refs, k[8:])}" if LEGACY_KEY.fullmatch(k) else k
        for k in key_ids
    ]


def _subject_keys(path: Path, now: float) -> list[str]:
    """Live subject keys made before the grace period; on a connection of its own, for a
    worker thread (keystore.py `destroy_expired` does the same)."""
    made_before = dt.datetime.fromtimestamp(now - KEY_GRACE, dt.UTC).isoformat(timespec="seconds")
    db = sqlite3.connect(path, timeout=10)
    try:
        rows = db.execute(
            "SELECT id FROM keys WHERE kind = 'named' AND destroyed_at IS NULL "
            "AND id LIKE 'subject-%' AND created_at <= ?",
            (made_before,),
        ).fetchall()
    finally:
        db.close()
    return [k for (k,) in rows if SUBJECT_KEY.fullmatch(k) or LEGACY_KEY.fullmatch(k)]


async def dispose_records(
    store: SQLiteStore,
    keystore: KeyStore,
    rules: RecordRules,
    entry: Mapping[str, object],
    now: float,
) -> tuple[dict[str, object], dict[str, int]]:
    """Dispose of every due record the holds leave, forget the keys nothing is sealed under,
    and append the run's "disposal" entry (`entry` plus what was done here), all in one
    transaction; then erase the keys, truncate the WAL. (The entry's details, rows deleted
    per table and subject keys erased.)

    The transaction runs in a worker thread on a connection of its own (a first run may
    delete many ledger rows: not on the loop), taking its turn with the loop's writes through
    the store's gate, as offloop.py's chunks do."""
    sealing = {
        cast(str, k)
        for (k,) in await store.scan(
            "SELECT key_id FROM records UNION SELECT key_id FROM decisions "
            "UNION SELECT key_id FROM reviews"
        )
    }
    live = await asyncio.to_thread(_subject_keys, keystore.path, now)
    refs = cast(KeyStore, _RefKey(keystore))
    async with store._gate:
        task = asyncio.ensure_future(
            asyncio.to_thread(_dispose, store.path, refs, rules, entry, sealing, live, now)
        )
        try:
            details, counts, keys = await asyncio.shield(task)
        except asyncio.CancelledError:  # the thread runs on: never leave it holding the lock
            await asyncio.gather(task, return_exceptions=True)
            raise
    store._anchor()  # the chain's head beside the store (audit.py)
    # After the commit: a key is erased only once no row can need it. Should this process
    # die first, the key is left unmapped and unused: a later run releases and erases it.
    await keystore.erase_off_loop(keys)
    await truncate_wal(store)
    return details, counts


def _dispose(
    path: Path,
    refs: KeyStore,  # only for subject_ref (_RefKey)
    rules: RecordRules,
    entry: Mapping[str, object],
    sealing: set[str],
    live: list[str],
    now: float,
) -> tuple[dict[str, object], dict[str, int], list[str]]:
    db = sqlite3.connect(path, timeout=offloop.BUSY_WAIT, isolation_level=None)
    try:
        for pragma in ("secure_delete=ON", "foreign_keys=ON", "synchronous=NORMAL"):
            db.execute(f"PRAGMA {pragma}")
        db.execute("BEGIN IMMEDIATE")
        out = _dispose_in(db, refs, rules, entry, sealing, live, now)
        db.execute("COMMIT")
        return out
    finally:
        db.close()  # an unfinished transaction rolls back


def _dispose_in(
    db: sqlite3.Connection,
    refs: KeyStore,
    rules: RecordRules,
    entry: Mapping[str, object],
    sealing: set[str],
    live: list[str],
    now: float,
) -> tuple[dict[str, object], dict[str, int], list[str]]:
    held_counts: dict[tuple[str, str | None], int] = {}

    def split(kind: str, rows: Iterable[tuple[object, ...]]) -> list[tuple[object, ...]]:
        """The rows no hold keeps; held ones counted by (kind, purpose)."""
        free = []
        for row in rows:
            purpose = cast(str | None, row[1])
            if rules.held(kind, purpose):
                held_counts[kind, purpose] = held_counts.get((kind, purpose), 0) + 1
            else:
                free.append(row)
        return free

    ledger = split("consent", _ledger_due(db, rules.consent))
    decisions = split("decisions", _decisions_due(db, rules.decisions))
    provisions = split("provisions", _provisions_due(db, rules.provisions, rules.provisions_before))
    ledger_ids = sorted(cast(int, r[0]) for r in ledger)
    decision_ids = [cast(str, r[0]) for r in decisions]
    with ledger_disposal(db, "retention"):
        ledger_rows = _delete(db, "consent_ledger", "id", ledger_ids)
    counts = {
        "consent_ledger": ledger_rows,
        "reviews": _delete(db, "reviews", "decision_id", decision_ids),
        "decisions": _delete(db, "decisions", "id", decision_ids),
        "provisions": _delete(db, "provisions", "id", [cast(int, r[0]) for r in provisions]),
        # answered requests only: an open one is kept however old (it is overdue, and listed)
        "rights_requests": db.execute(
            "DELETE FROM rights_requests WHERE closed IS NOT NULL AND closed < ?",
            (rules.requests,),
        ).rowcount,
    }
    freed = {cast(str, r[2]) for r in decisions}
    keys, released = _settle_keys(db, live, sealing, freed, now)
    counts["subject_keys"] = len(keys)
    details = {
        **entry,
        "disposed": [
            *cast(list[object], entry.get("disposed", [])),
            *(
                {"table": table, "rows": counts[table], "rule": rule}
                for table, rule in (
                    ("consent_ledger", "consent_proof"),
                    ("decisions", "decisions"),
                    ("reviews", "decisions"),
                    ("provisions", "appi_art_29"),
                    ("rights_requests", "rights_requests"),
                )
            ),
        ],
        "keys_destroyed": [
            *cast(list[object], entry.get("keys_destroyed", [])),
            *_key_names(refs, keys),
        ],
        "keys_released": released,  # random ids: erased at a run KEY_GRACE later
        "held_rows": [
            *cast(list[object], entry.get("held_rows", [])),
            *(
                {"kind": kind, "purpose": purpose, "rows": n}
                for (kind, purpose), n in sorted(held_counts.items(), key=str)
            ),
        ],
        "ledger_ids": ledger_ids,
    }
    audit.append(db, "disposal", details, ts=now)
    return details, counts, keys


async def count_due(
    store: SQLiteStore, kind: str, purpose: str, cutoffs: Mapping[str | None, float]
) -> int:
    """Events or app records of `purpose` a hold keeps past their retention: older than
    cutoffs[None], or of a version v older than cutoffs[v]; counted off the loop."""
    if kind == "events":
        table = layout.load(store.db).get(purpose)
        if table is None:
            return 0
        source, where, params = layout.quote(table.name), "1", list[object]()
    else:
        source, where, params = "records", "purpose = ?", list[object]([purpose])
    due = " OR ".join(
        "ts < ?" if version is None else "(policy_version = ? AND ts < ?)" for version in cutoffs
    )
    for version, cutoff in cutoffs.items():
        params += [cutoff] if version is None else [version, cutoff]
    [(n,)] = await store.scan(f"SELECT count(*) FROM {source} WHERE {where} AND ({due})", params)
    return cast(int, n)


async def truncate_wal(store: SQLiteStore) -> None:
    """Empty the WAL, whose frames still hold what the transaction deleted (offloop.py)."""
    async with aiosqlite.connect(
        offloop._uri(store.path, "rw"), uri=True, isolation_level=None
    ) as db:
        await offloop.truncate_wal(db, store._gate)
