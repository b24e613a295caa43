"""The embedded store: one SQLite writer connection, WAL, short transactions.

Writes run on the event loop's thread, in transactions of at most `CHUNK` rows with a yield in
between (~2 ms each). That is deliberate, and measured (docs/benchmarks.md): in a worker
thread (aiosqlite) every row's parameter binding waits for the GIL, and under HTTP load a
1,000-row write stretched from 10 ms to ~300 ms, filled the capture queue and refused
beacons. A short busy timeout keeps a second writer process from stalling the loop; the
writer retries instead. Analyst reads (`aggregate`) can be long and run in a thread, on a
connection of their own.

`secure_delete` makes SQLite overwrite deleted content, so disposal is unrecoverable from the
database file; a TRUNCATE checkpoint after deletions does the same for the WAL.
"""

import asyncio
import contextlib
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..errors import QueryError, StoreError
from ..pipeline import ROW_COLUMNS
from ..policy import Policy, policy_digest
from ..registry import DIMENSIONS
from .base import Aggregate
from .schema import MIGRATIONS

CHUNK = 250  # rows per transaction
BUSY_TIMEOUT = 0.2  # seconds the loop may wait for another process's write lock
# A retried batch carries the same event ids: stored once. Only that conflict is ignored;
# NOT NULL, CHECK and foreign-key failures still fail the transaction.
_INSERT = (f"INSERT INTO event_log ({', '.join(ROW_COLUMNS)}) "
           f"VALUES ({', '.join('?' * len(ROW_COLUMNS))}) ON CONFLICT (event_id) DO NOTHING")
_DIMENSION_SQL = {d: d for d in DIMENSIONS} | {"day": "date(ts, 'unixepoch')"}


class SQLiteStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None

    async def open(self, policy: Policy | None = None) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=BUSY_TIMEOUT,
                                       check_same_thread=False)
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "secure_delete=ON",
                           "foreign_keys=ON"):
                self._db.execute(f"PRAGMA {pragma}")
            self._migrate()
            if policy is not None:
                with self._transaction() as db:
                    self._register_policy(db, policy)
                    db.executemany(
                        "INSERT INTO purposes VALUES (?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE "
                        "SET legal_basis=excluded.legal_basis, "
                        "needs_consent=excluded.needs_consent, "
                        "retention_seconds=excluded.retention_seconds, "
                        "policy_version=excluded.policy_version",
                        [(p.key, p.legal_basis, p.needs_consent,
                          int(p.retention.total_seconds()), policy.version)
                         for p in policy.purposes.values()])
        except (OSError, sqlite3.Error) as exc:
            await self.close()
            raise StoreError(f"store.url: cannot open {self.path}: {exc}") from None
        except BaseException:
            await self.close()
            raise

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT, rolled back on any error (a failed COMMIT included)."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    @staticmethod
    def _register_policy(db: sqlite3.Connection, policy: Policy) -> None:
        """Remember each policy version's digest; a changed policy must carry a new version."""
        digest = policy_digest(policy)
        row = db.execute("SELECT digest FROM policy_versions WHERE version = ?",
                         (policy.version,)).fetchone()
        if row is None:
            db.execute("INSERT INTO policy_versions VALUES (?, ?, ?, ?)",
                       (policy.version, policy.effective.isoformat(), digest, time.time()))
        elif row[0] != digest:
            raise StoreError(f"policy.version: the policy changed but its version "
                             f"{policy.version!r} did not; bump policy.version and add a "
                             "[[policy.changes]] entry saying what changed")

    def _migrate(self) -> None:
        (version,) = self.db.execute("PRAGMA user_version").fetchone()
        if version > len(MIGRATIONS):
            raise StoreError(f"{self.path} has schema version {version}, newer than this veil "
                             f"({len(MIGRATIONS)}): upgrade veil")
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            # executescript commits first; the version bump rides in the same script.
            self.db.executescript(f"BEGIN;\n{script}\nPRAGMA user_version={number};\nCOMMIT;")

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError("the store is not open")
        return self._db

    async def write(self, rows: Sequence[tuple], drops: Counter, day: str) -> None:
        """Rows in transactions of CHUNK, yielding between them; drop counts with the last.

        A failure leaves earlier chunks stored: retrying the same rows is safe, their event
        ids are stored once.
        """
        for start in range(0, max(len(rows), 1), CHUNK):
            last = start + CHUNK >= len(rows)
            with self._transaction() as db:
                if rows:
                    db.executemany(_INSERT, rows[start:start + CHUNK])
                if last and drops:
                    db.executemany(
                        "INSERT INTO drops VALUES (?, ?, ?) ON CONFLICT (day, reason) "
                        "DO UPDATE SET count = count + excluded.count",
                        [(day, str(reason), n) for reason, n in drops.items()])
            if not last:
                await asyncio.sleep(0)

    async def append_consents(self, records: Sequence[dict]) -> None:
        """Consent records, all in one transaction (a request's scopes land together)."""
        columns = list(records[0])
        with self._transaction() as db:
            db.executemany(f"INSERT INTO consent_ledger ({', '.join(columns)}) "
                           f"VALUES ({', '.join('?' * len(columns))})",
                           [tuple(r[c] for c in columns) for r in records])

    async def insert(self, table: str, values: dict) -> int:
        """One row into one of veil's own tables, in its own transaction; its row id."""
        with self._transaction() as db:
            return db.execute(f"INSERT INTO {table} ({', '.join(values)}) "
                              f"VALUES ({', '.join('?' * len(values))})",
                              tuple(values.values())).lastrowid

    async def dispose(self, cutoffs: dict[str, float],
                      tables: tuple[tuple[str, str, str], ...]) -> dict[str, int]:
        """Delete rows older than their purpose's cutoff; zero them out of the WAL too."""
        deleted: dict[str, int] = {}
        with self._transaction() as db:
            for purpose, cutoff in cutoffs.items():
                for table, ts, purpose_column in tables:
                    cursor = db.execute(
                        f"DELETE FROM {table} WHERE {purpose_column} = ? AND {ts} < ?",
                        (purpose, cutoff))
                    deleted[purpose] = deleted.get(purpose, 0) + cursor.rowcount
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return deleted

    async def select(self, sql: str, params: Sequence = ()) -> list[dict]:
        """Rows of a short read-only query over veil's tables, as dicts."""
        cursor = self.db.execute(sql, params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]

    async def aggregate(self, by: Sequence[str], purpose: str, since: float | None,
                        min_group_size: int) -> Aggregate:
        unknown = [d for d in by if d not in _DIMENSION_SQL]
        if unknown:
            raise QueryError(f"cannot group by {unknown}: choose from {', '.join(DIMENSIONS)}")
        groups = ", ".join(_DIMENSION_SQL[d] for d in by) or "NULL"
        where, params = "purpose = ?", [purpose]
        if since is not None:
            where += " AND ts >= ?"
            params.append(since)
        sql = (f"SELECT {groups}, COUNT(*), COUNT(DISTINCT visitor) FROM event_log "
               f"WHERE {where} GROUP BY {groups} ORDER BY COUNT(*) DESC")

        def scan() -> list[tuple]:  # a scan of millions of rows: off the loop, own connection
            reader = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
            try:
                return reader.execute(sql, params).fetchall()
            finally:
                reader.close()

        kept, suppressed = [], 0
        for row in await asyncio.to_thread(scan):
            if row[-1] >= min_group_size:
                kept.append(tuple(row))
            else:
                suppressed += 1
        return Aggregate(columns=(*by, "events", "visitors"), rows=kept,
                         suppressed_groups=suppressed)

    async def drop_counts(self, since_day: str | None = None) -> dict[str, int]:
        rows = await self.select("SELECT reason, SUM(count) AS n FROM drops WHERE day >= ? "
                                 "GROUP BY reason ORDER BY reason", (since_day or "",))
        return {r["reason"]: r["n"] for r in rows}

    async def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            db.close()
