"""`veil.toml`: one file for the policy and the runtime, validated before anything starts.

Lookup order: an explicit path, else `$VEIL_CONFIG`, else `./veil.toml`, else built-in defaults.
Relative paths inside the file resolve against the file's own directory, so a config behaves
the same whatever directory a command is run from.
"""

import datetime as dt
import ipaddress
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .counted import DEFAULT_EXCLUDE, DEFAULT_EXCLUDE_STATUSES, parse_counting
from .errors import ConfigError
from .policy import DEFAULT_POLICY, Policy, duration_problem, parse_duration, parse_policy
from .tables import Table

DEFAULT_STORE_URL = "sqlite:///./veil-data/veil.db"
DEFAULT_KEYS_PATH = "./veil-data/keys.db"
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class StoreConfig:
    path: Path = Path(DEFAULT_STORE_URL.removeprefix("sqlite:///"))


@dataclass(frozen=True, slots=True)
class KeysConfig:
    path: Path = Path(DEFAULT_KEYS_PATH)
    master_key_file: Path | None = None
    seal_ip: bool = False  # keep IP:port AES-GCM-sealed; off by default (data minimisation)
    seal_retention: dt.timedelta = dt.timedelta(days=7)


@dataclass(frozen=True, slots=True)
class CaptureConfig:
    queue_size: int = 10_000
    batch_size: int = 1_000
    # A 202 is committed within this; a kill -9 loses about this much traffic (measured:
    # bench/crash_loss.py). 0.25 s costs no measurable CPU over 1 s (batch_size decides
    # under load).
    flush_interval: float = 0.25
    # Retries of a batch the store fails for any reason but a lock (a row it refuses, a full
    # disk, a broken file); then the batch is dropped, counted as `store_error`. A store
    # locked by another process is retried until it answers, however long, while new events
    # wait in the queue (beyond it: `queue_full`, and 503 at the beacon endpoint). None:
    # every failure is retried that way (a remote collector). Same key and default as before.
    max_retries: int | None = 3
    # What is counted (counted.py): paths counted (None: every path not excluded), paths
    # never counted (static assets, health checks), response statuses never counted
    include: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE
    exclude_statuses: frozenset[int] = DEFAULT_EXCLUDE_STATUSES


@dataclass(frozen=True, slots=True)
class RemoteConfig:
    """A collector: `url` set in an app sends its batches there instead of a local store."""

    url: str | None = None
    secret_file: Path | None = None  # else $VEIL_REMOTE_SECRET
    timeout: float = 5.0
    # One deadline for the whole shutdown: stop() writes what is queued for at most this
    # many seconds (not per batch), then drops the rest, counted
    shutdown_grace: float = 10.0


@dataclass(frozen=True, slots=True)
class IngestConfig:
    rate: float = 20.0  # beacons per second per client network (/24 or /48), sustained
    burst: int = 200
    # The sites whose pages may send beacons, by their Origin's host name (http/origin.py);
    # None: any. A collector records a beacon's site from its Origin.
    sites: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class ConsentConfig:
    secure_cookie: bool = True  # `__Host-` cookies, Secure; false only for plain-HTTP dev
    cookie_days: int = 180
    # permanent rows (consent records, app records, review requests) per client network: a
    # second, sustained, and at most at once
    rate: float = 1.0
    burst: int = 20
    max_changes_per_day: int = 50  # grants one subject may make in 24 hours
    # a withdrawn consent disposes of the subject's rows under that purpose (GDPR Art.
    # 17(1)(b)); false keeps them until retention (only where another basis holds for them)
    withdrawal_deletes: bool = True


@dataclass(frozen=True, slots=True)
class Config:
    source: Path | None = None
    site: str | None = None
    store: StoreConfig = field(default_factory=StoreConfig)
    keys: KeysConfig = field(default_factory=KeysConfig)
    trusted_proxies: tuple[IPNetwork, ...] = ()
    geoip_path: Path | None = None
    capture: CaptureConfig = field(default_factory=CaptureConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    remote: RemoteConfig = field(default_factory=RemoteConfig)
    consent: ConsentConfig = field(default_factory=ConsentConfig)
    min_group_size: int = 5
    policy: Policy = DEFAULT_POLICY
    warnings: tuple[str, ...] = ()


def locate(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The config file to read, or None for built-in defaults."""
    if explicit is not None:
        return Path(explicit)
    if env := os.environ.get("VEIL_CONFIG"):
        return Path(env)
    default = Path("veil.toml")
    return default if default.exists() else None


def load(explicit: str | os.PathLike[str] | None = None) -> Config:
    """Read and validate the config; raise ConfigError listing every problem found."""
    path = locate(explicit)
    if path is None:
        return from_dict({}, base=Path.cwd(), source=None)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(["file not found"], str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"cannot read: {exc.__class__.__name__}: {exc}"], str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"not valid TOML: {exc}"], str(path)) from None
    return from_dict(data, base=path.resolve().parent, source=path)


def _positive(v: float) -> str | None:
    return None if v > 0 else f"must be greater than 0, got {v!r}"


def _network(text: str) -> IPNetwork | str:
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return f"{text!r} is not an IP address or CIDR network"


def _sites(t: Table) -> frozenset[str] | None:
    raw = t.get("sites", list, None)
    if raw is None:
        return None
    # here, and only for a config that lists sites: the pipeline's imports reach this
    # module, and they cost every CLI command ~60 ms (the user-agent parser, GeoIP)
    from .pipeline import site_from_host

    sites = set()
    for i, value in enumerate(raw):
        ascii_text = isinstance(value, str) and value.isascii()
        name = site_from_host(value.encode()) if ascii_text else None
        if name is None or name != value.lower().removesuffix("."):
            t.problem(
                f"{t.key('sites')}[{i}]",
                f"must be a host name like 'shop.example.com' (no scheme, port or path), "
                f"got {value!r}",
            )
        else:
            sites.add(name)
    if not raw:
        t.problem(t.key("sites"), "is empty, which would refuse every beacon; leave it out")
    return frozenset(sites)


def _store(t: Table, base: Path) -> StoreConfig:
    url = t.get("url", str, DEFAULT_STORE_URL)
    t.close()
    if url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        return StoreConfig(base / url.removeprefix("sqlite:///"))
    scheme = url.split(":", 1)[0]
    if scheme in ("postgres", "postgresql"):
        t.problem(
            t.key("url"), "PostgreSQL stores are not available in this version; use sqlite:///PATH"
        )
    else:
        t.problem(t.key("url"), f"must look like sqlite:///PATH, got {url!r}")
    return StoreConfig()


def _keys(t: Table, base: Path) -> KeysConfig:
    master = t.get("master_key_file", str, None)
    retention = t.get("seal_retention", str, "7d", check=duration_problem)
    keys = KeysConfig(
        path=base / t.get("path", str, DEFAULT_KEYS_PATH),
        master_key_file=base / master if master else None,
        seal_ip=t.get("seal_ip", bool, False),
        seal_retention=parse_duration(retention) or dt.timedelta(days=7),
    )
    t.close()
    return keys


def from_dict(data: dict[str, object], base: Path, source: Path | None = None) -> Config:
    problems: list[str] = []
    root = Table(data, "", problems)
    site = root.get(
        "site",
        str,
        None,
        check=lambda v: None if 0 < len(v) <= 253 else "must be 1 to 253 characters",
    )
    store = _store(root.table("store"), base)
    keys = _keys(root.table("keys"), base)

    proxy = root.table("proxy")
    trusted = []
    for entry in proxy.get("trusted", list, []):
        net = _network(entry) if isinstance(entry, str) else f"{entry!r} is not a string"
        if isinstance(net, str):
            proxy.problem(proxy.key("trusted"), net)
        else:
            trusted.append(net)
    proxy.close()

    geoip = root.table("geoip")
    geoip_path = geoip.get("path", str, None)
    geoip.close()

    rem = root.table("remote")
    secret_file = rem.get("secret_file", str, None)
    remote = RemoteConfig(
        url=rem.get(
            "url",
            str,
            None,
            check=lambda v: (
                None
                if v.startswith(("http://", "https://"))
                else f"must be an http:// or https:// URL, got {v!r}"
            ),
        ),
        secret_file=base / secret_file if secret_file else None,
        timeout=rem.get("timeout", float, 5.0, check=_positive),
        shutdown_grace=rem.get("shutdown_grace", float, 10.0, check=_positive),
    )
    rem.close()

    cap = root.table("capture")
    retries = cap.get(
        "max_retries", int, 3, check=lambda v: None if v >= 0 else "must be 0 or more"
    )
    include, exclude, exclude_statuses = parse_counting(cap)
    capture = CaptureConfig(
        queue_size=cap.get("queue_size", int, 10_000, check=_positive),
        batch_size=cap.get("batch_size", int, 1_000, check=_positive),
        flush_interval=cap.get("flush_interval", float, 0.25, check=_positive),
        # a collector that is down comes back: retry without limit, bounded by queue_size
        max_retries=None if remote.url else retries,
        include=include,
        exclude=exclude,
        exclude_statuses=exclude_statuses,
    )
    cap.close()

    ing = root.table("ingest")
    ingest = IngestConfig(
        rate=ing.get("rate", float, 20.0, check=_positive),
        burst=ing.get("burst", int, 200, check=_positive),
        sites=_sites(ing),
    )
    ing.close()
    if site is not None and ingest.sites is not None and len(ingest.sites) > 1:
        root.problem(
            "site",
            "names one site for every event; a collector serving several sites "
            "(ingest.sites) records each beacon's site from its Origin: leave site out",
        )

    con = root.table("consent")
    consent = ConsentConfig(
        secure_cookie=con.get("secure_cookie", bool, True),
        cookie_days=con.get(
            "cookie_days",
            int,
            180,
            check=lambda v: (
                None if 1 <= v <= 400 else "must be 1 to 400 days (browsers cap cookies at 400)"
            ),
        ),
        rate=con.get("rate", float, 1.0, check=_positive),
        burst=con.get("burst", int, 20, check=_positive),
        max_changes_per_day=con.get("max_changes_per_day", int, 50, check=_positive),
        withdrawal_deletes=con.get("withdrawal_deletes", bool, True),
    )
    con.close()

    query = root.table("query")
    k = query.get("min_group_size", int, 5, check=lambda v: None if v >= 1 else "must be 1 or more")
    query.close()

    policy = parse_policy(root.table("policy")) if "policy" in data else DEFAULT_POLICY
    root.close()
    if problems:
        raise ConfigError(problems, str(source) if source else "built-in defaults")

    warnings = []
    if not policy.controller.contact:
        warnings.append("policy.controller.contact is empty: data subjects have no one to ask")
    if not policy.dpo.contact:
        warnings.append(
            "policy.dpo.contact is empty: the policy promises a Data Protection Officer"
        )
    for f in policy.app_fields.values():
        if f.special:
            warnings.append(
                f"policy.fields.{f.name}: special category {f.special!r}; veil "
                "refuses it unless the subject's explicit prior consent for it is "
                "on the consent ledger"
            )
    if not consent.secure_cookie:
        warnings.append(
            "consent.secure_cookie = false: subject cookies without the __Host- "
            "prefix can be planted by a sibling subdomain or on the network; use it "
            "only for plain-HTTP development"
        )
    if k < 5:
        warnings.append(f"query.min_group_size = {k}: groups this small can re-identify people")
    return Config(
        source=source,
        site=site,
        store=store,
        keys=keys,
        trusted_proxies=tuple(trusted),
        geoip_path=base / geoip_path if geoip_path else None,
        capture=capture,
        ingest=ingest,
        remote=remote,
        consent=consent,
        min_group_size=k,
        policy=policy,
        warnings=tuple(warnings),
    )
