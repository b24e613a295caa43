"""Batches between an app's middleware and a collector: JSON, HMAC-signed, replay-bounded.

The app pseudonymises before sending, so a batch holds the same rows a local store would.
Headers: `X-Veil-Key: <key id>` (16 hex digits derived from the shared secret, so a collector
tells a sender with another secret apart before reading a byte of the body),
`X-Veil-Timestamp: <unix seconds>` and
`X-Veil-Signature: sha256=<hex HMAC-SHA256(secret, timestamp "." body)>`. The collector checks
the headers' shape, the key id and the timestamp window before it reads the body
(`check_headers`), and the signature after (`verify`).
Replays inside the window are harmless: event ids make repeated rows a no-op, and the batch
id (`"batch"` in the signed body, the same on every retry of a batch) makes the store add a
batch's drop counts once.

Refusals are domain errors (errors.BatchUnauthenticated, errors.BatchMalformed) carrying a
`kind`, a title and a detail; the collector answers them as problem+json (401 and 400).
"""

import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import re
import secrets
import time
from collections import Counter
from pathlib import Path
from typing import NamedTuple, TypeGuard, cast

from .. import jsonbody
from ..errors import BatchMalformed, BatchUnauthenticated, ConfigError, JSONInvalid
from ..files import warn_if_readable
from .columns import ROW_COLUMNS, Row

REPLAY_WINDOW = 300  # seconds either side of the collector's clock
_BLOB = ROW_COLUMNS.index("sealed_endpoint")
_MIN_SECRET = 32
# Header shapes, matched on the raw bytes: anything else (non-ASCII, a sign, a 10 kB value) is
# refused (BatchUnauthenticated: a collector's 401) before it is decoded or converted.
_KEY_ID = re.compile(rb"[0-9a-f]{16}")
_TIMESTAMP = re.compile(rb"[0-9]{1,12}")
_SIGNATURE = re.compile(rb"sha256=([0-9a-f]{64})")
BATCH_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")
_REASON = re.compile(r"[a-z_]{1,64}")
MAX_DROP_COUNT = 10**9


class SignedHeaders(NamedTuple):
    timestamp: bytes
    signature: bytes  # the hex digest


def load_secret(secret_file: Path | None) -> bytes | None:
    """The shared secret from $VEIL_REMOTE_SECRET or `remote.secret_file`; None if neither."""
    text = os.environ.get("VEIL_REMOTE_SECRET")
    where = "VEIL_REMOTE_SECRET"
    if text is None and secret_file is not None:
        where = "remote.secret_file"
        warn_if_readable(secret_file, where)
        try:
            text = secret_file.read_text().strip()
        except OSError as exc:
            raise ConfigError([f"cannot read {secret_file}: {exc.strerror}"], where) from None
    if text is None:
        return None
    if len(text) < _MIN_SECRET:
        raise ConfigError(
            [
                f"the shared secret must be at least {_MIN_SECRET} characters "
                "(veil keys generate-master makes a good one)"
            ],
            where,
        )
    return text.encode()


def key_id(secret: bytes) -> str:
    """The secret's public name: an HMAC of a constant, so it reveals nothing of the secret."""
    return hmac.new(secret, b"veil batch key id", hashlib.sha256).hexdigest()[:16]


def _mac(secret: bytes, timestamp: bytes, body: bytes | bytearray) -> str:
    mac = hmac.new(secret, timestamp, hashlib.sha256)
    mac.update(b".")
    mac.update(body)  # incrementally: no copy of a 16 MB body
    return mac.hexdigest()


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    return "sha256=" + _mac(secret, timestamp.encode(), body)


def signed_headers(secret: bytes, body: bytes) -> dict[str, str]:
    ts = str(int(time.time()))
    return {
        "Content-Type": "application/json",
        "X-Veil-Key": key_id(secret),
        "X-Veil-Timestamp": ts,
        "X-Veil-Signature": signature(secret, ts, body),
    }


def _unauthorised(kind: str, title: str, detail: str) -> BatchUnauthenticated:
    return BatchUnauthenticated(kind, title, detail)


def check_headers(
    secret: bytes, headers: dict[bytes, bytes], now: float | None = None
) -> SignedHeaders:
    """Everything about a batch's authentication that can be checked before its body is read:
    raise BatchUnauthenticated unless the three headers are well-formed, the key id names `secret`
    and the timestamp is inside the replay window."""
    key = headers.get(b"x-veil-key")
    ts = headers.get(b"x-veil-timestamp")
    given = headers.get(b"x-veil-signature")
    if key is None or ts is None or given is None:
        raise _unauthorised(
            "unsigned",
            "Unsigned batch",
            "send X-Veil-Key, X-Veil-Timestamp and X-Veil-Signature headers "
            "(an app and its collector must run the same veil version)",
        )
    match = _SIGNATURE.fullmatch(given)
    if not (_KEY_ID.fullmatch(key) and _TIMESTAMP.fullmatch(ts) and match):
        raise _unauthorised(
            "malformed-signature",
            "Malformed signature headers",
            "X-Veil-Key must be 16 hex digits, X-Veil-Timestamp unix seconds "
            "and X-Veil-Signature sha256=<64 hex digits>",
        )
    if not hmac.compare_digest(key, key_id(secret).encode()):
        raise _unauthorised(
            "unknown-key", "Unknown key", "X-Veil-Key does not name this collector's shared secret"
        )
    now = time.time() if now is None else now
    if abs(now - int(ts)) > REPLAY_WINDOW:
        raise _unauthorised(
            "stale-timestamp",
            "Stale batch",
            f"X-Veil-Timestamp is more than {REPLAY_WINDOW} s from the collector's clock",
        )
    return SignedHeaders(ts, match[1])


def verify(secret: bytes, signed: SignedHeaders, body: bytes | bytearray) -> None:
    """Raise BatchUnauthenticated unless `body` carries the signature `check_headers` accepted."""
    if not hmac.compare_digest(signed.signature, _mac(secret, signed.timestamp, body).encode()):
        raise _unauthorised(
            "bad-signature",
            "Bad signature",
            "X-Veil-Signature does not match the body and the shared secret",
        )


class Batch(NamedTuple):
    rows: list[Row]
    drops: Counter[str]
    day: str
    id: str


def new_batch_id() -> str:
    return secrets.token_urlsafe(18)  # 24 characters, 144 random bits


def encode_batch(rows: list[Row], drops: Counter[str], day: str, batch: str | None = None) -> bytes:
    """The wire form; `batch` must be the same on every retry of one batch (a fresh id when
    None), so the collector adds its drop counts once."""

    def portable(row: Row) -> list[object]:
        out = list(row)
        if out[_BLOB] is not None:
            out[_BLOB] = base64.b64encode(cast(bytes, out[_BLOB])).decode()
        return out

    return json.dumps(
        {
            "batch": batch or new_batch_id(),
            "columns": ROW_COLUMNS,
            "day": day,
            "drops": dict(drops),
            "rows": [portable(r) for r in rows],
        },
        separators=(",", ":"),
    ).encode()


def _malformed(detail: str, field: str | None = None) -> BatchMalformed:
    return BatchMalformed("malformed-batch", "Malformed batch", detail, field)


def _is_day(value: object) -> TypeGuard[str]:
    try:
        return isinstance(value, str) and dt.date.fromisoformat(value).isoformat() == value
    except ValueError:
        return False


def decode_batch(body: bytes | bytearray) -> Batch:
    """The batch in `body`, every value checked; BatchMalformed naming what is wrong."""
    # No depth pre-check (it would cost 3x the parse on megabytes of rows): the body is signed,
    # the decoder's recursion limit bounds depth, and every value is checked below.
    try:
        data = jsonbody.decode(body, max_depth=None)
    except JSONInvalid as exc:
        raise _malformed(str(exc)) from None
    if not isinstance(data, dict):
        raise _malformed("the body must be a JSON object")
    if data.get("columns") != list(ROW_COLUMNS):
        raise BatchMalformed(
            "schema-mismatch",
            "Schema mismatch",
            "the batch's columns differ from this collector's: run the same "
            "veil version in the app and the collector",
            "columns",
        )
    batch, day, drops, rows = (data.get(k) for k in ("batch", "day", "drops", "rows"))
    if not isinstance(batch, str) or not BATCH_ID.fullmatch(batch):
        raise _malformed("batch must be an id of 16 to 64 letters, digits, '-' or '_'", "batch")
    if not _is_day(day):
        raise _malformed("day must be a YYYY-MM-DD date", "day")
    if not isinstance(drops, dict) or not all(
        isinstance(k, str) and _REASON.fullmatch(k) and type(v) is int and 0 < v <= MAX_DROP_COUNT
        for k, v in drops.items()
    ):
        raise _malformed("drops must map reasons (a-z and _) to positive counts", "drops")
    if not isinstance(rows, list):
        raise _malformed("rows must be an array", "rows")
    out = []
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(ROW_COLUMNS):
            raise _malformed(f"rows[{i}] must be an array of {len(ROW_COLUMNS)} values", "rows")
        if not isinstance(row[0], str) or not isinstance(row[1], int | float):
            raise _malformed(f"rows[{i}] needs an event_id string and a numeric ts", "rows")
        if row[_BLOB] is not None:
            try:
                row[_BLOB] = base64.b64decode(row[_BLOB], validate=True)
            except (TypeError, ValueError):
                raise _malformed(f"rows[{i}].sealed_endpoint is not base64", "rows") from None
        out.append(tuple(row))
    return Batch(out, Counter(drops), day, batch)
