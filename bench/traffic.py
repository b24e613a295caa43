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
from dataclasses import dataclass
from pathlib import Path

PROXY = "10.0.0.1"  # the socket peer; listed in proxy.trusted, so X-Forwarded-For is read
MASTER_KEY = "5e" * 32

_PLATFORMS = {
    "chrome": [
        "Windows NT 10.0; Win64; x64",
        "Macintosh; Intel Mac OS X 10_15_7",
        "X11; Linux x86_64",
        "Linux; Android 14; Pixel 8",
        "Linux; Android 13; SM-S911B",
        "Linux; Android 12; M2101K6G",
    ],
    "firefox": [
        "Windows NT 10.0; Win64; x64; rv:{v}.0",
        "Macintosh; Intel Mac OS X 14.4; rv:{v}.0",
        "X11; Ubuntu; Linux x86_64; rv:{v}.0",
        "Android 14; Mobile; rv:{v}.0",
    ],
    "safari": [
        "Macintosh; Intel Mac OS X 10_15_7",
        "iPhone; CPU iPhone OS 17_{m} like Mac OS X",
        "iPad; CPU OS 16_{m} like Mac OS X",
    ],
    "edge": ["Windows NT 10.0; Win64; x64"],
}
_BOTS = [
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
]
ACCEPT_LANGUAGES = [
    b"en-US,en;q=0.9",
    b"de-DE,de;q=0.9,en-US;q=0.8,en;q=0.7",
    b"en-GB,en;q=0.9",
    b"fr-FR,fr;q=0.9,en;q=0.5",
    b"ja,en-US;q=0.9,en;q=0.8",
    b"es-ES,es;q=0.9",
    b"pt-BR,pt;q=0.9,en-US;q=0.8",
    b"de-CH, de;q=0.9, en-US;q=0.8",
    b"zh-CN,zh;q=0.9",
    b"",
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
    return (
        f"Mozilla/5.0 ({platform}) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        f"Version/{v - 100}.{m} Safari/605.1.15{mobile}"
    )


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
    return [1 / (rank**s) for rank in range(1, n + 1)]


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
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": (PROXY, port),
        "server": ("10.0.0.2", 8000),
        "state": {},
    }


def requests(n: int, seed: int = 1, distinct_agents: int = 200) -> Iterator[dict]:
    """`n` request scopes with Zipf-distributed user-agents and varied client addresses."""
    rng = random.Random(seed)
    agents = user_agents(distinct_agents)
    for agent in rng.choices(agents, weights=zipf_weights(len(agents)), k=n):
        yield request_scope(
            agent, client_ip(rng), rng.choice(ACCEPT_LANGUAGES), rng.randrange(1024, 65536)
        )


def scopes(n: int, seed: int = 1, distinct_agents: int = 200) -> list[dict]:
    return list(requests(n, seed, distinct_agents))


def veil_config(overrides: dict | None = None):
    """A config in a fresh temporary directory, trusting our proxy, with a fixed master key."""
    from veil.config import from_dict

    os.environ.setdefault("VEIL_MASTER_KEY", MASTER_KEY)
    tmp = Path(tempfile.mkdtemp(prefix="veil-bench-"))
    data = {
        "store": {"url": f"sqlite:///{tmp}/veil.db"},
        "keys": {"path": f"{tmp}/keys.db"},
        "query": {"min_group_size": 5},
        "proxy": {"trusted": [PROXY]},
    }
    for key, value in (overrides or {}).items():
        data[key] = {**data.get(key, {}), **value}
    return from_dict(data, base=tmp), tmp


# -- The same people, returning ------------------------------------------------------------
#
# `requests()` above draws every request independently: right for throughput, useless for
# asking whether one person's days can be linked. What follows models a population instead:
# each person has a home (country, region, ISP), a network that mostly stays the same from
# day to day (fixed line: the household's address, shared by the household; office: one
# address for many colleagues; mobile: a carrier's CGNAT pool, a different address each visit),
# one device (user-agent, screen, pixel ratio), one Accept-Language, GPC/DNT or not, and a
# habit (daily, regular or one-off). Each visit is 1-6 page views; each page view is a request
# the middleware captures and a beacon from the snippet, as on a real site. Address plan, in a
# MaxMind database `geo_database` writes: fixed-line and office ISPs one /16 (and one IPv6 /32)
# per region, mobile carriers one /16 per country.

# country: (weight, regions, [(Accept-Language, weight)])
COUNTRIES: dict[str, tuple[float, tuple[str, ...], list[tuple[bytes, float]]]] = {
    "US": (
        30,
        ("CA", "NY", "TX", "FL", "WA", "IL"),
        [(b"en-US,en;q=0.9", 85), (b"es-US,es;q=0.9,en;q=0.8", 10), (b"en-US", 5)],
    ),
    "DE": (
        14,
        ("BE", "BY", "NW", "HH"),
        [
            (b"de-DE,de;q=0.9,en-US;q=0.8,en;q=0.7", 50),
            (b"de-DE,de;q=0.9", 20),
            (b"de,en-US;q=0.7,en;q=0.3", 15),
            (b"en-US,en;q=0.9", 15),
        ],
    ),
    "GB": (
        9,
        ("ENG", "SCT", "WLS"),
        [(b"en-GB,en;q=0.9", 80), (b"en-GB,en-US;q=0.9,en;q=0.8", 20)],
    ),
    "FR": (
        8,
        ("IDF", "ARA", "OCC"),
        [
            (b"fr-FR,fr;q=0.9,en-US;q=0.8,en;q=0.7", 60),
            (b"fr-FR,fr;q=0.9,en;q=0.5", 30),
            (b"en-US,en;q=0.9", 10),
        ],
    ),
    "JP": (8, ("13", "27", "14"), [(b"ja,en-US;q=0.9,en;q=0.8", 60), (b"ja-JP", 40)]),
    "BR": (
        6,
        ("SP", "RJ"),
        [(b"pt-BR,pt;q=0.9,en-US;q=0.8,en;q=0.7", 90), (b"en-US,en;q=0.9", 10)],
    ),
    "ES": (
        5,
        ("MD", "CT"),
        [
            (b"es-ES,es;q=0.9", 70),
            (b"ca-ES,ca;q=0.9,es;q=0.8", 15),
            (b"es-ES,es;q=0.9,en;q=0.8", 15),
        ],
    ),
    "IN": (
        5,
        ("MH", "KA", "DL"),
        [(b"en-IN,en;q=0.9", 60), (b"en-US,en;q=0.9", 25), (b"hi-IN,hi;q=0.9,en;q=0.8", 15)],
    ),
    "CA": (4, ("ON", "QC", "BC"), [(b"en-CA,en;q=0.9", 70), (b"fr-CA,fr;q=0.9,en;q=0.8", 30)]),
    "NL": (
        3,
        ("NH", "ZH"),
        [(b"nl-NL,nl;q=0.9,en-US;q=0.8,en;q=0.7", 80), (b"en-US,en;q=0.9", 20)],
    ),
    "CH": (2, ("ZH", "GE"), [(b"de-CH,de;q=0.9,en;q=0.8", 60), (b"fr-CH,fr;q=0.9,en;q=0.8", 40)]),
}
_COUNTRY_INDEX = {c: i for i, c in enumerate(COUNTRIES)}

# Screens in CSS pixels by device class, most common first (desktop after StatCounter's shares;
# the long tail of desktop sizes is what display scaling makes of common panels).
SCREENS: dict[str, list[tuple[tuple[int, int], float]]] = {
    "desktop": [
        ((1920, 1080), 23),
        ((1536, 864), 10),
        ((1366, 768), 9),
        ((1280, 720), 5),
        ((2560, 1440), 4),
        ((1600, 900), 3),
        ((1440, 900), 3),
        ((1280, 1024), 2),
        ((1680, 1050), 2),
        ((1920, 1200), 2),
        ((1280, 800), 2),
        ((1360, 768), 1.5),
        ((3440, 1440), 1),
        ((2560, 1080), 1),
        ((1024, 768), 1),
        ((1707, 1067), 1),
        ((1745, 982), 0.7),
        ((2048, 1152), 0.7),
        ((1829, 1029), 0.6),
        ((1600, 1200), 0.5),
        ((1920, 1280), 0.5),
        ((2195, 1235), 0.4),
        ((1396, 786), 0.4),
        ((3840, 2160), 0.4),
        ((1517, 853), 0.3),
        ((1821, 1024), 0.3),
        ((2400, 1350), 0.2),
        ((1093, 615), 0.2),
    ],
    "mac": [
        ((1440, 900), 25),
        ((1512, 982), 20),
        ((1728, 1117), 12),
        ((1470, 956), 12),
        ((1680, 1050), 8),
        ((1920, 1080), 8),
        ((2560, 1440), 6),
        ((1280, 800), 5),
        ((1792, 1120), 2),
        ((2240, 1260), 1),
        ((1800, 1169), 1),
    ],
    "android": [
        ((412, 915), 20),
        ((360, 800), 18),
        ((384, 854), 10),
        ((393, 873), 10),
        ((360, 780), 8),
        ((412, 892), 8),
        ((393, 851), 7),
        ((360, 760), 5),
        ((385, 854), 4),
        ((412, 846), 4),
        ((411, 891), 3),
        ((480, 1040), 2),
        ((400, 889), 1),
    ],
    "iphone": [
        ((390, 844), 30),
        ((393, 852), 18),
        ((414, 896), 14),
        ((375, 667), 10),
        ((428, 926), 9),
        ((430, 932), 8),
        ((375, 812), 8),
        ((320, 568), 2),
        ((402, 874), 1),
    ],
    "ipad": [
        ((820, 1180), 35),
        ((810, 1080), 25),
        ((768, 1024), 20),
        ((1024, 1366), 12),
        ((834, 1194), 8),
    ],
}
_RATIOS = {
    "desktop": [(1.0, 60), (1.25, 20), (1.5, 15), (2.0, 5)],
    "mac": [(2.0, 90), (1.0, 10)],
    "android": [(2.625, 35), (2.75, 25), (3.0, 25), (3.5, 10), (2.0, 5)],
    "iphone": [(3.0, 75), (2.0, 25)],
    "ipad": [(2.0, 100)],
}
# habit: (share of people, chance of a visit on any day; 0 = exactly one visit)
HABITS = ((0.15, 0.85), (0.25, 0.45), (0.60, 0.0))


@dataclass(frozen=True, slots=True)
class Person:
    id: int
    agent: bytes
    accept_language: bytes
    navigator_language: str
    screen: tuple[int, int]
    pixel_ratio: float
    gpc: bool
    dnt: bool
    kind: str  # "home", "office" or "mobile"
    home: str  # address of the household or office; the pool for "mobile"
    country: str
    visit_chance: float  # per day; 0: one visit on one random day


def _pick(rng: random.Random, weighted: list) -> object:
    return rng.choices([v for v, _ in weighted], weights=[w for _, w in weighted])[0]


def _device_class(agent: bytes) -> str:
    text = agent.decode()
    for marker, device in (
        ("iPhone", "iphone"),
        ("iPad", "ipad"),
        ("Android", "android"),
        ("Macintosh", "mac"),
    ):
        if marker in text:
            return device
    return "desktop"


def _fixed_address(rng: random.Random, country: str, region: int, isp: int, v6: bool) -> str:
    c = _COUNTRY_INDEX[country]
    if v6:  # one /48 per household, as many ISPs delegate; the ISP's /32 per region
        household, host = rng.randrange(1, 65536), rng.randrange(1, 65536)
        return f"2a{c:02x}:{region * 16 + isp:x}:{household:x}::{host:x}"
    return f"{20 + c}.{region * 16 + isp}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def _mobile_address(rng: random.Random, pool: str) -> str:
    """A CGNAT address of the carrier `pool` ("a.b"): 16 /24s shared by all its customers."""
    return f"{pool}.{rng.randrange(16)}.{rng.randrange(1, 255)}"


def population(n: int, seed: int = 7) -> list[Person]:
    """`n` people: households of 1-4, offices of 5-30, a third of phones on mobile data."""
    rng = random.Random(seed)
    agents = [a for a in user_agents() if b"bot" not in a.lower()]
    weights = zipf_weights(len(agents))
    countries = list(COUNTRIES)
    country_weights = [COUNTRIES[c][0] for c in countries]
    habits = [h for h, _ in HABITS]
    homes: list[tuple[str, str]] = []  # (address, country) of households, to join one
    offices: list[tuple[str, str, int]] = []  # (address, country, seats left)
    people = []
    for pid in range(n):
        agent = rng.choices(agents, weights=weights)[0]
        device = _device_class(agent)
        country = rng.choices(countries, weights=country_weights)[0]
        _, regions, languages = COUNTRIES[country]
        region = rng.randrange(len(regions))
        kind = "home"
        if device in ("android", "iphone") and rng.random() < 0.35:
            kind = "mobile"
        elif device in ("desktop", "mac") and rng.random() < 0.15:
            kind = "office"
        if kind == "mobile":
            home = f"{20 + _COUNTRY_INDEX[country]}.{200 + rng.randrange(3)}"
        elif kind == "office":
            open_ = [i for i, o in enumerate(offices) if o[1] == country and o[2] > 0]
            if open_ and rng.random() < 0.8:
                i = rng.choice(open_)
                home, _, seats = offices[i]
                offices[i] = (home, country, seats - 1)
            else:
                home = _fixed_address(rng, country, region, 8 + rng.randrange(2), v6=False)
                offices.append((home, country, rng.randrange(4, 30)))
        else:
            same_country = [h for h in homes[-200:] if h[1] == country]
            if same_country and rng.random() < 0.3:  # another member of a household
                home = rng.choice(same_country)[0]
            else:
                home = _fixed_address(rng, country, region, rng.randrange(3), rng.random() < 0.2)
                homes.append((home, country))
        accept = _pick(rng, languages)
        first = accept.split(b",")[0].split(b";")[0].decode() or "en-US"
        habit = rng.choices(HABITS, weights=habits)[0][1]
        gpc = rng.random() < (0.10 if b"Firefox" in agent else 0.02)
        people.append(
            Person(
                pid,
                agent,
                accept,
                first,
                _pick(rng, SCREENS[device]),
                _pick(rng, _RATIOS[device]),
                gpc,
                rng.random() < 0.08,
                kind,
                home,
                country,
                habit,
            )
        )
    return people


def visits(people: list[Person], days: int, seed: int = 7) -> list[list[tuple[Person, str, int]]]:
    """Per day, the visits: (person, client address, page views). A household's address
    changes on a given day with a 5% chance (a new DHCP lease), a phone on mobile data gets a
    new CGNAT address every visit; an office keeps its address."""
    rng = random.Random(seed + 1)
    address = {p.home: p.home for p in people if p.kind != "mobile"}
    leased = sorted({p.home for p in people if p.kind == "home" and ":" not in p.home})
    one_day = {p.id: rng.randrange(days) for p in people if p.visit_chance == 0}
    out = []
    for day in range(days):
        if day:
            for home in leased:
                if rng.random() < 0.05:
                    a, b, _, _ = address[home].split(".")
                    address[home] = f"{a}.{b}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        today = []
        for p in people:
            chance = p.visit_chance
            if (one_day.get(p.id) == day) if chance == 0 else (rng.random() < chance):
                ip = _mobile_address(rng, p.home) if p.kind == "mobile" else address[p.home]
                pages = 1
                while pages < 6 and rng.random() < 0.5:
                    pages += 1
                today.append((p, ip, pages))
        rng.shuffle(today)
        out.append(today)
    return out


def person_scope(p: Person, ip: str, path: str, port: int, beacon: bool) -> dict:
    """The ASGI scope of a page request by `p` (or of the snippet's beacon, POST /veil/e)."""
    scope = request_scope(p.agent, ip, p.accept_language, port)
    if p.gpc:
        scope["headers"].append((b"sec-gpc", b"1"))
    if p.dnt:
        scope["headers"].append((b"dnt", b"1"))
    if beacon:
        scope.update(method="POST", path="/veil/e", raw_path=b"/veil/e")
    else:
        scope.update(path=path, raw_path=path.encode())
    return scope


def beacon_of(p: Person, path: str) -> dict:
    """The beacon body the snippet sends, as the ingest endpoint hands it on (validated)."""
    return {
        "screen_w": p.screen[0],
        "screen_h": p.screen[1],
        "pixel_ratio": p.pixel_ratio,
        "language": p.navigator_language,
        "path": path,
    }


def geo_database(path: Path) -> Path:
    """A MaxMind-format database of the address plan above (country and region per /16)."""
    import netaddr
    from mmdb_writer import MMDBWriter

    w = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoIP2-City")
    for country, (_, regions, _) in COUNTRIES.items():
        c = _COUNTRY_INDEX[country]
        for r, region in enumerate(regions):
            record = {"country": {"iso_code": country}, "subdivisions": [{"iso_code": region}]}
            for isp in (0, 1, 2, 8, 9):
                w.insert_network(
                    netaddr.IPSet(
                        [f"{20 + c}.{r * 16 + isp}.0.0/16", f"2a{c:02x}:{r * 16 + isp:x}::/32"]
                    ),
                    record,
                )
        carrier = {"country": {"iso_code": country}, "subdivisions": [{"iso_code": regions[0]}]}
        w.insert_network(netaddr.IPSet([f"{20 + c}.{200 + k}.0.0/16" for k in range(3)]), carrier)
    w.to_db_file(str(path))
    return path
