"""Attacks on the analysts' stats API (issue 11), over real HTTP: `veil serve` under uvicorn,
fed by real beacons and consents from distinct clients (veil trusts 127.0.0.1 as a proxy, so
each `X-Forwarded-For` is one client address, one /24 one network), read through
`GET /api/v1/stats` with a token `veil analysts add` printed. HTTP cannot backdate, so rows
on earlier UTC days are written through the store's write path before the server starts.

k = 5 throughout. Each attack asks what an analyst could ask and checks that no number shown,
nor the difference of two, is a suppressed count (docs/analytics.md, "Thresholds"); the last
test documents the limit the docs name: k devices on k networks are k people to veil.
"""

import asyncio
import datetime as dt
import itertools
import json
import os
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from servers import ServerProcess

from veil.config import load
from veil.store import SQLiteStore
from veil_collector.cli import main

from conftest import CHROME, FIREFOX, SAFARI_IPHONE, event_row, scalar

K = 5
STATS = "/api/v1/stats"
SID = "__Host-veil_sid"
EDGE = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91"
)
OPERA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36 OPR/106.0.0.0"
)
FIVE_BROWSERS = (CHROME, FIREFOX, SAFARI_IPHONE, EDGE, OPERA)
CONFIG = (
    '[store]\nurl = "sqlite:///data/veil.db"\n[keys]\npath = "data/keys.db"\n'
    '[capture]\nflush_interval = 0.05\n[proxy]\ntrusted = ["127.0.0.1"]\n'
    # every client here is one loopback peer: no per-network rate limit in the way
    "[ingest]\nrate = 1000000.0\nburst = 1000000\n"
    f"[query]\nmin_group_size = {K}\n"
)

MIDNIGHT_MARGIN = 120.0  # seconds: longer than any one scenario here takes


def person(n: int) -> str:
    """The address of person `n`, alone on their own /24 (their own network)."""
    return f"198.51.{n}.20"


def day(offset: int = 0) -> dt.date:
    return dt.datetime.now(dt.UTC).date() + dt.timedelta(days=offset)


def at(offset: int, hour: int = 10) -> float:
    """Epoch seconds of `hour`:00 UTC on today + `offset` days."""
    d = day(offset)
    return dt.datetime(d.year, d.month, d.day, hour, tzinfo=dt.UTC).timestamp()


def seeded(offset: int, who: str, events: int = 1, hour: int = 10, **values) -> list[tuple]:
    """`events` cookieless connection rows of person `who` on day `offset`: a visitor and a
    network pseudonym of that day (both are keyed per UTC day, so each day has its own)."""
    return [
        event_row(
            ts=at(offset, hour) + n,
            event_id=f"{who}-{offset}-{hour}-{n}",
            policy_version="1.0",
            visitor=f"visitor-{who}-{offset}",
            network=f"network-{who}-{offset}",
            **{"browser": "Chrome", "os": "Windows", **values},
        )
        for n in range(events)
    ]


@dataclass
class Served:
    server: ServerProcess
    token: str

    def beacon(self, ip: str, agent: str = CHROME, path: str = "/", cookie: str = "") -> None:
        headers = {"User-Agent": agent, "X-Forwarded-For": ip, "Content-Type": "text/plain"}
        if cookie:
            headers["Cookie"] = f"{SID}={cookie}"
        body = {"screen_w": 1920, "screen_h": 1080, "pixel_ratio": 1, "language": "de"}
        r = httpx.post(
            f"{self.server.url}/veil/e", content=json.dumps({**body, "path": path}), headers=headers
        )
        assert r.status_code == 202, r.text

    def consent(self, ip: str, agent: str = CHROME) -> str:
        """A browser's grant of browsing_history: the subject cookie veil set."""
        r = httpx.post(
            f"{self.server.url}/veil/consent",
            json={"grant": ["browsing_history"]},
            headers={"User-Agent": agent, "X-Forwarded-For": ip},
        )
        assert r.status_code == 200, r.text
        for header in r.headers.get_list("set-cookie"):
            name, _, rest = header.partition("=")
            if name == SID:
                return rest.split(";", 1)[0]
        raise AssertionError(f"no {SID} set: {r.headers}")

    def stored(self, n: int) -> None:
        """Until the writer has stored `n` event rows (a beacon is acknowledged before that)."""
        deadline = time.monotonic() + 30
        while scalar(self.server.db, "SELECT COUNT(*) FROM event_rows") < n:
            assert time.monotonic() < deadline, self.server.log.read_text()
            time.sleep(0.05)

    def stats(self, purpose: str = "connection", **params: str) -> dict:
        r = httpx.get(
            f"{self.server.url}{STATS}",
            params={"purpose": purpose, **params},
            headers={"Authorization": f"Bearer {self.token}"},
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["k"] == K
        return body


@pytest.fixture
def serve(tmp_path: Path, master_key: str, capsys) -> Iterator:
    """`serve(rows)`: `rows` written to a new store (earlier days), an analyst's token for
    both purposes, then `veil serve` started on it (stopped at teardown)."""
    started: list[ServerProcess] = []
    # a scenario's requests must fall on one UTC day: none starts in a day's last minutes
    if (left := 86_400 - time.time() % 86_400) < MIDNIGHT_MARGIN:
        time.sleep(left + 1)

    def start(rows: Iterable[tuple] = ()) -> Served:
        config = tmp_path / "veil.toml"
        config.write_text(CONFIG)
        (tmp_path / "data").mkdir(mode=0o700)
        asyncio.run(_write(config, list(rows)))
        args = ["analysts", "add", "eve", "--purpose", "connection"]
        assert main([*args, "--purpose", "browsing_history", "--config", str(config)]) == 0
        token = capsys.readouterr().out.strip()
        env = {**os.environ, "VEIL_MASTER_KEY": master_key}
        server = ServerProcess.veil_serve(
            config, env, tmp_path / "serve.log", data=tmp_path / "data"
        )
        started.append(server.start())
        return Served(server, token)

    yield start
    for server in started:
        assert server.stop() == 0


async def _write(config: Path, rows: list[tuple]) -> None:
    cfg = load(config)
    store = SQLiteStore(cfg.store.path)
    await store.open(cfg.policy)
    try:
        if rows:
            await store.write(rows, Counter(), day().isoformat())
    finally:
        await store.close()


def same_day(first: dt.date) -> None:
    """The requests of one test fell on one UTC day (`serve` starts none near midnight)."""
    assert day() == first, "a scenario ran past UTC midnight: raise MIDNIGHT_MARGIN"


def values(cell: dict, metric: str = "events") -> int | None:
    return None if cell["values"] is None else cell["values"][metric]


def shown(answer: dict, metric: str = "events") -> list[int]:
    return [v for c in answer["cells"] if (v := values(c, metric)) is not None]


def derivable(answers: Iterable[dict], metric: str = "events") -> set[int]:
    """Every number the answers show, each answer's shown cells summed, and every difference
    of two of those: what an analyst gets by adding and subtracting them."""
    numbers: set[int] = set()
    for answer in answers:
        numbers.update(shown(answer, metric))
        numbers.add(sum(shown(answer, metric)))
    return numbers | {abs(a - b) for a, b in itertools.combinations(numbers, 2)}


# -- 1. one person on five days ---------------------------------------------------------------


def test_one_person_on_five_days_is_suppressed_by_day_and_over_the_range(serve):
    # one network, one browser: four earlier days written, today's through a real beacon
    today = day()  # before the rows of earlier days are made
    rows = [r for d in range(-4, 0) for r in seeded(d, "p", events=2)]
    served = serve(rows)
    served.beacon(person(1))
    served.beacon(person(1))
    served.stored(len(rows) + 2)
    same_day(today)
    since = day(-4).isoformat()
    for by in ("", "day", "browser", "browser,day", "os", "hour"):
        answer = served.stats(by=by, metric="events,visitors", since=since)
        assert answer["cells"], by
        assert all(c["values"] is None for c in answer["cells"]), (by, answer)
        assert answer["suppressed"] == len(answer["cells"])
    # five pseudonyms were stored for this one person, ten events: at k = 1 they would show
    assert scalar(served.server.db, "SELECT COUNT(DISTINCT visitor) FROM event_rows") == 5


# -- 2. one person on five browsers -----------------------------------------------------------


def test_five_browsers_behind_one_network_in_one_day_are_suppressed(serve):
    served = serve()
    today = day()
    for agent in FIVE_BROWSERS:
        served.beacon(person(1), agent)
    served.stored(5)
    same_day(today)
    for by in ("", "browser", "os", "day", "hour", "device"):
        answer = served.stats(by=by, metric="events,visitors")
        assert all(c["values"] is None for c in answer["cells"]), (by, answer)
    assert len(served.stats(by="browser")["cells"]) == 5  # five browsers, five visitors


# -- 3. padding ---------------------------------------------------------------------------------


def test_four_visitors_made_up_from_the_attackers_network_do_not_lift_a_victim(serve):
    served = serve()
    today = day()
    served.beacon(person(1), CHROME)  # the victim
    for agent in FIVE_BROWSERS[1:]:  # the attacker, from home, in four browsers
        served.beacon("203.0.113.9", agent)
        served.beacon("203.0.113.77", agent)  # and from a neighbour in the same /24
    served.stored(9)
    same_day(today)
    for by in ("", "day", "hour", "country"):
        answer = served.stats(by=by, metric="events,visitors")
        assert [c["values"] for c in answer["cells"]] == [None], (by, answer)


def test_five_people_on_five_networks_in_one_day_are_shown(serve):
    served = serve()
    today = day()
    for n in range(1, 6):
        served.beacon(person(n))
    served.beacon(person(1))  # a second event of one of them
    served.stored(6)
    same_day(today)
    answer = served.stats(by="browser", metric="events,visitors")
    assert [(c["key"], c["values"]) for c in answer["cells"]] == [
        ({"browser": "Chrome"}, {"events": 6, "visitors": 5})
    ]
    assert answer["suppressed"] == 0


# -- 4. differencing through filters and groupings ------------------------------------------------


def test_filters_groupings_and_the_total_recover_no_hidden_count(serve):
    # Chrome: 5 people, 10 events; Firefox: 5 people, 7 events; Safari: 1 person, 3 events
    served = serve()
    today = day()
    for n in range(1, 6):
        served.beacon(person(n), CHROME)
        served.beacon(person(n), CHROME)
        served.beacon(person(10 + n), FIREFOX)
    served.beacon(person(11), FIREFOX)
    served.beacon(person(11), FIREFOX)
    for _ in range(3):
        served.beacon(person(30), SAFARI_IPHONE)
    served.stored(20)
    same_day(today)
    hidden = {3}  # Safari's count: the one person's

    by_browser = served.stats(by="browser")
    assert [(c["key"]["browser"], values(c)) for c in by_browser["cells"]] == [
        ("Chrome", 10),
        ("Firefox", None),  # Safari's complement: the next smallest
        ("Mobile Safari", None),
    ]
    total = served.stats()
    assert shown(total) == [20]
    # the total minus the shown cells covers two hidden cells, never one
    assert 20 - sum(shown(by_browser)) == 7 + 3

    answers = [total, by_browser, served.stats(by="browser,os"), served.stats(by="os")]
    answers += [served.stats(by="browser,device"), served.stats(by="browser,day")]
    for browser in ("Chrome", "Firefox", "Mobile Safari"):
        answers.append(served.stats(where=f"browser:{browser}"))
        answers.append(served.stats(where=f"browser:{browser}", by="os"))
        answers.append(served.stats(where=f"browser:{browser}", by="hour"))
    for os_name in ("Windows", "Linux", "iOS"):
        answers.append(served.stats(where=f"os:{os_name}"))
    for a in answers:
        assert not hidden & set(shown(a)), a
    assert not hidden & derivable(answers), derivable(answers)
    # the same with visitors: Safari's one visitor is not derivable either
    vis = [served.stats(by=by, metric="visitors") for by in ("", "browser", "os", "browser,os")]
    vis += [served.stats(metric="visitors", where=f"browser:{b}") for b in ("Firefox", "Safari")]
    assert shown(vis[0], "visitors") == [11] and 1 not in derivable(vis, "visitors")


# -- 5. differencing through time ranges ----------------------------------------------------------


def test_two_time_ranges_do_not_isolate_one_persons_day(serve):
    """Yesterday five people (cleared); today one more person, 3 events. [yesterday, today)
    against [yesterday, tomorrow) must not differ by that person's count: an answer over a
    range is the sum of the day cells that cleared k on their own."""
    today = day()  # before the rows of earlier days are made
    rows = [r for n in range(5) for r in seeded(-1, f"p{n}", events=2)]
    served = serve(rows)
    for _ in range(3):
        served.beacon(person(1))
    served.stored(len(rows) + 3)
    same_day(today)
    y, t, tomorrow = (day(o).isoformat() for o in (-1, 0, 1))
    both = "events,visitors"
    for by in ("", "browser", "os"):
        before = served.stats(by=by, metric=both, since=y, until=t)
        after = served.stats(by=by, metric=both, since=y, until=tomorrow)
        alone = served.stats(by=by, metric=both, since=t, until=tomorrow)
        assert shown(before) == [10], before  # the five of yesterday are shown
        assert shown(alone) == [], alone  # today alone is one person: suppressed
        # the range's cell is yesterday's alone, and says a day below k was left out
        assert shown(after) == [10] and after["cells"][0].get("suppressed_days") == 1, after
        by_day = served.stats(by=f"{by},day".strip(","), metric=both, since=y, until=tomorrow)
        assert [values(c) for c in by_day["cells"]] == [10, None], by_day
        for metric, secret in (("events", 3), ("visitors", 1)):
            assert secret not in derivable([before, after, alone, by_day], metric), (metric, after)
        # mid-day bounds change nothing either: ranges are whole UTC days
        noon = served.stats(by=by, since=y, until=f"{t}T12:00:00Z")
        later = served.stats(by=by, since=f"{y}T06:00:00Z", until=f"{t}T23:59:59Z")
        assert noon["range"] == later["range"] == after["range"] == {"first_day": y, "last_day": t}
        assert 3 not in derivable([before, noon, later, after])


# -- 6. differencing through hour against day --------------------------------------------------


def test_hours_against_the_day_isolate_no_hour(serve):
    # yesterday: 10:00 five people (5 events), 12:00 five others (8), 15:00 one person (2)
    today = day()  # before the rows of earlier days are made
    rows = [r for n in range(5) for r in seeded(-1, f"a{n}", hour=10)]
    rows += [r for n in range(5) for r in seeded(-1, f"b{n}", events=2 if n < 3 else 1, hour=12)]
    rows += seeded(-1, "c", events=2, hour=15)
    served = serve(rows)
    same_day(today)
    since, until = day(-1).isoformat(), day(0).isoformat()
    by_day = served.stats(by="day", since=since, until=until)
    assert shown(by_day) == [15]
    by_hour = served.stats(by="hour", since=since, until=until)
    assert [values(c) for c in by_hour["cells"]] == [None, 8, None]  # 15:00 took 10:00 along
    assert 15 - sum(shown(by_hour)) == 5 + 2
    answers = [by_day, by_hour, served.stats(by="hour,browser", since=since, until=until)]
    answers.append(served.stats(since=since, until=until))
    for hour in ("10", "12", "15"):
        answers.append(served.stats(where=f"hour:{day(-1)}T{hour}:00Z", since=since))
    assert 2 not in derivable(answers)


# -- 7. a restricted subject ------------------------------------------------------------------


def test_a_restricted_subject_disappears_from_every_answer(serve):
    served = serve()
    today = day()
    cookies = [served.consent(person(n)) for n in range(1, 7)]
    for n, cookie in enumerate(cookies[:5], start=1):
        served.beacon(person(n), CHROME, "/a", cookie)
        served.beacon(person(n), CHROME, "/b", cookie)
    # the one who will restrict: their own browser, their own path, 3 events
    for path in ("/a", "/mine", "/mine"):
        served.beacon(person(6), FIREFOX, path, cookies[5])
    served.stored(2 * (10 + 3))  # each beacon: a connection row and a browsing_history row
    same_day(today)
    metric = "events,visitors,subjects"
    groupings = ("", "path", "browser", "os", "day", "hour", "path,browser", "device")

    def answers() -> dict[str, dict]:
        return {by: served.stats("browsing_history", by=by, metric=metric) for by in groupings}

    before = answers()
    assert shown(before[""], "subjects") == [6]
    r = httpx.post(
        f"{served.server.url}/veil/rights/restrict",
        json={},
        headers={
            "User-Agent": FIREFOX,
            "X-Forwarded-For": person(6),
            "Cookie": f"{SID}={cookies[5]}",
        },
    )
    assert r.status_code == 200 and r.json()["changed"] is True, r.text
    after = answers()
    for by, answer in after.items():
        keys = [c["key"] for c in answer["cells"]]
        assert answer["suppressed"] == 0 and sum(shown(answer)) == 10, (by, answer)
        assert sum(shown(answer, "subjects")) == 5 * (2 if "path" in by else 1), (by, answer)
        # no cell of theirs is left, not even a suppressed one
        assert {"path": "/mine"} not in keys and not any(
            k.get("browser") == "Firefox" for k in keys
        ), (by, keys)
    assert served.stats("browsing_history", where="path:/mine")["cells"] == []


# -- 8. the limit: k devices on k networks --------------------------------------------------------


def test_k_networks_of_an_attacker_lift_a_victim_as_documented(serve):
    """docs/analytics.md, "Not guaranteed": a botnet, or k colluding people. k - 1 devices on
    k - 1 networks beside one real visitor make k visitors from k networks: the cell is shown,
    and the attacker, knowing their own contribution, subtracts it. veil cannot block this."""
    served = serve()
    today = day()
    for _ in range(3):
        served.beacon(person(1), FIREFOX)  # the victim: 3 events
    for n in range(2, 2 + K - 1):
        served.beacon(person(n), FIREFOX)  # the attacker's devices: one event each
    served.stored(3 + K - 1)
    same_day(today)
    [cell] = served.stats(by="browser", metric="events,visitors")["cells"]
    assert cell["values"] == {"events": 3 + K - 1, "visitors": K}
    assert cell["values"]["events"] - (K - 1) == 3  # the victim's count, recovered
