"""Writes docs/dashboard.png: the analysts' dashboard on a made-up demo store.

Seeds a store in a temporary directory (30 days of cookieless visits from many networks, and
consenting subjects on a few pages), serves it with the collector app under uvicorn, logs in
with a fresh analyst token in Debian's headless Chromium (Playwright) and screenshots the page.

    .venv/bin/python scripts/dashboard_screenshot.py [out.png]
"""

import asyncio
import datetime as dt
import os
import random
import secrets
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import uvicorn
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
# (weight, browser, os, device, screen width)
AGENTS = [
    (38, "Chrome", "Windows", "desktop", 1920),
    (18, "Safari", "iOS", "smartphone", 390),
    (14, "Chrome", "Android", "smartphone", 412),
    (10, "Firefox", "Windows", "desktop", 1536),
    (8, "Safari", "Mac", "desktop", 1440),
    (6, "Edge", "Windows", "desktop", 1280),
    (4, "Samsung Internet", "Android", "smartphone", 360),
    (2, "Firefox", "GNU/Linux", "desktop", 2560),
]
PLACES = [(40, "DE", "de"), (22, "AT", "de"), (15, "CH", "de"), (12, "FR", "fr"), (8, "US", "en")]
PLACES += [(3, "JP", "ja")]
PAGES = [(30, "/"), (22, "/pricing"), (15, "/docs"), (10, "/blog/cookieless"), (6, "/about")]
PAGES += [(2, "/careers")]


def pick(rng: random.Random, table: list) -> tuple:
    return rng.choices(table, weights=[row[0] for row in table])[0][1:]


def demo_rows(rng: random.Random) -> dict[str, list[tuple]]:
    """Cookieless `connection` visits by day: weekday traffic, a quieter weekend, a lone
    visitor now and then (suppressed), each visit from a network of its own."""
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import event_row

    out: dict[str, list[tuple]] = {}
    today = dt.datetime.now(dt.UTC).date()
    for offset in range(30):
        day = today - dt.timedelta(days=offset)
        start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()
        visitors = 3 if offset == 17 else rng.randint(55, 90) // (2 if day.weekday() > 4 else 1)
        rows = out.setdefault(day.isoformat(), [])
        for v in range(visitors):
            browser, os_, device, width = pick(rng, AGENTS)
            country, language = pick(rng, PLACES)
            for _ in range(rng.randint(1, 4)):  # a few events per visit
                rows.append(
                    event_row(
                        event_id=secrets.token_hex(8),
                        ts=start + rng.uniform(0, 86_000) if offset else start + len(rows),
                        policy_version="1",
                        visitor=f"v-{offset}-{v}",
                        network=f"n-{offset}-{v}",
                        browser=browser,
                        os=os_,
                        device=device,
                        country=country,
                        language=language,
                        screen_w=width,
                    )
                )
    return out


async def seed(config) -> str:
    from veil.analytics import analysts
    from veil.store import SQLiteStore

    rng = random.Random(11)
    store = SQLiteStore(config.store.path)
    await store.open(config.policy)
    try:
        for day, rows in demo_rows(rng).items():
            await store.write(rows, Counter(), day)
        _, token = await analysts.add(store, config.policy, "demo", ("connection",))
        return token
    finally:
        await store.close()


def main(out: Path) -> None:
    os.environ.setdefault("VEIL_MASTER_KEY", secrets.token_hex(32))  # a throwaway demo store
    from veil.config import from_dict
    from veil_collector.app import create_app

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        data.chmod(0o700)
        config = from_dict(
            {"store": {"url": "sqlite:///veil.db"}, "keys": {"path": "keys.db"}}, base=data
        )
        token = asyncio.run(seed(config))
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        server = uvicorn.Server(
            uvicorn.Config(create_app(config), log_level="warning", lifespan="on")
        )
        thread = threading.Thread(target=server.run, args=([sock],), daemon=True)
        thread.start()
        while not server.started:
            if not thread.is_alive():
                raise SystemExit("the collector did not start")
            time.sleep(0.02)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(
                    executable_path=CHROMIUM, args=["--headless", "--no-sandbox"]
                )
                page = browser.new_page(viewport={"width": 1200, "height": 900})
                page.goto(f"{url}/dashboard")
                page.fill("#token", token)
                page.click("#login-form button[type=submit]")
                page.wait_for_selector("body[data-loaded]", state="attached")
                page.screenshot(path=str(out), full_page=True)
                browser.close()
        finally:
            server.should_exit = True
            thread.join(20)
            sock.close()
    print(f"{out}: {out.stat().st_size} bytes")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "dashboard.png")
