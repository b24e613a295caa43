"""Request latency while the daily retention runs, before and after it moved off the loop.

A store of `--rows` rows (default 2,000,000), all collected 60 days ago: three in four are
connection rows (30 days' retention, so expired), one in four browsing_history rows (90 days,
kept), interleaved as a real stream interleaves them. The app is examples/starlette_app.py
behind `VeilMiddleware`, under uvicorn (one worker, its own process); its writer's first flush
after start runs the day's retention. This script is the client: `--clients` keep-alive
connections send `GET /` back to back, each timed, from before retention starts until every
expired row is gone (polled read-only from here), then a few seconds more.

Each variant is a veil source tree: this one, and a checkout of the code before the change
(`--base`, e.g. `git worktree add /tmp/base-h2 0637979`), run one after the other in the same
run, each on its own store built by its own code (same rows).

    .venv/bin/python bench/retention_stall.py --base /tmp/base-h2 [--rows 2000000]

Printed per variant: how long retention took, how many requests were answered meanwhile, and
their latency (median, p99, worst), next to the same figures in the seconds before it started.
"""

import argparse
import os
import secrets
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
from procs import free_port, wait_listening

ROOT = Path(__file__).resolve().parents[1]
DAY = 86400.0
FLUSH = 3.0  # the app's flush interval: its writer's first flush, and retention, start then
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.6099.109 Safari/537.36"
)


def build(directory: Path, n: int) -> None:
    """(In a subprocess, with the variant's code on sys.path.) Create the store with the
    variant's own schema, then insert the rows directly, 50,000 per transaction."""
    import asyncio

    from veil.config import from_dict
    from veil.store import SQLiteStore
    from veil.store.columns import ROW_COLUMNS

    cfg = from_dict(
        {"store": {"url": "sqlite:///veil.db"}, "keys": {"path": "keys.db"}}, base=directory
    )

    async def create() -> None:
        store = SQLiteStore(cfg.store.path)
        await store.open(cfg.policy)
        await store.close()

    asyncio.run(create())

    async def write(rows: list[tuple]) -> None:  # the variant's own store and schema
        store = SQLiteStore(cfg.store.path)
        await store.open()
        await store.write(rows, Counter(), "2026-11-25")
        await store.close()

    first = time.time() - 60 * DAY
    for start in range(0, n, 50_000):
        batch = []
        for i in range(start, min(n, start + 50_000)):
            v = dict.fromkeys(ROW_COLUMNS)
            v.update(
                event_id=f"ev{i:012d}{secrets.token_hex(4)}",
                ts=first + i * 0.02,
                purpose="connection",
                policy_version=cfg.policy.version,
                source="request",
                site="shop.example",
                network=f"{i % 5000:032x}",
                country="DE",
                region="BE",
                os="Windows",
                os_version="10",
                browser="Chrome",
                browser_version="120",
                device="Other",
                language="de",
                languages="de-DE,de,en-US,en",
                gpc=0,
                dnt=0,
                screen_w=1920,
                pixel_ratio=1.0,
            )
            if i % 4 == 0:
                v.update(
                    purpose="browsing_history",
                    subject=secrets.token_hex(16),
                    path=f"/shop/item/{i}",
                )
            else:
                v.update(visitor=secrets.token_hex(16))
            batch.append(tuple(v.get(c) for c in ROW_COLUMNS))
        asyncio.run(write(batch))
    db = sqlite3.connect(cfg.store.path, isolation_level=None)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def expired_left(db_path: Path) -> int:
    db = sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        narrow = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'event_rows'").fetchone()
        return db.execute(
            f"SELECT count(*) FROM {'event_rows' if narrow else 'event_log'} "
            "WHERE purpose = 'connection' AND ts < ?",
            (time.time() - 30 * DAY,),
        ).fetchone()[0]
    finally:
        db.close()


def run_variant(name: str, tree: Path, rows: int, clients: int, work: Path) -> dict:
    directory = work / name / "data"
    directory.mkdir(parents=True)
    env = {
        **os.environ,
        "PYTHONPATH": f"{tree / 'sdk'}:{tree / 'collector'}:{tree}",
        "VEIL_MASTER_KEY": "5e" * 32,
    }
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, __file__, "--build", str(directory), "--rows", str(rows)],
        env=env,
        check=True,
    )
    print(f"{name}: built {rows:,} rows in {time.perf_counter() - started:.0f} s", flush=True)
    db_path = directory / "veil.db"
    total = expired_left(db_path)
    config = work / name / "veil.toml"
    config.write_text(
        '[store]\nurl = "sqlite:///data/veil.db"\n[keys]\npath = "data/keys.db"\n'
        f'[proxy]\ntrusted = ["127.0.0.1"]\n[capture]\nflush_interval = {FLUSH}\n'
        # flushes on the timer only, so that retention starts FLUSH s in
        "batch_size = 100000\nqueue_size = 200000\n"
    )
    port = free_port()
    log = (work / name / "server.log").open("wb")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "examples.starlette_app:app",
            "--port",
            str(port),
            "--no-proxy-headers",
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        cwd=tree,
        env={**env, "VEIL_CONFIG": str(config)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    timings: list[tuple[float, float]] = []  # (sent at, latency)
    stop = threading.Event()

    def client(k: int) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as http:
            n = 0
            while not stop.is_set():
                at = time.perf_counter()
                http.get(
                    "/",
                    headers={"User-Agent": CHROME, "X-Forwarded-For": f"198.51.{k}.{n % 250 + 1}"},
                )
                timings.append((at, time.perf_counter() - at))
                n += 1

    wait_listening(port, server, work / name / "server.log")
    began = time.perf_counter() + FLUSH  # the writer's first flush starts retention
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    while expired_left(db_path):
        time.sleep(0.25)
    ended = time.perf_counter()
    time.sleep(3)
    stop.set()
    for t in threads:
        t.join()
    server.send_signal(signal.SIGINT)
    server.wait(timeout=120)
    log.close()
    during = [lat for at, lat in timings if at + lat >= began - 0.5 and at <= ended]
    before = [lat for at, lat in timings if began - FLUSH + 0.5 < at and at + lat < began - 0.5]
    return {
        "name": name,
        "expired": total,
        "retention_s": ended - began,
        "before": before,
        "during": during,
    }


def describe(lat: list[float]) -> str:
    if not lat:
        return f"{'(none)':>38}"
    q = statistics.quantiles(lat, n=100) if len(lat) > 1 else [lat[0]] * 99
    return (
        f"{len(lat):>7,} {statistics.median(lat) * 1e3:>8.1f} {q[98] * 1e3:>8.1f} "
        f"{max(lat) * 1e3:>10.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--base", type=Path, help="a checkout of the code before the change")
    parser.add_argument("--build", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build:
        build(args.build, args.rows)
        return
    work = Path(tempfile.mkdtemp(prefix="veil-retention-bench-"))
    try:
        variants = [("before", args.base)] if args.base else []
        results = [
            run_variant(name, tree, args.rows, args.clients, work)
            for name, tree in [*variants, ("after", ROOT)]
        ]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"\n{args.rows:,} rows, {args.clients} keep-alive clients sending GET / back to back; "
        "latency in ms"
    )
    print(
        f"{'variant':<8} {'expired':>9} {'retention':>10}  {'phase':<7}"
        f"{'requests':>8} {'median':>8} {'p99':>8} {'worst':>10}"
    )
    for r in results:
        for phase in ("before", "during"):
            print(
                f"{r['name']:<8} {r['expired']:>9,} {r['retention_s']:>9.1f}s  {phase:<7}"
                f"{describe(r[phase])}"
            )


if __name__ == "__main__":
    main()
