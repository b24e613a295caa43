"""Reading requests safely: bounded bodies, bounded JSON, and telling same-site from
cross-site POSTs. Used by veil's endpoints and by the collector's signed batch endpoint."""

import asyncio
import contextlib
from collections.abc import Iterator

from starlette.types import Receive, Scope

from .. import jsonbody
from ..errors import JSONInvalid
from .problems import Problem


def _disconnected() -> Problem:
    return Problem(
        400,
        "client-disconnected",
        "Client disconnected",
        "the client went away before the body was complete",
    )


def _too_large(limit: int) -> Problem:
    return Problem(
        413, "body-too-large", "Body too large", f"the body must be at most {limit} bytes"
    )


async def read_body(
    scope: Scope, receive: Receive, limit: int, headers: dict[bytes, bytes] | None = None
) -> bytes:
    """The request body, or a 413 as soon as it is known to exceed `limit` bytes."""
    length = (headers if headers is not None else dict(scope["headers"])).get(b"content-length")
    if length is not None and (not length.isdigit() or int(length) > limit):
        raise _too_large(limit)
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _disconnected()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def declared_length(headers: dict[bytes, bytes], limit: int) -> int:
    """The Content-Length of a body that must be bounded before it is read: 411 without one
    (a chunked body's size is known only once it is in memory), 413 over `limit`."""
    length = headers.get(b"content-length")
    if length is None or b"transfer-encoding" in headers:
        raise Problem(
            411,
            "length-required",
            "Length required",
            "send the body with a Content-Length header, not chunked",
        )
    if not length.isdigit() or len(length) > 12:
        raise Problem(
            400,
            "bad-content-length",
            "Bad Content-Length",
            "Content-Length must be a number of bytes",
        )
    if int(length) > limit:
        raise _too_large(limit)
    return int(length)


class ByteBudget:
    """How many bytes of bodies not yet authenticated may sit in memory at once: a request
    reserves its Content-Length before reading; when the budget is spent the answer is 503
    with Retry-After, so any number of unauthenticated senders holds at most `limit` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    @contextlib.contextmanager
    def reserve(self, size: int) -> Iterator[None]:
        if self.used + size > self.limit:  # no await between check and take: no race
            raise Problem(
                503,
                "busy",
                "Busy",
                "too many bodies are being received; retry",
                headers={"Retry-After": "1"},
            )
        self.used += size
        try:
            yield
        finally:
            self.used -= size


async def read_exactly(receive: Receive, length: int, deadline: float) -> bytearray:
    """A body of exactly `length` bytes (its Content-Length) within `deadline` seconds; 400 or
    408 otherwise, so a sender that trickles cannot hold its reservation for ever. The buffer
    is allocated once at its full size: no regrowth, no second copy from joining chunks, so a
    reservation of n bytes is n bytes of memory."""
    body = bytearray(length)
    got = 0
    try:
        async with asyncio.timeout(deadline):
            with memoryview(body) as view:
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        raise _disconnected()
                    chunk = message.get("body", b"")
                    if got + len(chunk) > length:
                        raise Problem(
                            400,
                            "bad-content-length",
                            "Bad Content-Length",
                            "the body is longer than its Content-Length",
                        )
                    view[got : got + len(chunk)] = chunk
                    got += len(chunk)
                    if not message.get("more_body", False):
                        break
    except TimeoutError:
        raise Problem(
            408,
            "request-timeout",
            "Request timeout",
            f"the body did not arrive within {deadline:g} s",
        ) from None
    if got != length:
        raise Problem(
            400,
            "bad-content-length",
            "Bad Content-Length",
            "the body is shorter than its Content-Length",
        )
    return body


async def read_json(
    scope: Scope,
    receive: Receive,
    limit: int,
    headers: dict[bytes, bytes] | None = None,
    title: str = "Malformed request",
) -> object:
    """A body of at most `limit` bytes (413 beyond) parsed as strict, shallow JSON (400
    otherwise): what every JSON POST endpoint reads."""
    return parse_json(await read_body(scope, receive, limit, headers), title=title)


def json_object(data: object, title: str = "Malformed request") -> dict[str, object]:
    """`data` when it is a JSON object, else the 400 saying the body must be one."""
    if not isinstance(data, dict):
        raise Problem(400, "malformed-body", title, "the body must be a JSON object")
    return data


def origin_allowed(headers: dict[bytes, bytes]) -> bool:
    """False for a browser's cross-site request (CSRF): by Origin, else Sec-Fetch-Site."""
    origin = headers.get(b"origin")
    if origin is not None:  # "null" (sandboxed, opaque origins) is never our own page
        return origin.split(b"://", 1)[-1] == headers.get(b"host", b"")
    return headers.get(b"sec-fetch-site", b"same-origin") in (b"same-origin", b"none")


def require_same_site(headers: dict[bytes, bytes], what: str) -> None:
    """The 403 for a browser's cross-site request (`origin_allowed`): `what` (e.g. "a rights
    request") can only come from this site's own pages."""
    if not origin_allowed(headers):
        raise Problem(
            403,
            "cross-site",
            "Cross-site request refused",
            f"{what} can only come from this site's own pages",
        )


def parse_json(
    body: bytes | bytearray, kind: str = "malformed-body", title: str = "Malformed request"
) -> object:
    """Strict, shallow JSON (veil.jsonbody), or the 400 problem saying what is wrong."""
    try:
        return jsonbody.decode(body)
    except JSONInvalid as exc:
        raise Problem(400, kind, title, str(exc)) from None
