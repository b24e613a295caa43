"""`/veil/rights/*` through the middleware over real HTTP semantics (httpx's ASGI transport):
who may ask (own cookie, app token, the forged and the foreign refused and audited), the
cookieless visitor's answer, due dates by jurisdiction, the complaint authority, the page."""

import json
import os
import time
from pathlib import Path

import pytest
from policies import GUARDED
from servers import ServerProcess

from veil import Veil
from veil.rights.identity import sign_token
from veil.store import audit

from browser_support import Visitor, launch_chromium
from conftest import rows

COMPLAINTS = {
    "authority": "Personal Information Protection Commission",
    "url": "https://ppc.go.jp/",
}
SID = "__Host-veil_sid"
DE, CALIFORNIA = "198.51.100.20", "2001:db8:1::5"


@pytest.fixture
async def site(make_config, geoip_db, started_site):
    cfg = make_config(policy={**GUARDED, "complaints": COMPLAINTS}, geoip={"path": str(geoip_db)})
    return await started_site(Veil(cfg))


async def consented(client) -> str:
    """A visitor who consented: their subject cookie's value."""
    r = await client.post("/veil/consent", json={"grant": ["browsing_history"]})
    assert r.status_code == 200, r.text
    return client.cookies[SID]


def entries(site, kind: str) -> list[dict]:
    return [json.loads(e.details) for e in audit.entries(site.veil.store.db, kind)]


def request_rows(site) -> list[tuple]:
    return site.veil.store.db.execute(
        "SELECT id, kind, channel, status FROM rights_requests"
    ).fetchall()


async def test_a_visitor_reads_and_exports_their_own_data(site):
    async with site.client(DE) as client:
        await consented(client)
        r = await client.get("/veil/rights/access")
        assert r.status_code == 200, r.text
        body = r.json()
        assert r.headers["cache-control"] == "no-store"
        assert body["status"] == "done" and body["request"].startswith("R-")
        assert [c["scope"] for c in body["data"]["consents"]] == ["browsing_history"]
        csv = await client.get("/veil/rights/export", params={"format": "csv"})
        assert csv.status_code == 200
        assert csv.headers["content-type"].startswith("text/csv")
        assert "browsing_history" in csv.text
        assert "attachment" in csv.headers["content-disposition"]
    outcomes = entries(site, "rights_outcome")
    assert (outcomes[0]["request"], outcomes[0]["status"]) == (body["request"], "done")
    assert audit.verify(site.veil.store.db) == []


async def test_a_forged_or_foreign_cookie_is_refused_and_audited(site):
    async with site.client(DE) as a, site.client(DE) as b:
        cookie_a, cookie_b = await consented(a), await consented(b)
    # B's id under A's MAC, a made-up id, and A's id with one MAC character changed
    forged = (
        cookie_b.split(".")[0] + "." + cookie_a.split(".")[1],
        "A" * 22 + "." + "B" * 22,
        cookie_a[:-1] + ("A" if cookie_a[-1] != "A" else "B"),
    )
    for value in forged:
        async with site.client(DE) as client:
            client.cookies.set(SID, value, domain="shop.example")
            r = await client.post("/veil/rights/delete", json={})
            assert r.status_code == 403, r.text
            assert r.json()["type"] == "urn:veil:problem:cookie-invalid"
            assert "nothing was done" in r.json()["detail"]
    refused = [e for e in entries(site, "rights_request") if e["status"] == "refused"]
    assert len(refused) == 3
    assert all(
        e == {"kind": "delete", "channel": "cookie", "status": "refused", "why": "cookie-invalid"}
        for e in refused
    )
    assert request_rows(site) == []  # no request was made for anyone
    # A and B still have everything
    async with site.client(DE) as client:
        client.cookies.set(SID, cookie_b, domain="shop.example")
        r = await client.get("/veil/rights/access")
        assert len(r.json()["data"]["consents"]) == 1


async def test_an_app_users_token_acts_for_them_alone(site):
    veil = site.veil
    await veil.grant("alice", ["browsing_history"])
    token = veil.subject_token("alice", ttl=60)
    async with site.client(DE) as client:
        await consented(client)  # the browser's cookie goes along unasked
        r = await client.get("/veil/rights/access", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
    assert [(r[1], r[2], r[3]) for r in request_rows(site)] == [("access", "token", "done")]
    # alice's consent (given through the API), not the browser's (given on the banner)
    assert [c["method"] for c in r.json()["data"]["consents"]] == ["api"]
    (verified,) = [e for e in entries(site, "rights_request") if e["status"] == "verified"]
    assert verified["channel"] == "token"
    assert verified["subject_ref"] == audit.subject_ref(
        veil.keystore, veil.ledger.subjects.app("alice")
    )


async def test_unsigned_expired_and_altered_tokens_are_refused_and_audited(site):
    veil = site.veil
    subjects, keystore = veil.ledger.subjects, veil.keystore
    now = time.time()
    good = sign_token(keystore, subjects, "alice", ttl=60, now=now)
    expired = sign_token(keystore, subjects, "alice", ttl=60, now=now - 120)
    version, _, expires, mac = good.split(".")
    altered = ".".join((version, subjects.app("bob"), expires, mac))
    unsigned = f"v1.{subjects.app('bob')}.{int(now) + 60}"
    cases = {
        expired: "token-expired",
        altered: "token-invalid",
        unsigned: "token-malformed",
        "": "token-malformed",
    }
    async with site.client(DE) as client:
        for token, why in cases.items():
            r = await client.post(
                "/veil/rights/delete", json={}, headers={"Authorization": f"Bearer {token}"}
            )
            assert r.status_code == 401, (token, r.text)
            assert r.headers["www-authenticate"].startswith("Bearer")
            assert r.json()["type"] == f"urn:veil:problem:{why}"
        r = await client.post("/veil/rights/delete", json={}, headers={"Authorization": "Basic x"})
        assert r.status_code == 401
    refused = [e["why"] for e in entries(site, "rights_request") if e["status"] == "refused"]
    assert refused == [*cases.values(), "token-malformed"]
    assert request_rows(site) == []


async def test_a_cookieless_visitor_is_told_what_can_be_linked(site):
    async with site.client(DE) as client:
        r = await client.get("/veil/rights/access")
        assert r.status_code == 200
        assert r.json()["linked"] is False
        assert "daily pseudonym" in r.json()["detail"] and "/veil/consent" in r.json()["detail"]
        r = await client.post("/veil/rights/delete", json={})
        assert r.status_code == 403
        assert r.json()["type"] == "urn:veil:problem:no-subject"
    assert request_rows(site) == []


async def test_due_dates_follow_the_requesters_jurisdiction(site):
    dues = {}
    for ip in (DE, CALIFORNIA):
        async with site.client(ip) as client:
            await consented(client)
            r = await client.post("/veil/rights/complaint", json={})
            assert r.status_code == 202, r.text
            dues[ip] = r.json()
    rows = dict(
        site.veil.store.db.execute("SELECT jurisdiction, due - received FROM rights_requests")
    )
    assert rows["ccpa"] == 45 * 86400
    assert 28 * 86400 <= rows["gdpr"] <= 31 * 86400


async def test_a_complaint_is_recorded_and_names_the_authority(site):
    async with site.client(DE) as client:
        await consented(client)
        r = await client.post("/veil/rights/complaint", json={})
    assert r.status_code == 202
    body = r.json()
    assert body["authority"] == {"name": COMPLAINTS["authority"], "url": COMPLAINTS["url"]}
    assert COMPLAINTS["authority"] in body["detail"]
    assert body["status"] == "verified"  # open until the DPO answers it
    assert request_rows(site) == [(body["request"], "complaint", "cookie", "verified")]


async def test_an_app_user_complains_through_the_python_api(site):
    """The app vouches for its signed-in user: the complaint is open for the DPO under a
    reference, due in a month (45 days for a Californian), and names the authority; the
    table keeps the subject's audit reference, never the user id or the pseudonym."""
    eu = await site.veil.complaint("alice")
    ca = await site.veil.complaint("alice", jurisdiction="ccpa")
    assert eu["authority"] == {"name": COMPLAINTS["authority"], "url": COMPLAINTS["url"]}
    assert 28 <= (eu["due"] - time.time()) / 86400 <= 31.01
    assert 44.9 <= (ca["due"] - time.time()) / 86400 <= 45.01
    assert sorted(request_rows(site)) == sorted(
        [
            (eu["request"], "complaint", "token", "verified"),
            (ca["request"], "complaint", "token", "verified"),
        ]
    )
    pseudonym = site.veil.ledger.subjects.app("alice")
    stored = site.veil.store.db.execute("SELECT * FROM rights_requests").fetchall()
    assert not any(v in ("alice", pseudonym) for row in stored for v in row)


async def test_restrict_and_lift_and_delete_forgets_the_cookie(site):
    async with site.client(DE) as client:
        await consented(client)
        r = await client.post("/veil/rights/restrict", json={})
        assert (r.status_code, r.json()["changed"]) == (200, True), r.text
        r = await client.post("/veil/rights/restrict", json={"lift": True})
        assert (r.json()["kind"], r.json()["changed"]) == ("lift_restriction", True)
        r = await client.post("/veil/rights/suspend", json={"lift": True})
        assert r.status_code == 400
        r = await client.post("/veil/rights/object", json={"purpose": "browsing_history"})
        assert r.status_code == 400  # consent-based: withdraw instead
        r = await client.post("/veil/rights/delete", json={})
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "done"
        assert any(
            h.startswith(f"{SID}=;") and "Max-Age=0" in h for h in r.headers.get_list("set-cookie")
        )
    outcomes = [(e["kind"], e["outcome"]) for e in entries(site, "rights_outcome")]
    assert outcomes == [
        ("restrict", {"changed": True}),
        ("lift_restriction", {"changed": True}),
        ("object", {"answered": "invalid-field"}),  # answered, not left open
        ("delete", {"deleted": True}),
    ]
    assert [r[3] for r in request_rows(site)] == ["done"] * 4


async def test_cross_site_and_flooding_are_refused(make_config, started_site):
    site = await started_site(Veil(make_config(consent={"burst": 3, "rate": 0.01})))
    async with site.client(DE) as client:
        r = await client.post(
            "/veil/rights/complaint", json={}, headers={"Origin": "https://evil.example"}
        )
        assert r.status_code == 403 and r.json()["type"] == "urn:veil:problem:cross-site"
        statuses = [(await client.get("/veil/rights/access")).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


async def test_the_page_is_served_with_its_script(site):
    async with site.client(DE) as client:
        page = await client.get("/veil/rights")
        script = await client.get("/veil/rights.js")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert '<script src="/veil/rights.js"' in page.text
    assert script.status_code == 200 and "rights/delete" in script.text


async def test_an_app_user_corrects_a_record_by_token(site):
    veil = site.veil
    await veil.record("alice", "care", plan="basic")
    auth = {"Authorization": f"Bearer {veil.subject_token('alice')}"}
    async with site.client(DE, **auth) as client:
        (record,) = (await client.get("/veil/rights/access")).json()["data"]["records"]
        r = await client.post(
            "/veil/rights/correct",
            json={"record_id": record["id"], "field": "plan", "value": "premium"},
        )
        assert r.status_code == 200, r.text
        r = await client.post(
            "/veil/rights/correct",
            json={"record_id": record["id"] + 1, "field": "plan", "value": "x"},
        )
        assert r.status_code == 400  # not theirs (or no such record): nothing changed
        (record,) = (await client.get("/veil/rights/access")).json()["data"]["records"]
    assert record["values"]["plan"] == "premium"


# -- a real browser on the page -------------------------------------------------------------


def wait_for(check, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while not (result := check()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return result


def test_a_visitor_consents_browses_exports_and_deletes_from_the_page(tmp_path):
    (tmp_path / "veil.toml").write_text(
        '[store]\nurl = "sqlite:///data/veil.db"\n[keys]\npath = "data/keys.db"\n'
        "[capture]\nflush_interval = 0.1\n"
    )
    env = {**os.environ, "VEIL_MASTER_KEY": "ab" * 32}
    server = ServerProcess.veil_serve(
        tmp_path / "veil.toml", env, tmp_path / "collector.log", data=tmp_path / "data"
    ).start()

    def theirs() -> list[tuple]:
        return rows(server.db, "SELECT 'event' FROM event_rows WHERE subject IS NOT NULL") + rows(
            server.db, "SELECT 'consent' FROM consent_ledger WHERE subject IS NOT NULL"
        )

    def sid(visitor: Visitor) -> list:
        return [c for c in visitor.page.context.cookies() if c["name"] == SID]

    try:
        with launch_chromium() as browser:
            visitor = Visitor(browser, server.url)
            try:
                visitor.open("/")
                visitor.js("veil.consent(['browsing_history'])")
                assert wait_for(lambda: sid(visitor)), "no subject cookie after consent"
                visitor.push("/pricing")
                assert wait_for(lambda: ("event",) in theirs()), "the visit was not stored"
                visitor.open("/veil/rights")
                page = visitor.page
                page.click("#access")
                page.wait_for_selector("#data:not([hidden])")
                assert "/pricing" in page.text_content("#data")
                with page.expect_download() as download:
                    page.click("#export-json")
                exported = json.loads(Path(download.value.path()).read_text())
                assert "/pricing" in json.dumps(exported["events"])
                assert [c["scope"] for c in exported["consents"]] == ["browsing_history"]
                page.on("dialog", lambda dialog: dialog.accept())
                page.click("#delete")
                assert wait_for(lambda: "Deleted" in page.text_content("#status"))
                assert wait_for(lambda: not sid(visitor)), "the subject cookie outlived deletion"
                assert visitor.errors == []
            finally:
                visitor.close()
        assert theirs() == []
    finally:
        server.stop()
