"""Headless Chromium loads the real collector's demo page; the beacon lands in the store."""

import json
import os
import time

import pytest
from policies import AUTOMATIC, policy_toml
from servers import ServerProcess

from veil.pseudonymise import screen_class

from browser_support import (
    GPC_ON,
    LOCALE,
    PIXEL_RATIO,
    SCREEN,
    STALE_CONSENT,
    Visitor,
    launch_chromium,
)
from conftest import records, rows, scalar

CONFIG = (
    '[store]\nurl = "sqlite:///data/veil.db"\n[keys]\npath = "data/keys.db"\n'
    "[capture]\nflush_interval = 0.1\n"
)
# Two consent-based purposes, neither called browsing_history; only `journeys` takes the path.
JOURNEYS = policy_toml(
    "j1",
    f"""
[policy.purposes.journeys]
description = "Improve navigation from the pages visited"
data_use = "functional.service.improve"
legal_basis = "consent"
retention = "30d"
fields = {json.dumps([*AUTOMATIC, "path"])}
[policy.purposes.newsletter]
description = "Measure newsletter sign-ups"
data_use = "marketing.communications"
legal_basis = "consent"
retention = "30d"
fields = {json.dumps(AUTOMATIC)}
""",
)


@pytest.fixture(scope="module")
def collector(tmp_path_factory):
    yield from serve(tmp_path_factory, CONFIG)


@pytest.fixture(scope="module")
def journeys_collector(tmp_path_factory):
    yield from serve(tmp_path_factory, CONFIG + JOURNEYS)


def serve(tmp_path_factory, toml: str):
    tmp = tmp_path_factory.mktemp("collector")
    config = tmp / "veil.toml"
    config.write_text(toml)
    env = {**os.environ, "VEIL_MASTER_KEY": "ab" * 32}
    server = ServerProcess.veil_serve(config, env, tmp / "collector.log", data=tmp / "data").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser():
    with launch_chromium() as chromium:
        yield chromium


def beacon_rows(db_path, expected: int, timeout: float = 10.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        rows = []
        if db_path.exists():
            rows = records(db_path, "SELECT * FROM events WHERE source='beacon' ORDER BY id")
        if len(rows) >= expected or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def test_demo_page_beacon_is_stored_with_the_real_screen_and_language(collector, browser):
    before = len(beacon_rows(collector.db, 0, timeout=0))
    visitor = Visitor(browser, collector.url)
    try:
        visitor.open("/")
        rows = beacon_rows(collector.db, before + 1)
        assert len(rows) == before + 1
        row = rows[-1]
        # stored as classes: the width's breakpoint, no height (test_unlinkability.py)
        assert (row["screen_w"], row["screen_h"]) == (screen_class(SCREEN["width"]), None)
        assert row["pixel_ratio"] == PIXEL_RATIO == 1.5
        assert row["language"] == LOCALE.split("-")[0].lower()
        assert row["browser"] in ("Chrome", "HeadlessChrome", "Chromium")
        assert row["purpose"] == "connection" and row["path"] is None
        # no consent given: no cookie, no storage
        assert visitor.js("document.cookie") == ""
        assert visitor.js("localStorage.length + sessionStorage.length") == 0
        assert visitor.page.context.cookies() == []
        assert visitor.errors == []
    finally:
        visitor.close()


def test_with_gpc_on_no_consent_based_data_is_stored(collector, browser):
    before = len(beacon_rows(collector.db, 0, timeout=0))
    visitor = Visitor(browser, collector.url, GPC_ON, STALE_CONSENT)
    try:
        visitor.open("/")
        visitor.push("/pricing")
        rows = beacon_rows(collector.db, before + 2)[before:]
        assert len(rows) == 2
        assert all(r["path"] is None and r["purpose"] == "connection" for r in rows)
        assert (
            scalar(
                collector,
                "SELECT COUNT(*) FROM event_rows WHERE path IS NOT NULL OR purpose != 'connection'",
            )
            == 0
        )
    finally:
        visitor.close()


def wait_for(check, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while not (result := check()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return result


def history_rows(db_path) -> list[tuple]:
    return rows(
        db_path,
        "SELECT path, subject IS NOT NULL FROM event_rows "
        "WHERE purpose = 'browsing_history' ORDER BY id",
    )


def test_consent_in_the_browser_sets_a_safe_cookie_and_withdrawal_stops_collection(
    collector, browser
):
    visitor = Visitor(browser, collector.url)
    try:
        visitor.open("/")
        visitor.js("veil.consent(['browsing_history'])")
        cookie = wait_for(
            lambda: [c for c in visitor.page.context.cookies() if c["name"] == "__Host-veil_sid"]
        )
        assert cookie, "no subject cookie after consent"
        assert (cookie[0]["httpOnly"], cookie[0]["secure"], cookie[0]["sameSite"]) == (
            True,
            True,
            "Lax",
        )
        assert visitor.js("document.cookie") == ""  # HttpOnly: page scripts never see it
        visitor.push("/pricing")
        assert wait_for(lambda: ("/pricing", 1) in history_rows(collector.db))
        visitor.js("veil.optOut()")
        assert wait_for(
            lambda: (
                not [c for c in visitor.page.context.cookies() if c["name"] == "__Host-veil_sid"]
            )
        )
        visitor.push("/after-opt-out")
        time.sleep(0.5)  # the beacon arrives and is processed (flush interval 0.1 s)
        assert all(path != "/after-opt-out" for path, _ in history_rows(collector.db))
        assert visitor.errors == []
    finally:
        visitor.close()


def paths_stored(db_path, purpose: str) -> list:
    return [
        r[0]
        for r in rows(db_path, "SELECT path FROM event_rows WHERE purpose = ? ORDER BY id", purpose)
    ]


def test_snippet_takes_the_path_purposes_and_the_grants_from_the_server(
    journeys_collector, browser
):
    # Issue 8, item 9: no purpose is called browsing_history here, and a later consent to
    # another purpose must not make the snippet forget the earlier grant the server holds.
    visitor = Visitor(browser, journeys_collector.url)
    sent: list[dict] = []
    visitor.page.on(
        "request", lambda r: r.url.endswith("/veil/e") and sent.append(json.loads(r.post_data))
    )
    try:
        visitor.open("/")
        visitor.js("veil.consent(['newsletter'])")  # consent-based, takes no path
        visitor.push("/newsletter")
        visitor.js("veil.consent(['journeys'])")
        visitor.push("/a")
        visitor.js("veil.consent(['newsletter'])")  # already granted: the server says both
        visitor.push("/b")
        visitor.open("/")  # the next page load: what the server said was saved
        assert wait_for(
            lambda: paths_stored(journeys_collector.db, "journeys")[-3:] == ["/a", "/b", "/"]
        )
        assert [b.get("path") for b in sent] == [None, None, "/a", "/b", "/"]
        state = visitor.js("fetch('/veil/consent').then(r => r.json())")
        assert {
            k: (p["collected"], "path" in p["fields"]) for k, p in state["purposes"].items()
        } == {"connection": (True, False), "journeys": (True, True), "newsletter": (True, False)}
        assert visitor.js("JSON.parse(localStorage.veil_consent)") == {
            "p": ["journeys"],
            "gpc": False,
        }
        visitor.js("veil.optOut()")
        visitor.push("/after")
        assert visitor.js("localStorage.length") == 0
        assert wait_for(lambda: len(sent) == 6) and "path" not in sent[-1]
        assert visitor.errors == []
    finally:
        visitor.close()
