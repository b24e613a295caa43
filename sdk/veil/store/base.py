"""The store interface every backend implements."""

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ..policy import Policy


@dataclass(frozen=True, slots=True)
class Aggregate:
    columns: tuple[str, ...]
    rows: list[tuple]
    suppressed_groups: int  # groups withheld for having fewer than k distinct visitors


class EventStore(Protocol):
    async def open(self, policy: Policy) -> None:
        """Create or migrate the schema and register the policy's purposes."""

    async def write(self, rows: Sequence[tuple], drops: Counter, day: str,
                    batch: str | None = None) -> None:
        """Store rows and drop counts, or raise. Retrying the same rows is safe: an event id
        is stored once; `batch`, the same id on every retry of one batch, makes its drop
        counts count once too."""

    async def aggregate(self, by: Sequence[str], purpose: str, since: float | None,
                        min_group_size: int) -> Aggregate:
        """Events and distinct visitors per group, groups under k distinct visitors withheld."""

    async def drop_counts(self, since_day: str | None = None) -> dict[str, int]:
        """Counted drops by reason."""

    async def close(self) -> None: ...


class LocalStore(EventStore, Protocol):
    """A store that also keeps veil's own records: the consent ledger, app records,
    decisions, reviews, the provision register (the SQLite store; not a remote collector)."""

    async def append_consents(self, records: Sequence[dict]) -> None:
        """Consent records (column → value), all in one transaction."""

    async def insert(self, table: str, values: dict) -> int:
        """One row into one of veil's own tables; its id."""

    async def select(self, sql: str, params: Sequence = ()) -> list[dict]:
        """Rows of a short read-only query, as dicts."""

    async def dispose(self, cutoffs: dict[str, float],
                      tables: tuple[tuple[str, str, str], ...], *,
                      by_version: dict[tuple[str, str], float] | None = None) -> dict[str, int]:
        """Delete rows older than their purpose's cutoff (and rows of a (purpose, policy
        version) older than its own cutoff), unrecoverably."""
