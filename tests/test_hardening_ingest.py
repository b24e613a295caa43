"""Ingest hardening (issue 7, items 11, 12, 16), over real HTTP through uvicorn.

Two real servers: the example Starlette app with VeilMiddleware in its middleware stack
(examples/starlette_app.py), and the collector (`veil serve`). Every test reads the real files
they leave on disk.
"""

import os
import time
from pathlib import Path

import httpx
import pytest
from policies import policy_toml
from servers import ServerProcess

from veil import Veil, agents
from veil.config import load
from veil.pseudonymise import unseal
from veil.store.keys import KeyStore

from conftest import CHROME, SAFARI_IPHONE, rows, write_geo_db

GOOD = {"screen_w": 1280, "screen_h": 800, "pixel_ratio": 2, "language": "de-CH"}
POLICY = policy_toml(
    "i1",
    """
[policy.fields.purpose]
type = "string"
category = "user.behavior"
description = "What the visitor came for"
[policy.fields.subject_id]
type = "string"
category = "user.behavior"
description = "A field whose name is the Python API's first parameter"
[policy.fields.self]
type = "string"
category = "user.behavior"
description = "A field named like a method's instance"
[policy.purposes.feedback]
description = "What visitors tell us"
data_use = "functional.service.improve"
legal_basis = "consent"
retention = "30d"
fields = ["purpose", "subject_id", "self"]
""",
)

# A crafted agent can put anything where ua-parser copies text: an e-mail and an IP in the
# device slot of a generic Android rule, of a named brand's rule, and in a browser-name slot.
EMAIL, UA_IP, HOST_IP = "alice.smith@example.org", "192.0.2.55", "192.0.2.77"
CRAFTED = [
    f"Mozilla/5.0 (Linux; Android 13; {EMAIL} {UA_IP} Build/TQ3A) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
    f"Mozilla/5.0 (Linux; Android 13; SAMSUNG {EMAIL} Build/TQ3A) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
    f"{EMAIL} {UA_IP}/1.0 CFNetwork/1410.0.3 Darwin/22.6.0",
    f"Mozilla/5.0 (X11; Linux x86_64; {EMAIL}) Gecko/20100101 Firefox/121.0",
]


@pytest.fixture
def serve(tmp_path: Path, master_key: str):
    """Start `kind` ("app": the example app under uvicorn; "collector": `veil serve`)."""
    servers = []

    def start(
        kind: str, rate: float = 1000.0, burst: int = 1000, seal: bool = False
    ) -> ServerProcess:
        write_geo_db(tmp_path / "geo.mmdb")
        config = tmp_path / "veil.toml"
        config.write_text(
            '[store]\nurl = "sqlite:///data/veil.db"\n[keys]\npath = "data/keys.db"\n'
            f"seal_ip = {str(seal).lower()}\n"
            '[capture]\nflush_interval = 0.05\n[proxy]\ntrusted = ["127.0.0.1"]\n'
            f'[geoip]\npath = "geo.mmdb"\n[ingest]\nrate = {rate}\nburst = {burst}\n' + POLICY
        )
        env = {**os.environ, "VEIL_CONFIG": str(config), "VEIL_MASTER_KEY": master_key}
        log, data = tmp_path / f"{kind}.log", tmp_path / "data"
        if kind == "app":  # the safe run command: uvicorn rewrites nothing, logs no address
            server = ServerProcess.app(
                "examples.starlette_app:app", env, log, config=config, data=data
            )
        else:
            server = ServerProcess.veil_serve(config, env, log, data=data)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def stored(server: ServerProcess) -> int:
    with httpx.Client(base_url=server.url) as c:
        # `veil serve` reports on /healthz, the example app on /stats
        path = "/healthz" if "veil_collector.cli" in server.args else "/stats"
        return c.get(path).json()["stored"]


def wait_stored(server: ServerProcess, n: int) -> None:
    """Until the writer has stored `n` events (the beacons were acknowledged with 202)."""
    deadline = time.monotonic() + 30
    while stored(server) < n:
        assert time.monotonic() < deadline, f"only {stored(server)} of {n} events stored"
        time.sleep(0.05)


def grep_data_dir(server: ServerProcess, needles: list[str]) -> list[str]:
    """Each needle found in any file of the data directory (db, -wal, -shm, keystore)."""
    found = []
    for path in sorted(p for p in server.data.rglob("*") if p.is_file()):
        blob = path.read_bytes()
        found += [
            f"{n!r} in {path.name}"
            for n in needles
            if n.encode() in blob or n.encode("utf-16-le") in blob
        ]
    return found


# -- 11. free text from the user agent -------------------------------------------------------


@pytest.mark.parametrize("kind", ["app", "collector"])
def test_a_crafted_user_agent_leaves_no_email_or_ip_on_disk(serve, kind):
    server = serve(kind)
    with httpx.Client(base_url=server.url) as c:
        for agent in CRAFTED:
            assert c.post("/veil/e", json=GOOD, headers={"User-Agent": agent}).status_code == 202
            if kind == "app":  # and as a page request, which the middleware captures
                assert c.get("/", headers={"User-Agent": agent}).status_code == 200
        # the Host header is the site column's source: an address there is not a site
        r = c.post("/veil/e", json=GOOD, headers={"User-Agent": CHROME, "Host": f"{HOST_IP}:8080"})
        assert r.status_code == 202
        for agent in (CHROME, SAFARI_IPHONE):
            assert c.post("/veil/e", json=GOOD, headers={"User-Agent": agent}).status_code == 202
    expected = len(CRAFTED) * (2 if kind == "app" else 1) + 3
    wait_stored(server, expected)
    needles = [EMAIL, "alice.smith", "example.org", UA_IP, HOST_IP]
    assert grep_data_dir(server, needles) == []  # while running: db, WAL and SHM
    server.stop()
    assert grep_data_dir(server, needles) == []  # after the shutdown's checkpoint

    described = rows(
        server,
        "SELECT os, os_version, browser, browser_version, device, "
        "device_brand, device_model, site FROM event_rows",
    )
    assert len(described) >= expected  # (the app also counts the /stats polls)
    for row in described:
        assert not any(v is not None and ("@" in str(v) or "192.0.2" in str(v)) for v in row)
    # ordinary agents still come out as they should
    assert ("Windows", "10", "Chrome", "120") in {r[:4] for r in described}
    assert ("iOS", "17", "Mobile Safari", "17", "iPhone", "Apple", "iPhone") in {
        r[:7] for r in described
    }
    # the crafted ones keep what is not free text: OS, browser, brand
    assert ("Android", "13", "Chrome Mobile", "120", "Other", "Samsung", None) in {
        r[:7] for r in described
    }
    assert {r[7] for r in described} == {None}  # an address in Host (ours too) is no site


@pytest.mark.parametrize(
    "free_text",
    [
        "alice@example.org",
        "alice.smith",
        "192.0.2.55",
        "2001:db8::55",
        "+49 170 1234567",
        "4915112345678",
        "356938035643809",
        "00-1A-2B-3C-4D-5E",
        "f0923053f6bcb74e",
        "123e4567-e89b-12d3-a456-426614174000",
        "http://evil.example/x",
    ],
)
def test_identifiers_in_a_brands_model_slot_are_not_kept(free_text):
    agent = (
        f"Mozilla/5.0 (Linux; Android 13; SAMSUNG {free_text} Build/TQ3A) AppleWebKit/537.36"
        " (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36"
    )
    assert agents.describe(agent.encode()) == (
        "Android",
        "13",
        "Chrome Mobile",
        "120",
        "Other",
        "Samsung",
        None,
        False,
    )


def test_the_vocabularies_hold_what_everyone_knows():
    # derived from ua-parser's own rules at start-up: a change in its rules or in Python's
    # regex parser must not quietly turn every browser into "Other"
    v = agents._vocabularies()
    for vocabulary, known in (
        (v.browser, {"Chrome", "Firefox", "Mobile Safari", "Edge"}),
        (v.os, {"Windows", "Android", "iOS", "Mac OS X", "Linux"}),
        (v.brand, {"Apple", "Samsung", "Google", "Huawei"}),
        (v.device, {"iPhone", "iPad", "Mac"}),
    ):
        assert {vocabulary.canonical(k) for k in known} == known


def test_real_model_names_are_kept():
    for model, brand in (
        ("SM-S918B", "Samsung"),
        ("Pixel 7 Pro", "Google"),
        ("moto g(60)", "Motorola"),
        ("CPH2451", "Oppo"),
    ):
        agent = (
            f"Mozilla/5.0 (Linux; Android 13; {model}) AppleWebKit/537.36 (KHTML, like "
            "Gecko) Chrome/120.0.0.0 Mobile Safari/537.36"
        )
        described = agents.describe(agent.encode())
        assert described.device_brand == brand and described.device_model in model, described


# -- 12. deep JSON and awkward field names ----------------------------------------------------

DEEP = [b"[" * 1500, b'{"a":' * 300 + b"1" + b"}" * 300, b'{"grant": ' + b"[" * 1500]
ENDPOINTS = ["/veil/e", "/veil/record", "/veil/consent", "/veil/rights/human-review"]


@pytest.mark.parametrize("kind", ["app", "collector"])
def test_deeply_nested_json_is_a_400_on_every_endpoint(serve, kind):
    server = serve(kind)
    with httpx.Client(base_url=server.url) as c:
        for path in ENDPOINTS:
            for body in DEEP:
                r = c.post(path, content=body, headers={"Content-Type": "text/plain"})
                assert r.status_code == 400, (path, r.status_code, r.text)
                assert r.headers["content-type"] == "application/problem+json"
                assert r.json()["type"] == "urn:veil:problem:malformed-body"
        # the server keeps serving, and a good beacon afterwards is stored
        assert c.get("/veil/veil.js").status_code == 200
        assert c.post("/veil/e", json=GOOD, headers={"User-Agent": CHROME}).status_code == 202
    wait_stored(server, 1)
    server.stop()
    assert rows(
        server, "SELECT browser, screen_w IS NOT NULL FROM event_rows WHERE source = 'beacon'"
    ) == [("Chrome", 1)]
    assert "Traceback" not in server.log.read_text()


def grant(c: httpx.Client, scope: str) -> str:
    """The subject cookie a consent sets, as a Cookie header (httpx would not send a Secure
    cookie back over plain HTTP)."""
    r = c.post("/veil/consent", json={"grant": [scope]})
    assert r.status_code == 200, r.text
    return next(
        h.split(";", 1)[0]
        for h in r.headers.get_list("set-cookie")
        if h.split("=", 1)[0].endswith("veil_sid")
    )


@pytest.mark.parametrize("kind", ["app", "collector"])
def test_record_fields_named_like_parameters_never_give_a_500(serve, kind):
    server = serve(kind)
    with httpx.Client(base_url=server.url) as c:
        cookie = grant(c, "feedback")
        fields = {"purpose": "pricing", "subject_id": "42", "self": "me"}
        ok = c.post(
            "/veil/record",
            json={"purpose": "feedback", "fields": fields},
            headers={"Cookie": cookie},
        )
        assert ok.status_code == 202, ok.text
        odd = [
            ({"purpose": "feedback", "fields": {"self": {"nested": [1]}}}, 400),
            ({"purpose": ["feedback"], "fields": fields}, 400),
            ({"purpose": "feedback", "fields": {"undeclared": 1}}, 400),
            ({"purpose": "feedback", "fields": {}}, 400),
            ({"purpose": "feedback", "fields": fields, "extra": 1}, 400),
        ]
        for body, status in odd:
            r = c.post("/veil/record", json=body, headers={"Cookie": cookie})
            assert r.status_code == status, (body, r.status_code, r.text)
        no_cookie = c.post("/veil/record", json={"purpose": "feedback", "fields": fields})
        assert no_cookie.status_code == 403
    server.stop()
    assert rows(server, "SELECT purpose, fields FROM records") == [
        ("feedback", "purpose,self,subject_id")
    ]


async def test_the_python_api_takes_any_declared_field_name(tmp_path, monkeypatch, started):
    config = tmp_path / "veil.toml"
    config.write_text(
        '[store]\nurl = "sqlite:///data/veil.db"\n[keys]\npath = "data/keys.db"\n' + POLICY
    )
    veil = await started(Veil(load(config)))
    await veil.grant("user-7", ["feedback"])
    await veil.record("user-7", "feedback", purpose="pricing", subject_id="x", self="y")
    await veil.stop()
    assert rows(veil, "SELECT fields FROM records") == [("purpose,self,subject_id",)]


# -- 16. ip:port in X-Forwarded-For ---------------------------------------------------------


def test_forwarded_for_with_ports_resolves_the_client(serve):
    server = serve("app", seal=True)
    forms = {"203.0.113.7": "203.0.113.7:41234", "2001:db8:1::7": "[2001:db8:1::7]:443"}
    with httpx.Client(base_url=server.url) as c:
        for plain, with_port in forms.items():
            for xff in (plain, with_port, f"[{plain}]" if ":" in plain else plain):
                r = c.get("/", headers={"User-Agent": CHROME, "X-Forwarded-For": xff})
                assert r.status_code == 200
            # a chain: the left hop is the client's claim, the right one our proxy's view
            r = c.post(
                "/veil/e",
                json=GOOD,
                headers={"User-Agent": CHROME, "X-Forwarded-For": f"6.6.6.6:1, {with_port}"},
            )
            assert r.status_code == 202
    server.stop()
    located = rows(server, "SELECT country, region, network FROM event_rows")
    assert len(located) == 8  # none dropped as invalid_client
    assert {r[:2] for r in located} == {("JP", "13"), ("US", "CA")}
    # the same client whichever form its address came in: one network per address
    assert len({r[2] for r in located}) == 2
    assert rows(server, "SELECT reason FROM drops WHERE reason = 'invalid_client'") == []
    # the port the proxy saw is the client's: sealed with the address, as the policy allows
    keystore = KeyStore.open(load(server.config).keys)
    endpoints = {
        unseal(keystore, key, blob).decode()
        for key, blob in rows(server, "SELECT seal_key, sealed_endpoint FROM event_rows")
    }
    keystore.close()
    assert endpoints == {"203.0.113.7 ", "203.0.113.7 41234", "2001:db8:1::7 ", "2001:db8:1::7 443"}


def test_a_broken_forwarded_for_from_the_proxy_is_still_rate_limited(serve):
    server = serve("app", rate=0.5, burst=3)
    with httpx.Client(base_url=server.url) as c:
        statuses = [
            c.post(
                "/veil/e",
                json=GOOD,
                headers={"User-Agent": CHROME, "X-Forwarded-For": f"garbage-{i}"},
            ).status_code
            for i in range(6)
        ]
    # the client cannot be known, so the peer (the trusted proxy) is the bucket
    assert statuses == [202, 202, 202, 429, 429, 429]
    server.stop()
    assert rows(server, "SELECT reason, count FROM drops WHERE reason = 'invalid_client'") == [
        ("invalid_client", 3)
    ]
