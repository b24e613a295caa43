"""Daily rollups (store/rollups.py) against the rows themselves, on a real SQLite store: after
inserts (late rows too), erasure, restriction and its lifting, a withdrawal's deletes,
retention (and a legal hold), the rollup answer equals `raw_day_cells` exactly, for the
totals and single dimensions, over several ranges; and it was read from rollups."""

import random
import sqlite3
import time
from collections import Counter
from contextlib import closing

import pytest

from veil.analytics.cells import DayCounts, day_cells, raw_day_cells
from veil.retention import enforce
from veil.rights import limits
from veil.rights.erase import dispose_purpose, erase
from veil.store import SQLiteStore, layout, rollups

from conftest import KIT_SUBJECTS, event_row

DAY = 86_400.0
DIMS = [(), ("browser",), ("country",), ("hour",), ("path",), ("screen",), ("pixel_ratio",)]
BROWSERS = ["Chrome", "Firefox", "Safari", None]
COUNTRIES = ["DE", "JP", "US", None]
PATHS = ["/", "/a", "/b", "/pricing", None]
SUBJECTS = KIT_SUBJECTS
TODAY = int(time.time() // DAY) * DAY  # today's midnight, UTC


def day(offset: int) -> str:
    """The UTC day `offset` days from today, 'YYYY-MM-DD'."""
    return time.strftime("%Y-%m-%d", time.gmtime(TODAY + offset * DAY))


def rows(rng: random.Random, offsets: list[int], n: int, tag: str) -> list[tuple]:
    """`n` random rows over the days at `offsets` (from today), both purposes; subjects'
    rows carry no visitor or network, as the pipeline writes them."""
    out = []
    for i in range(n):
        ts = TODAY + rng.choice(offsets) * DAY + rng.uniform(0, DAY - 1)
        if ts > time.time():  # today: not in the future
            ts = time.time() - rng.uniform(0, 60)
        common = {
            "event_id": f"{tag}-{i}",
            "ts": ts,
            "browser": rng.choice(BROWSERS),
            "country": rng.choice(COUNTRIES),
            "screen_w": rng.choice([390, 1280, 1920, None]),
            "pixel_ratio": rng.choice([1.0, 1.5, 2.0, 1 / 3, None]),
        }
        if rng.random() < 0.5:
            out.append(
                event_row(
                    **common,
                    visitor=f"v{rng.randrange(40)}",
                    network=f"n{rng.randrange(15)}",
                )
            )
        elif rng.random() < 0.5:
            out.append(
                event_row(
                    **common,
                    purpose="browsing_history",
                    path=rng.choice(PATHS),
                    visitor=f"v{rng.randrange(40)}",
                    network=f"n{rng.randrange(15)}",
                )
            )
        else:
            out.append(
                event_row(
                    **common,
                    purpose="browsing_history",
                    path=rng.choice(PATHS),
                    subject=rng.choice(SUBJECTS),
                    visitor=None,
                )
            )
    return out


def ranges() -> list[tuple[str | None, str | None]]:
    return [
        (None, None),
        (day(-9), day(-1)),
        (day(-6), day(-4)),
        (day(-3), day(-3)),
        (day(-2), None),
        (None, day(-7)),
        (day(-40), day(5)),
    ]


async def same_as_rows(store: SQLiteStore) -> None:
    """For every purpose, dimension set and range: the rollup answer is the rows' answer,
    once building and once read back from the rollups."""
    for table in layout.load(store.db).values():
        for dims in DIMS:
            for first, last in ranges():
                expected = await raw_day_cells(store, table, dims, first, last)
                for _ in range(2):
                    got = await day_cells(store, table, dims, first, last)
                    assert got == expected, (table.purpose, dims, first, last)


def current_days(store: SQLiteStore, purpose: str, dim: str = "") -> set[str]:
    return {
        r[0]
        for r in store.db.execute(
            "SELECT day FROM rollup_days WHERE purpose = ? AND dim = ? AND build IS NULL",
            (purpose, dim),
        )
    }


async def totals(store: SQLiteStore, purpose: str, first: str, last: str) -> dict[str, int]:
    """Events per day, as day_cells answers (from the rollups when current)."""
    table = layout.load(store.db)[purpose]
    return {k[0]: c.events for k, c in (await day_cells(store, table, (), first, last)).items()}


async def test_rollups_equal_the_rows_through_every_change(kit, data_dir):
    store, keystore, policy = kit
    rng = random.Random(7)
    past = list(range(-9, 0))
    await store.write(rows(rng, [*past, 0], 1500, "a"), Counter(), "d")
    await same_as_rows(store)
    # past days were built (the totals and each dimension), today was not
    assert current_days(store, "connection") == {day(o) for o in past}
    assert current_days(store, "browsing_history", "path") == {day(o) for o in past}
    assert store.db.execute("SELECT count(*) FROM rollups").fetchone()[0] > 100

    # late rows for an old day, and more of today
    await store.write(rows(rng, [-5, 0], 120, "late"), Counter(), "d")
    assert day(-5) not in current_days(store, "connection")
    await same_as_rows(store)

    # erasure: the subject's rows go; so does every rollup that counted them
    victim = SUBJECTS[0]
    await erase(store, keystore, victim, "req-1", policy=policy)
    await same_as_rows(store)

    # restriction, then lifted
    restricted = SUBJECTS[1]
    await limits.impose(store, keystore, restricted, limits.RESTRICTION)
    await same_as_rows(store)
    await limits.lift(store, keystore, restricted, limits.RESTRICTION)
    await same_as_rows(store)
    await limits.impose(store, keystore, restricted, limits.SUSPENSION)
    await same_as_rows(store)

    # a withdrawal's deletes
    await dispose_purpose(store, keystore, SUBJECTS[2], "browsing_history", "consent_withdrawn")
    await same_as_rows(store)

    # retention, 23 days on: connection (30 days) loses its rows older than 7 days ago
    done = await enforce(store, keystore, policy, now=time.time() + 23 * DAY)
    assert done["connection"] > 0
    (oldest,) = store.db.execute(
        "SELECT date(min(ts), 'unixepoch') FROM events_connection"
    ).fetchone()
    assert day(-7) <= oldest < day(0)
    gone = "SELECT * FROM rollup_days WHERE purpose = 'connection' AND day < ?"
    assert not store.db.execute(gone, (oldest,)).fetchall()  # expired days: no rollup left
    await same_as_rows(store)

    # a legal hold keeps everything: nothing changes, the rollups stay current
    before = current_days(store, "browsing_history")
    kept = await store.dispose({"browsing_history": time.time()}, held=lambda kind, p: True)
    assert kept == {} or not any(kept.values())
    assert current_days(store, "browsing_history") == before
    await same_as_rows(store)


async def test_an_erased_subject_is_in_no_rollup_and_no_byte_of_the_file(kit, data_dir):
    store, keystore, policy = kit
    victim = SUBJECTS[3]
    mine = [
        event_row(
            event_id=f"m{i}",
            ts=TODAY - 3 * DAY + 3600.0 * i,
            purpose="browsing_history",
            subject=victim,
            visitor=None,
            path="/only-the-victim-went-here",
        )
        for i in range(5)
    ]
    others = rows(random.Random(3), [-3, -2], 200, "o")
    others = [r for r in others if victim not in r]
    await store.write(mine + others, Counter(), "d")
    table = layout.load(store.db)["browsing_history"]
    built = await day_cells(store, table, ("path",), day(-3), day(-2))
    assert built[(day(-3), "/only-the-victim-went-here")].events == 5
    assert day(-3) in current_days(store, "browsing_history", "path")
    with_victim = await totals(store, "browsing_history", day(-3), day(-3))
    await erase(store, keystore, victim, "req-2", policy=policy)
    after = await day_cells(store, table, ("path",), day(-3), day(-2))
    assert not any(k[1] == "/only-the-victim-went-here" for k in after)
    assert (await totals(store, "browsing_history", day(-3), day(-3)))[day(-3)] == (
        with_victim[day(-3)] - 5
    )
    assert after == await raw_day_cells(store, table, ("path",), day(-3), day(-2))
    # no rollup row names the path only they visited, and no file holds their pseudonym
    assert not store.db.execute(
        "SELECT 1 FROM rollups WHERE value = '/only-the-victim-went-here'"
    ).fetchall()
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for path in data_dir.iterdir():
        if path.is_file():
            blob = path.read_bytes()
            assert victim.encode() not in blob, path.name
            assert b"/only-the-victim-went-here" not in blob, path.name


async def test_a_restricted_subject_disappears_at_once_and_returns_when_lifted(kit):
    store, keystore, _ = kit
    subject = SUBJECTS[4]
    theirs = [
        event_row(
            event_id=f"r{i}",
            ts=TODAY - 2 * DAY + 60.0 * i,
            purpose="browsing_history",
            subject=subject,
            visitor=None,
            path="/p",
        )
        for i in range(7)
    ]
    others = [r for r in rows(random.Random(4), [-2], 100, "x") if subject not in r]
    await store.write(theirs + others, Counter(), "d")
    d = day(-2)
    before = (await totals(store, "browsing_history", d, d))[d]
    assert d in current_days(store, "browsing_history")  # answered from the rollup now
    await limits.impose(store, keystore, subject, limits.RESTRICTION)
    assert d not in current_days(store, "browsing_history")
    assert (await totals(store, "browsing_history", d, d))[d] == before - 7
    assert d in current_days(store, "browsing_history")  # rebuilt, without them
    await limits.lift(store, keystore, subject, limits.RESTRICTION)
    assert (await totals(store, "browsing_history", d, d))[d] == before


async def test_a_write_between_claim_and_keep_keeps_the_day_out(kit):
    """A build reads after its claim; a row stored meanwhile deletes the claim, so the build's
    (now stale) cells are never stored as current, even once another build has claimed the
    day again."""
    store, _, _ = kit
    await store.write(rows(random.Random(5), [-4], 50, "b"), Counter(), "d")
    table = layout.load(store.db)["connection"]
    token = await rollups._claim(store, "connection", "", [day(-4)], day(-4))
    assert token is not None
    stale = await raw_day_cells(store, table, (), day(-4), day(-4))
    late = [event_row(event_id=f"c{i}", ts=TODAY - 4 * DAY + i, visitor=f"w{i}") for i in range(3)]
    await store.write(late, Counter(), "d")  # after the read
    # another build claims the day afresh: the first build's claim is still not its own
    assert await rollups._claim(store, "connection", "", [day(-4)], day(-4)) not in (None, token)
    await rollups._keep(
        store, "connection", "", token, {day(-4): [(None, c) for c in stale.values()]}
    )
    assert day(-4) not in current_days(store, "connection")
    got = await day_cells(store, table, (), day(-4), day(-4))
    assert got == await raw_day_cells(store, table, (), day(-4), day(-4)) != stale


async def test_another_connection_writing_invalidates(kit, make_config):
    """`veil serve --workers N`: another process's insert clears the marker in its own
    transaction; this one's next answer includes its rows."""
    store, _, policy = kit
    await store.write(rows(random.Random(8), [-6, -5], 200, "p"), Counter(), "d")
    table = layout.load(store.db)["connection"]
    first = await day_cells(store, table, ("browser",), day(-6), day(-5))
    other = SQLiteStore(make_config().store.path)
    await other.open(policy)
    try:
        await other.write(
            [event_row(event_id="q", ts=TODAY - 5 * DAY + 5.0, browser="Lynx")], Counter(), "d"
        )
    finally:
        await other.close()
    second = await day_cells(store, table, ("browser",), day(-6), day(-5))
    assert second[(day(-5), "Lynx")] == DayCounts(1, 1, 0, 0)
    assert second == await raw_day_cells(store, table, ("browser",), day(-6), day(-5)) != first


async def test_a_store_without_the_triggers_is_read_from_the_rows(kit):
    store, _, _ = kit
    await store.write(rows(random.Random(9), [-3], 100, "t"), Counter(), "d")
    table = layout.load(store.db)["connection"]
    store.db.execute(f'DROP TRIGGER "rollups_{table.name}_delete"')
    got = await day_cells(store, table, ("country",), None, None)
    assert got == await raw_day_cells(store, table, ("country",), None, None)
    assert not current_days(store, "connection", "country")  # nothing built, nothing trusted


def test_the_rollup_tables_hold_no_pseudonym_column(tmp_path):
    """Counts and dimension values only: no column could hold a visitor, network or subject."""
    from veil.store.schema import MIGRATIONS

    with closing(sqlite3.connect(tmp_path / "s.db")) as db:
        for script in MIGRATIONS:
            db.executescript(script)
        for name in ("rollups", "rollup_days"):
            columns = {r[1] for r in db.execute(f"PRAGMA table_info({name})")}
            assert not columns & {"visitor", "network", "subject"}, name


@pytest.mark.parametrize("by", [(), ("day",), ("browser",), ("country",), ("hour",), ("screen",)])
async def test_the_engine_answers_the_same_from_rollups_and_from_rows(kit, by):
    """Which cells are shown (k, complementary suppression) does not depend on whether a day
    was read from its rollup or from its rows."""
    from veil.analytics import StatsQuery, run

    store, _, policy = kit
    await store.write(rows(random.Random(13), list(range(-6, 1)), 600, "e"), Counter(), "d")
    query = StatsQuery("connection", ("events", "visitors"), by)
    fast = await run(store, policy, query, 3)
    assert current_days(store, "connection", by[0] if by and by[0] != "day" else "")
    table = layout.load(store.db)["connection"]
    store.db.execute(f'DROP TRIGGER "rollups_{table.name}_update"')  # now read from the rows
    assert await run(store, policy, query, 3) == fast
