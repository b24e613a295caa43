"""Who may ask and the life of a request: tokens, due dates, refusal grounds, the audit trail,
`veil rights list` and friends, on real SQLite files."""

import asyncio
import datetime as dt
import json
import time
from pathlib import Path

import pytest
from policies import GUARDED

from veil import Veil
from veil.config import ConfigError, from_dict
from veil.errors import FieldError, NotVerified, VeilError
from veil.rights import requests
from veil.rights.identity import (
    Requester,
    dpo_requester,
    identify,
    sign_token,
    verify_token,
)
from veil.store import SQLiteStore, audit
from veil.store.keys import KeyStore
from veil.subjects import Subjects
from veil_collector.cli import main


@pytest.fixture
async def parts(make_config):
    cfg = make_config()
    keystore = KeyStore.open(cfg.keys)
    store = SQLiteStore(cfg.store.path)
    await store.open(cfg.policy)
    yield store, keystore, Subjects(keystore)
    await store.close()
    keystore.close()


def audit_rows(store: SQLiteStore, kind: str | None = None) -> list[dict]:
    return [
        {"kind": e.kind, **json.loads(e.details)}
        if isinstance(e.details, str)
        else {"kind": e.kind, **e.details}
        for e in audit.entries(store.db, kind)
    ]


# -- tokens ------------------------------------------------------------------------------------


def test_a_token_proves_the_app_user_and_carries_no_user_id(parts):
    _, keystore, subjects = parts
    token = sign_token(keystore, subjects, "alice@example.com", ttl=60)
    assert "alice" not in token
    assert verify_token(keystore, token) == subjects.app("alice@example.com")
    assert identify(keystore, subjects, None, token) == Requester(
        subjects.app("alice@example.com"), "token"
    )


def test_expired_altered_and_unsigned_tokens_are_refused(parts, tmp_path):
    _, keystore, subjects = parts
    now = time.time()
    token = sign_token(keystore, subjects, "alice", ttl=60, now=now)
    with pytest.raises(NotVerified) as exc:
        verify_token(keystore, token, now=now + 61)
    assert exc.value.why == "token-expired"
    # another subject's pseudonym under alice's MAC
    version, _, expires, mac = token.split(".")
    forged = ".".join((version, subjects.app("bob"), expires, mac))
    with pytest.raises(NotVerified) as exc:
        verify_token(keystore, forged)
    assert exc.value.why == "token-invalid"
    # a later expiry under the same MAC
    stretched = ".".join((version, token.split(".")[1], str(int(expires) + 86400), mac))
    with pytest.raises(NotVerified):
        verify_token(keystore, stretched)
    for unsigned in (f"v1.{subjects.app('bob')}.{int(now) + 60}", "", "alice", token + "x"):
        with pytest.raises(NotVerified):
            verify_token(keystore, unsigned)
    # signed under another keystore's key
    other = KeyStore(tmp_path / "other.db", b"k" * 32, dt.timedelta(days=1))
    try:
        elsewhere = sign_token(other, subjects, "alice", ttl=60)
    finally:
        other.close()
    with pytest.raises(NotVerified):
        verify_token(keystore, elsewhere)


def test_ttl_is_bounded(parts):
    _, keystore, subjects = parts
    for ttl in (0, -5, 3601, 1.5, True):
        with pytest.raises(VeilError):
            sign_token(keystore, subjects, "alice", ttl=ttl)  # type: ignore[arg-type]


def test_a_forged_cookie_is_refused_and_no_proof_is_no_one(parts):
    _, keystore, subjects = parts
    cookie_a, pseudonym_a = subjects.issue()
    cookie_b, _ = subjects.issue()
    assert identify(keystore, subjects, cookie_a, None) == Requester(pseudonym_a, "cookie")
    # B's id under A's MAC: someone else's subject with a MAC that is not theirs
    swapped = cookie_b.split(".")[0] + "." + cookie_a.split(".")[1]
    for forged in (swapped, "x" * 22 + "." + "y" * 22, "not-a-cookie"):
        with pytest.raises(NotVerified):
            identify(keystore, subjects, forged, None)
    assert identify(keystore, subjects, None, None) is None


def test_the_dpo_names_exactly_one_subject(parts):
    _, _, subjects = parts
    cookie, pseudonym = subjects.issue()
    assert dpo_requester(subjects, "alice", None) == Requester(subjects.app("alice"), "dpo")
    assert dpo_requester(subjects, None, cookie) == Requester(pseudonym, "dpo")
    with pytest.raises(VeilError):
        dpo_requester(subjects, "alice", cookie)
    with pytest.raises(VeilError):
        dpo_requester(subjects, None, None)
    with pytest.raises(NotVerified):
        dpo_requester(subjects, None, cookie[:-2] + "AA")


# -- due dates ---------------------------------------------------------------------------------


def ts(*args: int) -> float:
    return dt.datetime(*args, tzinfo=dt.UTC).timestamp()


def test_one_month_by_default_45_days_in_california():
    assert requests.due_for(ts(2026, 3, 10, 9), "gdpr") == ts(2026, 4, 10, 9)
    assert requests.due_for(ts(2026, 1, 31), "strictest") == ts(2026, 2, 28)
    assert requests.due_for(ts(2028, 1, 31), "appi") == ts(2028, 2, 29)
    assert requests.due_for(ts(2026, 12, 15), "gdpr") == ts(2027, 1, 15)
    assert requests.due_for(ts(2026, 3, 10), "ccpa") == ts(2026, 4, 24)


# -- the life of a request ---------------------------------------------------------------------


async def test_received_verified_done_each_audited_without_the_pseudonym(parts):
    store, keystore, subjects = parts
    pseudonym = subjects.app("alice")
    row = await requests.receive(store, keystore, Requester(pseudonym, "token"), "access", "gdpr")
    assert row.status == "verified" and row.id.startswith("R-")
    assert row.subject_ref == audit.subject_ref(keystore, pseudonym) != pseudonym
    done = await requests.finish(store, row.id, {"items": 3})
    assert done.status == "done" and done.closed is not None
    trail = [(e.kind, json.loads(e.details)) for e in audit.entries(store.db)]
    assert [(k, d["status"]) for k, d in trail] == [
        ("rights_request", "received"),
        ("rights_request", "verified"),
        ("rights_outcome", "done"),
    ]
    assert all(d["request"] == row.id and d["subject_ref"] == row.subject_ref for _, d in trail)
    assert audit.verify(store.db) == []
    raw = Path(store.path).read_bytes() + Path(str(store.path) + "-wal").read_bytes()
    assert pseudonym.encode() not in raw
    with pytest.raises(requests.UnknownRequest):  # closed: no second answer
        await requests.finish(store, row.id)


async def test_a_refusal_needs_one_of_the_grounds(parts):
    store, keystore, subjects = parts
    row = await requests.receive(
        store, keystore, Requester(subjects.app("alice"), "dpo"), "delete", "gdpr"
    )
    for ground in ("because", "", "HARM"):
        with pytest.raises(FieldError, match="harm, business, law"):
            await requests.refuse(store, row.id, ground)
    assert requests.get(store, row.id).status == "verified"  # still open
    refused = await requests.refuse(store, row.id, requests.LAW)
    assert (refused.status, refused.ground) == ("refused", "law")
    outcome = audit.entries(store.db, "rights_outcome")[-1]
    assert json.loads(outcome.details)["ground"] == "law"
    with pytest.raises(requests.UnknownRequest):
        await requests.refuse(store, "R-000000000000", requests.HARM)


async def test_the_table_refuses_a_refusal_without_ground(parts):
    import sqlite3

    store, keystore, subjects = parts
    row = await requests.receive(
        store, keystore, Requester(subjects.app("a"), "dpo"), "access", "gdpr"
    )
    with pytest.raises(sqlite3.IntegrityError):
        store.db.execute(
            "UPDATE rights_requests SET status='refused', closed=1 WHERE id=?", (row.id,)
        )


async def test_an_unverified_request_is_audited_with_no_subject(parts):
    store, _, _ = parts
    await requests.refuse_unverified(store, "delete", "cookie", "cookie-invalid")
    (entry,) = audit.entries(store.db, "rights_request")
    assert json.loads(entry.details) == {
        "kind": "delete",
        "channel": "cookie",
        "status": "refused",
        "why": "cookie-invalid",
    }
    assert store.db.execute("SELECT COUNT(*) FROM rights_requests").fetchone() == (0,)


# -- the complaint authority in the policy -------------------------------------------------------


def test_policy_complaints_is_validated(data_dir):
    def policy(**complaints):
        return {"policy": {**GUARDED, "complaints": complaints}}

    cfg = from_dict(
        policy(authority="Personal Information Protection Commission", url="https://ppc.go.jp/"),
        base=data_dir,
    )
    assert cfg.policy.complaints.authority.startswith("Personal")
    with pytest.raises(ConfigError) as exc:
        from_dict(policy(authority=" ", url="http://x", extra=1), base=data_dir)
    text = "\n".join(exc.value.problems)
    for key in ("complaints.authority", "complaints.url", "complaints.extra"):
        assert key in text


# -- the CLI ------------------------------------------------------------------------------------


def write_config(tmp_path: Path) -> Path:
    path = tmp_path / "veil.toml"
    path.write_text(
        '[store]\nurl = "sqlite:///veil.db"\n[keys]\npath = "keys.db"\n', encoding="utf-8"
    )
    return path


def test_rights_list_marks_what_is_overdue_and_refuse_needs_a_ground(tmp_path, capsys):
    config = write_config(tmp_path)

    async def seed() -> tuple[str, str]:
        veil = Veil.from_config(config)
        await veil.start(required=True)
        try:
            store, keystore = veil.store, veil.keystore
            assert isinstance(store, SQLiteStore) and keystore is not None
            subjects = Subjects(keystore)
            old = await requests.receive(
                store,
                keystore,
                Requester(subjects.app("alice"), "dpo"),
                "access",
                "gdpr",
                now=time.time() - 40 * 86400,
            )
            new = await requests.receive(
                store, keystore, Requester(subjects.app("bob"), "dpo"), "delete", "ccpa"
            )
            return old.id, new.id
        finally:
            await veil.stop()

    old, new = asyncio.run(seed())
    assert main(["rights", "list", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    (old_line,) = [line for line in out.splitlines() if old in line]
    (new_line,) = [line for line in out.splitlines() if new in line]
    assert "OVERDUE" in old_line and "OVERDUE" not in new_line
    assert out.index(old) < out.index(new)  # the most urgent first
    assert main(["rights", "refuse", old, "--ground", "busy", "--config", str(config)]) == 1
    assert "harm, business, law" in capsys.readouterr().err
    assert main(["rights", "refuse", old, "--ground", "business", "--config", str(config)]) == 0
    assert f"{old}: refused (business)" in capsys.readouterr().out
    assert main(["rights", "list", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert old not in out and new in out


def test_a_dpo_complaint_stays_open_until_closed(tmp_path, capsys):
    config = write_config(tmp_path)
    args = ["rights", "complaint", "--user-id", "alice", "--config", str(config)]
    assert main(args) == 0
    err = capsys.readouterr().err
    ref = err.split()[1]
    assert ref.startswith("R-") and "verified" in err
    assert main(["rights", "list", "--config", str(config)]) == 0
    assert ref in capsys.readouterr().out
    assert main(["rights", "close", ref, "--config", str(config)]) == 0
    assert f"{ref}: done" in capsys.readouterr().out
    assert main(["rights", "close", ref, "--config", str(config)]) == 1


def test_a_dpo_access_with_a_forged_cookie_is_refused(tmp_path, capsys):
    config = write_config(tmp_path)
    args = ["rights", "access", "--cookie", "A" * 22 + "." + "B" * 22, "--config", str(config)]
    assert main(args) == 1
    assert "not a subject cookie veil issued" in capsys.readouterr().err


def test_a_dpo_exports_then_deletes_an_app_user(tmp_path, capsys):
    config = write_config(tmp_path)

    async def seed() -> None:
        veil = Veil.from_config(config)
        await veil.start(required=True)
        try:
            await veil.grant("alice", ["browsing_history"])
            await veil.grant("bob", ["browsing_history"])
        finally:
            await veil.stop()

    asyncio.run(seed())
    base = ["--user-id", "alice", "--config", str(config)]
    assert main(["rights", "export", *base, "--format", "json"]) == 0
    out, err = capsys.readouterr()
    assert [c["scope"] for c in json.loads(out)["consents"]] == ["browsing_history"]
    assert "done" in err
    assert main(["rights", "delete", *base]) == 0
    capsys.readouterr()
    assert main(["rights", "export", *base]) == 0
    assert json.loads(capsys.readouterr().out)["consents"] == []
    bob = ["--user-id", "bob", "--config", str(config)]
    assert main(["rights", "export", *bob]) == 0  # nobody else's data went with alice's
    assert len(json.loads(capsys.readouterr().out)["consents"]) == 1
