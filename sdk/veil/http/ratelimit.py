"""Per-client token buckets, keyed on the client's network: beacons (one token each), and the
permanent rows a network may add to veil's own tables (consent records, app records, review
requests: one token per row).

Keys are the client's /24 or /48 prefix, never the raw address, and live only in memory; the
table is bounded (least recently seen keys are evicted), so memory stays flat under any traffic.
"""

import time
from collections import OrderedDict

from starlette.types import Scope

from ..proxy import Client, ClientResolver
from .problems import Problem


class RateLimiter:
    def __init__(self, rate: float, burst: int, max_keys: int = 100_000) -> None:
        self.rate = rate  # tokens per second
        self.burst = burst  # bucket size
        self.max_keys = max_keys
        self._buckets: OrderedDict[bytes, tuple[float, float]] = OrderedDict()

    def allow(self, key: bytes, now: float | None = None, cost: int = 1) -> float:
        """0 when allowed (`cost` tokens are taken, at most `burst`), else seconds until
        there are enough."""
        now = time.monotonic() if now is None else now
        cost = min(cost, self.burst)
        tokens, last = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        wait = 0.0 if tokens >= cost else (cost - tokens) / self.rate
        self._buckets[key] = (tokens - cost if wait == 0 else tokens, now)
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return wait


def client_key(client: Client | None, peer: str | None) -> bytes:
    """The bucket of a resolved client (its /24 or /48 prefix: one network, one budget),
    else of the socket peer: a client whose address cannot be resolved is still limited."""
    if client is not None:
        return client.packed[: 3 if len(client.packed) == 4 else 6]
    return b"peer:" + (peer or "").encode("latin-1", "replace")


def client_of(
    resolver: ClientResolver, scope: Scope, headers: dict[bytes, bytes]
) -> tuple[Client | None, bytes]:
    """The request's client (None when it cannot be resolved) and its bucket key."""
    peer = (scope.get("client") or (None, None))[0]
    found = resolver.resolve(peer, headers.get(b"x-forwarded-for", b""))
    return found, client_key(found, peer)


def too_many(wait: float, title: str, detail: str) -> Problem:
    return Problem(
        429, "rate-limited", title, detail, headers={"Retry-After": str(max(1, round(wait)))}
    )
