"""Synthetic but realistic request traffic for the benchmarks (deterministic for a given seed).

- ~200 distinct user-agents drawn Zipf-like (a few browsers dominate, a long tail, a few bots);
- client addresses behind a trusted proxy (X-Forwarded-For), mostly IPv4, some IPv6;
- a handful of Accept-Language headers.
"""

import itertools
import os
import random
import tempfile
from collections.abc import Iterator
from pathlib import Path

PROXY = "10.0.0.1"  # the socket peer; listed in proxy.trusted, so X-Forwarded-For is read
MASTER_KEY = "5e" * 32

_PLATFORMS = {
    "chrome": ["Windows NT 10.0; Win64; x64", "Macintosh; Intel Mac OS X 10_15_7",
               "X11; Linux x86_64", "Linux; Android 14; Pixel 8", "Linux; Android 13; SM-S911B",
               "Linux; Android 12; M2101K6G"],
    "firefox": ["Windows NT 10.0; Win64; x64; rv:{v}.0", "Macintosh; Intel Mac OS X 14.4; rv:{v}.0",
                "X11; Ubuntu; Linux x86_64; rv:{v}.0", "Android 14; Mobile; rv:{v}.0"],
    "safari": ["Macintosh; Intel Mac OS X 10_15_7", "iPhone; CPU iPhone OS 17_{m} like Mac OS X",
               "iPad; CPU OS 16_{m} like Mac OS X"],
    "edge": ["Windows NT 10.0; Win64; x64"],
}
_BOTS = [
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
]
ACCEPT_LANGUAGES = [
    b"en-US,en;q=0.9", b"de-DE,de;q=0.9,en-US;q=0.8,en;q=0.7", b"en-GB,en;q=0.9",
    b"fr-FR,fr;q=0.9,en;q=0.5", b"ja,en-US;q=0.9,en;q=0.8", b"es-ES,es;q=0.9",
    b"pt-BR,pt;q=0.9,en-US;q=0.8", b"de-CH, de;q=0.9, en-US;q=0.8", b"zh-CN,zh;q=0.9", b"",
]


def _agent(browser: str, platform: str, v: int, m: int) -> str:
    platform = platform.format(v=v, m=m)
    webkit = "AppleWebKit/537.36 (KHTML, like Gecko)"
    if browser == "chrome":
        mobile = " Mobile" if "Android" in platform else ""
        return f"Mozilla/5.0 ({platform}) {webkit} Chrome/{v}.0.0.0{mobile} Safari/537.36"
    if browser == "edge":
        return f"Mozilla/5.0 ({platform}) {webkit} Chrome/{v}.0.0.0 Safari/537.36 Edg/{v}.0.{m}.0"
    if browser == "firefox":
        return f"Mozilla/5.0 ({platform}) Gecko/20100101 Firefox/{v}.0"
    mobile = " Mobile/15E148" if "like Mac OS X" in platform else ""
    return (f"Mozilla/5.0 ({platform}) AppleWebKit/605.1.15 (KHTML, like Gecko) "
            f"Version/{v - 100}.{m} Safari/605.1.15{mobile}")


def user_agents(n: int = 200) -> list[bytes]:
    """`n` distinct user-agent headers, most popular first; ranks 5, 40 and 120 are bots."""
    out: list[str] = []
    versions = itertools.cycle(range(130, 110, -1))
    while len(out) < n:
        v = next(versions)
        for browser, platforms in _PLATFORMS.items():
            for platform in platforms:
                ua = _agent(browser, platform, v, v % 7)
                if ua not in out:
                    out.append(ua)
    out = out[: n - len(_BOTS)]
    for rank, bot in zip((5, 40, 120), _BOTS, strict=True):
        out.insert(min(rank, len(out)), bot)
    return [ua.encode() for ua in out[:n]]


def zipf_weights(n: int, s: float = 1.1) -> list[float]:
    return [1 / (rank ** s) for rank in range(1, n + 1)]


def client_ip(rng: random.Random) -> str:
    if rng.random() < 0.1:
        a, b, c = rng.randrange(65536), rng.randrange(65536), rng.randrange(1, 65536)
        return f"2001:db8:{a:x}:{b:x}::{c:x}"
    a, b = rng.randrange(1, 224), rng.randrange(256)
    c, d = rng.randrange(256), rng.randrange(1, 255)
    return f"{a}.{b}.{c}.{d}"


def request_scope(agent: bytes, ip: str, language: bytes, port: int) -> dict:
    """An ASGI HTTP scope as uvicorn builds it for `GET /` arriving through our proxy."""
    headers = [
        (b"host", b"shop.example.org"),
        (b"user-agent", agent),
        (b"accept", b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
        (b"accept-encoding", b"gzip, deflate, br"),
        (b"x-forwarded-for", ip.encode()),
        (b"x-forwarded-proto", b"https"),
        (b"connection", b"keep-alive"),
    ]
    if language:
        headers.insert(3, (b"accept-language", language))
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "http_version": "1.1",
        "method": "GET", "scheme": "http", "path": "/", "raw_path": b"/", "root_path": "",
        "query_string": b"", "headers": headers, "client": (PROXY, port),
        "server": ("10.0.0.2", 8000), "state": {},
    }


def requests(n: int, seed: int = 1, distinct_agents: int = 200) -> Iterator[dict]:
    """`n` request scopes with Zipf-distributed user-agents and varied client addresses."""
    rng = random.Random(seed)
    agents = user_agents(distinct_agents)
    for agent in rng.choices(agents, weights=zipf_weights(len(agents)), k=n):
        yield request_scope(agent, client_ip(rng), rng.choice(ACCEPT_LANGUAGES),
                            rng.randrange(1024, 65536))


def scopes(n: int, seed: int = 1, distinct_agents: int = 200) -> list[dict]:
    return list(requests(n, seed, distinct_agents))


def veil_config(overrides: dict | None = None):
    """A config in a fresh temporary directory, trusting our proxy, with a fixed master key."""
    from veil.config import from_dict

    os.environ.setdefault("VEIL_MASTER_KEY", MASTER_KEY)
    tmp = Path(tempfile.mkdtemp(prefix="veil-bench-"))
    data = {"store": {"url": f"sqlite:///{tmp}/veil.db"}, "keys": {"path": f"{tmp}/keys.db"},
            "query": {"min_group_size": 5}, "proxy": {"trusted": [PROXY]}}
    for key, value in (overrides or {}).items():
        data[key] = {**data.get(key, {}), **value}
    return from_dict(data, base=tmp), tmp
