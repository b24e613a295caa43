"""Dashboard queries over a month of stored events: the analytics engine against a naive SQL
GROUP BY over the `events` view, side by side, and `veil query` end to end.

The store is real: written through `SQLiteStore.write` (the narrow `events_<purpose>` tables,
`agents`, the rollup bookkeeping), with a keystore beside it. ROWS cookieless `connection`
events over the last DAYS UTC days (today included, up to now; ~1/DAYS a day), and a
second, smaller set under the consent-based `browsing_history` purpose: rows that carry a
subject (on the consent ledger) and a path, no visitor or network pseudonym, as the pipeline
stores them. Per day a pool of ~30k visitors (new pseudonyms every day, as veil's daily keys
make them) behind ~10k networks, both scaled with ROWS; activity, agents (~40 browser/OS/
device combinations), ~60 countries with regions, ~30 languages, ~25 screen widths (stored as
their breakpoint class), pixel ratios, 4 sites and ~300 paths are Zipf-like. Seeded.

The generated store is cached under /tmp/veil-bench-analytics/, keyed by its parameters,
today's UTC date and the schema's migration count; each run measures a fresh copy of it, so
the engine's first query of a run finds no rollup built (its `cold` column).

Per query, interleaved, RUNS times after one warm-up round (the cold one):
  engine   `veil.analytics.engine.run(store, policy, StatsQuery(...), k)`: what `veil query`,
           the stats API and the dashboard run; every cell with thresholds applied, the first
           ten taken;
  naive    what an analyst would write against the `events` view, no threshold:
           SELECT browser, COUNT(*), COUNT(DISTINCT visitor) FROM events
           WHERE purpose = 'connection' AND day >= ? GROUP BY browser ORDER BY 2 DESC LIMIT 10
           (`event_rows` for the consent purpose: `events` has no subject column).
Then `veil query --by browser` as a subprocess, on this store and on an empty one.

    .venv/bin/python bench/analytics_queries.py [--rows 1000000] [--consent-rows 200000]
        [--runs 15] [--cli-runs 5] [--days 30]
"""

import argparse
import asyncio
import datetime as dt
import hashlib
import itertools
import os
import platform
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from veil.analytics.engine import StatsQuery, run
from veil.config import Config, from_dict
from veil.policy import DEFAULT_POLICY
from veil.pseudonymise import ratio_class, screen_class
from veil.store.columns import ROW_COLUMNS
from veil.store.keys import KeyStore, new_master_key
from veil.store.schema import MIGRATIONS
from veil.store.sqlite import SQLiteStore

CACHE = Path("/tmp/veil-bench-analytics")
GENERATOR = 1  # bump when the data below changes: the cache key includes it
SEED = 20261128
DAY = 86400
WRITE_CHUNK = 10_000  # rows per store.write call
VISITORS_PER_DAY = 30_000  # per 1,000,000 rows: scaled with --rows
NETWORKS_PER_DAY = 10_000
SUBJECTS = 5_000  # per 200,000 consent rows
CONFIG_TOML = """[store]
url = "sqlite:///veil.db"
[keys]
path = "keys.db"
master_key_file = "master.key"
"""

# (os, os_version, browser, browser_version, device, device_brand, device_model), by share
AGENTS = [
    ("Windows", "10", "Chrome", "131", None, None, None),
    ("iOS", "18", "Mobile Safari", "18", "iPhone", "Apple", "iPhone"),
    ("Android", "10", "Chrome Mobile", "131", "K", "Generic", "K"),
    ("Mac OS X", "10", "Chrome", "131", "Mac", "Apple", "Mac"),
    ("Windows", "10", "Edge", "131", None, None, None),
    ("Mac OS X", "10", "Safari", "18", "Mac", "Apple", "Mac"),
    ("Windows", "10", "Chrome", "130", None, None, None),
    ("iOS", "17", "Mobile Safari", "17", "iPhone", "Apple", "iPhone"),
    ("Windows", "10", "Firefox", "133", None, None, None),
    ("Android", "14", "Samsung Internet", "27", "Samsung SM-S911B", "Samsung", "SM-S911B"),
    ("Linux", None, "Chrome", "131", None, None, None),
    ("iOS", "18", "Chrome Mobile iOS", "131", "iPhone", "Apple", "iPhone"),
    ("Android", "10", "Chrome Mobile", "130", "K", "Generic", "K"),
    ("iOS", "18", "Mobile Safari", "18", "iPad", "Apple", "iPad"),
    ("Mac OS X", "10", "Firefox", "133", "Mac", "Apple", "Mac"),
    ("Windows", "10", "Opera", "115", None, None, None),
    ("Ubuntu", None, "Firefox", "133", None, None, None),
    ("Android", "14", "Chrome Mobile", "131", "Pixel 8", "Google", "Pixel 8"),
    ("Windows", "10", "Edge", "130", None, None, None),
    ("Chrome OS", "14541", "Chrome", "131", None, None, None),
    ("iOS", "16", "Mobile Safari", "16", "iPhone", "Apple", "iPhone"),
    ("Android", "13", "Samsung Internet", "26", "Samsung SM-A546B", "Samsung", "SM-A546B"),
    ("Mac OS X", "10", "Edge", "131", "Mac", "Apple", "Mac"),
    ("Windows", "10", "Firefox", "132", None, None, None),
    ("Android", "10", "Firefox Mobile", "133", "Generic Smartphone", "Generic", "Smartphone"),
    ("iOS", "18", "Google", "343", "iPhone", "Apple", "iPhone"),
    ("Windows", "7", "Chrome", "109", None, None, None),
    ("Android", "12", "Chrome Mobile WebView", "131", "K", "Generic", "K"),
    ("Linux", None, "Firefox", "128", None, None, None),
    ("Windows", "10", "Yandex Browser", "24", None, None, None),
    ("Android", "10", "MiuiBrowser", "18", "XiaoMi Redmi Note 8", "XiaoMi", "Redmi Note 8"),
    ("iOS", "17", "Chrome Mobile iOS", "130", "iPhone", "Apple", "iPhone"),
    ("Mac OS X", "10", "Safari", "17", "Mac", "Apple", "Mac"),
    ("Android", "10", "Opera Mobile", "86", "K", "Generic", "K"),
    ("Windows", "11", "Chrome", "131", None, None, None),
    ("Android", "9", "Chrome Mobile", "109", "Samsung SM-G960F", "Samsung", "SM-G960F"),
    ("iOS", "15", "Mobile Safari", "15", "iPhone", "Apple", "iPhone"),
    ("Windows", "10", "Brave", "131", None, None, None),
    ("FreeBSD", None, "Firefox", "133", None, None, None),
    ("Android", "10", "UC Browser", "15", "K", "Generic", "K"),
]
COUNTRIES = [
    "US", "DE", "GB", "FR", "JP", "IN", "BR", "CA", "NL", "ES", "IT", "PL", "AU", "SE", "KR",
    "MX", "TR", "RU", "ID", "CH", "BE", "AT", "UA", "DK", "NO", "FI", "IE", "PT", "CZ", "RO",
    "HU", "GR", "IL", "AR", "CL", "CO", "ZA", "NG", "EG", "VN", "TH", "MY", "PH", "SG", "NZ",
    "TW", "HK", "SA", "AE", "PK", "BD", "KE", "MA", "PE", "SK", "BG", "HR", "RS", "LT",
]  # fmt: skip
REGIONS = {  # subdivisions for the larger countries; the others carry none
    "US": ["CA", "NY", "TX", "WA", "FL", "IL", "MA", "VA"],
    "DE": ["BE", "BY", "NW", "HH", "HE", "BW"],
    "GB": ["ENG", "SCT", "WLS", "NIR"],
    "FR": ["IDF", "ARA", "PAC", "OCC"],
    "JP": ["13", "27", "14", "23", "40"],
    "IN": ["MH", "KA", "DL", "TN"],
    "BR": ["SP", "RJ", "MG"],
    "CA": ["ON", "QC", "BC"],
}
LANGUAGES = [
    "en", "de", "fr", "ja", "es", "pt", "zh", "it", "nl", "pl", "ru", "ko", "sv", "tr", "uk",
    "cs", "da", "fi", "nb", "he", "ar", "hi", "id", "vi", "th", "hu", "ro", "el", "bg", "sk",
]  # fmt: skip
SCREEN_WIDTHS = [
    1920, 1536, 390, 1366, 414, 1440, 393, 2560, 1280, 375, 412, 360, 1680,
    768, 820, 1024, 3840, 1600, 430, 428, 834, 1112, 2048, 320, 2880,
]  # fmt: skip
RATIOS = [1.0, 2.0, 3.0, 1.25, 1.5, 2.625, 1.75, 2.25]
SITES = ["shop.example.com", "example.com", "blog.example.com", "docs.example.com"]
SECTIONS = ["products", "blog", "docs", "help", "account", "cart", "search", "news"]


def zipf(n: int, s: float = 1.0) -> list[float]:
    """Cumulative Zipf weights over n items (for random.choices(cum_weights=...))."""
    return list(itertools.accumulate(1 / (i + 1) ** s for i in range(n)))


def pick(rng: random.Random, items: Sequence, cum: list[float], k: int) -> list:
    return rng.choices(items, cum_weights=cum, k=k)


def hex_ids(rng: random.Random, n: int) -> list[str]:
    """n pseudonyms shaped as veil's: 32 hex digits (blake2b, digest_size 16)."""
    return [f"{rng.getrandbits(128):032x}" for _ in range(n)]


class Dataset:
    """A month of events, as the pipeline would have written them."""

    def __init__(self, rows: int, consent_rows: int, days: int, now: float) -> None:
        self.rows, self.consent_rows, self.days, self.now = rows, consent_rows, days, now
        self.today = int(now // DAY)
        self.first_day = self.today - days + 1
        self.since = float(self.first_day * DAY)
        self.index = {c: i for i, c in enumerate(ROW_COLUMNS)}

    def day_windows(self, total: int) -> list[tuple[int, float, float, int]]:
        """(day number, start ts, end ts, rows that day): ~total/days each, today up to now."""
        per = total / self.days
        out, left = [], total
        for d in range(self.first_day, self.today + 1):
            n = left if d == self.today else min(left, round(per))
            start, end = float(d * DAY), min(float((d + 1) * DAY), self.now)
            out.append((d, start, end, n))
            left -= n
        return out

    def _row(self, values: dict[str, object]) -> tuple:
        row: list[object] = [None] * len(ROW_COLUMNS)
        for column, value in values.items():
            row[self.index[column]] = value
        return tuple(row)

    def connection_rows(self, rng: random.Random) -> list[tuple]:
        scale = self.rows / 1_000_000
        n_people = max(50, round(VISITORS_PER_DAY * scale))
        n_networks = max(20, round(NETWORKS_PER_DAY * scale))
        # a person's browser, place, language, screen and site stay put; their pseudonyms
        # change every day (veil's daily keys), their network too
        agent_of = pick(rng, range(len(AGENTS)), zipf(len(AGENTS), 1.1), n_people)
        lang_of = pick(rng, LANGUAGES, zipf(len(LANGUAGES), 1.2), n_people)
        screen_of = pick(rng, SCREEN_WIDTHS, zipf(len(SCREEN_WIDTHS), 0.9), n_people)
        ratio_of = pick(rng, RATIOS, zipf(len(RATIOS), 1.0), n_people)
        site_of = pick(rng, SITES, zipf(len(SITES), 1.3), n_people)
        network_country = pick(rng, COUNTRIES, zipf(len(COUNTRIES), 1.1), n_networks)
        network_region = [rng.choice(REGIONS[c]) if c in REGIONS else None for c in network_country]
        net_cum = zipf(n_networks, 0.7)  # some networks (offices, carriers) hold many people
        activity = zipf(n_people, 0.8)  # a few people browse a lot, most a page or two
        out: list[tuple] = []
        seq = 0
        for day, start, end, n in self.day_windows(self.rows):
            visitors = hex_ids(rng, n_people)
            networks = hex_ids(rng, n_networks)
            home = pick(rng, range(n_networks), net_cum, n_people)
            for person in pick(rng, range(n_people), activity, n):
                net = home[person]
                agent = AGENTS[agent_of[person]]
                beacon = rng.random() < 0.6
                seq += 1
                values: dict[str, object] = {
                    "event_id": f"{day:05x}{seq:09x}",
                    "ts": rng.uniform(start, end),
                    "purpose": "connection",
                    "policy_version": DEFAULT_POLICY.version,
                    "source": "beacon" if beacon else "request",
                    "site": site_of[person],
                    "visitor": visitors[person],
                    "network": networks[net],
                    "country": network_country[net],
                    "region": network_region[net],
                    "os": agent[0],
                    "os_version": agent[1],
                    "browser": agent[2],
                    "browser_version": agent[3],
                    "device": agent[4],
                    "device_brand": agent[5],
                    "device_model": agent[6],
                    "language": lang_of[person],
                    "gpc": int(rng.random() < 0.05),
                    "dnt": int(rng.random() < 0.1),
                }
                if beacon:
                    values["screen_w"] = screen_class(screen_of[person])
                    values["pixel_ratio"] = ratio_class(ratio_of[person])
                else:
                    values["languages"] = f"{lang_of[person]},en"
                out.append(self._row(values))
        return out

    def consent_rows_and_subjects(self, rng: random.Random) -> tuple[list[tuple], list[str]]:
        n_subjects = max(20, round(SUBJECTS * self.consent_rows / 200_000))
        subjects = hex_ids(rng, n_subjects)
        paths = ["/"] + [
            f"/{s}/{i}" for i in range(1, 38) for s in SECTIONS
        ]  # ~300 paths, rewritten by the policy's path rules before storage in real life
        path_cum = zipf(len(paths), 1.0)
        agent_of = pick(rng, range(len(AGENTS)), zipf(len(AGENTS), 1.1), n_subjects)
        country_of = pick(rng, COUNTRIES, zipf(len(COUNTRIES), 1.1), n_subjects)
        lang_of = pick(rng, LANGUAGES, zipf(len(LANGUAGES), 1.2), n_subjects)
        screen_of = pick(rng, SCREEN_WIDTHS, zipf(len(SCREEN_WIDTHS), 0.9), n_subjects)
        activity = zipf(n_subjects, 0.8)
        out: list[tuple] = []
        seq = 0
        for day, start, end, n in self.day_windows(self.consent_rows):
            for who in pick(rng, range(n_subjects), activity, n):
                agent = AGENTS[agent_of[who]]
                seq += 1
                values: dict[str, object] = {
                    "event_id": f"c{day:05x}{seq:09x}",
                    "ts": float(int(rng.uniform(start, end))),  # to the second, as stored
                    "purpose": "browsing_history",
                    "policy_version": DEFAULT_POLICY.version,
                    "source": "beacon",
                    "site": SITES[0],
                    "country": country_of[who],
                    "os": agent[0],
                    "os_version": agent[1],
                    "browser": agent[2],
                    "browser_version": agent[3],
                    "device": agent[4],
                    "device_brand": agent[5],
                    "device_model": agent[6],
                    "language": lang_of[who],
                    "screen_w": screen_class(screen_of[who]),
                    "pixel_ratio": 2.0,
                    "path": pick(rng, paths, path_cum, 1)[0],
                    "subject": subjects[who],
                }
                out.append(self._row(values))
        return out, subjects


def config_in(directory: Path) -> Config:
    return from_dict(
        {
            "store": {"url": "sqlite:///veil.db"},
            "keys": {"path": "keys.db", "master_key_file": "master.key"},
        },
        base=directory,
    )


async def write_store(directory: Path, data: Dataset) -> dict[str, int]:
    """veil.db and keys.db in `directory`, through veil's own write path."""
    directory.mkdir(parents=True, mode=0o700)
    (directory / "master.key").write_text(new_master_key() + "\n")
    (directory / "master.key").chmod(0o600)
    (directory / "veil.toml").write_text(CONFIG_TOML)
    cfg = config_in(directory)
    keystore = KeyStore.open(cfg.keys)
    keystore.rotate()  # today's keys, as `veil keys rotate` makes them
    keystore.close()
    rng = random.Random(SEED)
    rows = data.connection_rows(rng)
    consent, subjects = data.consent_rows_and_subjects(rng)
    store = SQLiteStore(cfg.store.path)
    await store.open(DEFAULT_POLICY)
    store.chunk = 2000  # veil serve's writer process (writer_process.WRITER_CHUNK)
    try:
        await store.append_consents(  # a subject's rows are kept only while the ledger knows them
            [
                {
                    "ts": data.since - 3600,
                    "subject": s,
                    "scope": "browsing_history",
                    "action": "grant",
                    "method": "banner",
                    "explicit": True,
                    "gpc": False,
                    "policy_version": DEFAULT_POLICY.version,
                    "jurisdiction": "gdpr",
                }
                for s in subjects
            ]
        )
        ts_at = ROW_COLUMNS.index("ts")
        everything = sorted(rows + consent, key=lambda r: r[ts_at])  # as they arrive
        for start in range(0, len(everything), WRITE_CHUNK):
            part = everything[start : start + WRITE_CHUNK]
            day = dt.datetime.fromtimestamp(part[-1][ts_at], dt.UTC).date().isoformat()
            await store.write(part, Counter(), day)
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        await store.close()
    return {"connection": len(rows), "browsing_history": len(consent), "subjects": len(subjects)}


def cached_store(args: argparse.Namespace, data: Dataset) -> tuple[Path, float | None]:
    """The generated store's directory (made now if not cached) and the seconds it took."""
    today = dt.datetime.fromtimestamp(data.now, dt.UTC).date().isoformat()
    key = hashlib.sha256(
        f"{args.rows}|{args.consent_rows}|{args.days}|{SEED}|{today}|{GENERATOR}|"
        f"{len(MIGRATIONS)}".encode()
    ).hexdigest()[:16]
    directory = CACHE / f"{args.rows}-{args.consent_rows}-{args.days}d-{today}-{key}"
    if (directory / "done").exists():
        return directory, None
    shutil.rmtree(directory, ignore_errors=True)
    CACHE.mkdir(mode=0o700, exist_ok=True)
    t0 = time.perf_counter()
    counts = asyncio.run(write_store(directory, data))
    seconds = time.perf_counter() - t0
    (directory / "done").write_text(f"{counts}\n")
    return directory, seconds


def working_copy(cached: Path) -> Path:
    """A fresh copy of the cached store (no rollup built yet, whatever a last run built)."""
    scratch = Path(tempfile.mkdtemp(prefix="veil-bench-aq-"))
    shutil.copytree(cached, scratch, dirs_exist_ok=True, ignore=shutil.ignore_patterns("done"))
    return scratch


# -- the queries ---------------------------------------------------------------------------

CONNECTION = "connection"
CONSENT = "browsing_history"
NAIVE_COLUMN = {"screen": "screen_w"}


def naive_sql(purpose: str, dim: str) -> str:
    if purpose == CONSENT:  # `events` has no subject: `event_rows` (ts raw) has
        return (
            f"SELECT {NAIVE_COLUMN.get(dim, dim)}, COUNT(*), COUNT(DISTINCT subject) "
            f"FROM event_rows WHERE purpose = '{purpose}' AND ts >= ? "
            "GROUP BY 1 ORDER BY 2 DESC LIMIT 10"
        )
    order = "ORDER BY 1" if dim == "day" else "ORDER BY 2 DESC LIMIT 10"
    return (
        f"SELECT {NAIVE_COLUMN.get(dim, dim)}, COUNT(*), COUNT(DISTINCT visitor) FROM events "
        f"WHERE purpose = '{purpose}' AND day >= ? GROUP BY 1 {order}"
    )


class Case:
    def __init__(self, label: str, purpose: str, dim: str, metrics: tuple[str, ...]) -> None:
        self.label, self.purpose, self.dim, self.metrics = label, purpose, dim, metrics
        self.engine: list[float] = []
        self.naive: list[float] = []
        self.cold: float | None = None
        self.error: str | None = None
        self.overlap = ""


CASES = [
    Case("top 10 browsers", CONNECTION, "browser", ("events", "visitors")),
    Case("top 10 OS", CONNECTION, "os", ("events", "visitors")),
    Case("top 10 devices", CONNECTION, "device", ("events", "visitors")),
    Case("top 10 countries", CONNECTION, "country", ("events", "visitors")),
    Case("top 10 languages", CONNECTION, "language", ("events", "visitors")),
    Case("top 10 screens", CONNECTION, "screen", ("events", "visitors")),
    Case("daily series, 30 days", CONNECTION, "day", ("events", "visitors")),
    Case("consent: top 10 paths", CONSENT, "path", ("events", "subjects")),
    Case("consent: top 10 browsers", CONSENT, "browser", ("events", "subjects")),
]


async def engine_once(store: SQLiteStore, case: Case, since: float, k: int) -> list[object]:
    query = StatsQuery(purpose=case.purpose, metrics=case.metrics, by=(case.dim,), since=since)
    result = await run(store, DEFAULT_POLICY, query, k)
    top = result.cells if case.dim == "day" else result.cells[:10]
    return [c.key[0] for c in top]


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


async def measure(directory: Path, data: Dataset, runs: int) -> None:
    cfg = config_in(directory)
    store = SQLiteStore(cfg.store.path)
    await store.open(DEFAULT_POLICY)
    naive_db = sqlite3.connect(f"file:{cfg.store.path}?mode=ro", uri=True)
    first_day = dt.datetime.fromtimestamp(data.since, dt.UTC).date().isoformat()
    try:
        for round_ in range(runs + 1):
            for case in CASES:
                if case.error:
                    continue
                try:
                    t0 = time.perf_counter()
                    keys = await engine_once(store, case, data.since, cfg.min_group_size)
                    seconds = time.perf_counter() - t0
                except Exception as exc:  # the engine is changing under this bench: say so
                    case.error = f"{type(exc).__name__}: {exc}"[:80]
                    continue
                arg = data.since if case.purpose == CONSENT else first_day
                naive_s, rows = timed(
                    lambda c=case, a=arg: naive_db.execute(
                        naive_sql(c.purpose, c.dim), (a,)
                    ).fetchall()
                )
                if round_ == 0:
                    case.cold = seconds
                    naive_keys = [str(r[0]) for r in rows]  # type: ignore[attr-defined]
                    same = len({str(k) for k in keys} & set(naive_keys))
                    case.overlap = f"{same}/{len(naive_keys)}"
                else:
                    case.engine.append(seconds)
                    case.naive.append(naive_s)
            print(f"  round {round_} of {runs} done", file=sys.stderr, flush=True)
    finally:
        naive_db.close()
        await store.close()


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:,.1f}"


def veil_command() -> list[str]:
    script = Path(sys.executable).parent / "veil"
    return [str(script)] if script.exists() else [sys.executable, "-m", "veil_collector.cli"]


def cli_wall(directory: Path, runs: int) -> list[float]:
    """Wall clock of `veil query --by browser` run in `directory`, each run a new process."""
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        done = subprocess.run(
            [*veil_command(), "query", "--by", "browser", "--config", "veil.toml"],
            cwd=directory,
            capture_output=True,
            text=True,
        )
        out.append(time.perf_counter() - t0)
        if done.returncode != 0:
            raise SystemExit(f"veil query failed: {done.stderr.strip()}")
    return out


def empty_store() -> Path:
    directory = Path(tempfile.mkdtemp(prefix="veil-bench-aq-empty-"))
    (directory / "veil.toml").write_text(CONFIG_TOML)
    (directory / "master.key").write_text(new_master_key() + "\n")
    (directory / "master.key").chmod(0o600)

    async def create() -> None:
        store = SQLiteStore(config_in(directory).store.path)
        await store.open(DEFAULT_POLICY)
        await store.close()

    asyncio.run(create())
    return directory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="connection events")
    parser.add_argument("--consent-rows", type=int, default=200_000, help="browsing_history")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=15, help="timed runs per query")
    parser.add_argument("--cli-runs", type=int, default=5)
    args = parser.parse_args()
    data = Dataset(args.rows, args.consent_rows, args.days, time.time())
    cached, generated = cached_store(args, data)
    print(
        f"store: {cached} ({(cached / 'done').read_text().strip()}); "
        + (f"generated in {generated:.1f} s" if generated is not None else "cached")
    )
    print(
        f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}; load average {os.getloadavg()[0]:.2f}"
    )
    directory = working_copy(cached)
    empty = empty_store()
    try:
        db_mb = (directory / "veil.db").stat().st_size / 2**20
        print(f"working copy: {directory} (veil.db {db_mb:,.0f} MiB)")
        t0 = time.perf_counter()
        asyncio.run(measure(directory, data, args.runs))
        print(f"queries measured in {time.perf_counter() - t0:.1f} s; {args.runs} runs each\n")
        print(
            f"{'query':27} {'engine cold':>11} {'engine p50':>10} {'p95':>8} "
            f"{'naive p50':>9} {'p95':>8} {'naive/engine':>12} {'top-10 overlap':>14}"
        )
        for case in CASES:
            if case.error:
                print(f"{case.label:27} engine failed: {case.error}")
                continue
            e50, n50 = statistics.median(case.engine), statistics.median(case.naive)
            print(
                f"{case.label:27} {ms(case.cold):>11} {ms(e50):>10} {ms(p(case.engine, 0.95)):>8} "
                f"{ms(n50):>9} {ms(p(case.naive, 0.95)):>8} {n50 / e50:>12.2f} "
                f"{case.overlap:>14}"
            )
        print("(milliseconds; cold: the engine's first query of the run, no rollup built yet)\n")
        for label, where in ((f"{args.rows:,}-row store", directory), ("empty store", empty)):
            walls = cli_wall(where, args.cli_runs)
            print(
                f"veil query --by browser, {label}: p50 {ms(statistics.median(walls))} ms "
                f"(min {ms(min(walls))}, max {ms(max(walls))}; {args.cli_runs} runs)"
            )
    finally:
        shutil.rmtree(directory, ignore_errors=True)
        shutil.rmtree(empty, ignore_errors=True)


if __name__ == "__main__":
    main()
