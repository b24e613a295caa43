"""Each policy version's terms per purpose, and what counts as a material change of them.

A consent is given to the terms a purpose had when it was given: the fields collected, how long
they are kept, who receives them. When a later version broadens any of them for a purpose (a
field added, retention lengthened, a recipient added), a consent given under the earlier
version no longer holds for it until it is given again: the ledger reads such a grant as
`lapsed`. A narrowing change keeps consents in force. The store keeps every version's terms
(table `policy_terms`, written when a version is first registered).

Which purposes a consent scope covers: a purpose scope, itself; `special:<category>:<purpose>`,
its purpose; `decision:<type>`, the purpose the decision feeds; `provision:<recipient>`, every
purpose the recipient receives now.
"""

import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from .policy import Policy


@dataclass(frozen=True, slots=True)
class Terms:
    """What a purpose promised under one policy version. `None`: not on record (a version
    registered before veil kept terms: only its retention is known)."""

    fields: frozenset[str] | None
    retention_seconds: int
    recipients: frozenset[str] | None

    def row(self) -> tuple[str | None, int, str | None]:
        """(fields, retention_seconds, recipients) as stored: JSON arrays, sorted."""

        def text(names: frozenset[str] | None) -> str | None:
            return None if names is None else json.dumps(sorted(names))

        return text(self.fields), self.retention_seconds, text(self.recipients)

    @classmethod
    def from_row(
        cls, fields: str | None, retention_seconds: int, recipients: str | None
    ) -> "Terms":
        def names(text: str | None) -> frozenset[str] | None:
            return None if text is None else frozenset(json.loads(text))

        return cls(names(fields), int(retention_seconds), names(recipients))


def terms_of(policy: Policy) -> dict[str, Terms]:
    """The terms of each purpose of `policy`."""
    return {
        p.key: Terms(
            frozenset(p.fields),
            int(p.retention.total_seconds()),
            frozenset(r.name for r in policy.recipients if p.key in r.purposes),
        )
        for p in policy.purposes.values()
    }


def _duration(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    return f"{days}d" if not rest else f"{seconds // 3600}h"


def broadened(old: Terms | None, new: Terms) -> list[str]:
    """How `new` goes beyond `old`, in words; empty when it does not (no material change).
    Terms not on record count as broadened: a consent cannot be shown to cover `new`."""
    if old is None or old.fields is None or old.recipients is None:
        return ["its terms under that version are not on record"]
    if new.fields is None or new.recipients is None:  # terms_of always records both
        raise AssertionError("the new terms must be a current policy's (terms_of)")
    out = []
    if added := sorted(new.fields - old.fields):
        out.append(f"field(s) {', '.join(added)} added")
    if new.retention_seconds > old.retention_seconds:
        out.append(
            f"retention lengthened from {_duration(old.retention_seconds)} to "
            f"{_duration(new.retention_seconds)}"
        )
    if added := sorted(new.recipients - old.recipients):
        out.append(f"recipient(s) {', '.join(added)} added")
    return out


def scope_purposes(policy: Policy, scope: str) -> tuple[str, ...]:
    """The purposes whose terms a consent to `scope` was given for."""
    kind, _, rest = scope.partition(":")
    if not rest:
        return (scope,)
    if kind == "special":
        return (rest.partition(":")[2],)
    if kind == "decision":
        decision = policy.decisions.get(rest)
        return (decision.purpose,) if decision else ()
    if kind == "provision":
        return tuple(p for r in policy.recipients if r.name == rest for p in r.purposes)
    return ()


class TermsHistory:
    """Which purposes the current policy broadened since each earlier version, read from the
    store once per version (the terms of a registered version never change).

    `read` is the store's `policy_terms` (passed in, not the store: terms sit below the store,
    which keeps them)."""

    def __init__(self, read: Callable[[str], Awaitable[dict[str, Terms]]], policy: Policy) -> None:
        self.read = read
        self.policy = policy
        self.current = terms_of(policy)
        self._broadened: dict[str, frozenset[str]] = {policy.version: frozenset()}

    async def load(self, versions: Iterable[str]) -> None:
        """Make `lapsed` answer for grants given under `versions`."""
        for version in set(versions) - self._broadened.keys():
            old = await self.read(version)
            self._broadened[version] = frozenset(
                p for p, now in self.current.items() if broadened(old.get(p), now)
            )

    def lapsed(self, scope: str, version: str) -> bool:
        """Whether a grant of `scope` under `version` no longer holds: the current policy
        broadened the terms of a purpose it covers (or no longer declares what it was for).
        `load` the version first."""
        if version == self.policy.version:
            return False
        purposes = scope_purposes(self.policy, scope)
        changed = self._broadened[version]
        return not purposes or any(p in changed or p not in self.current for p in purposes)
