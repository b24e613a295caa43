"""A policy with app fields, decisions and recipients, for the guards' tests."""

import datetime as dt

AUTOMATIC = [
    "ip_address",
    "port",
    "user_agent",
    "accept_language",
    "gpc",
    "dnt",
    "screen",
    "pixel_ratio",
    "navigator_language",
]

GUARDED = {
    "version": "g1",
    "effective": dt.date(2026, 11, 1),
    "controller": {"name": "Example K.K.", "contact": "privacy@example.com", "country": "JP"},
    "dpo": {"name": "DPO", "contact": "dpo@example.com"},
    "fields": {
        "diagnosis": {
            "type": "string",
            "category": "user.health_and_medical",
            "special": "medical_history",
            "description": "The condition treated",
        },
        "plan": {"type": "string", "category": "user.contact", "description": "Care plan name"},
        "income": {
            "type": "number",
            "category": "user.financial",
            "description": "Declared yearly income",
        },
    },
    "purposes": {
        "connection": {
            "description": "Run the connection",
            "data_use": "essential.service",
            "legal_basis": "legitimate_interests",
            "retention": "30d",
            "fields": AUTOMATIC,
        },
        "browsing_history": {
            "description": "Improve the service",
            "data_use": "functional.service.improve",
            "legal_basis": "consent",
            "retention": "90d",
            "fields": [*AUTOMATIC, "path"],
        },
        "care": {
            "description": "Provide care",
            "data_use": "essential.service",
            "legal_basis": "contract",
            "retention": "365d",
            "fields": ["diagnosis", "plan"],
        },
        "credit": {
            "description": "Set credit limits",
            "data_use": "essential.service",
            "legal_basis": "contract",
            "retention": "365d",
            "fields": ["income"],
        },
    },
    "decisions": {
        "credit_limit": {
            "description": "Automated credit limit",
            "legal_effect": True,
            "bases": ["explicit_consent", "contract"],
            "purpose": "credit",
            "contracts": ["loan-agreement-v3"],
        },
        "reminder_time": {
            "description": "When to send reminders",
            "legal_effect": False,
            "bases": ["explicit_consent"],
            "purpose": "care",
        },
    },
    "recipients": [
        {
            "name": "CloudCo",
            "country": "US",
            "role": "processor",
            "purposes": ["care"],
            "safeguard": "scc",
        },
        {
            "name": "Partner",
            "country": "BR",
            "role": "third_party",
            "purposes": ["care"],
            "safeguard": "appi_equivalent",
        },
    ],
}

CONNECTION_FIELDS = ", ".join(f'"{f}"' for f in AUTOMATIC)


def policy_toml(
    version: str,
    body: str,
    *,
    effective: dt.date = dt.date(2026, 11, 1),
    change_log: bool = True,
    **policy_keys: str,
) -> str:
    """A `[policy]` table for a veil.toml: controller, DPO, the `connection` purpose over every
    automatic field, a change entry for `version` (unless not `change_log`), and `body` (more
    fields and purposes); `policy_keys` are more string keys of `[policy]`."""
    keys = "".join(f'{k} = "{v}"\n' for k, v in policy_keys.items())
    changes = (
        f'[[policy.changes]]\nversion = "{version}"\neffective = {effective.isoformat()}\n'
        'summary = "Test policy."\n'
        if change_log
        else ""
    )
    return f"""
[policy]
version = "{version}"
effective = {effective.isoformat()}
{keys}[policy.controller]
name = "Example K.K."
contact = "privacy@example.com"
[policy.dpo]
name = "DPO"
contact = "dpo@example.com"
[policy.purposes.connection]
description = "Run the connection"
data_use = "essential.service"
legal_basis = "legitimate_interests"
retention = "30d"
fields = [{CONNECTION_FIELDS}]
{changes}{body}"""
