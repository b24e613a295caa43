"""A per-client token bucket (the beacon and consent endpoints), keyed on the client's network.

Keys are the client's /24 or /48 prefix, never the raw address, and live only in memory; the
table is bounded (least recently seen keys are evicted), so memory stays flat under any traffic.
"""

import time
from collections import OrderedDict


class RateLimiter:
    def __init__(self, rate: float, burst: int, max_keys: int = 100_000) -> None:
        self.rate = rate      # tokens per second
        self.burst = burst    # bucket size
        self.max_keys = max_keys
        self._buckets: OrderedDict[bytes, tuple[float, float]] = OrderedDict()

    def allow(self, key: bytes, now: float | None = None) -> float:
        """0 when allowed (a token is taken), else seconds until the next token."""
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        wait = 0.0 if tokens >= 1 else (1 - tokens) / self.rate
        self._buckets[key] = (tokens - 1 if wait == 0 else tokens, now)
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return wait


def client_key(client, peer: str | None) -> bytes:
    """The bucket of a resolved client (its /24 or /48 prefix: one network, one budget),
    else of the socket peer: a client whose address cannot be resolved is still limited."""
    if client is not None:
        return client.packed[:3 if len(client.packed) == 4 else 6]
    return b"peer:" + (peer or "").encode("latin-1", "replace")
