"""The consent ledger: append-only grants, refusals and withdrawals, per subject and scope.

A scope is what a consent is for:
- a purpose key that needs consent (`browsing_history`);
- `special:<category>:<purpose>`, explicit prior consent to a special category of data;
- `decision:<type>`, explicit consent to an automated decision with legal effect;
- `provision:<recipient>`, consent to provision to a declared third party.

Subjects are pseudonyms (subjects.py: a veil-issued subject cookie, or an app's own user id, in
separate namespaces), never the id itself. The ledger is never updated or deleted: the store
refuses both. A record that would not change the subject's state (a grant of what is already
granted) is not written, so repeating a request cannot grow the ledger.

Whether a consent-based purpose collects for a visitor is decided in one place, `collects`,
used by the pipeline and reported by `GET /veil/consent` alike.

Global Privacy Control (and DNT, as the same hint) opts a subject out of consent-based scopes,
unless the grant was given while the signal was on: an explicit, later choice that overrides it.
"""

import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from enum import StrEnum

from .errors import UnknownScope
from .jurisdiction import Regime
from .policy import Policy, Purpose
from .registry import SPECIAL_CATEGORIES
from .store.base import LocalStore
from .subjects import Subjects
from .terms import TermsHistory


class Action(StrEnum):
    GRANT = "grant"
    REFUSE = "refuse"
    WITHDRAW = "withdraw"
    # Read only, never stored: a grant given under an earlier policy version whose terms for
    # its purpose have since been broadened (terms.py). Not in force until given again.
    LAPSED = "lapsed"


class Method(StrEnum):
    BANNER = "banner"  # the visitor, through /veil/consent (banner or snippet)
    API = "api"  # the app, through the Python API
    GPC = "gpc"  # inferred from a Global Privacy Control / DNT signal


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    ts: float
    subject: str | None
    scope: str
    action: str
    method: str
    explicit: bool
    gpc: bool  # the signal was on when this was recorded
    policy_version: str
    jurisdiction: str


def scope_problem(policy: Policy, scope: str) -> str | None:
    """Why `scope` cannot be consented to under `policy`, or None when it can."""
    kind, _, rest = scope.partition(":")
    if not rest:
        purpose = policy.purposes.get(scope)
        if purpose is None:
            return f"unknown purpose {scope!r}"
        return (
            None
            if purpose.needs_consent
            else (f"purpose {scope!r} does not rest on consent ({purpose.legal_basis})")
        )
    if kind == "special":
        category, _, key = rest.partition(":")
        if category not in SPECIAL_CATEGORIES:
            return f"unknown special category {category!r}"
        return None if key in policy.purposes else f"unknown purpose {key!r}"
    if kind == "decision":
        return None if rest in policy.decisions else f"undeclared decision type {rest!r}"
    if kind == "provision":
        return (
            None
            if any(r.name == rest for r in policy.recipients)
            else (f"undeclared recipient {rest!r}")
        )
    return f"unknown consent scope {scope!r}"


def check_scopes(policy: Policy, scopes: Iterable[str]) -> list[str]:
    """The scopes, deduplicated in order; UnknownScope (a FieldError) naming the first one
    that cannot be consented to."""
    scopes = list(dict.fromkeys(scopes))
    for scope in scopes:
        if problem := scope_problem(policy, scope):
            raise UnknownScope(problem)
    return scopes


def signal_on(sec_gpc: bytes | None, dnt: bytes | None) -> bool:
    """Global Privacy Control (`Sec-GPC: 1`), or DNT (`DNT: 1`) read as the same hint."""
    return sec_gpc == b"1" or dnt == b"1"


def gpc_signal(headers: dict[bytes, bytes]) -> bool:
    """The privacy signal of a request's headers (`signal_on`)."""
    return signal_on(headers.get(b"sec-gpc"), headers.get(b"dnt"))


def opt_in(policy: Policy, regime: Regime) -> bool:
    """Whether consent-based purposes need a prior grant for a visitor under `regime`.

    Always, under the policy's default `consent_model = "opt-in"` (the policy acquires personal
    information "with the consent of an individual"); under `"regional"`, California's opt-out
    regime collects until a refusal, a withdrawal or GPC.
    """
    return regime.opt_in or policy.consent_model != "regional"


def latest(records: Sequence[ConsentRecord], scope: str, at: float) -> ConsentRecord | None:
    found = None
    for r in records:
        if r.scope == scope and r.ts <= at and (found is None or r.ts >= found.ts):
            found = r
    return found


def holds(
    records: Sequence[ConsentRecord],
    scope: str,
    at: float | None = None,
    signal: bool = False,
    explicit: bool = False,
) -> bool:
    """Whether a grant for `scope` is in force at `at`, given the request's GPC/DNT signal."""
    r = latest(records, scope, time.time() if at is None else at)
    if r is None or r.action != Action.GRANT:
        return False
    if explicit and not r.explicit:
        return False
    return r.gpc or not signal  # a grant made under GPC overrides it; an earlier one yields


def collects(
    records: Sequence[ConsentRecord],
    purpose: str,
    at: float,
    *,
    prior: bool,
    signal: bool,
    opted_out: Collection[str] = (),
) -> bool:
    """Whether the consent-based `purpose` collects for this visitor at `at`: a grant in force
    (not overridden by GPC/DNT), or, where no prior consent is needed (`prior` false: an
    opt-out regime), no refusal on the ledger or in the opt-out cookie, and no GPC/DNT."""
    if holds(records, purpose, at, signal):
        return True
    return (
        not prior
        and not signal
        and purpose not in opted_out
        and latest(records, purpose, at) is None
    )


_NOTHING: tuple[Sequence[Purpose], Sequence[str]] = ((), ())


def fan_out(
    policy: Policy,
    purposes: Sequence[Purpose],
    records: Sequence[ConsentRecord],
    at: float,
    regime: Regime,
    *,
    signal: bool,
    opted_out: Collection[str] = (),
) -> tuple[Sequence[Purpose], Sequence[str]]:
    """The consent fan-out of one event kept under a purpose that does not need consent:
    (the consent-based `purposes` it is also kept under, per `collects`; the scopes whose
    earlier grant the request's GPC/DNT `signal` withdraws, to be put on the ledger)."""
    prior = opt_in(policy, regime)
    if not records and prior:
        return _NOTHING  # the common case: no grant on record, prior consent required
    kept = [
        p
        for p in purposes
        if collects(records, p.key, at, prior=prior, signal=signal, opted_out=opted_out)
    ]
    withdrawn = [
        p.key
        for p in purposes
        if signal and holds(records, p.key, at) and not holds(records, p.key, at, signal)
    ]  # GPC wins over an earlier grant
    return kept, withdrawn


def changes(
    records: Sequence[ConsentRecord],
    scopes: Iterable[str],
    action: Action,
    explicit: bool,
    signal: bool,
) -> list[str]:
    """The scopes whose state `action` would change; the rest would only grow the ledger
    (a grant of what is granted alike, a refusal of what is refused, a withdrawal of what
    was never granted)."""
    out = []
    for scope in scopes:
        r = latest(records, scope, float("inf"))
        if action == Action.WITHDRAW:
            changed = r is not None and r.action == Action.GRANT
        elif action == Action.GRANT:
            changed = r is None or r.action != action or (r.explicit, r.gpc) != (explicit, signal)
        else:
            changed = r is None or r.action != action
        if changed:
            out.append(scope)
    return out


class Ledger:
    """Appends to and reads the consent ledger in the store."""

    def __init__(self, store: LocalStore, policy: Policy, subjects: Subjects) -> None:
        self.store = store
        self.policy = policy
        self.subjects = subjects
        self.terms = TermsHistory(store.policy_terms, policy)  # what earlier versions promised
        # Called with (subject, scopes) when a withdrawal or refusal ends grants in force:
        # the rows those grants allowed are disposed of (rights/erase.py, set by runtime).
        self.on_withdrawn: Callable[[str, Sequence[str]], Awaitable[None]] | None = None

    async def append(
        self,
        subject: str | None,
        scopes: Iterable[str],
        action: Action,
        method: Method,
        *,
        explicit: bool = True,
        signal: bool = False,
        jurisdiction: str = "strictest",
        history: Sequence[ConsentRecord] | None = None,
    ) -> list[ConsentRecord]:
        """Record `action` for each scope, in one transaction; `subject` is a pseudonym (or
        None for a refusal by a visitor without one). Scopes whose state would not change are
        skipped: only the records written are returned. `history`: the subject's records,
        when the caller has just read them (not read again)."""
        scopes = check_scopes(self.policy, scopes)
        if subject is not None:
            if history is None:
                history = await self.history(subject)
            scopes = changes(history, scopes, action, explicit, signal)
        now = time.time()
        records = [
            ConsentRecord(
                now,
                subject,
                scope,
                str(action),
                str(method),
                explicit,
                signal,
                self.policy.version,
                jurisdiction,
            )
            for scope in scopes
        ]
        if records:
            await self.store.append_consents([asdict(r) for r in records])
            if subject is not None and self.on_withdrawn is not None and action != Action.GRANT:
                ended = [r.scope for r in records if holds(history or (), r.scope)]
                if ended:
                    await self.on_withdrawn(subject, ended)
        return records

    async def histories(self, subjects: Collection[str]) -> dict[str, list[ConsentRecord]]:
        rows = await self.store.consent_histories(subjects)
        await self.terms.load({str(r["policy_version"]) for h in rows.values() for r in h})
        out: dict[str, list[ConsentRecord]] = {}
        for subject, history in rows.items():
            records: list[ConsentRecord] = []
            out[subject] = records
            for row in history:
                record = ConsentRecord(**row)  # type: ignore[arg-type]
                if record.action == Action.GRANT and self.terms.lapsed(
                    record.scope, record.policy_version
                ):
                    record = replace(record, action=Action.LAPSED)  # terms broadened since
                records.append(record)
        return out

    async def history(self, subject: str) -> list[ConsentRecord]:
        return (await self.histories([subject]))[subject]

    async def holds(
        self, subject: str, scope: str, *, signal: bool = False, explicit: bool = False
    ) -> bool:
        return holds(await self.history(subject), scope, signal=signal, explicit=explicit)
