"""Long statements, off the event loop: retention's deletes, the WAL checkpoint after them, and
long reads (analyst scans, exports). Each runs on aiosqlite's thread, on a connection of its
own; the loop only awaits.

Deleting a month of a busy site's rows in one statement held the event loop, and every
request of the host app, for seconds (16.9 s on 2M rows). Moving it to a thread is not
enough: SQLite has one writer at a time, and the loop's writer would then sleep in SQLite's
busy handler, on the loop's thread, for as long as the thread held the lock. So disposal goes
in chunks, each shaped to hold the write lock briefly and never longer than it must:

- A chunk is one autocommit DELETE of a key range, `ts` in (low, high], found first by a read
  that takes no lock. One statement is one `sqlite3_step`, which releases the GIL: the lock is
  never held while the thread waits for the GIL behind a busy loop, and no row crosses into
  Python (each would wait for the GIL; `RETURNING` would do that).
- In this process, the loop's write transactions and the chunks take turns through `gate`, an
  asyncio.Lock: a loop writer that arrives during a chunk awaits it, serving requests
  meanwhile, instead of sleeping in the busy handler.
- Another process writing to the same file (a second worker, `veil retention` from cron) sees a
  chunk as a held lock, and polls for it every few ms (sqlite.py `_begin`). Chunks are sized
  to take about `TARGET` seconds, well under the loop writer's 0.25 s wait for the lock, and
  each is followed by a pause, in which that process's writer gets its turn.

`secure_delete` is on for the deleting connection (it is a per-connection setting), so SQLite
zeroes what it deletes; a TRUNCATE checkpoint afterwards empties the WAL, whose older frames
may still hold deleted rows. A checkpoint that must wait for readers holds the write lock
while it waits, so it waits briefly, lets go and tries again.
"""

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import aiosqlite

from .columns import SQLValue

log = logging.getLogger("veil.store")
T = TypeVar("T")

TARGET = 0.05  # seconds a chunk should hold the write lock
PAUSE = 0.03  # between chunks: longer than the busy handler's polling interval (≤ 25 ms)
MIN_ROWS, FIRST_ROWS, MAX_ROWS = 100, 2_000, 50_000
BUSY_WAIT = 5.0  # a chunk may wait this long off the loop for another process's write lock
CHECKPOINT_WAIT = 0.1  # one TRUNCATE attempt waits this long for readers, holding the lock
CHECKPOINT_PATIENCE = 120.0  # then gives up (a long scan is running) and logs it


@dataclass(frozen=True, slots=True)
class Expiry:
    """Rows of `table` matching `where` (with `params`) and older than `cutoff`, counted
    under `purpose`. `where` must be served by an index on (`purpose column`, `ts`)."""

    purpose: str
    table: str
    ts: str
    where: str
    params: tuple[str, ...]
    cutoff: float


class ChunkSize:
    """Rows per chunk, adapted so that a chunk takes about TARGET seconds on this disk."""

    def __init__(self) -> None:
        self.rows = FIRST_ROWS

    def took(self, seconds: float, rows: int) -> None:
        if rows < self.rows // 2:  # a short last chunk says nothing about the rate
            return
        if seconds > TARGET * 1.5:
            self.rows = max(MIN_ROWS, int(self.rows * TARGET / seconds))
        elif seconds < TARGET / 2:
            self.rows = min(MAX_ROWS, self.rows * 2)


def _uri(path: Path, mode: str) -> str:
    return f"{path.resolve().as_uri()}?mode={mode}"


async def _interruptible(db: aiosqlite.Connection, call: Awaitable[T]) -> T:
    """Await one call on the connection's thread. If the caller is cancelled meanwhile,
    interrupt the statement and wait until it has stopped: a cancelled caller never leaves a
    statement, or the lock it holds, running behind its back."""
    task = asyncio.ensure_future(call)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await db.interrupt()
        with contextlib.suppress(Exception):
            await task
        raise


async def delete_expired(
    path: Path, gate: asyncio.Lock, expiries: Iterable[Expiry], with_agents: Sequence[str] = ()
) -> dict[str, int]:
    """Delete every expired row in chunks, then the agents no row of the tables `with_agents`
    (quoted names) references any more, then truncate the WAL; rows deleted per purpose."""
    deleted: dict[str, int] = {}
    size = ChunkSize()
    async with aiosqlite.connect(
        _uri(path, "rw"), uri=True, isolation_level=None, timeout=BUSY_WAIT
    ) as db:
        for pragma in ("secure_delete=ON", "foreign_keys=ON", "synchronous=NORMAL"):
            await db.execute(f"PRAGMA {pragma}")
        for e in expiries:
            deleted.setdefault(e.purpose, 0)
            low = -math.inf
            while True:
                [(high, found)] = await _interruptible(
                    db,
                    db.execute_fetchall(
                        f"SELECT max({e.ts}), count(*) FROM (SELECT {e.ts} FROM {e.table} "
                        f"WHERE {e.where} AND {e.ts} > ? AND {e.ts} < ? ORDER BY {e.ts} LIMIT ?)",
                        (*e.params, low, e.cutoff, size.rows),
                    ),
                )
                if high is None:
                    break
                started = time.perf_counter()
                async with gate:
                    cursor = await _interruptible(
                        db,
                        db.execute(
                            f"DELETE FROM {e.table} WHERE {e.where} AND {e.ts} > ? AND {e.ts} <= ?",
                            (*e.params, low, high),
                        ),
                    )
                size.took(time.perf_counter() - started, found)
                deleted[e.purpose] += cursor.rowcount
                low = high
                await asyncio.sleep(PAUSE)
        if any(deleted.values()):
            await prune_agents(db, gate, with_agents)
        await truncate_wal(db, gate)
    return deleted


async def prune_agents(db: aiosqlite.Connection, gate: asyncio.Lock, tables: Sequence[str]) -> int:
    """Delete the agents no event references: an agent kept after its rows would say that
    such a device came by, for longer than the policy allows. Agents deleted.

    Writers cache agent ids (layout.AgentIds), so this goes by epochs: bump `agent_epoch`
    first, which makes every writer forget its cache and stamp each agent it uses from then on
    with the new epoch; find the agents no row references, reading without a lock; delete
    those of them not stamped since. The scan runs outside the write lock; each write is
    one short statement taken in turn through `gate`."""
    async with gate:
        await _interruptible(db, db.execute("UPDATE agent_epoch SET epoch = epoch + 1"))
    [(epoch,)] = await db.execute_fetchall("SELECT epoch FROM agent_epoch")
    used = " UNION ALL ".join(f"SELECT agent FROM {t} WHERE agent IS NOT NULL" for t in tables)
    unused = await _interruptible(
        db,
        db.execute_fetchall(
            "SELECT id FROM agents WHERE epoch < ?"
            + (f" AND id NOT IN ({used})" if tables else ""),
            (epoch,),
        ),
    )
    ids = [agent_id for (agent_id,) in unused]
    pruned = 0
    for start in range(0, len(ids), 500):  # under SQLite's bound-parameter limit
        chunk = ids[start : start + 500]
        async with gate:
            cursor = await _interruptible(
                db,
                db.execute(
                    f"DELETE FROM agents WHERE epoch < ? AND id IN ({', '.join('?' * len(chunk))})",
                    (epoch, *chunk),
                ),
            )
        pruned += cursor.rowcount
    return pruned


async def truncate_wal(db: aiosqlite.Connection, gate: asyncio.Lock) -> bool:
    """Checkpoint every WAL frame into the database and truncate the WAL to zero bytes.

    First a PASSIVE checkpoint, which blocks no one, copies what it can; then TRUNCATE, which
    holds the write lock while it waits for readers, so each attempt waits only
    CHECKPOINT_WAIT and the next comes after a pause. False (and a warning) if readers kept it
    from finishing for CHECKPOINT_PATIENCE seconds; the next checkpoint finishes the job.
    """
    await _interruptible(db, db.execute("PRAGMA wal_checkpoint(PASSIVE)"))
    await db.execute(f"PRAGMA busy_timeout = {int(CHECKPOINT_WAIT * 1000)}")
    give_up_at = time.monotonic() + CHECKPOINT_PATIENCE
    pause = 0.05
    while True:
        async with gate:
            [(busy, _, _)] = await _interruptible(
                db, db.execute_fetchall("PRAGMA wal_checkpoint(TRUNCATE)")
            )
        if not busy:
            return True
        if time.monotonic() >= give_up_at:
            log.warning(
                "retention: the WAL could not be truncated for %.0f s (a long read "
                "is running); the rows deleted may remain in its old frames until the "
                "next checkpoint",
                CHECKPOINT_PATIENCE,
            )
            return False
        await asyncio.sleep(pause)
        pause = min(pause * 2, 2.0)


async def read(path: Path, sql: str, params: Sequence[object] = ()) -> list[tuple[SQLValue, ...]]:
    """Every row of a long read-only query, read on a read-only connection of its own; a
    cancelled caller interrupts it."""
    async with aiosqlite.connect(_uri(path, "ro"), uri=True) as db:
        rows = await _interruptible(db, db.execute_fetchall(sql, params))
    # no row_factory: each row is a plain tuple (aiosqlite types them sqlite3.Row); tuple()
    # of a tuple is that tuple, no copy
    return [tuple(row) for row in rows]
