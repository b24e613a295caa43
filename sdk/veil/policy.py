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
from dataclasses import dataclass, field

from .errors import FieldError
from .registry import FIELDS, SPECIAL_CATEGORIES
from .tables import Table

LEGAL_BASES = ("consent", "contract", "legal_obligation", "vital_interests", "public_task",
               "legitimate_interests")  # GDPR Art. 6(1) (a)-(f)
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


def policy_digest(policy: "Policy") -> str:
    """SHA-256 of the policy's content, canonical: the same policy always hashes the same."""
    def plain(o: object) -> object:
        return sorted(o) if isinstance(o, set | frozenset) else str(o)

    text = json.dumps(dataclasses.asdict(policy), default=plain, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def parse_duration(text: str) -> dt.timedelta | None:
    """'12h', '30d' or '2w' as a timedelta; None when the text is not of that form."""
    m = _DURATION.match(text.strip())
    if not m or int(m[1]) == 0:
        return None
    return dt.timedelta(**{_UNITS[m[2]]: int(m[1])})


def duration_problem(text: str) -> str | None:
    if parse_duration(text):
        return None
    return f"must be a duration like '12h', '30d' or '2w', got {text!r}"


def one_of(choices: tuple[str, ...]):
    def check(value: str) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}, got {value!r}"
    return check


def _country(code: str) -> str | None:
    if re.fullmatch(r"[A-Z]{2}", code):
        return None
    return f"must be an ISO 3166-1 alpha-2 code like 'DE', got {code!r}"


@dataclass(frozen=True, slots=True)
class Contact:
    name: str
    contact: str


@dataclass(frozen=True, slots=True)
class Purpose:
    key: str
    description: str
    data_use: str
    legal_basis: str
    needs_consent: bool
    retention: dt.timedelta
    fields: frozenset[str]

    def allows(self, field_name: str) -> bool:
        return field_name in self.fields


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


@dataclass(frozen=True, slots=True)
class Recipient:
    name: str
    country: str
    role: str
    purposes: tuple[str, ...]
    safeguard: str


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

    @property
    def decision_purposes(self) -> frozenset[str]:
        """Purposes that feed automated decisions: never open to per-subject analyst reads."""
        return frozenset(d.purpose for d in self.decisions.values())

    def purpose(self, key: str) -> Purpose:
        try:
            return self.purposes[key]
        except KeyError:
            raise FieldError(
                f"unknown purpose {key!r}: the policy declares {', '.join(self.purposes)}"
            ) from None


def _contact(t: Table) -> Contact:
    c = Contact(t.get("name", str), t.get("contact", str))
    t.close()
    return c


def _purpose(key: str, t: Table, app_fields: dict[str, AppField]) -> Purpose:
    def fields_problem(names: list) -> str | None:
        known = FIELDS.keys() | app_fields.keys()
        unknown = [n for n in names if n not in known]
        if unknown:
            return (f"unknown field(s) {unknown}: collectable fields are {sorted(FIELDS)}, "
                    "plus those declared under [policy.fields]")
        return None if names else "must name at least one field"

    basis = t.get("legal_basis", str, check=one_of(LEGAL_BASES))
    consent = t.get("consent", bool, basis == "consent")
    if basis == "consent" and not consent:
        t.problem(t.key("consent"), "cannot be false when legal_basis is 'consent'")
    names = t.get("fields", list, [], check=fields_problem) or []
    if not consent and (bad := sorted(CONSENT_ONLY_FIELDS.intersection(names))):
        t.problem(t.key("fields"), f"{bad} may only be collected under a purpose that needs "
                                   "consent (the policy's cookie section)")
    retention = t.get("retention", str, check=duration_problem)
    p = Purpose(
        key=key,
        description=t.get("description", str),
        data_use=t.get("data_use", str),
        legal_basis=basis,
        needs_consent=consent,
        retention=parse_duration(retention) if retention else dt.timedelta(0),
        fields=frozenset(names),
    )
    t.close()
    return p


def _app_field(name: str, t: Table) -> AppField:
    if name in FIELDS:
        t.problem(t.path, f"{name!r} is a built-in field; choose another name")
    special = t.get("special", str, None, check=one_of(tuple(SPECIAL_CATEGORIES)))
    f = AppField(name=name, type=t.get("type", str, check=one_of(tuple(FIELD_TYPES))),
                 category=t.get("category", str), special=special,
                 description=t.get("description", str))
    t.close()
    return f


def _decision(key: str, t: Table, purposes: dict[str, Purpose]) -> DecisionType:
    def bases_problem(bases: list) -> str | None:
        bad = [b for b in bases if b not in DECISION_BASES]
        if bad or not bases:
            return f"must name one or more of {', '.join(DECISION_BASES)}, got {bases}"
        return None

    d = DecisionType(
        key=key, description=t.get("description", str),
        legal_effect=t.get("legal_effect", bool),
        bases=tuple(t.get("bases", list, check=bases_problem) or ()),
        purpose=t.get("purpose", str, check=lambda v: None if v in purposes
                      else f"names undeclared purpose {v!r}"),
    )
    t.close()
    return d


def _date(value: object) -> str | None:
    return None if isinstance(value, dt.date) and not isinstance(value, dt.datetime) else (
        f"must be a date like 2026-11-25, got {value!r}")


def parse_policy(t: Table) -> Policy:
    """Read a `[policy]` table; problems land in `t.problems`."""
    fields_t = t.table("fields")
    app_fields = {name: _app_field(name, fields_t.table(name)) for name in list(fields_t.data)}
    purposes_t = t.table("purposes", required=True)
    purposes = {}
    for key in list(purposes_t.data):
        if not _KEY.match(key):
            purposes_t.problem(purposes_t.key(key), "purpose keys are lower_snake_case, "
                                                    "at most 40 characters")
        purposes[key] = _purpose(key, purposes_t.table(key), app_fields)
    if not purposes and "purposes" in t.data:
        purposes_t.problem(purposes_t.path, "must declare at least one purpose")
    decisions_t = t.table("decisions")
    decisions = {k: _decision(k, decisions_t.table(k), purposes) for k in list(decisions_t.data)}
    def declared(names: list) -> str | None:
        undeclared = sorted(set(names) - purposes.keys())
        return f"names undeclared purpose(s) {undeclared}" if undeclared else None

    recipients = []
    for i, raw in enumerate(t.get("recipients", list, [])):
        r = Table(raw, f"{t.key('recipients')}[{i}]", t.problems)
        recipients.append(Recipient(
            name=r.get("name", str),
            country=r.get("country", str, check=_country),
            role=r.get("role", str, check=one_of(RECIPIENT_ROLES)),
            purposes=tuple(r.get("purposes", list, check=declared) or ()),
            safeguard=r.get("safeguard", str, check=one_of(SAFEGUARDS)),
        ))
        r.close()
    changes = []
    for i, raw in enumerate(t.get("changes", list, [])):
        c = Table(raw, f"{t.key('changes')}[{i}]", t.problems)
        changes.append(Change(c.get("version", str), c.get("effective", dt.date, check=_date),
                              c.get("summary", str)))
        c.close()
    policy = Policy(
        version=t.get("version", str, check=lambda v: None if v.strip() else "must not be empty"),
        effective=t.get("effective", dt.date, check=_date),
        controller=_contact(t.table("controller", required=True)),
        dpo=_contact(t.table("dpo", required=True)),
        purposes=purposes,
        recipients=tuple(recipients),
        changes=tuple(changes),
        app_fields=app_fields,
        decisions=decisions,
        consent_model=t.get("consent_model", str, "opt-in", check=one_of(CONSENT_MODELS)),
    )
    for table in (fields_t, purposes_t, decisions_t, t):
        table.close()
    return policy


_AUTOMATIC = frozenset({"ip_address", "port", "user_agent", "accept_language", "gpc", "dnt",
                        "screen", "pixel_ratio", "navigator_language"})

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
