"""The audit log: hash-chained, append-only, the consent ledger in its chain; each test an
attack on a real store file (its triggers dropped first, as someone holding the file would)
that `verify` and `veil audit verify` must name by seq."""

import asyncio
import hashlib
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
from policies import GUARDED

from veil import Veil
from veil.store import SQLiteStore, audit
from veil.store.base import CONSENT_COLUMNS
from veil.store.disposal import ledger_disposal
from veil.store.schema import MIGRATIONS

from conftest import rows, scalar

VEIL = str(Path(sys.executable).parent / "veil")


@pytest.fixture
async def used(make_config, started, data_dir) -> tuple[Path, str]:
    """A stopped Veil's store after consent changes, a record, decisions, a review and a
    provision; (store path, user-1's pseudonym)."""
    v = await started(Veil(make_config(policy=GUARDED)))
    await v.grant("user-1", ["special:medical_history:care", "provision:CloudCo"])
    await v.record("user-1", "care", diagnosis="rare-condition", plan="basic")
    await v.grant("user-2", ["decision:credit_limit"])
    decision = await v.decide("user-2", "credit_limit", 1000)
    await v.contest(decision, "my income is wrong")
    await v.provide("CloudCo", "care", [{"subject": "user-1", "plan": "basic", "country": "JP"}])
    await v.withdraw("user-1", ["provision:CloudCo"])
    assert v.ledger is not None
    pseudonym = v.ledger.subjects.app("user-1")
    await v.stop()
    (data_dir / "veil.toml").write_text(
        '[store]\nurl = "sqlite:///veil.db"\n[keys]\npath = "keys.db"\n'
    )
    return Path(v.config.store.path), pseudonym


def findings(path: Path, anchored: bool = True) -> list[audit.Finding]:
    head = audit.read_anchor(audit.head_path(path)) if anchored else None
    with audit.open_readonly(path) as db:
        return audit.verify(db, head)


def named(path: Path, anchored: bool = True) -> dict[int | None, str]:
    """Each entry named, with its problems joined by "; "."""
    out: dict[int | None, str] = {}
    for f in findings(path, anchored):
        out[f.seq] = f"{out[f.seq]}; {f.problem}" if f.seq in out else f.problem
    return out


def tamper(path: Path, *statements: str, params: tuple = ()) -> None:
    """What someone with the file does: drop the append-only triggers, then edit."""
    with closing(sqlite3.connect(path)) as db:
        for trigger in (
            "audit_log_no_update",
            "audit_log_no_delete",
            "consent_ledger_no_update",
            "consent_ledger_no_delete",
        ):
            db.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        for sql in statements:
            db.execute(sql, params if "?" in sql else ())
        db.commit()


def cli(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [VEIL, "--config", str(path.parent / "veil.toml"), "audit", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def entry(path: Path, seq: int) -> tuple:
    return rows(path, "SELECT seq, ts, kind, details, prev, hash FROM audit_log WHERE seq=?", seq)[
        0
    ]


async def test_every_write_path_is_chained_and_verifies(used):
    path, _ = used
    kinds = [k for (k,) in rows(path, "SELECT kind FROM audit_log ORDER BY seq")]
    assert set(kinds) == {"consent", "record", "decision", "review", "provision"}
    assert kinds.count("consent") == scalar(path, "SELECT COUNT(*) FROM consent_ledger") == 4
    assert findings(path) == []
    head = audit.read_anchor(audit.head_path(path))
    assert head is not None and head[0] == len(kinds) == entry(path, len(kinds))[0]
    assert head[1] == entry(path, len(kinds))[5]
    done = cli(path, "verify")
    assert done.returncode == 0, done.stderr
    assert f"audit log intact: {len(kinds)} entries" in done.stdout
    # the triggers refuse both, on a file opened by anyone
    with closing(sqlite3.connect(path)) as db:
        for sql in ("UPDATE audit_log SET kind='x' WHERE seq=1", "DELETE FROM audit_log"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                db.execute(sql)


async def test_no_pseudonym_or_app_id_in_the_log(used, data_dir):
    path, pseudonym = used
    dump = "\n".join(map(str, rows(path, "SELECT * FROM audit_log"))).encode()
    assert pseudonym.encode() not in dump and b"user-1" not in dump and b"user-2" not in dump
    decision_id = rows(path, "SELECT id FROM decisions")[0][0]
    assert decision_id.encode() not in dump  # the subject's proof for contesting: hashed
    # the subject is named by a keyed hash instead, the same in every entry about them
    refs = {r for (r,) in rows(path, "SELECT details->>'subject_ref' FROM audit_log") if r}
    assert len(refs) == 2 and all(len(r) == 32 and r != pseudonym for r in refs)
    # and a byte search of a copy holding only the log finds neither
    copy = data_dir / "log-only.db"
    with closing(sqlite3.connect(copy)) as db:
        db.execute("ATTACH ? AS src", (str(path),))
        db.execute("CREATE TABLE log AS SELECT * FROM src.audit_log")
        db.commit()
    assert pseudonym.encode() not in copy.read_bytes()


async def test_one_byte_edited_in_one_entry_is_named(used):
    path, _ = used
    _, _, _, details, _, _ = entry(path, 3)
    forged = details.replace('"', "'", 1)  # one byte
    assert len(forged) == len(details) and forged != details
    tamper(path, "UPDATE audit_log SET details=? WHERE seq=3", params=(forged,))
    assert named(path) == {3: "edited: its content does not match its hash"}
    done = cli(path, "verify")
    assert done.returncode == 1
    assert "entry 3: edited" in done.stderr and "intact" not in done.stdout


async def test_a_removed_entry_is_named(used):
    path, _ = used
    assert entry(path, 5)[2] == "decision"
    tamper(path, "DELETE FROM audit_log WHERE seq=5")
    assert named(path) == {5: "removed (entry 5 is missing)"}
    assert "entry 5: removed" in cli(path, "verify").stderr
    # a consent entry removed: its ledger row is then one no entry vouches for
    tamper(path, "DELETE FROM audit_log WHERE seq=4")
    assert named(path) == {
        4: "removed (entries 4 to 5 are missing)",
        None: "consent_ledger row 3 has no audit entry: inserted",
    }


async def test_an_inserted_entry_is_named(used):
    path, _ = used
    # room for it: the later entries renumbered, then a well-formed entry 3 chained to 2
    tamper(
        path,
        "UPDATE audit_log SET seq=-seq WHERE seq>=3",
        "UPDATE audit_log SET seq=1-seq WHERE seq<0",
    )
    prev = entry(path, 2)[5]
    details = audit.canonical({"note": "nothing happened"})
    forged = audit.entry_hash(prev, 3, 1.0, "disposal", details)
    tamper(
        path,
        "INSERT INTO audit_log VALUES (3, 1.0, 'disposal', ?, ?, ?)",
        params=(details, prev, forged),
    )
    problems = named(path)
    assert "entry 3 was inserted" in problems[4]
    assert problems[5].startswith("moved: it was written as entry 4")
    done = cli(path, "verify")
    assert done.returncode == 1 and "entry 3 was inserted" in done.stderr


async def test_an_entry_appended_out_of_chain_is_named(used):
    path, _ = used
    last = scalar(path, "SELECT MAX(seq) FROM audit_log")
    details = audit.canonical({"ledger_ids": [1]})
    tamper(
        path,
        "INSERT INTO audit_log VALUES (?, 1.0, 'erasure', ?, ?, ?)",
        params=(last + 1, details, audit.GENESIS, "0" * 64),
    )
    problems = named(path)
    assert set(problems) == {last + 1}


async def test_two_swapped_entries_are_named(used):
    path, _ = used
    tamper(
        path,
        "UPDATE audit_log SET seq=-1 WHERE seq=5",
        "UPDATE audit_log SET seq=5 WHERE seq=6",
        "UPDATE audit_log SET seq=6 WHERE seq=-1",
    )
    problems = named(path)
    assert problems[5] == (
        "moved: it was written as entry 6 (entries inserted, removed or swapped); "
        "reordered: it follows entry 6, which comes after it"
    )
    assert problems[6].startswith("moved: it was written as entry 5")
    assert set(problems) <= {5, 6, 7}  # entry 7 no longer follows the entry now at 6
    assert "entry 5: moved" in cli(path, "verify").stderr


async def test_a_withdrawal_rewritten_as_a_grant_is_named(used):
    path, _ = used
    (ledger_id,) = rows(path, "SELECT id FROM consent_ledger WHERE action='withdraw'")[0]
    (seq,) = rows(
        path,
        "SELECT seq FROM audit_log WHERE kind='consent' AND details->>'ledger_id'=?",
        ledger_id,
    )[0]
    tamper(path, f"UPDATE consent_ledger SET action='grant' WHERE id={ledger_id}")
    assert named(path) == {
        seq: f"consent_ledger row {ledger_id} was rewritten: it no longer matches this "
        "entry's digest"
    }
    done = cli(path, "verify")
    assert done.returncode == 1 and f"entry {seq}: consent_ledger row {ledger_id}" in done.stderr


async def test_ledger_rows_removed_or_slipped_in_are_named(used):
    path, _ = used
    (first,) = rows(path, "SELECT MIN(id) FROM consent_ledger")[0]
    (seq,) = rows(path, "SELECT seq FROM audit_log WHERE details->>'ledger_id'=?", first)[0]
    tamper(
        path,
        f"DELETE FROM consent_ledger WHERE id={first}",
        f"INSERT INTO consent_ledger ({', '.join(CONSENT_COLUMNS)}) "
        "VALUES (1.0, 'someone', 'care', 'grant', 'api', 1, 0, 'g1', 'strictest')",
    )
    problems = named(path)
    assert "was removed, and no erasure or disposal entry lists it" in problems[seq]
    assert "has no audit entry: inserted" in problems[None]


async def test_a_lawful_disposal_that_lists_its_rows_is_not_flagged(used):
    path, pseudonym = used
    store = SQLiteStore(path)
    await store.open()
    try:
        async with store._writing() as db:
            ids = [
                r[0]
                for r in db.execute("SELECT id FROM consent_ledger WHERE subject=?", (pseudonym,))
            ]
            with ledger_disposal(db, "erasure"):
                db.execute("DELETE FROM consent_ledger WHERE subject=?", (pseudonym,))
            audit.append(db, "erasure", {"ledger_ids": ids, "request": "r-1"})
        store._anchor()
    finally:
        await store.close()
    assert len(ids) == 3
    assert findings(path) == []
    assert cli(path, "verify").returncode == 0


async def test_the_head_anchor_catches_a_rewritten_tail_and_a_cut(used):
    path, _ = used
    head = audit.read_anchor(audit.head_path(path))
    assert head is not None
    last = head[0]
    # rewrite entry last-1 and re-hash it and everything after: the chain itself is whole
    chain = [entry(path, s) for s in range(last - 1, last + 1)]
    prev = chain[0][4]
    fixes = []
    for seq, ts, kind, details, _, _ in chain:
        details = details.replace("CloudCo", "Nobody!") if seq == last - 1 else details
        digest = audit.entry_hash(prev, seq, ts, kind, details)
        fixes.append((details, prev, digest, seq))
        prev = digest
    with closing(sqlite3.connect(path)) as db:
        db.execute("DROP TRIGGER audit_log_no_update")
        db.executemany("UPDATE audit_log SET details=?, prev=?, hash=? WHERE seq=?", fixes)
        db.commit()
    assert named(path, anchored=False) == {}  # why the head is kept outside the database
    assert named(path) == {last: "rewritten: its hash is not the anchored head's"}
    tamper(path, f"DELETE FROM audit_log WHERE seq={last}")
    # a cut-short chain is whole; only the ledger row of that consent entry gives it away
    assert last not in named(path, anchored=False)
    assert named(path)[last].startswith("missing: the anchored head is gone")
    assert cli(path, "verify").returncode == 1


async def test_audit_show_filters_by_kind_and_count(used):
    path, _ = used
    shown = cli(path, "show", "--kind", "consent", "--last", "2")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()[2:]
    assert len(lines) == 2 and all(" consent " in line for line in lines)
    assert '"action":"withdraw"' in lines[-1]
    assert cli(path, "show", "--last", "0").returncode == 1


def test_a_store_upgraded_to_the_log_has_its_ledger_adopted(data_dir):
    path = data_dir / "old.db"
    with closing(sqlite3.connect(path)) as db:
        for number, script in enumerate(MIGRATIONS[: audit.MIGRATION - 1], start=1):
            db.executescript(f"BEGIN;\n{script}\nPRAGMA user_version={number};\nCOMMIT;")
        db.executemany(
            f"INSERT INTO consent_ledger ({', '.join(CONSENT_COLUMNS)}) "
            "VALUES (?, 's', 'care', ?, 'api', 1, 0, 'g1', 'strictest')",
            [(1.0, "grant"), (2.0, "withdraw")],
        )
        db.commit()

    async def reopen() -> None:
        store = SQLiteStore(path)
        await store.open()
        await store.close()

    asyncio.run(reopen())
    asyncio.run(reopen())  # adopted once only
    assert rows(path, "SELECT seq, kind, details->>'ledger_id' FROM audit_log") == [
        (1, "consent", 1),
        (2, "consent", 2),
    ]
    assert findings(path) == []


def test_subject_ref_is_keyed_and_stable(make_config):
    from veil.store.keys import KeyStore

    ks = KeyStore.open(make_config().keys)
    try:
        ref = audit.subject_ref(ks, "pseudonym-a")
        assert ref == audit.subject_ref(ks, "pseudonym-a") != audit.subject_ref(ks, "pseudonym-b")
        assert ref != hashlib.blake2b(b"pseudonym-a", digest_size=16).hexdigest()  # keyed
    finally:
        ks.close()


async def test_a_damaged_head_file_fails_verify_but_not_writes(used):
    path, _ = used
    audit.head_path(path).write_text("not json")
    done = cli(path, "verify")
    assert done.returncode == 1 and "not an audit head file" in done.stderr
    store = SQLiteStore(path)
    await store.open()
    try:  # the write commits and is chained; the damaged file is left for the DPO to see
        (decision,) = rows(path, "SELECT id FROM decisions")[0]
        await store.add_review(
            ts=2.0, decision_id=decision, status="upheld", key_id="k", sealed=b""
        )
    finally:
        await store.close()
    assert audit.head_path(path).read_text() == "not json"
    assert rows(path, "SELECT kind FROM audit_log ORDER BY seq DESC LIMIT 1") == [("review",)]
