"""The lean pipeline's caches change nothing (issue 9, must hold): one captured stream through
the pipeline with every cache off, cold and warm gives the same rows, drops and withdrawals
(event ids aside, which are random per batch)."""

import time

from veil import caches
from veil.capture import Captured, VeilCookies
from veil.consent import ConsentRecord
from veil.pipeline import ROW_COLUMNS, ConsentView, Drop, Processed

from conftest import CHROME, FIREFOX, GOOGLEBOT, SAFARI_IPHONE

NOW = time.time()
BEACON = {"screen_w": 1366, "screen_h": 768, "pixel_ratio": 1.25, "language": "fr-CA"}
COOKIE, SUBJECT = "cookie-1", "subject-1"


def request(
    peer: str | None = "198.51.100.7",
    port: int | None = 50123,
    agent: str = CHROME,
    language: bytes = b"de-CH,en;q=0.5",
    forwarded: bytes = b"",
    host: bytes = b"shop.example",
    *,
    purpose: str = "connection",
    ts: float = NOW,
    gpc: bytes | None = None,
    beacon: dict | None = None,
    cookies: VeilCookies | None = None,
) -> Captured:
    return Captured(
        purpose,
        ts,
        peer,
        port,
        agent.encode(),
        language,
        gpc,
        b"1" if gpc is None and port == 7 else None,
        forwarded,
        host,
        beacon,
        None if beacon else "/pricing?plan=pro",
        cookies,
    )


def stream() -> list[Captured]:
    """Bots, unresolvable clients, proxied chains, repeated and distinct agents and languages,
    beacons, a destroyed day, an unknown purpose, an unreadable event, and a subject whose
    consent fans a request out (and whose GPC withdraws it)."""
    agents = [CHROME, FIREFOX, SAFARI_IPHONE, *(f"{CHROME} Extra/{i}" for i in range(5))]
    languages = [b"de-CH,en;q=0.5", b"en;q=0.2, ja", b"", b"*, x-klingon", b"fr-FR,fr;q=0.9"]
    out = []
    for i in range(60):
        out.append(
            request(
                peer=f"198.51.100.{i % 7 + 1}",
                port=i % 3 and 40000 + i,  # 0: an unknown port
                agent=agents[i % len(agents)],
                language=languages[i % len(languages)],
                host=(b"shop.example", b"Shop.Example:8443", b"<script>", b"")[i % 4],
            )
        )
        # behind the trusted proxy: a port beside the client's address, IPv6, a spoofed hop
        out.append(request("10.0.0.2", 443, forwarded=f"203.0.113.{i % 5}:{4000 + i}".encode()))
        out.append(request("10.0.0.2", 443, forwarded=b"6.6.6.6, [2001:db8:1::5]:443, 10.0.0.1"))
        out.append(request("10.0.0.2", 443, forwarded=b"10.0.0.9, 10.0.0.1", agent=FIREFOX))
        out.append(request("::ffff:203.0.113.9", 7, beacon=BEACON))
        out.append(request(beacon=BEACON, purpose="browsing_history"))
    out += [
        request(agent=GOOGLEBOT),
        request(peer=None),
        request(peer="1.2.3"),
        request("10.0.0.2", 443, forwarded=b"garbage"),
        request(ts=NOW - 5 * 86400),
        request(purpose="no-such-purpose"),
        request()._replace(agent=12345),
        request(cookies=VeilCookies(COOKIE, None)),
        request(cookies=VeilCookies(COOKIE, None), gpc=b"1"),
        request(cookies=VeilCookies("unknown", "browsing_history")),
    ]
    return out * 3  # again and again: warm caches answer the repeats


def granted() -> ConsentView:
    grant = ConsentRecord(
        NOW - 60, SUBJECT, "browsing_history", "grant", "banner", True, False, "1.0", "strictest"
    )
    return ConsentView({COOKIE: SUBJECT}, {SUBJECT: [grant]})


def without_ids(done: Processed) -> tuple:
    event_id = ROW_COLUMNS.index("event_id")
    rows = [r[:event_id] + r[event_id + 1 :] for r in done.rows]
    return rows, dict(done.drops), done.withdrawals


def test_rows_and_drops_are_the_same_with_caches_off_cold_and_warm(pipeline_for):
    pipeline = pipeline_for(proxy={"trusted": ["10.0.0.0/8"]})
    captured = stream()
    with caches.disabled():
        off = without_ids(pipeline.process(captured, granted()))
    caches.clear_all()
    cold = without_ids(pipeline.process(captured, granted()))
    warm = without_ids(pipeline.process(captured, granted()))
    assert off == cold == warm
    rows, drops, withdrawals = off
    # the stream reached every branch the caches sit on
    assert drops == {
        Drop.BOT: 3,
        Drop.INVALID_CLIENT: 9,
        Drop.KEY_DESTROYED: 3,
        Drop.UNKNOWN_PURPOSE: 3,
        Drop.INVALID_EVENT: 3,
    }
    assert len(rows) == 3 * (6 * 60 + 3 + 1)  # + the subject's fanned-out row, once
    named = [dict(zip([c for c in ROW_COLUMNS if c != "event_id"], r, strict=True)) for r in rows]
    seen = {name: {r[name] for r in named} for name in named[0]}
    assert withdrawals and seen["subject"] == {None, SUBJECT}
    assert {"shop.example", None} <= seen["site"] and len(seen["browser"]) >= 3
    assert {"de", "ja", None} <= seen["language"] and {"JP", "DE", "US"} <= seen["country"]
