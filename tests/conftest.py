"""Shared fixtures: a config in a temp dir, a real .mmdb file, realistic user agents."""

import secrets
from pathlib import Path

import netaddr
import pytest
from mmdb_writer import MMDBWriter

from veil.config import Config, from_dict

CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/120.0.6099.109 Safari/537.36")
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"
SAFARI_IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
                 "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1")
GOOGLEBOT = ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)")


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
        raw = {"store": {"url": "sqlite:///veil.db"}, "keys": {"path": "keys.db"},
               "capture": {"flush_interval": 0.05}}
        for name, value in sections.items():
            raw[name] = {**raw.get(name, {}), **value} if isinstance(value, dict) else value
        return from_dict(raw, base=data_dir)

    return make


@pytest.fixture
def geoip_db(tmp_path: Path) -> Path:
    """A real MaxMind-format database written with mmdb-writer."""
    w = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoIP2-City")
    w.insert_network(netaddr.IPSet(["198.51.100.0/24"]),
                     {"country": {"iso_code": "DE"}, "subdivisions": [{"iso_code": "BE"}]})
    w.insert_network(netaddr.IPSet(["203.0.113.0/24"]),
                     {"country": {"iso_code": "JP"}, "subdivisions": [{"iso_code": "13"}]})
    w.insert_network(netaddr.IPSet(["2001:db8:1::/48"]), {"country": {"iso_code": "US"},
                                                          "subdivisions": [{"iso_code": "CA"}]})
    path = tmp_path / "geo.mmdb"
    w.to_db_file(str(path))
    return path


def scope(path: str = "/", client=("192.0.2.10", 50123), headers=None) -> dict:
    """An ASGI HTTP scope as a server would build it."""
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
            "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
            "root_path": "", "headers": [(b"host", b"testserver"), *raw], "client": client,
            "server": ("testserver", 80)}
