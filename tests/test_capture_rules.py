"""What is counted (`[capture]` include, exclude, exclude_statuses; counted.py): static assets,
health checks and 404s are no page views. Over real HTTP (uvicorn) where the server's own
handling of a path matters: the attacks send raw request lines no client library rewrites."""

import http.client
import json
import os
from pathlib import Path

import pytest
from servers import ServerProcess

from veil import Veil, VeilMiddleware
from veil.config import from_dict
from veil.counted import DEFAULT_EXCLUDE, CountingRules
from veil.errors import ConfigError
from veil.http.snippet import SCRIPT

from conftest import CHROME, rows, scalar, scope

APP = '''
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from veil import VeilMiddleware


async def anything(request):
    """Every path answers; /scan/* and /gone/* as a site without them would, with their
    status; the bytes say what was asked, so a changed response shows."""
    path = request.url.path
    status = 404 if path.startswith("/scan/") else 410 if path.startswith("/gone/") else 200
    kind = "text/css" if path.lower().endswith(".css") else "text/plain"
    return Response(f"app:{path}".encode(), status, {"x-app": "1"}, media_type=kind)


bare = Starlette(routes=[Route("/{p:path}", anything, methods=["GET", "POST"])])
app = VeilMiddleware(bare, config=CONFIG)
'''

# spellings of excluded paths: case, doubled slashes, dot segments, percent-escapes
DISGUISED = [
    "/STATIC/x.CSS",
    "/static//a.css",
    "/blog/%2e%2e/app.js",
    "/blog/%252e%252e/app.JS",  # escaped twice
    "/fonts/%66ont.woff2",
    "/favicon.ico",
    "/HEALTHZ",
    "/health/",
    "//health",
    "/./readyz",
    "/.well-known/security.txt",
    "/robots.txt",
]
PAGES = ["/", "/blog/post", "/blog/app.js.html", "/blog/health"]  # counted


def served(tmp_path: Path, name: str, capture: str = "") -> ServerProcess:
    """The app above under uvicorn (`name`: `app` with veil, `bare` without), its store in
    tmp_path/<name>-data; `capture` goes into its [capture] table."""
    data = tmp_path / f"{name}-data"
    config = tmp_path / f"{name}.toml"
    config.write_text(
        f'[store]\nurl = "sqlite:///{name}-data/veil.db"\n[keys]\npath = "{name}-data/keys.db"\n'
        f"[capture]\nflush_interval = 0.05\n{capture}"
    )
    (tmp_path / "site_app.py").write_text(f"CONFIG = {str(config)!r}\n{APP}")
    server = ServerProcess.app(
        f"site_app:{name}",
        {**os.environ, "VEIL_CONFIG": str(config)},
        tmp_path / f"{name}.log",
        app_dir=tmp_path,
        config=config,
        data=data,
    )
    return server.start()


def get(server: ServerProcess, target: str, method: str = "GET") -> tuple[int, list, bytes]:
    """The request line exactly as written (http.client sends `target` untouched)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request(method, target, headers={"User-Agent": CHROME})
        r = conn.getresponse()
        headers = sorted((k.lower(), v) for k, v in r.getheaders() if k.lower() != "date")
        return r.status, headers, r.read()
    finally:
        conn.close()


def drops(server: ServerProcess) -> dict[str, int]:
    return dict(rows(server, "SELECT reason, SUM(count) FROM drops GROUP BY reason"))


def requests_stored(server: ServerProcess) -> int:
    return scalar(server, "SELECT COUNT(*) FROM event_rows WHERE source = 'request'")


# -- config --------------------------------------------------------------------------------


def test_defaults_and_exclude_empty_turns_them_off(tmp_path):
    cfg = from_dict({}, base=tmp_path).capture
    assert (cfg.include, cfg.exclude, cfg.exclude_statuses) == (None, DEFAULT_EXCLUDE, {404})
    off = from_dict({"capture": {"exclude": [], "exclude_statuses": []}}, base=tmp_path).capture
    assert (off.exclude, off.exclude_statuses) == ((), frozenset())
    rules = CountingRules(off.include, off.exclude, off.exclude_statuses)
    assert all(rules.counts(p) for p in DISGUISED)


@pytest.mark.parametrize(
    ("capture", "message"),
    [
        ({"exclude": ["*.css"]}, "capture.exclude[0]: must start with '/'"),
        ({"exclude": ["/ok", "/a**/b"]}, "capture.exclude[1]: '**' must be a whole segment"),
        ({"exclude": ["/a**/b"]}, "got '/a**/b'"),
        ({"include": ["/blog?x"]}, "capture.include[0]: must not contain '?'"),
        ({"include": [3]}, "capture.include[0]: must be a path pattern string"),
        ({"include": []}, "capture.include: is empty, which would count no page"),
        ({"exclude": "/static/**"}, "capture.exclude: must be an array, got '/static/**'"),
        ({"exclude_statuses": [404, 700]}, "capture.exclude_statuses[1]: must be an HTTP "),
        ({"exclude_statuses": ["404"]}, "from 100 to 599, got '404'"),
        ({"exclude_statuses": [True]}, "got True"),
    ],
)
def test_bad_rules_are_refused_naming_key_and_value(tmp_path, capture, message):
    with pytest.raises(ConfigError) as refused:
        from_dict({"capture": capture}, base=tmp_path)
    assert message in str(refused.value)


def test_include_narrows_and_an_exclusion_always_wins():
    rules = CountingRules(("/blog/**", "/"), DEFAULT_EXCLUDE, frozenset())
    assert [rules.counts(p) for p in ("/", "/blog", "/BLOG/a/b", "/shop", "/blog/x.css")] == [
        True,
        True,
        True,
        False,
        False,
    ]
    own = CountingRules(None, ("/private/**",), frozenset())  # your list replaces the defaults
    assert own.counts("/app.css") and own.counts("/health") and not own.counts("/Private/x")


# -- the middleware over real HTTP ---------------------------------------------------------


def test_disguised_static_and_health_paths_are_not_counted(tmp_path):
    server = served(tmp_path, "app", "exclude_statuses = []\n")  # the path rules alone decide
    try:
        for target in DISGUISED + PAGES:
            status, _, body = get(server, target)
            assert status == 200 and body.startswith(b"app:"), target
    finally:
        assert server.stop() == 0
    assert requests_stored(server) == len(PAGES)
    assert drops(server) == {"excluded_path": len(DISGUISED)}


def test_a_404_scan_of_50_paths_stores_no_event(tmp_path):
    server = served(tmp_path, "app")  # the defaults: exclude_statuses = [404]
    try:
        for i in range(50):
            assert get(server, f"/scan/wp-admin-{i}.php")[0] == 404
        assert get(server, "/gone/page")[0] == 410  # not in exclude_statuses: counted
    finally:
        assert server.stop() == 0
    assert requests_stored(server) == 1
    assert drops(server) == {"excluded_status": 50}


def test_the_apps_response_is_unchanged_for_excluded_and_counted_requests(tmp_path):
    bare = served(tmp_path, "bare")
    app = served(tmp_path, "app")
    targets = [*DISGUISED, *PAGES, "/scan/x", "/gone/y", "/static/%2e%2e/%2e%2e/etc"]
    try:
        for target in targets:
            for method in ("GET", "HEAD", "POST"):
                assert get(app, target, method) == get(bare, target, method), (method, target)
    finally:
        bare.stop()
        assert app.stop() == 0
    assert requests_stored(app) == 3 * (len(PAGES) + 2)  # the pages, /gone/y and /static/../..


# -- the middleware, in process: nothing captured before the status is known ---------------


async def test_nothing_is_captured_before_the_status_is_known(make_config, started):
    veil = await started(Veil(make_config()))
    seen: list[tuple[str, int]] = []

    async def inner(s, receive, send):
        seen.append(("app, before its start", len(veil.buffer)))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        seen.append(("app, after its start", len(veil.buffer)))
        await send({"type": "http.response.body", "body": b"x"})

    async def server_send(message):
        seen.append((f"server got {message['type']}", len(veil.buffer)))

    async def receive():
        return {"type": "http.request", "body": b""}

    await VeilMiddleware(inner, veil=veil)(scope("/page"), receive, server_send)
    assert seen == [
        ("app, before its start", 0),
        ("server got http.response.start", 0),  # handed on before anything is captured
        ("app, after its start", 1),
        ("server got http.response.body", 1),
    ]


async def test_an_app_that_fails_before_its_status_leaves_nothing_captured(make_config, started):
    veil = await started(Veil(make_config()))

    async def inner(s, receive, send):
        raise RuntimeError("the app's own bug")

    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(message):
        raise AssertionError("nothing was sent")

    with pytest.raises(RuntimeError, match="own bug"):
        await VeilMiddleware(inner, veil=veil)(scope("/page"), receive, send)
    assert len(veil.buffer) == 0


# -- the beacon endpoint: the path rules, not the status rule -------------------------------


def beacon(path: str) -> str:
    return json.dumps(
        {"screen_w": 390, "screen_h": 844, "pixel_ratio": 3, "language": "ja", "path": path}
    )


async def test_a_beacons_path_goes_through_the_rules_written_not_the_defaults(
    make_config, started_site
):
    # the defaults are for requests: a page sends a beacon, and one named like an asset is a
    # page (a dev blog's /tags/node.js)
    site = await started_site(Veil(make_config()))
    async with site.client() as client:
        for path in ("/tags/node.js", "/wiki/File:Logo.png", "/blog/post"):
            r = await client.post(
                "/veil/e", content=beacon(path), headers={"Content-Type": "text/plain"}
            )
            assert r.status_code == 202, r.text
    await site.veil.stop()
    assert scalar(site.veil, "SELECT COUNT(*) FROM event_rows WHERE source = 'beacon'") == 3
    assert dict(rows(site.veil, "SELECT reason, count FROM drops")) == {}


async def test_a_beacons_path_goes_through_an_exclude_of_your_own(make_config, started_site):
    site = await started_site(Veil(make_config(capture={"exclude": ["/admin/**", "/**/*.js"]})))
    async with site.client() as client:
        for path in ("/ADMIN//users", "/a/%2e%2e/admin/x", "/STATIC/X.JS", "/blog/post", "/"):
            r = await client.post(
                "/veil/e", content=beacon(path), headers={"Content-Type": "text/plain"}
            )
            assert r.status_code == 202, r.text  # the same answer: nothing to probe
        assert (await client.get("/veil/veil.js")).content == SCRIPT  # veil's own: not counted
    await site.veil.stop()
    assert scalar(site.veil, "SELECT COUNT(*) FROM event_rows WHERE source = 'beacon'") == 2
    assert dict(rows(site.veil, "SELECT reason, count FROM drops")) == {"excluded_path": 3}
