"""Caches keyed by what a request controls are bounded in bytes (issue 9, must hold).

The cache type itself (caches.ByteLRU), then the bound through the real pipeline: a stream of
20,000 distinct 12 KB user-agents and 3 KB Accept-Language headers (each from a distinct client
behind a trusted proxy, with a long spoofed X-Forwarded-For and its own Host) grew the process
by ~140 MB and kept it before the caches were bounded in bytes (bench/cache_memory.py).
"""

import gc
import sys
import time
import tracemalloc
from pathlib import Path

from veil import agents, caches, languages, proxy
from veil.caches import ENTRY_OVERHEAD, ByteLRU
from veil.capture import Captured

# bench/hostile_headers.py: the stream bench/cache_memory.py measures, bounded here
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import hostile_headers


def fixed(size: int):
    """A weigher that says every entry is `size` bytes."""
    return lambda key, value: size


def test_entries_are_evicted_by_bytes_least_recently_used_first():
    c: ByteLRU[str, int] = ByteLRU(300, fixed(100))
    for k in "abc":
        c.put(k, ord(k))
    assert (c.oldest_first(), c.nbytes) == (["a", "b", "c"], 300)
    assert c.get("a") == ord("a")  # a is now the most recently used
    c.put("d", 4)
    assert c.oldest_first() == ["c", "a", "d"] and c.nbytes == 300  # b went: least recently used
    assert c.get("b") is None and c.get("b", "absent") == "absent"


def test_the_budget_counts_key_and_value_sizes_not_entries():
    c: ByteLRU[bytes, bytes] = ByteLRU(9_500)
    c.put(b"k" * 4000, b"v")
    c.put(b"x", b"y")
    assert len(c) == 2
    c.put(b"z" * 5000, b"w")  # 4000 + 5000 + three entries' overheads > 9,500: the oldest goes
    assert c.oldest_first() == [b"x", b"z" * 5000]
    assert c.nbytes == sum(caches.weigh_entry(k, c.get(k)) for k in c.oldest_first())
    assert c.nbytes <= 9_500
    assert caches.weigh_entry(b"x", ("a", "b")) > ENTRY_OVERHEAD + 3 * 40  # tuples count inside


def test_an_entry_larger_than_the_budget_is_not_kept_and_evicts_nothing():
    c: ByteLRU[str, int] = ByteLRU(1000, lambda key, value: len(key))
    c.put("small", 1)
    c.put("x" * 1001, 2)
    assert c.oldest_first() == ["small"] and "x" * 1001 not in c and c.nbytes == 5


def test_replacing_an_entry_reweighs_it():
    c: ByteLRU[str, str] = ByteLRU(1000, lambda key, value: len(value))
    c.put("a", "x" * 10)
    c.put("b", "x" * 10)
    c.put("a", "x" * 500)
    assert c.nbytes == 510 and c.oldest_first() == ["b", "a"] and c.get("a") == "x" * 500


def test_disabled_caches_keep_nothing_then_their_budget_comes_back():
    c: ByteLRU[str, int] = ByteLRU(1000, fixed(10))
    c.put("a", 1)
    with caches.disabled():
        assert c.get("a") is None
        c.put("b", 2)
        assert len(c) == 0
    c.put("b", 2)
    assert c.oldest_first() == ["b"]


# -- through the real pipeline -------------------------------------------------------------

EVENTS = 20_000
# What the caches may keep (the sum of their budgets), plus interpreter slack: the hash tables
# of the dicts behind them do not shrink after eviction, and tracemalloc counts small
# allocations an import or a first call makes.
BUDGETS = (
    agents.CACHE_BYTES + languages.CACHE_BYTES + proxy.CACHE_BYTES + 3 * (1 << 16)
)  # + the trusted peers, Host → site, and the pseudonymiser's (day, site) hashers
BOUND = BUDGETS + 2 * 1024 * 1024  # ≈ 5.4 MiB; see docs in bench/cache_memory.py


def test_a_stream_of_distinct_huge_headers_leaves_a_bounded_footprint(pipeline_for):
    pipeline = pipeline_for(proxy={"trusted": ["10.0.0.0/8"]})
    now = time.time()
    agents.warm_up()
    pipeline.process(list(hostile_headers.stream(200, now)))  # first calls: imports, the day's keys
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = 0
        batch: list[Captured] = []
        for event in hostile_headers.stream(EVENTS, now):
            batch.append(event)
            if len(batch) == 1000:
                kept += len(pipeline.process(batch).rows)
                batch.clear()
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
        print(f"grown by {grown / 2**20:.2f} MiB, bound {BOUND / 2**20:.2f} MiB")
    finally:
        tracemalloc.stop()
    assert kept == EVENTS  # every event went through every step, none dropped
    assert grown < BOUND, f"the pipeline kept {grown / 2**20:.1f} MiB"
