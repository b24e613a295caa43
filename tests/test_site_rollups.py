"""Rollups and live days of "site" and one other dimension (a dashboard's site filter groups by
both): on a real SQLite store with three sites, both purposes, through inserts, erasure,
restriction and its lifting, suspension, a withdrawal, retention and midnight, the answer
equals `raw_day_cells` exactly (keys (day, v1, v2) in the engine's order), and was read from
the rollups or from memory; the engine's site-filtered answer is the one it gives from the
rows."""

import random
import time
from collections import Counter

import pytest
from test_rollups import DAY, SUBJECTS, TODAY, current_days, day, ranges, rows

from veil.analytics import StatsQuery, cells, run
from veil.analytics.cells import HOLDS, DayCounts, day_cells, dimension_sql, raw_day_cells
from veil.retention import enforce
from veil.rights import limits
from veil.rights.erase import dispose_purpose, erase
from veil.store import SQLiteStore, layout, live_days, rollups
from veil.store.columns import ROW_COLUMNS

from conftest import event_row

SITES = ["shop.example", "blog.example", "docs.example"]
PAIRS = [("browser", "site"), ("site", "path"), ("country", "site"), ("site", "hour"), ("site",)]
EARLY = TODAY + 1800.0  # 00:30 UTC today: yesterday is still live (rollups.SETTLE)
_SITE = ROW_COLUMNS.index("site")


def site_rows(rng: random.Random, offsets: list[int], n: int, tag: str) -> list[tuple]:
    """test_rollups' random rows, each on one of three sites (a few on none)."""
    out = []
    for row in rows(rng, offsets, n, tag):
        site = rng.choice(SITES) if rng.random() < 0.95 else None
        out.append((*row[:_SITE], site, *row[_SITE + 1 :]))
    return out


def pair_dim(dims: tuple[str, ...]) -> str:
    return rollups.PAIR.join(dims)


async def same_as_rows(store: SQLiteStore) -> None:
    """Every purpose, site pair and range: the answer is the rows', building and read back."""
    for table in layout.load(store.db).values():
        for dims in PAIRS:
            for first, last in ranges():
                expected = await raw_day_cells(store, table, dims, first, last)
                for _ in range(2):
                    got = await day_cells(store, table, dims, first, last)
                    assert got == expected, (table.purpose, dims, first, last)


async def live(store: SQLiteStore, table: layout.Table, dims: tuple[str, ...], first, last):
    """The accumulator's answer for a site pair (None: read from the rows)."""
    a, b = (dimension_sql(table, d) for d in dims)
    joined = any(HOLDS[d] == "agent" for d in dims)
    return await live_days.day_cells(store, table, (a, b), joined, first, last, DayCounts)


async def same_in_memory(store: SQLiteStore, first: str = "") -> None:
    """The live days of every purpose and pair from memory, and ranges ending in them through
    `day_cells`, are the rows' answer."""
    first = first or day(-1)
    for table in layout.load(store.db).values():
        for dims in PAIRS[:-1]:
            expected = await raw_day_cells(store, table, dims, first, day(0))
            got = await live(store, table, dims, first, day(0))
            assert got is not None, (table.purpose, dims)  # answered from memory
            assert got == expected, (table.purpose, dims, first)
        for dims in PAIRS:
            for start, last in ((day(-9), day(0)), (day(0), None), (None, None)):
                expected = await raw_day_cells(store, table, dims, start, last)
                assert await day_cells(store, table, dims, start, last) == expected


@pytest.fixture(autouse=True)
def no_accumulators():
    live_days._live.clear()
    live_days._too_big.clear()
    yield
    live_days._live.clear()
    live_days._too_big.clear()


async def test_site_pairs_from_rollups_equal_the_rows_through_every_change(kit):
    store, keystore, policy = kit
    rng = random.Random(21)
    past = list(range(-9, 0))
    await store.write(site_rows(rng, [*past, 0], 1500, "a"), Counter(), "d")
    await same_as_rows(store)
    for purpose in ("connection", "browsing_history"):
        for dims in PAIRS:
            assert current_days(store, purpose, pair_dim(dims)) == {day(o) for o in past}
    # keys in the engine's order: the site second after browser, first before path
    table = layout.load(store.db)["browsing_history"]
    got = await day_cells(store, table, ("browser", "site"), day(-3), day(-3))
    assert {k[2] for k in got} <= {*SITES, None} and {k[2] for k in got} & set(SITES)
    got = await day_cells(store, table, ("site", "path"), day(-3), day(-3))
    assert {k[1] for k in got} <= {*SITES, None} and {k[2] for k in got} & {"/a", "/b"}
    # another pair than the site's is read from the rows: nothing kept for it
    await day_cells(store, table, ("browser", "country"), day(-3), day(-3))
    assert not current_days(store, "browsing_history", "browser|country")

    await store.write(site_rows(rng, [-5, 0], 120, "late"), Counter(), "d")
    assert day(-5) not in current_days(store, "connection", "browser|site")
    await same_as_rows(store)
    await erase(store, keystore, SUBJECTS[0], "req-1", policy=policy)
    await same_as_rows(store)
    await limits.impose(store, keystore, SUBJECTS[1], limits.RESTRICTION)
    await same_as_rows(store)
    await limits.lift(store, keystore, SUBJECTS[1], limits.RESTRICTION)
    await same_as_rows(store)
    await limits.impose(store, keystore, SUBJECTS[1], limits.SUSPENSION)
    await same_as_rows(store)
    await dispose_purpose(store, keystore, SUBJECTS[2], "browsing_history", "consent_withdrawn")
    await same_as_rows(store)
    done = await enforce(store, keystore, policy, now=time.time() + 23 * DAY)
    assert done["connection"] > 0
    (oldest,) = store.db.execute(
        "SELECT date(min(ts), 'unixepoch') FROM events_connection"
    ).fetchone()
    gone = "SELECT * FROM rollup_days WHERE purpose = 'connection' AND dim = ? AND day < ?"
    await same_as_rows(store)
    assert not store.db.execute(gone, ("site|hour", oldest)).fetchall()


async def test_an_erased_subject_leaves_no_pair_rollup(kit):
    store, keystore, policy = kit
    victim = SUBJECTS[3]
    mine = [
        event_row(
            event_id=f"m{i}",
            ts=TODAY - 3 * DAY + 3600.0 * i,
            purpose="browsing_history",
            subject=victim,
            visitor=None,
            site="only.example",
            path="/only-the-victim",
        )
        for i in range(4)
    ]
    others = [r for r in site_rows(random.Random(22), [-3], 200, "o") if victim not in r]
    await store.write(mine + others, Counter(), "d")
    table = layout.load(store.db)["browsing_history"]
    built = await day_cells(store, table, ("site", "path"), day(-3), day(-3))
    assert built[(day(-3), "only.example", "/only-the-victim")].events == 4
    stored = "SELECT count(*) FROM rollups WHERE value = 'only.example' OR value2 = 'only.example'"
    assert store.db.execute(stored).fetchone()[0] > 0
    await erase(store, keystore, victim, "req-2", policy=policy)
    after = await day_cells(store, table, ("site", "path"), day(-3), day(-3))
    assert after == await raw_day_cells(store, table, ("site", "path"), day(-3), day(-3))
    assert not any(k[1] == "only.example" for k in after)
    assert store.db.execute(stored).fetchone()[0] == 0


async def test_site_pairs_of_the_live_days_from_memory(kit, make_config, monkeypatch):
    store, keystore, policy = kit
    monkeypatch.setattr(rollups, "clock", lambda: EARLY)
    rng = random.Random(23)
    await store.write(site_rows(rng, [-9, -5, -2, -1, 0], 800, "a"), Counter(), "d")
    await same_in_memory(store)
    for k in range(2):  # new rows only are read
        await store.write(site_rows(rng, [-1, 0], 60, f"r{k}"), Counter(), "d")
        await same_in_memory(store)
    other = SQLiteStore(make_config().store.path)
    await other.open(policy)
    try:
        await other.write(site_rows(rng, [-1, 0], 50, "other"), Counter(), "d")
    finally:
        await other.close()
    await same_in_memory(store)
    await erase(store, keystore, SUBJECTS[0], "req-1", policy=policy)
    await same_in_memory(store)
    await limits.impose(store, keystore, SUBJECTS[1], limits.RESTRICTION)
    await same_in_memory(store)
    await store.write(site_rows(rng, [0], 40, "while"), Counter(), "d")
    await limits.lift(store, keystore, SUBJECTS[1], limits.RESTRICTION)
    await same_in_memory(store)
    await dispose_purpose(store, keystore, SUBJECTS[3], "browsing_history", "consent_withdrawn")
    await same_in_memory(store)
    cut = await store.dispose({"connection": TODAY - 0.5 * DAY})  # half of yesterday goes
    assert cut["connection"] > 0
    await same_in_memory(store)
    # 01:30: yesterday is over and rolled up as a pair; memory keeps today alone
    monkeypatch.setattr(rollups, "clock", lambda: TODAY + 5400.0)
    await same_in_memory(store, day(0))
    for table in layout.load(store.db).values():
        for dims in PAIRS:
            expected = await raw_day_cells(store, table, dims, day(-2), day(0))
            assert await day_cells(store, table, dims, day(-2), day(0)) == expected
    assert day(-1) in current_days(store, "connection", "site|hour")
    assert {k[0] for a in live_days.accumulators() for k in a.cells} == {day(0)}
    # tomorrow, 00:30: rows arrive for it
    monkeypatch.setattr(rollups, "clock", lambda: TODAY + DAY + 1800.0)
    tomorrow = [
        event_row(event_id=f"t{i}", ts=TODAY + DAY + 60.0 * i, site=SITES[i % 3], visitor="tv")
        for i in range(20)
    ]
    await store.write(tomorrow, Counter(), "d")
    await same_in_memory(store, day(0))


@pytest.mark.parametrize(
    ("purpose", "by"),
    [
        (purpose, by)
        for purpose in ("connection", "browsing_history")
        for by in [("browser",), ("country",), ("hour",), ("day",), ("path",)]
        if by != ("path",) or purpose == "browsing_history"  # connection holds no path
    ],
)
async def test_the_engine_filters_by_site_as_it_does_from_the_rows(kit, monkeypatch, purpose, by):
    """A site-filtered query answered from the pair's rollups and live days shows and hides
    exactly what it shows and hides when every day is read from the rows."""
    store, _, policy = kit
    await store.write(site_rows(random.Random(24), list(range(-6, 1)), 900, "e"), Counter(), "d")
    metrics = ("events", "visitors", "subjects") if purpose == "browsing_history" else ("events",)
    for site in SITES:
        query = StatsQuery(purpose, metrics, by, filters={"site": site})
        fast = await run(store, policy, query, 3)
        pair = "site" if by == ("day",) else pair_dim(tuple(d for d in HOLDS if d in {*by, "site"}))
        assert current_days(store, purpose, pair)  # read from the rollups
        with monkeypatch.context() as m:
            m.setattr(cells, "day_cells", cells.raw_day_cells)
            slow = await run(store, policy, query, 3)
        assert fast == slow and fast.cells, (site, by)
