"""Review of the analytics engine (R1): attacks through the API's own parameters.

Real SQLite stores filled through `store.write`; k = 5.
"""

from collections import Counter

import pytest

from veil.analytics import StatsQuery, run
from veil.analytics.cells import DayCounts, dimension_sql, raw_day_cells
from veil.errors import QueryError
from veil.store import layout, live_days, rollups
from veil.store.days import day_of

from conftest import event_row, known_to_ledger

K = 5
MIDNIGHT = 1_763_942_400.0  # 2025-11-24T00:00:00Z
# (browser, country) -> events, each from its own visitor and network: a cell of 1 or 2 is
# below k, the others clear it
GRID = {
    ("A0", "B1"): 5,
    ("A0", "B2"): 1,
    ("A1", "B0"): 7,
    ("A1", "B2"): 7,
    ("A1", "B3"): 6,
    ("A2", "B2"): 7,
    ("A2", "B3"): 2,
}


async def ask(store, by, k=K):
    query = StatsQuery(purpose="connection", by=by, metrics=("events",))
    return await run(store, store.policy, query, k)


def shown(result, by):
    """(browser, country) -> events of the shown cells, and the hidden keys."""
    order = [by.index("browser"), by.index("country")]
    values, hidden = {}, set()
    for c in result.cells:
        key = tuple(c.key[i] for i in order)
        if c.values is None:
            hidden.add(key)
        else:
            values[key] = c.values["events"]
    return values, hidden


async def test_the_order_of_by_does_not_change_which_cells_hide(store):
    rows = [
        event_row(
            ts=MIDNIGHT + 36_000.0,
            visitor=f"v{b}{c}{i}",
            network=f"n{b}{c}{i}",
            browser=b,
            country=c,
        )
        for (b, c), n in GRID.items()
        for i in range(n)
    ]
    await store.write(rows, Counter(), "d")
    one, hidden_one = shown(await ask(store, ("browser", "country")), ("browser", "country"))
    two, hidden_two = shown(await ask(store, ("country", "browser")), ("country", "browser"))
    # the attack: the cells either answer shows, with the marginals by=browser and
    # by=country (both clear k), give a cell below k
    browsers = {c.key[0]: c.values for c in (await ask(store, ("browser",))).cells}
    countries = {c.key[0]: c.values for c in (await ask(store, ("country",))).cells}
    known = one | two
    if ("A1", "B0") in known and ("A1", "B2") in known and countries["B3"]:
        a1_b3 = browsers["A1"]["events"] - known[("A1", "B0")] - known[("A1", "B2")]
        recovered = countries["B3"]["events"] - a1_b3
        assert recovered != GRID[("A2", "B3")], "a cell below k recovered"
    assert hidden_one == hidden_two
    assert {k for k, n in GRID.items() if n < K} <= hidden_one


async def test_a_row_just_before_a_live_midnight_counts_in_memory_as_in_the_rows(
    store, monkeypatch
):
    # SQLite's date() rounds to the millisecond: 0.4 ms before midnight is the next day's, for
    # the rows and the rollups alike; memory must not drop it
    monkeypatch.setattr(rollups, "clock", lambda: MIDNIGHT + 1800.0)  # yesterday is live
    live_days._live.clear()
    yesterday = MIDNIGHT - 86_400.0
    rows = [event_row(ts=yesterday - 0.0004, visitor="v0", network="n0")]
    rows += [event_row(ts=yesterday + 60.0 * i, visitor=f"v{i}", network=f"n{i}") for i in (1, 2)]
    await store.write(rows, Counter(), "d")
    table = layout.load(store.db)["connection"]
    first = day_of(yesterday)
    expected = await raw_day_cells(store, table, (), first, None)
    got = await live_days.day_cells(store, table, None, False, first, None, DayCounts)
    assert got == expected and expected[(first,)].events == 3
    live_days._live.clear()


async def test_a_deletion_empties_every_accumulator_even_when_the_next_query_is_new(
    store, monkeypatch
):
    # the first query after a deletion may be of a shape never asked before (a new
    # accumulator): the others of the store, which may hold the deleted subject, go all the same
    now = MIDNIGHT + 7200.0
    monkeypatch.setattr(rollups, "clock", lambda: now)
    live_days._live.clear()
    await known_to_ledger(store, "victim")
    theirs = [
        event_row(
            event_id=f"v{i}",
            ts=now - 60.0 * i,
            purpose="browsing_history",
            subject="victim",
            visitor=None,
            path="/p",
        )
        for i in range(3)
    ]
    others = [event_row(event_id=f"o{i}", ts=now - 30.0 * i, visitor=f"v{i}") for i in range(3)]
    await store.write(theirs + others, Counter(), "d")
    tables = layout.load(store.db)
    history, connection = tables["browsing_history"], tables["connection"]
    today = day_of(now)
    await live_days.day_cells(store, history, None, False, today, None, DayCounts)
    assert any("victim" in c.subjects for a in live_days.accumulators() for c in a.cells.values())
    store.db.execute(f"DELETE FROM {layout.quote(history.name)} WHERE subject = 'victim'")
    value_sql = dimension_sql(connection, "country")
    await live_days.day_cells(store, connection, value_sql, False, today, None, DayCounts)
    held = [a for a in live_days.accumulators() for c in a.cells.values() if "victim" in c.subjects]
    live_days._live.clear()
    assert not held


async def test_a_time_beyond_the_calendar_is_a_query_error(store):
    # ISO times with an offset can land in year 0 or 10000 (UTC): refused, not a crash
    for since, until in ((-62135596800.0 - 3600.0, None), (None, 253402300800.0 + 3600.0)):
        with pytest.raises(QueryError, match="range"):
            await run(
                store, store.policy, StatsQuery(purpose="connection", since=since, until=until), K
            )
