"""Retention for everything: the consent ledger, decisions and reviews, the provision register
(APPI Art. 29(2) periods) and per-subject keys are disposed of once past their period, legal
holds keep exactly what they name, and each run leaves one disposal entry in the audit log."""

import copy
import datetime as dt
import json
import secrets
import sqlite3
import time
from collections import Counter
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from policies import GUARDED

from veil.errors import ConfigError
from veil.notice import render_notice
from veil.policy import RecordsRetention, _canonical
from veil.pseudonymise import seal_for_subject
from veil.retention import enforce, years_before
from veil.rights import requests as rights_requests
from veil.rights.identity import Requester
from veil.store import SQLiteStore, audit
from veil.store.columns import ROW_COLUMNS
from veil.store.keys import KeyStore

DAY = 86400.0
# keys are erased only once older than store.retention_all.KEY_GRACE (a day): run two days on
NOW = time.time() + 2 * DAY


def policy(**extra: object) -> dict:
    p = copy.deepcopy(GUARDED)
    p["records"] = {"consent_proof": "30d", "decisions": "60d"}
    p["recipients"][0]["appi_record"] = "contract"  # CloudCo: 1 year from the last provision
    p["recipients"].append(
        {
            "name": "Carrier",
            "country": "JP",
            "role": "third_party",
            "purposes": ["care"],
            "safeguard": "domestic",
            "appi_record": "collective",  # 3 years from the last provision
        }
    )
    p.update(extra)
    return p


def subject() -> str:
    return secrets.token_hex(16)


def consent(ts: float, who: str | None, action: str, marker: str) -> dict:
    return {
        "ts": ts,
        "subject": who,
        "scope": "browsing_history",
        "action": action,
        "method": "api",
        "explicit": True,
        "gpc": False,
        "policy_version": "g1",
        "jurisdiction": marker,  # free text: a value the byte search can look for
    }


async def decision(store, keystore, who: str, ts: float, purpose: str, evidence: str) -> str:
    key_id, sealed = await seal_for_subject(store, keystore, who, b"{}")
    decision_id = secrets.token_hex(8)
    await store.add_decision(
        decision_id=decision_id,
        ts=ts,
        decision_type="credit_limit" if purpose == "credit" else "reminder_time",
        purpose=purpose,
        policy_version="g1",
        subject=who,
        legal_effect=purpose == "credit",
        basis="contract",
        evidence=evidence,
        key_id=key_id,
        sealed=sealed,
    )
    return decision_id


async def review(store, keystore, who: str, decision_id: str, ts: float) -> None:
    key_id, sealed = await seal_for_subject(store, keystore, who, b"why")
    await store.add_review(
        ts=ts, decision_id=decision_id, status="requested", key_id=key_id, sealed=sealed
    )


async def provision(store, ts: float, recipient: str, marker: str, who: str) -> None:
    await store.add_provision(
        ts=ts,
        recipient=recipient,
        country="US",
        role="third_party",
        purpose="care",
        categories=marker,
        subjects=1,
        records=1,
        basis="consent",
        safeguard="scc",
        transfer=None,
        policy_version="g1",
        subject_pseudonyms=[who],
    )


async def record(store, keystore, who: str, ts: float, purpose: str = "care") -> str:
    key_id, sealed = await seal_for_subject(store, keystore, who, b'{"plan": "x"}')
    await store.add_record(
        ts=ts,
        purpose=purpose,
        policy_version="g1",
        subject=who,
        fields="plan",
        key_id=key_id,
        sealed=sealed,
    )
    return key_id


def event(ts: float, site: str) -> tuple:
    values = dict.fromkeys(ROW_COLUMNS)
    values.update(event_id=site, ts=ts, purpose="connection", policy_version="g1", source="request")
    values.update(site=site, visitor="v")
    return tuple(values[c] for c in ROW_COLUMNS)


def files_hold(data_dir: Path, value: str) -> list[str]:
    return [p.name for p in data_dir.iterdir() if value.encode() in p.read_bytes()]


def disposal_entries(store) -> list[dict]:
    rows = store.db.execute(
        "SELECT details FROM audit_log WHERE kind = 'disposal' ORDER BY seq"
    ).fetchall()
    return [json.loads(r[0]) for r in rows]


@pytest.fixture
async def opened(make_config):
    made = []

    async def open_(**extra):
        cfg = make_config(policy=policy(**extra))
        store = SQLiteStore(cfg.store.path)
        await store.open(cfg.policy)
        keystore = KeyStore.open(cfg.keys)
        made.append((store, keystore))
        return cfg, store, keystore

    yield open_
    for store, keystore in made:
        await store.close()
        keystore.close()


async def test_each_kind_past_its_period_is_disposed_of_and_found_nowhere(opened, data_dir):
    cfg, store, keystore = await opened()
    gone, kept = subject(), subject()
    await store.append_consents(
        [
            consent(NOW - 100 * DAY, gone, "grant", "XX-superseded-long-ago"),
            consent(NOW - 50 * DAY, gone, "withdraw", "XX-latest-choice"),
            consent(NOW - 40 * DAY, kept, "grant", "XX-superseded-lately"),
            consent(NOW - 10 * DAY, kept, "withdraw", "XX-kept-choice"),
            consent(NOW - 40 * DAY, None, "refuse", "XX-anonymous-old"),
            consent(NOW - 10 * DAY, None, "refuse", "XX-anonymous-new"),
        ]
    )
    # decisions: 60 days after the decision or its latest review
    old = await decision(store, keystore, gone, NOW - 100 * DAY, "care", "evidence-expired")
    await review(store, keystore, gone, old, NOW - 90 * DAY)
    reviewed = await decision(store, keystore, kept, NOW - 100 * DAY, "care", "evidence-kept")
    await review(store, keystore, kept, reviewed, NOW - 10 * DAY)
    # app records: the purpose's 365 days; `gone` then has nothing sealed under their key
    await record(store, keystore, gone, NOW - 400 * DAY)
    kept_key = await record(store, keystore, kept, NOW - 100 * DAY)
    gone_key = store.db.execute(
        "SELECT key_id FROM subject_keys WHERE subject = ?", (gone,)
    ).fetchone()[0]
    # the register: APPI Art. 29(2) by recipient
    three_years = NOW - years_before(NOW, 3)
    provided = [subject() for _ in range(3)]  # whose data expired entries carried
    await provision(store, NOW - three_years - DAY, "Partner", "cat-each-expired", provided[0])
    await provision(store, NOW - three_years + 5 * DAY, "Partner", "cat-each-kept", kept)
    await provision(store, NOW - 400 * DAY, "CloudCo", "cat-contract-old", provided[1])
    await provision(store, NOW - 380 * DAY, "CloudCo", "cat-contract-last", provided[2])
    await provision(store, NOW - 4 * 365 * DAY, "Carrier", "cat-collective-old", kept)
    await provision(store, NOW - 2 * 365 * DAY, "Carrier", "cat-collective-last", kept)

    done = await enforce(store, keystore, cfg.policy, now=NOW)

    assert done["consent_ledger"] == 2  # the superseded grant and the old anonymous refusal
    assert (done["decisions"], done["reviews"], done["care"]) == (1, 1, 1)
    assert done["provisions"] == 3
    assert done["subject_keys"] == 0  # released now, erased a day on if still unused
    ledger = {r[0] for r in store.db.execute("SELECT jurisdiction FROM consent_ledger")}
    assert ledger == {
        "XX-latest-choice",  # a subject's latest choice is in force: a refusal must stick
        "XX-superseded-lately",
        "XX-kept-choice",
        "XX-anonymous-new",
    }
    assert [r[0] for r in store.db.execute("SELECT id FROM decisions")] == [reviewed]
    categories = {r[0] for r in store.db.execute("SELECT categories FROM provisions")}
    assert categories == {"cat-each-kept", "cat-collective-old", "cat-collective-last"}
    # the key nothing is sealed under is released from its subject, then erased; the other
    # stays
    mapped = "SELECT count(*) FROM subject_keys WHERE subject = ?"
    assert store.db.execute(mapped, (gone,)).fetchone() == (0,)
    assert keystore.key_by_id(gone_key) is not None
    done = await enforce(store, keystore, cfg.policy, now=NOW + 2 * DAY)
    assert done["subject_keys"] == 1 and keystore.key_by_id(gone_key) is None
    assert keystore.key_by_id(kept_key) is not None
    assert store.db.execute(mapped, (kept,)).fetchone() == (1,)
    await store.close()
    keystore.close()
    for value in (
        "XX-superseded-long-ago",
        "XX-anonymous-old",
        old,  # the decision's id (the audit log keeps only its hash)
        *provided,  # the entry itself stays in the audit log, without them (audit.py)
    ):
        assert files_hold(data_dir, value) == [], value
    # the erased key is in no keystore file; its id (random: it names no one) only in the
    # disposal entries
    assert files_hold(data_dir, gone_key) == [cfg.store.path.name]
    # the withdrawal that is still in force names `gone`; nothing else of theirs is left
    for table in ("decisions", "records", "provision_subjects", "subject_keys"):
        db = sqlite3.connect(cfg.store.path)
        assert db.execute(
            f"SELECT count(*) FROM {table} WHERE subject = ?", (gone,)
        ).fetchone() == (0,)
        db.close()
    assert files_hold(data_dir, reviewed) and files_hold(data_dir, kept)


async def test_a_returning_subject_gets_a_fresh_key(opened):
    cfg, store, keystore = await opened()
    who = subject()
    first = await record(store, keystore, who, NOW - 400 * DAY)
    await enforce(store, keystore, cfg.policy, now=NOW)
    second = await record(store, keystore, who, NOW)
    assert second != first and keystore.key_by_id(second) is not None
    await enforce(store, keystore, cfg.policy, now=NOW + 2 * DAY)
    assert keystore.key_by_id(first) is None and keystore.key_by_id(second) is not None


async def test_a_key_used_in_the_instant_it_was_released_is_kept(opened):
    """A record sealed under the key just before its release (the sealing read the mapping,
    then waited for the write lock) is stored after it: the key must not be erased."""
    cfg, store, keystore = await opened()
    who = subject()
    key_id = await record(store, keystore, who, NOW - 400 * DAY)
    await enforce(store, keystore, cfg.policy, now=NOW)  # released
    key = keystore.key_by_id(key_id)
    assert key is not None
    late = b"late record"
    nonce = secrets.token_bytes(12)
    await store.add_record(
        ts=NOW,
        purpose="care",
        policy_version="g1",
        subject=who,
        fields="plan",
        key_id=key_id,
        sealed=nonce + AESGCM(key).encrypt(nonce, late, key_id.encode()),
    )
    done = await enforce(store, keystore, cfg.policy, now=NOW + 2 * DAY)
    assert done["subject_keys"] == 0 and keystore.key_by_id(key_id) == key
    released = "SELECT count(*) FROM subject_keys_released"
    assert store.db.execute(released).fetchone() == (0,)


async def test_a_legal_hold_keeps_exactly_what_it_names(opened):
    reference = "Money Lending Business Act Art. 19 (transaction records, 10 years)"
    cfg, store, keystore = await opened(
        legal_holds=[
            {"kind": "decisions", "purposes": ["credit"], "reference": reference},
            {"kind": "events", "reference": "Telecommunications Business Act Art. 4"},
            {"kind": "provisions", "reference": "ended", "until": dt.date(2000, 1, 1)},
        ]
    )
    who = subject()
    held = await decision(store, keystore, who, NOW - 100 * DAY, "credit", "held-evidence")
    await decision(store, keystore, who, NOW - 100 * DAY, "care", "free-evidence")
    await store.write([event(NOW - 31 * DAY, "held-event.example")], Counter(), "2026-11-25")
    await provision(store, NOW - 4 * 365 * DAY, "Partner", "cat-hold-ended", who)

    done = await enforce(store, keystore, cfg.policy, now=NOW)

    assert [r[0] for r in store.db.execute("SELECT id FROM decisions")] == [held]
    assert done["decisions"] == 1 and done["connection"] == 0 and done["provisions"] == 1
    sites = [r["site"] for r in await store.select("SELECT site FROM event_rows")]
    assert sites == ["held-event.example"]
    [entry] = disposal_entries(store)
    assert entry["holds"] == [
        {"kind": "decisions", "purposes": ["credit"], "reference": reference, "until": None},
        {
            "kind": "events",
            "purposes": [],
            "reference": "Telecommunications Business Act Art. 4",
            "until": None,
        },
    ]  # the hold that ended is not in force
    assert {"kind": "decisions", "purpose": "credit", "rows": 1} in entry["held_rows"]
    assert {"kind": "events", "purpose": "connection", "rows": 1} in entry["held_rows"]
    assert not [h for h in entry["held_rows"] if h["kind"] in ("records", "provisions")]


async def test_the_disposal_entry_says_what_how_many_which_keys_and_the_rule(opened):
    cfg, store, keystore = await opened()
    who = subject()
    await store.append_consents(
        [
            consent(NOW - 100 * DAY, who, "grant", "XX-a"),
            consent(NOW - 90 * DAY, who, "withdraw", "XX-b"),
        ]
    )
    [old_id] = [
        r[0] for r in store.db.execute("SELECT id FROM consent_ledger WHERE jurisdiction = 'XX-a'")
    ]
    key_id = await record(store, keystore, who, NOW - 400 * DAY)
    await enforce(store, keystore, cfg.policy, now=NOW)
    [entry] = disposal_entries(store)
    assert entry["policy_version"] == "g1"
    assert entry["ledger_ids"] == [old_id]
    rows = {(d["table"], d.get("purpose")): d["rows"] for d in entry["disposed"]}
    assert rows[("consent_ledger", None)] == 1 and rows[("events+records", "care")] == 1
    assert key_id in entry["keys_released"] and who not in json.dumps(entry)
    assert entry["rules"]["purpose:care"]["period_seconds"] == 365 * 86400
    assert entry["rules"]["consent_proof"]["period_seconds"] == 30 * 86400
    assert entry["rules"]["appi_art_29"]["recipients"]["CloudCo"] == "contract"
    assert audit.verify(store.db) == []  # the ledger rows it removed are accounted for


async def test_an_answered_rights_request_goes_after_its_period_an_open_one_stays(opened):
    cfg, store, keystore = await opened(records={"rights_requests": "30d"})
    who = Requester(subject(), "dpo")
    answered = await rights_requests.receive(store, keystore, who, "access", "gdpr", NOW - 50 * DAY)
    await rights_requests.finish(store, answered.id, now=NOW - 40 * DAY)
    recent = await rights_requests.receive(store, keystore, who, "export", "gdpr", NOW - 20 * DAY)
    await rights_requests.finish(store, recent.id, now=NOW - 10 * DAY)
    overdue = await rights_requests.receive(store, keystore, who, "delete", "gdpr", NOW - 90 * DAY)
    await enforce(store, keystore, cfg.policy, now=NOW)
    left = {r for (r,) in store.db.execute("SELECT id FROM rights_requests")}
    assert left == {recent.id, overdue.id}  # open: kept however old, and listed as overdue
    [entry] = disposal_entries(store)
    rows = {d["table"]: d["rows"] for d in entry["disposed"]}
    assert rows["rights_requests"] == 1
    assert entry["rules"]["rights_requests"]["period_seconds"] == 30 * 86400
    assert audit.verify(store.db) == []


async def test_the_ledger_refuses_a_plain_delete_outside_disposal(opened):
    _, store, _ = await opened()
    await store.append_consents([consent(NOW - 100 * DAY, subject(), "grant", "XX-c")])
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        store.db.execute("DELETE FROM consent_ledger")
    assert store.db.execute("SELECT count(*) FROM consent_ledger").fetchone() == (1,)


def test_a_config_without_the_new_keys_loads_with_defaults(make_config):
    p = copy.deepcopy(GUARDED)
    cfg = make_config(policy=p)
    assert cfg.policy.records == RecordsRetention()
    assert cfg.policy.records.consent_proof == dt.timedelta(days=1095)
    assert cfg.policy.legal_holds == ()
    assert {r.appi_record for r in cfg.policy.recipients} == {"each"}
    # left out of the digest while at their defaults: the store sees the same policy
    canonical = json.dumps(_canonical(cfg.policy), default=str)
    assert "legal_holds" not in canonical and "appi_record" not in canonical
    assert '"records"' not in canonical


def test_bad_records_and_holds_are_reported_by_key(make_config):
    with pytest.raises(ConfigError) as e:
        make_config(
            policy=policy(
                records={"consent_proof": "forever"},
                legal_holds=[{"kind": "everything", "purposes": ["nope"], "reference": " "}],
            )
        )
    text = str(e.value)
    assert "policy.records.consent_proof" in text
    assert "policy.legal_holds[0].kind" in text
    assert "policy.legal_holds[0].purposes" in text
    assert "policy.legal_holds[0].reference" in text


def test_appi_years_are_calendar_years():
    leap = dt.datetime(2028, 2, 29, 12, tzinfo=dt.UTC).timestamp()
    assert years_before(leap, 1) == dt.datetime(2027, 2, 28, 12, tzinfo=dt.UTC).timestamp()
    at = dt.datetime(2027, 3, 1, tzinfo=dt.UTC).timestamp()
    assert years_before(at, 3) == dt.datetime(2024, 3, 1, tzinfo=dt.UTC).timestamp()


async def test_a_legacy_key_named_after_its_subject_is_erased_and_logged_by_reference(
    opened, data_dir
):
    cfg, store, keystore = await opened()
    who = subject()
    keystore.named_key(f"subject-{who}")  # before subject_keys: nothing sealed under it now
    done = await enforce(store, keystore, cfg.policy, now=NOW)
    assert done["subject_keys"] == 1
    [entry] = disposal_entries(store)
    assert f"subject:{audit.subject_ref(keystore, who)}" in entry["keys_destroyed"]
    assert who not in json.dumps(entry)
    await store.close()
    keystore.close()
    assert files_hold(data_dir, who) == []


def test_the_notice_names_the_periods_and_the_holds(make_config):
    p = policy(legal_holds=[{"kind": "decisions", "purposes": ["credit"], "reference": "Law X"}])
    text = render_notice(make_config(policy=p), "md")
    assert "a consent record for 30 days" in text and "decision for 60 days" in text
    assert "decisions of credit (Law X)" in text
