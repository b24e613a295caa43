"""The one query engine behind `veil query`, the stats API and the dashboard.

A query reads one purpose's table (restricted and suspended subjects left out), groups it by
the asked dimensions, and counts events, visitors and, under consent, subjects. Which cells
are shown is thresholds.py's: k persons, then complementary suppression.

Filters are answered as a slice of the unfiltered grouping: `filters={"browser": "X"}`
groups by browser too, suppresses over that whole grouping, then keeps the X cells. So a
filtered query shows exactly what the grouped one shows for X, and subtracting one from the
other recovers no suppressed count. The rows are read in one statement, off the event loop.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import cast

from ..errors import QueryError
from ..policy import Policy
from ..store import layout
from ..store.sqlite import SQLiteStore
from ..store.subject_limits import RESTRICTED_SUBJECTS
from .thresholds import CellCounts, clears, complement

METRICS = ("events", "visitors", "subjects")
# dimension -> the row column it reads (None: every row has it)
_HOLDS: dict[str, str | None] = {
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
DIMENSIONS = tuple(_HOLDS)
TIME_DIMENSIONS = ("day", "hour")


@dataclass(frozen=True, slots=True)
class StatsQuery:
    purpose: str  # the one purpose whose rows are read
    metrics: tuple[str, ...] = ("events",)
    by: tuple[str, ...] = ()
    filters: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    since: float | None = None  # UTC epoch seconds, inclusive
    until: float | None = None  # exclusive


@dataclass(frozen=True, slots=True)
class Cell:
    key: tuple[str | None, ...]  # values of `by`, in order
    values: dict[str, int] | None  # metric -> count; None when suppressed


@dataclass(frozen=True, slots=True)
class StatsResult:
    by: tuple[str, ...]
    metrics: tuple[str, ...]
    cells: list[Cell]
    suppressed: int
    k: int


def validate(policy: Policy, query: StatsQuery) -> None:
    """QueryError naming what the query may not ask of this purpose."""
    if query.purpose not in policy.purposes:
        raise QueryError(
            f"unknown purpose {query.purpose!r}: the policy declares {', '.join(policy.purposes)}"
        )
    if query.purpose in policy.decision_purposes:
        raise QueryError(
            f"purpose {query.purpose!r} feeds automated decisions: its data is not "
            "open to analyst queries"
        )
    purpose = policy.purposes[query.purpose]
    if not query.metrics:
        raise QueryError(f"ask for at least one metric: {', '.join(METRICS)}")
    for metric in query.metrics:
        if metric not in METRICS:
            raise QueryError(f"unknown metric {metric!r}: choose from {', '.join(METRICS)}")
    if "subjects" in query.metrics and not purpose.needs_consent:
        raise QueryError(
            f"metric 'subjects': purpose {query.purpose!r} is not consent-based, "
            "its rows carry no subject"
        )
    if len(set(query.by)) != len(query.by) or len(set(query.metrics)) != len(query.metrics):
        raise QueryError("a dimension or metric is named twice")
    held = layout.policy_columns(policy)[query.purpose]
    for dim in (*query.by, *query.filters):
        if dim not in _HOLDS:
            raise QueryError(f"unknown dimension {dim!r}: choose from {', '.join(DIMENSIONS)}")
        column = _HOLDS[dim]
        if column is not None and column not in held:
            raise QueryError(f"purpose {query.purpose!r} does not hold dimension {dim!r}")
    for dim, value in query.filters.items():
        if not isinstance(value, str):
            raise QueryError(f"filter {dim!r}: the value must be text")
    if query.since is not None and query.until is not None and query.until <= query.since:
        raise QueryError("the time range is empty: `until` must be after `since`")


def _dimension_sql(table: layout.Table, dim: str) -> str:
    if dim == "day":
        return "date(t.ts, 'unixepoch')"
    if dim == "hour":
        return "strftime('%Y-%m-%dT%H:00Z', t.ts, 'unixepoch')"
    if dim == "screen":
        return layout.column_sql(table, "screen_w")
    return layout.column_sql(table, dim)


def _text(value: object) -> str | None:
    return None if value is None else str(value)


async def run(store: SQLiteStore, policy: Policy, query: StatsQuery, k: int) -> StatsResult:
    """The answer to `query` at threshold `k` (QueryError if the query is not allowed)."""
    validate(policy, query)
    if k < 1:
        raise QueryError(f"k must be 1 or more, got {k}")
    table = layout.load(store.db).get(query.purpose)
    if table is None:  # nothing was ever stored under it
        return StatsResult(query.by, query.metrics, [], 0, k)
    # filters are grouped by, then sliced (the module docstring says why)
    dims = (*query.by, *(d for d in query.filters if d not in query.by))
    counts = await _counts(store, table, dims, query.since, query.until)
    keys = list(counts)
    sizes = [counts[key].events for key in keys]
    hidden = complement(
        keys, sizes, (i for i, key in enumerate(keys) if not clears(counts[key], k))
    )
    wanted = [(dims.index(d), v) for d, v in query.filters.items()]
    cells, suppressed = [], 0
    for i, key in enumerate(keys):
        if any(key[pos] != value for pos, value in wanted):
            continue
        shown_key = key[: len(query.by)]
        if i in hidden:
            cells.append(Cell(shown_key, None))
            suppressed += 1
            continue
        c = counts[key]
        every = {"events": c.events, "visitors": c.visitors, "subjects": c.subjects}
        cells.append(Cell(shown_key, {m: every[m] for m in query.metrics}))
    _order(cells, query)
    return StatsResult(query.by, query.metrics, cells, suppressed, k)


def _order(cells: list[Cell], query: StatsQuery) -> None:
    """Time series by time (then the other dimensions); else the first metric, descending,
    suppressed cells last."""
    times = [i for i, d in enumerate(query.by) if d in TIME_DIMENSIONS]
    if times:
        cells.sort(key=lambda c: tuple(c.key[i] or "" for i in times) + _nulls_last(c.key))
        return
    first = query.metrics[0]
    cells.sort(
        key=lambda c: (c.values is None, -(c.values or {}).get(first, 0), _nulls_last(c.key))
    )


def _nulls_last(key: tuple[str | None, ...]) -> tuple[tuple[bool, str], ...]:
    return tuple((v is None, v or "") for v in key)


async def _counts(
    store: SQLiteStore,
    table: layout.Table,
    dims: tuple[str, ...],
    since: float | None,
    until: float | None,
) -> dict[tuple[str | None, ...], CellCounts]:
    """Per cell of `dims`: events and per-day distinct visitors and networks of cookieless
    rows, and distinct subjects; in one statement (one snapshot), read off the loop."""
    groups = [_dimension_sql(table, d) for d in dims]
    where, params = ["1"], list[object]()
    if since is not None:
        where.append("t.ts >= ?")
        params.append(since)
    if until is not None:
        where.append("t.ts < ?")
        params.append(until)
    has_subject = "subject" in table.columns
    if has_subject:  # a restricted subject's rows are kept, used for nothing
        where.append(f"(t.subject IS NULL OR t.subject NOT IN ({RESTRICTED_SUBJECTS}))")
    source = layout.from_sql(table, joined=any(_HOLDS[d] == "agent" for d in dims))
    cond = " AND ".join(where)
    select = "".join(f"{g}, " for g in groups)
    cookieless = "t.subject IS NULL" if has_subject else "1"
    per_day = (
        f"SELECT 0, {select}date(t.ts, 'unixepoch'), COUNT(*), "
        f"COUNT(DISTINCT CASE WHEN {cookieless} THEN t.visitor END), "
        f"COUNT(DISTINCT CASE WHEN {cookieless} THEN t.network END) "
        f"FROM {source} WHERE {cond} GROUP BY {select}date(t.ts, 'unixepoch')"
    )
    sql, all_params = per_day, params
    if has_subject:
        by = f" GROUP BY {', '.join(groups)}" if groups else ""
        sql += (
            f" UNION ALL SELECT 1, {select}NULL, COUNT(DISTINCT t.subject), 0, 0 "
            f"FROM {source} WHERE {cond} AND t.subject IS NOT NULL{by}"
        )
        all_params = params + params
    out: dict[tuple[str | None, ...], CellCounts] = {}
    width = len(dims)
    for row in await store.scan(sql, all_params):
        key = tuple(_text(v) for v in row[1 : 1 + width])
        a, b, c = (cast(int, v) for v in row[2 + width :])
        if row[0] == 1:
            if a:
                out.setdefault(key, CellCounts()).subjects = a
        else:
            out.setdefault(key, CellCounts()).add_day(a, b, c)
    return out
