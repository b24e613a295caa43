"""Strict validation of the browser snippet's beacon.

The body is a small JSON object of the registry's beacon keys, nothing else. Server-side
fields (IP, port, user-agent, languages, GPC) come from the request itself, never the body.
Every refusal names the field and says what is wrong.
"""

import math

from ..capture import Beacon
from ..languages import primary_subtag
from ..registry import BEACON_KEYS
from .body import json_object, parse_json
from .problems import Problem

MAX_BODY_BYTES = 2048
CONTENT_TYPES = ("text/plain", "application/json")  # sendBeacon sends text/plain
REQUIRED = ("screen_w", "screen_h", "pixel_ratio", "language")
MAX_PATH = 512


def _invalid(field: str, detail: str) -> Problem:
    return Problem(400, "invalid-field", "Invalid beacon field", detail, field=field)


def _integer(data: dict[str, object], key: str, low: int, high: int) -> int:
    v = data[key]
    if isinstance(v, bool) or not isinstance(v, int):
        raise _invalid(key, f"{key} must be an integer, got {type(v).__name__}")
    if not low <= v <= high:
        raise _invalid(key, f"{key} must be between {low} and {high}, got {v}")
    return v


def _ratio(data: dict[str, object]) -> float:
    v = data["pixel_ratio"]
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise _invalid("pixel_ratio", "pixel_ratio must be a number")
    if not 0.1 <= v <= 10:
        raise _invalid("pixel_ratio", f"pixel_ratio must be between 0.1 and 10, got {v}")
    return round(float(v), 3)


def _language(data: dict[str, object]) -> str:
    v = data["language"]
    if not isinstance(v, str) or len(v) > 35 or primary_subtag(v) is None:
        raise _invalid("language", "language must be a BCP 47 language tag such as 'de-CH'")
    return v


def _path(data: dict[str, object]) -> str:
    v = data["path"]
    if not isinstance(v, str) or not v.startswith("/") or len(v) > MAX_PATH:
        raise _invalid(
            "path", f"path must be a string starting with '/', at most {MAX_PATH} characters"
        )
    return v.split("?", 1)[0].split("#", 1)[0]  # never a query string or fragment


def check_content_type(value: bytes) -> None:
    media = value.split(b";", 1)[0].strip().lower().decode("latin-1")
    if media not in CONTENT_TYPES:
        raise Problem(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            f"send the beacon as {' or '.join(CONTENT_TYPES)}, not {media or 'nothing'}",
            headers={"Accept-Post": ", ".join(CONTENT_TYPES)},
        )


def parse_beacon(body: bytes) -> Beacon:
    """The validated beacon, or a Problem (400) naming the first field that is wrong."""
    # a 400 for any bad or deep JSON, or JSON that is not an object
    data = json_object(parse_json(body, title="Malformed beacon"), "Malformed beacon")
    for key in data:
        if key not in BEACON_KEYS:
            raise _invalid(
                key if len(key) <= 64 else key[:64],
                f"unknown field: veil accepts only {', '.join(BEACON_KEYS)}",
            )
    for key in REQUIRED:
        if key not in data:
            raise _invalid(key, f"{key} is required")
    beacon: Beacon = {
        "screen_w": _integer(data, "screen_w", 1, 100_000),
        "screen_h": _integer(data, "screen_h", 1, 100_000),
        "pixel_ratio": _ratio(data),
        "language": _language(data),
    }
    if "path" in data:
        beacon["path"] = _path(data)
    return beacon
