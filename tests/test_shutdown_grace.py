"""The shutdown grace is one deadline for the whole stop, not one per queued batch.

An app forwards to a collector that is away. Before, each queued batch was granted
`remote.shutdown_grace` of its own at stop: with the defaults (10,000 queued, batches of
1,000, 10 s) a stop took ~2 minutes, past a container's stop timeout, which then killed the
process with nothing counted. Now the stop writes what it can until one deadline, then drops
the rest, counted (`store_error`, one per event); a collector back within the grace still gets
everything.
"""

import asyncio
import socket
import time
from pathlib import Path

import httpx
from servers import free_port
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from veil import Veil, VeilMiddleware

from conftest import CHROME, Collector, rows

SECRET = "s" * 48
EVENTS = 120  # 12 batches of 10
BATCH_SIZE = 10
# A liveness bound, not a speed assertion: the old code needs one grace per batch (12 s here).
STOP_BOUND = 5.0


def app_config(tmp: Path, port: int, grace: float, timeout: float = 5.0) -> Path:
    path = tmp / "veil.toml"
    path.write_text(
        f'[keys]\npath = "app-keys.db"\n'
        f'[remote]\nurl = "http://127.0.0.1:{port}/veil/batch"\n'
        f"shutdown_grace = {grace}\ntimeout = {timeout}\n"
        f"[capture]\nbatch_size = {BATCH_SIZE}\n"
    )
    return path


async def page(request):
    return PlainTextResponse("hello")


async def queue_events(veil: Veil, n: int) -> None:
    """n real requests through the app and its middleware: each is one captured event."""
    app = VeilMiddleware(Starlette(routes=[Route("/{p:path}", page)]), veil=veil)
    transport = httpx.ASGITransport(app=app, client=("198.51.100.7", 50123))
    async with httpx.AsyncClient(transport=transport, base_url="http://shop.example") as client:
        for i in range(n):
            r = await client.get(f"/item/{i}", headers={"User-Agent": CHROME})
            assert r.status_code == 200


async def timed_stop(veil: Veil) -> float:
    started = time.monotonic()
    async with asyncio.timeout(120):  # a hang fails the test instead of blocking the suite
        await veil.stop()
    return time.monotonic() - started


async def test_a_stop_with_the_collector_refusing_ends_after_one_grace_and_counts_every_event(
    tmp_path, monkeypatch, started
):
    monkeypatch.setenv("VEIL_REMOTE_SECRET", SECRET)
    veil = Veil.from_config(app_config(tmp_path, free_port(), grace=1.0))  # nothing listens
    await started(veil)
    await queue_events(veil, EVENTS)
    await asyncio.sleep(0.5)  # the writer is retrying its first batch, the others wait
    assert veil.stats().queued >= EVENTS - 2 * BATCH_SIZE

    elapsed = await timed_stop(veil)

    assert elapsed < STOP_BOUND, f"stop took {elapsed:.1f} s with a 1 s grace"
    stats = veil.stats()
    assert stats.dropped == {"store_error": EVENTS}  # every queued event, counted once
    assert stats.stored == 0 and stats.queued == 0 and not stats.running


async def test_a_collector_that_accepts_but_never_answers_does_not_hold_the_stop(
    tmp_path, monkeypatch, started
):
    """An attempt in flight at the deadline is cut off there, not at remote.timeout."""
    monkeypatch.setenv("VEIL_REMOTE_SECRET", SECRET)
    with socket.socket() as silent:  # connections complete in the backlog; nothing answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        port = silent.getsockname()[1]
        veil = Veil.from_config(app_config(tmp_path, port, grace=1.0, timeout=60.0))
        await started(veil)
        await queue_events(veil, EVENTS)
        await asyncio.sleep(0.5)  # the first batch's request is waiting for an answer

        elapsed = await timed_stop(veil)

    assert elapsed < STOP_BOUND, f"stop took {elapsed:.1f} s with a 1 s grace"
    assert veil.stats().dropped == {"store_error": EVENTS}


async def test_a_collector_back_within_the_grace_gets_every_queued_event(
    tmp_path, monkeypatch, master_key, started
):
    monkeypatch.setenv("VEIL_REMOTE_SECRET", SECRET)
    serve = Collector(tmp_path, master_key, SECRET)
    # A grace long enough for `veil serve` to start on a busy machine.
    veil = Veil.from_config(app_config(tmp_path, serve.port, grace=60.0))
    await started(veil)
    await queue_events(veil, EVENTS)
    await asyncio.sleep(0.5)  # the collector is away: nothing is written yet
    assert veil.stats().stored == 0

    stopping = asyncio.create_task(timed_stop(veil))
    await asyncio.sleep(0.5)  # the stop is retrying against a refused port
    assert not stopping.done()
    try:
        await asyncio.to_thread(serve.start)  # the collector comes back on the same port
        await stopping
    finally:
        serve.stop()

    stats = veil.stats()
    assert stats.dropped == {} and stats.stored == EVENTS
    assert rows(
        tmp_path / "collector-data" / "veil.db",
        "SELECT COUNT(*), COUNT(DISTINCT event_id) FROM event_rows WHERE source = 'request'",
    ) == [(EVENTS, EVENTS)]
