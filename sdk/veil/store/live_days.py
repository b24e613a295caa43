"""Live days: the day cells of the days rollups do not cover (today, and yesterday during
rollups.SETTLE), kept in memory and extended with only the rows inserted since.

Read from the rows, a whole day of a busy store costs ~50 ms a query; the writer inserts every
0.25 s, so no rollup of it stays current. An accumulator, one per (store, purpose table,
dimension or pair of them), holds per (day, value) the events and the SETS of cookieless
visitor and network pseudonyms and of subjects, so distinct counts stay exact as rows are
added. Why it is exact:

- Purpose tables key rows by INTEGER PRIMARY KEY (layout.py): a row inserted later gets a
  larger id than every row there, unless the largest was deleted. So the rows not yet counted
  are those with id > the largest id seen (the watermark), as long as nothing was deleted.
- Anything else that changes what the rows count (a row deleted or updated by any path or
  process, a restriction or suspension imposed or lifted) runs a rollup trigger, which bumps
  `live_generation.n` in the same transaction (rollups.BUMP). A read that sees a new
  generation drops the store's accumulators and starts over from the rows.
  `live_generation.store` is random per store file.
- Each read is one statement: the generation, the largest id and the new rows come from one
  snapshot, so an accumulator never mixes states.
- Restricted and suspended subjects' rows are left out as cells.raw_day_cells leaves them.
- When the live days change (rollups.settled_day moves past a day), that day's cells go
  (per-day sets: the other days stay exact); a clock moved back starts over.

Building an accumulator takes one statement that groups the live days' rows in SQL and
hands each cell's pseudonyms over as one comma-joined string (~25 ms for 33k rows, against
~50 ms for the cells read from the rows); where a pseudonym is a blob or holds a comma, the
rows are read one by one instead. Later queries read the new rows only (~1 ms for 200).

Memory: at most MAX_ENTRIES set entries in all of a process's accumulators, ~150 bytes each
(a 32-hex-digit pseudonym, 81 bytes, and its set slot; 123 bytes measured with 11-character
ones), so ~75 MB at most; 33k rows a day take ~17k entries per dimension. The least recently
used go first, and one that alone would exceed it is not kept: its days are then read from
the rows until the live days change. A store without the triggers (laid out by an older
veil) is read from the rows. Pseudonyms live only in this process's memory, for the live
days, and the next query after any deletion (an erasure) empties every accumulator of the
store but one that another query is reading at that moment (that one empties itself at its
own next query): none keeps an erased subject beyond that.
"""

import asyncio
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar, cast

from . import layout, rollups
from .days import EDGE, DayKey, as_text, day_start, next_day
from .subject_limits import counted_rows

if TYPE_CHECKING:
    from .sqlite import SQLiteStore

MAX_ENTRIES = 500_000  # set entries in all accumulators of the process (~75 MB at most)
C = TypeVar("C", bound=rollups.Counts)
ValueSQL = str | tuple[str, str] | None  # a dimension's SQL; a pair's two; None: the totals
Key = tuple[int, str, ValueSQL, bool]  # id(store), table, the value's SQL, agents joined
Rows = Sequence[tuple[object, ...]]
UNBUILT = (-1, -1)
_ON_LIVE_DAY = "date(t.ts, 'unixepoch') >= ?3"


@dataclass(slots=True)
class Cell:
    events: int = 0
    visitors: set[object] = field(default_factory=set)
    networks: set[object] = field(default_factory=set)
    subjects: set[object] = field(default_factory=set)

    def size(self) -> int:
        return len(self.visitors) + len(self.networks) + len(self.subjects)


@dataclass(slots=True)
class Accumulator:
    """What the rows of the days from `since` on add up to, as of `stamp` and `watermark`."""

    stamp: tuple[int, int] = UNBUILT  # (live_generation.store, .n) of the rows counted
    since: str = ""  # the first live day
    watermark: int = -1  # the largest row id counted, or seen and left out (-1: none)
    # (day, value): a pair's value is the tuple of its two
    cells: dict[tuple[str, object], Cell] = field(default_factory=dict)
    entries: int = 0  # set entries in `cells`
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def reset(self) -> None:
        self.cells.clear()
        self.stamp, self.watermark, self.entries = UNBUILT, -1, 0


_live: OrderedDict[Key, Accumulator] = OrderedDict()  # least recently used first
_too_big: dict[Key, str] = {}  # accumulators not kept, and the `since` they were refused at
_watched: "weakref.WeakKeyDictionary[SQLiteStore, weakref.finalize[[int], SQLiteStore]]" = (
    weakref.WeakKeyDictionary()
)


def _forget(store_id: int) -> None:
    """A store object is gone: so are its accumulators."""
    for key in [k for k in (*_live, *_too_big) if k[0] == store_id]:
        _drop(key)
        _too_big.pop(key, None)


def entries() -> int:
    """Set entries held by every accumulator of the process."""
    return sum(a.entries for a in _live.values())


def accumulators() -> list[Accumulator]:
    """This process's accumulators (tests inspect them)."""
    return list(_live.values())


async def day_cells(
    store: "SQLiteStore",
    table: layout.Table,
    value_sql: ValueSQL,
    joined: bool,
    first: str,
    last: str | None,
    make: Callable[[int, int, int, int], C],
) -> dict[DayKey, C] | None:
    """The day cells of first..last (inclusive; None: every later day) per value of
    `value_sql` (None: the day's totals; a pair of them: keyed (day, v1, v2)), read from
    `table AS t` (joined to `agents AS a` if `joined`), as cells.raw_day_cells gives them;
    None if they are not to be had here (a day that is not live, a store without the
    triggers, an accumulator too big): the caller reads the rows."""
    since = next_day(rollups.settled_day())
    if first < since or not rollups.guarded(store.db, table):
        return None
    if store not in _watched:
        _watched[store] = weakref.finalize(store, _forget, id(store))
    key: Key = (id(store), table.name, value_sql, joined)
    if _too_big.get(key) == since:
        return None
    acc = _live.get(key)
    if acc is None:
        acc = _live[key] = Accumulator()
    _live.move_to_end(key)
    async with acc.lock:
        if not await _catch_up(store, table, key, acc, since):
            return None
        out: dict[DayKey, C] = {}
        for (day, value), c in acc.cells.items():
            if first <= day and (last is None or day <= last):
                if value_sql is None:
                    cell_key: DayKey = (day,)
                elif isinstance(value_sql, tuple):
                    cell_key = (day, *map(as_text, cast(tuple[object, ...], value)))
                else:
                    cell_key = (day, as_text(value))
                out[cell_key] = make(c.events, len(c.visitors), len(c.networks), len(c.subjects))
        return out


def _values(key: Key) -> tuple[str, ...]:
    """The SQL of each value column the key's rows carry (one NULL for the totals)."""
    value_sql = key[2]
    return value_sql if isinstance(value_sql, tuple) else (value_sql or "NULL",)


async def _catch_up(
    store: "SQLiteStore", table: layout.Table, key: Key, acc: Accumulator, since: str
) -> bool:
    """Bring `acc` up to the rows as they are now: the new rows only, or all of the live
    days' again if the generation moved; False if it grew too big (and is not kept)."""
    if since < acc.since:  # the clock went back: a day is live again
        acc.reset()
    elif since > acc.since:  # days settled: they are the rollups' now
        for cell_key in [k for k in acc.cells if k[0] < since]:
            acc.entries -= acc.cells.pop(cell_key).size()
    acc.since = since
    if acc.stamp != UNBUILT:
        rows = await store.scan(*_read_sql(table, key, acc.watermark, since))
        stamp, largest = _marker(rows)
        if stamp == acc.stamp:
            acc.watermark = largest
            _add(acc, rows)
            return _fits(key, acc)
        acc.reset()
    groups = await store.scan(*_build_sql(table, key, since))
    acc.stamp, acc.watermark = _marker(groups)
    if not _from_groups(acc, groups):  # a pseudonym with a comma, or a blob: row by row
        acc.reset()
        rows = await store.scan(*_read_sql(table, key, -1, since))
        acc.stamp, acc.watermark = _marker(rows)
        _add(acc, rows)
    # built afresh (the generation moved, or a shape not asked before): the store's others of
    # an older generation are stale, maybe holding an erased subject: gone
    for other in [k for k, a in _live.items() if k[0] == key[0] and a.stamp != acc.stamp]:
        if other != key and not _live[other].lock.locked():
            _drop(other)
    return _fits(key, acc)


def _marker(rows: Rows) -> tuple[tuple[int, int], int]:
    """The read's (store, generation) and largest row id (-1: none)."""
    _, token, generation, largest, *_ = next(r for r in rows if r[0] == 0)
    return (cast(int, token), cast(int, generation)), -1 if largest is None else cast(int, largest)


def _read_sql(
    table: layout.Table, key: Key, watermark: int, since: str
) -> tuple[str, tuple[object, ...]]:
    """One statement (one snapshot): the generation and the largest row id, then each row
    after `watermark` (-1: every row) on a live day, but a restricted subject's, as (1, day,
    value (a pair: two), visitor, network, subject), each pseudonym only where the day cells
    count it."""
    values, joined = _values(key), key[3]
    name = layout.quote(table.name)
    has_subject = "subject" in table.columns
    usable, cookieless = counted_rows(table.columns)
    # new rows: a range of row ids (`+` keeps the planner off the ts index); all: by ts
    where = ["t.ts >= ?2" if watermark < 0 else "t.id > ?1 AND +t.ts >= ?2", _ON_LIVE_DAY, usable]
    sql = (
        f"SELECT 0, store, n, (SELECT max(id) FROM {name}), "
        f"{', '.join(['NULL'] * (len(values) + 1))} FROM live_generation "
        f"UNION ALL SELECT 1, date(t.ts, 'unixepoch'), {', '.join(values)}, "
        f"CASE WHEN {cookieless} THEN t.visitor END, "
        f"CASE WHEN {cookieless} THEN t.network END, {'t.subject' if has_subject else 'NULL'} "
        f"FROM {layout.from_sql(table, joined=joined)} WHERE {' AND '.join(where)}"
    )
    return sql, (watermark, day_start(since) - EDGE, since)


def _add(acc: Accumulator, rows: Rows) -> None:
    """Count the rows (the marker aside) into `acc`."""
    cells, grown = acc.cells, 0
    for row in rows:
        if row[0] == 0:
            continue
        day, visitor, network, subject = cast(str, row[1]), row[-3], row[-2], row[-1]
        value = row[2] if len(row) == 6 else row[2:-3]  # a pair's: the tuple of its two
        cell = cells.get((day, value))
        if cell is None:
            cell = cells[(day, value)] = Cell()
        cell.events += 1
        if visitor is not None:
            n = len(cell.visitors)
            cell.visitors.add(visitor)
            grown += len(cell.visitors) - n
        if network is not None:
            n = len(cell.networks)
            cell.networks.add(network)
            grown += len(cell.networks) - n
        if subject is not None:
            n = len(cell.subjects)
            cell.subjects.add(subject)
            grown += len(cell.subjects) - n
    acc.entries += grown


def _build_sql(table: layout.Table, key: Key, since: str) -> tuple[str, tuple[object, ...]]:
    """One statement (one snapshot): the generation and the largest row id, then per cell of
    the live days (1, day, value (a pair: two), events, then for visitors, networks and
    subjects: their values comma-joined and how many there are), and how many values are
    blobs."""
    values, joined = _values(key), key[3]
    named = [f"value{i}" for i in range(len(values))]
    name = layout.quote(table.name)
    has_subject = "subject" in table.columns
    usable, cookieless = counted_rows(table.columns)
    where = f"t.ts >= ?2 AND {_ON_LIVE_DAY} AND {usable}"
    # not DISTINCT: a set dedups in Python faster than SQLite's ephemeral index (~22 ms
    # against ~42 ms for 33k rows); a blob would come back as text, so it is counted
    sets = ", ".join(f"group_concat({c}), count({c})" for c in "vns")
    odd = " + ".join(f"total(typeof({c}) = 'blob')" for c in "vns")
    sql = (
        f"SELECT 0, store, n, (SELECT max(id) FROM {name}), "
        f"{', '.join(['NULL'] * (len(values) + 6))} FROM live_generation "
        f"UNION ALL SELECT 1, day, {', '.join(named)}, count(*), {sets}, {odd} FROM ("
        f"SELECT date(t.ts, 'unixepoch') AS day, "
        f"{', '.join(f'{v} AS {n}' for v, n in zip(values, named, strict=True))}, "
        f"CASE WHEN {cookieless} THEN t.visitor END AS v, "
        f"CASE WHEN {cookieless} THEN t.network END AS n, "
        f"{'t.subject' if has_subject else 'NULL'} AS s "
        f"FROM {layout.from_sql(table, joined=joined)} WHERE {where}) "
        f"GROUP BY day, {', '.join(named)}"
    )
    return sql, (None, day_start(since) - EDGE, since)


def _from_groups(acc: Accumulator, groups: Rows) -> bool:
    """The cells of `_build_sql`'s groups into `acc`; False if the joined strings do not
    give the values back exactly: a value is a blob, or holds a comma (more pieces)."""
    for group in groups:
        if group[0] == 0:
            continue
        n = len(group) - 10  # value columns
        value, events = group[2] if n == 1 else group[2 : 2 + n], group[2 + n]
        sets, odd = group[3 + n : 9 + n], group[9 + n]
        if odd:
            return False
        cell = acc.cells[(cast(str, group[1]), value)] = Cell(cast(int, events))
        for target, (joined, count) in zip(
            (cell.visitors, cell.networks, cell.subjects),
            ((sets[0], sets[1]), (sets[2], sets[3]), (sets[4], sets[5])),
            strict=True,
        ):
            pieces = [] if joined is None else cast(str, joined).split(",")
            if len(pieces) != count:
                return False
            target.update(pieces)
        acc.entries += cell.size()
    return True


def _fits(key: Key, acc: Accumulator) -> bool:
    """False (and `acc` not kept) if it alone would hold more than MAX_ENTRIES; else the
    least recently used others go until all fit."""
    if acc.entries > MAX_ENTRIES:
        _drop(key)
        _too_big[key] = acc.since
        return False
    total = entries()
    for other in list(_live):
        if total <= MAX_ENTRIES:
            break
        if other != key and not _live[other].lock.locked():
            total -= _live[other].entries
            _drop(other)
    return True


def _drop(key: Key) -> None:
    acc = _live.pop(key, None)
    if acc is not None:
        acc.reset()
