"""The hot path: copy the listed fields out of an ASGI scope onto a bounded buffer.

Nothing here awaits or parses more than it must; parsing, proxy resolution and
pseudonymisation happen later in the background writer. Only the fields the registry lists are
copied, plus the request path and veil's own cookies (the subject cookie of a subject who
consented, the opt-out cookie of a visitor who refused): other cookies, authorization and the
rest of the request never are.
"""

import asyncio
import re
import time
from collections import deque
from typing import NamedTuple, NotRequired, TypedDict

from starlette.types import Scope


class Beacon(TypedDict):
    """A beacon body as the ingest endpoint validated it (http/beacon.py: parse_beacon)."""

    screen_w: int
    screen_h: int
    pixel_ratio: float
    language: str  # a BCP 47 tag
    path: NotRequired[str]  # no query string or fragment


class Captured(NamedTuple):
    """One captured request, as the hot path copies it: raw bytes, nothing parsed. The one
    definition of its layout: pipeline.Event takes these fields by the same names."""

    purpose: str
    ts: float
    peer: str | None  # the socket's peer address (a proxy's, behind one)
    port: int | None
    agent: bytes  # User-Agent
    accept_language: bytes
    sec_gpc: bytes | None
    sec_dnt: bytes | None  # DNT
    forwarded: bytes  # X-Forwarded-For
    host: bytes
    beacon: Beacon | None  # the validated beacon body; None for a request
    request_path: str | None  # a request's path; None for a beacon
    cookies: "VeilCookies | None"


# Builds a Captured from a tuple in field order without the Python-level __new__ a NamedTuple
# call goes through: on the request path that call costs ~0.3 µs, this ~0.1 µs.
_captured = tuple.__new__

# The request headers veil reads, each with the Captured field it fills. One pass over the
# header list writes them straight into the record (`CaptureBuffer.capture`); every other
# header (authorization, the app's own, …) is skipped and never kept. Building
# dict(scope["headers"]) and looking names up in it cost more than the whole per-request
# allowance. The cookie header's raw value waits in `cookies` until read_cookies replaces it.
_SLOT = {
    name: Captured._fields.index(field)
    for name, field in (
        (b"user-agent", "agent"),
        (b"accept-language", "accept_language"),
        (b"sec-gpc", "sec_gpc"),
        (b"dnt", "sec_dnt"),
        (b"x-forwarded-for", "forwarded"),
        (b"host", "host"),
        (b"cookie", "cookies"),
    )
}
_COOKIES = Captured._fields.index("cookies")


# Over HTTPS (the default) the cookies carry the `__Host-` prefix: a browser accepts such a
# cookie only from this very host, over a secure connection, with Path=/ and no Domain, so a
# sibling subdomain or a network attacker cannot plant one. Plain-HTTP development on a host
# other than localhost needs `consent.secure_cookie = false`: unprefixed names, no Secure flag,
# and no protection against cookie tossing.
SECURE_PREFIX = "__Host-"
_COOKIE = re.compile(rb"(?:^|;)\s*(__Host-)?veil_(sid|optout)=([^;\s]{1,200})")


class VeilCookies(NamedTuple):
    subject: str | None  # the subject cookie's value, not yet verified
    opt_out: str | None  # purposes this browser refused without a subject, '.'-separated


def cookie_names(secure: bool) -> tuple[str, str]:
    """(subject cookie, opt-out cookie) names."""
    prefix = SECURE_PREFIX if secure else ""
    return f"{prefix}veil_sid", f"{prefix}veil_optout"


def read_cookies(header: bytes | None, secure: bool) -> VeilCookies | None:
    """veil's own cookies from a Cookie header; every other cookie is left alone. With
    `secure`, only `__Host-` cookies count (an unprefixed one may have been tossed)."""
    if not header or b"veil_" not in header:
        return None
    found: dict[bytes, str] = {}
    for prefix, name, value in _COOKIE.findall(header):
        if bool(prefix) == secure:
            found.setdefault(name, value.decode("latin-1"))
    if not found:
        return None
    return VeilCookies(found.get(b"sid"), found.get(b"optout"))


class CaptureBuffer:
    """A bounded FIFO. When full, the new event is refused and counted as `queue_full`."""

    __slots__ = ("_items", "errors", "limit", "overflow", "secure", "wake", "wake_at")

    def __init__(self, limit: int, wake_at: int, secure_cookies: bool = True) -> None:
        self._items: deque[Captured] = deque()
        self.limit = limit
        self.wake_at = wake_at
        self.secure = secure_cookies
        self.overflow = 0  # refused: buffer full
        self.errors = 0  # refused: the scope could not be read
        # set up by the writer; set when a batch is ready
        self.wake: asyncio.Event | None = None

    def __len__(self) -> int:
        return len(self._items)

    def capture(
        self,
        scope: Scope,
        purpose: str,
        beacon: Beacon | None = None,
        headers: dict[bytes, bytes] | None = None,
    ) -> bool:
        """Queue one event; False when the buffer is full (the event is counted, not kept)."""
        items = self._items
        if len(items) >= self.limit:
            self.overflow += 1
            return False
        client = scope.get("client") or (None, None)
        # in Captured's field order; a header the request lacks keeps the value shown here
        record: list[object] = [
            purpose,
            time.time(),
            client[0],
            client[1],
            b"",  # agent
            b"",  # accept_language
            None,  # sec_gpc
            None,  # sec_dnt
            b"",  # forwarded
            b"",  # host
            beacon,
            None if beacon else scope["path"],
            None,  # cookies: the raw Cookie header, then what read_cookies finds in it
        ]
        # ASGI servers give names lower-cased. A repeated header's LAST occurrence wins, as
        # with dict(): for X-Forwarded-For that is the line the nearest proxy added (one that
        # adds its own line rather than appending), not one the client sent ahead of it.
        slot = _SLOT.get
        for name, value in scope["headers"] if headers is None else headers.items():
            i = slot(name)
            if i is not None:
                record[i] = value
        cookie = record[_COOKIES]
        if cookie is not None:  # an empty header too: read_cookies makes it None
            record[_COOKIES] = read_cookies(cookie, self.secure)  # type: ignore[arg-type]
        items.append(_captured(Captured, record))
        if len(items) == self.wake_at and self.wake is not None:
            self.wake.set()
        return True

    def put_many(self, items: list[Captured]) -> None:
        """Events another process captured (`veil serve`'s writer, fed by its HTTP workers),
        queued as they are: the sender made sure there is room (collector intake.py)."""
        self._items.extend(items)
        if len(self._items) >= self.wake_at and self.wake is not None:
            self.wake.set()

    def take(self, n: int) -> list[Captured]:
        items = self._items
        return [items.popleft() for _ in range(min(n, len(items)))]

    def take_refused(self) -> tuple[int, int]:
        """(overflow, errors) since the last call."""
        counts = self.overflow, self.errors
        self.overflow = self.errors = 0
        return counts
