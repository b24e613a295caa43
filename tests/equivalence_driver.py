"""One run of the before/after equivalence check (tests/test_equivalence.py runs it twice).

    python tests/equivalence_driver.py SHARED DATA OUT EXPECTED_ROOT

Runs whichever veil is first on PYTHONPATH (refused unless it is the one under EXPECTED_ROOT):
starts a real `Veil` on a SQLite store in DATA, records consent through its ledger, puts a
captured stream on its capture buffer, lets its writer flush it through the pipeline into the
store, stops it, and writes to OUT what is stored and answered: every row of the analysts'
`events` view (without `id`), the drops table, the consent ledger, the writer's counters and
`veil query`'s answers for each purpose.

The first run (no SHARED/stream.json yet) issues the browser subjects' cookies, writes the
GeoIP database and builds the stream, all into SHARED; later runs read them back, so every run
sees the same stream and, with the keystore copied into DATA beforehand, the same keys.
"""

import asyncio
import base64
import contextlib
import datetime as dt
import json
import math
import random
import sqlite3
import sys
import time
import types
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# bench/traffic.py: the stream's generators (no veil in them), from the tree under test only
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import traffic
from policies import AUTOMATIC  # tests/policies.py: plain data, no veil in it

import veil
from veil import Veil
from veil import capture as capture_mod
from veil import consent as consent_mod
from veil import query as query_mod
from veil.config import from_dict
from veil.pseudonymise import unseal
from veil.store.keys import KeyStore

# Captured's fields as of 95bfa47, the order the stream file keeps them in.
FIELDS = (
    "purpose",
    "ts",
    "peer",
    "port",
    "agent",
    "accept_language",
    "sec_gpc",
    "sec_dnt",
    "forwarded",
    "host",
    "beacon",
    "request_path",
    "cookies",
)
BYTES_FIELDS = {"agent", "accept_language", "sec_gpc", "sec_dnt", "forwarded", "host"}
PROXY = traffic.PROXY  # trusted; 10.9.0.0/16 is trusted too, for chains of two proxies
PEOPLE, SUBJECTS, SEED = 600, 14, 20261127
PATHS = [
    "/",
    "/pricing",
    "/products/42",
    "/products/7/reviews",
    "/account/settings",
    "/Clinic/../clinic/hiv-test",
    "/blog/2026/11/hello",
    "/search",
]


def policy() -> dict[str, Any]:
    """Four purposes: two that need no consent (one narrow), two consent-based ones that the
    connection purpose fans out to; California's opt-out regime; path rules."""
    purpose = {"description": "d", "data_use": "essential.service", "retention": "30d"}
    return {
        "version": "eq1",
        "effective": dt.date(2026, 11, 1),
        "controller": {"name": "Example", "contact": "privacy@example.com", "country": "JP"},
        "dpo": {"name": "DPO", "contact": "dpo@example.com"},
        "consent_model": "regional",
        "paths": [
            {"pattern": "/account/**", "action": "drop"},
            {"pattern": "/clinic/**", "action": "template", "template": "/clinic/:page"},
            {"pattern": "/products/*", "action": "template", "template": "/products/:id"},
        ],
        "purposes": {
            "connection": {
                **purpose,
                "legal_basis": "legitimate_interests",
                "fields": AUTOMATIC,
            },
            "security": {
                **purpose,
                "legal_basis": "legitimate_interests",
                "fields": ["ip_address", "port", "user_agent"],
            },
            "browsing_history": {
                **purpose,
                "data_use": "functional.service.improve",
                "legal_basis": "consent",
                "fields": [*AUTOMATIC, "path"],
            },
            "layout": {
                **purpose,
                "data_use": "functional.service.improve",
                "legal_basis": "consent",
                "fields": ["screen", "pixel_ratio", "navigator_language", "path"],
            },
        },
    }


def config(shared: Path, data: Path) -> Any:
    return from_dict(
        {
            "store": {"url": "sqlite:///veil.db"},
            "keys": {"path": "keys.db", "seal_ip": True},
            "geoip": {"path": str(shared / "geo.mmdb")},
            "proxy": {"trusted": [PROXY, "10.9.0.0/16"]},
            "query": {"min_group_size": 3},
            # the test flushes; a batch is 97 events, so batches end mid-visit
            "capture": {"queue_size": 100_000, "batch_size": 97, "flush_interval": 3600.0},
            "consent": {"secure_cookie": True},
            "policy": policy(),
        },
        base=data,
    )


# -- the stream ----------------------------------------------------------------------------


def window(now: float) -> tuple[float, float]:
    """(start, end) of the stream's timestamps: within one UTC day ten minutes or more ago,
    so every run's keystore holds that day's keys and every grant precedes the events."""
    anchor = now - 600
    start = math.floor(anchor / 86400) * 86400
    return start, min(now - 60, start + 86399)


def build_stream(cookies: list[str], start: float, end: float) -> list[dict[str, Any]]:
    """Visits of a realistic population (bench/traffic.py: a page request and the snippet's
    beacon per page view) through the trusted proxy, with the odd cases around them."""
    rng = random.Random(SEED)
    people = traffic.population(PEOPLE, seed=SEED)
    holder = {p.id: cookies[i] for i, p in enumerate(rng.sample(people, len(cookies)))}
    opted_out = {p.id for p in rng.sample(people, 20)}
    forged = {p.id for p in rng.sample(people, 6)}
    items: list[dict[str, Any]] = []

    def item(**fields: Any) -> dict[str, Any]:
        base: dict[str, Any] = dict.fromkeys(FIELDS)
        base.update(
            purpose="connection",
            ts=rng.uniform(start + 10, end),
            agent=b"",
            accept_language=b"",
            forwarded=b"",
            host=b"shop.example.org",
            port=rng.randrange(1024, 65536),
        )
        base.update(fields)
        return base

    for p, ip, pages in traffic.visits(people, days=1, seed=SEED)[0]:
        cookie: list[str | None] | None = None
        if p.id in holder:
            cookie = [holder[p.id], None]
        elif p.id in opted_out:
            cookie = [None, "browsing_history.layout"]
        elif p.id in forged:
            cookie = ["A" * 22 + "." + "B" * 22, None]  # not issued by veil: no subject
        t = rng.uniform(start + 10, end - 90)  # a visit lasts 66 s at most
        for _ in range(pages):
            path = rng.choice(PATHS)
            hop = rng.random()
            forwarded = (
                f"{ip}:{rng.randrange(1024, 65536)}"
                if hop < 0.2 and ":" not in ip
                else f"198.18.0.1, {ip}, 10.9.3.4"  # a spoofed hop, the client, our 2nd proxy
                if hop < 0.3
                else ip
            )
            common = {
                "peer": PROXY,
                "agent": p.agent,
                "accept_language": p.accept_language,
                "sec_gpc": b"1" if p.gpc else None,
                "sec_dnt": b"1" if p.dnt else None,
                "forwarded": forwarded.encode(),
                "cookies": cookie,
            }
            items.append(item(ts=t, request_path=path, **common))
            t += rng.uniform(0.05, 3)
            beacon = traffic.beacon_of(p, path)
            if rng.random() < 0.2:
                del beacon["path"]  # a beacon may come without a path
            items.append(item(ts=t, beacon=beacon, **common))
            t += rng.uniform(1, 8)

    agents = traffic.user_agents()
    bots = [a for a in agents if b"bot" in a.lower()]
    odd = [
        # bots, through the proxy and direct
        *(item(peer=PROXY, forwarded=b"203.0.113.9", agent=rng.choice(bots)) for _ in range(30)),
        *(item(peer="192.0.2.77", agent=b"curl/8.4.0 (bot)") for _ in range(3)),
        # clients that cannot be known
        item(peer=None, agent=agents[0]),
        item(peer="not-an-address", agent=agents[0]),
        item(peer=PROXY, forwarded=b"unknown", agent=agents[0]),
        item(peer=PROXY, forwarded=b"203.0.113.5, garbage", agent=agents[1]),
        item(peer=PROXY, forwarded=b"10.9.0.8, 10.9.1.1", agent=agents[2]),  # all trusted
        # an untrusted peer's X-Forwarded-For is ignored; port 0 means unknown
        item(peer="198.51.100.4", forwarded=b"1.2.3.4", agent=agents[3], port=0),
        item(peer="::ffff:198.51.100.5", agent=agents[4]),
        item(peer=PROXY, forwarded=b"[2001:db8:1::7]:8443", agent=agents[5]),
        # purposes: unknown, the narrow one, a consent-based one captured directly
        *(item(purpose="marketing", peer="198.51.100.6", agent=agents[0]) for _ in range(4)),
        *(
            item(
                purpose="security",
                peer=PROXY,
                forwarded=traffic.client_ip(rng).encode(),
                agent=rng.choice(agents),
                accept_language=b"de-DE",
                sec_gpc=b"1",
                beacon=traffic.beacon_of(rng.choice(people), "/pricing"),
            )
            for _ in range(25)
        ),
        *(
            item(
                purpose="browsing_history",
                peer="203.0.113.20",
                agent=agents[0],
                request_path=rng.choice(PATHS),
            )
            for _ in range(6)
        ),
        # hosts: mixed case with port, absolute form, an IP literal, none
        item(peer="198.51.100.9", agent=agents[6], host=b"Shop.Example.ORG.:443"),
        item(peer="198.51.100.9", agent=agents[6], host=b"192.0.2.1"),
        item(peer="198.51.100.9", agent=agents[6], host=b""),
        # two phones of one brand that differ only in the model: two agents, not one
        *(
            item(
                peer="198.51.100.13",
                agent=b"Mozilla/5.0 (Linux; Android 14; " + model + b") AppleWebKit/537.36 "
                b"(KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
            )
            for model in (b"SM-S918B", b"SM-A546B")
        ),
        # headers a parser must survive
        item(peer="198.51.100.10", agent=b"\xff\xfeMozilla/5.0 \x00", accept_language=b";;q=x"),
        item(peer="198.51.100.10", agent=agents[7], accept_language=b"en-US," * 300),
        item(peer="198.51.100.11", agent=agents[8], sec_gpc=b"0", sec_dnt=b"1"),
        # beacons the pipeline cannot read: counted as invalid_event
        item(peer="198.51.100.12", agent=agents[0], beacon={"screen_h": 1, "language": "en"}),
        item(
            peer="198.51.100.12",
            agent=agents[0],
            beacon={"screen_w": 1, "screen_h": 2, "pixel_ratio": "2", "language": "en"},
        ),
    ]
    for extra in odd:
        if extra["beacon"] is None and extra["request_path"] is None:
            extra["request_path"] = "/"
    items += odd
    rng.shuffle(items)
    items.sort(key=lambda i: i["ts"])  # captured in time order
    return items


def encode(items: list[dict[str, Any]]) -> list[list[Any]]:
    return [
        [
            base64.b64encode(i[f]).decode() if f in BYTES_FIELDS and i[f] is not None else i[f]
            for f in FIELDS
        ]
        for i in items
    ]


def captured(rows: list[list[Any]]) -> list[Any]:
    """The stream as this tree's `Captured` records (95bfa47's layout; adapted if it moved)."""
    Captured, VeilCookies = capture_mod.Captured, capture_mod.VeilCookies
    if Captured._fields != FIELDS:
        raise RuntimeError(
            f"Captured's fields changed from 95bfa47's {FIELDS} to {Captured._fields}: "
            "teach tests/equivalence_driver.py:captured the new layout"
        )
    out = []
    for row in rows:
        values = dict(zip(FIELDS, row, strict=True))
        for f in BYTES_FIELDS:
            if values[f] is not None:
                values[f] = base64.b64decode(values[f])
        if values["cookies"] is not None:
            values["cookies"] = VeilCookies(*values["cookies"])
        out.append(Captured(**values))
    return out


def enqueue(buffer: Any, items: list[Any]) -> None:
    """Onto the capture buffer as the hot path leaves them (past its size limit: the test's
    queue is sized for the stream)."""
    queue = getattr(buffer, "_items", None)
    if not isinstance(queue, deque):
        raise RuntimeError("CaptureBuffer no longer keeps a deque `_items`: adapt enqueue()")
    queue.extend(items)


# -- consent ---------------------------------------------------------------------------------


@contextlib.contextmanager
def ledger_clock(at: float) -> Iterator[None]:
    """The ledger's clock set to `at`, so a grant precedes the stream in every run."""
    real = consent_mod.time
    consent_mod.time = types.SimpleNamespace(time=lambda: at)  # type: ignore[assignment]
    try:
        yield
    finally:
        consent_mod.time = real


async def record_consents(app: Veil, cookies: list[str], start: float, end: float) -> None:
    """Grants, a grant made under GPC, a withdrawal and a refusal mid-stream, a late grant."""
    ledger = app.ledger
    assert ledger is not None
    middle = (start + end) / 2
    A = consent_mod.Action
    banner = consent_mod.Method.BANNER
    plan = []
    for n, cookie in enumerate(cookies):
        subject = ledger.subjects.browser(cookie)
        assert subject is not None, "a cookie this keystore issued must verify"
        scopes = ["browsing_history", "layout"] if n % 3 else ["browsing_history"]
        if n == 0:
            plan.append((start, subject, scopes, A.GRANT, {"signal": True}))  # under GPC
        elif n == 1:
            plan.append((start, subject, scopes, A.GRANT, {}))
            plan.append((middle, subject, ["browsing_history"], A.WITHDRAW, {}))
        elif n == 2:
            plan.append((middle, subject, scopes, A.GRANT, {}))  # half the stream is before
        elif n == 3:
            plan.append((start, subject, ["layout"], A.REFUSE, {}))
        elif n == len(cookies) - 1:
            continue  # a subject who never consented
        else:
            plan.append((start, subject, scopes, A.GRANT, {"jurisdiction": "gdpr"}))
    for at, subject, scopes, action, kw in plan:
        with ledger_clock(at):
            done = await ledger.append(subject, scopes, action, banner, **kw)
        if not done or any(r.ts != at for r in done):
            raise RuntimeError("the ledger's clock could not be set: adapt ledger_clock()")


# -- what is stored and answered -------------------------------------------------------------


def plain(value: Any) -> Any:
    return {"bytes": value.hex()} if isinstance(value, bytes) else value


def table(db: sqlite3.Connection, sql: str) -> dict[str, Any]:
    cursor = db.execute(sql)
    columns = [d[0] for d in cursor.description]
    rows = [[plain(v) for v in row] for row in cursor]
    rows.sort(key=lambda r: json.dumps(r))
    return {"columns": columns, "rows": rows}


async def answers(cfg: Any) -> dict[str, Any]:
    """What `veil drops` answers. (Query answers were compared too until the analytics
    issue changed the k-threshold on purpose: they are functions of the rows
    and drops compared here, by whichever engine a tree has.)"""
    out: dict[str, Any] = {}
    out["drop_counts"] = await query_mod.drop_counts(cfg)
    return out


def beside_the_view(db: sqlite3.Connection, keystore: Any) -> dict[str, list[str]]:
    """What event rows store that the view leaves out, from whichever tables hold it: the
    network pseudonyms, and the sealed endpoints opened with the keystore ("IP port")."""
    networks, endpoints = [], []
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    for name in tables:
        columns = {r[1] for r in db.execute(f'PRAGMA table_info("{name}")')}
        if "network" in columns:
            sql = f'SELECT network FROM "{name}" WHERE network IS NOT NULL'
            networks += [str(r[0]) for r in db.execute(sql)]
        if {"seal_key", "sealed_endpoint"} <= columns:
            sql = f'SELECT seal_key, sealed_endpoint FROM "{name}" WHERE seal_key IS NOT NULL'
            for key_id, blob in db.execute(sql):
                opened = unseal(keystore, key_id, blob)
                endpoints.append(opened.decode() if opened is not None else "key destroyed")
    return {"networks": sorted(networks), "sealed_endpoints": sorted(endpoints)}


async def main(shared: Path, data: Path, out: Path, expected_root: Path) -> None:
    where = Path(veil.__file__).resolve()
    if not where.is_relative_to(expected_root.resolve()):
        raise RuntimeError(f"imported veil from {where}, not from under {expected_root}")
    if not (shared / "geo.mmdb").exists():  # the first run
        traffic.geo_database(shared / "geo.mmdb")
    cfg = config(shared, data)
    app = Veil(cfg)
    await app.start(required=True)
    try:
        stream_file = shared / "stream.json"
        if not stream_file.exists():  # the first run: subjects, GeoIP database, stream
            assert app.ledger is not None
            start, end = window(time.time())
            cookies = [app.ledger.subjects.issue()[0] for _ in range(SUBJECTS)]
            rows = encode(build_stream(cookies, start, end))
            stream_file.write_text(
                json.dumps({"window": [start, end], "cookies": cookies, "items": rows})
            )
        stream = json.loads(stream_file.read_text())
        start, end = stream["window"]
        await record_consents(app, stream["cookies"], start, end)
        enqueue(app.buffer, captured(stream["items"]))
        while len(app.buffer):
            await app.flush()
        stats = app.stats()
    finally:
        await app.stop()
    with contextlib.closing(sqlite3.connect(f"file:{cfg.store.path}?mode=ro", uri=True)) as db:
        events = table(db, "SELECT * FROM events")
        keep = [i for i, c in enumerate(events["columns"]) if c != "id"]
        events = {
            "columns": [events["columns"][i] for i in keep],
            "rows": sorted(json.dumps([r[i] for i in keep]) for r in events["rows"]),
        }
        drops = table(db, "SELECT * FROM drops")
        ledger = table(
            db,
            "SELECT subject, scope, action, method, explicit, gpc, policy_version, jurisdiction "
            "FROM consent_ledger",
        )
        keystore = KeyStore.open(cfg.keys)
        try:
            stored_beside = beside_the_view(db, keystore)
        finally:
            keystore.close()
    result = {
        "veil": str(where),
        "items": len(stream["items"]),
        "events": events,
        "drops": drops,
        "ledger": ledger,
        "beside_the_view": stored_beside,
        "stats": {"stored": stats.stored, "queued": stats.queued, "dropped": stats.dropped},
        "queries": await answers(cfg),
    }
    out.write_text(json.dumps(result, indent=1, sort_keys=True))


if __name__ == "__main__":
    shared_dir, data_dir, out_file, root = (Path(a).resolve() for a in sys.argv[1:5])
    asyncio.run(main(shared_dir, data_dir, out_file, root))
