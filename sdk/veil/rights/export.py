"""Access and export (GDPR Art. 15 and 20, APPI Art. 33): every record veil holds of one
subject, in a portable, machine-readable format.

`export` reads the subject's rows from every table by their pseudonym (store/subject_reads.py)
and unseals what is sealed under the subject's own key: events under every purpose, app
records, automated decisions and their reviews, the consent history and the provisions of
their data to third parties. Each item carries its purpose, the policy version it was
collected under and the date until which it is kept. The document validates against
docs/export.schema.json; `to_csv` gives the same items as one flat CSV table. docs/rights.md
describes both, and what is left out and why (IPs sealed under a day's key, not the
subject's, are not theirs to read back).
"""

import csv
import io
import json
import time
from collections.abc import Mapping
from typing import cast

from ..policy import Policy
from ..pseudonymise import unseal
from ..store import audit, rights_store, subject_reads
from ..store.keys import KeyStore
from ..store.sqlite import SQLiteStore
from ..terms import scope_purposes
from .kept import Deadlines, Kept, iso

FORMAT = "veil-export/1"
KINDS = ("events", "records", "decisions", "reviews", "consents", "provisions", "limits",
         "requests")  # fmt: skip
CSV_COLUMNS = ("kind", "id", "ts", "purpose", "policy_version", "retention_until", "retention",
               "data")  # fmt: skip
UNTIL_LIFTED = "in force until lifted; removed with the subject's data on erasure"
REQUESTS_KEPT = "`[policy.records] rights_requests` after it was answered; kept while open"
NOT_INCLUDED = (
    {
        "what": "IP address and port",
        "why": "kept only for the connection purpose, sealed under a key of the day that is "
        "destroyed after a short retention, and carrying no subject: veil cannot tell which "
        "sealed endpoint is whose without linking rows the policy keeps apart",
    },
    {
        "what": "cookieless visits",
        "why": "counted under a daily pseudonym that nobody, veil included, can link to a "
        "person or across days",
    },
)


def _unsealed(keystore: KeyStore, row: Mapping[str, object]) -> object:
    """The JSON sealed under the subject's key; None once the key was destroyed."""
    plain = unseal(keystore, cast(str, row["key_id"]), cast(bytes, row["sealed"]))
    return None if plain is None else json.loads(plain)


def _item(row: Mapping[str, object], kept: Kept, **rest: object) -> dict[str, object]:
    """The fields every item has, then `rest`."""
    until, rule = kept
    return {
        "id": row["id"],
        "ts": iso(cast(float, row["ts"])),
        "purpose": row["purpose"],
        "policy_version": row["policy_version"],
        "retention_until": until,
        "retention": rule,
        **rest,
    }


async def export(
    store: SQLiteStore,
    keystore: KeyStore,
    policy: Policy,
    subject: str,
    *,
    now: float | None = None,
) -> dict[str, object]:
    """Everything veil holds of `subject` (a pseudonym), as docs/export.schema.json says."""
    now = time.time() if now is None else now
    kept = Deadlines(policy, await store.promised_retentions(), now)
    with subject_reads.snapshot(store.db) as db:
        events = subject_reads.events(db, subject)
        records = subject_reads.records(db, subject)
        decisions = subject_reads.decisions(db, subject)
        reviews = subject_reads.reviews(db, subject)
        consents = subject_reads.consents(db, subject)
        provisions = subject_reads.provisions(db, subject)
        limits = subject_reads.limits(db, subject)
        requests = rights_store.of_subject(db, audit.subject_ref(keystore, subject))
    doc: dict[str, object] = {
        "format": FORMAT,
        "generated": iso(now),
        "controller": {"name": policy.controller.name, "contact": policy.controller.contact},
        "policy_version": policy.version,
        "not_included": [dict(n) for n in NOT_INCLUDED],
    }

    def governed(kind: str, r: Mapping[str, object]) -> Kept:
        return kept.governed(
            kind, cast(str, r["purpose"]), cast(str, r["policy_version"]), cast(float, r["ts"])
        )

    doc["events"] = [_item(r, governed("events", r), data=r["data"]) for r in events]
    doc["records"] = [
        _item(
            r,
            governed("records", r),
            fields=(names := cast(str, r["fields"]).split(",")),
            values=_unsealed(keystore, r),
            correctable=[n for n in names if n in policy.app_fields],
        )
        for r in records
    ]
    # a decision and its reviews are kept from the later of it and its latest review
    latest = {cast(str, d["id"]): cast(float, d["ts"]) for d in decisions}
    for r in reviews:
        d_id = cast(str, r["decision_id"])
        latest[d_id] = max(latest.get(d_id, 0.0), cast(float, r["ts"]))
    doc["decisions"] = [
        _item(
            r,
            kept.decision(cast(str, r["purpose"]), latest[cast(str, r["id"])]),
            type=r["type"],
            legal_effect=bool(r["legal_effect"]),
            basis=r["basis"],
            evidence=r["evidence"],
            **_decision(_unsealed(keystore, r)),
        )
        for r in decisions
    ]
    doc["reviews"] = [
        _item(
            r,
            kept.decision(cast(str, r["purpose"]), latest[cast(str, r["decision_id"])]),
            decision_id=r["decision_id"],
            status=r["status"],
            reason=_reason(keystore, r),
        )
        for r in reviews
    ]
    doc["consents"] = [
        _item(
            {**r, "purpose": _one(scope_purposes(policy, cast(str, r["scope"])))},
            kept.consent(cast(str, r["scope"]), superseded),
            scope=r["scope"],
            action=r["action"],
            method=r["method"],
            explicit=bool(r["explicit"]),
            gpc=bool(r["gpc"]),
            jurisdiction=r["jurisdiction"],
        )
        for r, superseded in _superseded(consents)
    ]
    doc["provisions"] = [
        _item(
            r,
            kept.provision(
                cast(str, r["recipient"]),
                cast(str, r["purpose"]),
                cast(float, r["ts"]),
                cast(float, r["last_to_recipient"]),
            ),
            recipient=r["recipient"],
            country=r["country"],
            role=r["role"],
            categories=[c for c in cast(str, r["categories"]).split(",") if c],
            basis=r["basis"],
            safeguard=r["safeguard"],
            transfer=r["transfer"],
        )
        for r in provisions
    ]
    doc["limits"] = [
        _item(
            {
                "id": f"{r['limit']}:{r['purpose']}" if r["purpose"] else r["limit"],
                "ts": r["since"],
                "purpose": r["purpose"] or None,
                "policy_version": None,
            },
            (None, UNTIL_LIFTED),
            limit=r["limit"],
        )
        for r in limits
    ]
    requests_kept = policy.records.rights_requests.total_seconds()
    doc["requests"] = [
        _item(
            {"id": q.id, "ts": q.received, "purpose": None, "policy_version": None},
            (None if q.closed is None else iso(q.closed + requests_kept), REQUESTS_KEPT),
            right=q.kind,
            channel=q.channel,
            status=q.status,
            jurisdiction=q.jurisdiction,
            due=iso(q.due),
            closed=None if q.closed is None else iso(q.closed),
            ground=q.ground,
        )
        for q in requests
    ]
    doc["counts"] = {k: len(cast(list[object], doc[k])) for k in KINDS}
    return doc


def _decision(sealed: object) -> dict[str, object]:
    """outcome, inputs and model, as sealed (all None once the subject's key is gone)."""
    content = cast(dict[str, object], sealed) if isinstance(sealed, dict) else {}
    return {k: content.get(k) for k in ("outcome", "inputs", "model")}


def _reason(keystore: KeyStore, row: Mapping[str, object]) -> str | None:
    plain = unseal(keystore, cast(str, row["key_id"]), cast(bytes, row["sealed"]))
    return None if plain is None else plain.decode()


def _superseded(
    consents: list[dict[str, object]],
) -> list[tuple[dict[str, object], float | None]]:
    """Each ledger row (oldest first) with when a later row of its scope replaced it."""
    out: list[tuple[dict[str, object], float | None]] = []
    later: dict[object, float] = {}
    for r in reversed(consents):
        out.append((r, later.get(r["scope"])))
        later[r["scope"]] = cast(float, r["ts"])
    return out[::-1]


def _one(purposes: tuple[str, ...]) -> str | None:
    """A scope's purpose when it covers exactly one (a provision scope may cover several:
    the item's `scope` names it either way)."""
    return purposes[0] if len(purposes) == 1 else None


def to_csv(doc: Mapping[str, object]) -> str:
    """The export as one flat CSV table (RFC 4180, a header row): one row per item, `kind`
    naming its section, the fields every item has in columns of their own, and the rest of
    the item as a JSON object in `data`."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    common = set(CSV_COLUMNS[1:-1])
    for kind in KINDS:
        for item in cast(list[dict[str, object]], doc[kind]):
            rest = {k: v for k, v in item.items() if k not in common}
            writer.writerow(
                [
                    kind,
                    *("" if item[c] is None else item[c] for c in CSV_COLUMNS[1:-1]),
                    json.dumps(rest, ensure_ascii=False, sort_keys=True),
                ]
            )
    return out.getvalue()
