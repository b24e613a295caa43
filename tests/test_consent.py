"""Consent over HTTP and through the pipeline: cookies, withdrawal, GPC, jurisdiction."""

import pytest

from veil import Veil

from conftest import Site, rows

GRANT = {"grant": ["browsing_history"]}


@pytest.fixture
async def site(make_config, geoip_db, started_site) -> Site:
    """An app with the middleware; `site.client(ip)` is a browser-like client from that IP."""
    return await started_site(Veil(make_config(geoip={"path": str(geoip_db)})))


async def test_grant_sets_a_bounded_secure_cookie_and_records_the_ledger(site):
    async with site.client() as c:
        before = (await c.get("/veil/consent")).json()
        r = await c.post("/veil/consent", json=GRANT)
        after = (await c.get("/veil/consent")).json()
    assert before["subject"] is False and before["purposes"]["browsing_history"]["granted"] is False
    assert r.status_code == 200 and after["purposes"]["browsing_history"]["granted"] is True
    cookie = r.headers["set-cookie"]
    for attribute in (
        "__Host-veil_sid=",
        "HttpOnly",
        "Secure",
        "SameSite=Lax",
        "Path=/",
        f"Max-Age={180 * 86400}",
    ):
        assert attribute in cookie
    assert "Domain" not in cookie  # __Host-: this host only
    assert r.json()["jurisdiction"] == "gdpr"  # 198.51.100.0/24 is DE in the test database
    ledger = rows(
        site,
        "SELECT scope, action, method, explicit, policy_version, jurisdiction FROM consent_ledger",
    )
    assert ledger == [("browsing_history", "grant", "banner", 1, "1.0", "gdpr")]
    cookie_value = cookie.split("veil_sid=")[1].split(";")[0]
    stored = rows(site, "SELECT subject FROM consent_ledger")
    assert all(cookie_value.split(".")[0] not in s and cookie_value not in s for (s,) in stored)
    # the ledger keeps a pseudonym, not the cookie id


async def test_an_empty_grant_sets_no_cookie(site):
    async with site.client() as c:
        r = await c.post("/veil/consent", json={"grant": []})
    assert r.status_code == 200 and "set-cookie" not in r.headers


async def test_refusing_sets_only_an_opt_out_cookie_and_connection_still_works(site):
    async with site.client() as c:
        r = await c.post("/veil/consent", json={"refuse": ["browsing_history"]})
        # no subject: only the non-identifying opt-out cookie, so the refusal sticks
        assert r.headers.get_list("set-cookie") == [
            f"__Host-veil_optout=browsing_history; Max-Age={180 * 86400}; Path=/; HttpOnly; "
            "Secure; SameSite=Lax"
        ]
        assert (await c.get("/pricing")).text == "page"
    await site.veil.flush()
    assert rows(site, "SELECT purpose, path, subject FROM event_rows") == [
        ("connection", None, None)
    ]
    assert rows(site, "SELECT subject, action FROM consent_ledger") == [(None, "refuse")]


@pytest.mark.parametrize(
    "headers", [{"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}]
)
async def test_cross_site_consent_is_refused(site, headers):
    async with site.client(**headers) as c:
        r = await c.post("/veil/consent", json=GRANT)
    assert r.status_code == 403 and "set-cookie" not in r.headers
    assert rows(site, "SELECT COUNT(*) FROM consent_ledger") == [(0,)]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"not json", 400),
        (b'{"grant": "browsing_history"}', 400),
        (b'{"grant": ["connection"]}', 400),
        (b'{"grant": ["x"], "refuse": ["y"]}', 400),
        (b'{"grant": ["marketing"]}', 400),
    ],
)
async def test_malformed_consent_is_refused(site, body, status):
    async with site.client() as c:
        r = await c.post(
            "/veil/consent", content=body, headers={"Content-Type": "application/json"}
        )
    assert r.status_code == status and r.headers["content-type"] == "application/problem+json"
    assert rows(site, "SELECT COUNT(*) FROM consent_ledger") == [(0,)]


async def test_consent_adds_browsing_history_and_withdrawal_stops_it_at_the_next_request(site):
    async with site.client() as c:
        await c.get("/before-consent")
        await c.post("/veil/consent", json=GRANT)
        await c.get("/pricing?plan=pro")
        await c.get("/checkout")
        r = await c.post("/veil/consent", json={"withdraw": "all"})
        assert "Max-Age=0" in r.headers["set-cookie"]  # the cookie goes with the consent
        old = r.request.headers["cookie"].split("__Host-veil_sid=")[1].split(";")[0]
        c.cookies.set("__Host-veil_sid", old, domain="shop.example")  # a client that keeps
        # sending the old cookie
        await c.get("/after-withdrawal")
    await site.veil.flush()
    history = rows(
        site,
        "SELECT path, subject IS NOT NULL FROM event_rows "
        "WHERE purpose = 'browsing_history' ORDER BY id",
    )
    assert history == [("/pricing", 1), ("/checkout", 1)]  # no query string, no later paths
    assert rows(
        site,
        "SELECT COUNT(*) FROM event_rows WHERE purpose = 'connection' AND "
        "(path IS NOT NULL OR subject IS NOT NULL)",
    ) == [(0,)]
    assert rows(site, "SELECT COUNT(*) FROM event_rows WHERE purpose = 'connection'") == [(4,)]


async def test_gpc_overrides_an_earlier_grant_but_not_a_later_explicit_one(site):
    async with site.client() as c:
        await c.post("/veil/consent", json=GRANT)
        await c.get("/one", headers={"Sec-GPC": "1"})  # GPC now on: it wins over the grant
        await site.veil.flush()
        await c.get("/two")  # the opt-out was recorded; it holds without the header too
        await c.post("/veil/consent", json=GRANT, headers={"Sec-GPC": "1"})  # explicit, later
        await c.get("/three", headers={"Sec-GPC": "1"})
    await site.veil.flush()
    assert rows(site, "SELECT path FROM event_rows WHERE purpose = 'browsing_history'") == [
        ("/three",)
    ]
    assert rows(site, "SELECT action, method, gpc FROM consent_ledger ORDER BY id") == [
        ("grant", "banner", 0),
        ("withdraw", "gpc", 1),
        ("grant", "banner", 1),
    ]


async def test_dnt_is_the_same_opt_out_hint(site):
    async with site.client() as c:
        await c.post("/veil/consent", json=GRANT)
        await c.get("/one", headers={"DNT": "1"})
    await site.veil.flush()
    assert rows(site, "SELECT COUNT(*) FROM event_rows WHERE purpose = 'browsing_history'") == [
        (0,)
    ]


async def test_by_default_consent_based_purposes_are_opt_in_everywhere(site):
    async with site.client(ip="2001:db8:1::7") as c:  # US-CA in the test database
        await c.get("/ca-page")
        state = (await c.get("/veil/consent")).json()
    async with site.client(ip="203.0.113.5") as c:  # Japan: opt-in
        await c.get("/jp-page")
    async with site.client(ip="192.0.2.1") as c:  # unknown country: the strictest regime
        await c.get("/unknown-page")
    await site.veil.flush()
    assert state["jurisdiction"] == "ccpa" and state["consent_model"] == "opt-in"
    assert state["purposes"]["browsing_history"]["collected"] is False
    assert rows(site, "SELECT COUNT(*) FROM event_rows WHERE purpose = 'browsing_history'") == [
        (0,)
    ]


async def test_the_app_cannot_speak_for_a_browser_subject(site):
    """Namespaces: the app's ids and veil's cookies never map to the same subject."""
    async with site.client() as c:
        await c.post("/veil/consent", json=GRANT)
        cookie_value = c.cookies["__Host-veil_sid"]
        await site.veil.withdraw(cookie_value, ["browsing_history"])  # an app user of that name
        await c.get("/still-consented")
    await site.veil.flush()
    assert rows(site, "SELECT path FROM event_rows WHERE purpose = 'browsing_history'") == [
        ("/still-consented",)
    ]
    assert await site.veil.consents(cookie_value) == []  # that app user has no grant to withdraw


async def test_gpc_declaration_is_served(site):
    async with site.client() as c:
        r = await c.get("/.well-known/gpc.json")
    assert r.json() == {"gpc": True, "lastUpdate": "2026-11-25"}
