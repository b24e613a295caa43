"""Access/export and correction: one subject's every record, as JSON valid against
docs/export.schema.json and as CSV; nobody else's; a correction that leaves the old value
only in the audit log, sealed under the subject's key."""

import base64
import copy
import csv
import io
import json
import time
from collections import Counter
from pathlib import Path

import jsonschema
import pytest
from policies import GUARDED

from veil import FieldError, SpecialCategoryRefused, Veil
from veil.pseudonymise import unseal
from veil.rights import requests
from veil.rights.export import export, to_csv
from veil.rights.identity import Requester

from conftest import event_row, rows, scalar

SCHEMA = json.loads((Path(__file__).parents[1] / "docs" / "export.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(
    SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)
DAY = 86400
COMMON = ("id", "ts", "purpose", "policy_version", "retention_until", "retention")

POLICY = copy.deepcopy(GUARDED)
POLICY["purposes"]["personalisation"] = {  # a second consent-based purpose with events
    "description": "Remember the visitor's language",
    "data_use": "functional.service.personalize",
    "legal_basis": "consent",
    "retention": "30d",
    "fields": ["user_agent", "accept_language"],
}


def valid(doc: dict) -> dict:
    errors = sorted(VALIDATOR.iter_errors(doc), key=str)
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors]
    return doc


@pytest.fixture
async def veil(make_config, started) -> Veil:
    return await started(Veil(make_config(policy=POLICY)))


def pseudonym(veil: Veil, user: str) -> str:
    return veil.ledger.subjects.app(user)


async def events_for(veil: Veil, user: str, path: str, language: str, ts: float) -> None:
    """A row under each consent-based purpose carrying the subject, as the pipeline stores
    them (no visitor pseudonym beside a subject)."""
    subject = pseudonym(veil, user)
    await veil.store.write(
        [
            event_row(
                purpose="browsing_history",
                policy_version="g1",
                visitor=None,
                subject=subject,
                path=path,
                ts=ts,
            ),
            event_row(
                purpose="personalisation",
                policy_version="g1",
                visitor=None,
                subject=subject,
                language=language,
                ts=ts,
            ),
        ],
        Counter(),
        "2026-11-27",
    )


async def everything_for(veil: Veil, user: str, marker: str) -> str:
    """Two events, an app record, a decision with a review, a provision; the decision id."""
    ts = float(int(time.time()) - 3 * DAY)
    await veil.grant(user, ["special:medical_history:care", "provision:CloudCo"])
    await events_for(veil, user, f"/page-{marker}", f"lang-{marker}", ts)
    await veil.record(user, "care", diagnosis=f"diagnosis-{marker}", plan=f"plan-{marker}")
    decision = await veil.decide(
        user,
        "credit_limit",
        {"limit": 1000},
        inputs={"income": f"income-{marker}"},
        model="m1",
        contract="loan-agreement-v3",
    )
    await veil.contest(decision, f"reason-{marker}")
    await veil.provide("CloudCo", "care", [{"subject": user, "plan": "x", "country": "DE"}])
    return decision


async def test_an_export_holds_every_kind_validates_and_names_nobody_else(veil):
    decision = await everything_for(veil, "alice", "a11ce")
    await everything_for(veil, "bob", "b0b")
    # one provision carries both: each sees it, neither sees the other
    await veil.provide(
        "CloudCo", "care", [{"subject": "alice", "plan": "y"}, {"subject": "bob", "plan": "z"}]
    )
    await veil.object("alice", "connection")
    await veil.restrict("bob")
    request = await requests.receive(
        veil.store, veil.keystore, Requester(pseudonym(veil, "alice"), "token"), "export", "gdpr"
    )
    doc = valid(await veil.export("alice"))

    assert doc["counts"] == {
        "events": 2,
        "records": 1,
        "decisions": 1,
        "reviews": 1,
        "consents": 2,
        "provisions": 2,
        "limits": 1,
        "requests": 1,
    }
    [limit] = doc["limits"]
    assert (limit["limit"], limit["purpose"]) == ("objection", "connection")
    [asked] = doc["requests"]
    assert asked["id"] == request.id and asked["right"] == "export" and asked["due"] > asked["ts"]
    assert {e["purpose"] for e in doc["events"]} == {"browsing_history", "personalisation"}
    paths = {e["purpose"]: e["data"] for e in doc["events"]}
    assert paths["browsing_history"]["path"] == "/page-a11ce"
    assert paths["personalisation"]["language"] == "lang-a11ce"
    [record] = doc["records"]
    assert record["values"] == {"diagnosis": "diagnosis-a11ce", "plan": "plan-a11ce"}
    assert record["purpose"] == "care" and record["policy_version"] == "g1"
    assert record["correctable"] == ["diagnosis", "plan"]
    [d] = doc["decisions"]
    assert d["id"] == decision and d["outcome"] == {"limit": 1000} and d["basis"] == "contract"
    assert d["inputs"] == {"income": "income-a11ce"}
    [review] = doc["reviews"]
    assert review["decision_id"] == decision and review["reason"] == "reason-a11ce"
    assert {p["recipient"] for p in doc["provisions"]} == {"CloudCo"}
    assert doc["provisions"][0]["transfer"] == "EU→US under scc"
    assert all(p["policy_version"] == "g1" for p in doc["provisions"])
    assert {c["scope"] for c in doc["consents"]} == {
        "special:medical_history:care",
        "provision:CloudCo",
    }

    # each item with its retention: events and records by their purpose's period
    by_purpose = {e["purpose"]: e for e in doc["events"]}
    ts = by_purpose["browsing_history"]["ts"]
    assert by_purpose["browsing_history"]["retention_until"] > ts
    bh_days = _days(ts, by_purpose["browsing_history"]["retention_until"])
    assert bh_days == 90 and _days(ts, by_purpose["personalisation"]["retention_until"]) == 30
    assert _days(record["ts"], record["retention_until"]) == 365
    # the ledger, decisions and the register by [policy.records] and APPI Art. 29(2)
    assert _days(review["ts"], d["retention_until"]) == 1095  # from the latest review
    assert review["retention_until"] == d["retention_until"]
    assert {c["retention_until"] for c in doc["consents"]} == {None}  # in force: kept
    for p in doc["provisions"]:
        assert p["retention"] == "APPI Art. 29(2): 3 year(s) after the provision"
        assert p["retention_until"][:4] == str(int(p["ts"][:4]) + 3)

    # nobody else's data: neither bob's values nor his pseudonym, nor alice's own pseudonym
    text = json.dumps(doc)
    for other in ("b0b", pseudonym(veil, "bob"), pseudonym(veil, "alice")):
        assert other not in text
    bob = valid(await veil.export("bob"))
    assert "a11ce" not in json.dumps(bob) and bob["counts"]["provisions"] == 2
    assert [x["limit"] for x in bob["limits"]] == ["restriction"] and bob["requests"] == []
    shared = {p["id"] for p in doc["provisions"]} & {p["id"] for p in bob["provisions"]}
    assert len(shared) == 1
    # the register still counts subjects; the link table names them, each export its own
    assert scalar(veil, "SELECT COUNT(*) FROM provision_subjects") == 4


def _days(start: str, end: str) -> float:
    import datetime as dt

    def parse(s: str) -> dt.datetime:
        return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))

    return round((parse(end) - parse(start)).total_seconds() / DAY, 3)


async def test_a_subject_with_nothing_gets_an_empty_valid_export(veil):
    jsonschema.Draft202012Validator.check_schema(SCHEMA)  # the published schema is one
    doc = valid(await veil.export("nobody"))
    assert set(doc["counts"].values()) == {0}
    assert [n["what"] for n in doc["not_included"]] == ["IP address and port", "cookieless visits"]


async def test_csv_parses_and_matches_the_json(veil):
    await everything_for(veil, "alice", "a11ce")
    await veil.correct("alice", 1, "plan", 'with "quotes", commas\nand a newline')
    doc = valid(await veil.export("alice"))
    table = list(csv.DictReader(io.StringIO(to_csv(doc), newline="")))
    assert list(table[0]) == [
        "kind",
        "id",
        "ts",
        "purpose",
        "policy_version",
        "retention_until",
        "retention",
        "data",
    ]
    assert Counter(r["kind"] for r in table) == Counter(
        {k: n for k, n in doc["counts"].items() if n}
    )
    for row in table:
        [item] = [i for i in doc[row["kind"]] if str(i["id"]) == row["id"]]
        assert row["ts"] == item["ts"] and row["purpose"] == (item["purpose"] or "")
        assert row["retention_until"] == (item["retention_until"] or "")
        assert json.loads(row["data"]) == {k: v for k, v in item.items() if k not in COMMON}
    [record] = [r for r in table if r["kind"] == "records"]
    assert json.loads(record["data"])["values"]["plan"] == 'with "quotes", commas\nand a newline'


async def test_a_browser_subject_exports_their_events_under_two_purposes(
    make_config, geoip_db, started_site
):
    site = await started_site(
        Veil(make_config(policy=POLICY, geoip={"path": str(geoip_db)}, keys={"seal_ip": True}))
    )
    async with site.client("198.51.100.77", **{"Accept-Language": "de-DE"}) as c:
        r = await c.post("/veil/consent", json={"grant": ["browsing_history", "personalisation"]})
        assert r.status_code == 200
        await c.get("/pricing")
        await c.get("/checkout")
        cookie = c.cookies.get("__Host-veil_sid")
    async with site.client("198.51.100.78") as other:  # another browser, its own subject
        await other.post("/veil/consent", json={"grant": ["browsing_history"]})
        await other.get("/someone-elses-page")
    await site.veil.flush()
    veil = site.veil
    subject = veil.ledger.subjects.browser(cookie)
    assert subject is not None
    # the IPs are at rest (sealed, for the connection purpose) but in no export
    assert scalar(veil, "SELECT COUNT(*) FROM event_rows WHERE sealed_endpoint IS NOT NULL") > 0
    doc = valid(await export(veil.store, veil.keystore, veil.config.policy, subject))
    by = Counter(e["purpose"] for e in doc["events"])
    assert by == {"browsing_history": 2, "personalisation": 2}
    assert {e["data"]["path"] for e in doc["events"] if e["purpose"] == "browsing_history"} == {
        "/pricing",
        "/checkout",
    }
    assert {e["data"]["language"] for e in doc["events"] if e["purpose"] == "personalisation"} == {
        "de"
    }
    assert [c["scope"] for c in doc["consents"]] == ["browsing_history", "personalisation"]
    text = json.dumps(doc)
    assert "198.51.100" not in text and "someone-elses-page" not in text
    assert subject not in text


# -- correction ------------------------------------------------------------------------------


def store_bytes(veil: Veil) -> bytes:
    db = Path(veil.config.store.path)
    return b"".join(p.read_bytes() for p in (db, db.with_name(db.name + "-wal")) if p.exists())


async def test_correction_reseals_and_keeps_the_old_value_only_sealed_in_the_audit_log(veil):
    await veil.record("alice", "care", plan="OLD-PLAN-7f3a")
    [(record_id, old_blob)] = rows(veil, "SELECT id, sealed FROM records")
    result = await veil.correct("alice", record_id, "plan", "NEW-PLAN-9c1d")
    assert result["record_id"] == record_id and result["field"] == "plan"

    doc = valid(await veil.export("alice"))
    assert doc["records"][0]["values"] == {"plan": "NEW-PLAN-9c1d"}
    # re-sealed in place (a new nonce): the old ciphertext is in no table
    assert scalar(veil, "SELECT COUNT(*) FROM records WHERE sealed = ?", old_blob) == 0
    # the audit log has the old value, only as ciphertext under the subject's key
    [(details,)] = rows(veil, "SELECT details FROM audit_log WHERE kind = 'correction'")
    entry = json.loads(details)
    assert entry["field"] == "plan" and entry["record_id"] == record_id
    assert pseudonym(veil, "alice") not in details  # named by subject_ref only
    sealed = base64.b64decode(entry["old_value_sealed"])
    [(key_id,)] = rows(veil, "SELECT key_id FROM records")
    assert json.loads(unseal(veil.keystore, key_id, sealed)) == {
        "field": "plan",
        "value": "OLD-PLAN-7f3a",
    }
    await veil.flush()
    assert b"OLD-PLAN-7f3a" not in store_bytes(veil)  # in clear nowhere, WAL included
    assert b"NEW-PLAN-9c1d" not in store_bytes(veil)
    # crypto-shredding the subject's key (an erasure) leaves the old value unreadable
    veil.keystore.destroy(key_id)
    assert unseal(veil.keystore, key_id, sealed) is None


async def test_correcting_another_subjects_record_is_refused(veil):
    await veil.record("alice", "care", plan="alice-plan")
    await veil.record("bob", "care", plan="bob-plan")
    [(alice_record,)] = rows(
        veil, "SELECT id FROM records WHERE subject = ?", pseudonym(veil, "alice")
    )
    with pytest.raises(FieldError, match="no record with that id is the subject's"):
        await veil.correct("bob", alice_record, "plan", "hijacked")
    with pytest.raises(FieldError, match="no record with that id is the subject's"):
        await veil.correct("bob", 999, "plan", "nothing")  # the same answer: no oracle
    assert (await veil.export("alice"))["records"][0]["values"] == {"plan": "alice-plan"}
    assert scalar(veil, "SELECT COUNT(*) FROM audit_log WHERE kind = 'correction'") == 0


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("plan", 3, "must be of type string"),
        ("income", 5.0, "not one of the record's fields"),
        ("ip_address", "x", "not declared"),
        ("nickname", "x", "not declared"),
    ],
)
async def test_only_a_records_declared_fields_are_correctable(veil, field, value, message):
    await veil.record("alice", "care", plan="p")
    with pytest.raises(FieldError, match=message):
        await veil.correct("alice", 1, field, value)


async def test_a_special_category_is_corrected_only_with_explicit_consent_in_force(veil):
    await veil.grant("carol", ["special:medical_history:care"])
    await veil.record("carol", "care", diagnosis="first", plan="p")
    await veil.withdraw("carol", ["special:medical_history:care"])
    with pytest.raises(SpecialCategoryRefused, match="explicit consent"):
        await veil.correct("carol", 1, "diagnosis", "second")
    await veil.correct("carol", 1, "plan", "q")  # not special: correctable still
    await veil.grant("carol", ["special:medical_history:care"])
    await veil.correct("carol", 1, "diagnosis", "second")
    doc = valid(await veil.export("carol"))
    assert doc["records"][0]["values"] == {"diagnosis": "second", "plan": "q"}
    # each consent replaced by a later choice is kept 1095 days from then; the last is in force
    ledger = doc["consents"]
    assert [c["action"] for c in ledger] == ["grant", "withdraw", "grant"]
    assert _days(ledger[1]["ts"], ledger[0]["retention_until"]) == 1095
    assert _days(ledger[2]["ts"], ledger[1]["retention_until"]) == 1095
    assert ledger[2]["retention_until"] is None


async def test_a_legal_hold_shows_as_kept_under_its_law(make_config, started):
    held = copy.deepcopy(POLICY)
    held["legal_holds"] = [
        {"kind": "records", "reference": "Medical Care Act Art. 24", "purposes": ["care"]}
    ]
    veil = await started(Veil(make_config(policy=held)))
    await veil.record("dave", "care", plan="p")
    await veil.record("dave", "credit", income=10.0)
    doc = valid(await veil.export("dave"))
    rules = {r["purpose"]: (r["retention_until"], r["retention"]) for r in doc["records"]}
    assert rules["care"] == (None, "kept under a legal hold: Medical Care Act Art. 24")
    assert (
        rules["credit"][0] is not None and rules["credit"][1] == "credit: 365 days from collection"
    )
