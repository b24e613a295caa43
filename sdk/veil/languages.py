"""Language settings reduced to primary language subtags (BCP 47), at most three.

"de-CH, de;q=0.9, en-US;q=0.8" → ("de", "en"). Region and script subtags are dropped: the
base language is what the policy's "language settings" needs, and it identifies no one.
"""

import re

from .caches import ByteLRU

MAX_LANGUAGES = 3
MAX_HEADER_BYTES = 256  # read no further: three tags fit many times over
CACHE_BYTES = 1 << 18  # ~600 distinct headers of ~40 bytes; a realistic stream has dozens
_PRIMARY = re.compile(r"^[a-z]{2,3}$")
_TAG = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")


def primary_subtag(tag: str) -> str | None:
    """The lower-case primary subtag of a BCP 47 tag, or None if the tag is malformed."""
    tag = tag.strip()
    if not _TAG.match(tag):
        return None
    primary = tag.split("-", 1)[0].lower()
    return primary if _PRIMARY.match(primary) else None


_read: ByteLRU[bytes, tuple[str, ...]] = ByteLRU(CACHE_BYTES)


def from_accept_language(header: bytes) -> tuple[str, ...]:
    """The primary subtags, best first (cached on the header's first MAX_HEADER_BYTES)."""
    key = header[:MAX_HEADER_BYTES]
    found = _read.get(key)
    if found is None:
        found = _from_accept_language(key)
        _read.put(key, found)
    return found


def _from_accept_language(header: bytes) -> tuple[str, ...]:
    ranked = []
    for i, part in enumerate(header.decode("latin-1").split(",")):
        tag, _, params = part.partition(";")
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                continue
        if q <= 0 or (lang := primary_subtag(tag)) is None:
            continue
        ranked.append((-q, i, lang))
    out: list[str] = []
    for _, _, lang in sorted(ranked):
        if lang not in out:
            out.append(lang)
    return tuple(out[:MAX_LANGUAGES])
