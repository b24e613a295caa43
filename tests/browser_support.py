"""Real-browser test support.

A small Starlette app under real uvicorn serves the built snippet and records every POST it
receives; Debian's headless Chromium, driven by Playwright, plays the visitor.
"""

from __future__ import annotations

import html
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

ROOT = Path(__file__).resolve().parents[1]
SNIPPET = ROOT / "sdk" / "veil" / "static" / "veil.js"
CHROMIUM = Path("/usr/bin/chromium")
# Quiet, offline Chromium: no background traffic that could reach the test server or the net.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The visitor: its real screen and language must reach the beacon unchanged.
SCREEN = {"width": 1280, "height": 800}
VIEWPORT = {"width": 1280, "height": 700}
PIXEL_RATIO = 1.5
LOCALE = "de-DE"
# Privacy signals and an earlier consent, injected before the page's own scripts run.
GPC_ON = "Object.defineProperty(navigator, 'globalPrivacyControl', {get: () => true})"
STALE_CONSENT = """localStorage.setItem('veil_consent',
  JSON.stringify({p: ['browsing_history'], gpc: false}))"""
# Beacons travel asynchronously; after the expected ones arrive, wait this long for strays.
SETTLE = 0.3
# The recording server's stand-in policy for its consent answers: purpose -> (needs consent,
# collects the path). `journeys` shows the snippet takes which purposes collect the path from
# the server, `newsletter` that a consent-based purpose need not collect it.
PURPOSES = {
    "connection": (False, False),
    "browsing_history": (True, True),
    "journeys": (True, True),
    "newsletter": (True, False),
}


def require(ok: bool, why: str) -> None:
    """Skip when a tool is missing locally, but fail under CI, where a skip would pass unseen."""
    if ok:
        return
    if os.environ.get("CI"):
        pytest.fail(why, pytrace=False)
    pytest.skip(why)


@dataclass(frozen=True)
class Post:
    path: str
    host: str
    content_type: str
    body: Any


class Recorder:
    """Thread-safe log of the POSTs the server received."""

    def __init__(self) -> None:
        self._posts: list[Post] = []
        self._changed = threading.Condition()
        self.granted: set[str] = set()  # the consent endpoint's state, accumulated as veil's is

    def add(self, post: Post) -> None:
        with self._changed:
            self._posts.append(post)
            self._changed.notify_all()

    def clear(self) -> None:
        with self._changed:
            self._posts.clear()
            self.granted.clear()

    def consent_state(self, change: dict) -> dict | None:
        """Apply a consent POST and answer as `/veil/consent` does (the fields the snippet
        reads): grants accumulate, `{"withdraw": "all"}` empties them; None (a 400) for a
        grant of a purpose the policy does not declare, which changes nothing."""
        with self._changed:
            if not set(change.get("grant", ())) <= set(PURPOSES):
                return None
            if "grant" in change:
                self.granted |= set(change["grant"])
            elif change.get("withdraw") == "all":
                self.granted.clear()
            granted = set(self.granted)
        return {
            "subject": bool(granted),
            "opted_out": [],
            "purposes": {
                key: {
                    "needs_consent": needs,
                    "granted": not needs or key in granted,
                    "collected": not needs or key in granted,
                    "fields": ["path", "screen"] if path else ["screen"],
                }
                for key, (needs, path) in PURPOSES.items()
            },
        }

    def wait(self, path: str, count: int, timeout: float = 5.0) -> list[Post]:
        """All POSTs to `path` once at least `count` arrived and no more came within SETTLE."""

        def at_path() -> list[Post]:
            return [p for p in self._posts if p.path == path]

        with self._changed:
            if not self._changed.wait_for(lambda: len(at_path()) >= count, timeout):
                raise AssertionError(f"expected {count} POSTs to {path}, got {at_path()}")
        time.sleep(SETTLE)
        with self._changed:
            return at_path()


def snippet_app(recorder: Recorder) -> Starlette:
    """Serves the built snippet, pages embedding it at any path, and records POSTs."""
    snippet = SNIPPET.read_bytes()

    def page(script_attrs: str) -> HTMLResponse:
        return HTMLResponse(
            f'<!doctype html><meta charset="utf-8"><title>veil test</title>'
            f"<script {script_attrs} defer></script><p>page</p>"
        )

    async def script(request: Request) -> Response:
        return Response(snippet, media_type="text/javascript")

    async def custom_endpoints(request: Request) -> HTMLResponse:
        return page(
            'src="/veil/veil.js" data-endpoint="/collect/e" '
            'data-consent-endpoint="/collect/consent"'
        )

    async def cross_origin(request: Request) -> HTMLResponse:
        # Same server under another name, hence another origin than the page's.
        return page(f'src="http://localhost:{request.url.port}/veil/veil.js"')

    async def attrs_page(request: Request) -> HTMLResponse:
        # The script tag's attributes from the query: /attrs/x?data-endpoint=/beacons/v1
        return page(
            'src="/veil/veil.js"'
            + "".join(
                f' {html.escape(k)}="{html.escape(v)}"' for k, v in request.query_params.items()
            )
        )

    async def any_page(request: Request) -> HTMLResponse:
        return page('src="/veil/veil.js"')

    async def record(request: Request) -> Response:
        body = json.loads(await request.body())
        recorder.add(
            Post(
                request.url.path,
                request.headers["host"],
                request.headers.get("content-type", ""),
                body,
            )
        )
        if request.url.path.endswith("/consent"):
            state = recorder.consent_state(body)
            return JSONResponse(state) if state else Response(status_code=400)
        return Response(status_code=202)

    return Starlette(
        routes=[
            Route("/veil/veil.js", script),
            Route("/custom/{rest:path}", custom_endpoints),
            Route("/cross/{rest:path}", cross_origin),
            Route("/attrs/{rest:path}", attrs_page),
            Route("/{rest:path}", any_page, methods=["GET"]),
            Route("/{rest:path}", record, methods=["POST"]),
        ]
    )


@contextmanager
def uvicorn_thread(app: Any, lifespan: str = "off") -> Iterator[str]:
    """Real uvicorn serving `app` on a free loopback port, in a thread; yields its URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan=lifespan))
    thread = threading.Thread(target=server.run, args=([sock],), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(20)
        sock.close()


class LiveServer:
    """The snippet app (every POST recorded) under real uvicorn, in a thread."""

    def __init__(self) -> None:
        self.recorder = Recorder()
        self._running = uvicorn_thread(snippet_app(self.recorder))

    def __enter__(self) -> LiveServer:
        self.url = self._running.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._running.__exit__(None, None, None)


@contextmanager
def launch_chromium(*extra_args: str) -> Iterator[Any]:
    """Debian's Chromium under Playwright; Playwright's own browser downloads are never used."""
    require(CHROMIUM.exists(), f"{CHROMIUM} missing: run .ci/install-browser")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require(False, "playwright is not installed (pip install -e '.[dev]')")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), args=[*CHROMIUM_ARGS, *extra_args]
        )
        try:
            yield browser
        finally:
            browser.close()


class Visitor:
    """One browser context (cookies, storage) with a fixed screen and locale, one tab.

    Uncaught page errors are collected in `errors`; init scripts run before the page's own.
    """

    def __init__(self, browser: Any, base_url: str, *init_scripts: str) -> None:
        self.context = browser.new_context(
            base_url=base_url,
            screen=SCREEN,
            viewport=VIEWPORT,
            device_scale_factor=PIXEL_RATIO,
            locale=LOCALE,
        )
        for init in init_scripts:
            self.context.add_init_script(init)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))

    def open(self, path: str = "/") -> None:
        self.page.goto(path)

    def push(self, path: str) -> None:
        """An SPA navigation."""
        self.page.evaluate("path => history.pushState({}, '', path)", path)

    def js(self, expression: str, arg: Any = None) -> Any:
        return self.page.evaluate(expression, arg)

    def close(self) -> None:
        self.context.close()
