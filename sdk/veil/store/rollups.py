"""Daily rollups: a purpose's day cells of one dimension (or of none: the day's totals), or of a
pair of them, kept so that a dashboard over a month reads a few hundred rows instead of a
million.

What is kept, and why it is exact:

- `rollups`: per (purpose, dimension, UTC day, value), the day cell's counts: events, distinct
  visitors and networks of cookieless rows, distinct subjects, with restricted and suspended
  subjects' rows left out. Counts and dimension values only, never a pseudonym. Dimension ''
  holds the day's totals; a pair of dimensions is one `dim` of its own, 'browser|site' (in
  the engine's order), its values in `value` and `value2`. A pair is kept, invalidated and
  read as a single dimension is: every marker of a changed (purpose, day) goes, whatever its
  `dim`.
- `rollup_days`: which (purpose, day, dimension) rollups are current. A rollup is used only
  while its marker says so; every change to the rows it counts deletes the marker, and a
  trigger deletes the rollup's rows with it, in the transaction that makes the change:
  - rows inserted (store/sqlite.py, `invalidate_rows`: the days the chunk's rows fall on;
    done in Python, a per-row trigger cost ~25% of the raw insert);
  - rows deleted or updated, by any path and process (erasure, withdrawal, retention off
    the loop, a migration): a trigger per purpose table (`ensure`; ~1 µs a deleted row);
  - a restriction or suspension imposed or lifted: a trigger on `subject_limits` clears the
    days the subject has rows on, in each purpose table with a `subject` column.
  Agents are never changed and are pruned only when no row references them: no effect.
- A day is built only once it is over (`SETTLE` seconds past its end): today is written to
  constantly and is read from the rows, or from memory (live_days.py, kept exact by `BUMP`,
  which every trigger here runs too). A build claims its markers first (`build` = a random
  token), reads the rows in a snapshot taken after that claim, and stores the cells only
  where its token is still there; any change in between deleted the claim. So a rollup, once
  current, equals what the rows give at any later moment until the marker goes.

A query of a day range reads the current rollups in one statement (markers and rows in one
snapshot), the other days from the rows, and builds those of them that are over. Each day is
exact as of its read; the days of one answer may be read a few milliseconds apart. A store
whose tables lack the triggers (laid out by an older veil, not yet reopened with a policy) is
read from the rows.
"""

import asyncio
import contextlib
import datetime as dt
import logging
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from operator import itemgetter
from typing import TYPE_CHECKING, Protocol, TypeVar, cast

from ..errors import StoreError
from . import layout
from .columns import ROW_COLUMNS, Row
from .days import DAY, DayKey, day_of

if TYPE_CHECKING:  # sqlite.py imports this module
    from .sqlite import SQLiteStore

TOTAL = ""  # the `dim` of a day's totals
PAIR = "|"  # joins a pair's two dimensions into its `dim`
SETTLE = 3600.0  # a day is built only this long after its end (clock skew, late beacons)
BUILD_LOCK_WAIT = 0.05  # a build is an optimisation: it waits briefly for the lock, or skips
_TS = itemgetter(ROW_COLUMNS.index("ts"))
_LIMITED = "('restriction', 'suspension')"  # subject_limits kinds that hide a subject's rows
# in each trigger too: the live days' accumulators (live_days.py) start over when it moves
BUMP = "UPDATE live_generation SET n = n + 1;"
# the clock that says which days are over (tests move it past midnight)
clock: Callable[[], float] = time.time

log = logging.getLogger("veil.store")


class Counts(Protocol):
    events: int
    visitors: int
    networks: int
    subjects: int


C = TypeVar("C", bound=Counts)
# a day cell's value as built: one dimension's (None also for the totals), or a pair's two
Value = str | None | tuple[str | None, ...]


# -- invalidation ------------------------------------------------------------------------------


def invalidate_rows(db: sqlite3.Connection, purpose: str, rows: Sequence[Row]) -> None:
    """The rollups of the days `rows` fall on are no longer current: in the caller's (the
    inserting) transaction. One ranged DELETE per chunk in the common case (one day)."""
    if not rows:
        return
    stamps = list(map(_TS, rows))
    low, high = min(stamps), max(stamps)
    if high - low < 2 * DAY:
        spans = [(low, high)]
    else:  # a backfill, or a late row beside today's: each day it touches, not those between
        by_day: dict[int, list[float]] = {}
        for ts in stamps:
            by_day.setdefault(int(ts // DAY), []).append(ts)
        spans = [(min(v), max(v)) for v in by_day.values()]
    # date() in SQL, as the day cells group: a Python floor could disagree within 1 ms of
    # midnight (SQLite rounds to milliseconds); date() is monotonic, so the range is exact
    db.executemany(
        "DELETE FROM rollup_days WHERE purpose = ? "
        "AND day BETWEEN date(?, 'unixepoch') AND date(?, 'unixepoch')",
        [(purpose, lo, hi) for lo, hi in spans],
    )


def _triggers(table: layout.Table) -> dict[str, str]:
    """Trigger name → its CREATE statement, for one purpose table."""
    name, purpose = layout.quote(table.name), "'" + table.purpose.replace("'", "''") + "'"
    clear = f"DELETE FROM rollup_days WHERE purpose = {purpose} AND day"
    out = {
        f"rollups_{table.name}_delete": (
            f"AFTER DELETE ON {name} BEGIN {clear} = date(OLD.ts, 'unixepoch'); {BUMP} END"
        ),
        f"rollups_{table.name}_update": (
            f"AFTER UPDATE ON {name} BEGIN "
            f"{clear} IN (date(OLD.ts, 'unixepoch'), date(NEW.ts, 'unixepoch')); {BUMP} END"
        ),
    }
    if "subject" in table.columns:
        days = f"(SELECT date(ts, 'unixepoch') FROM {name} WHERE subject = "
        out |= {
            f"rollups_{table.name}_limit_on": (
                f"AFTER INSERT ON subject_limits WHEN NEW.kind IN {_LIMITED} "
                f"BEGIN {clear} IN {days}NEW.subject); {BUMP} END"
            ),
            f"rollups_{table.name}_limit_off": (
                f"AFTER DELETE ON subject_limits WHEN OLD.kind IN {_LIMITED} "
                f"BEGIN {clear} IN {days}OLD.subject); {BUMP} END"
            ),
            f"rollups_{table.name}_limit_changed": (
                "AFTER UPDATE ON subject_limits BEGIN "
                f"{clear} IN {days}OLD.subject); {clear} IN {days}NEW.subject); {BUMP} END"
            ),
        }
    return {n: f"CREATE TRIGGER {layout.quote(n)} {body}" for n, body in out.items()}


def ensure(db: sqlite3.Connection) -> None:
    """The invalidation triggers of every purpose table, as this veil writes them; in the
    caller's transaction (the open's, after the tables are laid out)."""
    stored = dict(db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"))
    for table in layout.load(db).values():
        for name, sql in _triggers(table).items():
            if stored.get(name) != sql:
                db.execute(f"DROP TRIGGER IF EXISTS {layout.quote(name)}")
                db.execute(sql)


def guarded(db: sqlite3.Connection, table: layout.Table) -> bool:
    """Every trigger that keeps the table's rollups current is in place (a store laid out by
    a veil without them is read from the rows)."""
    wanted = _triggers(table)
    stored = dict(
        db.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name LIKE ?",
            (f"rollups_{table.name}_%",),
        )
    )
    return all(stored.get(n) == sql for n, sql in wanted.items())


# -- reading and building ----------------------------------------------------------------------


def settled_day() -> str:
    """The last UTC day that is over (SETTLE past its end): the days after it are live,
    read from the rows (or live_days.py's accumulators), never rolled up."""
    return day_of(clock() - SETTLE - DAY)


def _days(first: str, last: str) -> list[str]:
    start = dt.date.fromisoformat(first)
    count = (dt.date.fromisoformat(last) - start).days + 1
    return [(start + dt.timedelta(days=i)).isoformat() for i in range(count)]


def _runs(days: list[str], every: list[str]) -> list[tuple[str, str]]:
    """`days` (a sorted subset of `every`) as runs of consecutive days of `every`."""
    position = {d: i for i, d in enumerate(every)}
    runs: list[list[str]] = []
    for d in days:
        if runs and position[d] == position[runs[-1][1]] + 1:
            runs[-1][1] = d
        else:
            runs.append([d, d])
    return [(a, b) for a, b in runs]


async def day_cells(
    store: "SQLiteStore",
    table: layout.Table,
    dims: tuple[str, ...],
    first_day: str | None,
    last_day: str | None,
    raw: Callable[[str | None, str | None], Awaitable[Mapping[DayKey, C]]],
    make: Callable[[int, int, int, int], C],
) -> dict[DayKey, C]:
    """The day cells of `dims` (none: the day's totals; one dimension, or a pair) for
    first_day..last_day (inclusive; None: unbounded), as `raw(first, last)` gives them from
    the rows, keyed (day, *values of `dims`): from the current rollups, the rest from `raw`,
    building the days that are over. Keys in no particular order (the engine orders them)."""
    db = store.db
    if not guarded(db, table):
        return dict(await raw(first_day, last_day))
    name = layout.quote(table.name)
    span = db.execute(  # each a lookup in the ts index
        f"SELECT date((SELECT min(ts) FROM {name}), 'unixepoch'), "
        f"date((SELECT max(ts) FROM {name}), 'unixepoch')"
    ).fetchone()
    if span[0] is None:
        return {}
    first = max(first_day or span[0], span[0])
    last = min(last_day or span[1], span[1])
    if first > last:
        return {}
    every = _days(first, last)
    settled = settled_day()
    key = PAIR.join(dims)  # TOTAL for none
    fresh = [d for d in every if d > settled]  # the last days, from the rows meanwhile
    reading = asyncio.ensure_future(raw(fresh[0], fresh[-1])) if fresh else None
    try:
        out, current = await _read(store, table.purpose, key, first, min(last, settled), make)
        stale = [d for d in every if d <= settled and d not in current]
        runs = _runs(stale, every)
        if len(runs) > 4:  # scattered: one scan of them all beats many
            runs = [(runs[0][0], runs[-1][1])]
        token = await _claim(store, table.purpose, key, stale, span[0]) if stale else None
        built: dict[str, list[tuple[Value, C]]] = {d: [] for d in stale}
        for a, b in runs:
            for cell_key, counts in (await raw(a, b)).items():
                day = cast(str, cell_key[0])
                if day in built:
                    out[cell_key] = counts
                    value = cell_key[1:] if len(dims) > 1 else cell_key[1] if dims else None
                    built[day].append((value, counts))
        if token is not None:
            await _keep(store, table.purpose, key, token, built)
        if reading is not None:
            out.update(await reading)
    finally:
        if reading is not None and not reading.done():
            reading.cancel()  # offloop.read interrupts its statement
    return out


async def _read(
    store: "SQLiteStore",
    purpose: str,
    dim: str,
    first: str,
    last: str,
    make: Callable[[int, int, int, int], C],
) -> tuple[dict[DayKey, C], set[str]]:
    """The current rollups of first..last, and which days they are: one statement, so
    markers and cells come from one snapshot. Keyed (day, *values), as many as `dim` names."""
    if first > last:
        return {}, set()
    width = 1 + (len(dim.split(PAIR)) if dim != TOTAL else 0)  # the day and the values
    rows = await store.scan(
        "SELECT 0, day, NULL, NULL, 0, 0, 0, 0 FROM rollup_days "
        "WHERE purpose = ?1 AND dim = ?2 AND day BETWEEN ?3 AND ?4 AND build IS NULL "
        "UNION ALL SELECT 1, r.day, r.value, r.value2, r.events, r.visitors, r.networks, "
        "r.subjects "
        "FROM rollups AS r JOIN rollup_days AS m ON m.purpose = r.purpose AND m.dim = r.dim "
        "AND m.day = r.day AND m.build IS NULL "
        "WHERE r.purpose = ?1 AND r.dim = ?2 AND r.day BETWEEN ?3 AND ?4",
        (purpose, dim, first, last),
    )
    current = {cast(str, r[1]) for r in rows if r[0] == 0}
    cells: dict[DayKey, C] = {}
    for row in rows:
        if row[0] == 1:
            cells[cast(DayKey, row[1 : 1 + width])] = make(*cast(tuple[int, ...], row[4:]))
    return cells, current


@contextlib.asynccontextmanager
async def _writing(store: "SQLiteStore") -> AsyncIterator[sqlite3.Connection | None]:
    """The store's write transaction, waiting BUILD_LOCK_WAIT at most: None if the store is
    busy, read-only or closing (the rollup is then simply not kept this time)."""
    async with store._gate:
        try:
            await store._begin(BUILD_LOCK_WAIT)
        except (sqlite3.Error, StoreError) as exc:
            log.debug("rollups not kept: %s", exc)
            yield None
            return
        with store._transaction(begun=True) as db:
            yield db


async def _claim(
    store: "SQLiteStore", purpose: str, dim: str, days: list[str], oldest: str
) -> int | None:
    """Mark `days` as being built under a fresh token (taking over a claim a crashed builder
    left; never a current marker); the token, or None if the store could not be written.
    Markers of days before the `oldest` row's go (empty days retention left behind)."""
    token = secrets.randbits(62)
    try:
        async with _writing(store) as db:
            if db is None:
                return None
            db.execute(
                "DELETE FROM rollup_days WHERE purpose = ? AND dim = ? AND day < ?",
                (purpose, dim, oldest),
            )
            db.executemany(
                "INSERT INTO rollup_days (purpose, day, dim, build) VALUES (?, ?, ?, ?) "
                "ON CONFLICT DO UPDATE SET build = excluded.build WHERE build IS NOT NULL",
                [(purpose, d, dim, token) for d in days],
            )
    except (sqlite3.Error, StoreError) as exc:  # read-only, or closing: answered all the same
        log.debug("rollups not claimed: %s", exc)
        return None
    return token


async def _keep(
    store: "SQLiteStore",
    purpose: str,
    dim: str,
    token: int,
    built: Mapping[str, Sequence[tuple[Value, Counts]]],
) -> None:
    """Store each built day's cells where the claim still stands (nothing changed its rows
    since the claim), in one short transaction; a chunk of days at a time."""
    days = list(built)
    for start in range(0, len(days), 64):
        try:
            async with _writing(store) as db:
                if db is None:
                    return
                _store_days(
                    db, purpose, dim, token, {d: built[d] for d in days[start : start + 64]}
                )
        except (sqlite3.Error, StoreError) as exc:
            log.debug("rollups not kept: %s", exc)
            return
        await asyncio.sleep(0)


def _store_days(
    db: sqlite3.Connection,
    purpose: str,
    dim: str,
    token: int,
    built: Mapping[str, Sequence[tuple[Value, Counts]]],
) -> None:
    for day in built:
        claimed = db.execute(
            "UPDATE rollup_days SET build = NULL "
            "WHERE purpose = ? AND day = ? AND dim = ? AND build = ?",
            (purpose, day, dim, token),
        ).rowcount
        if claimed:
            db.executemany(
                "INSERT INTO rollups (purpose, dim, day, value, value2, events, visitors, "
                "networks, subjects) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (purpose, dim, day, *_columns(v), c.events, c.visitors, c.networks, c.subjects)
                    for v, c in built[day]
                ],
            )


def _columns(value: Value) -> tuple[str | None, str | None]:
    """`value` and `value2` of a built cell."""
    if isinstance(value, tuple):
        first, second = value
        return first, second
    return value, None
