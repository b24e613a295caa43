"""The collector: a Starlette app many apps and browsers send to.

- `/`: a demo page that loads the snippet, so a new user sees data flowing within a minute;
- `/veil/veil.js`, `POST /veil/e`: the snippet and its beacon (the same code the middleware
  serves);
- `POST /veil/batch`: signed batches from remote middlewares; answered 200 only once stored;
- `/healthz`: liveness and the writer's counters.

`create_app(config)` is one process: its Veil's in-process BatchWriter runs the pipeline and
the store. `create_app(config, writer_socket=path)` is an HTTP worker of `veil serve`
(worker.py): beacons are parsed, validated and enqueued here, and a Forwarder sends them to
the writer process, which runs the pipeline and the store for every worker. In a worker,
`/veil/batch` is verified and decoded here and forwarded to the writer process, answered 200
only once the writer has stored it; consent, app records and review requests (rare, and
answered only once recorded) are written by the worker straight to the store's ledger (SQLite
in WAL mode takes writers from several processes, one at a time). Rate limits are kept in
memory per process: with N workers, a network may send up to N times the ingest limit.
"""

import logging
import os
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from veil import Veil, VeilError
from veil.capture import CaptureBuffer
from veil.config import Config
from veil.errors import BatchInvalid, BatchUnauthenticated, RowsRefused
from veil.http.body import ByteBudget, declared_length, read_exactly
from veil.http.endpoints import COLLECTOR_PATHS, PINNED_SCRIPT_PATH, Endpoints
from veil.http.problems import Problem
from veil.http.routes import BEACON_PATH
from veil.store.wire import check_headers, decode_batch, load_secret, verify

from .forwarder import Forwarder, forward_batch

log = logging.getLogger("veil.collector")
BATCH_PATH = "/veil/batch"
MAX_BATCH_BYTES = 16 * 1024 * 1024
# Bodies not yet authenticated held in memory at once, whatever the number of senders: two
# full batches. A sender over it gets 503 + Retry-After (the app's writer retries).
UNAUTHENTICATED_BYTES = 2 * MAX_BATCH_BYTES
BODY_DEADLINE = 60.0  # seconds for a batch body to arrive once its headers have

DEMO_PAGE = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>veil collector</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}}
code{{background:#f3f3f3;padding:0 .2em}}</style>
<script src="{PINNED_SCRIPT_PATH}" defer></script></head>
<body><h1>veil is collecting</h1>
<p>This page loaded the snippet, which just sent one beacon to <code>{BEACON_PATH}</code>:
your screen size, pixel ratio and browser language. The collector added what the request
itself carries (OS, browser, device, language settings, and a pseudonym of your address and
user agent under today's key) and stored nothing else: no cookie, no raw IP, no user-agent
string.</p>
<p>Events stored by this collector so far: <strong id="stored">…</strong>
(<a href="/healthz">/healthz</a>). Ask the store: <code>veil query --by browser</code>.</p>
<p>Consent-based purposes collect nothing until you agree:
<button onclick="veil.consent(['browsing_history'])">Consent to browsing history</button>
<button onclick="veil.optOut()">Withdraw</button>
(then <a href="/veil/consent">see your consent</a>, and the
<a href="/veil/notice">privacy notice</a> generated from the policy).</p>
<p>Embed it on your own pages with
<code>&lt;script src="{{origin}}/veil/veil.js" defer&gt;&lt;/script&gt;</code>.</p>
<script>
fetch("/healthz").then(r => r.json()).then(h => {{
  document.getElementById("stored").textContent = h.stored + h.queued;
}}).catch(() => {{}});
</script></body></html>"""


class RequiredLifespan:
    """The collector's lifespan: open the store, or refuse to start.

    A collector that cannot store would acknowledge beacons and lose them, so a permanent open
    failure (wrong master key, a policy changed without a new version, …) fails the lifespan
    startup with one line naming the problem, and the server exits non-zero. A transient one
    (the volume not mounted yet) is retried while /healthz and the endpoints answer 503.
    """

    def __init__(self, app: ASGIApp, veil: Veil) -> None:
        self.app = app
        self.veil = veil

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.veil.start(required=True)
                except VeilError as exc:
                    await send(
                        {"type": "lifespan.startup.failed", "message": f"veil cannot start: {exc}"}
                    )
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.veil.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return


class CollectorApp(Starlette):
    """The collector's Starlette app, with the beacon going straight to veil's endpoint: the
    middleware stack and the router (six routes tried in turn) cost more than the endpoint
    itself, 22.8 vs 14.4 µs a beacon over direct ASGI (bare Starlette: 11.1 µs). The
    endpoint answers every error itself (never raises); anything else takes the usual way."""

    def __init__(self, endpoints: Endpoints, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.endpoints = endpoints

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == BEACON_PATH and not scope.get("root_path"):
            await self.endpoints.serve(BEACON_PATH, scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def _batch_problem(refused: BatchInvalid) -> Problem:
    """How a batch the wire format refused is answered: 401 (saying how to sign) when it is
    not authenticated, 400 when it is signed but not a batch this collector can store."""
    if isinstance(refused, BatchUnauthenticated):
        return Problem(
            401,
            refused.kind,
            refused.title,
            refused.detail,
            field=refused.field,
            headers={"WWW-Authenticate": "X-Veil-Signature"},
        )
    return Problem(400, refused.kind, refused.title, refused.detail, field=refused.field)


def create_app(config: Config, *, writer_socket: Path | None = None) -> Starlette:
    """The collector app; with `writer_socket`, an HTTP worker feeding that writer."""
    # a collector collects: VEIL_DISABLED is for apps' tests
    if writer_socket is None:
        veil = Veil(config, enabled=True)
    else:
        socket = writer_socket

        def forwarder(buffer: CaptureBuffer) -> Forwarder:
            return Forwarder(buffer, socket, config.capture, config.remote.shutdown_grace)

        veil = Veil(config, enabled=True, drain=forwarder)
    # an ASGI app: Route passes it every method; a beacon's site is its Origin's (origin.py)
    endpoints = Endpoints(veil, sites_from_origin=True)
    secret = load_secret(config.remote.secret_file)

    async def demo(request: Request) -> HTMLResponse:
        origin = f"{request.url.scheme}://{request.url.netloc}"
        return HTMLResponse(DEMO_PAGE.replace("{origin}", origin))

    async def healthz(request: Request) -> JSONResponse:
        s = veil.stats()
        writer = veil.writer  # in a worker: what the writer process holds counts as queued
        held = writer.held if isinstance(writer, Forwarder) else 0
        return JSONResponse(
            {
                "status": "ok" if s.running else "starting",
                "queued": s.queued + held,
                "stored": s.stored,
                "dropped": s.dropped,
                "pid": os.getpid(),  # which process answered (a worker, under veil serve)
            },
            status_code=200 if s.running else 503,
        )

    unauthenticated = ByteBudget(UNAUTHENTICATED_BYTES)

    async def batch(request: Request) -> Response:
        try:
            if secret is None:
                raise Problem(
                    404,
                    "batch-disabled",
                    "Batch endpoint disabled",
                    "set $VEIL_REMOTE_SECRET or remote.secret_file on the collector",
                )
            # Authenticate as far as headers allow, and bound the body, before reading a byte
            headers = dict(request.scope["headers"])
            signed = check_headers(secret, headers)
            length = declared_length(headers, MAX_BATCH_BYTES)
            with unauthenticated.reserve(length):
                body = await read_exactly(request.receive, length, BODY_DEADLINE)
                verify(secret, signed, body)
            rows, drops, day, batch_id = decode_batch(body)
            store = veil.store  # set whenever veil is open
            if store is None or not veil.is_open:  # not open yet, or stopping: not a 200
                raise Problem(
                    503,
                    "not-ready",
                    "Not ready",
                    "the store is not open",
                    headers={"Retry-After": "1"},
                )
            if writer_socket is not None:  # the writer process stores it, then answers
                status, detail = await forward_batch(writer_socket, rows, drops, day, batch_id)
                if status == 422:
                    raise Problem(422, "not-stored", "Batch not stored", detail)
                if status != 200:
                    raise Problem(
                        503, "not-stored", "Batch not stored", detail, headers={"Retry-After": "1"}
                    )
                return JSONResponse({"stored": len(rows)})
            try:
                await store.write(rows, drops, day, batch=batch_id)
            except RowsRefused as exc:  # for good: the sender must not retry these rows
                raise Problem(422, "not-stored", "Batch not stored", str(exc)) from None
            except Exception as exc:  # the store failed now: the sender retries
                log.warning("a batch was not stored: %s", exc.__class__.__name__)
                raise Problem(
                    503,
                    "not-stored",
                    "Batch not stored",
                    "the store could not write the batch now; retry later",
                    headers={"Retry-After": "1"},
                ) from None
        except BatchInvalid as refused:
            return _batch_problem(refused).response()
        except Problem as problem:
            return problem.response()
        return JSONResponse({"stored": len(rows)})

    app = CollectorApp(
        endpoints,
        routes=[
            Route("/", demo),
            Route("/healthz", healthz),
            Route(BATCH_PATH, batch, methods=["POST"]),
            *(Route(path, endpoints) for path in sorted(COLLECTOR_PATHS)),
        ],
        middleware=[Middleware(RequiredLifespan, veil=veil)],
    )
    app.state.veil = veil
    return app
