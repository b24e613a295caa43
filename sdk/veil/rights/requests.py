"""Requests have a life: received → verified → done | refused, each step in the audit log.

A request is named by a random reference given to the subject, and by the audit's
`subject_ref` of the pseudonym (never the pseudonym itself), so the record of a deletion
request outlives the deletion. It is due one month after receipt (GDPR Art. 12(3); APPI
Art. 32-35 ask "without delay", which a month bounds), or 45 days for a Californian
(CCPA §1798.130(a)(2)). These are the laws' own periods, so constants rather than policy
keys: a policy may promise faster answers in prose, never slower ones.

A refusal must name one of the grounds the policy's law allows (APPI Art. 33(2), mirrored by
GDPR Art. 12(5), 23): GROUNDS. A request whose proof of identity fails never gets a row (there
is no subject to answer); it is audited as refused, with why (errors.NotVerified.why).
"""

import dataclasses
import datetime as dt
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import FieldError, VeilError
from ..policy import Policy
from ..store import SQLiteStore
from ..store import rights_store as sql
from ..store.audit import append, subject_ref
from ..store.keys import KeyStore
from ..store.rights_store import RequestRow
from . import limits
from .identity import CHANNELS, Requester

KINDS = (
    "access",
    "export",
    "correct",
    "delete",
    "restrict",
    "lift_restriction",
    "suspend",
    "resume",
    "object",
    "complaint",
)
# The only grounds on which a request may be refused.
HARM = "harm"  # harm to the life, body, property or other rights of the subject or another
BUSINESS = "business"  # a serious hindrance to the proper conduct of the business
LAW = "law"  # answering would breach a law
GROUNDS = {
    HARM: "answering could harm the life, body, property or other rights of you or another",
    BUSINESS: "answering would seriously hinder the proper conduct of the business",
    LAW: "answering would breach a law",
}
DUE_DAYS_CALIFORNIA = 45  # CCPA §1798.130(a)(2); everywhere else one calendar month
CALIFORNIA = "ccpa"  # jurisdiction.CCPA.key


class UnknownRequest(FieldError):
    """No open request has that reference."""


@dataclass(frozen=True, slots=True)
class Overdue:
    row: RequestRow
    overdue: bool


def _month_later(ts: float) -> float:
    """One calendar month after `ts` (31 January → 28/29 February: the month's last day)."""
    t = dt.datetime.fromtimestamp(ts, dt.UTC)
    year, month = (t.year + 1, 1) if t.month == 12 else (t.year, t.month + 1)
    for day in (t.day, 30, 29, 28):
        try:
            return t.replace(year=year, month=month, day=day).timestamp()
        except ValueError:
            continue
    raise AssertionError("every month has a 28th")


def due_for(received: float, jurisdiction: str) -> float:
    """When a request received at `received` from a requester under `jurisdiction` (a
    jurisdiction.Regime key) must be answered."""
    if jurisdiction == CALIFORNIA:
        return received + DUE_DAYS_CALIFORNIA * 86400
    return _month_later(received)


def new_reference() -> str:
    """A reference a subject can quote: random, so it reveals nothing and cannot be guessed."""
    return "R-" + secrets.token_hex(6).upper()


async def receive(
    store: SQLiteStore,
    keystore: KeyStore,
    requester: Requester,
    kind: str,
    jurisdiction: str,
    now: float | None = None,
) -> RequestRow:
    """Record a request whose requester is proven (identity.py): received, then verified,
    both audited, in one transaction. Its answer comes with `finish` or `refuse`."""
    if kind not in KINDS:
        raise FieldError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if requester.channel not in CHANNELS:
        raise FieldError(f"channel must be one of {', '.join(CHANNELS)}")
    now = time.time() if now is None else now
    ref = subject_ref(keystore, requester.subject)
    row = RequestRow(
        new_reference(),
        kind,
        ref,
        requester.channel,
        "received",
        jurisdiction,
        now,
        due_for(now, jurisdiction),
        None,
        None,
    )
    async with store._writing() as db:
        sql.insert(db, row)
        append(db, "rights_request", _details(row), ts=now)
        sql.set_status(db, row.id, "verified")
        row = dataclasses.replace(row, status="verified")
        append(db, "rights_request", _details(row), ts=now)
    store._anchor()  # the audit head, beside the store (audit.py)
    return row


async def finish(
    store: SQLiteStore,
    request_id: str,
    outcome: Mapping[str, object] | None = None,
    now: float | None = None,
) -> RequestRow:
    """Close a request as done; `outcome`: counts and flags only (it goes to the audit log)."""
    return await _close(store, request_id, "done", None, outcome or {}, now)


async def refuse(
    store: SQLiteStore, request_id: str, ground: str, now: float | None = None
) -> RequestRow:
    """Close a request as refused, on one of GROUNDS (anything else is rejected)."""
    if ground not in GROUNDS:
        raise FieldError(
            f"a refusal must name one of the grounds {', '.join(GROUNDS)} "
            f"({'; '.join(GROUNDS.values())}), got {ground!r}"
        )
    return await _close(store, request_id, "refused", ground, {}, now)


async def _close(
    store: SQLiteStore,
    request_id: str,
    status: str,
    ground: str | None,
    outcome: Mapping[str, object],
    now: float | None,
) -> RequestRow:
    now = time.time() if now is None else now
    async with store._writing() as db:
        if not sql.set_status(db, request_id, status, now, ground):
            raise UnknownRequest(f"no open request has the reference {request_id!r}")
        row = sql.get(db, request_id)
        if row is None:  # just updated in this transaction
            raise VeilError(f"request {request_id} vanished")
        append(db, "rights_outcome", {**_details(row), "outcome": dict(outcome)}, ts=now)
    store._anchor()
    return row


async def refuse_unverified(
    store: SQLiteStore, kind: str, channel: str, why: str, now: float | None = None
) -> None:
    """Audit a request refused because its proof of identity failed (identity.NotVerified):
    no row, no subject (there is none to name), only what was asked, how, and why not."""
    async with store._writing() as db:
        append(
            db,
            "rights_request",
            {"kind": kind, "channel": channel, "status": "refused", "why": why},
            ts=now,
        )
    store._anchor()


def open_requests(store: SQLiteStore, now: float | None = None) -> list[Overdue]:
    """Open requests, the most urgent first, each marked overdue when past its due date."""
    now = time.time() if now is None else now
    return [Overdue(row, row.due < now) for row in sql.open_requests(store.db)]


def get(store: SQLiteStore, request_id: str) -> RequestRow | None:
    return sql.get(store.db, request_id)


def _details(row: RequestRow) -> dict[str, object]:
    details: dict[str, object] = {
        "request": row.id,
        "kind": row.kind,
        "channel": row.channel,
        "status": row.status,
        "subject_ref": row.subject_ref,
        "jurisdiction": row.jurisdiction,
        "due": row.due,
    }
    if row.ground is not None:
        details["ground"] = row.ground
    return details


# What each limiting request kind does (limits.py): (limit, imposed?).
_LIMITS = {
    "restrict": ("restriction", True),
    "lift_restriction": ("restriction", False),
    "suspend": ("suspension", True),
    "resume": ("suspension", False),
    "object": ("objection", True),
}


async def apply_limit(
    store: SQLiteStore,
    keystore: KeyStore,
    policy: Policy,
    subject: str,
    kind: str,
    request_id: str,
    purpose: str = "",
) -> bool:
    """The limit a restrict / lift_restriction / suspend / resume / object request asks for
    (limits.py); False when it was in force (or lifted) already. `purpose`: objections only."""
    limit, on = _LIMITS[kind]
    if limit == limits.OBJECTION:
        limits.check_objection(policy, purpose)
    else:
        purpose = ""
    change = limits.impose if on else limits.lift
    return await change(store, keystore, subject, limit, purpose, request_id)
