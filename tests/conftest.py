"""Shared fixtures: a config in a temp dir, a real .mmdb file, realistic user agents; and the
test kit: `rows`/`scalar`/`records` read a real store, `event_row` makes a row to write,
`pipeline_for` builds a pipeline, `started`/`site` start a Veil (and the app around it) and
always stop it."""

import os
import secrets
import sqlite3
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import httpx
import netaddr
import pytest
from mmdb_writer import MMDBWriter
from servers import ServerProcess
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from veil import Veil, VeilMiddleware
from veil.config import Config, from_dict
from veil.geo import open_geoip
from veil.pipeline import Pipeline
from veil.proxy import ClientResolver
from veil.pseudonymise import Pseudonymiser
from veil.store import SQLiteStore
from veil.store.columns import ROW_COLUMNS
from veil.store.keys import KeyStore

from browser_support import launch_chromium

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.6099.109 Safari/537.36"
)
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


@pytest.fixture(autouse=True)
def master_key(monkeypatch) -> str:
    key = secrets.token_hex(32)
    monkeypatch.setenv("VEIL_MASTER_KEY", key)
    monkeypatch.delenv("VEIL_CONFIG", raising=False)
    return key


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "veil-data"
    d.mkdir()
    return d


@pytest.fixture
def make_config(data_dir: Path):
    """A Config whose store and keystore live in `data_dir`; keys override sections."""

    def make(**sections) -> Config:
        raw = {
            "store": {"url": "sqlite:///veil.db"},
            "keys": {"path": "keys.db"},
            "capture": {"flush_interval": 0.05},
        }
        for name, value in sections.items():
            raw[name] = {**raw.get(name, {}), **value} if isinstance(value, dict) else value
        return from_dict(raw, base=data_dir)

    return make


@pytest.fixture
def geoip_db(tmp_path: Path) -> Path:
    return write_geo_db(tmp_path / "geo.mmdb")


def write_geo_db(path: Path) -> Path:
    """A real MaxMind-format database written with mmdb-writer: 198.51.100.0/24 is DE-BE,
    203.0.113.0/24 is JP-13, 2001:db8:1::/48 is US-CA; anything else is unknown."""
    w = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoIP2-City")
    w.insert_network(
        netaddr.IPSet(["198.51.100.0/24"]),
        {"country": {"iso_code": "DE"}, "subdivisions": [{"iso_code": "BE"}]},
    )
    w.insert_network(
        netaddr.IPSet(["203.0.113.0/24"]),
        {"country": {"iso_code": "JP"}, "subdivisions": [{"iso_code": "13"}]},
    )
    w.insert_network(
        netaddr.IPSet(["2001:db8:1::/48"]),
        {"country": {"iso_code": "US"}, "subdivisions": [{"iso_code": "CA"}]},
    )
    w.to_db_file(str(path))
    return path


def scope(path: str = "/", client=("192.0.2.10", 50123), headers=None) -> dict:
    """An ASGI HTTP scope as a server would build it."""
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), *raw],
        "client": client,
        "server": ("testserver", 80),
    }


# -- reading a real store -------------------------------------------------------------------

Source = Union[str, os.PathLike, Veil, "Site", ServerProcess]  # "Site": defined below


def store_path(source: Source) -> Path:
    """The SQLite file of `source`: a path, a Veil (its configured store), a Site (its Veil's)
    or a ServerProcess (the store in its data directory)."""
    if isinstance(source, (str, os.PathLike)):
        return Path(source)
    if isinstance(source, ServerProcess):
        return source.db
    if isinstance(source, Site):
        source = source.veil
    return Path(source.config.store.path)


def rows(source: Source, sql: str, *params: Any) -> list[tuple]:
    """Every row of `sql` on the store of `source`; the connection is closed before returning
    (an open one would hold the file on the writer, or keep a WAL snapshot)."""
    with closing(sqlite3.connect(store_path(source))) as db:
        return db.execute(sql, params).fetchall()


def records(source: Source, sql: str, *params: Any) -> list[dict]:
    """`rows` as dicts, column name → value."""
    with closing(sqlite3.connect(store_path(source))) as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute(sql, params)]


def scalar(source: Source, sql: str, *params: Any) -> Any:
    """The single value of a one-row, one-column query (a COUNT, a MAX)."""
    ((value,),) = rows(source, sql, *params)
    return value


def event_row(**values: Any) -> tuple:
    """A row to write into a store, in ROW_COLUMNS order: visitor v1's Chrome connection
    request, every other column NULL, then `values` over it."""
    base: dict[str, Any] = dict.fromkeys(ROW_COLUMNS)
    base.update(
        ts=1_764_000_000.0,
        purpose="connection",
        policy_version="1.0",
        source="request",
        visitor="v1",
        browser="Chrome",
    )
    base.update(values)
    return tuple(base[c] for c in ROW_COLUMNS)


async def known_to_ledger(store: Any, *subjects: str, scope: str = "browsing_history") -> None:
    """A grant on the consent ledger for each of `subjects`, as consenting leaves one: the
    store keeps a subject's event rows only while the ledger knows them (an erasure removes
    both; store/sqlite.py `_without_erased`)."""
    await store.append_consents(
        [
            {
                "ts": 1_700_000_000.0,
                "subject": s,
                "scope": scope,
                "action": "grant",
                "method": "api",
                "explicit": True,
                "gpc": False,
                "policy_version": "1.0",
                "jurisdiction": "gdpr",
            }
            for s in subjects
        ]
    )


@pytest.fixture
async def store(make_config) -> AsyncIterator[SQLiteStore]:
    """An open store under the test's config, closed at teardown; `store.policy` is that
    config's policy, which the analytics engine queries with."""
    cfg = make_config()
    s = SQLiteStore(cfg.store.path)
    await s.open(cfg.policy)
    s.policy = cfg.policy  # type: ignore[attr-defined]
    yield s
    await s.close()


# -- a pipeline, its keystore closed at teardown ----------------------------------------------


@pytest.fixture
def pipeline_for(make_config, geoip_db):
    """`pipeline_for(seal_ip=False, **sections)`: a Pipeline on `make_config(**sections)`,
    the test .mmdb and a keystore of its own."""
    opened = []

    def build(seal_ip=False, **sections):
        cfg = make_config(**sections)
        ks = KeyStore.open(cfg.keys)
        opened.append(ks)
        return Pipeline(
            cfg.policy,
            cfg.site,
            ClientResolver(cfg.trusted_proxies),
            Pseudonymiser(ks),
            open_geoip(geoip_db),
            seal_ip,
        )

    yield build
    for ks in opened:
        ks.close()


# -- a started Veil, always stopped -----------------------------------------------------------


@pytest.fixture
async def started() -> AsyncIterator[Callable[..., Awaitable[Veil]]]:
    """`await started(veil)` starts `veil` (keywords go to `start`); teardown stops each one
    started, even when the test failed. A test may stop it itself (to look at what the stop
    did): the second stop finds nothing to do."""
    running: list[Veil] = []

    async def start(veil: Veil, **kw: Any) -> Veil:
        await veil.start(**kw)
        running.append(veil)
        return veil

    yield start
    for veil in reversed(running):
        await veil.stop()


async def _page(request) -> PlainTextResponse:
    return PlainTextResponse("page")


@dataclass(frozen=True)
class Site:
    """A started Veil behind VeilMiddleware over an app; `client(ip)` is a browser-like
    client from that IP (https: the subject cookie is Secure, as it must be)."""

    veil: Veil
    app: Any
    headers: dict[str, str] = field(default_factory=dict)
    base_url: str = "https://shop.example"

    def client(self, ip: str = "198.51.100.20", **headers: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=(ip, 5000))
        return httpx.AsyncClient(
            transport=transport,
            base_url=self.base_url,
            headers={"User-Agent": CHROME, **self.headers, **headers},
        )


@pytest.fixture
def started_site(started) -> Callable[..., Awaitable[Site]]:
    """`await started_site(veil)`: `veil` started (and stopped at teardown) behind the
    middleware over `app` (default: a page at every path); `headers` go with every client."""

    async def make(veil: Veil, app: Any = None, headers: dict[str, str] | None = None) -> Site:
        inner = app if app is not None else Starlette(routes=[Route("/{p:path}", _page)])
        wrapped = VeilMiddleware(inner, veil=veil)
        await started(veil)
        return Site(veil, wrapped, dict(headers or {}))

    return make


# -- `veil serve` as a test runs it ------------------------------------------------------------


class Collector(ServerProcess):
    """`veil serve` with the batch endpoint on (`secret`), its files in collector-data/;
    startable again on the same port after a kill."""

    def __init__(self, tmp: Path, master_key: str, secret: str) -> None:
        config = tmp / "collector.toml"
        config.write_text(
            '[store]\nurl = "sqlite:///collector-data/veil.db"\n'
            '[keys]\npath = "collector-data/keys.db"\n'
        )
        serve = ServerProcess.veil_serve(
            config,
            {**os.environ, "VEIL_REMOTE_SECRET": secret, "VEIL_MASTER_KEY": master_key},
            tmp / "collector.log",
        )
        super().__init__(
            serve.args, serve.env, serve.log, serve.port, config=config, data=tmp / "collector-data"
        )

    def counts(self) -> tuple[int, int]:
        (counts,) = rows(
            self,
            "SELECT COUNT(*), COUNT(DISTINCT event_id) FROM event_rows WHERE source = 'request'",
        )
        return counts


def serve_collector(
    tmp_path: Path, master_key: str, capture: str = "", workers: int = 1
) -> ServerProcess:
    """`veil serve --workers N`, started, its files in data/; `capture` is more veil.toml."""
    config = tmp_path / "veil.toml"
    config.write_text(
        '[store]\nurl = "sqlite:///data/veil.db"\n[keys]\npath = "data/keys.db"\n'
        # one loopback client sends them all: no per-network rate limit here
        "[ingest]\nrate = 1000000.0\nburst = 1000000\n" + capture
    )
    args = [sys.executable, "-m", "veil_collector.cli", "serve", "--port", "{port}"]
    args += ["--workers", str(workers), "--config", str(config)]
    env = {**os.environ, "VEIL_MASTER_KEY": master_key}
    return ServerProcess(
        args, env, tmp_path / "server.log", config=config, data=tmp_path / "data"
    ).start()


# -- a store and keystore for the rollup and live-day tests -------------------------------------

KIT_SUBJECTS = [f"subject-{i:02d}-pseudonym" for i in range(12)]  # on the ledger of `kit`


@pytest.fixture
async def kit(make_config):
    """(store, keystore, policy): opened with the policy, KIT_SUBJECTS on the ledger."""
    cfg = make_config()
    store = SQLiteStore(cfg.store.path)
    await store.open(cfg.policy)
    keystore = KeyStore.open(cfg.keys)
    await known_to_ledger(store, *KIT_SUBJECTS)
    yield store, keystore, cfg.policy
    keystore.close()
    await store.close()


@pytest.fixture
def browser() -> Iterator[Any]:
    """Debian's headless Chromium (browser_support.py), for one test."""
    with launch_chromium() as chromium:
        yield chromium
