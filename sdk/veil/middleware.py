"""`VeilMiddleware`: a pure ASGI middleware (never BaseHTTPMiddleware, which costs ~100 µs).

It serves veil's own endpoints (`/veil/veil.js`, `POST /veil/e`). For every other HTTP
request it copies the listed fields onto the capture buffer and calls the app
with the original scope, receive and send: the response is never touched. It starts veil's
writer on lifespan startup and flushes it on shutdown.
"""

import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .endpoints import PATHS, Endpoints
from .runtime import Veil

log = logging.getLogger("veil")


class VeilMiddleware:
    def __init__(self, app: ASGIApp, veil: Veil | None = None, config: str | None = None) -> None:
        self.app = app
        self.veil = veil if veil is not None else Veil.from_config(config)
        self.endpoints = Endpoints(self.veil)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if scope["path"] in PATHS:  # veil's own snippet and beacon endpoints
                await self.endpoints(scope, receive, send)
                return
            try:
                self.veil.capture_request(scope)
            except Exception:  # telemetry never hurts the host app
                self.veil.buffer.errors += 1
            await self.app(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self.app(scope, self._lifespan_receive(receive), send)
        else:
            await self.app(scope, receive, send)

    def _lifespan_receive(self, receive: Receive) -> Receive:
        async def wrapped() -> Message:
            message = await receive()
            try:
                if message["type"] == "lifespan.startup":
                    await self.veil.start()
                elif message["type"] == "lifespan.shutdown":
                    await self.veil.stop()
            except Exception:
                log.exception("veil lifespan hook failed; the app goes on without it")
            return message

        return wrapped
