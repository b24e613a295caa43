import html
import re
import tomllib
from html.parser import HTMLParser

import pytest

from veil.config import from_dict
from veil.notice import RIGHTS, human_duration, legal_basis_words, render_notice
from veil.policy import DEFAULT_POLICY, parse_duration
from veil.registry import FIELDS, SPECIAL_CATEGORIES

CUSTOM = """
site = "shop.example"
[keys]
seal_ip = true
seal_retention = "2d"
[query]
min_group_size = 10
[policy]
version = "2.1"
effective = 2027-03-01
controller = { name = "Example K.K.", contact = "privacy@example.com" }
dpo = { name = "Hanako Sato", contact = "dpo@example.com" }

[[policy.changes]]
version = "1.0"
effective = 2026-11-25
summary = "First published policy."

[[policy.changes]]
version = "2.1"
effective = 2027-03-01
summary = "Screen size no longer collected; fraud prevention added."

[policy.fields.order_total]
type = "number"
category = "user.financial"
description = "Total of the order being checked."

[policy.purposes.connection]
description = "Run the connection"
data_use = "essential.service"
legal_basis = "legitimate_interests"
retention = "7d"
fields = ["ip_address", "user_agent", "accept_language"]

[policy.purposes.fraud_prevention]
description = "Detect fraudulent orders"
data_use = "essential.service.security"
legal_basis = "contract"
retention = "12h"
fields = ["ip_address", "order_total"]

[policy.decisions.order_block]
description = "Block an order that looks fraudulent"
legal_effect = true
bases = ["contract"]
contracts = ["order-terms-v2"]
purpose = "fraud_prevention"

[[policy.recipients]]
name = "Cloud Hosting Inc."
country = "US"
role = "processor"
purposes = ["connection"]
safeguard = "scc"
"""


def config_of(tmp_path, text: str = ""):
    return from_dict(tomllib.loads(text), base=tmp_path)


def sections(md: str, level: int) -> dict[str, str]:
    """Markdown sections of the given heading level, by heading text."""
    marker = "\n" + "#" * level + " "
    return {part.split("\n", 1)[0]: part for part in md.split(marker)[1:]}


def purpose_section(md: str, key: str) -> str:
    return sections(md, 3)[f"Purpose `{key}`"].split("\n## ", 1)[0]


def field_rows(section: str) -> set[str]:
    return set(re.findall(r"^\| `([a-z_]+)` \|", section, re.MULTILINE))


def test_default_policy_markdown_has_every_required_element(tmp_path):
    md = render_notice(config_of(tmp_path), "md")
    p = DEFAULT_POLICY
    assert md.startswith("# Privacy notice\n")
    assert f"Policy version {p.version}, effective {p.effective.isoformat()}" in md
    who = sections(md, 2)["Who is responsible"]
    assert f"| Controller | {p.controller.name} | not set" in who
    assert f"| Data Protection Officer | {p.dpo.name} | not set" in who
    for purpose in p.purposes.values():
        section = purpose_section(md, purpose.key)
        assert purpose.description in section
        assert f"Legal basis: {legal_basis_words(purpose.legal_basis)}" in section
        assert f"Retention: {human_duration(purpose.retention)}" in section
        assert (
            "Consent: required" if purpose.needs_consent else "Consent: not required"
        ) in section
        for name in purpose.fields:
            f = FIELDS[name]
            assert f"| `{name}` | {f.description} | `{f.category}` | {f.stored_as} |" in section
    assert "legitimate interests (GDPR Art. 6(1)(f))" in md
    assert "Retention: 30 days" in md and "Retention: 90 days" in md
    not_collected = sections(md, 2)["What we do not collect"]
    assert "No cookie without your consent" in not_collected
    for label in SPECIAL_CATEGORIES.values():
        assert label in not_collected
    assert "Art. 22(2)" in sections(md, 2)["Automated decisions"]
    pseudo = sections(md, 2)["Pseudonymisation and aggregation"]
    assert "keys older than yesterday are destroyed" in pseudo
    assert "/24 for IPv4, /48 for IPv6" in pseudo
    assert "IP sealing is off" in pseudo
    assert "fewer than 5 distinct visitors" in pseudo
    assert "None: we provide your personal information to no third party" in md
    rights = sections(md, 2)["Your rights"]
    for right, path in RIGHTS:
        where = f"`{path}`" if path else "the Data Protection Officer"
        assert f"| {right} | {where} |" in rights
    assert "GDPR Art. 20" in rights and "supervisory authority" in rights
    signals = sections(md, 2)["Privacy signals"]
    assert "`Sec-GPC: 1`" in signals and "`DNT: 1`" in signals
    assert (
        "| 1.0 | 2026-11-25 | First published policy. |"
        in sections(md, 2)["Changes to this notice"]
    )


def test_default_policy_html_is_a_standalone_page_with_the_same_content(tmp_path):
    page = render_notice(config_of(tmp_path), "html")
    assert page.startswith("<!doctype html>\n")
    assert '<html lang="en">' in page and '<meta charset="utf-8">' in page
    assert "<title>Privacy notice</title>" in page
    assert page.rstrip().endswith("</html>")
    assert_well_formed(page)
    for purpose in DEFAULT_POLICY.purposes.values():
        assert f"<h3>Purpose <code>{purpose.key}</code></h3>" in page
        assert html.escape(purpose.description) in page
        assert f"Retention: {human_duration(purpose.retention)}" in page
        for name in purpose.fields:
            f = FIELDS[name]
            assert (
                f"<tr><td><code>{name}</code></td><td>{html.escape(f.description)}</td>"
                f"<td><code>{f.category}</code></td><td>{html.escape(f.stored_as)}</td></tr>"
            ) in page
    for _, path in RIGHTS:
        assert path is None or f"<code>{path}</code>" in page
    assert "<table>" in page and "<ul>" in page


def test_no_field_outside_a_purpose_is_listed_under_it(tmp_path):
    for text in ("", CUSTOM):
        cfg = config_of(tmp_path, text)
        md = render_notice(cfg, "md")
        for purpose in cfg.policy.purposes.values():
            assert field_rows(purpose_section(md, purpose.key)) == purpose.fields


def test_a_custom_policy_changes_what_is_rendered(tmp_path):
    default_md = render_notice(config_of(tmp_path), "md")
    cfg = config_of(tmp_path, CUSTOM)
    md = render_notice(cfg, "md")
    assert md.startswith("# Privacy notice: shop.example\n")
    assert "Policy version 2.1, effective 2027-03-01" in md
    assert "| Controller | Example K.K. | privacy@example.com |" in md
    assert "| Data Protection Officer | Hanako Sato | dpo@example.com |" in md
    assert "not set" not in md

    # the removed field and purpose are gone from the purposes; the new purpose appears
    connection = purpose_section(md, "connection")
    assert "| `screen` |" in purpose_section(default_md, "connection")
    assert "| `screen` |" not in connection
    assert "Retention: 7 days" in connection
    assert "Purpose `browsing_history`" not in md
    fraud = purpose_section(md, "fraud_prevention")
    assert "Detect fraudulent orders" in fraud
    assert "performance of a contract with you (GDPR Art. 6(1)(b))" in fraud
    assert "Retention: 12 hours" in fraud
    assert (
        "| `order_total` | Total of the order being checked. | `user.financial` | "
        "as the application records it (a number) |"
    ) in fraud
    not_collected = sections(md, 2)["What we do not collect"]
    assert "`screen`" in not_collected and "`path`" in not_collected
    assert "No cookie: no purpose of this policy needs consent" in not_collected

    decisions = sections(md, 2)["Automated decisions"]
    assert (
        "| `order_block` | Block an order that looks fraudulent | yes | "
        "necessary for a contract with you (Art. 22(2)(a)): order-terms-v2 | "
        "`fraud_prevention` |"
    ) in decisions
    pseudo = sections(md, 2)["Pseudonymisation and aggregation"]
    assert "IP sealing is on" in pseudo and "destroyed after 2 days" in pseudo
    assert "fewer than 10 distinct visitors" in pseudo
    recipients = sections(md, 2)["Recipients and transfers abroad"]
    assert (
        "| Cloud Hosting Inc. | US | processor (acts only on our instructions) | "
        "`connection` | standard contractual clauses (SCCs) |"
    ) in recipients
    assert "None:" not in recipients
    changes = sections(md, 2)["Changes to this notice"]
    new = "| 2.1 | 2027-03-01 | Screen size no longer collected; fraud prevention added. |"
    assert new in changes
    assert changes.index(new) < changes.index("| 1.0 | 2026-11-25 |")  # newest first
    assert "(dpo@example.com)" not in md and "Hanako Sato) at dpo@example.com" in md


def test_special_category_app_field_is_flagged_under_its_purpose(tmp_path):
    text = CUSTOM.replace(
        'category = "user.financial"',
        'category = "user.health_and_medical"\nspecial = "medical_history"',
    )
    md = render_notice(config_of(tmp_path, text), "md")
    fraud = purpose_section(md, "fraud_prevention")
    assert "special category (Medical history): only with your explicit prior consent" in fraud


def test_policy_strings_are_escaped_in_html_and_markdown(tmp_path):
    evil = "<script>alert('x')</script> & | *bold*"
    text = (
        CUSTOM.replace("Detect fraudulent orders", evil)
        .replace('name = "Example K.K."', 'name = "A <b>B</b> & C"')
        .replace("First published policy.", "line one | <img src=x onerror=alert(1)>")
    )
    cfg = config_of(tmp_path, text)
    page = render_notice(cfg, "html")
    assert "<script>alert" not in page and "<img" not in page and "<b>B" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; | *bold*" in page
    assert "A &lt;b&gt;B&lt;/b&gt; &amp; C" in page
    assert_well_formed(page)

    md = render_notice(cfg, "md")
    assert not re.search(r"(?<!\\)<", md)  # every < is backslash-escaped: no raw HTML
    assert r"\<script\>alert('x')\</script\> & \| \*bold\*" in md
    row = next(line for line in md.splitlines() if "line one" in line)
    cells = re.split(r"(?<!\\)\|", row)[1:-1]  # split on unescaped pipes only
    assert [c.strip() for c in cells][:2] == ["1.0", "2026-11-25"] and len(cells) == 3


def test_newlines_in_policy_strings_cannot_break_a_markdown_table(tmp_path):
    text = CUSTOM.replace('"Detect fraudulent orders"', '"""Detect\n## fraudulent orders"""')
    md = render_notice(config_of(tmp_path, text), "md")
    assert "Detect ## fraudulent orders" in md
    assert "\n## fraudulent" not in md


def test_unknown_format_is_refused(tmp_path):
    with pytest.raises(ValueError, match="md, html"):
        render_notice(config_of(tmp_path), "pdf")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("12h", "12 hours"),
        ("1h", "1 hour"),
        ("1d", "1 day"),
        ("30d", "30 days"),
        ("2w", "14 days"),
        ("36h", "36 hours"),
    ],
)
def test_durations_read_as_words(text, words):
    assert human_duration(parse_duration(text)) == words


def assert_well_formed(page: str) -> None:
    """Every element opened is closed, in order (void elements aside)."""
    void = {"meta", "br", "img", "hr", "link", "input"}
    stack: list[str] = []

    class Checker(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag not in void:
                stack.append(tag)

        def handle_endtag(self, tag):
            assert stack and stack[-1] == tag, (tag, stack)
            stack.pop()

    Checker().feed(page)
    assert stack == []
