"""A stream of distinct huge headers: the worst case for caches keyed by what a request
controls (issue 9). bench/cache_memory.py measures what it leaves behind, and
tests/test_cache_bounds.py bounds it; both feed the pipeline this same stream.

Uses only veil's Captured, so it runs against any veil, the base's too.
"""

from collections.abc import Iterator

import traffic

from veil.capture import Captured

AGENT_BYTES, LANGUAGE_BYTES, CHAIN_BYTES = 12 * 1024, 3 * 1024, 1024


def stream(n: int, ts: float, first: int = 0) -> Iterator[Captured]:
    """`n` requests, each with a distinct 12 KB user-agent (distinct from its first bytes), a
    distinct 3 KB Accept-Language, a distinct client behind the trusted proxy after a 1 KB
    spoofed chain, and its own Host; `first` numbers the first of them."""
    for i in range(first, first + n):
        agent = f"Mozilla/5.0 (Windows NT 10.0; {i:08d}) Chrome/120.0.0.0 ".encode()
        language = f"de-a{i:07x},en;q=0.8,".encode()
        chain = f"{i % 250 + 1}.{i // 250 % 256}.7.9, ".encode() * 64
        yield Captured(
            "connection",
            ts,
            traffic.PROXY,
            443,
            agent.ljust(AGENT_BYTES, b"x"),
            language.ljust(LANGUAGE_BYTES, b"z"),
            None,
            None,
            chain[:CHAIN_BYTES] + f", 198.51.{i // 256 % 256}.{i % 256}".encode(),
            f"shop{i}.example".encode(),
            None,
            "/",
            None,
        )
