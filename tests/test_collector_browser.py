"""Headless Chromium loads the real collector's demo page; the beacon lands in the store."""

import os
import sqlite3
import time

import pytest
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


@pytest.fixture(scope="module")
def collector(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("collector")
    config = tmp / "veil.toml"
    config.write_text('[store]\nurl = "sqlite:///data/veil.db"\n[keys]\npath = "data/keys.db"\n'
                      '[capture]\nflush_interval = 0.1\n')
    env = {**os.environ, "VEIL_MASTER_KEY": "ab" * 32}
    server = ServerProcess.veil_serve(config, env, tmp / "collector.log").start()
    server.db = tmp / "data" / "veil.db"
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
            db = sqlite3.connect(db_path)
            db.row_factory = sqlite3.Row
            rows = [dict(r) for r in db.execute("SELECT * FROM events WHERE source='beacon' "
                                                "ORDER BY id")]
            db.close()
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
        db = sqlite3.connect(collector.db)
        assert db.execute("SELECT COUNT(*) FROM event_log WHERE path IS NOT NULL "
                          "OR purpose != 'connection'").fetchone()[0] == 0
        db.close()
    finally:
        visitor.close()


def wait_for(check, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while not (result := check()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return result


def history_rows(db_path) -> list[tuple]:
    db = sqlite3.connect(db_path)
    try:
        return db.execute("SELECT path, subject IS NOT NULL FROM event_log "
                          "WHERE purpose = 'browsing_history' ORDER BY id").fetchall()
    finally:
        db.close()


def test_consent_in_the_browser_sets_a_safe_cookie_and_withdrawal_stops_collection(
        collector, browser):
    visitor = Visitor(browser, collector.url)
    try:
        visitor.open("/")
        visitor.js("veil.consent(['browsing_history'])")
        cookie = wait_for(lambda: [c for c in visitor.page.context.cookies()
                                   if c["name"] == "__Host-veil_sid"])
        assert cookie, "no subject cookie after consent"
        assert (cookie[0]["httpOnly"], cookie[0]["secure"], cookie[0]["sameSite"]) == (
            True, True, "Lax")
        assert visitor.js("document.cookie") == ""  # HttpOnly: page scripts never see it
        visitor.push("/pricing")
        assert wait_for(lambda: ("/pricing", 1) in history_rows(collector.db))
        visitor.js("veil.optOut()")
        assert wait_for(lambda: not [c for c in visitor.page.context.cookies()
                                     if c["name"] == "__Host-veil_sid"])
        visitor.push("/after-opt-out")
        time.sleep(0.5)  # the beacon arrives and is processed (flush interval 0.1 s)
        assert all(path != "/after-opt-out" for path, _ in history_rows(collector.db))
        assert visitor.errors == []
    finally:
        visitor.close()
