"""Day cells: what a purpose's rows add up to per UTC day and per value of some dimensions.

Every answer the engine gives is built from day cells, because every pseudonym that makes a
person countable (visitor, network) is keyed per UTC day: per-day distinct counts are exact
and add up exactly over a range. A restricted or suspended subject's rows count for nothing.
"""

from dataclasses import dataclass
from typing import cast

from ..store import layout, live_days, rollups
from ..store.days import EDGE, DayKey, as_text, day_start
from ..store.sqlite import SQLiteStore
from ..store.subject_limits import counted_rows

# dimension -> the row column it reads (None: every row has it)
HOLDS: dict[str, str | None] = {
    "browser": "agent",
    "browser_version": "agent",
    "os": "agent",
    "os_version": "agent",
    "device": "agent",
    "country": "country",
    "region": "region",
    "language": "language",
    "screen": "screen_w",
    "pixel_ratio": "pixel_ratio",
    "site": None,
    "path": "path",
    "day": None,
    "hour": None,
}


@dataclass(slots=True)
class DayCounts:
    events: int = 0
    visitors: int = 0  # distinct visitor pseudonyms of cookieless rows (subject IS NULL)
    networks: int = 0  # distinct network pseudonyms of cookieless rows
    subjects: int = 0  # distinct subjects


def canonical(key: tuple[str | None, ...]) -> tuple[tuple[bool, str], ...]:
    """A key's place in the one order every answer uses, whichever path read it: by value,
    None last."""
    return tuple((v is None, v or "") for v in key)


def dimension_sql(table: layout.Table, dim: str) -> str:
    """The SQL of a dimension, read from `table AS t` joined to `agents AS a`."""
    if dim == "hour":
        return "strftime('%Y-%m-%dT%H:00Z', t.ts, 'unixepoch')"
    return layout.column_sql(table, "screen_w" if dim == "screen" else dim)


async def raw_day_cells(
    store: SQLiteStore,
    table: layout.Table,
    dims: tuple[str, ...],
    first_day: str | None,
    last_day: str | None,
) -> dict[DayKey, DayCounts]:
    """Day cells of `dims` for the days first_day..last_day (inclusive; None: unbounded),
    straight from the rows, in one statement read off the loop."""
    groups = ["date(t.ts, 'unixepoch')", *(dimension_sql(table, d) for d in dims)]
    where, params = ["1"], list[object]()
    # date() rounds ts to the millisecond: a row 0.4 ms before midnight is the next day's,
    # as the rollups date it; read a little beyond the days, keep only theirs (below)
    if first_day is not None:
        where.append("t.ts >= ?")
        params.append(day_start(first_day) - EDGE)
    if last_day is not None:
        where.append("t.ts < ?")
        params.append(day_start(last_day) + 86_400 + EDGE)
    usable, cookieless = counted_rows(table.columns)  # a restricted subject's: kept, unused
    where.append(usable)
    has_subject = "subject" in table.columns
    select = ", ".join(groups)
    sql = (
        f"SELECT {select}, COUNT(*), "
        f"COUNT(DISTINCT CASE WHEN {cookieless} THEN t.visitor END), "
        f"COUNT(DISTINCT CASE WHEN {cookieless} THEN t.network END), "
        f"{'COUNT(DISTINCT t.subject)' if has_subject else '0'} "
        f"FROM {layout.from_sql(table, joined=any(HOLDS[d] == 'agent' for d in dims))} "
        f"WHERE {' AND '.join(where)} GROUP BY {select}"
    )
    width = len(groups)
    out: dict[DayKey, DayCounts] = {}
    for row in await store.scan(sql, params):
        day = cast(str, row[0])
        if (first_day is not None and day < first_day) or (last_day is not None and day > last_day):
            continue
        events, visitors, networks, subjects = (cast(int, v) for v in row[width:])
        key = tuple(as_text(v) for v in row[:width])
        out[key] = DayCounts(events, visitors, networks, subjects)
    return out


async def day_cells(
    store: SQLiteStore,
    table: layout.Table,
    dims: tuple[str, ...],
    first_day: str | None,
    last_day: str | None,
) -> dict[DayKey, DayCounts]:
    """Day cells of `dims` for the days first_day..last_day (inclusive): of one dimension or
    none, or of "site" and one other (a dashboard's site filter groups by both), from the
    daily rollups (store/rollups.py: the same cells, exactly) and the live days from memory
    (store/live_days.py: the same, exactly), else the rows. Other pairs are read from the
    rows: each shape kept is one more rollup to build and keep current."""
    if len(dims) > 2 or (len(dims) == 2 and "site" not in dims):
        return await raw_day_cells(store, table, dims, first_day, last_day)
    sqls = tuple(dimension_sql(table, d) for d in dims)
    value_sql = (sqls[0], sqls[1]) if len(sqls) == 2 else sqls[0] if sqls else None
    joined = any(HOLDS[d] == "agent" for d in dims)

    async def raw(first: str | None, last: str | None) -> dict[DayKey, DayCounts]:
        if first is not None:  # live days (today's) are kept in memory, if they can be
            kept = live_days.day_cells(store, table, value_sql, joined, first, last, DayCounts)
            if (live := await kept) is not None:
                return live
        return await raw_day_cells(store, table, dims, first, last)

    return await rollups.day_cells(store, table, dims, first_day, last_day, raw, DayCounts)
