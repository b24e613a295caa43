"""The analysts' dashboard in headless Chromium against the real collector under uvicorn: what
it draws (the chart's points, the top lists' rows) is what `/api/v1/stats` answers, fetched
with httpx in the same test; suppressed cells read as suppressed; each panel's CSV is the
API's; the token lives in sessionStorage only (no cookie ever, nothing in localStorage) and a
401 brings back the login form with the problem's detail; the CSP holds (no violation); on a
390 px phone nothing overflows. And `GET /api/v1/me`."""

import asyncio
import datetime as dt
import json
import shutil
import subprocess
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from starlette.types import ASGIApp

from veil.analytics import analysts
from veil.config import Config, from_dict
from veil.http.analytics import openapi_document
from veil.http.endpoints import COLLECTOR_PATHS, PATHS
from veil.store import SQLiteStore
from veil_collector.app import create_app

from browser_support import ROOT, require, uvicorn_thread
from conftest import event_row, known_to_ledger

JS = ROOT / "js"
ESBUILD = JS / "node_modules" / ".bin" / "esbuild"
STATIC = ROOT / "sdk" / "veil" / "static"
REBUILD = "rebuild it: cd js && npm ci && npm run build"
TOKEN_KEY = "veil.dashboard.token"
# a page path is whatever visitors sent: the dashboard must show it as text, never as markup
HOSTILE_PATH = "/<img src=x onerror=window.__pwned=1>"
LISTS = ("browser", "os", "device", "country", "language", "screen")
# every securitypolicyviolation the page raises, recorded before its own scripts run
CSP_WATCH = """window.__violations = [];
document.addEventListener('securitypolicyviolation',
  e => window.__violations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sample}`));"""


def _day(offset: int) -> tuple[str, float]:
    """The UTC day `offset` days before today, and a time early in it."""
    day = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=offset)
    start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()
    return day.isoformat(), start + 60


def _connection_rows() -> dict[str, list[tuple]]:
    """Cookieless `connection` rows by day, each visitor on a network of their own: five days
    of 8 Chrome/Windows and 6 Firefox/Linux visitors (all shown); on day 2 one Safari/iOS
    visitor too (suppressed, taking Firefox's day 2 with it); ten days back, 2 visitors alone
    (a suppressed day)."""
    out: dict[str, list[tuple]] = {}

    def add(offset: int, n: int, **values: object) -> None:
        day, ts = _day(offset)
        rows = out.setdefault(day, [])
        for i in range(n):
            tag = f"{offset}-{values['browser']}-{i}"
            rows.append(
                event_row(
                    event_id=f"e-{tag}",
                    ts=ts + len(rows),
                    policy_version="1",
                    visitor=f"v-{tag}",
                    network=f"n-{tag}",
                    **values,
                )
            )

    for offset in range(5):
        add(offset, 8, browser="Chrome", os="Windows", device="desktop", country="DE",
            language="de", screen_w=1280)  # fmt: skip
        add(offset, 6, browser="Firefox", os="Linux", device="desktop", country="JP",
            language="ja", screen_w=1920)  # fmt: skip
    add(2, 1, browser="Safari", os="iOS", device="smartphone", country="US", language="en",
        screen_w=390)  # fmt: skip
    add(10, 2, browser="Chrome", os="Windows", device="desktop", country="DE", language="de",
        screen_w=1280)  # fmt: skip
    return out


async def _seed(config: Config) -> str:
    """The store filled (connection rows; thirteen consenting subjects on three pages today:
    7 (on a path written as markup), 5 and 1, the 5 suppressed with the 1), and an analyst
    granted both purposes: their token."""
    store = SQLiteStore(config.store.path)
    await store.open(config.policy)
    try:
        for day, rows in _connection_rows().items():
            await store.write(rows, Counter(), day)
        subjects = [f"subject-{n}" for n in range(13)]
        await known_to_ledger(store, *subjects)
        today, ts = _day(0)
        history = [
            event_row(
                event_id=f"b-{n}",
                ts=ts + n,
                purpose="browsing_history",
                policy_version="1",
                source="beacon",
                visitor=None,
                subject=s,
                path=HOSTILE_PATH if n < 7 else "/docs" if n < 12 else "/careers",
            )
            for n, s in enumerate(subjects)
        ]
        await store.write(history, Counter(), today)
        _, token = await analysts.add(
            store, config.policy, "alice", ("connection", "browsing_history")
        )
        return token
    finally:
        await store.close()


class Served:
    def __init__(self, url: str, token: str, config: Config) -> None:
        self.url, self.token, self.config = url, token, config

    def stats(self, **params: str) -> httpx.Response:
        return httpx.get(
            f"{self.url}/api/v1/stats",
            params=params,
            headers={"Authorization": f"Bearer {self.token}"},
        )


@contextmanager
def collector(
    data_dir: Path,
    seed: Callable[[Config], Awaitable[str]] = _seed,
    wrap: Callable[[ASGIApp], ASGIApp] | None = None,
) -> Iterator[Served]:
    """The collector app (create_app, as `veil serve` runs it; `wrap`ped, if given) under
    real uvicorn in a thread, on a store `seed` filled (it returns an analyst's token)."""
    config = from_dict(
        {"store": {"url": "sqlite:///veil.db"}, "keys": {"path": "keys.db"}}, base=data_dir
    )
    # in a thread of its own: Playwright's sync API may run an event loop in this one
    seeded: list[str] = []
    seeding = threading.Thread(target=lambda: seeded.append(asyncio.run(seed(config))))
    seeding.start()
    seeding.join(20)
    (token,) = seeded
    app = create_app(config)
    with uvicorn_thread(wrap(app) if wrap else app, lifespan="on") as url:
        yield Served(url, token, config)


@pytest.fixture
def served(data_dir: Path) -> Iterator[Served]:
    with collector(data_dir) as s:
        yield s


def _open(browser, served: Served, **context: object):
    ctx = browser.new_context(base_url=served.url, **context)
    ctx.add_init_script(CSP_WATCH)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # a failed load (the favicon's 404 aside) is a response below; console errors too
    page.on("console", lambda m: m.type == "error" and not m.text.startswith("Failed to load")
            and errors.append(m.text))  # fmt: skip
    page.on(
        "response",
        lambda r: r.status >= 400 and not r.url.endswith("/favicon.ico")
        and errors.append(f"{r.status} {r.url}"),
    )  # fmt: skip
    page.goto("/dashboard")
    return ctx, page, errors


def _log_in(page, token: str) -> None:
    page.fill("#token", token)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("body[data-loaded]", state="attached")


def _choose(page, purpose: str) -> None:
    before = page.get_attribute("body", "data-loaded")
    page.select_option("#purpose", purpose)
    page.wait_for_selector(f'body:not([data-loaded="{before}"])', state="attached")


def _range() -> dict[str, str]:
    """The dashboard's default: the last 30 days, today included; `until` exclusive."""
    today = dt.datetime.now(dt.UTC).date()
    return {
        "since": (today - dt.timedelta(days=29)).isoformat(),
        "until": (today + dt.timedelta(days=1)).isoformat(),
    }


def _drawn_points(page) -> dict[tuple[str, str], str]:
    """(day, metric) -> the value chartist wrote on the point it drew (ct:value)."""
    points = page.eval_on_selector_all(
        "#chart .ct-point",
        "ps => ps.map(p => [p.dataset.day, p.dataset.metric, p.getAttribute('ct:value')])",
    )
    return {(day, metric): value for day, metric, value in points}


def _drawn_list(page, dim: str) -> list[dict]:
    return page.eval_on_selector_all(
        f"article[data-dimension={dim}] .top li",
        """lis => lis.map(li => ({
            key: li.dataset.key,
            suppressed: li.classList.contains('suppressed'),
            text: li.querySelector('.numbers').textContent,
            events: li.querySelector('.events')?.textContent ?? null,
            visitors: li.querySelector('.visitors')?.textContent ?? null,
        }))""",
    )


def _check_list(page, answer: dict, dim: str) -> None:
    """The panel of `dim` shows the API's first ten cells, in its order, with its numbers;
    a suppressed cell as suppressed."""
    rows = _drawn_list(page, dim)
    assert len(rows) == min(10, len(answer["cells"])) > 0
    for row, cell in zip(rows, answer["cells"], strict=False):
        assert row["key"] == (cell["key"][dim] or "")
        if cell["values"] is None:
            assert row["suppressed"] and row["text"] == "suppressed: fewer than 5 persons"
        else:
            assert not row["suppressed"]
            assert row["events"] == f"{cell['values']['events']:,} events"
            assert row["visitors"] == f"{cell['values']['visitors']:,} visitors"


def test_the_dashboard_draws_what_the_api_answers(served: Served, browser) -> None:
    ctx, page, errors = _open(browser, served)
    assert page.is_visible("#login") and not page.is_visible("#board")
    _log_in(page, served.token)
    assert page.text_content("#who") == "alice · k = 5"
    assert page.evaluate(f"sessionStorage.getItem({TOKEN_KEY!r})") == served.token
    assert page.evaluate("localStorage.length") == 0
    assert page.input_value("#purpose") == "connection"
    query = {"purpose": "connection", "metric": "events,visitors", **_range()}

    # the chart: every day of the range drawn, each shown day's counts as the API gives them
    series = served.stats(**query, by="day").json()
    shown = [c for c in series["cells"] if c["values"] is not None]
    hidden = [c["key"]["day"] for c in series["cells"] if c["values"] is None]
    assert len(shown) == 5 and hidden == [_day(10)[0]]  # the data is what the test meant
    drawn = _drawn_points(page)
    assert len(drawn) == 2 * (30 - len(hidden))  # a suppressed day is a gap, not a zero
    for cell in shown:
        for metric in ("events", "visitors"):
            assert drawn[(cell["key"]["day"], metric)] == str(cell["values"][metric])
    quiet = _day(20)[0]  # no event that day: drawn as 0
    assert drawn[(quiet, "events")] == drawn[(quiet, "visitors")] == "0"
    marked = page.eval_on_selector_all(
        "#chart rect.suppressed-day", "rs => rs.map(r => [r.dataset.day, r.textContent])"
    )
    assert marked == [[hidden[0], f"{hidden[0]}: suppressed: fewer than k persons"]]
    assert f"Suppressed: fewer than k = 5 persons on {hidden[0]}" in page.text_content(
        "#series-note"
    )

    # the top lists: the API's cells, in its order, numbers as drawn; suppressed as such
    panels = page.eval_on_selector_all("#lists article", "as => as.map(a => a.dataset.dimension)")
    assert panels == list(LISTS)  # connection holds no path
    for dim in LISTS:
        _check_list(page, served.stats(**query, by=dim).json(), dim)
    browsers = {r["key"]: r for r in _drawn_list(page, "browser")}
    assert browsers["Safari"]["suppressed"]  # one person: never shown
    assert not browsers["Chrome"]["suppressed"] and not browsers["Firefox"]["suppressed"]

    # CSV per panel: the API's CSV, fetched with the bearer header
    with page.expect_download() as download:
        page.click("article[data-dimension=browser] button.csv")
    csv_bytes = Path(download.value.path()).read_bytes()
    assert csv_bytes == served.stats(**query, by="browser", format="csv").content
    assert b"\r\nSafari,,,true" in csv_bytes

    # a consent purpose that holds the path: its panel appears
    _choose(page, "browsing_history")
    answer = served.stats(**{**query, "purpose": "browsing_history"}, by="path").json()
    _check_list(page, answer, "path")
    rows = _drawn_list(page, "path")
    assert [r["key"] for r in rows] == [HOSTILE_PATH, "/careers", "/docs"]  # suppressed last
    label = page.text_content("article[data-dimension=path] li .label")
    assert label == HOSTILE_PATH and page.query_selector("#lists img") is None
    assert page.evaluate("window.__pwned") is None
    assert rows[0]["events"] == "7 events" and rows[1]["suppressed"] and rows[2]["suppressed"]

    # no cookie at any point; logging out forgets the token
    assert ctx.cookies() == []
    page.click("#logout")
    assert page.is_visible("#login") and not page.is_visible("#board")
    assert page.evaluate("sessionStorage.length") == 0
    page.reload()
    assert page.is_visible("#login")
    assert ctx.cookies() == []
    assert page.evaluate("window.__violations") == []
    assert errors == []
    ctx.close()


def test_a_bad_or_revoked_token_shows_the_login_form_with_the_problem(
    served: Served, browser, capsys
) -> None:
    ctx, page, _ = _open(browser, served)
    page.fill("#token", "veil_not-a-token")
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#login-error:not([hidden])")
    assert page.text_content("#login-error") == "the token is unknown or revoked"
    assert page.evaluate("sessionStorage.length") == 0
    _log_in(page, served.token)
    assert page.is_visible("#board")
    store = SQLiteStore(served.config.store.path)

    async def revoke() -> None:
        await store.open(served.config.policy)
        try:
            await analysts.revoke(store, "alice")
        finally:
            await store.close()

    # in a thread of its own: Playwright's sync API runs an event loop in this one
    revoking = threading.Thread(target=asyncio.run, args=(revoke(),))
    revoking.start()
    revoking.join(20)
    me = httpx.get(f"{served.url}/api/v1/me", headers={"Authorization": f"Bearer {served.token}"})
    assert me.status_code == 401
    page.click("#query button[type=submit]")  # the next read is refused: back to the login
    page.wait_for_selector("#login-error:not([hidden])")
    assert page.text_content("#login-error") == "the token is unknown or revoked"
    assert not page.is_visible("#board")
    assert page.evaluate("sessionStorage.length") == 0
    assert ctx.cookies() == []
    ctx.close()


def test_on_a_phone_nothing_overflows(served: Served, browser) -> None:
    ctx, page, errors = _open(
        browser, served, viewport={"width": 390, "height": 844}, device_scale_factor=3,
        is_mobile=True, has_touch=True,
    )  # fmt: skip
    for purpose in ("connection", "browsing_history"):
        if purpose == "connection":
            _log_in(page, served.token)
        else:
            _choose(page, purpose)
        width = page.evaluate("document.documentElement.clientWidth")
        assert width == 390
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        wider = page.evaluate(
            """w => [...document.querySelectorAll('body *')]
                 .filter(e => e.getBoundingClientRect().right > w + 0.5)
                 .map(e => e.tagName + '.' + e.className)""",
            width,
        )
        assert wider == []
    assert page.evaluate("window.__violations") == [] and errors == []
    ctx.close()


def test_the_page_is_the_collectors_only_and_locked_down(served: Served) -> None:
    assert "/dashboard" in COLLECTOR_PATHS and "/dashboard" not in PATHS
    assert "/api/v1/me" in COLLECTOR_PATHS and "/api/v1/me" not in PATHS
    r = httpx.get(f"{served.url}/dashboard")
    assert r.status_code == 200 and r.headers["content-type"] == "text/html; charset=utf-8"
    csp = r.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "default-src 'none'" in csp
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["x-frame-options"] == "DENY"
    assert "set-cookie" not in r.headers
    assert "<script>" not in r.text and "style=" not in r.text  # nothing inline
    for name in ("dashboard.js", "dashboard.css", "chartist.js", "chartist.css"):
        asset = httpx.get(f"{served.url}/dashboard/{name}")
        assert asset.status_code == 200 and asset.headers["x-content-type-options"] == "nosniff"


def test_me_names_the_analyst_k_and_what_each_purpose_holds(served: Served) -> None:
    url = f"{served.url}/api/v1/me"
    r = httpx.get(url)
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert r.headers["cache-control"] == "no-store"
    r = httpx.get(url, headers={"Authorization": "Bearer veil_nope"})
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"]
    r = httpx.get(url, headers={"Authorization": f"Bearer {served.token}"})
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    me = r.json()
    assert "/api/v1/me" in openapi_document()["paths"]
    assert (me["analyst"], me["k"]) == ("alice", 5)
    purposes = {p["purpose"]: p for p in me["purposes"]}
    assert list(purposes) == ["connection", "browsing_history"]
    connection, history = purposes["connection"], purposes["browsing_history"]
    assert connection["uses"] == history["uses"] == ["statistics"]
    assert "path" not in connection["dimensions"] and "path" in history["dimensions"]
    assert {"browser", "country", "day", "screen"} <= set(connection["dimensions"])
    assert connection["metrics"] == ["events", "visitors"]
    assert history["metrics"] == ["events", "visitors", "subjects"]
    # every dimension /me lists is one stats answers for that purpose, and no other is
    for purpose, listed in purposes.items():
        for dim in listed["dimensions"]:
            assert served.stats(purpose=purpose, by=dim).status_code == 200, (purpose, dim)
    assert served.stats(purpose="connection", by="path").status_code == 400


def test_the_shipped_chart_library_is_the_pinned_builds(tmp_path: Path) -> None:
    """static/chartist.js and .css are what js/build.mjs makes of the chartist version
    package.json pins (the build is deterministic: rebuilt here, compared byte for byte)."""
    require(
        ESBUILD.exists() and shutil.which("node") is not None,
        "esbuild not installed: cd js && npm ci",
    )
    pinned = json.loads((JS / "package.json").read_text())["devDependencies"]["chartist"]
    assert pinned[0].isdigit(), f"chartist must be pinned exactly, got {pinned!r}"
    subprocess.run(["node", "build.mjs", str(tmp_path / "veil.js")], cwd=JS, check=True)
    for name in ("chartist.js", "chartist.css"):
        shipped = (STATIC / name).read_bytes()
        assert shipped.startswith(f"/*! chartist {pinned} ".encode()), name
        assert (tmp_path / name).read_bytes() == shipped, f"shipped {name} is stale; {REBUILD}"
