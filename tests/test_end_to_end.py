"""Real HTTP through uvicorn to the example app, then `veil query`, then a grep of the disk."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from servers import ROOT, ServerProcess

from conftest import CHROME, FIREFOX, GOOGLEBOT, SAFARI_IPHONE, rows, scalar

AGENTS = {CHROME: "Chrome", FIREFOX: "Firefox", SAFARI_IPHONE: "Mobile Safari"}
# per browser, that many distinct forwarded visitors (k = 5 needs at least five)
VISITORS = {"Chrome": 7, "Firefox": 5, "Mobile Safari": 2}


def get(port: int, headers: dict[str, str], sent_from: list[int] | None = None) -> bytes:
    """One real HTTP/1.1 request; its source port is appended to `sent_from`."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        if sent_from is not None:
            sent_from.append(s.getsockname()[1])
        s.connect(("127.0.0.1", port))
        lines = [
            "GET / HTTP/1.1",
            "Host: shop.example",
            "Connection: close",
            *(f"{k}: {v}" for k, v in headers.items()),
        ]
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        chunks = []
        while data := s.recv(65536):
            chunks.append(data)
    return b"".join(chunks)


@pytest.fixture
def served(tmp_path, master_key):
    data = tmp_path / "veil-data"
    config = tmp_path / "veil.toml"
    config.write_text(
        '[store]\nurl = "sqlite:///veil-data/veil.db"\n'
        '[keys]\npath = "veil-data/keys.db"\nseal_ip = true\n'
        '[proxy]\ntrusted = ["127.0.0.1"]\n[capture]\nflush_interval = 0.2\n'
    )
    log = tmp_path / "server.log"
    env = {**os.environ, "VEIL_CONFIG": str(config), "VEIL_MASTER_KEY": master_key}
    server = ServerProcess.app("examples.starlette_app:app", env, log).start()
    yield server.port, config, data, log, server
    if server.proc.poll() is None:
        server.proc.kill()


def veil_cli(*args: str, config: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "veil_collector.cli", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_requests_through_uvicorn_are_counted_and_no_raw_data_reaches_disk(served):
    port, config, data, log, proc = served
    raw_ips, raw_ports = [], []
    n = 0
    for agent, browser in AGENTS.items():
        for _ in range(VISITORS[browser]):
            ip = f"198.51.{100 + n}.{10 + n}"  # one network each: k needs k networks
            reply = get(
                port,
                {"User-Agent": agent, "X-Forwarded-For": ip, "Accept-Language": "ja-JP,en;q=0.5"},
                sent_from=raw_ports,
            )
            assert reply.startswith(b"HTTP/1.1 200")
            raw_ips.append(ip)
            n += 1
    # a bot and a spoofed address from an untrusted peer are not counted as visitors
    assert get(port, {"User-Agent": GOOGLEBOT}).startswith(b"HTTP/1.1 200")

    assert proc.stop() == 0  # SIGINT: the lifespan shutdown flushes the queue

    result = veil_cli("query", "--by", "browser", "--format", "json", config=config)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["purpose"] == "connection"
    counts = {r["browser"]: r["events"] for r in answer["rows"]}
    # Mobile Safari: 2 persons < k = 5, suppressed; Firefox, the next smallest, with it (else
    # the total minus Chrome's would give Mobile Safari's count)
    assert counts == {"Chrome": 7, "Firefox": None, "Mobile Safari": None}
    assert answer["suppressed_groups"] == 2

    visitors = veil_cli(
        "query",
        "--by",
        "browser,language",
        "--metric",
        "visitors",
        "--format",
        "csv",
        config=config,
    )
    assert visitors.stdout.splitlines() == [
        "browser,language,visitors",
        "Chrome,ja,7",
        "Firefox,ja,suppressed",
        "Mobile Safari,ja,suppressed",
    ]

    db = data / "veil.db"
    purposes = {r[0] for r in rows(db, "SELECT DISTINCT purpose FROM events")}
    assert purposes == {"connection"}
    assert (
        scalar(
            db, "SELECT COUNT(*) FROM event_rows WHERE sealed_endpoint IS NULL OR visitor IS NULL"
        )
        == 0
    )
    assert dict(rows(db, "SELECT reason, count FROM drops")) == {"bot": 1}

    # Nothing raw anywhere under the data directory (db, WAL, SHM, keystore) or in the log.
    # A port leaks as text next to something: "IP port", "IP:port", a list. Bare 5-digit runs
    # also occur by chance inside hex pseudonyms, so they are not searched for.
    ports = [f"{sep}{p}" for p in raw_ports for sep in (" ", ":", ",")]
    secrets_on_disk = [
        *raw_ips,
        *ports,
        *AGENTS,
        GOOGLEBOT,
        "Chrome/120.0.6099.109",
        "rv:121.0",
        "ja-JP",
    ]
    files = [p for p in data.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"veil.db", "keys.db"}
    for path in [*files, log]:
        blob = path.read_bytes()
        for secret in secrets_on_disk:
            assert secret.encode() not in blob, f"{secret!r} found in {path.name}"
            assert secret.encode("utf-16-le") not in blob


def test_a_spoofed_left_hop_in_forwarded_for_is_ignored(served):
    port, _, data, _, proc = served
    # uvicorn itself is not told to trust proxies, so the app sees the socket peer; veil trusts
    # 127.0.0.1 and takes the right-most untrusted hop, not the spoofed left-most one.
    for i in range(5):
        get(port, {"User-Agent": CHROME, "X-Forwarded-For": f"6.6.6.6, 203.0.113.{i}"})
    proc.stop()
    networks = set(
        rows(data / "veil.db", "SELECT network, CAST(ts / 86400 AS INTEGER) FROM event_rows")
    )
    # the stored network is a daily pseudonym (test_unlinkability.py): recompute 203.0.113.0/24's
    from veil.config import KeysConfig
    from veil.pipeline import utc_day
    from veil.pseudonymise import Pseudonymiser
    from veil.store.keys import KeyStore

    keys = KeyStore.open(KeysConfig(path=data / "keys.db"))
    pseudonyms = Pseudonymiser(keys)
    assert networks == {
        (
            pseudonyms.pseudonyms(utc_day(day), "shop.example", "", b"", bytes([203, 0, 113, 0]))[
                1
            ],
            day,
        )
        for _, day in networks
    }
    keys.close()


def test_a_broken_config_never_starts(tmp_path):
    bad = tmp_path / "veil.toml"
    bad.write_text("[capture]\nqueue_size = -1\n[stor]\nurl = 'x'\n")
    result = veil_cli("policy", "check", config=bad)
    assert result.returncode == 1
    assert "capture.queue_size: must be greater than 0, got -1" in result.stderr
    assert "stor: unknown key (did you mean 'store'?)" in result.stderr
    env = {**os.environ, "VEIL_CONFIG": str(bad)}
    app = subprocess.run(
        [sys.executable, "-c", "import examples.starlette_app"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert app.returncode != 0
    assert "capture.queue_size: must be greater than 0" in app.stderr
