"""Per-request cost of VeilMiddleware vs a bare Starlette app and peer middlewares.

Direct ASGI calls (no server, no sockets) on one event loop. Every variant serves the same
hello-world app to the same realistic requests (traffic.py); rounds are interleaved
(A, B, C, ... then again, in a rotating order) and the figures are medians over rounds.

Veil's writer runs as a background task on the same loop, with the default capture config
(batch 1,000, queue 10,000). A veil round is N = 2,000 requests; the 1,000th wakes the writer,
and after the N-th response the timed window goes on until the writer has run both batches
through the pipeline and committed them. So:

- "veil" is the whole cost per request: hot path + pipeline + SQLite commit (the commit runs
  in aiosqlite's thread; waiting for it here is conservative, a server would overlap it);
- "of which request path" is the same rounds up to the N-th response: what a request pays.

Direct ASGI calls never yield to the loop, so the writer runs after the requests rather than
between them; the work is the same, only its place in the window differs. Each round ends
with the queue empty, so it is never more than N deep: nothing overflows, and no veil work
spills into another variant's round. The stats at the end must show every captured event
stored (or dropped as a bot).

    .venv/bin/python bench/middleware_overhead.py [rounds]
"""

import asyncio
import gc
import logging
import shutil
import sqlite3
import statistics
import sys
import time

import traffic
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from veil import Veil, VeilMiddleware

N = 2000  # requests per variant per round
ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 40
WARMUP_ROUNDS = 3
POLL = 0.0005  # s; a busy sleep(0) loop would fight aiosqlite's thread for the GIL
SCOPES = traffic.scopes(N, seed=7)


async def hello(request):  # async: a sync endpoint would run in a worker thread (see docs)
    return PlainTextResponse("hi")


def app(*middleware: Middleware) -> Starlette:
    return Starlette(routes=[Route("/", hello)], middleware=list(middleware))


class PassThrough:
    """The trivial pure-ASGI middleware."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        await self.app(scope, receive, send)


class BaseHTTPPassThrough(BaseHTTPMiddleware):
    async def dispatch(self, request, call_next):
        return await call_next(request)


async def receive():
    return {"type": "http.request", "body": b"", "more_body": False}


async def discard(message):
    pass


def peers() -> dict[str, Starlette]:
    """Optional third-party middlewares, if installed."""
    found = {}
    try:
        from starlette_exporter import PrometheusMiddleware

        found["starlette-exporter"] = app(Middleware(PrometheusMiddleware))
    except ImportError:
        print("(starlette-exporter not installed: skipped)")
    try:
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

        found["otel (API only, no-op)"] = app(Middleware(OpenTelemetryMiddleware))
    except ImportError:
        print("(opentelemetry-instrumentation-asgi not installed: skipped)")
        return found
    try:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            SpanExporter,
            SpanExportResult,
        )

        class Discard(SpanExporter):
            def export(self, spans):
                return SpanExportResult.SUCCESS

        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(Discard()))
        found["otel + SDK tracer"] = app(
            Middleware(OpenTelemetryMiddleware, tracer_provider=provider)
        )
    except ImportError:
        print("(opentelemetry-sdk not installed: OTel with a recording tracer skipped)")
    return found


async def check(name: str, asgi) -> None:
    """Every variant must answer 200 'hi', or its timing means nothing."""
    sent = []

    async def keep(message):
        sent.append(message)

    await asgi(dict(SCOPES[0]), receive, keep)
    if sent[0].get("status") != 200 or sent[1].get("body") != b"hi":
        raise SystemExit(f"{name}: unexpected response {sent}")


async def run_requests(asgi) -> None:
    for scope in SCOPES:
        await asgi(dict(scope), receive, discard)


def processed(veil: Veil) -> int:
    stats = veil.stats()
    return stats.stored + sum(stats.dropped.values())


async def wait_processed(veil: Veil, expected: int) -> None:
    while processed(veil) < expected:
        await asyncio.sleep(POLL)


async def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    cfg, tmp = traffic.veil_config()
    veil = Veil(cfg)
    variants = {
        "bare": app(),
        "pure-ASGI pass-through": app(Middleware(PassThrough)),
        "veil": app(Middleware(VeilMiddleware, veil=veil)),
        "BaseHTTPMiddleware": app(Middleware(BaseHTTPPassThrough)),
        **peers(),
    }
    assert N % cfg.capture.batch_size == 0 and cfg.capture.queue_size >= N
    await veil.start()
    while not veil.stats().running:
        await asyncio.sleep(0.01)
    for name, asgi in variants.items():
        await check(name, asgi)
    await veil.flush()
    captured = processed(veil)

    names = list(variants)
    per_request: dict[str, list[float]] = {n: [] for n in names}
    hot_path: list[float] = []
    for rnd in range(WARMUP_ROUNDS + ROUNDS):
        order = names[rnd % len(names) :] + names[: rnd % len(names)]
        for name in order:
            asgi = variants[name]
            gc.collect()
            t0 = time.perf_counter()
            await run_requests(asgi)
            t1 = time.perf_counter()
            if name == "veil":
                captured += N
                await wait_processed(veil, captured)
            t2 = time.perf_counter()
            if rnd >= WARMUP_ROUNDS:
                per_request[name].append((t2 - t0) / N * 1e6)
                if name == "veil":
                    hot_path.append((t1 - t0) / N * 1e6)
            await asyncio.sleep(0)  # let other tasks (OTel's exporter, veil's timer) run untimed

    per_request["  of which request path"] = hot_path
    names.insert(names.index("veil") + 1, "  of which request path")
    bare = statistics.median(per_request["bare"])
    print(f"\n{ROUNDS} interleaved rounds x {N} requests per variant; medians per request\n")
    print(f"{'variant':<28}{'µs/request':>12}{'x bare':>9}")
    for name in names:
        us = statistics.median(per_request[name])
        print(f"{name:<28}{us:>12.2f}{us / bare:>9.2f}")
    for name in ("veil", "  of which request path"):
        ratios = sorted(v / b for v, b in zip(per_request[name], per_request["bare"], strict=True))
        print(
            f"{name.strip() + ' / bare, per round:':<40} min {ratios[0]:.2f}, "
            f"median {statistics.median(ratios):.2f}, max {ratios[-1]:.2f}"
        )
    print("goal (issue 9): request path / bare <= 1.1; bench/request_path_instructions.py")
    print(f"\nevents captured by veil: {captured}; {veil.stats()}")
    await veil.stop()
    with sqlite3.connect(cfg.store.path) as db:
        stored = db.execute("SELECT COUNT(*) FROM event_rows").fetchone()[0]
    print(f"rows in the store: {stored}")
    shutil.rmtree(tmp)


if __name__ == "__main__":
    asyncio.run(main())
