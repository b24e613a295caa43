"""Retention never freezes the host app (issue 7, item 18).

A store with a few hundred thousand expired rows, as a month of a busy site leaves: disposing
of them used to run on the app's event loop, one DELETE and a VACUUM per expired key, and every
request waited (16.9 s on 2M rows). These tests run retention on a real SQLite file while the
same loop serves a ticker, a concurrent writer, or real HTTP requests through uvicorn, and
check a liveness bound far above anything normal (tests assert no timings: a loop that
answers within half a second is merely alive; it was seconds before). They also check that
disposal stays unrecoverable and exact: the deleted rows' values are in no file, every kept row
is there, and the consent ledger and the provision register are untouched.
"""

import asyncio
import os
import secrets
import shutil
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from servers import ServerProcess

from veil.config import from_dict
from veil.retention import enforce
from veil.store import SQLiteStore
from veil.store.columns import ROW_COLUMNS
from veil.store.keys import KeyStore

from conftest import CHROME, scalar

DAY = 86400.0
BULK = 640_000  # rows of 60 days ago, every HISTORY_EVERY-th a browsing_history row (90 days)
HISTORY_EVERY = 4
HISTORY = BULK // HISTORY_EVERY  # kept: within browsing_history's 90 days
EXPIRED = BULK - HISTORY  # connection rows past the purpose's 30 days
KEPT = 3_000 + HISTORY  # with the recent connection rows
STALL_BOUND = 0.5  # s: a liveness bound, ~100x the loop's normal gaps here; it was seconds


def rows(n: int, first_ts: float, marker: str, history_every: int = 0) -> list[tuple]:
    """Rows as the pipeline stores them: connection rows carry `marker` in their visitor
    pseudonym; every `history_every`-th row is a browsing_history row (a subject and a path).

    The event id carries the marker too, lowercase: its index leaves stale copies as the
    table does (`find_deleted`), and the search counts the table's."""
    out = []
    for i in range(n):
        v = dict.fromkeys(ROW_COLUMNS)
        v.update(
            event_id=f"ev-{marker.lower()}-{i:010d}",
            ts=first_ts + i * 0.25,
            purpose="connection",
            policy_version="1.0",
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
            seal_key="seal-2026-11-25",
            sealed_endpoint=bytes(12) + i.to_bytes(4, "big") * 8,
        )
        if history_every and i % history_every == 0:
            v.update(
                purpose="browsing_history",
                subject=f"{i * 2654435761 % 2**64:032x}",
                path=f"/shop/item/{i}",
            )
        else:
            v.update(visitor=f"{marker}{i:010d}{'0' * 12}")
        out.append(tuple(v.get(c) for c in ROW_COLUMNS))
    return out


def fill(path: Path, batches: list[list[tuple]]) -> None:
    """Write through the store, each batch whole (its event tables are the policy's)."""

    async def write() -> None:
        store = SQLiteStore(path)
        await store.open()
        # the ledger knows every subject, as consenting leaves it (sqlite.py _without_erased)
        subject = ROW_COLUMNS.index("subject")
        store.db.executemany(
            "INSERT INTO consent_ledger (ts, subject, scope, action, method, explicit, gpc, "
            "policy_version, jurisdiction) VALUES (0, ?, 'browsing_history', 'grant', "
            "'banner', 1, 0, '1.0', 'gdpr')",
            [(r[subject],) for batch in batches for r in batch if r[subject] is not None],
        )
        for batch in batches:
            await store.write(batch, Counter(), "2026-11-25")
        await store.close()

    asyncio.run(write())
    db = sqlite3.connect(path, isolation_level=None)
    db.execute(
        "INSERT INTO consent_ledger (ts, subject, scope, action, method, explicit, gpc, "
        "policy_version, jurisdiction) VALUES (?, 'EXPIREDSUBJECT', 'browsing_history', "
        "'grant', 'banner', 1, 0, '1.0', 'gdpr')",
        (time.time() - 400 * DAY,),
    )
    db.execute(
        "INSERT INTO provisions (ts, recipient, country, role, purpose, categories, "
        "subjects, records, basis, safeguard) VALUES (?, 'CloudCo', 'DE', 'processor', "
        "'connection', 'user.device', 3, 9, 'consent', 'domestic')",
        (time.time() - 400 * DAY,),
    )
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A store file with EXPIRED expired and KEPT recent rows, built once and copied."""
    d = tmp_path_factory.mktemp("template")
    cfg = from_dict({"store": {"url": "sqlite:///veil.db"}, "keys": {"path": "keys.db"}}, base=d)

    async def create() -> None:
        store = SQLiteStore(cfg.store.path)
        await store.open(cfg.policy)
        await store.close()

    asyncio.run(create())
    now = time.time()
    bulk = rows(BULK, now - 60 * DAY, "EXPIRED", HISTORY_EVERY)
    fill(
        cfg.store.path,
        [bulk[i : i + 50_000] for i in range(0, BULK, 50_000)]
        + [rows(KEPT - HISTORY, now - 2 * DAY, "KEPTROW")],
    )
    return cfg.store.path


@pytest.fixture
def populated(template, data_dir) -> Path:
    path = data_dir / "veil.db"
    shutil.copyfile(template, path)
    os.chmod(path, 0o600)
    return path


def count(path: Path, where: str = "1", params: tuple = ()) -> int:
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return db.execute(f"SELECT count(*) FROM event_rows WHERE {where}", params).fetchone()[0]
    finally:
        db.close()


def expired_left(path: Path) -> int:
    return count(path, "purpose = 'connection' AND ts < ?", (time.time() - 30 * DAY,))


def _pages(f: Path) -> Iterator[tuple[int, bytes]]:
    """(page number, page bytes) of a database file, or of the frames of its WAL."""
    raw = f.read_bytes()
    if f.name.endswith("-wal"):
        size = int.from_bytes(raw[8:12], "big")
        for at in range(32, len(raw) - size + 1, 24 + size):
            yield int.from_bytes(raw[at : at + 4], "big"), raw[at + 24 : at + 24 + size]
    elif f.name.endswith(".db") and raw:
        size = int.from_bytes(raw[16:18], "big")
        size = 65536 if size == 1 else size
        for at in range(0, len(raw), size):
            yield at // size + 1, raw[at : at + size]


def find_deleted(data_dir: Path, marker: bytes) -> tuple[int, list[str]]:
    """Where `marker` still occurs in the store's files: (stale copies in the unallocated gap
    of a b-tree page, every other place). A stale copy is one SQLite leaves when it rebuilds a
    page while moving cells to a sibling (rebuildPage does not zero the gap); secure_delete
    zeroes deleted cells, freeblocks and freed pages, and a TRUNCATE checkpoint empties the
    WAL, so with both in place every other place must be empty."""
    in_gap, elsewhere = 0, []
    for f in sorted(data_dir.iterdir()):
        if not f.name.startswith("veil.db") or f.name.endswith("-shm"):
            continue
        for number, page in _pages(f):
            start = page.find(marker)
            while start >= 0:
                hdr = 100 if number == 1 else 0
                kind = page[hdr]
                if kind in (2, 5, 10, 13):
                    cells = int.from_bytes(page[hdr + 3 : hdr + 5], "big")
                    gap_from = hdr + (12 if kind in (2, 5) else 8) + 2 * cells
                    gap_to = int.from_bytes(page[hdr + 5 : hdr + 7], "big") or 65536
                    if gap_from <= start < gap_to:
                        in_gap += 1
                    else:
                        elsewhere.append(f"{f.name} page {number} offset {start}")
                else:
                    elsewhere.append(f"{f.name} page {number} (not a b-tree page)")
                start = page.find(marker, start + 1)
    return in_gap, elsewhere


def assert_disposed_of(data_dir: Path, kept: int) -> None:
    """No deleted value in any cell, freeblock, free page or WAL frame; the kept rows and the
    records the law asks to keep are all there.

    SQLite itself leaves a few stale copies of rows it moved between pages in the unallocated
    gap of the page they left (the same rows, with the code before this change as with this
    one; measured: 1 of 360,000 deleted rows here). Those are counted, and must stay rare;
    only a VACUUM rewrites every page (see the report of issue 7, item 18)."""
    path = data_dir / "veil.db"
    in_gap, elsewhere = find_deleted(data_dir, b"EXPIRED0")
    assert not elsewhere, elsewhere[:5]
    assert in_gap <= 10, f"{in_gap} stale copies of deleted rows in page gaps"
    assert find_deleted(data_dir, b"KEPTROW")[1]  # the search does see live rows
    assert expired_left(path) == 0
    assert count(path) == kept
    # in force, kept (the subjects' grants too: a subject's latest choice stays)
    assert scalar(path, "SELECT count(*) FROM consent_ledger WHERE subject = 'EXPIREDSUBJECT'") == 1
    assert scalar(path, "SELECT count(*) FROM provisions") == 1


async def watch_loop(done: asyncio.Event) -> float:
    """The longest the loop went without running this task (it asks to run every 5 ms)."""
    worst, last = 0.0, time.perf_counter()
    while not done.is_set():
        await asyncio.sleep(0.005)
        now = time.perf_counter()
        worst, last = max(worst, now - last), now
    return worst


async def test_retention_leaves_the_loop_and_its_writer_running(make_config, populated, data_dir):
    cfg = make_config()
    store = SQLiteStore(cfg.store.path)
    await store.open(cfg.policy)
    keystore = KeyStore.open(cfg.keys)
    loop_statements: list[str] = []
    store.db.set_trace_callback(loop_statements.append)  # the loop's own store connection
    done = asyncio.Event()
    written = 0

    async def keep_writing() -> None:
        """The app's writer, on the same loop: short transactions all through retention."""
        nonlocal written
        while not done.is_set():
            await store.write(rows(100, time.time(), f"NEW{written:08d}"), Counter(), "2026-11-25")
            written += 100
            await asyncio.sleep(0.01)

    ticker = asyncio.create_task(watch_loop(done))
    writer = asyncio.create_task(keep_writing())
    await asyncio.sleep(0.05)
    try:
        disposed = await enforce(store, keystore, cfg.policy)
    finally:
        done.set()
    stall = await ticker
    await writer
    print(f"longest loop stall during retention: {stall:.3f} s")
    assert disposed["connection"] == EXPIRED
    assert written > 0
    # what does not depend on the machine's speed: the deletes and the checkpoint ran on
    # another connection (off the loop), while the loop's connection kept inserting
    # (but for each insert's own one-row invalidation of the day's rollups: store/rollups.py)
    on_loop = [s.split(None, 1)[0].upper() for s in loop_statements if "rollup_days" not in s]
    assert "INSERT" in on_loop and not {"DELETE", "VACUUM"} & set(on_loop)
    assert not [s for s in loop_statements if "wal_checkpoint" in s.lower()]
    assert stall < STALL_BOUND, f"the event loop stalled {stall:.2f} s during retention"
    assert_disposed_of(data_dir, KEPT + written)  # WAL and all, with the store still open
    await store.close()
    keystore.close()
    assert_disposed_of(data_dir, KEPT + written)


def test_requests_are_answered_while_retention_runs(tmp_path, populated, data_dir, master_key):
    """Real HTTP through uvicorn to an app with the middleware: its first flush starts
    retention on the populated store, while requests keep coming."""
    config = tmp_path / "veil.toml"
    config.write_text(
        f'[store]\nurl = "sqlite:///{data_dir.name}/veil.db"\n'
        f'[keys]\npath = "{data_dir.name}/keys.db"\n'
        '[proxy]\ntrusted = ["127.0.0.1"]\n[capture]\nflush_interval = 1.0\n'
    )
    env = {**os.environ, "VEIL_CONFIG": str(config), "VEIL_MASTER_KEY": master_key}
    server = ServerProcess.app("examples.starlette_app:app", env, tmp_path / "server.log").start()
    latencies: list[float] = []
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            deadline = time.monotonic() + 120
            checked_at = 0.0
            while True:
                started = time.perf_counter()
                reply = client.get(
                    "/",
                    headers={
                        "User-Agent": CHROME,
                        "X-Forwarded-For": f"198.51.100.{len(latencies) % 200 + 1}",
                    },
                )
                latencies.append(time.perf_counter() - started)
                assert reply.status_code == 200
                if time.monotonic() - checked_at > 0.25:
                    checked_at = time.monotonic()
                    if expired_left(populated) == 0:
                        break
                assert time.monotonic() < deadline, "retention did not finish"
    finally:
        assert server.stop() == 0  # SIGINT: the lifespan shutdown flushes every request
    worst = max(latencies)
    print(f"slowest of {len(latencies)} requests during retention: {worst:.3f} s")
    assert worst < STALL_BOUND, (
        f"a request waited {worst:.2f} s while retention ran ({len(latencies)} requests)"
    )
    assert_disposed_of(data_dir, KEPT + len(latencies))


async def test_key_destruction_runs_off_the_loop(make_config, data_dir):
    """A keystore of 200,000 subjects' keys and a few expired day keys: the destruction and
    the VACUUM run on a connection of their own, off the loop; the wrapped bytes are gone."""
    cfg = make_config()
    store = SQLiteStore(cfg.store.path)
    await store.open(cfg.policy)
    keystore = KeyStore.open(cfg.keys)
    loop_statements: list[str] = []
    keystore._db.set_trace_callback(loop_statements.append)  # the loop's keystore connection
    db = sqlite3.connect(cfg.keys.path, isolation_level=None)
    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO keys (id, kind, epoch, created_at, expires_at, wrapped) "
        "VALUES (?, 'named', ?, '2026-01-01', '9999-12-31T00:00:00+00:00', ?)",
        [
            (f"subject-{i:032x}", f"subject-{i:032x}", secrets.token_bytes(60))
            for i in range(200_000)
        ],
    )
    expired = [
        (f"visitor-2020-01-{d:02d}", f"2020-01-{d:02d}", secrets.token_bytes(60))
        for d in range(1, 7)
    ]
    db.executemany(
        "INSERT INTO keys (id, kind, epoch, created_at, expires_at, wrapped) "
        "VALUES (?, 'visitor', ?, '2020-01-01', '2020-01-09T00:00:00+00:00', ?)",
        expired,
    )
    db.execute("COMMIT")
    db.close()
    done = asyncio.Event()
    ticker = asyncio.create_task(watch_loop(done))
    await asyncio.sleep(0.05)
    try:
        result = await enforce(store, keystore, cfg.policy)
    finally:
        done.set()
    stall = await ticker
    assert result["keys_destroyed"] == len(expired)
    assert not [s for s in loop_statements if s.upper().startswith(("VACUUM", "UPDATE"))]
    assert stall < STALL_BOUND, f"the event loop stalled {stall:.2f} s destroying keys"
    raw = cfg.keys.path.read_bytes()
    assert not [key_id for key_id, _, wrapped in expired if wrapped in raw]
    assert all(keystore.key_by_id(key_id) is None for key_id, _, _ in expired)
    keystore.close()
    await store.close()


async def test_a_single_destroyed_key_is_gone_from_the_file_at_once(make_config):
    """`destroy` (crypto-shredding one subject) needs no VACUUM: secure_delete zeroes the
    wrapped bytes in place."""
    cfg = make_config()
    keystore = KeyStore.open(cfg.keys)
    for i in range(50):
        keystore.named_key(f"subject-{i}")
    row = keystore._db.execute("SELECT wrapped FROM keys WHERE id='subject-7'").fetchone()
    keystore.destroy("subject-7")
    assert keystore.key_by_id("subject-7") is None
    assert row[0] not in cfg.keys.path.read_bytes()
    keystore.close()


async def test_stopping_during_retention_is_prompt_and_leaves_no_thread(
    make_config, populated, started
):
    """A shutdown while retention runs cancels it between (or inside) chunks: no thread is left
    to keep the process alive, nothing half-deleted; the next start finishes the job."""
    from veil import Veil

    before = set(threading.enumerate())
    veil = await started(Veil(make_config()))
    await veil.flush()  # the first flush of the day starts retention beside the writer
    deadline = time.monotonic() + 60
    while expired_left(populated) == EXPIRED:
        assert time.monotonic() < deadline, "retention did not start"
        await asyncio.sleep(0.01)
    await veil.stop()
    for _ in range(200):
        if not set(threading.enumerate()) - before:
            break
        await asyncio.sleep(0.02)
    assert not set(threading.enumerate()) - before
    assert count(populated) == expired_left(populated) + KEPT
    again = await started(Veil(make_config()))
    await again.flush()
    await again.writer._maintenance
    await again.stop()
    assert count(populated) == KEPT
