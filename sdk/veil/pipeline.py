"""The ingestion pipeline: captured request → enriched, pseudonymised row.

An ordered list of small steps (Plausible's ingestion shape). Each takes the event and returns
None to go on, or a `Drop` reason; every drop is counted, none is silent. Which steps run is
decided by the purpose's field list: a field the purpose does not allow is never derived, so a
record carries only what its purpose allows. Raw values (IP, port, user-agent bytes) live only
on the in-memory `Event` and are never copied into the row.

The speed comes from what each step caches on what repeats, in byte-bounded LRUs (caches.py)
held in memory only: (peer, X-Forwarded-For) → client (proxy.py), User-Agent → agent
(agents.py), Accept-Language → languages (languages.py), Host → site (here), and the day's
keyed hashers already fed the site (pseudonymise.py). A cache changes no row or drop count
(tests/test_lean_pipeline.py); what they can hold is bounded (tests/test_cache_bounds.py).
"""

import datetime as dt
import functools
import operator
import re
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from . import agents, languages
from .caches import ByteLRU
from .capture import Beacon, Captured, VeilCookies
from .consent import ConsentRecord, fan_out, opt_in, signal_on
from .errors import Drop
from .geo import GeoLookup
from .jurisdiction import regime_for
from .policy import Policy, Purpose
from .proxy import ClientResolver
from .pseudonymise import Pseudonymiser, ratio_class, screen_class
from .registry import BEACON_FIELDS
from .store.columns import ROW_COLUMNS, Row  # the store owns the row layout

# A DNS name whose last label starts with a letter: never an IP literal (the server's or, in
# a crafted Host, anyone's), never free text; a name is at most 253 characters.
_HOST = re.compile(
    rb"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*"
    rb"[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?"
)


class Event:
    """One event in flight: the captured raw fields (`capture.Captured`'s, by the same
    names), then the derived ones, which a row takes (store.columns.ROW_COLUMNS). Derived
    fields start as None, so a step sets only what it derives.

    Slots, not a __dict__: an event holds over 30 attributes, past what CPython's shared-key
    instance dicts take, and each event paid for building a dict of its own (~1 µs)."""

    __slots__ = (
        *Captured._fields[1:],  # its purpose is a row column
        *("allowed", "ip", "ip_text", "described"),
        *(column for column in ROW_COLUMNS if column != "ts"),  # ts is Captured's
    )

    # captured, raw: never copied into a row
    peer: str | None
    agent: bytes
    accept_language: bytes
    sec_gpc: bytes | None
    sec_dnt: bytes | None
    forwarded: bytes
    host: bytes
    beacon: Beacon | None
    request_path: str | None
    cookies: VeilCookies | None
    allowed: frozenset[str]  # the purpose's fields
    port: int | None  # the client's: the peer's, or what a trusted proxy said
    ip: bytes  # the client's address, set by resolve_client, always the first step
    ip_text: str
    described: agents.Agent  # the user-agent's description, set by drop_bots, always second
    # the row's columns
    event_id: str | None
    ts: float
    purpose: str
    policy_version: str
    source: str
    site: str | None
    visitor: str | None
    network: str | None
    country: str | None
    region: str | None
    os: str | None
    os_version: str | None
    browser: str | None
    browser_version: str | None
    device: str | None
    device_brand: str | None
    device_model: str | None
    language: str | None
    languages: str | None
    gpc: bool | None
    dnt: bool | None
    screen_w: int | None
    screen_h: int | None
    pixel_ratio: float | None
    path: str | None
    seal_key: str | None
    sealed_endpoint: bytes | None
    subject: str | None

    def __init__(self, captured: Captured, purpose: Purpose, policy_version: str) -> None:
        # Unpacked, not read by name: the cheapest on the writer's path. Captured's order.
        (
            _,
            self.ts,
            self.peer,
            self.port,
            self.agent,
            self.accept_language,
            self.sec_gpc,
            self.sec_dnt,
            self.forwarded,
            self.host,
            self.beacon,
            self.request_path,
            self.cookies,
        ) = captured
        self.allowed = purpose.fields
        self.purpose = purpose.key
        self.policy_version = policy_version
        self.source = "request" if self.beacon is None else "beacon"
        self.event_id = self.site = self.visitor = self.network = self.country = None
        self.region = self.os = self.os_version = self.browser = self.browser_version = None
        self.device = self.device_brand = self.device_model = self.language = None
        self.languages = self.gpc = self.dnt = self.screen_w = self.screen_h = None
        self.pixel_ratio = self.path = self.seal_key = self.sealed_endpoint = None
        self.subject = None


Step = Callable[[Event], Drop | None]
SUSPENSION = "suspension"  # rights/limits.py
as_row = operator.attrgetter(*ROW_COLUMNS)


@functools.lru_cache(maxsize=64)
def utc_day(epoch_day: int) -> dt.date:
    return dt.date(1970, 1, 1) + dt.timedelta(days=epoch_day)


# Host header → site: a few names a deployment serves, any a crafted header makes up
_sites: ByteLRU[bytes, str | None] = ByteLRU(1 << 16)
_UNKNOWN = object()


def site_from_host(host: bytes) -> str | None:
    """The Host header's name, lower-cased and without port; None when it is not a hostname."""
    found = _sites.get(host, _UNKNOWN)
    if found is _UNKNOWN:
        found = _site_from_host(host)
        _sites.put(host, found)
    return found  # type: ignore[return-value]


def _site_from_host(host: bytes) -> str | None:
    name = host.lower().rsplit(b":", 1)[0] if host.count(b":") == 1 else host.lower()
    name = name.removesuffix(b".")  # the absolute form names the same site
    return name.decode() if len(name) <= 253 and _HOST.fullmatch(name) else None


@dataclass(frozen=True, slots=True)
class ConsentView:
    """What the ledger says about the subjects of one batch, fetched before processing it."""

    subjects: dict[str, str]  # subject cookie (verified) → subject pseudonym
    histories: dict[str, list[ConsentRecord]]
    # subject pseudonym → their limits ("suspension", "objection:<purpose>": rights/limits.py)
    limits: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def of(
        self, cookies: VeilCookies | None
    ) -> tuple[str | None, list[ConsentRecord], frozenset[str]]:
        """(subject, their ledger records, purposes in the opt-out cookie) of a request."""
        if cookies is None:
            return None, [], frozenset()
        subject = self.subjects.get(cookies.subject) if cookies.subject else None
        opted_out = frozenset(cookies.opt_out.split(".")) if cookies.opt_out else frozenset()
        return subject, self.histories.get(subject, []) if subject else [], opted_out

    def barred(self, cookies: VeilCookies, purpose: str) -> Drop | None:
        """Why a request with veil's cookies is not stored under `purpose` (which needs no
        consent): its subject suspended collection (nothing of the request is stored), or its
        subject, or the opt-out cookie, objects to the purpose; None when it is stored."""
        subject = self.subjects.get(cookies.subject) if cookies.subject else None
        limits = self.limits.get(subject, ()) if subject else ()
        if limits and SUSPENSION in limits:
            return Drop.SUSPENDED
        if (limits and f"objection:{purpose}" in limits) or (
            cookies.opt_out and purpose in cookies.opt_out.split(".")
        ):
            return Drop.OBJECTED
        return None


NO_CONSENT = ConsentView({}, {})


class Withdrawal(NamedTuple):
    """A grant that a request's GPC/DNT withdraws: the writer puts it on the ledger."""

    subject: str  # pseudonym
    scope: str
    regime: str  # the jurisdiction the request came from


class Processed(NamedTuple):
    """What a batch through the pipeline gives: rows to store, drops to count, withdrawals
    to record."""

    rows: list[Row]
    drops: Counter[str]
    withdrawals: list[Withdrawal]


def _batch_prefix() -> str:
    """Time-ordered and random: event ids sort by time, so the unique index appends cheaply."""
    return f"{time.time_ns() // 1_000_000:011x}{secrets.token_hex(4)}"


def _apart(events: list[Event]) -> list[Row]:
    """The rows of a batch that carry a subject, with nothing that pairs each with its
    cookieless twin (the same request under `connection`), whose daily pseudonym would reach
    the person's other rows of that day, before the consent too: no visitor or network
    pseudonym (the subject is their unit), the time to the second, event ids of their own,
    after the batch's other rows (adjacent row ids would pair them), ordered by subject
    pseudonym, which is random, and each subject's in time, which keeps their history's order."""
    if not events:
        return []
    events.sort(key=lambda e: (e.subject, e.ts))
    batch = _batch_prefix()
    for j, e in enumerate(events):
        e.visitor = e.network = None
        e.ts = float(int(e.ts))
        e.event_id = f"{batch}{j:05x}"
    return [as_row(e) for e in events]


class Pipeline:
    """Runs each captured event through the steps of its purpose."""

    def __init__(
        self,
        policy: Policy,
        site: str | None,
        resolver: ClientResolver,
        pseudonymiser: Pseudonymiser,
        geo: GeoLookup | None,
        seal_ip: bool,
    ) -> None:
        self.policy = policy
        self.site = site
        self._resolver = resolver
        self._pseudonymiser = pseudonymiser
        self._geo = geo
        self.routes = {key: (p, self._steps_for(p, seal_ip)) for key, p in policy.purposes.items()}
        self.consent_purposes = tuple(p for p in policy.purposes.values() if p.needs_consent)
        # Purposes whose events may fan out under consent-based ones; outside the "regional"
        # model every regime is opt-in, so a request without veil's cookies has no grant and
        # never fans out (what _consented answers first, without a call per event).
        self._fans_out = frozenset(
            key
            for key, p in policy.purposes.items()
            if self.consent_purposes and not p.needs_consent
        )
        self._cookieless_fan_out = policy.consent_model == "regional"

    def _steps_for(self, purpose: Purpose, seal_ip: bool) -> tuple[Step, ...]:
        allowed = purpose.fields
        steps: list[Step] = [self.resolve_client, self.drop_bots]
        if allowed & {"gpc", "dnt"}:
            steps.append(self.read_signals)
        if "user_agent" in allowed:
            steps.append(self.describe_agent)
        if "accept_language" in allowed:
            steps.append(self.read_languages)
        if allowed & BEACON_FIELDS:
            steps.append(self.read_beacon)
        if "path" in allowed:
            steps.append(self.read_request_path)
        if self._geo is not None and "ip_address" in allowed:
            steps.append(self.locate)
        steps.append(self.pseudonymise)
        if seal_ip and {"ip_address", "port"} <= allowed:
            steps.append(self.seal_endpoint)
        return tuple(steps)

    def process(self, captured: Iterable[Captured], consent: ConsentView = NO_CONSENT) -> Processed:
        """Rows, drop counts, and the GPC/DNT withdrawals to put on the ledger."""
        rows: list[Row] = []
        apart: list[Event] = []  # rows that carry a subject: stored unpaired (see _apart)
        drops: Counter[str] = Counter()
        withdrawals: list[Withdrawal] = []
        routes, version, batch = self.routes, self.policy.version, _batch_prefix()
        fans_out, cookieless_fan_out = self._fans_out, self._cookieless_fan_out
        for i, item in enumerate(captured):
            kept = len(rows), len(apart), len(withdrawals)
            try:
                route = routes.get(item[0])
                if route is None:
                    drops[Drop.UNKNOWN_PURPOSE] += 1
                    continue
                event = self._run(Event(item, route[0], version), route[1], drops)
                if event is None:
                    continue
                barred = item.cookies and consent.barred(item.cookies, event.purpose)
                if barred:  # suspended: nothing at all; objected: not under this purpose
                    drops[barred] += 1
                    if barred is Drop.SUSPENDED:
                        continue
                else:
                    event.event_id = f"{batch}{i:05x}"
                    rows.append(as_row(event))
                if event.purpose not in fans_out or (
                    event.cookies is None and not cookieless_fan_out
                ):
                    continue
                # The same request, again, under each consent-based purpose it may feed.
                for n, (purpose, subject) in enumerate(
                    self._consented(event, consent, withdrawals), start=1
                ):
                    extra = self._run(Event(item, purpose, version), routes[purpose.key][1], drops)
                    if extra is not None:
                        extra.event_id = f"{batch}{i:05x}{n:x}"
                        extra.subject = subject
                        if subject is None:
                            rows.append(as_row(extra))
                        else:
                            apart.append(extra)
            except Exception:  # one event veil cannot read must not take its batch with it
                del rows[kept[0] :], apart[kept[1] :], withdrawals[kept[2] :]
                drops[Drop.INVALID_EVENT] += 1
        return Processed(rows + _apart(apart), drops, withdrawals)

    @staticmethod
    def _run(event: Event, steps: tuple[Step, ...], drops: Counter[str]) -> Event | None:
        for step in steps:
            if (reason := step(event)) is not None:
                drops[reason] += 1
                return None
        return event

    def _consented(
        self, e: Event, consent: ConsentView, withdrawals: list[Withdrawal]
    ) -> list[tuple[Purpose, str | None]]:
        """Consent-based purposes this event may also be kept under, with the subject, as
        `consent.fan_out` decides; the grants its GPC/DNT withdraws go to `withdrawals`."""
        if not self.consent_purposes or self.policy.purposes[e.purpose].needs_consent:
            return []
        if e.cookies is None and opt_in(self.policy, regime_for(e.country, e.region)):
            return []  # the common case, before any lookup: no cookie, no grant, opt-in regime
        subject, records, opted_out = consent.of(e.cookies)
        regime = regime_for(e.country, e.region)
        if not records and opt_in(self.policy, regime):
            return []  # the common case, answered here: no grant on record, opt-in regime
        purposes, withdrawn = fan_out(
            self.policy,
            self.consent_purposes,
            records,
            e.ts,
            regime,
            signal=signal_on(e.sec_gpc, e.sec_dnt),
            opted_out=opted_out,
        )
        if subject is not None:
            withdrawals.extend(Withdrawal(subject, scope, regime.key) for scope in withdrawn)
        return [(purpose, subject) for purpose in purposes]

    # -- steps -------------------------------------------------------------------------------

    def resolve_client(self, e: Event) -> Drop | None:
        client = self._resolver.resolve(e.peer, e.forwarded)
        if client is None:
            return Drop.INVALID_CLIENT
        e.ip, e.ip_text, proxied, port = client
        if proxied:  # the socket's port is the proxy's; the proxy may have said the client's
            e.port = port
        elif not e.port:
            e.port = None  # 0 means unknown
        e.site = self.site or (site_from_host(e.host) if e.host else None)
        return None

    def drop_bots(self, e: Event) -> Drop | None:
        e.described = described = agents.describe(e.agent)
        return Drop.BOT if described.is_bot else None

    def read_signals(self, e: Event) -> None:
        if "gpc" in e.allowed:
            e.gpc = e.sec_gpc == b"1"
        if "dnt" in e.allowed:
            e.dnt = e.sec_dnt == b"1"

    def describe_agent(self, e: Event) -> None:
        (
            e.os,
            e.os_version,
            e.browser,
            e.browser_version,
            e.device,
            e.device_brand,
            e.device_model,
            _,
        ) = e.described

    def read_languages(self, e: Event) -> None:
        if e.accept_language and (langs := languages.from_accept_language(e.accept_language)):
            e.language = langs[0]
            e.languages = ",".join(langs)

    def read_beacon(self, e: Event) -> None:
        """Fields the browser snippet sent, already validated at the ingest endpoint."""
        b, allowed = e.beacon, e.allowed
        if b is None:
            return
        if "screen" in allowed:
            e.screen_w, e.screen_h = b["screen_w"], b["screen_h"]
        if "pixel_ratio" in allowed:
            e.pixel_ratio = b["pixel_ratio"]
        if "navigator_language" in allowed:
            e.language = languages.primary_subtag(b["language"])
        if "path" in allowed:
            e.path = self.policy.stored_path(b.get("path"))  # [[policy.paths]] first

    def read_request_path(self, e: Event) -> None:
        if e.beacon is None and e.request_path:
            e.path = self.policy.stored_path(e.request_path[:512])  # [[policy.paths]] first

    def locate(self, e: Event) -> None:
        if self._geo is not None:  # always: a step only when there is a lookup (_steps_for)
            e.country, e.region = self._geo.locate(e.ip_text)

    def pseudonymise(self, e: Event) -> Drop | None:
        """The day's visitor and network pseudonyms in place of the address: countable within
        the day, unlinkable across days once its key is destroyed. No clear prefix is kept,
        nor an exact screen: beside OS and browser they re-linked one person's days
        (bench/relinking.py)."""
        day = utc_day(int(e.ts // 86400))
        agent = e.agent if "user_agent" in e.allowed else b""
        cookies = e.cookies
        found = self._pseudonymiser.pseudonyms(
            day, e.site or "", e.ip_text, agent, e.ip, cookies.subject if cookies else None
        )
        if found is None:
            return Drop.KEY_DESTROYED
        e.visitor, e.network = found
        if e.screen_w is not None:
            e.screen_w, e.screen_h = screen_class(e.screen_w), None
        if e.pixel_ratio is not None:
            e.pixel_ratio = ratio_class(e.pixel_ratio)
        return None

    def seal_endpoint(self, e: Event) -> Drop | None:
        day = utc_day(int(e.ts // 86400))
        sealed = self._pseudonymiser.seal(day, e.ip_text, e.port)
        if sealed is None:
            return Drop.KEY_DESTROYED
        e.seal_key, e.sealed_endpoint = sealed
        return None
