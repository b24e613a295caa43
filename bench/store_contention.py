"""A store locked by another process for 10 s, while beacons arrive (issue 9, item 5).

One Veil with its in-process writer (the middleware's), default capture settings, on a real
SQLite store. Beacons arrive at `--rate` per second through `Veil.capture_beacon`, the call
whose answer the beacon endpoint turns into 202 (True) or 503 (False). After `--before`
seconds a second process takes the store's write lock (BEGIN IMMEDIATE, as a `veil
retention` run or a backup does) and holds it `--lock` seconds; beacons keep coming
`--after` seconds past the release, then veil stops (flushing what is queued) and the store
is counted. A ticker task sleeps 5 ms at a time on the same loop: how much later than asked
it wakes is the loop's lag, which every request of the host app would wait too.

    .venv/bin/python bench/store_contention.py [--rate 800] [--lock 10]
    PYTHONPATH=/tmp/veil-base-95bfa47/sdk .venv/bin/python bench/store_contention.py  # base

Printed: events acknowledged (202), refused (503), stored, acknowledged but not stored,
store_error, and the loop's max and p99 lag while locked.
"""

import argparse
import asyncio
import os
import secrets
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from veil import Veil
from veil.config import from_dict

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.6099.109 Safari/537.36"
)
BEACON = {"screen_w": 1280, "screen_h": 800, "pixel_ratio": 2.0, "language": "fr"}
TICK = 0.005  # the ticker's sleep
SEND_EVERY = 0.01  # beacons arrive in groups this often
LOCKER = Path(__file__).with_name("hold_write_lock.py")  # the other process


def scope(n: int) -> dict:
    return {
        "type": "http",
        "method": "POST",
        "path": "/veil/e",
        "headers": [(b"host", b"shop.example"), (b"user-agent", CHROME.encode())],
        "client": (f"198.51.100.{n % 250 + 1}", 40000 + n % 20000),
    }


async def run(args: argparse.Namespace, directory: Path) -> dict[str, float]:
    cfg = from_dict(
        {"store": {"url": "sqlite:///veil.db"}, "keys": {"path": "keys.db"}}, base=directory
    )
    veil = Veil(cfg, enabled=True)
    await veil.start()
    loop = asyncio.get_running_loop()
    counts = {"acknowledged": 0, "refused": 0}
    lags: list[float] = []
    locked = asyncio.Event()
    released = asyncio.Event()

    async def ticker() -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(TICK)
            if locked.is_set() and not released.is_set():
                lags.append(time.perf_counter() - started - TICK)

    async def send(seconds: float) -> None:
        """`args.rate` beacons a second, on a schedule: a late group catches up."""
        per_group = args.rate * SEND_EVERY
        start, sent, n = loop.time(), 0.0, 0
        while (elapsed := loop.time() - start) < seconds:
            due = args.rate * elapsed + per_group
            while sent < due:
                ok = veil.capture_beacon(scope(n), dict(BEACON))
                counts["acknowledged" if ok else "refused"] += 1
                sent, n = sent + 1, n + 1
            await asyncio.sleep(SEND_EVERY)

    tick = asyncio.create_task(ticker())
    sending = asyncio.create_task(send(args.before + args.lock + args.after))
    await asyncio.sleep(args.before)
    locker = await asyncio.create_subprocess_exec(
        sys.executable,
        str(LOCKER),
        str(cfg.store.path),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert locker.stdout is not None and locker.stdin is not None
    assert (await locker.stdout.readline()).strip() == b"locked"
    locked.set()
    await asyncio.sleep(args.lock)
    locker.stdin.close()
    await locker.wait()
    released.set()
    await sending
    tick.cancel()
    await veil.stop()
    stats = veil.stats()
    with sqlite3.connect(cfg.store.path) as db:
        (stored,) = db.execute("SELECT count(*) FROM events WHERE source = 'beacon'").fetchone()
    lags.sort()
    return {
        "events acknowledged (202)": counts["acknowledged"],
        "events refused (503)": counts["refused"],
        "events stored": stored,
        "acknowledged, not stored": counts["acknowledged"] - stored,
        "counted store_error": stats.dropped.get("store_error", 0),
        "counted queue_full": stats.dropped.get("queue_full", 0),
        "loop lag max (ms)": lags[-1] * 1000,
        "loop lag p99 (ms)": lags[int(len(lags) * 0.99)] * 1000,
        "loop lag median (ms)": statistics.median(lags) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=800.0, help="beacons per second")
    parser.add_argument("--lock", type=float, default=10.0, help="seconds the lock is held")
    parser.add_argument("--before", type=float, default=1.0)
    parser.add_argument("--after", type=float, default=2.0)
    args = parser.parse_args()
    os.environ.setdefault("VEIL_MASTER_KEY", secrets.token_hex(32))
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        directory.chmod(0o700)
        results = asyncio.run(run(args, directory))
    print(
        f"store locked {args.lock:g} s by another process, {args.rate:g} beacons/s, "
        "default capture settings\n"
    )
    for name, value in results.items():
        figure = f"{value:,.1f}" if isinstance(value, float) else f"{value:,}"
        print(f"{name:<30}{figure:>12}")


if __name__ == "__main__":
    main()
