"""The browser snippet as served: veil.js and the copies js/build.mjs precompressed beside it
(veil.js.br, veil.js.gz), one picked per request from its Accept-Encoding.

Nothing is compressed on the request path: the build does it once, at maximum quality. Each
encoding has its own ETag (the script's hash plus "-br" or "-gz"), so a cache that validates
the gzip copy never gets a 304 for the brotli one, and every answer says
`Vary: Accept-Encoding`.
"""

import hashlib
import importlib.resources
from dataclasses import dataclass

from starlette.types import Scope


@dataclass(frozen=True, slots=True)
class Variant:
    """One encoding of the snippet: its bytes, its ETag and its Content-Encoding ("" for none)."""

    body: bytes
    etag: str
    encoding: str


_static = importlib.resources.files("veil").joinpath("static")
SCRIPT = _static.joinpath("veil.js").read_bytes()
SCRIPT_HASH = hashlib.sha256(SCRIPT).hexdigest()[:12]
IDENTITY = Variant(SCRIPT, f'"{SCRIPT_HASH}"', "")


def _precompressed(encoding: str, suffix: str) -> Variant | None:
    """The build's `veil.js.<suffix>`, or None where it is missing (then never offered)."""
    resource = _static.joinpath(f"veil.js.{suffix}")
    if not resource.is_file():
        return None
    return Variant(resource.read_bytes(), f'"{SCRIPT_HASH}-{suffix}"', encoding)


BROTLI = _precompressed("br", "br")
GZIP = _precompressed("gzip", "gz")


def _qvalue(params: str) -> float:
    """The q of a coding's parameters (1 when absent); 0 for a malformed one: when in doubt,
    don't send a coding the client may not decode."""
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                q = float(value.strip())
            except ValueError:
                return 0.0
            return q if 0.0 <= q <= 1.0 else 0.0  # NaN fails both comparisons
    return 1.0


def accepted(accept_encoding: str | None) -> dict[str, float]:
    """Each coding named in an Accept-Encoding value, lower-cased, with its q."""
    codings: dict[str, float] = {}
    for part in (accept_encoding or "").split(","):
        coding, _, params = part.partition(";")
        coding = coding.strip().lower()
        if coding:
            codings[coding] = _qvalue(params)
    return codings


def choose(accept_encoding: str | None) -> Variant:
    """The variant for an Accept-Encoding value: brotli, else gzip, else identity. A coding
    the client weighs higher wins over the other; a tie goes to brotli (smaller); q=0 (or a
    `*;q=0` covering an unnamed coding) rules a coding out. No header: identity."""
    if accept_encoding is None:
        return IDENTITY
    codings = accepted(accept_encoding)
    star = codings.get("*", 0.0)
    gzip_q = codings.get("gzip", codings.get("x-gzip", star))
    best, best_q = IDENTITY, 0.0
    for variant, q in ((BROTLI, codings.get("br", star)), (GZIP, gzip_q)):
        if variant is not None and q > best_q:
            best, best_q = variant, q
    return best


def accept_encoding(scope: Scope) -> str | None:
    """The request's Accept-Encoding, its lines joined as RFC 9110 allows; None when absent.
    One pass over the header list, nothing else kept."""
    values = [value for name, value in scope["headers"] if name == b"accept-encoding"]
    return b",".join(values).decode("latin-1") if values else None
