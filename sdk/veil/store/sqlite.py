"""The embedded store: one aiosqlite writer connection, WAL, one transaction per batch.

`secure_delete` makes SQLite overwrite deleted content, so disposal is unrecoverable from the
database file; a TRUNCATE checkpoint after deletions does the same for the WAL.
"""

import asyncio
import sqlite3
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import aiosqlite

from ..errors import QueryError, StoreError
from ..pipeline import ROW_COLUMNS
from ..policy import Policy, policy_digest
from ..registry import DIMENSIONS
from .base import Aggregate
from .schema import MIGRATIONS

# A retried batch carries the same event ids: stored once. Only that conflict is ignored;
# NOT NULL, CHECK and foreign-key failures still fail the batch.
_INSERT = (f"INSERT INTO event_log ({', '.join(ROW_COLUMNS)}) "
           f"VALUES ({', '.join('?' * len(ROW_COLUMNS))}) ON CONFLICT (event_id) DO NOTHING")
_DIMENSION_SQL = {d: d for d in DIMENSIONS} | {"day": "date(ts, 'unixepoch')"}


class SQLiteStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    async def open(self, policy: Policy | None = None) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = await aiosqlite.connect(self.path, isolation_level=None, timeout=5)
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "secure_delete=ON",
                           "foreign_keys=ON"):
                await self._db.execute(f"PRAGMA {pragma}")
            await self._migrate()
            if policy is not None:
                await self._register_policy(policy)
                await self._db.executemany(
                    "INSERT INTO purposes VALUES (?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET "
                    "legal_basis=excluded.legal_basis, needs_consent=excluded.needs_consent, "
                    "retention_seconds=excluded.retention_seconds, "
                    "policy_version=excluded.policy_version",
                    [(p.key, p.legal_basis, p.needs_consent, int(p.retention.total_seconds()),
                      policy.version) for p in policy.purposes.values()])
        except (OSError, sqlite3.Error) as exc:
            await self.close()
            raise StoreError(f"store.url: cannot open {self.path}: {exc}") from None
        except BaseException:
            await self.close()  # never leave a connection's thread behind
            raise

    async def _register_policy(self, policy: Policy) -> None:
        """Remember each policy version's digest; a changed policy must carry a new version."""
        digest = policy_digest(policy)
        async with self._db.execute("SELECT digest FROM policy_versions WHERE version = ?",
                                    (policy.version,)) as cursor:
            row = await cursor.fetchone()
        if row is None:
            await self._db.execute("INSERT INTO policy_versions VALUES (?, ?, ?, ?)",
                                   (policy.version, policy.effective.isoformat(), digest,
                                    time.time()))
        elif row[0] != digest:
            raise StoreError(f"policy.version: the policy changed but its version "
                             f"{policy.version!r} did not; bump policy.version and add a "
                             "[[policy.changes]] entry saying what changed")

    async def _migrate(self) -> None:
        (version,) = await (await self._db.execute("PRAGMA user_version")).fetchone()
        if version > len(MIGRATIONS):
            raise StoreError(f"{self.path} has schema version {version}, newer than this veil "
                             f"({len(MIGRATIONS)}): upgrade veil")
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            # executescript commits first; the version bump rides in the same script.
            await self._db.executescript(
                f"BEGIN;\n{script}\nPRAGMA user_version={number};\nCOMMIT;")

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreError("the store is not open")
        return self._db

    async def write(self, rows: Sequence[tuple], drops: Counter, day: str) -> None:
        db = self.db
        async with self._lock:  # one connection: its transactions must not interleave
            await db.execute("BEGIN IMMEDIATE")
            try:
                if rows:
                    await db.executemany(_INSERT, rows)
                if drops:
                    await db.executemany(
                        "INSERT INTO drops VALUES (?, ?, ?) ON CONFLICT (day, reason) "
                        "DO UPDATE SET count = count + excluded.count",
                        [(day, str(reason), n) for reason, n in drops.items()])
                await db.commit()
            except BaseException:
                await db.rollback()
                raise

    async def insert(self, table: str, values: dict) -> None:
        """One row into one of veil's own tables, in its own transaction."""
        sql = (f"INSERT INTO {table} ({', '.join(values)}) "
               f"VALUES ({', '.join('?' * len(values))})")
        async with self._lock:
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                await self.db.execute(sql, tuple(values.values()))
                await self.db.commit()
            except BaseException:
                await self.db.rollback()
                raise

    async def dispose(self, cutoffs: dict[str, float],
                      tables: tuple[tuple[str, str, str], ...]) -> dict[str, int]:
        """Delete rows older than their purpose's cutoff; zero them out of the WAL too."""
        deleted: dict[str, int] = {}
        async with self._lock:
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                for purpose, cutoff in cutoffs.items():
                    for table, ts, purpose_column in tables:
                        cursor = await self.db.execute(
                            f"DELETE FROM {table} WHERE {purpose_column} = ? AND {ts} < ?",
                            (purpose, cutoff))
                        deleted[purpose] = deleted.get(purpose, 0) + cursor.rowcount
                await self.db.commit()
            except BaseException:
                await self.db.rollback()
                raise
            await self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return deleted

    async def select(self, sql: str, params: Sequence = ()) -> list[dict]:
        """Rows of a read-only query over veil's tables, as dicts."""
        async with self.db.execute(sql, params) as cursor:
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) async for row in cursor]

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
        kept, suppressed = [], 0
        async with self.db.execute(sql, params) as cursor:
            async for row in cursor:
                if row[-1] >= min_group_size:
                    kept.append(tuple(row))
                else:
                    suppressed += 1
        return Aggregate(columns=(*by, "events", "visitors"), rows=kept,
                         suppressed_groups=suppressed)

    async def drop_counts(self, since_day: str | None = None) -> dict[str, int]:
        sql = "SELECT reason, SUM(count) FROM drops WHERE day >= ? GROUP BY reason ORDER BY reason"
        async with self.db.execute(sql, (since_day or "",)) as cursor:
            return {reason: n async for reason, n in cursor}

    async def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()
