"""`GET /dashboard`: the analysts' dashboard, on the collector only, and the files it loads.

The page is static (static/dashboard.html, .js, .css, and the chart library js/build.mjs
bundles into static/chartist.js and .css); it reads `/api/v1/me` and `/api/v1/stats` with the
token the analyst pastes, kept in the tab's sessionStorage and sent as `Authorization:
Bearer`: no cookie, so no request another site makes can carry the analyst's authority.

Its CSP allows no inline script and no inline style but two exact style attributes, by hash:
the ones the chart library sets on the SVG it draws ('unsafe-hashes': that string and no
other). The page is `no-store`; its files are revalidated on every load (`no-cache`).
"""

import base64
import hashlib
import importlib.resources

from starlette.responses import Response
from starlette.types import Scope

from .etags import cached
from .routes import DASHBOARD_FILES, DASHBOARD_PATH

_static = importlib.resources.files("veil").joinpath("static")
_MEDIA = {"js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8"}
PAGE = _static.joinpath("dashboard.html").read_bytes()
# path -> (body, media type, ETag): revalidated on every load, sent again only when changed
FILES = {
    f"{DASHBOARD_PATH}/{name}": (
        body := _static.joinpath(name).read_bytes(),
        _MEDIA[name.rsplit(".")[-1]],
        '"' + hashlib.sha256(body).hexdigest()[:32] + '"',
    )
    for name in DASHBOARD_FILES
}
# chartist's createSvg (default size) and its axis labels' foreignObject
CHART_STYLE_ATTRIBUTES = ("width: 100%; height: 100%;", "overflow: visible;")


def _hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


PAGE_CSP = (
    "default-src 'none'; script-src 'self'; connect-src 'self'; img-src 'self'; "
    f"style-src 'self' 'unsafe-hashes' {' '.join(map(_hash, CHART_STYLE_ATTRIBUTES))}; "
    "form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)
_COMMON = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
}
PAGE_HEADERS = {
    **_COMMON,
    "Cache-Control": "no-store",
    "Content-Security-Policy": PAGE_CSP,
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def dashboard_file(scope: Scope) -> Response:
    """The page at DASHBOARD_PATH, or one of the files it loads (304 when unchanged)."""
    path = scope["path"]
    if path == DASHBOARD_PATH:
        return Response(PAGE, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)
    body, media_type, etag = FILES[path]
    return cached(scope, body, etag, media_type, {**_COMMON, "Cache-Control": "no-cache"})
