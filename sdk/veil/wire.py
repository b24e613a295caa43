"""Batches between an app's middleware and a collector: JSON, HMAC-signed, replay-bounded.

The app pseudonymises before sending, so a batch holds the same rows a local store would.
Signature: `X-Veil-Signature: sha256=<hex HMAC-SHA256(secret, timestamp "." body)>` with
`X-Veil-Timestamp: <unix seconds>`; the collector refuses a timestamp outside its window.
Replays inside the window are harmless: event ids make a repeated batch a no-op.
"""

import base64
import hashlib
import hmac
import json
import os
import time
from collections import Counter
from pathlib import Path

from .errors import ConfigError
from .pipeline import ROW_COLUMNS
from .problems import Problem

REPLAY_WINDOW = 300  # seconds either side of the collector's clock
_BLOB = ROW_COLUMNS.index("sealed_endpoint")
_MIN_SECRET = 32


def load_secret(secret_file: Path | None) -> bytes | None:
    """The shared secret from $VEIL_REMOTE_SECRET or `remote.secret_file`; None if neither."""
    text = os.environ.get("VEIL_REMOTE_SECRET")
    where = "VEIL_REMOTE_SECRET"
    if text is None and secret_file is not None:
        where = "remote.secret_file"
        try:
            text = secret_file.read_text().strip()
        except OSError as exc:
            raise ConfigError([f"cannot read {secret_file}: {exc.strerror}"], where) from None
    if text is None:
        return None
    if len(text) < _MIN_SECRET:
        raise ConfigError([f"the shared secret must be at least {_MIN_SECRET} characters "
                           "(veil keys generate-master makes a good one)"], where)
    return text.encode()


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def signed_headers(secret: bytes, body: bytes) -> dict[str, str]:
    ts = str(int(time.time()))
    return {"Content-Type": "application/json", "X-Veil-Timestamp": ts,
            "X-Veil-Signature": signature(secret, ts, body)}


def verify(secret: bytes, headers: dict[bytes, bytes], body: bytes) -> None:
    """Raise a 401 Problem unless the body is signed with `secret`, recently."""
    ts = headers.get(b"x-veil-timestamp", b"").decode("latin-1")
    given = headers.get(b"x-veil-signature", b"").decode("latin-1")
    if not ts.isdigit() or not given:
        raise Problem(401, "unsigned", "Unsigned batch",
                      "send X-Veil-Timestamp and X-Veil-Signature headers")
    if abs(time.time() - int(ts)) > REPLAY_WINDOW:
        raise Problem(401, "stale-timestamp", "Stale batch",
                      f"X-Veil-Timestamp is more than {REPLAY_WINDOW} s from the collector's "
                      "clock")
    if not hmac.compare_digest(given, signature(secret, ts, body)):
        raise Problem(401, "bad-signature", "Bad signature",
                      "X-Veil-Signature does not match the body and the shared secret")


def encode_batch(rows: list[tuple], drops: Counter, day: str) -> bytes:
    def portable(row: tuple) -> list:
        out = list(row)
        if out[_BLOB] is not None:
            out[_BLOB] = base64.b64encode(out[_BLOB]).decode()
        return out

    return json.dumps({"columns": ROW_COLUMNS, "day": day, "drops": dict(drops),
                       "rows": [portable(r) for r in rows]}, separators=(",", ":")).encode()


def _malformed(detail: str, field: str | None = None) -> Problem:
    return Problem(400, "malformed-batch", "Malformed batch", detail, field=field)


def decode_batch(body: bytes) -> tuple[list[tuple], Counter, str]:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _malformed("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise _malformed("the body must be a JSON object")
    if data.get("columns") != list(ROW_COLUMNS):
        raise Problem(400, "schema-mismatch", "Schema mismatch",
                      "the batch's columns differ from this collector's: run the same veil "
                      "version in the app and the collector", field="columns")
    day, drops, rows = data.get("day"), data.get("drops"), data.get("rows")
    if not isinstance(day, str) or len(day) != 10:
        raise _malformed("day must be a YYYY-MM-DD string", "day")
    if not isinstance(drops, dict) or not all(
            isinstance(k, str) and isinstance(v, int) and v > 0 for k, v in drops.items()):
        raise _malformed("drops must map reasons to positive counts", "drops")
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
    return out, Counter(drops), day
