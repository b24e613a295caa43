"""`VeilMiddleware`: a pure ASGI middleware (never BaseHTTPMiddleware, which costs ~100 µs).

It serves veil's own endpoints (`/veil/veil.js`, `POST /veil/e`, …) below the app's
`root_path` (an app mounted at /app serves /app/veil/veil.js). For every other HTTP request
that is a page view (`[capture]` rules, counted.py: not a static asset, a health check, or a
404) it copies the listed fields onto the capture buffer; it calls the app with the original
scope and receive, and a send that passes every message on unchanged, first, and only then
captures the request if its status counts: the response is never touched nor delayed, and
nothing is captured before the status is known. It starts veil's writer on lifespan startup
and flushes it on shutdown; an app that does not speak the lifespan protocol (Django's
ASGIHandler) gets it answered by the middleware, so the writer still starts and flushes.

Idempotent per `Veil`: any number of middleware instances around one Veil share its writer and
its endpoints (one rate limiter). Without a `veil`, the middleware uses `Veil.shared(config)`,
the process's one Veil for that config file, never one per instance: a framework that builds
middleware per route (Litestar's `middleware=[...]`) does not start a writer per route. A
disabled Veil (`VEIL_DISABLED=1`, `enabled=False`) makes the middleware a pass-through.
"""

import logging
import os
import weakref
from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import Drop
from ..runtime import Veil
from .endpoints import PATHS, Endpoints
from .routes import route_path

log = logging.getLogger("veil")
# One Endpoints per Veil, whichever middleware instance asks: one rate limiter, one notice.
_ENDPOINTS: "weakref.WeakKeyDictionary[Veil, Endpoints]" = weakref.WeakKeyDictionary()
_WARNED_ROUTE_LEVEL: "weakref.WeakSet[Veil]" = weakref.WeakSet()


def endpoints_for(veil: Veil) -> Endpoints:
    endpoints = _ENDPOINTS.get(veil)
    if endpoints is None:
        endpoints = _ENDPOINTS[veil] = Endpoints(veil)
    return endpoints


class VeilMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        veil: Veil | None = None,
        config: str | os.PathLike[str] | None = None,
    ) -> None:
        self.app = app
        self.veil = veil if veil is not None else Veil.shared(config)
        self.enabled = self.veil.enabled
        self.endpoints = endpoints_for(self.veil) if self.enabled else None
        counting = self.endpoints.counting if self.endpoints is not None else None
        # read here on every request: the path -> counted dict (counted.py), the statuses
        self._known = counting.known if counting is not None else {}
        self._statuses = counting.statuses if counting is not None else frozenset()
        self._placement_checked = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoints = self.endpoints  # None exactly when veil is disabled
        if scope["type"] == "http" and endpoints is not None:
            path: str = scope["path"]
            if scope.get("root_path"):  # veil's routes sit below the app's mount point
                path = route_path(scope)  # a call only then: ~1,000 instructions a request
            if path in PATHS:  # veil's own snippet and beacon endpoints
                await endpoints.serve(path, scope, receive, send)
                return
            if not self._placement_checked:
                self._check_placement(scope)
            try:
                counted = self._known.get(scope["path"])
                if counted is None:
                    counted = endpoints.counting.decide(scope["path"])
                if not counted:  # a static asset, a health check: no page view
                    self.veil.count_drop(Drop.EXCLUDED_PATH)
                elif self._statuses:  # a 404 is none either: capture once the status is known
                    send = self._after_status(scope, send)
                else:
                    self.veil.capture_request(scope)
            except Exception:  # telemetry never hurts the host app
                self.veil.buffer.errors += 1
            await self.app(scope, receive, send)
        elif scope["type"] == "lifespan" and self.enabled:
            await self._lifespan(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def _after_status(self, scope: Scope, send: Send) -> Send:
        """The send to give the app: `send`, then the request captured if its status counts."""
        veil, statuses = self.veil, self._statuses
        # what capture reads, as the request came: routing and inner middleware may rewrite
        # the scope in place before the status is known
        scope = {"path": scope["path"], "client": scope.get("client"), "headers": scope["headers"]}

        async def send_then_capture(message: Message) -> None:
            await send(message)  # the app's message first, as it is
            if message["type"] == "http.response.start":
                try:
                    if message["status"] in statuses:  # a 404: a scan, a dead link
                        veil.count_drop(Drop.EXCLUDED_STATUS)
                    else:
                        veil.capture_request(scope)
                except Exception:  # telemetry never hurts the host app
                    veil.buffer.errors += 1

        return send_then_capture

    def _check_placement(self, scope: Scope) -> None:
        """Litestar runs `middleware=[...]` only for matched routes, after its own routing:
        /veil/* would never reach veil there, and no lifespan either. Say so, once."""
        self._placement_checked = True
        if "litestar_app" in scope and self.veil not in _WARNED_ROUTE_LEVEL:
            _WARNED_ROUTE_LEVEL.add(self.veil)
            log.warning(
                "VeilMiddleware is running as Litestar route middleware: /veil/* is "
                "not served there. Wrap the application instead: "
                "app = VeilMiddleware(Litestar(...), veil=veil)"
            )

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False  # whether the app took the lifespan.startup message

        async def wrapped() -> Message:
            nonlocal started
            message = await receive()
            if message["type"] == "lifespan.startup":
                started = True
                await self._hook(self.veil.start)
            elif message["type"] == "lifespan.shutdown":
                await self._hook(self.veil.stop)
            return message

        try:
            await self.app(scope, wrapped, send)
        except Exception:
            if started:
                raise  # the app's own startup or shutdown failed: the server reports it
        if not started:
            # The app does not speak lifespan (Django raises on the scope; some apps just
            # return): answer it here, so veil's writer still starts and flushes at shutdown.
            await self._own_lifespan(receive, send)

    async def _own_lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self._hook(self.veil.start)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self._hook(self.veil.stop)
                await send({"type": "lifespan.shutdown.complete"})
                return

    @staticmethod
    async def _hook(step: Callable[[], Awaitable[None]]) -> None:
        try:
            await step()
        except Exception:
            log.exception("veil lifespan hook failed; the app goes on without it")
