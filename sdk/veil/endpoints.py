"""veil's own HTTP endpoints, served by the middleware and by the collector alike:

- `GET /veil/veil.js`: the browser snippet (ETag, a day's cache) and `/veil/veil.<hash>.js`
  (immutable, a year's cache);
- `POST /veil/e`: the snippet's beacon, validated strictly; 202 on accept, an RFC 9457 problem
  (400, 405, 413, 415, 429, 503) naming what is wrong otherwise;
- `GET/POST /veil/consent`: the visitor's consent (consent_endpoint.py);
- `GET /veil/notice[?format=html|md]`: the privacy notice, rendered from the policy;
- `POST /veil/rights/human-review`: contest an automated decision;
- `POST /veil/record`: app-declared fields from the snippet's `veil.record`;
- `GET /.well-known/gpc.json`: the Global Privacy Control declaration.
"""

import hashlib
import importlib.resources
import logging
import traceback
from urllib.parse import parse_qs

from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from .beacon import MAX_BODY_BYTES, check_content_type, parse_beacon
from .capture import read_cookies
from .consent import gpc_signal
from .consent_endpoint import ConsentEndpoint
from .errors import FieldError, Refused
from .httpio import origin_allowed, parse_json, read_body
from .notice import (
    CONSENT_PATH,
    FORMATS,
    HUMAN_REVIEW_PATH,
    MEDIA_TYPES,
    NOTICE_PATH,
    render_notice,
)
from .problems import Problem
from .proxy import ClientResolver
from .ratelimit import RateLimiter, client_of, too_many

log = logging.getLogger("veil")
SCRIPT = importlib.resources.files("veil").joinpath("static/veil.js").read_bytes()
SCRIPT_HASH = hashlib.sha256(SCRIPT).hexdigest()[:12]
SCRIPT_PATH = "/veil/veil.js"
PINNED_SCRIPT_PATH = f"/veil/veil.{SCRIPT_HASH}.js"
BEACON_PATH = "/veil/e"
GPC_PATH = "/.well-known/gpc.json"
RECORD_PATH = "/veil/record"
PATHS = frozenset({SCRIPT_PATH, PINNED_SCRIPT_PATH, BEACON_PATH, CONSENT_PATH, NOTICE_PATH,
                   HUMAN_REVIEW_PATH, GPC_PATH, RECORD_PATH})
# The endpoints that record or read the store: 503 while veil cannot store (never a 2xx for
# what would be lost). The snippet, the notice and the GPC declaration need no store.
STORING_PATHS = frozenset({BEACON_PATH, CONSENT_PATH, HUMAN_REVIEW_PATH, RECORD_PATH})


def route_path(scope: Scope) -> str:
    """The path below the app's mount point: ASGI puts `root_path` in front of `path` too."""
    path, root = scope["path"], scope.get("root_path")
    return path[len(root):] if root and path.startswith(root) else path


def not_open(veil) -> Problem:
    """The 503 for a request veil cannot store now: nothing of it was recorded."""
    if veil.failure is not None:  # permanent: an operator must fix it; don't hammer
        return Problem(503, "not-collecting", "Not collecting",
                       "veil cannot store anything on this server now; nothing was recorded",
                       headers={"Retry-After": "300"})
    return Problem(503, "not-ready", "Not ready",
                   "veil's store is not open yet; nothing was recorded",
                   headers={"Retry-After": "5"})


def script_response(scope: Scope) -> Response:
    if scope["method"] not in ("GET", "HEAD"):
        raise Problem(405, "method-not-allowed", "Method not allowed", "use GET",
                      headers={"Allow": "GET, HEAD"})
    etag = f'"{SCRIPT_HASH}"'
    cache = ("public, max-age=31536000, immutable" if scope["path"] == PINNED_SCRIPT_PATH
             else "public, max-age=86400")
    headers = {"ETag": etag, "Cache-Control": cache, "X-Content-Type-Options": "nosniff"}
    if etag in dict(scope["headers"]).get(b"if-none-match", b"").decode("latin-1"):
        return Response(status_code=304, headers=headers)
    return Response(b"" if scope["method"] == "HEAD" else SCRIPT, headers=headers,
                    media_type="text/javascript; charset=utf-8")


class Endpoints:
    """The /veil/* endpoints of one `Veil` instance, as an ASGI app."""

    def __init__(self, veil) -> None:
        self.veil = veil
        ingest = veil.config.ingest
        self.resolver = ClientResolver(veil.config.trusted_proxies)
        self.limiter = RateLimiter(ingest.rate, ingest.burst)  # beacons
        # the permanent rows a network may add: consent records, app records, review requests
        self.writes = RateLimiter(veil.config.consent.rate, veil.config.consent.burst)
        self.consent = ConsentEndpoint(veil, self.resolver, self.writes)
        # the config is frozen: render the notice once, serve the same bytes
        self.notices = {fmt: render_notice(veil.config, fmt).encode() for fmt in FORMATS}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = route_path(scope)
        if path != scope["path"]:  # mounted below a root_path: handlers see veil's own paths
            scope = {**scope, "path": path}
        try:
            if path in STORING_PATHS and not self.veil.is_open and not await self.veil.ready():
                raise not_open(self.veil)
            if path == BEACON_PATH:
                response = await self.ingest(scope, receive)
            elif path == CONSENT_PATH:
                response = await self.consent(scope, receive)
            elif path == NOTICE_PATH:
                response = self.notice(scope)
            elif path == HUMAN_REVIEW_PATH:
                response = await self.human_review(scope, receive)
            elif path == RECORD_PATH:
                response = await self.record(scope, receive)
            elif path == GPC_PATH:
                # The GPC spec's site declaration: this site honours the signal.
                response = JSONResponse({"gpc": True, "lastUpdate":
                                         self.veil.config.policy.effective.isoformat()})
            else:
                response = script_response(scope)
        except Problem as problem:
            response = problem.response()
        except Exception as exc:  # a store locked by another process, or a bug: never a 500
            # where, not the message: a message may quote what the request carried
            where = traceback.extract_tb(exc.__traceback__)[-1]
            log.error("veil endpoint %s: %s at %s:%d", path, exc.__class__.__name__,
                      where.filename, where.lineno)
            response = Problem(503, "unavailable", "Temporarily unavailable",
                               "veil could not complete this request now; nothing was "
                               "recorded that was not answered", headers={"Retry-After": "5"}
                               ).response()
        await response(scope, receive, send)

    def notice(self, scope: Scope) -> Response:
        """GET /veil/notice[?format=html|md]: the privacy notice rendered from the policy."""
        if scope["method"] not in ("GET", "HEAD"):
            raise Problem(405, "method-not-allowed", "Method not allowed", "use GET",
                          headers={"Allow": "GET, HEAD"})
        fmt = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("format",
                                                                            ["html"])[-1]
        if fmt not in FORMATS:
            raise Problem(400, "unknown-format", "Unknown format",
                          f"format must be one of {', '.join(FORMATS)}, got {fmt!r}",
                          field="format")
        body = self.notices[fmt]
        etag = f'"{hashlib.sha256(body).hexdigest()[:16]}"'
        headers = {"ETag": etag, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff",
                   "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"}
        if etag in dict(scope["headers"]).get(b"if-none-match", b"").decode("latin-1"):
            return Response(status_code=304, headers=headers)
        return Response(b"" if scope["method"] == "HEAD" else body, headers=headers,
                        media_type=MEDIA_TYPES[fmt])

    async def _json_post(self, scope: Scope, receive: Receive, what: str) -> dict:
        """The JSON object body of a same-site POST, or the Problem saying what is wrong."""
        if scope["method"] != "POST":
            raise Problem(405, "method-not-allowed", "Method not allowed", "use POST",
                          headers={"Allow": "POST"})
        headers = dict(scope["headers"])
        if not origin_allowed(headers):
            raise Problem(403, "cross-site", "Cross-site request refused",
                          f"{what} can only come from this site's own pages")
        check_content_type(headers.get(b"content-type", b""))
        if self.veil.guards is None:
            raise Problem(503, "not-ready", "Not ready", "veil has no local store here",
                          headers={"Retry-After": "5"})
        if wait := self.writes.allow(client_of(self.resolver, scope, headers)[1]):
            raise too_many(wait, "Too many requests",
                           f"this network sent more {what} than the limit allows")
        data = parse_json(await read_body(scope, receive, MAX_BODY_BYTES))
        if not isinstance(data, dict):
            raise Problem(400, "malformed-body", "Malformed request",
                          "the body must be a JSON object")
        return data

    async def record(self, scope: Scope, receive: Receive) -> Response:
        """POST {"purpose": key, "fields": {...}}: app-declared fields about the subject whose
        cookie comes with the request (the snippet's `veil.record`)."""
        data = await self._json_post(scope, receive, "records")
        if set(data) != {"purpose", "fields"} or not isinstance(data["fields"], dict):
            raise Problem(400, "malformed-body", "Malformed record",
                          'send {"purpose": "<purpose>", "fields": {...}}')
        headers = dict(scope["headers"])
        cookies = read_cookies(headers.get(b"cookie"), self.veil.config.consent.secure_cookie)
        # only a subject cookie veil issued counts; a browser never speaks for an app user
        subject = self.veil.ledger.subjects.browser(cookies.subject if cookies else None)
        if subject is None:
            raise Problem(403, "no-subject", "No consent",
                          "recording about a visitor needs their consent cookie first")
        try:
            await self.veil.guards.record(subject, str(data["purpose"]), data["fields"],
                                          signal=gpc_signal(headers))
        except FieldError as exc:
            raise Problem(400, "invalid-field", "Invalid record", str(exc)) from None
        except Refused as exc:
            raise Problem(403, exc.reason.replace("_", "-"), "Refused by the policy",
                          str(exc)) from None
        return Response(status_code=202)

    async def human_review(self, scope: Scope, receive: Receive) -> Response:
        """POST {"decision": id, "reason": text}: contest an automated decision."""
        data = await self._json_post(scope, receive, "a review request")
        if set(data) != {"decision", "reason"}:
            raise Problem(400, "malformed-body", "Malformed request",
                          'send {"decision": "<decision id>", "reason": "<why>"}')
        for key in ("decision", "reason"):
            if not isinstance(data[key], str) or not 0 < len(data[key]) <= 1500:
                raise Problem(400, "invalid-field", "Invalid field",
                              f"{key} must be a non-empty string of at most 1500 characters",
                              field=key)
        try:
            review = await self.veil.contest(data["decision"], data["reason"])
        except FieldError:
            raise Problem(404, "unknown-decision", "Unknown decision",
                          "no decision has that id", field="decision") from None
        return JSONResponse({"review": review, "status": "requested"}, status_code=202)

    async def ingest(self, scope: Scope, receive: Receive) -> Response:
        if scope["method"] != "POST":
            raise Problem(405, "method-not-allowed", "Method not allowed",
                          "send the beacon with POST", headers={"Allow": "POST"})
        headers = dict(scope["headers"])
        check_content_type(headers.get(b"content-type", b""))
        beacon = parse_beacon(await read_body(scope, receive, MAX_BODY_BYTES, headers))
        # keyed on the client's /24 or /48, in memory only; when its address cannot be
        # resolved (a broken X-Forwarded-For), the peer's: a bad header never skips the limit
        if wait := self.limiter.allow(client_of(self.resolver, scope, headers)[1]):
            raise too_many(wait, "Too many beacons",
                           "this network sent more beacons than the ingest limit allows")
        if not self.veil.capture_beacon(scope, beacon, headers):
            if not self.veil.is_open:  # closed while the body was read (a stop, a failure)
                raise not_open(self.veil)
            raise Problem(503, "queue-full", "Busy", "the ingest queue is full; try later",
                          headers={"Retry-After": "1"})
        return Response(status_code=202)
