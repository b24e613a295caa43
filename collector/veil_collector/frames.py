"""The frames HTTP workers and the writer process exchange over veil's Unix socket.

A frame is a 4-byte big-endian length, then that many bytes: one kind byte and a marshal
payload. marshal, not pickle: loading it builds only plain values (tuples, dicts, str,
bytes, numbers, None) and never calls anything, and it is C-fast (~1 µs an item); pickle
would run whatever a frame names. Every payload is also checked for its exact shape here,
so a frame that is not one of ours (another program on the socket, a version skew) is
refused as a whole, and the writer keeps serving.

- ITEMS (worker → writer): captured items and the drops counted in the worker; answered
  with a STATS frame once they are in the writer's capture buffer;
- BATCH (worker → writer): a signed batch from a remote middleware, already verified and
  decoded by the worker; answered with a RESULT frame once stored (or refused);
- STATS (writer → worker): the writer's counters (queued, stored, drops by reason);
- RESULT (writer → worker): an HTTP status for a BATCH (200, 422 or 503) and a detail.
"""

import asyncio
import itertools
import marshal
import math
import struct
from collections.abc import Mapping

from veil.capture import Captured, VeilCookies
from veil.errors import FrameError
from veil.registry import BEACON_KEYS

ITEMS, BATCH, STATS, RESULT = b"I", b"B", b"S", b"R"
KINDS = frozenset((ITEMS, BATCH, STATS, RESULT))
MAX_FRAME = 40 * 1024 * 1024  # a 16 MB batch, decoded, fits with room to spare
MAX_COUNT = 10_000_000  # a drop count one frame may carry for one reason
_LENGTH = struct.Struct(">I")
_BEACON_KEYS = frozenset(BEACON_KEYS)
_captured = tuple.__new__  # as capture.py builds them, without NamedTuple's Python __new__


def frame(kind: bytes, payload: tuple[object, ...]) -> bytes:
    # plain values only (what read_* check on the other side); typeshed cannot say so
    body = kind + marshal.dumps(payload)  # type: ignore[arg-type]
    return _LENGTH.pack(len(body)) + body


async def read_frame(reader: asyncio.StreamReader) -> tuple[bytes, object] | None:
    """The next frame's (kind, payload); None at a clean end of stream. FrameError for
    anything else: a bad length or kind, a payload marshal cannot read, a cut-off frame."""
    try:
        head = await reader.readexactly(4)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise FrameError("a frame cut off in its length") from None
    (length,) = _LENGTH.unpack(head)
    if not 1 <= length <= MAX_FRAME:
        raise FrameError(f"a frame of {length} bytes")
    try:
        body = await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise FrameError("a frame cut off in its body") from None
    kind = body[:1]
    if kind not in KINDS:
        raise FrameError("a frame of an unknown kind")
    try:
        return kind, marshal.loads(body[1:])
    except (ValueError, EOFError, TypeError):
        raise FrameError("a frame whose payload cannot be read") from None


# -- captured items ------------------------------------------------------------------------------


def wire_item(item: Captured) -> tuple[object, ...]:
    """A Captured as marshal takes it: a plain tuple (its cookies one too)."""
    cookies = item.cookies
    return (*item[:12], None if cookies is None else tuple(cookies))


def _is(value: object, kind: type | tuple[type, ...], optional: bool = False) -> bool:
    return (optional and value is None) or (isinstance(value, kind) and type(value) is not bool)


def _beacon(value: dict[object, object]) -> None:
    if not value.keys() <= _BEACON_KEYS:
        raise FrameError("an item whose beacon is not one")
    for v in value.values():
        if isinstance(v, float) and math.isfinite(v):
            continue
        if type(v) is not int and type(v) is not str:
            raise FrameError("an item whose beacon is not one")


def _cookies(value: tuple[object, ...]) -> VeilCookies:
    if len(value) != 2 or not all(v is None or type(v) is str for v in value):
        raise FrameError("an item whose cookies are not veil's")
    return _captured(VeilCookies, value)


# The type of each field of a wire item (cookies as a plain tuple); an item's types must be one
# of these combinations exactly: one set lookup instead of thirteen checks (~1.5 vs 3.6 µs
# an item, decoding included).
_NONE = type(None)
_FIELD_TYPES = (
    (str,),  # purpose
    (float,),  # ts
    (str, _NONE),  # peer
    (int, _NONE),  # port
    (bytes,),  # agent
    (bytes,),  # accept_language
    (bytes, _NONE),  # sec_gpc
    (bytes, _NONE),  # sec_dnt
    (bytes,),  # forwarded
    (bytes,),  # host
    (dict, _NONE),  # beacon
    (str, _NONE),  # request_path
    (tuple, _NONE),  # cookies
)
_SIGNATURES = frozenset(itertools.product(*_FIELD_TYPES))


def read_item(value: object) -> Captured:
    """A wire item back into a Captured, or FrameError when it is not exactly one."""
    if type(value) is not tuple or tuple(map(type, value)) not in _SIGNATURES:
        raise FrameError("an item that is not a captured request")
    if value[10] is not None:
        _beacon(value[10])
    if value[12] is not None:
        value = (*value[:12], _cookies(value[12]))
    return _captured(Captured, value)


def counts(value: object) -> dict[str, int]:
    """Drop counts by reason, checked: names and plausible non-negative integers."""
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and 0 < len(k) <= 64 and _is(v, int) and 0 <= v <= MAX_COUNT
        for k, v in value.items()
    ):
        raise FrameError("drop counts that are not counts")
    return value


def read_items(payload: object) -> tuple[list[Captured], dict[str, int]]:
    """An ITEMS payload: (items, drops counted in the worker)."""
    if not isinstance(payload, tuple) or len(payload) != 2 or not isinstance(payload[0], tuple):
        raise FrameError("an items frame that is not (items, drops)")
    return [read_item(v) for v in payload[0]], counts(payload[1])


# -- batches and answers ------------------------------------------------------------------------


def read_batch(payload: object) -> tuple[list[tuple[object, ...]], dict[str, int], str, str]:
    """A BATCH payload: (rows, drops, day, batch id), rows of plain SQL values."""
    if not isinstance(payload, tuple) or len(payload) != 4:
        raise FrameError("a batch frame that is not (rows, drops, day, batch)")
    rows, drops, day, batch = payload
    if not (isinstance(rows, tuple) and _is(day, str) and _is(batch, str)):
        raise FrameError("a batch frame that is not (rows, drops, day, batch)")
    plain = (str, int, float, bytes)
    for row in rows:
        if not isinstance(row, tuple) or not all(v is None or isinstance(v, plain) for v in row):
            raise FrameError("a batch row that is not plain values")
    return list(rows), counts(drops), day, batch


def stats_payload(queued: int, stored: int, drops: Mapping[str, int]) -> tuple[object, ...]:
    return (queued, stored, dict(drops))


def read_stats(payload: object) -> tuple[int, int, dict[str, int]]:
    if not isinstance(payload, tuple) or len(payload) != 3:
        raise FrameError("a stats frame that is not (queued, stored, drops)")
    queued, stored, drops = payload
    if not (_is(queued, int) and _is(stored, int) and isinstance(drops, dict)):
        raise FrameError("a stats frame that is not (queued, stored, drops)")
    return queued, stored, {str(k): int(v) for k, v in drops.items()}


def read_result(payload: object) -> tuple[int, str]:
    if not (
        isinstance(payload, tuple)
        and len(payload) == 2
        and _is(payload[0], int)
        and _is(payload[1], str)
    ):
        raise FrameError("a result frame that is not (status, detail)")
    return payload[0], payload[1]
