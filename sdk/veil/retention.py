"""Retention: every kind of data veil keeps is disposed of once its period has passed, except
what a legal hold in the policy keeps; each run leaves one "disposal" entry in the audit log.

Periods (docs/retention.md):
- events and app records: their purpose's `retention`, as the policy version they were
  collected under promised (below);
- the consent ledger: a row is kept while it is in force (the latest choice of its subject for
  its scope: a refusal must stick) and for `[policy.records] consent_proof` after a later row
  superseded it; a refusal by a visitor without a subject, for that long after it was made;
- decisions and their reviews: `[policy.records] decisions` after the decision or its latest
  review, whichever is later;
- the provision register: the periods of APPI Art. 29(2) (PROVISION_YEARS);
- per-subject keys: once nothing sealed under them remains (store/retention_all.py); daily
  keys at the end of their life (keystore).

Rows are deleted with SQLite's `secure_delete` on and the WAL is checkpointed and truncated, so
deleted rows survive in no file. Events and app records go off the event loop in short chunks
(store/offloop.py): an app keeps serving meanwhile.

A row is kept no longer than the policy version it was collected under promised (every row
carries its `policy_version`; the store keeps each version's terms): a later version that
lengthens a purpose's retention applies only to rows collected under it, one that shortens it
applies to every row. A row of a version whose terms are not on record gets the current
retention; a purpose the policy no longer declares keeps what its versions promised.
"""

import datetime as dt
import secrets
import time
from collections.abc import Callable

from .policy import Policy
from .store.base import LocalStore
from .store.keys import KeyStore
from .store.retention_all import RecordRules, count_due, dispose_records
from .store.subject_keys import sqlite_of

# APPI Art. 29(2) keeps a record of provision to a third party for the period the PPC's
# Enforcement Rules set (Art. 21 of the Rules, 個人情報の保護に関する法律施行規則 第21条):
# (i) a record made by the contract or other document of a provision made in supplying goods
# or services to the principal (Rules Art. 19(3)): 1 year from the last provision it covers;
# (ii) a record made collectively for continuous or repeated provision to the same third party
# (Rules Art. 19(2) proviso): 3 years from the last provision it covers; (iii) otherwise: 3
# years (from the record's making). By the recipient's `appi_record`: (years, counted from the
# last provision to that recipient).
PROVISION_YEARS = {"contract": (1, True), "collective": (3, True), "each": (3, False)}
APPI_REFERENCE = "APPI Art. 29(2); Enforcement Rules Art. 21"


def years_before(now: float, years: int) -> float:
    """The instant `years` calendar years before `now` (UTC): a record made at t is due once
    t is before it. 29 February goes back to the 28th: the period never ends early."""
    at = dt.datetime.fromtimestamp(now, dt.UTC)
    try:
        return at.replace(year=at.year - years).timestamp()
    except ValueError:
        return at.replace(year=at.year - years, day=28).timestamp()


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


def holds(policy: Policy, today: dt.date) -> Callable[[str, str | None], bool]:
    """Whether a legal hold in force today keeps records of (kind, purpose or scope)."""
    active = [h for h in policy.legal_holds if h.until is None or today < h.until]

    def held(kind: str, purpose: str | None) -> bool:
        return any(h.holds(kind, purpose, today) for h in active)

    return held


def provision_rule(policy: Policy, now: float) -> Callable[[str, float, float], bool]:
    """Whether a register entry (recipient, made at, last provision to that recipient) has
    passed its APPI Art. 29(2) period; a recipient the policy no longer names: case (iii)."""
    methods = {r.name: r.appi_record for r in policy.recipients}
    before = {years: years_before(now, years) for years, _ in PROVISION_YEARS.values()}

    def due(recipient: str, ts: float, last: float) -> bool:
        years, from_last = PROVISION_YEARS[methods.get(recipient, "each")]
        return (last if from_last else ts) < before[years]

    return due


async def enforce(
    store: LocalStore, keystore: KeyStore, policy: Policy, now: float | None = None
) -> dict[str, int]:
    """Dispose of what is past retention and not held; rows deleted per purpose (events and
    app records) and per table of veil's own records, daily keys destroyed (keys_destroyed)
    and subject keys erased (subject_keys)."""
    now = time.time() if now is None else now
    today = dt.datetime.fromtimestamp(now, dt.UTC).date()
    held = holds(policy, today)
    by_purpose, by_version = await cutoffs(store, policy, now)
    store = sqlite_of(store)  # the one local store: it alone applies legal holds
    deleted = await store.dispose(by_purpose, by_version=by_version, held=held)
    destroyed = await keystore.rotate_off_loop()
    held_rows: list[dict[str, object]] = []
    for purpose in by_purpose:
        due: dict[str | None, float] = {None: by_purpose[purpose]}
        due.update((v, c) for (p, v), c in by_version.items() if p == purpose)
        for kind in ("events", "records"):
            if held(kind, purpose):
                n = await count_due(store, kind, purpose, due)
                held_rows.append({"kind": kind, "purpose": purpose, "rows": n})
    _, counts = await dispose_records(
        store,
        keystore,
        RecordRules(
            consent=now - policy.records.consent_proof.total_seconds(),
            decisions=now - policy.records.decisions.total_seconds(),
            requests=now - policy.records.rights_requests.total_seconds(),
            provisions=provision_rule(policy, now),
            provisions_before=max(years_before(now, y) for y, _ in PROVISION_YEARS.values()),
            held=held,
        ),
        _entry(policy, now, by_purpose, by_version, deleted, destroyed, held_rows, today),
        now,
    )
    return {**deleted, **counts, "keys_destroyed": len(destroyed)}


def _entry(
    policy: Policy,
    now: float,
    by_purpose: dict[str, float],
    by_version: dict[tuple[str, str], float],
    deleted: dict[str, int],
    destroyed: list[str],
    held_rows: list[dict[str, object]],
    today: dt.date,
) -> dict[str, object]:
    """The disposal entry's part known before veil's own records go: the rules, the events
    and app records deleted per purpose, the daily keys destroyed, the holds in force."""
    rules: dict[str, object] = {
        f"purpose:{p}": {
            "kinds": ["events", "records"],
            "purpose": p,
            "period_seconds": round(now - cutoff),
            "shorter_by_version": {
                v: round(now - c) for (q, v), c in sorted(by_version.items()) if q == p
            },
        }
        for p, cutoff in sorted(by_purpose.items())
    }
    rules["consent_proof"] = {
        "kind": "consent",
        "period_seconds": round(policy.records.consent_proof.total_seconds()),
        "from": "superseded (a subject's latest row is in force and kept)",
    }
    rules["decisions"] = {
        "kinds": ["decisions", "reviews"],
        "period_seconds": round(policy.records.decisions.total_seconds()),
        "from": "the decision or its latest review",
    }
    rules["rights_requests"] = {
        "kind": "rights_requests",
        "period_seconds": round(policy.records.rights_requests.total_seconds()),
        "from": "the answer (an open request is kept)",
    }
    rules["appi_art_29"] = {
        "kind": "provisions",
        "law": APPI_REFERENCE,
        "years": {m: {"years": y, "from_last": f} for m, (y, f) in PROVISION_YEARS.items()},
        "recipients": {r.name: r.appi_record for r in policy.recipients},
    }
    return {
        "run": secrets.token_hex(8),
        "policy_version": policy.version,
        "rules": rules,
        "disposed": [
            {"table": "events+records", "purpose": p, "rows": n, "rule": f"purpose:{p}"}
            for p, n in sorted(deleted.items())
        ],
        "keys_destroyed": destroyed,  # daily keys: their ids name a kind and a day only
        "holds": [
            {
                "kind": h.kind,
                "purposes": list(h.purposes),
                "reference": h.reference,
                "until": h.until.isoformat() if h.until else None,
            }
            for h in policy.legal_holds
            if h.until is None or today < h.until
        ],
        "held_rows": held_rows,
    }
