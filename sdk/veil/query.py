"""The analyst query path of `veil query`: the query engine (veil.analytics) over the local
store, bound to one purpose, with small groups suppressed.

A group is shown only if it holds k persons as far as veil can know them (analytics/
thresholds.py): distinct subjects, or for cookieless rows k visitors from k networks within
one day, day by day; a lone suppressed cell takes its smallest neighbour with it. Suppressed
cells stay in the answer, marked, with no counts; the answer says how many there are, and
how many cells leave out some of their days.
"""

import contextlib
import datetime as dt
import re
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field

from .analytics import engine
from .config import Config
from .errors import QueryError
from .policy import duration_problem, parse_duration
from .store import EventStore, SQLiteStore, open_store

# The metrics every purpose has (`subjects`, too, under a consent-based one: engine.METRICS).
METRICS = ("events", "visitors")
DIMENSIONS = engine.DIMENSIONS
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2})?Z?)?")

Value = str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class QueryResult:
    purpose: str
    by: tuple[str, ...]
    metric: str  # the first of `metrics`
    since: str | None
    min_group_size: int
    suppressed_groups: int
    # every cell in order: the `by` values, then each metric's count, or for a suppressed
    # cell None and "suppressed": True
    rows: list[dict[str, Value]]
    metrics: tuple[str, ...] = ("events",)
    until: str | None = None
    filters: dict[str, str] = field(default_factory=dict)
    # the whole UTC days read, and the cells that leave out days below k (`suppressed_days`)
    first_day: str | None = None
    last_day: str | None = None
    partial_groups: int = 0


@contextlib.asynccontextmanager
async def existing_store(config: Config) -> AsyncIterator[EventStore]:
    """The store for reading; an error, not an empty new file, when none exists yet."""
    if not config.remote.url and not config.store.path.exists():
        raise QueryError(f"no store at {config.store.path}: nothing has been collected yet")
    store = open_store(config)
    # without the policy: a read registers no policy version and lays out nothing (a store
    # the collector has not reopened since its upgrade lacks the rollup triggers, and is
    # read from the rows until it does)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def drop_counts(config: Config) -> dict[str, int]:
    async with existing_store(config) as store:
        return await store.drop_counts()


def moment(option: str, text: str, now: float) -> float:
    """`--since`/`--until` as UTC epoch seconds: a duration back from now ('7d'), or a UTC
    date or time ('2026-11-01', '2026-11-01T12:00Z')."""
    if _DATE.fullmatch(text.strip()):
        try:
            parsed = dt.datetime.fromisoformat(text.strip().removesuffix("Z"))
        except ValueError:
            raise QueryError(f"{option}: {text!r} is not a real date or time") from None
        return parsed.replace(tzinfo=dt.UTC).timestamp()
    window = parse_duration(text)
    if window is None:
        raise QueryError(f"{option} {duration_problem(text)} (or a UTC date like 2026-11-01)")
    return now - window.total_seconds()


async def run_query(
    config: Config,
    by: Sequence[str],
    metric: str = "events",
    since: str | None = None,
    purpose: str = "connection",
    *,
    metrics: Sequence[str] | None = None,
    filters: Mapping[str, str] | None = None,
    until: str | None = None,
) -> QueryResult:
    """One query through the engine, at the configured k (`query.min_group_size`)."""
    wanted = tuple(metrics) if metrics else (metric,)
    unknown = [d for d in (*by, *(filters or {})) if d not in DIMENSIONS]
    if unknown:
        raise QueryError(f"--by takes one or more of {', '.join(DIMENSIONS)}; got {unknown}")
    now = time.time()
    query = engine.StatsQuery(
        purpose=purpose,
        metrics=wanted,
        by=tuple(by),
        filters=dict(filters or {}),
        since=None if since is None else moment("--since", since, now),
        until=None if until is None else moment("--until", until, now),
    )
    engine.validate(config.policy, query)  # before touching the store
    k = config.min_group_size
    async with existing_store(config) as store:
        if not isinstance(store, SQLiteStore):
            raise QueryError(
                "this configuration sends events to a remote collector (remote.url): "
                "query on the collector's host"
            )
        result = await engine.run(store, config.policy, query, k)
    rows: list[dict[str, Value]] = []
    for cell in result.cells:
        row: dict[str, Value] = dict(zip(result.by, cell.key, strict=True))
        if cell.values is None:
            row |= dict.fromkeys(wanted) | {"suppressed": True}
        else:
            row |= cell.values
            if cell.hidden_days:
                row["suppressed_days"] = cell.hidden_days
        rows.append(row)
    return QueryResult(
        purpose,
        tuple(by),
        wanted[0],
        since,
        k,
        result.suppressed,
        rows,
        wanted,
        until,
        dict(filters or {}),
        result.first_day,
        result.last_day,
        sum(bool(c.values and c.hidden_days) for c in result.cells),
    )
