"""`GET/POST /veil/consent`: the visitor's consent, recorded on the ledger.

POST takes one JSON object, `{"grant": [scopes]}`, `{"refuse": [scopes]}` or
`{"withdraw": [scopes] | "all"}`. A browser may speak only for itself, and only about what a
browser can consent to: the consent-based purposes and `special:<category>:<purpose>`.
Decisions and provisions concern app users, and only the app speaks for those.
`{"object": [purposes]}` / `{"lift_objection": [purposes]}`: an objection (GDPR Art. 21) to a
purpose resting on legitimate interests (`connection`), kept in the opt-out cookie (and, for a
subject, as their limit, audited: rights/limits.py); the request of a browser that objects is
not stored under that purpose.

Cookies (capture.py names them; `__Host-` prefixed over HTTPS):
- the subject cookie: a random id veil issued and signed (subjects.py), set by a grant;
  an id veil did not issue counts as none. Removed when no grant is left in force;
- the opt-out cookie: the purposes refused by a visitor without a subject (or whose last grant
  was withdrawn), no identifier in it: strictly necessary, so a refusal sticks.

The ledger cannot be flooded: scopes are deduplicated and checked against the policy, a
no-op change writes nothing, and a grant is charged one token per record it writes against
its network's budget of permanent rows (`consent.rate` a second, `consent.burst` at most, the
same budget app records and review requests draw on) and against its subject's daily cap
(`consent.max_changes_per_day` grants). A refusal or withdrawal is never refused: it writes
only what a charged grant made possible, or, from a visitor without a subject, one record of
evidence while the budget allows (its cookie makes it stick either way). CSRF-safe: a
browser's cross-site POST (by `Origin` or `Sec-Fetch-Site`) is refused.

GET answers what veil does for this visitor now, per purpose: `granted` (a grant in force),
`collected` (whether the purpose collects, by the same rule the pipeline applies) and `fields`
(what it collects: the snippet sends the page's path only while a purpose with `path` collects).
POST answers the same, after the change.
"""

import time
from typing import Literal

from starlette.responses import JSONResponse
from starlette.types import Receive, Scope

from ..capture import cookie_names, read_cookies
from ..consent import (
    Action,
    ConsentRecord,
    Ledger,
    Method,
    changes,
    collects,
    gpc_signal,
    holds,
    opt_in,
)
from ..errors import Drop, FieldError
from ..jurisdiction import Regime, regime_for
from ..proxy import Client, ClientResolver
from ..rights import limits
from ..runtime import Veil
from ..store.base import LocalStore
from .beacon import MAX_BODY_BYTES, check_content_type
from .body import origin_allowed, read_json
from .problems import Problem
from .ratelimit import RateLimiter, client_of, too_many

SPECIAL = "special"  # special:<category>:<purpose>: the one scope kind a browser may give
# An objection (rights/limits.py) to a legitimate-interests purpose, and its lifting: handled
# as a refusal and a grant of it, which reach the opt-out cookie and never the ledger.
OBJECTION_VERBS = {"object": Action.REFUSE, "lift_objection": Action.GRANT}


def _cookie(name: str, value: str, max_age: int, secure: bool) -> str:
    flags = "; Secure" if secure else ""
    return f"{name}={value}; Max-Age={max_age}; Path=/; HttpOnly{flags}; SameSite=Lax"


class ConsentEndpoint:
    def __init__(self, veil: Veil, resolver: ClientResolver, writes: RateLimiter) -> None:
        self.veil = veil
        self.resolver = resolver
        self.writes = writes  # the permanent rows a network may add: shared with records
        cfg = veil.config.consent
        self.cfg = cfg
        self.sid_name, self.opt_out_name = cookie_names(cfg.secure_cookie)
        self.consent_purposes = tuple(
            p.key for p in veil.config.policy.purposes.values() if p.needs_consent
        )
        # legitimate-interests purposes: a refusal is an objection (rights/limits.py), kept
        # in the opt-out cookie (and as the subject's limit), never on the consent ledger
        self.objectable = limits.objectable(veil.config.policy)

    def _regime(self, client: Client | None) -> Regime:
        geo = self.veil.geo
        country, region = geo.locate(client.text) if client and geo else (None, None)
        return regime_for(country, region)

    def _set(self, response: JSONResponse, name: str, value: str | None) -> None:
        """Set a cookie, or remove it when `value` is None."""
        max_age = self.cfg.cookie_days * 86400 if value else 0
        response.headers.append(
            "Set-Cookie", _cookie(name, value or "", max_age, self.cfg.secure_cookie)
        )

    async def __call__(self, scope: Scope, receive: Receive) -> JSONResponse:
        ledger = self.veil.ledger
        if ledger is None:
            raise Problem(
                503,
                "not-ready",
                "Consent unavailable",
                "veil has no consent ledger here (not started, or forwarding to a collector)",
                headers={"Retry-After": "5"},
            )
        headers = dict(scope["headers"])
        cookies = read_cookies(headers.get(b"cookie"), self.cfg.secure_cookie)
        subject = ledger.subjects.browser(cookies.subject if cookies else None)
        opted_out = self._opted_out(cookies.opt_out if cookies else None)
        signal = gpc_signal(headers)
        client, key = client_of(self.resolver, scope, headers)
        regime = self._regime(client)
        history = await ledger.history(subject) if subject else []
        cookies_out: dict[str, str | None] = {}
        if subject is None and cookies and cookies.subject:
            cookies_out[self.sid_name] = None  # not one veil issued: tell the browser to drop it
        if scope["method"] == "POST":
            if not origin_allowed(headers):
                raise Problem(
                    403,
                    "cross-site",
                    "Cross-site consent refused",
                    "consent can only be given from this site's own pages",
                )
            check_content_type(headers.get(b"content-type", b""))
            action, parsed = self._parse(
                await read_json(scope, receive, MAX_BODY_BYTES, headers, title="Malformed consent")
            )
            if isinstance(parsed, str):  # "all", which only a withdrawal takes
                scopes = list(
                    dict.fromkeys(
                        [
                            *self.consent_purposes,
                            *(r.scope for r in history if holds(history, r.scope)),
                        ]
                    )
                )
            else:
                scopes = parsed
            objections = [s for s in scopes if s in self.objectable]
            scopes = [s for s in scopes if s not in self.objectable]
            if objections and subject is not None:
                await self._object(subject, objections, action is not Action.GRANT)
            if action is Action.GRANT and scopes:
                # Only grants are limited: a refusal or withdrawal always goes through (it
                # writes only what a limited grant made possible, or nothing).
                self._charge(
                    key,
                    history,
                    scopes if subject is None else changes(history, scopes, action, True, signal),
                )
                if subject is None:
                    cookie_value, subject = ledger.subjects.issue()
                    cookies_out[self.sid_name] = cookie_value
            if subject is not None:
                history += await self._append(
                    ledger, subject, scopes, action, signal, regime, history
                )
            changed_out = (
                opted_out - set(scopes) - set(objections)
                if action is Action.GRANT
                else opted_out | (set(scopes) & set(self.consent_purposes)) | set(objections)
            )
            # A refusal by a visitor without a subject sticks by its cookie; the ledger
            # keeps it as evidence while the network's budget allows (else it is counted).
            refused = sorted(changed_out - opted_out - set(objections))
            if subject is None and action is not Action.GRANT and refused:
                if self.writes.allow(key, cost=len(refused)) == 0:
                    await self._append(ledger, None, refused, action, signal, regime)
                else:
                    self.veil.count_drop(Drop.REFUSAL_UNRECORDED)
            if changed_out != opted_out:
                opted_out = changed_out
                cookies_out[self.opt_out_name] = ".".join(sorted(opted_out)) or None
            if (
                action is Action.WITHDRAW
                and subject is not None
                and not any(holds(history, r.scope) for r in history)
            ):
                cookies_out[self.sid_name] = None  # nothing left to remember them for
                subject, history = None, []
        response = JSONResponse(
            self._state(subject is not None, history, signal, regime, opted_out)
        )
        for name, value in cookies_out.items():
            self._set(response, name, value)
        response.headers["Cache-Control"] = "no-store"
        return response

    def _charge(self, key: bytes, history: list[ConsentRecord], written: list[str]) -> None:
        """Refuse (429) a grant that would write more than the network's budget of permanent
        rows allows, or more than the subject's daily cap; charge it otherwise."""
        if len(written) > self.cfg.burst:
            raise Problem(
                400,
                "too-many-scopes",
                "Too many scopes",
                f"grant at most {self.cfg.burst} scopes at once",
                field="grant",
            )
        day_ago = time.time() - 86400
        recent = sum(r.ts > day_ago and r.action == Action.GRANT for r in history)
        if recent + len(written) > self.cfg.max_changes_per_day:
            raise Problem(
                429,
                "too-many-changes",
                "Too many consent changes",
                f"at most {self.cfg.max_changes_per_day} grants a day",
                headers={"Retry-After": "3600"},
            )
        if written and (wait := self.writes.allow(key, cost=len(written))):
            raise too_many(
                wait,
                "Too many consent changes",
                "this network changed consent more often than the limit allows",
            )

    @staticmethod
    async def _append(
        ledger: Ledger,
        subject: str | None,
        scopes: list[str],
        action: Action,
        signal: bool,
        regime: Regime,
        history: list[ConsentRecord] | None = None,
    ) -> list[ConsentRecord]:
        try:
            return await ledger.append(
                subject,
                scopes,
                action,
                Method.BANNER,
                explicit=True,
                signal=signal,
                jurisdiction=regime.key,
                history=history,  # read once per request, at its start
            )
        except FieldError as exc:
            raise Problem(
                400, "invalid-field", "Unknown consent scope", str(exc), field=str(action)
            ) from None

    def _opted_out(self, cookie: str | None) -> set[str]:
        """The purposes in the opt-out cookie that the policy still declares."""
        known = {*self.consent_purposes, *self.objectable}
        return set(cookie.split(".")) & known if cookie else set()

    async def _object(self, subject: str, purposes: list[str], on: bool) -> None:
        """A subject's objection to legitimate-interests purposes, or its lifting (a grant),
        as their limit, audited; the opt-out cookie carries it too."""
        store, keystore = self.veil.store, self.veil.keystore
        if not isinstance(store, LocalStore) or keystore is None:
            return  # no ledger without a local store: this endpoint answered 503 already
        for purpose in purposes:
            change = limits.impose if on else limits.lift
            await change(store, keystore, subject, limits.OBJECTION, purpose)

    def _parse(self, data: object) -> tuple[Action, list[str] | Literal["all"]]:
        if (
            not isinstance(data, dict)
            or len(data) != 1
            or next(iter(data)) not in ("grant", "refuse", "withdraw", *OBJECTION_VERBS)
        ):
            raise Problem(
                400,
                "malformed-body",
                "Malformed consent",
                'send exactly one of {"grant": [...]}, {"refuse": [...]}, '
                '{"withdraw": [...] or "all"}, {"object": [...]}, {"lift_objection": [...]}',
            )
        key, scopes = next(iter(data.items()))
        if scopes == "all" and key == "withdraw":
            return Action.WITHDRAW, "all"
        if not (isinstance(scopes, list) and all(isinstance(s, str) for s in scopes)):
            raise Problem(
                400,
                "invalid-field",
                "Malformed consent",
                f"{key} must be a list of scope names",
                field=key,
            )
        scopes = list(dict.fromkeys(scopes))
        if key in OBJECTION_VERBS:  # an objection is a refusal of what needs no consent
            for scope in scopes:
                if scope not in self.objectable:
                    raise Problem(
                        400,
                        "invalid-field",
                        "Not an objectable purpose",
                        f"a visitor can object to the purposes resting on legitimate "
                        f"interests ({', '.join(self.objectable) or 'none'}); "
                        f"{scope[:64]!r} is not one of them",
                        field=key,
                    )
            return OBJECTION_VERBS[key], scopes
        for scope in scopes:
            if scope not in self.consent_purposes and scope.partition(":")[0] != SPECIAL:
                raise Problem(
                    400,
                    "invalid-field",
                    "Not a browser's consent",
                    f"a browser can consent to the consent-based purposes "
                    f"({', '.join(self.consent_purposes)}) and special:<category>:"
                    f"<purpose>; {scope[:64]!r} is not one of them",
                    field=key,
                )
        return Action(key), scopes

    def _state(
        self,
        has_subject: bool,
        history: list[ConsentRecord],
        signal: bool,
        regime: Regime,
        opted_out: set[str],
    ) -> dict[str, object]:
        policy = self.veil.config.policy
        prior, now = opt_in(policy, regime), time.time()
        return {
            "subject": has_subject,
            "signal": signal,
            "jurisdiction": regime.key,
            "consent_model": policy.consent_model,
            "opted_out": sorted(opted_out),
            "policy_version": policy.version,
            "purposes": {
                p.key: {
                    "description": p.description,
                    "needs_consent": p.needs_consent,
                    "fields": sorted(p.fields),
                    "granted": not p.needs_consent or holds(history, p.key, now, signal),
                    "collected": p.key not in opted_out
                    if not p.needs_consent  # objected to: rights/limits.py
                    else collects(
                        history, p.key, now, prior=prior, signal=signal, opted_out=opted_out
                    ),
                }
                for p in policy.purposes.values()
            },
        }
