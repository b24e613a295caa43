"""Erasure with crypto-shredding, and the disposal a withdrawn consent triggers (issue 10).

Attack-minded: after an erasure, a byte search of every file of the store and keystore finds
neither the subject's pseudonym, nor their values, nor their cookie, nor their key's id; what
was sealed under their key cannot be read; other subjects keep every row; the subject can
consent again and gets a fresh key. Real SQLite files, real HTTP through the middleware.
"""

import copy
import json
import secrets
from collections import Counter
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from policies import GUARDED

from veil import Veil
from veil.pseudonymise import unseal
from veil.rights.erase import dispose_purpose, end_browser_subject, erase
from veil.store import audit, subject_erase
from veil.store.subject_keys import legacy_key_id

from conftest import Site, event_row, known_to_ledger, rows, scalar

GRANT = {"grant": ["browsing_history"]}
A_IP, B_IP = "198.51.100.20", "203.0.113.30"  # DE and JP in the test GeoIP database


def files(data_dir: Path) -> dict[str, bytes]:
    """Every file of the store and keystore (the WAL, the keystore's journal if any)."""
    return {p.name: p.read_bytes() for p in data_dir.iterdir() if p.is_file()}


def found(data_dir: Path, *needles: str | bytes) -> list[tuple[str, str]]:
    """(file, needle) for each needle some file holds."""
    out = []
    for name, data in files(data_dir).items():
        for n in needles:
            raw = n.encode() if isinstance(n, str) else n
            if raw in data:
                out.append((name, raw.decode(errors="replace")))
    return out


def consent_purpose_policy() -> dict:
    """GUARDED, and a consent-based purpose holding an app field (records to dispose of)."""
    policy = copy.deepcopy(GUARDED)
    policy["purposes"]["newsletter"] = {
        "description": "Send the newsletter the subject asked for",
        "data_use": "marketing.communications.email",
        "legal_basis": "consent",
        "retention": "90d",
        "fields": ["plan"],
    }
    return policy


async def browse(site: Site, ip: str, path: str) -> str:
    """A browser that consents to browsing_history and visits `path`: its cookie value."""
    async with site.client(ip) as c:
        r = await c.post("/veil/consent", json=GRANT)
        cookie = r.cookies["__Host-veil_sid"]
        c.cookies.set("__Host-veil_sid", cookie, domain="shop.example")
        assert (await c.get(path)).text == "page"
    await site.veil.flush()
    return cookie


async def test_an_app_user_erased_leaves_no_byte_behind(make_config, started, data_dir):
    veil = await started(Veil(make_config(policy=GUARDED)))
    keystore, ledger = veil.keystore, veil.ledger
    for user in ("alice", "bob"):
        await veil.grant(user, ["provision:CloudCo", "special:medical_history:care"])
        await veil.record(user, "care", plan=f"Plan-{user}-Zebra42", diagnosis=f"Dx-{user}-77")
        decision = await veil.decide(user, "reminder_time", f"9am-{user}", inputs={"q": user})
        await veil.contest(decision, f"reason-of-{user}-Quokka")
        await veil.provide("CloudCo", "care", [{"subject": user, "plan": "x"}])
    alice = ledger.subjects.app("alice")
    bob = ledger.subjects.app("bob")
    key_ids = {k for (k,) in rows(veil, "SELECT key_id FROM records WHERE subject=?", alice)}
    (sealed,) = rows(veil, "SELECT key_id, sealed FROM records WHERE subject=?", alice)
    assert unseal(keystore, *sealed) is not None
    tables = ("records", "decisions", "consent_ledger", "provision_subjects", "subject_keys")
    bob_before = {t: scalar(veil, f"SELECT COUNT(*) FROM {t} WHERE subject=?", bob) for t in tables}
    reviews_before = scalar(veil, "SELECT COUNT(*) FROM reviews")
    # the keystore never names the subject: the key id is random
    assert found(data_dir, alice)
    assert not any(name.startswith("keys.db") for name, _ in found(data_dir, alice))

    proof = await veil.erase("alice")

    assert found(data_dir, alice, *key_ids, "Plan-alice", "Dx-alice", "Quokka", "9am-alice") == []
    assert unseal(keystore, *sealed) is None  # crypto-shredded: the ciphertext is noise now
    assert {t: scalar(veil, f"SELECT COUNT(*) FROM {t} WHERE subject=?", bob) for t in tables} == (
        bob_before
    )
    assert scalar(veil, "SELECT COUNT(*) FROM reviews") == reviews_before - 1
    assert bob_before["records"] == 1 and bob_before["consent_ledger"] == 2
    assert (Path(data_dir) / "veil.db-wal").stat().st_size == 0 and proof["wal_truncated"]
    # the proof: minimal, in the audit log, naming the subject only by its reference
    assert proof["keys"] == 1 and proof["request_id"] == "api" and len(proof["ledger_ids"]) == 2
    assert proof["counts"] == {
        "consent_ledger": 2,
        "decisions": 1,
        "provision_subjects": 1,
        "records": 1,
        "reviews": 1,
        "subject_keys": 1,
    }
    ((details,),) = [rows(veil, "SELECT details FROM audit_log WHERE kind='erasure'")]
    logged = json.loads(details[0])
    assert logged["subject_ref"] == audit.subject_ref(keystore, alice) != alice
    assert alice not in details[0]
    with audit.open_readonly(Path(veil.config.store.path)) as db:
        assert audit.verify(db) == []  # the removed ledger rows are accounted for
    # bob's data still reads
    ((bob_key, bob_sealed),) = rows(veil, "SELECT key_id, sealed FROM records WHERE subject=?", bob)
    assert json.loads(unseal(keystore, bob_key, bob_sealed))["plan"] == "Plan-bob-Zebra42"


async def test_a_returning_user_consents_again_under_a_fresh_key(make_config, started):
    veil = await started(Veil(make_config(policy=GUARDED)))
    await veil.grant("carol", ["special:medical_history:care"])
    await veil.record("carol", "care", plan="first")
    ((old_key,),) = rows(veil, "SELECT key_id FROM records")
    await veil.erase("carol")
    assert rows(veil, "SELECT * FROM consent_ledger") == []
    await veil.grant("carol", ["special:medical_history:care"])  # consent afresh
    await veil.record("carol", "care", plan="second", diagnosis="d")
    ((new_key, sealed),) = rows(veil, "SELECT key_id, sealed FROM records")
    assert new_key != old_key and new_key.startswith("subject-key-")
    assert json.loads(unseal(veil.keystore, new_key, sealed)) == {
        "plan": "second",
        "diagnosis": "d",
    }
    assert veil.keystore.key_by_id(old_key) is None
    assert len(await veil.consents("carol")) == 1


async def test_a_key_named_after_the_pseudonym_is_read_then_erased(make_config, started, data_dir):
    """Records sealed before subject_keys existed, under `subject-<pseudonym>`."""
    veil = await started(Veil(make_config(policy=GUARDED)))
    dave = veil.ledger.subjects.app("dave")
    legacy = legacy_key_id(dave)
    key = veil.keystore.named_key(legacy)
    nonce = secrets.token_bytes(12)
    blob = nonce + AESGCM(key).encrypt(nonce, b'{"plan": "legacy-Pangolin"}', legacy.encode())
    async with veil.store._writing() as db:
        db.execute(
            "INSERT INTO records (ts, purpose, policy_version, subject, fields, key_id, sealed) "
            "VALUES (1, 'care', 'g1', ?, 'plan', ?, ?)",
            (dave, legacy, blob),
        )
    assert unseal(veil.keystore, legacy, blob) == b'{"plan": "legacy-Pangolin"}'
    await veil.record("dave", "care", plan="new")  # a new record: under a random key
    assert found(data_dir, dave) and ("keys.db", dave) in found(data_dir, dave)
    proof = await veil.erase("dave")
    assert proof["keys"] == 2
    assert found(data_dir, dave, legacy, "legacy-Pangolin") == []
    assert unseal(veil.keystore, legacy, blob) is None


async def test_a_browser_subject_erased_leaves_no_byte_behind(
    make_config, geoip_db, started_site, data_dir
):
    site = await started_site(Veil(make_config(geoip={"path": str(geoip_db)})))
    cookie_a = await browse(site, A_IP, "/secret-alpha-Narwhal")
    cookie_b = await browse(site, B_IP, "/other-beta-Okapi")
    subjects = site.veil.ledger.subjects
    a, b = subjects.browser(cookie_a), subjects.browser(cookie_b)
    assert a is not None and b is not None
    before = rows(site, "SELECT subject, COUNT(*) FROM event_rows GROUP BY subject")
    assert found(data_dir, a, "Narwhal")

    proof = await erase(site.veil.store, site.veil.keystore, a, "req-42")

    assert found(data_dir, a, "Narwhal", cookie_a, cookie_a.split(".")[0]) == []
    after = rows(site, "SELECT subject, COUNT(*) FROM event_rows GROUP BY subject")
    assert after == [r for r in before if r[0] != a]  # the other subject's rows untouched
    assert rows(site, "SELECT path FROM events_browsing_history WHERE subject=?", b) == [
        ("/other-beta-Okapi",)
    ]
    assert proof["request_id"] == "req-42" and proof["counts"]["events_browsing_history"] == 1
    # the HTTP layer tells the browser to drop its subject cookie
    (header,) = end_browser_subject(True)
    assert header.startswith("__Host-veil_sid=;") and "Max-Age=0" in header and "Secure" in header
    # the same browser, back: its old cookie names nothing; a new consent starts afresh
    async with site.client(A_IP) as c:
        c.cookies.set("__Host-veil_sid", cookie_a, domain="shop.example")
        state = (await c.get("/veil/consent")).json()
        assert state["purposes"]["browsing_history"]["granted"] is False
        assert (await c.post("/veil/consent", json=GRANT)).status_code == 200


async def test_withdrawal_disposes_of_that_purpose_only_for_that_subject(
    make_config, geoip_db, started_site, data_dir
):
    site = await started_site(Veil(make_config(geoip={"path": str(geoip_db)})))
    cookie_a = await browse(site, A_IP, "/alpha-Wombat")
    await browse(site, B_IP, "/beta-Axolotl")
    a = site.veil.ledger.subjects.browser(cookie_a)
    connection = scalar(site, "SELECT COUNT(*) FROM events_connection")
    async with site.client(A_IP) as c:
        c.cookies.set("__Host-veil_sid", cookie_a, domain="shop.example")
        r = await c.post("/veil/consent", json={"withdraw": ["browsing_history"]})
        assert r.status_code == 200
    await site.veil.flush()
    assert scalar(site, "SELECT COUNT(*) FROM events_browsing_history WHERE subject=?", a) == 0
    assert rows(site, "SELECT path FROM events_browsing_history") == [("/beta-Axolotl",)]
    assert scalar(site, "SELECT COUNT(*) FROM events_connection") >= connection  # kept: not consent
    assert found(data_dir, "Wombat") == []
    ((details,),) = rows(site, "SELECT details FROM audit_log WHERE kind='disposal'")
    assert json.loads(details) == {
        "reason": "consent_withdrawn",
        "purpose": "browsing_history",
        "subject_ref": audit.subject_ref(site.veil.keystore, a),
        "counts": {"events_browsing_history": 1},
        "ledger_ids": [],
    }
    # the withdrawal itself stays on the ledger: the evidence of it
    assert rows(site, "SELECT action FROM consent_ledger WHERE subject=?", a) == [
        ("grant",),
        ("withdraw",),
    ]


async def test_a_gpc_withdrawal_recorded_by_the_writer_disposes_too(
    make_config, geoip_db, started_site
):
    site = await started_site(Veil(make_config(geoip={"path": str(geoip_db)})))
    cookie = await browse(site, A_IP, "/before-gpc")
    subject = site.veil.ledger.subjects.browser(cookie)
    assert scalar(site, "SELECT COUNT(*) FROM events_browsing_history") == 1
    async with site.client(A_IP, **{"Sec-GPC": "1"}) as c:
        c.cookies.set("__Host-veil_sid", cookie, domain="shop.example")
        await c.get("/after-gpc")
    await site.veil.flush()
    assert rows(site, "SELECT action, method FROM consent_ledger WHERE subject=?", subject)[-1] == (
        "withdraw",
        "gpc",
    )
    assert scalar(site, "SELECT COUNT(*) FROM events_browsing_history") == 0


async def test_an_app_withdrawal_disposes_of_records_and_the_switch_turns_it_off(
    make_config, started, data_dir
):
    veil = await started(Veil(make_config(policy=consent_purpose_policy())))
    for user in ("erin", "frank"):
        await veil.grant(user, ["newsletter"])
        await veil.record(user, "newsletter", plan=f"weekly-{user}")
        await veil.record(user, "care", plan=f"care-{user}")
    await veil.withdraw("erin", ["newsletter"])
    erin = veil.ledger.subjects.app("erin")
    assert rows(veil, "SELECT purpose FROM records WHERE subject=?", erin) == [("care",)]
    assert scalar(veil, "SELECT COUNT(*) FROM records WHERE purpose='newsletter'") == 1
    await veil.stop()

    kept = await started(
        Veil(make_config(policy=consent_purpose_policy(), consent={"withdrawal_deletes": False}))
    )
    await kept.withdraw("frank", ["newsletter"])
    assert scalar(kept, "SELECT COUNT(*) FROM records WHERE purpose='newsletter'") == 1


async def test_a_long_history_is_erased_in_chunks_and_no_one_else_s(make_config, started):
    veil = await started(Veil(make_config()))
    store = veil.store
    mine, theirs = "a" * 32, "b" * 32
    history = [
        event_row(
            purpose="browsing_history", subject=s, visitor=None, path=f"/p{i}", event_id=f"{s}{i}"
        )
        for s, n in ((mine, 2 * subject_erase.CHUNK + 7), (theirs, 5))
        for i in range(n)
    ]
    await known_to_ledger(store, mine, theirs)
    await store.write(history, Counter(), "2026-11-27")
    proof = await erase(store, veil.keystore, mine, "req-long")
    assert proof["counts"] == {
        "events_browsing_history": 2 * subject_erase.CHUNK + 7,
        "consent_ledger": 1,
    }
    assert rows(veil, "SELECT subject, COUNT(*) FROM events_browsing_history GROUP BY 1") == [
        (theirs, 5)
    ]


async def test_a_special_category_s_records_can_be_disposed_of_alone(make_config, started):
    """A withdrawn special-category consent disposes of nothing by itself (the rights export
    tests keep such a record, its correction refused); the disposal can be asked for."""
    veil = await started(Veil(make_config(policy=GUARDED)))
    for user in ("gus", "hal"):
        await veil.grant(user, ["special:medical_history:care"])
        await veil.record(user, "care", diagnosis=f"Dx-{user}-Capybara", plan="a")
    await veil.record("gus", "care", plan="plain")  # no special-category field: kept
    await veil.withdraw("gus", ["special:medical_history:care"])
    gus, hal = (veil.ledger.subjects.app(u) for u in ("gus", "hal"))
    assert scalar(veil, "SELECT COUNT(*) FROM records WHERE subject=?", gus) == 2
    n = await dispose_purpose(
        veil.store, veil.keystore, gus, "care", "special_withdrawn", fields=["diagnosis"]
    )
    assert n == 1
    assert rows(veil, "SELECT fields FROM records WHERE subject=?", gus) == [("plan",)]
    assert rows(veil, "SELECT fields FROM records WHERE subject=?", hal) == [("diagnosis,plan",)]
    ((details,),) = rows(veil, "SELECT details FROM audit_log WHERE kind='disposal'")
    assert json.loads(details)["fields"] == ["diagnosis"]


async def test_a_legal_hold_keeps_what_a_withdrawal_would_dispose_of(make_config, started):
    held = consent_purpose_policy()
    held["legal_holds"] = [
        {"kind": "records", "reference": "Tax Act Art. 1", "purposes": ["newsletter"]}
    ]
    veil = await started(Veil(make_config(policy=held)))
    await veil.grant("ivy", ["newsletter"])
    await veil.record("ivy", "newsletter", plan="weekly")
    await veil.withdraw("ivy", ["newsletter"])
    assert scalar(veil, "SELECT COUNT(*) FROM records") == 1
    assert rows(veil, "SELECT * FROM audit_log WHERE kind='disposal'") == []


async def test_erasure_keeps_what_a_legal_hold_keeps_and_its_key(make_config, started, data_dir):
    held = copy.deepcopy(GUARDED)
    held["legal_holds"] = [
        {"kind": "records", "reference": "Medical Care Act Art. 24", "purposes": ["care"]}
    ]
    veil = await started(Veil(make_config(policy=held)))
    await veil.grant("jo", ["special:medical_history:care", "decision:credit_limit"])
    await veil.record("jo", "care", diagnosis="Dx-Kept", plan="p")
    await veil.record("jo", "credit", income=10.0)  # not held: goes
    await veil.decide("jo", "credit_limit", 100)
    jo = veil.ledger.subjects.app("jo")
    ((key_id, sealed),) = rows(veil, "SELECT key_id, sealed FROM records WHERE purpose='care'")
    proof = await veil.erase("jo", "req-held")
    assert proof["kept"] == {"records": 1, "subject_keys": 1}
    assert proof["held_by"] == ["Medical Care Act Art. 24"]
    assert proof["counts"] == {"consent_ledger": 2, "decisions": 1, "records": 1}
    assert proof["keys"] == 0  # one key seals both: the held record keeps it
    assert json.loads(unseal(veil.keystore, key_id, sealed))["diagnosis"] == "Dx-Kept"
    assert rows(veil, "SELECT purpose FROM records WHERE subject=?", jo) == [("care",)]
    # no hold (the lower level without a policy): the rest goes, the key with it
    again = await erase(veil.store, veil.keystore, jo, "req-after-hold")
    assert again["counts"] == {"records": 1, "subject_keys": 1} and again["keys"] == 1
    assert unseal(veil.keystore, key_id, sealed) is None
    assert found(data_dir, jo, key_id) == []
