"""The collector app: demo page, health, beacons, and the signed batch endpoint."""

import json
import time
from collections import Counter
from dataclasses import dataclass

import httpx
import pytest

from veil import Veil
from veil.store.columns import ROW_COLUMNS
from veil.store.wire import encode_batch, signature, signed_headers
from veil_collector.app import create_app

from conftest import CHROME, rows

SECRET = "s" * 40


def row(event_id: str, purpose: str = "connection") -> tuple:
    values = dict.fromkeys(ROW_COLUMNS)
    values.update(
        event_id=event_id,
        ts=time.time(),
        purpose=purpose,
        policy_version="1.0",
        source="request",
        visitor=f"v-{event_id}",
        browser="Firefox",
        sealed_endpoint=b"\x00\x01sealed",
        seal_key="seal-x",
    )
    return tuple(values[c] for c in ROW_COLUMNS)


@dataclass(frozen=True)
class Collector:
    """The collector app's client (from 203.0.113.9) and its started Veil."""

    client: httpx.AsyncClient
    veil: Veil


@pytest.fixture
async def collector(make_config, monkeypatch, started):
    monkeypatch.setenv("VEIL_REMOTE_SECRET", SECRET)
    app = create_app(make_config())
    veil = await started(app.state.veil)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://collector") as client:
        yield Collector(client, veil)


def rows_in(veil) -> list[tuple]:
    return rows(
        veil, "SELECT event_id, browser, source, sealed_endpoint FROM event_rows ORDER BY event_id"
    )


async def post_batch(client, body: bytes, headers: dict | None = None) -> httpx.Response:
    return await client.post(
        "/veil/batch", content=body, headers=headers or signed_headers(SECRET.encode(), body)
    )


async def test_demo_page_loads_the_snippet_and_health_reports(collector):
    page = await collector.client.get("/")
    assert page.status_code == 200 and '<script src="/veil/veil.' in page.text
    script = await collector.client.get("/veil/veil.js")
    assert script.status_code == 200
    health = await collector.client.get("/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"


async def test_collector_accepts_beacons(collector):
    r = await collector.client.post(
        "/veil/e",
        content=json.dumps({"screen_w": 390, "screen_h": 844, "pixel_ratio": 3, "language": "ja"}),
        headers={"Content-Type": "text/plain", "User-Agent": CHROME},
    )
    assert r.status_code == 202
    await collector.veil.flush()
    assert [r[1:3] for r in rows_in(collector.veil)] == [("Chrome", "beacon")]


async def test_a_signed_batch_is_stored_once_even_when_sent_twice(collector):
    body = encode_batch([row("e1"), row("e2")], Counter(bot=2), "2026-11-25")
    first = await post_batch(collector.client, body)
    assert first.status_code == 200 and first.json() == {"stored": 2}
    again = await post_batch(collector.client, body)  # a retry after a lost acknowledgement
    assert again.status_code == 200
    stored = rows_in(collector.veil)
    assert [r[0] for r in stored] == ["e1", "e2"]
    assert stored[0][3] == b"\x00\x01sealed"  # blobs survive the JSON round trip


@pytest.mark.parametrize(
    ("tamper", "kind"),
    [
        (
            lambda body, h: {
                **h,
                "X-Veil-Signature": signature(b"x" * 40, h["X-Veil-Timestamp"], body),
            },
            "bad-signature",
        ),
        (lambda body, h: {k: v for k, v in h.items() if k != "X-Veil-Signature"}, "unsigned"),
        (
            lambda body, h: {
                **h,
                "X-Veil-Timestamp": str(int(time.time()) - 3600),
                "X-Veil-Signature": signature(SECRET.encode(), str(int(time.time()) - 3600), body),
            },
            "stale-timestamp",
        ),
    ],
)
async def test_unauthenticated_batches_are_refused(collector, tamper, kind):
    body = encode_batch([row("e1")], Counter(), "2026-11-25")
    headers = tamper(body, signed_headers(SECRET.encode(), body))
    r = await post_batch(collector.client, body, headers)
    assert r.status_code == 401 and r.json()["type"] == f"urn:veil:problem:{kind}"
    assert rows_in(collector.veil) == []


@pytest.mark.parametrize(
    ("body", "status", "kind"),
    [
        (b"{not json", 400, "malformed-batch"),
        (json.dumps({"columns": ["x"], "rows": []}).encode(), 400, "schema-mismatch"),
        (
            json.dumps(
                {"columns": list(ROW_COLUMNS), "day": "2026-11-25", "drops": {}, "rows": [[1, 2]]}
            ).encode(),
            400,
            "malformed-batch",
        ),
        (
            encode_batch([row("e1", purpose="marketing")], Counter(), "2026-11-25"),
            422,
            "not-stored",
        ),
    ],
)
async def test_bad_batches_are_refused_and_store_nothing(collector, body, status, kind):
    r = await post_batch(collector.client, body)
    assert r.status_code == status and r.json()["type"] == f"urn:veil:problem:{kind}"
    assert rows_in(collector.veil) == []


async def test_batch_endpoint_is_off_without_a_secret(make_config, monkeypatch):
    monkeypatch.delenv("VEIL_REMOTE_SECRET", raising=False)
    app = create_app(make_config())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://c") as client:
        r = await client.post("/veil/batch", content=b"{}")
    assert r.status_code == 404 and r.json()["type"] == "urn:veil:problem:batch-disabled"
