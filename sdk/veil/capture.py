"""The hot path: copy the listed fields out of an ASGI scope onto a bounded buffer.

Nothing here awaits or parses more than it must; parsing, proxy resolution and
pseudonymisation happen later in the background writer. Only the fields the registry lists are
copied, plus the request path and veil's own subject cookie (used only for a subject who
consented): other cookies, authorization and the rest of the request never are.
"""

import re
import time
from collections import deque

SUBJECT_COOKIE = "veil_sid"
# A captured event is a plain tuple (cheapest to build on the hot path): (purpose, ts, peer
# host, peer port, User-Agent, Accept-Language, Sec-GPC, DNT, X-Forwarded-For, Host, beacon,
# request path, subject cookie id). pipeline.Event unpacks it in that order.
COOKIE_ID = 12
_SUBJECT = re.compile(rb"(?:^|;)\s*veil_sid=([A-Za-z0-9_-]{22})(?:;|$)")


def subject_cookie(header: bytes) -> str | None:
    """The subject cookie's id from a Cookie header; every other cookie is left alone."""
    if b"veil_sid=" not in header:
        return None
    m = _SUBJECT.search(header)
    return m[1].decode() if m else None


class CaptureBuffer:
    """A bounded FIFO. When full, the new event is refused and counted as `queue_full`."""

    __slots__ = ("_items", "errors", "limit", "overflow", "wake", "wake_at")

    def __init__(self, limit: int, wake_at: int) -> None:
        self._items: deque[tuple] = deque()
        self.limit = limit
        self.wake_at = wake_at
        self.overflow = 0  # refused: buffer full
        self.errors = 0  # refused: the scope could not be read
        self.wake = None  # an asyncio.Event the writer sets up; set when a batch is ready

    def __len__(self) -> int:
        return len(self._items)

    def capture(self, scope: dict, purpose: str, beacon: dict | None = None,
                headers: dict[bytes, bytes] | None = None) -> bool:
        """Queue one event; False when the buffer is full (the event is counted, not kept)."""
        items = self._items
        if len(items) >= self.limit:
            self.overflow += 1
            return False
        if headers is None:
            headers = dict(scope["headers"])
        client = scope.get("client") or (None, None)
        cookie = headers.get(b"cookie")
        items.append((
            purpose, time.time(), client[0], client[1],
            headers.get(b"user-agent", b""), headers.get(b"accept-language", b""),
            headers.get(b"sec-gpc"), headers.get(b"dnt"),
            headers.get(b"x-forwarded-for", b""), headers.get(b"host", b""), beacon,
            None if beacon else scope["path"], subject_cookie(cookie) if cookie else None,
        ))
        if len(items) == self.wake_at and self.wake is not None:
            self.wake.set()
        return True

    def take(self, n: int) -> list[tuple]:
        items = self._items
        return [items.popleft() for _ in range(min(n, len(items)))]

    def take_refused(self) -> tuple[int, int]:
        """(overflow, errors) since the last call."""
        counts = self.overflow, self.errors
        self.overflow = self.errors = 0
        return counts
