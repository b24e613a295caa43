"""Retention: when a purpose's retention period has passed, its data is disposed of.

Rows are deleted with SQLite's `secure_delete` on (freed pages are zeroed) and the WAL is
checkpointed and truncated, so deleted rows survive in no file; then expired keys are destroyed
(a destroyed seal key makes every IP sealed under it unreadable). All of it runs off the event
loop, the deletes in short chunks (store/offloop.py): an app keeps serving meanwhile. The
consent ledger, the decision log and the provision register are records the law asks us to
keep (policy: "except in cases where record retention is required by law"), and are not
touched here.

A row is kept no longer than the policy version it was collected under promised (every row
carries its `policy_version`; the store keeps each version's terms): a later version that
lengthens a purpose's retention applies only to rows collected under it, one that shortens it
applies to every row. A row of a version whose terms are not on record gets the current
retention; a purpose the policy no longer declares keeps what its versions promised.
"""

import time

from .policy import Policy
from .store.base import LocalStore
from .store.keys import KeyStore


async def cutoffs(
    store: LocalStore, policy: Policy, now: float
) -> tuple[dict[str, float], dict[tuple[str, str], float]]:
    """(cutoff per purpose, for every row of it; later cutoffs per (purpose, version), for
    rows collected under a version that promised a shorter retention than today's)."""
    current = {p.key: p.retention.total_seconds() for p in policy.purposes.values()}
    by_version = {}
    for (purpose, version), promised in (await store.promised_retentions()).items():
        today = current.get(purpose)
        if today is None or promised < today:
            by_version[(purpose, version)] = now - promised
    return {k: now - seconds for k, seconds in current.items()}, by_version


async def enforce(
    store: LocalStore, keystore: KeyStore, policy: Policy, now: float | None = None
) -> dict[str, int]:
    """Dispose of what is past retention; return rows deleted per purpose and destroyed keys."""
    now = time.time() if now is None else now
    by_purpose, by_version = await cutoffs(store, policy, now)
    deleted = await store.dispose(by_purpose, by_version=by_version)
    destroyed = await keystore.rotate_off_loop()
    return {**deleted, "keys_destroyed": len(destroyed)}
