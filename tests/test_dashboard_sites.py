"""The dashboard's Site selector, in headless Chromium against the real collector under uvicorn:
it lists the sites the `by=site` answer holds (a suppressed one listed as such, not choosable;
a name written as markup shown as text); choosing one draws what `/api/v1/stats?...&where=
site:X` answers, fetched with httpx in the same test, in the chart and every list, and each
CSV download carries the filter; with one site the selector is hidden; on a 390 px phone a
long site name overflows nothing; the CSP holds."""

from collections import Counter
from contextlib import AbstractContextManager
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from test_dashboard_browser import (
    CSP_WATCH,
    LISTS,
    Served,
    _check_list,
    _day,
    _drawn_list,
    _drawn_points,
    _log_in,
    _range,
    collector,
)

from veil.analytics import analysts
from veil.config import Config
from veil.store import SQLiteStore

from conftest import event_row

SHOP = "shop.example"
# long enough to overflow a phone if the selector let it
BLOG = "blog.with-a-rather-long-name-nobody-would-want-to-type.example"
# a site's name is what beacons sent: shown as text, never markup; two visitors (suppressed)
HOSTILE = "<img src=x onerror=window.__pwned=1>.example"
AGENTS = {
    "Chrome": ("Windows", "desktop", "DE", "de", 1280),
    "Firefox": ("Linux", "desktop", "JP", "ja", 1920),
    "Edge": ("Windows", "desktop", "FR", "fr", 1440),
    "Safari": ("iOS", "smartphone", "US", "en", 390),
}


def _rows(sites: dict[str, list[tuple[int, str, int]]]) -> dict[str, list[tuple]]:
    """Cookieless `connection` rows by day from (day offset, browser, visitors) per site, each
    visitor on a network of their own."""
    out: dict[str, list[tuple]] = {}
    for site, visits in sites.items():
        for offset, browser, n in visits:
            day, ts = _day(offset)
            rows = out.setdefault(day, [])
            os_, device, country, language, width = AGENTS[browser]
            for i in range(n):
                tag = f"{site}-{offset}-{browser}-{i}"
                rows.append(
                    event_row(
                        event_id=f"e-{tag}",
                        ts=ts + len(rows),
                        policy_version="1",
                        site=site,
                        visitor=f"v-{tag}",
                        network=f"n-{tag}",
                        browser=browser,
                        os=os_,
                        device=device,
                        country=country,
                        language=language,
                        screen_w=width,
                    )
                )
    return out


# the shop: 8 Chrome and 6 Firefox visitors a day for four days; the blog: 7 Chrome and 6 Edge
# for three days and one Safari on day 1 (suppressed, taking the blog's Edge of day 1 with it);
# the hostile site: two visitors ten days back, alone that day (suppressed)
SEVERAL = {
    SHOP: [(d, "Chrome", 8) for d in range(4)] + [(d, "Firefox", 6) for d in range(4)],
    BLOG: [(d, "Chrome", 7) for d in range(3)] + [(d, "Edge", 6) for d in range(3)]
    + [(1, "Safari", 1)],
    HOSTILE: [(10, "Firefox", 2)],
}  # fmt: skip
ONE = {SHOP: [(d, "Chrome", 8) for d in range(3)]}


async def _seed(config: Config, sites: dict) -> str:
    store = SQLiteStore(config.store.path)
    await store.open(config.policy)
    try:
        for day, rows in _rows(sites).items():
            await store.write(rows, Counter(), day)
        _, token = await analysts.add(store, config.policy, "alice", ("connection",))
        return token
    finally:
        await store.close()


def _collector(data_dir: Path, sites: dict) -> AbstractContextManager[Served]:
    return collector(data_dir, seed=lambda config: _seed(config, sites))


def _open(browser, served: Served, **context: object):
    ctx = browser.new_context(base_url=served.url, **context)
    ctx.add_init_script(CSP_WATCH)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: m.type == "error" and not m.text.startswith("Failed to load")
            and errors.append(m.text))  # fmt: skip
    stats: list[dict[str, list[str]]] = []
    page.on(
        "request",
        lambda r: "/api/v1/stats" in r.url and stats.append(parse_qs(urlsplit(r.url).query)),
    )
    page.goto("/dashboard")
    return ctx, page, errors, stats


def _pick(page, label: str) -> None:
    before = page.get_attribute("body", "data-loaded")
    page.select_option("#site", label=label)
    page.wait_for_selector(f'body:not([data-loaded="{before}"])', state="attached")


def _check_drawn(page, served: Served, query: dict[str, str]) -> None:
    """The chart's points and every list's rows are the API's answers to `query`."""
    series = served.stats(**query, by="day").json()
    drawn = _drawn_points(page)
    shown = [c for c in series["cells"] if c["values"] is not None]
    assert shown and len(drawn) == 2 * (30 - (len(series["cells"]) - len(shown)))
    for cell in shown:
        for metric in ("events", "visitors"):
            assert drawn[(cell["key"]["day"], metric)] == str(cell["values"][metric])
    for dim in LISTS:
        _check_list(page, served.stats(**query, by=dim).json(), dim)


def test_choosing_a_site_draws_the_apis_answer_for_that_site(data_dir: Path, browser) -> None:
    with _collector(data_dir, SEVERAL) as served:
        ctx, page, errors, stats = _open(browser, served)
        _log_in(page, served.token)
        query = {"purpose": "connection", "use": "statistics", "metric": "events,visitors"}
        query |= _range()
        assert page.is_visible("#site") and page.input_value("#site") == ""

        # the options: all sites, then the API's by=site cells in its order; suppressed: listed,
        # not choosable
        sites = served.stats(**query, by="site").json()["cells"]
        assert [c["key"]["site"] for c in sites] == [SHOP, BLOG, HOSTILE]  # the data as meant
        assert sites[2]["values"] is None
        options = page.eval_on_selector_all(
            "#site option", "os => os.map(o => [o.value, o.textContent, o.disabled])"
        )
        assert options == [
            ["", "All sites", False],
            [SHOP, SHOP, False],
            [BLOG, BLOG, False],
            [HOSTILE, f"{HOSTILE} (suppressed)", True],
        ]
        assert page.query_selector("#site img") is None
        assert page.evaluate("window.__pwned") is None
        assert page.get_by_label("Site").count() == 1  # labelled
        _check_drawn(page, served, query)  # all sites: no filter
        assert all("where" not in q for q in stats)

        # the blog: every panel's query filtered, every number the API's for it
        stats.clear()
        _pick(page, BLOG)
        blog = {**query, "where": f"site:{BLOG}"}
        _check_drawn(page, served, blog)
        assert len(stats) == 1 + len(LISTS)  # choosing a site does not ask for the sites again
        assert all(q["where"] == [f"site:{BLOG}"] for q in stats)
        browsers = {r["key"]: r for r in _drawn_list(page, "browser")}
        assert set(browsers) == {"Chrome", "Edge", "Safari"}  # the shop's Firefox is not here
        assert browsers["Safari"]["suppressed"] and browsers["Chrome"]["events"] == "21 events"
        with page.expect_download() as download:
            page.click("article[data-dimension=browser] button.csv")
        csv_bytes = Path(download.value.path()).read_bytes()
        assert csv_bytes == served.stats(**blog, by="browser", format="csv").content
        assert csv_bytes != served.stats(**query, by="browser", format="csv").content
        assert stats[-1]["where"] == [f"site:{BLOG}"] and stats[-1]["format"] == ["csv"]
        with page.expect_download() as download:
            page.click("#series-panel button.csv")
        series_csv = Path(download.value.path()).read_bytes()
        assert series_csv == served.stats(**blog, by="day", format="csv").content

        # a new range asks for the sites again and keeps the choice; back to all sites
        stats.clear()
        before = page.get_attribute("body", "data-loaded")
        page.click("#query button[type=submit]")
        page.wait_for_selector(f'body:not([data-loaded="{before}"])', state="attached")
        assert stats[0]["by"] == ["site"] and "where" not in stats[0]
        assert page.input_value("#site") == BLOG
        _check_drawn(page, served, blog)
        _pick(page, "All sites")
        _check_drawn(page, served, query)
        assert page.evaluate("window.__violations") == [] and errors == []
        ctx.close()


def test_with_one_site_the_selector_is_hidden(data_dir: Path, browser) -> None:
    with _collector(data_dir, ONE) as served:
        ctx, page, errors, stats = _open(browser, served)
        _log_in(page, served.token)
        assert not page.is_visible("#site") and page.is_hidden("#site-field")
        assert stats[0]["by"] == ["site"]
        assert all("where" not in q for q in stats)
        assert page.eval_on_selector_all("#chart .ct-point", "ps => ps.length") > 0
        assert page.evaluate("window.__violations") == [] and errors == []
        ctx.close()


def test_on_a_phone_a_long_site_name_overflows_nothing(data_dir: Path, browser) -> None:
    with _collector(data_dir, SEVERAL) as served:
        ctx, page, errors, _ = _open(
            browser, served, viewport={"width": 390, "height": 844}, device_scale_factor=3,
            is_mobile=True, has_touch=True,
        )  # fmt: skip
        _log_in(page, served.token)
        _pick(page, BLOG)
        assert page.is_visible("#site") and page.input_value("#site") == BLOG
        width = page.evaluate("document.documentElement.clientWidth")
        assert width == 390
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        wider = page.evaluate(
            """w => [...document.querySelectorAll('body *')]
                 .filter(e => e.getBoundingClientRect().right > w + 0.5)
                 .map(e => e.tagName + '#' + e.id + '.' + e.className)""",
            width,
        )
        assert wider == []
        assert page.evaluate("window.__violations") == [] and errors == []
        ctx.close()
