"""The privacy notice, rendered from the policy and config veil enforces.

`render_notice(config, "md" | "html")` reads the same `Policy`, field registry and runtime keys
the pipeline uses, so the notice cannot drift from what the code collects. The notice is built
once as a list of blocks (headings, paragraphs, lists, tables) and rendered to Markdown or to a
standalone HTML page; every string from the policy is escaped for the format it lands in.
"""

import datetime as dt
import html
import re
from collections.abc import Iterable
from dataclasses import dataclass

from .config import Config
from .http.routes import CONSENT_PATH, HUMAN_REVIEW_PATH, RIGHTS_PAGE_PATH
from .policy import Contact, DecisionType, Policy, Purpose
from .registry import FIELDS, SPECIAL_CATEGORIES

FORMATS = ("md", "html")
MEDIA_TYPES = {"md": "text/markdown; charset=utf-8", "html": "text/html; charset=utf-8"}
# (right, endpoint): the data subject's requests, policy "Disclosure / Revision". A right with
# no endpoint (None) is asked of the Data Protection Officer: the notice names only endpoints
# that exist.
RIGHTS = (  # each at its own endpoint, all of them from the page at RIGHTS_PAGE_PATH
    (
        "Disclosure: a copy of your personal information in a portable, machine-readable format "
        "(GDPR Art. 20), as JSON or CSV",
        "/veil/rights/export",
    ),
    ("Correction of your personal information", "/veil/rights/correct"),
    ("Suspension of use of your personal information", "/veil/rights/suspend"),
    ("Restriction of use of your personal information", "/veil/rights/restrict"),
    ("Deletion (disposal) of your personal information", "/veil/rights/delete"),
    ("Objection to processing based on legitimate interests (GDPR Art. 21)", "/veil/rights/object"),
    (
        "Complaint to us; you may also lodge a complaint with a supervisory authority "
        "(GDPR Art. 77)",
        "/veil/rights/complaint",
    ),
    ("Give, refuse or withdraw consent, purpose by purpose, at any time", CONSENT_PATH),
    ("Human review of an automated decision about you, and to contest it", HUMAN_REVIEW_PATH),
)
LEGAL_BASIS_WORDS = {  # GDPR Art. 6(1)
    "consent": ("your consent", "a"),
    "contract": ("performance of a contract with you", "b"),
    "legal_obligation": ("compliance with a legal obligation", "c"),
    "vital_interests": ("protection of vital interests", "d"),
    "public_task": ("a task carried out in the public interest", "e"),
    "legitimate_interests": ("legitimate interests", "f"),
}
DECISION_BASIS_WORDS = {  # GDPR Art. 22(2)
    "contract": "necessary for a contract with you (Art. 22(2)(a))",
    "law": "authorised by law (Art. 22(2)(b))",
    "explicit_consent": "your explicit consent (Art. 22(2)(c))",
}
ROLE_WORDS = {
    "processor": "processor (acts only on our instructions)",
    "third_party": "third party",
}
SAFEGUARD_WORDS = {
    "domestic": "none needed: not a transfer abroad",
    "adequacy": "adequacy decision",
    "scc": "standard contractual clauses (SCCs)",
    "appi_equivalent": "a system equivalent to the APPI standards",
}
NOT_SET = "not set: no contact has been published"


# -- the document model: built once, rendered to either format -------------------------------


@dataclass(frozen=True, slots=True)
class Code:
    """Inline code: keys, field names, paths."""

    text: str


Inline = str | Code | tuple["Inline", ...]


@dataclass(frozen=True, slots=True)
class Heading:
    level: int
    text: Inline


@dataclass(frozen=True, slots=True)
class Para:
    text: Inline


@dataclass(frozen=True, slots=True)
class Items:
    items: tuple[Inline, ...]


@dataclass(frozen=True, slots=True)
class Grid:
    header: tuple[str, ...]
    rows: tuple[tuple[Inline, ...], ...]


Block = Heading | Para | Items | Grid


def human_duration(td: dt.timedelta) -> str:
    """'30 days', '12 hours', '1 day'; 'not set' for zero."""
    total = int(td.total_seconds())
    if total <= 0:
        return "not set"
    for unit, seconds in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if total % seconds == 0:
            n = total // seconds
            return f"{n} {unit}{'' if n == 1 else 's'}"
    raise AssertionError("unreachable")  # every integer is a multiple of 1 second


def legal_basis_words(basis: str) -> str:
    words, letter = LEGAL_BASIS_WORDS[basis]
    return f"{words} (GDPR Art. 6(1)({letter}))"


def _join(parts: list[Inline], sep: str = ", ") -> Inline:
    out: list[Inline] = []
    for i, p in enumerate(parts):
        out += [sep, p] if i else [p]
    return tuple(out)


def _codes(names: Iterable[str]) -> Inline:
    return _join([Code(n) for n in names])


def _contact(c: Contact) -> Inline:
    return c.contact or NOT_SET


def _consent_purposes(policy: Policy) -> list[str]:
    return [p.key for p in policy.purposes.values() if p.needs_consent]


def _field_rows(policy: Policy, purpose: Purpose) -> tuple[tuple[Inline, ...], ...]:
    """One row per field of the purpose: built-in fields in registry order, then app fields."""
    rows: list[tuple[Inline, ...]] = []
    for f in FIELDS.values():
        if f.name in purpose.fields:
            rows.append((Code(f.name), f.description, Code(f.category), f.stored_as))
    for af in policy.app_fields.values():
        if af.name in purpose.fields:
            stored = f"as the application records it (a {af.type})"
            if af.special:
                stored += (
                    f"; special category ({SPECIAL_CATEGORIES[af.special]}): only with "
                    "your explicit prior consent for it"
                )
            rows.append((Code(af.name), af.description, Code(af.category), stored))
    return tuple(rows)


def _path_items(policy: Policy, purpose: Purpose) -> list[Inline]:
    """The policy's path rules, under a purpose that keeps page paths."""
    if "path" not in purpose.fields or not policy.paths:
        return []
    rules = _join(
        [
            (
                Code(r.pattern),
                " is not kept"
                if r.action == "drop"
                else (" is kept only as ", Code(r.template or "")),
            )
            for r in policy.paths
        ],
        "; ",
    )
    return [
        (
            "Pages whose path could reveal sensitive information: ",
            rules,
            " (matched ignoring case and encoding).",
        )
    ]


def _who(policy: Policy) -> list[Block]:
    return [
        Heading(2, "Who is responsible"),
        Grid(
            ("Role", "Name", "Contact"),
            (
                ("Controller", policy.controller.name, _contact(policy.controller)),
                ("Data Protection Officer", policy.dpo.name, _contact(policy.dpo)),
            ),
        ),
        *(
            [Para(f"The controller is established in {policy.controller.country} (ISO 3166-1).")]
            if policy.controller.country
            else []
        ),
    ]


def _records_para(policy: Policy) -> Para:
    """How long veil's own records are kept (retention.py), and the legal holds."""
    holds = "; ".join(
        f"{h.kind}{' of ' + ', '.join(h.purposes) if h.purposes else ''} ({h.reference})"
        for h in policy.legal_holds
    )
    return Para(
        "Our records of what happened are kept for a limited time too: a consent record for "
        f"{human_duration(policy.records.consent_proof)} after a later choice replaced it, an "
        f"automated decision for {human_duration(policy.records.decisions)} after it or its "
        f"latest review, a request you made under your rights for "
        f"{human_duration(policy.records.rights_requests)} after we answered it, a record of "
        "provision to a third party for the 1 or 3 years APPI "
        "Art. 29 requires." + (f" Kept longer because a law requires it: {holds}." if holds else "")
    )


def _purposes(policy: Policy) -> list[Block]:
    blocks: list[Block] = [
        Heading(2, "What we collect and why"),
        Para(
            "We collect only the fields listed under each purpose below, use them only for "
            "that purpose, and delete them unrecoverably when its retention period ends."
        ),
        _records_para(policy),
    ]
    for p in policy.purposes.values():
        consent: Inline = (
            (
                "required: nothing is collected for this purpose until you agree, and you can "
                "withdraw at any time at ",
                Code(CONSENT_PATH),
            )
            if p.needs_consent
            else "not required"
        )
        blocks += [
            Heading(3, ("Purpose ", Code(p.key))),
            Para(p.description),
            Items(
                (
                    ("Legal basis: ", legal_basis_words(p.legal_basis)),
                    ("Consent: ", consent),
                    ("Retention: ", human_duration(p.retention), ", then deleted unrecoverably"),
                    ("Data use (fideslang): ", Code(p.data_use)),
                    *_path_items(policy, p),
                )
            ),
            Grid(
                ("Field", "What it is", "Data category", "How it is kept"), _field_rows(policy, p)
            ),
        ]
    return blocks


def _not_collected(policy: Policy) -> list[Block]:
    used = set().union(*(p.fields for p in policy.purposes.values()))
    unused = [name for name in FIELDS if name not in used]
    consent = _consent_purposes(policy)
    items: list[Inline] = [
        "Anything not listed above: veil accepts only the fields of its closed registry and "
        "those this policy declares, and refuses any other field.",
        "Your raw IP address, port and User-Agent string are never stored in clear.",
    ]
    if unused:
        items.append(("Fields veil can collect but this policy does not: ", _codes(unused), "."))
    if consent:
        items.append(
            (
                "No cookie without your consent: a first-party cookie is set only after "
                "you agree to a purpose that needs it (",
                _codes(consent),
                ") and is "
                "removed when you withdraw. If you refuse or withdraw, a cookie that "
                "holds no identifier, only the names of the purposes you refused, "
                "remembers it (strictly necessary, so your refusal sticks). Refusing "
                "leaves the rest of the service working, though some features may be "
                "limited.",
            )
        )
    else:
        items.append("No cookie: no purpose of this policy needs consent, so none is set.")
    items.append(
        "Special categories of personal information are refused unless you have "
        "given explicit prior consent for that category and purpose: "
        + "; ".join(SPECIAL_CATEGORIES.values())
        + "."
    )
    return [Heading(2, "What we do not collect"), Items(tuple(items))]


def _basis_names(d: DecisionType, basis: str) -> str:
    """The contracts or laws a decision's contract or law basis is limited to."""
    names = d.contracts if basis == "contract" else d.laws if basis == "law" else ()
    return f": {', '.join(names)}" if names else ""


def _decisions(policy: Policy) -> list[Block]:
    blocks: list[Block] = [
        Heading(2, "Automated decisions"),
        Para(
            (
                "We make no decision based solely on automated processing, including profiling, "
                "that produces legal effects concerning you or similarly significantly affects "
                "you, except with your explicit consent or as GDPR Art. 22(2) allows (necessary "
                "for a contract with you, or authorised by law). Every automated decision is "
                "logged, and you can contest it and ask for human review at ",
                Code(HUMAN_REVIEW_PATH),
                ".",
            )
        ),
    ]
    if not policy.decisions:
        return [*blocks, Para("This policy declares no automated decisions.")]
    rows = tuple(
        (
            Code(d.key),
            d.description,
            "yes" if d.legal_effect else "no",
            "; ".join(DECISION_BASIS_WORDS.get(b, b) + _basis_names(d, b) for b in d.bases),
            Code(d.purpose),
        )
        for d in policy.decisions.values()
    )
    return [
        *blocks,
        Grid(
            (
                "Decision",
                "What it decides",
                "Legal or similarly significant effect",
                "Allowed only on",
                "Purpose",
            ),
            rows,
        ),
    ]


def _pseudonymisation(config: Config) -> list[Block]:
    policy = config.policy
    collected = set().union(*(p.fields for p in policy.purposes.values()))
    items: list[Inline] = []
    if "ip_address" in collected:
        where = (
            ", with the country and region looked up from it"
            if config.geoip_path
            else "; no location is looked up from it"
        )
        items += [
            "Without a cookie you are counted under a visitor pseudonym: a keyed hash of the "
            "site, your IP address and User-Agent under a random key for the UTC day. Today's "
            "and yesterday's keys are kept; keys older than yesterday are destroyed, after "
            "which no stored value is the same for your visits on different days. What is "
            "stored beside it (browser and system with major versions, device, languages, "
            "country and region, a screen width class) describes many people's devices, but "
            "on a small site an unusual combination can still point to one person on "
            "different days.",
            "Your IP address is kept only as that daily pseudonym and a daily pseudonym of its "
            f"network (/24 for IPv4, /48 for IPv6){where}; the address and its network are "
            "never stored.",
        ]
        if config.keys.seal_ip:
            items.append(
                "IP sealing is on: the full IP address and port are also kept "
                "encrypted (AES-GCM) under a key that is destroyed after "
                f"{human_duration(config.keys.seal_retention)}; after that no one can "
                "read them."
            )
        else:
            items.append("IP sealing is off: the full IP address and port are not kept.")
    else:
        items.append("Your IP address is not collected.")
    if _consent_purposes(policy):
        items.append(
            "If you consent to a cookie, it carries a random id; only a keyed hash of "
            "it is stored, which lets you exercise your rights without an account."
        )
    items.append(
        "Analysts see only aggregates: any group of fewer than "
        f"{config.min_group_size} distinct visitors is withheld."
    )
    return [Heading(2, "Pseudonymisation and aggregation"), Items(tuple(items))]


def _recipients(policy: Policy) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Recipients and transfers abroad")]
    if policy.recipients:
        blocks.append(
            Grid(
                ("Recipient", "Country", "Role", "Purposes", "Safeguard"),
                tuple(
                    (
                        r.name,
                        r.country,
                        ROLE_WORDS.get(r.role, r.role),
                        _codes(r.purposes),
                        SAFEGUARD_WORDS.get(r.safeguard, r.safeguard)
                        + (
                            "; certified under the EU-US Data Privacy Framework"
                            if r.dpf_certified
                            else ""
                        ),
                    )
                    for r in policy.recipients
                ),
            )
        )
    else:
        blocks.append(
            Para("None: we provide your personal information to no third party and no processor.")
        )
    blocks.append(
        Para(
            "We provide personal information to a third party only with your prior consent, or "
            "when the law requires it, to protect the life, body or property of a person, or to "
            "improve public health or promote the sound growth of children when your consent is "
            "hard to obtain. Data of people in the EU goes to a country without an EU adequacy "
            "decision only under standard contractual clauses; in the United States, adequacy "
            "covers only organisations certified under the EU-US Data Privacy Framework. Data of "
            "people in Japan goes abroad only with your consent, to a country Japan recognises as "
            "equivalent, or to a recipient with a system equivalent to Japan's. When we do not "
            "know which country a person is in, we apply both rules."
        )
    )
    return blocks


def _rights(policy: Policy) -> list[Block]:
    return [
        Heading(2, "Your rights"),
        Grid(
            ("Right", "Where to ask"),
            tuple((right, Code(path)) for right, path in RIGHTS),
        ),
        Para(
            (
                "All of them from one page: ",
                Code(RIGHTS_PAGE_PATH),
                ". Veil answers for the subject of your consent cookie or of a sign-in with "
                "this site; without either, what it recorded about your visits is under daily "
                "pseudonyms it cannot link to you, so there is nothing of yours to return.",
            )
        ),
        Para(
            (
                "You can also write to the Data Protection Officer (",
                policy.dpo.name,
                ") at ",
                policy.dpo.contact,
                ".",
            )
            if policy.dpo.contact
            else "The Data Protection Officer has not published a contact yet: use the addresses "
            "above."
        ),
    ]


def _signals(policy: Policy) -> list[Block]:
    consent = _consent_purposes(policy)
    which: Inline = (
        ("every purpose that needs consent (", _codes(consent), ")")
        if consent
        else "every purpose that needs consent (this policy has none)"
    )
    return [
        Heading(2, "Privacy signals"),
        Items(
            (
                (
                    "Global Privacy Control is honoured: a browser sending ",
                    Code("Sec-GPC: 1"),
                    " opts you out of sale or sharing and of ",
                    which,
                    ", unless you explicitly consent later, while the signal is on.",
                ),
                ("Do Not Track (", Code("DNT: 1"), ") is treated as the same hint."),
                (
                    "Wherever you are, ",
                    which,
                    " collects nothing until you agree."
                    if policy.consent_model == "opt-in"
                    else " collects nothing until you agree, except in California, where it "
                    "collects until you opt out (refuse, withdraw, or send Global Privacy "
                    "Control).",
                ),
            )
        ),
    ]


def _changes(policy: Policy) -> list[Block]:
    blocks: list[Block] = [
        Heading(2, "Changes to this notice"),
        Para(
            f"Current version {policy.version}, effective {policy.effective.isoformat()}. "
            "When the policy changes its version is bumped, and every consent and record "
            "names the version it was given under. A new version applies only from its "
            "effective date. If it adds fields to a purpose, keeps them longer or adds "
            "recipients for it, a consent you gave before no longer holds until you give it "
            "again; and what was collected under an earlier version is kept no longer than "
            "that version promised."
        ),
    ]
    if not policy.changes:
        return [*blocks, Para("No change log is declared.")]
    newest_first = sorted(policy.changes, key=lambda c: c.effective, reverse=True)
    return [
        *blocks,
        Grid(
            ("Version", "Effective", "What changed"),
            tuple((c.version, c.effective.isoformat(), c.summary) for c in newest_first),
        ),
    ]


def notice_blocks(config: Config) -> list[Block]:
    """The notice as a list of blocks, independent of the output format."""
    policy = config.policy
    return [
        Heading(1, _title(config)),
        Para(
            f"Policy version {policy.version}, effective {policy.effective.isoformat()}. This "
            "notice is generated from the policy veil enforces at run time, so it lists "
            "exactly what is collected, why, for how long, and who receives it."
        ),
        *_who(policy),
        *_purposes(policy),
        *_not_collected(policy),
        *_decisions(policy),
        *_pseudonymisation(config),
        *_recipients(policy),
        *_rights(policy),
        *_signals(policy),
        *_changes(policy),
    ]


def _title(config: Config) -> str:
    return f"Privacy notice: {config.site}" if config.site else "Privacy notice"


# -- rendering ---------------------------------------------------------------------------------

_WS = re.compile(r"\s+")
_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_[]<>|"})


def _md(text: Inline, cell: bool = False) -> str:
    if isinstance(text, tuple):
        return "".join(_md(t, cell) for t in text)
    if isinstance(text, Code):
        code = _WS.sub(" ", text.text).strip()
        if cell:
            code = code.replace("|", "\\|")
        fence = "``" if "`" in code else "`"
        pad = " " if fence == "``" else ""
        return f"{fence}{pad}{code}{pad}{fence}"
    return _WS.sub(" ", text).translate(_MD_SPECIAL)  # a newline would end a table row


def _to_md(blocks: list[Block]) -> str:
    out = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append(f"{'#' * b.level} {_md(b.text)}")
        elif isinstance(b, Para):
            out.append(_md(b.text))
        elif isinstance(b, Items):
            out.append("\n".join(f"- {_md(i)}" for i in b.items))
        else:
            lines = [
                f"| {' | '.join(_md(h, True) for h in b.header)} |",
                f"|{'|'.join(' --- ' for _ in b.header)}|",
            ]
            lines += [f"| {' | '.join(_md(c, True) for c in row)} |" for row in b.rows]
            out.append("\n".join(lines))
    return "\n\n".join(out) + "\n"


def _html(text: Inline) -> str:
    if isinstance(text, tuple):
        return "".join(_html(t) for t in text)
    if isinstance(text, Code):
        return f"<code>{html.escape(text.text)}</code>"
    return html.escape(text)


_STYLE = (
    "body{font:16px/1.5 system-ui,sans-serif;max-width:52rem;margin:2rem auto;"
    "padding:0 1rem}table{border-collapse:collapse;margin:1rem 0}"
    "th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}"
    "code{background:#f3f3f3;padding:0 .2em}"
)


def _to_html(blocks: list[Block], title: str) -> str:
    out = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append(f"<h{b.level}>{_html(b.text)}</h{b.level}>")
        elif isinstance(b, Para):
            out.append(f"<p>{_html(b.text)}</p>")
        elif isinstance(b, Items):
            out.append("<ul>\n" + "\n".join(f"<li>{_html(i)}</li>" for i in b.items) + "\n</ul>")
        else:
            head = "".join(f"<th>{_html(h)}</th>" for h in b.header)
            body = "\n".join(
                "<tr>" + "".join(f"<td>{_html(c)}</td>" for c in row) + "</tr>" for row in b.rows
            )
            out.append(
                f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"
            )
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(out)
        + "\n</body>\n</html>\n"
    )


def render_notice(config: Config, fmt: str = "md") -> str:
    """The privacy notice for `config`'s policy, as Markdown ("md") or a standalone HTML page."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    blocks = notice_blocks(config)
    return _to_md(blocks) if fmt == "md" else _to_html(blocks, _title(config))
