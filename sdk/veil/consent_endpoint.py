"""`GET/POST /veil/consent`: the visitor's consent, recorded on the ledger.

POST takes one JSON object, `{"grant": [scopes]}`, `{"refuse": [scopes]}` or
`{"withdraw": [scopes] | "all"}`. A grant sets the subject cookie (a random id, HttpOnly,
Secure, SameSite=Lax, bounded lifetime) if there is none; a withdrawal that leaves no grant in
force removes it. A refusal never sets a cookie. CSRF-safe: a browser's cross-site POST (by
`Origin` or `Sec-Fetch-Site`) is refused, so another site cannot consent on a visitor's behalf.
"""

import base64
import json
import secrets

from starlette.responses import JSONResponse
from starlette.types import Receive, Scope

from .beacon import MAX_BODY_BYTES, check_content_type
from .capture import SUBJECT_COOKIE, subject_cookie
from .consent import Action, Method, holds
from .errors import FieldError
from .httpio import origin_allowed, read_body
from .jurisdiction import regime_for
from .problems import Problem

COOKIE_DAYS = 180


def _cookie(value: str, max_age: int) -> str:
    return (f"{SUBJECT_COOKIE}={value}; Max-Age={max_age}; Path=/; HttpOnly; Secure; "
            "SameSite=Lax")


class ConsentEndpoint:
    def __init__(self, veil, resolver) -> None:
        self.veil = veil
        self.resolver = resolver

    def _regime(self, scope: Scope, headers: dict[bytes, bytes]) -> str:
        client = scope.get("client") or (None, None)
        found = self.resolver.resolve(client[0], headers.get(b"x-forwarded-for", b""))
        geo = self.veil.geo
        country, region = geo.locate(found.text) if found and geo else (None, None)
        return regime_for(country, region).key

    async def __call__(self, scope: Scope, receive: Receive) -> JSONResponse:
        ledger = self.veil.ledger
        if ledger is None:
            raise Problem(503, "not-ready", "Consent unavailable",
                          "veil has no consent ledger here (not started, or forwarding to a "
                          "collector)", headers={"Retry-After": "5"})
        headers = dict(scope["headers"])
        cookie = headers.get(b"cookie")
        cookie_id = subject_cookie(cookie) if cookie else None
        subject = ledger.subject(cookie_id) if cookie_id else None
        signal = headers.get(b"sec-gpc") == b"1" or headers.get(b"dnt") == b"1"
        regime = self._regime(scope, headers)
        history = await ledger.history(subject) if subject else []
        set_cookie = None
        if scope["method"] == "POST":
            if not origin_allowed(headers):
                raise Problem(403, "cross-site", "Cross-site consent refused",
                              "consent can only be given from this site's own pages")
            check_content_type(headers.get(b"content-type", b""))
            action, scopes = self._parse(await read_body(scope, receive, MAX_BODY_BYTES))
            if action is Action.WITHDRAW and scopes == "all":
                scopes = sorted({r.scope for r in history if holds(history, r.scope)})
            if action is Action.GRANT and subject is None and scopes:
                cookie_id = base64.urlsafe_b64encode(secrets.token_bytes(16)).decode()[:22]
                subject = ledger.subject(cookie_id)
                set_cookie = _cookie(cookie_id, COOKIE_DAYS * 86400)
            if scopes and (subject is not None or action is Action.REFUSE):
                try:
                    history += await ledger.append(subject, scopes, action, Method.BANNER,
                                                   explicit=True, signal=signal,
                                                   jurisdiction=regime)
                except FieldError as exc:
                    raise Problem(400, "invalid-field", "Unknown consent scope", str(exc),
                                  field=str(action)) from None
            if action is Action.WITHDRAW and subject is not None and not any(
                    holds(history, r.scope) for r in history):
                set_cookie = _cookie("", 0)  # nothing left to remember them for
                subject, history = None, []
        response = JSONResponse(self._state(subject is not None, history, signal, regime))
        if set_cookie:
            response.headers.append("Set-Cookie", set_cookie)
        response.headers["Cache-Control"] = "no-store"
        return response

    @staticmethod
    def _parse(body: bytes) -> tuple[Action, list[str] | str]:
        try:
            data = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise Problem(400, "malformed-body", "Malformed consent",
                          "the body is not valid JSON") from None
        if not isinstance(data, dict) or len(data) != 1 or next(iter(data)) not in (
                "grant", "refuse", "withdraw"):
            raise Problem(400, "malformed-body", "Malformed consent",
                          'send exactly one of {"grant": [...]}, {"refuse": [...]}, '
                          '{"withdraw": [...] or "all"}')
        key, scopes = next(iter(data.items()))
        if not (scopes == "all" and key == "withdraw") and not (
                isinstance(scopes, list) and all(isinstance(s, str) for s in scopes)):
            raise Problem(400, "invalid-field", "Malformed consent",
                          f"{key} must be a list of scope names", field=key)
        return Action(key), scopes

    def _state(self, has_subject: bool, history: list, signal: bool, regime: str) -> dict:
        policy = self.veil.config.policy
        return {
            "subject": has_subject, "signal": signal, "jurisdiction": regime,
            "policy_version": policy.version,
            "purposes": {p.key: {"description": p.description, "needs_consent": p.needs_consent,
                                 "granted": not p.needs_consent or holds(history, p.key,
                                                                         signal=signal)}
                         for p in policy.purposes.values()},
        }
