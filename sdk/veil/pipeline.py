"""The ingestion pipeline: captured request → enriched, pseudonymised row.

An ordered list of small steps (Plausible's ingestion shape). Each takes the event and returns
None to go on, or a `Drop` reason; every drop is counted, none is silent. Which steps run is
decided by the purpose's field list: a field the purpose does not allow is never derived, so a
record carries only what its purpose allows. Raw values (IP, port, user-agent bytes) live only
on the in-memory `Event` and are never copied into the row.
"""

import datetime as dt
import functools
import operator
import re
from collections import Counter
from collections.abc import Callable, Iterable
from enum import StrEnum

from . import agents, languages
from .geo import GeoLookup
from .policy import Policy, Purpose
from .proxy import ClientResolver
from .pseudonymise import Pseudonymiser, network_of

# The columns a row carries, in the store's insert order (see store/schema.py).
ROW_COLUMNS = (
    "ts", "purpose", "policy_version", "source", "site", "visitor", "network", "country",
    "region", "os", "os_version", "browser", "browser_version", "device", "device_brand",
    "device_model", "language", "languages", "gpc", "dnt", "screen_w", "screen_h",
    "pixel_ratio", "path", "seal_key", "sealed_endpoint",
)
_HOST = re.compile(rb"^[a-z0-9.-]{1,253}$")


class Drop(StrEnum):
    QUEUE_FULL = "queue_full"          # capture buffer full: the app outpaced the writer
    CAPTURE_ERROR = "capture_error"    # the request could not be read (malformed scope)
    INVALID_CLIENT = "invalid_client"  # no usable client address (or a broken proxy chain)
    BOT = "bot"                        # ua-parser device family "Spider"
    KEY_DESTROYED = "key_destroyed"    # the event's day key is gone: too old to pseudonymise
    STORE_ERROR = "store_error"        # the store refused the batch after every retry


class Event:
    """One request in flight. Raw fields first, derived (stored) fields after."""

    __slots__ = ("agent", "accept_language", "forwarded", "host", "ip", "peer", "port",
                 *ROW_COLUMNS)

    def __init__(self, captured: tuple, purpose: Purpose, policy_version: str) -> None:
        (self.ts, self.peer, self.port, self.agent, self.accept_language, gpc, dnt,
         self.forwarded, self.host) = captured
        self.purpose = purpose.key
        self.policy_version = policy_version
        self.source = "request"
        self.gpc = gpc == b"1" if "gpc" in purpose.fields else None
        self.dnt = dnt == b"1" if "dnt" in purpose.fields else None
        self.ip = None
        for name in ROW_COLUMNS[4:]:
            if name not in ("gpc", "dnt"):
                setattr(self, name, None)


Step = Callable[[Event], Drop | None]
as_row = operator.attrgetter(*ROW_COLUMNS)


@functools.lru_cache(maxsize=64)
def utc_day(epoch_day: int) -> dt.date:
    return dt.date(1970, 1, 1) + dt.timedelta(days=epoch_day)


@functools.lru_cache(maxsize=1024)
def site_from_host(host: bytes) -> str | None:
    """The Host header's name, lower-cased and without port; None when it is not a hostname."""
    name = host.lower().rsplit(b":", 1)[0] if host.count(b":") == 1 else host.lower()
    return name.decode() if _HOST.match(name) else None


class Pipeline:
    def __init__(self, policy: Policy, purpose_key: str, site: str | None,
                 resolver: ClientResolver, pseudonymiser: Pseudonymiser,
                 geo: GeoLookup | None, seal_ip: bool) -> None:
        self.policy = policy
        self.purpose = policy.purpose(purpose_key)
        self.site = site
        self._resolver = resolver
        self._pseudonymiser = pseudonymiser
        self._geo = geo
        allowed = self.purpose.fields
        steps: list[Step] = [self.resolve_client, self.drop_bots]
        if "user_agent" in allowed:
            steps.append(self.describe_agent)
        if "accept_language" in allowed:
            steps.append(self.read_languages)
        if geo is not None and "ip_address" in allowed:
            steps.append(self.locate)
        steps.append(self.pseudonymise)
        if seal_ip and {"ip_address", "port"} <= allowed:
            steps.append(self.seal_endpoint)
        self.steps: tuple[Step, ...] = tuple(steps)

    def process(self, captured: Iterable[tuple]) -> tuple[list[tuple], Counter]:
        rows: list[tuple] = []
        drops: Counter = Counter()
        steps, purpose, version = self.steps, self.purpose, self.policy.version
        for item in captured:
            event = Event(item, purpose, version)
            for step in steps:
                if (reason := step(event)) is not None:
                    drops[reason] += 1
                    break
            else:
                rows.append(as_row(event))
        return rows, drops

    # -- steps -------------------------------------------------------------------------------

    def resolve_client(self, e: Event) -> Drop | None:
        found = self._resolver.resolve(e.peer, e.forwarded)
        if found is None:
            return Drop.INVALID_CLIENT
        ip, proxied = found
        e.ip = ip
        if proxied or not e.port:
            e.port = None  # a proxy's socket port is not the client's; 0 means unknown
        e.site = self.site or (site_from_host(e.host) if e.host else None)
        return None

    def drop_bots(self, e: Event) -> Drop | None:
        return Drop.BOT if agents.describe(e.agent).is_bot else None

    def describe_agent(self, e: Event) -> None:
        (e.os, e.os_version, e.browser, e.browser_version, e.device, e.device_brand,
         e.device_model, _) = agents.describe(e.agent)

    def read_languages(self, e: Event) -> None:
        if e.accept_language and (langs := languages.from_accept_language(e.accept_language)):
            e.language = langs[0]
            e.languages = ",".join(langs)

    def locate(self, e: Event) -> None:
        e.country, e.region = self._geo.locate(str(e.ip))

    def pseudonymise(self, e: Event) -> Drop | None:
        day = utc_day(int(e.ts // 86400))
        agent = e.agent if "user_agent" in self.purpose.fields else b""
        e.visitor = self._pseudonymiser.visitor(day, e.site or "", str(e.ip), agent)
        if e.visitor is None:
            return Drop.KEY_DESTROYED
        e.network = network_of(e.ip)
        return None

    def seal_endpoint(self, e: Event) -> Drop | None:
        day = utc_day(int(e.ts // 86400))
        sealed = self._pseudonymiser.seal(day, str(e.ip), e.port)
        if sealed is None:
            return Drop.KEY_DESTROYED
        e.seal_key, e.sealed_endpoint = sealed
        return None

