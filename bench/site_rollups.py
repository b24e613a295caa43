"""A site-filtered dashboard panel over 30 days: the top 10 browsers with where=site:X, i.e.
`run(StatsQuery("connection", by=("browser",), filters={"site": X}))`, which groups by
(browser, site). Read from the pair's rollups and live days (store/rollups.py,
store/live_days.py), against the same query with every day read from the rows.

The store is the one bench/analytics_queries.py caches under /tmp/veil-bench-analytics/
(1M cookieless `connection` events over 30 days, 4 sites; run it first), on a fresh copy:
`cold` is the first query of a run (it builds the pair's rollups of the finished days and
the live days' accumulator), then p50 over RUNS per site, interleaved; the answers are
checked equal.

    .venv/bin/python bench/site_rollups.py [--runs 15] [--row-runs 3]
"""

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from veil.analytics import StatsQuery, cells, run
from veil.config import from_dict
from veil.policy import DEFAULT_POLICY
from veil.store import SQLiteStore, layout

CACHE = Path("/tmp/veil-bench-analytics")
DAY = 86_400


def cached() -> Path:
    done = sorted(CACHE.glob("1000000-*/done"), key=lambda p: p.stat().st_mtime)
    if not done:
        raise SystemExit(f"no cached store in {CACHE}: run bench/analytics_queries.py first")
    return done[-1].parent


async def main(runs: int, row_runs: int) -> None:
    scratch = Path(tempfile.mkdtemp(prefix="veil-bench-site-"))
    shutil.copytree(cached(), scratch, dirs_exist_ok=True, ignore=shutil.ignore_patterns("done"))
    cfg = from_dict(
        {
            "store": {"url": "sqlite:///veil.db"},
            "keys": {"path": "keys.db", "master_key_file": "master.key"},
        },
        base=scratch,
    )
    store = SQLiteStore(cfg.store.path)
    await store.open(DEFAULT_POLICY)
    k = cfg.min_group_size
    since = float((int(time.time()) // DAY - 29) * DAY)  # 30 UTC days, today included
    try:
        table = layout.load(store.db)["connection"]
        sites = [
            r[0]
            for r in store.db.execute(
                f"SELECT site, count(*) FROM {layout.quote(table.name)} "
                "GROUP BY site ORDER BY 2 DESC"
            )
        ]
        print(f"{scratch}: sites {sites}, k={k}")

        async def panel(site: str) -> tuple[float, list[object]]:
            query = StatsQuery(
                "connection", ("events", "visitors"), ("browser",), {"site": site}, since
            )
            started = time.perf_counter()
            result = await run(store, DEFAULT_POLICY, query, k)
            return time.perf_counter() - started, result.cells[:10]

        cold, _ = await panel(sites[0])
        fast: dict[str, list[float]] = {s: [] for s in sites}
        slow: dict[str, list[float]] = {s: [] for s in sites}
        answers: dict[str, list[object]] = {}
        for i in range(runs):
            for site in sites:
                seconds, answers[site] = await panel(site)
                fast[site].append(seconds)
                if i < row_runs:
                    real = cells.day_cells
                    cells.day_cells = cells.raw_day_cells  # type: ignore[assignment]
                    try:
                        seconds, rows_answer = await panel(site)
                    finally:
                        cells.day_cells = real  # type: ignore[assignment]
                    assert rows_answer == answers[site], site
                    slow[site].append(seconds)
        print(f"cold (builds the browser|site rollups, 29 days): {cold * 1000:,.0f} ms")
        print(
            f"top 10 browsers, where=site:X, 30 days  rollups (p50 of {runs})  "
            f"rows (p50 of {row_runs})"
        )
        for site in sites:
            a = statistics.median(fast[site]) * 1000
            b = statistics.median(slow[site]) * 1000
            print(f"  {site:22} {a:10.1f} ms {b:14,.0f} ms")
    finally:
        await store.close()
        shutil.rmtree(scratch)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--row-runs", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.row_runs))
