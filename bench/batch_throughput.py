"""Remote-sink batches into the collector: events/s end to end into SQLite, and its parts.

The collector runs as `veil serve` (uvicorn, one worker, its own process, SQLite store); this
script is the client process, as a web app with `remote.url` set would be. It sends batches of
500 rows through `veil.store.remote.RemoteStore` (the production client: encode, HMAC-sign,
POST `/veil/batch` over a keep-alive httpx connection, wait for the 200 that follows the
collector's commit). The rows are what an app's pipeline makes: bench/traffic.py requests
(Zipf user-agents, varied addresses and languages) pseudonymised by `veil.pipeline.Pipeline`
with its own keystore; each batch carries the pipeline's drop counts (bots) as a real one
does. Event ids are fresh and time-ordered in every batch, as the pipeline makes them.

Per round, measured in the same run, side by side:

- `e2e, 1 in flight`: one sender awaiting each batch, as one app's writer does;
- `e2e, 4 in flight`: four concurrent senders (several apps, or a backlog being drained);
- `client encode+sign`: `wire.encode_batch` + `wire.signed_headers` alone (client CPU);
- `collector decode+verify`: `wire.verify` + `wire.decode_batch` alone (the collector's
  request-side CPU, timed here on the same rows);
- `store write alone`: `SQLiteStore.write` of the same batches straight into a fresh file,
  no HTTP (the ceiling the endpoint can reach).

The collector's own CPU (all its threads) per batch is read from /proc during the e2e phases.
At the end the collector is stopped and its SQLite file must hold exactly the rows sent and
the drop counts sent.

    .venv/bin/python bench/batch_throughput.py [--rounds 5] [--batches 200]
"""

import argparse
import asyncio
import datetime as dt
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import traffic  # noqa: E402  (bench/ helper, read-only)
from procs import free_port, tree_cpu, wait_listening  # noqa: E402

BATCH = 500
TEMPLATE_EVENTS = 6000  # distinct pipeline rows the batches cycle through
SEED = 11
TS_STEP = 1e-4  # capture times: from the start of the run, increasing, as in production
MASTER_KEY = "5e" * 32
SECRET = "bench-shared-secret-" + "7" * 28  # >= 32 characters


def template(tmp: Path) -> tuple[list[tuple], float]:
    """Rows as an app's pipeline makes them, and the bots dropped per row kept."""
    from veil.capture import CaptureBuffer
    from veil.config import from_dict
    from veil.pipeline import Pipeline
    from veil.proxy import ClientResolver
    from veil.pseudonymise import Pseudonymiser
    from veil.store.keys import KeyStore

    cfg = from_dict(
        {
            "keys": {"path": "app-keys.db"},
            "proxy": {"trusted": [traffic.PROXY]},
            "store": {"url": "sqlite:///unused.db"},
        },
        base=tmp,
    )
    keystore = KeyStore.open(cfg.keys)
    try:
        keystore.rotate()
        pipeline = Pipeline(
            cfg.policy,
            cfg.site,
            ClientResolver(cfg.trusted_proxies),
            Pseudonymiser(keystore),
            None,
            cfg.keys.seal_ip,
        )
        buffer = CaptureBuffer(TEMPLATE_EVENTS, TEMPLATE_EVENTS)
        for scope in traffic.scopes(TEMPLATE_EVENTS, seed=SEED):
            buffer.capture(scope, "connection")
        rows, drops, _ = pipeline.process(buffer.take(TEMPLATE_EVENTS))
    finally:
        keystore.close()
    return rows, sum(drops.values()) / len(rows)


class Batches:
    """Deterministic batches with fresh, increasing event ids and capture times (both are
    indexed: a real collector appends to both indexes, and so must the benchmark)."""

    def __init__(self, rows: list[tuple], bots_per_row: float) -> None:
        self.rows = rows
        self.bots = max(1, round(bots_per_row * BATCH))
        self.made = 0
        self.prefix = f"{1_700_000_000_000:011x}{SEED:08x}"  # fixed: deterministic ids
        self.ts0 = float(int(time.time()))  # now, not a fixed date: retention would delete it

    def make(self, n: int) -> list[tuple[list[tuple], Counter]]:
        out = []
        for _ in range(n):
            k = self.made
            start = (k * BATCH) % (len(self.rows) - BATCH)
            t0 = self.ts0 + k * BATCH * TS_STEP
            rows = [
                (f"{self.prefix}{k:07x}{i:03x}", t0 + i * TS_STEP, *r[2:])
                for i, r in enumerate(self.rows[start : start + BATCH])
            ]
            out.append((rows, Counter({"bot": self.bots})))
            self.made += 1
        return out


async def send_all(store, batches, day: str, inflight: int) -> float:
    todo = iter(batches)

    async def sender() -> None:
        for rows, drops in todo:
            await store.write(rows, drops, day)

    t = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(inflight)))
    return time.perf_counter() - t


async def bench(args, tmp: Path, port: int, proc: subprocess.Popen) -> dict:
    from veil.config import RemoteConfig, from_dict
    from veil.store.remote import RemoteStore
    from veil.store.sqlite import SQLiteStore
    from veil.store.wire import check_headers, decode_batch, encode_batch, signed_headers, verify

    rows, bots_per_row = template(tmp)
    gen = Batches(rows, bots_per_row)
    day = dt.datetime.now(dt.UTC).date().isoformat()
    secret = SECRET.encode()
    remote = RemoteStore(RemoteConfig(url=f"http://127.0.0.1:{port}/veil/batch", timeout=60))
    await remote.open()
    direct = SQLiteStore(tmp / "direct.db")
    await direct.open(from_dict({}, base=tmp).policy)  # the purposes, as the collector's

    try:
        res: dict[str, list[float]] = {
            k: [] for k in ("e2e1", "e2e4", "encode", "decode", "store", "cpu1", "cpu4", "body")
        }
        sent_rows = sent_bots = 0
        await send_all(remote, gen.make(10), day, 1)  # warm-up: connection, collector caches
        sent_rows, sent_bots = 10 * BATCH, 10 * gen.bots
        for r in range(args.rounds):
            phases = ["e2e1", "e2e4", "parts"]
            for phase in phases if r % 2 == 0 else phases[::-1]:
                if phase == "parts":
                    batches = gen.make(args.batches)
                    t = time.perf_counter()
                    bodies = [encode_batch(b, d, day) for b, d in batches]
                    heads = [signed_headers(secret, body) for body in bodies]
                    res["encode"].append((time.perf_counter() - t) / len(batches))
                    res["body"].append(statistics.mean(map(len, bodies)))
                    hdrs = [{k.lower().encode(): v.encode() for k, v in h.items()} for h in heads]
                    t = time.perf_counter()
                    for body, h in zip(bodies, hdrs, strict=True):
                        verify(secret, check_headers(secret, h), body)
                        decode_batch(body)
                    res["decode"].append((time.perf_counter() - t) / len(batches))
                    t = time.perf_counter()
                    for b, d in batches:
                        await direct.write(b, d, day)
                    res["store"].append(len(batches) * BATCH / (time.perf_counter() - t))
                    continue
                inflight = 1 if phase == "e2e1" else 4
                batches = gen.make(args.batches)
                cpu = tree_cpu(proc.pid)
                elapsed = await send_all(remote, batches, day, inflight)
                res[f"cpu{inflight}"].append((tree_cpu(proc.pid) - cpu) / len(batches))
                res[phase].append(len(batches) * BATCH / elapsed)
                sent_rows += len(batches) * BATCH
                sent_bots += len(batches) * gen.bots
    finally:
        await remote.close()
        await direct.close()
    res["sent_rows"], res["sent_bots"] = sent_rows, sent_bots
    return res


def main() -> int:
    args, tmp = parse_args(), Path(tempfile.mkdtemp(prefix="veil-batch-"))
    try:
        return run(args, tmp)
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batches", type=int, default=200, help="batches of 500 per phase per round")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (SQLite files, logs)")
    return ap.parse_args()


def run(args: argparse.Namespace, tmp: Path) -> int:
    (tmp / "veil.toml").write_text('[store]\nurl = "sqlite:///veil.db"\n[keys]\npath = "keys.db"\n')
    os.environ["VEIL_MASTER_KEY"] = MASTER_KEY
    os.environ["VEIL_REMOTE_SECRET"] = SECRET
    os.environ.pop("VEIL_CONFIG", None)
    port = free_port()
    log = tmp / "collector.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "veil_collector.cli",
                "serve",
                "--config",
                str(tmp / "veil.toml"),
                "--port",
                str(port),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp,
        )
    try:
        wait_listening(port, proc, log)
        client_cpu = time.process_time()
        res = asyncio.run(bench(args, tmp, port, proc))
        client_cpu = time.process_time() - client_cpu
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()

    med = {k: statistics.median(v) for k, v in res.items() if isinstance(v, list)}
    print(
        f"veil batch endpoint: batches of {BATCH} via RemoteStore -> uvicorn 1 worker -> "
        f"SQLite; {args.rounds} rounds x {args.batches} batches per phase, "
        f"{os.cpu_count()} CPUs\n"
    )
    print(f"{'measure':<34}{'median':>12}{'min':>12}{'max':>12}  unit")

    def line(label: str, key: str, unit: str, scale: float = 1.0, fmt: str = ",.0f") -> None:
        v = [x * scale for x in res[key]]
        print(
            f"{label:<34}{statistics.median(v):>12{fmt}}{min(v):>12{fmt}}{max(v):>12{fmt}}  {unit}"
        )

    line("e2e, 1 in flight", "e2e1", "events/s")
    line("e2e, 4 in flight", "e2e4", "events/s")
    line("store write alone (no HTTP)", "store", "events/s")
    line("request body", "body", "KB/batch", 1e-3, ".1f")
    line("client encode+sign", "encode", "ms/batch", 1e3, ".2f")
    line("collector decode+verify (alone)", "decode", "ms/batch", 1e3, ".2f")
    line("collector CPU, 1 in flight", "cpu1", "ms/batch", 1e3, ".2f")
    line("collector CPU, 4 in flight", "cpu4", "ms/batch", 1e3, ".2f")
    store_ms = BATCH / med["store"] * 1e3
    e2e_ms = BATCH / med["e2e1"] * 1e3
    rest_ms = e2e_ms - store_ms - (med["encode"] + med["decode"]) * 1e3
    print(
        f"\none batch, 1 in flight: {e2e_ms:.2f} ms end to end = store {store_ms:.2f} ms + "
        f"encode {med['encode'] * 1e3:.2f} ms + decode/verify {med['decode'] * 1e3:.2f} ms + "
        f"the rest (HTTP both sides, scheduling) {rest_ms:.2f} ms"
    )
    best = max(med["e2e1"], med["e2e4"])
    print(
        f"goal >= 50,000 events/s end to end: {'met' if best >= 50_000 else 'NOT met'} "
        f"(best median {best:,.0f}); client process CPU {client_cpu:.1f} s in all"
    )

    db = sqlite3.connect(tmp / "veil.db")
    (stored,) = db.execute("SELECT COUNT(*) FROM event_rows").fetchone()
    (distinct,) = db.execute("SELECT COUNT(DISTINCT event_id) FROM event_rows").fetchone()
    (bots,) = db.execute("SELECT COALESCE(SUM(count), 0) FROM drops WHERE reason='bot'").fetchone()
    db.close()
    ok = stored == distinct == res["sent_rows"] and bots == res["sent_bots"]
    print(
        f"collector's SQLite: {stored:,} rows ({distinct:,} distinct event ids), "
        f"{bots:,} bot drops; sent {res['sent_rows']:,} rows (warm-up included), "
        f"{res['sent_bots']:,} bot drops: {'OK' if ok else 'MISMATCH'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
