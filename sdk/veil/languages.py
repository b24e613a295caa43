"""Language settings reduced to primary language subtags (BCP 47), at most three.

"de-CH, de;q=0.9, en-US;q=0.8" → ("de", "en"). Region and script subtags are dropped: the
base language is what the policy's "language settings" needs, and it identifies no one.
"""

import functools
import re

MAX_LANGUAGES = 3
_PRIMARY = re.compile(r"^[a-z]{2,3}$")
_TAG = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")


def primary_subtag(tag: str) -> str | None:
    """The lower-case primary subtag of a BCP 47 tag, or None if the tag is malformed."""
    tag = tag.strip()
    if not _TAG.match(tag):
        return None
    primary = tag.split("-", 1)[0].lower()
    return primary if _PRIMARY.match(primary) else None


@functools.lru_cache(maxsize=4096)
def from_accept_language(header: bytes) -> tuple[str, ...]:
    ranked = []
    for i, part in enumerate(header[:256].decode("latin-1").split(",")):
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
