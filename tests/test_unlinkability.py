"""Issue 7, item 17: daily pseudonyms must not be re-linked by what is stored beside them.

The attacker holds the store (an analyst reading the `events` view, or a copy of the file) and
no keys. Time is driven through the capture clock: each captured tuple carries the ts the
pipeline keys the day's pseudonyms with, and the keystore makes a key for any day not yet past
its life, so today and the four days after are five real key epochs. Real SQLite files, the
real writer; consent through the real consent endpoint (ASGI, as tests/test_consent.py).
"""

import datetime as dt
import itertools
import sqlite3
import time
from collections import Counter, defaultdict
from pathlib import Path

import netaddr
import pytest
from mmdb_writer import MMDBWriter

import veil.capture
from veil import Veil
from veil.store.schema import MIGRATIONS

from conftest import CHROME, Site, records, scope

DAY = 86400
TODAY = int(time.time() // DAY) * DAY
# Never grouped on: row ids, the time, the subject, what only the operator's keys open, the
# path. The pseudonyms are checked apart: they must differ from day to day.
NOT_QUASI = {
    "id",
    "event_id",
    "ts",
    "visitor",
    "network",
    "subject",
    "seal_key",
    "sealed_endpoint",
    "path",
}
PSEUDONYMS = ("visitor", "network")
# What a consenting subject's row may share with a connection row: coarse dimensions that
# describe many people's devices and places, never a value that is theirs alone.
COARSE = {
    "policy_version",
    "source",
    "site",
    "country",
    "region",
    "os",
    "os_version",
    "browser",
    "browser_version",
    "device",
    "device_brand",
    "device_model",
    "language",
    "languages",
    "gpc",
    "dnt",
    "screen_w",
    "screen_h",
    "pixel_ratio",
    "seal_key",
}

ME = {"ip": "198.51.100.7", "lang": "de-CH,de;q=0.9,en;q=0.8", "screen": (1920, 1080), "ratio": 1.0}
# Other people of the same town with the same common browser: a different exact screen or
# ratio each (what the base commit stored singled the person out), other networks.
OTHERS = [
    ("192.0.2.{}", "de-DE,de;q=0.9,en;q=0.8", (1920, 1200), 1.0),
    ("203.0.113.{}", "de,en;q=0.5", (2048, 1152), 1.0),
    ("100.64.{}.9", "de-AT,de;q=0.9,en-US;q=0.8", (1920, 1080), 1.1),
    ("100.65.{}.9", "de-CH,de;q=0.9,en;q=0.8", (1938, 1090), 1.0),
]


class Clock:
    """Stands in for the `time` module inside veil.capture: captured events carry `now`."""

    def __init__(self) -> None:
        self.now: float | None = None

    def time(self) -> float:
        return time.time() if self.now is None else self.now

    def __getattr__(self, name: str):
        return getattr(time, name)


@pytest.fixture
def clock(monkeypatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(veil.capture, "time", c)
    return c


@pytest.fixture
def town_db(tmp_path: Path) -> Path:
    """A MaxMind database in which every network of the test is in Berlin."""
    w = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoIP2-City")
    w.insert_network(
        netaddr.IPSet(
            ["198.51.100.0/24", "192.0.2.0/24", "203.0.113.0/24", "100.64.0.0/15", "2001:db8::/32"]
        ),
        {"country": {"iso_code": "DE"}, "subdivisions": [{"iso_code": "BE"}]},
    )
    path = tmp_path / "town.mmdb"
    w.to_db_file(str(path))
    return path


@pytest.fixture
async def town(make_config, town_db, started):
    return await started(Veil(make_config(geoip={"path": str(town_db)})))


def visit(
    v: Veil, clock: Clock, at: float, ip: str, lang: str, screen: tuple[int, int], ratio: float
) -> None:
    """A page view: the request the middleware captures, then the snippet's beacon."""
    headers = {"User-Agent": CHROME, "Accept-Language": lang}
    clock.now = at
    v.capture_request(scope("/pricing", (ip, 50123), headers))
    clock.now = at + 0.4
    v.capture_beacon(
        scope("/veil/e", (ip, 50124), headers),
        {
            "screen_w": screen[0],
            "screen_h": screen[1],
            "pixel_ratio": ratio,
            "language": lang.split(",")[0],
            "path": "/pricing",
        },
    )


def stored(v: Veil | Site, where: str = "1") -> list[dict]:
    return records(
        v,
        f"SELECT *, CAST(ts / {DAY} AS INTEGER) AS epoch_day FROM event_rows "
        f"WHERE {where} ORDER BY id",
    )


def profiles(rows: list[dict]) -> dict[int, dict[str, tuple]]:
    """Per day, per visitor pseudonym: every quasi-identifier value its rows stored (a page
    request and a beacon store different columns; the attacker merges them)."""
    merged: dict[int, dict[str, dict[str, set]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(set))
    )
    for r in rows:
        for column, value in r.items():
            if column not in NOT_QUASI and column != "epoch_day" and value is not None:
                merged[r["epoch_day"]][r["visitor"]][column].add(value)
    return {
        day: {
            p: tuple(sorted((c, tuple(sorted(map(str, v)))) for c, v in cols.items()))
            for p, cols in by_visitor.items()
        }
        for day, by_visitor in merged.items()
    }


async def test_one_person_on_five_days_is_not_singled_out_by_what_is_stored(town, clock):
    """(a) Same IP, same browser, same screen on five days, among a few people of the same
    town with the same common browser. At 0637979 the clear /24 (and the exact screen) made
    one group of five pseudonyms over five days: that person alone."""
    mine_at = {}
    for d in range(5):
        day = TODAY + d * DAY
        mine_at[d] = day + 3600.25
        visit(town, clock, mine_at[d], ME["ip"], ME["lang"], ME["screen"], ME["ratio"])
        for k, (ip, lang, screen, ratio) in enumerate(OTHERS):
            visit(town, clock, day + 7200.5 + k * 60, ip.format(10 + d), lang, screen, ratio)
    await town.flush()
    rows = stored(town)
    assert len(rows) == 5 * 2 * (1 + len(OTHERS))  # every event stored, none dropped
    mine = {r["visitor"] for r in rows if r["ts"] in mine_at.values()}
    assert len(mine) == 5  # five daily pseudonyms ...

    # ... and no pseudonym or network value is found on two different days
    by_day = defaultdict(list)
    for r in rows:
        by_day[r["epoch_day"]].append(r)
    assert len(by_day) == 5
    for column in PSEUDONYMS:
        for a, b in itertools.combinations(by_day, 2):
            shared = {r[column] for r in by_day[a]} & {r[column] for r in by_day[b]}
            assert not shared - {None}, f"{column} links day {a} to day {b}"

    # Grouped by every other column still stored, the person's group on each day holds other
    # people too: no unique match re-links their days.
    per_day = profiles(rows)
    for day, found in per_day.items():
        me = next(p for p in found if p in mine)
        alike = [p for p, prof in found.items() if prof == found[me]]
        assert len(alike) >= 2, f"the person is alone in their group on day {day}"
    # the attacker of bench/relinking.py: unique profiles on two days
    for a, b in itertools.combinations(per_day, 2):
        count_a, count_b = Counter(per_day[a].values()), Counter(per_day[b].values())
        linked = [
            p
            for p, prof in per_day[a].items()
            if p in mine and count_a[prof] == 1 and count_b[prof] == 1
        ]
        assert not linked


@pytest.fixture
async def consenting(make_config, town_db, clock, started_site) -> Site:
    """An app behind the middleware; `client(ip)` is a browser-like client (https)."""
    return await started_site(
        Veil(make_config(geoip={"path": str(town_db)})), headers={"Accept-Language": ME["lang"]}
    )


async def test_a_consenting_subject_is_not_paired_with_their_cookieless_rows(consenting, clock):
    """(b) A subject's rows carry no daily pseudonym, and nothing on their connection rows
    (visitor, network, exact time, event id) equals a value on the subject's rows. At 0637979
    each browsing_history row carried the visitor of its connection twin, which reached every
    connection row of that day, those before the consent included."""
    async with consenting.client(ME["ip"]) as c:
        await c.get("/before-consent")  # today, on the real clock, as the consent and ...
        assert (
            await c.post("/veil/consent", json={"grant": ["browsing_history"]})
        ).status_code == 200
        for d in range(3):  # ... what follows it today; then two more days, with the cookie
            for n, path in enumerate(("/pricing", "/checkout")):
                clock.now = TODAY + d * DAY + 20 * 3600 + n * 61 + 0.375 if d else None
                await c.get(path)
    async with consenting.client("203.0.113.80") as other:  # someone else, no consent
        clock.now = TODAY + 20 * 3600 + 30.5
        await other.get("/pricing")
    await consenting.veil.flush()

    history = stored(consenting, "purpose = 'browsing_history'")
    connection = stored(consenting, "purpose = 'connection'")
    assert [r["path"] for r in history] == ["/pricing", "/checkout"] * 3
    assert len(connection) == 1 + 6 + 1
    assert len({r["subject"] for r in history}) == 1  # one subject, as consented
    assert all(r["visitor"] is None and r["network"] is None for r in history)

    for column in set(history[0]) - COARSE - {"epoch_day"}:
        on_subject_rows = {r[column] for r in history} - {None}
        on_connection_rows = {r[column] for r in connection} - {None}
        assert not on_subject_rows & on_connection_rows, f"{column} pairs them"
    for h in history:  # nor an event id derived from the twin's
        assert not any(
            h["event_id"].startswith(r["event_id"]) or r["event_id"].startswith(h["event_id"])
            for r in connection
        )

    # the browser's rows from before the consent share no pseudonym with its rows after it,
    # even on the same day from the same address: pairing one subject row with its twin
    # reaches no further back
    before, same_day = connection[0], connection[1:3]
    assert before["epoch_day"] == same_day[0]["epoch_day"] == same_day[1]["epoch_day"]
    assert same_day[0]["visitor"] == same_day[1]["visitor"]  # one visitor while the cookie holds
    assert all(before["visitor"] != r["visitor"] for r in connection[1:])


def data_files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.rglob("*") if p.is_file()}


async def test_no_clear_network_prefix_reaches_the_data_dir(town, clock, data_dir):
    """(c) At 0637979 every row stored its /24 or /48 prefix in clear."""
    for d in range(2):
        visit(town, clock, TODAY + d * DAY + 100.5, ME["ip"], ME["lang"], ME["screen"], 1.0)
        visit(
            town,
            clock,
            TODAY + d * DAY + 200.5,
            "2001:db8:1:2::5",
            "en-US,en;q=0.9",
            (1440, 900),
            2.0,
        )
    await town.flush()
    assert len(stored(town)) == 8
    needles = [b"198.51.100", b"2001:db8:1", b"2001:0db8:0001"]

    def grep() -> list[tuple[str, bytes]]:
        return [
            (name, n)
            for name, blob in data_files(data_dir).items()
            for n in needles
            if n in blob or n.decode().encode("utf-16-le") in blob
        ]

    assert grep() == []  # while running: database, WAL and keystore
    await town.stop()
    assert grep() == []  # and at rest


def _migration_index() -> int:
    return next(i for i, m in enumerate(MIGRATIONS) if "SET network = NULL" in m)


async def test_upgrading_erases_clear_prefixes_and_unpairs_stored_subject_rows(
    make_config, data_dir, started
):
    """Rows stored by an older veil keep nothing that re-links them once the store is
    opened by this one: the migration erases their clear prefixes from the file."""
    path = data_dir / "veil.db"
    old = sqlite3.connect(path, isolation_level=None)
    old.execute("PRAGMA journal_mode=WAL")
    for number, script in enumerate(MIGRATIONS[: _migration_index()], start=1):
        old.executescript(f"BEGIN;\n{script}\nPRAGMA user_version={number};\nCOMMIT;")
    old.execute("INSERT INTO purposes VALUES ('connection', 'legitimate_interests', 0, 9, '1.0')")
    old.execute("INSERT INTO purposes VALUES ('browsing_history', 'consent', 1, 9, '1.0')")
    columns = (
        "(event_id, ts, purpose, policy_version, source, visitor, network, screen_w, "
        "screen_h, pixel_ratio, subject, path)"
    )
    at = int(time.time()) - 3600 + 0.125
    old.executemany(
        f"INSERT INTO event_log {columns} VALUES (?, ?, ?, '1.0', 'beacon', 'v1', "
        "'198.51.100.0/24', 1938, 1090, 1.1, ?, ?)",
        [
            ("b00000000000000000000001", at, "connection", None, None),
            ("b000000000000000000000011", at, "browsing_history", "s1", "/pricing"),
        ],
    )
    old.close()

    v = await started(Veil(make_config()))
    rows = stored(v)
    assert [(r["network"], r["screen_w"], r["screen_h"], r["pixel_ratio"]) for r in rows] == [
        (None, 1920, None, 1.0)
    ] * 2
    subject_row = rows[1]
    assert (subject_row["visitor"], subject_row["ts"]) == (None, at - 0.125)
    assert not subject_row["event_id"].startswith(rows[0]["event_id"])
    assert [n for n, blob in data_files(data_dir).items() if b"198.51.100" in blob] == []
    await v.stop()
    assert [n for n, blob in data_files(data_dir).items() if b"198.51.100" in blob] == []


def test_the_day_keys_pseudonymise_the_network_apart_from_the_visitor(make_config):
    """Countable within a day (same prefix, same value), not across days, and not the
    visitor's function of the same key (personalised apart)."""
    from veil.pseudonymise import Pseudonymiser
    from veil.store.keys import KeyStore

    ks = KeyStore.open(make_config().keys)
    p = Pseudonymiser(ks)
    today = dt.datetime.now(dt.UTC).date()
    tomorrow = today + dt.timedelta(days=1)
    a = p.pseudonyms(today, "s", "198.51.100.7", b"UA", bytes([198, 51, 100, 7]))
    b = p.pseudonyms(today, "s", "198.51.100.99", b"UA2", bytes([198, 51, 100, 99]))
    c = p.pseudonyms(tomorrow, "s", "198.51.100.7", b"UA", bytes([198, 51, 100, 7]))
    assert a[1] == b[1] and a[0] != b[0]  # one network, two visitors
    assert a[1] != c[1] and a[0] != c[0]  # the next day: nothing in common
    assert a[1] != p.pseudonyms(today, "s", "198.51.101.7", b"UA", bytes([198, 51, 101, 7]))[1]
    # a subject cookie gives the same browser another visitor pseudonym, the same network
    d = p.pseudonyms(today, "s", "198.51.100.7", b"UA", bytes([198, 51, 100, 7]), "cookie")
    assert d[0] != a[0] and d[1] == a[1]
    ks.close()
