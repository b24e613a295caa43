"""Attacks on the guards (issue 7, items 7-10, and `veil policy check` from item 15).

7. a special-category field the operator forgot to mark, a page path that reveals health data;
8. any string (or `True`) passed as the contract an automated decision rests on;
9. a transfer abroad with no, or an oddly spelled, country; the whole US taken as adequate; a
   "domestic" recipient abroad;
10. a policy changed without a change entry, enforced before its effective date, consents and
   rows kept under terms broader than the ones promised;
15. `veil policy check` missing a changed policy whose version was not bumped.

Each runs against real SQLite files; the path rules through real HTTP (uvicorn).
"""

import asyncio
import copy
import datetime as dt
import hashlib
import os
import re
import time
import tomllib
from collections import Counter
from pathlib import Path

import httpx
import policies
import pytest
from policies import GUARDED
from servers import ROOT, ServerProcess
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from veil import (
    ConfigError,
    DecisionRefused,
    FieldError,
    ProvisionRefused,
    StoreError,
    Veil,
    VeilMiddleware,
)
from veil.config import from_dict, load
from veil.notice import render_notice
from veil.paths import normal_form, rewrite
from veil.policy import parse_policy
from veil.retention import enforce
from veil.starter import render_policy
from veil.store import SQLiteStore
from veil.store.columns import ROW_COLUMNS
from veil.store.keys import KeyStore
from veil.tables import Table
from veil_collector.cli import main

from conftest import CHROME, rows

DAY = 86400.0
TODAY = dt.datetime.now(dt.UTC).date()


def policy(**changes) -> dict:
    """GUARDED, deep-copied, with top-level keys replaced."""
    return {**copy.deepcopy(GUARDED), **changes}


def config(data_dir: Path, policy_dict: dict):
    return from_dict(
        {
            "store": {"url": "sqlite:///veil.db"},
            "keys": {"path": "keys.db"},
            "capture": {"flush_interval": 0.05},
            "policy": policy_dict,
        },
        base=data_dir,
    )


def problems(policy_dict: dict, tmp_path: Path) -> list[str]:
    with pytest.raises(ConfigError) as err:
        config(tmp_path, policy_dict)
    return err.value.problems


# -- 7. special categories: by category, not by a hand-set flag; paths -----------------------


HISTORY = """
[policy.purposes.browsing_history]
description = "Improve the service"
data_use = "functional.service.improve"
legal_basis = "consent"
retention = "{retention}"
fields = ["ip_address", "user_agent", "screen", "pixel_ratio", "navigator_language", "path"]
"""
PATH_RULES = """
[[policy.paths]]
pattern = "/clinic/**"
action = "template"
template = "/clinic/:page"
[[policy.paths]]
pattern = "/results/*/hiv-*"
action = "drop"
"""


def policy_toml(
    version: str = "c1",
    effective: dt.date = dt.date(2026, 11, 1),
    history_retention: str = "90d",
    extra: str = "",
    change_log: bool = True,
) -> str:
    """The shared test policy (tests/policies.py) with `browsing_history` and `extra`."""
    return policies.policy_toml(
        version,
        HISTORY.format(retention=history_retention) + extra,
        effective=effective,
        change_log=change_log,
    )


def cookie_header(response: httpx.Response) -> str:
    """The cookies a response set, as a Cookie header (httpx's jar would not send the Secure
    subject cookie back over plain http)."""
    return "; ".join(re.match(r"[^;]+", c)[0] for c in response.headers.get_list("set-cookie"))


def test_paths_that_reveal_health_data_never_reach_the_store_over_real_http(tmp_path, master_key):
    data = tmp_path / "data"
    cfg = tmp_path / "veil.toml"
    cfg.write_text(
        '[store]\nurl = "sqlite:///data/veil.db"\n[keys]\npath = "data/keys.db"\n'
        "[capture]\nflush_interval = 0.05\n" + policy_toml(extra=PATH_RULES)
    )
    env = {**os.environ, "VEIL_CONFIG": str(cfg), "VEIL_MASTER_KEY": master_key}
    server = ServerProcess.app(
        "guards_site:app", env, tmp_path / "site.log", app_dir=ROOT / "tests"
    ).start()
    try:
        with httpx.Client(base_url=server.url, headers={"User-Agent": CHROME}) as c:
            r = c.post("/veil/consent", json={"grant": ["browsing_history"]})
            assert r.status_code == 200, r.text
            cookie = {"Cookie": cookie_header(r)}
            # the same page spelled four ways, a page to drop, a page to keep
            for path in (
                "/clinic/hiv-test",
                "/CLINIC//HIV-test/",
                "/clinic/%68iv-test",
                "/clinic/./x/../hiv-test",
                "/results/4711/hiv-positive",
                "/pricing",
            ):
                assert c.get(path, headers=cookie).status_code == 200
            beacon = {"screen_w": 1280, "screen_h": 800, "pixel_ratio": 1, "language": "de"}
            for path in ("/Clinic/hiv-test", "/results/77/HIV-negative"):
                b = c.post(
                    "/veil/e",
                    json={**beacon, "path": path},
                    headers={**cookie, "Content-Type": "text/plain"},
                )
                assert b.status_code == 202, b.text
            c.get("/marker", headers=cookie)
            deadline = time.monotonic() + 10
            while not rows(data / "veil.db", "SELECT 1 FROM event_rows WHERE path = '/marker'"):
                assert time.monotonic() < deadline, "the marker was never stored"
                time.sleep(0.05)
    finally:
        assert server.stop() == 0
    stored = Counter(
        p
        for (p,) in rows(
            data / "veil.db", "SELECT path FROM event_rows WHERE purpose = 'browsing_history'"
        )
    )
    assert stored == {"/clinic/:page": 5, None: 2, "/pricing": 1, "/marker": 1}
    for path in [*data.rglob("*"), tmp_path / "site.log"]:  # db, WAL, keystore, the log
        if path.is_file():
            assert b"hiv" not in path.read_bytes().lower(), path.name


def test_path_rules_match_a_normal_form_and_are_validated_by_key(tmp_path):
    cfg = from_dict(tomllib.loads(policy_toml(extra=PATH_RULES)), base=tmp_path)
    rules = cfg.policy.paths
    assert normal_form("/a//b/./c/../%2564/") == "/a/b/d"
    assert rewrite(rules, "/clinic") == "/clinic/:page"  # ** matches no segment too
    assert rewrite(rules, "/clinical-trials") == "/clinical-trials"
    assert rewrite(rules, "/results/1/hiv-") is None
    assert rewrite(rules, "/results/hiv-x") == "/results/hiv-x"  # * is exactly one segment
    bad = policy_toml(
        extra="""
[[policy.paths]]
pattern = "clinic/**x"
action = "hide"
[[policy.paths]]
pattern = "/ok"
action = "template"
[[policy.paths]]
pattern = "/ok2"
action = "template"
template = "/a/*"
[[policy.paths]]
pattern = "/ok3"
action = "drop"
template = "/a"
colour = "red"
"""
    )
    found = problems_of_toml(tmp_path, bad)
    assert any(p.startswith("policy.paths[0].pattern: must start with '/'") for p in found)
    assert any(p.startswith("policy.paths[0].action: must be one of drop, template") for p in found)
    assert any(
        p.startswith('policy.paths[1].template: is required when action = "template"')
        for p in found
    )
    assert any(p.startswith("policy.paths[2].template: is stored as written") for p in found)
    assert any(p.startswith("policy.paths[3].template: is only used with action") for p in found)
    assert any(p.startswith("policy.paths[3].colour: unknown key") for p in found)


def problems_of_toml(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "veil.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load(path)
    return err.value.problems


FIELD = """
[policy.fields.{name}]
type = "string"
category = "{category}"
description = "x"
{special}
[policy.purposes.care]
description = "Care"
data_use = "essential.service"
legal_basis = "contract"
retention = "30d"
fields = ["{name}"]
"""


@pytest.mark.parametrize(
    ("category", "special", "expected"),
    [
        ("user.health_and_medical", "", '"medical_history"'),
        (
            "user.health_and_medical.genetic",
            'special = "race"',
            '"genetic" or "medical_history", not \'race\'',
        ),
        (
            "user.criminal_history",
            "",
            '"criminal_history" or "crime_victim" or "criminal_procedure"',
        ),
        ("user.demographic.political_opinion", "", '"creed"'),
        ("user.political_opinion", "", '"creed"'),
        ("user.religious_belief", "", '"creed"'),
        ("user.race_ethnicity", "", '"race"'),
        ("user.demographic.sexual_orientation", "", '"sex_life"'),
        ("user.biometric.fingerprint", "", '"biometric"'),
        ("user.workplace.trade_union", "", '"trade_union"'),
        ("user.custom.hiv_health_status", "", '"medical_history"'),  # an extension key
    ],
)
def test_a_special_category_field_is_refused_unless_marked_so(
    tmp_path, capsys, category, special, expected
):
    toml = tmp_path / "veil.toml"
    toml.write_text(
        policy_toml(extra=FIELD.format(name="finding", category=category, special=special))
    )
    assert main(["policy", "check", str(toml)]) == 1
    err = capsys.readouterr().err
    assert (
        f"policy.fields.finding.special: category {category!r} is special-category data: "
        f"declare special = {expected}"
    ) in err, err
    with pytest.raises(ConfigError):
        Veil.from_config(toml)
    # marked with a matching special category it is accepted, and veil refuses the data
    # without explicit prior consent (tests/test_guards.py)
    first = expected.split('"')[1]
    toml.write_text(
        policy_toml(
            extra=FIELD.format(name="finding", category=category, special=f'special = "{first}"')
        )
    )
    assert main(["policy", "check", str(toml)]) == 0
    assert f"policy.fields.finding: special category {first!r}" in capsys.readouterr().out


def test_a_field_of_an_ordinary_category_needs_no_special_category(tmp_path):
    cfg = from_dict(
        tomllib.loads(
            policy_toml(extra=FIELD.format(name="plan", category="user.contact", special=""))
        ),
        base=tmp_path,
    )
    assert cfg.policy.app_fields["plan"].special is None


# -- 8. a contract or law basis names one the policy declares -------------------------------


@pytest.fixture
async def guarded(data_dir, started):
    return await started(Veil(config(data_dir, policy())))


async def test_only_a_declared_contract_is_an_art_22_basis(guarded):
    for bogus in (" ", True, "loan-2026-001", "", 0):
        with pytest.raises(
            FieldError,
            match=r"declared for decision 'credit_limit'.*"
            r"'loan-agreement-v3'",
        ):
            await guarded.decide("user-1", "credit_limit", 5000, contract=bogus)
    with pytest.raises(FieldError, match=r"laws declared for decision 'credit_limit'.*none"):
        await guarded.decide("user-1", "credit_limit", 5000, law="GDPR")
    with pytest.raises(TypeError):  # keyword-only: no positional contract
        await guarded.decide("user-1", "credit_limit", 5000, None, None, "loan-agreement-v3")
    with pytest.raises(TypeError):
        await guarded.decide("user-1", "credit_limit", 5000, contrat="loan-agreement-v3")
    with pytest.raises(DecisionRefused):  # and no basis at all is still refused
        await guarded.decide("user-1", "credit_limit", 5000)
    decision = await guarded.decide("user-1", "credit_limit", 5000, contract="loan-agreement-v3")
    assert rows(guarded.config.store.path, "SELECT id, basis, evidence FROM decisions") == [
        (decision, "contract", "loan-agreement-v3")
    ]


def test_contracts_and_laws_are_declared_under_the_decision(tmp_path):
    p = policy()
    p["decisions"]["credit_limit"]["bases"] = ["contract", "law"]
    p["decisions"]["credit_limit"]["contracts"] = ["loan-agreement-v3", " padded ", 7]
    found = problems(p, tmp_path)
    assert (
        "policy.decisions.credit_limit.laws: is required when bases includes 'law': name "
        "the laws this decision may rest on (GDPR Art. 22(2)(b))"
    ) in found
    assert any(
        x.startswith("policy.decisions.credit_limit.contracts: must be names") and "' padded '" in x
        for x in found
    )
    p["decisions"]["reminder_time"]["laws"] = ["Care Act s.12"]
    assert (
        "policy.decisions.reminder_time.laws: declares laws, but bases does not include 'law'"
    ) in problems(p, tmp_path)


# -- 9. transfers: normalised countries, unknown is the strictest, certification, domestic ----


RECIPIENTS = [
    {
        "name": "Partner",
        "country": "BR",
        "role": "third_party",
        "purposes": ["care"],
        "safeguard": "appi_equivalent",
    },
    {
        "name": "USCert",
        "country": "US",
        "role": "processor",
        "purposes": ["care"],
        "safeguard": "adequacy",
        "dpf_certified": True,
    },
    {
        "name": "Tokyo",
        "country": "JP",
        "role": "processor",
        "purposes": ["care"],
        "safeguard": "domestic",
    },
]


async def test_missing_and_oddly_spelled_countries_get_the_strictest_transfer_rule(
    data_dir, started
):
    v = await started(Veil(config(data_dir, policy(recipients=RECIPIENTS))))
    try:
        for country in ("de", "DEU", " fra ", "EL", None, "", "XX", 276, "Germany"):
            with pytest.raises(
                ProvisionRefused, match="needs an adequacy decision or standard contractual clauses"
            ):
                await v.provide(
                    "Partner",
                    "care",
                    [{"subject": "s", "plan": "p", "country": country}],
                    exception="law",
                )
        with pytest.raises(ProvisionRefused, match="not known"):  # no country at all
            await v.provide("Partner", "care", [{"subject": "s", "plan": "p"}], exception="law")
        # a Brazilian subject's data to Brazil: no transfer; to a certified US processor
        await v.provide(
            "Partner", "care", [{"subject": "s", "plan": "p", "country": "br"}], exception="law"
        )
        await v.provide(
            "USCert", "care", [{"subject": "s", "plan": "p", "country": "deu"}], exception="law"
        )
        with pytest.raises(ProvisionRefused, match="Japanese subjects' data to US"):
            await v.provide(
                "USCert", "care", [{"subject": "s", "plan": "p", "country": "jpn"}], exception="law"
            )
        # unknown country to Japan: possibly EU (Japan is adequate), possibly Japanese (domestic)
        await v.provide("Tokyo", "care", [{"subject": "s", "plan": "p"}], exception="law")
        register = rows(
            v.config.store.path, "SELECT recipient, transfer FROM provisions ORDER BY id"
        )
    finally:
        await v.stop()
    assert register == [
        ("Partner", None),
        ("USCert", "EU→US under adequacy"),
        ("Tokyo", "EU→JP under adequacy"),
    ]


def test_us_adequacy_needs_certification_and_domestic_means_the_controllers_country(tmp_path):
    us = {
        "name": "Cloud",
        "country": "US",
        "role": "processor",
        "purposes": ["care"],
        "safeguard": "adequacy",
    }
    assert any(
        p.startswith(
            "policy.recipients[0].safeguard: 'adequacy', but the EU-US Data "
            "Privacy Framework covers certified organisations only"
        )
        for p in problems(policy(recipients=[us]), tmp_path)
    )
    br = {**us, "country": "BR", "dpf_certified": True}
    found = problems(policy(recipients=[br]), tmp_path)
    assert (
        "policy.recipients[0].dpf_certified: only a US recipient can be certified under "
        "the EU-US Data Privacy Framework"
    ) in found
    assert any(
        p.startswith(
            "policy.recipients[0].safeguard: 'adequacy', but BR has no EU adequacy decision"
        )
        for p in found
    )
    domestic = {**us, "safeguard": "domestic"}
    assert any(
        p.startswith(
            "policy.recipients[0].safeguard: 'domestic', but Cloud is in US "
            "and the controller is in JP"
        )
        for p in problems(policy(recipients=[domestic]), tmp_path)
    )
    no_country = policy(recipients=[domestic])
    no_country["controller"] = {"name": "C", "contact": "c@example.com"}
    assert any(
        "policy.controller.country is not declared, so every recipient is abroad" in p
        for p in problems(no_country, tmp_path)
    )
    bad_code = policy(controller={"name": "C", "contact": "c", "country": "jpn"})
    assert (
        "policy.controller.country: must be an ISO 3166-1 alpha-2 code like 'DE', got "
        "'jpn' (did you mean 'JP'?)"
    ) in problems(bad_code, tmp_path)
    # certified, or in the controller's own country (or both in the EU), it is accepted
    ok = policy(recipients=[{**us, "dpf_certified": True}, {**domestic, "country": "JP"}])
    assert config(tmp_path, ok).policy.recipients[0].dpf_certified
    eu = policy(
        controller={"name": "C", "contact": "c", "country": "DE"},
        recipients=[{**domestic, "country": "FR"}],
    )
    assert config(tmp_path, eu).policy.recipients[0].safeguard == "domestic"


def test_policy_check_refuses_a_domestic_recipient_abroad(tmp_path, capsys):
    toml = tmp_path / "veil.toml"
    toml.write_text(
        policy_toml(
            extra="""
[[policy.recipients]]
name = "Partner"
country = "BR"
role = "third_party"
purposes = ["browsing_history"]
safeguard = "domestic"
"""
        )
    )
    assert main(["policy", "check", str(toml)]) == 1
    assert "policy.recipients[0].safeguard: 'domestic', but Partner is in BR" in (
        capsys.readouterr().err
    )


# -- 10. policy changes ----------------------------------------------------------------------


def change(version: str, summary: str = "Changed.") -> list[dict]:
    return [{"version": version, "effective": GUARDED["effective"], "summary": summary}]


async def test_a_version_bump_needs_a_change_entry_and_a_date_not_in_the_future(data_dir):
    store = SQLiteStore(data_dir / "veil.db")
    await store.open(config(data_dir, policy()).policy)
    await store.close()
    bumped = config(data_dir, policy(version="g2")).policy
    with pytest.raises(
        StoreError,
        match=r"policy\.changes: version 'g2' is new to this store "
        r"\(it has run g1\)",
    ):
        await store.open(bumped)
    assert any(
        p.startswith("policy.changes: has no entry for the current version 'g3'")
        for p in problems(policy(version="g3", changes=change("g2")), data_dir)
    )
    future = TODAY + dt.timedelta(days=30)
    ahead = config(
        data_dir,
        policy(
            version="g2",
            effective=future,
            changes=[{"version": "g2", "effective": future, "summary": "Later."}],
        ),
    ).policy
    with pytest.raises(
        StoreError,
        match=rf"policy\.effective: version 'g2' takes effect on "
        rf"{future}",
    ):
        await store.open(ahead)
    v = Veil(
        config(
            data_dir,
            policy(
                version="g2",
                effective=future,
                changes=[{"version": "g2", "effective": future, "summary": "Later."}],
            ),
        )
    )
    with pytest.raises(StoreError, match=r"policy\.effective"):
        await v.start(required=True)  # the app refuses to start on it: g1 stays in force
    assert rows(data_dir / "veil.db", "SELECT version FROM policy_versions") == [("g1",)]
    await store.open(config(data_dir, policy(version="g2", changes=change("g2"))).policy)
    await store.close()


def broadened() -> dict:
    """g2: browsing_history kept longer; CloudCo now also receives credit data."""
    p = policy(version="g2", changes=change("g2", "Longer history; CloudCo for credit."))
    p["purposes"]["browsing_history"]["retention"] = "180d"
    p["recipients"][0]["purposes"] = ["care", "credit"]
    return p


async def test_a_consent_under_broader_terms_no_longer_holds_until_given_again(data_dir, started):
    scopes = [
        "browsing_history",
        "decision:credit_limit",
        "special:medical_history:care",
        "provision:CloudCo",
    ]

    def site(v: Veil) -> httpx.AsyncClient:
        app = VeilMiddleware(
            Starlette(routes=[Route("/{p:path}", lambda r: PlainTextResponse("page"))]), veil=v
        )
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("198.51.100.5", 4000)),
            base_url="https://shop.example",
            headers={"User-Agent": CHROME},
        )

    v1 = await started(Veil(config(data_dir, policy())))
    await v1.grant("user-1", scopes)
    async with site(v1) as browser:
        await browser.post("/veil/consent", json={"grant": ["browsing_history"]})
        await browser.get("/under-g1")
        await v1.flush()
        jar = browser.cookies
    await v1.stop()

    v2 = await started(Veil(config(data_dir, broadened())))
    try:
        held = {r.scope: r.action for r in await v2.consents("user-1")}
        assert held == {
            "browsing_history": "lapsed",
            "decision:credit_limit": "lapsed",
            "special:medical_history:care": "grant",  # care did not change
            "provision:CloudCo": "lapsed",
        }
        with pytest.raises(DecisionRefused):
            await v2.decide("user-1", "credit_limit", 1000)
        await v2.record("user-1", "care", diagnosis="x")  # its consent still holds
        with pytest.raises(ProvisionRefused, match="1 of 1 subject"):
            await v2.provide(
                "CloudCo", "care", [{"subject": "user-1", "plan": "p", "country": "US"}]
            )
        async with site(v2) as browser:
            browser.cookies = jar
            state = (await browser.get("/veil/consent")).json()
            assert state["purposes"]["browsing_history"]["granted"] is False
            await browser.get("/under-g2-lapsed")
            await browser.post("/veil/consent", json={"grant": ["browsing_history"]})
            await browser.get("/under-g2-given-again")
            await v2.flush()
        await v2.grant("user-1", ["decision:credit_limit"])
        assert await v2.decide("user-1", "credit_limit", 1000)
        history = rows(
            data_dir / "veil.db",
            "SELECT path, policy_version FROM event_rows "
            "WHERE purpose = 'browsing_history' ORDER BY id",
        )
    finally:
        await v2.stop()
    assert history == [("/under-g1", "g1"), ("/under-g2-given-again", "g2")]
    # the ledger itself is untouched: lapsing is how it is read, not a rewrite
    assert ("browsing_history", "grant", "g1") in rows(
        data_dir / "veil.db", "SELECT scope, action, policy_version FROM consent_ledger"
    )


def event(ts: float, site: str, version: str, purpose: str = "connection") -> tuple:
    values = dict.fromkeys(ROW_COLUMNS)
    values.update(
        event_id=site,
        ts=ts,
        purpose=purpose,
        policy_version=version,
        source="request",
        site=site,
        visitor="v",
    )
    return tuple(values[c] for c in ROW_COLUMNS)


async def test_a_longer_retention_never_applies_to_rows_collected_under_a_shorter_one(data_dir):
    now = time.time()
    store = SQLiteStore(data_dir / "veil.db")
    g1 = config(data_dir, policy()).policy  # connection: 30 days
    await store.open(g1)
    await store.write(
        [
            event(now - 45 * DAY, "g1-45-days.example", "g1"),
            event(now - 20 * DAY, "g1-20-days.example", "g1"),
        ],
        Counter(),
        "d",
    )
    await store.close()
    longer = policy(version="g2", changes=change("g2", "Connection data kept 90 days."))
    longer["purposes"]["connection"]["retention"] = "90d"
    g2 = config(data_dir, longer).policy
    await store.open(g2)
    await store.write([event(now - 45 * DAY, "g2-45-days.example", "g2")], Counter(), "d")
    keystore = KeyStore.open(config(data_dir, longer).keys)
    try:
        done = await enforce(store, keystore, g2, now=now)
        sites = {s for (s,) in store.db.execute("SELECT site FROM event_rows")}
        assert done["connection"] == 1
        assert sites == {"g1-20-days.example", "g2-45-days.example"}
        shorter = policy(version="g3", changes=change("g3", "Connection data kept 10 days."))
        shorter["purposes"]["connection"]["retention"] = "10d"
        await store.close()
        g3 = config(data_dir, shorter).policy
        await store.open(g3)
        await enforce(store, keystore, g3, now=now)  # a shorter promise applies to every row
        assert store.db.execute("SELECT COUNT(*) FROM event_rows").fetchone()[0] == 0
    finally:
        keystore.close()
        await store.close()
    for path in data_dir.iterdir():
        assert b"g1-45-days" not in path.read_bytes(), path.name


# -- 15. `veil policy check` against the store, read-only -----------------------------------


def test_policy_check_catches_a_changed_policy_whose_version_was_not_bumped(tmp_path, capsys):
    runtime = '[store]\nurl = "sqlite:///data/veil.db"\n[keys]\npath = "data/keys.db"\n'
    toml = tmp_path / "veil.toml"
    toml.write_text(runtime + policy_toml())
    assert main(["policy", "check", "--config", str(toml)]) == 0  # no store yet: fine

    async def run_once() -> None:
        v = Veil.from_config(toml)
        await v.start(required=True)
        await v.stop()

    asyncio.run(run_once())
    data = tmp_path / "data"
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in data.iterdir()}
    capsys.readouterr()

    toml.write_text(runtime + policy_toml(history_retention="180d"))  # changed, same version
    assert main(["policy", "check", "--config", str(toml)]) == 1
    err = capsys.readouterr().err
    assert (
        "policy.version: the policy changed but its version 'c1' did not; bump policy.version"
    ) in err, err
    toml.write_text(runtime + policy_toml(version="c2", history_retention="180d", change_log=False))
    assert main(["policy", "check", "--config", str(toml)]) == 1
    assert "policy.changes: version 'c2' is new to this store (it has run c1)" in (
        capsys.readouterr().err
    )
    toml.write_text(runtime + policy_toml(version="c2", history_retention="180d"))
    assert main(["policy", "check", "--config", str(toml)]) == 0
    out = capsys.readouterr().out
    assert (
        "warning: policy.purposes.browsing_history: retention lengthened from 90d to "
        "180d since version 'c1': consents covering it given under that version no "
        "longer hold until given again"
    ) in out
    future = TODAY + dt.timedelta(days=3)
    toml.write_text(runtime + policy_toml(version="c2", effective=future))
    assert main(["policy", "check", "--config", str(toml)]) == 1
    assert f"policy.effective: version 'c2' takes effect on {future}" in capsys.readouterr().err
    # the check only read the store: every file is as the app left it
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in data.iterdir()} == before


# -- what the notice and `veil init` say about all of the above ------------------------------


def test_the_notice_and_the_starter_say_what_is_enforced(tmp_path):
    text = policy_toml(extra=PATH_RULES)
    p = policy(recipients=RECIPIENTS, paths=tomllib.loads(text)["policy"]["paths"])
    cfg = config(tmp_path, p)
    md = render_notice(cfg, "md")
    assert "The controller is established in JP" in md
    assert (
        "Pages whose path could reveal sensitive information: `/clinic/**` is kept only as "
        "`/clinic/:page`; `/results/*/hiv-*` is not kept"
    ) in md
    assert "necessary for a contract with you (Art. 22(2)(a)): loan-agreement-v3" in md
    assert "adequacy decision; certified under the EU-US Data Privacy Framework" in md
    assert "a consent you gave before no longer holds until you give it again" in md
    found: list[str] = []  # the starter renders every key back to the same policy
    assert (
        parse_policy(Table(tomllib.loads(render_policy(cfg.policy))["policy"], "policy", found))
        == cfg.policy
    )
    assert found == []
