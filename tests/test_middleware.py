"""VeilMiddleware through direct ASGI calls: responses untouched, failures counted."""

import asyncio
import sqlite3

import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route

from veil import Veil, VeilMiddleware

from conftest import CHROME, FIREFOX, rows, scalar, scope


async def hello(request):
    return PlainTextResponse("hi", headers={"x-app": "1"})


async def stream(request):
    async def chunks():
        for part in (b"a", b"b", b"c"):
            yield part

    return StreamingResponse(chunks(), media_type="text/x-test")


async def boom(request):
    raise RuntimeError("the app's own bug")


async def echo(request):
    return JSONResponse(
        {
            "body": (await request.body()).decode(),
            "client": list(request.client),
            "ua": request.headers["user-agent"],
        }
    )


def make_app():
    return Starlette(
        routes=[
            Route("/", hello),
            Route("/stream", stream),
            Route("/boom", boom),
            Route("/echo", echo, methods=["POST"]),
        ]
    )


async def call(app, s: dict, body: bytes = b"") -> list[dict]:
    sent: list[dict] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    try:
        await app(s, receive, send)
    except RuntimeError as exc:
        sent.append({"raised": str(exc)})
    return sent


@pytest.mark.parametrize(
    ("path", "method", "body"),
    [
        ("/", "GET", b""),
        ("/stream", "GET", b""),
        ("/boom", "GET", b""),
        ("/missing", "GET", b""),
        ("/echo", "POST", b'{"x": 1}'),
    ],
)
async def test_responses_are_byte_for_byte_those_of_the_bare_app(make_config, path, method, body):
    veil = Veil(make_config())
    wrapped = VeilMiddleware(make_app(), veil=veil)
    s = {**scope(path, headers={"User-Agent": CHROME}), "method": method}
    assert await call(wrapped, dict(s), body) == await call(make_app(), dict(s), body)
    await veil.stop()


async def test_requests_are_captured_and_stored_after_stop(make_config, started):
    veil = Veil(make_config())
    app = VeilMiddleware(make_app(), veil=veil)
    await started(veil)
    for agent in (CHROME, CHROME, FIREFOX):
        await call(app, scope(headers={"User-Agent": agent}))
    await veil.stop()
    assert sorted(r[0] for r in rows(veil, "SELECT browser FROM events")) == [
        "Chrome",
        "Chrome",
        "Firefox",
    ]


async def test_a_malformed_scope_is_counted_and_the_app_still_answers(make_config):
    veil = Veil(make_config())
    app = VeilMiddleware(make_app(), veil=veil)
    bad = scope()
    bad["headers"] = None  # a broken server or an upstream middleware
    bare = scope()
    bare["headers"] = None
    # whatever the app makes of such a scope, it makes the same with veil in front
    assert await call(app, bad) == await call(make_app(), bare)
    assert veil.stats().dropped == {"capture_error": 1}
    await veil.stop()


async def test_full_queue_drops_are_counted_and_responses_unchanged(make_config, tmp_path, started):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")  # the store cannot be opened: the writer never drains
    cfg = make_config(store={"url": f"sqlite:///{blocker}/veil.db"}, capture={"queue_size": 3})
    veil = Veil(cfg)
    app = VeilMiddleware(make_app(), veil=veil)
    await started(veil)
    for _ in range(10):
        sent = await call(app, scope(headers={"User-Agent": CHROME}))
        assert sent[0]["status"] == 200 and sent[1]["body"] == b"hi"
    stats = veil.stats()
    assert (stats.queued, stats.dropped, stats.running) == (3, {"queue_full": 7}, False)


async def test_a_store_failing_mid_batch_loses_only_that_batch_and_counts_it(make_config, started):
    cfg = make_config(capture={"max_retries": 1})
    veil = Veil(cfg)
    app = VeilMiddleware(make_app(), veil=veil)
    await started(veil)
    await call(app, scope(headers={"User-Agent": CHROME}))
    await veil.flush()
    # A real SQLite failure in the middle of the next batch: the second row aborts it.
    db = sqlite3.connect(cfg.store.path)
    db.execute(
        "CREATE TRIGGER fail BEFORE INSERT ON events_connection WHEN "
        "(SELECT browser FROM agents WHERE id = NEW.agent) = 'Firefox' "
        "BEGIN SELECT RAISE(ABORT, 'disk exploded'); END"
    )
    db.commit()
    for agent in (CHROME, FIREFOX, CHROME):
        sent = await call(app, scope(headers={"User-Agent": agent}))
        assert sent[1]["body"] == b"hi"
    await veil.flush()
    db.execute("DROP TRIGGER fail")
    db.commit()
    db.close()
    await call(app, scope(headers={"User-Agent": FIREFOX}))
    await veil.stop()
    browsers = sorted(r[0] for r in rows(veil, "SELECT browser FROM events"))
    assert browsers == ["Chrome", "Firefox"]  # before and after the failed batch, intact
    assert dict(rows(veil, "SELECT reason, count FROM drops")) == {"store_error": 3}


async def test_lifespan_starts_the_writer_and_shutdown_flushes(make_config):
    veil = Veil(make_config(capture={"flush_interval": 60}))
    app = VeilMiddleware(make_app(), veil=veil)
    inbox: asyncio.Queue = asyncio.Queue()
    outbox: list = []

    async def send(message):
        outbox.append(message["type"])

    lifespan = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}}, inbox.get, send)
    )
    await inbox.put({"type": "lifespan.startup"})
    while "lifespan.startup.complete" not in outbox:
        await asyncio.sleep(0.01)
    assert veil.stats().running
    for _ in range(4):
        await call(app, scope(headers={"User-Agent": CHROME}))
    assert veil.stats().stored == 0  # a 60 s flush interval: nothing written yet
    await inbox.put({"type": "lifespan.shutdown"})
    await lifespan
    assert outbox[-1] == "lifespan.shutdown.complete"
    assert scalar(veil, "SELECT COUNT(*) FROM events") == 4


async def test_an_app_without_lifespan_still_gets_a_writer(make_config):
    veil = Veil(make_config())
    app = VeilMiddleware(make_app(), veil=veil)
    await call(app, scope(headers={"User-Agent": CHROME}))
    for _ in range(100):
        if veil.stats().stored:
            break
        await asyncio.sleep(0.02)
    assert veil.stats().stored == 1
    await veil.stop()


async def test_websocket_scopes_pass_through_uncaptured(make_config):
    seen = []

    async def ws_app(s, receive, send):
        seen.append(s["type"])

    veil = Veil(make_config())
    await VeilMiddleware(ws_app, veil=veil)({"type": "websocket"}, None, None)
    assert seen == ["websocket"] and len(veil.buffer) == 0


def test_two_lifespans_on_two_event_loops(make_config):
    from starlette.testclient import TestClient

    veil = Veil(make_config())
    app = VeilMiddleware(make_app(), veil=veil)
    for _ in range(2):  # TestClient runs each lifespan on a fresh event loop
        with TestClient(app) as client:
            assert client.get("/", headers={"User-Agent": CHROME}).text == "hi"
    # TestClient's peer is the name "testclient", not an address: counted, not stored
    assert dict(rows(veil, "SELECT reason, count FROM drops")) == {"invalid_client": 2}


NO_LIFESPAN_APP = """
import asyncio, sys
from pathlib import Path
from conftest import CHROME, scope
from veil import Veil, VeilMiddleware
from veil.config import from_dict

cfg = from_dict({"store": {"url": "sqlite:///veil.db"}, "keys": {"path": "keys.db"},
                 "capture": {"flush_interval": 60}}, base=Path(sys.argv[1]))

async def app(s, receive, send):
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})

async def main():
    wrapped = VeilMiddleware(app, veil=Veil(cfg))
    async def ignore(message):
        pass
    for _ in range(3):
        await wrapped(scope(headers={"User-Agent": CHROME}), None, ignore)

asyncio.run(main())
"""


def test_without_lifespan_the_process_still_exits_and_flushes(tmp_path, master_key):
    import os
    import subprocess
    import sys
    from pathlib import Path

    tests = Path(__file__).parent
    done = subprocess.run(
        [sys.executable, "-c", NO_LIFESPAN_APP, str(tmp_path)],
        timeout=30,
        env={**os.environ, "PYTHONPATH": str(tests)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert scalar(tmp_path / "veil.db", "SELECT COUNT(*) FROM events") == 3


async def test_an_unexpected_writer_error_logs_where_not_what(make_config, caplog, started):
    veil = Veil(make_config())
    app = VeilMiddleware(make_app(), veil=veil)
    await started(veil)

    def explode(batch, consent):
        raise ValueError(f"bad event from {batch[0][2]} with {batch[0][4]!r}")

    veil.writer.pipeline.process = explode
    await call(app, scope(client=("198.51.100.77", 40404), headers={"User-Agent": CHROME}))
    for _ in range(100):
        if "unexpected ValueError" in caplog.text:
            break
        await asyncio.sleep(0.02)
    assert "veil writer: unexpected ValueError at" in caplog.text
    assert "198.51.100.77" not in caplog.text and "Chrome/120" not in caplog.text
    veil.buffer.take(len(veil.buffer))
    await veil.stop()
