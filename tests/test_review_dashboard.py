"""Review of the analysts' dashboard (R2), in headless Chromium against the real collector under
uvicorn: the page works below a root_path (every request it makes stays under the prefix, none
carries the token in its URL or a Referer); a short 503 is retried and the analyst stays logged
in; a lasting one is shown and does not throw the token away; each CSV button says which
panel it downloads."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from playwright.sync_api import expect
from starlette.types import ASGIApp, Receive, Scope, Send
from test_dashboard_browser import CSP_WATCH, TOKEN_KEY, _log_in, collector

from veil.config import Config

PREFIX = "/veil-admin"
BUSY = {"type": "about:blank", "title": "Not ready", "detail": "veil's store is not open yet"}


def _below(prefix: str, app: ASGIApp) -> ASGIApp:
    """`app` mounted at `prefix`, as a proxy with `uvicorn --root-path` or a Mount presents it:
    the full path in `path`, the prefix in `root_path`."""

    async def mounted(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            assert scope["path"].startswith(prefix + "/"), scope["path"]
            scope = {**scope, "root_path": prefix}
        await app(scope, receive, send)

    return mounted


@contextmanager
def _serve(data_dir: Path, prefix: str = "") -> Iterator[tuple[str, str, Config]]:
    wrap = (lambda app: _below(prefix, app)) if prefix else None
    with collector(data_dir, wrap=wrap) as served:
        yield served.url, served.token, served.config


def _page(browser, url: str):
    ctx = browser.new_context(base_url=url)
    ctx.add_init_script(CSP_WATCH)
    return ctx, ctx.new_page()


def test_the_dashboard_works_below_a_root_path(data_dir: Path, browser) -> None:
    with _serve(data_dir, PREFIX) as (url, token, _):
        ctx, page = _page(browser, url)
        requests: list[tuple[str, int, str | None]] = []
        page.on(
            "requestfinished",
            lambda r: requests.append((r.url, r.response().status, r.headers.get("referer"))),
        )
        page.goto(f"{PREFIX}/dashboard")
        _log_in(page, token)
        assert page.is_visible("#board") and page.text_content("#who") == "alice · k = 5"
        assert page.text_content("#status") == ""  # every panel loaded
        assert page.eval_on_selector_all("#chart .ct-point", "ps => ps.length") > 0
        paths = [u.removeprefix(url) for u, _, _ in requests]
        assert all(p.startswith(PREFIX + "/") for p in paths), paths
        assert any(p.startswith(f"{PREFIX}/api/v1/stats?") for p in paths)
        assert [r for r in requests if r[1] >= 400] == []
        # the token travels in the Authorization header only: no URL, no Referer holds it
        assert not any(token in u for u, _, _ in requests)
        assert [r for r in requests if r[2]] == []  # Chromium reports an unsent one as ""
        assert page.evaluate("window.__violations") == []
        ctx.close()


def test_a_short_503_is_retried_and_the_analyst_stays_logged_in(data_dir: Path, browser) -> None:
    with _serve(data_dir) as (url, token, _):
        ctx, page = _page(browser, url)
        refused: list[str] = []

        def busy_once(route) -> None:
            if refused:
                route.continue_()
                return
            refused.append(route.request.url)
            route.fulfill(
                status=503,
                headers={"Retry-After": "1", "Cache-Control": "no-store"},
                content_type="application/problem+json",
                json=BUSY,
            )

        page.route("**/api/v1/me", busy_once)
        page.goto("/dashboard")
        _log_in(page, token)
        assert len(refused) == 1
        assert page.is_visible("#board") and not page.is_visible("#login")
        assert page.evaluate(f"sessionStorage.getItem({TOKEN_KEY!r})") == token
        ctx.close()


def test_a_lasting_503_is_shown_and_the_token_kept(data_dir: Path, browser) -> None:
    with _serve(data_dir) as (url, token, _):
        ctx, page = _page(browser, url)
        page.route(
            "**/api/v1/me",
            lambda route: route.fulfill(
                status=503,
                headers={"Retry-After": "300"},  # veil not collecting: no point waiting
                content_type="application/problem+json",
                json=BUSY,
            ),
        )
        page.goto("/dashboard")
        page.fill("#token", token)
        page.click("#login-form button[type=submit]")
        page.wait_for_selector("#login-error:not([hidden])")
        assert page.text_content("#login-error") == f"Could not load: {BUSY['detail']}"
        assert page.evaluate(f"sessionStorage.getItem({TOKEN_KEY!r})") == token
        page.unroute("**/api/v1/me")
        page.reload()  # the kept token: a reload is the retry
        page.wait_for_selector("body[data-loaded]", state="attached")
        assert page.is_visible("#board")
        ctx.close()


def test_each_csv_button_names_its_panel(data_dir: Path, browser) -> None:
    with _serve(data_dir) as (url, token, _):
        ctx, page = _page(browser, url)
        page.goto("/dashboard")
        _log_in(page, token)
        names = page.eval_on_selector_all(
            "button.csv", "bs => bs.map(b => b.getAttribute('aria-label'))"
        )
        assert len(names) == 7 and len(set(names)) == 7 and None not in names
        assert "Download Browsers as CSV" in names
        assert page.get_by_role("button", name="Download Countries as CSV").count() == 1
        ctx.close()


def test_a_range_longer_than_a_year_is_refused_not_drawn(data_dir: Path, browser) -> None:
    # a point a day: from 1900 the series would draw ~46,000 points and hang the tab
    with _serve(data_dir) as (url, token, _):
        ctx, page = _page(browser, url)
        page.goto("/dashboard")
        _log_in(page, token)
        points = page.eval_on_selector_all("#chart .ct-point", "ps => ps.length")
        stats: list[str] = []
        page.on("request", lambda r: stats.append(r.url) if "/api/v1/stats" in r.url else None)
        page.fill("#since", "1900-01-01")
        page.click("#query button[type=submit]")
        expect(page.locator("#status")).to_contain_text("at most 366 days")
        assert stats == []  # nothing asked of the API
        assert page.eval_on_selector_all("#chart .ct-point", "ps => ps.length") == points
        # a year is fine
        page.fill("#since", page.input_value("#until")[:4] + "-01-01")
        page.click("#query button[type=submit]")
        expect(page.locator("#status")).to_have_text("")
        assert stats
        ctx.close()


def test_the_dashboards_files_are_revalidated_not_sent_again(data_dir: Path) -> None:
    with _serve(data_dir) as (url, _, _):
        first = httpx.get(f"{url}/dashboard/chartist.js")
        assert first.status_code == 200 and first.headers["cache-control"] == "no-cache"
        again = httpx.get(
            f"{url}/dashboard/chartist.js", headers={"If-None-Match": first.headers["etag"]}
        )
        assert again.status_code == 304 and again.content == b""
        other = httpx.get(f"{url}/dashboard/dashboard.js", headers={"If-None-Match": '"x"'})
        assert other.status_code == 200 and other.headers["etag"] != first.headers["etag"]
