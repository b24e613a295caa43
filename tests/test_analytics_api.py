"""The analysts' stats API over real HTTP (httpx's ASGI transport through VeilMiddleware):
bearer tokens (401 without or with a revoked one, stored only as a hash), purpose-bound reads
(403 outside the analyst's purposes and for a decision purpose, audited), every read in the
hash-chained audit log, CSV, the OpenAPI document; and `veil analysts add|list|revoke`."""

import csv
import hashlib
import io
import json
import os
import time
from collections import Counter
from pathlib import Path

import httpx
import openapi_spec_validator
import pytest
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError
from policies import GUARDED
from servers import ServerProcess
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from veil import Veil
from veil.analytics import analysts
from veil.config import ConfigError, from_dict
from veil.errors import QueryError
from veil.http.analytics import openapi_document
from veil.http.endpoints import COLLECTOR_PATHS, PATHS, Endpoints
from veil.store import analysts_store, audit
from veil_collector.cli import main

from conftest import event_row, known_to_ledger

STATS = "/api/v1/stats"
NETWORKS = [f"198.51.{n}.20" for n in range(1, 8)]  # seven people, one day, seven networks


async def _page(request) -> PlainTextResponse:
    return PlainTextResponse("the app's own")


@pytest.fixture
async def site(make_config, started_site):
    """An app behind the middleware, with the API routes mounted as the collector mounts
    them (the middleware alone never serves /api/v1/*: see the test below)."""
    veil = Veil(make_config(policy=GUARDED))
    endpoints = Endpoints(veil)
    app = Starlette(
        routes=[
            *(Route(p, endpoints) for p in sorted(COLLECTOR_PATHS - PATHS)),
            Route("/{p:path}", _page),
        ]
    )
    s = await started_site(veil, app=app)
    for ip in NETWORKS:  # each request is a `connection` event
        async with s.client(ip) as client:
            assert (await client.get("/page")).status_code == 200
    await s.veil.flush()
    return s


async def token_for(site, name="alice", purposes=("connection",), uses=("statistics",)) -> str:
    _, token = await analysts.add(site.veil.store, site.veil.config.policy, name, purposes, uses)
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def entries(site, kind: str) -> list[dict]:
    return [json.loads(e.details) for e in audit.entries(site.veil.store.db, kind)]


def audit_verify(data_dir: Path, capsys) -> tuple[int, str]:
    config = data_dir / "veil.toml"
    config.write_text('[store]\nurl = "sqlite:///veil.db"\n[keys]\npath = "keys.db"\n')
    code = main(["audit", "verify", "--config", str(config)])
    out = capsys.readouterr()
    return code, out.out + out.err


async def test_no_token_a_bad_token_and_a_revoked_token_get_401(site):
    token = await token_for(site)
    async with site.client() as client:
        r = await client.get(STATS, params={"purpose": "connection"})
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert r.headers["cache-control"] == "no-store"
        assert r.headers["content-type"] == "application/problem+json"
        r = await client.get(STATS, params={"purpose": "connection"}, headers=bearer("veil_x"))
        assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"]
        r = await client.get(
            STATS, params={"purpose": "connection"}, headers={"Authorization": f"Basic {token}"}
        )
        assert r.status_code == 401
        assert (
            await client.get(STATS, params={"purpose": "connection"}, headers=bearer(token))
        ).status_code == 200
        await analysts.revoke(site.veil.store, "alice")
        r = await client.get(STATS, params={"purpose": "connection"}, headers=bearer(token))
        assert r.status_code == 401 and "revoked" in r.json()["detail"]


async def test_a_read_is_answered_and_audited_and_the_chain_verifies(site, data_dir, capsys):
    token = await token_for(site)
    async with site.client() as client:
        r = await client.get(
            STATS,
            params={"purpose": "connection", "metric": "events,visitors", "by": "day"},
            headers=bearer(token),
        )
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["purpose"] == "connection" and body["use"] == "statistics"
    assert body["by"] == ["day"] and body["metrics"] == ["events", "visitors"]
    assert body["k"] == site.veil.config.min_group_size
    [cell] = body["cells"]
    assert cell["values"] == {"events": len(NETWORKS), "visitors": len(NETWORKS)}
    [read] = entries(site, "read")
    assert read["analyst"] == "alice" and read["purpose"] == "connection"
    assert read["use"] == "statistics" and read["epsilon"] == 0
    assert read["query"]["by"] == ["day"] and read["query"]["metrics"] == ["events", "visitors"]
    assert read["cells"] == 1 and read["suppressed"] == 0
    code, out = audit_verify(data_dir, capsys)
    assert code == 0 and "audit log intact" in out, out


async def test_suppressed_cells_are_marked_and_counted_in_the_audit(site):
    token = await token_for(site)
    async with site.client("203.0.113.9") as client:  # one more browser, alone in its group
        await client.get(
            "/page",
            headers={
                "User-Agent": "Mozilla/5.0 (X11; Linux x86_64; "
                "rv:121.0) Gecko/20100101 Firefox/121.0"
            },
        )
    await site.veil.flush()
    async with site.client() as client:
        r = await client.get(
            STATS, params={"purpose": "connection", "by": "browser"}, headers=bearer(token)
        )
    assert r.status_code == 200, r.text
    body = r.json()
    hidden = [c for c in body["cells"] if c["values"] is None]
    assert body["suppressed"] == len(hidden) >= 1
    assert all(c["suppressed"] is True for c in hidden)
    assert {"events": len(NETWORKS)} not in [c["values"] for c in hidden]
    [read] = entries(site, "read")
    assert read["suppressed"] == body["suppressed"]
    assert read["cells"] == len(body["cells"]) - len(hidden)


async def test_another_purpose_is_403_and_the_refusal_is_audited(site):
    token = await token_for(site, purposes=("browsing_history",))
    async with site.client() as client:
        r = await client.get(STATS, params={"purpose": "connection"}, headers=bearer(token))
    assert r.status_code == 403
    assert r.headers["cache-control"] == "no-store"
    assert "not granted purpose 'connection'" in r.json()["detail"]
    [refused] = entries(site, "read_refused")
    assert refused["analyst"] == "alice" and refused["purpose"] == "connection"
    assert "not granted" in refused["reason"]
    assert entries(site, "read") == []


async def test_a_use_the_analyst_is_not_granted_is_403(site):
    token = await token_for(site)
    async with site.client() as client:
        r = await client.get(
            STATS, params={"purpose": "connection", "use": "marketing"}, headers=bearer(token)
        )
    assert r.status_code == 403 and "use 'marketing'" in r.json()["detail"]


async def test_a_decision_purpose_is_403_even_for_an_analyst_granted_it(site):
    with pytest.raises(QueryError, match="automated decisions"):
        await token_for(site, purposes=("credit",))
    # granted all the same (a policy that changed after the grant): still closed
    token = "veil_granted-before-the-decision-was-declared"
    async with site.veil.store._writing() as db:
        analysts_store.insert(
            db, "bob", analysts.token_hash(token), ["credit"], ["statistics"], 0.0
        )
    async with site.client() as client:
        r = await client.get(STATS, params={"purpose": "credit"}, headers=bearer(token))
    assert r.status_code == 403 and "automated decisions" in r.json()["detail"]
    assert entries(site, "read_refused")[-1]["analyst"] == "bob"


async def test_a_bad_query_is_400_problem_json(site):
    token = await token_for(site)
    async with site.client() as client:
        for params in (
            {"purpose": "connection", "by": "shoe_size"},
            {"purpose": "connection", "metric": "subjects"},  # no subjects without consent
            {"purpose": "connection", "since": "yesterday"},
            {"purpose": "connection", "where": "browser"},
            {"purpose": "connection", "format": "xml"},
            {"purpose": "connection", "colour": "red"},
            {},
        ):
            r = await client.get(STATS, params=params, headers=bearer(token))
            assert r.status_code == 400, (params, r.text)
            assert r.headers["content-type"] == "application/problem+json"
            assert r.headers["cache-control"] == "no-store"


async def test_csv_parses_with_the_same_numbers_as_json(site):
    token = await token_for(site)
    params = {"purpose": "connection", "metric": ["events", "visitors"], "by": "country"}
    async with site.client() as client:
        as_json = (await client.get(STATS, params=params, headers=bearer(token))).json()
        r = await client.get(STATS, params={**params, "format": "csv"}, headers=bearer(token))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(r.text)))
    assert list(table[0]) == ["country", "events", "visitors", "suppressed", "suppressed_days"]
    assert [(int(t["events"]), int(t["visitors"])) for t in table] == [
        (c["values"]["events"], c["values"]["visitors"]) for c in as_json["cells"]
    ]
    assert len(entries(site, "read")) == 2


async def test_where_filters_and_time_ranges_reach_the_audit(site):
    token = await token_for(site)
    async with site.client() as client:
        r = await client.get(
            STATS,
            params={
                "purpose": "connection",
                "where": "device:Other",
                "since": "2000-01-01",
                "until": "2000-01-02T00:00:00Z",
            },
            headers=bearer(token),
        )
    assert r.status_code == 200, r.text
    assert r.json()["cells"] == []  # nothing was stored in 2000
    [read] = entries(site, "read")
    assert read["query"]["filters"] == {"device": "Other"}
    assert read["query"]["since"] == 946684800.0 and read["query"]["until"] == 946771200.0


async def test_the_openapi_document_describes_the_endpoint(site):
    async with site.client() as client:
        r = await client.get("/api/v1/openapi.json")
    assert r.status_code == 200
    doc = json.loads(r.text)
    assert doc["openapi"].startswith("3.1")
    get = doc["paths"][STATS]["get"]
    names = {p["name"] for p in get["parameters"]}
    assert names == {"purpose", "use", "metric", "by", "where", "since", "until", "format"}
    assert {"200", "400", "401", "403"} <= set(get["responses"])
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_the_openapi_document_is_valid_openapi_3_1():
    doc = openapi_document()
    openapi_spec_validator.validate(doc)
    broken = {**doc, "paths": {STATS: {"get": {"responses": {}, "parameters": [{}]}}}}
    with pytest.raises(OpenAPIValidationError):
        openapi_spec_validator.validate(broken)


def test_a_decision_purpose_cannot_be_opened_to_analysts(data_dir):
    purposes = {**GUARDED["purposes"]}
    purposes["credit"] = {**purposes["credit"], "analytics": ["statistics"]}
    with pytest.raises(ConfigError, match=r"credit\.analytics: must be empty"):
        from_dict({"policy": {**GUARDED, "purposes": purposes}}, base=data_dir)


def test_a_purpose_closed_by_the_policy_refuses_even_a_granted_analyst(data_dir):
    purposes = {**GUARDED["purposes"]}
    purposes["connection"] = {**purposes["connection"], "analytics": []}
    policy = from_dict({"policy": {**GUARDED, "purposes": purposes}}, base=data_dir).policy
    alice = analysts.Analyst("alice", ("connection",), ("statistics",), 0.0)
    assert "opens purpose 'connection' to no use" in str(
        analysts.refusal(policy, alice, "connection", "statistics")
    )
    assert analysts.refusal(policy, alice, "connection", "statistics") is not None
    default = from_dict({"policy": GUARDED}, base=data_dir).policy
    assert analysts.refusal(default, alice, "connection", "statistics") is None
    assert default.analytics_uses("care") == frozenset()  # contract: not for statistics


def test_cli_prints_the_token_once_stores_only_its_hash_and_lists_no_token(tmp_path, capsys):
    config = tmp_path / "veil.toml"
    config.write_text('[store]\nurl = "sqlite:///data/veil.db"\n[keys]\npath = "data/keys.db"\n')
    args = ["--config", str(config)]
    assert main(["analysts", "add", "alice", "--purpose", "connection", *args]) == 0
    out = capsys.readouterr()
    token = out.out.strip()
    assert token.startswith("veil_") and len(token) > 40 and token not in out.err
    data = b"".join(p.read_bytes() for p in (tmp_path / "data").glob("veil.db*"))
    assert token.encode() not in data
    assert hashlib.sha256(token.encode()).digest() in data
    assert main(["analysts", "list", *args]) == 0
    listed = capsys.readouterr().out
    assert "alice" in listed and "connection" in listed and "statistics" in listed
    assert token not in listed and token[5:20] not in listed
    assert main(["analysts", "add", "alice", "--purpose", "connection", *args]) == 1
    assert "exists already" in capsys.readouterr().err
    assert main(["analysts", "add", "eve", "--purpose", "nosuch", *args]) == 1
    assert "no purpose 'nosuch'" in capsys.readouterr().err
    assert main(["analysts", "revoke", "alice", *args]) == 0
    capsys.readouterr()
    assert main(["analysts", "list", *args]) == 0
    assert "alice" in (listed := capsys.readouterr().out) and token not in listed
    assert main(["analysts", "revoke", "alice", *args]) == 1
    assert main(["audit", "verify", *args]) == 0
    kinds = capsys.readouterr()
    assert "audit log intact" in kinds.out


def test_the_api_over_veil_serve(tmp_path, capsys, master_key):
    """Real HTTP through uvicorn: `veil serve` answers a token `veil analysts add` printed,
    refuses a request without it, and the read lands in the chain `veil audit verify` checks."""
    config = tmp_path / "veil.toml"
    config.write_text('[store]\nurl = "sqlite:///data/veil.db"\n[keys]\npath = "data/keys.db"\n')
    assert (
        main(["analysts", "add", "alice", "--purpose", "connection", "--config", str(config)]) == 0
    )
    token = capsys.readouterr().out.strip()
    env = {**os.environ, "VEIL_MASTER_KEY": master_key}
    server = ServerProcess.veil_serve(
        config, env, tmp_path / "collector.log", data=tmp_path / "data"
    ).start()
    try:
        url = f"{server.url}{STATS}"
        assert httpx.get(url, params={"purpose": "connection"}).status_code == 401
        r = httpx.get(url, params={"purpose": "connection", "format": "csv"}, headers=bearer(token))
        assert r.status_code == 200, r.text
        assert r.text.splitlines()[0] == "events,suppressed,suppressed_days"
        r = httpx.get(url, params={"purpose": "browsing_history"}, headers=bearer(token))
        assert r.status_code == 403
    finally:
        assert server.stop() == 0
    assert main(["audit", "verify", "--config", str(config)]) == 0
    assert "audit log intact" in capsys.readouterr().out
    assert main(["audit", "show", "--kind", "read", "--config", str(config)]) == 0
    assert '"analyst":"alice"' in capsys.readouterr().out


async def test_a_query_for_one_purpose_sees_no_other_purposes_rows(site):
    subjects = [f"subject-{n}" for n in range(7)]
    await known_to_ledger(site.veil.store, *subjects)
    await site.veil.store.write(
        [
            event_row(
                event_id=f"b{n}",
                ts=time.time(),
                purpose="browsing_history",
                policy_version="g1",
                source="beacon",
                visitor=None,
                subject=s,
                path="/private-page",
            )
            for n, s in enumerate(subjects)
        ],
        Counter(),
        "2026-11-28",
    )
    both = await token_for(site, purposes=("connection", "browsing_history"))
    async with site.client() as client:
        r = await client.get(STATS, params={"purpose": "connection"}, headers=bearer(both))
        assert [c["values"] for c in r.json()["cells"]] == [{"events": len(NETWORKS)}]
        r = await client.get(
            STATS, params={"purpose": "connection", "by": "path"}, headers=bearer(both)
        )
        assert r.status_code == 400  # the connection purpose holds no path
        r = await client.get(
            STATS,
            params={"purpose": "browsing_history", "by": "path", "metric": "events,subjects"},
            headers=bearer(both),
        )
        assert r.status_code == 200, r.text
        assert r.json()["cells"] == [
            {"key": {"path": "/private-page"}, "values": {"events": 7, "subjects": 7}}
        ]


async def test_the_middleware_leaves_an_apps_own_api_paths_alone(make_config, started_site):
    """Telemetry never takes a path of the host app: /api/v1/* is the collector's only."""
    app = Starlette(routes=[Route("/{p:path}", _page)])
    site = await started_site(Veil(make_config(policy=GUARDED)), app=app)
    async with site.client() as client:
        for path in (STATS, "/api/v1/openapi.json"):
            r = await client.get(path)
            assert (r.status_code, r.text) == (200, "the app's own"), path
