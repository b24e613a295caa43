"""Thresholds that hold (issue 11): the unit is the person as far as veil can know it.

Real SQLite stores filled through `store.write`; k = 5 throughout. Each attack the issue
names is a test: one person on five days, five browsers behind one network, padding from
one network, differencing through filters. Their counterparts (five people) are shown.
"""

import itertools
from collections import Counter

from veil.analytics import StatsQuery, run
from veil.analytics.cells import DayCounts
from veil.analytics.thresholds import clears, complement

from conftest import event_row, known_to_ledger

K = 5
MIDNIGHT = 1_763_942_400.0  # 2025-11-24T00:00:00Z
DAY = 86_400.0


def visit(day: int, visitor: str, network: str, **values):
    """One cookieless connection event on `day` (0-based from MIDNIGHT) at 10:00 UTC."""
    return event_row(ts=MIDNIGHT + day * DAY + 36_000.0, visitor=visitor, network=network, **values)


async def ask(store, k=K, **query):
    return await run(store, store.policy, StatsQuery(**query), k)


async def test_one_person_on_five_days_is_suppressed(store):
    # a new visitor and network pseudonym every day: five "visitors", one person
    rows = [visit(d, f"v{d}", f"n{d}", browser="Chrome", country="DE") for d in range(5)]
    await store.write(rows, Counter(), "d")
    for by in ((), ("browser",), ("country",), ("browser", "country")):
        result = await ask(store, purpose="connection", by=by, metrics=("events", "visitors"))
        assert [c.values for c in result.cells] == [None] and result.suppressed == 1
    # the counting itself is right: at k=1 the same cell is shown with five daily visitors
    shown = await ask(store, k=1, purpose="connection", metrics=("events", "visitors"))
    assert [c.values for c in shown.cells] == [{"events": 5, "visitors": 5}]


async def test_five_browsers_from_one_network_are_suppressed(store):
    browsers = ["Chrome", "Firefox", "Safari", "Edge", "Opera"]
    rows = [visit(0, f"v{i}", "home", browser=b, country="DE") for i, b in enumerate(browsers)]
    await store.write(rows, Counter(), "d")
    result = await ask(store, purpose="connection", by=("country",), metrics=("visitors",))
    assert [(c.key, c.values) for c in result.cells] == [(("DE",), None)]


async def test_padding_from_one_network_does_not_clear_k(store):
    # one real visitor, four made up by an attacker from their own network, same day
    rows = [visit(0, "real", "n-real", country="DE", path=None)]
    rows += [visit(0, f"fake{i}", "n-attacker", country="DE") for i in range(4)]
    rows += [visit(1, f"fake-next{i}", f"n-other{i}", country="DE") for i in range(2)]
    await store.write(rows, Counter(), "d")
    result = await ask(store, purpose="connection", by=("country",))
    assert result.cells[0].values is None and result.suppressed == 1


async def test_five_people_on_five_networks_in_one_day_are_shown(store):
    rows = [visit(0, f"v{i}", f"n{i}", browser="Chrome") for i in range(5)]
    rows.append(visit(0, "v0", "n0", browser="Chrome"))  # a second event of one of them
    await store.write(rows, Counter(), "d")
    result = await ask(store, purpose="connection", by=("browser",), metrics=("events", "visitors"))
    assert [(c.key, c.values) for c in result.cells] == [
        (("Chrome",), {"events": 6, "visitors": 5})
    ]
    assert result.suppressed == 0 and result.k == K


async def test_subjects_are_counted_as_persons(store):
    subjects = [f"s{i}" for i in range(5)]
    await known_to_ledger(store, *subjects)

    def seen(subject: str, day: int, n: int):
        return event_row(
            ts=MIDNIGHT + day * DAY,
            purpose="browsing_history",
            visitor=None,
            subject=subject,
            network="home",
            event_id=f"{subject}-{day}-{n}",
            path="/",
        )

    # day 0: five subjects, all behind one network: five persons
    # days 10-14: one subject on five days: one person
    await store.write(
        [seen(s, 0, 0) for s in subjects] + [seen("s0", 10 + d, 1) for d in range(5)],
        Counter(),
        "d",
    )
    metrics = ("events", "subjects", "visitors")
    five = await ask(
        store, purpose="browsing_history", by=("path",), metrics=metrics, until=MIDNIGHT + 5 * DAY
    )
    assert [(c.key, c.values) for c in five.cells] == [
        (("/",), {"events": 5, "subjects": 5, "visitors": 5})
    ]
    one = await ask(
        store, purpose="browsing_history", by=("path",), metrics=metrics, since=MIDNIGHT + 10 * DAY
    )
    assert [(c.key, c.values) for c in one.cells] == [(("/",), None)]


async def test_differencing_through_filters_recovers_no_suppressed_count(store):
    # Chrome: 5 people, 10 events; Firefox: 5 people, 7 events; Safari: 1 person, 3 events
    rows = [
        visit(0, f"c{i}", f"n{i}", browser="Chrome", event_id=f"c{i}-{n}")
        for i in range(5)
        for n in range(2)
    ]
    rows += [visit(0, f"f{i}", f"n{i}", browser="Firefox", event_id=f"f{i}") for i in range(5)]
    rows += [visit(0, "f0", "n0", browser="Firefox", event_id=f"f-more{i}") for i in range(2)]
    rows += [visit(0, "s", "n9", browser="Safari", event_id=f"s{i}") for i in range(3)]
    await store.write(rows, Counter(), "d")
    secret = {3, 7}  # Safari's count, and Firefox's, hidden as its complement

    shown: list[int] = []
    queries = [{"by": ()}, {"by": ("browser",)}, {"by": ("browser", "country")}]
    queries += [{"filters": {"browser": b}} for b in ("Chrome", "Firefox", "Safari")]
    queries += [{"by": ("country",), "filters": {"browser": b}} for b in ("Firefox", "Safari")]
    queries += [{"by": ("day",), "filters": {"browser": "Safari"}}]
    for q in queries:
        result = await ask(store, purpose="connection", **q)
        values = [c.values["events"] for c in result.cells if c.values is not None]
        shown.extend(values)
        shown.append(sum(values))  # what the shown cells of one answer add up to
    assert 20 in shown  # the total is shown ...
    by_browser = await ask(store, purpose="connection", by=("browser",))
    assert [(c.key, c.values) for c in by_browser.cells] == [
        (("Chrome",), {"events": 10}),
        (("Firefox",), None),  # ... and Firefox is suppressed beside Safari
        (("Safari",), None),
    ]
    assert by_browser.suppressed == 2
    # no shown number, nor any difference of two, is a suppressed count
    assert not secret & set(shown)
    assert not secret & {abs(a - b) for a, b in itertools.combinations(set(shown), 2)}


def test_clears_needs_k_subjects_or_k_visitors_and_networks_in_the_day():
    assert clears(DayCounts(events=9, visitors=5, networks=5), 5)
    assert not clears(DayCounts(events=3, visitors=3, networks=3), 5)
    assert not clears(DayCounts(events=50, visitors=50, networks=4), 5)
    assert clears(DayCounts(subjects=5), 5) and not clears(DayCounts(subjects=4), 5)
    # subjects and cookieless visitors are never added together
    assert not clears(DayCounts(visitors=4, networks=4, subjects=4), 5)


def test_a_lone_suppressed_cell_takes_the_next_smallest_with_it():
    keys = [("d1", "a"), ("d1", "b"), ("d1", "c"), ("d1", "d")]
    sizes = [40, 12, 3, 30]
    assert complement(keys, sizes, [2]) == {1, 2}
    assert complement(keys, sizes, [1, 2]) == {1, 2}  # two hidden already: enough
    assert complement(keys, sizes, []) == set()
    # two dimensions: each row and column group of the table hides none or at least two
    keys2 = [("d1", x, y) for x in "ab" for y in "xy"]
    hidden = complement(keys2, [1, 10, 10, 10], [0])
    for dim in (1, 2):
        for value in "abxy":
            group = [i for i, k in enumerate(keys2) if k[dim] == value]
            assert len([i for i in group if i in hidden]) != 1
    # days are never grouped together: a lone hidden day cell of one value takes no other
    # day's cell with it (no total over days includes a hidden day cell)
    days = [("d1", "a"), ("d1", "b"), ("d1", "c"), ("d2", "a"), ("d2", "b")]
    assert complement(days, [9, 8, 1, 9, 7], [2]) == {1, 2}


async def test_differencing_through_time_ranges_recovers_no_hidden_day(store):
    # Chrome clears k on day 0 (5 people, 5 networks); on day 1 one person visits 4 times
    rows = [visit(0, f"c{i}", f"n{i}", browser="Chrome", event_id=f"c{i}") for i in range(5)]
    rows += [visit(1, "lone", "home", browser="Chrome", event_id=f"lone{i}") for i in range(4)]
    await store.write(rows, Counter(), "d")
    day_one = await ask(store, purpose="connection", by=("browser",), since=MIDNIGHT)
    first = await ask(
        store, purpose="connection", by=("browser",), since=MIDNIGHT, until=MIDNIGHT + DAY
    )
    # a range ending inside day 1 takes in all of it: no hour-wise slicing of a day
    inside = await ask(
        store, purpose="connection", by=("browser",), since=MIDNIGHT, until=MIDNIGHT + DAY + 60
    )
    assert [(c.key, c.values, c.hidden_days) for c in first.cells] == [
        (("Chrome",), {"events": 5}, 0)
    ]
    for both in (day_one, inside):
        # the lone person's day is left out, and said to be
        assert [(c.key, c.values, c.hidden_days) for c in both.cells] == [
            (("Chrome",), {"events": 5}, 1)
        ]
    assert (inside.first_day, inside.last_day) == ("2025-11-24", "2025-11-25")
    assert (first.first_day, first.last_day) == ("2025-11-24", "2025-11-24")
    by_day = await ask(store, purpose="connection", by=("day",), filters={"browser": "Chrome"})
    assert [(c.key, c.values) for c in by_day.cells] == [
        (("2025-11-24",), {"events": 5}),
        (("2025-11-25",), None),
    ]


async def test_a_row_just_before_midnight_is_counted_on_one_day_only(store):
    # SQLite's date() rounds to the millisecond: 0.3 ms before midnight is the next day
    edge = MIDNIGHT + DAY - 0.0003
    rows = [
        event_row(ts=edge, visitor=f"v{i}", network=f"n{i}", event_id=f"e{i}") for i in range(5)
    ]
    await store.write(rows, Counter(), "d")
    totals = []
    for since, until in ((MIDNIGHT, MIDNIGHT + DAY), (MIDNIGHT + DAY, MIDNIGHT + 2 * DAY)):
        result = await ask(store, purpose="connection", since=since, until=until)
        totals.append(sum(c.values["events"] for c in result.cells if c.values))
    both = await ask(store, purpose="connection", since=MIDNIGHT, until=MIDNIGHT + 2 * DAY)
    assert totals == [0, 5] and [c.values for c in both.cells] == [{"events": 5}]


def test_the_cells_hidden_beside_a_lone_one_do_not_depend_on_the_order_read():
    # ties in size: the partner is chosen by key, so rollups, memory and rows (each reading
    # the cells in its own order) hide the same ones
    keys = [("d1", v) for v in "abcde"] + [("d2", v) for v in "abcde"]
    sizes = [9, 9, 9, 9, 1] * 2
    hidden_keys = None
    for turn in range(6):
        order = keys[turn:] + keys[:turn]
        order = order[::-1] if turn % 2 else order
        by_key = dict(zip(keys, sizes, strict=True))
        hidden = complement(
            order, [by_key[k] for k in order], [i for i, k in enumerate(order) if k[1] == "e"]
        )
        found = {order[i] for i in hidden}
        assert hidden_keys is None or found == hidden_keys
        hidden_keys = found
    assert hidden_keys == {("d1", "a"), ("d1", "e"), ("d2", "a"), ("d2", "e")}
