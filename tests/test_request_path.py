"""The middleware's dispatch on the request path: veil serves one of its own paths exactly when
the path below the app's `root_path` is one (`route_path`), whatever the root, and every
other request reaches the app and is captured once. The middleware only calls `route_path`
when a root is set; these cases pin that the shortcut decides as `route_path` would."""

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from veil import Veil, VeilMiddleware
from veil.http.endpoints import PATHS
from veil.http.routes import SCRIPT_PATH, route_path

from conftest import CHROME, scope


async def _app_page(request) -> PlainTextResponse:
    return PlainTextResponse("app")


CASES = [
    # (root_path, path, veil serves it): None is a scope without a root_path key
    (None, SCRIPT_PATH, True),
    ("", SCRIPT_PATH, True),
    ("", "/", False),
    ("", "/app/veil/veil.js", False),  # no root: a path that merely contains veil's is the app's
    ("/app", "/app/veil/veil.js", True),
    ("/app", "/app/", False),
    ("/app", "/veil/veil.js", True),  # outside the root: route_path leaves it whole
    ("/app", "/application/veil/veil.js", False),  # the root's text, below it /lication
    ("/veil", "/veil/veil/veil.js", True),
    ("/veil", "/veil/veil.js", False),  # below the root: /veil.js, the app's
]


@pytest.mark.parametrize(("root", "path", "served"), CASES)
async def test_veil_serves_exactly_the_paths_route_path_names(
    make_config, started, root, path, served
):
    # every path counts: the app's pages here end in .js, a static asset by default
    veil = Veil(make_config(capture={"exclude": []}))
    await started(veil)
    app = VeilMiddleware(Starlette(routes=[Route("/{p:path}", _app_page)]), veil=veil)
    s = scope(path, headers={"User-Agent": CHROME})
    if root is None:
        del s["root_path"]
    else:
        s["root_path"] = root
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    # the oracle below is checked too: route_path's verdict, written out per case
    assert (route_path(s) in PATHS) == served
    queued = len(veil.buffer)
    await app(s, receive, send)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    if route_path(s) in PATHS:
        assert body != b"app" and sent[0]["status"] == 200  # veil's snippet
        assert len(veil.buffer) == queued  # veil's own endpoint: no request captured
    else:
        assert body == b"app"
        assert len(veil.buffer) == queued + 1
        assert veil.buffer.take(len(veil.buffer))[-1].request_path == path
