"""Daily rollups (store/rollups.py): what they cost to build, what they save a dashboard, and
what keeping them current costs the insert path.

  build      1M cookieless `connection` events over the last 30 UTC days (today included,
             up to now), ~150 agents, 40 countries, ~12k visitors and ~5k networks
             a day: time to build the rollups of the 29 finished days, for the totals and
             for each single dimension (the first dashboard query after a change pays it).
  queries    p50 over REPS runs of `day_cells` (rollups; today read from the rows) against
             `raw_day_cells` (the rows) for the dashboard's two shapes over 30 days: the
             daily series (no dimension) and the top browsers (one dimension).
  insert     events/s of `store.write` (250-row transactions) into a fresh store, with the
             insert path's invalidation and with it stubbed out, interleaved, medians.

The generated store is cached in /tmp/veil-rollup-bench (delete it to regenerate).

    .venv/bin/python bench/rollup_build.py
"""

import asyncio
import os
import random
import secrets
import shutil
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("VEIL_MASTER_KEY", secrets.token_hex(32))

from veil.analytics.cells import day_cells, raw_day_cells
from veil.config import from_dict
from veil.store import SQLiteStore, layout, rollups
from veil.store.columns import ROW_COLUMNS

EVENTS = 1_000_000
DAYS = 30
REPS = 15
CACHE = Path("/tmp/veil-rollup-bench")
DAY = 86_400.0
BROWSERS = ["Chrome", "Safari", "Firefox", "Edge", "Samsung Internet", "Opera", "Chrome Mobile"]
OSES = ["Windows", "Mac OS X", "iOS", "Android", "Linux"]
DIMS = ["browser", "os", "country", "language", "screen", "hour", "site"]


def config(base: Path):
    return from_dict(
        {"store": {"url": "sqlite:///veil.db"}, "keys": {"path": "keys.db"}}, base=base
    )


def event_rows(n: int, first: float, last: float, rng: random.Random, tag: str) -> list[tuple]:
    agents = [
        (rng.choice(OSES), str(rng.randrange(8, 18)), b, str(rng.randrange(100, 130)))
        for b in BROWSERS
        for _ in range(22)
    ]
    countries = [f"C{i:02d}" for i in range(40)]
    index = {c: i for i, c in enumerate(ROW_COLUMNS)}
    out = []
    for i in range(n):
        ts = first + (last - first) * i / n + rng.uniform(0, 1)
        d = int(ts // DAY)
        row: list[object] = [None] * len(ROW_COLUMNS)
        os_, osv, browser, bv = agents[min(int(rng.paretovariate(1.2)) - 1, len(agents) - 1)]
        for column, value in (
            ("event_id", f"{tag}{i}"),
            ("ts", ts),
            ("purpose", "connection"),
            ("policy_version", "1.0"),
            ("source", "request"),
            ("site", "shop.example"),
            ("visitor", f"v{d}-{rng.randrange(12_000)}"),
            ("network", f"n{d}-{rng.randrange(5_000)}"),
            ("country", rng.choice(countries)),
            ("os", os_),
            ("os_version", osv),
            ("browser", browser),
            ("browser_version", bv),
            ("language", rng.choice(["en", "de", "ja", "fr"])),
            ("screen_w", rng.choice([390, 414, 768, 1280, 1440, 1920])),
        ):
            if column in index:
                row[index[column]] = value
        out.append(tuple(row))
    return out


async def cached_store(cache: Path) -> tuple[SQLiteStore, bool]:
    """The store cached in `cache`, open, and whether it is new (empty: to be generated)."""
    fresh = not (cache / "veil.db").exists()
    if fresh:
        shutil.rmtree(cache, ignore_errors=True)
        cache.mkdir(mode=0o700)
    cfg = config(cache)
    store = SQLiteStore(cfg.store.path)
    await store.open(cfg.policy)
    return store, fresh


async def generated() -> tuple[SQLiteStore, float]:
    """The cached store (generated if missing) and the `now` its data ends at."""
    store, fresh = await cached_store(CACHE)
    if fresh:
        now = time.time()
        first = (int(now // DAY) - DAYS + 1) * DAY
        rng = random.Random(1)
        store.chunk = 5_000
        started = time.perf_counter()
        step = (now - first) / 10  # in time order, as traffic arrives
        for k in range(10):
            a, b = first + k * step, first + (k + 1) * step
            await store.write(event_rows(100_000, a, b, rng, f"e{k}-"), Counter(), "d")
        print(f"generated {EVENTS:,} events in {time.perf_counter() - started:.1f} s")
    return store, time.time()


def p50(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:7.1f} ms"


async def timed(call, reps: int = REPS) -> list[float]:
    out = []
    for _ in range(reps):
        started = time.perf_counter()
        await call()
        out.append(time.perf_counter() - started)
    return out


async def queries(store: SQLiteStore, now: float) -> None:
    table = layout.load(store.db)["connection"]
    store.db.execute("DELETE FROM rollup_days")  # the trigger empties `rollups` with it
    (n,) = store.db.execute(f"SELECT count(*) FROM {layout.quote(table.name)}").fetchone()
    first = time.strftime("%Y-%m-%d", time.gmtime(now - (DAYS - 1) * DAY))
    today = time.strftime("%Y-%m-%d", time.gmtime(now))
    yesterday = time.strftime("%Y-%m-%d", time.gmtime(now - DAY))
    print(f"{n:,} events, {first}..{today}; rollups built for the days before {yesterday}")
    print("build (first query of a shape, 30 days):")
    for dims in [(), *((d,) for d in DIMS)]:
        (took,) = await timed(lambda dims=dims: day_cells(store, table, dims, first, today), 1)
        (rows,) = store.db.execute(
            "SELECT count(*) FROM rollups WHERE dim = ?", (dims[0] if dims else "",)
        ).fetchone()
        print(f"  {'/'.join(dims) or 'totals':8} {took:6.2f} s  ({rows} rollup rows)")
    print(f"queries, p50 of {REPS}:            rollups        rows")
    for name, dims, last in (
        ("daily series, 30 days   ", (), today),
        ("top browsers, 30 days   ", ("browser",), today),
        ("daily series, to yday   ", (), yesterday),
        ("top browsers, to yday   ", ("browser",), yesterday),
        ("by country, 30 days     ", ("country",), today),
    ):
        fast = await timed(lambda d=dims, la=last: day_cells(store, table, d, first, la))
        slow = await timed(lambda d=dims, la=last: raw_day_cells(store, table, d, first, la), 5)
        assert await day_cells(store, table, dims, first, last) == await raw_day_cells(
            store, table, dims, first, last
        )
        print(f"  {name}   {p50(fast)}   {p50(slow)}")
    for dims in ((), ("browser",)):
        one = await timed(lambda d=dims: raw_day_cells(store, table, d, yesterday, yesterday))
        print(f"  one whole day from the rows ({'/'.join(dims) or 'totals'}): {p50(one)}")


async def inserts() -> None:
    base = Path(tempfile.mkdtemp())
    cfg = config(base)
    store = SQLiteStore(cfg.store.path)
    await store.open(cfg.policy)
    rng = random.Random(2)
    now = time.time()
    batches = [event_rows(20_000, now - 3600, now, rng, f"i{k}-") for k in range(12)]
    real = rollups.invalidate_rows
    rates: dict[str, list[float]] = {"with invalidation": [], "without": []}
    try:
        for k, batch in enumerate(batches):
            name = "with invalidation" if k % 2 else "without"
            rollups.invalidate_rows = real if k % 2 else (lambda db, purpose, rows: None)
            started = time.perf_counter()
            await store.write(batch, Counter(), "d")
            rates[name].append(len(batch) / (time.perf_counter() - started))
    finally:
        rollups.invalidate_rows = real
        await store.close()
        shutil.rmtree(base)
    print("insert path, store.write, 250-row transactions (median events/s):")
    for name, values in rates.items():
        print(f"  {name:18} {statistics.median(values):10,.0f}")


async def main() -> None:
    store, now = await generated()
    try:
        await queries(store, now)
    finally:
        await store.close()
    await inserts()


if __name__ == "__main__":
    asyncio.run(main())
