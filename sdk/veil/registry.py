"""The closed list of fields veil may collect, each with its data category and what is stored.

This is the privacy policy's "Automatic Acquisition" list turned into code: a field that is not
here cannot be collected, and a purpose may only name fields that are here. Categories use
fideslang's taxonomy keys.
"""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    category: str
    description: str
    stored_as: str


FIELDS: dict[str, Field] = {
    f.name: f
    for f in (
        Field(
            "ip_address",
            "user.device.ip_address",
            "Global IP address of the client (policy: Automatic Acquisition 1).",
            "visitor and network (/24, /48) pseudonyms (keyed hashes, key rotated daily), "
            "country and region; optionally sealed with AES-GCM under a short-retention key",
        ),
        Field(
            "port",
            "user.device",
            "Source port of the client's connection (policy: Automatic Acquisition 1).",
            "never in clear; only inside the optional sealed endpoint",
        ),
        Field(
            "user_agent",
            "user.device",
            "User-Agent header: OS, browser and hardware device (Automatic Acquisition 2).",
            "OS family+major, browser family+major, device family/brand/model; raw string never",
        ),
        Field(
            "accept_language",
            "user.demographic.language",
            "Accept-Language header: language settings (Automatic Acquisition 2).",
            "up to 3 primary language subtags",
        ),
        Field(
            "gpc",
            "user.privacy_preferences",
            "Sec-GPC header: the Global Privacy Control opt-out signal.",
            "boolean",
        ),
        Field(
            "dnt",
            "user.privacy_preferences",
            "DNT header: the Do Not Track hint.",
            "boolean",
        ),
        Field(
            "screen",
            "user.device",
            "Screen width and height in CSS pixels (Automatic Acquisition 3).",
            "width class (breakpoint at or below it); the height is not kept",
        ),
        Field(
            "pixel_ratio",
            "user.device",
            "Device pixel ratio of the monitor (Automatic Acquisition 3).",
            "class: 1, 1.5, 2 or 3",
        ),
        Field(
            "navigator_language",
            "user.demographic.language",
            "navigator.language from the browser (Automatic Acquisition 2 and 4).",
            "primary language subtag",
        ),
        Field(
            "path",
            "user.behavior.browsing_history",
            "Path of the page viewed (policy: Use of Cookie, browsing history).",
            "path without query string or fragment",
        ),
    )
}


# The policy's "Specific Information": never acquired without the person's prior consent.
# Genetic and biometric data are added from GDPR Art. 9(1), which the policy says it complies
# with; political opinions count as creed (APPI's 信条 covers beliefs, religious or political).
SPECIAL_CATEGORIES = {
    "race": "Race",
    "creed": "Creed (religious or philosophical beliefs, political opinions)",
    "social_status": "Social status",
    "medical_history": "Medical history",
    "criminal_history": "Criminal history",
    "crime_victim": "Fact that the person has suffered harm because of a criminal act",
    "criminal_procedure": "Fact that criminal procedure has been brought against the person",
    "sex_life": "Sex life or sexual orientation",
    "trade_union": "Trade union membership",
    "genetic": "Genetic data",
    "biometric": "Biometric data that identifies a person",
}

# fideslang data categories (1.x and 2.x keys, and the extensions below for what fideslang
# has no key for) that are special-category data, whatever the operator declares: a field of
# such a category must name one of these special categories. A key covers its sub-keys.
_CRIME = ("criminal_history", "crime_victim", "criminal_procedure")
SENSITIVE_CATEGORIES: dict[str, tuple[str, ...]] = {
    "user.health_and_medical": ("medical_history",),
    "user.health_and_medical.genetic": ("genetic", "medical_history"),
    "user.genetic": ("genetic", "medical_history"),
    "user.biometric": ("biometric",),
    "user.biometric.health": ("biometric", "medical_history"),
    "user.biometric_health": ("biometric", "medical_history"),
    "user.authorization.biometric": ("biometric",),
    "user.credentials.biometric_credentials": ("biometric",),
    "user.criminal_history": _CRIME,
    "user.demographic.race_ethnicity": ("race",),
    "user.race": ("race",),
    "user.race_ethnicity": ("race",),
    "user.demographic.religious_belief": ("creed",),
    "user.religious_belief": ("creed",),
    "user.demographic.political_opinion": ("creed",),
    "user.political_opinion": ("creed",),
    "user.demographic.sexual_orientation": ("sex_life",),
    "user.sexual_orientation": ("sex_life",),
    # fideslang has no key for these; veil's extensions, under the closest fideslang parent
    "user.demographic.creed": ("creed",),
    "user.demographic.social_status": ("social_status",),
    "user.workplace.trade_union": ("trade_union",),
    "user.trade_union": ("trade_union",),
}
# Words that make a custom key under `user.` special too (an extension such as
# `user.custom.hiv_status` must not slip through because fideslang does not list it).
_SENSITIVE_WORDS: dict[str, tuple[str, ...]] = {
    "health": ("medical_history",),
    "medical": ("medical_history",),
    "diagnosis": ("medical_history",),
    "disability": ("medical_history",),
    "genetic": ("genetic", "medical_history"),
    "genome": ("genetic", "medical_history"),
    "biometric": ("biometric",),
    "biometrics": ("biometric",),
    "fingerprint": ("biometric",),
    "criminal": _CRIME,
    "conviction": _CRIME,
    "race": ("race",),
    "racial": ("race",),
    "ethnic": ("race",),
    "ethnicity": ("race",),
    "religion": ("creed",),
    "religious": ("creed",),
    "creed": ("creed",),
    "political": ("creed",),
    "sexual": ("sex_life",),
    "sexuality": ("sex_life",),
}


def special_categories_for(category: str) -> tuple[str, ...]:
    """The special categories a fideslang data category is (any one of them fits a field of
    it), or () when it is not special-category data."""
    key = category.strip().lower()
    best = ""  # the longest listed key that is `key` or a parent of it
    for prefix in SENSITIVE_CATEGORIES:
        if (key == prefix or key.startswith(prefix + ".")) and len(prefix) > len(best):
            best = prefix
    if best:
        return SENSITIVE_CATEGORIES[best]
    if not key.startswith("user."):
        return ()
    words = [w for segment in key.split(".")[1:] for w in segment.split("_")]
    if "trade" in words and "union" in words:
        return ("trade_union",)
    out: dict[str, None] = {}
    for w in words:
        out.update(dict.fromkeys(_SENSITIVE_WORDS.get(w, ())))
    return tuple(out)


# The browser snippet's beacon: wire key → registry field it belongs to.
BEACON_KEYS = {
    "screen_w": "screen",
    "screen_h": "screen",
    "pixel_ratio": "pixel_ratio",
    "language": "navigator_language",
    "path": "path",
}
BEACON_FIELDS = frozenset(BEACON_KEYS.values())

# What a user-agent is stored as: these columns of the event row, kept once per distinct agent
# in the store's agents table (the row holds its id).
AGENT_COLUMNS = (
    "os",
    "os_version",
    "browser",
    "browser_version",
    "device",
    "device_brand",
    "device_model",
)

# The event-row columns (store/columns.py ROW_COLUMNS) each field, or set of fields, fills.
# The store gives a purpose a column only when the purpose's fields can fill it, so a record
# carries only what its purpose allows by the shape of its table. `screen` fills the width
# class only: the height is never stored (pseudonymise.py).
FIELD_COLUMNS: tuple[tuple[frozenset[str], tuple[str, ...]], ...] = (
    (frozenset({"user_agent"}), AGENT_COLUMNS),
    (frozenset({"accept_language"}), ("language", "languages")),
    (frozenset({"navigator_language"}), ("language",)),
    (frozenset({"gpc"}), ("gpc",)),
    (frozenset({"dnt"}), ("dnt",)),
    (frozenset({"screen"}), ("screen_w",)),
    (frozenset({"pixel_ratio"}), ("pixel_ratio",)),
    (frozenset({"path"}), ("path",)),
    (frozenset({"ip_address"}), ("country", "region")),
    (frozenset({"ip_address", "port"}), ("seal_key", "sealed_endpoint")),
)


def event_columns(fields: frozenset[str], needs_consent: bool) -> frozenset[str]:
    """The event-row columns a purpose with these fields may fill, beyond those every event
    has; `subject` only under consent (a subject is who gave it)."""
    out = {c for needs, columns in FIELD_COLUMNS if needs <= fields for c in columns}
    if needs_consent:
        out.add("subject")
    return frozenset(out)
