"""The one query engine behind `veil query`, the stats API and the dashboard.

A query reads one purpose's day cells (cells.py: per UTC day, restricted and suspended
subjects left out), grouped by the asked dimensions, and counts events, visitors and, under
consent, subjects. Which day cells are shown is thresholds.py's: k persons in the day, then
complementary suppression within the day. A cell of the answer is the sum of its shown day
cells; `hidden_days` says how many were left out, and a cell none of whose days cleared is
suppressed.

Time ranges are whole UTC days: `since` counts from the start of its day, `until`
(exclusive) to the end of the day before it, or of its own day when it falls inside one. So
two ranges differ only by whole day cells, each shown or not on its own.

Filters are answered as a slice of the unfiltered grouping: `filters={"browser": "X"}`
groups by browser too, suppresses over that whole grouping, then keeps the X cells. So a
filtered query shows exactly what the grouped one shows for X, and subtracting one from the
other recovers no suppressed count.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ..errors import QueryError
from ..policy import Policy
from ..store import layout
from ..store.days import day_of
from ..store.sqlite import SQLiteStore
from . import cells
from .cells import HOLDS, DayCounts, canonical
from .thresholds import clears, complement

METRICS = ("events", "visitors", "subjects")
DIMENSIONS = tuple(HOLDS)
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
    hidden_days: int = 0  # day cells suppressed (below k, or beside one), not in `values`


@dataclass(frozen=True, slots=True)
class StatsResult:
    by: tuple[str, ...]
    metrics: tuple[str, ...]
    cells: list[Cell]
    suppressed: int  # cells with no shown day
    k: int
    first_day: str | None = None  # the whole UTC days read ('YYYY-MM-DD'); None: unbounded
    last_day: str | None = None


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
        if dim not in HOLDS:
            raise QueryError(f"unknown dimension {dim!r}: choose from {', '.join(DIMENSIONS)}")
        column = HOLDS[dim]
        if column is not None and column not in held:
            raise QueryError(f"purpose {query.purpose!r} does not hold dimension {dim!r}")
    for dim, value in query.filters.items():
        if not isinstance(value, str):
            raise QueryError(f"filter {dim!r}: the value must be text")
    if query.since is not None and query.until is not None and query.until <= query.since:
        raise QueryError("the time range is empty: `until` must be after `since`")


def readable(policy: Policy, purpose: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The dimensions and the metrics `validate` lets a query of `purpose` ask for."""
    held = layout.policy_columns(policy)[purpose]
    dims = tuple(d for d, column in HOLDS.items() if column is None or column in held)
    consent = policy.purposes[purpose].needs_consent
    return dims, tuple(m for m in METRICS if m != "subjects" or consent)


def days_of(query: StatsQuery) -> tuple[str | None, str | None]:
    """The first and last whole UTC day the query's time range covers (QueryError if one
    falls outside years 1-9999, as an ISO time with an offset can)."""
    try:
        first = None if query.since is None else day_of(query.since)
        if query.until is None:
            return first, None
        # an `until` at midnight ends the day before; inside a day, ends that day
        return first, day_of((math.ceil(query.until / 86_400) - 1) * 86_400)
    except (ValueError, OverflowError, OSError):
        raise QueryError("the time range falls outside years 1 to 9999 (UTC)") from None


async def run(store: SQLiteStore, policy: Policy, query: StatsQuery, k: int) -> StatsResult:
    """The answer to `query` at threshold `k` (QueryError if the query is not allowed)."""
    validate(policy, query)
    if k < 1:
        raise QueryError(f"k must be 1 or more, got {k}")
    first_day, last_day = days_of(query)
    table = layout.load(store.db).get(query.purpose)
    if table is None:  # nothing was ever stored under it
        return StatsResult(query.by, query.metrics, [], 0, k, first_day, last_day)
    # filters are grouped by, then sliced (the module docstring says why); the day is key[0].
    # In one order whatever the order asked: by=a,b and by=b,a (or filters in another order)
    # must hide the same cells, or the two answers together show what each hides
    asked = {*query.by, *query.filters}
    dims = tuple(d for d in DIMENSIONS if d in asked and d != "day")
    found = await cells.day_cells(store, table, dims, first_day, last_day)
    keys = list(found)
    if len(dims) > 1:  # with two dimensions the groups overlap: process them in one order
        keys.sort(key=canonical)
    hidden = complement(
        keys,
        [found[key].events for key in keys],
        (i for i, key in enumerate(keys) if not clears(found[key], k)),
    )
    position = {"day": 0} | {d: i + 1 for i, d in enumerate(dims)}
    wanted = [(position[d], v) for d, v in query.filters.items()]
    shown_at = [position[d] for d in query.by]
    sums: dict[tuple[str | None, ...], _Sum] = {}
    for i, key in enumerate(keys):
        if wanted and any(key[pos] != value for pos, value in wanted):
            continue
        total = sums.setdefault(tuple(key[pos] for pos in shown_at), _Sum())
        if i in hidden:
            total.hidden += 1
        else:
            total.add(found[key])
    answer = [s.cell(key, query.metrics) for key, s in sums.items()]
    _order(answer, query)
    suppressed = sum(c.values is None for c in answer)
    return StatsResult(query.by, query.metrics, answer, suppressed, k, first_day, last_day)


@dataclass(slots=True)
class _Sum:
    """A cell of the answer: its shown day cells added up, its hidden ones counted."""

    shown: int = 0
    hidden: int = 0
    events: int = 0
    visitors: int = 0
    subjects: int = 0

    def add(self, day: DayCounts) -> None:
        self.shown += 1
        self.events += day.events
        # a subject's rows carry no visitor pseudonym: one subject is one visitor that day
        self.visitors += day.visitors + day.subjects
        self.subjects += day.subjects

    def cell(self, key: tuple[str | None, ...], metrics: tuple[str, ...]) -> Cell:
        if not self.shown:
            return Cell(key, None, self.hidden)
        every = {"events": self.events, "visitors": self.visitors, "subjects": self.subjects}
        return Cell(key, {m: every[m] for m in metrics}, self.hidden)


def _order(cells: list[Cell], query: StatsQuery) -> None:
    """Time series by time (then the other dimensions); else the first metric, descending,
    suppressed cells last."""
    times = [i for i, d in enumerate(query.by) if d in TIME_DIMENSIONS]
    if times:
        cells.sort(key=lambda c: tuple(c.key[i] or "" for i in times) + canonical(c.key))
        return
    first = query.metrics[0]
    cells.sort(key=lambda c: (c.values is None, -(c.values or {}).get(first, 0), canonical(c.key)))
