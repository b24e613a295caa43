"""Retention: when a purpose's retention period has passed, its data is disposed of.

Rows are deleted with SQLite's `secure_delete` on (freed pages are zeroed) and the WAL is
checkpointed and truncated, so deleted rows survive in no file; then expired keys are destroyed
(a destroyed seal key makes every IP sealed under it unreadable). The consent ledger, the
decision log and the provision register are records the law asks us to keep (policy: "except in
cases where record retention is required by law"), and are not touched here.
"""

import time
from typing import TYPE_CHECKING

from .keys import KeyStore
from .policy import Policy

if TYPE_CHECKING:  # for types only: store → pipeline → consent would import in a circle
    from .store.base import LocalStore

# (table, timestamp column, purpose column) of the data a purpose's retention governs
GOVERNED = (("event_log", "ts", "purpose"), ("records", "ts", "purpose"))


async def enforce(store: "LocalStore", keystore: KeyStore, policy: Policy, now: float | None = None
                  ) -> dict[str, int]:
    """Dispose of what is past retention; return rows deleted per purpose and destroyed keys."""
    now = time.time() if now is None else now
    deleted = await store.dispose(
        {p.key: now - p.retention.total_seconds() for p in policy.purposes.values()}, GOVERNED)
    destroyed = keystore.rotate()
    return {**deleted, "keys_destroyed": len(destroyed)}
