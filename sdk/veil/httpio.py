"""Reading requests safely: bounded bodies, bounded JSON, and telling same-site from
cross-site POSTs."""

import asyncio
import contextlib
import json
import re
from collections.abc import Iterator

from starlette.types import Receive, Scope

from .problems import Problem

# veil's own bodies nest three levels at most ({"fields": {...}}, a batch's rows); CPython's
# JSON decoder recurses once per level and would raise RecursionError (a 500) at ~1,000.
MAX_JSON_DEPTH = 16
_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+"', re.DOTALL)  # possessive: linear on any input
_NOT_BRACKET = re.compile(r"[^\[\]{}]++")
_INNERMOST = re.compile(r"\[\]|\{\}")


def _too_large(limit: int) -> Problem:
    return Problem(413, "body-too-large", "Body too large",
                   f"the body must be at most {limit} bytes")


async def read_body(scope: Scope, receive: Receive, limit: int,
                    headers: dict[bytes, bytes] | None = None) -> bytes:
    """The request body, or a 413 as soon as it is known to exceed `limit` bytes."""
    length = (headers if headers is not None else dict(scope["headers"])).get(b"content-length")
    if length is not None and (not length.isdigit() or int(length) > limit):
        raise _too_large(limit)
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Problem(400, "client-disconnected", "Client disconnected",
                          "the client went away before the body was complete")
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
        raise Problem(411, "length-required", "Length required",
                      "send the body with a Content-Length header, not chunked")
    if not length.isdigit() or len(length) > 12:
        raise Problem(400, "bad-content-length", "Bad Content-Length",
                      "Content-Length must be a number of bytes")
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
            raise Problem(503, "busy", "Busy", "too many bodies are being received; retry",
                          headers={"Retry-After": "1"})
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
                        raise Problem(400, "client-disconnected", "Client disconnected",
                                      "the client went away before the body was complete")
                    chunk = message.get("body", b"")
                    if got + len(chunk) > length:
                        raise Problem(400, "bad-content-length", "Bad Content-Length",
                                      "the body is longer than its Content-Length")
                    view[got:got + len(chunk)] = chunk
                    got += len(chunk)
                    if not message.get("more_body", False):
                        break
    except TimeoutError:
        raise Problem(408, "request-timeout", "Request timeout",
                      f"the body did not arrive within {deadline:g} s") from None
    if got != length:
        raise Problem(400, "bad-content-length", "Bad Content-Length",
                      "the body is shorter than its Content-Length")
    return body


def origin_allowed(headers: dict[bytes, bytes]) -> bool:
    """False for a browser's cross-site request (CSRF): by Origin, else Sec-Fetch-Site."""
    origin = headers.get(b"origin")
    if origin is not None:  # "null" (sandboxed, opaque origins) is never our own page
        return origin.split(b"://", 1)[-1] == headers.get(b"host", b"")
    return headers.get(b"sec-fetch-site", b"same-origin") in (b"same-origin", b"none")


def _too_deep(text: str, limit: int) -> bool:
    """True when `text` nests arrays/objects deeper than `limit` (or its brackets do not
    balance, which no valid JSON does). At most `limit` linear passes, all in C's regex
    engine: no recursion, whatever the input."""
    if text.count("[") + text.count("{") <= limit:  # the common case, one pass each
        return False
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    for _ in range(limit):  # each pass removes the innermost level
        brackets, n = _INNERMOST.subn("", brackets)
        if not brackets or not n:
            break
    return bool(brackets)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")  # Python's json accepts NaN and Infinity; RFC 8259 not


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)  # built once: json.loads with a
# keyword argument would build a decoder per call


def parse_json(body: bytes | bytearray, kind: str = "malformed-body",
               title: str = "Malformed request",
               max_depth: int | None = MAX_JSON_DEPTH) -> object:
    """Strict UTF-8 JSON nested at most `max_depth` levels, or a 400 problem saying what is
    wrong: never a RecursionError, ValueError or UnicodeDecodeError for the caller to leak.

    `max_depth=None` skips the pre-check (it costs about 3x the parse on a large body; the
    signed batch endpoint, whose shape is checked after parsing, uses it): the decoder's own
    recursion limit then bounds the depth, and its RecursionError becomes the same 400.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Problem(400, kind, title, "the body is not UTF-8") from None
    if max_depth is not None and _too_deep(text, max_depth):
        raise Problem(400, kind, title, f"the body nests arrays and objects more than "
                                        f"{max_depth} levels deep (or is not valid JSON)")
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise Problem(400, kind, title, f"the body is not valid JSON: {exc.msg} at "
                                        f"character {exc.pos}") from None
    except RecursionError:
        raise Problem(400, kind, title, "the body nests arrays and objects too deep") from None
    except ValueError:  # NaN or Infinity; an integer of more than 4,300 digits
        raise Problem(400, kind, title, "the body is not valid JSON: NaN, Infinity or an "
                                        "integer too long") from None
