"""The analysts' HTTP API: `GET /api/v1/stats`, `GET /api/v1/me` (who the token is and what
they may read: no event data, not audited) and their OpenAPI document.

`GET /api/v1/stats?purpose=P&use=U&metric=M&by=D&where=D:V&since=T&until=T&format=json|csv`
with `Authorization: Bearer <token>` (analytics/analysts.py): 401 without a live token, 403
for a purpose the analyst is not granted, a use the analyst or the policy does not allow, or a
decision purpose; 400 for a query the engine cannot answer. `metric`, `by` and `where` repeat
(or take comma-separated lists). `since` is inclusive, `until` exclusive: ISO 8601 dates or
times (UTC unless an offset is given); `since` also takes a duration back from now ('7d').
The engine reads whole UTC days (the answer's `range` says which): a time inside a day
takes in the whole day.
Every answer is `Cache-Control: no-store`. Every read answered, and every read refused to an
authenticated analyst, is in the audit log (an unauthenticated request is not: anyone could
fill the log with them).
"""

import csv
import datetime as dt
import io
import time
from urllib.parse import parse_qs

from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope

from ..analytics import analysts, engine
from ..analytics.engine import DIMENSIONS, METRICS, StatsQuery, StatsResult, run
from ..errors import QueryError
from ..policy import parse_duration
from ..runtime import Veil
from ..store.sqlite import SQLiteStore
from .problems import Problem
from .routes import ME_PATH, STATS_PATH

NO_STORE = {"Cache-Control": "no-store"}
FORMATS = ("json", "csv")
_SINGLE = ("purpose", "use", "since", "until", "format")
_LISTS = ("metric", "by", "where")


def _bad(detail: str, field: str | None = None) -> Problem:
    return Problem(400, "bad-query", "Bad query", detail, field=field, headers=NO_STORE)


def _unauthorised(detail: str, error: str | None = None) -> Problem:
    challenge = 'Bearer realm="veil"' + (f', error="{error}"' if error else "")
    return Problem(
        401,
        "unauthorised",
        "Unauthorised",
        detail,
        headers={"WWW-Authenticate": challenge, **NO_STORE},
    )


def _instant(text: str, name: str, *, relative: bool) -> float:
    """An ISO 8601 date or time (UTC unless it says otherwise), or for `since` a duration
    back from now, as UTC seconds."""
    if relative and (window := parse_duration(text)) is not None:
        return time.time() - window.total_seconds()
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        also = " or a duration like '7d'" if relative else ""
        detail = f"{name} must be an ISO 8601 date or time{also}, got {text[:40]!r}"
        raise _bad(detail, name) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def _params(scope: Scope) -> dict[str, list[str]]:
    raw = scope.get("query_string", b"").decode("latin-1")
    params = parse_qs(raw, keep_blank_values=True)
    if unknown := sorted(set(params) - {*_SINGLE, *_LISTS}):
        raise _bad(f"unknown parameter(s) {unknown}: use {', '.join((*_SINGLE, *_LISTS))}")
    for name in _SINGLE:
        if len(params.get(name, ())) > 1:
            raise _bad(f"{name} may be given once", name)
    return params


def _listed(params: dict[str, list[str]], name: str) -> tuple[str, ...]:
    return tuple(v.strip() for raw in params.get(name, ()) for v in raw.split(",") if v.strip())


def parse_query(params: dict[str, list[str]]) -> tuple[StatsQuery, str, str]:
    """The engine's query, the use stated and the format, from the request's parameters."""
    purpose = params.get("purpose", [""])[0]
    if not purpose:
        raise _bad("purpose is required: the purpose the data is read for", "purpose")
    use = params.get("use", [analysts.DEFAULT_USE])[0]
    fmt = params.get("format", ["json"])[0]
    if fmt not in FORMATS:
        raise _bad(f"format must be json or csv, got {fmt[:20]!r}", "format")
    filters: dict[str, str] = {}
    for raw in params.get("where", ()):
        dim, sep, value = raw.partition(":")
        if not sep or not dim.strip():
            raise _bad(f"where takes dimension:value, got {raw[:40]!r}", "where")
        if dim.strip() in filters:
            raise _bad(f"where names {dim.strip()!r} twice", "where")
        filters[dim.strip()] = value
    since = params.get("since", [None])[0]
    until = params.get("until", [None])[0]
    query = StatsQuery(
        purpose=purpose,
        metrics=_listed(params, "metric") or ("events",),
        by=_listed(params, "by"),
        filters=filters,
        since=None if since is None else _instant(since, "since", relative=True),
        until=None if until is None else _instant(until, "until", relative=False),
    )
    return query, use, fmt


def described(query: StatsQuery) -> dict[str, object]:
    """The query as the audit log records it."""
    return {
        "metrics": list(query.metrics),
        "by": list(query.by),
        "filters": dict(query.filters),
        "since": query.since,
        "until": query.until,
    }


def as_json(query: StatsQuery, use: str, result: StatsResult) -> Response:
    cells = [
        {"key": dict(zip(result.by, c.key, strict=True)), "values": c.values}
        | ({"suppressed": True} if c.values is None else {})
        | ({"suppressed_days": c.hidden_days} if c.hidden_days else {})
        for c in result.cells
    ]
    body = {
        "purpose": query.purpose,
        "use": use,
        "by": list(result.by),
        "metrics": list(result.metrics),
        "k": result.k,
        "suppressed": result.suppressed,
        "range": {"first_day": result.first_day, "last_day": result.last_day},
        "cells": cells,
    }
    return JSONResponse(body, headers=NO_STORE)


def as_csv(result: StatsResult) -> Response:
    """One row per cell: the dimensions, each metric (empty when suppressed), `suppressed`,
    and `suppressed_days` (days below k left out of the counts)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([*result.by, *result.metrics, "suppressed", "suppressed_days"])
    for c in result.cells:
        values = (
            [""] * len(result.metrics)
            if c.values is None
            else [c.values.get(m, "") for m in result.metrics]
        )
        keys = ["" if k is None else _safe(k) for k in c.key]
        hidden = "true" if c.values is None else "false"
        writer.writerow([*keys, *values, hidden, c.hidden_days])
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="stats.csv"', **NO_STORE},
    )


def _safe(value: str) -> str:
    """A value a spreadsheet would run as a formula (a path like '=cmd|…') quoted as text."""
    return f"'{value}" if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


class StatsEndpoint:
    def __init__(self, veil: Veil) -> None:
        self.veil = veil

    def _store(self) -> SQLiteStore:
        store = self.veil.store
        if not isinstance(store, SQLiteStore):
            raise Problem(
                404,
                "no-local-store",
                "No stats here",
                f"this app forwards its events to a collector: ask the collector's {STATS_PATH}",
                headers=NO_STORE,
            )
        return store

    async def stats(self, scope: Scope, receive: Receive) -> Response:
        try:
            return await self._stats(scope)
        except Problem as problem:  # every answer, refusals too, is no-store
            problem.headers = {**problem.headers, **NO_STORE}
            raise

    def _analyst(self, scope: Scope, store: SQLiteStore) -> analysts.Analyst:
        """The live analyst whose bearer token the request carries, or the 401."""
        header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        scheme, _, token = header.partition(" ")
        if not header:
            raise _unauthorised("send Authorization: Bearer <token> (veil analysts add)")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthorised(
                "the Authorization header must be Bearer <token>", "invalid_request"
            )
        analyst = analysts.authenticate(store, token.strip())
        if analyst is None:
            raise _unauthorised("the token is unknown or revoked", "invalid_token")
        return analyst

    async def me(self, scope: Scope, receive: Receive) -> Response:
        """GET /api/v1/me: who the token is, k, and each purpose they may read (the uses, the
        dimensions and metrics a query may ask for). It reads no event data: not audited."""
        try:
            store = self._store()
            analyst = self._analyst(scope, store)
        except Problem as problem:
            problem.headers = {**problem.headers, **NO_STORE}
            raise
        policy = self.veil.config.policy
        readable = []
        for purpose in analyst.purposes:
            uses = [
                u for u in analyst.uses if analysts.refusal(policy, analyst, purpose, u) is None
            ]
            if not uses:
                continue
            dimensions, metrics = engine.readable(policy, purpose)
            readable.append(
                {
                    "purpose": purpose,
                    "description": policy.purposes[purpose].description,
                    "uses": uses,
                    "dimensions": list(dimensions),
                    "metrics": list(metrics),
                }
            )
        body = {
            "analyst": analyst.name,
            "k": self.veil.config.min_group_size,
            "purposes": readable,
        }
        return JSONResponse(body, headers=NO_STORE)

    async def _stats(self, scope: Scope) -> Response:
        store = self._store()
        analyst = self._analyst(scope, store)
        query, use, fmt = parse_query(_params(scope))
        policy = self.veil.config.policy
        if why := analysts.refusal(policy, analyst, query.purpose, use):
            await analysts.audit_refused(store, analyst.name, query.purpose, use, why)
            raise Problem(403, "forbidden", "Forbidden", why, field="purpose", headers=NO_STORE)
        try:
            result = await run(store, policy, query, self.veil.config.min_group_size)
        except QueryError as exc:
            await analysts.audit_refused(store, analyst.name, query.purpose, use, str(exc))
            raise _bad(str(exc)) from None
        await analysts.audit_read(
            store,
            analyst.name,
            query.purpose,
            use,
            described(query),
            cells=sum(c.values is not None for c in result.cells),
            suppressed=result.suppressed,
        )
        return as_csv(result) if fmt == "csv" else as_json(query, use, result)

    async def openapi(self, scope: Scope, receive: Receive) -> Response:
        return JSONResponse(openapi_document(), headers={"Cache-Control": "no-cache"})


def _param(
    name: str, description: str, schema: dict[str, object], **more: object
) -> dict[str, object]:
    return {"name": name, "in": "query", "description": description, "schema": schema, **more}


def _problem(description: str, **headers: object) -> dict[str, object]:
    out: dict[str, object] = {
        "description": description,
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        },
    }
    if headers:
        out["headers"] = headers
    return out


def openapi_document() -> dict[str, object]:
    """The OpenAPI 3.1 description of `GET /api/v1/stats`, written by hand to match it."""
    listed = {"type": "array", "items": {"type": "string"}}
    cell = {
        "type": "object",
        "required": ["key", "values"],
        "properties": {
            "key": {
                "type": "object",
                "description": "the cell's value of each `by` dimension (null: not recorded)",
                "additionalProperties": {"type": ["string", "null"]},
            },
            "values": {
                "type": ["object", "null"],
                "description": "each metric's count; null when the cell is suppressed",
                "additionalProperties": {"type": "integer"},
            },
            "suppressed": {"type": "boolean", "const": True},
            "suppressed_days": {
                "type": "integer",
                "minimum": 1,
                "description": "days of the range on which this cell had fewer than k persons "
                "(or was hidden beside one that had): left out of `values`",
            },
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "veil stats API",
            "version": "1",
            "description": "Purpose-bound, thresholded aggregates of what veil stored. Every "
            "read is audited under the analyst's name.",
        },
        "paths": {
            STATS_PATH: {
                "get": {
                    "operationId": "getStats",
                    "summary": "Aggregates of one purpose's events, small groups suppressed",
                    "security": [{"bearer": []}],
                    "parameters": [
                        _param(
                            "purpose",
                            "the purpose the data is read for",
                            {"type": "string"},
                            required=True,
                        ),
                        _param(
                            "use",
                            "what the read serves; the analyst and the policy must both allow it",
                            {"type": "string", "default": "statistics"},
                        ),
                        _param(
                            "metric",
                            "metrics to count (repeat, or comma-separated)",
                            {
                                "type": "array",
                                "items": {"type": "string", "enum": list(METRICS)},
                                "default": ["events"],
                            },
                            style="form",
                            explode=True,
                        ),
                        _param(
                            "by",
                            "dimensions to group by (repeat, or comma-separated)",
                            {
                                "type": "array",
                                "items": {"type": "string", "enum": list(DIMENSIONS)},
                            },
                            style="form",
                            explode=True,
                        ),
                        _param(
                            "where",
                            "filters as dimension:value (repeat for several)",
                            {
                                "type": "array",
                                "items": {"type": "string", "pattern": "^[a-z_]+:.*$"},
                            },
                            style="form",
                            explode=True,
                        ),
                        _param(
                            "since",
                            "from (inclusive): an ISO 8601 date or time, UTC unless "
                            "an offset is given, or a duration back from now like '7d'; "
                            "the whole UTC day it falls in is read",
                            {"type": "string"},
                        ),
                        _param(
                            "until",
                            "to (exclusive): an ISO 8601 date or time; a time inside a UTC "
                            "day takes in the whole day",
                            {"type": "string"},
                        ),
                        _param(
                            "format",
                            "the answer's format",
                            {"type": "string", "enum": list(FORMATS), "default": "json"},
                        ),
                    ],
                    "responses": {
                        "200": {
                            "description": "the cells, suppressed ones marked",
                            "headers": {"Cache-Control": {"schema": {"const": "no-store"}}},
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Stats"}
                                },
                                "text/csv": {
                                    "schema": {
                                        "type": "string",
                                        "description": "a header row (the by dimensions, the "
                                        "metrics, suppressed), then one row per cell",
                                    }
                                },
                            },
                        },
                        "400": _problem("a query the engine cannot answer"),
                        "401": _problem(
                            "no token, or one unknown or revoked",
                            **{"WWW-Authenticate": {"schema": {"type": "string"}}},
                        ),
                        "403": _problem(
                            "a purpose or use the analyst is not granted, one the policy does "
                            "not open to that use, or a purpose that feeds automated decisions"
                        ),
                        "503": _problem("the store is not open yet"),
                    },
                }
            },
            ME_PATH: {
                "get": {
                    "operationId": "getMe",
                    "summary": "The token's analyst, k, and what each readable purpose offers",
                    "security": [{"bearer": []}],
                    "responses": {
                        "200": {
                            "description": "the analyst and the purposes they may read",
                            "headers": {"Cache-Control": {"schema": {"const": "no-store"}}},
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/Me"}}
                            },
                        },
                        "401": _problem(
                            "no token, or one unknown or revoked",
                            **{"WWW-Authenticate": {"schema": {"type": "string"}}},
                        ),
                        "503": _problem("the store is not open yet"),
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "an analyst's token from `veil analysts add`",
                }
            },
            "schemas": {
                "Stats": {
                    "type": "object",
                    "required": ["purpose", "use", "by", "metrics", "k", "suppressed", "cells"],
                    "properties": {
                        "purpose": {"type": "string"},
                        "use": {"type": "string"},
                        "by": listed,
                        "metrics": listed,
                        "k": {"type": "integer", "description": "the threshold applied"},
                        "suppressed": {"type": "integer", "description": "cells withheld"},
                        "range": {
                            "type": "object",
                            "description": "the whole UTC days read (null: unbounded)",
                            "required": ["first_day", "last_day"],
                            "properties": {
                                "first_day": {"type": ["string", "null"], "format": "date"},
                                "last_day": {"type": ["string", "null"], "format": "date"},
                            },
                        },
                        "cells": {"type": "array", "items": cell},
                    },
                },
                "Me": {
                    "type": "object",
                    "required": ["analyst", "k", "purposes"],
                    "properties": {
                        "analyst": {"type": "string"},
                        "k": {"type": "integer", "description": "the threshold reads apply"},
                        "purposes": {
                            "type": "array",
                            "description": "the granted purposes the policy opens to a granted use",
                            "items": {
                                "type": "object",
                                "required": [
                                    "purpose",
                                    "description",
                                    "uses",
                                    "dimensions",
                                    "metrics",
                                ],
                                "properties": {
                                    "purpose": {"type": "string"},
                                    "description": {"type": "string"},
                                    "uses": {**listed, "description": "the uses a read may state"},
                                    "dimensions": {
                                        **listed,
                                        "description": "what a read may group or filter by",
                                    },
                                    "metrics": listed,
                                },
                            },
                        },
                    },
                },
                "Problem": {
                    "type": "object",
                    "description": "RFC 9457 problem details",
                    "required": ["type", "title", "status", "detail"],
                    "properties": {
                        "type": {"type": "string"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                        "field": {"type": "string"},
                    },
                },
            },
        },
    }
