"""The query engine (veil.analytics.engine) over a real SQLite store filled by `store.write`:
what it counts, how it orders, what it refuses, and that restricted subjects never show."""

import time
from collections import Counter

import pytest

from veil.analytics import StatsQuery, run
from veil.errors import QueryError
from veil.store import SQLiteStore, subject_limits

from conftest import event_row, known_to_ledger

MIDNIGHT = 1_763_942_400.0  # 2025-11-24T00:00:00Z
DAY = 86_400.0


def people(day: int, n: int, hour: int = 10, prefix: str = "p", **values):
    """`n` distinct cookieless visitors on `n` networks, on `day` at `hour` UTC."""
    return [
        event_row(
            ts=MIDNIGHT + day * DAY + hour * 3600.0,
            visitor=f"{prefix}{day}-{i}",
            network=f"net{day}-{i}",
            **values,
        )
        for i in range(n)
    ]


async def ask(store, k=5, **query):
    return await run(store, store.policy, StatsQuery(**query), k)


async def test_a_time_series_comes_ordered_by_time(store):
    # written out of order, and the biggest day is not the first
    rows = people(2, 6, prefix="c") + people(0, 5, prefix="a") + people(1, 9, prefix="b")
    await store.write(rows, Counter(), "d")
    result = await ask(store, purpose="connection", by=("day",), metrics=("events", "visitors"))
    assert [(c.key, c.values) for c in result.cells] == [
        (("2025-11-24",), {"events": 5, "visitors": 5}),
        (("2025-11-25",), {"events": 9, "visitors": 9}),
        (("2025-11-26",), {"events": 6, "visitors": 6}),
    ]
    hourly = await ask(store, purpose="connection", by=("hour",), since=MIDNIGHT + DAY)
    assert [c.key for c in hourly.cells] == [("2025-11-25T10:00Z",), ("2025-11-26T10:00Z",)]


async def test_other_groupings_come_by_the_first_metric_descending(store):
    rows = people(0, 5, browser="Firefox", prefix="f") + people(0, 7, browser="Chrome", prefix="c")
    rows += people(0, 6, browser="Safari", prefix="s") + people(0, 6, browser="Safari", prefix="t")
    await store.write(rows, Counter(), "d")
    result = await ask(store, purpose="connection", by=("browser",), metrics=("visitors", "events"))
    assert [(c.key[0], c.values) for c in result.cells] == [
        ("Safari", {"visitors": 12, "events": 12}),
        ("Chrome", {"visitors": 7, "events": 7}),
        ("Firefox", {"visitors": 5, "events": 5}),
    ]


async def test_filters_and_time_range(store):
    rows = people(0, 5, browser="Chrome", country="DE", screen_w=1280, prefix="a")
    rows += people(0, 5, browser="Firefox", country="JP", screen_w=390, prefix="b")
    rows += people(3, 5, browser="Chrome", country="DE", screen_w=1280, prefix="c")
    await store.write(rows, Counter(), "d")
    jp = await ask(store, purpose="connection", by=("browser",), filters={"country": "JP"})
    assert [(c.key, c.values) for c in jp.cells] == [(("Firefox",), {"events": 5})]
    screens = await ask(store, purpose="connection", by=("screen",), until=MIDNIGHT + DAY)
    assert {c.key: c.values for c in screens.cells} == {
        ("1280",): {"events": 5},
        ("390",): {"events": 5},
    }
    # a filter answers exactly the grouped answer's cell
    grouped = await ask(store, purpose="connection", by=("country",))
    for cell in grouped.cells:
        (value,) = cell.key
        alone = await ask(store, purpose="connection", filters={"country": value})
        assert [c.values for c in alone.cells] == [cell.values]


async def test_restricted_subjects_are_left_out(store):
    subjects = [f"s{i}" for i in range(6)]
    await known_to_ledger(store, *subjects)
    rows = [
        event_row(
            ts=MIDNIGHT + 3600.0 * i,
            purpose="browsing_history",
            visitor=None,
            subject=s,
            path="/",
            event_id=s,
        )
        for i, s in enumerate(subjects)
    ]
    await store.write(rows, Counter(), "d")
    metrics = ("subjects", "events")
    before = await ask(store, purpose="browsing_history", by=("path",), metrics=metrics)
    assert [c.values for c in before.cells] == [{"subjects": 6, "events": 6}]
    async with store._writing() as db:  # the rights path's own statement (rights/limits.py)
        subject_limits.impose(db, "s0", subject_limits.RESTRICTION, "", time.time())
        subject_limits.impose(db, "s1", subject_limits.SUSPENSION, "", time.time())
    after = await ask(store, purpose="browsing_history", by=("path",), metrics=metrics)
    assert [c.values for c in after.cells] == [None]  # 4 persons left: below k
    at_one = await ask(store, k=1, purpose="browsing_history", by=("path",), metrics=metrics)
    assert [c.values for c in at_one.cells] == [{"subjects": 4, "events": 4}]


async def test_an_empty_store_answers_nothing(store):
    result = await ask(store, purpose="browsing_history", by=("day",))
    assert result.cells == [] and result.suppressed == 0


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"purpose": "connection", "by": ("path",)}, "does not hold dimension 'path'"),
        ({"purpose": "connection", "filters": {"path": "/"}}, "does not hold dimension 'path'"),
        ({"purpose": "connection", "by": ("visitor",)}, "unknown dimension 'visitor'"),
        ({"purpose": "connection", "by": ("ip",)}, "unknown dimension 'ip'"),
        ({"purpose": "connection", "metrics": ("subjects",)}, "not consent-based"),
        ({"purpose": "connection", "metrics": ("rows",)}, "unknown metric 'rows'"),
        ({"purpose": "connection", "metrics": ()}, "at least one metric"),
        ({"purpose": "marketing"}, "unknown purpose 'marketing'"),
        ({"purpose": "connection", "since": 10.0, "until": 5.0}, "time range is empty"),
    ],
)
async def test_what_the_purpose_does_not_hold_is_refused(store, query, message):
    with pytest.raises(QueryError, match=message):
        await ask(store, **query)


async def test_path_is_a_dimension_of_the_consent_purpose(store):
    result = await ask(store, purpose="browsing_history", by=("path", "day"), metrics=("subjects",))
    assert result.by == ("path", "day") and result.metrics == ("subjects",) and result.k == 5


async def test_a_decision_purpose_is_closed(make_config, store):
    from policies import GUARDED

    guarded = make_config(policy=GUARDED).policy
    assert "credit" in guarded.decision_purposes
    with pytest.raises(QueryError, match="feeds automated decisions"):
        await run(store, guarded, StatsQuery(purpose="credit"), 5)


def test_veil_query_on_the_engine(tmp_path, capsys):
    """`veil query` with --metric, --where, --since/--until, and suppressed cells marked."""
    import asyncio
    import json

    from veil.config import load
    from veil_collector.cli import main

    config = tmp_path / "veil.toml"
    config.write_text('[store]\nurl = "sqlite:///data/veil.db"\n[keys]\npath = "data/keys.db"\n')
    cfg = load(config)

    async def fill():
        s = SQLiteStore(cfg.store.path)
        await s.open(cfg.policy)
        rows = people(0, 6, browser="Chrome", country="DE", prefix="c")
        rows += people(0, 5, browser="Firefox", country="DE", prefix="f")
        rows += people(0, 1, browser="Safari", country="DE", prefix="s")
        rows += people(1, 5, browser="Chrome", country="JP", prefix="j")
        await s.write(rows, Counter(), "d")
        await s.close()

    asyncio.run(fill())

    def veil(*argv):
        code = main(["query", "--config", str(config), *argv])
        out = capsys.readouterr()
        assert code == 0, out.err
        return out.out

    table = veil("--by", "browser", "--where", "country=DE", "--metric", "events,visitors")
    lines = [line.split() for line in table.splitlines()]
    assert lines[0] == ["browser", "events", "visitors"]
    assert lines[2:5] == [
        ["Chrome", "6", "6"],
        ["Firefox", "suppressed", "suppressed"],
        ["Safari", "suppressed", "suppressed"],
    ]
    assert "2 cell(s) suppressed" in table
    csv_out = veil(
        "--by",
        "day",
        "--metric",
        "visitors",
        "--format",
        "csv",
        "--since",
        "2025-11-25",
        "--until",
        "2025-11-26",
    )
    assert csv_out.splitlines() == ["day,visitors", "2025-11-25,5"]
    answer = json.loads(
        veil("--by", "country", "--metric", "events", "--metric", "visitors", "--format", "json")
    )
    assert answer["rows"] == [
        {"country": "DE", "events": 12, "visitors": 12},
        {"country": "JP", "events": 5, "visitors": 5},
    ]
    assert answer["metrics"] == ["events", "visitors"] and answer["suppressed_groups"] == 0
    code = main(["query", "--config", str(config), "--where", "country"])
    assert code == 1 and "--where takes DIMENSION=VALUE" in capsys.readouterr().err
