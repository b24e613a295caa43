"""Until when each item of an export is kept: the date retention (retention.py) disposes of
it at the latest, and the rule in words; None for the date while no end is fixed yet (a
legal hold without an end, a consent still in force).

The same rules as retention's, read forwards: events and app records by the shorter of what
their policy version promised and today's period; the ledger, decisions and reviews by
`[policy.records]`; the provision register by APPI Art. 29(2).
"""

import datetime as dt
from collections.abc import Mapping

from ..policy import Policy
from ..retention import PROVISION_YEARS

Kept = tuple[str | None, str]  # (RFC 3339 date-time or None, the rule in words)


def iso(ts: float) -> str:
    """UTC, RFC 3339 (JSON Schema's date-time)."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat().replace("+00:00", "Z")


def _years_after(ts: float, years: int) -> float:
    """`years` calendar years after `ts` (retention.years_before, forwards; 29 February
    goes to the 28th, as there)."""
    at = dt.datetime.fromtimestamp(ts, dt.UTC)
    try:
        return at.replace(year=at.year + years).timestamp()
    except ValueError:
        return at.replace(year=at.year + years, day=28).timestamp()


def _days(seconds: float) -> str:
    return f"{seconds / 86400:g} days"


class Deadlines:
    def __init__(self, policy: Policy, promised: Mapping[tuple[str, str], int], now: float) -> None:
        self.policy = policy
        self.current = {k: p.retention.total_seconds() for k, p in policy.purposes.items()}
        self.promised = promised
        self._today = dt.datetime.fromtimestamp(now, dt.UTC).date()

    def _hold(self, kind: str, purpose: str | None, kept: Kept) -> Kept:
        """`kept`, unless a legal hold keeps (kind, purpose) today: then no end date yet."""
        for h in self.policy.legal_holds:
            if h.holds(kind, purpose, self._today):
                return None, f"kept under a legal hold: {h.reference}"
        return kept

    def governed(self, kind: str, purpose: str, version: str, ts: float) -> Kept:
        """An event or app record: its purpose's period from collection."""
        periods = [
            s
            for s in (self.current.get(purpose), self.promised.get((purpose, version)))
            if s is not None
        ]
        if not periods:  # a purpose no version declared: retention never sees it
            return None, f"purpose {purpose!r} has no retention on record"
        seconds = min(periods)
        return self._hold(
            kind, purpose, (iso(ts + seconds), f"{purpose}: {_days(seconds)} from collection")
        )

    def decision(self, purpose: str, latest: float) -> Kept:
        """A decision and its reviews: from the decision or its latest review."""
        period = self.policy.records.decisions.total_seconds()
        return self._hold(
            "decisions",
            purpose,
            (iso(latest + period), f"{_days(period)} after the decision or its latest review"),
        )

    def consent(self, scope: str, superseded: float | None) -> Kept:
        """A ledger row: while in force, then `consent_proof` after a later row replaced it."""
        period = self.policy.records.consent_proof.total_seconds()
        if superseded is None:
            return self._hold(
                "consent",
                scope,
                (None, f"in force; kept {_days(period)} after a later choice replaces it"),
            )
        return self._hold(
            "consent",
            scope,
            (iso(superseded + period), f"{_days(period)} after a later choice replaced it"),
        )

    def provision(self, recipient: str, purpose: str, ts: float, last: float) -> Kept:
        """A register entry: APPI Art. 29(2), by how the recipient's records are made."""
        method = next(
            (r.appi_record for r in self.policy.recipients if r.name == recipient), "each"
        )
        years, from_last = PROVISION_YEARS[method]
        since = "the last provision to the recipient" if from_last else "the provision"
        return self._hold(
            "provisions",
            purpose,
            (
                iso(_years_after(last if from_last else ts, years)),
                f"APPI Art. 29(2): {years} year(s) after {since}",
            ),
        )
