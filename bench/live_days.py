"""Live days (store/live_days.py): what a dashboard query costs when it includes today, read
from the rows against kept in memory; and what the generation bump costs a delete.

  queries    1M cookieless `connection` events over 30 UTC days, today holding its 1/30 share
             (~33k rows, between midnight and now), rollups built for the days that are over:
             p50 over REPS of the daily series and the top browsers over the 30 days,
             cold (accumulators dropped before each query: it builds them) and warm
             (200 new rows inserted before each query), with the live days read from the
             rows ("before": the accumulators switched off) and from memory ("after"); and
             the memory the two accumulators hold.
  deletes    one DELETE statement of 100k rows (of 200k) with the triggers as they are and
             with the generation bump left out of them, interleaved, medians.

The generated store is cached in /tmp/veil-live-bench (delete it to regenerate); its today
is the day it was generated on.

    .venv/bin/python bench/live_days.py
"""

import asyncio
import os
import random
import secrets
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path

os.environ.setdefault("VEIL_MASTER_KEY", secrets.token_hex(32))
sys.path.insert(0, str(Path(__file__).parent))

from rollup_build import DAY, cached_store, config, event_rows

from veil.analytics.cells import day_cells
from veil.store import SQLiteStore, layout, live_days, rollups

EVENTS = 1_000_000
DAYS = 30
REPS = 15
CACHE = Path("/tmp/veil-live-bench")


async def generated() -> SQLiteStore:
    """A copy of the cached store (generated if missing: 29 whole days, then today's 1/30
    of the events from midnight to now), which the warm queries' inserts go to."""
    store, fresh = await cached_store(CACHE)
    if fresh:
        now = time.time()
        midnight = int(now // DAY) * DAY
        first = midnight - (DAYS - 1) * DAY
        rng = random.Random(1)
        store.chunk = 5_000
        started = time.perf_counter()
        past, step = EVENTS - EVENTS // DAYS, (midnight - first) / 10
        for k in range(10):
            a, b = first + k * step, first + (k + 1) * step
            await store.write(event_rows(past // 10, a, b, rng, f"e{k}-"), Counter(), "d")
        await store.write(event_rows(EVENTS // DAYS, midnight, now - 2, rng, "t-"), Counter(), "d")
        print(f"generated {EVENTS:,} events in {time.perf_counter() - started:.1f} s")
    await store.close()
    work = Path(tempfile.mkdtemp())
    shutil.copy(CACHE / "veil.db", work / "veil.db")
    cfg = config(work)
    store = SQLiteStore(cfg.store.path)
    await store.open(cfg.policy)
    return store


def p50(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:6.1f} ms"


async def no_live(*args: object) -> None:
    return None


async def queries(store: SQLiteStore) -> None:
    table = layout.load(store.db)["connection"]
    name = layout.quote(table.name)
    now = time.time()
    first = time.strftime("%Y-%m-%d", time.gmtime(now - (DAYS - 1) * DAY))
    today = time.strftime("%Y-%m-%d", time.gmtime(now))
    (n,) = store.db.execute(f"SELECT count(*) FROM {name}").fetchone()
    (n_today,) = store.db.execute(
        f"SELECT count(*) FROM {name} WHERE ts >= ?", (int(now // DAY) * DAY,)
    ).fetchone()
    print(f"{n:,} events, {first}..{today}, {n_today:,} of them today; live from", end=" ")
    print(rollups.settled_day(), "(exclusive)")
    for dims in ((), ("browser",)):  # the rollups of the days that are over, built
        await day_cells(store, table, dims, first, today)
    rng = random.Random(3)
    real = live_days.day_cells
    print(f"p50 of {REPS}, 30 days incl. today:     cold       warm (after 200 new rows)")
    for label, switched in (("before (rows)", False), ("after (memory)", True)):
        live_days.day_cells = real if switched else no_live  # type: ignore[assignment]
        for shape, dims in (("daily series", ()), ("top browsers", ("browser",))):
            cold, warm = [], []
            for _ in range(REPS):
                live_days._live.clear()
                started = time.perf_counter()
                await day_cells(store, table, dims, first, today)
                cold.append(time.perf_counter() - started)
            for k in range(REPS):
                stamp = time.time()
                more = event_rows(200, stamp - 5, stamp - 1, rng, f"w{label}{shape}{k}-")
                await store.write(more, Counter(), "d")
                started = time.perf_counter()
                await day_cells(store, table, dims, first, today)
                warm.append(time.perf_counter() - started)
            print(f"  {label:15} {shape:13} {p50(cold)}   {p50(warm)}")
    live_days.day_cells = real
    live_days._live.clear()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for dims in ((), ("browser",)):
        await day_cells(store, table, dims, first, today)
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    entries = live_days.entries()
    print(
        f"memory: the two accumulators hold {entries:,} set entries, "
        f"{held / 1e6:.1f} MB traced ({held / max(entries, 1):.0f} bytes an entry); "
        f"cap {live_days.MAX_ENTRIES:,} entries"
    )


async def deletes() -> None:
    base = Path(tempfile.mkdtemp())
    cfg = config(base)
    store = SQLiteStore(cfg.store.path)
    await store.open(cfg.policy)
    store.chunk = 5_000
    table = layout.load(store.db)["connection"]
    name = layout.quote(table.name)
    trigger = f"rollups_{table.name}_delete"
    with_bump = rollups._triggers(table)[trigger]
    rng = random.Random(2)
    took: dict[str, list[float]] = {"with the bump": [], "without": []}
    try:
        for k in range(8):
            label = "with the bump" if k % 2 else "without"
            store.db.execute(f'DROP TRIGGER "{trigger}"')
            store.db.execute(with_bump if k % 2 else with_bump.replace(rollups.BUMP, ""))
            now = time.time()
            await store.write(
                event_rows(200_000, now - 2 * DAY, now, rng, f"d{k}-"), Counter(), "d"
            )
            (cut,) = store.db.execute(
                f"SELECT ts FROM {name} ORDER BY ts LIMIT 1 OFFSET 100000"
            ).fetchone()
            started = time.perf_counter()
            deleted = store.db.execute(f"DELETE FROM {name} WHERE ts < ?", (cut,)).rowcount
            took[label].append(time.perf_counter() - started)
            assert deleted == 100_000
            store.db.execute(f"DELETE FROM {name}")
    finally:
        await store.close()
        shutil.rmtree(base)
    print("one DELETE of 100k rows (secure_delete on), median:")
    for label, values in took.items():
        print(f"  {label:14} {statistics.median(values) * 1000:7.1f} ms")


async def main() -> None:
    store = await generated()
    try:
        await queries(store)
    finally:
        await store.close()
        shutil.rmtree(store.path.parent)
    await deletes()


if __name__ == "__main__":
    asyncio.run(main())
