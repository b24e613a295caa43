import ipaddress
import time

import pytest

from veil import agents, languages
from veil.capture import Captured
from veil.geo import open_geoip
from veil.pipeline import ROW_COLUMNS, Drop, site_from_host
from veil.proxy import ClientResolver

from conftest import CHROME, GOOGLEBOT, SAFARI_IPHONE


def nets(*cidrs):
    return [ipaddress.ip_network(c) for c in cidrs]


def test_agents_are_described_with_major_versions_only():
    chrome = agents.describe(CHROME.encode())
    assert (chrome.browser, chrome.browser_version, chrome.os, chrome.os_version) == (
        "Chrome",
        "120",
        "Windows",
        "10",
    )
    iphone = agents.describe(SAFARI_IPHONE.encode())
    assert (iphone.browser, iphone.os, iphone.device, iphone.device_brand) == (
        "Mobile Safari",
        "iOS",
        "iPhone",
        "Apple",
    )
    assert not chrome.is_bot and agents.describe(GOOGLEBOT.encode()).is_bot


def test_empty_and_garbage_agents_do_not_fail():
    assert agents.describe(b"").browser is None
    assert agents.describe(b"\xff\xfe" * 2000).is_bot is False


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (b"de-CH, de;q=0.9, en-US;q=0.8, fr;q=0.7, it;q=0.6", ("de", "en", "fr")),
        (b"en;q=0.2, ja", ("ja", "en")),
        (b"*, x-klingon, 12, zh-Hant-TW;q=0.5", ("zh",)),
        (b"en;q=abc, fr;q=0", ()),
        (b"", ()),
    ],
)
def test_languages_are_primary_subtags_ranked_by_q(header, expected):
    assert languages.from_accept_language(header) == expected


def test_client_is_the_peer_unless_a_trusted_proxy_forwards():
    r = ClientResolver(nets("10.0.0.0/8"))
    peer = r.resolve("192.0.2.1", b"198.51.100.9")
    assert (peer.text, peer.proxied, peer.packed) == ("192.0.2.1", False, bytes([192, 0, 2, 1]))
    # from a trusted proxy, read right to left, skipping trusted hops; a spoofed left hop loses
    found = r.resolve("10.0.0.2", b"6.6.6.6, 198.51.100.9, 10.0.0.1")
    assert (found.text, found.proxied) == ("198.51.100.9", True)
    assert r.resolve("10.0.0.2", b"10.0.0.9, 10.0.0.1").text == "10.0.0.9"
    assert r.resolve("10.0.0.2", b"garbage") is None
    assert r.resolve("not an ip", b"") is None
    assert r.resolve("1.2.3", b"") is None and r.resolve("01.2.3.4", b"") is None
    assert r.resolve(None, b"") is None
    assert r.resolve("::ffff:192.0.2.5", b"").text == "192.0.2.5"
    assert r.resolve("2001:DB8:0:0::1", b"").text == "2001:db8::1"  # canonical form


def test_geo_lookup_from_a_real_mmdb(geoip_db):
    geo = open_geoip(geoip_db)
    assert geo.locate("198.51.100.20") == ("DE", "BE")
    assert geo.locate("2001:db8:1::5") == ("US", "CA")
    assert geo.locate("192.0.2.1") == (None, None)


def test_unreadable_mmdb_disables_geo_with_a_warning(tmp_path, caplog):
    bad = tmp_path / "broken.mmdb"
    bad.write_bytes(b"this is not a maxmind database" * 10)
    assert open_geoip(bad) is None
    assert open_geoip(tmp_path / "absent.mmdb") is None
    assert f"geoip.path: cannot read {bad}" in caplog.text


def test_site_from_host():
    assert site_from_host(b"Shop.Example:8443") == "shop.example"
    assert site_from_host(b"<script>") is None


def captured(
    ip="198.51.100.7",
    port=50123,
    agent=CHROME,
    lang="de-CH,en;q=0.5",
    gpc=b"1",
    forwarded=b"",
    host=b"shop.example",
    ts=None,
    purpose="connection",
    beacon=None,
    path="/page",
    cookie_id=None,
):
    return Captured(
        purpose,
        ts or time.time(),
        ip,
        port,
        agent.encode(),
        lang.encode(),
        gpc,
        None,
        forwarded,
        host,
        beacon,
        None if beacon else path,
        cookie_id,
    )


def test_a_request_becomes_a_pseudonymised_row(pipeline_for):
    rows, drops, _ = pipeline_for().process([captured()])
    assert not drops
    row = dict(zip(ROW_COLUMNS, rows[0], strict=True))
    assert row["purpose"] == "connection" and row["policy_version"] == "1.0"
    assert (row["browser"], row["browser_version"], row["os"]) == ("Chrome", "120", "Windows")
    assert (row["country"], row["region"]) == ("DE", "BE")
    assert len(row["network"]) == 32 and "198.51.100" not in row["network"]  # a daily pseudonym
    assert (row["language"], row["languages"], row["gpc"], row["dnt"]) == (
        "de",
        "de,en",
        True,
        False,
    )
    assert row["site"] == "shop.example"
    assert row["sealed_endpoint"] is None  # sealing is off by default
    assert "198.51.100" not in repr(rows) and "50123" not in repr(rows)
    assert "Chrome/120.0.6099" not in repr(rows)


def test_bots_and_unknown_clients_are_dropped_and_counted(pipeline_for):
    rows, drops, _ = pipeline_for().process(
        [captured(agent=GOOGLEBOT), captured(ip=None), captured(ip="::1"), captured()]
    )
    assert len(rows) == 2
    assert drops == {Drop.BOT: 1, Drop.INVALID_CLIENT: 1}


def test_events_of_a_day_whose_key_is_destroyed_are_dropped(pipeline_for):
    rows, drops, _ = pipeline_for().process([captured(ts=time.time() - 5 * 86400)])
    assert rows == [] and drops == {Drop.KEY_DESTROYED: 1}


def test_a_purpose_only_carries_its_fields(pipeline_for):
    narrow = {
        "policy": {
            "version": "n",
            "effective": __import__("datetime").date(2026, 1, 1),
            "controller": {"name": "c", "contact": "c@example"},
            "dpo": {"name": "d", "contact": "d@example"},
            "purposes": {
                "minimal": {
                    "description": "d",
                    "data_use": "essential.service",
                    "legal_basis": "legitimate_interests",
                    "retention": "1d",
                    "fields": ["ip_address"],
                }
            },
        }
    }
    rows, drops, _ = pipeline_for(seal_ip=True, **narrow).process(
        [
            captured(
                purpose="minimal",
                beacon={
                    "screen_w": 1,
                    "screen_h": 2,
                    "pixel_ratio": 1.0,
                    "language": "de",
                    "path": "/secret",
                },
            ),
            captured(purpose="connection"),
        ]
    )
    assert drops == {Drop.UNKNOWN_PURPOSE: 1}  # "connection" is not in this policy
    row = dict(zip(ROW_COLUMNS, rows[0], strict=True))
    assert row["visitor"] and row["country"] == "DE"
    for column in (
        "browser",
        "os",
        "device",
        "language",
        "gpc",
        "dnt",
        "sealed_endpoint",
        "screen_w",
        "pixel_ratio",
        "path",
    ):
        assert row[column] is None, column


def test_beacon_fields_are_kept_as_the_purpose_allows(pipeline_for):
    beacon = {
        "screen_w": 1280,
        "screen_h": 800,
        "pixel_ratio": 2.0,
        "language": "fr-CA",
        "path": "/pricing",
    }
    rows, _, _ = pipeline_for().process(
        [captured(beacon=beacon), captured(beacon=beacon, purpose="browsing_history")]
    )
    connection, history = (dict(zip(ROW_COLUMNS, r, strict=True)) for r in rows)
    # the screen as its width class, no height (test_unlinkability.py says why)
    assert (connection["source"], connection["screen_w"], connection["screen_h"]) == (
        "beacon",
        1200,
        None,
    )
    assert (connection["pixel_ratio"], connection["language"]) == (2.0, "fr")
    assert connection["path"] is None  # connection does not carry browsing history
    assert history["path"] == "/pricing"
    assert connection["event_id"] != history["event_id"]


def test_sealing_keeps_ip_and_port_encrypted(pipeline_for):
    rows, _, _ = pipeline_for(seal_ip=True).process([captured()])
    row = dict(zip(ROW_COLUMNS, rows[0], strict=True))
    assert row["seal_key"].startswith("seal-")
    assert b"198.51.100.7" not in row["sealed_endpoint"]


def test_forwarded_client_from_trusted_proxy(pipeline_for):
    pipeline = pipeline_for(proxy={"trusted": ["192.0.2.0/24"]})
    now = time.time()
    rows, _, _ = pipeline.process(
        [
            captured(ip="192.0.2.1", forwarded=b"203.0.113.50", ts=now),
            captured(ip="203.0.113.50", ts=now),
        ]
    )
    via_proxy, direct = (dict(zip(ROW_COLUMNS, r, strict=True)) for r in rows)
    assert via_proxy["country"] == "JP"
    # the forwarded client's pseudonyms, not the proxy's
    assert (via_proxy["visitor"], via_proxy["network"]) == (direct["visitor"], direct["network"])


def test_an_unreadable_event_is_counted_and_does_not_take_its_batch(pipeline_for):
    good = [captured(ip=f"198.51.100.{i}") for i in range(1, 4)]
    broken = [captured()._replace(agent=12345), captured()._replace(peer=7)]  # not bytes, str
    rows, drops, _ = pipeline_for().process([good[0], *broken, *good[1:]])
    assert len(rows) == 3 and drops == {"invalid_event": 2}
