"""`POST /veil/batch` before authentication (issue 7, item 13), against a real `veil serve`.

The attacker has no shared secret. It may have seen a batch go by (so it knows the key id and
can replay a request), and it can send any header bytes and as much body as it likes.
"""

import asyncio
import json
import os
import socket
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from servers import ServerProcess

from veil.store.columns import ROW_COLUMNS
from veil.store.wire import encode_batch, key_id, signature, signed_headers
from veil_collector.app import MAX_BATCH_BYTES

from conftest import rows, scalar

SECRET = "b" * 48
MB = 1024 * 1024


@pytest.fixture
def collector(tmp_path: Path, master_key: str):
    config = tmp_path / "collector.toml"
    config.write_text('[store]\nurl = "sqlite:///data/veil.db"\n[keys]\npath = "data/keys.db"\n')
    server = ServerProcess.veil_serve(
        config,
        {**os.environ, "VEIL_REMOTE_SECRET": SECRET, "VEIL_MASTER_KEY": master_key},
        tmp_path / "collector.log",
        data=tmp_path / "data",
    ).start()
    with httpx.Client(base_url=server.url, timeout=30) as c:  # the lifespan has opened the store
        for _ in range(200):
            if c.get("/healthz").status_code == 200:
                break
            time.sleep(0.05)
    yield server
    server.stop()


def rss(pid: int, field: str = "VmRSS") -> int:
    """Resident memory of a process, in bytes, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for {pid}")


def row(event_id: str) -> tuple:
    values = dict.fromkeys(ROW_COLUMNS)
    values.update(
        event_id=event_id,
        ts=time.time(),
        purpose="connection",
        policy_version="1.0",
        source="request",
        visitor=f"v-{event_id}",
        browser="Firefox",
    )
    return tuple(values[c] for c in ROW_COLUMNS)


def raw_request(
    port: int, head: list[bytes], body: bytes = b"", timeout: float = 30.0
) -> tuple[int, dict[bytes, bytes], bytes]:
    """One HTTP/1.1 request with header bytes exactly as given (no client validates them)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(
            b"\r\n".join(
                [b"POST /veil/batch HTTP/1.1", b"Host: collector", b"Connection: close", *head]
            )
            + b"\r\n\r\n"
            + body
        )
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    status_line, _, rest = data.partition(b"\r\n")
    header_block, _, payload = rest.partition(b"\r\n\r\n")
    headers = dict(line.split(b": ", 1) for line in header_block.split(b"\r\n") if line)
    return int(status_line.split()[1]), {k.lower(): v for k, v in headers.items()}, payload


def drops_in(db: Path) -> dict[str, int]:
    return dict(rows(db, "SELECT reason, SUM(count) FROM drops GROUP BY reason"))


# -- memory: 32 unauthenticated 16 MB bodies at once -----------------------------------------


async def unauthenticated_post(port: int, body: memoryview) -> int | None:
    """A 16 MB body with a well-formed but false signature (the key id an observer saw); the
    status, or None when the server closed the connection on us."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"POST /veil/batch HTTP/1.1\r\nHost: collector\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nX-Veil-Key: {key_id(SECRET.encode())}\r\n"
        f"X-Veil-Timestamp: {int(time.time())}\r\n"
        f"X-Veil-Signature: sha256={'0' * 64}\r\n\r\n"
    ).encode()
    try:
        writer.write(head)
        for i in range(0, len(body), MB):
            writer.write(body[i : i + MB])
            await writer.drain()
        status_line = await reader.readline()
        return int(status_line.split()[1]) if status_line else None
    except (ConnectionError, IndexError):
        return None
    finally:
        writer.close()


def test_unauthenticated_bodies_do_not_grow_the_collectors_memory(collector):
    pid = collector.proc.pid
    before = rss(pid)
    body = memoryview(b"[" + b" " * (MAX_BATCH_BYTES - 2) + b"]")

    async def storm() -> list[int | None]:
        return await asyncio.gather(
            *(unauthenticated_post(collector.port, body) for _ in range(32))
        )

    statuses = asyncio.run(storm())
    peak = rss(pid, "VmHWM")  # the high-water mark: the peak during the storm, not after it
    assert set(statuses) <= {401, 503, None}, statuses  # refused or told to retry, never 500
    assert 401 in statuses  # some bodies were read, checked and refused
    # At most two bodies are held at once (32 MB); before the fix all 32 were (RSS +~400 MB).
    assert peak - before < 64 * MB, f"the collector grew by {(peak - before) // MB} MB"
    with httpx.Client(base_url=collector.url) as c:
        assert c.get("/healthz").status_code == 200


# -- headers are checked before the body is read, and odd bytes are a 401 --------------------


def good_head(body: bytes, **override: bytes) -> list[bytes]:
    h = {k.lower().encode(): v.encode() for k, v in signed_headers(SECRET.encode(), body).items()}
    h[b"content-length"] = str(len(body)).encode()
    h.update({k.replace("_", "-").encode(): v for k, v in override.items()})
    return [k + b": " + v for k, v in h.items() if v is not None]


@pytest.mark.parametrize(
    ("header", "value", "kind"),
    [
        ("x_veil_timestamp", "\uff11\uff17".encode(), "malformed-signature"),  # fullwidth digits
        ("x_veil_timestamp", b"9" * 5000, "malformed-signature"),  # int() refuses; was a 500
        ("x_veil_timestamp", b"-1700000000", "malformed-signature"),
        ("x_veil_timestamp", b"1e9", "malformed-signature"),
        ("x_veil_signature", b"sha256=" + "é".encode("latin-1") * 64, "malformed-signature"),
        ("x_veil_signature", b"sha256=" + b"\xff" * 64, "malformed-signature"),
        ("x_veil_signature", b"sha256=" + b"A" * 64, "malformed-signature"),  # not lower-case hex
        ("x_veil_key", b"\xfe" * 16, "malformed-signature"),
        ("x_veil_key", b"0" * 16, "unknown-key"),
        ("x_veil_key", None, "unsigned"),
    ],
)
def test_malformed_signature_headers_are_a_401_never_a_500(collector, header, value, kind):
    body = encode_batch([row("e1")], Counter(), "2026-11-25")
    status, headers, payload = raw_request(collector.port, good_head(body, **{header: value}), body)
    assert status == 401, payload
    assert headers[b"content-type"] == b"application/problem+json"
    assert json.loads(payload)["type"] == f"urn:veil:problem:{kind}"
    assert raw_request(collector.port, good_head(body), body)[0] == 200  # still serving


@pytest.mark.parametrize(
    ("override", "status", "kind"),
    [
        ({"x_veil_timestamp": str(int(time.time()) - 3600).encode()}, 401, "stale-timestamp"),
        ({"x_veil_key": b"0123456789abcdef"}, 401, "unknown-key"),
        ({"content_length": str(MAX_BATCH_BYTES + 1).encode()}, 413, "body-too-large"),
        ({"content_length": None, "transfer_encoding": b"chunked"}, 411, "length-required"),
    ],
)
def test_what_can_be_refused_before_the_body_is_refused_without_reading_it(
    collector, override, status, kind
):
    # The body is never sent: a server that waited for it would not answer (it gives a body
    # 60 s), so an answer here means the refusal came from the headers alone.
    head = good_head(b"{}", **override)
    got, _, payload = raw_request(collector.port, head, b"", timeout=30)
    assert got == status and json.loads(payload)["type"] == f"urn:veil:problem:{kind}"


# -- a replayed batch adds its drop counts once ----------------------------------------------


def test_a_replayed_batch_does_not_add_its_drops_again(collector):
    body = encode_batch([row("r1"), row("r2")], Counter(bot=3, queue_full=2), "2026-11-25")
    head = good_head(body)
    assert raw_request(collector.port, head, body)[0] == 200
    assert drops_in(collector.db) == {"bot": 3, "queue_full": 2}
    # the same request again, byte for byte (an observer's replay inside the window) ...
    assert raw_request(collector.port, head, body)[0] == 200
    # ... and the sender's own retry after a lost answer: signed anew, the same batch id
    ts = str(int(time.time()) - 1).encode()
    resigned = good_head(
        body,
        x_veil_timestamp=ts,
        x_veil_signature=signature(SECRET.encode(), ts.decode(), body).encode(),
    )
    assert resigned != head
    assert raw_request(collector.port, resigned, body)[0] == 200
    assert drops_in(collector.db) == {"bot": 3, "queue_full": 2}
    assert scalar(collector, "SELECT COUNT(*) FROM event_rows") == 2
    # a different batch with the same drops is counted: ids, not contents, are deduplicated
    other = encode_batch([], Counter(bot=3), "2026-11-25")
    assert raw_request(collector.port, good_head(other), other)[0] == 200
    assert drops_in(collector.db) == {"bot": 6, "queue_full": 2}
