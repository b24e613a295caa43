"""Each framework's recipe in examples/, run as a user runs it: real uvicorn (or the
framework's own test client), real HTTP, the real SQLite store.

For every recipe: the snippet is served at /veil/veil.js, a page request and a beacon are
stored, the app's own response is what it is with veil switched off, the writer starts once per
Veil and stops cleanly. Test clients used twice in a row (each on its own event loop) store
both times, without a CancelledError. The middleware is idempotent per Veil, honours
`root_path`, and can be switched off.
"""

import asyncio
import importlib
import logging
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import httpx
import pytest
import uvicorn
from servers import ROOT
from starlette.applications import Starlette
from starlette.responses import HTMLResponse, PlainTextResponse
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from veil import Veil, VeilError, VeilMiddleware
from veil.http.endpoints import SCRIPT, SCRIPT_HASH

from browser_support import LOCALE, SCREEN, launch_chromium
from conftest import CHROME, rows

BEACON = b'{"screen_w": 1280, "screen_h": 800, "pixel_ratio": 2, "language": "de-CH"}'
TEXT = {"Content-Type": "text/plain"}
PEER = ("198.51.100.7", 50123)  # a test client's peer must be an address, or veil drops it
RECIPES = {
    "starlette_app": "app",
    "fastapi_app": "app",
    "litestar_app": "app",
    "django_app": "application",
    "quart_app": "app",
}


@pytest.fixture
def config(tmp_path, monkeypatch) -> Path:
    """$VEIL_CONFIG for the recipes, which read it at import, as a user's app does."""
    path = tmp_path / "veil.toml"
    path.write_text(
        '[store]\nurl = "sqlite:///data/veil.db"\n[keys]\npath = "data/keys.db"\n'
        "[capture]\nflush_interval = 0.05\n"
    )
    monkeypatch.setenv("VEIL_CONFIG", str(path))
    monkeypatch.delenv("VEIL_DISABLED", raising=False)
    return path


def recipe(name: str) -> ModuleType:
    """examples/<name>.py, imported afresh (its module-level Veil reads the environment)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    module = f"examples.{name}"
    if module in sys.modules:
        return importlib.reload(sys.modules[module])
    return importlib.import_module(module)


class Launches:
    """Counts the writers a Veil starts (one per event loop it serves)."""

    def __init__(self, veil: Veil) -> None:
        self.count = 0
        launch = veil._launch

        def counted(loop):
            self.count += 1
            launch(loop)

        veil._launch = counted


@contextmanager
def uvicorn_serving(app, **options) -> Iterator[str]:
    """Real uvicorn on a free loopback port, in a thread; stopped as on SIGINT (lifespan
    shutdown included), and it must stop cleanly."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    options = {"lifespan": "on", **options}
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, proxy_headers=False, **options)
    )
    failures: list[BaseException] = []

    def serve() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(20)
        sock.close()
    assert not thread.is_alive() and not failures, failures


@contextmanager
def veil_log() -> Iterator[list[logging.LogRecord]]:
    """veil's log records, caught on its own logger: Litestar reconfigures the root one."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logger = logging.getLogger("veil")
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def stored(config: Path) -> list[tuple]:
    return rows(
        config.parent / "data" / "veil.db",
        "SELECT source, browser, language FROM event_rows ORDER BY source",
    )


def drops(config: Path) -> dict[str, int]:
    return dict(
        rows(
            config.parent / "data" / "veil.db",
            "SELECT reason, SUM(count) FROM drops GROUP BY reason",
        )
    )


def own_response(r: httpx.Response) -> tuple:
    """What the app answered, less what the server adds per response."""
    headers = {k: v for k, v in r.headers.items() if k not in ("date", "server")}
    return r.status_code, headers, r.content


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_under_uvicorn(name, config, monkeypatch, caplog):
    caplog.set_level(logging.WARNING)
    # veil off: the app alone (the pass-through creates no file). Django does not speak the
    # lifespan protocol, which uvicorn's default ("auto") tolerates.
    monkeypatch.setenv("VEIL_DISABLED", "1")
    off = recipe(name)
    assert not off.veil.enabled
    with uvicorn_serving(getattr(off, RECIPES[name]), lifespan="auto") as url:
        bare = own_response(httpx.get(f"{url}/", headers={"User-Agent": CHROME}))
        assert httpx.get(f"{url}/veil/veil.js").content != SCRIPT
    assert not (config.parent / "data").exists()

    monkeypatch.delenv("VEIL_DISABLED")
    on = recipe(name)
    veil = on.veil
    launches = Launches(veil)
    with (
        uvicorn_serving(getattr(on, RECIPES[name])) as url,
        httpx.Client(base_url=url, headers={"User-Agent": CHROME}) as client,
    ):
        assert veil.is_open  # the lifespan opened it (Django's is answered by veil)
        assert own_response(client.get("/")) == bare
        script = client.get("/veil/veil.js")
        assert script.status_code == 200 and script.content == SCRIPT
        assert client.post("/veil/e", content=BEACON, headers=TEXT).status_code == 202
    assert launches.count == 1
    assert not veil.is_open and veil.stats().queued == 0  # the shutdown flushed and closed
    assert stored(config) == [("beacon", "Chrome", "de"), ("request", "Chrome", None)]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_two_starlette_test_clients_in_a_row_both_store(config):
    """FastAPI's TestClient is Starlette's; each session runs on an event loop of its own."""
    for name in ("starlette_app", "fastapi_app"):
        module = recipe(name)
        launches = Launches(module.veil)
        for _ in range(2):  # with lifespan
            with TestClient(module.app, client=PEER) as client:
                assert client.get("/", headers={"User-Agent": CHROME}).status_code == 200
                assert (
                    client.post(
                        "/veil/e", content=BEACON, headers={**TEXT, "User-Agent": CHROME}
                    ).status_code
                    == 202
                )
        for _ in range(2):  # without: every request on a loop of its own, no lifespan
            client = TestClient(module.app, client=PEER)
            assert client.get("/", headers={"User-Agent": CHROME}).status_code == 200
            assert (
                client.post(
                    "/veil/e", content=BEACON, headers={**TEXT, "User-Agent": CHROME}
                ).status_code
                == 202
            )
        assert launches.count == 6  # 2 sessions + 4 lone requests, one writer each
        assert not module.veil.is_open
    assert stored(config).count(("beacon", "Chrome", "de")) == 8
    assert stored(config).count(("request", "Chrome", None)) == 8


def test_two_quart_test_sessions_in_a_row_both_store(config):
    module = recipe("quart_app")
    peer = {"client": PEER}

    async def session() -> None:
        async with module.app.test_app() as test_app:
            client = test_app.test_client()
            page = await client.get("/", headers={"User-Agent": CHROME}, scope_base=peer)
            assert page.status_code == 200
            r = await client.post(
                "/veil/e", data=BEACON, scope_base=peer, headers={**TEXT, "User-Agent": CHROME}
            )
            assert r.status_code == 202

    for _ in range(2):
        asyncio.run(session())  # a new event loop each time, as two tests would have
    assert stored(config) == [("beacon", "Chrome", "de")] * 2 + [("request", "Chrome", None)] * 2


def test_two_litestar_test_clients_in_a_row(config):
    from litestar.testing import TestClient as LitestarClient

    module = recipe("litestar_app")
    for _ in range(2):
        with LitestarClient(app=module.app) as client:
            assert client.get("/").status_code == 200
            assert client.get("/veil/veil.js").content == SCRIPT
            assert client.post("/veil/e", content=BEACON, headers=TEXT).status_code == 202
    # Litestar's test client calls itself "testclient", not an address: counted, not stored
    assert drops(config) == {"invalid_client": 4} and stored(config) == []


def test_litestar_route_middleware_shares_one_veil_and_says_where_it_belongs(config):
    from litestar import Litestar, get
    from litestar.middleware import DefineMiddleware
    from litestar.testing import TestClient as LitestarClient

    def ok() -> str:
        return "ok"

    handlers = [get(f"/{n}", name=n, sync_to_thread=False)(ok) for n in "abcde"]
    shared = Veil.shared()  # what VeilMiddleware without a veil uses: one per config file
    launches = Launches(shared)
    app = Litestar(route_handlers=handlers, middleware=[DefineMiddleware(VeilMiddleware)])
    with veil_log() as records, LitestarClient(app=app) as client:
        for n in "abcde":
            assert client.get(f"/{n}").text == "ok"
        assert client.get("/veil/veil.js").status_code == 404  # routing came first
    assert launches.count == 1  # five route middlewares, one Veil, one writer
    warnings = [r.getMessage() for r in records if "route middleware" in r.getMessage()]
    assert len(warnings) == 1 and "VeilMiddleware(Litestar(...), veil=veil)" in warnings[0]
    assert drops(config) == {"invalid_client": 5}


async def test_middlewares_around_one_veil_share_one_writer(config):
    veil = Veil.from_config()
    launches = Launches(veil)

    async def page(request):
        return PlainTextResponse("hi")

    inner = VeilMiddleware(Starlette(routes=[Route("/", page)]), veil=veil)
    outer = VeilMiddleware(Starlette(routes=[Mount("/", inner)]), veil=veil)
    assert outer.endpoints is inner.endpoints  # one rate limiter per Veil
    await veil.start()
    await veil.start()  # a second app sharing this Veil
    await veil.stop()
    assert veil.is_open  # the other app still runs
    await veil.stop()
    assert not veil.is_open and launches.count == 1


def test_root_path_mounted_app_serves_veil_below_its_mount(config):
    veil = Veil.from_config()

    async def page(request):
        return HTMLResponse('<script src="veil/veil.js" defer></script>')

    shop = VeilMiddleware(Starlette(routes=[Route("/", page)]), veil=veil)
    site = Starlette(routes=[Mount("/app", app=shop)])
    with TestClient(site, client=PEER) as client:
        assert client.get("/app/veil/veil.js").content == SCRIPT
        assert client.get("/veil/veil.js").status_code == 404  # not veil's: the site's
        assert (
            client.post(
                "/app/veil/e", content=BEACON, headers={**TEXT, "User-Agent": CHROME}
            ).status_code
            == 202
        )
        r = client.get(f"/app/veil/veil.{SCRIPT_HASH}.js")
        assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert stored(config) == [("beacon", "Chrome", "de")]


def test_root_path_behind_a_prefix_stripping_proxy(config):
    """uvicorn --root-path /app: the proxy strips /app, uvicorn puts it back into the scope."""
    module = recipe("starlette_app")
    with uvicorn_serving(module.app, root_path="/app") as url:
        assert httpx.get(f"{url}/veil/veil.js").content == SCRIPT
        assert (
            httpx.post(
                f"{url}/veil/e", content=BEACON, headers={**TEXT, "User-Agent": CHROME}
            ).status_code
            == 202
        )
    assert stored(config) == [("beacon", "Chrome", "de")]


def test_a_browser_on_a_mounted_app_beacons_below_the_mount(config):
    """The snippet posts beside itself: /app/veil/veil.js reports to /app/veil/e."""
    veil = Veil.from_config()

    async def page(request):
        return HTMLResponse(
            "<!doctype html><title>shop</title>"
            '<script src="/app/veil/veil.js" defer></script><p>shop</p>'
        )

    shop = VeilMiddleware(Starlette(routes=[Route("/", page)]), veil=veil)
    site = Starlette(routes=[Mount("/app", app=shop)])
    with uvicorn_serving(site) as url, launch_chromium() as browser:
        context = browser.new_context(screen=SCREEN, locale=LOCALE)
        try:
            tab = context.new_page()
            with tab.expect_response(lambda r: r.url.endswith("/app/veil/e")) as beacon:
                tab.goto(f"{url}/app/")
            assert beacon.value.status == 202
        finally:
            context.close()
    languages = [r[2] for r in stored(config) if r[0] == "beacon"]
    assert languages == ["de"]


def test_veil_switched_off_is_a_pass_through_that_creates_nothing(config, monkeypatch):
    monkeypatch.setenv("VEIL_DISABLED", "1")
    for veil in (Veil.from_config(), Veil.from_config(enabled=False)):
        assert not veil.enabled

        async def page(request):
            return PlainTextResponse("hi")

        app = VeilMiddleware(Starlette(routes=[Route("/", page)]), veil=veil)
        for _ in range(2):
            with TestClient(app, client=PEER) as client:
                assert client.get("/").text == "hi"
                assert client.get("/veil/veil.js").status_code == 404  # the app's answer
                assert client.post("/veil/e", content=BEACON).status_code == 404
        assert veil.stats().queued == 0
        with pytest.raises(VeilError, match="disabled"):
            asyncio.run(veil.grant("user-1", ["browsing_history"]))
    assert list(config.parent.iterdir()) == [config]  # no data dir, keystore or dev key
