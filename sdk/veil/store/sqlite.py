"""The embedded store: one SQLite writer connection, WAL, short transactions.

Writes run on the event loop's thread, in transactions of at most `CHUNK` rows with a yield in
between (~2 ms each). That is deliberate, and measured (docs/benchmarks.md): in a worker
thread (aiosqlite) every row's parameter binding waits for the GIL, and under HTTP load a
1,000-row write stretched from 10 ms to ~300 ms, filled the capture queue and refused
beacons. The loop's connection has no busy timeout (SQLite's busy handler would sleep on the
loop): a write waits for another process's lock asleep, briefly (`_begin`), and the writer
keeps a batch the store could not take and retries it. Every long statement runs off the
loop, on aiosqlite's thread with a connection of its own (offloop.py): retention's deletes,
in chunks that take turns with the loop's writes, and long reads (`scan`: the analytics
engine's).

`secure_delete` makes SQLite overwrite deleted content, so disposal is unrecoverable from the
database file; a TRUNCATE checkpoint after deletions does the same for the WAL.
"""

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Mapping, Sequence
from operator import itemgetter
from pathlib import Path
from typing import cast

from ..errors import Drop, RowsRefused, StoreError
from ..files import private_sqlite
from ..policy import Policy
from ..terms import Terms
from . import audit, layout, offloop, rollups, subject_reads, versions
from .base import CONSENT_COLUMNS, PROVISION_COLUMNS
from .columns import ROW_COLUMNS, Row, SQLValue
from .schema import MIGRATIONS

CHUNK = 250  # rows per transaction, by default: ~2 ms of the loop an app's requests share
# Seconds the loop's connection waits for another process's write lock: none. SQLite's busy
# handler sleeps on the calling thread, here the event loop's: at 0.2 s a store locked for
# 10 s froze the loop ~200 ms per write attempt. A locked store now fails at once and the
# writer retries asynchronously, keeping the batch (writer.py).
BUSY_TIMEOUT = 0.0
LOCK_WAIT = 0.25  # seconds a write waits for the lock, asleep (_begin); then it fails
LOCK_POLL = 0.005
OPEN_LOCK_WAIT = 10.0  # at open, for another process's transaction (a retention run's too)
# How long a batch id is remembered. A captured batch can be replayed only while its signed
# timestamp is in the collector's window (±300 s); a sender retries a batch within seconds.
BATCH_MEMORY = 3600.0
# Events go to their purpose's table (layout.py). A retried batch carries the same event ids:
# stored once. Only that conflict is ignored; NOT NULL and CHECK failures, and a value in a
# column the purpose's table lacks, still fail the transaction.
_PURPOSE = ROW_COLUMNS.index("purpose")
_PURPOSE_OF = itemgetter(_PURPOSE)
_SUBJECT = ROW_COLUMNS.index("subject")
# Bound parameters per statement: SQLite before 3.32 allows 999.
MAX_PARAMS = 500

log = logging.getLogger("veil.store")

_BUSY_CODES = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def is_locked(exc: BaseException | None) -> bool:
    """The store is locked by another connection (SQLITE_BUSY or LOCKED, possibly wrapped in
    a StoreError): it will take the write once the lock is released."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, sqlite3.OperationalError) and (
            (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in _BUSY_CODES
        ):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _insert_row(db: sqlite3.Connection, table: str, values: Mapping[str, object]) -> int:
    """One row into `table`, in the caller's transaction; its row id."""
    row_id = db.execute(
        f"INSERT INTO {table} ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
        tuple(values.values()),
    ).lastrowid
    if row_id is None:  # set by every successful INSERT
        raise StoreError(f"no row id for the row inserted into {table}")
    return row_id


def _without_erased(
    db: sqlite3.Connection, parts: list[tuple[layout.Table, Sequence[Row]]]
) -> tuple[list[tuple[layout.Table, Sequence[Row]]], int]:
    """The rows, less those of subjects the ledger no longer knows, and how many those were.

    A row carries a subject only under a consent-based purpose, which a grant on the ledger
    let through; an erasure removes the subject's every ledger row. Read in the write
    transaction, so no erasure can commit between this look and the insert."""
    subjects = {r[_SUBJECT] for _, part in parts for r in part if isinstance(r[_SUBJECT], str)}
    if not subjects:
        return parts, 0
    wanted, known = list(subjects), set[object]()
    for start in range(0, len(wanted), MAX_PARAMS):
        ids = wanted[start : start + MAX_PARAMS]
        known.update(
            s
            for (s,) in db.execute(
                "SELECT DISTINCT subject FROM consent_ledger "
                f"WHERE subject IN ({', '.join('?' * len(ids))})",
                ids,
            )
        )
    gone = subjects - known
    if not gone:
        return parts, 0
    kept = [(table, [r for r in part if r[_SUBJECT] not in gone]) for table, part in parts]
    erased = sum(map(len, (p for _, p in parts))) - sum(map(len, (p for _, p in kept)))
    return [(table, part) for table, part in kept if part], erased


class SQLiteStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        # Rows per transaction. A commit costs ~0.5 ms: a process whose loop serves no
        # requests (`veil serve`'s writer) takes bigger ones, ~1.5 µs a row less.
        self.chunk = CHUNK
        self._db: sqlite3.Connection | None = None
        self._prune_batches_at = 0.0
        self._tables: dict[str, layout.Table] = {}  # by purpose: refreshed when one is missing
        self._agents = layout.AgentIds()
        # The loop's write transactions and off-loop disposal chunks take turns here, so the
        # loop never sleeps in SQLite's busy handler behind a chunk (offloop.py).
        self._gate = asyncio.Lock()

    async def open(self, policy: Policy | None = None) -> None:
        try:
            private_sqlite(self.path)  # 0600 (-wal, -shm follow), in a 0700 directory if new
            self._db = sqlite3.connect(
                self.path, isolation_level=None, timeout=BUSY_TIMEOUT, check_same_thread=False
            )
            for pragma in (
                "journal_mode=WAL",
                "synchronous=NORMAL",
                "secure_delete=ON",
                "foreign_keys=ON",
            ):
                self._db.execute(f"PRAGMA {pragma}")
            (before,) = self.db.execute("PRAGMA user_version").fetchone()
            self._migrate()
            if before == 0:  # a new store: a head file left by a store deleted here is stale
                audit.head_path(self.path).unlink(missing_ok=True)
            if before < audit.MIGRATION:  # upgraded to the audit log: chain the ledger so far
                await self._begin(OPEN_LOCK_WAIT)
                with self._transaction(begun=True) as db:
                    audit.adopt_ledger(db)
                self._anchor()
            legacy = layout.has_legacy(self.db)
            if policy is not None or legacy:
                # `veil serve`'s workers open the store the writer process has open: wait for
                # the lock, asleep, rather than fail the open (a retry would answer 503s)
                await self._begin(OPEN_LOCK_WAIT)
                with self._transaction(begun=True) as db:
                    if policy is not None:
                        # checked against the versions this store has run (a changed
                        # policy carries a new version, a new version a change entry, none
                        # is enforced before its effective date): versions.py
                        versions.register(db, policy)
                        db.executemany(
                            "INSERT INTO purposes VALUES (?, ?, ?, ?, ?) ON CONFLICT (key) "
                            "DO UPDATE SET legal_basis=excluded.legal_basis, "
                            "needs_consent=excluded.needs_consent, "
                            "retention_seconds=excluded.retention_seconds, "
                            "policy_version=excluded.policy_version",
                            [
                                (
                                    p.key,
                                    p.legal_basis,
                                    p.needs_consent,
                                    int(p.retention.total_seconds()),
                                    policy.version,
                                )
                                for p in policy.purposes.values()
                            ],
                        )
                    moved = self._lay_out(db, policy)
                if moved:  # event_log's rows moved: no copy left in the WAL either
                    self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._tables = layout.load(self.db)
        except (OSError, sqlite3.Error) as exc:
            await self.close()
            raise StoreError(f"store.url: cannot open {self.path}: {exc}") from None
        except BaseException:
            await self.close()
            raise

    @contextlib.contextmanager
    def _transaction(self, begun: bool = False) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT, rolled back on any error (a failed COMMIT included)."""
        db = self.db
        if not begun:
            db.execute("BEGIN IMMEDIATE")
        try:
            yield db
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    @contextlib.asynccontextmanager
    async def _writing(self) -> AsyncIterator[sqlite3.Connection]:
        """A write transaction on the loop's connection, taken in turn with off-loop disposal
        (every write on the loop goes through here once the store is open)."""
        async with self._gate:
            await self._begin()
            with self._transaction(begun=True) as db:
                yield db

    async def _begin(self, wait: float = LOCK_WAIT) -> None:
        """BEGIN IMMEDIATE, waiting up to `wait` for another process's write lock in short
        asleep polls (BUSY_TIMEOUT is 0: SQLite's busy handler would sleep on the loop). A
        consent change during a CLI retention run waits its turn instead of failing."""
        deadline = time.monotonic() + wait
        while True:
            try:
                self.db.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if not is_locked(exc) or time.monotonic() >= deadline:
                    raise
            await asyncio.sleep(LOCK_POLL)

    @staticmethod
    def _lay_out(db: sqlite3.Connection, policy: Policy | None) -> bool:
        """The purpose tables the policy needs (created, or broadened by added columns), the
        legacy event_log's rows moved into them, and the views rebuilt if a table changed;
        in the open transaction (layout.py). True if event_log's rows were moved (here: not
        by another process that opened the store first)."""
        wanted = layout.policy_columns(policy) if policy is not None else {}
        legacy = layout.has_legacy(db)
        if legacy:
            layout.move_legacy(db, wanted)
        if layout.ensure(db, wanted) or legacy or not layout.views_current(db):
            layout.build_views(db)
        rollups.ensure(db)  # the triggers that keep rollups current
        return legacy

    def _migrate(self) -> None:
        (version,) = self.db.execute("PRAGMA user_version").fetchone()
        if version > len(MIGRATIONS):
            raise StoreError(
                f"{self.path} has schema version {version}, newer than this veil "
                f"({len(MIGRATIONS)}): upgrade veil"
            )
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            # executescript commits first; the version bump rides in the same script.
            self.db.executescript(f"BEGIN;\n{script}\nPRAGMA user_version={number};\nCOMMIT;")
        if version < len(MIGRATIONS):
            # a migration may erase values (clear network prefixes): overwrite them in the
            # database file now, not at some later automatic checkpoint
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError("the store is not open")
        return self._db

    async def write(
        self, rows: Sequence[Row], drops: Counter[str], day: str, batch: str | None = None
    ) -> None:
        """Rows in transactions of `chunk`, yielding between them; drop counts with the last.

        A failure leaves earlier chunks stored: retrying the same rows is safe, their event
        ids are stored once. Drop counts carry no ids: `batch` names the batch (the same on
        every retry or replay of it), and a batch's drops are added only the first time.

        Each row goes to its purpose's table, narrowed to its columns (layout.py); a chunk
        with a row its purpose's table cannot hold is refused whole (RowsRefused). A row of a
        subject with nothing on the consent ledger is not stored (`erased`): the writer read
        the batch's consent before an erasure, perhaps in another process, committed.
        """
        chunk, drops = self.chunk, Counter(drops)  # a copy: a retry starts from the caller's
        for start in range(0, max(len(rows), 1), chunk):
            last = start + chunk >= len(rows)
            parts = self._by_table(rows[start : start + chunk])
            try:
                async with self._writing() as db:
                    parts, erased = _without_erased(db, parts)
                    if erased:
                        drops[Drop.ERASED] += erased
                    self._insert_rows(db, parts)
                    if last and drops and self._first_time(db, batch):
                        db.executemany(
                            "INSERT INTO drops VALUES (?, ?, ?) ON CONFLICT (day, reason) "
                            "DO UPDATE SET count = count + excluded.count",
                            [(day, str(reason), n) for reason, n in drops.items()],
                        )
            except BaseException:  # rolled back: agents it added are gone from the table
                self._agents.forget()
                raise
            if not last:
                await asyncio.sleep(0)

    def _insert_rows(
        self, db: sqlite3.Connection, parts: list[tuple[layout.Table, Sequence[Row]]]
    ) -> None:
        """Each group into its table, projected onto its columns, agents as ids."""
        try:
            for table, part in parts:
                if table.has_agent:
                    ids = self._agents.for_rows(db, part)
                    values = zip(map(table.project, part), ids, strict=True)
                    db.executemany(table.insert, [(*v, a) for v, a in values])
                else:
                    db.executemany(table.insert, map(table.project, part))
                rollups.invalidate_rows(db, table.purpose, part)  # in this transaction
        except sqlite3.IntegrityError as exc:  # names the constraint, not values
            raise RowsRefused(f"rows break a constraint of the store: {exc}") from None

    def _by_table(self, rows: Sequence[Row]) -> list[tuple[layout.Table, Sequence[Row]]]:
        """The rows grouped by their purpose's table, each group checked to carry nothing
        its table lacks; RowsRefused (naming the purpose and column, never a value) else."""
        if not rows:
            return []
        try:
            purposes = set(map(_PURPOSE_OF, rows))
            if len(purposes) == 1:
                groups: dict[object, Sequence[Row]] = {purposes.pop(): rows}
            else:
                lists: dict[object, list[Row]] = {p: [] for p in purposes}
                for row in rows:
                    lists[row[_PURPOSE]].append(row)
                groups = dict(lists)
        except TypeError:  # an unhashable purpose off the wire
            raise RowsRefused("a row's purpose must be text") from None
        out = []
        for purpose, part in groups.items():
            table = self._table(purpose)
            if table is None:
                raise RowsRefused(
                    "rows break a constraint of the store: FOREIGN KEY constraint failed "
                    f"(purpose {str(purpose)[:60]!r} is not one of this store's)"
                )
            try:
                table.refuse_extra(part)
            except RowsRefused:  # another process's policy may have broadened it since
                self._tables = layout.load(self.db)
                table = self._tables[table.purpose]  # tables are never dropped
                table.refuse_extra(part)
            out.append((table, part))
        return out

    def _table(self, purpose: object) -> layout.Table | None:
        """The purpose's table; looked up again in the database when this store has not
        seen it (another process may have created it since this one opened)."""
        if not isinstance(purpose, str):  # off the wire: no table has such a key
            return None
        table = self._tables.get(purpose)
        if table is None:
            self._tables = layout.load(self.db)
            table = self._tables.get(purpose)
        return table

    # -- veil's own records (LocalStore): one transaction per call ------------------------------

    async def append_consents(self, records: Sequence[Mapping[str, object]]) -> None:
        """Consent records, all in one transaction (a request's scopes land together)."""
        if not records:
            return
        insert = (
            f"INSERT INTO consent_ledger ({', '.join(CONSENT_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(CONSENT_COLUMNS))})"
        )
        async with self._writing() as db:
            for r in records:  # each row chained in the audit log, in this transaction
                row_id = db.execute(insert, tuple(r[c] for c in CONSENT_COLUMNS)).lastrowid
                audit.append_consent(db, cast(int, row_id))
        self._anchor()

    async def consent_histories(
        self, subjects: Collection[str]
    ) -> dict[str, list[dict[str, object]]]:
        """Each subject's ledger records, oldest first; chunked under SQLite's parameter
        limit, the chunks read in one snapshot (one statement is one already)."""
        out: dict[str, list[dict[str, object]]] = {s: [] for s in subjects}
        wanted = list(out)
        with (
            subject_reads.snapshot(self.db)
            if len(wanted) > MAX_PARAMS
            else contextlib.nullcontext(self.db)
        ) as db:
            for start in range(0, len(wanted), MAX_PARAMS):
                chunk = wanted[start : start + MAX_PARAMS]
                for row in db.execute(
                    f"SELECT {', '.join(CONSENT_COLUMNS)} FROM consent_ledger "
                    f"WHERE subject IN ({', '.join('?' * len(chunk))}) ORDER BY ts, id",
                    chunk,
                ):
                    record = dict(zip(CONSENT_COLUMNS, row, strict=True))
                    record["explicit"], record["gpc"] = (
                        bool(record["explicit"]),
                        bool(record["gpc"]),
                    )
                    out[row[1]].append(record)
        return out

    async def add_record(
        self,
        *,
        ts: float,
        purpose: str,
        policy_version: str,
        subject: str,
        fields: str,
        key_id: str,
        sealed: bytes,
        subject_ref: str | None = None,
    ) -> None:
        await self._insert(
            "records",
            {
                "ts": ts,
                "purpose": purpose,
                "policy_version": policy_version,
                "subject": subject,
                "fields": fields,
                "key_id": key_id,
                "sealed": sealed,
            },
            "record",
            {"purpose": purpose, "fields": fields, "subject_ref": subject_ref},
            id_as="record_id",
        )

    async def add_decision(
        self,
        *,
        decision_id: str,
        ts: float,
        decision_type: str,
        purpose: str,
        policy_version: str,
        subject: str,
        legal_effect: bool,
        basis: str,
        evidence: str | None,
        key_id: str,
        sealed: bytes,
        subject_ref: str | None = None,
    ) -> None:
        await self._insert(
            "decisions",
            {
                "id": decision_id,
                "ts": ts,
                "type": decision_type,
                "purpose": purpose,
                "policy_version": policy_version,
                "subject": subject,
                "legal_effect": legal_effect,
                "basis": basis,
                "evidence": evidence,
                "key_id": key_id,
                "sealed": sealed,
            },
            "decision",
            {
                # the id is the subject's proof for contesting: the log keeps only its hash
                "decision_ref": audit.id_ref(decision_id),
                "type": decision_type,
                "purpose": purpose,
                "legal_effect": legal_effect,
                "basis": basis,
                "evidence": evidence,
                "subject_ref": subject_ref,
            },
        )

    async def decision_subject(self, decision_id: str) -> str | None:
        row = self.db.execute(
            "SELECT subject FROM decisions WHERE id = ?", (decision_id,)
        ).fetchone()
        return None if row is None else row[0]

    async def add_review(
        self,
        *,
        ts: float,
        decision_id: str,
        status: str,
        key_id: str,
        sealed: bytes,
        subject_ref: str | None = None,
    ) -> int:
        return await self._insert(
            "reviews",
            {
                "ts": ts,
                "decision_id": decision_id,
                "status": status,
                "key_id": key_id,
                "sealed": sealed,
            },
            "review",
            {
                "decision_ref": audit.id_ref(decision_id),
                "status": status,
                "subject_ref": subject_ref,
            },
            id_as="review_id",
        )

    async def add_provision(
        self,
        *,
        ts: float,
        recipient: str,
        country: str,
        role: str,
        purpose: str,
        categories: str,
        subjects: int,
        records: int,
        basis: str,
        safeguard: str,
        transfer: str | None,
        policy_version: str | None = None,
        subject_pseudonyms: Collection[str] = (),
    ) -> int:
        """The entry, and whose data it carried (`subject_pseudonyms`: what a subject's
        export lists as provided to whom), in one transaction."""
        values = {
            "ts": ts,
            "recipient": recipient,
            "country": country,
            "role": role,
            "purpose": purpose,
            "categories": categories,
            "subjects": subjects,
            "records": records,
            "basis": basis,
            "safeguard": safeguard,
            "transfer": transfer,
            "policy_version": policy_version,
        }
        async with self._writing() as db:
            provision_id = _insert_row(db, "provisions", values)
            subject_reads.link_provision(db, provision_id, subject_pseudonyms)
            audit.append(
                db,
                "provision",
                {"provision_id": provision_id}
                | {k: values[k] for k in ("recipient", "country", "purpose", "categories")}
                | {k: values[k] for k in ("subjects", "records", "basis", "transfer")},
                ts=ts,
            )
        self._anchor()
        return provision_id

    async def provisions(self) -> list[dict[str, object]]:
        """The register, read off the loop: an export may be long."""
        rows = await self.scan(f"SELECT {', '.join(PROVISION_COLUMNS)} FROM provisions ORDER BY id")
        return [dict(zip(PROVISION_COLUMNS, row, strict=True)) for row in rows]

    async def policy_terms(self, version: str) -> dict[str, Terms]:
        return {
            purpose: Terms.from_row(fields, seconds, recipients)
            for purpose, fields, seconds, recipients in self.db.execute(
                "SELECT purpose, fields, retention_seconds, recipients FROM policy_terms "
                "WHERE version = ?",
                (version,),
            )
        }

    async def promised_retentions(self) -> dict[tuple[str, str], int]:
        return {
            (purpose, version): seconds
            for version, purpose, seconds in self.db.execute(
                "SELECT version, purpose, retention_seconds FROM policy_terms"
            )
        }

    async def _insert(
        self,
        table: str,
        values: dict[str, object],
        kind: str,
        details: dict[str, object],
        id_as: str | None = None,
    ) -> int:
        """One row into one of veil's own tables, in its own transaction with its audit entry
        (`kind`, `details`, and the row id under `id_as` if given); its row id."""
        async with self._writing() as db:
            row_id = _insert_row(db, table, values)
            if id_as is not None:
                details = {id_as: row_id, **details}
            audit.append(db, kind, details, ts=cast(float, values["ts"]))
        self._anchor()
        return row_id

    def _anchor(self) -> None:
        """The audit chain's head, after a commit, to the file beside the store (audit.py)."""
        try:
            audit.anchor(self.db, self.path)
        except OSError as exc:  # committed already: the next write anchors it again
            log.warning("audit head not written beside %s: %s", self.path, exc.strerror)
        except StoreError as exc:  # a damaged head file is evidence: kept for `verify`
            log.warning("audit head not written: %s", exc)

    def _first_time(self, db: sqlite3.Connection, batch: str | None) -> bool:
        """Record `batch` as applied, in the caller's transaction; False if it already was."""
        if batch is None:
            return True
        now = time.time()
        if now >= self._prune_batches_at:  # a few times an hour: the table stays small
            db.execute("DELETE FROM applied_batches WHERE applied < ?", (now - BATCH_MEMORY,))
            self._prune_batches_at = now + BATCH_MEMORY / 12
        return (
            db.execute(
                "INSERT INTO applied_batches VALUES (?, ?) ON CONFLICT (id) DO NOTHING",
                (batch, now),
            ).rowcount
            == 1
        )

    async def dispose(
        self,
        cutoffs: Mapping[str, float],
        *,
        by_version: Mapping[tuple[str, str], float] | None = None,
        held: Callable[[str, str], bool] | None = None,
    ) -> dict[str, int]:
        """Delete events (each purpose's table) and app records older than their purpose's
        cutoff, and those of a (purpose, policy_version) older than its own later cutoff,
        then the agents no event references any more; zero them out of the WAL too. What
        `held(kind, purpose)` says a legal hold keeps ("events" or "records") stays.

        Off the event loop, in chunks that hold the write lock ~50 ms each, with
        `secure_delete` on the deleting connection and a TRUNCATE checkpoint after
        (offloop.py): the host app keeps serving, and this store's writer keeps writing,
        while a month of rows is deleted."""
        if self._db is None:
            raise StoreError("the store is not open")
        self._tables = tables = layout.load(self.db)  # another process may have added some

        def governed(purpose: str, version: str | None, cutoff: float) -> list[offloop.Expiry]:
            """The purpose's events and app records, of one policy version if given; each
            `where` is served by an index on ts (events: a table per purpose) or on
            (purpose, ts) (records)."""
            extra, more = (" AND policy_version = ?", (version,)) if version else ("", ())
            out = []
            if (table := tables.get(purpose)) is not None and not kept("events", purpose):
                out.append((layout.quote(table.name), f"1{extra}", more))
            if not kept("records", purpose):
                out.append(("records", f"purpose = ?{extra}", (purpose, *more)))
            return [offloop.Expiry(purpose, t, "ts", w, p, cutoff) for t, w, p in out]

        def kept(kind: str, purpose: str) -> bool:
            return held is not None and held(kind, purpose)

        expiries = [e for p, cutoff in cutoffs.items() for e in governed(p, None, cutoff)]
        expiries += [
            e for (p, v), cutoff in (by_version or {}).items() for e in governed(p, v, cutoff)
        ]
        with_agents = [layout.quote(t.name) for t in tables.values() if t.has_agent]
        return await offloop.delete_expired(self.path, self._gate, expiries, with_agents)

    async def select(self, sql: str, params: Sequence[object] = ()) -> list[dict[str, SQLValue]]:
        """Rows of a short read-only query over veil's tables, as dicts. SQLite's own, not
        part of LocalStore: veil's modules use the typed methods above (tests read with it)."""
        cursor = self.db.execute(sql, params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]

    async def scan(self, sql: str, params: Sequence[object] = ()) -> list[tuple[SQLValue, ...]]:
        """Rows of a long read-only query (an analyst's scan of millions of rows, an export),
        read off the event loop on a read-only connection of its own; cancelling the caller
        interrupts the query."""
        return await offloop.read(self.path, sql, params)

    async def drop_counts(self, since_day: str | None = None) -> dict[str, int]:
        rows = await self.select(
            "SELECT reason, SUM(count) AS n FROM drops WHERE day >= ? "
            "GROUP BY reason ORDER BY reason",
            (since_day or "",),
        )
        # reason is TEXT NOT NULL; SUM of integer counts is an integer
        return {cast(str, r["reason"]): cast(int, r["n"]) for r in rows}

    async def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            db.close()
