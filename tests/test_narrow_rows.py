"""Narrow rows (issue 9, item 2): a table per purpose with only the columns its fields fill,
agents stored once, the analysts' `events` view unchanged, legacy stores migrated in place."""

import asyncio
import dataclasses
import datetime as dt
import sqlite3
import time
from collections import Counter
from pathlib import Path

import pytest

from veil.errors import RowsRefused, StoreError
from veil.policy import DEFAULT_POLICY, Change
from veil.registry import AGENT_COLUMNS, event_columns
from veil.retention import enforce
from veil.store import SQLiteStore
from veil.store.columns import CORE_COLUMNS, ROW_COLUMNS
from veil.store.keys import KeyStore
from veil.store.schema import MIGRATIONS
from veil.store.sqlite import CHUNK

from conftest import event_row, known_to_ledger

DAY = 86400.0
# the first migration of narrow rows: a store at the one before it is a legacy store
LEGACY = next(i for i, m in enumerate(MIGRATIONS) if "CREATE TABLE event_tables" in m)
EVENTS_COLUMNS_SQL = ", ".join(ROW_COLUMNS)
INSERT_LEGACY = (
    f"INSERT INTO event_log ({EVENTS_COLUMNS_SQL}) VALUES ({', '.join('?' * len(ROW_COLUMNS))})"
)


def row(**values) -> tuple:
    """conftest's event_row at a fraction of a second: ts is stored raw, never rounded."""
    return event_row(**{"ts": 1_764_000_000.25, **values})


def full(n: int, purpose: str = "browsing_history", ts: float = 1_764_000_000.5) -> tuple:
    """A row with a value in every column its purpose may hold (all of them but screen_h for
    browsing_history)."""
    values = dict(
        event_id=f"ev-{purpose}-{n:04d}",
        ts=ts + n,
        purpose=purpose,
        policy_version="1.0",
        source="beacon",
        site="shop.example",
        visitor=f"{n:032x}",
        network=f"{n + 7:032x}",
        country="DE",
        region="BE",
        os="iOS",
        os_version="17",
        browser="Mobile Safari",
        browser_version="17",
        device="iPhone",
        device_brand="Apple",
        device_model="iPhone",
        language="de",
        languages="de,en",
        gpc=1,
        dnt=0,
        screen_w=1920,
        pixel_ratio=2.0,
        seal_key="seal-2026-11-25",
        sealed_endpoint=bytes(range(28)),
    )
    if purpose == "browsing_history":
        values.update(path=f"/item/{n}", subject=f"subject-{n}")
    return row(**values)


async def opened(path: Path, policy=DEFAULT_POLICY) -> SQLiteStore:
    store = SQLiteStore(path)
    await store.open(policy)
    return store


def read(path: Path, sql: str, params: tuple = ()) -> list[tuple]:
    db = sqlite3.connect(path)
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


def legacy_store(path: Path, rows: list[tuple]) -> None:
    """A store as veil wrote it before narrow rows: every migration before them, event_log."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    for number, script in enumerate(MIGRATIONS[:LEGACY], start=1):
        db.executescript(f"BEGIN;\n{script}\nPRAGMA user_version={number};\nCOMMIT;")
    db.execute("INSERT INTO purposes VALUES ('connection', 'legitimate_interests', 0, 9, '1.0')")
    db.execute("INSERT INTO purposes VALUES ('browsing_history', 'consent', 1, 9, '1.0')")
    db.executemany(INSERT_LEGACY, rows)
    db.close()


def legacy_events(rows: list[tuple]) -> list[tuple]:
    """What migration 1's `events` view shows of `rows`, without its id."""
    db = sqlite3.connect(":memory:", isolation_level=None)
    for script in MIGRATIONS[:LEGACY]:
        db.executescript(script)
    db.execute("INSERT INTO purposes VALUES ('connection', 'legitimate_interests', 0, 9, '1.0')")
    db.execute("INSERT INTO purposes VALUES ('browsing_history', 'consent', 1, 9, '1.0')")
    db.executemany(INSERT_LEGACY, rows)
    return sorted((r[1:] for r in db.execute("SELECT * FROM events")), key=repr)


def occurrences(directory: Path, marker: bytes) -> list[str]:
    return [f.name for f in directory.iterdir() if marker in f.read_bytes()]


# -- a record carries only the fields its purpose allows ------------------------------------


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("path", "/secret-page"),  # browsing history under a purpose without consent
        ("subject", "secret-subject"),  # a subject on a cookieless purpose
        ("screen_h", 1090),  # never stored, by any purpose
    ],
)
async def test_a_value_its_purpose_may_not_hold_refuses_the_chunk(tmp_path, column, value):
    store = await opened(tmp_path / "veil.db")
    good = [row(event_id=f"ok-{i}", visitor=f"v{i}") for i in range(CHUNK)]
    bad = row(event_id="bad", **{column: value})
    with pytest.raises(RowsRefused) as refused:
        # the first chunk is stored; the bad row's chunk, with its good rows, is not
        await store.write([*good, row(event_id="same-chunk"), bad], Counter(bot=3), "2026-11-25")
    message = str(refused.value)
    assert "'connection'" in message and repr(column) in message
    assert str(value) not in message  # names the column, never the value
    ids = {r[0] for r in read(store.path, "SELECT event_id FROM event_rows")}
    assert ids == {f"ok-{i}" for i in range(CHUNK)}
    assert await store.drop_counts() == {}  # drops ride with the last chunk: not counted
    await store.close()


async def test_a_purpose_without_a_table_and_a_non_text_agent_are_refused(tmp_path):
    store = await opened(tmp_path / "veil.db")
    with pytest.raises(RowsRefused, match="FOREIGN KEY"):
        await store.write([row(purpose="marketing")], Counter(), "d")
    with pytest.raises(RowsRefused, match="purpose must be text"):
        await store.write([row(purpose=["connection"])], Counter(), "d")
    with pytest.raises(RowsRefused, match="must be text"):
        await store.write([row(os=b"\x00blob")], Counter(), "d")
    await store.write([row(event_id="after")], Counter(), "d")  # the cache is still right
    assert read(store.path, "SELECT event_id, os, browser FROM event_rows") == [
        ("after", None, "Chrome")
    ]
    assert read(store.path, "SELECT count(*) FROM agents") == [(1,)]
    await store.close()


async def test_each_purpose_table_has_only_its_columns(tmp_path):
    await (await opened(tmp_path / "veil.db")).close()
    for key, purpose in DEFAULT_POLICY.purposes.items():
        names = [r[1] for r in read(tmp_path / "veil.db", f"PRAGMA table_info(events_{key})")]
        wanted = event_columns(purpose.fields, purpose.needs_consent)
        expected = {"id", *CORE_COLUMNS, "agent", *(wanted - set(AGENT_COLUMNS))}
        assert set(names) == expected
        assert "screen_h" not in names and "purpose" not in names
        assert ("subject" in names) == purpose.needs_consent
        assert ("path" in names) == ("path" in purpose.fields)


async def test_a_hostile_purpose_key_never_reaches_sql(tmp_path):
    hostile = dataclasses.replace(
        DEFAULT_POLICY,
        purposes={
            'x" (id); DROP TABLE agents; --': dataclasses.replace(
                DEFAULT_POLICY.purposes["connection"], key='x" (id); DROP TABLE agents; --'
            )
        },
    )
    with pytest.raises(StoreError, match="lower_snake_case"):
        await opened(tmp_path / "veil.db", hostile)
    assert read(tmp_path / "veil.db", "SELECT count(*) FROM agents") == [(0,)]
    assert read(tmp_path / "veil.db", "SELECT count(*) FROM event_tables") == [(0,)]


# -- the views ------------------------------------------------------------------------------


async def test_events_view_keeps_its_columns_and_values(tmp_path):
    rows = [full(n) for n in range(3)] + [full(n, "connection") for n in range(3)]
    rows.append(row(event_id="sparse", os=None, browser=None))  # no agent at all
    store = await opened(tmp_path / "veil.db")
    await known_to_ledger(store, *(f"subject-{n}" for n in range(3)))
    await store.write(rows, Counter(), "d")
    old = sqlite3.connect(":memory:")
    old.executescript(MIGRATIONS[0])
    before = [r[1] for r in old.execute("PRAGMA table_info(events)")]
    after = [r[1] for r in read(store.path, "PRAGMA table_info(events)")]
    assert after == before  # names and order
    now = sorted((r[1:] for r in read(store.path, "SELECT * FROM events")), key=repr)
    assert now == legacy_events(rows)  # the values migration 1's view gave
    ids = [r[0] for r in read(store.path, "SELECT id FROM events")]
    assert len(set(ids)) == len(rows)
    # round trip: every column as written, ts raw
    stored = read(store.path, f"SELECT {EVENTS_COLUMNS_SQL} FROM event_rows")
    assert sorted(stored, key=repr) == sorted(rows, key=repr)

    # a filter on purpose reads that purpose's table only: the other arms' constant
    # `purpose` fails before their loop, so their rows cost nothing
    def steps(sql: str) -> int:
        db, count = sqlite3.connect(store.path), [0]

        def tick() -> int:
            count[0] += 1
            return 0

        db.set_progress_handler(tick, 1)
        db.execute(sql).fetchall()
        db.close()
        return count[0]

    query = "SELECT count(*) FROM events WHERE purpose = 'connection'"
    before_more = steps(query)
    await known_to_ledger(store, *(f"subject-{n}" for n in range(100, 1100)))
    await store.write([full(n) for n in range(100, 1100)], Counter(), "d")
    assert steps(query) - before_more < 50
    assert steps("SELECT count(*) FROM events") - before_more > 1000
    await store.close()


async def test_agents_are_stored_once(tmp_path):
    agents = [
        dict(os="Windows", os_version="10", browser="Chrome", browser_version="120"),
        dict(os="iOS", browser="Mobile Safari", device="iPhone", device_brand="Apple"),
        dict(os="Other", browser="Other"),  # NULLs in five of seven: UNIQUE alone misses it
    ]
    store = await opened(tmp_path / "veil.db")
    batch = [
        row(event_id=f"a{i}", purpose=p, **agents[i % 3])
        for i in range(900)
        for p in ("connection",)
    ]
    await store.write(batch, Counter(), "d")
    await store.close()
    again = await opened(tmp_path / "veil.db")  # a new cache, the same agents
    await again.write(
        [row(event_id=f"b{i}", purpose="browsing_history", **agents[i % 3]) for i in range(30)],
        Counter(),
        "d",
    )
    await again.close()
    assert read(tmp_path / "veil.db", "SELECT count(*) FROM agents") == [(3,)]
    per_agent = read(
        tmp_path / "veil.db",
        "SELECT os, browser, device, count(*) FROM events GROUP BY 1, 2, 3 ORDER BY 1",
    )
    assert per_agent == [
        ("Other", "Other", None, 310),
        ("Windows", "Chrome", None, 310),
        ("iOS", "Mobile Safari", "iPhone", 310),
    ]


# -- policy versions ------------------------------------------------------------------------


async def test_a_broadened_purpose_gains_a_column_and_old_rows_read_null(tmp_path):
    lean = dataclasses.replace(
        DEFAULT_POLICY.purposes["connection"], fields=frozenset({"ip_address", "user_agent"})
    )
    v1 = dataclasses.replace(
        DEFAULT_POLICY, purposes={**DEFAULT_POLICY.purposes, "connection": lean}
    )
    store = await opened(tmp_path / "veil.db", v1)
    await store.write([row(event_id="old", country="DE")], Counter(), "d")
    with pytest.raises(RowsRefused, match="'language'"):
        await store.write([row(event_id="early", language="de")], Counter(), "d")
    await store.close()
    today = dt.datetime.now(dt.UTC).date()
    v2 = dataclasses.replace(
        DEFAULT_POLICY,
        version="2.0",
        effective=today,
        changes=(*DEFAULT_POLICY.changes, Change("2.0", today, "Connection keeps languages.")),
    )
    store = await opened(tmp_path / "veil.db", v2)
    await store.write(
        [row(event_id="new", policy_version="2.0", language="de", languages="de,en")],
        Counter(),
        "d",
    )
    assert read(
        store.path,
        "SELECT event_id, policy_version, country, language, languages FROM event_rows "
        "WHERE purpose = 'connection' ORDER BY id",
    ) == [("old", "1.0", "DE", None, None), ("new", "2.0", None, "de", "de,en")]
    await store.close()
    # the narrower version's columns are never dropped: the old rows keep theirs
    names = [r[1] for r in read(tmp_path / "veil.db", "PRAGMA table_info(events_connection)")]
    assert {"country", "language", "languages"} <= set(names)


# -- retention ------------------------------------------------------------------------------


async def test_retention_spans_the_purpose_tables_and_prunes_lone_agents(make_config, data_dir):
    cfg = make_config()
    store = await opened(cfg.store.path, cfg.policy)
    now = time.time()
    await known_to_ledger(store, "s-expired")  # their grant is in force: the ledger keeps it
    await store.write(
        [
            row(event_id="c-old", ts=now - 31 * DAY, os="RareOS", site="expired-one.example"),
            row(event_id="c-new", ts=now - 29 * DAY, os="Windows"),
            row(event_id="h-kept", ts=now - 31 * DAY, purpose="browsing_history", os="Windows"),
            row(
                event_id="h-old",
                ts=now - 91 * DAY,
                purpose="browsing_history",
                path="/expired-page",
                subject="s-expired",
            ),
        ],
        Counter(),
        "d",
    )
    other = await opened(cfg.store.path)  # a second writer, its cache holding RareOS's id
    await other.write([row(event_id="c-old2", ts=now - 40 * DAY, os="RareOS")], Counter(), "d")
    keystore = KeyStore.open(cfg.keys)
    done = await enforce(store, keystore, cfg.policy, now=now)
    keystore.close()
    assert (done["connection"], done["browsing_history"]) == (2, 1)
    assert read(store.path, "SELECT event_id FROM event_rows ORDER BY event_id") == [
        ("c-new",),
        ("h-kept",),
    ]
    assert read(store.path, "SELECT os FROM agents ORDER BY os") == [("Windows",)]  # pruned
    # both writers' caches knew RareOS's id: each must store it anew, not a dangling id
    await other.write([row(event_id="r1", os="RareOS")], Counter(), "d")
    await store.write([row(event_id="r2", os="RareOS")], Counter(), "d")
    assert read(
        store.path, "SELECT event_id, os FROM event_rows WHERE event_id LIKE 'r%' ORDER BY 1"
    ) == [("r1", "RareOS"), ("r2", "RareOS")]
    assert read(store.path, "SELECT count(*) FROM agents WHERE os = 'RareOS'") == [(1,)]
    await other.close()
    await store.close()
    for marker in (b"expired-one", b"/expired-page"):
        assert not occurrences(data_dir, marker), marker


# -- migrating a legacy store ---------------------------------------------------------------


async def test_a_legacy_store_moves_into_narrow_tables_with_every_value(make_config, data_dir):
    now = time.time()
    rows = [full(n, "connection", now - 10 * DAY) for n in range(40)]
    rows += [full(n, "browsing_history", now - 10 * DAY) for n in range(40, 60)]
    rows.append(row(event_id="bare", ts=now - DAY, os=None, browser=None, language="fr"))
    # a legacy row with a value its purpose's policy does not list: kept, its column added
    rows.append(row(event_id="odd", ts=now - DAY, path="/legacy-path"))
    rows.append(row(event_id="doomed", ts=now - 31 * DAY, site="doomed-row.example"))
    cfg = make_config()
    legacy_store(cfg.store.path, rows)
    before = read(cfg.store.path, "SELECT * FROM events ORDER BY id")
    legacy_ids = {r[0]: r for r in before}

    store = await opened(cfg.store.path, cfg.policy)
    assert read(store.path, "PRAGMA user_version") == [(len(MIGRATIONS),)]
    assert not read(store.path, "SELECT 1 FROM sqlite_master WHERE name = 'event_log'")
    after = read(store.path, "SELECT * FROM events")
    assert sorted((r[1:] for r in after), key=repr) == sorted((r[1:] for r in before), key=repr)
    for r in after:  # each row keeps its id, as its id in its table
        assert legacy_ids[r[0] // 1000][1:] == r[1:]
    assert read(store.path, "SELECT count(*) FROM agents") == [(2,)]  # iPhone, Chrome-only
    stored = read(store.path, f"SELECT {EVENTS_COLUMNS_SQL} FROM event_rows")
    assert sorted(stored, key=repr) == sorted(rows, key=repr)
    assert read(store.path, "SELECT path FROM event_rows WHERE event_id = 'odd'") == [
        ("/legacy-path",)
    ]
    assert not (data_dir / "veil.db-wal").exists() or not (data_dir / "veil.db-wal").stat().st_size
    # the store works on: writes, retention, and nothing of a deleted row anywhere
    await store.write([full(99, "connection", now)], Counter(), "d")
    keystore = KeyStore.open(cfg.keys)
    done = await enforce(store, keystore, cfg.policy, now=now)
    keystore.close()
    assert done["connection"] == 1
    assert occurrences(data_dir, b"shop.example")  # the search sees live rows
    await store.close()
    assert not occurrences(data_dir, b"doomed-row")
    again = await opened(cfg.store.path)  # reopening without a policy: the same tables
    assert read(again.path, "SELECT count(*) FROM events") == [(len(rows),)]
    await again.close()


async def test_a_legacy_store_opened_by_a_reader_is_migrated_too(tmp_path):
    rows = [full(1, "connection"), full(2, "browsing_history")]
    legacy_store(tmp_path / "veil.db", rows)
    reader = SQLiteStore(tmp_path / "veil.db")
    await reader.open()  # `veil query`: no policy, the legacy rows' columns only
    assert read(
        reader.path, "SELECT browser, country FROM events WHERE purpose = 'browsing_history'"
    ) == [("Mobile Safari", "DE")]
    await reader.close()
    assert sorted(read(tmp_path / "veil.db", f"SELECT {EVENTS_COLUMNS_SQL} FROM event_rows")) == (
        sorted(rows)
    )


async def test_an_agent_used_while_a_prune_scans_is_kept(tmp_path):
    """The prune's race: it finds RareOS unreferenced, then another writer stores a row with
    it before the prune deletes. The epoch stamp keeps it (offloop.prune_agents)."""
    import aiosqlite

    from veil.store import offloop

    store = await opened(tmp_path / "veil.db")
    await store.write([row(event_id="gone", os="RareOS")], Counter(), "d")
    store.db.execute("DELETE FROM events_connection")  # its rows expired and were deleted
    other = await opened(tmp_path / "veil.db")  # another writer, its cache still empty
    gate = asyncio.Lock()
    async with aiosqlite.connect(tmp_path / "veil.db", isolation_level=None) as db:
        await gate.acquire()
        prune = asyncio.create_task(offloop.prune_agents(db, gate, ['"events_connection"']))
        while not gate._waiters:  # the prune waits to bump the epoch
            await asyncio.sleep(0.001)
        gate.release()
        await gate.acquire()  # after its bump (the lock is fair)
        while not gate._waiters:  # scanned, found RareOS unused, waits to delete
            await asyncio.sleep(0.001)
        await other.write([row(event_id="kept", os="RareOS")], Counter(), "d")
        gate.release()
        assert await prune == 0
    assert read(store.path, "SELECT event_id, os FROM event_rows") == [("kept", "RareOS")]
    await other.close()
    await store.close()


async def test_the_agent_cache_stays_bounded_and_right(tmp_path, monkeypatch):
    from veil.store import layout

    monkeypatch.setattr(layout, "MAX_AGENTS", 64)
    monkeypatch.setattr(layout, "MAX_AGENT_CHARS", 2_000)
    store = await opened(tmp_path / "veil.db")
    rows = [row(event_id=f"e{i}", os=f"OS{i % 300}", browser="x" * 40) for i in range(1_500)]
    await store.write(rows, Counter(), "d")
    cache = store._agents._ids
    chars = sum(len(v) for key in cache for v in key if v)
    assert len(cache) <= 64 and chars <= 2_000 + CHUNK * 45  # at most one chunk over
    assert read(store.path, "SELECT count(*) FROM agents") == [(300,)]
    stored = read(store.path, "SELECT event_id, os FROM event_rows")
    assert sorted(stored) == sorted((f"e{i}", f"OS{i % 300}") for i in range(1_500))
    await store.close()
