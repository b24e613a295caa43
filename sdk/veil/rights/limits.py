"""Restriction, suspension and objection: what a subject can ask veil to stop doing with their
data, each reversible and each audited (kinds "restriction", "suspension", "objection").

- restriction (GDPR Art. 18): the subject's rows are kept but used for nothing: left out of
  every analyst aggregate (analytics/engine.py, the `events` view), refused by
  `provide` and `decide` (SubjectRestricted), until lifted;
- suspension (APPI Art. 35, "cease utilisation"): restriction, and collection stops too: a
  request carrying their subject cookie stores nothing, under any purpose (counted as
  `suspended`), and `record` refuses to add to their data;
- objection (GDPR Art. 21) to a legitimate-interests purpose (`connection`): that purpose's
  rows carry no subject (a daily visitor pseudonym only), so nothing already stored can be
  found and excluded. What objection can do is stop collection: a request carrying the
  objecting subject's cookie, or the opt-out cookie listing the purpose (a visitor without a
  subject: http/consent.py, `{"object": ["connection"]}`), is not stored under it (counted as
  `objected`); their consent-based purposes go on as consented. An app user's objection is
  recorded and audited, but veil cannot tell their requests apart: the app enforces it (or
  sets the opt-out cookie in their browser).

The limits live in `subject_limits` (store/subject_limits.py) and go with the subject at
erasure. The pipeline reads them per batch with the consent ledger (writer._consent_view).
"""

import time
from collections.abc import Collection

from ..errors import FieldError
from ..policy import Policy
from ..store import audit
from ..store import subject_limits as sql
from ..store.base import LocalStore
from ..store.keys import KeyStore
from ..store.subject_keys import sqlite_of

RESTRICTION, SUSPENSION, OBJECTION = sql.RESTRICTION, sql.SUSPENSION, sql.OBJECTION


def objectable(policy: Policy) -> tuple[str, ...]:
    """The purposes a subject may object to: those resting on legitimate interests."""
    return tuple(p.key for p in policy.purposes.values() if p.legal_basis == "legitimate_interests")


def check_objection(policy: Policy, purpose: str) -> str:
    if purpose not in objectable(policy):
        raise FieldError(
            f"{purpose[:60]!r} is not a purpose resting on legitimate interests "
            f"({', '.join(objectable(policy)) or 'none'}); to a consent-based purpose, "
            "withdraw consent instead"
        )
    return purpose


async def _change(
    store: LocalStore,
    keystore: KeyStore,
    subject: str,
    kind: str,
    purpose: str,
    on: bool,
    request_id: str | None,
) -> bool:
    if kind not in (RESTRICTION, SUSPENSION, OBJECTION) or (kind == OBJECTION) != bool(purpose):
        raise FieldError("a limit is a restriction, a suspension, or an objection to a purpose")
    local = sqlite_of(store)
    details: dict[str, object] = {
        "subject_ref": audit.subject_ref(keystore, subject),
        "action": "imposed" if on else "lifted",
    }
    if purpose:
        details["purpose"] = purpose
    if request_id is not None:
        details["request_id"] = request_id
    async with local._writing() as db:
        now = time.time()
        changed = (
            sql.impose(db, subject, kind, purpose, now)
            if on
            else sql.lift(db, subject, kind, purpose)
        )
        if changed:
            audit.append(db, kind, details, ts=now)
    if changed:
        local._anchor()
    return changed


async def impose(
    store: LocalStore,
    keystore: KeyStore,
    subject: str,
    kind: str,
    purpose: str = "",
    request_id: str | None = None,
) -> bool:
    """Put a limit on `subject` (a pseudonym); False when it was in force already (nothing
    audited). `purpose`: the purpose objected to, for an objection (`check_objection`)."""
    return await _change(store, keystore, subject, kind, purpose, True, request_id)


async def lift(
    store: LocalStore,
    keystore: KeyStore,
    subject: str,
    kind: str,
    purpose: str = "",
    request_id: str | None = None,
) -> bool:
    """Lift a limit; False when it was not in force (nothing audited)."""
    return await _change(store, keystore, subject, kind, purpose, False, request_id)


def active(store: LocalStore, subjects: Collection[str]) -> dict[str, frozenset[str]]:
    """The limits of each limited subject among `subjects` ("restriction", "suspension",
    "objection:<purpose>"): a short read, per batch and per guard."""
    return sql.active(sqlite_of(store).db, subjects) if subjects else {}


def restricted(store: LocalStore, subjects: Collection[str]) -> set[str]:
    """The subjects whose data may not be used now: restricted or suspended."""
    return {s for s, kinds in active(store, subjects).items() if kinds & {RESTRICTION, SUSPENSION}}


def suspended(store: LocalStore, subject: str) -> bool:
    return SUSPENSION in active(store, [subject]).get(subject, frozenset())
