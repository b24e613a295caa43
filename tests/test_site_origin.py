"""A collector serving several sites records a beacon's site from its Origin (http/origin.py),
and refuses origins outside `ingest.sites`; the middleware's app keeps its Host. The collector
runs as `veil serve` (a worker and the writer process) over real HTTP."""

import json
import os
import sys
from pathlib import Path

import httpx
import pytest
from servers import ServerProcess

from veil import Veil
from veil.config import from_dict
from veil.errors import ConfigError
from veil_collector.app import create_app

from conftest import CHROME, rows

BEACON = json.dumps({"screen_w": 390, "screen_h": 844, "pixel_ratio": 3, "language": "ja"})


def collector(tmp_path: Path, master_key: str, ingest: str = "", top: str = "") -> ServerProcess:
    """`veil serve` with `ingest` added to its [ingest] table and `top` to the top level."""
    config = tmp_path / "veil.toml"
    config.write_text(
        f'{top}[store]\nurl = "sqlite:///data/veil.db"\n[keys]\npath = "data/keys.db"\n'
        f"[capture]\nflush_interval = 0.05\n[ingest]\nrate = 1000000.0\nburst = 1000000\n{ingest}"
    )
    args = [sys.executable, "-m", "veil_collector.cli", "serve", "--port", "{port}"]
    env = {**os.environ, "VEIL_MASTER_KEY": master_key}
    return ServerProcess(
        [*args, "--config", str(config)],
        env,
        tmp_path / "server.log",
        config=config,
        data=tmp_path / "data",
    ).start()


def send(server: ServerProcess, origin: str | None, host: str | None = None) -> httpx.Response:
    headers = {"Content-Type": "text/plain", "User-Agent": CHROME}
    if origin is not None:
        headers["Origin"] = origin
    if host is not None:
        headers["Host"] = host
    return httpx.post(f"{server.url}/veil/e", content=BEACON, headers=headers, timeout=10)


def sites(source) -> list[str | None]:
    found = rows(source, "SELECT site FROM event_rows WHERE source = 'beacon'")
    return sorted((s for (s,) in found), key=lambda s: s or "")


def drops(source) -> dict[str, int]:
    return dict(rows(source, "SELECT reason, SUM(count) FROM drops GROUP BY reason"))


# -- config --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"ingest": {"sites": ["https://shop.example"]}}, "ingest.sites[0]: must be a host name"),
        ({"ingest": {"sites": ["a.example", "shop.example:443"]}}, "got 'shop.example:443'"),
        ({"ingest": {"sites": ["192.0.2.1"]}}, "ingest.sites[0]: must be a host name"),
        ({"ingest": {"sites": ["shop.example/x"]}}, "got 'shop.example/x'"),
        ({"ingest": {"sites": [7]}}, "ingest.sites[0]: must be a host name like"),
        ({"ingest": {"sites": []}}, "ingest.sites: is empty, which would refuse every beacon"),
        (
            {"site": "a.example", "ingest": {"sites": ["a.example", "b.example"]}},
            "site: names one site for every event",
        ),
    ],
)
def test_bad_sites_are_refused_naming_key_and_value(tmp_path, data, message):
    with pytest.raises(ConfigError) as refused:
        from_dict(data, base=tmp_path)
    assert message in str(refused.value)


def test_sites_are_kept_in_the_normal_form_of_a_site(tmp_path):
    cfg = from_dict({"ingest": {"sites": ["Shop.Example.", "blog.example"]}}, base=tmp_path)
    assert cfg.ingest.sites == {"shop.example", "blog.example"}
    assert from_dict({}, base=tmp_path).ingest.sites is None


# -- the collector over real HTTP -----------------------------------------------------------


def test_a_collector_records_each_beacons_site_from_its_origin(tmp_path, master_key):
    server = collector(tmp_path, master_key)
    try:
        assert send(server, "https://shop.example").status_code == 202
        assert send(server, "https://Blog.Example:8443").status_code == 202
        assert send(server, "http://shop.example.", host="elsewhere.example").status_code == 202
        assert send(server, "https://203.0.113.7").status_code == 202  # an address: no site
        assert send(server, "http://[2001:db8::1]:8080").status_code == 202
        assert send(server, None, host="collector.example").status_code == 202  # not a browser
    finally:
        assert server.stop() == 0
    expected = [None, None, "blog.example", "collector.example", "shop.example", "shop.example"]
    assert sites(server) == expected


def test_an_origin_outside_the_sites_stores_nothing(tmp_path, master_key):
    server = collector(tmp_path, master_key, 'sites = ["shop.example", "blog.example"]\n')
    try:
        refused = []
        for origin in (
            "https://evil.example",
            "https://shop.example.evil.example",
            "https://203.0.113.7",
        ):
            r = send(server, origin, host="shop.example")  # a Host that would be allowed
            refused.append((r.status_code, r.json()["type"], r.json()["field"]))
        assert refused == [(403, "urn:veil:problem:foreign-origin", "Origin")] * 3
        assert send(server, "https://shop.example").status_code == 202
    finally:
        assert server.stop() == 0
    assert sites(server) == ["shop.example"]
    assert drops(server) == {"foreign_origin": 3}


def test_a_null_or_malformed_origin_is_refused_clearly(tmp_path, master_key):
    server = collector(tmp_path, master_key)
    try:
        null = send(server, "null")
        assert (null.status_code, null.json()["type"]) == (403, "urn:veil:problem:opaque-origin")
        assert "Origin is null" in null.json()["detail"]
        bad_origins = ("shop.example", "https://shop.example/page", "ftp://shop.example")
        for bad in (*bad_origins, "https://", "https://shop..example", "https://-x.example"):
            r = send(server, bad)
            assert (r.status_code, r.json()["title"], r.json()["field"]) == (
                400,
                "Invalid Origin header",
                "Origin",
            ), bad
    finally:
        assert server.stop() == 0
    assert sites(server) == []


# -- in process: the middleware keeps Host; an explicit site -----------------------------------


async def test_the_middleware_keeps_its_host(make_config, started_site):
    site = await started_site(Veil(make_config()))  # served as https://shop.example
    async with site.client() as client:
        r = await client.post(
            "/veil/e",
            content=BEACON,
            headers={"Content-Type": "text/plain", "Origin": "https://other.example"},
        )
        assert r.status_code == 202
    await site.veil.stop()
    assert sites(site.veil) == ["shop.example"]


async def test_the_middleware_refuses_an_origin_outside_its_sites(make_config, started_site):
    veil = Veil(make_config(ingest={"sites": ["shop.example"]}))
    site = await started_site(veil)
    async with site.client() as client:
        answers = [
            (
                await client.post(
                    "/veil/e",
                    content=BEACON,
                    headers={"Content-Type": "text/plain", "Origin": origin},
                )
            ).status_code
            for origin in ("https://shop.example", "https://other.example")
        ]
    assert answers == [202, 403]
    await veil.stop()
    assert sites(veil) == ["shop.example"]


async def test_an_explicit_site_wins_on_a_collector_for_one_site(make_config, started):
    app = create_app(make_config(site="shop.example"))
    veil = await started(app.state.veil)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://collector") as client:
        r = await client.post(
            "/veil/e",
            content=BEACON,
            headers={"Content-Type": "text/plain", "Origin": "https://other.example"},
        )
        assert r.status_code == 202
    await veil.stop()
    assert sites(veil) == ["shop.example"]
