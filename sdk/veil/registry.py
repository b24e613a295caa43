"""The closed list of fields veil may collect, each with its data category and sensitivity.

This is the privacy policy's "Automatic Acquisition" list turned into code: a field that is not
here cannot be collected, and a purpose may only name fields that are here. Categories use
fideslang's taxonomy keys; sensitivity follows Glean's `data_sensitivity` scale.
"""

from dataclasses import dataclass
from typing import Literal

Source = Literal["request", "beacon"]
Sensitivity = Literal["technical", "interaction", "highly_sensitive"]


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    source: Source
    category: str
    sensitivity: Sensitivity
    description: str
    stored_as: str


FIELDS: dict[str, Field] = {
    f.name: f
    for f in (
        Field(
            "ip_address", "request", "user.device.ip_address", "highly_sensitive",
            "Global IP address of the client (policy: Automatic Acquisition 1).",
            "visitor pseudonym (keyed hash, rotated daily), network prefix (/24, /48), country "
            "and region; optionally sealed with AES-GCM under a short-retention key",
        ),
        Field(
            "port", "request", "user.device", "highly_sensitive",
            "Source port of the client's connection (policy: Automatic Acquisition 1).",
            "never in clear; only inside the optional sealed endpoint",
        ),
        Field(
            "user_agent", "request", "user.device", "interaction",
            "User-Agent header: OS, browser and hardware device (Automatic Acquisition 2).",
            "OS family+major, browser family+major, device family/brand/model; raw string never",
        ),
        Field(
            "accept_language", "request", "user.demographic.language", "technical",
            "Accept-Language header: language settings (Automatic Acquisition 2).",
            "up to 3 primary language subtags",
        ),
        Field(
            "gpc", "request", "user.privacy_preferences", "technical",
            "Sec-GPC header: the Global Privacy Control opt-out signal.",
            "boolean",
        ),
        Field(
            "dnt", "request", "user.privacy_preferences", "technical",
            "DNT header: the Do Not Track hint.",
            "boolean",
        ),
        Field(
            "screen", "beacon", "user.device", "technical",
            "Screen width and height in CSS pixels (Automatic Acquisition 3).",
            "integers",
        ),
        Field(
            "pixel_ratio", "beacon", "user.device", "technical",
            "Device pixel ratio of the monitor (Automatic Acquisition 3).",
            "number",
        ),
        Field(
            "navigator_language", "beacon", "user.demographic.language", "technical",
            "navigator.language from the browser (Automatic Acquisition 2 and 4).",
            "primary language subtag",
        ),
        Field(
            "path", "beacon", "user.behavior.browsing_history", "interaction",
            "Path of the page viewed (policy: Use of Cookie, browsing history).",
            "path without query string or fragment",
        ),
    )
}


# The policy's "Specific Information": never acquired without the person's prior consent.
SPECIAL_CATEGORIES = {
    "race": "Race",
    "creed": "Creed",
    "social_status": "Social status",
    "medical_history": "Medical history",
    "criminal_history": "Criminal history",
    "crime_victim": "Fact that the person has suffered harm because of a criminal act",
    "criminal_procedure": "Fact that criminal procedure has been brought against the person",
    "sex_life": "Sex life or sexual orientation",
    "trade_union": "Trade union membership",
}

# The browser snippet's beacon: wire key → registry field it belongs to.
BEACON_KEYS = {"screen_w": "screen", "screen_h": "screen", "pixel_ratio": "pixel_ratio",
               "language": "navigator_language", "path": "path"}
BEACON_FIELDS = frozenset(BEACON_KEYS.values())

# Columns of the analyst-facing `events` view an analyst may group by.
DIMENSIONS = (
    "site", "country", "region", "os", "os_version", "browser", "browser_version",
    "device", "device_brand", "device_model", "language", "screen_w", "screen_h",
    "pixel_ratio", "path", "day",
)
