"""The privacy policy as code: purposes, legal bases, retention, fields, recipients.

A `[policy]` table in `veil.toml` declares it; without one, `DEFAULT_POLICY` applies, which
mirrors `privacy-policy.txt`: a `connection` purpose for the automatically acquired data and a
consent-based `browsing_history` purpose for what the cookie section allows.
"""

import dataclasses
import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from .countries import ALPHA2
from .countries import normalise as normalise_country
from .errors import UnknownPurpose
from .jurisdiction import GDPR_AREA, eu_adequate
from .paths import PathRule, parse_rules, rewrite
from .registry import FIELDS, SPECIAL_CATEGORIES, special_categories_for
from .tables import Table

LEGAL_BASES = (
    "consent",
    "contract",
    "legal_obligation",
    "vital_interests",
    "public_task",
    "legitimate_interests",
)  # GDPR Art. 6(1) (a)-(f)
RECIPIENT_ROLES = ("processor", "third_party")
SAFEGUARDS = ("domestic", "adequacy", "scc", "appi_equivalent")
FIELD_TYPES = {"string": str, "integer": int, "number": float, "boolean": bool}
DECISION_BASES = ("explicit_consent", "contract", "law")  # GDPR Art. 22(2) (c), (a), (b)
# "opt-in": consent-based purposes need a prior grant everywhere (the policy acquires personal
# information "with the consent of an individual"). "regional": California's opt-out regime
# (CCPA/CPRA) collects until a refusal, a withdrawal or GPC; everywhere else stays opt-in.
CONSENT_MODELS = ("opt-in", "regional")
CONSENT_ONLY_FIELDS = frozenset({"path"})  # browsing history: the policy's cookie section
_KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_DURATION = re.compile(r"^(\d+)([hdw])$")
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}
# Longer means "forever", which a policy cannot promise, and overflows date arithmetic.
MAX_DURATION = dt.timedelta(days=36525)  # 100 years


# Keys added to the policy after its first release enter the digest only when they differ from
# their default: upgrading veil must never make an unchanged policy look changed (its store
# would refuse it), while setting one of them is a change that needs a version bump.
_DIGEST_IF_SET = frozenset(
    {"paths", "country", "contracts", "laws", "dpf_certified", "consent_model", "complaints"}
    | {"appi_record", "records", "legal_holds"}  # retention for everything (retention.py)
    | {"analytics"}  # the uses analysts may read a purpose's rows for (analytics/analysts.py)
)
# Uses an analyst's read may serve, by default, under each legal basis: aggregate statistics
# about the service for consent and legitimate-interests purposes; none for the others (a
# contract, a law or a vital interest names what the data is for, and statistics is not it).
DEFAULT_ANALYTICS = {"consent": ("statistics",), "legitimate_interests": ("statistics",)}


def _canonical(o: object) -> object:
    """`dataclasses.asdict`, sets sorted, post-release keys left out while at their default."""
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        out = {}
        for f in dataclasses.fields(o):
            value = getattr(o, f.name)
            if f.name in _DIGEST_IF_SET and value == f.default:
                continue
            out[f.name] = _canonical(value)
        return out
    if isinstance(o, dict):
        return {k: _canonical(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_canonical(v) for v in o]
    if isinstance(o, set | frozenset):
        return sorted(o)
    return o


def policy_digest(policy: "Policy") -> str:
    """SHA-256 of the policy's content, canonical: the same policy always hashes the same."""
    text = json.dumps(_canonical(policy), default=str, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def parse_duration(text: str) -> dt.timedelta | None:
    """'12h', '30d' or '2w' as a timedelta; None when the text is not of that form, or is
    longer than MAX_DURATION (never an OverflowError: `--since 99999999999d` is bad input)."""
    m = _DURATION.match(text.strip())
    if not m:
        return None
    try:
        value = dt.timedelta(**{_UNITS[m[2]]: int(m[1])})
    except (OverflowError, ValueError):  # beyond a timedelta, or too many digits for int()
        return None
    return value if dt.timedelta(0) < value <= MAX_DURATION else None


def duration_problem(text: str) -> str | None:
    if parse_duration(text):
        return None
    shown = text if len(text) <= 40 else f"{text[:20]}…{text[-4:]}"
    m = _DURATION.match(text.strip())
    if m and m[1].strip("0"):  # the right form, but longer than any date arithmetic holds
        return f"must be at most {MAX_DURATION.days}d (100 years), got {shown!r}"
    return f"must be a duration like '12h', '30d' or '2w', got {shown!r}"


def one_of(choices: tuple[str, ...]) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}, got {value!r}"

    return check


def _country(code: str) -> str | None:
    if code in ALPHA2:
        return None
    hint = normalise_country(code)
    return f"must be an ISO 3166-1 alpha-2 code like 'DE', got {code!r}" + (
        f" (did you mean {hint!r}?)" if hint else ""
    )


@dataclass(frozen=True, slots=True)
class Contact:
    name: str
    contact: str
    # The controller's country (ISO alpha-2). Unset: unknown, so no recipient counts as
    # domestic (safeguard "domestic" is refused). The DPO has none.
    country: str | None = None


@dataclass(frozen=True, slots=True)
class Complaints:
    """`[policy.complaints]`: the supervisory authority a subject may complain to (GDPR Art.
    77; the PPC under the APPI), named in the answer to every complaint."""

    authority: str
    url: str


@dataclass(frozen=True, slots=True)
class Purpose:
    key: str
    description: str
    data_use: str
    legal_basis: str
    needs_consent: bool
    retention: dt.timedelta
    fields: frozenset[str]
    # `analytics = [...]`: the uses analysts may read its rows for; None: DEFAULT_ANALYTICS
    # by its legal basis. Policy.analytics_uses is what holds (decision purposes: none).
    analytics: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class AppField:
    """A field an app records itself (`veil.record`), declared in the policy."""

    name: str
    type: str
    category: str
    special: str | None  # a special category of the policy, if the field is one
    description: str


@dataclass(frozen=True, slots=True)
class DecisionType:
    """An automated decision the app takes (`veil.decide`)."""

    key: str
    description: str
    legal_effect: bool  # legal or similarly significant effect (GDPR Art. 22(1))
    bases: tuple[str, ...]
    purpose: str
    contracts: tuple[str, ...] = ()  # the contracts it may rest on (Art. 22(2)(a)), by name
    laws: tuple[str, ...] = ()  # the laws that authorise it (Art. 22(2)(b)), by name


@dataclass(frozen=True, slots=True)
class Recipient:
    name: str
    country: str
    role: str
    purposes: tuple[str, ...]
    safeguard: str
    dpf_certified: bool = False  # a US recipient certified under the EU-US Data Privacy Framework
    # How the provision register's records for this recipient are made, which sets how long
    # APPI Art. 29(2) keeps them (retention.py PROVISION_YEARS): "each" provision recorded on
    # its own, "collective" for continuous or repeated provision, "contract" by the contract.
    appi_record: str = "each"


# veil's own records and what retention may dispose of (retention.py, docs/retention.md).
APPI_RECORD_METHODS = ("each", "collective", "contract")
HOLD_KINDS = ("events", "records", "consent", "decisions", "provisions")
PROOF_PERIOD = dt.timedelta(days=1095)  # three years: GDPR Art. 7(1), 22(3) demonstrability


@dataclass(frozen=True, slots=True)
class RecordsRetention:
    """`[policy.records]`: how long veil keeps its own records of what happened."""

    consent_proof: dt.timedelta = PROOF_PERIOD  # a ledger row, once no longer in force
    decisions: dt.timedelta = PROOF_PERIOD  # a decision, after it or its latest review
    rights_requests: dt.timedelta = PROOF_PERIOD  # a data subject's request, once answered


@dataclass(frozen=True, slots=True)
class LegalHold:
    """`[[policy.legal_holds]]`: records of a kind (of some purposes, or all) that a law
    requires kept; retention leaves them until `until` passes or the hold is removed."""

    kind: str
    reference: str  # the law and article that requires them kept
    purposes: tuple[str, ...] = ()  # empty: every purpose
    until: dt.date | None = None

    def holds(self, kind: str, purpose: str | None, today: dt.date) -> bool:
        return (
            self.kind == kind
            and (not self.purposes or purpose in self.purposes)
            and (self.until is None or today < self.until)
        )


@dataclass(frozen=True, slots=True)
class Change:
    version: str
    effective: dt.date
    summary: str


@dataclass(frozen=True, slots=True)
class Policy:
    version: str
    effective: dt.date
    controller: Contact
    dpo: Contact
    purposes: dict[str, Purpose]
    recipients: tuple[Recipient, ...] = ()
    changes: tuple[Change, ...] = ()
    app_fields: dict[str, AppField] = field(default_factory=dict)
    decisions: dict[str, DecisionType] = field(default_factory=dict)
    consent_model: str = "opt-in"
    paths: tuple[PathRule, ...] = ()  # paths dropped or templated before storage (paths.py)
    records: RecordsRetention = RecordsRetention()
    legal_holds: tuple[LegalHold, ...] = ()
    complaints: Complaints | None = None  # the supervisory authority ([policy.complaints])

    def stored_path(self, path: str | None) -> str | None:
        """What is stored for a page path: itself, its `[[policy.paths]]` template, or None
        when a rule drops it (paths.py)."""
        return rewrite(self.paths, path) if self.paths else path

    @property
    def decision_purposes(self) -> frozenset[str]:
        """Purposes that feed automated decisions: never open to per-subject analyst reads."""
        return frozenset(d.purpose for d in self.decisions.values())

    def analytics_uses(self, key: str) -> frozenset[str]:
        """The uses an analyst may read purpose `key`'s rows for: its `analytics` list, or
        DEFAULT_ANALYTICS by its legal basis; none for a purpose that feeds decisions."""
        p = self.purpose(key)
        if key in self.decision_purposes:
            return frozenset()
        if p.analytics is not None:
            return frozenset(p.analytics)
        return frozenset(DEFAULT_ANALYTICS.get(p.legal_basis, ()))

    def purpose(self, key: str) -> Purpose:
        try:
            return self.purposes[key]
        except KeyError:
            raise UnknownPurpose(
                f"unknown purpose {key!r}: the policy declares {', '.join(self.purposes)}"
            ) from None


def _contact(t: Table, with_country: bool = False) -> Contact:
    country = t.get("country", str, None, check=_country) if with_country else None
    c = Contact(t.get("name", str), t.get("contact", str), country)
    t.close()
    return c


def _url(value: str) -> str | None:
    return (
        None
        if re.fullmatch(r"https://[^\s/]+\S*", value)
        else f"must be an https:// URL, got {value!r}"
    )


def _complaints(t: Table) -> Complaints | None:
    if t.absent:
        return None
    c = Complaints(
        t.get("authority", str, check=lambda v: None if v.strip() else "must name the authority"),
        t.get("url", str, check=_url),
    )
    t.close()
    return c


def _purpose(key: str, t: Table, app_fields: dict[str, AppField]) -> Purpose:
    def fields_problem(names: list[object]) -> str | None:
        known = FIELDS.keys() | app_fields.keys()
        unknown = [n for n in names if n not in known]
        if unknown:
            return (
                f"unknown field(s) {unknown}: collectable fields are {sorted(FIELDS)}, "
                "plus those declared under [policy.fields]"
            )
        return None if names else "must name at least one field"

    basis = t.get("legal_basis", str, check=one_of(LEGAL_BASES))
    consent = t.get("consent", bool, basis == "consent")
    if basis == "consent" and not consent:
        t.problem(t.key("consent"), "cannot be false when legal_basis is 'consent'")
    names = t.get("fields", list, [], check=fields_problem) or []
    if not consent and (bad := sorted(CONSENT_ONLY_FIELDS.intersection(names))):
        t.problem(
            t.key("fields"),
            f"{bad} may only be collected under a purpose that needs "
            "consent (the policy's cookie section)",
        )
    retention_text = t.get("retention", str, check=duration_problem)
    # a text that passed duration_problem parses; an absent or bad one (reported) reads as 0
    retention = (parse_duration(retention_text) if retention_text else None) or dt.timedelta(0)
    analytics = t.get("analytics", list, None, check=_uses_problem)
    p = Purpose(
        key=key,
        description=t.get("description", str),
        data_use=t.get("data_use", str),
        legal_basis=basis,
        needs_consent=consent,
        retention=retention,
        fields=frozenset(names),
        analytics=None if analytics is None else tuple(analytics),
    )
    t.close()
    return p


def _uses_problem(uses: list[object]) -> str | None:
    bad = [u for u in uses if not isinstance(u, str) or not _KEY.match(u)]
    if bad:
        return f"must list uses as lower_snake_case names (like 'statistics'), got {bad}"
    return f"names {uses[0]!r} twice" if len(set(uses)) != len(uses) else None


def _app_field(name: str, t: Table) -> AppField:
    if name in FIELDS:
        t.problem(t.path, f"{name!r} is a built-in field; choose another name")
    special = t.get("special", str, None, check=one_of(tuple(SPECIAL_CATEGORIES)))
    category = t.get("category", str)
    # Special-category data is special whatever the operator marks: the category decides.
    implied = special_categories_for(category) if category else ()
    if implied and special not in implied and (special is not None or "special" not in t.data):
        choices = " or ".join(f'"{s}"' for s in implied)
        t.problem(
            t.key("special"),
            f"category {category!r} is special-category data: declare "
            f"special = {choices}"
            + (f", not {special!r}" if special else "")
            + " (veil then refuses it without the subject's explicit prior consent)",
        )
    f = AppField(
        name=name,
        type=t.get("type", str, check=one_of(tuple(FIELD_TYPES))),
        category=category,
        special=special,
        description=t.get("description", str),
    )
    t.close()
    return f


def _names_problem(names: list[object]) -> str | None:
    bad = [
        n
        for n in names
        if not isinstance(n, str) or not n.strip() or n != n.strip() or len(n) > 100
    ]
    if bad:
        return (
            f"must be names (non-empty strings, no surrounding spaces, at most 100 "
            f"characters), got {bad}"
        )
    return f"names {names[0]!r} twice" if len(set(names)) != len(names) else None


def _decision(key: str, t: Table, purposes: dict[str, Purpose]) -> DecisionType:
    def bases_problem(bases: list[object]) -> str | None:
        bad = [b for b in bases if b not in DECISION_BASES]
        if bad or not bases:
            return f"must name one or more of {', '.join(DECISION_BASES)}, got {bases}"
        return None

    bases = tuple(t.get("bases", list, check=bases_problem) or ())
    named = {}
    # A contract or law basis holds only under a name the policy declares (Art. 22(2)(a), (b)):
    # `decide(..., contract=...)` accepts nothing else.
    for basis, names, letter in (("contract", "contracts", "a"), ("law", "laws", "b")):
        named[names] = tuple(t.get(names, list, [], check=_names_problem) or ())
        if basis in bases and t.data.get(names) in (None, []):
            t.problem(
                t.key(names),
                f"is required when bases includes {basis!r}: name the "
                f"{names} this decision may rest on (GDPR Art. 22(2)"
                f"({letter}))",
            )
        elif named[names] and basis not in bases:
            t.problem(t.key(names), f"declares {names}, but bases does not include {basis!r}")
    d = DecisionType(
        key=key,
        description=t.get("description", str),
        legal_effect=t.get("legal_effect", bool),
        bases=bases,
        purpose=t.get(
            "purpose",
            str,
            check=lambda v: None if v in purposes else f"names undeclared purpose {v!r}",
        ),
        contracts=named["contracts"],
        laws=named["laws"],
    )
    t.close()
    return d


def _date(value: object) -> str | None:
    return (
        None
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime)
        else (f"must be a date like 2026-11-25, got {value!r}")
    )


def domestic(recipient_country: str, controller_country: str | None) -> bool:
    """Whether a recipient is in the controller's country (or both are where the GDPR applies:
    no transfer abroad under its Chapter V). An undeclared controller country: never."""
    if controller_country is None:
        return False
    return recipient_country == controller_country or (
        recipient_country in GDPR_AREA and controller_country in GDPR_AREA
    )


def _check_safeguard(r: Recipient, controller_country: str | None, t: Table) -> None:
    """A declared safeguard must be one that can hold for where the recipient is."""
    if r.country is None or r.safeguard is None:
        return  # already reported
    if r.dpf_certified and r.country != "US":
        t.problem(
            t.key("dpf_certified"),
            "only a US recipient can be certified under the EU-US Data Privacy Framework",
        )
    if r.safeguard == "domestic" and not domestic(r.country, controller_country):
        where = (
            f"the controller is in {controller_country}"
            if controller_country
            else "policy.controller.country is not declared, so every recipient is abroad"
        )
        t.problem(
            t.key("safeguard"),
            f"'domestic', but {r.name or 'the recipient'} is in "
            f"{r.country} and {where}: declare 'scc', 'adequacy' or "
            "'appi_equivalent'",
        )
    if (
        r.safeguard == "adequacy"
        and r.country not in GDPR_AREA
        and not eu_adequate(r.country, r.dpf_certified)
    ):
        why = (
            "the EU-US Data Privacy Framework covers certified organisations only: set "
            "dpf_certified = true if the recipient is certified"
            if r.country == "US"
            else f"{r.country} has no EU adequacy decision"
        )
        t.problem(t.key("safeguard"), f"'adequacy', but {why}; otherwise declare 'scc'")


def _changes(t: Table, version: str | None, effective: dt.date | None) -> tuple[Change, ...]:
    """`[[policy.changes]]`: once there is a change log, the current version must be in it."""
    changes: list[Change] = []
    for i, raw in enumerate(t.get("changes", list, [])):
        c = Table(raw, f"{t.key('changes')}[{i}]", t.problems)
        change = Change(
            c.get("version", str),
            c.get("effective", dt.date, check=_date),
            c.get("summary", str, check=lambda v: None if v.strip() else "must say what changed"),
        )
        if change.version is not None and any(x.version == change.version for x in changes):
            c.problem(c.key("version"), f"{change.version!r} has two entries")
        if (
            change.version == version
            and effective
            and change.effective
            and change.effective != effective
        ):
            c.problem(
                c.key("effective"),
                f"{change.effective} differs from policy.effective "
                f"{effective} for the current version",
            )
        changes.append(change)
        c.close()
    if changes and version and all(c.version != version for c in changes):
        t.problem(
            t.key("changes"),
            f"has no entry for the current version {version!r}: add a "
            "[[policy.changes]] entry with that version, its effective "
            "date and what changed",
        )
    return tuple(changes)


def _records(t: Table) -> RecordsRetention:
    """`[policy.records]`; each period absent keeps its default."""

    def period(name: str, default: dt.timedelta) -> dt.timedelta:
        text = t.get(name, str, None, check=duration_problem)
        return (parse_duration(text) if text else None) or default

    r = RecordsRetention(
        consent_proof=period("consent_proof", PROOF_PERIOD),
        decisions=period("decisions", PROOF_PERIOD),
        rights_requests=period("rights_requests", PROOF_PERIOD),
    )
    t.close()
    return r


def _legal_holds(t: Table, purposes: dict[str, Purpose]) -> tuple[LegalHold, ...]:
    """`[[policy.legal_holds]]`: each names a kind, the law that requires it, and optionally
    the purposes (consent: scopes) it covers and the date it ends."""
    holds = []
    for i, raw in enumerate(t.get("legal_holds", list, [])):
        h = Table(raw, f"{t.key('legal_holds')}[{i}]", t.problems)
        named = h.get("purposes", list, [], check=_names_problem) or []
        if undeclared := [p for p in named if p not in purposes]:
            h.problem(h.key("purposes"), f"names undeclared purpose(s) {undeclared}")
        holds.append(
            LegalHold(
                kind=h.get("kind", str, check=one_of(HOLD_KINDS)),
                reference=h.get(
                    "reference",
                    str,
                    check=lambda v: (
                        None if v.strip() else "must name the law that requires the records kept"
                    ),
                ),
                purposes=tuple(named),
                until=h.get("until", dt.date, None, check=_date),
            )
        )
        h.close()
    return tuple(holds)


def parse_policy(t: Table) -> Policy:
    """Read a `[policy]` table; problems land in `t.problems`."""
    fields_t = t.table("fields")
    app_fields = {name: _app_field(name, fields_t.table(name)) for name in list(fields_t.data)}
    purposes_t = t.table("purposes", required=True)
    purposes = {}
    for key in list(purposes_t.data):
        if not _KEY.match(key):
            purposes_t.problem(
                purposes_t.key(key), "purpose keys are lower_snake_case, at most 40 characters"
            )
        purposes[key] = _purpose(key, purposes_t.table(key), app_fields)
    if not purposes and "purposes" in t.data:
        purposes_t.problem(purposes_t.path, "must declare at least one purpose")
    decisions_t = t.table("decisions")
    decisions = {k: _decision(k, decisions_t.table(k), purposes) for k in list(decisions_t.data)}
    for d in decisions.values():  # a decision purpose stays closed to analysts, whatever it says
        if (fed := purposes.get(d.purpose)) is not None and fed.analytics:
            purposes_t.problem(
                f"{purposes_t.key(d.purpose)}.analytics",
                f"must be empty: purpose {d.purpose!r} feeds the automated decision "
                f"{d.key!r}, and its rows are never open to analysts",
            )

    def declared(names: list[object]) -> str | None:
        # key=str: a TOML array may mix types ("a", 1), which do not compare with each other
        undeclared = sorted(set(names) - purposes.keys(), key=str)
        return f"names undeclared purpose(s) {undeclared}" if undeclared else None

    controller = _contact(t.table("controller", required=True), with_country=True)
    recipients = []
    for i, raw in enumerate(t.get("recipients", list, [])):
        r = Table(raw, f"{t.key('recipients')}[{i}]", t.problems)
        recipients.append(
            Recipient(
                name=r.get("name", str),
                country=r.get("country", str, check=_country),
                role=r.get("role", str, check=one_of(RECIPIENT_ROLES)),
                purposes=tuple(r.get("purposes", list, check=declared) or ()),
                safeguard=r.get("safeguard", str, check=one_of(SAFEGUARDS)),
                dpf_certified=r.get("dpf_certified", bool, False),
                appi_record=r.get("appi_record", str, "each", check=one_of(APPI_RECORD_METHODS)),
            )
        )
        _check_safeguard(recipients[-1], controller.country, r)
        r.close()
    version = t.get("version", str, check=lambda v: None if v.strip() else "must not be empty")
    effective = t.get("effective", dt.date, check=_date)
    changes = _changes(t, version, effective)
    policy = Policy(
        version=version,
        effective=effective,
        controller=controller,
        dpo=_contact(t.table("dpo", required=True)),
        purposes=purposes,
        recipients=tuple(recipients),
        changes=tuple(changes),
        app_fields=app_fields,
        decisions=decisions,
        consent_model=t.get("consent_model", str, "opt-in", check=one_of(CONSENT_MODELS)),
        paths=parse_rules(t),
        complaints=_complaints(t.table("complaints")),
        records=_records(t.table("records")),
        legal_holds=_legal_holds(t, purposes),
    )
    for table in (fields_t, purposes_t, decisions_t, t):
        table.close()
    return policy


_AUTOMATIC = frozenset(
    {
        "ip_address",
        "port",
        "user_agent",
        "accept_language",
        "gpc",
        "dnt",
        "screen",
        "pixel_ratio",
        "navigator_language",
    }
)

DEFAULT_POLICY = Policy(
    version="1.0",
    effective=dt.date(2026, 11, 25),
    controller=Contact("The operator of this service", ""),
    dpo=Contact("Data Protection Officer", ""),
    purposes={
        "connection": Purpose(
            key="connection",
            description="Initiate and maintain the communication connections our Internet-based "
            "services require (policy: Automatic Acquisition).",
            data_use="essential.service",
            legal_basis="legitimate_interests",
            needs_consent=False,
            retention=dt.timedelta(days=30),
            fields=_AUTOMATIC,
        ),
        "browsing_history": Purpose(
            key="browsing_history",
            description="Improve the quality of our services from browsing history and logs "
            "obtained with cookies (policy: Use of Cookie).",
            data_use="functional.service.improve",
            legal_basis="consent",
            needs_consent=True,
            retention=dt.timedelta(days=90),
            fields=_AUTOMATIC | {"path"},
        ),
    },
    changes=(Change("1.0", dt.date(2026, 11, 25), "First published policy."),),
)
