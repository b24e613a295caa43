"""The analyst query path: aggregates only, bound to one purpose, small groups withheld.

Every answer counts events and distinct visitor pseudonyms per group; a group with fewer than
`query.min_group_size` distinct visitors is suppressed (pre-thresholding, as Google's
differential-privacy library does), and the answer says how many groups were withheld.
"""

import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import cast

from .config import Config
from .errors import QueryError
from .policy import duration_problem, parse_duration
from .registry import DIMENSIONS
from .store import EventStore, open_store
from .store.columns import SQLValue

METRICS = ("events", "visitors")


@dataclass(frozen=True, slots=True)
class QueryResult:
    purpose: str
    by: tuple[str, ...]
    metric: str
    since: str | None
    min_group_size: int
    suppressed_groups: int
    rows: list[dict[str, SQLValue]]


@contextlib.asynccontextmanager
async def existing_store(config: Config) -> AsyncIterator[EventStore]:
    """The store for reading; an error, not an empty new file, when none exists yet."""
    if not config.remote.url and not config.store.path.exists():
        raise QueryError(f"no store at {config.store.path}: nothing has been collected yet")
    store = open_store(config)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def drop_counts(config: Config) -> dict[str, int]:
    async with existing_store(config) as store:
        return await store.drop_counts()


async def run_query(
    config: Config,
    by: Sequence[str],
    metric: str = "events",
    since: str | None = None,
    purpose: str = "connection",
) -> QueryResult:
    if metric not in METRICS:
        raise QueryError(f"--metric must be one of {', '.join(METRICS)}, got {metric!r}")
    unknown = [d for d in by if d not in DIMENSIONS]
    if unknown or not by:
        raise QueryError(f"--by takes one or more of {', '.join(DIMENSIONS)}; got {list(by)}")
    try:
        config.policy.purpose(purpose)
    except Exception as exc:
        raise QueryError(str(exc)) from None
    if purpose in config.policy.decision_purposes:
        raise QueryError(
            f"purpose {purpose!r} feeds automated decisions: its data is not "
            "open to analyst queries"
        )
    since_ts = None
    if since is not None:
        window = parse_duration(since)
        if window is None:
            raise QueryError(f"--since {duration_problem(since)}")
        since_ts = time.time() - window.total_seconds()
    async with existing_store(config) as store:
        agg = await store.aggregate(by, purpose, since_ts, config.min_group_size)
    value = agg.columns.index(metric)
    rows = [dict(zip(by, r[: len(by)], strict=True)) | {metric: r[value]} for r in agg.rows]
    rows.sort(key=lambda r: cast(int, r[metric]), reverse=True)  # a metric is a COUNT
    return QueryResult(
        purpose, tuple(by), metric, since, config.min_group_size, agg.suppressed_groups, rows
    )
