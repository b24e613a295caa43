"""veil's own HTTP endpoints, served by the middleware and by the collector alike:

- `GET /veil/veil.js`: the browser snippet (ETag, a day's cache) and `/veil/veil.<hash>.js`
  (immutable, a year's cache), brotli- or gzip-compressed when accepted (snippet.py);
- `POST /veil/e`: the snippet's beacon, validated strictly; 202 on accept, an RFC 9457 problem
  (400, 405, 413, 415, 429, 503) naming what is wrong otherwise;
- `GET/POST /veil/consent`: the visitor's consent (consent.py);
- `GET /veil/notice[?format=html|md]`: the privacy notice, rendered from the policy;
- `POST /veil/rights/human-review`: contest an automated decision;
- `/veil/rights/{access,export,correct,delete,restrict,suspend,object,complaint}`: a subject's
  own requests, and `GET /veil/rights` (+ `/veil/rights.js`), the page that makes them (rights.py);
- `POST /veil/record`: app-declared fields from the snippet's `veil.record`;
- `GET /.well-known/gpc.json`: the Global Privacy Control declaration;
- `GET /api/v1/stats`, `GET /api/v1/me` (bearer token) and `GET /api/v1/openapi.json`: the
  analysts' API (analytics.py), and `GET /dashboard` (+ its files), the analysts' dashboard
  (dashboard.py), on the collector only: the middleware never takes an app's own paths.

`ROUTES` (at the end) is the table: path -> handler, methods, whether it needs the store;
`PATHS` derives from it. HEAD is answered wherever GET is; any other method gets a 405 with
`Allow`. The paths themselves live in routes.py.
"""

import hashlib
import logging
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import parse_qs

from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from ..capture import read_cookies
from ..consent import Ledger, gpc_signal
from ..counted import CountingRules
from ..errors import Drop, FieldError, Refused
from ..guards import Guards
from ..notice import FORMATS, MEDIA_TYPES, render_notice
from ..pipeline import site_from_host
from ..runtime import Veil
from .analytics import StatsEndpoint
from .beacon import MAX_BODY_BYTES, check_content_type, parse_beacon
from .body import json_object, read_body, read_json, require_same_site
from .consent import ConsentEndpoint
from .dashboard import dashboard_file
from .etags import cached
from .origin import foreign, site_of_origin
from .problems import Problem
from .ratelimit import RateLimiter, client_of, too_many
from .rights import VERBS as RIGHTS_VERBS
from .rights import RightsEndpoint, page, page_script
from .routes import (
    BEACON_PATH,
    CONSENT_PATH,
    DASHBOARD_FILE_PATHS,
    DASHBOARD_PATH,
    GPC_PATH,
    HUMAN_REVIEW_PATH,
    ME_PATH,
    NOTICE_PATH,
    OPENAPI_PATH,
    RECORD_PATH,
    RIGHTS_PAGE_PATH,
    RIGHTS_PATHS,
    RIGHTS_SCRIPT_PATH,
    SCRIPT_PATH,
    STATS_PATH,
    route_path,
)
from .snippet import SCRIPT as SCRIPT  # re-exported: tests and apps compare against it
from .snippet import SCRIPT_HASH, accept_encoding, choose

log = logging.getLogger("veil")
PINNED_SCRIPT_PATH = f"/veil/veil.{SCRIPT_HASH}.js"


def not_open(veil: Veil) -> Problem:
    """The 503 for a request veil cannot store now: nothing of it was recorded."""
    if veil.failure is not None:  # permanent: an operator must fix it; don't hammer
        return Problem(
            503,
            "not-collecting",
            "Not collecting",
            "veil cannot store anything on this server now; nothing was recorded",
            headers={"Retry-After": "300"},
        )
    return Problem(
        503,
        "not-ready",
        "Not ready",
        "veil's store is not open yet; nothing was recorded",
        headers={"Retry-After": "5"},
    )


def _text(data: dict[str, object], key: str) -> str:
    """`data[key]`, a non-empty string of at most 1,500 characters, or the 400 naming it."""
    value = data[key]
    if not isinstance(value, str) or not 0 < len(value) <= 1500:
        raise Problem(
            400,
            "invalid-field",
            "Invalid field",
            f"{key} must be a non-empty string of at most 1500 characters",
            field=key,
        )
    return value


def method_not_allowed(allowed: tuple[str, ...]) -> Problem:
    """The 405 naming the methods a route takes, in `Allow` as RFC 9110 asks."""
    return Problem(
        405,
        "method-not-allowed",
        "Method not allowed",
        f"use {' or '.join(m for m in allowed if m != 'HEAD')}",
        headers={"Allow": ", ".join(allowed)},
    )


class Endpoints:
    """The /veil/* endpoints of one `Veil` instance, as an ASGI app (the collector mounts it
    at each of `PATHS`; the middleware calls `serve` with the path it already resolved).
    `sites_from_origin`: a collector's, whose beacons' site is their Origin's (origin.py); the
    middleware's app is one site, its Host's."""

    def __init__(self, veil: Veil, sites_from_origin: bool = False) -> None:
        self.veil = veil
        self.sites_from_origin = sites_from_origin
        ingest = veil.config.ingest
        self.sites = ingest.sites
        capture = veil.config.capture
        # what is counted (counted.py): the middleware's requests, the beacons' paths
        self.counting = CountingRules(capture.include, capture.exclude, capture.exclude_statuses)
        self.resolver = veil.resolver  # the pipeline's: one answer to "who is the client"
        self.limiter = RateLimiter(ingest.rate, ingest.burst)  # beacons
        # the permanent rows a network may add: consent records, app records, review requests
        self.writes = RateLimiter(veil.config.consent.rate, veil.config.consent.burst)
        self.consent_endpoint = ConsentEndpoint(veil, self.resolver, self.writes)
        self.rights_endpoint = RightsEndpoint(veil, self.resolver, self.writes)
        self.stats_endpoint = StatsEndpoint(veil)
        # the config is frozen: render the notice once, serve the same bytes
        self.notices = {fmt: render_notice(veil.config, fmt).encode() for fmt in FORMATS}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.serve(route_path(scope), scope, receive, send)

    async def serve(self, path: str, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a request for `path`, one of `PATHS` (below the app's root_path)."""
        if path != scope["path"]:  # mounted below a root_path: handlers see veil's own paths
            scope = {**scope, "path": path}
        route = ROUTES[path]
        method = scope["method"]
        try:
            if route.stores and not self.veil.is_open and not await self.veil.ready():
                raise not_open(self.veil)
            if method not in route.methods:
                raise method_not_allowed(route.methods)
            response = await route.handler(self, scope, receive)
        except Problem as problem:
            response = problem.response()
        except Exception as exc:  # a store locked by another process, or a bug: never a 500
            # where, not the message: a message may quote what the request carried
            where = traceback.extract_tb(exc.__traceback__)[-1]
            log.error(
                "veil endpoint %s: %s at %s:%d",
                path,
                exc.__class__.__name__,
                where.filename,
                where.lineno,
            )
            response = Problem(
                503,
                "unavailable",
                "Temporarily unavailable",
                "veil could not complete this request now; nothing was "
                "recorded that was not answered",
                headers={"Retry-After": "5"},
            ).response()
        if method == "HEAD":  # GET's status and headers (its Content-Length too), no body
            response.body = b""
        await response(scope, receive, send)

    async def script(self, scope: Scope, receive: Receive) -> Response:
        """GET /veil/veil.js (a day's cache) or /veil/veil.<hash>.js (immutable), in the best
        encoding the request accepts, each encoding with its own ETag."""
        cache = (
            "public, max-age=31536000, immutable"
            if scope["path"] == PINNED_SCRIPT_PATH
            else "public, max-age=86400"
        )
        variant = choose(accept_encoding(scope))
        # Vary on every answer, identity too: a shared cache must not hand the plain copy
        # to a client that asked for brotli, nor brotli to one that cannot decode it
        headers = {
            "Cache-Control": cache,
            "Vary": "Accept-Encoding",
            "X-Content-Type-Options": "nosniff",
        }
        if variant.encoding:
            headers["Content-Encoding"] = variant.encoding
        return cached(scope, variant.body, variant.etag, "text/javascript; charset=utf-8", headers)

    async def gpc(self, scope: Scope, receive: Receive) -> Response:
        """The GPC spec's site declaration: this site honours the signal."""
        return JSONResponse(
            {"gpc": True, "lastUpdate": self.veil.config.policy.effective.isoformat()}
        )

    async def consent(self, scope: Scope, receive: Receive) -> Response:
        return await self.consent_endpoint(scope, receive)

    async def rights(self, scope: Scope, receive: Receive) -> Response:
        return await self.rights_endpoint(scope, receive)

    async def stats(self, scope: Scope, receive: Receive) -> Response:
        return await self.stats_endpoint.stats(scope, receive)

    async def openapi(self, scope: Scope, receive: Receive) -> Response:
        return await self.stats_endpoint.openapi(scope, receive)

    async def me(self, scope: Scope, receive: Receive) -> Response:
        return await self.stats_endpoint.me(scope, receive)

    async def dashboard(self, scope: Scope, receive: Receive) -> Response:
        return dashboard_file(scope)

    async def rights_page(self, scope: Scope, receive: Receive) -> Response:
        return page() if scope["path"] == RIGHTS_PAGE_PATH else page_script()

    async def notice(self, scope: Scope, receive: Receive) -> Response:
        """GET /veil/notice[?format=html|md]: the privacy notice rendered from the policy."""
        fmt = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("format", ["html"])[-1]
        if fmt not in FORMATS:
            raise Problem(
                400,
                "unknown-format",
                "Unknown format",
                f"format must be one of {', '.join(FORMATS)}, got {fmt!r}",
                field="format",
            )
        body = self.notices[fmt]
        return cached(
            scope,
            body,
            f'"{hashlib.sha256(body).hexdigest()[:16]}"',
            MEDIA_TYPES[fmt],
            {
                "Cache-Control": "no-cache",
                "X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
            },
        )

    def _local(self) -> tuple[Ledger, Guards]:
        """The consent ledger and guards of a local store, or the 503 saying there are none."""
        running = self.veil.running
        if running is None or running.ledger is None or running.guards is None:
            raise Problem(
                503,
                "not-ready",
                "Not ready",
                "veil has no local store here",
                headers={"Retry-After": "5"},
            )
        return running.ledger, running.guards

    async def _json_post(
        self, scope: Scope, receive: Receive, what: str
    ) -> tuple[dict[str, object], dict[bytes, bytes]]:
        """The JSON object body of a same-site POST and the request's headers, or the
        Problem saying what is wrong."""
        headers = dict(scope["headers"])
        require_same_site(headers, what)
        check_content_type(headers.get(b"content-type", b""))
        self._local()  # before charging the limit: nothing could be recorded here
        if wait := self.writes.allow(client_of(self.resolver, scope, headers)[1]):
            raise too_many(
                wait, "Too many requests", f"this network sent more {what} than the limit allows"
            )
        return json_object(await read_json(scope, receive, MAX_BODY_BYTES, headers)), headers

    async def record(self, scope: Scope, receive: Receive) -> Response:
        """POST {"purpose": key, "fields": {...}}: app-declared fields about the subject whose
        cookie comes with the request (the snippet's `veil.record`)."""
        data, headers = await self._json_post(scope, receive, "records")
        ledger, guards = self._local()
        fields = data.get("fields")
        if set(data) != {"purpose", "fields"} or not isinstance(fields, dict):
            raise Problem(
                400,
                "malformed-body",
                "Malformed record",
                'send {"purpose": "<purpose>", "fields": {...}}',
            )
        cookies = read_cookies(headers.get(b"cookie"), self.veil.config.consent.secure_cookie)
        # only a subject cookie veil issued counts; a browser never speaks for an app user
        subject = ledger.subjects.browser(cookies.subject if cookies else None)
        if subject is None:
            raise Problem(
                403,
                "no-subject",
                "No consent",
                "recording about a visitor needs their consent cookie first",
            )
        try:
            await guards.record(subject, str(data["purpose"]), fields, signal=gpc_signal(headers))
        except FieldError as exc:
            raise Problem(400, "invalid-field", "Invalid record", str(exc)) from None
        except Refused as exc:
            raise Problem(
                403, exc.reason.replace("_", "-"), "Refused by the policy", str(exc)
            ) from None
        return Response(status_code=202)

    async def human_review(self, scope: Scope, receive: Receive) -> Response:
        """POST {"decision": id, "reason": text}: contest an automated decision."""
        data, _ = await self._json_post(scope, receive, "a review request")
        if set(data) != {"decision", "reason"}:
            raise Problem(
                400,
                "malformed-body",
                "Malformed request",
                'send {"decision": "<decision id>", "reason": "<why>"}',
            )
        decision, reason = _text(data, "decision"), _text(data, "reason")
        try:
            review = await self.veil.contest(decision, reason)
        except FieldError:
            raise Problem(
                404,
                "unknown-decision",
                "Unknown decision",
                "no decision has that id",
                field="decision",
            ) from None
        return JSONResponse({"review": review, "status": "requested"}, status_code=202)

    async def ingest(self, scope: Scope, receive: Receive) -> Response:
        """POST /veil/e: the snippet's beacon."""
        headers = dict(scope["headers"])
        check_content_type(headers.get(b"content-type", b""))
        origin = headers.get(b"origin")  # none from a client that is not a browser: its Host
        if origin is None and self.sites_from_origin and self.sites is not None:
            # its Host names the site then, and must be a listed one too: else any script
            # could store beacons under any site name it makes up
            site = site_from_host(headers.get(b"host", b""))
            if site not in self.sites:
                self.veil.count_drop(Drop.FOREIGN_ORIGIN)
                raise foreign(site, "Host")
        elif origin is not None and (self.sites_from_origin or self.sites is not None):
            site = site_of_origin(origin)
            if self.sites is not None and site not in self.sites:
                self.veil.count_drop(Drop.FOREIGN_ORIGIN)
                raise foreign(site)
            if self.sites_from_origin:  # the pipeline names the site from this (site_from_host)
                headers[b"host"] = site.encode() if site else b""
        beacon = parse_beacon(await read_body(scope, receive, MAX_BODY_BYTES, headers))
        # keyed on the client's /24 or /48, in memory only; when its address cannot be
        # resolved (a broken X-Forwarded-For), the peer's: a bad header never skips the limit
        if wait := self.limiter.allow(client_of(self.resolver, scope, headers)[1]):
            raise too_many(
                wait,
                "Too many beacons",
                "this network sent more beacons than the ingest limit allows",
            )
        path = beacon.get("path")
        if path is not None and not self.counting.counts_beacon(path):  # no page view
            self.veil.count_drop(Drop.EXCLUDED_PATH)
            return Response(status_code=202)
        if not self.veil.capture_beacon(scope, beacon, headers):
            if not self.veil.is_open:  # closed while the body was read (a stop, a failure)
                raise not_open(self.veil)
            raise Problem(
                503,
                "queue-full",
                "Busy",
                "the ingest queue is full; try later",
                headers={"Retry-After": "1"},
            )
        return Response(status_code=202)


Handler = Callable[[Endpoints, Scope, Receive], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Route:
    """One of veil's endpoints: its handler, the methods it takes (HEAD wherever GET: the
    same answer without a body) and whether it needs the store (503 while veil cannot store:
    never a 2xx for what would be lost; the snippet, notice and GPC declaration need none)."""

    path: str
    handler: Handler
    methods: tuple[str, ...]
    stores: bool = False
    # served by the collector only: outside /veil/, a path an app may well have of its own
    collector_only: bool = False

    def __post_init__(self) -> None:
        if "GET" in self.methods and "HEAD" not in self.methods:
            object.__setattr__(self, "methods", (*self.methods, "HEAD"))


ROUTES: dict[str, Route] = {
    route.path: route
    for route in (
        Route(SCRIPT_PATH, Endpoints.script, ("GET",)),
        Route(PINNED_SCRIPT_PATH, Endpoints.script, ("GET",)),
        Route(BEACON_PATH, Endpoints.ingest, ("POST",), stores=True),
        Route(CONSENT_PATH, Endpoints.consent, ("GET", "POST"), stores=True),
        Route(NOTICE_PATH, Endpoints.notice, ("GET",)),
        Route(HUMAN_REVIEW_PATH, Endpoints.human_review, ("POST",), stores=True),
        Route(RECORD_PATH, Endpoints.record, ("POST",), stores=True),
        Route(GPC_PATH, Endpoints.gpc, ("GET",)),
        Route(STATS_PATH, Endpoints.stats, ("GET",), stores=True, collector_only=True),
        Route(OPENAPI_PATH, Endpoints.openapi, ("GET",), collector_only=True),
        Route(ME_PATH, Endpoints.me, ("GET",), stores=True, collector_only=True),
        *(
            Route(path, Endpoints.dashboard, ("GET",), collector_only=True)
            for path in (DASHBOARD_PATH, *DASHBOARD_FILE_PATHS)
        ),
        Route(RIGHTS_PAGE_PATH, Endpoints.rights_page, ("GET",)),
        Route(RIGHTS_SCRIPT_PATH, Endpoints.rights_page, ("GET",)),
        *(
            Route(path, Endpoints.rights, RIGHTS_VERBS[path.rsplit("/", 1)[1]], stores=True)
            for path in RIGHTS_PATHS
        ),
    )
}
# what the middleware hands to `Endpoints.serve`; the collector serves every route
PATHS = frozenset(path for path, route in ROUTES.items() if not route.collector_only)
COLLECTOR_PATHS = frozenset(ROUTES)
