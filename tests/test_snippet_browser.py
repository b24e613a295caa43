"""veil.js in a real headless Chromium against a real HTTP server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from browser_support import (
    GPC_ON,
    LOCALE,
    PIXEL_RATIO,
    SCREEN,
    STALE_CONSENT,
    LiveServer,
    Visitor,
    launch_chromium,
)

BEACON = "/veil/e"
CONSENT = "/veil/consent"
DEVICE = {
    "screen_w": SCREEN["width"],
    "screen_h": SCREEN["height"],
    "pixel_ratio": PIXEL_RATIO,
    "language": LOCALE,
}
GRANT = {"grant": ["browsing_history"]}

DNT_ON = "Object.defineProperty(navigator, 'doNotTrack', {get: () => '1'})"
STORAGE_THROWS = """
for (const name of ['localStorage', 'sessionStorage'])
  Object.defineProperty(window, name, {get() {
    throw new DOMException('The document is sandboxed', 'SecurityError');
  }});
"""


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    with LiveServer() as live:
        yield live


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launch_chromium() as chromium:
        yield chromium


@pytest.fixture
def visitor(browser: Any, server: LiveServer) -> Iterator[Callable[..., Visitor]]:
    """Makes visitors; every page of the test must end without an uncaught error."""
    server.recorder.clear()
    made: list[Visitor] = []

    def make(*init_scripts: str) -> Visitor:
        made.append(Visitor(browser, server.url, *init_scripts))
        return made[-1]

    yield make
    for v in made:
        v.close()
    assert [e for v in made for e in v.errors] == []


def bodies(server: LiveServer, path: str, count: int) -> list[Any]:
    return [p.body for p in server.recorder.wait(path, count)]


def test_page_load_sends_one_beacon_with_real_device_data(visitor, server):
    v = visitor()
    v.open("/")
    v.push("/?tab=2")  # same path: not a new page view
    [post] = server.recorder.wait(BEACON, 1)
    assert post.body == DEVICE
    assert type(post.body["screen_w"]) is int and type(post.body["screen_h"]) is int
    assert post.content_type.startswith("text/plain")
    assert server.recorder.wait(CONSENT, 0) == []


def test_no_cookie_or_storage_without_consent(visitor, server):
    v = visitor()
    v.open("/")
    v.push("/a")
    v.push("/b")
    v.js("history.back()")  # popstate back to /a
    assert bodies(server, BEACON, 4) == [DEVICE] * 4
    assert v.js("document.cookie") == ""
    assert v.js("[localStorage.length, sessionStorage.length]") == [0, 0]
    assert v.context.cookies() == []


def test_consent_adds_path_until_opt_out(visitor, server):
    v = visitor()
    v.open("/")
    v.js("veil.consent(['browsing_history'])")
    assert bodies(server, CONSENT, 1) == [GRANT]
    assert v.js("JSON.parse(localStorage.veil_consent)") == {
        "p": ["browsing_history"],
        "gpc": False,
    }

    v.push("/docs/intro")
    v.page.reload()  # the stored consent is honoured on the next page load
    assert bodies(server, BEACON, 3) == [
        DEVICE,
        {**DEVICE, "path": "/docs/intro"},
        {**DEVICE, "path": "/docs/intro"},
    ]

    server.recorder.clear()
    v.js("veil.optOut()")
    assert bodies(server, CONSENT, 1) == [{"withdraw": "all"}]
    assert v.js("localStorage.length") == 0
    v.push("/after")
    v.page.reload()
    assert bodies(server, BEACON, 2) == [DEVICE, DEVICE]


@pytest.mark.parametrize("signal", [GPC_ON, DNT_ON], ids=["gpc", "dnt"])
def test_privacy_signal_overrides_earlier_consent_but_not_a_later_one(visitor, server, signal):
    v = visitor(signal)
    v.open("/")
    v.js(STALE_CONSENT)  # granted before the signal was switched on
    v.page.reload()
    v.push("/a")
    assert bodies(server, BEACON, 3) == [DEVICE] * 3

    server.recorder.clear()
    v.js("veil.consent(['browsing_history'])")  # explicit consent while the signal is on
    assert bodies(server, CONSENT, 1) == [GRANT]
    assert v.js("JSON.parse(localStorage.veil_consent).gpc") is True
    v.push("/b")
    v.page.reload()
    assert bodies(server, BEACON, 2) == [{**DEVICE, "path": "/b"}] * 2


def test_throwing_storage_breaks_nothing(visitor, server):
    v = visitor(STORAGE_THROWS)
    v.open("/")
    v.js("veil.consent(['browsing_history'])")  # kept in memory only
    v.push("/a")
    v.js("veil.optOut()")
    v.push("/b")
    assert bodies(server, BEACON, 3) == [DEVICE, {**DEVICE, "path": "/a"}, DEVICE]
    assert bodies(server, CONSENT, 2) == [GRANT, {"withdraw": "all"}]


@pytest.mark.parametrize(
    "stub",
    [
        "delete Navigator.prototype.sendBeacon",
        "Navigator.prototype.sendBeacon = () => false",  # queue full
    ],
    ids=["missing", "refused"],
)
def test_fetch_fallback_when_send_beacon_unavailable(visitor, server, stub):
    v = visitor(stub)
    v.open("/")
    v.js("veil.consent(['browsing_history'])")
    [post] = server.recorder.wait(BEACON, 1)
    assert post.body == DEVICE
    assert post.content_type == "text/plain"
    assert bodies(server, CONSENT, 1) == [GRANT]


def test_endpoint_attributes(visitor, server):
    v = visitor()
    v.open("/custom/page")
    v.js("veil.consent(['browsing_history'])")
    assert bodies(server, "/collect/e", 1) == [DEVICE]
    assert bodies(server, "/collect/consent", 1) == [GRANT]
    assert server.recorder.wait(BEACON, 0) == []


def test_default_endpoint_follows_script_origin(visitor, server):
    v = visitor()
    v.open("/cross/page")  # page on 127.0.0.1, script from localhost
    [post] = server.recorder.wait(BEACON, 1)
    assert post.host.startswith("localhost:")
    assert post.body == DEVICE


def test_loading_twice_counts_once(visitor, server):
    v = visitor()
    v.open("/")
    v.page.add_script_tag(url="/veil/veil.js")
    v.push("/a")
    assert bodies(server, BEACON, 2) == [DEVICE, DEVICE]


# Item 9 of issue 8: the snippet reads the server's consent state instead of guessing it.


def test_first_visit_reads_no_saved_consent_without_throwing(visitor, server):
    # A swallowed TypeError (JSON.parse(null).p) is invisible to the page: the debugger sees
    # every exception thrown in veil.js, caught or not.
    v = visitor()
    scripts: dict[str, str] = {}
    thrown: list[str] = []
    cdp = v.context.new_cdp_session(v.page)

    def paused(event: dict) -> None:
        if scripts.get(event["callFrames"][0]["location"]["scriptId"], "").endswith("/veil.js"):
            thrown.append(event.get("data", {}).get("description", "?"))
        cdp.send("Debugger.resume")

    cdp.on("Debugger.scriptParsed", lambda e: scripts.__setitem__(e["scriptId"], e["url"]))
    cdp.on("Debugger.paused", paused)
    cdp.send("Debugger.enable")
    cdp.send("Debugger.setPauseOnExceptions", {"state": "all"})
    v.open("/")
    v.push("/a")
    v.js("veil.record('plan', {tier: 'free'})")
    assert bodies(server, BEACON, 2) == [DEVICE, DEVICE]
    assert thrown == []


def test_never_consented_visit_sends_only_beacons(visitor, server):
    v = visitor()
    requests: list[tuple[str, str]] = []
    v.page.on("request", lambda r: requests.append((r.method, r.url.split("/", 3)[3])))
    v.open("/")
    v.push("/a")
    assert bodies(server, BEACON, 2) == [DEVICE, DEVICE]
    assert requests == [
        ("GET", ""),
        ("GET", "veil/veil.js"),
        ("POST", "veil/e"),
        ("POST", "veil/e"),
    ]


def test_path_follows_the_purposes_the_server_says_collect_it(visitor, server):
    v = visitor()
    v.open("/")
    v.js("veil.consent(['newsletter'])")  # consent-based, but it does not collect the path
    v.push("/a")
    assert v.js("localStorage.length") == 0
    v.js("veil.consent('journeys')")  # collects the path, and is not called browsing_history
    v.push("/b")
    assert bodies(server, BEACON, 3) == [DEVICE, DEVICE, {**DEVICE, "path": "/b"}]
    assert bodies(server, CONSENT, 2) == [{"grant": ["newsletter"]}, {"grant": ["journeys"]}]
    assert v.js("JSON.parse(localStorage.veil_consent)") == {"p": ["journeys"], "gpc": False}


def test_a_later_consent_keeps_the_earlier_grants(visitor, server):
    v = visitor()
    v.open("/")
    v.js("veil.consent(['browsing_history'])")
    v.js("veil.consent(['newsletter'])")  # the server still holds browsing_history
    v.push("/a")
    v.page.reload()
    assert bodies(server, BEACON, 3) == [DEVICE, {**DEVICE, "path": "/a"}, {**DEVICE, "path": "/a"}]
    assert v.js("JSON.parse(localStorage.veil_consent).p") == ["browsing_history"]


def test_a_refused_grant_changes_nothing_locally(visitor, server):
    v = visitor()
    v.open("/")
    v.js("veil.consent(['no_such_purpose'])")  # the server answers 400
    v.push("/a")
    assert v.js("localStorage.length") == 0
    v.js("veil.consent(['browsing_history'])")
    v.js("veil.consent(['no_such_purpose'])")
    v.push("/b")
    assert bodies(server, BEACON, 3) == [DEVICE, DEVICE, {**DEVICE, "path": "/b"}]
    assert v.js("JSON.parse(localStorage.veil_consent).p") == ["browsing_history"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", "/veil/record"),
        ("?data-endpoint=/beacons/v1", "/veil/record"),  # beside the script, not the beacon
        ("?data-endpoint=/collect/e&data-record-endpoint=/collect/fields", "/collect/fields"),
    ],
    ids=["default", "beacon-elsewhere", "attribute"],
)
def test_record_endpoint(visitor, server, query, expected):
    v = visitor()
    v.open(f"/attrs/page{query}")
    v.js("veil.record('plan', {tier: 'free'})")
    assert bodies(server, expected, 1) == [{"purpose": "plan", "fields": {"tier": "free"}}]
