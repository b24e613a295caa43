"""Background throughput: events/s from the capture buffer to committed rows.

One run, REPS interleaved repetitions of:
  end to end   the running writer drains EVENTS queued events (pipeline + SQLite store,
               batches of `capture.batch_size`), timed until every event is stored or dropped;
  end to end, writer process
               the same with `veil serve`'s writer-process setting: 2,000-row transactions
               (one per batch) instead of 250 with a yield between them;
  pipeline     `writer.pipeline.process` alone over the same kind of events, batch by batch:
               every event from a client never seen before, the worst case for the
               pipeline's caches of (peer, X-Forwarded-For) → client;
  pipeline, clients seen
               each of those batches again, right after: every client's answer cached, as
               a page view's beacon finds its request's (agents and languages repeat in both);
  store        `store.write` alone of the rows the pipeline produced, batch by batch;
  raw SQLite   stdlib sqlite3 `executemany` of those same rows, WAL, synchronous=NORMAL, one
               transaction per batch, into (a) a fresh plain table of the same columns (28) and
               (b) a fresh copy of veil's own schema (its indexes and foreign key included), and,
               for scale only, (c) a plain table of just the first 5 columns.
Traffic: ~200 distinct user-agents, Zipf-like (3 of them bots), ~200k distinct client IPs
behind a trusted proxy (traffic.py). The queue is sized to hold a whole repetition, filled
before timing starts, so the figure is pure drain throughput. Medians over repetitions.

    .venv/bin/python bench/pipeline_throughput.py [events]
"""

import asyncio
import datetime as dt
import gc
import logging
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import traffic

from veil import Veil
from veil.store.columns import ROW_COLUMNS
from veil.store.schema import MIGRATIONS
from veil.store.sqlite import CHUNK

WRITER_CHUNK = 2000  # veil_collector.writer_process.WRITER_CHUNK (bench/ imports no collector)

EVENTS = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
BATCH = 1000
REPS = 3
POLL = 0.002  # s between progress checks while the writer drains

NARROW = next(i for i, m in enumerate(MIGRATIONS) if "CREATE TABLE event_tables" in m)


def fill(veil: Veil, seed: int) -> None:
    for scope in traffic.requests(EVENTS, seed=seed):
        veil.capture_request(scope)
    assert len(veil.buffer) == EVENTS, "the queue must hold a whole repetition"


def processed(veil: Veil) -> int:
    stats = veil.stats()
    return stats.stored + sum(stats.dropped.values())


async def drained(veil: Veil, seed: int) -> float:
    """Seconds the running writer takes to drain a queue of EVENTS fresh events."""
    fill(veil, seed)
    target = processed(veil) + EVENTS
    gc.collect()
    t0 = time.perf_counter()
    while processed(veil) < target:
        await asyncio.sleep(POLL)
    return time.perf_counter() - t0


def batches(items: list) -> list[list]:
    return [items[i : i + BATCH] for i in range(0, len(items), BATCH)]


def raw_insert(
    path: Path,
    rows: list[tuple],
    table: str,
    create: str | None,
    columns: tuple[str, ...] = ROW_COLUMNS,
) -> float:
    """Seconds to insert `rows` with plain sqlite3, one transaction per batch."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA foreign_keys=ON")
    if create:
        db.execute(create)
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    t0 = time.perf_counter()
    for chunk in batches(rows):
        db.execute("BEGIN IMMEDIATE")
        db.executemany(sql, chunk)
        db.execute("COMMIT")
    seconds = time.perf_counter() - t0
    db.close()
    return seconds


async def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    cfg, tmp = traffic.veil_config(
        {"capture": {"queue_size": EVENTS, "batch_size": BATCH, "flush_interval": 3600.0}}
    )
    veil = Veil(cfg)
    await veil.start()
    # veil's schema, empty, with its purposes: the template for the raw-schema baseline
    template = Path(tempfile.mkdtemp(prefix="veil-bench-raw-")) / "schema.db"
    with sqlite3.connect(cfg.store.path) as src, sqlite3.connect(template) as dst:
        src.backup(dst)
    day = dt.datetime.now(dt.UTC).date().isoformat()
    pipeline = veil.writer.pipeline
    times: dict[str, list[float]] = {
        k: []
        for k in (
            "end to end",
            "end to end, writer process",
            "pipeline",
            "pipeline, clients seen",
            "store",
            "raw plain table",
            "raw veil schema",
            "raw 5 columns only",
        )
    }
    counts: dict[str, int] = {}

    for rep in range(REPS):
        # end to end: the background writer drains the queue (woken by the first full batch)
        times["end to end"].append(await drained(veil, seed=100 + rep))
        counts["end to end"] = EVENTS

        # the same in `veil serve`'s writer process, whose loop serves no requests: one
        # transaction per batch (a store without `chunk`, before it, has no such stage)
        if hasattr(veil.store, "chunk"):
            veil.store.chunk = WRITER_CHUNK
            times["end to end, writer process"].append(await drained(veil, seed=300 + rep))
            counts["end to end, writer process"] = EVENTS
            veil.store.chunk = CHUNK

        # pipeline alone (the writer stays idle: the queue is emptied before it can run)
        fill(veil, seed=200 + rep)
        captured = veil.buffer.take(EVENTS)
        gc.collect()
        rows, drops = [], Counter()
        t0 = time.perf_counter()
        for chunk in batches(captured):
            r, d, _ = pipeline.process(chunk)
            rows += r
            drops += d
        times["pipeline"].append(time.perf_counter() - t0)
        counts["pipeline"] = EVENTS
        seen = 0.0
        for chunk in batches(captured):
            pipeline.process(chunk)  # untimed: the clients' first requests
            t0 = time.perf_counter()
            pipeline.process(chunk)
            seen += time.perf_counter() - t0
        times["pipeline, clients seen"].append(seen)
        counts["pipeline, clients seen"] = EVENTS
        del captured

        # store alone, then the raw baselines, on the same rows
        gc.collect()
        t0 = time.perf_counter()
        for chunk in batches(rows):
            await veil.store.write(chunk, Counter(), day)
        times["store"].append(time.perf_counter() - t0)
        for name in ("store", "raw plain table", "raw veil schema", "raw 5 columns only"):
            counts[name] = len(rows)

        work = Path(tempfile.mkdtemp(prefix="veil-bench-raw-"))
        columns = ", ".join(ROW_COLUMNS)
        times["raw plain table"].append(
            raw_insert(work / "plain.db", rows, "t", f"CREATE TABLE t ({columns})")
        )
        times["raw 5 columns only"].append(
            raw_insert(
                work / "narrow.db",
                [r[:5] for r in rows],
                "t",
                f"CREATE TABLE t ({', '.join(ROW_COLUMNS[:5])})",
                ROW_COLUMNS[:5],
            )
        )
        # the 28-column event_log every row went to before narrow rows (migrations 1-7)
        legacy = sqlite3.connect(work / "veil.db")
        legacy.executescript("".join(MIGRATIONS[:NARROW]))
        legacy.executemany(
            "INSERT INTO purposes VALUES (?, '', 0, 0, '')", [(k,) for k in cfg.policy.purposes]
        )
        legacy.commit()
        legacy.close()
        times["raw veil schema"].append(raw_insert(work / "veil.db", rows, "event_log", None))
        shutil.rmtree(work)
        print(f"repetition {rep + 1}/{REPS} done", file=sys.stderr)

    rate = {k: counts[k] / statistics.median(v) for k, v in times.items() if v}
    raw = rate["raw plain table"]
    print(
        f"\n{EVENTS} events per repetition, batches of {BATCH}, {REPS} repetitions, medians; "
        f"{len(rows)} rows of {len(ROW_COLUMNS)} columns kept, "
        f"drops { ({str(k): v for k, v in drops.items()}) }\n"
    )
    print(f"{'stage':<28}{'per second':>12}{'µs each':>10}{'÷ raw plain':>13}")
    for name, unit in (
        ("end to end", "events"),
        ("end to end, writer process", "events"),
        ("pipeline", "events"),
        ("pipeline, clients seen", "events"),
        ("store", "rows"),
        ("raw plain table", "rows"),
        ("raw veil schema", "rows"),
        ("raw 5 columns only", "rows"),
    ):
        if name not in rate:
            continue
        print(
            f"{name:<28}{rate[name]:>12,.0f}{1e6 / rate[name]:>10.2f}"
            f"{rate[name] / raw:>13.2f}   {unit}"
        )
    best = max(rate["end to end"], rate.get("end to end, writer process", 0))
    print(f"\ngoal: end to end ≥ 100,000 events/s; got {best:,.0f}")
    print(
        f"pipeline.process runs on the event loop: {BATCH / rate['pipeline'] * 1e3:.1f} ms "
        f"without a yield per batch of {BATCH}"
    )
    print(f"writer (end-to-end runs): {veil.stats()}")
    await veil.stop()
    with sqlite3.connect(cfg.store.path) as db:
        stored = db.execute("SELECT COUNT(*) FROM event_rows").fetchone()[0]
    print(f"rows in the store: {stored} (end-to-end runs + store-only runs)")
    shutil.rmtree(tmp)
    shutil.rmtree(template.parent)


if __name__ == "__main__":
    asyncio.run(main())
