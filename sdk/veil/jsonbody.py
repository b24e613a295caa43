"""Strict, bounded JSON decoding of untrusted bytes, for any layer (HTTP bodies, signed batches).

Strict: UTF-8 only, RFC 8259 only (no NaN or Infinity), and never a RecursionError,
ValueError or UnicodeDecodeError for the caller to leak: every failure is a `JSONInvalid`
whose message says what is wrong (never what the body held). The HTTP layer turns it into a
400 problem, the batch wire format into a malformed batch.
"""

import json
import re

from .errors import JSONInvalid

# veil's own bodies nest three levels at most ({"fields": {...}}, a batch's rows); CPython's
# JSON decoder recurses once per level and would raise RecursionError at ~1,000.
MAX_JSON_DEPTH = 16
_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+"', re.DOTALL)  # possessive: linear on any input
_NOT_BRACKET = re.compile(r"[^\[\]{}]++")
_INNERMOST = re.compile(r"\[\]|\{\}")


def too_deep(text: str, limit: int) -> bool:
    """True when `text` nests arrays/objects deeper than `limit` (or its brackets do not
    balance, which no valid JSON does). At most `limit` linear passes, all in C's regex
    engine: no recursion, whatever the input."""
    if text.count("[") + text.count("{") <= limit:  # the common case, one pass each
        return False
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    for _ in range(limit):  # each pass removes the innermost level
        brackets, n = _INNERMOST.subn("", brackets)
        if not brackets or not n:
            break
    return bool(brackets)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")  # Python's json accepts NaN and Infinity; RFC 8259 not


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)  # built once: json.loads with a
# keyword argument would build a decoder per call


def decode(body: bytes | bytearray, max_depth: int | None = MAX_JSON_DEPTH) -> object:
    """Strict UTF-8 JSON nested at most `max_depth` levels, or JSONInvalid saying what is wrong.

    `max_depth=None` skips the pre-check (it costs about 3x the parse on a large body; the
    signed batch, whose shape is checked after parsing, uses it): the decoder's own recursion
    limit then bounds the depth, and its RecursionError becomes the same JSONInvalid.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise JSONInvalid("the body is not UTF-8") from None
    if max_depth is not None and too_deep(text, max_depth):
        raise JSONInvalid(
            f"the body nests arrays and objects more than {max_depth} levels "
            "deep (or is not valid JSON)"
        )
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise JSONInvalid(f"the body is not valid JSON: {exc.msg} at character {exc.pos}") from None
    except RecursionError:
        raise JSONInvalid("the body nests arrays and objects too deep") from None
    except ValueError:  # NaN or Infinity; an integer of more than 4,300 digits
        raise JSONInvalid(
            "the body is not valid JSON: NaN, Infinity or an integer too long"
        ) from None
