"""How many acknowledged beacons a crash loses: `kill -9` of `veil serve` under steady load.

A 202 from `POST /veil/e` means the beacon was validated and queued in memory; the writer
commits the queue to SQLite every `capture.flush_interval` seconds, or as soon as
`capture.batch_size` beacons wait. A SIGKILL (or power loss, or the OOM killer) loses what
was queued and not yet committed. This script measures that: `veil serve` (its own process,
one worker) gets beacons at a steady rate from `--clients` keep-alive connections; after a
random 2-4 s it is killed with SIGKILL (or, with `--signal term`, stopped with SIGTERM, which
must lose nothing); then the 202s counted here are compared with what the SQLite file holds
(rows plus pipeline drops, which are committed in the same transactions).

    .venv/bin/python bench/crash_loss.py [--rates 200,1000,3000] [--flush 1.0,0.2]
                                         [--trials 3] [--signal kill|term]

Printed per (rate, flush interval): beacons acknowledged, stored, lost, the loss in seconds
of traffic (lost / rate), which the bound says is at most about the flush interval (plus,
when `batch_size` triggers first, one batch and the time to write it), and the collector's
CPU time per acknowledged beacon (all its threads, from /proc), to see what a shorter flush
interval costs.
"""

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from procs import free_port, tree_cpu, wait_listening

ROOT = Path(__file__).resolve().parents[1]
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.6099.109 Safari/537.36"
)
BEACON = json.dumps({"screen_w": 1920, "screen_h": 1080, "pixel_ratio": 1, "language": "de"})


def stored(db_path: Path) -> int:
    if not db_path.exists():
        return 0
    db = sqlite3.connect(db_path)
    try:
        rows = db.execute("SELECT count(*) FROM event_rows").fetchone()[0]
        drops = db.execute("SELECT coalesce(sum(count), 0) FROM drops").fetchone()[0]
        return rows + drops
    finally:
        db.close()


def trial(
    rate: float,
    flush: float | None,
    clients: int,
    how: str,
    work: Path,
    seconds: float | None = None,
) -> dict:
    work.mkdir(parents=True)
    config = work / "veil.toml"
    capture = f"[capture]\nflush_interval = {flush}\n" if flush is not None else ""
    config.write_text(
        '[store]\nurl = "sqlite:///data/veil.db"\n[keys]\npath = "data/keys.db"\n'
        "[ingest]\nrate = 1000000.0\nburst = 1000000\n" + capture
    )
    port = free_port()
    env = {**os.environ, "VEIL_MASTER_KEY": "5e" * 32}
    with (work / "server.log").open("wb") as log:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "veil_collector.cli",
                "serve",
                "--port",
                str(port),
                "--config",
                str(config),
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    wait_listening(port, server, work / "server.log")
    acked = [0] * clients
    refused = [0] * clients
    stop = threading.Event()
    start = time.perf_counter() + 0.2

    def client(k: int) -> None:
        interval = clients / rate
        due = start + k * interval / clients
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            while not stop.is_set():
                pause = due - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                due += interval
                try:
                    r = http.post(
                        "/veil/e",
                        content=BEACON,
                        headers={"Content-Type": "text/plain", "User-Agent": CHROME},
                    )
                except httpx.HTTPError:
                    return  # the server is gone
                if r.status_code == 202:
                    acked[k] += 1
                else:
                    refused[k] += 1

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    cpu_at_start = tree_cpu(server.pid)
    for t in threads:
        t.start()
    time.sleep(0.2 + (seconds or random.uniform(2.0, 4.0)))
    cpu = tree_cpu(server.pid) - cpu_at_start
    acked_then = sum(acked)
    server.send_signal(signal.SIGKILL if how == "kill" else signal.SIGTERM)
    server.wait(timeout=60)
    stop.set()
    for t in threads:
        t.join()
    sent_for = time.perf_counter() - start
    ok, kept = sum(acked), stored(work / "data" / "veil.db")
    return {
        "acked": ok,
        "refused": sum(refused),
        "stored": kept,
        "lost": ok - kept,
        "achieved": ok / sent_for,
        "cpu_us": cpu / max(acked_then, 1) * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rates", default="200,1000,3000")
    parser.add_argument(
        "--flush",
        default="default,0.2",
        help="capture.flush_interval values; 'default' leaves it unset",
    )
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--signal", choices=("kill", "term"), default="kill")
    parser.add_argument(
        "--seconds", type=float, help="send for this long (default: a random 2-4 s per trial)"
    )
    args = parser.parse_args()
    random.seed(7)
    work = Path(tempfile.mkdtemp(prefix="veil-crash-bench-"))
    print(
        f"{'rate/s':>7} {'flush_interval':>14} {'achieved/s':>10} {'acked':>7} {'stored':>7} "
        f"{'lost':>6} {'lost, s of traffic':>18} {'server CPU/beacon':>17}"
    )
    n = 0
    for rate in (float(r) for r in args.rates.split(",")):
        for _ in range(args.trials):  # interleaved: a noisy machine hits every setting alike
            for flush_text in args.flush.split(","):
                flush = None if flush_text == "default" else float(flush_text)
                n += 1
                r = trial(rate, flush, args.clients, args.signal, work / str(n), args.seconds)
                print(
                    f"{rate:>7.0f} {flush_text:>14} {r['achieved']:>10.0f} {r['acked']:>7} "
                    f"{r['stored']:>7} {r['lost']:>6} {r['lost'] / r['achieved']:>18.3f} "
                    f"{r['cpu_us']:>14.0f} us"
                    + (f"  ({r['refused']} refused)" if r["refused"] else ""),
                    flush=True,
                )
    print(f"\nsignal: SIG{args.signal.upper()}; data in {work}")


if __name__ == "__main__":
    main()
