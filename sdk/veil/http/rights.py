"""`/veil/rights/*`: a subject's own requests over HTTP, and the page that makes them.

Each call acts for exactly one subject, proven by `Authorization: Bearer <token>` (a token
the app signed, `Veil.subject_token`) or else by veil's subject cookie (rights/identity.py).
A proof that fails is refused (401 for a token, 403 for a cookie) and audited; a visitor with
neither is told plainly what veil can and cannot link to them. A proven request becomes a
rights request (received → verified → done, rights/requests.py) whose reference is in every
answer. The work itself is the rights modules' (export, correct, erase, limits): this is glue.

- GET|POST access, export (`?format=csv` for CSV): everything veil holds about the subject;
- POST correct {"purpose", "fields"}; delete {}; restrict {"lift"?: bool};
  suspend {"resume"?: bool}; object {"purpose"?: key}; complaint {};
- GET /veil/rights: the page (rights.html, rights.js), no framework, same-origin only.

Same-site only (CSRF), one token of the network's write budget per call (each writes a row),
`Cache-Control: no-store` on every answer.
"""

import importlib.resources
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import cast
from urllib.parse import parse_qs

from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope

from ..capture import read_cookies
from ..errors import FieldError, NotVerified, Refused
from ..jurisdiction import regime_for
from ..proxy import ClientResolver
from ..rights import requests
from ..rights.correct import correct
from ..rights.erase import end_browser_subject, erase
from ..rights.export import export, to_csv
from ..rights.identity import UNLINKED, Requester, identify
from ..rights.requests import apply_limit
from ..runtime import Veil
from ..store import SQLiteStore
from ..store.keys import KeyStore
from ..store.rights_store import RequestRow
from ..subjects import Subjects
from .beacon import MAX_BODY_BYTES, check_content_type
from .body import json_object, read_json, require_same_site
from .problems import Problem
from .ratelimit import RateLimiter, client_of, too_many

RIGHTS_PREFIX = "/veil/rights/"
VERBS: dict[str, tuple[str, ...]] = {
    "access": ("GET", "POST"),
    "export": ("GET", "POST"),
    "correct": ("POST",),
    "delete": ("POST",),
    "restrict": ("POST",),
    "suspend": ("POST",),
    "object": ("POST",),
    "complaint": ("POST",),
}
NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
_static = importlib.resources.files("veil").joinpath("static")
PAGE = _static.joinpath("rights.html").read_bytes()
PAGE_SCRIPT = _static.joinpath("rights.js").read_bytes()
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; "
    "form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)


def page() -> Response:
    """GET /veil/rights: the page (it calls the endpoints below with the visitor's cookie)."""
    return Response(
        PAGE,
        media_type="text/html; charset=utf-8",
        headers={**NO_STORE, "Content-Security-Policy": PAGE_CSP},
    )


def page_script() -> Response:
    return Response(
        PAGE_SCRIPT,
        media_type="text/javascript; charset=utf-8",
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )


def _bearer(headers: dict[bytes, bytes]) -> str | None:
    """The token of `Authorization: Bearer <token>`; "" for any other Authorization (which
    then fails as a malformed token: a proof that was sent is never ignored)."""
    value = headers.get(b"authorization")
    if value is None:
        return None
    scheme, _, token = value.decode("latin-1").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


class RightsEndpoint:
    def __init__(self, veil: Veil, resolver: ClientResolver, writes: RateLimiter) -> None:
        self.veil = veil
        self.resolver = resolver
        self.writes = writes  # the network's budget of permanent rows, shared with consent
        self.secure = veil.config.consent.secure_cookie

    def _parts(self) -> tuple[SQLiteStore, KeyStore, Subjects]:
        running = self.veil.running
        if running is None or running.ledger is None or not isinstance(running.store, SQLiteStore):
            raise Problem(
                503,
                "not-ready",
                "Not ready",
                "veil has no local store here (forwarding to a collector: ask there)",
                headers={"Retry-After": "5"},
            )
        return running.store, running.keystore, running.ledger.subjects

    async def __call__(self, scope: Scope, receive: Receive) -> Response:
        verb = scope["path"].removeprefix(RIGHTS_PREFIX)
        headers = dict(scope["headers"])
        require_same_site(headers, "a rights request")
        store, keystore, subjects = self._parts()
        body: dict[str, object] = {}
        if scope["method"] == "POST":
            check_content_type(headers.get(b"content-type", b""))
        client, key = client_of(self.resolver, scope, headers)
        if wait := self.writes.allow(key):
            raise too_many(
                wait, "Too many requests", "this network sent more requests than the limit allows"
            )
        if scope["method"] == "POST":
            body = json_object(await read_json(scope, receive, MAX_BODY_BYTES, headers))
        cookies = read_cookies(headers.get(b"cookie"), self.secure)
        token = _bearer(headers)
        kind = _kind(verb, body)
        try:
            requester = identify(keystore, subjects, cookies.subject if cookies else None, token)
        except NotVerified as exc:
            channel = "token" if token is not None else "cookie"
            await requests.refuse_unverified(store, kind, channel, exc.why)
            raise Problem(
                401 if channel == "token" else 403,
                exc.why,
                "Not verified",
                f"{exc}; nothing was done",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
                if channel == "token"
                else None,
            ) from None
        if requester is None:
            if verb in ("access", "export") and scope["method"] == "GET":
                return JSONResponse({"linked": False, "detail": UNLINKED}, headers=NO_STORE)
            raise Problem(403, "no-subject", "Nothing linked to you", UNLINKED)
        geo = self.veil.geo
        country, region = geo.locate(client.text) if client and geo else (None, None)
        row = await requests.receive(
            store, keystore, requester, kind, regime_for(country, region).key
        )
        try:
            response = await _ACTIONS[verb](self, scope, requester, row, body)
        except Problem as problem:
            if problem.status < 500:  # answered (nothing to do): not left open for the DPO
                await requests.finish(store, row.id, {"answered": problem.kind})
            raise
        response.headers.update(NO_STORE)
        return response

    # -- the rights; each ends its request (done) or leaves it open for the DPO ----------------

    async def _done(
        self,
        row: RequestRow,
        answer: Mapping[str, object],
        outcome: Mapping[str, object] | None = None,
        status: int = 200,
    ) -> JSONResponse:
        done = await requests.finish(self._parts()[0], row.id, outcome)
        return JSONResponse({**_receipt(done), **answer}, status_code=status, headers=NO_STORE)

    async def access(
        self, scope: Scope, who: Requester, row: RequestRow, body: dict[str, object]
    ) -> Response:
        store, keystore, _ = self._parts()
        doc = await export(store, keystore, self.veil.config.policy, who.subject)
        fmt = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("format", ["json"])
        if fmt[-1] not in ("json", "csv"):
            raise Problem(
                400, "unknown-format", "Unknown format", "format must be json or csv", "format"
            )
        done = await requests.finish(store, row.id, {"format": fmt[-1]})
        if fmt[-1] == "csv":
            return Response(
                to_csv(doc),
                media_type="text/csv; charset=utf-8",
                headers={
                    "Content-Disposition": f'attachment; filename="veil-{done.id}.csv"',
                    "X-Veil-Request": done.id,
                },
            )
        return JSONResponse(
            {**_receipt(done), "data": doc},
            headers={"Content-Disposition": f'inline; filename="veil-{done.id}.json"'},
        )

    async def correct(
        self, scope: Scope, who: Requester, row: RequestRow, body: dict[str, object]
    ) -> Response:
        """{"record_id": <id an export lists>, "field": name, "value": new value}."""
        store, keystore, _ = self._parts()
        ledger = self.veil.ledger
        record_id = body.get("record_id")
        field = body.get("field")
        if set(body) != {"record_id", "field", "value"} or not isinstance(field, str):
            raise Problem(
                400,
                "malformed-body",
                "Malformed correction",
                'send {"record_id": <id>, "field": "<field>", "value": <new value>}',
            )
        assert ledger is not None  # _parts checked it
        try:
            # correct() checks record_id's type itself (an int, not a bool)
            done = await correct(
                store, keystore, ledger, who.subject, cast(int, record_id), field, body["value"]
            )
        except (FieldError, Refused) as exc:
            raise Problem(400, "invalid-field", "Cannot correct", str(exc)) from None
        return await self._done(row, {"corrected": done}, {"field": field})

    async def delete(
        self, scope: Scope, who: Requester, row: RequestRow, body: dict[str, object]
    ) -> Response:
        store, keystore, _ = self._parts()
        proof = await erase(store, keystore, who.subject, row.id, policy=self.veil.config.policy)
        response = await self._done(row, {"deleted": proof}, {"deleted": True})
        if who.channel == "cookie":  # nothing left to remember them by
            for cookie in end_browser_subject(self.secure):
                response.headers.append("Set-Cookie", cookie)
        return response

    async def limit(
        self, scope: Scope, who: Requester, row: RequestRow, body: dict[str, object]
    ) -> Response:
        """restrict / lift_restriction / suspend / resume / object: limits.py's state."""
        store, keystore, _ = self._parts()
        purpose = body.get("purpose", "connection") if row.kind == "object" else ""
        try:
            if not isinstance(purpose, str):
                raise FieldError("purpose must be the key of a purpose")
            changed = await apply_limit(
                store, keystore, self.veil.config.policy, who.subject, row.kind, row.id, purpose
            )
        except FieldError as exc:
            raise Problem(400, "invalid-field", "Cannot apply", str(exc), "purpose") from None
        return await self._done(row, {"changed": changed}, {"changed": changed})

    async def complaint(
        self, scope: Scope, who: Requester, row: RequestRow, body: dict[str, object]
    ) -> Response:
        """Recorded with a reference and left open for the DPO (`veil rights close`); the
        answer names the supervisory authority the policy lists."""
        policy = self.veil.config.policy
        authority = policy.complaints
        return JSONResponse(
            {
                **_receipt(row),
                "dpo": {"name": policy.dpo.name, "contact": policy.dpo.contact},
                "authority": None
                if authority is None
                else {"name": authority.authority, "url": authority.url},
                "detail": "your complaint is recorded under this reference: quote it when "
                "you write to the data protection officer. You may also complain to "
                + (
                    f"{authority.authority} ({authority.url})"
                    if authority
                    else "the supervisory authority where you live"
                ),
            },
            status_code=202,
            headers=NO_STORE,
        )


Action = Callable[
    [RightsEndpoint, Scope, Requester, RequestRow, dict[str, object]],
    Awaitable[Response],
]
_ACTIONS: dict[str, Action] = {
    "access": RightsEndpoint.access,
    "export": RightsEndpoint.access,
    "correct": RightsEndpoint.correct,
    "delete": RightsEndpoint.delete,
    "restrict": RightsEndpoint.limit,
    "suspend": RightsEndpoint.limit,
    "object": RightsEndpoint.limit,
    "complaint": RightsEndpoint.complaint,
}


# The keys each right's body may hold: anything else is a 400, never silently ignored.
_BODY_KEYS = {
    "correct": {"record_id", "field", "value"},
    "restrict": {"lift"},
    "suspend": {"resume"},
    "object": {"purpose"},
}


def _kind(verb: str, body: Mapping[str, object]) -> str:
    """The request kind of a call: restrict {"lift": true} lifts, suspend {"resume": true}
    resumes; a body with keys the right does not take is refused."""
    if unknown := sorted(set(body) - _BODY_KEYS.get(verb, set())):
        raise Problem(
            400,
            "malformed-body",
            "Malformed request",
            f"{verb} takes no {', '.join(repr(k[:40]) for k in unknown[:5])}",
            field=unknown[0][:40],
        )
    for flag, toggled in (("lift", "lift_restriction"), ("resume", "resume")):
        if flag in body:
            if not isinstance(body[flag], bool):
                raise Problem(
                    400, "invalid-field", "Malformed request", f"{flag} must be true or false", flag
                )
            if body[flag]:
                return toggled
    return verb


def _receipt(row: RequestRow) -> dict[str, object]:
    def iso(ts: float | None) -> str | None:
        return None if ts is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))

    return {
        "request": row.id,
        "kind": row.kind,
        "status": row.status,
        "received": iso(row.received),
        "due": iso(row.due),
        "closed": iso(row.closed),
    }
