"""Attacks on consent and the subject cookie (issue 7, items 1-6), against real uvicorn.

A site behind VeilMiddleware (tests/consent_site.py) runs in its own process; the attacker is
an HTTP client, or a real Chromium on a sibling subdomain. Every test reads the real SQLite
store afterwards.
"""

import datetime as dt
import os
import re
import sqlite3
import time
import tomllib
from pathlib import Path

import httpx
import pytest
from policies import policy_toml
from servers import ROOT, ServerProcess

from veil import DecisionRefused, NotConsented, ProvisionRefused, Veil
from veil.config import load
from veil.store.keys import KeyStore
from veil.subjects import BROWSER_KEY, Subjects

from browser_support import launch_chromium
from conftest import CHROME, rows, write_geo_db

CA_IP, DE_IP = "2001:db8:1::7", "198.51.100.20"  # US-CA and DE in the test database
POLICY_BODY = """
[policy.fields.plan]
type = "string"
category = "user.behavior"
description = "The plan a visitor looked at"
[policy.fields.income]
type = "number"
category = "user.financial"
description = "Declared yearly income"
[policy.purposes.browsing_history]
description = "Improve the service"
data_use = "functional.service.improve"
legal_basis = "consent"
retention = "90d"
fields = ["ip_address", "user_agent", "path"]
[policy.purposes.feedback]
description = "What visitors tell us about plans"
data_use = "functional.service.improve"
legal_basis = "consent"
retention = "30d"
fields = ["plan"]
[policy.purposes.credit]
description = "Set credit limits"
data_use = "essential.service"
legal_basis = "contract"
retention = "365d"
fields = ["income"]
[policy.decisions.credit_limit]
description = "Automated credit limit"
legal_effect = true
bases = ["explicit_consent"]
purpose = "credit"
[[policy.recipients]]
name = "AdCo"
country = "JP"
role = "third_party"
purposes = ["feedback"]
safeguard = "adequacy"
"""


def policy(model: str) -> str:
    return policy_toml("t1", POLICY_BODY, consent_model=model)


@pytest.fixture
def make_site(tmp_path: Path, master_key: str):
    """Start the site under uvicorn with a policy of `model`; yields a factory."""
    write_geo_db(tmp_path / "geo.mmdb")
    servers = []

    def start(model: str = "opt-in", extra: str = "") -> ServerProcess:
        config = tmp_path / "veil.toml"
        config.write_text(
            '[store]\nurl = "sqlite:///data/veil.db"\n[keys]\npath = "data/keys.db"\n'
            '[capture]\nflush_interval = 0.05\n[proxy]\ntrusted = ["127.0.0.1"]\n'
            f'[geoip]\npath = "geo.mmdb"\n{extra}\n' + policy(model)
        )
        env = {**os.environ, "VEIL_CONFIG": str(config), "VEIL_MASTER_KEY": master_key}
        server = ServerProcess.app(
            "consent_site:app",
            env,
            tmp_path / "site.log",
            app_dir=ROOT / "tests",
            config=config,
            data=tmp_path / "data",
        ).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def client(server: ServerProcess, ip: str = DE_IP, **headers: str) -> httpx.Client:
    """A visitor at `ip` (our trusted proxy at 127.0.0.1 says so in X-Forwarded-For)."""
    return httpx.Client(
        base_url=server.url, headers={"User-Agent": CHROME, "X-Forwarded-For": ip, **headers}
    )


def set_cookies(response: httpx.Response) -> dict[str, str]:
    """name → value of every Set-Cookie (httpx's jar would not send Secure cookies over http)."""
    return dict(
        re.match(r"([^=]+)=([^;]*)", c).groups() for c in response.headers.get_list("set-cookie")
    )


def post_consent(c: httpx.Client, body: dict, cookie: str = "", **headers) -> httpx.Response:
    return c.post("/veil/consent", json=body, headers={"Cookie": cookie, **headers})


def query(server: ServerProcess, sql: str, wait_for_rows: int = 0) -> list[tuple]:
    """Rows from the real store, after the writer's flush (it runs every 0.05 s)."""
    deadline = time.monotonic() + 5
    while True:
        found = rows(server, sql)
        if len(found) >= wait_for_rows or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def settle(server: ServerProcess, c: httpx.Client) -> None:
    """One marker request, seen stored: everything sent before it has been processed."""
    marker = f"/marker-{time.monotonic_ns()}"
    c.get(marker, headers={"Cookie": ""})
    n = query(server, "SELECT COUNT(*) FROM event_rows WHERE purpose = 'connection'")[0][0]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = query(server, "SELECT COUNT(*) FROM event_rows WHERE purpose = 'connection'")[0][0]
        if now == n:
            return
        n = now


def history_paths(server: ServerProcess) -> list[str]:
    return [
        p
        for (p,) in query(
            server, "SELECT path FROM event_rows WHERE purpose = 'browsing_history' ORDER BY id"
        )
        if not p.startswith("/marker-")
    ]


# -- 1. only subject ids veil issued count ---------------------------------------------------


def test_a_chosen_subject_id_is_not_accepted(make_site, master_key):
    server = make_site()
    chosen = "A" * 22
    with client(server) as c:
        r = post_consent(
            c, {"grant": ["browsing_history"]}, f"__Host-veil_sid={chosen}; veil_sid={chosen}"
        )
        issued = set_cookies(r)["__Host-veil_sid"]
        # a forged cookie of the right shape, with a MAC made up by the client
        c.get("/forged", headers={"Cookie": f"__Host-veil_sid={chosen}.{'B' * 22}"})
        c.get("/chosen", headers={"Cookie": f"__Host-veil_sid={chosen}"})
        c.get("/issued", headers={"Cookie": f"__Host-veil_sid={issued}"})
        settle(server, c)
    assert r.status_code == 200 and chosen not in issued
    assert history_paths(server) == ["/issued"]
    keystore = KeyStore(
        server.db.parent / "keys.db", bytes.fromhex(master_key), dt.timedelta(days=7)
    )
    try:
        subjects = Subjects(keystore)
        never = {subjects.app(chosen), subjects._hash(BROWSER_KEY, chosen)}
    finally:
        keystore.close()
    stored = {s for (s,) in query(server, "SELECT subject FROM consent_ledger")}
    assert stored and not stored & never


def test_a_subject_cookie_that_is_not_veils_is_told_to_go(make_site):
    server = make_site()
    with client(server) as c:
        r = c.get("/veil/consent", headers={"Cookie": "__Host-veil_sid=AAAAAAAAAAAAAAAAAAAAAA"})
    assert r.json()["subject"] is False
    assert set_cookies(r) == {"__Host-veil_sid": ""}


# -- 2. a browser never speaks for an app user -----------------------------------------------


async def test_a_browser_cannot_consent_for_an_app_user(make_site, master_key, started):
    server = make_site()
    with client(server) as c:
        decision = post_consent(c, {"grant": ["decision:credit_limit"]}, "__Host-veil_sid=alice")
        provision = post_consent(c, {"grant": ["provision:AdCo"]})
        own = post_consent(c, {"grant": ["feedback"]}, "__Host-veil_sid=alice")
    assert decision.status_code == provision.status_code == 400
    assert "set-cookie" not in decision.headers
    assert own.status_code == 200 and "alice" not in set_cookies(own)["__Host-veil_sid"]
    server.stop()
    # the app, on the same store: alice has no consent, whatever the browser posted
    veil = await started(Veil(load(server.config)))
    assert await veil.consents("alice") == []
    with pytest.raises(DecisionRefused):
        await veil.decide("alice", "credit_limit", 1000)


# -- 3. cookie tossing -----------------------------------------------------------------------


def test_a_tossed_unprefixed_cookie_is_ignored(make_site):
    server = make_site()
    with client(server) as attacker:  # consents for itself, gets a real signed cookie
        value = set_cookies(post_consent(attacker, {"grant": ["browsing_history"]}))[
            "__Host-veil_sid"
        ]
    with client(server) as victim:  # carries it unprefixed, as a sibling domain can plant it
        victim.get("/victim-page", headers={"Cookie": f"veil_sid={value}"})
        state = victim.get("/veil/consent", headers={"Cookie": f"veil_sid={value}"}).json()
        settle(server, victim)
    assert state["subject"] is False
    assert state["purposes"]["browsing_history"]["collected"] is False
    assert history_paths(server) == []


def test_a_sibling_subdomain_cannot_plant_a_subject_cookie_in_a_real_browser(make_site):
    server = make_site()
    with client(server) as attacker:
        value = set_cookies(post_consent(attacker, {"grant": ["browsing_history"]}))[
            "__Host-veil_sid"
        ]
    port = server.port
    with launch_chromium(
        "--host-resolver-rules=MAP site.test 127.0.0.1, MAP evil.site.test 127.0.0.1"
    ) as browser:
        context = browser.new_context()
        try:
            page = context.new_page()
            page.goto(f"http://evil.site.test:{port}/toss?value={value}&parent=site.test")
            page.goto(f"http://site.test:{port}/account")
            planted = [c for c in context.cookies() if c["domain"].endswith("site.test")]
        finally:
            context.close()
    # the browser took the unprefixed cookie for the parent domain, refused the __Host- ones
    assert {c["name"] for c in planted} == {"veil_sid"}
    with client(server) as c:
        settle(server, c)
    assert history_paths(server) == []


# -- 4. a refusal sticks, and GET /veil/consent tells the truth ------------------------------


def test_a_california_refusal_without_a_subject_sticks(make_site):
    server = make_site("regional")
    with client(server, CA_IP) as c:
        c.get("/before-refusal")
        r = post_consent(c, {"refuse": ["browsing_history"]})
        opt_out = set_cookies(r)
        cookie = "; ".join(f"{k}={v}" for k, v in opt_out.items())
        c.get("/after-refusal", headers={"Cookie": cookie})
        state = c.get("/veil/consent", headers={"Cookie": cookie}).json()
        w = post_consent(c, {"withdraw": "all"})  # another visitor, withdrawing everything
        cookie2 = "; ".join(f"{k}={v}" for k, v in set_cookies(w).items())
        c.get("/after-withdraw-all", headers={"Cookie": cookie2})
        settle(server, c)
    assert opt_out == {"__Host-veil_optout": "browsing_history"}  # no identifier in it
    assert state["jurisdiction"] == "ccpa" and state["opted_out"] == ["browsing_history"]
    assert state["purposes"]["browsing_history"]["collected"] is False
    assert history_paths(server) == ["/before-refusal"]


def test_a_refusal_sticks_when_its_network_has_spent_its_budget(make_site):
    """Someone behind the same NAT floods consent until the network's budget is spent; a
    visitor's refusal there must still go through and stick. Only its evidence row on the
    ledger is skipped, and that is counted, not silent."""
    server = make_site("regional")
    with client(server, CA_IP) as c:
        flood = [post_consent(c, {"grant": ["browsing_history"]}).status_code for _ in range(40)]
        r = post_consent(c, {"refuse": ["browsing_history"]})
        cookie = "; ".join(f"{k}={v}" for k, v in set_cookies(r).items())
        c.get("/after-refusal", headers={"Cookie": cookie})
        settle(server, c)
    assert 429 in flood and r.status_code == 200
    assert set_cookies(r) == {"__Host-veil_optout": "browsing_history"}
    assert "/after-refusal" not in history_paths(server)
    sql = "SELECT count FROM drops WHERE reason = 'refusal_unrecorded'"  # one row a day
    assert query(server, sql, wait_for_rows=1) == [(1,)]


def test_get_consent_reports_what_veil_does(make_site):
    server = make_site("regional")
    with client(server, CA_IP) as ca, client(server, DE_IP) as de:
        ca_state = ca.get("/veil/consent").json()["purposes"]["browsing_history"]
        gpc_state = ca.get("/veil/consent", headers={"Sec-GPC": "1"}).json()["purposes"][
            "browsing_history"
        ]
        de_state = de.get("/veil/consent").json()["purposes"]["browsing_history"]
        ca.get("/ca-collected")
        ca.get("/ca-gpc", headers={"Sec-GPC": "1"})
        de.get("/de-not-collected")
        settle(server, ca)
    assert (ca_state["granted"], ca_state["collected"]) == (False, True)
    assert gpc_state["collected"] is False and de_state["collected"] is False
    assert history_paths(server) == ["/ca-collected"]


def test_opt_in_is_the_default_everywhere(make_site):
    server = make_site()
    with client(server, CA_IP) as c:
        state = c.get("/veil/consent").json()
        c.get("/ca-page")
        settle(server, c)
    assert state["consent_model"] == "opt-in"
    assert state["purposes"]["browsing_history"]["collected"] is False
    assert history_paths(server) == []


# -- 5. GPC where it matters most ------------------------------------------------------------


def test_gpc_blocks_a_consent_based_record_over_http(make_site):
    server = make_site()
    with client(server) as c:
        sid = set_cookies(post_consent(c, {"grant": ["feedback"]}))["__Host-veil_sid"]
        cookie = f"__Host-veil_sid={sid}"
        body = {"purpose": "feedback", "fields": {"plan": "pro"}}
        with_gpc = c.post("/veil/record", json=body, headers={"Cookie": cookie, "Sec-GPC": "1"})
        with_dnt = c.post("/veil/record", json=body, headers={"Cookie": cookie, "DNT": "1"})
        without = c.post("/veil/record", json=body, headers={"Cookie": cookie})
    assert (with_gpc.status_code, with_dnt.status_code, without.status_code) == (403, 403, 202)
    assert with_gpc.json()["type"].endswith("no-consent")
    assert query(server, "SELECT COUNT(*) FROM records") == [(1,)]


async def test_gpc_blocks_provision_and_app_records(make_config, started):
    veil = await started(Veil(make_config(policy=load_policy("opt-in"))))
    await veil.grant("bob", ["feedback", "provision:AdCo"])
    record = [{"subject": "bob", "plan": "pro", "gpc": True}]
    with pytest.raises(ProvisionRefused):
        await veil.provide("AdCo", "feedback", record)
    with pytest.raises(NotConsented):
        await veil.record("bob", "feedback", gpc=True, plan="pro")
    # without the signal the same provision stands; a grant given under GPC overrides it
    assert await veil.provide("AdCo", "feedback", [{"subject": "bob", "plan": "pro"}])
    await veil.grant("carol", ["provision:AdCo"], signal=True)
    assert await veil.provide(
        "AdCo", "feedback", [{"subject": "carol", "plan": "pro", "gpc": True}]
    )
    # a legal obligation is not a sale: GPC does not block it
    assert await veil.provide("AdCo", "feedback", record, exception="law")


def load_policy(model: str) -> dict:
    return tomllib.loads(policy(model))["policy"]


# -- 6. the consent endpoint cannot be flooded -----------------------------------------------


def test_consent_flooding_is_bounded(make_site):
    server = make_site()
    statuses = []
    started = time.monotonic()
    with client(server) as c:
        dupes = post_consent(c, {"grant": ["browsing_history"] * 100})
        sid = set_cookies(dupes)["__Host-veil_sid"]
        for i in range(121):  # 122 requests, as the review sent, each a change
            body = (
                {"withdraw": ["browsing_history"]}
                if i % 2 == 0
                else {"grant": ["browsing_history"]}
            )
            statuses.append(post_consent(c, body, f"__Host-veil_sid={sid}").status_code)
        page = c.get("/still-serving")
    refilled = int(time.monotonic() - started) + 1  # the budget: 20 rows, 1 more a second
    withdrawals, grants = statuses[0::2], statuses[1::2]
    assert dupes.status_code == 200 and page.status_code == 200
    assert set(withdrawals) == {200}  # a withdrawal is never refused
    allowed = grants.count(200)
    assert allowed <= 19 + refilled and grants.count(429) == len(grants) - allowed
    (rows,) = query(server, "SELECT COUNT(*) FROM consent_ledger")[0]
    # the duplicated grant wrote one record, each allowed grant one, and each withdrawal of
    # a grant in force one; the limited grants nothing, and so the withdrawals after them
    assert rows <= 2 + 2 * allowed


def test_fresh_subjects_cannot_flood_the_ledger(make_site):
    """Without a cookie every grant mints a subject, so the per-subject cap cannot bound it:
    the network's budget of permanent rows does, whatever the number of scopes."""
    server = make_site()
    scopes = [
        "browsing_history",
        "feedback",
        *(f"special:{c}:feedback" for c in ("race", "creed", "medical_history", "sex_life")),
    ]
    started = time.monotonic()
    with client(server) as c:
        answers = [post_consent(c, {"grant": scopes}).status_code for _ in range(122)]
        too_many = post_consent(
            c,
            {
                "grant": scopes * 5
                + [
                    f"special:{cat}:browsing_history"
                    for cat in ("race", "creed", "trade_union", "social_status")
                ]
                * 5
            },
        )
    refilled = int(time.monotonic() - started) + 1
    (rows,) = query(server, "SELECT COUNT(*) FROM consent_ledger")[0]
    assert rows <= 20 + refilled and answers.count(429) >= 122 - (20 + refilled) // 6
    assert too_many.status_code in (400, 429)


def test_a_withdrawal_goes_through_past_the_daily_cap(make_site):
    server = make_site(extra="[consent]\nrate = 1000.0\nburst = 1000\nmax_changes_per_day = 10")
    with client(server) as c:
        sid = set_cookies(post_consent(c, {"grant": ["browsing_history"]}))["__Host-veil_sid"]
        cookie = f"__Host-veil_sid={sid}"
        repeats = [
            post_consent(c, {"grant": ["browsing_history"]}, cookie).status_code for _ in range(20)
        ]
        flips = [
            post_consent(
                c, {"withdraw": ["feedback"]} if i % 2 else {"grant": ["feedback"]}, cookie
            ).status_code
            for i in range(30)
        ]
        withdraw = post_consent(c, {"withdraw": ["browsing_history"]}, cookie)
        state = c.get("/veil/consent", headers={"Cookie": cookie}).json()
        c.get("/after-withdrawal", headers={"Cookie": cookie})
        settle(server, c)
    assert set(repeats) == {200}  # repeating a grant is a no-op: nothing written
    assert 429 in flips and 429 not in flips[1::2]  # grants capped, withdrawals never
    assert withdraw.status_code == 200
    assert state["purposes"]["browsing_history"]["collected"] is False
    assert history_paths(server) == []
    grants = query(server, "SELECT COUNT(*) FROM consent_ledger WHERE action = 'grant'")
    assert grants == [(10,)]


def test_app_records_and_review_requests_are_rate_limited(make_site):
    server = make_site()
    started = time.monotonic()
    with client(server) as c:
        sid = set_cookies(post_consent(c, {"grant": ["feedback"]}))["__Host-veil_sid"]
        cookie = f"__Host-veil_sid={sid}"
        body = {"purpose": "feedback", "fields": {"plan": "pro"}}
        answers = [
            c.post("/veil/record", json=body, headers={"Cookie": cookie}).status_code
            for _ in range(100)
        ]
        reviews = [
            c.post(
                "/veil/rights/human-review", json={"decision": "0" * 32, "reason": "why"}
            ).status_code
            for _ in range(30)
        ]
    refilled = int(time.monotonic() - started) + 1
    assert answers.count(202) <= 20 + refilled and 429 in answers and set(reviews) == {429}
    assert query(server, "SELECT COUNT(*) FROM records") == [(answers.count(202),)]


def test_a_locked_store_answers_503_never_500(make_site):
    server = make_site()
    with client(server) as c:
        assert c.get("/veil/consent").status_code == 200
        lock = sqlite3.connect(server.db, isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            r = post_consent(c, {"grant": ["browsing_history"]})
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        after = post_consent(c, {"grant": ["browsing_history"]})
    assert r.status_code == 503 and r.headers["content-type"] == "application/problem+json"
    assert "set-cookie" not in r.headers
    assert after.status_code == 200
