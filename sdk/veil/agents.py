"""User-agent → OS, browser and device, with versions cut to the major number.

ua-parser's Rust resolver (`ua-parser[regex]`) does the matching; an LRU cache keyed on the raw
header bytes sits in front of it, since real traffic repeats a few hundred agents. The parser
is built once per process (100-200 ms), at start-up rather than on a request.
"""

import functools
from typing import NamedTuple

from ua_parser import Parser, loaders, regex

CACHE_SIZE = 20_000
MAX_AGENT_BYTES = 512  # longer headers are truncated before parsing; no browser sends more


class Agent(NamedTuple):
    os: str | None
    os_version: str | None
    browser: str | None
    browser_version: str | None
    device: str | None
    device_brand: str | None
    device_model: str | None
    is_bot: bool


@functools.cache
def _parser() -> Parser:
    return Parser(regex.Resolver(loaders.load_lazy_builtins()))


def warm_up() -> None:
    """Build the parser now (start-up), not on the first event."""
    _parser().parse("Mozilla/5.0")


@functools.lru_cache(maxsize=CACHE_SIZE)
def describe(header: bytes) -> Agent:
    text = header[:MAX_AGENT_BYTES].decode("latin-1")
    r = _parser().parse(text)
    ua, os, dev = r.user_agent, r.os, r.device
    return Agent(
        os=os.family if os else None,
        os_version=os.major if os else None,
        browser=ua.family if ua else None,
        browser_version=ua.major if ua else None,
        device=dev.family if dev else None,
        device_brand=dev.brand if dev else None,
        device_model=dev.model if dev else None,
        is_bot=bool(dev and dev.family == "Spider"),
    )
