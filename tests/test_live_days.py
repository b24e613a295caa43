"""The live days' accumulators (store/live_days.py) against the rows themselves, on a real
SQLite store: after rounds of inserts (from this store, another connection and another
process), erasure, restriction and suspension, a withdrawal's deletes, retention, a midnight
rollover (the clock moved), and the largest row deleted then its id reused, the live days'
cells equal `raw_day_cells` exactly, and were answered from memory. An erased subject's
pseudonym is in no accumulator after the next query; the memory cap holds."""

import asyncio
import json
import os
import random
import subprocess
import sys
import time
from collections import Counter

import pytest
from test_rollups import DAY, DIMS, SUBJECTS, TODAY, day, rows

from veil.analytics.cells import HOLDS, DayCounts, day_cells, dimension_sql, raw_day_cells
from veil.retention import enforce
from veil.rights import limits
from veil.rights.erase import dispose_purpose, erase
from veil.store import SQLiteStore, layout, live_days, rollups
from veil.store.columns import ROW_COLUMNS

from conftest import event_row

EARLY = TODAY + 1800.0  # 00:30 UTC today: yesterday is still live (rollups.SETTLE)


async def live(store: SQLiteStore, table: layout.Table, dims: tuple[str, ...], first: str, last):
    """The accumulator's answer (None: read from the rows)."""
    dim = dims[0] if dims else None
    value_sql = None if dim is None else dimension_sql(table, dim)
    joined = dim is not None and HOLDS[dim] == "agent"
    return await live_days.day_cells(store, table, value_sql, joined, first, last, DayCounts)


async def same_as_rows(store: SQLiteStore, first: str = "") -> None:
    """For every purpose and dimension: the accumulator's answer for the live days, and the
    cells' answer over ranges that end in them, are the rows' answer."""
    first = first or day(-1)
    for table in layout.load(store.db).values():
        for dims in DIMS:
            for last in (day(0), day(1)):
                expected = await raw_day_cells(store, table, dims, first, last)
                got = await live(store, table, dims, first, last)
                assert got is not None, (table.purpose, dims)  # answered from memory
                assert got == expected, (table.purpose, dims, first, last)
            for start, last in ((day(-9), day(0)), (day(0), None), (None, None)):
                expected = await raw_day_cells(store, table, dims, start, last)
                assert await day_cells(store, table, dims, start, last) == expected


@pytest.fixture(autouse=True)
def early(monkeypatch):
    """The clock at 00:30 UTC: yesterday and today are live; and no accumulator is left over
    from another test."""
    monkeypatch.setattr(rollups, "clock", lambda: EARLY)
    live_days._live.clear()
    live_days._too_big.clear()
    yield
    live_days._live.clear()
    live_days._too_big.clear()


def write_from_another_process(path, batch: list[tuple]) -> None:
    """`veil serve --workers N`: another process opens the store file and writes."""
    script = (
        "import asyncio, json, sys\n"
        "from collections import Counter\n"
        "from veil.store import SQLiteStore\n"
        "async def main():\n"
        "    s = SQLiteStore(__import__('pathlib').Path(sys.argv[1]))\n"
        "    await s.open()\n"
        "    await s.write([tuple(r) for r in json.load(sys.stdin)], Counter(), 'd')\n"
        "    await s.close()\n"
        "asyncio.run(main())\n"
    )
    subprocess.run(
        [sys.executable, "-c", script, str(path)],
        input=json.dumps(batch),
        text=True,
        check=True,
        env=os.environ.copy(),
        timeout=60,
    )


async def test_live_days_equal_the_rows_through_every_change(kit, make_config):
    store, keystore, policy = kit
    rng = random.Random(11)
    await store.write(rows(rng, [-9, -5, -1, 0], 800, "a"), Counter(), "d")
    await same_as_rows(store)
    assert live_days.accumulators() and live_days.entries() > 0
    for k in range(3):  # rounds of new rows: only they are read
        await store.write(rows(rng, [-1, 0], 60, f"r{k}"), Counter(), "d")
        await same_as_rows(store)
    # another connection, then another process, write
    other = SQLiteStore(make_config().store.path)
    await other.open(policy)
    try:
        await other.write(rows(rng, [-1, 0], 50, "other"), Counter(), "d")
    finally:
        await other.close()
    await same_as_rows(store)
    batch = [r for r in rows(rng, [0], 40, "proc") if r[ROW_COLUMNS.index("subject")] is None]
    write_from_another_process(store.path, batch)
    await same_as_rows(store)
    # late rows for an old day: not live, and no harm
    await store.write(rows(rng, [-5], 30, "late"), Counter(), "d")
    await same_as_rows(store)

    await erase(store, keystore, SUBJECTS[0], "req-1", policy=policy)
    await same_as_rows(store)
    await limits.impose(store, keystore, SUBJECTS[1], limits.RESTRICTION)
    await same_as_rows(store)
    await store.write(rows(rng, [0], 40, "while-restricted"), Counter(), "d")
    await same_as_rows(store)
    await limits.lift(store, keystore, SUBJECTS[1], limits.RESTRICTION)
    await same_as_rows(store)
    await limits.impose(store, keystore, SUBJECTS[2], limits.SUSPENSION)
    await same_as_rows(store)
    await dispose_purpose(store, keystore, SUBJECTS[3], "browsing_history", "consent_withdrawn")
    await same_as_rows(store)
    # retention of old days, then of the live days' earlier rows
    done = await enforce(store, keystore, policy, now=time.time() + 23 * DAY)
    assert done["connection"] > 0
    await same_as_rows(store)
    cut = await store.dispose({"connection": TODAY - 0.5 * DAY})  # half of yesterday goes
    assert cut["connection"] > 0
    await same_as_rows(store)


async def test_concurrent_queries_and_writes_count_each_row_once(kit):
    store, _, _ = kit
    rng = random.Random(12)
    await store.write(rows(rng, [-1, 0], 300, "c"), Counter(), "d")
    table = layout.load(store.db)["browsing_history"]
    for k in range(3):
        write = store.write(rows(rng, [0], 50, f"cw{k}"), Counter(), "d")
        await asyncio.gather(
            *(live(store, table, ("path",), day(-1), day(0)) for _ in range(4)), write
        )
    expected = await raw_day_cells(store, table, ("path",), day(-1), day(0))
    assert await live(store, table, ("path",), day(-1), day(0)) == expected


async def test_midnight_moves_a_day_out_of_memory(kit, monkeypatch):
    store, _, _ = kit
    rng = random.Random(13)
    await store.write(rows(rng, [-2, -1, 0], 600, "m"), Counter(), "d")
    await same_as_rows(store)
    assert any(k[0] == day(-1) for a in live_days.accumulators() for k in a.cells)
    # 01:30: yesterday is over, rolled up; the accumulators keep today alone
    monkeypatch.setattr(rollups, "clock", lambda: TODAY + 5400.0)
    assert await live(store, layout.load(store.db)["connection"], (), day(-1), day(0)) is None
    await same_as_rows(store, day(0))
    for table in layout.load(store.db).values():
        for dims in DIMS:
            expected = await raw_day_cells(store, table, dims, day(-2), day(0))
            assert await day_cells(store, table, dims, day(-2), day(0)) == expected
    held = {k[0] for a in live_days.accumulators() for k in a.cells}
    assert held == {day(0)}
    # tomorrow, 00:30: today and tomorrow live; rows arrive for tomorrow
    monkeypatch.setattr(rollups, "clock", lambda: TODAY + DAY + 1800.0)
    tomorrow = [
        event_row(event_id=f"t{i}", ts=TODAY + DAY + 60.0 * i, visitor=f"tv{i % 7}")
        for i in range(20)
    ]
    await store.write(tomorrow, Counter(), "d")
    await same_as_rows(store, day(0))
    # the clock set back a day: yesterday is live again, read afresh
    monkeypatch.setattr(rollups, "clock", lambda: EARLY)
    await same_as_rows(store)


async def test_the_largest_row_deleted_then_its_id_reused(kit):
    """A new row takes the deleted largest row's id: without the generation, the
    accumulator would keep the deleted row and never read the new one."""
    store, _, _ = kit
    await store.write(rows(random.Random(14), [0], 100, "w"), Counter(), "d")
    table = layout.load(store.db)["connection"]
    before = await live(store, table, ("browser",), day(0), day(0))
    name = layout.quote(table.name)
    (largest,) = store.db.execute(f"SELECT max(id) FROM {name}").fetchone()
    store.db.execute(f"DELETE FROM {name} WHERE id = ?", (largest,))
    await store.write(
        [event_row(event_id="again", ts=time.time() - 1, browser="Lynx", visitor="new")],
        Counter(),
        "d",
    )
    assert store.db.execute(f"SELECT max(id) FROM {name}").fetchone() == (largest,)
    after = await live(store, table, ("browser",), day(0), day(0))
    assert after == await raw_day_cells(store, table, ("browser",), day(0), day(0)) != before
    assert after is not None and after[(day(0), "Lynx")] == DayCounts(1, 1, 0, 0)


async def test_an_erased_subject_is_in_no_accumulator_after_the_next_query(kit):
    store, keystore, policy = kit
    victim = SUBJECTS[5]
    theirs = [
        event_row(
            event_id=f"v{i}",
            ts=time.time() - 60.0 * i,
            purpose="browsing_history",
            subject=victim,
            visitor=None,
            path="/only-the-victim",
        )
        for i in range(5)
    ]
    await store.write(theirs + rows(random.Random(15), [0], 200, "o"), Counter(), "d")
    await same_as_rows(store)

    def holding() -> int:
        return sum(
            victim in c.subjects or victim in c.visitors or victim in c.networks
            for a in live_days.accumulators()
            for c in a.cells.values()
        )

    assert holding() > 1  # in every shape's accumulator of browsing_history
    await erase(store, keystore, victim, "req-2", policy=policy)
    table = layout.load(store.db)["connection"]
    await live(store, table, (), day(0), day(0))  # any query of the store, of any shape
    assert holding() == 0
    await same_as_rows(store)
    assert holding() == 0


async def test_the_memory_cap_holds_and_answers_stay_exact(kit, monkeypatch):
    store, _, _ = kit
    await store.write(rows(random.Random(16), [-1, 0], 400, "cap"), Counter(), "d")
    table = layout.load(store.db)["browsing_history"]
    # room for about one accumulator: the least recently used go
    monkeypatch.setattr(live_days, "MAX_ENTRIES", 150)
    for dims in DIMS:
        expected = await raw_day_cells(store, table, dims, day(-1), day(0))
        assert await day_cells(store, table, dims, day(-1), day(0)) == expected
        assert live_days.entries() <= 150
    # one that alone exceeds it is not kept: read from the rows until the live days change
    monkeypatch.setattr(live_days, "MAX_ENTRIES", 5)
    live_days._live.clear()
    assert await live(store, table, ("path",), day(-1), day(0)) is None
    assert live_days.entries() == 0 and live_days._too_big
    expected = await raw_day_cells(store, table, ("path",), day(-1), day(0))
    assert await day_cells(store, table, ("path",), day(-1), day(0)) == expected


async def test_a_store_without_the_bump_is_read_from_the_rows(kit):
    store, _, _ = kit
    await store.write(rows(random.Random(17), [0], 50, "nb"), Counter(), "d")
    table = layout.load(store.db)["connection"]
    sql = rollups._triggers(table)[f"rollups_{table.name}_delete"]
    store.db.execute(f'DROP TRIGGER "rollups_{table.name}_delete"')
    store.db.execute(sql.replace(rollups.BUMP, ""))  # an older veil's trigger
    assert await live(store, table, (), day(0), day(0)) is None
    expected = await raw_day_cells(store, table, (), day(-1), day(0))
    assert await day_cells(store, table, (), day(-1), day(0)) == expected


@pytest.mark.parametrize(
    ("first", "then"), [(["a,b", "a"], "b"), ([b"a", "b"], "a")], ids=["comma", "blob"]
)
async def test_pseudonyms_a_joined_string_would_not_give_back_are_read_row_by_row(kit, first, then):
    """The build hands each cell's pseudonyms over comma-joined: {'a,b', 'a'} would split into
    {'a', 'b'}, and a blob b'a' would come back as the text 'a'; a later row would then not
    be counted. Such cells are read row by row."""
    store, _, _ = kit
    now = time.time()
    start = [
        event_row(event_id=f"x{i}", ts=now - 30 + i, visitor=v, network="n")
        for i, v in enumerate(first)
    ]
    await store.write(start, Counter(), "d")
    table = layout.load(store.db)["connection"]
    assert await live(store, table, (), day(0), day(0)) == {(day(0),): DayCounts(2, 2, 1, 0)}
    (acc,) = live_days.accumulators()
    assert acc.cells[(day(0), None)].visitors == set(first)
    await store.write([event_row(event_id="x3", ts=now - 10, visitor=then)], Counter(), "d")
    got = await live(store, table, (), day(0), day(0))
    assert got == {(day(0),): DayCounts(3, 3, 1, 0)}
    assert got == await raw_day_cells(store, table, (), day(0), day(0))
