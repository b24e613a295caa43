"""POST /veil/e and GET /veil/veil.js, through the middleware, with real HTTP semantics."""

import json

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from veil import Veil, VeilMiddleware
from veil.http.endpoints import PINNED_SCRIPT_PATH, SCRIPT

from conftest import CHROME, records, rows

GOOD = {"screen_w": 1280, "screen_h": 800, "pixel_ratio": 2, "language": "de-CH"}


@pytest.fixture
async def veil(make_config, started):
    return await started(Veil(make_config(ingest={"rate": 1000.0, "burst": 1000})))


@pytest.fixture
async def client(veil):
    """A client of an app behind the middleware of `veil` (started)."""

    async def home(request):
        return PlainTextResponse("app")

    app = VeilMiddleware(Starlette(routes=[Route("/", home)]), veil=veil)
    transport = httpx.ASGITransport(app=app, client=("198.51.100.7", 50123))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://shop.example", headers={"User-Agent": CHROME}
    ) as c:
        yield c


def stored(veil) -> list[dict]:
    return records(veil, "SELECT * FROM events WHERE source = 'beacon'")


def beacon(body, content_type="text/plain;charset=UTF-8") -> dict:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return {"content": data, "headers": {"Content-Type": content_type}}


async def test_a_good_beacon_is_accepted_and_stored_with_server_side_fields(client, veil):
    r = await client.post("/veil/e", **beacon(GOOD))
    assert r.status_code == 202 and r.content == b""
    r = await client.post("/veil/e", **beacon({**GOOD, "path": "/pricing?q=1"}, "application/json"))
    assert r.status_code == 202
    await veil.stop()
    rows = stored(veil)
    assert len(rows) == 2
    row = rows[0]
    # the screen as its width class, no height (test_unlinkability.py says why)
    assert (row["screen_w"], row["screen_h"], row["pixel_ratio"], row["language"]) == (
        1200,
        None,
        2.0,
        "de",
    )
    assert (row["browser"], row["purpose"], row["country"]) == ("Chrome", "connection", None)
    assert row["visitor"]
    assert all(r["path"] is None for r in rows)  # no consent purpose: the path is not kept


@pytest.mark.parametrize(
    ("body", "content_type", "status", "kind", "field"),
    [
        (b"{not json", "text/plain", 400, "malformed-body", None),
        (b"[1, 2]", "text/plain", 400, "malformed-body", None),
        (b"\xff\xfe", "text/plain", 400, "malformed-body", None),
        ({**GOOD, "ip": "1.2.3.4"}, "text/plain", 400, "invalid-field", "ip"),
        ({**GOOD, "user_agent": "x"}, "text/plain", 400, "invalid-field", "user_agent"),
        (
            {k: v for k, v in GOOD.items() if k != "language"},
            "text/plain",
            400,
            "invalid-field",
            "language",
        ),
        ({**GOOD, "screen_w": "1280"}, "text/plain", 400, "invalid-field", "screen_w"),
        ({**GOOD, "screen_h": 0}, "text/plain", 400, "invalid-field", "screen_h"),
        ({**GOOD, "screen_w": True}, "text/plain", 400, "invalid-field", "screen_w"),
        ({**GOOD, "pixel_ratio": 50}, "text/plain", 400, "invalid-field", "pixel_ratio"),
        ({**GOOD, "language": "<script>"}, "text/plain", 400, "invalid-field", "language"),
        ({**GOOD, "path": "https://evil.example/"}, "text/plain", 400, "invalid-field", "path"),
        (GOOD, "application/x-www-form-urlencoded", 415, "unsupported-media-type", None),
        ({**GOOD, "language": "de" * 3000}, "text/plain", 413, "body-too-large", None),
    ],
)
async def test_bad_beacons_get_a_precise_problem_and_store_nothing(
    client, body, content_type, status, kind, field, veil
):
    r = await client.post("/veil/e", **beacon(body, content_type))
    assert r.status_code == status
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["type"] == f"urn:veil:problem:{kind}" and problem["status"] == status
    assert problem.get("field") == field
    assert problem["detail"]
    await veil.stop()
    assert stored(veil) == []


async def test_good_beacons_around_bad_ones_are_all_stored(client, veil):
    statuses = []
    for i in range(12):
        good = i % 3 == 0
        # good ones marked by a width of its own class (stored as the class: 576, 768, ...)
        body = (
            {**GOOD, "screen_w": (600, 800, 1000, 1300)[i // 3]}
            if good
            else {**GOOD, "screen_w": -i}
        )
        statuses.append((await client.post("/veil/e", **beacon(body))).status_code)
    assert statuses == [202, 400, 400] * 4
    await veil.stop()
    assert sorted(r["screen_w"] for r in stored(veil)) == [576, 768, 992, 1200]


async def test_a_chunked_oversized_body_is_refused(client):
    async def chunks():
        for _ in range(10):
            yield b" " * 1000

    r = await client.post("/veil/e", content=chunks(), headers={"Content-Type": "text/plain"})
    assert r.status_code == 413


async def test_wrong_method(client):
    r = await client.get("/veil/e")
    assert r.status_code == 405 and r.headers["allow"] == "POST"


async def test_rate_limit_per_network_answers_429_with_retry_after(make_config, started):
    veil = await started(Veil(make_config(ingest={"rate": 0.5, "burst": 3})))
    app = VeilMiddleware(Starlette(), veil=veil)

    async def post(ip):
        transport = httpx.ASGITransport(app=app, client=(ip, 1234))
        async with httpx.AsyncClient(transport=transport, base_url="http://x") as c:
            return await c.post("/veil/e", **beacon(GOOD))

    statuses = [(await post(f"198.51.100.{i}")).status_code for i in range(5)]
    assert statuses == [202, 202, 202, 429, 429]  # one /24, one bucket
    limited = await post("198.51.100.99")
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.json()["type"] == "urn:veil:problem:rate-limited"
    assert (await post("203.0.113.1")).status_code == 202  # another network, its own bucket


async def test_the_snippet_is_served_with_caching_headers(client):
    r = await client.get("/veil/veil.js")
    assert r.status_code == 200 and r.content == SCRIPT
    assert r.headers["content-type"] == "text/javascript; charset=utf-8"
    assert r.headers["cache-control"] == "public, max-age=86400"
    etag = r.headers["etag"]
    again = await client.get("/veil/veil.js", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    pinned = await client.get(PINNED_SCRIPT_PATH)
    assert pinned.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert (await client.head("/veil/veil.js")).content == b""
    assert (await client.post("/veil/veil.js")).status_code == 405


async def test_veil_endpoints_are_not_counted_as_page_requests(client, veil):
    await client.get("/veil/veil.js")
    assert (await client.get("/")).text == "app"
    await veil.stop()
    assert rows(veil, "SELECT source, COUNT(*) FROM events GROUP BY source") == [("request", 1)]
