"""User-agent → OS, browser and device, with versions cut to the major number.

ua-parser's Rust resolver (`ua-parser[regex]`) does the matching, with no cache of ua-parser's
own; a `ByteLRU` (caches.py) keyed on the header's first MAX_AGENT_BYTES sits in front of it,
since real traffic repeats a few hundred agents, bounded in bytes since a client picks its
header's length. The parser (100-200 ms) and the vocabularies (~200 ms) are built once per
process, at start-up rather than on a request.

What ua-parser returns is partly the client's own text: a rule like `; ([^;/]+) Build` copies
whatever stands there, and real agents carry e-mail addresses, IPs and device serials in those
slots. So nothing is stored verbatim. OS, browser and brand must be values ua-parser's rules
can produce from their own text (vocabulary.py), else `Other` (families) or None (brand);
versions are digits or a rule's literal (`XP`); a device model, and a device family built from
one, only when it is short, of letters, digits, space and `,_()-` (no `@`, `.`, `:`, `/`:
no e-mail, address or URL fits), has no serial- or MAC-like token and at most 8 digits, and comes
from a rule for a named brand, never a generic catch-all (`Generic_Android` copies anything).
"""

import functools
import re
from typing import NamedTuple

from ua_parser import Parser, loaders, regex

from .caches import ByteLRU
from .vocabulary import Vocabulary, closed_values

MAX_AGENT_BYTES = 512  # longer headers are truncated before parsing; no browser sends more
# ~1,000 agents of a typical ~250-byte header (an entry weighs ~1 KB with its description);
# a realistic stream has a few hundred.
CACHE_BYTES = 1 << 20


class Agent(NamedTuple):
    os: str | None
    os_version: str | None
    browser: str | None
    browser_version: str | None
    device: str | None
    device_brand: str | None
    device_model: str | None
    is_bot: bool


OTHER = "Other"  # ua-parser's own word for "no rule matched"
MAX_MODEL = 40
_MODEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9 ,_()-]*[A-Za-z0-9)])?")  # moto g(60), Watch3,4
_TOKEN = re.compile(r"[^ ,_()-]+")
_MAC = re.compile(r"(?:[0-9A-Fa-f]{2}[ _-]){5}[0-9A-Fa-f]{2}")
_VERSION = re.compile(r"\d{1,5}")
_GENERIC = "generic"  # brands of ua-parser's catch-all rules: Generic, Generic_Android, ...


class _Vocabularies(NamedTuple):
    os: Vocabulary
    browser: Vocabulary
    versions: Vocabulary
    device: Vocabulary
    brand: Vocabulary
    model: Vocabulary


@functools.cache
def _parser() -> Parser:
    return Parser(regex.Resolver(loaders.load_lazy_builtins()))


@functools.cache
def _vocabularies() -> _Vocabularies:
    agents, oses, devices = loaders.load_lazy_builtins()
    ua = closed_values(agents, "family", "major")
    os = closed_values(oses, "family", "major")
    dev = closed_values(devices, "family", "brand", "model")
    return _Vocabularies(
        os=Vocabulary(os["family"] | {OTHER}),
        browser=Vocabulary(ua["family"] | {OTHER}),
        versions=Vocabulary(ua["major"] | os["major"]),
        device=Vocabulary(dev["family"] | {OTHER}),
        brand=Vocabulary(dev["brand"]),
        model=Vocabulary(dev["model"]),
    )


def warm_up() -> None:
    """Build the parser and the vocabularies now (start-up), not on the first event."""
    _vocabularies()
    _parser().parse("Mozilla/5.0")


def plausible_model(text: str | None) -> bool:
    """A hardware model name (`SM-G991B`, `Pixel 7 Pro`, `Watch3,4`), not free text: nothing
    an e-mail address, IP, URL, phone number or serial needs fits through."""
    if not text or len(text) > MAX_MODEL or not _MODEL.fullmatch(text):
        return False
    if sum(c.isdigit() for c in text) > 8 or _MAC.search(text):  # phone numbers, IMEIs, MACs
        return False
    # a long token with digits in it is a serial, an id or a hash, not a model name
    return not any(len(t) >= 12 and any(c.isdigit() for c in t) for t in _TOKEN.findall(text))


def _version(v: str | None, known: Vocabulary) -> str | None:
    if v is None:
        return None
    return v if _VERSION.fullmatch(v) else known.canonical(v)


_described: ByteLRU[bytes, Agent] = ByteLRU(CACHE_BYTES)


def describe(header: bytes) -> Agent:
    """The agent a User-Agent header describes (cached on its first MAX_AGENT_BYTES bytes)."""
    key = header[:MAX_AGENT_BYTES]  # the very object when the header is no longer
    found = _described.get(key)
    if found is None:
        found = _describe(key)
        _described.put(key, found)
    return found


def _describe(header: bytes) -> Agent:
    text = header.decode("latin-1")
    r = _parser().parse(text)
    ua, os, dev = r.user_agent, r.os, r.device
    v = _vocabularies()
    brand = v.brand.canonical(dev.brand) if dev else None
    model = dev.model if dev else None
    if model is not None and (known := v.model.canonical(model)) is not None:
        model = known
    elif not (brand and not brand.lower().startswith(_GENERIC) and plausible_model(model)):
        model = None
    device = v.device.canonical(dev.family) if dev else None
    if device is None and dev and model is not None and plausible_model(dev.family):
        device = dev.family  # "Samsung SM-G991B": a named brand's rule and a plausible model
    return Agent(
        os=(v.os.canonical(os.family) or OTHER) if os else None,
        os_version=_version(os.major, v.versions) if os else None,
        browser=(v.browser.canonical(ua.family) or OTHER) if ua else None,
        browser_version=_version(ua.major, v.versions) if ua else None,
        device=(device or OTHER) if dev else None,
        device_brand=brand,
        device_model=model,
        is_bot=bool(dev and dev.family == "Spider"),
    )
