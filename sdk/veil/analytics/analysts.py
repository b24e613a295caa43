"""Analysts: who may read which purposes' aggregates, and for which uses; and the audit of
every read.

An analyst is a name, a bearer token (32 random bytes; the store keeps only its SHA-256, so a
copy of the store lets no one read as them), the purposes granted and the uses their reads may
serve. A read states its purpose and its use, and is allowed only when the analyst holds both
AND the policy opens that purpose to that use (`Policy.analytics_uses`: consent and
legitimate-interests purposes for "statistics" by default, decision purposes never). Every
read answered is audited as "read", every read refused to a known analyst as "read_refused"
(hash-chained, audit.py); adding and revoking analysts are audited too.
"""

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import QueryError
from ..policy import Policy
from ..store import analysts_store as rows
from ..store import audit
from ..store.sqlite import SQLiteStore

TOKEN_PREFIX = "veil_"  # lets secret scanners and people recognise a leaked token
DEFAULT_USE = "statistics"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


@dataclass(frozen=True, slots=True)
class Analyst:
    name: str
    purposes: tuple[str, ...]
    uses: tuple[str, ...]
    created: float
    revoked: float | None = None


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _analyst(row: rows.Row) -> Analyst:
    name, _, purposes, uses, created, revoked = row
    return Analyst(name, purposes, uses, created, revoked)


def refusal(policy: Policy, analyst: Analyst, purpose: str, use: str) -> str | None:
    """Why `analyst` may not read `purpose` for `use`, or None when they may."""
    if purpose not in policy.purposes:
        return f"the policy declares no purpose {purpose!r}"
    if purpose in policy.decision_purposes:
        return f"purpose {purpose!r} feeds automated decisions: closed to analysts"
    if purpose not in analyst.purposes:
        return f"analyst {analyst.name!r} is not granted purpose {purpose!r}"
    if use not in analyst.uses:
        return f"analyst {analyst.name!r} may not read for use {use!r}"
    if use not in policy.analytics_uses(purpose):
        opened = ", ".join(sorted(policy.analytics_uses(purpose))) or "no use"
        return f"the policy opens purpose {purpose!r} to {opened}, not to {use!r}"
    return None


async def add(
    store: SQLiteStore,
    policy: Policy,
    name: str,
    purposes: Sequence[str],
    uses: Sequence[str] = (DEFAULT_USE,),
) -> tuple[Analyst, str]:
    """A new analyst and their token: the only time the token exists outside its holder."""
    if not _NAME.match(name):
        raise QueryError(
            f"analyst name must be 1-64 letters, digits, '_', '.', '@' or '-', got {name!r}"
        )
    if not purposes:
        raise QueryError("grant at least one purpose (--purpose)")
    wanted = tuple(dict.fromkeys(purposes)), tuple(dict.fromkeys(uses or (DEFAULT_USE,)))
    analyst = Analyst(name, *wanted, created=time.time())
    for purpose in analyst.purposes:  # a grant nothing could ever use is a mistake: say so now
        why = [refusal(policy, analyst, purpose, use) for use in analyst.uses]
        if all(why):
            raise QueryError(f"cannot grant {purpose!r}: {why[0]}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    async with store._writing() as db:
        if not rows.insert(
            db, name, token_hash(token), analyst.purposes, analyst.uses, analyst.created
        ):
            raise QueryError(f"an analyst named {name!r} exists already (names are not reused)")
        audit.append(
            db,
            "analyst_added",
            {"analyst": name, "purposes": list(analyst.purposes), "uses": list(analyst.uses)},
            ts=analyst.created,
        )
    store._anchor()
    return analyst, token


async def every(store: SQLiteStore) -> list[Analyst]:
    return [_analyst(r) for r in rows.every(store.db)]


async def revoke(store: SQLiteStore, name: str) -> None:
    async with store._writing() as db:
        if not rows.revoke(db, name, time.time()):
            raise QueryError(f"no analyst {name!r} with a live token")
        audit.append(db, "analyst_revoked", {"analyst": name})
    store._anchor()


def authenticate(store: SQLiteStore, token: str) -> Analyst | None:
    """The live analyst holding `token`, or None. The lookup is by the token's SHA-256 (an
    index probe on a hash tells a timing observer nothing about the token); the digests are
    then compared in constant time all the same."""
    digest = token_hash(token)
    row = rows.by_hash(store.db, digest)
    if row is None or not hmac.compare_digest(row[1], digest) or row[5] is not None:
        return None
    return _analyst(row)


async def audit_read(
    store: SQLiteStore,
    analyst: str,
    purpose: str,
    use: str,
    query: Mapping[str, object],
    cells: int,
    suppressed: int,
    epsilon: float = 0.0,
) -> None:
    """The "read" entry for an answered read: who, for what, what was asked, how much was
    returned and withheld, and the privacy budget spent (0 without noise)."""
    details: dict[str, object] = {"analyst": analyst, "purpose": purpose, "use": use}
    details |= {"query": dict(query), "cells": cells, "suppressed": suppressed, "epsilon": epsilon}
    async with store._writing() as db:
        audit.append(db, "read", details)
    store._anchor()


async def audit_refused(
    store: SQLiteStore, analyst: str, purpose: str, use: str, reason: str
) -> None:
    details = {"analyst": analyst, "purpose": purpose, "use": use, "reason": reason}
    async with store._writing() as db:
        audit.append(db, "read_refused", details)
    store._anchor()
